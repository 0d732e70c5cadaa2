//! Automatic compaction in `continuous`, and `lander table optimize` killed with SIGKILL: a daemon
//! fed many small files into one day compacts them once the day goes quiet, counted in its metrics; a
//! compaction held between its writes and its commit while batches commit beside it, then a compaction whose
//! inputs `table optimize` took meanwhile (abandoned, outputs deleted); an optimize aborted after writing its
//! outputs or after its commit.
//!
//! Expectations come from the landed bytes (the event ids of the split sample), or from delta-rs reading the
//! table before the operation; parts are counted by replaying the Delta log's JSON commits.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::backends::{Kind, Target};
use crate::common::data::split_sample;
use crate::common::delta::{
    duckdb_delta, files_on_disk, local_rows_and_distinct, python_with_deadline, table_url,
};
use crate::common::serve::{run_args, Served};
use crate::common::table::{assert_table_exact_keys, operations, table_ok, DAY};
#[cfg(feature = "failpoints")]
use crate::common::table::{land_all, read_rows, run_one_per_commit};
use crate::common::*;

/// A `lander run --mode continuous --table-format delta` daemon over `w`, `env` added (compaction settings).
fn start(w: &Workdir, env: &[(&str, &str)]) -> Served {
    start_on(w.cmd(), w.location_args(), w.path(), env)
}

/// `cmd` (lander in its directory, with its backend's environment) as a continuous daemon over `locations`, its
/// log in `dir`.
fn start_on(cmd: Command, locations: Vec<String>, dir: &Path, env: &[(&str, &str)]) -> Served {
    let mut args = run_args("continuous", locations);
    args.extend(["--table-format", "delta"].map(String::from));
    Served::spawn(cmd, &args, dir, env)
}

/// The live data files of `table`, by replaying the `add`s and `remove`s of its JSON commits in order.
fn live_parts(table: &Path) -> BTreeSet<String> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(table.join("_delta_log"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    logs.retain(|p| p.extension().is_some_and(|x| x == "json"));
    logs.sort();
    let mut live = BTreeSet::new();
    for p in logs {
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        for v in text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        {
            if let Some(path) = v["add"]["path"].as_str() {
                live.insert(path.to_string());
            }
            if let Some(path) = v["remove"]["path"].as_str() {
                live.remove(path);
            }
        }
    }
    live
}

/// Live parts in the sample's day.
fn parts_in_day(table: &Path) -> usize {
    parts_in(table, DAY)
}

/// Live parts in `partition` (`year=.../month=.../day=...`) of `table`.
fn parts_in(table: &Path, partition: &str) -> usize {
    live_parts(table)
        .iter()
        .filter(|p| p.starts_with(&format!("{partition}/")))
        .count()
}

/// Lands `files` one at a time, `gap` apart, so that a continuous daemon commits them as many small batches.
fn land_slowly(w: &Workdir, files: &[(String, Vec<u8>)], gap: Duration) {
    for (name, bytes) in files {
        w.land_bytes("gharchive", name, bytes);
        std::thread::sleep(gap);
    }
}

#[test]
fn continuous_compacts_a_quiet_day_of_many_small_parts_with_every_row_once() {
    if !require_samples(&["gharchive/2015-01-01-0.json.gz"]) {
        return;
    }
    let w = Workdir::new();
    let (files, ids) = split_sample(60);
    let (first, second) = files.split_at(files.len() / 2);
    let table = w.bronze().join("gharchive");
    let d = start(
        &w,
        &[
            ("LANDER_COMPACT_MIN_FILES", "8"),
            ("LANDER_COMPACT_QUIET", "1s"),
            ("LANDER_COMPACT_MAX_FILES", "100000"),
        ],
    );
    assert_eq!(
        d.metric_of("gharchive", "compactions_total"),
        0.0,
        "the series exists at 0"
    );
    let mut peak = 0;
    for (wave, part) in [first, second].into_iter().enumerate() {
        land_slowly(&w, part, Duration::from_millis(40));
        let landed = (first.len() * wave + part.len()) as f64;
        d.wait_metric_of(
            "gharchive",
            "files_ingested_total",
            landed,
            Duration::from_secs(120),
        );
        peak = peak.max(parts_in_day(&table));
        // Quiet for a second: the day is compacted into one part.
        d.wait_metric_of(
            "gharchive",
            "compactions_total",
            (wave + 1) as f64,
            Duration::from_secs(60),
        );
        assert!(
            wait_until(Duration::from_secs(60), || parts_in_day(&table) == 1),
            "the day's parts fall to one: {} left; log:\n{}",
            parts_in_day(&table),
            d.log()
        );
    }
    let batch_parts = operations(&table).iter().filter(|o| *o == "WRITE").count();
    assert!(
        peak >= 8 && batch_parts >= 16,
        "many small batches: {batch_parts} commits, {peak} parts at most"
    );
    let rewritten = d.metric_of("gharchive", "compaction_files_rewritten_total");
    assert!(
        rewritten >= batch_parts as f64,
        "every batch's part was rewritten once at least: {rewritten} < {batch_parts}"
    );
    assert!(d.metric_of("gharchive", "compaction_bytes_rewritten_total") > 0.0);
    assert_eq!(d.metric_of("gharchive", "compactions_abandoned_total"), 0.0);
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("partition compacted"),
        "one line per compaction"
    );
    // Every event exactly once, read by delta-rs and DuckDB; the batches' parts stay for time travel only.
    let r = assert_table_exact_keys(&table, &ids);
    assert_eq!(r.iter().filter(|f| f.starts_with(DAY)).count(), 1, "{r:?}");
    assert_eq!(
        duckdb_delta(&table),
        (ids.len() as u64, ids.len() as u64),
        "DuckDB reads the compacted table"
    );
}

