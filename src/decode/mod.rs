//! Decoding: the bytes of one landing file (or of its appended tail) to Arrow record batches plus quarantined
//! records.
//!
//! Takes in a synchronous `Read` of the file from a byte offset (the caller streams it from the object store;
//! nothing here loads a whole file) and produces, through a callback, [`Decoded`] chunks of at most
//! [`CHUNK_ROWS`] rows, each with its dedup keys and event times, and [`QuarantineRecord`]s for records that
//! cannot be parsed. Guarantees:
//! - every input record is either in a chunk or in the quarantine, exactly once;
//! - a gzip stream that is truncated or corrupt fails the *whole file* with [`DecodeError::Incomplete`] or
//!   [`DecodeError::Corrupt`] (the caller discards what it already received: a file is never half-ingested);
//! - for a plain (tailable) file that is not final, a last line without its newline is not consumed: it is left
//!   for the next read, and [`DecodeEnd::end_offset`] stops before it.
//!
//! Everything here is synchronous and pure (no tokio): run it on a blocking thread.

pub mod csv;
pub mod gharchive;

use std::io::{BufRead, Read};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

/// Rows per decoded chunk: big enough to amortise per-batch overhead in Parquet encoding, small enough that a
/// handful of chunks in flight per file keeps memory in the tens of MB.
pub const CHUNK_ROWS: usize = 4096;

/// Bytes of the widest column (GH Archive `payload`) after which a chunk is emitted whatever its row count: keeps
/// chunk memory in the megabytes for wide rows and lets the builder be sized once, with no regrowth.
pub const CHUNK_BYTES: usize = 4 << 20;

/// File-level decode failures. Record-level problems never appear here: they go to the quarantine.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The gzip stream ends before its trailer: the file is still being written, or was cut short.
    #[error("{path} is incomplete: {reason}")]
    Incomplete {
        /// Landing path.
        path: String,
        /// Details.
        reason: String,
    },
    /// The compressed stream is corrupt.
    #[error("{path} is corrupt at decompressed byte {offset}: {reason}")]
    Corrupt {
        /// Landing path.
        path: String,
        /// Decompressed offset where it failed.
        offset: u64,
        /// Details.
        reason: String,
    },
    /// Reading failed (object store or I/O).
    #[error("failed to read {path}: {source}")]
    Read {
        /// Landing path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The CSV header does not match the dataset's fixed schema.
    #[error("{path}: header does not match the schema of dataset {dataset}: {reason}")]
    Header {
        /// Landing path.
        path: String,
        /// Dataset.
        dataset: String,
        /// Details.
        reason: String,
    },
    /// The consumer stopped reading (shutdown or batch abort).
    #[error("decoding {path} was cancelled")]
    Cancelled {
        /// Landing path.
        path: String,
    },
}

/// What to decode: one landing file from a byte offset.
#[derive(Debug, Clone)]
pub struct DecodeInput {
    /// Landing path relative to the landing root (goes into `_source_file`).
    pub path: String,
    /// Byte offset where reading starts (0, or the bytes already consumed of a growing file).
    pub start_offset: u64,
    /// Records/lines already consumed before `start_offset` (line numbers continue from here).
    pub start_line: u64,
    /// Whether the stream is gzip (then it is always read whole, from offset 0).
    pub gzip: bool,
    /// Whether the end of the stream ends the last record (a settled file); `false` for a file still growing.
    pub is_final: bool,
    /// Ingestion timestamp (µs since epoch, UTC) written to `_ingested_at`.
    pub ingested_at: i64,
}

/// A record that could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineRecord {
    /// Landing path.
    pub source_file: String,
    /// 1-based line (NDJSON) or record (CSV) number, counting the header.
    pub line: u64,
    /// Byte offset of the record: in the file for plain files, in the decompressed stream for gzip.
    pub offset: u64,
    /// Why it was rejected.
    pub reason: String,
    /// The record's bytes exactly as in the (decompressed) file, without the line terminator.
    pub raw: Vec<u8>,
}

/// A chunk of decoded rows.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Rows, in the dataset's bronze schema.
    pub batch: RecordBatch,
    /// Dedup key hash of each row.
    pub keys: Vec<u128>,
    /// Index of the event-time column (Timestamp µs UTC) in `batch`.
    pub time_column: usize,
}

/// One item produced by a decoder.
#[derive(Debug)]
pub enum DecodeItem {
    /// Good rows.
    Rows(Decoded),
    /// Bad records.
    Quarantine(Vec<QuarantineRecord>),
}

/// Where decoding stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeEnd {
    /// Absolute byte offset in the file up to which records were consumed.
    pub end_offset: u64,
    /// Lines/records consumed in total (including `start_line`).
    pub end_line: u64,
}

/// The per-dataset decoder, built once per batch.
#[derive(Debug, Clone)]
pub enum Decoder {
    /// GH Archive NDJSON.
    Gharchive,
    /// CSV with a resolved schema.
    Csv(Arc<csv::CsvDecoder>),
}

