//! The incremental modes against a live landing directory: available-now, micro-batch, continuous (rename,
//! new dataset directory, tailing), shutdown on SIGTERM, and the single-writer lock.

use std::io::Write;
use std::time::Duration;

use crate::common::daemon::Daemon;
use crate::common::data::hour_events;
use crate::common::*;

const DEADLINE: Duration = Duration::from_secs(30);

fn lines_of(name: &str, n: usize) -> Vec<Vec<u8>> {
    use std::io::BufRead;
    let f = std::fs::File::open(gharchive(name)).expect("open");
    std::io::BufReader::new(flate2::read::MultiGzDecoder::new(f))
        .split(b'\n')
        .take(n)
        .map(|l| l.expect("line"))
        .collect()
}

#[test]
fn available_now_splits_into_bounded_batches() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let hours = gharchive_hours();
    let w = Workdir::new();
    for f in &hours {
        w.land(&gharchive(f), "gharchive", f);
    }
    let mut args = vec![
        "run",
        "--mode",
        "available-now",
        "--max-files-per-batch",
        "2",
        "--settle-time",
        "0s",
    ];
    let loc = w.location_args();
    args.extend(loc.iter().map(String::as_str));
    let out = w.run_ok(&args);
    let batches = hours.len().div_ceil(2);
    for id in 1..=batches {
        assert!(
            out.contains(&format!("gharchive: batch {id} committed")),
            "{out}"
        );
    }
    assert!(!out.contains(&format!("batch {}", batches + 1)), "{out}");
    assert_eq!(
        count_rows(&w.bronze().join("gharchive")),
        hour_events(&hours)
    );
    let again = w.run_ok(&args);
    assert!(again.contains("nothing new"), "{again}");
}

#[test]
fn micro_batch_picks_up_a_file_landed_after_start() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let (first, second) = (
        hour_events(&["2013-02-15-0.json.gz"]),
        hour_events(&["2011-02-15-0.json.gz"]),
    );
    let w = Workdir::new();
    w.land(
        &gharchive("2013-02-15-0.json.gz"),
        "gharchive",
        "2013-02-15-0.json.gz",
    );
    let d = Daemon::start(
        &w,
        "micro-batch",
        &["--interval", "1s", "--settle-time", "0s"],
    );
    assert!(
        wait_until(DEADLINE, || count_rows(&w.bronze()) == first),
        "first file not ingested"
    );
    let landed = std::time::Instant::now();
    w.land(
        &gharchive("2011-02-15-0.json.gz"),
        "gharchive",
        "2011-02-15-0.json.gz",
    );
    assert!(
        wait_until(DEADLINE, || count_rows(&w.bronze()) == first + second),
        "second file not ingested"
    );
    // Within two intervals (plus generous slack for a loaded CI machine).
    assert!(
        landed.elapsed() < Duration::from_secs(8),
        "took {:?}",
        landed.elapsed()
    );
    let (status, stdout, stderr) = d.stop();
    assert!(status.success(), "{status}\n{stderr}");
    assert!(
        stdout.contains("stopped: 2 batch(es) committed"),
        "{stdout}"
    );
}

