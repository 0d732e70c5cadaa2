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
//!   HDFS through libhdfs (JNI), see [`hdrs`]; a build without the feature refuses the scheme;
//! - `s3://bucket/prefix` (also `s3a://`): object_store's `AmazonS3`, configured from the usual `AWS_*`
//!   variables: `AWS_ENDPOINT_URL` (MinIO, Ceph, moto), `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint, and
//!   `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true` to leave the default path-style requests.
//!
//! Remote stores (HDFS, S3) are wrapped in [`TimeoutStore`]: every call, every listed page, every read chunk and
//! every uploaded part must finish within `$LANDER_STORE_TIMEOUT` (default [`DEFAULT_STORE_TIMEOUT`]), so an
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
//!   and rewrite (not atomic; lander does not use it on HDFS).
//! - S3: a `put` and a completed multipart upload are atomic (the object appears whole or not at all) and durable
//!   when they return; listings are strongly consistent. There is no rename: object_store's `rename` is a
//!   server-side `CopyObject` (atomic per object) followed by a `DeleteObject` of the source, so between the two
//!   both names exist, and a crash between them leaves the source behind. The sink's commit protocol copes with
//!   that (see `sink::parquet`): sources are staging names that recovery deletes.

#[cfg(feature = "hdrs")]
pub mod hdrs;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};

/// How long one remote store call may take when `$LANDER_STORE_TIMEOUT` is not set: long enough for an 8 MiB
/// part over a slow link, short enough that an unreachable NameNode or endpoint fails a command in seconds.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment variable that overrides [`DEFAULT_STORE_TIMEOUT`] (a humantime duration such as `5s`).
pub const STORE_TIMEOUT_ENV: &str = "LANDER_STORE_TIMEOUT";

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
}

impl StoreLocation {
    /// Opens a location given as a local path, a `file://` URL, `hdfs://authority/path` or `s3://bucket/prefix`.
    ///
    /// A local directory is created if missing. Opening a remote location does no I/O: an unreachable
    /// service shows up on the first call, as a [`StoreError::TimedOut`] at the latest.
    ///
    /// # Errors
    /// [`StoreError::Unsupported`] for an unknown scheme or a malformed URL, [`StoreError::Local`] when the
    /// directory cannot be made, [`StoreError::ObjectStore`] when the client refuses its configuration,
    /// [`StoreError::Timeout`] for a malformed `$LANDER_STORE_TIMEOUT`.
    pub fn open(location: &str) -> Result<Self, StoreError> {
        Self::open_with(location, &BTreeMap::new())
    }

