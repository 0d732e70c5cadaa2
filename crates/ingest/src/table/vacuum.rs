//! `vacuum`: deletes the data files of a table that no version inside the retention needs.
//!
//! Takes a table root (a dataset's table or a quarantine table `_quarantine/<dataset>`) and a retention; lists the
//! `*.parquet` files below the root (never anything under `_delta_log/`) and deletes:
//! - files a `remove` took out of the table longer ago than the retention (its `deletionTimestamp`, or the
//!   commit's time when that is later), and
//! - files no commit references at all whose last modification is older than the retention: the parts of
//!   batches or compactions that crashed before their commit.
//!
//! It never deletes a file the current snapshot references, nor one removed within the retention, so time travel
//! to any version committed inside the retention still reads. The retention is also what protects the parts
//! other writers are uploading right now (a concurrent batch or compaction): they are unreferenced until their
//! commit lands, so a retention shorter than [`MIN_RETENTION`] is refused unless forced.
//!
//! The files are listed *before* the snapshot is read: a part committed in between is then referenced, and
//! one written after the listing is not a candidate. Deletions go through lander's store (local, HDFS, S3);
//! a dry run computes the same list and deletes nothing.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::Serialize;

use super::history::{read_log, LogCommit};
use super::{DeltaTable, TableError};
use crate::store::StoreLocation;

/// The default retention: Delta's (`delta.deletedFileRetentionDuration`, 7 days), so that readers of an older
/// snapshot and time travel over a week keep working.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The shortest retention accepted without `force`: a part being uploaded by a running batch or compaction
/// stays unreferenced until its commit, which lander makes within seconds to minutes of writing it; an hour
/// leaves a wide margin for a slow upload to HDFS or S3.
pub(crate) const MIN_RETENTION: Duration = Duration::from_secs(3600);

/// Vacuum failures.
#[derive(Debug, thiserror::Error)]
pub enum VacuumError {
    /// The retention is shorter than [`MIN_RETENTION`] and not forced.
    #[error(
        "a retention of {} is under the minimum of 1h: parts that running writers (a batch, a compaction) \
         are uploading are unreferenced until their commit and would be deleted; pass --force if no writer runs",
        humantime::format_duration(*.retain)
    )]
    RetentionTooShort {
        /// The retention asked for.
        retain: Duration,
    },
    /// Reading the table or its log failed.
    #[error(transparent)]
    Table(#[from] TableError),
    /// Deleting a file failed (files listed before it were deleted).
    #[error("failed to delete {path}: {source}")]
    Delete {
        /// The file.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
}

/// What `vacuum` does.
#[derive(Debug, Clone)]
pub struct VacuumOptions {
    /// Keep what versions of the last `retain` need. Default [`DEFAULT_RETENTION`].
    pub retain: Duration,
    /// Accept a retention under [`MIN_RETENTION`]. Default false.
    pub force: bool,
    /// Only list. Default false.
    pub dry_run: bool,
    /// "Now" in ms since the epoch (the retention counts back from it). Default: the current time.
    pub now_ms: i64,
}

impl Default for VacuumOptions {
    fn default() -> Self {
        Self {
            retain: DEFAULT_RETENTION,
            force: false,
            dry_run: false,
            now_ms: chrono::Utc::now().timestamp_millis(),
        }
    }
}

/// Why a file is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A `remove` took it out of the table before the retention.
    Removed,
    /// No commit references it and it is older than the retention.
    Unreferenced,
}

/// One file vacuum deletes (or would delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vacuumed {
    /// Path relative to bronze.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Why.
    pub reason: Reason,
}

/// What one table's vacuum found and did.
#[derive(Debug, Clone, Serialize)]
pub struct VacuumReport {
    /// The table root (relative to bronze).
    pub root: String,
    /// The files deleted (or, in a dry run, to delete), by path.
    pub deleted: Vec<Vacuumed>,
    /// Data files kept because a retained version references them (the current snapshot, or removed within
    /// the retention).
    pub kept_referenced: usize,
    /// Unreferenced files kept because they are younger than the retention.
    pub kept_young: usize,
    /// Whether nothing was deleted on purpose.
    pub dry_run: bool,
}

