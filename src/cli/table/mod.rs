//! `lander table`: operate the bronze Delta tables (one per dataset, plus `_quarantine/<dataset>`): compaction,
//! checks and repair, vacuum, history, conversion.
//!
//! One file per subcommand; each resolves its flags and the configuration into the table layer's plain options
//! ([`crate::table::optimize::OptimizeOptions`], ...) and prints what happened. Exit codes: 0 ok, 1 a runtime
//! failure or a problem found (`check` finding missing files), 2 a usage error.

mod check;
mod convert;
mod history;
mod optimize;
mod vacuum;

use anyhow::Context as _;
use clap::Subcommand;

use super::{load_config, LocationArgs, UsageError};
use crate::config::Config;
use crate::store::StoreLocation;

/// `lander table` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum TableCommand {
    /// Compact small parts: per partition, rewrite parts smaller than --min-file-bytes into parts near
    /// --target-file-bytes (one commit per partition: remove + add, dataChange=false).
    Optimize(optimize::OptimizeArgs),
    /// List files the table references that storage lacks; with --repair, remove those references in one commit.
    Check(check::CheckArgs),
    /// Delete data files no version inside the retention needs: removed files and never-committed leftovers.
    Vacuum(vacuum::VacuumArgs),
    /// Each version of a table: time, operation, rows and files added/removed, batch, inputs, schema changes.
    History(history::HistoryArgs),
    /// Turn a plain-Parquet bronze (table_format = "parquet") into Delta tables, in place.
    Convert(convert::ConvertArgs),
}

/// Runs a `lander table` subcommand.
///
/// # Errors
/// Any failure, with context.
pub(crate) async fn run(cmd: TableCommand) -> anyhow::Result<()> {
    match cmd {
        TableCommand::Optimize(a) => optimize::run(a).await,
        TableCommand::Check(a) => check::run(a).await,
        TableCommand::Vacuum(a) => vacuum::run(a).await,
        TableCommand::History(a) => history::run(a).await,
        TableCommand::Convert(a) => convert::run(a).await,
    }
}

/// The configuration, bronze opened, and the datasets to operate on: `only` (which must be configured) or
/// every configured dataset.
async fn open(
    locations: &LocationArgs,
    only: Option<&str>,
) -> anyhow::Result<(Config, StoreLocation, Vec<String>)> {
    let config = load_config(locations)?;
    config
        .validate()
        .context("while validating the configuration")?;
    let bronze = StoreLocation::open_with(&config.bronze, &config.storage)
        .context("while opening bronze")?;
    let datasets = match only {
        Some(d) if !config.datasets.contains_key(d) => {
            return Err(UsageError(format!(
                "dataset {d:?} is not configured (configured: {})",
                config
                    .datasets
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .into())
        }
        Some(d) => vec![d.to_string()],
        None => config.datasets.keys().cloned().collect(),
    };
    Ok((config, bronze, datasets))
}

/// The datasets a table command works on: `--dataset`, or every configured one.
fn datasets(config: &crate::config::Config, one: Option<&str>) -> Vec<String> {
    match one {
        Some(d) => vec![d.to_string()],
        None => config.datasets.keys().cloned().collect(),
    }
}
