//! One stray quote must not swallow a file: wherever an unbalanced quote sits (first row, row 10, the
//! middle, the last row with and without a final newline, two in one file, next to a field that legitimately
//! spans lines), only its line goes to the quarantine, with its exact bytes, and every other row lands; counts
//! are checked against the generated input. `--clean-source delete` removes a file only when all its bytes are
//! in bronze or in the quarantine: a file with a record kept only in part stays, and says so.

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;

use crate::common::data::{checkpoint_files, quarantine, run_once_ok};
use crate::common::*;

const HEADER: &str = "transaction_id,timestamp,customer_id,product_id,category,quantity,unit_price,total,payment_method,status";

/// Sales row with id `id`.
fn row(id: usize) -> String {
    format!(
        "{id},2025-10-{:02} 10:00:00,{},{},Deportes,{},1.50,{}.00,Tarjeta,Completada",
        1 + id % 28,
        100 + id % 1000,
        200 + id % 1000,
        1 + id % 9,
        3 * (1 + id % 9)
    )
}

/// Where the stray quote goes in a row.
#[derive(Clone, Copy)]
enum Stray {
    Category,
    RowStart,
    LastField,
}

fn unbalance(line: &str, s: Stray) -> String {
    match s {
        Stray::Category => {
            let mut fields: Vec<String> = line.split(',').map(str::to_string).collect();
            fields[4].insert(0, '"');
            fields.join(",")
        }
        Stray::RowStart => format!("\"{line}"),
        Stray::LastField => line.replacen(",Completada", ",\"Completada", 1),
    }
}

/// One generated file and what must come of it.
struct Generated {
    name: String,
    data: Vec<u8>,
    /// Ids that must land.
    good: Vec<i64>,
    /// The quarantined lines: exact bytes and 1-based line number.
    bad: Vec<(Vec<u8>, i64)>,
}

/// `n` rows with ids `base + 1..=base + n`; rows in `bad` get a stray quote, row `multi` a category that
/// legitimately spans three lines.
fn generate(
    name: &str,
    base: usize,
    n: usize,
    bad: &[(usize, Stray)],
    multi: Option<usize>,
    eol: &str,
    final_eol: bool,
) -> Generated {
    let mut data = format!("{HEADER}{eol}").into_bytes();
    let (mut good, mut out_bad) = (Vec::new(), Vec::new());
    let mut line = 2;
    for i in 1..=n {
        let mut text = row(base + i);
        match bad.iter().find(|(r, _)| *r == i) {
            Some((_, s)) => {
                text = unbalance(&text, *s);
                out_bad.push((text.as_bytes().to_vec(), line));
            }
            None => good.push((base + i) as i64),
        }
        if multi == Some(i) {
            text = text.replacen(",Deportes,", &format!(",\"Deportes{eol}y{eol}Ocio\","), 1);
            line += 2;
        }
        data.extend(text.as_bytes());
        if i < n || final_eol {
            data.extend(eol.as_bytes());
        }
        line += 1;
    }
    Generated {
        name: name.to_string(),
        data,
        good,
        bad: out_bad,
    }
}

/// Records of `data` counted independently of lander: non-blank lines after the header, minus the two
/// continuation lines of each legitimate three-line field.
fn independent_rows(g: &Generated, multi_fields: usize) -> usize {
    g.data
        .split(|b| *b == b'\n')
        .skip(1)
        .filter(|l| !l.iter().all(|b| *b == b'\r'))
        .count()
        - 2 * multi_fields
        - g.bad.len()
}

/// Landed transaction ids by landing path, read back from bronze with the parquet crate.
fn landed_ids(w: &Workdir) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for p in parquet_files(&w.bronze().join("sales")) {
        for b in read_parquet(&p) {
            let ids = b
                .column_by_name("transaction_id")
                .expect("id")
                .as_primitive::<Int64Type>()
                .clone();
            let files = b
                .column_by_name("_source_file")
                .expect("file")
                .as_string::<i32>()
                .clone();
            for r in 0..b.num_rows() {
                out.entry(files.value(r).to_string())
                    .or_default()
                    .push(ids.value(r));
            }
        }
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    out
}

