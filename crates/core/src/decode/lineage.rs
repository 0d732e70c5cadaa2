//! The lineage columns that end every bronze schema: the landing file, line and byte offset each row came from,
//! and when it was ingested. Both decoders declare and build them through this module, so they stay alike. CSV
//! bronze also ends with `_record_key`, the dedup key of each row ([`RECORD_KEY`]).

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, TimeUnit};

use super::CHUNK_ROWS;

/// The lineage fields, in schema order: `_source_file`, `_source_line`, `_source_offset`, `_ingested_at`.
pub(super) fn lineage_fields() -> [Field; 4] {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    [
        Field::new("_source_file", DataType::Utf8, false),
        Field::new("_source_line", DataType::Int64, false),
        Field::new("_source_offset", DataType::Int64, false),
        Field::new("_ingested_at", ts, false),
    ]
}

/// The builders of a chunk's lineage columns.
#[derive(Debug)]
pub(super) struct Lineage {
    file: StringBuilder,
    line: Int64Builder,
    offset: Int64Builder,
    ingested_at: TimestampMicrosecondBuilder,
}

impl Lineage {
    /// Builders sized for a whole chunk.
    pub(super) fn new() -> Self {
        Self {
            file: StringBuilder::with_capacity(CHUNK_ROWS, CHUNK_ROWS * 32),
            line: Int64Builder::with_capacity(CHUNK_ROWS),
            offset: Int64Builder::with_capacity(CHUNK_ROWS),
            ingested_at: TimestampMicrosecondBuilder::with_capacity(CHUNK_ROWS)
                .with_timezone("UTC"),
        }
    }

    /// Appends the lineage of one row: landing path, 1-based line, byte offset, ingestion time (µs, UTC).
    pub(super) fn push(&mut self, file: &str, line: u64, offset: u64, ingested_at: i64) {
        self.file.append_value(file);
        self.line.append_value(line as i64);
        self.offset.append_value(offset as i64);
        self.ingested_at.append_value(ingested_at);
    }

    /// The columns built so far, in schema order; the builders start over empty.
    pub(super) fn finish(&mut self) -> [ArrayRef; 4] {
        [
            Arc::new(self.file.finish()),
            Arc::new(self.line.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.ingested_at.finish()),
        ]
    }
}

/// The column that keeps each CSV row's dedup key in bronze, so that the keys of a day can be read back from
/// bronze alone (the key is a hash of the record's raw text, which bronze does not keep).
pub const RECORD_KEY: &str = "_record_key";

/// The `_record_key` field: the key hash as 32 lowercase hex digits. Text rather than binary so that every
/// reader (DuckDB, Spark, delta-rs, whose Delta type system has no fixed-size binary) sees the same value.
pub(super) fn record_key_field() -> Field {
    Field::new(RECORD_KEY, DataType::Utf8, false)
}

/// The `_record_key` column of rows whose key hashes are `keys`.
pub(super) fn record_key_column(keys: &[u128]) -> ArrayRef {
    let mut b = StringBuilder::with_capacity(keys.len(), keys.len() * 32);
    let mut buf = String::with_capacity(32);
    for k in keys {
        use std::fmt::Write as _;
        buf.clear();
        let _ = write!(buf, "{k:032x}");
        b.append_value(&buf);
    }
    Arc::new(b.finish())
}

/// The dedup key hash of a bronze `_record_key` value. A value that is not 32 hex digits (bronze edited by
/// hand) maps to a hash of its text, which matches no decoded record's key.
pub(crate) fn key_of_record_key(value: &str) -> u128 {
    Some(value)
        .filter(|v| v.len() == 32)
        .and_then(|v| u128::from_str_radix(v, 16).ok())
        .unwrap_or_else(|| super::key_hash(b"record_key", value.as_bytes()))
}
