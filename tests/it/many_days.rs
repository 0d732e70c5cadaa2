//! Memory does not grow with the number of event days in a batch: real GH Archive events and real
//! Superstore rows, their event times rewritten to spread over 1, 30, 1,000 and 9,000 UTC days, plus the real
//! Superstore file, each land in one `once` run under 256 MB of peak RSS, every row once and in its own day's
//! partition, in at most two parts per day; DuckDB reads the same rows back.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use arrow::array::AsArray;
use arrow::datatypes::TimestampMicrosecondType;
use chrono::{Datelike, NaiveDate};

use crate::common::data::{gz_lines, lander_toml};
use crate::common::*;

/// The day spreads of the generated files.
const SPREADS: [i64; 4] = [1, 30, 1_000, 9_000];

/// Peak RSS allowed for any of these runs (before days were written one at a time: 2.9 GB, 1.8 GB and 796 MB).
const PEAK_RSS_KIB: u64 = 256 * 1024;

/// Events taken from the 2015 sample hours: the shortest ones with distinct ids, so that 9,000 of them fit in
/// about 6 MB (the size of the file in the issue) and one lands on each of 9,000 days.
const EVENTS: usize = 9_000;

/// The first day of every spread.
fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2001, 1, 1).expect("valid date")
}

/// The NDJSON lines: the shortest [`EVENTS`] real 2015 events with distinct ids, event `i` moved to day
/// `i % days` of the spread (at a time of day that varies too); returns the file and the rows expected per
/// partition.
fn ndjson_over(days: i64) -> (Vec<u8>, BTreeMap<String, usize>) {
    let mut lines: Vec<Vec<u8>> = ["2015-01-01-0.json.gz", "2015-01-01-1.json.gz"]
        .iter()
        .flat_map(|f| gz_lines(&gharchive(f)))
        .collect();
    lines.sort_by_key(|l| l.len());
    let mut ids = HashSet::new();
    let mut out = Vec::new();
    let mut expected = BTreeMap::new();
    for l in lines {
        let mut v: serde_json::Value = serde_json::from_slice(&l).expect("sample lines are JSON");
        let id = v["id"]
            .as_str()
            .expect("2015 events have a string id")
            .to_string();
        if !ids.insert(id) {
            continue;
        }
        let i = ids.len() as i64 - 1;
        let day = first_day() + chrono::Days::new((i % days) as u64);
        let secs = (i * 37) % 86_400;
        v["created_at"] = format!(
            "{}T{:02}:{:02}:{:02}Z",
            day.format("%Y-%m-%d"),
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
        .into();
        out.extend(serde_json::to_vec(&v).expect("json"));
        out.push(b'\n');
        *expected.entry(day_partition(day)).or_insert(0) += 1;
        if ids.len() == EVENTS {
            break;
        }
    }
    assert_eq!(ids.len(), EVENTS, "the samples hold enough distinct events");
    (out, expected)
}

/// The real Superstore rows, row `i`'s `Order Date` (m/d/yyyy) moved to day `i % days` of the spread; with
/// `None`, the real file unchanged. Returns the file and the rows expected per partition.
fn superstore_over(days: Option<i64>) -> (Vec<u8>, BTreeMap<String, usize>) {
    let src = shared_data().join("sales/Sample - Superstore.csv");
    let mut r = csv::Reader::from_path(&src).expect("superstore csv");
    let headers = r.headers().expect("header").clone();
    let col = headers
        .iter()
        .position(|h| h == "Order Date")
        .expect("Order Date column");
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&headers).expect("header");
    let mut keys = HashSet::new();
    let mut expected = BTreeMap::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.expect("record");
        assert!(keys.insert(rec[0].to_string()), "Row ID is unique");
        let day = match days {
            Some(n) => first_day() + chrono::Days::new((i as i64 % n) as u64),
            None => NaiveDate::parse_from_str(&rec[col], "%m/%d/%Y").expect("m/d/yyyy"),
        };
        let mut fields: Vec<String> = rec.iter().map(str::to_string).collect();
        fields[col] = format!("{}/{}/{}", day.month(), day.day(), day.year());
        w.write_record(&fields).expect("row");
        *expected.entry(day_partition(day)).or_insert(0) += 1;
    }
    let file = match days {
        Some(_) => w.into_inner().expect("csv bytes"),
        None => std::fs::read(&src).expect("read superstore"),
    };
    (file, expected)
}

