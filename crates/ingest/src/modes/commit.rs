//! Steps 5 and 6 of the commit protocol (see [`super::batch`]): write the batch's dedup runs ([`prepare`]), then
//! commit the file records, the batch record and the schema in one atomic sled batch and make the runs visible
//! ([`finish`]). The Delta protocol (`super::delta`) makes its table commit between the two.

use std::time::Instant;

use chrono::{DateTime, Utc};

use super::context::{blocking, failpoint, Context};
use super::stage::{FileOutcome, StagedBatch};
use crate::checkpoint::{
    BatchCommit, BatchInput, BatchIntent, BatchRecord, FileRecord, FileStatus, OutputFile,
    StoredCounts,
};
use crate::dedup::index::{keep_from_day, StagedRuns};
use crate::modes::{RecordCounts, RunError};
use crate::source::{Change, LandingFile};

/// What a committed batch adds up to.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Totals {
    /// Rows written, duplicates dropped, records written unchecked (beyond `dedup_retention`), records
    /// quarantined (a file rejected as a whole counts one).
    pub(super) counts: RecordCounts,
    /// Landing bytes read.
    pub(super) input_bytes: u64,
}

/// A batch whose dedup runs are written, ready for its sled commit (and, for Delta, its table commit first).
pub(super) struct Prepared {
    /// What the sled commit writes.
    pub(super) commit: BatchCommit,
    /// The batch's totals.
    pub(super) totals: Totals,
    /// The commit time recorded.
    pub(super) committed_at: DateTime<Utc>,
    runs: StagedRuns,
    keep: Option<i32>,
    /// Whether bronze holds the batch's keys: only then can days leave the index (they are read back).
    evictable: bool,
}

impl Prepared {
    /// Adds `keys_by_day` (for each day: the batch's own new keys and the keys other writers committed that
    /// day, found by the cross-worker check) to the batch's runs, written again for those days; days behind the
    /// horizon are left out as in [`prepare`]. They count with the batch's sled commit.
    ///
    /// # Errors
    /// Dedup index failures: the batch must then not commit.
    pub(super) async fn rewrite_runs(
        &mut self,
        ctx: &Context,
        mut keys_by_day: std::collections::BTreeMap<i32, Vec<u128>>,
    ) -> Result<(), RunError> {
        if let Some(k) = self.keep {
            keys_by_day = keys_by_day.split_off(&k);
        }
        if keys_by_day.is_empty() {
            return Ok(());
        }
        let index = ctx.dedup.clone();
        let (ds, id) = (self.commit.batch.dataset.clone(), self.commit.batch.id);
        let more = blocking(move || index.write_batch(&ds, id, keys_by_day)).await?;
        self.runs.absorb(more);
        Ok(())
    }
}

/// Writes the dedup runs of the published batch `intent`, commits it, and publishes the runs. Returns the
/// totals and the commit time.
///
/// # Errors
/// Checkpoint and dedup index failures: nothing of the batch counts then (recovery takes it back).
pub(super) async fn commit(
    ctx: &Context,
    intent: &BatchIntent,
    staged: &mut StagedBatch,
) -> Result<(Totals, DateTime<Utc>), RunError> {
    let prepared = prepare(ctx, intent, staged).await?;
    let out = (prepared.totals, prepared.committed_at);
    finish(ctx, prepared).await?;
    Ok(out)
}

/// Step 5: builds the batch's records and writes its dedup runs (durable, not counted before the sled commit).
///
/// # Errors
/// Checkpoint and dedup index failures.
pub(super) async fn prepare(
    ctx: &Context,
    intent: &BatchIntent,
    staged: &mut StagedBatch,
) -> Result<Prepared, RunError> {
    let (id, dataset) = (intent.id, intent.dataset.as_str());
    hash_unhashed_prefixes(ctx, staged).await;
    let committed_at = Utc::now();
    let (inputs, files, totals) = records(staged, id, committed_at);
    let batch = BatchRecord {
        id,
        dataset: dataset.to_string(),
        started_at: intent.started_at,
        committed_at,
        inputs,
        outputs: staged
            .outputs
            .iter()
            .map(|f| OutputFile {
                path: f.final_path.clone(),
                rows: f.rows,
                bytes: f.bytes,
            })
            .collect(),
        counts: totals.counts.into(),
        min_event_time: staged.staged.min_time,
        max_event_time: staged.staged.max_time,
    };

    // 5. Dedup runs: durable before the commit that makes them count. Days already behind the horizon that this
    // batch moves the watermark to are not written at all.
    let (runs, keep) = {
        let cp = ctx.checkpoint.clone();
        let index = ctx.dedup.clone();
        let ds = dataset.to_string();
        let horizon = ctx.config.dedup_horizon;
        let max_time = staged.staged.max_time;
        let mut keys = std::mem::take(&mut staged.staged.new_keys);
        blocking(move || -> Result<_, RunError> {
            let wm = match (cp.watermark(&ds)?, max_time) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            let keep = keep_from_day(wm, horizon);
            if let Some(k) = keep {
                keys = keys.split_off(&k);
            }
            Ok((index.write_batch(&ds, id, keys)?, keep))
        })
        .await?
    };
    failpoint("runs");
    Ok(Prepared {
        commit: BatchCommit {
            batch,
            files,
            schema: staged.schema.take(),
        },
        totals,
        committed_at,
        runs,
        keep,
        evictable: staged.staged.keys_in_bronze,
    })
}

