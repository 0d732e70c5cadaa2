//! Rows held in memory per UTC day until their day is written as a part.
//!
//! Takes the rows of decoded batches together with the day each row belongs to, and gives back one
//! `RecordBatch` per day, with the day's rows in the order they were held. Pure and synchronous.
//!
//! Why rows and not open Parquet writers: an open `ArrowWriter` costs a column writer per column whatever its
//! size, so one writer per day made memory grow with the number of event days in a batch (2.9 GB for a 4 MB file
//! spanning 9,000 days). Held rows cost their Arrow bytes plus 8 bytes of index each: the batches are kept whole
//! (or as one compact copy of the rows held from them), never as one small batch per day, whose per-column
//! overhead would again grow with the number of days. [`HeldRows::bytes`] is what the caller bounds.

use std::collections::BTreeMap;

use arrow::array::UInt32Array;
use arrow::compute::{interleave_record_batch, take_record_batch};
use arrow::record_batch::RecordBatch;

use super::PartitionKey;

/// One batch rows are held from, and how many of its rows are still held.
struct Slot {
    batch: RecordBatch,
    rows_left: usize,
    bytes: usize,
}

/// The rows held for one day: (slot, row) in the order they arrived, and their estimated Arrow bytes.
#[derive(Default)]
struct Held {
    rows: Vec<(usize, usize)>,
    bytes: usize,
}

/// Rows of several days held in memory, until [`HeldRows::take_day`] hands a day's rows out as one batch.
#[derive(Default)]
pub(crate) struct HeldRows {
    slots: Vec<Option<Slot>>,
    days: BTreeMap<PartitionKey, Held>,
    bytes: usize,
}

impl HeldRows {
    /// Holds rows of `batch`: for each `(day, rows)` of `groups`, the listed row indices (ascending) belong to
    /// that day. Rows not listed are not held: when they are fewer than all, only the listed rows are copied
    /// (once, into one compact batch), so the rest of `batch` is not kept alive by them.
    pub(crate) fn hold(&mut self, batch: &RecordBatch, groups: Vec<(PartitionKey, Vec<u32>)>) {
        let listed: usize = groups.iter().map(|(_, r)| r.len()).sum();
        if listed == 0 {
            return;
        }
        let slot = self.slots.len();
        let (kept, groups) = if listed == batch.num_rows() {
            (batch.clone(), groups)
        } else {
            // The listed rows, day after day, become rows 0.. of a compact copy.
            let all: Vec<u32> = groups.iter().flat_map(|(_, r)| r.iter().copied()).collect();
            let kept = take_record_batch(batch, &UInt32Array::from(all))
                .expect("held row indices are in bounds of their batch");
            let mut next = 0u32;
            let renumbered = groups
                .into_iter()
                .map(|(day, rows)| {
                    let n = rows.len() as u32;
                    next += n;
                    (day, (next - n..next).collect())
                })
                .collect();
            (kept, renumbered)
        };
        let bytes = kept.get_array_memory_size();
        let rows = kept.num_rows();
        for (day, idx) in groups {
            let held = self.days.entry(day).or_default();
            // This day's share of the batch's bytes (at least one byte a row, so that it counts).
            held.bytes += (bytes * idx.len() / rows).max(idx.len());
            held.rows
                .extend(idx.into_iter().map(|r| (slot, r as usize)));
        }
        self.slots.push(Some(Slot {
            batch: kept,
            rows_left: rows,
            bytes,
        }));
        self.bytes += bytes;
    }

    /// Arrow bytes held (every batch rows are held from, counted once).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Estimated Arrow bytes of the rows held for `day` (0 when none are).
    pub(crate) fn day_bytes(&self, day: PartitionKey) -> usize {
        self.days.get(&day).map_or(0, |h| h.bytes)
    }

    /// The days with rows held, in day order.
    pub(crate) fn days(&self) -> Vec<PartitionKey> {
        self.days.keys().copied().collect()
    }

