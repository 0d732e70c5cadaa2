//! Verify: cross-checks what the commit protocol recorded in the checkpoint against what bronze holds.
//!
//! Read-only. For each dataset it checks that
//! 1. every committed output exists in bronze with its recorded size, and (unless skipped) the row count in its
//!    Parquet footer equals the recorded one;
//! 2. every visible Parquet part in bronze, and every published quarantine file, is known to the checkpoint (no
//!    orphans; the final names of an in-flight batch count as known);
//! 3. (Delta) the checkpoint agrees with the logs of the data and quarantine tables, and every file a log
//!    references is in bronze (`super::verify_table`);
//! 4. no landing file was ingested twice (overlapping byte ranges that both wrote rows, unless the file was
//!    replaced since), and no file record names a batch the checkpoint does not have.
//!
//! `lander checkpoint verify` prints the [`Report`]; the crash tests run the same checks after every kill.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use futures::StreamExt;
use object_store::ObjectStoreExt;
use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
use parquet::file::FOOTER_SIZE;
use serde::Serialize;

use super::context::blocking;
use crate::checkpoint::{BatchInput, BatchRecord, CheckpointError, CheckpointStore, FileRecord};
use crate::store::StoreLocation;

/// Bronze objects whose size (and Parquet footer) are checked at once.
const VERIFY_CONCURRENCY: usize = 8;

/// Why verification could not run to the end (problems it finds are in the [`Report`], not errors).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The checkpoint could not be read.
    #[error("cannot read the checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// A Delta table's log could not be read.
    #[error(transparent)]
    Table(#[from] crate::table::TableError),
    /// Bronze could not be listed.
    #[error("cannot list {location} in bronze: {source}")]
    List {
        /// The listed location.
        location: String,
        /// The store's error.
        source: object_store::Error,
    },
}

/// What kind of inconsistency a [`Problem`] is (`kind` in `verify --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A committed output is not in bronze.
    Missing,
    /// A committed output has another size than recorded.
    SizeMismatch,
    /// A committed Parquet part holds another row count than recorded.
    RowCountMismatch,
    /// A committed output cannot be read (or its footer cannot be decoded).
    Unreadable,
    /// A file in bronze that no committed batch published.
    Orphan,
    /// A landing file whose bytes two batches both wrote rows from.
    IngestedTwice,
    /// A file record naming a batch the checkpoint does not have.
    UnknownBatch,
    /// Delta: a committed data or quarantine part that its table's log does not reference, or a batch that
    /// quarantined rows whose `txn` the quarantine log lacks (invisible to Delta readers).
    NotInTable,
    /// Delta: the table's `txn` says this checkpoint committed a later batch than the checkpoint knows.
    TableAhead,
    /// Delta: a file the data or quarantine log references is not in bronze (Delta readers fail on it).
    NotInStorage,
    /// The checkpoint is bound to another bronze, or to another Delta table (`super::binding`).
    OtherLocation,
}

/// One inconsistency between the checkpoint and bronze.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// What kind.
    pub kind: ProblemKind,
    /// Dataset.
    pub dataset: String,
    /// The bronze path (relative to bronze) or, for `ingested_twice`/`unknown_batch`, the landing path.
    pub path: String,
    /// The batch concerned, when one is.
    pub batch: Option<u64>,
    /// A sentence saying what is wrong.
    pub message: String,
}

/// The outcome of [`verify`] (printed as is by `verify --json`).
#[derive(Debug, Serialize)]
pub struct Report {
    /// True when no problem was found.
    pub consistent: bool,
    /// Datasets checked.
    pub datasets: Vec<String>,
    /// Committed output files checked.
    pub outputs_checked: u64,
    /// Whether Parquet footers were read to check row counts.
    pub row_counts_checked: bool,
    /// Files listed in bronze for the orphan check.
    pub bronze_files_listed: u64,
    /// Every problem found, sorted by dataset, path and kind.
    pub problems: Vec<Problem>,
    /// Observations that are not problems (an in-flight batch, a snapshot).
    pub notes: Vec<String>,
}

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// One dataset; all datasets with state or a directory in bronze when `None`.
    pub dataset: Option<String>,
    /// Read each committed Parquet part's footer to compare row counts.
    pub read_rows: bool,
}