/// Vacuums the table at `root` (relative to bronze). `Ok(None)` when there is no table there.
///
/// # Errors
/// [`VacuumError::RetentionTooShort`] before anything is read; table and store failures.
pub async fn vacuum(
    bronze: &StoreLocation,
    root: &str,
    opts: &VacuumOptions,
) -> Result<Option<VacuumReport>, VacuumError> {
    if opts.retain < MIN_RETENTION && !opts.force {
        return Err(VacuumError::RetentionTooShort {
            retain: opts.retain,
        });
    }
    let cutoff = opts.now_ms - i64::try_from(opts.retain.as_millis()).unwrap_or(i64::MAX);
    // Listed first: see the module doc.
    let files = data_files(bronze, root).await?;
    let Some(snap) = DeltaTable::new(bronze, root).load().await? else {
        return Ok(None);
    };
    let log = read_log(bronze, root).await?;
    let refs = References::of(snap.files.keys().cloned().collect(), &log, cutoff);
    let mut report = VacuumReport {
        root: root.to_string(),
        deleted: Vec::new(),
        kept_referenced: 0,
        kept_young: 0,
        dry_run: opts.dry_run,
    };
    for (rel, (bytes, modified)) in files {
        let reason = if refs.keep.contains(&rel) {
            report.kept_referenced += 1;
            continue;
        } else if refs.removed_before_cutoff.contains(&rel) {
            Reason::Removed
        } else if refs.referenced.contains(&rel) {
            // Referenced by a commit whose remove this log does not show (it cannot be live: the snapshot
            // would list it); judged by its age like an unreferenced file.
            if modified >= cutoff {
                report.kept_young += 1;
                continue;
            }
            Reason::Removed
        } else if modified >= cutoff {
            report.kept_young += 1;
            continue;
        } else {
            Reason::Unreferenced
        };
        report.deleted.push(Vacuumed {
            path: format!("{root}/{rel}"),
            bytes,
            reason,
        });
    }
    if !opts.dry_run {
        delete_all(bronze, &report.deleted).await?;
    }
    Ok(Some(report))
}

/// What the log says of the data files: those to keep (live in the snapshot, or removed at or after `cutoff`),
/// those removed before it, and every path any commit named.
struct References {
    keep: HashSet<String>,
    removed_before_cutoff: HashSet<String>,
    referenced: HashSet<String>,
}

impl References {
    fn of(live: HashSet<String>, log: &[LogCommit], cutoff: i64) -> Self {
        let mut refs = References {
            referenced: live.clone(),
            keep: live,
            removed_before_cutoff: HashSet::new(),
        };
        for c in log {
            let at = c.timestamp();
            for a in &c.adds {
                refs.referenced.insert(a.path.clone());
            }
            for r in &c.removes {
                refs.referenced.insert(r.path.clone());
                let when = r.deletion_timestamp.max(at).unwrap_or(i64::MAX);
                if when >= cutoff {
                    refs.keep.insert(r.path.clone());
                } else {
                    refs.removed_before_cutoff.insert(r.path.clone());
                }
            }
        }
        refs
    }
}

/// Deletes the vacuumed files; one already gone counts as deleted.
async fn delete_all(bronze: &StoreLocation, deleted: &[Vacuumed]) -> Result<(), VacuumError> {
    for v in deleted {
        match bronze.store.delete(&bronze.path(&v.path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => {
                return Err(VacuumError::Delete {
                    path: bronze.describe(&v.path),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// The `*.parquet` files below `root`, outside `_delta_log/`: path relative to the root -> (size, last
/// modified in ms).
async fn data_files(
    bronze: &StoreLocation,
    root: &str,
) -> Result<BTreeMap<String, (u64, i64)>, TableError> {
    Ok(files_below(bronze, root)
        .await?
        .into_iter()
        .filter(|(rel, _)| rel.ends_with(".parquet"))
        .map(|(rel, m)| (rel, (m.size, m.last_modified.timestamp_millis())))
        .collect())
}

/// Every object below the table's `root` outside its `_delta_log/`, with its path relative to the root.
pub(super) async fn files_below(
    bronze: &StoreLocation,
    root: &str,
) -> Result<Vec<(String, object_store::ObjectMeta)>, TableError> {
    let listed: Vec<object_store::ObjectMeta> = bronze
        .store
        .list(Some(&bronze.path(root)))
        .try_collect()
        .await
        .map_err(|source| TableError::Store {
            action: "list",
            path: bronze.describe(root),
            source,
        })?;
    let prefix = format!("{root}/");
    Ok(listed
        .into_iter()
        .filter_map(|m| {
            let rel = bronze
                .relative(&m.location)?
                .strip_prefix(&prefix)?
                .to_string();
            let log = rel.starts_with("_delta_log/") || rel == "_delta_log";
            (!log).then_some((rel, m))
        })
        .collect())
}
