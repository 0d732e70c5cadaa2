//! `checkpoint rebuild --from-table`: recreates a lost checkpoint from the Delta tables of bronze.
//!
//! Every commit lander makes names its batch (`txn {appId: lander-<dataset>-<writer id>, version: batch id}`)
//! and its inputs (`commitInfo.lander`: the landing location, each input's path, fingerprint and byte range,
//! records written). Reading each dataset's log ([`crate::table::history::read_log`]), this command writes into
//! an empty checkpoint:
//! - the **writer id** of those app ids, so the next batch id follows the table's `txn` version and recovery
//!   asks the table about this checkpoint's batches;
//! - one **batch record** per commit of this landing: inputs, outputs (the commit's `add`s plus the quarantine
//!   table's `add`s with the same `txn`), rows and event-time bounds from the `add` statistics;
//! - one **file record** per landing file: its latest fingerprint, bytes consumed, records written and batches.
//!   When the file is still in landing and its first `consumed` bytes still have the recorded fingerprint, the
//!   record gets the file's size, modification time and the hash of the consumed prefix, computed now, so the
//!   next run sees it unchanged (or appended to) and reads nothing again. A file whose content changed since is
//!   recorded without a prefix hash: the next run takes it for a new version (dedup keeps bronze free of
//!   duplicates). A file rejected whole (no record written, its copy under `_quarantine/<dataset>/files/`) is
//!   recorded as failed.
//!
//! Not recoverable from the table: per-file quarantined and duplicate counts (0), the lines consumed (0; only
//! used in messages), a CSV dataset's stored column types (the next new file infers them again, and the
//! table's schema check refuses a different inference), and the dedup index (rebuilt lazily from bronze: the
//! index reads back the keys of a day it does not hold).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use object_store::ObjectStoreExt;

use super::RebuildArgs;
use crate::checkpoint::{
    BatchCommit, BatchInput, BatchRecord, CheckpointStore, FileRecord, FileStatus, OutputFile,
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
    records_ok: u64,
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
    let mut logs = BTreeMap::new();
    let mut writers: BTreeMap<String, i64> = BTreeMap::new();
    let mut other_landings = BTreeSet::new();
    for ds in &datasets {
        let log = read_log(&bronze, ds)
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
                other_landings.insert(at.to_string());
                continue;
            }
            let writer = app[prefix.len()..].to_string();
            let t = writers.entry(writer).or_default();
            *t = (*t).max(c.timestamp().unwrap_or(0));
            mine.push(c);
        }
        let quarantine = read_log(&bronze, &format!("_quarantine/{ds}"))
            .await
            .with_context(|| format!("while reading the quarantine log of {ds}"))?;
        logs.insert(ds.clone(), (mine, quarantine));
    }
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
        text.push_str(&format!(
            "{ds}: rebuilt {} batch(es) and {} file record(s): {} unchanged in landing, {} changed since (read again as new versions), {} gone from landing, {} rejected whole\n",
            t.batches, t.files, t.unchanged, t.changed, t.gone, t.failed
        ));
    }
    text.push_str(&format!(
        "checkpoint {} rebuilt with writer id {writer}\n",
        config.checkpoint.display()
    ));
    emit(&text)
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

/// The batch record of commit `c` (batch `id`), with the quarantine parts committed under the same `txn`.
fn batch_record(ds: &str, id: u64, c: &LogCommit, quarantine: &[OutputFile]) -> BatchRecord {
    let at = c
        .timestamp()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_default();
    let lander = c.lander();
    let inputs = lander["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| BatchInput {
            path: i["path"].as_str().unwrap_or_default().to_string(),
            start: i["start"].as_u64().unwrap_or(0),
            end: i["end"].as_u64().unwrap_or(0),
            records_ok: i["recordsOk"].as_u64().unwrap_or(0),
            records_quarantined: 0,
            records_duplicate: 0,
        })
        .collect();
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
    BatchRecord {
        id,
        dataset: ds.to_string(),
        started_at: at,
        committed_at: at,
        inputs,
        rows: lander["rows"]
            .as_u64()
            .unwrap_or_else(|| outputs.iter().map(|o| o.rows).sum()),
        outputs,
        duplicates: 0,
        quarantined: quarantine.iter().map(|o| o.rows).sum(),
        min_event_time: lo,
        max_event_time: hi,
    }
}

