//! Schema evolution of a CSV dataset: slices of the real sales file landed with a new column
//! (`channel`), a dropped column (`payment_method`), a reordered header and values of the wrong type, under
//! `schema_evolution = "fail" | "add_columns" | "rescue"`. The Delta table is read back by delta-rs and DuckDB's
//! delta extension and compared with an independent computation over the landed files (Python's csv module);
//! on a plain-Parquet bronze `add_columns` is refused and the default is `fail`.

use std::path::Path;

use arrow::array::{Array, AsArray};
use serde_json::Value;

use crate::common::delta::{duckdb_delta_path, python};
use crate::common::*;

/// Rows per landed slice.
const ROWS: usize = 200;

/// The dataset's columns as `transacciones_ventas.csv` has them, with their declared types.
const COLUMNS: [(&str, &str); 10] = [
    ("transaction_id", "int64"),
    ("timestamp", "timestamp"),
    ("customer_id", "int64"),
    ("product_id", "int64"),
    ("category", "string"),
    ("quantity", "int64"),
    ("unit_price", "decimal(12,2)"),
    ("total", "decimal(14,2)"),
    ("payment_method", "string"),
    ("status", "string"),
];

/// `lander.toml` with dataset `ventas` (the sales columns) in `mode` (`None`: unset) and `format`.
fn write_config(w: &Workdir, mode: Option<&str>, format: &str) -> String {
    let mut t = format!(
        "table_format = \"{format}\"\n\n[datasets.ventas]\nformat = \"csv\"\nkey = [\"transaction_id\"]\nevent_time = \"timestamp\"\n"
    );
    if let Some(m) = mode {
        t.push_str(&format!("schema_evolution = \"{m}\"\n"));
    }
    t.push_str("\n[datasets.ventas.columns]\n");
    for (c, ty) in COLUMNS {
        t.push_str(&format!("{c} = \"{ty}\"\n"));
    }
    let p = w.path().join("lander.toml");
    std::fs::write(&p, t).expect("lander.toml");
    p.display().to_string()
}

/// The sales file's header and rows (no field of it is quoted).
fn sales() -> (Vec<String>, Vec<Vec<String>>) {
    let text =
        std::fs::read_to_string(sample("sales/transacciones_ventas.csv")).expect("sales csv");
    let mut lines = text.lines();
    let split = |l: &str| l.split(',').map(String::from).collect::<Vec<_>>();
    let header = split(lines.next().expect("header"));
    (header, lines.take(5 * ROWS).map(split).collect())
}

