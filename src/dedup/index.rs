//! The committed dedup state: which record keys a committed batch already wrote, per dataset, kept on disk so
//! that memory does not depend on how many keys are remembered.
//!
//! # Layout
//! ```text
//! <checkpoint>/dedup/<dataset>/<YYYY-MM-DD>-b<lo:020>-b<hi:020>.run
//! ```
//! A *run* is an immutable file holding the sorted, distinct 128-bit key hashes of the records whose UTC event
//! day is `YYYY-MM-DD` and that batches `lo..=hi` of the dataset wrote, plus a binary fuse filter
//! ([`xorf::BinaryFuse8`], about 9 bits per key, under 0.4% false positives) over them, and the first key of each
//! block of 256 keys (one 4 KiB page). The filter and these fences are read into memory (about 1.2 bytes a key);
//! the keys stay on disk and only one block (one 4 KiB read) is read when a filter says "maybe". A record counts as a duplicate
//! only after an exact match in the keys: the filter only pre-filters.
//!
//! File format: `LNDRUN02`, key count (u64 LE), filter descriptor (seed u64, three u32, LE), fingerprint length
//! (u64 LE), fingerprints, padding to 16 bytes, fences (u128 BE, one per block), padding to 4 KiB, keys (u128
//! BE, ascending).
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
//! - Runs of one day are merged when a day holds more than [`MAX_RUNS_PER_DAY`] (adjacent runs, so batch ranges
//!   stay contiguous), and a day's runs are merged into one once a batch no longer touches it.
//! - Pruning deletes whole day files.
//!
//! Everything here is synchronous file I/O; the scheduler calls it on blocking threads.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{Days, NaiveDate};
use xorf::{BinaryFuse8, Filter};

/// Runs one day may hold before adjacent runs are merged. Each run costs one filter probe per lookup, so this
/// bounds lookup cost on a day that keeps receiving small batches (a continuous daemon), while merging only
/// every few batches keeps the write cost per batch small.
pub const MAX_RUNS_PER_DAY: usize = 8;

const MAGIC: &[u8; 8] = b"LNDRUN02";
/// magic, key count, filter descriptor (seed u64, 3 × u32), fingerprint length.
const HEADER_LEN: usize = 8 + 8 + 20 + 8;
const KEY_LEN: usize = 16;
/// Keys per block: one 4 KiB page, so an exact check after a filter hit reads a single page of keys (a plain
/// binary search over a 70 MB run touches a dozen pages per check).
const BLOCK_KEYS: usize = 256;
/// The key section starts on a page boundary so each block is exactly one page.
const PAGE: usize = 4096;
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

/// The UTC day (days since 1970-01-01) of an event time in µs.
pub fn day_of(micros: i64) -> i32 {
    micros.div_euclid(MICROS_PER_DAY) as i32
}

fn date_of(day: i32) -> NaiveDate {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("1970-01-01 is a date");
    if day >= 0 {
        epoch.checked_add_days(Days::new(day as u64))
    } else {
        epoch.checked_sub_days(Days::new(day.unsigned_abs() as u64))
    }
    .unwrap_or(epoch)
}

fn day_from_date(d: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("1970-01-01 is a date");
    (d - epoch).num_days() as i32
}

/// Folds a 128-bit key hash to the 64-bit key the filter takes.
fn fold(key: u128) -> u64 {
    (key as u64) ^ ((key >> 64) as u64)
}

/// Name of a run: `<YYYY-MM-DD>-b<lo>-b<hi>.run`.
fn run_name(day: i32, lo: u64, hi: u64) -> String {
    format!(
        "{}-b{lo:020}-b{hi:020}.run",
        date_of(day).format("%Y-%m-%d")
    )
}

fn parse_run_name(name: &str) -> Option<(i32, u64, u64)> {
    let stem = name.strip_suffix(".run")?;
    let (date, rest) = stem.split_at_checked(10)?;
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let rest = rest.strip_prefix("-b")?;
    let (lo, hi) = rest.split_once("-b")?;
    Some((day_from_date(date), lo.parse().ok()?, hi.parse().ok()?))
}

/// One immutable run: its filter and fences in memory, its keys on disk.
pub struct Run {
    lo: u64,
    hi: u64,
    keys: u64,
    path: PathBuf,
    filter: BinaryFuse8,
    fences: Vec<u128>,
    file: File,
    keys_at: usize,
    len: u64,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("path", &self.path)
            .field("keys", &self.keys)
            .finish()
    }
}

