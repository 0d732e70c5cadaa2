//! The Delta table on every backend (real readers, real servers): lander writes bronze with
//! `--table-format delta` on the local filesystem, HDFS (the MiniDFSCluster, natively and through `hdfs+jni://`)
//! and S3 (moto), and delta-rs' Python package (`deltalake`, which reaches HDFS through its own `hdfs-native`
//! client and S3 through its object store) reads it back there, at the latest version and by time travel.
//!
//! Expectations come from the landed bytes (the event ids, and the distinct events counted from the raw
//! lines), never from lander's output. The `delta_conformance!` macro instantiates each behaviour per backend
//! as `delta_conformance::<backend>::<behaviour>`.
//!
//! Two writers on HDFS are read with lander's verify, not delta-rs: with deltalake 1.6.6 (hdfs-native 0.13.5 inside), the first read right after
//! two jobs made 99 concurrent commits on the MiniDFSCluster hung in `DeltaTable(...)` for 16 minutes at no
//! CPU; the same read minutes later returned version 99 with its 99 files in 0.6 s. That table's `_delta_log`
//! also held 25 `.<version>.json.tmp.<n>` files, the temporaries of commits that lost the race and were not
//! removed (lander now writes log entries on HDFS through `store::create_put`, which removes them:
//! `stale_temps::put_if_absent_on_hdfs_leaves_no_temporary_when_it_loses`). Every delta-rs read here has a deadline ([`READ_DEADLINE`]), so such a hang fails instead of blocking.

use std::path::PathBuf;

use crate::common::backends::{Kind, Target};
use crate::common::delta::{expected_of, found, Expected};
use crate::common::delta::{python_with_deadline, table_url};
use crate::common::*;

/// `once` runs per job in [`two_checkpoints_append_concurrently`].
const CONCURRENT_BATCHES: usize = 25;

/// `delta_checkpoint_interval` of the concurrent jobs: log checkpoints are written under the race too (every
/// tenth version, by whichever job committed it), and readers start from them.
const CONCURRENT_CHECKPOINT_INTERVAL: u64 = 10;

/// `once` runs per job in [`hdfs_two_checkpoints_append_concurrently`]: fewer than on S3, each run pays the HDFS
/// client's connection set-up.
const HDFS_CONCURRENT_BATCHES: usize = 20;

/// Reads a Delta table with delta-rs: `url`, a JSON object of storage options, then an optional version.
/// Prints the version, the event keys (sorted), the files the log references and the commit count of the
/// history (one line of JSON).
const DELTA_RS: &str = r#"
import json, sys
from deltalake import DeltaTable, QueryBuilder
url, opts = sys.argv[1], json.loads(sys.argv[2])
version = int(sys.argv[3]) if len(sys.argv) > 3 else None
dt = DeltaTable(url, version=version, storage_options=opts or None)
t = QueryBuilder().register("t", dt).execute("select event_key from t").read_all()
root = url.rstrip("/") + "/"
files = sorted(u.removeprefix("file://").removeprefix(root) for u in dt.file_uris())
print(json.dumps({"version": dt.version(), "keys": sorted(t.column("event_key").to_pylist()),
    "files": files, "history": len(dt.history())}))
"#;

/// What delta-rs read at one version.
struct Read {
    version: u64,
    keys: Vec<String>,
    /// Data files the log references, relative to the table root.
    files: Vec<String>,
    /// Entries of the table's history (commits, version 0 included).
    history: u64,
}

/// Reads `bronze/gharchive` of `t` with delta-rs at `version` (or the latest).
fn read(t: &Target, kind: Kind, version: Option<u64>) -> Read {
    let (url, opts) = table_url(t, kind, "gharchive");
    let opts = opts.to_string();
    let v = version.map(|v| v.to_string());
    let mut args = vec![url.as_str(), opts.as_str()];
    args.extend(v.as_deref());
    let out = python_with_deadline(DELTA_RS, &args);
    let j: serde_json::Value = serde_json::from_str(out.trim()).expect("json from delta-rs");
    let strings = |k: &str| -> Vec<String> {
        j[k].as_array()
            .expect("array")
            .iter()
            .map(|s| s.as_str().expect("string").to_string())
            .collect()
    };
    Read {
        version: j["version"].as_u64().expect("version"),
        keys: strings("keys"),
        files: strings("files"),
        history: j["history"].as_u64().expect("history"),
    }
}

