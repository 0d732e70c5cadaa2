//! Delimited text (CSV and friends) to typed Arrow columns, configured per dataset (no code per file).
//!
//! Handles a configurable delimiter and quote, an optional header, UTF-8 (a BOM is skipped) or
//! Latin-1/Windows-1252 text (decoded per field, so byte offsets stay those of the file), CRLF or LF line ends,
//! quoted delimiters and newlines, several timestamp formats and a time zone for timestamps without an offset.
//!
//! Column types are declared in the config or inferred once from the first file ([`infer_schema`]); the result
//! is a [`StoredSchema`] that the checkpoint keeps, so later files cannot silently change the types. A file
//! whose header does not match fails as a whole ([`DecodeError::Header`]); a row that does not fit (wrong field
//! count, unparseable value, missing key or event time, invalid text) goes to the quarantine with its exact bytes.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::{BufRead, Read};
use std::rc::Rc;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::datatypes::{DataType, Decimal128Type, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

use super::{
    key_hash, limit_error, map_stream_error, DecodeEnd, DecodeError, DecodeInput, DecodeItem,
    Decoded, LineSource, QuarantineRecord, CHUNK_ROWS,
};
use crate::checkpoint::{StoredColumn, StoredSchema};
use crate::config::CsvOptions;

/// A column type of a CSV dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text.
    String,
    /// 64-bit integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// `true/false`, `yes/no`, `1/0`.
    Bool,
    /// Timestamp (µs, UTC) parsed with the dataset's formats and time zone.
    Timestamp,
    /// Calendar date parsed with the dataset's formats.
    Date,
    /// Decimal with precision and scale.
    Decimal(u8, i8),
}

impl ColumnType {
    /// Parses `string`, `int64`, `float64`, `bool`, `timestamp`, `date`, `decimal(P,S)`.
    ///
    /// # Errors
    /// A message naming the accepted types.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "string" | "utf8" | "text" => Self::String,
            "int64" | "int" | "integer" | "bigint" => Self::Int64,
            "float64" | "float" | "double" => Self::Float64,
            "bool" | "boolean" => Self::Bool,
            "timestamp" => Self::Timestamp,
            "date" => Self::Date,
            _ => {
                let inner = t
                    .strip_prefix("decimal(")
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| format!("unknown column type {s:?} (string, int64, float64, bool, timestamp, date, decimal(P,S))"))?;
                let (p, sc) = inner
                    .split_once(',')
                    .ok_or_else(|| format!("decimal needs (P,S): {s:?}"))?;
                let p: u8 = p
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad decimal precision in {s:?}"))?;
                let sc: i8 = sc
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad decimal scale in {s:?}"))?;
                if p == 0 || p > 38 || sc < 0 || sc as u8 > p {
                    return Err(format!(
                        "decimal precision must be 1..=38 and 0 <= scale <= precision: {s:?}"
                    ));
                }
                Self::Decimal(p, sc)
            }
        })
    }

    /// The canonical name (inverse of [`ColumnType::parse`]).
    pub fn name(&self) -> String {
        match self {
            Self::String => "string".into(),
            Self::Int64 => "int64".into(),
            Self::Float64 => "float64".into(),
            Self::Bool => "bool".into(),
            Self::Timestamp => "timestamp".into(),
            Self::Date => "date".into(),
            Self::Decimal(p, s) => format!("decimal({p},{s})"),
        }
    }

    fn data_type(&self) -> DataType {
        match self {
            Self::String => DataType::Utf8,
            Self::Int64 => DataType::Int64,
            Self::Float64 => DataType::Float64,
            Self::Bool => DataType::Boolean,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Self::Date => DataType::Date32,
            Self::Decimal(p, s) => DataType::Decimal128(*p, *s),
        }
    }
}

/// A time zone for timestamps without an offset.
#[derive(Debug, Clone, Copy)]
pub enum Zone {
    /// UTC.
    Utc,
    /// A fixed offset.
    Fixed(FixedOffset),
    /// An IANA zone (DST-aware; an ambiguous local time takes the earlier instant).
    Named(chrono_tz::Tz),
}

/// Parses `UTC`, `+02:00`/`-0800`, or an IANA name.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_timezone(s: &str) -> Result<Zone, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("utc") || t == "Z" {
        return Ok(Zone::Utc);
    }
    if t.starts_with(['+', '-']) {
        let probe = format!("2000-01-01T00:00:00{t}");
        return DateTime::parse_from_str(&probe, "%Y-%m-%dT%H:%M:%S%z")
            .or_else(|_| DateTime::parse_from_str(&probe, "%Y-%m-%dT%H:%M:%S%:z"))
            .map(|d| Zone::Fixed(*d.offset()))
            .map_err(|_| format!("invalid UTC offset {s:?} (use e.g. +02:00)"));
    }
    t.parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
        format!("unknown time zone {s:?} (use UTC, +02:00 or an IANA name like Europe/Madrid)")
    })
}

fn localize(zone: Zone, naive: NaiveDateTime) -> Option<i64> {
    match zone {
        Zone::Utc => Some(naive.and_utc().timestamp_micros()),
        Zone::Fixed(o) => o
            .from_local_datetime(&naive)
            .earliest()
            .map(|d| d.timestamp_micros()),
        Zone::Named(tz) => tz
            .from_local_datetime(&naive)
            .earliest()
            .map(|d| d.timestamp_micros()),
    }
}

/// Parses a timestamp with the first matching format; µs since epoch, UTC.
pub fn parse_timestamp(s: &str, formats: &[String], zone: Zone) -> Option<i64> {
    for f in formats {
        if f.contains("%z") || f.contains("%:z") || f.contains("%#z") {
            if let Ok(d) = DateTime::parse_from_str(s, f) {
                return Some(d.with_timezone(&Utc).timestamp_micros());
            }
        } else if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return localize(zone, n);
        } else if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return localize(zone, d.and_hms_opt(0, 0, 0)?);
        }
    }
    None
}

fn parse_date(s: &str, formats: &[String]) -> Option<i32> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    for f in formats {
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return i32::try_from((d - epoch).num_days()).ok();
        }
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return i32::try_from((n.date() - epoch).num_days()).ok();
        }
    }
    None
}

