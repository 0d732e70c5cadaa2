//! Reading a Delta table from a test: delta-rs and DuckDB through Python, the expected rows, the files on disk.

use crate::common::backends::{s3_env, Kind, Target};
use crate::common::data::distinct_events;
use crate::common::*;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Reads a Delta table with delta-rs (`deltalake` from PyPI, through its DataFusion query engine): prints
/// `version`, the sorted event keys, and the table's file paths (relative to the table root).
pub const DELTA_RS: &str = r#"
import json, sys
from deltalake import DeltaTable, QueryBuilder
path = sys.argv[1]
version = int(sys.argv[2]) if len(sys.argv) > 2 else None
dt = DeltaTable(path, version=version) if version is not None else DeltaTable(path)
t = QueryBuilder().register("t", dt).execute("select event_key from t").read_all()
keys = sorted(t.column("event_key").to_pylist())
files = sorted(a for a in dt.file_uris())
p = dt.protocol()
print(json.dumps({"version": dt.version(), "keys": keys, "files": files,
    "protocol": [p.min_reader_version, p.min_writer_version],
    "partitions": list(dt.metadata().partition_columns)}))
"#;

/// What delta-rs read.
pub struct DeltaRead {
    pub version: u64,
    pub keys: Vec<String>,
    pub files: Vec<String>,
    pub protocol: (i64, i64),
    pub partitions: Vec<String>,
}

pub fn python(script: &str, args: &[&str], pythonpath: Option<&Path>) -> String {
    let mut c = Command::new("python3");
    c.arg("-c").arg(script).args(args);
    if let Some(p) = pythonpath {
        c.env("PYTHONPATH", p);
    }
    let out = c.output().expect("spawn python3");
    assert!(
        out.status.success(),
        "python3 failed (this test needs `pip install deltalake` and, for DuckDB, duckdb 1.5.5 with \
         duckdb-extension-delta 1.5.5 in $LANDER_DUCKDB_DELTA; scripts/test installs them): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Reads `table` (at `version`, or the latest) with delta-rs.
pub fn delta_rs(table: &Path, version: Option<u64>) -> DeltaRead {
    let t = table.display().to_string();
    let v = version.map(|v| v.to_string());
    let mut args = vec![t.as_str()];
    args.extend(v.as_deref());
    let out = python(DELTA_RS, &args, None);
    let j: serde_json::Value = serde_json::from_str(out.trim()).expect("json from delta-rs");
    let strings = |k: &str| -> Vec<String> {
        j[k].as_array()
            .expect("array")
            .iter()
            .map(|s| s.as_str().expect("string").to_string())
            .collect()
    };
    DeltaRead {
        version: j["version"].as_u64().expect("version"),
        keys: strings("keys"),
        files: strings("files"),
        protocol: (
            j["protocol"][0].as_i64().expect("reader"),
            j["protocol"][1].as_i64().expect("writer"),
        ),
        partitions: strings("partitions"),
    }
}

/// Where duckdb 1.5.5 and its delta extension are installed (`pip install --target`), apart from the duckdb
/// the other tests use.
pub fn duckdb_delta_path() -> PathBuf {
    std::env::var_os("LANDER_DUCKDB_DELTA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/lander-duckdb-delta")
        })
}

/// Row count and distinct event keys of `table` read by DuckDB's delta extension (`delta_scan`), loaded from the
/// file its PyPI package ships (it cannot download at run time).
pub fn duckdb_delta(table: &Path) -> (u64, u64) {
    let script = r#"
import os, sys, duckdb, duckdb_extension_delta
c = duckdb.connect(config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false"})
ext = os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "v" + duckdb.__version__, "delta.duckdb_extension")
c.execute(f"LOAD '{ext}'")
n, k = c.execute("select count(*), count(distinct event_key) from delta_scan(?)", [sys.argv[1]]).fetchone()
print(n, k)
"#;
    let out = python(
        script,
        &[&table.display().to_string()],
        Some(&duckdb_delta_path()),
    );
    let v: Vec<u64> = out
        .split_whitespace()
        .map(|s| s.parse().expect("number"))
        .collect();
    (v[0], v[1])
}

/// Data files on disk below the table root (relative paths), the log excluded.
pub fn files_on_disk(table: &Path) -> Vec<String> {
    parquet_files(table)
        .into_iter()
        .map(|p| p.strip_prefix(table).expect("below").display().to_string())
        .filter(|p| !p.starts_with("_delta_log"))
        .collect()
}

/// The table's files as paths relative to its root.
pub fn relative(table: &Path, uris: &[String]) -> Vec<String> {
    let root = format!("{}/", table.display());
    let mut v: Vec<String> = uris
        .iter()
        .map(|u| {
            let p = u.strip_prefix("file://").unwrap_or(u);
            p.strip_prefix(&root)
                .unwrap_or_else(|| panic!("{p} is not below {root}"))
                .to_string()
        })
        .collect();
    v.sort();
    v
}

