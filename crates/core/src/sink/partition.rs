//! Partitioning: split a batch into one batch per UTC day of its event-time column.
//!
//! Pure and synchronous. Rows keep their relative order within a day.

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::TimestampMicrosecondType;
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, NaiveDate};

/// A hive partition `year=YYYY/month=MM/day=DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionKey {
    /// Days since 1970-01-01 (UTC).
    pub days: i32,
}

impl PartitionKey {
    /// The key of an event time in µs since epoch, UTC.
    pub fn from_micros(t: i64) -> Self {
        Self {
            days: t.div_euclid(86_400_000_000) as i32,
        }
    }

    /// The calendar date.
    pub(crate) fn date(&self) -> NaiveDate {
        NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch is a valid date")
            + chrono::Days::new(0)
            + chrono::TimeDelta::days(i64::from(self.days))
    }

    /// `year=YYYY/month=MM/day=DD`.
    pub fn path(&self) -> String {
        let d = self.date();
        format!(
            "year={:04}/month={:02}/day={:02}",
            d.year(),
            d.month(),
            d.day()
        )
    }
}

/// The row indices of `batch` per UTC day of column `time_column` (Timestamp µs), ascending within a day.
pub(crate) fn rows_by_day(
    batch: &RecordBatch,
    time_column: usize,
) -> BTreeMap<PartitionKey, Vec<u32>> {
    let times = batch
        .column(time_column)
        .as_primitive::<TimestampMicrosecondType>();
    let mut groups: BTreeMap<PartitionKey, Vec<u32>> = BTreeMap::new();
    for (i, t) in times.values().iter().enumerate() {
        groups
            .entry(PartitionKey::from_micros(*t))
            .or_default()
            .push(i as u32);
    }
    groups
}

/// Splits `batch` by the UTC day of column `time_column` (Timestamp µs): [`rows_by_day`] as batches (the tests'
/// view of it).
#[cfg(test)]
fn split_by_day(batch: &RecordBatch, time_column: usize) -> Vec<(PartitionKey, RecordBatch)> {
    use arrow::array::UInt32Array;
    use arrow::compute::take_record_batch;

    let groups = rows_by_day(batch, time_column);
    if groups.len() == 1 {
        let (k, _) = groups.into_iter().next().expect("one group");
        return vec![(k, batch.clone())];
    }
    groups
        .into_iter()
        .map(|(k, idx)| {
            let b = take_record_batch(batch, &UInt32Array::from(idx))
                .expect("indices are in bounds of the batch");
            (k, b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::TimestampMicrosecondArray;
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;

    #[test]
    fn splits_on_utc_days_including_before_epoch() {
        let day = 86_400_000_000i64;
        let t = TimestampMicrosecondArray::from(vec![day + 5, -1, day * 2, day + 7])
            .with_timezone("UTC");
        let schema = Arc::new(Schema::new(vec![Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        )]));
        let b = RecordBatch::try_new(schema, vec![Arc::new(t)]).expect("batch");
        let parts = split_by_day(&b, 0);
        let paths: Vec<_> = parts
            .iter()
            .map(|(k, b)| (k.path(), b.num_rows()))
            .collect();
        assert_eq!(
            paths,
            vec![
                ("year=1969/month=12/day=31".to_string(), 1),
                ("year=1970/month=01/day=02".to_string(), 2),
                ("year=1970/month=01/day=03".to_string(), 1)
            ]
        );
        assert_eq!(
            PartitionKey::from_micros(1_420_070_400_000_000).path(),
            "year=2015/month=01/day=01"
        );
    }
}
