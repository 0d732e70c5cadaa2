//! Verify, Delta part: the checkpoint against the logs of a dataset's two tables (its data table and its
//! quarantine table `_quarantine/<dataset>`), and each log against storage.
//!
//! Read-only. For a dataset with a Delta table it checks that
//! 1. every data part of a committed batch is referenced by the data log, and the log has no later batch of this
//!    checkpoint than sled knows (a checkpoint restored from an older copy);
//! 2. every batch that quarantined rows has its `txn` in the quarantine log and each of its quarantine parts
//!    is referenced there (a deleted or replaced quarantine table, or a lost quarantine commit, loses them for
//!    Delta readers);
//! 3. every file either log references exists in bronze ([`dangling`], given the listing `super::verify` makes
//!    anyway): a Delta reader fails on a missing one. Files another checkpoint committed are checked only
//!    here; this checkpoint's own outputs are checked (once) by `super::verify`'s first step.
//!
//! A dataset with neither table (Parquet bronze, or nothing committed yet) is not checked here.

use std::collections::BTreeSet;

use super::context::blocking;
use super::quarantine;
use super::verify::{Problem, ProblemKind, VerifyError};
use crate::checkpoint::{BatchRecord, CheckpointStore};
use crate::store::StoreLocation;
use crate::table::{DeltaTable, Snapshot};

/// What the logs of one dataset say.
#[derive(Default)]
pub(super) struct TableCheck {
    /// Inconsistencies between sled and the logs.
    pub(crate) problems: Vec<Problem>,
    /// Every file either log references, relative to bronze: known even when another checkpoint committed it.
    pub(crate) files: BTreeSet<String>,
    /// Whether the dataset has a Delta table (data or quarantine).
    pub(crate) is_delta: bool,
}

/// Checks the committed batches of `ds` in `batches` against its tables' logs.
///
/// # Errors
/// [`VerifyError`] reading the checkpoint or a log.
pub(super) async fn check_tables(
    checkpoint: &CheckpointStore,
    bronze: &StoreLocation,
    ds: &str,
    batches: &[BatchRecord],
) -> Result<TableCheck, VerifyError> {
    let data = DeltaTable::new(bronze, ds).load().await?;
    let qroot = quarantine::root(ds);
    let qsnap = DeltaTable::new(bronze, &qroot).load().await?;
    if data.is_none() && qsnap.is_none() {
        return Ok(TableCheck::default());
    }
    let cp = checkpoint.clone();
    let app = crate::table::app_id(ds, &blocking(move || cp.writer_id()).await?);
    let batches: Vec<&BatchRecord> = batches.iter().filter(|b| b.dataset == ds).collect();
    let mut out = TableCheck {
        is_delta: true,
        ..TableCheck::default()
    };
    if let Some(snap) = &data {
        // Parts a later commit removed on purpose (a compaction's inputs, a repair's lost files), read from the
        // log only when some committed part is not in the table.
        let live: BTreeSet<String> = snap.files.keys().map(|p| format!("{ds}/{p}")).collect();
        let missing = batches
            .iter()
            .flat_map(|b| &b.outputs)
            .any(|o| o.path.starts_with(&format!("{ds}/")) && !live.contains(&o.path));
        let removed: BTreeSet<String> = if missing {
            crate::table::check::removed_paths(&DeltaTable::new(bronze, ds))
                .await?
                .into_keys()
                .collect()
        } else {
            BTreeSet::new()
        };
        data_problems(ds, &app, snap, &batches, &removed, &mut out);
    }
    quarantine_problems(ds, &app, qsnap.as_ref(), &batches, &mut out);
    Ok(out)
}

fn data_problems(
    ds: &str,
    app: &str,
    snap: &Snapshot,
    batches: &[&BatchRecord],
    removed: &BTreeSet<String>,
    out: &mut TableCheck,
) {
    let files: BTreeSet<String> = snap.files.keys().map(|p| format!("{ds}/{p}")).collect();
    let mut last = 0;
    for b in batches {
        last = last.max(b.id);
        for o in b
            .outputs
            .iter()
            .filter(|o| o.path.starts_with(&format!("{ds}/")))
        {
            let rel = o.path.strip_prefix(&format!("{ds}/")).unwrap_or(&o.path);
            if !files.contains(&o.path) && !removed.contains(rel) {
                out.problems.push(Problem {
                    kind: ProblemKind::NotInTable,
                    dataset: ds.to_string(),
                    path: o.path.clone(),
                    batch: Some(b.id),
                    message: format!(
                        "{}: committed by batch {} but not referenced by the delta log of {ds} (invisible to delta readers)",
                        o.path, b.id
                    ),
                });
            }
        }
    }
    if let Some(v) = snap.app_version(app).filter(|v| *v > last as i64) {
        out.problems.push(Problem {
            kind: ProblemKind::TableAhead,
            dataset: ds.to_string(),
            path: format!("{ds}/_delta_log"),
            batch: Some(v as u64),
            message: format!(
                "the delta table {ds} has batch {v} of this checkpoint ({app}), the checkpoint only up to {last}: was the checkpoint restored from an older copy?"
            ),
        });
    }
    out.files.extend(files);
}

