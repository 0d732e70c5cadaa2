//! `lander config check`: a typo in `lander.toml` is refused with a "did you mean" hint (exit 2); the effective
//! value of a key set by a `LANDER_*` variable and of one set by a flag names its source; `run` honours the
//! variables too.

use serde_json::Value;

use crate::common::*;

fn value<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["values"]
        .as_array()
        .expect("values")
        .iter()
        .find(|v| v["key"] == key)
        .unwrap_or_else(|| panic!("no key {key} in {report:#}"))
}

#[test]
fn config_check_rejects_a_typo_with_a_hint() {
    let wd = Workdir::new();
    std::fs::write(wd.path().join("lander.toml"), "settle_tim = \"2s\"\n").expect("write");
    let out = wd.run(&["config", "check", "-c", "lander.toml"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown key `settle_tim` (did you mean `settle_time`?)"),
        "{err}"
    );
    // A run with the same file fails the same way.
    let out = wd.run(&["run", "-c", "lander.toml"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `settle_time`?"));
    // Inside a dataset table too.
    std::fs::write(
        wd.path().join("lander.toml"),
        "[datasets.shop]\nformat = \"csv\"\nevent_time = \"ts\"\ndelimitr = \";\"\n",
    )
    .expect("write");
    let out = wd.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown key `datasets.shop.delimitr` (did you mean `delimiter`?)"),
        "{err}"
    );
}

#[test]
fn config_check_shows_where_values_come_from() {
    let wd = Workdir::new();
    std::fs::write(
        wd.path().join("lander.toml"),
        "bronze = \"out/bronze\"\ninterval = \"30s\"\n",
    )
    .expect("write");
    let out = wd
        .cmd()
        .args([
            "config",
            "check",
            "--json",
            "--max-files-per-batch",
            "7",
            "--interval",
            "5s",
        ])
        .env("LANDER_SETTLE_TIME", "3s")
        .env("LANDER_LATEST_FIRST", "true")
        .output()
        .expect("spawn");
    assert_success(&out, &["config", "check"], wd.path());
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["config_file"], "lander.toml");
    let settle = value(&v, "settle_time");
    assert_eq!(
        (&settle["value"], &settle["source"]),
        (&Value::from("\"3s\""), &Value::from("env"))
    );
    assert_eq!(settle["origin"], "LANDER_SETTLE_TIME");
    assert_eq!(value(&v, "latest_first")["value"], "true");
    let max = value(&v, "max_files_per_batch");
    assert_eq!(
        (&max["value"], &max["source"]),
        (&Value::from("7"), &Value::from("flag"))
    );
    assert_eq!(max["origin"], "--max-files-per-batch");
    // A flag beats the file; the file beats the default.
    assert_eq!(value(&v, "interval")["value"], "\"5s\"");
    assert_eq!(value(&v, "interval")["source"], "flag");
    assert_eq!(value(&v, "bronze")["source"], "file");
    assert_eq!(value(&v, "landing")["source"], "default");
    assert_eq!(value(&v, "datasets.gharchive")["source"], "built-in");

    // The text form says the same.
    let out = wd
        .cmd()
        .args(["config", "check", "--max-files-per-batch", "7"])
        .env("LANDER_SETTLE_TIME", "3s")
        .output()
        .expect("spawn");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("settle_time") && l.ends_with("env (LANDER_SETTLE_TIME)")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("max_files_per_batch")
                && l.ends_with("flag (--max-files-per-batch)")),
        "{text}"
    );
    assert!(text.contains("ok: the configuration is valid"), "{text}");
}

#[test]
fn lander_variables_reach_run_and_bad_ones_are_refused() {
    let wd = Workdir::new();
    // `run` takes landing from the variable: a missing directory is a usage error naming it.
    let out = wd
        .cmd()
        .args(["run", "--mode", "once"])
        .env("LANDER_LANDING", "no/such/landing")
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no/such/landing"),
        "{out:?}"
    );
    let out = wd
        .cmd()
        .args(["config", "check"])
        .env("LANDER_PARALLELISM", "many")
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("LANDER_PARALLELISM"),
        "{out:?}"
    );
}

