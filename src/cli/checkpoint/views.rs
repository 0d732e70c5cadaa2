//! The JSON documents of `lander checkpoint --json`. Their field names are a stable interface: scripts parse them
//! (docs/operating.md lists them under "Inspecting the checkpoint").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::checkpoint::{BatchInput, BatchRecord, FileRecord, FileStatus, OutputFile};

/// One processed landing file as `list --json` prints it (`show --json` embeds one, `reset --json` lists them):
/// the stored [`FileRecord`], field for field, except that `status` is its short name (`ok`, `partial` or
/// `failed`), with `reason` (why a file failed, else null) and `batch` (the last batch that read it) beside it.
pub(crate) fn file_json(f: &FileRecord) -> Value {
    let mut v =
        serde_json::to_value(f).expect("a file record is plain data and serializes to JSON");
    if let Some(map) = v.as_object_mut() {
        let reason = match &f.status {
            FileStatus::Failed { reason } => Value::from(reason.as_str()),
            _ => Value::Null,
        };
        map.insert("status".into(), f.status.name().into());
        map.insert("reason".into(), reason);
        map.insert("batch".into(), f.batches.last().copied().into());
        map.insert("records_truncated".into(), f.records_truncated.into());
    }
    v
}

/// One read of a landing file by a batch (`show --json` of a file: `reads`; of a batch: `inputs`): the stored
/// [`BatchInput`] (`path`, `start`, `end`, `records_ok`, `records_quarantined`, `records_duplicate`) between the
/// batch id and its commit time.
#[derive(Debug, Serialize)]
pub(crate) struct InputJson {
    /// The batch.
    pub(crate) batch: u64,
    /// The byte range read and its counts, as stored.
    #[serde(flatten)]
    pub(crate) input: BatchInput,
    /// When the batch committed (RFC 3339, UTC).
    pub(crate) committed_at: DateTime<Utc>,
}

impl InputJson {
    /// Input `i` of batch `b`.
    pub(super) fn of(b: &BatchRecord, i: &BatchInput) -> Self {
        Self {
            batch: b.id,
            input: i.clone(),
            committed_at: b.committed_at,
        }
    }
}

/// One file a batch published (`show --json`: `outputs`): the stored [`OutputFile`] (`path` relative to bronze,
/// `rows`, `bytes`) with the batch id, and whether it is in the quarantine rather than a data part.
#[derive(Debug, Serialize)]
pub(crate) struct OutputJson {
    /// The batch.
    pub(crate) batch: u64,
    /// The file, as stored.
    #[serde(flatten)]
    pub(crate) output: OutputFile,
    /// Whether it is under `_quarantine/`.
    pub(crate) quarantine: bool,
}

/// One committed batch (`show --json <id>`: `batches`).
#[derive(Debug, Serialize)]
pub(crate) struct BatchJson {
    /// Dataset.
    pub(crate) dataset: String,
    /// Batch id (increasing per dataset from 1).
    pub(crate) id: u64,
    /// When it started (RFC 3339, UTC).
    pub(crate) started_at: DateTime<Utc>,
    /// When it committed (RFC 3339, UTC).
    pub(crate) committed_at: DateTime<Utc>,
    /// Commit time minus start time, in milliseconds.
    pub(crate) duration_ms: i64,
    /// Rows written to bronze.
    pub(crate) rows: u64,
    /// Duplicates dropped.
    pub(crate) duplicates: u64,
    /// Records quarantined.
    pub(crate) quarantined: u64,
    /// Oldest event time written (RFC 3339, UTC), null when no rows.
    pub(crate) min_event_time: Option<DateTime<Utc>>,
    /// Newest event time written (RFC 3339, UTC), null when no rows.
    pub(crate) max_event_time: Option<DateTime<Utc>>,
    /// Byte ranges of landing files read.
    pub(crate) inputs: Vec<InputJson>,
    /// Files published.
    pub(crate) outputs: Vec<OutputJson>,
}

impl From<&BatchRecord> for BatchJson {
    fn from(b: &BatchRecord) -> Self {
        Self {
            dataset: b.dataset.clone(),
            id: b.id,
            started_at: b.started_at,
            committed_at: b.committed_at,
            duration_ms: (b.committed_at - b.started_at).num_milliseconds(),
            rows: b.counts.rows,
            duplicates: b.counts.duplicates,
            quarantined: b.counts.quarantined,
            min_event_time: b.min_event_time.and_then(DateTime::from_timestamp_micros),
            max_event_time: b.max_event_time.and_then(DateTime::from_timestamp_micros),
            inputs: b.inputs.iter().map(|i| InputJson::of(b, i)).collect(),
            outputs: outputs_of(b),
        }
    }
}

pub(super) fn outputs_of(b: &BatchRecord) -> Vec<OutputJson> {
    b.outputs
        .iter()
        .map(|o| OutputJson {
            batch: b.id,
            output: o.clone(),
            quarantine: o.path.starts_with("_quarantine/"),
        })
        .collect()
}

/// `show --json` of a landing file.
#[derive(Debug, Serialize)]
pub(crate) struct ShowFileJson {
    /// Always `file`.
    pub(crate) kind: &'static str,
    /// The file record.
    pub(crate) file: Value,
    /// Every read of this path by a committed batch (including reads from before a reset), oldest first.
    pub(crate) reads: Vec<InputJson>,
    /// The files published by those batches (shared with the batches' other inputs).
    pub(crate) outputs: Vec<OutputJson>,
}

