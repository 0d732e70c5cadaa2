//! The checkpoint is bound to its landing, its bronze and (Delta) each dataset's table: another landing,
//! another bronze or a recreated table is refused with exit 2 naming both locations and `--rebind`, and nothing
//! is ingested again; `--rebind` binds on purpose; a checkpoint from before bindings is bound by its next run;
//! `checkpoint pending`, `checkpoint verify` and `explain` show the mismatch.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;

const FORMATS: [&str; 2] = ["delta", "parquet"];

/// `lander run --mode once` over `landing`/`bronze` with the workdir's checkpoint.
fn run_at(w: &Workdir, landing: &Path, bronze: &Path, format: &str, extra: &[&str]) -> Output {
    let (l, b, c) = (
        landing.display().to_string(),
        bronze.display().to_string(),
        w.checkpoint().display().to_string(),
    );
    let mut args = vec![
        "run",
        "--mode",
        "once",
        "--settle-time",
        "0s",
        "--landing",
        &l,
        "--bronze",
        &b,
        "--checkpoint",
        &c,
        "--table-format",
        format,
    ];
    args.extend_from_slice(extra);
    w.run(&args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that `out` was refused as a binding mismatch: exit 2, naming `bound`, `given` and `--rebind`.
fn assert_refused(out: &Output, bound: &str, given: &str) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2, stderr:\n{err}"
    );
    for needle in [bound, given, "--rebind"] {
        assert!(
            err.contains(needle),
            "the refusal does not name {needle}:\n{err}"
        );
    }
}

/// A second landing holding `gharchive/<name>` with other content than the first landing's file of that name:
/// what the checkpoint would take for a rewritten file and ingest again.
fn other_landing(w: &Workdir, name: &str) -> PathBuf {
    let other = w.path().join("landing2");
    let dest = other.join("gharchive").join(name);
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    std::fs::copy(bundled("2013-02-15-0.json.gz"), &dest).expect("copy");
    other
}

/// A bundled GH Archive sample (tests/fixtures): these tests need two files of different content, nothing more, so
/// they run on a plain clone too.
fn bundled(name: &str) -> PathBuf {
    fixtures_landing().join("gharchive").join(name)
}

fn canonical(p: &Path) -> String {
    std::fs::canonicalize(p)
        .expect("canonicalize")
        .display()
        .to_string()
}

#[test]
fn another_landing_is_refused_until_rebind() {
    for format in FORMATS {
        let w = Workdir::new();
        w.land(
            &bundled("2011-02-15-0.json.gz"),
            "gharchive",
            "2011-02-15-0.json.gz",
        );
        let (landing, bronze) = (w.landing(), w.bronze());
        let first = run_at(&w, &landing, &bronze, format, &[]);
        assert_success(&first, &["run", format], w.path());
        let rows = count_rows(&bronze.join("gharchive"));
        assert!(rows > 0, "{format}: nothing ingested");
        let other = other_landing(&w, "2011-02-15-0.json.gz");

        let refused = run_at(&w, &other, &bronze, format, &[]);
        assert_refused(&refused, &canonical(&landing), &canonical(&other));
        assert_eq!(
            count_rows(&bronze.join("gharchive")),
            rows,
            "{format}: a refused run wrote rows"
        );

        // Read-only commands say so instead of comparing silently.
        let c = w.checkpoint().display().to_string();
        let o = other.display().to_string();
        let b = bronze.display().to_string();
        let pending = w.run(&["checkpoint", "pending", "--landing", &o, "--checkpoint", &c]);
        assert!(pending.status.success(), "{}", stderr(&pending));
        let err = stderr(&pending);
        assert!(
            err.contains(&canonical(&landing)) && err.contains("--rebind"),
            "pending: {err}"
        );
        let file = other
            .join("gharchive/2011-02-15-0.json.gz")
            .display()
            .to_string();
        let explain = w
            .cmd()
            .env("LANDER_TABLE_FORMAT", format)
            .args([
                "explain",
                &file,
                "--landing",
                &o,
                "--bronze",
                &b,
                "--checkpoint",
                &c,
            ])
            .output()
            .expect("spawn lander");
        assert!(explain.status.success(), "explain: {}", stderr(&explain));
        let explain = String::from_utf8_lossy(&explain.stdout);
        assert!(
            explain.contains("belongs to other locations")
                && explain.contains(&canonical(&landing)),
            "explain: {explain}"
        );

        // --rebind binds on purpose (logged); from then on the other landing is the bound one.
        let rebound = run_at(&w, &other, &bronze, format, &["--rebind"]);
        assert_success(&rebound, &["run", "--rebind"], w.path());
        assert!(
            stderr(&rebound).contains("--rebind"),
            "rebinding is not logged: {}",
            stderr(&rebound)
        );
        assert!(
            count_rows(&bronze.join("gharchive")) > rows,
            "{format}: the rebound run read nothing"
        );
        let again = run_at(&w, &other, &bronze, format, &[]);
        assert_success(&again, &["run", "after rebind"], w.path());
        let back = run_at(&w, &landing, &bronze, format, &[]);
        assert_refused(&back, &canonical(&other), &canonical(&landing));
    }
}

