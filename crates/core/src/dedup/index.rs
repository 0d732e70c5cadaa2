//! The committed dedup state: which record keys a committed batch already wrote, per dataset, kept on disk so
//! that memory does not depend on how many keys are remembered.
//!
//! # Layout
//! ```text
//! <checkpoint>/dedup/<dataset>/<YYYY-MM-DD>-b<lo:020>-b<hi:020>.run
//! ```
//! A *run* is an immutable file holding the sorted, distinct 128-bit key hashes of the records whose UTC event
//! day is `YYYY-MM-DD` and that batches `lo..=hi` of the dataset wrote, plus a blocked Bloom filter
//! (12 bits per key, about 0.4% false positives, built in one pass with no memory beyond itself) over them, and the first key of each
//! block of 256 keys (one 4 KiB page). The filter and these fences are read into memory (about 1.6 bytes a key);
//! the keys stay on disk and only one block (one 4 KiB read) is read when a filter says "maybe". A record counts as a duplicate
//! only after an exact match in the keys: the filter only pre-filters.
//! The file format is in `run` (the private `dedup::index::run` module).
//!
//! # Durability and the commit order
//! A batch's runs are written under a temporary name, fsynced, renamed and the directory fsynced
//! ([`DedupIndex::write_batch`]) *before* the sled commit that records batch `hi`; they become visible to lookups
//! only after that commit ([`DedupIndex::publish`]). So a run is committed exactly when the checkpoint holds a
//! batch record with id ≥ its `hi`. On start, [`DedupIndex::load`] deletes:
//! - runs with `hi` above the last committed batch (a batch interrupted between writing runs and committing),
//! - runs whose batch range lies inside another run of the same day (inputs of a merge that was interrupted
//!   after its output was renamed into place),
//! - runs of days before the pruning cutoff (a prune interrupted after the commit that moved the watermark),
//! - temporary files.
//!
//! # Bounded work
//! - Lookups cost one filter probe per run in memory; an exact check costs one 4 KiB read and a binary search
//!   in it.
//! - Writing a batch costs O(keys of the batch): one sort and one file per event day it touched.
//! - Runs of one day are merged when a day holds more than `MAX_RUNS_PER_DAY` (adjacent runs, so batch ranges
//!   stay contiguous), and a day's runs are merged into one once a batch no longer touches it.
//! - Pruning deletes whole day files.
//!
//! Everything here is synchronous file I/O; the scheduler calls it on blocking threads.

mod forget;
mod run;
mod spill;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;

pub(crate) use run::date_of;
pub use run::forget_days;
use run::{parse_run_name, remove, run_name, write_run, Run};
pub use spill::KeySpill;

/// Runs one day may hold before adjacent runs are merged. Each run costs one filter probe per lookup, so this
/// bounds lookup cost on a day that keeps receiving small batches (a continuous daemon), while merging only
/// every few batches keeps the write cost per batch small.
pub(crate) const MAX_RUNS_PER_DAY: usize = 8;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Dedup index errors. Any of them stops the batch (the index is part of the committed state).
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Filesystem error on a run file or directory.
    #[error("dedup index {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A run file is not in the expected format.
    #[error("dedup index {path}: corrupt run file: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The keys of a day could not be read from bronze.
    #[error("dedup: cannot load the keys of {day} from bronze: {source}")]
    Bronze {
        /// The UTC event day.
        day: NaiveDate,
        /// What failed (a store or Parquet error, from the loader).
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The filter could not be built (practically unreachable for distinct keys).
    #[error("dedup index {path}: cannot build the filter: {reason}")]
    Filter {
        /// The file being written.
        path: PathBuf,
        /// The builder's message.
        reason: String,
    },
}

