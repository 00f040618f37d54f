//! The records a run writes besides its deletes: audit records for changes in a token's
//! flag and exemption, the run's counts, and the per-run report file.
//!
//! A token is logged when something about it changes (first flagged, flag cleared,
//! exemption applied, changed or expired), not on every run, so the log of a quiet tenant
//! stays small. The state file remembers what was last logged. Appending is best effort
//! for these records: a failure is logged and the run goes on. Delete intents are the
//! exception; their failure stops deletion (see `delete.rs`). A forecast opens no log and
//! writes no file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::listing::Listed;
use super::{Run, Tally};
use crate::config::Config;
use crate::isc::Token;
use crate::policy::Action;
use crate::safety::{Assessment, Exemption, Outcome};
use crate::state::reports::save_run_report;
use crate::state::{
    AuditLog, EventKind, ExemptionRecord, Record, RunCounts, SeenExemption, TenantState, TokenEvent,
};

/// The audit log of one run, or none in a forecast.
#[derive(Debug)]
pub(super) struct Trail {
    log: Option<AuditLog>,
    run_id: String,
    tenant: String,
}

impl Trail {
    pub(super) fn new(log: Option<AuditLog>, run_id: &str, tenant: &str) -> Self {
        Self {
            log,
            run_id: run_id.to_owned(),
            tenant: tenant.to_owned(),
        }
    }

    pub(super) fn log_mut(&mut self) -> Option<&mut AuditLog> {
        self.log.as_mut()
    }

    /// Creates a record of `event` in this run.
    pub(super) fn event(&self, event: EventKind) -> Record {
        Record::new(event, &self.run_id, &self.tenant)
    }

    /// Writes the records appended so far to the file, so that the state file, saved next,
    /// never marks a change as logged while its record is still in memory. A failure is
    /// logged, not returned.
    pub(super) fn flush(&mut self) {
        if let Some(log) = &mut self.log
            && let Err(error) = log.flush()
        {
            tracing::error!(%error, tenant = %self.tenant, "cannot write to the audit log");
        }
    }

    /// Appends `record` without syncing; a failure is logged, not returned.
    pub(super) fn record(&mut self, record: Record) {
        let event = record.event;
        if let Some(log) = &mut self.log
            && let Err(error) = log.append(record, false)
        {
            tracing::error!(%error, tenant = %self.tenant, event = event.as_str(), "cannot append to the audit log");
        }
    }

    /// Appends a record of `event` about `token`, which `rules` match, without syncing.
    /// `details` sets the members that depend on the event. A failure is logged, not
    /// returned.
    pub(super) fn record_token_event(
        &mut self,
        event: EventKind,
        token: &Token,
        rules: &[String],
        details: impl FnOnce(&mut TokenEvent<'_>),
    ) {
        let Some(log) = &mut self.log else {
            return;
        };
        let mut record = TokenEvent::new(event, &self.run_id, &self.tenant, token, rules);
        details(&mut record);
        if let Err(error) = log.append_token_event(record) {
            tracing::error!(%error, tenant = %self.tenant, token_id = %token.id, event = event.as_str(), "failed to append a token event to the audit log");
        }
    }
}

/// Tokens whose flag for deletion changed in this run, by index into the listing.
#[derive(Debug, Default)]
pub(super) struct FlagChanges {
    /// Flagged for deletion for the first time.
    pub flagged: Vec<usize>,
    /// Flagged before, listed now, and no longer flagged.
    pub cleared: Vec<usize>,
}

/// Keeps, for every flagged token, the exemption that decides its outcome, and returns the
/// tokens whose exemption started to apply, changed or expired since it was last logged.
pub(super) fn update_exemptions(
    state: &mut TenantState,
    listed: &Listed,
    assessments: &[Assessment],
    exemptions: &[Exemption],
) -> Vec<(usize, EventKind)> {
    let mut changes = Vec::new();
    let mut kept = BTreeMap::new();
    for (index, (token, assessment)) in listed.tokens.iter().zip(assessments).enumerate() {
        let Some((exemption, expired)) = deciding_exemption(assessment, exemptions) else {
            continue;
        };
        let seen = SeenExemption {
            selector: exemption.selector(),
            until: exemption.until,
            expired,
        };
        if state.exemptions.get(&token.id) != Some(&seen) {
            let event = if expired {
                EventKind::ExemptionExpired
            } else {
                EventKind::ExemptionApplied
            };
            changes.push((index, event));
        }
        kept.insert(token.id.clone(), seen);
    }
    // Tokens the listing did not show are kept only when it may have missed them.
    if !listed.complete || listed.problem.is_some() {
        let seen: std::collections::HashSet<&str> = listed
            .tokens
            .iter()
            .map(|token| token.id.as_str())
            .collect();
        for (id, exemption) in &state.exemptions {
            if !seen.contains(id.as_str()) {
                kept.insert(id.clone(), exemption.clone());
            }
        }
    }
    state.exemptions = kept;
    changes
}

/// Returns the active exemption of a flagged token, or else its expired one, and whether it
/// expired. Tokens kept by the rules get none, because no exemption decides their outcome.
fn deciding_exemption<'a>(
    assessment: &Assessment,
    exemptions: &'a [Exemption],
) -> Option<(&'a Exemption, bool)> {
    if assessment.verdict == Action::Keep {
        return None;
    }
    assessment
        .exemption
        .map(|index| (&exemptions[index], false))
        .or(assessment
            .expired_exemption
            .map(|index| (&exemptions[index], true)))
}

