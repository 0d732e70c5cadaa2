//! [`PartWriter`]: encodes rows per UTC day into zstd Parquet parts (synchronous, runs on a blocking thread) and
//! hands out [`PartEvent`]s: open a part, bytes of a part, close a part; the uploader in [`super::parquet`] streams
//! them to storage.
//!
//! Its memory does not grow with the number of days a batch spans: small days wait as rows (`super::days`, under
//! `HELD_DAY_BYTES`) and are written in one go, big days stream to at most `MAX_OPEN_PARTS` open parts. Part
//! names are unique across writers (batch id plus the batch's token, see `PartWriter::part_name`).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use arrow::array::UInt32Array;
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::days::HeldRows;
use super::parquet::{PartEvent, TimeRange, WrittenFile, ROW_GROUP_BYTES, UPLOAD_CHUNK_BYTES};
use super::partition::rows_by_day;
use super::{PartitionKey, SinkError};

/// The event time range of column `col` over every row group in `meta`, when all of them have statistics.
fn time_range(
    meta: &parquet::file::metadata::ParquetMetaData,
    col: usize,
    name: &str,
) -> Option<TimeRange> {
    use parquet::file::statistics::Statistics;
    let mut r: Option<TimeRange> = None;
    for rg in meta.row_groups() {
        if col >= rg.num_columns() {
            return None;
        }
        let Some(Statistics::Int64(s)) = rg.column(col).statistics() else {
            return None;
        };
        let (min, max) = (*s.min_opt()?, *s.max_opt()?);
        let nulls = s.null_count_opt().unwrap_or(0);
        r = Some(match r {
            None => TimeRange {
                column: name.to_string(),
                min,
                max,
                nulls,
            },
            Some(t) => TimeRange {
                min: t.min.min(min),
                max: t.max.max(max),
                nulls: t.nulls + nulls,
                ..t
            },
        });
    }
    r
}

/// Size of one segment of a part's encoded bytes: a row group flush writes tens of MB at once, and appending
/// that to one `Vec` doubled its capacity (and briefly held both copies).
const SEGMENT_BYTES: usize = 1 << 20;

/// Encoded bytes waiting for the uploader, kept as segments of at most [`SEGMENT_BYTES`] so memory is what is
/// buffered, not the next power of two of it.
#[derive(Default)]
struct Segments {
    done: Vec<Bytes>,
    cur: Vec<u8>,
    len: usize,
}

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Segments>>);