type Result<T> = std::result::Result<T, IndexError>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Sorts `keys` in place: split around the median (linear), then each half on its own thread.
fn sort_on_two_threads(keys: &mut [u128]) {
    if keys.len() < 1 << 16 {
        keys.sort_unstable();
        return;
    }
    let mid = keys.len() / 2;
    keys.select_nth_unstable(mid);
    let (low, high) = keys.split_at_mut(mid);
    std::thread::scope(|s| {
        s.spawn(|| low.sort_unstable());
        high.sort_unstable();
    });
}

/// The UTC day (days since 1970-01-01) of an event time in µs.
pub fn day_of(micros: i64) -> i32 {
    micros.div_euclid(MICROS_PER_DAY) as i32
}

/// The committed runs of one dataset at one moment. Lookups go through a snapshot, so a batch sees one
/// consistent state while the next commit builds the following one.
#[derive(Debug, Default)]
pub struct DatasetRuns {
    days: BTreeMap<i32, Vec<Arc<Run>>>,
}

impl DatasetRuns {
    /// Whether a committed batch already wrote a record with `key` on UTC event day `day`. Keys are per
    /// (dataset, key, day): a key on another day is another record. Only meaningful for a day that
    /// `DatasetRuns::is_complete` says is held whole.
    ///
    /// # Errors
    /// [`IndexError::Io`] when a run cannot be read.
    pub(crate) fn contains(&self, key: u128, day: i32) -> Result<bool> {
        for r in self.days.get(&day).into_iter().flatten() {
            if r.contains(key)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether the runs of `day` hold every key bronze holds for it: one of them is a *base run* (batch range
    /// starting at 0, loaded from bronze by [`DedupIndex::install_day`], or a merge that includes one). Runs a
    /// batch wrote on a day that was never loaded (or that was evicted and touched again) are not enough.
    pub(crate) fn is_complete(&self, day: i32) -> bool {
        self.days
            .get(&day)
            .is_some_and(|runs| runs.iter().any(|r| r.lo == 0))
    }

    /// Bytes this dataset's runs cost: files on disk plus filters and fences in memory.
    pub(crate) fn cost_bytes(&self) -> u64 {
        self.days
            .values()
            .flatten()
            .map(|r| r.len + r.memory_bytes())
            .sum()
    }

    /// Summary numbers.
    pub fn stats(&self) -> IndexStats {
        let mut s = IndexStats::default();
        for runs in self.days.values() {
            s.days += 1;
            for r in runs {
                s.runs += 1;
                s.keys += r.keys;
                s.bytes += r.len;
                s.filter_bytes += r.memory_bytes();
            }
        }
        s.first_day = self.days.keys().next().map(|d| date_of(*d));
        s.last_day = self.days.keys().next_back().map(|d| date_of(*d));
        s
    }
}

/// Size of the dedup state of one dataset.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct IndexStats {
    /// Keys remembered.
    pub keys: u64,
    /// Run files.
    pub runs: u64,
    /// UTC days with runs.
    pub days: u64,
    /// Bytes of run files on disk.
    pub bytes: u64,
    /// Bytes of filters and block fences held in memory.
    pub filter_bytes: u64,
    /// Oldest day remembered.
    pub(crate) first_day: Option<NaiveDate>,
    /// Newest day remembered.
    pub(crate) last_day: Option<NaiveDate>,
}

/// Runs of one batch, durable on disk but not yet visible to lookups: returned by [`DedupIndex::write_batch`],
/// consumed by [`DedupIndex::publish`] after the checkpoint commit.
#[derive(Debug)]
pub struct StagedRuns {
    dataset: String,
    batch: u64,
    days: Vec<(i32, PathBuf)>,
}

impl StagedRuns {
    /// Run files written.
    pub fn len(&self) -> usize {
        self.days.len()
    }

    /// Whether the batch wrote no key.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    /// The UTC days the batch wrote keys for.
    pub fn days(&self) -> Vec<i32> {
        self.days.iter().map(|(d, _)| *d).collect()
    }

    /// Takes the runs of `other` (the same batch, written again for some days with more keys) in place of this
    /// one's runs of those days.
    pub fn absorb(&mut self, other: StagedRuns) {
        for (day, path) in other.days {
            match self.days.iter_mut().find(|(d, _)| *d == day) {
                Some(slot) => slot.1 = path,
                None => self.days.push((day, path)),
            }
        }
        self.days.sort_by_key(|(d, _)| *d);
    }
}

/// What [`DedupIndex::load`] found and cleaned up.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LoadReport {
    /// Runs deleted because no commit references them (their batch did not commit).
    pub(crate) uncommitted: usize,
    /// Runs deleted because a merged run covers them, or because their day was pruned.
    pub(crate) superseded: usize,
}

/// The dedup index of every dataset under one checkpoint directory.
#[derive(Debug)]
pub struct DedupIndex {
    dir: PathBuf,
    datasets: Mutex<HashMap<String, Arc<DatasetRuns>>>,
}

impl DedupIndex {
    /// The index rooted at `<checkpoint dir>/dedup`. Nothing is read until [`DedupIndex::load`].
    pub fn new(checkpoint_dir: &Path) -> Self {
        Self {
            dir: checkpoint_dir.join("dedup"),
            datasets: Mutex::new(HashMap::new()),
        }
    }

