//! Breakers: conditions under which a run deletes nothing at all.

use std::fmt;

use chrono::TimeDelta;

use super::Settings;
use crate::config::duration::format_duration;

/// Cause of a run holding every deletion.
#[derive(Debug, Clone, PartialEq)]
pub enum Breaker {
    /// More tokens are due than `max_deletion_percent` of the tenant's listed tokens.
    DeletionPercent {
        due: usize,
        listed: usize,
        max_percent: f64,
    },
    /// The local clock and the API's `Date` header disagree by more than `max_clock_skew`.
    ClockSkew { skew: TimeDelta, max: TimeDelta },
    /// A listing failed or came back incomplete, so the run cannot see the whole tenant.
    IncompleteListing { reason: String },
    /// The state file was unreadable and was moved aside, so every grace period restarted.
    StateReset { reason: String },
}

impl Breaker {
    /// Short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Breaker::DeletionPercent { .. } => "deletion_percent",
            Breaker::ClockSkew { .. } => "clock_skew",
            Breaker::IncompleteListing { .. } => "incomplete_listing",
            Breaker::StateReset { .. } => "state_reset",
        }
    }
}

impl fmt::Display for Breaker {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Breaker::DeletionPercent {
                due,
                listed,
                max_percent,
            } => write!(
                formatter,
                "{due} of {listed} listed tokens are due for deletion, more than \
                 max_deletion_percent = {max_percent}%"
            ),
            Breaker::ClockSkew { skew, max } => write!(
                formatter,
                "the local clock and the API's Date header differ by {}, more than \
                 max_clock_skew = {}",
                format_duration(*skew),
                format_duration(*max)
            ),
            Breaker::IncompleteListing { reason } => {
                write!(formatter, "the tenant's listing is incomplete: {reason}")
            }
            Breaker::StateReset { reason } => write!(
                formatter,
                "the state was unreadable and every grace period restarts: {reason}"
            ),
        }
    }
}

/// Inputs the breakers check in one run.
#[derive(Debug, Clone, Default)]
pub struct BreakerInputs {
    pub due: usize,
    pub listed: usize,
    /// Local clock minus the API's `Date` header, when the header was present.
    pub clock_skew: Option<TimeDelta>,
    pub listing_problem: Option<String>,
    pub state_problem: Option<String>,
}

/// Returns the first breaker that trips, checked in a fixed order.
pub fn check_breakers(inputs: &BreakerInputs, settings: &Settings) -> Option<Breaker> {
    if let Some(reason) = &inputs.state_problem {
        return Some(Breaker::StateReset {
            reason: reason.clone(),
        });
    }
    if let Some(reason) = &inputs.listing_problem {
        return Some(Breaker::IncompleteListing {
            reason: reason.clone(),
        });
    }
    if let Some(skew) = inputs.clock_skew
        && skew.abs() > settings.max_clock_skew
    {
        return Some(Breaker::ClockSkew {
            skew: skew.abs(),
            max: settings.max_clock_skew,
        });
    }
    let allowed = inputs.listed as f64 * settings.max_deletion_percent / 100.0;
    if inputs.due as f64 > allowed {
        return Some(Breaker::DeletionPercent {
            due: inputs.due,
            listed: inputs.listed,
            max_percent: settings.max_deletion_percent,
        });
    }
    None
}
