//! Commits that remove files: a compaction (`remove` of its inputs + `add` of its outputs, `dataChange=false`)
//! and a repair (`remove` of files storage lost, `dataChange=true`). The one place where lander takes files out
//! of a table, shared by [`super::optimize`] and [`super::check`].
//!
//! # Optimistic concurrency
//! Each attempt is built on a snapshot: the `remove` actions are that snapshot's own scan rows of the files
//! (the kernel writes a `remove` from the live `add`, with its partition values, size and stats), so an attempt
//! can only remove files the snapshot still holds. When another writer took the version (`Conflicted`) the
//! snapshot is brought up to date and the transaction rebuilt: appends in between change nothing (their files
//! are not inputs), but a file another writer removed meanwhile (a concurrent compaction, a repair) is missing
//! from the new snapshot, and then the rewrite is *not* committed: [`Rewritten::InputsGone`] names the files and
//! the caller abandons its outputs. A rewrite is never committed over a conflict.

use std::collections::BTreeSet;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use delta_kernel::committer::FileSystemCommitter;
use delta_kernel::engine::arrow_data::ArrowEngineData;
use delta_kernel::transaction::{CommitResult, UpdateTableOperation};
use delta_kernel::{Engine, FilteredEngineData, KernelError};

use super::log::{engine_info, MAX_COMMIT_ATTEMPTS, RETRY_JITTER};
use super::{kernel, Add, DeltaTable, Snapshot, TableError};

/// What a rewrite is, for `commitInfo.operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RewriteKind {
    /// `OPTIMIZE`: the same rows in fewer files (`dataChange=false`).
    Optimize,
    /// `FSCK`: references to files storage lost are removed, with their rows (`dataChange=true`), like
    /// Databricks' `FSCK REPAIR TABLE`.
    Repair,
}

/// One rewrite: files to remove, files to add, and lander's part of `commitInfo`.
#[derive(Debug, Clone)]
pub(crate) struct Rewrite {
    /// What it is.
    pub(crate) kind: RewriteKind,
    /// Paths (relative to the table root, as in the log) of the files to remove; all must be live.
    pub(crate) removes: Vec<String>,
    /// `add` actions of the files to add (their `dataChange` is the rewrite's).
    pub(crate) adds: Vec<Add>,
    /// lander's fields of `commitInfo` (a JSON object such as `{"lander": {...}}`).
    pub(crate) info: serde_json::Value,
    /// `commitInfo.operationParameters`.
    pub(crate) parameters: Vec<(String, String)>,
}

/// How a rewrite ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewritten {
    /// Committed as version `v`.
    At(u64),
    /// Not committed: these inputs are no longer in the table (another writer removed them).
    InputsGone(Vec<String>),
}

enum Attempt {
    Done(u64, Option<delta_kernel::snapshot::SnapshotRef>),
    Gone(Vec<String>),
    Lost,
}

/// The scan rows of `snapshot`'s live files, with only the rows of `wanted` selected, and the paths found.
fn select_removes(
    snapshot: &delta_kernel::snapshot::SnapshotRef,
    engine: &dyn Engine,
    wanted: &BTreeSet<String>,
) -> Result<(Vec<FilteredEngineData>, BTreeSet<String>), KernelError> {
    let scan = snapshot.clone().scan_builder().build()?;
    let mut out = Vec::new();
    let mut found = BTreeSet::new();
    for meta in scan.scan_metadata(engine)? {
        let (data, selection) = meta?.scan_files.into_parts();
        let data = ArrowEngineData::try_from_engine_data(data)?;
        let batch = data.record_batch();
        let paths = batch
            .column_by_name("path")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| KernelError::generic("scan rows without a string path column"))?;
        let mut keep = vec![false; batch.num_rows()];
        let mut any = false;
        for (i, k) in keep.iter_mut().enumerate() {
            let live = selection.get(i).copied().unwrap_or(true);
            if live && paths.is_valid(i) && wanted.contains(paths.value(i)) {
                *k = true;
                any = true;
                found.insert(paths.value(i).to_string());
            }
        }
        if any {
            out.push(FilteredEngineData::try_new(data, keep)?);
        }
    }
    Ok((out, found))
}

