//! Reading a stored JSON report back into a [`Run`], so that `patrol report` renders the
//! last run in any format without calling the API.
//!
//! The JSON report contains everything the renderers use, so the run read back renders the
//! same table, JSON, CSV and Markdown as the run that wrote it. Request statistics other
//! than retries, 429 responses and rate-limit waiting are not in the report and come back
//! empty, and an owner's `type` is not kept.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;

use crate::audit::{Cutoff, Decision, ExemptionNote, ListingSummary, Recovered, Run, TokenResults};
use crate::isc::{Owner, RequestStats, Token};
use crate::policy::Action;
use crate::safety::{Breaker, Outcome, Protection};
use crate::state::{DeleteStatus, OwnerRecord, TokenRecord};

/// The reason a stored report cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the report is not valid JSON of a run: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the report has an unknown {field} {value:?}")]
    Unknown { field: &'static str, value: String },
}

#[derive(Deserialize)]
struct StoredRun {
    tenant: String,
    run_id: String,
    as_of: DateTime<Utc>,
    dry_run: bool,
    forecast: bool,
    started_at: DateTime<Utc>,
    duration_seconds: f64,
    cutoffs: Vec<StoredCutoff>,
    listing: StoredListing,
    breaker: Option<StoredBreaker>,
    #[serde(default)]
    max_deletions_per_run: usize,
    #[serde(default)]
    recovered: Vec<StoredRecovered>,
    requests: StoredRequests,
    tokens: Vec<StoredToken>,
}

#[derive(Deserialize)]
struct StoredCutoff {
    rule: String,
    last_used_older_than: String,
    cutoff: DateTime<Utc>,
    last_used_before_default_validity: DateTime<Utc>,
}

#[derive(Deserialize)]
struct StoredListing {
    listed: usize,
    judged: usize,
    last_used_le: Option<DateTime<Utc>>,
    last_used_le_count: Option<usize>,
    never_used_count: Option<usize>,
    duplicates: usize,
    filter_disagreements: usize,
    clock_skew_seconds: Option<i64>,
    problem: Option<String>,
}

#[derive(Deserialize)]
struct StoredBreaker {
    kind: String,
    due: Option<usize>,
    listed: Option<usize>,
    max_percent: Option<f64>,
    skew_seconds: Option<i64>,
    max_skew_seconds: Option<i64>,
    reason: Option<String>,
}

#[derive(Deserialize)]
struct StoredRequests {
    retries: u64,
    rate_limited: u64,
    rate_limit_wait_seconds: f64,
}

