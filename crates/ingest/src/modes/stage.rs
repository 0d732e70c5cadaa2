//! Stage 2 of the commit protocol (see [`super::batch`]): decode the batch's files in parallel, dedup, split by
//! UTC day and encode to Parquet under staging names, with quarantined records written out as they pile up.

use arrow::array::AsArray;
use arrow::compute::kernels::aggregate::{max, min};
use arrow::datatypes::TimestampMicrosecondType;
use futures::TryStreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use object_store::ObjectStoreExt;

use super::context::{blocking, clear_intent, Context};
use crate::checkpoint::{BatchIntent, StoredSchema};
use crate::decode::{DecodeEnd, DecodeError, DecodeItem, Decoder, QuarantineRecord};
use crate::dedup::Deduper;
use crate::sink::parquet::{
    delete_matching, delete_prefix, encode_quarantine, put_staged, upload_parts,
};
use crate::sink::{PartEvent, PartWriter, SinkError, WrittenFile};
use crate::source::LandingFile;
use crate::table::TableFormat;

mod copy_names;
mod read;
mod resolve;
use crate::modes::{RecordCounts, RunError};
use copy_names::quarantine_copy_path;
use read::{spawn_decoders, FileMsg};
use resolve::resolve_decoder;

/// Encoded-part events that may wait for the uploader.
const PART_CHANNEL_CAPACITY: usize = 16;

pub(super) enum AttemptError {
    /// File `index` failed as a whole.
    FileFailed(usize, DecodeError),
    /// Shutdown while staging.
    Cancelled,
    /// Sink/checkpoint failure: fatal.
    Fatal(RunError),
}

impl From<RunError> for AttemptError {
    fn from(e: RunError) -> Self {
        AttemptError::Fatal(e)
    }
}

impl From<SinkError> for AttemptError {
    fn from(e: SinkError) -> Self {
        AttemptError::Fatal(e.into())
    }
}

#[derive(Debug, Default, Clone)]
pub(super) struct FileOutcome {
    pub(super) end: DecodeEnd,
    /// Rows written, duplicates dropped, records written without a check against the committed keys (beyond
    /// `dedup_retention`) and records quarantined.
    pub(super) counts: RecordCounts,
    /// Hex hash of the file's bytes `0..end` (a gzip file: all of it), computed while reading; `None` when the
    /// reader could not tell it (the commit then reads the prefix again).
    pub(super) prefix_hash: Option<String>,
}

