//! Reading CSV records with their exact bytes, offsets and line numbers, in a bounded amount of memory, and
//! resynchronising after an unbalanced quote.
//!
//! A quoted field may span lines, so one stray quote at the start of a field would otherwise turn the rest of the
//! file into one record. As tolerant CSV readers do, [`RecordStream`] judges a record whose quoted field runs
//! past the end of its line once the field count is known ([`RecordStream::expect_fields`]): when the record it
//! makes is malformed (another field count than the header, more than `max_record_bytes`, or more than
//! `max_quoted_lines` lines), only the line where it started is returned (an *unbalanced* record, with its exact
//! bytes), and parsing starts again at the next line. Well-formed multi-line records within both limits are
//! read as before. Memory stays bounded: the parser never holds more than the current record plus its read-ahead,
//! and a record is judged as soon as it crosses either limit.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::{BufRead, Read};
use std::rc::Rc;

use super::CsvOptions;
use crate::decode::{
    limit_error, map_stream_error, DecodeError, LineSource, QuoteRunaway, TOO_LONG_HEAD_BYTES,
};

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

/// Bytes handed back to the reader after a resynchronisation (the read-ahead after the quarantined line),
/// served before the rest of the stream.
struct Replay<R> {
    pending: Vec<u8>,
    pos: usize,
    inner: R,
}

impl<R> Replay<R> {
    /// Puts `bytes` in front of what is still to be read.
    fn push_front(&mut self, bytes: &[u8]) {
        let mut next = Vec::with_capacity(bytes.len() + self.pending.len() - self.pos);
        next.extend_from_slice(bytes);
        next.extend_from_slice(&self.pending[self.pos..]);
        self.pending = next;
        self.pos = 0;
    }
}

impl<R: BufRead> Read for Replay<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos < self.pending.len() {
            let n = out.len().min(self.pending.len() - self.pos);
            out[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
            self.consume(n);
            return Ok(n);
        }
        self.inner.read(out)
    }
}

impl<R: BufRead> BufRead for Replay<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.pos < self.pending.len() {
            return Ok(&self.pending[self.pos..]);
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        if self.pos < self.pending.len() {
            self.pos += n;
            if self.pos >= self.pending.len() {
                self.pending = Vec::new();
                self.pos = 0;
            }
        } else {
            self.inner.consume(n);
        }
    }
}

/// Records every byte the CSV parser reads, so that a rejected record is quarantined with its exact bytes.
///
/// It also bounds memory: the tape holds the current record only (every earlier one was taken off it), so when
/// the parser asks for more input while the tape already holds more than `max_record_bytes`, the record is too
/// long. When it already spans lines (a quoted field ran past its line), the recorder ends the stream for the
/// parser ([`Tape::runaway`]) and [`RecordStream`] resynchronises at the next line. Otherwise it works out where
/// the parser is in the record (a small replica of the parser's state machine, [`Scan`]), reads the rest of the
/// record (or of its line, when a quoted field reaches the line's end) from the file *without* keeping it or
/// handing it over, and hands the parser a synthetic end (`\n`, or `"\n` inside a quoted field) instead.
/// [`RecordStream`] reports that record as too long ([`Tape::too_long`]) and shifts the offsets and line numbers
/// of the records after it by the bytes skipped. A record still open after `max_quoted_lines` line ends is cut
/// back to its first line the same way as one that spans lines and is too long.
struct Recorder<R> {
    inner: Replay<R>,
    tape: Rc<RefCell<Tape>>,
    /// Stream offset of the first byte read (the tape's offsets are relative to it).
    first_offset: u64,
    max_record_bytes: u64,
    /// `max_quoted_lines` (at least 1).
    max_quoted_lines: u64,
    /// Whether runaway quoted fields are cut back to their first line: set once the field count is known, so
    /// that a header is read (or rejected) whole.
    resync: bool,
    delimiter: u8,
    quote: u8,
    is_final: bool,
}

impl<R> std::io::Seek for Recorder<R> {
    /// Only [`RecordStream::resync`] seeks, to make the parser drop its state and read-ahead: the bytes to read
    /// next were already put in front of the stream ([`Replay::push_front`]), so there is nothing to move.
    fn seek(&mut self, _: std::io::SeekFrom) -> std::io::Result<u64> {
        Ok(0)
    }
}