/// Data files stored below `bronze/gharchive` (relative to the table root), the log excluded.
fn stored_parts(t: &Target) -> Vec<String> {
    let mut v: Vec<String> = t
        .bronze_objects("gharchive")
        .into_iter()
        .map(|(p, _)| p.strip_prefix("gharchive/").expect("below").to_string())
        .filter(|p| p.ends_with(".parquet") && !p.starts_with("_delta_log/"))
        .collect();
    v.sort();
    v
}

/// Commit files (`_delta_log/<version>.json`) stored for `bronze/gharchive`.
fn stored_commits(t: &Target) -> u64 {
    t.bronze_objects("gharchive/_delta_log")
        .iter()
        .filter(|(p, _)| p.ends_with(".json"))
        .count() as u64
}

/// Input files: three shapes of GH Archive (2011 with ids, 2013 Timeline without, 2015) and two slices of
/// 2015-01-01-0, named so that their sorted order is the order `available-now` takes them in.
fn inputs() -> Vec<(String, Vec<u8>)> {
    let read = |f: &str| std::fs::read(gharchive(f)).expect("read sample");
    let (split, _) = crate::common::data::split_sample(2);
    let mut v = vec![
        (
            "a-2011-02-15-0.json.gz".to_string(),
            read("2011-02-15-0.json.gz"),
        ),
        (
            "b-2013-02-15-0.json.gz".to_string(),
            read("2013-02-15-0.json.gz"),
        ),
    ];
    for (i, (_, bytes)) in split.into_iter().enumerate() {
        v.push((format!("c-2015-slice-{i}.json.gz"), bytes));
    }
    v
}

/// Writes `files` to a local directory (for the independent computation) and returns their paths.
fn local_copies(w: &Workdir, files: &[(String, Vec<u8>)]) -> Vec<PathBuf> {
    let dir = w.path().join("expected-input");
    std::fs::create_dir_all(&dir).expect("mkdir");
    files
        .iter()
        .map(|(name, bytes)| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).expect("write");
            p
        })
        .collect()
}

/// `run --mode available-now --max-files-per-batch 1 --table-format delta` on `t` (one batch per file).
fn available_now_args(t: &Target) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "--mode",
        "available-now",
        "--settle-time",
        "0s",
        "--max-files-per-batch",
        "1",
        "--table-format",
        "delta",
    ]
    .map(String::from)
    .to_vec();
    args.extend(t.location_args());
    args
}

/// One batch per file into a Delta table: delta-rs reads every event once at the latest version, exactly the
/// files stored, one commit per batch; time travel to version N gives the state after batch N; a rerun adds
/// no commit.
fn delta_rs_reads_every_version(kind: Kind) {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let t = Target::new(kind);
    let files = inputs();
    for (name, bytes) in &files {
        t.land_bytes("gharchive", name, bytes.clone());
    }
    let args = available_now_args(&t);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    t.run_ok(&refs);

    let local = local_copies(&t.wd, &files);
    let latest = read(&t, kind, None);
    assert_eq!(found(&latest.keys), expected_of(&local), "every event once");
    // Version 0 creates the table; batch n is version n.
    assert_eq!(latest.version, files.len() as u64);
    assert_eq!(latest.history, files.len() as u64 + 1);
    assert_eq!(stored_commits(&t), files.len() as u64 + 1);
    assert_eq!(
        latest.files,
        stored_parts(&t),
        "the log references exactly the stored parts"
    );
    for n in 1..=files.len() {
        let r = read(&t, kind, Some(n as u64));
        assert_eq!(r.version, n as u64);
        let after: Expected = expected_of(&local[..n]);
        assert_eq!(
            found(&r.keys),
            after,
            "version {n} = the state after batch {n}"
        );
    }
    let again = t.run_ok(&refs);
    assert!(!again.contains("committed"), "{again}");
    assert_eq!(read(&t, kind, None).version, files.len() as u64);
}

