//! `lander checkpoint`: inspect, verify and repair what the sled checkpoint holds.
//!
//! Takes a checkpoint directory (plus landing or bronze for `pending` and `verify`) and prints aligned tables,
//! or with `--json` one JSON document on stdout whose fields are listed on each `*Json` type below (and in the
//! README, "Inspecting the checkpoint").
//!
//! Guarantees:
//! - Read commands (`list`, `show`, `stats`, `pending`, `verify`, `export`) never write to a store that a daemon
//!   holds: they go through [`CheckpointStore::open_snapshot`], which reads a copy when the store is locked (a
//!   note on stderr says so).
//! - Writing commands (`reset`, `import`) need the single-writer lock and refuse while a daemon runs.
//! - `export` then `import` restores the store byte for byte (keys and values).
//!
//! Exit codes: 0 ok, 1 runtime failure (including `verify` finding problems), 2 usage errors (bad flags,
//! `reset` without `--yes` and without a terminal to confirm on).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
use parquet::file::FOOTER_SIZE;
use serde::{Deserialize, Serialize};

use super::{load_config, LocationArgs};
use crate::checkpoint::{
    BatchRecord, CheckpointError, CheckpointStore, FileRecord, FileStatus, SCHEMA_VERSION,
};
use crate::config::{parse_duration, Config};
use crate::source::listing::{plan_dataset, Change, PlanOptions};
use crate::store::StoreLocation;

/// Bronze objects whose size (and Parquet footer) `verify` checks at once.
const VERIFY_CONCURRENCY: usize = 8;

/// Options shared by the read commands.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Locations and config (only --checkpoint, and --landing/--bronze where a command says so, are used).
    #[command(flatten)]
    pub locations: LocationArgs,
    /// Only this dataset.
    #[arg(long, short = 'd')]
    pub dataset: Option<String>,
    /// Print one JSON document on stdout instead of tables (fields: see the README).
    #[arg(long)]
    pub json: bool,
}

/// `list --status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFilter {
    /// Fully processed.
    Ok,
    /// Any status, with at least one record sent to the quarantine.
    Quarantined,
    /// Processed up to an offset; a growing file whose tail may still come.
    Partial,
    /// Rejected as a whole (copied to the quarantine).
    Failed,
}

impl StatusFilter {
    fn matches(self, f: &FileRecord) -> bool {
        match self {
            StatusFilter::Ok => f.status == FileStatus::Ok,
            StatusFilter::Quarantined => f.records_quarantined > 0,
            StatusFilter::Partial => f.status == FileStatus::Partial,
            StatusFilter::Failed => matches!(f.status, FileStatus::Failed { .. }),
        }
    }
}

/// `lander checkpoint list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Common options.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Only files processed at or after this time: RFC 3339, a UTC date (2025-01-31), or a duration ago (90m, 2d).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    /// Only files with this status (`quarantined`: files with at least one quarantined record).
    #[arg(long, value_enum)]
    pub status: Option<StatusFilter>,
    /// At most this many files (the most recently processed ones; the list is newest first).
    #[arg(long)]
    pub limit: Option<usize>,
}

/// `lander checkpoint show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Common options.
    #[command(flatten)]
    pub common: CommonArgs,
    /// A landing file (path relative to landing, e.g. gharchive/2015-01-01-0.json.gz, or a unique suffix of
    /// one) or a batch id (a number; every dataset's batch with that id unless --dataset is given).
    pub target: String,
}

/// `lander checkpoint stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Common options.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `lander checkpoint pending`.
#[derive(Debug, Args)]
pub struct PendingArgs {
    /// Common options (uses --landing).
    #[command(flatten)]
    pub common: CommonArgs,
    /// Settle time, as for `lander run` [default: from the config, 1s].
    #[arg(long, value_parser = parse_duration)]
    pub settle_time: Option<Duration>,
}

/// `lander checkpoint verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Common options (uses --bronze).
    #[command(flatten)]
    pub common: CommonArgs,
    /// Skip reading Parquet footers (check existence and sizes only).
    #[arg(long)]
    pub skip_row_counts: bool,
}

/// `lander checkpoint reset`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["file", "dataset", "all"])))]
pub struct ResetArgs {
    /// Locations and config (uses --checkpoint).
    #[command(flatten)]
    pub locations: LocationArgs,
    /// Forget one landing file (path relative to landing, e.g. gharchive/2015-01-01-0.json.gz).
    #[arg(long)]
    pub file: Option<String>,
    /// Forget every file of this dataset.
    #[arg(long, short = 'd')]
    pub dataset: Option<String>,
    /// Forget every file of every dataset.
    #[arg(long)]
    pub all: bool,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Only show what would be forgotten.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the forgotten files as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `lander checkpoint export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Locations and config (uses --checkpoint).
    #[command(flatten)]
    pub locations: LocationArgs,
}

/// `lander checkpoint import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Locations and config (uses --checkpoint; the directory is created if missing).
    #[command(flatten)]
    pub locations: LocationArgs,
    /// Read the export from this file instead of stdin.
    #[arg(long)]
    pub input: Option<PathBuf>,
}

/// Checkpoint subcommands.
#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    /// List processed landing files, newest first: size, bytes consumed, records ok/quarantined/duplicate,
    /// last batch, time.
    List(ListArgs),
    /// Everything known about one landing file or one batch.
    Show(ShowArgs),
    /// Per-dataset totals: files, bytes, rows, quarantined, duplicates, batches, event times, dedup state.
    Stats(StatsArgs),
    /// What is in landing and not processed yet (what the next run would pick up).
    Pending(PendingArgs),
    /// Cross-check the checkpoint against bronze; exit 1 listing every problem found.
    Verify(VerifyArgs),
    /// Forget processed files so that the next run ingests them again (dedup keeps bronze free of duplicates).
    Reset(ResetArgs),
    /// Dump every key and value as JSON lines on stdout (backup, migration, bug reports).
    Export(ExportArgs),
    /// Replace the store's content with an export read from stdin (or --input).
    Import(ImportArgs),
    /// Hourly datasets (GH Archive): missing, late, failed and quarantined hours, with the fetch commands to
    /// re-try the missing ones.
    Gaps(super::gaps::GapsArgs),
}

/// Runs a checkpoint subcommand.
///
/// # Errors
/// A missing or unreadable checkpoint, a locked one for `reset`/`import`, listing failures, problems found by
/// `verify`, and failures to write stdout (a broken pipe is mapped to exit code 0 by `main`).
pub async fn run(cmd: CheckpointCommand) -> anyhow::Result<()> {
    match cmd {
        CheckpointCommand::List(a) => list(a).await,
        CheckpointCommand::Show(a) => show(a).await,
        CheckpointCommand::Stats(a) => stats(a).await,
        CheckpointCommand::Pending(a) => pending(a).await,
        CheckpointCommand::Verify(a) => verify(a).await,
        CheckpointCommand::Reset(a) => reset(a).await,
        CheckpointCommand::Export(a) => export(a).await,
        CheckpointCommand::Import(a) => import(a).await,
        CheckpointCommand::Gaps(a) => super::gaps::run(a).await,
    }
}

// ---------------------------------------------------------------------------------------------------------
// JSON documents. Their field names are a stable interface: scripts parse them.

/// One processed landing file (`list --json` prints an array of these; `show --json` embeds one).
#[derive(Debug, Serialize)]
pub struct FileJson {
    /// Dataset.
    pub dataset: String,
    /// Path relative to landing (`<dataset>/...`).
    pub path: String,
    /// `ok`, `partial` or `failed`.
    pub status: &'static str,
    /// Why the file failed (`failed` only, else null).
    pub reason: Option<String>,
    /// Size in bytes when last processed.
    pub size: u64,
    /// Modification time of the landing file when last processed (RFC 3339, UTC).
    pub modified: DateTime<Utc>,
    /// Bytes of the file consumed.
    pub bytes_consumed: u64,
    /// Lines (NDJSON) or records (CSV) consumed.
    pub lines_consumed: u64,
    /// Records written to bronze, over every read of the current version.
    pub records_ok: u64,
    /// Records sent to the quarantine.
    pub records_quarantined: u64,
    /// Records dropped as duplicates.
    pub records_duplicate: u64,
    /// The last batch that read it.
    pub batch: Option<u64>,
    /// Every batch that read the current version, oldest first.
    pub batches: Vec<u64>,
    /// How many times replaced content was ingested again (0 for a file never replaced).
    pub versions: u32,
    /// Content fingerprint (xxh3 of head, tail and size).
    pub fingerprint: String,
    /// Hash of the first KiB (tells appends from replacements).
    pub head_hash: String,
    /// When the last batch reading it committed (RFC 3339, UTC).
    pub processed_at: DateTime<Utc>,
    /// Committed unterminated lines that the file's later growth continued (omitted when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub continued_lines: Vec<u64>,
}

