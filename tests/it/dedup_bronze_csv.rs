//! CSV datasets deduplicate from bronze too: their rows carry `_record_key`, so a day that left the
//! local dedup index (evicted by `dedup_cache_bytes`, or its run files lost) is read back from bronze, and
//! `checkpoint verify --keys` scans CSV tables. A table written before the column keeps its schema, and what can
//! then not be checked is counted, never claimed.

use std::collections::HashSet;
use std::path::Path;

use crate::common::*;

/// A config adding `notes`, a CSV dataset without a key (the key is the whole record), to the built-in `sales`.
fn write_config(w: &Workdir) -> String {
    let p = w.path().join("lander.toml");
    std::fs::write(
        &p,
        "[datasets.notes]\nformat = \"csv\"\nevent_time = \"t\"\ntimestamp_formats = [\"%Y-%m-%d\"]\ntimezone = \"UTC\"\n",
    )
    .expect("lander.toml");
    p.display().to_string()
}

/// The header and the data lines of the sales sample (its bundled 3,000-row prefix on a plain clone).
fn sales() -> (String, Vec<String>) {
    let text =
        std::fs::read_to_string(sample("sales/transacciones_ventas.csv")).expect("sales sample");
    let mut lines = text.lines().map(String::from);
    let header = lines.next().expect("header");
    (header, lines.collect())
}

fn csv(header: &str, rows: &[String]) -> Vec<u8> {
    let mut out = format!("{header}\n");
    for r in rows {
        out.push_str(r);
        out.push('\n');
    }
    out.into_bytes()
}

/// Distinct transaction ids of sales lines, computed from the text (first field).
fn distinct_ids<'a>(rows: impl IntoIterator<Item = &'a String>) -> usize {
    rows.into_iter()
        .map(|r| r.split(',').next().expect("id"))
        .collect::<HashSet<_>>()
        .len()
}

/// DuckDB over every part below `dir`: `count(*)`, `count(distinct <id>)`, `count(distinct _record_key)`.
fn counts(dir: &Path, id: &str) -> (u64, u64, u64) {
    let out = run_duckdb(
        "import duckdb, sys\n\
         q = \"select count(*), count(distinct \" + sys.argv[2] + \"), count(distinct _record_key) from read_parquet('\" + sys.argv[1] + \"/**/*.parquet')\"\n\
         r = duckdb.sql(q).fetchall()[0]\n\
         print(r[0], r[1], r[2])",
        &[&dir.display().to_string(), id],
    );
    let v: Vec<u64> = out
        .split_whitespace()
        .map(|x| x.parse().expect("number"))
        .collect();
    (v[0], v[1], v[2])
}

