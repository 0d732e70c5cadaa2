//! Dedup across batches, runs, modes and crashes: the dedup index on disk (`<checkpoint>/dedup/<dataset>/`).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use serde_json::Value;

use crate::common::daemon::Daemon;
use crate::common::*;

/// Every value of `column` (any type, as text) below `dir`, sorted.
fn column_text(dir: &Path, column: &str) -> Vec<String> {
    let mut out = Vec::new();
    for p in parquet_files(dir) {
        for b in read_parquet(&p) {
            let c = b.column_by_name(column).expect("column");
            let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).expect("cast");
            let c = c.as_string::<i32>();
            out.extend((0..c.len()).map(|i| c.value(i).to_string()));
        }
    }
    out.sort();
    out
}

/// A GH Archive event line with this id and time.
fn event(id: u32, created_at: &str) -> String {
    format!(
        r#"{{"id":"{id}","type":"PushEvent","actor":{{"id":{id},"login":"u{id}"}},"repo":{{"id":1,"name":"o/r"}},"payload":{{"n":{id}}},"public":true,"created_at":"{created_at}"}}"#
    )
}

fn gzip(lines: &[String]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for l in lines {
        e.write_all(l.as_bytes()).expect("gzip");
        e.write_all(b"\n").expect("gzip");
    }
    e.finish().expect("gzip")
}

fn stats_output(w: &Workdir) -> std::process::Output {
    w.cmd()
        .args(["checkpoint", "stats", "--json", "--checkpoint"])
        .arg(w.checkpoint())
        .output()
        .expect("spawn lander")
}

fn stats(w: &Workdir, dataset: &str) -> Value {
    let out = stats_output(w);
    assert_success(&out, &["checkpoint", "stats"], w.path());
    dataset_of(&String::from_utf8_lossy(&out.stdout), dataset)
}

/// Stats of `dataset`, or null while there is no checkpoint yet (a daemon that has not committed anything).
fn try_stats(w: &Workdir, dataset: &str) -> Value {
    let out = stats_output(w);
    if !out.status.success() {
        return Value::Null;
    }
    dataset_of(&String::from_utf8_lossy(&out.stdout), dataset)
}

fn dataset_of(json: &str, dataset: &str) -> Value {
    let v: Value = serde_json::from_str(json).expect("json");
    v["datasets"]
        .as_array()
        .expect("datasets")
        .iter()
        .find(|d| d["dataset"] == dataset)
        .cloned()
        .unwrap_or(Value::Null)
}

/// The run files a batch wrote (a base run `<day>-b0-...` holds keys loaded back from bronze).
fn batch_run_files(w: &Workdir, dataset: &str) -> Vec<String> {
    run_files(w, dataset)
        .into_iter()
        .filter(|n| !n.contains("-b00000000000000000000-"))
        .collect()
}