#[test]
fn automatic_compaction_racing_batches_and_a_table_optimize_loses_nothing_and_doubles_nothing() {
    if !require_samples(&["gharchive/2015-01-01-0.json.gz"]) {
        return;
    }
    let w = Workdir::new();
    let (files, ids) = split_sample(40);
    let (first, rest) = files.split_at(12);
    let (second, third) = rest.split_at(12);
    let table = w.bronze().join("gharchive");
    let gate = w.path().join("gate");
    std::fs::create_dir_all(&gate).expect("mkdir");
    let (waiting, open) = (
        gate.join("optimize-commit.waiting"),
        gate.join("optimize-commit.open"),
    );
    let d = start(
        &w,
        &[
            ("LANDER_COMPACT_MIN_FILES", "4"),
            ("LANDER_COMPACT_QUIET", "500ms"),
            ("LANDER_COMPACT_MAX_FILES", "100000"),
            ("LANDER_TEST_GATE", gate.to_str().expect("utf-8")),
        ],
    );
    land_slowly(&w, first, Duration::from_millis(40));
    d.wait_metric_of(
        "gharchive",
        "files_ingested_total",
        first.len() as f64,
        Duration::from_secs(120),
    );
    // The compaction has written its outputs and waits before its commit ...
    assert!(
        wait_until(Duration::from_secs(60), || waiting.exists()),
        "a compaction reached its commit; log:\n{}",
        d.log()
    );
    let held_at = operations(&table).len();
    // ... while batches keep committing beside it: it does not hold them up.
    land_slowly(&w, second, Duration::from_millis(40));
    d.wait_metric_of(
        "gharchive",
        "files_ingested_total",
        (first.len() + second.len()) as f64,
        Duration::from_secs(120),
    );
    assert!(waiting.exists(), "still held");
    assert!(operations(&table).len() > held_at, "batches committed");
    std::fs::write(&open, b"").expect("open the gate");
    // Appends do not conflict: the compaction commits on top of them.
    d.wait_metric_of(
        "gharchive",
        "compactions_total",
        1.0,
        Duration::from_secs(60),
    );
    let ops = operations(&table);
    assert_eq!(ops.last().map(String::as_str), Some("OPTIMIZE"), "{ops:?}");
    assert!(ops[held_at..].iter().any(|o| o == "WRITE"), "{ops:?}");

    // The next compaction (of the second wave's parts) is held too, while `table optimize` takes its inputs.
    assert!(
        wait_until(Duration::from_secs(60), || waiting.exists()),
        "a second compaction reached its commit; log:\n{}",
        d.log()
    );
    let won = table_ok(&w, &["optimize"]);
    assert!(won.contains("1 partition(s) compacted"), "{won}");
    std::fs::write(&open, b"").expect("open the gate");
    d.wait_metric_of(
        "gharchive",
        "compactions_abandoned_total",
        1.0,
        Duration::from_secs(60),
    );
    assert_eq!(
        d.metric_of("gharchive", "compactions_total"),
        1.0,
        "never committed over the conflict"
    );
    // A third wave, compacted as usual once quiet.
    land_slowly(&w, third, Duration::from_millis(40));
    d.wait_metric_of(
        "gharchive",
        "files_ingested_total",
        files.len() as f64,
        Duration::from_secs(120),
    );
    let opener = std::thread::spawn({
        let (waiting, open) = (waiting.clone(), open.clone());
        move || {
            if wait_until(Duration::from_secs(60), || waiting.exists()) {
                std::fs::write(&open, b"").expect("open the gate");
            }
        }
    });
    d.wait_metric_of(
        "gharchive",
        "compactions_total",
        2.0,
        Duration::from_secs(60),
    );
    opener.join().expect("opener");
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("compaction abandoned"), "{log}");
    // The abandoned compaction's outputs were deleted: every part on disk is one some version referenced.
    let ever: BTreeSet<String> = {
        let mut all = BTreeSet::new();
        for p in std::fs::read_dir(table.join("_delta_log"))
            .expect("log")
            .flatten()
        {
            let text = std::fs::read_to_string(p.path()).unwrap_or_default();
            for v in text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            {
                if let Some(path) = v["add"]["path"].as_str() {
                    all.insert(path.to_string());
                }
            }
        }
        all
    };
    let orphans: Vec<String> = files_on_disk(&table)
        .into_iter()
        .filter(|f| !ever.contains(f))
        .collect();
    assert!(orphans.is_empty(), "{orphans:?}");
    let r = assert_table_exact_keys(&table, &ids);
    assert_eq!(r.iter().filter(|f| f.starts_with(DAY)).count(), 1, "{r:?}");
}

