//! Listing cost of a landing prefix with 10 000 files on HDFS and S3: what each poll of `continuous` and
//! `micro-batch` pays on backends without events. A measurement, not a check: `#[ignore]`d, run with
//! `cargo test --features failpoints --test it listing_cost -- --ignored --nocapture` (figures in BENCHMARKS.md).

use std::time::{Duration, Instant};

use crate::common::backends::{Kind, Target};

const FILES: usize = 10_000;

fn measure(kind: Kind) {
    let t = Target::new(kind);
    let started = Instant::now();
    t.land_many("sales", FILES, 32);
    let landed = started.elapsed();
    let mut runs: Vec<Duration> = Vec::new();
    for _ in 0..3 {
        let (n, took) = t.time_landing_listing("sales");
        assert_eq!(n, FILES);
        runs.push(took);
    }
    runs.sort();
    println!(
        "{kind:?}: landed {FILES} files in {:.1}s; full listing of the prefix: median {:.0} ms (min {:.0}, max {:.0}) = {:.1} µs/file",
        landed.as_secs_f64(),
        runs[1].as_secs_f64() * 1e3,
        runs[0].as_secs_f64() * 1e3,
        runs[2].as_secs_f64() * 1e3,
        runs[1].as_secs_f64() * 1e6 / FILES as f64,
    );
}

#[test]
#[ignore = "measurement (about a minute per backend); run with --ignored --nocapture"]
fn listing_cost_of_10k_files_hdfs() {
    measure(Kind::Hdfs);
}

#[test]
#[ignore = "measurement (about a minute per backend); run with --ignored --nocapture"]
fn listing_cost_of_10k_files_s3() {
    measure(Kind::S3);
}

#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn listing_cost_of_10k_files_local() {
    measure(Kind::Local);
}
