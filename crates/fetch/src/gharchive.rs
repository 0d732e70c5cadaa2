//! `lander fetch gharchive`: GH Archive hourly files into `<landing>/gharchive/`.
//!
//! Takes an inclusive range of UTC hours (or, with `--follow`, an open-ended one) and produces one file per hour,
//! named exactly as the archive names it: `YYYY-MM-DD-H.json.gz`, with the hour not zero-padded
//! (`https://data.gharchive.org/2015-01-01-15.json.gz`).
//!
//! An hour is published a few minutes after it ends, and the archive has real gaps (outages in 2011-2016). So a 404
//! means "not published yet" for an hour that ended less than `PUBLICATION_WINDOW` ago (pending: retried by
//! `--follow`, reported by a range fetch) and "missing" for an older hour. Hours that have not ended are pending
//! without a request. Neither fails the other hours. Downloads, retries, verification and atomic publication are
//! those of every fetch (see [`crate`]).

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Timelike as _, Utc};
use reqwest::Url;
use tokio_util::sync::CancellationToken;

use super::headers::parse_http_url;
use super::job::{Downloader, Job, Outcome};
use super::progress::Progress;
use super::{validate_dataset, DownloadArgs, FetchContext, FetchError, FetchSummary};

mod follow;
use follow::follow;

/// Age (since the hour ended) after which a 404 means the archive lacks the hour rather than "not published yet".
/// GH Archive normally publishes within minutes; two days leaves room for its occasional backfills.
pub(crate) const PUBLICATION_WINDOW: TimeDelta = TimeDelta::hours(48);

/// Hours fetched per round in `--follow` catch-up, so a `--from` far in the past is worked through (and reported)
/// a week at a time.
const FOLLOW_BATCH_HOURS: i64 = 24 * 7;

/// Default of [`GharchiveArgs::base_url`]: the archive itself.
pub const DEFAULT_BASE_URL: &str = "https://data.gharchive.org";

/// Default of [`GharchiveArgs::dataset`].
pub const DEFAULT_DATASET: &str = "gharchive";

/// Default of [`GharchiveArgs::poll_interval`] (humantime, as `--help` shows it).
pub const DEFAULT_POLL_INTERVAL: &str = "5m";

/// With `follow` and no `from`: the first hour fetched is the current one minus this.
pub const FOLLOW_START_BEHIND: TimeDelta = TimeDelta::hours(2);

/// Arguments of `lander fetch gharchive`.
#[derive(Debug, Clone)]
pub struct GharchiveArgs {
    /// First UTC hour to fetch. Required unless `follow`, which defaults to the current hour minus 2h.
    pub from: Option<HourArg>,
    /// Last UTC hour to fetch, inclusive; a date means its hour 23. Defaults to `from`. Not with `follow`.
    pub to: Option<HourArg>,
    /// After `from`, keep fetching each next hour as it is published, until cancelled.
    pub follow: bool,
    /// With `follow`: how often to check for an hour that is not published yet.
    pub poll_interval: Duration,
    /// Archive (or mirror) base URL; files are fetched from `<base_url>/<YYYY-MM-DD-H>.json.gz`.
    pub base_url: String,
    /// Dataset directory under landing.
    pub dataset: String,
    /// Download options.
    pub download: DownloadArgs,
}

impl Default for GharchiveArgs {
    fn default() -> Self {
        Self {
            from: None,
            to: None,
            follow: false,
            poll_interval: super::default_duration(DEFAULT_POLL_INTERVAL),
            base_url: DEFAULT_BASE_URL.to_string(),
            dataset: DEFAULT_DATASET.to_string(),
            download: DownloadArgs::default(),
        }
    }
}

/// An hour given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourArg {
    /// The UTC hour (minutes and seconds zero).
    pub hour: DateTime<Utc>,
    /// Whether only a date was given (so `--to` means its last hour).
    pub date_only: bool,
}