/// Writes the batch and file records of one dataset.
async fn rebuild_dataset(
    store: &CheckpointStore,
    landing: &StoreLocation,
    bronze: &StoreLocation,
    ds: &str,
    app: &str,
    commits: &[LogCommit],
    quarantine: &[LogCommit],
) -> anyhow::Result<Tally> {
    let mut q_outputs: BTreeMap<i64, Vec<OutputFile>> = BTreeMap::new();
    let mut q_batches = BTreeSet::new();
    for c in quarantine {
        if let Some((_, v)) = c.txns.iter().find(|(a, _)| a == app) {
            q_batches.insert(*v);
            q_outputs
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
        q_outputs.entry(*id as i64).or_default().push(OutputFile {
            path: copy.clone(),
            rows: 0,
            bytes: *bytes,
        });
    }
    let mut tally = Tally::default();
    let mut files: BTreeMap<String, FileAcc> = BTreeMap::new();
    let mut last = None;
    for c in commits {
        let Some((_, id)) = c.txns.iter().find(|(a, _)| a == app) else {
            continue;
        };
        let id = u64::try_from(*id).unwrap_or(0);
        let batch = batch_record(
            ds,
            id,
            c,
            q_outputs.get(&(id as i64)).map_or(&[], Vec::as_slice),
        );
        for (i, input) in batch.inputs.iter().enumerate() {
            let fp = c.lander()["inputs"][i]["fingerprint"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let acc = files.entry(input.path.clone()).or_default();
            if !acc.batches.is_empty() && input.start == 0 {
                // Read from the start again: a new version of the file.
                acc.versions += 1;
                acc.records_ok = 0;
            }
            acc.records_ok += input.records_ok;
            acc.end = input.end;
            acc.fingerprint = fp;
            acc.batches.push(id);
            acc.processed_at = batch.committed_at;
        }
        let commit = BatchCommit {
            batch: batch.clone(),
            files: Vec::new(),
            schema: None,
        };
        let cp = store.clone();
        blocking(move || cp.commit(&commit))
            .await
            .with_context(|| format!("while writing batch {id} of {ds}"))?;
        tally.batches += 1;
        q_batches.remove(&(id as i64));
        last = Some(batch);
    }
    // Batches only the quarantine table has (every record quarantined before the data table existed): their
    // ids are taken, so the next batch id must pass them.
    for id in q_batches {
        let outputs = q_outputs.remove(&id).unwrap_or_default();
        let at = DateTime::<Utc>::default();
        let batch = BatchRecord {
            id: u64::try_from(id).unwrap_or(0),
            dataset: ds.to_string(),
            started_at: at,
            committed_at: at,
            inputs: Vec::new(),
            rows: 0,
            duplicates: 0,
            quarantined: outputs.iter().map(|o| o.rows).sum(),
            outputs,
            min_event_time: None,
            max_event_time: None,
        };
        let commit = BatchCommit {
            batch,
            files: Vec::new(),
            schema: None,
        };
        let cp = store.clone();
        blocking(move || cp.commit(&commit))
            .await
            .with_context(|| format!("while writing quarantine batch {id} of {ds}"))?;
        tally.batches += 1;
    }
    let Some(last) = last else {
        return Ok(tally);
    };
    let mut records = Vec::with_capacity(files.len());
    for (path, acc) in files {
        let last_batch = acc.batches.last().copied().unwrap_or(0);
        let copy = copies
            .get(&(last_batch, path.clone()))
            .filter(|_| acc.records_ok == 0)
            .map(|(c, _)| bronze.describe(c));
        let r = file_record(landing, ds, &path, acc, copy, &mut tally).await?;
        records.push(r);
    }
    tally.files = records.len();
    let commit = BatchCommit {
        batch: last,
        files: records,
        schema: None,
    };
    let cp = store.clone();
    blocking(move || cp.commit(&commit))
        .await
        .with_context(|| format!("while writing the file records of {ds}"))?;
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
        lines_consumed: 0,
        records_ok: acc.records_ok,
        records_quarantined: 0,
        records_duplicate: 0,
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
        continued_lines: Vec::new(),
        records_truncated: 0,
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
