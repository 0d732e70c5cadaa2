//! Exact dedup across writers of one Delta table: before its commit, a batch checks its keys against the parts
//! other writers (other `txn` app ids: other workers, a second job, a compaction) committed since this
//! checkpoint last looked, and a commit that loses the version race looks again before it retries.
//!
//! # State
//! `seen/<dataset>` in sled ([`crate::checkpoint::CheckpointStore::seen_version`]) is the table version `S` such
//! that **every day the local dedup index holds whole contains every key other writers committed at versions
//! `<= S`** (the invariant). A day loaded from bronze is loaded from the latest snapshot, whose version is
//! `>= S`, so loading keeps it; forgetting a day keeps it trivially.
//!
//! # The check (one per commit attempt, against the snapshot `V` the attempt commits on top of)
//! 1. Read the commit files `S+1 ..= V` and keep the `add`s of commits whose `txn` app id is not this
//!    checkpoint's ("foreign" parts), with their UTC day (the partition).
//! 2. Days this batch does not touch but the index holds whole: forgotten, durably (their next touch reads them
//!    from bronze again).
//! 3. Days the batch touches: the foreign parts' key column is read. A key of the batch among them is a
//!    duplicate another writer committed first: the touched days are forgotten and the batch fails with
//!    [`CrossCheckError::Conflict`]; the scheduler rolls it back and runs it again, and the new attempt's dedup
//!    (which reads those days from bronze, now holding the foreign parts) drops the keys before any part is
//!    written. Otherwise the foreign keys are added to the batch's dedup runs, so later batches see them.
//! 4. `S := V` in memory; the attempt commits at exactly `V + 1`, put-if-absent. Losing that race (another
//!    writer took `V + 1`) brings the snapshot to the new latest `V'` and repeats from 1 for `V+1 ..= V'`.
//!    After the commit at `V + 1` and the sled commit, `seen := V + 1` durably (a crash before leaves an older
//!    `S`: the next check reads more, never less).
//!
//! # Why no interleaving lets a duplicate through
//! Take two writers A and B that commit the same key k of day d, A at version `a`, B at `b > a`. B's commit at
//! `b` was made on top of snapshot `b - 1 >= a`, after a check that covered every version from B's `S + 1` to
//! `b - 1`. If B's `S < a`, that check read A's commit at `a` (foreign to B), found k among B's keys of day d,
//! and B did not commit. If B's `S >= a`, the invariant says B's index held k on day d when B deduplicated (day
//! d held whole) or B read day d from bronze at a snapshot `>= S >= a` (day d not held): either way B's dedup
//! dropped k. The put-if-absent commit is what makes "B commits at `b` on top of `b - 1`" true: a commit whose
//! version was taken fails instead of landing after versions it did not check. So the table's own log is the
//! only coordination: no lock, no lease, no coordinator.
//!
//! Limits: a dataset whose bronze holds no key column (CSV) cannot be checked this way; its batches only commit
//! (as before). A commit file that is gone (log clean-up) makes the check forget every day it holds and run the
//! batch again.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use chrono::NaiveDate;
use object_store::ObjectStoreExt;
use tokio::sync::mpsc;

use super::commit::Prepared;
use super::context::{blocking, Context};
use super::keys::{decode_chunk, fetch_chunks, KeysError, Part};
use super::stage::StagedBatch;
use crate::decode::KeyOfValue;
use crate::modes::RunError;
use crate::table::{Commit, Committed, DeltaTable, Snapshot};

/// Times a batch is rolled back and run again because of other writers' keys before the run fails: each time
/// means another writer committed the same keys meanwhile, which a few files can cause only a few times.
pub(crate) const MAX_REDOS: u32 = 8;

/// Commit attempts per batch: as the table's own retry loop (`DeltaTable::commit`), whose error is reported.
const MAX_COMMIT_ATTEMPTS: u32 = 200;

