//! Exit codes, summaries and messages a scheduler can trust: a bounded run interrupted by a real
//! signal exits 128 + the signal and says what it left unread; `--summary-json` is written when a run cannot
//! start; a closed stdout (`| head -1`) is not a failure; each cause of an error is printed once.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::data::distinct_events;
use crate::common::*;

/// Copies of each sample hour: enough input (16 files, 41 MB) that a batch is still being staged when the
/// signal lands.
const COPIES: usize = 8;

/// The two 2015 hours: one UTC day, so every copy is within the dedup horizon of every other (copies of the
/// 2011 hour after a 2015 commit would lie years behind the watermark and land again, by design).
const HOURS: [&str; 2] = ["2015-01-01-0.json.gz", "2015-01-01-1.json.gz"];

/// Lands `COPIES` copies of the 2015 hours, each copy in its own subdirectory (same file names: the copies'
/// events are duplicates, so a complete ingestion holds each hour's distinct events once).
fn land_copies(w: &Workdir) -> usize {
    for c in 1..=COPIES {
        for f in HOURS {
            w.land(&gharchive(f), "gharchive", &format!("c{c}/{f}"));
        }
    }
    COPIES * HOURS.len()
}

fn sample_events() -> usize {
    let paths: Vec<_> = HOURS.iter().map(|f| gharchive(f)).collect();
    distinct_events(&paths.iter().map(|p| p.as_path()).collect::<Vec<_>>())
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no summary at {}: {e}", path.display()));
    serde_json::from_str(&text).expect("summary is JSON")
}

