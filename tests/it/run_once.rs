//! `lander run --mode once` over the real samples: counts, partitions, payloads, reruns, quarantine, crashes.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use chrono::{DateTime, Datelike};

use crate::common::data::{distinct_events, gz_lines, lander_toml};
use crate::common::data::{hour_bytes, hour_events, hour_events_of, land_hour};
use crate::common::data::{quarantine, run_once_ok};
use crate::common::*;

fn gzip(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for l in lines {
        e.write_all(l).expect("gz");
        e.write_all(b"\n").expect("gz");
    }
    e.finish().expect("gz")
}

#[test]
fn all_samples_land_once_with_the_expected_counts_partitions_and_payloads() {
    let Some(_) = require_shared_data() else {
        return;
    };
    let w = Workdir::new();
    for f in GHARCHIVE_FILES {
        w.land(&gharchive(f), "gharchive", f);
    }
    w.land(
        &shared_data().join("sales/transacciones_ventas.csv"),
        "sales",
        "transacciones_ventas.csv",
    );
    w.land(
        &shared_data().join("sales/Sample - Superstore.csv"),
        "superstore",
        "Sample - Superstore.csv",
    );
    let config = lander_toml(&w);
    let out = w.run_once(&["--config", &config]);
    assert!(out.contains("gharchive: batch 1 committed"), "{out}");

    // GH Archive: rows = distinct keys of the input, computed here from the raw files.
    let files: Vec<_> = GHARCHIVE_FILES.iter().map(|f| gharchive(f)).collect();
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let expected = distinct_events(&refs);
    assert_eq!(expected, 27_693);
    let gh = w.bronze().join("gharchive");
    assert_eq!(count_rows(&gh), expected);
    let keys = string_column(&gh, "event_key");
    assert_eq!(
        keys.iter().collect::<HashSet<_>>().len(),
        expected,
        "event keys are unique"
    );

    // Every row sits in the partition of its own UTC date.
    let mut days = BTreeMap::new();
    for p in parquet_files(&gh) {
        let rel = p.strip_prefix(&gh).expect("below").display().to_string();
        for b in read_parquet(&p) {
            let t = b
                .column_by_name("created_at")
                .expect("created_at")
                .as_primitive::<TimestampMicrosecondType>();
            for i in 0..t.len() {
                let d = DateTime::from_timestamp_micros(t.value(i))
                    .expect("ts")
                    .date_naive();
                let want = format!(
                    "year={:04}/month={:02}/day={:02}/",
                    d.year(),
                    d.month(),
                    d.day()
                );
                assert!(rel.starts_with(&want), "{rel} holds a row of {d}");
                *days.entry(want).or_insert(0usize) += 1;
            }
        }
    }
    // The 2013 file is hour 0 of 2013-02-15 in US Pacific time: 08:00-09:00 UTC, same day.
    assert_eq!(
        days.keys().cloned().collect::<Vec<_>>(),
        vec![
            "year=2011/month=02/day=15/",
            "year=2012/month=02/day=15/",
            "year=2013/month=02/day=15/",
            "year=2015/month=01/day=01/"
        ]
    );

    // payload is the exact source text: check a sample of 2015 events against their raw lines.
    let lines: BTreeMap<String, Vec<u8>> = gz_lines(&gharchive("2015-01-01-0.json.gz"))
        .into_iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(&l).expect("json");
            (v["id"].as_str().expect("id").to_string(), l)
        })
        .collect();
    let mut checked = 0;
    for p in parquet_files(&gh.join("year=2015")) {
        for b in read_parquet(&p) {
            let ids = b.column_by_name("id").expect("id").as_string::<i32>();
            let payloads = b
                .column_by_name("payload")
                .expect("payload")
                .as_string::<i32>();
            let src = b
                .column_by_name("_source_file")
                .expect("src")
                .as_string::<i32>();
            for i in (0..b.num_rows()).step_by(97) {
                if src.value(i) != "gharchive/2015-01-01-0.json.gz" {
                    continue;
                }
                let line = &lines[ids.value(i)];
                let payload = payloads.value(i).as_bytes();
                assert!(
                    line.windows(payload.len()).any(|w| w == payload),
                    "payload of {} is not a byte-exact slice of its source line",
                    ids.value(i)
                );
                let original: serde_json::Value = serde_json::from_slice(line).expect("json");
                let back: serde_json::Value = serde_json::from_slice(payload).expect("json");
                assert_eq!(original["payload"], back);
                checked += 1;
            }
        }
    }
    assert!(checked > 30, "checked {checked} payloads");

    // Timeline-API events: no id, actor login from the string, repo as owner/name, a content key.
    let mut timeline = 0;
    for p in parquet_files(&gh.join("year=2013")) {
        for b in read_parquet(&p) {
            let id = b.column_by_name("id").expect("id");
            let key = b
                .column_by_name("event_key")
                .expect("key")
                .as_string::<i32>();
            let repo = b
                .column_by_name("repo_name")
                .expect("repo")
                .as_string::<i32>();
            for i in 0..b.num_rows() {
                assert!(id.is_null(i));
                assert!(key.value(i).starts_with("h:"));
                if repo.is_valid(i) {
                    assert!(repo.value(i).contains('/'), "{}", repo.value(i));
                }
                timeline += 1;
            }
        }
    }
    assert_eq!(timeline, 6851);

    // Sales: 100,000 distinct transactions, typed columns.
    let sales = w.bronze().join("sales");
    let mut rdr =
        csv::Reader::from_path(shared_data().join("sales/transacciones_ventas.csv")).expect("csv");
    let ids: HashSet<String> = rdr
        .records()
        .map(|r| r.expect("row")[0].to_string())
        .collect();
    assert_eq!(count_rows(&sales), ids.len());
    let first = read_parquet(&parquet_files(&sales)[0]).remove(0);
    let schema = first.schema();
    assert_eq!(
        schema
            .field_with_name("transaction_id")
            .expect("col")
            .data_type(),
        &arrow::datatypes::DataType::Int64
    );
    assert!(matches!(
        schema
            .field_with_name("unit_price")
            .expect("col")
            .data_type(),
        arrow::datatypes::DataType::Decimal128(12, 2)
    ));
    let mut seen = HashSet::new();
    for p in parquet_files(&sales) {
        for b in read_parquet(&p) {
            let c = b
                .column_by_name("transaction_id")
                .expect("id")
                .as_primitive::<Int64Type>();
            seen.extend(c.values().iter().copied());
        }
    }
    assert_eq!(seen.len(), 100_000);

    // Superstore through config alone: BOM, CRLF, quoted commas, m/d/yyyy.
    let sup = w.bronze().join("superstore");
    let mut rdr =
        csv::Reader::from_path(shared_data().join("sales/Sample - Superstore.csv")).expect("csv");
    let n = rdr.records().filter(|r| r.is_ok()).count();
    assert_eq!(count_rows(&sup), n);
    assert_eq!(n, 9994);
    let names = string_column(&sup, "product_name");
    assert!(
        names.iter().flatten().any(|s| s.contains(',')),
        "quoted commas survive"
    );
    assert!(parquet_files(&sup).iter().any(|p| p
        .display()
        .to_string()
        .contains("year=2018/month=11/day=08")));
    assert!(
        !w.bronze().join("_quarantine").exists(),
        "no quarantine for clean samples"
    );
    assert!(
        !w.bronze().join("_staging").join("gharchive").exists()
            || parquet_files(&w.bronze().join("_staging")).is_empty()
    );
}

