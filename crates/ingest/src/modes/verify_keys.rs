//! `checkpoint verify --keys`: every key that bronze holds more than once on one UTC day, with its files and rows.
//!
//! Independent of the dedup index and of the checkpoint: it reads bronze only. A Parquet bronze's parts are the
//! visible `.parquet` objects listed under `<dataset>/year=.../day=...`; a Delta bronze's are the files its current
//! snapshot lists. Partitions are scanned one at a time, and only the key column is read (one row group's chunk
//! at a time, see [`super::keys`]), so memory is bounded by the keys of the largest day (about 30 bytes a key).

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;

use super::keys::{decode_chunk, fetch_chunks, KeysError, Part};
use crate::store::StoreLocation;
use crate::table::{DeltaTable, TableFormat};

/// Chunks fetched ahead of the decoder while scanning.
const SCAN_CHUNKS_IN_FLIGHT: usize = 2;

/// A key that occurs more than once in one day partition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DuplicateKey {
    /// Dataset.
    pub dataset: String,
    /// The day partition (`year=YYYY/month=MM/day=DD`).
    pub partition: String,
    /// The key's value.
    pub key: String,
    /// Every occurrence: (part relative to bronze, 0-based row in the part).
    pub occurrences: Vec<(String, u64)>,
}

/// What a key scan found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KeyScan {
    /// Keys held more than once on one day.
    pub duplicates: Vec<DuplicateKey>,
    /// Parts without the key column (a CSV table written before `_record_key`): their keys were not scanned.
    pub unscanned: Vec<String>,
}

/// The parts of `dataset` by day partition.
async fn parts_by_partition(
    bronze: &StoreLocation,
    format: TableFormat,
    dataset: &str,
) -> Result<BTreeMap<String, Vec<Part>>, KeysError> {
    let mut by: BTreeMap<String, Vec<Part>> = BTreeMap::new();
    let mut add = |rel: String, size: u64| {
        let Some((dir, name)) = rel.rsplit_once('/') else {
            return;
        };
        let visible =
            !name.starts_with('_') && !name.starts_with('.') && name.ends_with(".parquet");
        let Some(partition) = dir.strip_prefix(&format!("{dataset}/")) else {
            return;
        };
        if visible && partition.starts_with("year=") {
            by.entry(partition.to_string())
                .or_default()
                .push(Part { path: rel, size });
        }
    };
    match format {
        TableFormat::Parquet => {
            let prefix = bronze.path(dataset);
            let mut stream = bronze.store.list(Some(&prefix));
            while let Some(meta) = stream.next().await {
                match meta {
                    Ok(m) => {
                        if let Some(rel) = bronze.relative(&m.location) {
                            add(rel, m.size);
                        }
                    }
                    Err(object_store::Error::NotFound { .. }) => continue,
                    Err(source) => {
                        return Err(KeysError::Store {
                            path: dataset.to_string(),
                            source,
                        })
                    }
                }
            }
        }
        TableFormat::Delta => {
            if let Some(snap) = DeltaTable::new(bronze, dataset).load().await? {
                for (p, a) in &snap.files {
                    add(format!("{dataset}/{p}"), u64::try_from(a.size).unwrap_or(0));
                }
            }
        }
    }
    for parts in by.values_mut() {
        parts.sort();
    }
    Ok(by)
}

/// Every key of column `column` that occurs more than once in one day partition of `dataset`, and the parts
/// that have no such column.
///
/// # Errors
/// [`KeysError`] when bronze cannot be listed or a part cannot be read.
pub async fn duplicate_keys(
    bronze: &StoreLocation,
    format: TableFormat,
    dataset: &str,
    column: &str,
) -> Result<KeyScan, KeysError> {
    let mut out = KeyScan::default();
    for (partition, parts) in parts_by_partition(bronze, format, dataset).await? {
        let (tx, mut rx) = mpsc::channel(SCAN_CHUNKS_IN_FLIGHT);
        let task = tokio::spawn(fetch_chunks(bronze.clone(), parts, column.to_string(), tx));
        // Key -> first place; keys seen again collect every place.
        let mut first: HashMap<String, (String, u64)> = HashMap::new();
        let mut again: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
        while let Some(chunk) = rx.recv().await {
            let chunk = match chunk {
                Err(KeysError::MissingColumn { path, .. }) => {
                    out.unscanned.push(path);
                    continue;
                }
                chunk => chunk?,
            };
            let path = chunk.path.clone();
            let rows = tokio::task::spawn_blocking(move || {
                let mut rows = Vec::new();
                decode_chunk(chunk, |row, k| rows.push((row, k.to_string()))).map(|()| rows)
            })
            .await
            .expect("decoding a key column does not panic")?;
            for (row, key) in rows {
                match first.get(&key) {
                    None => {
                        first.insert(key, (path.clone(), row));
                    }
                    Some(place) => again
                        .entry(key)
                        .or_insert_with(|| vec![place.clone()])
                        .push((path.clone(), row)),
                }
            }
        }
        task.abort();
        out.duplicates
            .extend(again.into_iter().map(|(key, occurrences)| DuplicateKey {
                dataset: dataset.to_string(),
                partition: partition.clone(),
                key,
                occurrences,
            }));
    }
    Ok(out)
}
