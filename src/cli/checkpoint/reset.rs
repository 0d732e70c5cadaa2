//! `checkpoint reset`: forget file records so that the next run ingests those files again.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;

use anyhow::{bail, Context as _};

use super::show::{file_table, resolve_file};
use super::{file_json, ResetArgs, ResetJson};
use crate::checkpoint::{CheckpointError, CheckpointStore, FileRecord};
use crate::cli::load_config;
use crate::cli::output::{blocking, emit, emit_json, fmt_duration, open_read, open_write};

pub(super) async fn reset(a: ResetArgs) -> anyhow::Result<()> {
    let config = load_config(&a.locations)?;
    if !CheckpointStore::exists(&config.checkpoint) {
        bail!(
            "no checkpoint in {} (nothing to reset)",
            config.checkpoint.display()
        );
    }
    if !a.dry_run && !a.yes && !std::io::stdin().is_terminal() {
        clap::Error::raw(
            clap::error::ErrorKind::MissingRequiredArgument,
            "refusing to reset the checkpoint without confirmation: stdin is not a terminal; pass --yes (or --dry-run to see what would be forgotten)\n",
        )
        .exit();
    }
    let store = if a.dry_run {
        open_read(&config).await?
    } else {
        open_write(&config, "reset it").await?
    };
    let targets = chosen_records(&store, &a).await?;
    if targets.is_empty() {
        if let Some(f) = &a.file {
            bail!("no landing file {f} in the checkpoint (already forgotten, or never processed)");
        }
        let _ = writeln!(std::io::stderr(), "nothing to reset: no file records match");
        return Ok(());
    }
    if a.dry_run {
        return print_dry_run(&targets, a.json);
    }
    if !a.yes {
        confirm(targets.len(), &config.checkpoint)?;
    }
    let forgotten = forget(&store, targets).await?;
    if a.json {
        return emit_json(&ResetJson {
            dry_run: false,
            files: forgotten.iter().map(file_json).collect(),
        });
    }
    emit(&format!(
        "forgot {} file(s); the next run reads them again and drops each record whose key bronze holds for its event day{}\n",
        forgotten.len(),
        config
            .dedup_retention
            .map(|r| format!(
                " (records older than dedup_retention, {}, are written unchecked and counted)",
                fmt_duration(r)
            ))
            .unwrap_or_default()
    ))
}

/// The file records `--file`, `--dataset` or `--all` choose.
async fn chosen_records(store: &CheckpointStore, a: &ResetArgs) -> anyhow::Result<Vec<FileRecord>> {
    let s = store.clone();
    let (file, dataset, all) = (a.file.clone(), a.dataset.clone(), a.all);
    blocking(move || -> anyhow::Result<Vec<FileRecord>> {
        let files = s.files(None)?;
        Ok(match (file, dataset, all) {
            (Some(f), _, _) => resolve_file(files, &f)?.into_iter().collect(),
            (None, Some(d), _) => files.into_iter().filter(|f| f.dataset == d).collect(),
            _ => files,
        })
    })
    .await
    .context("while reading the file records")
}

/// `--dry-run`: prints the records that would be forgotten.
fn print_dry_run(targets: &[FileRecord], json: bool) -> anyhow::Result<()> {
    if json {
        return emit_json(&ResetJson {
            dry_run: true,
            files: targets.iter().map(file_json).collect(),
        });
    }
    let _ = writeln!(
        std::io::stderr(),
        "dry run: would forget {} file(s); nothing changed",
        targets.len()
    );
    emit(&file_table(targets).render())
}

/// Asks on the terminal before forgetting `count` records of `checkpoint`; an answer other than yes aborts.
fn confirm(count: usize, checkpoint: &Path) -> anyhow::Result<()> {
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "forget {count} file record(s) in {} so that the next run reads them again? [y/N] ",
        checkpoint.display()
    );
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("while reading the confirmation")?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("reset aborted: nothing changed");
    }
    Ok(())
}

/// Forgets the records `targets`; returns the records forgotten.
async fn forget(
    store: &CheckpointStore,
    targets: Vec<FileRecord>,
) -> anyhow::Result<Vec<FileRecord>> {
    let s = store.clone();
    blocking(move || -> Result<Vec<FileRecord>, CheckpointError> {
        let mut out = Vec::new();
        for f in &targets {
            out.extend(s.reset_files(Some(&f.dataset), Some(&f.path))?);
        }
        Ok(out)
    })
    .await
    .context("while forgetting file records")
}
