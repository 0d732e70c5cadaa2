//! One batch of one dataset, and the commit protocol that makes it exactly-once.
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
//! 7. **Clean source** (optional): landing files are deleted or archived only after the commit.
//!
//! A file that fails as a whole while the batch is being staged (truncated or corrupt gzip, a CSV header that
//! does not match) aborts the attempt: the staging prefix is deleted and the batch is re-run without that file,
//! which is recorded as `Failed` and copied to `_quarantine/<dataset>/files/`. So a file is never half-ingested.
//!
//! On shutdown (cancellation) during steps 1-2 the attempt is abandoned and rolled back at once; from step 3 on
//! the batch is finished.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{
    BatchCommit, BatchInput, BatchIntent, BatchRecord, CheckpointStore, FileRecord, FileStatus,
    IntentState, OutputFile, StoredSchema,
};
use crate::config::{CleanSource, Config, DatasetConfig};
use crate::decode::{csv::CsvDecoder, DecodeError, Decoder, LineSource, QuarantineRecord};
use crate::dedup::index::{keep_from_day, DedupIndex};
use crate::sink::parquet::{delete, delete_prefix, encode_quarantine, publish, put_staged};
use crate::sink::{PartWriter, SinkError, WrittenFile};
use crate::source::LandingFile;
use crate::store::StoreLocation;
use crate::Error;

use super::stage::{decode_input, open_reader, stage, AttemptError, Staged};

/// Everything a batch needs, shared by all batches of a run.
#[derive(Clone)]
pub struct Context {
    /// Configuration.
    pub config: Arc<Config>,
    /// Landing.
    pub landing: StoreLocation,
    /// Bronze.
    pub bronze: StoreLocation,
    /// Checkpoint.
    pub checkpoint: CheckpointStore,
    /// Committed dedup keys (run files beside the checkpoint).
    pub dedup: Arc<DedupIndex>,
    /// Decode slots shared by all datasets (`parallelism`).
    pub decode_slots: Arc<Semaphore>,
    /// Fires on shutdown.
    pub cancel: CancellationToken,
}

