//! `lander checkpoint`: inspect, verify and repair what the sled checkpoint holds.
//!
//! Takes a checkpoint directory (plus landing or bronze for `pending` and `verify`) and prints aligned tables,
//! or with `--json` one JSON document on stdout whose fields are listed on each `*Json` type below (and in the
//! docs/operating.md, "Inspecting the checkpoint").
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

//!
//! # Layout
//! - `mod.rs` (this file): the clap arguments and the dispatcher. The open/emit/format helpers every command
//!   shares are `crate::cli::output`'s.
//! - [`views`]: the JSON documents (a stable interface).
//! - `show`: `list` and `show`; `stats`; `pending`; `verify`; `reset`; `transfer` (`export`, `import`).
//! - `table`: aligned tables and key/value blocks, and the `--since` parser.
//!
//! [`CheckpointStore::open_snapshot`]: crate::checkpoint::CheckpointStore::open_snapshot

mod pending;
mod rebuild;
mod reset;
mod show;
mod stats;
mod table;
mod transfer;
mod verify;
pub(crate) mod views;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};

use super::LocationArgs;
use crate::checkpoint::{FileRecord, FileStatus};
use crate::config::parse_duration;
use table::parse_since;
pub(crate) use views::*;

/// Options shared by the read commands.
#[derive(Debug, Clone, Args)]
pub(crate) struct CommonArgs {
    /// Locations and config (only --checkpoint, and --landing/--bronze where a command says so, are used).
    #[command(flatten)]
    pub(crate) locations: LocationArgs,
    /// Only this dataset.
    #[arg(long, short = 'd')]
    pub(crate) dataset: Option<String>,
    /// Print one JSON document on stdout instead of tables (fields: see docs/operating.md).
    #[arg(long)]
    pub(crate) json: bool,
}

/// `list --status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatusFilter {
    /// Fully processed.
    Ok,
    /// Any status, with at least one record sent to the quarantine.
    Quarantined,
    /// Processed up to an offset; a growing file whose tail may still come.
    Partial,
    /// Rejected as a whole (copied to the quarantine).
    Failed,
    /// Any status, with records quarantined with their first bytes only: kept in landing by `clean_source`.
    Truncated,
}

impl StatusFilter {
    fn matches(self, f: &FileRecord) -> bool {
        match self {
            StatusFilter::Ok => f.status == FileStatus::Ok,
            StatusFilter::Quarantined => f.counts.quarantined > 0,
            StatusFilter::Partial => f.status == FileStatus::Partial,
            StatusFilter::Failed => matches!(f.status, FileStatus::Failed { .. }),
            StatusFilter::Truncated => f.records_truncated > 0,
        }
    }
}

/// `lander checkpoint list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Common options.
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// Only files processed at or after this time: RFC 3339, a UTC date (2025-01-31), or a duration ago (90m, 2d).
    #[arg(long, value_parser = parse_since)]
    pub(crate) since: Option<DateTime<Utc>>,
    /// Only files with this status (`quarantined`: files with at least one quarantined record).
    #[arg(long, value_enum)]
    pub(crate) status: Option<StatusFilter>,
    /// At most this many files (the most recently processed ones; the list is newest first).
    #[arg(long)]
    pub(crate) limit: Option<usize>,
}

/// `lander checkpoint show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// Common options.
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// A landing file (path relative to landing, e.g. gharchive/2015-01-01-0.json.gz, or a unique suffix of
    /// one) or a batch id (a number; every dataset's batch with that id unless --dataset is given).
    pub(crate) target: String,
}

/// `lander checkpoint stats`.
#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// Common options.
    #[command(flatten)]
    pub(crate) common: CommonArgs,
}

/// `lander checkpoint pending`.
#[derive(Debug, Args)]
#[command(mut_args(crate::cli::defaults::settle_time_default))]
pub(crate) struct PendingArgs {
    /// Common options (uses --landing).
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// Settle time, as for `lander run`.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) settle_time: Option<Duration>,
}