/// Parses `--from`/`--to`: `2015-01-01T05`, `2015-01-01 05`, `2015-01-01T05:00[:00][Z]`, RFC 3339 with an offset
/// (converted to UTC), `2015-01-01-5` (archive style) or `2015-01-01` (a date).
///
/// # Errors
/// [`FetchError::InvalidArgument`] naming the accepted forms.
pub fn parse_hour_arg(value: &str) -> Result<HourArg, FetchError> {
    let invalid = || FetchError::InvalidArgument {
        name: "hour",
        value: value.to_string(),
        reason: "expected YYYY-MM-DDTHH, YYYY-MM-DD-H or YYYY-MM-DD (UTC)".to_string(),
    };
    let trimmed = value.trim();
    let date_only = |d: NaiveDate| HourArg {
        hour: d.and_time(NaiveTime::MIN).and_utc(),
        date_only: true,
    };
    if let Ok(rfc) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(HourArg {
            hour: floor_hour(rfc.with_timezone(&Utc)),
            date_only: false,
        });
    }
    let (date, rest) = match (trimmed.get(..10), trimmed.get(10..)) {
        (Some(date), Some(rest)) => (date, rest),
        _ => return Err(invalid()),
    };
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| invalid())?;
    if rest.is_empty() {
        return Ok(date_only(date));
    }
    let mut chars = rest.chars();
    let separator = chars.next();
    let time = chars.as_str().trim_end_matches('Z');
    let hour: u32 = match separator {
        // Archive style: the hour without padding and nothing else.
        Some('-')
            if !time.is_empty() && time.len() <= 2 && time.bytes().all(|b| b.is_ascii_digit()) =>
        {
            time.parse().map_err(|_| invalid())?
        }
        Some('T' | 't' | ' ') => {
            let parsed = if time.len() <= 2 && time.bytes().all(|b| b.is_ascii_digit()) {
                time.parse().ok()
            } else {
                NaiveTime::parse_from_str(time, "%H:%M:%S")
                    .or_else(|_| NaiveTime::parse_from_str(time, "%H:%M"))
                    .ok()
                    .map(|t| t.hour())
            };
            parsed.ok_or_else(invalid)?
        }
        _ => return Err(invalid()),
    };
    let time = NaiveTime::from_hms_opt(hour, 0, 0).ok_or_else(invalid)?;
    Ok(HourArg {
        hour: date.and_time(time).and_utc(),
        date_only: false,
    })
}

/// The start of the UTC hour containing `t`.
pub(crate) fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = t.timestamp();
    DateTime::from_timestamp(seconds - seconds.rem_euclid(3600), 0).unwrap_or(t)
}

/// The archive's file name for `hour`: `YYYY-MM-DD-H.json.gz`, hour without leading zero.
pub(crate) fn hour_file_name(hour: DateTime<Utc>) -> String {
    format!("{}-{}.json.gz", hour.format("%Y-%m-%d"), hour.hour())
}

/// The hour an archive file name stands for (the inverse of `hour_file_name`).
pub fn parse_hour_file_name(name: &str) -> Option<DateTime<Utc>> {
    let stem = name.strip_suffix(".json.gz")?;
    let (date, hour) = (stem.get(..10)?, stem.get(10..)?.strip_prefix('-')?);
    if hour.is_empty() || hour.len() > 2 || (hour.len() == 2 && hour.starts_with('0')) {
        return None;
    }
    let hour: u32 = hour.parse().ok()?;
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some(
        date.and_time(NaiveTime::from_hms_opt(hour, 0, 0)?)
            .and_utc(),
    )
}

/// Every hour from `from` to `to`, inclusive.
///
/// # Errors
/// [`FetchError::InvalidArgument`] when `to` is before `from`.
pub fn hour_range(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, FetchError> {
    let (from, to) = (floor_hour(from), floor_hour(to));
    if to < from {
        return Err(FetchError::InvalidArgument {
            name: "--to",
            value: to.format("%Y-%m-%dT%H").to_string(),
            reason: format!("is before --from {}", from.format("%Y-%m-%dT%H")),
        });
    }
    let count = (to - from).num_hours() + 1;
    Ok((0..count).map(|i| from + TimeDelta::hours(i)).collect())
}

/// How to read a 404 for an hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// The hour ended long ago: the archive does not have it.
    Missing,
    /// Not published yet: try again later.
    Pending,
}

/// Classifies a 404 (or an hour not ended yet) at time `now`; see [`PUBLICATION_WINDOW`].
pub(crate) fn classify_unavailable(hour: DateTime<Utc>, now: DateTime<Utc>) -> Unavailable {
    let ended = hour + TimeDelta::hours(1);
    if now - ended > PUBLICATION_WINDOW {
        Unavailable::Missing
    } else {
        Unavailable::Pending
    }
}

/// What happened to one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HourOutcome {
    Fetched(u64),
    Skipped,
    Missing,
    Pending,
    Failed,
    Cancelled,
}

impl HourOutcome {
    /// Whether this hour needs no more attention (`--follow` moves past it).
    fn is_resolved(self) -> bool {
        !matches!(self, Self::Pending | Self::Cancelled)
    }