    /// [`StoreLocation::open`] with store options (`storage` in `lander.toml`), which override the environment:
    /// object_store's S3 keys (`aws_endpoint`, `aws_region`, ...) for `s3://`, Hadoop keys (containing a `.`)
    /// for `hdfs://`. A local location ignores them.
    ///
    /// # Errors
    /// As [`StoreLocation::open`]; [`StoreError::Unsupported`] for an option that is neither an S3 key nor a
    /// Hadoop key.
    pub fn open_with(
        location: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<Self, StoreError> {
        let Some((scheme, rest)) = location.split_once("://") else {
            return Self::open_local(location, location);
        };
        match scheme {
            "file" => Self::open_local(rest, location),
            "hdfs" | "viewfs" => {
                let (authority, path) = split_authority(rest);
                Self::open_hdfs(scheme, authority, path, location, options)
            }
            "hdfs+jni" => {
                let (authority, path) = split_authority(rest);
                Self::open_hdfs_jni(authority, path, location, options)
            }
            "s3" | "s3a" => {
                let (bucket, path) = split_authority(rest);
                if bucket.is_empty() {
                    return Err(StoreError::Unsupported {
                        location: location.to_string(),
                        reason: "an S3 location needs a bucket: s3://bucket/prefix".into(),
                    });
                }
                Self::open_s3(bucket, path, location, options)
            }
            other => Err(StoreError::Unsupported {
                location: location.to_string(),
                reason: format!(
                    "scheme {other}:// is not supported (use a local path, hdfs://host:port/path or s3://bucket/prefix)"
                ),
            }),
        }
    }

    fn open_hdfs(
        scheme: &str,
        authority: &str,
        path: &str,
        display: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<Self, StoreError> {
        let timeout = store_timeout()?;
        let (hadoop, _) = split_options(options, display)?;
        let mut builder =
            hdfs_native_object_store::HdfsObjectStoreBuilder::new().with_config(hadoop);
        // An empty authority (`hdfs:///path`) means `fs.defaultFS` from $HADOOP_CONF_DIR.
        let base = if authority.is_empty() {
            String::new()
        } else {
            let url = format!("{scheme}://{authority}");
            builder = builder.with_url(url.clone());
            url
        };
        let store = builder.build().map_err(|source| StoreError::ObjectStore {
            location: display.to_string(),
            source,
        })?;
        let base = if base.is_empty() {
            format!("{scheme}://")
        } else {
            base
        };
        Self::remote(Arc::new(store), Backend::Hdfs, base, timeout, path, display)
    }

    /// A remote location: `store` behind the per-call timeout, rooted at `path`.
    fn remote(
        store: Arc<dyn ObjectStore>,
        backend: Backend,
        name: String,
        timeout: Duration,
        path: &str,
        display: &str,
    ) -> Result<Self, StoreError> {
        let service = if backend == Backend::S3 { "S3" } else { "HDFS" };
        Ok(Self {
            store: Arc::new(TimeoutStore::new(store, service, name, timeout)),
            prefix: parse_prefix(path, display)?,
            display: display.to_string(),
            local_root: None,
            backend,
        })
    }

    #[cfg(feature = "hdrs")]
    fn open_hdfs_jni(
        authority: &str,
        path: &str,
        display: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<Self, StoreError> {
        let timeout = store_timeout()?;
        let (hadoop, _) = split_options(options, display)?;
        // libhdfs's name for `fs.defaultFS` is "default".
        let namenode = if authority.is_empty() {
            "default".to_string()
        } else {
            format!("hdfs://{authority}")
        };
        let store = hdrs::HdrsStore::new(namenode, hadoop);
        Self::remote(
            Arc::new(store),
            Backend::Hdfs,
            format!("hdfs+jni://{authority}"),
            timeout,
            path,
            display,
        )
    }

    #[cfg(not(feature = "hdrs"))]
    fn open_hdfs_jni(
        _authority: &str,
        _path: &str,
        display: &str,
        _options: &BTreeMap<String, String>,
    ) -> Result<Self, StoreError> {
        Err(StoreError::Unsupported {
            location: display.to_string(),
            reason: "hdfs+jni:// (libhdfs over JNI) needs a build with `--features hdrs`; hdfs:// needs no JVM"
                .into(),
        })
    }

    fn open_s3(
        bucket: &str,
        path: &str,
        display: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<Self, StoreError> {
        let timeout = store_timeout()?;
        let (_, s3) = split_options(options, display)?;
        let mut builder = object_store::aws::AmazonS3Builder::from_env();
        for (key, value) in s3 {
            builder = builder.with_config(key, value);
        }
        let store =
            builder
                .with_bucket_name(bucket)
                .build()
                .map_err(|source| StoreError::ObjectStore {
                    location: display.to_string(),
                    source,
                })?;
        Self::remote(
            Arc::new(store),
            Backend::S3,
            format!("s3://{bucket}"),
            timeout,
            path,
            display,
        )
    }

    fn open_local(path: &str, display: &str) -> Result<Self, StoreError> {
        let local_err = |source| StoreError::Local {
            path: path.to_string(),
            source,
        };
        // The one std::fs use outside tests: LocalFileSystem needs an existing root to canonicalize.
        std::fs::create_dir_all(path).map_err(local_err)?;
        let root = std::fs::canonicalize(path).map_err(local_err)?;
        let fs = LocalFileSystem::new_with_prefix(&root)
            .map_err(|source| StoreError::ObjectStore {
                location: display.to_string(),
                source,
            })?
            .with_fsync(true)
            .with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(fs),
            prefix: Path::default(),
            display: display.to_string(),
            local_root: Some(root),
            backend: Backend::Local,
        })
    }

    /// The store path of `relative` (a `/`-separated path below this location's root).
    pub fn path(&self, relative: &str) -> Path {
        let mut parts: Vec<object_store::path::PathPart<'static>> = self
            .prefix
            .parts()
            .map(|p| p.as_ref().to_string().into())
            .collect();
        parts.extend(
            relative
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| object_store::path::PathPart::from(s.to_string())),
        );
        Path::from_iter(parts)
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

/// Splits `authority/path/...` into the authority and the path (without its leading `/`).
fn split_authority(rest: &str) -> (&str, &str) {
    match rest.split_once('/') {
        Some((authority, path)) => (authority, path),
        None => (rest, ""),
    }
}

/// Splits `storage` options into Hadoop keys (with a `.`) and S3 keys.
#[allow(clippy::type_complexity)]
fn split_options(
    options: &BTreeMap<String, String>,
    display: &str,
) -> Result<
    (
        Vec<(String, String)>,
        Vec<(object_store::aws::AmazonS3ConfigKey, String)>,
    ),
    StoreError,
> {
    let mut hadoop = Vec::new();
    let mut s3 = Vec::new();
    for (key, value) in options {
        if key.contains('.') {
            hadoop.push((key.clone(), value.clone()));
        } else if let Ok(k) = key.to_ascii_lowercase().parse() {
            s3.push((k, value.clone()));
        } else {
            return Err(StoreError::Unsupported {
                location: display.to_string(),
                reason: format!(
                    "storage option {key:?} is neither an S3 key (aws_endpoint, aws_region, ...) nor a Hadoop key (dfs.*, fs.*)"
                ),
            });
        }
    }
    Ok((hadoop, s3))
}

/// The store prefix for the path part of a URL (`a/b/` -> `a/b`).
fn parse_prefix(path: &str, display: &str) -> Result<Path, StoreError> {
    let trimmed = path.trim_matches('/');
    Path::parse(trimmed).map_err(|source| StoreError::Unsupported {
        location: display.to_string(),
        reason: format!("invalid path {trimmed:?}: {source}"),
    })
}

/// The per-call limit for remote stores: `$LANDER_STORE_TIMEOUT` or [`DEFAULT_STORE_TIMEOUT`].
fn store_timeout() -> Result<Duration, StoreError> {
    match std::env::var(STORE_TIMEOUT_ENV) {
        Ok(value) => humantime::parse_duration(&value).map_err(|e| StoreError::Timeout {
            value,
            message: e.to_string(),
        }),
        Err(_) => Ok(DEFAULT_STORE_TIMEOUT),
    }
}

/// Wraps a remote store so that no call can hang: each call, each page of a listing, each chunk of a read and
/// each part of an upload gets [`TimeoutStore::timeout`], after which it fails with [`StoreError::TimedOut`]
/// (inside `object_store::Error::Generic`).
#[derive(Debug)]
pub struct TimeoutStore {
    inner: Arc<dyn ObjectStore>,
    backend: &'static str,
    base: Arc<str>,
    timeout: Duration,
}

impl TimeoutStore {
    /// Wraps `inner`; `backend` (`HDFS`, `S3`) and `base` (the store's URL) name it in errors.
    pub fn new(
        inner: Arc<dyn ObjectStore>,
        backend: &'static str,
        base: String,
        timeout: Duration,
    ) -> Self {
        Self {
            inner,
            backend,
            base: base.into(),
            timeout,
        }
    }

    /// The limit per call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn limiter(&self) -> Limiter {
        Limiter {
            backend: self.backend,
            base: self.base.clone(),
            timeout: self.timeout,
        }
    }
}

/// What a deferred piece of work (a listing page, a read chunk, an upload part) needs to time itself.
#[derive(Clone, Debug)]
struct Limiter {
    backend: &'static str,
    base: Arc<str>,
    timeout: Duration,
}

impl Limiter {
    fn error(&self, operation: &'static str, location: Option<&Path>) -> object_store::Error {
        let location = match location {
            Some(p) if !p.as_ref().is_empty() => format!("{}/{}", self.base, p),
            _ => self.base.to_string(),
        };
        object_store::Error::Generic {
            store: self.backend,
            source: Box::new(StoreError::TimedOut {
                backend: self.backend,
                operation,
                location,
                after: self.timeout,
            }),
        }
    }

    async fn run<T>(
        &self,
        operation: &'static str,
        location: Option<&Path>,
        fut: impl Future<Output = object_store::Result<T>>,
    ) -> object_store::Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(self.error(operation, location)),
        }
    }

