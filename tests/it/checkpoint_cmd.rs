//! `lander checkpoint`: list, show, stats, pending, verify, reset, export and import on a checkpoint made by a
//! real `run --mode once` over three GH Archive samples and `transacciones_ventas.csv` (genuine, or their bundled
//! prefixes on a plain clone), plus `list` while a `--mode continuous` daemon holds the checkpoint.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// The GH Archive hours [`ingested`] lands: those with a bundled prefix.
const HOURS: [&str; 3] = [
    "2011-02-15-0.json.gz",
    "2013-02-15-0.json.gz",
    "2015-01-01-0.json.gz",
];
/// Files [`ingested`] lands: the hours and the sales CSV.
const FILES: usize = HOURS.len() + 1;

/// Distinct events in [`HOURS`], computed from their lines.
fn gh_events() -> u64 {
    crate::common::data::hour_events(&HOURS) as u64
}

/// Distinct transaction ids of the sales CSV [`ingested`] lands.
fn sales_rows() -> u64 {
    let mut rdr = csv::Reader::from_path(sample("sales/transacciones_ventas.csv")).expect("csv");
    let ids: std::collections::HashSet<String> = rdr
        .records()
        .map(|r| r.expect("row")[0].to_string())
        .collect();
    ids.len() as u64
}
/// The file that the reset test forgets.
const RESET_FILE: &str = "gharchive/2015-01-01-0.json.gz";

/// A workdir whose checkpoint and bronze come from one `run --mode once` over [`HOURS`] and the sales CSV.
fn ingested() -> Workdir {
    let wd = Workdir::new();
    for n in HOURS {
        wd.land(&gharchive(n), "gharchive", n);
    }
    wd.land(
        &sample("sales/transacciones_ventas.csv"),
        "sales",
        "transacciones_ventas.csv",
    );
    wd.run_once(&[]);
    wd
}

/// `lander checkpoint <sub...> <workdir locations>`.
fn cp(wd: &Workdir, sub: &[&str]) -> Output {
    let mut args: Vec<String> = vec!["checkpoint".into()];
    args.extend(sub.iter().map(|s| s.to_string()));
    args.extend(wd.location_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    wd.run(&refs)
}

fn cp_ok(wd: &Workdir, sub: &[&str]) -> String {
    let out = cp(wd, sub);
    assert_success(&out, sub, wd.path());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cp_json(wd: &Workdir, sub: &[&str]) -> Value {
    let mut args = sub.to_vec();
    args.push("--json");
    let text = cp_ok(wd, &args);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{sub:?} --json is not JSON: {e}\n{text}"))
}

/// Asserts `out` failed with exit code `code` and that stderr+stdout mention every one of `needles`.
fn assert_fails(out: &Output, code: i32, needles: &[&str]) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}:\n{text}"
    );
    for n in needles {
        assert!(text.contains(n), "expected {n:?} in:\n{text}");
    }
    text
}

fn dataset<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["datasets"]
        .as_array()
        .expect("datasets array")
        .iter()
        .find(|d| d["dataset"] == name)
        .unwrap_or_else(|| panic!("no dataset {name} in {stats}"))
}

fn u(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a number in {v}"))
}

