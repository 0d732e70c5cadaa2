//! `lander fetch` and `lander generate sales` against a real HTTP server on 127.0.0.1 (no network I/O).
//!
//! The server is hyper (HTTP/1.1, one request per connection) on 127.0.0.1: it serves the GH Archive fixtures under
//! their archive names and injects faults per path: error statuses, 429 with `Retry-After`, connection resets and
//! truncated bodies (a body stream that fails after a prefix), slow bodies (a stream with pauses), corrupt bytes,
//! plus `Range` support (`common/fetch_server.rs`). It records every request, so tests can assert on retries, resumes and
//! "the second run downloads nothing". `generate sales` is tested in `fetch/generate.rs`.
//!
//! Most tests call `lander::cli::fetch::run_fetch` in-process (the CLI's own entry, which reads the config file and
//! the checkpoint for fetch); `binary_fetch_gharchive_lands_a_range` runs the real binary.

mod generate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Timelike as _, Utc};
use clap::Parser as _;
use lander::cli::fetch::{run_fetch, FetchCommand};
use lander::fetch::FetchSummary;
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use crate::common::fetch_server::{fixture, Fault, Server};

const HOUR0: &str = "2015-01-01-0.json.gz";
const HOUR1: &str = "2015-01-01-1.json.gz";

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Parses `lander fetch <args>` the way the CLI does.
#[derive(clap::Parser)]
struct FetchCli {
    #[command(subcommand)]
    cmd: FetchCommand,
}

fn fetch_cmd(args: &[&str]) -> FetchCommand {
    FetchCli::try_parse_from(std::iter::once("fetch").chain(args.iter().copied()))
        .expect("valid fetch arguments")
        .cmd
}

/// `fetch gharchive` with fast retries into `landing`.
async fn fetch_gharchive(
    server: &Server,
    landing: &Path,
    from: &str,
    to: &str,
    extra: &[&str],
) -> FetchSummary {
    let base = server.base_url();
    let landing = landing.to_str().expect("utf8 path");
    let mut args = vec![
        "gharchive",
        "--from",
        from,
        "--to",
        to,
        "--base-url",
        &base,
        "--landing",
        landing,
        "--retry-backoff",
        "10ms",
        "--timeout",
        "5s",
    ];
    args.extend_from_slice(extra);
    run_fetch(fetch_cmd(&args), CancellationToken::new())
        .await
        .expect("fetch runs")
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .to_string()
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// The names in `dir` that a landing watcher would pick up (no temporary names).
fn final_names(dir: &Path) -> Vec<String> {
    names(dir).into_iter().filter(|n| !is_temp(n)).collect()
}

fn is_temp(name: &str) -> bool {
    name.starts_with('.') || name.ends_with(".tmp")
}

fn hour_name(hour: DateTime<Utc>) -> String {
    format!("{}-{}.json.gz", hour.format("%Y-%m-%d"), hour.hour())
}

/// The number of distinct `id`s over the events of gzip NDJSON `hours` (multi-member gzip allowed).
fn distinct_event_ids(hours: &[&[u8]]) -> usize {
    use std::io::BufRead as _;
    let mut ids = std::collections::HashSet::new();
    for hour in hours {
        let lines = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(*hour)).lines();
        for line in lines {
            let event: serde_json::Value =
                serde_json::from_str(&line.expect("line")).expect("json");
            ids.insert(event["id"].as_str().expect("id").to_string());
        }
    }
    ids.len()
}

