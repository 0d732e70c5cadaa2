//! Sample data and readers shared by the behaviour tests: GH Archive lines, split samples, CSV sales, hostile names, the quarantine and the checkpoint as `checkpoint show` prints them.

use crate::common::*;
use arrow::array::AsArray as _;
use arrow::datatypes::Int64Type;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Output;

/// Decompressed lines of a gzip file.
pub fn gz_lines(path: &Path) -> Vec<Vec<u8>> {
    gz_lines_of(&std::fs::read(path).expect("read"))
}

/// Decompressed lines of gzip bytes.
pub fn gz_lines_of(gz: &[u8]) -> Vec<Vec<u8>> {
    let r = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(gz));
    r.split(b'\n')
        .map(|l| l.expect("line"))
        .filter(|l| !l.is_empty())
        .collect()
}

/// The `id`s of the events of a gzip NDJSON file (lines without one are left out; every line must be JSON).
pub fn ids_of_gz(gz: &[u8]) -> Vec<String> {
    gz_lines_of(gz)
        .iter()
        .map(|l| serde_json::from_slice::<serde_json::Value>(l).expect("json"))
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .collect()
}

/// Distinct event keys of GH Archive lines, computed independently of lander: the `id` when present, else
/// the whole line.
pub fn distinct_events(files: &[&Path]) -> usize {
    let mut keys: HashSet<Vec<u8>> = HashSet::new();
    for f in files {
        for l in gz_lines(f) {
            let v: serde_json::Value =
                serde_json::from_slice(&l).expect("sample lines are valid JSON");
            match v.get("id").and_then(|i| i.as_str()) {
                Some(id) => keys.insert(format!("id:{id}").into_bytes()),
                None => keys.insert([b"line:".as_slice(), l.trim_ascii()].concat()),
            };
        }
    }
    keys.len()
}

/// [`distinct_events`] of GH Archive hours by name (`2011-02-15-0.json.gz`), read through [`gharchive`]: the
/// genuine hours or their bundled prefixes, whichever the tests read.
pub fn hour_events(hours: &[&str]) -> usize {
    let paths: Vec<PathBuf> = hours.iter().map(|h| gharchive(h)).collect();
    distinct_events(&paths.iter().map(PathBuf::as_path).collect::<Vec<_>>())
}

/// The gzip bytes of a GH Archive hour: the sample file's bytes when it can be had ([`gharchive`]: genuine or
/// bundled); else, for the two hours with no bundled prefix, a stand-in made from a bundled hour: for
/// `2012-02-15-0` the 2011 hour moved to 2012-02-15 with its ids prefixed by `2012-` (new keys on another day),
/// for `2015-01-01-1` the 2015-01-01-0 hour with every id prefixed by `1` (new keys, the same day). Tests that
/// use it compute what they expect from these bytes ([`hour_events_of`]).
pub fn hour_bytes(name: &str) -> Vec<u8> {
    let path = gharchive(name);
    if path.is_file() {
        return std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    }
    let rewrite = |base: &str, edit: &dyn Fn(String) -> String| -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for l in gz_lines(&gharchive(base)) {
            let l = String::from_utf8(l).expect("sample lines are UTF-8");
            e.write_all(edit(l).as_bytes()).expect("gz");
            e.write_all(b"\n").expect("gz");
        }
        e.finish().expect("gz")
    };
    // A new id: `prefix` before the event's own (the 2011 events carry string ids too, only not first).
    let new_id = |l: String, prefix: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(&l).expect("sample lines are JSON");
        match v["id"].as_str() {
            Some(id) => l.replacen(
                &format!(r#""id":"{id}""#),
                &format!(r#""id":"{prefix}{id}""#),
                1,
            ),
            None => l,
        }
    };
    match name {
        "2012-02-15-0.json.gz" => rewrite("2011-02-15-0.json.gz", &|l| {
            new_id(l, "2012-").replace(
                r#""created_at":"2011-02-15T"#,
                r#""created_at":"2012-02-15T"#,
            )
        }),
        "2015-01-01-1.json.gz" => rewrite("2015-01-01-0.json.gz", &|l| new_id(l, "1")),
        _ => panic!("no sample {} and no stand-in for it", path.display()),
    }
}

