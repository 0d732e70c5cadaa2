//! Compaction (`lander table optimize`): within each partition of a Delta table, rewrites the parts smaller than
//! `min_file_bytes` into parts near `target_file_bytes`, with the same rows (every column, lineage included;
//! order within a part may change), and commits per partition `remove` of the inputs + `add` of the outputs,
//! both `dataChange=false` ([`super::rewrite`]).
//!
//! # How
//! Per partition the small parts (in path order, which is commit order for lander's names) are packed into
//! groups of at most `target_file_bytes` input bytes; a group of one part is left alone. Each group is read
//! whole (it is at most the target), decoded, and written through the sink's [`PartWriter`] (zstd, the same
//! writer properties and event time statistics as a batch's parts) at unique names in the same partition
//! directory: `part-b00000000-opt<random>-<seq>.parquet`. The rows written must equal the inputs' `numRecords`,
//! and every output must lie in the input partition, or nothing is committed.
//!
//! # Concurrency
//! Appends by other writers never conflict. When a concurrent commit removed an input (another optimize, a
//! repair), the partition's rewrite is abandoned: its outputs are deleted and the partition reported.
//!
//! # Crash windows
//! - While outputs are written (before the commit): they are unreferenced files, invisible to every Delta
//!   reader. A failed or abandoned attempt deletes them at once; a crash leaves them until `lander table vacuum`
//!   deletes unreferenced files older than its retention.
//! - The commit is one put-if-absent log file: it exists (inputs removed, outputs added) or not.
//! - After the commit the inputs stay in storage for time travel until vacuum deletes them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tokio::sync::mpsc;

use super::actions::add_of;
use super::rewrite::{Rewrite, RewriteKind, Rewritten};
use super::{Add, DeltaTable, TableError};
use crate::sink::parquet::{delete_matching, upload_parts};
use crate::sink::{PartEvent, PartWriter, PartitionKey, SinkError, WrittenFile};

/// Inputs fetched concurrently per group.
const FETCH_CONCURRENCY: usize = 8;

/// Part events buffered between the encoder and the uploader (each at most one upload chunk).
const EVENTS_IN_FLIGHT: usize = 4;

/// Rows per decoded batch of an input part.
const READ_BATCH_ROWS: usize = 8192;

/// What to compact and into what.
#[derive(Debug, Clone)]
pub struct OptimizeOptions {
    /// Size the outputs aim at, in bytes (inputs are packed into groups of at most this many bytes).
    pub target_file_bytes: u64,
    /// Parts smaller than this many bytes are compacted; larger ones are left alone.
    pub min_file_bytes: u64,
    /// Rows per row group of the outputs (the sink's setting).
    pub row_group_rows: usize,
    /// Only partitions matching this.
    pub filter: PartitionFilter,
    /// Which matching partitions are due (the CLI: every one with two small parts; the daemon: see [`Trigger`]).
    pub trigger: Trigger,
}

/// When a partition is due for compaction: it has at least `min_parts` small parts and has gone quiet (no part
/// added since `quiet_since_ms`), or it has `max_parts` small parts whatever its activity, so that a day that
/// never goes quiet (files landing every second) still stays bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// Small parts a partition needs before it is compacted (at least 2: one part alone is never rewritten).
    pub(crate) min_parts: usize,
    /// A partition whose newest part (`add.modificationTime`, ms since the epoch) is later than this is not
    /// quiet yet. `None`: every partition is quiet.
    pub(crate) quiet_since_ms: Option<i64>,
    /// Small parts at which a partition is compacted even when it is not quiet.
    pub(crate) max_parts: usize,
}

impl Default for Trigger {
    /// `lander table optimize`: every partition with two small parts or more.
    fn default() -> Self {
        Self {
            min_parts: 2,
            quiet_since_ms: None,
            max_parts: usize::MAX,
        }
    }
}

