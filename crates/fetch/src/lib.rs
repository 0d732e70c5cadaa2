//! Fetch: the side entrance that only *writes into* landing.
//!
//! Takes a command's arguments (`fetch gharchive`, `fetch url`, `fetch s3`, `generate sales`) and produces files
//! under `<landing>/<dataset>/<name>`. It shares the object-store helpers ([`lander_core::store`]) with the pipeline, not
//! its state: it reads neither the config file nor the checkpoint. The CLI (`cli::fetch`) loads those and hands
//! over plain values in a [`FetchContext`]: the `[storage]` options and the landing paths already ingested.
//!
//! Guarantees:
//! - **Atomic publication.** Every file is streamed to a temporary name that the landing watcher ignores (a name
//!   starting with `.` and ending in `.tmp`; the local store's own staging suffix `#<n>` is appended to that), verified
//!   (gzip files are fully decoded, CRC and length checked), and only then moved to its final name with a
//!   no-clobber rename. A partial file is never visible under a final name, even after a crash.
//! - **Idempotent and resumable.** A file already in landing under its final name is skipped without a request. A
//!   download that was interrupted keeps its temporary file and resumes with an HTTP `Range` request when the server
//!   supports it (restarting from zero otherwise).
//! - **Confined.** Names from URLs or from the server (`Content-Disposition`) are sanitized and can never leave
//!   `<landing>/<dataset>/`.
//! - **Per-file severity.** One file failing, missing or not yet published never stops the others; the
//!   [`FetchSummary`] counts each outcome and the CLI exits non-zero when `failed > 0`.
#![warn(missing_docs)]
// Docs are built with private items (`scripts/test`): public items may link to crate-private ones.
#![allow(rustdoc::private_intra_doc_links)]

mod body;
mod download;
pub mod generate;
pub mod gharchive;
mod headers;
mod job;
mod names;
mod progress;
mod retry;
pub mod s3;
pub(crate) mod temps;
pub mod url;
mod verify;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

pub use generate::{generate_sales, SalesArgs, SalesSummary};
pub use gharchive::GharchiveArgs;
use names::validate_dataset;

use lander_core::store::{StoreError, StoreLocation};

/// Default landing location of every fetch and generate command: `lander run`'s.
pub use lander_core::DEFAULT_LANDING;