    fn dataset_dir(&self, dataset: &str) -> PathBuf {
        self.dir.join(dataset)
    }

    fn set(&self, dataset: &str, runs: DatasetRuns) {
        self.datasets
            .lock()
            .expect("the index map lock is never poisoned")
            .insert(dataset.to_string(), Arc::new(runs));
    }

    /// Whether `dataset` was loaded.
    pub fn is_loaded(&self, dataset: &str) -> bool {
        self.datasets
            .lock()
            .expect("the index map lock is never poisoned")
            .contains_key(dataset)
    }

    /// Loads the runs of `dataset`, first deleting what no commit references (see the module doc):
    /// `last_committed` is the id of the last batch the checkpoint committed (0 for none), `keep_from_day` the
    /// first UTC day still within the dedup horizon.
    ///
    /// # Errors
    /// [`IndexError`] when a run file cannot be read or is corrupt.
    pub fn load(
        &self,
        dataset: &str,
        last_committed: u64,
        keep_from_day: Option<i32>,
    ) -> Result<LoadReport> {
        let listing = list_dataset(&self.dataset_dir(dataset), last_committed, keep_from_day)?;
        for path in listing
            .temporary
            .iter()
            .chain(&listing.uncommitted)
            .chain(&listing.superseded)
        {
            remove(path)?;
        }
        let report = LoadReport {
            uncommitted: listing.uncommitted.len(),
            superseded: listing.superseded.len(),
        };
        let mut runs = DatasetRuns::default();
        for (day, found) in listing.live {
            let opened = found
                .iter()
                .map(|f| Run::open(&f.path, f.lo, f.hi).map(Arc::new))
                .collect::<Result<Vec<_>>>()?;
            runs.days.insert(day, opened);
        }
        self.set(dataset, runs);
        if report != LoadReport::default() {
            tracing::info!(
                dataset,
                uncommitted = report.uncommitted,
                superseded = report.superseded,
                "dedup index: removed run files no commit references"
            );
        }
        Ok(report)
    }

    /// The committed runs of `dataset` now (empty when not loaded).
    pub fn snapshot(&self, dataset: &str) -> Arc<DatasetRuns> {
        self.datasets
            .lock()
            .expect("the index map lock is never poisoned")
            .get(dataset)
            .cloned()
            .unwrap_or_default()
    }

    /// An empty [`KeySpill`] for the keys of `day` of `dataset` being read back from bronze (its chunks, if it
    /// spills, go to a temporary file in the dataset's run directory, which load deletes after a crash).
    ///
    /// # Errors
    /// [`IndexError::Io`] when the directory cannot be created.
    pub(crate) fn key_spill(&self, dataset: &str, day: i32) -> Result<KeySpill> {
        let dir = self.dataset_dir(dataset);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(KeySpill::new(
            dir.join(format!(".{}-load.tmp", date_of(day))),
        ))
    }

