//! The HTTP download machinery behind `fetch gharchive` and `fetch url`.
//!
//! Takes [`Job`]s (a URL, a dataset, and the final file name when the URL gives one) and produces files in
//! `<landing>/<dataset>/`, one [`Outcome`] per job.
//!
//! How one file is downloaded:
//! 1. If `<dataset>/<name>` already exists, the job is skipped without a request.
//! 2. The body is streamed (memory stays bounded by a few upload chunks, whatever the file size) into a multipart
//!    upload of `<dataset>/.<name>.tmp`. The landing watcher ignores dotfiles and `.tmp` names, and the local store
//!    stages that upload under `.<name>.tmp#<n>`, so nothing the watcher lists is ever partial.
//! 3. A `.gz` file is decoded in full on a blocking thread while it streams (CRC32 and ISIZE of every gzip member
//!    checked); a corrupt file is deleted and downloaded again.
//! 4. The temporary object is renamed to `<dataset>/<name>` with a no-clobber rename (a hard link on the local
//!    store), so a file appears under its final name complete and verified, or not at all.
//!
//! When an attempt fails mid-body (reset, truncation, timeout, cancellation), the bytes received so far are kept
//! in the temporary object and the next attempt asks for the rest with `Range: bytes=<len>-` (guarded by `If-Range`
//! when the server gave a validator). The prefix is only reused across runs for gzip files, whose verification
//! catches a prefix that does not belong to the current file. A server that ignores the range (answers 200) gets
//! the download restarted from byte zero.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt as _;
use indicatif::HumanBytes;
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, WriteMultipart};
use reqwest::header::{self, HeaderMap};
use reqwest::{StatusCode, Url};
use tokio_util::sync::CancellationToken;

use super::body::{TempSink, UPLOAD_CHUNK_BYTES};
use super::headers::{
    content_disposition_name, header_str, parse_content_range, parse_retry_after,
    response_validator,
};
use super::names::sanitize_file_name;
use super::progress::Progress;
use super::retry::{AttemptError, RetryPolicy};
use super::verify::GzipVerifier;
use super::{open_landing, rename_no_clobber, DownloadArgs, FetchContext, FetchError};
use lander_core::store::StoreLocation;

/// Sent with every request so that mirror operators can identify the client.
const USER_AGENT: &str = concat!("lander/", env!("CARGO_PKG_VERSION"));

/// One file to download.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// Where to get it.
    pub url: Url,
    /// The dataset directory under landing.
    pub dataset: String,
    /// The final (already sanitized) name; `None` to take it from the server's `Content-Disposition`.
    pub name: Option<String>,
    /// With `name: None`: the (sanitized) name to use when the server sends no `Content-Disposition` file name.
    pub fallback_name: Option<String>,
}

/// What happened to one [`Job`].
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Downloaded, verified and published.
    Fetched {
        /// The file size.
        bytes: u64,
    },
    /// Already in landing; nothing downloaded.
    Skipped,
    /// The server answered 404 or 410; the caller decides whether that is missing, pending or failed.
    NotFound {
        /// The error, for messages.
        error: FetchError,
    },
    /// Stopped by cancellation before it finished (a partial temporary file may be kept for a resume).
    Cancelled,
    /// Failed after retries, or refused.
    Failed {
        /// Why.
        error: FetchError,
    },
}

/// What a successful attempt left in the temporary object.
pub(super) enum Attempt {
    /// The complete, verified file is in the temporary object.
    Complete { name: String, bytes: u64 },
    /// The server named the file and that name is already in landing.
    AlreadyPresent { name: String },
}

/// Downloads [`Job`]s into landing; see the module docs for the protocol.
pub(crate) struct Downloader {
    pub(super) client: reqwest::Client,
    pub(super) landing: StoreLocation,
    pub(super) policy: RetryPolicy,
    pub(super) max_file_bytes: u64,
    pub(super) concurrency: usize,
    pub(super) progress: Progress,
    /// Landing paths (`<dataset>/<name>`) already ingested ([`FetchContext::ingested`]).
    ingested: HashSet<String>,
}

