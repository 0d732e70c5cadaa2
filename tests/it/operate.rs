//! Operating lander: the run summary (`--summary-json`) against bronze, and the metrics endpoint
//! of a running daemon: `/metrics` moves after a file lands and parses with the reference OpenMetrics parser,
//! `/healthz` answers, `/readyz` turns unready while bronze storage fails.

use std::io::Write as _;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::serve::{free_port, http_get, run_args, series_value, Served};
use crate::common::*;

/// A `lander run --mode <mode>` daemon over `w` ([`run_args`], a 200 ms micro-batch interval) with `env`, serving
/// metrics.
fn start(w: &Workdir, mode: &str, env: &[(&str, &str)]) -> Served {
    let mut args = run_args(mode, w.location_args());
    args.extend(["--interval", "200ms"].map(String::from));
    Served::spawn(w.cmd(), &args, w.path(), env)
}

#[test]
fn summary_json_equals_what_bronze_holds() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    for name in ["2011-02-15-0.json.gz", "2013-02-15-0.json.gz"] {
        w.land(&gharchive(name), "gharchive", name);
    }
    // The same file twice under two names: the second copy's rows are all duplicates.
    let csv = sample("sales/transacciones_ventas.csv");
    w.land(&csv, "sales", "a.csv");
    w.land(&csv, "sales", "b.csv");
    let path = w.path().join("summary.json");
    let stdout = w.run_once(&["--summary-json", path.to_str().expect("utf-8")]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("summary written"))
            .expect("summary is JSON");
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["mode"], "once");
    let rows = |ds: &str| v["datasets"][ds]["rows"].as_u64().expect("rows");
    assert_eq!(
        rows("gharchive") as usize,
        count_rows(&w.bronze().join("gharchive"))
    );
    assert_eq!(
        rows("sales") as usize,
        count_rows(&w.bronze().join("sales"))
    );
    assert_eq!(v["datasets"]["gharchive"]["files"], 2);
    assert_eq!(v["datasets"]["sales"]["files"], 2);
    // Independent count: distinct transaction ids of the CSV (header excluded).
    let text = std::fs::read_to_string(&csv).expect("csv");
    let ids: std::collections::BTreeSet<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .collect();
    assert_eq!(rows("sales"), ids.len() as u64);
    assert_eq!(
        v["datasets"]["sales"]["duplicates"].as_u64(),
        Some(2 * (text.lines().count() as u64 - 1) - ids.len() as u64)
    );
    assert_eq!(
        v["total"]["rows"].as_u64(),
        Some(rows("gharchive") + rows("sales"))
    );
    let parts = parquet_files(&w.bronze().join("gharchive")).len()
        + parquet_files(&w.bronze().join("sales")).len();
    assert_eq!(v["total"]["parts"].as_u64(), Some(parts as u64));
    assert!(stdout.contains("| dataset"), "summary table:\n{stdout}");

    // A second run has nothing new: the summary says so with zeros, not a missing file.
    w.run_once(&["--summary-json", path.to_str().expect("utf-8")]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("summary")).expect("json");
    assert_eq!(v["total"]["rows"], 0);
    assert_eq!(v["datasets"]["gharchive"]["rows"], 0);
}

