//! What a CSV dataset is: its reading options (from `lander.toml`) and the fixed schema inferred from its first
//! file (kept by the checkpoint, so later files cannot silently change the types).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Default `max_quoted_lines`: far more lines than a real multi-line field holds (addresses, notes), few enough
/// that a stray quote costs a bounded amount of re-reading.
pub(crate) const DEFAULT_MAX_QUOTED_LINES: u64 = 100;

/// How a CSV dataset is read and typed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CsvOptions {
    /// Field delimiter (one ASCII character). Default `,`.
    pub delimiter: char,
    /// Quote character (one ASCII character). Default `"`.
    pub quote: char,
    /// Whether the first line is a header. Default true. Without one, columns are named `c1`, `c2`, ...
    pub has_header: bool,
    /// Text encoding: `utf-8` (a BOM is stripped), `latin-1` or `windows-1252`. Default `utf-8`.
    pub encoding: String,
    /// Key column(s) for dedup. Empty: a hash of the whole row. Names as in the header.
    pub key: Vec<String>,
    /// Event-time column (partitions the output). Names as in the header. Required.
    pub event_time: String,
    /// chrono formats tried in order for timestamp columns. Default `["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d"]`.
    pub timestamp_formats: Vec<String>,
    /// Time zone of timestamps without an offset: `UTC`, an IANA name (`Europe/Madrid`) or `+02:00`. Default `UTC`.
    pub timezone: String,
    /// Declared column types by header name: `string`, `int64`, `float64`, `bool`, `timestamp`, `date`,
    /// `decimal(P,S)`. Columns not declared are inferred from the first file (`infer_rows` rows) once; the
    /// resulting schema is stored in the checkpoint and fixed from then on.
    pub columns: BTreeMap<String, String>,
    /// What a header that differs from the stored schema does: `fail`, `add_columns` or `rescue` (see
    /// [`SchemaEvolution`]). Unset: `add_columns` on a Delta bronze, `fail` on a plain-Parquet one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_evolution: Option<SchemaEvolution>,
    /// Rows sampled for type inference. Default 1000.
    pub(crate) infer_rows: usize,
    /// Rewrite column names to lower snake_case in bronze (`Order Date` -> `order_date`), so that Spark and Hive
    /// accept them. Default true.
    pub(crate) normalize_names: bool,
    /// Most lines one record may span through quoted fields. Default 100. A quoted field that runs past the end
    /// of its line into a record that is malformed (another field count than the header, over
    /// `max_record_bytes`, or over this many lines) is taken for a stray quote: only the line where it started
    /// is quarantined, and reading resumes at the next line.
    pub(crate) max_quoted_lines: u64,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: ',',
            quote: '"',
            has_header: true,
            encoding: "utf-8".into(),
            key: Vec::new(),
            event_time: String::new(),
            timestamp_formats: vec![
                "%Y-%m-%d %H:%M:%S".into(),
                "%Y-%m-%dT%H:%M:%S%.f%:z".into(),
                "%Y-%m-%d".into(),
            ],
            timezone: "UTC".into(),
            columns: BTreeMap::new(),
            schema_evolution: None,
            infer_rows: 1000,
            normalize_names: true,
            max_quoted_lines: DEFAULT_MAX_QUOTED_LINES,
        }
    }
}

impl CsvOptions {
    /// The built-in `sales` dataset: the schema of `transacciones_ventas.csv`.
    pub fn sales() -> Self {
        let columns = [
            ("transaction_id", "int64"),
            ("timestamp", "timestamp"),
            ("customer_id", "int64"),
            ("product_id", "int64"),
            ("category", "string"),
            ("quantity", "int64"),
            ("unit_price", "decimal(12,2)"),
            ("total", "decimal(14,2)"),
            ("payment_method", "string"),
            ("status", "string"),
        ];
        CsvOptions {
            key: vec!["transaction_id".into()],
            event_time: "timestamp".into(),
            columns: columns
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..CsvOptions::default()
        }
    }
}

/// How a CSV dataset meets a file whose header differs from its stored schema (like Auto Loader's
/// `schemaEvolutionMode`). In every mode a header is mapped by name (a reordered header is the same schema), and
/// a value that does not parse as its column's type is never coerced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaEvolution {
    /// A header that lacks a column of the schema or has one the schema does not is rejected whole.
    Fail,
    /// A header with new columns adds them to the schema (typed as declared in `columns`, else `string`); a
    /// header without a column of the schema reads it as null. Bad values go to the quarantine.
    AddColumns,
    /// The schema stays as it is; values that do not fit (a column the schema does not have, a value that does
    /// not parse as its column's type) go into the `_rescued_data` JSON column and the row still lands. A
    /// header without a column of the schema reads it as null.
    Rescue,
}

impl SchemaEvolution {}

/// A fixed CSV schema: ordered (bronze column name, header name, type).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredSchema {
    /// Columns in file order.
    pub columns: Vec<StoredColumn>,
}

/// One column of a [`StoredSchema`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredColumn {
    /// Name in the source header.
    pub(crate) source: String,
    /// Name in bronze.
    pub name: String,
    /// Type (`int64`, `decimal(12,2)`, ...).
    pub ty: String,
}