/// `lander checkpoint verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Common options (uses --bronze).
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// Skip reading Parquet footers (check existence and sizes only).
    #[arg(long)]
    pub(crate) skip_row_counts: bool,
    /// Also scan bronze's key column, partition by partition, and report every key held more than once on one
    /// UTC day with its files and rows (exit 1 on any). Reads Parquet only, not the dedup index.
    #[arg(long)]
    pub(crate) keys: bool,
}

/// `lander checkpoint reset`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["file", "dataset", "all"])))]
pub(crate) struct ResetArgs {
    /// Locations and config (uses --checkpoint).
    #[command(flatten)]
    pub(crate) locations: LocationArgs,
    /// Forget one landing file (path relative to landing, e.g. gharchive/2015-01-01-0.json.gz).
    #[arg(long)]
    pub(crate) file: Option<String>,
    /// Forget every file of this dataset.
    #[arg(long, short = 'd')]
    pub(crate) dataset: Option<String>,
    /// Forget every file of every dataset.
    #[arg(long)]
    pub(crate) all: bool,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
    /// Only show what would be forgotten.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Print the forgotten files as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `lander checkpoint export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Locations and config (uses --checkpoint).
    #[command(flatten)]
    pub(crate) locations: LocationArgs,
}

/// `lander checkpoint import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// Locations and config (uses --checkpoint; the directory is created if missing).
    #[command(flatten)]
    pub(crate) locations: LocationArgs,
    /// Read the export from this file instead of stdin.
    #[arg(long)]
    pub(crate) input: Option<PathBuf>,
    /// Replace a checkpoint that is not empty (everything it holds is lost: `export` it first to keep a copy).
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
}

/// `lander checkpoint rebuild`.
#[derive(Debug, Args)]
pub(crate) struct RebuildArgs {
    /// Locations and config (uses --landing, --bronze and --checkpoint, which must be empty or absent).
    #[command(flatten)]
    pub(crate) locations: LocationArgs,
    /// Rebuild from the Delta tables' logs (`txn` and `commitInfo.lander` of each commit); required, the only
    /// source there is.
    #[arg(long)]
    pub(crate) from_table: bool,
    /// Only this dataset [default: every configured dataset].
    #[arg(long, short = 'd')]
    pub(crate) dataset: Option<String>,
}

/// Checkpoint subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum CheckpointCommand {
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
    /// Recreate a lost checkpoint (file records, batches, writer id) from the Delta tables of bronze.
    Rebuild(RebuildArgs),
    /// Hourly datasets (GH Archive): missing, late, failed and quarantined hours, with the fetch commands to
    /// re-try the missing ones.
    Gaps(super::gaps::GapsArgs),
}

/// Runs a checkpoint subcommand.
///
/// # Errors
/// A missing or unreadable checkpoint, a locked one for `reset`/`import`, listing failures, problems found by
/// `verify`, and failures to write stdout (a broken pipe is mapped to exit code 0 by `main`).
pub(crate) async fn run(cmd: CheckpointCommand) -> anyhow::Result<()> {
    match cmd {
        CheckpointCommand::List(a) => show::list(a).await,
        CheckpointCommand::Show(a) => show::show(a).await,
        CheckpointCommand::Stats(a) => stats::stats(a).await,
        CheckpointCommand::Pending(a) => pending::pending(a).await,
        CheckpointCommand::Verify(a) => verify::verify(a).await,
        CheckpointCommand::Reset(a) => reset::reset(a).await,
        CheckpointCommand::Export(a) => transfer::export(a).await,
        CheckpointCommand::Import(a) => transfer::import(a).await,
        CheckpointCommand::Rebuild(a) => rebuild::rebuild(a).await,
        CheckpointCommand::Gaps(a) => super::gaps::run(a).await,
    }
}