/// What the checkpoint says about bronze, for one dataset.
struct Known {
    /// Committed outputs: path -> (batch, rows, bytes).
    outputs: BTreeMap<String, (u64, u64, u64)>,
    /// Final names of an uncommitted batch (published or about to be).
    in_flight: BTreeSet<String>,
    /// `b<id>-<token>`: names carrying it belong to the uncommitted batch (Delta writes parts in place).
    in_flight_mark: Option<String>,
}

/// A committed output to look for in bronze.
struct Expected {
    dataset: String,
    path: String,
    batch: u64,
    rows: u64,
    bytes: u64,
}

/// Checks `checkpoint` against `bronze`. When `checkpoint` is a snapshot of a store a daemon holds, files that
/// look orphaned are checked again against a fresh snapshot (the daemon may have committed them since).
///
/// # Errors
/// [`VerifyError`] when the checkpoint cannot be read or bronze cannot be listed.
pub async fn verify(
    checkpoint: CheckpointStore,
    bronze: &StoreLocation,
    options: &VerifyOptions,
) -> Result<Report, VerifyError> {
    let datasets = datasets_to_check(&checkpoint, bronze, options).await?;
    let s = checkpoint.clone();
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
    .await?;

    // 1. Every committed output exists with its recorded size (and row count, from the Parquet footer).
    let (outputs_checked, mut problems) = check_outputs(bronze, &known, options.read_rows).await;

    // 1b. Delta: the checkpoint against the logs of the data and quarantine tables (`super::verify_table`).
    // Files a log references are known (another checkpoint may append to the same table).
    let mut in_tables: HashMap<String, BTreeSet<String>> = HashMap::new();
    for ds in &datasets {
        let t = super::verify_table::check_tables(&checkpoint, bronze, ds, &batches).await?;
        if t.is_delta {
            problems.extend(t.problems);
            in_tables.insert(ds.clone(), t.files);
        }
    }

    // 2. No Parquet file in bronze (or file in its quarantine) unknown to the checkpoint; with Delta, every file a
    // log references is in bronze.
    let listed = check_listing(
        &checkpoint,
        bronze,
        &datasets,
        &known,
        &in_tables,
        &mut problems,
    )
    .await?;

    // 3. No landed file ingested twice, and no file record naming a batch that does not exist.
    problems.extend(twice_problems(&files, &batches));
    if checkpoint.is_snapshot() {
        notes.push("read from a snapshot: a running lander holds the checkpoint".into());
    }

    problems.sort_by(|x, y| (&x.dataset, &x.path, x.kind).cmp(&(&y.dataset, &y.path, y.kind)));
    Ok(Report {
        consistent: problems.is_empty(),
        datasets,
        outputs_checked,
        row_counts_checked: options.read_rows,
        bronze_files_listed: listed,
        problems,
        notes,
    })
}

/// The dataset asked for, or every dataset the checkpoint or bronze (or its quarantine) knows.
async fn datasets_to_check(
    checkpoint: &CheckpointStore,
    bronze: &StoreLocation,
    options: &VerifyOptions,
) -> Result<Vec<String>, VerifyError> {
    if let Some(d) = &options.dataset {
        return Ok(vec![d.clone()]);
    }
    let s = checkpoint.clone();
    let mut set: BTreeSet<String> = blocking(move || s.datasets()).await?.into_iter().collect();
    set.extend(
        child_dirs(bronze, "")
            .await?
            .into_iter()
            .filter(|d| !d.starts_with('_') && !d.starts_with('.')),
    );
    set.extend(child_dirs(bronze, "_quarantine").await?);
    Ok(set.into_iter().collect())
}

/// Checks every committed output (size, and rows when `read_rows`), a few at a time: how many, and the problems.
async fn check_outputs(
    bronze: &StoreLocation,
    known: &HashMap<String, Known>,
    read_rows: bool,
) -> (u64, Vec<Problem>) {
    let expected: Vec<Expected> = known
        .iter()
        .flat_map(|(ds, k)| {
            k.outputs.iter().map(|(p, &(batch, rows, bytes))| Expected {
                dataset: ds.clone(),
                path: p.clone(),
                batch,
                rows,
                bytes,
            })
        })
        .collect();
    let checked = expected.len() as u64;
    let problems = futures::stream::iter(expected)
        .map(|e| async move { check_output(bronze, e, read_rows).await })
        .buffer_unordered(VERIFY_CONCURRENCY)
        .filter_map(|p| async move { p })
        .collect()
        .await;
    (checked, problems)
}

