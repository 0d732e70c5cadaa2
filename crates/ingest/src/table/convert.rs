//! `convert`: turns a plain-Parquet bronze dataset (`table_format = "parquet"`) into a Delta table in place,
//! like Delta's `CONVERT TO DELTA`.
//!
//! Takes a table root and lists the parts below it: for a dataset, `year=YYYY/month=MM/day=DD/<name>.parquet`;
//! for a quarantine (`_quarantine/<dataset>`, unpartitioned), `<name>.parquet` directly below the root. Names
//! that are not published parts (dotfiles, `_`-prefixed names, `.tmp`/staging names, other depths, the copies of
//! failed files under `files/`) are skipped and reported. Reads each part's Parquet footer (row count, Arrow
//! schema, min/max/nulls of the event-time column) and writes **version 0** by hand, put-if-absent: `protocol`
//! 1/2, `metaData` with the parts' schema plus the partition columns, an `add` per part with its statistics,
//! and, when given, a `txn` (so that the checkpoint that wrote the parts finds its batches in the table), with a
//! `commitInfo` whose operation is `CONVERT`. No data file is moved or rewritten.
//!
//! Refuses a root that already holds a Delta table, one without parts, and parts whose schemas differ. A second
//! convert racing this one loses the put-if-absent and reports the table as already Delta.

use std::collections::BTreeMap;

use arrow::datatypes::{DataType, Schema, TimeUnit};
use object_store::{ObjectMeta, ObjectStoreExt};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::statistics::Statistics;
use serde::Serialize;

use super::actions::{add_of, Add, PARTITION_COLUMNS};
use super::log::{engine_info, now_ms, version_zero_actions};
use super::{DeltaTable, TableError};
use crate::sink::{TimeRange, WrittenFile};
use crate::store::StoreLocation;

/// Bytes read from the end of a part on the first try: lander's footers are a few KiB.
const FOOTER_GUESS_BYTES: u64 = 64 * 1024;

/// Conversion failures; nothing is written unless the conversion succeeds.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The root already holds a Delta table.
    #[error("{root} is already a delta table: nothing to convert")]
    AlreadyDelta {
        /// The table root.
        root: String,
    },
    /// The root holds no published part.
    #[error("{root} holds no parquet part to convert")]
    NoParts {
        /// The table root.
        root: String,
    },
    /// A part's schema differs from the first part's.
    #[error("part {path} has another schema than {first}: a delta table has one schema")]
    SchemaDiffers {
        /// The part.
        path: String,
        /// The first part.
        first: String,
    },
    /// A part's footer cannot be read.
    #[error("failed to read the parquet footer of {path}: {source}")]
    Footer {
        /// The part.
        path: String,
        /// The reader's error.
        source: ParquetError,
    },
    /// Reading a part or writing the log failed.
    #[error(transparent)]
    Table(#[from] TableError),
}

/// What `convert` does.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Parts are under `year=/month=/day=` (a dataset) rather than directly below the root (a quarantine).
    pub partitioned: bool,
    /// Record the event-time statistics (min/max/nulls) of the first timestamp column whose name does not start
    /// with `_` (lineage columns do): the dataset's event time.
    pub time_stats: bool,
    /// A `txn` (app id, version) to write with version 0.
    pub txn: Option<(String, i64)>,
    /// lander's fields of `commitInfo` (`{"lander": {...}}`), merged into version 0's.
    pub info: serde_json::Value,
}

/// What a conversion wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ConvertReport {
    /// The table root.
    pub root: String,
    /// Parts added.
    pub files: usize,
    /// Rows in them (from their footers).
    pub rows: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects below the root that are not published parts, left out of the table.
    pub skipped: Vec<String>,
    /// The new table's `metaData.id`.
    pub table_id: String,
}

