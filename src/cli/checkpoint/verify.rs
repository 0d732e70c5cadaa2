//! `checkpoint verify`: runs [`crate::modes::verify`] over the checkpoint and bronze, prints its report, and exits
//! 1 when it found problems.

use anyhow::{bail, Context as _};

use super::{emit, emit_json, open_read, VerifyArgs};
use crate::cli::load_config;
use crate::modes::verify::{verify as check, Report, VerifyOptions};
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
    let report = check(store, &bronze, &options)
        .await
        .context("while verifying the checkpoint against bronze")?;
    if a.common.json {
        emit_json(&report)?;
    } else {
        emit(&render(&report))?;
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