impl From<&FileRecord> for FileJson {
    fn from(f: &FileRecord) -> Self {
        Self {
            dataset: f.dataset.clone(),
            path: f.path.clone(),
            status: f.status.name(),
            reason: match &f.status {
                FileStatus::Failed { reason } => Some(reason.clone()),
                _ => None,
            },
            size: f.size,
            modified: f.modified,
            bytes_consumed: f.bytes_consumed,
            lines_consumed: f.lines_consumed,
            records_ok: f.records_ok,
            records_quarantined: f.records_quarantined,
            records_duplicate: f.records_duplicate,
            batch: f.batches.last().copied(),
            batches: f.batches.clone(),
            versions: f.versions,
            fingerprint: f.fingerprint.clone(),
            head_hash: f.head_hash.clone(),
            processed_at: f.processed_at,
            continued_lines: f.continued_lines.clone(),
        }
    }
}

/// One read of a landing file by a batch (`show --json` of a file: `reads`; of a batch: `inputs`).
#[derive(Debug, Serialize)]
pub struct InputJson {
    /// The batch.
    pub batch: u64,
    /// Landing path.
    pub path: String,
    /// First byte read.
    pub start: u64,
    /// One past the last byte read.
    pub end: u64,
    /// Records written to bronze.
    pub records_ok: u64,
    /// Records quarantined.
    pub records_quarantined: u64,
    /// Duplicates dropped.
    pub records_duplicate: u64,
    /// When the batch committed (RFC 3339, UTC).
    pub committed_at: DateTime<Utc>,
}

/// One file a batch published (`show --json`: `outputs`).
#[derive(Debug, Serialize)]
pub struct OutputJson {
    /// The batch.
    pub batch: u64,
    /// Path relative to bronze (`<dataset>/year=.../part-*.parquet`, or under `_quarantine/<dataset>/`).
    pub path: String,
    /// Rows in it.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Whether it is in the quarantine rather than a data part.
    pub quarantine: bool,
}

/// One committed batch (`show --json <id>`: `batches`).
#[derive(Debug, Serialize)]
pub struct BatchJson {
    /// Dataset.
    pub dataset: String,
    /// Batch id (increasing per dataset from 1).
    pub id: u64,
    /// When it started (RFC 3339, UTC).
    pub started_at: DateTime<Utc>,
    /// When it committed (RFC 3339, UTC).
    pub committed_at: DateTime<Utc>,
    /// Commit time minus start time, in milliseconds.
    pub duration_ms: i64,
    /// Rows written to bronze.
    pub rows: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Records quarantined.
    pub quarantined: u64,
    /// Oldest event time written (RFC 3339, UTC), null when no rows.
    pub min_event_time: Option<DateTime<Utc>>,
    /// Newest event time written (RFC 3339, UTC), null when no rows.
    pub max_event_time: Option<DateTime<Utc>>,
    /// Byte ranges of landing files read.
    pub inputs: Vec<InputJson>,
    /// Files published.
    pub outputs: Vec<OutputJson>,
}

impl From<&BatchRecord> for BatchJson {
    fn from(b: &BatchRecord) -> Self {
        Self {
            dataset: b.dataset.clone(),
            id: b.id,
            started_at: b.started_at,
            committed_at: b.committed_at,
            duration_ms: (b.committed_at - b.started_at).num_milliseconds(),
            rows: b.rows,
            duplicates: b.duplicates,
            quarantined: b.quarantined,
            min_event_time: b.min_event_time.and_then(DateTime::from_timestamp_micros),
            max_event_time: b.max_event_time.and_then(DateTime::from_timestamp_micros),
            inputs: b
                .inputs
                .iter()
                .map(|i| InputJson {
                    batch: b.id,
                    path: i.path.clone(),
                    start: i.start,
                    end: i.end,
                    records_ok: i.records_ok,
                    records_quarantined: i.records_quarantined,
                    records_duplicate: i.records_duplicate,
                    committed_at: b.committed_at,
                })
                .collect(),
            outputs: outputs_of(b),
        }
    }
}

fn outputs_of(b: &BatchRecord) -> Vec<OutputJson> {
    b.outputs
        .iter()
        .map(|o| OutputJson {
            batch: b.id,
            path: o.path.clone(),
            rows: o.rows,
            bytes: o.bytes,
            quarantine: o.path.starts_with("_quarantine/"),
        })
        .collect()
}

/// `show --json` of a landing file.
#[derive(Debug, Serialize)]
pub struct ShowFileJson {
    /// Always `file`.
    pub kind: &'static str,
    /// The file record.
    pub file: FileJson,
    /// Every read of this path by a committed batch (including reads from before a reset), oldest first.
    pub reads: Vec<InputJson>,
    /// The files published by those batches (shared with the batches' other inputs).
    pub outputs: Vec<OutputJson>,
}

/// `show --json` of a batch id.
#[derive(Debug, Serialize)]
pub struct ShowBatchJson {
    /// Always `batch`.
    pub kind: &'static str,
    /// The batch with that id in each dataset that has one (one entry with `--dataset`).
    pub batches: Vec<BatchJson>,
}

/// `stats --json`.
#[derive(Debug, Serialize)]
pub struct StatsJson {
    /// The checkpoint directory.
    pub checkpoint: String,
    /// Whether these numbers come from a snapshot of a store locked by a running daemon.
    pub snapshot: bool,
    /// Format version of the store.
    pub schema_version: u32,
    /// Size of the store on disk in bytes.
    pub store_bytes: u64,
    /// One entry per dataset with state, sorted by name.
    pub datasets: Vec<DatasetStatsJson>,
}

/// One dataset in `stats --json`.
#[derive(Debug, Serialize)]
pub struct DatasetStatsJson {
    /// Dataset.
    pub dataset: String,
    /// Landing files with a record.
    pub files: u64,
    /// Of which `ok`.
    pub files_ok: u64,
    /// Of which `partial`.
    pub files_partial: u64,
    /// Of which `failed`.
    pub files_failed: u64,
    /// Landing bytes consumed (sum over file records).
    pub bytes: u64,
    /// Rows written to bronze (sum over batches).
    pub rows: u64,
    /// Records quarantined (sum over batches).
    pub quarantined: u64,
    /// Duplicates dropped (sum over batches).
    pub duplicates: u64,
    /// Committed batches.
    pub batches: u64,
    /// Id of the newest committed batch.
    pub last_batch: Option<u64>,
    /// When the newest batch committed (RFC 3339, UTC).
    pub last_commit: Option<DateTime<Utc>>,
    /// Oldest event time in bronze (min over batches; RFC 3339, UTC).
    pub first_event_time: Option<DateTime<Utc>>,
    /// Newest event time in bronze (max over batches; RFC 3339, UTC).
    pub last_event_time: Option<DateTime<Utc>>,
    /// Bronze data parts published (quarantine files not included).
    pub bronze_files: u64,
    /// Their total size in bytes.
    pub bronze_bytes: u64,
    /// Files published under `_quarantine/<dataset>/`.
    pub quarantine_files: u64,
    /// Dedup keys remembered.
    pub dedup_keys: u64,
    /// Dedup run files (`<checkpoint>/dedup/<dataset>/`).
    pub dedup_runs: u64,
    /// Their size on disk in bytes.
    pub dedup_bytes: u64,
    /// Bytes of their filters, which a running lander holds in memory.
    pub dedup_filter_bytes: u64,
    /// Newest event time seen, from which the dedup horizon counts back (RFC 3339, UTC).
    pub dedup_watermark: Option<DateTime<Utc>>,
    /// Dedup horizon from the configuration, e.g. `35d`.
    pub dedup_horizon: String,
    /// The same in seconds.
    pub dedup_horizon_secs: u64,
    /// Id of a batch that was started and not committed (in flight, or interrupted), if any.
    pub in_flight_batch: Option<u64>,
    /// Columns of the fixed CSV schema (null for datasets without one).
    pub csv_columns: Option<usize>,
}

