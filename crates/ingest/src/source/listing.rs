//! Listing landing and deciding what is new.
//!
//! Layout contract: `<landing>/<dataset>/**/<file>`; the first directory level names the dataset. Ignored
//! (never read): names starting with `.` or `_`, and names ending in `.tmp`, `._COPYING_`, `.part`,
//! `.inprogress`, or containing `#` followed by digits (object_store's own staging names).
//!
//! Readiness: a gzip file is read only when its size and mtime have been stable for `settle_time` (a gzip
//! stream is only decodable when complete). So is a plain file (NDJSON/CSV) in `once` and `available-now`, whose
//! end then ends its last line (a just-copied CSV without a final newline lands whole in one run). In the tailing
//! modes a plain file that changed less than `settle_time` ago is read up to its last complete line only
//! (`is_final = false`).
//!
//! In `micro-batch` and `continuous` (`PlanOptions::tailing`) a plain file's unterminated last line is not a
//! record until the file has not changed for `partial_line_timeout` (much longer than `settle_time`: writers
//! pause mid-line), or was renamed into place; in `once` and `available-now` a settled file's end ends its last
//! line.
//!
//! Faults never stop a listing: a symlink loop, a symlink that leaves landing (unless `follow_symlinks`), an
//! unreadable directory or file, a FIFO or a vanished entry is logged once (a warning the first time this process
//! sees it, then at debug level) and skipped, and the rest of landing is listed (see [`super::walk`]).
//!
//! Against the checkpoint: a file with no record is new; one with the size and modification time of its record is
//! done (no read). Any other change re-hashes the prefix the record consumed ([`super::fingerprint::hash_prefix`])
//! and compares it with the record's `prefix_hash`: equal, a plain file is read from the bytes already consumed
//! (an append; a gzip file, read whole, is done); different (or the file got shorter), the file was rewritten:
//! a warning names it and the new version is read again from the start (dedup keeps bronze free of duplicates).
//! A record without a prefix hash (written by an older lander, or of a failed file) is judged as before: by its
//! first KiB and size.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::ObjectStoreExt;

use super::fingerprint::{
    fingerprint, kept_prefix, recalled_unchanged, remember_unchanged, FileFingerprint, PrefixHash,
};
use super::objects::list_objects;
use super::SourceError;
use crate::checkpoint::{CheckpointStore, FileRecord, FileStatus};
use crate::store::StoreLocation;

/// Why a file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Never seen.
    New,
    /// The bytes already consumed are unchanged and more follow: read the tail.
    Appended,
    /// Rewritten under the same path (the bytes already consumed changed): read the new version whole.
    Replaced,
}

/// A landing file (or its unread tail) to process.
#[derive(Debug, Clone)]
pub struct LandingFile {
    /// Dataset (first directory level).
    pub dataset: String,
    /// Path relative to the landing root.
    pub path: String,
    /// Object-store location.
    pub(crate) location: Path,
    /// Size at listing time; reading stops there.
    pub size: u64,
    /// Modification time at listing time.
    pub modified: DateTime<Utc>,
    /// Content fingerprint.
    pub(crate) fingerprint: String,
    /// Head hash.
    pub(crate) head_hash: String,
    /// Whether it is gzip (read whole).
    pub(crate) gzip: bool,
    /// Where reading starts.
    pub start_offset: u64,
    /// Lines already consumed before `start_offset`.
    pub(crate) start_line: u64,
    /// Whether the end of the listed size ends the last record.
    pub is_final: bool,
    /// The checkpoint record, if any.
    pub(crate) prior: Option<FileRecord>,
    /// Why it is read.
    pub change: Change,
    /// Limits and record policy to decode it with.
    pub(crate) limits: crate::decode::Limits,
    /// The file grew after its unterminated last line was committed as a record: the bytes up to the next
    /// newline continue that line.
    pub(crate) continues_line: bool,
    /// The hash of bytes `0..start_offset` (of nothing for a file read whole), continued while it is read.
    pub(crate) prefix: PrefixHash,
}

impl LandingFile {
    /// Bytes this file contributes to a batch.
    pub fn pending_bytes(&self) -> u64 {
        self.size - self.start_offset
    }
}

pub use super::names::{ignored_rule, is_ignored_name, is_ignored_path};

