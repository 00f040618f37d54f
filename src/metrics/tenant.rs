//! What the metrics keep per tenant: counters that only grow, and a snapshot of the last
//! run that listed and judged the tenant.
//!
//! The snapshot is replaced as a whole after each such run, so a token missing from the
//! new listing has no series any more. A run that fails before judging (unreachable
//! tenant, rejected credentials, state error) leaves the snapshot as it was: its series
//! keep the values of the last judged run, and `patrol_last_success_timestamp_seconds`
//! shows how old they are. Dropping them instead would resolve every token alert during
//! an API outage and fire them again after it.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::audit::{Run, RunError};
use crate::isc::{Client, IscError, RequestStats};
use crate::policy::Action;
use crate::safety::Outcome;

/// The result label of `patrol_runs_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunResult {
    /// Listed, judged, and every delete that was due succeeded.
    Success,
    /// Listed and judged, but a breaker held every delete.
    Breaker,
    /// Listed and judged, but some deletes failed.
    Incomplete,
    /// The tenant rejected patrol's credentials or lacks a right (HTTP 400, 401 or 403).
    AuthFailed,
    /// The tenant could not be reached, or the run deadline passed before the listing.
    Unreachable,
    /// Anything else, such as an unwritable state directory.
    Error,
}

impl RunResult {
    pub const ALL: [RunResult; 6] = [
        RunResult::Success,
        RunResult::Breaker,
        RunResult::Incomplete,
        RunResult::AuthFailed,
        RunResult::Unreachable,
        RunResult::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Success => "success",
            RunResult::Breaker => "breaker",
            RunResult::Incomplete => "incomplete",
            RunResult::AuthFailed => "auth_failed",
            RunResult::Unreachable => "unreachable",
            RunResult::Error => "error",
        }
    }

    /// Classifies the result of a run.
    pub fn of(result: &Result<Run, RunError>) -> RunResult {
        match result {
            Ok(run) if run.breaker.is_some() => RunResult::Breaker,
            Ok(run) if run.tally().outcome(Outcome::Failed) > 0 => RunResult::Incomplete,
            Ok(_) => RunResult::Success,
            Err(RunError::Unreachable { source, .. }) => match source {
                IscError::Authentication { .. } | IscError::Forbidden { .. } => {
                    RunResult::AuthFailed
                }
                _ => RunResult::Unreachable,
            },
            Err(RunError::State { .. }) => RunResult::Error,
        }
    }

    /// Checks whether a run with this result listed and judged the tenant.
    pub fn judged(self) -> bool {
        matches!(
            self,
            RunResult::Success | RunResult::Breaker | RunResult::Incomplete
        )
    }

    fn index(self) -> usize {
        RunResult::ALL
            .iter()
            .position(|result| *result == self)
            .unwrap_or_default()
    }
}

/// Verdicts in the order of their label values.
pub const VERDICTS: [Action; 3] = [Action::Keep, Action::Report, Action::Delete];

/// The outcome labels of `patrol_token_outcomes`, in order.
pub const OUTCOMES: [&str; 11] = [
    "none",
    "reported",
    "exempt",
    "protected",
    "grace",
    "deferred",
    "held",
    "dry_run",
    "deleted",
    "gone",
    "failed",
];

/// The results of `patrol_deletions_total`, in order.
pub const DELETION_RESULTS: [&str; 3] = ["deleted", "gone", "failed"];

/// The breaker labels of `patrol_breaker_tripped`, as `Breaker::kind` names them.
pub const BREAKERS: [&str; 4] = [
    "deletion_percent",
    "clock_skew",
    "incomplete_listing",
    "state_reset",
];

/// Returns the outcome label of a token. A token still due when the run stopped (on SIGTERM)
/// was not deleted and goes first in the next run, which is what `deferred` means.
pub fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Due => "deferred",
        other => other.as_str(),
    }
}

/// Limits of the per-token series, from `[metrics]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSeriesSettings {
    pub max_token_series: usize,
    pub token_labels: bool,
}

