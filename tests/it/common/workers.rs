//! Helpers for `--workers`: which worker owns a file, each worker's checkpoint and arguments.

use crate::common::backends::Target;
use crate::common::*;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

/// How long one worker run may take before it counts as stalled.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// The assignment rule, written again here from its specification (not lander's code): FNV-1a 64 of the path
/// relative to landing, mod N.
pub fn owner(rel: &str, n: u64) -> u64 {
    let h = rel.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    h % n
}

pub fn gzip(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for l in lines {
        e.write_all(l).expect("gz");
        e.write_all(b"\n").expect("gz");
    }
    e.finish().expect("gz")
}

/// A name `copies/<stem>-copy-<k>.json.gz` (under the dataset) owned by worker `want` of `n`.
pub fn copy_name(stem: &str, n: u64, want: u64) -> String {
    (0..1000)
        .map(|k| format!("copies/{stem}-copy-{k}.json.gz"))
        .find(|name| owner(&format!("gharchive/{name}"), n) == want)
        .expect("some name hashes to every worker")
}

/// One worker's checkpoint (beside the shared landing and bronze of `w`).
pub fn checkpoint_of(w: &Workdir, i: usize) -> PathBuf {
    w.path().join(format!("state-w{i}"))
}

/// `run --mode available-now --max-files-per-batch 1 --worker I/N` over `w`'s landing and bronze.
pub fn worker_args(w: &Workdir, i: usize, n: usize, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "--mode",
        "available-now",
        "--settle-time",
        "0s",
        "--max-files-per-batch",
        "1",
        "--landing",
    ]
    .map(String::from)
    .to_vec();
    args.push(w.landing().display().to_string());
    args.extend(["--bronze".to_string(), w.bronze().display().to_string()]);
    args.extend([
        "--checkpoint".to_string(),
        checkpoint_of(w, i).display().to_string(),
    ]);
    args.extend(["--worker".to_string(), format!("{i}/{n}")]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Worker `i` of `n` over `t`'s landing and bronze, its stderr in `<tag>.err`.
pub fn spawn_on(t: &Target, i: usize, n: usize, extra: &[&str], tag: &str) -> Child {
    let mut args = worker_args(&t.wd, i, n, extra);
    let at = |flag: &str| args.iter().position(|a| a == flag).expect(flag) + 1;
    let (l, b) = (at("--landing"), at("--bronze"));
    args[l] = t.landing_url.clone();
    args[b] = t.bronze_url.clone();
    let err = std::fs::File::create(t.wd.path().join(format!("{tag}.err"))).expect("log");
    t.cmd()
        .args(&args)
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("spawn lander")
}

/// The log of the worker started as `tag` on `t`.
pub fn log_on(t: &Target, tag: &str) -> String {
    std::fs::read_to_string(t.wd.path().join(format!("{tag}.err"))).unwrap_or_default()
}

/// Waits for `child` (at most [`RUN_TIMEOUT`]; a stall is killed and reported with its log); asserts success.
pub fn finish_on(t: &Target, mut child: Child, tag: &str) {
    let done = wait_until(RUN_TIMEOUT, || child.try_wait().expect("wait").is_some());
    if !done {
        let _ = child.kill();
    }
    let status = child.wait().expect("wait");
    assert!(
        done,
        "{tag} still running after {RUN_TIMEOUT:?} (stalled):\n{}",
        log_on(t, tag)
    );
    assert!(status.success(), "{tag} failed:\n{}", log_on(t, tag));
}