/// `Order Date` -> `order_date`: lower snake case, safe for Spark, Hive and DuckDB.
pub fn normalize_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.trim().chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

enum Text {
    Utf8,
    Windows1252,
}

impl Text {
    fn from_options(o: &CsvOptions) -> Self {
        match o.encoding.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Text::Utf8,
            _ => Text::Windows1252,
        }
    }

    fn decode<'a>(&self, b: &'a [u8]) -> Option<Cow<'a, str>> {
        match self {
            Text::Utf8 => std::str::from_utf8(b).ok().map(Cow::Borrowed),
            // encoding_rs maps the Latin-1 label to Windows-1252 (the WHATWG superset); it never fails.
            Text::Windows1252 => Some(encoding_rs::WINDOWS_1252.decode_without_bom_handling(b).0),
        }
    }
}

/// The CSV parser's read-ahead (`buffer_capacity`): the tape holds at most this much beyond the current record.
const CSV_BUFFER_BYTES: usize = 256 * 1024;

/// Records every byte the CSV parser reads, so that a rejected record is quarantined with its exact bytes.
///
/// It also bounds memory: the tape holds the current record only (every earlier one was taken off it), so when
/// the parser asks for more input while the tape already holds more than `max_record_bytes`, the record is too
/// long. The recorder then works out where the parser is in the record (a small replica of the parser's state
/// machine, [`Scan`]), reads the rest of the record from the file *without* keeping it or handing it over, and
/// hands the parser a synthetic end (`\n`, or `"\n` inside a quoted field) instead. [`RecordStream`] reports
/// that record as too long ([`Tape::too_long`]) and shifts the offsets and line numbers of the records after it
/// by the bytes skipped.
struct Recorder<R> {
    inner: R,
    tape: Rc<RefCell<Tape>>,
    /// Stream offset of the first byte read (the tape's offsets are relative to it).
    first_offset: u64,
    max_record_bytes: u64,
    delimiter: u8,
    quote: u8,
    is_final: bool,
}

#[derive(Default)]
struct Tape {
    /// Stream offset of `data[0]`, in the bytes handed to the parser.
    base: u64,
    data: Vec<u8>,
    /// Set when the current record was cut short (see [`Recorder`]).
    too_long: Option<TooLong>,
}

/// A record that was skipped to its end instead of being handed to the parser.
struct TooLong {
    /// Where it starts, in the bytes handed to the parser.
    start: u64,
    /// Its length in the file, terminator excluded.
    len: u64,
    /// Its first bytes.
    head: Vec<u8>,
    /// File bytes skipped (never handed over), terminator included.
    skipped: u64,
    /// Newlines among them.
    skipped_newlines: u64,
    /// Synthetic bytes handed over instead.
    synthetic: u64,
}

impl Tape {
    fn slice(&self, start: u64, end: u64) -> &[u8] {
        let s = (start.saturating_sub(self.base)) as usize;
        let e = ((end.saturating_sub(self.base)) as usize).min(self.data.len());
        &self.data[s.min(e)..e]
    }

    fn discard_before(&mut self, pos: u64) {
        let n = (pos.saturating_sub(self.base) as usize).min(self.data.len());
        self.data.drain(..n);
        self.base += n as u64;
    }
}

/// Where the CSV parser is within a record: the states of `csv_core` with the options lander uses (a quote
/// starts a quoted field only at the start of a field, `""` escapes a quote, `\r`, `\n` or `\r\n` end a record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    StartRecord,
    StartField,
    InField,
    InQuoted,
    QuoteInQuoted,
}

impl Scan {
    /// The state after `b`, and whether `b` ended the record.
    fn step(self, b: u8, delimiter: u8, quote: u8) -> (Scan, bool) {
        let eol = b == b'\n' || b == b'\r';
        match self {
            Scan::StartRecord if eol => (Scan::StartRecord, false),
            Scan::StartRecord | Scan::StartField => {
                if b == quote {
                    (Scan::InQuoted, false)
                } else if b == delimiter {
                    (Scan::StartField, false)
                } else if eol {
                    (Scan::StartRecord, true)
                } else {
                    (Scan::InField, false)
                }
            }
            Scan::InField | Scan::QuoteInQuoted => {
                if self == Scan::QuoteInQuoted && b == quote {
                    (Scan::InQuoted, false)
                } else if b == delimiter {
                    (Scan::StartField, false)
                } else if eol {
                    (Scan::StartRecord, true)
                } else {
                    (Scan::InField, false)
                }
            }
            Scan::InQuoted if b == quote => (Scan::QuoteInQuoted, false),
            Scan::InQuoted => (Scan::InQuoted, false),
        }
    }
}

impl<R: BufRead> Recorder<R> {
    /// Skips the rest of the over-long record on the tape; returns the synthetic bytes that end it for the
    /// parser, or `None` when it cannot be skipped safely (the file is then rejected whole).
    fn skip_record(&mut self, tape: &mut Tape) -> std::io::Result<Option<Vec<u8>>> {
        let mut state = Scan::StartRecord;
        for &b in &tape.data {
            let (next, ended) = state.step(b, self.delimiter, self.quote);
            if ended {
                // The parser has not ended this record, so it reads the bytes differently: do not guess.
                return Ok(None);
            }
            state = next;
        }
        let at_tape_end = state;
        let (mut skipped, mut newlines, mut terminator) = (0u64, 0u64, 0u64);
        'skim: loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let mut used = 0;
            for &b in buf {
                used += 1;
                newlines += u64::from(b == b'\n');
                let (next, ended) = state.step(b, self.delimiter, self.quote);
                state = next;
                if ended {
                    terminator = 1;
                    self.inner.consume(used);
                    skipped += used as u64;
                    break 'skim;
                }
            }
            self.inner.consume(used);
            skipped += used as u64;
        }
        if terminator == 0 && !self.is_final {
            // The record's end is not written yet: hand over nothing more; the parser ends the record at the end
            // of the stream and `RecordStream` leaves it, unconsumed, for a later read.
            tape.base += tape.data.len() as u64;
            tape.data.clear();
            return Ok(Some(Vec::new()));
        }
        let synthetic: Vec<u8> = if at_tape_end == Scan::InQuoted {
            b"\"\n".to_vec()
        } else {
            b"\n".to_vec()
        };
        let lead = tape
            .data
            .iter()
            .take_while(|b| matches!(b, b'\n' | b'\r'))
            .count();
        let head_end = (lead + super::TOO_LONG_HEAD_BYTES).min(tape.data.len());
        tape.too_long = Some(TooLong {
            start: tape.base + lead as u64,
            len: (tape.data.len() - lead) as u64 + skipped - terminator,
            head: tape.data[lead..head_end].to_vec(),
            skipped,
            skipped_newlines: newlines,
            synthetic: synthetic.len() as u64,
        });
        // Free the record: the parser has consumed every byte on the tape, and the record is reported from
        // `too_long`. The base keeps counting the bytes handed over.
        tape.base += tape.data.len() as u64;
        tape.data.clear();
        tape.data.extend_from_slice(&synthetic);
        Ok(Some(synthetic))
    }
}

