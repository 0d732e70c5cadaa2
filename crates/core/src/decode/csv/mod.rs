//! Delimited text (CSV and friends) to typed Arrow columns, configured per dataset (no code per file).
//!
//! Handles a configurable delimiter and quote, an optional header, UTF-8 (a BOM is skipped) or
//! Latin-1/Windows-1252 text (decoded per field, so byte offsets stay those of the file), CRLF or LF line ends,
//! quoted delimiters and newlines, several timestamp formats and a time zone for timestamps without an offset.
//!
//! Column types are declared in the config or inferred once from the first file ([`infer_schema_sampled`]); the result
//! is a [`StoredSchema`] that the checkpoint keeps, so later files cannot silently change the types. A header
//! maps onto it by name; one that differs is handled by the dataset's [`SchemaEvolution`] mode (`evolve`): the
//! file fails as a whole ([`DecodeError::Header`]), asks for new columns ([`DecodeError::NewColumns`]) or has
//! what does not fit rescued into `RESCUED_COLUMN`. A row that does not fit (wrong field count, unparseable
//! value outside `rescue`, missing key or event time, invalid text) goes to the quarantine with its exact bytes.

mod chunk;
mod evolve;
#[cfg(test)]
mod evolve_tests;
mod infer;
mod options;
mod records;
#[cfg(test)]
mod resync_tests;
#[cfg(test)]
mod tests;
mod types;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::datatypes::{Decimal128Type, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use chunk::{Chunk, Value};
pub(crate) use evolve::RESCUED_COLUMN;
use evolve::{map_header, HeaderMap, HeaderMismatch};
pub use evolve::{read_header, with_new_columns};
#[cfg(test)]
pub(crate) use infer::infer_schema;
pub use infer::infer_schema_sampled;
pub use options::{CsvOptions, SchemaEvolution, StoredColumn, StoredSchema};
use records::{RawRecord, RecordStream, Text};
pub(crate) use types::parse_timestamp;
use types::{parse_bool, parse_date};
pub use types::{parse_timezone, ColumnType, TypeError, Zone};

use super::lineage::{lineage_fields, record_key_column, record_key_field};
use super::{
    key_hash, DecodeEnd, DecodeError, DecodeInput, DecodeItem, Decoded, Emitter, LineSource,
    QuarantineRecord, RecordError, CHUNK_ROWS,
};

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
    mode: SchemaEvolution,
    /// Headers of files read from past their start (a growing file), by landing path: their fields map by the
    /// names of their own header.
    headers: HashMap<String, Vec<String>>,
    /// Whether bronze rows end with `_record_key` (see [`CsvDecoder::with_record_key`]).
    record_key: bool,
}

