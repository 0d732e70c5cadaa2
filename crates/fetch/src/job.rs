//! What the download machinery works on: a [`Job`], its [`Outcome`], and the [`Downloader`] that runs jobs (its
//! state, and the landing primitives every step uses: presence check, temporary object length, discard, store
//! errors). The protocol is in `download` (attempts and publication), `body` (streaming into the temporary
//! object) and `retry` (the backoff policy); they import this module, it imports none of them.

use std::collections::HashSet;
use std::time::Duration;

use object_store::path::Path;
use object_store::ObjectStoreExt as _;
use reqwest::Url;

use super::progress::Progress;
use super::retry::RetryPolicy;
use super::{open_landing, DownloadArgs, FetchContext, FetchError};
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
    pub(crate) fallback_name: Option<String>,
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

/// Downloads [`Job`]s into landing; the protocol is `download`'s.
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
