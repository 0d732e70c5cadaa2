//! `lander table check [--repair]`: files a table references that storage lacks, and their removal
//! ([`crate::table::check`]). After a repair, the dedup index of the checkpoint forgets the affected days, so
//! that re-ingesting their landing files (`checkpoint reset --file`, then `run`) restores exactly the rows that
//! were lost: dedup then sees the table as it now is.

use std::fmt::Write as _;

use anyhow::Context as _;
use clap::Args;

use crate::checkpoint::CheckpointStore;
use crate::cli::output::{emit, open_write};
use crate::cli::LocationArgs;
use crate::store::StoreLocation;
use crate::table::check::{lost_inputs, missing_files, repair, MissingFile};
use crate::table::{DeltaTable, Rewritten, Snapshot};

/// Repairs retried when another writer removes a missing file first.
const REPAIR_ATTEMPTS: usize = 3;

/// `lander table check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Locations and config (--bronze, the config's datasets, and --checkpoint for --repair).
    #[command(flatten)]
    pub(crate) locations: LocationArgs,
    /// Only this dataset [default: every configured dataset].
    #[arg(long, short = 'd')]
    pub(crate) dataset: Option<String>,
    /// Remove the references to missing files in one commit (their rows leave the table), and make the
    /// checkpoint's dedup index forget the affected days.
    #[arg(long)]
    pub(crate) repair: bool,
}

/// The UTC day number (days since 1970-01-01) of a `year=/month=/day=` path.
fn day_of_path(path: &str) -> Option<i32> {
    let mut ymd = [None; 3];
    for seg in path.split('/') {
        if let Some((k, v)) = seg.split_once('=') {
            let i = ["year", "month", "day"].iter().position(|c| *c == k)?;
            ymd[i] = v.parse::<u32>().ok();
        }
    }
    let d = chrono::NaiveDate::from_ymd_opt(ymd[0]? as i32, ymd[1]?, ymd[2]?)?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((d - epoch).num_days()).ok()
}

pub(super) async fn run(a: CheckArgs) -> anyhow::Result<()> {
    let (config, bronze, datasets) = super::open(&a.locations, a.dataset.as_deref()).await?;
    // The repair changes what dedup must believe: hold the checkpoint (no daemon may run meanwhile) before
    // committing anything.
    let checkpoint = if a.repair && CheckpointStore::exists(&config.checkpoint) {
        Some(open_write(&config, "repair a table").await?)
    } else {
        None
    };
    let mut out = String::new();
    let mut unrepaired = 0usize;
    for ds in &datasets {
        let table = DeltaTable::new(&bronze, ds);
        let Some(mut snap) = table
            .load()
            .await
            .with_context(|| format!("while reading {}", bronze.describe(ds)))?
        else {
            continue;
        };
        let missing = report_missing(&table, &snap, &bronze, ds, &mut out).await?;
        if missing.is_empty() {
            continue;
        }
        if !a.repair {
            unrepaired += missing.len();
            continue;
        }
        let fix = DatasetRepair {
            table: &table,
            bronze: &bronze,
            ds,
        };
        let Some(missing) = fix.commit(&mut snap, missing, &mut out).await? else {
            continue;
        };
        if let Some(cp) = &checkpoint {
            fix.forget_days(cp, &missing, &mut out).await?;
        }
        fix.advise_reingest(&missing, &mut out).await?;
    }
    emit(&out)?;
    if unrepaired > 0 {
        anyhow::bail!("{unrepaired} referenced file(s) missing from storage (repair: lander table check --repair)");
    }
    Ok(())
}

/// The files of `snap` that storage lacks, each written to `out` (or that all are present).
async fn report_missing(
    table: &DeltaTable,
    snap: &Snapshot,
    bronze: &StoreLocation,
    ds: &str,
    out: &mut String,
) -> anyhow::Result<Vec<MissingFile>> {
    let missing = missing_files(table, snap)
        .await
        .with_context(|| format!("while checking {}", bronze.describe(ds)))?;
    if missing.is_empty() {
        let _ = writeln!(
            out,
            "{ds}: {} file(s) referenced at version {}, all present",
            snap.files.len(),
            snap.version
        );
        return Ok(missing);
    }
    let _ = writeln!(
        out,
        "{ds}: {} of {} file(s) referenced at version {} are missing from storage:",
        missing.len(),
        snap.files.len(),
        snap.version
    );
    for m in &missing {
        let _ = writeln!(out, "  {}", describe(m));
    }
    Ok(missing)
}

