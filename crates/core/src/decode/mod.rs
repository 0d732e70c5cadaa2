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
//!   for the next read, and [`DecodeEnd::end_offset`] stops before it;
//! - memory is bounded by [`Limits`], whatever the input: a line (or CSV record) longer than `max_record_bytes`
//!   is skipped to its end without being buffered and quarantined with its first `TOO_LONG_HEAD_BYTES` bytes
//!   and its length (counted in [`DecodeEnd::truncated`]: the quarantine does not hold that record whole); a
//!   gzip stream that inflates beyond `max_decompressed_bytes` or `max_decompression_ratio` fails the file with
//!   [`DecodeError::Limit`] as soon as the limit is crossed; a file over `max_file_bytes` fails before any byte
//!   is read;
//! - a CSV quoted field that runs past the end of its line into a malformed record (a stray quote) costs only
//!   the line where it started: that line is quarantined and reading resumes at the next (see `csv`);
//! - records whose event time lies before `min_event_time` or more than `max_event_time_ahead` after the
//!   ingestion time are quarantined with the reason (`Limits::check_event_time`);
//! - an empty file (also an empty `.gz`) is an empty stream, not a truncated one; bytes that are not gzip in a
//!   file taken for gzip fail the file with [`DecodeError::NotGzip`].
//!
//! Everything here is synchronous and pure (no tokio): run it on a blocking thread.

pub mod csv;
pub(crate) mod gharchive;
mod lineage;
mod lines;
mod reason;

pub(crate) use lineage::key_of_record_key;
pub use lineage::RECORD_KEY;
pub use lines::LineSource;
pub(crate) use lines::{limit_error, map_stream_error};
pub(crate) use reason::{QuoteRunaway, RecordError};

use std::io::Read;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

/// Rows per decoded chunk: big enough to amortise per-batch overhead in Parquet encoding, small enough that a
/// handful of chunks in flight per file keeps memory in the tens of MB.
pub(crate) const CHUNK_ROWS: usize = 4096;

/// Bytes of the widest column (GH Archive `payload`) after which a chunk is emitted whatever its row count: keeps
/// chunk memory in the megabytes for wide rows and lets the builder be sized once, with no regrowth.
pub(crate) const CHUNK_BYTES: usize = 4 << 20;

/// Bytes of an over-long record that are kept in the quarantine (with its full length in the reason): enough to
/// recognise it, bounded whatever the record.
pub(crate) const TOO_LONG_HEAD_BYTES: usize = 4096;

/// Quarantined records a decoder collects before handing them on, so that a file of bad lines does not pile up
/// in the decoder.
pub(crate) const QUARANTINE_CHUNK: usize = 1024;

/// Raw bytes of quarantined records a decoder collects before handing them on (bad records can each be up to
/// `max_record_bytes` long, so a count alone would not bound memory).
pub(crate) const QUARANTINE_CHUNK_BYTES: usize = 64 << 20;

/// Whether a decoder should hand its collected quarantine records on now.
pub(crate) fn quarantine_full(bad: &[QuarantineRecord]) -> bool {
    bad.len() >= QUARANTINE_CHUNK
        || bad.iter().map(|r| r.raw.len()).sum::<usize>() >= QUARANTINE_CHUNK_BYTES
}

/// A decoder's consumer: `emit` returns `false` to stop, which the decoder reports as
/// [`DecodeError::Cancelled`].
struct Emitter<'a> {
    emit: &'a mut dyn FnMut(DecodeItem) -> bool,
    path: &'a str,
}

impl Emitter<'_> {
    /// Hands `item` on.
    fn send(&mut self, item: DecodeItem) -> Result<(), DecodeError> {
        if (self.emit)(item) {
            Ok(())
        } else {
            Err(DecodeError::Cancelled {
                path: self.path.to_string(),
            })
        }
    }

    /// Hands the quarantine records collected in `bad` on once there are enough of them ([`quarantine_full`])
    /// or, at the end of the stream (`last`), any at all.
    fn quarantine(
        &mut self,
        bad: &mut Vec<QuarantineRecord>,
        last: bool,
    ) -> Result<(), DecodeError> {
        if !bad.is_empty() && (last || quarantine_full(bad)) {
            self.send(DecodeItem::Quarantine(std::mem::take(bad)))?;
        }
        Ok(())
    }
}

