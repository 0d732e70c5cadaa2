//! The command-line interface: `lander run | checkpoint | fetch | generate`.
//!
//! One function per subcommand; errors carry `anyhow` context naming the user-level action, and
//! [`exit_code`] maps them to 0 (ok), 1 (runtime failure) or 2 (usage/configuration error).

// println!/eprintln! panic when the other end of the pipe is gone (`lander run | head -1`): output goes through
// `output::emit`, whose error `main` maps to exit 0, and notes through `writeln!` on stderr.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub(crate) mod checkpoint;
pub(crate) mod config_check;
mod defaults;
pub mod exit;
pub(crate) mod explain;
pub mod fetch;
mod fetch_flags;
pub(crate) mod gaps;
mod output;
pub mod progress;
pub(crate) mod serve;
pub(crate) mod summary;
pub(crate) mod table;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::checkpoint::CheckpointStore;
use crate::config::{parse_duration, Config};
use crate::fetch::gharchive::{self, parse_hour_arg, HourArg};
use crate::modes::{self, Context, RunMode};
use crate::store::StoreLocation;

/// lander: land GH Archive and CSV files into deduplicated, partitioned bronze Parquet, exactly once.
#[derive(Debug, Parser)]
#[command(
    name = "lander",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("LANDER_GIT_COMMIT"), ", built ", env!("LANDER_BUILD_DATE"), ")"),
    about,
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// The subcommand.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Ingest landing into bronze (modes: once, available-now, micro-batch, continuous).
    Run(Box<RunArgs>),
    /// Inspect, verify and repair the checkpoint.
    #[command(subcommand)]
    Checkpoint(checkpoint::CheckpointCommand),
    /// Check the configuration (lander.toml, LANDER_* variables, flags) and show where each value comes from.
    #[command(subcommand)]
    Config(config_check::ConfigCommand),
    /// Everything lander knows and decides about one landing file, with a one-line verdict.
    Explain(explain::ExplainArgs),
    /// Download GH Archive hours or other files into landing.
    #[command(subcommand)]
    Fetch(fetch::FetchCommand),
    /// Operate the Delta tables of bronze: optimize, check --repair, vacuum, history, convert.
    #[command(subcommand)]
    Table(table::TableCommand),
    /// Generate synthetic data into landing.
    #[command(subcommand)]
    Generate(fetch::GenerateCommand),
}

/// Options shared by commands that open the pipeline's locations.
#[derive(Debug, Clone, Args)]
#[command(mut_args(defaults::location_defaults))]
pub(crate) struct LocationArgs {
    /// Config file (TOML). Default: ./lander.toml when it exists.
    #[arg(long, short = 'c')]
    pub(crate) config: Option<PathBuf>,
    /// Landing zone: directory or URL.
    #[arg(long)]
    pub(crate) landing: Option<String>,
    /// Bronze layer: directory or URL.
    #[arg(long)]
    pub(crate) bronze: Option<String>,
    /// Checkpoint directory (sled store and lock).
    #[arg(long)]
    pub(crate) checkpoint: Option<PathBuf>,
}

