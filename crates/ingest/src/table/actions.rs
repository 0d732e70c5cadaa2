//! The Delta log actions lander writes by hand (`protocol` and `metaData` of version 0) or hands to the kernel
//! (`add`, with the statistics lander computed while writing a part), the Delta schema of an Arrow schema, and
//! the `add` of a written part. Reading the log is the kernel's job (`table::log`).

use std::collections::BTreeMap;

use arrow::datatypes::{DataType, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

use super::TableError;
use crate::sink::WrittenFile;

/// The lowest reader version: every Delta reader (Spark 3.5+, DuckDB's delta extension, delta-rs) reads it.
pub(crate) const MIN_READER_VERSION: i32 = 1;

/// The lowest writer version that Spark 3.5+ and delta-rs write to without table features: lander honours what
/// it requires (append-only and column invariants are never set on its tables).
pub(crate) const MIN_WRITER_VERSION: i32 = 2;

/// The partition columns of every bronze table: the UTC event day, as strings equal to the hive directories.
pub(crate) const PARTITION_COLUMNS: [&str; 3] = ["year", "month", "day"];

/// `protocol`: which readers and writers may use the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Protocol {
    /// Minimum reader version.
    pub(crate) min_reader_version: i32,
    /// Minimum writer version.
    pub(crate) min_writer_version: i32,
    /// Reader features (reader version 3 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reader_features: Option<Vec<String>>,
    /// Writer features (writer version 7 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) writer_features: Option<Vec<String>>,
}

/// `metaData.format`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Format {
    /// Always `parquet`.
    pub(crate) provider: String,
    /// Format options (none).
    #[serde(default)]
    pub(crate) options: BTreeMap<String, String>,
}

/// `metaData`: the table's identity, schema and partitioning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MetaData {
    /// The table's unique id (a UUID), fixed when the table is created.
    pub(crate) id: String,
    /// Optional name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// Optional description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    /// The data files' format.
    pub(crate) format: Format,
    /// The schema as Delta's JSON schema, serialized.
    pub(crate) schema_string: String,
    /// Partition columns, in order.
    pub(crate) partition_columns: Vec<String>,
    /// Table properties.
    #[serde(default)]
    pub(crate) configuration: BTreeMap<String, String>,
    /// Creation time, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) created_time: Option<i64>,
}

/// `add`: a data file joins the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Add {
    /// Path relative to the table root (a relative URI).
    pub(crate) path: String,
    /// Partition column -> value (as a string; `null` for a null partition).
    pub(crate) partition_values: BTreeMap<String, Option<String>>,
    /// File size in bytes.
    pub(crate) size: i64,
    /// When the file was written, ms since the epoch.
    pub(crate) modification_time: i64,
    /// Whether the commit changes the table's data (always for lander's appends).
    pub(crate) data_change: bool,
    /// Statistics as a JSON string (`numRecords`, `minValues`, `maxValues`, `nullCount`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stats: Option<String>,
}

/// The Delta type of an Arrow type that lander writes, or `None` when Delta (without table features) has none.
fn delta_type(t: &DataType) -> Option<String> {
    Some(match t {
        DataType::Utf8 | DataType::LargeUtf8 => "string".into(),
        DataType::Int64 => "long".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int16 => "short".into(),
        DataType::Int8 => "byte".into(),
        DataType::Float64 => "double".into(),
        DataType::Float32 => "float".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Binary | DataType::LargeBinary => "binary".into(),
        DataType::Date32 => "date".into(),
        // Delta's `timestamp` is microseconds, adjusted to UTC; a naive timestamp needs the timestampNtz feature.
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "timestamp".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        _ => return None,
    })
}

/// Delta's JSON schema (`schemaString`) of the parts' Arrow schema plus the partition columns (strings).
///
/// # Errors
/// [`TableError::UnsupportedType`] for a column type Delta cannot represent at the table's protocol.
pub(crate) fn schema_string(schema: &Schema) -> Result<String, TableError> {
    schema_string_with(schema, &PARTITION_COLUMNS)
}

