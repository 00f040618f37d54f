//! Harness for running `patrol audit` against a simulated tenant: policy files rewritten to
//! point at the tenant and a temporary state directory, token lists moved in time, and the
//! real binary run as a child process.

use std::path::{Path, PathBuf};
use std::process::Output;

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use super::Sim;

/// The reference policy, evaluated in the contract at [`CONTRACT_INSTANT`].
pub const POLICY_FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/policy.toml");
pub const EXPECTED_FIXTURE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/expected.json");
pub const CONTRACT_INSTANT: &str = "2026-12-01T00:00:00Z";
/// Client id and secret of the reference policy's tenant.
pub const CLIENT_ID: &str = "aaaa0000000000000000000000000001";
pub const CLIENT_SECRET: &str = "contract-secret";
pub const SECRET_ENV: &str = "PATROL_ACME_CLIENT_SECRET";

/// A temporary directory holding a policy file and a state directory.
pub struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("patrol-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Writes `policy` with `api_url` and `[state] dir` rewritten, plus `extra` lines
    /// appended to it, and returns its path.
    pub fn policy(&self, policy: &str, api_url: &str) -> PathBuf {
        let text = rewrite_policy(policy, api_url, &self.state_dir());
        let path = self.dir.path().join("policy.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes a file into the workspace and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

/// Replaces the value of every `api_url = ...` line and of `dir = ...` under `[state]`.
pub fn rewrite_policy(policy: &str, api_url: &str, state_dir: &Path) -> String {
    let mut section = String::new();
    let mut lines = Vec::new();
    for line in policy.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            section = trimmed.to_owned();
        }
        if trimmed.starts_with("api_url") {
            lines.push(format!("api_url = \"{api_url}\""));
        } else if section == "[state]" && trimmed.starts_with("dir") {
            lines.push(format!("dir = \"{}\"", state_dir.display()));
        } else {
            lines.push(line.to_owned());
        }
    }
    lines.join("\n") + "\n"
}

/// Sets `key = value` in `[section]` of a policy, replacing an existing line.
pub fn set_policy_value(policy: &str, section: &str, key: &str, value: &str) -> String {
    let header = format!("[{section}]");
    let mut in_section = false;
    let mut replaced = false;
    let mut lines = Vec::new();
    for line in policy.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            if in_section && !replaced {
                lines.push(format!("{key} = {value}"));
                replaced = true;
            }
            in_section = trimmed == header;
        }
        if in_section && trimmed.split('=').next().map(str::trim) == Some(key) {
            lines.push(format!("{key} = {value}"));
            replaced = true;
            continue;
        }
        lines.push(line.to_owned());
    }
    assert!(replaced || in_section, "section {header} not found");
    if !replaced {
        lines.push(format!("{key} = {value}"));
    }
    lines.join("\n") + "\n"
}

/// Moves every instant of a token list by `shift`, so that a list written for one instant
/// looks the same at another.
pub fn shift_tokens(tokens: &str, shift: TimeDelta) -> String {
    let mut list: Vec<Value> = serde_json::from_str(tokens).unwrap();
    for token in &mut list {
        for field in ["created", "lastUsed", "expirationDate"] {
            if let Some(Value::String(text)) = token.get_mut(field) {
                let instant = DateTime::parse_from_rfc3339(text)
                    .unwrap()
                    .with_timezone(&Utc)
                    + shift;
                *text = instant.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            }
        }
    }
    serde_json::to_string_pretty(&list).unwrap()
}

/// The time between the contract instant and now.
pub fn shift_to_now() -> TimeDelta {
    Utc::now() - parse_instant(CONTRACT_INSTANT)
}

pub fn parse_instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// Runs the real binary with `args` and the contract secret in the environment.
pub async fn patrol(args: &[&str]) -> Output {
    patrol_with_env(args, &[(SECRET_ENV, CLIENT_SECRET)]).await
}

pub async fn patrol_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_patrol"))
        .args(args)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("failed to run the patrol binary")
}

/// Parses stdout as the JSON report, with stderr in the panic message when it is not.
pub fn json_report(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not a JSON report ({error}); exit {:?}\nstdout:\n{}\nstderr:\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Describes a finished command for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The report's entry for token `id`.
pub fn report_token<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|token| token["id"] == id)
        .unwrap_or_else(|| panic!("token {id} is not in the report"))
}

/// Ids of the report's tokens with the given outcome, sorted.
pub fn ids_with_outcome(report: &Value, outcome: &str) -> Vec<String> {
    let mut ids: Vec<String> = report["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|token| token["outcome"] == outcome)
        .map(|token| token["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// A token as the list endpoint returns it, for generated tenants.
pub fn token_json(
    id: &str,
    name: &str,
    owner: &str,
    created: DateTime<Utc>,
    last_used: Option<DateTime<Utc>>,
) -> Value {
    serde_json::json!({
        "id": id,
        "name": name,
        "scope": ["sp:all-personal-access-tokens:read"],
        "owner": { "type": "IDENTITY", "id": owner, "name": format!("Owner {owner}") },
        "created": created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "lastUsed": last_used.map(|instant| instant.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        "managed": false,
        "accessTokenValiditySeconds": 43200,
        "expirationDate": null,
    })
}

/// Starts `patrol sim` serving `tokens` (JSON text) with the contract's client credentials.
pub fn start_sim(workspace: &Workspace, tokens: &str, extra: &[&str]) -> Sim {
    let path = workspace.write("tokens.json", tokens);
    let credentials = format!("{CLIENT_ID}:{CLIENT_SECRET}");
    let mut args = vec![
        "--tokens",
        path.to_str().unwrap(),
        "--client",
        credentials.as_str(),
    ];
    args.extend_from_slice(extra);
    Sim::start(&args)
}

/// The contract tokens moved in time so that now looks like the contract instant.
pub fn contract_tokens_now() -> String {
    shift_tokens(
        &std::fs::read_to_string(super::TOKENS_FIXTURE).unwrap(),
        shift_to_now(),
    )
}

/// Ids of the tokens the simulated tenant holds now.
pub async fn sim_token_ids(sim: &Sim) -> BTreeSet<String> {
    sim.control_get("/_sim/tokens")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|token| token["id"].as_str().unwrap().to_owned())
        .collect()
}
