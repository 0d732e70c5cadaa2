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
    pub(crate) source: String,
}

/// Counters per dataset.
type Counters = Family<DatasetLabel, Counter>;
/// Gauges per dataset.
type Gauges = Family<DatasetLabel, Gauge>;
/// Histograms of seconds per dataset.
type Seconds = Family<DatasetLabel, Histogram, fn() -> Histogram>;
/// Counters per fetch source.
type SourceCounters = Family<SourceLabel, Counter>;

fn seconds_histogram() -> Histogram {
    // 1 ms .. ~9 h in factors of 2.5.
    Histogram::new(exponential_buckets(0.001, 2.5, 18))
}

/// Declares [`Metrics`] from one row per metric, `field: Type = "name", "help";`, plus `, new: constructor` for
/// a family whose metrics are not built by `Default` (histograms, for their buckets). The field's doc is made
/// from the name and help; metrics are registered under `lander_<name>` in row order. Rows are grouped by
/// label type, and each group gets a method (named before the group) that creates all its series of one label.
macro_rules! metrics {
    (@new $ty:ty) => {
        <$ty>::default()
    };
    (@new $ty:ty, $constructor:expr) => {
        <$ty>::new_with_constructor($constructor)
    };
    ($(
        $label:ty => fn $zero:ident {
            $($field:ident: $ty:ty = $name:literal, $help:literal $(, new: $constructor:expr)?;)+
        }
    )+) => {
        /// Every metric lander exports.
        pub struct Metrics {
            $($(
                #[doc = concat!("`lander_", $name, "`: ", $help, ".")]
                pub $field: $ty,
            )+)+
            registry: Registry,
        }

        impl Metrics {
            fn new() -> Self {
                let mut registry = Registry::with_prefix("lander");
                $($(
                    let $field: $ty = metrics!(@new $ty $(, $constructor)?);
                    registry.register($name, $help, $field.clone());
                )+)+
                Metrics {
                    $($($field,)+)+
                    registry,
                }
            }

            $(
                /// Creates every series of this label type for `label`, at zero.
                fn $zero(&self, label: &$label) {
                    $(let _ = self.$field.get_or_create(label);)+
                }
            )+
        }
    };
}

metrics! {
    DatasetLabel => fn zero_dataset {
        rows_written: Counters = "rows_written",
            "Rows published to bronze";
        files_ingested: Counters = "files_ingested",
            "Landing files (or appended ranges) committed";
        records_quarantined: Counters = "records_quarantined",
            "Records sent to quarantine; a file rejected whole counts one";
        duplicates_dropped: Counters = "duplicates_dropped",
            "Records dropped as duplicates of a key seen in the batch or committed before";
        records_unchecked: Counters = "records_unchecked",
            "Records written without a dedup check: their event day is beyond dedup_retention, or not readable from bronze";
        batches_committed: Counters = "batches_committed",
            "Batches committed";
        batches_failed: Counters = "batches_failed",
            "Batch attempts that failed on storage and were rolled back";
        files_failed: Counters = "files_failed",
            "Landing files rejected whole (corrupt, over a limit) and copied to quarantine";
        input_bytes: Counters = "input_bytes",
            "Landing bytes committed";
        read_bytes: Counters = "read_bytes",
            "Landing bytes read, committed or not (progress)";
        records_read: Counters = "records_read",
            "Records decoded before dedup, committed or not (progress)";
        listing_skipped: Counters = "listing_skipped_entries",
            "Landing entries skipped by listings (unrepresentable names, files outside a dataset directory, symlinks not followed, unreadable or special files)";
        commit_conflicts: Counters = "commit_conflicts",
            "Delta commit attempts that lost the version race to another writer (checked again and retried)";
        cross_writer_redos: Counters = "cross_writer_redos",
            "Batches rolled back and run again because another writer committed some of their keys first";
        cross_check_duration: Seconds = "cross_check_duration_seconds",
            "Time of the cross-writer check before a commit attempt that read the log", new: seconds_histogram;
        batch_duration: Seconds = "batch_duration_seconds",
            "Time from planning a batch to its commit", new: seconds_histogram;
        land_to_commit: Seconds = "land_to_commit_seconds",
            "Time from a file's last modification in landing to the commit of its records", new: seconds_histogram;
        backlog_files: Gauges = "backlog_files",
            "Files new or changed in landing and not committed yet, as of the last listing";
        backlog_bytes: Gauges = "backlog_bytes",
            "Bytes of the backlog files still to read";
        last_commit: Family<DatasetLabel, Gauge<f64, AtomicU64>> = "last_commit_timestamp_seconds",
            "Unix time of the last committed batch";
        dedup_keys: Gauges = "dedup_keys",
            "Committed dedup keys remembered (within the horizon)";
        dataset_failing: Gauges = "dataset_failing",
            "1 while the dataset's last batch attempt failed and is being retried";
        compactions: Counters = "compactions",
            "Partitions compacted automatically (one commit each)";
        compactions_abandoned: Counters = "compactions_abandoned",
            "Automatic compactions abandoned because another writer removed some of their inputs meanwhile (nothing committed, outputs deleted)";
        compactions_failed: Counters = "compactions_failed",
            "Automatic compactions that failed (nothing committed; tried again later)";
        compaction_files: Counters = "compaction_files_rewritten",
            "Small parts replaced by automatic compactions";
        compaction_bytes: Counters = "compaction_bytes_rewritten",
            "Bytes of the small parts replaced by automatic compactions";
    }
    SourceLabel => fn zero_source {
        fetch_downloads: SourceCounters = "fetch_downloads",
            "Files fetched into landing";
        fetch_bytes: SourceCounters = "fetch_bytes",
            "Bytes fetched into landing";
        fetch_retries: SourceCounters = "fetch_retries",
            "Download attempts retried";
        fetch_failures: SourceCounters = "fetch_failures",
            "Downloads that failed after all retries";
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
    get().zero_dataset(&ds(dataset));
}

/// Creates every fetch series of `source` at zero (see [`init_dataset`]).
pub fn init_source(source: &str) {
    get().zero_source(&src(source));
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