#[test]
fn rerun_new_file_and_renamed_copy() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    // On a plain clone the bundled 2015-01-01-0 prefix and stand-ins for the other two hours (`hour_bytes`).
    let (h15a, h12, h15b) = (
        hour_events(&["2015-01-01-0.json.gz"]),
        hour_events_of(&["2012-02-15-0.json.gz"]),
        hour_events_of(&["2015-01-01-1.json.gz"]),
    );
    let w = Workdir::new();
    w.land(
        &gharchive("2015-01-01-0.json.gz"),
        "gharchive",
        "2015-01-01-0.json.gz",
    );
    land_hour(&w, "2012-02-15-0.json.gz", "2012-02-15-0.json.gz");
    w.run_once(&[]);
    let first = rows_by_file(&w.bronze());
    assert_eq!(first.values().sum::<usize>(), h15a + h12);

    // A rerun with nothing new writes nothing and says so.
    let out = w.run_once(&[]);
    assert!(out.contains("nothing new"), "{out}");
    assert_eq!(rows_by_file(&w.bronze()), first);

    // A new file adds exactly its rows.
    land_hour(&w, "2015-01-01-1.json.gz", "2015-01-01-1.json.gz");
    w.run_once(&[]);
    assert_eq!(count_rows(&w.bronze()), h15a + h12 + h15b);

    // The same hour under another name adds zero rows (and leaves no empty part behind).
    let before = rows_by_file(&w.bronze());
    land_hour(&w, "2015-01-01-1.json.gz", "mirror/2015-01-01-1.json.gz");
    let out = w.run_once(&[]);
    assert!(
        out.contains(&format!("0 rows written, {h15b} duplicates dropped")),
        "{out}"
    );
    assert_eq!(rows_by_file(&w.bronze()), before);
}

