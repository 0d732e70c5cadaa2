//! Sink: partitioned, zstd-compressed Parquet parts written under staging names, published by rename.
//!
//! - [`partition`] splits batches by UTC day (pure).
//! - `days` holds rows per UTC day in memory until their day is written (pure).
//! - [`writer`] encodes Parquet parts per UTC day (synchronously, on a blocking thread).
//! - [`parquet`] uploads their bytes through `object_store` (asynchronously) to staging objects, or to their final
//!   names for a Delta table, and publishes staged parts; it also encodes the quarantine.

pub(crate) mod days;
pub mod parquet;
pub mod partition;
pub mod writer;

pub use self::parquet::{PartEvent, TimeRange, WrittenFile};
pub use self::writer::PartWriter;
pub use partition::PartitionKey;

/// Sink failures: writing bronze failed. These stop the process (after the batch is abandoned).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Parquet encoding failed.
    #[error("failed to encode parquet for {path}: {source}")]
    Encode {
        /// Final path of the part.
        path: String,
        /// The error.
        source: ::parquet::errors::ParquetError,
    },
    /// The object store failed.
    #[error("failed to {action} {path}: {source}")]
    Store {
        /// What was attempted (`upload`, `rename`, `delete`, `list`).
        action: &'static str,
        /// The object path.
        path: String,
        /// The error.
        source: object_store::Error,
    },
    /// The encoder thread went away.
    #[error("the parquet writer of batch {batch} stopped unexpectedly")]
    Aborted {
        /// Batch id.
        batch: u64,
    },
}
