//! N workers over one landing and one Delta bronze: each takes the files whose FNV-1a 64 hash of
//! `<dataset>/<path>` mod N is its index, and the cross-writer check before every commit keeps each key once even
//! when the same events arrive in files owned by different workers, when a worker is held between its check and
//! its commit while another commits the same keys, and when N changes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common::data::{distinct_events, gz_lines};
use crate::common::delta::{local_rows_and_distinct, rows_and_distinct, table_url};
use crate::common::workers::{
    checkpoint_of, copy_name, finish_on, gzip, owner, spawn_on, worker_args,
};
use crate::common::*;

/// Runs workers `0..n` at the same time; returns each one's log.
fn run_workers(w: &Workdir, n: usize, extra: &[&str]) -> Vec<String> {
    let workers: Vec<Background> = (0..n)
        .map(|i| Background::start(w, &format!("w{i}-of-{n}"), &worker_args(w, i, n, extra)))
        .collect();
    workers
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let (status, _, log) = b.wait();
            assert!(status.success(), "worker {i}/{n} failed:\n{log}");
            log
        })
        .collect()
}

/// `checkpoint verify --keys` with worker `i`'s checkpoint: every key once in bronze.
fn assert_verify_keys(w: &Workdir, i: usize) {
    let cp = checkpoint_of(w, i).display().to_string();
    let (landing, bronze) = (
        w.landing().display().to_string(),
        w.bronze().display().to_string(),
    );
    w.run_ok(&[
        "checkpoint",
        "verify",
        "--keys",
        "--landing",
        &landing,
        "--bronze",
        &bronze,
        "--checkpoint",
        &cp,
    ]);
}

/// The GH Archive hour `name` as a file of `w` (`hours/<name>`): the sample's bytes, or on a plain clone the
/// bundled prefix or the stand-in `data::hour_bytes` makes.
fn hour_file(w: &Workdir, name: &str) -> PathBuf {
    let p = w.path().join("hours").join(name);
    if !p.is_file() {
        std::fs::create_dir_all(p.parent().expect("dir")).expect("mkdir");
        std::fs::write(&p, crate::common::data::hour_bytes(name)).expect("write");
    }
    p
}

/// Lands the five sample hours under their names, and for each one a copy (same bytes) under a name owned by
/// each other worker of `n`, plus a "scaled" file: the first half of 2015-01-01-0 followed by all of
/// 2015-01-01-1, owned by a worker other than both hours' owners when there is one. Returns the originals.
fn land_with_cross_worker_copies(w: &Workdir, n: u64) -> Vec<PathBuf> {
    let names = [
        "2011-02-15-0.json.gz",
        "2012-02-15-0.json.gz",
        "2013-02-15-0.json.gz",
        "2015-01-01-0.json.gz",
        "2015-01-01-1.json.gz",
    ];
    let mut originals = Vec::new();
    for name in names {
        let src = hour_file(w, name);
        w.land(&src, "gharchive", name);
        let mine = owner(&format!("gharchive/{name}"), n);
        let stem = name.trim_end_matches(".json.gz");
        for other in (0..n).filter(|o| *o != mine) {
            w.land(&src, "gharchive", &copy_name(stem, n, other));
        }
        originals.push(src);
    }
    let a = gz_lines(&hour_file(w, "2015-01-01-0.json.gz"));
    let b = gz_lines(&hour_file(w, "2015-01-01-1.json.gz"));
    let mixed: Vec<Vec<u8>> = a[..a.len() / 2].iter().chain(&b).cloned().collect();
    w.land_bytes("gharchive", "mixed-2015-01-01.json.gz", &gzip(&mixed));
    originals
}