impl<R: BufRead> Read for Recorder<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let tape_rc = self.tape.clone();
        let mut tape = tape_rc.borrow_mut();
        if tape.data.len() as u64 > self.max_record_bytes.saturating_add(2)
            && tape.too_long.is_none()
        {
            // Blank lines before the record are not part of it.
            let lead = tape
                .data
                .iter()
                .take_while(|b| matches!(b, b'\n' | b'\r'))
                .count();
            let base = tape.base;
            tape.discard_before(base + lead as u64);
            if tape.data.len() as u64 > self.max_record_bytes.saturating_add(2) {
                match self.skip_record(&mut tape)? {
                    Some(synthetic) => {
                        let n = synthetic.len().min(out.len());
                        out[..n].copy_from_slice(&synthetic[..n]);
                        return Ok(n);
                    }
                    None => {
                        return Err(limit_error(format!(
                            "the CSV record starting at byte {} is longer than max_record_bytes ({} bytes) and cannot be skipped safely, so the file is rejected whole",
                            self.first_offset + tape.base,
                            self.max_record_bytes
                        )))
                    }
                }
            }
        }
        let n = self.inner.read(out)?;
        tape.data.extend_from_slice(&out[..n]);
        Ok(n)
    }
}

struct RawRecord {
    fields: csv::ByteRecord,
    /// The exact bytes; only the first [`super::TOO_LONG_HEAD_BYTES`] when `too_long`.
    raw: Vec<u8>,
    /// `Some(length)` for a record over `max_record_bytes` (then `fields` is empty).
    too_long: Option<u64>,
    /// Absolute offset (file or decompressed stream).
    offset: u64,
    line: u64,
}

/// Streams records with exact raw bytes, offsets and line numbers.
struct RecordStream {
    reader: csv::Reader<Recorder<Box<dyn BufRead + Send>>>,
    tape: Rc<RefCell<Tape>>,
    base_offset: u64,
    base_line: u64,
    is_final: bool,
    path: String,
    gzip: bool,
    end_offset: u64,
    end_line: u64,
    /// End of the last consumed record, in the bytes handed to the parser.
    end_pos: u64,
    /// File bytes minus parser bytes before the current position (skipped over-long records).
    shift: i64,
    /// The same for line numbers.
    line_shift: i64,
    max_record_bytes: u64,
}

impl RecordStream {
    fn new(lines: LineSource, options: &CsvOptions, skip_bom: bool) -> Result<Self, DecodeError> {
        let path = lines.path().to_string();
        let gzip = lines.is_gzip();
        let max_record_bytes = lines.max_record_bytes();
        let (mut inner, mut offset, line, is_final) = lines.into_parts();
        if skip_bom {
            let head = inner
                .fill_buf()
                .map_err(|e| map_stream_error(gzip, &path, offset, e))?;
            if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
                inner.consume(3);
                offset += 3;
            }
        }
        let tape = Rc::new(RefCell::new(Tape::default()));
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(options.delimiter as u8)
            .quote(options.quote as u8)
            .buffer_capacity(CSV_BUFFER_BYTES)
            .from_reader(Recorder {
                inner,
                tape: tape.clone(),
                first_offset: offset,
                max_record_bytes,
                delimiter: options.delimiter as u8,
                quote: options.quote as u8,
                is_final,
            });
        Ok(Self {
            reader,
            tape,
            base_offset: offset,
            base_line: line,
            is_final,
            path,
            gzip,
            end_offset: offset,
            end_line: line,
            end_pos: 0,
            shift: 0,
            line_shift: 0,
            max_record_bytes,
        })
    }

    /// The file offset of parser position `pos`.
    fn file_offset(&self, pos: u64) -> u64 {
        (self.base_offset as i64 + pos as i64 + self.shift).max(0) as u64
    }

    fn map_err(&self, e: csv::Error) -> DecodeError {
        match e.into_kind() {
            csv::ErrorKind::Io(io) => map_stream_error(self.gzip, &self.path, self.end_offset, io),
            other => DecodeError::Read {
                path: self.path.clone(),
                source: std::io::Error::other(format!("{other:?}")),
            },
        }
    }

    fn next(&mut self) -> Result<Option<RawRecord>, DecodeError> {
        let mut fields = csv::ByteRecord::new();
        loop {
            let more = self
                .reader
                .read_byte_record(&mut fields)
                .map_err(|e| self.map_err(e))?;
            if !more {
                // At the end: bytes after the last record are consumed when they are only line terminators (the
                // `\n` of a final CRLF belongs to the record before it) or when the stream is final.
                let tape = self.tape.borrow();
                let total = tape.base + tape.data.len() as u64;
                let rest = tape.slice(self.end_pos, total);
                if self.is_final || rest.iter().all(|b| matches!(b, b'\r' | b'\n')) {
                    self.end_offset = self.file_offset(total);
                }
                return Ok(None);
            }
            let start = fields.position().map(|p| p.byte()).unwrap_or(0);
            let start_line = fields.position().map(|p| p.line()).unwrap_or(1);
            let end_pos = self.reader.position().clone();
            let end = end_pos.byte();
            let too_long = self.tape.borrow_mut().too_long.take();
            if let Some(t) = too_long {
                // Cut short by the recorder: report it from its head, then shift what follows by the bytes
                // that were skipped instead of parsed.
                let offset = self.file_offset(t.start.max(start));
                let line =
                    (self.base_line as i64 + start_line as i64 + self.line_shift).max(1) as u64;
                self.shift += t.skipped as i64 - t.synthetic as i64;
                self.line_shift += t.skipped_newlines as i64 - 1;
                self.tape.borrow_mut().discard_before(end);
                self.end_pos = end;
                self.end_offset = self.file_offset(end);
                self.end_line =
                    (self.base_line as i64 + end_pos.line() as i64 - 1 + self.line_shift) as u64;
                return Ok(Some(RawRecord {
                    fields: csv::ByteRecord::new(),
                    raw: t.head,
                    too_long: Some(t.len),
                    offset,
                    line,
                }));
            }
            // Blank lines before the record may already be off the tape (see `Recorder`).
            let start = start.max(self.tape.borrow().base);
            let mut raw = self.tape.borrow().slice(start, end).to_vec();
            let terminated = raw.last() == Some(&b'\n') || raw.last() == Some(&b'\r');
            if !terminated && !self.is_final {
                // Partial last record of a growing file: not consumed.
                return Ok(None);
            }
            self.tape.borrow_mut().discard_before(end);
            while matches!(raw.last(), Some(b'\n' | b'\r')) {
                raw.pop();
            }
            // With CRLF the parser ends a record at `\r`; the `\n` then opens the next record's span.
            let lead = raw
                .iter()
                .take_while(|b| matches!(b, b'\n' | b'\r'))
                .count();
            raw.drain(..lead);
            let start = start + lead as u64;
            self.end_pos = end;
            self.end_offset = self.file_offset(end);
            self.end_line =
                (self.base_line as i64 + end_pos.line() as i64 - 1 + self.line_shift) as u64;
            if raw.is_empty() {
                continue; // blank line
            }
            let line = (self.base_line as i64 + start_line as i64 + self.line_shift) as u64;
            // A record that fit in the parser's buffer is never cut short by the recorder: judge it here.
            let too_long = (raw.len() as u64 > self.max_record_bytes).then_some(raw.len() as u64);
            if too_long.is_some() {
                raw.truncate(super::TOO_LONG_HEAD_BYTES);
                fields.clear();
            }
            return Ok(Some(RawRecord {
                fields,
                raw,
                too_long,
                offset: self.file_offset(start),
                line,
            }));
        }
    }
}

