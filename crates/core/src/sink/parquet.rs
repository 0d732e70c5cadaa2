//! The upload/publish of parts, and the quarantine's encoding.
//!
//! [`PartWriter`](super::writer::PartWriter) ([`super::writer`]) hands out [`PartEvent`]s: open a part, bytes of a part, close a part.
//! [`upload_parts`] (async) streams those bytes into multipart uploads at *staging* names (or final names, for a
//! Delta table). [`publish`] renames staged parts to their final names.
//!
//! # Names (unique across writers: batch id plus the batch's random token)
//! - staging: `_staging/<dataset>/b<batch>/part-b<batch>-<token>-<seq>.parquet`
//! - final: `<dataset>/year=YYYY/month=MM/day=DD/part-b<batch>-<token>-<seq>.parquet`
//! - quarantine: `_quarantine/<dataset>/part-b<batch>-<token>-q.parquet`, plus `-q1`, `-q2`, ... parts written
//!   during the batch whenever 16 MiB of quarantined records pile up
//!
//! Two checkpoints writing one bronze both count batches from 1; the token keeps their parts from overwriting
//! each other. For a Delta table ([`PartWriter::with_naming`](super::writer::PartWriter::with_naming) `in_place`) parts are uploaded at
//! their final names directly: no Delta reader sees a part before a commit references it, so there is no
//! staging name and no publish.
//!
//! Readers never look under `_staging/` (Spark and Hive skip `_` paths; a glob on `<dataset>/**` does not reach
//! it), so a part becomes visible only when renamed to its final name.
//!
//! # Atomicity of `publish` per backend
//! - local filesystem: `rename(2)` of the file, then the directory is fsynced (the store is opened
//!   `with_fsync`): each part appears atomically and durably. A batch with several parts appears part by part;
//!   the checkpoint commit after the last rename is what makes the batch count, and recovery on start removes the
//!   published parts of a batch that did not commit.
//! - HDFS: the same as local. A completed upload is renamed from a hidden `.<name>.tmp.<n>` to its staging name;
//!   `rename` is one NameNode `rename2` (atomic); the store creates the target's day directory first.
//! - S3: no rename. `rename` is a server-side `CopyObject` (atomic per object) then a `DeleteObject` of the staged
//!   key. Readers may see the parts already copied of a batch being published, or of one that crashed mid-publish
//!   until the next start; recovery deletes the final names recorded in the intent and the staging prefix, which
//!   also removes a staged key left behind by a crash between the copy and the delete.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::StreamExt;
use object_store::{ObjectStoreExt, WriteMultipart};
use parquet::arrow::ArrowWriter;
use tokio::sync::mpsc;

use super::SinkError;
use crate::decode::QuarantineRecord;
use crate::store::StoreLocation;

pub(crate) use super::writer::writer_properties;

/// Bytes of encoded Parquet accumulated before they are handed to the uploader: one multipart chunk.
pub(crate) const UPLOAD_CHUNK_BYTES: usize = 8 << 20;

/// Upper bound of a row group's in-memory size before it is flushed, whatever its row count: keeps memory per
/// open partition bounded for wide rows (GH Archive payloads).
pub(crate) const ROW_GROUP_BYTES: usize = 32 << 20;

/// Part uploads completed concurrently (each is a write + fsync + rename on the local store).
const FINISH_CONCURRENCY: usize = 16;

/// Renames run concurrently when publishing a batch.
const PUBLISH_CONCURRENCY: usize = 16;

/// Multipart chunks of one part that may be in flight at once.
const UPLOAD_CONCURRENCY: usize = 4;

/// A staged Parquet part.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenFile {
    /// Staging path (relative to bronze); equal to `final_path` when the part is written in place (Delta).
    pub staging: String,
    /// Final path (relative to bronze).
    pub final_path: String,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// Range of the event time column in the part (from its Parquet statistics), when it has one.
    pub time_range: Option<TimeRange>,
}

/// The minimum and maximum of a part's event time column (µs since the epoch, UTC) and its null count.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeRange {
    /// The column's name.
    pub column: String,
    /// Smallest value.
    pub min: i64,
    /// Largest value.
    pub max: i64,
    /// Nulls in the column.
    pub nulls: u64,
}

