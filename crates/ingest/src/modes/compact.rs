//! Automatic compaction in `micro-batch` and `continuous` (Delta bronze only): a second task per dataset that
//! rewrites the small parts of partitions that are due, through the same [`crate::table::optimize`] as
//! `lander table optimize`.
//!
//! # When
//! A partition is due when it has at least `compact_min_files` parts smaller than `target_file_bytes` and no
//! part was added to it for `compact_quiet`, or when it has `compact_max_files` small parts whatever its
//! activity (a day files keep landing in). Each of these is the dataset's own key in `[datasets.NAME]` when it
//! has one, else the top-level key ([`Config::table_settings`]). The task looks after every committed batch (at
//! most once per [`MIN_GAP`]) and every quarter of `compact_quiet` (between [`MIN_GAP`] and a minute), on a
//! snapshot of the table it keeps up to date. `compact_min_files = 0` turns it off (for one dataset, or for all);
//! so does `table_format = "parquet"` (no log to swap parts atomically in), and with `worker = "I/N"` only
//! worker 0 compacts.
//!
//! # Beside the batches
//! It never holds a batch up: it runs on its own task, its reads and writes are its own, and it meets the
//! batches only at the table's log. Appends never conflict with it; a compaction whose inputs another writer
//! removed meanwhile (a `lander table optimize`, a repair) is abandoned, never committed over the conflict, and
//! its outputs deleted ([`crate::table::optimize`]). A failure is logged and tried again at the next look.
//! On shutdown a compaction under way finishes (its partition only), then the task stops.
//!
//! Each compaction is logged (`partition compacted`) and counted: `lander_compactions_total`,
//! `lander_compactions_abandoned_total`, `lander_compactions_failed_total`,
//! `lander_compaction_files_rewritten_total`, `lander_compaction_bytes_rewritten_total`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Context;
use crate::config::Config;
use crate::table::optimize::{
    optimize_snapshot, OptimizeOptions, PartitionFilter, PartitionOutcome, PartitionReport, Trigger,
};
use crate::table::{DeltaTable, Snapshot, TableError, TableFormat};

/// Shortest pause between two looks at the table (a batch every few milliseconds must not mean a replay of
/// the log every few milliseconds).
pub(crate) const MIN_GAP: Duration = Duration::from_secs(1);

/// Longest pause between two looks when no batch commits (a partition going quiet is noticed this late at most).
const MAX_GAP: Duration = Duration::from_secs(60);

/// The compaction task of one dataset.
pub(crate) struct Compactor {
    poke: Arc<Notify>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Compactor {
    /// Starts the compaction task of `ds`, or `None` when automatic compaction is off for it.
    pub(crate) fn start(ctx: &Context, ds: &str) -> Option<Self> {
        if !enabled(&ctx.config, ds) {
            return None;
        }
        let poke = Arc::new(Notify::new());
        let stop = ctx.cancel.child_token();
        let task = tokio::spawn(run(ctx.clone(), ds.to_string(), poke.clone(), stop.clone()));
        Some(Self { poke, stop, task })
    }

    /// A batch committed: look at the table soon.
    pub(crate) fn poke(&self) {
        self.poke.notify_one();
    }

    /// Stops the task; a compaction under way is finished first.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the compaction task failed");
        }
    }
}

/// Whether automatic compaction of `dataset` runs under `config`.
pub(crate) fn enabled(config: &Config, dataset: &str) -> bool {
    config.table_settings(dataset).compact_min_files > 0
        && config.table_format == TableFormat::Delta
        && config
            .worker_spec()
            .ok()
            .flatten()
            .is_none_or(|w| w.index == 0)
}

/// The pause between two looks when no batch commits.
fn idle_gap(quiet: Duration) -> Duration {
    (quiet / 4).clamp(MIN_GAP, MAX_GAP)
}

/// What decides which partitions of `dataset` are due, as of now.
pub(crate) fn options(config: &Config, dataset: &str) -> OptimizeOptions {
    let t = config.table_settings(dataset);
    let quiet_ms = i64::try_from(t.compact_quiet.as_millis()).unwrap_or(i64::MAX);
    OptimizeOptions {
        target_file_bytes: t.target_file_bytes,
        min_file_bytes: t.target_file_bytes,
        row_group_rows: config.row_group_rows,
        filter: PartitionFilter::default(),
        trigger: Trigger {
            min_parts: t.compact_min_files,
            quiet_since_ms: Some(
                chrono::Utc::now()
                    .timestamp_millis()
                    .saturating_sub(quiet_ms),
            ),
            max_parts: t.compact_max_files,
        },
    }
}

