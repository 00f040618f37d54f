//! Sliding-window counting per key: the rate limiter, and the statistic of how many
//! requests arrived in the busiest window.
//!
//! ISC documents its limit as 100 requests per `client_id` and API version per 10 seconds.
//! The limiter keeps, per key, the instants of the requests it admitted during the last
//! window. A request is admitted while fewer than the limit are on record. A rejected
//! request is not recorded, so a client that keeps retrying is admitted as soon as the
//! oldest admitted request leaves the window. Instants come from the caller, which keeps
//! this module free of clocks and testable without waiting.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Admits at most `limit` requests per key in any window of `window`.
#[derive(Debug)]
pub(crate) struct SlidingWindowLimiter<K> {
    limit: u32,
    window: Duration,
    admitted: HashMap<K, VecDeque<Instant>>,
}

impl<K: Eq + Hash> SlidingWindowLimiter<K> {
    /// Creates a limiter. A limit of 0 admits every request.
    pub(crate) fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            admitted: HashMap::new(),
        }
    }

    /// Records and admits the request, or returns how long until a slot frees up.
    pub(crate) fn try_acquire(&mut self, key: K, now: Instant) -> Result<(), Duration> {
        if self.limit == 0 {
            return Ok(());
        }
        let log = self.admitted.entry(key).or_default();
        prune(log, now, self.window);

        if log.len() < self.limit as usize {
            log.push_back(now);
            return Ok(());
        }
        let oldest = log.front().copied().unwrap_or(now);
        Err((oldest + self.window).saturating_duration_since(now))
    }
}

/// Tracks, per key, the total number of requests and the largest number that arrived within
/// any window of `window`.
#[derive(Debug)]
pub(crate) struct WindowPeaks<K> {
    window: Duration,
    keys: HashMap<K, Peak>,
}

#[derive(Debug, Default)]
struct Peak {
    arrivals: VecDeque<Instant>,
    max_in_window: usize,
    total: u64,
}

impl<K: Eq + Hash + Clone> WindowPeaks<K> {
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window,
            keys: HashMap::new(),
        }
    }

    pub(crate) fn record(&mut self, key: K, now: Instant) {
        let peak = self.keys.entry(key).or_default();
        prune(&mut peak.arrivals, now, self.window);
        peak.arrivals.push_back(now);
        peak.total += 1;
        peak.max_in_window = peak.max_in_window.max(peak.arrivals.len());
    }

    /// `(key, total requests, maximum in one window)` for every key seen.
    pub(crate) fn snapshot(&self) -> Vec<(K, u64, usize)> {
        self.keys
            .iter()
            .map(|(key, peak)| (key.clone(), peak.total, peak.max_in_window))
            .collect()
    }

    pub(crate) fn clear(&mut self) {
        self.keys.clear();
    }
}

/// Drops the instants that are a whole window or more before `now`, so the log covers the
/// half-open window `(now - window, now]`.
fn prune(log: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while let Some(&oldest) = log.front() {
        if now.saturating_duration_since(oldest) >= window {
            log.pop_front();
        } else {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(10);

    #[test]
    fn limiter_admits_up_to_limit_then_rejects() {
        let start = Instant::now();
        let mut limiter = SlidingWindowLimiter::new(3, WINDOW);
        for i in 0..3 {
            assert_eq!(
                limiter.try_acquire("a", start + Duration::from_secs(i)),
                Ok(())
            );
        }
        let wait = limiter
            .try_acquire("a", start + Duration::from_millis(3500))
            .unwrap_err();
        assert_eq!(wait, Duration::from_millis(6500));
    }

    #[test]
    fn limiter_keys_are_independent() {
        let start = Instant::now();
        let mut limiter = SlidingWindowLimiter::new(1, WINDOW);
        assert_eq!(limiter.try_acquire(("a", "v3"), start), Ok(()));
        assert_eq!(limiter.try_acquire(("a", "beta"), start), Ok(()));
        assert_eq!(limiter.try_acquire(("b", "v3"), start), Ok(()));
        assert!(limiter.try_acquire(("a", "v3"), start).is_err());
    }

    #[test]
    fn limiter_frees_slot_when_oldest_leaves_window() {
        let start = Instant::now();
        let mut limiter = SlidingWindowLimiter::new(2, WINDOW);
        assert_eq!(limiter.try_acquire("a", start), Ok(()));
        assert_eq!(
            limiter.try_acquire("a", start + Duration::from_secs(5)),
            Ok(())
        );
        assert!(
            limiter
                .try_acquire("a", start + Duration::from_secs(9))
                .is_err()
        );
        assert_eq!(limiter.try_acquire("a", start + WINDOW), Ok(()));
        assert!(limiter.try_acquire("a", start + WINDOW).is_err());
    }

    #[test]
    fn rejected_requests_do_not_extend_the_wait() {
        let start = Instant::now();
        let mut limiter = SlidingWindowLimiter::new(1, WINDOW);
        assert_eq!(limiter.try_acquire("a", start), Ok(()));
        for second in 1..10 {
            assert!(
                limiter
                    .try_acquire("a", start + Duration::from_secs(second))
                    .is_err()
            );
        }
        assert_eq!(limiter.try_acquire("a", start + WINDOW), Ok(()));
    }

    #[test]
    fn zero_limit_disables() {
        let start = Instant::now();
        let mut limiter = SlidingWindowLimiter::new(0, WINDOW);
        for _ in 0..1000 {
            assert_eq!(limiter.try_acquire("a", start), Ok(()));
        }
    }

    #[test]
    fn peaks_count_busiest_window() {
        let start = Instant::now();
        let mut peaks = WindowPeaks::new(WINDOW);
        // Arrivals at 0, 0.5, 0.9, 8, 9, 10 and 12 s. The busiest 10 s windows, such as
        // (-1 s, 9 s] and (0 s, 10 s], hold five of them.
        for millis in [0, 500, 900, 8000, 9000, 10_000, 12_000] {
            peaks.record("a", start + Duration::from_millis(millis));
        }
        let snapshot = peaks.snapshot();
        assert_eq!(snapshot, vec![("a", 7, 5)]);
    }

    #[test]
    fn peaks_clear_resets() {
        let start = Instant::now();
        let mut peaks = WindowPeaks::new(WINDOW);
        peaks.record("a", start);
        peaks.clear();
        assert!(peaks.snapshot().is_empty());
    }
}