/// `lander table optimize` aborted (SIGABRT, like a SIGKILL: no clean-up) at `step`.
#[cfg(feature = "failpoints")]
fn optimize_killed_at(w: &Workdir, step: &str) {
    let mut a: Vec<String> = vec!["table".into(), "optimize".into()];
    a.extend(w.location_args());
    let out = w
        .cmd()
        .args(&a)
        .env("LANDER_FAIL_AFTER", step)
        .output()
        .expect("spawn");
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("failpoint"),
        "killed at {step}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn optimize_killed_before_or_after_its_commit_leaves_the_same_rows_and_vacuum_removes_its_outputs()
{
    if !require_samples(&["gharchive/2015-01-01-0.json.gz"]) {
        return;
    }
    let w = Workdir::new();
    let (files, ids) = split_sample(12);
    let (first, second) = files.split_at(8);
    land_all(&w, first);
    run_one_per_commit(&w);
    let table = w.bronze().join("gharchive");
    let before = read_rows(&table, None);

    // Killed after writing its outputs, before the commit: the table is as it was; the outputs are orphans.
    optimize_killed_at(&w, "optimize-written");
    let after_kill = read_rows(&table, None);
    assert_eq!(after_kill.version, before.version, "nothing committed");
    assert_eq!(after_kill.rows, before.rows, "the same rows, every column");
    let orphans: Vec<String> = files_on_disk(&table)
        .into_iter()
        .filter(|f| f.contains("-opt"))
        .collect();
    assert!(!orphans.is_empty(), "the killed run's outputs are on disk");
    assert!(orphans.iter().all(|o| !after_kill.files.contains(o)));

    // A rerun compacts; the orphans stay unreferenced until vacuum.
    let out = table_ok(&w, &["optimize"]);
    assert!(out.contains("1 partition(s) compacted"), "{out}");
    let compacted = read_rows(&table, None);
    assert_eq!(compacted.rows, before.rows);
    assert!(compacted.files.iter().all(|f| !orphans.contains(f)));

    // Killed right after its commit: the commit stands (the same rows in one part), and a rerun has nothing
    // to do and leaves no orphan of its own.
    land_all(&w, second);
    run_one_per_commit(&w);
    let grown = read_rows(&table, None);
    optimize_killed_at(&w, "optimize-committed");
    let killed = read_rows(&table, None);
    assert_eq!(
        killed.version,
        grown.version + 1,
        "the compaction committed"
    );
    assert_eq!(killed.rows, grown.rows);
    assert_eq!(
        killed.files.iter().filter(|f| f.starts_with(DAY)).count(),
        1
    );
    let again = table_ok(&w, &["optimize"]);
    assert!(again.contains("0 partition(s) compacted"), "{again}");
    let unreferenced: Vec<String> = files_on_disk(&table)
        .into_iter()
        .filter(|f| f.contains("-opt") && !killed.files.contains(f) && !orphans.contains(f))
        .collect();
    assert_eq!(
        unreferenced.len(),
        1,
        "only the first compaction's output, replaced by the second: {unreferenced:?}"
    );

    // vacuum (retention 0, forced: no writer runs) deletes the orphans and the replaced parts, nothing live.
    let out = table_ok(&w, &["vacuum", "--retain", "0s", "--force"]);
    for o in &orphans {
        assert!(out.contains(o.as_str()), "vacuum names {o}: {out}");
        assert!(!table.join(o).exists(), "{o} deleted");
    }
    let r = assert_table_exact_keys(&table, &ids);
    assert_eq!(
        files_on_disk(&table),
        r,
        "only the live parts are left on disk"
    );
}

/// `lander.toml` for [`each_dataset_compacts_by_its_own_settings_and_one_turned_off_never_is`]: the top level
/// compacts at 4 parts after 10 minutes of quiet; `gharchive` takes its own quiet time (5 s: longer than landing
/// and ingesting one more file takes on a loaded machine, so its six parts are all there before the day goes quiet)
/// and the top level's `compact_min_files`; `sales` (redeclared as the CSV it is) has the same quiet time and
/// `compact_min_files = 0`.
const PER_DATASET_TOML: &str = r#"
compact_min_files = 4
compact_quiet = "10m"
compact_max_files = 100000

[datasets.gharchive]
format = "gharchive"
compact_quiet = "5s"

[datasets.sales]
format = "csv"
key = ["transaction_id"]
event_time = "timestamp"
compact_quiet = "5s"
compact_min_files = 0
"#;

/// The day of [`sales_day`]'s rows.
const SALES_DAY: &str = "year=2025/month=10/day=20";

/// A sales CSV of `n` rows with ids `first..first + n`, all on 2025-10-20.
fn sales_day(first: u64, n: u64) -> Vec<u8> {
    let mut s = String::from(
        "transaction_id,timestamp,customer_id,product_id,category,quantity,unit_price,total,payment_method,status\n",
    );
    for id in first..first + n {
        s += &format!(
            "{id},2025-10-20 11:{:02}:00,65,1468,Ropa,2,10.5,21.0,Tarjeta,Completada\n",
            id % 60
        );
    }
    s.into_bytes()
}

/// Compaction keys in `[datasets.NAME]`: two datasets with one part per batch in one day each, and the same quiet
/// time; only `gharchive` compacts (its own `compact_quiet`, the top level's `compact_min_files`), `sales` with
/// `compact_min_files = 0` keeps every part. Part counts come from the Delta logs, rows from delta-rs against the
/// landed rows.
#[test]
fn each_dataset_compacts_by_its_own_settings_and_one_turned_off_never_is() {
    if !require_samples(&["gharchive/2015-01-01-0.json.gz"]) {
        return;
    }
    let w = Workdir::new();
    // `./lander.toml` in the daemon's directory.
    std::fs::write(w.path().join("lander.toml"), PER_DATASET_TOML).expect("write lander.toml");
    let (gh_files, ids) = split_sample(6);
    let (gh_table, sales_table) = (w.bronze().join("gharchive"), w.bronze().join("sales"));
    let d = start(&w, &[]);
    // Sales first, one file per batch: its day is quiet before gharchive's, so it would be due first.
    let sales_files = 6u64;
    for i in 0..sales_files {
        w.land_bytes("sales", &format!("s-{i}.csv"), &sales_day(i * 10, 10));
        d.wait_metric_of(
            "sales",
            "files_ingested_total",
            (i + 1) as f64,
            Duration::from_secs(60),
        );
    }
    for (i, (name, bytes)) in gh_files.iter().enumerate() {
        w.land_bytes("gharchive", name, bytes);
        d.wait_metric_of(
            "gharchive",
            "files_ingested_total",
            (i + 1) as f64,
            Duration::from_secs(60),
        );
    }
    assert_eq!(parts_in(&sales_table, SALES_DAY), sales_files as usize);
    assert_eq!(
        parts_in_day(&gh_table),
        gh_files.len(),
        "one part per batch"
    );
    d.wait_metric_of(
        "gharchive",
        "compactions_total",
        1.0,
        Duration::from_secs(60),
    );
    assert!(
        wait_until(Duration::from_secs(60), || parts_in_day(&gh_table) == 1),
        "gharchive's day falls to one part: {} left; log:\n{}",
        parts_in_day(&gh_table),
        d.log()
    );
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert!(
        !log.contains("dataset=\"sales\" partition"),
        "no compaction line for sales: {log}"
    );
    assert!(
        !operations(&sales_table).iter().any(|o| o == "OPTIMIZE"),
        "{:?}",
        operations(&sales_table)
    );
    assert_eq!(
        parts_in(&sales_table, SALES_DAY),
        sales_files as usize,
        "sales keeps one part per batch"
    );
    assert_eq!(
        operations(&gh_table).last().map(String::as_str),
        Some("OPTIMIZE")
    );
    let r = assert_table_exact_keys(&gh_table, &ids);
    assert_eq!(r.iter().filter(|f| f.starts_with(DAY)).count(), 1, "{r:?}");
    let rows = (sales_files * 10) as usize;
    assert_eq!(
        local_rows_and_distinct(&sales_table, "transaction_id"),
        (rows, rows),
        "every sales row once"
    );
}

/// Reads `bronze/gharchive` of a backend with delta-rs: the operations of its history (oldest first), its event
/// keys and the files of the latest version (relative to the table root).
const HISTORY_AND_KEYS: &str = r#"
import json, sys
from deltalake import DeltaTable, QueryBuilder
url, opts = sys.argv[1], json.loads(sys.argv[2])
dt = DeltaTable(url, storage_options=opts or None)
t = QueryBuilder().register("t", dt).execute("select event_key from t").read_all()
ops = [h.get("operation") for h in sorted(dt.history(), key=lambda h: h["version"])]
root = url.rstrip("/") + "/"
files = sorted(u.removeprefix(root) for u in dt.file_uris())
print(json.dumps({"ops": ops, "keys": t.column("event_key").to_pylist(), "files": files}))
"#;

/// Automatic compaction of a `continuous` daemon with landing and bronze on `kind`: five one-file batches into
/// one day, a threshold of five (the compaction cannot start before the last part, however slowly the files land
/// on a loaded machine), one second of quiet. delta-rs reads an `OPTIMIZE` commit after the five writes, one part
/// left in the day, and every event of the landed files exactly once.
fn continuous_compacts_on(kind: Kind) {
    if !require_samples(&["gharchive/2015-01-01-0.json.gz"]) {
        return;
    }
    let t = Target::new(kind);
    let (files, ids) = split_sample(5);
    let d = start_on(
        t.cmd(),
        t.location_args(),
        t.wd.path(),
        &[
            ("LANDER_COMPACT_MIN_FILES", "5"),
            ("LANDER_COMPACT_QUIET", "1s"),
            ("LANDER_COMPACT_MAX_FILES", "100000"),
        ],
    );
    for (i, (name, bytes)) in files.iter().enumerate() {
        t.land_bytes("gharchive", name, bytes.clone());
        d.wait_metric_of(
            "gharchive",
            "files_ingested_total",
            (i + 1) as f64,
            Duration::from_secs(120),
        );
    }
    d.wait_metric_of(
        "gharchive",
        "compactions_total",
        1.0,
        Duration::from_secs(120),
    );
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("partition compacted"), "{log}");
    let (url, opts) = table_url(&t, kind, "gharchive");
    let out = python_with_deadline(HISTORY_AND_KEYS, &[&url, &opts.to_string()]);
    let j: serde_json::Value = serde_json::from_str(out.trim()).expect("json from delta-rs");
    let ops: Vec<&str> = j["ops"]
        .as_array()
        .expect("ops")
        .iter()
        .map(|o| o.as_str().unwrap_or_default())
        .collect();
    let writes = ops.iter().filter(|o| **o == "WRITE").count();
    assert_eq!(writes, files.len(), "one commit per batch: {ops:?}");
    assert_eq!(ops.last(), Some(&"OPTIMIZE"), "{ops:?}");
    let in_day = j["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter(|f| {
            f.as_str()
                .is_some_and(|f| f.starts_with(&format!("{DAY}/")))
        })
        .count();
    assert_eq!(
        in_day, 1,
        "the day's five parts compacted into one: {}",
        j["files"]
    );
    let keys: Vec<String> = j["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k.as_str().expect("key").to_string())
        .collect();
    let distinct: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(keys.len(), distinct.len(), "no event twice");
    assert_eq!(distinct, ids.iter().collect::<BTreeSet<_>>(), "every event");
}

#[test]
fn continuous_compacts_on_s3() {
    continuous_compacts_on(Kind::S3);
}

#[test]
fn continuous_compacts_on_hdfs() {
    continuous_compacts_on(Kind::Hdfs);
}