/// Step 6: the sled commit (from here the batch counts for the checkpoint), then the runs become visible.
///
/// # Errors
/// Checkpoint and dedup index failures.
pub(super) async fn finish(ctx: &Context, prepared: Prepared) -> Result<(), RunError> {
    let Prepared {
        commit,
        runs,
        keep,
        evictable,
        ..
    } = prepared;
    let (id, dataset) = (commit.batch.id, commit.batch.dataset.clone());
    let commit_started = Instant::now();
    let cp = ctx.checkpoint.clone();
    blocking(move || {
        #[cfg(feature = "failpoints")]
        crate::faults::checkpoint_commit(cp.dir())?;
        cp.commit(&commit)
    })
    .await?;
    failpoint("committed");
    let run_files = runs.len();
    let index = ctx.dedup.clone();
    // Only a dataset whose bronze holds its keys can lose days from the index: they are read back when touched.
    let budget = evictable.then_some(ctx.config.dedup_cache_bytes);
    let ds = dataset.clone();
    blocking(move || -> Result<(), crate::dedup::index::IndexError> {
        let touched = runs.days();
        index.publish(runs, keep)?;
        if let Some(b) = budget {
            let evicted = index.evict(&ds, b, &touched)?;
            if evicted > 0 {
                tracing::debug!(dataset = %ds, evicted, "dedup: evicted cold days from the index (dedup_cache_bytes)");
            }
        }
        Ok(())
    })
    .await?;
    tracing::debug!(
        dataset = %dataset,
        batch = id,
        run_files,
        commit_ms = commit_started.elapsed().as_secs_f64() * 1e3,
        "dedup runs written, batch committed, runs published"
    );
    Ok(())
}

/// Hashes the consumed prefix of each file whose reader could not tell it (a read that ended well before the
/// last byte read, e.g. at an unclosed quoted CSV field spanning lines): one more read of `0..end`. A file that
/// cannot be read now keeps no prefix hash, so its next change is judged by its first KiB and size.
async fn hash_unhashed_prefixes(ctx: &Context, staged: &mut StagedBatch) {
    for (f, o) in staged.files.iter().zip(staged.staged.outcomes.iter_mut()) {
        if o.prefix_hash.is_some() {
            continue;
        }
        let end = if f.gzip { f.size } else { o.end.end_offset };
        match crate::source::fingerprint::hash_prefix(&ctx.landing, &f.location, &f.path, end).await
        {
            Ok(h) => {
                tracing::debug!(path = %f.path, end, "consumed prefix hashed by one more read");
                o.prefix_hash = Some(h.hex());
            }
            Err(e) => {
                tracing::info!(path = %f.path, error = %e, "could not hash the bytes read from the file; its next change is judged by its first KiB and size")
            }
        }
    }
}

/// The batch's inputs, the new record of every file it read, and its totals.
fn records(
    staged: &StagedBatch,
    id: u64,
    committed_at: DateTime<Utc>,
) -> (Vec<BatchInput>, Vec<FileRecord>, Totals) {
    let mut inputs = Vec::new();
    let mut records = Vec::new();
    let mut totals = Totals::default();
    for (f, o) in staged.files.iter().zip(&staged.staged.outcomes) {
        let start = if f.gzip { 0 } else { f.start_offset };
        let end = if f.gzip { f.size } else { o.end.end_offset };
        totals.counts += o.counts;
        totals.input_bytes += end.saturating_sub(start);
        inputs.push(BatchInput {
            path: f.path.clone(),
            start,
            end,
            counts: o.counts.into(),
        });
        let status = if f.gzip || (f.is_final && end >= f.size) {
            FileStatus::Ok
        } else {
            FileStatus::Partial
        };
        records.push(file_record(f, id, committed_at, end, o, status));
    }
    for (f, e) in &staged.failed {
        totals.counts.quarantined += 1;
        inputs.push(BatchInput {
            path: f.path.clone(),
            start: 0,
            end: f.size,
            counts: StoredCounts::default(),
        });
        let nothing = FileOutcome::default();
        let status = FileStatus::Failed {
            reason: e.to_string(),
        };
        records.push(file_record(f, id, committed_at, f.size, &nothing, status));
    }
    (inputs, records, totals)
}

