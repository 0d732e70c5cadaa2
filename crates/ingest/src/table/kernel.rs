//! The glue between lander's stores and `delta_kernel`: the default engine over a bronze `Arc<dyn ObjectStore>`,
//! the table URL the engine resolves against that store, and the Arrow rows the kernel takes (`add_files`
//! metadata, the connector's `commitInfo` row) or gives back (the live files of a scan).
//!
//! # How a table URL names a store path
//! The default engine turns a URL into a store path with the URL's path alone (`Path::from_url_path`), never
//! with its host. So on HDFS and S3 the table URL is `<scheme>://<authority>/<store prefix>/<table root>/` and the
//! engine is built on the very store lander opened (with its timeouts). A local bronze is different: the kernel
//! resolves a `file://` table root to the canonical OS directory (and lists only `file://` URLs in sorted order,
//! which `LocalFileSystem` does not do by itself), so a local table is `file://<bronze dir>/<table root>/` and its
//! engine has a `LocalFileSystem` rooted at `/`, opened with the same options as lander's (fsync, cleanup).
//!
//! All kernel calls are synchronous: [`DeltaTable`](super::DeltaTable) runs them on tokio's blocking pool, and the
//! engine's executor drives the store's futures on lander's runtime.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::Schema as ArrowSchema;
use delta_kernel::engine::arrow_conversion::{TryFromArrow, TryIntoArrow};
use delta_kernel::engine::arrow_data::ArrowEngineData;
use delta_kernel::schema::{DataType, MapType, SchemaRef, StructField, StructType};
use delta_kernel::{Engine, EngineData};
use delta_kernel_default_engine::executor::tokio::{
    TokioBackgroundExecutor, TokioMultiThreadExecutor,
};
use delta_kernel_default_engine::DefaultEngineBuilder;

use super::actions::Add;
use crate::store::{Backend, StoreLocation};

/// A failure building the kernel's input rows (a bug or an unrepresentable value, never a storage fault).
pub(super) type RowsError = String;

/// The default engine over `bronze`'s store. On a multi-threaded runtime (lander's) the engine's futures run
/// on that runtime; elsewhere (single-threaded test runtimes, no runtime) on the engine's own thread.
pub(super) fn engine(bronze: &StoreLocation) -> Arc<dyn Engine> {
    let store: Arc<dyn object_store::ObjectStore> = match bronze.backend {
        Backend::Local => Arc::new(
            object_store::local::LocalFileSystem::new()
                .with_fsync(true)
                .with_automatic_cleanup(true),
        ),
        Backend::Hdfs | Backend::S3 => bronze.store.clone(),
    };
    // Tests inject faults into bronze's store; a local table's log goes through this second store, so it is
    // wrapped too (HDFS and S3 use bronze's store, already wrapped).
    #[cfg(feature = "failpoints")]
    let store = match bronze.backend {
        Backend::Local => crate::faults::wrap_store_from_env(store),
        Backend::Hdfs | Backend::S3 => store,
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => Arc::new(
            DefaultEngineBuilder::new(store)
                .with_task_executor(Arc::new(TokioMultiThreadExecutor::new(h)))
                .build(),
        ),
        _ => Arc::new(
            DefaultEngineBuilder::new(store)
                .with_task_executor(Arc::new(TokioBackgroundExecutor::new()))
                .build(),
        ),
    }
}

