//! Retries: exponential backoff with full jitter, and the provider's `Retry-After`.

use std::time::Duration;

use http::HeaderMap;
use rand::RngExt as _;

/// How often, and how patiently, one provider is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per provider, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The cap of the first backoff; it doubles with each retry.
    pub base_delay: Duration,
    /// The longest backoff, and the longest `Retry-After` honoured.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (after `attempt` failed ones, counted from 1):
    /// a uniformly random duration up to `min(max_delay, base_delay · 2^(attempt-1))` ("full
    /// jitter", so clients that failed together do not retry together), or the provider's
    /// `Retry-After` when it asked for one. `None` when the provider asks for longer than
    /// `max_delay`: it is not worth waiting for.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if let Some(asked) = retry_after {
            return (asked <= self.max_delay).then_some(asked);
        }
        let exponent = attempt.saturating_sub(1).min(20);
        let cap = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        let cap_us = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
        if cap_us == 0 {
            return Some(Duration::ZERO);
        }
        Some(Duration::from_micros(rand::rng().random_range(0..=cap_us)))
    }
}

/// The wait a response asks for: `retry-after-ms` (milliseconds, sent by some providers) or
/// `Retry-After` in seconds or as an HTTP date. `None` when absent or unreadable.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let text = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // An HTTP date is RFC 2822 with the zone spelt `GMT`.
    let text = match text.strip_suffix(" GMT") {
        Some(rest) => format!("{rest} +0000"),
        None => text.to_owned(),
    };
    let at =
        time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = at - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn backoff_is_jittered_below_a_doubling_cap() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        for _ in 0..200 {
            assert!(policy.backoff(1, None).unwrap() <= Duration::from_millis(100));
            assert!(policy.backoff(2, None).unwrap() <= Duration::from_millis(200));
            assert!(policy.backoff(3, None).unwrap() <= Duration::from_millis(350));
            assert!(policy.backoff(30, None).unwrap() <= Duration::from_millis(350));
        }
        let waits: std::collections::HashSet<_> =
            (0..50).map(|_| policy.backoff(3, None).unwrap()).collect();
        assert!(waits.len() > 10, "jitter spreads the waits: {waits:?}");
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.backoff(1, Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(policy.backoff(1, Some(Duration::from_secs(60))), None);
    }

    #[test]
    fn retry_after_reads_seconds_milliseconds_and_dates() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO), "a past date");
        let future = time::OffsetDateTime::now_utc() + time::Duration::seconds(120);
        let text = future
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap();
        headers.insert("retry-after", HeaderValue::from_str(&text).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        headers.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
    }
}