/// Reads the header and up to `options.infer_rows` records of a first file and fixes the schema: declared
/// types win, the event-time column is a timestamp, other columns get the narrowest type every sampled value
/// fits (`int64` unless a value has a leading zero, `float64`, `bool`, `timestamp`, else `string`).
///
/// # Errors
/// [`DecodeError`] when the stream cannot be read or has no header.
pub fn infer_schema(
    lines: LineSource,
    options: &CsvOptions,
    dataset: &str,
) -> Result<StoredSchema, DecodeError> {
    let path = lines.path().to_string();
    let text = Text::from_options(options);
    let mut stream = RecordStream::new(lines, options, true)?;
    let header_err = |reason: String| DecodeError::Header {
        path: path.clone(),
        dataset: dataset.to_string(),
        reason,
    };
    let header: Vec<String> = if options.has_header {
        let rec = stream
            .next()?
            .ok_or_else(|| header_err("the file is empty (no header)".into()))?;
        if let Some(len) = rec.too_long {
            return Err(header_err(format!(
                "the header is {len} bytes, over max_record_bytes"
            )));
        }
        rec.fields
            .iter()
            .map(|f| text.decode(f).map(|s| s.trim().to_string()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                header_err("header is not valid text in the configured encoding".into())
            })?
    } else {
        Vec::new()
    };
    let mut samples: Vec<Vec<String>> = Vec::new();
    while samples.len() < options.infer_rows {
        match stream.next()? {
            None => break,
            Some(r) if r.too_long.is_some() => {}
            Some(r) => samples.push(
                r.fields
                    .iter()
                    .map(|f| text.decode(f).unwrap_or_default().into_owned())
                    .collect(),
            ),
        }
    }
    let header = if options.has_header {
        header
    } else {
        let n = samples.first().map(|r| r.len()).unwrap_or(0);
        (1..=n).map(|i| format!("c{i}")).collect()
    };
    if !header.contains(&options.event_time) {
        return Err(header_err(format!(
            "event_time column {:?} is not in the header {header:?}",
            options.event_time
        )));
    }
    for k in &options.key {
        if !header.contains(k) {
            return Err(header_err(format!(
                "key column {k:?} is not in the header {header:?}"
            )));
        }
    }
    let zone = parse_timezone(&options.timezone).map_err(header_err)?;
    let mut used = std::collections::HashSet::new();
    let mut columns = Vec::with_capacity(header.len());
    for (i, h) in header.iter().enumerate() {
        let ty = if *h == options.event_time {
            ColumnType::Timestamp
        } else if let Some(t) = options.columns.get(h) {
            ColumnType::parse(t).map_err(header_err)?
        } else {
            infer_type(
                samples.iter().filter_map(|r| r.get(i)).map(|s| s.trim()),
                options,
                zone,
            )
        };
        let mut name = if options.normalize_names {
            normalize_name(h)
        } else {
            h.clone()
        };
        if name.is_empty() {
            name = format!("c{}", i + 1);
        }
        let mut unique = name.clone();
        let mut n = 2;
        while !used.insert(unique.clone()) {
            unique = format!("{name}_{n}");
            n += 1;
        }
        columns.push(StoredColumn {
            source: h.clone(),
            name: unique,
            ty: ty.name(),
        });
    }
    Ok(StoredSchema { columns })
}

