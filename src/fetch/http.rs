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

use std::collections::HashMap;
use std::io::{self, IsTerminal as _, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, WriteMultipart};
use rand::Rng;
use reqwest::header::{self, HeaderMap};
use reqwest::{StatusCode, Url};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{open_landing, validate_dataset, DownloadArgs, FetchError, FetchSummary, UrlArgs};
use crate::store::StoreLocation;

/// Part size of the multipart upload into landing: the smallest part S3-compatible stores accept, and large enough
/// that the local store issues few writes.
const UPLOAD_CHUNK_BYTES: usize = 5 * 1024 * 1024;
/// Upload parts in flight per download; with [`UPLOAD_CHUNK_BYTES`] this bounds a download's buffer to ~15 MiB.
const UPLOAD_PARTS_IN_FLIGHT: usize = 2;
/// Body chunks queued for the gzip verifier; HTTP chunks are at most a few tens of KiB, so this is at most ~1 MiB.
const VERIFY_QUEUE_CHUNKS: usize = 32;
/// Upper bound of the exponential backoff, so that a long outage is polled at least once a minute.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Upper bound for a server's `Retry-After`, so a bogus value cannot park a download for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// Longest accepted file name in bytes; local filesystems allow 255 and the temporary name adds `.`, `.tmp` and
/// the local store's `#<n>` staging suffix.
const MAX_NAME_BYTES: usize = 200;
/// Sent with every request so that mirror operators can identify the client.
const USER_AGENT: &str = concat!("lander/", env!("CARGO_PKG_VERSION"));

/// How retries are spaced.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Delay before the first retry; doubled per retry.
    pub base: Duration,
}

impl RetryPolicy {
    /// The delay before retry number `retry` (0-based): `base * 2^retry` capped at [`MAX_BACKOFF`], of which the
    /// upper half is random ("equal jitter"), so parallel downloads that failed together do not retry together.
    pub(crate) fn backoff(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(retry.min(30)))
            .min(MAX_BACKOFF);
        let half = exp / 2;
        half + half.mul_f64(rng.random::<f64>())
    }
}

/// Parses a `Retry-After` value (delay in seconds, or an HTTP date), capped at [`MAX_RETRY_AFTER`].
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let when = DateTime::parse_from_rfc2822(value).ok()?;
        (when.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Parses a byte count with an optional unit: `1048576`, `500KB`, `64MiB`, `4GiB` (case-insensitive).
pub(crate) fn parse_byte_size(value: &str) -> Result<u64, String> {
    let trimmed = value.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{value:?} is not a byte size such as 500MB or 4GiB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => return Err(format!("unknown size unit {other:?} in {value:?}")),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{value:?} is too large"))
}

/// Decodes `%XX` escapes (leaving malformed ones as they are) and replaces invalid UTF-8.
pub(crate) fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Turns a decoded file name from a URL or a server into a safe single name inside `<landing>/<dataset>/`.
///
/// Refused: empty names, `.`/`..`, anything with a path separator (`/` or `\`, which also rules out absolute
/// paths), NUL bytes, names longer than [`MAX_NAME_BYTES`], and names ending in a staging suffix (`.tmp`,
/// `._COPYING_`) that the landing watcher would ignore forever. Sanitized: every character other than letters,
/// digits and `.-_+=@,` becomes `_`, and leading dots are dropped (a dotfile would be ignored by the watcher).
pub(crate) fn sanitize_file_name(name: &str, url: &str) -> Result<String, FetchError> {
    let refuse = |reason: &str| FetchError::UnsafeName {
        name: name.to_string(),
        url: url.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(refuse("the name is empty"));
    }
    if name.contains('/') || name.contains('\\') {
        return Err(refuse("it contains a path separator"));
    }
    if name == "." || name == ".." {
        return Err(refuse("it is a relative path component"));
    }
    if name.contains('\0') {
        return Err(refuse("it contains a NUL byte"));
    }
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '=' | '@' | ',') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    if cleaned.is_empty() {
        return Err(refuse("nothing is left after removing leading dots"));
    }
    if cleaned.len() > MAX_NAME_BYTES {
        return Err(refuse("it is longer than 200 bytes"));
    }
    let lower = cleaned.to_ascii_lowercase();
    if lower.ends_with(".tmp") || lower.ends_with("._copying_") {
        return Err(refuse(
            "it ends in a staging suffix that the landing watcher ignores",
        ));
    }
    Ok(cleaned.to_string())
}

