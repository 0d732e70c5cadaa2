//! Dedup whatever order files arrive in: the keys of a day the dedup index does not hold are read back
//! from bronze before a record of that day is accepted, on a Parquet and on a Delta bronze.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::Path;

use crate::common::*;

/// `count(*)` and `count(distinct event_key)` of every Parquet part below `dir`, by DuckDB.
pub fn duckdb_counts(dir: &Path) -> (u64, u64) {
    let out = run_duckdb(
        "import duckdb, sys\n\
         r = duckdb.sql(\"select count(*), count(distinct event_key) from read_parquet('\" + sys.argv[1] + \"/**/*.parquet')\").fetchall()[0]\n\
         print(r[0], r[1])",
        &[&dir.display().to_string()],
    );
    let v: Vec<u64> = out
        .split_whitespace()
        .map(|x| x.parse().expect("number"))
        .collect();
    (v[0], v[1])
}

/// The first `n` lines (all when `None`) of a gzip NDJSON file.
pub fn gz_lines(path: &Path, n: Option<usize>) -> Vec<String> {
    let f = std::fs::File::open(path).expect("open");
    let r = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(f));
    let lines = r.lines().map(|l| l.expect("line"));
    match n {
        Some(n) => lines.take(n).collect(),
        None => lines.collect(),
    }
}

pub fn gzip_lines(lines: &[String]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for l in lines {
        e.write_all(l.as_bytes()).expect("gzip");
        e.write_all(b"\n").expect("gzip");
    }
    e.finish().expect("gzip")
}

/// Distinct dedup keys of GH Archive lines, computed independently of lander: the event id, or for an event
/// without one (the 2013 Timeline shape) the trimmed line itself.
pub fn distinct_keys<'a>(lines: impl IntoIterator<Item = &'a String>) -> usize {
    let mut keys = HashSet::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l.trim()).expect("json line");
        match v.get("id").and_then(|i| {
            i.as_str()
                .map(String::from)
                .or(i.as_u64().map(|n| n.to_string()))
        }) {
            Some(id) => keys.insert(format!("id:{id}")),
            None => keys.insert(format!("line:{}", l.trim())),
        };
    }
    keys.len()
}

/// The issue's reproduction: a 2015 hour and the first 3,000 lines of the 2013 hour (a third of its bundled
/// prefix on a plain clone), then the 2013 hour re-published whole under the same name (long after the 2015
/// watermark): no event twice, in both formats.
#[test]
fn a_republished_old_hour_lands_each_event_once() {
    if !require_samples(&[
        "gharchive/2013-02-15-0.json.gz",
        "gharchive/2015-01-01-0.json.gz",
    ]) {
        return;
    }
    for format in ["parquet", "delta"] {
        let w = Workdir::new();
        w.land(
            &gharchive("2015-01-01-0.json.gz"),
            "gharchive",
            "2015-01-01-0.json.gz",
        );
        let y2013 = gz_lines(&gharchive("2013-02-15-0.json.gz"), None);
        let first = 3000.min(y2013.len() / 3);
        w.land_bytes(
            "gharchive",
            "2013-02-15-0.json.gz",
            &gzip_lines(&y2013[..first]),
        );
        w.run_once(&["--table-format", format]);
        w.land(
            &gharchive("2013-02-15-0.json.gz"),
            "gharchive",
            "2013-02-15-0.json.gz",
        );
        let out = w.run_once(&["--table-format", format]);
        assert!(
            out.contains(&format!("| {first} ")),
            "{format}: {first} duplicates dropped: {out}"
        );
        let y2015 = gz_lines(&gharchive("2015-01-01-0.json.gz"), None);
        let expected = distinct_keys(y2015.iter().chain(&y2013));
        let (rows, distinct) = duckdb_counts(&w.bronze().join("gharchive"));
        assert_eq!(rows, distinct, "{format}: no event_key twice");
        assert_eq!(
            rows as usize, expected,
            "{format}: every distinct event once"
        );
    }
}

/// A GH Archive event line with this id and time.
fn event(id: u32, created_at: &str) -> String {
    format!(
        r#"{{"id":"{id}","type":"PushEvent","actor":{{"id":{id},"login":"u{id}"}},"repo":{{"id":1,"name":"o/r"}},"payload":{{"n":{id}}},"public":true,"created_at":"{created_at}"}}"#
    )
}

