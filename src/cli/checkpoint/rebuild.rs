//! `checkpoint rebuild --from-table`: recreates a lost checkpoint from the Delta tables of bronze.
//!
//! Every commit lander makes names its batch (`txn {appId: lander-<dataset>-<writer id>, version: batch id}`)
//! and its inputs (`commitInfo.lander`: the landing location, each input's path, fingerprint, byte range and
//! records written, quarantined and dropped as duplicates; the batch's counts; the CSV schema when the batch
//! fixed or evolved it). Reading each dataset's log ([`crate::table::history::read_log`]), this command writes
//! into an empty checkpoint:
//! - the **writer id** of those app ids, so the next batch id follows the table's `txn` version and recovery
//!   asks the table about this checkpoint's batches;
//! - one **batch record** per commit of this landing: inputs, outputs (the commit's `add`s plus the quarantine
//!   table's `add`s with the same `txn`), counts, and event-time bounds from the `add` statistics;
//! - one **file record** per landing file: its latest fingerprint, bytes consumed, lines consumed, records
//!   written, quarantined, dropped as duplicates and kept in part, and batches. When the file is still in landing and its first
//!   `consumed` bytes still have the recorded fingerprint, the record gets the file's size, modification time
//!   and the hash of the consumed prefix, computed now, so the next run sees it unchanged (or appended to) and
//!   reads nothing again. A file whose content changed since is recorded without a prefix hash: the next run
//!   takes it for a new version (dedup keeps bronze free of duplicates). A file rejected whole (no record
//!   written, its copy under `_quarantine/<dataset>/files/`) is recorded as failed;
//! - a CSV dataset's **stored column types**: the newest `csvSchema` of its commits.
//!
//! Commits of an older lander lack the quarantined and duplicate counts (recorded as 0, and the output says
//! so), the file's lines consumed, records kept in part and continued lines (0 and empty), and the CSV schema
//! (the next new file infers it again, and the table's schema check refuses a different inference). Never
//! recoverable from the table: the dedup index (rebuilt lazily from bronze: the index reads back the keys of a
//! day it does not hold).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use object_store::ObjectStoreExt;

use super::RebuildArgs;
use crate::checkpoint::{
    BatchCommit, BatchInput, BatchRecord, CheckpointStore, FileRecord, FileStatus, OutputFile,
    StoredCounts, StoredSchema,
};
use crate::cli::output::{blocking, emit, open_write};
use crate::cli::{load_config, UsageError};
use crate::source::fingerprint::{fingerprint, hash_prefix};
use crate::store::StoreLocation;
use crate::table::history::{read_log, LogCommit};

/// One landing file as the commits describe it, oldest batch first.
#[derive(Debug, Default)]
struct FileAcc {
    fingerprint: String,
    end: u64,
    counts: StoredCounts,
    /// The file's state after its newest read, from commits that hold it (else 0 and empty).
    lines_consumed: u64,
    records_truncated: u64,
    continued_lines: Vec<u64>,
    batches: Vec<u64>,
    versions: u32,
    processed_at: DateTime<Utc>,
}

/// What was rebuilt for one dataset.
#[derive(Debug, Default)]
struct Tally {
    batches: usize,
    files: usize,
    unchanged: usize,
    changed: usize,
    gone: usize,
    failed: usize,
    /// Commits whose inputs lack the quarantined and duplicate counts (written by an older lander).
    counts_unknown: usize,
    /// Whether a commit held the CSV schema (`commitInfo.lander.csvSchema`), now the stored one.
    schema: bool,
}

/// The quarantine side of a dataset: the outputs of each batch id (quarantine table parts and copies of files
/// rejected whole), and the batch ids the quarantine table has.
struct QuarantineSide {
    outputs: BTreeMap<i64, Vec<OutputFile>>,
    batches: BTreeSet<i64>,
    /// (batch id, landing path) -> (copy path relative to bronze, bytes): see [`failed_copies`].
    copies: BTreeMap<(u64, String), (String, u64)>,
}