#[test]
fn metrics_move_after_a_file_lands_and_parse_as_openmetrics() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let events = crate::common::data::hour_events(&["2011-02-15-0.json.gz"]) as f64;
    let w = Workdir::new();
    std::fs::create_dir_all(w.landing().join("gharchive")).expect("mkdir");
    let d = start(&w, "continuous", &[]);
    let rows = "lander_rows_written_total{dataset=\"gharchive\"}";
    assert_eq!(d.value(rows), 0.0);
    assert_eq!(d.get("/readyz").map(|r| r.0), Some(200));
    w.land(
        &gharchive("2011-02-15-0.json.gz"),
        "gharchive",
        "2011-02-15-0.json.gz",
    );
    assert!(
        wait_until(Duration::from_secs(30), || d.value(rows) == events),
        "rows never reached {events}; log:\n{}",
        d.log()
    );
    let (_, body) = d.get("/metrics").expect("metrics");
    let l = "{dataset=\"gharchive\"}";
    assert_eq!(
        series_value(&body, &format!("lander_files_ingested_total{l}")),
        1.0
    );
    assert_eq!(
        series_value(&body, &format!("lander_batches_committed_total{l}")),
        1.0
    );
    assert_eq!(
        series_value(&body, &format!("lander_land_to_commit_seconds_count{l}")),
        1.0
    );
    assert!(series_value(&body, &format!("lander_last_commit_timestamp_seconds{l}")) > 1.7e9);
    assert_eq!(
        series_value(&body, &format!("lander_backlog_files{l}")),
        0.0
    );
    assert_eq!(
        series_value(&body, &format!("lander_dedup_keys{l}")),
        events
    );
    assert_eq!(
        series_value(&body, &format!("lander_read_bytes_total{l}")),
        std::fs::metadata(gharchive("2011-02-15-0.json.gz"))
            .expect("stat")
            .len() as f64
    );

    // The reference parser (Prometheus' own Python client) accepts the exposition.
    let script = "import sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        names = sorted(f.name for f in text_string_to_metric_families(sys.stdin.read()))\n\
        print('\\n'.join(names))\n";
    let mut py = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    py.stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write");
    let out = py.wait_with_output().expect("python3 runs");
    assert!(
        out.status.success(),
        "the OpenMetrics parser rejected /metrics (is prometheus-client installed? .ci/run installs it): {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families = String::from_utf8_lossy(&out.stdout);
    for name in [
        "lander_rows_written",
        "lander_files_ingested",
        "lander_batch_duration_seconds",
        "lander_land_to_commit_seconds",
        "lander_backlog_bytes",
        "lander_dataset_failing",
    ] {
        assert!(
            families.lines().any(|l| l == name),
            "{name} missing from the parsed families:\n{families}"
        );
    }
    assert_eq!(d.get("/nope").map(|r| r.0), Some(404));

    // A file with a corrupt line: the good line lands, the bad one is counted as quarantined.
    let good = crate::common::data::sample_lines("2015-01-01-0.json.gz", 1);
    let mut bytes = good[0].clone();
    bytes.extend_from_slice(b"\n{not json\n");
    w.land_bytes("gharchive", "bad.json", &bytes);
    let q = "lander_records_quarantined_total{dataset=\"gharchive\"}";
    assert!(
        wait_until(Duration::from_secs(30), || d.value(q) == 1.0),
        "quarantined: {}; log:\n{}",
        d.value(q),
        d.log()
    );
    assert_eq!(d.value(rows), events + 1.0);
    assert_eq!(
        d.value("lander_files_ingested_total{dataset=\"gharchive\"}"),
        2.0
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn readyz_turns_unready_while_bronze_fails() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    std::fs::create_dir_all(w.landing().join("gharchive")).expect("mkdir");
    let d = start(
        &w,
        "continuous",
        &[("LANDER_FAIL_STORE", "write:1-1000000")],
    );
    assert_eq!(d.get("/readyz").map(|r| r.0), Some(200), "{}", d.log());
    w.land(
        &gharchive("2011-02-15-0.json.gz"),
        "gharchive",
        "2011-02-15-0.json.gz",
    );
    let mut last = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            last = d.get("/readyz");
            last.as_ref()
                .is_some_and(|(c, b)| *c == 503 && b.contains("dataset gharchive"))
        }),
        "readyz never turned unready: {last:?}; log:\n{}",
        d.log()
    );
    assert_eq!(d.get("/healthz").map(|r| r.0), Some(200));
    assert!(d.value("lander_batches_failed_total{dataset=\"gharchive\"}") >= 1.0);
    assert_eq!(
        d.value("lander_dataset_failing{dataset=\"gharchive\"}"),
        1.0
    );
    assert_eq!(count_rows(&w.bronze().join("gharchive")), 0);
}