    /// Whether no row is held.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    /// Removes the rows held for `day` and returns them as one batch, in the order they were held; the
    /// batches they came from are released once no day holds rows of them.
    pub(crate) fn take_day(&mut self, day: PartitionKey) -> Option<RecordBatch> {
        let held = self.days.remove(&day)?;
        // The slots this day uses, numbered densely for `interleave`.
        let mut dense: BTreeMap<usize, usize> = held.rows.iter().map(|(s, _)| (*s, 0)).collect();
        let out = {
            let batches: Vec<&RecordBatch> = dense
                .iter_mut()
                .enumerate()
                .map(|(i, (slot, d))| {
                    *d = i;
                    &self.slots[*slot]
                        .as_ref()
                        .expect("a held row's slot is live")
                        .batch
                })
                .collect();
            let indices: Vec<(usize, usize)> =
                held.rows.iter().map(|(s, r)| (dense[s], *r)).collect();
            interleave_record_batch(&batches, &indices)
                .expect("held rows share one schema and are in bounds")
        };
        for (slot, _) in &held.rows {
            let s = self.slots[*slot]
                .as_mut()
                .expect("a held row's slot is live");
            s.rows_left -= 1;
            if s.rows_left == 0 {
                self.bytes -= s.bytes;
                self.slots[*slot] = None;
            }
        }
        if self.days.is_empty() {
            self.slots.clear();
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use std::sync::Arc;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))])
            .expect("batch")
    }

    fn values(b: &RecordBatch) -> Vec<i64> {
        b.column(0).as_primitive::<Int64Type>().values().to_vec()
    }

    fn day(d: i32) -> PartitionKey {
        PartitionKey { days: d }
    }

    #[test]
    fn days_come_back_in_held_order_across_batches_and_memory_is_released() {
        let mut h = HeldRows::default();
        // Batch 1: rows 0, 2 on day 1 and row 1 on day 2; all rows held (kept whole).
        h.hold(
            &batch(&[10, 20, 30]),
            vec![(day(1), vec![0, 2]), (day(2), vec![1])],
        );
        // Batch 2: only rows 1 and 3 are held (the others went elsewhere): a compact copy of them.
        h.hold(
            &batch(&[40, 50, 60, 70]),
            vec![(day(2), vec![3]), (day(1), vec![1])],
        );
        assert_eq!(h.days(), vec![day(1), day(2)]);
        assert!(h.bytes() > 0 && h.day_bytes(day(1)) > 0 && h.day_bytes(day(3)) == 0);
        let before = h.bytes();
        assert_eq!(
            values(&h.take_day(day(1)).expect("day 1")),
            vec![10, 30, 50]
        );
        // Both batches still hold a row of day 2.
        assert_eq!(h.bytes(), before);
        assert_eq!(values(&h.take_day(day(2)).expect("day 2")), vec![20, 70]);
        assert_eq!(h.bytes(), 0);
        assert!(h.is_empty() && h.take_day(day(1)).is_none());
    }

    #[test]
    fn a_batch_is_released_when_its_last_held_day_is_taken() {
        let mut h = HeldRows::default();
        h.hold(&batch(&[1, 2]), vec![(day(5), vec![0, 1])]);
        let first = h.bytes();
        h.hold(&batch(&[3, 4]), vec![(day(6), vec![0]), (day(7), vec![1])]);
        let both = h.bytes();
        assert_eq!(values(&h.take_day(day(5)).expect("day 5")), vec![1, 2]);
        assert_eq!(h.bytes(), both - first, "the first batch is released");
        assert_eq!(values(&h.take_day(day(6)).expect("day 6")), vec![3]);
        assert!(h.bytes() > 0, "day 7 still holds the second batch");
        assert_eq!(values(&h.take_day(day(7)).expect("day 7")), vec![4]);
        assert_eq!(h.bytes(), 0);
    }
}
