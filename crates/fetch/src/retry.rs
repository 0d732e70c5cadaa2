//! When a download is retried: the backoff policy ([`RetryPolicy`]) and what a failed attempt says about
//! retrying ([`AttemptError`]). The attempt loop that applies them is `download`'s `fetch_inner`.

use std::time::Duration;

use rand::Rng;

use super::FetchError;

/// Upper bound of the exponential backoff, so that a long outage is polled at least once a minute.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How retries are spaced.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Delay before the first retry; doubled per retry.
    pub(crate) base: Duration,
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