pub(super) async fn rebuild(a: RebuildArgs) -> anyhow::Result<()> {
    if !a.from_table {
        return Err(UsageError(
            "checkpoint rebuild needs --from-table (the delta tables of bronze are what it rebuilds from)".into(),
        )
        .into());
    }
    let config = load_config(&a.locations)?;
    let landing = StoreLocation::open_with(&config.landing, &config.storage)
        .context("while opening landing")?;
    let bronze = StoreLocation::open_with(&config.bronze, &config.storage)
        .context("while opening bronze")?;
    let landing_key = landing.describe("").trim_end_matches('/').to_string();
    let datasets: Vec<String> = match &a.dataset {
        Some(d) => vec![d.clone()],
        None => config.datasets.keys().cloned().collect(),
    };
    let Logs {
        logs,
        writers,
        other_landings,
    } = read_logs(&bronze, &datasets, &landing_key).await?;
    // The writer of the newest commit: two checkpoints over one landing is not a layout lander makes.
    let Some(writer) = writers
        .iter()
        .max_by_key(|(_, t)| **t)
        .map(|(w, _)| w.clone())
    else {
        bail!(
            "no commit in the tables of {} names landing {landing_key}{}: nothing to rebuild",
            bronze.describe(""),
            if other_landings.is_empty() {
                String::new()
            } else {
                format!(
                    " (they name {})",
                    other_landings.into_iter().collect::<Vec<_>>().join(", ")
                )
            }
        );
    };
    if writers.len() > 1 {
        tracing::warn!(writers = ?writers.keys().collect::<Vec<_>>(), chosen = %writer, "commits of several checkpoints name this landing; rebuilding the newest one's");
    }
    let store = open_empty(&config).await?;
    let (cp, w) = (store.clone(), writer.clone());
    blocking(move || cp.set_writer_id(&w))
        .await
        .context("while writing the checkpoint's id")?;
    let mut text = String::new();
    for (ds, (commits, quarantine)) in &logs {
        let app = crate::table::app_id(ds, &writer);
        let t = rebuild_dataset(&store, &landing, &bronze, ds, &app, commits, quarantine).await?;
        if t.batches == 0 {
            continue;
        }
        let csv = matches!(
            config.datasets.get(ds),
            Some(crate::config::DatasetConfig::Csv { .. })
        );
        text.push_str(&summary(ds, &t, csv));
    }
    text.push_str(&format!(
        "checkpoint {} rebuilt with writer id {writer}\n",
        config.checkpoint.display()
    ));
    emit(&text)
}

/// The logs of the datasets' tables, as [`rebuild`] reads them.
#[derive(Default)]
struct Logs {
    /// Per dataset: the data table's commits of this landing's lander checkpoints, and the quarantine table's.
    logs: BTreeMap<String, (Vec<LogCommit>, Vec<LogCommit>)>,
    /// Writer id -> its newest commit's time.
    writers: BTreeMap<String, i64>,
    /// The landings other lander commits name.
    other_landings: BTreeSet<String>,
}

/// Reads the logs of `datasets` (data and quarantine tables), keeping the data commits of landing `landing_key`.
async fn read_logs(
    bronze: &StoreLocation,
    datasets: &[String],
    landing_key: &str,
) -> anyhow::Result<Logs> {
    let mut out = Logs::default();
    for ds in datasets {
        let log = read_log(bronze, ds)
            .await
            .with_context(|| format!("while reading the log of {}", bronze.describe(ds)))?;
        let prefix = format!("lander-{ds}-");
        let mut mine = Vec::new();
        for c in log {
            let Some((app, _)) = c.txns.iter().find(|(app, _)| app.starts_with(&prefix)) else {
                continue;
            };
            let at = c.lander()["landing"].as_str().unwrap_or_default();
            if at.trim_end_matches('/') != landing_key {
                out.other_landings.insert(at.to_string());
                continue;
            }
            let writer = app[prefix.len()..].to_string();
            let t = out.writers.entry(writer).or_default();
            *t = (*t).max(c.timestamp().unwrap_or(0));
            mine.push(c);
        }
        let quarantine = read_log(bronze, &format!("_quarantine/{ds}"))
            .await
            .with_context(|| format!("while reading the quarantine log of {ds}"))?;
        out.logs.insert(ds.clone(), (mine, quarantine));
    }
    Ok(out)
}

