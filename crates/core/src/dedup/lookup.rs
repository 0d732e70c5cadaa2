//! The committed keys a batch checks its records against: the dedup index, with every UTC day a record touches
//! made whole from bronze first.
//!
//! Takes the index's snapshot of one dataset and a loader that reads the keys bronze holds for one day (the
//! scheduler builds it: `dedup` knows nothing of Parquet, the checkpoint or the table). On the first record of a
//! day the index does not hold whole (`DatasetRuns::is_complete`), the loader's keys become the day's base run
//! (`DedupIndex::install_day`) before the record is checked, so a key that is anywhere in bronze is found
//! whatever was pruned, evicted or never seen by this checkpoint. Synchronous: the loader blocks its caller.
//!
//! Forgetting is explicit: a record whose day lies before the retention cut (`dedup_retention`) is not checked
//! at all, and neither is one whose day the index cannot load and does not hold whole (a CSV table written
//! before `_record_key`, on a day pruned from the local index; a day with a part that lacks the key column)
//! unless the runs it holds have the key: [`Check::Unchecked`], which the caller counts.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::index::{date_of, DatasetRuns, DedupIndex, IndexError, KeySpill};

/// Reads the keys bronze holds for one UTC day (days since 1970-01-01) of the dataset into the spill; `false`
/// when bronze cannot tell them (a part of the day has no key column).
pub type DayLoader = Box<
    dyn FnMut(i32, &mut KeySpill) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> + Send,
>;

/// The outcome of checking one record against the committed keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Bronze holds the key on that day: a duplicate.
    Seen,
    /// Bronze does not hold it.
    New,
    /// Not checked: the day is beyond the retention, or neither held nor loadable.
    Unchecked,
}

/// One day loaded from bronze during a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DayLoad {
    /// The UTC day.
    pub(crate) day: i32,
    /// Keys read (rows of the day's parts).
    pub keys: u64,
    /// Time spent reading them and writing the base run.
    pub elapsed: Duration,
}

/// The committed keys of one dataset as one batch sees them.
pub struct Lookup {
    index: Arc<DedupIndex>,
    dataset: String,
    last_committed: u64,
    runs: Arc<DatasetRuns>,
    loader: Option<DayLoader>,
    loaded: Vec<DayLoad>,
    retain_from: Option<i32>,
    held_from: Option<i32>,
    unloadable: HashSet<i32>,
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookup")
            .field("dataset", &self.dataset)
            .field("loaded", &self.loaded)
            .finish()
    }
}

impl Lookup {
    /// The committed keys of `dataset` (whose last committed batch is `last_committed`). Without a loader (a
    /// dataset whose bronze holds no key column) only the runs held locally are checked.
    pub fn new(
        index: Arc<DedupIndex>,
        dataset: &str,
        last_committed: u64,
        loader: Option<DayLoader>,
    ) -> Self {
        let runs = index.snapshot(dataset);
        Self {
            index,
            dataset: dataset.to_string(),
            last_committed,
            runs,
            loader,
            loaded: Vec::new(),
            retain_from: None,
            held_from: None,
            unloadable: HashSet::new(),
        }
    }

    /// Records of UTC days before `retain_from` are not checked (`dedup_retention`); `held_from` is the first
    /// day the local index still holds (the horizon's cut), for datasets without a loader.
    pub fn with_cuts(mut self, retain_from: Option<i32>, held_from: Option<i32>) -> Self {
        self.retain_from = retain_from;
        self.held_from = held_from;
        self
    }

    /// Checks `key` on UTC day `day` (see [`Check`]). A key found in the runs held locally is [`Check::Seen`]
    /// even on a day that is not held whole; a key not found there is [`Check::New`] only if the day is whole
    /// (held, or loaded now) or within the local index's reach.
    ///
    /// # Errors
    /// As [`Lookup::contains`].
    pub fn check(&mut self, key: u128, day: i32) -> Result<Check, IndexError> {
        if self.retain_from.is_some_and(|r| day < r) {
            return Ok(Check::Unchecked);
        }
        if self.contains(key, day)? {
            return Ok(Check::Seen);
        }
        let unheld = !self.runs.is_complete(day)
            && (self.unloadable.contains(&day)
                || (self.loader.is_none() && self.held_from.is_some_and(|h| day < h)));
        Ok(if unheld { Check::Unchecked } else { Check::New })
    }

