//! The lineage columns that end every bronze schema: the landing file, line and byte offset each row came from,
//! and when it was ingested. Both decoders declare and build them through this module, so they stay alike.

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