impl CsvDecoder {
    /// Builds the decoder from the fixed schema.
    ///
    /// # Errors
    /// [`DecodeError::Schema`] when the stored schema is inconsistent with the options.
    pub fn new(
        dataset: &str,
        options: &CsvOptions,
        stored: &StoredSchema,
    ) -> Result<Self, DecodeError> {
        let err = |reason: String| DecodeError::Schema {
            dataset: dataset.to_string(),
            reason,
        };
        let mut columns = Vec::new();
        let mut fields = Vec::new();
        for c in &stored.columns {
            let ty = ColumnType::parse(&c.ty).map_err(|e| err(e.to_string()))?;
            fields.push(Field::new(&c.name, ty.data_type(), true));
            columns.push((c.clone(), ty));
        }
        fields.extend(lineage_fields());
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
            zone: parse_timezone(&options.timezone).map_err(|e| err(e.to_string()))?,
            mode: SchemaEvolution::Fail,
            headers: HashMap::new(),
            record_key: false,
        })
    }

    /// Sets how headers that differ from the schema are met (the decoder of [`CsvDecoder::new`] is `fail`), and
    /// the headers of the files that are read from past their start. `rescue` adds `RESCUED_COLUMN` (a
    /// string) after the schema's columns.
    pub fn with_evolution(
        mut self,
        mode: SchemaEvolution,
        headers: HashMap<String, Vec<String>>,
    ) -> Self {
        if mode == SchemaEvolution::Rescue && self.mode != SchemaEvolution::Rescue {
            let mut fields: Vec<Field> = self
                .schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields.insert(
                self.columns.len(),
                Field::new(RESCUED_COLUMN, arrow::datatypes::DataType::Utf8, true),
            );
            self.schema = Arc::new(Schema::new(fields));
        }
        self.mode = mode;
        self.headers = headers;
        self
    }

    /// Maps `header` onto the schema, or says why the file is refused.
    fn map(&self, header: &[String], path: &str) -> Result<HeaderMap, DecodeError> {
        let mut required: Vec<&str> = vec![self.options.event_time.as_str()];
        required.extend(self.options.key.iter().map(String::as_str));
        let stored: Vec<StoredColumn> = self.columns.iter().map(|(c, _)| c.clone()).collect();
        map_header(&stored, &required, header, self.mode).map_err(|m| match m {
            HeaderMismatch::Reject(reason) => DecodeError::Header {
                path: path.to_string(),
                dataset: self.dataset.clone(),
                reason,
            },
            HeaderMismatch::NewColumns(columns) => DecodeError::NewColumns {
                path: path.to_string(),
                dataset: self.dataset.clone(),
                columns,
            },
        })
    }

    /// Ends every bronze row with `_record_key`, its dedup key (so bronze alone can tell which keys a day
    /// holds) when `on`; a table written before that column existed keeps its schema (`on` false: no change).
    pub fn with_record_key(mut self, on: bool) -> Self {
        if !on || self.record_key {
            return self;
        }
        let mut fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(record_key_field());
        self.schema = Arc::new(Schema::new(fields));
        self.record_key = true;
        self
    }

    /// Whether bronze rows carry `_record_key`.
    pub(crate) fn record_key(&self) -> bool {
        self.record_key
    }

    /// The bronze schema.
    pub(crate) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Parses field `s` of `column` as `ty`; an empty field is null (an empty string for string columns).
    fn parse_value<'a>(
        &self,
        column: &str,
        ty: ColumnType,
        s: Cow<'a, str>,
    ) -> Result<Value<'a>, RecordError> {
        let t = s.trim();
        if t.is_empty() {
            return Ok(match ty {
                ColumnType::String => Value::Str(s),
                _ => Value::Null,
            });
        }
        let bad = |what: &str| RecordError::InvalidValue {
            column: column.to_string(),
            ty: what.to_string(),
            value: t.to_string(),
        };
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
    pub(crate) fn decode(
        &self,
        mut lines: LineSource,
        input: &DecodeInput,
        emit: &mut dyn FnMut(DecodeItem) -> bool,
    ) -> Result<DecodeEnd, DecodeError> {
        let text = Text::from_options(&self.options);
        let at_start = input.gzip || input.start_offset == 0;
        let mut bad = leading_continuation(&mut lines, input)?;
        let mut stream = RecordStream::new(lines, &self.options, at_start)?;
        let Some(map) = self.file_map(&mut stream, &text, input, at_start)? else {
            return Ok(end_of(&stream));
        };
        stream.expect_fields(map.fields);
        let file = FileRows {
            protected: self.protected(),
            rescue: self.mode == SchemaEvolution::Rescue,
            // How the event-time column is named in a quarantine reason (built once, not per record).
            time_label: format!("event time {:?}", self.options.event_time),
            map,
            text,
        };
        let mut row = Row::default();
        let mut chunk = Chunk::new(self.columns.iter().map(|(_, t)| *t), file.rescue);
        let mut out = Emitter {
            emit,
            path: &input.path,
        };
        while let Some(rec) = stream.next()? {
            if let Err(reason) = self.parse_record(&rec, &file, input, &mut row) {
                bad.push(QuarantineRecord {
                    source_file: input.path.clone(),
                    line: rec.line,
                    offset: rec.offset,
                    reason: reason.to_string(),
                    raw: rec.raw,
                });
                out.quarantine(&mut bad, false)?;
                continue;
            }
            chunk.push_values(&mut row.values, &row.rescued);
            chunk
                .lineage
                .push(&input.path, rec.line, rec.offset, input.ingested_at);
            chunk.keys.push(key_hash(b"csv", &row.key));
            if chunk.keys.len() >= CHUNK_ROWS {
                out.send(DecodeItem::Rows(self.finish(&mut chunk)))?;
            }
        }
        if !chunk.keys.is_empty() {
            out.send(DecodeItem::Rows(self.finish(&mut chunk)))?;
        }
        out.quarantine(&mut bad, true)?;
        Ok(end_of(&stream))
    }

    /// How this file's fields map onto the schema's columns: by the names of its header when the stream starts
    /// at the file's start (`None`: the stream is empty), by those of the header it had when it is read from past
    /// its start, else by position.
    fn file_map(
        &self,
        stream: &mut RecordStream,
        text: &Text,
        input: &DecodeInput,
        at_start: bool,
    ) -> Result<Option<HeaderMap>, DecodeError> {
        if at_start && self.options.has_header {
            let Some(rec) = stream.next()? else {
                return Ok(None);
            };
            let header = rec
                .header_names(text)
                .map_err(|reason| DecodeError::Header {
                    path: input.path.clone(),
                    dataset: self.dataset.clone(),
                    reason,
                })?;
            return self.map(&header, &input.path).map(Some);
        }
        if let Some(header) = self
            .headers
            .get(&input.path)
            .filter(|_| self.options.has_header)
        {
            return self.map(header, &input.path).map(Some);
        }
        Ok(Some(HeaderMap {
            columns: (0..self.columns.len()).map(Some).collect(),
            extra: Vec::new(),
            fields: self.columns.len(),
        }))
    }

    /// Per schema column, whether a bad value of it still quarantines the row in `rescue` mode: the event time and
    /// the keys, without which the row could be neither partitioned nor deduplicated.
    fn protected(&self) -> Vec<bool> {
        let mut protected = vec![false; self.columns.len()];
        protected[self.time_index] = true;
        for &k in &self.key_indices {
            protected[k] = true;
        }
        protected
    }

    /// Parses one record into `row` (its values, what is rescued from it and its key bytes), or says why it goes
    /// to the quarantine.
    fn parse_record(
        &self,
        rec: &RawRecord,
        file: &FileRows,
        input: &DecodeInput,
        row: &mut Row,
    ) -> Result<(), RecordError> {
        row.values.clear();
        row.rescued.clear();
        if let Some(len) = rec.too_long {
            return Err(RecordError::TooLong {
                len,
                max: input.limits.max_record_bytes,
                kept: rec.raw.len(),
            });
        }
        if let Some(why) = rec.unbalanced {
            return Err(RecordError::UnbalancedQuote { why });
        }
        if rec.fields.len() != file.map.fields {
            return Err(RecordError::FieldCount {
                expected: file.map.fields,
                found: rec.fields.len(),
                lines: rec.raw.iter().filter(|b| **b == b'\n').count() + 1,
            });
        }
        self.parse_fields(rec, file, row)?;
        match row.values[self.time_index] {
            Value::Null => {
                return Err(RecordError::MissingEventTime(
                    self.options.event_time.clone(),
                ))
            }
            Value::Ts(t) => {
                input
                    .limits
                    .check_event_time(t, input.ingested_at, &file.time_label)?
            }
            _ => {}
        }
        self.record_key_bytes(rec, &file.map, &mut row.key)
    }

    /// The typed values of the schema's columns, and the rescued text of what does not fit (`rescue` mode).
    fn parse_fields(
        &self,
        rec: &RawRecord,
        file: &FileRows,
        row: &mut Row,
    ) -> Result<(), RecordError> {
        for (i, (c, ty)) in self.columns.iter().enumerate() {
            // A column the file's header lacks reads as null (never as an empty string).
            let Some(at) = file.map.columns[i] else {
                row.values.push(Value::Null);
                continue;
            };
            let raw = &rec.fields[at];
            let s = file
                .text
                .decode(raw)
                .ok_or_else(|| RecordError::ColumnNotUtf8 {
                    column: c.source.clone(),
                })?;
            match self.parse_value(&c.source, *ty, Cow::Owned(s.into_owned())) {
                Ok(v) => row.values.push(v),
                // Never coerced: the column is null and the text is kept, under its header name.
                Err(_) if file.rescue && !file.protected[i] => {
                    let s = file.text.decode(raw).unwrap_or_default().into_owned();
                    row.rescued.push((c.source.clone(), s));
                    row.values.push(Value::Null);
                }
                Err(e) => return Err(e),
            }
        }
        for (at, name) in &file.map.extra {
            let s =
                file.text
                    .decode(&rec.fields[*at])
                    .ok_or_else(|| RecordError::ColumnNotUtf8 {
                        column: name.clone(),
                    })?;
            if !s.is_empty() {
                row.rescued.push((name.clone(), s.into_owned()));
            }
        }
        Ok(())
    }

    /// The bytes the record's dedup key is hashed from: its key fields (trimmed, each ended by 0x1F), or the whole
    /// record when the dataset has no key.
    fn record_key_bytes(
        &self,
        rec: &RawRecord,
        map: &HeaderMap,
        key: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        key.clear();
        if self.key_indices.is_empty() {
            key.extend_from_slice(&rec.raw);
            return Ok(());
        }
        for &k in &self.key_indices {
            // Key columns are never missing from a header (`map_header` refuses it).
            let f = map.columns[k].map_or(&b""[..], |at| rec.fields[at].trim_ascii());
            if f.is_empty() {
                return Err(RecordError::MissingKey(self.columns[k].0.source.clone()));
            }
            key.extend_from_slice(f);
            key.push(0x1f);
        }
        Ok(())
    }

    /// Takes the rows collected in `chunk` as one batch, leaving `chunk` empty for the next.
    fn finish(&self, chunk: &mut Chunk) -> Decoded {
        let mut cols = chunk.finish_columns();
        cols.extend(chunk.lineage.finish());
        if self.record_key {
            cols.push(record_key_column(&chunk.keys));
        }
        let batch =
            RecordBatch::try_new(self.schema.clone(), cols).expect("builders match the csv schema");
        Decoded {
            batch,
            keys: std::mem::take(&mut chunk.keys),
            time_column: self.time_index,
        }
    }
}