/// One entry of `pending --json` (an array).
#[derive(Debug, Serialize)]
pub struct PendingJson {
    /// Dataset.
    pub dataset: String,
    /// Path relative to landing.
    pub path: String,
    /// `new`, `appended` (a grown file: only the tail is read) or `replaced` (new content, read again).
    pub change: &'static str,
    /// Current size in bytes.
    pub size: u64,
    /// Bytes the next run reads (size minus what was consumed).
    pub pending_bytes: u64,
    /// Where reading starts.
    pub start_offset: u64,
    /// Modification time (RFC 3339, UTC).
    pub modified: DateTime<Utc>,
    /// False while the file is still settling (a gzip file changed less than the settle time ago): a run now
    /// would leave it for later.
    pub ready: bool,
}

/// `verify --json`.
#[derive(Debug, Serialize)]
pub struct VerifyJson {
    /// True when no problem was found (the exit code is then 0).
    pub consistent: bool,
    /// Datasets checked.
    pub datasets: Vec<String>,
    /// Committed output files checked.
    pub outputs_checked: u64,
    /// Whether Parquet footers were read to check row counts.
    pub row_counts_checked: bool,
    /// Files listed in bronze for the orphan check.
    pub bronze_files_listed: u64,
    /// Every problem found.
    pub problems: Vec<ProblemJson>,
    /// Observations that are not problems (an in-flight batch, a snapshot).
    pub notes: Vec<String>,
}

/// One problem found by `verify`.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemJson {
    /// `missing`, `size_mismatch`, `row_count_mismatch`, `unreadable`, `orphan`, `ingested_twice` or
    /// `unknown_batch`.
    pub kind: &'static str,
    /// Dataset.
    pub dataset: String,
    /// The bronze path (relative to bronze) or, for `ingested_twice`/`unknown_batch`, the landing path.
    pub path: String,
    /// The batch concerned, when one is.
    pub batch: Option<u64>,
    /// A sentence saying what is wrong.
    pub message: String,
}

/// `reset --json`.
#[derive(Debug, Serialize)]
pub struct ResetJson {
    /// Whether nothing was changed (`--dry-run`).
    pub dry_run: bool,
    /// The file records forgotten (or that would be).
    pub files: Vec<FileJson>,
}

/// One line of `export` (and of the input of `import`).
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportLine {
    /// The key: UTF-8 text, or lowercase hex when `key_hex` is true.
    pub key: String,
    /// Present and true when the key is not UTF-8 and `key` is hex.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key_hex: bool,
    /// The value when it is JSON (embedded verbatim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Box<serde_json::value::RawValue>>,
    /// The value as lowercase hex when it is not JSON (binary dedup state, empty index values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_hex: Option<String>,
}

// ---------------------------------------------------------------------------------------------------------
// Commands.

pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("checkpoint reads and writes do not panic")
}

/// Opens the checkpoint for reading (a snapshot when a daemon holds it).
pub(super) async fn open_read(config: &Config) -> anyhow::Result<CheckpointStore> {
    let dir = config.checkpoint.clone();
    if !CheckpointStore::exists(&dir) {
        bail!(
            "no checkpoint in {} (nothing was ingested with this --checkpoint yet)",
            dir.display()
        );
    }
    let d = dir.clone();
    let store = blocking(move || CheckpointStore::open_snapshot(&d))
        .await
        .with_context(|| format!("while opening the checkpoint in {}", dir.display()))?;
    if store.is_snapshot() {
        let pid = CheckpointStore::lock_holder(&dir).unwrap_or_else(|| "unknown".into());
        // A failed note must not fail the command.
        let _ = writeln!(
            std::io::stderr(),
            "checkpoint is locked by a running lander (pid {pid}); showing a snapshot"
        );
    }
    Ok(store)
}

/// Opens the checkpoint for writing; a daemon holding it is reported as such.
async fn open_write(config: &Config, action: &str) -> anyhow::Result<CheckpointStore> {
    let dir = config.checkpoint.clone();
    let d = dir.clone();
    match blocking(move || CheckpointStore::open(&d)).await {
        Ok(s) => Ok(s),
        Err(CheckpointError::Locked { dir, pid }) => bail!(
            "checkpoint {} is locked by a running lander (pid {pid}): stop it before you {action}",
            dir.display()
        ),
        Err(e) => {
            Err(e).with_context(|| format!("while opening the checkpoint in {}", dir.display()))
        }
    }
}

/// Writes `text` to stdout (errors, a broken pipe included, are returned).
pub(super) fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("while writing to stdout")
}

pub(super) fn emit_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("while encoding the JSON output")?;
    text.push('\n');
    emit(&text)
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let config = load_config(&a.common.locations)?;
    let store = open_read(&config).await?;
    let ds = a.common.dataset.clone();
    let mut files = blocking(move || store.files(ds.as_deref()))
        .await
        .context("while reading the file records")?;
    files.retain(|f| {
        a.since.is_none_or(|s| f.processed_at >= s) && a.status.is_none_or(|st| st.matches(f))
    });
    files.sort_by(|x, y| {
        y.processed_at
            .cmp(&x.processed_at)
            .then_with(|| x.path.cmp(&y.path))
    });
    if let Some(n) = a.limit {
        files.truncate(n);
    }
    if a.common.json {
        let rows: Vec<FileJson> = files.iter().map(FileJson::from).collect();
        return emit_json(&rows);
    }
    if files.is_empty() {
        let _ = writeln!(std::io::stderr(), "no processed files match");
        return Ok(());
    }
    emit(&file_table(&files).render())
}

fn file_table(files: &[FileRecord]) -> Table {
    let mut t = Table::new(&[
        ("PATH", false),
        ("STATUS", false),
        ("SIZE", true),
        ("CONSUMED", true),
        ("OK", true),
        ("QUARANTINED", true),
        ("DUPLICATES", true),
        ("BATCH", true),
        ("PROCESSED (UTC)", false),
    ]);
    for f in files {
        t.row(vec![
            f.path.clone(),
            f.status.name().to_string(),
            human_bytes(f.size),
            human_bytes(f.bytes_consumed),
            f.records_ok.to_string(),
            f.records_quarantined.to_string(),
            f.records_duplicate.to_string(),
            f.batches
                .last()
                .map_or_else(|| "-".into(), |b| b.to_string()),
            fmt_time(f.processed_at),
        ]);
    }
    t
}

