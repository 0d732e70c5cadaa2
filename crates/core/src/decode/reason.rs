//! Why one record goes to the quarantine. The message of a [`RecordError`] is the quarantine's `reason` column:
//! lowercase, and it names the field or limit concerned.

/// A record-level problem: the record is quarantined with this reason and the rest of the file still lands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RecordError {
    /// Longer than `max_record_bytes`; only the first `kept` bytes are kept in the quarantine.
    #[error("record is {len} bytes, over max_record_bytes ({max} bytes); only its first {kept} bytes are kept here")]
    TooLong {
        /// Bytes of the record.
        len: u64,
        /// The limit.
        max: u64,
        /// Bytes kept.
        kept: usize,
    },
    /// The bytes that complete line `line`, committed as a record before its newline arrived.
    #[error("continuation of line {line}: the file grew after that line, which had no newline yet, was committed as a record; these bytes complete it and are not read as a new record")]
    Continuation {
        /// The committed line.
        line: u64,
    },
    /// Not UTF-8 (NDJSON).
    #[error("not valid UTF-8 (invalid byte at offset {offset} of the line)")]
    NotUtf8 {
        /// Offset of the first invalid byte in the line.
        offset: usize,
    },
    /// Valid JSON that is not an object.
    #[error("not a JSON object: the line is {found}")]
    NotAnObject {
        /// What it is (`an array`, `a number`, ...).
        found: &'static str,
    },
    /// Not JSON (serde_json's message).
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// A required field is missing.
    #[error("missing field {0:?}")]
    MissingField(&'static str),
    /// `created_at` is not a time lander reads.
    #[error("unparseable created_at {0:?}")]
    UnparseableTime(String),
    /// A field that is present but malformed (serde_json's message).
    #[error("invalid {field}: {message}")]
    InvalidField {
        /// The field (`id`, `actor`).
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A CSV record with another number of fields than the header.
    #[error("expected {expected} fields, found {found} (too {}){}", if found < expected { "few" } else { "many" }, spans(*lines))]
    FieldCount {
        /// Columns of the header.
        expected: usize,
        /// Fields of the record.
        found: usize,
        /// Lines the record spans.
        lines: usize,
    },
    /// The first line of a CSV record whose quoted field ran past the end of the line into a malformed record
    /// (probably a stray quote): only this line is quarantined, and reading resumed at the next line.
    #[error("unbalanced quote: a quoted field opened on this line {why}; only this line is quarantined and reading resumes at the next line")]
    UnbalancedQuote {
        /// How the record it made was malformed.
        why: QuoteRunaway,
    },
    /// A CSV field that is not text in the configured encoding.
    #[error("column {column:?}: invalid UTF-8")]
    ColumnNotUtf8 {
        /// The source column.
        column: String,
    },
    /// A CSV field that does not parse as its column's type.
    #[error("column {column:?}: invalid {ty} {value:?}")]
    InvalidValue {
        /// The source column.
        column: String,
        /// The type (`int64`, `timestamp`, `decimal(12,2)`, ...).
        ty: String,
        /// The field, trimmed.
        value: String,
    },
    /// An empty event-time field.
    #[error("missing event time in column {0:?}")]
    MissingEventTime(String),
    /// An empty key field.
    #[error("missing key column {0:?}")]
    MissingKey(String),
    /// An event time before `event_time_min`.
    #[error("{column} {} is before the earliest accepted event time {} (event_time_min)", micros(*at), micros(*min))]
    TooEarly {
        /// The event-time column, as named in the message.
        column: String,
        /// The event time, µs since epoch, UTC.
        at: i64,
        /// The earliest accepted time.
        min: i64,
    },
    /// An event time after the ingestion time plus `event_time_max_future`.
    #[error("{column} {} is in the future: later than {} (ingestion time + event_time_max_future)", micros(*at), micros(*latest))]
    TooLate {
        /// The event-time column, as named in the message.
        column: String,
        /// The event time, µs since epoch, UTC.
        at: i64,
        /// The latest accepted time.
        latest: i64,
    },
}

/// How a record made by a quoted field that runs past the end of its line is malformed (see
/// [`RecordError::UnbalancedQuote`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuoteRunaway {
    /// The record has another number of fields than the header.
    Fields {
        /// Fields of the header.
        expected: usize,
        /// Fields of the record.
        found: usize,
        /// Lines the record spans.
        lines: u64,
    },
    /// The quote that closes the field on a later line is followed by more text of the same field (as when a
    /// second stray quote opens a field further down): the record's field count proves nothing then.
    ClosedMidField {
        /// Lines the record spans.
        lines: u64,
    },
    /// The quoted field is still open where the stream ends.
    Unclosed {
        /// Lines the record spans.
        lines: u64,
    },
    /// The record is still open after `max_quoted_lines` lines.
    Lines {
        /// The limit (`max_quoted_lines`).
        max: u64,
    },
    /// The record spans lines and is longer than `max_record_bytes`.
    Bytes {
        /// The limit (`max_record_bytes`).
        max: u64,
    },
}

impl std::fmt::Display for QuoteRunaway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuoteRunaway::Fields {
                expected,
                found,
                lines,
            } => write!(
                f,
                "makes a record of {found} fields over {lines} lines (expected {expected} fields)"
            ),
            QuoteRunaway::ClosedMidField { lines } => write!(
                f,
                "is closed {} line(s) further on by a quote followed by more text of the field",
                lines - 1
            ),
            QuoteRunaway::Unclosed { lines } => write!(
                f,
                "is still open where the file ends, {} line(s) further on",
                lines - 1
            ),
            QuoteRunaway::Lines { max } => {
                write!(f, "is still open after {max} lines (max_quoted_lines)")
            }
            QuoteRunaway::Bytes { max } => write!(
                f,
                "is still open after {max} bytes over several lines (max_record_bytes)"
            ),
        }
    }
}

fn spans(lines: usize) -> String {
    if lines > 1 {
        format!("; the record spans {lines} lines: probably an unbalanced quote")
    } else {
        String::new()
    }
}

fn micros(t: i64) -> String {
    chrono::DateTime::from_timestamp_micros(t)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| format!("{t} µs"))
}