#[test]
fn corrupt_lines_are_quarantined_and_the_rest_lands() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    let mut lines = gz_lines(&gharchive("2015-01-01-0.json.gz"));
    let total = lines.len();
    lines[10].truncate(40); // cut JSON
    lines[20] = b"\xff\xfe not utf-8 {".to_vec();
    lines[30] = br#"{"id":"x1","type":"PushEvent"}"#.to_vec(); // no created_at
    w.land_bytes("gharchive", "2015-01-01-0.json.gz", &gzip(&lines));
    w.run_once(&[]);
    assert_eq!(count_rows(&w.bronze().join("gharchive")), total - 3);
    let q = parquet_files(&w.bronze().join("_quarantine/gharchive"));
    assert_eq!(q.len(), 1);
    let b = read_parquet(&q[0]).remove(0);
    assert_eq!(b.num_rows(), 3);
    let line = b
        .column_by_name("line")
        .expect("line")
        .as_primitive::<Int64Type>();
    assert_eq!(line.values(), &[11, 21, 31]);
    let raw = b.column_by_name("raw").expect("raw").as_binary::<i32>();
    assert_eq!(raw.value(1), b"\xff\xfe not utf-8 {");
    let reason = b
        .column_by_name("reason")
        .expect("reason")
        .as_string::<i32>();
    assert!(
        reason.value(2).contains("created_at"),
        "{}",
        reason.value(2)
    );
    let src = b
        .column_by_name("source_file")
        .expect("src")
        .as_string::<i32>();
    assert_eq!(src.value(0), "gharchive/2015-01-01-0.json.gz");
}

#[test]
fn truncated_gzip_is_rejected_whole_and_others_land() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    let mut bytes = Vec::new();
    std::fs::File::open(gharchive("2015-01-01-0.json.gz"))
        .expect("open")
        .read_to_end(&mut bytes)
        .expect("read");
    bytes.truncate(bytes.len() / 2);
    w.land_bytes("gharchive", "2015-01-01-0.json.gz", &bytes);
    land_hour(&w, "2012-02-15-0.json.gz", "2012-02-15-0.json.gz");
    let out = w.run_once(&[]);
    assert!(out.contains("1 failed file(s)"), "{out}");
    // Nothing of the truncated file is in bronze; the other file is complete.
    assert_eq!(
        count_rows(&w.bronze().join("gharchive")),
        hour_events_of(&["2012-02-15-0.json.gz"])
    );
    let copied = quarantined_copy(
        &w.bronze(),
        "gharchive",
        1,
        "gharchive/2015-01-01-0.json.gz",
    );
    assert_eq!(std::fs::read(&copied).expect("quarantined copy"), bytes);
    // A rerun does not retry the same broken content.
    assert!(w.run_once(&[]).contains("nothing new"));
}

#[test]
fn csv_rows_with_bad_values_are_quarantined() {
    let w = Workdir::new();
    let csv = "transaction_id,timestamp,customer_id,product_id,category,quantity,unit_price,total,payment_method,status\n\
        1,2025-10-25 19:07:27,8961,79973,Deportes,7,160.74,1125.18,Transferencia,Cancelada\n\
        2,2025-10-26 11:44:27,6526,14681,Ropa,uno,289.56,289.56,Transferencia,Completada\n\
        3,not a time,2950,86429,Deportes,5,90.78,453.9,Tarjeta,Cancelada\n\
        4,2025-10-05 00:12:27,3783,45958,Libros,3,41.49,124.47,Tarjeta\n\
        1,2025-10-25 19:07:27,8961,79973,Deportes,7,160.74,1125.18,Transferencia,Cancelada\n\
        5,2025-10-05 00:12:27,3783,45958,Libros,3,41.49,124.47,Tarjeta,Pendiente\n";
    w.land_bytes("sales", "day1.csv", csv.as_bytes());
    let out = w.run_once(&[]);
    assert!(
        out.contains("2 rows written, 1 duplicates dropped, 3 quarantined"),
        "{out}"
    );
    let q = read_parquet(&parquet_files(&w.bronze().join("_quarantine/sales"))[0]).remove(0);
    let reasons = q
        .column_by_name("reason")
        .expect("reason")
        .as_string::<i32>();
    assert!(
        reasons.value(0).contains("quantity"),
        "{}",
        reasons.value(0)
    );
    assert!(reasons.value(1).contains("timestamp"));
    assert!(reasons.value(2).contains("expected 10 fields"));
}