/// Finds the one file record `arg` names: an exact landing path, a unique suffix of one (`2015-01-01-0.json.gz`),
/// or a longer path ending in one (`layers/landing/gharchive/...`).
fn resolve_file(files: Vec<FileRecord>, arg: &str) -> anyhow::Result<Option<FileRecord>> {
    let arg = arg.trim_start_matches("./");
    if let Some(f) = files.iter().find(|f| f.path == arg) {
        return Ok(Some(f.clone()));
    }
    let mut hits: Vec<FileRecord> = files
        .into_iter()
        .filter(|f| f.path.ends_with(&format!("/{arg}")) || arg.ends_with(&format!("/{}", f.path)))
        .collect();
    match hits.len() {
        0 => Ok(None),
        1 => Ok(hits.pop()),
        _ => bail!(
            "{arg} matches {} files: {}; give the path relative to landing",
            hits.len(),
            hits.iter()
                .map(|f| f.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

async fn show(a: ShowArgs) -> anyhow::Result<()> {
    let config = load_config(&a.common.locations)?;
    let store = open_read(&config).await?;
    let target = a.target.trim().to_string();
    let dataset = a.common.dataset.clone();
    if let Ok(id) = target.parse::<u64>() {
        let batches = blocking(move || -> Result<Vec<BatchRecord>, CheckpointError> {
            let datasets = match dataset {
                Some(d) => vec![d],
                None => store.datasets()?,
            };
            let mut out = Vec::new();
            for d in datasets {
                out.extend(store.batch(&d, id)?);
            }
            Ok(out)
        })
        .await
        .context("while reading batch records")?;
        if batches.is_empty() {
            match &a.common.dataset {
                Some(d) => bail!("no batch {id} in dataset {d}"),
                None => bail!("no dataset has a batch {id}"),
            }
        }
        if a.common.json {
            return emit_json(&ShowBatchJson {
                kind: "batch",
                batches: batches.iter().map(BatchJson::from).collect(),
            });
        }
        let text: Vec<String> = batches.iter().map(render_batch).collect();
        return emit(&text.join("\n"));
    }

    let t = target.clone();
    let (file, batches) = blocking(
        move || -> anyhow::Result<(Option<FileRecord>, Vec<BatchRecord>)> {
            let files = store.files(dataset.as_deref())?;
            let Some(file) = resolve_file(files, &t)? else {
                return Ok((None, Vec::new()));
            };
            let batches = store.batches(Some(&file.dataset))?;
            Ok((Some(file), batches))
        },
    )
    .await
    .context("while reading the checkpoint")?;
    let Some(file) = file else {
        bail!(
            "no landing file {target} in the checkpoint (list them with `lander checkpoint list`)"
        );
    };
    let mut reads = Vec::new();
    let mut outputs = Vec::new();
    for b in &batches {
        let mine: Vec<_> = b.inputs.iter().filter(|i| i.path == file.path).collect();
        if mine.is_empty() {
            continue;
        }
        for i in mine {
            reads.push(InputJson {
                batch: b.id,
                path: i.path.clone(),
                start: i.start,
                end: i.end,
                records_ok: i.records_ok,
                records_quarantined: i.records_quarantined,
                records_duplicate: i.records_duplicate,
                committed_at: b.committed_at,
            });
        }
        outputs.extend(outputs_of(b));
    }
    if a.common.json {
        return emit_json(&ShowFileJson {
            kind: "file",
            file: FileJson::from(&file),
            reads,
            outputs,
        });
    }
    emit(&render_file(&file, &reads, &outputs))
}

fn render_file(f: &FileRecord, reads: &[InputJson], outputs: &[OutputJson]) -> String {
    let mut s = String::new();
    let status = match &f.status {
        FileStatus::Failed { reason } => format!("failed: {reason}"),
        other => other.name().to_string(),
    };
    let kv = [
        ("file", f.path.clone()),
        ("dataset", f.dataset.clone()),
        ("status", status),
        ("size", format!("{} ({})", f.size, human_bytes(f.size))),
        ("modified", fmt_time(f.modified)),
        ("fingerprint", f.fingerprint.clone()),
        ("head hash", f.head_hash.clone()),
        (
            "consumed",
            format!("{} bytes, {} lines", f.bytes_consumed, f.lines_consumed),
        ),
        (
            "records",
            format!(
                "{} ok, {} quarantined, {} duplicates",
                f.records_ok, f.records_quarantined, f.records_duplicate
            ),
        ),
        ("versions", f.versions.to_string()),
        (
            "batches",
            f.batches
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("processed", fmt_time(f.processed_at)),
    ];
    s.push_str(&kv_block(&kv));
    s.push_str("\nreads\n");
    let mut t = Table::new(&[
        ("BATCH", true),
        ("BYTES", false),
        ("OK", true),
        ("QUARANTINED", true),
        ("DUPLICATES", true),
        ("COMMITTED (UTC)", false),
    ]);
    for r in reads {
        t.row(vec![
            r.batch.to_string(),
            format!("{}..{}", r.start, r.end),
            r.records_ok.to_string(),
            r.records_quarantined.to_string(),
            r.records_duplicate.to_string(),
            fmt_time(r.committed_at),
        ]);
    }
    s.push_str(&t.render_indented("  "));
    s.push_str("\noutputs of those batches (shared with their other inputs)\n");
    s.push_str(&output_table(outputs).render_indented("  "));
    s
}

fn output_table(outputs: &[OutputJson]) -> Table {
    let mut t = Table::new(&[
        ("BATCH", true),
        ("PATH", false),
        ("ROWS", true),
        ("BYTES", true),
    ]);
    for o in outputs {
        t.row(vec![
            o.batch.to_string(),
            o.path.clone(),
            o.rows.to_string(),
            human_bytes(o.bytes),
        ]);
    }
    t
}

fn render_batch(b: &BatchRecord) -> String {
    let j = BatchJson::from(b);
    let times = match (j.min_event_time, j.max_event_time) {
        (Some(lo), Some(hi)) => format!("{} .. {}", fmt_time(lo), fmt_time(hi)),
        _ => "-".into(),
    };
    let kv = [
        ("batch", format!("{} of {}", b.id, b.dataset)),
        ("started", fmt_time(b.started_at)),
        ("committed", fmt_time(b.committed_at)),
        ("duration", format!("{:.2}s", j.duration_ms as f64 / 1000.0)),
        ("rows", b.rows.to_string()),
        ("duplicates", b.duplicates.to_string()),
        ("quarantined", b.quarantined.to_string()),
        ("event time", times),
    ];
    let mut s = kv_block(&kv);
    s.push_str("\ninputs\n");
    let mut t = Table::new(&[
        ("PATH", false),
        ("BYTES", false),
        ("OK", true),
        ("QUARANTINED", true),
        ("DUPLICATES", true),
    ]);
    for i in &j.inputs {
        t.row(vec![
            i.path.clone(),
            format!("{}..{}", i.start, i.end),
            i.records_ok.to_string(),
            i.records_quarantined.to_string(),
            i.records_duplicate.to_string(),
        ]);
    }
    s.push_str(&t.render_indented("  "));
    s.push_str("\noutputs\n");
    s.push_str(&output_table(&j.outputs).render_indented("  "));
    s
}

async fn stats(a: StatsArgs) -> anyhow::Result<()> {
    let config = load_config(&a.common.locations)?;
    let store = open_read(&config).await?;
    let only = a.common.dataset.clone();
    let horizon = config.dedup_horizon;
    let doc = blocking(move || compute_stats(&store, only.as_deref(), horizon))
        .await
        .context("while reading the checkpoint")?;
    if let Some(d) = &a.common.dataset {
        if doc.datasets.is_empty() {
            bail!("the checkpoint has no state for dataset {d}");
        }
    }
    if a.common.json {
        return emit_json(&doc);
    }
    emit(&render_stats(&doc))
}

/// A horizon in whole days as `35d` (humantime would say `1month 4days 13h 26m 24s`), anything else as
/// humantime does.
fn format_horizon(d: Duration) -> String {
    if d.as_secs() > 0 && d.as_secs().is_multiple_of(86_400) && d.subsec_nanos() == 0 {
        format!("{}d", d.as_secs() / 86_400)
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// The dedup index size of `ds`, read from its run files without loading or cleaning them.
fn dedup_index_stats(
    store: &CheckpointStore,
    ds: &str,
) -> Result<crate::dedup::index::IndexStats, crate::Error> {
    let last = store.last_batch_id(ds)?;
    let mut stats = crate::dedup::index::open_committed(store.dir(), ds, last)?.stats();
    // Keys an imported or old-layout store still keeps in sled, until the next run moves them into runs.
    stats.keys += store.legacy_dedup_key_count(ds) as u64;
    Ok(stats)
}

fn compute_stats(
    store: &CheckpointStore,
    only: Option<&str>,
    horizon: Duration,
) -> Result<StatsJson, crate::Error> {
    let mut datasets = Vec::new();
    for ds in store.datasets()? {
        if only.is_some_and(|o| o != ds) {
            continue;
        }
        let files = store.files(Some(&ds))?;
        let batches = store.batches(Some(&ds))?;
        let dedup = dedup_index_stats(store, &ds)?;
        let mut s = DatasetStatsJson {
            dataset: ds.clone(),
            files: files.len() as u64,
            files_ok: 0,
            files_partial: 0,
            files_failed: 0,
            bytes: files.iter().map(|f| f.bytes_consumed).sum(),
            rows: batches.iter().map(|b| b.rows).sum(),
            quarantined: batches.iter().map(|b| b.quarantined).sum(),
            duplicates: batches.iter().map(|b| b.duplicates).sum(),
            batches: batches.len() as u64,
            last_batch: batches.iter().map(|b| b.id).max(),
            last_commit: batches.iter().map(|b| b.committed_at).max(),
            first_event_time: batches
                .iter()
                .filter_map(|b| b.min_event_time)
                .min()
                .and_then(DateTime::from_timestamp_micros),
            last_event_time: batches
                .iter()
                .filter_map(|b| b.max_event_time)
                .max()
                .and_then(DateTime::from_timestamp_micros),
            bronze_files: 0,
            bronze_bytes: 0,
            quarantine_files: 0,
            dedup_keys: dedup.keys,
            dedup_runs: dedup.runs,
            dedup_bytes: dedup.bytes,
            dedup_filter_bytes: dedup.filter_bytes,
            dedup_watermark: store
                .watermark(&ds)?
                .and_then(DateTime::from_timestamp_micros),
            dedup_horizon: format_horizon(horizon),
            dedup_horizon_secs: horizon.as_secs(),
            in_flight_batch: store.intent(&ds)?.map(|i| i.id),
            csv_columns: store.schema(&ds)?.map(|s| s.columns.len()),
        };
        for f in &files {
            match f.status {
                FileStatus::Ok => s.files_ok += 1,
                FileStatus::Partial => s.files_partial += 1,
                FileStatus::Failed { .. } => s.files_failed += 1,
            }
        }
        for o in batches.iter().flat_map(|b| &b.outputs) {
            if o.path.starts_with("_quarantine/") {
                s.quarantine_files += 1;
            } else {
                s.bronze_files += 1;
                s.bronze_bytes += o.bytes;
            }
        }
        datasets.push(s);
    }
    Ok(StatsJson {
        checkpoint: store.dir().display().to_string(),
        snapshot: store.is_snapshot(),
        schema_version: SCHEMA_VERSION,
        store_bytes: store.size_on_disk()?,
        datasets,
    })
}

/// The rows of one dataset's column in the human `stats` table.
fn stat_cells(d: &DatasetStatsJson) -> Vec<(&'static str, String)> {
    let opt_time = |t: Option<DateTime<Utc>>| t.map_or_else(|| "-".into(), fmt_time);
    let opt_num = |n: Option<u64>| n.map_or_else(|| "-".into(), |n| n.to_string());
    vec![
        ("files", d.files.to_string()),
        (
            "  ok/partial/failed",
            format!("{}/{}/{}", d.files_ok, d.files_partial, d.files_failed),
        ),
        ("bytes consumed", human_bytes(d.bytes)),
        ("rows", d.rows.to_string()),
        ("quarantined rows", d.quarantined.to_string()),
        ("duplicates dropped", d.duplicates.to_string()),
        ("batches", d.batches.to_string()),
        ("last commit", opt_time(d.last_commit)),
        ("first event", opt_time(d.first_event_time)),
        ("last event", opt_time(d.last_event_time)),
        (
            "bronze files",
            format!("{} ({})", d.bronze_files, human_bytes(d.bronze_bytes)),
        ),
        ("quarantine files", d.quarantine_files.to_string()),
        ("dedup keys", d.dedup_keys.to_string()),
        (
            "dedup runs",
            format!("{} ({})", d.dedup_runs, human_bytes(d.dedup_bytes)),
        ),
        ("dedup filters", human_bytes(d.dedup_filter_bytes)),
        ("dedup watermark", opt_time(d.dedup_watermark)),
        ("dedup horizon", d.dedup_horizon.clone()),
        ("in-flight batch", opt_num(d.in_flight_batch)),
        ("csv columns", opt_num(d.csv_columns.map(|c| c as u64))),
    ]
}

fn render_stats(doc: &StatsJson) -> String {
    let mut s = kv_block(&[
        ("checkpoint", doc.checkpoint.clone()),
        (
            "store",
            format!(
                "{} on disk, format version {}{}",
                human_bytes(doc.store_bytes),
                doc.schema_version,
                if doc.snapshot { " (snapshot)" } else { "" }
            ),
        ),
    ]);
    if doc.datasets.is_empty() {
        s.push_str("no dataset has state yet\n");
        return s;
    }
    s.push('\n');
    let mut headers: Vec<(&str, bool)> = vec![("DATASET", false)];
    headers.extend(doc.datasets.iter().map(|d| (d.dataset.as_str(), true)));
    let mut t = Table::new(&headers);
    // One column per dataset: transpose the per-dataset (name, value) lists.
    let columns: Vec<Vec<(&str, String)>> = doc.datasets.iter().map(stat_cells).collect();
    for (i, (name, _)) in columns[0].iter().enumerate() {
        let mut r = vec![name.to_string()];
        r.extend(columns.iter().map(|c| c[i].1.clone()));
        t.row(r);
    }
    s.push_str(&t.render());
    s
}

async fn pending(a: PendingArgs) -> anyhow::Result<()> {
    let mut config = load_config(&a.common.locations)?;
    if let Some(s) = a.settle_time {
        config.settle_time = s;
    }
    let datasets: Vec<String> = match &a.common.dataset {
        Some(d) if !config.datasets.contains_key(d) => {
            return Err(crate::config::ConfigError::Invalid(format!(
                "--dataset {d}: no such dataset is configured"
            )))
            .context("while choosing datasets")
        }
        Some(d) => vec![d.clone()],
        None => config.datasets.keys().cloned().collect(),
    };
    let landing = StoreLocation::open_with(&config.landing, &config.storage)
        .context("while opening landing")?;
    let store = open_read(&config).await?;
    let now = Utc::now();
    let opts = |settle_time| PlanOptions {
        settle_time,
        latest_first: false,
        now,
        ..crate::modes::plan_options(&config, false)
    };
    let mut rows = Vec::new();
    for ds in &datasets {
        // Everything the next runs will read, then what a run now would read: the difference is still settling.
        let all = plan_dataset(&landing, &store, ds, &opts(Duration::ZERO))
            .await
            .with_context(|| format!("while listing {ds} in landing"))?;
        if all.is_empty() {
            continue;
        }
        let ready: HashSet<String> = plan_dataset(&landing, &store, ds, &opts(config.settle_time))
            .await
            .with_context(|| format!("while listing {ds} in landing"))?
            .into_iter()
            .map(|f| f.path)
            .collect();
        rows.extend(all.into_iter().map(|f| PendingJson {
            ready: ready.contains(&f.path),
            dataset: f.dataset.clone(),
            change: match f.change {
                Change::New => "new",
                Change::Appended => "appended",
                Change::Replaced => "replaced",
            },
            size: f.size,
            pending_bytes: f.pending_bytes(),
            start_offset: f.start_offset,
            modified: f.modified,
            path: f.path,
        }));
    }
    if a.common.json {
        return emit_json(&rows);
    }
    if rows.is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "nothing pending in {}",
            landing.describe("")
        );
        return Ok(());
    }
    let mut t = Table::new(&[
        ("PATH", false),
        ("CHANGE", false),
        ("SIZE", true),
        ("PENDING", true),
        ("MODIFIED (UTC)", false),
        ("READY", false),
    ]);
    for r in &rows {
        t.row(vec![
            r.path.clone(),
            r.change.to_string(),
            human_bytes(r.size),
            human_bytes(r.pending_bytes),
            fmt_time(r.modified),
            if r.ready { "yes" } else { "settling" }.to_string(),
        ]);
    }
    emit(&t.render())?;
    let total: u64 = rows.iter().map(|r| r.pending_bytes).sum();
    let _ = writeln!(
        std::io::stderr(),
        "{} file(s), {} to read",
        rows.len(),
        human_bytes(total)
    );
    Ok(())
}

/// What the checkpoint says about bronze, for one dataset.
struct Known {
    /// Committed outputs: path -> (batch, rows, bytes).
    outputs: BTreeMap<String, (u64, u64, u64)>,
    /// Final names of an uncommitted batch (published or about to be).
    in_flight: BTreeSet<String>,
}

fn known_outputs(
    store: &CheckpointStore,
    datasets: &[String],
) -> Result<(HashMap<String, Known>, Vec<String>), CheckpointError> {
    let mut out = HashMap::new();
    let mut notes = Vec::new();
    for ds in datasets {
        let mut k = Known {
            outputs: BTreeMap::new(),
            in_flight: BTreeSet::new(),
        };
        for b in store.batches(Some(ds))? {
            for o in b.outputs {
                k.outputs.insert(o.path, (b.id, o.rows, o.bytes));
            }
        }
        if let Some(intent) = store.intent(ds)? {
            notes.push(if store.is_snapshot() {
                format!(
                    "{ds}: batch {} is in flight ({:?})",
                    intent.id, intent.state
                )
            } else {
                format!(
                    "{ds}: batch {} was interrupted ({:?}); the next run rolls it back",
                    intent.id, intent.state
                )
            });
            k.in_flight.extend(intent.finals);
        }
        out.insert(ds.clone(), k);
    }
    Ok((out, notes))
}

fn is_known(known: &HashMap<String, Known>, ds: &str, path: &str) -> bool {
    known
        .get(ds)
        .is_some_and(|k| k.outputs.contains_key(path) || k.in_flight.contains(path))
}

/// Top-level directory names below `prefix` in bronze.
async fn child_dirs(bronze: &StoreLocation, prefix: &str) -> anyhow::Result<Vec<String>> {
    let p = bronze.path(prefix);
    match bronze.store.list_with_delimiter(Some(&p)).await {
        Ok(l) => Ok(l
            .common_prefixes
            .iter()
            .filter_map(|c| c.filename().map(str::to_string))
            .collect()),
        Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => {
            Err(e).with_context(|| format!("while listing {} in bronze", bronze.describe(prefix)))
        }
    }
}

/// Every object below `prefix` in bronze: (relative path, size).
async fn list_objects(bronze: &StoreLocation, prefix: &str) -> anyhow::Result<Vec<(String, u64)>> {
    let p = bronze.path(prefix);
    let mut stream = bronze.store.list(Some(&p));
    let mut out = Vec::new();
    while let Some(meta) = stream.next().await {
        let meta = match meta {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("while listing {} in bronze", bronze.describe(prefix))
                })
            }
        };
        if let Some(rel) = bronze.relative(&meta.location) {
            out.push((rel, meta.size));
        }
    }
    Ok(out)
}

/// Whether a listed bronze object is one the checkpoint must know: a visible Parquet file of the dataset, or
/// any published quarantine file.
fn must_be_known(ds: &str, rel: &str) -> bool {
    let hidden = |s: &str| s.starts_with('_') || s.starts_with('.');
    if let Some(rest) = rel.strip_prefix(&format!("_quarantine/{ds}/")) {
        return !rest.split('/').any(hidden)
            && (rest.ends_with(".parquet") || rest.starts_with("files/"));
    }
    if let Some(rest) = rel.strip_prefix(&format!("{ds}/")) {
        return rest.ends_with(".parquet") && !rest.split('/').any(hidden);
    }
    false
}

async fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    let config = load_config(&a.common.locations)?;
    let bronze = StoreLocation::open_with(&config.bronze, &config.storage)
        .context("while opening bronze")?;
    let mut store = open_read(&config).await?;

    // Datasets: those with state, plus any directory in bronze or in its quarantine (all orphans then).
    let datasets: Vec<String> = match &a.common.dataset {
        Some(d) => vec![d.clone()],
        None => {
            let s = store.clone();
            let mut set: BTreeSet<String> = blocking(move || s.datasets())
                .await
                .context("while reading the checkpoint")?
                .into_iter()
                .collect();
            set.extend(
                child_dirs(&bronze, "")
                    .await?
                    .into_iter()
                    .filter(|d| !d.starts_with('_') && !d.starts_with('.')),
            );
            set.extend(child_dirs(&bronze, "_quarantine").await?);
            set.into_iter().collect()
        }
    };

    let s = store.clone();
    let ds_list = datasets.clone();
    let (known, mut notes, files, batches) = blocking(move || {
        let (known, notes) = known_outputs(&s, &ds_list)?;
        let mut files = Vec::new();
        let mut batches = Vec::new();
        for ds in &ds_list {
            files.extend(s.files(Some(ds))?);
            batches.extend(s.batches(Some(ds))?);
        }
        Ok::<_, CheckpointError>((known, notes, files, batches))
    })
    .await
    .context("while reading the checkpoint")?;

    let mut problems: Vec<ProblemJson> = Vec::new();

    // 1. Every committed output exists with its recorded size (and row count, from the Parquet footer).
    let checks: Vec<(String, String, u64, u64, u64)> = known
        .iter()
        .flat_map(|(ds, k)| {
            k.outputs
                .iter()
                .map(|(p, (b, rows, bytes))| (ds.clone(), p.clone(), *b, *rows, *bytes))
        })
        .collect();
    let outputs_checked = checks.len() as u64;
    let read_rows = !a.skip_row_counts;
    let found: Vec<Option<ProblemJson>> = futures::stream::iter(checks)
        .map(|(ds, path, batch, rows, bytes)| {
            let bronze = bronze.clone();
            async move { check_output(&bronze, ds, path, batch, rows, bytes, read_rows).await }
        })
        .buffer_unordered(VERIFY_CONCURRENCY)
        .collect()
        .await;
    problems.extend(found.into_iter().flatten());

    // 2. No Parquet file in bronze (or file in its quarantine) unknown to the checkpoint.
    let mut listed = 0u64;
    let mut orphans: Vec<(String, String)> = Vec::new();
    for ds in &datasets {
        for prefix in [ds.clone(), format!("_quarantine/{ds}")] {
            for (rel, _) in list_objects(&bronze, &prefix).await? {
                if !must_be_known(ds, &rel) {
                    continue;
                }
                listed += 1;
                if !is_known(&known, ds, &rel) {
                    orphans.push((ds.clone(), rel));
                }
            }
        }
    }
    if !orphans.is_empty() && store.is_snapshot() {
        // The daemon may have published and committed since the snapshot: check again against a fresh one.
        store = open_read(&config).await?;
        let s = store.clone();
        let ds_list = datasets.clone();
        let (fresh, _) = blocking(move || known_outputs(&s, &ds_list))
            .await
            .context("while reading the checkpoint")?;
        orphans.retain(|(ds, rel)| !is_known(&fresh, ds, rel));
    }
    for (ds, rel) in orphans {
        problems.push(ProblemJson {
            kind: "orphan",
            message: format!(
                "{rel}: in bronze but unknown to the checkpoint (orphan: no committed batch of {ds} published it)"
            ),
            dataset: ds,
            path: rel,
            batch: None,
        });
    }

    // 3. No landed file ingested twice, and no file record naming a batch that does not exist.
    problems.extend(twice_problems(&files, &batches));
    if store.is_snapshot() {
        notes.push("read from a snapshot: a running lander holds the checkpoint".into());
    }

    problems.sort_by(|x, y| (&x.dataset, &x.path, x.kind).cmp(&(&y.dataset, &y.path, y.kind)));
    let doc = VerifyJson {
        consistent: problems.is_empty(),
        datasets,
        outputs_checked,
        row_counts_checked: read_rows,
        bronze_files_listed: listed,
        problems,
        notes,
    };
    if a.common.json {
        emit_json(&doc)?;
    } else {
        let mut text = String::new();
        for n in &doc.notes {
            text.push_str(&format!("note: {n}\n"));
        }
        for p in &doc.problems {
            text.push_str(&format!("problem: {}\n", p.message));
        }
        if doc.consistent {
            text.push_str(&format!(
                "ok: {} committed output(s) present with their recorded sizes{}, {} file(s) in bronze all known, no landing file ingested twice ({})\n",
                doc.outputs_checked,
                if doc.row_counts_checked { " and row counts" } else { "" },
                doc.bronze_files_listed,
                if doc.datasets.is_empty() { "no datasets".to_string() } else { doc.datasets.join(", ") },
            ));
        }
        emit(&text)?;
    }
    if !doc.consistent {
        bail!(
            "verify found {} problem(s) between the checkpoint and {}",
            doc.problems.len(),
            bronze.describe("")
        );
    }
    Ok(())
}

async fn check_output(
    bronze: &StoreLocation,
    dataset: String,
    path: String,
    batch: u64,
    rows: u64,
    bytes: u64,
    read_rows: bool,
) -> Option<ProblemJson> {
    let problem = |kind, message| {
        Some(ProblemJson {
            kind,
            dataset: dataset.clone(),
            path: path.clone(),
            batch: Some(batch),
            message,
        })
    };
    let location = bronze.path(&path);
    let meta = match bronze.store.head(&location).await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) => {
            return problem(
                "missing",
                format!(
                    "{path}: missing from bronze (committed by {dataset} batch {batch} with {rows} rows, {bytes} bytes)"
                ),
            )
        }
        Err(e) => {
            return problem(
                "unreadable",
                format!("{path}: cannot be read ({dataset} batch {batch}): {e}"),
            )
        }
    };
    if meta.size != bytes {
        return problem(
            "size_mismatch",
            format!(
                "{path}: {} bytes in bronze, the checkpoint recorded {bytes} ({dataset} batch {batch})",
                meta.size
            ),
        );
    }
    if !read_rows || !path.ends_with(".parquet") {
        return None;
    }
    match footer_rows(bronze, &location, meta.size).await {
        Ok(found) if found == rows => None,
        Ok(found) => problem(
            "row_count_mismatch",
            format!(
                "{path}: {found} rows in its Parquet footer, the checkpoint recorded {rows} ({dataset} batch {batch})"
            ),
        ),
        Err(e) => problem(
            "unreadable",
            format!("{path}: cannot read its Parquet footer ({dataset} batch {batch}): {e}"),
        ),
    }
}