/// Why the cross-writer check stopped a commit.
#[derive(Debug, thiserror::Error)]
pub enum CrossCheckError {
    /// Another writer committed keys of this batch first: the batch is run again without them.
    #[error("batch {batch} of {dataset} holds {keys} key(s) that another writer committed at table version {version} meanwhile; rolling it back to run it again without them")]
    Conflict {
        /// The dataset.
        dataset: String,
        /// The batch.
        batch: u64,
        /// The foreign commit that holds them (the first one found).
        version: u64,
        /// How many keys.
        keys: usize,
    },
    /// A commit file the check needs is gone (log clean-up): every held day was forgotten, the batch runs again.
    #[error("the delta log of {dataset} no longer has version {version}, which the cross-writer check needs; the dedup index forgot its days and the batch runs again")]
    LogGone {
        /// The dataset.
        dataset: String,
        /// The missing version.
        version: u64,
    },
    /// A commit file could not be read or parsed.
    #[error("cannot read {path} for the cross-writer check: {message}")]
    Log {
        /// The commit file.
        path: String,
        /// What failed.
        message: String,
    },
    /// Another writer's part could not be read.
    #[error("cannot read the keys of another writer's part: {0}")]
    Keys(#[from] KeysError),
    /// The batch was run again [`MAX_REDOS`] times and still collided.
    #[error("batch of {dataset} still collides with other writers after {attempts} attempts")]
    TooManyRedos {
        /// The dataset.
        dataset: String,
        /// Attempts made.
        attempts: u32,
    },
}

impl CrossCheckError {
    /// Whether the scheduler rolls the batch back and runs it again.
    pub(crate) fn redo(&self) -> bool {
        matches!(self, Self::Conflict { .. } | Self::LogGone { .. })
    }
}

/// One foreign commit's parts, read from its log entry.
struct LogEntry {
    /// The `txn` app id, if any (a compaction has none).
    app: Option<String>,
    /// `(UTC day, part)` of each `add`.
    adds: Vec<(i32, Part)>,
}

/// The check of one batch across its commit attempts.
pub(super) struct CrossCheck {
    dataset: String,
    batch_id: u64,
    app: String,
    seen: Option<u64>,
    batch: BTreeMap<i32, HashSet<u128>>,
    found: BTreeMap<i32, Vec<u128>>,
    key: Option<(&'static str, KeyOfValue)>,
}

impl CrossCheck {
    /// The check of batch `batch_id` of `dataset` (committing as `app`), with the batch's new keys (taken before
    /// `prepare` drops days behind the horizon).
    ///
    /// # Errors
    /// Checkpoint failures.
    pub(super) async fn start(
        ctx: &Context,
        dataset: &str,
        batch_id: u64,
        app: String,
        staged: &StagedBatch,
    ) -> Result<Self, RunError> {
        let cp = ctx.checkpoint.clone();
        let ds = dataset.to_string();
        let seen = blocking(move || cp.seen_version(&ds)).await?;
        let batch = staged
            .staged
            .new_keys
            .iter()
            .map(|(d, k)| (*d, k.iter().copied().collect()))
            .collect();
        Ok(Self {
            dataset: dataset.to_string(),
            batch_id,
            app,
            seen,
            batch,
            found: BTreeMap::new(),
            key: staged.staged.bronze_key,
        })
    }