/// A crash between the parts' upload and the log write (after `staged`, after `publishing`: the parts are at
/// their final names, no commit references them): delta-rs still reads the previous version only; the next
/// run recovers, commits each event exactly once, and no part is left that the log does not reference.
#[cfg(feature = "failpoints")]
fn crash_before_the_log_write_recovers_exactly_once(kind: Kind) {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let t = Target::new(kind);
    let files = inputs();
    let local = local_copies(&t.wd, &files);
    let args = available_now_args(&t);
    // The first file commits cleanly (the table exists); each crash then leaves the next file's parts behind.
    t.land_bytes("gharchive", &files[0].0, files[0].1.clone());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    t.run_ok(&refs);
    for (i, step) in ["staged", "publishing"].into_iter().enumerate() {
        let (name, bytes) = &files[i + 1];
        t.land_bytes("gharchive", name, bytes.clone());
        let out = t
            .cmd()
            .args(&args)
            .env("LANDER_FAIL_AFTER", step)
            .output()
            .expect("spawn");
        assert!(!out.status.success(), "failpoint {step} aborts");
        let r = read(&t, kind, None);
        assert_eq!(r.version, 1, "{step}: no commit was written");
        assert_eq!(
            found(&r.keys),
            expected_of(&local[..1]),
            "{step}: readers see only the committed batch"
        );
        assert!(
            stored_parts(&t).len() > r.files.len(),
            "{step}: the crashed batch's parts are stored, unreferenced"
        );
    }
    for (name, bytes) in &files[3..] {
        t.land_bytes("gharchive", name, bytes.clone());
    }
    t.run_ok(&refs);
    let r = read(&t, kind, None);
    assert_eq!(found(&r.keys), expected_of(&local), "every event once");
    assert_eq!(r.files, stored_parts(&t), "no orphan part after recovery");
    assert_eq!(r.version, files.len() as u64, "one commit per file");
    assert_eq!(stored_commits(&t), r.version + 1);
    let mut verify = vec!["checkpoint".to_string(), "verify".into()];
    verify.extend(t.location_args());
    let refs: Vec<&str> = verify.iter().map(String::as_str).collect();
    let out = t.run_ok(&refs);
    assert!(out.starts_with("ok:"), "{out}");
}

/// Two jobs (own landing, own checkpoint) append to one Delta table on the backend at the same time, one file
/// per `once` run, [`CONCURRENT_BATCHES`] runs each: the log's put-if-absent lets one writer take each version and
/// the other retry, so delta-rs reads every event of both once, one commit per batch, no orphan part, and each
/// job's `checkpoint verify` agrees.
fn two_checkpoints_append_concurrently(kind: Kind) {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let (jobs, files, ids, logs) = append_concurrently(kind, CONCURRENT_BATCHES);
    let raced = logs
        .iter()
        .filter(|l| l.contains("lost the delta version race"))
        .count();
    eprintln!(
        "{raced} of {} runs lost a version race and retried",
        logs.len()
    );
    let t = &jobs[0];
    let r = read(t, kind, None);
    let expected = crate::common::delta::expected_ids(&ids);
    if found(&r.keys) != expected {
        panic!(
            "every event of both jobs once: {}",
            explain_missing(t, &r, &files, &logs)
        );
    }
    assert_eq!(
        r.version,
        files.len() as u64,
        "one commit per batch, none lost"
    );
    assert_eq!(r.history, files.len() as u64 + 1);
    assert_eq!(stored_commits(t), files.len() as u64 + 1);
    assert_eq!(r.files, stored_parts(t), "no orphan part");
    let checkpoints: Vec<String> = t
        .bronze_objects("gharchive/_delta_log")
        .into_iter()
        .filter_map(|(p, _)| p.strip_suffix(".checkpoint.parquet").map(str::to_string))
        .filter_map(|p| p.rsplit('/').next().map(str::to_string))
        .collect();
    let every: Vec<String> = (1..=files.len() as u64 / CONCURRENT_CHECKPOINT_INTERVAL)
        .map(|k| format!("{:020}", k * CONCURRENT_CHECKPOINT_INTERVAL))
        .collect();
    assert_eq!(
        checkpoints, every,
        "a log checkpoint every {CONCURRENT_CHECKPOINT_INTERVAL} versions"
    );
    verify_each_job(&jobs);
}

