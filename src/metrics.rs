//! Metrics: the names, types, labels and help texts of everything lander counts, and nothing else.
//!
//! One process-wide registry ([`get`]); stages record into it directly and `lander run --metrics-addr` serves
//! it in the Prometheus text format ([`encode`], via `prometheus-client`). Counters get the `_total` suffix from
//! the encoder; histograms add `_bucket`, `_sum` and `_count`. Every series is labelled `dataset` (pipeline) or
//! `source` (fetch). The Grafana dashboard in `docker/grafana/` queries these names; a test checks that the
//! running daemon exports every one it uses.

use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The `dataset` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatasetLabel {
    /// Dataset name (first directory level of landing).
    pub dataset: String,
}

/// The `source` label of fetch metrics (`gharchive`, `url`, `s3`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// What is fetched.
    pub source: String,
}

type Hist = Family<DatasetLabel, Histogram, fn() -> Histogram>;

/// Every metric lander exports.
pub struct Metrics {
    /// `lander_rows_written_total`: rows published to bronze.
    pub rows_written: Family<DatasetLabel, Counter>,
    /// `lander_files_ingested_total`: landing files (or appended ranges) committed.
    pub files_ingested: Family<DatasetLabel, Counter>,
    /// `lander_records_quarantined_total`: records sent to quarantine (whole failed files count one).
    pub records_quarantined: Family<DatasetLabel, Counter>,
    /// `lander_duplicates_dropped_total`: records dropped as duplicates.
    pub duplicates_dropped: Family<DatasetLabel, Counter>,
    /// `lander_batches_committed_total`.
    pub batches_committed: Family<DatasetLabel, Counter>,
    /// `lander_batches_failed_total`: batch attempts that failed on storage and were rolled back.
    pub batches_failed: Family<DatasetLabel, Counter>,
    /// `lander_files_failed_total`: files rejected whole (corrupt, over a limit) and quarantined.
    pub files_failed: Family<DatasetLabel, Counter>,
    /// `lander_input_bytes_total`: landing bytes committed.
    pub input_bytes: Family<DatasetLabel, Counter>,
    /// `lander_read_bytes_total`: landing bytes read so far (progress; committed or not).
    pub read_bytes: Family<DatasetLabel, Counter>,
    /// `lander_records_read_total`: records decoded so far, before dedup (progress; committed or not).
    pub records_read: Family<DatasetLabel, Counter>,
    /// `lander_listing_skipped_entries_total`: landing entries skipped by listings (symlinks, unreadable).
    pub listing_skipped: Family<DatasetLabel, Counter>,
    /// `lander_batch_duration_seconds`: from planning a batch to its commit.
    pub batch_duration: Hist,
    /// `lander_land_to_commit_seconds`: from a file's last modification in landing to its commit.
    pub land_to_commit: Hist,
    /// `lander_backlog_files`: files new or changed in landing and not committed yet (last listing).
    pub backlog_files: Family<DatasetLabel, Gauge>,
    /// `lander_backlog_bytes`: their bytes still to read.
    pub backlog_bytes: Family<DatasetLabel, Gauge>,
    /// `lander_last_commit_timestamp_seconds`: Unix time of the last commit.
    pub last_commit: Family<DatasetLabel, Gauge<f64, AtomicU64>>,
    /// `lander_dedup_keys`: committed dedup keys remembered.
    pub dedup_keys: Family<DatasetLabel, Gauge>,
    /// `lander_dataset_failing`: 1 while the dataset's last batch attempt failed (it is being retried).
    pub dataset_failing: Family<DatasetLabel, Gauge>,
    /// `lander_fetch_downloads_total`: files fetched into landing.
    pub fetch_downloads: Family<SourceLabel, Counter>,
    /// `lander_fetch_bytes_total`: bytes fetched into landing.
    pub fetch_bytes: Family<SourceLabel, Counter>,
    /// `lander_fetch_retries_total`: download attempts retried.
    pub fetch_retries: Family<SourceLabel, Counter>,
    /// `lander_fetch_failures_total`: downloads that failed for good.
    pub fetch_failures: Family<SourceLabel, Counter>,
    registry: Registry,
}

fn seconds_histogram() -> Histogram {
    // 1 ms .. ~9 h in factors of 2.5.
    Histogram::new(exponential_buckets(0.001, 2.5, 18))
}

