//! lander: an incremental file-landing ingestion daemon.
//!
//! It discovers files that land in a *landing* zone (GH Archive hourly gzip NDJSON, sales CSVs, any CSV declared in
//! `lander.toml`), decodes them to Arrow, drops duplicate records, and writes zstd Parquet partitioned by each
//! record's UTC event date (`year=YYYY/month=MM/day=DD`) into a *bronze* layer, recording in a sled checkpoint what
//! was processed so that every record lands exactly once across restarts and crashes.
//!
//! # Layout
//! One file travels fetch -> landing -> bronze through these modules, in this order. Data flows one way: a stage
//! imports from the base layers below and from stages before it in this list, never from a later one (`fetch`,
//! the side entrance, uses only `source`'s name rule and listing filter, so that it never writes what `source`
//! would skip).
//! - [`fetch`]: a side entrance that only *writes into* landing (GH Archive hours, HTTP files, S3 objects,
//!   synthetic sales): [`fetch`]'s `download` streams a body into a hidden temporary name, `verify` checks gzip,
//!   and the no-clobber rename publishes it. It refuses names that [`source::names`] says landing never reads.
//!   It never reads the config file or the checkpoint (from `config` it uses only the byte-size parser of its
//!   flags): [`cli::fetch`] reads those and hands it plain values
//!   ([`fetch::FetchContext`]: the `[storage]` options and the landing paths already ingested).
//! - [`source`]: listing landing ([`source::listing`]), the name rule ([`source::names`]), readiness,
//!   fingerprints, watching for new files.
//! - [`decode`]: gzip NDJSON / CSV bytes to Arrow `RecordBatch`es plus quarantined records, each with a
//!   [`decode::RecordError`] as its reason. The types that describe its input and output
//!   ([`decode::csv::CsvOptions`], [`decode::csv::StoredSchema`], column types and time zones) live in the leaf
//!   modules `decode::csv::{options, types}`, which import nothing from the crate; `config` and `checkpoint`
//!   use them from there.
//! - [`dedup`]: drop records whose key was already seen (in this batch or a committed one); [`dedup::index`]
//!   keeps the committed keys in run files beside the checkpoint, with in-memory filters.
//! - [`sink`]: split by UTC day and write Parquet parts under staging names (or, for Delta, in place), then
//!   publish them.
//! - [`table`]: bronze datasets as Delta Lake tables: one put-if-absent log commit per batch with its `txn`,
//!   log replay, log checkpoints, through `delta_kernel` over lander's stores. It imports `sink`'s part type and
//!   `store`, nothing above.
//! - [`modes`]: the scheduler (`once`, `available-now`, `micro-batch`, `continuous`) and the commit protocol; the
//!   only module that runs the stages in order. [`modes::batch::run_batch`] reads as the protocol's steps:
//!   intent, `stage` (decode, dedup, encode, quarantine), publish, `commit` (dedup runs, one sled commit);
//!   [`modes::verify`] checks the result against bronze, read-only.
//! - [`cli`]: the command-line interface (`run`, `fetch`, `generate`, `checkpoint`, `explain`, `config`): parses,
//!   opens what a command needs, calls the library and prints.
//!
//! Base layers, imported by the stages above and importing none of them:
//! - [`store`]: landing/bronze locations behind `object_store`: local, HDFS (`hdfs://`) or S3 (`s3://`); with the
//!   cargo feature `hdrs`, also HDFS through libhdfs over JNI (`hdfs+jni://`, `store::hdrs`). Opening per
//!   scheme is in `store::open`, the per-call time limit of remote stores in `store::timeout`.
//! - [`checkpoint`]: the sled store of processed files, committed batches, the in-flight intent and the dedup
//!   watermark. `source` reads it to tell new files from processed ones and `cli` for `fetch --checkpoint` (to
//!   skip ingested files); only `modes` writes it. It stores `decode`'s [`decode::csv::StoredSchema`] (and re-exports it).
//! - [`config`]: `lander.toml` plus CLI overrides; it re-exports [`decode::csv::CsvOptions`] and validates
//!   dataset names with [`source::check_name`].
//! - [`metrics`]: the names and types of the Prometheus metrics every stage records into (no logic).
//!
//! `decode`, `dedup`, `sink` and `store` import nothing from `config`, `checkpoint`, `modes` or `cli`.
//! `faults` (feature `failpoints` only): storage fault injection for tests.
#![warn(missing_docs)]
// The doc comments of clap arguments are also their `--help` text, where `<landing>/<dataset>` and bare URLs are
// meant literally, not as HTML or links.
#![allow(rustdoc::invalid_html_tags, rustdoc::bare_urls)]

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
pub mod table;

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
    /// Delta table error.
    #[error(transparent)]
    Table(#[from] table::TableError),
    /// Keys could not be read back from bronze.
    #[error(transparent)]
    Keys(#[from] modes::keys::KeysError),
    /// The checkpoint is bound to other locations.
    #[error(transparent)]
    Binding(#[from] checkpoint::binding::BindingError),
    /// The cross-worker dedup check failed or found another writer's keys in the batch.
    #[error(transparent)]
    CrossCheck(#[from] modes::cross_check::CrossCheckError),
}