impl Trigger {
    /// Whether a partition with `small` small parts, the newest of all its parts added at `newest_ms`, is due.
    fn due(&self, small: usize, newest_ms: i64) -> bool {
        let quiet = self.quiet_since_ms.is_none_or(|t| newest_ms <= t);
        small >= self.min_parts.max(2) && (quiet || small >= self.max_parts)
    }
}

/// A conjunction of `column=value` equalities on partition columns (`year=2015 and month=1`). Values compare
/// as integers when both sides are integers (`month=1` matches `01`), else as strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionFilter(Vec<(String, String)>);

impl PartitionFilter {
    /// Parses `year=2015 and month=1` (also `AND`, `,`, quotes around values).
    ///
    /// # Errors
    /// A message naming the term that is not `column=value`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        let normalized = text.replace(',', " and ");
        for term in normalized
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .split(" and ")
            .flat_map(|t| t.split(" AND "))
        {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let (k, v) = term
                .split_once('=')
                .ok_or_else(|| format!("{term:?} is not column=value"))?;
            let v = v.trim().trim_matches(|c| c == '\'' || c == '"');
            let k = k.trim();
            if k.is_empty() || v.is_empty() {
                return Err(format!("{term:?} is not column=value"));
            }
            terms.push((k.to_string(), v.to_string()));
        }
        Ok(Self(terms))
    }

    /// Whether a file with `values` matches every term (a column the file lacks does not match).
    pub(crate) fn matches(&self, values: &BTreeMap<String, Option<String>>) -> bool {
        self.0.iter().all(|(k, want)| {
            let Some(Some(have)) = values.get(k) else {
                return false;
            };
            match (want.parse::<i64>(), have.parse::<i64>()) {
                (Ok(a), Ok(b)) => a == b,
                _ => want == have,
            }
        })
    }
}

/// How the rewrite of one partition ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionOutcome {
    /// Committed as this table version.
    Committed(u64),
    /// Another writer removed these inputs meanwhile: nothing committed, outputs deleted.
    Abandoned(Vec<String>),
    /// Reading, writing or committing failed: nothing committed (outputs deleted when possible).
    Failed(String),
}

/// The rewrite of one partition.
#[derive(Debug, Clone)]
pub struct PartitionReport {
    /// The partition directory, relative to the table root (`year=2015/month=01/day=01`).
    pub partition: String,
    /// Parts read.
    pub files_in: usize,
    /// Their bytes.
    pub bytes_in: u64,
    /// Parts written.
    pub files_out: usize,
    /// Their bytes.
    pub bytes_out: u64,
    /// Rows rewritten.
    pub rows: u64,
    /// How it ended.
    pub outcome: PartitionOutcome,
}

/// The groups of small parts to rewrite in one partition.
#[derive(Debug)]
struct Plan {
    dir: String,
    groups: Vec<Vec<Add>>,
}

/// The directory of a table-relative path (`""` at the root).
fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

/// Groups the small parts of each matching partition that is due (see the module doc and [`Trigger`]).
fn plan(files: &BTreeMap<String, Add>, opts: &OptimizeOptions) -> Vec<Plan> {
    let mut by_dir: BTreeMap<&str, Vec<&Add>> = BTreeMap::new();
    let mut newest: BTreeMap<&str, i64> = BTreeMap::new();
    for a in files.values() {
        if a.partition_values.is_empty() || !opts.filter.matches(&a.partition_values) {
            continue;
        }
        let t = newest.entry(dir_of(&a.path)).or_insert(i64::MIN);
        *t = (*t).max(a.modification_time);
        if (a.size as u64) < opts.min_file_bytes {
            by_dir.entry(dir_of(&a.path)).or_default().push(a);
        }
    }
    let mut plans = Vec::new();
    for (dir, parts) in by_dir {
        if !opts.trigger.due(parts.len(), newest[dir]) {
            continue;
        }
        let mut groups: Vec<Vec<Add>> = Vec::new();
        let mut size = 0u64;
        for a in parts {
            let s = a.size.max(0) as u64;
            match groups.last_mut() {
                Some(g) if size + s <= opts.target_file_bytes => g.push(a.clone()),
                _ => {
                    groups.push(vec![a.clone()]);
                    size = 0;
                }
            }
            size += s;
        }
        groups.retain(|g| g.len() > 1);
        if !groups.is_empty() {
            plans.push(Plan {
                dir: dir.to_string(),
                groups,
            });
        }
    }
    plans
}