async fn run(ctx: Context, ds: String, poke: Arc<Notify>, stop: CancellationToken) {
    let table = DeltaTable::new(&ctx.bronze, &ds);
    let mut snap: Option<Snapshot> = None;
    let idle = idle_gap(ctx.config.table_settings(&ds).compact_quiet);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = poke.notified() => {}
            _ = tokio::time::sleep(idle) => {}
        }
        if let Err(e) = look(&ctx, &ds, &table, &mut snap).await {
            snap = None;
            tracing::warn!(dataset = %ds, error = %e, "automatic compaction: cannot read the table; trying again later");
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(MIN_GAP) => {}
        }
    }
}

/// One look: brings the snapshot up to date and compacts every partition that is due.
async fn look(
    ctx: &Context,
    ds: &str,
    table: &DeltaTable,
    snap: &mut Option<Snapshot>,
) -> Result<(), TableError> {
    let s = match snap {
        Some(s) => {
            table.update(s).await?;
            s
        }
        None => match table.load().await? {
            Some(s) => snap.insert(s),
            None => return Ok(()),
        },
    };
    let started = Instant::now();
    let reports = optimize_snapshot(table, s, &options(&ctx.config, ds)).await?;
    for r in &reports {
        record(ds, r, started.elapsed());
    }
    Ok(())
}

/// Logs and counts one partition's compaction.
fn record(ds: &str, r: &PartitionReport, took: Duration) {
    let m = crate::metrics::get();
    let label = crate::metrics::ds(ds);
    match &r.outcome {
        PartitionOutcome::Committed(v) => {
            m.compactions.get_or_create(&label).inc();
            m.compaction_files
                .get_or_create(&label)
                .inc_by(r.files_in as u64);
            m.compaction_bytes.get_or_create(&label).inc_by(r.bytes_in);
            tracing::info!(
                dataset = ds,
                partition = %r.partition,
                files_in = r.files_in,
                files_out = r.files_out,
                bytes_in = r.bytes_in,
                bytes_out = r.bytes_out,
                rows = r.rows,
                version = v,
                secs = took.as_secs_f64(),
                "partition compacted"
            );
        }
        PartitionOutcome::Abandoned(gone) => {
            m.compactions_abandoned.get_or_create(&label).inc();
            tracing::info!(
                dataset = ds,
                partition = %r.partition,
                removed_meanwhile = gone.len(),
                "compaction abandoned: another writer removed some of its inputs meanwhile; nothing committed, its outputs deleted"
            );
        }
        PartitionOutcome::Failed(reason) => {
            m.compactions_failed.get_or_create(&label).inc();
            tracing::warn!(
                dataset = ds,
                partition = %r.partition,
                error = %reason,
                "compaction failed: nothing committed; tried again later"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_when_zero_or_parquet_or_not_worker_zero() {
        let c = Config::default();
        assert!(enabled(&c, "gharchive"));
        assert!(!enabled(
            &Config {
                compact_min_files: 0,
                ..c.clone()
            },
            "gharchive"
        ));
        assert!(!enabled(
            &Config {
                table_format: TableFormat::Parquet,
                ..c.clone()
            },
            "gharchive"
        ));
        assert!(!enabled(
            &Config {
                worker: Some("1/2".into()),
                ..c.clone()
            },
            "gharchive"
        ));
        assert!(enabled(
            &Config {
                worker: Some("0/2".into()),
                ..c
            },
            "gharchive"
        ));
    }

    #[test]
    fn a_dataset_s_own_keys_win_over_the_top_level_ones() {
        let text = r#"
            compact_min_files = 0
            compact_quiet = "5m"
            [datasets.gharchive]
            format = "gharchive"
            compact_min_files = 4
            target_file_bytes = 1000
            [datasets.sales]
            format = "csv"
            event_time = "timestamp"
        "#;
        let c: Config = toml::from_str(text).expect("parse");
        c.validate().expect("valid");
        assert!(enabled(&c, "gharchive") && !enabled(&c, "sales"));
        let o = options(&c, "gharchive");
        assert_eq!((o.target_file_bytes, o.min_file_bytes), (1000, 1000));
        assert_eq!((o.trigger.min_parts, o.trigger.max_parts), (4, 64));
        let quiet_since = o.trigger.quiet_since_ms.expect("quiet");
        let five_min_ago = chrono::Utc::now().timestamp_millis() - 300_000;
        assert!((quiet_since - five_min_ago).abs() < 60_000, "{quiet_since}");
        assert_eq!(
            options(&c, "sales").target_file_bytes,
            Config::default().target_file_bytes
        );
    }

    #[test]
    fn idle_gap_is_a_quarter_of_quiet_within_bounds() {
        assert_eq!(idle_gap(Duration::ZERO), MIN_GAP);
        assert_eq!(idle_gap(Duration::from_secs(20)), Duration::from_secs(5));
        assert_eq!(idle_gap(Duration::from_secs(600)), MAX_GAP);
    }
}