#[test]
fn continuous_renamed_file_new_dataset_dir_and_tailing() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let hour = hour_events(&["2011-02-15-0.json.gz"]);
    let w = Workdir::new();
    std::fs::create_dir_all(w.landing().join("gharchive")).expect("mkdir");
    let d = Daemon::start(
        &w,
        "continuous",
        &["--settle-time", "2s", "--poll-interval", "30s"],
    );
    std::thread::sleep(Duration::from_millis(300));

    // 1. A file renamed into place (gzip: needs no settle time because it was renamed in).
    w.land(
        &gharchive("2011-02-15-0.json.gz"),
        "gharchive",
        "2011-02-15-0.json.gz",
    );
    assert!(
        wait_until(DEADLINE, || count_rows(&w.bronze().join("gharchive"))
            == hour),
        "renamed-in file"
    );

    // 2. A file created in a dataset directory that did not exist at start.
    w.land_bytes(
        "sales",
        "new.csv",
        b"transaction_id,timestamp,customer_id,product_id,category,quantity,unit_price,total,payment_method,status\n\
          1,2025-10-25 19:07:27,8961,79973,Deportes,7,160.74,1125.18,Transferencia,Cancelada\n",
    );
    assert!(
        wait_until(DEADLINE, || count_rows(&w.bronze().join("sales")) == 1),
        "new dataset dir"
    );

    // 3. A growing NDJSON file: complete lines are ingested, a half line waits.
    let lines = lines_of("2015-01-01-0.json.gz", 6);
    let path = w.landing().join("gharchive/stream.json");
    let mut f = std::fs::File::create(&path).expect("create");
    for l in &lines[..3] {
        f.write_all(l).expect("w");
        f.write_all(b"\n").expect("w");
    }
    let half = lines[3].len() / 2;
    f.write_all(&lines[3][..half]).expect("w");
    f.flush().expect("flush");
    assert!(
        wait_until(DEADLINE, || count_rows(&w.bronze().join("gharchive"))
            == hour + 3),
        "first 3 lines"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        count_rows(&w.bronze().join("gharchive")),
        hour + 3,
        "the half line must wait"
    );
    f.write_all(&lines[3][half..]).expect("w");
    f.write_all(b"\n").expect("w");
    for l in &lines[4..] {
        f.write_all(l).expect("w");
        f.write_all(b"\n").expect("w");
    }
    f.flush().expect("flush");
    assert!(
        wait_until(DEADLINE, || count_rows(&w.bronze().join("gharchive"))
            == hour + 6),
        "appended lines"
    );
    let ids = string_column(&w.bronze().join("gharchive"), "event_key");
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "no duplicates while tailing");

    let (status, _, stderr) = d.stop();
    assert!(status.success(), "{stderr}");
    // After a restart nothing is read twice.
    let out = w.run_once(&[]);
    assert!(out.contains("nothing new"), "{out}");
}

#[test]
fn sigterm_mid_run_then_restart_finishes_without_duplicates() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let hours = gharchive_hours();
    let events = hour_events(&hours);
    let w = Workdir::new();
    for f in &hours {
        w.land(&gharchive(f), "gharchive", f);
    }
    // Copies with new names: more batches, all duplicates of the originals.
    for f in &hours {
        w.land(&gharchive(f), "gharchive", &format!("copy/{f}"));
    }
    let d = Daemon::start(
        &w,
        "available-now",
        &["--max-files-per-batch", "1", "--settle-time", "0s"],
    );
    assert!(
        wait_until(DEADLINE, || !parquet_files(&w.bronze().join("gharchive"))
            .is_empty()),
        "first batch"
    );
    let (status, _, stderr) = d.stop();
    // A bounded run stopped before it read everything exits 143 (SIGTERM) and says so; 0 if it had finished.
    match status.code() {
        Some(143) => assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}"),
        _ => assert!(status.success(), "{status}: {stderr}"),
    }
    // Bronze equals committed batches: every row unique, even right after the stop.
    let keys = string_column(&w.bronze().join("gharchive"), "event_key");
    assert_eq!(
        keys.iter().collect::<std::collections::HashSet<_>>().len(),
        keys.len()
    );
    assert!(parquet_files(&w.bronze().join("_staging")).is_empty());
    w.run_once(&[]);
    assert_eq!(count_rows(&w.bronze().join("gharchive")), events);
    let keys = string_column(&w.bronze().join("gharchive"), "event_key");
    assert_eq!(
        keys.iter().collect::<std::collections::HashSet<_>>().len(),
        events
    );
}

#[test]
fn a_second_instance_on_the_same_checkpoint_is_refused() {
    let w = Workdir::new();
    std::fs::create_dir_all(w.landing().join("gharchive")).expect("mkdir");
    let d = Daemon::start(&w, "continuous", &[]);
    let lock = w.checkpoint().join("LOCK");
    assert!(
        wait_until(DEADLINE, || std::fs::read_to_string(&lock)
            .is_ok_and(|s| s.trim() == d.pid().to_string())),
        "daemon did not take the lock"
    );
    let mut args = vec!["run", "--mode", "once"];
    let loc = w.location_args();
    args.extend(loc.iter().map(String::as_str));
    let out = w.run(&args);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "locked by another lander process (pid {})",
            d.pid()
        )),
        "{stderr}"
    );
    let (status, _, stderr) = d.stop();
    assert!(status.success(), "{status}\n{stderr}");
}