/// Bytes read from the end of a Parquet file at first: the footer of a bronze part (a few row groups) fits.
const FOOTER_PREFETCH_BYTES: u64 = 64 << 10;

/// The row count in the footer of the Parquet file at `location` (one range read, two for a large footer).
async fn footer_rows(
    bronze: &StoreLocation,
    location: &object_store::path::Path,
    size: u64,
) -> Result<u64, String> {
    let footer = FOOTER_SIZE as u64;
    if size < footer {
        return Err(format!("{size} bytes is too short for a Parquet file"));
    }
    let start = size.saturating_sub(FOOTER_PREFETCH_BYTES);
    let mut tail = bronze
        .store
        .get_range(location, start..size)
        .await
        .map_err(|e| e.to_string())?;
    let mut last = [0u8; FOOTER_SIZE];
    last.copy_from_slice(&tail[tail.len() - FOOTER_SIZE..]);
    let meta_len = FooterTail::try_new(&last)
        .map_err(|e| e.to_string())?
        .metadata_length() as u64;
    if meta_len + footer > size {
        return Err(format!(
            "footer claims {meta_len} bytes of metadata in a {size}-byte file"
        ));
    }
    let meta_start = size - footer - meta_len;
    let mut base = start;
    if meta_start < start {
        tail = bronze
            .store
            .get_range(location, meta_start..size)
            .await
            .map_err(|e| e.to_string())?;
        base = meta_start;
    }
    let from = usize::try_from(meta_start - base).map_err(|e| e.to_string())?;
    let md = ParquetMetaDataReader::decode_metadata(&tail[from..tail.len() - FOOTER_SIZE])
        .map_err(|e| e.to_string())?;
    u64::try_from(md.file_metadata().num_rows()).map_err(|e| e.to_string())
}

