//! S3 bytes written per batch (target: no more than 1.05x the Parquet written, no copy). moto's
//! request recorder logs every request lander makes while the batches run; the bytes of every write below
//! this test's bronze (puts, multipart parts and completions) are summed and compared with the sizes of the
//! Parquet parts and log entries stored at the end. With the Delta protocol parts go straight to their final
//! keys and the commit is one small JSON object, so there is no `CopyObject` and no staging upload.

use crate::common::backends::{moto, Kind, Target, BUCKET};
use crate::common::*;

/// `POST /moto-api/recorder/<action>` on the shared moto server.
fn recorder(action: &str) {
    let url = format!("{}/moto-api/recorder/{action}", moto().endpoint);
    let out = std::process::Command::new("curl")
        .args(["-sS", "-f", "-X", "POST", &url])
        .output()
        .expect("the S3 tests need curl");
    assert!(
        out.status.success(),
        "curl POST {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// moto's recording (`GET /moto-api/recorder/download-recording`): one JSON request per line.
fn recording() -> String {
    let url = format!("{}/moto-api/recorder/download-recording", moto().endpoint);
    let out = std::process::Command::new("curl")
        .args(["-sS", "-f", &url])
        .output()
        .expect("the S3 tests need curl");
    assert!(
        out.status.success(),
        "curl GET {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 recording")
}

/// What the recording holds for keys below `prefix`: (bytes written by puts/uploads, copy requests, write
/// requests, lines that are not one request).
fn written_below(prefix: &str) -> (u64, u64, u64, u64) {
    let text = recording();
    let (mut bytes, mut copies, mut writes, mut torn) = (0, 0, 0, 0);
    for line in text.lines() {
        // moto appends from several threads: under other S3 tests' load two requests can share a line.
        let Ok(e) = serde_json::from_str::<serde_json::Value>(line) else {
            torn += 1;
            continue;
        };
        let url = e["url"].as_str().unwrap_or_default();
        let path = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map(|(_, p)| p.split('?').next().unwrap_or_default())
            .unwrap_or_default();
        if !path.starts_with(prefix) {
            continue;
        }
        let method = e["method"].as_str().unwrap_or_default();
        if method != "PUT" && method != "POST" {
            continue;
        }
        let header = |name: &str| {
            e["headers"].as_object().and_then(|h| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .and_then(|(_, v)| v.as_str())
                    .map(String::from)
            })
        };
        if header("x-amz-copy-source").is_some() {
            copies += 1;
        }
        let body = e["body"].as_str().unwrap_or_default();
        let len = if e["body_encoded"].as_bool() == Some(true) {
            // The decoded length of a padded base64 body.
            (body.len() / 4 * 3 - body.bytes().rev().take_while(|b| *b == b'=').count()) as u64
        } else {
            header("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(body.len() as u64)
        };
        bytes += len;
        writes += 1;
    }
    (bytes, copies, writes, torn)
}

/// Three GH Archive hours (three shapes), one batch each, into a Delta bronze on moto: the bytes lander writes
/// are at most 1.05x the Parquet parts plus the log entries it leaves, and it makes no copy.
#[test]
fn s3_bytes_written_per_batch_are_the_parts_and_the_log_entry() {
    let Some(_) = require_shared_data() else {
        return;
    };
    let t = Target::new(Kind::S3);
    let names = [
        "2011-02-15-0.json.gz",
        "2013-02-15-0.json.gz",
        "2015-01-01-0.json.gz",
    ];
    for n in names {
        t.land(&gharchive(n), "gharchive", n);
    }
    let args = t.once_args(&["--table-format", "delta", "--max-files-per-batch", "1"]);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args[2] = "available-now";
    recorder("reset-recording");
    recorder("start-recording");
    let out = t.run(&args);
    recorder("stop-recording");
    assert_success(&out, &args, t.wd.path());

    let objects = t.bronze_objects("");
    let sum = |f: &dyn Fn(&str) -> bool| -> u64 {
        objects.iter().filter(|(p, _)| f(p)).map(|(_, s)| *s).sum()
    };
    let parquet = sum(&|p| p.ends_with(".parquet") && !p.contains("/_delta_log/"));
    let log = sum(&|p| p.contains("/_delta_log/"));
    let commits = objects
        .iter()
        .filter(|(p, _)| p.starts_with("gharchive/_delta_log/") && p.ends_with(".json"))
        .count();
    assert_eq!(
        commits,
        1 + names.len(),
        "version 0 and one commit per batch"
    );
    let prefix = format!(
        "{BUCKET}/{}",
        t.bronze_url
            .strip_prefix(&format!("s3://{BUCKET}/"))
            .expect("an s3 bronze")
    );
    let (written, copies, writes, torn) = written_below(&prefix);
    eprintln!(
        "s3 bytes: {} batches wrote {written} bytes in {writes} write requests; stored {parquet} bytes of parquet \
         and {log} bytes of log ({} commits): written / parquet = {:.4}, (written - log) / parquet = {:.4}",
        names.len(),
        commits,
        written as f64 / parquet as f64,
        (written - log.min(written)) as f64 / parquet as f64,
    );
    assert_eq!(
        copies, 0,
        "no CopyObject: parts are uploaded once to their final keys"
    );
    assert!(
        parquet > 1_000_000,
        "the batches wrote real parts: {parquet}"
    );
    assert!(
        written as f64 <= 1.05 * parquet as f64 + log as f64,
        "wrote {written} bytes for {parquet} bytes of parquet and {log} bytes of log"
    );
    // A torn recording may have lost some of this test's requests; an intact one must hold them all.
    assert!(
        torn > 0 || written >= parquet + log,
        "the recording missed writes: {written} < {parquet} + {log}"
    );
}
