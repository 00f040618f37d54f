//! Properties of policy evaluation and the safety rails, checked on generated tokens and
//! rules.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;
use regex::Regex;

use patrol::isc::{Owner, Token};
use patrol::policy::{Action, Matchers, Policy, Rule};
use patrol::safety::{self, Assessment, Context, Exemption, Outcome, Settings};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
}

prop_compose! {
    fn instant_before_now()(seconds in 0i64..(3 * 365 * 86_400)) -> DateTime<Utc> {
        now() - TimeDelta::seconds(seconds)
    }
}

prop_compose! {
    fn token()(
        id in "[a-f0-9]{8}",
        name in prop::sample::select(vec!["sync", "export", "break-glass-ops", "ci"]),
        owner in prop::sample::select(vec!["o1", "o2", "o3"]),
        created in instant_before_now(),
        last_used_offset in prop::option::of(0i64..(2 * 365 * 86_400)),
        managed in any::<bool>(),
        validity in prop::sample::select(vec![900u32, 3_600, 43_200]),
        expires_in_days in prop::option::of(-30i64..400),
        admin in any::<bool>(),
    ) -> Token {
        let last_used = last_used_offset.map(|offset| (created + TimeDelta::seconds(offset)).min(now()));
        Token {
            id,
            name: name.to_owned(),
            scope: Some(vec![if admin { "sp:scopes:all".into() } else { "sp:read".into() }]),
            owner: Owner { id: Some(owner.into()), name: Some(owner.to_uppercase()) },
            created,
            last_used,
            managed,
            access_token_validity_seconds: Some(validity),
            expiration_date: expires_in_days.map(|days| now() + TimeDelta::days(days)),
            user_aware_token_never_expires: None,
        }
    }
}

prop_compose! {
    fn rule()(
        action in prop::sample::select(vec![Action::Keep, Action::Report, Action::Delete]),
        unused_days in prop::option::of(2i64..400),
        never_used in prop::option::of(any::<bool>()),
        created_days in prop::option::of(0i64..400),
        expired in prop::option::of(any::<bool>()),
        expires_within_days in prop::option::of(1i64..60),
        admin_only in any::<bool>(),
        managed in prop::option::of(any::<bool>()),
    ) -> Rule {
        let mut matchers = Matchers {
            last_used_older_than: unused_days.map(TimeDelta::days),
            never_used,
            created_older_than: created_days.map(TimeDelta::days),
            expired,
            expires_within: expires_within_days.map(TimeDelta::days),
            managed,
            ..Matchers::default()
        };
        if admin_only {
            matchers.scope_includes = Some(vec!["sp:scopes:all".into()]);
        }
        if matchers.count() == 0 {
            matchers.last_used_older_than = Some(TimeDelta::days(90));
        }
        Rule { name: format!("{action}-rule"), action, description: None, matchers }
    }
}

fn policy(rules: Vec<Rule>) -> Policy {
    let rules = rules
        .into_iter()
        .enumerate()
        .map(|(index, mut rule)| {
            rule.name = format!("{}-{index}", rule.name);
            rule
        })
        .collect();
    Policy { rules }
}

fn settings(grace_days: i64, max_deletions: usize) -> Settings {
    Settings {
        grace_period: TimeDelta::days(grace_days),
        max_deletions_per_run: max_deletions,
        ..Settings::default()
    }
}

fn exemptions() -> Vec<Exemption> {
    vec![
        Exemption {
            token_id: None,
            owner_id: Some("o2".into()),
            name_matches: None,
            reason: "owner on leave".into(),
            until: Some(now() + TimeDelta::days(10)),
        },
        Exemption {
            token_id: None,
            owner_id: None,
            name_matches: Some(Regex::new("^break-glass").unwrap()),
            reason: "emergency access".into(),
            until: None,
        },
    ]
}