/// What is fixed for all records of one file.
struct FileRows {
    map: HeaderMap,
    text: Text,
    protected: Vec<bool>,
    rescue: bool,
    time_label: String,
}

/// The scratch space of one record, reused from record to record.
#[derive(Default)]
struct Row {
    values: Vec<Value<'static>>,
    rescued: Vec<(String, String)>,
    key: Vec<u8>,
}

/// A stream that starts inside a line (read from past a file's start, not at a line boundary): the rest of that
/// line goes to the quarantine, as it cannot be a whole record.
fn leading_continuation(
    lines: &mut LineSource,
    input: &DecodeInput,
) -> Result<Vec<QuarantineRecord>, DecodeError> {
    let mut bad = Vec::new();
    if !lines.continues_line() {
        return Ok(bad);
    }
    let mut buf = Vec::new();
    if let Some(at) = lines.next_line(&mut buf)? {
        if !buf.is_empty() {
            bad.push(QuarantineRecord {
                source_file: input.path.clone(),
                line: at.line,
                offset: at.offset,
                reason: RecordError::Continuation { line: at.line }.to_string(),
                raw: buf,
            });
        }
    }
    Ok(bad)
}

/// Where the stream ended.
fn end_of(stream: &RecordStream) -> DecodeEnd {
    DecodeEnd {
        end_offset: stream.end_offset,
        end_line: stream.end_line,
        truncated: stream.truncated,
    }
}
