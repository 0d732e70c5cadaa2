//! One batch of one dataset, and the commit protocol that makes it exactly-once.
//!
//! [`run_batch`] reads as the protocol's steps: the intent here, stage 2 in `stage` (`stage_batch`), publishing
//! here, dedup runs and the commit in `commit`, then metrics and clean-up here. [`recover`] undoes what an
//! interrupted batch left; `verify` checks the result read-only.
//!
//! # Commit protocol
//! 1. **Intent.** `pending/<dataset>` = `{id, state: Writing, staging prefix}` is written to sled and flushed.
//!    *Crash here:* nothing was written; recovery deletes the (empty) staging prefix and the intent.
//! 2. **Stage.** Files are decoded in parallel (bounded by `parallelism`), consumed in path order (so the first
//!    occurrence of a key wins deterministically), deduplicated, split by UTC day and encoded to Parquet, which
//!    is uploaded under `_staging/<dataset>/b<id>/`; quarantined records go to a staged Parquet file too. Each
//!    upload is durable when it completes (fsync on the local store). *Crash here:* only staging objects exist,
//!    which readers never see; recovery deletes them.
//! 3. **Publishing.** The intent is rewritten with `state: Publishing` and the list of final names, flushed.
//! 4. **Publish.** Each staged part is renamed to its final name
//!    `<dataset>/year=YYYY/month=MM/day=DD/part-b<id>-<seq>.parquet`. *Crash here:* some parts are visible but
//!    the batch is not committed; recovery deletes every final name listed in the intent (and the staging
//!    prefix), so bronze again equals the committed batches, and the files are read again by the next batch.
//! 5. **Dedup runs.** The batch's new keys are written to the dedup index (`crate::dedup::index`) as one run file
//!    per UTC event day, named after the batch id, fsynced. *Crash here:* the runs name a batch the checkpoint
//!    does not hold; recovery deletes them with the rest of the batch.
//! 6. **Commit.** One atomic sled batch writes the file records, the batch record (which makes its runs count),
//!    the watermark and the schema, removes the intent, and is flushed. From here the batch counts. Then the runs
//!    become visible to lookups, and whole days behind the horizon are pruned (a crash before the pruning is
//!    finished by the next start).
//! 7. **Clean source** (optional): landing files are deleted or archived only after the commit, and only when all
//!    their bytes are in bronze or in the quarantine (never a file with a record quarantined only in part).
//!
//! A file that fails as a whole while the batch is being staged (truncated or corrupt gzip, a CSV header that
//! does not match) aborts the attempt: the staging prefix is deleted and the batch is re-run without that file,
//! which is recorded as `Failed` and copied to `_quarantine/<dataset>/files/`. So a file is never half-ingested.
//!
//! On shutdown (cancellation) during steps 1-2 the attempt is abandoned and rolled back at once; from step 3 on
//! the batch is finished.
//!
//! This is the protocol of `table_format = "parquet"`. For `delta` (`super::delta`), steps 1-2 are the same
//! except that parts are written at their final names (unique per batch token), and steps 3-6 become: dedup
//! runs, intent `Committing` (with the sled commit), one Delta commit (the publish), the sled commit.
//! Part names carry the intent's random token in both formats, so two checkpoints writing one bronze never
//! overwrite each other's parts.

use std::time::Instant;

use chrono::Utc;
use object_store::ObjectStoreExt;

use crate::checkpoint::{BatchIntent, IntentState};
use crate::config::CleanSource;
use crate::dedup::index::keep_from_day;
use crate::modes::{RecordCounts, RunError};
use crate::sink::parquet::{delete, delete_prefix, publish};
use crate::sink::PartWriter;
use crate::source::LandingFile;
use crate::table::TableFormat;

use super::commit::{commit, keeps_truncated, record_metrics, Totals};
use super::context::{blocking, clear_intent, failpoint, write_intent, Context};
use super::stage::{discard_attempt, stage_batch, StagedBatch};

