//! `lander fetch gharchive --follow`: the hours from `--from` on, round after round, as they are published.
//!
//! Each round fetches the ended hours not resolved yet (through [`super::fetch_hours`]) and then pauses: longer
//! and longer while rounds fetch nothing, and `--poll-interval` while it waits for an hour to be published.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Url;
use tokio_util::sync::CancellationToken;

use super::{
    fetch_hours, floor_hour, hour_file_name, hour_range, GharchiveArgs, HourOutcome,
    FOLLOW_BATCH_HOURS,
};
use crate::job::Downloader;
use crate::FetchSummary;

/// The pause after a `--follow` round that fetched nothing while hours failed or were missing: doubles from
/// [`IDLE_BACKOFF_BASE`] per such round, up to the poll interval, so that a mirror that is down or lacks a
/// range is not asked for hour after hour in a tight loop. Any fetched hour resets it.
const IDLE_BACKOFF_BASE: Duration = Duration::from_secs(1);

/// How long `--follow` keeps retrying an hour whose download failed (in later rounds, after the pause above)
/// before it counts it as failed and moves past it.
const FOLLOW_GIVE_UP: TimeDelta = TimeDelta::hours(1);

/// `--follow`: fetch from `from` on, hour after hour, until `cancel` fires.
///
/// Each round fetches every ended hour not yet resolved (at most [`FOLLOW_BATCH_HOURS`]), then sleeps
/// `--poll-interval` when it is caught up or waiting for an unpublished hour. The summary counts each resolved hour
/// once; `pending` is the number of hours still waited for when it stops.
pub(super) async fn follow(
    downloader: &Downloader,
    base: &Url,
    args: &GharchiveArgs,
    from: DateTime<Utc>,
    cancel: &CancellationToken,
) -> FetchSummary {
    let mut state = Following::new(from);
    let trip_after = Some(downloader.concurrency.max(2));
    downloader.progress().log(|| {
        tracing::info!(from = %hour_file_name(state.next), base_url = %base, "following GH Archive");
    });
    loop {
        let now = Utc::now();
        let last_ended = floor_hour(now) - TimeDelta::hours(1);
        let batch = state.batch(last_ended);
        let outcomes = fetch_hours(
            downloader,
            base,
            &args.dataset,
            &batch,
            now,
            cancel,
            trip_after,
        )
        .await;
        let round = state.record(outcomes, now);
        if cancel.is_cancelled() {
            break;
        }
        if !state
            .pause(round, last_ended, downloader, args.poll_interval, cancel)
            .await
        {
            break;
        }
    }
    state.summary
}

/// What `--follow` keeps from round to round.
struct Following {
    /// Each resolved hour, counted once; `pending` as of the last round.
    summary: FetchSummary,
    /// The first hour not resolved yet.
    next: DateTime<Utc>,
    /// Hours after `next` that are already resolved (fetched while an earlier hour was still pending).
    resolved: BTreeSet<DateTime<Utc>>,
    /// Rounds in a row that fetched nothing while hours failed or were missing (see [`IDLE_BACKOFF_BASE`]).
    idle_rounds: u32,
    /// When each hour that failed first failed: it is tried again in later rounds until FOLLOW_GIVE_UP has passed
    /// (a source that is down for a while loses no hour; a file that is broken for good is given up).
    first_failed: std::collections::HashMap<DateTime<Utc>, DateTime<Utc>>,
}

/// How one `--follow` round went.
#[derive(Default)]
struct Round {
    /// An hour was fetched (or was already there).
    progressed: bool,
    /// An hour was missing, failed or was not tried.
    unlucky: bool,
    /// Hours not published yet.
    unpublished: usize,
}

impl Following {
    fn new(from: DateTime<Utc>) -> Self {
        Self {
            summary: FetchSummary::default(),
            next: floor_hour(from),
            resolved: BTreeSet::new(),
            idle_rounds: 0,
            first_failed: std::collections::HashMap::new(),
        }
    }

    /// The hours of the next round: those from `next` to `last_ended` not resolved yet, at most
    /// [`FOLLOW_BATCH_HOURS`] of them.
    fn batch(&self, last_ended: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let batch_end = last_ended.min(self.next + TimeDelta::hours(FOLLOW_BATCH_HOURS - 1));
        if self.next <= batch_end {
            hour_range(self.next, batch_end)
                .unwrap_or_default()
                .into_iter()
                .filter(|h| !self.resolved.contains(h))
                .collect()
        } else {
            Vec::new()
        }
    }

    /// Counts the resolved hours of a round (a failed hour only once retried for [`FOLLOW_GIVE_UP`]), and moves
    /// `next` past them.
    fn record(&mut self, outcomes: Vec<(DateTime<Utc>, HourOutcome)>, now: DateTime<Utc>) -> Round {
        let mut waiting = 0;
        let mut round = Round::default();
        for (hour, outcome) in outcomes {
            match outcome {
                HourOutcome::Fetched(_) | HourOutcome::Skipped => round.progressed = true,
                HourOutcome::Missing | HourOutcome::Failed | HourOutcome::Cancelled => {
                    round.unlucky = true
                }
                HourOutcome::Pending => round.unpublished += 1,
            }
            let retry_later = outcome == HourOutcome::Failed
                && now - *self.first_failed.entry(hour).or_insert(now) < FOLLOW_GIVE_UP;
            if outcome.is_resolved() && !retry_later {
                outcome.count(&mut self.summary);
                self.resolved.insert(hour);
                self.first_failed.remove(&hour);
            } else {
                waiting += 1;
            }
        }
        while self.resolved.remove(&self.next) {
            self.next += TimeDelta::hours(1);
        }
        self.summary.pending = waiting;
        round
    }

    /// Sleeps after a round: backs off while rounds fetch nothing (see [`IDLE_BACKOFF_BASE`]), and waits
    /// `poll_interval` for an hour to be published. Returns false when `cancel` fires meanwhile.
    async fn pause(
        &mut self,
        round: Round,
        last_ended: DateTime<Utc>,
        downloader: &Downloader,
        poll_interval: Duration,
        cancel: &CancellationToken,
    ) -> bool {
        self.idle_rounds = if round.progressed || !round.unlucky {
            0
        } else {
            self.idle_rounds + 1
        };
        let waiting_for_an_hour = round.unpublished > 0 || self.next > last_ended;
        if self.idle_rounds > 0 && !waiting_for_an_hour {
            let pause = IDLE_BACKOFF_BASE
                .saturating_mul(2u32.saturating_pow(self.idle_rounds.min(20) - 1))
                .min(poll_interval);
            tracing::debug!(pause = %humantime::format_duration(pause), "nothing fetched this round; pausing");
            tokio::select! {
                () = cancel.cancelled() => return false,
                () = tokio::time::sleep(pause) => {}
            }
        }
        if waiting_for_an_hour {
            let next = self.next;
            downloader.progress().log(|| {
                tracing::info!(
                    next = %hour_file_name(next),
                    poll_in = %humantime::format_duration(poll_interval),
                    "waiting for the next hour to be published"
                );
            });
            tokio::select! {
                () = cancel.cancelled() => return false,
                () = tokio::time::sleep(poll_interval) => {}
            }
        }
        true
    }
}
