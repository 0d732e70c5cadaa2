//! `lander table optimize`: compacts small parts of each dataset's table ([`crate::table::optimize`]).

use std::fmt::Write as _;

use anyhow::Context as _;
use clap::Args;

use crate::cli::output::{emit, human_bytes};
use crate::cli::{LocationArgs, UsageError};
use crate::table::optimize::{optimize, OptimizeOptions, PartitionFilter, PartitionOutcome};
use crate::table::DeltaTable;

/// `lander table optimize`.
#[derive(Debug, Args)]
pub(crate) struct OptimizeArgs {
    /// Locations and config (only --bronze and the config's datasets are used).
    #[command(flatten)]
    pub(crate) locations: LocationArgs,
    /// Only this dataset [default: every configured dataset].
    #[arg(long, short = 'd')]
    pub(crate) dataset: Option<String>,
    /// Only partitions matching these equalities, e.g. 'year=2015 and month=1'.
    #[arg(long = "where")]
    pub(crate) filter: Option<String>,
    /// Size the output parts aim at, e.g. 128MiB [default: the dataset's target_file_bytes in the config, else
    /// the top-level one].
    #[arg(long, value_parser = crate::config::parse_byte_size)]
    pub(crate) target_file_bytes: Option<u64>,
    /// Parts smaller than this are compacted [default: --target-file-bytes].
    #[arg(long, value_parser = crate::config::parse_byte_size)]
    pub(crate) min_file_bytes: Option<u64>,
}

pub(super) async fn run(a: OptimizeArgs) -> anyhow::Result<()> {
    let filter = match &a.filter {
        Some(w) => PartitionFilter::parse(w).map_err(|e| UsageError(format!("--where: {e}")))?,
        None => PartitionFilter::default(),
    };
    let (config, bronze, datasets) = super::open(&a.locations, a.dataset.as_deref()).await?;
    let mut out = String::new();
    let (mut done, mut abandoned, mut failed) = (0usize, 0usize, 0usize);
    let (mut files_in, mut files_out, mut bytes_in, mut bytes_out, mut rows) = (0, 0, 0, 0, 0);
    for ds in &datasets {
        let target = a
            .target_file_bytes
            .unwrap_or(config.table_settings(ds).target_file_bytes);
        let opts = OptimizeOptions {
            target_file_bytes: target,
            min_file_bytes: a.min_file_bytes.unwrap_or(target),
            row_group_rows: config.row_group_rows,
            filter: filter.clone(),
            trigger: Default::default(),
        };
        let table = DeltaTable::new(&bronze, ds);
        let reports = optimize(&table, &opts)
            .await
            .with_context(|| format!("while compacting {}", bronze.describe(ds)))?;
        for r in reports {
            let head = format!("{ds} {}", r.partition);
            match &r.outcome {
                PartitionOutcome::Committed(v) => {
                    done += 1;
                    files_in += r.files_in;
                    files_out += r.files_out;
                    bytes_in += r.bytes_in;
                    bytes_out += r.bytes_out;
                    rows += r.rows;
                    let _ = writeln!(
                        out,
                        "{head}: {} parts ({}) -> {} ({}), {} rows, version {v}",
                        r.files_in,
                        human_bytes(r.bytes_in),
                        r.files_out,
                        human_bytes(r.bytes_out),
                        r.rows
                    );
                }
                PartitionOutcome::Abandoned(gone) => {
                    abandoned += 1;
                    let _ = writeln!(
                        out,
                        "{head}: abandoned, another writer removed {} of its inputs meanwhile (e.g. {}); nothing committed, run optimize again",
                        gone.len(),
                        gone.first().map(String::as_str).unwrap_or_default()
                    );
                }
                PartitionOutcome::Failed(reason) => {
                    failed += 1;
                    let _ = writeln!(out, "{head}: failed, nothing committed: {reason}");
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "optimize: {done} partition(s) compacted, {abandoned} abandoned, {failed} failed; parts {files_in} -> {files_out}, {} -> {}, {rows} rows rewritten",
        human_bytes(bytes_in),
        human_bytes(bytes_out)
    );
    emit(&out)?;
    if failed > 0 {
        anyhow::bail!("{failed} partition(s) could not be compacted (see above)");
    }
    Ok(())
}
