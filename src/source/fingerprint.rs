//! File identity without reading whole files.
//!
//! A fingerprint is xxh3-64 over the first KiB, the last KiB and the size. The head hash alone (first KiB, or
//! the whole file when smaller) tells an appended file (same head, bigger) from a replaced one (different head).
//! Identity never uses inodes, which HDFS and S3 do not have.

use object_store::path::Path;
use object_store::{GetOptions, GetRange};

use super::SourceError;
use crate::store::StoreLocation;

/// Bytes hashed at each end of a file.
pub const FINGERPRINT_BYTES: u64 = 1024;

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
    pub head: bytes::Bytes,
}

impl FileFingerprint {
    /// The head hash over the first `len` bytes only: compares with a record made when the file was `len` bytes
    /// long (a small file that has grown since).
    pub fn head_hash_of_prefix(&self, len: u64) -> String {
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
pub fn of_parts(head: &[u8], tail: &[u8], size: u64) -> FileFingerprint {
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
}