/// `show --json` of a batch id.
#[derive(Debug, Serialize)]
pub(crate) struct ShowBatchJson {
    /// Always `batch`.
    pub(crate) kind: &'static str,
    /// The batch with that id in each dataset that has one (one entry with `--dataset`).
    pub(crate) batches: Vec<BatchJson>,
}

/// `stats --json`.
#[derive(Debug, Serialize)]
pub(crate) struct StatsJson {
    /// The checkpoint directory.
    pub(crate) checkpoint: String,
    /// Whether these numbers come from a snapshot of a store locked by a running daemon.
    pub(crate) snapshot: bool,
    /// Format version of the store.
    pub(crate) schema_version: u32,
    /// Size of the store on disk in bytes.
    pub(crate) store_bytes: u64,
    /// One entry per dataset with state, sorted by name.
    pub(crate) datasets: Vec<DatasetStatsJson>,
}

/// One dataset in `stats --json`.
#[derive(Debug, Serialize)]
pub(crate) struct DatasetStatsJson {
    /// Dataset.
    pub(crate) dataset: String,
    /// Landing files with a record.
    pub(crate) files: u64,
    /// Of which `ok`.
    pub(crate) files_ok: u64,
    /// Of which `partial`.
    pub(crate) files_partial: u64,
    /// Of which `failed`.
    pub(crate) files_failed: u64,
    /// Landing bytes consumed (sum over file records).
    pub(crate) bytes: u64,
    /// Rows written to bronze (sum over batches).
    pub(crate) rows: u64,
    /// Records quarantined (sum over batches).
    pub(crate) quarantined: u64,
    /// Duplicates dropped (sum over batches).
    pub(crate) duplicates: u64,
    /// Committed batches.
    pub(crate) batches: u64,
    /// Id of the newest committed batch.
    pub(crate) last_batch: Option<u64>,
    /// When the newest batch committed (RFC 3339, UTC).
    pub(crate) last_commit: Option<DateTime<Utc>>,
    /// Oldest event time in bronze (min over batches; RFC 3339, UTC).
    pub(crate) first_event_time: Option<DateTime<Utc>>,
    /// Newest event time in bronze (max over batches; RFC 3339, UTC).
    pub(crate) last_event_time: Option<DateTime<Utc>>,
    /// Bronze data parts published (quarantine files not included).
    pub(crate) bronze_files: u64,
    /// Their total size in bytes.
    pub(crate) bronze_bytes: u64,
    /// Files published under `_quarantine/<dataset>/`.
    pub(crate) quarantine_files: u64,
    /// Dedup keys remembered.
    pub(crate) dedup_keys: u64,
    /// Dedup run files (`<checkpoint>/dedup/<dataset>/`).
    pub(crate) dedup_runs: u64,
    /// Their size on disk in bytes.
    pub(crate) dedup_bytes: u64,
    /// Bytes of their filters, which a running lander holds in memory.
    pub(crate) dedup_filter_bytes: u64,
    /// Newest event time seen, from which the dedup horizon counts back (RFC 3339, UTC).
    pub(crate) dedup_watermark: Option<DateTime<Utc>>,
    /// Dedup horizon from the configuration, e.g. `35d`.
    pub(crate) dedup_horizon: String,
    /// The same in seconds.
    pub(crate) dedup_horizon_secs: u64,
    /// Id of a batch that was started and not committed (in flight, or interrupted), if any.
    pub(crate) in_flight_batch: Option<u64>,
    /// Columns of the fixed CSV schema (null for datasets without one).
    pub(crate) csv_columns: Option<usize>,
}

/// One entry of `pending --json` (an array).
#[derive(Debug, Serialize)]
pub(crate) struct PendingJson {
    /// Dataset.
    pub(crate) dataset: String,
    /// Path relative to landing.
    pub(crate) path: String,
    /// `new`, `appended` (a grown file: only the tail is read), `rewritten` (the bytes already read changed: read
    /// whole again) or `skipped` (never read as it is: see `reason`; size, offsets are 0 and `modified` null).
    pub(crate) change: &'static str,
    /// Current size in bytes.
    pub(crate) size: u64,
    /// Bytes the next run reads (size minus what was consumed).
    pub(crate) pending_bytes: u64,
    /// Where reading starts.
    pub(crate) start_offset: u64,
    /// Modification time (RFC 3339, UTC); null for a skipped entry.
    pub(crate) modified: Option<DateTime<Utc>>,
    /// False while the file is still settling (a gzip file changed less than the settle time ago): a run now
    /// would leave it for later. Always false for a skipped entry.
    pub(crate) ready: bool,
    /// Why a `skipped` entry is never read until it is fixed, or why a file is not ready although it is not
    /// settling (its modification time lies in the future); absent otherwise. A file directly in landing is
    /// listed with an empty `dataset`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

/// `reset --json`.
#[derive(Debug, Serialize)]
pub(crate) struct ResetJson {
    /// Whether nothing was changed (`--dry-run`).
    pub(crate) dry_run: bool,
    /// The file records forgotten (or that would be).
    pub(crate) files: Vec<Value>,
}

/// One line of `export` (and of the input of `import`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ExportLine {
    /// The key: UTF-8 text, or lowercase hex when `key_hex` is true.
    pub(crate) key: String,
    /// Present and true when the key is not UTF-8 and `key` is hex.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) key_hex: bool,
    /// The value when it is JSON (embedded verbatim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) value: Option<Box<serde_json::value::RawValue>>,
    /// The value as lowercase hex when it is not JSON (binary dedup state, empty index values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) value_hex: Option<String>,
}