/// `lander run`.
#[derive(Debug, Args)]
#[command(mut_args(defaults::run_defaults))]
pub(crate) struct RunArgs {
    /// How to schedule batches.
    #[arg(long, value_enum, default_value_t = RunModeFlag::Once)]
    pub(crate) mode: RunModeFlag,
    /// Locations and config.
    #[command(flatten)]
    pub(crate) locations: LocationArgs,
    /// Only these datasets (repeatable) [default: all configured].
    #[arg(long = "dataset", short = 'd')]
    pub(crate) datasets: Vec<String>,
    /// A file changed less than this long ago is not ready (gzip) or read only up to its last full line.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) settle_time: Option<std::time::Duration>,
    /// How long behind the newest event a day's keys stay in the local dedup index (a cache bound; older days
    /// are read back from bronze).
    #[arg(long, value_parser = parse_duration)]
    pub(crate) dedup_horizon: Option<std::time::Duration>,
    /// Records whose event day is older than this (before the batch's start) are not checked for duplicates,
    /// only counted [default: none, every record is checked].
    #[arg(long, value_parser = parse_duration)]
    pub(crate) dedup_retention: Option<std::time::Duration>,
    /// Byte budget of a dataset's dedup index (disk + memory); cold days beyond it are evicted and read back
    /// from bronze when touched, e.g. 256MiB.
    #[arg(long, value_parser = crate::config::parse_byte_size)]
    pub(crate) dedup_cache_bytes: Option<u64>,
    /// Max files per batch (available-now, micro-batch, continuous).
    #[arg(long)]
    pub(crate) max_files_per_batch: Option<usize>,
    /// Max input bytes per batch, e.g. 1073741824, 500MB or 1GiB.
    #[arg(long, value_parser = crate::config::parse_byte_size)]
    pub(crate) max_bytes_per_batch: Option<u64>,
    /// Micro-batch interval, e.g. 10s, 1m.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) interval: Option<std::time::Duration>,
    /// Continuous: wait this long for more events before cutting a batch.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) max_batch_delay: Option<std::time::Duration>,
    /// Full listing of landing as a safety net for lost events.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) poll_interval: Option<std::time::Duration>,
    /// Files decoded in parallel [default: number of CPUs].
    #[arg(long)]
    pub(crate) parallelism: Option<usize>,
    /// After commit: off, delete, or archive:<dir> (relative to landing).
    #[arg(long)]
    pub(crate) clean_source: Option<String>,
    /// On a new checkpoint, ignore files older than this, e.g. 7d.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) max_file_age: Option<std::time::Duration>,
    /// Process the newest files first.
    #[arg(long)]
    pub(crate) latest_first: bool,
    /// Roll to a new Parquet part beyond this many bytes, e.g. 256MiB.
    #[arg(long, value_parser = crate::config::parse_byte_size)]
    pub(crate) target_file_bytes: Option<u64>,
    /// Follow symlinks whose target lies outside landing (default: log and skip them).
    #[arg(long)]
    pub(crate) follow_symlinks: bool,
    /// Bind the checkpoint to this run's landing and bronze (and the Delta tables there) even when it is bound
    /// to others: a moved landing or bronze, a table recreated on purpose. Logged.
    #[arg(long)]
    pub(crate) rebind: bool,
    /// Run as worker I of N sharing landing and bronze, e.g. 0/3: take only the landing files whose stable
    /// hash mod N is I (each worker needs its own checkpoint) [default: every file].
    #[arg(long, conflicts_with = "workers")]
    pub(crate) worker: Option<String>,
    /// Run as one of N workers, this one's index taken from a StatefulSet pod name `<name>-I` in $HOSTNAME.
    #[arg(long)]
    pub(crate) workers: Option<u32>,
    /// How bronze is published: delta (a Delta Lake table per dataset) or parquet (hive-style files for readers without Delta, weaker guarantees).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["delta", "parquet"]).try_map(|s| s.parse::<crate::config::TableFormat>()))]
    pub(crate) table_format: Option<crate::config::TableFormat>,
    /// Longest record (line/row) in bytes, e.g. 16MiB.
    #[arg(long, value_parser = crate::config::parse_byte_size)]
    pub(crate) max_record_bytes: Option<u64>,
    /// Largest landing file in bytes (e.g. 16GiB); larger ones are rejected whole.
    #[arg(long, value_parser = crate::config::parse_byte_size)]
    pub(crate) max_file_bytes: Option<u64>,
    /// Most decompressed bytes per gzip file, e.g. 32GiB.
    #[arg(long, value_parser = crate::config::parse_byte_size)]
    pub(crate) max_decompressed_bytes: Option<u64>,
    /// Highest decompressed:compressed ratio of a gzip file.
    #[arg(long)]
    pub(crate) max_decompression_ratio: Option<u64>,
    /// Earliest accepted event time, YYYY-MM-DD or RFC 3339.
    #[arg(long)]
    pub(crate) event_time_min: Option<String>,
    /// How far past now an event time may lie.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) event_time_max_future: Option<std::time::Duration>,
    /// Continuous/micro-batch: how long an unterminated last line waits for its newline.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) partial_line_timeout: Option<std::time::Duration>,
    /// Serve /metrics, /healthz and /readyz on this address, e.g. 127.0.0.1:9464 [default: off].
    #[arg(long, env = "LANDER_METRICS_ADDR")]
    pub(crate) metrics_addr: Option<String>,
    /// once/available-now: write the run summary as JSON to this file (for schedulers).
    #[arg(long)]
    pub(crate) summary_json: Option<PathBuf>,
    /// micro-batch/continuous: also fetch each GH Archive hour into landing as it is published, in this process
    /// (what `lander fetch gharchive --follow` does beside a daemon).
    #[arg(long, value_enum)]
    pub(crate) fetch: Option<FetchSource>,
    /// With --fetch: first UTC hour to fetch, e.g. 2026-01-01T00.
    #[arg(long, requires = "fetch", value_parser = parse_hour_arg)]
    pub(crate) fetch_from: Option<HourArg>,
    /// With --fetch: archive (or mirror) base URL.
    #[arg(long, requires = "fetch")]
    pub(crate) fetch_base_url: Option<String>,
    /// With --fetch: how often to check for an hour that is not published yet.
    #[arg(long, requires = "fetch", value_parser = humantime::parse_duration)]
    pub(crate) fetch_poll_interval: Option<std::time::Duration>,
}