/// What a committed batch did.
#[derive(Debug, Clone)]
pub struct BatchReport {
    /// Dataset.
    pub dataset: String,
    /// Batch id.
    pub(crate) id: u64,
    /// Files read (including failed ones).
    pub files: usize,
    /// Files that failed as a whole.
    pub failed_files: usize,
    /// Rows written, duplicates dropped, records written unchecked, records quarantined.
    pub counts: RecordCounts,
    /// Parquet data parts published.
    pub parts: usize,
    /// Input bytes read.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: std::time::Duration,
}

impl std::fmt::Display for BatchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: batch {} committed: {} file(s), {} rows written, {} duplicates dropped, {} quarantined, {} failed file(s), {} part(s) in {:.2}s",
            self.dataset,
            self.id,
            self.files,
            self.counts.rows,
            self.counts.duplicates,
            self.counts.quarantined,
            self.failed_files,
            self.parts,
            self.elapsed.as_secs_f64()
        )?;
        if self.counts.unchecked > 0 {
            // Said plainly: these records were not compared with anything.
            write!(
                f,
                "; {} record(s) NOT checked for duplicates (event day beyond dedup_retention, or not readable from bronze)",
                self.counts.unchecked
            )?;
        }
        Ok(())
    }
}

/// Rolls back a batch of `dataset` that an earlier run left uncommitted, and removes stale staging objects.
/// Returns the number of objects removed.
///
/// # Errors
/// Checkpoint or bronze failures.
pub(crate) async fn recover(ctx: &Context, dataset: &str) -> Result<usize, RunError> {
    let cp = ctx.checkpoint.clone();
    let ds = dataset.to_string();
    let intent = blocking(move || cp.intent(&ds)).await?;
    if let Some(i) = &intent {
        // Delta: the table says whether the batch committed; if it did, only sled's records were missing.
        if i.state == IntentState::Committing && super::delta::finish_committed(ctx, i).await? {
            load_dedup(ctx, dataset).await?;
            return Ok(0);
        }
    }
    let mut removed = 0;
    if let Some(intent) = &intent {
        for f in &intent.finals {
            delete(&ctx.bronze, &ctx.bronze.path(f)).await?;
            removed += 1;
        }
        removed += discard_attempt(ctx, intent).await?;
    }
    removed += delete_prefix(&ctx.bronze, &format!("_staging/{dataset}")).await?;
    removed += remove_log_temps(ctx, dataset).await;
    load_dedup(ctx, dataset).await?;
    if let Some(intent) = intent {
        clear_intent(ctx, dataset).await?;
        tracing::warn!(
            dataset,
            batch = intent.id,
            state = ?intent.state,
            removed,
            "rolled back a batch that an earlier run did not commit; its files will be read again"
        );
    }
    Ok(removed)
}

/// HDFS: removes the stale temporaries of log entries from `dataset`'s data and quarantine tables
/// (`crate::table::temps`). Only a warning when that fails: leftovers cost space, never correctness.
async fn remove_log_temps(ctx: &Context, dataset: &str) -> usize {
    if ctx.config.table_format != TableFormat::Delta
        || ctx.bronze.backend != crate::store::Backend::Hdfs
    {
        return 0;
    }
    let mut removed = 0;
    for root in [dataset.to_string(), super::quarantine::root(dataset)] {
        match crate::table::temps::remove_stale_log_temps(&ctx.bronze, &root, Utc::now()).await {
            Ok(n) => removed += n,
            Err(e) => {
                tracing::warn!(table = %root, error = %e, "could not remove stale temporaries from the delta log")
            }
        }
    }
    removed
}