/// Options of one planning pass.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Settle time.
    pub settle_time: Duration,
    /// Ignore files older than this when the dataset has no checkpoint state yet.
    pub max_file_age: Option<Duration>,
    /// Newest first (else oldest first by path).
    pub latest_first: bool,
    /// Now.
    pub now: DateTime<Utc>,
    /// Follow symlinks whose target lies outside landing.
    pub follow_symlinks: bool,
    /// The mode tails growing files (`micro-batch`, `continuous`): an unterminated last line waits for
    /// `partial_line_timeout`, not `settle_time`.
    pub tailing: bool,
    /// See `tailing`.
    pub partial_line_timeout: Duration,
    /// Limits and record policy handed to the decoders.
    pub limits: crate::decode::Limits,
    /// This process is one of several workers: files another worker owns are left out before they are read
    /// ([`super::assign`]). `None`: every file.
    pub worker: Option<super::assign::WorkerSpec>,
}

/// Distinct entries of landing skipped by listings of this process (also `lander_listing_skipped_entries_total`).
static SKIPPED_ENTRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many distinct landing entries listings of this process have skipped (each counted once, however often
/// it is listed).
pub fn skipped_entries_total() -> u64 {
    SKIPPED_ENTRIES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Logs a listing fault: a warning the first time this process sees it, then at debug level, so that a daemon
/// listing every few seconds does not repeat the same warning forever; counts it once
/// ([`skipped_entries_total`]).
pub(crate) fn report_fault(dataset: &str, path: &str, reason: &str) {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let key = format!("{path}\u{0}{reason}");
    let first = SEEN
        .lock()
        .map(|mut g| g.get_or_insert_with(HashSet::new).insert(key))
        .unwrap_or(true);
    if first {
        SKIPPED_ENTRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::get()
            .listing_skipped
            .get_or_create(&crate::metrics::ds(dataset))
            .inc();
    }
    // A control character in a name (the reason it is skipped, often) would break the log line.
    let escape = |s: &str| {
        if s.chars().any(char::is_control) {
            s.escape_debug().to_string()
        } else {
            s.to_string()
        }
    };
    let (path, reason) = (escape(path), escape(reason));
    if first {
        tracing::warn!(dataset, %path, "skipped entry in landing: {reason}");
    } else {
        tracing::debug!(dataset, %path, "skipped entry in landing: {reason}");
    }
}

/// What `run`, `explain` and `checkpoint pending` say of a file whose modification time lies in the future: it
/// is not "settling" (it never settles by age until the clock reaches it).
pub const MODIFIED_IN_THE_FUTURE: &str = "modified in the future (a writer's clock ahead of this host's, or a time set by hand): a run after that time, plus the settle time, reads it";

/// The result of planning: what to read now, and what to look at again once it has settled.
#[derive(Debug, Default)]
pub struct Plan {
    /// Files (or tails) to read, in processing order.
    pub files: Vec<LandingFile>,
    /// Relative paths of files that are not ready yet (not settled).
    pub not_ready: Vec<String>,
    /// Entries that are never read as they are (a name no store path can hold, a symlink not followed, an
    /// unreadable file, ...): relative path and why. Each is also a warning and counted in
    /// `lander_listing_skipped_entries_total`.
    pub skipped: Vec<(String, String)>,
    /// Files listed but left to other workers (`PlanOptions::worker`).
    pub other_workers: usize,
}

impl Plan {
    fn add(&mut self, verdict: Readiness, rel: String) {
        match verdict {
            Readiness::Read(f) => self.files.push(*f),
            Readiness::NotReady { .. } => self.not_ready.push(rel),
            Readiness::Skip(SkipReason::Unreadable(reason)) => self.skipped.push((rel, reason)),
            Readiness::Skip(_) => {}
        }
    }
}

/// What a listing decides about one file.
#[derive(Debug)]
pub enum Readiness {
    /// Read it (or its tail) now.
    Read(Box<LandingFile>),
    /// Not settled yet (a gzip file, or a file rewritten in place, changed less than `settle_time` ago).
    NotReady {
        /// When it will have been stable for `settle_time`, if it does not change again.
        settles_at: DateTime<Utc>,
        /// Its modification time: later than now when a writer's clock is ahead (see [`MODIFIED_IN_THE_FUTURE`]).
        modified: DateTime<Utc>,
    },
    /// Nothing to read.
    Skip(SkipReason),
}

/// Why a listed file is not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Older than `max_file_age` when the checkpoint of its dataset was new.
    TooOld,
    /// Processed, and unchanged since.
    Unchanged,
    /// Deleted between the listing and its read.
    Vanished,
    /// Could not be read (tried again at the next listing).
    Unreadable(String),
}

/// What one listing looks at and with which rules: the dataset's landing files, its checkpoint records.
struct Scope<'a> {
    landing: &'a StoreLocation,
    checkpoint: &'a CheckpointStore,
    dataset: &'a str,
    /// The dataset has no committed batch yet (`max_file_age` applies).
    fresh_checkpoint: bool,
    opts: &'a PlanOptions,
}

