//! `lander table check [--repair]`: the files a table's current snapshot references that storage lacks (one
//! listing per directory, through lander's store: local, HDFS, S3), their removal in one commit (like
//! Databricks' `FSCK REPAIR TABLE`), and which landing inputs wrote the rows that went with them (from each
//! commit's `commitInfo.lander`).
//!
//! Guarantees: `check` only reads. A repair removes exactly the references found missing, in one put-if-absent
//! commit with `dataChange=true` (their rows leave the table); when another writer removed one of them first
//! (a compaction), nothing is committed and the caller checks again.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;

use super::rewrite::{Rewrite, RewriteKind, Rewritten};
use super::{Add, DeltaTable, Snapshot, TableError};

/// Directories listed concurrently.
const LIST_CONCURRENCY: usize = 8;

/// Log files read concurrently when tracing lost rows to their inputs.
const READ_CONCURRENCY: usize = 16;

/// A file the snapshot references that storage lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingFile {
    /// Path relative to the table root, as in the log.
    pub path: String,
    /// Its size per the log.
    pub size: i64,
    /// Its rows per the log's statistics, when known.
    pub rows: Option<u64>,
}

/// A landing input whose rows went (in part) into a lost file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LostInput {
    /// The table version that committed it.
    pub(crate) version: u64,
    /// lander's batch id of that commit.
    pub(crate) batch: Option<i64>,
    /// The landing file, relative to its dataset's landing directory as the batch recorded it.
    pub path: String,
}

fn rows_of(a: &Add) -> Option<u64> {
    let stats: serde_json::Value = serde_json::from_str(a.stats.as_deref()?).ok()?;
    stats["numRecords"].as_u64()
}

