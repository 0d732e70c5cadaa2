//! Faulty bronze storage, injected with `LANDER_FAIL_STORE` (feature `failpoints`; the wrapper sees
//! only the `ObjectStore` trait, so it serves any backend): a failed batch commits nothing and leaves no Parquet
//! visible; `once` exits 1 and the next run recovers; `micro-batch` and `continuous` roll back and retry with
//! backoff until the fault clears; `checkpoint verify` is clean afterwards. Tests of the Parquet protocol's own
//! steps (rename on publish, rollback of published parts) say `--table-format parquet`; their Delta equivalents
//! follow them.

#![cfg(feature = "failpoints")]

use std::process::Stdio;
use std::time::Duration;

use crate::common::data::hour_events;
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

/// Lands the 2011 GH Archive hour (old schema; the genuine hour or its bundled prefix) as
/// `gharchive/2011-02-15-0.json.gz`.
fn land_2011_hour(w: &Workdir) {
    w.land(
        &gharchive("2011-02-15-0.json.gz"),
        "gharchive",
        "2011-02-15-0.json.gz",
    );
}

/// The distinct events of the 2011 hour that [`land_2011_hour`] lands, computed from its lines.
fn events_2011() -> usize {
    hour_events(&["2011-02-15-0.json.gz"])
}

/// Whether the 2011 hour can be had (genuine or bundled); prints `SKIPPED` if not.
fn have_2011() -> bool {
    require_samples(&["gharchive/2011-02-15-0.json.gz"])
}

/// `lander run --mode once` in `w` with `env` set; the output whatever the status.
fn once_with(w: &Workdir, env: &[(&str, &str)]) -> std::process::Output {
    once_in(w, "delta", env)
}

/// `lander run --mode once --table-format <format>` in `w` with `env` set; the output whatever the status.
fn once_in(w: &Workdir, format: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut args = w.once_args();
    args.extend(["--table-format".into(), format.into()]);
    let mut cmd = w.cmd();
    cmd.args(&args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("spawn")
}

/// Asserts a failed run (exit 1) whose stderr says `what`, with nothing marked processed.
fn assert_failed_cleanly(w: &Workdir, out: &std::process::Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.to_lowercase().contains(what), "{stderr}");
    assert!(checkpoint_paths(w).is_empty(), "nothing marked processed");
}

#[test]
fn once_fails_cleanly_on_a_write_fault_and_the_next_run_recovers() {
    if !have_2011() {
        return;
    }
    let w = Workdir::new();
    land_2011_hour(&w);
    // Staging fails on its first write; then publishing fails on its first rename (Parquet publishes by rename).
    for fault in ["write:1-1000", "rename:1-1"] {
        let out = once_in(&w, "parquet", &[("LANDER_FAIL_STORE", fault)]);
        assert_failed_cleanly(&w, &out, "injected storage fault");
    }
    w.run_once(&["--table-format", "parquet"]);
    assert_eq!(count_rows(&w.bronze().join("gharchive")), events_2011());
    assert!(parquet_files(&w.bronze().join("_staging")).is_empty());
    assert_eq!(checkpoint_paths(&w), vec!["gharchive/2011-02-15-0.json.gz"]);
    verify_ok(&w);
}

/// Delta has no rename: a fault on each write of a batch in turn (its parts, the table's version 0, the batch's
/// commit) fails the run cleanly, leaves no part on disk, and the next run lands every row once.
#[test]
fn delta_a_fault_on_any_write_of_a_batch_fails_cleanly_and_the_next_run_recovers() {
    if !have_2011() {
        return;
    }
    let mut faulted = 0;
    for n in 1..=40 {
        let w = Workdir::new();
        land_2011_hour(&w);
        let fault = format!("write:{n}-{n}");
        let out = once_in(&w, "delta", &[("LANDER_FAIL_STORE", &fault)]);
        if out.status.success() {
            // The batch makes fewer than n writes: every one of them was faulted once.
            break;
        }
        faulted += 1;
        assert_failed_cleanly(&w, &out, "injected storage fault");
        assert!(
            parquet_files(&w.bronze().join("gharchive")).is_empty(),
            "{fault}: parts left behind: {:?}",
            parquet_files(&w.bronze())
        );
        w.run_once(&["--table-format", "delta"]);
        assert_eq!(
            count_rows(&w.bronze().join("gharchive")),
            events_2011(),
            "{fault}"
        );
        assert_eq!(checkpoint_paths(&w), vec!["gharchive/2011-02-15-0.json.gz"]);
        verify_ok(&w);
    }
    // The batch's commit on a local table is written by delta_kernel's engine through a store of its own, which
    // the fault wrapper wraps too (`table::kernel::engine`).
    assert!(
        faulted >= 3,
        "a part, version 0 and the commit: {faulted} write(s)"
    );
}

