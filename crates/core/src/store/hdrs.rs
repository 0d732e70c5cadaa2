//! HDFS through libhdfs (JNI), cargo feature `hdrs`: an `ObjectStore` over the blocking `hdrs` client, for
//! `hdfs+jni://host:port/path` locations. The default HDFS path stays the pure-Rust `hdfs://` one.
//!
//! It implements what lander uses and nothing more: put (temporary file + rename), multipart upload (streamed
//! into the temporary file in call order, renamed on completion), get with ranges and `head`, recursive and
//! delimited listing, delete, rename and copy (both with overwrite or no-clobber).
//!
//! # Run time
//! libhdfs starts a JVM inside the process on the first call, so the process needs `libjvm.so` (the build
//! records `$JAVA_HOME/lib/server` as an rpath; `LD_LIBRARY_PATH` overrides it) and `CLASSPATH` listing the
//! Hadoop client jars one by one (libhdfs does not expand `*`), e.g. `hadoop-client-api` and
//! `hadoop-client-runtime` from Maven, or `$(hadoop classpath --glob)`; put `$HADOOP_CONF_DIR` on it for
//! `core-site.xml`/`hdfs-site.xml`. The user is `$HADOOP_USER_NAME` (read by Hadoop's UGI) or the OS user.
//!
//! # Tokio compatibility
//! Every libhdfs call blocks (it is a JNI call into the Hadoop client), so each runs on tokio's blocking pool via
//! `HdrsStore::call`; a multipart upload owns one blocking writer task that writes its parts in order.
//!
//! # Atomicity
//! - `put` and a completed multipart upload write `.<name>.tmp.<n>` in the target's directory, close it (the
//!   NameNode has then recorded the blocks) and rename it into place: readers see the old file or the whole new
//!   one. A crash before the rename leaves the hidden temporary behind (listings skip dot names; recovery
//!   removes them).
//! - `rename`: libhdfs calls `FileSystem#rename`, HDFS's old rename, which refuses an existing target (there is
//!   no `rename2` with overwrite in libhdfs, HDFS-3592). So no-clobber renames are atomic, while an overwriting
//!   rename onto an existing file is *delete, then rename*: between the two calls the target is absent, and a
//!   crash there leaves only the source. lander's commit protocol tolerates both (recovery redoes the publish);
//!   the pure-Rust `hdfs://` client has no such window.
//! - `copy` is a client-side read and rewrite into a temporary, then the same rename.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    RenameOptions, RenameTargetMode, UploadPart,
};

/// The JVM option (`-Xrs`, "reduce signal usage") that leaves SIGTERM, SIGINT and SIGHUP to lander: without it
/// the JVM that libhdfs starts installs its own handlers, so a SIGTERM runs Hadoop's shutdown hooks (closing
/// the client under lander's feet) and exits with 143 instead of letting lander finish its batch and exit 0.
pub(crate) const JVM_KEEP_SIGNALS: &str = "-Xrs";

/// Adds `JVM_KEEP_SIGNALS` to `$LIBHDFS_OPTS`, the JVM options libhdfs starts its JVM with, unless present.
/// Call it at the start of `main`, before any other thread exists (it sets an environment variable).
pub fn keep_signals_for_lander() {
    let opts = std::env::var("LIBHDFS_OPTS").unwrap_or_default();
    if !opts.split_whitespace().any(|o| o == JVM_KEEP_SIGNALS) {
        std::env::set_var(
            "LIBHDFS_OPTS",
            format!("{opts} {JVM_KEEP_SIGNALS}").trim_start(),
        );
    }
}

mod raw;
use raw::RawFs;

/// The store name in `object_store::Error`s.
const STORE: &str = "HDFS (JNI)";

/// Errors of libhdfs calls, carried inside `object_store::Error::Generic` (not-found and already-exists map to
/// `object_store`'s own variants so callers can match on them).
#[derive(Debug, thiserror::Error)]
pub(crate) enum HdrsError {
    /// The JVM could not start or the NameNode refused the connection.
    #[error("cannot connect to {namenode} through libhdfs: {source} (the process needs CLASSPATH listing the Hadoop client jars and libjvm.so on its library path)")]
    Connect {
        /// The NameNode as given to libhdfs.
        namenode: String,
        /// errno as set by libhdfs (its Java exception is printed on stderr).
        source: std::io::Error,
    },
    /// A libhdfs call failed.
    #[error("libhdfs {operation} of {path} failed: {source}")]
    Call {
        operation: &'static str,
        path: String,
        /// errno as set by libhdfs.
        source: std::io::Error,
    },
    /// An overwriting rename found the target present after deleting it (another writer raced us).
    #[error("rename of {from} onto {to} failed: {to} exists")]
    RenameRaced { from: String, to: String },
    /// The blocking task running a call panicked or was cancelled.
    #[error("blocking task for {operation} of {path} did not finish: {message}")]
    Task {
        operation: &'static str,
        path: String,
        /// The join error.
        message: String,
    },
}