/// Lands [`hour_bytes`] of `name` as `gharchive/<as_name>`; returns the landed path (for [`distinct_events`]).
pub fn land_hour(w: &Workdir, name: &str, as_name: &str) -> PathBuf {
    // Through a file of the workdir: `Workdir::land` makes the sub-directories of `as_name`.
    let src = w.path().join("hours").join(name);
    std::fs::create_dir_all(src.parent().expect("dir")).expect("mkdir");
    std::fs::write(&src, hour_bytes(name)).expect("write");
    w.land(&src, "gharchive", as_name)
}

/// [`distinct_events`] of [`hour_bytes`] of each of `hours`.
pub fn hour_events_of(hours: &[&str]) -> usize {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths: Vec<PathBuf> = hours
        .iter()
        .map(|h| {
            let p = dir.path().join(h);
            std::fs::write(&p, hour_bytes(h)).expect("write");
            p
        })
        .collect();
    distinct_events(&paths.iter().map(PathBuf::as_path).collect::<Vec<_>>())
}

pub fn lander_toml(w: &Workdir) -> String {
    let p = w.path().join("lander.toml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("lander.toml"),
        &p,
    )
    .expect("copy lander.toml");
    p.display().to_string()
}

/// The 2015-01-01-0 sample split into `n` gzip files of distinct events; returns (name, bytes) and the ids.
pub fn split_sample(n: usize) -> (Vec<(String, Vec<u8>)>, HashSet<String>) {
    use std::io::BufRead;
    let f = std::fs::File::open(gharchive("2015-01-01-0.json.gz")).expect("open");
    let lines: Vec<Vec<u8>> = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(f))
        .split(b'\n')
        .map(|l| l.expect("line"))
        .filter(|l| !l.is_empty())
        .collect();
    let mut ids = HashSet::new();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_slice(l).expect("json");
        ids.insert(v["id"].as_str().expect("id").to_string());
    }
    let per = lines.len().div_ceil(n);
    let files = lines
        .chunks(per)
        .enumerate()
        .map(|(i, chunk)| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            for l in chunk {
                e.write_all(l).expect("gz");
                e.write_all(b"\n").expect("gz");
            }
            (format!("part-{i:03}.json.gz"), e.finish().expect("gz"))
        })
        .collect();
    (files, ids)
}

/// One quarantined record, read back from `_quarantine/<dataset>/*.parquet`.
#[derive(Debug, Clone)]
pub struct QRow {
    pub source_file: String,
    pub line: i64,
    pub offset: i64,
    pub reason: String,
    pub raw: Vec<u8>,
}

/// Every quarantine row of `dataset`, in file order.
pub fn quarantine(w: &Workdir, dataset: &str) -> Vec<QRow> {
    let dir = w.bronze().join("_quarantine").join(dataset);
    let mut out = Vec::new();
    for p in parquet_files(&dir) {
        if p.strip_prefix(&dir).expect("below").starts_with("files") {
            continue;
        }
        for b in read_parquet(&p) {
            let s = |c: &str| b.column_by_name(c).expect(c).as_string::<i32>().clone();
            let i = |c: &str| {
                b.column_by_name(c)
                    .expect(c)
                    .as_primitive::<Int64Type>()
                    .clone()
            };
            let (file, line, offset, reason) =
                (s("source_file"), i("line"), i("offset"), s("reason"));
            let raw = b
                .column_by_name("raw")
                .expect("raw")
                .as_binary::<i32>()
                .clone();
            for r in 0..b.num_rows() {
                out.push(QRow {
                    source_file: file.value(r).to_string(),
                    line: line.value(r),
                    offset: offset.value(r),
                    reason: reason.value(r).to_string(),
                    raw: raw.value(r).to_vec(),
                });
            }
        }
    }
    out
}

/// `lander run --mode once` with the workdir's locations and `extra`; returns the output whatever the status.
pub fn run_once_raw(w: &Workdir, extra: &[&str]) -> Output {
    let mut args = w.once_args();
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    w.run(&refs)
}

