//! The table layer: bronze datasets as Delta Lake tables, written through `object_store` (local, HDFS, S3).
//!
//! Takes the parts a batch wrote (`sink::WrittenFile`, already durable at their final names) and makes them one
//! Delta commit; reads the log back to answer "did batch N of this checkpoint commit?".
//!
//! # Table layout
//! `bronze/<dataset>/` is the table root: data files under `year=YYYY/month=MM/day=DD/` (partition columns
//! `year`, `month`, `day`, strings equal to the directory values) and the log under `_delta_log/`. Protocol
//! minReader 1 / minWriter 2, the lowest that Spark 3.5+, DuckDB's delta extension and delta-rs all read.
//!
//! # What a commit guarantees
//! - **Atomic.** A batch is one commit file `_delta_log/<version: 20 digits>.json`, written by `delta_kernel`'s
//!   transaction through its default engine over lander's own store (the same `Arc<dyn ObjectStore>` as every
//!   other bronze write) with `PutMode::Create` (put-if-absent): on local a hard link that fails if the name
//!   exists, on HDFS a rename without overwrite, on S3 a `PUT` with `If-None-Match: *`. Readers see all of a
//!   batch's parts or none; a part no commit references is invisible to every Delta reader.
//! - **Exactly once, recorded in the table.** The commit carries `txn {appId, version: batch id}`; the app id
//!   names the dataset and the checkpoint (`lander-<dataset>-<checkpoint writer id>`), because batch ids restart
//!   per checkpoint and two checkpoints may append to one table. [`Snapshot::app_version`] answers whether a
//!   batch committed (the kernel's `get_app_id_version`).
//! - **Concurrent appenders.** When the version is taken (another writer: a second job, a compaction), the
//!   kernel answers `Conflicted`; it cannot re-base a transaction, so lander brings the snapshot up to date and
//!   builds a new one for the next version. Appends never conflict logically. Each attempt first checks the
//!   `txn`: a commit is never made twice.
//! - **What was ingested from where.** `commitInfo` carries, beside the kernel's fields (timestamp, operation
//!   `WRITE`, `engineInfo: lander/<version>`, `isBlindAppend`), lander's object `commitInfo.lander`: the
//!   landing location and each input's path, fingerprint and byte range. The kernel takes it as the
//!   connector's `commitInfo` row (`with_commit_info`), so it lands in the same commit file.
//! - **Log checkpoints** (`<version>.checkpoint.parquet` + `_last_checkpoint`, the kernel's checkpoint writer)
//!   every `delta_checkpoint_interval` commits, so opening a table reads one checkpoint plus at most that many
//!   commit files.
//!
//! # What is the kernel's and what is hand-written
//! `delta_kernel` 0.30.1 (with `delta_kernel_default_engine`) does log replay (snapshots, incremental updates,
//! the live files through its scan metadata, `txn` versions), the commits (`add` actions, `txn`, `commitInfo`,
//! put-if-absent, `Conflicted`) and the log checkpoints. Hand-written here:
//! - **version 0** ([`DeltaTable::create`]): the kernel's table creation sits behind its unstable `internal-api`
//!   and always writes the table-features protocol (reader 3 / writer 7); lander's tables are protocol 1/2, the
//!   lowest that Spark 3.5+, DuckDB's delta extension and delta-rs read. Written put-if-absent like any commit;
//! - the **Delta schema** of lander's Arrow schema and the **`add` of a part** with its statistics
//!   ([`actions`]): lander writes its parts itself (the sink), so it hands the kernel their metadata;
//! - the **retry loop** around a lost race (above);
//! - **rewrites** ([`rewrite`]): a commit of `remove` + `add` that re-checks its inputs on every attempt, for
//!   compaction ([`optimize`]) and repair ([`check`]).
//!
//! lander enables the kernel's `internal-api` feature (no extra crates) only to read `metaData` (the table id,
//! the schema string) and `protocol` of a snapshot, which 0.30.1 exposes nowhere else.

pub(crate) mod actions;
pub mod check;
pub mod convert;
pub mod history;
mod kernel;
mod log;
pub mod optimize;
pub(crate) mod rewrite;
pub(crate) mod temps;
pub mod vacuum;

