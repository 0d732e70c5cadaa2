//! Faulty bronze storage (issue 11), injected with `LANDER_FAIL_STORE` (feature `failpoints`; the wrapper sees
//! only the `ObjectStore` trait, so it serves any backend): a failed batch commits nothing and leaves no Parquet
//! visible; `once` exits 1 and the next run recovers; `micro-batch` and `continuous` roll back and retry with
//! backoff until the fault clears; `checkpoint verify` is clean afterwards.

#![cfg(feature = "failpoints")]

use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

fn verify_ok(w: &Workdir) {
    let mut args = vec!["checkpoint".to_string(), "verify".into()];
    args.extend(w.location_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = w.run_ok(&refs);
    assert!(out.starts_with("ok:"), "{out}");
}

fn checkpoint_paths(w: &Workdir) -> Vec<String> {
    let mut args = vec!["checkpoint".to_string(), "list".into(), "--json".into()];
    args.extend(w.location_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let v: serde_json::Value = serde_json::from_str(&w.run_ok(&refs)).expect("json");
    v.as_array()
        .expect("array")
        .iter()
        .map(|f| f["path"].as_str().expect("path").to_string())
        .collect()
}

#[test]
fn once_fails_cleanly_on_a_write_fault_and_the_next_run_recovers() {
    let Some(_) = require_shared_data() else {
        return;
    };
    let w = Workdir::new();
    w.land(
        &gharchive("2011-02-15-0.json.gz"),
        "gharchive",
        "2011-02-15-0.json.gz",
    );
    let mut args: Vec<String> = ["run", "--mode", "once", "--settle-time", "0s"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(w.location_args());
    // Staging fails on its first write; then publishing fails on its first rename.
    for fault in ["write:1-1000", "rename:1-1"] {
        let out = w
            .cmd()
            .args(&args)
            .env("LANDER_FAIL_STORE", fault)
            .output()
            .expect("spawn");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{fault}: {stderr}");
        assert!(stderr.contains("injected storage fault"), "{stderr}");
        assert!(checkpoint_paths(&w).is_empty(), "nothing marked processed");
    }
    w.run_once(&[]);
    assert_eq!(count_rows(&w.bronze().join("gharchive")), 1639);
    assert!(parquet_files(&w.bronze().join("_staging")).is_empty());
    assert_eq!(checkpoint_paths(&w), vec!["gharchive/2011-02-15-0.json.gz"]);
    verify_ok(&w);
}

fn daemon_recovers(mode: &str, fault: &str) {
    let w = Workdir::new();
    std::fs::create_dir_all(w.landing().join("gharchive")).expect("mkdir");
    let mut args: Vec<String> = vec!["run".into(), "--mode".into(), mode.into()];
    args.extend(w.location_args());
    args.extend(
        [
            "--settle-time",
            "0s",
            "--interval",
            "200ms",
            "--poll-interval",
            "200ms",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let child = w
        .cmd()
        .args(&args)
        .env("LANDER_FAIL_STORE", fault)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(300));
    w.land(
        &gharchive("2011-02-15-0.json.gz"),
        "gharchive",
        "2011-02-15-0.json.gz",
    );
    w.land(
        &gharchive("2012-02-15-0.json.gz"),
        "gharchive",
        "2012-02-15-0.json.gz",
    );
    let landed = wait_until(Duration::from_secs(40), || {
        count_rows(&w.bronze().join("gharchive")) == 1639 + 4074
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(landed, "{mode} did not recover from {fault}:\n{stderr}");
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("batch failed: nothing of it is committed; rolling it back and retrying"),
        "{stderr}"
    );
    assert!(stderr.contains("injected storage fault"), "{stderr}");
    assert!(parquet_files(&w.bronze().join("_staging")).is_empty());
    let keys = string_column(&w.bronze().join("gharchive"), "event_key");
    let distinct: std::collections::HashSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "no duplicates after retries");
    verify_ok(&w);
}

#[test]
fn continuous_retries_with_backoff_until_a_write_fault_clears() {
    let Some(_) = require_shared_data() else {
        return;
    };
    daemon_recovers("continuous", "write:1-3");
}

#[test]
fn micro_batch_retries_after_a_fault_in_the_middle_of_publishing() {
    let Some(_) = require_shared_data() else {
        return;
    };
    daemon_recovers("micro-batch", "rename:2-2");
}
