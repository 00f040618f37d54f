//! Condition-by-condition explanation of a rule for one token, for `patrol audit --explain`.
//!
//! This repeats the tests of `Rule::matches` with words attached. It is kept apart from the
//! fast path because formatting text for every token of a large tenant costs more than the
//! evaluation itself; a unit test checks that both agree.

use chrono::{DateTime, TimeDelta, Utc};

use super::{Rule, expires_within, is_expired, last_possible_use, unused_for};
use crate::config::duration::format_duration;
use crate::isc::Token;

/// One condition of a rule, whether it held, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Condition {
    pub matcher: &'static str,
    pub matched: bool,
    pub detail: String,
}

/// Explains each condition of `rule` for `token` at `now`, in a fixed order.
pub fn explain_rule(rule: &Rule, token: &Token, now: DateTime<Utc>) -> Vec<Condition> {
    let m = &rule.matchers;
    let mut conditions = Vec::new();
    let mut push = |matcher, matched, detail: String| {
        conditions.push(Condition {
            matcher,
            matched,
            detail,
        })
    };

    if let Some(age) = m.last_used_older_than {
        let cutoff = now - age;
        let detail = match (token.last_used, last_possible_use(token)) {
            (Some(last_used), Some(last)) => format!(
                "lastUsed {} plus 1d granularity plus {}s access token validity is {}, \
                 cutoff {} ({} before now)",
                instant(last_used),
                token.access_token_validity_seconds(),
                instant(last),
                instant(cutoff),
                format_duration(age)
            ),
            _ => "never used (lastUsed is null), so this condition does not apply".to_owned(),
        };
        push("last_used_older_than", unused_for(token, age, now), detail);
    }
    if let Some(expected) = m.never_used {
        let detail = match token.last_used {
            Some(last_used) => format!("lastUsed is {}", instant(last_used)),
            None => "lastUsed is null".to_owned(),
        };
        push("never_used", token.last_used.is_none() == expected, detail);
    }
    if let Some(age) = m.created_older_than {
        push(
            "created_older_than",
            token.created < now - age,
            format!(
                "created {} ({} ago), threshold {}",
                instant(token.created),
                days(now - token.created),
                format_duration(age)
            ),
        );
    }
    if let Some(window) = m.expires_within {
        push(
            "expires_within",
            expires_within(token, window, now),
            expiry_detail(token, now),
        );
    }
    if let Some(expected) = m.expired {
        push(
            "expired",
            is_expired(token, now) == expected,
            expiry_detail(token, now),
        );
    }
    if let Some(expected) = m.never_expires {
        push(
            "never_expires",
            token.never_expires() == expected,
            expiry_detail(token, now),
        );
    }
    if let Some(scopes) = &m.scope_includes {
        let held = token.scope.as_deref().unwrap_or_default();
        let matched = held.iter().any(|scope| scopes.contains(scope));
        let detail = match &token.scope {
            Some(held) => format!(
                "token scopes [{}], rule wants any of [{}]",
                held.join(", "),
                scopes.join(", ")
            ),
            None => format!(
                "token scope is null, rule wants any of [{}]",
                scopes.join(", ")
            ),
        };
        push("scope_includes", matched, detail);
    }
    if let Some(pattern) = &m.name_matches {
        push(
            "name_matches",
            pattern.is_match(&token.name),
            format!("name \"{}\" against /{}/", token.name, pattern.as_str()),
        );
    }
    if let Some(pattern) = &m.owner_name_matches {
        let name = token.owner.name.as_deref();
        push(
            "owner_name_matches",
            name.is_some_and(|name| pattern.is_match(name)),
            format!(
                "owner name {} against /{}/",
                name.map_or("(absent)".to_owned(), |name| format!("\"{name}\"")),
                pattern.as_str()
            ),
        );
    }
    if let Some(ids) = &m.owner_ids {
        let id = token.owner.id.as_deref();
        push(
            "owner_ids",
            id.is_some_and(|id| ids.iter().any(|candidate| candidate == id)),
            format!(
                "owner id {} against [{}]",
                id.unwrap_or("(absent)"),
                ids.join(", ")
            ),
        );
    }
    if let Some(expected) = m.managed {
        push(
            "managed",
            token.managed == expected,
            format!("managed is {}", token.managed),
        );
    }
    conditions
}

fn expiry_detail(token: &Token, now: DateTime<Utc>) -> String {
    match token.expiration_date {
        None => "expirationDate is null: the token never expires".to_owned(),
        Some(expiry) if expiry <= now => {
            format!("expired {} ({} ago)", instant(expiry), days(now - expiry))
        }
        Some(expiry) => format!("expires {} (in {})", instant(expiry), days(expiry - now)),
    }
}

fn instant(value: DateTime<Utc>) -> String {
    value.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn days(delta: TimeDelta) -> String {
    let days = delta.num_seconds() as f64 / 86_400.0;
    format!("{days:.1} days")
}
