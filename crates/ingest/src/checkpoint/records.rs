//! The records the checkpoint keeps: one per landing file, one per committed batch, the in-flight intent, and
//! what one commit changes. Stored as JSON inside versioned envelopes (see the key layout in the module docs).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::counts::{records_spelling, StoredCounts};
use super::StoredSchema;

/// The state of one landing file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum FileStatus {
    /// Fully processed.
    Ok,
    /// Processed up to `bytes_consumed`; a growing file whose tail may still come.
    Partial,
    /// Could not be processed (e.g. truncated gzip); the file itself was copied to the quarantine.
    Failed {
        /// Why.
        reason: String,
    },
}

impl FileStatus {
    /// Short name used by `checkpoint list --status`.
    pub fn name(&self) -> &'static str {
        match self {
            FileStatus::Ok => "ok",
            FileStatus::Partial => "partial",
            FileStatus::Failed { .. } => "failed",
        }
    }
}

/// Everything known about one processed landing file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileRecord {
    /// Dataset.
    pub dataset: String,
    /// Path relative to the landing root (`<dataset>/...`).
    pub path: String,
    /// Size in bytes when last processed.
    pub size: u64,
    /// Modification time when last processed.
    pub modified: DateTime<Utc>,
    /// Content fingerprint: xxh3 of the first KiB and of the last KiB, hex.
    pub fingerprint: String,
    /// xxh3 of the first KiB alone, hex (detects appends vs replacements).
    pub head_hash: String,
    /// Bytes of the file consumed (a growing file continues from here).
    pub bytes_consumed: u64,
    /// xxh3-128 of bytes `0..bytes_consumed`, hex, computed while reading: a later change that keeps it is an
    /// append, any other change a new version. `None` in records written by an older lander (judged by
    /// `head_hash` and size instead) and for failed files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_hash: Option<String>,
    /// Lines (NDJSON) or records (CSV) consumed, for line numbers of appended data.
    pub lines_consumed: u64,
    /// Records written to bronze (`records_ok`), sent to quarantine (`records_quarantined`) and dropped as
    /// duplicates (`records_duplicate`).
    #[serde(flatten, with = "records_spelling")]
    pub counts: StoredCounts,
    /// Batches that read this file, oldest first.
    pub batches: Vec<u64>,
    /// How many times a new version (replaced content) was ingested.
    pub versions: u32,
    /// Status.
    pub status: FileStatus,
    /// When the last batch reading it committed.
    pub processed_at: DateTime<Utc>,
    /// Lines that had been committed as records without a newline before the file grew: their continuation (the
    /// bytes up to the next newline) was quarantined as such. Empty for nearly every file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub continued_lines: Vec<u64>,
    /// Records quarantined with their first bytes only (over `max_record_bytes`): the file's bytes are not all
    /// in bronze or in the quarantine, so its status reads `<status>+truncated` and `clean_source` keeps it in
    /// landing. 0 for nearly every file.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub records_truncated: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl FileRecord {
    /// The status as `checkpoint list` and `explain` show it: the status name, with `+truncated` when some
    /// records are kept only in part (see [`FileRecord::records_truncated`]).
    pub fn status_label(&self) -> String {
        if self.records_truncated > 0 {
            format!("{}+truncated", self.status.name())
        } else {
            self.status.name().to_string()
        }
    }
}

/// One input of a batch: a byte range of a landing file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BatchInput {
    /// Path relative to landing.
    pub path: String,
    /// First byte read.
    pub start: u64,
    /// One past the last byte read.
    pub end: u64,
    /// Records written (`records_ok`), quarantined (`records_quarantined`) and dropped as duplicates
    /// (`records_duplicate`) from this range.
    #[serde(flatten, with = "records_spelling")]
    pub counts: StoredCounts,
}

/// One Parquet file a batch published.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputFile {
    /// Path relative to the bronze root.
    pub path: String,
    /// Rows in it.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// A committed batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BatchRecord {
    /// Batch id, increasing per dataset from 1.
    pub id: u64,
    /// Dataset.
    pub dataset: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it committed.
    pub committed_at: DateTime<Utc>,
    /// Inputs.
    pub inputs: Vec<BatchInput>,
    /// Bronze data files (and quarantine files) published.
    pub outputs: Vec<OutputFile>,
    /// Rows written to bronze (`rows`), duplicates dropped (`duplicates`) and records quarantined
    /// (`quarantined`; a file rejected whole counts one).
    #[serde(flatten)]
    pub counts: StoredCounts,
    /// Oldest event time written (µs since epoch, UTC).
    pub min_event_time: Option<i64>,
    /// Newest event time written (µs since epoch, UTC).
    pub max_event_time: Option<i64>,
}

/// The phase of an in-flight batch.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum IntentState {
    /// Parts are being written under staging names; nothing is published.
    Writing,
    /// All parts are durable under staging names and are being renamed to their final names.
    Publishing,
    /// Delta: every part is durable at its final name and the dedup runs are written; the table commit (version
    /// with `txn` = this batch id) is being made. The intent holds the sled commit to finish if the table has it.
    Committing,
}

/// The batch being written: enough to undo it after a crash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BatchIntent {
    /// Batch id.
    pub id: u64,
    /// Dataset.
    pub(crate) dataset: String,
    /// Phase.
    pub(crate) state: IntentState,
    /// Staging prefix (relative to bronze) holding this batch's parts.
    pub(crate) staging_prefix: String,
    /// Final paths (relative to bronze) that the batch publishes; filled when entering `Publishing`.
    pub(crate) finals: Vec<String>,
    /// When it started.
    pub(crate) started_at: DateTime<Utc>,
    /// The unique component of the batch's output names (`part-b<id>-<token>-<seq>.parquet`): unique across
    /// checkpoints sharing one bronze, and what recovery looks for to delete the parts of an uncommitted batch.
    /// Empty in intents written before it existed.
    #[serde(default)]
    pub(crate) token: String,
    /// Delta, state `Committing`: the sled commit that follows the table commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) commit: Option<BatchCommit>,
}

/// Everything one batch changes in the checkpoint, applied atomically by [`super::CheckpointStore::commit`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BatchCommit {
    /// The batch.
    pub batch: BatchRecord,
    /// New state of every file the batch read.
    pub files: Vec<FileRecord>,
    /// Schema to fix, when this batch inferred it.
    pub schema: Option<StoredSchema>,
}