/// `run --mode once` with `extra` (and `envs`): (stdout + stderr, the summary-json entry of every dataset).
fn run_summary(w: &Workdir, extra: &[&str], envs: &[(&str, &str)]) -> (String, serde_json::Value) {
    let json = w.path().join("summary.json");
    let mut args = w.once_args();
    args.extend(["--summary-json".into(), json.display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = w
        .cmd()
        .args(&args)
        .envs(envs.iter().copied())
        .output()
        .expect("spawn lander");
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_success(&out, &refs, w.path());
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("summary")).expect("json");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (text, v["datasets"].clone())
}

/// `checkpoint verify --keys -c config`: (exit code, stdout).
fn verify_keys(w: &Workdir, config: &str, format: &str) -> (i32, String) {
    let mut args: Vec<String> = ["checkpoint", "verify", "--keys", "-c", config]
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

/// The UTC days the local dedup index of `dataset` holds run files for.
fn held_days(w: &Workdir, dataset: &str) -> Vec<String> {
    let mut days: Vec<String> = std::fs::read_dir(w.checkpoint().join("dedup").join(dataset))
        .map(|rd| {
            rd.map(|e| e.expect("entry").file_name().to_string_lossy()[..10].to_string())
                .collect()
        })
        .unwrap_or_default();
    days.sort();
    days.dedup();
    days
}

/// Key-less `notes` lines: day `day` of January 2020, texts `a0..`.
fn notes(day: u32, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("2020-01-{day:02},a{i}")).collect()
}

/// A sales export re-sent under a new name (as a superset) after its days left the dedup index (a 1-byte
/// `dedup_cache_bytes` with a batch of other days in between, or the index's run files deleted) lands no row
/// twice, on Parquet and on Delta bronze; so does a key-less CSV dataset (the whole record is the key). Counted
/// against the distinct ids of the CSV text, by DuckDB over bronze.
#[test]
fn a_csv_export_resent_after_its_days_left_the_index_lands_no_row_twice() {
    if !require_samples(&["sales/transacciones_ventas.csv"]) {
        return;
    }
    let (header, rows) = sales();
    // The export's first version and its grown re-send: 20,000 and 30,000 rows of the full sample, two thirds
    // and all of the bundled prefix.
    let (sent, grown) = if rows.len() >= 30_000 {
        (20_000, 30_000)
    } else {
        (rows.len() * 2 / 3, rows.len())
    };
    let december = vec![
        "900001,2025-12-01 10:00:00,1,1,Libros,1,1.00,1.00,Tarjeta,Completada".to_string(),
        "900002,2025-12-02 10:00:00,1,1,Libros,1,1.00,1.00,Tarjeta,Completada".to_string(),
    ];
    for format in ["parquet", "delta"] {
        for lost in ["budget", "deleted"] {
            let w = Workdir::new();
            let config = write_config(&w);
            let budget = if lost == "budget" { "1" } else { "4GiB" };
            let extra = [
                "-c",
                &config,
                "--table-format",
                format,
                "--dedup-cache-bytes",
                budget,
            ];
            w.land_bytes("sales", "ventas-a.csv", &csv(&header, &rows[..sent]));
            w.land_bytes("notes", "n1.csv", &csv("t,msg", &notes(1, 50)));
            run_summary(&w, &extra, &[]);
            // Other days: with the 1-byte budget, every day this batch does not touch leaves the index.
            w.land_bytes("sales", "ventas-dic.csv", &csv(&header, &december));
            w.land_bytes("notes", "n2.csv", &csv("t,msg", &notes(9, 3)));
            run_summary(&w, &extra, &[]);
            if lost == "deleted" {
                std::fs::remove_dir_all(w.checkpoint().join("dedup")).expect("rm dedup");
            } else {
                assert_eq!(held_days(&w, "sales"), ["2025-12-01", "2025-12-02"]);
                assert_eq!(held_days(&w, "notes"), ["2020-01-09"]);
            }
            // The export re-sent, grown; the notes re-sent with a repeat inside the file.
            w.land_bytes(
                "sales",
                "ventas-a-resent.csv",
                &csv(&header, &rows[..grown]),
            );
            let mut again = notes(1, 60);
            again.push(again[0].clone());
            w.land_bytes("notes", "n1-resent.csv", &csv("t,msg", &again));
            let (text, s) = run_summary(&w, &extra, &[]);
            let what = format!("{format}/{lost}: {text}");
            let new = distinct_ids(rows[..grown].iter()) - distinct_ids(rows[..sent].iter());
            assert_eq!(s["sales"]["rows"].as_u64(), Some(new as u64), "{what}");
            assert_eq!(
                s["sales"]["duplicates"].as_u64(),
                Some((grown - new) as u64),
                "{what}"
            );
            assert_eq!(s["notes"]["rows"].as_u64(), Some(10), "{what}");
            assert_eq!(s["notes"]["duplicates"].as_u64(), Some(51), "{what}");
            assert!(!text.contains("NOT checked"), "{what}");
            let expected = distinct_ids(rows[..grown].iter().chain(&december)) as u64;
            assert_eq!(
                counts(&w.bronze().join("sales"), "transaction_id"),
                (expected, expected, expected),
                "{format}/{lost}: every transaction once"
            );
            assert_eq!(
                counts(&w.bronze().join("notes"), "msg || t"),
                (63, 63, 63),
                "{format}/{lost}"
            );
            let (code, out) = verify_keys(&w, &config, format);
            assert_eq!(code, 0, "{format}/{lost}: {out}");
            assert!(
                out.contains("ok: no key held more than once on one day\n"),
                "{out}"
            );
        }
    }
}

/// Adds `part` again to the Delta table at `table` under the name `copy` in the same partition (a new commit of
/// one `add`, as a writer that re-appended a file by mistake would): every row of it is then in the table twice.
fn plant_in_delta(table: &Path, part: &Path, copy: &str) {
    let log = table.join("_delta_log");
    let mut versions: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(&log)
        .expect("log")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let v = name.strip_suffix(".json")?.parse().ok()?;
            Some((v, e.path()))
        })
        .collect();
    versions.sort();
    let rel = part
        .strip_prefix(table)
        .expect("part in table")
        .display()
        .to_string();
    let add = versions
        .iter()
        .flat_map(|(_, p)| {
            std::fs::read_to_string(p)
                .expect("commit")
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .find(|a| a["add"]["path"].as_str() == Some(rel.as_str()))
        .expect("the part's add");
    let dir = part.parent().expect("partition");
    std::fs::copy(part, dir.join(copy)).expect("plant");
    let mut add = add;
    let new_rel = format!("{}/{copy}", rel.rsplit_once('/').expect("dir").0);
    add["add"]["path"] = serde_json::Value::String(new_rel);
    let next = versions.last().expect("a version").0 + 1;
    std::fs::write(log.join(format!("{next:020}.json")), format!("{add}\n")).expect("commit");
}

/// `verify --keys` scans CSV tables (keyed and key-less, Parquet and Delta bronze): it passes on clean ones and
/// names both places of every row of a part planted twice in its day partition.
#[test]
fn verify_keys_scans_csv_tables_and_catches_a_planted_duplicate() {
    if !require_samples(&["sales/transacciones_ventas.csv"]) {
        return;
    }
    let (header, rows) = sales();
    for format in ["parquet", "delta"] {
        for (dataset, body) in [
            ("sales", csv(&header, &rows[..300])),
            ("notes", csv("t,msg", &notes(3, 20))),
        ] {
            let w = Workdir::new();
            let config = write_config(&w);
            w.land_bytes(dataset, "a.csv", &body);
            run_summary(&w, &["-c", &config, "--table-format", format], &[]);
            let (code, out) = verify_keys(&w, &config, format);
            assert_eq!(code, 0, "{format}/{dataset}: {out}");
            assert!(
                out.contains("ok: no key held more than once on one day\n"),
                "{out}"
            );
            let parts = parquet_files(&w.bronze().join(dataset));
            let part = parts.last().expect("a part");
            let in_part = read_parquet(part)
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>();
            if format == "delta" {
                plant_in_delta(&w.bronze().join(dataset), part, "part-planted.parquet");
            } else {
                let copy = part.parent().expect("day").join("part-planted.parquet");
                std::fs::copy(part, copy).expect("plant");
            }
            let (code, out) = verify_keys(&w, &config, format);
            assert_eq!(code, 1, "{format}/{dataset}: {out}");
            let name = part
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let problems: Vec<&str> = out
                .lines()
                .filter(|l| l.starts_with("problem: key ") && l.contains(" held 2 times "))
                .collect();
            assert_eq!(problems.len(), in_part, "{format}/{dataset}: {out}");
            assert!(
                problems
                    .iter()
                    .all(|l| l.contains(&name) && l.contains("part-planted.parquet")),
                "{out}"
            );
        }
    }
}

/// A CSV table written before `_record_key` (as an older lander wrote it) keeps its schema on later runs; a day
/// that left the index cannot be read back, so its re-sent records are written and counted as unchecked (summary
/// and log), and `verify --keys` says which parts it could not scan instead of claiming a check.
#[cfg(feature = "failpoints")]
#[test]
fn a_csv_table_without_record_keys_keeps_working_and_counts_what_it_cannot_check() {
    if !require_samples(&["sales/transacciones_ventas.csv"]) {
        return;
    }
    let (header, rows) = sales();
    let later =
        vec!["900001,2025-12-20 10:00:00,1,1,Libros,1,1.00,1.00,Tarjeta,Completada".to_string()];
    for format in ["parquet", "delta"] {
        let w = Workdir::new();
        let config = write_config(&w);
        let extra = [
            "-c",
            &config,
            "--table-format",
            format,
            "--dedup-horizon",
            "1d",
        ];
        w.land_bytes("sales", "a.csv", &csv(&header, &rows[..1000]));
        run_summary(&w, &extra, &[("LANDER_TEST_CSV_WITHOUT_RECORD_KEY", "1")]);
        // A later day moves the watermark: the October days fall behind the one-day horizon.
        w.land_bytes("sales", "b.csv", &csv(&header, &later));
        let (text, s) = run_summary(&w, &extra, &[]);
        assert_eq!(s["sales"]["rows"].as_u64(), Some(1), "{format}: {text}");
        for part in parquet_files(&w.bronze().join("sales")) {
            let batches = read_parquet(&part);
            assert!(
                batches[0].schema().field_with_name("_record_key").is_err(),
                "{format}: {} keeps the table's schema",
                part.display()
            );
        }
        w.land_bytes("sales", "a-resent.csv", &csv(&header, &rows[..1000]));
        let (text, s) = run_summary(&w, &extra, &[]);
        assert_eq!(
            (
                s["sales"]["rows"].as_u64(),
                s["sales"]["duplicates"].as_u64(),
                s["sales"]["unchecked"].as_u64()
            ),
            (Some(1000), Some(0), Some(1000)),
            "{format}: {text}"
        );
        assert!(
            text.contains("1000 record(s) NOT checked for duplicates"),
            "{format}: {text}"
        );
        let (code, out) = verify_keys(&w, &config, format);
        assert_eq!(code, 0, "{format}: {out}");
        assert!(
            out.contains("have no key column") && out.contains("NOT checked"),
            "{format}: {out}"
        );
        assert!(
            !out.contains("ok: no key held more than once on one day\n"),
            "{out}"
        );
    }
}
