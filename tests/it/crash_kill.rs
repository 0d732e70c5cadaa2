//! Random crashes: `lander run` is killed with SIGKILL at random moments, in `available-now` and in
//! `continuous` (and aborted after every commit step), and restarted; at the end every event is in bronze exactly once, no staging or temp file is
//! visible, and `lander checkpoint verify` is clean. The kill count is small for CI (`LANDER_KILLS` raises it for
//! a local soak run, e.g. `LANDER_KILLS=200 cargo test --features failpoints crash_kill -- --nocapture`).

use std::collections::HashSet;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::data::split_sample;
use crate::common::*;

/// Kills per mode in CI.
const CI_KILLS: usize = 20;

fn kills() -> usize {
    std::env::var("LANDER_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CI_KILLS)
}

/// xorshift64*: deterministic delays, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

fn spawn(w: &Workdir, mode: &str, extra: &[&str]) -> Child {
    let mut args: Vec<String> = vec!["run".into(), "--mode".into(), mode.into()];
    args.extend(w.location_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    w.cmd()
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lander")
}

/// SIGKILL (if still running); returns whether it was still running and its stderr.
fn kill(mut child: Child) -> (bool, String) {
    let running = child.try_wait().expect("try_wait").is_none();
    if running {
        child.kill().expect("kill");
    }
    let out = child.wait_with_output().expect("wait");
    (running, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Every event key in bronze exactly once, no staging object left, the checkpoint consistent with bronze.
fn assert_exactly_once(w: &Workdir, ids: &HashSet<String>) {
    let keys = string_column(&w.bronze().join("gharchive"), "event_key");
    let distinct: HashSet<String> = keys.iter().flatten().cloned().collect();
    assert_eq!(keys.len(), distinct.len(), "no key twice");
    assert_eq!(&distinct, ids, "every key once");
    assert!(
        parquet_files(&w.bronze().join("_staging")).is_empty(),
        "no staging part left visible"
    );
    let mut args = vec!["checkpoint".to_string(), "verify".into()];
    args.extend(w.location_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = w.run_ok(&refs);
    assert!(out.starts_with("ok:"), "{out}");
}

#[test]
fn available_now_killed_at_random_moments_ends_exactly_once() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    // Enough work that every kill finds some left: each run commits a batch or two before it is killed.
    let (files, ids) = split_sample((kills() * 15).clamp(80, 7000));
    for (name, bytes) in &files {
        w.land_bytes("gharchive", name, bytes);
    }
    let args = ["--settle-time", "0s", "--max-files-per-batch", "3"];
    // An uninterrupted run in a twin workdir: the reference, and how long one batch takes.
    let twin = Workdir::new();
    for (name, bytes) in &files {
        twin.land_bytes("gharchive", name, bytes);
    }
    let started = Instant::now();
    let out = spawn(&twin, "available-now", &args)
        .wait_with_output()
        .expect("wait");
    let full = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_exactly_once(&twin, &ids);
    assert!(stderr.contains("batch committed"), "{stderr}");

    // An abort after every commit step, each followed by another run.
    for step in ["intent", "staged", "publishing", "published", "committed"] {
        let mut a: Vec<String> = vec!["run".into(), "--mode".into(), "available-now".into()];
        a.extend(w.location_args());
        a.extend(args.iter().map(|s| s.to_string()));
        let out = w
            .cmd()
            .args(&a)
            .env("LANDER_FAIL_AFTER", step)
            .output()
            .expect("spawn");
        assert!(!out.status.success(), "failpoint {step} should abort");
    }
    let mut rng = Rng(0x5EED_0000_0000_0001);
    let (mut killed, mut mid_batch) = (0, 0);
    for i in 0..kills() {
        if i % 3 == 0 {
            // The dedup index is a cache of bronze: lose it, and re-deliver a file under a new name,
            // so the next batches load their day from bronze mid-batch and must still drop every repeat.
            let _ = std::fs::remove_dir_all(w.checkpoint().join("dedup"));
            let (_, bytes) = &files[i % files.len()];
            w.land_bytes("gharchive", &format!("again-{i:03}.json.gz"), bytes);
        }
        let mut child = spawn(&w, "available-now", &args);
        // Follow the log, and kill a few milliseconds after the start of its first or second batch (a batch of
        // three small files takes tens of milliseconds), so that most kills land inside a batch.
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut all = String::new();
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("available-now batch") {
                    let _ = tx.send(line.clone());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let nth = 1 + rng.below(2);
        for _ in 0..nth {
            if rx.recv_timeout(Duration::from_secs(10)).is_err() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(rng.below(15)));
        let (running, _) = kill(child);
        let log = reader.join().expect("reader");
        if !running {
            continue;
        }
        killed += 1;
        // A batch was started and not committed when the kill landed.
        let begun = log.matches("available-now batch").count();
        let committed = log.matches("batch committed").count();
        if begun > committed {
            mid_batch += 1;
        }
    }
    eprintln!(
        "available-now: {killed} kill(s) while running, {mid_batch} of them mid-batch (uninterrupted run: {full:?})"
    );
    assert!(killed > 0, "no kill landed while lander ran");
    assert!(
        mid_batch * 2 >= killed,
        "most kills land mid-batch: {mid_batch}/{killed}"
    );

    let out = spawn(&w, "available-now", &args)
        .wait_with_output()
        .expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_exactly_once(&w, &ids);
    assert_eq!(
        rows_by_file(&w.bronze().join("gharchive"))
            .values()
            .sum::<usize>(),
        rows_by_file(&twin.bronze().join("gharchive"))
            .values()
            .sum::<usize>()
    );
}

#[test]
fn continuous_killed_at_random_moments_ends_exactly_once() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    let (files, ids) = split_sample(40);
    let (first, later) = files.split_at(20);
    for (name, bytes) in first {
        w.land_bytes("gharchive", name, bytes);
    }
    let args = [
        "--settle-time",
        "0s",
        "--poll-interval",
        "200ms",
        "--max-files-per-batch",
        "2",
    ];
    let mut rng = Rng(0x5EED_0000_0000_0002);
    let mut later = later.iter();
    let mut killed = 0;
    for _ in 0..kills() {
        let child = spawn(&w, "continuous", &args);
        std::thread::sleep(Duration::from_millis(50 + rng.below(250)));
        // New files land while it runs (renamed into place).
        if let Some((name, bytes)) = later.next() {
            w.land_bytes("gharchive", name, bytes);
        }
        std::thread::sleep(Duration::from_millis(rng.below(200)));
        let (running, _) = kill(child);
        killed += usize::from(running);
    }
    for (name, bytes) in later {
        w.land_bytes("gharchive", name, bytes);
    }
    eprintln!("continuous: {killed} kill(s) while running");
    let child = spawn(&w, "continuous", &args);
    // Polled while the daemon runs: its recovery deletes the parts of killed batches, so a part may vanish between
    // the listing and the read (`try_string_column` then answers "not yet").
    let done = wait_until(Duration::from_secs(60), || {
        try_string_column(&w.bronze().join("gharchive"), "event_key")
            .is_some_and(|keys| keys.len() >= ids.len())
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().expect("wait");
    assert!(done, "not everything landed after the kills");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_exactly_once(&w, &ids);
}