#[derive(Default)]
struct Tape {
    /// Stream offset of `data[0]`, in the bytes handed to the parser.
    base: u64,
    data: Vec<u8>,
    /// `\n` bytes in `data`.
    newlines: u64,
    /// Set when the current record was cut short (see [`Recorder`]).
    too_long: Option<TooLong>,
    /// `\n` bytes of blank lines dropped before the current record (see [`Tape::discard_lead`]): the parser
    /// counted them after the record's position, so its line number does not include them.
    dropped_newlines: u64,
    /// Set when the recorder ended the stream for the parser because the current record's quoted field ran
    /// past its line and over a limit: the record is to be cut back to its first line.
    runaway: Option<QuoteRunaway>,
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

fn count_newlines(b: &[u8]) -> u64 {
    b.iter().filter(|c| **c == b'\n').count() as u64
}

/// How the quoting of record `raw` (terminator excluded) is broken, if it is: a quoted field closed by a quote
/// followed by more text of the field (`"a"b`, which no writer produces but a second stray quote does), or one
/// never closed at all (the stream ended inside it).
fn quote_fault(raw: &[u8], delimiter: u8, quote: u8, lines: u64) -> Option<QuoteRunaway> {
    let mut state = Scan::StartRecord;
    for &b in raw {
        if state == Scan::QuoteInQuoted && b != quote && b != delimiter && b != b'\n' && b != b'\r'
        {
            return Some(QuoteRunaway::ClosedMidField { lines });
        }
        state = state.step(b, delimiter, quote).0;
    }
    (state == Scan::InQuoted).then_some(QuoteRunaway::Unclosed { lines })
}

/// Bytes of line terminators at the start of `b` (blank lines, or the `\n` of a CRLF that ended the record
/// before): they are not part of the record that follows.
fn lead(b: &[u8]) -> usize {
    b.iter().take_while(|c| matches!(c, b'\n' | b'\r')).count()
}

impl Tape {
    fn slice(&self, start: u64, end: u64) -> &[u8] {
        let s = (start.saturating_sub(self.base)) as usize;
        let e = ((end.saturating_sub(self.base)) as usize).min(self.data.len());
        &self.data[s.min(e)..e]
    }

    fn push(&mut self, b: &[u8]) {
        self.data.extend_from_slice(b);
        self.newlines += count_newlines(b);
    }

    fn discard_before(&mut self, pos: u64) {
        let n = (pos.saturating_sub(self.base) as usize).min(self.data.len());
        self.newlines -= count_newlines(&self.data[..n]);
        self.data.drain(..n);
        self.base += n as u64;
    }

    /// Drops every byte on the tape (the parser consumed them), keeping the count of bytes handed over.
    fn clear(&mut self) {
        self.base += self.data.len() as u64;
        self.data.clear();
        self.newlines = 0;
    }

    /// Drops the blank lines before the current record.
    fn discard_lead(&mut self) {
        let n = lead(&self.data);
        self.dropped_newlines += count_newlines(&self.data[..n]);
        let at = self.base + n as u64;
        self.discard_before(at);
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
                // A quoted field that runs past the end of this over-long line: the line is the record, and
                // reading resumes at the next line.
                let runaway = self.resync && state == Scan::InQuoted && matches!(b, b'\n' | b'\r');
                let (next, ended) = state.step(b, self.delimiter, self.quote);
                state = next;
                if ended || runaway {
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
            tape.clear();
            return Ok(Some(Vec::new()));
        }
        let synthetic: Vec<u8> = if at_tape_end == Scan::InQuoted {
            b"\"\n".to_vec()
        } else {
            b"\n".to_vec()
        };
        let lead = lead(&tape.data);
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
        tape.clear();
        tape.push(&synthetic);
        Ok(Some(synthetic))
    }

