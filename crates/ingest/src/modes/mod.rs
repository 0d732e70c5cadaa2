//! The scheduler: the four run modes. Only this module composes the stages and decides the commit order
//! (see [`batch`] for the commit protocol; [`verify`] cross-checks its result, read-only).
//!
//! - `once`: everything new, one batch per dataset, then exit (backfills).
//! - `available-now`: everything new at start, in bounded batches each committed on its own, then exit; files
//!   that land during the run are left for the next run (like Spark's `Trigger.AvailableNow`).
//! - `micro-batch`: every `interval`, one bounded batch of what is new, forever. A batch longer than the
//!   interval is followed at once by the next (no pile-up), and this is logged.
//! - `continuous`: notify events on landing (local) plus a periodic listing (every backend) lead to small
//!   batches, coalesced for `max_batch_delay`; growing plain files are tailed line by line.
//!
//! Storage failures (sink, checkpoint) stop `once` and `available-now` (exit 1; the next start rolls the batch
//! back). `micro-batch` and `continuous` roll the batch back and retry with exponential backoff until the fault
//! clears (`recover_after_failure`).
//!
//! Datasets run as independent tasks: a slow dataset does not hold the others back. Shutdown (the
//! cancellation token) is checked between batches; a batch in progress is finished or abandoned by
//! [`batch::run_batch`].

pub(crate) mod batch;
pub mod binding;
mod commit;
pub(crate) mod compact;
mod context;
pub(crate) mod continuous;
mod counts;
pub(crate) mod cross_check;
mod delta;
mod error;
pub(crate) mod keys;
mod quarantine;
mod stage;
pub mod verify;
pub mod verify_keys;
mod verify_table;
pub mod workers;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::Utc;

use crate::config::Config;
use crate::source::listing::{plan_listing, split_batches, PlanOptions};
use crate::source::{plan_dataset, LandingFile};
pub use batch::BatchReport;
pub use context::Context;
pub use counts::RecordCounts;
pub use error::RunError;

/// How `lander run` schedules batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunMode {
    /// Everything new as one batch per dataset, then exit.
    Once,
    /// Everything new at start in bounded batches, then exit.
    AvailableNow,
    /// A bounded batch every `--interval`, forever.
    MicroBatch,
    /// React to each new file or appended bytes with low latency, forever.
    Continuous,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RunSummary {
    /// Committed batches.
    pub batches: Vec<BatchReport>,
    /// Datasets that had nothing new (in `once`/`available-now`).
    pub idle_datasets: Vec<String>,
    /// Per dataset, the files a bounded run planned but did not read because shutdown was requested (an
    /// abandoned batch, batches not started); datasets that read everything are absent.
    pub unread: BTreeMap<String, u64>,
}

impl RunSummary {
    /// Files left unread because of shutdown, over all datasets: a bounded run with any was interrupted.
    pub fn files_unread(&self) -> u64 {
        self.unread.values().sum()
    }
}

/// What a bounded mode did for one dataset.
#[derive(Debug, Default)]
struct DatasetRun {
    /// Committed batches.
    reports: Vec<BatchReport>,
    /// Files planned but not read because shutdown was requested.
    unread: u64,
}

/// Datasets to process: the configured ones that have a directory in landing (or all configured ones when
/// `only` is empty and landing has none of them yet). Directories without a configured dataset are logged.
///
/// # Errors
/// [`crate::config::ConfigError::Invalid`] for a `--dataset` that is not configured.
pub async fn datasets_in_landing(ctx: &Context, only: &[String]) -> Result<Vec<String>, RunError> {
    // Only used to warn about directories without a dataset: a failure here (a symlink loop or an unreadable
    // entry at the top of landing) must not stop the run, so it is logged and the configured datasets are used.
    let present: BTreeSet<String> = match ctx
        .landing
        .store
        .list_with_delimiter(Some(&ctx.landing.prefix))
        .await
    {
        Ok(listing) => listing
            .common_prefixes
            .iter()
            .filter_map(|p| ctx.landing.relative(p))
            .filter(|d| !crate::source::is_ignored_name(d))
            .collect(),
        Err(e) => {
            tracing::warn!(landing = %ctx.landing.display, error = %e, "cannot list the top of landing; reading the configured datasets only");
            BTreeSet::new()
        }
    };
    // A file directly in landing is never read: say so (once per process) instead of ignoring it silently.
    crate::source::top::report_stray_files(&ctx.landing).await;
    for d in &present {
        if !ctx.config.datasets.contains_key(d) {
            tracing::warn!(dataset = %d, "landing has a directory with no dataset configured for it; skipped (declare [datasets.{d}] in lander.toml)");
        }
    }
    let mut out: Vec<String> = ctx
        .config
        .datasets
        .keys()
        .filter(|d| only.is_empty() || only.contains(d))
        .cloned()
        .collect();
    for d in only {
        if !ctx.config.datasets.contains_key(d) {
            return Err(crate::config::ConfigError::Invalid(format!(
                "--dataset {d}: no such dataset is configured"
            ))
            .into());
        }
    }
    out.sort();
    Ok(out)
}