/// What a failed [`two_checkpoints_append_concurrently`] needs to be understood: which input files lost events,
/// the logs of the runs that ingested them, and whether the `add`s of the log's commits are what delta-rs read
/// (a log checkpoint that misses a commit's files would show here).
fn explain_missing(t: &Target, r: &Read, files: &[(String, Vec<u8>)], logs: &[String]) -> String {
    use std::collections::BTreeSet;
    let keys: BTreeSet<&str> = r.keys.iter().map(String::as_str).collect();
    let mut out = format!(
        "delta-rs read version {} with {} keys\n",
        r.version,
        keys.len()
    );
    for (i, (name, bytes)) in files.iter().enumerate() {
        let ids = crate::common::data::ids_of_gz(bytes);
        let lost = ids.iter().filter(|id| !keys.contains(id.as_str())).count();
        if lost > 0 {
            let log = &logs[i];
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            out += &format!(
                "{name}: {lost} of {} events missing; its run's log (last lines, newest first):\n{}\n",
                ids.len(),
                tail.join("\n")
            );
        }
    }
    let mut added = BTreeSet::new();
    let objects = t.bronze_objects("gharchive/_delta_log");
    for (p, _) in objects.iter().filter(|(p, _)| p.ends_with(".json")) {
        let body = t.bronze_bytes(p);
        for line in String::from_utf8_lossy(&body).lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            if let Some(path) = v.pointer("/add/path").and_then(|p| p.as_str()) {
                added.insert(path.to_string());
            }
        }
    }
    let read: BTreeSet<String> = r.files.iter().cloned().collect();
    let names: Vec<&str> = objects.iter().map(|(p, _)| p.as_str()).collect();
    out += &format!(
        "the log's commits add {} files, delta-rs read {}; added but not read: {:?}; read but not added: {:?}\n_delta_log: {:?}",
        added.len(),
        read.len(),
        added.difference(&read).collect::<Vec<_>>(),
        read.difference(&added).collect::<Vec<_>>(),
        names
    );
    out
}

/// Two jobs land `batches` files each and run `once` per file against the first job's bronze, at the same time:
/// each round both land a file, wait for each other, then start their runs together (so that their commits
/// race). Returns the jobs, the files, the ids of their events and each file's run's stdout and stderr.
#[allow(clippy::type_complexity)]
fn append_concurrently(
    kind: Kind,
    batches: usize,
) -> (
    [Target; 2],
    Vec<(String, Vec<u8>)>,
    std::collections::HashSet<String>,
    Vec<String>,
) {
    let (files, ids) = crate::common::data::split_sample(2 * batches);
    let jobs = [Target::new(kind), Target::new(kind)];
    let bronze = jobs[0].bronze_url.clone();
    let mut logs = vec![String::new(); files.len()];
    let round = std::sync::Barrier::new(jobs.len());
    std::thread::scope(|s| {
        let runs: Vec<_> = jobs
            .iter()
            .enumerate()
            .map(|(j, t)| {
                let (files, bronze, round) = (&files, &bronze, &round);
                s.spawn(move || {
                    let config = t.wd.path().join("lander.toml");
                    let toml =
                        format!("delta_checkpoint_interval = {CONCURRENT_CHECKPOINT_INTERVAL}\n");
                    std::fs::write(&config, toml).expect("write lander.toml");
                    let config = config.display().to_string();
                    let mut logs = Vec::new();
                    for (i, (name, bytes)) in files.iter().enumerate().skip(j).step_by(2) {
                        // No panic between rounds: a job that stopped would leave the other at the barrier.
                        let landed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            t.land_bytes("gharchive", name, bytes.clone())
                        }));
                        round.wait();
                        let log = match landed {
                            Ok(()) => {
                                run_against(t, bronze, &config).map(|log| format!("job {j}\n{log}"))
                            }
                            Err(_) => Err(format!("job {j}: landing {name} failed (above)")),
                        };
                        logs.push((i, log));
                    }
                    logs
                })
            })
            .collect();
        for run in runs {
            for (i, log) in run.join().expect("a job's thread") {
                logs[i] = log.unwrap_or_else(|e| panic!("{e}"));
            }
        }
    });
    (jobs, files, ids, logs)
}

/// One `once` run of job `t` against `bronze` with `config`: its stdout and stderr, or why it failed.
fn run_against(t: &Target, bronze: &str, config: &str) -> Result<String, String> {
    let mut args = t.once_args(&["--table-format", "delta", "--config", config]);
    let b = args.iter().position(|a| a == "--bronze").expect("--bronze") + 1;
    args[b] = bronze.to_string();
    let out = t.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let log = format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(log)
    } else {
        Err(format!("lander {args:?} failed: {}\n{log}", out.status))
    }
}