#[test]
fn stats_list_show_pending_and_verify_describe_a_fresh_run() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let wd = ingested();
    let (gh_events, sales_rows) = (gh_events(), sales_rows());

    // stats: the counts of the run.
    let stats = cp_json(&wd, &["stats"]);
    assert_eq!(stats["schema_version"], 1);
    assert_eq!(stats["snapshot"], false);
    assert!(u(&stats, "store_bytes") > 0);
    let gh = dataset(&stats, "gharchive");
    let sales = dataset(&stats, "sales");
    for (d, files, rows) in [(gh, HOURS.len() as u64, gh_events), (sales, 1, sales_rows)] {
        assert_eq!(u(d, "files"), files, "{d}");
        assert_eq!(u(d, "files_ok"), files, "{d}");
        assert_eq!(u(d, "rows"), rows, "{d}");
        assert_eq!(u(d, "duplicates"), 0, "{d}");
        assert_eq!(u(d, "quarantined"), 0, "{d}");
        assert_eq!(u(d, "batches"), 1, "{d}");
        assert_eq!(u(d, "last_batch"), 1, "{d}");
        assert!(u(d, "dedup_runs") >= 1, "{d}");
        assert_eq!(d["dedup_horizon_secs"], 35 * 86_400, "{d}");
        assert!(d["in_flight_batch"].is_null(), "{d}");
    }
    // Every sales row is a remembered key (the sample spans one month, inside the 35-day default horizon); the
    // GH Archive hours of 2011-2013 lie years behind the 2015 watermark, so only the 2015 keys are kept.
    assert_eq!(u(sales, "dedup_keys"), sales_rows);
    assert!(u(gh, "dedup_keys") > 0 && u(gh, "dedup_keys") < gh_events);
    let landed: u64 = HOURS
        .iter()
        .map(|n| std::fs::metadata(gharchive(n)).expect("stat").len())
        .sum();
    assert_eq!(u(gh, "bytes"), landed);
    assert_eq!(
        u(gh, "bronze_files") as usize,
        parquet_files(&wd.bronze().join("gharchive")).len()
    );
    assert!(gh["first_event_time"]
        .as_str()
        .expect("time")
        .starts_with("2011-02-15T"));
    assert!(gh["last_event_time"]
        .as_str()
        .expect("time")
        .starts_with("2015-01-01T"));
    assert_eq!(sales["csv_columns"], 10);
    assert!(gh["csv_columns"].is_null());
    let human = cp_ok(&wd, &["stats"]);
    assert!(
        human.contains(&gh_events.to_string()) && human.contains(&sales_rows.to_string()),
        "{human}"
    );

    // list: every documented field, newest first, filters.
    let list = cp_json(&wd, &["list"]);
    let list = list.as_array().expect("list --json is an array");
    assert_eq!(list.len(), FILES);
    for f in list {
        for field in [
            "dataset",
            "path",
            "status",
            "reason",
            "size",
            "modified",
            "bytes_consumed",
            "lines_consumed",
            "records_ok",
            "records_quarantined",
            "records_duplicate",
            "batch",
            "batches",
            "versions",
            "fingerprint",
            "head_hash",
            "processed_at",
        ] {
            assert!(f.get(field).is_some(), "no {field} in {f}");
        }
        assert_eq!(f["status"], "ok");
        assert_eq!(f["batch"], 1);
        assert_eq!(f["size"], f["bytes_consumed"]);
    }
    let ok: u64 = list
        .iter()
        .filter(|f| f["dataset"] == "gharchive")
        .map(|f| u(f, "records_ok"))
        .sum();
    assert_eq!(ok, gh_events);
    let times: Vec<&str> = list
        .iter()
        .map(|f| f["processed_at"].as_str().expect("time"))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let only = cp_json(&wd, &["list", "--dataset", "sales"]);
    assert_eq!(only[0]["path"], "sales/transacciones_ventas.csv");
    assert_eq!(only.as_array().expect("array").len(), 1);
    assert_eq!(
        cp_json(&wd, &["list", "--limit", "2"])
            .as_array()
            .expect("array")
            .len(),
        2
    );
    assert!(cp_json(&wd, &["list", "--status", "failed"])
        .as_array()
        .expect("array")
        .is_empty());
    assert!(
        cp_json(&wd, &["list", "--since", "1h"])
            .as_array()
            .expect("array")
            .len()
            == FILES
    );
    assert!(cp_json(&wd, &["list", "--since", "2999-01-01"])
        .as_array()
        .expect("array")
        .is_empty());
    let human = cp_ok(&wd, &["list"]);
    let header = human.lines().next().expect("header");
    assert!(
        header.starts_with("PATH") && header.contains("QUARANTINED"),
        "{human}"
    );
    assert_eq!(human.lines().count(), FILES + 1, "{human}");
    assert_fails(
        &cp(&wd, &["list", "--since", "someday"]),
        2,
        &["invalid time"],
    );

    // show <file>: fingerprint, offsets, batches and the outputs of those batches with row counts.
    let show = cp_json(&wd, &["show", RESET_FILE]);
    assert_eq!(show["kind"], "file");
    assert_eq!(show["file"]["path"], RESET_FILE);
    assert_eq!(show["file"]["fingerprint"].as_str().expect("fp").len(), 16);
    let size = std::fs::metadata(gharchive("2015-01-01-0.json.gz"))
        .expect("stat")
        .len();
    assert_eq!(u(&show["reads"][0], "end"), size);
    assert_eq!(u(&show["reads"][0], "start"), 0);
    assert_eq!(show["reads"][0]["batch"], 1);
    let rows: u64 = show["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|o| u(o, "rows"))
        .sum();
    assert_eq!(rows, gh_events, "outputs of gharchive batch 1");
    let human = cp_ok(&wd, &["show", "2015-01-01-0.json.gz"]);
    assert!(
        human.contains("fingerprint") && human.contains(&format!("0..{size}")),
        "{human}"
    );
    assert!(
        human.contains("gharchive/year=2015/month=01/day=01/part-b00000001-"),
        "{human}"
    );

    // show <batch>: one per dataset unless --dataset.
    let b = cp_json(&wd, &["show", "1"]);
    assert_eq!(b["kind"], "batch");
    assert_eq!(b["batches"].as_array().expect("batches").len(), 2);
    let b = cp_json(&wd, &["show", "1", "--dataset", "gharchive"]);
    let b = &b["batches"][0];
    assert_eq!(b["id"], 1);
    assert_eq!(u(b, "rows"), gh_events);
    assert_eq!(b["inputs"].as_array().expect("inputs").len(), HOURS.len());
    assert!(u(b, "duration_ms") < 600_000);
    let human = cp_ok(&wd, &["show", "1", "--dataset", "sales"]);
    assert!(
        human.contains("sales/transacciones_ventas.csv") && human.contains(&sales_rows.to_string()),
        "{human}"
    );
    assert_fails(&cp(&wd, &["show", "7"]), 1, &["no dataset has a batch 7"]);
    assert_fails(
        &cp(&wd, &["show", "gharchive/nope.json.gz"]),
        1,
        &["no landing file"],
    );

    // verify: consistent.
    let out = cp_ok(&wd, &["verify"]);
    assert!(out.starts_with("ok:"), "{out}");
    let v = cp_json(&wd, &["verify"]);
    assert_eq!(v["consistent"], true);
    assert_eq!(
        u(&v, "outputs_checked") as usize,
        parquet_files(&wd.bronze()).len()
    );
    assert!(v["problems"].as_array().expect("problems").is_empty());

    // pending: nothing, then a newly landed file.
    assert!(cp_json(&wd, &["pending"])
        .as_array()
        .expect("array")
        .is_empty());
    let new = wd.land(
        &gharchive("2011-02-15-0.json.gz"),
        "gharchive",
        "2011-02-16-0.json.gz",
    );
    let p = cp_json(&wd, &["pending", "--settle-time", "0s"]);
    let p = p.as_array().expect("array");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0]["path"], "gharchive/2011-02-16-0.json.gz");
    assert_eq!(p[0]["change"], "new");
    assert_eq!(p[0]["ready"], true);
    assert_eq!(
        u(&p[0], "size"),
        std::fs::metadata(&new).expect("stat").len()
    );
    assert_eq!(p[0]["size"], p[0]["pending_bytes"]);
    let human = cp_ok(&wd, &["pending", "--settle-time", "0s"]);
    assert!(human.contains("gharchive/2011-02-16-0.json.gz"), "{human}");
}

