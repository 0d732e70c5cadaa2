//! `table_format = "delta"`: bronze datasets are Delta tables, read back by delta-rs' Python package
//! (`deltalake`) and DuckDB's delta extension; time travel, concurrent writers with different checkpoints, log
//! checkpoints, and an abort after every commit step. Also, for `parquet`, part names that never collide across
//! checkpoints.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::common::data::split_sample;
use crate::common::delta::{
    assert_table_exact, delta_rs, duckdb_delta, expected_ids, expected_of, files_on_disk, found,
    relative, Expected,
};
use crate::common::*;

/// Copies directory `from` to `to` (a checkpoint no process holds).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).expect("copy");
        }
    }
}

fn delta_once(w: &Workdir, extra: &[&str]) -> String {
    let mut a = vec!["--table-format", "delta"];
    a.extend(extra);
    w.run_once(&a)
}

#[test]
fn all_gharchive_samples_land_as_one_delta_commit_read_by_delta_rs_and_duckdb() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let hours = gharchive_hours();
    let w = Workdir::new();
    let mut paths = Vec::new();
    for f in &hours {
        w.land(&gharchive(f), "gharchive", f);
        paths.push(gharchive(f));
    }
    let out = delta_once(&w, &[]);
    assert!(out.contains("gharchive: batch 1 committed"), "{out}");
    let table = w.bronze().join("gharchive");
    let expected = expected_of(&paths);
    let r = assert_table_exact(&table, &expected);
    // Version 0 creates the table, version 1 is the batch: one commit per batch.
    assert_eq!(r.version, 1);
    assert_eq!(r.protocol, (1, 2), "the lowest protocol every reader reads");
    assert_eq!(r.partitions, ["year", "month", "day"]);
    // Every file sits in the hive directory its partition values name.
    for f in relative(&table, &r.files) {
        assert!(
            f.starts_with("year=") && f.contains("/month=") && f.contains("/day="),
            "{f}"
        );
    }
    let (rows, keys) = duckdb_delta(&table);
    assert_eq!(
        (rows, keys),
        (expected.total as u64, expected.total as u64),
        "DuckDB's delta_scan"
    );
    // The commit names its inputs, and the txn its batch.
    let log = std::fs::read_to_string(table.join("_delta_log/00000000000000000001.json"))
        .expect("commit 1");
    for f in &hours {
        assert!(
            log.contains(&format!("\"path\":\"gharchive/{f}\"")),
            "{f} in {log}"
        );
    }
    assert!(
        log.contains("\"txn\":{\"appId\":\"lander-gharchive-"),
        "{log}"
    );
    // Each add's stats (a JSON string) count its rows and bound its event times; the counts add up.
    let mut stat_rows = 0;
    for l in log.lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("json line");
        if let Some(add) = v.get("add") {
            let st: serde_json::Value =
                serde_json::from_str(add["stats"].as_str().expect("stats")).expect("stats json");
            stat_rows += st["numRecords"].as_u64().expect("numRecords");
            let (lo, hi) = (
                st["minValues"]["created_at"].as_str().expect("min"),
                st["maxValues"]["created_at"].as_str().expect("max"),
            );
            let day = |t: &str| t[..10].replace('-', "");
            let pv = &add["partitionValues"];
            let part_day = format!(
                "{}{}{}",
                pv["year"].as_str().expect("year"),
                pv["month"].as_str().expect("month"),
                pv["day"].as_str().expect("day")
            );
            assert!(
                lo <= hi && day(lo) == part_day && day(hi) == part_day,
                "{l}"
            );
        }
    }
    assert_eq!(stat_rows, expected.total as u64);
    // A second run has nothing new and makes no commit.
    let again = delta_once(&w, &[]);
    assert!(!again.contains("committed"), "{again}");
    assert_eq!(delta_rs(&table, None).version, 1);
}

#[test]
fn time_travel_to_version_n_gives_the_state_after_batch_n() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let hours = gharchive_hours();
    let w = Workdir::new();
    let mut landed = Vec::new();
    let mut after: Vec<Expected> = Vec::new();
    let old = w.path().join("state-before-last-batch");
    for (i, f) in hours.iter().enumerate() {
        if i + 1 == hours.len() {
            copy_dir(&w.checkpoint(), &old);
        }
        w.land(&gharchive(f), "gharchive", f);
        landed.push(gharchive(f));
        delta_once(&w, &[]);
        after.push(expected_of(&landed));
    }
    // `checkpoint verify` checks the checkpoint against the log: clean for the live checkpoint; a checkpoint
    // restored from before the last batch is behind the table, and verify says so.
    let verify = |state: &Path| {
        let mut args = vec!["checkpoint".to_string(), "verify".into()];
        args.extend(w.location_args());
        let c = args
            .iter()
            .position(|a| a == "--checkpoint")
            .expect("--checkpoint")
            + 1;
        args[c] = state.display().to_string();
        w.cmd().args(&args).output().expect("spawn")
    };
    let ok = verify(&w.checkpoint());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let behind = verify(&old);
    let text = String::from_utf8_lossy(&behind.stdout);
    assert_eq!(behind.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("has batch {} of this checkpoint", hours.len())),
        "{text}"
    );
    let table = w.bronze().join("gharchive");
    assert_eq!(delta_rs(&table, None).version, hours.len() as u64);
    for (n, expected) in after.iter().enumerate() {
        let r = delta_rs(&table, Some(n as u64 + 1));
        assert_eq!(
            &found(&r.keys),
            expected,
            "version {} = after batch {}",
            n + 1,
            n + 1
        );
    }
}