/// Rows and parts per partition directory of `bronze/<dataset>`, checking that every row's `time_column` lies
/// on its directory's UTC day.
fn partitions(bronze: &Path, dataset: &str, time_column: &str) -> BTreeMap<String, (usize, usize)> {
    let root = bronze.join(dataset);
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for p in parquet_files(&root) {
        let rel = p.strip_prefix(&root).expect("below").display().to_string();
        let dir = rel
            .rsplit_once('/')
            .expect("a partition directory")
            .0
            .to_string();
        let entry = out.entry(dir.clone()).or_default();
        entry.1 += 1;
        for b in read_parquet(&p) {
            let t = b
                .column_by_name(time_column)
                .unwrap_or_else(|| panic!("no {time_column} in {rel}"))
                .as_primitive::<TimestampMicrosecondType>();
            for i in 0..t.len() {
                let day = chrono::DateTime::from_timestamp_micros(t.value(i))
                    .expect("valid time")
                    .date_naive();
                assert_eq!(day_partition(day), dir, "row {i} of {rel}");
            }
            entry.0 += b.num_rows();
        }
    }
    out
}

/// DuckDB's reading of `bronze/<dataset>`: (rows, rows whose `time_column` is not on their hive partition's
/// UTC day, partitions).
fn duckdb_counts(bronze: &Path, dataset: &str, time_column: &str) -> (usize, usize, usize) {
    let script = r#"
import sys, duckdb
glob, col = sys.argv[1], sys.argv[2]
con = duckdb.connect()
# No progress bar: it would go to stdout on a query of 9,000 files.
con.execute("SET enable_progress_bar = false")
r = con.execute(f"""
    SELECT count(*),
           count(*) FILTER (WHERE floor(epoch_us({col}) / 86400000000)::BIGINT
               <> date_diff('day', DATE '1970-01-01', make_date(year::BIGINT, month::BIGINT, day::BIGINT))),
           count(DISTINCT (year, month, day))
    FROM read_parquet('{glob}', hive_partitioning = true)""").fetchone()
print(*r)
"#;
    let glob = bronze.join(dataset).join("**/*.parquet");
    let out = run_duckdb(script, &[&glob.display().to_string(), time_column]);
    let n: Vec<usize> = out
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .map(|x| x.parse().expect("a count"))
        .collect();
    (n[0], n[1], n[2])
}

/// Lands `file` as `landing/<dataset>/<name>`, runs `once` measuring peak RSS, and checks the class promise:
/// under [`PEAK_RSS_KIB`], the expected rows per partition (every row on its own day), at most two parts per
/// day, and DuckDB reading the same rows.
fn lands_within_bounds(
    label: &str,
    dataset: &str,
    name: &str,
    file: &[u8],
    expected: &BTreeMap<String, usize>,
    time_column: &str,
) {
    let w = Workdir::new();
    w.land_bytes(dataset, name, file);
    let mut args = w.once_args();
    if dataset != "gharchive" {
        args.extend(["--config".to_string(), lander_toml(&w)]);
    }
    let (out, peak_kib) = run_measured(&w, &args);
    assert_success(&out, &[label], w.path());
    let rows: usize = expected.values().sum();
    eprintln!(
        "{label}: {} bytes, {rows} rows over {} days: peak RSS {} MiB",
        file.len(),
        expected.len(),
        peak_kib / 1024
    );
    assert!(
        peak_kib > 0 && peak_kib < PEAK_RSS_KIB,
        "{label}: peak RSS {peak_kib} KiB"
    );
    let got = partitions(&w.bronze(), dataset, time_column);
    let counts: BTreeMap<String, usize> = got.iter().map(|(d, (n, _))| (d.clone(), *n)).collect();
    assert_eq!(&counts, expected, "{label}: rows per partition");
    let most = got.values().map(|(_, parts)| *parts).max().unwrap_or(0);
    assert!(most <= 2, "{label}: a day has {most} parts");
    assert_eq!(
        duckdb_counts(&w.bronze(), dataset, time_column),
        (rows, 0, expected.len()),
        "{label}: DuckDB's rows, rows off their day, partitions"
    );
}

#[test]
fn ndjson_spread_over_many_days_lands_in_bounded_memory() {
    let Some(_) = require_shared_data() else {
        return;
    };
    for days in SPREADS {
        let (file, expected) = ndjson_over(days);
        assert_eq!(expected.len() as i64, days);
        lands_within_bounds(
            &format!("ndjson over {days} days"),
            "gharchive",
            &format!("events-{days}d.json"),
            &file,
            &expected,
            "created_at",
        );
    }
}

#[test]
fn csv_spread_over_many_days_lands_in_bounded_memory() {
    let Some(_) = require_shared_data() else {
        return;
    };
    for days in SPREADS {
        let (file, expected) = superstore_over(Some(days));
        assert_eq!(expected.len() as i64, days);
        lands_within_bounds(
            &format!("csv over {days} days"),
            "superstore",
            &format!("superstore-{days}d.csv"),
            &file,
            &expected,
            "order_date",
        );
    }
}

#[test]
fn the_real_superstore_file_lands_in_bounded_memory() {
    let Some(_) = require_shared_data() else {
        return;
    };
    let (file, expected) = superstore_over(None);
    assert!(
        expected.len() > 1_000,
        "the sample spans years of order days"
    );
    lands_within_bounds(
        "Sample - Superstore.csv",
        "superstore",
        "Sample - Superstore.csv",
        &file,
        &expected,
        "order_date",
    );
}