impl Downloader {
    /// Opens landing with the context's store options and builds the HTTP client (rustls, connect and read
    /// timeouts).
    ///
    /// # Errors
    /// [`FetchError::Landing`] or [`FetchError::Client`].
    pub(crate) async fn new(
        args: &DownloadArgs,
        context: FetchContext,
        progress: Progress,
    ) -> Result<Self, FetchError> {
        let landing = open_landing(&args.landing, &context.storage).await?;
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(args.connect_timeout)
            .read_timeout(args.timeout)
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .map_err(|source| FetchError::Client { source })?;
        Ok(Self {
            ingested: context.ingested,
            client,
            landing,
            policy: RetryPolicy {
                retries: args.retries,
                base: args.retry_backoff,
            },
            max_file_bytes: args.max_file_bytes,
            concurrency: usize::from(args.concurrency.max(1)),
            progress,
        })
    }

    /// The progress reporter, for callers' own log lines.
    pub(crate) fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Runs `jobs` with bounded concurrency; the outcomes are in the order of `jobs`.
    pub(crate) async fn fetch_all(
        &self,
        jobs: Vec<Job>,
        cancel: &CancellationToken,
    ) -> Vec<Outcome> {
        self.fetch_all_while_up(jobs, cancel, None).await
    }

    /// As [`Self::fetch_all`], but when `trip_after` downloads in a row fail (retries exhausted: the source looks
    /// down or broken), the jobs not started yet, and those in flight, end as [`Outcome::Cancelled`] instead of
    /// each retrying against it in turn.
    pub(crate) async fn fetch_all_while_up(
        &self,
        jobs: Vec<Job>,
        cancel: &CancellationToken,
        trip_after: Option<usize>,
    ) -> Vec<Outcome> {
        let count = jobs.len();
        let round = cancel.child_token();
        let failing = std::sync::atomic::AtomicUsize::new(0);
        let (round, failing) = (&round, &failing);
        let mut results: Vec<(usize, Outcome)> =
            futures::stream::iter(jobs.into_iter().enumerate())
                .map(|(index, job)| async move {
                    let outcome = self.fetch(&job, round).await;
                    match &outcome {
                        Outcome::Failed { .. } => {
                            let n = failing.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                            if trip_after.is_some_and(|t| n >= t) {
                                round.cancel();
                            }
                        }
                        Outcome::Cancelled => {}
                        _ => failing.store(0, std::sync::atomic::Ordering::Relaxed),
                    }
                    (index, outcome)
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
        results.sort_by_key(|(index, _)| *index);
        debug_assert_eq!(results.len(), count);
        results.into_iter().map(|(_, outcome)| outcome).collect()
    }

    /// Downloads one job: skip, attempts with retries, verification, publication.
    pub(crate) async fn fetch(&self, job: &Job, cancel: &CancellationToken) -> Outcome {
        let outcome = self.fetch_inner(job, cancel).await;
        if !matches!(outcome, Outcome::Cancelled) {
            self.progress.file_done();
        }
        outcome
    }

    /// Deletes the stale store-client temporaries of earlier interrupted fetches below `<dataset>/`
    /// ([`super::temps`]).
    ///
    /// # Errors
    /// [`FetchError::ObjectStore`].
    pub(crate) async fn remove_stale_temps(&self, dataset: &str) -> Result<usize, FetchError> {
        super::temps::remove_stale_temps(&self.landing, dataset).await
    }

    /// Whether `<dataset>/<name>` is already in landing (or already ingested, see [`FetchContext::ingested`]).
    pub(super) async fn already_present(
        &self,
        dataset: &str,
        name: &str,
    ) -> Result<bool, FetchError> {
        if self.ingested.contains(&format!("{dataset}/{name}")) {
            return Ok(true);
        }
        let location = self.landing.path(&format!("{dataset}/{name}"));
        match self.landing.store.head(&location).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(source) => Err(FetchError::ObjectStore {
                action: "check",
                location: self.landing.describe(&format!("{dataset}/{name}")),
                source,
            }),
        }
    }

    /// Length of the partial temporary object left by an earlier attempt (0 when there is none).
    pub(super) async fn partial_len(&self, temp: &Path) -> Result<u64, FetchError> {
        match self.landing.store.head(temp).await {
            Ok(meta) => Ok(meta.size),
            Err(object_store::Error::NotFound { .. }) => Ok(0),
            Err(source) => Err(self.store_error("check", temp, source)),
        }
    }

    /// Deletes the temporary object, ignoring "not found"; other errors are only logged (the name stays ignored by
    /// the watcher, and the next attempt overwrites it).
    pub(super) async fn discard(&self, temp: &Path) {
        match self.landing.store.delete(temp).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => self.progress.log(|| {
                tracing::warn!(location = %temp, "cannot delete temporary file: {e}");
            }),
        }
    }