/// Lands the 2015 and 2013 GH Archive hours in `w`.
fn land_2015_and_2013(w: &Workdir) {
    w.land(
        &gharchive("2015-01-01-0.json.gz"),
        "gharchive",
        "2015-01-01-0.json.gz",
    );
    w.land(
        &gharchive("2013-02-15-0.json.gz"),
        "gharchive",
        "2013-02-15-0.json.gz",
    );
}

/// `lander run --mode once` in `w` with `extra` flags, aborted after the commit step `step`.
#[cfg(feature = "failpoints")]
fn abort_after(w: &Workdir, step: &str, extra: &[&str]) {
    let mut args = w.once_args();
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = w
        .cmd()
        .args(&args)
        .env("LANDER_FAIL_AFTER", step)
        .output()
        .expect("spawn");
    assert!(!out.status.success(), "failpoint {step} should abort");
}

/// Parquet: crash between publishing parts and committing the checkpoint: parts are visible, the checkpoint does
/// not know them; the next start rolls them back and the batch is redone, leaving bronze equal to a clean run.
#[cfg(feature = "failpoints")]
#[test]
fn crash_after_publish_before_commit_recovers_exactly() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let clean = Workdir::new();
    let crashed = Workdir::new();
    for w in [&clean, &crashed] {
        land_2015_and_2013(w);
    }
    let parquet = ["--table-format", "parquet"];
    clean.run_once(&parquet);
    for step in ["intent", "staged", "publishing", "published", "runs"] {
        abort_after(&crashed, step, &parquet);
    }
    assert!(
        count_rows(&crashed.bronze().join("gharchive")) > 0,
        "the last crash left published parts behind"
    );
    crashed.run_once(&parquet);
    assert_eq!(
        rows_by_file(&crashed.bronze().join("gharchive")),
        rows_by_file(&clean.bronze().join("gharchive"))
    );
    assert!(parquet_files(&crashed.bronze().join("_staging")).is_empty());
    assert!(crashed.run_once(&parquet).contains("nothing new"));
}

/// Delta: the same batch crashes after each step before the table commit (rolled back each time), then after
/// the table commit and before the sled commit. The table has the batch; the next start finishes the sled
/// records from the intent, so the batch counts once: nothing is read again, bronze equals a clean run (no
/// part of the rolled-back attempts left), every event once, one commit of the batch in the log.
#[cfg(feature = "failpoints")]
#[test]
fn crash_after_the_delta_commit_before_the_sled_commit_counts_the_batch_once() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let clean = Workdir::new();
    let crashed = Workdir::new();
    for w in [&clean, &crashed] {
        land_2015_and_2013(w);
    }
    let delta = ["--table-format", "delta"];
    clean.run_once(&delta);
    for step in ["intent", "staged", "runs", "publishing", "published"] {
        abort_after(&crashed, step, &delta);
    }
    let log = |w: &Workdir| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(w.bronze().join("gharchive/_delta_log"))
            .expect("log")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        log(&crashed),
        log(&clean),
        "the last crash came after the table commit"
    );
    let out = crashed.run_once(&delta);
    assert!(
        out.contains("nothing new"),
        "the committed batch was read again: {out}"
    );
    assert_eq!(log(&crashed), log(&clean), "no second commit");
    let table = crashed.bronze().join("gharchive");
    assert_eq!(
        rows_by_file(&table),
        rows_by_file(&clean.bronze().join("gharchive"))
    );
    let keys = string_column(&table, "event_key");
    let distinct: std::collections::HashSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "every event once");
    let mut args = vec!["checkpoint".to_string(), "list".into(), "--json".into()];
    args.extend(crashed.location_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let listed: serde_json::Value = serde_json::from_str(&crashed.run_ok(&refs)).expect("json");
    assert_eq!(listed.as_array().expect("array").len(), 2, "{listed}");
}

