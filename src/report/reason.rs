//! The one-sentence reason given for each token's outcome.

use std::fmt::{self, Display, Formatter};

use crate::audit::{Run, TokenResult};
use crate::policy::Action;
use crate::safety::Outcome;

use super::{Instant, days_between};

/// Explains a token's verdict and outcome in one line, for people.
pub fn reason(run: &Run, result: TokenResult<'_>) -> String {
    Reason { run, result }.to_string()
}

/// The reason of one token, written straight to a formatter, so that a report of many
/// tokens builds no string per token.
#[derive(Clone, Copy)]
pub struct Reason<'a> {
    pub run: &'a Run,
    pub result: TokenResult<'a>,
}

impl Display for Reason<'_> {
    fn fmt(&self, out: &mut Formatter<'_>) -> fmt::Result {
        let Reason { run, result } = *self;
        if result.verdict == Action::Keep {
            return out.write_str("no rule asks to report or delete this token");
        }

        write!(out, "{} by ", result.verdict)?;
        for (index, rule) in result.rules.iter().enumerate() {
            if index > 0 {
                out.write_str(", ")?;
            }
            out.write_str(rule)?;
        }
        let token = &result.token;
        match token.last_used {
            Some(last_used) => write!(
                out,
                "; last used {} ({} days before {}); ",
                Instant(last_used),
                days_between(last_used, run.as_of),
                if run.forecast {
                    "the as-of instant"
                } else {
                    "this run"
                }
            )?,
            None => write!(
                out,
                "; never used, created {} ({} days ago); ",
                Instant(token.created),
                days_between(token.created, run.as_of)
            )?,
        }

        match result.outcome {
            Outcome::None => {}
            Outcome::Reported => out.write_str("reported for review")?,
            Outcome::Exempt => match &result.exemption {
                Some(exemption) => match exemption.until {
                    Some(until) => {
                        write!(out, "exempt until {}: {}", Instant(until), exemption.reason)?
                    }
                    None => write!(out, "exempt: {}", exemption.reason)?,
                },
                None => out.write_str("exempt")?,
            },
            Outcome::Protected => {
                out.write_str("protected (")?;
                for (index, protection) in result.protections.iter().enumerate() {
                    if index > 0 {
                        out.write_str(", ")?;
                    }
                    out.write_str(protection.as_str())?;
                }
                out.write_str(")")?;
            }
            Outcome::Grace => match result.grace_until {
                Some(until) => {
                    write!(out, "in grace period, deletion due from {}", Instant(until))?
                }
                None => out.write_str("in grace period")?,
            },
            Outcome::Deferred => write!(
                out,
                "deferred: over the budget of {} deletions per run, goes first next run",
                run.max_deletions_per_run
            )?,
            Outcome::Held => match &run.breaker {
                Some(breaker) => write!(out, "held by the {} breaker: {breaker}", breaker.kind())?,
                None => out.write_str("held by a breaker")?,
            },
            Outcome::DryRun => out.write_str("would be deleted now (dry run)")?,
            Outcome::Due => out.write_str("due for deletion")?,
            Outcome::Deleted => out.write_str("deleted")?,
            Outcome::Gone => out.write_str("already deleted (the API answered 404)")?,
            Outcome::Failed => write!(
                out,
                "delete failed: {}",
                result.error.as_deref().unwrap_or("unknown cause")
            )?,
        }

        if let Some(exemption) = &result.exemption
            && exemption.expired
        {
            out.write_str(" (an exemption expired ")?;
            if let Some(until) = exemption.until {
                write!(out, "{}", Instant(until))?;
            }
            write!(out, ": {})", exemption.reason)?;
        }
        Ok(())
    }
}