    pub(super) fn store_error(
        &self,
        action: &'static str,
        location: &Path,
        source: object_store::Error,
    ) -> FetchError {
        FetchError::ObjectStore {
            action,
            location: self
                .landing
                .relative(location)
                .map(|r| self.landing.describe(&r))
                .unwrap_or_else(|| location.to_string()),
            source,
        }
    }

    /// One request: stream the body (after any kept prefix) into the temporary object and verify it.
    pub(super) async fn attempt(
        &self,
        job: &Job,
        temp: &Path,
        validator: &mut Option<String>,
        cancel: &CancellationToken,
    ) -> Result<Attempt, AttemptError> {
        let url = job.url.as_str();
        // Reuse a kept prefix only when a mismatch would be caught: If-Range with this run's validator, or the
        // gzip check (for a prefix left by an earlier run).
        let resumable = validator.is_some() || job.name.as_deref().is_some_and(is_gzip_name);
        let have = if resumable {
            self.partial_len(temp).await.map_err(AttemptError::Fatal)?
        } else {
            0
        };
        let mut request = self.client.get(job.url.clone());
        if have > 0 {
            request = request.header(header::RANGE, format!("bytes={have}-"));
            if let Some(v) = validator.as_deref() {
                request = request.header(header::IF_RANGE, v);
            }
        }
        let response = tokio::select! {
            () = cancel.cancelled() => return Err(AttemptError::Cancelled),
            r = request.send() => r.map_err(|source| AttemptError::retry(FetchError::Request { url: url.to_string(), source }))?,
        };
        let status = response.status();
        let headers = response.headers().clone();
        let resume_from = match status {
            StatusCode::OK => 0,
            StatusCode::PARTIAL_CONTENT if have > 0 => {
                let value = header_str(&headers, header::CONTENT_RANGE).unwrap_or_default();
                match parse_content_range(&value) {
                    Some(range) if range.start == have => have,
                    _ => {
                        // Not a continuation of what we have: start over from byte zero.
                        self.discard(temp).await;
                        return Err(AttemptError::Retry {
                            error: FetchError::BadContentRange {
                                url: url.to_string(),
                                value,
                                wanted: have,
                            },
                            wait: Some(Duration::ZERO),
                        });
                    }
                }
            }
            StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => {
                // The kept prefix is as long as (or longer than) the file: it cannot be trusted; start over.
                self.discard(temp).await;
                return Err(AttemptError::Retry {
                    error: FetchError::HttpStatus {
                        url: url.to_string(),
                        status: status.as_u16(),
                    },
                    wait: Some(Duration::ZERO),
                });
            }
            StatusCode::NOT_FOUND | StatusCode::GONE => {
                return Err(AttemptError::NotFound(FetchError::NotFound {
                    url: url.to_string(),
                    status: status.as_u16(),
                }));
            }
            s if s == StatusCode::REQUEST_TIMEOUT
                || s == StatusCode::TOO_MANY_REQUESTS
                || s.is_server_error() =>
            {
                let wait = header_str(&headers, header::RETRY_AFTER)
                    .and_then(|v| parse_retry_after(&v, Utc::now()));
                return Err(AttemptError::Retry {
                    error: FetchError::HttpStatus {
                        url: url.to_string(),
                        status: s.as_u16(),
                    },
                    wait,
                });
            }
            s => {
                return Err(AttemptError::Fatal(FetchError::HttpStatus {
                    url: url.to_string(),
                    status: s.as_u16(),
                }));
            }
        };
        *validator = response_validator(&headers);

        let name = match &job.name {
            Some(name) => name.clone(),
            None => {
                let name = self
                    .server_name(job, &headers)
                    .map_err(AttemptError::Fatal)?;
                if self
                    .already_present(&job.dataset, &name)
                    .await
                    .map_err(AttemptError::Fatal)?
                {
                    return Ok(Attempt::AlreadyPresent { name });
                }
                name
            }
        };

        let expected_total = if resume_from > 0 {
            header_str(&headers, header::CONTENT_RANGE)
                .and_then(|v| parse_content_range(&v))
                .and_then(|r| r.total)
        } else {
            response.content_length()
        };
        if let Some(total) = expected_total.filter(|t| *t > self.max_file_bytes) {
            self.discard(temp).await;
            return Err(AttemptError::Fatal(FetchError::TooLarge {
                url: url.to_string(),
                limit_bytes: self.max_file_bytes,
                size_bytes: total,
            }));
        }

        let upload = self
            .landing
            .store
            .put_multipart(temp)
            .await
            .map_err(|e| AttemptError::Fatal(self.store_error("write", temp, e)))?;
        let mut sink = TempSink {
            upload: WriteMultipart::new_with_chunk_size(upload, UPLOAD_CHUNK_BYTES),
            verifier: is_gzip_name(&name).then(GzipVerifier::spawn),
            written: 0,
        };
        let expected_new = expected_total.map(|t| t.saturating_sub(resume_from));
        if let Some(n) = expected_new {
            self.progress.bar.inc_length(n);
        }
        let result = self
            .stream_body(
                job,
                temp,
                response,
                resume_from,
                expected_total,
                &mut sink,
                cancel,
            )
            .await;
        let received_new = sink.written.saturating_sub(resume_from);
        match result {
            Ok(()) => {}
            Err(error) => {
                // Undo this attempt's share of the bar; the next attempt adds its own.
                if let Some(n) = expected_new {
                    self.progress.bar.dec_length(n);
                }
                self.progress.bar.dec(received_new);
                return Err(self.keep_or_drop(temp, sink, error).await);
            }
        }

        sink.upload
            .finish()
            .await
            .map_err(|e| AttemptError::Fatal(self.store_error("write", temp, e)))?;
        if let Some(verifier) = sink.verifier {
            if let Err(source) = verifier.finish().await {
                self.discard(temp).await;
                return Err(AttemptError::retry(FetchError::CorruptGzip {
                    url: url.to_string(),
                    source,
                }));
            }
        }
        if expected_new.is_none() {
            self.progress.bar.inc_length(received_new);
        }
        Ok(Attempt::Complete {
            name,
            bytes: sink.written,
        })
    }

