//! `lander explain`: the verdict for an ingested, a settling, a quarantined, an ignored (temp name) and a rewritten
//! file, `--json` parsed, and paths outside landing refused. Inputs are the bundled fixtures (`tests/fixtures/`),
//! so these run on a plain clone.

use std::collections::HashSet;
use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::common::data::{fixture_hour, fixture_lines};
use crate::common::*;

/// Distinct event ids of the fixture hour, counted here from the JSON (not by lander).
fn fixture_events() -> usize {
    fixture_lines()
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("fixture line is JSON");
            v["id"].as_str().expect("id").to_string()
        })
        .collect::<HashSet<_>>()
        .len()
}

/// `1234` -> `1,234`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn explain(wd: &Workdir, path: &str, extra: &[&str]) -> Output {
    let mut args: Vec<String> = vec!["explain".into(), path.into(), "--json".into()];
    args.extend(wd.location_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    wd.run(&refs)
}

fn explain_json(wd: &Workdir, path: &str, extra: &[&str]) -> Value {
    let out = explain(wd, path, extra);
    assert_success(&out, &["explain", path], wd.path());
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("explain --json is not JSON: {e}\n{text}"))
}

fn verdict(v: &Value) -> &str {
    v["verdict"].as_str().expect("verdict is a string")
}

#[test]
fn explain_an_ingested_file() {
    let wd = Workdir::new();
    let landed = wd.land(&fixture_hour(), "gharchive", "2015-01-01-0.json.gz");
    wd.run_once(&[]);
    let events = fixture_events();
    assert_eq!(count_rows(&wd.bronze().join("gharchive")), events);
    // A local path and a path relative to landing give the same answer.
    for arg in [
        landed.display().to_string(),
        "gharchive/2015-01-01-0.json.gz".into(),
    ] {
        let v = explain_json(&wd, &arg, &[]);
        assert_eq!(
            verdict(&v),
            format!("ingested in batch 1 ({} rows in 1 part)", thousands(events))
        );
        assert_eq!(v["dataset"], "gharchive");
        assert_eq!(v["rule"]["event_time"], "created_at");
        assert_eq!(v["checkpoint_state"], "processed");
        assert_eq!(v["readiness"]["state"], "unchanged");
        assert_eq!(v["record"]["records_ok"], events as u64);
        assert_eq!(v["batches"][0]["id"], 1);
        let part = &v["parts"][0];
        assert_eq!(part["rows_of_file"], events as u64);
        let on_disk = rows_by_file(&wd.bronze());
        let path = part["path"].as_str().expect("part path");
        assert_eq!(
            on_disk.get(&canonical_part_path(path)),
            Some(&events),
            "{on_disk:?}"
        );
    }
    // The text form ends with the same verdict.
    let mut args = vec![
        "explain".to_string(),
        "gharchive/2015-01-01-0.json.gz".into(),
    ];
    args.extend(wd.location_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = wd.run_ok(&refs);
    assert!(text.contains("verdict:      ingested in batch 1"), "{text}");
}

#[test]
fn explain_a_settling_file() {
    let wd = Workdir::new();
    wd.land(&fixture_hour(), "gharchive", "2015-01-01-0.json.gz");
    let v = explain_json(
        &wd,
        "gharchive/2015-01-01-0.json.gz",
        &["--settle-time", "1h"],
    );
    assert!(verdict(&v).starts_with("waiting: settling for "), "{v:#}");
    assert_eq!(v["readiness"]["state"], "settling");
    let remaining = v["readiness"]["remaining_seconds"]
        .as_f64()
        .expect("seconds");
    assert!(remaining > 3000.0 && remaining <= 3600.0, "{remaining}");
    assert_eq!(v["checkpoint_state"], "new");
}

#[test]
fn explain_a_file_with_a_quarantined_line() {
    let wd = Workdir::new();
    let lines = fixture_lines();
    let body = format!(
        "{}\n{{\"id\": \"broken\n{}\n{}\n",
        lines[0], lines[1], lines[2]
    );
    wd.land_bytes("gharchive", "2015-01-01-0.json", body.as_bytes());
    wd.run_once(&[]);
    let v = explain_json(&wd, "gharchive/2015-01-01-0.json", &[]);
    assert_eq!(
        verdict(&v),
        "ingested in batch 1 (3 rows in 1 part, 1 line quarantined)"
    );
    assert_eq!(v["quarantine"]["count"], 1);
    let q = &v["quarantine"]["lines"][0];
    assert_eq!(q["line"], 2);
    assert_eq!(q["offset"], lines[0].len() as u64 + 1);
    assert!(q["part"]
        .as_str()
        .expect("part")
        .starts_with("_quarantine/gharchive/"));
    // The quarantine part named is really there and holds that line.
    let part = wd.bronze().join(q["part"].as_str().expect("part"));
    let rows: usize = read_parquet(&part).iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 1);
}

#[test]
fn explain_an_ignored_temp_file() {
    let wd = Workdir::new();
    let dir = wd.landing().join("gharchive");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(fixture_hour(), dir.join("2015-01-01-0.json.gz.tmp")).expect("copy");
    let v = explain_json(&wd, "gharchive/2015-01-01-0.json.gz.tmp", &[]);
    assert_eq!(verdict(&v), "ignored: temp name (.tmp suffix)");
    assert_eq!(v["readiness"]["state"], "ignored");
    // And a run really leaves it alone.
    wd.run_once(&[]);
    assert!(parquet_files(&wd.bronze()).is_empty());
}

