//! `checkpoint list` and `checkpoint show`: file records newest first, one file or one batch in full.

use std::io::Write as _;

use anyhow::{bail, Context as _};

use super::table::{kv_block, Table};
use super::views::outputs_of;
use super::{
    file_json, BatchJson, InputJson, ListArgs, OutputJson, ShowArgs, ShowBatchJson, ShowFileJson,
};
use crate::checkpoint::{BatchRecord, CheckpointError, FileRecord, FileStatus};
use crate::cli::load_config;
use crate::cli::output::{blocking, emit, emit_json, fmt_time, human_bytes, open_read};

pub(super) async fn list(a: ListArgs) -> anyhow::Result<()> {
    let config = load_config(&a.common.locations)?;
    let store = open_read(&config).await?;
    let ds = a.common.dataset.clone();
    let mut files = blocking(move || store.files(ds.as_deref()))
        .await
        .context("while reading the file records")?;
    files.retain(|f| {
        a.since.is_none_or(|s| f.processed_at >= s) && a.status.is_none_or(|st| st.matches(f))
    });
    files.sort_by(|x, y| {
        y.processed_at
            .cmp(&x.processed_at)
            .then_with(|| x.path.cmp(&y.path))
    });
    if let Some(n) = a.limit {
        files.truncate(n);
    }
    if a.common.json {
        let rows: Vec<serde_json::Value> = files.iter().map(file_json).collect();
        return emit_json(&rows);
    }
    if files.is_empty() {
        let _ = writeln!(std::io::stderr(), "no processed files match");
        return Ok(());
    }
    emit(&file_table(&files).render())
}

pub(super) fn file_table(files: &[FileRecord]) -> Table {
    let mut t = Table::new(&[
        ("PATH", false),
        ("STATUS", false),
        ("SIZE", true),
        ("CONSUMED", true),
        ("OK", true),
        ("QUARANTINED", true),
        ("DUPLICATES", true),
        ("BATCH", true),
        ("PROCESSED (UTC)", false),
    ]);
    for f in files {
        t.row(vec![
            f.path.clone(),
            f.status_label(),
            human_bytes(f.size),
            human_bytes(f.bytes_consumed),
            f.counts.rows.to_string(),
            f.counts.quarantined.to_string(),
            f.counts.duplicates.to_string(),
            f.batches
                .last()
                .map_or_else(|| "-".into(), |b| b.to_string()),
            fmt_time(f.processed_at),
        ]);
    }
    t
}

