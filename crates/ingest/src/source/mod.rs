//! Source: what is in landing and what of it is new.
//!
//! - [`listing`] lists landing through `object_store`, applies the readiness rules and compares each file with
//!   its checkpoint record to decide what to read (a new file, the appended tail of a growing one, or a new
//!   version of a replaced one).
//! - [`fingerprint`] identifies file contents without reading whole files.
//! - [`names`]: the one rule for which dataset and file names in landing count (shared with `config` and
//!   `fetch`).
//! - [`top`] finds files at the top of landing, which belong to no dataset and are never read.
//! - [`walk`] lists a local landing entry by entry: symlink policy, and faults skipped instead of fatal.
//! - [`watch`] turns filesystem events (local) and periodic listings (any backend) into wake-ups.

pub mod assign;
pub mod fingerprint;
pub mod listing;
pub use lander_core::names;
mod objects;
pub mod top;
pub(crate) mod walk;
pub(crate) mod watch;

pub(crate) use listing::{plan_dataset, Change, LandingFile};
pub use names::{check_name, is_ignored_name, is_ignored_path, NameError};

/// Listing and reading failures of landing.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Listing failed.
    #[error("failed to list {prefix} in landing: {source}")]
    List {
        /// The prefix listed.
        prefix: String,
        /// The error.
        source: object_store::Error,
    },
    /// Reading (a range of) a file failed.
    #[error("failed to read {path} in landing: {source}")]
    Read {
        /// Landing path.
        path: String,
        /// The error.
        source: object_store::Error,
    },
    /// The checkpoint could not be read.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
}

/// A local landing in a fresh temporary directory, for unit tests (the directory lives as long as the guard).
#[cfg(test)]
pub(crate) fn temp_landing() -> (tempfile::TempDir, crate::store::StoreLocation) {
    let dir = tempfile::tempdir().expect("tempdir");
    let loc = crate::store::StoreLocation::open(dir.path().to_str().expect("utf8")).expect("open");
    (dir, loc)
}
