//! `checkpoint stats`: per-dataset totals, from the checkpoint and the dedup run files.

use std::time::Duration;

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};

use super::table::{kv_block, Table};
use super::{DatasetStatsJson, StatsArgs, StatsJson};
use crate::checkpoint::{CheckpointStore, FileStatus, SCHEMA_VERSION};
use crate::cli::load_config;
use crate::cli::output::{
    blocking, emit, emit_json, fmt_duration, fmt_time, human_bytes, open_read,
};

pub(super) async fn stats(a: StatsArgs) -> anyhow::Result<()> {
    let config = load_config(&a.common.locations)?;
    let store = open_read(&config).await?;
    let only = a.common.dataset.clone();
    let horizon = config.dedup_horizon;
    let doc = blocking(move || compute_stats(&store, only.as_deref(), horizon))
        .await
        .context("while reading the checkpoint")?;
    if let Some(d) = &a.common.dataset {
        if doc.datasets.is_empty() {
            bail!("the checkpoint has no state for dataset {d}");
        }
    }
    if a.common.json {
        return emit_json(&doc);
    }
    emit(&render_stats(&doc))
}

/// The dedup index size of `ds`, read from its run files without loading or cleaning them.
fn dedup_index_stats(
    store: &CheckpointStore,
    ds: &str,
) -> Result<crate::dedup::index::IndexStats, crate::modes::RunError> {
    let last = store.last_batch_id(ds)?;
    let mut stats = crate::dedup::index::open_committed(store.dir(), ds, last)?.stats();
    // Keys an imported or old-layout store still keeps in sled, until the next run moves them into runs.
    stats.keys += store.legacy_dedup_key_count(ds) as u64;
    Ok(stats)
}

fn compute_stats(
    store: &CheckpointStore,
    only: Option<&str>,
    horizon: Duration,
) -> Result<StatsJson, crate::modes::RunError> {
    let mut datasets = Vec::new();
    for ds in store.datasets()? {
        if only.is_some_and(|o| o != ds) {
            continue;
        }
        let files = store.files(Some(&ds))?;
        let batches = store.batches(Some(&ds))?;
        let dedup = dedup_index_stats(store, &ds)?;
        let mut s = DatasetStatsJson {
            dataset: ds.clone(),
            files: files.len() as u64,
            files_ok: 0,
            files_partial: 0,
            files_failed: 0,
            bytes: files.iter().map(|f| f.bytes_consumed).sum(),
            rows: batches.iter().map(|b| b.counts.rows).sum(),
            quarantined: batches.iter().map(|b| b.counts.quarantined).sum(),
            duplicates: batches.iter().map(|b| b.counts.duplicates).sum(),
            batches: batches.len() as u64,
            last_batch: batches.iter().map(|b| b.id).max(),
            last_commit: batches.iter().map(|b| b.committed_at).max(),
            first_event_time: batches
                .iter()
                .filter_map(|b| b.min_event_time)
                .min()
                .and_then(DateTime::from_timestamp_micros),
            last_event_time: batches
                .iter()
                .filter_map(|b| b.max_event_time)
                .max()
                .and_then(DateTime::from_timestamp_micros),
            bronze_files: 0,
            bronze_bytes: 0,
            quarantine_files: 0,
            dedup_keys: dedup.keys,
            dedup_runs: dedup.runs,
            dedup_bytes: dedup.bytes,
            dedup_filter_bytes: dedup.filter_bytes,
            dedup_watermark: store
                .watermark(&ds)?
                .and_then(DateTime::from_timestamp_micros),
            dedup_horizon: fmt_duration(horizon),
            dedup_horizon_secs: horizon.as_secs(),
            in_flight_batch: store.intent(&ds)?.map(|i| i.id),
            csv_columns: store.schema(&ds)?.map(|s| s.columns.len()),
        };
        for f in &files {
            match f.status {
                FileStatus::Ok => s.files_ok += 1,
                FileStatus::Partial => s.files_partial += 1,
                FileStatus::Failed { .. } => s.files_failed += 1,
            }
        }
        for o in batches.iter().flat_map(|b| &b.outputs) {
            if o.path.starts_with("_quarantine/") {
                s.quarantine_files += 1;
            } else {
                s.bronze_files += 1;
                s.bronze_bytes += o.bytes;
            }
        }
        datasets.push(s);
    }
    Ok(StatsJson {
        checkpoint: store.dir().display().to_string(),
        snapshot: store.is_snapshot(),
        schema_version: SCHEMA_VERSION,
        store_bytes: store.size_on_disk()?,
        datasets,
    })
}

/// The rows of one dataset's column in the human `stats` table.
fn stat_cells(d: &DatasetStatsJson) -> Vec<(&'static str, String)> {
    let opt_time = |t: Option<DateTime<Utc>>| t.map_or_else(|| "-".into(), fmt_time);
    let opt_num = |n: Option<u64>| n.map_or_else(|| "-".into(), |n| n.to_string());
    vec![
        ("files", d.files.to_string()),
        (
            "  ok/partial/failed",
            format!("{}/{}/{}", d.files_ok, d.files_partial, d.files_failed),
        ),
        ("bytes consumed", human_bytes(d.bytes)),
        ("rows", d.rows.to_string()),
        ("quarantined rows", d.quarantined.to_string()),
        ("duplicates dropped", d.duplicates.to_string()),
        ("batches", d.batches.to_string()),
        ("last commit", opt_time(d.last_commit)),
        ("first event", opt_time(d.first_event_time)),
        ("last event", opt_time(d.last_event_time)),
        (
            "bronze files",
            format!("{} ({})", d.bronze_files, human_bytes(d.bronze_bytes)),
        ),
        ("quarantine files", d.quarantine_files.to_string()),
        ("dedup keys", d.dedup_keys.to_string()),
        (
            "dedup runs",
            format!("{} ({})", d.dedup_runs, human_bytes(d.dedup_bytes)),
        ),
        ("dedup filters", human_bytes(d.dedup_filter_bytes)),
        ("dedup watermark", opt_time(d.dedup_watermark)),
        ("dedup horizon", d.dedup_horizon.clone()),
        ("in-flight batch", opt_num(d.in_flight_batch)),
        ("csv columns", opt_num(d.csv_columns.map(|c| c as u64))),
    ]
}

fn render_stats(doc: &StatsJson) -> String {
    let mut s = kv_block(&[
        ("checkpoint", doc.checkpoint.clone()),
        (
            "store",
            format!(
                "{} on disk, format version {}{}",
                human_bytes(doc.store_bytes),
                doc.schema_version,
                if doc.snapshot { " (snapshot)" } else { "" }
            ),
        ),
    ]);
    if doc.datasets.is_empty() {
        s.push_str("no dataset has state yet\n");
        return s;
    }
    s.push('\n');
    let mut headers: Vec<(&str, bool)> = vec![("DATASET", false)];
    headers.extend(doc.datasets.iter().map(|d| (d.dataset.as_str(), true)));
    let mut t = Table::new(&headers);
    // One column per dataset: transpose the per-dataset (name, value) lists.
    let columns: Vec<Vec<(&str, String)>> = doc.datasets.iter().map(stat_cells).collect();
    for (i, (name, _)) in columns[0].iter().enumerate() {
        let mut r = vec![name.to_string()];
        r.extend(columns.iter().map(|c| c[i].1.clone()));
        t.row(r);
    }
    s.push_str(&t.render());
    s
}
