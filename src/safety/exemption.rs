//! Exemptions: time-boxed decisions by a person to keep a token whatever the rules say.

use chrono::{DateTime, Utc};
use regex::Regex;

use crate::isc::Token;

/// The start of the placeholder reason in the review pack's suggested exemptions. A reviewer
/// replaces that reason with why the token is still needed, so a reason with this start
/// was pasted unchanged.
pub const PLACEHOLDER_PREFIX: &str = "REPLACE:";

/// One `[[exemption]]` of the policy. Every selector that is set must match the token, and
/// at least one is set. The exemption applies until `until`, exclusive, or forever.
#[derive(Debug, Clone)]
pub struct Exemption {
    pub token_id: Option<String>,
    pub owner_id: Option<String>,
    pub name_matches: Option<Regex>,
    pub reason: String,
    pub until: Option<DateTime<Utc>>,
}

impl Exemption {
    pub fn selects(&self, token: &Token) -> bool {
        if let Some(id) = &self.token_id
            && *id != token.id
        {
            return false;
        }
        if let Some(owner) = &self.owner_id
            && token.owner.id.as_deref() != Some(owner.as_str())
        {
            return false;
        }
        if let Some(pattern) = &self.name_matches
            && !pattern.is_match(&token.name)
        {
            return false;
        }
        true
    }

    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|until| now < until)
    }

    /// A short description of what the exemption selects, for reports.
    /// Returns whether the reason is still the review pack's placeholder.
    pub fn has_placeholder_reason(&self) -> bool {
        self.reason.trim_start().starts_with(PLACEHOLDER_PREFIX)
    }

    pub fn selector(&self) -> String {
        let mut parts = Vec::new();
        if let Some(id) = &self.token_id {
            parts.push(format!("token_id = {id}"));
        }
        if let Some(owner) = &self.owner_id {
            parts.push(format!("owner_id = {owner}"));
        }
        if let Some(pattern) = &self.name_matches {
            parts.push(format!("name_matches = /{}/", pattern.as_str()));
        }
        parts.join(", ")
    }
}

/// Returns the first active exemption that selects `token`, and the first expired one.
pub(super) fn find(
    exemptions: &[Exemption],
    token: &Token,
    now: DateTime<Utc>,
) -> (Option<usize>, Option<usize>) {
    let mut active = None;
    let mut expired = None;
    for (index, exemption) in exemptions.iter().enumerate() {
        if !exemption.selects(token) {
            continue;
        }
        if exemption.is_active(now) {
            active.get_or_insert(index);
        } else {
            expired.get_or_insert(index);
        }
    }
    (active, expired)
}
