//! Several tenants in one policy, tenant selection, and every API version's paths.

mod common;

use common::Sim;
use common::patrol::*;
use serde_json::Value;

fn two_tenant_policy(api_url: &str, second_version: &str) -> String {
    let policy = std::fs::read_to_string(POLICY_FIXTURE).unwrap();
    let second = format!(
        "[[tenant]]\nname = \"globex\"\napi_url = \"{api_url}\"\napi_version = \"{second_version}\"\n\
         client_id = \"{CLIENT_ID}\"\nclient_secret_env = \"{SECRET_ENV}\"\n\n[schedule]"
    );
    policy.replacen("[schedule]", &second, 1)
}

/// Splits concatenated pretty-printed JSON objects.
fn json_objects(stdout: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(stdout)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn every_tenant_is_audited_in_turn() {
    let credentials = format!("{CLIENT_ID}:{CLIENT_SECRET}");
    let sim = Sim::start(&["--tokens", common::TOKENS_FIXTURE, "--client", &credentials]);
    let workspace = Workspace::new();
    let policy = workspace.policy(
        &two_tenant_policy("http://127.0.0.1:9", "v1"),
        &sim.base_url,
    );
    let config = policy.to_str().unwrap();

    let output = patrol(&[
        "audit",
        "--config",
        config,
        "--as-of",
        CONTRACT_INSTANT,
        "--format",
        "json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let reports = json_objects(&output.stdout);
    let tenants: Vec<&str> = reports
        .iter()
        .map(|report| report["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["acme", "globex"]);
    assert_eq!(
        reports[0]["summary"], reports[1]["summary"],
        "both tenants serve the same tokens"
    );

    let output = patrol(&[
        "audit",
        "--config",
        config,
        "--tenant",
        "globex",
        "--as-of",
        CONTRACT_INSTANT,
        "--format",
        "json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let reports = json_objects(&output.stdout);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["tenant"], "globex");

    let output = patrol(&["audit", "--config", config, "--tenant", "initech"]).await;
    assert_eq!(output.status.code(), Some(64), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("acme, globex"));
}

#[tokio::test]
async fn worst_exit_code_wins_across_tenants() {
    let credentials = format!("{CLIENT_ID}:{CLIENT_SECRET}");
    let sim = Sim::start(&["--tokens", common::TOKENS_FIXTURE, "--client", &credentials]);
    let workspace = Workspace::new();
    // The second tenant points at a closed port: unreachable.
    let policy = two_tenant_policy("http://127.0.0.1:9", "v3");
    let path = workspace.policy(&policy, &sim.base_url);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut seen = 0;
    let text: String = text
        .lines()
        .map(|line| {
            if line.starts_with("api_url") {
                seen += 1;
                if seen == 2 {
                    // A short run timeout keeps the retries of the refused connection brief.
                    return "api_url = \"http://127.0.0.1:9\"\nrun_timeout = \"2s\"".to_owned();
                }
            }
            line.to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, text).unwrap();

    let output = patrol(&[
        "audit",
        "--config",
        path.to_str().unwrap(),
        "--as-of",
        CONTRACT_INSTANT,
        "--format",
        "json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(69), "{}", describe(&output));
    let reports = json_objects(&output.stdout);
    assert_eq!(reports.len(), 1, "the reachable tenant is still reported");
    assert_eq!(reports[0]["tenant"], "acme");
}

#[tokio::test]
async fn every_api_version_lists_the_tenant() {
    let credentials = format!("{CLIENT_ID}:{CLIENT_SECRET}");
    let sim = Sim::start(&["--tokens", common::TOKENS_FIXTURE, "--client", &credentials]);
    for version in ["v3", "beta", "v2024", "v2025", "v2026", "v1"] {
        let workspace = Workspace::new();
        let policy = std::fs::read_to_string(POLICY_FIXTURE).unwrap().replace(
            "api_version = \"v3\"",
            &format!("api_version = \"{version}\""),
        );
        let path = workspace.policy(&policy, &sim.base_url);
        let output = patrol(&[
            "audit",
            "--config",
            path.to_str().unwrap(),
            "--as-of",
            CONTRACT_INSTANT,
            "--format",
            "json",
        ])
        .await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{version}: {}",
            describe(&output)
        );
        assert_eq!(json_report(&output)["listing"]["listed"], 25, "{version}");
    }
    let stats = sim.stats().await;
    let versions: Vec<&str> = stats["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|window| window["version"].as_str().unwrap())
        .collect();
    for version in ["v3", "beta", "v2024", "v2025", "v2026", "v1"] {
        assert!(
            versions.contains(&version),
            "no request reached {version}: {versions:?}"
        );
    }
}
