//! Rules and matchers: the verdict the policy gives one token at one instant.
//!
//! Evaluation is pure. The instant is a parameter, so the same token and policy always give
//! the same verdict at the same instant, and `--as-of` needs nothing special. A token's
//! verdict is the strongest action among all rules that match it (`delete` over `report`
//! over `keep`), and every matching rule is recorded in file order. A rule matches when all
//! of its conditions hold.
//!
//! `lastUsed` records when the token last minted an access token, moves at most once a day,
//! and the minted access token then lives up to `accessTokenValiditySeconds`. A token
//! therefore counts as unused for D only when `lastUsed + 1 day + accessTokenValiditySeconds`
//! is older than D. Protections, exemptions and grace periods are left to `safety`.

mod explain;

pub use explain::{Condition, explain_rule};

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use regex::Regex;
use serde::Serialize;

use crate::isc::Token;

/// How far `lastUsed` may lag behind the real last use, because the service updates it at
/// most once a day.
pub const LAST_USED_GRANULARITY: TimeDelta = TimeDelta::days(1);

/// The action a rule requests for the tokens it matches, ordered from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Keep,
    Report,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Keep => "keep",
            Action::Report => "report",
            Action::Delete => "delete",
        }
    }

    pub fn parse(text: &str) -> Option<Action> {
        match text {
            "keep" => Some(Action::Keep),
            "report" => Some(Action::Report),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The conditions of one rule; `None` means the condition is not used.
#[derive(Debug, Clone, Default)]
pub struct Matchers {
    pub last_used_older_than: Option<TimeDelta>,
    pub never_used: Option<bool>,
    pub created_older_than: Option<TimeDelta>,
    pub expires_within: Option<TimeDelta>,
    pub expired: Option<bool>,
    pub never_expires: Option<bool>,
    /// Matches when the token has any of these scopes.
    pub scope_includes: Option<Vec<String>>,
    pub name_matches: Option<Regex>,
    pub owner_name_matches: Option<Regex>,
    pub owner_ids: Option<Vec<String>>,
    pub managed: Option<bool>,
}

impl Matchers {
    /// Number of conditions in use; a rule needs at least one.
    pub fn count(&self) -> usize {
        [
            self.last_used_older_than.is_some(),
            self.never_used.is_some(),
            self.created_older_than.is_some(),
            self.expires_within.is_some(),
            self.expired.is_some(),
            self.never_expires.is_some(),
            self.scope_includes.is_some(),
            self.name_matches.is_some(),
            self.owner_name_matches.is_some(),
            self.owner_ids.is_some(),
            self.managed.is_some(),
        ]
        .into_iter()
        .filter(|used| *used)
        .count()
    }
}

/// One `[[rule]]` of the policy.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub action: Action,
    /// Free text from the policy file, shown by `check-config`.
    pub description: Option<String>,
    pub matchers: Matchers,
}

/// The instants that the time conditions of one rule compare a token's dates with at one
/// instant. They are computed once per run instead of once per token and condition.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    now: DateTime<Utc>,
    /// `now - last_used_older_than`: the last possible use must be before it.
    unused_since: Option<DateTime<Utc>>,
    /// `now - created_older_than`: the token must be created before it.
    created_before: Option<DateTime<Utc>>,
    /// `now + expires_within`: the token must expire by then.
    expires_by: Option<DateTime<Utc>>,
}

impl Bounds {
    fn of(matchers: &Matchers, now: DateTime<Utc>) -> Bounds {
        Bounds {
            now,
            unused_since: matchers.last_used_older_than.map(|age| now - age),
            created_before: matchers.created_older_than.map(|age| now - age),
            expires_by: matchers.expires_within.map(|window| now + window),
        }
    }
}

impl Rule {
    /// Returns whether every condition of the rule holds for `token` at `now`.
    pub fn matches(&self, token: &Token, now: DateTime<Utc>) -> bool {
        self.matches_within(
            token,
            last_possible_use(token),
            &Bounds::of(&self.matchers, now),
        )
    }

    /// Returns whether every condition of the rule holds for `token`, as [`Rule::matches`]
    /// does, given the rule's bounds at one instant and the token's [`last_possible_use`].
    fn matches_within(
        &self,
        token: &Token,
        last_possible_use: Option<DateTime<Utc>>,
        bounds: &Bounds,
    ) -> bool {
        let m = &self.matchers;
        if let Some(since) = bounds.unused_since
            && last_possible_use.is_none_or(|last| last >= since)
        {
            return false;
        }
        if let Some(expected) = m.never_used
            && token.last_used.is_none() != expected
        {
            return false;
        }
        if let Some(before) = bounds.created_before
            && token.created >= before
        {
            return false;
        }
        if let Some(by) = bounds.expires_by
            && !token
                .expiration_date
                .is_some_and(|expiry| expiry > bounds.now && expiry <= by)
        {
            return false;
        }
        if let Some(expected) = m.expired
            && is_expired(token, bounds.now) != expected
        {
            return false;
        }
        if let Some(expected) = m.never_expires
            && token.never_expires() != expected
        {
            return false;
        }
        if let Some(scopes) = &m.scope_includes
            && !has_any_scope(token, scopes)
        {
            return false;
        }
        if let Some(pattern) = &m.name_matches
            && !pattern.is_match(&token.name)
        {
            return false;
        }
        if let Some(pattern) = &m.owner_name_matches
            && !token
                .owner
                .name
                .as_deref()
                .is_some_and(|name| pattern.is_match(name))
        {
            return false;
        }
        if let Some(ids) = &m.owner_ids
            && !token
                .owner
                .id
                .as_deref()
                .is_some_and(|id| ids.iter().any(|candidate| candidate == id))
        {
            return false;
        }
        if let Some(expected) = m.managed
            && token.managed != expected
        {
            return false;
        }
        true
    }
}

