use std::path::Path;

use chrono::TimeZone;

use super::*;
use crate::audit::Decision;
use crate::isc::{IscError, Token};
use crate::policy::Action;
use crate::safety::{Breaker, Outcome};

const POLICY: &str = r#"
[[tenant]]
name = "acme"
api_url = "https://acme.api.identitynow.com"
client_id = "aaaa0000000000000000000000000001"
client_secret_env = "PATROL_SECRET"

[metrics]
max_token_series = 2

[[exemption]]
token_id = "t-exempt"
reason = "Quarterly job"
until = "2027-03-01"

[[exemption]]
name_matches = "^break-glass"
reason = "Emergency access"
until = "2026-11-01"
"#;

fn config(text: &str) -> Config {
    Config::parse(text, Path::new("patrol.toml")).unwrap()
}

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn token(id: &str, name: &str, last_used: Option<&str>) -> Token {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "name": name,
        "owner": { "type": "IDENTITY", "id": format!("owner-{id}"), "name": "Ada \"Ops\" Lovelace" },
        "created": "2025-01-01T00:00:00.000Z",
        "lastUsed": last_used,
        "expirationDate": "2027-01-01T00:00:00.000Z",
        "managed": false,
        "accessTokenValiditySeconds": 43200,
    }))
    .unwrap()
}

fn result(token: Token, verdict: Action, outcome: Outcome) -> (Token, Decision) {
    let decision = Decision {
        grace_until: (outcome == Outcome::Grace).then(|| instant("2026-12-08T00:00:00Z")),
        verdict,
        outcome,
        rules: Vec::new().into(),
        protections: Box::default(),
        exemption: None,
        first_flagged: None,
        error: None,
    };
    (token, decision)
}

fn run(tokens: Vec<(Token, Decision)>) -> Run {
    Run::example(tokens)
}

/// Three flagged tokens and one kept.
fn four_tokens() -> Vec<(Token, Decision)> {
    vec![
        result(
            token("t-keep", "nightly-sync", Some("2026-11-30T00:00:00.000Z")),
            Action::Keep,
            Outcome::None,
        ),
        result(
            token("t-report", "dashboard", Some("2026-09-01T00:00:00.000Z")),
            Action::Report,
            Outcome::Reported,
        ),
        result(
            token("t-grace", "old-exporter", Some("2026-07-01T00:00:00.000Z")),
            Action::Delete,
            Outcome::Grace,
        ),
        result(
            token("t-deleted", "unused", None),
            Action::Delete,
            Outcome::Deleted,
        ),
    ]
}

/// Returns the value of the series written exactly as `series` (name and labels), if any.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.parse().ok()
    })
}

fn ended() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 2).unwrap()
}

