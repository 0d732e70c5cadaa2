//! `lander checkpoint`: inspect, verify and repair the checkpoint (work in progress).

use clap::Subcommand;

/// Checkpoint subcommands.
#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    /// List processed files.
    List,
}

/// Runs a checkpoint subcommand.
///
/// # Errors
/// Any failure.
pub async fn run(_cmd: CheckpointCommand) -> anyhow::Result<()> {
    Ok(())
}