/// Where a file stands against the clock: whether it has settled, and whether its end also ends its last line.
struct Clock {
    settled: bool,
    line_final: bool,
    settles_at: DateTime<Utc>,
}

impl Clock {
    fn of(meta: &object_store::ObjectMeta, renamed_in: bool, opts: &PlanOptions) -> Self {
        let settle = chrono::Duration::from_std(opts.settle_time).unwrap_or(chrono::Duration::MAX);
        // A file renamed into place is complete by the writer's own protocol: no need to wait for it to settle.
        let settled = renamed_in || meta.last_modified + settle <= opts.now;
        // Whether the end of a plain file also ends its last line (see the module docs).
        let line_final = if opts.tailing {
            let timeout = chrono::Duration::from_std(opts.partial_line_timeout)
                .unwrap_or(chrono::Duration::MAX);
            renamed_in || meta.last_modified + timeout <= opts.now
        } else {
            settled
        };
        let settles_at = meta
            .last_modified
            .checked_add_signed(settle)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        Clock {
            settled,
            line_final,
            settles_at,
        }
    }

    fn not_ready(&self, meta: &object_store::ObjectMeta) -> Readiness {
        Readiness::NotReady {
            settles_at: self.settles_at,
            modified: meta.last_modified,
        }
    }
}

/// Where reading a changed file starts.
struct Resume {
    change: Change,
    offset: u64,
    line: u64,
    prefix: PrefixHash,
    /// The bytes before `offset` end without a newline that was committed as a record's end.
    continues_line: bool,
}

/// Why object `rel` is skipped without reading it, if it is: too old for a new checkpoint, or unchanged since
/// it was last processed (`prior`).
fn quick_skip(
    scope: &Scope<'_>,
    meta: &object_store::ObjectMeta,
    rel: &str,
    prior: Option<&FileRecord>,
    clock: &Clock,
) -> Option<SkipReason> {
    let opts = scope.opts;
    if let (Some(age), None, true) = (opts.max_file_age, prior, scope.fresh_checkpoint) {
        if chrono::Duration::from_std(age).is_ok_and(|a| meta.last_modified + a < opts.now) {
            tracing::debug!(path = %rel, "older than max_file_age on a new checkpoint; ignored");
            return Some(SkipReason::TooOld);
        }
    }
    // Quick path: unchanged since it was last processed. The one exception is a growing file whose partial
    // last line was held back and which has now settled: its end now ends that line.
    if let Some(p) = prior {
        let untouched = p.size == meta.size && p.modified == meta.last_modified;
        let tail_now_final =
            p.status == FileStatus::Partial && clock.line_final && p.bytes_consumed < meta.size;
        if untouched && !tail_now_final {
            return Some(SkipReason::Unchanged);
        }
    }
    None
}

/// Fingerprints object `rel` (`Ok`), or why it is skipped (`Err`): it vanished, or it cannot be read.
async fn read_fingerprint(
    scope: &Scope<'_>,
    meta: &object_store::ObjectMeta,
    rel: &str,
) -> Result<Result<FileFingerprint, SkipReason>, SourceError> {
    match fingerprint(scope.landing, &meta.location, rel, meta.size).await {
        Ok(fp) => Ok(Ok(fp)),
        Err(SourceError::Read {
            source: object_store::Error::NotFound { .. },
            ..
        }) => {
            tracing::info!(path = %rel, "file vanished before it was read; skipped");
            Ok(Err(SkipReason::Vanished))
        }
        Err(SourceError::Read { source, .. }) => {
            // Unreadable (permissions, I/O error): skipped now, tried again at the next listing.
            let reason = format!("cannot read it: {source}");
            report_fault(scope.dataset, rel, &reason);
            Ok(Err(SkipReason::Unreadable(reason)))
        }
        Err(e) => Err(e),
    }
}