/// DuckDB reads bronze as-is with hive partitioning (fails when the duckdb module is absent; `.ci/run` installs
/// it).
#[test]
fn duckdb_reads_bronze_with_hive_partitioning() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    for f in ["2011-02-15-0.json.gz", "2015-01-01-0.json.gz"] {
        w.land(&gharchive(f), "gharchive", f);
    }
    w.run_once(&[]);
    let script = format!(
        "import duckdb\n\
         r = duckdb.sql(\"select count(*), count(distinct event_key), min(year), max(year), count(distinct day) from read_parquet('{}/gharchive/**/*.parquet', hive_partitioning=true)\").fetchall()[0]\n\
         print(','.join(str(x) for x in r))",
        w.bronze().display()
    );
    let out = run_duckdb(&script, &[]);
    let n = hour_events(&["2011-02-15-0.json.gz", "2015-01-01-0.json.gz"]);
    assert_eq!(out.trim(), format!("{n},{n},2011,2015,2"));
}

/// A mistyped landing path is a usage error naming it (exit 2), and nothing is created there.
#[test]
fn a_missing_landing_is_a_usage_error() {
    let w = Workdir::new();
    let missing = w.path().join("no-such-landing");
    let run = || {
        let args = [
            "run".to_string(),
            "--mode".into(),
            "once".into(),
            "--landing".into(),
            missing.display().to_string(),
            "--bronze".into(),
            w.bronze().display().to_string(),
            "--checkpoint".into(),
            w.checkpoint().display().to_string(),
        ];
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        w.run(&refs)
    };
    let out = run();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no-such-landing") && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(!missing.exists(), "a mistyped landing must not be created");
    // An empty landing is fine.
    std::fs::create_dir_all(&missing).expect("mkdir");
    assert_eq!(run().status.code(), Some(0));
}

/// `cp` into landing and run at once: the copy is still settling, and `once` waits for it instead of reporting
/// "nothing new" and leaving it for a later run.
#[test]
fn once_waits_for_a_file_copied_just_before() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    let dir = w.landing().join("gharchive");
    std::fs::create_dir_all(&dir).expect("mkdir");
    // A plain copy, not a rename into place: only the settle time says when it is complete.
    std::fs::copy(
        gharchive("2015-01-01-0.json.gz"),
        dir.join("2015-01-01-0.json.gz"),
    )
    .expect("copy");
    let mut args = vec!["run", "--mode", "once", "--settle-time", "1s"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    args.extend(w.location_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = w.run(&refs);
    assert_success(&out, &refs, w.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("waiting for files that are still being written"),
        "{stderr}"
    );
    assert_eq!(
        count_rows(&w.bronze().join("gharchive")),
        hour_events(&["2015-01-01-0.json.gz"])
    );
}

/// A UTF-8 byte order mark before the first line of an NDJSON file (gzip or plain, every GH Archive shape) is
/// skipped, as the CSV decoder skips it: bronze then holds exactly what the same files without the mark give,
/// and nothing is quarantined. A mark inside the file is data (quarantined as not JSON).
#[test]
fn a_bom_before_the_first_ndjson_line_is_skipped() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let land = |w: &Workdir, bom: &[u8]| {
        for (i, name) in GHARCHIVE_FILES.iter().enumerate().take(4) {
            // The 2012 hour is a stand-in made from the 2011 one on a plain clone (`hour_bytes`).
            let lines: Vec<Vec<u8>> = std::io::BufRead::split(
                std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
                    hour_bytes(name).as_slice(),
                )),
                b'\n',
            )
            .take(4)
            .map(|l| l.expect("line"))
            .collect();
            let first = [bom, &lines[0]].concat();
            w.land_bytes(
                "gharchive",
                &format!("s{i}.json.gz"),
                &gzip(&[first, lines[1].clone()]),
            );
            let plain: Vec<u8> = [bom]
                .into_iter()
                .chain(lines[2..].iter().flat_map(|l| [l.as_slice(), b"\n"]))
                .flatten()
                .copied()
                .collect();
            w.land_bytes("gharchive", &format!("s{i}.json"), &plain);
        }
    };
    let (marked, plain) = (Workdir::new(), Workdir::new());
    land(&marked, BOM);
    land(&plain, b"");
    for w in [&marked, &plain] {
        run_once_ok(w, &[]);
        assert!(
            quarantine(w, "gharchive").is_empty(),
            "{:?}",
            quarantine(w, "gharchive")
        );
        assert_eq!(count_rows(&w.bronze().join("gharchive")), 16);
    }
    for column in ["event_key", "type", "payload"] {
        let sorted = |w: &Workdir| {
            let mut v = string_column(&w.bronze().join("gharchive"), column);
            v.sort();
            v
        };
        assert_eq!(sorted(&marked), sorted(&plain), "column {column}");
    }
    // Not at the start of the file: the mark is part of the line, which is then not JSON.
    let w = Workdir::new();
    let lines = gz_lines(&gharchive("2015-01-01-0.json.gz"));
    let inside = gzip(&[lines[0].clone(), [BOM, &lines[1]].concat()]);
    w.land_bytes("gharchive", "inside.json.gz", &inside);
    run_once_ok(&w, &[]);
    assert_eq!(count_rows(&w.bronze().join("gharchive")), 1);
    let q = quarantine(&w, "gharchive");
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!((q[0].line, q[0].raw.starts_with(BOM)), (2, true), "{q:?}");
}