/// What the encoder asks the uploader to do.
#[derive(Debug)]
pub enum PartEvent {
    /// Start the upload of part `seq` at `staging`.
    Open {
        /// Part sequence number within the batch.
        seq: u32,
        /// Staging path.
        staging: String,
    },
    /// Append bytes to part `seq`.
    Data {
        /// Part.
        seq: u32,
        /// Encoded bytes.
        bytes: Bytes,
    },
    /// Part `seq` is complete.
    Close {
        /// Part.
        seq: u32,
        /// Its description.
        file: WrittenFile,
    },
}

/// The [`SinkError::Store`] of a failed `action` on `path`, for `map_err`.
fn store_error(action: &'static str, path: &str) -> impl FnOnce(object_store::Error) -> SinkError {
    let path = path.to_string();
    move |source| SinkError::Store {
        action,
        path,
        source,
    }
}

/// Runs the uploads described by `events` until the channel closes; returns the staged parts in `seq` order.
///
/// # Errors
/// [`SinkError::Store`] when an upload fails (the batch must then be rolled back).
pub async fn upload_parts(
    bronze: &StoreLocation,
    mut events: mpsc::Receiver<PartEvent>,
) -> Result<Vec<WrittenFile>, SinkError> {
    let mut uploads: HashMap<u32, (String, WriteMultipart)> = HashMap::new();
    let mut done = Vec::new();
    let mut finishing = futures::stream::FuturesUnordered::new();
    while let Some(ev) = events.recv().await {
        match ev {
            PartEvent::Open { seq, staging } => {
                let path = bronze.path(&staging);
                let upload = bronze
                    .store
                    .put_multipart(&path)
                    .await
                    .map_err(store_error("upload", &staging))?;
                uploads.insert(
                    seq,
                    (
                        staging,
                        WriteMultipart::new_with_chunk_size(upload, UPLOAD_CHUNK_BYTES),
                    ),
                );
            }
            PartEvent::Data { seq, bytes } => {
                let (staging, w) = uploads
                    .get_mut(&seq)
                    .expect("a part is opened before data is sent");
                w.wait_for_capacity(UPLOAD_CONCURRENCY)
                    .await
                    .map_err(store_error("upload", staging))?;
                w.put(bytes);
            }
            PartEvent::Close { seq, file } => {
                let (staging, w) = uploads
                    .remove(&seq)
                    .expect("a part is opened before it is closed");
                // Completing an upload is I/O bound (write, fsync, rename): overlap several of them.
                while finishing.len() >= FINISH_CONCURRENCY {
                    if let Some(r) = finishing.next().await {
                        done.push(r?);
                    }
                }
                finishing.push(async move {
                    w.finish().await.map_err(store_error("upload", &staging))?;
                    Ok::<_, SinkError>((seq, file))
                });
            }
        }
    }
    while let Some(r) = finishing.next().await {
        done.push(r?);
    }
    for (_, (_, w)) in uploads.drain() {
        w.abort().await.ok();
    }
    done.sort_by_key(|(s, _)| *s);
    Ok(done.into_iter().map(|(_, f)| f).collect())
}

/// Writes a small object at a staging path in one `put` (quarantine parts).
///
/// # Errors
/// [`SinkError::Store`].
pub async fn put_staged(
    bronze: &StoreLocation,
    staging: &str,
    bytes: Bytes,
) -> Result<(), SinkError> {
    bronze
        .store
        .put(&bronze.path(staging), bytes.into())
        .await
        .map_err(store_error("upload", staging))?;
    Ok(())
}

/// Renames each staged part to its final name (overwriting a leftover of an interrupted run of the same batch).
///
/// # Errors
/// [`SinkError::Store`]; parts already renamed stay renamed (recovery removes them if the batch does not commit).
pub async fn publish(bronze: &StoreLocation, files: &[WrittenFile]) -> Result<(), SinkError> {
    let jobs: Vec<_> = files
        .iter()
        .map(|f| {
            let store = bronze.store.clone();
            let (from, to) = (bronze.path(&f.staging), bronze.path(&f.final_path));
            let failed = store_error("rename", &f.staging);
            async move { store.rename(&from, &to).await.map_err(failed) }
        })
        .collect();
    let mut renames = futures::stream::iter(jobs).buffer_unordered(PUBLISH_CONCURRENCY);
    while let Some(r) = renames.next().await {
        r?;
    }
    Ok(())
}

/// Deletes every object below `prefix` (relative to bronze). Missing objects are fine.
///
/// # Errors
/// [`SinkError::Store`].
pub async fn delete_prefix(bronze: &StoreLocation, prefix: &str) -> Result<usize, SinkError> {
    let p = bronze.path(prefix);
    let mut list = bronze.store.list(Some(&p));
    let mut n = 0;
    while let Some(meta) = list.next().await {
        let meta = match meta {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(source) => return Err(store_error("list", prefix)(source)),
        };
        delete(bronze, &meta.location).await?;
        n += 1;
    }
    Ok(n)
}