#[test]
fn three_workers_ingest_every_event_once_when_copies_land_with_different_workers() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    let originals = land_with_cross_worker_copies(&w, 3);
    let refs: Vec<&Path> = originals.iter().map(PathBuf::as_path).collect();
    let expected = distinct_events(&refs);
    let logs = run_workers(&w, 3, &[]);
    // Each worker read only its own files: every landed file was committed by exactly one checkpoint.
    let mut landed: Vec<String> = Vec::new();
    for e in walkdir(&w.landing().join("gharchive")) {
        landed.push(e);
    }
    let mut read_by: Vec<BTreeSet<String>> = Vec::new();
    for i in 0..3 {
        let cp = checkpoint_of(&w, i).display().to_string();
        let out = w.run_ok(&["checkpoint", "list", "--checkpoint", &cp, "--json"]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("list json");
        let paths: BTreeSet<String> = v
            .as_array()
            .expect("array")
            .iter()
            .map(|f| f["path"].as_str().expect("path").to_string())
            .collect();
        for p in &paths {
            assert_eq!(owner(p, 3), i as u64, "worker {i} read {p}");
        }
        read_by.push(paths);
    }
    let all: BTreeSet<String> = read_by.iter().flatten().cloned().collect();
    assert_eq!(
        all.len(),
        landed.len(),
        "every file read once: {all:?} vs {landed:?}"
    );
    assert!(read_by.iter().all(|r| !r.is_empty()), "{read_by:?}");
    let (rows, distinct) = local_rows_and_distinct(&w.bronze().join("gharchive"), "event_key");
    assert_eq!(
        (rows, distinct),
        (expected, expected),
        "logs:\n{}",
        logs.join("\n---\n")
    );
    assert_verify_keys(&w, 0);
}

/// Landing-relative paths of the files under `dir` (recursively).
fn walkdir(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir.parent().expect("landing"))
                    .expect("below landing");
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Worker 0 is held between its check and its commit while worker 1 commits the same keys: worker 0 loses the
/// version race, its check of the new version finds the keys, and its batch runs again without them. Two
/// shapes: a whole copy (every key collides) and a file sharing half its events (some collide).
#[test]
fn a_worker_held_between_check_and_commit_drops_what_another_committed_meanwhile() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let hours = Workdir::new();
    let hour0 = hour_file(&hours, "2015-01-01-0.json.gz");
    let hour1 = hour_file(&hours, "2015-01-01-1.json.gz");
    let a = gz_lines(&hour0);
    let b = gz_lines(&hour1);
    let half: Vec<Vec<u8>> = a[a.len() / 2..].iter().chain(&b).cloned().collect();
    for (shape, other) in [("copy", gzip(&a)), ("half", gzip(&half))] {
        let w = Workdir::new();
        // hour 0 under a name worker 0 owns, the other file under one worker 1 owns.
        let name0 = copy_name("h0", 2, 0);
        let name1 = copy_name(&format!("{shape}-h1"), 2, 1);
        w.land(&hour0, "gharchive", &name0);
        let src1 = w.path().join("other.json.gz");
        std::fs::write(&src1, &other).expect("write");
        w.land(&src1, "gharchive", &name1);
        let release = w.path().join("release");
        let held = w.path().join("release.held");
        let mut c = w.cmd();
        c.env("LANDER_HOLD_AFTER_CHECK", &release);
        let w0 = {
            let args = worker_args(&w, 0, 2, &[]);
            let stdout = std::fs::File::create(w.path().join("w0.out")).expect("out");
            let stderr = std::fs::File::create(w.path().join("w0.err")).expect("err");
            c.args(&args)
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .expect("spawn")
        };
        assert!(
            wait_until(std::time::Duration::from_secs(60), || held.exists()),
            "worker 0 never reached the hold: {}",
            std::fs::read_to_string(w.path().join("w0.err")).unwrap_or_default()
        );
        let args = worker_args(&w, 1, 2, &[]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        w.run_ok(&refs);
        std::fs::write(&release, b"").expect("release");
        let out = w0.wait_with_output().expect("wait worker 0");
        let log = std::fs::read_to_string(w.path().join("w0.err")).unwrap_or_default();
        assert!(out.status.success(), "{shape}: worker 0 failed:\n{log}");
        assert!(
            log.contains("lost the delta version race"),
            "{shape}: worker 0 did not lose the version race:\n{log}"
        );
        assert!(
            log.contains("another writer committed at table version"),
            "{shape}: worker 0 did not see the collision:\n{log}"
        );
        let mut sources = vec![hour0.as_path()];
        if shape == "half" {
            sources.push(hour1.as_path());
        }
        let expected = distinct_events(&sources);
        let (rows, distinct) = local_rows_and_distinct(&w.bronze().join("gharchive"), "event_key");
        assert_eq!((rows, distinct), (expected, expected), "{shape}:\n{log}");
        assert_verify_keys(&w, 0);
    }
}