fn current_hour() -> DateTime<Utc> {
    let now = Utc::now();
    now - TimeDelta::seconds(i64::from(now.minute() * 60 + now.second()))
        - TimeDelta::nanoseconds(i64::from(now.nanosecond()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_fetch_survives_faults_lands_identical_files_and_reruns_as_noop() {
    let server = Server::start().await;
    let hour0 = server.serve_fixture(HOUR0);
    let hour1 = server.serve_fixture(HOUR1);
    let path0 = format!("/{HOUR0}");
    let path1 = format!("/{HOUR1}");
    // hour 0: a 500, then a reset mid-body, then success (resumed with Range when any prefix arrived).
    server.fault(&path0, Fault::Status(500));
    server.fault(&path0, Fault::Reset { after: 300_000 });
    // hour 1: a 429 asking for 1 s, then a truncated body (Content-Length larger than what is sent), then the rest.
    server.fault(
        &path1,
        Fault::TooMany {
            retry_after_secs: 1,
        },
    );
    server.fault(&path1, Fault::Truncate { after: 1_000_000 });
    let dir = tempfile::tempdir().expect("tempdir");

    let summary = fetch_gharchive(&server, dir.path(), "2015-01-01T00", "2015-01-01T01", &[]).await;
    assert_eq!(
        summary,
        FetchSummary {
            fetched: 2,
            bytes: (hour0.len() + hour1.len()) as u64,
            ..FetchSummary::default()
        }
    );
    let landed = dir.path().join("gharchive");
    assert_eq!(names(&landed), [HOUR0, HOUR1], "only final names remain");
    for (name, content) in [(HOUR0, &hour0), (HOUR1, &hour1)] {
        let got = std::fs::read(landed.join(name)).expect("landed file");
        assert_eq!(sha256(&got), sha256(content), "{name} is byte-identical");
    }

    let r0 = server.requests(&path0);
    assert_eq!(r0.len(), 3, "hour 0: 500, reset, success: {r0:?}");
    // What arrived before the reset is kept and the rest requested (how much arrived depends on the TCP stack).
    assert!(r0[2].range_start.is_none_or(|n| n <= 300_000), "{r0:?}");
    let r1 = server.requests(&path1);
    assert_eq!(r1.len(), 3, "hour 1: 429, truncated, resumed: {r1:?}");
    assert!(
        r1[1].at - r1[0].at >= Duration::from_millis(950),
        "Retry-After: 1 honoured (waited {:?})",
        r1[1].at - r1[0].at
    );
    assert_eq!(
        r1[2].range_start,
        Some(1_000_000),
        "the truncated download resumed from its length"
    );

    // A second run finds both files in landing and sends no request at all.
    let before = server.total_requests();
    let again = fetch_gharchive(&server, dir.path(), "2015-01-01T00", "2015-01-01T01", &[]).await;
    assert_eq!(
        again,
        FetchSummary {
            skipped: 2,
            ..FetchSummary::default()
        }
    );
    assert_eq!(
        server.total_requests(),
        before,
        "the rerun downloaded nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_old_hours_and_pending_recent_hours_are_reported() {
    let server = Server::start().await;
    server.serve_fixture(HOUR0);
    let dir = tempfile::tempdir().expect("tempdir");

    // Hours 1 and 2 of 2015-01-01 are not on the server: a gap in the archive, not a failure.
    let summary = fetch_gharchive(&server, dir.path(), "2015-01-01T00", "2015-01-01T02", &[]).await;
    assert_eq!(
        (
            summary.fetched,
            summary.missing,
            summary.failed,
            summary.pending
        ),
        (1, 2, 0, 0)
    );
    assert_eq!(names(&dir.path().join("gharchive")), [HOUR0]);

    // Recent hours: two ended ones answer 404 (not published yet), two have not ended (not requested).
    let now = current_hour();
    let from = (now - TimeDelta::hours(2))
        .format("%Y-%m-%dT%H")
        .to_string();
    let to = (now + TimeDelta::hours(1))
        .format("%Y-%m-%dT%H")
        .to_string();
    let before = server.total_requests();
    let summary = fetch_gharchive(&server, dir.path(), &from, &to, &[]).await;
    assert_eq!(
        (
            summary.pending,
            summary.missing,
            summary.failed,
            summary.fetched
        ),
        (4, 0, 0, 0)
    );
    let requested = server.total_requests() - before;
    // 3 only if an hour boundary passed during the test.
    assert!(
        (2..=3).contains(&requested),
        "requested {requested} recent hours"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_downloads_are_never_visible_under_final_names() {
    let server = Server::start().await;
    let hour0 = server.serve_fixture(HOUR0);
    let hour1 = server.serve_fixture(HOUR1);
    let slow = Fault::Slow {
        chunk: 128 * 1024,
        delay: Duration::from_millis(40),
    };
    server.fault(&format!("/{HOUR0}"), slow.clone());
    server.fault(&format!("/{HOUR1}"), slow);
    let dir = tempfile::tempdir().expect("tempdir");
    let landed = dir.path().join("gharchive");

    // Watch the directory the way a landing watcher would, while the slow downloads run.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = Arc::clone(&stop);
        let landed = landed.clone();
        let sizes: HashMap<String, u64> = [
            (HOUR0.to_string(), hour0.len() as u64),
            (HOUR1.to_string(), hour1.len() as u64),
        ]
        .into();
        std::thread::spawn(move || {
            let (mut polls, mut saw_temp) = (0u64, false);
            while !stop.load(Ordering::Relaxed) {
                for name in names(&landed) {
                    if is_temp(&name) {
                        saw_temp = true;
                        continue;
                    }
                    let size = std::fs::metadata(landed.join(&name))
                        .map(|m| m.len())
                        .unwrap_or(0);
                    assert_eq!(
                        Some(&size),
                        sizes.get(&name),
                        "{name} visible with {size} bytes"
                    );
                }
                polls += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            (polls, saw_temp)
        })
    };
    let summary = fetch_gharchive(&server, dir.path(), "2015-01-01T00", "2015-01-01T01", &[]).await;
    stop.store(true, Ordering::Relaxed);
    let (polls, saw_temp) = watcher.join().expect("no partial file was visible");
    assert_eq!(summary.fetched, 2);
    assert!(
        polls > 50,
        "the watcher polled during the download ({polls} polls)"
    );
    assert!(
        saw_temp,
        "the in-progress download was seen under a temporary name"
    );
    assert_eq!(names(&landed), [HOUR0, HOUR1]);
    assert_eq!(
        sha256(&std::fs::read(landed.join(HOUR0)).expect("file")),
        sha256(&hour0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_download_resumes_on_the_next_run() {
    let server = Server::start().await;
    let hour0 = server.serve_fixture(HOUR0);
    let path0 = format!("/{HOUR0}");
    server.fault(
        &path0,
        Fault::Slow {
            chunk: 64 * 1024,
            delay: Duration::from_millis(50),
        },
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let landed = dir.path().join("gharchive");
    let base = server.base_url();
    let landing = dir.path().to_str().expect("utf8").to_string();
    let cmd = fetch_cmd(&[
        "gharchive",
        "--from",
        "2015-01-01T00",
        "--base-url",
        &base,
        "--landing",
        &landing,
    ]);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_fetch(cmd, cancel.clone()));
    tokio::time::sleep(Duration::from_millis(400)).await;
    cancel.cancel();
    let summary = task.await.expect("task").expect("fetch runs");
    assert_eq!(
        (summary.fetched, summary.pending, summary.failed),
        (0, 1, 0),
        "{summary}"
    );
    let temp = format!(".{HOUR0}.tmp");
    assert_eq!(
        names(&landed),
        std::slice::from_ref(&temp),
        "only the kept partial, under its temporary name"
    );
    let kept = std::fs::metadata(landed.join(&temp))
        .expect("partial")
        .len();
    assert!(kept > 0 && kept < hour0.len() as u64, "kept {kept} bytes");

    let summary = fetch_gharchive(&server, dir.path(), "2015-01-01T00", "2015-01-01T00", &[]).await;
    assert_eq!(summary.fetched, 1, "{summary}");
    let requests = server.requests(&path0);
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].range_start,
        Some(kept),
        "resumed from the kept length"
    );
    assert_eq!(names(&landed), [HOUR0]);
    assert_eq!(
        sha256(&std::fs::read(landed.join(HOUR0)).expect("file")),
        sha256(&hour0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_gzip_is_refetched_and_hopeless_files_fail_without_residue() {
    let server = Server::start().await;
    let hour0 = server.serve_fixture(HOUR0);
    server.serve_fixture(HOUR1);
    server.fault(&format!("/{HOUR0}"), Fault::Corrupt);
    for _ in 0..10 {
        server.fault(&format!("/{HOUR1}"), Fault::Status(503));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = fetch_gharchive(
        &server,
        dir.path(),
        "2015-01-01T00",
        "2015-01-01T01",
        &["--retries", "2"],
    )
    .await;
    assert_eq!((summary.fetched, summary.failed), (1, 1));
    assert_eq!(
        server.requests(&format!("/{HOUR0}")).len(),
        2,
        "corrupt body detected and downloaded again"
    );
    assert_eq!(
        server.requests(&format!("/{HOUR1}")).len(),
        3,
        "first attempt plus 2 retries"
    );
    let landed = dir.path().join("gharchive");
    assert_eq!(
        names(&landed),
        [HOUR0],
        "nothing, not even a temporary file, for the failed hour"
    );
    assert_eq!(
        sha256(&std::fs::read(landed.join(HOUR0)).expect("file")),
        sha256(&hour0)
    );

    // Too large: refused from Content-Length before any byte is written.
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = fetch_gharchive(
        &server,
        dir.path(),
        "2015-01-01T00",
        "2015-01-01T00",
        &["--max-file-bytes", "1MiB"],
    )
    .await;
    assert_eq!((summary.fetched, summary.failed), (0, 1));
    assert!(names(&dir.path().join("gharchive")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_fetch_names_files_safely_and_refuses_path_traversal() {
    let server = Server::start().await;
    let csv = Arc::new(b"transaction_id,timestamp\n1,2025-10-25 19:07:27\n".to_vec());
    server.serve("/files/ventas%20octubre.csv", Arc::clone(&csv));
    server.serve("/files/..%2F..%2Fevil.csv", Arc::clone(&csv));
    server.serve("/download", Arc::clone(&csv));
    server.header(
        "/download",
        "Content-Disposition",
        "attachment; filename=\"../../evil2.csv\"",
    );
    server.serve("/export", Arc::clone(&csv));
    server.header(
        "/export",
        "Content-Disposition",
        "attachment; filename=\"report.csv\"",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let base = server.base_url();
    let urls = [
        format!("{base}/files/ventas%20octubre.csv"),
        format!("{base}/files/..%2F..%2Fevil.csv"),
        format!("{base}/download"),
        format!("{base}/export"),
    ];
    let landing_arg = landing.to_str().expect("utf8");
    let mut args = vec![
        "url",
        "--dataset",
        "sales",
        "--landing",
        landing_arg,
        "--retry-backoff",
        "10ms",
        "--remote-header-name",
    ];
    args.extend(urls.iter().map(String::as_str));
    let summary = run_fetch(fetch_cmd(&args), CancellationToken::new())
        .await
        .expect("fetch runs");
    assert_eq!((summary.fetched, summary.failed), (2, 2), "{summary}");
    assert_eq!(
        server.requests("/download").len(),
        1,
        "an unsafe server name is not retried"
    );
    assert_eq!(
        names(&landing.join("sales")),
        ["report.csv", "ventas_octubre.csv"]
    );
    assert_eq!(
        std::fs::read(landing.join("sales/report.csv")).expect("file"),
        *csv
    );
    // Nothing escaped landing/sales/.
    assert_eq!(names(&landing), ["sales"]);
    assert_eq!(names(dir.path()), ["landing"]);
    assert!(
        server.requests("/files/..%2F..%2Fevil.csv").is_empty(),
        "refused before any request"
    );

    // Rerun: both files are found in landing (after a request, since names come from the server).
    let again = run_fetch(fetch_cmd(&args), CancellationToken::new())
        .await
        .expect("fetch runs");
    assert_eq!(
        (again.fetched, again.skipped, again.failed),
        (0, 2, 2),
        "{again}"
    );
    assert_eq!(
        names(&landing.join("sales")),
        ["report.csv", "ventas_octubre.csv"]
    );

    // A non-http URL is a usage error for the whole command.
    let err = run_fetch(
        fetch_cmd(&["url", "--dataset", "sales", "file:///etc/passwd"]),
        CancellationToken::new(),
    )
    .await
    .expect_err("file:// refused");
    assert!(err.to_string().contains("file:///etc/passwd"), "{err}");
    // `fetch s3` copies from S3 only (its behaviour is tested against moto in conformance.rs).
    let err = run_fetch(
        fetch_cmd(&["s3", "/tmp/not-s3", "--dataset", "sales"]),
        CancellationToken::new(),
    )
    .await
    .expect_err("not an s3 location");
    assert!(
        err.to_string()
            .contains("fetch s3 copies from s3://bucket/prefix"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_fetches_each_hour_once_it_is_published() {
    let server = Server::start().await;
    let content = fixture(HOUR0);
    let now = current_hour();
    let (h1, h2, h3) = (
        now - TimeDelta::hours(3),
        now - TimeDelta::hours(2),
        now - TimeDelta::hours(1),
    );
    server.serve(&format!("/{}", hour_name(h1)), Arc::clone(&content));
    server.serve(&format!("/{}", hour_name(h2)), Arc::clone(&content));
    let dir = tempfile::tempdir().expect("tempdir");
    let landed = dir.path().join("gharchive");
    let base = server.base_url();
    let from = h1.format("%Y-%m-%dT%H").to_string();
    let landing = dir.path().to_str().expect("utf8").to_string();
    let cmd = fetch_cmd(&[
        "gharchive",
        "--follow",
        "--from",
        &from,
        "--poll-interval",
        "100ms",
        "--base-url",
        &base,
        "--landing",
        &landing,
    ]);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_fetch(cmd, cancel.clone()));

    let deadline = Instant::now() + Duration::from_secs(20);
    let h3_path = format!("/{}", hour_name(h3));
    // The two published hours land; the third is polled while it is not published.
    while !(final_names(&landed).len() >= 2 && server.requests(&h3_path).len() >= 3) {
        assert!(
            Instant::now() < deadline,
            "follow made no progress: {:?}",
            names(&landed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Publishing it lets follow move on.
    server.serve(&h3_path, Arc::clone(&content));
    while !final_names(&landed).contains(&hour_name(h3)) {
        assert!(
            Instant::now() < deadline,
            "the published hour was not fetched"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    let summary = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("follow stops when cancelled")
        .expect("task")
        .expect("follow runs");
    assert_eq!(
        (summary.fetched, summary.failed, summary.missing),
        (3, 0, 0),
        "{summary}"
    );
    let mut expected: Vec<String> = [h1, h2, h3].into_iter().map(hour_name).collect();
    expected.sort();
    assert_eq!(names(&landed), expected);
}

/// Runs the real binary. This depends on the CLI wiring `lander fetch gharchive` to `lander::cli::fetch::run_fetch`
/// (src/cli): if that is not in place yet, this test fails while the in-process ones pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_fetch_gharchive_lands_a_range() {
    let server = Server::start().await;
    let hour0 = server.serve_fixture(HOUR0);
    let hour1 = server.serve_fixture(HOUR1);
    // What the run must write: the distinct event ids of both hours (the 2015 schema's key), counted here.
    let distinct = distinct_event_ids(&[hour0.as_slice(), hour1.as_slice()]);
    server.fault(&format!("/{HOUR1}"), Fault::Status(502));
    let dir = tempfile::tempdir().expect("tempdir");
    let landing: PathBuf = dir.path().join("landing");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_lander"))
        .args([
            "fetch",
            "gharchive",
            "--from",
            "2015-01-01T00",
            "--to",
            "2015-01-01T02",
        ])
        .args(["--base-url", &server.base_url(), "--retry-backoff", "10ms"])
        .arg("--landing")
        .arg(&landing)
        .current_dir(dir.path())
        .output()
        .await
        .expect("run lander");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "lander fetch gharchive failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("fetched 2") && stdout.contains("missing 1"),
        "stdout:\n{stdout}"
    );
    assert_eq!(names(&landing.join("gharchive")), [HOUR0, HOUR1]);
    assert_eq!(
        sha256(&std::fs::read(landing.join("gharchive").join(HOUR0)).expect("file")),
        sha256(&hour0)
    );
    assert_eq!(
        server.requests(&format!("/{HOUR1}")).len(),
        2,
        "the 502 was retried"
    );

    // Ingest what was fetched, deleting the sources after commit: bronze holds exactly the two hours' events.
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lander"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("run lander");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = run(&[
        "run",
        "--mode",
        "once",
        "--settle-time",
        "0s",
        "--landing",
        "landing",
        "--bronze",
        "bronze",
        "--checkpoint",
        "state",
        "--clean-source",
        "delete",
    ]);
    assert!(
        out.contains(&format!("2 file(s), {distinct} rows written")),
        "{distinct} distinct ids: {out}"
    );
    assert!(
        names(&landing.join("gharchive")).is_empty(),
        "sources deleted after commit"
    );
    // A second fetch that knows the checkpoint downloads nothing, although landing is empty now.
    let before = server.requests(&format!("/{HOUR0}")).len();
    let mut args = server.gharchive_args("landing");
    args.extend(["--checkpoint".into(), "state".into()]);
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.contains("fetched 0") && out.contains("skipped 2"),
        "{out}"
    );
    assert_eq!(server.requests(&format!("/{HOUR0}")).len(), before);
}

/// `fetch` refuses what `run` would never ingest: a dataset directory or a file name that the landing listing
/// skips (hidden, internal or a staging suffix). One rule (`lander::source::check_name`) decides for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_refuses_names_that_run_would_ignore() {
    let server = Server::start().await;
    let body: Arc<Vec<u8>> = Arc::new(b"id,ts\n1,2024-01-01 00:00:00\n".to_vec());
    server.serve("/a.part", Arc::clone(&body));
    server.serve("/_b.csv", Arc::clone(&body));
    server.serve("/c.csv", Arc::clone(&body));
    let dir = tempfile::tempdir().expect("tempdir");
    let landing: PathBuf = dir.path().join("landing");
    let base = server.base_url();
    let lander = |args: Vec<String>| {
        let landing = landing.clone();
        let cwd = dir.path().to_path_buf();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_lander"))
                .arg("fetch")
                .arg("url")
                .args(args)
                .arg("--landing")
                .arg(&landing)
                .args(["--retry-backoff", "10ms"])
                .current_dir(cwd)
                .output()
                .await
                .expect("run lander")
        }
    };

    // A hidden dataset: a usage error (exit 2) before any request, and nothing written.
    let out = lander(vec![
        format!("{base}/a.part"),
        "--dataset".into(),
        "_x".into(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("--dataset") && stderr.contains("_x") && stderr.contains("starts with"),
        "stderr:\n{stderr}"
    );
    assert!(!landing.join("_x").exists());
    assert!(server.requests("/a.part").is_empty());

    // File names the listing skips are refused per file (no request); the good one lands.
    let out = lander(vec![
        format!("{base}/a.part"),
        format!("{base}/_b.csv"),
        format!("{base}/c.csv"),
        "--dataset".into(),
        "sales".into(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("fetched 1") && stdout.contains("failed 2"),
        "stdout:\n{stdout}"
    );
    assert!(
        stderr.contains("\"a.part\"") && stderr.contains("staging suffix"),
        "stderr:\n{stderr}"
    );
    assert!(stderr.contains("\"_b.csv\""), "stderr:\n{stderr}");
    assert_eq!(names(&landing.join("sales")), ["c.csv"]);
    assert!(server.requests("/a.part").is_empty());
    assert!(server.requests("/_b.csv").is_empty());
}

/// Runs `lander <args>` for `secs` seconds against `server`, then interrupts it with SIGINT; returns its stderr.
async fn run_for(args: &[String], dir: &Path, secs: u64) -> String {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_lander"))
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn lander");
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let pid = child.id().expect("running") as i32;
    // SAFETY: signalling a child this test spawned and still owns.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("lander stops after SIGINT")
        .expect("wait");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn warn_lines(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .count()
}

/// Following an archive from years back against a source that lacks every hour (404) or fails every request
/// (503) neither storms it nor floods the log: over a few seconds the requests stay within a few
/// rounds (a round is a week of hours; after a round that fetched nothing lander pauses 1 s, 2 s, ...; after
/// `concurrency` failed downloads in a row it stops the round), and WARN/ERROR lines stay a handful (missing
/// hours are one line per round, failures a few lines and a count). Both `run --fetch` and `fetch --follow`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_a_source_that_lacks_or_fails_everything_is_bounded() {
    const WEEK: usize = 24 * 7;
    // (what the source does, command, most requests, most warning lines) over 5 s.
    for (status, run_fetch) in [(404u16, true), (404, false), (503, false)] {
        let server = Server::start().await;
        if status != 404 {
            server.fail_everything(status);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("landing")).expect("mkdir");
        let base = server.base_url();
        let args: Vec<String> = if run_fetch {
            [
                "run",
                "--mode",
                "continuous",
                "--landing",
                "landing",
                "--bronze",
                "bronze",
                "--checkpoint",
                "state",
                "--fetch",
                "gharchive",
                "--fetch-from",
                "2015-01-01T00",
                "--fetch-base-url",
                &base,
            ]
            .map(String::from)
            .to_vec()
        } else {
            [
                "fetch",
                "gharchive",
                "--follow",
                "--from",
                "2015-01-01T00",
                "--base-url",
                &base,
                "--landing",
                "landing",
                "--retries",
                "1",
                "--retry-backoff",
                "10ms",
            ]
            .map(String::from)
            .to_vec()
        };
        let stderr = run_for(&args, dir.path(), 5).await;
        let requests = server.total_requests();
        let warnings = warn_lines(&stderr);
        eprintln!("{status} run_fetch={run_fetch}: {requests} requests, {warnings} warning lines");
        // Rounds start at 0 s, ~1 s and ~3 s (the next would be at ~7 s).
        let (most_requests, least_requests) = if status == 404 {
            (3 * WEEK, WEEK)
        } else {
            (80, 4)
        };
        let most_warnings = if status == 404 { 6 } else { 45 };
        assert!(
            (least_requests..=most_requests).contains(&requests),
            "{status}: {requests} requests in 5 s\n{stderr}"
        );
        assert!(
            warnings <= most_warnings,
            "{status}: {warnings} warning lines\n{stderr}"
        );
        if status == 404 {
            assert!(
                stderr.contains("hours missing from the archive"),
                "{stderr}"
            );
        } else {
            assert!(stderr.contains("the source looks down"), "{stderr}");
            // The first hour failed, so it is asked for again in each later round (not given up) while hours
            // a day later are never asked for.
            let first = server.requests("/2015-01-01-0.json.gz").len();
            assert!(first >= 4, "{first} requests for the first hour\n{stderr}");
            assert!(server.requests("/2015-01-02-0.json.gz").is_empty());
        }
    }
}