/// The record of `f` after batch `batch` read it up to `end_offset` with outcome `o`: counts of an appended
/// tail add to the prior record's, a replaced file starts a new version.
fn file_record(
    f: &LandingFile,
    batch: u64,
    at: DateTime<Utc>,
    end_offset: u64,
    o: &FileOutcome,
    status: FileStatus,
) -> FileRecord {
    let appended = f.change == Change::Appended;
    let (mut counts, mut batches, versions) = match (&f.prior, appended) {
        (Some(p), true) => (p.counts, p.batches.clone(), p.versions),
        (Some(p), false) => (StoredCounts::default(), p.batches.clone(), p.versions + 1),
        (None, _) => (StoredCounts::default(), Vec::new(), 0),
    };
    counts += o.counts.into();
    batches.push(batch);
    let base_truncated = match (&f.prior, appended) {
        (Some(p), true) => p.records_truncated,
        _ => 0,
    };
    let mut continued_lines = match (&f.prior, appended) {
        (Some(p), true) => p.continued_lines.clone(),
        _ => Vec::new(),
    };
    if f.continues_line {
        continued_lines.push(f.start_line);
    }
    FileRecord {
        dataset: f.dataset.clone(),
        path: f.path.clone(),
        size: f.size,
        modified: f.modified,
        fingerprint: f.fingerprint.clone(),
        head_hash: f.head_hash.clone(),
        bytes_consumed: end_offset,
        prefix_hash: o.prefix_hash.clone(),
        lines_consumed: o.end.end_line,
        counts,
        batches,
        versions,
        status,
        processed_at: at,
        continued_lines,
        records_truncated: base_truncated + o.end.truncated,
    }
}

/// Whether some bytes of `f` are neither in bronze nor in the quarantine after this batch read it with outcome
/// `o` (records kept only in part, now or by an earlier batch that read its head): `clean_source` must keep it.
pub(super) fn keeps_truncated(f: &LandingFile, o: &FileOutcome) -> bool {
    let before = match (&f.prior, f.change == Change::Appended) {
        (Some(p), true) => p.records_truncated,
        _ => 0,
    };
    before + o.end.truncated > 0
}

/// Records a committed batch in the metrics.
pub(super) fn record_metrics<'a>(
    ctx: &Context,
    dataset: &str,
    files: impl Iterator<Item = &'a LandingFile>,
    committed_at: DateTime<Utc>,
    totals: Totals,
    failed_files: usize,
    took: std::time::Duration,
) {
    let m = crate::metrics::get();
    let l = crate::metrics::ds(dataset);
    let mut n = 0i64;
    let mut bytes = 0i64;
    for f in files {
        n += 1;
        bytes += f.pending_bytes() as i64;
        let lag = (committed_at - f.modified).num_milliseconds().max(0) as f64 / 1e3;
        m.land_to_commit.get_or_create(&l).observe(lag);
    }
    m.files_ingested.get_or_create(&l).inc_by(n as u64);
    m.rows_written.get_or_create(&l).inc_by(totals.counts.rows);
    m.duplicates_dropped
        .get_or_create(&l)
        .inc_by(totals.counts.duplicates);
    m.records_quarantined
        .get_or_create(&l)
        .inc_by(totals.counts.quarantined);
    m.records_unchecked
        .get_or_create(&l)
        .inc_by(totals.counts.unchecked);
    m.input_bytes.get_or_create(&l).inc_by(totals.input_bytes);
    m.files_failed.get_or_create(&l).inc_by(failed_files as u64);
    m.batches_committed.get_or_create(&l).inc();
    m.batch_duration
        .get_or_create(&l)
        .observe(took.as_secs_f64());
    m.last_commit
        .get_or_create(&l)
        .set(committed_at.timestamp_micros() as f64 / 1e6);
    m.dataset_failing.get_or_create(&l).set(0);
    // What this batch read is no longer backlog (the next listing sets the exact figure).
    let files = m.backlog_files.get_or_create(&l);
    files.set((files.get() - n).max(0));
    let left = m.backlog_bytes.get_or_create(&l);
    left.set((left.get() - bytes).max(0));
    m.dedup_keys
        .get_or_create(&l)
        .set(ctx.dedup.snapshot(dataset).stats().keys as i64);
}