/// Ids in bronze, sorted.
fn ids(w: &Workdir) -> Vec<String> {
    let mut ids: Vec<String> = string_column(&w.bronze().join("gharchive"), "id")
        .into_iter()
        .map(|v| v.expect("id"))
        .collect();
    ids.sort();
    ids
}

/// `run --mode once` with `extra`, returning (stdout + stderr, the dataset's summary-json entry).
fn run_with_summary(w: &Workdir, extra: &[&str]) -> (String, serde_json::Value) {
    let json = w.path().join("summary.json");
    let mut args = w.once_args();
    args.extend(["--summary-json".into(), json.display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = w.run(&refs);
    assert_success(&out, &refs, w.path());
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("summary")).expect("json");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (text, v["datasets"]["gharchive"].clone())
}

/// A key is per (dataset, key, UTC event day): the same id with another time on the same UTC day is a
/// duplicate (the first wins), on another UTC day it is another record; within one batch and across batches.
#[test]
fn the_same_key_is_a_duplicate_only_on_the_same_utc_day() {
    for split in [false, true] {
        let w = Workdir::new();
        let first = vec![
            event(10, "2020-03-01T10:00:00Z"),
            event(11, "2020-03-01T10:00:00Z"),
        ];
        let second = vec![
            event(10, "2020-03-01T23:59:59Z"),
            event(10, "2020-03-02T00:00:01Z"),
            event(11, "2020-02-29T23:00:00Z"),
        ];
        if split {
            w.land_bytes("gharchive", "a.json.gz", &gzip_lines(&first));
            w.run_once(&[]);
            w.land_bytes("gharchive", "b.json.gz", &gzip_lines(&second));
        } else {
            let all: Vec<String> = first.iter().chain(&second).cloned().collect();
            w.land_bytes("gharchive", "a.json.gz", &gzip_lines(&all));
        }
        w.run_once(&[]);
        assert_eq!(ids(&w), ["10", "10", "11", "11"], "split={split}");
        let days: Vec<String> = std::fs::read_dir(w.bronze().join("gharchive/year=2020/month=03"))
            .expect("march")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(days.len(), 2, "split={split}: {days:?}");
    }
}

/// With a finite `dedup_retention`, records of days beyond it are written without a check and counted (summary
/// JSON and table, the batch line says so plainly); without it, the same repeat is dropped.
#[test]
fn records_beyond_retention_are_counted_as_unchecked() {
    let w = Workdir::new();
    let old = "2020-01-01T10:00:00Z";
    w.land_bytes(
        "gharchive",
        "a.json.gz",
        &gzip_lines(&[event(1, old), event(2, old)]),
    );
    let (_, s) = run_with_summary(&w, &[]);
    assert_eq!(
        (s["rows"].as_u64(), s["unchecked"].as_u64()),
        (Some(2), Some(0))
    );

    w.land_bytes(
        "gharchive",
        "b.json.gz",
        &gzip_lines(&[event(1, old), event(3, old)]),
    );
    let (text, s) = run_with_summary(&w, &["--dedup-retention", "30d"]);
    assert_eq!(
        (
            s["rows"].as_u64(),
            s["duplicates"].as_u64(),
            s["unchecked"].as_u64()
        ),
        (Some(2), Some(0), Some(2)),
        "{text}"
    );
    assert!(
        text.contains("2 record(s) NOT checked for duplicates"),
        "{text}"
    );
    assert!(text.contains("unchecked"), "summary table column: {text}");
    assert_eq!(ids(&w), ["1", "1", "2", "3"]);

    // Without a retention the same repeat is checked against bronze and dropped.
    w.land_bytes(
        "gharchive",
        "c.json.gz",
        &gzip_lines(&[event(2, old), event(4, old)]),
    );
    let (text, s) = run_with_summary(&w, &[]);
    assert_eq!(
        (
            s["rows"].as_u64(),
            s["duplicates"].as_u64(),
            s["unchecked"].as_u64()
        ),
        (Some(1), Some(1), Some(0)),
        "{text}"
    );
    assert!(!text.contains("NOT checked"), "{text}");
}

/// `checkpoint verify --keys` over `w`'s bronze of table format `format`: (exit code, stdout).
fn verify_keys(w: &Workdir, format: &str) -> (i32, String) {
    let mut args: Vec<String> = ["checkpoint", "verify", "--keys"]
        .map(String::from)
        .to_vec();
    args.extend(w.location_args());
    let out = w
        .cmd()
        .args(&args)
        .env("LANDER_TABLE_FORMAT", format)
        .output()
        .expect("spawn lander");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `verify --keys` passes on a clean table (Parquet and Delta bronze) and catches a duplicate planted by hand,
/// naming the key, both files and the rows.
#[test]
fn verify_keys_passes_clean_tables_and_catches_a_planted_duplicate() {
    if !require_samples(&["gharchive/2015-01-01-0.json.gz"]) {
        return;
    }
    for format in ["parquet", "delta"] {
        let w = Workdir::new();
        w.land(
            &gharchive("2015-01-01-0.json.gz"),
            "gharchive",
            "2015-01-01-0.json.gz",
        );
        w.land_bytes(
            "gharchive",
            "x.json.gz",
            &gzip_lines(&[
                event(7, "2020-01-01T00:00:00Z"),
                event(7, "2020-01-02T00:00:00Z"),
            ]),
        );
        w.run_once(&["--table-format", format]);
        let (code, out) = verify_keys(&w, format);
        assert_eq!(code, 0, "{format}: {out}");
        assert!(
            out.contains("ok: no key held more than once on one day"),
            "{out}"
        );
    }
    // A part copied by hand within its day partition: every key of it is there twice.
    let w = Workdir::new();
    w.land_bytes(
        "gharchive",
        "x.json.gz",
        &gzip_lines(&[
            event(7, "2020-01-01T00:00:00Z"),
            event(8, "2020-01-01T01:00:00Z"),
        ]),
    );
    w.run_once(&[]);
    let day = w.bronze().join("gharchive/year=2020/month=01/day=01");
    let part = parquet_files(&day).pop().expect("a part");
    std::fs::copy(&part, day.join("part-planted.parquet")).expect("plant");
    let (code, out) = verify_keys(&w, "parquet");
    assert_eq!(code, 1, "{out}");
    let name = part
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    for key in ["7", "8"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("problem: key {key} held 2 times")))
            .unwrap_or_else(|| panic!("key {key} reported: {out}"));
        assert!(
            line.contains(&name) && line.contains("part-planted.parquet"),
            "{line}"
        );
    }
}

