//! Reading a landing stream as lines: gzip decompression under the inflate limits, line and offset bookkeeping,
//! over-long records skipped without being buffered, and the mapping of stream errors to file-level
//! [`DecodeError`]s.

use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{
    DecodeError, DecodeInput, LimitHit, Limits, RATIO_MIN_DECOMPRESSED_BYTES, TOO_LONG_HEAD_BYTES,
};

/// An `std::io::Error` that [`map_stream_error`] turns into [`DecodeError::Limit`] with `reason`.
pub(crate) fn limit_error(reason: String) -> std::io::Error {
    std::io::Error::other(LimitHit(reason))
}

/// Counts the bytes read from the compressed file.
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Fails the stream as soon as the decompressed output crosses `max_decompressed_bytes` or inflates more than
/// `max_decompression_ratio` times the compressed bytes read so far.
struct InflateGuard<R> {
    inner: R,
    compressed: Arc<AtomicU64>,
    out: u64,
    limits: Limits,
}

impl<R: Read> Read for InflateGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        if self.out > self.limits.max_decompressed_bytes {
            return Err(limit_error(format!(
                "gzip stream inflates beyond max_decompressed_bytes ({} bytes)",
                self.limits.max_decompressed_bytes
            )));
        }
        let compressed = self.compressed.load(Ordering::Relaxed).max(1);
        if self.out > RATIO_MIN_DECOMPRESSED_BYTES
            && self.out / compressed > self.limits.max_decompression_ratio
        {
            return Err(limit_error(format!(
                "gzip stream inflates {}:1 ({} bytes from {} compressed), beyond max_decompression_ratio ({}:1): a decompression bomb or a file of padding",
                self.out / compressed,
                self.out,
                compressed,
                self.limits.max_decompression_ratio
            )));
        }
        Ok(n)
    }
}

/// Buffer size for reading landing files: large sequential reads.
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// Where a line starts, and whether it was too long to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineInfo {
    /// Offset of the line's first byte (file, or decompressed stream for gzip).
    pub(crate) offset: u64,
    /// 1-based line number.
    pub(crate) line: u64,
    /// `Some(length)` when the line is longer than `max_record_bytes`: the buffer then holds only its first
    /// [`TOO_LONG_HEAD_BYTES`] bytes.
    pub(crate) too_long: Option<u64>,
    /// These bytes continue line `line`, which was committed before (see [`DecodeInput::continues_line`]).
    pub(crate) continuation: bool,
}

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
    max_record_bytes: u64,
    skim: Vec<u8>,
    continues_line: bool,
}

/// The UTF-8 byte order mark some editors and Windows tools write at the start of a text file: not part of the
/// first record (the CSV decoder skips it too).
const UTF8_BOM: &[u8] = &[0xEF, 0xBB, 0xBF];

/// Bytes read at a time while skipping the rest of an over-long line.
const SKIM_BYTES: u64 = 64 * 1024;

