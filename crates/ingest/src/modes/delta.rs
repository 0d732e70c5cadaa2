//! The commit protocol of a Delta bronze (`table_format = "delta"`): the steps after staging, and the recovery of
//! a batch that an earlier run left in the table-commit window. Steps 1-2 are those of [`super::batch`].
//!
//! # Commit protocol (Delta)
//! 1. **Intent** `{id, state: Writing, token}` (as for Parquet). *Crash here:* nothing was written.
//! 2. **Stage.** Parts are uploaded straight to their final names
//!    `<dataset>/year=YYYY/month=MM/day=DD/part-b<id>-<token>-<seq>.parquet` (quarantine parts and copies of
//!    failed files to `_quarantine/<dataset>/...-b<id>-<token>...`). No Delta reader sees a file that no commit
//!    references. *Crash here:* unreferenced files exist; recovery lists the dataset and its quarantine and
//!    deletes every name carrying `b<id>-<token>` (the token is in the intent), so they never pile up.
//! 3. **Dedup runs** of the batch, named after its id (failpoint `runs`). *Crash here:* the runs name a batch
//!    the checkpoint does not hold; recovery deletes them (as for Parquet) with the files of step 2.
//! 4. **Committing.** The intent is rewritten with `state: Committing`, every output's final name, and the whole
//!    sled commit the batch will make; flushed (failpoint `publishing`). *Crash here:* the table does not have
//!    the batch; recovery deletes the listed outputs and the runs, and the files are read again.
//! 5. **Table commit = publish.** One put-if-absent commit file: `add` for every data part (`numRecords`, min/max
//!    of the event time), `txn {appId: lander-<dataset>-<checkpoint writer id>, version: id}` and `commitInfo`
//!    (lander's version, the worker, the landing location, each input's path, fingerprint, byte range and
//!    record counts, and the CSV schema the batch fixed: what `checkpoint rebuild --from-table` reads back).
//!    Before every attempt the batch's keys are checked against what other writers committed since this
//!    checkpoint last looked (`super::cross_check`); a lost version race re-reads the log, checks the new
//!    versions and retries at the next version (failpoint `published` after it). *Crash here:*
//!    the table has the batch, sled does not; recovery sees the `txn` version reach the intent's id and applies
//!    the sled commit stored in the intent, so the batch counts once and nothing is read again.
//! 6. **Quarantine commit.** The batch's quarantine parts become one commit of the quarantine table
//!    `_quarantine/<dataset>` with the same `txn` (`super::quarantine`; none when nothing was quarantined), then
//!    failpoint `quarantined`. *Crash between 5 and 6* (failpoint `published`): recovery sees the data table
//!    have the batch and the quarantine table not, and commits the quarantine parts listed in the intent with
//!    the same `txn` before the sled commit, so both tables agree and the quarantine rows count once.
//! 7. **Sled commit** (file records, batch record, intent removed) and the runs become visible, as for Parquet
//!    (failpoint `committed`). A log checkpoint follows every `delta_checkpoint_interval` versions; a failure
//!    there is only a warning (the log stays complete without it).
//!
//! A store error in step 5 may leave the commit written or not: the batch fails, and recovery (at the next start,
//! or by the daemon's rollback) asks the table which one it was. A batch with no data and no table yet (every
//! file failed before a schema existed) makes no table commit; a crash after step 4 then rolls it back, which is
//! safe because the table does not have it.

use chrono::{DateTime, Utc};

use super::commit::{finish, prepare, Prepared, Totals};
use super::context::{blocking, failpoint, write_intent, Context};
use super::cross_check::CrossCheck;
use super::quarantine;
use super::stage::StagedBatch;
use crate::checkpoint::{BatchCommit, BatchIntent, FileRecord, IntentState};
use crate::modes::RunError;
use crate::table::actions::add_of;
use crate::table::{app_id, Commit, Committed, DeltaTable, Snapshot};

/// Steps 3-7 of the Delta protocol for the staged batch `intent`. Returns the totals and the commit time.
///
/// # Errors
/// Table, checkpoint and dedup index failures: the batch then does not count for sled, and recovery asks the
/// table whether it committed.
pub(super) async fn commit_batch(
    ctx: &Context,
    intent: BatchIntent,
    staged: &mut StagedBatch,
) -> Result<(Totals, DateTime<Utc>), RunError> {
    let app = writer_app_id(ctx, &intent.dataset).await?;
    let mut check = CrossCheck::start(ctx, &intent.dataset, intent.id, app.clone(), staged).await?;
    let mut prepared = prepare(ctx, &intent, staged).await?;
    let intent = BatchIntent {
        state: IntentState::Committing,
        finals: staged.final_paths(),
        commit: Some(prepared.commit.clone()),
        ..intent
    };
    write_intent(ctx, &intent).await?;
    failpoint("publishing");
    let version = table_commit(ctx, &intent, staged, &mut prepared, &mut check).await?;
    failpoint("published");
    quarantine::commit(
        ctx,
        &intent.dataset,
        &app,
        intent.id,
        &prepared.commit.batch.outputs,
    )
    .await?;
    failpoint("quarantined");
    let out = (prepared.totals, prepared.committed_at);
    finish(ctx, prepared).await?;
    if let Some(v) = version {
        check.finish(ctx, v).await?;
    }
    Ok(out)
}

