//! Test-only storage fault injection (cargo feature `failpoints`).
//!
//! `LANDER_FAIL_STORE=<op>:<first>-<last>` makes calls number `first` to `last` (1-based, counted per op) of
//! `op` on the bronze store fail with an I/O error, then lets every later call through: a fault that clears.
//! `op` is `write` (single and multipart puts) or `rename` (renames and copies). Everything else is passed to
//! the real store unchanged, so atomicity and durability are those of the wrapped backend. The same wrapper
//! serves any backend, since it only sees the `ObjectStore` trait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

use crate::store::StoreLocation;

/// Which calls fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Write,
    Rename,
}

/// An `ObjectStore` that fails a chosen range of calls of one kind.
#[derive(Debug)]
pub(crate) struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    op: Op,
    first: u64,
    last: u64,
}

impl std::fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl FaultyStore {
    fn check(&self, op: Op, location: &Path) -> Result<()> {
        if op != self.op {
            return Ok(());
        }
        let n = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        if (self.first..=self.last).contains(&n) {
            return Err(object_store::Error::Generic {
                store: "fault",
                source: Box::new(std::io::Error::other(format!(
                    "injected storage fault on {op:?} call {n} ({location}) by LANDER_FAIL_STORE"
                ))),
            });
        }
        Ok(())
    }
}

/// Calls counted per process, shared by every wrapped store: the kernel's engine writes a local table's log
/// through a store of its own (`crate::table`), and its writes must count in the same sequence as lander's.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// The parsed `LANDER_FAIL_STORE`, or `None` when it is unset (or invalid, which is logged).
fn spec_from_env() -> Option<(Op, u64, u64)> {
    let spec = std::env::var("LANDER_FAIL_STORE").ok()?;
    let parsed = spec.split_once(':').and_then(|(op, range)| {
        let op = match op {
            "write" => Op::Write,
            "rename" => Op::Rename,
            _ => return None,
        };
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        Some((op, a.parse().ok()?, b.parse().ok()?))
    });
    if parsed.is_none() {
        tracing::warn!(%spec, "LANDER_FAIL_STORE is not <write|rename>:<first>-<last>; ignored");
    }
    parsed
}

/// Wraps `store` when `LANDER_FAIL_STORE` is set; returns it unchanged otherwise.
pub(crate) fn wrap_store_from_env(store: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
    match spec_from_env() {
        Some((op, first, last)) => Arc::new(FaultyStore {
            inner: store,
            op,
            first,
            last,
        }),
        None => store,
    }
}

/// Wraps `location`'s store when `LANDER_FAIL_STORE` is set (and logs it); returns it unchanged otherwise.
pub fn wrap_from_env(mut location: StoreLocation) -> StoreLocation {
    if let Ok(spec) = std::env::var("LANDER_FAIL_STORE") {
        tracing::warn!(%spec, "test fault injection: bronze store calls will fail");
    }
    location.store = wrap_store_from_env(location.store.clone());
    location
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.check(Op::Write, location)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.check(Op::Write, location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.check(Op::Rename, to)?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.check(Op::Rename, to)?;
        self.inner.rename_opts(from, to, options).await
    }
}

/// Checkpoint commits attempted so far by this process (for `LANDER_FAIL_CHECKPOINT`).
static CHECKPOINT_COMMITS: AtomicU64 = AtomicU64::new(0);

/// `LANDER_FAIL_CHECKPOINT=commit:<first>-<last>`: checkpoint commits number `first` to `last` (1-based) fail
/// with an I/O error from the (real) sled store's point of view, before anything of them is written, then every
/// later commit goes through: a checkpoint disk that fails for a while. Bronze is already published at that
/// point, so this checks the rollback of published parts.
///
/// # Errors
/// The injected [`crate::checkpoint::CheckpointError::Sled`].
pub(crate) fn checkpoint_commit(
    dir: &std::path::Path,
) -> std::result::Result<(), crate::checkpoint::CheckpointError> {
    let Ok(spec) = std::env::var("LANDER_FAIL_CHECKPOINT") else {
        return Ok(());
    };
    let Some(range) = spec.strip_prefix("commit:") else {
        tracing::warn!(%spec, "LANDER_FAIL_CHECKPOINT is not commit:<first>-<last>; ignored");
        return Ok(());
    };
    let (a, b) = range.split_once('-').unwrap_or((range, range));
    let (Ok(first), Ok(last)) = (a.parse::<u64>(), b.parse::<u64>()) else {
        tracing::warn!(%spec, "LANDER_FAIL_CHECKPOINT is not commit:<first>-<last>; ignored");
        return Ok(());
    };
    let n = CHECKPOINT_COMMITS.fetch_add(1, Ordering::SeqCst) + 1;
    if (first..=last).contains(&n) {
        return Err(crate::checkpoint::CheckpointError::Sled {
            dir: dir.to_path_buf(),
            source: sled::Error::Io(std::io::Error::other(format!(
                "injected checkpoint fault on commit {n} by LANDER_FAIL_CHECKPOINT"
            ))),
        });
    }
    Ok(())
}

/// `LANDER_FAIL_AFTER=<step>`: aborts the process (like a SIGKILL: no destructor, no flush) right after `step`.
/// The steps are named where they are called: the batch protocol's (`crate::modes::context::failpoint`) and
/// compaction's (`optimize-written`: outputs written, not committed; `optimize-committed`).
pub(crate) fn abort_after(step: &str) {
    if std::env::var("LANDER_FAIL_AFTER").is_ok_and(|s| s == step) {
        eprintln!("failpoint: aborting after {step}");
        std::process::abort();
    }
}

/// `LANDER_TEST_GATE=<dir>`: at the gate named `name`, creates `<dir>/<name>.waiting` and waits until
/// `<dir>/<name>.open` exists, so a test can run another writer at exactly that point (e.g. between a
/// compaction's writes and its commit). Passing consumes both marks, so the next arrival waits for a new
/// `.open` (a daemon reaches the gate once per compaction). Without the variable it returns at once.
pub(crate) async fn gate(name: &str) {
    let Some(dir) = std::env::var_os("LANDER_TEST_GATE").map(std::path::PathBuf::from) else {
        return;
    };
    if let Err(e) = std::fs::write(dir.join(format!("{name}.waiting")), b"") {
        tracing::warn!(error = %e, "LANDER_TEST_GATE: cannot create the waiting mark");
        return;
    }
    let open = dir.join(format!("{name}.open"));
    while !open.exists() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_file(dir.join(format!("{name}.waiting")));
    let _ = std::fs::remove_file(open);
}