fn decode(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

/// The files of `snap` that storage lacks, by path.
///
/// # Errors
/// [`TableError::Store`] when a directory cannot be listed (a missing directory is an empty one).
pub async fn missing_files(
    table: &DeltaTable,
    snap: &Snapshot,
) -> Result<Vec<MissingFile>, TableError> {
    let mut by_dir: BTreeMap<String, Vec<&Add>> = BTreeMap::new();
    for a in snap.files.values() {
        let rel = decode(&a.path);
        let dir = rel.rsplit_once('/').map_or("", |(d, _)| d).to_string();
        by_dir.entry(dir).or_default().push(a);
    }
    let bronze = &table.bronze;
    let root = table.root().to_string();
    let listed: Vec<(String, BTreeSet<String>)> = futures::stream::iter(by_dir.keys().cloned())
        .map(|dir| {
            let prefix = if dir.is_empty() {
                root.clone()
            } else {
                format!("{root}/{dir}")
            };
            async move {
                let mut names = BTreeSet::new();
                let mut list = bronze.store.list(Some(&bronze.path(&prefix)));
                while let Some(item) = list.next().await {
                    match item {
                        Ok(meta) => {
                            if let Some(r) = bronze.relative(&meta.location) {
                                names.insert(r);
                            }
                        }
                        Err(object_store::Error::NotFound { .. }) => break,
                        Err(source) => {
                            return Err(TableError::Store {
                                action: "list",
                                path: bronze.describe(&prefix),
                                source,
                            })
                        }
                    }
                }
                Ok((dir, names))
            }
        })
        .buffer_unordered(LIST_CONCURRENCY)
        .try_collect()
        .await?;
    let listed: BTreeMap<String, BTreeSet<String>> = listed.into_iter().collect();
    let mut missing = Vec::new();
    for (dir, files) in by_dir {
        let present = listed.get(&dir);
        for a in files {
            let full = format!("{root}/{}", decode(&a.path));
            if !present.is_some_and(|p| p.contains(&full)) {
                missing.push(MissingFile {
                    path: a.path.clone(),
                    size: a.size,
                    rows: rows_of(a),
                });
            }
        }
    }
    Ok(missing)
}

/// Removes the references to `missing` in one commit (`dataChange=true`).
///
/// # Errors
/// [`TableError`] committing.
pub async fn repair(
    table: &DeltaTable,
    snap: &mut Snapshot,
    missing: &[MissingFile],
) -> Result<Rewritten, TableError> {
    let rows: u64 = missing.iter().filter_map(|m| m.rows).sum();
    let rw = Rewrite {
        kind: RewriteKind::Repair,
        removes: missing.iter().map(|m| m.path.clone()).collect(),
        adds: Vec::new(),
        info: serde_json::json!({"lander": {
            "version": env!("CARGO_PKG_VERSION"),
            "repair": {
                "filesRemoved": missing.len(),
                "rowsRemoved": rows,
                "paths": missing.iter().map(|m| m.path.clone()).collect::<Vec<_>>(),
            }
        }}),
        parameters: vec![("repair".into(), "missing files".into())],
    };
    table.commit_rewrite(snap, &rw).await
}

/// What one commit file says about where its files came from.
#[derive(Debug, Default)]
struct CommitOrigin {
    batch: Option<i64>,
    inputs: Vec<String>,
    removes: Vec<String>,
}

/// The body of every commit file (`_delta_log/<version>.json`) of `table`, by version.
async fn read_log(table: &DeltaTable) -> Result<Vec<(u64, Vec<u8>)>, TableError> {
    let bronze = &table.bronze;
    let log = format!("{}/_delta_log", table.root());
    let mut versions = Vec::new();
    let mut list = bronze.store.list(Some(&bronze.path(&log)));
    while let Some(item) = list.next().await {
        let meta = item.map_err(|source| TableError::Store {
            action: "list",
            path: bronze.describe(&log),
            source,
        })?;
        let name = meta.location.filename().unwrap_or_default();
        if let Some(v) = name
            .strip_suffix(".json")
            .and_then(|v| v.parse::<u64>().ok())
        {
            versions.push(v);
        }
    }
    let commits: Vec<(u64, Vec<u8>)> = futures::stream::iter(versions)
        .map(|v| {
            let rel = format!("{log}/{v:020}.json");
            async move {
                let got = match bronze.store.get(&bronze.path(&rel)).await {
                    Ok(r) => r.bytes().await,
                    Err(e) => Err(e),
                };
                got.map(|b| (v, b.to_vec()))
                    .map_err(|source| TableError::Store {
                        action: "read",
                        path: bronze.describe(&rel),
                        source,
                    })
            }
        })
        .buffer_unordered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(commits)
}

/// Every data file a commit of `table` removed (a compaction's inputs, a repair's lost files), with the version
/// that removed it: files a batch committed that are rightly no longer in the table.
///
/// # Errors
/// [`TableError`] listing or reading the log.
pub(crate) async fn removed_paths(table: &DeltaTable) -> Result<BTreeMap<String, u64>, TableError> {
    let mut removed = BTreeMap::new();
    for (v, body) in read_log(table).await? {
        for line in String::from_utf8_lossy(&body).lines() {
            if let Ok(action) = serde_json::from_str::<serde_json::Value>(line) {
                if let Some(p) = action["remove"]["path"].as_str() {
                    removed.insert(p.to_string(), v);
                }
            }
        }
    }
    Ok(removed)
}

/// The landing inputs of the batches that wrote `paths` (table-relative), read from every commit's
/// `commitInfo.lander.inputs`. A file written by a compaction is traced through the files that compaction
/// removed. Inputs of a batch count even when only some of its rows went to a lost file.
///
/// # Errors
/// [`TableError`] listing or reading the log.
pub async fn lost_inputs(
    table: &DeltaTable,
    paths: &[String],
) -> Result<Vec<LostInput>, TableError> {
    let commits = read_log(table).await?;
    let mut added_by: BTreeMap<String, u64> = BTreeMap::new();
    let mut origins: BTreeMap<u64, CommitOrigin> = BTreeMap::new();
    for (v, body) in commits {
        let o = origins.entry(v).or_default();
        for line in String::from_utf8_lossy(&body).lines() {
            let Ok(action) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if let Some(p) = action["add"]["path"].as_str() {
                added_by.insert(p.to_string(), v);
            } else if let Some(p) = action["remove"]["path"].as_str() {
                o.removes.push(p.to_string());
            } else if let Some(l) = action["commitInfo"]["lander"].as_object() {
                o.batch = l.get("batch").and_then(|b| b.as_i64());
                o.inputs = l
                    .get("inputs")
                    .and_then(|i| i.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i["path"].as_str().map(String::from))
                    .collect();
            }
        }
    }
    let mut out = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut work: Vec<String> = paths.to_vec();
    while let Some(p) = work.pop() {
        if !seen.insert(p.clone()) {
            continue;
        }
        let Some(v) = added_by.get(&p) else { continue };
        let Some(o) = origins.get(v) else { continue };
        if o.inputs.is_empty() {
            // A compaction's output: its rows came from the files it removed.
            work.extend(o.removes.iter().cloned());
        }
        for i in &o.inputs {
            out.insert(LostInput {
                version: *v,
                batch: o.batch,
                path: i.clone(),
            });
        }
    }
    Ok(out.into_iter().collect())
}