/// Overlapping reads of one landing file that both wrote rows, unless the file was replaced since (a new
/// version is read again on purpose); and file records naming missing batches.
///
/// A re-read that wrote no rows (e.g. after `reset`, when dedup dropped every record) duplicates nothing, so
/// it is not a problem. Appended tails are read as disjoint byte ranges.
fn twice_problems(files: &[FileRecord], batches: &[BatchRecord]) -> Vec<ProblemJson> {
    let mut problems = Vec::new();
    let records: HashMap<(&str, &str), &FileRecord> = files
        .iter()
        .map(|f| ((f.dataset.as_str(), f.path.as_str()), f))
        .collect();
    let ids: HashSet<(&str, u64)> = batches.iter().map(|b| (b.dataset.as_str(), b.id)).collect();
    let mut reads: BTreeMap<(&str, &str), Vec<(u64, &crate::checkpoint::BatchInput)>> =
        BTreeMap::new();
    for b in batches {
        for i in &b.inputs {
            reads
                .entry((b.dataset.as_str(), i.path.as_str()))
                .or_default()
                .push((b.id, i));
        }
    }
    for ((ds, path), list) in &reads {
        if records.get(&(*ds, *path)).is_some_and(|f| f.versions > 0) {
            continue;
        }
        for (n, (b1, r1)) in list.iter().enumerate() {
            for (b2, r2) in &list[n + 1..] {
                let overlap = r1.start < r2.end && r2.start < r1.end;
                if overlap && r1.records_ok > 0 && r2.records_ok > 0 {
                    problems.push(ProblemJson {
                        kind: "ingested_twice",
                        dataset: ds.to_string(),
                        path: path.to_string(),
                        batch: Some(*b2),
                        message: format!(
                            "{path}: landing file ingested twice: {ds} batch {b1} read bytes {}..{} ({} rows) and batch {b2} read bytes {}..{} ({} rows)",
                            r1.start, r1.end, r1.records_ok, r2.start, r2.end, r2.records_ok
                        ),
                    });
                }
            }
        }
    }
    for f in files {
        for b in &f.batches {
            if !ids.contains(&(f.dataset.as_str(), *b)) {
                problems.push(ProblemJson {
                    kind: "unknown_batch",
                    dataset: f.dataset.clone(),
                    path: f.path.clone(),
                    batch: Some(*b),
                    message: format!(
                        "{}: its file record names {} batch {b}, which the checkpoint does not have",
                        f.path, f.dataset
                    ),
                });
            }
        }
    }
    problems
}