/// The `txn` app id of this checkpoint's commits to `dataset`.
async fn writer_app_id(ctx: &Context, dataset: &str) -> Result<String, RunError> {
    let cp = ctx.checkpoint.clone();
    let writer = blocking(move || cp.writer_id()).await?;
    Ok(app_id(dataset, &writer))
}

/// Step 5: the batch's one Delta commit (creating the table on its first batch), after the cross-writer check
/// (`super::cross_check`). Returns the version committed (`None`: no commit, or the table already had it).
async fn table_commit(
    ctx: &Context,
    intent: &BatchIntent,
    staged: &StagedBatch,
    prepared: &mut Prepared,
    check: &mut CrossCheck,
) -> Result<Option<u64>, RunError> {
    let commit = &prepared.commit.clone();
    let ds = intent.dataset.as_str();
    let table = DeltaTable::new(&ctx.bronze, ds);
    let schema = staged.staged.schema.clone();
    let Some(mut snap) = open_or_create(ctx, &table, ds, schema.as_deref()).await? else {
        return Ok(None);
    };
    // Columns the batch adds (CSV schema evolution) go into the commit's `metaData`; anything else that differs
    // fails the batch.
    let added = match &schema {
        Some(schema) => table.check_schema(&snap, schema)?,
        None => Vec::new(),
    };
    let now = Utc::now().timestamp_millis();
    let data_prefix = format!("{ds}/");
    let adds = staged
        .outputs
        .iter()
        .filter(|f| f.final_path.starts_with(&data_prefix))
        .map(|f| add_of(ds, f, now))
        .collect::<Result<Vec<_>, _>>()?;
    let app = writer_app_id(ctx, ds).await?;
    let info = commit_info(ctx, intent, commit, &app, &added);
    let batch_schema = match (&schema, added.is_empty()) {
        (Some(s), false) => Some(crate::table::actions::schema_string(s)?),
        _ => None,
    };
    let c = Commit {
        adds,
        txn: (app, intent.id as i64),
        info,
        schema: batch_schema,
    };
    let committed = check.commit(ctx, &table, &mut snap, &c, prepared).await?;
    let version = match committed {
        Committed::At(v) => {
            tracing::debug!(dataset = ds, batch = intent.id, version = v, "delta commit");
            Some(v)
        }
        Committed::Already => {
            tracing::warn!(
                dataset = ds,
                batch = intent.id,
                "the delta table already had this batch"
            );
            None
        }
    };
    log_checkpoint(ctx, &table, &mut snap, ds).await;
    ctx.tables.keep(&table, snap).await;
    Ok(version)
}

/// The table's snapshot, creating the table (and binding the checkpoint to it) on its first batch; `None` when
/// there is no table and the batch has no schema to create one with.
async fn open_or_create(
    ctx: &Context,
    table: &DeltaTable,
    ds: &str,
    schema: Option<&arrow::datatypes::Schema>,
) -> Result<Option<Snapshot>, RunError> {
    Ok(match (ctx.tables.take(table).await?, schema) {
        (Some(s), _) => Some(s),
        (None, Some(schema)) => {
            let snap = table.create(schema).await?;
            // The checkpoint belongs to this table from now on (`super::binding`); a crash before this line
            // leaves the dataset unbound, and the next start binds it to the table it finds.
            let (cp, ds, id) = (
                ctx.checkpoint.clone(),
                ds.to_string(),
                snap.metadata.id.clone(),
            );
            blocking(move || cp.bind_table(&ds, &id)).await?;
            Some(snap)
        }
        (None, None) => None,
    })
}

