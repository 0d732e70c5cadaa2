//! Helpers for `--workers`: which worker owns a file, each worker's checkpoint and arguments.

use crate::common::*;
use std::io::Write as _;
use std::path::PathBuf;

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
