//! `lander table`: operate the Delta tables of bronze (one per dataset, plus `_quarantine/<dataset>`).
//!
//! One module per subcommand; each resolves its flags and the config into the plain options of the library
//! (`crate::table::*`) and prints. Output goes through `cli::checkpoint::emit` (a broken pipe exits 0).

mod convert;
mod history;
mod vacuum;

use clap::Subcommand;

/// Table subcommands.
#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Delete data files no version inside the retention needs: removed files and never-committed leftovers.
    Vacuum(vacuum::VacuumArgs),
    /// Each version of a table: time, operation, rows and files added/removed, batch, inputs, schema changes.
    History(history::HistoryArgs),
    /// Turn a plain-Parquet bronze (table_format = "parquet") into Delta tables, in place.
    Convert(convert::ConvertArgs),
}

/// Runs a table subcommand.
///
/// # Errors
/// Config, store and table failures; a refused retention (exit 2).
pub async fn run(cmd: TableCommand) -> anyhow::Result<()> {
    match cmd {
        TableCommand::Vacuum(a) => vacuum::run(a).await,
        TableCommand::History(a) => history::run(a).await,
        TableCommand::Convert(a) => convert::run(a).await,
    }
}

/// The datasets a table command works on: `--dataset`, or every configured one.
fn datasets(config: &crate::config::Config, one: Option<&str>) -> Vec<String> {
    match one {
        Some(d) => vec![d.to_string()],
        None => config.datasets.keys().cloned().collect(),
    }
}