impl SharedBuf {
    fn lock(&self) -> std::sync::MutexGuard<'_, Segments> {
        self.0
            .lock()
            .expect("parquet buffer lock is never poisoned")
    }

    /// Everything buffered, in order.
    fn take(&self) -> Vec<Bytes> {
        let mut s = self.lock();
        let mut cur = std::mem::take(&mut s.cur);
        if !cur.is_empty() {
            // The last segment of a small part: do not keep a whole segment's allocation alive until the upload
            // completes (thousands of one-day parts are written in a row).
            if cur.len() < SEGMENT_BYTES / 4 {
                cur.shrink_to_fit();
            }
            s.done.push(Bytes::from(cur));
        }
        s.len = 0;
        std::mem::take(&mut s.done)
    }

    fn len(&self) -> usize {
        self.lock().len
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut s = self.lock();
        s.len += buf.len();
        let mut rest = buf;
        while !rest.is_empty() {
            if s.cur.capacity() == 0 {
                s.cur = Vec::with_capacity(SEGMENT_BYTES);
            }
            let n = rest.len().min(SEGMENT_BYTES - s.cur.len());
            s.cur.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if s.cur.len() == SEGMENT_BYTES {
                let full = std::mem::take(&mut s.cur);
                s.done.push(Bytes::from(full));
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct OpenPart {
    seq: u32,
    writer: ArrowWriter<SharedBuf>,
    buf: SharedBuf,
    rows: u64,
    uploaded: u64,
    /// The writer's tick at this part's last write (for closing the least recently written part).
    last_write: u64,
    staging: String,
    final_path: String,
    /// Event time column (index, name) whose statistics the part's [`WrittenFile`] reports.
    time_column: Option<(usize, String)>,
}

/// Columns written without a dictionary: (nearly) unique per row, so dictionary encoding only spends time
/// hashing values (GH Archive payloads are kilobytes each) before it falls back to plain encoding.
const NO_DICTIONARY_COLUMNS: [&str; 6] = [
    "payload",
    "id",
    "event_key",
    "_source_line",
    "_source_offset",
    "created_at",
];

/// The writer properties of every bronze part: zstd, bounded row groups, lander as `created_by`, and no
/// dictionary for the columns in `NO_DICTIONARY_COLUMNS`.
pub fn writer_properties(row_group_rows: usize) -> WriterProperties {
    let mut b = WriterProperties::builder();
    for c in NO_DICTIONARY_COLUMNS {
        b = b.set_column_dictionary_enabled(parquet::schema::types::ColumnPath::from(c), false);
    }
    b.set_compression(Compression::ZSTD(
        ZstdLevel::try_new(1).expect("zstd level 1 is valid"),
    ))
    .set_max_row_group_row_count(Some(row_group_rows.max(1)))
    .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
    .set_created_by(format!("lander {}", env!("CARGO_PKG_VERSION")))
    .build()
}

/// Arrow bytes of rows held in memory for days without a part of their own, across all days of a batch: when
/// they exceed this, every held day is written out as a part. Chosen so that the files a batch usually spans
/// (a day of GH Archive hours, a CSV export of years) end as one part per day, while memory stays well under
/// 256 MB whatever the spread of event times.
pub(crate) const HELD_DAY_BYTES: usize = 64 << 20;

/// A day whose held rows reach this many Arrow bytes gets a part of its own, open while its rows keep coming:
/// big days stream to their part, small days wait in memory and are written in one go.
pub(crate) const STREAM_DAY_BYTES: usize = 8 << 20;

/// Parts open at once for streaming days; beyond this the least recently written one is closed (its day's later
/// rows go to another part). Each open part holds up to a row group ([`ROW_GROUP_BYTES`]) and a column writer per
/// column, so this bounds the sink's memory together with [`HELD_DAY_BYTES`].
pub(crate) const MAX_OPEN_PARTS: usize = 4;

/// Receives the [`PartEvent`]s of a [`PartWriter`] as they happen (normally a bounded channel to [`upload_parts`](super::parquet::upload_parts)),
/// so that encoded bytes never pile up in memory; an error stops the writer.
pub(crate) type Emit<'a> = dyn FnMut(PartEvent) -> Result<(), SinkError> + 'a;

/// Encodes one batch's rows into Parquet parts per UTC day, with memory bounded whatever the number of days:
/// rows of a day wait in memory (under `HELD_DAY_BYTES` across all days) and are written in one go as the
/// day's part; a day that reaches `STREAM_DAY_BYTES` streams into a part of its own (at most `MAX_OPEN_PARTS`
/// open); a part rolls over to a new one when it reaches `target_file_bytes`.
pub struct PartWriter {
    dataset: String,
    batch_id: u64,
    schema: SchemaRef,
    props: WriterProperties,
    row_group_rows: usize,
    target_file_bytes: u64,
    open: HashMap<PartitionKey, OpenPart>,
    held: HeldRows,
    next_seq: u32,
    /// Unique component of part names (empty: names are unique per batch id only).
    token: String,
    /// Write parts at their final names (Delta: unreferenced parts are invisible) instead of staging names.
    in_place: bool,
    time_column: Option<(usize, String)>,
    /// [`HELD_DAY_BYTES`], [`STREAM_DAY_BYTES`], [`MAX_OPEN_PARTS`] (smaller in unit tests).
    limits: (usize, usize, usize),
    /// Increases with every write to an open part: the least recently written part has the lowest `last_write`.
    tick: u64,
}

impl PartWriter {
    /// A writer for batch `batch_id` of `dataset`.
    pub fn new(
        dataset: &str,
        batch_id: u64,
        schema: SchemaRef,
        row_group_rows: usize,
        target_file_bytes: u64,
    ) -> Self {
        Self {
            dataset: dataset.to_string(),
            batch_id,
            schema,
            props: writer_properties(row_group_rows),
            row_group_rows: row_group_rows.max(1),
            target_file_bytes,
            open: HashMap::new(),
            held: HeldRows::default(),
            next_seq: 0,
            token: String::new(),
            in_place: false,
            time_column: None,
            limits: (HELD_DAY_BYTES, STREAM_DAY_BYTES, MAX_OPEN_PARTS),
            tick: 0,
        }
    }
    /// Names parts `part-b<batch>-<token>-<seq>.parquet` (unique across writers that share
    /// bronze) and, when `in_place`, uploads them at their final names instead of staging names.
    pub fn with_naming(mut self, token: &str, in_place: bool) -> Self {
        self.token = token.to_string();
        self.in_place = in_place;
        self
    }

    /// The event time column (index in the schema): each closed part reports its range.
    pub fn set_time_column(&mut self, index: usize) {
        if self.time_column.is_none() {
            let name = self.schema.field(index).name().clone();
            self.time_column = Some((index, name));
        }
    }

    /// The file name of part `seq` of batch `batch_id` with unique component `token` (may be empty).
    pub(crate) fn part_name(batch_id: u64, token: &str, seq: u32) -> String {
        if token.is_empty() {
            format!("part-b{batch_id:08}-{seq:04}.parquet")
        } else {
            format!("part-b{batch_id:08}-{token}-{seq:04}.parquet")
        }
    }

    /// The same writer with other memory limits, so unit tests reach them with small inputs.
    #[cfg(test)]
    fn with_limits(mut self, held: usize, stream: usize, open: usize) -> Self {
        self.limits = (held, stream, open);
        self
    }

    /// The staging directory of a batch (relative to bronze).
    pub fn staging_prefix(dataset: &str, batch_id: u64) -> String {
        format!("_staging/{dataset}/b{batch_id:08}")
    }

    /// Writes `batch`, each row into the partition of the UTC day of its column `time_column` (Timestamp µs).
    /// Rows of one day keep their order. Parts are handed to `emit` as they are encoded.
    ///
    /// # Errors
    /// [`SinkError::Encode`], or the error of `emit`.
    pub fn write(
        &mut self,
        batch: &RecordBatch,
        time_column: usize,
        emit: &mut Emit<'_>,
    ) -> Result<(), SinkError> {
        let groups = rows_by_day(batch, time_column);
        let whole = groups.len() == 1;
        let mut hold = Vec::new();
        for (key, rows) in groups {
            if !self.open.contains_key(&key) {
                hold.push((key, rows));
                continue;
            }
            let rows = if whole {
                batch.clone()
            } else {
                take_record_batch(batch, &UInt32Array::from(rows))
                    .expect("row indices are in bounds of the batch")
            };
            self.append(key, &rows, emit)?;
        }
        if hold.is_empty() {
            return Ok(());
        }
        let keys: Vec<PartitionKey> = hold.iter().map(|(k, _)| *k).collect();
        self.held.hold(batch, hold);
        for key in keys {
            if self.held.day_bytes(key) >= self.limits.1 {
                self.stream_day(key, emit)?;
            }
        }
        if self.held.bytes() > self.limits.0 {
            self.write_held(emit)?;
        }
        Ok(())
    }

    /// Gives `key` a part of its own and writes its held rows to it; closes the least recently written part
    /// first when [`MAX_OPEN_PARTS`] are open.
    fn stream_day(&mut self, key: PartitionKey, emit: &mut Emit<'_>) -> Result<(), SinkError> {
        if self.open.len() >= self.limits.2 {
            let oldest = self
                .open
                .iter()
                .min_by_key(|(_, p)| p.last_write)
                .map(|(k, _)| *k)
                .expect("parts are open");
            let part = self.open.remove(&oldest).expect("present");
            Self::close(part, emit)?;
        }
        if let Some(rows) = self.held.take_day(key) {
            self.append_sliced(key, &rows, emit)?;
        }
        Ok(())
    }

    /// Writes every held day as a part of its own (one at a time, in day order) and releases the held rows.
    fn write_held(&mut self, emit: &mut Emit<'_>) -> Result<(), SinkError> {
        for key in self.held.days() {
            let Some(rows) = self.held.take_day(key) else {
                continue;
            };
            self.append_sliced(key, &rows, emit)?;
            if let Some(part) = self.open.remove(&key) {
                Self::close(part, emit)?;
            }
        }
        Ok(())
    }

    /// [`Self::append`] in slices of at most a row group, so that `target_file_bytes` is checked between them.
    fn append_sliced(
        &mut self,
        key: PartitionKey,
        rows: &RecordBatch,
        emit: &mut Emit<'_>,
    ) -> Result<(), SinkError> {
        let mut offset = 0;
        while offset < rows.num_rows() {
            let n = self.row_group_rows.min(rows.num_rows() - offset);
            self.append(key, &rows.slice(offset, n), emit)?;
            offset += n;
        }
        Ok(())
    }

    /// Appends `batch` (all rows in partition `key`) to the day's open part, opening one if needed, and closes
    /// the part when it reaches `target_file_bytes`.
    fn append(
        &mut self,
        key: PartitionKey,
        batch: &RecordBatch,
        emit: &mut Emit<'_>,
    ) -> Result<(), SinkError> {
        if !self.open.contains_key(&key) {
            let part = self.open_part(key, emit)?;
            self.open.insert(key, part);
        }
        self.tick += 1;
        let part = self.open.get_mut(&key).expect("inserted above");
        part.last_write = self.tick;
        part.writer
            .write(batch)
            .map_err(|source| SinkError::Encode {
                path: part.final_path.clone(),
                source,
            })?;
        part.rows += batch.num_rows() as u64;
        if part.buf.len() >= UPLOAD_CHUNK_BYTES {
            for bytes in part.buf.take() {
                part.uploaded += bytes.len() as u64;
                emit(PartEvent::Data {
                    seq: part.seq,
                    bytes,
                })?;
            }
        }
        // Bytes written so far (some may still sit in the writer's own buffer) plus the row group in progress.
        if (part.writer.bytes_written() + part.writer.in_progress_size()) as u64
            >= self.target_file_bytes
        {
            let part = self.open.remove(&key).expect("present");
            Self::close(part, emit)?;
        }
        Ok(())
    }

    /// Starts the next part of the batch, in partition `key`: at a staging name, or at its final name when
    /// written in place (Delta).
    fn open_part(&mut self, key: PartitionKey, emit: &mut Emit<'_>) -> Result<OpenPart, SinkError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let name = Self::part_name(self.batch_id, &self.token, seq);
        let final_path = format!("{}/{}/{name}", self.dataset, key.path());
        let staging = if self.in_place {
            final_path.clone()
        } else {
            format!(
                "{}/{name}",
                Self::staging_prefix(&self.dataset, self.batch_id)
            )
        };
        let buf = SharedBuf::default();
        let writer =
            ArrowWriter::try_new(buf.clone(), self.schema.clone(), Some(self.props.clone()))
                .map_err(|source| SinkError::Encode {
                    path: final_path.clone(),
                    source,
                })?;
        emit(PartEvent::Open {
            seq,
            staging: staging.clone(),
        })?;
        Ok(OpenPart {
            seq,
            writer,
            buf,
            rows: 0,
            uploaded: 0,
            last_write: 0,
            staging,
            final_path,
            time_column: self.time_column.clone(),
        })
    }

    fn close(mut part: OpenPart, emit: &mut Emit<'_>) -> Result<(), SinkError> {
        let meta = part.writer.finish().map_err(|source| SinkError::Encode {
            path: part.final_path.clone(),
            source,
        })?;
        let range = part
            .time_column
            .as_ref()
            .and_then(|(i, name)| time_range(&meta, *i, name));
        let mut total = part.uploaded;
        for bytes in part.buf.take() {
            total += bytes.len() as u64;
            emit(PartEvent::Data {
                seq: part.seq,
                bytes,
            })?;
        }
        emit(PartEvent::Close {
            seq: part.seq,
            file: WrittenFile {
                staging: part.staging,
                final_path: part.final_path,
                rows: part.rows,
                bytes: total,
                time_range: range,
            },
        })
    }

    /// Closes every open part (in partition order), then writes each held day as a part (in day order).
    ///
    /// # Errors
    /// [`SinkError::Encode`], or the error of `emit`.
    pub fn finish(mut self, emit: &mut Emit<'_>) -> Result<(), SinkError> {
        let mut parts: Vec<_> = self.open.drain().collect();
        parts.sort_by_key(|(k, p)| (*k, p.seq));
        for (_, p) in parts {
            Self::close(p, emit)?;
        }
        self.write_held(emit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::collections::BTreeMap;

    const DAY_US: i64 = 86_400_000_000;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("x", DataType::Int64, false),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ]))
    }

    /// A batch of rows `xs`, row `x` on UTC day `day(x)`.
    fn batch(xs: std::ops::Range<i64>, day: impl Fn(i64) -> i64) -> RecordBatch {
        let t: Vec<i64> = xs.clone().map(|x| day(x) * DAY_US + x).collect();
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(xs.collect::<Vec<_>>())),
                Arc::new(TimestampMicrosecondArray::from(t).with_timezone("UTC")),
            ],
        )
        .expect("batch")
    }

    /// Runs `writes` through `w`; returns each closed part with its decoded `x` values.
    fn parts(mut w: PartWriter, writes: &[RecordBatch]) -> Vec<(WrittenFile, Vec<i64>)> {
        let mut ev = Vec::new();
        let mut emit = |e| {
            ev.push(e);
            Ok(())
        };
        for b in writes {
            w.write(b, 1, &mut emit).expect("write");
        }
        w.finish(&mut emit).expect("finish");
        let mut data: HashMap<u32, Vec<u8>> = HashMap::new();
        let mut out = Vec::new();
        for e in ev {
            match e {
                PartEvent::Open { seq, .. } => assert!(data.insert(seq, Vec::new()).is_none()),
                PartEvent::Data { seq, bytes } => data.get_mut(&seq).expect("open").extend(&bytes),
                PartEvent::Close { seq, file } => {
                    let bytes = Bytes::from(data.remove(&seq).expect("open"));
                    let xs: Vec<i64> = ParquetRecordBatchReaderBuilder::try_new(bytes)
                        .expect("parquet")
                        .build()
                        .expect("reader")
                        .flat_map(|b| {
                            let b = b.expect("batch");
                            b.column(0).as_primitive::<Int64Type>().values().to_vec()
                        })
                        .collect();
                    assert_eq!(xs.len() as u64, file.rows);
                    out.push((file, xs));
                }
            }
        }
        assert!(data.is_empty(), "every opened part is closed");
        out
    }

    #[test]
    fn parts_roll_over_and_decode_back() {
        // target_file_bytes = 1 and 3 rows a row group: every 3 rows close their part.
        let w = PartWriter::new("ds", 7, schema(), 3, 1);
        let got = parts(w, &[batch(0..3, |_| 0), batch(3..6, |_| 0)]);
        let names: Vec<_> = got.iter().map(|(f, _)| f.final_path.as_str()).collect();
        assert_eq!(
            names,
            [
                "ds/year=1970/month=01/day=01/part-b00000007-0000.parquet",
                "ds/year=1970/month=01/day=01/part-b00000007-0001.parquet"
            ]
        );
        assert_eq!(
            got[0].0.staging,
            "_staging/ds/b00000007/part-b00000007-0000.parquet"
        );
        assert_eq!(got[0].1, [0, 1, 2]);
        assert_eq!(got[1].1, [3, 4, 5]);
    }

    /// Each part's day and values: (day, xs), in the order parts were closed.
    fn by_day(got: &[(WrittenFile, Vec<i64>)]) -> Vec<(String, Vec<i64>)> {
        got.iter()
            .map(|(f, xs)| {
                (
                    f.final_path.split('/').nth(3).expect("day=").to_string(),
                    xs.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn many_small_days_are_held_and_written_one_part_each_in_row_order() {
        // 3 batches, rows spread round-robin over 50 days: each day is one part with its rows in order.
        let w = PartWriter::new("ds", 1, schema(), 65_536, u64::MAX);
        let writes: Vec<_> = (0..3)
            .map(|i| batch(i * 100..(i + 1) * 100, |x| x % 50))
            .collect();
        let got = parts(w, &writes);
        assert_eq!(got.len(), 50);
        for (k, (f, xs)) in got.iter().enumerate() {
            let expected: Vec<i64> = (0..300).filter(|x| x % 50 == k as i64).collect();
            assert_eq!(xs, &expected, "{}", f.final_path);
            let day = PartitionKey { days: k as i32 }.path();
            assert!(f.final_path.contains(&day), "{} in {day}", f.final_path);
        }
    }

    #[test]
    fn held_rows_over_the_budget_are_written_out_and_each_day_keeps_every_row() {
        // A budget smaller than one batch: every write spills all held days; each day gets a part per write.
        let w = PartWriter::new("ds", 1, schema(), 65_536, u64::MAX).with_limits(64, usize::MAX, 4);
        let writes: Vec<_> = (0..4)
            .map(|i| batch(i * 10..(i + 1) * 10, |x| x % 5))
            .collect();
        let got = parts(w, &writes);
        assert_eq!(got.len(), 4 * 5);
        let mut per_day: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (day, xs) in by_day(&got) {
            per_day.entry(day).or_default().extend(xs);
        }
        for (k, (day, xs)) in per_day.iter().enumerate() {
            assert_eq!(day, &format!("day={:02}", k + 1));
            let expected: Vec<i64> = (0..40).filter(|x| x % 5 == k as i64).collect();
            assert_eq!(xs, &expected);
        }
    }

    #[test]
    fn big_days_stream_to_their_own_part_and_the_least_recently_written_is_closed() {
        // Streaming from 1 byte, at most 2 parts open; days 0, 1, 2 then 0 again: day 0's part is closed when
        // day 2 needs one, so day 0 ends in two parts; days 1 and 2 in one each.
        let w = PartWriter::new("ds", 1, schema(), 65_536, u64::MAX).with_limits(usize::MAX, 1, 2);
        let writes = [
            batch(0..3, |_| 0),
            batch(3..6, |_| 1),
            batch(6..9, |_| 2),
            batch(9..12, |_| 0),
        ];
        let mut got = by_day(&parts(w, &writes));
        got.sort();
        assert_eq!(
            got,
            [
                ("day=01".to_string(), vec![0, 1, 2]),
                ("day=01".to_string(), vec![9, 10, 11]),
                ("day=02".to_string(), vec![3, 4, 5]),
                ("day=03".to_string(), vec![6, 7, 8]),
            ]
        );
    }
}
