//! Continuous mode: event-driven small batches with tailing of growing files.
//!
//! One task per dataset, so a slow or failing dataset does not hold the others back. Each task wakes up on
//! (a) filesystem events routed to it by path, (b) a periodic full listing (`poll_interval`, the safety net for
//! lost events and the only source on backends without events), (c) a re-check of files that were not ready
//! (not settled, or a growing file whose partial last line was held back). A wake-up is coalesced with those
//! that follow: for a short quiet gap when idle (low latency), for up to `max_batch_delay` when batches follow
//! each other closely (fewer, larger Parquet parts under load).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout_at, Instant};

use super::compact::Compactor;
use super::{plan_options, Attempt, BatchReport, Context, DaemonBatches, RunSummary};
use crate::modes::RunError;
use crate::source::listing::{plan_listing, plan_paths, split_batches, Plan};
use crate::source::watch::{watch, WatchEvent};
use crate::source::LandingFile;

/// When idle, a wake-up waits this long for further events of the same write (a rename or a close often
/// produces several) before the batch starts.
pub(crate) const QUIET_GAP: Duration = Duration::from_millis(10);

/// Wake-ups queued per dataset.
const WAKE_CHANNEL_CAPACITY: usize = 4096;

#[derive(Debug)]
enum Wake {
    Path(WatchEvent),
    ListAll,
}