fn decide(
    tokens: &[Token],
    policy: &Policy,
    settings: &Settings,
    exemptions: &[Exemption],
    flagged_days_ago: Option<i64>,
) -> Vec<Assessment> {
    let context = Context {
        settings,
        exemptions,
        client_id: "auditor",
        now: now(),
    };
    let mut assessments: Vec<Assessment> = tokens
        .iter()
        .map(|token| {
            let judgment = policy.judge(token, now());
            let first = flagged_days_ago.map(|days| now() - TimeDelta::days(days));
            safety::assess(token, &judgment, first, &context)
        })
        .collect();
    safety::plan(tokens, &mut assessments, settings, false, None);
    assessments
}

fn is_deletion_outcome(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Grace
            | Outcome::Deferred
            | Outcome::Held
            | Outcome::DryRun
            | Outcome::Due
            | Outcome::Deleted
            | Outcome::Gone
            | Outcome::Failed
    )
}

proptest! {
    #[test]
    fn older_last_use_is_never_judged_fresher(
        base in token(),
        rules in prop::collection::vec(rule(), 1..6),
        older_by in 0i64..(400 * 86_400),
    ) {
        let policy = policy(rules);
        let mut fresher = base.clone();
        let mut older = base;
        let last_used = fresher.last_used.unwrap_or(now() - TimeDelta::days(1));
        fresher.last_used = Some(last_used);
        older.last_used = Some(last_used - TimeDelta::seconds(older_by));
        let fresh_verdict = policy.judge(&fresher, now()).verdict;
        let old_verdict = policy.judge(&older, now()).verdict;
        prop_assert!(old_verdict >= fresh_verdict, "older {old_verdict} < fresher {fresh_verdict}");
    }

    #[test]
    fn deletion_outcome_implies_delete_verdict(
        tokens in prop::collection::vec(token(), 1..30),
        rules in prop::collection::vec(rule(), 1..6),
        grace_days in 0i64..10,
        flagged in prop::option::of(0i64..20),
        max_deletions in 0usize..10,
    ) {
        let policy = policy(rules);
        let settings = settings(grace_days, max_deletions);
        for assessment in decide(&tokens, &policy, &settings, &exemptions(), flagged) {
            if is_deletion_outcome(assessment.outcome) {
                prop_assert_eq!(assessment.verdict, Action::Delete);
            }
        }
    }

    #[test]
    fn exemptions_and_protections_never_escalate(
        tokens in prop::collection::vec(token(), 1..30),
        rules in prop::collection::vec(rule(), 1..6),
        flagged in prop::option::of(0i64..20),
    ) {
        let policy = policy(rules);
        let settings = settings(0, 1_000);
        let without = decide(&tokens, &policy, &Settings { protect_managed: false, min_token_age: TimeDelta::zero(), ..settings.clone() }, &[], flagged);
        let with = decide(&tokens, &policy, &settings, &exemptions(), flagged);
        for (plain, guarded) in without.iter().zip(&with) {
            prop_assert_eq!(plain.verdict, guarded.verdict);
            match plain.outcome {
                Outcome::None => prop_assert_eq!(guarded.outcome, Outcome::None),
                Outcome::Reported => prop_assert!(
                    matches!(guarded.outcome, Outcome::Reported | Outcome::Exempt | Outcome::Protected),
                    "report became {}", guarded.outcome
                ),
                _ => {}
            }
            if guarded.exemption.is_some() || !guarded.protections.is_empty() {
                prop_assert!(
                    matches!(guarded.outcome, Outcome::Exempt | Outcome::Protected | Outcome::Reported),
                    "exempt or protected token has outcome {}", guarded.outcome
                );
            }
        }
    }

    #[test]
    fn evaluation_is_deterministic(
        tokens in prop::collection::vec(token(), 1..30),
        rules in prop::collection::vec(rule(), 1..6),
        flagged in prop::option::of(0i64..20),
    ) {
        let policy = policy(rules);
        let settings = settings(7, 5);
        let first = decide(&tokens, &policy, &settings, &exemptions(), flagged);
        let second = decide(&tokens, &policy, &settings, &exemptions(), flagged);
        prop_assert_eq!(first, second);
    }
}