/// Deletes every object below `prefix` (relative to bronze) whose path carries `mark` (a batch id plus its unique
/// token): the in-place outputs of a batch that did not commit. Log entries (`_delta_log/`) are never touched.
/// Lists the whole prefix: it runs only when a batch is rolled back.
///
/// # Errors
/// [`SinkError::Store`].
pub async fn delete_matching(
    bronze: &StoreLocation,
    prefix: &str,
    mark: &str,
) -> Result<usize, SinkError> {
    let p = bronze.path(prefix);
    let mut list = bronze.store.list(Some(&p));
    let mut doomed = Vec::new();
    while let Some(meta) = list.next().await {
        let meta = match meta {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(source) => return Err(store_error("list", prefix)(source)),
        };
        let path = meta.location.as_ref();
        if path.contains(mark) && !path.contains("/_delta_log/") {
            doomed.push(meta.location);
        }
    }
    for path in &doomed {
        delete(bronze, path).await?;
    }
    Ok(doomed.len())
}

/// Deletes one object; a missing one is fine.
///
/// # Errors
/// [`SinkError::Store`].
pub async fn delete(
    bronze: &StoreLocation,
    path: &object_store::path::Path,
) -> Result<(), SinkError> {
    match bronze.store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(source) => Err(store_error("delete", path.as_ref())(source)),
    }
}

/// The schema of quarantine parts.
pub fn quarantine_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("source_file", DataType::Utf8, false),
        Field::new("line", DataType::Int64, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("raw", DataType::Binary, false),
        Field::new("raw_text", DataType::Utf8, false),
        Field::new("batch_id", DataType::Int64, false),
        Field::new("quarantined_at", ts, false),
    ]))
}

/// Encodes quarantined records into one Parquet file: `raw` keeps the exact bytes, `raw_text` is a lossy UTF-8
/// rendering for people.
///
/// # Errors
/// [`SinkError::Encode`].
pub fn encode_quarantine(
    records: &[QuarantineRecord],
    batch_id: u64,
    now: i64,
    path: &str,
) -> Result<Bytes, SinkError> {
    let n = records.len();
    let mut file = StringBuilder::with_capacity(n, n * 32);
    let mut line = Int64Builder::with_capacity(n);
    let mut offset = Int64Builder::with_capacity(n);
    let mut reason = StringBuilder::with_capacity(n, n * 32);
    let mut raw = BinaryBuilder::with_capacity(n, n * 256);
    let mut text = StringBuilder::with_capacity(n, n * 256);
    let mut batch = Int64Builder::with_capacity(n);
    let mut at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    for r in records {
        file.append_value(&r.source_file);
        line.append_value(r.line as i64);
        offset.append_value(r.offset as i64);
        reason.append_value(&r.reason);
        raw.append_value(&r.raw);
        text.append_value(String::from_utf8_lossy(&r.raw));
        batch.append_value(batch_id as i64);
        at.append_value(now);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(file.finish()),
        Arc::new(line.finish()),
        Arc::new(offset.finish()),
        Arc::new(reason.finish()),
        Arc::new(raw.finish()),
        Arc::new(text.finish()),
        Arc::new(batch.finish()),
        Arc::new(at.finish()),
    ];
    let enc = |source| SinkError::Encode {
        path: path.to_string(),
        source,
    };
    let rb = RecordBatch::try_new(quarantine_schema(), cols)
        .expect("builders match the quarantine schema");
    let mut w = ArrowWriter::try_new(Vec::new(), rb.schema(), Some(writer_properties(65_536)))
        .map_err(enc)?;
    w.write(&rb).map_err(enc)?;
    Ok(Bytes::from(w.into_inner().map_err(enc)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn quarantine_keeps_raw_bytes() {
        let rec = QuarantineRecord {
            source_file: "g/a.json".into(),
            line: 3,
            offset: 10,
            reason: "invalid JSON".into(),
            raw: vec![0xff, b'{'],
        };
        let bytes = encode_quarantine(&[rec], 1, 0, "q").expect("encode");
        let r = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .expect("parquet")
            .build()
            .expect("reader");
        let b = r.into_iter().next().expect("one").expect("batch");
        assert_eq!(b.column(4).as_binary::<i32>().value(0), &[0xff, b'{']);
    }
}
