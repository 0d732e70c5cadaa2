//! File identity: a cheap fingerprint of both ends, and the hash of the consumed prefix.
//!
//! A fingerprint is xxh3-64 over the first KiB, the last KiB and the size (shown by `explain`, and the fallback
//! identity of checkpoint records written before prefix hashes existed). The identity that decides append vs
//! rewrite is [`PrefixHash`]: xxh3-128 of bytes `0..bytes_consumed`, computed while the file is read
//! ([`ConsumedHasher`]) and checked again ([`hash_prefix`]) when the file's size or modification time changes.
//! A change that keeps the prefix is an append; any other change is a new version. Identity never uses inodes,
//! which HDFS and S3 do not have.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange};

use super::SourceError;
use crate::checkpoint::{FileRecord, FileStatus};
use crate::store::StoreLocation;

/// Bytes hashed at each end of a file.
pub(crate) const FINGERPRINT_BYTES: u64 = 1024;

/// The identity of a file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFingerprint {
    /// xxh3-64 of head, tail and size, hex.
    pub fingerprint: String,
    /// xxh3-64 of the head, hex.
    pub head_hash: String,
    /// Whether the content starts with the gzip magic bytes.
    pub gzip: bool,
    /// The first `min(size, FINGERPRINT_BYTES)` bytes.
    pub(crate) head: bytes::Bytes,
}

impl FileFingerprint {
    /// The head hash over the first `len` bytes only: compares with a record made when the file was `len` bytes
    /// long (a small file that has grown since).
    pub(crate) fn head_hash_of_prefix(&self, len: u64) -> String {
        let n = (len as usize).min(self.head.len());
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&self.head[..n]))
    }
}

/// Computes the fingerprint of the first `size` bytes of `location` (two small range reads).
///
/// # Errors
/// [`SourceError::Read`] (including not-found when the file vanished).
pub async fn fingerprint(
    landing: &StoreLocation,
    location: &Path,
    rel: &str,
    size: u64,
) -> Result<FileFingerprint, SourceError> {
    let read = |range: std::ops::Range<u64>| async move {
        if range.is_empty() {
            return Ok(bytes::Bytes::new());
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..Default::default()
        };
        let r = landing.store.get_opts(location, opts).await;
        match r {
            Ok(r) => r.bytes().await,
            Err(e) => Err(e),
        }
        .map_err(|source| SourceError::Read {
            path: rel.to_string(),
            source,
        })
    };
    let head = read(0..size.min(FINGERPRINT_BYTES)).await?;
    let tail = if size > FINGERPRINT_BYTES {
        read(
            size.saturating_sub(FINGERPRINT_BYTES)
                .max(FINGERPRINT_BYTES)..size,
        )
        .await?
    } else {
        bytes::Bytes::new()
    };
    let mut fp = of_parts(&head, &tail, size);
    fp.head = head;
    Ok(fp)
}

/// The fingerprint of a file given its head and tail bytes.
pub(crate) fn of_parts(head: &[u8], tail: &[u8], size: u64) -> FileFingerprint {
    let head_hash = xxhash_rust::xxh3::xxh3_64(head);
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(head);
    h.update(tail);
    h.update(&size.to_le_bytes());
    FileFingerprint {
        fingerprint: format!("{:016x}", h.digest()),
        head_hash: format!("{head_hash:016x}"),
        gzip: head.starts_with(&[0x1f, 0x8b]),
        head: bytes::Bytes::copy_from_slice(head),
    }
}

/// The running xxh3-128 hash of a file's first [`PrefixHash::len`] bytes.
#[derive(Clone)]
pub struct PrefixHash {
    state: xxhash_rust::xxh3::Xxh3,
    len: u64,
}

impl Default for PrefixHash {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PrefixHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrefixHash({} bytes, {})", self.len, self.hex())
    }
}

impl PrefixHash {
    /// The hash of no bytes.
    pub(crate) fn new() -> Self {
        Self {
            state: xxhash_rust::xxh3::Xxh3::new(),
            len: 0,
        }
    }

    /// Adds the next bytes of the file.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.state.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// How many bytes are hashed.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The digest as stored in the checkpoint: 32 hex digits.
    pub fn hex(&self) -> String {
        format!("{:032x}", self.state.digest128())
    }
}

