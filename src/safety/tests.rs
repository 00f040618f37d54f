use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::isc::{Owner, Token};
use crate::policy::{Action, Judgment};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn token(id: &str, last_used: Option<&str>) -> Token {
    Token {
        id: id.into(),
        name: format!("token-{id}"),
        scope: None,
        owner: Owner::default(),
        created: at("2025-01-01T00:00:00Z"),
        last_used: last_used.map(at),
        managed: false,
        access_token_validity_seconds: None,
        expiration_date: None,
        user_aware_token_never_expires: None,
    }
}

fn judged(verdict: Action) -> Judgment {
    Judgment {
        verdict,
        rules: vec![0],
    }
}

fn context<'a>(settings: &'a Settings, exemptions: &'a [Exemption]) -> Context<'a> {
    Context {
        settings,
        exemptions,
        client_id: "auditor",
        now: at("2026-12-01T00:00:00Z"),
    }
}

#[test]
fn delete_verdict_waits_for_grace_period() {
    let settings = Settings::default();
    let context = context(&settings, &[]);
    let first = assess(&token("a", None), &judged(Action::Delete), None, &context);
    assert_eq!(first.outcome, Outcome::Grace);
    assert_eq!(first.first_flagged, Some(context.now));
    assert_eq!(first.grace_until, Some(context.now + TimeDelta::days(7)));

    let flagged_long_ago = Some(context.now - TimeDelta::days(7));
    let later = assess(
        &token("a", None),
        &judged(Action::Delete),
        flagged_long_ago,
        &context,
    );
    assert_eq!(later.outcome, Outcome::Due);
    assert_eq!(later.first_flagged, flagged_long_ago);
}

#[test]
fn protections_stop_deletion_but_not_reporting() {
    let settings = Settings::default();
    let context = context(&settings, &[]);
    let mut own = token("auditor", Some("2026-01-01T00:00:00Z"));
    let assessment = assess(&own, &judged(Action::Delete), None, &context);
    assert_eq!(assessment.outcome, Outcome::Protected);
    assert_eq!(assessment.protections, vec![Protection::SelfToken]);
    assert_eq!(assessment.first_flagged, None);

    own.id = "other".into();
    own.managed = true;
    let managed = assess(&own, &judged(Action::Delete), None, &context);
    assert_eq!(managed.protections, vec![Protection::Managed]);
    let reported = assess(&own, &judged(Action::Report), None, &context);
    assert_eq!(reported.outcome, Outcome::Reported);
}

#[test]
fn young_never_used_token_is_protected() {
    let settings = Settings::default();
    let context = context(&settings, &[]);
    let mut young = token("young", None);
    young.created = context.now - TimeDelta::days(3);
    for verdict in [Action::Report, Action::Delete] {
        let assessment = assess(&young, &judged(verdict), None, &context);
        assert_eq!(assessment.outcome, Outcome::Protected, "{verdict}");
        assert_eq!(assessment.protections, vec![Protection::Young]);
    }
}

#[test]
fn expired_exemption_no_longer_applies() {
    let settings = Settings::default();
    let exemptions = [
        Exemption {
            token_id: Some("a".into()),
            owner_id: None,
            name_matches: None,
            reason: "old".into(),
            until: Some(at("2026-11-01T00:00:00Z")),
        },
        Exemption {
            token_id: Some("b".into()),
            owner_id: None,
            name_matches: None,
            reason: "current".into(),
            until: Some(at("2027-01-01T00:00:00Z")),
        },
    ];
    let context = context(&settings, &exemptions);
    let expired = assess(&token("a", None), &judged(Action::Delete), None, &context);
    assert_eq!(expired.outcome, Outcome::Grace);
    assert_eq!(expired.expired_exemption, Some(0));
    let active = assess(&token("b", None), &judged(Action::Delete), None, &context);
    assert_eq!(active.outcome, Outcome::Exempt);
    assert_eq!(active.exemption, Some(1));
}

#[test]
fn plan_defers_newest_beyond_budget() {
    let settings = Settings {
        max_deletions_per_run: 2,
        ..Settings::default()
    };
    let tokens = vec![
        token("new", Some("2026-06-01T00:00:00Z")),
        token("never", None),
        token("old", Some("2025-06-01T00:00:00Z")),
    ];
    let mut assessments: Vec<Assessment> = tokens
        .iter()
        .map(|_| Assessment {
            verdict: Action::Delete,
            protections: vec![],
            exemption: None,
            expired_exemption: None,
            outcome: Outcome::Due,
            first_flagged: None,
            grace_until: None,
        })
        .collect();
    let order = plan(&tokens, &mut assessments, &settings, false, None);
    // "never" was created 2025-01-01, before "old" was last used.
    assert_eq!(order, vec![1, 2]);
    assert_eq!(assessments[0].outcome, Outcome::Deferred);
    assert_eq!(assessments[1].outcome, Outcome::Due);
}

#[test]
fn breaker_holds_every_due_token() {
    let settings = Settings::default();
    let tokens = vec![token("a", None)];
    let mut assessments = vec![Assessment {
        verdict: Action::Delete,
        protections: vec![],
        exemption: None,
        expired_exemption: None,
        outcome: Outcome::Due,
        first_flagged: None,
        grace_until: None,
    }];
    let breaker = Breaker::IncompleteListing {
        reason: "test".into(),
    };
    let order = plan(&tokens, &mut assessments, &settings, false, Some(&breaker));
    assert!(order.is_empty());
    assert_eq!(assessments[0].outcome, Outcome::Held);
}

#[test]
fn percent_breaker_trips_above_threshold() {
    let settings = Settings {
        max_deletion_percent: 50.0,
        ..Settings::default()
    };
    let at_limit = BreakerInputs {
        due: 5,
        listed: 10,
        ..BreakerInputs::default()
    };
    assert_eq!(check_breakers(&at_limit, &settings), None);
    let over = BreakerInputs {
        due: 6,
        listed: 10,
        ..BreakerInputs::default()
    };
    assert!(matches!(
        check_breakers(&over, &settings),
        Some(Breaker::DeletionPercent { .. })
    ));
    let skewed = BreakerInputs {
        clock_skew: Some(TimeDelta::minutes(-6)),
        ..BreakerInputs::default()
    };
    assert!(matches!(
        check_breakers(&skewed, &settings),
        Some(Breaker::ClockSkew { .. })
    ));
}
