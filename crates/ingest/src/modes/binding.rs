//! Before a run: the checkpoint must belong to the given landing and bronze (and, for Delta, to the tables there).
//!
//! [`bind`] compares the checkpoint's binding (`crate::checkpoint::binding`) with the run's locations and the
//! `metaData.id` of each dataset's table and of its quarantine table. A checkpoint never bound (new, or written before bindings existed)
//! is bound now; a difference fails the run with [`BindingError`] (exit 2), before recovery or any listing
//! touches anything, unless the run rebinds on purpose (`--rebind`), which is logged. [`mismatches`] is the
//! read-only check of `checkpoint pending`, `checkpoint verify` and `explain`.

use crate::checkpoint::binding::{Binding, BindingError, Mismatch};
use crate::checkpoint::CheckpointStore;
use crate::modes::RunError;
use crate::store::StoreLocation;
use crate::table::{DeltaTable, TableFormat};

use super::context::{blocking, Context};

/// The string a location is bound by: its absolute local path, or its URL, without a trailing `/`.
pub fn location_key(loc: &StoreLocation) -> String {
    loc.describe("").trim_end_matches('/').to_string()
}

/// Per table of each dataset (its data table, keyed by the dataset, and its quarantine table, keyed by
/// `_quarantine/<dataset>`): the key, the table root and the id of the Delta table there (`None`: no table).
/// Empty for Parquet.
///
/// # Errors
/// [`crate::table::TableError`] reading a log.
async fn table_ids(
    bronze: &StoreLocation,
    datasets: &[String],
    format: TableFormat,
) -> Result<Vec<(String, String, Option<String>)>, RunError> {
    let mut out = Vec::new();
    if format != TableFormat::Delta {
        return Ok(out);
    }
    for ds in datasets {
        // The quarantine table is bound too: recreated, its log would lack the batches sled says it holds.
        for key in [ds.clone(), super::quarantine::root(ds)] {
            let snap = DeltaTable::new(bronze, &key).load().await?;
            out.push((
                key.clone(),
                bronze.describe(&key),
                snap.map(|s| s.metadata.id),
            ));
        }
    }
    Ok(out)
}

/// The differences between `store`'s binding and these locations, read-only.
///
/// # Errors
/// Checkpoint or table read failures.
pub async fn mismatches(
    landing: &StoreLocation,
    bronze: &StoreLocation,
    store: &CheckpointStore,
    datasets: &[String],
    format: TableFormat,
) -> Result<Vec<Mismatch>, RunError> {
    let cp = store.clone();
    let bound = blocking(move || cp.binding()).await?;
    let tables = table_ids(bronze, datasets, format).await?;
    Ok(bound.mismatches(&location_key(landing), &location_key(bronze), &tables))
}

/// Checks the run's locations against the checkpoint's binding and records what is not bound yet; with
/// `rebind`, binds the checkpoint to these locations whatever it was bound to.
///
/// # Errors
/// [`BindingError`] for a difference without `rebind`; checkpoint or table failures.
pub async fn bind(ctx: &Context, datasets: &[String], rebind: bool) -> Result<(), RunError> {
    let cp = ctx.checkpoint.clone();
    let bound = blocking(move || cp.binding()).await?;
    let (landing, bronze) = (location_key(&ctx.landing), location_key(&ctx.bronze));
    let tables = table_ids(&ctx.bronze, datasets, ctx.config.table_format).await?;
    let found = bound.mismatches(&landing, &bronze, &tables);
    if !found.is_empty() && !rebind {
        return Err(BindingError {
            dir: ctx.checkpoint.dir().display().to_string(),
            mismatches: found,
        }
        .into());
    }
    for m in &found {
        tracing::warn!(checkpoint = %ctx.checkpoint.dir().display(), "--rebind: {m}; binding it to the given location now");
    }
    let mut next = Binding {
        landing: Some(landing),
        bronze: Some(bronze),
        tables: bound.tables.clone(),
        worker: bound.worker.clone(),
    };
    // Another bronze: the ids of the old one mean nothing there.
    if bound.bronze != next.bronze {
        next.tables.clear();
    }
    for (ds, _, id) in tables {
        match id {
            Some(id) => {
                next.tables.insert(ds, id);
            }
            None if rebind => {
                next.tables.remove(&ds);
            }
            None => {}
        }
    }
    if next != bound {
        if bound.landing.is_none() {
            tracing::info!(checkpoint = %ctx.checkpoint.dir().display(), landing = ?next.landing, bronze = ?next.bronze, "binding the checkpoint to its landing and bronze");
        }
        let cp = ctx.checkpoint.clone();
        blocking(move || cp.set_binding(&next)).await?;
    }
    Ok(())
}
