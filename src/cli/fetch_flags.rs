//! The flags of `lander fetch` and `lander generate`: clap's mirror of the fetch library's plain arguments
//! ([`fetch::DownloadArgs`], [`fetch::GharchiveArgs`], [`fetch::UrlArgs`], [`fetch::S3Args`],
//! [`fetch::SalesArgs`]), converted with `into()`.
//!
//! The library holds the defaults ([`fetch::download_defaults`], [`fetch::gharchive`]'s `DEFAULT_*`,
//! [`fetch::generate::sales_defaults`], [`fetch::DEFAULT_LANDING`]); the flags take them from there, so `--help`
//! shows what the library does.

use std::time::Duration;

use clap::Args;

use crate::fetch::generate::{parse_end_time, sales_defaults, EndTime};
use crate::fetch::gharchive::{self, parse_hour_arg, HourArg};
use crate::fetch::{self, download_defaults, DEFAULT_LANDING};

/// Download options shared by every `fetch` subcommand.
#[derive(Args, Debug, Clone)]
pub(crate) struct DownloadFlags {
    /// Landing zone: a local directory, hdfs://host:port/path or s3://bucket/prefix. Files go to
    /// <landing>/<dataset>/<name>.
    #[arg(long, default_value = DEFAULT_LANDING)]
    pub(crate) landing: String,
    /// Number of files downloaded in parallel.
    #[arg(long, default_value_t = download_defaults::CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) concurrency: u16,
    /// Retries per file after the first attempt, on connect errors, timeouts, HTTP 408/429/5xx, truncated bodies
    /// and corrupt gzip data.
    #[arg(long, default_value_t = download_defaults::RETRIES)]
    pub(crate) retries: u32,
    /// First delay of the exponential backoff between retries; it doubles per retry (with jitter) up to 1 minute.
    /// A Retry-After header from the server takes precedence.
    #[arg(long, default_value = download_defaults::RETRY_BACKOFF, value_parser = humantime::parse_duration)]
    pub(crate) retry_backoff: Duration,
    /// Largest file accepted; a bigger one is aborted and counted as failed. Accepts a plain byte count or a
    /// suffix: KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024).
    #[arg(long, default_value = download_defaults::MAX_FILE_BYTES, value_parser = crate::config::parse_byte_size)]
    pub(crate) max_file_bytes: u64,
    /// Time allowed to establish a connection (TCP and TLS).
    #[arg(long, default_value = download_defaults::CONNECT_TIMEOUT, value_parser = humantime::parse_duration)]
    pub(crate) connect_timeout: Duration,
    /// Abort a request when the server sends nothing for this long (the attempt is then retried).
    #[arg(long, default_value = download_defaults::TIMEOUT, value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
}

impl From<DownloadFlags> for fetch::DownloadArgs {
    fn from(f: DownloadFlags) -> Self {
        Self {
            landing: f.landing,
            concurrency: f.concurrency,
            retries: f.retries,
            retry_backoff: f.retry_backoff,
            max_file_bytes: f.max_file_bytes,
            connect_timeout: f.connect_timeout,
            timeout: f.timeout,
        }
    }
}

/// Flags of `lander fetch gharchive`.
#[derive(Args, Debug, Clone)]
pub(crate) struct GharchiveFlags {
    /// First UTC hour to fetch: 2015-01-01T00, 2015-01-01T00:00Z, 2015-01-01-0 (archive style) or a date
    /// 2015-01-01 (its hour 0). Minutes are truncated. Required unless --follow, which defaults to the current hour
    /// minus 2h.
    #[arg(long, value_parser = parse_hour_arg, required_unless_present = "follow")]
    pub(crate) from: Option<HourArg>,
    /// Last UTC hour to fetch, inclusive; a date means its hour 23. Defaults to --from (the whole day when --from
    /// is a date).
    #[arg(long, value_parser = parse_hour_arg, conflicts_with = "follow")]
    pub(crate) to: Option<HourArg>,
    /// After --from, keep fetching each next hour as it is published, until interrupted (SIGINT/SIGTERM). A recent
    /// hour that is not published yet is retried every --poll-interval.
    #[arg(long)]
    pub(crate) follow: bool,
    /// With --follow: how often to check for an hour that is not published yet.
    #[arg(long, default_value = gharchive::DEFAULT_POLL_INTERVAL, value_parser = humantime::parse_duration)]
    pub(crate) poll_interval: Duration,
    /// Archive (or mirror) base URL; files are fetched from <base-url>/<YYYY-MM-DD-H>.json.gz.
    #[arg(long, default_value = gharchive::DEFAULT_BASE_URL)]
    pub(crate) base_url: String,
    /// Dataset directory under landing.
    #[arg(long, default_value = gharchive::DEFAULT_DATASET)]
    pub(crate) dataset: String,
    /// Download options.
    #[command(flatten)]
    pub(crate) download: DownloadFlags,
}