#[test]
fn another_bronze_is_refused_and_verify_names_it() {
    for format in FORMATS {
        let w = Workdir::new();
        w.land(
            &bundled("2011-02-15-0.json.gz"),
            "gharchive",
            "2011-02-15-0.json.gz",
        );
        let (landing, bronze) = (w.landing(), w.bronze());
        assert_success(
            &run_at(&w, &landing, &bronze, format, &[]),
            &["run"],
            w.path(),
        );
        let other = w.path().join("bronze2");
        std::fs::create_dir_all(&other).expect("mkdir");
        // A new file too: an unbound run would ingest it into the other bronze and skip the old one.
        w.land(
            &bundled("2013-02-15-0.json.gz"),
            "gharchive",
            "2013-02-15-0.json.gz",
        );
        let refused = run_at(&w, &landing, &other, format, &[]);
        assert_refused(&refused, &canonical(&bronze), &canonical(&other));
        assert!(
            parquet_files(&other).is_empty(),
            "{format}: a refused run wrote to the other bronze"
        );

        let (c, o) = (
            w.checkpoint().display().to_string(),
            other.display().to_string(),
        );
        let verify = w.run(&["checkpoint", "verify", "--bronze", &o, "--checkpoint", &c]);
        assert_eq!(verify.status.code(), Some(1), "{}", stderr(&verify));
        let text = String::from_utf8_lossy(&verify.stdout);
        assert!(
            text.contains("does not belong to this bronze") && text.contains(&canonical(&bronze)),
            "verify: {text}"
        );
    }
}

#[test]
fn a_recreated_or_deleted_table_is_refused_without_reingest() {
    let w = Workdir::new();
    w.land(
        &bundled("2011-02-15-0.json.gz"),
        "gharchive",
        "2011-02-15-0.json.gz",
    );
    let (landing, bronze) = (w.landing(), w.bronze());
    assert_success(
        &run_at(&w, &landing, &bronze, "delta", &[]),
        &["run"],
        w.path(),
    );
    let table = bronze.join("gharchive");
    let id = |t: &Path| -> String {
        let log = std::fs::read_to_string(t.join("_delta_log/00000000000000000000.json"))
            .expect("version 0");
        let meta = log
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
            .find(|v| v.get("metaData").is_some())
            .expect("metaData");
        meta["metaData"]["id"].as_str().expect("id").to_string()
    };
    let first_id = id(&table);

    // Deleted: the checkpoint's records describe rows that are gone.
    std::fs::remove_dir_all(&table).expect("rm table");
    let refused = run_at(&w, &landing, &bronze, "delta", &[]);
    assert_refused(&refused, &first_id, &table.display().to_string());
    assert!(
        stderr(&refused).contains("no longer exists"),
        "{}",
        stderr(&refused)
    );
    assert!(!table.exists(), "a refused run created the table");

    // Recreated by another job (another checkpoint): same place, another id.
    let other_cp = w.path().join("state2");
    let (l, b, c2) = (
        landing.display().to_string(),
        bronze.display().to_string(),
        other_cp.display().to_string(),
    );
    w.run_ok(&[
        "run",
        "--mode",
        "once",
        "--settle-time",
        "0s",
        "--landing",
        &l,
        "--bronze",
        &b,
        "--checkpoint",
        &c2,
        "--table-format",
        "delta",
    ]);
    let second_id = id(&table);
    assert_ne!(first_id, second_id);
    let rows = count_rows(&table);
    w.land(
        &bundled("2013-02-15-0.json.gz"),
        "gharchive",
        "2013-02-15-0.json.gz",
    );
    let refused = run_at(&w, &landing, &bronze, "delta", &[]);
    assert_refused(&refused, &first_id, &second_id);
    assert_eq!(count_rows(&table), rows, "a refused run wrote rows");

    let rebound = run_at(&w, &landing, &bronze, "delta", &["--rebind"]);
    assert_success(&rebound, &["run", "--rebind"], w.path());
    assert!(
        count_rows(&table) > rows,
        "the rebound run did not ingest the new file"
    );
    assert_success(
        &run_at(&w, &landing, &bronze, "delta", &[]),
        &["run", "after rebind"],
        w.path(),
    );
}