/// Decides what to do with one listed object.
async fn evaluate(
    scope: &Scope<'_>,
    meta: object_store::ObjectMeta,
    rel: String,
    renamed_in: bool,
) -> Result<Readiness, SourceError> {
    let (dataset, opts) = (scope.dataset, scope.opts);
    let clock = Clock::of(&meta, renamed_in, opts);
    let prior = scope.checkpoint.file(dataset, &rel)?;
    if let Some(reason) = quick_skip(scope, &meta, &rel, prior.as_ref(), &clock) {
        return Ok(Readiness::Skip(reason));
    }
    let fp = match read_fingerprint(scope, &meta, &rel).await? {
        Ok(fp) => fp,
        Err(skip) => return Ok(Readiness::Skip(skip)),
    };
    let gzip = fp.gzip || rel.ends_with(".gz");
    // A gzip stream decodes only when complete. In a bounded run a plain file that is still changing waits to
    // settle too (the run waits for it, see `modes`), so that its end ends its last line: read now, a just-copied
    // CSV without a final newline would leave its last row for a second run. Tailing modes read up to the last
    // complete line instead.
    if !clock.settled && (gzip || !opts.tailing) {
        return Ok(clock.not_ready(&meta));
    }
    let resume = match &prior {
        None => Resume {
            change: Change::New,
            offset: 0,
            line: 0,
            prefix: PrefixHash::new(),
            continues_line: false,
        },
        Some(p) => match resume(scope, &meta, &rel, p, &fp, gzip, &clock).await? {
            Ok(r) => r,
            Err(verdict) => return Ok(verdict),
        },
    };
    Ok(Readiness::Read(Box::new(LandingFile {
        dataset: dataset.to_string(),
        path: rel,
        location: meta.location,
        size: meta.size,
        modified: meta.last_modified,
        fingerprint: fp.fingerprint,
        head_hash: fp.head_hash,
        gzip,
        start_offset: resume.offset,
        start_line: resume.line,
        is_final: if gzip {
            clock.settled
        } else {
            clock.line_final
        },
        prior,
        change: resume.change,
        limits: opts.limits,
        continues_line: resume.continues_line,
        prefix: resume.prefix,
    })))
}

/// A file processed before (`p`) that changed: where reading it resumes (`Ok`), or what to do instead (`Err`:
/// skip it as unchanged, or wait for it to settle).
async fn resume(
    scope: &Scope<'_>,
    meta: &object_store::ObjectMeta,
    rel: &str,
    p: &FileRecord,
    fp: &FileFingerprint,
    gzip: bool,
    clock: &Clock,
) -> Result<Result<Resume, Readiness>, SourceError> {
    let (landing, dataset) = (scope.landing, scope.dataset);
    let nothing_new = meta.size == p.bytes_consumed
        && (gzip || !(clock.line_final && p.status == FileStatus::Partial));
    if nothing_new && recalled_unchanged(landing, rel, meta, p) {
        return Ok(Err(Readiness::Skip(SkipReason::Unchanged)));
    }
    let kept = match kept_prefix(landing, meta, rel, p, gzip, fp).await {
        Ok(k) => k,
        Err(e) => return prefix_read_fault(dataset, rel, e).map(Err),
    };
    let Some(prefix) = kept else {
        if !clock.settled {
            // Rewritten in place and still changing: wait until it settles.
            return Ok(Err(clock.not_ready(meta)));
        }
        tracing::warn!(dataset, path = %rel, consumed = p.bytes_consumed, size = meta.size, "file rewritten after it was processed (the bytes already read changed): ingesting the new version whole (each record is checked against the keys bronze holds for its event day and dropped on a match; the batch line counts records not checked)");
        return Ok(Ok(Resume {
            change: Change::Replaced,
            offset: 0,
            line: 0,
            prefix: PrefixHash::new(),
            continues_line: false,
        }));
    };
    // A gzip file is read whole: its consumed prefix is all of it, so a kept prefix is no change. Otherwise a
    // kept prefix with nothing after it was touched (same bytes, new modification time): nothing new.
    if gzip || nothing_new {
        remember_unchanged(landing, rel, meta, p);
        return Ok(Err(Readiness::Skip(SkipReason::Unchanged)));
    }
    // (An emptied file, now refilled, has no last line.)
    let continues_line = p.status == FileStatus::Ok
        && p.bytes_consumed > 0
        && !ends_a_line(landing, &meta.location, fp, p.bytes_consumed).await;
    if continues_line {
        tracing::warn!(dataset, path = %rel, line = p.lines_consumed, "file grew after its last line, which had no newline, was committed as a record: the bytes up to the next newline continue that line, so they are quarantined as its continuation instead of being read as a new record");
    }
    Ok(Ok(Resume {
        change: Change::Appended,
        offset: p.bytes_consumed,
        line: p.lines_consumed,
        prefix,
        continues_line,
    }))
}