    /// Each item of `stream` must arrive within the limit; after a timeout the stream ends.
    fn stream<T: Send + 'static>(
        self,
        operation: &'static str,
        location: Option<Path>,
        stream: BoxStream<'static, object_store::Result<T>>,
    ) -> BoxStream<'static, object_store::Result<T>> {
        futures::stream::unfold(Some(stream), move |state| {
            let limiter = self.clone();
            let location = location.clone();
            async move {
                let mut stream = state?;
                match tokio::time::timeout(limiter.timeout, stream.next()).await {
                    Ok(Some(item)) => Some((item, Some(stream))),
                    Ok(None) => None,
                    Err(_) => Some((Err(limiter.error(operation, location.as_ref())), None)),
                }
            }
        })
        .boxed()
    }
}

impl fmt::Display for TimeoutStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimeoutStore({:?}, {})", self.timeout, self.inner)
    }
}

#[async_trait]
impl ObjectStore for TimeoutStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.limiter()
            .run(
                "put",
                Some(location),
                self.inner.put_opts(location, payload, opts),
            )
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let limiter = self.limiter();
        let upload = limiter
            .run(
                "upload start",
                Some(location),
                self.inner.put_multipart_opts(location, opts),
            )
            .await?;
        Ok(Box::new(TimeoutUpload {
            upload,
            limiter,
            location: location.clone(),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let limiter = self.limiter();
        let result = limiter
            .run(
                "get",
                Some(location),
                self.inner.get_opts(location, options),
            )
            .await?;
        let payload = match result.payload {
            GetResultPayload::Stream(s) => {
                GetResultPayload::Stream(limiter.stream("read", Some(location.clone()), s))
            }
            file @ GetResultPayload::File(..) => file,
        };
        Ok(GetResult { payload, ..result })
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.limiter()
            .run(
                "ranged get",
                Some(location),
                self.inner.get_ranges(location, ranges),
            )
            .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let inner = self.inner.delete_stream(locations);
        self.limiter().stream("delete", None, inner)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let inner = self.inner.list(prefix);
        self.limiter().stream("list", prefix.cloned(), inner)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let inner = self.inner.list_with_offset(prefix, offset);
        self.limiter().stream("list", prefix.cloned(), inner)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.limiter()
            .run("list", prefix, self.inner.list_with_delimiter(prefix))
            .await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.limiter()
            .run("copy", Some(from), self.inner.copy_opts(from, to, options))
            .await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.limiter()
            .run(
                "rename",
                Some(from),
                self.inner.rename_opts(from, to, options),
            )
            .await
    }
}

/// A multipart upload whose parts, completion and abort are each limited in time.
#[derive(Debug)]
struct TimeoutUpload {
    upload: Box<dyn MultipartUpload>,
    limiter: Limiter,
    location: Path,
}

#[async_trait]
impl MultipartUpload for TimeoutUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let part = self.upload.put_part(data);
        let limiter = self.limiter.clone();
        let location = self.location.clone();
        Box::pin(async move { limiter.run("upload part", Some(&location), part).await })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let limiter = self.limiter.clone();
        limiter
            .run(
                "upload completion",
                Some(&self.location),
                self.upload.complete(),
            )
            .await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        let limiter = self.limiter.clone();
        limiter
            .run("upload abort", Some(&self.location), self.upload.abort())
            .await
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

    #[test]
    fn remote_urls_split_into_store_and_prefix() {
        let s3 = StoreLocation::open("s3://bucket/a/b/").expect("s3");
        assert_eq!(s3.backend, Backend::S3);
        assert_eq!(s3.prefix.as_ref(), "a/b");
        assert_eq!(
            s3.path("gharchive/x.json.gz").as_ref(),
            "a/b/gharchive/x.json.gz"
        );
        assert_eq!(s3.describe("gharchive"), "s3://bucket/a/b/gharchive");
        assert!(StoreLocation::open("s3:///nobucket").is_err());
        let hdfs = StoreLocation::open("hdfs://127.0.0.1:1/proyecto/landing").expect("hdfs");
        assert_eq!(hdfs.backend, Backend::Hdfs);
        assert_eq!(hdfs.prefix.as_ref(), "proyecto/landing");
    }

    #[tokio::test]
    async fn an_unreachable_namenode_times_out_quickly() {
        let store = hdfs_native_object_store::HdfsObjectStoreBuilder::new()
            // Port 1 on loopback: nothing listens, the client retries its connection.
            .with_url("hdfs://127.0.0.1:1")
            .build()
            .expect("builder");
        let store = TimeoutStore::new(
            Arc::new(store),
            "HDFS",
            "hdfs://127.0.0.1:1".into(),
            Duration::from_millis(500),
        );
        let started = std::time::Instant::now();
        let err = store
            .list_with_delimiter(Some(&Path::from("x")))
            .await
            .expect_err("nothing listens on port 1");
        assert!(started.elapsed() < Duration::from_secs(5));
        let msg = err.to_string();
        assert!(msg.contains("timed out after 500ms"), "{msg}");
        assert!(msg.contains("hdfs://127.0.0.1:1/x"), "{msg}");
    }
}
