//! [`TimeoutStore`]: a remote store whose every call, listed page, read chunk and uploaded part must finish
//! within a limit, after which it fails with [`StoreError::TimedOut`] (inside `object_store::Error::Generic`).
//! Everything else is passed to the wrapped store unchanged, so atomicity and durability are the backend's.

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
    UploadPart,
};

use super::StoreError;

/// Wraps a remote store so that no call can hang: each call, each page of a listing, each chunk of a read and
/// each part of an upload gets the store's timeout, after which it fails with [`StoreError::TimedOut`]
/// (inside `object_store::Error::Generic`).
#[derive(Debug)]
pub(crate) struct TimeoutStore {
    inner: Arc<dyn ObjectStore>,
    limiter: Limiter,
}

impl TimeoutStore {
    /// Wraps `inner`; `backend` (`HDFS`, `S3`) and `base` (the store's URL) name it in errors.
    pub(crate) fn new(
        inner: Arc<dyn ObjectStore>,
        backend: &'static str,
        base: String,
        timeout: Duration,
    ) -> Self {
        let limiter = Limiter {
            backend,
            base: base.into(),
            timeout,
        };
        Self { inner, limiter }
    }
}

/// What a call, and each deferred piece of work (a listing page, a read chunk, an upload part), needs to time
/// itself.
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
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
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
        stream: BoxStream<'static, Result<T>>,
    ) -> BoxStream<'static, Result<T>> {
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
        // Fused: delta_kernel's engine polls a body stream once more after its end, which `unfold` forbids.
        .fuse()
        .boxed()
    }
}

impl fmt::Display for TimeoutStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TimeoutStore({:?}, {})",
            self.limiter.timeout, self.inner
        )
    }
}

// Each method starts the inner call and hands it to the limiter: `run` for one call, `stream` for each item of
// a listing or a read.
#[async_trait]
impl ObjectStore for TimeoutStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let put = self.inner.put_opts(location, payload, opts);
        self.limiter.run("put", Some(location), put).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let start = self.inner.put_multipart_opts(location, opts);
        let upload = self
            .limiter
            .run("upload start", Some(location), start)
            .await?;
        Ok(Box::new(TimeoutUpload {
            upload,
            limiter: self.limiter.clone(),
            location: location.clone(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let get = self.inner.get_opts(location, options);
        let result = self.limiter.run("get", Some(location), get).await?;
        let payload = match result.payload {
            GetResultPayload::Stream(s) => {
                let limiter = self.limiter.clone();
                GetResultPayload::Stream(limiter.stream("read", Some(location.clone()), s))
            }
            file @ GetResultPayload::File(..) => file,
        };
        Ok(GetResult { payload, ..result })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let get = self.inner.get_ranges(location, ranges);
        self.limiter.run("ranged get", Some(location), get).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let deleted = self.inner.delete_stream(locations);
        self.limiter.clone().stream("delete", None, deleted)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let listed = self.inner.list(prefix);
        self.limiter.clone().stream("list", prefix.cloned(), listed)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let listed = self.inner.list_with_offset(prefix, offset);
        self.limiter.clone().stream("list", prefix.cloned(), listed)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let listed = self.inner.list_with_delimiter(prefix);
        self.limiter.run("list", prefix, listed).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let copy = self.inner.copy_opts(from, to, options);
        self.limiter.run("copy", Some(from), copy).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let rename = self.inner.rename_opts(from, to, options);
        self.limiter.run("rename", Some(from), rename).await
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

    async fn complete(&mut self) -> Result<PutResult> {
        let complete = self.upload.complete();
        self.limiter
            .run("upload completion", Some(&self.location), complete)
            .await
    }

    async fn abort(&mut self) -> Result<()> {
        let abort = self.upload.abort();
        self.limiter
            .run("upload abort", Some(&self.location), abort)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
