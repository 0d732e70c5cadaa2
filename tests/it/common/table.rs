//! `lander table` tests' helpers: the rows of a Delta table version, its operations, one commit per batch.

use crate::common::delta::{delta_rs, python};
use crate::common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The day all of `split_sample`'s events fall on.
pub const DAY: &str = "year=2015/month=01/day=01";

/// Reads a Delta table with delta-rs: every row as `[event_key, sha256 of all its columns]`, sorted, plus the
/// version and the files (relative to the table root) of the version read.
pub const ROWS: &str = r#"
import hashlib, json, sys
from deltalake import DeltaTable, QueryBuilder
path = sys.argv[1]
version = int(sys.argv[2]) if len(sys.argv) > 2 else None
dt = DeltaTable(path, version=version) if version is not None else DeltaTable(path)
t = QueryBuilder().register("t", dt).execute("select * from t").read_all()
names = t.column_names
cols = [t.column(n).to_pylist() for n in names]
rows = sorted([r[names.index("event_key")], hashlib.sha256(repr(r).encode()).hexdigest()] for r in zip(*cols))
root = "file://" + path.rstrip("/") + "/"
files = sorted(u.removeprefix(root).removeprefix(path.rstrip("/") + "/") for u in dt.file_uris())
print(json.dumps({"version": dt.version(), "rows": rows, "files": files}))
"#;

/// What [`ROWS`] read.
pub struct Rows {
    pub version: u64,
    pub rows: Vec<(String, String)>,
    pub files: Vec<String>,
}

pub fn read_rows(table: &Path, version: Option<u64>) -> Rows {
    let t = table.display().to_string();
    let v = version.map(|v| v.to_string());
    let mut args = vec![t.as_str()];
    args.extend(v.as_deref());
    let j: serde_json::Value =
        serde_json::from_str(python(ROWS, &args, None).trim()).expect("json from delta-rs");
    Rows {
        version: j["version"].as_u64().expect("version"),
        rows: j["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                (
                    r[0].as_str().expect("key").to_string(),
                    r[1].as_str().expect("hash").to_string(),
                )
            })
            .collect(),
        files: j["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| f.as_str().expect("file").to_string())
            .collect(),
    }
}

/// `lander table <args...>` with the workdir's locations; returns the output whatever the status.
pub fn table_cmd(w: &Workdir, args: &[&str]) -> std::process::Output {
    let mut a: Vec<String> = vec!["table".into()];
    a.extend(args.iter().map(|s| s.to_string()));
    a.extend(w.location_args());
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    w.run(&refs)
}

pub fn table_ok(w: &Workdir, args: &[&str]) -> String {
    let out = table_cmd(w, args);
    assert_success(&out, args, w.path());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `run --mode available-now --max-files-per-batch 1`: one commit per landing file.
pub fn run_one_per_commit(w: &Workdir) -> String {
    let a = one_per_commit_args(w);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    w.run_ok(&refs)
}

/// The arguments of [`run_one_per_commit`], for a test that starts the run in the background.
pub fn one_per_commit_args(w: &Workdir) -> Vec<String> {
    let mut a: Vec<String> = [
        "run",
        "--mode",
        "available-now",
        "--max-files-per-batch",
        "1",
        "--settle-time",
        "0s",
        "--table-format",
        "delta",
    ]
    .map(String::from)
    .to_vec();
    a.extend(w.location_args());
    a
}

/// Lands `files` (name, gzip bytes) under `landing/gharchive/`.
pub fn land_all(w: &Workdir, files: &[(String, Vec<u8>)]) {
    for (name, bytes) in files {
        w.land_bytes("gharchive", name, bytes);
    }
}

/// `commitInfo.operation` of every version of `table`, in version order.
pub fn operations(table: &Path) -> Vec<String> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(table.join("_delta_log"))
        .expect("log")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    logs.sort();
    logs.iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("commit");
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find_map(|v| v["commitInfo"]["operation"].as_str().map(String::from))
                .unwrap_or_default()
        })
        .collect()
}

/// The table holds every id of `ids` once and nothing else; returns its files.
pub fn assert_table_exact_keys(
    table: &Path,
    ids: &std::collections::HashSet<String>,
) -> Vec<String> {
    let r = delta_rs(table, None);
    let got: Vec<&String> = r.keys.iter().collect();
    let distinct: BTreeSet<&String> = got.iter().copied().collect();
    assert_eq!(got.len(), distinct.len(), "no event twice");
    assert_eq!(distinct, ids.iter().collect::<BTreeSet<_>>(), "every event");
    r.files
        .iter()
        .map(|f| {
            let p = f.strip_prefix("file://").unwrap_or(f);
            p.strip_prefix(&format!("{}/", table.display()))
                .unwrap_or(p)
                .to_string()
        })
        .collect()
}
