//! `patrol report` and the per-run report files, through the real binary and a simulated
//! tenant: the Markdown review pack matches its snapshot and its exemption blocks work when
//! pasted into the policy, and the last run renders in every format without the tenant.

mod common;

use std::path::{Path, PathBuf};

use chrono::TimeDelta;
use common::Sim;
use common::patrol::*;
use regex::Regex;
use serde_json::Value;

/// The reference tenant and policy moved in time so that now looks like the reference
/// instant. The shift is whole seconds, so the whole days between a token's instants and
/// the run do not depend on when the test runs.
struct Contract {
    sim: Sim,
    policy: PathBuf,
}

fn contract(workspace: &Workspace) -> Contract {
    let shift = TimeDelta::seconds(shift_to_now().num_seconds());
    let tokens = shift_tokens(
        &std::fs::read_to_string(common::TOKENS_FIXTURE).unwrap(),
        shift,
    );
    let sim = start_sim(workspace, &tokens, &[]);

    // Exemptions end relative to the tokens' instants too.
    let until = Regex::new(r#"(?m)^until = "(\d{4}-\d{2}-\d{2})"$"#).unwrap();
    let text = std::fs::read_to_string(POLICY_FIXTURE).unwrap();
    let text = until.replace_all(&text, |captures: &regex::Captures| {
        let midnight = parse_instant(&format!("{}T00:00:00Z", &captures[1]));
        format!("until = \"{}\"", (midnight + shift).to_rfc3339())
    });
    let policy = workspace.policy(&text, &sim.base_url);
    Contract { sim, policy }
}

async fn audit_json(policy: &Path) -> Value {
    let output = audit(policy, "json").await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    json_report(&output)
}

/// Runs `patrol audit` with the report on stdout in `format`.
async fn audit(policy: &Path, format: &str) -> std::process::Output {
    patrol(&[
        "audit",
        "--config",
        policy.to_str().unwrap(),
        "--format",
        format,
    ])
    .await
}

async fn report(policy: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["report", "--config", policy.to_str().unwrap()];
    args.extend_from_slice(extra);
    patrol(&args).await
}

/// Replaces instants, dates and run ids, which change with every run.
fn redact(text: &str) -> String {
    let instant =
        Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})").unwrap();
    let date = Regex::new(r#"until = "\d{4}-\d{2}-\d{2}""#).unwrap();
    let run_id = Regex::new(r"\d{8}T\d{6}Z-[0-9a-f]{8}").unwrap();
    let text = instant.replace_all(text, "[instant]");
    let text = date.replace_all(&text, r#"until = "[date]""#);
    run_id.replace_all(&text, "[run-id]").into_owned()
}

/// Extracts the `[[exemption]]` block that the review pack suggests for token `id`.
fn exemption_block(markdown: &str, id: &str) -> String {
    let heading = markdown
        .find(&format!("(`{id}`)"))
        .unwrap_or_else(|| panic!("token {id} is not in the pack"));
    let rest = &markdown[heading..];
    let start = rest
        .find("```toml\n")
        .expect("no TOML block after the token")
        + 8;
    let end = start + rest[start..].find("```").unwrap();
    rest[start..end].to_owned()
}

#[tokio::test]
async fn markdown_review_pack_matches_snapshot() {
    let workspace = Workspace::new();
    let Contract { sim: _sim, policy } = contract(&workspace);
    let printed = audit(&policy, "markdown").await;
    assert_eq!(printed.status.code(), Some(0), "{}", describe(&printed));

    let output = report(&policy, &["--format", "markdown"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let markdown = String::from_utf8(output.stdout).unwrap();
    insta::assert_snapshot!("review_pack", redact(&markdown));

    // Rendered from the stored JSON report, the pack is the one the run printed.
    assert_eq!(markdown, String::from_utf8(printed.stdout).unwrap());

    // The run stores its JSON report only; the pack is rendered on demand.
    let names: Vec<String> = std::fs::read_dir(workspace.state_dir().join("acme/reports"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.iter().all(|name| name.ends_with(".json")),
        "{names:?}"
    );
}

#[tokio::test]
async fn pasted_exemption_block_keeps_token() {
    let workspace = Workspace::new();
    let Contract { sim: _sim, policy } = contract(&workspace);
    let id = "bbbb0000000000000000000000000003";
    let first = audit_json(&policy).await;
    assert_eq!(report_token(&first, id)["outcome"], "grace");

    let output = report(&policy, &["--format", "markdown"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let block = exemption_block(&String::from_utf8(output.stdout).unwrap(), id);
    assert!(block.starts_with("[[exemption]]\n"), "{block}");
    assert!(block.contains(&format!("token_id = \"{id}\"")), "{block}");

    let mut text = std::fs::read_to_string(&policy).unwrap();
    text.push('\n');
    text.push_str(&block);
    std::fs::write(&policy, text).unwrap();
    let check = patrol(&["check-config", "--config", policy.to_str().unwrap()]).await;
    assert_eq!(check.status.code(), Some(0), "{}", describe(&check));
    // The block works as pasted, but its placeholder reason draws a warning.
    let checked = String::from_utf8_lossy(&check.stdout);
    assert!(
        checked.contains(&format!(
            "warning: the exemption token_id = {id} keeps the review pack's placeholder reason"
        )),
        "{checked}"
    );

    let second = audit_json(&policy).await;
    let token = report_token(&second, id);
    assert_eq!(token["outcome"], "exempt");
    assert_eq!(
        token["exemption"]["reason"],
        "REPLACE: why this token is still needed, and who agreed"
    );
    assert_eq!(token["exemption"]["expired"], false);
    let until = parse_instant(token["exemption"]["until"].as_str().unwrap());
    let as_of = parse_instant(second["as_of"].as_str().unwrap());
    assert!(until - as_of > TimeDelta::days(80), "until {until}");
    assert!(until - as_of <= TimeDelta::days(90), "until {until}");

    // The log records that the exemption started to keep the token.
    let log = std::fs::read_to_string(workspace.state_dir().join("acme/audit.jsonl")).unwrap();
    let applied: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|record| record["event"] == "exemption_applied" && record["token"]["id"] == id)
        .collect();
    assert_eq!(applied.len(), 1, "{log}");
    assert_eq!(
        applied[0]["exemption"]["selector"],
        format!("token_id = {id}")
    );

    let third = patrol(&["audit", "--config", policy.to_str().unwrap()]).await;
    assert_eq!(third.status.code(), Some(0), "{}", describe(&third));
    let logged = String::from_utf8_lossy(&third.stderr);
    assert!(logged.contains("placeholder reason"), "{logged}");
    assert!(logged.contains(&format!("token_id = {id}")), "{logged}");
}

#[tokio::test]
async fn report_renders_last_run_without_tenant() {
    let workspace = Workspace::new();
    let Contract { sim, policy } = contract(&workspace);

    let none = report(&policy, &[]).await;
    assert_eq!(none.status.code(), Some(66), "{}", describe(&none));

    let audit_stdout = audit(&policy, "json").await;
    assert_eq!(audit_stdout.status.code(), Some(0));
    let table = patrol(&["audit", "--config", policy.to_str().unwrap()]).await;
    drop(sim);

    // Read back, the last run renders as the run itself did, byte for byte.
    let last_file = std::fs::read(workspace.state_dir().join("acme/reports/last.json")).unwrap();
    let last_json = report(&policy, &["--format", "json"]).await;
    assert_eq!(last_json.status.code(), Some(0), "{}", describe(&last_json));
    assert_eq!(
        String::from_utf8_lossy(&last_json.stdout),
        String::from_utf8_lossy(&last_file)
    );
    let table_run: Value = serde_json::from_slice(&last_file).unwrap();
    let table_report = report(&policy, &["--format", "table"]).await;
    assert_eq!(table_report.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&table_report.stdout),
        String::from_utf8_lossy(&table.stdout)
    );

    // The report file of an earlier run is what that run printed.
    let first_run = json_report(&audit_stdout);
    let first_file = std::fs::read(workspace.state_dir().join(format!(
        "acme/reports/{}.json",
        first_run["run_id"].as_str().unwrap()
    )))
    .unwrap();
    assert_eq!(first_file, audit_stdout.stdout);

    // An earlier run that is kept renders by its id, in any format.
    let first_id = first_run["run_id"].as_str().unwrap();
    let by_id = report(&policy, &["--format", "json", "--run", first_id]).await;
    assert_eq!(by_id.status.code(), Some(0), "{}", describe(&by_id));
    assert_eq!(by_id.stdout, audit_stdout.stdout);
    let pack = report(&policy, &["--format", "markdown", "--run", first_id]).await;
    assert_eq!(pack.status.code(), Some(0), "{}", describe(&pack));
    assert!(String::from_utf8_lossy(&pack.stdout).contains(first_id));
    let unknown = report(&policy, &["--run", "20200101T000000Z-00000000"]).await;
    assert_eq!(unknown.status.code(), Some(66), "{}", describe(&unknown));
    let logged = String::from_utf8_lossy(&unknown.stderr);
    assert!(logged.contains("\"20200101T000000Z-00000000\""), "{logged}");
    let second_id = json_report(&last_json)["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Two runs within one second may list in either order.
    let listed = [
        format!("Kept runs of acme, newest first: {second_id}, {first_id}."),
        format!("Kept runs of acme, newest first: {first_id}, {second_id}."),
    ];
    assert!(listed.iter().any(|ids| logged.contains(ids)), "{logged}");
    assert!(logged.contains("not found"), "{logged}");
    let last = report(&policy, &["--run", "last"]).await;
    assert_eq!(last.status.code(), Some(66), "{}", describe(&last));

    let csv = report(&policy, &["--format", "csv"]).await;
    assert_eq!(csv.status.code(), Some(0), "{}", describe(&csv));
    let csv = String::from_utf8(csv.stdout).unwrap();
    let rows: Vec<&str> = csv.split("\r\n").filter(|row| !row.is_empty()).collect();
    assert!(rows[0].starts_with("tenant,run_id,as_of,id,name,owner_id,owner_name,"));
    assert_eq!(
        rows.len(),
        1 + table_run["tokens"].as_array().unwrap().len()
    );

    let owner = "2c91808568c529c60168cca6f90c1313";
    let owned = report(&policy, &["--format", "json", "--owner", owner]).await;
    assert_eq!(owned.status.code(), Some(0), "{}", describe(&owned));
    let owned = json_report(&owned);
    let tokens = owned["tokens"].as_array().unwrap();
    assert!(!tokens.is_empty());
    assert!(tokens.iter().all(|token| token["owner"]["id"] == owner));
    assert_eq!(owned["summary"]["listed"], tokens.len());
}

#[tokio::test]
async fn forecast_writes_no_report() {
    let workspace = Workspace::new();
    let Contract { sim: _sim, policy } = contract(&workspace);
    let tomorrow = (chrono::Utc::now() + TimeDelta::days(1)).to_rfc3339();
    let output = patrol(&[
        "audit",
        "--config",
        policy.to_str().unwrap(),
        "--as-of",
        &tomorrow,
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let dir = workspace.state_dir().join("acme");
    assert!(!dir.join("reports").exists());
    assert!(!dir.join("audit.jsonl").exists());
    let none = report(&policy, &[]).await;
    assert_eq!(none.status.code(), Some(66), "{}", describe(&none));
}

#[tokio::test]
async fn report_keeps_tripped_breaker() {
    let workspace = Workspace::new();
    let Contract { sim: _sim, policy } = contract(&workspace);
    let mut text = std::fs::read_to_string(&policy).unwrap();
    text = set_policy_value(&text, "safety", "grace_period", "\"0s\"");
    text = set_policy_value(&text, "safety", "max_deletion_percent", "1");
    std::fs::write(&policy, text).unwrap();

    let table = patrol(&["audit", "--config", policy.to_str().unwrap()]).await;
    assert_eq!(table.status.code(), Some(3), "{}", describe(&table));
    let table_stdout = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(table_stdout.contains("BREAKER TRIPPED (deletion_percent)"));

    let again = report(&policy, &["--format", "table"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout), table_stdout);

    let last_file = std::fs::read(workspace.state_dir().join("acme/reports/last.json")).unwrap();
    let json = report(&policy, &["--format", "json"]).await;
    assert_eq!(
        String::from_utf8_lossy(&json.stdout),
        String::from_utf8_lossy(&last_file)
    );
    let stored: Value = serde_json::from_slice(&last_file).unwrap();
    assert_eq!(stored["breaker"]["kind"], "deletion_percent");
    assert_eq!(stored["breaker"]["max_percent"], 1.0);

    let markdown = report(&policy, &["--format", "markdown"]).await;
    let markdown = String::from_utf8_lossy(&markdown.stdout);
    assert!(
        markdown.contains("**Breaker tripped (deletion_percent):**"),
        "{markdown}"
    );
    assert!(
        markdown.contains("- Outcome: held by the deletion_percent breaker"),
        "{markdown}"
    );
}

#[tokio::test]
async fn json_report_prints_without_report_files() {
    let workspace = Workspace::new();
    let Contract { sim: _sim, policy } = contract(&workspace);
    let tenant_dir = workspace.state_dir().join("acme");
    std::fs::create_dir_all(&tenant_dir).unwrap();
    // A file where the reports directory belongs makes writing the reports fail.
    std::fs::write(tenant_dir.join("reports"), b"not a directory").unwrap();

    let output = audit(&policy, "json").await;
    // The report still reaches stdout, but `patrol report` would show an older run, so the
    // failed write shows in the exit code.
    assert_eq!(output.status.code(), Some(74), "{}", describe(&output));
    let run = json_report(&output);
    let tokens = run["tokens"].as_array().unwrap();
    assert_eq!(
        tokens.len(),
        run["listing"]["listed"].as_u64().unwrap() as usize
    );
    assert!(!tokens.is_empty());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("failed to write the run's report"),
        "{}",
        describe(&output)
    );
}
