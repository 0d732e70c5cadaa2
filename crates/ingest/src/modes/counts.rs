//! The record counts of a batch, a run or a dataset, under one spelling.

use serde::Serialize;

use crate::checkpoint::StoredCounts;

/// What happened to the records read: written, dropped as duplicates, written unchecked, quarantined.
///
/// One type for [`BatchReport`](super::BatchReport), a commit's totals and the run summary's
/// `DatasetSummary` (where it is `#[serde(flatten)]`, so the JSON keeps its four fields in this order) and the
/// stage's per-file outcome. The checkpoint's stored records (`FileRecord`, `BatchInput`, `BatchRecord`) keep
/// its stored sibling [`StoredCounts`] (without `unchecked`; `.into()` converts), whose JSON is the stored
/// format.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecordCounts {
    /// Rows written to bronze.
    pub rows: u64,
    /// Records dropped as duplicates.
    pub duplicates: u64,
    /// Records written without a dedup check (their event day is beyond `dedup_retention`, or neither held
    /// locally nor readable from bronze).
    pub unchecked: u64,
    /// Records quarantined (a file rejected as a whole counts one).
    pub quarantined: u64,
}

impl std::ops::AddAssign for RecordCounts {
    fn add_assign(&mut self, o: Self) {
        self.rows += o.rows;
        self.duplicates += o.duplicates;
        self.unchecked += o.unchecked;
        self.quarantined += o.quarantined;
    }
}

impl From<RecordCounts> for StoredCounts {
    /// The counts a stored record keeps (`unchecked` is not one of them).
    fn from(c: RecordCounts) -> Self {
        Self {
            rows: c.rows,
            duplicates: c.duplicates,
            quarantined: c.quarantined,
        }
    }
}