impl RunArgs {
    /// The run mode (`--mode`).
    pub(crate) fn run_mode(&self) -> RunMode {
        self.mode.into()
    }
}

/// `lander run --mode`: clap's mirror of [`RunMode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RunModeFlag {
    /// Everything new as one batch per dataset, then exit.
    Once,
    /// Everything new at start in bounded batches, then exit.
    AvailableNow,
    /// A bounded batch every `--interval`, forever.
    MicroBatch,
    /// React to each new file or appended bytes with low latency, forever.
    Continuous,
}

impl From<RunModeFlag> for RunMode {
    fn from(flag: RunModeFlag) -> Self {
        match flag {
            RunModeFlag::Once => RunMode::Once,
            RunModeFlag::AvailableNow => RunMode::AvailableNow,
            RunModeFlag::MicroBatch => RunMode::MicroBatch,
            RunModeFlag::Continuous => RunMode::Continuous,
        }
    }
}

/// What `run --fetch` fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FetchSource {
    /// GH Archive hourly files, into `<landing>/gharchive/`.
    Gharchive,
}

/// `fetch gharchive --follow` arguments for `run --fetch`: the fetch library's defaults, the run's landing and the
/// `--fetch-*` flags. The run's store options and checkpoint are handed over by [`fetch::follow_gharchive`], not
/// as arguments.
fn follow_args(a: &RunArgs, config: &Config) -> gharchive::GharchiveArgs {
    let mut args = gharchive::GharchiveArgs {
        from: a.fetch_from,
        follow: true,
        ..Default::default()
    };
    if let Some(url) = &a.fetch_base_url {
        args.base_url = url.clone();
    }
    if let Some(interval) = a.fetch_poll_interval {
        args.poll_interval = interval;
    }
    args.download.landing = config.landing.clone();
    args
}

/// Loads the config file and applies the location overrides.
///
/// # Errors
/// Config errors (exit code 2).
pub(crate) fn load_config(loc: &LocationArgs) -> anyhow::Result<Config> {
    let mut config =
        Config::load(loc.config.as_deref()).context("while loading the configuration")?;
    if let Some(v) = &loc.landing {
        config.landing = v.clone();
    }
    if let Some(v) = &loc.bronze {
        config.bronze = v.clone();
    }
    if let Some(v) = &loc.checkpoint {
        config.checkpoint = v.clone();
    }
    Ok(config)
}

