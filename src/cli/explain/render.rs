//! The text of `lander explain`: the one-line verdict and the human-readable report of an [`Explanation`]
//! (the JSON is the `Explanation` itself).

use super::*;
use crate::source::listing::MODIFIED_IN_THE_FUTURE;

/// `1234567` -> `1,234,567`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// The one-line verdict.
pub(super) fn verdict(x: &Explanation) -> String {
    let mut v = file_verdict(x);
    if let Some(w) = x.worker.as_ref().filter(|w| !w.mine) {
        v = format!(
            "belongs to worker {} (not to this checkpoint's worker {}), which reads it; this worker never does. By this checkpoint's records: {v}",
            w.owner, w.this
        );
    }
    if x.binding.is_empty() {
        return v;
    }
    format!("the checkpoint belongs to other locations ({}), so `run` refuses it here without --rebind; by its records: {v}", x.binding.join("; "))
}

/// What an ingested file's record says: its batch, rows and parts, quarantined, truncated and duplicate
/// records, and rewrites.
fn ingested_text(x: &Explanation, r: &FileRecord, last_batch: Option<u64>) -> String {
    let parts = x.parts.iter().filter(|p| p.rows_of_file.is_some()).count() as u64;
    let batch = last_batch.map_or_else(|| "?".into(), |b| b.to_string());
    let mut s = format!(
        "ingested in batch {batch} ({}",
        plural(r.counts.rows, "row", "rows")
    );
    if r.counts.rows > 0 {
        s += &format!(" in {}", plural(parts, "part", "parts"));
    }
    if r.counts.quarantined > 0 {
        s += &format!(
            ", {} quarantined",
            plural(r.counts.quarantined, "line", "lines")
        );
    }
    if r.records_truncated > 0 {
        s += &format!(
            ", {} over max_record_bytes kept only in part, so the file stays in landing",
            plural(r.records_truncated, "record", "records")
        );
    }
    if r.counts.duplicates > 0 {
        s += &format!(
            ", {} dropped",
            plural(r.counts.duplicates, "duplicate", "duplicates")
        );
    }
    if r.versions > 0 {
        s += &format!(
            "; rewritten {} since first ingested, this version read whole",
            plural(u64::from(r.versions), "time", "times")
        );
    }
    s + ")"
}

/// The verdict on the file alone.
fn file_verdict(x: &Explanation) -> String {
    let last_batch = x.record.as_ref().and_then(|r| r.batches.last().copied());
    let ingested = |r: &FileRecord| ingested_text(x, r, last_batch);
    match (&x.readiness, x.checkpoint_state) {
        (ReadinessJson::Ignored { rule, segment }, _) => {
            if x.path.ends_with(segment.as_str()) {
                format!("ignored: {rule}")
            } else {
                format!("ignored: {rule} on directory {segment}")
            }
        }
        (ReadinessJson::NoDataset, _) => match &x.dataset {
            Some(d) => format!(
                "ignored: no dataset {d} is configured (declare [datasets.{d}] in lander.toml)"
            ),
            None => format!("ignored: {}", crate::source::top::STRAY_REASON),
        },
        (_, "failed") => {
            let reason = match x.record.as_ref().map(|r| &r.status) {
                Some(FileStatus::Failed { reason }) => reason.as_str(),
                _ => "",
            };
            format!(
                "failed in batch {}: {reason} (the whole file is in the quarantine)",
                last_batch.unwrap_or_default()
            )
        }
        (ReadinessJson::Settling { remaining_seconds }, state) => format!(
            "waiting: {}settling for {remaining_seconds:.1} s more",
            if state == "rewritten" {
                "rewritten content "
            } else {
                ""
            }
        ),
        (ReadinessJson::ModifiedInTheFuture { modified, .. }, _) => format!(
            "waiting: {MODIFIED_IN_THE_FUTURE}; it was modified at {} UTC",
            fmt_time(*modified)
        ),
        (ReadinessJson::TooOld, _) => {
            "ignored: too old (older than max_file_age on a new checkpoint)".into()
        }
        (ReadinessJson::Unreadable { reason }, _) => format!("skipped: {reason}"),
        (ReadinessJson::Ready { .. }, "reset") => {
            "pending: forgotten by `checkpoint reset`; the next run ingests it again".into()
        }
        (ReadinessJson::Ready { .. }, "new") => "pending: new; the next run ingests it".into(),
        (ReadinessJson::Ready { .. }, "rewritten") => "pending: rewritten (same path, the bytes already read changed); the next run ingests the new version whole; a record whose key bronze holds for its event day is dropped, and records not checked (beyond dedup_retention) are counted".into(),
        (ReadinessJson::Ready { start_offset, .. }, _) => format!(
            "pending: grew; the next run reads it from byte {}",
            thousands(*start_offset)
        ),
        (_, "partial") => match &x.record {
            Some(r) => format!(
                "partial: read up to byte {} in batch {}; the rest is read once it ends a line or settles",
                thousands(r.bytes_consumed),
                last_batch.unwrap_or_default()
            ),
            None => "partial".into(),
        },
        (ReadinessJson::Missing, _) => match &x.record {
            Some(r) => format!("{}; no longer in landing", ingested(r)),
            None => "not in landing; read by batches before a `checkpoint reset`".into(),
        },
        (_, _) => match &x.record {
            Some(r) => ingested(r),
            None => "unknown".into(),
        },
    }
}

/// Appends one `key: value` line of the report, the value in a column.
fn line(s: &mut String, k: &str, v: String) {
    s.push_str(&format!("{k:<14}{v}\n"));
}