impl Rule {
    /// The instant from which every time-dependent condition of this rule holds for
    /// `token`, given that the rule matches now. Conditions that do not depend on time
    /// (scopes, names, owners, `managed`, `never_used`, `never_expires`) set no bound.
    pub fn matching_since(&self, token: &Token) -> DateTime<Utc> {
        let m = &self.matchers;
        let mut since = DateTime::<Utc>::MIN_UTC;
        if let (Some(age), Some(last)) = (m.last_used_older_than, last_possible_use(token)) {
            since = since.max(last + age);
        }
        if let Some(age) = m.created_older_than {
            since = since.max(token.created + age);
        }
        if let (Some(window), Some(expiry)) = (m.expires_within, token.expiration_date) {
            since = since.max(expiry - window);
        }
        if let (Some(true), Some(expiry)) = (m.expired, token.expiration_date) {
            since = since.max(expiry);
        }
        since
    }
}

/// The ordered rules of a policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

/// The policy's judgment of one token: the strongest action among the matching rules,
/// and the indexes of those rules in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgment {
    pub verdict: Action,
    pub rules: Vec<usize>,
}

/// A policy ready to judge tokens at one instant, for runs that judge many.
#[derive(Debug)]
pub struct Judge<'a> {
    policy: &'a Policy,
    /// The bounds of each rule, in file order.
    bounds: Vec<Bounds>,
}

impl Judge<'_> {
    /// Judges `token`. A token that no rule matches is kept.
    pub fn judge(&self, token: &Token) -> Judgment {
        let mut judgment = Judgment {
            verdict: Action::Keep,
            rules: Vec::new(),
        };
        self.judge_into(token, &mut judgment);
        judgment
    }

    /// Judges `token` into `judgment`, replacing what it held. A run that judges many
    /// tokens reuses one judgment, so its list of rules is allocated once.
    pub fn judge_into(&self, token: &Token, judgment: &mut Judgment) {
        let last_possible_use = last_possible_use(token);
        judgment.verdict = Action::Keep;
        judgment.rules.clear();
        for (index, (rule, bounds)) in self.policy.rules.iter().zip(&self.bounds).enumerate() {
            if rule.matches_within(token, last_possible_use, bounds) {
                judgment.verdict = judgment.verdict.max(rule.action);
                judgment.rules.push(index);
            }
        }
    }
}

impl Policy {
    /// Returns a judge of tokens at `now`.
    pub fn at(&self, now: DateTime<Utc>) -> Judge<'_> {
        Judge {
            policy: self,
            bounds: self
                .rules
                .iter()
                .map(|rule| Bounds::of(&rule.matchers, now))
                .collect(),
        }
    }

    /// Judges `token` at `now`. A token that no rule matches is kept.
    pub fn judge(&self, token: &Token, now: DateTime<Utc>) -> Judgment {
        self.at(now).judge(token)
    }

    /// The earliest instant from which some `delete` rule matched `token` without a break
    /// up to `now`, assuming the token is not used in between. Used by forecasts to tell
    /// when a token would have been flagged by a run between today and the forecast.
    pub fn deleting_since(&self, token: &Token, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.rules
            .iter()
            .filter(|rule| rule.action == Action::Delete && rule.matches(token, now))
            .map(|rule| rule.matching_since(token))
            .min()
    }

    /// The smallest `last_used_older_than` among rules that report or delete, which sets
    /// how far back the server-side `lastUsed le` listing must reach.
    pub fn shortest_unused_age(&self) -> Option<TimeDelta> {
        self.rules
            .iter()
            .filter(|rule| rule.action > Action::Keep)
            .filter_map(|rule| rule.matchers.last_used_older_than)
            .min()
    }
}

/// The instant after which the token may still have been in use: `lastUsed` plus the
/// one-day granularity plus the lifetime of the access token it last minted.
pub fn last_possible_use(token: &Token) -> Option<DateTime<Utc>> {
    let validity = TimeDelta::seconds(i64::from(token.access_token_validity_seconds()));
    token
        .last_used
        .map(|last_used| last_used + LAST_USED_GRANULARITY + validity)
}

/// Whether the token has certainly not been used for `age` at `now`. A token that was never
/// used has no `lastUsed` and does not match: `never_used` covers it.
pub fn unused_for(token: &Token, age: TimeDelta, now: DateTime<Utc>) -> bool {
    last_possible_use(token).is_some_and(|last| last < now - age)
}

pub fn is_expired(token: &Token, now: DateTime<Utc>) -> bool {
    token.expiration_date.is_some_and(|expiry| expiry <= now)
}

/// Whether the token expires after `now` but within `window`. Tokens already expired do not
/// match: `expired` covers them.
pub fn expires_within(token: &Token, window: TimeDelta, now: DateTime<Utc>) -> bool {
    token
        .expiration_date
        .is_some_and(|expiry| expiry > now && expiry <= now + window)
}

fn has_any_scope(token: &Token, scopes: &[String]) -> bool {
    token
        .scope
        .as_deref()
        .is_some_and(|held| held.iter().any(|scope| scopes.contains(scope)))
}

#[cfg(test)]
mod tests;