/// [`schema_string`] with the partition columns `partitions` (none for the quarantine table).
///
/// # Errors
/// As [`schema_string`].
pub(crate) fn schema_string_with(
    schema: &Schema,
    partitions: &[&str],
) -> Result<String, TableError> {
    let mut fields = Vec::new();
    for f in schema.fields() {
        let ty = delta_type(f.data_type()).ok_or_else(|| TableError::UnsupportedType {
            column: f.name().clone(),
            data_type: f.data_type().to_string(),
        })?;
        fields.push(serde_json::json!({
            "name": f.name(), "type": ty, "nullable": f.is_nullable(), "metadata": {}
        }));
    }
    for p in partitions {
        fields.push(
            serde_json::json!({"name": p, "type": "string", "nullable": true, "metadata": {}}),
        );
    }
    Ok(serde_json::json!({"type": "struct", "fields": fields}).to_string())
}

/// The fields of Delta schema `batch` (a `schemaString`) that Delta schema `table` lacks: the columns a commit
/// of the batch adds to the table (schema evolution). Every column of the table must be in the batch with the
/// same type, and every added column must be nullable (the table's earlier files read it as null).
///
/// # Errors
/// What makes the batch's schema no evolution of the table's, in words.
pub(crate) fn new_columns(table: &str, batch: &str) -> Result<Vec<serde_json::Value>, String> {
    let fields = |s: &str| -> Result<Vec<serde_json::Value>, String> {
        let v: serde_json::Value =
            serde_json::from_str(s).map_err(|e| format!("schema is not JSON: {e}"))?;
        v["fields"]
            .as_array()
            .cloned()
            .ok_or_else(|| "schema has no fields".to_string())
    };
    let (table, batch) = (fields(table)?, fields(batch)?);
    for t in &table {
        match batch.iter().find(|b| b["name"] == t["name"]) {
            None => return Err(format!("the batch lacks the table's column {}", t["name"])),
            Some(b) if b["type"] != t["type"] => {
                return Err(format!(
                    "column {} is {} in the table and {} in the batch",
                    t["name"], t["type"], b["type"]
                ))
            }
            Some(_) => {}
        }
    }
    let added: Vec<serde_json::Value> = batch
        .into_iter()
        .filter(|b| !table.iter().any(|t| t["name"] == b["name"]))
        .collect();
    if let Some(f) = added.iter().find(|f| f["nullable"] != true) {
        return Err(format!(
            "new column {} is not nullable, which the table's earlier files cannot satisfy",
            f["name"]
        ));
    }
    Ok(added)
}