#[derive(Deserialize)]
struct StoredOwner {
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct StoredRecovered {
    id: String,
    name: String,
    owner: StoredOwner,
    scope: Option<Vec<String>>,
    created: DateTime<Utc>,
    last_used: Option<DateTime<Utc>>,
    expiration_date: Option<DateTime<Utc>>,
    access_token_validity_seconds: Option<u32>,
    managed: bool,
    intent_run_id: String,
    intent_at: DateTime<Utc>,
    rules: Vec<String>,
    result: DeleteStatus,
}

#[derive(Deserialize)]
struct StoredExemption {
    selector: String,
    reason: String,
    until: Option<DateTime<Utc>>,
    expired: bool,
}

#[derive(Deserialize)]
struct StoredToken {
    id: String,
    name: String,
    owner: StoredOwner,
    scope: Option<Vec<String>>,
    created: DateTime<Utc>,
    last_used: Option<DateTime<Utc>>,
    expiration_date: Option<DateTime<Utc>>,
    access_token_validity_seconds: u32,
    managed: bool,
    verdict: String,
    outcome: String,
    rules: Vec<String>,
    protections: Vec<String>,
    exemption: Option<StoredExemption>,
    first_flagged: Option<DateTime<Utc>>,
    grace_until: Option<DateTime<Utc>>,
    error: Option<String>,
}

/// Reads a JSON report, as written by [`super::to_json`], back into a run.
pub fn run_from_json(bytes: &[u8]) -> Result<Run, LoadError> {
    let stored: StoredRun = serde_json::from_slice(bytes)?;
    let breaker = stored.breaker.map(breaker).transpose()?;
    let tokens = stored
        .tokens
        .into_iter()
        .map(token_result)
        .collect::<Result<TokenResults, _>>()?;

    Ok(Run {
        run_id: stored.run_id,
        tenant: stored.tenant,
        as_of: stored.as_of,
        dry_run: stored.dry_run,
        forecast: stored.forecast,
        started_at: stored.started_at,
        duration: Duration::try_from_secs_f64(stored.duration_seconds).unwrap_or_default(),
        cutoffs: stored
            .cutoffs
            .into_iter()
            .map(|cutoff| Cutoff {
                rule: cutoff.rule,
                last_used_older_than: cutoff.last_used_older_than,
                cutoff: cutoff.cutoff,
                last_used_before_default_validity: cutoff.last_used_before_default_validity,
            })
            .collect(),
        listing: ListingSummary {
            listed: stored.listing.listed,
            judged: stored.listing.judged,
            last_used_le: stored.listing.last_used_le,
            last_used_le_count: stored.listing.last_used_le_count,
            never_used_count: stored.listing.never_used_count,
            duplicates: stored.listing.duplicates,
            filter_disagreements: stored.listing.filter_disagreements,
            clock_skew_seconds: stored.listing.clock_skew_seconds,
            problem: stored.listing.problem,
        },
        breaker,
        max_deletions_per_run: stored.max_deletions_per_run,
        tokens,
        recovered: stored.recovered.into_iter().map(recovered).collect(),
        requests: RequestStats {
            retries: stored.requests.retries,
            rate_limited: stored.requests.rate_limited,
            rate_limit_wait: Duration::try_from_secs_f64(stored.requests.rate_limit_wait_seconds)
                .unwrap_or_default(),
            ..RequestStats::default()
        },
        report_file: None,
    })
}

fn breaker(stored: StoredBreaker) -> Result<Breaker, LoadError> {
    let reason = || stored.reason.clone().unwrap_or_default();
    Ok(match stored.kind.as_str() {
        "deletion_percent" => Breaker::DeletionPercent {
            due: stored.due.unwrap_or_default(),
            listed: stored.listed.unwrap_or_default(),
            max_percent: stored.max_percent.unwrap_or_default(),
        },
        "clock_skew" => Breaker::ClockSkew {
            skew: TimeDelta::seconds(stored.skew_seconds.unwrap_or_default()),
            max: TimeDelta::seconds(stored.max_skew_seconds.unwrap_or_default()),
        },
        "incomplete_listing" => Breaker::IncompleteListing { reason: reason() },
        "state_reset" => Breaker::StateReset { reason: reason() },
        _ => {
            return Err(LoadError::Unknown {
                field: "breaker kind",
                value: stored.kind,
            });
        }
    })
}

fn token_result(stored: StoredToken) -> Result<(Token, Decision), LoadError> {
    let verdict = Action::parse(&stored.verdict).ok_or_else(|| LoadError::Unknown {
        field: "verdict",
        value: stored.verdict.clone(),
    })?;
    let outcome = Outcome::ALL
        .into_iter()
        .find(|outcome| outcome.as_str() == stored.outcome)
        .ok_or_else(|| LoadError::Unknown {
            field: "outcome",
            value: stored.outcome.clone(),
        })?;
    let protections = stored
        .protections
        .iter()
        .map(|name| match name.as_str() {
            "self" => Ok(Protection::SelfToken),
            "managed" => Ok(Protection::Managed),
            "young" => Ok(Protection::Young),
            _ => Err(LoadError::Unknown {
                field: "protection",
                value: name.clone(),
            }),
        })
        .collect::<Result<Box<[_]>, _>>()?;

    let token = Token {
        id: stored.id,
        name: stored.name,
        scope: stored.scope,
        owner: Owner {
            id: stored.owner.id,
            name: stored.owner.name,
        },
        created: stored.created,
        last_used: stored.last_used,
        managed: stored.managed,
        access_token_validity_seconds: Some(stored.access_token_validity_seconds),
        expiration_date: stored.expiration_date,
        user_aware_token_never_expires: None,
    };
    let decision = Decision {
        verdict,
        outcome,
        rules: stored.rules.into(),
        protections,
        exemption: stored.exemption.map(|exemption| {
            Box::new(ExemptionNote {
                selector: exemption.selector,
                reason: exemption.reason,
                until: exemption.until,
                expired: exemption.expired,
            })
        }),
        first_flagged: stored.first_flagged,
        grace_until: stored.grace_until,
        error: stored.error.map(String::into_boxed_str),
    };
    Ok((token, decision))
}

fn recovered(stored: StoredRecovered) -> Recovered {
    Recovered {
        token: TokenRecord {
            id: stored.id,
            name: stored.name,
            owner: OwnerRecord {
                id: stored.owner.id,
                name: stored.owner.name,
            },
            scope: stored.scope,
            created: stored.created,
            last_used: stored.last_used,
            expiration_date: stored.expiration_date,
            access_token_validity_seconds: stored.access_token_validity_seconds,
            user_aware_token_never_expires: None,
            managed: stored.managed,
        },
        rules: stored.rules,
        intent_run_id: stored.intent_run_id,
        intent_at: stored.intent_at,
        status: stored.result,
    }
}
