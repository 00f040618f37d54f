use chrono::{DateTime, TimeDelta, Utc};
use regex::Regex;

use super::*;
use crate::isc::{Owner, Token};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn token(last_used: Option<&str>) -> Token {
    Token {
        id: "t1".into(),
        name: "nightly-export".into(),
        scope: Some(vec!["sp:scopes:all".into()]),
        owner: Owner {
            id: Some("owner-1".into()),
            name: Some("Jordan Example".into()),
        },
        created: at("2025-01-01T00:00:00Z"),
        last_used: last_used.map(at),
        managed: false,
        access_token_validity_seconds: Some(43_200),
        expiration_date: Some(at("2027-01-01T00:00:00Z")),
        user_aware_token_never_expires: None,
    }
}

fn rule(name: &str, action: Action, matchers: Matchers) -> Rule {
    Rule {
        name: name.into(),
        action,
        description: None,
        matchers,
    }
}

fn unused(days: i64) -> Matchers {
    Matchers {
        last_used_older_than: Some(TimeDelta::days(days)),
        ..Matchers::default()
    }
}

#[test]
fn unused_for_adds_granularity_and_validity() {
    let now = at("2026-12-01T00:00:00Z");
    // Cutoff for 90 days is 2026-09-02T00:00Z. lastUsed + 1d + 12h must be before it.
    assert!(!unused_for(
        &token(Some("2026-09-01T00:00:00Z")),
        TimeDelta::days(90),
        now
    ));
    assert!(unused_for(
        &token(Some("2026-08-31T00:00:00Z")),
        TimeDelta::days(90),
        now
    ));
    assert!(unused_for(
        &token(Some("2026-08-31T11:59:59Z")),
        TimeDelta::days(90),
        now
    ));
    assert!(!unused_for(
        &token(Some("2026-08-31T12:00:00Z")),
        TimeDelta::days(90),
        now
    ));
}

#[test]
fn unused_for_never_matches_never_used_token() {
    let now = at("2026-12-01T00:00:00Z");
    assert!(!unused_for(&token(None), TimeDelta::days(1), now));
}

#[test]
fn strongest_action_wins_and_all_rules_recorded() {
    let policy = Policy {
        rules: vec![
            rule("report-30", Action::Report, unused(30)),
            rule("delete-90", Action::Delete, unused(90)),
            rule(
                "keep-all",
                Action::Keep,
                Matchers {
                    managed: Some(false),
                    ..Matchers::default()
                },
            ),
        ],
    };
    let judgment = policy.judge(
        &token(Some("2026-01-01T00:00:00Z")),
        at("2026-12-01T00:00:00Z"),
    );
    assert_eq!(judgment.verdict, Action::Delete);
    assert_eq!(judgment.rules, vec![0, 1, 2]);
}

#[test]
fn unmatched_token_is_kept() {
    let policy = Policy {
        rules: vec![rule("delete-90", Action::Delete, unused(90))],
    };
    let judgment = policy.judge(
        &token(Some("2026-11-30T00:00:00Z")),
        at("2026-12-01T00:00:00Z"),
    );
    assert_eq!(judgment.verdict, Action::Keep);
    assert!(judgment.rules.is_empty());
}

#[test]
fn judge_into_replaces_earlier_judgment() {
    let policy = Policy {
        rules: vec![rule("delete-90", Action::Delete, unused(90))],
    };
    let judge = policy.at(at("2026-12-01T00:00:00Z"));
    let mut judgment = judge.judge(&token(Some("2026-01-01T00:00:00Z")));
    assert_eq!(judgment.verdict, Action::Delete);
    assert_eq!(judgment.rules, vec![0]);

    judge.judge_into(&token(Some("2026-11-30T00:00:00Z")), &mut judgment);
    assert_eq!(judgment, judge.judge(&token(Some("2026-11-30T00:00:00Z"))));
    assert_eq!(judgment.verdict, Action::Keep);
    assert!(judgment.rules.is_empty());
}

#[test]
fn all_conditions_of_a_rule_must_hold() {
    let now = at("2026-12-01T00:00:00Z");
    let matchers = Matchers {
        never_used: Some(true),
        created_older_than: Some(TimeDelta::days(30)),
        ..Matchers::default()
    };
    let never_used_rule = rule("never-used-30d", Action::Delete, matchers);
    assert!(never_used_rule.matches(&token(None), now));
    assert!(!never_used_rule.matches(&token(Some("2026-01-01T00:00:00Z")), now));
    let mut young = token(None);
    young.created = at("2026-11-20T00:00:00Z");
    assert!(!never_used_rule.matches(&young, now));
}