fn run_files(w: &Workdir, dataset: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(w.checkpoint().join("dedup").join(dataset))
        .map(|rd| {
            rd.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The same generated sales files (duplicates spread over a month of event time and across files) land as the
/// same bronze rows whether one `once` batch, `available-now` batches of one file, or a `continuous` daemon
/// reads them.
#[test]
fn bronze_is_the_same_in_every_mode() {
    let src = Workdir::new();
    let out = src.run_ok(&[
        "generate",
        "sales",
        "--rows",
        "3000",
        "--files",
        "6",
        "--seed",
        "12",
        "--duplicate-share",
        "0.05",
        "--landing",
        &src.landing().display().to_string(),
    ]);
    let valid: usize = out
        .split_whitespace()
        .find_map(|t| t.strip_prefix("valid="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no valid= in {out}"));
    let dups: usize = out
        .split_whitespace()
        .find_map(|t| t.strip_prefix("duplicate="))
        .and_then(|v| v.parse().ok())
        .expect("duplicate=");
    assert!(dups > 50, "the generator made duplicates to drop: {out}");
    let mut files: Vec<_> = std::fs::read_dir(src.landing().join("sales"))
        .expect("landing")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 6);

    let modes = [Workdir::new(), Workdir::new(), Workdir::new()];
    for w in &modes[..2] {
        for f in &files {
            w.land(f, "sales", &f.file_name().expect("name").to_string_lossy());
        }
    }
    modes[0].run_once(&[]);
    let mut args = vec![
        "run",
        "--mode",
        "available-now",
        "--settle-time",
        "0s",
        "--max-files-per-batch",
        "1",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    args.extend(modes[1].location_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    modes[1].run_ok(&refs);
    assert_eq!(u64_of(&stats(&modes[1], "sales"), "batches"), 6);
    // Continuous: files arrive one at a time while the daemon runs, each its own batch.
    std::fs::create_dir_all(modes[2].landing().join("sales")).expect("mkdir");
    let d = Daemon::start(
        &modes[2],
        "continuous",
        &["--settle-time", "0s", "--poll-interval", "1s"],
    );
    for (i, f) in files.iter().enumerate() {
        modes[2].land(f, "sales", &f.file_name().expect("name").to_string_lossy());
        let committed = wait_until(Duration::from_secs(30), || {
            try_stats(&modes[2], "sales")["files"].as_u64() == Some(i as u64 + 1)
        });
        assert!(committed, "file {i} was not committed by the daemon");
    }
    let (status, _, stderr) = d.stop();
    assert!(status.success(), "{stderr}");

    let ids: Vec<Vec<String>> = modes
        .iter()
        .map(|w| column_text(&w.bronze().join("sales"), "transaction_id"))
        .collect();
    let mut distinct = ids[0].clone();
    distinct.dedup();
    assert_eq!(ids[0].len(), valid, "once keeps exactly the valid rows");
    assert_eq!(distinct.len(), valid, "no transaction twice");
    for (i, mode) in [(1, "available-now, one file per batch"), (2, "continuous")] {
        assert_eq!(ids[i].len(), ids[0].len(), "{mode}: rows");
        assert!(ids[i] == ids[0], "{mode}: other transaction ids than once");
    }
    for w in &modes {
        assert_eq!(u64_of(&stats(w, "sales"), "dedup_keys"), valid as u64);
    }
}

fn u64_of(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"))
}

/// A record seen in an earlier run is dropped in a later one with events days later; a shorter horizon prunes
/// whole days from the local index (their run files go), and a repeat of a pruned day is still dropped: the
/// day's keys are read back from bronze.
#[test]
fn repeats_across_runs_days_apart_and_pruning_by_day() {
    let w = Workdir::new();
    let day1 = "2020-01-01T10:00:00Z";
    let day10 = "2020-01-10T10:00:00Z";
    let day20 = "2020-01-20T10:00:00Z";
    w.land_bytes(
        "gharchive",
        "a.json.gz",
        &gzip(&[event(1, day1), event(2, day1), event(3, day1)]),
    );
    w.run_once(&[]);
    // Nine days later in event time, in a second run: id 1 again.
    w.land_bytes(
        "gharchive",
        "b.json.gz",
        &gzip(&[event(4, day10), event(1, day1), event(5, day10)]),
    );
    let out = w.run_once(&[]);
    assert!(out.contains("2 rows written"), "{out}");
    let gh = w.bronze().join("gharchive");
    assert_eq!(column_text(&gh, "id"), ["1", "2", "3", "4", "5"]);
    let s = stats(&w, "gharchive");
    assert_eq!((u64_of(&s, "dedup_keys"), u64_of(&s, "duplicates")), (5, 1));
    let days = |w: &Workdir| {
        let mut d: Vec<String> = run_files(w, "gharchive")
            .iter()
            .map(|n| n[..10].to_string())
            .collect();
        d.dedup();
        d
    };
    assert_eq!(days(&w), ["2020-01-01", "2020-01-10"], "runs per event day");

    // A 2-day horizon and an event on day 20: days 1 and 10 are pruned, with their run files.
    w.land_bytes("gharchive", "c.json.gz", &gzip(&[event(6, day20)]));
    w.run_once(&["--dedup-horizon", "2d"]);
    let s = stats(&w, "gharchive");
    assert_eq!(u64_of(&s, "dedup_keys"), 1);
    assert_eq!(days(&w), ["2020-01-20"]);

    // Id 2 (day 1) again, and a new id on day 1: the day is read back from bronze, so 2 is dropped.
    w.land_bytes(
        "gharchive",
        "d.json.gz",
        &gzip(&[event(2, day1), event(7, day1)]),
    );
    let out = w.run_once(&["--dedup-horizon", "2d"]);
    assert!(out.contains("1 rows written"), "{out}");
    assert_eq!(column_text(&gh, "id"), ["1", "2", "3", "4", "5", "6", "7"]);
}

/// A crash after the batch's dedup runs were written but before the checkpoint commit: the next start deletes
/// the run file no commit references (even with nothing new to ingest), and the batch is then redone exactly.
#[test]
fn recovery_deletes_the_run_file_of_an_uncommitted_batch() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let clean = Workdir::new();
    let w = Workdir::new();
    for x in [&clean, &w] {
        x.land(
            &gharchive("2015-01-01-0.json.gz"),
            "gharchive",
            "2015-01-01-0.json.gz",
        );
    }
    clean.run_once(&[]);
    let args = w.once_args();
    let out = w
        .cmd()
        .args(&args)
        .env("LANDER_FAIL_AFTER", "runs")
        .output()
        .expect("spawn");
    assert!(!out.status.success(), "the failpoint aborts");
    assert_eq!(
        batch_run_files(&w, "gharchive").len(),
        1,
        "the batch wrote its run"
    );
    assert_eq!(
        u64_of(&stats(&w, "gharchive"), "dedup_keys"),
        0,
        "an uncommitted run does not count"
    );

    // Restart with the file moved away: recovery alone removes the run and the published parts.
    let parked = w.path().join("parked.json.gz");
    std::fs::rename(w.landing().join("gharchive/2015-01-01-0.json.gz"), &parked).expect("park");
    let out = w.run_once(&[]);
    assert!(out.contains("nothing new"), "{out}");
    assert!(batch_run_files(&w, "gharchive").is_empty());
    assert_eq!(count_rows(&w.bronze().join("gharchive")), 0);

    w.land(&parked, "gharchive", "2015-01-01-0.json.gz");
    w.run_once(&[]);
    assert_eq!(
        rows_by_file(&w.bronze().join("gharchive")),
        rows_by_file(&clean.bronze().join("gharchive"))
    );
    let rows = count_rows(&w.bronze().join("gharchive")) as u64;
    assert_eq!(
        rows,
        crate::common::data::hour_events(&["2015-01-01-0.json.gz"]) as u64
    );
    assert_eq!(u64_of(&stats(&w, "gharchive"), "dedup_keys"), rows);
}

/// `generate sales` with its default ids, run twice with different seeds into a landing that also holds the bundled
/// sample (ids 1..): no generated row collides with another run's or with the sample's, so dedup drops only the
/// generator's own repeats.
#[test]
fn generated_sales_never_collide_with_earlier_ids_by_default() {
    let w = Workdir::new();
    w.land(
        &fixtures_landing().join("sales/transacciones_ventas-sample.csv"),
        "sales",
        "transacciones_ventas-sample.csv",
    );
    let landing = w.landing().display().to_string();
    let mut generated = 0;
    for seed in ["1", "2"] {
        let out = w.run_ok(&[
            "generate",
            "sales",
            "--rows",
            "2000",
            "--files",
            "2",
            "--seed",
            seed,
            "--duplicate-share",
            "0",
            "--landing",
            &landing,
        ]);
        assert!(out.contains("valid=2000"), "{out}");
        generated += 2000;
    }
    w.run_once(&[]);
    let ids = column_text(&w.bronze().join("sales"), "transaction_id");
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    // The sample holds 3,000 distinct ids (its header excluded).
    assert_eq!(ids.len(), 3000 + generated, "rows in bronze");
    assert_eq!(distinct.len(), ids.len(), "every id once");
}