/// Where the sections of a run with `keys` keys and `fp_len` fingerprint bytes start: (fences, keys, end).
fn layout(keys: u64, fp_len: usize) -> Option<(usize, usize, usize)> {
    let keys = usize::try_from(keys).ok()?;
    let fences_at = HEADER_LEN.checked_add(fp_len)?.next_multiple_of(KEY_LEN);
    let fences_len = keys.div_ceil(BLOCK_KEYS).checked_mul(KEY_LEN)?;
    let keys_at = fences_at.checked_add(fences_len)?.next_multiple_of(PAGE);
    let end = keys_at.checked_add(keys.checked_mul(KEY_LEN)?)?;
    Some((fences_at, keys_at, end))
}

impl Run {
    fn open(path: &Path, lo: u64, hi: u64) -> Result<Run> {
        use std::os::unix::fs::FileExt;
        let corrupt = |reason: String| IndexError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let mut header = [0u8; HEADER_LEN];
        if len < HEADER_LEN as u64 {
            return Err(corrupt(format!("{len} bytes: shorter than the header")));
        }
        file.read_exact_at(&mut header, 0).map_err(io_err(path))?;
        if &header[..8] != MAGIC {
            return Err(corrupt("not a lander dedup run (bad magic)".into()));
        }
        let u64_at =
            |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
        let u32_at =
            |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
        let keys = u64_at(8);
        let descriptor = xorf::Descriptor {
            seed: u64_at(16),
            segment_length: u32_at(24),
            segment_length_mask: u32_at(28),
            segment_count_length: u32_at(32),
        };
        let fp_len = usize::try_from(u64_at(36)).map_err(|_| corrupt("huge filter".into()))?;
        let Some((fences_at, keys_at, end)) = layout(keys, fp_len).filter(|l| l.2 as u64 == len)
        else {
            return Err(corrupt(format!(
                "{len} bytes do not hold {keys} keys and a {fp_len}-byte filter"
            )));
        };
        // The filter and fences are probed for every lookup: read them into memory once.
        let mut fingerprints = vec![0u8; fp_len];
        file.read_exact_at(&mut fingerprints, HEADER_LEN as u64)
            .map_err(io_err(path))?;
        let mut raw = vec![0u8; keys_at - fences_at];
        file.read_exact_at(&mut raw, fences_at as u64)
            .map_err(io_err(path))?;
        let fences = raw
            .chunks_exact(KEY_LEN)
            .take((keys as usize).div_ceil(BLOCK_KEYS))
            .map(|c| u128::from_be_bytes(c.try_into().expect("16 bytes")))
            .collect();
        debug_assert_eq!(end as u64, len);
        Ok(Run {
            lo,
            hi,
            keys,
            path: path.to_path_buf(),
            filter: BinaryFuse8 {
                descriptor,
                fingerprints: fingerprints.into_boxed_slice(),
            },
            fences,
            file,
            keys_at,
            len,
        })
    }

    /// Whether the run holds `key`: the filter first, then the fences (in memory) pick the one block (page) that
    /// can hold it, searched exactly.
    ///
    /// # Errors
    /// [`IndexError::Io`] when the block cannot be read.
    pub fn contains(&self, key: u128) -> Result<bool> {
        use std::os::unix::fs::FileExt;
        if !self.filter.contains(&fold(key)) {
            return Ok(false);
        }
        let block = self.fences.partition_point(|f| *f <= key);
        if block == 0 {
            return Ok(false);
        }
        let first = (block - 1) * BLOCK_KEYS;
        let n = BLOCK_KEYS.min(self.keys as usize - first);
        let mut page = [0u8; PAGE];
        // A read, not a mapping: mapped pages are faulted in 64 KiB at a time (the kernel's fault-around), which
        // made 3,000 filter hits cost 190 MB of resident file pages.
        self.file
            .read_exact_at(
                &mut page[..n * KEY_LEN],
                (self.keys_at + first * KEY_LEN) as u64,
            )
            .map_err(io_err(&self.path))?;
        let at = |i: usize| {
            u128::from_be_bytes(page[i * KEY_LEN..(i + 1) * KEY_LEN].try_into().expect("16"))
        };
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match at(mid).cmp(&key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(true),
            }
        }
        Ok(false)
    }

    /// Every key, ascending (for merges and exports).
    fn read_keys(&self) -> Result<Vec<u128>> {
        use std::io::{Read, Seek};
        let mut f = &self.file;
        f.seek(std::io::SeekFrom::Start(self.keys_at as u64))
            .map_err(io_err(&self.path))?;
        let mut r = std::io::BufReader::with_capacity(1 << 20, f);
        let mut out = Vec::with_capacity(self.keys as usize);
        let mut buf = [0u8; KEY_LEN];
        for _ in 0..self.keys {
            r.read_exact(&mut buf).map_err(io_err(&self.path))?;
            out.push(u128::from_be_bytes(buf));
        }
        Ok(out)
    }
}