/// `run --mode continuous --fetch gharchive`: one process fetches each published hour from an archive mirror (a
/// real HTTP server: Python's http.server over a directory of hour files) and ingests it; the fetch metrics are on
/// the same endpoint.
#[test]
fn continuous_with_fetch_gharchive_fetches_and_ingests_each_hour() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    // No landing yet: `run --fetch` creates it, as `fetch` does.
    std::fs::remove_dir_all(w.landing()).expect("rm landing");
    // Two ended hours, named as the archive names them, holding the two 2015 sample hours (on a plain clone the
    // bundled 2015-01-01-0 prefix and its stand-in for hour 1, `data::hour_bytes`).
    let samples = ["2015-01-01-0.json.gz", "2015-01-01-1.json.gz"];
    let events = crate::common::data::hour_events_of(&samples);
    let mirror = w.path().join("mirror");
    std::fs::create_dir_all(&mirror).expect("mkdir");
    let now = chrono::Utc::now();
    let hour = |back: i64| {
        (now - chrono::TimeDelta::hours(back))
            .format("%Y-%m-%d-%-H")
            .to_string()
    };
    let first = now - chrono::TimeDelta::hours(3);
    for (back, sample) in [3, 2].into_iter().zip(samples) {
        std::fs::write(
            mirror.join(format!("{}.json.gz", hour(back))),
            crate::common::data::hour_bytes(sample),
        )
        .expect("write");
    }
    let port = free_port();
    let mut server = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(&mirror)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m http.server");
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(&mut server);
    assert!(
        wait_until(Duration::from_secs(20), || http_get(port, "/").is_some()),
        "the mirror did not start"
    );

    let mut args = run_args("continuous", w.location_args());
    for a in [
        "--fetch",
        "gharchive",
        "--fetch-from",
        &first.format("%Y-%m-%dT%H").to_string(),
        "--fetch-base-url",
        &format!("http://127.0.0.1:{port}"),
        "--fetch-poll-interval",
        "1s",
    ] {
        args.push(a.to_string());
    }
    let d = Served::spawn(w.cmd(), &args, w.path(), &[]);
    let rows = "lander_rows_written_total{dataset=\"gharchive\"}";
    assert!(
        wait_until(Duration::from_secs(60), || d.get("/metrics").is_some()
            && d.value(rows) == events as f64),
        "rows: {}; log:\n{}",
        d.value(rows),
        d.log()
    );
    assert_eq!(count_rows(&w.bronze().join("gharchive")), events);
    for back in [3, 2] {
        assert!(w
            .landing()
            .join("gharchive")
            .join(format!("{}.json.gz", hour(back)))
            .is_file());
    }
    assert_eq!(
        d.value("lander_fetch_downloads_total{source=\"gharchive\"}"),
        2.0
    );
    let bytes: u64 = samples
        .iter()
        .map(|s| crate::common::data::hour_bytes(s).len() as u64)
        .sum();
    assert_eq!(
        d.value("lander_fetch_bytes_total{source=\"gharchive\"}"),
        bytes as f64
    );
}

#[test]
fn fetch_with_a_bounded_mode_is_a_usage_error() {
    let w = Workdir::new();
    let mut args = vec!["run".to_string(), "--fetch".into(), "gharchive".into()];
    args.extend(w.location_args());
    let out = w.cmd().args(&args).output().expect("spawn");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mode continuous"));
}

/// Every metric the Grafana dashboard (`docker/grafana/dashboards/lander.json`) queries is exported by a running
/// lander, with a `dataset` label, before any file landed: the dashboard cannot silently go blank.
#[test]
fn every_metric_the_dashboard_queries_is_exported_by_a_running_daemon() {
    let w = Workdir::new();
    std::fs::create_dir_all(w.landing().join("gharchive")).expect("mkdir");
    let d = start(&w, "continuous", &[]);
    let (code, body) = d.get("/metrics").expect("metrics");
    assert_eq!(code, 200);
    let names = crate::common::serve::dashboard_metric_names();
    assert!(names.len() >= 8, "{names:?}");
    for name in &names {
        // A histogram is queried by its base name: its `_bucket` series must be there.
        let series = [name.clone(), format!("{name}_bucket")];
        assert!(
            body.lines().any(|l| series
                .iter()
                .any(|s| l.starts_with(&format!("{s}{{")) && l.contains("dataset=\"gharchive\""))),
            "the dashboard queries {name}, which the daemon does not export:\n{body}"
        );
    }
}