    /// Whether `key` was committed on UTC day `day`, loading the day from bronze first when it is not held (and
    /// can be loaded).
    ///
    /// # Errors
    /// [`IndexError::Bronze`] when the loader fails, other [`IndexError`]s when a run cannot be written or read.
    pub(crate) fn contains(&mut self, key: u128, day: i32) -> Result<bool, IndexError> {
        if !self.runs.is_complete(day) && !self.unloadable.contains(&day) {
            self.load_day(day)?;
        }
        self.runs.contains(key, day)
    }

    fn load_day(&mut self, day: i32) -> Result<(), IndexError> {
        let Some(loader) = self.loader.as_mut() else {
            return Ok(());
        };
        let started = Instant::now();
        let mut keys = self.index.key_spill(&self.dataset, day)?;
        let loaded = loader(day, &mut keys).map_err(|source| IndexError::Bronze {
            day: date_of(day),
            source,
        })?;
        if !loaded {
            tracing::warn!(
                dataset = %self.dataset,
                day = %date_of(day),
                "dedup: the day cannot be read back from bronze (a part without the key column): its records that the local index does not hold are NOT checked, and are counted as unchecked"
            );
            self.unloadable.insert(day);
            return Ok(());
        }
        let n = keys.len();
        self.runs = self
            .index
            .install_day(&self.dataset, day, self.last_committed, keys)?;
        let load = DayLoad {
            day,
            keys: n,
            elapsed: started.elapsed(),
        };
        tracing::info!(
            dataset = %self.dataset,
            day = %date_of(day),
            keys = n,
            ms = load.elapsed.as_secs_f64() * 1e3,
            "dedup: loaded the keys of a day from bronze"
        );
        self.loaded.push(load);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes and publishes batch `b` of `g` holding `ks` on `day`.
    fn commit(idx: &DedupIndex, b: u64, day: i32, ks: &[u128]) {
        let s = idx
            .write_batch("g", b, [(day, ks.to_vec())].into_iter().collect())
            .expect("write");
        idx.publish(s, None).expect("publish");
    }

    #[test]
    fn loaded_days_are_checked_and_unloadable_ones_are_counted_not_claimed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let idx = Arc::new(DedupIndex::new(dir.path()));
        idx.load("g", 0, None).expect("load");
        commit(&idx, 1, 5, &[1]);
        // Bronze: day 5 holds 1 and 2; day 6 has a part without the key column.
        let loader: DayLoader = Box::new(|day, spill| {
            Ok(match day {
                5 => spill.extend(&[1, 2]).map(|()| true)?,
                6 => false,
                _ => true,
            })
        });
        let mut l = Lookup::new(idx.clone(), "g", 1, Some(loader));
        assert_eq!(l.check(2, 5).expect("check"), Check::Seen, "read back");
        assert_eq!(l.check(3, 5).expect("check"), Check::New);
        assert_eq!(l.check(9, 6).expect("check"), Check::Unchecked);
        assert_eq!(l.check(9, 7).expect("check"), Check::New, "an empty day");
        assert_eq!(l.loaded.iter().map(|d| d.day).collect::<Vec<_>>(), [5, 7]);
        // No loader (a table without a key column): days behind the local cut are unchecked, unless a key
        // held locally is found there; days the index holds are checked.
        commit(&idx, 2, 6, &[4]);
        let mut l = Lookup::new(idx, "g", 2, None).with_cuts(None, Some(7));
        assert_eq!(l.check(4, 6).expect("check"), Check::Seen);
        assert_eq!(l.check(8, 6).expect("check"), Check::Unchecked);
        assert_eq!(l.check(8, 7).expect("check"), Check::New);
        let mut l = l.with_cuts(Some(6), Some(7));
        assert_eq!(l.check(2, 5).expect("check"), Check::Unchecked, "retention");
    }
}