#[test]
fn verify_reports_a_missing_file_and_an_orphan_precisely() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let wd = ingested();
    cp_ok(&wd, &["verify"]);
    let victim = parquet_files(&wd.bronze().join("sales"))
        .into_iter()
        .nth(3)
        .expect("sales has several parts");
    let rel = victim
        .strip_prefix(wd.bronze())
        .expect("below bronze")
        .display()
        .to_string();
    let saved = std::fs::read(&victim).expect("read");

    std::fs::remove_file(&victim).expect("delete");
    let out = cp(&wd, &["verify"]);
    let text = assert_fails(&out, 1, &[&rel, "missing from bronze", "sales batch 1"]);
    assert_eq!(text.matches("problem:").count(), 1, "{text}");
    let v: Value = serde_json::from_slice(&cp(&wd, &["verify", "--json"]).stdout).expect("json");
    assert_eq!(v["consistent"], false);
    assert_eq!(v["problems"][0]["kind"], "missing");
    assert_eq!(v["problems"][0]["path"], rel.as_str());
    assert_eq!(v["problems"][0]["batch"], 1);

    std::fs::write(&victim, &saved).expect("restore");
    cp_ok(&wd, &["verify"]);

    let orphan = wd
        .bronze()
        .join("gharchive/year=2015/month=01/day=01/part-b00000099-0000.parquet");
    std::fs::write(&orphan, &saved).expect("write orphan");
    let text = assert_fails(
        &cp(&wd, &["verify"]),
        1,
        &[
            "gharchive/year=2015/month=01/day=01/part-b00000099-0000.parquet",
            "unknown to the checkpoint",
        ],
    );
    assert_eq!(text.matches("problem:").count(), 1, "{text}");
    // Staging is not bronze: a leftover there is not an orphan.
    std::fs::remove_file(&orphan).expect("rm");
    let staging = wd.bronze().join("_staging/gharchive/b00000002");
    std::fs::create_dir_all(&staging).expect("mkdir");
    std::fs::write(staging.join("part-b00000002-0000.parquet"), &saved).expect("write");
    cp_ok(&wd, &["verify"]);

    // A recorded size that no longer matches.
    std::fs::write(&victim, &saved[..saved.len() / 2]).expect("truncate");
    assert_fails(
        &cp(&wd, &["verify"]),
        1,
        &[&rel, "bytes in bronze, the checkpoint recorded"],
    );
}