/// The decompression ratio is only judged after this many decompressed bytes: the first blocks of a stream
/// (headers, a repetitive preamble) can inflate far more than the stream as a whole, and below this size the
/// output is harmless anyway.
pub(crate) const RATIO_MIN_DECOMPRESSED_BYTES: u64 = 64 << 20;

/// Limits and record policy applied while decoding one file. Every field has a config key of the same name
/// (see `Config`), whose doc gives the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest record (NDJSON line, CSV record) in bytes, terminator excluded.
    pub max_record_bytes: u64,
    /// Largest file (or unread tail of a growing file) in bytes.
    pub max_file_bytes: u64,
    /// Most decompressed bytes per gzip file.
    pub max_decompressed_bytes: u64,
    /// Highest ratio of decompressed to compressed bytes (judged after `RATIO_MIN_DECOMPRESSED_BYTES`).
    pub max_decompression_ratio: u64,
    /// Earliest accepted event time, µs since epoch, UTC.
    pub min_event_time: i64,
    /// Latest accepted event time, in µs after the ingestion time.
    pub max_event_time_ahead: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_record_bytes: 16 << 20,
            max_file_bytes: 16 << 30,
            max_decompressed_bytes: 32 << 30,
            max_decompression_ratio: 100,
            // 2000-01-01T00:00:00Z
            min_event_time: 946_684_800_000_000,
            max_event_time_ahead: 86_400_000_000,
        }
    }
}

impl Limits {
    /// Checks an event time (µs, UTC) of column `column` against the policy; `now` is the ingestion time.
    ///
    /// # Errors
    /// [`RecordError::TooEarly`] or [`RecordError::TooLate`]: the record is quarantined.
    pub(crate) fn check_event_time(
        &self,
        t: i64,
        now: i64,
        column: &str,
    ) -> Result<(), RecordError> {
        if t < self.min_event_time {
            return Err(RecordError::TooEarly {
                column: column.to_string(),
                at: t,
                min: self.min_event_time,
            });
        }
        let latest = now.saturating_add(self.max_event_time_ahead);
        if t > latest {
            return Err(RecordError::TooLate {
                column: column.to_string(),
                at: t,
                latest,
            });
        }
        Ok(())
    }
}

/// A limit crossed inside a reader, carried through `std::io::Error` to [`map_stream_error`].
#[derive(Debug)]
struct LimitHit(String);

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LimitHit {}

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
    /// `schema_evolution = "add_columns"`: the CSV header has columns the batch's schema lacks. Not a failure of
    /// the file: the batch is decoded again with them added to the schema.
    #[error("{path}: the header adds columns {columns:?} to the schema of dataset {dataset}")]
    NewColumns {
        /// Landing path.
        path: String,
        /// Dataset.
        dataset: String,
        /// The new columns' header names, in header order.
        columns: Vec<String>,
    },
    /// The dataset's stored CSV schema does not fit its options (an event-time or key column it lacks, an unknown
    /// column type or time zone): no file of the dataset can be decoded until the configuration is fixed.
    #[error(
        "dataset {dataset}: the stored CSV schema does not fit the dataset's options: {reason}"
    )]
    Schema {
        /// Dataset.
        dataset: String,
        /// What does not fit.
        reason: String,
    },
    /// A file-level limit was crossed (file size, decompressed size or ratio, or a CSV record over the limit that
    /// cannot be skipped safely).
    #[error("{path} rejected: {reason}")]
    Limit {
        /// Landing path.
        path: String,
        /// Which limit, with the numbers.
        reason: String,
    },
    /// The file is taken for gzip (by its name) but does not start with the gzip magic bytes.
    #[error("{path} is not gzip: it is named .gz but starts with {head} instead of the gzip magic bytes 1f 8b")]
    NotGzip {
        /// Landing path.
        path: String,
        /// Its first bytes, in hex.
        head: String,
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
    /// Ingestion timestamp (µs since epoch, UTC) written to `_ingested_at`; also "now" for the event-time policy.
    pub ingested_at: i64,
    /// Bytes this read covers (the whole file for gzip, the unread tail for a plain file), checked against
    /// `limits.max_file_bytes` before anything is read.
    pub file_bytes: u64,
    /// Limits and record policy.
    pub limits: Limits,
    /// The bytes up to the first newline continue a line that was already committed as a record (the file grew
    /// after its unterminated last line was taken as final): they are quarantined as that continuation, not
    /// read as a new record.
    pub continues_line: bool,
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
    /// Records quarantined with their first bytes only (over `max_record_bytes`): the quarantine does not hold
    /// all of the file's bytes, so the file must not be cleaned from landing.
    pub truncated: u64,
}