/// Loads the dedup index of `dataset`: moves keys an old-layout checkpoint kept in sled into run files, then
/// opens the runs its commits reference (deleting those of an interrupted batch, an interrupted merge, and days
/// behind the horizon).
///
/// # Errors
/// Checkpoint or dedup index failures.
pub(crate) async fn load_dedup(ctx: &Context, dataset: &str) -> Result<(), RunError> {
    let cp = ctx.checkpoint.clone();
    let index = ctx.dedup.clone();
    let ds = dataset.to_string();
    let horizon = ctx.config.dedup_horizon;
    blocking(move || -> Result<(), RunError> {
        let last = cp.last_batch_id(&ds)?;
        let keep = keep_from_day(cp.watermark(&ds)?, horizon);
        let legacy = cp.legacy_dedup_keys(&ds)?;
        if !legacy.is_empty() {
            let mut by_day = std::collections::BTreeMap::<i32, Vec<u128>>::new();
            for (key, t) in &legacy {
                by_day
                    .entry(crate::dedup::index::day_of(*t))
                    .or_default()
                    .push(*key);
            }
            // Written as runs of the last committed batch (so they count at once), then removed from sled; a
            // crash in between only writes the same runs again on the next start.
            index.write_batch(&ds, last, by_day)?;
            cp.remove_legacy_dedup_keys(&ds)?;
            tracing::info!(dataset = %ds, keys = legacy.len(), "moved dedup keys from the old checkpoint layout into the dedup index");
        }
        let started = Instant::now();
        index.load(&ds, last, keep)?;
        let stats = index.snapshot(&ds).stats();
        let m = crate::metrics::get();
        let l = crate::metrics::ds(&ds);
        m.dedup_keys.get_or_create(&l).set(stats.keys as i64);
        if let Some(b) = cp.batch(&ds, last)? {
            m.last_commit
                .get_or_create(&l)
                .set(b.committed_at.timestamp_micros() as f64 / 1e6);
        }
        tracing::debug!(
            dataset = %ds,
            keys = stats.keys,
            runs = stats.runs,
            filter_bytes = stats.filter_bytes,
            load_ms = started.elapsed().as_secs_f64() * 1e3,
            "dedup index loaded"
        );
        Ok(())
    })
    .await?;
    super::cross_check::init_seen(ctx, dataset).await
}

/// Runs one batch over `files` (all of `dataset`) through the whole commit protocol. Returns `None` when the
/// batch was abandoned because of shutdown before publishing, or had nothing to record. A batch that another
/// writer's commit collides with (`super::cross_check`) is rolled back and run again.
///
/// # Errors
/// Sink and checkpoint failures (fatal). File-level failures are recorded, not returned.
pub(crate) async fn run_batch(
    ctx: &Context,
    dataset: &str,
    files: Vec<LandingFile>,
) -> Result<Option<BatchReport>, RunError> {
    for _ in 0..super::cross_check::MAX_REDOS {
        match run_batch_once(ctx, dataset, files.clone()).await {
            Err(RunError::CrossCheck(e)) if e.redo() => {
                tracing::warn!(dataset, error = %e, "cross-writer check");
                if matches!(e, super::cross_check::CrossCheckError::Conflict { .. }) {
                    crate::metrics::get()
                        .cross_writer_redos
                        .get_or_create(&crate::metrics::ds(dataset))
                        .inc();
                }
                recover(ctx, dataset).await?;
            }
            r => return r,
        }
    }
    Err(super::cross_check::CrossCheckError::TooManyRedos {
        dataset: dataset.to_string(),
        attempts: super::cross_check::MAX_REDOS,
    }
    .into())
}

async fn run_batch_once(
    ctx: &Context,
    dataset: &str,
    files: Vec<LandingFile>,
) -> Result<Option<BatchReport>, RunError> {
    let started = Instant::now();
    if !ctx.dedup.is_loaded(dataset) {
        load_dedup(ctx, dataset).await?;
    }

    // 1. Intent.
    let intent = new_intent(ctx, dataset).await?;
    let id = intent.id;
    write_intent(ctx, &intent).await?;
    failpoint("intent");

    // 2. Stage.
    let Some(mut staged) = stage_batch(ctx, &intent, files).await? else {
        return Ok(None);
    };
    failpoint("staged");

    // 3-6: from here on the batch is finished even on shutdown.
    let (totals, committed_at) = match ctx.config.table_format {
        TableFormat::Parquet => publish_and_commit(ctx, intent, &mut staged).await?,
        TableFormat::Delta => super::delta::commit_batch(ctx, intent, &mut staged).await?,
    };

    // 7. After the commit: metrics, report, clean source.
    let read = || {
        staged
            .files
            .iter()
            .chain(staged.failed.iter().map(|(f, _)| f))
    };
    let failed_files = staged.failed.len();
    record_metrics(
        ctx,
        dataset,
        read(),
        committed_at,
        totals,
        failed_files,
        started.elapsed(),
    );
    let report = batch_report(dataset, id, &staged, totals, started.elapsed());
    // A file with records kept only in part is not all in bronze or the quarantine: it stays in landing.
    let truncated: Vec<&str> = staged
        .files
        .iter()
        .zip(&staged.staged.outcomes)
        .filter(|(f, o)| keeps_truncated(f, o))
        .map(|(f, _)| f.path.as_str())
        .collect();
    clean_source(ctx, read(), &truncated).await;
    Ok(Some(report))
}

