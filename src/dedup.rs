//! Dedup: drop records whose key was already written, in this batch or in a committed one.
//!
//! Takes in decoded chunks (rows plus one 128-bit key hash per row) in a deterministic order and a lookup into
//! the committed dedup state; produces the chunk without duplicates plus the new keys with their event times, to
//! be committed with the batch. The first occurrence in batch order wins, so replaying a batch keeps the same
//! rows. Pure and synchronous.
//!
//! # Semantics (compare Spark's `dropDuplicatesWithinWatermark`)
//! A key is remembered while its event time lies within the dataset's horizon (default 7 days) of the newest
//! event time committed for the dataset (the watermark); older keys are pruned at commit, in whole UTC days, so
//! state stays bounded. Unlike Spark, a record older than the watermark is not dropped as late: it is checked
//! against what is still remembered and written if new. A duplicate whose first occurrence was pruned is written
//! again: choose a horizon longer than the time duplicates can arrive apart.

use std::collections::HashSet;

use arrow::array::{AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::TimestampMicrosecondType;
use arrow::record_batch::RecordBatch;

use crate::decode::Decoded;

/// A chunk after dedup.
#[derive(Debug)]
pub struct Deduped {
    /// Rows kept.
    pub batch: RecordBatch,
    /// Keys of the kept rows with their event time (µs UTC).
    pub new_keys: Vec<(u128, i64)>,
    /// Rows dropped.
    pub duplicates: u64,
    /// Index of the event-time column.
    pub time_column: usize,
}

/// Per-batch dedup state: the keys this batch already kept.
#[derive(Debug, Default)]
pub struct Deduper {
    seen: HashSet<u128>,
}

impl Deduper {
    /// A deduper for a new batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys kept so far in this batch.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no key was kept yet.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Drops rows of `chunk` whose key is in this batch already or for which `committed(key)` is true.
    ///
    /// # Errors
    /// Whatever `committed` returns.
    pub fn dedup<E>(
        &mut self,
        chunk: Decoded,
        mut committed: impl FnMut(u128) -> Result<bool, E>,
    ) -> Result<Deduped, E> {
        let times = chunk
            .batch
            .column(chunk.time_column)
            .as_primitive::<TimestampMicrosecondType>();
        let mut keep = Vec::with_capacity(chunk.keys.len());
        let mut new_keys = Vec::with_capacity(chunk.keys.len());
        for (i, key) in chunk.keys.iter().enumerate() {
            let fresh = !self.seen.contains(key) && !committed(*key)?;
            if fresh {
                self.seen.insert(*key);
                new_keys.push((*key, times.value(i)));
            }
            keep.push(fresh);
        }
        let duplicates = (chunk.keys.len() - new_keys.len()) as u64;
        let batch = if duplicates == 0 {
            chunk.batch
        } else {
            filter_record_batch(&chunk.batch, &BooleanArray::from(keep))
                .expect("a boolean mask of the batch's own length always filters")
        };
        Ok(Deduped {
            batch,
            new_keys,
            duplicates,
            time_column: chunk.time_column,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;

    fn chunk(ids: &[i64]) -> Decoded {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(
                    TimestampMicrosecondArray::from(ids.iter().map(|i| i * 10).collect::<Vec<_>>())
                        .with_timezone("UTC"),
                ),
            ],
        )
        .expect("batch");
        Decoded {
            batch,
            keys: ids.iter().map(|i| *i as u128).collect(),
            time_column: 1,
        }
    }

    #[test]
    fn drops_within_batch_and_committed_first_wins() {
        let mut d = Deduper::new();
        let out = d
            .dedup(chunk(&[1, 2, 2, 3]), |k| Ok::<_, ()>(k == 3))
            .expect("ok");
        assert_eq!(out.duplicates, 2);
        assert_eq!(out.new_keys, vec![(1, 10), (2, 20)]);
        let ids = out
            .batch
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(ids.values(), &[1, 2]);
        let out = d.dedup(chunk(&[2, 4]), |_| Ok::<_, ()>(false)).expect("ok");
        assert_eq!(out.new_keys, vec![(4, 40)]);
        assert_eq!(d.len(), 3);
    }
}
