//! Keys read back from bronze: the dedup index's source of truth for a UTC day it does not hold, and what
//! `checkpoint verify --keys` scans.
//!
//! Takes a dataset, a day and the bronze format; produces the key column of every part bronze holds for that
//! day partition. A Parquet bronze's parts of a day are the checkpoint's committed outputs under the day's
//! partition (the batch records are read once per batch, however many days it loads); a Delta bronze's are the files the table's current snapshot lists there. Only the key column is
//! read (projection), one row group's column chunk at a time (range reads of the footer and of that chunk), so
//! memory is bounded by one column chunk per part in flight, whatever the size of the parts.
//!
//! GH Archive bronze holds its key as `event_key`; CSV bronze as `_record_key` ([`crate::decode::RECORD_KEY`]),
//! unless the dataset's bronze was first written without that column (`csv_record_key` keeps such a table's
//! schema): then no day of it can be read back, and a day missing from the local index is not checked.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use bytes::Bytes;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{ChunkReader, Length};
use tokio::sync::mpsc;

use super::context::{blocking, Context};
use super::verify::{footer_metadata, FooterError};
use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::sink::partition::PartitionKey;
use crate::store::StoreLocation;
use crate::table::{DeltaTable, TableError, TableFormat, Tables};

/// Column chunks fetched ahead of the decoder: two keep the store busy while one is decoded, and bound memory
/// to three chunks.
const CHUNKS_IN_FLIGHT: usize = 2;

/// Why keys could not be read back from bronze.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The checkpoint's batch records could not be read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The Delta table's log could not be read.
    #[error(transparent)]
    Table(#[from] TableError),
    /// A part's footer could not be read.
    #[error("{path}: cannot read its Parquet footer: {source}")]
    Footer {
        /// The part, relative to bronze.
        path: String,
        /// What failed.
        source: FooterError,
    },
    /// A range read of a part failed.
    #[error("{path}: {source}")]
    Store {
        /// The part, relative to bronze.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A column chunk could not be decoded.
    #[error("{path}: cannot decode column {column}: {source}")]
    Parquet {
        /// The part, relative to bronze.
        path: String,
        /// The key column.
        column: String,
        /// The decoder's error.
        source: parquet::errors::ParquetError,
    },
    /// A part has no key column.
    #[error("{path}: has no column {column}")]
    MissingColumn {
        /// The part, relative to bronze.
        path: String,
        /// The key column.
        column: String,
    },
}

/// One Parquet part of bronze.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Part {
    /// Path relative to bronze.
    pub(crate) path: String,
    /// Size in bytes.
    pub(crate) size: u64,
}

/// Where a day's parts are listed: the bronze format and what it needs.
#[derive(Clone)]
pub(super) struct PartSource {
    pub(super) bronze: StoreLocation,
    pub(super) checkpoint: CheckpointStore,
    pub(super) format: TableFormat,
    pub(super) tables: Tables,
    /// A Parquet bronze's committed parts by day partition, read from the checkpoint on the first day loaded
    /// and kept for the rest of the batch (one batch's loads see the same committed batches).
    committed: Arc<tokio::sync::OnceCell<HashMap<String, Vec<Part>>>>,
}

impl PartSource {
    pub(super) fn of(ctx: &Context) -> Self {
        Self {
            bronze: ctx.bronze.clone(),
            checkpoint: ctx.checkpoint.clone(),
            format: ctx.config.table_format,
            tables: ctx.tables.clone(),
            committed: Arc::default(),
        }
    }

    /// Every committed data part of `dataset` by its day partition's directory (`<dataset>/year=../month=../day=..`).
    async fn committed_parts(
        &self,
        dataset: &str,
    ) -> Result<&HashMap<String, Vec<Part>>, KeysError> {
        self.committed
            .get_or_try_init(|| async {
                let cp = self.checkpoint.clone();
                let ds = dataset.to_string();
                let prefix = format!("{ds}/year=");
                let batches = blocking(move || cp.batches(Some(&ds))).await?;
                let mut by: HashMap<String, Vec<Part>> = HashMap::new();
                for o in batches.into_iter().flat_map(|b| b.outputs) {
                    if !(o.path.starts_with(&prefix) && o.path.ends_with(".parquet")) {
                        continue;
                    }
                    if let Some((dir, _)) = o.path.rsplit_once('/') {
                        by.entry(dir.to_string()).or_default().push(Part {
                            path: o.path.clone(),
                            size: o.bytes,
                        });
                    }
                }
                Ok(by)
            })
            .await
    }

