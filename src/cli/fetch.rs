//! `lander fetch` and `lander generate`: the command line of the side entrance into landing.
//!
//! Takes the parsed subcommand, resolves what it needs from the pipeline's files (the config file's `[storage]`
//! options, and with `--checkpoint` the landing paths the ingesting `run` already recorded) and hands [`crate::fetch`]
//! those plain values in a [`FetchContext`]. `fetch` itself never reads
//! the config file or the checkpoint.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

pub(crate) use super::fetch_flags::{GharchiveFlags, S3Flags, SalesFlags, UrlFlags};
use crate::checkpoint::CheckpointStore;
use crate::config::Config;
use crate::fetch::{self, FetchContext, FetchSummary, SalesSummary};

/// `lander fetch`: download files into landing.
#[derive(Subcommand, Debug, Clone)]
pub enum FetchCommand {
    /// Download GH Archive hourly files (YYYY-MM-DD-H.json.gz, one per UTC hour) into <landing>/gharchive/.
    ///
    /// Files already in landing are skipped, so the command can be rerun safely. Hours that the archive does not
    /// have (404 for an hour older than 48h) are reported as missing; a 404 for a more recent hour means "not
    /// published yet" and is reported as pending (or, with --follow, retried every --poll-interval).
    Gharchive(GharchiveCmd),
    /// Download arbitrary http(s) files into <landing>/<dataset>/, named after the URL's last path segment.
    Url(UrlCmd),
    /// Copy new objects from an S3 bucket/prefix into <landing>/<dataset>/ (endpoint and credentials from AWS_* or
    /// the config file's `[storage]`).
    S3(S3Cmd),
}

/// `lander generate`: write synthetic data into landing.
#[derive(Subcommand, Debug, Clone)]
pub enum GenerateCommand {
    /// Write synthetic sales transactions in the transacciones_ventas.csv schema into <landing>/<dataset>/.
    ///
    /// Deterministic for a given --seed. A share of rows repeat an earlier transaction (an identical row, to
    /// exercise dedup) and a share are malformed (to exercise the quarantine). The last output line reports the
    /// files written and the valid/duplicate/malformed row counts.
    Sales(SalesCmd),
}

/// `lander fetch gharchive`: the fetch's own arguments, then the pipeline files it reads.
#[derive(Args, Debug, Clone)]
pub struct GharchiveCmd {
    /// What to fetch and how.
    #[command(flatten)]
    pub(crate) args: GharchiveFlags,
    /// The checkpoint and config file.
    #[command(flatten)]
    pub(crate) pipeline: PipelineFiles,
}

/// `lander fetch url`.
#[derive(Args, Debug, Clone)]
pub struct UrlCmd {
    /// What to fetch and how.
    #[command(flatten)]
    pub(crate) args: UrlFlags,
    /// The checkpoint and config file.
    #[command(flatten)]
    pub(crate) pipeline: PipelineFiles,
}

/// `lander fetch s3`.
#[derive(Args, Debug, Clone)]
pub struct S3Cmd {
    /// What to copy.
    #[command(flatten)]
    pub(crate) args: S3Flags,
    /// Config file (TOML) whose `[storage]` section configures a remote landing and the S3 source, as for `lander run`.
    /// Default: ./lander.toml when it exists.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
}

/// `lander generate sales`.
#[derive(Args, Debug, Clone)]
pub struct SalesCmd {
    /// What to generate.
    #[command(flatten)]
    pub(crate) args: SalesFlags,
    /// Config file (TOML) whose `[storage]` section configures a remote landing, as for `lander run`.
    /// Default: ./lander.toml when it exists.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
}

/// The pipeline files an HTTP fetch reads (`fetch gharchive`, `fetch url`).
#[derive(Args, Debug, Clone)]
pub(crate) struct PipelineFiles {
    /// Checkpoint of the `lander run` that ingests this landing: files it already recorded are not downloaded
    /// again (useful with `--clean-source`, which removes them from landing). Read through a snapshot, so a
    /// running daemon is not disturbed. Skipped when the directory holds no checkpoint.
    #[arg(long)]
    pub(crate) checkpoint: Option<PathBuf>,
    /// Config file (TOML) whose `[storage]` section configures a remote landing, as for `lander run`.
    /// Default: ./lander.toml when it exists.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
}

impl PipelineFiles {
    /// The context these files give a fetch.
    async fn context(&self) -> anyhow::Result<FetchContext> {
        Ok(FetchContext {
            storage: storage_options(self.config.as_deref()).await?,
            ingested: snapshot_ingested(self.checkpoint.as_deref()).await?,
        })
    }
}