/// Bytes after the last newline that [`ConsumedHasher`] holds back, at most: a reader stops at a record
/// boundary, which is a line end except for an unterminated last line (held back while a file grows) or a
/// quoted CSV field spanning lines. A longer held-back tail makes [`ConsumedHasher::at`] answer `None`.
const MAX_HELD_BACK_BYTES: usize = 1 << 20;

/// Hashes a file as it is read, and answers the hash of the prefix a decoder consumed, which ends at a record
/// boundary at or before the last byte read (known only once decoding ended).
///
/// Everything up to the last newline read is folded into the running hash; the bytes after it are held (at most
/// `MAX_HELD_BACK_BYTES`) until the next newline, so the hash at any end offset from the last newline on can be
/// computed without reading the file again.
#[derive(Debug, Clone)]
pub(crate) struct ConsumedHasher {
    folded: PrefixHash,
    held: Vec<u8>,
}

impl ConsumedHasher {
    /// Continues `prefix` (the hash of the bytes before the first byte this reader reads).
    pub(crate) fn new(prefix: PrefixHash) -> Self {
        Self {
            folded: prefix,
            held: Vec::new(),
        }
    }

    /// Adds the next bytes read.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        match chunk.iter().rposition(|b| *b == b'\n') {
            Some(p) => {
                self.folded.update(&self.held);
                self.folded.update(&chunk[..=p]);
                self.held.clear();
                self.held.extend_from_slice(&chunk[p + 1..]);
            }
            None => self.held.extend_from_slice(chunk),
        }
        if self.held.len() > MAX_HELD_BACK_BYTES {
            self.folded.update(&self.held);
            self.held.clear();
        }
    }

    /// The hash of bytes `0..end`, when `end` lies between the last folded newline and the last byte read.
    pub(crate) fn at(&self, end: u64) -> Option<PrefixHash> {
        let from = self.folded.len();
        let n = usize::try_from(end.checked_sub(from)?).ok()?;
        let held = self.held.get(..n)?;
        let mut h = self.folded.clone();
        h.update(held);
        Some(h)
    }
}

/// Hashes bytes `0..len` of `location` in one streaming read (no bytes held in memory).
///
/// # Errors
/// [`SourceError::Read`] (including not-found when the file vanished, and a file shorter than `len`).
pub async fn hash_prefix(
    landing: &StoreLocation,
    location: &Path,
    rel: &str,
    len: u64,
) -> Result<PrefixHash, SourceError> {
    let mut h = PrefixHash::new();
    if len == 0 {
        return Ok(h);
    }
    let err = |source| SourceError::Read {
        path: rel.to_string(),
        source,
    };
    let opts = GetOptions {
        range: Some(GetRange::Bounded(0..len)),
        ..Default::default()
    };
    let mut stream = landing
        .store
        .get_opts(location, opts)
        .await
        .map_err(err)?
        .into_stream();
    while let Some(chunk) = stream.try_next().await.map_err(err)? {
        h.update(&chunk);
    }
    if h.len() != len {
        return Err(err(object_store::Error::Generic {
            store: "landing",
            source: format!("read {} of the {len} bytes asked for", h.len()).into(),
        }));
    }
    Ok(h)
}

/// The hash of the prefix `p` consumed, when the file still starts with it (`None`: rewritten). Same size and
/// modification time never get here (the listing's quick path).
///
/// With a stored prefix hash, the first `bytes_consumed` bytes are read again and hashed (a file now shorter is
/// rewritten without a read). A record without one (an older lander's, or a failed file's) is judged as before:
/// a gzip file by its fingerprint, a plain file by its first KiB and size; then the prefix is hashed so that the
/// tail continues the hash.
pub(super) async fn kept_prefix(
    landing: &StoreLocation,
    meta: &object_store::ObjectMeta,
    rel: &str,
    p: &FileRecord,
    gzip: bool,
    fp: &FileFingerprint,
) -> Result<Option<PrefixHash>, SourceError> {
    let consumed = p.bytes_consumed;
    if let Some(stored) = &p.prefix_hash {
        if meta.size < consumed || (gzip && meta.size != consumed) {
            return Ok(None);
        }
        let h = hash_prefix(landing, &meta.location, rel, consumed).await?;
        return Ok((h.hex() == *stored).then_some(h));
    }
    if !matches!(p.status, FileStatus::Failed { .. }) {
        tracing::info!(path = %rel, "checkpoint record has no prefix hash (written by an older lander): telling an append from a rewrite by the first KiB and the size, as that lander did");
    }
    let kept = if gzip {
        p.fingerprint == fp.fingerprint
    } else {
        p.head_hash == fp.head_hash_of_prefix(p.size) && meta.size >= consumed && consumed > 0
    };
    if !kept || gzip {
        return Ok(kept.then(PrefixHash::new));
    }
    hash_prefix(landing, &meta.location, rel, consumed)
        .await
        .map(Some)
}