/// Turns a failed libhdfs call into the matching `object_store::Error`.
fn call_error(operation: &'static str, path: &str, source: std::io::Error) -> object_store::Error {
    let kind = source.kind();
    let source = Box::new(HdrsError::Call {
        operation,
        path: path.to_string(),
        source,
    });
    match kind {
        ErrorKind::NotFound => object_store::Error::NotFound {
            path: path.to_string(),
            source,
        },
        ErrorKind::AlreadyExists => object_store::Error::AlreadyExists {
            path: path.to_string(),
            source,
        },
        _ => generic(*source),
    }
}

fn generic(e: HdrsError) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: Box::new(e),
    }
}

/// The absolute HDFS path of an object path.
fn hdfs_path(p: &Path) -> String {
    format!("/{p}")
}

/// The parent directory of an absolute HDFS path (`/` for a top-level name).
fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// What one connection needs; shared by the store and its upload writers.
#[derive(Debug)]
struct Inner {
    namenode: String,
    config: Vec<(String, String)>,
    client: tokio::sync::OnceCell<Arc<Conn>>,
    temp_seq: AtomicU64,
}

/// One connection: the `hdrs` client writes file contents; every call that carries a name goes through `raw`,
/// which speaks JNI's modified UTF-8 (see [`raw`]), so a name beyond the Basic Multilingual Plane (an emoji)
/// is listed, read, renamed and deleted under its own name instead of panicking in `hdrs`.
struct Conn {
    client: hdrs::Client,
    raw: RawFs,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conn")
    }
}

impl std::ops::Deref for Conn {
    type Target = hdrs::Client;
    fn deref(&self) -> &hdrs::Client {
        &self.client
    }
}

/// An `ObjectStore` on one HDFS cluster through libhdfs. Connects (and starts the JVM) on the first call.
#[derive(Debug, Clone)]
pub(crate) struct HdrsStore {
    inner: Arc<Inner>,
}

impl std::fmt::Display for HdrsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HdrsStore({})", self.inner.namenode)
    }
}

impl HdrsStore {
    /// A store on `namenode` (`hdfs://host:port`, or `default` for `fs.defaultFS` from the `core-site.xml` on
    /// the CLASSPATH) with extra Hadoop configuration keys. Does no I/O.
    pub(crate) fn new(namenode: String, config: Vec<(String, String)>) -> Self {
        Self {
            inner: Arc::new(Inner {
                namenode,
                config,
                client: tokio::sync::OnceCell::new(),
                temp_seq: AtomicU64::new(0),
            }),
        }
    }

    async fn client(&self) -> object_store::Result<Arc<Conn>> {
        let inner = self.inner.clone();
        self.inner
            .client
            .get_or_try_init(|| async move {
                let namenode = inner.namenode.clone();
                let config = inner.config.clone();
                let connected = tokio::task::spawn_blocking(move || {
                    let mut builder = hdrs::ClientBuilder::new(&namenode);
                    for (k, v) in &config {
                        builder = builder.with_config(k, v);
                    }
                    let client = builder.connect().map_err(|source| HdrsError::Connect {
                        namenode: namenode.clone(),
                        source,
                    })?;
                    let raw = RawFs::connect(&namenode, &config)
                        .map_err(|source| HdrsError::Connect { namenode, source })?;
                    Ok(Conn { client, raw })
                })
                .await
                .map_err(|e| {
                    generic(HdrsError::Task {
                        operation: "connect",
                        path: inner.namenode.clone(),
                        message: e.to_string(),
                    })
                })?;
                connected.map(Arc::new).map_err(generic)
            })
            .await
            .cloned()
    }