#[test]
fn reset_file_then_run_reingests_it_without_new_rows() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let wd = ingested();
    let before = rows_by_file(&wd.bronze());
    assert_eq!(
        before.values().sum::<usize>() as u64,
        gh_events() + sales_rows()
    );

    // No confirmation possible (stdin is not a terminal): refused as a usage error, nothing changes.
    assert_fails(&cp(&wd, &["reset", "--file", RESET_FILE]), 2, &["--yes"]);
    // Exactly one of --file, --dataset, --all.
    assert_fails(
        &cp(&wd, &["reset", "--all", "--dataset", "sales", "--yes"]),
        2,
        &["cannot be used"],
    );
    let events_in_file = cp_json(&wd, &["list"])
        .as_array()
        .expect("array")
        .iter()
        .find(|f| f["path"] == RESET_FILE)
        .map(|f| u(f, "records_ok"))
        .expect("listed");
    let dry = cp_ok(&wd, &["reset", "--file", RESET_FILE, "--dry-run"]);
    assert!(dry.contains(RESET_FILE), "{dry}");
    assert_eq!(
        cp_json(&wd, &["list"]).as_array().expect("array").len(),
        FILES
    );

    let out = cp_ok(&wd, &["reset", "--file", RESET_FILE, "--yes"]);
    assert!(out.contains("forgot 1 file"), "{out}");
    let list = cp_json(&wd, &["list"]);
    assert_eq!(list.as_array().expect("array").len(), FILES - 1);
    assert!(list
        .as_array()
        .expect("array")
        .iter()
        .all(|f| f["path"] != RESET_FILE));
    let p = cp_json(&wd, &["pending", "--settle-time", "0s"]);
    assert_eq!(p[0]["path"], RESET_FILE, "{p}");
    assert_fails(
        &cp(&wd, &["reset", "--file", RESET_FILE, "--yes"]),
        1,
        &["no landing file"],
    );

    // The next run reads it again; dedup drops every record, so bronze is unchanged.
    let run = wd.run_once(&[]);
    assert!(
        run.contains("gharchive: batch 2 committed: 1 file(s), 0 rows written"),
        "{run}"
    );
    assert_eq!(rows_by_file(&wd.bronze()), before);
    cp_ok(&wd, &["verify"]);
    let stats = cp_json(&wd, &["stats", "--dataset", "gharchive"]);
    let gh = dataset(&stats, "gharchive");
    assert_eq!(u(gh, "rows"), gh_events());
    assert_eq!(u(gh, "files"), HOURS.len() as u64);
    assert_eq!(u(gh, "batches"), 2);
    assert_eq!(
        u(gh, "duplicates"),
        events_in_file,
        "every event of {RESET_FILE} is a duplicate"
    );
    let show = cp_json(&wd, &["show", RESET_FILE]);
    let reads: Vec<u64> = show["reads"]
        .as_array()
        .expect("reads")
        .iter()
        .map(|r| u(r, "batch"))
        .collect();
    assert_eq!(reads, [1, 2]);
    assert_eq!(show["file"]["batches"], serde_json::json!([2]));
}

