//! The reference policy against the reference token list, through the real binary and a
//! simulated tenant over HTTP, compared token by token with the expected verdicts.

mod common;

use common::Sim;
use common::patrol::*;
use serde_json::Value;

fn expected_tokens() -> Vec<Value> {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(EXPECTED_FIXTURE).unwrap()).unwrap();
    expected["tokens"].as_array().unwrap().clone()
}

fn instant_or_null(value: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    value.as_str().map(parse_instant)
}

#[tokio::test]
async fn contract_verdicts_match_expected() {
    let credentials = format!("{CLIENT_ID}:{CLIENT_SECRET}");
    let sim = Sim::start(&["--tokens", common::TOKENS_FIXTURE, "--client", &credentials]);
    let workspace = Workspace::new();
    let policy = workspace.policy(
        &std::fs::read_to_string(POLICY_FIXTURE).unwrap(),
        &sim.base_url,
    );

    let output = patrol(&[
        "audit",
        "--config",
        policy.to_str().unwrap(),
        "--as-of",
        CONTRACT_INSTANT,
        "--format",
        "json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let report = json_report(&output);

    assert_eq!(report["tenant"], "acme");
    assert_eq!(
        parse_instant(report["as_of"].as_str().unwrap()),
        parse_instant(CONTRACT_INSTANT)
    );
    assert_eq!(report["dry_run"], true);
    let expected = expected_tokens();
    assert_eq!(report["tokens"].as_array().unwrap().len(), expected.len());

    for want in &expected {
        let id = want["id"].as_str().unwrap();
        let got = report_token(&report, id);
        assert_eq!(got["name"], want["name"], "name of {id}");
        assert_eq!(got["verdict"], want["verdict"], "verdict of {id}");
        assert_eq!(got["outcome"], want["outcome"], "outcome of {id}");
        assert_eq!(got["rules"], want["rules"], "rules of {id}");
        assert_eq!(
            got["protections"], want["protections"],
            "protections of {id}"
        );
        assert_eq!(
            instant_or_null(&got["grace_until"]),
            instant_or_null(&want["grace_until"]),
            "grace_until of {id}"
        );
        for field in [
            "owner",
            "created",
            "last_used",
            "expiration_date",
            "managed",
            "reason",
        ] {
            assert!(got.get(field).is_some(), "{id} lacks {field}");
        }
    }
}

#[tokio::test]
async fn contract_forecast_writes_no_state() {
    let credentials = format!("{CLIENT_ID}:{CLIENT_SECRET}");
    let sim = Sim::start(&["--tokens", common::TOKENS_FIXTURE, "--client", &credentials]);
    let workspace = Workspace::new();
    let policy = workspace.policy(
        &std::fs::read_to_string(POLICY_FIXTURE).unwrap(),
        &sim.base_url,
    );

    let output = patrol(&[
        "audit",
        "--config",
        policy.to_str().unwrap(),
        "--as-of",
        CONTRACT_INSTANT,
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let state = workspace.state_dir().join("acme").join("state.json");
    assert!(!state.exists(), "a forecast wrote {}", state.display());
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("old-report-exporter"), "{table}");
    assert!(table.contains("25 tokens listed"), "{table}");
}

#[tokio::test]
async fn wrong_secret_exits_unavailable() {
    let credentials = format!("{CLIENT_ID}:{CLIENT_SECRET}");
    let sim = Sim::start(&["--tokens", common::TOKENS_FIXTURE, "--client", &credentials]);
    let workspace = Workspace::new();
    let policy = workspace.policy(
        &std::fs::read_to_string(POLICY_FIXTURE).unwrap(),
        &sim.base_url,
    );

    let output = patrol_with_env(
        &["audit", "--config", policy.to_str().unwrap()],
        &[(SECRET_ENV, "not-the-secret")],
    )
    .await;
    assert_eq!(output.status.code(), Some(69), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("acme"), "{stderr}");
    assert!(
        !stderr.contains("not-the-secret"),
        "the secret leaked: {stderr}"
    );
}

#[tokio::test]
async fn missing_secret_exits_config() {
    let workspace = Workspace::new();
    let policy = workspace.policy(
        &std::fs::read_to_string(POLICY_FIXTURE).unwrap(),
        "http://127.0.0.1:9",
    );
    let output = patrol_with_env(&["audit", "--config", policy.to_str().unwrap()], &[]).await;
    assert_eq!(output.status.code(), Some(78), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains(SECRET_ENV));
}

#[tokio::test]
async fn log_section_applies_to_audit() {
    let credentials = format!("{CLIENT_ID}:{CLIENT_SECRET}");
    let sim = Sim::start(&["--tokens", common::TOKENS_FIXTURE, "--client", &credentials]);
    let workspace = Workspace::new();
    let policy_text = format!(
        "{}\n[log]\nlevel = \"warn\"\nformat = \"json\"\n",
        std::fs::read_to_string(POLICY_FIXTURE).unwrap()
    );
    let policy = workspace.policy(&policy_text, &sim.base_url);

    let output = patrol_with_env(
        &[
            "audit",
            "--config",
            policy.to_str().unwrap(),
            "--as-of",
            CONTRACT_INSTANT,
        ],
        &[(SECRET_ENV, CLIENT_SECRET), ("RUST_LOG", "")],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("run started"),
        "INFO lines despite level = \"warn\": {stderr}"
    );
}