    /// Runs `f` with the client on the blocking pool.
    async fn call<T: Send + 'static>(
        &self,
        operation: &'static str,
        path: &str,
        f: impl FnOnce(&Conn) -> object_store::Result<T> + Send + 'static,
    ) -> object_store::Result<T> {
        let client = self.client().await?;
        tokio::task::spawn_blocking(move || f(&client))
            .await
            .map_err(|e| {
                generic(HdrsError::Task {
                    operation,
                    path: path.to_string(),
                    message: e.to_string(),
                })
            })?
    }

    /// A fresh hidden temporary name beside `target`: `.<name>.tmp.<n>`, the pattern the pure-Rust client uses.
    fn temp_for(&self, target: &str) -> String {
        // The contents are written through `hdrs`, which passes names as plain UTF-8: a character beyond U+FFFF
        // would name another file or directory there. So the temporary's name replaces it, and a temporary for a
        // directory holding one goes to its closest ancestor without one (the rename into place goes through
        // `raw`, which encodes every name, and HDFS renames across directories).
        let beyond_bmp = |s: &str| s.chars().any(|c| (c as u32) > 0xFFFF);
        let name: String = target[target.rfind('/').map_or(0, |i| i + 1)..]
            .chars()
            .map(|c| if (c as u32) > 0xFFFF { '_' } else { c })
            .collect();
        let mut dir = parent(target);
        while beyond_bmp(dir) {
            dir = parent(dir);
        }
        let n = (u64::from(std::process::id()) << 32)
            | self.inner.temp_seq.fetch_add(1, Ordering::Relaxed);
        format!("{}/.{name}.tmp.{n}", dir.trim_end_matches('/'))
    }
}

/// Opens `path` for writing (creating its directory first).
fn create(client: &Conn, path: &str) -> object_store::Result<hdrs::File> {
    client
        .raw
        .create_dir(parent(path))
        .map_err(|e| call_error("mkdirs", parent(path), e))?;
    client
        .open_file()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| call_error("create", path, e))
}

/// Closes a written file: the NameNode completes it (its blocks are minimally replicated).
fn close(file: hdrs::File, path: &str) -> object_store::Result<()> {
    file.try_close().map_err(|e| call_error("close", path, e))
}

/// Moves `from` onto `to`: a no-clobber rename, or, to overwrite an existing file, delete then rename (see the
/// module doc). On failure `from` is removed when `discard_source` (a temporary).
fn move_into_place(
    client: &Conn,
    from: &str,
    to: &str,
    overwrite: bool,
    discard_source: bool,
) -> object_store::Result<()> {
    let result = (|| {
        let raw = &client.raw;
        raw.create_dir(parent(to))
            .map_err(|e| call_error("mkdirs", parent(to), e))?;
        let Err(first) = raw.rename(from, to) else {
            return Ok(());
        };
        // `FileSystem#rename` answers false (EIO here) for a missing source and for an existing target alike.
        raw.info(from).map_err(|e| call_error("rename", from, e))?;
        match raw.info(to) {
            Ok(_) if overwrite => {
                raw.delete(to).map_err(|e| call_error("delete", to, e))?;
                raw.rename(from, to).map_err(|e| match raw.info(to) {
                    Ok(_) => generic(HdrsError::RenameRaced {
                        from: from.to_string(),
                        to: to.to_string(),
                    }),
                    Err(_) => call_error("rename", from, e),
                })
            }
            Ok(_) => Err(object_store::Error::AlreadyExists {
                path: to.to_string(),
                source: Box::new(HdrsError::Call {
                    operation: "rename",
                    path: from.to_string(),
                    source: first,
                }),
            }),
            Err(_) => Err(call_error("rename", from, first)),
        }
    })();
    if result.is_err() && discard_source {
        let _ = client.raw.delete(from);
    }
    result
}

/// What a finished put or upload returns: HDFS has neither e-tags nor versions.
fn put_result() -> PutResult {
    PutResult {
        e_tag: None,
        version: None,
        extensions: Default::default(),
    }
}

fn meta_of(location: Path, m: &raw::Entry) -> ObjectMeta {
    ObjectMeta {
        location,
        last_modified: m.modified,
        size: m.size,
        e_tag: None,
        version: None,
    }
}

/// The object path of a child `name` of the directory `dir` (an object path, empty for the root). The name is
/// taken verbatim (an object path segment is the HDFS name itself); a name no object path can hold (a control
/// character) is percent-encoded, so it lists under a name that reads nothing.
fn child(dir: &Path, name: &str) -> Path {
    let raw = if dir.as_ref().is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    };
    match object_store::path::PathPart::parse(name) {
        Ok(_) => Path::parse(&raw).unwrap_or_else(|_| dir.clone().join(name)),
        Err(_) => dir.clone().join(name),
    }
}