/// `lander table optimize` then `lander table check --repair` on the backend: the two 2015 slices'
/// parts become one part with the same events (time travel to the version before still reads them); once that
/// part is deleted from storage, `check` names it and exits 1, and `--repair` leaves a table delta-rs reads with
/// exactly the other inputs' events.
fn optimize_then_check_repair(kind: Kind) {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let t = Target::new(kind);
    let files = inputs();
    for (name, bytes) in &files {
        t.land_bytes("gharchive", name, bytes.clone());
    }
    let args = available_now_args(&t);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    t.run_ok(&refs);
    let local = local_copies(&t.wd, &files);
    let table = |cmd: &[&str]| -> std::process::Output {
        let mut a: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        a.extend(t.location_args());
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        t.run(&refs)
    };
    let before = read(&t, kind, None);
    let out = table(&["table", "optimize"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = read(&t, kind, None);
    assert_eq!(after.version, before.version + 1, "{stdout}");
    assert_eq!(found(&after.keys), expected_of(&local), "the same events");
    let compacted: Vec<&String> = after.files.iter().filter(|f| f.contains("-opt")).collect();
    assert_eq!(compacted.len(), 1, "{:?}", after.files);
    assert_eq!(
        after.files.len(),
        before.files.len() - 1,
        "two parts became one"
    );
    assert_eq!(
        found(&read(&t, kind, Some(before.version)).keys),
        expected_of(&local)
    );

    t.delete_bronze(&format!("gharchive/{}", compacted[0]));
    let check = table(&["table", "check"]);
    let text = String::from_utf8_lossy(&check.stdout).into_owned();
    assert_eq!(check.status.code(), Some(1), "{text}");
    assert!(text.contains(compacted[0].as_str()), "{text}");
    let repair = table(&["table", "check", "--repair"]);
    let text = String::from_utf8_lossy(&repair.stdout).into_owned();
    assert!(
        repair.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&repair.stderr)
    );
    for (name, _) in &files[2..] {
        assert!(
            text.contains(&format!("gharchive/{name}")),
            "the slices are named: {text}"
        );
    }
    let repaired = read(&t, kind, None);
    assert_eq!(
        found(&repaired.keys),
        expected_of(&local[..2]),
        "the other inputs' events"
    );
    assert_eq!(repaired.version, after.version + 1);
}

/// `table convert`, `table vacuum`, `table history` and `checkpoint rebuild --from-table` on this backend (issue
/// 23): a Parquet bronze converted in place reads back through delta-rs with the rows of its parts; a crashed
/// Delta batch leaves unreferenced parts, which a forced zero-retention vacuum deletes (and only they: the default
/// retention keeps them) while delta-rs still reads the table; the rerun commits the file; history lists convert
/// then the batch with its rows; a deleted checkpoint is rebuilt from the logs and the rerun reads nothing.
#[cfg(feature = "failpoints")]
fn table_operations(kind: Kind) {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let t = Target::new(kind);
    let files = inputs();
    let local = local_copies(&t.wd, &files);
    let args = available_now_args(&t);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let with_locations = |sub: &[&str]| -> String {
        let mut a: Vec<String> = sub.iter().map(|s| s.to_string()).collect();
        a.extend(t.location_args());
        let r: Vec<&str> = a.iter().map(String::as_str).collect();
        t.run_ok(&r)
    };
    for (name, bytes) in &files[..2] {
        t.land_bytes("gharchive", name, bytes.clone());
    }
    let mut parquet = refs.clone();
    let at = parquet
        .iter()
        .position(|a| *a == "delta")
        .expect("--table-format delta");
    parquet[at] = "parquet";
    t.run_ok(&parquet);
    let out = with_locations(&["table", "convert", "-d", "gharchive"]);
    assert!(out.contains("gharchive: converted"), "{out}");
    let r = read(&t, kind, None);
    assert_eq!((r.version, found(&r.keys)), (0, expected_of(&local[..2])));
    assert_eq!(r.files, stored_parts(&t), "every part converted");

    let (name, bytes) = &files[2];
    t.land_bytes("gharchive", name, bytes.clone());
    let crashed = t
        .cmd()
        .args(&args)
        .env("LANDER_FAIL_AFTER", "publishing")
        .output()
        .expect("spawn");
    assert!(!crashed.status.success());
    let orphans: Vec<String> = stored_parts(&t)
        .into_iter()
        .filter(|p| !r.files.contains(p))
        .map(|p| format!("gharchive/{p}"))
        .collect();
    assert!(!orphans.is_empty(), "the crashed batch left parts");
    let deleted = |out: &str| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(out).expect("json");
        let mut d: Vec<String> = v
            .as_array()
            .expect("reports")
            .iter()
            .flat_map(|r| r["deleted"].as_array().cloned().unwrap_or_default())
            .map(|x| x["path"].as_str().expect("path").to_string())
            .collect();
        d.sort();
        d
    };
    assert!(
        deleted(&with_locations(&[
            "table",
            "vacuum",
            "--json",
            "-d",
            "gharchive"
        ]))
        .is_empty(),
        "young parts are kept"
    );
    let dry = deleted(&with_locations(&[
        "table",
        "vacuum",
        "--json",
        "--retain",
        "0s",
        "--force",
        "--dry-run",
    ]));
    assert_eq!(dry, orphans);
    let real = deleted(&with_locations(&[
        "table", "vacuum", "--json", "--retain", "0s", "--force",
    ]));
    assert_eq!(real, dry, "a real run deletes what the dry run listed");
    assert_eq!(
        stored_parts(&t),
        r.files,
        "only the referenced parts are left"
    );
    assert_eq!(found(&read(&t, kind, None).keys), expected_of(&local[..2]));

    t.run_ok(&refs);
    let latest = read(&t, kind, None);
    assert_eq!(
        (latest.version, found(&latest.keys)),
        (1, expected_of(&local[..3]))
    );
    let h: serde_json::Value =
        serde_json::from_str(&with_locations(&["table", "history", "--json"])).expect("json");
    let ops: Vec<&str> = h["gharchive"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["operation"].as_str().expect("op"))
        .collect();
    assert_eq!(ops, ["batch", "convert"]);
    let rows: u64 = h["gharchive"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["rows_added"].as_u64().expect("rows"))
        .sum();
    assert_eq!(rows as usize, expected_of(&local[..3]).total_len());

    std::fs::remove_dir_all(t.wd.checkpoint()).expect("delete the checkpoint");
    let out = with_locations(&["checkpoint", "rebuild", "--from-table"]);
    assert!(
        out.contains("gharchive: rebuilt 2 batch(es) and 3 file record(s): 3 unchanged"),
        "{out}"
    );
    let again = t.run_ok(&refs);
    assert!(!again.contains("committed"), "{again}");
    assert_eq!(read(&t, kind, None).version, 1, "nothing read again");
}