/// Writes `keys` (sorted, distinct) as a run at `path`: temp file, fsync, rename, directory fsync.
fn write_run(path: &Path, keys: &[u128]) -> Result<()> {
    debug_assert!(keys.windows(2).all(|w| w[0] < w[1]));
    let mut folded: Vec<u64> = keys.iter().map(|k| fold(*k)).collect();
    folded.sort_unstable();
    folded.dedup();
    let filter = BinaryFuse8::try_from(&folded).map_err(|reason| IndexError::Filter {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    })?;
    drop(folded);
    let dir = path.parent().expect("run paths have a parent directory");
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .expect("run paths have a file name")
            .to_string_lossy()
    ));
    let file = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let d = &filter.descriptor;
    let fp = &filter.fingerprints;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&(keys.len() as u64).to_le_bytes());
    header.extend_from_slice(&d.seed.to_le_bytes());
    header.extend_from_slice(&d.segment_length.to_le_bytes());
    header.extend_from_slice(&d.segment_length_mask.to_le_bytes());
    header.extend_from_slice(&d.segment_count_length.to_le_bytes());
    header.extend_from_slice(&(fp.len() as u64).to_le_bytes());
    let (fences_at, keys_at, _) =
        layout(keys.len() as u64, fp.len()).expect("a run that fits in memory has a layout");
    let write = |w: &mut BufWriter<File>| -> std::io::Result<()> {
        w.write_all(&header)?;
        w.write_all(fp)?;
        w.write_all(&vec![0u8; fences_at - HEADER_LEN - fp.len()])?;
        let mut at = fences_at;
        for block in keys.chunks(BLOCK_KEYS) {
            w.write_all(&block[0].to_be_bytes())?;
            at += KEY_LEN;
        }
        w.write_all(&vec![0u8; keys_at - at])?;
        for k in keys {
            w.write_all(&k.to_be_bytes())?;
        }
        w.flush()?;
        w.get_ref().sync_all()
    };
    write(&mut w).map_err(io_err(&tmp))?;
    drop(w);
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

/// The committed runs of one dataset at one moment. Lookups go through a snapshot, so a batch sees one
/// consistent state while the next commit builds the following one.
#[derive(Debug, Default)]
pub struct DatasetRuns {
    days: BTreeMap<i32, Vec<Arc<Run>>>,
}

