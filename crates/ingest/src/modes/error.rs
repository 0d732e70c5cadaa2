//! The error of a run: what `modes` returns when a batch cannot be staged, committed or recovered.

use crate::{checkpoint, config, decode, dedup, sink, source, store, table};

/// Why a run (or one of its batches) failed: one variant per stage or store the run drives. Only `modes` and the
/// command line see it; each stage returns its own error (`DecodeError`, `SinkError`, `TableError`, ...).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
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
    /// Delta table error.
    #[error(transparent)]
    Table(#[from] table::TableError),
    /// Keys could not be read back from bronze.
    #[error(transparent)]
    Keys(#[from] super::keys::KeysError),
    /// The checkpoint is bound to other locations.
    #[error(transparent)]
    Binding(#[from] checkpoint::binding::BindingError),
    /// The cross-worker dedup check failed or found another writer's keys in the batch.
    #[error(transparent)]
    CrossCheck(#[from] super::cross_check::CrossCheckError),
}