#[test]
fn judged_run_sets_counts_and_token_series() {
    let metrics = Metrics::new(&config(POLICY));
    metrics.record_run(
        "acme",
        &Ok(run(four_tokens())),
        ended(),
        Duration::from_millis(1500),
    );
    let text = metrics.render();

    assert_eq!(
        value(&text, r#"patrol_tokens{tenant="acme",verdict="keep"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"patrol_tokens{tenant="acme",verdict="delete"}"#),
        Some(2.0)
    );
    assert_eq!(
        value(
            &text,
            r#"patrol_token_outcomes{tenant="acme",outcome="held"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            r#"patrol_token_outcomes{tenant="acme",outcome="deleted"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"patrol_deletions_total{tenant="acme",result="deleted"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"patrol_runs_total{tenant="acme",result="success"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"patrol_last_success_timestamp_seconds{tenant="acme"}"#
        ),
        Some(1_796_083_202.0)
    );
    assert_eq!(
        value(&text, r#"patrol_last_run_duration_seconds{tenant="acme"}"#),
        Some(1.5)
    );
    assert_eq!(
        value(&text, r#"patrol_clock_skew_seconds{tenant="acme"}"#),
        Some(-2.0)
    );

    // Two series at most: the delete verdicts go first, the report is dropped.
    assert_eq!(
        value(&text, r#"patrol_token_series_dropped{tenant="acme"}"#),
        Some(1.0)
    );
    assert!(text.contains(
        r#"patrol_token_info{tenant="acme",token_id="t-grace",token_name="old-exporter",owner_id="owner-t-grace",owner_name="Ada \"Ops\" Lovelace",verdict="delete",outcome="grace"} 1"#
    ), "{text}");
    assert_eq!(
        value(
            &text,
            r#"patrol_token_deletion_due_timestamp_seconds{tenant="acme",token_id="t-grace"}"#
        ),
        Some(1_796_688_000.0)
    );
    assert_eq!(
        value(
            &text,
            r#"patrol_token_last_used_timestamp_seconds{tenant="acme",token_id="t-grace"}"#
        ),
        Some(1_782_864_000.0)
    );
    assert!(text.contains(r#"token_id="t-deleted""#), "{text}");
    assert!(
        !text.contains(
            r#"patrol_token_last_used_timestamp_seconds{tenant="acme",token_id="t-deleted"}"#
        ),
        "a never-used token has no last-used series"
    );
    assert!(
        !text.contains("t-report"),
        "the cap did not drop the report"
    );
    assert!(!text.contains("t-keep"), "a kept token has series");
}

#[test]
fn token_labels_off_empties_free_text() {
    let text = POLICY.replace("max_token_series = 2", "token_labels = false");
    let metrics = Metrics::new(&config(&text));
    metrics.record_run("acme", &Ok(run(four_tokens())), ended(), Duration::ZERO);
    let text = metrics.render();
    assert!(text.contains(
        r#"patrol_token_info{tenant="acme",token_id="t-report",token_name="",owner_id="owner-t-report",owner_name="",verdict="report",outcome="reported"} 1"#
    ), "{text}");
    assert!(!text.contains("Lovelace"), "{text}");
    assert!(!text.contains("dashboard"), "{text}");
}

#[test]
fn gone_token_loses_series_next_run() {
    let metrics = Metrics::new(&config(POLICY));
    metrics.record_run("acme", &Ok(run(four_tokens())), ended(), Duration::ZERO);
    assert!(metrics.render().contains("t-deleted"));

    let remaining: Vec<(Token, Decision)> = four_tokens()
        .into_iter()
        .filter(|(token, _)| token.id != "t-deleted")
        .collect();
    metrics.record_run("acme", &Ok(run(remaining)), ended(), Duration::ZERO);
    let text = metrics.render();
    assert!(!text.contains("t-deleted"), "{text}");
    assert!(text.contains(r#"token_id="t-grace""#), "{text}");
}

#[test]
fn failed_run_keeps_the_last_judged_snapshot() {
    let metrics = Metrics::new(&config(POLICY));
    metrics.record_run("acme", &Ok(run(four_tokens())), ended(), Duration::ZERO);
    let later = ended() + TimeDelta::hours(1);
    let failure = Err(RunError::Unreachable {
        tenant: "acme".to_owned(),
        source: IscError::Network {
            message: "connection refused".to_owned(),
        },
    });
    metrics.record_run("acme", &failure, later, Duration::from_secs(3));
    let text = metrics.render();

    assert_eq!(
        value(
            &text,
            r#"patrol_runs_total{tenant="acme",result="unreachable"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"patrol_last_run_timestamp_seconds{tenant="acme"}"#),
        Some(unix_seconds(later))
    );
    assert_eq!(
        value(
            &text,
            r#"patrol_last_success_timestamp_seconds{tenant="acme"}"#
        ),
        Some(unix_seconds(ended()))
    );
    assert!(text.contains(r#"token_id="t-grace""#), "{text}");
    assert_eq!(
        value(&text, r#"patrol_tokens{tenant="acme",verdict="delete"}"#),
        Some(2.0)
    );
}

#[test]
fn rejected_credentials_count_as_auth_failed() {
    let failure: Result<Run, RunError> = Err(RunError::Unreachable {
        tenant: "acme".to_owned(),
        source: IscError::Authentication {
            status: 401,
            tracking_id: None,
            message: "invalid client".to_owned(),
        },
    });
    assert_eq!(RunResult::of(&failure), RunResult::AuthFailed);
}

#[test]
fn breaker_run_is_judged_and_sets_its_breaker() {
    let metrics = Metrics::new(&config(POLICY));
    let mut tripped = run(four_tokens());
    tripped.breaker = Some(Breaker::IncompleteListing {
        reason: "the list was cut".to_owned(),
    });
    metrics.record_run("acme", &Ok(tripped), ended(), Duration::ZERO);
    let text = metrics.render();
    assert_eq!(
        value(
            &text,
            r#"patrol_runs_total{tenant="acme",result="breaker"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"patrol_breaker_tripped{tenant="acme",breaker="incomplete_listing"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"patrol_breaker_tripped{tenant="acme",breaker="clock_skew"}"#
        ),
        Some(0.0)
    );
}

#[test]
fn removed_tenant_loses_every_series() {
    let metrics = Metrics::new(&config(POLICY));
    metrics.record_run("acme", &Ok(run(four_tokens())), ended(), Duration::ZERO);
    let renamed = POLICY.replace("name = \"acme\"", "name = \"globex\"");
    metrics.set_config(&config(&renamed));
    metrics.record_run("acme", &Ok(run(four_tokens())), ended(), Duration::ZERO);
    let text = metrics.render();
    assert!(!text.contains("tenant=\"acme\""), "{text}");
    assert_eq!(
        value(
            &text,
            r#"patrol_runs_total{tenant="globex",result="success"}"#
        ),
        Some(0.0)
    );
}

#[test]
fn exemptions_are_counted_and_listed() {
    let metrics = Metrics::new(&config(POLICY));
    let state = metrics.lock();
    let text = exposition::encode(collect(&state, instant("2026-12-01T00:00:00Z")));
    assert_eq!(
        value(&text, r#"patrol_exemptions{tenant="acme",state="active"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"patrol_exemptions{tenant="acme",state="expired"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"patrol_exemption_expiry_timestamp_seconds{tenant="acme",exemption="token_id=t-exempt",reason="Quarterly job"}"#
        ),
        Some(1_803_859_200.0)
    );
    assert!(
        text.contains(r#"exemption="name_matches=^break-glass""#),
        "{text}"
    );
}

#[test]
fn reloads_are_counted() {
    let metrics = Metrics::new(&config(POLICY));
    let text = metrics.render();
    assert_eq!(
        value(&text, "patrol_config_last_reload_successful"),
        Some(1.0)
    );
    metrics.record_reload(false);
    metrics.record_reload(true);
    metrics.record_reload(false);
    let text = metrics.render();
    assert_eq!(
        value(&text, r#"patrol_config_reloads_total{result="failure"}"#),
        Some(2.0)
    );
    assert_eq!(
        value(&text, r#"patrol_config_reloads_total{result="success"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "patrol_config_last_reload_successful"),
        Some(0.0)
    );
}

#[test]
fn skips_and_schedule_are_per_tenant() {
    let metrics = Metrics::new(&config(POLICY));
    metrics.record_skip("acme");
    metrics.set_schedule(
        "acme",
        Some(instant("2026-12-02T03:15:00Z")),
        Some(TimeDelta::days(1)),
    );
    let text = metrics.render();
    assert_eq!(
        value(&text, r#"patrol_runs_skipped_total{tenant="acme"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"patrol_schedule_next_run_timestamp_seconds{tenant="acme"}"#
        ),
        Some(1_796_181_300.0)
    );
    assert_eq!(
        value(&text, r#"patrol_schedule_interval_seconds{tenant="acme"}"#),
        Some(86_400.0)
    );
    assert!(
        !text.contains("patrol_tokens{"),
        "counts before the first judged run"
    );
}

#[test]
fn process_series_are_present() {
    let text = Metrics::new(&config(POLICY)).render();
    for name in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(text.contains(&format!("\n{name} ")), "{name} is missing");
    }
}

#[test]
fn repeated_exemption_makes_one_series() {
    let text = format!(
        "{POLICY}\n[[exemption]]\ntoken_id = \"t-exempt\"\nreason = \"Quarterly job\"\nuntil = \"2027-06-01\"\n"
    );
    let metrics = Metrics::new(&config(&text));
    let rendered = metrics.render();
    let series = r#"patrol_exemption_expiry_timestamp_seconds{tenant="acme",exemption="token_id=t-exempt",reason="Quarterly job"}"#;
    assert_eq!(rendered.matches(series).count(), 1, "{rendered}");
    assert_eq!(value(&rendered, series), Some(1_811_808_000.0));
}
