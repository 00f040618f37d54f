//! The JSON report of `patrol audit --format json`.
//!
//! One object per tenant run: tenant, as-of instant, dry-run flag, the effective cutoffs,
//! a summary of counts, and `tokens` with one entry per listed token. Field names are a
//! contract that other tools rely on; add fields, never rename them.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};

use serde::Serialize;
use serde_json::{Value, json};

use crate::audit::{Run, TokenResult};
use crate::isc::Token;
use crate::policy::Action;
use crate::safety::{Breaker, Outcome, Protection};

use super::line_format::LineFormatter;
use super::reason::Reason;
use super::{Instant, instant};

fn serialize_display<S: serde::Serializer>(
    value: &impl std::fmt::Display,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

// The report is serialized straight from these borrowed views instead of through a
// `serde_json::Value` tree, which for a tenant of 100,000 tokens cost several hundred MiB
// and most of the run's CPU time. Fields are declared in alphabetical order, the order a
// `Value` object (a `BTreeMap`) writes them in, so the output stays the same byte for byte.

#[derive(Serialize)]
struct Report<'a> {
    as_of: String,
    breaker: Option<Value>,
    cutoffs: Vec<CutoffView<'a>>,
    dry_run: bool,
    duration_seconds: f64,
    forecast: bool,
    listing: ListingView<'a>,
    max_deletions_per_run: usize,
    recovered: Vec<Value>,
    requests: RequestsView,
    run_id: &'a str,
    started_at: String,
    summary: Summary,
    tenant: &'a str,
    tokens: Tokens<'a>,
}

#[derive(Serialize)]
struct CutoffView<'a> {
    cutoff: String,
    last_used_before_default_validity: String,
    last_used_older_than: &'a str,
    rule: &'a str,
}

#[derive(Serialize)]
struct ListingView<'a> {
    clock_skew_seconds: Option<i64>,
    duplicates: usize,
    filter_disagreements: usize,
    judged: usize,
    last_used_le: Option<String>,
    last_used_le_count: Option<usize>,
    listed: usize,
    never_used_count: Option<usize>,
    problem: Option<&'a str>,
}

#[derive(Serialize)]
struct RequestsView {
    rate_limit_wait_seconds: f64,
    rate_limited: u64,
    retries: u64,
}

#[derive(Serialize)]
struct Summary {
    by_outcome: BTreeMap<&'static str, usize>,
    by_verdict: BTreeMap<&'static str, usize>,
    listed: usize,
}

/// The token entries, serialized one at a time as the array is written.
struct Tokens<'a>(&'a Run);

impl Serialize for Tokens<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.0
                .tokens
                .iter()
                .map(|result| TokenView::new(self.0, result)),
        )
    }
}

#[derive(Serialize)]
struct TokenView<'a> {
    access_token_validity_seconds: u32,
    created: Instant,
    error: Option<&'a str>,
    exemption: Option<ExemptionView<'a>>,
    expiration_date: Option<Instant>,
    first_flagged: Option<Instant>,
    grace_until: Option<Instant>,
    id: &'a str,
    last_used: Option<Instant>,
    managed: bool,
    name: &'a str,
    outcome: Outcome,
    owner: OwnerView<'a>,
    protections: &'a [Protection],
    #[serde(serialize_with = "serialize_display")]
    reason: Reason<'a>,
    rules: &'a [String],
    scope: Option<&'a [String]>,
    verdict: Action,
}

#[derive(Serialize)]
struct ExemptionView<'a> {
    expired: bool,
    reason: &'a str,
    selector: &'a str,
    until: Option<Instant>,
}

#[derive(Serialize)]
struct OwnerView<'a> {
    id: Option<&'a str>,
    name: Option<&'a str>,
}

impl<'a> TokenView<'a> {
    fn new(run: &'a Run, result: &'a TokenResult) -> Self {
        let token: &Token = &result.token;
        TokenView {
            access_token_validity_seconds: token.access_token_validity_seconds(),
            created: Instant(token.created),
            error: result.error.as_deref(),
            exemption: result.exemption.as_ref().map(|exemption| ExemptionView {
                expired: exemption.expired,
                reason: &exemption.reason,
                selector: &exemption.selector,
                until: exemption.until.map(Instant),
            }),
            expiration_date: token.expiration_date.map(Instant),
            first_flagged: result.first_flagged.map(Instant),
            grace_until: result.grace_until.map(Instant),
            id: &token.id,
            last_used: token.last_used.map(Instant),
            managed: token.managed,
            name: &token.name,
            outcome: result.outcome,
            owner: OwnerView {
                id: token.owner.id.as_deref(),
                name: token.owner.name.as_deref(),
            },
            protections: &result.protections,
            reason: Reason { run, result },
            rules: &result.rules,
            scope: token.scope.as_deref(),
            verdict: result.verdict,
        }
    }
}