/// What a table must hold, computed without lander: the distinct event ids, and how many distinct events in
/// all (events without an id, the 2013 Timeline shape, are keyed by a hash of their line: `h:<hex>`).
#[derive(Debug, PartialEq)]
pub struct Expected {
    pub ids: BTreeSet<String>,
    pub total: usize,
}

impl Expected {
    /// How many distinct events in all.
    pub fn total_len(&self) -> usize {
        self.total
    }
}

pub fn expected_of(files: &[PathBuf]) -> Expected {
    let ids: BTreeSet<String> = files
        .iter()
        .flat_map(|f| crate::common::data::ids_of_gz(&std::fs::read(f).expect("read sample")))
        .collect();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    Expected {
        ids,
        total: distinct_events(&refs),
    }
}

pub fn expected_ids(ids: &HashSet<String>) -> Expected {
    Expected {
        ids: ids.iter().cloned().collect(),
        total: ids.len(),
    }
}

/// The table's keys as an [`Expected`], after checking that none occurs twice.
pub fn found(keys: &[String]) -> Expected {
    let distinct: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(keys.len(), distinct.len(), "no event key twice");
    Expected {
        ids: keys
            .iter()
            .filter(|k| !k.starts_with("h:"))
            .cloned()
            .collect(),
        total: keys.len(),
    }
}

/// The table holds every key once and exactly the files its log references.
pub fn assert_table_exact(table: &Path, expected: &Expected) -> DeltaRead {
    let r = delta_rs(table, None);
    assert_eq!(&found(&r.keys), expected, "every event once");
    assert_eq!(
        relative(table, &r.files),
        files_on_disk(table),
        "no data file outside the log (an unreferenced part would be garbage)"
    );
    r
}

/// How long one delta-rs read may take before the test fails instead of hanging (the HDFS client it uses has
/// no read timeout of its own).
pub const READ_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// The table `bronze/<dataset>` of `t` as delta-rs addresses it, with the storage options it needs.
pub fn table_url(t: &Target, kind: Kind, dataset: &str) -> (String, serde_json::Value) {
    let url = format!("{}/{dataset}", t.bronze_url);
    match kind {
        Kind::Local | Kind::Hdfs => (url, serde_json::json!({})),
        // The same cluster: delta-rs has no JNI client, it reads with its native one.
        #[cfg(feature = "hdrs")]
        Kind::HdfsJni => (
            url.replacen("hdfs+jni://", "hdfs://", 1),
            serde_json::json!({}),
        ),
        Kind::S3 => {
            let env: BTreeMap<String, String> = s3_env().into_iter().collect();
            (
                url,
                serde_json::json!({
                    "AWS_ENDPOINT_URL": env["AWS_ENDPOINT_URL"],
                    "AWS_ALLOW_HTTP": "true",
                    "AWS_REGION": "us-east-1",
                    "AWS_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
                    "AWS_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"],
                }),
            )
        }
    }
}

/// Rows and distinct values of `column` in the Delta table at `url` (with its storage options, see
/// [`table_url`]), read by delta-rs within [`READ_DEADLINE`].
pub fn rows_and_distinct(url: &str, opts: &serde_json::Value, column: &str) -> (usize, usize) {
    const SCRIPT: &str = r#"
import json, sys
from deltalake import DeltaTable, QueryBuilder
url, opts, column = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
dt = DeltaTable(url, storage_options=opts or None)
t = QueryBuilder().register("t", dt).execute(f'select "{column}" as c from t').read_all()
values = t.column("c").to_pylist()
print(json.dumps([len(values), len(set(values))]))
"#;
    let out = python_with_deadline(SCRIPT, &[url, &opts.to_string(), column]);
    serde_json::from_str(out.trim()).expect("json from delta-rs")
}

/// [`rows_and_distinct`] of a local table.
pub fn local_rows_and_distinct(table: &Path, column: &str) -> (usize, usize) {
    rows_and_distinct(&table.display().to_string(), &serde_json::json!({}), column)
}

/// `python3 -c script args`, killed and failed after [`READ_DEADLINE`]; returns stdout.
pub fn python_with_deadline(script: &str, args: &[&str]) -> String {
    // Output to files, not pipes: the keys of a table fill a pipe, and nobody would read it while we wait.
    let (stdout, stderr) = (
        tempfile::tempfile().expect("tempfile"),
        tempfile::tempfile().expect("tempfile"),
    );
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdout(stdout.try_clone().expect("clone"))
        .stderr(stderr.try_clone().expect("clone"))
        .spawn()
        .expect("spawn python3");
    let done = wait_until(READ_DEADLINE, || {
        child.try_wait().expect("try_wait").is_some()
    });
    if !done {
        let _ = child.kill();
    }
    let status = child.wait().expect("wait");
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut s = String::new();
        f.rewind().expect("rewind");
        f.read_to_string(&mut s).expect("utf-8");
        s
    };
    let (out, err) = (read(stdout), read(stderr));
    assert!(
        done && status.success(),
        "delta-rs (`pip install deltalake`) {} reading {args:?}: {err}",
        if done { "failed" } else { "timed out" },
    );
    out
}