/// Every placement in its own file, LF and CRLF, one run with `--clean-source delete`: per file the rows that
/// land are the independent count and the quarantine holds exactly the unbalanced lines; every file is then
/// accounted for in full, so every file is deleted.
#[test]
fn a_stray_quote_costs_only_its_own_line_wherever_it_is() {
    let w = Workdir::new();
    let n = 5000; // about 380 KB: more than the CSV parser's 256 KiB read-ahead
                  // (name, unbalanced rows, row with a legitimate three-line field, final newline)
    type Case = (&'static str, Vec<(usize, Stray)>, Option<usize>, bool);
    let cases: Vec<Case> = vec![
        ("first_row", vec![(1, Stray::Category)], None, true),
        ("row_10", vec![(10, Stray::Category)], None, true),
        ("middle", vec![(n / 2, Stray::RowStart)], None, true),
        ("last_row", vec![(n, Stray::Category)], None, true),
        ("last_row_no_eol", vec![(n, Stray::Category)], None, false),
        ("near_the_end", vec![(n - 3, Stray::LastField)], None, true),
        (
            "two_apart",
            vec![(10, Stray::Category), (4000, Stray::Category)],
            None,
            true,
        ),
        (
            "two_close",
            vec![(100, Stray::Category), (120, Stray::Category)],
            None,
            true,
        ),
        (
            "before_a_multi_line_field",
            vec![(10, Stray::Category)],
            Some(30),
            true,
        ),
        ("only_a_multi_line_field", vec![], Some(10), true),
    ];
    let mut files = Vec::new();
    for (k, (name, bad, multi, final_eol)) in cases.iter().enumerate() {
        for (j, eol) in ["\n", "\r\n"].iter().enumerate() {
            let base = (2 * k + j) * 100_000;
            let tag = if j == 0 { "lf" } else { "crlf" };
            let g = generate(
                &format!("{name}_{tag}.csv"),
                base,
                n,
                bad,
                *multi,
                eol,
                *final_eol,
            );
            assert_eq!(
                independent_rows(&g, usize::from(multi.is_some())),
                g.good.len(),
                "{}: the generator agrees with a line count",
                g.name
            );
            w.land_bytes("sales", &g.name, &g.data);
            files.push(g);
        }
    }
    let (stdout, _) = run_once_ok(&w, &["--clean-source", "delete"]);
    let landed = landed_ids(&w);
    let q = quarantine(&w, "sales");
    let records = checkpoint_files(&w);
    for g in &files {
        let path = format!("sales/{}", g.name);
        assert_eq!(
            landed.get(&path).cloned().unwrap_or_default(),
            g.good,
            "{path}: landed ids"
        );
        let got: Vec<(Vec<u8>, i64)> = q
            .iter()
            .filter(|r| r.source_file == path)
            .map(|r| (r.raw.clone(), r.line))
            .collect();
        let want_lines: Vec<i64> = g.bad.iter().map(|b| b.1).collect();
        assert_eq!(
            got,
            g.bad,
            "{path}: quarantine (want lines {want_lines:?}): {:?}",
            q.iter()
                .filter(|r| r.source_file == path)
                .map(|r| &r.reason)
                .collect::<Vec<_>>()
        );
        let rec = &records[&path];
        assert_eq!(rec["status"], "ok", "{rec}");
        assert_eq!(rec["records_truncated"], 0, "{rec}");
        assert!(
            !w.landing().join(&path).exists(),
            "{path} is accounted for in full, so clean_source deletes it"
        );
    }
    let bad_total: usize = files.iter().map(|g| g.bad.len()).sum();
    let good_total: usize = files.iter().map(|g| g.good.len()).sum();
    assert!(
        stdout.contains(&format!(
            "{good_total} rows written, 0 duplicates dropped, {bad_total} quarantined"
        )),
        "{stdout}"
    );
    // Each quarantined line is at its own offset in the file it came from.
    for r in &q {
        let g = files
            .iter()
            .find(|g| format!("sales/{}", g.name) == r.source_file)
            .expect("a generated file");
        let at = r.offset as usize;
        assert_eq!(
            &g.data[at..at + r.raw.len()],
            &r.raw[..],
            "{}",
            r.source_file
        );
    }
}

/// A record over `max_record_bytes` is quarantined with its first bytes only: its file is `ok+truncated` in
/// `checkpoint list`, listed by `--status truncated`, explained, and kept in landing by `--clean-source delete`
/// (a stray quote in the over-long line does not take the rest of the file with it); the other file goes.
#[test]
fn a_file_with_a_record_kept_only_in_part_stays_in_landing() {
    let w = Workdir::new();
    let mut long = generate("long.csv", 0, 300, &[], None, "\n", true);
    let text = String::from_utf8(long.data.clone()).expect("utf-8");
    let line7 = row(7);
    let over = format!("7,2025-10-08 10:00:00,1,2,\"{}", "x".repeat(5000));
    long.data = text.replacen(&line7, &over, 1).into_bytes();
    long.good.retain(|i| *i != 7);
    w.land_bytes("sales", "long.csv", &long.data);
    let clean = generate(
        "clean.csv",
        100_000,
        300,
        &[(10, Stray::Category)],
        None,
        "\n",
        true,
    );
    w.land_bytes("sales", "clean.csv", &clean.data);

    let args = ["--clean-source", "delete", "--max-record-bytes", "1000"];
    let (stdout, stderr) = run_once_ok(&w, &args);
    assert!(
        stdout.contains("598 rows written, 0 duplicates dropped, 2 quarantined"),
        "{stdout}"
    );
    assert!(stderr.contains("clean_source skipped"), "{stderr}");
    assert!(
        w.landing().join("sales/long.csv").exists(),
        "kept: a record is truncated"
    );
    assert!(
        !w.landing().join("sales/clean.csv").exists(),
        "deleted: all accounted for"
    );
    let landed = landed_ids(&w);
    assert_eq!(landed["sales/long.csv"], long.good);
    assert_eq!(landed["sales/clean.csv"], clean.good);
    let q = quarantine(&w, "sales");
    let cut = q
        .iter()
        .find(|r| r.source_file == "sales/long.csv")
        .expect("the over-long record");
    assert_eq!(cut.line, 8);
    assert_eq!(cut.raw, over.as_bytes()[..4096].to_vec());
    assert!(
        cut.reason
            .contains(&format!("record is {} bytes", over.len())),
        "{}",
        cut.reason
    );

    let records = checkpoint_files(&w);
    assert_eq!(records["sales/long.csv"]["records_truncated"], 1);
    assert_eq!(records["sales/clean.csv"]["records_truncated"], 0);
    let mut list = vec!["checkpoint".to_string(), "list".into()];
    list.extend(w.location_args());
    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
    let table = w.run_ok(&refs);
    let long_row = table
        .lines()
        .find(|l| l.contains("sales/long.csv"))
        .expect("listed");
    assert!(long_row.contains("ok+truncated"), "{table}");
    list.extend(["--status".into(), "truncated".into()]);
    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
    let only = w.run_ok(&refs);
    assert!(
        only.contains("sales/long.csv") && !only.contains("sales/clean.csv"),
        "{only}"
    );
    let mut explain = vec![
        "explain".to_string(),
        w.landing().join("sales/long.csv").display().to_string(),
    ];
    explain.extend(w.location_args());
    let refs: Vec<&str> = explain.iter().map(String::as_str).collect();
    let why = w.run_ok(&refs);
    assert!(
        why.contains("kept only in part, so the file stays in landing"),
        "{why}"
    );
    assert!(why.contains("ok+truncated"), "{why}");

    // A second run finds nothing new and still keeps the file.
    let (stdout, _) = run_once_ok(&w, &args);
    assert!(!stdout.contains("rows written"), "{stdout}");
    assert!(w.landing().join("sales/long.csv").exists());
}

/// The real 100k-row sales file with a stray quote in row 50,000: 99,999 rows land, the quarantine holds that
/// one line exactly, the file is deleted by `--clean-source delete` (all accounted for), and memory stays that
/// of a clean file.
#[test]
fn the_real_sales_file_with_a_stray_quote_in_row_50000() {
    let Some(data_dir) = require_shared_data() else {
        return;
    };
    let w = Workdir::new();
    let text = std::fs::read_to_string(data_dir.join("sales/transacciones_ventas.csv"))
        .expect("sales sample");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 100_001);
    let bad = unbalance(&lines[50_000], Stray::Category);
    assert_ne!(bad, lines[50_000], "the row has a field to unbalance");
    let bad_id: i64 = lines[50_000]
        .split(',')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("id");
    lines[50_000] = bad.clone();
    let data = lines.join("\n") + "\n";
    let offset = data.find(&bad).expect("placed");
    w.land_bytes("sales", "ventas.csv", data.as_bytes());

    let mut args = w.once_args();
    args.extend(["--clean-source".into(), "delete".into()]);
    let (out, peak_kib) = run_measured(&w, &args);
    assert_success(&out, &[], w.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("99999 rows written, 0 duplicates dropped, 1 quarantined"),
        "{stdout}"
    );
    let landed = landed_ids(&w);
    let ids = &landed["sales/ventas.csv"];
    assert_eq!(ids.len(), 99_999);
    assert!(ids.binary_search(&bad_id).is_err());
    let q = quarantine(&w, "sales");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].raw, bad.as_bytes());
    assert_eq!((q[0].line, q[0].offset), (50_001, offset as i64));
    assert!(q[0].reason.contains("unbalanced quote"), "{}", q[0].reason);
    assert!(!w.landing().join("sales/ventas.csv").exists());
    eprintln!(
        "peak RSS with a stray quote in row 50,000: {} MiB",
        peak_kib / 1024
    );
    assert!(peak_kib < 200 << 10, "peak RSS {peak_kib} KiB");
}