fn apply_run_overrides(config: &mut Config, a: &RunArgs) {
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = a.$f.clone() { config.$f = v; } )* };
    }
    set!(
        settle_time,
        dedup_horizon,
        dedup_cache_bytes,
        max_files_per_batch,
        max_bytes_per_batch,
        interval,
        max_batch_delay,
        poll_interval,
        parallelism,
        clean_source,
        target_file_bytes,
        max_record_bytes,
        max_file_bytes,
        max_decompressed_bytes,
        max_decompression_ratio,
        event_time_min,
        event_time_max_future,
        partial_line_timeout,
        table_format
    );
    if a.metrics_addr.is_some() {
        config.metrics_addr = a.metrics_addr.clone();
    }
    if a.follow_symlinks {
        config.follow_symlinks = true;
    }
    if a.dedup_retention.is_some() {
        config.dedup_retention = a.dedup_retention;
    }
    if a.max_file_age.is_some() {
        config.max_file_age = a.max_file_age;
    }
    if a.latest_first {
        config.latest_first = true;
    }
    if a.worker.is_some() {
        config.worker = a.worker.clone();
    }
}

/// Installs SIGINT/SIGTERM handling: the first signal cancels `token` (finish or abandon the current batch,
/// flush, exit 0, or 128 + the signal when a bounded run leaves files unread, see [`exit::Interrupted`]); a
/// second one exits at once with 128 + its number (recovery on the next start makes that safe).
pub(crate) fn install_signal_handlers(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    // Register before returning, not inside the task: a SIGTERM that arrives before the task is first polled (a
    // loaded machine) would otherwise kill the process with the default action instead of a clean stop.
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("could not install signal handlers");
        return;
    };
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            let signal = tokio::select! {
                _ = term.recv() => libc::SIGTERM,
                _ = int.recv() => libc::SIGINT,
            };
            exit::record_signal(signal);
            count += 1;
            if count == 1 {
                tracing::info!("shutdown requested: finishing or abandoning the current batch (signal again to exit at once)");
                token.cancel();
            } else {
                tracing::warn!(
                    "second signal: exiting now; the next start rolls back any unfinished batch"
                );
                std::process::exit(128 + signal);
            }
        }
    });
}

/// Runs the parsed command.
///
/// # Errors
/// Any failure, with context; see [`exit_code`].
pub async fn run(cli: Cli, cancel: CancellationToken) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run_pipeline(*args, cli.quiet, cancel).await,
        Command::Checkpoint(cmd) => checkpoint::run(cmd).await,
        Command::Table(cmd) => table::run(cmd).await,
        Command::Explain(a) => explain::run(a).await,
        Command::Config(cmd) => config_check::run(cmd).await,
        Command::Fetch(cmd) => {
            install_signal_handlers(cancel.clone());
            let summary = fetch::run_fetch(cmd, cancel)
                .await
                .context("while fetching into landing")?;
            output::emit(&format!("{summary}\n"))?;
            if summary.failed > 0 {
                anyhow::bail!("{} download(s) failed", summary.failed);
            }
            Ok(())
        }
        Command::Generate(cmd) => {
            install_signal_handlers(cancel.clone());
            fetch::run_generate(cmd, cancel)
                .await
                .context("while generating data")?;
            Ok(())
        }
    }
}

