//! Operating the Delta tables: `table vacuum`, `table history`, `table convert` and `checkpoint
//! rebuild --from-table`, run through the real binary on the sample data and read back by delta-rs and DuckDB.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::common::data::{sales_csv, sales_lines};
use crate::common::delta::{delta_rs, duckdb_delta, expected_of, files_on_disk, found, python};
use crate::common::*;

/// `lander <sub...>` with the workdir's locations and `extra`; returns stdout (panics unless exit 0).
fn lander(w: &Workdir, sub: &[&str], extra: &[&str]) -> String {
    let mut args: Vec<String> = sub.iter().map(|s| s.to_string()).collect();
    args.extend(w.location_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    w.run_ok(&refs)
}

/// Sets the modification time of `path` to `ago` before now.
fn age(path: &Path, ago: Duration) {
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open to set mtime");
    f.set_modified(SystemTime::now() - ago).expect("set mtime");
}

/// Appends a commit file by hand (put-if-absent like any writer): `remove` actions for `paths` (relative to the
/// table root) with deletion time `ago` before now. Returns the version written.
fn remove_by_hand(table: &Path, paths: &[String], ago: Duration) -> u64 {
    let log = table.join("_delta_log");
    let version = std::fs::read_dir(&log)
        .expect("log")
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.strip_suffix(".json")?.parse::<u64>().ok()
        })
        .max()
        .expect("a version")
        + 1;
    let at = (SystemTime::now() - ago)
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as i64;
    let mut body =
        serde_json::json!({"commitInfo": {"timestamp": at, "operation": "DELETE"}}).to_string();
    for p in paths {
        let size = std::fs::metadata(table.join(p)).expect("part").len();
        body.push('\n');
        body.push_str(
            &serde_json::json!({"remove": {"path": p, "deletionTimestamp": at, "dataChange": true,
                "extendedFileMetadata": false, "size": size}})
            .to_string(),
        );
    }
    body.push('\n');
    let mut f = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(log.join(format!("{version:020}.json")))
        .expect("a new version");
    std::io::Write::write_all(&mut f, body.as_bytes()).expect("write commit");
    version
}

/// Copies a part to a new unreferenced name beside it (a crashed batch's leftover), aged `ago`.
fn plant(table: &Path, beside: &str, name: &str, ago: Duration) -> String {
    let src = table.join(beside);
    let rel = Path::new(beside).with_file_name(name);
    std::fs::copy(&src, table.join(&rel)).expect("copy part");
    age(&table.join(&rel), ago);
    rel.display().to_string()
}

fn vacuum_json(w: &Workdir, extra: &[&str]) -> Vec<(String, String)> {
    let out = lander(w, &["table", "vacuum", "--json"], extra);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let mut got: Vec<(String, String)> = v
        .as_array()
        .expect("reports")
        .iter()
        .flat_map(|r| r["deleted"].as_array().cloned().unwrap_or_default())
        .map(|d| {
            (
                d["path"].as_str().expect("path").to_string(),
                d["reason"].as_str().expect("reason").to_string(),
            )
        })
        .collect();
    got.sort();
    got
}

