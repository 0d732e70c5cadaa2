//! Dedup whatever order files arrive in (issue 21): the keys of a day the dedup index does not hold are read back
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
        match v.get("id").and_then(|i| i.as_str().map(String::from).or(i.as_u64().map(|n| n.to_string()))) {
            Some(id) => keys.insert(format!("id:{id}")),
            None => keys.insert(format!("line:{}", l.trim())),
        };
    }
    keys.len()
}

/// The reproduction: a 2015 hour and the first 3,000 lines of the 2013 hour, then the 2013 hour
/// re-published whole under the same name (long after the 2015 watermark): no event twice, in both formats.
#[test]
fn a_republished_old_hour_lands_each_event_once() {
    let Some(_) = require_shared_data() else {
        return;
    };
    for format in ["parquet", "delta"] {
        let w = Workdir::new();
        w.land(&gharchive("2015-01-01-0.json.gz"), "gharchive", "2015-01-01-0.json.gz");
        let y2013 = gz_lines(&gharchive("2013-02-15-0.json.gz"), None);
        w.land_bytes("gharchive", "2013-02-15-0.json.gz", &gzip_lines(&y2013[..3000]));
        w.run_once(&["--table-format", format]);
        w.land(&gharchive("2013-02-15-0.json.gz"), "gharchive", "2013-02-15-0.json.gz");
        let out = w.run_once(&["--table-format", format]);
        assert!(out.contains("| 3000 "), "{format}: 3,000 duplicates dropped: {out}");
        let y2015 = gz_lines(&gharchive("2015-01-01-0.json.gz"), None);
        let expected = distinct_keys(y2015.iter().chain(&y2013));
        let (rows, distinct) = duckdb_counts(&w.bronze().join("gharchive"));
        assert_eq!(rows, distinct, "{format}: no event_key twice");
        assert_eq!(rows as usize, expected, "{format}: every distinct event once");
    }
}