/// `lander run`: starts, ingests in the chosen mode (with `--fetch`, while following GH Archive), prints the
/// batches and the summary, and writes the JSON summary of a bounded run.
async fn run_pipeline(args: RunArgs, quiet: bool, cancel: CancellationToken) -> anyhow::Result<()> {
    let started_at = chrono::Utc::now();
    let bounded = matches!(args.run_mode(), RunMode::Once | RunMode::AvailableNow);
    let (ctx, datasets) = start_or_report(&args, bounded, started_at, cancel).await?;
    let fetcher = spawn_fetcher(&args, &ctx);
    let progress_done = CancellationToken::new();
    let progress = bounded.then(|| {
        tokio::spawn(progress::show(
            datasets.clone(),
            quiet,
            progress_done.clone(),
        ))
    });
    let result = modes::run(ctx.clone(), args.run_mode(), datasets).await;
    progress_done.cancel();
    // Everything this process prints on stdout, written at once at the end (a closed stdout is then one error,
    // which `main` treats as success: the data was committed before).
    let mut out = String::new();
    if let Some(f) = fetcher {
        ctx.cancel.cancel();
        match f.await.expect("the fetch task does not panic") {
            Ok(summary) => out.push_str(&format!("fetch: {summary}\n")),
            Err(e) => return Err(e.context("while fetching GH Archive into landing")),
        }
    }
    if let Some(p) = progress {
        let _ = p.await;
    }
    // The summary of a bounded run: printed as a table, and written as JSON for schedulers (also on failure).
    let report = bounded.then(|| {
        summary::RunSummaryReport::new(
            args.run_mode(),
            ctx.landing.display.clone(),
            ctx.bronze.describe(""),
            started_at,
            result.as_ref().map_err(|e| exit::error_chain(e)),
            exit::shutdown_signal(),
        )
    });
    if let (Some(path), Some(report)) = (&args.summary_json, &report) {
        write_summary(report, path)?;
    }
    let summary = result.context("while ingesting")?;
    ctx.checkpoint
        .flush()
        .context("while flushing the checkpoint")?;
    let unread = summary.files_unread();
    push_run_output(&mut out, &args, &ctx, &summary, report.as_ref());
    let printed = output::emit(&out);
    if unread > 0 {
        // Interrupted before everything was read: the exit code says so even when stdout is gone.
        return Err(exit::Interrupted {
            signal: exit::shutdown_signal().unwrap_or(libc::SIGINT),
            committed: summary.batches.iter().map(|b| b.files as u64).sum(),
            unread,
        }
        .into());
    }
    printed
}

/// [`start`], and on failure the JSON summary of a bounded run that could not start.
///
/// # Errors
/// [`start`]'s error, or failing to write that summary.
async fn start_or_report(
    args: &RunArgs,
    bounded: bool,
    started_at: chrono::DateTime<chrono::Utc>,
    cancel: CancellationToken,
) -> anyhow::Result<(Context, Vec<String>)> {
    match start(args, cancel).await {
        Ok(started) => Ok(started),
        Err(e) => {
            // A scheduler reads the summary of a run that could not start too (missing landing, bad config).
            if let (true, Some(path)) = (bounded, &args.summary_json) {
                let (landing, bronze) = match load_config(&args.locations) {
                    Ok(c) => (c.landing, c.bronze),
                    Err(_) => Default::default(),
                };
                let report = summary::RunSummaryReport::new(
                    args.run_mode(),
                    landing,
                    bronze,
                    started_at,
                    Err(exit::error_chain(e.as_ref())),
                    None,
                );
                write_summary(&report, path)?;
            }
            Err(e)
        }
    }
}

/// The `run --fetch` task following GH Archive into landing; its failure cancels the run.
fn spawn_fetcher(
    args: &RunArgs,
    ctx: &Context,
) -> Option<tokio::task::JoinHandle<anyhow::Result<crate::fetch::FetchSummary>>> {
    let Some(FetchSource::Gharchive) = args.fetch else {
        return None;
    };
    let follow = follow_args(args, &ctx.config);
    crate::metrics::init_source("gharchive");
    let cancel = ctx.cancel.clone();
    let (storage, checkpoint) = (ctx.config.storage.clone(), ctx.checkpoint.clone());
    Some(tokio::spawn(async move {
        let r = fetch::follow_gharchive(follow, storage, checkpoint, cancel.clone()).await;
        if let Err(e) = &r {
            tracing::error!(
                error = format!("{e:#}"),
                "fetching GH Archive stopped; stopping the run"
            );
            cancel.cancel();
        }
        r
    }))
}