/// One delivery of the backfill: (landing name, lines).
type Delivery = (String, Vec<String>);

/// The five sample hours in a shuffled order (on a plain clone the bundled prefixes and stand-ins,
/// `data::hour_bytes`), with re-deliveries: two hours first in part and later whole under the same name
/// (supersets), an exact copy under a new name, and a synthetic day re-sent after events forty days newer ("a
/// month later"). Returns the deliveries in arrival order, in steps.
fn backfill_steps() -> Vec<Vec<Delivery>> {
    let hour = |n: &str| -> Vec<String> {
        let gz = crate::common::data::hour_bytes(n);
        let r = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(gz.as_slice()));
        r.lines().map(|l| l.expect("line")).collect()
    };
    let (h11, h12, h13) = (
        hour("2011-02-15-0.json.gz"),
        hour("2012-02-15-0.json.gz"),
        hour("2013-02-15-0.json.gz"),
    );
    let (h15a, h15b) = (hour("2015-01-01-0.json.gz"), hour("2015-01-01-1.json.gz"));
    let may: Vec<String> = (0..50)
        .map(|i| event(100 + i, "2016-05-01T12:00:00Z"))
        .collect();
    let june: Vec<String> = (0..20)
        .map(|i| event(200 + i, "2016-06-10T12:00:00Z"))
        .collect();
    let d = |name: &str, lines: &[String]| (name.to_string(), lines.to_vec());
    vec![
        vec![d("2015-01-01-1.json.gz", &h15b)],
        vec![d("2012-02-15-0.json.gz", &h12[..h12.len() / 2])],
        vec![
            d("may.json.gz", &may),
            d("2013-02-15-0.json.gz", &h13[..2000.min(h13.len() / 2)]),
        ],
        vec![d("2011-02-15-0.json.gz", &h11), d("june.json.gz", &june)],
        vec![d("2015-01-01-0.json.gz", &h15a)],
        vec![d("2012-02-15-0.json.gz", &h12)],
        vec![
            d("copy-of-2011.json.gz", &h11),
            d("may-resent.json.gz", &may),
        ],
        vec![d("2013-02-15-0.json.gz", &h13)],
    ]
}