#[test]
fn explain_a_rewritten_file() {
    let wd = Workdir::new();
    let lines = fixture_lines();
    wd.land_bytes(
        "gharchive",
        "h.json",
        format!("{}\n{}\n", lines[0], lines[1]).as_bytes(),
    );
    wd.run_once(&[]);
    wd.land_bytes(
        "gharchive",
        "h.json",
        format!("{}\n{}\n", lines[2], lines[3]).as_bytes(),
    );
    let v = explain_json(&wd, "gharchive/h.json", &["--settle-time", "0s"]);
    assert!(
        verdict(&v).starts_with("pending: rewritten (same path, the bytes already read changed)"),
        "{v:#}"
    );
    assert_eq!(v["checkpoint_state"], "rewritten");
    assert_eq!(v["readiness"]["change"], "rewritten");
    assert_ne!(v["record"]["fingerprint"], v["file"]["fingerprint"]);
    // While it settles, the verdict says the rewritten content is waiting.
    let v = explain_json(&wd, "gharchive/h.json", &["--settle-time", "1h"]);
    assert!(
        verdict(&v).starts_with("waiting: rewritten content settling"),
        "{v:#}"
    );
}

#[test]
fn explain_refuses_paths_outside_landing_or_unknown() {
    let wd = Workdir::new();
    std::fs::create_dir_all(wd.landing().join("gharchive")).expect("mkdir");
    let outside = wd.path().join("elsewhere.json.gz");
    std::fs::copy(fixture_hour(), &outside).expect("copy");
    let out = explain(&wd, &outside.display().to_string(), &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is outside landing"),
        "{out:?}"
    );
    let out = explain(&wd, "gharchive/nope.json.gz", &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{out:?}"
    );
}

/// Sets `path`'s modification time `ahead` of now.
fn date_ahead(path: &Path, ahead: std::time::Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(std::time::SystemTime::now() + ahead)
        .expect("set mtime");
}

/// A file whose modification time lies in the future (gzip or plain, new or rewritten after it was processed,
/// with or without a settle time) is not "settling": `explain` and `checkpoint pending` say what `run` says.
/// A file copied just now is still "settling" under a settle time.
#[test]
fn explain_and_pending_name_a_file_modified_in_the_future() {
    let wd = Workdir::new();
    let lines = fixture_lines();
    wd.land_bytes(
        "gharchive",
        "rewritten.json",
        format!("{}\n", lines[0]).as_bytes(),
    );
    wd.run_once(&[]);
    let ahead = std::time::Duration::from_secs(2 * 86_400);
    let rewritten = wd.land_bytes(
        "gharchive",
        "rewritten.json",
        format!("{}\n{}\n", lines[1], lines[2]).as_bytes(),
    );
    date_ahead(&rewritten, ahead);
    let gz = wd.land(&fixture_hour(), "gharchive", "2015-01-01-1.json.gz");
    date_ahead(&gz, ahead);
    let plain = wd.land_bytes(
        "gharchive",
        "plain.json",
        format!("{}\n", lines[3]).as_bytes(),
    );
    date_ahead(&plain, ahead);
    let future = [
        ("gharchive/rewritten.json", "rewritten"),
        ("gharchive/2015-01-01-1.json.gz", "new"),
        ("gharchive/plain.json", "new"),
    ];
    for settle in ["0s", "1h"] {
        for (path, state) in future {
            let v = explain_json(&wd, path, &["--settle-time", settle]);
            assert!(
                verdict(&v).starts_with("waiting: modified in the future (a writer's clock ahead"),
                "{settle} {v:#}"
            );
            assert!(!verdict(&v).contains("settling"), "{v:#}");
            assert_eq!(v["readiness"]["state"], "modified_in_the_future", "{v:#}");
            let remaining = v["readiness"]["remaining_seconds"].as_f64().expect("secs");
            assert!(remaining > 86_400.0, "{remaining}");
            assert_eq!(v["checkpoint_state"], state, "{v:#}");
        }
    }
    // An honest file under a settle time is still settling (the future ones are not).
    wd.land_bytes(
        "gharchive",
        "honest.json",
        format!("{}\n", lines[4]).as_bytes(),
    );
    let v = explain_json(&wd, "gharchive/honest.json", &["--settle-time", "1h"]);
    assert!(verdict(&v).starts_with("waiting: settling for "), "{v:#}");
    for settle in ["0s", "1h"] {
        let mut args = vec!["checkpoint", "pending", "--json", "--settle-time", settle];
        let loc = wd.location_args();
        args.extend(loc.iter().map(String::as_str));
        let p: Value = serde_json::from_str(&wd.run_ok(&args)).expect("pending --json");
        let rows = p.as_array().expect("array");
        for (path, change) in future {
            let row = rows
                .iter()
                .find(|r| r["path"] == path)
                .unwrap_or_else(|| panic!("{path} not pending at {settle}: {p:#}"));
            assert_eq!(row["ready"], false, "{row:#}");
            assert_eq!(row["change"], change, "{row:#}");
            let reason = row["reason"].as_str().unwrap_or_default();
            assert!(reason.starts_with("modified in the future"), "{row:#}");
        }
        let honest = rows
            .iter()
            .find(|r| r["path"] == "gharchive/honest.json")
            .expect("honest pending");
        assert_eq!(honest["ready"], settle == "0s", "{honest:#}");
        assert!(honest.get("reason").is_none(), "{honest:#}");
        args.retain(|a| *a != "--json");
        let out = wd.run(&args);
        assert_success(&out, &args, wd.path());
        let text = String::from_utf8_lossy(&out.stdout);
        for (path, _) in future {
            let line = text.lines().find(|l| l.starts_with(path)).expect("row");
            assert!(line.ends_with("no: modified in the future"), "{line}");
        }
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("3 file(s) modified in the future"),
            "{out:?}"
        );
    }
}