/// Lists each dataset's bronze and quarantine files: those neither the checkpoint nor a table log knows are
/// orphans; files a table log references that the listing lacks are dangling. Returns how many files it listed.
async fn check_listing(
    checkpoint: &CheckpointStore,
    bronze: &StoreLocation,
    datasets: &[String],
    known: &HashMap<String, Known>,
    in_tables: &HashMap<String, BTreeSet<String>>,
    problems: &mut Vec<Problem>,
) -> Result<u64, VerifyError> {
    let mut listed = 0u64;
    let mut orphans: Vec<(String, String)> = Vec::new();
    for ds in datasets {
        let mut all = BTreeSet::new();
        for prefix in [ds.clone(), format!("_quarantine/{ds}")] {
            for rel in list_objects(bronze, &prefix).await? {
                all.insert(rel.clone());
                if !must_be_known(ds, &rel) {
                    continue;
                }
                listed += 1;
                if !is_known(known, ds, &rel)
                    && !in_tables.get(ds).is_some_and(|t| t.contains(&rel))
                {
                    orphans.push((ds.clone(), rel));
                }
            }
        }
        if let Some(files) = in_tables.get(ds) {
            let own = |f: &str| known.get(ds).is_some_and(|k| k.outputs.contains_key(f));
            problems.extend(super::verify_table::dangling(ds, files, &all, own));
        }
    }
    if !orphans.is_empty() && checkpoint.is_snapshot() {
        // The daemon may have published and committed since the snapshot: check again against a fresh one.
        let dir = checkpoint.dir().to_path_buf();
        let ds_list = datasets.to_vec();
        let (fresh, _) = blocking(move || {
            let s = CheckpointStore::open_snapshot(&dir)?;
            known_outputs(&s, &ds_list)
        })
        .await?;
        orphans.retain(|(ds, rel)| !is_known(&fresh, ds, rel));
    }
    problems.extend(orphans.into_iter().map(|(ds, rel)| Problem {
        kind: ProblemKind::Orphan,
        message: format!(
            "{rel}: in bronze but unknown to the checkpoint (orphan: no committed batch of {ds} published it)"
        ),
        dataset: ds,
        path: rel,
        batch: None,
    }));
    Ok(listed)
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
            in_flight_mark: None,
        };
        for b in store.batches(Some(ds))? {
            for o in b.outputs {
                k.outputs.insert(o.path, (b.id, o.rows, o.bytes));
            }
        }
        if let Some(intent) = store.intent(ds)? {
            let (id, state) = (intent.id, intent.state);
            notes.push(if store.is_snapshot() {
                format!("{ds}: batch {id} is in flight ({state:?})")
            } else {
                format!("{ds}: batch {id} was interrupted ({state:?}); the next run rolls it back")
            });
            if !intent.token.is_empty() {
                k.in_flight_mark = Some(format!("b{:08}-{}", intent.id, intent.token));
            }
            k.in_flight.extend(intent.finals);
        }
        out.insert(ds.clone(), k);
    }
    Ok((out, notes))
}

fn is_known(known: &HashMap<String, Known>, ds: &str, path: &str) -> bool {
    known.get(ds).is_some_and(|k| {
        k.outputs.contains_key(path)
            || k.in_flight.contains(path)
            || k.in_flight_mark
                .as_ref()
                .is_some_and(|m| path.contains(m.as_str()))
    })
}

fn list_error(bronze: &StoreLocation, prefix: &str, source: object_store::Error) -> VerifyError {
    VerifyError::List {
        location: bronze.describe(prefix),
        source,
    }
}

/// Top-level directory names below `prefix` in bronze.
async fn child_dirs(bronze: &StoreLocation, prefix: &str) -> Result<Vec<String>, VerifyError> {
    let p = bronze.path(prefix);
    match bronze.store.list_with_delimiter(Some(&p)).await {
        Ok(l) => Ok(l
            .common_prefixes
            .iter()
            .filter_map(|c| c.filename().map(str::to_string))
            .collect()),
        Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(list_error(bronze, prefix, e)),
    }
}