    fn count(self, summary: &mut FetchSummary) {
        let m = lander_core::metrics::get();
        let l = lander_core::metrics::src("gharchive");
        match self {
            Self::Fetched(bytes) => {
                summary.fetched += 1;
                summary.bytes += bytes;
                m.fetch_downloads.get_or_create(&l).inc();
                m.fetch_bytes.get_or_create(&l).inc_by(bytes);
            }
            Self::Skipped => summary.skipped += 1,
            Self::Missing => summary.missing += 1,
            Self::Pending | Self::Cancelled => summary.pending += 1,
            Self::Failed => {
                summary.failed += 1;
                m.fetch_failures.get_or_create(&l).inc();
            }
        }
    }
}

/// Runs `lander fetch gharchive` until every hour of the range is resolved (or, with `--follow`, until `cancel`
/// fires). Cancelling stops new requests; downloads in flight keep their partial temporary file for a later resume
/// and are counted as pending.
///
/// # Errors
/// Only conditions that stop the whole command: invalid arguments, an unusable landing, an HTTP client that
/// cannot be built. Per-hour problems are counted in the summary.
pub async fn run(
    args: GharchiveArgs,
    context: FetchContext,
    cancel: CancellationToken,
) -> Result<FetchSummary, FetchError> {
    validate_dataset(&args.dataset)?;
    let base = parse_http_url(&args.base_url)?;
    let now = Utc::now();
    if args.follow {
        let from = args
            .from
            .map(|f| f.hour)
            .unwrap_or_else(|| floor_hour(now) - FOLLOW_START_BEHIND);
        let downloader = Downloader::new(&args.download, context, Progress::new(None)).await?;
        downloader.remove_stale_temps(&args.dataset).await?;
        let summary = follow(&downloader, &base, &args, from, &cancel).await;
        downloader.finish();
        return Ok(summary);
    }
    let from = args.from.ok_or_else(|| FetchError::InvalidArgument {
        name: "--from",
        value: String::new(),
        reason: "is required without --follow".to_string(),
    })?;
    let to = match args.to.unwrap_or(from) {
        HourArg {
            hour,
            date_only: true,
        } => hour + TimeDelta::hours(23),
        HourArg { hour, .. } => hour,
    };
    let hours = hour_range(from.hour, to)?;
    let downloader =
        Downloader::new(&args.download, context, Progress::new(Some(hours.len()))).await?;
    downloader.remove_stale_temps(&args.dataset).await?;
    downloader.progress().log(|| {
        tracing::info!(
            hours = hours.len(),
            from = %hour_file_name(from.hour),
            to = %hour_file_name(to),
            base_url = %base,
            "fetching GH Archive hours"
        );
    });
    let mut summary = FetchSummary::default();
    for (_, outcome) in fetch_hours(
        &downloader,
        &base,
        &args.dataset,
        &hours,
        now,
        &cancel,
        None,
    )
    .await
    {
        outcome.count(&mut summary);
    }
    downloader.finish();
    Ok(summary)
}

/// Hours named one by one in a round's warnings; the rest are counted in one line (a mirror without a year
/// of hours would otherwise print a line per hour).
const LOGGED_PER_ROUND: usize = 3;

/// Fetches `hours` concurrently and classifies each; outcomes are in the order of `hours`. With `trip_after`,
/// that many failed downloads in a row stop the round (see [`Downloader::fetch_all_while_up`]): the hours not
/// tried are pending. Warnings are aggregated per round: at most [`LOGGED_PER_ROUND`] per kind, then a count.
async fn fetch_hours(
    downloader: &Downloader,
    base: &Url,
    dataset: &str,
    hours: &[DateTime<Utc>],
    now: DateTime<Utc>,
    cancel: &CancellationToken,
    trip_after: Option<usize>,
) -> Vec<(DateTime<Utc>, HourOutcome)> {
    let (mut outcomes, requested, jobs) = hour_jobs(downloader, base, dataset, hours, now);
    let results = downloader
        .fetch_all_while_up(jobs, cancel, trip_after)
        .await;
    let (mut missing, mut failed) = (Vec::new(), 0usize);
    for (index, outcome) in requested.into_iter().zip(results) {
        let hour = hours[index];
        let classified = match outcome {
            Outcome::Fetched { bytes } => HourOutcome::Fetched(bytes),
            Outcome::Skipped => HourOutcome::Skipped,
            Outcome::Cancelled => HourOutcome::Cancelled,
            Outcome::NotFound { .. } => not_found(downloader, hour, now, &mut missing),
            Outcome::Failed { error } => {
                failed += 1;
                if failed <= LOGGED_PER_ROUND {
                    downloader.progress().log(|| tracing::error!("{error}"));
                }
                HourOutcome::Failed
            }
        };
        outcomes[index] = Some(classified);
    }
    log_round(downloader, &missing, failed, &outcomes, trip_after, cancel);
    hours
        .iter()
        .zip(outcomes)
        .map(|(hour, outcome)| (*hour, outcome.unwrap_or(HourOutcome::Cancelled)))
        .collect()
}