#[test]
fn vacuum_deletes_exactly_what_no_retained_version_needs() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    let files = [
        "2011-02-15-0.json.gz",
        "2013-02-15-0.json.gz",
        "2015-01-01-0.json.gz",
    ];
    let mut landed = Vec::new();
    for f in files {
        w.land(&gharchive(f), "gharchive", f);
        landed.push(gharchive(f));
        w.run_once(&[]);
    }
    let table = w.bronze().join("gharchive");
    let parts = files_on_disk(&table);
    assert_eq!(parts.len(), 3, "{parts:?}");
    let (old_removed, young_removed) = (parts[0].clone(), parts[1].clone());
    // Version 4 removed the 2011 part three hours ago; version 5 removes the 2013 part now.
    let v_old = remove_by_hand(
        &table,
        std::slice::from_ref(&old_removed),
        Duration::from_secs(3 * 3600),
    );
    let v_young = remove_by_hand(&table, std::slice::from_ref(&young_removed), Duration::ZERO);
    assert_eq!((v_old, v_young), (4, 5));
    // Leftovers no commit references: one old in the table, one young, one old in the quarantine table's root
    // (none here: the quarantine table does not exist), one old parquet inside _delta_log (never touched).
    let day = parts[2].clone();
    let old_orphan = plant(
        &table,
        &day,
        "part-b00000009-dead-0000.parquet",
        Duration::from_secs(5 * 3600),
    );
    let young_orphan = plant(
        &table,
        &day,
        "part-b00000010-beef-0000.parquet",
        Duration::from_secs(60),
    );
    std::fs::copy(table.join(&day), table.join("_delta_log/stray.parquet")).expect("copy");
    age(
        &table.join("_delta_log/stray.parquet"),
        Duration::from_secs(9 * 3600),
    );
    // The current snapshot's part is old too, and must stay.
    age(&table.join(&day), Duration::from_secs(30 * 24 * 3600));

    let want = vec![
        (format!("gharchive/{old_removed}"), "removed".to_string()),
        (
            format!("gharchive/{old_orphan}"),
            "unreferenced".to_string(),
        ),
    ];
    let before = files_on_disk(&table);
    let dry = vacuum_json(&w, &["--retain", "2h", "--dry-run"]);
    assert_eq!(dry, want, "dry run");
    assert_eq!(files_on_disk(&table), before, "a dry run deletes nothing");
    let text = lander(&w, &["table", "vacuum", "--dry-run"], &["--retain", "2h"]);
    assert!(text.contains("would delete 2 file(s)"), "{text}");

    let real = vacuum_json(&w, &["--retain", "2h"]);
    assert_eq!(
        real, dry,
        "a real run deletes exactly what the dry run listed"
    );
    let after: BTreeSet<String> = files_on_disk(&table).into_iter().collect();
    let expect: BTreeSet<String> = before
        .iter()
        .filter(|p| **p != old_removed && **p != old_orphan)
        .cloned()
        .collect();
    assert_eq!(after, expect);
    assert!(
        table.join("_delta_log/stray.parquet").exists(),
        "nothing in _delta_log is touched"
    );
    // Time travel to every version inside the retention (the old removal's and later) still reads.
    let latest = delta_rs(&table, None);
    assert_eq!(latest.version, v_young);
    let v4 = delta_rs(&table, Some(v_old));
    assert_eq!(
        found(&v4.keys),
        expected_of(&landed[1..]),
        "version {v_old} (inside the retention) reads without the removed part"
    );
    assert_eq!(found(&latest.keys), expected_of(&landed[2..]));
    // A second vacuum with the same retention finds nothing.
    assert!(vacuum_json(&w, &["--retain", "2h"]).is_empty());

    // Under an hour is refused (exit 2) and says why; forced, it takes the young removal and orphan too.
    let mut args: Vec<String> = ["table", "vacuum", "--retain", "0s"]
        .map(String::from)
        .to_vec();
    args.extend(w.location_args());
    let out = w.cmd().args(&args).output().expect("spawn");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("concurrent") || err.contains("running writers"),
        "{err}"
    );
    assert_eq!(
        files_on_disk(&table).len(),
        after.len(),
        "refused: nothing deleted"
    );
    let forced = vacuum_json(&w, &["--retain", "0s", "--force"]);
    assert_eq!(
        forced,
        vec![
            (format!("gharchive/{young_removed}"), "removed".to_string()),
            (
                format!("gharchive/{young_orphan}"),
                "unreferenced".to_string()
            ),
        ]
    );
    assert_eq!(
        files_on_disk(&table),
        vec![day.clone()],
        "only the live part is left"
    );
    let r = delta_rs(&table, None);
    assert_eq!(
        found(&r.keys),
        expected_of(&landed[2..]),
        "the latest version still reads"
    );
    assert_eq!(
        duckdb_delta(&table).0,
        expected_of(&landed[2..]).total_len() as u64
    );
}