#[test]
fn a_checkpoint_without_binding_is_bound_by_its_next_run() {
    for format in FORMATS {
        let w = Workdir::new();
        w.land(
            &bundled("2011-02-15-0.json.gz"),
            "gharchive",
            "2011-02-15-0.json.gz",
        );
        let (landing, bronze) = (w.landing(), w.bronze());
        assert_success(
            &run_at(&w, &landing, &bronze, format, &[]),
            &["run"],
            w.path(),
        );
        let rows = count_rows(&bronze.join("gharchive"));
        // The checkpoint as lander wrote it before bindings existed: the same store without `meta/binding`.
        let c = w.checkpoint().display().to_string();
        let export = w.run_ok(&["checkpoint", "export", "--checkpoint", &c]);
        let old: String = export
            .lines()
            .filter(|l| !l.contains("\"meta/binding\""))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            old.len() < export.len(),
            "{format}: the export has no binding"
        );
        let input = w.path().join("old.jsonl");
        std::fs::write(&input, old).expect("write export");
        let i = input.display().to_string();
        w.run_ok(&[
            "checkpoint",
            "import",
            "--checkpoint",
            &c,
            "--input",
            &i,
            "--yes",
        ]);
        let export = w.run_ok(&["checkpoint", "export", "--checkpoint", &c]);
        assert!(
            !export.contains("\"meta/binding\""),
            "{format}: import kept a binding"
        );

        let next = run_at(&w, &landing, &bronze, format, &[]);
        assert_success(&next, &["run", "old checkpoint"], w.path());
        assert_eq!(
            count_rows(&bronze.join("gharchive")),
            rows,
            "{format}: the migration re-ingested"
        );
        let other = other_landing(&w, "2011-02-15-0.json.gz");
        let refused = run_at(&w, &other, &bronze, format, &[]);
        assert_refused(&refused, &canonical(&landing), &canonical(&other));
    }
}

/// The quarantine table `_quarantine/<dataset>` is bound like the data table: deleted, or replaced by another
/// job's table, a run is refused with exit 2 naming the table, both ids and `--rebind`, and writes nothing;
/// `--rebind` binds the checkpoint to the table found.
#[test]
fn a_recreated_or_deleted_quarantine_table_is_refused_until_rebind() {
    use crate::common::data::sales_csv;
    let w = Workdir::new();
    w.land_bytes("sales", "day1.csv", sales_csv(1, 3, 2).as_bytes());
    let (landing, bronze) = (w.landing(), w.bronze());
    assert_success(
        &run_at(&w, &landing, &bronze, "delta", &[]),
        &["run"],
        w.path(),
    );
    let quarantine = bronze.join("_quarantine/sales");
    let id = |t: &Path| -> String {
        let log = std::fs::read_to_string(t.join("_delta_log/00000000000000000000.json"))
            .expect("version 0");
        log.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
            .find_map(|v| v["metaData"]["id"].as_str().map(String::from))
            .expect("metaData.id")
    };
    let first_id = id(&quarantine);
    let data_versions = || {
        std::fs::read_dir(bronze.join("sales/_delta_log"))
            .expect("log")
            .filter(|e| {
                e.as_ref()
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".json")
            })
            .count()
    };
    let versions = data_versions();
    w.land_bytes("sales", "day2.csv", sales_csv(100, 2, 2).as_bytes());

    // Deleted.
    let saved = w.path().join("saved");
    std::fs::rename(&quarantine, &saved).expect("move the quarantine table away");
    let refused = run_at(&w, &landing, &bronze, "delta", &[]);
    assert_refused(&refused, &first_id, &quarantine.display().to_string());
    assert!(
        stderr(&refused).contains("no longer exists"),
        "{}",
        stderr(&refused)
    );
    assert!(
        !quarantine.exists(),
        "a refused run created the quarantine table"
    );
    assert_eq!(data_versions(), versions, "a refused run committed");

    // Replaced by another job's quarantine table (another checkpoint, the same bronze).
    let c2 = w.path().join("state2").display().to_string();
    let (l, b) = (landing.display().to_string(), bronze.display().to_string());
    w.run_ok(&[
        "run",
        "--mode",
        "once",
        "--settle-time",
        "0s",
        "--landing",
        &l,
        "--bronze",
        &b,
        "--checkpoint",
        &c2,
        "--table-format",
        "delta",
    ]);
    let second_id = id(&quarantine);
    assert_ne!(first_id, second_id);
    let versions = data_versions();
    let refused = run_at(&w, &landing, &bronze, "delta", &[]);
    assert_refused(&refused, &first_id, &second_id);
    assert!(
        stderr(&refused).contains("_quarantine/sales"),
        "the refusal names the quarantine table: {}",
        stderr(&refused)
    );
    assert_eq!(data_versions(), versions, "a refused run committed");

    let rebound = run_at(&w, &landing, &bronze, "delta", &["--rebind"]);
    assert_success(&rebound, &["run", "--rebind"], w.path());
    assert_eq!(
        data_versions(),
        versions + 1,
        "the rebound run ingested day2.csv"
    );
    assert_success(
        &run_at(&w, &landing, &bronze, "delta", &[]),
        &["run", "after rebind"],
        w.path(),
    );
}