    /// The file name from `Content-Disposition` (sanitized), else the job's fallback name.
    pub(super) fn server_name(&self, job: &Job, headers: &HeaderMap) -> Result<String, FetchError> {
        let url = job.url.as_str();
        match header_str(headers, header::CONTENT_DISPOSITION)
            .and_then(|v| content_disposition_name(&v))
        {
            Some(raw) => sanitize_file_name(&raw, url),
            None => job
                .fallback_name
                .clone()
                .ok_or_else(|| FetchError::NoFileName {
                    url: url.to_string(),
                }),
        }
    }

    /// Moves the verified temporary object to its final name without overwriting anything.
    pub(super) async fn publish(
        &self,
        dataset: &str,
        temp: &Path,
        name: String,
        bytes: u64,
        started: Instant,
    ) -> Outcome {
        let relative = format!("{dataset}/{name}");
        let target = self.landing.path(&relative);
        // Crash here: the verified file stays under its temporary name (ignored by the watcher); the next run
        // resumes it (gzip) or downloads it again.
        let renamed = rename_no_clobber(&self.landing, temp, &target).await;
        // Crash here: the file is under its final name; a leftover temporary hard link is ignored and overwritten.
        match renamed {
            Ok(()) => {
                let elapsed = started.elapsed();
                let rate = bytes as f64 / elapsed.as_secs_f64().max(1e-3);
                self.progress.log(|| {
                    tracing::info!(
                        file = %self.landing.describe(&relative),
                        size = %HumanBytes(bytes),
                        rate = %format!("{}/s", HumanBytes(rate as u64)),
                        "fetched"
                    );
                });
                Outcome::Fetched { bytes }
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                // Another fetch published the same file first.
                self.discard(temp).await;
                Outcome::Skipped
            }
            Err(source) => Outcome::Failed {
                error: FetchError::ObjectStore {
                    action: "publish",
                    location: self.landing.describe(&relative),
                    source,
                },
            },
        }
    }

    /// Removes the progress bar.
    pub(crate) fn finish(&self) {
        self.progress.finish();
    }
}

/// `.<name>.tmp`, or `.url-<hash>.tmp` when the name comes from the server.
pub(super) fn temp_name(job: &Job) -> String {
    match &job.name {
        Some(name) => format!(".{name}.tmp"),
        None => {
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(job.url.as_str().as_bytes());
            format!(".url-{}.tmp", hex::encode(&digest[..8]))
        }
    }
}

/// Whether a file of this name is gzip, and so verified before publication.
pub(super) fn is_gzip_name(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".gz")
}
