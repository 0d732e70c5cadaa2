//! The quarantine of a Delta bronze as a Delta table of its own: `_quarantine/<dataset>` (unpartitioned, the
//! schema of [`crate::sink::parquet::quarantine_schema`]) holds a batch's quarantine parts through one commit
//! with the same `txn` (app id, batch id) as the batch's data commit, made right after it.
//!
//! The two commits cannot be one (two tables, two logs), so a crash can fall between them (failpoint
//! `published`). Recovery makes them agree: a batch is committed when either table has its `txn`; then the
//! other one gets the commit too, with the parts listed in the intent's sled commit ([`commit`] is idempotent:
//! a table that already has the `txn` is left alone), so the quarantine rows of a batch count once. A batch
//! neither table has is rolled back, its quarantine parts deleted with its other outputs. The copies of failed
//! files (`files/…`) are not Parquet and stay outside the table (Delta readers ignore unreferenced files).

use crate::checkpoint::OutputFile;
use crate::modes::RunError;
use crate::table::{Add, Commit, Committed, DeltaTable};

use super::context::{blocking, Context};

/// The quarantine table's root (relative to bronze) of `dataset`.
pub(super) fn root(dataset: &str) -> String {
    format!("_quarantine/{dataset}")
}

/// The `add` of each quarantine part among `outputs` (paths relative to bronze).
fn adds(dataset: &str, outputs: &[OutputFile], now_ms: i64) -> Vec<Add> {
    let prefix = format!("{}/", root(dataset));
    outputs
        .iter()
        .filter_map(|o| {
            let rel = o.path.strip_prefix(&prefix)?;
            (rel.ends_with(".parquet") && !rel.contains('/')).then(|| Add {
                path: rel.to_string(),
                partition_values: Default::default(),
                size: o.bytes as i64,
                modification_time: now_ms,
                data_change: true,
                stats: Some(serde_json::json!({ "numRecords": o.rows }).to_string()),
            })
        })
        .collect()
}

/// Whether the quarantine table of `dataset` has batch `id` of app `app`.
///
/// # Errors
/// Table read failures.
pub(super) async fn has(
    ctx: &Context,
    dataset: &str,
    app: &str,
    id: u64,
) -> Result<bool, RunError> {
    let table = DeltaTable::new(&ctx.bronze, &root(dataset));
    Ok(table
        .load()
        .await?
        .is_some_and(|s| s.app_version(app).is_some_and(|v| v >= id as i64)))
}

/// Commits the quarantine parts among `outputs` of batch `id` to `dataset`'s quarantine table with `txn
/// (app, id)`, creating the table on its first part. Nothing to commit when the batch quarantined nothing; a
/// batch the table already has is not committed again.
///
/// # Errors
/// Table failures (the commit may or may not exist: recovery asks the table again).
pub(super) async fn commit(
    ctx: &Context,
    dataset: &str,
    app: &str,
    id: u64,
    outputs: &[OutputFile],
) -> Result<(), RunError> {
    let adds = adds(dataset, outputs, chrono::Utc::now().timestamp_millis());
    if adds.is_empty() {
        return Ok(());
    }
    let table = DeltaTable::new(&ctx.bronze, &root(dataset));
    // The run's cached snapshot: a commit reads only the log entries written since the previous one.
    let mut snap = match ctx.tables.take(&table).await? {
        Some(s) => s,
        None => {
            let snap = table
                .create_with(&crate::sink::parquet::quarantine_schema(), &[])
                .await?;
            // Bound like the data table (`super::binding`, key `_quarantine/<dataset>`); a crash before this
            // line leaves it unbound, and the next start binds it to the table it finds.
            let (cp, key, id) = (
                ctx.checkpoint.clone(),
                root(dataset),
                snap.metadata.id.clone(),
            );
            blocking(move || cp.bind_table(&key, &id)).await?;
            snap
        }
    };
    let c = Commit {
        adds,
        txn: (app.to_string(), id as i64),
        info: serde_json::json!({ "lander": {
            "version": env!("CARGO_PKG_VERSION"),
            "quarantineOf": dataset,
            "batch": id,
            "appId": app,
        }}),
        schema: None,
    };
    if let Committed::At(v) = table.commit(&mut snap, &c).await? {
        tracing::debug!(dataset, batch = id, version = v, "quarantine delta commit");
    }
    // As for the data table: a log checkpoint every `delta_checkpoint_interval` versions keeps opening it cheap.
    if let Err(e) = table
        .maybe_checkpoint(&mut snap, ctx.config.delta_checkpoint_interval)
        .await
    {
        tracing::warn!(dataset, error = %e, "could not write the quarantine table's log checkpoint; the log stays readable without it");
    }
    ctx.tables.keep(&table, snap).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_quarantine_parts_of_the_dataset_are_added() {
        let o = |path: &str, rows| OutputFile {
            path: path.into(),
            rows,
            bytes: 10,
        };
        let outputs = [
            o(
                "g/year=2015/month=01/day=01/part-b00000001-ab-0000.parquet",
                5,
            ),
            o("_quarantine/g/part-b00000001-ab-q.parquet", 2),
            o("_quarantine/g/part-b00000001-ab-q1.parquet", 3),
            o("_quarantine/g/files/b00000001-ab/g/x.json.gz", 0),
            o("_quarantine/gh/part-b00000001-ab-q.parquet", 1),
        ];
        let a = adds("g", &outputs, 7);
        let paths: Vec<&str> = a.iter().map(|a| a.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "part-b00000001-ab-q.parquet",
                "part-b00000001-ab-q1.parquet"
            ]
        );
        assert!(a[1]
            .stats
            .as_deref()
            .is_some_and(|s| s.contains("\"numRecords\":3")));
    }
}