#[test]
fn version_names_the_commit_and_build_date() {
    let wd = Workdir::new();
    let text = wd.run_ok(&["--version"]);
    // `lander 0.1.0 (0123456789ab[-dirty], built 2026-11-23)`, or `unknown` outside a git checkout.
    let inner = text
        .trim()
        .strip_prefix(&format!("lander {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected --version: {text}"));
    let (commit, date) = inner.split_once(", built ").expect("commit and date");
    let hash = commit.strip_suffix("-dirty").unwrap_or(commit);
    assert!(
        hash == "unknown" || (hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit())),
        "{text}"
    );
    assert!(
        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(),
        "{text}"
    );
    // In a git checkout the hash names a real commit.
    let in_git = std::process::Command::new("git")
        .args(["cat-file", "-e", &format!("{hash}^{{commit}}")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status();
    if hash != "unknown" {
        assert!(in_git.is_ok_and(|s| s.success()), "{hash} is not a commit");
    }
}

/// Durations are shown as an operator writes them, whichever source set them (file, variable, flag, default),
/// in the text and the JSON output; never humantime's `1month 4days 13h 26m 24s` for `35d`.
#[test]
fn config_check_prints_durations_as_written() {
    let wd = Workdir::new();
    std::fs::write(
        wd.path().join("lander.toml"),
        "dedup_horizon = \"35d\"\nmax_file_age = \"400d\"\n",
    )
    .expect("write");
    let args = ["config", "check", "--interval", "90s"];
    let run = |json: bool| {
        let mut a = args.to_vec();
        if json {
            a.push("--json");
        }
        let out = wd
            .cmd()
            .args(&a)
            .env("LANDER_POLL_INTERVAL", "36h")
            .output()
            .expect("spawn");
        assert_success(&out, &a, wd.path());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let report: Value = serde_json::from_str(&run(true)).expect("json");
    let text = run(false);
    for (key, shown, source) in [
        ("dedup_horizon", "35d", "file"),
        ("max_file_age", "400d", "file"),
        ("poll_interval", "36h", "env"),
        ("interval", "90s", "flag"),
        ("settle_time", "1s", "default"),
        ("max_batch_delay", "50ms", "default"),
        ("partial_line_timeout", "10m", "default"),
        ("event_time_max_future", "1d", "default"),
    ] {
        let v = value(&report, key);
        assert_eq!(v["value"], format!("\"{shown}\""), "{key}: {v}");
        assert_eq!(v["source"], source, "{key}: {v}");
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in\n{text}"));
        assert!(line.contains(&format!("\"{shown}\"")), "{line}");
    }
    assert!(!text.contains("month"), "{text}");
}

/// `lander config check` with `toml` as the config; returns stderr after asserting exit 2.
fn refused(toml: &str) -> String {
    let wd = Workdir::new();
    std::fs::write(wd.path().join("lander.toml"), toml).expect("write");
    let out = wd.run(&["config", "check", "-c", "lander.toml"]);
    assert_eq!(out.status.code(), Some(2), "{toml}\n{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A wrong type inside a dataset table names the key and its own line, wherever the key sits in the table and
/// whatever the table's position in the file.
#[test]
fn a_wrong_type_in_a_dataset_table_points_at_the_key_line() {
    let cases = [
        (
            "[datasets.t]\nformat = \"csv\"\nevent_time = \"ts\"\ninfer_rows = \"many\"\n",
            "datasets.t.infer_rows",
            4,
        ),
        (
            "settle_time = \"1s\"\n\n[datasets.shop]\nhas_header = 1\nformat = \"csv\"\nevent_time = \"ts\"\n",
            "datasets.shop.has_header",
            4,
        ),
        (
            "[datasets.a]\nformat = \"csv\"\nevent_time = \"ts\"\n\n[datasets.b]\nformat = \"csv\"\nevent_time = \"ts\"\nkey = \"id\"\n",
            "datasets.b.key",
            8,
        ),
    ];
    for (toml, key, line) in cases {
        let err = refused(toml);
        assert!(
            err.contains(&format!("line {line}: `{key}`: invalid type")),
            "{toml}\n{err}"
        );
    }
}

/// An unknown format is named with the accepted ones (not reported as an unknown CSV key).
#[test]
fn an_unknown_format_names_the_format_and_the_accepted_ones() {
    for format in ["parquet", "CSV", "json"] {
        let err = refused(&format!(
            "[datasets.t]\nformat = \"{format}\"\nevent_time = \"ts\"\n"
        ));
        assert!(
            err.contains(&format!(
                "line 2: `datasets.t.format`: unknown format \"{format}\" (accepted: \"csv\", \"gharchive\")"
            )),
            "{err}"
        );
        assert!(!err.contains("unknown key"), "{err}");
    }
}

/// Redeclaring the built-in `gharchive` dataset as CSV is refused with the fix (another name).
#[test]
fn redeclaring_gharchive_as_csv_is_refused_with_the_fix() {
    let err = refused("[datasets.gharchive]\nformat = \"csv\"\nevent_time = \"created_at\"\n");
    assert!(
        err.contains(
            "line 2: `datasets.gharchive.format`: `gharchive` is the built-in GH Archive dataset"
        ),
        "{err}"
    );
    assert!(err.contains("give this dataset another name"), "{err}");
    // Declaring it with its own format stays accepted.
    let wd = Workdir::new();
    std::fs::write(
        wd.path().join("lander.toml"),
        "[datasets.gharchive]\nformat = \"gharchive\"\n",
    )
    .expect("write");
    wd.run_ok(&["config", "check", "-c", "lander.toml"]);
}

/// Compaction keys in a dataset table: `config check` shows them in that dataset's table, a dataset's bad value
/// is refused naming the dataset (the top-level rule, applied to its own values over the top level's), and a
/// wrong type points at the key's line.
#[test]
fn dataset_compaction_keys_are_shown_and_checked() {
    let wd = Workdir::new();
    std::fs::write(
        wd.path().join("lander.toml"),
        "compact_min_files = 8\n\n[datasets.gharchive]\nformat = \"gharchive\"\ncompact_min_files = 0\n\
         compact_quiet = \"2m\"\ntarget_file_bytes = 1048576\n",
    )
    .expect("write");
    let out = wd.run_ok(&["config", "check", "--json", "-c", "lander.toml"]);
    let v: Value = serde_json::from_str(&out).expect("JSON");
    let gh = value(&v, "datasets.gharchive");
    assert_eq!(gh["source"], "file");
    let table: toml::Table =
        toml::from_str(&format!("t = {}", gh["value"].as_str().expect("text"))).expect("toml");
    assert_eq!(
        table["t"]["compact_min_files"].as_integer(),
        Some(0),
        "{gh}"
    );
    assert_eq!(table["t"]["compact_quiet"].as_str(), Some("2m"), "{gh}");
    assert_eq!(table["t"]["target_file_bytes"].as_integer(), Some(1048576));
    assert_eq!(value(&v, "compact_min_files")["value"], "8");
    // `sales` has no keys of its own: its table is the built-in one, without them.
    let sales = value(&v, "datasets.sales")["value"].as_str().expect("text");
    assert!(!sales.contains("compact"), "{sales}");

    let err = refused(
        "compact_max_files = 20\n[datasets.gharchive]\nformat = \"gharchive\"\ncompact_min_files = 30\n",
    );
    assert!(
        err.contains(
            "datasets.gharchive: compact_max_files (20) must be at least compact_min_files (30)"
        ),
        "{err}"
    );
    let err = refused("[datasets.gharchive]\nformat = \"gharchive\"\ncompact_min_files = 1\n");
    assert!(
        err.contains("datasets.gharchive: compact_min_files must be at least 2"),
        "{err}"
    );
    let err = refused("[datasets.gharchive]\nformat = \"gharchive\"\ncompact_quiet = 5\n");
    assert!(
        err.contains("line 3: `datasets.gharchive.compact_quiet`: invalid type"),
        "{err}"
    );
}