/// The planning options of `config` for a mode that does (`tailing`) or does not tail growing files. They hold
/// the current time (readiness and `max_file_age` are judged against it): build them anew for every listing.
pub fn plan_options(config: &Config, tailing: bool) -> PlanOptions {
    PlanOptions {
        settle_time: config.settle_time,
        max_file_age: config.max_file_age,
        latest_first: config.latest_first,
        now: Utc::now(),
        follow_symlinks: config.follow_symlinks,
        tailing,
        partial_line_timeout: config.partial_line_timeout,
        // validate() checked it; a config that was not validated gets the defaults.
        limits: config.limits().unwrap_or_default(),
        worker: config.worker_spec().ok().flatten(),
    }
}

/// Runs `mode` over `datasets` until done (`once`, `available-now`) or until `ctx.cancel` fires.
///
/// # Errors
/// The first fatal error of any dataset (sink, checkpoint, listing).
pub async fn run(
    ctx: Context,
    mode: RunMode,
    datasets: Vec<String>,
) -> Result<RunSummary, RunError> {
    for ds in &datasets {
        batch::recover(&ctx, ds).await?;
    }
    if mode == RunMode::Continuous {
        return continuous::run(ctx, datasets).await;
    }
    let mut set = tokio::task::JoinSet::new();
    for ds in datasets {
        let ctx = ctx.clone();
        set.spawn(async move {
            let r = match mode {
                RunMode::Once => run_once(&ctx, &ds).await,
                RunMode::AvailableNow => run_available_now(&ctx, &ds).await,
                RunMode::MicroBatch => run_micro_batch(&ctx, &ds)
                    .await
                    .map(|reports| DatasetRun { reports, unread: 0 }),
                RunMode::Continuous => unreachable!("handled above"),
            };
            (ds, r)
        });
    }
    let mut summary = RunSummary::default();
    let mut first_err = None;
    while let Some(joined) = set.join_next().await {
        let (ds, r) = joined.expect("dataset tasks do not panic");
        match r {
            Ok(d) if d.reports.is_empty() && d.unread == 0 => summary.idle_datasets.push(ds),
            Ok(d) => {
                summary.batches.extend(d.reports);
                if d.unread > 0 {
                    summary.unread.insert(ds, d.unread);
                }
            }
            Err(e) => {
                tracing::error!(dataset = %ds, error = %e, "dataset stopped");
                ctx.cancel.cancel();
                // Take back what the failed batch may have published already, so readers do not see it until
                // the next start; if storage is still failing, the next start does it.
                if let Err(e2) = batch::recover(&ctx, &ds).await {
                    tracing::warn!(dataset = %ds, error = %e2, "could not roll the failed batch back now; the next start will");
                }
                first_err.get_or_insert(e);
            }
        }
    }
    summary.idle_datasets.sort();
    summary
        .batches
        .sort_by(|a, b| (&a.dataset, a.id).cmp(&(&b.dataset, b.id)));
    match first_err {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// Extra wait, beyond twice the settle time, that bounded modes give files still settling at start.
const SETTLE_MARGIN: Duration = Duration::from_secs(1);

/// Longest pause between two listings while waiting for settling files.
const SETTLE_POLL: Duration = Duration::from_millis(250);

/// Plans `ds` for a bounded mode (`once`, `available-now`): files present at start that are still settling (a
/// `cp` just before the run) are waited for, at most twice the settle time plus [`SETTLE_MARGIN`], instead of
/// being left silently for some later run. What is still changing after that is named in a warning.
///
/// # Errors
/// Listing/checkpoint failures, as [`plan_listing`].
async fn plan_bounded(ctx: &Context, ds: &str) -> Result<Vec<LandingFile>, RunError> {
    let started = tokio::time::Instant::now();
    let deadline = started + ctx.config.settle_time * 2 + SETTLE_MARGIN;
    let mut waiting = false;
    loop {
        let opts = plan_options(&ctx.config, false);
        let plan = plan_listing(&ctx.landing, &ctx.checkpoint, ds, &opts).await?;
        if plan.not_ready.is_empty() {
            if waiting {
                tracing::info!(
                    dataset = ds,
                    waited_ms = started.elapsed().as_millis() as u64,
                    "settling files are ready"
                );
            }
            return Ok(plan.files);
        }
        if tokio::time::Instant::now() >= deadline || ctx.cancel.is_cancelled() {
            let (future, changing) = modified_in_the_future(ctx, plan.not_ready).await;
            if !future.is_empty() {
                tracing::warn!(
                    dataset = ds,
                    files = %future.join(", "),
                    "files modified in the future (a writer's clock ahead of this host's, or a time set by hand): a run after that time, plus the settle time, reads them"
                );
            }
            if !changing.is_empty() {
                tracing::warn!(
                    dataset = ds,
                    files = %changing.join(", "),
                    "files still changing after waiting {}; a later run reads them",
                    humantime::format_duration(started.elapsed())
                );
            }
            return Ok(plan.files);
        }
        if !waiting {
            tracing::info!(
                dataset = ds,
                files = plan.not_ready.len(),
                settle_time = %humantime::format_duration(ctx.config.settle_time),
                "waiting for files that are still being written (settle time)"
            );
            waiting = true;
        }
        tokio::time::sleep(
            SETTLE_POLL
                .min(ctx.config.settle_time / 2)
                .max(Duration::from_millis(10)),
        )
        .await;
    }
}

/// Splits files that are not ready (landing-relative paths) into those whose modification time lies in the
/// future, each shown as `path (modified <time>)`, and the others (still changing). A file that cannot be
/// looked at again counts as changing.
async fn modified_in_the_future(
    ctx: &Context,
    not_ready: Vec<String>,
) -> (Vec<String>, Vec<String>) {
    use object_store::ObjectStoreExt as _;
    let now = Utc::now();
    let (mut future, mut changing) = (Vec::new(), Vec::new());
    for rel in not_ready {
        match ctx.landing.store.head(&ctx.landing.path(&rel)).await {
            Ok(meta) if meta.last_modified > now => future.push(format!(
                "{rel} (modified {})",
                meta.last_modified.format("%Y-%m-%dT%H:%M:%SZ")
            )),
            _ => changing.push(rel),
        }
    }
    (future, changing)
}

async fn run_once(ctx: &Context, ds: &str) -> Result<DatasetRun, RunError> {
    let files = plan_bounded(ctx, ds).await?;
    let planned = files.len() as u64;
    if ctx.cancel.is_cancelled() {
        return Ok(DatasetRun {
            reports: Vec::new(),
            unread: planned,
        });
    }
    if files.is_empty() {
        return Ok(DatasetRun::default());
    }
    tracing::info!(
        dataset = ds,
        files = files.len(),
        "ingesting everything new as one batch"
    );
    let mut out = DatasetRun::default();
    match batch::run_batch(ctx, ds, files).await? {
        Some(r) => {
            log_report(&r);
            out.reports.push(r);
        }
        // No report and shutdown requested: the batch was abandoned before publishing, its files unread.
        None if ctx.cancel.is_cancelled() => out.unread = planned,
        None => {}
    }
    Ok(out)
}

async fn run_available_now(ctx: &Context, ds: &str) -> Result<DatasetRun, RunError> {
    let files = plan_bounded(ctx, ds).await?;
    let batches = split_batches(
        files,
        ctx.config.max_files_per_batch,
        ctx.config.max_bytes_per_batch,
    );
    let total = batches.len();
    let mut out = DatasetRun::default();
    let mut batches = batches.into_iter().enumerate();
    while let Some((i, files)) = batches.next() {
        if ctx.cancel.is_cancelled() {
            out.unread = files.len() as u64 + batches.map(|(_, f)| f.len() as u64).sum::<u64>();
            tracing::info!(
                dataset = ds,
                done = i,
                total,
                unread = out.unread,
                "shutdown: stopping between batches"
            );
            break;
        }
        tracing::info!(
            dataset = ds,
            batch = i + 1,
            of = total,
            files = files.len(),
            "available-now batch"
        );
        let planned = files.len() as u64;
        match batch::run_batch(ctx, ds, files).await? {
            Some(r) => {
                log_report(&r);
                out.reports.push(r);
            }
            // Abandoned before publishing: this batch's files and every later batch's stay unread.
            None if ctx.cancel.is_cancelled() => {
                out.unread = planned + batches.map(|(_, f)| f.len() as u64).sum::<u64>();
                break;
            }
            None => {}
        }
    }
    Ok(out)
}

async fn run_micro_batch(ctx: &Context, ds: &str) -> Result<Vec<BatchReport>, RunError> {
    let mut out = DaemonBatches::default();
    let compactor = compact::Compactor::start(ctx, ds);
    let r = micro_batches(ctx, ds, &mut out, compactor.as_ref()).await;
    if let Some(c) = compactor {
        c.stop().await;
    }
    r.map(|()| out.reports)
}

/// The batches of `run_micro_batch`, each followed by a poke of the compactor.
async fn micro_batches(
    ctx: &Context,
    ds: &str,
    out: &mut DaemonBatches,
    compactor: Option<&compact::Compactor>,
) -> Result<(), RunError> {
    let interval = ctx.config.interval;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let started = tokio::time::Instant::now();
        let opts = plan_options(&ctx.config, true);
        let files = plan_dataset(&ctx.landing, &ctx.checkpoint, ds, &opts).await?;
        let Some(first) = split_batches(
            files,
            ctx.config.max_files_per_batch,
            ctx.config.max_bytes_per_batch,
        )
        .into_iter()
        .next() else {
            tracing::debug!(dataset = ds, "micro-batch: nothing new");
            continue;
        };
        match out.run(ctx, ds, first).await {
            Attempt::Shutdown => break,
            Attempt::RolledBack => continue,
            Attempt::Done => {}
        }
        if let Some(c) = compactor {
            c.poke();
        }
        let took = started.elapsed();
        if took > interval {
            tracing::warn!(dataset = ds, took = ?took, interval = ?interval, "micro-batch took longer than the interval; the next one starts now");
        }
    }
    Ok(())
}

/// The batches of a daemon mode (`micro-batch`, `continuous`): the committed reports, and the failures in a row
/// that pace the retries.
#[derive(Default)]
pub(crate) struct DaemonBatches {
    /// Committed batches.
    pub(crate) reports: Vec<BatchReport>,
    /// Failed attempts since the last commit.
    failures: u32,
}

/// What became of one batch of a daemon mode.
pub(crate) enum Attempt {
    /// Committed (or nothing to commit).
    Done,
    /// Failed and rolled back: its files are still new; list again and retry.
    RolledBack,
    /// Failed, and shutdown was requested while waiting to roll it back.
    Shutdown,
}

impl DaemonBatches {
    /// Runs one batch; a failure is rolled back after a pause ([`recover_after_failure`]).
    pub(crate) async fn run(
        &mut self,
        ctx: &Context,
        ds: &str,
        files: Vec<LandingFile>,
    ) -> Attempt {
        match batch::run_batch(ctx, ds, files).await {
            Ok(report) => {
                if let Some(r) = report {
                    self.failures = 0;
                    log_report(&r);
                    self.reports.push(r);
                }
                Attempt::Done
            }
            Err(e) if recover_after_failure(ctx, ds, &e, &mut self.failures).await => {
                Attempt::RolledBack
            }
            Err(_) => Attempt::Shutdown,
        }
    }
}

/// Longest pause between retries of a failed batch in `micro-batch` and `continuous`.
const MAX_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(60);

/// The pause before retry number `failures` (1-based): 1s, 2s, 4s, ... up to [`MAX_RETRY_DELAY`].
fn retry_delay(failures: u32) -> std::time::Duration {
    std::time::Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(MAX_RETRY_DELAY)
}

/// After a batch failed on storage (sink or checkpoint) in a daemon mode: nothing of it is committed. Waits
/// with exponential backoff, rolls the batch back ([`batch::recover`]), and repeats until the rollback itself
/// works (the fault has cleared); the caller then lists landing again and retries. Returns `false` when
/// shutdown was requested meanwhile (the next start rolls back whatever is left).
async fn recover_after_failure(
    ctx: &Context,
    ds: &str,
    error: &RunError,
    failures: &mut u32,
) -> bool {
    *failures += 1;
    let m = crate::metrics::get();
    m.batches_failed
        .get_or_create(&crate::metrics::ds(ds))
        .inc();
    m.dataset_failing
        .get_or_create(&crate::metrics::ds(ds))
        .set(1);
    let mut last = error.to_string();
    loop {
        let delay = retry_delay(*failures);
        tracing::error!(dataset = ds, error = %last, attempt = *failures, retry_in = ?delay, "batch failed: nothing of it is committed; rolling it back and retrying after a pause");
        tokio::select! {
            _ = ctx.cancel.cancelled() => return false,
            _ = tokio::time::sleep(delay) => {}
        }
        match batch::recover(ctx, ds).await {
            Ok(_) => return true,
            Err(e) => {
                *failures += 1;
                last = format!("rolling back failed too: {e}");
            }
        }
    }
}

pub(crate) fn log_report(r: &BatchReport) {
    tracing::info!(
        dataset = %r.dataset,
        batch = r.id,
        files = r.files,
        rows = r.counts.rows,
        duplicates = r.counts.duplicates,
        quarantined = r.counts.quarantined,
        failed_files = r.failed_files,
        parts = r.parts,
        bytes = r.bytes,
        secs = r.elapsed.as_secs_f64(),
        "batch committed"
    );
    if r.counts.unchecked > 0 {
        tracing::warn!(
            dataset = %r.dataset,
            batch = r.id,
            unchecked = r.counts.unchecked,
            "{} record(s) NOT checked for duplicates: their event day is beyond dedup_retention, or neither held by the local dedup index nor readable from bronze (a CSV table written before _record_key), so they were written without looking for an earlier copy",
            r.counts.unchecked
        );
    }
}