/// Two jobs with their own landing and checkpoint append to one table at the same time, 50 `once` runs of one
/// file each: every row of both survives, every batch is one commit (one log file per version, each job's txn
/// versions 1..=50 once each), no commit is lost; about 9 s.
#[test]
fn two_checkpoints_appending_concurrently_keep_all_rows_of_both() {
    if !require_samples(&["gharchive/2015-01-01-0.json.gz"]) {
        return;
    }
    use std::sync::atomic::Ordering::Relaxed;
    const BATCHES: usize = 50;
    let (files, ids) = split_sample(2 * BATCHES);
    let bronze = Workdir::new();
    let jobs: Vec<Workdir> = (0..2).map(|_| Workdir::new()).collect();
    let races = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for (j, w) in jobs.iter().enumerate() {
            let (files, races) = (&files, &races);
            let bronze = bronze.bronze();
            s.spawn(move || {
                for (name, bytes) in files.iter().skip(j).step_by(2) {
                    w.land_bytes("gharchive", name, bytes);
                    let mut args = w.once_args();
                    let b = args.iter().position(|a| a == "--bronze").expect("--bronze") + 1;
                    args[b] = bronze.display().to_string();
                    args.extend(["--table-format".to_string(), "delta".into()]);
                    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                    let out = w
                        .cmd()
                        .env("RUST_LOG", "lander=debug")
                        .args(&refs)
                        .output()
                        .expect("spawn");
                    assert_success(&out, &refs, w.path());
                    let log = String::from_utf8_lossy(&out.stderr);
                    races.fetch_add(log.matches("lost the race").count(), Relaxed);
                }
            });
        }
    });
    // How often a commit found its version taken (about 5 in 100 here): printed, not asserted, since the
    // interleaving is up to the scheduler.
    eprintln!("commits that lost the version race and retried: {races:?}");
    let table = bronze.bronze().join("gharchive");
    let r = assert_table_exact(&table, &expected_ids(&ids));
    // `split_sample` may make a file or two fewer than asked (whole chunks of lines): one batch per file.
    assert!(files.len() > 2 * BATCHES - 3, "{} files", files.len());
    assert_eq!(
        r.version,
        files.len() as u64,
        "one commit per batch, none lost"
    );
    // Every version is one commit file, and each job's txn versions are its batches 1..=n, each once.
    let mut txns: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for v in 0..=r.version {
        let log = std::fs::read_to_string(table.join(format!("_delta_log/{v:020}.json")))
            .unwrap_or_else(|e| panic!("commit {v}: {e}"));
        for l in log.lines() {
            let a: serde_json::Value = serde_json::from_str(l).expect("json line");
            if let Some(t) = a.get("txn") {
                let app = t["appId"].as_str().expect("appId").to_string();
                txns.entry(app)
                    .or_default()
                    .push(t["version"].as_u64().expect("version"));
            }
        }
    }
    assert_eq!(txns.len(), 2, "one txn app id per checkpoint: {txns:?}");
    for (j, batches) in txns.values().enumerate() {
        let n = batches.len() as u64;
        assert_eq!(
            batches,
            &(1..=n).collect::<Vec<_>>(),
            "job {j}: {batches:?}"
        );
    }
    assert_eq!(txns.values().map(Vec::len).sum::<usize>(), files.len());
    // Each checkpoint is consistent with the table: the other job's parts are in the log, not orphans.
    for w in &jobs {
        let mut args = vec!["checkpoint".to_string(), "verify".into()];
        args.extend(w.location_args());
        let b = args.iter().position(|a| a == "--bronze").expect("--bronze") + 1;
        args[b] = bronze.bronze().display().to_string();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = w.run_ok(&refs);
        assert!(out.starts_with("ok:"), "{out}");
    }
}