/// What `rebuild` says about dataset `ds` (`csv`: a CSV dataset, which has a stored schema to restore).
fn summary(ds: &str, t: &Tally, csv: bool) -> String {
    let mut text = format!(
        "{ds}: rebuilt {} batch(es) and {} file record(s): {} unchanged in landing, {} changed since (read again as new versions), {} gone from landing, {} rejected whole\n",
        t.batches, t.files, t.unchanged, t.changed, t.gone, t.failed
    );
    if t.counts_unknown > 0 {
        text.push_str(&format!(
            "{ds}: {} commit(s) written by an older lander do not hold the per-file quarantined and duplicate counts: their files' counts are unknown and recorded as 0\n",
            t.counts_unknown
        ));
    }
    if csv && !t.schema {
        text.push_str(&format!(
            "{ds}: no commit holds the CSV column types (written by an older lander): the next new file infers them again\n"
        ));
    }
    text
}

/// Opens the checkpoint for writing, refusing one that holds records.
async fn open_empty(config: &crate::config::Config) -> anyhow::Result<CheckpointStore> {
    let store = open_write(config, "rebuild it").await?;
    let cp = store.clone();
    let (files, batches) = blocking(move || {
        Ok::<_, crate::checkpoint::CheckpointError>((
            cp.files(None)?.len(),
            cp.batches(None)?.len(),
        ))
    })
    .await
    .context("while reading the checkpoint")?;
    if files + batches > 0 {
        return Err(UsageError(format!(
            "checkpoint {} already holds {files} file and {batches} batch record(s): rebuild writes into an empty \
             checkpoint; move this one away first",
            config.checkpoint.display()
        ))
        .into());
    }
    Ok(store)
}

/// The copies of files rejected whole, `_quarantine/<ds>/files/b<id: 8 digits>[-<token>]/<landing path>`:
/// (batch id, landing path) -> (copy path relative to bronze, bytes).
async fn failed_copies(
    bronze: &StoreLocation,
    ds: &str,
) -> anyhow::Result<BTreeMap<(u64, String), (String, u64)>> {
    use futures::TryStreamExt;
    let dir = format!("_quarantine/{ds}/files");
    let listed: Vec<object_store::ObjectMeta> = bronze
        .store
        .list(Some(&bronze.path(&dir)))
        .try_collect()
        .await
        .with_context(|| format!("while listing {}", bronze.describe(&dir)))?;
    let mut out = BTreeMap::new();
    for m in listed {
        let Some(rel) = bronze.relative(&m.location) else {
            continue;
        };
        let Some((batch, path)) = rel
            .strip_prefix(&format!("{dir}/"))
            .and_then(|r| r.split_once('/'))
        else {
            continue;
        };
        let digits = batch.strip_prefix('b').unwrap_or_default();
        let digits = digits.split('-').next().unwrap_or_default();
        if let Ok(id) = digits.parse::<u64>() {
            out.insert((id, path.to_string()), (rel.clone(), m.size));
        }
    }
    Ok(out)
}

/// µs since the epoch of a Delta timestamp statistic (`2015-01-01T00:00:00.000Z`).
fn stat_micros(v: &serde_json::Value) -> Option<i64> {
    let s = v.as_object()?.values().next()?.as_str()?;
    Some(DateTime::parse_from_rfc3339(s).ok()?.timestamp_micros())
}

/// Input `i` of a commit's `commitInfo.lander.inputs`, and whether it holds the quarantined and duplicate
/// counts (commits of older landers have `recordsOk` alone: the others are then 0).
fn batch_input(i: &serde_json::Value) -> (BatchInput, bool) {
    let count = |k: &str| i[k].as_u64();
    let input = BatchInput {
        path: i["path"].as_str().unwrap_or_default().to_string(),
        start: count("start").unwrap_or(0),
        end: count("end").unwrap_or(0),
        counts: StoredCounts {
            rows: count("recordsOk").unwrap_or(0),
            duplicates: count("recordsDuplicate").unwrap_or(0),
            quarantined: count("recordsQuarantined").unwrap_or(0),
        },
    };
    let known = count("recordsQuarantined").is_some() && count("recordsDuplicate").is_some();
    (input, known)
}