    /// The parts bronze holds for UTC day `day` of `dataset`, sorted by path.
    ///
    /// # Errors
    /// Checkpoint or table log failures.
    pub(super) async fn day_parts(&self, dataset: &str, day: i32) -> Result<Vec<Part>, KeysError> {
        let partition = PartitionKey { days: day }.path();
        let mut parts = match self.format {
            TableFormat::Parquet => self
                .committed_parts(dataset)
                .await?
                .get(&format!("{dataset}/{partition}"))
                .cloned()
                .unwrap_or_default(),
            TableFormat::Delta => {
                let table = DeltaTable::new(&self.bronze, dataset);
                let Some(snap) = self.tables.take(&table).await? else {
                    return Ok(Vec::new());
                };
                let prefix = format!("{partition}/");
                let parts = snap
                    .files
                    .iter()
                    .filter(|(p, _)| p.starts_with(&prefix))
                    .map(|(p, add)| Part {
                        path: format!("{dataset}/{p}"),
                        size: u64::try_from(add.size).unwrap_or(0),
                    })
                    .collect();
                self.tables.keep(&table, snap).await;
                parts
            }
        };
        parts.sort();
        parts.dedup();
        Ok(parts)
    }
}

/// One row group's chunk of the key column of one part, fetched.
pub(crate) struct ColumnChunk {
    /// The part.
    pub(crate) path: String,
    /// Row of the part at which this row group starts.
    pub(crate) first_row: u64,
    meta: Arc<ParquetMetaData>,
    row_group: usize,
    column: usize,
    column_name: String,
    start: u64,
    bytes: Bytes,
}

/// Fetches the key column `column` of every part in `parts`, one row group's chunk at a time, into `tx` (in
/// part and row-group order). Stops when the receiver is dropped.
pub(super) async fn fetch_chunks(
    bronze: StoreLocation,
    parts: Vec<Part>,
    column: String,
    tx: mpsc::Sender<Result<ColumnChunk, KeysError>>,
) {
    for part in parts {
        let sent = match fetch_part(&bronze, &part, &column, &tx).await {
            Ok(sent) => sent,
            Err(e) => tx.send(Err(e)).await.is_ok(),
        };
        if !sent {
            return;
        }
    }
}

