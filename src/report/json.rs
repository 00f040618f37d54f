//! The JSON report of `patrol audit --format json`.
//!
//! One object per tenant run: tenant, as-of instant, dry-run flag, the effective cutoffs,
//! a summary of counts, and `tokens` with one entry per listed token. Field names are a
//! contract that other tools rely on; add fields, never rename them.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde_json::{Value, json};

use crate::audit::Run;
use crate::policy::Action;
use crate::safety::{Breaker, Outcome};

use super::{instant, reason};

/// Builds the JSON report of a run.
pub fn to_json(run: &Run) -> Value {
    let mut by_verdict = BTreeMap::new();
    for verdict in [Action::Keep, Action::Report, Action::Delete] {
        by_verdict.insert(verdict.as_str(), run.count_verdict(verdict));
    }
    let mut by_outcome = BTreeMap::new();
    for outcome in Outcome::ALL {
        let count = run.count(outcome);
        if count > 0 || outcome != Outcome::Due {
            by_outcome.insert(outcome.as_str(), count);
        }
    }

    let tokens: Vec<Value> = run
        .tokens
        .iter()
        .map(|result| {
            let token = &result.token;
            json!({
                "id": token.id,
                "name": token.name,
                "owner": { "id": token.owner.id, "name": token.owner.name },
                "scope": token.scope,
                "created": instant(token.created),
                "last_used": token.last_used.map(instant),
                "expiration_date": token.expiration_date.map(instant),
                "access_token_validity_seconds": token.access_token_validity_seconds(),
                "managed": token.managed,
                "verdict": result.verdict,
                "outcome": result.outcome,
                "rules": result.rules,
                "protections": result.protections,
                "exemption": result.exemption.as_ref().map(|exemption| json!({
                    "selector": exemption.selector,
                    "reason": exemption.reason,
                    "until": exemption.until.map(instant),
                    "expired": exemption.expired,
                })),
                "first_flagged": result.first_flagged.map(instant),
                "grace_until": result.grace_until.map(instant),
                "error": result.error,
                "reason": reason(run, result),
            })
        })
        .collect();

    json!({
        "tenant": run.tenant,
        "run_id": run.run_id,
        "as_of": instant(run.as_of),
        "dry_run": run.dry_run,
        "forecast": run.forecast,
        "started_at": instant(run.started_at),
        "duration_seconds": run.duration.as_secs_f64(),
        "cutoffs": run.cutoffs.iter().map(|cutoff| json!({
            "rule": cutoff.rule,
            "last_used_older_than": cutoff.last_used_older_than,
            "cutoff": instant(cutoff.cutoff),
            "last_used_before_default_validity": instant(cutoff.last_used_before_default_validity),
        })).collect::<Vec<_>>(),
        "listing": {
            "listed": run.listing.listed,
            "judged": run.listing.judged,
            "last_used_le": run.listing.last_used_le.map(instant),
            "last_used_le_count": run.listing.last_used_le_count,
            "never_used_count": run.listing.never_used_count,
            "duplicates": run.listing.duplicates,
            "filter_disagreements": run.listing.filter_disagreements,
            "clock_skew_seconds": run.listing.clock_skew_seconds,
            "problem": run.listing.problem,
        },
        "breaker": run.breaker.as_ref().map(breaker_json),
        "max_deletions_per_run": run.max_deletions_per_run,
        "recovered": run.recovered.iter().map(|entry| json!({
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
        })).collect::<Vec<_>>(),
        "summary": {
            "listed": run.listing.listed,
            "by_verdict": by_verdict,
            "by_outcome": by_outcome,
        },
        "requests": {
            "retries": run.requests.retries,
            "rate_limited": run.requests.rate_limited,
            "rate_limit_wait_seconds": run.requests.rate_limit_wait.as_secs_f64(),
        },
        "tokens": tokens,
    })
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

/// Writes the JSON report of a run, pretty-printed, followed by a newline.
pub fn render_json(run: &Run, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &to_json(run))?;
    writeln!(out)
}