async fn reset(a: ResetArgs) -> anyhow::Result<()> {
    let config = load_config(&a.locations)?;
    if !CheckpointStore::exists(&config.checkpoint) {
        bail!(
            "no checkpoint in {} (nothing to reset)",
            config.checkpoint.display()
        );
    }
    if !a.dry_run && !a.yes && !std::io::stdin().is_terminal() {
        clap::Error::raw(
            clap::error::ErrorKind::MissingRequiredArgument,
            "refusing to reset the checkpoint without confirmation: stdin is not a terminal; pass --yes (or --dry-run to see what would be forgotten)\n",
        )
        .exit();
    }
    let store = if a.dry_run {
        open_read(&config).await?
    } else {
        open_write(&config, "reset it").await?
    };
    let s = store.clone();
    let (file, dataset, all) = (a.file.clone(), a.dataset.clone(), a.all);
    let targets: Vec<FileRecord> = blocking(move || -> anyhow::Result<Vec<FileRecord>> {
        let files = s.files(None)?;
        Ok(match (file, dataset, all) {
            (Some(f), _, _) => resolve_file(files, &f)?.into_iter().collect(),
            (None, Some(d), _) => files.into_iter().filter(|f| f.dataset == d).collect(),
            _ => files,
        })
    })
    .await
    .context("while reading the file records")?;
    if targets.is_empty() {
        if let Some(f) = &a.file {
            bail!("no landing file {f} in the checkpoint (already forgotten, or never processed)");
        }
        let _ = writeln!(std::io::stderr(), "nothing to reset: no file records match");
        return Ok(());
    }
    if a.dry_run {
        if a.json {
            return emit_json(&ResetJson {
                dry_run: true,
                files: targets.iter().map(FileJson::from).collect(),
            });
        }
        let _ = writeln!(
            std::io::stderr(),
            "dry run: would forget {} file(s); nothing changed",
            targets.len()
        );
        return emit(&file_table(&targets).render());
    }
    if !a.yes {
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "forget {} file record(s) in {} so that the next run reads them again? [y/N] ",
            targets.len(),
            config.checkpoint.display()
        );
        let _ = err.flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .context("while reading the confirmation")?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("reset aborted: nothing changed");
        }
    }
    let s = store.clone();
    let t = targets.clone();
    let forgotten = blocking(move || -> Result<Vec<FileRecord>, CheckpointError> {
        let mut out = Vec::new();
        for f in &t {
            out.extend(s.reset_files(Some(&f.dataset), Some(&f.path))?);
        }
        Ok(out)
    })
    .await
    .context("while forgetting file records")?;
    if a.json {
        return emit_json(&ResetJson {
            dry_run: false,
            files: forgotten.iter().map(FileJson::from).collect(),
        });
    }
    emit(&format!(
        "forgot {} file(s); the next run reads them again and dedup drops records already in bronze (within the dedup horizon, {})\n",
        forgotten.len(),
        format_horizon(config.dedup_horizon)
    ))
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// The export line of one key/value: JSON values are embedded verbatim when that round-trips byte for byte.
fn export_line(key: &[u8], value: &[u8]) -> ExportLine {
    let (key, key_hex) = match std::str::from_utf8(key) {
        Ok(k) => (k.to_string(), false),
        Err(_) => (to_hex(key), true),
    };
    let raw = std::str::from_utf8(value)
        .ok()
        .filter(|v| !v.contains(['\n', '\r']) && *v != "null")
        .and_then(|v| serde_json::value::RawValue::from_string(v.to_string()).ok())
        .filter(|r| r.get().as_bytes() == value);
    let value_hex = raw.is_none().then(|| to_hex(value));
    ExportLine {
        key,
        key_hex,
        value: raw,
        value_hex,
    }
}

