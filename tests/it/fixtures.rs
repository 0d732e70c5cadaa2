//! `run --mode once` on the bundled samples (`tests/fixtures/landing/`), which every clone has: the core check that
//! runs when the full samples (`../shared/data`, `LANDER_TEST_DATA`) are absent. Expected counts and partitions
//! are computed here from the fixture files themselves.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime};

use crate::common::data::{distinct_events, gz_lines, lander_toml};
use crate::common::*;

const GHARCHIVE: [&str; 3] = [
    "2011-02-15-0.json.gz",
    "2013-02-15-0.json.gz",
    "2015-01-01-0.json.gz",
];
const SALES: &str = "transacciones_ventas-sample.csv";
const SUPERSTORE: &str = "Sample - Superstore-sample.csv";

fn fixture(dataset: &str, name: &str) -> PathBuf {
    fixtures_landing().join(dataset).join(name)
}

/// Rows per `year=/month=/day=` directory of bronze's `dataset`.
fn rows_by_partition(bronze: &Path, dataset: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (file, n) in rows_by_file(&bronze.join(dataset)) {
        let dir = file.rsplit_once('/').expect("a partition directory").0;
        *out.entry(dir.to_string()).or_insert(0) += n;
    }
    out
}

/// Distinct values of `key` per UTC day of `time` (parsed by `day`) in a CSV fixture, the first row of a key
/// winning, as lander's dedup keeps it.
fn csv_rows_by_day(
    path: &Path,
    key: &str,
    time: &str,
    day: impl Fn(&str) -> NaiveDate,
) -> BTreeMap<String, usize> {
    let mut r = csv::Reader::from_path(path).expect("fixture csv");
    // Superstore starts with a UTF-8 byte order mark.
    let headers: Vec<String> = r
        .headers()
        .expect("header")
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect();
    let col = |n: &str| headers.iter().position(|h| h == n).expect("column");
    let (k, t) = (col(key), col(time));
    let mut seen = HashSet::new();
    let mut out = BTreeMap::new();
    for rec in r.records() {
        let rec = rec.expect("record");
        if seen.insert(rec[k].to_string()) {
            *out.entry(day_partition(day(&rec[t]))).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn once_on_the_bundled_fixtures_lands_every_record_once_in_its_day() {
    let w = Workdir::new();
    for f in GHARCHIVE {
        w.land(&fixture("gharchive", f), "gharchive", f);
    }
    w.land(&fixture("sales", SALES), "sales", SALES);
    w.land(&fixture("superstore", SUPERSTORE), "superstore", SUPERSTORE);
    let config = lander_toml(&w);
    let out = w.run_once(&["--config", &config]);
    for dataset in ["gharchive", "sales", "superstore"] {
        assert!(
            out.contains(&format!("{dataset}: batch 1 committed")),
            "{out}"
        );
    }

    // GH Archive: one row per distinct key (the id, else the whole line), in the partition of its UTC date.
    let files: Vec<PathBuf> = GHARCHIVE.iter().map(|f| fixture("gharchive", f)).collect();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let mut gh_days: BTreeMap<String, usize> = BTreeMap::new();
    let mut keys = HashSet::new();
    for f in &files {
        for l in gz_lines(f) {
            let v: serde_json::Value = serde_json::from_slice(&l).expect("fixture lines are JSON");
            let key = match v["id"].as_str() {
                Some(id) => format!("id:{id}"),
                None => format!("line:{}", String::from_utf8_lossy(l.trim_ascii())),
            };
            if keys.insert(key) {
                let t = v["created_at"].as_str().expect("created_at");
                let t = DateTime::parse_from_rfc3339(t).unwrap_or_else(|e| panic!("{t}: {e}"));
                *gh_days
                    .entry(day_partition(t.to_utc().date_naive()))
                    .or_insert(0) += 1;
            }
        }
    }
    assert_eq!(gh_days.values().sum::<usize>(), distinct_events(&refs));
    assert_eq!(rows_by_partition(&w.bronze(), "gharchive"), gh_days);

    // Sales: one row per transaction_id; `timestamp` has no offset and is UTC.
    let sales_days = csv_rows_by_day(
        &fixture("sales", SALES),
        "transaction_id",
        "timestamp",
        |t| {
            NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S")
                .unwrap_or_else(|e| panic!("{t}: {e}"))
                .date()
        },
    );
    assert_eq!(sales_days.values().sum::<usize>(), 3000);
    assert_eq!(rows_by_partition(&w.bronze(), "sales"), sales_days);

    // Superstore (declared in lander.toml): key `Row ID`, event time `Order Date` as m/d/yyyy.
    let store_days = csv_rows_by_day(
        &fixture("superstore", SUPERSTORE),
        "Row ID",
        "Order Date",
        |t| NaiveDate::parse_from_str(t, "%m/%d/%Y").unwrap_or_else(|e| panic!("{t}: {e}")),
    );
    assert_eq!(store_days.values().sum::<usize>(), 1000);
    assert_eq!(rows_by_partition(&w.bronze(), "superstore"), store_days);

    // Nothing quarantined: every fixture record is well formed.
    assert!(parquet_files(&w.bronze().join("_quarantine")).is_empty());

    // A second run finds nothing new and leaves bronze as it was.
    let before = rows_by_file(&w.bronze());
    let again = w.run_once(&["--config", &config]);
    assert!(again.contains("nothing new to ingest"), "{again}");
    assert_eq!(rows_by_file(&w.bronze()), before);
    let datasets: BTreeSet<String> = std::fs::read_dir(w.bronze())
        .expect("bronze")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('_'))
        .collect();
    assert_eq!(
        datasets,
        ["gharchive", "sales", "superstore"]
            .map(String::from)
            .into()
    );
}