/// The hours [`daemon_recovers`] lands (bundled prefixes on a plain clone).
const DAEMON_HOURS: [&str; 2] = [
    "gharchive/2011-02-15-0.json.gz",
    "gharchive/2015-01-01-0.json.gz",
];

fn daemon_recovers(mode: &str, fault: &str, format: &str) {
    let w = Workdir::new();
    std::fs::create_dir_all(w.landing().join("gharchive")).expect("mkdir");
    let mut args: Vec<String> = vec!["run".into(), "--mode".into(), mode.into()];
    args.extend(w.location_args());
    args.extend(
        [
            "--table-format",
            format,
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
    land_2011_hour(&w);
    w.land(
        &gharchive("2015-01-01-0.json.gz"),
        "gharchive",
        "2015-01-01-0.json.gz",
    );
    let expected = hour_events(&["2011-02-15-0.json.gz", "2015-01-01-0.json.gz"]);
    let landed = wait_until(Duration::from_secs(40), || {
        count_rows(&w.bronze().join("gharchive")) == expected
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
    if !require_samples(&DAEMON_HOURS) {
        return;
    }
    daemon_recovers("continuous", "write:1-3", "delta");
}

#[test]
fn micro_batch_retries_after_a_fault_in_the_middle_of_publishing() {
    if !require_samples(&DAEMON_HOURS) {
        return;
    }
    daemon_recovers("micro-batch", "rename:2-2", "parquet");
}

#[test]
fn micro_batch_retries_after_a_fault_in_the_middle_of_a_delta_batch() {
    if !require_samples(&DAEMON_HOURS) {
        return;
    }
    // The second and third writes: past the first part, into the table's creation or commit.
    daemon_recovers("micro-batch", "write:2-3", "delta");
}

/// Unmounts a tmpfs when the test ends, however it ends.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `512k`) at `dir`; None (after saying why) when this user may not mount.
    fn mount(dir: &std::path::Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).expect("mkdir");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount(8) exists");
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Self(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let st = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("mount");
        assert!(st.success(), "remount {size}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A bronze disk that fills up mid-batch (a real tmpfs too small for the batch): the run fails cleanly with
/// "No space left on device", nothing is marked processed and no Parquet is visible; once space is freed the
/// next run lands everything exactly once and `checkpoint verify` is clean.
#[test]
fn a_full_bronze_disk_fails_the_batch_cleanly_and_the_next_run_recovers() {
    if !require_samples(&["gharchive/2015-01-01-0.json.gz"]) {
        return;
    }
    let w = Workdir::new();
    let Some(disk) = Tmpfs::mount(&w.bronze(), "256k") else {
        return;
    };
    w.land(
        &gharchive("2015-01-01-0.json.gz"),
        "gharchive",
        "2015-01-01-0.json.gz",
    );
    let out = once_with(&w, &[]);
    assert_failed_cleanly(&w, &out, "no space left on device");
    assert!(parquet_files(&w.bronze().join("gharchive")).is_empty());

    disk.resize("64m");
    w.run_once(&[]);
    assert_eq!(
        count_rows(&w.bronze().join("gharchive")),
        hour_events(&["2015-01-01-0.json.gz"])
    );
    assert!(parquet_files(&w.bronze().join("_staging")).is_empty());
    assert_eq!(checkpoint_paths(&w), vec!["gharchive/2015-01-01-0.json.gz"]);
    verify_ok(&w);
}

/// The checkpoint store fails to commit (after the batch's Parquet was published): `once` exits 1, takes the
/// published parts back before exiting (nothing of the batch is visible, nothing is marked processed), and the
/// next run lands everything exactly once. `micro-batch` retries until the checkpoint works again.
#[test]
fn a_failing_checkpoint_commit_takes_the_published_batch_back() {
    if !have_2011() {
        return;
    }
    let w = Workdir::new();
    land_2011_hour(&w);
    let out = once_in(&w, "parquet", &[("LANDER_FAIL_CHECKPOINT", "commit:1-1")]);
    assert_failed_cleanly(&w, &out, "injected checkpoint fault");
    assert!(
        parquet_files(&w.bronze()).is_empty(),
        "published parts taken back: {:?}",
        parquet_files(&w.bronze())
    );
    w.run_once(&["--table-format", "parquet"]);
    assert_eq!(count_rows(&w.bronze().join("gharchive")), events_2011());
    verify_ok(&w);

    // micro-batch: the first two commits fail, the third goes through; every row once.
    let w = Workdir::new();
    std::fs::create_dir_all(w.landing().join("gharchive")).expect("mkdir");
    let mut args: Vec<String> = vec!["run".into(), "--mode".into(), "micro-batch".into()];
    args.extend(w.location_args());
    args.extend(
        [
            "--table-format",
            "parquet",
            "--settle-time",
            "0s",
            "--interval",
            "200ms",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let mut child = w
        .cmd()
        .args(&args)
        .env("LANDER_FAIL_CHECKPOINT", "commit:1-2")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(w.path().join("log")).expect("log"))
        .spawn()
        .expect("spawn");
    land_2011_hour(&w);
    let mut list = vec!["checkpoint".to_string(), "list".into(), "--json".into()];
    list.extend(w.location_args());
    let list: Vec<&str> = list.iter().map(String::as_str).collect();
    // Not checkpoint_paths: the checkpoint does not exist until the daemon opened it.
    let landed = wait_until(Duration::from_secs(60), || {
        let out = w.run(&list);
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("gharchive/2011-02-15-0.json.gz")
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().expect("wait");
    let log = std::fs::read_to_string(w.path().join("log")).unwrap_or_default();
    assert!(landed, "never committed; log:\n{log}");
    assert_eq!(
        log.matches("injected checkpoint fault").count(),
        2,
        "two failed commits, then success:\n{log}"
    );
    assert_eq!(count_rows(&w.bronze().join("gharchive")), events_2011());
    assert!(parquet_files(&w.bronze().join("_staging")).is_empty());
    verify_ok(&w);
}

/// Delta: the checkpoint fails to commit after the table committed the batch. The table is the truth: the batch
/// is not taken back, `once` exits 1, and the batch counts once: its rows are in the table exactly once (one
/// commit), the checkpoint records it (finished from the intent) and the next run reads nothing again.
/// `micro-batch` ends the same way: its rollback finishes the records instead of reading the files again.
#[test]
fn delta_a_failing_checkpoint_commit_after_the_table_commit_counts_the_batch_once() {
    if !have_2011() {
        return;
    }
    let commits = |w: &Workdir| {
        std::fs::read_dir(w.bronze().join("gharchive/_delta_log"))
            .expect("log")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
            })
            .count()
    };
    let w = Workdir::new();
    land_2011_hour(&w);
    let out = once_in(&w, "delta", &[("LANDER_FAIL_CHECKPOINT", "commit:1-1")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("injected checkpoint fault"), "{stderr}");
    assert_eq!(count_rows(&w.bronze().join("gharchive")), events_2011());
    let out = w.run_once(&["--table-format", "delta"]);
    assert!(
        out.contains("nothing new"),
        "the committed batch was read again: {out}"
    );
    assert_eq!(count_rows(&w.bronze().join("gharchive")), events_2011());
    assert_eq!(commits(&w), 2, "version 0 and one commit of the batch");
    assert_eq!(checkpoint_paths(&w), vec!["gharchive/2011-02-15-0.json.gz"]);
    verify_ok(&w);

    let w = Workdir::new();
    std::fs::create_dir_all(w.landing().join("gharchive")).expect("mkdir");
    let mut args: Vec<String> = vec!["run".into(), "--mode".into(), "micro-batch".into()];
    args.extend(w.location_args());
    args.extend(
        [
            "--table-format",
            "delta",
            "--settle-time",
            "0s",
            "--interval",
            "200ms",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let mut child = w
        .cmd()
        .args(&args)
        .env("LANDER_FAIL_CHECKPOINT", "commit:1-1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(w.path().join("log")).expect("log"))
        .spawn()
        .expect("spawn");
    land_2011_hour(&w);
    let mut list = vec!["checkpoint".to_string(), "list".into(), "--json".into()];
    list.extend(w.location_args());
    let list: Vec<&str> = list.iter().map(String::as_str).collect();
    let landed = wait_until(Duration::from_secs(60), || {
        let out = w.run(&list);
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("gharchive/2011-02-15-0.json.gz")
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().expect("wait");
    let log = std::fs::read_to_string(w.path().join("log")).unwrap_or_default();
    assert!(landed, "never committed; log:\n{log}");
    // The failed commit is not retried by reading the files again: the rollback finds the batch in the table and
    // finishes its records from the intent.
    assert!(log.contains("injected checkpoint fault"), "{log}");
    assert!(
        log.contains(
            "finished the checkpoint records of a batch that the delta table had committed"
        ),
        "{log}"
    );
    assert_eq!(count_rows(&w.bronze().join("gharchive")), events_2011());
    assert_eq!(commits(&w), 2, "version 0 and one commit of the batch");
    verify_ok(&w);
}