impl From<GharchiveFlags> for fetch::GharchiveArgs {
    fn from(f: GharchiveFlags) -> Self {
        Self {
            from: f.from,
            to: f.to,
            follow: f.follow,
            poll_interval: f.poll_interval,
            base_url: f.base_url,
            dataset: f.dataset,
            download: f.download.into(),
        }
    }
}

/// Flags of `lander fetch url`.
#[derive(Args, Debug, Clone)]
pub(crate) struct UrlFlags {
    /// http(s) URLs to download. Each file is named after the URL's last path segment (percent-decoded and
    /// sanitized), or after the server's Content-Disposition file name when the URL has none.
    #[arg(required = true, value_name = "URL")]
    pub(crate) urls: Vec<String>,
    /// Prefer the server's Content-Disposition file name over the URL's last segment (like curl -J). Such files are
    /// only found to be in landing already after a request.
    #[arg(long)]
    pub(crate) remote_header_name: bool,
    /// Dataset directory under landing (e.g. sales).
    #[arg(long)]
    pub(crate) dataset: String,
    /// Download options.
    #[command(flatten)]
    pub(crate) download: DownloadFlags,
}

impl From<UrlFlags> for fetch::UrlArgs {
    fn from(f: UrlFlags) -> Self {
        Self {
            urls: f.urls,
            remote_header_name: f.remote_header_name,
            dataset: f.dataset,
            download: f.download.into(),
        }
    }
}

/// Flags of `lander fetch s3`.
#[derive(Args, Debug, Clone)]
pub(crate) struct S3Flags {
    /// Bucket and prefix to copy, as s3://bucket/prefix.
    #[arg(value_name = "S3_URL")]
    pub(crate) url: String,
    /// Dataset directory under landing (e.g. sales).
    #[arg(long)]
    pub(crate) dataset: String,
    /// Landing zone: a local directory, hdfs:// or s3:// location.
    #[arg(long, default_value = DEFAULT_LANDING)]
    pub(crate) landing: String,
}

impl From<S3Flags> for fetch::S3Args {
    fn from(f: S3Flags) -> Self {
        Self {
            url: f.url,
            dataset: f.dataset,
            landing: f.landing,
        }
    }
}

/// Flags of `lander generate sales`.
#[derive(Args, Debug, Clone)]
pub(crate) struct SalesFlags {
    /// Total data rows to write (valid + duplicate + malformed), header lines not included.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) rows: u64,
    /// Number of files to split the rows into (as evenly as possible). Ignored with --rate.
    #[arg(long, default_value_t = sales_defaults::FILES, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) files: u64,
    /// Trickle mode: write one file per second holding this many rows, until --rows are written or the command
    /// is interrupted (for demos of continuous ingestion).
    #[arg(long, value_name = "ROWS_PER_S", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) rate: Option<u64>,
    /// Random seed; the same seed and shares give the same rows. Default: a random seed (printed at the end).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Landing zone: a local directory or file:// URL. Files go to <landing>/<dataset>/.
    #[arg(long, default_value = DEFAULT_LANDING)]
    pub(crate) landing: String,
    /// Dataset directory under landing.
    #[arg(long, default_value = sales_defaults::DATASET)]
    pub(crate) dataset: String,
    /// Share of rows (0.0-1.0) that repeat an earlier row exactly, same transaction_id.
    #[arg(long, default_value_t = sales_defaults::DUPLICATE_SHARE)]
    pub(crate) duplicate_share: f64,
    /// Share of rows (0.0-1.0) that are malformed: non-numeric quantity or price, missing fields or an impossible
    /// timestamp.
    #[arg(long, default_value_t = sales_defaults::MALFORMED_SHARE)]
    pub(crate) malformed_share: f64,
    /// First transaction_id; use the previous run's next id to continue a sequence. Default: the start of a block
    /// of 2^24 ids drawn from the seed (above every id of the bundled 100k-row sample), so runs with different seeds
    /// do not collide with each other or with ids already in bronze.
    #[arg(long)]
    pub(crate) start_id: Option<u64>,
    /// File name prefix; files are named <prefix>-<seed>-<nnnnn>.csv.
    #[arg(long, default_value = sales_defaults::PREFIX)]
    pub(crate) prefix: String,
    /// End of the timestamp window: `now`, RFC 3339, `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (UTC).
    #[arg(long, default_value = sales_defaults::END_TIME, value_parser = parse_end_time)]
    pub(crate) end_time: EndTime,
    /// Length of the timestamp window before --end-time.
    #[arg(long, default_value = sales_defaults::WINDOW, value_parser = humantime::parse_duration)]
    pub(crate) window: Duration,
}

impl From<SalesFlags> for fetch::SalesArgs {
    fn from(f: SalesFlags) -> Self {
        Self {
            rows: f.rows,
            files: f.files,
            rate: f.rate,
            seed: f.seed,
            landing: f.landing,
            dataset: f.dataset,
            duplicate_share: f.duplicate_share,
            malformed_share: f.malformed_share,
            start_id: f.start_id,
            prefix: f.prefix,
            end_time: f.end_time,
            window: f.window,
        }
    }
}