#[test]
fn export_then_import_round_trips_the_store() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let wd = ingested();
    let export = cp(&wd, &["export"]);
    assert_success(&export, &["checkpoint", "export"], wd.path());
    let lines: Vec<Value> = export
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("every export line is JSON"))
        .collect();
    let meta = lines
        .iter()
        .find(|l| l["key"] == "meta/schema_version")
        .expect("schema version exported");
    assert_eq!(meta["value"], 1);
    let batch = lines
        .iter()
        .find(|l| l["key"] == "batch/gharchive/00000000000000000001")
        .expect("batch record exported");
    assert_eq!(batch["value"]["rows"], gh_events());
    assert!(lines
        .iter()
        .any(|l| l["key_hex"] == true && l["value_hex"].is_string()));
    let state = wd.path().join("state.jsonl");
    std::fs::write(&state, &export.stdout).expect("write export");

    // Into a new checkpoint directory, from stdin.
    let restored = wd.path().join("restored");
    let out = wd
        .cmd()
        .args(["checkpoint", "import", "--checkpoint"])
        .arg(&restored)
        .stdin(Stdio::from(std::fs::File::open(&state).expect("open")))
        .output()
        .expect("spawn");
    assert_success(&out, &["checkpoint", "import"], wd.path());
    let stats_of = |dir: &Path| -> Value {
        let out = wd
            .cmd()
            .args(["checkpoint", "stats", "--json", "--checkpoint"])
            .arg(dir)
            .output()
            .expect("spawn");
        assert_success(&out, &["checkpoint", "stats"], wd.path());
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        v["datasets"].clone()
    };
    // The same state, except that the imported dedup keys wait in sled (no run files) until the next run.
    let without_runs = |mut v: Value| -> Value {
        for d in v.as_array_mut().expect("datasets") {
            let d = d.as_object_mut().expect("object");
            for k in ["dedup_runs", "dedup_bytes", "dedup_filter_bytes"] {
                d.remove(k);
            }
        }
        v
    };
    let original = stats_of(&wd.checkpoint());
    let imported = stats_of(&restored);
    assert_eq!(
        without_runs(imported.clone()),
        without_runs(original.clone())
    );
    assert!(imported
        .as_array()
        .expect("datasets")
        .iter()
        .all(|d| d["dedup_runs"] == 0));
    let again = wd
        .cmd()
        .args(["checkpoint", "export", "--checkpoint"])
        .arg(&restored)
        .output()
        .expect("spawn");
    assert!(
        again.stdout == export.stdout,
        "re-export of the imported store differs"
    );
    // A run over the restored checkpoint moves the imported keys back into run files and ingests nothing new.
    let mut args = wd.once_args();
    let at = args.iter().position(|a| a == "--checkpoint").expect("flag") + 1;
    args[at] = restored.display().to_string();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = wd.run_ok(&refs);
    assert!(out.contains("nothing new"), "{out}");
    // The same keys; the run layout may differ (the original also holds the empty base run a first batch loads
    // for a new day; migrated keys are runs of the last batch, and their day is loaded again on touch).
    let migrated = stats_of(&restored);
    assert_eq!(
        without_runs(migrated),
        without_runs(original),
        "after the migration the stats match the original store"
    );

    // Over an existing store: refused without --yes (from a file and from stdin, with the store full and with
    // its file records forgotten but its batches still there), then replaced with it.
    let input = state.display().to_string();
    let before = cp_ok(&wd, &["export"]);
    for forget in [false, true] {
        if forget {
            cp_ok(&wd, &["reset", "--all", "--yes"]);
        }
        let files = if forget { 0 } else { FILES };
        let by_file = cp(&wd, &["import", "--input", &input]);
        let mut args = vec!["checkpoint".to_string(), "import".into()];
        args.extend(wd.location_args());
        let by_stdin = wd
            .cmd()
            .args(&args)
            .stdin(Stdio::from(std::fs::File::open(&state).expect("open")))
            .output()
            .expect("spawn");
        for out in [by_file, by_stdin] {
            assert_fails(
                &out,
                2,
                &[
                    "is not empty",
                    &format!("({files} file record(s)"),
                    "pass --yes",
                ],
            );
        }
        assert_eq!(
            cp_json(&wd, &["list"]).as_array().expect("array").len(),
            files
        );
        if !forget {
            assert_eq!(
                cp_ok(&wd, &["export"]),
                before,
                "a refused import changes nothing"
            );
        }
    }
    let out = cp_ok(&wd, &["import", "--input", &input, "--yes"]);
    assert!(
        out.contains(&format!("imported {} key(s)", lines.len())),
        "{out}"
    );
    assert_eq!(
        cp_json(&wd, &["list"]).as_array().expect("array").len(),
        FILES
    );
    cp_ok(&wd, &["verify"]);

    // Not an export: refused, nothing changed.
    let junk = wd.path().join("junk.jsonl");
    std::fs::write(&junk, "{\"key\":\"x\",\"value\":1}\n").expect("write");
    assert_fails(
        &cp(&wd, &["import", "--input", &junk.display().to_string()]),
        1,
        &["not a lander checkpoint export"],
    );
    assert_eq!(
        cp_json(&wd, &["list"]).as_array().expect("array").len(),
        FILES
    );
}