#[test]
fn history_shows_each_batch_with_the_rows_the_checkpoint_recorded() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    let files = [
        "2011-02-15-0.json.gz",
        "2013-02-15-0.json.gz",
        "2015-01-01-0.json.gz",
    ];
    for f in files {
        w.land(&gharchive(f), "gharchive", f);
        w.run_once(&[]);
    }
    let h: serde_json::Value = serde_json::from_str(&lander(
        &w,
        &["table", "history", "--json", "--dataset", "gharchive"],
        &[],
    ))
    .expect("json");
    let versions = h["gharchive"].as_array().expect("versions");
    assert_eq!(
        versions.len(),
        files.len() + 1,
        "create + one version per batch"
    );
    assert_eq!(versions.last().expect("v0")["operation"], "create");
    for (batch, f) in files.iter().enumerate().map(|(i, f)| (i as u64 + 1, f)) {
        let v = &versions[files.len() - batch as usize];
        assert_eq!(v["version"], batch);
        assert_eq!(v["operation"], "batch");
        assert_eq!(v["batch"], batch);
        assert_eq!(v["inputs"], serde_json::json!([format!("gharchive/{f}")]));
        // Rows and files per version equal what the checkpoint recorded for the batch.
        let show: serde_json::Value = serde_json::from_str(&lander(
            &w,
            &[
                "checkpoint",
                "show",
                &batch.to_string(),
                "--dataset",
                "gharchive",
                "--json",
            ],
            &[],
        ))
        .expect("show json");
        let b = &show["batches"][0];
        assert_eq!(v["rows_added"], b["rows"], "batch {batch}");
        assert_eq!(
            v["files_added"].as_u64(),
            b["outputs"].as_array().map(|o| o.len() as u64),
            "batch {batch}"
        );
        let expected = expected_of(&[gharchive(f)]).total_len();
        assert_eq!(v["rows_added"].as_u64(), Some(expected as u64), "{f}");
    }
    let text = lander(
        &w,
        &["table", "history", "--limit", "2", "-d", "gharchive"],
        &[],
    );
    assert!(text.contains("VERSION") && text.contains("batch"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains("gharchive/")).count(),
        2,
        "{text}"
    );
}

/// The rows of each dataset of a plain-Parquet bronze, read by DuckDB's Parquet glob: (rows, distinct keys).
fn parquet_glob(bronze: &Path, dataset: &str, key: &str) -> (u64, u64) {
    let glob = format!(
        "{}/{dataset}/year=*/month=*/day=*/*.parquet",
        bronze.display()
    );
    let script = r#"
import sys, duckdb
n, k = duckdb.sql(f"select count(*), count(distinct {sys.argv[2]}) from read_parquet('{sys.argv[1]}')").fetchall()[0]
print(n, k)
"#;
    let out = python(script, &[&glob, key], None);
    let v: Vec<u64> = out
        .split_whitespace()
        .map(|s| s.parse().expect("n"))
        .collect();
    (v[0], v[1])
}

/// (rows, distinct `key`) of a Delta table read by delta-rs.
fn delta_rs_count(table: &Path, key: &str) -> (u64, u64) {
    let script = r#"
import sys
from deltalake import DeltaTable, QueryBuilder
t = QueryBuilder().register("t", DeltaTable(sys.argv[1])).execute(f"select count(*) as n, count(distinct {sys.argv[2]}) as k from t").read_all()
print(t.column("n").to_pylist()[0], t.column("k").to_pylist()[0])
"#;
    let out = python(script, &[&table.display().to_string(), key], None);
    let v: Vec<u64> = out
        .split_whitespace()
        .map(|s| s.parse().expect("n"))
        .collect();
    (v[0], v[1])
}

