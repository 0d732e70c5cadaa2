//! `checkpoint verify`: cross-checks the checkpoint against bronze (committed outputs present with their sizes and
//! row counts, no orphans, no landing file ingested twice).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use anyhow::{bail, Context as _};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
use parquet::file::FOOTER_SIZE;

use super::{blocking, emit, emit_json, open_read, ProblemJson, VerifyArgs, VerifyJson};
use crate::checkpoint::{BatchRecord, CheckpointError, CheckpointStore, FileRecord};
use crate::cli::load_config;
use crate::store::StoreLocation;

/// Bronze objects whose size (and Parquet footer) `verify` checks at once.
const VERIFY_CONCURRENCY: usize = 8;

/// What the checkpoint says about bronze, for one dataset.
struct Known {
    /// Committed outputs: path -> (batch, rows, bytes).
    outputs: BTreeMap<String, (u64, u64, u64)>,
    /// Final names of an uncommitted batch (published or about to be).
    in_flight: BTreeSet<String>,
}

fn known_outputs(
    store: &CheckpointStore,
    datasets: &[String],
) -> Result<(HashMap<String, Known>, Vec<String>), CheckpointError> {
    let mut out = HashMap::new();
    let mut notes = Vec::new();
    for ds in datasets {
        let mut k = Known {
            outputs: BTreeMap::new(),
            in_flight: BTreeSet::new(),
        };
        for b in store.batches(Some(ds))? {
            for o in b.outputs {
                k.outputs.insert(o.path, (b.id, o.rows, o.bytes));
            }
        }
        if let Some(intent) = store.intent(ds)? {
            notes.push(if store.is_snapshot() {
                format!(
                    "{ds}: batch {} is in flight ({:?})",
                    intent.id, intent.state
                )
            } else {
                format!(
                    "{ds}: batch {} was interrupted ({:?}); the next run rolls it back",
                    intent.id, intent.state
                )
            });
            k.in_flight.extend(intent.finals);
        }
        out.insert(ds.clone(), k);
    }
    Ok((out, notes))
}

fn is_known(known: &HashMap<String, Known>, ds: &str, path: &str) -> bool {
    known
        .get(ds)
        .is_some_and(|k| k.outputs.contains_key(path) || k.in_flight.contains(path))
}

/// Top-level directory names below `prefix` in bronze.
async fn child_dirs(bronze: &StoreLocation, prefix: &str) -> anyhow::Result<Vec<String>> {
    let p = bronze.path(prefix);
    match bronze.store.list_with_delimiter(Some(&p)).await {
        Ok(l) => Ok(l
            .common_prefixes
            .iter()
            .filter_map(|c| c.filename().map(str::to_string))
            .collect()),
        Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => {
            Err(e).with_context(|| format!("while listing {} in bronze", bronze.describe(prefix)))
        }
    }
}

/// Every object below `prefix` in bronze: (relative path, size).
async fn list_objects(bronze: &StoreLocation, prefix: &str) -> anyhow::Result<Vec<(String, u64)>> {
    let p = bronze.path(prefix);
    let mut stream = bronze.store.list(Some(&p));
    let mut out = Vec::new();
    while let Some(meta) = stream.next().await {
        let meta = match meta {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("while listing {} in bronze", bronze.describe(prefix))
                })
            }
        };
        if let Some(rel) = bronze.relative(&meta.location) {
            out.push((rel, meta.size));
        }
    }
    Ok(out)
}

/// Whether a listed bronze object is one the checkpoint must know: a visible Parquet file of the dataset, or
/// any published quarantine file.
fn must_be_known(ds: &str, rel: &str) -> bool {
    let hidden = |s: &str| s.starts_with('_') || s.starts_with('.');
    if let Some(rest) = rel.strip_prefix(&format!("_quarantine/{ds}/")) {
        return !rest.split('/').any(hidden)
            && (rest.ends_with(".parquet") || rest.starts_with("files/"));
    }
    if let Some(rest) = rel.strip_prefix(&format!("{ds}/")) {
        return rest.ends_with(".parquet") && !rest.split('/').any(hidden);
    }
    false
}

