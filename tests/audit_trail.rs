//! The audit trail through the real binary and a simulated tenant: a run killed in the
//! middle of its deletes is reconciled by the next one, the hash chain finds a changed
//! byte or a removed record, rotation keeps the chain across files, and `history` shows a
//! deleted token's story with what its owner needs to recreate it.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::Sim;
use common::patrol::*;
use serde_json::Value;

/// sysexits EX_DATAERR, the exit code of `verify-log` for a broken chain.
const DATA_ERROR_EXIT: i32 = 65;

/// How long a test waits for a condition it polls before it fails.
const POLL_LIMIT: Duration = Duration::from_secs(60);

/// Starts a tenant with `count` tokens unused for a year, plus the auditor's own token.
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
        let mut token = token_json(
            &format!("{index:032x}"),
            &format!("stale-{index}"),
            &format!("owner-{}", index % 3),
            now - TimeDelta::days(500),
            Some(now - TimeDelta::days(365) - TimeDelta::hours(index as i64)),
        );
        token["scope"] = serde_json::json!(["sp:scopes:all", "idn:sources:read"]);
        token["accessTokenValiditySeconds"] = Value::from(900);
        tokens.push(token);
    }
    start_sim(workspace, &serde_json::to_string(&tokens).unwrap(), extra)
}

/// Writes a policy that deletes tokens unused for 90 days after `grace`, with no budget in
/// the way.
fn stale_policy(workspace: &Workspace, sim: &Sim, grace: &str) -> PathBuf {
    let text = format!(
        r#"
[[tenant]]
name = "acme"
api_url = "http://127.0.0.1:9"
client_id = "{CLIENT_ID}"
client_secret_env = "{SECRET_ENV}"

[safety]
grace_period = "{grace}"
max_deletions_per_run = 100
max_deletion_percent = 100

[state]
dir = "/nonexistent"

[[rule]]
name = "unused-90d"
action = "delete"
last_used_older_than = "90d"
"#
    );
    workspace.policy(&text, &sim.base_url)
}

fn tenant_dir(workspace: &Workspace) -> PathBuf {
    workspace.state_dir().join("acme")
}

/// Reads every record of the tenant's log, rotated files included, oldest first.
fn log_records(workspace: &Workspace) -> Vec<Value> {
    let mut records = Vec::new();
    for path in log_files(&tenant_dir(workspace)) {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            records.push(serde_json::from_str(line).unwrap());
        }
    }
    records
}

/// Lists the log files, oldest first: `audit-NNNNNN.jsonl` by number, then `audit.jsonl`.
fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            name.starts_with("audit-") && name.ends_with(".jsonl")
        })
        .collect();
    rotated.sort();
    let active = dir.join("audit.jsonl");
    if active.exists() {
        rotated.push(active);
    }
    rotated
}

fn token_id(record: &Value) -> &str {
    record["token"]["id"].as_str().unwrap_or_default()
}

async fn verify_log(policy: &Path) -> std::process::Output {
    patrol(&["verify-log", "--config", policy.to_str().unwrap()]).await
}

