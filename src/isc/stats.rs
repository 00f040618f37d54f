//! Counters of the requests one client (and all its clones) sent: by operation and status
//! class, retries, 429 responses, time spent waiting for the rate limit, and a latency
//! histogram per operation with fixed buckets, ready for Prometheus exposition.
//!
//! The client records one entry per HTTP request sent, so a retried operation counts once
//! per attempt. The daemon turns a [`RequestStats`] snapshot into metrics; this module does
//! not know about Prometheus beyond the bucket layout.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds, in seconds, of the latency histogram buckets. A final `+Inf` bucket is
/// implied and equals [`LatencyHistogram::count`]. The range reaches one minute because
/// an unfiltered list of a large tenant is one long response.
pub const LATENCY_BUCKETS_SECONDS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Snapshot of the counters of one client.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestStats {
    /// Requests by (operation, status class), for example ("delete", "2xx"). Operations are
    /// "token", "list" and "delete". Classes are "1xx" to "5xx" for a response and "error"
    /// when no response arrived (connection failure, timeout, or the deadline cut it off).
    pub requests: BTreeMap<(String, String), u64>,
    /// Requests sent again after a retryable failure, including the one repeat after a 401.
    pub retries: u64,
    /// Responses with status 429.
    pub rate_limited: u64,
    /// Sum over all requests of the time spent waiting for the client's own pacing or for a
    /// `Retry-After` delay. Concurrent waits add up, so this can exceed the wall-clock time.
    pub rate_limit_wait: Duration,
    /// Latency of each request, by operation, from sending it to reading its whole body.
    pub latency: BTreeMap<String, LatencyHistogram>,
}

/// Cumulative latency histogram with the bounds of [`LATENCY_BUCKETS_SECONDS`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyHistogram {
    /// `buckets[i]` counts the requests that took at most `LATENCY_BUCKETS_SECONDS[i]`.
    pub buckets: [u64; LATENCY_BUCKETS_SECONDS.len()],
    /// Number of requests observed (the `+Inf` bucket).
    pub count: u64,
    /// Total latency of the observed requests.
    pub sum: Duration,
}

impl LatencyHistogram {
    /// Adds one observation.
    pub fn observe(&mut self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS_SECONDS.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += latency;
    }

    /// Returns each (upper bound in seconds, cumulative count) pair, without `+Inf`.
    pub fn cumulative_buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        LATENCY_BUCKETS_SECONDS
            .iter()
            .copied()
            .zip(self.buckets.iter().copied())
    }
}

/// Shared, mutable counters behind [`RequestStats`].
#[derive(Debug, Default)]
pub(crate) struct StatsRecorder {
    stats: Mutex<RequestStats>,
}

impl StatsRecorder {
    pub fn record_request(&self, operation: &str, status: Option<u16>, latency: Duration) {
        let class = match status {
            Some(status) => format!("{}xx", status / 100),
            None => "error".to_owned(),
        };
        let mut stats = self.lock();
        *stats
            .requests
            .entry((operation.to_owned(), class))
            .or_default() += 1;
        stats
            .latency
            .entry(operation.to_owned())
            .or_default()
            .observe(latency);
    }

    pub fn record_retry(&self) {
        self.lock().retries += 1;
    }

    pub fn record_rate_limited(&self) {
        self.lock().rate_limited += 1;
    }

    pub fn record_rate_limit_wait(&self, waited: Duration) {
        if !waited.is_zero() {
            self.lock().rate_limit_wait += waited;
        }
    }

    pub fn snapshot(&self) -> RequestStats {
        self.lock().clone()
    }

    /// Returns the mean latency of the requests of `operation` so far, without copying the
    /// counters.
    pub fn mean_latency(&self, operation: &str) -> Option<Duration> {
        let stats = self.lock();
        let histogram = stats.latency.get(operation)?;
        let count = u32::try_from(histogram.count)
            .ok()
            .filter(|count| *count > 0)?;
        Some(histogram.sum / count)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RequestStats> {
        // The counters stay consistent even if a holder panicked, because every update is a
        // single addition.
        self.stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_cumulatively() {
        let mut histogram = LatencyHistogram::default();
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_millis(100));
        histogram.observe(Duration::from_secs(90));

        let buckets: Vec<(f64, u64)> = histogram.cumulative_buckets().collect();
        assert_eq!(buckets[0], (0.005, 1));
        assert_eq!(buckets[3], (0.05, 1));
        assert_eq!(buckets[4], (0.1, 2));
        assert_eq!(buckets[12], (60.0, 2));
        assert_eq!(histogram.count, 3);
        assert_eq!(histogram.sum, Duration::from_millis(90_103));
    }

    #[test]
    fn recorder_groups_by_operation_and_class() {
        let recorder = StatsRecorder::default();
        recorder.record_request("delete", Some(204), Duration::from_millis(20));
        recorder.record_request("delete", Some(404), Duration::from_millis(20));
        recorder.record_request("delete", Some(204), Duration::from_millis(20));
        recorder.record_request("list", None, Duration::from_secs(1));
        recorder.record_retry();
        recorder.record_rate_limited();
        recorder.record_rate_limit_wait(Duration::from_secs(2));

        let stats = recorder.snapshot();
        let count = |operation: &str, class: &str| {
            stats
                .requests
                .get(&(operation.to_owned(), class.to_owned()))
                .copied()
        };
        assert_eq!(count("delete", "2xx"), Some(2));
        assert_eq!(count("delete", "4xx"), Some(1));
        assert_eq!(count("list", "error"), Some(1));
        assert_eq!(stats.latency["delete"].count, 3);
        assert_eq!(stats.retries, 1);
        assert_eq!(stats.rate_limited, 1);
        assert_eq!(stats.rate_limit_wait, Duration::from_secs(2));
    }

    #[test]
    fn mean_latency_per_operation() {
        let recorder = StatsRecorder::default();
        assert_eq!(recorder.mean_latency("delete"), None);
        recorder.record_request("delete", Some(204), Duration::from_millis(100));
        recorder.record_request("delete", Some(204), Duration::from_millis(300));
        recorder.record_request("list", Some(200), Duration::from_secs(5));
        assert_eq!(
            recorder.mean_latency("delete"),
            Some(Duration::from_millis(200))
        );
        assert_eq!(recorder.mean_latency("list"), Some(Duration::from_secs(5)));
    }
}