impl DatasetRuns {
    /// Whether a committed batch already wrote a record with `key`. Probes the runs of `day_hint` (the record's
    /// own event day, where a repeat almost always lives) first, then every other day.
    ///
    /// # Errors
    /// [`IndexError::Io`] when a run cannot be read.
    pub fn contains(&self, key: u128, day_hint: i32) -> Result<bool> {
        let hinted = self.days.get(&day_hint).into_iter();
        let others = self
            .days
            .iter()
            .filter(|(d, _)| **d != day_hint)
            .map(|(_, runs)| runs);
        for runs in hinted.chain(others) {
            for r in runs {
                if r.contains(key)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
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
                s.filter_bytes += (r.filter.fingerprints.len() + r.fences.len() * KEY_LEN) as u64;
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
    pub first_day: Option<NaiveDate>,
    /// Newest day remembered.
    pub last_day: Option<NaiveDate>,
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
}

/// What [`DedupIndex::load`] found and cleaned up.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LoadReport {
    /// Runs deleted because no commit references them (their batch did not commit).
    pub uncommitted: usize,
    /// Runs deleted because a merged run covers them, or because their day was pruned.
    pub superseded: usize,
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
        let dir = self.dataset_dir(dataset);
        let mut report = LoadReport::default();
        let mut found: BTreeMap<i32, Vec<(u64, u64, PathBuf)>> = BTreeMap::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.set(dataset, DatasetRuns::default());
                return Ok(report);
            }
            Err(e) => return Err(io_err(&dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with('.') && name.ends_with(".tmp") {
                remove(&path)?;
                continue;
            }
            let Some((day, lo, hi)) = parse_run_name(&name) else {
                continue;
            };
            if hi > last_committed {
                remove(&path)?;
                report.uncommitted += 1;
            } else if keep_from_day.is_some_and(|k| day < k) {
                remove(&path)?;
                report.superseded += 1;
            } else {
                found.entry(day).or_default().push((lo, hi, path));
            }
        }
        let mut runs = DatasetRuns::default();
        for (day, mut list) in found {
            // Widest ranges first, so a merged run is kept and the runs it covers are dropped.
            list.sort_by_key(|(lo, hi, _)| (*lo, std::cmp::Reverse(*hi)));
            let mut kept: Vec<Arc<Run>> = Vec::new();
            for (lo, hi, path) in list {
                if kept.iter().any(|r| r.lo <= lo && hi <= r.hi) {
                    remove(&path)?;
                    report.superseded += 1;
                    continue;
                }
                kept.push(Arc::new(Run::open(&path, lo, hi)?));
            }
            runs.days.insert(day, kept);
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

    /// Deletes runs written by [`DedupIndex::write_batch`] for a batch that will not commit.
    ///
    /// # Errors
    /// [`IndexError::Io`].
    pub fn discard(&self, staged: StagedRuns) -> Result<()> {
        for (_, path) in &staged.days {
            remove(path)?;
        }
        Ok(())
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
    let index = DedupIndex::new(checkpoint_dir);
    let dir = index.dataset_dir(dataset);
    let mut runs = DatasetRuns::default();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(runs),
        Err(e) => return Err(io_err(&dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(&dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((day, lo, hi)) = parse_run_name(&name) else {
            continue;
        };
        if hi > last_committed {
            continue;
        }
        match Run::open(&entry.path(), lo, hi) {
            Ok(r) => runs.days.entry(day).or_default().push(Arc::new(r)),
            // Deleted by the daemon between listing and opening.
            Err(IndexError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            }
            Err(e) => return Err(e),
        }
    }
    for list in runs.days.values_mut() {
        let all = std::mem::take(list);
        for r in &all {
            if !all
                .iter()
                .any(|o| !Arc::ptr_eq(o, r) && o.lo <= r.lo && r.hi <= o.hi)
            {
                list.push(r.clone());
            }
        }
    }
    Ok(runs)
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
mod tests {
    use super::*;

    fn keys(day: i32, ks: &[u128]) -> BTreeMap<i32, Vec<u128>> {
        BTreeMap::from([(day, ks.to_vec())])
    }

    #[test]
    fn run_names_round_trip_including_days_before_1970() {
        for day in [-400, -1, 0, 16436, 20000] {
            let name = run_name(day, 3, 17);
            assert_eq!(parse_run_name(&name), Some((day, 3, 17)), "{name}");
        }
        assert_eq!(
            run_name(16436, 1, 2),
            "2015-01-01-b00000000000000000001-b00000000000000000002.run"
        );
        assert_eq!(parse_run_name(".2015-01-01-b1-b2.run.tmp"), None);
    }

    #[test]
    fn lookups_are_exact_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let idx = DedupIndex::new(dir.path());
        idx.load("g", 0, None).expect("load");
        let many: Vec<u128> = (0..50_000u128)
            .map(|i| i * 0x9E37_79B9_7F4A_7C15_F39C)
            .collect();
        let staged = idx.write_batch("g", 1, keys(10, &many)).expect("write");
        // Not visible before publish.
        assert!(!idx.snapshot("g").contains(many[0], 10).expect("read"));
        idx.publish(staged, None).expect("publish");
        let snap = idx.snapshot("g");
        assert!(many.iter().all(|k| snap.contains(*k, 10).expect("read")));
        assert!(
            many.iter().all(|k| snap.contains(*k, 99).expect("read")),
            "found via other days"
        );
        let absent = (0..50_000u128)
            .filter(|i| snap.contains(i * 7 + 1, 10).expect("read"))
            .count();
        assert_eq!(absent, 0, "exact check rejects filter false positives");
        let idx2 = DedupIndex::new(dir.path());
        assert_eq!(
            idx2.load("g", 1, None).expect("load"),
            LoadReport::default()
        );
        assert!(idx2.snapshot("g").contains(many[123], 10).expect("read"));
        assert_eq!(idx2.snapshot("g").stats().keys, 50_000);
    }

    #[test]
    fn uncommitted_runs_are_deleted_on_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let idx = DedupIndex::new(dir.path());
        idx.load("g", 0, None).expect("load");
        let s = idx.write_batch("g", 1, keys(5, &[1, 2])).expect("write");
        idx.publish(s, None).expect("publish");
        // Batch 2 writes its runs, then the process dies before the checkpoint commit.
        let s2 = idx.write_batch("g", 2, keys(5, &[3])).expect("write");
        drop(s2);
        let idx2 = DedupIndex::new(dir.path());
        let report = idx2.load("g", 1, None).expect("load");
        assert_eq!(report.uncommitted, 1);
        let snap = idx2.snapshot("g");
        assert!(snap.contains(1, 5).expect("read") && !snap.contains(3, 5).expect("read"));
        let files = std::fs::read_dir(dir.path().join("dedup/g"))
            .expect("dir")
            .count();
        assert_eq!(files, 1);
    }

    #[test]
    fn prune_drops_whole_days_and_quiet_days_merge() {
        let dir = tempfile::tempdir().expect("tempdir");
        let idx = DedupIndex::new(dir.path());
        idx.load("g", 0, None).expect("load");
        for b in 1..=3u64 {
            let s = idx
                .write_batch("g", b, keys(10, &[b as u128 * 100]))
                .expect("write");
            idx.publish(s, Some(0)).expect("publish");
        }
        assert_eq!(idx.snapshot("g").stats().runs, 3);
        // Batch 4 touches day 11 only: day 10 goes quiet and is merged into one run.
        let s = idx.write_batch("g", 4, keys(11, &[400])).expect("write");
        idx.publish(s, Some(0)).expect("publish");
        let st = idx.snapshot("g").stats();
        assert_eq!((st.runs, st.keys, st.days), (2, 4, 2));
        assert!(dir.path().join("dedup/g").join(run_name(10, 1, 3)).exists());
        // Batch 5 moves the horizon past day 10.
        let s = idx.write_batch("g", 5, keys(11, &[500])).expect("write");
        idx.publish(s, Some(11)).expect("publish");
        let snap = idx.snapshot("g");
        assert!(!snap.contains(100, 10).expect("read"));
        assert!(snap.contains(400, 11).expect("read") && snap.contains(500, 11).expect("read"));
        assert_eq!(
            std::fs::read_dir(dir.path().join("dedup/g"))
                .expect("dir")
                .count(),
            2
        );
    }

    #[test]
    fn interrupted_merge_keeps_the_merged_run_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let idx = DedupIndex::new(dir.path());
        idx.load("g", 0, None).expect("load");
        for b in 1..=2u64 {
            let s = idx
                .write_batch("g", b, keys(10, &[b as u128]))
                .expect("write");
            idx.publish(s, None).expect("publish");
        }
        // A merge whose output was renamed into place but whose inputs were not deleted yet.
        let snap = idx.snapshot("g");
        let runs = snap.days.get(&10).expect("day 10").clone();
        merge_runs(&dir.path().join("dedup/g"), 10, &runs).expect("merge");
        let idx2 = DedupIndex::new(dir.path());
        let report = idx2.load("g", 2, None).expect("load");
        assert_eq!(report.superseded, 2);
        let st = idx2.snapshot("g").stats();
        assert_eq!((st.runs, st.keys), (1, 2));
    }

    #[test]
    fn busy_days_are_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let idx = DedupIndex::new(dir.path());
        idx.load("g", 0, None).expect("load");
        for b in 1..=40u64 {
            let s = idx
                .write_batch("g", b, keys(10, &[b as u128]))
                .expect("write");
            idx.publish(s, None).expect("publish");
            assert!(idx.snapshot("g").stats().runs as usize <= MAX_RUNS_PER_DAY);
        }
        let snap = idx.snapshot("g");
        assert!((1..=40u128).all(|k| snap.contains(k, 10).expect("read")));
        let idx2 = DedupIndex::new(dir.path());
        idx2.load("g", 40, None).expect("load");
        assert_eq!(idx2.snapshot("g").stats().keys, 40);
    }
}