/// The download jobs of the ended hours of `hours`, with the index in `hours` of each (`requested`), and the
/// outcomes known without a request (hours not ended are pending; an hour with no valid URL failed).
fn hour_jobs(
    downloader: &Downloader,
    base: &Url,
    dataset: &str,
    hours: &[DateTime<Utc>],
    now: DateTime<Utc>,
) -> (Vec<Option<HourOutcome>>, Vec<usize>, Vec<Job>) {
    let mut outcomes: Vec<Option<HourOutcome>> = vec![None; hours.len()];
    let mut requested = Vec::new();
    let mut jobs = Vec::new();
    for (index, hour) in hours.iter().enumerate() {
        if *hour + TimeDelta::hours(1) > now {
            // Not ended: cannot be published yet.
            outcomes[index] = Some(HourOutcome::Pending);
            continue;
        }
        let name = hour_file_name(*hour);
        match hour_url(base, &name) {
            Ok(url) => {
                requested.push(index);
                jobs.push(Job {
                    url,
                    dataset: dataset.to_string(),
                    name: Some(name),
                    fallback_name: None,
                });
            }
            Err(error) => {
                downloader.progress().log(|| tracing::error!("{error}"));
                outcomes[index] = Some(HourOutcome::Failed);
            }
        }
    }
    let not_ended = outcomes.iter().filter(|o| o.is_some()).count();
    if not_ended > 0 {
        downloader.progress().log(|| {
            tracing::info!(
                hours = not_ended,
                "skipping hours that have not ended yet (pending)"
            );
        });
    }
    (outcomes, requested, jobs)
}

/// A 404 for `hour`: missing from the archive (added to `missing`, logged per round) or not published yet.
fn not_found(
    downloader: &Downloader,
    hour: DateTime<Utc>,
    now: DateTime<Utc>,
    missing: &mut Vec<DateTime<Utc>>,
) -> HourOutcome {
    match classify_unavailable(hour, now) {
        Unavailable::Missing => {
            missing.push(hour);
            HourOutcome::Missing
        }
        Unavailable::Pending => {
            downloader.progress().log(|| {
                tracing::info!(file = %hour_file_name(hour), "not published yet (404 for a recent hour)");
            });
            HourOutcome::Pending
        }
    }
}

/// The aggregated warnings of one round of [`fetch_hours`].
fn log_round(
    downloader: &Downloader,
    missing: &[DateTime<Utc>],
    failed: usize,
    outcomes: &[Option<HourOutcome>],
    trip_after: Option<usize>,
    cancel: &CancellationToken,
) {
    let log = |f: &dyn Fn()| downloader.progress().log(f);
    if missing.len() <= LOGGED_PER_ROUND {
        for hour in missing {
            log(
                &|| tracing::warn!(file = %hour_file_name(*hour), "missing from the archive (404 for an old hour)"),
            );
        }
    } else if let (Some(first), Some(last)) = (missing.first(), missing.last()) {
        log(&|| {
            tracing::warn!(
                hours = missing.len(),
                first = %hour_file_name(*first),
                last = %hour_file_name(*last),
                "hours missing from the archive (404 for old hours); one line per round"
            )
        });
    }
    if failed > LOGGED_PER_ROUND {
        log(&|| {
            tracing::error!(
                more = failed - LOGGED_PER_ROUND,
                "more hours failed in this round (errors not repeated)"
            )
        });
    }
    let untried = outcomes
        .iter()
        .filter(|o| matches!(o, None | Some(HourOutcome::Cancelled)))
        .count();
    if trip_after.is_some() && untried > 0 && !cancel.is_cancelled() {
        log(&|| {
            tracing::warn!(
                failed,
                untried,
                "downloads keep failing: the source looks down; the hours not tried wait for a later round"
            )
        });
    }
}