/// The URL of the table at `root` (relative to bronze) whose path is the table's store path (see the module
/// doc), with a trailing `/` as the kernel requires of a table root.
pub(super) fn table_url(bronze: &StoreLocation, root: &str) -> Result<url::Url, String> {
    if let Some(dir) = &bronze.local_root {
        return url::Url::from_directory_path(dir.join(root))
            .map_err(|()| format!("{} is not an absolute directory", dir.join(root).display()));
    }
    let mut path = String::from("/");
    for seg in bronze
        .prefix
        .parts()
        .map(|p| p.as_ref().to_string())
        .chain(root.split('/').filter(|s| !s.is_empty()).map(String::from))
    {
        path.push_str(&seg);
        path.push('/');
    }
    // The authority is only for messages: the engine reads through `bronze.store`.
    let mut url = url::Url::parse(&bronze.display)
        .or_else(|_| url::Url::parse("store:///"))
        .map_err(|e| e.to_string())?;
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// The `add_files` metadata the kernel expects (`Transaction::add_files_schema`), with the `stats` struct
/// spelled out for the event-time columns `time_columns` (timestamps, microseconds, UTC).
fn add_files_schema(time_columns: &[String]) -> Result<StructType, RowsError> {
    let per_column = |ty: DataType| {
        StructType::try_new(
            time_columns
                .iter()
                .map(|c| StructField::nullable(c.as_str(), ty.clone())),
        )
        .map_err(|e| e.to_string())
    };
    let mut stats = vec![StructField::nullable("numRecords", DataType::LONG)];
    if !time_columns.is_empty() {
        stats.push(StructField::nullable(
            "nullCount",
            per_column(DataType::LONG)?,
        ));
        stats.push(StructField::nullable(
            "minValues",
            per_column(DataType::TIMESTAMP)?,
        ));
        stats.push(StructField::nullable(
            "maxValues",
            per_column(DataType::TIMESTAMP)?,
        ));
    }
    StructType::try_new([
        StructField::not_null("path", DataType::STRING),
        StructField::not_null(
            "partitionValues",
            MapType::new(DataType::STRING, DataType::STRING, true),
        ),
        StructField::not_null("size", DataType::LONG),
        StructField::not_null("modificationTime", DataType::LONG),
        StructField::nullable(
            "stats",
            StructType::try_new(stats).map_err(|e| e.to_string())?,
        ),
    ])
    .map_err(|e| e.to_string())
}

/// One Arrow batch of `rows` (JSON objects) in the kernel schema `schema`.
fn decode_rows(schema: &StructType, rows: &[serde_json::Value]) -> Result<RecordBatch, RowsError> {
    let arrow: ArrowSchema = schema.try_into_arrow().map_err(|e| e.to_string())?;
    let mut decoder = arrow::json::ReaderBuilder::new(Arc::new(arrow))
        .with_batch_size(rows.len().max(1))
        .build_decoder()
        .map_err(|e| e.to_string())?;
    decoder.serialize(rows).map_err(|e| e.to_string())?;
    decoder
        .flush()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no rows".to_string())
}

/// The kernel's `add_files` metadata for `adds`: path, partition values, size, modification time, and the
/// statistics lander computed while writing each part (`numRecords`, null count and min/max of the event time).
pub(super) fn add_files(adds: &[Add]) -> Result<Box<dyn EngineData>, RowsError> {
    let mut columns: Vec<String> = Vec::new();
    let mut rows = Vec::with_capacity(adds.len());
    for a in adds {
        let stats: serde_json::Value = match &a.stats {
            Some(s) => serde_json::from_str(s).map_err(|e| e.to_string())?,
            None => serde_json::Value::Null,
        };
        for c in stats["minValues"]
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys())
        {
            if !columns.contains(c) {
                columns.push(c.clone());
            }
        }
        rows.push(serde_json::json!({
            "path": a.path,
            "partitionValues": a.partition_values,
            "size": a.size,
            "modificationTime": a.modification_time,
            "stats": stats,
        }));
    }
    // Arrow's JSON decoder reads a timestamp from its ISO text; the kernel writes it back (`%.3fZ`).
    let batch = decode_rows(&add_files_schema(&columns)?, &rows)?;
    Ok(Box::new(ArrowEngineData::new(batch)))
}

/// Drops nulls and empty arrays/objects, whose JSON gives Arrow's schema inference no type.
fn prune(v: &mut serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => false,
        serde_json::Value::Array(a) => {
            a.retain_mut(prune);
            !a.is_empty()
        }
        serde_json::Value::Object(o) => {
            o.retain(|_, x| prune(x));
            !o.is_empty()
        }
        _ => true,
    }
}

/// The connector's `commitInfo` row (`Transaction::with_commit_info`): the fields of `info` (a JSON object),
/// typed by inference. The kernel merges it with its own fields (timestamp, operation, engineInfo, ...), so
/// `commitInfo.lander` lands in the commit file as the nested object it is here.
pub(super) fn commit_info(
    info: &serde_json::Value,
) -> Result<(Box<dyn EngineData>, SchemaRef), RowsError> {
    let mut info = info.clone();
    if !prune(&mut info) {
        info = serde_json::json!({ "lander": { "version": env!("CARGO_PKG_VERSION") } });
    }
    let line = info.to_string();
    let (arrow, _) = arrow::json::reader::infer_json_schema(std::io::Cursor::new(line), Some(1))
        .map_err(|e| e.to_string())?;
    let schema = StructType::try_from_arrow(&arrow).map_err(|e| e.to_string())?;
    let batch = decode_rows(&schema, std::slice::from_ref(&info))?;
    Ok((Box::new(ArrowEngineData::new(batch)), Arc::new(schema)))
}

/// The live files of `snapshot` (log replay through the kernel's scan metadata), as `add` actions by path.
/// The kernel hands back `numRecords` of each file's statistics, not its min/max.
pub(super) fn live_files(
    snapshot: &delta_kernel::snapshot::SnapshotRef,
    engine: &dyn Engine,
) -> delta_kernel::KernelResult<BTreeMap<String, Add>> {
    let scan = snapshot.clone().scan_builder().build()?;
    let mut files = BTreeMap::new();
    for meta in scan.scan_metadata(engine)? {
        files = meta?.visit_scan_files(files, |files: &mut BTreeMap<String, Add>, f| {
            let add = Add {
                path: f.path.clone(),
                partition_values: f
                    .partition_values
                    .into_iter()
                    .map(|(k, v)| (k, Some(v)))
                    .collect(),
                size: f.size,
                modification_time: f.modification_time,
                data_change: true,
                stats: f
                    .stats
                    .map(|s| serde_json::json!({ "numRecords": s.num_records }).to_string()),
            };
            files.insert(f.path, add);
        })?;
    }
    Ok(files)
}

/// The kernel's fields of Delta schema fields (`schemaString` entries), for columns a commit adds.
///
/// # Errors
/// A field the kernel cannot read, in words.
pub(super) fn struct_fields(
    fields: Vec<serde_json::Value>,
) -> Result<Vec<delta_kernel::schema::StructField>, String> {
    fields
        .into_iter()
        .map(|f| serde_json::from_value(f).map_err(|e| format!("a new column: {e}")))
        .collect()
}
