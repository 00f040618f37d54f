//! `patrol audit --apply` against a simulated tenant: exactly the right tokens disappear,
//! every delete is bracketed in the audit log, and throttling never loses a delete.

mod common;

use std::collections::BTreeSet;

use chrono::{TimeDelta, Utc};
use common::Sim;
use common::patrol::*;
use serde_json::Value;

/// The contract tokens moved in time so that now looks like the contract instant.
fn contract_tenant(workspace: &Workspace, extra: &[&str]) -> Sim {
    start_sim(workspace, &contract_tokens_now(), extra)
}

fn contract_ids(predicate: impl Fn(&Value) -> bool) -> BTreeSet<String> {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(EXPECTED_FIXTURE).unwrap()).unwrap();
    expected["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|token| predicate(token))
        .map(|token| token["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn apply_deletes_exactly_unprotected_delete_verdicts() {
    let workspace = Workspace::new();
    let sim = contract_tenant(&workspace, &[]);
    let before = sim_token_ids(&sim).await;
    let policy_text = set_policy_value(
        &std::fs::read_to_string(POLICY_FIXTURE).unwrap(),
        "safety",
        "grace_period",
        "\"0s\"",
    );
    let policy = workspace.policy(&policy_text, &sim.base_url);

    let output = patrol(&[
        "audit",
        "--config",
        policy.to_str().unwrap(),
        "--apply",
        "--format",
        "json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let report = json_report(&output);
    assert_eq!(report["dry_run"], false);

    // With no grace period, every token the contract puts in grace is deleted at once.
    let due = contract_ids(|token| token["outcome"] == "grace");
    let deleted: BTreeSet<String> = ids_with_outcome(&report, "deleted").into_iter().collect();
    assert_eq!(deleted, due);

    let after = sim_token_ids(&sim).await;
    let expected_after: BTreeSet<String> = before.difference(&due).cloned().collect();
    assert_eq!(after, expected_after);
    assert!(
        after.contains(CLIENT_ID),
        "the auditor's own token was deleted"
    );
    for managed in contract_ids(|token| {
        token["name"]
            .as_str()
            .unwrap()
            .starts_with("workflow-managed")
    }) {
        assert!(
            after.contains(&managed),
            "managed token {managed} was deleted"
        );
    }
    for exempt in contract_ids(|token| token["outcome"] == "exempt") {
        assert!(after.contains(&exempt), "exempt token {exempt} was deleted");
    }

    // Every delete has a synced intent before it and a result after it, with metadata.
    let log = std::fs::read_to_string(workspace.state_dir().join("acme/audit.jsonl")).unwrap();
    let records: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    for id in &due {
        let position = |event: &str| {
            records
                .iter()
                .position(|record| record["event"] == event && record["token"]["id"] == id.as_str())
                .unwrap_or_else(|| panic!("no {event} record for {id}"))
        };
        let intent = position("delete_intent");
        let result = position("delete_result");
        assert!(intent < result, "the intent of {id} follows its result");
        assert_eq!(records[result]["result"], "deleted");
        let token = &records[intent]["token"];
        for field in [
            "name",
            "owner",
            "scope",
            "created",
            "accessTokenValiditySeconds",
        ] {
            assert!(
                token.get(field).is_some(),
                "the intent of {id} lacks {field}"
            );
        }
        assert!(!records[intent]["rules"].as_array().unwrap().is_empty());
    }
    assert!(
        !log.contains(CLIENT_SECRET),
        "the audit log contains the client secret"
    );

    // A second run finds nothing more to delete.
    let again = patrol(&[
        "audit",
        "--config",
        policy.to_str().unwrap(),
        "--apply",
        "--format",
        "json",
    ])
    .await;
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    assert!(ids_with_outcome(&json_report(&again), "deleted").is_empty());
    assert_eq!(sim_token_ids(&sim).await, expected_after);
}

#[tokio::test]
async fn dry_run_default_deletes_nothing() {
    let workspace = Workspace::new();
    let sim = contract_tenant(&workspace, &[]);
    let before = sim_token_ids(&sim).await;
    let policy_text = set_policy_value(
        &std::fs::read_to_string(POLICY_FIXTURE).unwrap(),
        "safety",
        "grace_period",
        "\"0s\"",
    );
    let policy = workspace.policy(&policy_text, &sim.base_url);

    let output = patrol(&[
        "audit",
        "--config",
        policy.to_str().unwrap(),
        "--format",
        "json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let report = json_report(&output);
    assert_eq!(report["dry_run"], true);
    let would_delete: BTreeSet<String> = ids_with_outcome(&report, "dry_run").into_iter().collect();
    assert_eq!(
        would_delete,
        contract_ids(|token| token["outcome"] == "grace")
    );
    assert_eq!(sim_token_ids(&sim).await, before);
    assert_eq!(sim.stats().await["deletes"], 0);
}

/// A tenant of `count` tokens unused for a year, plus the auditor's own token.
fn stale_tenant(workspace: &Workspace, count: usize, extra: &[&str]) -> Sim {
    let now = Utc::now();
    let mut tokens = vec![token_json(
        CLIENT_ID,
        "patrol-auditor",
        "auditor-owner",
        now - TimeDelta::days(400),
        Some(now),
    )];
    for index in 0..count {
        let last_used = now - TimeDelta::days(365) - TimeDelta::hours(index as i64);
        tokens.push(token_json(
            &format!("{index:032x}"),
            &format!("stale-{index}"),
            &format!("owner-{}", index % 7),
            now - TimeDelta::days(500),
            Some(last_used),
        ));
    }
    start_sim(workspace, &serde_json::to_string(&tokens).unwrap(), extra)
}

/// A policy deleting tokens unused for 90 days, with the given rate limit and safety lines.
fn stale_policy(rate_limit: u32, window: &str, safety: &str) -> String {
    format!(
        r#"
[[tenant]]
name = "acme"
api_url = "http://127.0.0.1:9"
client_id = "{CLIENT_ID}"
client_secret_env = "{SECRET_ENV}"
rate_limit = {rate_limit}
rate_limit_window = "{window}"

[safety]
{safety}

[state]
dir = "/nonexistent"

[[rule]]
name = "unused-90d"
action = "delete"
last_used_older_than = "90d"
"#
    )
}

#[tokio::test]
async fn throttled_tenant_still_gets_every_delete() {
    let workspace = Workspace::new();
    let sim = stale_tenant(
        &workspace,
        40,
        &[
            "--rate-limit",
            "20",
            "--rate-window",
            "2",
            "--fault-429",
            "0.3",
            "--fault-retry-after",
            "1",
        ],
    );
    let policy_text = stale_policy(
        20,
        "2s",
        "grace_period = \"0s\"\nmax_deletions_per_run = 100\nmax_deletion_percent = 100",
    );
    let policy = workspace.policy(&policy_text, &sim.base_url);

    let output = patrol(&[
        "audit",
        "--config",
        policy.to_str().unwrap(),
        "--apply",
        "--format",
        "json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let report = json_report(&output);
    assert_eq!(ids_with_outcome(&report, "deleted").len(), 40);
    assert!(ids_with_outcome(&report, "failed").is_empty());
    assert_eq!(
        sim_token_ids(&sim).await,
        BTreeSet::from([CLIENT_ID.to_owned()])
    );

    let stats = sim.stats().await;
    assert!(
        stats["too_many_requests"].as_u64().unwrap() > 0,
        "no 429 was injected: {stats}"
    );
    assert_eq!(
        stats["rate_limited"], 0,
        "patrol went over the rate limit: {stats}"
    );
    for window in stats["windows"].as_array().unwrap() {
        let peak = window["max_in_window"].as_u64().unwrap();
        assert!(peak <= 20, "{peak} requests in one 2 s window: {stats}");
    }
    assert!(report["requests"]["rate_limited"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn stricter_server_limit_slows_but_loses_nothing() {
    let workspace = Workspace::new();
    // The tenant allows 5 requests per second; patrol is configured for ISC's 100 per 10 s.
    let sim = stale_tenant(&workspace, 20, &["--rate-limit", "5", "--rate-window", "1"]);
    let policy_text = stale_policy(
        100,
        "10s",
        "grace_period = \"0s\"\nmax_deletions_per_run = 100\nmax_deletion_percent = 100",
    );
    let policy = workspace.policy(&policy_text, &sim.base_url);

    let output = patrol(&[
        "audit",
        "--config",
        policy.to_str().unwrap(),
        "--apply",
        "--format",
        "json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let report = json_report(&output);
    assert_eq!(ids_with_outcome(&report, "deleted").len(), 20);
    assert_eq!(
        sim_token_ids(&sim).await,
        BTreeSet::from([CLIENT_ID.to_owned()])
    );
    assert!(sim.stats().await["rate_limited"].as_u64().unwrap() > 0);
}