/// Finds the one file record `arg` names: an exact landing path, a unique suffix of one (`2015-01-01-0.json.gz`),
/// or a longer path ending in one (`layers/landing/gharchive/...`).
pub(super) fn resolve_file(
    files: Vec<FileRecord>,
    arg: &str,
) -> anyhow::Result<Option<FileRecord>> {
    let arg = arg.trim_start_matches("./");
    if let Some(f) = files.iter().find(|f| f.path == arg) {
        return Ok(Some(f.clone()));
    }
    let mut hits: Vec<FileRecord> = files
        .into_iter()
        .filter(|f| f.path.ends_with(&format!("/{arg}")) || arg.ends_with(&format!("/{}", f.path)))
        .collect();
    match hits.len() {
        0 => Ok(None),
        1 => Ok(hits.pop()),
        _ => bail!(
            "{arg} matches {} files: {}; give the path relative to landing",
            hits.len(),
            hits.iter()
                .map(|f| f.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub(super) async fn show(a: ShowArgs) -> anyhow::Result<()> {
    let config = load_config(&a.common.locations)?;
    let store = open_read(&config).await?;
    let target = a.target.trim().to_string();
    let dataset = a.common.dataset.clone();
    if let Ok(id) = target.parse::<u64>() {
        let batches = blocking(move || -> Result<Vec<BatchRecord>, CheckpointError> {
            let datasets = match dataset {
                Some(d) => vec![d],
                None => store.datasets()?,
            };
            let mut out = Vec::new();
            for d in datasets {
                out.extend(store.batch(&d, id)?);
            }
            Ok(out)
        })
        .await
        .context("while reading batch records")?;
        if batches.is_empty() {
            match &a.common.dataset {
                Some(d) => bail!("no batch {id} in dataset {d}"),
                None => bail!("no dataset has a batch {id}"),
            }
        }
        if a.common.json {
            return emit_json(&ShowBatchJson {
                kind: "batch",
                batches: batches.iter().map(BatchJson::from).collect(),
            });
        }
        let text: Vec<String> = batches.iter().map(render_batch).collect();
        return emit(&text.join("\n"));
    }

    let t = target.clone();
    let (file, batches) = blocking(
        move || -> anyhow::Result<(Option<FileRecord>, Vec<BatchRecord>)> {
            let files = store.files(dataset.as_deref())?;
            let Some(file) = resolve_file(files, &t)? else {
                return Ok((None, Vec::new()));
            };
            let batches = store.batches(Some(&file.dataset))?;
            Ok((Some(file), batches))
        },
    )
    .await
    .context("while reading the checkpoint")?;
    let Some(file) = file else {
        bail!(
            "no landing file {target} in the checkpoint (list them with `lander checkpoint list`)"
        );
    };
    let mut reads = Vec::new();
    let mut outputs = Vec::new();
    for b in &batches {
        let mine: Vec<_> = b.inputs.iter().filter(|i| i.path == file.path).collect();
        if mine.is_empty() {
            continue;
        }
        reads.extend(mine.into_iter().map(|i| InputJson::of(b, i)));
        outputs.extend(outputs_of(b));
    }
    if a.common.json {
        return emit_json(&ShowFileJson {
            kind: "file",
            file: file_json(&file),
            reads,
            outputs,
        });
    }
    emit(&render_file(&file, &reads, &outputs))
}

fn render_file(f: &FileRecord, reads: &[InputJson], outputs: &[OutputJson]) -> String {
    let mut s = String::new();
    let status = match &f.status {
        FileStatus::Failed { reason } => format!("failed: {reason}"),
        _ => f.status_label(),
    };
    let kv = [
        ("file", f.path.clone()),
        ("dataset", f.dataset.clone()),
        ("status", status),
        ("size", format!("{} ({})", f.size, human_bytes(f.size))),
        ("modified", fmt_time(f.modified)),
        ("fingerprint", f.fingerprint.clone()),
        ("head hash", f.head_hash.clone()),
        (
            "prefix hash",
            f.prefix_hash
                .clone()
                .unwrap_or_else(|| "none (judged by head hash and size)".into()),
        ),
        (
            "consumed",
            format!("{} bytes, {} lines", f.bytes_consumed, f.lines_consumed),
        ),
        (
            "records",
            format!(
                "{} ok, {} quarantined ({} of them truncated), {} duplicates",
                f.counts.rows, f.counts.quarantined, f.records_truncated, f.counts.duplicates
            ),
        ),
        ("versions", f.versions.to_string()),
        (
            "batches",
            f.batches
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("processed", fmt_time(f.processed_at)),
    ];
    s.push_str(&kv_block(&kv));
    s.push_str("\nreads\n");
    let mut t = Table::new(&[
        ("BATCH", true),
        ("BYTES", false),
        ("OK", true),
        ("QUARANTINED", true),
        ("DUPLICATES", true),
        ("COMMITTED (UTC)", false),
    ]);
    for r in reads {
        t.row(vec![
            r.batch.to_string(),
            format!("{}..{}", r.input.start, r.input.end),
            r.input.counts.rows.to_string(),
            r.input.counts.quarantined.to_string(),
            r.input.counts.duplicates.to_string(),
            fmt_time(r.committed_at),
        ]);
    }
    s.push_str(&t.render_indented("  "));
    s.push_str("\noutputs of those batches (shared with their other inputs)\n");
    s.push_str(&output_table(outputs).render_indented("  "));
    s
}

fn output_table(outputs: &[OutputJson]) -> Table {
    let mut t = Table::new(&[
        ("BATCH", true),
        ("PATH", false),
        ("ROWS", true),
        ("BYTES", true),
    ]);
    for o in outputs {
        t.row(vec![
            o.batch.to_string(),
            o.output.path.clone(),
            o.output.rows.to_string(),
            human_bytes(o.output.bytes),
        ]);
    }
    t
}

fn render_batch(b: &BatchRecord) -> String {
    let j = BatchJson::from(b);
    let times = match (j.min_event_time, j.max_event_time) {
        (Some(lo), Some(hi)) => format!("{} .. {}", fmt_time(lo), fmt_time(hi)),
        _ => "-".into(),
    };
    let kv = [
        ("batch", format!("{} of {}", b.id, b.dataset)),
        ("started", fmt_time(b.started_at)),
        ("committed", fmt_time(b.committed_at)),
        ("duration", format!("{:.2}s", j.duration_ms as f64 / 1000.0)),
        ("rows", b.counts.rows.to_string()),
        ("duplicates", b.counts.duplicates.to_string()),
        ("quarantined", b.counts.quarantined.to_string()),
        ("event time", times),
    ];
    let mut s = kv_block(&kv);
    s.push_str("\ninputs\n");
    let mut t = Table::new(&[
        ("PATH", false),
        ("BYTES", false),
        ("OK", true),
        ("QUARANTINED", true),
        ("DUPLICATES", true),
    ]);
    for i in j.inputs.iter().map(|i| &i.input) {
        t.row(vec![
            i.path.clone(),
            format!("{}..{}", i.start, i.end),
            i.counts.rows.to_string(),
            i.counts.quarantined.to_string(),
            i.counts.duplicates.to_string(),
        ]);
    }
    s.push_str(&t.render_indented("  "));
    s.push_str("\noutputs\n");
    s.push_str(&output_table(&j.outputs).render_indented("  "));
    s
}