#[tokio::test]
async fn killed_run_is_reconciled_by_next_run() {
    let workspace = Workspace::new();
    let sim = stale_tenant(&workspace, 12, &["--latency-ms", "1500"]);
    let policy = stale_policy(&workspace, &sim, "0s");

    // Deletes run 8 at a time, each getting its response after 1.5 s. Once all 12 intents are in the
    // log, the first deletes have their results and the last ones wait out the latency.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_patrol"))
        .args(["audit", "--config", policy.to_str().unwrap(), "--apply"])
        .env(SECRET_ENV, CLIENT_SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let log_path = tenant_dir(&workspace).join("audit.jsonl");
    let deadline = tokio::time::Instant::now() + POLL_LIMIT;
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.matches(r#""event":"delete_intent""#).count() == 12 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run did not write every delete intent in time:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), None, "the run ended before it was killed");

    // The killed run left intents without results and no run_finished.
    let records = log_records(&workspace);
    let killed_run = records[0]["run_id"].as_str().unwrap().to_owned();
    assert!(records.iter().all(|r| r["event"] != "run_finished"));
    let with_result: BTreeSet<&str> = records
        .iter()
        .filter(|r| r["event"] == "delete_result")
        .map(token_id)
        .collect();
    let open: BTreeSet<String> = records
        .iter()
        .filter(|r| r["event"] == "delete_intent")
        .map(token_id)
        .filter(|id| !with_result.contains(id))
        .map(str::to_owned)
        .collect();
    assert!(
        !with_result.is_empty(),
        "no delete finished before the kill"
    );
    assert!(!open.is_empty(), "no delete was in flight at the kill");

    // Deletes that got their response before the kill are gone, and the ones still waiting out
    // the latency were dropped with their connection. One more delete reaches the tenant
    // from elsewhere, as if the process had died just after sending it.
    sim.set_faults(serde_json::json!({})).await;
    let before = sim_token_ids(&sim).await;
    let still_listed: Vec<&String> = open.iter().filter(|id| before.contains(*id)).collect();
    assert!(
        still_listed.len() >= 2,
        "expected deletes still in flight at the kill, open {open:?}, listed {before:?}"
    );
    let processed = still_listed[0].clone();
    let bearer = sim.token(CLIENT_ID, CLIENT_SECRET).await;
    let (status, body) = sim
        .delete(&format!("/v3/personal-access-tokens/{processed}"), &bearer)
        .await;
    assert_eq!(status, 204, "{body}");
    let listed = sim_token_ids(&sim).await;

    let output = patrol(&[
        "audit",
        "--config",
        policy.to_str().unwrap(),
        "--dry-run",
        "--format",
        "json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let report = json_report(&output);

    let records = log_records(&workspace);
    let reconciled: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "delete_result" && r["intent_run_id"] == killed_run.as_str())
        .collect();
    let reconciled_ids: BTreeSet<String> =
        reconciled.iter().map(|r| token_id(r).to_owned()).collect();
    assert_eq!(
        reconciled_ids, open,
        "every open intent gets exactly one result"
    );
    assert_eq!(reconciled.len(), open.len());
    for record in &reconciled {
        let id = token_id(record);
        let expected = if listed.contains(id) {
            "not_deleted"
        } else {
            "deleted"
        };
        assert_eq!(record["result"], expected, "reconciled result of {id}");
        assert!(
            record["token"]["name"]
                .as_str()
                .unwrap()
                .starts_with("stale-")
        );
        assert_eq!(record["rules"], serde_json::json!(["unused-90d"]));
    }
    let result_of = |id: &str| {
        reconciled
            .iter()
            .find(|r| token_id(r) == id)
            .map(|r| r["result"].clone())
    };
    assert_eq!(result_of(&processed), Some(Value::from("deleted")));
    assert_eq!(result_of(still_listed[1]), Some(Value::from("not_deleted")));

    // Tokens whose delete never reached the tenant are still candidates.
    for id in open.iter().filter(|id| listed.contains(*id)) {
        assert_eq!(
            report_token(&report, id)["outcome"],
            "dry_run",
            "outcome of {id}"
        );
    }
    let recovered: BTreeSet<String> = report["recovered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovered, open);

    let finished = records
        .iter()
        .rfind(|r| r["event"] == "run_finished")
        .unwrap();
    assert_eq!(finished["open_intents"], 0);
    assert_eq!(finished["counts"]["recovered"], open.len());

    let verified = verify_log(&policy).await;
    assert_eq!(verified.status.code(), Some(0), "{}", describe(&verified));

    let pack = patrol(&[
        "report",
        "--config",
        policy.to_str().unwrap(),
        "--format",
        "markdown",
    ])
    .await;
    let pack = String::from_utf8_lossy(&pack.stdout);
    assert!(pack.contains("## Deletes of an interrupted run"), "{pack}");
    for id in &open {
        assert!(
            pack.contains(&format!("(`{id}`)")),
            "{id} is missing:\n{pack}"
        );
    }

    // The intents are closed: a third run reconciles nothing again.
    let again = patrol(&["audit", "--config", policy.to_str().unwrap(), "--dry-run"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    let after = log_records(&workspace);
    let reconciled_again = after
        .iter()
        .filter(|r| r["event"] == "delete_result" && r["intent_run_id"] == killed_run.as_str())
        .count();
    assert_eq!(reconciled_again, open.len());
}

/// Runs one dry-run audit of the reference tenant and returns the policy path.
async fn contract_run(workspace: &Workspace, sim: &Sim) -> PathBuf {
    let policy = workspace.policy(
        &std::fs::read_to_string(POLICY_FIXTURE).unwrap(),
        &sim.base_url,
    );
    let output = patrol(&["audit", "--config", policy.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    policy
}

fn contract_sim(workspace: &Workspace) -> Sim {
    start_sim(workspace, &contract_tokens_now(), &[])
}

#[tokio::test]
async fn verify_log_names_record_with_changed_byte() {
    let workspace = Workspace::new();
    let sim = contract_sim(&workspace);
    let policy = contract_run(&workspace, &sim).await;
    let verified = verify_log(&policy).await;
    assert_eq!(verified.status.code(), Some(0), "{}", describe(&verified));
    assert!(String::from_utf8_lossy(&verified.stdout).contains("acme: intact"));

    // Change one byte of the fifth record: a letter of the token's name.
    let path = tenant_dir(&workspace).join("audit.jsonl");
    let mut bytes = std::fs::read(&path).unwrap();
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(
            bytes
                .iter()
                .enumerate()
                .filter(|(_, byte)| **byte == b'\n')
                .map(|(index, _)| index + 1),
        )
        .collect();
    let fifth: Value = serde_json::from_slice(&bytes[line_starts[4]..line_starts[5] - 1]).unwrap();
    let name = fifth["token"]["name"].as_str().unwrap();
    let needle = format!("\"name\":\"{name}\"");
    let offset = line_starts[4]
        + String::from_utf8_lossy(&bytes[line_starts[4]..])
            .find(&needle)
            .unwrap()
        + "\"name\":\"".len();
    bytes[offset] = if bytes[offset] == b'x' { b'y' } else { b'x' };
    std::fs::write(&path, &bytes).unwrap();

    let verified = verify_log(&policy).await;
    assert_eq!(
        verified.status.code(),
        Some(DATA_ERROR_EXIT),
        "{}",
        describe(&verified)
    );
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(stdout.contains("audit.jsonl line 5 "), "{stdout}");
    assert!(stdout.contains("record 5"), "{stdout}");
    assert!(
        stdout.contains(&format!("token {}", token_id(&fifth))),
        "{stdout}"
    );
    assert!(stdout.contains("was changed"), "{stdout}");
}

/// The "run finished" log line carries the chain's last hash, so the journal keeps a copy
/// of the chain's end outside the state directory, the one that `verify-log` prints.
#[tokio::test]
async fn run_log_line_names_the_chain_end() {
    let workspace = Workspace::new();
    let sim = contract_sim(&workspace);
    let policy = workspace.policy(
        &std::fs::read_to_string(POLICY_FIXTURE).unwrap(),
        &sim.base_url,
    );
    let output = patrol(&["audit", "--config", policy.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let finished = stderr
        .lines()
        .find(|line| line.contains("run finished"))
        .unwrap_or_else(|| panic!("no run finished line in {stderr}"));
    let logged = finished
        .split_whitespace()
        .find_map(|field| field.strip_prefix("audit_log_last_hash="))
        .unwrap_or_else(|| panic!("no last hash in {finished}"));

    let records = log_records(&workspace);
    assert_eq!(logged, records.last().unwrap()["hash"], "{finished}");
    let verified = verify_log(&policy).await;
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(stdout.contains(&format!("last hash {logged}")), "{stdout}");
}

#[tokio::test]
async fn verify_log_finds_removed_record() {
    let workspace = Workspace::new();
    let sim = contract_sim(&workspace);
    let policy = contract_run(&workspace, &sim).await;

    let path = tenant_dir(&workspace).join("audit.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(2);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let verified = verify_log(&policy).await;
    assert_eq!(
        verified.status.code(),
        Some(DATA_ERROR_EXIT),
        "{}",
        describe(&verified)
    );
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(stdout.contains("audit.jsonl line 3 "), "{stdout}");
    assert!(stdout.contains("removed, inserted or moved"), "{stdout}");
}

#[tokio::test]
async fn size_limit_rotates_without_breaking_chain() {
    let workspace = Workspace::new();
    let sim = contract_sim(&workspace);
    let policy_text = set_policy_value(
        &std::fs::read_to_string(POLICY_FIXTURE).unwrap(),
        "state",
        "audit_log_max_bytes",
        "2500",
    );
    let policy = workspace.policy(&policy_text, &sim.base_url);
    for _ in 0..3 {
        let output = patrol(&["audit", "--config", policy.to_str().unwrap()]).await;
        assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    }

    let files = log_files(&tenant_dir(&workspace));
    assert!(files.len() >= 3, "expected several files, got {files:?}");
    assert!(files[0].ends_with("audit-000001.jsonl"), "{files:?}");
    for file in &files {
        let size = std::fs::metadata(file).unwrap().len();
        assert!(size <= 2500, "{} has {size} bytes", file.display());
    }
    // Each file's first record links to the last record of the file before it.
    for pair in files.windows(2) {
        let last: Value = serde_json::from_str(
            std::fs::read_to_string(&pair[0])
                .unwrap()
                .lines()
                .last()
                .unwrap(),
        )
        .unwrap();
        let first: Value = serde_json::from_str(
            std::fs::read_to_string(&pair[1])
                .unwrap()
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(first["prev"], last["hash"], "{pair:?}");
    }

    let verified = verify_log(&policy).await;
    assert_eq!(verified.status.code(), Some(0), "{}", describe(&verified));
    let stdout = String::from_utf8_lossy(&verified.stdout);
    let records = log_records(&workspace).len();
    assert!(
        stdout.contains(&format!(
            "intact, {records} records in {} files",
            files.len()
        )),
        "{stdout}"
    );

    // Removing a whole rotated file breaks the chain at the next file's first record.
    std::fs::remove_file(&files[1]).unwrap();
    let verified = verify_log(&policy).await;
    assert_eq!(
        verified.status.code(),
        Some(DATA_ERROR_EXIT),
        "{}",
        describe(&verified)
    );
    let stdout = String::from_utf8_lossy(&verified.stdout);
    let next_name = files[2].file_name().unwrap().to_str().unwrap();
    assert!(stdout.contains(&format!("{next_name} line 1 ")), "{stdout}");
}

#[tokio::test]
async fn history_shows_flag_grace_intent_and_deletion() {
    let workspace = Workspace::new();
    let sim = stale_tenant(&workspace, 1, &[]);
    let policy = stale_policy(&workspace, &sim, "2s");
    let id = format!("{:032x}", 0);
    let args = [
        "audit",
        "--config",
        policy.to_str().unwrap(),
        "--apply",
        "--format",
        "json",
    ];

    let first = patrol(&args).await;
    assert_eq!(first.status.code(), Some(0), "{}", describe(&first));
    assert_eq!(report_token(&json_report(&first), &id)["outcome"], "grace");

    // Run again until the grace period is over and the token is deleted.
    let deadline = tokio::time::Instant::now() + POLL_LIMIT;
    loop {
        let output = patrol(&args).await;
        assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
        let report = json_report(&output);
        let outcome = report_token(&report, &id)["outcome"].clone();
        if outcome == "deleted" {
            break;
        }
        assert_eq!(outcome, "grace");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the grace period never ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!sim_token_ids(&sim).await.contains(&id));

    let output = patrol(&[
        "history",
        "--config",
        policy.to_str().unwrap(),
        "--token",
        &id,
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("token {id} \"stale-0\", owned by Owner owner-0")));
    assert!(
        stdout.contains("scope [sp:scopes:all, idn:sources:read]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("; expirationDate null; userAwareTokenNeverExpires null; "),
        "{stdout}"
    );
    assert!(
        stdout.contains("; accessTokenValiditySeconds 900; "),
        "{stdout}"
    );
    let position = |needle: &str| {
        stdout
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} is missing from:\n{stdout}"))
    };
    let flagged = position("flagged for deletion by unused-90d; grace period until ");
    let intent = position("delete intent (rules unused-90d)");
    let deleted = position("  deleted\n");
    assert!(flagged < intent, "{stdout}");
    assert!(intent < deleted, "{stdout}");
    assert_eq!(
        stdout.matches("flagged for deletion by").count(),
        1,
        "{stdout}"
    );

    // The owner learns how to make the same token again.
    let request_line = stdout
        .lines()
        .skip_while(|line| !line.contains("its owner creates a token"))
        .nth(1)
        .unwrap_or_else(|| panic!("no create request in:\n{stdout}"));
    let request: Value = serde_json::from_str(request_line.trim()).unwrap();
    assert_eq!(
        request,
        serde_json::json!({
            "name": "stale-0",
            "scope": ["sp:scopes:all", "idn:sources:read"],
            "accessTokenValiditySeconds": 900,
        })
    );

    let unknown = patrol(&[
        "history",
        "--config",
        policy.to_str().unwrap(),
        "--token",
        "no-such-token",
    ])
    .await;
    assert_eq!(unknown.status.code(), Some(66), "{}", describe(&unknown));
}

#[tokio::test]
async fn audit_log_never_holds_the_secret() {
    let workspace = Workspace::new();
    let sim = stale_tenant(&workspace, 3, &[]);
    let policy = stale_policy(&workspace, &sim, "0s");
    let output = patrol(&["audit", "--config", policy.to_str().unwrap(), "--apply"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));

    for path in log_files(&tenant_dir(&workspace)) {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(CLIENT_SECRET),
            "{} holds the secret",
            path.display()
        );
    }
    for entry in std::fs::read_dir(tenant_dir(&workspace).join("reports")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(CLIENT_SECRET),
            "{} holds the secret",
            path.display()
        );
    }
    // Owners appear by id and name only.
    for record in log_records(&workspace) {
        if let Some(owner) = record["token"]["owner"].as_object() {
            let keys: BTreeSet<&str> = owner.keys().map(String::as_str).collect();
            assert_eq!(keys, BTreeSet::from(["id", "name"]));
        }
    }
}