impl Metrics {
    fn new() -> Self {
        let hist = || Hist::new_with_constructor(seconds_histogram as fn() -> Histogram);
        let mut m = Metrics {
            rows_written: Family::default(),
            files_ingested: Family::default(),
            records_quarantined: Family::default(),
            duplicates_dropped: Family::default(),
            batches_committed: Family::default(),
            batches_failed: Family::default(),
            files_failed: Family::default(),
            input_bytes: Family::default(),
            read_bytes: Family::default(),
            records_read: Family::default(),
            listing_skipped: Family::default(),
            batch_duration: hist(),
            land_to_commit: hist(),
            backlog_files: Family::default(),
            backlog_bytes: Family::default(),
            last_commit: Family::default(),
            dedup_keys: Family::default(),
            dataset_failing: Family::default(),
            fetch_downloads: Family::default(),
            fetch_bytes: Family::default(),
            fetch_retries: Family::default(),
            fetch_failures: Family::default(),
            registry: Registry::with_prefix("lander"),
        };
        let r = &mut m.registry;
        r.register(
            "rows_written",
            "Rows published to bronze",
            m.rows_written.clone(),
        );
        r.register(
            "files_ingested",
            "Landing files (or appended ranges) committed",
            m.files_ingested.clone(),
        );
        r.register(
            "records_quarantined",
            "Records sent to quarantine; a file rejected whole counts one",
            m.records_quarantined.clone(),
        );
        r.register(
            "duplicates_dropped",
            "Records dropped as duplicates of a key seen in the batch or committed before",
            m.duplicates_dropped.clone(),
        );
        r.register(
            "batches_committed",
            "Batches committed",
            m.batches_committed.clone(),
        );
        r.register(
            "batches_failed",
            "Batch attempts that failed on storage and were rolled back",
            m.batches_failed.clone(),
        );
        r.register(
            "files_failed",
            "Landing files rejected whole (corrupt, over a limit) and copied to quarantine",
            m.files_failed.clone(),
        );
        r.register(
            "input_bytes",
            "Landing bytes committed",
            m.input_bytes.clone(),
        );
        r.register(
            "read_bytes",
            "Landing bytes read, committed or not (progress)",
            m.read_bytes.clone(),
        );
        r.register(
            "records_read",
            "Records decoded before dedup, committed or not (progress)",
            m.records_read.clone(),
        );
        r.register(
            "listing_skipped_entries",
            "Landing entries skipped by listings (symlinks not followed, unreadable or special files)",
            m.listing_skipped.clone(),
        );
        r.register(
            "batch_duration_seconds",
            "Time from planning a batch to its commit",
            m.batch_duration.clone(),
        );
        r.register(
            "land_to_commit_seconds",
            "Time from a file's last modification in landing to the commit of its records",
            m.land_to_commit.clone(),
        );
        r.register(
            "backlog_files",
            "Files new or changed in landing and not committed yet, as of the last listing",
            m.backlog_files.clone(),
        );
        r.register(
            "backlog_bytes",
            "Bytes of the backlog files still to read",
            m.backlog_bytes.clone(),
        );
        r.register(
            "last_commit_timestamp_seconds",
            "Unix time of the last committed batch",
            m.last_commit.clone(),
        );
        r.register(
            "dedup_keys",
            "Committed dedup keys remembered (within the horizon)",
            m.dedup_keys.clone(),
        );
        r.register(
            "dataset_failing",
            "1 while the dataset's last batch attempt failed and is being retried",
            m.dataset_failing.clone(),
        );
        r.register(
            "fetch_downloads",
            "Files fetched into landing",
            m.fetch_downloads.clone(),
        );
        r.register(
            "fetch_bytes",
            "Bytes fetched into landing",
            m.fetch_bytes.clone(),
        );
        r.register(
            "fetch_retries",
            "Download attempts retried",
            m.fetch_retries.clone(),
        );
        r.register(
            "fetch_failures",
            "Downloads that failed after all retries",
            m.fetch_failures.clone(),
        );
        m
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// The label of `dataset`.
pub fn ds(dataset: &str) -> DatasetLabel {
    DatasetLabel {
        dataset: dataset.to_string(),
    }
}

/// The label of fetch `source`.
pub fn src(source: &str) -> SourceLabel {
    SourceLabel {
        source: source.to_string(),
    }
}

/// Creates every `dataset` series of `dataset` at zero, so that dashboards and alerts see the series from the
/// start instead of "no data" until the first event.
pub fn init_dataset(dataset: &str) {
    let m = get();
    let l = ds(dataset);
    for c in [
        &m.rows_written,
        &m.files_ingested,
        &m.records_quarantined,
        &m.duplicates_dropped,
        &m.batches_committed,
        &m.batches_failed,
        &m.files_failed,
        &m.input_bytes,
        &m.read_bytes,
        &m.records_read,
        &m.listing_skipped,
    ] {
        let _ = c.get_or_create(&l);
    }
    for g in [
        &m.backlog_files,
        &m.backlog_bytes,
        &m.dedup_keys,
        &m.dataset_failing,
    ] {
        let _ = g.get_or_create(&l);
    }
    let _ = m.last_commit.get_or_create(&l);
    let _ = m.batch_duration.get_or_create(&l);
    let _ = m.land_to_commit.get_or_create(&l);
}

/// Creates every fetch series of `source` at zero (see [`init_dataset`]).
pub fn init_source(source: &str) {
    let m = get();
    let l = src(source);
    for c in [
        &m.fetch_downloads,
        &m.fetch_bytes,
        &m.fetch_retries,
        &m.fetch_failures,
    ] {
        let _ = c.get_or_create(&l);
    }
}

/// Everything in the Prometheus text exposition format (OpenMetrics flavour, ends with `# EOF`).
pub fn encode() -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &METRICS.registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_with_total_and_histograms_with_buckets() {
        get().rows_written.get_or_create(&ds("unit")).inc_by(3);
        get().land_to_commit.get_or_create(&ds("unit")).observe(0.2);
        let text = encode();
        assert!(
            text.contains("lander_rows_written_total{dataset=\"unit\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("lander_land_to_commit_seconds_bucket{"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
