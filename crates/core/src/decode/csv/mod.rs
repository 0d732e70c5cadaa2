//! Delimited text (CSV and friends) to typed Arrow columns, configured per dataset (no code per file).
//!
//! Handles a configurable delimiter and quote, an optional header, UTF-8 (a BOM is skipped) or
//! Latin-1/Windows-1252 text (decoded per field, so byte offsets stay those of the file), CRLF or LF line ends,
//! quoted delimiters and newlines, several timestamp formats and a time zone for timestamps without an offset.
//!
//! Column types are declared in the config or inferred once from the first file ([`infer_schema`]); the result
//! is a [`StoredSchema`] that the checkpoint keeps, so later files cannot silently change the types. A header
//! maps onto it by name; one that differs is handled by the dataset's [`SchemaEvolution`] mode (`evolve`): the
//! file fails as a whole ([`DecodeError::Header`]), asks for new columns ([`DecodeError::NewColumns`]) or has
//! what does not fit rescued into [`RESCUED_COLUMN`]. A row that does not fit (wrong field count, unparseable
//! value outside `rescue`, missing key or event time, invalid text) goes to the quarantine with its exact bytes.

mod evolve;
#[cfg(test)]
mod evolve_tests;
mod infer;
mod options;
mod records;
#[cfg(test)]
mod resync_tests;
mod types;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::datatypes::{Decimal128Type, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use evolve::{map_header, rescued_json, HeaderMap, HeaderMismatch};
pub use evolve::{read_header, with_new_columns, RESCUED_COLUMN};
pub use infer::{infer_schema, infer_schema_sampled};
pub use options::{
    CsvOptions, SchemaEvolution, StoredColumn, StoredSchema, DEFAULT_MAX_QUOTED_LINES,
};
use records::{RecordStream, Text};
pub use types::{normalize_name, parse_timestamp, parse_timezone, ColumnType, TypeError, Zone};
use types::{parse_bool, parse_date};

use super::lineage::{lineage_fields, record_key_column, record_key_field, Lineage};
use super::{
    key_hash, DecodeEnd, DecodeError, DecodeInput, DecodeItem, Decoded, Emitter, LineSource,
    QuarantineRecord, RecordError, CHUNK_ROWS,
};

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

/// The rows of one output batch being built: the schema's columns, the lineage columns and the dedup keys.
struct Chunk {
    columns: Vec<Builder>,
    lineage: Lineage,
    keys: Vec<u128>,
    /// `_rescued_data` (`rescue` mode only).
    rescued: Option<StringBuilder>,
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
    /// the headers of the files that are read from past their start. `rescue` adds [`RESCUED_COLUMN`] (a
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
    pub fn record_key(&self) -> bool {
        self.record_key
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
                        reason: RecordError::Continuation { line: at.line }.to_string(),
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
        // How this file's fields map onto the schema's columns (by name when the file has a header).
        let map: HeaderMap = if at_start && self.options.has_header {
            let Some(rec) = stream.next()? else {
                return Ok(DecodeEnd {
                    end_offset: stream.end_offset,
                    end_line: stream.end_line,
                    truncated: stream.truncated,
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
            self.map(&header, &input.path)?
        } else if let Some(header) = self
            .headers
            .get(&input.path)
            .filter(|_| self.options.has_header)
        {
            self.map(header, &input.path)?
        } else {
            HeaderMap {
                columns: (0..self.columns.len()).map(Some).collect(),
                extra: Vec::new(),
                fields: self.columns.len(),
            }
        };
        stream.expect_fields(map.fields);
        let rescue = self.mode == SchemaEvolution::Rescue;
        // Columns whose bad values still quarantine the row in `rescue` mode: without them it could be neither
        // partitioned nor deduplicated.
        let mut protected = vec![false; self.columns.len()];
        protected[self.time_index] = true;
        for &k in &self.key_indices {
            protected[k] = true;
        }
        let mut rescued: Vec<(String, String)> = Vec::new();
        let ncols = self.columns.len();
        let mut chunk = Chunk {
            columns: self.builders(),
            lineage: Lineage::new(),
            keys: Vec::with_capacity(CHUNK_ROWS),
            rescued: rescue.then(StringBuilder::new),
        };
        let mut values: Vec<Value<'_>> = Vec::with_capacity(ncols);
        let mut key_buf = Vec::new();
        let mut out = Emitter {
            emit,
            path: &input.path,
        };
        // How the event-time column is named in a quarantine reason (built once, not per record).
        let time_label = format!("event time {:?}", self.options.event_time);
        while let Some(rec) = stream.next()? {
            values.clear();
            rescued.clear();
            let result: Result<(), RecordError> = (|| {
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
                if rec.fields.len() != map.fields {
                    return Err(RecordError::FieldCount {
                        expected: map.fields,
                        found: rec.fields.len(),
                        lines: rec.raw.iter().filter(|b| **b == b'\n').count() + 1,
                    });
                }
                for (i, (c, ty)) in self.columns.iter().enumerate() {
                    // A column the file's header lacks reads as null (never as an empty string).
                    let Some(at) = map.columns[i] else {
                        values.push(Value::Null);
                        continue;
                    };
                    let raw = &rec.fields[at];
                    let s = text.decode(raw).ok_or_else(|| RecordError::ColumnNotUtf8 {
                        column: c.source.clone(),
                    })?;
                    match self.parse_value(&c.source, *ty, Cow::Owned(s.into_owned())) {
                        Ok(v) => values.push(v),
                        // Never coerced: the column is null and the text is kept, under its header name.
                        Err(_) if rescue && !protected[i] => {
                            let s = text.decode(raw).unwrap_or_default().into_owned();
                            rescued.push((c.source.clone(), s));
                            values.push(Value::Null);
                        }
                        Err(e) => return Err(e),
                    }
                }
                for (at, name) in &map.extra {
                    let s = text.decode(&rec.fields[*at]).ok_or_else(|| {
                        RecordError::ColumnNotUtf8 {
                            column: name.clone(),
                        }
                    })?;
                    if !s.is_empty() {
                        rescued.push((name.clone(), s.into_owned()));
                    }
                }
                match values[self.time_index] {
                    Value::Null => {
                        return Err(RecordError::MissingEventTime(
                            self.options.event_time.clone(),
                        ))
                    }
                    Value::Ts(t) => {
                        input
                            .limits
                            .check_event_time(t, input.ingested_at, &time_label)?
                    }
                    _ => {}
                }
                key_buf.clear();
                if self.key_indices.is_empty() {
                    key_buf.extend_from_slice(&rec.raw);
                } else {
                    for &k in &self.key_indices {
                        // Key columns are never missing from a header (`map_header` refuses it).
                        let f = map.columns[k].map_or(&b""[..], |at| rec.fields[at].trim_ascii());
                        if f.is_empty() {
                            return Err(RecordError::MissingKey(self.columns[k].0.source.clone()));
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
                    reason: reason.to_string(),
                    raw: rec.raw,
                });
                out.quarantine(&mut bad, false)?;
                continue;
            }
            for (b, v) in chunk.columns.iter_mut().zip(values.drain(..)) {
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
            if let Some(b) = &mut chunk.rescued {
                if rescued.is_empty() {
                    b.append_null();
                } else {
                    b.append_value(rescued_json(&rescued));
                }
            }
            chunk
                .lineage
                .push(&input.path, rec.line, rec.offset, input.ingested_at);
            chunk.keys.push(key_hash(b"csv", &key_buf));
            if chunk.keys.len() >= CHUNK_ROWS {
                out.send(DecodeItem::Rows(self.finish(&mut chunk)))?;
            }
        }
        if !chunk.keys.is_empty() {
            out.send(DecodeItem::Rows(self.finish(&mut chunk)))?;
        }
        out.quarantine(&mut bad, true)?;
        Ok(DecodeEnd {
            end_offset: stream.end_offset,
            end_line: stream.end_line,
            truncated: stream.truncated,
        })
    }

    /// Takes the rows collected in `chunk` as one batch, leaving `chunk` empty for the next.
    fn finish(&self, chunk: &mut Chunk) -> Decoded {
        let mut cols: Vec<ArrayRef> = chunk
            .columns
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
        if let Some(b) = &mut chunk.rescued {
            cols.push(Arc::new(b.finish()));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::DataType;

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
        // A quoted field with escaped quotes and commas, far over the limit, on one line (a quoted field that
        // spans lines and runs over the limit is cut back to its first line instead: see `resync_tests`).
        // Longer than the parser's 256 KiB buffer, so the recorder has to skip it.
        for i in 0..20000 {
            data.extend(format!("line {i} with a \"\"quote\"\", and a comma ").as_bytes());
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
            RecordError::TooLong {
                len: 15019,
                max: 1000,
                kept: 4096
            }
            .to_string()
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
        // Line numbers are those of the file: the skipped record does not shift them, and the `\n` of its CRLF
        // counts.
        assert_eq!(bad[1].line, 6);
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
        assert_eq!(lines.value(1), 4);
        assert_eq!(lines.value(2), 7);
        assert_eq!(bad[1].offset, (after + 18) as u64);
    }

    #[test]
    fn record_key_column_holds_each_rows_key_and_reads_back_to_it() {
        let data = b"Row ID,Order Date,Qty\n1,1/1/2020,5\n2,1/2/2020,6\n";
        let inp = input("ds/a.csv");
        let schema = infer_schema(
            LineSource::new(Box::new(std::io::Cursor::new(data.to_vec())), &inp).expect("src"),
            &opts(),
            "ds",
        )
        .expect("infer");
        let plain = CsvDecoder::new("ds", &opts(), &schema).expect("decoder");
        let dec = CsvDecoder::new("ds", &opts(), &schema)
            .expect("decoder")
            .with_record_key(true);
        assert_eq!(
            dec.schema().fields().len(),
            plain.schema().fields().len() + 1
        );
        let mut rows = Vec::new();
        dec.decode(
            LineSource::new(Box::new(std::io::Cursor::new(data.to_vec())), &inp).expect("src"),
            &inp,
            &mut |item| {
                if let DecodeItem::Rows(d) = item {
                    rows.push(d);
                }
                true
            },
        )
        .expect("decode");
        let d = &rows[0];
        let col = d.batch.column_by_name("_record_key").expect("column");
        let col = col.as_string::<i32>();
        assert_eq!(col.len(), 2);
        for (i, k) in d.keys.iter().enumerate() {
            assert_eq!(col.value(i).len(), 32);
            assert_eq!(crate::decode::key_of_record_key(col.value(i)), *k);
        }
        // The key is the hash of the raw key field, as without the column.
        assert_eq!(d.keys[0], key_hash(b"csv", b"1\x1f"));
        assert_ne!(crate::decode::key_of_record_key("not hex"), d.keys[0]);
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
}