/// The raw (still percent-encoded) last path segment of `url`, when it is not empty.
pub(crate) fn url_file_name(url: &Url) -> Option<&str> {
    url.path_segments()
        .and_then(|mut segments| segments.next_back())
        .filter(|segment| !segment.is_empty())
}

/// The decoded file name of a `Content-Disposition` header (`filename*=UTF-8''…` preferred over `filename=`).
pub(crate) fn content_disposition_name(value: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for param in split_header_params(value) {
        let Some((key, raw)) = param.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let raw = raw.trim();
        if key == "filename*" {
            // RFC 5987: charset'language'percent-encoded-value
            let mut parts = raw.splitn(3, '\'');
            let (Some(charset), Some(_lang), Some(encoded)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("iso-8859-1") {
                extended = Some(percent_decode(encoded.trim_matches('"')));
            }
        } else if key == "filename" {
            plain = Some(unquote(raw));
        }
    }
    extended.or(plain)
}

/// Splits a header value on `;` outside double quotes.
fn split_header_params(value: &str) -> Vec<&str> {
    let mut params = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                params.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    params.push(&value[start..]);
    params
}

/// Removes surrounding double quotes and backslash escapes of a quoted-string.
fn unquote(raw: &str) -> String {
    let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return raw.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A `Content-Range: bytes start-end/total` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentRange {
    /// First byte of the body.
    pub start: u64,
    /// Last byte of the body (inclusive).
    pub end: u64,
    /// Length of the complete file, when the server knows it.
    pub total: Option<u64>,
}

/// Parses a `Content-Range` header of a 206 response.
pub(crate) fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    if end < start || total.is_some_and(|t| end >= t) {
        return None;
    }
    Some(ContentRange { start, end, total })
}

/// Parses a command-line URL, accepting only http and https.
pub(crate) fn parse_http_url(raw: &str) -> Result<Url, FetchError> {
    let url = Url::parse(raw).map_err(|e| FetchError::InvalidUrl {
        url: raw.to_string(),
        reason: e.to_string(),
    })?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(FetchError::InvalidUrl {
            url: raw.to_string(),
            reason: format!("scheme {other} is not supported (use http or https)"),
        }),
    }
}

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

/// Why one attempt did not produce a complete file.
#[derive(Debug)]
enum AttemptError {
    /// Worth another attempt, after `wait` when the server said so (`Retry-After`) or after the backoff.
    Retry {
        error: FetchError,
        wait: Option<Duration>,
    },
    /// 404 or 410.
    NotFound(FetchError),
    /// Not worth retrying.
    Fatal(FetchError),
    /// `cancel` fired.
    Cancelled,
}

impl AttemptError {
    fn retry(error: FetchError) -> Self {
        Self::Retry { error, wait: None }
    }
}

/// What a successful attempt left in the temporary object.
enum Attempt {
    /// The complete, verified file is in the temporary object.
    Complete { name: String, bytes: u64 },
    /// The server named the file and that name is already in landing.
    AlreadyPresent { name: String },
}

/// A progress bar on a terminal, nothing otherwise (callers then log plain lines).
#[derive(Clone)]
pub(crate) struct Progress {
    bar: ProgressBar,
    files_done: Arc<AtomicUsize>,
    files_total: Option<usize>,
}

impl Progress {
    /// A bar on stderr when stderr is a terminal, hidden otherwise. `files_total` is `None` when open-ended.
    pub(crate) fn new(files_total: Option<usize>) -> Self {
        let bar = if io::stderr().is_terminal() {
            let template = "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}";
            match ProgressStyle::with_template(template) {
                Ok(style) => {
                    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
                        .with_style(style.progress_chars("=> "));
                    bar.enable_steady_tick(Duration::from_millis(250));
                    bar
                }
                Err(_) => ProgressBar::hidden(),
            }
        } else {
            ProgressBar::hidden()
        };
        let progress = Self {
            bar,
            files_done: Arc::new(AtomicUsize::new(0)),
            files_total,
        };
        progress.update_message();
        progress
    }

