//! The rows of one output batch being built from CSV records: one typed Arrow builder per schema column, the
//! `_rescued_data` column (`rescue` mode), the lineage columns and the dedup keys.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};

use super::evolve::rescued_json;
use super::types::ColumnType;
use crate::decode::lineage::Lineage;
use crate::decode::CHUNK_ROWS;

/// A builder for one column of a [`ColumnType`].
pub(super) enum Builder {
    Str(StringBuilder),
    I64(Int64Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
    Date(Date32Builder),
    Dec(Decimal128Builder),
}

/// One parsed field, ready for its column's builder.
pub(super) enum Value<'a> {
    Null,
    Str(Cow<'a, str>),
    I64(i64),
    F64(f64),
    Bool(bool),
    Ts(i64),
    Date(i32),
    Dec(i128),
}

impl Builder {
    /// A builder sized for one chunk of `ty` values.
    fn new(ty: ColumnType) -> Self {
        match ty {
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
                    .with_precision_and_scale(p, s)
                    .expect("precision and scale were validated when parsing the type"),
            ),
        }
    }

    /// Appends `v`, or a null when `v` is null or (never for a parsed value) of another type.
    fn append(&mut self, v: Value<'_>) {
        match (self, v) {
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

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Str(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::F64(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Ts(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Dec(b) => Arc::new(b.finish()),
        }
    }
}

/// The rows of one output batch being built: the schema's columns, the lineage columns and the dedup keys.
pub(super) struct Chunk {
    columns: Vec<Builder>,
    pub(super) lineage: Lineage,
    pub(super) keys: Vec<u128>,
    /// `_rescued_data` (`rescue` mode only).
    rescued: Option<StringBuilder>,
}

impl Chunk {
    /// An empty chunk for columns of `types`, with `_rescued_data` when `rescue`.
    pub(super) fn new(types: impl Iterator<Item = ColumnType>, rescue: bool) -> Self {
        Chunk {
            columns: types.map(Builder::new).collect(),
            lineage: Lineage::new(),
            keys: Vec::with_capacity(CHUNK_ROWS),
            rescued: rescue.then(StringBuilder::new),
        }
    }

    /// Appends one row: its values (drained, one per schema column) and what was rescued from it.
    pub(super) fn push_values(
        &mut self,
        values: &mut Vec<Value<'_>>,
        rescued: &[(String, String)],
    ) {
        for (b, v) in self.columns.iter_mut().zip(values.drain(..)) {
            b.append(v);
        }
        if let Some(b) = &mut self.rescued {
            if rescued.is_empty() {
                b.append_null();
            } else {
                b.append_value(rescued_json(rescued));
            }
        }
    }

    /// The schema's columns and `_rescued_data` of the rows pushed so far, leaving the builders empty (the lineage
    /// columns and keys are taken by the caller).
    pub(super) fn finish_columns(&mut self) -> Vec<ArrayRef> {
        let mut cols: Vec<ArrayRef> = self.columns.iter_mut().map(Builder::finish).collect();
        if let Some(b) = &mut self.rescued {
            cols.push(Arc::new(b.finish()));
        }
        cols
    }
}