/// An abort right after each commit step, then a normal run: the table ends exactly as after a clean run, with
/// no unreferenced part, and `checkpoint verify` is clean.
#[test]
fn abort_after_every_delta_commit_step_recovers_exactly() {
    if !require_samples(&["gharchive/2015-01-01-0.json.gz"]) {
        return;
    }
    let (files, ids) = split_sample(14);
    let expected = expected_ids(&ids);
    let w = Workdir::new();
    let mut it = files.iter();
    // A clean first batch creates the table.
    for (name, bytes) in it.by_ref().take(2) {
        w.land_bytes("gharchive", name, bytes);
    }
    delta_once(&w, &[]);
    let steps = [
        "intent",
        "staged",
        "runs",
        "publishing",
        "published",
        "committed",
    ];
    for step in steps {
        for (name, bytes) in it.by_ref().take(2) {
            w.land_bytes("gharchive", name, bytes);
        }
        let mut a = w.once_args();
        a.extend(["--table-format".into(), "delta".into()]);
        let out = w
            .cmd()
            .args(&a)
            .env("LANDER_FAIL_AFTER", step)
            .output()
            .expect("spawn");
        assert!(!out.status.success(), "{step}: the failpoint aborts");
        if step == "staged" {
            // Parts are on disk at their final names, but no commit references them.
            let r = delta_rs(&w.bronze().join("gharchive"), None);
            assert!(files_on_disk(&w.bronze().join("gharchive")).len() > r.files.len());
        }
    }
    delta_once(&w, &[]);
    let table = w.bronze().join("gharchive");
    let r = assert_table_exact(&table, &expected);
    // The batches that reached the table commit ("published", "committed") are not committed twice.
    let commits = std::fs::read_dir(table.join("_delta_log"))
        .expect("log")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
        })
        .count() as u64;
    assert_eq!(commits, r.version + 1);
    let mut args = vec!["checkpoint".to_string(), "verify".into()];
    args.extend(w.location_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = w.run_ok(&refs);
    assert!(out.starts_with("ok:"), "{out}");
}

/// With `delta_checkpoint_interval = 2`, the log gets a checkpoint every second version; delta-rs, DuckDB and
/// lander itself (its next commits and its rerun) read the table through it.
#[test]
fn log_checkpoints_are_written_and_read_by_every_reader() {
    if !require_samples(&["gharchive/2015-01-01-0.json.gz"]) {
        return;
    }
    let (files, ids) = split_sample(5);
    let w = Workdir::new();
    for (name, bytes) in &files {
        w.land_bytes("gharchive", name, bytes);
        let mut a = w.once_args();
        a.extend(["--table-format".into(), "delta".into()]);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = w
            .cmd()
            .args(&refs)
            .env("LANDER_DELTA_CHECKPOINT_INTERVAL", "2")
            .output()
            .expect("spawn");
        assert_success(&out, &refs, w.path());
    }
    let log = w.bronze().join("gharchive/_delta_log");
    for v in [2, 4] {
        assert!(
            log.join(format!("{v:020}.checkpoint.parquet")).is_file(),
            "checkpoint at version {v}"
        );
    }
    let last: serde_json::Value = serde_json::from_slice(
        &std::fs::read(log.join("_last_checkpoint")).expect("_last_checkpoint"),
    )
    .expect("json");
    assert_eq!(last["version"], 4);
    let expected = expected_ids(&ids);
    let table = w.bronze().join("gharchive");
    let r = assert_table_exact(&table, &expected);
    assert_eq!(r.version, 5);
    let (rows, _) = duckdb_delta(&table);
    assert_eq!(rows, expected.total as u64);
    // Reading the checkpoint back, lander still knows its txn: a rerun commits nothing.
    let again = delta_once(&w, &[]);
    assert!(!again.contains("committed"), "{again}");
    assert_eq!(delta_rs(&table, None).version, 5);
}

/// `parquet` format: two checkpoints writing one bronze both start at batch 1; their parts never share a name,
/// so neither overwrites the other's rows.
#[test]
fn two_checkpoints_on_one_parquet_bronze_never_overwrite_each_others_parts() {
    if !require_samples(&["gharchive/2015-01-01-0.json.gz"]) {
        return;
    }
    let bronze = Workdir::new();
    // The 2015-01-01-0 hour in two halves of distinct events, one per job: the same day, so the same partition.
    let (halves, ids) = split_sample(2);
    let expected = ids.len();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (i, (f, bytes)) in halves.iter().enumerate() {
        let w = Workdir::new();
        w.land_bytes("gharchive", f, bytes);
        let mut args = w.once_args();
        let b = args.iter().position(|a| a == "--bronze").expect("--bronze") + 1;
        args[b] = bronze.bronze().display().to_string();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = w.run_ok(&refs);
        assert!(
            out.contains("gharchive: batch 1 committed"),
            "job {i}: {out}"
        );
        for p in parquet_files(&bronze.bronze().join("gharchive")) {
            *names
                .entry(p.file_name().expect("name").to_string_lossy().into_owned())
                .or_default() += 1;
        }
    }
    let keys = string_column(&bronze.bronze().join("gharchive"), "event_key");
    let distinct: HashSet<_> = keys.iter().collect();
    assert_eq!(keys.len(), expected, "both jobs' rows are in bronze");
    assert_eq!(distinct.len(), expected);
    assert!(
        names.keys().all(|n| n.starts_with("part-b00000001-")),
        "{names:?}"
    );
}
