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
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::data::split_sample;
use crate::common::delta::{duckdb_delta, files_on_disk};
use crate::common::serve::{free_port, http_get, series_value};
use crate::common::table::{assert_table_exact_keys, operations, table_ok, DAY};
#[cfg(feature = "failpoints")]
use crate::common::table::{land_all, read_rows, run_one_per_commit};
use crate::common::*;

/// A `lander run --mode continuous` daemon with compaction settings, its stderr in a file; killed on drop.
struct Daemon {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Daemon {
    fn start(w: &Workdir, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = w.path().join(format!("daemon-{port}.log"));
        let mut args: Vec<String> = ["run", "--mode", "continuous", "--table-format", "delta"]
            .map(String::from)
            .to_vec();
        args.extend(w.location_args());
        for a in [
            "--settle-time",
            "0s",
            "--poll-interval",
            "200ms",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ] {
            args.push(a.to_string());
        }
        let mut cmd = w.cmd();
        cmd.args(&args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let d = Self {
            child: cmd.spawn().expect("spawn daemon"),
            port,
            log,
        };
        assert!(
            wait_until(Duration::from_secs(30), || http_get(port, "/healthz")
                .is_some_and(|(c, _)| c == 200)),
            "no /healthz; log:\n{}",
            d.log()
        );
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The value of a `gharchive` series, e.g. `compactions_total` (0 when absent).
    fn metric(&self, name: &str) -> f64 {
        let (_, body) = http_get(self.port, "/metrics").expect("metrics answer");
        series_value(&body, &format!("lander_{name}{{dataset=\"gharchive\"}}"))
    }

    /// Waits until `name` reaches `at_least`; panics with the log otherwise.
    fn wait_metric(&self, name: &str, at_least: f64, timeout: Duration) {
        if !wait_until(timeout, || self.metric(name) >= at_least) {
            panic!(
                "lander_{name} stayed at {} (< {at_least}) for {timeout:?}; log:\n{}",
                self.metric(name),
                self.log()
            );
        }
    }

    /// SIGTERM, then the exit status and the log.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("wait");
        (status, self.log())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    live_parts(table)
        .iter()
        .filter(|p| p.starts_with(&format!("{DAY}/")))
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
    let d = Daemon::start(
        &w,
        &[
            ("LANDER_COMPACT_MIN_FILES", "8"),
            ("LANDER_COMPACT_QUIET", "1s"),
            ("LANDER_COMPACT_MAX_FILES", "100000"),
        ],
    );
    assert_eq!(d.metric("compactions_total"), 0.0, "the series exists at 0");
    let mut peak = 0;
    for (wave, part) in [first, second].into_iter().enumerate() {
        land_slowly(&w, part, Duration::from_millis(40));
        let landed = (first.len() * wave + part.len()) as f64;
        d.wait_metric("files_ingested_total", landed, Duration::from_secs(120));
        peak = peak.max(parts_in_day(&table));
        // Quiet for a second: the day is compacted into one part.
        d.wait_metric(
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
    let rewritten = d.metric("compaction_files_rewritten_total");
    assert!(
        rewritten >= batch_parts as f64,
        "every batch's part was rewritten once at least: {rewritten} < {batch_parts}"
    );
    assert!(d.metric("compaction_bytes_rewritten_total") > 0.0);
    assert_eq!(d.metric("compactions_abandoned_total"), 0.0);
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
    let d = Daemon::start(
        &w,
        &[
            ("LANDER_COMPACT_MIN_FILES", "4"),
            ("LANDER_COMPACT_QUIET", "500ms"),
            ("LANDER_COMPACT_MAX_FILES", "100000"),
            ("LANDER_TEST_GATE", gate.to_str().expect("utf-8")),
        ],
    );
    land_slowly(&w, first, Duration::from_millis(40));
    d.wait_metric(
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
    d.wait_metric(
        "files_ingested_total",
        (first.len() + second.len()) as f64,
        Duration::from_secs(120),
    );
    assert!(waiting.exists(), "still held");
    assert!(operations(&table).len() > held_at, "batches committed");
    std::fs::write(&open, b"").expect("open the gate");
    // Appends do not conflict: the compaction commits on top of them.
    d.wait_metric("compactions_total", 1.0, Duration::from_secs(60));
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
    d.wait_metric("compactions_abandoned_total", 1.0, Duration::from_secs(60));
    assert_eq!(
        d.metric("compactions_total"),
        1.0,
        "never committed over the conflict"
    );
    // A third wave, compacted as usual once quiet.
    land_slowly(&w, third, Duration::from_millis(40));
    d.wait_metric(
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
    d.wait_metric("compactions_total", 2.0, Duration::from_secs(60));
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