fn infer_type<'a>(
    values: impl Iterator<Item = &'a str> + Clone,
    options: &CsvOptions,
    zone: Zone,
) -> ColumnType {
    let non_empty = values.filter(|v| !v.is_empty());
    if non_empty.clone().next().is_none() {
        return ColumnType::String;
    }
    let leading_zero = |v: &str| {
        let d = v.trim_start_matches(['-', '+']);
        d.len() > 1 && d.starts_with('0') && !d.starts_with("0.")
    };
    if non_empty
        .clone()
        .all(|v| v.parse::<i64>().is_ok() && !leading_zero(v))
    {
        return ColumnType::Int64;
    }
    let numeric = |v: &str| {
        v.bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
            && v.parse::<f64>().is_ok()
    };
    if non_empty.clone().all(|v| numeric(v) && !leading_zero(v)) {
        return ColumnType::Float64;
    }
    if non_empty.clone().all(|v| parse_bool(v).is_some()) {
        return ColumnType::Bool;
    }
    if non_empty
        .clone()
        .all(|v| parse_timestamp(v, &options.timestamp_formats, zone).is_some())
    {
        return ColumnType::Timestamp;
    }
    ColumnType::String
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "t" => Some(true),
        "false" | "no" | "n" | "f" => Some(false),
        _ => None,
    }
}

enum Builder {
    Str(StringBuilder),
    I64(Int64Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
    Date(Date32Builder),
    Dec(Decimal128Builder),
}

enum Value<'a> {
    Null,
    Str(Cow<'a, str>),
    I64(i64),
    F64(f64),
    Bool(bool),
    Ts(i64),
    Date(i32),
    Dec(i128),
}

/// A CSV decoder for one dataset with its fixed schema.
#[derive(Debug)]
pub struct CsvDecoder {
    dataset: String,
    options: CsvOptions,
    columns: Vec<(StoredColumn, ColumnType)>,
    schema: SchemaRef,
    time_index: usize,
    key_indices: Vec<usize>,
    zone: Zone,
}

impl CsvDecoder {
    /// Builds the decoder from the fixed schema.
    ///
    /// # Errors
    /// [`DecodeError::Header`] when the stored schema is inconsistent with the options.
    pub fn new(
        dataset: &str,
        options: &CsvOptions,
        stored: &StoredSchema,
    ) -> Result<Self, DecodeError> {
        let err = |reason: String| DecodeError::Header {
            path: "(schema)".into(),
            dataset: dataset.to_string(),
            reason,
        };
        let mut columns = Vec::new();
        let mut fields = Vec::new();
        for c in &stored.columns {
            let ty = ColumnType::parse(&c.ty).map_err(err)?;
            fields.push(Field::new(&c.name, ty.data_type(), true));
            columns.push((c.clone(), ty));
        }
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        fields.push(Field::new("_source_file", DataType::Utf8, false));
        fields.push(Field::new("_source_line", DataType::Int64, false));
        fields.push(Field::new("_source_offset", DataType::Int64, false));
        fields.push(Field::new("_ingested_at", ts, false));
        let find = |name: &str| columns.iter().position(|(c, _)| c.source == name);
        let time_index = find(&options.event_time).ok_or_else(|| {
            err(format!(
                "event_time column {:?} is not in the schema",
                options.event_time
            ))
        })?;
        let key_indices = options
            .key
            .iter()
            .map(|k| find(k).ok_or_else(|| err(format!("key column {k:?} is not in the schema"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            dataset: dataset.to_string(),
            options: options.clone(),
            columns,
            schema: Arc::new(Schema::new(fields)),
            time_index,
            key_indices,
            zone: parse_timezone(&options.timezone).map_err(err)?,
        })
    }

    /// The bronze schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn builders(&self) -> Vec<Builder> {
        self.columns
            .iter()
            .map(|(_, t)| match t {
                ColumnType::String => {
                    Builder::Str(StringBuilder::with_capacity(CHUNK_ROWS, CHUNK_ROWS * 16))
                }
                ColumnType::Int64 => Builder::I64(Int64Builder::with_capacity(CHUNK_ROWS)),
                ColumnType::Float64 => Builder::F64(Float64Builder::with_capacity(CHUNK_ROWS)),
                ColumnType::Bool => Builder::Bool(BooleanBuilder::with_capacity(CHUNK_ROWS)),
                ColumnType::Timestamp => Builder::Ts(
                    TimestampMicrosecondBuilder::with_capacity(CHUNK_ROWS).with_timezone("UTC"),
                ),
                ColumnType::Date => Builder::Date(Date32Builder::with_capacity(CHUNK_ROWS)),
                ColumnType::Decimal(p, s) => Builder::Dec(
                    Decimal128Builder::with_capacity(CHUNK_ROWS)
                        .with_precision_and_scale(*p, *s)
                        .expect("precision and scale were validated when parsing the type"),
                ),
            })
            .collect()
    }

    fn parse_value<'a>(&self, ty: ColumnType, s: Cow<'a, str>) -> Result<Value<'a>, String> {
        let t = s.trim();
        if t.is_empty() {
            return Ok(match ty {
                ColumnType::String => Value::Str(s),
                _ => Value::Null,
            });
        }
        let bad = |what: &str| format!("invalid {what} {t:?}");
        Ok(match ty {
            ColumnType::String => Value::Str(s),
            ColumnType::Int64 => Value::I64(t.parse().map_err(|_| bad("int64"))?),
            ColumnType::Float64 => Value::F64(t.parse().map_err(|_| bad("float64"))?),
            ColumnType::Bool => Value::Bool(parse_bool(t).ok_or_else(|| bad("bool"))?),
            ColumnType::Timestamp => Value::Ts(
                parse_timestamp(t, &self.options.timestamp_formats, self.zone)
                    .ok_or_else(|| bad("timestamp"))?,
            ),
            ColumnType::Date => Value::Date(
                parse_date(t, &self.options.timestamp_formats).ok_or_else(|| bad("date"))?,
            ),
            ColumnType::Decimal(p, sc) => Value::Dec(
                parse_decimal::<Decimal128Type>(t, p, sc)
                    .map_err(|_| bad(&format!("decimal({p},{sc})")))?,
            ),
        })
    }