/// The rows of `numRecords` in an `add`'s stats, when present.
fn num_records(a: &Add) -> Option<u64> {
    let stats: serde_json::Value = serde_json::from_str(a.stats.as_deref()?).ok()?;
    stats["numRecords"].as_u64()
}

/// Rewrites the small parts of every matching partition of `table`, one commit per partition, and reports each
/// partition (none when nothing needs compacting).
///
/// # Errors
/// [`TableError`] reading the table; a failure within one partition is its [`PartitionOutcome::Failed`].
pub async fn optimize(
    table: &DeltaTable,
    opts: &OptimizeOptions,
) -> Result<Vec<PartitionReport>, TableError> {
    let Some(mut snap) = table.load().await? else {
        return Ok(Vec::new());
    };
    optimize_snapshot(table, &mut snap, opts).await
}

/// [`optimize`] on `snap`, an up-to-date snapshot of `table` kept by the caller (the daemon's automatic
/// compaction updates one snapshot instead of reading the log anew); `snap` is the table's state afterwards.
///
/// # Errors
/// As [`optimize`].
pub(crate) async fn optimize_snapshot(
    table: &DeltaTable,
    snap: &mut super::Snapshot,
    opts: &OptimizeOptions,
) -> Result<Vec<PartitionReport>, TableError> {
    table.check_writable(snap)?;
    let mut reports = Vec::new();
    for p in plan(&snap.files, opts) {
        let token = format!("opt{}", &super::uuid_v4()[..8]);
        let inputs: Vec<&Add> = p.groups.iter().flatten().collect();
        let mut report = PartitionReport {
            partition: p.dir.clone(),
            files_in: inputs.len(),
            bytes_in: inputs.iter().map(|a| a.size.max(0) as u64).sum(),
            files_out: 0,
            bytes_out: 0,
            rows: 0,
            outcome: PartitionOutcome::Failed(String::new()),
        };
        let written = write_partition(table, &p, &token, opts).await;
        let outputs = match written {
            Ok(w) => w,
            Err(reason) => {
                discard(table, &p.dir, &token).await;
                report.outcome = PartitionOutcome::Failed(reason);
                reports.push(report);
                continue;
            }
        };
        report.files_out = outputs.len();
        report.bytes_out = outputs.iter().map(|f| f.bytes).sum();
        report.rows = outputs.iter().map(|f| f.rows).sum();
        // Tests stop here to commit a competing rewrite first, or kill the process (outputs written, no commit).
        #[cfg(feature = "failpoints")]
        {
            crate::faults::gate("optimize-commit").await;
            crate::faults::abort_after("optimize-written");
        }
        report.outcome = match commit_partition(table, snap, &p, &inputs, &outputs).await {
            Ok(Rewritten::At(v)) => {
                #[cfg(feature = "failpoints")]
                crate::faults::abort_after("optimize-committed");
                PartitionOutcome::Committed(v)
            }
            Ok(Rewritten::InputsGone(gone)) => {
                discard(table, &p.dir, &token).await;
                PartitionOutcome::Abandoned(gone)
            }
            Err(e) => {
                // The commit may exist (a store fault after the put): only delete the outputs when the table
                // does not reference them.
                let referenced = match table.load().await {
                    Ok(Some(s)) => outputs.iter().any(|o| {
                        o.final_path
                            .strip_prefix(&format!("{}/", table.root()))
                            .is_some_and(|r| s.files.contains_key(r))
                    }),
                    _ => true,
                };
                if !referenced {
                    discard(table, &p.dir, &token).await;
                }
                PartitionOutcome::Failed(e.to_string())
            }
        };
        reports.push(report);
    }
    Ok(reports)
}