/// The batch record of commit `c` (batch `id`), with the quarantine parts committed under the same `txn`, and
/// whether its inputs hold their quarantined and duplicate counts.
fn batch_record(
    ds: &str,
    id: u64,
    c: &LogCommit,
    quarantine: &[OutputFile],
) -> (BatchRecord, bool) {
    let at = c
        .timestamp()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_default();
    let lander = c.lander();
    let (inputs, known): (Vec<BatchInput>, Vec<bool>) = lander["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(batch_input)
        .unzip();
    let (mut lo, mut hi) = (None::<i64>, None::<i64>);
    let mut outputs: Vec<OutputFile> = Vec::new();
    for add in &c.adds {
        let stats: serde_json::Value = add
            .stats
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        if let Some(m) = stat_micros(&stats["minValues"]) {
            lo = Some(lo.map_or(m, |x| x.min(m)));
        }
        if let Some(m) = stat_micros(&stats["maxValues"]) {
            hi = Some(hi.map_or(m, |x| x.max(m)));
        }
        outputs.push(OutputFile {
            path: format!("{ds}/{}", add.path),
            rows: add.rows.unwrap_or(0),
            bytes: add.size.unwrap_or(0).max(0) as u64,
        });
    }
    outputs.extend(quarantine.iter().cloned());
    // The batch's own counts when the commit holds them; else the sums its inputs and the quarantine give (a
    // file rejected whole then counts 0, not 1).
    let duplicates = lander["duplicates"]
        .as_u64()
        .unwrap_or_else(|| inputs.iter().map(|i| i.counts.duplicates).sum());
    let quarantined = lander["quarantined"]
        .as_u64()
        .unwrap_or_else(|| quarantine.iter().map(|o| o.rows).sum());
    let batch = BatchRecord {
        id,
        dataset: ds.to_string(),
        started_at: at,
        committed_at: at,
        inputs,
        counts: StoredCounts {
            rows: lander["rows"]
                .as_u64()
                .unwrap_or_else(|| outputs.iter().map(|o| o.rows).sum()),
            duplicates,
            quarantined,
        },
        outputs,
        min_event_time: lo,
        max_event_time: hi,
    };
    (batch, known.into_iter().all(|k| k))
}

/// The stored CSV schema a commit fixed or evolved (`commitInfo.lander.csvSchema`), if it holds one.
///
/// Read from `commitInfo` rather than derived from the table's schema (`metaData`), because only the former is
/// exact: a stored column is (header name, bronze name, type), and the table has the bronze names alone (header
/// names are normalized into them, `Order Date` and `order-date` both becoming `order_date`), plus lineage,
/// `_record_key` and `_rescued_data` columns that are not stored columns.
fn commit_schema(ds: &str, c: &LogCommit) -> anyhow::Result<Option<StoredSchema>> {
    let Some(v) = c.lander().get("csvSchema") else {
        return Ok(None);
    };
    serde_json::from_value(v.clone())
        .map(Some)
        .with_context(|| {
            format!(
                "while reading the CSV schema in version {} of {ds}",
                c.version
            )
        })
}

/// Writes `commit` into the checkpoint (`what` names it in an error).
async fn write(store: &CheckpointStore, commit: BatchCommit, what: String) -> anyhow::Result<()> {
    let cp = store.clone();
    blocking(move || cp.commit(&commit))
        .await
        .with_context(|| format!("while writing {what}"))
}

/// The quarantine side of `ds` for app id `app`: the quarantine table's commits and the copies of files
/// rejected whole.
async fn quarantine_side(
    bronze: &StoreLocation,
    ds: &str,
    app: &str,
    quarantine: &[LogCommit],
) -> anyhow::Result<QuarantineSide> {
    let mut outputs: BTreeMap<i64, Vec<OutputFile>> = BTreeMap::new();
    let mut batches = BTreeSet::new();
    for c in quarantine {
        if let Some((_, v)) = c.txns.iter().find(|(a, _)| a == app) {
            batches.insert(*v);
            outputs
                .entry(*v)
                .or_default()
                .extend(c.adds.iter().map(|a| OutputFile {
                    path: format!("_quarantine/{ds}/{}", a.path),
                    rows: a.rows.unwrap_or(0),
                    bytes: a.size.unwrap_or(0).max(0) as u64,
                }));
        }
    }
    let copies = failed_copies(bronze, ds).await?;
    for ((id, _), (copy, bytes)) in &copies {
        outputs.entry(*id as i64).or_default().push(OutputFile {
            path: copy.clone(),
            rows: 0,
            bytes: *bytes,
        });
    }
    Ok(QuarantineSide {
        outputs,
        batches,
        copies,
    })
}

/// Adds the inputs of committed batch `batch` (their fingerprints in `c`) to the landing files they read.
fn accumulate(files: &mut BTreeMap<String, FileAcc>, c: &LogCommit, batch: &BatchRecord) {
    for (i, input) in batch.inputs.iter().enumerate() {
        let info = &c.lander()["inputs"][i];
        let acc = files.entry(input.path.clone()).or_default();
        if !acc.batches.is_empty() && input.start == 0 {
            // Read from the start again: a new version of the file.
            acc.versions += 1;
            acc.counts = StoredCounts::default();
        }
        acc.counts += input.counts;
        acc.end = input.end;
        acc.fingerprint = info["fingerprint"].as_str().unwrap_or_default().to_string();
        acc.lines_consumed = info["fileLinesConsumed"].as_u64().unwrap_or(0);
        acc.records_truncated = info["fileRecordsTruncated"].as_u64().unwrap_or(0);
        acc.continued_lines = info["fileContinuedLines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_u64)
            .collect();
        acc.batches.push(batch.id);
        acc.processed_at = batch.committed_at;
    }
}

/// What the data table's commits of one dataset rebuild: the landing files they read, the newest batch (its
/// sled commit carries the file records) and the newest stored CSV schema.
#[derive(Default)]
struct DataSide {
    files: BTreeMap<String, FileAcc>,
    last: Option<BatchRecord>,
    schema: Option<StoredSchema>,
}

/// Writes the batch record of each commit of `app` among `commits`, taking its batch id out of `q.batches`.
async fn data_batches(
    store: &CheckpointStore,
    ds: &str,
    app: &str,
    commits: &[LogCommit],
    q: &mut QuarantineSide,
    tally: &mut Tally,
) -> anyhow::Result<DataSide> {
    let mut side = DataSide::default();
    for c in commits {
        let Some((_, id)) = c.txns.iter().find(|(a, _)| a == app) else {
            continue;
        };
        let id = u64::try_from(*id).unwrap_or(0);
        let parts = q.outputs.get(&(id as i64)).map_or(&[][..], Vec::as_slice);
        let (batch, known) = batch_record(ds, id, c, parts);
        if !known {
            tally.counts_unknown += 1;
        }
        if let Some(s) = commit_schema(ds, c)? {
            side.schema = Some(s);
        }
        accumulate(&mut side.files, c, &batch);
        let commit = BatchCommit {
            batch: batch.clone(),
            files: Vec::new(),
            schema: None,
        };
        write(store, commit, format!("batch {id} of {ds}")).await?;
        tally.batches += 1;
        q.batches.remove(&(id as i64));
        side.last = Some(batch);
    }
    Ok(side)
}

/// Writes the batches only the quarantine table has (every record quarantined before the data table existed):
/// their ids are taken, so the next batch id must pass them.
async fn quarantine_batches(
    store: &CheckpointStore,
    ds: &str,
    q: &mut QuarantineSide,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    for id in std::mem::take(&mut q.batches) {
        let outputs = q.outputs.remove(&id).unwrap_or_default();
        let at = DateTime::<Utc>::default();
        let batch = BatchRecord {
            id: u64::try_from(id).unwrap_or(0),
            dataset: ds.to_string(),
            started_at: at,
            committed_at: at,
            inputs: Vec::new(),
            counts: StoredCounts {
                rows: 0,
                duplicates: 0,
                quarantined: outputs.iter().map(|o| o.rows).sum(),
            },
            outputs,
            min_event_time: None,
            max_event_time: None,
        };
        let commit = BatchCommit {
            batch,
            files: Vec::new(),
            schema: None,
        };
        write(store, commit, format!("quarantine batch {id} of {ds}")).await?;
        tally.batches += 1;
    }
    Ok(())
}

/// Writes the batch and file records of one dataset, and its stored CSV schema.
async fn rebuild_dataset(
    store: &CheckpointStore,
    landing: &StoreLocation,
    bronze: &StoreLocation,
    ds: &str,
    app: &str,
    commits: &[LogCommit],
    quarantine: &[LogCommit],
) -> anyhow::Result<Tally> {
    let mut q = quarantine_side(bronze, ds, app, quarantine).await?;
    let mut tally = Tally::default();
    let data = data_batches(store, ds, app, commits, &mut q, &mut tally).await?;
    quarantine_batches(store, ds, &mut q, &mut tally).await?;
    let Some(last) = data.last else {
        return Ok(tally);
    };
    let mut records = Vec::with_capacity(data.files.len());
    for (path, acc) in data.files {
        let last_batch = acc.batches.last().copied().unwrap_or(0);
        let copy = q
            .copies
            .get(&(last_batch, path.clone()))
            .filter(|_| acc.counts.rows == 0)
            .map(|(c, _)| bronze.describe(c));
        let r = file_record(landing, ds, &path, acc, copy, &mut tally).await?;
        records.push(r);
    }
    tally.files = records.len();
    tally.schema = data.schema.is_some();
    let commit = BatchCommit {
        batch: last,
        files: records,
        schema: data.schema,
    };
    write(store, commit, format!("the file records of {ds}")).await?;
    Ok(tally)
}

/// The record of landing file `path`, checked against what landing holds now (see the module doc).
async fn file_record(
    landing: &StoreLocation,
    ds: &str,
    path: &str,
    acc: FileAcc,
    copy: Option<String>,
    tally: &mut Tally,
) -> anyhow::Result<FileRecord> {
    let mut r = FileRecord {
        dataset: ds.to_string(),
        path: path.to_string(),
        size: acc.end,
        modified: acc.processed_at,
        fingerprint: acc.fingerprint.clone(),
        head_hash: String::new(),
        bytes_consumed: acc.end,
        prefix_hash: None,
        lines_consumed: acc.lines_consumed,
        counts: acc.counts,
        batches: acc.batches,
        versions: acc.versions,
        status: match copy {
            Some(copy) => {
                tally.failed += 1;
                FileStatus::Failed {
                    reason: format!("rejected whole (rebuilt from the table; its copy is {copy})"),
                }
            }
            None => FileStatus::Ok,
        },
        processed_at: acc.processed_at,
        continued_lines: acc.continued_lines,
        records_truncated: acc.records_truncated,
    };
    let location = landing.path(path);
    let meta = match landing.store.head(&location).await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) => {
            tally.gone += 1;
            return Ok(r);
        }
        Err(e) => {
            return Err(e).with_context(|| format!("while reading {}", landing.describe(path)))
        }
    };
    if meta.size < acc.end {
        tally.changed += 1;
        return Ok(r);
    }
    let fp = fingerprint(landing, &location, path, acc.end)
        .await
        .with_context(|| format!("while fingerprinting {}", landing.describe(path)))?;
    if fp.fingerprint != acc.fingerprint {
        tally.changed += 1;
        return Ok(r);
    }
    r.head_hash = fp.head_hash;
    // A failed file's record has no prefix hash (nothing of it was consumed into bronze).
    if !matches!(r.status, FileStatus::Failed { .. }) {
        let prefix = hash_prefix(landing, &location, path, acc.end)
            .await
            .with_context(|| format!("while hashing {}", landing.describe(path)))?;
        r.prefix_hash = Some(prefix.hex());
    }
    r.modified = meta.last_modified;
    if meta.size > acc.end && !matches!(r.status, FileStatus::Failed { .. }) {
        // The listing sees the size differ, checks the prefix, and reads the rest as an append.
        r.status = FileStatus::Partial;
    }
    tally.unchanged += 1;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_of_older_commits_rebuild_with_their_counts_unknown() {
        let old = serde_json::json!({"path": "g/a", "fingerprint": "f", "start": 0, "end": 9, "recordsOk": 3});
        let (input, known) = batch_input(&old);
        assert!(!known);
        assert_eq!(
            (input.end, input.counts),
            (
                9,
                StoredCounts {
                    rows: 3,
                    ..Default::default()
                }
            )
        );
        let mut new = old.clone();
        new["recordsQuarantined"] = 1.into();
        new["recordsDuplicate"] = 2.into();
        let (input, known) = batch_input(&new);
        assert!(known);
        assert_eq!(
            input.counts,
            StoredCounts {
                rows: 3,
                duplicates: 2,
                quarantined: 1
            }
        );
        let t = Tally {
            batches: 1,
            counts_unknown: 1,
            ..Default::default()
        };
        let text = summary("sales", &t, true);
        assert!(text.contains("sales: 1 commit(s) written by an older lander do not hold the per-file quarantined and duplicate counts"), "{text}");
        assert!(
            text.contains("sales: no commit holds the CSV column types"),
            "{text}"
        );
        let t = Tally {
            batches: 1,
            schema: true,
            ..Default::default()
        };
        assert!(!summary("sales", &t, true).contains("older lander"));
        assert!(!summary("gharchive", &Tally::default(), false).contains("older lander"));
    }
}
