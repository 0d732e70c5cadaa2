//! `lander explain PATH`: everything lander knows and decides about one landing file.
//!
//! Takes one landing file (a local path, or a path relative to landing) and prints, from the same code the
//! pipeline runs: the dataset rule that matches (first directory level), the readiness decision of the listing
//! ([`crate::source::listing::evaluate_path`]: ignored name, settling, too old, ready), the file's fingerprint
//! against its checkpoint record (new, processed, appended, rewritten, reset, failed, partial), the batches and
//! bronze parts it went into (rows of this file counted from each part's `_source_file` column), its quarantined
//! lines (from the batches' `_quarantine/<dataset>/part-b<batch>-q.parquet`), and a one-line verdict.
//!
//! Read-only: the checkpoint is opened through [`CheckpointStore::open_snapshot`] (a copy while a daemon holds
//! it). Without a checkpoint every file is judged against an empty temporary one. A path outside landing, or one
//! that neither landing nor the checkpoint knows, is a usage error (exit 2).

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use arrow::array::{Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use clap::Args;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use serde::Serialize;

use super::output::{blocking, emit, emit_json, fmt_time, human_bytes, open_read};
use super::{load_config, LocationArgs};
use crate::checkpoint::{BatchRecord, CheckpointStore, FileRecord, FileStatus};
use crate::cli::UsageError;
use crate::config::{parse_duration, DatasetConfig};
use crate::source::fingerprint::fingerprint;
use crate::source::listing::{evaluate_path, ignored_rule, Change, Readiness, SkipReason};
use crate::store::StoreLocation;

mod render;
use render::{render, verdict};

/// `lander explain`.
#[derive(Debug, Args)]
#[command(mut_args(crate::cli::defaults::settle_time_default))]
pub(crate) struct ExplainArgs {
    /// Locations and config.
    #[command(flatten)]
    pub(crate) locations: LocationArgs,
    /// The landing file: a local path (absolute or from the current directory) or a path relative to landing
    /// (`gharchive/2015-01-01-0.json.gz`).
    pub(crate) path: String,
    /// Settle time, as for `lander run`.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) settle_time: Option<Duration>,
    /// Quarantined lines shown.
    #[arg(long, default_value_t = 5)]
    pub(crate) quarantine_lines: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The whole explanation (`--json`). Checkpoint records are embedded as stored.
#[derive(Debug, Serialize)]
pub(crate) struct Explanation {
    /// Path relative to landing (`<dataset>/...`).
    pub(crate) path: String,
    /// Where the file is (local path or URL).
    pub(crate) location: String,
    /// Dataset name (first directory level), null for a file at the top of landing.
    pub(crate) dataset: Option<String>,
    /// The dataset rule, null when no dataset is configured for the directory.
    pub(crate) rule: Option<RuleJson>,
    /// The file in landing now, null when it is not there (any more).
    pub(crate) file: Option<FileNow>,
    /// The listing's decision.
    pub(crate) readiness: ReadinessJson,
    /// `new`, `processed`, `appended`, `rewritten`, `reset`, `failed`, `partial` or `unknown` (not in landing).
    pub(crate) checkpoint_state: &'static str,
    /// The checkpoint record of the file, as stored.
    pub(crate) record: Option<FileRecord>,
    /// Batches that read the file (any version), as stored, with `inputs` narrowed to this file.
    pub(crate) batches: Vec<BatchRecord>,
    /// Bronze parts of those batches holding rows of this file.
    pub(crate) parts: Vec<PartJson>,
    /// Quarantined lines of this file.
    pub(crate) quarantine: QuarantineJson,
    /// How the checkpoint's binding differs from these locations (empty when it belongs to them): the record
    /// above then describes another landing or bronze, and `run` refuses to use it here without `--rebind`.
    pub(crate) binding: Vec<String>,
    /// When the checkpoint is one of several workers': which worker owns this file.
    pub(crate) worker: Option<WorkerJson>,
    /// One-line verdict.
    pub(crate) verdict: String,
}

/// Which worker owns the file (`crate::source::assign`).
#[derive(Debug, Serialize)]
pub(crate) struct WorkerJson {
    /// The checkpoint's worker, `I/N`.
    pub(crate) this: String,
    /// The index of the worker that owns the file, of the same `N`.
    pub(crate) owner: u32,
    /// Whether this checkpoint's worker reads it.
    pub(crate) mine: bool,
}

/// The dataset rule.
#[derive(Debug, Serialize)]
pub(crate) struct RuleJson {
    /// How records are decoded.
    pub(crate) decode: String,
    /// Dedup key.
    pub(crate) key: String,
    /// Event-time column (partitions bronze by UTC day).
    pub(crate) event_time: String,
    /// The dataset's configuration, as in `lander.toml`.
    pub(crate) config: DatasetConfig,
}

/// The file as it is in landing now.
#[derive(Debug, Serialize)]
pub(crate) struct FileNow {
    /// Size in bytes.
    pub(crate) size: u64,
    /// Modification time.
    pub(crate) modified: DateTime<Utc>,
    /// Read as gzip (whole once settled).
    pub(crate) gzip: bool,
    /// Content fingerprint, as the checkpoint stores it.
    pub(crate) fingerprint: String,
}

/// The listing's readiness decision.
#[derive(Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum ReadinessJson {
    /// Never read: the rule names the name pattern and the segment it matched.
    Ignored {
        /// The rule.
        rule: String,
        /// The path segment it matched.
        segment: String,
    },
    /// No dataset is configured for the directory (or the file is at the top of landing).
    NoDataset,
    /// Not settled yet.
    Settling {
        /// Seconds until it has been stable for the settle time.
        remaining_seconds: f64,
    },
    /// Not ready because its modification time lies in the future: it does not settle by age until then.
    ModifiedInTheFuture {
        /// The modification time.
        modified: DateTime<Utc>,
        /// Seconds until it has been stable for the settle time, counted from that future time.
        remaining_seconds: f64,
    },
    /// Older than `max_file_age` on a new checkpoint.
    TooOld,
    /// Read by the next run.
    Ready {
        /// `new`, `appended` or `rewritten` (the bytes already read changed: read whole again).
        change: &'static str,
        /// Where reading starts.
        start_offset: u64,
        /// Whether the end of the file ends its last record.
        is_final: bool,
    },
    /// Processed and unchanged.
    Unchanged,
    /// Cannot be read.
    Unreadable {
        /// Why.
        reason: String,
    },
    /// Not in landing.
    Missing,
}

/// One bronze part of a batch that read the file.
#[derive(Debug, Serialize)]
pub(crate) struct PartJson {
    /// Batch id.
    pub(crate) batch: u64,
    /// Path relative to bronze.
    pub(crate) path: String,
    /// Rows in the part.
    pub(crate) rows: u64,
    /// Rows of this file in the part (null when the part could not be read).
    pub(crate) rows_of_file: Option<u64>,
    /// Why the part could not be read.
    pub(crate) error: Option<String>,
}

/// The quarantined lines of the file.
#[derive(Debug, Default, Serialize)]
pub(crate) struct QuarantineJson {
    /// How many.
    pub(crate) count: u64,
    /// The first few.
    pub(crate) lines: Vec<QuarantinedLine>,
}

/// One quarantined line.
#[derive(Debug, Serialize)]
pub(crate) struct QuarantinedLine {
    /// Batch id.
    pub(crate) batch: u64,
    /// 1-based line (record) number; 0 for a whole rejected file.
    pub(crate) line: i64,
    /// Byte offset (in the decompressed stream for gzip).
    pub(crate) offset: i64,
    /// Why.
    pub(crate) reason: String,
    /// The quarantine part (relative to bronze).
    pub(crate) part: String,
}

/// Runs `lander explain`.
///
/// # Errors
/// Exit 2 for a path outside landing or unknown to both landing and the checkpoint; exit 1 for read failures.
pub(crate) async fn run(a: ExplainArgs) -> anyhow::Result<()> {
    let mut config = load_config(&a.locations)?;
    if let Some(s) = a.settle_time {
        config.settle_time = s;
    }
    super::require_local_landing(&config.landing)?;
    let landing = StoreLocation::open_with(&config.landing, &config.storage)
        .context("while opening landing")?;
    let bronze = StoreLocation::open_with(&config.bronze, &config.storage)
        .context("while opening bronze")?;
    let rel = resolve(&landing, &a.path)?;
    // Without a checkpoint, judge against an empty one (kept alive until the end).
    let (store, _empty) = if CheckpointStore::exists(&config.checkpoint) {
        (open_read(&config).await?, None)
    } else {
        let tmp = tempfile::tempdir().context("while creating an empty checkpoint")?;
        let dir = tmp.path().to_path_buf();
        let s = blocking(move || CheckpointStore::open(&dir))
            .await
            .context("while creating an empty checkpoint")?;
        (s, Some(tmp))
    };
    let mut x = explain(&config, &landing, &bronze, &store, &rel, a.quarantine_lines).await?;
    // An unreadable entry (a name no store path can hold) exists even though the store cannot see it.
    let seen = matches!(x.readiness, ReadinessJson::Unreadable { .. });
    if x.file.is_none() && x.record.is_none() && x.batches.is_empty() && !seen {
        return Err(UsageError(format!(
            "{} does not exist in landing {} and the checkpoint has no record of it",
            a.path, landing.display
        ))
        .into());
    }
    let datasets: Vec<String> = x.dataset.iter().cloned().collect();
    x.binding = crate::modes::binding::mismatches(
        &landing,
        &bronze,
        &store,
        &datasets,
        config.table_format,
    )
    .await
    .context("while reading the checkpoint's binding")?
    .iter()
    .map(ToString::to_string)
    .collect();
    let worker =
        crate::modes::workers::bound_worker(&store).or_else(|| config.worker_spec().ok().flatten());
    x.worker = worker.map(|w| WorkerJson {
        this: w.to_string(),
        owner: crate::source::assign::WorkerSpec::owner_of(&rel, w.count),
        mine: w.owns(&rel),
    });
    x.verdict = verdict(&x);
    if a.json {
        return emit_json(&x);
    }
    emit(&render(&x))
}

/// The path relative to landing that `arg` names.
fn resolve(landing: &StoreLocation, arg: &str) -> anyhow::Result<String> {
    let outside = || {
        UsageError(format!(
            "{arg} is outside landing {} (give a file below it, or a path relative to it)",
            landing.display
        ))
    };
    let rel = match &landing.local_root {
        Some(root) => {
            let p = Path::new(arg);
            let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
            if p.is_absolute() || (p.symlink_metadata().is_ok() && !root.join(arg).exists()) {
                // A local path: canonical parent (the file itself may be a symlink, judged by the listing).
                let abs = absolute(p);
                let parent = abs.parent().map(Path::to_path_buf).unwrap_or_default();
                let parent = std::fs::canonicalize(&parent).unwrap_or(parent);
                let full = parent.join(abs.file_name().unwrap_or_default());
                let rel = full.strip_prefix(&root).map_err(|_| outside())?;
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            } else {
                arg.trim_start_matches("./").to_string()
            }
        }
        None => {
            let prefix = format!("{}/", landing.display.trim_end_matches('/'));
            arg.strip_prefix(&prefix).unwrap_or(arg).to_string()
        }
    };
    if rel.is_empty() || rel.split('/').any(|s| s.is_empty() || s == "..") {
        return Err(outside().into());
    }
    Ok(rel)
}

/// `p` made absolute against the current directory, with `.` and `..` resolved lexically.
fn absolute(p: &Path) -> PathBuf {
    let base = if p.is_absolute() {
        PathBuf::new()
    } else {
        std::env::current_dir().unwrap_or_default()
    };
    let mut out = base;
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

async fn explain(
    config: &crate::config::Config,
    landing: &StoreLocation,
    bronze: &StoreLocation,
    store: &CheckpointStore,
    rel: &str,
    max_lines: usize,
) -> anyhow::Result<Explanation> {
    let dataset = rel.split_once('/').map(|(d, _)| d.to_string());
    let ds_config = dataset.as_ref().and_then(|d| config.datasets.get(d));
    let (record, batches) = match &dataset {
        Some(ds) => records_of(store, ds, rel).await?,
        None => (None, Vec::new()),
    };
    let file = file_now(landing, rel).await?;
    let ignored = rel
        .split('/')
        .find_map(|seg| ignored_rule(seg).map(|r| (r, seg)));
    let readiness = match (ignored, &dataset, ds_config) {
        (Some((rule, seg)), _, _) => ReadinessJson::Ignored {
            rule: rule.to_string(),
            segment: seg.to_string(),
        },
        (None, Some(ds), Some(_)) => judge(config, landing, store, ds, rel).await?,
        _ => ReadinessJson::NoDataset,
    };
    let checkpoint_state = checkpoint_state(record.as_ref(), file.as_ref(), &readiness, &batches);
    let (parts, quarantine) = match &dataset {
        Some(ds) => read_outputs(bronze, ds, rel, &batches, max_lines).await,
        None => (Vec::new(), QuarantineJson::default()),
    };
    Ok(Explanation {
        path: rel.to_string(),
        location: landing.describe(rel),
        rule: ds_config.map(|c| rule_json(c, file.as_ref().is_some_and(|f| f.gzip))),
        dataset,
        file,
        readiness,
        checkpoint_state,
        record,
        batches,
        parts,
        quarantine,
        binding: Vec::new(),
        worker: None,
        verdict: String::new(),
    })
}

/// The checkpoint record of `rel` in dataset `ds`, and the batches that read it (with `inputs` narrowed to it).
async fn records_of(
    store: &CheckpointStore,
    ds: &str,
    rel: &str,
) -> anyhow::Result<(Option<FileRecord>, Vec<BatchRecord>)> {
    let (s, d, p) = (store.clone(), ds.to_string(), rel.to_string());
    let (record, mut batches) = blocking(move || -> anyhow::Result<_> {
        let record = s.file(&d, &p)?;
        let batches: Vec<BatchRecord> = s
            .batches(Some(&d))?
            .into_iter()
            .filter(|b| b.inputs.iter().any(|i| i.path == p))
            .collect();
        Ok((record, batches))
    })
    .await
    .context("while reading the checkpoint")?;
    for b in &mut batches {
        b.inputs.retain(|i| i.path == rel);
    }
    Ok((record, batches))
}

/// The file in landing now, with its fingerprint; `None` when it is not there (a name that no store path can
/// hold is judged by the listing).
async fn file_now(landing: &StoreLocation, rel: &str) -> anyhow::Result<Option<FileNow>> {
    let head = match landing.exact_path(rel) {
        Ok(location) => landing.store.head(&location).await.ok(),
        Err(_) => None,
    };
    let Some(meta) = head else {
        return Ok(None);
    };
    let location = meta.location.clone();
    let fp = fingerprint(landing, &location, rel, meta.size)
        .await
        .with_context(|| format!("while fingerprinting {rel}"))?;
    Ok(Some(FileNow {
        size: meta.size,
        modified: meta.last_modified,
        gzip: fp.gzip || rel.ends_with(".gz"),
        fingerprint: fp.fingerprint,
    }))
}

/// The listing's decision on `rel` (not ignored by name) of configured dataset `ds`.
async fn judge(
    config: &crate::config::Config,
    landing: &StoreLocation,
    store: &CheckpointStore,
    ds: &str,
    rel: &str,
) -> anyhow::Result<ReadinessJson> {
    let opts = crate::source::listing::PlanOptions {
        latest_first: false,
        ..crate::modes::plan_options(config, false)
    };
    let fresh = store.next_batch_id(ds)? == 1;
    let r = evaluate_path(landing, store, ds, rel, false, fresh, &opts)
        .await
        .with_context(|| format!("while judging {rel}"))?;
    Ok(readiness_json(r, opts.now))
}

/// `Explanation::checkpoint_state`: the file's record against the file now and the listing's decision.
fn checkpoint_state(
    record: Option<&FileRecord>,
    file: Option<&FileNow>,
    readiness: &ReadinessJson,
    batches: &[BatchRecord],
) -> &'static str {
    match (record, file, readiness) {
        (None, None, _) => "unknown",
        (None, Some(_), _) if batches.is_empty() => "new",
        (None, Some(_), _) => "reset",
        (Some(r), _, _) if matches!(r.status, FileStatus::Failed { .. }) => "failed",
        (Some(_), _, ReadinessJson::Ready { change, .. }) if *change == "rewritten" => "rewritten",
        (Some(r), _, _) if r.status == FileStatus::Partial => "partial",
        (Some(_), _, ReadinessJson::Ready { change, .. }) if *change == "appended" => "appended",
        // A processed plain file waits to settle only when its consumed prefix changed; a gzip file waits after
        // any change.
        (
            Some(r),
            Some(f),
            ReadinessJson::Settling { .. } | ReadinessJson::ModifiedInTheFuture { .. },
        ) if !f.gzip || r.fingerprint != f.fingerprint || r.size != f.size => "rewritten",
        (Some(_), _, _) => "processed",
    }
}

fn readiness_json(r: Option<Readiness>, now: DateTime<Utc>) -> ReadinessJson {
    match r {
        None => ReadinessJson::Missing,
        Some(Readiness::NotReady {
            settles_at,
            modified,
        }) => {
            let remaining_seconds = (settles_at - now).num_milliseconds().max(0) as f64 / 1000.0;
            if modified > now {
                ReadinessJson::ModifiedInTheFuture {
                    modified,
                    remaining_seconds,
                }
            } else {
                ReadinessJson::Settling { remaining_seconds }
            }
        }
        Some(Readiness::Skip(SkipReason::TooOld)) => ReadinessJson::TooOld,
        Some(Readiness::Skip(SkipReason::Unchanged)) => ReadinessJson::Unchanged,
        Some(Readiness::Skip(SkipReason::Vanished)) => ReadinessJson::Missing,
        Some(Readiness::Skip(SkipReason::Unreadable(reason))) => {
            ReadinessJson::Unreadable { reason }
        }
        Some(Readiness::Read(f)) => ReadinessJson::Ready {
            change: match f.change {
                Change::New => "new",
                Change::Appended => "appended",
                Change::Replaced => "rewritten",
            },
            start_offset: f.start_offset,
            is_final: f.is_final,
        },
    }
}

fn rule_json(c: &DatasetConfig, gzip: bool) -> RuleJson {
    let (decode, key, event_time) = match c {
        DatasetConfig::Gharchive { .. } => (
            format!(
                "GH Archive NDJSON (Events-API and Timeline-API shapes){}",
                if gzip {
                    ", gzip: read whole once settled"
                } else {
                    ", plain: read up to its last complete line"
                }
            ),
            "id (a hash of the whole event when it has none)".to_string(),
            "created_at".to_string(),
        ),
        DatasetConfig::Csv { csv: o, .. } => (
            format!(
                "CSV (delimiter {:?}, {}, {}, timestamps in {})",
                o.delimiter,
                o.encoding,
                if o.has_header { "header" } else { "no header" },
                o.timezone
            ),
            if o.key.is_empty() {
                "a hash of the whole row".to_string()
            } else {
                o.key.join(", ")
            },
            o.event_time.clone(),
        ),
    };
    RuleJson {
        decode,
        key,
        event_time,
        config: c.clone(),
    }
}

/// Rows of the file per bronze part, and its quarantined lines, read from the batches' outputs.
async fn read_outputs(
    bronze: &StoreLocation,
    ds: &str,
    rel: &str,
    batches: &[BatchRecord],
    max_lines: usize,
) -> (Vec<PartJson>, QuarantineJson) {
    let mut parts = Vec::new();
    let mut q = QuarantineJson::default();
    let qprefix = format!("_quarantine/{ds}/part-");
    for b in batches {
        for o in &b.outputs {
            if o.path.starts_with(&qprefix) {
                let got = read_columns(
                    bronze,
                    &o.path,
                    &["source_file", "line", "offset", "reason"],
                )
                .await;
                // An unreadable quarantine part only loses detail; the record's count still shows.
                let Ok(got) = got else { continue };
                for rb in &got {
                    let (Some(f), Some(l), Some(off), Some(why)) = (
                        str_col(rb, 0),
                        int_col(rb, 1),
                        int_col(rb, 2),
                        str_col(rb, 3),
                    ) else {
                        continue;
                    };
                    for i in (0..rb.num_rows()).filter(|&i| f.value(i) == rel) {
                        q.count += 1;
                        if q.lines.len() < max_lines {
                            q.lines.push(QuarantinedLine {
                                batch: b.id,
                                line: l.value(i),
                                offset: off.value(i),
                                reason: why.value(i).to_string(),
                                part: o.path.clone(),
                            });
                        }
                    }
                }
            } else if !o.path.starts_with('_') {
                let (rows_of_file, error) =
                    match read_columns(bronze, &o.path, &["_source_file"]).await {
                        Ok(got) => (
                            Some(
                                got.iter()
                                    .filter_map(|rb| str_col(rb, 0))
                                    .map(|c| {
                                        (0..c.len())
                                            .filter(|&i| c.is_valid(i) && c.value(i) == rel)
                                            .count() as u64
                                    })
                                    .sum(),
                            ),
                            None,
                        ),
                        Err(e) => (None, Some(format!("{e:#}"))),
                    };
                if rows_of_file != Some(0) {
                    parts.push(PartJson {
                        batch: b.id,
                        path: o.path.clone(),
                        rows: o.rows,
                        rows_of_file,
                        error,
                    });
                }
            }
        }
    }
    (parts, q)
}

fn str_col(rb: &RecordBatch, i: usize) -> Option<&StringArray> {
    rb.columns().get(i)?.as_any().downcast_ref::<StringArray>()
}

fn int_col(rb: &RecordBatch, i: usize) -> Option<&Int64Array> {
    rb.columns().get(i)?.as_any().downcast_ref::<Int64Array>()
}

/// Reads only `columns` of a bronze Parquet file (decoded on a blocking thread).
async fn read_columns(
    bronze: &StoreLocation,
    path: &str,
    columns: &'static [&'static str],
) -> anyhow::Result<Vec<RecordBatch>> {
    let read = async {
        let bytes = bronze.store.get(&bronze.path(path)).await?.bytes().await?;
        let batches = blocking(move || {
            let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
            let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
            builder
                .with_projection(mask)
                .build()?
                .map(|b| b.map_err(parquet::errors::ParquetError::from))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        anyhow::Ok(batches)
    };
    read.await
        .with_context(|| format!("cannot read {path} in bronze"))
}