/// Runs until `ctx.cancel` fires or a dataset fails fatally.
///
/// # Errors
/// The first fatal error of a dataset (the others are then stopped too).
pub(crate) async fn run(ctx: Context, datasets: Vec<String>) -> Result<RunSummary, RunError> {
    let mut watcher = watch(&ctx.landing, ctx.config.follow_symlinks);
    let mut senders: HashMap<String, mpsc::Sender<Wake>> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for ds in &datasets {
        let (tx, rx) = mpsc::channel(WAKE_CHANNEL_CAPACITY);
        senders.insert(ds.clone(), tx);
        let ctx = ctx.clone();
        let ds = ds.clone();
        tasks.spawn(async move {
            let r = dataset_loop(&ctx, &ds, rx).await;
            (ds, r)
        });
    }
    tracing::info!(datasets = %datasets.join(","), events = watcher.is_active(), "continuous mode: watching landing");
    let mut summary = RunSummary::default();
    let mut first_err = None;
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            ev = watcher.events.recv(), if watcher.is_active() => {
                let Some(ev) = ev else { break };
                let ds = ev.rel.split('/').next().unwrap_or_default().to_string();
                if let Some(tx) = senders.get(&ds) {
                    // A new dataset directory: list it (its files may predate the watch on it).
                    let wake = if ev.rel.contains('/') { Wake::Path(ev) } else { Wake::ListAll };
                    if tx.try_send(wake).is_err() {
                        let _ = tx.try_send(Wake::ListAll);
                    }
                }
                if watcher.overflowed() {
                    tracing::warn!("filesystem events were dropped; listing every dataset");
                    for tx in senders.values() {
                        let _ = tx.try_send(Wake::ListAll);
                    }
                }
            }
            Some(joined) = tasks.join_next() => {
                let (ds, r) = joined.expect("dataset tasks do not panic");
                match r {
                    Ok(reports) => summary.batches.extend(reports),
                    Err(e) => {
                        tracing::error!(dataset = %ds, error = %e, "dataset stopped; stopping the others");
                        first_err = Some(e);
                        ctx.cancel.cancel();
                        break;
                    }
                }
            }
        }
    }
    drop(senders);
    while let Some(joined) = tasks.join_next().await {
        let (ds, r) = joined.expect("dataset tasks do not panic");
        match r {
            Ok(reports) => summary.batches.extend(reports),
            Err(e) => {
                tracing::error!(dataset = %ds, error = %e, "dataset stopped");
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// One dataset's batches, with its automatic compaction beside them ([`super::compact`]).
async fn dataset_loop(
    ctx: &Context,
    ds: &str,
    rx: mpsc::Receiver<Wake>,
) -> Result<Vec<BatchReport>, RunError> {
    let compactor = Compactor::start(ctx, ds);
    let mut batches = DaemonBatches::default();
    let r = batch_loop(ctx, ds, rx, &mut batches, compactor.as_ref()).await;
    if let Some(c) = compactor {
        c.stop().await;
    }
    r.map(|()| batches.reports)
}

/// Far enough in the future to mean "no recheck pending".
fn far() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// What the wake-ups of one round ask for: these paths (and which were renamed in), or a full listing.
#[derive(Default)]
struct Wakes {
    paths: BTreeSet<String>,
    renamed: BTreeSet<String>,
    full: bool,
}

impl Wakes {
    /// Adds one wake-up to the round.
    fn add(&mut self, w: Wake) {
        match w {
            Wake::ListAll => self.full = true,
            Wake::Path(e) => {
                if e.renamed_in {
                    self.renamed.insert(e.rel.clone());
                }
                self.paths.insert(e.rel);
            }
        }
    }
}

/// Files to look at again (not ready yet, or growing), and when.
struct Recheck {
    paths: BTreeSet<String>,
    at: Instant,
    delay: Duration,
}

impl Recheck {
    /// Moves the paths due for a recheck into `paths` and clears the timer.
    fn take_into(&mut self, paths: &mut BTreeSet<String>) {
        paths.append(&mut self.paths);
        self.at = far();
    }

    /// Remembers the plan's files that were not ready, or not final (a tail held back), and sets the timer.
    fn schedule(&mut self, not_ready: Vec<String>, files: &[LandingFile]) {
        for p in not_ready {
            self.paths.insert(p);
        }
        for f in files.iter().filter(|f| !f.is_final && !f.gzip) {
            self.paths.insert(f.path.clone());
        }
        if !self.paths.is_empty() {
            self.at = self.at.min(Instant::now() + self.delay);
        }
    }
}

async fn batch_loop(
    ctx: &Context,
    ds: &str,
    mut rx: mpsc::Receiver<Wake>,
    batches: &mut DaemonBatches,
    compactor: Option<&Compactor>,
) -> Result<(), RunError> {
    let mut poll = tokio::time::interval(ctx.config.poll_interval.max(Duration::from_millis(10)));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut recheck = Recheck {
        paths: BTreeSet::new(),
        at: far(),
        delay: ctx.config.settle_time + Duration::from_millis(20),
    };
    let mut last_batch_end: Option<Instant> = None;
    let mut relist = false;
    loop {
        let mut wakes = Wakes::default();
        tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            _ = std::future::ready(()), if relist => {
                relist = false;
                wakes.full = true;
            }
            _ = poll.tick() => wakes.full = true,
            _ = sleep_until(recheck.at) => recheck.take_into(&mut wakes.paths),
            w = rx.recv() => match w {
                None => break,
                Some(w) => wakes.add(w),
            },
        }
        coalesce(ctx, &mut rx, &mut wakes, last_batch_end).await;
        if ctx.cancel.is_cancelled() {
            break;
        }
        let mut plan = plan_wakes(ctx, ds, &wakes).await?;
        recheck.schedule(std::mem::take(&mut plan.not_ready), &plan.files);
        for files in split_batches(
            plan.files,
            ctx.config.max_files_per_batch,
            ctx.config.max_bytes_per_batch,
        ) {
            if ctx.cancel.is_cancelled() {
                break;
            }
            match batches.run(ctx, ds, files).await {
                Attempt::Shutdown => return Ok(()),
                Attempt::RolledBack => {
                    // List everything again: the failed batch's files are still new.
                    relist = true;
                    break;
                }
                Attempt::Done => {
                    if let Some(c) = compactor {
                        c.poke();
                    }
                }
            }
            last_batch_end = Some(Instant::now());
        }
    }
    Ok(())
}

/// Adds the wake-ups that follow the first one of a round to `wakes`.
async fn coalesce(
    ctx: &Context,
    rx: &mut mpsc::Receiver<Wake>,
    wakes: &mut Wakes,
    last_batch_end: Option<Instant>,
) {
    // Coalesce what follows: a quiet gap when idle, the whole max_batch_delay when busy.
    let busy = last_batch_end.is_some_and(|t| t.elapsed() < ctx.config.max_batch_delay * 4);
    let hard_deadline = Instant::now() + ctx.config.max_batch_delay;
    loop {
        let deadline = if busy {
            hard_deadline
        } else {
            hard_deadline.min(Instant::now() + QUIET_GAP)
        };
        match timeout_at(deadline, rx.recv()).await {
            Ok(Some(w)) => wakes.add(w),
            _ => break,
        }
    }
}

/// Plans the round: a listing of the dataset when a full one was asked for, else only the paths woken.
async fn plan_wakes(ctx: &Context, ds: &str, wakes: &Wakes) -> Result<Plan, RunError> {
    let opts = plan_options(&ctx.config, true);
    Ok(if wakes.full {
        plan_listing(&ctx.landing, &ctx.checkpoint, ds, &opts).await?
    } else {
        plan_paths(
            &ctx.landing,
            &ctx.checkpoint,
            ds,
            &wakes.paths,
            &wakes.renamed,
            &opts,
        )
        .await?
    })
}