/// Delta's text form of a timestamp statistic: ISO 8601 with milliseconds, UTC. `round_up` rounds a
/// sub-millisecond value up (for a maximum), so the bound still holds at millisecond precision.
fn stat_time(micros: i64, round_up: bool) -> String {
    let ms = if round_up {
        micros.div_euclid(1000) + i64::from(micros.rem_euclid(1000) != 0)
    } else {
        micros.div_euclid(1000)
    };
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The `add` of part `f` (a path relative to bronze, below `<table root>/`), written at `now_ms`.
///
/// # Errors
/// [`TableError::OutsideTable`] when the part does not lie below the table root.
pub(crate) fn add_of(root: &str, f: &WrittenFile, now_ms: i64) -> Result<Add, TableError> {
    let rel = f
        .final_path
        .strip_prefix(root)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| TableError::OutsideTable {
            path: f.final_path.clone(),
            root: root.to_string(),
        })?;
    let mut partition_values = BTreeMap::new();
    for seg in rel.split('/') {
        if let Some((k, v)) = seg.split_once('=') {
            if PARTITION_COLUMNS.contains(&k) {
                partition_values.insert(k.to_string(), Some(v.to_string()));
            }
        }
    }
    let mut stats = serde_json::json!({ "numRecords": f.rows });
    if let Some(t) = &f.time_range {
        stats["minValues"] = serde_json::json!({ &t.column: stat_time(t.min, false) });
        stats["maxValues"] = serde_json::json!({ &t.column: stat_time(t.max, true) });
        stats["nullCount"] = serde_json::json!({ &t.column: t.nulls });
    }
    Ok(Add {
        path: rel.to_string(),
        partition_values,
        size: f.bytes as i64,
        modification_time: now_ms,
        data_change: true,
        stats: Some(stats.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::parquet::TimeRange;
    use arrow::datatypes::Field;

    #[test]
    fn schema_maps_lander_types_and_appends_partitions() {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let s = Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("created_at", ts, false),
            Field::new("amount", DataType::Decimal128(12, 2), true),
        ]);
        let v: serde_json::Value =
            serde_json::from_str(&schema_string(&s).expect("supported")).expect("json");
        let names: Vec<_> = v["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .map(|f| format!("{}:{}", f["name"], f["type"]).replace('"', ""))
            .collect();
        assert_eq!(
            names,
            [
                "id:string",
                "created_at:timestamp",
                "amount:decimal(12,2)",
                "year:string",
                "month:string",
                "day:string"
            ]
        );
        let naive = Schema::new(vec![Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        )]);
        assert!(matches!(
            schema_string(&naive),
            Err(TableError::UnsupportedType { .. })
        ));
    }

    #[test]
    fn new_columns_are_the_batch_columns_the_table_lacks() {
        let s = |fields: Vec<Field>| schema_string(&Schema::new(fields)).expect("supported");
        let id = Field::new("id", DataType::Int64, true);
        let channel = Field::new("channel", DataType::Utf8, true);
        let table = s(vec![id.clone()]);
        assert_eq!(new_columns(&table, &table), Ok(vec![]));
        let added = new_columns(&table, &s(vec![id.clone(), channel.clone()])).expect("evolves");
        assert_eq!(added.len(), 1);
        assert_eq!(added[0]["name"], "channel");
        assert_eq!(added[0]["type"], "string");
        // Order does not matter: readers map by name.
        assert!(new_columns(&table, &s(vec![channel.clone(), id.clone()])).is_ok());
        // A dropped column, a changed type, a non-nullable new column: no evolution.
        assert!(new_columns(&s(vec![id.clone(), channel.clone()]), &table)
            .expect_err("dropped")
            .contains("lacks"));
        let id_str = Field::new("id", DataType::Utf8, true);
        assert!(new_columns(&table, &s(vec![id_str]))
            .expect_err("retyped")
            .contains("\"long\""));
        let strict = Field::new("n", DataType::Int64, false);
        assert!(new_columns(&table, &s(vec![id, strict]))
            .expect_err("not null")
            .contains("not nullable"));
    }

    #[test]
    fn add_has_partition_values_and_time_stats() {
        let f = WrittenFile {
            staging: String::new(),
            final_path: "gh/year=2015/month=01/day=02/part-b00000001-ab-0000.parquet".into(),
            rows: 3,
            bytes: 100,
            time_range: Some(TimeRange {
                column: "created_at".into(),
                min: 1_420_156_800_000_000,
                max: 1_420_156_800_000_001,
                nulls: 0,
            }),
        };
        let a = add_of("gh", &f, 5).expect("below the root");
        assert_eq!(
            a.path,
            "year=2015/month=01/day=02/part-b00000001-ab-0000.parquet"
        );
        assert_eq!(a.partition_values["month"].as_deref(), Some("01"));
        let s: serde_json::Value =
            serde_json::from_str(a.stats.as_deref().expect("stats")).expect("json");
        assert_eq!(s["numRecords"], 3);
        assert_eq!(s["minValues"]["created_at"], "2015-01-02T00:00:00.000Z");
        // One microsecond past the minute rounds the maximum up to the next millisecond.
        assert_eq!(s["maxValues"]["created_at"], "2015-01-02T00:00:00.001Z");
        assert!(add_of("other", &f, 5).is_err());
    }
}
