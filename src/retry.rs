//! What outbound HTTP clients (Slack delivery, the Telnyx API) share about retrying.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Longest wait a `Retry-After` may impose.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The `Retry-After` of an answer, in seconds, capped at [`MAX_RETRY_AFTER`].
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
}

/// `base` doubled for each attempt after the first, capped at `max`.
pub(crate) fn backoff(base: Duration, attempt: u32, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    base.saturating_mul(factor).min(max)
}

/// How long to wait before trying a failed request again, after `attempt` retries (0: after the
/// first try): its `Retry-After` when the answer said one, else `base` doubling, at most 8 s.
/// `None`: `max_retries` are spent.
pub(crate) fn next_try(
    attempt: u32,
    max_retries: u32,
    retry_after: Option<Duration>,
    base: Duration,
) -> Option<Duration> {
    (attempt < max_retries)
        .then(|| retry_after.unwrap_or_else(|| backoff(base, attempt + 1, Duration::from_secs(8))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let ms = |n| Duration::from_millis(n);
        let waits: Vec<_> = (1..=6).map(|a| backoff(ms(100), a, ms(1000))).collect();
        assert_eq!(
            waits,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
    }
}