#[test]
fn a_missing_checkpoint_is_a_clear_error() {
    let wd = Workdir::new();
    for sub in ["list", "stats", "verify", "export"] {
        assert_fails(&cp(&wd, &[sub]), 1, &["no checkpoint in"]);
    }
    assert_fails(
        &cp(&wd, &["reset", "--all", "--yes"]),
        1,
        &["no checkpoint in"],
    );
    assert!(
        !wd.checkpoint().exists(),
        "read commands must not create a checkpoint"
    );
}

#[test]
fn list_while_a_continuous_daemon_runs_reads_a_snapshot_and_reset_is_refused() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let wd = Workdir::new();
    wd.land(
        &gharchive("2011-02-15-0.json.gz"),
        "gharchive",
        "2011-02-15-0.json.gz",
    );
    let log = std::fs::File::create(wd.path().join("daemon.log")).expect("log");
    let mut daemon = wd
        .cmd()
        .args([
            "run",
            "--mode",
            "continuous",
            "--settle-time",
            "0s",
            "--poll-interval",
            "200ms",
        ])
        .args(wd.location_args())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn daemon");
    let daemon_log = || std::fs::read_to_string(wd.path().join("daemon.log")).unwrap_or_default();

    // Its first commit, seen through `checkpoint list` itself (the store exists only once the daemon holds it).
    let committed = wait_until(Duration::from_secs(60), || {
        let out = cp(&wd, &["list", "--json"]);
        out.status.success()
            && serde_json::from_slice::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v.as_array().map(|a| !a.is_empty()))
                .unwrap_or(false)
    });
    assert!(
        committed,
        "no commit seen within 60s; daemon log:\n{}",
        daemon_log()
    );
    assert!(
        daemon.try_wait().expect("wait").is_none(),
        "daemon exited early:\n{}",
        daemon_log()
    );

    let out = cp(&wd, &["list"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        assert!(
            stderr.contains("checkpoint is locked by a running lander (pid ")
                && stderr.contains("showing a snapshot"),
            "{stderr}"
        );
        assert!(
            stdout.contains("gharchive/2011-02-15-0.json.gz"),
            "{stdout}"
        );
    } else {
        assert!(
            stderr.contains("locked"),
            "neither a snapshot nor a clear lock message:\n{stderr}"
        );
    }
    let reset = assert_fails(
        &cp(&wd, &["reset", "--all", "--yes"]),
        1,
        &["locked by a running lander"],
    );
    assert!(reset.contains(&format!("pid {}", daemon.id())), "{reset}");

    let kill = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let mut status = None;
    let exited = wait_until(Duration::from_secs(30), || {
        status = daemon.try_wait().expect("wait");
        status.is_some()
    });
    if !exited {
        let _ = daemon.kill();
        panic!(
            "daemon did not stop within 30s of SIGTERM:\n{}",
            daemon_log()
        );
    }
    assert!(
        status.expect("exited").success(),
        "daemon log:\n{}",
        daemon_log()
    );

    cp_ok(&wd, &["verify"]);
    let stats = cp_json(&wd, &["stats"]);
    assert_eq!(stats["snapshot"], false);
    assert_eq!(
        u(dataset(&stats, "gharchive"), "rows"),
        crate::common::data::hour_events(&["2011-02-15-0.json.gz"]) as u64
    );
}
