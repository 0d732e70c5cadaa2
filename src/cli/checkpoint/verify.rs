//! `checkpoint verify`: runs [`crate::modes::verify`] over the checkpoint and bronze, prints its report, and exits
//! 1 when it found problems.

use anyhow::{bail, Context as _};

use super::VerifyArgs;
use crate::cli::load_config;
use crate::cli::output::{blocking, emit, emit_json, open_read};
use crate::modes::verify::{verify as check, Problem, ProblemKind, Report, VerifyOptions};
use crate::modes::verify_keys::KeyScan;
use crate::store::StoreLocation;

pub(super) async fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    let config = load_config(&a.common.locations)?;
    let bronze = StoreLocation::open_with(&config.bronze, &config.storage)
        .context("while opening bronze")?;
    let store = open_read(&config).await?;
    let options = VerifyOptions {
        dataset: a.common.dataset.clone(),
        read_rows: !a.skip_row_counts,
    };
    let mut report = check(store.clone(), &bronze, &options)
        .await
        .context("while verifying the checkpoint against bronze")?;
    binding_problems(&store, &bronze, &mut report).await?;
    let dups = if a.keys {
        Some(duplicate_keys(&config, &bronze, a.common.dataset.as_deref()).await?)
    } else {
        None
    };
    match (&dups, a.common.json) {
        (None, true) => emit_json(&report)?,
        (Some(d), true) => emit_json(&serde_json::json!({
            "verify": report,
            "duplicate_keys": d.duplicates,
            "unscanned_parts": d.unscanned,
        }))?,
        (_, false) => emit(&render(&report))?,
    }
    if let Some(d) = &dups {
        if !a.common.json {
            emit(&render_keys(d))?;
        }
    }
    if let Some(d) = dups.as_ref().filter(|d| !d.duplicates.is_empty()) {
        bail!(
            "verify --keys found {} key(s) held more than once on one day in {}",
            d.duplicates.len(),
            bronze.describe("")
        );
    }
    if !report.consistent {
        bail!(
            "verify found {} problem(s) between the checkpoint and {}",
            report.problems.len(),
            bronze.describe("")
        );
    }
    Ok(())
}

/// Adds a problem for each way the checkpoint is bound to another bronze or another table than the one checked
/// (landing is not looked at here): the comparison above then mixes two locations.
async fn binding_problems(
    store: &crate::checkpoint::CheckpointStore,
    bronze: &StoreLocation,
    report: &mut Report,
) -> anyhow::Result<()> {
    let cp = store.clone();
    let bound = blocking(move || cp.binding())
        .await
        .context("while reading the checkpoint's binding")?;
    let landing = bound.landing.clone().unwrap_or_default();
    let landing = StoreLocation {
        display: landing.clone(),
        local_root: None,
        ..bronze.clone()
    };
    // Parquet datasets have no table: looking for one finds none, and none is bound to them.
    let found = crate::modes::binding::mismatches(
        &landing,
        bronze,
        store,
        &report.datasets,
        crate::table::TableFormat::Delta,
    )
    .await
    .context("while comparing the checkpoint's binding with bronze")?;
    for m in found {
        let dataset = match &m {
            crate::checkpoint::binding::Mismatch::Table { dataset, .. } => dataset
                .strip_prefix("_quarantine/")
                .unwrap_or(dataset)
                .to_string(),
            _ => String::new(),
        };
        report.problems.push(Problem {
            kind: ProblemKind::OtherLocation,
            dataset,
            path: String::new(),
            batch: None,
            message: format!("checkpoint does not belong to this bronze: {m} (lander run --rebind binds it here on purpose)"),
        });
        report.consistent = false;
    }
    Ok(())
}

/// Duplicate keys of every configured dataset: GH Archive's `event_key`, CSV's `_record_key` (parts written
/// before that column existed are reported as not scanned).
async fn duplicate_keys(
    config: &crate::config::Config,
    bronze: &StoreLocation,
    only: Option<&str>,
) -> anyhow::Result<KeyScan> {
    let mut out = KeyScan::default();
    for (name, ds) in &config.datasets {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let column = match ds {
            crate::config::DatasetConfig::Gharchive { .. } => "event_key",
            crate::config::DatasetConfig::Csv { .. } => crate::decode::RECORD_KEY,
        };
        let scan =
            crate::modes::verify_keys::duplicate_keys(bronze, config.table_format, name, column)
                .await
                .with_context(|| format!("while scanning the keys of {name} in bronze"))?;
        out.duplicates.extend(scan.duplicates);
        out.unscanned.extend(scan.unscanned);
    }
    Ok(out)
}

fn render_keys(scan: &KeyScan) -> String {
    let mut text = String::new();
    if !scan.unscanned.is_empty() {
        text.push_str(&format!(
            "note: {} part(s) have no key column (CSV written before _record_key), their keys were NOT checked: {}\n",
            scan.unscanned.len(),
            scan.unscanned.join(", ")
        ));
    }
    let d = &scan.duplicates;
    for k in d {
        let places: Vec<String> = k
            .occurrences
            .iter()
            .map(|(f, r)| format!("{f} row {r}"))
            .collect();
        text.push_str(&format!(
            "problem: key {} held {} times in {}/{}: {}\n",
            k.key,
            k.occurrences.len(),
            k.dataset,
            k.partition,
            places.join(", ")
        ));
    }
    if d.is_empty() && scan.unscanned.is_empty() {
        text.push_str("ok: no key held more than once on one day\n");
    } else if d.is_empty() {
        text.push_str(
            "ok: no key held more than once on one day in the parts that have a key column\n",
        );
    }
    text
}

fn render(r: &Report) -> String {
    let mut text = String::new();
    for n in &r.notes {
        text.push_str(&format!("note: {n}\n"));
    }
    for p in &r.problems {
        text.push_str(&format!("problem: {}\n", p.message));
    }
    if r.consistent {
        text.push_str(&format!(
            "ok: {} committed output(s) present with their recorded sizes{}, {} file(s) in bronze all known, no landing file ingested twice ({})\n",
            r.outputs_checked,
            if r.row_counts_checked { " and row counts" } else { "" },
            r.bronze_files_listed,
            if r.datasets.is_empty() { "no datasets".to_string() } else { r.datasets.join(", ") },
        ));
    }
    text
}