/// The series of one flagged token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSeries {
    pub id: String,
    /// Empty when `[metrics] token_labels = false`.
    pub name: String,
    pub owner_id: String,
    /// Empty when `[metrics] token_labels = false`.
    pub owner_name: String,
    pub verdict: &'static str,
    pub outcome: &'static str,
    pub last_used: Option<DateTime<Utc>>,
    pub created: DateTime<Utc>,
    pub expiration: Option<DateTime<Utc>>,
    /// When the grace period ends, for tokens in grace.
    pub deletion_due: Option<DateTime<Utc>>,
}

/// The facts of the last run that listed and judged the tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// Tokens by verdict, in the order of [`VERDICTS`].
    pub verdicts: [usize; 3],
    /// Tokens by outcome, in the order of [`OUTCOMES`].
    pub outcomes: [usize; 11],
    pub listed: usize,
    pub tokens: Vec<TokenSeries>,
    /// Flagged tokens left without series because of `max_token_series`.
    pub dropped: usize,
    /// The `Breaker::kind` of the breaker that tripped.
    pub breaker: Option<&'static str>,
    pub filter_disagreements: usize,
    pub clock_skew_seconds: Option<i64>,
}

impl Judged {
    /// Takes the snapshot of a run.
    pub fn of(run: &Run, settings: TokenSeriesSettings) -> Judged {
        let mut verdicts = [0; 3];
        let mut outcomes = [0; 11];
        for token in &run.tokens {
            if let Some(index) = VERDICTS
                .iter()
                .position(|verdict| *verdict == token.verdict)
            {
                verdicts[index] += 1;
            }
            let label = outcome_label(token.outcome);
            if let Some(index) = OUTCOMES.iter().position(|outcome| *outcome == label) {
                outcomes[index] += 1;
            }
        }

        // Delete verdicts first, then the earliest deletion, then the longest unused.
        let mut flagged: Vec<_> = run
            .tokens
            .iter()
            .filter(|token| token.verdict != Action::Keep)
            .collect();
        flagged.sort_by_key(|token| {
            (
                token.verdict != Action::Delete,
                token.grace_until.unwrap_or(DateTime::<Utc>::MAX_UTC),
                token.token.last_used.unwrap_or(token.token.created),
                token.token.id.clone(),
            )
        });
        let dropped = flagged.len().saturating_sub(settings.max_token_series);
        let tokens = flagged
            .into_iter()
            .take(settings.max_token_series)
            .map(|result| {
                let token = &result.token;
                let free_text = |text: &Option<String>| {
                    if settings.token_labels {
                        text.clone().unwrap_or_default()
                    } else {
                        String::new()
                    }
                };
                TokenSeries {
                    id: token.id.clone(),
                    name: free_text(&Some(token.name.clone())),
                    owner_id: token.owner.id.clone().unwrap_or_default(),
                    owner_name: free_text(&token.owner.name),
                    verdict: result.verdict.as_str(),
                    outcome: outcome_label(result.outcome),
                    last_used: token.last_used,
                    created: token.created,
                    expiration: token.expiration_date,
                    deletion_due: (result.outcome == Outcome::Grace)
                        .then_some(result.grace_until)
                        .flatten(),
                }
            })
            .collect();

        Judged {
            verdicts,
            outcomes,
            listed: run.listing.listed,
            tokens,
            dropped,
            breaker: run.breaker.as_ref().map(|breaker| breaker.kind()),
            filter_disagreements: run.listing.filter_disagreements,
            clock_skew_seconds: run.listing.clock_skew_seconds,
        }
    }
}

/// Everything the metrics keep about one tenant.
#[derive(Debug, Default)]
pub struct TenantMetrics {
    /// Finished runs, in the order of [`RunResult::ALL`].
    pub runs: [u64; 6],
    pub skipped: u64,
    /// Delete requests, in the order of [`DELETION_RESULTS`].
    pub deletions: [u64; 3],
    /// The client the next run uses.
    pub client: Option<Client>,
    /// Clients replaced by a reload. A run that started before the reload may still use
    /// one, so their counts are read until the tenant's next run ends.
    pub retiring: Vec<Client>,
    /// Request counts of clients no longer in use.
    pub retired: RequestStats,
    pub last_run_end: Option<DateTime<Utc>>,
    pub last_run_duration: Option<Duration>,
    pub last_success_end: Option<DateTime<Utc>>,
    pub judged: Option<Judged>,
    pub next_run: Option<DateTime<Utc>>,
    pub interval: Option<TimeDelta>,
}