/// Deletes every output named with `token` in partition `dir` (logged, never fatal: vacuum removes leftovers).
async fn discard(table: &DeltaTable, dir: &str, token: &str) {
    let prefix = format!("{}/{dir}", table.root());
    if let Err(e) = delete_matching(&table.bronze, &prefix, token).await {
        tracing::warn!(partition = %prefix, error = %e, "could not delete the outputs of an abandoned compaction; vacuum removes them");
    }
}

async fn commit_partition(
    table: &DeltaTable,
    snap: &mut super::Snapshot,
    p: &Plan,
    inputs: &[&Add],
    outputs: &[WrittenFile],
) -> Result<Rewritten, TableError> {
    let now = chrono::Utc::now().timestamp_millis();
    let adds = outputs
        .iter()
        .map(|f| {
            add_of(table.root(), f, now).map(|mut a| {
                a.data_change = false;
                a
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let predicate: Vec<String> = p
        .dir
        .split('/')
        .filter_map(|s| s.split_once('='))
        .map(|(k, v)| format!("{k}='{v}'"))
        .collect();
    let rows: u64 = outputs.iter().map(|f| f.rows).sum();
    let rw = Rewrite {
        kind: RewriteKind::Optimize,
        removes: inputs.iter().map(|a| a.path.clone()).collect(),
        adds,
        info: serde_json::json!({"lander": {
            "version": env!("CARGO_PKG_VERSION"),
            "optimize": {
                "partition": p.dir,
                "filesRemoved": inputs.len(),
                "filesAdded": outputs.len(),
                "rows": rows,
            }
        }}),
        parameters: vec![
            ("predicate".into(), serde_json::json!(predicate).to_string()),
            ("zOrderBy".into(), "[]".into()),
        ],
    };
    table.commit_rewrite(snap, &rw).await
}

/// Writes the outputs of every group of `p`; the error says why (outputs may be left: the caller discards them).
async fn write_partition(
    table: &DeltaTable,
    p: &Plan,
    token: &str,
    opts: &OptimizeOptions,
) -> Result<Vec<WrittenFile>, String> {
    let mut outputs = Vec::new();
    for (i, group) in p.groups.iter().enumerate() {
        let bytes = fetch(table, group).await?;
        let expected: Option<u64> = group.iter().map(num_records).sum();
        let written = write_group(table, &p.dir, &format!("{token}g{i}"), bytes, opts).await?;
        let rows: u64 = written.iter().map(|f| f.rows).sum();
        if expected.is_some_and(|e| e != rows) {
            return Err(format!(
                "wrote {rows} rows where the inputs hold {} (numRecords): nothing committed",
                expected.unwrap_or_default()
            ));
        }
        let dir = format!("{}/{}/", table.root(), p.dir);
        if let Some(f) = written.iter().find(|f| !f.final_path.starts_with(&dir)) {
            return Err(format!(
                "an output ({}) falls outside the partition: its event times disagree with the partition",
                f.final_path
            ));
        }
        outputs.extend(written);
    }
    Ok(outputs)
}

/// The bytes of each part of `group`, in order.
async fn fetch(table: &DeltaTable, group: &[Add]) -> Result<Vec<Bytes>, String> {
    // Each read owns what it needs, so the future is `Send` for any caller (the daemon spawns it).
    let reads: Vec<(crate::store::StoreLocation, String)> = group
        .iter()
        .map(|a| (table.bronze.clone(), format!("{}/{}", table.root(), a.path)))
        .collect();
    futures::stream::iter(reads.into_iter().map(|(bronze, rel)| async move {
        let got = bronze.store.get(&bronze.path(&rel)).await;
        let read = match got {
            Ok(r) => r.bytes().await,
            Err(e) => Err(e),
        };
        read.map_err(|e| match e {
            object_store::Error::NotFound { .. } => format!(
                "{} is missing from storage (see `lander table check`)",
                bronze.describe(&rel)
            ),
            e => format!("failed to read {}: {e}", bronze.describe(&rel)),
        })
    }))
    .buffered(FETCH_CONCURRENCY)
    .try_collect()
    .await
}

/// Decodes `inputs` and writes their rows as parts named with `token` in partition `dir`.
async fn write_group(
    table: &DeltaTable,
    dir: &str,
    token: &str,
    inputs: Vec<Bytes>,
    opts: &OptimizeOptions,
) -> Result<Vec<WrittenFile>, String> {
    let (tx, rx) = mpsc::channel::<PartEvent>(EVENTS_IN_FLIGHT);
    let (root, dir, token) = (table.root().to_string(), dir.to_string(), token.to_string());
    let row_group_rows = opts.row_group_rows;
    let encoder = tokio::task::spawn_blocking(move || {
        encode(&root, &dir, &token, inputs, row_group_rows, &mut |e| {
            tx.blocking_send(e)
                .map_err(|_| SinkError::Aborted { batch: 0 })
        })
    });
    let uploaded = upload_parts(&table.bronze, rx).await;
    let encoded = encoder
        .await
        .map_err(|e| format!("the compaction task failed: {e}"))?;
    match (encoded, uploaded) {
        (Ok(()), Ok(files)) => Ok(files),
        (_, Err(e)) => Err(e.to_string()),
        (Err(e), _) => Err(e),
    }
}

/// Decodes every input, normalizes its batches onto one schema and writes them through a [`PartWriter`]
/// (synchronous: runs on the blocking pool).
fn encode(
    root: &str,
    dir: &str,
    token: &str,
    inputs: Vec<Bytes>,
    row_group_rows: usize,
    emit: &mut dyn FnMut(PartEvent) -> Result<(), SinkError>,
) -> Result<(), String> {
    let mut readers = Vec::with_capacity(inputs.len());
    for bytes in inputs {
        let b = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|e| format!("cannot read an input part of {dir}: {e}"))?;
        readers.push(b.with_batch_size(READ_BATCH_ROWS));
    }
    let schema = merged_schema(readers.iter().map(|r| r.schema().as_ref()))?;
    let mut writer: Option<(PartWriter, usize)> = None;
    for r in readers {
        let reader = r
            .build()
            .map_err(|e| format!("cannot read an input part of {dir}: {e}"))?;
        for b in reader {
            let b = b.map_err(|e| format!("cannot decode an input part of {dir}: {e}"))?;
            let b = conform(&b, &schema)?;
            if writer.is_none() {
                // Chosen on the first rows; a later row of another day lands in another partition, which
                // the caller refuses to commit.
                let time = time_column(&schema, &b, dir).ok_or_else(|| {
                    format!("no event time column of the parts matches the partition {dir}")
                })?;
                let mut w = PartWriter::new(root, 0, schema.clone(), row_group_rows, u64::MAX)
                    .with_naming(token, true);
                w.set_time_column(time);
                writer = Some((w, time));
            }
            if let Some((w, time)) = writer.as_mut() {
                w.write(&b, *time, emit).map_err(|e| e.to_string())?;
            }
        }
    }
    match writer {
        Some((w, _)) => w.finish(emit).map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

/// One schema for all inputs: their fields by name in first-seen order; a field some inputs lack is nullable.
fn merged_schema<'a>(schemas: impl Iterator<Item = &'a Schema>) -> Result<SchemaRef, String> {
    let schemas: Vec<&Schema> = schemas.collect();
    let mut fields: Vec<Field> = Vec::new();
    for s in &schemas {
        for f in s.fields() {
            match fields.iter().find(|x| x.name() == f.name()) {
                Some(x) if x.data_type() != f.data_type() => {
                    return Err(format!(
                        "column {} has type {} in one input and {} in another",
                        f.name(),
                        x.data_type(),
                        f.data_type()
                    ))
                }
                Some(_) => {}
                None => fields.push(f.as_ref().clone()),
            }
        }
    }
    let fields: Vec<Field> = fields
        .into_iter()
        .map(|f| {
            let everywhere = schemas.iter().all(|s| s.field_with_name(f.name()).is_ok());
            let nullable = f.is_nullable() || !everywhere;
            f.with_nullable(nullable)
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// `b` with the columns of `schema`, by name (nulls for a column it lacks).
fn conform(b: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, String> {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match b.column_by_name(f.name()) {
            Some(c) => c.clone(),
            None => new_null_array(f.data_type(), b.num_rows()),
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

/// The index of the event time column: a UTC microsecond timestamp without nulls in `b` whose every value falls
/// on the partition's day (the column the sink partitioned by).
fn time_column(schema: &Schema, b: &RecordBatch, dir: &str) -> Option<usize> {
    schema.fields().iter().enumerate().find_map(|(i, f)| {
        if !matches!(
            f.data_type(),
            DataType::Timestamp(TimeUnit::Microsecond, Some(_))
        ) {
            return None;
        }
        let col = b.column(i).as_primitive::<TimestampMicrosecondType>();
        let days: BTreeSet<PartitionKey> = col
            .values()
            .iter()
            .map(|t| PartitionKey::from_micros(*t))
            .collect();
        (col.null_count() == 0 && days.iter().all(|k| k.path() == dir)).then_some(i)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(path: &str, size: i64) -> Add {
        let mut pv = BTreeMap::new();
        for seg in path.split('/') {
            if let Some((k, v)) = seg.split_once('=') {
                pv.insert(k.to_string(), Some(v.to_string()));
            }
        }
        Add {
            path: path.into(),
            partition_values: pv,
            size,
            modification_time: 0,
            data_change: true,
            stats: None,
        }
    }

    #[test]
    fn filter_parses_and_compares_numbers_as_numbers() {
        let f = PartitionFilter::parse("year=2015 and month=1").expect("parses");
        let a = add("year=2015/month=01/day=02/p.parquet", 1);
        let b = add("year=2015/month=02/day=02/p.parquet", 1);
        assert!(f.matches(&a.partition_values));
        assert!(!f.matches(&b.partition_values));
        let g = PartitionFilter::parse("day='02', YEAR=2015").expect("parses");
        assert!(!g.matches(&a.partition_values), "column names are exact");
        assert!(PartitionFilter::parse("year").is_err());
        assert!(PartitionFilter::parse("=3").is_err());
        assert!(PartitionFilter::default().matches(&a.partition_values));
    }

    #[test]
    fn plan_packs_small_parts_per_partition_and_skips_lone_ones() {
        let mut files = BTreeMap::new();
        for (p, s) in [
            ("year=2015/month=01/day=01/a", 10),
            ("year=2015/month=01/day=01/b", 10),
            ("year=2015/month=01/day=01/c", 10),
            ("year=2015/month=01/day=01/big", 1000),
            ("year=2015/month=01/day=02/a", 10),
            ("year=2015/month=01/day=03/a", 10),
            ("year=2015/month=01/day=03/b", 10),
        ] {
            files.insert(p.to_string(), add(p, s));
        }
        let opts = OptimizeOptions {
            target_file_bytes: 25,
            min_file_bytes: 100,
            row_group_rows: 10,
            filter: PartitionFilter::default(),
            trigger: Trigger::default(),
        };
        let plans = plan(&files, &opts);
        let got: Vec<(String, Vec<usize>)> = plans
            .iter()
            .map(|p| (p.dir.clone(), p.groups.iter().map(Vec::len).collect()))
            .collect();
        // day=01: a+b fit 25 bytes, c alone is left; day=02 has one small part; the big part is never input.
        assert_eq!(
            got,
            [
                ("year=2015/month=01/day=01".to_string(), vec![2]),
                ("year=2015/month=01/day=03".to_string(), vec![2])
            ]
        );
        let only = OptimizeOptions {
            filter: PartitionFilter::parse("day=3").expect("parses"),
            ..opts
        };
        assert_eq!(plan(&files, &only).len(), 1);
    }
}
