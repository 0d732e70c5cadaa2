//! File names: every name the filesystem can hold is ingested under its own name; a name that no
//! store path can hold, and a file outside any dataset directory, is a warning naming it, listed by
//! `checkpoint pending` and explained by `explain`; a corrupt file with a name near the 255-byte limit is
//! quarantined and does not stop its dataset. The same names on HDFS and S3: `conformance::*::every_name_*`.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;

use serde_json::Value;

use crate::common::data::{content_for, hard_names};
use crate::common::*;

/// Rows per `_source_file` in bronze `sales`.
fn rows_by_source(w: &Workdir) -> BTreeMap<String, usize> {
    let mut got = BTreeMap::new();
    for f in string_column(&w.bronze().join("sales"), "_source_file") {
        *got.entry(f.expect("_source_file is set")).or_default() += 1;
    }
    got
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn pending_json(w: &Workdir) -> Vec<Value> {
    let mut args = vec!["checkpoint", "pending", "--settle-time", "0s", "--json"];
    let loc = w.location_args();
    args.extend(loc.iter().map(String::as_str));
    let text = w.run_ok(&args);
    serde_json::from_str::<Value>(&text)
        .unwrap_or_else(|e| panic!("pending --json: {e}\n{text}"))
        .as_array()
        .expect("array")
        .clone()
}

fn explain(w: &Workdir, path: &str) -> Value {
    let mut args = vec!["explain", path, "--settle-time", "0s", "--json"];
    let loc = w.location_args();
    args.extend(loc.iter().map(String::as_str));
    let text = w.run_ok(&args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("explain --json: {e}\n{text}"))
}

#[test]
fn every_name_the_filesystem_holds_is_ingested_and_the_others_are_reported() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    let mut expected = BTreeMap::new();
    for (i, name) in hard_names(250).iter().enumerate() {
        let (bytes, rows) = content_for(i);
        let path = w.landing().join("sales").join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write");
        expected.insert(format!("sales/{name}"), rows);
    }
    // Names no store path can hold (a control character; bytes that are not UTF-8), and a file outside any
    // dataset directory: never read, and said so.
    let (bad_bytes, _) = content_for(30);
    std::fs::write(w.landing().join("sales/bad\nname.csv"), &bad_bytes).expect("write");
    let latin1 = std::ffi::OsStr::from_bytes(b"latin1_\xf1.csv");
    std::fs::write(w.landing().join("sales").join(latin1), &bad_bytes).expect("write");
    std::fs::write(w.landing().join("suelto año.csv"), &bad_bytes).expect("write");

    let args = w.once_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = w.run(&args);
    assert_success(&out, &args, w.path());
    let log = stderr(&out);
    assert!(!log.contains("vanished"), "{log}");
    assert_eq!(rows_by_source(&w), expected, "rows per source file");
    assert_eq!(
        count_rows(&w.bronze().join("sales")),
        expected.values().sum::<usize>()
    );
    for needle in [
        "sales/bad\\nname.csv",
        "control character",
        "latin1_",
        "not valid UTF-8",
        "suelto año.csv",
        "dataset directory",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("WARN") && l.contains(needle)),
            "no warning with {needle:?}:\n{log}"
        );
    }

    // The checkpoint knows each file by its own name: a rerun reads nothing again.
    let again = w.run_once(&[]);
    assert!(again.contains("nothing new"), "{again}");
    assert_eq!(rows_by_source(&w), expected);

    // `checkpoint pending` lists exactly the three entries that are never read, with why.
    let pending = pending_json(&w);
    let mut skipped: Vec<(String, String)> = pending
        .iter()
        .map(|p| {
            assert_eq!(p["change"], "skipped", "{p}");
            (
                p["path"].as_str().expect("path").to_string(),
                p["reason"].as_str().expect("reason").to_string(),
            )
        })
        .collect();
    skipped.sort();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert_eq!(skipped[0].0, "sales/bad\nname.csv");
    assert!(skipped[0].1.contains("control character"), "{skipped:?}");
    assert!(skipped[1].0.starts_with("sales/latin1_"), "{skipped:?}");
    assert!(skipped[1].1.contains("UTF-8"), "{skipped:?}");
    assert_eq!(skipped[2].0, "suelto año.csv");
    assert!(skipped[2].1.contains("dataset directory"), "{skipped:?}");

    // `explain` says why, for the odd name and the stray file; and a hard name is explained as ingested.
    let x = explain(&w, "sales/bad\nname.csv");
    let verdict = x["verdict"].as_str().expect("verdict");
    assert!(verdict.contains("control character"), "{x}");
    let x = explain(&w, "suelto año.csv");
    assert!(
        x["verdict"]
            .as_str()
            .expect("verdict")
            .contains("dataset directory"),
        "{x}"
    );
    let x = explain(&w, "sales/ventas_año_2024.csv");
    assert_eq!(x["checkpoint_state"], "processed", "{x}");
    assert_eq!(
        x["record"]["records_ok"],
        expected["sales/ventas_año_2024.csv"]
    );
}

#[test]
fn a_corrupt_file_with_a_long_name_is_quarantined_and_later_runs_go_on() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    // Not gzip although named so: rejected whole and copied to the quarantine. 254 and 253 bytes.
    let long_ascii = format!("{}.csv.gz", "x".repeat(247));
    let long_utf8 = format!("{}.csv.gz", "ñ".repeat(123));
    assert_eq!((long_ascii.len(), long_utf8.len()), (254, 253));
    let dir = w.landing().join("sales");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for n in [&long_ascii, &long_utf8] {
        std::fs::write(dir.join(n), b"this is not gzip\n").expect("write");
    }
    let (good, rows) = content_for(1);
    std::fs::write(dir.join("good.csv"), &good).expect("write");
    w.run_once(&[]);
    assert_eq!(count_rows(&w.bronze().join("sales")), rows);

    // Each copy is in the quarantine under a name within the limit; the record keeps the original name.
    let files = w.bronze().join("_quarantine/sales/files");
    let mut copies = Vec::new();
    let mut stack = vec![files.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("quarantine files").flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                copies.push(e.path());
            }
        }
    }
    assert_eq!(copies.len(), 2, "{copies:?}");
    for c in &copies {
        assert_eq!(std::fs::read(c).expect("read"), b"this is not gzip\n");
        assert!(c.file_name().expect("name").len() <= 200, "{}", c.display());
    }
    let q = crate::common::data::quarantine(&w, "sales");
    let mut sources: Vec<&str> = q.iter().map(|r| r.source_file.as_str()).collect();
    sources.sort();
    let mut want = vec![format!("sales/{long_ascii}"), format!("sales/{long_utf8}")];
    want.sort();
    assert_eq!(sources, want);

    // Later runs of the dataset go on: a new file lands, exit 0 each time.
    let (more, more_rows) = content_for(2);
    std::fs::write(dir.join("more.csv"), &more).expect("write");
    w.run_once(&[]);
    let again = w.run_once(&[]);
    assert!(again.contains("nothing new"), "{again}");
    assert_eq!(count_rows(&w.bronze().join("sales")), rows + more_rows);
}