/// Files whose prefix was re-hashed and found whole and unchanged while their modification time differs from
/// their record (a `touch`): landing and path -> (size, modification time, prefix hash). Spares a daemon
/// re-reading such a file at every listing.
static UNCHANGED: Mutex<Option<HashMap<String, Verified>>> = Mutex::new(None);

/// (size, modification time, prefix hash) of a file found to start with its record's prefix.
type Verified = (u64, DateTime<Utc>, String);

pub(super) fn remember_unchanged(
    landing: &StoreLocation,
    rel: &str,
    meta: &object_store::ObjectMeta,
    p: &FileRecord,
) {
    if let Ok(mut g) = UNCHANGED.lock() {
        g.get_or_insert_with(Default::default).insert(
            format!("{}\u{0}{rel}", landing.display),
            (meta.size, meta.last_modified, record_identity(p)),
        );
    }
}

/// Whether this process already found `rel`, at this size and modification time, to be what `p` consumed.
pub(super) fn recalled_unchanged(
    landing: &StoreLocation,
    rel: &str,
    meta: &object_store::ObjectMeta,
    p: &FileRecord,
) -> bool {
    let stored = record_identity(p);
    UNCHANGED.lock().is_ok_and(|g| {
        let key = format!("{}\u{0}{rel}", landing.display);
        g.as_ref()
            .and_then(|m| m.get(&key))
            .is_some_and(|(size, at, h)| {
                *size == meta.size && *at == meta.last_modified && *h == stored
            })
    })
}

