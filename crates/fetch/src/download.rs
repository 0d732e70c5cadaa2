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

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt as _;
use indicatif::HumanBytes;
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, WriteMultipart};
use reqwest::header::{self, HeaderMap};
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use super::body::{TempSink, UPLOAD_CHUNK_BYTES};
use super::headers::{
    content_disposition_name, header_str, parse_content_range, parse_retry_after,
    response_validator,
};
use super::job::{is_gzip_name, temp_name, Attempt, Downloader, Job, Outcome};
use super::names::sanitize_file_name;
use super::retry::AttemptError;
use super::verify::GzipVerifier;
use super::{rename_no_clobber, FetchError};

impl Downloader {
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

    /// The attempt loop: skip what is already in landing, then attempt until complete, not found, fatal,
    /// cancelled or out of retries (waiting [`RetryPolicy::backoff`](super::retry::RetryPolicy::backoff) or the server's `Retry-After` in between).
    async fn fetch_inner(&self, job: &Job, cancel: &CancellationToken) -> Outcome {
        if cancel.is_cancelled() {
            return Outcome::Cancelled;
        }
        if let Some(name) = &job.name {
            match self.already_present(&job.dataset, name).await {
                Ok(true) => {
                    tracing::debug!(file = %name, "skipped: already in landing");
                    return Outcome::Skipped;
                }
                Ok(false) => {}
                Err(error) => return Outcome::Failed { error },
            }
        }
        let temp = self
            .landing
            .path(&format!("{}/{}", job.dataset, temp_name(job)));
        let url = job.url.as_str();
        let started = Instant::now();
        let mut validator: Option<String> = None;
        let mut retry = 0u32;
        loop {
            match self.attempt(job, &temp, &mut validator, cancel).await {
                Ok(Attempt::Complete { name, bytes }) => {
                    return self
                        .publish(&job.dataset, &temp, name, bytes, started)
                        .await;
                }
                Ok(Attempt::AlreadyPresent { name }) => {
                    tracing::debug!(file = %name, "skipped: already in landing");
                    return Outcome::Skipped;
                }
                Err(AttemptError::NotFound(error)) => return Outcome::NotFound { error },
                Err(AttemptError::Fatal(error)) => return Outcome::Failed { error },
                Err(AttemptError::Cancelled) => return Outcome::Cancelled,
                Err(AttemptError::Retry { error, wait }) => {
                    if retry >= self.policy.retries {
                        return Outcome::Failed {
                            error: FetchError::RetriesExhausted {
                                url: url.to_string(),
                                attempts: retry + 1,
                                last: Box::new(error),
                            },
                        };
                    }
                    let delay =
                        wait.unwrap_or_else(|| self.policy.backoff(retry, &mut rand::rng()));
                    retry += 1;
                    // One warning per download: its later retries are debug lines, and giving up is an error
                    // line with the attempts and the last cause (a source that is down would otherwise print a
                    // line per retry of every file in flight).
                    if retry == 1 {
                        self.progress.log(|| {
                            tracing::warn!(
                                %url,
                                retries = self.policy.retries,
                                delay = %humantime::format_duration(delay),
                                "retrying download: {error}"
                            );
                        });
                    } else {
                        tracing::debug!(%url, retry, of = self.policy.retries, delay = %humantime::format_duration(delay), "retrying download: {error}");
                    }
                    tokio::select! {
                        () = cancel.cancelled() => return Outcome::Cancelled,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// One request: stream the body (after any kept prefix) into the temporary object and verify it.
    ///
    /// In order: [`Self::send`] (request, resuming a kept prefix), [`Self::resume_point`] (the status decides:
    /// resume, start over, retry or give up), [`Self::final_name`], [`Self::expected_total`], then the body is
    /// streamed into a [`TempSink`] ([`Self::stream_body`]) and the temporary object finished and verified
    /// ([`Self::finish_temp`]).
    pub(super) async fn attempt(
        &self,
        job: &Job,
        temp: &Path,
        validator: &mut Option<String>,
        cancel: &CancellationToken,
    ) -> Result<Attempt, AttemptError> {
        let url = job.url.as_str();
        let (response, have) = self.send(job, temp, validator.as_deref(), cancel).await?;
        let headers = response.headers().clone();
        let resume_from = self
            .resume_point(url, temp, response.status(), &headers, have)
            .await?;
        *validator = response_validator(&headers);

        let (name, present) = self.final_name(job, &headers).await?;
        if present {
            return Ok(Attempt::AlreadyPresent { name });
        }
        let expected_total = self
            .expected_total(url, temp, &response, &headers, resume_from)
            .await?;

        let mut sink = self.open_sink(temp, &name).await?;
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
        if let Err(error) = result {
            // Undo this attempt's share of the bar; the next attempt adds its own.
            if let Some(n) = expected_new {
                self.progress.bar.dec_length(n);
            }
            self.progress.bar.dec(received_new);
            return Err(self.keep_or_drop(temp, sink, error).await);
        }
        let bytes = sink.written;
        self.finish_temp(url, temp, sink).await?;
        if expected_new.is_none() {
            self.progress.bar.inc_length(received_new);
        }
        Ok(Attempt::Complete { name, bytes })
    }

    /// Sends the request for `job`, asking only for the rest (`Range`, guarded by `If-Range` with `validator`)
    /// when a kept prefix of the temporary object can be trusted. Out: the response and the kept prefix's length
    /// (0 when there is none or it is not reused).
    async fn send(
        &self,
        job: &Job,
        temp: &Path,
        validator: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<(reqwest::Response, u64), AttemptError> {
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
            if let Some(v) = validator {
                request = request.header(header::IF_RANGE, v);
            }
        }
        let response = tokio::select! {
            () = cancel.cancelled() => return Err(AttemptError::Cancelled),
            r = request.send() => r.map_err(|source| AttemptError::retry(FetchError::Request { url: url.to_string(), source }))?,
        };
        Ok((response, have))
    }

    /// What the response's `status` means for an attempt that kept `have` bytes. Out: the offset the body starts
    /// at (`have` for a matching 206, 0 for a 200), or the attempt's error (a 206 or 416 that does not continue
    /// the kept prefix discards it and retries at once).
    async fn resume_point(
        &self,
        url: &str,
        temp: &Path,
        status: StatusCode,
        headers: &HeaderMap,
        have: u64,
    ) -> Result<u64, AttemptError> {
        match status {
            StatusCode::OK => Ok(0),
            StatusCode::PARTIAL_CONTENT if have > 0 => {
                let value = header_str(headers, header::CONTENT_RANGE).unwrap_or_default();
                match parse_content_range(&value) {
                    Some(range) if range.start == have => Ok(have),
                    _ => {
                        // Not a continuation of what we have: start over from byte zero.
                        self.discard(temp).await;
                        Err(AttemptError::Retry {
                            error: FetchError::BadContentRange {
                                url: url.to_string(),
                                value,
                                wanted: have,
                            },
                            wait: Some(Duration::ZERO),
                        })
                    }
                }
            }
            StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => {
                // The kept prefix is as long as (or longer than) the file: it cannot be trusted; start over.
                self.discard(temp).await;
                Err(AttemptError::Retry {
                    error: FetchError::HttpStatus {
                        url: url.to_string(),
                        status: status.as_u16(),
                    },
                    wait: Some(Duration::ZERO),
                })
            }
            StatusCode::NOT_FOUND | StatusCode::GONE => {
                Err(AttemptError::NotFound(FetchError::NotFound {
                    url: url.to_string(),
                    status: status.as_u16(),
                }))
            }
            s if s == StatusCode::REQUEST_TIMEOUT
                || s == StatusCode::TOO_MANY_REQUESTS
                || s.is_server_error() =>
            {
                let wait = header_str(headers, header::RETRY_AFTER)
                    .and_then(|v| parse_retry_after(&v, Utc::now()));
                Err(AttemptError::Retry {
                    error: FetchError::HttpStatus {
                        url: url.to_string(),
                        status: s.as_u16(),
                    },
                    wait,
                })
            }
            s => Err(AttemptError::Fatal(FetchError::HttpStatus {
                url: url.to_string(),
                status: s.as_u16(),
            })),
        }
    }

    /// The file's final name: the job's, or the server's ([`Self::server_name`]). Out: the name, and whether a
    /// server-given name is already in landing (then nothing is downloaded).
    async fn final_name(
        &self,
        job: &Job,
        headers: &HeaderMap,
    ) -> Result<(String, bool), AttemptError> {
        if let Some(name) = &job.name {
            return Ok((name.clone(), false));
        }
        let name = self
            .server_name(job, headers)
            .map_err(AttemptError::Fatal)?;
        let present = self
            .already_present(&job.dataset, &name)
            .await
            .map_err(AttemptError::Fatal)?;
        Ok((name, present))
    }

    /// The whole file's length as the response announces it (`Content-Range` total when resuming from
    /// `resume_from`, else `Content-Length`), if it does. A file announced over `max_file_bytes` is refused and
    /// the temporary object discarded.
    async fn expected_total(
        &self,
        url: &str,
        temp: &Path,
        response: &reqwest::Response,
        headers: &HeaderMap,
        resume_from: u64,
    ) -> Result<Option<u64>, AttemptError> {
        let expected_total = if resume_from > 0 {
            header_str(headers, header::CONTENT_RANGE)
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
        Ok(expected_total)
    }

    /// Starts the multipart upload of the temporary object, with a gzip verifier when `name` is gzip.
    async fn open_sink(&self, temp: &Path, name: &str) -> Result<TempSink, AttemptError> {
        let upload = self
            .landing
            .store
            .put_multipart(temp)
            .await
            .map_err(|e| AttemptError::Fatal(self.store_error("write", temp, e)))?;
        Ok(TempSink {
            upload: WriteMultipart::new_with_chunk_size(upload, UPLOAD_CHUNK_BYTES),
            verifier: is_gzip_name(name).then(GzipVerifier::spawn),
            written: 0,
        })
    }

    /// After the whole body arrived: completes the upload, then waits for the gzip verdict (a corrupt file is
    /// discarded and retried).
    async fn finish_temp(
        &self,
        url: &str,
        temp: &Path,
        sink: TempSink,
    ) -> Result<(), AttemptError> {
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
        Ok(())
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
}