/// Writes `header` and `rows` as CSV text (a field with a comma or a quote is quoted).
fn csv(header: &[String], rows: &[Vec<String>]) -> Vec<u8> {
    let line = |r: &[String]| -> String {
        r.iter()
            .map(|f| {
                if f.contains([',', '"']) {
                    format!("\"{}\"", f.replace('"', "\"\""))
                } else {
                    f.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut out = line(header);
    out.push('\n');
    for r in rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out.into_bytes()
}

/// The five slices of the test, in landing order: `a` as the file is; `b` adds `channel` (every fourth empty);
/// `c` drops `payment_method`; `d` has the header reversed; `e` has a bad `quantity` in every tenth row and a
/// bad `unit_price` in every fifteenth.
fn slices() -> Vec<(&'static str, Vec<u8>)> {
    let (header, rows) = sales();
    let slice = |i: usize| rows[i * ROWS..(i + 1) * ROWS].to_vec();
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let mut b_header = header.clone();
    b_header.push("channel".into());
    let b: Vec<Vec<String>> = slice(1)
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.push(["web", "store", "app", ""][i % 4].into());
            r
        })
        .collect();
    let pm = col("payment_method");
    let drop = |r: &[String]| -> Vec<String> {
        r.iter()
            .enumerate()
            .filter(|(i, _)| *i != pm)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let c_header = drop(&header);
    let c: Vec<Vec<String>> = slice(2).iter().map(|r| drop(r)).collect();
    let rev = |r: &[String]| -> Vec<String> { r.iter().rev().cloned().collect() };
    let d: Vec<Vec<String>> = slice(3).iter().map(|r| rev(r)).collect();
    let (q, p) = (col("quantity"), col("unit_price"));
    let e: Vec<Vec<String>> = slice(4)
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            if i % 10 == 0 {
                r[q] = format!("{}x", r[q]);
            }
            if i % 15 == 0 {
                r[p] = "12,5x".into();
            }
            r
        })
        .collect();
    vec![
        ("a.csv", csv(&header, &slice(0))),
        ("b_channel.csv", csv(&b_header, &b)),
        ("c_dropped.csv", csv(&c_header, &c)),
        ("d_reordered.csv", csv(&rev(&header), &d)),
        ("e_badtypes.csv", csv(&header, &e)),
    ]
}

/// The independent computation: what each mode must land, from the landed files alone (Python's csv module
/// and `decimal`, not lander's code). Prints per file the rows landed, the rows quarantined, whether the file is
/// rejected whole, and its non-null `payment_method`, `quantity` sum and `total` in cents; overall the
/// non-null and non-empty `channel` counts and the sorted `_rescued_data` values.
const EXPECTED: &str = r#"
import csv, json, sys, os
from decimal import Decimal, InvalidOperation
landing, mode = sys.argv[1], sys.argv[2]
base = ["transaction_id","timestamp","customer_id","product_id","category","quantity","unit_price","total","payment_method","status"]
def is_int(v):
    try: int(v); return True
    except ValueError: return False
def is_dec(v, scale):
    try: d = Decimal(v)
    except InvalidOperation: return False
    return d.is_finite() and -d.as_tuple().exponent <= scale
checks = {"transaction_id": is_int, "customer_id": is_int, "product_id": is_int, "quantity": is_int,
          "unit_price": lambda v: is_dec(v, 2), "total": lambda v: is_dec(v, 2)}
files, rescued, channel, channel_set = {}, [], 0, 0
for name in sorted(os.listdir(landing)):
    with open(os.path.join(landing, name), newline="") as f:
        r = csv.DictReader(f)
        header = r.fieldnames
        rows = list(r)
    extra = [h for h in header if h not in base]
    missing = [c for c in base if c not in header]
    out = {"landed": 0, "quarantined": 0, "rejected": False, "payment": 0, "quantity": 0, "cents": 0}
    files[name] = out
    if mode == "fail" and (extra or missing):
        out["rejected"] = True
        continue
    for row in rows:
        bad = {c: row[c] for c in checks if c in row and row[c] != "" and not checks[c](row[c])}
        if bad and mode != "rescue":
            out["quarantined"] += 1
            continue
        out["landed"] += 1
        out["payment"] += 1 if row.get("payment_method") is not None else 0
        out["quantity"] += int(row["quantity"]) if "quantity" not in bad else 0
        out["cents"] += int(Decimal(row["total"]) * 100)
        if mode == "rescue":
            bad.update({h: row[h] for h in extra if row[h] != ""})
            if bad:
                rescued.append(json.dumps(bad, sort_keys=True, separators=(",", ":")))
        elif "channel" in row:
            channel_set += 1
            channel += 1 if row["channel"] != "" else 0
print(json.dumps({"files": files, "rescued": sorted(rescued), "channel": [channel_set, channel]}))
"#;

/// Queries `argv[2..]` (SQL over view `t`) on the Delta table `argv[1]` with delta-rs (`engine = deltars`) or
/// DuckDB's delta extension (`duckdb`); prints the column names and each query's rows.
const READ: &str = r#"
import json, os, sys
engine, path, queries = sys.argv[1], sys.argv[2], sys.argv[3:]
out = {}
if engine == "deltars":
    from deltalake import DeltaTable, QueryBuilder
    dt = DeltaTable(path)
    out["columns"] = [f.name for f in dt.schema().fields]
    def run(sql):
        t = QueryBuilder().register("t", dt).execute(sql).read_all()
        cols = [t.column(i).to_pylist() for i in range(t.num_columns)]
        return [list(r) for r in zip(*cols)]
else:
    import duckdb, duckdb_extension_delta
    c = duckdb.connect(config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false"})
    ext = os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "v" + duckdb.__version__, "delta.duckdb_extension")
    c.execute(f"LOAD '{ext}'")
    c.execute(f"create view t as select * from delta_scan('{path}')")
    out["columns"] = [r[0] for r in c.execute("describe t").fetchall()]
    def run(sql):
        return [list(r) for r in c.execute(sql).fetchall()]
out["results"] = [run(q) for q in queries]
print(json.dumps(out, default=str))
"#;

/// Runs `queries` on `table` with `engine` (`deltars` or `duckdb`): the table's columns and each result.
fn read(engine: &str, table: &Path, queries: &[&str]) -> (Vec<String>, Vec<Value>) {
    let t = table.display().to_string();
    let mut args = vec![engine, t.as_str()];
    args.extend(queries);
    let pythonpath = (engine == "duckdb").then(duckdb_delta_path);
    let out = python(READ, &args, pythonpath.as_deref());
    let j: Value = serde_json::from_str(out.trim()).expect("json from the reader");
    let columns = j["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c.as_str().expect("name").to_string())
        .collect();
    (columns, j["results"].as_array().expect("results").to_vec())
}

/// Per landed file: `[file, rows, non-null payment_method, sum(quantity), sum(total) in cents]`.
const PER_FILE: &str = "select _source_file, count(*), count(payment_method), \
    cast(coalesce(sum(quantity), 0) as bigint), cast(sum(total * 100) as bigint) \
    from t group by _source_file order by _source_file";

/// Lands every slice: `a.csv` in a first run (the table is created with the file's schema), the other four in a
/// second (one batch). Returns the exit codes of the two runs.
fn land_and_run(w: &Workdir, config: &str) -> [i32; 2] {
    let slices = slices();
    let mut codes = [0; 2];
    for (run, names) in [(0, &slices[..1]), (1, &slices[1..])] {
        for (name, bytes) in names {
            w.land_bytes("ventas", name, bytes);
        }
        let mut args = w.once_args();
        args.extend(["-c".to_string(), config.to_string()]);
        let out = w.cmd().args(&args).output().expect("spawn lander");
        codes[run] = out.status.code().expect("exit code");
    }
    codes
}

fn expected(w: &Workdir, mode: &str) -> Value {
    let landing = w.landing().join("ventas").display().to_string();
    serde_json::from_str(python(EXPECTED, &[&landing, mode], None).trim()).expect("expected json")
}

/// Asserts that both readers see `expect`'s rows per file (counts, nulls of the dropped column, sums of a
/// reordered file's numbers), and returns delta-rs' columns.
fn assert_rows(table: &Path, expect: &Value) -> Vec<String> {
    let want: Vec<Value> = expect["files"]
        .as_object()
        .expect("files")
        .iter()
        .filter(|(_, f)| f["landed"].as_u64() > Some(0))
        .map(|(name, f)| {
            serde_json::json!([
                format!("ventas/{name}"),
                f["landed"],
                f["payment"],
                f["quantity"],
                f["cents"]
            ])
        })
        .collect();
    let mut columns = Vec::new();
    for engine in ["deltars", "duckdb"] {
        let (cols, results) = read(engine, table, &[PER_FILE]);
        assert_eq!(
            results[0],
            Value::Array(want.clone()),
            "{engine}: rows per file"
        );
        if engine == "deltars" {
            columns = cols;
        } else {
            assert_eq!(cols, columns, "duckdb and delta-rs see the same columns");
        }
    }
    columns
}

/// The quarantine table's rows: `(source file, reason)`.
fn quarantine(w: &Workdir) -> Vec<(String, String)> {
    let q = w.bronze().join("_quarantine/ventas");
    if !q.exists() {
        return Vec::new();
    }
    let (_, r) = read(
        "deltars",
        &q,
        &["select source_file, reason from t order by source_file, line"],
    );
    r[0].as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            (
                row[0].as_str().expect("file").to_string(),
                row[1].as_str().expect("reason").to_string(),
            )
        })
        .collect()
}

