//! Object-store locations: turn a `--landing`/`--bronze` argument into an `Arc<dyn ObjectStore>` plus a prefix.
//!
//! Every read of landing and every write of bronze goes through [`StoreLocation`], never `std::fs`, and this is
//! the only module that knows URL schemes. A location is one of:
//! - a local path or `file:///path`: `LocalFileSystem`; the root directory is created on first use (the one
//!   `std::fs` call outside tests, because `LocalFileSystem` refuses a prefix that does not exist);
//! - `hdfs://host:port/path` (or `hdfs://nameservice/path` for HA, or `hdfs:///path` for `fs.defaultFS`):
//!   `hdfs-native-object-store`, a pure-Rust client (no JVM). `core-site.xml`/`hdfs-site.xml` are read from
//!   `$HADOOP_CONF_DIR` (else `$HADOOP_HOME/etc/hadoop`), so name services, ViewFS and Kerberos settings work;
//!   the user is `$HADOOP_USER_NAME` or the OS user;
//! - `hdfs+jni://host:port/path` (cargo feature `hdrs` only; `hdfs+jni:///path` for `fs.defaultFS`): the same
//!   HDFS through libhdfs (JNI), see the `hdrs` module; a build without the feature refuses the scheme;
//! - `s3://bucket/prefix` (also `s3a://`): object_store's `AmazonS3`, configured from the usual `AWS_*`
//!   variables: `AWS_ENDPOINT_URL` (MinIO, Ceph, moto), `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint, and
//!   `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true` to leave the default path-style requests.
//!
//! Remote stores (HDFS, S3) are wrapped in `TimeoutStore`: every call, every listed page, every read chunk and
//! every uploaded part must finish within `$LANDER_STORE_TIMEOUT` (default `DEFAULT_STORE_TIMEOUT`), so an
//! unreachable NameNode or endpoint is a clear error after seconds instead of a hang (the HDFS client retries
//! connections for minutes on its own).
//!
//! # Atomicity and durability per backend
//! - local (`LocalFileSystem`, the default): opened `with_fsync(true)`, so a `put`, a completed multipart upload
//!   and a `rename` are durable (file and parent directory fsynced) when they return; `rename` is `rename(2)`,
//!   atomic within one filesystem.
//! - HDFS: a `put` and a completed multipart upload write a hidden `.<name>.tmp.<n>` file and rename it into
//!   place when the file is closed (the NameNode has then recorded every block as replicated to
//!   `dfs.namenode.replication.min`); `rename` is one NameNode `rename2` call with overwrite: atomic, the target
//!   is either the old or the new file. HDFS refuses a rename into a directory that does not exist, so the
//!   store creates the target's parent directories first (an idempotent `mkdirs`). `copy` is a client-side read
//!   and rewrite (not atomic; lander does not use it on HDFS). A put-if-absent (`PutMode::Create`, the Delta
//!   log's entries) on `hdfs://` goes through [`create_put`]: a temporary of lander's own naming renamed without
//!   overwrite, deleted when the name was taken, so a lost version race leaves nothing behind.
//! - S3: a `put` and a completed multipart upload are atomic (the object appears whole or not at all) and durable
//!   when they return; listings are strongly consistent. There is no rename: object_store's `rename` is a
//!   server-side `CopyObject` (atomic per object) followed by a `DeleteObject` of the source, so between the two
//!   both names exist, and a crash between them leaves the source behind. The sink's commit protocol copes with
//!   that (see `sink::parquet`): sources are staging names that recovery deletes.

pub mod create_put;
#[cfg(feature = "hdrs")]
pub mod hdrs;
mod open;
pub(crate) mod s3_keys;
mod timeout;

pub(crate) use timeout::TimeoutStore;

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use object_store::ObjectStore;

/// How long one remote store call may take when `$LANDER_STORE_TIMEOUT` is not set: long enough for an 8 MiB
/// part over a slow link, short enough that an unreachable NameNode or endpoint fails a command in seconds.
pub(crate) const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment variable that overrides [`DEFAULT_STORE_TIMEOUT`] (a humantime duration such as `5s`).
pub(crate) const STORE_TIMEOUT_ENV: &str = "LANDER_STORE_TIMEOUT";

/// Errors opening a storage location.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The location names a scheme this build does not support.
    #[error("unsupported storage location {location}: {reason}")]
    Unsupported {
        /// The location as given by the user.
        location: String,
        /// Why it is not supported.
        reason: String,
    },
    /// A local root directory could not be created or resolved.
    #[error("cannot open local directory {path}: {source}")]
    Local {
        /// The directory.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The object store rejected the location.
    #[error("cannot open {location}: {source}")]
    ObjectStore {
        /// The location as given by the user.
        location: String,
        /// The underlying error.
        source: object_store::Error,
    },
    /// `$LANDER_STORE_TIMEOUT` is not a duration.
    #[error("invalid {STORE_TIMEOUT_ENV}={value}: {message}")]
    Timeout {
        /// The value found.
        value: String,
        /// The parser's message.
        message: String,
    },
    /// A remote call did not finish in time (carried inside `object_store::Error::Generic`).
    #[error("{backend} {operation} of {location} timed out after {after:?} (is the {backend} service reachable? {STORE_TIMEOUT_ENV} raises the limit)")]
    TimedOut {
        /// `HDFS` or `S3`.
        backend: &'static str,
        /// The object-store call.
        operation: &'static str,
        /// The full location (URL) it was about.
        location: String,
        /// The limit.
        after: Duration,
    },
}