/// Appends what a finished run prints on stdout: skipped landing entries, the batches and the summary table
/// (bounded modes) or the one-line total (unbounded modes).
fn push_run_output(
    out: &mut String,
    args: &RunArgs,
    ctx: &Context,
    summary: &modes::RunSummary,
    report: Option<&summary::RunSummaryReport>,
) {
    let rows: u64 = summary.batches.iter().map(|b| b.counts.rows).sum();
    let skipped = crate::source::listing::skipped_entries_total();
    if skipped > 0 {
        out.push_str(&format!("landing: {skipped} entr(ies) skipped (names no store path can hold, files outside a dataset directory, symlinks not followed, unreadable or special files; see the warnings)\n"));
    }
    match args.run_mode() {
        RunMode::Once | RunMode::AvailableNow => {
            for b in &summary.batches {
                out.push_str(&format!("{b}\n"));
            }
            if summary.batches.is_empty() && summary.files_unread() == 0 {
                out.push_str(&format!(
                    "nothing new to ingest in {}\n",
                    ctx.landing.display
                ));
            } else {
                if let Some(report) = report {
                    out.push_str(&format!("{}\n", report.table()));
                }
                out.push_str(&format!(
                    "bronze: {} ({rows} rows written in this run)\n",
                    ctx.bronze.describe("")
                ));
            }
        }
        RunMode::MicroBatch | RunMode::Continuous => {
            out.push_str(&format!(
                "stopped: {} batch(es) committed, {rows} rows written to {}\n",
                summary.batches.len(),
                ctx.bronze.describe("")
            ));
        }
    }
}

/// Writes the JSON run summary for schedulers.
fn write_summary(report: &summary::RunSummaryReport, path: &std::path::Path) -> anyhow::Result<()> {
    report
        .write_json(path)
        .with_context(|| format!("while writing the run summary to {}", path.display()))
}

/// Everything `run` opens before its first batch: the configuration, landing, bronze, the checkpoint, the
/// datasets and the metrics endpoint.
///
/// # Errors
/// Any of those failing; a usage error for `--fetch` with a bounded mode.
async fn start(
    args: &RunArgs,
    cancel: CancellationToken,
) -> anyhow::Result<(Context, Vec<String>)> {
    let config = run_config(args)?;
    require_run_dirs(args, &config)?;
    let landing = StoreLocation::open_with(&config.landing, &config.storage)
        .context("while opening landing")?;
    let bronze = StoreLocation::open_with(&config.bronze, &config.storage)
        .context("while opening bronze")?;
    #[cfg(feature = "failpoints")]
    let bronze = crate::faults::wrap_from_env(bronze);
    let checkpoint = {
        let dir = config.checkpoint.clone();
        tokio::task::spawn_blocking(move || CheckpointStore::open(&dir))
            .await
            .expect("opening the checkpoint does not panic")
            .context("while opening the checkpoint")?
    };
    install_signal_handlers(cancel.clone());
    let dedup = Arc::new(crate::dedup::index::DedupIndex::new(checkpoint.dir()));
    let ctx = Context {
        dedup,
        decode_slots: Arc::new(tokio::sync::Semaphore::new(config.parallelism)),
        config: Arc::new(config),
        landing,
        bronze,
        checkpoint,
        cancel,
        tables: Default::default(),
    };
    let datasets = modes::datasets_in_landing(&ctx, &args.datasets)
        .await
        .context("while listing landing")?;
    modes::binding::bind(&ctx, &datasets, args.rebind)
        .await
        .context("while checking which landing and bronze the checkpoint belongs to")?;
    modes::workers::bind_worker(&ctx, &datasets, args.rebind)
        .await
        .context("while checking which worker the checkpoint belongs to")?;
    tracing::info!(
        mode = ?args.run_mode(),
        landing = %ctx.landing.display,
        bronze = %ctx.bronze.display,
        checkpoint = %ctx.checkpoint.dir().display(),
        datasets = %datasets.join(","),
        "lander starting"
    );
    datasets
        .iter()
        .for_each(|d| crate::metrics::init_dataset(d));
    serve_metrics(&ctx, &datasets).await?;
    Ok((ctx, datasets))
}

