//! The sled-backed checkpoint: which landing files (and byte offsets) are processed, which bronze files each batch
//! committed, the in-flight batch intent, the dedup watermark and the fixed CSV schemas.
//!
//! The dedup keys themselves are not here: they live in run files beside the store (`crate::dedup::index`),
//! because sled's memory grows with the number of keys it holds. A run file counts as committed when the batch
//! record it names is committed here.
//!
//! # Key layout (one sled tree, so that one `apply_batch` is one atomic commit)
//! ```text
//! meta/schema_version                 -> "1"
//! meta/writer_id                      -> random hex id of this checkpoint (Delta txn app ids)
//! meta/binding                        -> BindingValue (landing, bronze, Delta table ids: see [`binding`])
//! file/<dataset>/<landing path>       -> FileValue   (one per landing file, latest state)
//! batch/<dataset>/<id: 20 digits>     -> BatchValue  (one per committed batch)
//! pending/<dataset>                   -> IntentValue (the batch being written, if any)
//! schema/<dataset>                    -> SchemaValue (CSV column types, fixed after the first file)
//! wm/<dataset>                        -> i64 BE, newest event time seen (µs since epoch, UTC)
//! seen/<dataset>                      -> u64 BE, Delta version up to which other writers' parts were checked
//! ```
//! Stores written by lander before the dedup index moved out also hold `dedup/<dataset>/<hash>` and
//! `dexp/<dataset>/<day>/<hash>` keys; [`CheckpointStore::legacy_dedup_keys`] reads them once so the scheduler
//! can move them into the index, then [`CheckpointStore::remove_legacy_dedup_keys`] deletes them.
//! Values are JSON with an explicit version tag (`{"v":"1",...}`), so the format can change without breaking
//! existing stores; [`SCHEMA_VERSION`] is written once and checked on open.
//!
//! # Durability
//! sled flushes in the background every 500 ms; every mutating method here calls `flush()` before returning, so
//! a method that returned `Ok` survives a crash. [`CheckpointStore::commit`] writes everything a batch changes
//! in one atomic `apply_batch`.
//!
//! # One writer
//! [`CheckpointStore::open`] takes an exclusive `flock` on `<dir>/LOCK` (and writes its PID there); a second
//! writer gets [`CheckpointError::Locked`] naming that PID. Readers use [`CheckpointStore::open_snapshot`], which
//! copies the store when it is locked and never touches the live files.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod binding;
mod counts;
mod lock;
mod records;
mod seen;

pub use counts::StoredCounts;
pub use records::{
    BatchCommit, BatchInput, BatchIntent, BatchRecord, FileRecord, FileStatus, IntentState,
    OutputFile,
};

pub use crate::decode::csv::{StoredColumn, StoredSchema};

/// The on-disk format version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Checkpoint errors. Any of them stops the process (the checkpoint is the source of truth).
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Another process holds the checkpoint.
    #[error("checkpoint {dir} is locked by another lander process (pid {pid}); stop it first or use another --checkpoint")]
    Locked {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The PID written in the lock file by the holder (`unknown` when unreadable).
        pid: String,
    },
    /// The store was written by a newer, incompatible lander.
    #[error(
        "checkpoint {dir} has schema version {found}, this lander reads version {SCHEMA_VERSION}"
    )]
    Version {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The version found.
        found: String,
    },
    /// sled failed.
    #[error("checkpoint store {dir}: {source}")]
    Sled {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The sled error.
        source: sled::Error,
    },
    /// A stored value could not be decoded.
    #[error("checkpoint {dir}: corrupt value at key {key}: {message}")]
    Corrupt {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The key.
        key: String,
        /// What was wrong.
        message: String,
    },
    /// Filesystem error on the checkpoint directory.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