/// What a record says the file's consumed bytes are: their prefix hash, or (an older lander's record) the
/// fingerprint of both ends.
fn record_identity(p: &FileRecord) -> String {
    match &p.prefix_hash {
        Some(h) => h.clone(),
        None => format!("fingerprint {}", p.fingerprint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn identical_content_same_fingerprint_appends_keep_head() {
        let (_dir, loc) = crate::source::temp_landing();
        let body: Vec<u8> = (0..5000u32).flat_map(|i| i.to_le_bytes()).collect();
        for name in ["a", "b"] {
            loc.store
                .put(&loc.path(name), body.clone().into())
                .await
                .expect("put");
        }
        let n = body.len() as u64;
        let a = fingerprint(&loc, &loc.path("a"), "a", n).await.expect("fp");
        let b = fingerprint(&loc, &loc.path("b"), "b", n).await.expect("fp");
        assert_eq!(a, b);
        // The first n-10 bytes (an earlier, shorter state of the same file) share the head only.
        let shorter = fingerprint(&loc, &loc.path("a"), "a", n - 10)
            .await
            .expect("fp");
        assert_eq!(shorter.head_hash, a.head_hash);
        assert_ne!(shorter.fingerprint, a.fingerprint);
        assert!(!a.gzip);
        assert!(fingerprint(&loc, &loc.path("missing"), "missing", 10)
            .await
            .is_err());
    }

    /// The one-shot hash of `bytes`, as stored.
    fn hex_of(bytes: &[u8]) -> String {
        let mut h = PrefixHash::new();
        h.update(bytes);
        h.hex()
    }

    #[test]
    fn consumed_hasher_answers_any_end_from_the_last_newline_on() {
        let body = b"a,1\nbb,2\nccc,3\ndddd,4 partial";
        let last_nl = body.iter().rposition(|b| *b == b'\n').expect("nl") as u64 + 1;
        for chunk in [1, 3, 7, body.len()] {
            // Read from 0, and continued from a prefix hashed by the listing (start at the second line).
            for start in [0usize, 4] {
                let mut prefix = PrefixHash::new();
                prefix.update(&body[..start]);
                let mut h = ConsumedHasher::new(prefix);
                for c in body[start..].chunks(chunk) {
                    h.feed(c);
                }
                for end in last_nl..=body.len() as u64 {
                    let got = h.at(end).map(|p| p.hex());
                    assert_eq!(
                        got,
                        Some(hex_of(&body[..end as usize])),
                        "chunk {chunk} end {end}"
                    );
                }
                // Before the last newline the bytes are folded: unknown, never wrong.
                assert!(h.at(last_nl - 1).is_none());
                assert!(h.at(body.len() as u64 + 1).is_none());
            }
        }
        // The empty file, and a prefix read with nothing after it.
        assert_eq!(
            ConsumedHasher::new(PrefixHash::new())
                .at(0)
                .map(|h| h.hex()),
            Some(hex_of(b""))
        );
        let mut p = PrefixHash::new();
        p.update(b"xy\n");
        assert_eq!(
            ConsumedHasher::new(p).at(3).map(|h| h.hex()),
            Some(hex_of(b"xy\n"))
        );
    }

    #[test]
    fn a_long_unterminated_tail_is_folded_and_then_unknown() {
        let mut h = ConsumedHasher::new(PrefixHash::new());
        h.feed(b"line\n");
        let long = vec![b'x'; MAX_HELD_BACK_BYTES + 10];
        h.feed(&long);
        let total = 5 + long.len() as u64;
        let mut all = b"line\n".to_vec();
        all.extend_from_slice(&long);
        assert_eq!(h.at(total).map(|h| h.hex()), Some(hex_of(&all)));
        assert!(h.at(5).is_none());
    }

    #[tokio::test]
    async fn hash_prefix_reads_exactly_the_prefix() {
        let (_dir, loc) = crate::source::temp_landing();
        let body: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        loc.store
            .put(&loc.path("f"), body.clone().into())
            .await
            .expect("put");
        for len in [0usize, 1, 1024, 65_537, body.len()] {
            let h = hash_prefix(&loc, &loc.path("f"), "f", len as u64)
                .await
                .expect("hash");
            assert_eq!(h.len(), len as u64);
            assert_eq!(h.hex(), hex_of(&body[..len]));
        }
        // Asking for more than the file holds is an error, not the hash of a shorter prefix.
        assert!(
            hash_prefix(&loc, &loc.path("f"), "f", body.len() as u64 + 1)
                .await
                .is_err()
        );
        assert!(hash_prefix(&loc, &loc.path("missing"), "missing", 5)
            .await
            .is_err());
    }

    mod listing_decisions {
        //! How the listing judges a changed file against its record: by the prefix hash, or, for records written
        //! before prefix hashes existed, by the first KiB and the size.

        use super::*;
        use crate::checkpoint::{
            BatchCommit, BatchRecord, CheckpointStore, FileRecord, FileStatus, StoredCounts,
        };
        use crate::source::listing::{plan_dataset, Change, PlanOptions};

        fn opts() -> PlanOptions {
            PlanOptions {
                settle_time: std::time::Duration::ZERO,
                max_file_age: None,
                latest_first: false,
                now: chrono::Utc::now() + chrono::Duration::seconds(5),
                follow_symlinks: false,
                tailing: false,
                partial_line_timeout: std::time::Duration::ZERO,
                limits: crate::decode::Limits::default(),
                worker: None,
            }
        }

        fn lines(from: u32, n: u32) -> Vec<u8> {
            (from..from + n)
                .flat_map(|i| format!("{{\"id\":\"{i:08}\"}}\n").into_bytes())
                .collect()
        }

        /// Commits a record saying `consumed` (all of it) was read, with or without its prefix hash, and a
        /// modification time the file does not have (so the quick "unchanged" path never applies).
        fn record(store: &CheckpointStore, consumed: &[u8], with_hash: bool) {
            let fp = of_parts(
                &consumed[..consumed.len().min(1024)],
                &[],
                consumed.len() as u64,
            );
            let now = chrono::Utc::now();
            let file = FileRecord {
                dataset: "ds".into(),
                path: "ds/f.json".into(),
                size: consumed.len() as u64,
                modified: chrono::DateTime::UNIX_EPOCH,
                fingerprint: fp.fingerprint,
                head_hash: fp.head_hash,
                bytes_consumed: consumed.len() as u64,
                prefix_hash: with_hash.then(|| hex_of(consumed)),
                lines_consumed: 0,
                counts: StoredCounts {
                    rows: 0,
                    duplicates: 0,
                    quarantined: 0,
                },
                records_truncated: 0,
                batches: vec![1],
                versions: 0,
                status: FileStatus::Ok,
                processed_at: now,
                continued_lines: Vec::new(),
            };
            let batch = BatchRecord {
                id: 1,
                dataset: "ds".into(),
                started_at: now,
                committed_at: now,
                inputs: vec![],
                outputs: vec![],
                counts: StoredCounts {
                    rows: 0,
                    duplicates: 0,
                    quarantined: 0,
                },
                min_event_time: None,
                max_event_time: None,
            };
            store
                .commit(&BatchCommit {
                    batch,
                    files: vec![file],
                    schema: None,
                })
                .expect("commit");
        }

        /// What the listing decides for landing file `now` against a record of `consumed`.
        async fn judge(
            consumed: &[u8],
            now: &[u8],
            with_hash: bool,
        ) -> Option<(Change, u64, String)> {
            let (_dir, loc) = crate::source::temp_landing();
            let cp = tempfile::tempdir().expect("tempdir");
            let store = CheckpointStore::open(cp.path()).expect("open");
            record(&store, consumed, with_hash);
            loc.store
                .put(&loc.path("ds/f.json"), now.to_vec().into())
                .await
                .expect("put");
            let files = plan_dataset(&loc, &store, "ds", &opts())
                .await
                .expect("plan");
            files
                .into_iter()
                .next()
                .map(|f| (f.change, f.start_offset, f.prefix.hex()))
        }

        #[tokio::test]
        async fn the_prefix_hash_tells_appends_from_rewrites() {
            let v1 = lines(0, 200);
            let n = v1.len() as u64;
            // Appended: read from the end of what was consumed, the hash continued from it.
            let mut grown = v1.clone();
            grown.extend(lines(1000, 10));
            assert_eq!(
                judge(&v1, &grown, true).await,
                Some((Change::Appended, n, hex_of(&v1)))
            );
            // Touched: nothing to read.
            assert_eq!(judge(&v1, &v1, true).await, None);
            // Same size, the middle changed; longer with the same head and tail; shorter; emptied.
            let mut edited = v1.clone();
            edited[n as usize / 2] ^= 1;
            let mut longer = lines(0, 100);
            longer.extend(lines(5000, 300));
            longer.extend(lines(100, 100));
            let shorter = lines(0, 100);
            for now in [edited, longer, shorter, Vec::new()] {
                assert_eq!(
                    judge(&v1, &now, true).await,
                    Some((Change::Replaced, 0, hex_of(b""))),
                    "{} bytes",
                    now.len()
                );
            }
        }

        #[tokio::test]
        async fn a_record_without_a_prefix_hash_is_judged_as_before() {
            let v1 = lines(0, 200);
            let n = v1.len() as u64;
            let mut grown = v1.clone();
            grown.extend(lines(1000, 10));
            // The old rule: same first KiB and more bytes is an append; the prefix is hashed so the tail continues it.
            assert_eq!(
                judge(&v1, &grown, false).await,
                Some((Change::Appended, n, hex_of(&v1)))
            );
            // ... even when only the first KiB is shared (what prefix hashes fix).
            let mut longer = lines(0, 100);
            longer.extend(lines(5000, 300));
            assert_eq!(
                judge(&v1, &longer, false).await,
                Some((Change::Appended, n, hex_of(&longer[..n as usize])))
            );
            // A different first KiB is a rewrite.
            assert_eq!(
                judge(&v1, &lines(7000, 200), false).await,
                Some((Change::Replaced, 0, hex_of(b"")))
            );
        }
    }
}