async fn export(a: ExportArgs) -> anyhow::Result<()> {
    let config = load_config(&a.locations)?;
    let store = open_read(&config).await?;
    let entries = blocking(move || -> Result<_, crate::Error> {
        let mut entries = store.export()?;
        // The dedup index lives in run files, not in sled: export its keys in the old sled layout, which an
        // import restores and the next run moves back into runs.
        for ds in store.datasets()? {
            let last = store.last_batch_id(&ds)?;
            let runs = crate::dedup::index::open_committed(store.dir(), &ds, last)?;
            for (day, key) in runs.keys_by_day()? {
                entries.push((
                    CheckpointStore::legacy_dedup_entry(&ds, day, key),
                    Vec::new(),
                ));
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        Ok(entries)
    })
    .await
    .context("while reading the checkpoint")?;
    let n = entries.len();
    blocking(move || -> anyhow::Result<()> {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for (k, v) in &entries {
            serde_json::to_writer(&mut out, &export_line(k, v))
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
                .context("while writing the export to stdout")?;
        }
        out.flush().context("while writing the export to stdout")
    })
    .await?;
    let _ = writeln!(std::io::stderr(), "exported {n} key(s)");
    Ok(())
}

fn parse_export(reader: impl BufRead, source: &str) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut entries = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("while reading {source}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| anyhow::anyhow!("line {} of {source}: {what}", n + 1);
        let l: ExportLine = serde_json::from_str(&line).map_err(|e| bad(&e.to_string()))?;
        let key = if l.key_hex {
            from_hex(&l.key).ok_or_else(|| bad("key_hex is set but key is not hex"))?
        } else {
            l.key.into_bytes()
        };
        let value = match (l.value, l.value_hex) {
            (Some(v), None) => v.get().as_bytes().to_vec(),
            (None, Some(h)) => from_hex(&h).ok_or_else(|| bad("value_hex is not hex"))?,
            _ => return Err(bad("expected exactly one of value and value_hex")),
        };
        entries.push((key, value));
    }
    match entries.iter().find(|(k, _)| k == b"meta/schema_version") {
        None => {
            bail!("{source} is not a lander checkpoint export: it has no meta/schema_version key")
        }
        Some((_, v)) if v != SCHEMA_VERSION.to_string().as_bytes() => bail!(
            "{source} has checkpoint format version {}, this lander reads version {SCHEMA_VERSION}",
            String::from_utf8_lossy(v)
        ),
        Some(_) => Ok(entries),
    }
}

async fn import(a: ImportArgs) -> anyhow::Result<()> {
    let config = load_config(&a.locations)?;
    let input = a.input.clone();
    let entries = blocking(move || match &input {
        Some(p) => {
            let f =
                std::fs::File::open(p).with_context(|| format!("while opening {}", p.display()))?;
            parse_export(std::io::BufReader::new(f), &p.display().to_string())
        }
        None => parse_export(std::io::stdin().lock(), "stdin"),
    })
    .await?;
    let store = open_write(&config, "import into it").await?;
    let n = entries.len();
    blocking(move || -> Result<(), crate::Error> {
        store.import(&entries)?;
        // The import holds the whole dedup state (as old-layout keys, see `export`): run files of the store it
        // replaced no longer describe it.
        let runs = store.dir().join("dedup");
        match std::fs::remove_dir_all(&runs) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(crate::dedup::index::IndexError::Io {
                    path: runs,
                    source: e,
                }
                .into())
            }
            _ => Ok(()),
        }
    })
    .await
    .context("while replacing the checkpoint content")?;
    emit(&format!(
        "imported {n} key(s) into {}\n",
        config.checkpoint.display()
    ))
}

// ---------------------------------------------------------------------------------------------------------
// Formatting.

fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    if let Ok(d) = humantime::parse_duration(s) {
        if let Ok(d) = chrono::Duration::from_std(d) {
            return Ok(Utc::now() - d);
        }
    }
    Err(format!(
        "invalid time {s:?}: expected RFC 3339 (2025-01-31T12:00:00Z), a UTC date (2025-01-31) or a duration ago (90m, 2d)"
    ))
}

pub(super) fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub(super) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn kv_block(kv: &[(&str, String)]) -> String {
    let width = kv.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    kv.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

/// An aligned text table: columns separated by two spaces, numbers right-aligned, no trailing spaces.
struct Table {
    headers: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: &[(&str, bool)]) -> Self {
        Self {
            headers: headers.iter().map(|(h, _)| h.to_string()).collect(),
            right: headers.iter().map(|(_, r)| *r).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self) -> String {
        self.render_indented("")
    }

    fn render_indented(&self, indent: &str) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::from(indent);
            for (i, c) in r.iter().enumerate().take(n) {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i] - c.chars().count();
                if self.right[i] {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(c);
                } else {
                    line.push_str(c);
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let b = vec![0u8, 1, 0xab, 0xff];
        assert_eq!(to_hex(&b), "0001abff");
        assert_eq!(from_hex("0001abff"), Some(b));
        assert_eq!(from_hex("0g"), None);
        assert_eq!(from_hex("abc"), None);
    }

    #[test]
    fn export_lines_keep_bytes_exactly() {
        for (k, v) in [
            (&b"meta/schema_version"[..], &b"1"[..]),
            (b"file/g/a", br#"{"v":"1","x":[1,2]}"#),
            (b"dexp/g/\xff\x00", b""),
            (b"wm/g", &7i64.to_be_bytes()),
            (b"k", b" 1"),
            (b"k", b"null"),
        ] {
            let line = serde_json::to_string(&export_line(k, v)).expect("encode");
            assert!(!line.contains('\n'));
            let back = parse_export(
                format!("{line}\n{{\"key\":\"meta/schema_version\",\"value\":{SCHEMA_VERSION}}}\n")
                    .as_bytes(),
                "test",
            )
            .expect("parse");
            assert_eq!(back[0], (k.to_vec(), v.to_vec()), "{line}");
        }
    }

    #[test]
    fn tables_align_and_trim() {
        let mut t = Table::new(&[("A", false), ("N", true), ("Z", false)]);
        t.row(vec!["long".into(), "1".into(), "".into()]);
        t.row(vec!["x".into(), "100".into(), "end".into()]);
        assert_eq!(t.render(), "A       N  Z\nlong    1\nx     100  end\n");
    }

    #[test]
    fn since_accepts_dates_times_and_durations() {
        assert_eq!(
            parse_since("2025-01-31").expect("date").to_rfc3339(),
            "2025-01-31T00:00:00+00:00"
        );
        assert!(parse_since("2025-01-31T12:00:00Z").is_ok());
        assert!(parse_since("2h").expect("ago") < Utc::now());
        assert!(parse_since("yesterday-ish").is_err());
    }

    #[test]
    fn quarantine_and_hidden_paths() {
        assert!(must_be_known(
            "g",
            "g/year=2015/month=01/day=01/part-b1-0.parquet"
        ));
        assert!(!must_be_known("g", "g/_tmp/part.parquet"));
        assert!(!must_be_known("g", "g/year=2015/x.crc"));
        assert!(must_be_known("g", "_quarantine/g/part-b00000001-q.parquet"));
        assert!(must_be_known(
            "g",
            "_quarantine/g/files/b00000001/g/a.json.gz"
        ));
        assert!(!must_be_known("g", "_staging/g/b1/part.parquet"));
    }
}
