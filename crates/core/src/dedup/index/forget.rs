//! Forgetting whole days of the dedup index on purpose: another writer of the table (another worker) committed
//! keys to them that the index does not hold (`crate::modes::cross_check`). A forgotten day is read back from
//! bronze on its next touch, like an evicted one.

use std::sync::Arc;

use super::run::{remove, Run};
use super::{DatasetRuns, DedupIndex, Result};

impl DedupIndex {
    /// The UTC days of `dataset` held whole (`DatasetRuns::is_complete`).
    pub fn complete_days(&self, dataset: &str) -> Vec<i32> {
        let snap = self.snapshot(dataset);
        snap.days
            .keys()
            .copied()
            .filter(|d| snap.is_complete(*d))
            .collect()
    }

    /// Durably forgets `days` of `dataset` (another writer added keys to them that this index does not hold): their
    /// runs are deleted, base runs first, so a crash midway leaves no day wrongly complete, and the next touch
    /// reads the day back from bronze. Returns how many days were held.
    ///
    /// # Errors
    /// [`IndexError::Io`](super::IndexError::Io) when a run cannot be deleted.
    pub fn forget_days(&self, dataset: &str, days: &[i32]) -> Result<usize> {
        let mut held = self.snapshot(dataset).days.clone();
        let mut dropped: Vec<Arc<Run>> = Vec::new();
        let mut n = 0;
        for d in days {
            if let Some(mut runs) = held.remove(d) {
                runs.sort_by_key(|r| r.lo);
                dropped.extend(runs);
                n += 1;
            }
        }
        self.set(dataset, DatasetRuns { days: held });
        for run in dropped {
            remove(&run.path)?;
        }
        Ok(n)
    }
}