/// What a committed batch did.
#[derive(Debug, Clone)]
pub struct BatchReport {
    /// Dataset.
    pub dataset: String,
    /// Batch id.
    pub id: u64,
    /// Files read (including failed ones).
    pub files: usize,
    /// Files that failed as a whole.
    pub failed_files: usize,
    /// Rows written.
    pub rows: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Records quarantined.
    pub quarantined: u64,
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
            self.rows,
            self.duplicates,
            self.quarantined,
            self.failed_files,
            self.parts,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Test-only crash injection: with the `failpoints` feature, `LANDER_FAIL_AFTER=<step>` aborts the process
/// right after `step` (`intent`, `staged`, `publishing`, `published`, `runs`, `committed`).
pub fn failpoint(step: &str) {
    #[cfg(feature = "failpoints")]
    if std::env::var("LANDER_FAIL_AFTER").is_ok_and(|s| s == step) {
        eprintln!("failpoint: aborting after {step}");
        std::process::abort();
    }
    let _ = step;
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking checkpoint/encode tasks do not panic")
}

/// Rolls back a batch of `dataset` that an earlier run left uncommitted, and removes stale staging objects.
/// Returns the number of objects removed.
///
/// # Errors
/// Checkpoint or bronze failures.
pub async fn recover(ctx: &Context, dataset: &str) -> Result<usize, Error> {
    let cp = ctx.checkpoint.clone();
    let ds = dataset.to_string();
    let intent = blocking(move || cp.intent(&ds)).await?;
    let mut removed = 0;
    if let Some(intent) = &intent {
        for f in &intent.finals {
            delete(&ctx.bronze, &ctx.bronze.path(f)).await?;
            removed += 1;
        }
    }
    removed += delete_prefix(&ctx.bronze, &format!("_staging/{dataset}")).await?;
    load_dedup(ctx, dataset).await?;
    if let Some(intent) = intent {
        let cp = ctx.checkpoint.clone();
        let ds = dataset.to_string();
        blocking(move || cp.clear_intent(&ds)).await?;
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

/// Loads the dedup index of `dataset`: moves keys an old-layout checkpoint kept in sled into run files, then
/// opens the runs its commits reference (deleting those of an interrupted batch, an interrupted merge, and days
/// behind the horizon).
///
/// # Errors
/// Checkpoint or dedup index failures.
pub async fn load_dedup(ctx: &Context, dataset: &str) -> Result<(), Error> {
    let cp = ctx.checkpoint.clone();
    let index = ctx.dedup.clone();
    let ds = dataset.to_string();
    let horizon = ctx.config.dedup_horizon;
    blocking(move || -> Result<(), Error> {
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
    .await
}

/// Resolves the decoder of `dataset` for these files: GH Archive needs nothing; CSV uses the stored schema or
/// infers one from the first file that starts at offset 0. Returns the schema to store, when newly inferred,
/// and the index of a file whose header made inference fail.
async fn resolve_decoder(
    ctx: &Context,
    dataset: &str,
    files: &[LandingFile],
) -> Result<Result<(Decoder, Option<StoredSchema>), (usize, DecodeError)>, Error> {
    let opts = match ctx.config.datasets.get(dataset) {
        Some(DatasetConfig::Csv(o)) => o.clone(),
        _ => return Ok(Ok((Decoder::Gharchive, None))),
    };
    let cp = ctx.checkpoint.clone();
    let ds = dataset.to_string();
    let stored = blocking(move || cp.schema(&ds)).await?;
    let (schema, new) = match stored {
        Some(s) => (s, false),
        None => {
            let Some((i, f)) = files
                .iter()
                .enumerate()
                .find(|(_, f)| f.gzip || f.start_offset == 0)
            else {
                return Ok(Err((
                    0,
                    DecodeError::Header {
                        path: files.first().map(|f| f.path.clone()).unwrap_or_default(),
                        dataset: dataset.to_string(),
                        reason:
                            "no stored schema and no file read from its start to infer one from"
                                .into(),
                    },
                )));
            };
            let input = decode_input(f, 0);
            let reader = match open_reader(&ctx.landing, f, 0).await {
                Ok(r) => r,
                Err(e) => return Ok(Err((i, e))),
            };
            let o = opts.clone();
            let ds = dataset.to_string();
            let inferred = blocking(move || {
                let lines = LineSource::new(reader, &input)?;
                crate::decode::csv::infer_schema(lines, &o, &ds)
            })
            .await;
            match inferred {
                Ok(s) => {
                    let cols: Vec<String> = s
                        .columns
                        .iter()
                        .map(|c| format!("{}:{}", c.name, c.ty))
                        .collect();
                    tracing::info!(dataset, from = %f.path, columns = %cols.join(", "), "inferred and fixed the CSV schema");
                    (s, true)
                }
                Err(e) => return Ok(Err((i, e))),
            }
        }
    };
    let dec = CsvDecoder::new(dataset, &opts, &schema)?;
    Ok(Ok((Decoder::Csv(Arc::new(dec)), new.then_some(schema))))
}

/// Runs one batch over `files` (all of `dataset`) through the whole commit protocol. Returns `None` when the
/// batch was abandoned because of shutdown before publishing.
///
/// # Errors
/// Sink and checkpoint failures (fatal). File-level failures are recorded, not returned.
pub async fn run_batch(
    ctx: &Context,
    dataset: &str,
    files: Vec<LandingFile>,
) -> Result<Option<BatchReport>, Error> {
    let started = Instant::now();
    let started_at = Utc::now();
    let ingested_at = started_at.timestamp_micros();
    if !ctx.dedup.is_loaded(dataset) {
        load_dedup(ctx, dataset).await?;
    }
    let mut files = files;
    let mut failed: Vec<(LandingFile, DecodeError)> = Vec::new();
    let cp = ctx.checkpoint.clone();
    let ds = dataset.to_string();
    let id = blocking(move || cp.next_batch_id(&ds)).await?;
    let staging_prefix = PartWriter::staging_prefix(dataset, id);
    let intent = BatchIntent {
        id,
        dataset: dataset.to_string(),
        state: IntentState::Writing,
        staging_prefix: staging_prefix.clone(),
        finals: Vec::new(),
        started_at,
    };
    {
        let cp = ctx.checkpoint.clone();
        let i = intent.clone();
        blocking(move || cp.write_intent(&i)).await?;
    }
    failpoint("intent");

    let (staged, schema_to_store) = loop {
        let (decoder, schema_to_store) = match resolve_decoder(ctx, dataset, &files).await? {
            Ok(d) => d,
            Err((i, e)) => {
                let f = files.remove(i);
                note_failure(dataset, f, e, &mut failed);
                if files.is_empty() {
                    break (None, None);
                }
                continue;
            }
        };
        match stage(ctx, dataset, id, &files, &decoder, ingested_at).await {
            Ok(s) => break (Some(s), schema_to_store),
            Err(AttemptError::FileFailed(i, e)) => {
                delete_prefix(&ctx.bronze, &staging_prefix).await?;
                let f = files.remove(i);
                note_failure(dataset, f, e, &mut failed);
                if files.is_empty() {
                    break (None, None);
                }
            }
            Err(AttemptError::Cancelled) => {
                delete_prefix(&ctx.bronze, &staging_prefix).await?;
                let cp = ctx.checkpoint.clone();
                let ds = dataset.to_string();
                blocking(move || cp.clear_intent(&ds)).await?;
                tracing::info!(
                    dataset,
                    batch = id,
                    "shutdown: abandoned the batch before publishing; nothing was written"
                );
                return Ok(None);
            }
            Err(AttemptError::Fatal(e)) => {
                if let Err(cleanup) = delete_prefix(&ctx.bronze, &staging_prefix).await {
                    tracing::warn!(error = %cleanup, "could not remove staging objects; the next start will");
                }
                return Err(e);
            }
        }
    };
    let staged = staged.unwrap_or(Staged {
        outcomes: Vec::new(),
        quarantine: Vec::new(),
        new_keys: Default::default(),
        parts: Vec::new(),
        min_time: None,
        max_time: None,
    });
    // Vanished files (deleted before or while being read) are skipped without a record.
    failed.retain(|(f, e)| {
        let gone = matches!(e, DecodeError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
        if gone {
            tracing::warn!(dataset, path = %f.path, "file was deleted before or while it was read; skipped");
        }
        !gone
    });
    if files.is_empty() && failed.is_empty() {
        let cp = ctx.checkpoint.clone();
        let ds = dataset.to_string();
        blocking(move || cp.clear_intent(&ds)).await?;
        return Ok(None);
    }

    // Quarantine: bad records of good files, plus failed files copied whole.
    let mut to_publish = staged.parts.clone();
    let mut quarantine = staged.quarantine;
    for (f, e) in &failed {
        let dest = format!("_quarantine/{dataset}/files/b{id:08}/{}", f.path);
        let staging = format!("{staging_prefix}/files/{}", f.path);
        copy_to_bronze(ctx, f, &staging).await?;
        to_publish.push(WrittenFile {
            staging,
            final_path: dest.clone(),
            rows: 0,
            bytes: f.size,
        });
        quarantine.push(QuarantineRecord {
            source_file: f.path.clone(),
            line: 0,
            offset: 0,
            reason: format!("whole file rejected: {e}; copied to {dest}"),
            raw: Vec::new(),
        });
    }
    if !quarantine.is_empty() {
        let final_path = format!("_quarantine/{dataset}/part-b{id:08}-q.parquet");
        let staging = format!("{staging_prefix}/quarantine.parquet");
        let records = quarantine.clone();
        let fp = final_path.clone();
        let bytes = blocking(move || encode_quarantine(&records, id, ingested_at, &fp)).await?;
        let n = bytes.len() as u64;
        put_staged(&ctx.bronze, &staging, bytes).await?;
        to_publish.push(WrittenFile {
            staging,
            final_path,
            rows: quarantine.len() as u64,
            bytes: n,
        });
    }
    failpoint("staged");

    // Publishing: from here on the batch is finished even on shutdown.
    let intent = BatchIntent {
        state: IntentState::Publishing,
        finals: to_publish.iter().map(|f| f.final_path.clone()).collect(),
        ..intent
    };
    {
        let cp = ctx.checkpoint.clone();
        let i = intent.clone();
        blocking(move || cp.write_intent(&i)).await?;
    }
    failpoint("publishing");
    publish(&ctx.bronze, &to_publish).await?;
    failpoint("published");

    // Commit.
    let committed_at = Utc::now();
    let mut inputs = Vec::new();
    let mut records = Vec::new();
    let mut totals = (0u64, 0u64, 0u64, 0u64);
    for (f, o) in files.iter().zip(&staged.outcomes) {
        let quarantined_here = o.quarantined;
        totals.0 += o.ok;
        totals.1 += o.duplicates;
        totals.2 += quarantined_here;
        let end_offset = if f.gzip { f.size } else { o.end.end_offset };
        totals.3 += end_offset.saturating_sub(if f.gzip { 0 } else { f.start_offset });
        inputs.push(BatchInput {
            path: f.path.clone(),
            start: if f.gzip { 0 } else { f.start_offset },
            end: end_offset,
            records_ok: o.ok,
            records_quarantined: quarantined_here,
            records_duplicate: o.duplicates,
        });
        let status = if f.gzip || (f.is_final && end_offset >= f.size) {
            FileStatus::Ok
        } else {
            FileStatus::Partial
        };
        records.push(file_record(
            f,
            id,
            committed_at,
            end_offset,
            o.end.end_line,
            o.ok,
            o.quarantined,
            o.duplicates,
            status,
        ));
    }
    for (f, e) in &failed {
        totals.2 += 1;
        inputs.push(BatchInput {
            path: f.path.clone(),
            start: 0,
            end: f.size,
            records_ok: 0,
            records_quarantined: 0,
            records_duplicate: 0,
        });
        records.push(file_record(
            f,
            id,
            committed_at,
            f.size,
            0,
            0,
            0,
            0,
            FileStatus::Failed {
                reason: e.to_string(),
            },
        ));
    }
    let batch = BatchRecord {
        id,
        dataset: dataset.to_string(),
        started_at,
        committed_at,
        inputs,
        outputs: to_publish
            .iter()
            .map(|f| OutputFile {
                path: f.final_path.clone(),
                rows: f.rows,
                bytes: f.bytes,
            })
            .collect(),
        rows: totals.0,
        duplicates: totals.1,
        quarantined: totals.2,
        min_event_time: staged.min_time,
        max_event_time: staged.max_time,
    };
    let commit_started = Instant::now();
    // Dedup runs: durable before the commit that makes them count. Days already behind the horizon that this
    // batch moves the watermark to are not written at all.
    let runs = {
        let cp = ctx.checkpoint.clone();
        let index = ctx.dedup.clone();
        let ds = dataset.to_string();
        let horizon = ctx.config.dedup_horizon;
        let max_time = staged.max_time;
        let mut keys = staged.new_keys;
        blocking(move || -> Result<_, Error> {
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
    let commit = BatchCommit {
        batch,
        files: records,
        schema: schema_to_store,
    };
    let cp = ctx.checkpoint.clone();
    blocking(move || {
        #[cfg(feature = "failpoints")]
        crate::faults::checkpoint_commit(cp.dir())?;
        cp.commit(&commit)
    })
    .await?;
    failpoint("committed");
    let run_files = runs.0.len();
    {
        let index = ctx.dedup.clone();
        let (staged_runs, keep) = runs;
        blocking(move || index.publish(staged_runs, keep)).await?;
    }
    tracing::debug!(
        dataset,
        batch = id,
        run_files,
        commit_ms = commit_started.elapsed().as_secs_f64() * 1e3,
        "dedup runs written, batch committed, runs published"
    );

    record_commit(
        ctx,
        dataset,
        files.iter().chain(failed.iter().map(|(f, _)| f)),
        committed_at,
        totals,
        failed.len(),
        started.elapsed(),
    );

    let report = BatchReport {
        dataset: dataset.to_string(),
        id,
        files: files.len() + failed.len(),
        failed_files: failed.len(),
        rows: totals.0,
        duplicates: totals.1,
        quarantined: totals.2,
        parts: staged
            .parts
            .iter()
            .filter(|p| !p.final_path.starts_with("_quarantine/"))
            .count(),
        bytes: totals.3,
        elapsed: started.elapsed(),
    };
    clean_source(ctx, files.iter().chain(failed.iter().map(|(f, _)| f))).await;
    Ok(Some(report))
}

/// Records a committed batch in the metrics: totals are (rows, duplicates, quarantined, input bytes).
fn record_commit<'a>(
    ctx: &Context,
    dataset: &str,
    files: impl Iterator<Item = &'a LandingFile>,
    committed_at: chrono::DateTime<Utc>,
    totals: (u64, u64, u64, u64),
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
    m.rows_written.get_or_create(&l).inc_by(totals.0);
    m.duplicates_dropped.get_or_create(&l).inc_by(totals.1);
    m.records_quarantined.get_or_create(&l).inc_by(totals.2);
    m.input_bytes.get_or_create(&l).inc_by(totals.3);
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

#[allow(clippy::too_many_arguments)]
fn file_record(
    f: &LandingFile,
    batch: u64,
    at: chrono::DateTime<Utc>,
    end_offset: u64,
    end_line: u64,
    ok: u64,
    quarantined: u64,
    duplicates: u64,
    status: FileStatus,
) -> FileRecord {
    let appended = f.change == crate::source::Change::Appended;
    let (base_ok, base_q, base_d, mut batches, versions) = match (&f.prior, appended) {
        (Some(p), true) => (
            p.records_ok,
            p.records_quarantined,
            p.records_duplicate,
            p.batches.clone(),
            p.versions,
        ),
        (Some(p), false) => (0, 0, 0, p.batches.clone(), p.versions + 1),
        (None, _) => (0, 0, 0, Vec::new(), 0),
    };
    batches.push(batch);
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
        lines_consumed: end_line,
        records_ok: base_ok + ok,
        records_quarantined: base_q + quarantined,
        records_duplicate: base_d + duplicates,
        batches,
        versions,
        status,
        processed_at: at,
        continued_lines,
    }
}

fn note_failure(
    dataset: &str,
    f: LandingFile,
    e: DecodeError,
    failed: &mut Vec<(LandingFile, DecodeError)>,
) {
    tracing::warn!(dataset, path = %f.path, error = %e, "file rejected as a whole; re-running the batch without it");
    failed.push((f, e));
}

/// Streams a landing file into a bronze staging object (for the quarantine of failed files).
async fn copy_to_bronze(ctx: &Context, f: &LandingFile, staging: &str) -> Result<(), Error> {
    let store_err = |source| SinkError::Store {
        action: "copy to quarantine",
        path: f.path.clone(),
        source,
    };
    let got = match ctx.landing.store.get(&f.location).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(store_err(e).into()),
    };
    let upload = ctx
        .bronze
        .store
        .put_multipart(&ctx.bronze.path(staging))
        .await
        .map_err(store_err)?;
    let mut w = object_store::WriteMultipart::new(upload);
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.try_next().await.map_err(store_err)? {
        w.put(chunk);
    }
    w.finish().await.map_err(store_err)?;
    Ok(())
}

/// Deletes or archives landing files after their batch committed (`clean_source`).
async fn clean_source<'a>(ctx: &Context, files: impl Iterator<Item = &'a LandingFile>) {
    let action = match ctx.config.clean_source_action() {
        Ok(CleanSource::Off) | Err(_) => return,
        Ok(a) => a,
    };
    for f in files {
        if !f.is_final && !f.gzip {
            continue; // still growing: keep it
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