pub(super) async fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    let config = load_config(&a.common.locations)?;
    let bronze = StoreLocation::open_with(&config.bronze, &config.storage)
        .context("while opening bronze")?;
    let mut store = open_read(&config).await?;

    // Datasets: those with state, plus any directory in bronze or in its quarantine (all orphans then).
    let datasets: Vec<String> = match &a.common.dataset {
        Some(d) => vec![d.clone()],
        None => {
            let s = store.clone();
            let mut set: BTreeSet<String> = blocking(move || s.datasets())
                .await
                .context("while reading the checkpoint")?
                .into_iter()
                .collect();
            set.extend(
                child_dirs(&bronze, "")
                    .await?
                    .into_iter()
                    .filter(|d| !d.starts_with('_') && !d.starts_with('.')),
            );
            set.extend(child_dirs(&bronze, "_quarantine").await?);
            set.into_iter().collect()
        }
    };

    let s = store.clone();
    let ds_list = datasets.clone();
    let (known, mut notes, files, batches) = blocking(move || {
        let (known, notes) = known_outputs(&s, &ds_list)?;
        let mut files = Vec::new();
        let mut batches = Vec::new();
        for ds in &ds_list {
            files.extend(s.files(Some(ds))?);
            batches.extend(s.batches(Some(ds))?);
        }
        Ok::<_, CheckpointError>((known, notes, files, batches))
    })
    .await
    .context("while reading the checkpoint")?;

    let mut problems: Vec<ProblemJson> = Vec::new();

    // 1. Every committed output exists with its recorded size (and row count, from the Parquet footer).
    let checks: Vec<(String, String, u64, u64, u64)> = known
        .iter()
        .flat_map(|(ds, k)| {
            k.outputs
                .iter()
                .map(|(p, (b, rows, bytes))| (ds.clone(), p.clone(), *b, *rows, *bytes))
        })
        .collect();
    let outputs_checked = checks.len() as u64;
    let read_rows = !a.skip_row_counts;
    let found: Vec<Option<ProblemJson>> = futures::stream::iter(checks)
        .map(|(ds, path, batch, rows, bytes)| {
            let bronze = bronze.clone();
            async move { check_output(&bronze, ds, path, batch, rows, bytes, read_rows).await }
        })
        .buffer_unordered(VERIFY_CONCURRENCY)
        .collect()
        .await;
    problems.extend(found.into_iter().flatten());

    // 2. No Parquet file in bronze (or file in its quarantine) unknown to the checkpoint.
    let mut listed = 0u64;
    let mut orphans: Vec<(String, String)> = Vec::new();
    for ds in &datasets {
        for prefix in [ds.clone(), format!("_quarantine/{ds}")] {
            for (rel, _) in list_objects(&bronze, &prefix).await? {
                if !must_be_known(ds, &rel) {
                    continue;
                }
                listed += 1;
                if !is_known(&known, ds, &rel) {
                    orphans.push((ds.clone(), rel));
                }
            }
        }
    }
    if !orphans.is_empty() && store.is_snapshot() {
        // The daemon may have published and committed since the snapshot: check again against a fresh one.
        store = open_read(&config).await?;
        let s = store.clone();
        let ds_list = datasets.clone();
        let (fresh, _) = blocking(move || known_outputs(&s, &ds_list))
            .await
            .context("while reading the checkpoint")?;
        orphans.retain(|(ds, rel)| !is_known(&fresh, ds, rel));
    }
    for (ds, rel) in orphans {
        problems.push(ProblemJson {
            kind: "orphan",
            message: format!(
                "{rel}: in bronze but unknown to the checkpoint (orphan: no committed batch of {ds} published it)"
            ),
            dataset: ds,
            path: rel,
            batch: None,
        });
    }

    // 3. No landed file ingested twice, and no file record naming a batch that does not exist.
    problems.extend(twice_problems(&files, &batches));
    if store.is_snapshot() {
        notes.push("read from a snapshot: a running lander holds the checkpoint".into());
    }

    problems.sort_by(|x, y| (&x.dataset, &x.path, x.kind).cmp(&(&y.dataset, &y.path, y.kind)));
    let doc = VerifyJson {
        consistent: problems.is_empty(),
        datasets,
        outputs_checked,
        row_counts_checked: read_rows,
        bronze_files_listed: listed,
        problems,
        notes,
    };
    if a.common.json {
        emit_json(&doc)?;
    } else {
        let mut text = String::new();
        for n in &doc.notes {
            text.push_str(&format!("note: {n}\n"));
        }
        for p in &doc.problems {
            text.push_str(&format!("problem: {}\n", p.message));
        }
        if doc.consistent {
            text.push_str(&format!(
                "ok: {} committed output(s) present with their recorded sizes{}, {} file(s) in bronze all known, no landing file ingested twice ({})\n",
                doc.outputs_checked,
                if doc.row_counts_checked { " and row counts" } else { "" },
                doc.bronze_files_listed,
                if doc.datasets.is_empty() { "no datasets".to_string() } else { doc.datasets.join(", ") },
            ));
        }
        emit(&text)?;
    }
    if !doc.consistent {
        bail!(
            "verify found {} problem(s) between the checkpoint and {}",
            doc.problems.len(),
            bronze.describe("")
        );
    }
    Ok(())
}

