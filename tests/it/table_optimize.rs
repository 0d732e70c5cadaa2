//! `lander table optimize` and `lander table check [--repair]`: compaction of many small commits
//! into few parts with the same multiset of rows (read back by delta-rs and DuckDB, time travel included), a
//! compaction racing a `run` and another compaction, and the repair of lost parts followed by re-ingestion that
//! restores exactly the lost rows.
//!
//! Expectations come from the landed bytes (event ids, distinct events), or from delta-rs reading the table
//! before the operation, never from lander's output.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::data::{gz_lines, gz_lines_of, hour_bytes, split_sample};
use crate::common::delta::{
    assert_table_exact, delta_rs, duckdb_delta, expected_of, files_on_disk,
};
use crate::common::table::{
    assert_table_exact_keys, land_all, one_per_commit_args, operations, read_rows,
    run_one_per_commit, table_cmd, table_ok, Rows, DAY,
};
use crate::common::workers::gzip;
use crate::common::*;

/// Small commits into one day for the main compaction test, as the issue asks: at least 1,500 `continuous`
/// commits of one file each (the two 2015-01-01 samples split into files of 10 events: 1,513 commits).
const SMALL_COMMITS: usize = 1500;

pub(crate) fn in_partition<'a>(files: &'a [String], dir: &str) -> Vec<&'a String> {
    files
        .iter()
        .filter(|f| f.starts_with(&format!("{dir}/")))
        .collect()
}

/// The two samples of 2015-01-01 split into at least `n` gzip files of equal event counts (the last shorter),
/// and their event ids.
fn split_day(n: usize) -> (Vec<(String, Vec<u8>)>, std::collections::HashSet<String>) {
    let mut lines = gz_lines(&gharchive("2015-01-01-0.json.gz"));
    lines.extend(gz_lines(&gharchive("2015-01-01-1.json.gz")));
    let ids = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).expect("json");
            v["id"].as_str().expect("id").to_string()
        })
        .collect();
    let per = (lines.len() / n).max(1);
    let files = lines
        .chunks(per)
        .enumerate()
        .map(|(i, chunk)| (format!("part-{i:05}.json.gz"), gzip(chunk)))
        .collect();
    (files, ids)
}