/// Every object below `prefix` in bronze, as a path relative to bronze.
async fn list_objects(bronze: &StoreLocation, prefix: &str) -> Result<Vec<String>, VerifyError> {
    let p = bronze.path(prefix);
    let mut stream = bronze.store.list(Some(&p));
    let mut out = Vec::new();
    while let Some(meta) = stream.next().await {
        match meta {
            Ok(m) => out.extend(bronze.relative(&m.location)),
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(list_error(bronze, prefix, e)),
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

async fn check_output(bronze: &StoreLocation, e: Expected, read_rows: bool) -> Option<Problem> {
    let Expected {
        dataset,
        path,
        batch,
        rows,
        bytes,
    } = e;
    let problem = |kind, message| {
        Some(Problem {
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
                ProblemKind::Missing,
                format!(
                    "{path}: missing from bronze (committed by {dataset} batch {batch} with {rows} rows, {bytes} bytes)"
                ),
            )
        }
        Err(e) => {
            return problem(
                ProblemKind::Unreadable,
                format!("{path}: cannot be read ({dataset} batch {batch}): {e}"),
            )
        }
    };
    if meta.size != bytes {
        return problem(
            ProblemKind::SizeMismatch,
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
            ProblemKind::RowCountMismatch,
            format!(
                "{path}: {found} rows in its Parquet footer, the checkpoint recorded {rows} ({dataset} batch {batch})"
            ),
        ),
        Err(e) => problem(
            ProblemKind::Unreadable,
            format!("{path}: cannot read its Parquet footer ({dataset} batch {batch}): {e}"),
        ),
    }
}

/// Bytes read from the end of a Parquet file at first: the footer of a bronze part (a few row groups) fits.
const FOOTER_PREFETCH_BYTES: u64 = 64 << 10;

/// Why the footer of a committed Parquet file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FooterError {
    /// Shorter than the 8-byte footer itself.
    #[error("{size} bytes is too short for a Parquet file")]
    TooShort {
        /// The file's size.
        size: u64,
    },
    /// The footer's metadata length does not fit in the file.
    #[error("footer claims {meta_len} bytes of metadata in a {size}-byte file")]
    BadLength {
        /// Metadata bytes the footer claims.
        meta_len: u64,
        /// The file's size.
        size: u64,
    },
    /// The store answered a range read with fewer bytes than asked for.
    #[error("the store returned {got} bytes for a {wanted}-byte range read")]
    ShortRead {
        /// Bytes returned.
        got: usize,
        /// Bytes asked for.
        wanted: u64,
    },
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

/// The row count in the footer of the Parquet file at `location`.
async fn footer_rows(
    bronze: &StoreLocation,
    location: &object_store::path::Path,
    size: u64,
) -> Result<u64, FooterError> {
    let rows = footer_metadata(bronze, location, size)
        .await?
        .file_metadata()
        .num_rows();
    u64::try_from(rows).map_err(|_| FooterError::NegativeRows(rows))
}

/// The metadata in the footer of the Parquet file at `location` of `size` bytes (one range read, two for a
/// large footer).
pub(super) async fn footer_metadata(
    bronze: &StoreLocation,
    location: &object_store::path::Path,
    size: u64,
) -> Result<parquet::file::metadata::ParquetMetaData, FooterError> {
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
    Ok(ParquetMetaDataReader::decode_metadata(metadata)?)
}

/// Overlapping reads of one landing file that both wrote rows, unless the file was replaced since (a new
/// version is read again on purpose); and file records naming missing batches.
///
/// A re-read that wrote no rows (e.g. after `reset`, when dedup dropped every record) duplicates nothing, so
/// it is not a problem. Appended tails are read as disjoint byte ranges.
fn twice_problems(files: &[FileRecord], batches: &[BatchRecord]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let records: HashMap<(&str, &str), &FileRecord> = files
        .iter()
        .map(|f| ((f.dataset.as_str(), f.path.as_str()), f))
        .collect();
    let ids: HashSet<(&str, u64)> = batches.iter().map(|b| (b.dataset.as_str(), b.id)).collect();
    let mut reads: BTreeMap<(&str, &str), Vec<(u64, &BatchInput)>> = BTreeMap::new();
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
                if overlap && r1.counts.rows > 0 && r2.counts.rows > 0 {
                    problems.push(Problem {
                        kind: ProblemKind::IngestedTwice,
                        dataset: ds.to_string(),
                        path: path.to_string(),
                        batch: Some(*b2),
                        message: format!(
                            "{path}: landing file ingested twice: {ds} batch {b1} read bytes {}..{} ({} rows) and batch {b2} read bytes {}..{} ({} rows)",
                            r1.start, r1.end, r1.counts.rows, r2.start, r2.end, r2.counts.rows
                        ),
                    });
                }
            }
        }
    }
    for f in files {
        for b in &f.batches {
            if !ids.contains(&(f.dataset.as_str(), *b)) {
                problems.push(Problem {
                    kind: ProblemKind::UnknownBatch,
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
