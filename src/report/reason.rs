//! The one-sentence reason given for each token's outcome.

use crate::audit::{Run, TokenResult};
use crate::policy::Action;
use crate::safety::Outcome;

use super::{days_between, instant};

/// Explains a token's verdict and outcome in one line, for people.
pub fn reason(run: &Run, result: &TokenResult) -> String {
    if result.verdict == Action::Keep {
        return "no rule asks to report or delete this token".to_owned();
    }

    let token = &result.token;
    let usage = match token.last_used {
        Some(last_used) => format!(
            "last used {} ({} days before {})",
            instant(last_used),
            days_between(last_used, run.as_of),
            if run.forecast {
                "the as-of instant"
            } else {
                "this run"
            }
        ),
        None => format!(
            "never used, created {} ({} days ago)",
            instant(token.created),
            days_between(token.created, run.as_of)
        ),
    };
    let rules = format!("{} by {}", result.verdict, result.rules.join(", "));
    let protections: Vec<&str> = result.protections.iter().map(|p| p.as_str()).collect();

    let outcome = match result.outcome {
        Outcome::None => String::new(),
        Outcome::Reported => "reported for review".to_owned(),
        Outcome::Exempt => match &result.exemption {
            Some(exemption) => match exemption.until {
                Some(until) => format!("exempt until {}: {}", instant(until), exemption.reason),
                None => format!("exempt: {}", exemption.reason),
            },
            None => "exempt".to_owned(),
        },
        Outcome::Protected => format!("protected ({})", protections.join(", ")),
        Outcome::Grace => match result.grace_until {
            Some(until) => format!("in grace period, deletion due from {}", instant(until)),
            None => "in grace period".to_owned(),
        },
        Outcome::Deferred => format!(
            "deferred: over the budget of {} deletions per run, goes first next run",
            run.max_deletions_per_run
        ),
        Outcome::Held => match &run.breaker {
            Some(breaker) => format!("held by the {} breaker: {breaker}", breaker.kind()),
            None => "held by a breaker".to_owned(),
        },
        Outcome::DryRun => "would be deleted now (dry run)".to_owned(),
        Outcome::Due => "due for deletion".to_owned(),
        Outcome::Deleted => "deleted".to_owned(),
        Outcome::Gone => "already deleted (the API answered 404)".to_owned(),
        Outcome::Failed => format!(
            "delete failed: {}",
            result.error.as_deref().unwrap_or("unknown cause")
        ),
    };

    let mut text = format!("{rules}; {usage}; {outcome}");
    if let Some(exemption) = &result.exemption
        && exemption.expired
    {
        text.push_str(&format!(
            " (an exemption expired {}: {})",
            exemption.until.map(instant).unwrap_or_default(),
            exemption.reason
        ));
    }
    text
}