/// Step 1's intent `{id, state: Writing, token}` for the next batch of `dataset` (not yet written).
async fn new_intent(ctx: &Context, dataset: &str) -> Result<BatchIntent, RunError> {
    let cp = ctx.checkpoint.clone();
    let ds = dataset.to_string();
    let id = blocking(move || cp.next_batch_id(&ds)).await?;
    Ok(BatchIntent {
        id,
        dataset: dataset.to_string(),
        state: IntentState::Writing,
        staging_prefix: PartWriter::staging_prefix(dataset, id),
        finals: Vec::new(),
        started_at: Utc::now(),
        token: format!("{:012x}", rand::random::<u64>() >> 16),
        commit: None,
    })
}

/// The report of committed batch `id`: files read, counts, data parts and bytes.
fn batch_report(
    dataset: &str,
    id: u64,
    staged: &StagedBatch,
    totals: Totals,
    elapsed: std::time::Duration,
) -> BatchReport {
    let failed_files = staged.failed.len();
    BatchReport {
        dataset: dataset.to_string(),
        id,
        files: staged.files.len() + failed_files,
        failed_files,
        counts: totals.counts,
        parts: staged
            .staged
            .parts
            .iter()
            .filter(|p| !p.final_path.starts_with("_quarantine/"))
            .count(),
        bytes: totals.input_bytes,
        elapsed,
    }
}

/// Steps 3-6 for a Parquet bronze: publishing, publish (rename each part), dedup runs, sled commit.
async fn publish_and_commit(
    ctx: &Context,
    intent: BatchIntent,
    staged: &mut StagedBatch,
) -> Result<(Totals, chrono::DateTime<Utc>), RunError> {
    // 3-4. Publishing, then publish.
    let intent = BatchIntent {
        state: IntentState::Publishing,
        finals: staged.final_paths(),
        ..intent
    };
    write_intent(ctx, &intent).await?;
    failpoint("publishing");
    publish(&ctx.bronze, &staged.outputs).await?;
    failpoint("published");

    // 5-6. Dedup runs, then the commit.
    commit(ctx, &intent, staged).await
}

/// Deletes or archives landing files after their batch committed (`clean_source`), except those in `keep`
/// (records quarantined only in part).
async fn clean_source<'a>(
    ctx: &Context,
    files: impl Iterator<Item = &'a LandingFile>,
    keep: &[&str],
) {
    let action = match ctx.config.clean_source_action() {
        Ok(CleanSource::Off) | Err(_) => return,
        Ok(a) => a,
    };
    for f in files {
        if !f.is_final && !f.gzip {
            continue; // still growing: keep it
        }
        if keep.contains(&f.path.as_str()) {
            tracing::warn!(path = %f.path, "clean_source skipped: records over max_record_bytes were quarantined with their first bytes only, so the file stays in landing (status ok+truncated)");
            continue;
        }
        let r = match &action {
            CleanSource::Delete => ctx.landing.store.delete(&f.location).await,
            CleanSource::Archive(dir) => {
                let to = ctx
                    .landing
                    .path(&format!("{}/{}", dir.trim_matches('/'), f.path));
                ctx.landing.store.rename(&f.location, &to).await
            }
            CleanSource::Off => Ok(()),
        };
        if let Err(e) = r {
            tracing::warn!(path = %f.path, error = %e, "clean_source failed; the file stays in landing (it is already committed)");
        }
    }
}
