//! Fault settings of the simulated tenant and the seeded dice that decide which requests
//! they hit.
//!
//! The settings can be replaced while the tenant runs (`PUT /_sim/faults`), so they live
//! behind a lock in the server state. Their JSON names are the names of the `patrol sim`
//! flags. Every fraction is a probability per API request between 0 and 1. The dice use one
//! RNG seeded at start, so the same seed and the same sequence of requests hit the same
//! requests. Concurrent requests may arrive in a different order from run to run, though.

use serde::{Deserialize, Serialize};

/// Access token lifetime in seconds when nothing else is configured, as in the API's
/// documented token response example.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 749;

/// Status codes returned in turn by the 5xx fault when no single status is chosen.
pub const SERVER_ERROR_CYCLE: [u16; 4] = [500, 502, 503, 504];

/// Faults and timing the tenant applies to API requests (`/oauth/token` and the PAT list
/// and delete paths; never to the control API under `/_sim/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Faults {
    /// Delay before every API response, in milliseconds.
    pub latency_ms: u64,
    /// Fraction of PAT requests that get 429, as if rate limited.
    #[serde(rename = "fault-429")]
    pub too_many_requests: f64,
    /// `Retry-After` of the injected 429 responses, in seconds.
    #[serde(rename = "fault-retry-after")]
    pub retry_after_secs: u64,
    /// Fraction of PAT requests that get a 5xx status.
    #[serde(rename = "fault-5xx")]
    pub server_error: f64,
    /// The status of injected 5xx responses. `None` cycles through 500, 502, 503, 504.
    #[serde(rename = "fault-5xx-status")]
    pub server_error_status: Option<u16>,
    /// Fraction of PAT requests whose connection is closed without a response, before the
    /// request is processed.
    #[serde(rename = "fault-drop")]
    pub drop_connection: f64,
    /// Fraction of PAT requests that are processed (a delete is performed) and whose
    /// connection is then closed without a response, so the client cannot know the outcome.
    #[serde(rename = "fault-drop-after")]
    pub drop_after_processing: f64,
    /// Fraction of list responses (status 200) whose body is not valid JSON.
    #[serde(rename = "fault-malformed")]
    pub malformed_body: f64,
    /// Fraction of list responses whose body stops halfway, after which the connection
    /// closes. The `Content-Length` header still announces the full body.
    #[serde(rename = "fault-cut-body")]
    pub cut_body: f64,
    /// Maximum number of tokens in one list response, whatever the request; the rest is
    /// silently left out. `None` lists everything.
    #[serde(rename = "fault-list-cap")]
    pub list_cap: Option<usize>,
    /// Whether to ignore the `filters` parameter, so that every list returns all tokens of
    /// the requested owner.
    #[serde(rename = "fault-ignore-filters")]
    pub ignore_filters: bool,
    /// Lifetime of newly issued access tokens, in seconds (the `expires_in` returned).
    #[serde(rename = "token-ttl")]
    pub token_ttl_secs: u64,
    /// Seconds added to the `Date` header of every response; negative puts it in the past.
    #[serde(rename = "clock-skew")]
    pub clock_skew_secs: i64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            too_many_requests: 0.0,
            retry_after_secs: 1,
            server_error: 0.0,
            server_error_status: None,
            drop_connection: 0.0,
            drop_after_processing: 0.0,
            malformed_body: 0.0,
            cut_body: 0.0,
            list_cap: None,
            ignore_filters: false,
            token_ttl_secs: DEFAULT_TOKEN_TTL_SECS,
            clock_skew_secs: 0,
        }
    }
}

impl Faults {
    /// Checks that every fraction lies in 0..=1 and that a chosen 5xx status is one.
    pub fn validate(&self) -> Result<(), String> {
        for (name, fraction) in [
            ("fault-429", self.too_many_requests),
            ("fault-5xx", self.server_error),
            ("fault-drop", self.drop_connection),
            ("fault-drop-after", self.drop_after_processing),
            ("fault-malformed", self.malformed_body),
            ("fault-cut-body", self.cut_body),
        ] {
            if !(0.0..=1.0).contains(&fraction) {
                return Err(format!(
                    "{name} must be a fraction between 0 and 1, found {fraction}"
                ));
            }
        }
        match self.server_error_status {
            Some(status) if !(500..=599).contains(&status) => Err(format!(
                "fault-5xx-status must be a status from 500 to 599, found {status}"
            )),
            _ => Ok(()),
        }
    }
}