/// Batches committed for `gharchive` (0 while there is no checkpoint yet).
fn batches_committed(w: &Workdir) -> u64 {
    let out = w
        .cmd()
        .args(["checkpoint", "stats", "--json", "--checkpoint"])
        .arg(w.checkpoint())
        .output()
        .expect("spawn lander");
    if !out.status.success() {
        return 0;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["datasets"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["dataset"] == "gharchive"))
        .and_then(|d| d["batches"].as_u64())
        .unwrap_or(0)
}

/// Random-order backfill with re-deliveries: bronze holds each distinct key once, equal to an independent count
/// over every line delivered, in `once`, `available-now --max-files-per-batch 1` and `continuous`, with a
/// horizon of one day (so almost every old day is read back from bronze), and with a 1-byte index budget.
#[test]
fn random_order_backfill_with_redeliveries_lands_each_key_once_in_every_mode() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let steps = backfill_steps();
    let all: Vec<&String> = steps.iter().flatten().flat_map(|(_, l)| l).collect();
    let expected = distinct_keys(all.iter().copied()) as u64;
    let mut totals = Vec::new();
    // The last variant keeps every day within the horizon but gives the index a 1-byte budget: every day a
    // batch did not touch is evicted after each commit and read back from bronze when touched again.
    for (mode, horizon, budget) in [
        ("once", "1d", "4GiB"),
        ("available-now", "1d", "4GiB"),
        ("continuous", "1d", "4GiB"),
        ("available-now", "4000d", "1"),
    ] {
        let w = Workdir::new();
        let extra = [
            "--settle-time",
            "0s",
            "--dedup-horizon",
            horizon,
            "--dedup-cache-bytes",
            budget,
            "--max-files-per-batch",
            "1",
        ];
        let daemon = (mode == "continuous").then(|| {
            std::fs::create_dir_all(w.landing().join("gharchive")).expect("mkdir");
            crate::common::daemon::Daemon::start(
                &w,
                mode,
                &[&extra[..], &["--poll-interval", "1s"]].concat(),
            )
        });
        // One file per batch: a re-delivered name (a new version) is a batch of its own too.
        let mut landed = 0u64;
        for step in &steps {
            for (name, lines) in step {
                w.land_bytes("gharchive", name, &gzip_lines(lines));
            }
            landed += step.len() as u64;
            match &daemon {
                None => {
                    let mut args = vec!["run", "--mode", mode];
                    let loc = w.location_args();
                    args.extend(loc.iter().map(String::as_str));
                    args.extend(extra);
                    w.run_ok(&args);
                }
                Some(_) => {
                    let done = wait_until(std::time::Duration::from_secs(60), || {
                        batches_committed(&w) >= landed
                    });
                    assert!(done, "continuous: step not committed");
                }
            }
        }
        if let Some(d) = daemon {
            let (status, _, stderr) = d.stop();
            assert!(status.success(), "{stderr}");
        }
        let (rows, distinct) = duckdb_counts(&w.bronze().join("gharchive"));
        assert_eq!(rows, distinct, "{mode}: a key twice in bronze");
        assert_eq!(rows, expected, "{mode}: every distinct key once");
        let (code, out) = verify_keys(&w, "parquet");
        assert_eq!(code, 0, "{mode}: {out}");
        if budget == "1" {
            let mut days: Vec<String> = std::fs::read_dir(w.checkpoint().join("dedup/gharchive"))
                .expect("dedup dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy()[..10].to_string())
                .collect();
            days.sort();
            days.dedup();
            assert!(days.len() <= 2, "the budget evicts cold days: {days:?}");
        }
        totals.push(rows);
    }
    assert!(totals.windows(2).all(|t| t[0] == t[1]), "{totals:?}");
}