/// A landing name that no store path can name: a segment with an ASCII control character (a newline, a tab,
/// ...), or a segment `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("its name segment {segment:?} holds a control character (or is . or ..), which no store path can name")]
pub struct UnrepresentableName {
    /// The offending segment.
    pub(crate) segment: String,
}

/// Which kind of store a location is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The local filesystem.
    Local,
    /// HDFS (`hdfs://`).
    Hdfs,
    /// S3 or an S3-compatible server (`s3://`).
    S3,
}

/// The backend a location string names, without opening it (no I/O, no directory created).
pub fn backend_of(location: &str) -> Backend {
    match location.split_once("://").map(|(scheme, _)| scheme) {
        Some("hdfs" | "viewfs" | "hdfs+jni") => Backend::Hdfs,
        Some("s3" | "s3a") => Backend::S3,
        _ => Backend::Local,
    }
}

/// A root inside an object store: all paths the pipeline uses are relative to `prefix`.
#[derive(Clone, Debug)]
pub struct StoreLocation {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The root inside the store (empty for a local directory, which is itself the store root).
    pub prefix: Path,
    /// How the user named the location, for messages.
    pub display: String,
    /// The absolute local directory, when the location is on the local filesystem.
    pub local_root: Option<std::path::PathBuf>,
    /// The backend.
    pub backend: Backend,
    /// On S3: the raw key listing, for a listing that `object_store` cannot convert (see [`s3_keys`]).
    pub s3_keys: Option<Arc<s3_keys::S3Keys>>,
}

impl StoreLocation {
    /// The store path of `relative` (a `/`-separated path below this location's root), each segment being the
    /// name itself: a store path segment *is* the file or object name on every backend (`LocalFileSystem`,
    /// HDFS and S3 all use it unencoded), so `ventas_año.csv` or `50%.csv` must not be percent-encoded here.
    /// A segment that cannot be a store path segment (see [`StoreLocation::exact_path`]) is percent-encoded
    /// instead, which names a different object: use `exact_path` where the name comes from outside.
    pub fn path(&self, relative: &str) -> Path {
        self.exact_path(relative).unwrap_or_else(|_| {
            let mut parts: Vec<object_store::path::PathPart<'static>> = Vec::new();
            for p in self.prefix.parts() {
                parts.push(p.as_ref().to_string().into());
            }
            parts.extend(
                relative
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(|s| object_store::path::PathPart::from(s.to_string())),
            );
            Path::from_iter(parts)
        })
    }

    /// The store path of `relative`, each segment taken verbatim (the inverse of [`StoreLocation::relative`]).
    ///
    /// # Errors
    /// [`UnrepresentableName`] when a segment holds an ASCII control character or is `.` or `..`: no store path
    /// names such a file, so it cannot be read through the object store.
    pub fn exact_path(&self, relative: &str) -> Result<Path, UnrepresentableName> {
        let mut raw = self.prefix.as_ref().to_string();
        for s in relative.split('/').filter(|s| !s.is_empty()) {
            object_store::path::PathPart::parse(s).map_err(|_| UnrepresentableName {
                segment: s.to_string(),
            })?;
            if !raw.is_empty() {
                raw.push('/');
            }
            raw.push_str(s);
        }
        // Every segment was checked above and the prefix is a valid path already.
        Path::parse(&raw).map_err(|_| UnrepresentableName {
            segment: relative.to_string(),
        })
    }

    /// The part of `path` below this location's root, `/`-separated, or `None` when `path` is outside it.
    pub fn relative(&self, path: &Path) -> Option<String> {
        let parts: Vec<_> = path
            .prefix_match(&self.prefix)?
            .map(|p| p.as_ref().to_string())
            .collect();
        Some(parts.join("/"))
    }

    /// A human-readable name for `relative` inside this location (a filesystem path when local).
    pub fn describe(&self, relative: &str) -> String {
        match &self.local_root {
            Some(root) => root.join(relative).display().to_string(),
            None => format!("{}/{}", self.display.trim_end_matches('/'), relative),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let loc =
            StoreLocation::open(dir.path().join("a/b").to_str().expect("utf8")).expect("open");
        let p = loc.path("gharchive/x/2015-01-01-0.json.gz");
        assert_eq!(
            loc.relative(&p).as_deref(),
            Some("gharchive/x/2015-01-01-0.json.gz")
        );
        assert!(dir.path().join("a/b").is_dir());
        assert!(StoreLocation::open("ftp://x/y").is_err());
    }
}