impl TenantMetrics {
    /// Counts a finished run and, when it judged the tenant, replaces the snapshot.
    pub fn record_run(
        &mut self,
        result: &Result<Run, RunError>,
        ended: DateTime<Utc>,
        duration: Duration,
        settings: TokenSeriesSettings,
    ) {
        let kind = RunResult::of(result);
        self.runs[kind.index()] += 1;
        self.last_run_end = Some(ended);
        self.last_run_duration = Some(duration);

        if let Ok(run) = result {
            let tally = run.tally();
            // A token whose delete was not sent because the audit log was not writable
            // counts as failed too: both are deletes the run decided and did not do.
            for (index, outcome) in [Outcome::Deleted, Outcome::Gone, Outcome::Failed]
                .into_iter()
                .enumerate()
            {
                self.deletions[index] += tally.outcome(outcome) as u64;
            }
            if kind.judged() {
                self.last_success_end = Some(ended);
                self.judged = Some(Judged::of(run, settings));
            }
        }

        for client in self.retiring.drain(..) {
            add_stats(&mut self.retired, &client.stats());
        }
    }

    /// Returns the request counts of every client this tenant used.
    pub fn request_stats(&self) -> RequestStats {
        let mut total = self.retired.clone();
        for client in self.retiring.iter().chain(&self.client) {
            add_stats(&mut total, &client.stats());
        }
        total
    }
}

/// Adds the counts of `more` to `total`.
pub fn add_stats(total: &mut RequestStats, more: &RequestStats) {
    for (key, count) in &more.requests {
        *total.requests.entry(key.clone()).or_default() += count;
    }
    total.retries += more.retries;
    total.rate_limited += more.rate_limited;
    total.rate_limit_wait += more.rate_limit_wait;
    for (operation, histogram) in &more.latency {
        let sum = total.latency.entry(operation.clone()).or_default();
        for (bucket, count) in sum.buckets.iter_mut().zip(histogram.buckets) {
            *bucket += count;
        }
        sum.count += histogram.count;
        sum.sum += histogram.sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isc::LatencyHistogram;

    #[test]
    fn stats_add_up_by_key() {
        let mut one = RequestStats::default();
        one.requests.insert(("list".into(), "2xx".into()), 3);
        one.retries = 1;
        let mut histogram = LatencyHistogram::default();
        histogram.observe(Duration::from_millis(20));
        one.latency.insert("list".into(), histogram.clone());
        let mut two = one.clone();
        two.requests.insert(("delete".into(), "4xx".into()), 1);
        two.rate_limit_wait = Duration::from_secs(2);

        let mut total = RequestStats::default();
        add_stats(&mut total, &one);
        add_stats(&mut total, &two);
        assert_eq!(total.requests[&("list".into(), "2xx".into())], 6);
        assert_eq!(total.requests[&("delete".into(), "4xx".into())], 1);
        assert_eq!(total.retries, 2);
        assert_eq!(total.rate_limit_wait, Duration::from_secs(2));
        assert_eq!(total.latency["list"].count, 2);
        assert_eq!(total.latency["list"].buckets[3], 2);
        assert_eq!(total.latency["list"].sum, Duration::from_millis(40));
    }

    #[test]
    fn due_token_counts_as_deferred() {
        assert_eq!(outcome_label(Outcome::Due), "deferred");
        assert_eq!(outcome_label(Outcome::DryRun), "dry_run");
        for outcome in Outcome::ALL {
            assert!(
                OUTCOMES.contains(&outcome_label(outcome)),
                "{outcome} has no label"
            );
        }
    }
}