    /// Whether the record on the tape must be cut back to its first line (see [`Recorder`]), and why.
    fn runaway(&self, tape: &Tape) -> Option<QuoteRunaway> {
        if !self.resync || tape.newlines == 0 {
            return None;
        }
        // The parser asks for more, so the record on the tape is not finished: each newline in it is inside a
        // quoted field.
        if tape.newlines >= self.max_quoted_lines {
            return Some(QuoteRunaway::Lines {
                max: self.max_quoted_lines,
            });
        }
        (tape.data.len() as u64 > self.max_record_bytes.saturating_add(2)).then_some(
            QuoteRunaway::Bytes {
                max: self.max_record_bytes,
            },
        )
    }
}

impl<R: BufRead> Read for Recorder<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let tape_rc = self.tape.clone();
        let mut tape = tape_rc.borrow_mut();
        let over_bytes = tape.data.len() as u64 > self.max_record_bytes.saturating_add(2);
        let over_lines = self.resync && tape.newlines >= self.max_quoted_lines;
        if (over_bytes || over_lines) && tape.too_long.is_none() && tape.runaway.is_none() {
            tape.discard_lead();
            if let Some(why) = self.runaway(&tape) {
                // End of stream for this parser: `RecordStream` cuts the record back to its first line and
                // starts a new parser at the next one.
                tape.runaway = Some(why);
                return Ok(0);
            }
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
        tape.push(&out[..n]);
        Ok(n)
    }
}

pub(super) struct RawRecord {
    pub(super) fields: csv::ByteRecord,
    /// The exact bytes; only the first [`TOO_LONG_HEAD_BYTES`] when `too_long`.
    pub(super) raw: Vec<u8>,
    /// `Some(length)` for a record over `max_record_bytes` (then `fields` is empty).
    pub(super) too_long: Option<u64>,
    /// Set for the first line of a record cut back because its quoted field ran away (then `fields` is empty
    /// and `raw` is that line).
    pub(super) unbalanced: Option<QuoteRunaway>,
    /// Absolute offset (file or decompressed stream).
    pub(super) offset: u64,
    pub(super) line: u64,
}

impl RawRecord {
    /// This record read as a header: its field names, trimmed. The error is the reason a header is refused (over
    /// `max_record_bytes`, or not text in the configured encoding), for [`super::DecodeError::Header`].
    pub(super) fn header_names(&self, text: &Text) -> Result<Vec<String>, String> {
        if let Some(len) = self.too_long {
            return Err(format!("the header is {len} bytes, over max_record_bytes"));
        }
        self.fields
            .iter()
            .map(|f| text.decode(f).map(|s| s.trim().to_string()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| "header is not valid text in the configured encoding".to_string())
    }
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
    /// Fields per record, once known ([`RecordStream::expect_fields`]).
    expected: Option<usize>,
    max_quoted_lines: u64,
    delimiter: u8,
    quote: u8,
    /// Records returned with their first bytes only (over `max_record_bytes`): the quarantine does not hold
    /// them whole.
    pub(super) truncated: u64,
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
        let max_quoted_lines = options.max_quoted_lines.max(1);
        let tape = Rc::new(RefCell::new(Tape::default()));
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(options.delimiter as u8)
            .quote(options.quote as u8)
            .buffer_capacity(CSV_BUFFER_BYTES)
            .from_reader(Recorder {
                inner: Replay {
                    pending: Vec::new(),
                    pos: 0,
                    inner,
                },
                tape: tape.clone(),
                first_offset: offset,
                max_record_bytes,
                max_quoted_lines,
                resync: false,
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
            expected: None,
            max_quoted_lines,
            delimiter: options.delimiter as u8,
            quote: options.quote as u8,
            truncated: 0,
        })
    }

    /// From now on every record should have `n` fields: a record whose quoted field runs past the end of its
    /// line into a malformed record is cut back to that line, and reading resumes at the next (see the module
    /// docs). Until this is called (while the header is read), records are read whole.
    pub(super) fn expect_fields(&mut self, n: usize) {
        self.expected = Some(n);
        self.reader.get_mut().resync = true;
    }

    /// The file offset of parser position `pos`.
    fn file_offset(&self, pos: u64) -> u64 {
        (self.base_offset as i64 + pos as i64 + self.shift).max(0) as u64
    }