/// One attempt at committing `rw` on top of `snapshot` (blocking).
fn attempt(
    engine: &dyn Engine,
    snapshot: &delta_kernel::snapshot::SnapshotRef,
    rw: &Rewrite,
) -> Result<Attempt, KernelError> {
    let rows = |e: String| KernelError::generic(format!("lander's rows: {e}"));
    let wanted: BTreeSet<String> = rw.removes.iter().cloned().collect();
    let (removes, found) = select_removes(snapshot, engine, &wanted)?;
    if found.len() != wanted.len() {
        return Ok(Attempt::Gone(wanted.difference(&found).cloned().collect()));
    }
    let (operation, data_change) = match rw.kind {
        RewriteKind::Optimize => (UpdateTableOperation::Optimize, false),
        RewriteKind::Repair => (UpdateTableOperation::Custom("FSCK".into()), true),
    };
    let (info, info_schema) = kernel::commit_info(&rw.info).map_err(rows)?;
    let mut txn = snapshot
        .clone()
        .update_table(operation, engine_info(), data_change)
        .with_operation_parameters(
            rw.parameters
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone()))),
        )
        .with_commit_info(info, info_schema)
        .build(engine, Box::new(FileSystemCommitter::new()))?;
    for r in removes {
        txn.remove_files(r);
    }
    if !rw.adds.is_empty() {
        txn.add_files(kernel::add_files(&rw.adds).map_err(rows)?);
    }
    match txn.commit(engine)? {
        CommitResult::Committed(c) => Ok(Attempt::Done(
            c.commit_version(),
            c.post_commit_snapshot().cloned(),
        )),
        CommitResult::Conflicted(_) => Ok(Attempt::Lost),
        CommitResult::Retryable(r) => Err(r.error),
    }
}

impl DeltaTable {
    /// Commits `rw` as the next version: `remove` of every file in `rw.removes` plus `add` of `rw.adds`, in one
    /// put-if-absent commit. On a lost version race the snapshot is brought up to date and the transaction
    /// rebuilt on it; when an input is no longer live there, nothing is committed
    /// ([`Rewritten::InputsGone`]). `snap` is the table's state afterwards.
    ///
    /// # Errors
    /// [`TableError`]: the store failed (the commit may or may not exist: load the table again to know), or
    /// [`TableError::TooManyConflicts`].
    pub(crate) async fn commit_rewrite(
        &self,
        snap: &mut Snapshot,
        rw: &Rewrite,
    ) -> Result<Rewritten, TableError> {
        self.check_writable(snap)?;
        for attempt_no in 1..=MAX_COMMIT_ATTEMPTS {
            let (kernel, r) = (snap.kernel.clone(), rw.clone());
            let outcome = self
                .blocking("commit to", move |engine| attempt(engine, &kernel, &r))
                .await?;
            match outcome {
                Attempt::Done(v, post) => {
                    match post {
                        Some(k) => snap.kernel = k,
                        None => self.update(snap).await?,
                    }
                    for p in &rw.removes {
                        snap.files.remove(p);
                    }
                    for a in &rw.adds {
                        snap.files.insert(a.path.clone(), a.clone());
                    }
                    snap.version = v;
                    return Ok(Rewritten::At(v));
                }
                Attempt::Gone(gone) => return Ok(Rewritten::InputsGone(gone)),
                Attempt::Lost => {
                    tracing::debug!(table = %self.root, attempt = attempt_no, "lost the race for a delta version; re-checking the inputs");
                }
            }
            let jitter = rand::random::<u64>() % (RETRY_JITTER.as_millis() as u64 + 1);
            tokio::time::sleep(Duration::from_millis(jitter)).await;
            self.update(snap).await?;
            self.check_writable(snap)?;
        }
        Err(TableError::TooManyConflicts {
            root: self.describe(),
            attempts: MAX_COMMIT_ATTEMPTS,
        })
    }
}