/// `<base>/<name>`, keeping any path of a mirror's base URL.
fn hour_url(base: &Url, name: &str) -> Result<Url, FetchError> {
    let joined = format!("{}/{}", base.as_str().trim_end_matches('/'), name);
    Url::parse(&joined).map_err(|e| FetchError::InvalidUrl {
        url: joined.clone(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid time")
            .with_timezone(&Utc)
    }

    #[test]
    fn file_names_have_unpadded_hours() {
        assert_eq!(
            hour_file_name(hour("2015-01-01T00:00:00Z")),
            "2015-01-01-0.json.gz"
        );
        assert_eq!(
            hour_file_name(hour("2015-01-01T09:00:00Z")),
            "2015-01-01-9.json.gz"
        );
        assert_eq!(
            hour_file_name(hour("2015-12-31T23:00:00Z")),
            "2015-12-31-23.json.gz"
        );
        for h in ["2015-01-01T00:00:00Z", "2016-02-29T13:00:00Z"] {
            assert_eq!(
                parse_hour_file_name(&hour_file_name(hour(h))),
                Some(hour(h))
            );
        }
        assert_eq!(parse_hour_file_name("2015-01-01-09.json.gz"), None);
        assert_eq!(parse_hour_file_name("2015-01-01-24.json.gz"), None);
        assert_eq!(parse_hour_file_name("2015-01-01.json.gz"), None);
    }

    #[test]
    fn a_day_is_24_names_and_ranges_cross_days() {
        let day =
            hour_range(hour("2015-01-01T00:00:00Z"), hour("2015-01-01T23:00:00Z")).expect("range");
        let names: Vec<String> = day.into_iter().map(hour_file_name).collect();
        assert_eq!(names.len(), 24);
        assert_eq!(names[0], "2015-01-01-0.json.gz");
        assert_eq!(names[10], "2015-01-01-10.json.gz");
        assert_eq!(names[23], "2015-01-01-23.json.gz");

        let across =
            hour_range(hour("2015-12-31T22:00:00Z"), hour("2016-01-01T01:00:00Z")).expect("range");
        let names: Vec<String> = across.into_iter().map(hour_file_name).collect();
        assert_eq!(
            names,
            [
                "2015-12-31-22.json.gz",
                "2015-12-31-23.json.gz",
                "2016-01-01-0.json.gz",
                "2016-01-01-1.json.gz"
            ]
        );
        assert_eq!(
            hour_range(hour("2015-01-01T05:00:00Z"), hour("2015-01-01T05:00:00Z"))
                .expect("one")
                .len(),
            1
        );
        assert!(hour_range(hour("2015-01-02T00:00:00Z"), hour("2015-01-01T00:00:00Z")).is_err());
    }

    #[test]
    fn hour_arguments() {
        let h = |s: &str| parse_hour_arg(s).expect(s);
        let five = hour("2015-01-01T05:00:00Z");
        for form in [
            "2015-01-01T05",
            "2015-01-01T5",
            "2015-01-01 05",
            "2015-01-01T05:00",
            "2015-01-01T05:00:00",
            "2015-01-01T05:00:00Z",
            "2015-01-01T05:59:59Z",
            "2015-01-01T07:30:00+02:00",
            "2015-01-01-5",
        ] {
            assert_eq!(
                h(form),
                HourArg {
                    hour: five,
                    date_only: false
                },
                "{form}"
            );
        }
        assert_eq!(
            h("2015-01-01"),
            HourArg {
                hour: hour("2015-01-01T00:00:00Z"),
                date_only: true
            }
        );
        for bad in [
            "2015-01-01T24",
            "2015-13-01",
            "yesterday",
            "2015-01-01-123",
            "2015-01-01X05",
            "",
        ] {
            assert!(parse_hour_arg(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn old_404s_are_missing_recent_ones_pending() {
        let now = hour("2026-11-23T10:17:00Z");
        for (start, expected) in [
            ("2015-01-01T00:00:00Z", Unavailable::Missing),
            ("2026-11-23T08:00:00Z", Unavailable::Pending),
            // Ended 47h17m before `now`: still inside the publication window.
            ("2026-11-21T10:00:00Z", Unavailable::Pending),
            ("2026-11-21T09:00:00Z", Unavailable::Missing),
        ] {
            assert_eq!(classify_unavailable(hour(start), now), expected, "{start}");
        }
        assert_eq!(floor_hour(now), hour("2026-11-23T10:00:00Z"));
    }

    #[test]
    fn mirror_urls_keep_their_path() {
        let base = Url::parse("http://127.0.0.1:8080/mirror/").expect("url");
        assert_eq!(
            hour_url(&base, "2015-01-01-0.json.gz")
                .expect("url")
                .as_str(),
            "http://127.0.0.1:8080/mirror/2015-01-01-0.json.gz"
        );
        let base = Url::parse("https://data.gharchive.org").expect("url");
        assert_eq!(
            hour_url(&base, "2015-01-01-0.json.gz")
                .expect("url")
                .as_str(),
            "https://data.gharchive.org/2015-01-01-0.json.gz"
        );
    }
}
