//! SIGKILL between the parts' upload and the Delta log write: lander writes a batch's parts straight
//! to their final names, then the commit. Each run here is killed with a real SIGKILL the moment a new part
//! appears in the table directory, which lands before the commit (the intent is flushed to sled in between)
//! most of the time. The next run recovers: every event once, one commit per batch, and no part the log does
//! not reference. The failpoint variant on every backend is `delta_conformance::*::crash_before_the_log_write_*`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::data::split_sample;
use crate::common::delta::{assert_table_exact, delta_rs, expected_ids, files_on_disk};
use crate::common::*;

/// Files landed one per run, each run killed.
const KILLS: usize = 10;

/// Commit files in the table's log.
fn commits(table: &Path) -> usize {
    std::fs::read_dir(table.join("_delta_log"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

fn once_delta(w: &Workdir) -> Vec<String> {
    let mut a = w.once_args();
    a.extend(["--table-format".into(), "delta".into()]);
    a
}

#[test]
fn sigkill_between_the_parts_upload_and_the_log_write_recovers_exactly_once() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let (files, ids) = split_sample(KILLS + 1);
    let w = Workdir::new();
    let table = w.bronze().join("gharchive");
    let args = once_delta(&w);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    // A clean first batch creates the table.
    w.land_bytes("gharchive", &files[0].0, &files[0].1);
    w.run_ok(&refs);
    let (mut in_window, mut committed) = (0, 0);
    for (name, bytes) in &files[1..] {
        w.land_bytes("gharchive", name, bytes);
        let before: BTreeSet<String> = files_on_disk(&table).into_iter().collect();
        let commits_before = commits(&table);
        let mut child = w.cmd().args(&refs).spawn().expect("spawn");
        let started = Instant::now();
        // Poll for the batch's first part at its final name, then SIGKILL at once.
        let appeared = loop {
            if std::fs::metadata(&table).is_ok()
                && walk_parts(&table).iter().any(|p| !before.contains(p))
            {
                break true;
            }
            if child.try_wait().expect("try_wait").is_some()
                || started.elapsed() > Duration::from_secs(30)
            {
                break false;
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        let _ = child.kill();
        let status = child.wait().expect("wait");
        let advanced = commits(&table) - commits_before;
        assert!(advanced <= 1, "one run, at most one commit");
        committed += advanced;
        if appeared && !status.success() && advanced == 0 {
            in_window += 1;
        }
    }
    eprintln!(
        "{in_window} of {KILLS} SIGKILLs landed after a part was stored and before its commit"
    );
    assert!(
        in_window * 2 >= KILLS,
        "most kills land between the upload and the log write: {in_window}/{KILLS}"
    );
    // The killed batches' parts are stored and unreferenced until the recovery.
    let referenced = delta_rs(&table, None).files.len();
    assert!(
        files_on_disk(&table).len() > referenced,
        "orphans before recovery"
    );
    w.run_ok(&refs);
    // Every event once; the stored parts are exactly those the log references (no orphan of a killed batch).
    let r = assert_table_exact(&table, &expected_ids(&ids));
    // The first batch, the killed runs that got their commit out, and the last run's one batch of everything
    // else: a batch killed after its commit is not committed again by the recovery.
    let expected = 1 + committed + usize::from(committed < KILLS);
    assert_eq!(r.version, expected as u64);
    assert_eq!(commits(&table), expected + 1);
    let mut verify = vec!["checkpoint".to_string(), "verify".into()];
    verify.extend(w.location_args());
    let refs: Vec<&str> = verify.iter().map(String::as_str).collect();
    let out = w.run_ok(&refs);
    assert!(out.starts_with("ok:"), "{out}");
}

/// Data files below the table root (relative paths), the log excluded, including ones still being written.
fn walk_parts(table: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![table.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "_delta_log" {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if name.ends_with(".parquet") {
                out.push(p.strip_prefix(table).expect("below").display().to_string());
            }
        }
    }
    out
}