/// A `continuous` daemon with one file per batch (automatic compaction off) until the table has `commits`
/// commits after version 0, then SIGTERM.
fn continuous_one_per_commit(w: &Workdir, table: &Path, commits: usize) {
    let mut a: Vec<String> = [
        "run",
        "--mode",
        "continuous",
        "--max-files-per-batch",
        "1",
        "--settle-time",
        "0s",
        "--table-format",
        "delta",
    ]
    .map(String::from)
    .to_vec();
    a.extend(w.location_args());
    let mut child = w
        .cmd()
        .args(&a)
        .env("LANDER_COMPACT_MIN_FILES", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn lander");
    let last = table.join(format!("_delta_log/{commits:020}.json"));
    let done = wait_until(std::time::Duration::from_secs(600), || last.exists());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert!(
        done && status.success(),
        "{commits} commits, then a clean exit"
    );
}

#[test]
fn optimize_compacts_many_small_commits_into_at_most_two_parts_with_the_same_rows() {
    let Some(_) = require_shared_data() else {
        return;
    };
    let w = Workdir::new();
    let (files, ids) = split_day(SMALL_COMMITS);
    land_all(&w, &files);
    let table = w.bronze().join("gharchive");
    let commits = files.len();
    let started = std::time::Instant::now();
    continuous_one_per_commit(&w, &table, commits);
    eprintln!("{commits} continuous commits took {:?}", started.elapsed());
    let before = read_rows(&table, None);
    assert!(commits >= SMALL_COMMITS, "{commits}");
    assert_eq!(before.version, commits as u64, "one commit per file");
    assert_eq!(in_partition(&before.files, DAY).len(), commits);
    let keys: BTreeSet<&String> = before.rows.iter().map(|(k, _)| k).collect();
    assert_eq!(keys.len(), ids.len(), "every event once before optimize");

    let started = std::time::Instant::now();
    let out = table_ok(&w, &["optimize"]);
    let took = started.elapsed();
    assert!(
        out.contains(&format!("{commits} parts")),
        "the summary names the parts read: {out}"
    );
    let after = read_rows(&table, None);
    assert_eq!(after.version, before.version + 1, "one commit: {out}");
    let parts = in_partition(&after.files, DAY);
    assert!(!parts.is_empty() && parts.len() <= 2, "{parts:?}");
    assert_eq!(
        after.rows, before.rows,
        "the same multiset of rows, every column"
    );
    // Time travel to the version before the compaction still reads (its parts are kept for it).
    assert_eq!(read_rows(&table, Some(before.version)).rows, before.rows);
    let (n, distinct) = duckdb_delta(&table);
    assert_eq!(
        (n, distinct),
        (ids.len() as u64, ids.len() as u64),
        "DuckDB reads the compacted table"
    );
    eprintln!("optimize of {commits} parts took {took:?}");

    // Nothing left to compact: a second run commits nothing and changes nothing.
    let again = table_ok(&w, &["optimize"]);
    assert!(again.contains("0 partition(s) compacted"), "{again}");
    assert_eq!(read_rows(&table, None).version, after.version);
    let check = table_ok(&w, &["check"]);
    assert!(check.contains("all present"), "{check}");
    // The checkpoint's batches name parts the compaction removed: `checkpoint verify` knows they were rewritten.
    let mut verify: Vec<String> = vec!["checkpoint".into(), "verify".into()];
    verify.extend(w.location_args());
    let refs: Vec<&str> = verify.iter().map(String::as_str).collect();
    w.run_ok(&refs);
}

/// Lands the 2015-01-01-0 hour split into 24 files, one commit each, and reads the table; returns the event ids,
/// the rows and files before any optimize, and a target of six median parts (about 600 KiB on the genuine hour:
/// several outputs, far fewer than 24 parts, whatever the size of the hour at hand).
fn day_in_24_commits(w: &Workdir) -> (std::collections::HashSet<String>, Rows, u64) {
    let (files, ids) = split_sample(24);
    land_all(w, &files);
    run_one_per_commit(w);
    let table = w.bronze().join("gharchive");
    let before = read_rows(&table, None);
    let mut sizes: Vec<u64> = in_partition(&before.files, DAY)
        .iter()
        .map(|p| std::fs::metadata(table.join(p)).expect("part").len())
        .collect();
    assert_eq!(sizes.len(), files.len(), "one part per commit");
    sizes.sort_unstable();
    (ids, before, 6 * sizes[sizes.len() / 2])
}

/// The day's parts after an optimize to `target`: packed into groups of at most six, each output within the
/// target (plus a margin for the footer of a file written anew).
fn assert_packed(table: &Path, files: &[String], target: u64, out: &str) {
    let parts = in_partition(files, DAY);
    assert!(parts.len() >= 3 && parts.len() <= 8, "{parts:?}\n{out}");
    for p in &parts {
        let size = std::fs::metadata(table.join(p)).expect("part").len();
        assert!(
            size <= target * 7 / 6,
            "{p} is {size} bytes, above the target {target}"
        );
    }
}

#[test]
fn optimize_where_and_target_size_choose_partitions_and_output_sizes() {
    let w = Workdir::new();
    // A second day first: the 2012 hour (or its stand-in) split into 6 files, committed one by one below.
    let old = gz_lines_of(&hour_bytes("2012-02-15-0.json.gz"));
    for (i, chunk) in old.chunks(old.len().div_ceil(6)).enumerate() {
        w.land_bytes("gharchive", &format!("old-{i}.json.gz"), &gzip(chunk));
    }
    let (ids, before, target) = day_in_24_commits(&w);
    let table = w.bronze().join("gharchive");
    let other: Vec<String> = before
        .files
        .iter()
        .filter(|f| !f.starts_with(DAY))
        .cloned()
        .collect();
    assert!(
        other.len() >= 6,
        "the 2012 day has its own small parts: {other:?}"
    );

    let target_arg = target.to_string();
    let out = table_ok(
        &w,
        &[
            "optimize",
            "--where",
            "year=2015 and month=1",
            "--target-file-bytes",
            &target_arg,
        ],
    );
    let after = read_rows(&table, None);
    assert_eq!(after.rows, before.rows, "the same rows: {out}");
    let untouched: Vec<String> = after
        .files
        .iter()
        .filter(|f| !f.starts_with(DAY))
        .cloned()
        .collect();
    assert_eq!(untouched, other, "--where leaves other partitions alone");
    assert_packed(&table, &after.files, target, &out);
    let keys: BTreeSet<&String> = after.rows.iter().map(|(k, _)| k).collect();
    assert!(ids.iter().all(|i| keys.contains(i)));
}

/// `target_file_bytes` in `[datasets.gharchive]` (six median parts, the top level keeps 256 MiB) sizes `table
/// optimize`'s outputs; `--target-file-bytes` still wins over it.
#[test]
fn optimize_takes_the_dataset_s_own_target_file_bytes() {
    let w = Workdir::new();
    let (ids, before, target) = day_in_24_commits(&w);
    // `./lander.toml` in the directory lander runs in, written after the ingest (which it would size too).
    std::fs::write(
        w.path().join("lander.toml"),
        format!("[datasets.gharchive]\nformat = \"gharchive\"\ntarget_file_bytes = {target}\n"),
    )
    .expect("write lander.toml");
    let table = w.bronze().join("gharchive");

    let out = table_ok(&w, &["optimize"]);
    let after = read_rows(&table, None);
    assert_eq!(after.rows, before.rows, "the same rows: {out}");
    // 256 MiB would make one part.
    assert_packed(&table, &after.files, target, &out);

    let out = table_ok(&w, &["optimize", "--target-file-bytes", "256MiB"]);
    let last = read_rows(&table, None);
    assert_eq!(last.rows, before.rows, "the same rows: {out}");
    assert_eq!(
        in_partition(&last.files, DAY).len(),
        1,
        "the flag wins: {out}"
    );
    let keys: BTreeSet<&String> = last.rows.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ids.iter().collect::<BTreeSet<_>>(), "every event");
    assert_eq!(last.rows.len(), ids.len(), "every event once");
}