/// Files copied into landing and ingested at once, whose last line has no newline (common in exports): a bounded
/// run waits for them to settle and lands every row, the last one included, in one run; each file is `ok`, not
/// `partial`, and a second run finds nothing new. Several shapes: CSV with LF and with CRLF line ends, plain NDJSON.
#[test]
fn a_just_copied_file_without_a_final_newline_lands_whole_in_one_once_run() {
    let w = Workdir::new();
    let config = w.path().join("lander.toml");
    std::fs::write(
        &config,
        "[datasets.d]\nformat = \"csv\"\nkey = [\"id\"]\nevent_time = \"t\"\ntimestamp_formats = [\"%Y-%m-%d\"]\ntimezone = \"UTC\"\n",
    )
    .expect("lander.toml");
    let events: Vec<Vec<u8>> = gz_lines(&fixtures_landing().join("gharchive/2015-01-01-0.json.gz"))
        .into_iter()
        .take(40)
        .collect();
    let ndjson = events.join(&b'\n');
    let ids: std::collections::HashSet<String> = events
        .iter()
        .map(|l| serde_json::from_slice::<serde_json::Value>(l).expect("json")["id"].to_string())
        .collect();
    // Written in place (no rename): modified just now, as `cp` leaves a file.
    for (dir, name, bytes) in [
        ("d", "lf.csv", b"id,t\n1,2020-01-01\n2,2020-01-02".to_vec()),
        (
            "d",
            "crlf.csv",
            b"id,t\r\n3,2020-01-03\r\n4,2020-01-04".to_vec(),
        ),
        ("gharchive", "hour.json", ndjson),
    ] {
        std::fs::create_dir_all(w.landing().join(dir)).expect("mkdir");
        std::fs::write(w.landing().join(dir).join(name), bytes).expect("write");
    }
    let mut args: Vec<String> = ["run", "--mode", "once", "-c"].map(String::from).to_vec();
    args.push(config.display().to_string());
    args.extend(w.location_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    w.run_ok(&refs);
    assert_eq!(
        count_rows(&w.bronze().join("d")),
        4,
        "every CSV row, the last ones included"
    );
    assert_eq!(
        count_rows(&w.bronze().join("gharchive")),
        ids.len(),
        "every event, the last one included"
    );

    let mut list: Vec<String> = ["checkpoint", "list", "--json", "--checkpoint"]
        .map(String::from)
        .to_vec();
    list.push(w.checkpoint().display().to_string());
    let list_refs: Vec<&str> = list.iter().map(String::as_str).collect();
    let files: serde_json::Value =
        serde_json::from_str(&w.run_ok(&list_refs)).expect("list --json");
    let statuses: Vec<(String, String)> = files
        .as_array()
        .expect("an array of files")
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap_or("").to_string(),
                f["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    assert!(statuses.iter().all(|(_, s)| s == "ok"), "{statuses:?}");
    let again = w.run(&refs);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing new to ingest"));
}