    /// Commits `commit` on top of `snap`, checking before every attempt (see the module doc).
    ///
    /// # Errors
    /// [`CrossCheckError`] (a [`CrossCheckError::redo`] one means: roll back, run again), table failures.
    pub(super) async fn commit(
        &mut self,
        ctx: &Context,
        table: &DeltaTable,
        snap: &mut Snapshot,
        commit: &Commit,
        prepared: &mut Prepared,
    ) -> Result<Committed, RunError> {
        for attempt in 0..MAX_COMMIT_ATTEMPTS {
            self.check(ctx, table, snap, prepared).await?;
            if attempt == 0 {
                hold_after_check().await;
            }
            let started = Instant::now();
            let done = table.try_commit(snap, commit).await?;
            tracing::debug!(dataset = %self.dataset, batch = self.batch_id, won = done.is_some(), ms = started.elapsed().as_secs_f64() * 1e3, "delta commit attempt");
            if let Some(done) = done {
                return Ok(done);
            }
            crate::metrics::get()
                .commit_conflicts
                .get_or_create(&crate::metrics::ds(&self.dataset))
                .inc();
            tracing::info!(dataset = %self.dataset, batch = self.batch_id, latest = snap.version, "lost the delta version race to another writer; checking its commits before retrying");
        }
        Err(table.too_many_conflicts().into())
    }

    /// Records that everything up to `version` (this batch's commit) was seen, durably.
    ///
    /// # Errors
    /// Checkpoint failures.
    pub(super) async fn finish(&self, ctx: &Context, version: u64) -> Result<(), RunError> {
        let cp = ctx.checkpoint.clone();
        let ds = self.dataset.clone();
        Ok(blocking(move || cp.set_seen_version(&ds, version)).await?)
    }

