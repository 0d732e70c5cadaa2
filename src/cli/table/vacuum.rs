//! `lander table vacuum`: [`crate::table::vacuum`] over each dataset's table and its quarantine table.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::datasets;
use crate::cli::output::{emit, emit_json, fmt_duration, human_bytes};
use crate::cli::{load_config, LocationArgs, UsageError};
use crate::config::parse_duration;
use crate::store::StoreLocation;
use crate::table::vacuum::{vacuum, Reason, VacuumError, VacuumOptions, VacuumReport};

/// `lander table vacuum`.
#[derive(Debug, Args)]
#[command(mut_arg("retain", crate::cli::defaults::retain_default))]
pub(crate) struct VacuumArgs {
    /// Locations and config (uses --bronze).
    #[command(flatten)]
    pub(crate) locations: LocationArgs,
    /// Only this dataset (its table and its quarantine table) [default: every configured dataset].
    #[arg(long, short = 'd')]
    pub(crate) dataset: Option<String>,
    /// Keep every file that a version committed within this long needs, e.g. 7d, 36h.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) retain: Option<Duration>,
    /// Accept a retention under 1h: parts that running writers are uploading would be deleted, so use it only
    /// when no lander (or other writer) runs against these tables.
    #[arg(long)]
    pub(crate) force: bool,
    /// List what would be deleted, delete nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Print one JSON document (a list of per-table reports).
    #[arg(long)]
    pub(crate) json: bool,
}

pub(super) async fn run(a: VacuumArgs) -> anyhow::Result<()> {
    let config = load_config(&a.locations)?;
    let bronze = StoreLocation::open_with(&config.bronze, &config.storage)
        .context("while opening bronze")?;
    let opts = VacuumOptions {
        retain: a.retain.unwrap_or(crate::table::vacuum::DEFAULT_RETENTION),
        force: a.force,
        dry_run: a.dry_run,
        ..Default::default()
    };
    let mut reports = Vec::new();
    for ds in datasets(&config, a.dataset.as_deref()) {
        for root in [ds.clone(), format!("_quarantine/{ds}")] {
            match vacuum(&bronze, &root, &opts).await {
                Ok(Some(r)) => reports.push(r),
                Ok(None) => {}
                Err(e @ VacuumError::RetentionTooShort { .. }) => {
                    return Err(UsageError(e.to_string()).into())
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("while vacuuming the table {}", bronze.describe(&root))
                    })
                }
            }
        }
    }
    if a.json {
        return emit_json(&reports);
    }
    let mut text = String::new();
    for r in &reports {
        text.push_str(&render(r, opts.retain));
    }
    if reports.is_empty() {
        text.push_str("no delta table found\n");
    }
    emit(&text)
}

fn render(r: &VacuumReport, retain: Duration) -> String {
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    let mut out = String::new();
    for v in &r.deleted {
        let why = match v.reason {
            Reason::Removed => "removed",
            Reason::Unreferenced => "unreferenced",
        };
        out.push_str(&format!(
            "{verb}  {}  ({why}, {})\n",
            v.path,
            human_bytes(v.bytes)
        ));
    }
    let bytes: u64 = r.deleted.iter().map(|v| v.bytes).sum();
    out.push_str(&format!(
        "{}: {verb} {} file(s), {}; kept {} referenced by versions of the last {}, {} unreferenced but younger\n",
        r.root,
        r.deleted.len(),
        human_bytes(bytes),
        r.kept_referenced,
        fmt_duration(retain),
        r.kept_young
    ));
    out
}