    /// Whether a bar is drawn (otherwise per-file log lines are the only progress report).
    pub(crate) fn is_interactive(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// Runs `log` (a `tracing` call) with the bar cleared, so log lines do not tear it.
    pub(crate) fn log(&self, log: impl FnOnce()) {
        if self.is_interactive() {
            self.bar.suspend(log);
        } else {
            log();
        }
    }

    /// Counts one resolved file.
    pub(crate) fn file_done(&self) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        self.update_message();
    }

    /// Removes the bar from the terminal.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn update_message(&self) {
        let done = self.files_done.load(Ordering::Relaxed);
        match self.files_total {
            Some(total) => self.bar.set_message(format!("{done}/{total} files")),
            None => self.bar.set_message(format!("{done} files")),
        }
    }
}

/// Downloads [`Job`]s into landing; see the module docs for the protocol.
pub(crate) struct Downloader {
    client: reqwest::Client,
    landing: StoreLocation,
    policy: RetryPolicy,
    max_file_bytes: u64,
    concurrency: usize,
    progress: Progress,
    /// Landing paths (`<dataset>/<name>`) the checkpoint records as processed.
    ingested: std::collections::HashSet<String>,
}

impl Downloader {
    /// Opens landing and builds the HTTP client (rustls, connect and read timeouts).
    ///
    /// # Errors
    /// [`FetchError::Landing`] or [`FetchError::Client`].
    pub(crate) async fn new(args: &DownloadArgs, progress: Progress) -> Result<Self, FetchError> {
        let landing = open_landing(&args.landing, args.config.as_deref()).await?;
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(args.connect_timeout)
            .read_timeout(args.timeout)
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .map_err(|source| FetchError::Client { source })?;
        let ingested = match &args.checkpoint {
            Some(dir) if dir.join("sled").exists() => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(
                    move || -> Result<_, crate::checkpoint::CheckpointError> {
                        let store = crate::checkpoint::CheckpointStore::open_snapshot(&dir)?;
                        Ok(store.files(None)?.into_iter().map(|f| f.path).collect())
                    },
                )
                .await
                .expect("reading the checkpoint does not panic")?
            }
            _ => std::collections::HashSet::new(),
        };
        Ok(Self {
            ingested,
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
        let count = jobs.len();
        let mut results: Vec<(usize, Outcome)> =
            futures::stream::iter(jobs.into_iter().enumerate())
                .map(|(index, job)| async move { (index, self.fetch(&job, cancel).await) })
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
                    self.progress.log(|| {
                        tracing::warn!(
                            %url,
                            retry,
                            of = self.policy.retries,
                            delay = %humantime::format_duration(delay),
                            "retrying download: {error}"
                        );
                    });
                    tokio::select! {
                        () = cancel.cancelled() => return Outcome::Cancelled,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Deletes the stale store-client temporaries of earlier interrupted fetches below `<dataset>/`
    /// ([`super::temps`]).
    ///
    /// # Errors
    /// [`FetchError::ObjectStore`].
    pub(crate) async fn remove_stale_temps(&self, dataset: &str) -> Result<usize, FetchError> {
        super::temps::remove_stale_temps(&self.landing, dataset).await
    }

    /// Whether `<dataset>/<name>` is already in landing (or recorded in the checkpoint given with `--checkpoint`).
    async fn already_present(&self, dataset: &str, name: &str) -> Result<bool, FetchError> {
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
    async fn partial_len(&self, temp: &Path) -> Result<u64, FetchError> {
        match self.landing.store.head(temp).await {
            Ok(meta) => Ok(meta.size),
            Err(object_store::Error::NotFound { .. }) => Ok(0),
            Err(source) => Err(self.store_error("check", temp, source)),
        }
    }

    /// Deletes the temporary object, ignoring "not found"; other errors are only logged (the name stays ignored by
    /// the watcher, and the next attempt overwrites it).
    async fn discard(&self, temp: &Path) {
        match self.landing.store.delete(temp).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => self.progress.log(|| {
                tracing::warn!(location = %temp, "cannot delete temporary file: {e}");
            }),
        }
    }

    fn store_error(
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
    async fn attempt(
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

    /// Copies the kept prefix (when resuming) and then the response body into `sink`.
    #[allow(clippy::too_many_arguments)]
    async fn stream_body(
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
            if sink.written != resume_from {
                return Err(SinkError::Discard(AttemptError::retry(
                    FetchError::Truncated {
                        url: url.to_string(),
                        expected_bytes: resume_from,
                        received_bytes: sink.written,
                    },
                )));
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
        if let Some(total) = expected_total {
            if sink.written != total {
                return Err(SinkError::Keep(AttemptError::retry(
                    FetchError::Truncated {
                        url: url.to_string(),
                        expected_bytes: total,
                        received_bytes: sink.written,
                    },
                )));
            }
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
    async fn keep_or_drop(&self, temp: &Path, sink: TempSink, error: SinkError) -> AttemptError {
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

    /// The file name from `Content-Disposition` (sanitized), else the job's fallback name.
    fn server_name(&self, job: &Job, headers: &HeaderMap) -> Result<String, FetchError> {
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
    async fn publish(
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
        let renamed = match self.landing.store.rename_if_not_exists(temp, &target).await {
            Err(
                object_store::Error::NotImplemented { .. }
                | object_store::Error::NotSupported { .. },
            ) => {
                // Stores without an atomic no-clobber rename: check, then plain rename (a race with a concurrent
                // fetch of the same file can only replace it with identical content).
                match self.landing.store.head(&target).await {
                    Ok(_) => Err(object_store::Error::AlreadyExists {
                        path: target.to_string(),
                        source: "already exists".into(),
                    }),
                    Err(object_store::Error::NotFound { .. }) => {
                        self.landing.store.rename(temp, &target).await
                    }
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
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
fn temp_name(job: &Job) -> String {
    match &job.name {
        Some(name) => format!(".{name}.tmp"),
        None => {
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(job.url.as_str().as_bytes());
            let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!(".url-{hex}.tmp")
        }
    }
}

/// Whether a file of this name is gzip, and so verified before publication.
fn is_gzip_name(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".gz")
}

/// A strong validator for `If-Range`: a strong ETag, else Last-Modified.
fn response_validator(headers: &HeaderMap) -> Option<String> {
    header_str(headers, header::ETAG)
        .filter(|etag| !etag.starts_with("W/"))
        .or_else(|| header_str(headers, header::LAST_MODIFIED))
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The temporary object being written and the verifier reading the same bytes.
struct TempSink {
    upload: WriteMultipart,
    verifier: Option<GzipVerifier>,
    /// Bytes written into the temporary object (kept prefix included).
    written: u64,
}

/// Why feeding a chunk failed.
enum PushError {
    Store(object_store::Error),
    Corrupt(FetchError),
}

/// How a failed attempt leaves the temporary object.
enum SinkError {
    /// Keep the bytes received (a prefix of the file) for a resume.
    Keep(AttemptError),
    /// Drop them (corrupt, too large, or the store failed).
    Discard(AttemptError),
}

impl TempSink {
    async fn push(&mut self, chunk: Bytes, url: &str) -> Result<(), PushError> {
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

/// Decodes a gzip stream on a blocking thread as it is downloaded, to check every member's CRC32 and length.
pub(crate) struct GzipVerifier {
    sender: Option<mpsc::Sender<Bytes>>,
    task: tokio::task::JoinHandle<io::Result<u64>>,
}

impl GzipVerifier {
    /// Starts the decoder thread.
    pub(crate) fn spawn() -> Self {
        let (sender, receiver) = mpsc::channel(VERIFY_QUEUE_CHUNKS);
        let task = tokio::task::spawn_blocking(move || {
            let mut reader = ChannelReader {
                receiver,
                current: Bytes::new(),
                received: 0,
            };
            let mut decoder = flate2::read::MultiGzDecoder::new(&mut reader);
            let decoded = io::copy(&mut decoder, &mut io::sink())?;
            drop(decoder);
            // The decoder reads to the end of the stream (looking for further members), so on success every queued
            // chunk has been consumed and the sender never blocks on a finished decoder.
            if reader.received == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file is empty",
                ));
            }
            Ok(decoded)
        });
        Self {
            sender: Some(sender),
            task,
        }
    }

    /// Queues `chunk`; `false` when the decoder has already stopped (corrupt data).
    pub(crate) async fn feed(&mut self, chunk: Bytes) -> bool {
        match &self.sender {
            Some(sender) => sender.send(chunk).await.is_ok(),
            None => false,
        }
    }

    /// Ends the stream and returns the decoded length, or the decoder's error.
    pub(crate) async fn finish(mut self) -> io::Result<u64> {
        drop(self.sender.take());
        match (&mut self.task).await {
            Ok(result) => result,
            Err(join) => Err(io::Error::other(join)),
        }
    }
}

/// A blocking `Read` over chunks received from an async producer.
struct ChannelReader {
    receiver: mpsc::Receiver<Bytes>,
    current: Bytes,
    received: u64,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                Some(chunk) => {
                    self.received += chunk.len() as u64;
                    self.current = chunk;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// `lander fetch url`.
pub(crate) async fn run_urls(
    args: UrlArgs,
    cancel: CancellationToken,
) -> Result<FetchSummary, FetchError> {
    validate_dataset(&args.dataset)?;
    let urls = args
        .urls
        .iter()
        .map(|raw| parse_http_url(raw))
        .collect::<Result<Vec<_>, _>>()?;
    let progress = Progress::new(Some(urls.len()));
    let downloader = Downloader::new(&args.download, progress).await?;
    downloader.remove_stale_temps(&args.dataset).await?;
    let mut summary = FetchSummary::default();
    let mut jobs = Vec::with_capacity(urls.len());
    let mut names: HashMap<String, String> = HashMap::new();
    for url in urls {
        let url_name = match url_file_name(&url)
            .map(|raw| sanitize_file_name(&percent_decode(raw), url.as_str()))
        {
            None => None,
            Some(Ok(name)) => Some(name),
            Some(Err(error)) => {
                downloader.progress().log(|| tracing::error!("{error}"));
                summary.failed += 1;
                continue;
            }
        };
        let (name, fallback_name) = if args.remote_header_name {
            (None, url_name)
        } else {
            (url_name, None)
        };
        if let Some(name) = &name {
            if let Some(other) = names.get(name) {
                let error = FetchError::DuplicateName {
                    name: name.clone(),
                    url: url.to_string(),
                    other: other.clone(),
                };
                downloader.progress().log(|| tracing::error!("{error}"));
                summary.failed += 1;
                continue;
            }
            names.insert(name.clone(), url.to_string());
        }
        jobs.push(Job {
            url,
            dataset: args.dataset.clone(),
            name,
            fallback_name,
        });
    }
    for outcome in downloader.fetch_all(jobs, &cancel).await {
        match outcome {
            Outcome::Fetched { bytes } => {
                summary.fetched += 1;
                summary.bytes += bytes;
            }
            Outcome::Skipped => summary.skipped += 1,
            Outcome::Cancelled => summary.pending += 1,
            // An explicitly requested URL that does not exist is a failure, not a gap.
            Outcome::NotFound { error } | Outcome::Failed { error } => {
                downloader.progress().log(|| tracing::error!("{error}"));
                summary.failed += 1;
            }
        }
    }
    downloader.finish();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;
    use std::io::Write as _;

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let policy = RetryPolicy {
            retries: 5,
            base: Duration::from_millis(500),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for retry in 0..4 {
            let full = Duration::from_millis(500 * (1 << retry));
            for _ in 0..50 {
                let d = policy.backoff(retry, &mut rng);
                assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?}");
            }
        }
        let d = policy.backoff(40, &mut rng);
        assert!(d <= MAX_BACKOFF && d >= MAX_BACKOFF / 2);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .expect("valid date")
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("123"), Ok(123));
        assert_eq!(parse_byte_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_byte_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_byte_size("64 mib"), Ok(64 << 20));
        assert!(parse_byte_size("lots").is_err());
        assert!(parse_byte_size("5XB").is_err());
        assert!(parse_byte_size("99999999999999TiB").is_err());
    }

    #[test]
    fn names_are_sanitized_or_refused() {
        let ok = |n: &str| sanitize_file_name(n, "http://x/").expect("accepted");
        assert_eq!(ok("2015-01-01-0.json.gz"), "2015-01-01-0.json.gz");
        assert_eq!(ok("ventas octubre.csv"), "ventas_octubre.csv");
        assert_eq!(ok("transacciones_año.csv"), "transacciones_año.csv");
        assert_eq!(ok(".env"), "env");
        assert_eq!(ok("a..b"), "a..b");
        assert_eq!(ok("C:evil"), "C_evil");
        assert_eq!(ok("x#1"), "x_1");
        for bad in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "/etc/passwd",
            "..\\windows",
            "a/b",
            "nul\0byte",
            "...",
            "x.tmp",
            "x._COPYING_",
        ] {
            assert!(
                matches!(
                    sanitize_file_name(bad, "http://x/"),
                    Err(FetchError::UnsafeName { .. })
                ),
                "{bad:?} should be refused"
            );
        }
        assert!(sanitize_file_name(&"a".repeat(201), "u").is_err());
    }

    #[test]
    fn url_names_are_percent_decoded_before_checks() {
        let url = Url::parse("http://h/files/..%2F..%2Fevil.csv?x=1").expect("url");
        let raw = url_file_name(&url).expect("segment");
        assert_eq!(percent_decode(raw), "../../evil.csv");
        assert!(sanitize_file_name(&percent_decode(raw), url.as_str()).is_err());
        // A literal `..` segment is already resolved by URL parsing.
        let url = Url::parse("http://h/a/../../b.csv").expect("url");
        assert_eq!(url_file_name(&url), Some("b.csv"));
        let url = Url::parse("http://h/dir/").expect("url");
        assert_eq!(url_file_name(&url), None);
        assert_eq!(percent_decode("100%.csv"), "100%.csv");
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
    }

    #[test]
    fn content_disposition_names() {
        assert_eq!(
            content_disposition_name(r#"attachment; filename="ventas.csv""#).as_deref(),
            Some("ventas.csv")
        );
        assert_eq!(
            content_disposition_name(r#"attachment; filename="a;b \"q\".csv""#).as_deref(),
            Some(r#"a;b "q".csv"#)
        );
        assert_eq!(
            content_disposition_name(
                "attachment; filename=plain.csv; filename*=UTF-8''a%C3%B1o.csv"
            )
            .as_deref(),
            Some("año.csv")
        );
        assert_eq!(content_disposition_name("inline").as_deref(), None);
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some(ContentRange {
                start: 100,
                end: 199,
                total: Some(200)
            })
        );
        assert_eq!(
            parse_content_range("bytes 0-9/*").and_then(|r| r.total),
            None
        );
        assert_eq!(parse_content_range("bytes 5-4/10"), None);
        assert_eq!(parse_content_range("bytes 0-10/10"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }

    #[test]
    fn only_http_urls() {
        assert!(parse_http_url("https://data.gharchive.org/2015-01-01-0.json.gz").is_ok());
        assert!(parse_http_url("file:///etc/passwd").is_err());
        assert!(parse_http_url("not a url").is_err());
    }

    fn gzip(members: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for member in members {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(member).expect("compress");
            out.extend(enc.finish().expect("compress"));
        }
        out
    }

    async fn verify(data: Vec<u8>, chunk: usize) -> io::Result<u64> {
        let mut verifier = GzipVerifier::spawn();
        for piece in data.chunks(chunk.max(1)) {
            if !verifier.feed(Bytes::copy_from_slice(piece)).await {
                break;
            }
        }
        verifier.finish().await
    }

    #[tokio::test]
    async fn gzip_verifier_accepts_multi_member_and_rejects_damage() {
        let payload = b"{\"id\":\"1\"}\n".repeat(2000);
        let good = gzip(&[&payload, b"second member\n"]);
        assert_eq!(
            verify(good.clone(), 333).await.expect("valid"),
            payload.len() as u64 + 14
        );

        let truncated = good[..good.len() - 5].to_vec();
        assert!(verify(truncated, 100).await.is_err());

        let mut bad_crc = gzip(&[&payload]);
        let n = bad_crc.len();
        bad_crc[n - 6] ^= 0xff;
        assert!(verify(bad_crc, 1000).await.is_err());

        assert!(verify(Vec::new(), 10).await.is_err());
        assert!(verify(b"not gzip at all".repeat(100), 64).await.is_err());
    }
}