/// Appends a record for each change in a token's flag or exemption.
pub(super) fn record_token_changes(
    trail: &mut Trail,
    config: &Config,
    tokens: &[Token],
    rules: &[Arc<[String]>],
    assessments: &[Assessment],
    flags: &FlagChanges,
    exemption_changes: &[(usize, EventKind)],
) {
    for &index in &flags.flagged {
        let assessment = &assessments[index];
        let (token, rules) = (&tokens[index], &rules[index]);
        trail.record_token_event(EventKind::TokenFlagged, token, rules, |record| {
            record.first_flagged = assessment.first_flagged;
            record.grace_until = assessment
                .first_flagged
                .map(|first| first + config.safety.grace_period);
        });
    }
    for &index in &flags.cleared {
        let outcome = assessments[index].outcome.as_str();
        trail.record_token_event(
            EventKind::FlagCleared,
            &tokens[index],
            &rules[index],
            |record| {
                record.outcome = Some(outcome);
            },
        );
    }
    for &(index, event) in exemption_changes {
        let Some((exemption, _)) = deciding_exemption(&assessments[index], &config.exemptions)
        else {
            continue;
        };
        let exemption = ExemptionRecord {
            selector: exemption.selector(),
            reason: exemption.reason.clone(),
            until: exemption.until,
        };
        trail.record_token_event(event, &tokens[index], &rules[index], |record| {
            record.exemption = Some(exemption);
        });
    }
}

/// Counts the tokens of a run for its `run_finished` record.
pub(super) fn run_counts(run: &Run, tally: &Tally) -> RunCounts {
    let mut counts = RunCounts {
        listed: run.listing.listed,
        recovered: run.recovered.len(),
        ..RunCounts::default()
    };
    for verdict in [Action::Keep, Action::Report, Action::Delete] {
        counts
            .by_verdict
            .insert(verdict.as_str().to_owned(), tally.verdict(verdict));
    }
    for outcome in Outcome::ALL {
        let count = tally.outcome(outcome);
        if count > 0 {
            counts.by_outcome.insert(outcome.as_str().to_owned(), count);
        }
    }
    counts
}

/// Writes the JSON report of a run to the tenant's state directory and returns its path. A
/// failure is logged: the run itself is done and recorded in the audit log.
pub(super) fn write_report(state: &TenantState, run: &Run) -> Option<PathBuf> {
    let saved = save_run_report(state.dir(), &run.run_id, |out| {
        crate::report::render_json(run, out)
    });
    match saved {
        Ok(path) => {
            tracing::debug!(tenant = %run.tenant, path = %path.display(), "wrote the run's report");
            Some(path)
        }
        Err(error) => {
            tracing::error!(tenant = %run.tenant, %error, "failed to write the run's report, so `patrol report` shows an older run");
            None
        }
    }
}