/// The `metaData` actions of the table's log, by version.
fn metadata_actions(table: &Path) -> Vec<(u64, Value)> {
    let mut out = Vec::new();
    for v in 0.. {
        let p = table.join(format!("_delta_log/{v:020}.json"));
        let Ok(text) = std::fs::read_to_string(&p) else {
            break;
        };
        for l in text.lines() {
            let j: Value = serde_json::from_str(l).expect("log line");
            if let Some(m) = j.get("metaData") {
                out.push((v, m.clone()));
            }
        }
    }
    out
}

/// Per quarantined file, the rows quarantined, from `expect`.
fn expected_quarantine(expect: &Value) -> usize {
    expect["files"]
        .as_object()
        .expect("files")
        .values()
        .map(|f| {
            f["quarantined"].as_u64().expect("n") as usize + usize::from(f["rejected"] == true)
        })
        .sum()
}

#[test]
fn add_columns_evolves_the_delta_schema_in_the_batch_commit() {
    let w = Workdir::new();
    // Unset: `add_columns` is the default on a Delta bronze.
    let config = write_config(&w, None, "delta");
    assert_eq!(land_and_run(&w, &config), [0, 0]);
    let expect = expected(&w, "add_columns");
    let table = w.bronze().join("ventas");
    let columns = assert_rows(&table, &expect);
    assert!(columns.contains(&"channel".to_string()), "{columns:?}");
    assert!(!columns.contains(&"_rescued_data".to_string()));
    // `channel` is null for the rows of every file without it (and for the first file, landed before it
    // existed); an empty field of `b` is an empty string, as in any string column.
    for engine in ["deltars", "duckdb"] {
        let (_, r) = read(
            engine,
            &table,
            &["select count(channel), count(nullif(channel, '')) from t",
              "select count(*) from t where channel is not null and _source_file <> 'ventas/b_channel.csv'"],
        );
        assert_eq!(r[0], serde_json::json!([expect["channel"]]), "{engine}");
        assert_eq!(r[1], serde_json::json!([[0]]), "{engine}");
    }
    // Version 2 (the second batch) carries a `metaData` with the same table id and `channel` appended, nullable.
    let meta = metadata_actions(&table);
    assert_eq!(meta.iter().map(|(v, _)| *v).collect::<Vec<_>>(), [0, 2]);
    assert_eq!(meta[0].1["id"], meta[1].1["id"]);
    let schema: Value =
        serde_json::from_str(meta[1].1["schemaString"].as_str().expect("schema")).expect("json");
    let channel = schema["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == "channel")
        .expect("channel in the evolved schema");
    assert_eq!(channel["type"], "string");
    assert_eq!(channel["nullable"], true);
    let log2 = std::fs::read_to_string(table.join("_delta_log/00000000000000000002.json"))
        .expect("version 2");
    assert!(log2.contains("\"addedColumns\":[\"channel\"]"), "{log2}");
    assert!(
        log2.contains("\"txn\""),
        "the batch's txn is in the same commit: {log2}"
    );
    // Bad values are quarantined, never coerced: exactly the rows Python finds unparseable.
    let q = quarantine(&w);
    assert_eq!(q.len(), expected_quarantine(&expect));
    assert!(q.iter().all(|(f, _)| f == "ventas/e_badtypes.csv"), "{q:?}");
    assert!(
        q.iter().any(|(_, r)| r.contains("invalid int64 \"")),
        "{q:?}"
    );
    assert!(
        q.iter()
            .any(|(_, r)| r.contains("invalid decimal(12,2) \"12,5x\"")),
        "{q:?}"
    );
}

#[test]
fn a_first_batch_with_a_new_column_creates_the_table_with_it_and_a_rerun_adds_nothing() {
    let w = Workdir::new();
    let config = write_config(&w, Some("add_columns"), "delta");
    // Every slice in one run: the schema inferred from `a.csv` evolves before the table exists.
    for (name, bytes) in slices() {
        w.land_bytes("ventas", name, &bytes);
    }
    w.run_once(&["-c", &config]);
    let expect = expected(&w, "add_columns");
    let table = w.bronze().join("ventas");
    let columns = assert_rows(&table, &expect);
    assert!(columns.contains(&"channel".to_string()), "{columns:?}");
    let meta = metadata_actions(&table);
    assert_eq!(
        meta.len(),
        1,
        "created with the evolved schema: no second metaData"
    );
    assert!(meta[0].1["schemaString"]
        .as_str()
        .expect("schema")
        .contains("\"channel\""));
    // A rerun reads nothing and commits nothing; the checkpoint lists each file once.
    let versions = |t: &Path| {
        std::fs::read_dir(t.join("_delta_log"))
            .expect("log")
            .count()
    };
    let before = versions(&table);
    let out = w.run_once(&["-c", &config]);
    assert!(out.contains("nothing new to ingest"), "{out}");
    assert_eq!(versions(&table), before);
    assert_rows(&table, &expect);
    let mut args = vec![
        "checkpoint".to_string(),
        "list".into(),
        "--checkpoint".into(),
    ];
    args.push(w.checkpoint().display().to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let list = w.run_ok(&refs);
    for (name, _) in slices() {
        assert_eq!(list.matches(&format!("ventas/{name}")).count(), 1, "{list}");
    }
}

/// A file read again from past its header (it grew between runs) maps its new rows by the names of its own
/// header: a reordered header and one without a column, whose tails would not fit the schema by position.
#[test]
fn a_grown_file_maps_its_tail_by_its_own_header() {
    let w = Workdir::new();
    let config = write_config(&w, None, "delta");
    let all = slices();
    w.land_bytes("ventas", all[0].0, &all[0].1);
    // The first half of each (the header and 100 rows), then the rest appended in place.
    let halves: Vec<(&str, usize)> = all[2..4]
        .iter()
        .map(|(name, bytes)| {
            let lines: Vec<usize> = bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1)
                .collect();
            (*name, lines[ROWS / 2])
        })
        .collect();
    for ((name, cut), (_, bytes)) in halves.iter().zip(&all[2..4]) {
        w.land_bytes("ventas", name, &bytes[..*cut]);
    }
    w.run_once(&["-c", &config]);
    for ((name, cut), (_, bytes)) in halves.iter().zip(&all[2..4]) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(w.landing().join("ventas").join(name))
            .expect("open to append");
        f.write_all(&bytes[*cut..]).expect("append");
    }
    w.run_once(&["-c", &config]);
    let expect = expected(&w, "add_columns");
    assert_rows(&w.bronze().join("ventas"), &expect);
    assert_eq!(expected_quarantine(&expect), 0);
    assert!(quarantine(&w).is_empty(), "{:?}", quarantine(&w));
}