use std::collections::HashMap;
use std::sync::Arc;

pub(crate) use actions::Add;
pub(crate) use log::uuid_v4;
pub use log::{Commit, Committed, DeltaTable, Snapshot};
pub use rewrite::Rewritten;

/// How bronze is published (`table_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableFormat {
    /// Each dataset is a Delta Lake table; one commit per batch is the publish.
    Delta,
    /// Plain hive-partitioned Parquet, published part by part by rename.
    Parquet,
}

impl std::str::FromStr for TableFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "delta" => Ok(Self::Delta),
            "parquet" => Ok(Self::Parquet),
            _ => Err(format!("table format {s:?} must be delta or parquet")),
        }
    }
}

/// Table failures: the batch is not committed (a bounded run exits 1, a daemon rolls back and retries).
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The store failed on a log object.
    #[error("failed to {action} {path}: {source}")]
    Store {
        /// `read`, `write`, `list`.
        action: &'static str,
        /// The object.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A log file is not valid Delta.
    #[error("corrupt delta log entry {path}: {message}")]
    Corrupt {
        /// The object.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The table needs a reader or writer lander does not implement.
    #[error("the delta table at {root} needs reader version {reader} / writer version {writer}; lander writes tables up to 1 / 2")]
    Protocol {
        /// The table root.
        root: String,
        /// Its minReaderVersion.
        reader: i32,
        /// Its minWriterVersion.
        writer: i32,
    },
    /// A column type has no Delta type at protocol 1/2.
    #[error(
        "column {column} has type {data_type}, which a delta table (protocol 1/2) cannot hold"
    )]
    UnsupportedType {
        /// The column.
        column: String,
        /// Its Arrow type.
        data_type: String,
    },
    /// The batch's schema differs from the table's.
    #[error(
        "the schema of {root} differs from this batch's ({reason}): table {table}, batch {batch}"
    )]
    SchemaMismatch {
        /// The table root.
        root: String,
        /// What differs (a column the batch lacks, a changed type).
        reason: String,
        /// The table's `schemaString`.
        table: String,
        /// The batch's.
        batch: String,
    },
    /// A part does not lie below the table root.
    #[error("part {path} is not below the table root {root}")]
    OutsideTable {
        /// The part.
        path: String,
        /// The root.
        root: String,
    },
    /// Other writers kept taking the next version.
    #[error(
        "gave up committing to {root} after {attempts} attempts: other writers took every version"
    )]
    TooManyConflicts {
        /// The table root.
        root: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The Delta kernel failed reading, committing to or checkpointing the table (a store fault it met, or a
    /// log it cannot read).
    #[error("failed to {action} the delta table {root}: {source}")]
    Kernel {
        /// `read`, `commit to`, `checkpoint`.
        action: &'static str,
        /// The table root.
        root: String,
        /// The kernel's error.
        source: Box<delta_kernel::KernelError>,
    },
}

/// The snapshots of open tables, by table root, shared by the batches of a run so a commit reads only the log
/// entries written since the previous one.
#[derive(Clone, Default)]
pub struct Tables(Arc<tokio::sync::Mutex<HashMap<String, Snapshot>>>);

impl Tables {
    /// Takes the up-to-date snapshot of `table` out of the cache (or reads it from the log), or `None` when
    /// the table has no version 0 yet. Give it back with [`Tables::keep`] once the commit is made; a failed
    /// commit drops it, so the next batch reads the log again.
    ///
    /// # Errors
    /// [`TableError`] reading the log.
    pub(crate) async fn take(&self, table: &DeltaTable) -> Result<Option<Snapshot>, TableError> {
        let cached = self.0.lock().await.remove(table.root());
        match cached {
            Some(mut s) => {
                table.update(&mut s).await?;
                Ok(Some(s))
            }
            None => table.load().await,
        }
    }

    /// Keeps `snap` as the latest known snapshot of `table`.
    pub(crate) async fn keep(&self, table: &DeltaTable, snap: Snapshot) {
        self.0.lock().await.insert(table.root().to_string(), snap);
    }
}

/// The `txn` app id of `dataset` written through the checkpoint with writer id `writer`.
pub fn app_id(dataset: &str, writer: &str) -> String {
    format!("lander-{dataset}-{writer}")
}