fn checkpoint_files(w: &Workdir) -> usize {
    if !w.checkpoint().exists() {
        return 0;
    }
    let mut args = vec!["checkpoint".to_string(), "list".into(), "--json".into()];
    args.extend(w.location_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let v: Value = serde_json::from_str(&w.run_ok(&refs)).expect("list --json");
    v.as_array().expect("array").len()
}

/// Runs `mode` over many files, sends `signal` once the log shows `when`, and checks the outcome: exit
/// 128 + signal, a summary with status `interrupted` whose committed + unread files are all the files, as many
/// committed in the checkpoint and rows in bronze as it says, and no "nothing new"; then the next run lands
/// the rest, and bronze holds every distinct event once.
fn interrupt(mode: &str, signal: i32, when: &str, extra: &[&str]) -> (u64, u64) {
    let w = Workdir::new();
    let total = land_copies(&w) as u64;
    let summary = w.path().join("summary.json");
    let mut args: Vec<String> = [
        "run",
        "--mode",
        mode,
        "--settle-time",
        "0s",
        "--parallelism",
        "1",
    ]
    .map(String::from)
    .to_vec();
    args.extend(w.location_args());
    args.extend(["--summary-json".into(), summary.display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = Background::start(&w, "run", &args);
    run.wait_for_log(when, Duration::from_secs(60));
    run.signal(signal);
    let (status, stdout, stderr) = run.wait();
    let name = if signal == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    assert_eq!(
        status.code(),
        Some(128 + signal),
        "{mode} interrupted by {name}: {status}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(!stdout.contains("nothing new"), "{stdout}");
    let v = read_json(&summary);
    assert_eq!(v["status"], "interrupted", "{v}");
    assert_eq!(v["interrupted_by"], name, "{v}");
    assert!(v.get("error").is_none(), "{v}");
    let committed = v["total"]["files"].as_u64().expect("files");
    let unread = v["total"]["files_unread"].as_u64().expect("files_unread");
    assert_eq!(committed + unread, total, "{v}");
    assert!(unread > 0, "{v}");
    assert_eq!(v["datasets"]["gharchive"]["files_unread"], unread, "{v}");
    assert!(
        stderr.contains(&format!(
            "interrupted by {name}: {committed} file(s) committed, {unread} file(s) left unread for the next run"
        )),
        "{stderr}"
    );
    assert_eq!(checkpoint_files(&w) as u64, committed);
    let rows = v["total"]["rows"].as_u64().expect("rows");
    assert_eq!(count_rows(&w.bronze().join("gharchive")) as u64, rows);

    // The next run reads what was left, and the whole is exactly one clean ingestion.
    let again = w.run_once(&[]);
    assert!(!again.contains("nothing new"), "{again}");
    assert_eq!(checkpoint_files(&w) as u64, total);
    assert_eq!(count_rows(&w.bronze().join("gharchive")), sample_events());
    (committed, unread)
}

#[test]
fn sigint_during_once_abandons_the_batch_exits_130_and_says_what_is_unread() {
    let Some(_) = require_shared_data() else {
        return;
    };
    let (committed, _) = interrupt(
        "once",
        libc::SIGINT,
        "ingesting everything new as one batch",
        &[],
    );
    assert_eq!(committed, 0, "the one batch was abandoned");
}

#[test]
fn sigterm_between_available_now_batches_exits_143_and_the_next_run_reads_the_rest() {
    let Some(_) = require_shared_data() else {
        return;
    };
    let (committed, _) = interrupt(
        "available-now",
        libc::SIGTERM,
        "batch committed",
        &["--max-files-per-batch", "2"],
    );
    assert!(committed >= 2, "the first batch stays committed");
}

/// The workdir's location flags with `landing`/`bronze` replaced.
fn args_with(
    w: &Workdir,
    mode: &str,
    landing: &Path,
    bronze: &Path,
    summary: &Path,
) -> Vec<String> {
    let mut args: Vec<String> = ["run", "--mode", mode].map(String::from).to_vec();
    args.extend([
        "--landing".into(),
        landing.display().to_string(),
        "--bronze".into(),
        bronze.display().to_string(),
        "--checkpoint".into(),
        w.checkpoint().display().to_string(),
        "--summary-json".into(),
        summary.display().to_string(),
    ]);
    args
}

/// No `(os error N)` cause, and no `: `-separated part of the message, appears twice.
fn assert_each_cause_once(stderr: &str) {
    for line in stderr.lines().filter(|l| l.starts_with("error: ")) {
        let parts: Vec<&str> = line.split(": ").collect();
        for (i, p) in parts.iter().enumerate() {
            assert!(
                !parts[i + 1..].contains(p) || p.len() < 4,
                "{p:?} printed twice: {line}"
            );
        }
        assert!(line.matches("(os error").count() <= 1, "{line}");
    }
}

#[test]
fn a_run_that_cannot_start_writes_a_failed_summary_and_names_the_cause_once() {
    let w = Workdir::new();
    let file = w.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write");
    let cases: [(&str, &Path, &Path, i32, &[&str]); 4] = [
        (
            "once",
            &w.path().join("no-such-landing"),
            &w.bronze(),
            2,
            &["landing", "no-such-landing", "does not exist"],
        ),
        (
            "available-now",
            &w.landing(),
            &file,
            2,
            &["bronze", "a-file", "is not a directory"],
        ),
        (
            "once",
            &w.landing(),
            &file.join("below-a-file"),
            2,
            &["bronze", "below-a-file", "a-file is not a directory"],
        ),
        (
            "once",
            &file,
            &w.bronze(),
            2,
            &["a-file", "not a directory"],
        ),
    ];
    // Errors whose message embeds their source (which `source()` returns too): the cause appears once.
    let below = file.join("x").display().to_string();
    for (args, code, needle) in [
        (
            vec!["run", "--config", "missing.toml"],
            2,
            "cannot read config file missing.toml",
        ),
        (
            vec![
                "fetch",
                "gharchive",
                "--from",
                "2015-01-01T00",
                "--to",
                "2015-01-01T00",
            ],
            1,
            "cannot open local directory",
        ),
    ] {
        let mut args: Vec<&str> = args;
        if args[0] == "fetch" {
            args.extend(["--landing", &below, "--base-url", "http://127.0.0.1:9"]);
        }
        let out = w.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert!(stderr.contains("(os error"), "{stderr}");
        assert_each_cause_once(&stderr);
    }
    // The checkpoint directory: a file, and below a file.
    for (i, dir) in [file.clone(), file.join("state")].iter().enumerate() {
        let mut args = w.once_args();
        let at = args.iter().position(|a| a == "--checkpoint").expect("flag") + 1;
        args[at] = dir.display().to_string();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = w.run(&refs);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        let want = if i == 0 {
            format!("checkpoint {} is not a directory", file.display())
        } else {
            format!("{} is not a directory", file.display())
        };
        assert!(stderr.contains(&want), "{stderr}");
        assert_each_cause_once(&stderr);
    }
    for (i, (mode, landing, bronze, code, needles)) in cases.into_iter().enumerate() {
        let summary = w.path().join(format!("summary-{i}.json"));
        let args = args_with(&w, mode, landing, bronze, &summary);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = w.run(&refs);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "case {i}: {stderr}");
        for n in needles {
            assert!(stderr.contains(n), "case {i}: no {n:?} in {stderr}");
        }
        assert_each_cause_once(&stderr);
        let v = read_json(&summary);
        assert_eq!(v["status"], "failed", "case {i}: {v}");
        assert_eq!(v["mode"], *mode);
        let error = v["error"].as_str().expect("error");
        assert!(stderr.contains(error), "case {i}: {error:?} vs {stderr}");
        assert_eq!(v["landing"], landing.display().to_string());
        assert_eq!(v["total"]["files"], 0);
    }
}

/// Runs `lander <args>` with its stdout into `head -1`; returns (lander's exit code, head's output, stderr).
fn into_head(w: &Workdir, args: &[String]) -> (Option<i32>, String, String) {
    let mut lander = w
        .cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lander");
    let head = Command::new("head")
        .arg("-1")
        .stdin(Stdio::from(lander.stdout.take().expect("stdout")))
        .output()
        .expect("run head");
    let out = lander.wait_with_output().expect("wait");
    (
        out.status.code(),
        String::from_utf8_lossy(&head.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn piping_into_head_never_panics() {
    for _ in 0..4 {
        let w = Workdir::new();
        copy_fixtures(&w);
        let mut args = w.once_args();
        args.extend(["--dataset".into(), "gharchive".into()]);
        let (code, first, stderr) = into_head(&w, &args);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(first.starts_with("gharchive: batch 1 committed"), "{first}");
        let mut list = vec!["checkpoint".to_string(), "list".into()];
        list.extend(w.location_args());
        for _ in 0..3 {
            let (code, first, stderr) = into_head(&w, &list);
            assert_eq!(code, Some(0), "{stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert!(first.starts_with("PATH"), "the table header: {first}");
        }
    }
}

fn copy_fixtures(w: &Workdir) {
    for entry in std::fs::read_dir(fixtures_landing()).expect("fixtures") {
        let dir = entry.expect("entry").path();
        let ds = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        for f in std::fs::read_dir(&dir).expect("dataset dir") {
            let f = f.expect("entry").path();
            let name = f.file_name().expect("name").to_string_lossy().into_owned();
            w.land(&f, &ds, &name);
        }
    }
}

#[test]
fn a_closed_stdout_ends_every_command_cleanly() {
    let w = Workdir::new();
    copy_fixtures(&w);
    let loc = w.location_args();
    let with_loc = |cmd: &[&str]| -> Vec<String> {
        cmd.iter()
            .map(|s| s.to_string())
            .chain(loc.iter().cloned())
            .collect()
    };
    let gh = w.landing().join("gharchive/2015-01-01-0.json.gz");
    let commands: Vec<Vec<String>> = vec![
        w.once_args(),
        w.once_args(),
        with_loc(&["checkpoint", "list"]),
        with_loc(&["checkpoint", "list", "--json"]),
        with_loc(&["checkpoint", "stats"]),
        with_loc(&["checkpoint", "export"]),
        with_loc(&["checkpoint", "show", "1"]),
        with_loc(&["config", "check"]),
        with_loc(&["explain", &gh.display().to_string()]),
        vec![
            "generate".into(),
            "sales".into(),
            "--rows".into(),
            "10".into(),
            "--files".into(),
            "1".into(),
            "--landing".into(),
            w.path().join("generated").display().to_string(),
        ],
    ];
    for args in &commands {
        let out = w
            .cmd()
            .args(args)
            .stdout(closed_stdout())
            .stderr(Stdio::piped())
            .output()
            .expect("spawn");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("error: "), "{args:?}: {stderr}");
    }
    // The run whose summary could not be printed committed everything (the 3 GH Archive hours and the sales
    // CSV; `superstore` is not a default dataset), and the generated file was written.
    assert_eq!(checkpoint_files(&w), 4);
    assert!(count_rows(&w.bronze().join("gharchive")) > 0);
    assert!(
        w.path()
            .join("generated/sales")
            .read_dir()
            .expect("generated")
            .count()
            >= 1
    );
}

/// A file whose modification time lies in the future (a writer's clock ahead, `touch -d`) is named as such,
/// not as "still changing", and is read once that time has passed; a file copied just before the run is still
/// waited for and read.
#[test]
fn a_file_modified_in_the_future_is_reported_as_such() {
    let w = Workdir::new();
    let ahead = std::time::SystemTime::now() + Duration::from_secs(3 * 86_400);
    let src = fixtures_landing().join("gharchive");
    let mut future = Vec::new();
    for name in ["2011-02-15-0.json.gz", "2013-02-15-0.json.gz"] {
        let p = w.land(&src.join(name), "gharchive", name);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .expect("open")
            .set_modified(ahead)
            .expect("set mtime");
        future.push(name);
    }
    w.land(
        &src.join("2015-01-01-0.json.gz"),
        "gharchive",
        "2015-01-01-0.json.gz",
    );
    let mut args = w.once_args();
    let at = args
        .iter()
        .position(|a| a == "--settle-time")
        .expect("flag")
        + 1;
    args[at] = "1s".into();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = w.run(&refs);
    assert_success(&out, &refs, w.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warning = stderr
        .lines()
        .find(|l| l.contains("files modified in the future"))
        .unwrap_or_else(|| panic!("no warning in\n{stderr}"));
    for name in &future {
        assert!(
            warning.contains(&format!("gharchive/{name} (modified ")),
            "{warning}"
        );
    }
    assert!(!stderr.contains("still changing"), "{stderr}");
    // Only the file with an honest time was read.
    assert_eq!(checkpoint_files(&w), 1);
}