    /// Installs the keys bronze holds for `day` of `dataset` (every batch up to `last_committed`) as the day's
    /// base run `<day>-b0-b<last_committed>`, durably, drops the runs of that day it covers, and returns the
    /// new snapshot. The run counts at once (bronze already holds those keys); a crash after it was renamed
    /// into place leaves a valid base run, and one before leaves only a temporary file that load deletes.
    ///
    /// # Errors
    /// [`IndexError`] when the run cannot be written or an old run cannot be deleted.
    pub(crate) fn install_day(
        &self,
        dataset: &str,
        day: i32,
        last_committed: u64,
        keys: KeySpill,
    ) -> Result<Arc<DatasetRuns>> {
        let dir = self.dataset_dir(dataset);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(run_name(day, 0, last_committed));
        spill::write_spilled_run(&path, keys)?;
        let base = Arc::new(Run::open(&path, 0, last_committed)?);
        let mut days = self.snapshot(dataset).days.clone();
        let (covered, later): (Vec<_>, Vec<_>) = days
            .remove(&day)
            .unwrap_or_default()
            .into_iter()
            .partition(|r| r.hi <= last_committed);
        days.insert(day, std::iter::once(base).chain(later).collect());
        let snap = Arc::new(DatasetRuns { days });
        self.datasets
            .lock()
            .expect("the index map lock is never poisoned")
            .insert(dataset.to_string(), snap.clone());
        for r in covered.iter().filter(|r| r.path != path) {
            remove(&r.path)?;
        }
        Ok(snap)
    }

    /// Writes the new keys of batch `batch` (distinct, none already committed), grouped by UTC day, as one run
    /// per day, durably. Nothing becomes visible until [`DedupIndex::publish`].
    ///
    /// # Errors
    /// [`IndexError`] when a file cannot be written: the batch must then not commit.
    pub fn write_batch(
        &self,
        dataset: &str,
        batch: u64,
        keys_by_day: BTreeMap<i32, Vec<u128>>,
    ) -> Result<StagedRuns> {
        let dir = self.dataset_dir(dataset);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut days = Vec::new();
        for (day, mut keys) in keys_by_day {
            if keys.is_empty() {
                continue;
            }
            keys.sort_unstable();
            keys.dedup();
            let path = dir.join(run_name(day, batch, batch));
            write_run(&path, &keys)?;
            days.push((day, path));
        }
        Ok(StagedRuns {
            dataset: dataset.to_string(),
            batch,
            days,
        })
    }