#[test]
fn rescue_keeps_the_schema_and_lands_every_row_with_what_did_not_fit() {
    let w = Workdir::new();
    let config = write_config(&w, Some("rescue"), "delta");
    assert_eq!(land_and_run(&w, &config), [0, 0]);
    let expect = expected(&w, "rescue");
    let table = w.bronze().join("ventas");
    let columns = assert_rows(&table, &expect);
    assert!(
        columns.contains(&"_rescued_data".to_string()),
        "{columns:?}"
    );
    assert!(!columns.contains(&"channel".to_string()), "{columns:?}");
    // Every row landed: nothing quarantined; the schema never changed (one metaData, version 0).
    assert!(quarantine(&w).is_empty());
    assert_eq!(metadata_actions(&table).len(), 1);
    let landed: u64 = expect["files"]
        .as_object()
        .expect("files")
        .values()
        .map(|f| f["landed"].as_u64().expect("n"))
        .sum();
    assert_eq!(landed, 5 * ROWS as u64);
    for engine in ["deltars", "duckdb"] {
        let (_, r) = read(
            engine,
            &table,
            &["select _rescued_data from t where _rescued_data is not null order by _rescued_data"],
        );
        let got: Vec<Value> = r[0]
            .as_array()
            .expect("rows")
            .iter()
            .map(|row| row[0].clone())
            .collect();
        let mut want: Vec<Value> = expect["rescued"].as_array().expect("rescued").to_vec();
        want.sort_by_key(|v| v.as_str().unwrap_or_default().to_string());
        assert_eq!(got, want, "{engine}");
        assert!(
            got.contains(&Value::from(r#"{"unit_price":"12,5x"}"#)),
            "{engine}"
        );
        assert!(
            got.contains(&Value::from(r#"{"channel":"web"}"#)),
            "{engine}"
        );
    }
}

#[test]
fn fail_rejects_a_changed_header_whole_and_keeps_a_reordered_one() {
    let w = Workdir::new();
    let config = write_config(&w, Some("fail"), "delta");
    assert_eq!(land_and_run(&w, &config), [0, 0]);
    let expect = expected(&w, "fail");
    let table = w.bronze().join("ventas");
    let columns = assert_rows(&table, &expect);
    assert!(!columns.contains(&"channel".to_string()));
    assert_eq!(metadata_actions(&table).len(), 1);
    let q = quarantine(&w);
    assert_eq!(q.len(), expected_quarantine(&expect));
    let whole: Vec<&(String, String)> = q
        .iter()
        .filter(|(_, r)| r.starts_with("whole file rejected"))
        .collect();
    assert_eq!(whole.len(), 2, "{q:?}");
    assert!(
        whole.iter().any(
            |(f, r)| f == "ventas/b_channel.csv" && r.contains("unexpected column \"channel\"")
        ),
        "{whole:?}"
    );
    assert!(
        whole.iter().any(|(f, r)| f == "ventas/c_dropped.csv"
            && r.contains("column \"payment_method\" is missing")),
        "{whole:?}"
    );
}

#[test]
fn a_parquet_bronze_refuses_add_columns_and_fails_by_default() {
    let w = Workdir::new();
    let config = write_config(&w, Some("add_columns"), "parquet");
    let mut args = w.once_args();
    args.extend(["-c".to_string(), config]);
    let out = w.cmd().args(&args).output().expect("spawn");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("schema_evolution = \"add_columns\" needs table_format = \"delta\""),
        "{err}"
    );
    // Unset on Parquet: `fail`, so no part of another schema is ever written next to the others.
    let config = write_config(&w, None, "parquet");
    assert_eq!(land_and_run(&w, &config), [0, 0]);
    let expect = expected(&w, "fail");
    let landed: usize = expect["files"]
        .as_object()
        .expect("files")
        .values()
        .map(|f| f["landed"].as_u64().expect("n") as usize)
        .sum();
    assert_eq!(count_rows(&w.bronze().join("ventas")), landed);
    let mut schemas = std::collections::BTreeSet::new();
    for p in parquet_files(&w.bronze().join("ventas")) {
        let batches = read_parquet(&p);
        schemas.insert(format!(
            "{:?}",
            batches[0]
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect::<Vec<_>>()
        ));
    }
    assert_eq!(schemas.len(), 1, "{schemas:?}");
}

#[test]
fn rescue_on_a_parquet_bronze_lands_every_row_in_one_schema() {
    let w = Workdir::new();
    let config = write_config(&w, Some("rescue"), "parquet");
    assert_eq!(land_and_run(&w, &config), [0, 0]);
    let expect = expected(&w, "rescue");
    let dir = w.bronze().join("ventas");
    assert_eq!(count_rows(&dir), 5 * ROWS);
    let mut schemas = std::collections::BTreeSet::new();
    let mut rescued = Vec::new();
    for p in parquet_files(&dir) {
        for b in read_parquet(&p) {
            schemas.insert(format!("{:?}", b.schema().fields()));
            let c = b.column_by_name("_rescued_data").expect("_rescued_data");
            let c = c.as_string::<i32>();
            rescued.extend(
                (0..c.len())
                    .filter(|i| c.is_valid(*i))
                    .map(|i| Value::from(c.value(i))),
            );
        }
    }
    assert_eq!(schemas.len(), 1, "{schemas:?}");
    rescued.sort_by_key(|v| v.as_str().unwrap_or_default().to_string());
    let mut want: Vec<Value> = expect["rescued"].as_array().expect("rescued").to_vec();
    want.sort_by_key(|v| v.as_str().unwrap_or_default().to_string());
    assert_eq!(rescued, want);
}

/// `argv[1]` a Delta table URL, `argv[2]` its storage options (JSON), `argv[3]` SQL over view `t`: delta-rs
/// prints the table's columns and the query's rows.
const READ_REMOTE: &str = r#"
import json, sys
from deltalake import DeltaTable, QueryBuilder
dt = DeltaTable(sys.argv[1], storage_options=json.loads(sys.argv[2]) or None)
t = QueryBuilder().register("t", dt).execute(sys.argv[3]).read_all()
cols = [t.column(i).to_pylist() for i in range(t.num_columns)]
print(json.dumps({"columns": [f.name for f in dt.schema().fields], "rows": [list(r) for r in zip(*cols)]}))
"#;

/// `add_columns` on HDFS and S3: the evolving commit goes through the same put-if-absent log write as every
/// other; delta-rs reads the evolved table there (rows per file as computed from the landed bytes).
fn add_columns_on(kind: crate::common::backends::Kind) {
    let t = crate::common::backends::Target::new(kind);
    let config = write_config(&t.wd, None, "delta");
    let all = slices();
    // The landed bytes, also written locally for the independent computation.
    let local = t.wd.path().join("expected/ventas");
    std::fs::create_dir_all(&local).expect("mkdir");
    for (run, names) in [&all[..1], &all[1..]].into_iter().enumerate() {
        for (name, bytes) in names {
            t.land_bytes("ventas", name, bytes.clone());
            std::fs::write(local.join(name), bytes).expect("local copy");
        }
        let out = t.run_once(&["-c", &config]);
        assert!(out.contains("committed"), "run {run}: {out}");
    }
    let expect: Value = serde_json::from_str(
        python(
            EXPECTED,
            &[&local.display().to_string(), "add_columns"],
            None,
        )
        .trim(),
    )
    .expect("expected json");
    let (url, opts) = crate::common::delta::table_url(&t, kind, "ventas");
    let out = crate::common::delta::python_with_deadline(
        READ_REMOTE,
        &[&url, &opts.to_string(), PER_FILE],
    );
    let got: Value = serde_json::from_str(out.trim()).expect("json from delta-rs");
    assert!(
        got["columns"]
            .as_array()
            .expect("columns")
            .contains(&Value::from("channel")),
        "{got}"
    );
    let want: Vec<Value> = expect["files"]
        .as_object()
        .expect("files")
        .iter()
        .filter(|(_, f)| f["landed"].as_u64() > Some(0))
        .map(|(name, f)| {
            serde_json::json!([
                format!("ventas/{name}"),
                f["landed"],
                f["payment"],
                f["quantity"],
                f["cents"]
            ])
        })
        .collect();
    assert_eq!(got["rows"], Value::Array(want));
}

#[test]
fn add_columns_on_hdfs() {
    add_columns_on(crate::common::backends::Kind::Hdfs)
}

#[test]
fn add_columns_on_s3() {
    add_columns_on(crate::common::backends::Kind::S3)
}