/// The repair of one dataset's table (`--repair`).
struct DatasetRepair<'a> {
    table: &'a DeltaTable,
    bronze: &'a StoreLocation,
    ds: &'a str,
}

impl DatasetRepair<'_> {
    /// Removes the references to `missing` in one commit, retried while other writers remove some of them
    /// first. Returns the references removed, or `None` when other writers removed them all.
    async fn commit(
        &self,
        snap: &mut Snapshot,
        mut missing: Vec<MissingFile>,
        out: &mut String,
    ) -> anyhow::Result<Option<Vec<MissingFile>>> {
        let (table, bronze, ds) = (self.table, self.bronze, self.ds);
        let mut committed = None;
        for _ in 0..REPAIR_ATTEMPTS {
            match repair(table, snap, &missing)
                .await
                .with_context(|| format!("while repairing {}", bronze.describe(ds)))?
            {
                Rewritten::At(v) => {
                    committed = Some(v);
                    break;
                }
                // Another writer removed some of them first: check again on the table as it is now.
                Rewritten::InputsGone(_) => {
                    missing = missing_files(table, snap).await?;
                    if missing.is_empty() {
                        break;
                    }
                }
            }
        }
        let rows: u64 = missing.iter().filter_map(|m| m.rows).sum();
        match committed {
            Some(v) => {
                let _ = writeln!(
                    out,
                    "{ds}: repaired: removed {} reference(s) ({rows} rows) in version {v}",
                    missing.len()
                );
                Ok(Some(missing))
            }
            None if missing.is_empty() => {
                let _ = writeln!(
                    out,
                    "{ds}: another writer removed those references meanwhile; nothing to repair"
                );
                Ok(None)
            }
            None => anyhow::bail!(
                "could not repair {}: other writers kept removing files",
                bronze.describe(ds)
            ),
        }
    }

    /// Makes the checkpoint's dedup index forget the days of the removed files.
    async fn forget_days(
        &self,
        cp: &CheckpointStore,
        missing: &[MissingFile],
        out: &mut String,
    ) -> anyhow::Result<()> {
        let ds = self.ds;
        let mut days: Vec<i32> = missing
            .iter()
            .filter_map(|m| day_of_path(&m.path))
            .collect();
        days.sort_unstable();
        days.dedup();
        let dir = cp.dir().join("dedup").join(ds);
        let forgotten =
            tokio::task::spawn_blocking(move || crate::dedup::index::forget_days(&dir, &days))
                .await
                .expect("forgetting dedup days does not panic")
                .context("while making the dedup index forget the repaired days")?;
        if forgotten > 0 {
            let _ = writeln!(out, "{ds}: the dedup index forgot the repaired day(s) ({forgotten} run file(s)); the next run reads their keys from the table");
        }
        Ok(())
    }

    /// Says how to restore the removed rows: the `checkpoint reset` of the landing files they came from.
    async fn advise_reingest(
        &self,
        missing: &[MissingFile],
        out: &mut String,
    ) -> anyhow::Result<()> {
        let ds = self.ds;
        let paths: Vec<String> = missing.iter().map(|m| m.path.clone()).collect();
        let inputs = lost_inputs(self.table, &paths)
            .await
            .with_context(|| format!("while reading the log of {}", self.bronze.describe(ds)))?;
        if inputs.is_empty() {
            let _ = writeln!(out, "{ds}: no commit names the landing inputs of those rows; re-ingest the landing files of those days to restore them");
        } else {
            let _ = writeln!(
                out,
                "{ds}: to restore the rows, re-ingest the landing files they came from, then run:"
            );
            let mut seen = std::collections::BTreeSet::new();
            for i in inputs.iter().filter(|i| seen.insert(i.path.clone())) {
                let _ = writeln!(out, "  lander checkpoint reset --yes --file {}", i.path);
            }
        }
        Ok(())
    }
}

fn describe(m: &MissingFile) -> String {
    match m.rows {
        Some(r) => format!("{} ({} bytes, {r} rows)", m.path, m.size),
        None => format!("{} ({} bytes)", m.path, m.size),
    }
}