impl LineSource {
    /// Wraps `reader`, adding gzip decompression (with the inflate limits of `input.limits`) when `input.gzip`.
    ///
    /// # Errors
    /// [`DecodeError::Limit`] when the file is over `max_file_bytes`; [`DecodeError::NotGzip`] when a gzip
    /// stream does not start with the magic bytes; [`DecodeError::Read`] when its first bytes cannot be read.
    pub fn new(reader: Box<dyn Read + Send>, input: &DecodeInput) -> Result<Self, DecodeError> {
        if input.file_bytes > input.limits.max_file_bytes {
            return Err(DecodeError::Limit {
                path: input.path.clone(),
                reason: format!(
                    "file is {} bytes, over max_file_bytes ({} bytes)",
                    input.file_bytes, input.limits.max_file_bytes
                ),
            });
        }
        let inner: Box<dyn BufRead + Send> = if input.gzip {
            let compressed = Arc::new(AtomicU64::new(0));
            let mut raw = std::io::BufReader::with_capacity(
                READ_BUFFER_BYTES,
                CountingReader {
                    inner: reader,
                    count: compressed.clone(),
                },
            );
            let head = raw
                .fill_buf()
                .map_err(|e| map_stream_error(false, &input.path, 0, e))?;
            if head.is_empty() {
                tracing::info!(path = %input.path, "empty file: nothing to ingest");
                Box::new(std::io::empty())
            } else if head[0] != 0x1f || head.get(1).is_some_and(|b| *b != 0x8b) {
                let head: String = head.iter().take(8).map(|b| format!("{b:02x} ")).collect();
                return Err(DecodeError::NotGzip {
                    path: input.path.clone(),
                    head: head.trim_end().to_string(),
                });
            } else {
                Box::new(std::io::BufReader::with_capacity(
                    READ_BUFFER_BYTES,
                    InflateGuard {
                        inner: flate2::bufread::MultiGzDecoder::new(raw),
                        compressed,
                        out: 0,
                        limits: input.limits,
                    },
                ))
            }
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
            max_record_bytes: input.limits.max_record_bytes,
            skim: Vec::new(),
            continues_line: input.continues_line && !input.gzip,
        })
    }

    /// The landing path.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    fn map_err(&self, e: std::io::Error) -> DecodeError {
        map_stream_error(self.gzip, &self.path, self.offset, e)
    }

    /// Reads the next complete line into `buf` (cleared first, terminator stripped, and a UTF-8 BOM before the
    /// first line of the file removed). Returns where it starts, or
    /// `None` at the end (a trailing partial line of a non-final stream is left unconsumed). Memory is bounded
    /// by `max_record_bytes`: the rest of a longer line is read and dropped up to its newline, and only its
    /// first [`TOO_LONG_HEAD_BYTES`] bytes stay in `buf` ([`LineInfo::too_long`] gives its length).
    ///
    /// # Errors
    /// [`DecodeError::Incomplete`]/[`DecodeError::Corrupt`] for broken gzip, [`DecodeError::Limit`] for a gzip
    /// stream over its inflate limits, [`DecodeError::Read`] otherwise.
    pub(crate) fn next_line(&mut self, buf: &mut Vec<u8>) -> Result<Option<LineInfo>, DecodeError> {
        buf.clear();
        // Room for the longest allowed line plus a CRLF terminator.
        let cap = self.max_record_bytes.saturating_add(2);
        let mut n = (&mut self.inner)
            .take(cap)
            .read_until(b'\n', buf)
            .map_err(|e| self.map_err(e))? as u64;
        if n == 0 {
            return Ok(None);
        }
        let mut terminated = buf.last() == Some(&b'\n');
        let mut skimmed = false;
        if !terminated && n == cap {
            // Over the limit: read on to the newline without keeping the bytes.
            buf.truncate(TOO_LONG_HEAD_BYTES);
            skimmed = true;
            loop {
                self.skim.clear();
                let m = (&mut self.inner)
                    .take(SKIM_BYTES)
                    .read_until(b'\n', &mut self.skim)
                    .map_err(|e| self.map_err(e))? as u64;
                n += m;
                if self.skim.last() == Some(&b'\n') {
                    terminated = true;
                    break;
                }
                if m == 0 {
                    break;
                }
            }
            self.skim = Vec::new();
        }
        if !terminated && !self.is_final {
            // A partial last line of a growing file: leave it for the next read.
            buf.clear();
            return Ok(None);
        }
        let start = self.offset;
        self.offset += n;
        let continuation = std::mem::take(&mut self.continues_line);
        if !continuation {
            self.line += 1;
        }
        let mut content = n;
        if terminated {
            content -= 1;
            if !skimmed {
                buf.pop();
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                    content -= 1;
                }
            }
        }
        // Offset 0 is the start of the file (plain) or of the decompressed stream (gzip): only there a BOM is one.
        if start == 0 && !continuation && buf.starts_with(UTF8_BOM) {
            buf.drain(..UTF8_BOM.len());
            content -= UTF8_BOM.len() as u64;
        }
        let too_long = (content > self.max_record_bytes).then_some(content);
        if too_long.is_some() {
            buf.truncate(TOO_LONG_HEAD_BYTES);
        }
        Ok(Some(LineInfo {
            offset: start,
            line: self.line,
            too_long,
            continuation,
        }))
    }

    /// Whether the next line continues an already committed one (see [`DecodeInput::continues_line`]).
    pub(crate) fn continues_line(&self) -> bool {
        self.continues_line
    }

    /// Whether the stream is gzip-compressed.
    pub(crate) fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// The longest record allowed, in bytes.
    pub(crate) fn max_record_bytes(&self) -> u64 {
        self.max_record_bytes
    }

    /// The underlying buffered reader (for the CSV parser) with the bookkeeping handed over:
    /// `(reader, offset, line, is_final)`.
    pub(crate) fn into_parts(self) -> (Box<dyn BufRead + Send>, u64, u64, bool) {
        (self.inner, self.offset, self.line, self.is_final)
    }
}

/// Maps an I/O error of a landing stream to a file-level [`DecodeError`]: for gzip, an early end means the file
/// is incomplete and invalid data means it is corrupt.
pub(crate) fn map_stream_error(
    gzip: bool,
    path: &str,
    offset: u64,
    e: std::io::Error,
) -> DecodeError {
    if let Some(hit) = e.get_ref().and_then(|i| i.downcast_ref::<LimitHit>()) {
        return DecodeError::Limit {
            path: path.to_string(),
            reason: hit.0.clone(),
        };
    }
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

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn read_all(data: &[u8], gzip: bool, start_offset: u64) -> Vec<(u64, Vec<u8>)> {
        let bytes = if gzip {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).expect("gz");
            e.finish().expect("gz")
        } else {
            data[start_offset as usize..].to_vec()
        };
        let input = DecodeInput {
            path: "ds/f".into(),
            start_offset,
            start_line: 0,
            gzip,
            is_final: true,
            ingested_at: 0,
            file_bytes: bytes.len() as u64,
            limits: Limits::default(),
            continues_line: false,
        };
        let mut s = LineSource::new(Box::new(std::io::Cursor::new(bytes)), &input).expect("src");
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(at) = s.next_line(&mut buf).expect("read") {
            out.push((at.offset, buf.clone()));
        }
        out
    }

    #[test]
    fn a_bom_before_the_first_line_is_not_part_of_it() {
        let bom = "\u{feff}";
        let first = br#"{"a":1}"#.to_vec();
        for gzip in [false, true] {
            for (text, nl) in [("\n", 1), ("\r\n", 2)] {
                let data = format!("{bom}{{\"a\":1}}{text}{bom}{{\"b\":2}}{text}");
                let lines = read_all(data.as_bytes(), gzip, 0);
                assert_eq!(lines.len(), 2, "{data:?}");
                assert_eq!(lines[0], (0, first.clone()), "gzip {gzip}");
                // Only the file's start is a byte order mark: elsewhere the bytes belong to the record.
                assert_eq!(lines[1].0, 3 + 7 + nl);
                assert!(lines[1].1.starts_with(bom.as_bytes()), "gzip {gzip}");
            }
        }
        // A plain file resumed past its start: a line there is taken as it is.
        let data = format!("x\n{bom}{{\"a\":1}}\n");
        let lines = read_all(data.as_bytes(), false, 2);
        assert_eq!(lines[0].0, 2);
        assert!(lines[0].1.starts_with(bom.as_bytes()));
    }
}