/// Errors of the fetch and generate commands.
///
/// Per-file conditions (a failed download, a refused name) are reported in the [`FetchSummary`] and logged; only
/// conditions that stop the whole command (bad arguments, unusable landing) are returned from the command's run
/// function ([`gharchive::run`], [`url::run_urls`], [`s3::run`], [`generate_sales`]).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The landing location could not be opened.
    #[error("cannot open landing {landing}: {source}")]
    Landing {
        /// The landing location as given.
        landing: String,
        /// The underlying error.
        source: StoreError,
    },
    /// A command-line value is invalid.
    #[error("invalid {name} {value:?}: {reason}")]
    InvalidArgument {
        /// The option (e.g. `--from`).
        name: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A URL cannot be fetched (unparsable or not http/https).
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file name taken from a URL or from the server would be unsafe or useless in landing.
    #[error("refusing file name {name:?} from {url}: {reason}")]
    UnsafeName {
        /// The name as received (after percent-decoding).
        name: String,
        /// Where the name came from.
        url: String,
        /// Why it is refused.
        reason: String,
    },
    /// Neither the URL nor the server gave a file name.
    #[error("cannot name the file downloaded from {url}: the url has no last path segment and the server sent no Content-Disposition file name")]
    NoFileName {
        /// The URL.
        url: String,
    },
    /// Two URLs of one command would land under the same name.
    #[error("{url} would land as {name}, which {other} already lands as")]
    DuplicateName {
        /// The final name.
        name: String,
        /// The URL refused.
        url: String,
        /// The earlier URL with the same name.
        other: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the http client: {source}")]
    Client {
        /// The underlying error.
        source: reqwest::Error,
    },
    /// A request failed without a usable response: connect error, timeout, reset or truncated body.
    #[error("request to {url} failed: {source}")]
    Request {
        /// The URL.
        url: String,
        /// The underlying error.
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("{url} answered http {status}")]
    HttpStatus {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The server answered 404 or 410.
    #[error("{url} does not exist (http {status})")]
    NotFound {
        /// The URL.
        url: String,
        /// 404 or 410.
        status: u16,
    },
    /// The body ended before the announced length.
    #[error("download of {url} truncated: received {received_bytes} of {expected_bytes} bytes")]
    Truncated {
        /// The URL.
        url: String,
        /// The length announced by the server.
        expected_bytes: u64,
        /// The bytes received, including a resumed prefix.
        received_bytes: u64,
    },
    /// A resumed request came back with a range that does not continue the partial file.
    #[error("{url} answered a range request with unusable Content-Range {value:?} (wanted bytes from {wanted})")]
    BadContentRange {
        /// The URL.
        url: String,
        /// The header value.
        value: String,
        /// The first byte requested.
        wanted: u64,
    },
    /// A gzip file failed verification (bad CRC or length, truncated or not gzip at all).
    #[error("downloaded {url} is not a valid gzip file: {source}")]
    CorruptGzip {
        /// The URL.
        url: String,
        /// The decoder's error.
        source: std::io::Error,
    },
    /// A file is larger than `--max-file-bytes`.
    #[error("{url} is larger than the limit of {limit_bytes} bytes (at least {size_bytes} bytes)")]
    TooLarge {
        /// The URL.
        url: String,
        /// The configured limit.
        limit_bytes: u64,
        /// The size announced or received so far.
        size_bytes: u64,
    },
    /// Every attempt failed with a retryable error.
    #[error("giving up on {url} after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// The URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        last: Box<FetchError>,
    },
    /// Reading or writing landing failed.
    #[error("cannot {action} {location}: {source}")]
    ObjectStore {
        /// What was being done (`write`, `rename`, ...).
        action: &'static str,
        /// The object location.
        location: String,
        /// The underlying error.
        source: object_store::Error,
    },
    /// A file of the same name already exists where `generate` wants to publish.
    #[error("refusing to overwrite {location}: choose another --seed or --prefix")]
    AlreadyExists {
        /// The object location.
        location: String,
    },
    /// A background task (gzip verification, row generation) panicked or was cancelled.
    #[error("background task for {what} failed: {source}")]
    Task {
        /// What the task did.
        what: String,
        /// The join error.
        source: tokio::task::JoinError,
    },
    /// The source location of `fetch s3` could not be opened.
    #[error("cannot open {url}: {source}")]
    Source {
        /// The location as given.
        url: String,
        /// The underlying error (boxed: keeps `FetchError` small).
        source: Box<StoreError>,
    },
}

/// Download options shared by every `fetch` subcommand (`lander fetch`'s flags of the same names).
#[derive(Debug, Clone)]
pub struct DownloadArgs {
    /// Landing zone: a local directory, `hdfs://` or `s3://` location. Files go to `<landing>/<dataset>/<name>`.
    pub landing: String,
    /// Number of files downloaded in parallel (at least 1).
    pub concurrency: u16,
    /// Retries per file after the first attempt.
    pub retries: u32,
    /// First delay of the exponential backoff between retries.
    pub retry_backoff: Duration,
    /// Largest file accepted, in bytes.
    pub max_file_bytes: u64,
    /// Time allowed to establish a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Abort a request when the server sends nothing for this long.
    pub timeout: Duration,
}

/// Defaults of [`DownloadArgs`], written the way `--help` shows them (the command line takes its defaults from
/// here, and [`DownloadArgs::default`] parses them).
pub mod download_defaults {
    /// [`super::DownloadArgs::concurrency`].
    pub const CONCURRENCY: u16 = 4;
    /// [`super::DownloadArgs::retries`].
    pub const RETRIES: u32 = 5;
    /// [`super::DownloadArgs::retry_backoff`] (humantime).
    pub const RETRY_BACKOFF: &str = "500ms";
    /// [`super::DownloadArgs::max_file_bytes`] (a byte size, `lander_core::units::parse_byte_size`).
    pub const MAX_FILE_BYTES: &str = "4GiB";
    /// [`super::DownloadArgs::connect_timeout`] (humantime).
    pub const CONNECT_TIMEOUT: &str = "10s";
    /// [`super::DownloadArgs::timeout`] (humantime).
    pub const TIMEOUT: &str = "60s";
}

/// Parses one of the duration defaults of this crate (a constant, so valid: the unit tests parse each).
pub(crate) fn default_duration(value: &str) -> Duration {
    humantime::parse_duration(value).expect("a default duration parses")
}

impl Default for DownloadArgs {
    fn default() -> Self {
        use download_defaults as d;
        Self {
            landing: DEFAULT_LANDING.to_string(),
            concurrency: d::CONCURRENCY,
            retries: d::RETRIES,
            retry_backoff: default_duration(d::RETRY_BACKOFF),
            max_file_bytes: lander_core::units::parse_byte_size(d::MAX_FILE_BYTES)
                .expect("the default byte size parses"),
            connect_timeout: default_duration(d::CONNECT_TIMEOUT),
            timeout: default_duration(d::TIMEOUT),
        }
    }
}

/// Arguments of `lander fetch url`.
#[derive(Debug, Clone, Default)]
pub struct UrlArgs {
    /// http(s) URLs to download (at least one).
    pub urls: Vec<String>,
    /// Prefer the server's Content-Disposition file name over the URL's last segment (like curl -J).
    pub remote_header_name: bool,
    /// Dataset directory under landing.
    pub dataset: String,
    /// Download options.
    pub download: DownloadArgs,
}

/// Arguments of `lander fetch s3`.
#[derive(Debug, Clone)]
pub struct S3Args {
    /// Bucket and prefix to copy, as `s3://bucket/prefix`.
    pub url: String,
    /// Dataset directory under landing.
    pub dataset: String,
    /// Landing zone: a local directory, `hdfs://` or `s3://` location.
    pub landing: String,
}

/// What a fetch did, per file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchSummary {
    /// Files downloaded, verified and published into landing.
    pub fetched: usize,
    /// Files not downloaded because they are already in landing.
    pub skipped: usize,
    /// Files the server does not have (GH Archive: 404 for an hour older than 48h; the archive has real gaps).
    pub missing: usize,
    /// Files not available yet (GH Archive: 404 for a recent hour, or an hour that has not ended) or not attempted
    /// because the fetch was interrupted; a later run fetches them.
    pub pending: usize,
    /// Files that could not be fetched (after retries) or were refused (unsafe name, too large).
    pub failed: usize,
    /// Bytes published by this run (fetched files only).
    pub bytes: u64,
}

