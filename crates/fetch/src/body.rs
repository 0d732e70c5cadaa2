//! Streaming one response body into the temporary object: the kept prefix of an earlier attempt first, then the
//! body, fed to the gzip verifier as it goes; and what a failed attempt keeps for a resume.

use std::io;

use bytes::Bytes;
use futures::StreamExt as _;
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, WriteMultipart};
use tokio_util::sync::CancellationToken;

use super::job::{Downloader, Job};
use super::retry::AttemptError;
use super::verify::GzipVerifier;
use super::FetchError;

/// Part size of the multipart upload into landing: the smallest part S3-compatible stores accept, and large enough
/// that the local store issues few writes.
pub(super) const UPLOAD_CHUNK_BYTES: usize = 5 * 1024 * 1024;
/// Upload parts in flight per download; with [`UPLOAD_CHUNK_BYTES`] this bounds a download's buffer to ~15 MiB.
const UPLOAD_PARTS_IN_FLIGHT: usize = 2;

/// The temporary object being written and the verifier reading the same bytes.
pub(super) struct TempSink {
    pub(super) upload: WriteMultipart,
    pub(super) verifier: Option<GzipVerifier>,
    /// Bytes written into the temporary object (kept prefix included).
    pub(super) written: u64,
}

/// Why feeding a chunk failed.
pub(super) enum PushError {
    Store(object_store::Error),
    Corrupt(FetchError),
}

/// How a failed attempt leaves the temporary object.
pub(super) enum SinkError {
    /// Keep the bytes received (a prefix of the file) for a resume.
    Keep(AttemptError),
    /// Drop them (corrupt, too large, or the store failed).
    Discard(AttemptError),
}

impl TempSink {
    pub(super) async fn push(&mut self, chunk: Bytes, url: &str) -> Result<(), PushError> {
        if let Some(verifier) = &mut self.verifier {
            if !verifier.feed(chunk.clone()).await {
                // The decoder stopped early: the data is not valid gzip.
                let source = match self.verifier.take() {
                    Some(v) => v.finish().await.err().unwrap_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, "trailing data after gzip end")
                    }),
                    None => io::Error::other("gzip verifier vanished"),
                };
                return Err(PushError::Corrupt(FetchError::CorruptGzip {
                    url: url.to_string(),
                    source,
                }));
            }
        }
        self.upload
            .wait_for_capacity(UPLOAD_PARTS_IN_FLIGHT)
            .await
            .map_err(PushError::Store)?;
        self.written += chunk.len() as u64;
        self.upload.put(chunk);
        Ok(())
    }
}

/// A retryable [`FetchError::Truncated`] unless `received_bytes` is the `expected_bytes` length.
fn truncation(url: &str, expected_bytes: u64, received_bytes: u64) -> Option<AttemptError> {
    (received_bytes != expected_bytes).then(|| {
        AttemptError::retry(FetchError::Truncated {
            url: url.to_string(),
            expected_bytes,
            received_bytes,
        })
    })
}

impl Downloader {
    /// Copies the kept prefix (when resuming) and then the response body into `sink`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn stream_body(
        &self,
        job: &Job,
        temp: &Path,
        response: reqwest::Response,
        resume_from: u64,
        expected_total: Option<u64>,
        sink: &mut TempSink,
        cancel: &CancellationToken,
    ) -> Result<(), SinkError> {
        let url = job.url.as_str();
        if resume_from > 0 {
            // Object stores cannot append: the new temporary object is the kept prefix followed by the rest.
            let prefix = self.landing.store.get(temp).await.map_err(|e| {
                SinkError::Discard(AttemptError::Fatal(self.store_error("read", temp, e)))
            })?;
            let mut stream = prefix.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    SinkError::Discard(AttemptError::Fatal(self.store_error("read", temp, e)))
                })?;
                sink.push(chunk, url)
                    .await
                    .map_err(|e| SinkError::Discard(self.sink_failure(temp, e)))?;
            }
            if let Some(error) = truncation(url, resume_from, sink.written) {
                return Err(SinkError::Discard(error));
            }
        }
        let mut body = response.bytes_stream();
        loop {
            let next = tokio::select! {
                () = cancel.cancelled() => return Err(SinkError::Keep(AttemptError::Cancelled)),
                next = body.next() => next,
            };
            match next {
                Some(Ok(chunk)) => {
                    let len = chunk.len() as u64;
                    if sink.written + len > self.max_file_bytes {
                        return Err(SinkError::Discard(AttemptError::Fatal(
                            FetchError::TooLarge {
                                url: url.to_string(),
                                limit_bytes: self.max_file_bytes,
                                size_bytes: sink.written + len,
                            },
                        )));
                    }
                    sink.push(chunk, url)
                        .await
                        .map_err(|e| SinkError::Discard(self.sink_failure(temp, e)))?;
                    self.progress.bar.inc(len);
                }
                // A reset, a body shorter than Content-Length, or a read timeout: keep what arrived and resume.
                Some(Err(source)) => {
                    return Err(SinkError::Keep(AttemptError::retry(FetchError::Request {
                        url: url.to_string(),
                        source,
                    })));
                }
                None => break,
            }
        }
        if let Some(error) = expected_total.and_then(|total| truncation(url, total, sink.written)) {
            return Err(SinkError::Keep(error));
        }
        Ok(())
    }

    fn sink_failure(&self, temp: &Path, error: PushError) -> AttemptError {
        match error {
            PushError::Store(e) => AttemptError::Fatal(self.store_error("write", temp, e)),
            PushError::Corrupt(e) => AttemptError::retry(e),
        }
    }

    /// After a failed attempt: keep the bytes received so far as the temporary object (for a resume), or drop them.
    pub(super) async fn keep_or_drop(
        &self,
        temp: &Path,
        sink: TempSink,
        error: SinkError,
    ) -> AttemptError {
        let TempSink {
            upload,
            verifier,
            written,
        } = sink;
        // The verifier saw an incomplete stream; its verdict is meaningless now.
        drop(verifier);
        match error {
            SinkError::Keep(error) if written > 0 => {
                if let Err(e) = upload.finish().await {
                    self.progress.log(|| {
                        tracing::debug!(location = %temp, "cannot keep the partial download: {e}");
                    });
                    self.discard(temp).await;
                }
                error
            }
            SinkError::Keep(error) => {
                let _ = upload.abort().await;
                error
            }
            SinkError::Discard(error) => {
                let _ = upload.abort().await;
                self.discard(temp).await;
                error
            }
        }
    }
}
