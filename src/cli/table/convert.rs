//! `lander table convert`: [`crate::table::convert`] of each dataset's plain-Parquet bronze and quarantine.
//!
//! When the checkpoint that wrote them exists, version 0 also carries its `txn` (its writer's app id and the
//! dataset's last batch id), so the checkpoint keeps working with the table: a following run (with
//! `table_format = "delta"`) continues at the next batch id and appends, and recovery and `checkpoint verify`
//! find the batches already committed in the table. The checkpoint is opened for writing (refused while a daemon
//! holds it) and bound to the new tables.

use anyhow::Context as _;
use clap::Args;

use super::datasets;
use crate::checkpoint::{CheckpointStore, FileRecord};
use crate::cli::output::{emit, emit_json, human_bytes};
use crate::cli::{load_config, LocationArgs, UsageError};
use crate::store::StoreLocation;
use crate::table::app_id;
use crate::table::convert::{convert, ConvertError, ConvertOptions, ConvertReport};

/// `lander table convert`.
#[derive(Debug, Args)]
pub(crate) struct ConvertArgs {
    /// Locations and config (uses --bronze, and --checkpoint when it exists).
    #[command(flatten)]
    pub(crate) locations: LocationArgs,
    /// Only this dataset [default: every configured dataset with Parquet parts].
    #[arg(long, short = 'd')]
    pub(crate) dataset: Option<String>,
    /// Print one JSON document (a list of per-table reports).
    #[arg(long)]
    pub(crate) json: bool,
}

pub(super) async fn run(a: ConvertArgs) -> anyhow::Result<()> {
    let config = load_config(&a.locations)?;
    let bronze = StoreLocation::open_with(&config.bronze, &config.storage)
        .context("while opening bronze")?;
    let landing = StoreLocation::open_with(&config.landing, &config.storage)
        .context("while opening landing")?;
    let cp = if CheckpointStore::exists(&config.checkpoint) {
        Some(crate::cli::output::open_write(&config, "convert its bronze").await?)
    } else {
        None
    };
    let mut reports: Vec<ConvertReport> = Vec::new();
    for ds in datasets(&config, a.dataset.as_deref()) {
        let (txn, inputs, schema) = match &cp {
            Some(cp) => checkpoint_txn(cp, &ds).await?,
            None => (None, Vec::new(), None),
        };
        // Like a batch's commit: the landing and what was read from it (the checkpoint's file records), so that
        // `checkpoint rebuild --from-table` can recreate these records (and a CSV dataset's stored schema) too.
        let mut info = serde_json::json!({"lander": {
            "version": env!("CARGO_PKG_VERSION"),
            "operation": "convert",
            "dataset": ds,
            "batch": txn.as_ref().map(|t| t.1),
            "appId": txn.as_ref().map(|t| t.0.clone()),
            "landing": landing.describe(""),
            "inputs": inputs,
        }});
        if let Some(schema) = schema {
            info["lander"]["csvSchema"] = serde_json::json!(schema);
        }
        for (root, partitioned) in [(ds.clone(), true), (format!("_quarantine/{ds}"), false)] {
            let opts = ConvertOptions {
                partitioned,
                time_stats: partitioned,
                txn: txn.clone(),
                info: info.clone(),
            };
            match convert(&bronze, &root, &opts).await {
                Ok(r) => {
                    if let (Some(cp), true) = (&cp, partitioned) {
                        let (store, d, id) = (cp.clone(), ds.clone(), r.table_id.clone());
                        crate::cli::output::blocking(move || store.bind_table(&d, &id))
                            .await
                            .context("while binding the checkpoint to the new table")?;
                    }
                    reports.push(r);
                }
                // Converting every dataset: one with nothing to convert is not an error.
                Err(ConvertError::NoParts { .. }) if a.dataset.is_none() || !partitioned => {}
                Err(e @ ConvertError::AlreadyDelta { .. }) if partitioned => {
                    return Err(UsageError(e.to_string()).into())
                }
                Err(ConvertError::AlreadyDelta { .. }) => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("while converting {}", bronze.describe(&root)))
                }
            }
        }
    }
    if a.json {
        return emit_json(&reports);
    }
    emit(&render(&reports))
}

/// What [`checkpoint_txn`] reads: the `txn` (app id, batch id), the `commitInfo` inputs, the stored CSV schema.
type CheckpointTxn = (
    Option<(String, i64)>,
    Vec<serde_json::Value>,
    Option<crate::checkpoint::StoredSchema>,
);

/// The `txn` version 0 of dataset `ds`'s table carries (the checkpoint writer's app id and the dataset's last
/// batch id; none before a first batch), the `commitInfo` inputs of the files the checkpoint processed, and the
/// dataset's stored CSV schema.
async fn checkpoint_txn(cp: &CheckpointStore, ds: &str) -> anyhow::Result<CheckpointTxn> {
    let (store, d) = (cp.clone(), ds.to_string());
    let (writer, last, files, schema) = crate::cli::output::blocking(move || {
        Ok::<_, crate::checkpoint::CheckpointError>((
            store.writer_id()?,
            store.last_batch_id(&d)?,
            store.files(Some(&d))?,
            store.schema(&d)?,
        ))
    })
    .await
    .context("while reading the checkpoint")?;
    let txn = (last > 0).then(|| (app_id(ds, &writer), last as i64));
    Ok((txn, inputs_of(&files), schema))
}

/// The text report: one line per converted table, then what to do next.
fn render(reports: &[ConvertReport]) -> String {
    let mut text = String::new();
    for r in reports {
        text.push_str(&format!(
            "{}: converted to a delta table (id {}): {} part(s), {} rows, {}",
            r.root,
            r.table_id,
            r.files,
            r.rows,
            human_bytes(r.bytes)
        ));
        if !r.skipped.is_empty() {
            text.push_str(&format!(
                "; left out {} object(s) that are not published parts",
                r.skipped.len()
            ));
        }
        text.push('\n');
    }
    if reports.is_empty() {
        text.push_str("nothing to convert\n");
    } else {
        text.push_str("from now on run with table_format = \"delta\" (or --table-format delta)\n");
    }
    text
}

/// The `commitInfo.lander.inputs` of the files a checkpoint processed (whole files, as one range each).
fn inputs_of(files: &[FileRecord]) -> Vec<serde_json::Value> {
    files
        .iter()
        .map(|f| {
            serde_json::json!({
                "path": f.path,
                "fingerprint": f.fingerprint,
                "start": 0,
                "end": f.bytes_consumed,
                "recordsOk": f.counts.rows,
                "recordsQuarantined": f.counts.quarantined,
                "recordsDuplicate": f.counts.duplicates,
            })
        })
        .collect()
}