/// A read of the consumed prefix failed: vanished files are skipped, unreadable ones skipped and reported (tried
/// again at the next listing).
fn prefix_read_fault(dataset: &str, rel: &str, e: SourceError) -> Result<Readiness, SourceError> {
    match e {
        SourceError::Read {
            source: object_store::Error::NotFound { .. },
            ..
        } => {
            tracing::info!(path = %rel, "file vanished before it was read; skipped");
            Ok(Readiness::Skip(SkipReason::Vanished))
        }
        SourceError::Read { source, .. } => {
            let reason = format!("cannot read it: {source}");
            report_fault(dataset, rel, &reason);
            Ok(Readiness::Skip(SkipReason::Unreadable(reason)))
        }
        e => Err(e),
    }
}

/// Whether the byte before `end` of a plain file ends a line (`\n` or `\r`); unknown counts as yes.
async fn ends_a_line(
    landing: &StoreLocation,
    location: &Path,
    fp: &super::fingerprint::FileFingerprint,
    end: u64,
) -> bool {
    let last = match fp.head.get(end as usize - 1) {
        Some(b) => *b,
        None => {
            let opts = object_store::GetOptions {
                range: Some(object_store::GetRange::Bounded(end - 1..end)),
                ..Default::default()
            };
            let got = match landing.store.get_opts(location, opts).await {
                Ok(g) => g.bytes().await,
                Err(e) => Err(e),
            };
            match got {
                Ok(b) if !b.is_empty() => b[0],
                _ => return true,
            }
        }
    };
    matches!(last, b'\n' | b'\r')
}

fn order(plan: &mut Plan, opts: &PlanOptions) {
    if opts.latest_first {
        plan.files.sort_by(|a, b| {
            b.modified
                .cmp(&a.modified)
                .then_with(|| a.path.cmp(&b.path))
        });
    } else {
        plan.files.sort_by(|a, b| a.path.cmp(&b.path));
    }
}

/// Lists `<landing>/<dataset>/` and returns what to read, in processing order (by path, or newest first).
///
/// Files that vanish while being listed or fingerprinted are skipped with a log line.
///
/// # Errors
/// [`SourceError::Checkpoint`]. Listing faults are logged and skipped, never returned.
pub async fn plan_dataset(
    landing: &StoreLocation,
    checkpoint: &CheckpointStore,
    dataset: &str,
    opts: &PlanOptions,
) -> Result<Vec<LandingFile>, SourceError> {
    Ok(plan_listing(landing, checkpoint, dataset, opts)
        .await?
        .files)
}

/// [`plan_dataset`] with the paths that are not ready yet.
///
/// # Errors
/// As [`plan_dataset`].
pub async fn plan_listing(
    landing: &StoreLocation,
    checkpoint: &CheckpointStore,
    dataset: &str,
    opts: &PlanOptions,
) -> Result<Plan, SourceError> {
    let scope = Scope {
        landing,
        checkpoint,
        dataset,
        fresh_checkpoint: checkpoint.next_batch_id(dataset)? == 1,
        opts,
    };
    let (listed, skipped) = list_objects(landing, dataset, opts.follow_symlinks).await;
    for (path, reason) in &skipped {
        report_fault(dataset, path, reason);
    }
    let mut plan = Plan {
        skipped,
        ..Plan::default()
    };
    for meta in listed {
        let Some(rel) = landing.relative(&meta.location) else {
            continue;
        };
        if is_ignored_path(&rel) || !rel.contains('/') {
            continue;
        }
        // Another worker's file: not fingerprinted, not read (the listing is the only shared cost).
        if opts.worker.is_some_and(|w| !w.owns(&rel)) {
            plan.other_workers += 1;
            continue;
        }
        let verdict = evaluate(&scope, meta, rel.clone(), false).await?;
        plan.add(verdict, rel.clone());
    }
    if !plan.not_ready.is_empty() {
        tracing::debug!(
            dataset,
            files = plan.not_ready.len(),
            "files not settled yet; they will be read later"
        );
    }
    order(&mut plan, opts);
    let m = crate::metrics::get();
    let l = crate::metrics::ds(dataset);
    m.backlog_files
        .get_or_create(&l)
        .set((plan.files.len() + plan.not_ready.len()) as i64);
    m.backlog_bytes
        .get_or_create(&l)
        .set(plan.files.iter().map(|f| f.pending_bytes() as i64).sum());
    Ok(plan)
}