#[test]
fn convert_makes_a_parquet_bronze_a_delta_table_that_the_next_run_appends_to() {
    if !require_samples(&STANDARD_SAMPLES) || !require_samples(&["sales/Sample - Superstore.csv"]) {
        return;
    }
    let w = Workdir::new();
    // The 2015-01-01-0 hour in two halves of distinct events: the first lands before the conversion, the second
    // is what the next run appends.
    let (halves, _) = crate::common::data::split_sample(2);
    let mut landed: Vec<PathBuf> = Vec::new();
    for f in ["2011-02-15-0.json.gz", "2013-02-15-0.json.gz"] {
        w.land(&gharchive(f), "gharchive", f);
        landed.push(gharchive(f));
    }
    landed.push(w.land_bytes("gharchive", "2015-01-01-0-a.json.gz", &halves[0].1));
    for f in ["transacciones_ventas.csv", "Sample - Superstore.csv"] {
        w.land(&sample(&format!("sales/{f}")), "sales", f);
    }
    w.run_once(&["--table-format", "parquet"]);
    // A crashed writer's temporary beside the parts is not a part.
    let gh = w.bronze().join("gharchive");
    let day = files_on_disk(&gh)[0].clone();
    let tmp = Path::new(&day).with_file_name(".part-x.parquet.tmp");
    std::fs::copy(gh.join(&day), gh.join(&tmp)).expect("tmp");
    let glob_gh = parquet_glob(&w.bronze(), "gharchive", "event_key");
    let glob_sales = parquet_glob(&w.bronze(), "sales", "transaction_id");
    assert_eq!(glob_gh.0, expected_of(&landed).total_len() as u64);

    let out = lander(&w, &["table", "convert"], &[]);
    assert!(
        out.contains("gharchive: converted") && out.contains("sales: converted"),
        "{out}"
    );
    assert!(
        w.bronze().join("_quarantine/sales/_delta_log").exists(),
        "{out}"
    );
    // Converting again is refused: the table is Delta now.
    let mut again: Vec<String> = ["table", "convert", "-d", "gharchive"]
        .map(String::from)
        .to_vec();
    again.extend(w.location_args());
    assert_eq!(
        w.cmd().args(&again).output().expect("spawn").status.code(),
        Some(2)
    );

    let r = delta_rs(&gh, None);
    assert_eq!(r.version, 0);
    assert_eq!(
        found(&r.keys),
        expected_of(&landed),
        "delta-rs reads the Parquet glob's rows"
    );
    assert_eq!(
        duckdb_delta(&gh),
        glob_gh,
        "DuckDB's delta_scan reads the Parquet glob's rows"
    );
    assert_eq!(
        delta_rs_count(&w.bronze().join("sales"), "transaction_id"),
        glob_sales
    );
    let log = std::fs::read_to_string(gh.join("_delta_log/00000000000000000000.json")).expect("v0");
    assert!(!log.contains(".part-x"), "temporaries are left out");
    assert!(
        log.contains(r#"\"minValues\":{\"created_at\":\"2011-02-15T00:00:06.000Z\"}"#),
        "event-time statistics from the footers: {log}"
    );

    // The checkpoint that wrote the Parquet bronze goes on with the Delta table: a run appends, nothing twice.
    landed.push(w.land_bytes("gharchive", "2015-01-01-0-b.json.gz", &halves[1].1));
    let out = w.run_once(&["--table-format", "delta"]);
    assert!(out.contains("gharchive: batch 2 committed"), "{out}");
    let r = delta_rs(&gh, None);
    assert_eq!(r.version, 1);
    assert_eq!(
        found(&r.keys),
        expected_of(&landed),
        "appended once, nothing doubled"
    );
    assert_eq!(
        delta_rs_count(&w.bronze().join("sales"), "transaction_id"),
        glob_sales,
        "no sales file re-read"
    );
    lander(&w, &["checkpoint", "verify"], &[]);
}

#[test]
fn rebuild_after_deleting_the_checkpoint_reingests_nothing() {
    if !require_samples(&STANDARD_SAMPLES) || !require_samples(&["sales/Sample - Superstore.csv"]) {
        return;
    }
    let w = Workdir::new();
    for f in ["2011-02-15-0.json.gz", "2013-02-15-0.json.gz"] {
        w.land(&gharchive(f), "gharchive", f);
        w.run_once(&[]);
    }
    for f in ["transacciones_ventas.csv", "Sample - Superstore.csv"] {
        w.land(&sample(&format!("sales/{f}")), "sales", f);
    }
    w.run_once(&[]);
    // A later CSV file with 4 rows bronze already holds, 2 whose quantity is not a number and 1 new one.
    let bad_and_new: String = [sales_csv(900_000, 0, 2), sales_csv(900_010, 1, 0)]
        .iter()
        .flat_map(|c| c.lines().skip(1).map(|l| format!("{l}\n")))
        .collect();
    let mut again = sales_lines(0, 4);
    again.extend_from_slice(bad_and_new.as_bytes());
    w.land_bytes("sales", "again.csv", &again);
    w.run_once(&[]);
    // Every field of every file record but the commit time (the table keeps it to the millisecond) and a failed
    // file's reason (its wording is not in the table).
    let list = |w: &Workdir| -> Vec<serde_json::Value> {
        let v: serde_json::Value =
            serde_json::from_str(&lander(w, &["checkpoint", "list", "--json"], &[])).expect("json");
        let mut records = v.as_array().expect("records").clone();
        for r in &mut records {
            let o = r.as_object_mut().expect("a record");
            o.remove("processed_at");
            o.remove("reason");
        }
        records.sort_by_key(|r| r["path"].as_str().map(String::from));
        records
    };
    // Each dataset's totals (`checkpoint stats`), and the stored CSV column types (`checkpoint export`).
    let stats = |w: &Workdir| -> Vec<serde_json::Value> {
        let v: serde_json::Value =
            serde_json::from_str(&lander(w, &["checkpoint", "stats", "--json"], &[]))
                .expect("json");
        v["datasets"]
            .as_array()
            .expect("datasets")
            .iter()
            .map(|d| {
                let keys = [
                    "dataset",
                    "files",
                    "files_ok",
                    "files_failed",
                    "bytes",
                    "rows",
                    "quarantined",
                    "duplicates",
                    "batches",
                    "last_batch",
                    "csv_columns",
                ];
                serde_json::Value::Object(
                    keys.iter()
                        .map(|k| (k.to_string(), d[*k].clone()))
                        .collect(),
                )
            })
            .collect()
    };
    let stored_types = |w: &Workdir| -> serde_json::Value {
        lander(w, &["checkpoint", "export"], &[])
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("an export line"))
            .find(|l| l["key"] == "schema/sales")
            .map(|l| l["value"].clone())
            .expect("the sales dataset's stored schema")
    };
    let before = list(&w);
    let counts = |p: &str| {
        let r = before.iter().find(|r| r["path"] == p).expect(p);
        [
            &r["records_ok"],
            &r["records_quarantined"],
            &r["records_duplicate"],
        ]
        .map(|v| v.as_u64())
    };
    assert_eq!(counts("sales/again.csv"), [Some(1), Some(2), Some(4)]);
    let (stats_before, types_before) = (stats(&w), stored_types(&w));
    assert!(
        types_before["columns"][0]["source"] == "transaction_id",
        "{types_before}"
    );
    let gh = w.bronze().join("gharchive");
    let rows_before = delta_rs(&gh, None);
    let sales_before = delta_rs_count(&w.bronze().join("sales"), "transaction_id");

    std::fs::remove_dir_all(w.checkpoint()).expect("delete the checkpoint");
    let out = lander(&w, &["checkpoint", "rebuild", "--from-table"], &[]);
    assert!(
        out.contains("gharchive: rebuilt 2 batch(es) and 2 file record(s)"),
        "{out}"
    );
    assert!(
        out.contains("1 rejected whole"),
        "the superstore file was rejected whole: {out}"
    );
    assert!(!out.contains("older lander"), "{out}");
    assert_eq!(
        list(&w),
        before,
        "the same file records as the lost checkpoint"
    );
    assert_eq!(stats(&w), stats_before, "the same totals");
    assert_eq!(stored_types(&w), types_before, "the same stored CSV types");
    // Rebuilding over records is refused.
    let mut again: Vec<String> = ["checkpoint", "rebuild", "--from-table"]
        .map(String::from)
        .to_vec();
    again.extend(w.location_args());
    assert_eq!(
        w.cmd().args(&again).output().expect("spawn").status.code(),
        Some(2)
    );

    let summary = w.path().join("summary.json");
    let out = w.run_once(&["--summary-json", &summary.display().to_string()]);
    assert!(out.contains("nothing new"), "{out}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    for ds in ["gharchive", "sales"] {
        assert_eq!(s["datasets"][ds]["files"], 0, "{ds}: {s}");
        assert_eq!(s["datasets"][ds]["rows"], 0, "{ds}: {s}");
    }
    let after = delta_rs(&gh, None);
    assert_eq!(
        (after.version, &after.keys),
        (rows_before.version, &rows_before.keys)
    );
    assert_eq!(
        delta_rs_count(&w.bronze().join("sales"), "transaction_id"),
        sales_before
    );
    lander(&w, &["checkpoint", "verify"], &[]);
    // A new file continues the batch ids of the table's txn: batch 3, one new version.
    w.land(
        &gharchive("2015-01-01-0.json.gz"),
        "gharchive",
        "2015-01-01-0.json.gz",
    );
    let out = w.run_once(&[]);
    assert!(out.contains("gharchive: batch 3 committed"), "{out}");
    let r = delta_rs(&gh, None);
    assert_eq!(r.version, rows_before.version + 1);
    assert_eq!(
        found(&r.keys),
        expected_of(&[
            gharchive("2011-02-15-0.json.gz"),
            gharchive("2013-02-15-0.json.gz"),
            gharchive("2015-01-01-0.json.gz")
        ])
    );
}
