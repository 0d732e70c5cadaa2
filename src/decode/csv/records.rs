//! Reading CSV records with their exact bytes, offsets and line numbers, in a bounded amount of memory.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::{BufRead, Read};
use std::rc::Rc;

use super::CsvOptions;
use crate::decode::{limit_error, map_stream_error, DecodeError, LineSource, TOO_LONG_HEAD_BYTES};

pub(super) enum Text {
    Utf8,
    Windows1252,
}

impl Text {
    pub(super) fn from_options(o: &CsvOptions) -> Self {
        match o.encoding.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Text::Utf8,
            _ => Text::Windows1252,
        }
    }

    pub(super) fn decode<'a>(&self, b: &'a [u8]) -> Option<Cow<'a, str>> {
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
            Scan::InQuoted if b == quote => (Scan::QuoteInQuoted, false),
            Scan::InQuoted => (Scan::InQuoted, false),
            // A quote opens a quoted field at the start of a field; right after a closing quote it is the
            // second half of an escaped `""`.
            Scan::StartRecord | Scan::StartField | Scan::QuoteInQuoted if b == quote => {
                (Scan::InQuoted, false)
            }
            // Anywhere else outside quotes a quote is an ordinary byte of the field.
            _ if b == delimiter => (Scan::StartField, false),
            _ if eol => (Scan::StartRecord, true),
            _ => (Scan::InField, false),
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
        let head_end = (lead + TOO_LONG_HEAD_BYTES).min(tape.data.len());
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

pub(super) struct RawRecord {
    pub(super) fields: csv::ByteRecord,
    /// The exact bytes; only the first [`TOO_LONG_HEAD_BYTES`] when `too_long`.
    pub(super) raw: Vec<u8>,
    /// `Some(length)` for a record over `max_record_bytes` (then `fields` is empty).
    pub(super) too_long: Option<u64>,
    /// Absolute offset (file or decompressed stream).
    pub(super) offset: u64,
    pub(super) line: u64,
}

/// Streams records with exact raw bytes, offsets and line numbers.
pub(super) struct RecordStream {
    reader: csv::Reader<Recorder<Box<dyn BufRead + Send>>>,
    tape: Rc<RefCell<Tape>>,
    base_offset: u64,
    base_line: u64,
    is_final: bool,
    path: String,
    gzip: bool,
    pub(super) end_offset: u64,
    pub(super) end_line: u64,
    /// End of the last consumed record, in the bytes handed to the parser.
    end_pos: u64,
    /// File bytes minus parser bytes before the current position (skipped over-long records).
    shift: i64,
    /// The same for line numbers.
    line_shift: i64,
    max_record_bytes: u64,
}

impl RecordStream {
    pub(super) fn new(
        lines: LineSource,
        options: &CsvOptions,
        skip_bom: bool,
    ) -> Result<Self, DecodeError> {
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

    pub(super) fn next(&mut self) -> Result<Option<RawRecord>, DecodeError> {
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
                raw.truncate(TOO_LONG_HEAD_BYTES);
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