/// Every file below `dir` (recursive), as object metadata. A missing `dir` lists nothing.
fn walk(client: &Conn, dir: &Path) -> object_store::Result<Vec<ObjectMeta>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.clone()];
    while let Some(d) = pending.pop() {
        let entries = match client.raw.list(&hdfs_path(&d)) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(call_error("list", &hdfs_path(&d), e)),
        };
        for m in entries {
            let p = child(&d, &m.name);
            if m.is_dir {
                pending.push(p);
            } else {
                out.push(meta_of(p, &m));
            }
        }
    }
    out.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(out)
}

#[async_trait]
impl ObjectStore for HdrsStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let overwrite = match opts.mode {
            PutMode::Overwrite => true,
            PutMode::Create => false,
            PutMode::Update(_) => {
                return Err(object_store::Error::NotImplemented {
                    operation: "conditional put (PutMode::Update)".into(),
                    implementer: STORE.into(),
                })
            }
        };
        let target = hdfs_path(location);
        let temp = self.temp_for(&target);
        self.call("put", &target.clone(), move |client| {
            let mut file = create(client, &temp)?;
            let written = payload
                .iter()
                .try_for_each(|chunk| file.write_all(chunk))
                .map_err(|e| call_error("write", &temp, e));
            let closed = close(file, &temp);
            if let Err(e) = written.and(closed) {
                let _ = client.raw.delete(&temp);
                return Err(e);
            }
            move_into_place(client, &temp, &target, overwrite, true)
        })
        .await?;
        Ok(put_result())
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let target = hdfs_path(location);
        let temp = self.temp_for(&target);
        let opened = temp.clone();
        let file = self
            .call("create", &temp.clone(), move |client| {
                create(client, &opened)
            })
            .await?;
        // Parts are written by one blocking task in the order `put_part` was called, whatever order their
        // futures are polled in (`WriteMultipart` polls several at once).
        let (tx, rx) = std::sync::mpsc::channel::<(PutPayload, tokio::sync::oneshot::Sender<()>)>();
        let writing = temp.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let mut file = file;
            for (payload, done) in rx {
                payload
                    .iter()
                    .try_for_each(|chunk| file.write_all(chunk))
                    .map_err(|e| call_error("write", &writing, e))?;
                let _ = done.send(());
            }
            close(file, &writing)
        });
        Ok(Box::new(HdrsUpload {
            store: self.clone(),
            target,
            temp,
            parts: Some(tx),
            writer: Some(writer),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if options.if_match.is_some()
            || options.if_none_match.is_some()
            || options.if_modified_since.is_some()
            || options.if_unmodified_since.is_some()
            || options.version.is_some()
        {
            return Err(object_store::Error::NotImplemented {
                operation: "conditional get".into(),
                implementer: STORE.into(),
            });
        }
        let path = hdfs_path(location);
        let location = location.clone();
        let (meta, range, bytes) = self
            .call("get", &path.clone(), move |client| {
                let m = client
                    .raw
                    .info(&path)
                    .map_err(|e| call_error("get", &path, e))?;
                if m.is_dir {
                    return Err(object_store::Error::NotFound {
                        path: path.clone(),
                        source: "a directory, not a file".into(),
                    });
                }
                let meta = meta_of(location, &m);
                let range = match &options.range {
                    Some(r) => r
                        .as_range(meta.size)
                        .map_err(|e| object_store::Error::Generic {
                            store: STORE,
                            source: Box::new(e),
                        })?,
                    None => 0..meta.size,
                };
                if options.head || range.is_empty() {
                    return Ok((meta, range, Bytes::new()));
                }
                let len = usize::try_from(range.end - range.start).map_err(|_| {
                    object_store::Error::Generic {
                        store: STORE,
                        source: format!("range {range:?} of {path} does not fit in memory").into(),
                    }
                })?;
                let buf = client
                    .raw
                    .read_range(&path, range.start, len)
                    .map_err(|e| call_error("read", &path, e))?;
                Ok((meta, range, Bytes::from(buf)))
            })
            .await?;
        Ok(GetResult {
            payload: GetResultPayload::Stream(futures::stream::once(async { Ok(bytes) }).boxed()),
            meta,
            range,
            attributes: Default::default(),
            extensions: Default::default(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let store = self.clone();
        locations
            .then(move |location| {
                let store = store.clone();
                async move {
                    let location = location?;
                    let path = hdfs_path(&location);
                    store
                        .call("delete", &path.clone(), move |client| {
                            client.raw.delete(&path).map_err(|e| {
                                // hdfsDelete answers EIO for a missing path too.
                                match client.raw.info(&path) {
                                    Err(missing) if missing.kind() == ErrorKind::NotFound => {
                                        call_error("delete", &path, missing)
                                    }
                                    _ => call_error("delete", &path, e),
                                }
                            })
                        })
                        .await?;
                    Ok(location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let store = self.clone();
        let dir = prefix.cloned().unwrap_or_default();
        futures::stream::once(async move {
            let path = hdfs_path(&dir);
            store
                .call("list", &path, move |client| walk(client, &dir))
                .await
        })
        .map(
            |r| -> BoxStream<'static, object_store::Result<ObjectMeta>> {
                match r {
                    Ok(v) => futures::stream::iter(v.into_iter().map(Ok)).boxed(),
                    Err(e) => futures::stream::once(async { Err(e) }).boxed(),
                }
            },
        )
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let dir = prefix.cloned().unwrap_or_default();
        let path = hdfs_path(&dir);
        self.call("list", &path.clone(), move |client| {
            let entries = match client.raw.list(&path) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(call_error("list", &path, e)),
            };
            let mut out = ListResult {
                common_prefixes: Vec::new(),
                objects: Vec::new(),
                extensions: Default::default(),
            };
            for m in entries {
                let p = child(&dir, &m.name);
                if m.is_dir {
                    out.common_prefixes.push(p);
                } else {
                    out.objects.push(meta_of(p, &m));
                }
            }
            out.common_prefixes.sort();
            out.objects.sort_by(|a, b| a.location.cmp(&b.location));
            Ok(out)
        })
        .await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let overwrite = matches!(options.mode, CopyMode::Overwrite);
        let (from, to) = (hdfs_path(from), hdfs_path(to));
        let temp = self.temp_for(&to);
        self.call("copy", &from.clone(), move |client| {
            client
                .raw
                .create_dir(parent(&temp))
                .map_err(|e| call_error("mkdirs", parent(&temp), e))?;
            if let Err(e) = client.raw.copy(&from, &temp) {
                let _ = client.raw.delete(&temp);
                return Err(call_error("copy", &from, e));
            }
            move_into_place(client, &temp, &to, overwrite, true)
        })
        .await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        let overwrite = matches!(options.target_mode, RenameTargetMode::Overwrite);
        let (from, to) = (hdfs_path(from), hdfs_path(to));
        self.call("rename", &from.clone(), move |client| {
            move_into_place(client, &from, &to, overwrite, false)
        })
        .await
    }
}

/// A multipart upload: parts stream into the temporary file through one blocking writer; completion closes it
/// and renames it into place, abort removes it.
#[derive(Debug)]
struct HdrsUpload {
    store: HdrsStore,
    target: String,
    temp: String,
    parts: Option<std::sync::mpsc::Sender<(PutPayload, tokio::sync::oneshot::Sender<()>)>>,
    writer: Option<tokio::task::JoinHandle<object_store::Result<()>>>,
}

impl HdrsUpload {
    /// Ends the part stream and waits for the writer to close the temporary file.
    async fn finish_writing(&mut self) -> object_store::Result<()> {
        self.parts = None;
        let Some(writer) = self.writer.take() else {
            return Err(generic(HdrsError::Task {
                operation: "upload",
                path: self.target.clone(),
                message: "the upload was already completed or aborted".into(),
            }));
        };
        writer.await.map_err(|e| {
            generic(HdrsError::Task {
                operation: "upload",
                path: self.temp.clone(),
                message: e.to_string(),
            })
        })?
    }
}

#[async_trait]
impl MultipartUpload for HdrsUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let (done, written) = tokio::sync::oneshot::channel();
        let sent = self.parts.as_ref().map(|tx| tx.send((data, done)));
        let temp = self.temp.clone();
        Box::pin(async move {
            match (sent, written.await) {
                (Some(Ok(())), Ok(())) => Ok(()),
                // The writer stopped on an error, which `complete` reports with its cause.
                _ => Err(generic(HdrsError::Call {
                    operation: "write",
                    path: temp,
                    source: std::io::Error::other("the upload's writer stopped"),
                })),
            }
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let written = self.finish_writing().await;
        let (temp, target) = (self.temp.clone(), self.target.clone());
        self.store
            .call("upload completion", &target.clone(), move |client| {
                if let Err(e) = written {
                    let _ = client.raw.delete(&temp);
                    return Err(e);
                }
                move_into_place(client, &temp, &target, true, true)
            })
            .await?;
        Ok(put_result())
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        let _ = self.finish_writing().await;
        let temp = self.temp.clone();
        self.store
            .call("upload abort", &temp.clone(), move |client| {
                client
                    .raw
                    .delete(&temp)
                    .map_err(|e| call_error("delete", &temp, e))
            })
            .await
    }
}