/// The configuration of `run`: the file, variables and flags, with `--workers` resolved, validated.
///
/// # Errors
/// Configuration errors; a usage error for `--fetch` with a bounded mode.
fn run_config(args: &RunArgs) -> anyhow::Result<Config> {
    let mut config = load_config(&args.locations)?;
    apply_run_overrides(&mut config, args);
    if let Some(n) = args.workers {
        config.worker = Some(
            crate::modes::workers::worker_from_host(n)
                .map_err(|e| UsageError(e.to_string()))?
                .to_string(),
        );
    }
    config
        .validate()
        .context("while validating the configuration")?;
    if args.fetch.is_some() && matches!(args.run_mode(), RunMode::Once | RunMode::AvailableNow) {
        return Err(UsageError(
            "--fetch follows the archive forever: use it with --mode continuous or micro-batch (for a \
             backfill, run `lander fetch gharchive --from .. --to ..` and then `run --mode once`)"
                .into(),
        )
        .into());
    }
    Ok(config)
}

/// Checks (or, for `--fetch`, creates) the local landing, and that local bronze and the checkpoint can be created.
fn require_run_dirs(args: &RunArgs, config: &Config) -> anyhow::Result<()> {
    // `fetch`, `generate` and `run --fetch` write into landing, so they create it; a plain `run` only reads it,
    // and a landing that does not exist is a mistyped path, not something to create.
    match (args.fetch.is_some(), local_landing(&config.landing)) {
        (true, Some(dir)) => std::fs::create_dir_all(dir)
            .with_context(|| format!("while creating landing {dir} for --fetch"))?,
        _ => require_local_landing(&config.landing)?,
    }
    if let Some(dir) = local_landing(&config.bronze) {
        require_creatable_dir("bronze", std::path::Path::new(dir))?;
    }
    require_creatable_dir("checkpoint", &config.checkpoint)?;
    Ok(())
}

/// Starts the metrics endpoint when one is configured.
async fn serve_metrics(ctx: &Context, datasets: &[String]) -> anyhow::Result<()> {
    if let Some(addr) = ctx.config.metrics_socket()? {
        let ready = Arc::new(serve::Readiness {
            landing: ctx.landing.clone(),
            bronze: ctx.bronze.clone(),
            datasets: datasets.to_vec(),
        });
        let bound = serve::start(addr, ready, ctx.cancel.clone())
            .await
            .with_context(|| format!("while binding the metrics endpoint to {addr}"))?;
        tracing::info!("metrics on http://{bound}/metrics (health: /healthz, /readyz)");
    }
    Ok(())
}

/// A mistake in how a command was invoked (a path that does not exist, a flag that does not fit the mode, a
/// dataset that is not configured): exit code 2, like a configuration error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub String);

/// The local directory a landing location names, if it is local (a path or a `file://` URL).
pub(crate) fn local_landing(landing: &str) -> Option<&str> {
    landing
        .strip_prefix("file://")
        .or((!landing.contains("://")).then_some(landing))
}

/// A local directory that `run` creates when missing (bronze, the checkpoint) must be a directory, or be
/// creatable as one: a file there (or above it) would fail with a bare `File exists` or `Not a directory`.
/// `what` names it and its flag/key (`bronze`, `checkpoint`).
///
/// # Errors
/// [`UsageError`] naming the path and the file in the way.
pub(crate) fn require_creatable_dir(what: &str, dir: &std::path::Path) -> Result<(), UsageError> {
    // The nearest part of the path that exists must be a directory.
    match dir.ancestors().find(|p| p.exists()) {
        Some(p) if !p.is_dir() => Err(UsageError(if p == dir {
            format!(
                "{what} {} is not a directory (check --{what} or `{what}` in lander.toml)",
                dir.display()
            )
        } else {
            format!(
                "{what} {} cannot be created: {} is not a directory (check --{what} or `{what}` in lander.toml)",
                dir.display(),
                p.display()
            )
        })),
        _ => Ok(()),
    }
}

/// A local landing must exist: a mistyped path would otherwise be created empty (or listed as empty) and the
/// command would report "nothing new".
///
/// # Errors
/// [`UsageError`] naming the directory.
pub(crate) fn require_local_landing(landing: &str) -> Result<(), UsageError> {
    match local_landing(landing) {
        Some(dir) if !std::path::Path::new(dir).is_dir() => Err(UsageError(format!(
            "landing {dir} does not exist or is not a directory (check --landing or `landing` in lander.toml)"
        ))),
        _ => Ok(()),
    }
}

pub use exit::exit_code;