/// The human-readable report of `lander explain`: the file, its readiness, checkpoint, batches, parts,
/// quarantine and ownership, then the verdict.
pub(super) fn render(x: &Explanation) -> String {
    let mut s = String::new();
    line(&mut s, "file:", x.path.clone());
    line(&mut s, "location:", x.location.clone());
    render_dataset(&mut s, x);
    render_landing(&mut s, x);
    line(&mut s, "readiness:", readiness_text(&x.readiness));
    line(&mut s, "checkpoint:", checkpoint_text(x));
    render_history(&mut s, x);
    render_ownership(&mut s, x);
    line(&mut s, "verdict:", x.verdict.clone());
    s
}

/// The dataset lines: its name and, when configured, its decode rule, key and event time.
fn render_dataset(s: &mut String, x: &Explanation) {
    match (&x.dataset, &x.rule) {
        (Some(d), Some(r)) => {
            line(s, "dataset:", d.clone());
            line(s, "  decode:", r.decode.clone());
            line(s, "  key:", r.key.clone());
            line(
                s,
                "  event time:",
                format!("{} (partitions bronze by UTC day)", r.event_time),
            );
        }
        (Some(d), None) => line(s, "dataset:", format!("{d} (not configured)")),
        (None, _) => line(s, "dataset:", "none (file at the top of landing)".into()),
    }
}

/// The `in landing:` line: size, modification time and fingerprint, or why it is absent.
fn render_landing(s: &mut String, x: &Explanation) {
    match &x.file {
        Some(f) => line(
            s,
            "in landing:",
            format!(
                "{} ({} B), modified {} UTC, fingerprint {}",
                human_bytes(f.size),
                thousands(f.size),
                fmt_time(f.modified),
                f.fingerprint
            ),
        ),
        None => line(
            s,
            "in landing:",
            "no (deleted, archived or never there)".into(),
        ),
    }
}

/// The value of the `readiness:` line.
fn readiness_text(readiness: &ReadinessJson) -> String {
    match readiness {
        ReadinessJson::Ignored { rule, segment } => format!("ignored: {rule} ({segment})"),
        ReadinessJson::NoDataset => "ignored: no dataset rule".into(),
        ReadinessJson::Settling { remaining_seconds } => {
            format!("settling: ready in {remaining_seconds:.1} s if it does not change again")
        }
        ReadinessJson::ModifiedInTheFuture {
            modified,
            remaining_seconds,
        } => format!(
            "not settling: modified at {} UTC, in the future; ready in {remaining_seconds:.1} s if it does not change again",
            fmt_time(*modified)
        ),
        ReadinessJson::TooOld => "too old: older than max_file_age on a new checkpoint".into(),
        ReadinessJson::Ready {
            change,
            start_offset,
            is_final,
        } => format!(
            "ready ({change}, from byte {}{})",
            thousands(*start_offset),
            if *is_final {
                ""
            } else {
                ", up to its last complete line"
            }
        ),
        ReadinessJson::Unchanged => "unchanged since it was processed".into(),
        ReadinessJson::Unreadable { reason } => format!("unreadable: {reason}"),
        ReadinessJson::Missing => "not in landing".into(),
    }
}

/// The value of the `checkpoint:` line: the file's state and its record.
fn checkpoint_text(x: &Explanation) -> String {
    match &x.record {
        Some(r) => format!(
            "{} (status {}, fingerprint {}, {} of {} consumed, {} lines, processed {} UTC{})",
            x.checkpoint_state,
            r.status_label(),
            r.fingerprint,
            thousands(r.bytes_consumed),
            thousands(r.size),
            thousands(r.lines_consumed),
            fmt_time(r.processed_at),
            match &r.status {
                FileStatus::Failed { reason } => format!(", reason: {reason}"),
                _ => String::new(),
            }
        ),
        None => format!("{} (no record)", x.checkpoint_state),
    }
}

/// The `batch:`, `part:` and `quarantine:` lines: what the batches that read the file wrote.
fn render_history(s: &mut String, x: &Explanation) {
    for b in &x.batches {
        let inputs: Vec<String> = b
            .inputs
            .iter()
            .map(|i| {
                format!(
                    "bytes {}..{}: {} ok, {} quarantined, {} duplicates",
                    i.start, i.end, i.counts.rows, i.counts.quarantined, i.counts.duplicates
                )
            })
            .collect();
        line(
            s,
            "batch:",
            format!(
                "{} committed {} UTC: {}",
                b.id,
                fmt_time(b.committed_at),
                inputs.join("; ")
            ),
        );
    }
    for p in &x.parts {
        let rows = match (&p.rows_of_file, &p.error) {
            (Some(n), _) => format!("{} of {} rows", thousands(*n), thousands(p.rows)),
            (None, Some(e)) => e.clone(),
            (None, None) => "?".into(),
        };
        line(s, "part:", format!("{} ({rows})", p.path));
    }
    if x.quarantine.count > 0 {
        line(
            s,
            "quarantine:",
            plural(x.quarantine.count, "line", "lines"),
        );
        for q in &x.quarantine.lines {
            line(
                s,
                "",
                format!(
                    "line {} (offset {}, batch {}): {}",
                    q.line, q.offset, q.batch, q.reason
                ),
            );
        }
    }
}

/// The `binding:` and `worker:` lines: whose checkpoint and worker the file belongs to.
fn render_ownership(s: &mut String, x: &Explanation) {
    for m in &x.binding {
        line(s, "binding:", format!("checkpoint mismatch: {m}"));
    }
    if let Some(w) = &x.worker {
        let who = if w.mine {
            "this worker"
        } else {
            "another worker"
        };
        line(
            s,
            "worker:",
            format!(
                "owned by worker {} ({who}; this checkpoint is worker {})",
                w.owner, w.this
            ),
        );
    }
}
