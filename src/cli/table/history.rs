//! `lander table history`: [`crate::table::history`] of each dataset's table, newest version first.

use anyhow::Context as _;
use clap::Args;

use super::datasets;
use crate::cli::output::{emit, emit_json, fmt_time};
use crate::cli::{load_config, LocationArgs};
use crate::store::StoreLocation;
use crate::table::history::{history, VersionSummary};

/// `lander table history`.
#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// Locations and config (uses --bronze).
    #[command(flatten)]
    pub(crate) locations: LocationArgs,
    /// Only this dataset [default: every configured dataset with a table].
    #[arg(long, short = 'd')]
    pub(crate) dataset: Option<String>,
    /// At most this many versions per table (the newest).
    #[arg(long)]
    pub(crate) limit: Option<usize>,
    /// Print one JSON document: dataset -> versions, newest first.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(super) async fn run(a: HistoryArgs) -> anyhow::Result<()> {
    let config = load_config(&a.locations)?;
    let bronze = StoreLocation::open_with(&config.bronze, &config.storage)
        .context("while opening bronze")?;
    let mut all = std::collections::BTreeMap::new();
    for ds in datasets(&config, a.dataset.as_deref()) {
        let mut versions = history(&bronze, &ds)
            .await
            .with_context(|| format!("while reading the log of {}", bronze.describe(&ds)))?;
        if versions.is_empty() {
            continue;
        }
        versions.reverse();
        versions.truncate(a.limit.unwrap_or(usize::MAX));
        all.insert(ds, versions);
    }
    if a.json {
        return emit_json(&all);
    }
    let mut text = String::new();
    for (ds, versions) in &all {
        text.push_str(&format!("{ds} ({}):\n", bronze.describe(ds)));
        text.push_str(&render(versions));
    }
    if all.is_empty() {
        text.push_str("no delta table found\n");
    }
    emit(&text)
}

fn render(versions: &[VersionSummary]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING);
    t.set_header([
        "VERSION",
        "TIME (UTC)",
        "OPERATION",
        "ROWS+",
        "ROWS-",
        "FILES+",
        "FILES-",
        "BATCH",
        "INPUTS",
    ]);
    for v in versions {
        let time = v
            .timestamp
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(fmt_time)
            .unwrap_or_else(|| "-".into());
        let inputs = match v.inputs.as_slice() {
            [] => "-".to_string(),
            [one] => one.clone(),
            [first, rest @ ..] => format!("{first} +{} more", rest.len()),
        };
        let mut op = v.operation.clone();
        if let Some(c) = &v.schema_change {
            let mut what: Vec<String> = c.added.iter().map(|x| format!("+{x}")).collect();
            what.extend(c.dropped.iter().map(|x| format!("-{x}")));
            what.extend(c.changed.iter().cloned());
            op.push_str(&format!(" [{}]", what.join(", ")));
            if let Some(f) = &c.cause {
                op.push_str(&format!(" by {f}"));
            }
        }
        t.add_row([
            v.version.to_string(),
            time,
            op,
            v.rows_added.to_string(),
            v.rows_removed.to_string(),
            v.files_added.to_string(),
            v.files_removed.to_string(),
            v.batch.map_or_else(|| "-".into(), |b| b.to_string()),
            inputs,
        ]);
    }
    for i in [0, 3, 4, 5, 6, 7] {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    let mut s = t
        .lines()
        .map(|l| format!("  {}", l.trim_end()))
        .collect::<Vec<_>>()
        .join("\n");
    s.push('\n');
    s
}