/// Three workers, then two (the documented procedure: stop all, start the new set with --rebind): files that
/// move to another worker are read again by it and nothing is doubled; without --rebind a worker refuses.
#[test]
fn going_from_three_workers_to_two_keeps_every_event_once() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    let originals = land_with_cross_worker_copies(&w, 3);
    run_workers(&w, 3, &[]);
    // More files arrive, then the group shrinks to two.
    let extra = ["2015-01-01-1.json.gz", "2013-02-15-0.json.gz"];
    for (k, name) in extra.iter().enumerate() {
        w.land(
            &hour_file(&w, name),
            "gharchive",
            &format!("late/{k}-{name}"),
        );
    }
    let args = worker_args(&w, 0, 2, &[]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = w.run(&refs);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("worker 0/3") && err.contains("worker 0/2") && err.contains("--rebind"),
        "{err}"
    );
    let logs = run_workers(&w, 2, &["--rebind"]);
    let refs: Vec<&Path> = originals.iter().map(PathBuf::as_path).collect();
    let expected = distinct_events(&refs);
    let (rows, distinct) = local_rows_and_distinct(&w.bronze().join("gharchive"), "event_key");
    assert_eq!(
        (rows, distinct),
        (expected, expected),
        "{}",
        logs.join("\n---\n")
    );
    assert_verify_keys(&w, 1);
    // A file that moved from worker 2 to worker 0 or 1 was read again (its rows dropped as duplicates).
    let moved = walkdir(&w.landing().join("gharchive"))
        .into_iter()
        .filter(|p| owner(p, 3) == 2)
        .count();
    assert!(moved > 0);
    let dropped: u64 = logs
        .iter()
        .flat_map(|l| l.split("duplicates=").skip(1))
        .filter_map(|rest| rest.split(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(dropped > 0, "{}", logs.join("\n---\n"));
}

/// `explain` and `checkpoint pending` name the worker that owns a file another worker's checkpoint never reads.
#[test]
fn explain_and_pending_say_when_a_file_belongs_to_another_worker() {
    let w = Workdir::new();
    let src = fixtures_landing().join("gharchive");
    let first = std::fs::read_dir(&src)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .find(|p| p.is_file())
        .expect("a fixture");
    let theirs = copy_name("x", 2, 1);
    let mine = copy_name("y", 2, 0);
    w.land(&first, "gharchive", &theirs);
    w.land(&first, "gharchive", &mine);
    let cp = checkpoint_of(&w, 0).display().to_string();
    let (landing, bronze) = (
        w.landing().display().to_string(),
        w.bronze().display().to_string(),
    );
    let loc = [
        "--landing",
        landing.as_str(),
        "--bronze",
        bronze.as_str(),
        "--checkpoint",
        cp.as_str(),
    ];
    // Bind the checkpoint as worker 0/2 with a first run.
    let args = worker_args(&w, 0, 2, &[]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    w.run_ok(&refs);
    w.land(&first, "gharchive", &copy_name("z", 2, 1));
    let mut a = vec!["explain"];
    a.extend(loc);
    let rel = format!("gharchive/{theirs}");
    a.push(&rel);
    let out = w.run_ok(&a);
    assert!(
        out.contains("belongs to worker 1") && out.contains("worker 0/2"),
        "{out}"
    );
    let mut p = vec!["checkpoint", "pending"];
    p.extend(loc);
    let out = w.run(&p);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("belong to other workers (this checkpoint is worker 0/2)"),
        "{err}"
    );
}

/// `--workers N` takes the index from a StatefulSet pod name in `$HOSTNAME` (`lander-1` is worker 1 of 2, also
/// qualified) and refuses a host name without one (exit 2).
#[test]
fn workers_n_takes_the_index_from_the_pod_name() {
    let w = Workdir::new();
    let src = fixtures_landing().join("gharchive");
    let fixture = std::fs::read_dir(&src)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .find(|p| p.is_file())
        .expect("a fixture");
    let names: Vec<String> = (0..2u64)
        .flat_map(|o| {
            [
                copy_name(&format!("a{o}"), 2, o),
                copy_name(&format!("b{o}"), 2, o),
            ]
        })
        .collect();
    for n in &names {
        w.land(&fixture, "gharchive", n);
    }
    let mut args = w.once_args();
    args.extend(["--workers".to_string(), "2".to_string()]);
    let out = w
        .cmd()
        .args(&args)
        .env("HOSTNAME", "lander-1.lander.ingest.svc.cluster.local")
        .output()
        .expect("spawn");
    assert_success(
        &out,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        w.path(),
    );
    let cp = w.checkpoint().display().to_string();
    let list = w.run_ok(&["checkpoint", "list", "--checkpoint", &cp, "--json"]);
    let v: serde_json::Value = serde_json::from_str(list.trim()).expect("list json");
    let read: BTreeSet<String> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|f| f["path"].as_str().expect("path").to_string())
        .collect();
    let expected: BTreeSet<String> = names
        .iter()
        .map(|n| format!("gharchive/{n}"))
        .filter(|p| owner(p, 2) == 1)
        .collect();
    assert_eq!(read, expected);
    let out = w
        .cmd()
        .args(&args)
        .env("HOSTNAME", "ingest-box")
        .output()
        .expect("spawn");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ingest-box") && err.contains("--worker I/N"),
        "{err}"
    );
}