impl Decoder {
    /// The bronze schema this decoder produces.
    pub fn schema(&self) -> SchemaRef {
        match self {
            Decoder::Gharchive => gharchive::schema(),
            Decoder::Csv(c) => c.schema(),
        }
    }

    /// Decodes `reader` (positioned at `input.start_offset` of the raw file) and calls `emit` for each item;
    /// `emit` returns `false` to stop early ([`DecodeError::Cancelled`]).
    ///
    /// # Errors
    /// File-level failures only, see [`DecodeError`].
    pub fn decode(
        &self,
        reader: Box<dyn Read + Send>,
        input: &DecodeInput,
        emit: &mut dyn FnMut(DecodeItem) -> bool,
    ) -> Result<DecodeEnd, DecodeError> {
        match self {
            Decoder::Gharchive => {
                let mut lines = LineSource::new(reader, input)?;
                gharchive::decode(&mut lines, input, emit)
            }
            Decoder::Csv(c) => {
                let lines = LineSource::new(reader, input)?;
                c.decode(lines, input, emit)
            }
        }
    }
}

/// Buffer size for reading landing files: large sequential reads.
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// A line-oriented view of a landing stream that tracks offsets and maps gzip errors to file-level errors.
pub struct LineSource {
    inner: Box<dyn BufRead + Send>,
    path: String,
    gzip: bool,
    /// Offset of the next unread byte, in the file (plain) or in the decompressed stream (gzip).
    pub offset: u64,
    /// Lines consumed so far (including `start_line`).
    pub line: u64,
    is_final: bool,
}

impl LineSource {
    /// Wraps `reader`, adding gzip decompression when `input.gzip`.
    ///
    /// # Errors
    /// None today; reserved for header sniffing.
    pub fn new(reader: Box<dyn Read + Send>, input: &DecodeInput) -> Result<Self, DecodeError> {
        let inner: Box<dyn BufRead + Send> = if input.gzip {
            Box::new(std::io::BufReader::with_capacity(
                READ_BUFFER_BYTES,
                flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(
                    READ_BUFFER_BYTES,
                    reader,
                )),
            ))
        } else {
            Box::new(std::io::BufReader::with_capacity(READ_BUFFER_BYTES, reader))
        };
        Ok(Self {
            inner,
            path: input.path.clone(),
            gzip: input.gzip,
            offset: if input.gzip { 0 } else { input.start_offset },
            line: input.start_line,
            is_final: input.is_final || input.gzip,
        })
    }

    /// The landing path.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn map_err(&self, e: std::io::Error) -> DecodeError {
        map_stream_error(self.gzip, &self.path, self.offset, e)
    }

    /// Reads the next complete line into `buf` (cleared first, terminator stripped). Returns the line's start
    /// offset and 1-based number, or `None` at the end (a trailing partial line of a non-final stream is left
    /// unconsumed).
    ///
    /// # Errors
    /// [`DecodeError::Incomplete`]/[`DecodeError::Corrupt`] for broken gzip, [`DecodeError::Read`] otherwise.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> Result<Option<(u64, u64)>, DecodeError> {
        buf.clear();
        let n = self
            .inner
            .read_until(b'\n', buf)
            .map_err(|e| self.map_err(e))?;
        if n == 0 {
            return Ok(None);
        }
        let terminated = buf.last() == Some(&b'\n');
        if !terminated && !self.is_final {
            // A partial last line of a growing file: leave it for the next read.
            buf.clear();
            return Ok(None);
        }
        let start = self.offset;
        self.offset += n as u64;
        self.line += 1;
        if terminated {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        Ok(Some((start, self.line)))
    }

    /// Whether the stream is gzip-compressed.
    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// The underlying buffered reader (for the CSV parser) with the bookkeeping handed over:
    /// `(reader, offset, line, is_final)`.
    pub fn into_parts(self) -> (Box<dyn BufRead + Send>, u64, u64, bool) {
        (self.inner, self.offset, self.line, self.is_final)
    }
}

/// Maps an I/O error of a landing stream to a file-level [`DecodeError`]: for gzip, an early end means the file
/// is incomplete and invalid data means it is corrupt.
pub fn map_stream_error(gzip: bool, path: &str, offset: u64, e: std::io::Error) -> DecodeError {
    if gzip {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                return DecodeError::Incomplete {
                    path: path.to_string(),
                    reason:
                        "gzip stream ends before its trailer (truncated or still being written)"
                            .into(),
                }
            }
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
                return DecodeError::Corrupt {
                    path: path.to_string(),
                    offset,
                    reason: format!("invalid gzip data: {e}"),
                }
            }
            _ => {}
        }
    }
    DecodeError::Read {
        path: path.to_string(),
        source: e,
    }
}

/// 128-bit dedup key hash of `bytes` in the namespace `kind` (so an id and a content hash never collide).
pub fn key_hash(kind: &[u8], bytes: &[u8]) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(kind);
    h.update(&[0]);
    h.update(bytes);
    h.digest128()
}