/// Maps a value of a bronze key column back to its dedup key hash.
pub type KeyOfValue = fn(&str) -> u128;

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

    /// The bronze column that holds each row's dedup key, and how a value of it maps back to the key hash;
    /// `None` when bronze keeps no key (a CSV table written before `_record_key`: the key is hashed from the raw
    /// text of the record, which bronze does not keep).
    pub fn bronze_key(&self) -> Option<(&'static str, KeyOfValue)> {
        match self {
            Decoder::Gharchive => Some(("event_key", gharchive::key_of_event_key)),
            Decoder::Csv(c) => c.record_key().then_some((RECORD_KEY, key_of_record_key)),
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

/// 128-bit dedup key hash of `bytes` in the namespace `kind` (so an id and a content hash never collide).
pub(crate) fn key_hash(kind: &[u8], bytes: &[u8]) -> u128 {
    // One-shot over `kind 0 bytes` when it fits a stack buffer (the same digest as the streaming hasher, without
    // its state set-up: most keys are short ids).
    let n = kind.len() + 1 + bytes.len();
    if n <= 128 {
        let mut buf = [0u8; 128];
        buf[..kind.len()].copy_from_slice(kind);
        buf[kind.len() + 1..n].copy_from_slice(bytes);
        return xxhash_rust::xxh3::xxh3_128(&buf[..n]);
    }
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(kind);
    h.update(&[0]);
    h.update(bytes);
    h.digest128()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn key_hash_one_shot_equals_the_streaming_digest() {
        for len in [0usize, 1, 10, 126, 127, 128, 300] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            h.update(b"id");
            h.update(&[0]);
            h.update(&bytes);
            assert_eq!(key_hash(b"id", &bytes), h.digest128(), "len {len}");
        }
    }

    fn input(gzip: bool, limits: Limits) -> DecodeInput {
        DecodeInput {
            path: "ds/f".into(),
            start_offset: 0,
            start_line: 0,
            gzip,
            is_final: true,
            ingested_at: 1_700_000_000_000_000,
            file_bytes: 0,
            limits,
            continues_line: false,
        }
    }

    fn source(data: Vec<u8>, inp: &DecodeInput) -> Result<LineSource, DecodeError> {
        LineSource::new(Box::new(std::io::Cursor::new(data)), inp)
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("gz");
        e.finish().expect("gz")
    }

    #[test]
    fn over_long_lines_keep_their_head_and_length_only() {
        let limits = Limits {
            max_record_bytes: 10,
            ..Limits::default()
        };
        let mut data = b"short\r\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 100_000));
        data.extend(b"\nexactly10!\nlast-no-newline-but-long");
        for partial in [false, true] {
            let mut inp = input(false, limits);
            inp.is_final = !partial;
            let mut s = source(data.clone(), &inp).expect("src");
            let mut buf = Vec::new();
            let a = s.next_line(&mut buf).expect("read").expect("line");
            assert_eq!(
                (a.offset, a.line, a.too_long, &buf[..]),
                (0, 1, None, &b"short"[..])
            );
            let b = s.next_line(&mut buf).expect("read").expect("line");
            assert_eq!((b.offset, b.line, b.too_long), (7, 2, Some(100_000)));
            assert_eq!(
                buf,
                vec![b'x'; 12],
                "the head (at most the limit + CRLF) is kept"
            );
            let c = s.next_line(&mut buf).expect("read").expect("line");
            assert_eq!((c.too_long, &buf[..]), (None, &b"exactly10!"[..]));
            let d = s.next_line(&mut buf).expect("read");
            if partial {
                assert_eq!(d, None, "a partial last line of a growing file waits");
                assert_eq!(s.offset, 7 + 100_001 + 11);
            } else {
                assert_eq!(d.expect("line").too_long, Some(24));
                assert_eq!(s.offset, data.len() as u64);
            }
            assert_eq!(s.next_line(&mut buf).expect("read"), None);
        }
    }

    #[test]
    fn empty_gzip_is_empty_and_non_gzip_is_named() {
        let inp = input(true, Limits::default());
        let mut s = source(Vec::new(), &inp).expect("empty is fine");
        assert_eq!(s.next_line(&mut Vec::new()).expect("read"), None);
        let e = source(b"{\"a\":1}\n".to_vec(), &inp)
            .err()
            .expect("not gzip");
        assert!(
            e.to_string()
                .contains("starts with 7b 22 61 22 3a 31 7d 0a instead of the gzip magic"),
            "{e}"
        );
    }

    #[test]
    fn inflate_limits_fail_the_file() {
        let member = gz(&vec![b' '; 1 << 20]);
        let bomb: Vec<u8> = member.repeat(100);
        let read_all = |limits: Limits| {
            let mut s = source(bomb.clone(), &input(true, limits))?;
            let mut buf = Vec::new();
            while s.next_line(&mut buf)?.is_some() {}
            Ok::<_, DecodeError>(())
        };
        let e = read_all(Limits::default()).expect_err("ratio");
        assert!(
            matches!(&e, DecodeError::Limit { reason, .. } if reason.contains("max_decompression_ratio")),
            "{e}"
        );
        let e = read_all(Limits {
            max_decompressed_bytes: 5 << 20,
            max_decompression_ratio: u64::MAX,
            ..Limits::default()
        })
        .expect_err("bytes");
        assert!(
            matches!(&e, DecodeError::Limit { reason, .. } if reason.contains("max_decompressed_bytes")),
            "{e}"
        );
        read_all(Limits {
            max_decompression_ratio: 10_000,
            ..Limits::default()
        })
        .expect("within limits");
        let mut inp = input(true, Limits::default());
        inp.file_bytes = inp.limits.max_file_bytes + 1;
        assert!(matches!(
            source(Vec::new(), &inp),
            Err(DecodeError::Limit { .. })
        ));
    }

    /// xorshift64*: a tiny deterministic generator, so the fuzz run is the same on every machine.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn bytes(&mut self, alphabet: &[&[u8]], n: usize) -> Vec<u8> {
            let mut out = Vec::new();
            for _ in 0..n {
                out.extend_from_slice(alphabet[(self.next() % alphabet.len() as u64) as usize]);
            }
            out
        }
    }

    fn run(dec: &Decoder, data: &[u8], limits: Limits) -> Result<(u64, u64), DecodeError> {
        let inp = input(false, limits);
        let (mut rows, mut bad) = (0u64, 0u64);
        dec.decode(
            Box::new(std::io::Cursor::new(data.to_vec())),
            &inp,
            &mut |item| {
                match item {
                    DecodeItem::Rows(d) => rows += d.batch.num_rows() as u64,
                    DecodeItem::Quarantine(q) => bad += q.len() as u64,
                }
                true
            },
        )?;
        Ok((rows, bad))
    }

    /// Bounded fuzz run over both decoders: arbitrary bytes never panic, and every non-blank line ends up
    /// either in a row or in the quarantine.
    /// Lines after the header of a CSV input, blank (or lone `\r`) lines not counted: what rows + quarantined
    /// records must add up to.
    fn data_lines(data: &[u8]) -> u64 {
        data.split(|b| *b == b'\n')
            .skip(1)
            .filter(|l| !l.iter().all(|b| *b == b'\r'))
            .count() as u64
    }

    #[test]
    fn fuzz_every_line_is_a_row_or_quarantined() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let event = br#"{"id":"1","type":"PushEvent","created_at":"2015-01-01T00:00:00Z","actor":{"id":1,"login":"a"},"repo":{"id":2,"name":"a/b"},"payload":{}}"#;
        let json: &[&[u8]] = &[
            b"{",
            b"}",
            b"[",
            b"]",
            b"\"",
            b":",
            b",",
            b"\n",
            b"\r",
            b" ",
            b"a",
            b"1",
            b"\xff",
            b"\xc3",
            b"null",
            b"\"created_at\"",
            b"\"type\"",
            b"\"2015-01-01T00:00:00Z\"",
            event,
            event,
            b"\n",
        ];
        let limits = Limits {
            max_record_bytes: 200,
            ..Limits::default()
        };
        let gh = Decoder::Gharchive;
        for round in 0..400 {
            let n = (rng.next() % 80) as usize;
            let data = rng.bytes(json, n);
            let (rows, bad) =
                run(&gh, &data, limits).unwrap_or_else(|e| panic!("round {round}: {e}"));
            let segments: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
            let last = segments.len() - 1;
            let lines = segments
                .iter()
                .enumerate()
                .filter(|(i, l)| {
                    // A terminated line loses a `\r` before its `\n`; the unterminated last one keeps it.
                    let content = match l.last() {
                        Some(b'\r') if *i < last => l.len() - 1,
                        _ => l.len(),
                    };
                    !l.trim_ascii().is_empty() || content as u64 > limits.max_record_bytes
                })
                .count() as u64;
            assert_eq!(
                rows + bad,
                lines,
                "round {round}: {:?}",
                String::from_utf8_lossy(&data)
            );
        }

        let opts = csv::CsvOptions::sales();
        let header = b"transaction_id,timestamp,customer_id,product_id,category,quantity,unit_price,total,payment_method,status\n";
        let schema = csv::infer_schema(
            source(header.to_vec(), &input(false, limits)).expect("src"),
            &opts,
            "sales",
        )
        .expect("schema");
        let dec = Decoder::Csv(Arc::new(
            csv::CsvDecoder::new("sales", &opts, &schema).expect("dec"),
        ));
        let row: &[u8] =
            b"1,2025-10-25 19:07:27,8961,79973,Deportes,7,160.74,1125.18,Transferencia,Cancelada";
        let csv_alphabet: &[&[u8]] = &[
            b",", b"\n", b"\r\n", b" ", b"x", b"7", b"\xff", row, row, b"\n",
        ];
        for round in 0..400 {
            let mut data = header.to_vec();
            let n = (rng.next() % 60) as usize;
            data.extend(rng.bytes(csv_alphabet, n));
            let (rows, bad) = run(&dec, &data, Limits::default())
                .unwrap_or_else(|e| panic!("csv round {round}: {e}"));
            let lines = data_lines(&data);
            assert_eq!(
                rows + bad,
                lines,
                "csv round {round}: {:?}",
                String::from_utf8_lossy(&data)
            );
            // With quotes anywhere, only "no panic" holds (a quoted field may span lines).
            let mut quoted = data.clone();
            let at = (rng.next() as usize) % quoted.len();
            quoted.insert(at, b'"');
            let _ = run(&dec, &quoted, Limits::default());
            // One stray quote after the header (not inside a CRLF, which would split the line in two) costs at
            // most its own line: the counts still add up.
            let mut stray = data.clone();
            let at = header.len() + (rng.next() as usize) % (stray.len() - header.len() + 1);
            if stray[at - 1] != b'\r' {
                stray.insert(at, b'"');
                let (rows, bad) = run(&dec, &stray, Limits::default())
                    .unwrap_or_else(|e| panic!("stray quote round {round}: {e}"));
                let lines = data_lines(&stray);
                assert_eq!(
                    rows + bad,
                    lines,
                    "stray quote round {round}: {:?}",
                    String::from_utf8_lossy(&stray)
                );
            }
        }

        // Inputs larger than the CSV parser's buffer with a small record limit, so that over-long records are
        // skipped by the recorder, not only judged after parsing: the counts still add up, and no input fails
        // the file (the recorder's replica of the parser's state machine agrees with the parser).
        let small = Limits {
            // The header (104 bytes) and one row fit; two rows run together do not.
            max_record_bytes: 128,
            ..Limits::default()
        };
        let long_field: Vec<u8> = vec![b'y'; 70_000];
        let big_alphabet: &[&[u8]] = &[b",", b"\n", b"\r\n", b"x", row, row, &long_field, b"\n"];
        for round in 0..12 {
            let mut data = header.to_vec();
            while data.len() < 600_000 {
                let n = (rng.next() % 50) as usize;
                data.extend(rng.bytes(big_alphabet, n));
            }
            let (rows, bad) =
                run(&dec, &data, small).unwrap_or_else(|e| panic!("big csv round {round}: {e}"));
            let lines = data_lines(&data);
            assert_eq!(rows + bad, lines, "big csv round {round}");
            // Quoted fields, some of them spanning lines and far over the limit.
            let mut quoted = data.clone();
            for _ in 0..20 {
                let at = (rng.next() as usize) % quoted.len();
                quoted.insert(at, b'"');
            }
            run(&dec, &quoted, small)
                .unwrap_or_else(|e| panic!("big quoted csv round {round}: {e}"));
        }
    }
}