/// The quarantine parts (Parquet directly under the quarantine root) among a batch's outputs: those its
/// quarantine commit adds.
fn quarantine_parts<'a>(qroot: &str, b: &'a BatchRecord) -> Vec<&'a str> {
    let prefix = format!("{qroot}/");
    b.outputs
        .iter()
        .map(|o| o.path.as_str())
        .filter(|p| {
            p.strip_prefix(&prefix)
                .is_some_and(|rel| rel.ends_with(".parquet") && !rel.contains('/'))
        })
        .collect()
}

fn quarantine_problems(
    ds: &str,
    app: &str,
    snap: Option<&Snapshot>,
    batches: &[&BatchRecord],
    out: &mut TableCheck,
) {
    let qroot = quarantine::root(ds);
    let files: BTreeSet<String> = snap
        .map(|s| s.files.keys().map(|p| format!("{qroot}/{p}")).collect())
        .unwrap_or_default();
    // One read of the log's txn: versions of one app only grow, so it covers every earlier batch.
    let version = snap.and_then(|s| s.app_version(app));
    let mut problem = |path: String, batch: u64, message: String| {
        out.problems.push(Problem {
            kind: ProblemKind::NotInTable,
            dataset: ds.to_string(),
            path,
            batch: Some(batch),
            message,
        })
    };
    for b in batches {
        let parts = quarantine_parts(&qroot, b);
        if parts.is_empty() {
            continue;
        }
        let Some(snap) = snap else {
            problem(
                format!("{qroot}/_delta_log"),
                b.id,
                format!(
                    "batch {} of {ds} quarantined rows ({}) but there is no quarantine delta table {qroot} (deleted?): its rows are lost to delta readers",
                    b.id,
                    parts.join(", ")
                ),
            );
            continue;
        };
        if version.is_none_or(|v| v < b.id as i64) {
            problem(
                format!("{qroot}/_delta_log"),
                b.id,
                format!(
                    "the quarantine delta log {qroot} (version {}) has no txn of batch {} ({app}, last {}): the batch's quarantine commit is missing (table replaced?)",
                    snap.version,
                    b.id,
                    version.map_or("none".to_string(), |v| v.to_string())
                ),
            );
        }
        for p in parts.into_iter().filter(|p| !files.contains(*p)) {
            problem(
                p.to_string(),
                b.id,
                format!(
                    "{p}: quarantined by batch {} but not referenced by the quarantine delta log {qroot} (invisible to delta readers)",
                    b.id
                ),
            );
        }
    }
    out.files.extend(files);
}

/// A problem for each file a log references (`referenced`, relative to bronze) that is not among the objects
/// `listed` in bronze, except those `reported` already (sled's own outputs: their check names them missing,
/// one problem per file).
pub(super) fn dangling(
    ds: &str,
    referenced: &BTreeSet<String>,
    listed: &BTreeSet<String>,
    reported: impl Fn(&str) -> bool,
) -> Vec<Problem> {
    referenced
        .iter()
        .filter(|f| !listed.contains(*f) && !reported(f))
        .map(|f| {
            let table = if f.starts_with("_quarantine/") {
                quarantine::root(ds)
            } else {
                ds.to_string()
            };
            Problem {
                kind: ProblemKind::NotInStorage,
                dataset: ds.to_string(),
                path: f.clone(),
                batch: None,
                message: format!(
                    "{f}: referenced by the delta log of {table} but missing from bronze (delta readers of {table} fail on it)"
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{OutputFile, StoredCounts};

    #[test]
    fn quarantine_parts_are_the_parquet_files_at_the_root() {
        let o = |p: &str| OutputFile {
            path: p.into(),
            rows: 1,
            bytes: 1,
        };
        let b = BatchRecord {
            id: 1,
            dataset: "g".into(),
            started_at: chrono::Utc::now(),
            committed_at: chrono::Utc::now(),
            inputs: vec![],
            outputs: vec![
                o("g/year=2015/month=01/day=01/part-b00000001-x-0000.parquet"),
                o("_quarantine/g/part-b00000001-x-q.parquet"),
                o("_quarantine/g/files/b00000001-x/g/a.json.gz"),
                o("_quarantine/gh/part-b00000001-x-q.parquet"),
            ],
            counts: StoredCounts {
                rows: 1,
                duplicates: 0,
                quarantined: 1,
            },
            min_event_time: None,
            max_event_time: None,
        };
        assert_eq!(
            quarantine_parts("_quarantine/g", &b),
            ["_quarantine/g/part-b00000001-x-q.parquet"]
        );
    }

    #[test]
    fn dangling_names_the_table_of_each_missing_file() {
        let referenced: BTreeSet<String> = [
            "g/year=2015/month=01/day=01/a.parquet",
            "_quarantine/g/q.parquet",
            "g/year=2015/month=01/day=01/b.parquet",
        ]
        .map(String::from)
        .into();
        let listed: BTreeSet<String> = ["g/year=2015/month=01/day=01/b.parquet"]
            .map(String::from)
            .into();
        let p = dangling("g", &referenced, &listed, |_| false);
        assert_eq!(p.len(), 2);
        let own = |f: &str| f.starts_with("g/");
        assert_eq!(dangling("g", &referenced, &listed, own).len(), 1);
        assert!(p
            .iter()
            .any(|p| p.message.contains("delta log of _quarantine/g")));
        assert!(p.iter().all(|p| p.kind == ProblemKind::NotInStorage));
    }
}