    async fn check(
        &mut self,
        ctx: &Context,
        table: &DeltaTable,
        snap: &Snapshot,
        prepared: &mut Prepared,
    ) -> Result<(), RunError> {
        let from = self.seen.map_or(0, |v| v + 1);
        if from > snap.version {
            return Ok(());
        }
        let started = Instant::now();
        let foreign = self.foreign_parts(ctx, table, snap, from).await?;
        let held = ctx.dedup.complete_days(&self.dataset);
        let cold: Vec<i32> = foreign
            .iter()
            .map(|(_, d, _)| *d)
            .filter(|d| !self.batch.contains_key(d) && held.contains(d))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        self.forget(ctx, cold.clone()).await?;
        let touched: Vec<(u64, i32, Part)> = foreign
            .into_iter()
            .filter(|(_, d, _)| self.batch.contains_key(d))
            .collect();
        let parts = touched.len();
        if let (Some((column, key_of)), false) = (self.key, touched.is_empty()) {
            self.check_keys(ctx, &touched, column, key_of, prepared)
                .await?;
        }
        crate::metrics::get()
            .cross_check_duration
            .get_or_create(&crate::metrics::ds(&self.dataset))
            .observe(started.elapsed().as_secs_f64());
        tracing::debug!(
            dataset = %self.dataset,
            batch = self.batch_id,
            from,
            to = snap.version,
            foreign_parts_read = parts,
            days_forgotten = cold.len(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "cross-writer check"
        );
        self.seen = Some(snap.version);
        Ok(())
    }

    /// The parts of the commits `from ..= snap.version` that other writers made, with their version and day.
    async fn foreign_parts(
        &self,
        ctx: &Context,
        table: &DeltaTable,
        snap: &Snapshot,
        from: u64,
    ) -> Result<Vec<(u64, i32, Part)>, RunError> {
        let mut foreign: Vec<(u64, i32, Part)> = Vec::new();
        for v in from..=snap.version {
            let Some(entry) = read_entry(ctx, table, v).await? else {
                return Err(self.log_gone(ctx, snap.version, v).await);
            };
            if entry.app.as_deref() != Some(self.app.as_str()) {
                foreign.extend(entry.adds.into_iter().map(|(d, p)| (v, d, p)));
            }
        }
        Ok(foreign)
    }

    /// Step 3 for the foreign parts of days the batch touches: fails on a key of the batch among theirs,
    /// otherwise adds their keys to the batch's dedup runs.
    async fn check_keys(
        &mut self,
        ctx: &Context,
        touched: &[(u64, i32, Part)],
        column: &'static str,
        key_of: KeyOfValue,
        prepared: &mut Prepared,
    ) -> Result<(), RunError> {
        let keys = read_keys(ctx, touched, column, key_of).await?;
        let mut first: Option<u64> = None;
        let mut dups = 0;
        for (version, day, keys) in &keys {
            let mine = &self.batch[day];
            let n = keys.iter().filter(|k| mine.contains(k)).count();
            if n > 0 {
                dups += n;
                first = Some(first.map_or(*version, |f: u64| f.min(*version)));
            }
        }
        if let Some(version) = first {
            let days: Vec<i32> = keys.iter().map(|(_, d, _)| *d).collect();
            self.forget(ctx, days).await?;
            return Err(CrossCheckError::Conflict {
                dataset: self.dataset.clone(),
                batch: self.batch_id,
                version,
                keys: dups,
            }
            .into());
        }
        for (_, day, k) in keys {
            self.found.entry(day).or_default().extend(k);
        }
        let runs: BTreeMap<i32, Vec<u128>> = self
            .found
            .iter()
            .map(|(d, f)| (*d, f.iter().chain(&self.batch[d]).copied().collect()))
            .collect();
        prepared.rewrite_runs(ctx, runs).await?;
        Ok(())
    }

    /// Forgets `days` in the dedup index (durably), so their next touch reads them from bronze.
    async fn forget(&self, ctx: &Context, days: Vec<i32>) -> Result<(), RunError> {
        if days.is_empty() {
            return Ok(());
        }
        let index = ctx.dedup.clone();
        let ds = self.dataset.clone();
        let n = blocking(move || index.forget_days(&ds, &days)).await?;
        if n > 0 {
            tracing::info!(dataset = %self.dataset, days = n, "another writer committed to days the dedup index held; they will be read from bronze when next touched");
        }
        Ok(())
    }

    /// A commit file between the seen version and `latest` is gone: forget every held day, record `latest` as
    /// seen (nothing held can be stale now) and have the batch run again.
    async fn log_gone(&self, ctx: &Context, latest: u64, missing: u64) -> RunError {
        let days = ctx.dedup.complete_days(&self.dataset);
        if let Err(e) = self.forget(ctx, days).await {
            return e;
        }
        if let Err(e) = self.finish(ctx, latest).await {
            return e;
        }
        CrossCheckError::LogGone {
            dataset: self.dataset.clone(),
            version: missing,
        }
        .into()
    }
}

/// Initializes `seen/<dataset>` for a checkpoint that never recorded it (new, or written by an older lander):
/// every day the index holds is forgotten, then the table's current version is recorded, so the invariant of
/// the module doc holds from the start. Call it after the dedup index of `dataset` was loaded and before any
/// batch of this process reads a day. Nothing for a Parquet bronze or a dataset without a table yet (its
/// first check then reads the log from version 0).
///
/// # Errors
/// Checkpoint, index or table failures.
pub(super) async fn init_seen(ctx: &Context, dataset: &str) -> Result<(), RunError> {
    if ctx.config.table_format != crate::table::TableFormat::Delta {
        return Ok(());
    }
    let cp = ctx.checkpoint.clone();
    let ds = dataset.to_string();
    if blocking(move || cp.seen_version(&ds)).await?.is_some() {
        return Ok(());
    }
    let table = DeltaTable::new(&ctx.bronze, dataset);
    let Some(snap) = ctx.tables.take(&table).await? else {
        return Ok(());
    };
    let version = snap.version;
    ctx.tables.keep(&table, snap).await;
    let (index, cp, ds) = (
        ctx.dedup.clone(),
        ctx.checkpoint.clone(),
        dataset.to_string(),
    );
    blocking(move || -> Result<(), RunError> {
        let days = index.complete_days(&ds);
        index.forget_days(&ds, &days)?;
        cp.set_seen_version(&ds, version)?;
        Ok(())
    })
    .await
}

/// The UTC day (days since 1970-01-01) of a part's `year`/`month`/`day` partition values.
fn day_of_partition(values: &serde_json::Value) -> Option<i32> {
    let get = |k: &str| values.get(k)?.as_str()?.parse::<u32>().ok();
    let date = NaiveDate::from_ymd_opt(get("year")? as i32, get("month")?, get("day")?)?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((date - epoch).num_days()).ok()
}

/// Reads commit `version` of `table`: its `txn` app id and its `add`s. `None` when the file does not exist.
async fn read_entry(
    ctx: &Context,
    table: &DeltaTable,
    version: u64,
) -> Result<Option<LogEntry>, CrossCheckError> {
    let rel = format!("{}/_delta_log/{version:020}.json", table.root());
    let err = |message: String| CrossCheckError::Log {
        path: ctx.bronze.describe(&rel),
        message,
    };
    let bytes = match ctx.bronze.store.get(&ctx.bronze.path(&rel)).await {
        Ok(r) => r.bytes().await.map_err(|e| err(e.to_string()))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
    };
    let mut entry = LogEntry {
        app: None,
        adds: Vec::new(),
    };
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let action: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| err(format!("line {}: {e}", i + 1)))?;
        if let Some(app) = action.pointer("/txn/appId").and_then(|a| a.as_str()) {
            entry.app = Some(app.to_string());
        }
        if let Some(add) = action.get("add") {
            let path = add.get("path").and_then(|p| p.as_str());
            let day = add.get("partitionValues").and_then(day_of_partition);
            let (Some(path), Some(day)) = (path, day) else {
                return Err(err(format!(
                    "line {}: an add without a path or a day partition",
                    i + 1
                )));
            };
            let size = add.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
            entry.adds.push((
                day,
                Part {
                    path: format!("{}/{path}", table.root()),
                    size,
                },
            ));
        }
    }
    Ok(Some(entry))
}

/// The keys (hashed by `key_of`) of the key column `column` of each part, as `(version, day, keys)`.
async fn read_keys(
    ctx: &Context,
    parts: &[(u64, i32, Part)],
    column: &'static str,
    key_of: KeyOfValue,
) -> Result<Vec<(u64, i32, Vec<u128>)>, CrossCheckError> {
    let mut out = Vec::with_capacity(parts.len());
    for (version, day, part) in parts {
        let (tx, mut rx) = mpsc::channel(2);
        let fetch = tokio::spawn(fetch_chunks(
            ctx.bronze.clone(),
            vec![part.clone()],
            column.to_string(),
            tx,
        ));
        let keys = blocking(move || -> Result<Vec<u128>, KeysError> {
            let mut keys = Vec::new();
            while let Some(chunk) = rx.blocking_recv() {
                decode_chunk(chunk?, |_, v| keys.push(key_of(v)))?;
            }
            Ok(keys)
        })
        .await;
        fetch.abort();
        out.push((*version, *day, keys?));
    }
    Ok(out)
}

/// Test-only: with the `failpoints` feature and `LANDER_HOLD_AFTER_CHECK=<path>`, a batch's first commit attempt
/// waits between its check and its commit until `<path>` exists, after creating `<path>.held` (so a test can
/// commit the same keys from another worker in between).
async fn hold_after_check() {
    #[cfg(feature = "failpoints")]
    if let Ok(path) = std::env::var("LANDER_HOLD_AFTER_CHECK") {
        let release = std::path::PathBuf::from(&path);
        if !release.exists() {
            let _ = std::fs::write(format!("{path}.held"), b"");
            eprintln!("failpoint: holding between the cross-writer check and the commit until {path} exists");
            while !release.exists() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_values_give_the_utc_day() {
        let v = serde_json::json!({"year": "1970", "month": "01", "day": "02"});
        assert_eq!(day_of_partition(&v), Some(1));
        let v = serde_json::json!({"year": "2015", "month": "01", "day": "01"});
        assert_eq!(day_of_partition(&v), Some(16436));
        assert_eq!(day_of_partition(&serde_json::json!({"year": "2015"})), None);
    }
}