    /// Makes a committed batch's runs visible, then prunes days before `keep_from_day` and merges runs (see the
    /// module doc). Call it right after the checkpoint commit of `staged`'s batch.
    ///
    /// # Errors
    /// [`IndexError`] when a run cannot be opened, merged or deleted. The commit stands: a later
    /// [`DedupIndex::load`] finishes whatever was left.
    pub fn publish(&self, staged: StagedRuns, keep_from_day: Option<i32>) -> Result<()> {
        let current = self.snapshot(&staged.dataset);
        let mut days = current.days.clone();
        let touched: Vec<i32> = staged.days.iter().map(|(d, _)| *d).collect();
        for (day, path) in &staged.days {
            let run = Run::open(path, staged.batch, staged.batch)?;
            days.entry(*day).or_default().push(Arc::new(run));
        }
        // Prune: whole days before the horizon.
        let mut dropped = Vec::new();
        if let Some(keep) = keep_from_day {
            let old: Vec<i32> = days.range(..keep).map(|(d, _)| *d).collect();
            for d in old {
                dropped.extend(days.remove(&d).unwrap_or_default());
            }
        }
        // Merge: a day this batch did not touch goes quiet and becomes one run; a busy day keeps at most
        // MAX_RUNS_PER_DAY runs.
        let dir = self.dataset_dir(&staged.dataset);
        for (day, runs) in days.iter_mut() {
            let quiet = !touched.contains(day) && runs.len() > 1;
            if quiet {
                let merged = merge_runs(&dir, *day, runs)?;
                dropped.append(runs);
                runs.push(merged);
            } else {
                while runs.len() > MAX_RUNS_PER_DAY {
                    runs.sort_by_key(|r| r.lo);
                    let i = (0..runs.len() - 1)
                        .min_by_key(|i| runs[*i].keys + runs[i + 1].keys)
                        .expect("more than one run");
                    let merged = merge_runs(&dir, *day, &runs[i..i + 2])?;
                    dropped.extend(runs.drain(i..i + 2));
                    runs.insert(i, merged);
                }
            }
        }
        self.set(
            &staged.dataset,
            DatasetRuns {
                days: days.into_iter().filter(|(_, r)| !r.is_empty()).collect(),
            },
        );
        for run in dropped {
            remove(&run.path)?;
        }
        Ok(())
    }
}

impl DedupIndex {
    /// Evicts whole days of `dataset`, least recently written or loaded first (by the highest batch id among a
    /// day's runs), until its runs cost at most `budget` bytes (disk plus memory, `DatasetRuns::cost_bytes`);
    /// days in `keep` stay. An evicted day is read back from bronze on its next touch. Returns the days evicted.
    ///
    /// # Errors
    /// [`IndexError::Io`] when a run cannot be deleted. A crash midway leaves no day wrongly complete: a day's
    /// base run is deleted before its other runs.
    pub fn evict(&self, dataset: &str, budget: u64, keep: &[i32]) -> Result<usize> {
        let current = self.snapshot(dataset);
        let mut cost = current.cost_bytes();
        if cost <= budget {
            return Ok(0);
        }
        let mut days = current.days.clone();
        let mut order: Vec<(u64, i32)> = days
            .iter()
            .filter(|(d, _)| !keep.contains(d))
            .map(|(d, runs)| (runs.iter().map(|r| r.hi).max().unwrap_or(0), *d))
            .collect();
        order.sort_unstable();
        let mut dropped: Vec<Arc<Run>> = Vec::new();
        let mut evicted = 0;
        for (_, d) in order {
            if cost <= budget {
                break;
            }
            let Some(mut runs) = days.remove(&d) else {
                continue;
            };
            cost = cost.saturating_sub(runs.iter().map(|r| r.len + r.memory_bytes()).sum());
            runs.sort_by_key(|r| r.lo);
            dropped.extend(runs);
            evicted += 1;
        }
        self.set(dataset, DatasetRuns { days });
        for run in dropped {
            remove(&run.path)?;
        }
        Ok(evicted)
    }
}

/// Merges adjacent runs of one day into one run covering their batch ranges (written durably before the inputs
/// are deleted by the caller).
fn merge_runs(dir: &Path, day: i32, runs: &[Arc<Run>]) -> Result<Arc<Run>> {
    let lo = runs.iter().map(|r| r.lo).min().expect("runs to merge");
    let hi = runs.iter().map(|r| r.hi).max().expect("runs to merge");
    let mut keys: Vec<u128> = Vec::with_capacity(runs.iter().map(|r| r.keys as usize).sum());
    for r in runs {
        keys.extend(r.read_keys()?);
    }
    keys.sort_unstable();
    keys.dedup();
    let path = dir.join(run_name(day, lo, hi));
    write_run(&path, &keys)?;
    Ok(Arc::new(Run::open(&path, lo, hi)?))
}

/// Opens the committed runs of `dataset` under `checkpoint_dir` read-only: nothing is deleted, so this is safe
/// while a daemon holds the checkpoint (`lander checkpoint stats`/`export`). Runs a merge supersedes and runs of
/// uncommitted batches are skipped.
///
/// # Errors
/// [`IndexError`] when a run file cannot be read.
pub fn open_committed(
    checkpoint_dir: &Path,
    dataset: &str,
    last_committed: u64,
) -> Result<DatasetRuns> {
    let dir = DedupIndex::new(checkpoint_dir).dataset_dir(dataset);
    let mut runs = DatasetRuns::default();
    for (day, found) in list_dataset(&dir, last_committed, None)?.live {
        for f in found {
            match Run::open(&f.path, f.lo, f.hi) {
                Ok(r) => runs.days.entry(day).or_default().push(Arc::new(r)),
                // Deleted by the daemon (a merge or a prune) between listing and opening.
                Err(IndexError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(runs)
}

/// A run file found in a dataset directory, as named.
struct Found {
    lo: u64,
    hi: u64,
    path: PathBuf,
}

/// What a dataset directory holds: the runs that count, by day in batch order, and the files no commit references.
#[derive(Default)]
struct Listing {
    live: BTreeMap<i32, Vec<Found>>,
    /// Runs of batches after `last_committed`.
    uncommitted: Vec<PathBuf>,
    /// Runs inside the batch range of another run of their day (inputs of a merge), or of days before the horizon.
    superseded: Vec<PathBuf>,
    /// Temporary files of interrupted writes.
    temporary: Vec<PathBuf>,
}

/// Sorts the files of a dataset directory into what counts and what no commit references (see the module doc).
/// Reads names only; deletes nothing.
fn list_dataset(dir: &Path, last_committed: u64, keep_from_day: Option<i32>) -> Result<Listing> {
    let mut listing = Listing::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(listing),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with('.') && name.ends_with(".tmp") {
            listing.temporary.push(path);
        } else if let Some((day, lo, hi)) = parse_run_name(&name) {
            if hi > last_committed {
                listing.uncommitted.push(path);
            } else if keep_from_day.is_some_and(|k| day < k) {
                listing.superseded.push(path);
            } else {
                listing
                    .live
                    .entry(day)
                    .or_default()
                    .push(Found { lo, hi, path });
            }
        }
    }
    for found in listing.live.values_mut() {
        // Widest ranges first, so a merged run is kept and the runs it covers are dropped.
        found.sort_by_key(|f| (f.lo, std::cmp::Reverse(f.hi)));
        let mut kept: Vec<Found> = Vec::with_capacity(found.len());
        for f in found.drain(..) {
            if kept.iter().any(|k| k.lo <= f.lo && f.hi <= k.hi) {
                listing.superseded.push(f.path);
            } else {
                kept.push(f);
            }
        }
        *found = kept;
    }
    Ok(listing)
}

impl DatasetRuns {
    /// Every key with its UTC day, sorted by (day, key): for `lander checkpoint export`.
    ///
    /// # Errors
    /// [`IndexError::Io`] when a run cannot be read.
    pub fn keys_by_day(&self) -> Result<Vec<(i32, u128)>> {
        let mut out = Vec::new();
        for (day, runs) in &self.days {
            let mut keys: Vec<u128> = Vec::new();
            for r in runs {
                keys.extend(r.read_keys()?);
            }
            keys.sort_unstable();
            keys.dedup();
            out.extend(keys.into_iter().map(|k| (*day, k)));
        }
        Ok(out)
    }
}

/// The first UTC day still inside the horizon for a dataset whose newest event time is `watermark`: whole days
/// before it are pruned.
pub fn keep_from_day(watermark: Option<i64>, horizon: std::time::Duration) -> Option<i32> {
    let w = watermark?;
    let horizon = i64::try_from(horizon.as_micros()).unwrap_or(i64::MAX);
    Some(day_of(w.saturating_sub(horizon)))
}

#[cfg(test)]
mod tests;