fn report(run: &Run) -> Report<'_> {
    let mut by_verdict = BTreeMap::new();
    let mut by_outcome = BTreeMap::new();
    for verdict in [Action::Keep, Action::Report, Action::Delete] {
        by_verdict.insert(verdict.as_str(), 0);
    }
    for outcome in Outcome::ALL {
        if outcome != Outcome::Due {
            by_outcome.insert(outcome.as_str(), 0);
        }
    }
    for result in &run.tokens {
        *by_verdict.entry(result.verdict.as_str()).or_default() += 1;
        *by_outcome.entry(result.outcome.as_str()).or_default() += 1;
    }

    Report {
        as_of: instant(run.as_of),
        breaker: run.breaker.as_ref().map(breaker_json),
        cutoffs: run
            .cutoffs
            .iter()
            .map(|cutoff| CutoffView {
                cutoff: instant(cutoff.cutoff),
                last_used_before_default_validity: instant(
                    cutoff.last_used_before_default_validity,
                ),
                last_used_older_than: &cutoff.last_used_older_than,
                rule: &cutoff.rule,
            })
            .collect(),
        dry_run: run.dry_run,
        duration_seconds: run.duration.as_secs_f64(),
        forecast: run.forecast,
        listing: ListingView {
            clock_skew_seconds: run.listing.clock_skew_seconds,
            duplicates: run.listing.duplicates,
            filter_disagreements: run.listing.filter_disagreements,
            judged: run.listing.judged,
            last_used_le: run.listing.last_used_le.map(instant),
            last_used_le_count: run.listing.last_used_le_count,
            listed: run.listing.listed,
            never_used_count: run.listing.never_used_count,
            problem: run.listing.problem.as_deref(),
        },
        max_deletions_per_run: run.max_deletions_per_run,
        recovered: run
            .recovered
            .iter()
            .map(|entry| {
                json!({
                    "id": entry.token.id,
                    "name": entry.token.name,
                    "owner": { "id": entry.token.owner.id, "name": entry.token.owner.name },
                    "scope": entry.token.scope,
                    "created": instant(entry.token.created),
                    "last_used": entry.token.last_used.map(instant),
                    "expiration_date": entry.token.expiration_date.map(instant),
                    "access_token_validity_seconds": entry.token.access_token_validity_seconds,
                    "managed": entry.token.managed,
                    "intent_run_id": entry.intent_run_id,
                    "intent_at": instant(entry.intent_at),
                    "rules": entry.rules,
                    "result": entry.status.as_str(),
                })
            })
            .collect(),
        requests: RequestsView {
            rate_limit_wait_seconds: run.requests.rate_limit_wait.as_secs_f64(),
            rate_limited: run.requests.rate_limited,
            retries: run.requests.retries,
        },
        run_id: &run.run_id,
        started_at: instant(run.started_at),
        summary: Summary {
            by_outcome,
            by_verdict,
            listed: run.listing.listed,
        },
        tenant: &run.tenant,
        tokens: Tokens(run),
    }
}

/// Describes a breaker by kind and message, plus the values it compared, so that a stored
/// report can be read back into the same breaker.
fn breaker_json(breaker: &Breaker) -> Value {
    let mut value = json!({
        "kind": breaker.kind(),
        "message": breaker.to_string(),
    });
    let details = match breaker {
        Breaker::DeletionPercent {
            due,
            listed,
            max_percent,
        } => json!({ "due": due, "listed": listed, "max_percent": max_percent }),
        Breaker::ClockSkew { skew, max } => json!({
            "skew_seconds": skew.num_seconds(),
            "max_skew_seconds": max.num_seconds(),
        }),
        Breaker::IncompleteListing { reason } | Breaker::StateReset { reason } => {
            json!({ "reason": reason })
        }
    };
    if let (Some(object), Value::Object(details)) = (value.as_object_mut(), details) {
        object.extend(details);
    }
    value
}

/// Builds the JSON report of a run as a value.
pub fn to_json(run: &Run) -> Value {
    serde_json::to_value(report(run)).expect("the report serializes to JSON")
}

/// Writes the JSON report of a run followed by a newline: the outer levels indented, each
/// token and each deeper value on one line (see [`LineFormatter`]). The report is streamed
/// through a buffer, one token at a time.
pub fn render_json(run: &Run, out: &mut dyn Write) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, LineFormatter::new());
    report(run).serialize(&mut serializer)?;
    writeln!(out)?;
    out.flush()
}