/// The seeded RNG behind every fault decision, and the position in the 5xx cycle.
#[derive(Debug)]
pub(crate) struct Dice {
    rng: fastrand::Rng,
    next_server_error: usize,
}

impl Dice {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            next_server_error: 0,
        }
    }

    /// Returns `true` with probability `fraction`. Draws from the RNG only for fractions
    /// strictly between 0 and 1, so disabled faults do not shift the sequence.
    pub(crate) fn hits(&mut self, fraction: f64) -> bool {
        if fraction <= 0.0 {
            false
        } else if fraction >= 1.0 {
            true
        } else {
            self.rng.f64() < fraction
        }
    }

    pub(crate) fn server_error_status(&mut self, chosen: Option<u16>) -> u16 {
        if let Some(status) = chosen {
            return status;
        }
        let status = SERVER_ERROR_CYCLE[self.next_server_error % SERVER_ERROR_CYCLE.len()];
        self.next_server_error += 1;
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_match_flags() {
        let faults: Faults = serde_json::from_str(
            r#"{"latency-ms":5,"fault-429":0.5,"fault-retry-after":3,"fault-5xx":0.25,
                "fault-5xx-status":503,"fault-drop":0.1,"fault-drop-after":0.4,"fault-malformed":0.2,
                "fault-cut-body":0.3,"fault-list-cap":7,"fault-ignore-filters":true,
                "token-ttl":0,"clock-skew":-120}"#,
        )
        .unwrap();
        assert_eq!(faults.latency_ms, 5);
        assert_eq!(faults.too_many_requests, 0.5);
        assert_eq!(faults.retry_after_secs, 3);
        assert_eq!(faults.server_error, 0.25);
        assert_eq!(faults.server_error_status, Some(503));
        assert_eq!(faults.drop_connection, 0.1);
        assert_eq!(faults.drop_after_processing, 0.4);
        assert_eq!(faults.malformed_body, 0.2);
        assert_eq!(faults.cut_body, 0.3);
        assert_eq!(faults.list_cap, Some(7));
        assert!(faults.ignore_filters);
        assert_eq!(faults.token_ttl_secs, 0);
        assert_eq!(faults.clock_skew_secs, -120);
    }

    #[test]
    fn missing_names_take_defaults_and_unknown_names_fail() {
        let faults: Faults = serde_json::from_str(r#"{"fault-429":1}"#).unwrap();
        assert_eq!(faults.token_ttl_secs, DEFAULT_TOKEN_TTL_SECS);
        assert_eq!(faults.retry_after_secs, 1);
        assert!(serde_json::from_str::<Faults>(r#"{"fault-428":1}"#).is_err());
    }

    #[test]
    fn validate_rejects_out_of_range() {
        let faults = Faults {
            drop_connection: 1.5,
            ..Faults::default()
        };
        assert!(faults.validate().unwrap_err().contains("fault-drop"));
        let faults = Faults {
            server_error_status: Some(404),
            ..Faults::default()
        };
        assert!(faults.validate().unwrap_err().contains("fault-5xx-status"));
        assert_eq!(Faults::default().validate(), Ok(()));
    }

    #[test]
    fn dice_are_reproducible_for_a_seed() {
        let mut first = Dice::new(42);
        let mut second = Dice::new(42);
        let a: Vec<bool> = (0..100).map(|_| first.hits(0.3)).collect();
        let b: Vec<bool> = (0..100).map(|_| second.hits(0.3)).collect();
        assert_eq!(a, b);
        assert!(a.iter().any(|&hit| hit));
        assert!(a.iter().any(|&hit| !hit));
    }

    #[test]
    fn dice_edges_do_not_draw() {
        let mut dice = Dice::new(1);
        assert!(!dice.hits(0.0));
        assert!(dice.hits(1.0));
        let mut fresh = Dice::new(1);
        assert_eq!(dice.hits(0.5), fresh.hits(0.5));
    }

    #[test]
    fn server_errors_cycle_or_stay_chosen() {
        let mut dice = Dice::new(1);
        let cycle: Vec<u16> = (0..5).map(|_| dice.server_error_status(None)).collect();
        assert_eq!(cycle, vec![500, 502, 503, 504, 500]);
        assert_eq!(dice.server_error_status(Some(503)), 503);
    }
}