#[test]
fn optimize_racing_a_run_and_another_optimize_loses_nothing_and_doubles_nothing() {
    if !require_samples(&["gharchive/2015-01-01-0.json.gz"]) {
        return;
    }
    let w = Workdir::new();
    let (files, ids) = split_sample(160);
    let (first, second) = files.split_at(60);
    land_all(&w, first);
    run_one_per_commit(&w);
    let table = w.bronze().join("gharchive");

    // A compaction stopped between writing its outputs and committing, while another compaction commits.
    let gate = w.path().join("gate");
    std::fs::create_dir_all(&gate).expect("mkdir");
    let mut args: Vec<String> = vec!["table".into(), "optimize".into()];
    args.extend(w.location_args());
    let held = w
        .cmd()
        .args(&args)
        .env("LANDER_TEST_GATE", &gate)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn lander");
    assert!(
        wait_until(std::time::Duration::from_secs(60), || gate
            .join("optimize-commit.waiting")
            .exists()),
        "the held compaction reached its commit"
    );
    let won = table_ok(&w, &["optimize"]);
    assert!(won.contains("1 partition(s) compacted"), "{won}");
    std::fs::write(gate.join("optimize-commit.open"), b"").expect("open the gate");
    let lost = held.wait_with_output().expect("wait");
    let lost_out = String::from_utf8_lossy(&lost.stdout);
    assert!(lost.status.success(), "{lost_out}");
    assert!(lost_out.contains("abandoned"), "{lost_out}");
    // The loser's outputs are gone: the only compacted part on disk is the winner's.
    let compacted: Vec<String> = files_on_disk(&table)
        .into_iter()
        .filter(|f| f.contains("-opt"))
        .collect();
    assert_eq!(compacted.len(), 1, "{compacted:?}");

    // A run appending to the same day while a compaction commits: the compaction reads its snapshot, is held
    // before its commit until the run has committed twice more, then commits over those appends (a lost version
    // race it must rebase, not abandon); both succeed and every event is there once.
    let run_args = one_per_commit_args(&w);
    let commits_before = operations(&table).len();
    land_all(&w, second);
    let run = Background::start(&w, "run", &run_args);
    assert!(
        wait_until(std::time::Duration::from_secs(60), || operations(&table)
            .len()
            >= commits_before + 3),
        "the run committed its first small parts"
    );
    let gate2 = w.path().join("gate2");
    std::fs::create_dir_all(&gate2).expect("mkdir");
    let mut args: Vec<String> = vec![
        "table".into(),
        "optimize".into(),
        "--min-file-bytes".into(),
        "200KiB".into(),
    ];
    args.extend(w.location_args());
    let racing = w
        .cmd()
        .args(&args)
        .env("LANDER_TEST_GATE", &gate2)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn lander");
    assert!(
        wait_until(std::time::Duration::from_secs(60), || gate2
            .join("optimize-commit.waiting")
            .exists()),
        "the racing compaction reached its commit"
    );
    let at_gate = operations(&table).len();
    let appended = wait_until(std::time::Duration::from_secs(60), || {
        operations(&table).len() >= at_gate + 2
    });
    std::fs::write(gate2.join("optimize-commit.open"), b"").expect("open the gate");
    let raced = racing.wait_with_output().expect("wait");
    let raced_out = String::from_utf8_lossy(&raced.stdout);
    assert!(raced.status.success(), "{raced_out}");
    let (status, _, log) = run.wait();
    assert!(status.success(), "{log}");
    assert!(
        appended,
        "the run finished before it committed twice beside the held compaction; ops: {:?}",
        operations(&table)
    );
    assert!(
        raced_out.contains("1 partition(s) compacted"),
        "a compaction over concurrent appends commits: {raced_out}"
    );
    table_ok(&w, &["optimize"]);
    let r = assert_table_exact_keys(&table, &ids);
    assert!(in_partition(&r, DAY).len() <= 2, "{r:?}");
}

