//! Dedup: drop records whose key was already written, in this batch or in a committed one.
//!
//! Takes in decoded chunks (rows plus one 128-bit key hash per row) in a deterministic order and a lookup into
//! the committed dedup state ([`index`]); produces the chunk without duplicates and accumulates the batch's new
//! keys, grouped by UTC event day, to be written to the index before the batch commits. The first occurrence in
//! batch order wins, so replaying a batch keeps the same rows. Nothing per record is kept beyond its 16-byte
//! key hash. [`Deduper`] is pure and synchronous; [`index`] owns the files.
//!
//! # Semantics
//! A key is per (dataset, key, UTC event day): a record is a duplicate when a record with the same key and the
//! same UTC event day was kept before (in this batch or a committed one); the first occurrence wins. The same
//! key with an event time on another UTC day is another record. The committed keys of a day come from the
//! local index ([`index`]) when it holds the day whole, and otherwise from bronze itself ([`lookup`]), so the
//! index's horizon bounds its size, not what is checked. Only `dedup_retention` stops checking: a record whose
//! day is beyond it is kept unchecked and counted.

pub mod index;
pub mod lookup;

use std::collections::BTreeMap;

use arrow::array::{AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::TimestampMicrosecondType;
use arrow::record_batch::RecordBatch;

use crate::decode::Decoded;
use index::day_of;

/// A chunk after dedup.
#[derive(Debug)]
pub struct Deduped {
    /// Rows kept.
    pub batch: RecordBatch,
    /// Rows dropped.
    pub duplicates: u64,
    /// Rows kept without a check against the committed keys ([`lookup::Check::Unchecked`]).
    pub unchecked: u64,
    /// Index of the event-time column.
    pub time_column: usize,
}

/// Folds a key that is already a uniform 128-bit hash to 64 bits (for the per-batch hash table and the run
/// filters): running a hasher over it again would cost more than the lookup itself.
pub(crate) fn fold(k: u128) -> u64 {
    (k as u64) ^ ((k >> 64) as u64)
}

/// Keys per segment of [`Deduper`]'s key list: appending never copies the list or doubles its memory.
const SEGMENT_KEYS: usize = 1 << 16;

/// Per-batch dedup state: the keys this batch already kept, in order, with their UTC event days (in segments of
/// `SEGMENT_KEYS`), and a hash table of 4-byte indices into them. About 26 bytes a key (16 + 4 + the table's
/// slots), so a one-million-event batch holds about 26 MB here.
#[derive(Default)]
pub struct Deduper {
    index: hashbrown::HashTable<u32>,
    keys: Vec<Vec<u128>>,
    days: Vec<Vec<i32>>,
    len: usize,
}

impl std::fmt::Debug for Deduper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deduper")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Deduper {
    /// A deduper for a new batch.
    pub fn new() -> Self {
        Self::default()
    }

    fn key_at(keys: &[Vec<u128>], i: u32) -> u128 {
        let i = i as usize;
        keys[i / SEGMENT_KEYS][i % SEGMENT_KEYS]
    }

    fn day_at(days: &[Vec<i32>], i: u32) -> i32 {
        let i = i as usize;
        days[i / SEGMENT_KEYS][i % SEGMENT_KEYS]
    }

    /// Keys are per (key, UTC day): the same key on another day is another record.
    fn seen(&self, key: u128, day: i32) -> bool {
        self.index
            .find(fold(key), |i| {
                Self::key_at(&self.keys, *i) == key && Self::day_at(&self.days, *i) == day
            })
            .is_some()
    }

    fn keep(&mut self, key: u128, day: i32) {
        let i = u32::try_from(self.len).expect("fewer than 2^32 new keys in one batch");
        if self.len.is_multiple_of(SEGMENT_KEYS) {
            self.keys.push(Vec::with_capacity(SEGMENT_KEYS));
            self.days.push(Vec::with_capacity(SEGMENT_KEYS));
        }
        self.keys
            .last_mut()
            .expect("a segment was pushed above")
            .push(key);
        self.days
            .last_mut()
            .expect("a segment was pushed above")
            .push(day);
        self.len += 1;
        let keys = &self.keys;
        self.index
            .insert_unique(fold(key), i, |j| fold(Self::key_at(keys, *j)));
    }

    /// The keys kept, by UTC event day (what [`index::DedupIndex::write_batch`] takes).
    pub fn into_new_keys(self) -> BTreeMap<i32, Vec<u128>> {
        drop(self.index);
        let mut by_day: BTreeMap<i32, Vec<u128>> = BTreeMap::new();
        for (keys, days) in self.keys.into_iter().zip(self.days) {
            for (key, day) in keys.into_iter().zip(days) {
                by_day.entry(day).or_default().push(key);
            }
        }
        by_day
    }

    /// Drops rows of `chunk` whose (key, UTC event day) is in this batch already or for which
    /// `committed(key, day)` says [`lookup::Check::Seen`]; counts those it says [`lookup::Check::Unchecked`].
    ///
    /// # Errors
    /// Whatever `committed` returns.
    pub fn dedup<E>(
        &mut self,
        chunk: Decoded,
        mut committed: impl FnMut(u128, i32) -> Result<lookup::Check, E>,
    ) -> Result<Deduped, E> {
        let times = chunk
            .batch
            .column(chunk.time_column)
            .as_primitive::<TimestampMicrosecondType>();
        let mut keep = Vec::with_capacity(chunk.keys.len());
        let mut kept = 0usize;
        let mut unchecked = 0u64;
        for (i, key) in chunk.keys.iter().enumerate() {
            let day = day_of(times.value(i));
            let fresh = !self.seen(*key, day)
                && match committed(*key, day)? {
                    lookup::Check::Seen => false,
                    lookup::Check::New => true,
                    lookup::Check::Unchecked => {
                        unchecked += 1;
                        true
                    }
                };
            if fresh {
                self.keep(*key, day);
                kept += 1;
            }
            keep.push(fresh);
        }
        let duplicates = (chunk.keys.len() - kept) as u64;
        let batch = if duplicates == 0 {
            chunk.batch
        } else {
            filter_record_batch(&chunk.batch, &BooleanArray::from(keep))
                .expect("a boolean mask of the batch's own length always filters")
        };
        Ok(Deduped {
            batch,
            duplicates,
            unchecked,
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
            .dedup(chunk(&[1, 2, 2, 3]), |k, _| {
                Ok::<_, ()>(if k == 3 {
                    lookup::Check::Seen
                } else {
                    lookup::Check::New
                })
            })
            .expect("ok");
        assert_eq!(out.duplicates, 2);
        let ids = out
            .batch
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(ids.values(), &[1, 2]);
        let out = d
            .dedup(chunk(&[2, 4]), |_, _| Ok::<_, ()>(lookup::Check::Unchecked))
            .expect("ok");
        assert_eq!((out.duplicates, out.unchecked), (1, 1));
        assert_eq!(d.len, 3);
        // Event times are tiny (µs), so every key is on day 0.
        assert_eq!(d.into_new_keys(), BTreeMap::from([(0, vec![1, 2, 4])]));
    }
}
