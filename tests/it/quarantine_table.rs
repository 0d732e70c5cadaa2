//! Delta bronze: `_quarantine/<dataset>` is a Delta table of its own, committed with the same `txn` (app id,
//! batch id) as the batch's data commit; a crash between the two commits is made to agree by recovery, so the
//! quarantine rows count once. Read back with delta-rs' Python package (`deltalake`).

use std::path::Path;
use std::process::Command;

use crate::common::data::sales_csv;
use crate::common::*;

/// Reads column `argv[2]` of a Delta table with delta-rs (its DataFusion engine; no pyarrow needed): prints
/// `{"version": .., "rows": .., "values": [the column's values]}`.
const READ: &str = r#"
import json, sys
from deltalake import DeltaTable, QueryBuilder
dt = DeltaTable(sys.argv[1])
column = sys.argv[2]
t = QueryBuilder().register("t", dt).execute(f"select {column} from t").read_all()
values = t.column(column).to_pylist()
print(json.dumps({"version": dt.version(), "rows": len(values), "values": values}))
"#;

fn delta_rs(table: &Path) -> serde_json::Value {
    // The quarantine's `batch_id`, or the data's `_source_file`.
    let column = if table.to_string_lossy().contains("_quarantine") {
        "batch_id"
    } else {
        "_source_file"
    };
    let out = Command::new("python3")
        .arg("-c")
        .arg(READ)
        .arg(table)
        .arg(column)
        .output()
        .expect("spawn python3");
    assert!(
        out.status.success(),
        "delta-rs failed (needs `pip install deltalake`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json from delta-rs")
}

/// The sorted `batch_id`s of a quarantine read by [`delta_rs`]: each batch's quarantined rows once.
fn batch_ids(read: &serde_json::Value) -> Vec<i64> {
    let mut v: Vec<i64> = read["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|b| b.as_i64().expect("batch_id"))
        .collect();
    v.sort();
    v
}

/// Every `txn` (app id, version) in the table's log, in log order.
fn txns(table: &Path) -> Vec<(String, i64)> {
    let mut names: Vec<_> = std::fs::read_dir(table.join("_delta_log"))
        .expect("log")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        for line in std::fs::read_to_string(&n).expect("read").lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            if let Some(t) = v.get("txn") {
                out.push((
                    t["appId"].as_str().expect("appId").to_string(),
                    t["version"].as_i64().expect("version"),
                ));
            }
        }
    }
    out
}

fn once(w: &Workdir, fail_after: Option<&str>) -> std::process::Output {
    let mut args = w.once_args();
    args.extend(["--table-format".into(), "delta".into()]);
    let mut c = w.cmd();
    c.args(&args);
    if let Some(step) = fail_after {
        c.env("LANDER_FAIL_AFTER", step);
    }
    c.output().expect("spawn")
}

