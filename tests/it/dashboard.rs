//! The Grafana dashboard of the compose `monitoring` profile (`docker/grafana/dashboards/lander.json`) queries only
//! metrics lander exports, and Prometheus scrapes the address the compose lander serves them on. (The check
//! against a running lander's `/metrics` builds on [`dashboard_metric_names`].)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every metric lander's `/metrics` exports, by base name (histograms without `_bucket`/`_sum`/`_count`).
pub const EXPORTED_METRICS: [&str; 16] = [
    // counters, label `dataset`
    "lander_rows_written_total",
    "lander_files_ingested_total",
    "lander_records_quarantined_total",
    "lander_duplicates_dropped_total",
    "lander_batches_committed_total",
    "lander_files_failed_total",
    // histograms, label `dataset`
    "lander_batch_duration_seconds",
    "lander_land_to_commit_seconds",
    // gauges, label `dataset`
    "lander_backlog_files",
    "lander_backlog_bytes",
    "lander_last_commit_timestamp_seconds",
    "lander_dedup_keys",
    // fetch counters, label `source`
    "lander_fetch_downloads_total",
    "lander_fetch_retries_total",
    "lander_fetch_failures_total",
    "lander_fetch_bytes_total",
];

/// The histograms of [`EXPORTED_METRICS`]: a PromQL name `<histogram>_bucket|_sum|_count` refers to one of them.
const HISTOGRAMS: [&str; 2] = [
    "lander_batch_duration_seconds",
    "lander_land_to_commit_seconds",
];

fn docker_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docker")
}

/// Every PromQL string of a Grafana dashboard: panel targets' `expr` and template variables' `query`/`definition`.
fn promql_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match v {
                    serde_json::Value::String(s)
                        if matches!(k.as_str(), "expr" | "query" | "definition") =>
                    {
                        out.push(s.clone())
                    }
                    _ => promql_strings(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| promql_strings(v, out)),
        _ => {}
    }
}

/// Every `lander_*` metric name the dashboard queries, with a histogram's `_bucket`/`_sum`/`_count` series mapped
/// to the histogram's base name.
pub fn dashboard_metric_names() -> BTreeSet<String> {
    let path = docker_dir().join("grafana/dashboards/lander.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut exprs = Vec::new();
    promql_strings(&json, &mut exprs);
    let mut names = BTreeSet::new();
    for expr in exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("lander_") {
            // A metric name starts the token: not the tail of a longer identifier.
            let preceded = rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
            let tail = &rest[at..];
            let len = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            if !preceded {
                let name = &tail[..len];
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| HISTOGRAMS.contains(b)))
                    .unwrap_or(name);
                names.insert(base.to_string());
            }
            rest = &tail[len..];
        }
    }
    names
}

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let names = dashboard_metric_names();
    let exported: BTreeSet<String> = EXPORTED_METRICS.iter().map(|s| s.to_string()).collect();
    let unknown: Vec<&String> = names.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics lander does not export: {unknown:?}"
    );
    // The panels issue 10 asks for: rows/s, land-to-commit latency, backlog, quarantine, last commit age; and
    // those operators need next to them: duplicates dropped and failed files.
    for needed in [
        "lander_rows_written_total",
        "lander_land_to_commit_seconds",
        "lander_backlog_files",
        "lander_backlog_bytes",
        "lander_records_quarantined_total",
        "lander_last_commit_timestamp_seconds",
        "lander_duplicates_dropped_total",
        "lander_files_failed_total",
    ] {
        assert!(
            names.contains(needed),
            "no panel queries {needed}: {names:?}"
        );
    }
}

#[test]
fn the_metric_name_extraction_maps_histogram_series_to_their_base() {
    let names = dashboard_metric_names();
    assert!(names.contains("lander_land_to_commit_seconds"), "{names:?}");
    assert!(
        !names.iter().any(|n| n.ends_with("_bucket")),
        "histogram series left unmapped: {names:?}"
    );
}

/// Prometheus scrapes the port the compose lander serves `/metrics` on, and Grafana gets the dashboard and the
/// data source uid the dashboard names.
#[test]
fn prometheus_and_grafana_point_at_lander() {
    let dir = docker_dir();
    let read = |p: &str| {
        std::fs::read_to_string(dir.join(p)).unwrap_or_else(|e| panic!("docker/{p}: {e}"))
    };
    let compose = read("docker-compose.yml");
    // The lander service's command: the continuous run on HDFS (lander-s3 runs on s3://).
    let command = compose
        .lines()
        .map(str::trim)
        .find(|l| {
            l.starts_with(r#"command: ["run", "--mode", "continuous", "--landing", "hdfs://"#)
        })
        .expect("the lander service's command");
    assert!(
        command.contains(r#""--metrics-addr", "0.0.0.0:9464""#),
        "the compose lander serves metrics on 9464: {command}"
    );
    assert!(read("prometheus/prometheus.yml").contains(r#"targets: ["lander:9464"]"#));
    let datasource = read("grafana/provisioning/datasources/prometheus.yml");
    assert!(
        datasource.contains("uid: prometheus")
            && datasource.contains("url: http://prometheus:9090")
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("grafana/dashboards/lander.json")).expect("dashboard JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    for p in panels {
        assert_eq!(p["datasource"]["uid"], "prometheus", "panel {}", p["title"]);
    }
    assert!(read("grafana/provisioning/dashboards/lander.yml")
        .contains("path: /var/lib/grafana/dashboards"));
    assert!(compose.contains("./grafana/dashboards:/var/lib/grafana/dashboards:ro"));
}
