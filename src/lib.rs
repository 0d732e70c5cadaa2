//! lander: an incremental file-landing ingestion daemon.
//!
//! It discovers files that land in a *landing* zone (GH Archive hourly gzip NDJSON, sales CSVs, any CSV declared in
//! `lander.toml`), decodes them to Arrow, drops duplicate records, and writes zstd Parquet partitioned by each
//! record's UTC event date (`year=YYYY/month=MM/day=DD`) into a *bronze* layer, recording in a sled checkpoint what
//! was processed so that every record lands exactly once across restarts and crashes.
//!
//! # Layout
//! Modules in pipeline order (data flows one way):
//! - [`store`]: landing/bronze locations behind `object_store`: local, HDFS (`hdfs://`) or S3 (`s3://`); with the
//!   cargo feature `hdrs`, also HDFS through libhdfs over JNI (`hdfs+jni://`, `store::hdrs`).
//! - [`fetch`]: a side entrance that only *writes into* landing (GH Archive hours, HTTP files, synthetic sales).
//! - [`source`]: listing landing, readiness rules, fingerprints, watching for new files.
//! - [`decode`]: gzip NDJSON / CSV bytes to Arrow `RecordBatch`es plus quarantined records.
//! - [`dedup`]: drop records whose key was already seen (in this batch or a committed one); [`dedup::index`]
//!   keeps the committed keys in run files beside the checkpoint, with in-memory filters.
//! - [`sink`]: split by UTC day and write Parquet parts under staging names.
//! - [`checkpoint`]: the sled store of processed files, committed batches, the in-flight intent and the dedup
//!   watermark.
//! - [`modes`]: the scheduler (`once`, `available-now`, `micro-batch`, `continuous`) and the commit protocol.
//! - [`config`]: `lander.toml` plus CLI overrides.
//! - [`metrics`]: the names and types of the Prometheus metrics every stage records into.
//! - [`cli`]: the command-line interface.
//! - `faults` (feature `failpoints` only): storage fault injection for tests.
#![warn(missing_docs)]

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod decode;
pub mod dedup;
#[cfg(feature = "failpoints")]
pub mod faults;
pub mod fetch;
pub mod metrics;
pub mod modes;
pub mod sink;
pub mod source;
pub mod store;

/// Top-level error: one variant per module error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Storage location error.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// Configuration error.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Checkpoint error.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// Decode error (file-level).
    #[error(transparent)]
    Decode(#[from] decode::DecodeError),
    /// Dedup index error.
    #[error(transparent)]
    Dedup(#[from] dedup::index::IndexError),
    /// Sink error.
    #[error(transparent)]
    Sink(#[from] sink::SinkError),
    /// Source (listing) error.
    #[error(transparent)]
    Source(#[from] source::SourceError),
    /// Fetch error.
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
}