async fn check_output(
    bronze: &StoreLocation,
    dataset: String,
    path: String,
    batch: u64,
    rows: u64,
    bytes: u64,
    read_rows: bool,
) -> Option<ProblemJson> {
    let problem = |kind, message| {
        Some(ProblemJson {
            kind,
            dataset: dataset.clone(),
            path: path.clone(),
            batch: Some(batch),
            message,
        })
    };
    let location = bronze.path(&path);
    let meta = match bronze.store.head(&location).await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) => {
            return problem(
                "missing",
                format!(
                    "{path}: missing from bronze (committed by {dataset} batch {batch} with {rows} rows, {bytes} bytes)"
                ),
            )
        }
        Err(e) => {
            return problem(
                "unreadable",
                format!("{path}: cannot be read ({dataset} batch {batch}): {e}"),
            )
        }
    };
    if meta.size != bytes {
        return problem(
            "size_mismatch",
            format!(
                "{path}: {} bytes in bronze, the checkpoint recorded {bytes} ({dataset} batch {batch})",
                meta.size
            ),
        );
    }
    if !read_rows || !path.ends_with(".parquet") {
        return None;
    }
    match footer_rows(bronze, &location, meta.size).await {
        Ok(found) if found == rows => None,
        Ok(found) => problem(
            "row_count_mismatch",
            format!(
                "{path}: {found} rows in its Parquet footer, the checkpoint recorded {rows} ({dataset} batch {batch})"
            ),
        ),
        Err(e) => problem(
            "unreadable",
            format!("{path}: cannot read its Parquet footer ({dataset} batch {batch}): {e}"),
        ),
    }
}

/// Bytes read from the end of a Parquet file at first: the footer of a bronze part (a few row groups) fits.
const FOOTER_PREFETCH_BYTES: u64 = 64 << 10;