/// Whether `rel` (relative to the table root) names a published part.
fn is_part(rel: &str, partitioned: bool) -> bool {
    let segs: Vec<&str> = rel.split('/').collect();
    let Some(name) = segs.last() else {
        return false;
    };
    let good_name = name.ends_with(".parquet")
        && !name.starts_with('.')
        && !name.starts_with('_')
        && !name.contains(".tmp");
    if !partitioned {
        return segs.len() == 1 && good_name;
    }
    segs.len() == 4
        && good_name
        && segs[..3].iter().zip(PARTITION_COLUMNS).all(|(s, col)| {
            s.strip_prefix(col)
                .and_then(|r| r.strip_prefix('='))
                .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// The footer of the part at `path` (`size` bytes), from one or two reads of its tail.
async fn footer(
    bronze: &StoreLocation,
    path: &str,
    size: u64,
) -> Result<ParquetMetaData, ConvertError> {
    let location = bronze.path(path);
    let read = |n: u64| {
        let location = location.clone();
        async move {
            bronze
                .store
                .get_range(&location, size - n..size)
                .await
                .map_err(|source| TableError::Store {
                    action: "read",
                    path: bronze.describe(path),
                    source,
                })
        }
    };
    let footer_err = |source| ConvertError::Footer {
        path: bronze.describe(path),
        source,
    };
    let mut reader = ParquetMetaDataReader::new();
    let bytes = read(FOOTER_GUESS_BYTES.min(size)).await?;
    match reader.try_parse_sized(&bytes, size) {
        Ok(()) => {}
        Err(ParquetError::NeedMoreData(needed)) => {
            let bytes = read((needed as u64).min(size)).await?;
            reader.try_parse_sized(&bytes, size).map_err(footer_err)?;
        }
        Err(e) => return Err(footer_err(e)),
    }
    reader.finish().map_err(footer_err)
}

/// The event-time column of `schema` (see [`ConvertOptions::time_stats`]).
fn time_column(schema: &Schema) -> Option<String> {
    schema
        .fields()
        .iter()
        .find(|f| {
            !f.name().starts_with('_')
                && matches!(
                    f.data_type(),
                    DataType::Timestamp(TimeUnit::Microsecond, Some(_))
                )
        })
        .map(|f| f.name().clone())
}

/// min/max/nulls of top-level column `column` over the row groups of `meta`; `None` when a row group lacks them.
fn time_range(meta: &ParquetMetaData, column: &str) -> Option<TimeRange> {
    let descr = meta.file_metadata().schema_descr();
    let index = (0..descr.num_columns()).find(|i| descr.column(*i).path().string() == column)?;
    let (mut min, mut max, mut nulls) = (i64::MAX, i64::MIN, 0u64);
    for rg in meta.row_groups() {
        match rg.column(index).statistics()? {
            Statistics::Int64(s) => {
                min = min.min(*s.min_opt()?);
                max = max.max(*s.max_opt()?);
                nulls += s.null_count_opt().unwrap_or(0);
            }
            _ => return None,
        }
    }
    (min <= max).then(|| TimeRange {
        column: column.to_string(),
        min,
        max,
        nulls,
    })
}

/// Converts the Parquet parts below `root` (relative to bronze) into a Delta table (see the module doc).
///
/// # Errors
/// [`ConvertError`]: nothing was written (a store failure on the final put may leave version 0 written or not:
/// run `convert` again, which then reports the table as Delta or converts).
pub async fn convert(
    bronze: &StoreLocation,
    root: &str,
    opts: &ConvertOptions,
) -> Result<ConvertReport, ConvertError> {
    let table = DeltaTable::new(bronze, root);
    if table.load().await?.is_some() {
        return Err(ConvertError::AlreadyDelta {
            root: bronze.describe(root),
        });
    }
    let (parts, skipped) = list_parts(bronze, root, opts.partitioned).await?;
    let scan = scan_parts(bronze, root, &parts, opts.time_stats).await?;
    let Some((schema, _)) = scan.schema else {
        return Err(ConvertError::NoParts {
            root: bronze.describe(root),
        });
    };
    let partitions: &[&str] = if opts.partitioned {
        &PARTITION_COLUMNS
    } else {
        &[]
    };
    let (protocol, metadata) = version_zero_actions(&schema, partitions)?;
    let mut lines = vec![
        serde_json::json!({ "commitInfo": commit_info(opts, partitions, scan.adds.len()) }),
        serde_json::json!({ "protocol": protocol }),
        serde_json::json!({ "metaData": metadata }),
    ];
    if let Some((app, version)) = &opts.txn {
        lines.push(
            serde_json::json!({"txn": {"appId": app, "version": version, "lastUpdated": now_ms()}}),
        );
    }
    lines.extend(scan.adds.iter().map(|a| serde_json::json!({ "add": a })));
    if !table.put_version_zero(&lines).await? {
        return Err(ConvertError::AlreadyDelta {
            root: bronze.describe(root),
        });
    }
    Ok(ConvertReport {
        root: root.to_string(),
        files: scan.adds.len(),
        rows: scan.rows,
        bytes: scan.bytes,
        skipped,
        table_id: metadata.id,
    })
}

/// The files below `root`: the Parquet parts to convert (relative path -> listing entry), and the others (paths
/// from bronze's root), which the report lists as skipped.
async fn list_parts(
    bronze: &StoreLocation,
    root: &str,
    partitioned: bool,
) -> Result<(BTreeMap<String, ObjectMeta>, Vec<String>), ConvertError> {
    let mut parts = BTreeMap::new();
    let mut skipped = Vec::new();
    for (rel, m) in super::vacuum::files_below(bronze, root).await? {
        if is_part(&rel, partitioned) {
            parts.insert(rel, m);
        } else {
            skipped.push(format!("{root}/{rel}"));
        }
    }
    Ok((parts, skipped))
}

/// What the parts' footers say: the schema they share (with the first part's path), an `add` per part, and the
/// totals.
struct PartsScan {
    schema: Option<(Schema, String)>,
    adds: Vec<Add>,
    rows: u64,
    bytes: u64,
}

/// Reads every part's footer: its schema (all must match the first), rows, and with `time_stats` the event-time
/// range for the `add`'s statistics.
async fn scan_parts(
    bronze: &StoreLocation,
    root: &str,
    parts: &BTreeMap<String, ObjectMeta>,
    time_stats: bool,
) -> Result<PartsScan, ConvertError> {
    let mut scan = PartsScan {
        schema: None,
        adds: Vec::with_capacity(parts.len()),
        rows: 0,
        bytes: 0,
    };
    for (rel, m) in parts {
        let path = format!("{root}/{rel}");
        let meta = footer(bronze, &path, m.size).await?;
        let file_meta = meta.file_metadata();
        let arrow = parquet::arrow::parquet_to_arrow_schema(
            file_meta.schema_descr(),
            file_meta.key_value_metadata(),
        )
        .map_err(|source| ConvertError::Footer {
            path: bronze.describe(&path),
            source,
        })?;
        match &scan.schema {
            None => scan.schema = Some((arrow.clone(), path.clone())),
            Some((first, first_path)) => {
                if !same_fields(first, &arrow) {
                    return Err(ConvertError::SchemaDiffers {
                        path: bronze.describe(&path),
                        first: bronze.describe(first_path),
                    });
                }
            }
        }
        let n = u64::try_from(file_meta.num_rows()).unwrap_or(0);
        let time = time_stats
            .then(|| time_column(&arrow))
            .flatten()
            .and_then(|c| time_range(&meta, &c));
        let written = WrittenFile {
            staging: String::new(),
            final_path: path,
            rows: n,
            bytes: m.size,
            time_range: time,
        };
        scan.adds
            .push(add_of(root, &written, m.last_modified.timestamp_millis())?);
        scan.rows += n;
        scan.bytes += m.size;
    }
    Ok(scan)
}

/// Version 0's `commitInfo`: a CONVERT of `files` parts, with the caller's `opts.info` merged in.
fn commit_info(opts: &ConvertOptions, partitions: &[&str], files: usize) -> serde_json::Value {
    let mut info = serde_json::json!({
        "timestamp": now_ms(),
        "operation": "CONVERT",
        "operationParameters": {
            "partitionBy": serde_json::to_string(partitions).unwrap_or_default(),
            "numFiles": files,
        },
        "engineInfo": engine_info(),
        "isBlindAppend": true,
    });
    if let Some(obj) = opts.info.as_object() {
        for (k, v) in obj {
            info[k] = v.clone();
        }
    }
    info
}

/// Same column names, types and nullability (field metadata aside).
fn same_fields(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields().iter().zip(b.fields()).all(|(x, y)| {
            x.name() == y.name()
                && x.data_type() == y.data_type()
                && x.is_nullable() == y.is_nullable()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_published_parts_are_converted() {
        for ok in [
            "year=2015/month=01/day=01/part-b00000001-ab-0000.parquet",
            "year=2011/month=12/day=31/p.parquet",
        ] {
            assert!(is_part(ok, true), "{ok}");
            assert!(!is_part(ok, false), "{ok} is not a quarantine part");
        }
        for bad in [
            "year=2015/month=01/day=01/.part.parquet.tmp",
            "year=2015/month=01/day=01/.part.parquet",
            "year=2015/month=01/day=01/_part.parquet",
            "year=2015/month=01/day=01/part.parquet.tmp",
            "year=2015/month=01/part.parquet",
            "year=2015/month=01/day=01/x/part.parquet",
            "year=2015/month=01/day=xx/part.parquet",
            "month=01/year=2015/day=01/part.parquet",
            "year=2015/month=01/day=01/part.json",
            "part.parquet",
        ] {
            assert!(!is_part(bad, true), "{bad}");
        }
        assert!(is_part("part-b00000001-ab-q.parquet", false));
        assert!(!is_part("files/gharchive/x.json.gz", false));
        assert!(!is_part("files/x.parquet", false));
    }
}