    /// Decodes the CSV stream; see the module docs for what is quarantined.
    ///
    /// # Errors
    /// File-level failures only (see [`DecodeError`]).
    pub fn decode(
        &self,
        lines: LineSource,
        input: &DecodeInput,
        emit: &mut dyn FnMut(DecodeItem) -> bool,
    ) -> Result<DecodeEnd, DecodeError> {
        let text = Text::from_options(&self.options);
        let at_start = input.gzip || input.start_offset == 0;
        let mut lines = lines;
        let mut bad = Vec::new();
        if lines.continues_line() {
            let mut buf = Vec::new();
            if let Some(at) = lines.next_line(&mut buf)? {
                if !buf.is_empty() {
                    bad.push(QuarantineRecord {
                        source_file: input.path.clone(),
                        line: at.line,
                        offset: at.offset,
                        reason: super::continuation_reason(at.line),
                        raw: buf,
                    });
                }
            }
        }
        let mut stream = RecordStream::new(lines, &self.options, at_start)?;
        let header_err = |reason: String| DecodeError::Header {
            path: input.path.clone(),
            dataset: self.dataset.clone(),
            reason,
        };
        // mapping[i] = field index in this file of schema column i.
        let mapping: Vec<usize> = if at_start && self.options.has_header {
            let Some(rec) = stream.next()? else {
                return Ok(DecodeEnd {
                    end_offset: stream.end_offset,
                    end_line: stream.end_line,
                });
            };
            if let Some(len) = rec.too_long {
                return Err(header_err(format!(
                    "the header is {len} bytes, over max_record_bytes"
                )));
            }
            let header: Vec<String> = rec
                .fields
                .iter()
                .map(|f| text.decode(f).map(|s| s.trim().to_string()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    header_err("header is not valid text in the configured encoding".into())
                })?;
            let mut mapping = Vec::with_capacity(self.columns.len());
            for (c, _) in &self.columns {
                let i = header.iter().position(|h| *h == c.source).ok_or_else(|| {
                    header_err(format!(
                        "column {:?} is missing from the header {header:?}",
                        c.source
                    ))
                })?;
                mapping.push(i);
            }
            if let Some(extra) = header
                .iter()
                .find(|h| !self.columns.iter().any(|(c, _)| c.source == **h))
            {
                return Err(header_err(format!(
                    "unexpected column {extra:?} (the dataset's schema is fixed; declare a new dataset or reset it)"
                )));
            }
            mapping
        } else {
            (0..self.columns.len()).collect()
        };
        let ncols = self.columns.len();
        let mut builders = self.builders();
        let mut meta_file = StringBuilder::with_capacity(CHUNK_ROWS, CHUNK_ROWS * 32);
        let mut meta_line = Int64Builder::with_capacity(CHUNK_ROWS);
        let mut meta_offset = Int64Builder::with_capacity(CHUNK_ROWS);
        let mut meta_ingested =
            TimestampMicrosecondBuilder::with_capacity(CHUNK_ROWS).with_timezone("UTC");
        let mut keys: Vec<u128> = Vec::with_capacity(CHUNK_ROWS);
        let mut values: Vec<Value<'_>> = Vec::with_capacity(ncols);
        let mut key_buf = Vec::new();
        let cancelled = || DecodeError::Cancelled {
            path: input.path.clone(),
        };
        while let Some(rec) = stream.next()? {
            values.clear();
            let result: Result<(), String> = (|| {
                if let Some(len) = rec.too_long {
                    return Err(super::too_long_reason(
                        len,
                        input.limits.max_record_bytes,
                        rec.raw.len(),
                    ));
                }
                if rec.fields.len() != ncols {
                    let found = rec.fields.len();
                    let lines = rec.raw.iter().filter(|b| **b == b'\n').count() + 1;
                    let hint = if lines > 1 {
                        format!("; the record spans {lines} lines: probably an unbalanced quote")
                    } else {
                        String::new()
                    };
                    return Err(format!(
                        "expected {ncols} fields, found {found} (too {}){hint}",
                        if found < ncols { "few" } else { "many" }
                    ));
                }
                for (i, (c, ty)) in self.columns.iter().enumerate() {
                    let raw = &rec.fields[mapping[i]];
                    let s = text
                        .decode(raw)
                        .ok_or_else(|| format!("column {:?}: invalid {}", c.source, "UTF-8"))?;
                    let v = self
                        .parse_value(*ty, Cow::Owned(s.into_owned()))
                        .map_err(|e| format!("column {:?}: {e}", c.source))?;
                    values.push(v);
                }
                match values[self.time_index] {
                    Value::Null => {
                        return Err(format!(
                            "missing event time in column {:?}",
                            self.options.event_time
                        ))
                    }
                    Value::Ts(t) => input.limits.check_event_time(
                        t,
                        input.ingested_at,
                        &format!("event time {:?}", self.options.event_time),
                    )?,
                    _ => {}
                }
                key_buf.clear();
                if self.key_indices.is_empty() {
                    key_buf.extend_from_slice(&rec.raw);
                } else {
                    for &k in &self.key_indices {
                        let f = rec.fields[mapping[k]].trim_ascii();
                        if f.is_empty() {
                            return Err(format!(
                                "missing key column {:?}",
                                self.columns[k].0.source
                            ));
                        }
                        key_buf.extend_from_slice(f);
                        key_buf.push(0x1f);
                    }
                }
                Ok(())
            })();
            if let Err(reason) = result {
                bad.push(QuarantineRecord {
                    source_file: input.path.clone(),
                    line: rec.line,
                    offset: rec.offset,
                    reason,
                    raw: rec.raw,
                });
                if super::quarantine_full(&bad)
                    && !emit(DecodeItem::Quarantine(std::mem::take(&mut bad)))
                {
                    return Err(cancelled());
                }
                continue;
            }
            for (b, v) in builders.iter_mut().zip(values.drain(..)) {
                match (b, v) {
                    (Builder::Str(b), Value::Str(s)) => b.append_value(s),
                    (Builder::I64(b), Value::I64(x)) => b.append_value(x),
                    (Builder::F64(b), Value::F64(x)) => b.append_value(x),
                    (Builder::Bool(b), Value::Bool(x)) => b.append_value(x),
                    (Builder::Ts(b), Value::Ts(x)) => b.append_value(x),
                    (Builder::Date(b), Value::Date(x)) => b.append_value(x),
                    (Builder::Dec(b), Value::Dec(x)) => b.append_value(x),
                    (Builder::Str(b), _) => b.append_null(),
                    (Builder::I64(b), _) => b.append_null(),
                    (Builder::F64(b), _) => b.append_null(),
                    (Builder::Bool(b), _) => b.append_null(),
                    (Builder::Ts(b), _) => b.append_null(),
                    (Builder::Date(b), _) => b.append_null(),
                    (Builder::Dec(b), _) => b.append_null(),
                }
            }
            meta_file.append_value(&input.path);
            meta_line.append_value(rec.line as i64);
            meta_offset.append_value(rec.offset as i64);
            meta_ingested.append_value(input.ingested_at);
            keys.push(key_hash(b"csv", &key_buf));
            if keys.len() >= CHUNK_ROWS {
                let d = self.finish(
                    &mut builders,
                    &mut meta_file,
                    &mut meta_line,
                    &mut meta_offset,
                    &mut meta_ingested,
                    &mut keys,
                );
                if !emit(DecodeItem::Rows(d)) {
                    return Err(cancelled());
                }
            }
        }
        if !keys.is_empty() {
            let d = self.finish(
                &mut builders,
                &mut meta_file,
                &mut meta_line,
                &mut meta_offset,
                &mut meta_ingested,
                &mut keys,
            );
            if !emit(DecodeItem::Rows(d)) {
                return Err(cancelled());
            }
        }
        if !bad.is_empty() && !emit(DecodeItem::Quarantine(bad)) {
            return Err(cancelled());
        }
        Ok(DecodeEnd {
            end_offset: stream.end_offset,
            end_line: stream.end_line,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        builders: &mut [Builder],
        file: &mut StringBuilder,
        line: &mut Int64Builder,
        offset: &mut Int64Builder,
        ingested: &mut TimestampMicrosecondBuilder,
        keys: &mut Vec<u128>,
    ) -> Decoded {
        let mut cols: Vec<ArrayRef> = builders
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::Str(b) => Arc::new(b.finish()),
                    Builder::I64(b) => Arc::new(b.finish()),
                    Builder::F64(b) => Arc::new(b.finish()),
                    Builder::Bool(b) => Arc::new(b.finish()),
                    Builder::Ts(b) => Arc::new(b.finish()),
                    Builder::Date(b) => Arc::new(b.finish()),
                    Builder::Dec(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        cols.push(Arc::new(file.finish()));
        cols.push(Arc::new(line.finish()));
        cols.push(Arc::new(offset.finish()));
        cols.push(Arc::new(ingested.finish()));
        let batch =
            RecordBatch::try_new(self.schema.clone(), cols).expect("builders match the csv schema");
        Decoded {
            batch,
            keys: std::mem::take(keys),
            time_column: self.time_index,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    fn input(path: &str) -> DecodeInput {
        DecodeInput {
            path: path.into(),
            start_offset: 0,
            start_line: 0,
            gzip: false,
            is_final: true,
            ingested_at: 1_700_000_000_000_000,
            file_bytes: 0,
            limits: crate::decode::Limits::default(),
            continues_line: false,
        }
    }

    fn run(
        data: &[u8],
        opts: &CsvOptions,
        is_final: bool,
    ) -> (Vec<Decoded>, Vec<QuarantineRecord>, DecodeEnd) {
        let mut inp = input("ds/a.csv");
        inp.is_final = is_final;
        run_with(data, opts, &inp)
    }

    /// Infers the schema of `data`, then decodes it with `inp`: rows, quarantined records and where it stopped.
    fn run_with(
        data: &[u8],
        opts: &CsvOptions,
        inp: &DecodeInput,
    ) -> (Vec<Decoded>, Vec<QuarantineRecord>, DecodeEnd) {
        let inp = inp.clone();
        let schema = infer_schema(
            LineSource::new(Box::new(std::io::Cursor::new(data.to_vec())), &inp).expect("src"),
            opts,
            "ds",
        )
        .expect("infer");
        let dec = CsvDecoder::new("ds", opts, &schema).expect("decoder");
        let mut rows = Vec::new();
        let mut bad = Vec::new();
        let end = dec
            .decode(
                LineSource::new(Box::new(std::io::Cursor::new(data.to_vec())), &inp).expect("src"),
                &inp,
                &mut |item| {
                    match item {
                        DecodeItem::Rows(d) => rows.push(d),
                        DecodeItem::Quarantine(q) => bad.extend(q),
                    }
                    true
                },
            )
            .expect("decode");
        (rows, bad, end)
    }

    fn opts() -> CsvOptions {
        CsvOptions {
            key: vec!["Row ID".into()],
            event_time: "Order Date".into(),
            timestamp_formats: vec!["%m/%d/%Y".into()],
            ..CsvOptions::default()
        }
    }

    #[test]
    fn bom_crlf_quoted_commas_and_us_dates() {
        let data = b"\xEF\xBB\xBFRow ID,Order Date,Name,Postal Code,Sales\r\n1,11/8/2018,\"Smith, Jo\",04101,2.5\r\n2,1/2/2019,Ann,90036,3\r\n";
        let (rows, bad, end) = run(data, &opts(), true);
        assert!(bad.is_empty(), "{bad:?}");
        let b = &rows[0].batch;
        assert_eq!(b.num_rows(), 2);
        let names: Vec<_> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            &names[..5],
            &["row_id", "order_date", "name", "postal_code", "sales"]
        );
        assert_eq!(b.column(2).as_string::<i32>().value(0), "Smith, Jo");
        // Leading zero keeps postal codes as text.
        assert_eq!(b.column(3).data_type(), &DataType::Utf8);
        assert_eq!(b.column(4).data_type(), &DataType::Float64);
        let t = b
            .column(1)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(
            t.value(0),
            parse_timestamp(
                "2018-11-08 00:00:00",
                &["%Y-%m-%d %H:%M:%S".into()],
                Zone::Utc
            )
            .expect("t")
        );
        // Offsets point past the BOM; the header is line 1.
        let off = b
            .column(b.num_columns() - 2)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(off.value(0), 3 + 42);
        assert_eq!(end.end_offset, data.len() as u64);
    }

    #[test]
    fn bad_rows_are_quarantined_with_raw_bytes() {
        let data = b"Row ID,Order Date,Qty\n1,1/1/2020,5\n2,notadate,6\n3,1/3/2020\n,1/4/2020,7\n4,1/5/2020,8\n";
        let mut o = opts();
        o.columns.insert("Qty".into(), "int64".into());
        let (rows, bad, _) = run(data, &o, true);
        assert_eq!(rows.iter().map(|d| d.batch.num_rows()).sum::<usize>(), 2);
        assert_eq!(bad.len(), 3);
        assert_eq!(bad[0].raw, b"2,notadate,6");
        assert_eq!(bad[0].line, 3);
        assert!(bad[0].reason.contains("timestamp"), "{}", bad[0].reason);
        assert!(bad[1].reason.contains("expected 3 fields"));
        assert!(bad[2].reason.contains("missing key"));
    }

    #[test]
    fn partial_last_line_waits_unless_final() {
        let data = b"Row ID,Order Date\n1,1/1/2020\n2,1/2/20";
        let (rows, _, end) = run(data, &opts(), false);
        assert_eq!(rows[0].batch.num_rows(), 1);
        assert_eq!(end.end_offset, 29);
        let (rows, bad, end) = run(data, &opts(), true);
        assert_eq!(rows[0].batch.num_rows(), 1);
        // Final: the cut line is a record; `1/2/20` is year 20 AD, which the event-time floor rejects.
        assert_eq!(bad.len(), 1);
        assert!(
            bad[0]
                .reason
                .contains("before the earliest accepted event time"),
            "{}",
            bad[0].reason
        );
        assert_eq!(end.end_offset, data.len() as u64);
    }

    #[test]
    fn over_long_records_are_skipped_and_the_rest_keeps_its_offsets() {
        let mut data = b"Row ID,Order Date,Note\n1,1/1/2020,short\n2,1/2/2020,\"".to_vec();
        let long_start = data.len() - 12;
        // A quoted field with newlines and escaped quotes, far over the limit.
        // Longer than the parser's 256 KiB buffer, so the recorder has to skip it.
        for i in 0..20000 {
            data.extend(format!("line {i} with a \"\"quote\"\", and a comma\n").as_bytes());
        }
        data.extend(b"end\"\r\n3,1/3/2020,after\n\n4,1/4/2020,unquoted");
        let long_end = data.windows(5).position(|w| w == b"end\"\r").expect("end") + 4;
        for _ in 0..3000 {
            data.extend(b" long");
        }
        data.extend(b"\n5,1/5/2020,last\n");
        let mut inp = input("ds/a.csv");
        inp.limits.max_record_bytes = 1000;
        let (rows, bad, end) = run_with(&data, &opts(), &inp);
        assert_eq!(end.end_offset, data.len() as u64);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert_eq!(bad[0].offset, long_start as u64);
        assert_eq!(bad[0].line, 3);
        assert_eq!(
            bad[1].reason,
            super::super::too_long_reason(15019, 1000, 4096)
        );
        assert!(
            bad[0]
                .reason
                .contains(&format!("record is {} bytes", long_end - long_start)),
            "{} (want {})",
            bad[0].reason,
            long_end - long_start
        );
        assert_eq!(&bad[0].raw[..16], b"2,1/2/2020,\"line");
        assert_eq!(bad[0].raw.len(), 4096);
        // Line numbers are the CSV parser's own (as for any record after a multi-line quoted field), the same
        // with or without the skip: the skipped record does not shift them.
        assert_eq!(bad[1].line, 20005);
        let b = &rows[0].batch;
        assert_eq!(b.num_rows(), 3);
        let note = b.column(2).as_string::<i32>();
        assert_eq!(
            (0..3).map(|i| note.value(i)).collect::<Vec<_>>(),
            vec!["short", "after", "last"]
        );
        let lines = b
            .column(b.num_columns() - 3)
            .as_primitive::<arrow::datatypes::Int64Type>();
        let offsets = b
            .column(b.num_columns() - 2)
            .as_primitive::<arrow::datatypes::Int64Type>();
        let after = data.windows(5).position(|w| w == b"3,1/3").expect("row 3");
        let last = data.windows(5).position(|w| w == b"5,1/5").expect("row 5");
        assert_eq!(offsets.value(1), after as i64);
        assert_eq!(offsets.value(2), last as i64);
        assert_eq!(lines.value(1), 20003);
        assert_eq!(lines.value(2), 20007);
        assert_eq!(bad[1].offset, (after + 18) as u64);
    }

    #[test]
    fn latin1_fields_decode() {
        let data = b"id;when;city\n1;2020-01-01 10:00:00;M\xe1laga\n";
        let o = CsvOptions {
            delimiter: ';',
            encoding: "latin-1".into(),
            key: vec!["id".into()],
            event_time: "when".into(),
            ..CsvOptions::default()
        };
        let (rows, bad, _) = run(data, &o, true);
        assert!(bad.is_empty());
        assert_eq!(
            rows[0].batch.column(2).as_string::<i32>().value(0),
            "Málaga"
        );
        assert!(rows[0].batch.column(0).is_valid(0));
    }

    #[test]
    fn types_and_zones_parse() {
        assert_eq!(
            ColumnType::parse("decimal(12,2)"),
            Ok(ColumnType::Decimal(12, 2))
        );
        assert!(ColumnType::parse("decimal(40,2)").is_err());
        assert!(parse_timezone("Europe/Madrid").is_ok());
        assert!(parse_timezone("+02:00").is_ok());
        assert!(parse_timezone("Mars/Olympus").is_err());
        let f = vec!["%Y-%m-%d %H:%M:%S".to_string()];
        let madrid = parse_timezone("Europe/Madrid").expect("tz");
        assert_eq!(
            parse_timestamp("2020-01-01 01:00:00", &f, madrid),
            parse_timestamp("2020-01-01 00:00:00", &f, Zone::Utc)
        );
        assert_eq!(normalize_name(" Sub-Category "), "sub_category");
    }
}