/// Why the footer of a committed Parquet file could not be read.
#[derive(Debug, thiserror::Error)]
enum FooterError {
    /// Shorter than the 8-byte footer itself.
    #[error("{size} bytes is too short for a Parquet file")]
    TooShort { size: u64 },
    /// The footer's metadata length does not fit in the file.
    #[error("footer claims {meta_len} bytes of metadata in a {size}-byte file")]
    BadLength { meta_len: u64, size: u64 },
    /// The store answered a range read with fewer bytes than asked for.
    #[error("the store returned {got} bytes for a {wanted}-byte range read")]
    ShortRead { got: usize, wanted: u64 },
    /// The range read failed.
    #[error(transparent)]
    Store(#[from] object_store::Error),
    /// The footer or the metadata is not valid Parquet.
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The row count is negative.
    #[error("the footer holds a negative row count {0}")]
    NegativeRows(i64),
}

/// The row count in the footer of the Parquet file at `location` (one range read, two for a large footer).
async fn footer_rows(
    bronze: &StoreLocation,
    location: &object_store::path::Path,
    size: u64,
) -> Result<u64, FooterError> {
    let footer = FOOTER_SIZE as u64;
    if size < footer {
        return Err(FooterError::TooShort { size });
    }
    // `bytes` (from `base` to the end of the file) must hold at least `wanted` bytes: the store may misbehave.
    let read = |base: u64| async move {
        let bytes = bronze.store.get_range(location, base..size).await?;
        let wanted = size - base;
        match bytes.len().checked_sub(FOOTER_SIZE) {
            Some(end) if bytes.len() as u64 == wanted => Ok((bytes, end)),
            _ => Err(FooterError::ShortRead {
                got: bytes.len(),
                wanted,
            }),
        }
    };
    let start = size.saturating_sub(FOOTER_PREFETCH_BYTES);
    let (mut tail, mut footer_at) = read(start).await?;
    let last: &[u8; FOOTER_SIZE] =
        tail[footer_at..]
            .try_into()
            .map_err(|_| FooterError::ShortRead {
                got: tail.len(),
                wanted: footer,
            })?;
    let meta_len = FooterTail::try_new(last)?.metadata_length() as u64;
    let meta_start = size
        .checked_sub(footer)
        .and_then(|s| s.checked_sub(meta_len))
        .ok_or(FooterError::BadLength { meta_len, size })?;
    let mut base = start;
    if meta_start < start {
        (tail, footer_at) = read(meta_start).await?;
        base = meta_start;
    }
    let from = usize::try_from(meta_start - base)
        .map_err(|_| FooterError::BadLength { meta_len, size })?;
    let metadata = tail
        .get(from..footer_at)
        .ok_or(FooterError::BadLength { meta_len, size })?;
    let rows = ParquetMetaDataReader::decode_metadata(metadata)?
        .file_metadata()
        .num_rows();
    u64::try_from(rows).map_err(|_| FooterError::NegativeRows(rows))
}

/// Overlapping reads of one landing file that both wrote rows, unless the file was replaced since (a new
/// version is read again on purpose); and file records naming missing batches.
///
/// A re-read that wrote no rows (e.g. after `reset`, when dedup dropped every record) duplicates nothing, so
/// it is not a problem. Appended tails are read as disjoint byte ranges.
fn twice_problems(files: &[FileRecord], batches: &[BatchRecord]) -> Vec<ProblemJson> {
    let mut problems = Vec::new();
    let records: HashMap<(&str, &str), &FileRecord> = files
        .iter()
        .map(|f| ((f.dataset.as_str(), f.path.as_str()), f))
        .collect();
    let ids: HashSet<(&str, u64)> = batches.iter().map(|b| (b.dataset.as_str(), b.id)).collect();
    let mut reads: BTreeMap<(&str, &str), Vec<(u64, &crate::checkpoint::BatchInput)>> =
        BTreeMap::new();
    for b in batches {
        for i in &b.inputs {
            reads
                .entry((b.dataset.as_str(), i.path.as_str()))
                .or_default()
                .push((b.id, i));
        }
    }
    for ((ds, path), list) in &reads {
        if records.get(&(*ds, *path)).is_some_and(|f| f.versions > 0) {
            continue;
        }
        for (n, (b1, r1)) in list.iter().enumerate() {
            for (b2, r2) in &list[n + 1..] {
                let overlap = r1.start < r2.end && r2.start < r1.end;
                if overlap && r1.records_ok > 0 && r2.records_ok > 0 {
                    problems.push(ProblemJson {
                        kind: "ingested_twice",
                        dataset: ds.to_string(),
                        path: path.to_string(),
                        batch: Some(*b2),
                        message: format!(
                            "{path}: landing file ingested twice: {ds} batch {b1} read bytes {}..{} ({} rows) and batch {b2} read bytes {}..{} ({} rows)",
                            r1.start, r1.end, r1.records_ok, r2.start, r2.end, r2.records_ok
                        ),
                    });
                }
            }
        }
    }
    for f in files {
        for b in &f.batches {
            if !ids.contains(&(f.dataset.as_str(), *b)) {
                problems.push(ProblemJson {
                    kind: "unknown_batch",
                    dataset: f.dataset.clone(),
                    path: f.path.clone(),
                    batch: Some(*b),
                    message: format!(
                        "{}: its file record names {} batch {b}, which the checkpoint does not have",
                        f.path, f.dataset
                    ),
                });
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_and_hidden_paths() {
        assert!(must_be_known(
            "g",
            "g/year=2015/month=01/day=01/part-b1-0.parquet"
        ));
        assert!(!must_be_known("g", "g/_tmp/part.parquet"));
        assert!(!must_be_known("g", "g/year=2015/x.crc"));
        assert!(must_be_known("g", "_quarantine/g/part-b00000001-q.parquet"));
        assert!(must_be_known(
            "g",
            "_quarantine/g/files/b00000001/g/a.json.gz"
        ));
        assert!(!must_be_known("g", "_staging/g/b1/part.parquet"));
    }
}