impl FetchSummary {}

impl fmt::Display for FetchSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fetched {} ({}), skipped {}, missing {}, pending {}, failed {}",
            self.fetched,
            indicatif::HumanBytes(self.bytes),
            self.skipped,
            self.missing,
            self.pending,
            self.failed
        )
    }
}

/// What the command line resolves for a fetch beyond its own arguments. Fetch reads neither the config file nor
/// the checkpoint: `cli::fetch` loads them and hands over these plain values.
#[derive(Debug, Clone, Default)]
pub struct FetchContext {
    /// Store options (the config file's `[storage]` section) for landing and for the source of `fetch s3`: the
    /// same options `lander run` opens landing and bronze with.
    pub storage: BTreeMap<String, String>,
    /// Landing paths (`<dataset>/<name>`) that the ingesting `lander run` already recorded (`--checkpoint`):
    /// not downloaded again, even when they are no longer in landing.
    pub ingested: HashSet<String>,
}

/// Opens `landing` with these store options, off the reactor (opening a local directory creates and
/// canonicalizes it).
async fn open_landing(
    landing: &str,
    storage: &BTreeMap<String, String>,
) -> Result<StoreLocation, FetchError> {
    let storage = storage.clone();
    let owned = landing.to_string();
    let result = tokio::task::spawn_blocking(move || StoreLocation::open_with(&owned, &storage))
        .await
        .map_err(|source| FetchError::Task {
            what: format!("opening {landing}"),
            source,
        })?;
    result.map_err(|source| FetchError::Landing {
        landing: landing.to_string(),
        source,
    })
}

/// Moves `temp` to `target` without overwriting an existing `target` (`AlreadyExists` then).
///
/// Uses the store's atomic no-clobber rename where it has one (local, HDFS). S3 has none (object_store answers
/// NotSupported): check, then copy + delete; a race with a concurrent writer of the same name can only replace
/// it with the same content, since every fetch names files after their source.
///
/// # Errors
/// `AlreadyExists` when `target` exists; other store errors as they come.
async fn rename_no_clobber(
    landing: &StoreLocation,
    temp: &object_store::path::Path,
    target: &object_store::path::Path,
) -> object_store::Result<()> {
    use object_store::ObjectStoreExt;
    match landing.store.rename_if_not_exists(temp, target).await {
        Err(
            object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. },
        ) => match landing.store.head(target).await {
            Ok(_) => Err(object_store::Error::AlreadyExists {
                path: target.to_string(),
                source: "already exists".into(),
            }),
            Err(object_store::Error::NotFound { .. }) => landing.store.rename(temp, target).await,
            Err(e) => Err(e),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_display_is_one_line() {
        let s = FetchSummary {
            fetched: 2,
            skipped: 1,
            missing: 1,
            pending: 0,
            failed: 3,
            bytes: 2048,
        };
        assert_eq!(
            s.to_string(),
            "fetched 2 (2.00 KiB), skipped 1, missing 1, pending 0, failed 3"
        );
    }

    #[test]
    fn defaults_parse() {
        let download = DownloadArgs::default();
        assert_eq!(download.max_file_bytes, 4 << 30);
        assert_eq!(download.timeout, Duration::from_secs(60));
        let gharchive = GharchiveArgs::default();
        assert_eq!(gharchive.poll_interval, Duration::from_secs(300));
        let sales = SalesArgs::default();
        assert_eq!(sales.window, Duration::from_secs(30 * 86_400));
        assert!(matches!(sales.end_time, generate::EndTime::At(_)));
    }
}
