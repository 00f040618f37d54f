//! Request statistics of the simulated tenant, as `GET /_sim/stats` returns them.
//!
//! Every response to a request outside `/_sim/` is counted by method, path kind and status.
//! Per client id and API version the tenant also records how many requests arrived in the
//! busiest window of the rate-limit window length. A test can check with it that a client
//! paced itself below the limit, whether or not the limit is enforced.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::rate::WindowPeaks;

/// A snapshot of the statistics since start or the last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Responses by method, path kind (`token`, `list`, `delete`, `other`) and status code.
    /// The status is `dropped` for connections closed without a response.
    pub requests: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>>,
    /// Calls of `POST /oauth/token`, whatever their outcome.
    pub token_requests: u64,
    /// Tokens deleted (responses 204).
    pub deletes: u64,
    /// All responses with status 429, from the rate limit and from the 429 fault.
    pub too_many_requests: u64,
    /// Responses 429 from the rate limit alone.
    pub rate_limited: u64,
    /// Requests hit by each injected fault.
    pub faults: FaultCounts,
    /// Per client id and API version: requests that passed authentication, and the most
    /// that arrived within one window of `rate_limit.window_secs`.
    pub windows: Vec<WindowStats>,
    /// The rate limit in force.
    pub rate_limit: RateLimitInfo,
}

/// Requests hit by each fault.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounts {
    pub too_many_requests: u64,
    pub server_errors: u64,
    /// Connections closed before the request was processed.
    pub dropped: u64,
    /// Connections closed after the request was processed.
    pub dropped_after_processing: u64,
    pub malformed: u64,
    pub cut_bodies: u64,
    /// List responses that left tokens out because of `fault-list-cap`.
    pub capped_lists: u64,
}

/// Traffic of one client id on one API version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowStats {
    pub client_id: String,
    /// `v3`, `beta`, `v2024`, `v2025`, `v2026`, `v1`, or `oauth` for the token endpoint.
    pub version: String,
    pub requests: u64,
    pub max_in_window: usize,
}

/// The configured rate limit; `requests` 0 means disabled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitInfo {
    pub requests: u32,
    pub window_secs: u64,
}

/// Collects the statistics; lives behind a mutex in the server state.
#[derive(Debug)]
pub(crate) struct StatsRecorder {
    totals: SimStats,
    peaks: WindowPeaks<(String, String)>,
}

impl StatsRecorder {
    pub(crate) fn new(limit: u32, window: Duration) -> Self {
        Self {
            totals: SimStats {
                rate_limit: RateLimitInfo {
                    requests: limit,
                    window_secs: window.as_secs(),
                },
                ..SimStats::default()
            },
            peaks: WindowPeaks::new(window),
        }
    }

    pub(crate) fn record_response(&mut self, method: &str, kind: &str, status: &str) {
        *self
            .totals
            .requests
            .entry(method.to_owned())
            .or_default()
            .entry(kind.to_owned())
            .or_default()
            .entry(status.to_owned())
            .or_default() += 1;
        if status == "429" {
            self.totals.too_many_requests += 1;
        }
    }

    pub(crate) fn record_arrival(&mut self, client_id: &str, version: &str, now: Instant) {
        self.peaks
            .record((client_id.to_owned(), version.to_owned()), now);
    }

    pub(crate) fn totals_mut(&mut self) -> &mut SimStats {
        &mut self.totals
    }

    pub(crate) fn snapshot(&self) -> SimStats {
        let mut stats = self.totals.clone();
        stats.windows = self
            .peaks
            .snapshot()
            .into_iter()
            .map(
                |((client_id, version), requests, max_in_window)| WindowStats {
                    client_id,
                    version,
                    requests,
                    max_in_window,
                },
            )
            .collect();
        stats
            .windows
            .sort_by(|a, b| (&a.client_id, &a.version).cmp(&(&b.client_id, &b.version)));
        stats
    }

    pub(crate) fn reset(&mut self) {
        let rate_limit = self.totals.rate_limit.clone();
        self.totals = SimStats {
            rate_limit,
            ..SimStats::default()
        };
        self.peaks.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_counts_responses_and_windows() {
        let mut recorder = StatsRecorder::new(100, Duration::from_secs(10));
        let now = Instant::now();
        recorder.record_response("GET", "list", "200");
        recorder.record_response("GET", "list", "429");
        recorder.record_response("GET", "list", "200");
        recorder.record_arrival("pat", "v3", now);
        recorder.record_arrival("pat", "v3", now);
        recorder.record_arrival("pat", "beta", now);

        let stats = recorder.snapshot();
        assert_eq!(stats.requests["GET"]["list"]["200"], 2);
        assert_eq!(stats.requests["GET"]["list"]["429"], 1);
        assert_eq!(stats.too_many_requests, 1);
        assert_eq!(stats.windows.len(), 2);
        assert_eq!(stats.windows[0].version, "beta");
        assert_eq!(stats.windows[1].max_in_window, 2);
        assert_eq!(stats.rate_limit.requests, 100);
    }

    #[test]
    fn reset_keeps_rate_limit_info() {
        let mut recorder = StatsRecorder::new(5, Duration::from_secs(60));
        recorder.record_response("DELETE", "delete", "204");
        recorder.record_arrival("pat", "v3", Instant::now());
        recorder.reset();
        let stats = recorder.snapshot();
        assert!(stats.requests.is_empty());
        assert!(stats.windows.is_empty());
        assert_eq!(stats.rate_limit.window_secs, 60);
    }
}
