//! Delta log checkpoints: the whole state of a table at one version in one Parquet file
//! (`_delta_log/<version>.checkpoint.parquet`), named by `_delta_log/_last_checkpoint`, so that opening a table
//! reads one file plus the commits after it instead of every commit since version 0.
//!
//! A checkpoint has one row per action (`protocol`, `metaData`, one `txn` per app id, one `add` per live file),
//! each in its own nullable struct column; the rows are built from the same serde types as the JSON commits
//! (through arrow's JSON decoder with the checkpoint schema) and read back the same way. Single-part classic
//! checkpoints only: a table whose `_last_checkpoint` names a multi-part or v2 checkpoint is read from its
//! commits instead.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use serde::{Deserialize, Serialize};

use super::actions::{Add, LogLine, MetaData, Protocol, Remove, Txn};
use super::log::{DeltaTable, Snapshot};
use super::TableError;

const LAST_CHECKPOINT: &str = "_last_checkpoint";

/// `_last_checkpoint`.
#[derive(Debug, Serialize, Deserialize)]
struct LastCheckpoint {
    version: u64,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parts: Option<u64>,
}

/// One checkpoint row: exactly one field set.
#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Row<'a> {
    txn: Option<&'a Txn>,
    add: Option<&'a Add>,
    remove: Option<&'a Remove>,
    meta_data: Option<&'a MetaData>,
    protocol: Option<&'a Protocol>,
}

fn checkpoint_name(version: u64) -> String {
    format!("{version:020}.checkpoint.parquet")
}

fn string_map(name: &str) -> Field {
    let entries = Field::new(
        "key_value",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Utf8, true),
        ])),
        false,
    );
    Field::new(name, DataType::Map(Arc::new(entries), false), true)
}

fn strct(name: &str, fields: Vec<Field>) -> Field {
    Field::new(name, DataType::Struct(Fields::from(fields)), true)
}

/// The checkpoint schema (the columns Spark, delta-rs and the Delta kernel read).
fn schema() -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    let l = |n: &str| Field::new(n, DataType::Int64, true);
    let b = |n: &str| Field::new(n, DataType::Boolean, true);
    let list = |n: &str| {
        Field::new(
            n,
            DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
            true,
        )
    };
    Arc::new(Schema::new(vec![
        strct("txn", vec![s("appId"), l("version"), l("lastUpdated")]),
        strct(
            "add",
            vec![
                s("path"),
                string_map("partitionValues"),
                l("size"),
                l("modificationTime"),
                b("dataChange"),
                s("stats"),
            ],
        ),
        strct(
            "remove",
            vec![s("path"), l("deletionTimestamp"), b("dataChange")],
        ),
        strct(
            "metaData",
            vec![
                s("id"),
                s("name"),
                s("description"),
                strct("format", vec![s("provider"), string_map("options")]),
                s("schemaString"),
                list("partitionColumns"),
                string_map("configuration"),
                l("createdTime"),
            ],
        ),
        strct(
            "protocol",
            vec![
                Field::new("minReaderVersion", DataType::Int32, true),
                Field::new("minWriterVersion", DataType::Int32, true),
            ],
        ),
    ]))
}

/// Writes the checkpoint of `snap` and points `_last_checkpoint` at it.
///
/// # Errors
/// [`TableError::Checkpoint`] encoding, [`TableError::Store`] writing.
pub(super) async fn write(table: &DeltaTable, snap: &Snapshot) -> Result<(), TableError> {
    let name = checkpoint_name(snap.version);
    let fail = |message: String| TableError::Checkpoint {
        path: name.clone(),
        message,
    };
    let mut rows = vec![
        Row {
            protocol: Some(&snap.protocol),
            ..Row::default()
        },
        Row {
            meta_data: Some(&snap.metadata),
            ..Row::default()
        },
    ];
    rows.extend(snap.txns.values().map(|t| Row {
        txn: Some(t),
        ..Row::default()
    }));
    rows.extend(snap.files.values().map(|a| Row {
        add: Some(a),
        ..Row::default()
    }));
    let n = rows.len() as u64;
    let schema = schema();
    let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(rows.len().max(1))
        .build_decoder()
        .map_err(|e| fail(e.to_string()))?;
    decoder.serialize(&rows).map_err(|e| fail(e.to_string()))?;
    let batch = decoder
        .flush()
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("no rows".into()))?;
    let mut w = ArrowWriter::try_new(Vec::new(), schema, None).map_err(|e| fail(e.to_string()))?;
    w.write(&batch).map_err(|e| fail(e.to_string()))?;
    let bytes = w.into_inner().map_err(|e| fail(e.to_string()))?;
    table.write_log(&name, Bytes::from(bytes)).await?;
    let last = LastCheckpoint {
        version: snap.version,
        size: n,
        parts: None,
    };
    let body = serde_json::to_vec(&last).map_err(|e| fail(e.to_string()))?;
    table.write_log(LAST_CHECKPOINT, Bytes::from(body)).await?;
    Ok(())
}

/// The newest checkpoint named by `_last_checkpoint`, as its version and its actions; `None` when there is no
/// usable one (the log is then replayed from version 0).
///
/// # Errors
/// [`TableError`] when a checkpoint exists but cannot be read.
pub(super) async fn read_latest(
    table: &DeltaTable,
) -> Result<Option<(u64, Vec<LogLine>)>, TableError> {
    let Some(bytes) = table.read_log(LAST_CHECKPOINT).await? else {
        return Ok(None);
    };
    let Ok(last) = serde_json::from_slice::<LastCheckpoint>(&bytes) else {
        tracing::warn!(
            table = table.root(),
            "unreadable _last_checkpoint; reading the log from version 0"
        );
        return Ok(None);
    };
    if last.parts.is_some_and(|p| p > 1) {
        return Ok(None);
    }
    let name = checkpoint_name(last.version);
    let Some(bytes) = table.read_log(&name).await? else {
        return Ok(None);
    };
    let fail = |message: String| TableError::Checkpoint {
        path: name.clone(),
        message,
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| fail(e.to_string()))?
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut lines = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| fail(e.to_string()))?;
        let mut w = arrow::json::LineDelimitedWriter::new(Vec::new());
        w.write(&batch).map_err(|e| fail(e.to_string()))?;
        w.finish().map_err(|e| fail(e.to_string()))?;
        for l in w.into_inner().split(|b| *b == b'\n') {
            if l.is_empty() {
                continue;
            }
            lines.push(serde_json::from_slice::<LogLine>(l).map_err(|e| fail(e.to_string()))?);
        }
    }
    Ok(Some((last.version, lines)))
}