/// The `commitInfo` of the batch's commit: lander's version, the worker, the landing, each input's path,
/// fingerprint, byte range and record counts (with the file's lines consumed, records kept in part and continued
/// lines after it), the batch's counts, the CSV schema when the batch fixed or evolved it, and the columns the
/// batch adds (logged). `checkpoint rebuild --from-table` reads it back.
fn commit_info(
    ctx: &Context,
    intent: &BatchIntent,
    commit: &BatchCommit,
    app: &str,
    added: &[String],
) -> serde_json::Value {
    let ds = intent.dataset.as_str();
    let files: std::collections::HashMap<&str, &FileRecord> =
        commit.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let inputs: Vec<serde_json::Value> = commit
        .batch
        .inputs
        .iter()
        .map(|i| {
            let file = files.get(i.path.as_str());
            let mut v = serde_json::json!({
                "path": i.path,
                "fingerprint": file.map(|f| &f.fingerprint),
                "start": i.start,
                "end": i.end,
                "recordsOk": i.counts.rows,
                "recordsQuarantined": i.counts.quarantined,
                "recordsDuplicate": i.counts.duplicates,
            });
            // The file's state after this read, where it is not a sum of the reads' counts.
            if let Some(f) = file {
                v["fileLinesConsumed"] = f.lines_consumed.into();
                if f.records_truncated > 0 {
                    v["fileRecordsTruncated"] = f.records_truncated.into();
                }
                if !f.continued_lines.is_empty() {
                    v["fileContinuedLines"] = serde_json::json!(f.continued_lines);
                }
            }
            v
        })
        .collect();
    let mut info = serde_json::json!({
        "lander": {
            "version": env!("CARGO_PKG_VERSION"),
            "dataset": ds,
            "batch": intent.id,
            "appId": app,
            "worker": ctx.config.worker,
            "landing": ctx.landing.describe(""),
            "inputs": inputs,
            "rows": commit.batch.counts.rows,
            "duplicates": commit.batch.counts.duplicates,
            "quarantined": commit.batch.counts.quarantined,
        }
    });
    if let Some(schema) = &commit.schema {
        // The CSV schema this batch fixed or evolved, as the checkpoint stores it: the table's own schema cannot
        // give it back (header names are normalized into column names, and lineage columns are added).
        info["lander"]["csvSchema"] = serde_json::json!(schema);
    }
    if !added.is_empty() {
        // Which file brought them: the inputs of this batch whose header has them (the decoder knows; the
        // commit names the batch's inputs, the columns, and the schema they make).
        info["lander"]["addedColumns"] = serde_json::json!(added);
        tracing::info!(dataset = ds, batch = intent.id, columns = ?added, "the delta table's schema evolves in this commit");
    }
    info
}

/// Writes a log checkpoint when `delta_checkpoint_interval` says so; a failure is only a warning.
async fn log_checkpoint(ctx: &Context, table: &DeltaTable, snap: &mut Snapshot, ds: &str) {
    match table
        .maybe_checkpoint(snap, ctx.config.delta_checkpoint_interval)
        .await
    {
        Ok(true) => tracing::info!(
            dataset = ds,
            version = snap.version,
            "wrote a delta log checkpoint"
        ),
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(dataset = ds, error = %e, "could not write the delta log checkpoint; the log stays readable without it")
        }
    }
}

/// Recovery of an intent in state `Committing`: when the data table or the quarantine table has the batch
/// (its `txn` version reached the intent's id), commits it to the quarantine table if that one lacks it (a crash
/// between the two commits: the parts are listed in the intent), applies the sled commit stored in the intent
/// and returns `true`; otherwise `false` (the caller rolls the batch back).
///
/// # Errors
/// Table or checkpoint failures.
pub(super) async fn finish_committed(
    ctx: &Context,
    intent: &BatchIntent,
) -> Result<bool, RunError> {
    let Some(commit) = intent.commit.clone() else {
        return Ok(false);
    };
    let ds = intent.dataset.as_str();
    let app = writer_app_id(ctx, ds).await?;
    let table = DeltaTable::new(&ctx.bronze, ds);
    let snap = table.load().await?;
    let in_data = snap
        .as_ref()
        .is_some_and(|s| s.app_version(&app).is_some_and(|v| v >= intent.id as i64));
    // The quarantine commit follows the data commit; it alone has the batch only when the batch had no data
    // table to commit to (every record quarantined before a schema existed).
    let in_quarantine = quarantine::has(ctx, ds, &app, intent.id).await?;
    if !in_data && !in_quarantine {
        return Ok(false);
    }
    if !in_quarantine {
        quarantine::commit(ctx, ds, &app, intent.id, &commit.batch.outputs).await?;
        tracing::warn!(
            dataset = ds,
            batch = intent.id,
            "committed the quarantine of a batch whose data commit an interruption had separated from it"
        );
    }
    let cp = ctx.checkpoint.clone();
    blocking(move || cp.commit(&commit)).await?;
    tracing::warn!(
        dataset = %intent.dataset,
        batch = intent.id,
        "finished the checkpoint records of a batch that the delta table had committed before the interruption"
    );
    if let Some(snap) = snap {
        ctx.tables.keep(&table, snap).await;
    }
    Ok(true)
}
