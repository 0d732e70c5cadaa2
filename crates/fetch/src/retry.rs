//! When and how a download is retried: the backoff policy and the attempt loop around [`Downloader::attempt`].

use std::time::{Duration, Instant};

use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::download::{temp_name, Attempt, Downloader, Job, Outcome};
use super::FetchError;

/// Upper bound of the exponential backoff, so that a long outage is polled at least once a minute.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

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

/// Why one attempt did not produce a complete file.
#[derive(Debug)]
pub(super) enum AttemptError {
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
    pub(super) fn retry(error: FetchError) -> Self {
        Self::Retry { error, wait: None }
    }
}

impl Downloader {
    pub(super) async fn fetch_inner(&self, job: &Job, cancel: &CancellationToken) -> Outcome {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

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
}