    /// The file line of the parser's line `line`.
    fn file_line(&self, line: u64) -> u64 {
        (self.base_line as i64 + line as i64 + self.line_shift).max(1) as u64
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

    /// Why the multi-line record `raw` (terminators trimmed) with `fields` fields must be cut back to its first
    /// line, if it must.
    fn judge(&self, raw: &[u8], fields: usize) -> Option<QuoteRunaway> {
        let expected = self.expected?;
        let newlines = count_newlines(raw);
        if newlines == 0 {
            return None;
        }
        if newlines >= self.max_quoted_lines {
            Some(QuoteRunaway::Lines {
                max: self.max_quoted_lines,
            })
        } else if raw.len() as u64 > self.max_record_bytes {
            Some(QuoteRunaway::Bytes {
                max: self.max_record_bytes,
            })
        } else if fields != expected {
            Some(QuoteRunaway::Fields {
                found: fields,
                expected,
                lines: newlines + 1,
            })
        } else {
            quote_fault(raw, self.delimiter, self.quote, newlines + 1)
        }
    }

    /// Whether record `raw` ending at parser position `end` was ended by the end of the input inside a quoted
    /// field (a line end inside quotes does not end a record, so only the end of the input can).
    fn open_at_end(&self, raw: &[u8], end: u64) -> bool {
        let total = {
            let tape = self.tape.borrow();
            tape.base + tape.data.len() as u64
        };
        end == total
            && raw.iter().fold(Scan::StartRecord, |s, b| {
                s.step(*b, self.delimiter, self.quote).0
            }) == Scan::InQuoted
    }

    /// Cuts the record at parser position `start` (parser line `start_line`) back to its first line, returned
    /// as an unbalanced record, and starts a new parser at the next line with the bytes already read after it.
    fn resync(
        &mut self,
        start: u64,
        start_line: u64,
        why: QuoteRunaway,
    ) -> Result<RawRecord, DecodeError> {
        let (rec_start, lead_newlines, mut raw, replay, resume, newline_ends) = {
            let tape = self.tape.borrow();
            let start = start.max(tape.base);
            let bytes = tape.slice(start, tape.base + tape.data.len() as u64);
            let lead = lead(bytes);
            let body = &bytes[lead..];
            let eol = body
                .iter()
                .position(|b| matches!(b, b'\n' | b'\r'))
                .unwrap_or(body.len());
            let mut resume = (eol + 1).min(body.len());
            if body.get(eol) == Some(&b'\r') && body.get(eol + 1) == Some(&b'\n') {
                resume += 1;
            }
            (
                start + lead as u64,
                count_newlines(&bytes[..lead]),
                body[..eol].to_vec(),
                body[resume..].to_vec(),
                resume as u64,
                body[eol..resume].contains(&b'\n'),
            )
        };
        let offset = self.file_offset(rec_start);
        let dropped = self.tape.borrow().dropped_newlines;
        let line = self.file_line(start_line) + dropped + lead_newlines;
        let too_long = (raw.len() as u64 > self.max_record_bytes).then_some(raw.len() as u64);
        if too_long.is_some() {
            raw.truncate(TOO_LONG_HEAD_BYTES);
            self.truncated += 1;
        }
        let resume_offset = self.file_offset(rec_start + resume);
        *self.tape.borrow_mut() = Tape::default();
        let recorder = self.reader.get_mut();
        recorder.inner.push_front(&replay);
        recorder.first_offset = resume_offset;
        self.reader
            .seek_raw(std::io::SeekFrom::Start(0), csv::Position::new())
            .map_err(|e| self.map_err(e))?;
        // The new parser starts at line 1 of the bytes after the cut line.
        self.base_offset = resume_offset;
        self.base_line = line + u64::from(newline_ends) - 1;
        self.shift = 0;
        self.line_shift = 0;
        self.end_pos = 0;
        self.end_offset = resume_offset;
        self.end_line = self.base_line;
        Ok(RawRecord {
            fields: csv::ByteRecord::new(),
            raw,
            too_long,
            unbalanced: Some(why),
            offset,
            line,
        })
    }

    /// Parser position and parser line where a record cut by a quote runaway starts.
    fn runaway_start(&self, fields: &csv::ByteRecord, more: bool) -> (u64, u64) {
        match fields.position() {
            Some(p) if more => (p.byte(), p.line()),
            _ => (
                self.end_pos,
                (self.end_line as i64 - self.base_line as i64 - self.line_shift + 1).max(1) as u64,
            ),
        }
    }

    /// At the end of the parsed input: consumes the bytes after the last record when they are only line
    /// terminators (the `\n` of a final CRLF belongs to the record before it) or when the stream is final.
    fn consume_tail(&mut self) {
        let tape = self.tape.borrow();
        let total = tape.base + tape.data.len() as u64;
        let rest = tape.slice(self.end_pos, total);
        if self.is_final || rest.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            self.end_line += count_newlines(rest);
            drop(tape);
            self.end_offset = self.file_offset(total);
            self.end_pos = total;
        }
    }