/// Three workers with landing and bronze on S3 (moto) and on HDFS (MiniDFSCluster): every event once, read back
/// by delta-rs, with the same hours landed under names owned by different workers.
#[test]
fn three_workers_on_s3_and_hdfs_ingest_every_event_once() {
    use crate::common::backends::{Kind, Target};
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    for kind in [Kind::S3, Kind::Hdfs] {
        let t = Target::new(kind);
        let names = [
            "2013-02-15-0.json.gz",
            "2015-01-01-0.json.gz",
            "2015-01-01-1.json.gz",
        ];
        let mut originals = Vec::new();
        for name in names {
            let src = hour_file(&t.wd, name);
            t.land(&src, "gharchive", name);
            let mine = owner(&format!("gharchive/{name}"), 3);
            let stem = name.trim_end_matches(".json.gz");
            for other in (0..3).filter(|o| *o != mine) {
                t.land(&src, "gharchive", &copy_name(stem, 3, other));
            }
            originals.push(src);
        }
        let children: Vec<_> = (0..3)
            .map(|i| (i, spawn_on(&t, i, 3, &[], &format!("w{i}"))))
            .collect();
        for (i, c) in children {
            finish_on(&t, c, &format!("w{i}"));
        }
        let (url, opts) = table_url(&t, kind, "gharchive");
        let counts = rows_and_distinct(&url, &opts, "event_key");
        let refs: Vec<&Path> = originals.iter().map(PathBuf::as_path).collect();
        let expected = distinct_events(&refs);
        assert_eq!(counts, (expected, expected));
        let cp = checkpoint_of(&t.wd, 0).display().to_string();
        t.run_ok(&[
            "checkpoint",
            "verify",
            "--keys",
            "--landing",
            &t.landing_url,
            "--bronze",
            &t.bronze_url,
            "--checkpoint",
            &cp,
        ]);
    }
}

/// Worker 1 aborts after each commit step (its batch in the table but not in its checkpoint, or the reverse)
/// while workers 0 and 2 ingest copies of its files, then restarts: every event once.
#[test]
fn a_worker_aborted_at_every_commit_step_restarts_and_every_event_stays_once() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    for step in [
        "runs",
        "publishing",
        "published",
        "quarantined",
        "committed",
    ] {
        let w = Workdir::new();
        let originals = land_with_cross_worker_copies(&w, 3);
        let mut children = Vec::new();
        for i in 0..3 {
            let args = worker_args(&w, i, 3, &[]);
            let mut c = w.cmd();
            if i == 1 {
                c.env("LANDER_FAIL_AFTER", step);
            }
            let err = std::fs::File::create(w.path().join(format!("w{i}.err"))).expect("log");
            children.push(
                c.args(&args)
                    .stdout(std::process::Stdio::null())
                    .stderr(err)
                    .spawn()
                    .expect("spawn"),
            );
        }
        for (i, mut c) in children.into_iter().enumerate() {
            let status = c.wait().expect("wait");
            let log =
                std::fs::read_to_string(w.path().join(format!("w{i}.err"))).unwrap_or_default();
            assert_eq!(status.success(), i != 1, "{step}: worker {i}:\n{log}");
        }
        let logs = run_workers(&w, 3, &[]);
        let refs: Vec<&Path> = originals.iter().map(PathBuf::as_path).collect();
        let expected = distinct_events(&refs);
        let (rows, distinct) = local_rows_and_distinct(&w.bronze().join("gharchive"), "event_key");
        assert_eq!(
            (rows, distinct),
            (expected, expected),
            "{step}:\n{}",
            logs.join("\n---\n")
        );
        for i in 0..3 {
            assert_verify_keys(&w, i);
        }
    }
}
