//! Safety rails through the real binary and a simulated tenant: grace periods that survive
//! restarts, the per-run budget, every breaker, and distrust of the server's filters.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use common::patrol::*;
use serde_json::Value;

const BREAKER_EXIT: i32 = 3;

fn contract_policy(settings: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(POLICY_FIXTURE).unwrap();
    for (key, value) in settings {
        text = set_policy_value(&text, "safety", key, value);
    }
    text
}

async fn audit_json(policy: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec![
        "audit",
        "--config",
        policy.to_str().unwrap(),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let output = patrol(&args).await;
    let report = json_report(&output);
    (output.status.code(), report)
}

fn read_state(workspace: &Workspace) -> Value {
    let path = workspace.state_dir().join("acme/state.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Moves every stored first-flagged time back by `age`, as if the runs were that far apart.
fn age_state(workspace: &Workspace, age: TimeDelta) {
    let path = workspace.state_dir().join("acme/state.json");
    let mut state: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (_, instant) in state["first_flagged"].as_object_mut().unwrap() {
        let earlier = parse_instant(instant.as_str().unwrap()) - age;
        *instant = Value::String(earlier.to_rfc3339());
    }
    std::fs::write(&path, serde_json::to_string_pretty(&state).unwrap()).unwrap();
}

#[tokio::test]
async fn grace_period_survives_restart() {
    let workspace = Workspace::new();
    let sim = start_sim(&workspace, &contract_tokens_now(), &[]);
    let policy = workspace.policy(&contract_policy(&[]), &sim.base_url);

    // Run 1 flags every delete verdict and puts it in grace; nothing is deleted.
    let (code, first) = audit_json(&policy, &["--apply"]).await;
    assert_eq!(code, Some(0));
    let flagged = ids_with_outcome(&first, "grace");
    assert_eq!(flagged.len(), 8, "{first}");
    assert!(ids_with_outcome(&first, "deleted").is_empty());
    let state = read_state(&workspace);
    let stored: BTreeSet<String> = state["first_flagged"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(stored, flagged.iter().cloned().collect());

    // Between the runs, one flagged token is used again.
    let used = "bbbb0000000000000000000000000003";
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    sim.control_send(
        "PATCH",
        &format!("/_sim/tokens/{used}"),
        &serde_json::json!({ "lastUsed": now }),
    )
    .await;

    // A new process after the grace period deletes the rest and forgets the used token.
    age_state(&workspace, TimeDelta::days(8));
    let (code, second) = audit_json(&policy, &["--apply"]).await;
    assert_eq!(code, Some(0), "{second}");
    let deleted: BTreeSet<String> = ids_with_outcome(&second, "deleted").into_iter().collect();
    let mut expected: BTreeSet<String> = flagged.iter().cloned().collect();
    expected.remove(used);
    assert_eq!(deleted, expected);
    assert_eq!(report_token(&second, used)["verdict"], "keep");
    assert!(sim_token_ids(&sim).await.contains(used));
    let state = read_state(&workspace);
    assert!(state["first_flagged"].get(used).is_none(), "{state}");
    assert!(
        state["first_flagged"].as_object().unwrap().is_empty(),
        "{state}"
    );
}

#[tokio::test]
async fn dry_run_records_first_flagged_times() {
    let workspace = Workspace::new();
    let sim = start_sim(&workspace, &contract_tokens_now(), &[]);
    let policy = workspace.policy(&contract_policy(&[]), &sim.base_url);

    let (code, report) = audit_json(&policy, &[]).await;
    assert_eq!(code, Some(0));
    assert_eq!(report["dry_run"], true);
    let state = read_state(&workspace);
    assert_eq!(state["first_flagged"].as_object().unwrap().len(), 8);

    // After the grace period the dry run shows them as due, still deleting nothing.
    age_state(&workspace, TimeDelta::days(8));
    let (code, report) = audit_json(&policy, &[]).await;
    assert_eq!(code, Some(0));
    assert_eq!(ids_with_outcome(&report, "dry_run").len(), 8);
    assert_eq!(sim.stats().await["deletes"], 0);
}

#[tokio::test]
async fn future_first_flagged_restarts_grace() {
    let workspace = Workspace::new();
    let sim = start_sim(&workspace, &contract_tokens_now(), &[]);
    let policy = workspace.policy(&contract_policy(&[]), &sim.base_url);
    let (code, _) = audit_json(&policy, &[]).await;
    assert_eq!(code, Some(0));

    // The stored times move two days past the clock, as after a clock set back.
    age_state(&workspace, TimeDelta::days(-2));
    let output = patrol(&[
        "audit",
        "--config",
        policy.to_str().unwrap(),
        "--format",
        "json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("stored first-flagged times are later than this run's start"),
        "{stderr}"
    );
    assert!(stderr.contains("tokens=8"), "{stderr}");
    let report = json_report(&output);
    let in_grace = ids_with_outcome(&report, "grace");
    assert_eq!(in_grace.len(), 8, "{report}");
    for id in &in_grace {
        assert_eq!(report_token(&report, id)["first_flagged"], report["as_of"]);
    }
}

#[tokio::test]
async fn unreadable_state_deletes_nothing() {
    let workspace = Workspace::new();
    let sim = start_sim(&workspace, &contract_tokens_now(), &[]);
    let policy = workspace.policy(
        &contract_policy(&[("grace_period", "\"0s\"")]),
        &sim.base_url,
    );
    std::fs::create_dir_all(workspace.state_dir().join("acme")).unwrap();
    std::fs::write(workspace.state_dir().join("acme/state.json"), "{ truncated").unwrap();

    let (code, report) = audit_json(&policy, &["--apply"]).await;
    assert_eq!(code, Some(BREAKER_EXIT), "{report}");
    assert_eq!(report["breaker"]["kind"], "state_reset");
    assert_eq!(ids_with_outcome(&report, "held").len(), 8);
    assert_eq!(sim.stats().await["deletes"], 0);
    let kept_aside = std::fs::read_dir(workspace.state_dir().join("acme"))
        .unwrap()
        .filter_map(Result::ok)
        .any(|entry| entry.file_name().to_string_lossy().contains("unreadable"));
    assert!(kept_aside, "the unreadable state file was not kept");
}

/// `count` tokens unused for a year, the oldest last, plus the auditor's own token.
fn stale_tokens(count: usize) -> (String, Vec<(String, DateTime<Utc>)>) {
    let now = Utc::now();
    let mut tokens = vec![token_json(
        CLIENT_ID,
        "patrol-auditor",
        "auditor",
        now - TimeDelta::days(400),
        Some(now),
    )];
    let mut stale = Vec::new();
    for index in 0..count {
        let id = format!("{index:032x}");
        let last_used = now - TimeDelta::days(365) - TimeDelta::hours(index as i64);
        tokens.push(token_json(
            &id,
            &format!("stale-{index}"),
            "owner",
            now - TimeDelta::days(500),
            Some(last_used),
        ));
        stale.push((id, last_used));
    }
    (serde_json::to_string(&tokens).unwrap(), stale)
}

#[tokio::test]
async fn budget_deletes_oldest_first_each_run() {
    let workspace = Workspace::new();
    let (tokens, mut stale) = stale_tokens(200);
    let sim = start_sim(&workspace, &tokens, &[]);
    let policy = workspace.policy(
        &contract_policy(&[
            ("grace_period", "\"0s\""),
            ("max_deletions_per_run", "25"),
            ("max_deletion_percent", "100"),
        ]),
        &sim.base_url,
    );
    stale.sort_by_key(|(_, last_used)| *last_used);

    for run in 0..2 {
        let (code, report) = audit_json(&policy, &["--apply"]).await;
        assert_eq!(code, Some(0), "{report}");
        let deleted: BTreeSet<String> = ids_with_outcome(&report, "deleted").into_iter().collect();
        let oldest: BTreeSet<String> = stale[run * 25..(run + 1) * 25]
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(deleted, oldest, "run {run} did not delete the 25 oldest");
        assert_eq!(
            ids_with_outcome(&report, "deferred").len(),
            200 - 25 * (run + 1)
        );
        assert_eq!(sim_token_ids(&sim).await.len(), 201 - 25 * (run + 1));
    }
}

async fn assert_breaker(extra_sim_args: &[&str], safety: &[(&str, &str)], kind: &str) {
    let workspace = Workspace::new();
    let sim = start_sim(&workspace, &contract_tokens_now(), extra_sim_args);
    let mut settings = vec![("grace_period", "\"0s\"")];
    settings.extend_from_slice(safety);
    let policy = workspace.policy(&contract_policy(&settings), &sim.base_url);

    let output = patrol(&[
        "audit",
        "--config",
        policy.to_str().unwrap(),
        "--apply",
        "--format",
        "json",
    ])
    .await;
    assert_eq!(
        output.status.code(),
        Some(BREAKER_EXIT),
        "{}",
        describe(&output)
    );
    let report = json_report(&output);
    assert_eq!(report["breaker"]["kind"], kind, "{}", report["breaker"]);
    assert!(ids_with_outcome(&report, "deleted").is_empty());
    assert_eq!(sim.stats().await["deletes"], 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("breaker tripped"), "{stderr}");
}

#[tokio::test]
async fn breaker_trips_on_too_many_candidates() {
    // 8 of the 25 contract tokens are due: 32% is over 10%.
    assert_breaker(&[], &[("max_deletion_percent", "10")], "deletion_percent").await;
}

#[tokio::test]
async fn breaker_trips_on_skewed_date_header() {
    assert_breaker(&["--clock-skew", "600"], &[], "clock_skew").await;
}

#[tokio::test]
async fn breaker_trips_on_failed_listing() {
    assert_breaker(
        &["--fault-5xx", "1", "--fault-5xx-status", "500"],
        &[],
        "incomplete_listing",
    )
    .await;
}

#[tokio::test]
async fn breaker_trips_on_truncated_listing() {
    assert_breaker(&["--fault-list-cap", "10"], &[], "incomplete_listing").await;
}

#[tokio::test]
async fn ignored_filters_change_no_deletion() {
    let mut deleted_sets = Vec::new();
    for extra in [&[][..], &["--fault-ignore-filters"][..]] {
        let workspace = Workspace::new();
        let sim = start_sim(&workspace, &contract_tokens_now(), extra);
        let policy = workspace.policy(
            &contract_policy(&[("grace_period", "\"0s\"")]),
            &sim.base_url,
        );
        let (code, report) = audit_json(&policy, &["--apply"]).await;
        assert_eq!(code, Some(0), "{report}");
        if !extra.is_empty() {
            assert!(
                report["listing"]["filter_disagreements"].as_u64().unwrap() > 0,
                "{}",
                report["listing"]
            );
        }
        deleted_sets.push((
            ids_with_outcome(&report, "deleted"),
            sim_token_ids(&sim).await,
        ));
    }
    assert_eq!(deleted_sets[0], deleted_sets[1]);
    assert_eq!(deleted_sets[0].0.len(), 8);
}

#[tokio::test]
async fn forecast_shows_future_deletions_and_writes_nothing() {
    let workspace = Workspace::new();
    let sim = start_sim(&workspace, &contract_tokens_now(), &[]);
    // A budget of 3 per run and a 10% breaker: ten daily runs can still delete them all.
    let policy = workspace.policy(
        &contract_policy(&[
            ("max_deletions_per_run", "3"),
            ("max_deletion_percent", "10"),
        ]),
        &sim.base_url,
    );
    let in_ten_days = (Utc::now() + TimeDelta::days(10)).to_rfc3339();

    let (code, report) = audit_json(&policy, &["--as-of", &in_ten_days]).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["forecast"], true);
    let due: BTreeSet<String> = ids_with_outcome(&report, "dry_run").into_iter().collect();
    // Flagged today, their 7-day grace ends before the forecast instant.
    for id in ["03", "06", "08", "10", "14", "21", "23", "25"] {
        assert!(
            due.contains(&format!("bbbb00000000000000000000000000{id}")),
            "{id} is not due: {due:?}"
        );
    }
    // These cross the 90-day line within a day, so they are due by then as well.
    for id in ["05", "07"] {
        assert!(
            due.contains(&format!("bbbb00000000000000000000000000{id}")),
            "{id} is not due: {due:?}"
        );
    }
    // Expires in 9 days, so it is flagged then and still in grace at the forecast instant.
    assert_eq!(
        report_token(&report, "bbbb0000000000000000000000000016")["outcome"],
        "grace"
    );
    assert!(ids_with_outcome(&report, "deferred").is_empty(), "{report}");
    assert!(report["breaker"].is_null(), "{}", report["breaker"]);
    assert!(
        !workspace.state_dir().exists(),
        "a forecast created the state directory"
    );
    assert_eq!(sim.stats().await["deletes"], 0);
}

#[tokio::test]
async fn explain_names_rules_protections_and_outcome() {
    let workspace = Workspace::new();
    let sim = start_sim(&workspace, &contract_tokens_now(), &[]);
    let policy = workspace.policy(&contract_policy(&[]), &sim.base_url);

    let output = patrol(&[
        "audit",
        "--config",
        policy.to_str().unwrap(),
        "--explain",
        "bbbb0000000000000000000000000011",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("MATCH    unused-90d"), "{text}");
    assert!(text.contains("no match never-used-30d"), "{text}");
    assert!(text.contains("managed: yes"), "{text}");
    assert!(text.contains("outcome: protected"), "{text}");
    assert!(!text.contains("a forecast"), "{text}");
    assert!(
        !workspace.state_dir().exists(),
        "--explain created the state directory"
    );

    let forecast = patrol(&[
        "audit",
        "--config",
        policy.to_str().unwrap(),
        "--as-of",
        "2027-06-01",
        "--explain",
        "bbbb0000000000000000000000000011",
    ])
    .await;
    assert_eq!(forecast.status.code(), Some(0), "{}", describe(&forecast));
    let text = String::from_utf8_lossy(&forecast.stdout);
    assert!(
        text.contains("evaluated at 2027-06-01T00:00:00Z, a forecast: \"now\" and \"ago\""),
        "{text}"
    );

    let missing = patrol(&[
        "audit",
        "--config",
        policy.to_str().unwrap(),
        "--explain",
        "nope",
    ])
    .await;
    assert_eq!(missing.status.code(), Some(66), "{}", describe(&missing));
}

/// A list body that breaks off once is fetched again, so the run still deletes. The
/// tenant's dice, seeded with 86, cut the first list response and none of the seven after.
#[tokio::test]
async fn one_cut_off_listing_body_is_retried() {
    let workspace = Workspace::new();
    let faults = ["--seed", "86", "--fault-cut-body", "0.5"];
    let sim = start_sim(&workspace, &contract_tokens_now(), &faults);
    let policy = workspace.policy(
        &contract_policy(&[("grace_period", "\"0s\"")]),
        &sim.base_url,
    );

    let (code, report) = audit_json(&policy, &["--apply"]).await;
    assert_eq!(code, Some(0), "{report}");
    assert!(report["breaker"].is_null(), "{}", report["breaker"]);
    assert_eq!(ids_with_outcome(&report, "deleted").len(), 8);
    let stats = sim.stats().await;
    assert_eq!(stats["faults"]["cut_bodies"], 1);
    assert_eq!(stats["requests"]["GET"]["list"]["200"], 4, "{stats}");
}

/// A list body that breaks off on every attempt trips the breaker after two retries.
#[tokio::test]
async fn breaker_trips_on_cut_off_listing_body() {
    assert_breaker(&["--fault-cut-body", "1"], &[], "incomplete_listing").await;
}