#[derive(Default)]
pub(super) struct Staged {
    pub(super) outcomes: Vec<FileOutcome>,
    pub(super) quarantine: Vec<QuarantineRecord>,
    pub(super) new_keys: std::collections::BTreeMap<i32, Vec<u128>>,
    pub(super) parts: Vec<WrittenFile>,
    pub(super) min_time: Option<i64>,
    pub(super) max_time: Option<i64>,
    /// The Arrow schema of the data parts (the Delta table's schema, without partition columns).
    pub(super) schema: Option<arrow::datatypes::SchemaRef>,
    /// Whether bronze holds the keys of these rows (so days can be evicted from the index and read back).
    pub(super) keys_in_bronze: bool,
    /// The key column bronze holds and its key hash (the cross-worker check reads other writers' parts by it).
    pub(super) bronze_key: Option<(&'static str, crate::decode::KeyOfValue)>,
}

/// What stage 2 left under staging names, ready to publish.
pub(super) struct StagedBatch {
    /// Files read, in path order; `staged.outcomes` has one outcome per file.
    pub(super) files: Vec<LandingFile>,
    /// Files rejected as a whole (copied to the quarantine), with why.
    pub(super) failed: Vec<(LandingFile, DecodeError)>,
    /// What decoding `files` produced.
    pub(super) staged: Staged,
    /// The CSV schema this batch inferred, to store with its commit.
    pub(super) schema: Option<StoredSchema>,
    /// Everything the batch publishes: data parts, quarantine parts and the copies of failed files.
    pub(super) outputs: Vec<WrittenFile>,
}

impl StagedBatch {
    /// The final names of every output, as the intent records them for recovery.
    pub(super) fn final_paths(&self) -> Vec<String> {
        self.outputs.iter().map(|f| f.final_path.clone()).collect()
    }
}

/// How the decoder of a batch was resolved.
enum Resolved {
    /// The decoder, and the CSV schema to store when this batch inferred it.
    Ready(Decoder, Option<StoredSchema>),
    /// File `index`'s header made schema inference fail.
    FileFailed(usize, DecodeError),
    /// A CSV decoder from header-only files: it decodes their (zero) rows, and the batch stores no schema and
    /// creates no table, so the first file with rows still fixes the types.
    Provisional(Decoder),
}

/// Stage 2 of the protocol for the batch of `intent`: stages `files` under the batch's staging prefix, re-running
/// the attempt without each file that fails as a whole, then stages the quarantine (bad records, and copies of
/// the failed files). Returns `None`, with the intent cleared and nothing left in bronze, when shutdown came
/// first or no file is left to record.
///
/// # Errors
/// Sink and checkpoint failures (fatal).
pub(super) async fn stage_batch(
    ctx: &Context,
    intent: &BatchIntent,
    mut files: Vec<LandingFile>,
) -> Result<Option<StagedBatch>, RunError> {
    let dataset = intent.dataset.as_str();
    let mut failed: Vec<(LandingFile, DecodeError)> = Vec::new();
    let Some((staged, schema)) = stage_attempts(ctx, intent, &mut files, &mut failed).await? else {
        return Ok(None);
    };
    drop_vanished(dataset, &mut failed);
    if files.is_empty() && failed.is_empty() {
        clear_intent(ctx, dataset).await?;
        return Ok(None);
    }
    let outputs = stage_quarantine(ctx, intent, &staged, &files, &failed).await?;
    Ok(Some(StagedBatch {
        files,
        failed,
        staged,
        schema,
        outputs,
    }))
}

/// Stages `files` until an attempt succeeds, moving each file that fails as a whole to `failed` and decoding
/// again with the columns a header adds. Returns the staged attempt (the default when no file is left) and the
/// CSV schema it inferred or evolved; `None`, with the intent cleared, when shutdown came first.
async fn stage_attempts(
    ctx: &Context,
    intent: &BatchIntent,
    files: &mut Vec<LandingFile>,
    failed: &mut Vec<(LandingFile, DecodeError)>,
) -> Result<Option<(Staged, Option<StoredSchema>)>, RunError> {
    let (id, dataset) = (intent.id, intent.dataset.as_str());
    let mut reject = |files: &mut Vec<LandingFile>, i: usize, e: DecodeError| {
        let f = files.remove(i);
        tracing::warn!(dataset, path = %f.path, error = %e, "file rejected as a whole; re-running the batch without it");
        failed.push((f, e));
    };
    // Header names of the columns that files of this batch add to the schema (`add_columns`).
    let mut added: Vec<String> = Vec::new();
    while !files.is_empty() {
        let resolved = resolve_decoder(ctx, dataset, files, &added).await?;
        let (decoder, inferred, provisional) = match resolved {
            Resolved::Ready(decoder, inferred) => (decoder, inferred, false),
            Resolved::Provisional(decoder) => (decoder, None, true),
            Resolved::FileFailed(i, e) => {
                reject(files, i, e);
                continue;
            }
        };
        match stage(ctx, intent, files, &decoder).await {
            Ok(mut s) => {
                if provisional && s.parts.is_empty() {
                    s.schema = None;
                }
                // The staged attempt, with the CSV schema it inferred or evolved.
                return Ok(Some((s, inferred)));
            }
            // A header with new columns: decode the whole batch again with them in the schema, so every part
            // of the batch has the one schema its commit gives the table.
            Err(AttemptError::FileFailed(_, DecodeError::NewColumns { path, columns, .. }))
                if columns.iter().any(|c| !added.contains(c)) =>
            {
                discard_attempt(ctx, intent).await?;
                tracing::info!(dataset, path = %path, columns = ?columns, "the header adds columns; decoding the batch again with them");
                added.extend(
                    columns
                        .into_iter()
                        .filter(|c| !added.contains(c))
                        .collect::<Vec<_>>(),
                );
            }
            Err(AttemptError::FileFailed(i, e)) => {
                discard_attempt(ctx, intent).await?;
                reject(files, i, e);
            }
            Err(AttemptError::Cancelled) => {
                discard_attempt(ctx, intent).await?;
                clear_intent(ctx, dataset).await?;
                tracing::info!(
                    dataset,
                    batch = id,
                    "shutdown: abandoned the batch before publishing; nothing was written"
                );
                return Ok(None);
            }
            Err(AttemptError::Fatal(e)) => {
                if let Err(cleanup) = discard_attempt(ctx, intent).await {
                    tracing::warn!(error = %cleanup, "could not remove staging objects; the next start will");
                }
                return Err(e);
            }
        }
    }
    Ok(Some(Default::default()))
}

/// Drops from `failed` the files that vanished (deleted before or while being read), with a warning each.
fn drop_vanished(dataset: &str, failed: &mut Vec<(LandingFile, DecodeError)>) {
    // Vanished files (deleted before or while being read) are skipped without a record.
    failed.retain(|(f, e)| {
        let gone = matches!(e, DecodeError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
        if gone {
            tracing::warn!(dataset, path = %f.path, "file was deleted before or while it was read; skipped");
        }
        !gone
    });
}

/// Whether the batch's outputs are written at their final names (Delta: a part no commit references is invisible)
/// rather than under the staging prefix.
pub(super) fn in_place(ctx: &Context) -> bool {
    ctx.config.table_format == TableFormat::Delta
}

/// `-<token>`, the unique component of a batch's output names (empty for an intent without one).
fn token_suffix(intent_token: &str) -> String {
    if intent_token.is_empty() {
        String::new()
    } else {
        format!("-{intent_token}")
    }
}

/// The name an output is uploaded under: its final name when written in place, else `staging`.
fn upload_name(ctx: &Context, staging: String, final_path: &str) -> String {
    if in_place(ctx) {
        final_path.to_string()
    } else {
        staging
    }
}

/// Deletes what an abandoned attempt of the batch uploaded: its staging prefix and, when outputs are written in
/// place, every object of the dataset (and its quarantine) whose name carries the batch's token.
///
/// # Errors
/// [`SinkError::Store`].
pub(super) async fn discard_attempt(
    ctx: &Context,
    intent: &BatchIntent,
) -> Result<usize, SinkError> {
    let mut n = delete_prefix(&ctx.bronze, &intent.staging_prefix).await?;
    // Parquet outputs only reach their final names after the intent lists them: no listing needed there.
    if in_place(ctx) && !intent.token.is_empty() {
        let ds = &intent.dataset;
        let mark = format!("b{:08}-{}", intent.id, intent.token);
        for prefix in [ds.clone(), format!("_quarantine/{ds}")] {
            n += delete_matching(&ctx.bronze, &prefix, &mark).await?;
        }
    }
    Ok(n)
}

/// Stages the quarantine of a batch: failed files copied whole, and files of `read` with a record kept only in
/// part (over `max_record_bytes`) copied whole too, so every byte is in the quarantine; then one quarantine part
/// with the bad records of good files plus a record per copy saying where it is. Returns every output of the
/// batch (data parts first).
async fn stage_quarantine(
    ctx: &Context,
    intent: &BatchIntent,
    staged: &Staged,
    read: &[LandingFile],
    failed: &[(LandingFile, DecodeError)],
) -> Result<Vec<WrittenFile>, RunError> {
    let (id, dataset) = (intent.id, intent.dataset.as_str());
    let mut outputs = staged.parts.clone();
    let mut quarantine = staged.quarantine.clone();
    let tok = token_suffix(&intent.token);
    // Copies of failed files keep their landing path below a directory per batch; written in place (Delta) that
    // directory carries the token too, which is how recovery finds a copy of a batch that did not commit.
    let files_dir = if in_place(ctx) {
        format!("b{id:08}{tok}")
    } else {
        format!("b{id:08}")
    };
    for (i, (f, e)) in failed.iter().enumerate() {
        let (out, rec) = copy_whole(ctx, intent, &files_dir, format!("{i}"), f, |dest| {
            format!("whole file rejected: {e}; copied to {dest}")
        })
        .await?;
        outputs.push(out);
        quarantine.push(rec);
    }
    // A record cut short leaves its file flagged (`ok+truncated`) and in landing; its copy keeps the cut bytes.
    let truncated = read
        .iter()
        .zip(&staged.outcomes)
        .filter(|(_, o)| o.end.truncated > 0);
    for (i, (f, o)) in truncated.enumerate() {
        let (out, rec) = copy_whole(ctx, intent, &files_dir, format!("t{i}"), f, |dest| {
            format!(
                "{} record(s) over max_record_bytes kept here only in part; the whole file is copied to {dest}",
                o.end.truncated
            )
        })
        .await?;
        outputs.push(out);
        quarantine.push(rec);
    }
    if !quarantine.is_empty() {
        let final_path = format!("_quarantine/{dataset}/part-b{id:08}{tok}-q.parquet");
        let staging = upload_name(
            ctx,
            format!("{}/quarantine.parquet", intent.staging_prefix),
            &final_path,
        );
        let rows = quarantine.len() as u64;
        let fp = final_path.clone();
        let ingested_at = intent.started_at.timestamp_micros();
        let bytes = blocking(move || encode_quarantine(&quarantine, id, ingested_at, &fp)).await?;
        let n = bytes.len() as u64;
        put_staged(&ctx.bronze, &staging, bytes).await?;
        outputs.push(WrittenFile {
            staging,
            final_path,
            rows,
            bytes: n,
            time_range: None,
        });
    }
    Ok(outputs)
}

/// Copies landing file `f` whole to its quarantine copy below `files_dir` (staged as `files/<leaf>`): the output
/// to publish and the quarantine row naming the copy, whose reason `why` words from the copy's path.
async fn copy_whole(
    ctx: &Context,
    intent: &BatchIntent,
    files_dir: &str,
    leaf: String,
    f: &LandingFile,
    why: impl FnOnce(&str) -> String,
) -> Result<(WrittenFile, QuarantineRecord), RunError> {
    let dest = quarantine_copy_path(&intent.dataset, files_dir, &f.path);
    // A short staging name: the store's own temporary name for an upload adds a suffix to it (`#<n>` on local,
    // `.<name>.tmp.<n>` on HDFS), which must stay within the name limit too.
    let staging = upload_name(
        ctx,
        format!("{}/files/{leaf}", intent.staging_prefix),
        &dest,
    );
    copy_to_bronze(ctx, f, &staging).await?;
    let record = QuarantineRecord {
        source_file: f.path.clone(),
        line: 0,
        offset: 0,
        reason: why(&dest),
        raw: Vec::new(),
    };
    let out = WrittenFile {
        staging,
        final_path: dest,
        rows: 0,
        bytes: f.size,
        time_range: None,
    };
    Ok((out, record))
}

/// Streams a landing file into a bronze staging object (for the quarantine of failed files).
async fn copy_to_bronze(ctx: &Context, f: &LandingFile, staging: &str) -> Result<(), RunError> {
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

/// Quarantined records of one batch held in memory before they are written out as a quarantine part of their
/// own (`_quarantine/<dataset>/part-b<batch>-q<n>.parquet`): a file of garbage cannot grow memory with its size.
const QUARANTINE_SPILL_BYTES: usize = 16 << 20;

/// Memory a quarantined record holds, roughly.
fn quarantine_bytes(q: &QuarantineRecord) -> usize {
    q.raw.len() + q.reason.len() + q.source_file.len() + 64
}

/// Sequence numbers of spilled quarantine parts start here, far above the data parts of a batch.
const QUARANTINE_SEQ_BASE: u32 = 1 << 31;

/// Encodes the quarantined records held so far as one more quarantine part of batch `id` and hands it to the
/// uploader (as `events`), like a data part: staged, then published with the batch.
fn spill_quarantine(
    dataset: &str,
    id: u64,
    naming: &(String, bool),
    ingested_at: i64,
    spilled: &mut u32,
    records: &mut Vec<QuarantineRecord>,
    events: &mut Vec<PartEvent>,
) -> Result<(), AttemptError> {
    *spilled += 1;
    let n = *spilled;
    let tok = token_suffix(&naming.0);
    let final_path = format!("_quarantine/{dataset}/part-b{id:08}{tok}-q{n}.parquet");
    let staging = if naming.1 {
        final_path.clone()
    } else {
        format!(
            "{}/quarantine-{n}.parquet",
            PartWriter::staging_prefix(dataset, id)
        )
    };
    let bytes = encode_quarantine(records, id, ingested_at, &final_path)
        .map_err(|e| AttemptError::Fatal(e.into()))?;
    let seq = QUARANTINE_SEQ_BASE + n;
    let file = WrittenFile {
        staging: staging.clone(),
        final_path,
        rows: records.len() as u64,
        bytes: bytes.len() as u64,
        time_range: None,
    };
    records.clear();
    records.shrink_to_fit();
    events.push(PartEvent::Open { seq, staging });
    events.push(PartEvent::Data { seq, bytes });
    events.push(PartEvent::Close { seq, file });
    Ok(())
}

/// Stage 2 of the protocol: decode, dedup, partition, encode and upload under staging names (or, for Delta, at
/// their final names).
///
/// Three tasks joined by two channels:
/// 1. [`spawn_decoders`]: `files` in; out, one channel of [`FileMsg`]s per file (its decoded rows and
///    quarantined records, then its end), the channels themselves sent in file order.
/// 2. [`spawn_consumer`]: those channels in, read in file order (so the first occurrence of a key wins); dedup,
///    split by day and encode; out, the [`PartEvent`]s of data and quarantine parts, and at the end what it
///    kept ([`Consumed`]).
/// 3. `upload_parts`: the part events in; out, the uploaded parts.
pub(super) async fn stage(
    ctx: &Context,
    intent: &BatchIntent,
    files: &[LandingFile],
    decoder: &Decoder,
) -> Result<Staged, AttemptError> {
    let ingested_at = intent.started_at.timestamp_micros();
    let (order_tx, order_rx) =
        mpsc::channel::<(usize, mpsc::Receiver<FileMsg>)>(ctx.config.parallelism.max(1));
    let (part_tx, part_rx) = mpsc::channel::<PartEvent>(PART_CHANNEL_CAPACITY);
    let spawner = spawn_decoders(ctx, files, decoder, ingested_at, order_tx);
    let consumer = spawn_consumer(ctx, intent, files, decoder, order_rx, part_tx)?;
    let uploaded = upload_parts(&ctx.bronze, part_rx).await;
    let consumed = consumer.await.expect("the consumer thread does not panic");
    spawner.abort();
    // A failed upload closes the consumer's channel, so its "writer stopped" error is only a symptom: report
    // the upload's own error first.
    let parts = uploaded?;
    let consumed = consumed?;
    Ok(Staged {
        outcomes: consumed.outcomes,
        quarantine: consumed.quarantine,
        new_keys: consumed.new_keys,
        parts,
        min_time: consumed.min_time,
        max_time: consumed.max_time,
        schema: Some(decoder.schema()),
        keys_in_bronze: decoder.bronze_key().is_some(),
        bronze_key: decoder.bronze_key(),
    })
}

/// What the consumer leaves once every file is read.
struct Consumed {
    /// One per file, in file order.
    outcomes: Vec<FileOutcome>,
    /// Quarantined records not spilled into a part yet.
    quarantine: Vec<QuarantineRecord>,
    /// The batch's new keys, by UTC day.
    new_keys: std::collections::BTreeMap<i32, Vec<u128>>,
    /// Event-time range of the rows written.
    min_time: Option<i64>,
    max_time: Option<i64>,
}

/// Step 2 of [`stage`], the consumer, on a blocking thread: the per-file channels in (from `order_rx`, in file
/// order); dedup against this batch and the committed keys, partition and encode; [`PartEvent`]s out on
/// `part_tx` (data parts as they are encoded, quarantine parts as they spill); [`Consumed`] when it is done.
fn spawn_consumer(
    ctx: &Context,
    intent: &BatchIntent,
    files: &[LandingFile],
    decoder: &Decoder,
    order_rx: mpsc::Receiver<(usize, mpsc::Receiver<FileMsg>)>,
    part_tx: mpsc::Sender<PartEvent>,
) -> Result<tokio::task::JoinHandle<Result<Consumed, AttemptError>>, AttemptError> {
    let (id, dataset) = (intent.id, intent.dataset.as_str());
    let ingested_at = intent.started_at.timestamp_micros();
    // The first day the local dedup index still holds (days behind the horizon were pruned from it).
    let held_from = crate::dedup::index::keep_from_day(
        ctx.checkpoint
            .watermark(dataset)
            .map_err(|e| AttemptError::Fatal(e.into()))?,
        ctx.config.dedup_horizon,
    );
    let schema = decoder.schema();
    let committed = crate::dedup::lookup::Lookup::new(
        ctx.dedup.clone(),
        dataset,
        id - 1,
        super::keys::day_loader(ctx, dataset, decoder),
    )
    .with_cuts(
        ctx.config.dedup_retention.map(|r| {
            crate::dedup::index::day_of(
                ingested_at.saturating_sub(i64::try_from(r.as_micros()).unwrap_or(i64::MAX)),
            )
        }),
        held_from,
    );
    let cancel = ctx.cancel.clone();
    let ds = dataset.to_string();
    let naming = (intent.token.clone(), in_place(ctx));
    let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    let row_group_rows = ctx.config.row_group_rows;
    let target = ctx.config.table_settings(dataset).target_file_bytes;
    Ok(tokio::task::spawn_blocking(move || {
        let records_read = crate::metrics::get()
            .records_read
            .get_or_create(&crate::metrics::ds(&ds))
            .clone();
        let consumer = Consumer {
            writer: PartWriter::new(&ds, id, schema, row_group_rows, target)
                .with_naming(&naming.0, naming.1),
            deduper: Deduper::new(),
            committed,
            outcomes: vec![FileOutcome::default(); paths.len()],
            quarantine: Vec::new(),
            held: 0,
            spilled: 0,
            min_time: None,
            max_time: None,
            count_read: Box::new(move |n| {
                records_read.inc_by(n);
            }),
            part_tx,
            ds,
            id,
            naming,
            ingested_at,
        };
        consumer.run(order_rx, &cancel, &paths)
    }))
}

/// The consumer's state (see [`spawn_consumer`]).
struct Consumer {
    writer: PartWriter,
    deduper: Deduper,
    committed: crate::dedup::lookup::Lookup,
    outcomes: Vec<FileOutcome>,
    /// Quarantined records held in memory, and their size in bytes.
    quarantine: Vec<QuarantineRecord>,
    held: usize,
    /// Quarantine parts already sent to the uploader.
    spilled: u32,
    min_time: Option<i64>,
    max_time: Option<i64>,
    /// Counts records read (the `records_read` metric).
    count_read: Box<dyn Fn(u64) + Send>,
    part_tx: mpsc::Sender<PartEvent>,
    ds: String,
    id: u64,
    naming: (String, bool),
    ingested_at: i64,
}

impl Consumer {
    /// Reads every file's channel in file order, then closes the last parts.
    fn run(
        mut self,
        mut order_rx: mpsc::Receiver<(usize, mpsc::Receiver<FileMsg>)>,
        cancel: &CancellationToken,
        paths: &[String],
    ) -> Result<Consumed, AttemptError> {
        while let Some((i, rx)) = order_rx.blocking_recv() {
            self.file(i, rx, cancel, &paths[i])?;
        }
        let (part_tx, id) = (self.part_tx, self.id);
        self.writer.finish(&mut |e| {
            part_tx
                .blocking_send(e)
                .map_err(|_| SinkError::Aborted { batch: id })
        })?;
        drop(part_tx);
        Ok(Consumed {
            outcomes: self.outcomes,
            quarantine: self.quarantine,
            new_keys: self.deduper.into_new_keys(),
            min_time: self.min_time,
            max_time: self.max_time,
        })
    }

    /// File `i`'s messages, until its end: a failed file (or a decoder that vanished) fails the attempt.
    fn file(
        &mut self,
        i: usize,
        mut rx: mpsc::Receiver<FileMsg>,
        cancel: &CancellationToken,
        path: &str,
    ) -> Result<(), AttemptError> {
        loop {
            if cancel.is_cancelled() {
                return Err(AttemptError::Cancelled);
            }
            match rx.blocking_recv() {
                Some(FileMsg::Item(DecodeItem::Rows(d))) => self.rows(i, d)?,
                Some(FileMsg::Item(DecodeItem::Quarantine(q))) => self.quarantined(i, q)?,
                Some(FileMsg::End(Ok(end), hash)) => {
                    self.outcomes[i].end = end;
                    self.outcomes[i].prefix_hash = hash;
                    return Ok(());
                }
                Some(FileMsg::End(Err(e), _)) => return Err(AttemptError::FileFailed(i, e)),
                None => {
                    return Err(AttemptError::FileFailed(
                        i,
                        DecodeError::Read {
                            path: path.to_string(),
                            source: std::io::Error::other("decoder stopped unexpectedly"),
                        },
                    ))
                }
            }
        }
    }

    /// Good rows of file `i`: dedup, then to the writer (whose data parts go to the uploader as encoded).
    fn rows(&mut self, i: usize, d: crate::decode::Decoded) -> Result<(), AttemptError> {
        (self.count_read)(d.batch.num_rows() as u64);
        let committed = &mut self.committed;
        let out = self
            .deduper
            .dedup(d, |k, day| committed.check(k, day))
            .map_err(|e| AttemptError::Fatal(e.into()))?;
        let outcome = &mut self.outcomes[i];
        outcome.counts += RecordCounts {
            rows: out.batch.num_rows() as u64,
            duplicates: out.duplicates,
            unchecked: out.unchecked,
            quarantined: 0,
        };
        if out.batch.num_rows() == 0 {
            return Ok(());
        }
        let tc = out.time_column;
        self.writer.set_time_column(tc);
        let times = out
            .batch
            .column(tc)
            .as_primitive::<TimestampMicrosecondType>();
        if let Some(m) = min(times) {
            self.min_time = Some(self.min_time.map_or(m, |x| x.min(m)));
        }
        if let Some(m) = max(times) {
            self.max_time = Some(self.max_time.map_or(m, |x| x.max(m)));
        }
        let (part_tx, id) = (&self.part_tx, self.id);
        self.writer.write(&out.batch, tc, &mut |e| {
            part_tx
                .blocking_send(e)
                .map_err(|_| SinkError::Aborted { batch: id })
        })?;
        Ok(())
    }

    /// Bad records of file `i`: held, and spilled as a quarantine part once they pass
    /// [`QUARANTINE_SPILL_BYTES`].
    fn quarantined(&mut self, i: usize, q: Vec<QuarantineRecord>) -> Result<(), AttemptError> {
        self.outcomes[i].counts.quarantined += q.len() as u64;
        self.held += q.iter().map(quarantine_bytes).sum::<usize>();
        self.quarantine.extend(q);
        if self.held < QUARANTINE_SPILL_BYTES {
            return Ok(());
        }
        let mut events = Vec::new();
        spill_quarantine(
            &self.ds,
            self.id,
            &self.naming,
            self.ingested_at,
            &mut self.spilled,
            &mut self.quarantine,
            &mut events,
        )?;
        self.held = 0;
        for e in events {
            self.part_tx
                .blocking_send(e)
                .map_err(|_| AttemptError::Fatal(SinkError::Aborted { batch: self.id }.into()))?;
        }
        Ok(())
    }
}