#[cfg(feature = "failpoints")]
#[test]
fn the_quarantine_is_a_delta_table_that_agrees_with_the_data_after_a_crash_between_the_commits() {
    let w = Workdir::new();
    let (data, quarantine) = (
        w.bronze().join("sales"),
        w.bronze().join("_quarantine/sales"),
    );
    // Batch 1: committed cleanly, both tables carry its txn.
    w.land_bytes("sales", "day1.csv", sales_csv(1, 4, 3).as_bytes());
    let out = once(&w, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let q = delta_rs(&quarantine);
    assert_eq!(q["rows"], 3, "{q}");
    assert_eq!(batch_ids(&q), [1, 1, 1]);
    assert_eq!(delta_rs(&data)["rows"], 4);
    let app = txns(&data)[0].0.clone();
    assert_eq!(txns(&quarantine), vec![(app.clone(), 1)]);

    // Batch 2 crashes between the data commit and the quarantine commit, then twice more at every later
    // restart point: the quarantine rows of batch 2 are counted once.
    w.land_bytes("sales", "day2.csv", sales_csv(100, 5, 2).as_bytes());
    let out = once(&w, Some("published"));
    assert!(!out.status.success(), "the failpoint aborts");
    assert_eq!(
        txns(&data).last(),
        Some(&(app.clone(), 2)),
        "data committed"
    );
    assert_eq!(
        txns(&quarantine),
        vec![(app.clone(), 1)],
        "quarantine not yet"
    );
    assert_eq!(
        delta_rs(&quarantine)["rows"],
        3,
        "the unreferenced part is invisible"
    );
    // A restart that crashes right after recovery committed the quarantine: nothing is committed twice.
    let out = once(&w, Some("published"));
    assert!(
        out.status.success(),
        "recovery finished batch 2; nothing new to run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = once(&w, None);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing new"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(txns(&quarantine), vec![(app.clone(), 1), (app.clone(), 2)]);
    assert_eq!(txns(&data), vec![(app.clone(), 1), (app.clone(), 2)]);
    assert_eq!(batch_ids(&delta_rs(&quarantine)), [1, 1, 1, 2, 2]);
    assert_eq!(delta_rs(&data)["rows"], 4 + 5);

    // A crash after both commits (before the sled commit): the same agreement, nothing twice.
    w.land_bytes("sales", "day3.csv", sales_csv(200, 1, 4).as_bytes());
    let out = once(&w, Some("quarantined"));
    assert!(!out.status.success(), "the failpoint aborts");
    let out = once(&w, None);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing new"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        batch_ids(&delta_rs(&quarantine)),
        [1, 1, 1, 2, 2, 3, 3, 3, 3]
    );
    assert_eq!(delta_rs(&data)["rows"], 4 + 5 + 1);
    assert_eq!(txns(&quarantine).len(), 3);

    // A crash before the data commit: neither table has the batch, its parts are removed and it is redone.
    w.land_bytes("sales", "day4.csv", sales_csv(300, 2, 1).as_bytes());
    let out = once(&w, Some("publishing"));
    assert!(!out.status.success(), "the failpoint aborts");
    let out = once(&w, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The redone batch 4 is not batch 4 twice (the rolled-back attempt's part is gone).
    assert_eq!(
        batch_ids(&delta_rs(&quarantine)),
        [1, 1, 1, 2, 2, 3, 3, 3, 3, 4]
    );
    assert_eq!(delta_rs(&data)["rows"], 4 + 5 + 1 + 2);
    // Every quarantine part on disk is referenced: nothing left behind by the crashes.
    let on_disk = parquet_files(&quarantine)
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("_delta_log"))
        .count();
    assert_eq!(
        on_disk,
        txns(&quarantine).len(),
        "one part per batch, all committed"
    );
    let mut verify = vec!["checkpoint".to_string(), "verify".into()];
    verify.extend(w.location_args());
    let refs: Vec<&str> = verify.iter().map(String::as_str).collect();
    assert!(w.run_ok(&refs).starts_with("ok:"));
}

/// SIGKILL at random moments (and an abort between the data and quarantine commits) while `available-now`
/// ingests sales files that each hold bad rows: at the end every bad row is in the quarantine table exactly once
/// (counted per source file, read by delta-rs), every good row in the data table once, and both tables carry
/// the same batches' `txn`s.
#[cfg(feature = "failpoints")]
#[test]
fn quarantine_rows_count_once_when_killed_at_random_moments() {
    const FILES: u64 = 40;
    let w = Workdir::new();
    let mut expected_bad = std::collections::BTreeMap::new();
    let mut good_total = 0;
    for f in 0..FILES {
        let (good, bad) = (1 + f % 4, 1 + f % 3);
        let name = format!("day{f:03}.csv");
        w.land_bytes(
            "sales",
            &name,
            sales_csv(1000 * (f + 1), good, bad).as_bytes(),
        );
        expected_bad.insert(format!("sales/{name}"), bad as usize);
        good_total += good;
    }
    let mut args = w.once_args();
    args[2] = "available-now".into();
    args.extend(["--max-files-per-batch", "2", "--table-format", "delta"].map(String::from));
    let run = |fail_after: Option<&str>| {
        let mut c = w.cmd();
        c.args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(step) = fail_after {
            c.env("LANDER_FAIL_AFTER", step);
        }
        c
    };
    assert!(
        !run(Some("published")).status().expect("run").success(),
        "the failpoint aborts"
    );
    // xorshift: deterministic delays, so a failure can be replayed.
    let mut seed: u64 = 0x5EED_0000_0000_0020;
    let mut killed = 0;
    for _ in 0..12 {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        // Up to 450 ms: on a loaded machine a debug build's start-up (recovery, log replay) alone takes ~200 ms,
        // and a CSV batch now also installs the base run of each new day it touches.
        let delay = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) % 450;
        let mut child = run(None).spawn().expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(20 + delay));
        if child.try_wait().expect("try_wait").is_none() {
            child.kill().expect("kill");
            killed += 1;
        }
        child.wait().expect("wait");
    }
    let (data, quarantine) = (
        w.bronze().join("sales"),
        w.bronze().join("_quarantine/sales"),
    );
    let before = txns(&data).len();
    eprintln!(
        "quarantine: {killed} SIGKILL(s) while running, {before} batch(es) committed by then"
    );
    assert!(before >= 2, "the killed runs made progress");
    assert!(run(None).status().expect("run").success());
    let out = Command::new("python3")
        .arg("-c")
        .arg(READ)
        .arg(&quarantine)
        .arg("source_file")
        .output()
        .expect("spawn python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let mut found = std::collections::BTreeMap::new();
    for f in read["values"].as_array().expect("values") {
        *found
            .entry(f.as_str().expect("source_file").to_string())
            .or_insert(0usize) += 1;
    }
    assert_eq!(
        found, expected_bad,
        "every bad row once in the quarantine table"
    );
    assert_eq!(
        delta_rs(&data)["rows"],
        good_total,
        "every good row once in the data table"
    );
    let versions = |t: &Path| -> Vec<i64> { txns(t).into_iter().map(|(_, v)| v).collect() };
    assert_eq!(
        versions(&quarantine),
        versions(&data),
        "both tables have the same batches"
    );
    let mut verify = vec!["checkpoint".to_string(), "verify".into()];
    verify.extend(w.location_args());
    let refs: Vec<&str> = verify.iter().map(String::as_str).collect();
    assert!(w.run_ok(&refs).starts_with("ok:"));
}

/// `checkpoint verify` with the workdir's locations: (exit code, stdout).
fn verify(w: &Workdir, checkpoint: &Path) -> (Option<i32>, String) {
    let (l, b, c) = (
        w.landing().display().to_string(),
        w.bronze().display().to_string(),
        checkpoint.display().to_string(),
    );
    let out = w.run(&[
        "checkpoint",
        "verify",
        "--landing",
        &l,
        "--bronze",
        &b,
        "--checkpoint",
        &c,
    ]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Asserts that verify exits 1 and that its output holds every one of `needles`.
fn assert_verify_finds(w: &Workdir, needles: &[&str]) {
    let (code, text) = verify(w, &w.checkpoint());
    assert_eq!(code, Some(1), "verify should fail:\n{text}");
    for n in needles {
        assert!(text.contains(n), "verify does not say {n:?}:\n{text}");
    }
}

/// The quarantine parts (not the log) of a quarantine table, sorted.
fn quarantine_parts(table: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = parquet_files(table)
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("_delta_log"))
        .collect();
    v.sort();
    v
}

/// `lander run --mode available-now` (one file per batch, Delta) over `landing` with `checkpoint`.
fn run_with(w: &Workdir, landing: &Path, checkpoint: &Path) {
    let (l, b, c) = (
        landing.display().to_string(),
        w.bronze().display().to_string(),
        checkpoint.display().to_string(),
    );
    w.run_ok(&[
        "run",
        "--mode",
        "available-now",
        "--settle-time",
        "0s",
        "--max-files-per-batch",
        "1",
        "--table-format",
        "delta",
        "--landing",
        &l,
        "--bronze",
        &b,
        "--checkpoint",
        &c,
    ]);
}

/// `checkpoint verify` checks the quarantine table against sled and storage: after real runs on CSVs whose bad
/// rows are quarantined (three batches, then a second job appending to the same tables from its own landing),
/// each defect planted by hand is named and exits 1 — a quarantine part deleted (the first batch's, the last
/// one's, the other job's), the quarantine commit of a batch lost (its log entry removed), the quarantine table
/// deleted, and the table replaced by another job's — and verify is clean again once the defect is undone.
#[test]
fn verify_checks_the_quarantine_log_against_sled_and_storage() {
    let w = Workdir::new();
    for (n, (good, bad)) in [(3, 2), (1, 4), (2, 1)].into_iter().enumerate() {
        w.land_bytes(
            "sales",
            &format!("day{n}.csv"),
            sales_csv(100 * (n as u64 + 1), good, bad).as_bytes(),
        );
    }
    run_with(&w, &w.landing(), &w.checkpoint());
    let quarantine = w.bronze().join("_quarantine/sales");
    assert_eq!(batch_ids(&delta_rs(&quarantine)), [1, 1, 2, 2, 2, 2, 3]);
    let (code, text) = verify(&w, &w.checkpoint());
    assert_eq!(code, Some(0), "{text}");
    let parts = quarantine_parts(&quarantine);
    assert_eq!(parts.len(), 3, "one quarantine part per batch");
    let rel = |p: &Path| {
        p.strip_prefix(w.bronze())
            .expect("in bronze")
            .display()
            .to_string()
    };

    // A deleted part of this checkpoint's batches: missing from bronze.
    for part in [&parts[0], &parts[2]] {
        let kept = std::fs::read(part).expect("read part");
        std::fs::remove_file(part).expect("rm part");
        assert_verify_finds(&w, &[&format!("{}: missing from bronze", rel(part))]);
        std::fs::write(part, kept).expect("restore part");
        assert_eq!(verify(&w, &w.checkpoint()).0, Some(0));
    }

    // A lost quarantine commit: the log's last entry (batch 3's commit) removed.
    let last = quarantine.join(format!("_delta_log/{:020}.json", txns(&quarantine).len()));
    let kept = std::fs::read(&last).expect("read log entry");
    std::fs::remove_file(&last).expect("rm log entry");
    assert_verify_finds(
        &w,
        &[
            "has no txn of batch 3",
            &format!(
                "{}: quarantined by batch 3 but not referenced by the quarantine delta log",
                rel(&parts[2])
            ),
        ],
    );
    std::fs::write(&last, kept).expect("restore log entry");
    assert_eq!(verify(&w, &w.checkpoint()).0, Some(0));

    // A second job (its own checkpoint and landing) appends to the same tables; a part of its batch deleted:
    // this checkpoint's verify finds the quarantine log referencing a file that is gone.
    let (landing2, other) = (w.path().join("landing2"), w.path().join("state2"));
    std::fs::create_dir_all(landing2.join("sales")).expect("mkdir");
    std::fs::write(landing2.join("sales/day9.csv"), sales_csv(900, 1, 2)).expect("write");
    run_with(&w, &landing2, &other);
    assert_eq!(verify(&w, &w.checkpoint()).0, Some(0));
    let theirs = quarantine_parts(&quarantine)
        .into_iter()
        .find(|p| !parts.contains(p))
        .expect("the other job's part");
    let kept = std::fs::read(&theirs).expect("read part");
    std::fs::remove_file(&theirs).expect("rm part");
    assert_verify_finds(
        &w,
        &[&format!(
            "{}: referenced by the delta log of _quarantine/sales but missing from bronze",
            rel(&theirs)
        )],
    );
    std::fs::write(&theirs, kept).expect("restore part");
    assert_eq!(verify(&w, &w.checkpoint()).0, Some(0));

    // The quarantine table deleted, then replaced by another job's (a third checkpoint, one more bad file).
    std::fs::rename(&quarantine, w.path().join("saved-quarantine")).expect("move it away");
    assert_verify_finds(
        &w,
        &[
            "batch 1 of sales quarantined rows",
            "no quarantine delta table _quarantine/sales",
            "which no longer exists",
        ],
    );
    let third = w.path().join("state3");
    run_with(&w, &landing2, &third);
    assert!(
        quarantine.join("_delta_log").is_dir(),
        "the third job created a quarantine table"
    );
    assert_eq!(
        verify(&w, &third).0,
        Some(0),
        "its checkpoint agrees with its table"
    );
    assert_verify_finds(
        &w,
        &[
            "has no txn of batch 1",
            "has no txn of batch 2",
            "(deleted and recreated?)",
        ],
    );
}
