//! lander's base layers: what every stage of the pipeline stands on, and nothing that runs the stages.
//!
//! - [`store`]: landing/bronze locations behind `object_store`: local, HDFS (`hdfs://`) or S3 (`s3://`); with the
//!   cargo feature `hdrs`, also HDFS through libhdfs over JNI (`hdfs+jni://`).
//! - [`decode`]: gzip NDJSON / CSV bytes to Arrow `RecordBatch`es plus quarantined records.
//! - [`dedup`]: drop records whose key was already seen; [`dedup::index`] keeps the committed keys in run files.
//! - [`sink`]: split by UTC day and write Parquet parts under staging names, then publish them.
//! - [`metrics`]: the names and types of the Prometheus metrics every stage records into (no logic).
//! - [`names`]: the one rule for which dataset and file names in landing count (shared by ingest and fetch).
//! - [`units`]: byte-size parsing shared by the configuration and the command line.
//!
//! This crate has no clap, no configuration file, no checkpoint and no Delta kernel: `lander-ingest` and
//! `lander-fetch` build on it, and it cannot import from them (they are not its dependencies).
#![warn(missing_docs)]
// Docs are built with private items (`scripts/test`): public items may link to crate-private ones.
#![allow(rustdoc::private_intra_doc_links)]

pub mod decode;
pub mod dedup;
pub mod metrics;
pub mod names;
pub mod sink;
pub mod store;
pub mod units;

/// Default landing location: `lander run`'s (the configuration's default) and every fetch and generate command's.
pub const DEFAULT_LANDING: &str = "layers/landing";