/// Like [`run_once_raw`], asserting exit 0; returns (stdout, stderr).
pub fn run_once_ok(w: &Workdir, extra: &[&str]) -> (String, String) {
    let out = run_once_raw(w, extra);
    assert_success(&out, extra, w.path());
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `lander checkpoint list --json`, by path.
pub fn checkpoint_files(w: &Workdir) -> BTreeMap<String, Value> {
    let mut args = vec!["checkpoint".to_string(), "list".into(), "--json".into()];
    args.extend(w.location_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = w.run_ok(&refs);
    let v: Value = serde_json::from_str(&text).expect("list --json");
    v.as_array()
        .expect("array")
        .iter()
        .map(|f| (f["path"].as_str().expect("path").to_string(), f.clone()))
        .collect()
}

/// The first `n` decompressed lines of a GH Archive sample.
pub fn sample_lines(name: &str, n: usize) -> Vec<Vec<u8>> {
    use std::io::BufRead;
    let f = std::fs::File::open(gharchive(name)).expect("open");
    std::io::BufReader::new(flate2::read::MultiGzDecoder::new(f))
        .split(b'\n')
        .take(n)
        .map(|l| l.expect("line"))
        .collect()
}

/// The bundled GH Archive fixture hour (first 1000 lines of the real 2015-01-01-0 sample).
pub fn fixture_hour() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/landing/gharchive/2015-01-01-0.json.gz")
}

/// The decompressed lines of the fixture hour.
pub fn fixture_lines() -> Vec<String> {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(fixture_hour()).expect("open fixture"))
        .read_to_string(&mut text)
        .expect("gunzip fixture");
    text.lines().map(str::to_string).collect()
}

/// Names users give files (Spanish accents, spaces), every character object stores like to encode, a name
/// that is already percent-encoded text, emoji, and names of 250 bytes; two in sub-directories with such
/// names. `long`: the length of the two long names (250; HDFS clients write a file under `.<name>.tmp.<n>`
/// first, so a name there must leave 7 bytes of the 255-byte limit). Shared with the conformance suite.
pub fn hard_names(long: usize) -> Vec<String> {
    let mut v: Vec<String> = [
        "ventas_año_2024.csv",
        "acción á é í ó ú Ñ.csv",
        "with spaces in name.csv",
        "50%_off.csv",
        "lit%C3%B1eral.csv",
        "hash#tag.csv",
        "star*.csv",
        "question?.csv",
        "back\\slash.csv",
        "pipe|.csv",
        "lt<gt>.csv",
        "quote\"d.csv",
        "emoji_📦🚀.csv",
        "😀first.csv",
        "four-byte 🚀 dir/𝄞 clef 𠀋.csv",
        "semi;comma,eq=amp&plus+tilde~.csv",
        "año 2024/dic#a/ventas.csv",
        "100%/ñ ?.csv",
    ]
    .map(String::from)
    .to_vec();
    v.push(format!("{}.csv", "l".repeat(long - 4)));
    v.push(format!(
        "{}{}.csv",
        "ñ".repeat((long - 4) / 2),
        "n".repeat(long % 2)
    ));
    for n in &v[v.len() - 2..] {
        assert_eq!(n.len(), long, "{n}");
    }
    v
}

/// The header plus data lines `skip..skip + n` of `transacciones_ventas.csv` (unique transaction ids).
pub fn sales_lines(skip: usize, n: usize) -> Vec<u8> {
    let text =
        std::fs::read_to_string(sample("sales/transacciones_ventas.csv")).expect("sales csv");
    assert!(
        text.lines().count() > skip + n,
        "the sales sample has fewer than {} rows",
        skip + n
    );
    let mut lines = text.lines();
    let mut out = String::new();
    for line in lines.next().into_iter().chain(lines.skip(skip).take(n)) {
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}

/// For the `i`-th name: its bytes (a disjoint slice of the sales CSV, of a different length per name) and its
/// row count, computed from the lines themselves (all lines but the header).
pub fn content_for(i: usize) -> (Vec<u8>, usize) {
    let bytes = sales_lines(i * 40, 10 + i);
    let rows = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count()
        - 1;
    (bytes, rows)
}

/// A sales CSV with `good` valid rows and `bad` rows whose quantity is not a number, ids from `first`.
pub fn sales_csv(first: u64, good: u64, bad: u64) -> String {
    let mut s = String::from(
        "transaction_id,timestamp,customer_id,product_id,category,quantity,unit_price,total,payment_method,status\n",
    );
    for i in 0..good + bad {
        let q = if i < bad {
            "uno".to_string()
        } else {
            "2".into()
        };
        s += &format!(
            "{},2025-10-2{} 11:44:27,65{i},1468{i},Ropa,{q},10.5,21.0,Tarjeta,Completada\n",
            first + i,
            i % 5
        );
    }
    s
}