/// Sends the chunks of one part; `Ok(false)` when the receiver is gone.
async fn fetch_part(
    bronze: &StoreLocation,
    part: &Part,
    column: &str,
    tx: &mpsc::Sender<Result<ColumnChunk, KeysError>>,
) -> Result<bool, KeysError> {
    let location = bronze.path(&part.path);
    let meta = footer_metadata(bronze, &location, part.size)
        .await
        .map_err(|source| KeysError::Footer {
            path: part.path.clone(),
            source,
        })?;
    let meta = Arc::new(meta);
    let schema = meta.file_metadata().schema_descr();
    let Some(index) = (0..schema.num_columns()).find(|i| schema.column(*i).name() == column) else {
        return Err(KeysError::MissingColumn {
            path: part.path.clone(),
            column: column.to_string(),
        });
    };
    let mut first_row = 0u64;
    for (rg, group) in meta.row_groups().iter().enumerate() {
        let (start, len) = group.column(index).byte_range();
        let bytes = bronze
            .store
            .get_range(&location, start..start + len)
            .await
            .map_err(|source| KeysError::Store {
                path: part.path.clone(),
                source,
            })?;
        let chunk = ColumnChunk {
            path: part.path.clone(),
            first_row,
            meta: meta.clone(),
            row_group: rg,
            column: index,
            column_name: column.to_string(),
            start,
            bytes,
        };
        first_row += u64::try_from(group.num_rows()).unwrap_or(0);
        if tx.send(Ok(chunk)).await.is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The bytes of one column chunk, posing as the whole file for the Parquet reader (which reads only that
/// chunk's range once the metadata is given).
struct ChunkBytes {
    file_len: u64,
    start: u64,
    bytes: Bytes,
}

impl Length for ChunkBytes {
    fn len(&self) -> u64 {
        self.file_len
    }
}

impl ChunkBytes {
    fn slice(&self, start: u64, len: usize) -> parquet::errors::Result<Bytes> {
        let from = start
            .checked_sub(self.start)
            .and_then(|f| usize::try_from(f).ok())
            .filter(|f| {
                f.checked_add(len)
                    .is_some_and(|end| end <= self.bytes.len())
            })
            .ok_or_else(|| {
                parquet::errors::ParquetError::General(format!(
                    "read of {len} bytes at {start} outside the fetched column chunk"
                ))
            })?;
        Ok(self.bytes.slice(from..from + len))
    }
}

impl ChunkReader for ChunkBytes {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let end = self.start + self.bytes.len() as u64;
        let len = usize::try_from(end.saturating_sub(start)).unwrap_or(0);
        Ok(bytes::Buf::reader(self.slice(start, len)?))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, length)
    }
}

/// Decodes a chunk and calls `each(row of the part, key)` for every value.
///
/// # Errors
/// [`KeysError::Parquet`] when the chunk does not decode.
pub(crate) fn decode_chunk(
    chunk: ColumnChunk,
    mut each: impl FnMut(u64, &str),
) -> Result<(), KeysError> {
    let mut row = chunk.first_row;
    decode_strings(chunk, |col| {
        for v in col.iter() {
            if let Some(v) = v {
                each(row, v);
            }
            row += 1;
        }
    })
}

/// Decodes a chunk into the key hashes of its non-null values, appended to `out`, straight from the Arrow
/// string buffers (no copy of a value, no allocation per key).
///
/// # Errors
/// [`KeysError::Parquet`] when the chunk does not decode.
fn decode_keys(
    chunk: ColumnChunk,
    key_of: crate::decode::KeyOfValue,
    out: &mut Vec<u128>,
) -> Result<(), KeysError> {
    decode_strings(chunk, |col| {
        if col.null_count() == 0 {
            out.extend((0..col.len()).map(|i| key_of(col.value(i))));
        } else {
            out.extend(col.iter().flatten().map(key_of));
        }
    })
}

/// Decodes a chunk's values as strings, one Arrow batch (up to the row group's rows) at a time.
fn decode_strings(
    chunk: ColumnChunk,
    mut each: impl FnMut(&arrow::array::StringArray),
) -> Result<(), KeysError> {
    let err = |source| KeysError::Parquet {
        path: chunk.path.clone(),
        column: chunk.column_name.clone(),
        source,
    };
    let file_len = chunk.meta.file_metadata().num_rows().max(0) as u64;
    let rows = chunk.meta.row_group(chunk.row_group).num_rows().max(1) as usize;
    let mask = ProjectionMask::leaves(chunk.meta.file_metadata().schema_descr(), [chunk.column]);
    let arrow_meta =
        ArrowReaderMetadata::try_new(chunk.meta.clone(), Default::default()).map_err(err)?;
    let input = ChunkBytes {
        // Only used as an upper bound by the reader; the chunk's own range is what it reads.
        file_len: file_len.max(chunk.start + chunk.bytes.len() as u64),
        start: chunk.start,
        bytes: chunk.bytes.clone(),
    };
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(input, arrow_meta)
        .with_projection(mask)
        .with_row_groups(vec![chunk.row_group])
        .with_batch_size(rows.min(1 << 16))
        .build()
        .map_err(err)?;
    for batch in reader {
        let batch = batch.map_err(|e| err(e.into()))?;
        let col = batch.column(0);
        if col.data_type() == &DataType::Utf8 {
            each(col.as_string::<i32>());
        } else {
            let col = arrow::compute::cast(col, &DataType::Utf8).map_err(|e| err(e.into()))?;
            each(col.as_string::<i32>());
        }
    }
    Ok(())
}

/// Whether the CSV dataset's rows are to carry `_record_key`: yes for a new dataset, and for one whose bronze
/// already has the column; no for bronze written before it (its table schema, or its first committed part, lacks
/// it), whose schema is kept.
///
/// # Errors
/// Table log, checkpoint or footer read failures.
pub(super) async fn csv_record_key(ctx: &Context, dataset: &str) -> Result<bool, KeysError> {
    // Tests write bronze as a lander before `_record_key` did, to check that such a table keeps working.
    #[cfg(feature = "failpoints")]
    if std::env::var_os("LANDER_TEST_CSV_WITHOUT_RECORD_KEY").is_some() {
        return Ok(false);
    }
    let column = crate::decode::RECORD_KEY;
    match ctx.config.table_format {
        TableFormat::Delta => {
            let table = DeltaTable::new(&ctx.bronze, dataset);
            let Some(snap) = ctx.tables.take(&table).await? else {
                return Ok(true);
            };
            let has = schema_has(&snap.metadata.schema_string, column);
            ctx.tables.keep(&table, snap).await;
            Ok(has)
        }
        TableFormat::Parquet => {
            let Some(part) = first_part(&ctx.checkpoint, dataset).await? else {
                return Ok(true);
            };
            let meta = footer_metadata(&ctx.bronze, &ctx.bronze.path(&part.path), part.size)
                .await
                .map_err(|source| KeysError::Footer {
                    path: part.path.clone(),
                    source,
                })?;
            let schema = meta.file_metadata().schema_descr();
            Ok((0..schema.num_columns()).any(|i| schema.column(i).name() == column))
        }
    }
}

/// Whether the Delta schema string names a top-level field `column`.
fn schema_has(schema_string: &str, column: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(schema_string)
        .ok()
        .and_then(|v| {
            v.get("fields")?.as_array().map(|fields| {
                fields
                    .iter()
                    .any(|f| f.get("name").and_then(|n| n.as_str()) == Some(column))
            })
        })
        .unwrap_or(false)
}

/// The data part of the first committed batch of `dataset` that wrote one (batch ids count up from 1).
async fn first_part(
    checkpoint: &CheckpointStore,
    dataset: &str,
) -> Result<Option<Part>, KeysError> {
    let cp = checkpoint.clone();
    let ds = dataset.to_string();
    blocking(move || -> Result<Option<Part>, CheckpointError> {
        let prefix = format!("{ds}/year=");
        for id in 1..=cp.last_batch_id(&ds)? {
            let outputs = cp.batch(&ds, id)?.map(|b| b.outputs).unwrap_or_default();
            if let Some(o) = outputs
                .into_iter()
                .find(|o| o.path.starts_with(&prefix) && o.path.ends_with(".parquet"))
            {
                return Ok(Some(Part {
                    path: o.path,
                    size: o.bytes,
                }));
            }
        }
        Ok(None)
    })
    .await
    .map_err(KeysError::from)
}

/// The dedup index's loader for `dataset`: reads the keys bronze holds for a day (see the module doc), called
/// from the blocking thread that deduplicates; a day with a part that lacks the key column cannot be loaded
/// (`None`). `None` when the dataset's bronze holds no key column (a CSV table written before `_record_key`).
/// Must be built inside the runtime.
pub(super) fn day_loader(
    ctx: &Context,
    dataset: &str,
    decoder: &crate::decode::Decoder,
) -> Option<crate::dedup::lookup::DayLoader> {
    let (column, key_of) = decoder.bronze_key()?;
    let source = PartSource::of(ctx);
    let handle = tokio::runtime::Handle::current();
    let ds = dataset.to_string();
    Some(Box::new(move |day, spill| {
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT + DECODERS);
        let (source, day_ds) = (source.clone(), ds.clone());
        // The reads run on the runtime; DECODERS threads decode the chunks as they arrive, and this (blocking)
        // thread hands their keys to the spill.
        let task = handle.spawn(async move {
            match source.day_parts(&day_ds, day).await {
                Ok(parts) => fetch_chunks(source.bronze, parts, column.to_string(), tx).await,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        let got = gather_keys(rx, key_of, spill);
        task.abort();
        match got {
            Err(GatherError::Keys(KeysError::MissingColumn { path, column })) => {
                tracing::warn!(dataset = %ds, part = %path, column = %column, "dedup: a part of the day has no key column, so the day cannot be read back from bronze");
                Ok(false)
            }
            Err(GatherError::Keys(e)) => Err(e.into()),
            Err(GatherError::Spill(e)) => Err(e.into()),
            Ok(()) => Ok(true),
        }
    }))
}

/// Threads that decode and hash the key column chunks of a day load.
const DECODERS: usize = 2;

/// Why gathering a day's keys stopped.
enum GatherError {
    Keys(KeysError),
    Spill(crate::dedup::index::IndexError),
}

/// Decodes the chunks `rx` delivers on [`DECODERS`] threads into `spill` (which bounds the memory: see
/// [`crate::dedup::index::KeySpill`]). The first error (or missing column) stops the fetch.
fn gather_keys(
    rx: mpsc::Receiver<Result<ColumnChunk, KeysError>>,
    key_of: crate::decode::KeyOfValue,
    spill: &mut crate::dedup::index::KeySpill,
) -> Result<(), GatherError> {
    let rx = std::sync::Mutex::new(rx);
    let next = || rx.lock().expect("never poisoned").blocking_recv();
    let stop = || rx.lock().expect("never poisoned").close();
    let (keys_tx, keys_rx) = std::sync::mpsc::sync_channel::<Vec<u128>>(DECODERS);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..DECODERS)
            .map(|_| {
                let keys_tx = keys_tx.clone();
                s.spawn(move || -> Result<(), KeysError> {
                    while let Some(chunk) = next() {
                        let chunk = chunk.inspect_err(|_| stop())?;
                        let rows = chunk.meta.row_group(chunk.row_group).num_rows().max(0);
                        let mut out = Vec::with_capacity(rows as usize);
                        decode_keys(chunk, key_of, &mut out).inspect_err(|_| stop())?;
                        if keys_tx.send(out).is_err() {
                            return Ok(());
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        drop(keys_tx);
        let mut spilled = Ok(());
        for out in keys_rx {
            spilled = spill.extend(&out);
            if spilled.is_err() {
                stop();
                break;
            }
        }
        for w in workers {
            w.join()
                .expect("decoders do not panic")
                .map_err(GatherError::Keys)?;
        }
        spilled.map_err(GatherError::Spill)
    })
}