pub(super) type Result<T> = std::result::Result<T, CheckpointError>;

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum FileValue {
    #[serde(rename = "1")]
    V1(FileRecord),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum BatchValue {
    #[serde(rename = "1")]
    V1(BatchRecord),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum IntentValue {
    #[serde(rename = "1")]
    V1(BatchIntent),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum SchemaValue {
    #[serde(rename = "1")]
    V1(StoredSchema),
}

/// The checkpoint store. Cheap to clone (sled handles are `Arc`s).
#[derive(Clone)]
pub struct CheckpointStore {
    db: sled::Db,
    dir: PathBuf,
    // Held for the life of the store: dropping it releases the flock.
    _lock: Option<std::sync::Arc<File>>,
    snapshot: Option<std::sync::Arc<tempfile::TempDir>>,
}

impl std::fmt::Debug for CheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointStore")
            .field("dir", &self.dir)
            .finish()
    }
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl CheckpointStore {
    /// Opens (creating if needed) the store in `dir` for writing, taking the single-writer lock.
    ///
    /// # Errors
    /// [`CheckpointError::Locked`] when another process holds it; [`CheckpointError::Version`] for a store of
    /// another format version; [`CheckpointError::Sled`]/[`CheckpointError::Io`] otherwise.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock = lock::try_lock(dir)?;
        let mut store = Self::open_db(dir, &dir.join("sled"))?;
        store._lock = Some(std::sync::Arc::new(lock));
        Ok(store)
    }

    /// Opens the store for reading while a daemon may be running: when the lock is free, the live store is
    /// opened (and locked for the duration); when it is held, the store is copied to a temporary directory and
    /// the copy is opened, so the running daemon is never disturbed. `is_snapshot()` tells which.
    ///
    /// # Errors
    /// As [`CheckpointStore::open`], except `Locked`.
    pub fn open_snapshot(dir: &Path) -> Result<Self> {
        if !dir.join("sled").exists() {
            return Err(CheckpointError::Io {
                path: dir.join("sled"),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no checkpoint store here",
                ),
            });
        }
        match Self::open(dir) {
            Err(CheckpointError::Locked { .. }) => {
                let tmp = tempfile::tempdir().map_err(io_err(dir))?;
                let copy = tmp.path().join("sled");
                lock::copy_dir(&dir.join("sled"), &copy).map_err(io_err(dir))?;
                let mut store = Self::open_db(dir, &copy)?;
                store.snapshot = Some(std::sync::Arc::new(tmp));
                Ok(store)
            }
            other => other,
        }
    }

    fn open_db(dir: &Path, sled_dir: &Path) -> Result<Self> {
        let db = sled::Config::new()
            .path(sled_dir)
            .open()
            .map_err(|source| CheckpointError::Sled {
                dir: dir.to_path_buf(),
                source,
            })?;
        let store = Self {
            db,
            dir: dir.to_path_buf(),
            _lock: None,
            snapshot: None,
        };
        match store.get_raw("meta/schema_version")? {
            None => {
                store.put_raw("meta/schema_version", SCHEMA_VERSION.to_string().as_bytes())?;
                store.flush()?;
            }
            Some(v) if v == SCHEMA_VERSION.to_string().as_bytes() => {}
            Some(v) => {
                return Err(CheckpointError::Version {
                    dir: dir.to_path_buf(),
                    found: String::from_utf8_lossy(&v).into_owned(),
                })
            }
        }
        Ok(store)
    }

    /// Whether this is a read-only copy of a store locked by a running daemon.
    pub fn is_snapshot(&self) -> bool {
        self.snapshot.is_some()
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn sled_err(&self) -> impl FnOnce(sled::Error) -> CheckpointError + '_ {
        move |source| CheckpointError::Sled {
            dir: self.dir.clone(),
            source,
        }
    }

    fn get_raw(&self, key: &str) -> Result<Option<sled::IVec>> {
        self.db.get(key.as_bytes()).map_err(self.sled_err())
    }

    fn put_raw(&self, key: &str, value: &[u8]) -> Result<()> {
        self.db
            .insert(key.as_bytes(), value)
            .map_err(self.sled_err())?;
        Ok(())
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, key: &[u8], value: &[u8]) -> Result<T> {
        serde_json::from_slice(value).map_err(|e| CheckpointError::Corrupt {
            dir: self.dir.clone(),
            key: String::from_utf8_lossy(key).into_owned(),
            message: e.to_string(),
        })
    }

    /// The value at `key`, decoded.
    fn get_value<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.get_raw(key)?
            .map(|v| self.decode(key.as_bytes(), &v))
            .transpose()
    }

    /// Every value whose key starts with `prefix`, decoded, in key order.
    fn scan_values<T: serde::de::DeserializeOwned>(&self, prefix: &str) -> Result<Vec<T>> {
        self.db
            .scan_prefix(prefix.as_bytes())
            .map(|kv| {
                let (k, v) = kv.map_err(self.sled_err())?;
                self.decode(&k, &v)
            })
            .collect()
    }

    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        serde_json::to_vec(value).expect("checkpoint values are plain data and always serialize")
    }

    /// Makes every previous write durable.
    ///
    /// # Errors
    /// [`CheckpointError::Sled`].
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map_err(self.sled_err())?;
        Ok(())
    }

    /// The record of one landing file.
    ///
    /// # Errors
    /// [`CheckpointError::Sled`] / [`CheckpointError::Corrupt`].
    pub fn file(&self, dataset: &str, path: &str) -> Result<Option<FileRecord>> {
        Ok(self
            .get_value(&format!("file/{dataset}/{path}"))?
            .map(|FileValue::V1(r)| r))
    }

    /// All file records of `dataset` (or of every dataset), in key order.
    ///
    /// # Errors
    /// [`CheckpointError::Sled`] / [`CheckpointError::Corrupt`].
    pub fn files(&self, dataset: Option<&str>) -> Result<Vec<FileRecord>> {
        let values: Vec<FileValue> = self.scan_values(&dataset_prefix("file", dataset))?;
        Ok(values.into_iter().map(|FileValue::V1(r)| r).collect())
    }

    /// All committed batches of `dataset` (or of every dataset), oldest first per dataset.
    ///
    /// # Errors
    /// [`CheckpointError::Sled`] / [`CheckpointError::Corrupt`].
    pub fn batches(&self, dataset: Option<&str>) -> Result<Vec<BatchRecord>> {
        let values: Vec<BatchValue> = self.scan_values(&dataset_prefix("batch", dataset))?;
        Ok(values.into_iter().map(|BatchValue::V1(r)| r).collect())
    }

    /// One committed batch.
    ///
    /// # Errors
    /// [`CheckpointError::Sled`] / [`CheckpointError::Corrupt`].
    pub fn batch(&self, dataset: &str, id: u64) -> Result<Option<BatchRecord>> {
        Ok(self
            .get_value(&format!("batch/{dataset}/{id:020}"))?
            .map(|BatchValue::V1(r)| r))
    }

    /// The id the next batch of `dataset` gets: one more than the last committed one.
    ///
    /// # Errors
    /// [`CheckpointError::Sled`].
    pub fn next_batch_id(&self, dataset: &str) -> Result<u64> {
        let prefix = format!("batch/{dataset}/");
        match self.db.scan_prefix(prefix.as_bytes()).next_back() {
            None => Ok(1),
            Some(kv) => {
                let (k, _) = kv.map_err(self.sled_err())?;
                let id = std::str::from_utf8(&k[prefix.len()..])
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| CheckpointError::Corrupt {
                        dir: self.dir.clone(),
                        key: String::from_utf8_lossy(&k).into_owned(),
                        message: "batch key is not a number".into(),
                    })?;
                Ok(id + 1)
            }
        }
    }

    /// Datasets that have any state, sorted.
    ///
    /// # Errors
    /// [`CheckpointError::Sled`].
    pub fn datasets(&self) -> Result<Vec<String>> {
        let mut set = std::collections::BTreeSet::new();
        for prefix in ["file/", "batch/", "pending/", "schema/"] {
            for kv in self.db.scan_prefix(prefix.as_bytes()) {
                let (k, _) = kv.map_err(self.sled_err())?;
                let rest = &k[prefix.len()..];
                let end = rest.iter().position(|b| *b == b'/').unwrap_or(rest.len());
                set.insert(String::from_utf8_lossy(&rest[..end]).into_owned());
            }
        }
        Ok(set.into_iter().collect())
    }

    /// The in-flight batch of `dataset`, if a previous run was interrupted (or this one is writing).
    ///
    /// # Errors
    /// [`CheckpointError::Sled`] / [`CheckpointError::Corrupt`].
    pub fn intent(&self, dataset: &str) -> Result<Option<BatchIntent>> {
        Ok(self
            .get_value(&format!("pending/{dataset}"))?
            .map(|IntentValue::V1(r)| r))
    }

    /// Durably records the in-flight batch (before any part is written, and again before publishing).
    ///
    /// # Errors
    /// [`CheckpointError::Sled`].
    pub(crate) fn write_intent(&self, intent: &BatchIntent) -> Result<()> {
        let key = format!("pending/{}", intent.dataset);
        self.put_raw(&key, &Self::encode(&IntentValue::V1(intent.clone())))?;
        self.flush()
    }

    /// The random id of this checkpoint, created on first use: it tells this checkpoint's Delta `txn` actions
    /// from those of another checkpoint appending to the same table (batch ids restart per checkpoint).
    ///
    /// # Errors
    /// [`CheckpointError::Sled`].
    pub fn writer_id(&self) -> Result<String> {
        const KEY: &str = "meta/writer_id";
        if let Some(v) = self.get_raw(KEY)? {
            return Ok(String::from_utf8_lossy(&v).into_owned());
        }
        let id = format!("{:016x}", rand::random::<u64>());
        // Compare-and-swap: a concurrent first use (none: the store is locked) would keep the first id.
        let _ = self
            .db
            .compare_and_swap(KEY.as_bytes(), None as Option<&[u8]>, Some(id.as_bytes()))
            .map_err(self.sled_err())?;
        self.flush()?;
        let v = self.get_raw(KEY)?.expect("written above");
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    /// Durably sets the id of this checkpoint (`checkpoint rebuild --from-table`: the id the table's `txn` app
    /// ids name, so that the rebuilt checkpoint's batches are the table's).
    ///
    /// # Errors
    /// [`CheckpointError::Sled`].
    pub fn set_writer_id(&self, id: &str) -> Result<()> {
        self.put_raw("meta/writer_id", id.as_bytes())?;
        self.flush()
    }

    /// Durably forgets the in-flight batch of `dataset` (after it was rolled back).
    ///
    /// # Errors
    /// [`CheckpointError::Sled`].
    pub(crate) fn clear_intent(&self, dataset: &str) -> Result<()> {
        self.db
            .remove(format!("pending/{dataset}").as_bytes())
            .map_err(self.sled_err())?;
        self.flush()
    }

    /// The fixed schema of a CSV dataset.
    ///
    /// # Errors
    /// [`CheckpointError::Sled`] / [`CheckpointError::Corrupt`].
    pub fn schema(&self, dataset: &str) -> Result<Option<StoredSchema>> {
        Ok(self
            .get_value(&format!("schema/{dataset}"))?
            .map(|SchemaValue::V1(r)| r))
    }

    /// The newest event time committed for `dataset` (µs since epoch, UTC): the dedup horizon counts back from
    /// it.
    ///
    /// # Errors
    /// [`CheckpointError::Sled`].
    pub fn watermark(&self, dataset: &str) -> Result<Option<i64>> {
        Ok(self
            .get_raw(&format!("wm/{dataset}"))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(i64::from_be_bytes))
    }

    /// The id of the last committed batch of `dataset` (0 when none).
    ///
    /// # Errors
    /// [`CheckpointError::Sled`] / [`CheckpointError::Corrupt`].
    pub fn last_batch_id(&self, dataset: &str) -> Result<u64> {
        Ok(self.next_batch_id(dataset)? - 1)
    }

    /// Dedup keys of `dataset` left in sled by a store of the old layout: (key hash, event time µs), from the
    /// expiry index. Empty for stores written since the keys moved out.
    ///
    /// # Errors
    /// [`CheckpointError::Sled`] / [`CheckpointError::Corrupt`] (a malformed key).
    pub(crate) fn legacy_dedup_keys(&self, dataset: &str) -> Result<Vec<(u128, i64)>> {
        let prefix = format!("dexp/{dataset}/");
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(prefix.as_bytes()) {
            let (k, _) = kv.map_err(self.sled_err())?;
            let rest = &k[prefix.len()..];
            // An import can bring any key here: parse without assuming its length.
            let parsed = rest.split_first_chunk::<4>().and_then(|(day, hash)| {
                let hash = u128::from_be_bytes(<[u8; 16]>::try_from(hash).ok()?);
                let day = (u32::from_be_bytes(*day) ^ 0x8000_0000) as i32;
                Some((hash, i64::from(day) * MICROS_PER_DAY))
            });
            out.push(parsed.ok_or_else(|| CheckpointError::Corrupt {
                dir: self.dir.clone(),
                key: String::from_utf8_lossy(&k).into_owned(),
                message: "legacy dedup expiry key is not <day: 4 B><hash: 16 B>".into(),
            })?);
        }
        Ok(out)
    }

    /// How many old-layout dedup keys `dataset` still has in sled (see [`CheckpointStore::legacy_dedup_keys`]).
    pub fn legacy_dedup_key_count(&self, dataset: &str) -> usize {
        self.db
            .scan_prefix(format!("dexp/{dataset}/").as_bytes())
            .count()
    }

    /// The old-layout sled key of one dedup key (`dexp/<dataset>/<day ^ 2^31: 4 B BE>/<hash: 16 B>`).
    /// `lander checkpoint export` writes the dedup index in this form, so that an import brings the keys back
    /// through the same migration as an old store.
    pub fn legacy_dedup_entry(dataset: &str, day: i32, hash: u128) -> Vec<u8> {
        let mut k = format!("dexp/{dataset}/").into_bytes();
        k.extend_from_slice(&((day as u32) ^ 0x8000_0000).to_be_bytes());
        k.extend_from_slice(&hash.to_be_bytes());
        k
    }

    /// Deletes the old-layout dedup keys of `dataset` (after they were written to the dedup index), durably.
    ///
    /// # Errors
    /// [`CheckpointError::Sled`].
    pub(crate) fn remove_legacy_dedup_keys(&self, dataset: &str) -> Result<usize> {
        let mut b = sled::Batch::default();
        let mut n = 0;
        for prefix in [format!("dexp/{dataset}/"), format!("dedup/{dataset}/")] {
            for kv in self.db.scan_prefix(prefix.as_bytes()) {
                let (k, _) = kv.map_err(self.sled_err())?;
                b.remove(k);
                n += 1;
            }
        }
        self.db.apply_batch(b).map_err(self.sled_err())?;
        self.flush()?;
        Ok(n)
    }

    /// Applies one batch atomically and durably: file records, batch record (which makes the batch's dedup run
    /// files count), the watermark, the schema, and removes the intent.
    ///
    /// # Errors
    /// [`CheckpointError::Sled`] / [`CheckpointError::Corrupt`]: the batch is then not committed.
    pub fn commit(&self, commit: &BatchCommit) -> Result<()> {
        let ds = &commit.batch.dataset;
        let mut b = sled::Batch::default();
        for f in &commit.files {
            b.insert(
                format!("file/{ds}/{}", f.path).as_bytes(),
                Self::encode(&FileValue::V1(f.clone())),
            );
        }
        b.insert(
            format!("batch/{ds}/{:020}", commit.batch.id).as_bytes(),
            Self::encode(&BatchValue::V1(commit.batch.clone())),
        );
        if let Some(s) = &commit.schema {
            b.insert(
                format!("schema/{ds}").as_bytes(),
                Self::encode(&SchemaValue::V1(s.clone())),
            );
        }
        // The watermark only moves forward; the dedup index prunes behind it after this commit.
        if let Some(max) = commit.batch.max_event_time {
            let wm = self.watermark(ds)?.map_or(max, |w| w.max(max));
            b.insert(format!("wm/{ds}").as_bytes(), &wm.to_be_bytes()[..]);
        }
        b.remove(format!("pending/{ds}").as_bytes());
        self.db.apply_batch(b).map_err(self.sled_err())?;
        self.flush()
    }

    /// Forgets file records so those files are ingested again (dedup keeps bronze free of duplicates). Returns
    /// the records removed. `dataset = None` with `path = None` forgets every file of every dataset.
    ///
    /// # Errors
    /// [`CheckpointError::Sled`] / [`CheckpointError::Corrupt`].
    pub fn reset_files(
        &self,
        dataset: Option<&str>,
        path: Option<&str>,
    ) -> Result<Vec<FileRecord>> {
        let targets: Vec<FileRecord> = self
            .files(dataset)?
            .into_iter()
            .filter(|f| path.is_none_or(|p| f.path == p))
            .collect();
        let mut b = sled::Batch::default();
        for f in &targets {
            b.remove(format!("file/{}/{}", f.dataset, f.path).as_bytes());
        }
        self.db.apply_batch(b).map_err(self.sled_err())?;
        self.flush()?;
        Ok(targets)
    }

    /// Every key and value, for `checkpoint export` (values as stored, keys as UTF-8 or hex).
    ///
    /// # Errors
    /// [`CheckpointError::Sled`].
    pub fn export(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for kv in self.db.iter() {
            let (k, v) = kv.map_err(self.sled_err())?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// Replaces the whole content with `entries` (from `export`), atomically.
    ///
    /// # Errors
    /// [`CheckpointError::Sled`].
    pub fn import(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let mut b = sled::Batch::default();
        for kv in self.db.iter() {
            let (k, _) = kv.map_err(self.sled_err())?;
            b.remove(k);
        }
        for (k, v) in entries {
            b.insert(k.as_slice(), v.as_slice());
        }
        self.db.apply_batch(b).map_err(self.sled_err())?;
        self.flush()
    }

    /// Size of the store on disk in bytes.
    ///
    /// # Errors
    /// [`CheckpointError::Sled`].
    pub fn size_on_disk(&self) -> Result<u64> {
        self.db.size_on_disk().map_err(self.sled_err())
    }
}

/// The key prefix of the `kind` records (`file`, `batch`) of one dataset, or of every dataset.
fn dataset_prefix(kind: &str, dataset: Option<&str>) -> String {
    match dataset {
        Some(d) => format!("{kind}/{d}/"),
        None => format!("{kind}/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn batch(ds: &str, id: u64, max: Option<i64>) -> BatchRecord {
        BatchRecord {
            id,
            dataset: ds.into(),
            started_at: Utc::now(),
            committed_at: Utc::now(),
            inputs: vec![],
            outputs: vec![],
            counts: StoredCounts {
                rows: 0,
                duplicates: 0,
                quarantined: 0,
            },
            min_event_time: None,
            max_event_time: max,
        }
    }

    #[test]
    fn commit_is_visible_after_reopen_and_ids_increase() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = CheckpointStore::open(dir.path()).expect("open");
            assert_eq!(s.next_batch_id("g").expect("id"), 1);
            s.commit(&BatchCommit {
                batch: batch("g", 1, Some(10 * MICROS_PER_DAY)),
                files: vec![],
                schema: None,
            })
            .expect("commit");
            s.commit(&BatchCommit {
                batch: batch("g", 2, Some(3 * MICROS_PER_DAY)),
                files: vec![],
                schema: None,
            })
            .expect("commit");
        }
        let s = CheckpointStore::open(dir.path()).expect("reopen");
        assert_eq!(s.next_batch_id("g").expect("id"), 3);
        assert_eq!(s.last_batch_id("g").expect("id"), 2);
        // The watermark never moves back.
        assert_eq!(s.watermark("g").expect("wm"), Some(10 * MICROS_PER_DAY));
        assert_eq!(s.last_batch_id("other").expect("id"), 0);
    }

    #[test]
    fn legacy_dedup_keys_are_read_then_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = CheckpointStore::open(dir.path()).expect("open");
        // The layout lander wrote before the dedup index: dedup/<ds>/<hash> and dexp/<ds>/<day ^ 2^31>/<hash>.
        for (hash, day) in [(7u128, 10i32), (8, -1)] {
            let mut k = b"dedup/g/".to_vec();
            k.extend_from_slice(&hash.to_be_bytes());
            s.db.insert(k, &(i64::from(day) * MICROS_PER_DAY).to_be_bytes()[..])
                .expect("insert");
            s.db.insert(CheckpointStore::legacy_dedup_entry("g", day, hash), &[][..])
                .expect("insert");
        }
        let mut keys = s.legacy_dedup_keys("g").expect("legacy");
        keys.sort();
        assert_eq!(keys, vec![(7, 10 * MICROS_PER_DAY), (8, -MICROS_PER_DAY)]);
        assert_eq!(s.remove_legacy_dedup_keys("g").expect("remove"), 4);
        assert!(s.legacy_dedup_keys("g").expect("legacy").is_empty());
        // An imported export can hold a malformed key: a clear error, not a panic.
        s.db.insert(b"dexp/g/abc", &[][..]).expect("insert");
        match s.legacy_dedup_keys("g") {
            Err(CheckpointError::Corrupt { key, message, .. }) => {
                assert_eq!(key, "dexp/g/abc");
                assert!(message.contains("<day: 4 B><hash: 16 B>"), "{message}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn second_writer_is_refused_with_pid_and_snapshot_still_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = CheckpointStore::open(dir.path()).expect("open");
        s.commit(&BatchCommit {
            batch: batch("g", 1, None),
            files: vec![],
            schema: None,
        })
        .expect("commit");
        // flock is per open file description, so a second open in the same process conflicts too.
        match CheckpointStore::open(dir.path()) {
            Err(CheckpointError::Locked { pid, .. }) => {
                assert_eq!(pid, std::process::id().to_string())
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        let snap = CheckpointStore::open_snapshot(dir.path()).expect("snapshot");
        assert!(snap.is_snapshot());
        assert_eq!(snap.batches(Some("g")).expect("batches").len(), 1);
    }

    #[test]
    fn file_records_without_a_prefix_hash_still_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = CheckpointStore::open(dir.path()).expect("open");
        // A file record as lander wrote it before prefix hashes (no `prefix_hash` key at all).
        let old = r#"{"v":"1","dataset":"g","path":"g/a.json","size":10,"modified":"2026-01-01T00:00:00Z","fingerprint":"00","head_hash":"01","bytes_consumed":10,"lines_consumed":1,"records_ok":1,"records_quarantined":0,"records_duplicate":0,"batches":[1],"versions":0,"status":"Ok","processed_at":"2026-01-01T00:00:01Z"}"#;
        s.db.insert(b"file/g/g/a.json", old.as_bytes())
            .expect("insert");
        let mut r = s.file("g", "g/a.json").expect("read").expect("record");
        assert_eq!(r.prefix_hash, None);
        assert_eq!(r.bytes_consumed, 10);
        // Written back with a hash, it reads back with it; without one, the key is left out as before.
        r.prefix_hash = Some("ab".repeat(16));
        let json =
            String::from_utf8(CheckpointStore::encode(&FileValue::V1(r.clone()))).expect("utf8");
        assert!(json.contains("\"prefix_hash\""), "{json}");
        s.db.insert(b"file/g/g/a.json", json.as_bytes())
            .expect("insert");
        assert_eq!(s.file("g", "g/a.json").expect("read"), Some(r.clone()));
        r.prefix_hash = None;
        let json = String::from_utf8(CheckpointStore::encode(&FileValue::V1(r))).expect("utf8");
        assert!(!json.contains("prefix_hash"), "{json}");
    }
}