/// Every file under `dir`, recursively.
fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().expect("type").is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// A file with a record kept only in part (over `max_record_bytes`: an unbalanced quote running on, a long
/// quoted field, a long NDJSON line; first, middle or last record, with and without a final newline) is copied
/// whole to `_quarantine/<dataset>/files/` like a failed file, byte for byte, with a quarantine row naming the
/// copy; its good rows still land and it stays in landing, flagged. A clean file gets no copy.
#[test]
fn a_file_with_a_record_kept_only_in_part_is_copied_whole_to_the_quarantine() {
    let w = Workdir::new();
    let long_field = "x".repeat(3000);
    // (name, over-long row, its 1-based row number, rows, final newline)
    let shapes = [
        (
            "stray_middle.csv",
            format!("\"{long_field}"),
            150,
            300,
            true,
        ),
        (
            "quoted_first.csv",
            format!("\"{long_field}\""),
            1,
            200,
            true,
        ),
        (
            "quoted_last.csv",
            format!("\"{long_field}\""),
            100,
            100,
            false,
        ),
    ];
    let mut expected: BTreeMap<String, (Vec<u8>, Vec<i64>)> = BTreeMap::new();
    for (k, (name, field, at, n, final_eol)) in shapes.iter().enumerate() {
        let base = 10_000 * (k + 1);
        let mut g = generate(name, base, *n, &[], None, "\n", *final_eol);
        let target = row(base + at);
        let over = target.replacen(",Deportes,", &format!(",{field},"), 1);
        let text = String::from_utf8(g.data.clone()).expect("utf-8");
        g.data = text.replacen(&target, &over, 1).into_bytes();
        g.good.retain(|i| *i != (base + at) as i64);
        w.land_bytes("sales", name, &g.data);
        expected.insert(format!("sales/{name}"), (g.data, g.good));
    }
    let clean = generate("clean.csv", 90_000, 50, &[], None, "\n", true);
    w.land_bytes("sales", "clean.csv", &clean.data);
    let lines = crate::common::data::fixture_lines();
    let long_json = format!("{{\"id\":\"x\",\"type\":\"PushEvent\",\"pad\":\"{long_field}\"}}");
    let gh = format!("{}\n{long_json}\n{}\n", lines[0], lines[1]);
    w.land_bytes("gharchive", "long.json", gh.as_bytes());

    let (stdout, stderr) = run_once_ok(
        &w,
        &["--clean-source", "delete", "--max-record-bytes", "1000"],
    );
    let copies = files_below(&w.bronze().join("_quarantine"));
    let copies: Vec<String> = copies
        .iter()
        .map(|p| {
            p.strip_prefix(w.bronze())
                .expect("below")
                .display()
                .to_string()
        })
        .filter(|p| p.contains("/files/"))
        .collect();
    let mut all = expected.clone();
    all.insert(
        "gharchive/long.json".into(),
        (gh.clone().into_bytes(), Vec::new()),
    );
    for (path, (bytes, _)) in &all {
        let ds = path.split('/').next().expect("dataset");
        let copy = copies
            .iter()
            .find(|c| {
                c.starts_with(&format!("_quarantine/{ds}/files/b00000001"))
                    && c.ends_with(path.as_str())
            })
            .unwrap_or_else(|| panic!("no copy of {path} in {copies:?}\n{stdout}\n{stderr}"));
        assert_eq!(
            &std::fs::read(w.bronze().join(copy)).expect("read copy"),
            bytes,
            "{copy} is the original"
        );
        let q = quarantine(&w, ds);
        let pointer = q
            .iter()
            .find(|r| r.source_file == *path && r.line == 0)
            .unwrap_or_else(|| panic!("no quarantine row for the copy of {path}"));
        assert!(
            pointer.reason.ends_with(&format!("copied to {copy}")),
            "{}",
            pointer.reason
        );
        assert!(
            pointer.reason.contains("1 record(s) over max_record_bytes"),
            "{}",
            pointer.reason
        );
        // The cut record itself is still there, with its first bytes.
        assert!(q.iter().any(|r| r.source_file == *path
            && r.line > 0
            && r.reason.contains("over max_record_bytes")));
        assert!(w.landing().join(path).exists(), "{path} stays in landing");
    }
    assert!(
        !copies.iter().any(|c| c.contains("clean.csv")),
        "{copies:?}"
    );
    assert!(!w.landing().join("sales/clean.csv").exists());
    let landed = landed_ids(&w);
    for (path, (_, good)) in &expected {
        assert_eq!(&landed[path], good, "{path}");
    }
    assert_eq!(landed["sales/clean.csv"], clean.good);
    assert_eq!(count_rows(&w.bronze().join("gharchive")), 2);
    let records = checkpoint_files(&w);
    for path in all.keys() {
        assert_eq!(records[path]["records_truncated"], 1, "{path}");
    }
}