#[test]
fn expiry_matchers_split_expired_from_expiring() {
    let now = at("2026-12-01T00:00:00Z");
    let mut expired = token(None);
    expired.expiration_date = Some(at("2026-11-15T00:00:00Z"));
    let mut expiring = token(None);
    expiring.expiration_date = Some(at("2026-12-10T00:00:00Z"));
    let mut never = token(None);
    never.expiration_date = None;

    assert!(is_expired(&expired, now));
    assert!(!expires_within(&expired, TimeDelta::days(14), now));
    assert!(expires_within(&expiring, TimeDelta::days(14), now));
    assert!(!is_expired(&expiring, now));
    assert!(!expires_within(&never, TimeDelta::days(14), now));
    assert!(never.never_expires());
}

#[test]
fn scope_and_owner_matchers() {
    let now = at("2026-12-01T00:00:00Z");
    let scoped = rule(
        "admin",
        Action::Report,
        Matchers {
            scope_includes: Some(vec!["sp:scopes:all".into(), "other".into()]),
            ..Matchers::default()
        },
    );
    assert!(scoped.matches(&token(None), now));
    let mut no_scope = token(None);
    no_scope.scope = None;
    assert!(!scoped.matches(&no_scope, now));

    let owners = rule(
        "owner",
        Action::Report,
        Matchers {
            owner_ids: Some(vec!["owner-1".into()]),
            owner_name_matches: Some(Regex::new("^Jordan").unwrap()),
            name_matches: Some(Regex::new("export$").unwrap()),
            ..Matchers::default()
        },
    );
    assert!(owners.matches(&token(None), now));
    let mut anonymous = token(None);
    anonymous.owner.name = None;
    assert!(!owners.matches(&anonymous, now));
}

#[test]
fn explanation_agrees_with_matching() {
    let now = at("2026-12-01T00:00:00Z");
    let rules = [
        rule("a", Action::Delete, unused(90)),
        rule(
            "b",
            Action::Delete,
            Matchers {
                never_used: Some(true),
                created_older_than: Some(TimeDelta::days(30)),
                ..Matchers::default()
            },
        ),
        rule(
            "c",
            Action::Report,
            Matchers {
                never_expires: Some(false),
                expires_within: Some(TimeDelta::days(400)),
                scope_includes: Some(vec!["sp:scopes:all".into()]),
                managed: Some(false),
                ..Matchers::default()
            },
        ),
    ];
    for last_used in [
        None,
        Some("2026-01-01T00:00:00Z"),
        Some("2026-11-30T00:00:00Z"),
    ] {
        let token = token(last_used);
        for rule in &rules {
            let conditions = explain_rule(rule, &token, now);
            assert_eq!(conditions.len(), rule.matchers.count());
            let all = conditions.iter().all(|condition| condition.matched);
            assert_eq!(
                all,
                rule.matches(&token, now),
                "rule {} with {last_used:?}",
                rule.name
            );
        }
    }
}

#[test]
fn judge_at_time_condition_bounds() {
    let now = at("2026-12-01T00:00:00Z");
    let day = TimeDelta::days(1);
    let policy = Policy {
        rules: vec![
            rule("unused", Action::Delete, unused(90)),
            rule(
                "old",
                Action::Report,
                Matchers {
                    created_older_than: Some(day * 30),
                    ..Matchers::default()
                },
            ),
            rule(
                "expiring",
                Action::Report,
                Matchers {
                    expires_within: Some(day * 14),
                    ..Matchers::default()
                },
            ),
            rule(
                "expired",
                Action::Delete,
                Matchers {
                    expired: Some(true),
                    ..Matchers::default()
                },
            ),
        ],
    };
    // Each instant sits on a bound of one rule, a second before it or a second after it:
    // 90 days before `now` less one day and the 12 h validity, 30 days before, `now`, and
    // 14 days after.
    let bounds = [
        now - day * 91 - TimeDelta::hours(12),
        now - day * 30,
        now,
        now + day * 14,
    ];
    let judge = policy.at(now);
    let second = TimeDelta::seconds(1);
    for bound in bounds {
        for instant in [bound - second, bound, bound + second] {
            let mut token = token(None);
            token.last_used = Some(instant);
            token.created = instant;
            token.expiration_date = Some(instant);
            let expected: Vec<usize> = policy
                .rules
                .iter()
                .enumerate()
                .filter(|(_, rule)| {
                    explain_rule(rule, &token, now)
                        .iter()
                        .all(|condition| condition.matched)
                })
                .map(|(index, _)| index)
                .collect();
            assert_eq!(judge.judge(&token).rules, expected, "at {instant}");
            assert_eq!(policy.judge(&token, now).rules, expected, "at {instant}");
        }
    }
}