macro_rules! delta_conformance {
    ($($(#[$meta:meta])* $name:ident),* $(,)?) => {
        mod local {
            $( $(#[$meta])* #[test] fn $name() { super::$name(super::Kind::Local) } )*
        }
        mod hdfs {
            $( $(#[$meta])* #[test] fn $name() { super::$name(super::Kind::Hdfs) } )*
        }
        mod s3 {
            $( $(#[$meta])* #[test] fn $name() { super::$name(super::Kind::S3) } )*
        }
        #[cfg(feature = "hdrs")]
        mod hdfs_jni {
            $( $(#[$meta])* #[test] fn $name() { super::$name(super::Kind::HdfsJni) } )*
        }
    };
}

delta_conformance!(
    delta_rs_reads_every_version,
    #[cfg(feature = "failpoints")]
    crash_before_the_log_write_recovers_exactly_once,
    #[cfg(feature = "failpoints")]
    table_operations,
    optimize_then_check_repair,
);

/// On S3 the log's put-if-absent is a conditional put (`If-None-Match: *`), which moto enforces. (Local is
/// `delta::two_checkpoints_appending_concurrently_keep_all_rows_of_both`; HDFS is
/// [`hdfs_two_checkpoints_append_concurrently`], read without delta-rs: see the module docs.)
#[test]
fn s3_two_checkpoints_append_concurrently() {
    two_checkpoints_append_concurrently(Kind::S3)
}

/// The S3 server these tests run on gives each conditional put (`If-None-Match: *`, the Delta commit's
/// put-if-absent) exactly one winner when many race for one key, as S3 does: plain moto did not (its check and
/// write are not atomic; `tests/moto/server.py`), which once lost a commit in
/// [`s3_two_checkpoints_append_concurrently`]. 8 clients race for each of 20 keys, which the launcher writes
/// 20 ms after its check: with the lock one winner per key, without it all 8 win every key (plain moto on a loaded
/// machine: two winners on 4 keys of 200; on an idle one, none).
#[test]
fn s3_conditional_puts_have_one_winner() {
    use crate::common::backends::{racing_creates, s3_store, unique_prefix};
    let store: std::sync::Arc<dyn object_store::ObjectStore> = std::sync::Arc::new(s3_store());
    let prefix = unique_prefix("race");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let doubles: Vec<(usize, usize)> = rt.block_on(async {
        let mut doubles = Vec::new();
        for k in 0..20 {
            let path = object_store::path::Path::from(format!("{prefix}/{k:020}.json"));
            let wins = racing_creates(store.clone(), &path, 8).await;
            if wins != 1 {
                doubles.push((k, wins));
            }
        }
        doubles
    });
    assert!(
        doubles.is_empty(),
        "(key, winners) without exactly one winner: {doubles:?}"
    );
}

/// On HDFS (the MiniDFSCluster), where the log's put-if-absent is a rename without overwrite: two jobs append
/// [`HDFS_CONCURRENT_BATCHES`] batches each at the same time; every batch is one commit, none lost, each job's
/// `checkpoint verify` agrees with the shared table's log and storage, the parts hold every event once, and no
/// commit that lost a race left its temporary in `_delta_log`. Read with lander's own verify and the `parquet`
/// crate rather than delta-rs, whose first read after many concurrent commits here once hung (module docs).
///
/// Ignored: not reliable yet. On a loaded machine (load 10+) both jobs failed after about 34 commits with lander's
/// own read of the newest log entry (`_delta_log/000…034.json`) timing out after 30 s in the hdfs-native client,
/// the same stall delta-rs showed (module docs), so the stall is in the HDFS read path, not in delta-rs. Run it
/// by hand with `--ignored`.
#[test]
#[ignore = "HDFS reads of fresh log entries stall under concurrent commits; see the doc comment"]
fn hdfs_two_checkpoints_append_concurrently() {
    if !require_samples(&["gharchive/2015-01-01-0.json.gz"]) {
        return;
    }
    let (jobs, files, ids, _) = append_concurrently(Kind::Hdfs, HDFS_CONCURRENT_BATCHES);
    let t = &jobs[0];
    assert_eq!(
        stored_commits(t),
        files.len() as u64 + 1,
        "one commit per batch, none lost"
    );
    let temps: Vec<String> = t
        .bronze_objects("gharchive/_delta_log")
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.rsplit('/').next().is_some_and(|n| n.starts_with('.')))
        .collect();
    assert!(temps.is_empty(), "temporaries left in the log: {temps:?}");
    assert_eq!(t.count_rows("gharchive"), ids.len(), "every event once");
    verify_each_job(&jobs);
}

/// Each job's `checkpoint verify` (its own checkpoint, the shared bronze of the first job) says ok: every part
/// of every batch its checkpoint committed is referenced by the table's log (a lost commit would show here).
fn verify_each_job(jobs: &[Target]) {
    for job in jobs {
        let mut args = vec!["checkpoint".to_string(), "verify".into()];
        args.extend(job.location_args());
        let b = args.iter().position(|a| a == "--bronze").expect("--bronze") + 1;
        args[b] = jobs[0].bronze_url.clone();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = job.run_ok(&refs);
        assert!(out.starts_with("ok:"), "{out}");
    }
}

/// The compose stack writes Delta explicitly (both landers) and its `query` profile's Spark reads bronze through
/// the Delta log (Delta's jars and session extension, a `delta.` table path), never as loose Parquet files.
#[test]
fn the_compose_stack_writes_delta_and_spark_reads_it_as_delta() {
    let compose = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/docker-compose.yml"),
    )
    .expect("docker/docker-compose.yml");
    let block = |start: &str| -> String {
        compose
            .split(start)
            .nth(1)
            .unwrap_or_else(|| panic!("no {start:?} in the compose file"))
            .split("\n\n")
            .next()
            .expect("its block")
            .to_string()
    };
    for start in ["x-lander-env: &lander-env\n", "\n  lander-s3:\n"] {
        let b = block(start);
        assert!(
            b.lines().any(|l| l.trim() == "LANDER_TABLE_FORMAT: delta"),
            "{start:?} does not set LANDER_TABLE_FORMAT: delta:\n{b}"
        );
    }
    let spark = block("\n  spark:\n");
    for needle in [
        "\"--packages\", \"io.delta:delta-spark_2.12:",
        "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "FROM delta.`hdfs://namenode:8020/proyecto/spark/streaming/bronze/gharchive`",
    ] {
        assert!(
            spark.contains(needle),
            "the spark service lacks {needle}:\n{spark}"
        );
    }
    assert!(!spark.contains("parquet.`"), "{spark}");
}