/// Runs a `lander fetch` subcommand until every file is resolved (or, with `fetch gharchive --follow`, until
/// `cancel` fires); see [`fetch::gharchive::run`], [`fetch::url::run_urls`] and [`fetch::s3::run`].
///
/// # Errors
/// An unreadable config file or checkpoint, and what stops the whole fetch (a [`fetch::FetchError`], passed on
/// without context so that its message stays first). Per-file problems are counted in the summary.
pub async fn run_fetch(
    cmd: FetchCommand,
    cancel: CancellationToken,
) -> anyhow::Result<FetchSummary> {
    let summary = match cmd {
        FetchCommand::Gharchive(cmd) => {
            let context = cmd.pipeline.context().await?;
            fetch::gharchive::run(cmd.args.into(), context, cancel).await?
        }
        FetchCommand::Url(cmd) => {
            let context = cmd.pipeline.context().await?;
            fetch::url::run_urls(cmd.args.into(), context, cancel).await?
        }
        FetchCommand::S3(cmd) => {
            let storage = storage_options(cmd.config.as_deref()).await?;
            fetch::s3::run(cmd.args.into(), &storage, cancel).await?
        }
    };
    Ok(summary)
}

/// `run --fetch gharchive`: follows the archive into the run's landing with the run's own store options, skipping
/// what the run's checkpoint already recorded (read once, at the start, as `fetch --checkpoint` does).
///
/// # Errors
/// As [`run_fetch`].
pub(crate) async fn follow_gharchive(
    args: fetch::GharchiveArgs,
    storage: BTreeMap<String, String>,
    checkpoint: CheckpointStore,
    cancel: CancellationToken,
) -> anyhow::Result<FetchSummary> {
    let ingested = tokio::task::spawn_blocking(move || ingested_paths(&checkpoint))
        .await
        .expect("reading the checkpoint does not panic")
        .context("while reading the checkpoint to skip ingested files")?;
    let context = FetchContext { storage, ingested };
    Ok(fetch::gharchive::run(args, context, cancel).await?)
}

/// Runs `lander generate sales` and returns what was written.
///
/// # Errors
/// An unreadable config file, and what [`fetch::generate_sales`] refuses.
pub async fn generate_sales(
    cmd: SalesCmd,
    cancel: CancellationToken,
) -> anyhow::Result<SalesSummary> {
    let storage = storage_options(cmd.config.as_deref()).await?;
    Ok(fetch::generate_sales(&cmd.args.into(), &storage, cancel).await?)
}

/// Runs a `lander generate` subcommand and prints one line with the files written and the row counts.
///
/// # Errors
/// As [`generate_sales`].
pub(crate) async fn run_generate(
    cmd: GenerateCommand,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    match cmd {
        GenerateCommand::Sales(cmd) => {
            let summary = generate_sales(cmd, cancel).await?;
            super::output::emit(&format!("{summary}\n"))
        }
    }
}

/// The `[storage]` options of the config file (`config`, else ./lander.toml when it exists), read off the
/// reactor: the same store options `lander run` opens landing and bronze with.
async fn storage_options(config: Option<&Path>) -> anyhow::Result<BTreeMap<String, String>> {
    let owned = config.map(Path::to_path_buf);
    let loaded = tokio::task::spawn_blocking(move || Config::load(owned.as_deref()))
        .await
        .expect("loading the configuration does not panic")?;
    Ok(loaded.storage)
}

/// The landing paths recorded in the checkpoint at `dir`, read through a snapshot (a running daemon holds the
/// lock); empty without `--checkpoint` or when `dir` holds no checkpoint.
async fn snapshot_ingested(dir: Option<&Path>) -> anyhow::Result<HashSet<String>> {
    let Some(dir) = dir.filter(|d| d.join("sled").exists()) else {
        return Ok(HashSet::new());
    };
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let store = CheckpointStore::open_snapshot(&dir)?;
        ingested_paths(&store)
    })
    .await
    .expect("reading the checkpoint does not panic")
    .context("while reading the checkpoint to skip ingested files")
}

/// Every landing path (`<dataset>/<name>`) `checkpoint` records.
fn ingested_paths(checkpoint: &CheckpointStore) -> anyhow::Result<HashSet<String>> {
    Ok(checkpoint
        .files(None)?
        .into_iter()
        .map(|f| f.path)
        .collect())
}
