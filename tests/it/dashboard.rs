//! The Grafana dashboard of the compose `monitoring` profile (`docker/grafana/dashboards/lander.json`) queries only
//! metrics lander exports, and Prometheus scrapes the address the compose lander serves them on. (The check
//! against a running lander's `/metrics` builds on [`dashboard_metric_names`].)

use crate::common::serve::{dashboard_metric_names, docker_dir};
use std::collections::BTreeSet;

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

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let names = dashboard_metric_names();
    let exported: BTreeSet<String> = EXPORTED_METRICS.iter().map(|s| s.to_string()).collect();
    let unknown: Vec<&String> = names.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics lander does not export: {unknown:?}"
    );
    // The panels an operator needs: rows/s, land-to-commit latency, backlog, quarantine, last commit age; and
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