/// The `lander checkpoint reset --yes --file <f>` lines of a repair's output, as landing paths.
fn reset_files(out: &str) -> BTreeSet<String> {
    out.lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("lander checkpoint reset --yes --file ")
        })
        .map(String::from)
        .collect()
}

/// Forgets each landing file, then runs once: re-ingestion of what a repair lost.
fn reingest(w: &Workdir, files: &BTreeSet<String>) {
    let cp = w.checkpoint().display().to_string();
    for f in files {
        w.run_ok(&[
            "checkpoint",
            "reset",
            "--yes",
            "--file",
            f,
            "--checkpoint",
            &cp,
        ]);
    }
    run_one_per_commit(w);
}

#[test]
fn check_repair_then_reingest_restores_a_deleted_partition_exactly() {
    if !require_samples(&[
        "gharchive/2011-02-15-0.json.gz",
        "gharchive/2015-01-01-0.json.gz",
    ]) {
        return;
    }
    let w = Workdir::new();
    // Another day (the 2011 hour), and the day that is lost as two files of distinct events (the 2015-01-01-0
    // hour in halves): two parts in its partition.
    let mut landed = vec![w.land(
        &gharchive("2011-02-15-0.json.gz"),
        "gharchive",
        "2011-02-15-0.json.gz",
    )];
    let (halves, _) = split_sample(2);
    for (i, (_, bytes)) in halves.iter().enumerate() {
        landed.push(w.land_bytes("gharchive", &format!("2015-01-01-0-{i}.json.gz"), bytes));
    }
    run_one_per_commit(&w);
    let table = w.bronze().join("gharchive");
    let lost: Vec<String> = files_on_disk(&table)
        .into_iter()
        .filter(|f| f.starts_with(DAY))
        .collect();
    assert!(lost.len() >= 2, "{lost:?}");
    std::fs::remove_dir_all(table.join(DAY)).expect("delete the partition by hand");

    let out = table_cmd(&w, &["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for f in &lost {
        assert!(stdout.contains(f.as_str()), "check names {f}: {stdout}");
    }
    let repaired = table_ok(&w, &["check", "--repair"]);
    assert!(repaired.contains("repaired"), "{repaired}");
    // The rows that remain: exactly the 2011 file's.
    assert_table_exact(&table, &expected_of(&landed[..1]));
    assert!(table_ok(&w, &["check"]).contains("all present"));
    let resets = reset_files(&repaired);
    assert_eq!(
        resets,
        [
            "gharchive/2015-01-01-0-0.json.gz",
            "gharchive/2015-01-01-0-1.json.gz"
        ]
        .map(String::from)
        .into(),
        "the inputs of the lost parts, from the log: {repaired}"
    );
    reingest(&w, &resets);
    assert_table_exact(&table, &expected_of(&landed));
}

#[test]
fn check_repair_then_reingest_restores_lost_compacted_parts_beside_parts_that_remain() {
    if !require_samples(&["gharchive/2015-01-01-0.json.gz"]) {
        return;
    }
    let w = Workdir::new();
    let (files, ids) = split_sample(10);
    let (first, second) = files.split_at(8);
    land_all(&w, first);
    run_one_per_commit(&w);
    table_ok(&w, &["optimize"]);
    land_all(&w, second);
    run_one_per_commit(&w);
    let table = w.bronze().join("gharchive");
    let compacted: Vec<String> = delta_rs(&table, None)
        .files
        .into_iter()
        .filter(|f| f.contains("-opt"))
        .collect();
    assert_eq!(compacted.len(), 1, "{compacted:?}");
    let lost = files_on_disk(&table)
        .into_iter()
        .find(|f| f.contains("-opt"))
        .expect("the compacted part");
    std::fs::remove_file(table.join(&lost)).expect("delete the part by hand");

    let out = table_cmd(&w, &["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&lost), "{stdout}");
    assert!(stdout.contains("1 of 3 file(s)"), "{stdout}");
    let repaired = table_ok(&w, &["check", "--repair"]);
    // Traced through the compaction to the 8 landing files of the parts it replaced.
    let resets = reset_files(&repaired);
    let expected: BTreeSet<String> = first
        .iter()
        .map(|(n, _)| format!("gharchive/{n}"))
        .collect();
    assert_eq!(resets, expected, "{repaired}");
    // The two parts that remain keep their rows; the re-ingested files restore the rest, none twice.
    reingest(&w, &resets);
    // (The parts the compaction replaced stay on disk for time travel, so only the keys are compared.)
    assert_table_exact_keys(&table, &ids);
}