    /// Marks everything up to parser position `end` (parser line `end_line`) as consumed.
    #[inline]
    fn consume_to(&mut self, end: u64, end_line: u64) {
        self.end_pos = end;
        self.end_offset = self.file_offset(end);
        self.end_line = (self.base_line as i64 + end_line as i64 - 1 + self.line_shift) as u64;
    }

    /// Reports record `t`, cut short by the recorder, from its head, then shifts what follows by the bytes that
    /// were skipped instead of parsed; the parser ended it at `end` on parser line `end_line`.
    fn cut_short(
        &mut self,
        t: TooLong,
        start: u64,
        start_line: u64,
        end: u64,
        end_line: u64,
    ) -> RawRecord {
        let offset = self.file_offset(t.start.max(start));
        let dropped = std::mem::take(&mut self.tape.borrow_mut().dropped_newlines);
        let line = self.file_line(start_line) + dropped;
        self.shift += t.skipped as i64 - t.synthetic as i64;
        self.line_shift += t.skipped_newlines as i64 - 1;
        self.tape.borrow_mut().discard_before(end);
        self.consume_to(end, end_line);
        self.truncated += 1;
        RawRecord {
            fields: csv::ByteRecord::new(),
            raw: t.head,
            too_long: Some(t.len),
            unbalanced: None,
            offset,
            line,
        }
    }

    pub(super) fn next(&mut self) -> Result<Option<RawRecord>, DecodeError> {
        let mut fields = csv::ByteRecord::new();
        loop {
            let more = self
                .reader
                .read_byte_record(&mut fields)
                .map_err(|e| self.map_err(e))?;
            let runaway = self.tape.borrow_mut().runaway.take();
            if let Some(why) = runaway {
                // The recorder ended the stream inside a quoted field that ran over a limit.
                let (start, line) = self.runaway_start(&fields, more);
                return self.resync(start, line, why).map(Some);
            }
            if !more {
                self.consume_tail();
                return Ok(None);
            }
            let start = fields.position().map(|p| p.byte()).unwrap_or(0);
            let start_line = fields.position().map(|p| p.line()).unwrap_or(1);
            let end_pos = self.reader.position().clone();
            let end = end_pos.byte();
            let too_long = self.tape.borrow_mut().too_long.take();
            if let Some(t) = too_long {
                return Ok(Some(self.cut_short(
                    t,
                    start,
                    start_line,
                    end,
                    end_pos.line(),
                )));
            }
            // Blank lines before the record may already be off the tape (see `Recorder`).
            let start = start.max(self.tape.borrow().base);
            let mut raw = self.tape.borrow().slice(start, end).to_vec();
            let terminated = raw.last() == Some(&b'\n') || raw.last() == Some(&b'\r');
            if !self.is_final && (!terminated || self.open_at_end(&raw, end)) {
                // Partial last record of a growing file (also one whose quoted field is still open: the writer
                // may be in the middle of a multi-line field): not consumed.
                return Ok(None);
            }
            while matches!(raw.last(), Some(b'\n' | b'\r')) {
                raw.pop();
            }
            // With CRLF the parser ends a record at `\r`; the `\n` then opens the next record's span (and the
            // parser's line number of the record does not count it yet).
            let lead = lead(&raw);
            let lead_newlines = count_newlines(&raw[..lead]);
            raw.drain(..lead);
            if let Some(why) = self.judge(&raw, fields.len()) {
                return self.resync(start, start_line, why).map(Some);
            }
            let dropped = {
                let mut tape = self.tape.borrow_mut();
                tape.discard_before(end);
                std::mem::take(&mut tape.dropped_newlines)
            };
            let start = start + lead as u64;
            self.consume_to(end, end_pos.line());
            if raw.is_empty() {
                continue; // blank line
            }
            let line = self.file_line(start_line) + dropped + lead_newlines;
            // A record that fit in the parser's buffer is never cut short by the recorder: judge it here.
            let too_long = (raw.len() as u64 > self.max_record_bytes).then_some(raw.len() as u64);
            if too_long.is_some() {
                raw.truncate(TOO_LONG_HEAD_BYTES);
                fields.clear();
                self.truncated += 1;
            }
            return Ok(Some(RawRecord {
                fields,
                raw,
                too_long,
                unbalanced: None,
                offset: self.file_offset(start),
                line,
            }));
        }
    }
}