/// Like [`plan_dataset`] for just these relative paths (from filesystem events); `renamed_in` lists those that
/// were renamed into place (ready at once). Paths that do not exist (any more) are skipped.
///
/// # Errors
/// [`SourceError::Checkpoint`]. Unreadable paths are logged and skipped.
pub(crate) async fn plan_paths(
    landing: &StoreLocation,
    checkpoint: &CheckpointStore,
    dataset: &str,
    paths: &std::collections::BTreeSet<String>,
    renamed_in: &std::collections::BTreeSet<String>,
    opts: &PlanOptions,
) -> Result<Plan, SourceError> {
    let fresh_checkpoint = checkpoint.next_batch_id(dataset)? == 1;
    let mut plan = Plan::default();
    for rel in paths {
        if is_ignored_path(rel) || !rel.starts_with(&format!("{dataset}/")) {
            continue;
        }
        if opts.worker.is_some_and(|w| !w.owns(rel)) {
            plan.other_workers += 1;
            continue;
        }
        let renamed = renamed_in.contains(rel);
        let verdict = evaluate_path(
            landing,
            checkpoint,
            dataset,
            rel,
            renamed,
            fresh_checkpoint,
            opts,
        )
        .await?;
        if let Some(v) = verdict {
            plan.add(v, rel.clone());
        }
    }
    order(&mut plan, opts);
    Ok(plan)
}

/// Decides about one path relative to landing as a listing would ([`plan_paths`] per path; `lander explain`).
/// `None` when it does not exist, is a directory, or is left out by the symlink and file-type rules (logged).
/// Ignored names are not checked here: see [`is_ignored_path`] and [`ignored_rule`]. `fresh_checkpoint`: the
/// dataset has no committed batch yet (`max_file_age` applies).
///
/// # Errors
/// [`SourceError::Checkpoint`]. An unreadable file is [`SkipReason::Unreadable`], not an error.
pub async fn evaluate_path(
    landing: &StoreLocation,
    checkpoint: &CheckpointStore,
    dataset: &str,
    rel: &str,
    renamed: bool,
    fresh_checkpoint: bool,
    opts: &PlanOptions,
) -> Result<Option<Readiness>, SourceError> {
    if let Some(root) = &landing.local_root {
        // The same symlink and file-type rules as a full listing.
        match super::walk::check_local_path(root, rel, opts.follow_symlinks) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(skip) => {
                let reason = skip.to_string();
                report_fault(dataset, rel, &reason);
                return Ok(Some(Readiness::Skip(SkipReason::Unreadable(reason))));
            }
        }
    }
    let location = match landing.exact_path(rel) {
        Ok(l) => l,
        Err(e) => {
            let reason = format!("{e}; not read (rename the file)");
            report_fault(dataset, rel, &reason);
            return Ok(Some(Readiness::Skip(SkipReason::Unreadable(reason))));
        }
    };
    let meta = match landing.store.head(&location).await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        // A directory (new dataset or sub-directory): its files get their own events or the next listing.
        Err(_)
            if landing
                .local_root
                .as_ref()
                .is_some_and(|r| r.join(rel).is_dir()) =>
        {
            return Ok(None)
        }
        Err(source) => {
            let reason = format!("cannot read its metadata: {source}");
            report_fault(dataset, rel, &reason);
            return Ok(Some(Readiness::Skip(SkipReason::Unreadable(reason))));
        }
    };
    let scope = Scope {
        landing,
        checkpoint,
        dataset,
        fresh_checkpoint,
        opts,
    };
    evaluate(&scope, meta, rel.to_string(), renamed)
        .await
        .map(Some)
}

/// Splits files into batches of at most `max_files` files and `max_bytes` pending bytes (a single larger file
/// makes a batch of its own).
pub(crate) fn split_batches(
    files: Vec<LandingFile>,
    max_files: usize,
    max_bytes: u64,
) -> Vec<Vec<LandingFile>> {
    let mut out: Vec<Vec<LandingFile>> = Vec::new();
    let mut cur: Vec<LandingFile> = Vec::new();
    let mut bytes = 0u64;
    for f in files {
        let b = f.pending_bytes();
        if !cur.is_empty() && (cur.len() >= max_files || bytes + b > max_bytes) {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        bytes += b;
        cur.push(f);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}
