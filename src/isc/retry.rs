//! Retry policy: the responses the client retries and the wait before each retry.
//!
//! - 429: the `Retry-After` delay (integer seconds or an HTTP date), capped at the client's
//!   `max_retry_after`, plus up to [`RETRY_AFTER_JITTER_MAX`] of jitter so that concurrent
//!   requests do not return at the same instant. Without a readable header the client backs
//!   off as for 503.
//! - 502, 503, 504, timeouts and connection failures: exponential backoff with full jitter,
//!   a uniform draw from zero to `min(BACKOFF_CAP, BACKOFF_BASE * 2^retry)`. A 503 that
//!   carries `Retry-After` waits at least that long (capped like a 429).
//! - Everything else, including 500 and 501, is final.
//!
//! These are pure functions: the retry loop in the client draws the random fractions,
//! counts attempts and enforces the deadline.

use std::time::{Duration, SystemTime};

/// Backoff ceiling of the first retry; it doubles with each further retry.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);

/// Largest backoff ceiling.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Largest jitter added to a `Retry-After` delay.
pub const RETRY_AFTER_JITTER_MAX: Duration = Duration::from_millis(250);

/// Retry treatment of a response status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusRetry {
    /// 429: wait for `Retry-After` and pause every request of the client meanwhile.
    RateLimited,
    /// 502, 503, 504: back off and retry.
    Transient,
    /// Any other status: no retry.
    Final,
}

pub(crate) fn classify_status(status: u16) -> StatusRetry {
    match status {
        429 => StatusRetry::RateLimited,
        502..=504 => StatusRetry::Transient,
        _ => StatusRetry::Final,
    }
}

/// Returns the upper bound of the backoff before retry number `retry` (0 for the first).
pub(crate) fn backoff_ceiling(retry: u32) -> Duration {
    let factor = 2u32.saturating_pow(retry.min(31));
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_CAP)
}

/// Returns the backoff before retry number `retry`, with `fraction` in `[0, 1)` as the
/// uniform random draw of full jitter.
pub(crate) fn backoff_delay(retry: u32, fraction: f64) -> Duration {
    backoff_ceiling(retry).mul_f64(fraction.clamp(0.0, 1.0))
}

/// Returns the wait before retrying a 429: the capped `Retry-After` delay plus jitter, or
/// the backoff when the response carried no readable `Retry-After`.
pub(crate) fn rate_limited_delay(
    retry_after: Option<Duration>,
    max_retry_after: Duration,
    retry: u32,
    fraction: f64,
) -> Duration {
    match retry_after {
        Some(delay) => {
            delay.min(max_retry_after) + RETRY_AFTER_JITTER_MAX.mul_f64(fraction.clamp(0.0, 1.0))
        }
        None => backoff_delay(retry, fraction),
    }
}

/// Returns the wait before retrying a 502, 503 or 504: the backoff, or the capped
/// `Retry-After` delay when the server sent one and it is longer.
pub(crate) fn transient_delay(
    retry_after: Option<Duration>,
    max_retry_after: Duration,
    retry: u32,
    fraction: f64,
) -> Duration {
    let backoff = backoff_delay(retry, fraction);
    match retry_after {
        Some(delay) => backoff.max(delay.min(max_retry_after)),
        None => backoff,
    }
}

/// Parses a `Retry-After` value: a non-negative integer number of seconds, or an HTTP date
/// (RFC 9110), which is turned into the delay from `now`. A date in the past means no delay.
/// Returns `None` for anything else, such as a negative or fractional number.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds));
    }

    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix_seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix_seconds)
    }

    #[test]
    fn retry_after_parses_seconds() {
        let now = at(1_700_000_000);
        assert_eq!(parse_retry_after("10", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn retry_after_parses_http_dates() {
        // Sun, 06 Nov 1994 08:49:37 GMT is Unix time 784111777.
        let now = at(784_111_777 - 90);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(90))
        );
        // The obsolete RFC 850 and asctime forms are valid HTTP dates too.
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:37 1994", now),
            Some(Duration::from_secs(90))
        );
    }

    #[test]
    fn retry_after_past_date_is_zero() {
        let now = at(784_111_777 + 5);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_rejects_other_values() {
        let now = at(1_700_000_000);
        for value in ["", "-1", "1.5", "soon", "10s", "Sun, 06 Nov 1994"] {
            assert_eq!(parse_retry_after(value, now), None, "{value:?}");
        }
    }

    #[test]
    fn status_classes_for_retry() {
        assert_eq!(classify_status(429), StatusRetry::RateLimited);
        for status in [502, 503, 504] {
            assert_eq!(classify_status(status), StatusRetry::Transient, "{status}");
        }
        for status in [200, 204, 302, 400, 401, 403, 404, 409, 500, 501, 505] {
            assert_eq!(classify_status(status), StatusRetry::Final, "{status}");
        }
    }

    #[test]
    fn backoff_ceiling_doubles_up_to_cap() {
        let ceilings: Vec<u64> = (0..9)
            .map(|retry| backoff_ceiling(retry).as_millis() as u64)
            .collect();
        assert_eq!(
            ceilings,
            [
                500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000
            ]
        );
        assert_eq!(backoff_ceiling(u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn backoff_is_full_jitter_below_ceiling() {
        assert_eq!(backoff_delay(3, 0.0), Duration::ZERO);
        assert_eq!(backoff_delay(3, 0.5), Duration::from_secs(2));
        assert!(backoff_delay(3, 0.999_999) < Duration::from_secs(4));
        assert_eq!(backoff_delay(3, 7.0), Duration::from_secs(4));
    }

    #[test]
    fn rate_limited_delay_caps_and_jitters() {
        let cap = Duration::from_secs(60);
        assert_eq!(
            rate_limited_delay(Some(Duration::from_secs(10)), cap, 0, 0.0),
            Duration::from_secs(10)
        );
        assert_eq!(
            rate_limited_delay(Some(Duration::from_secs(10)), cap, 0, 1.0),
            Duration::from_secs(10) + RETRY_AFTER_JITTER_MAX
        );
        assert_eq!(
            rate_limited_delay(Some(Duration::from_secs(3_600)), cap, 0, 0.0),
            cap
        );
        assert_eq!(
            rate_limited_delay(None, cap, 2, 0.5),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn transient_delay_honors_longer_retry_after() {
        let cap = Duration::from_secs(60);
        assert_eq!(
            transient_delay(Some(Duration::from_secs(5)), cap, 0, 0.5),
            Duration::from_secs(5)
        );
        assert_eq!(
            transient_delay(None, cap, 1, 0.5),
            Duration::from_millis(500)
        );
        assert_eq!(
            transient_delay(Some(Duration::from_secs(600)), cap, 0, 0.0),
            cap
        );
    }
}
