//! Snapshots of what people read: the help texts and the table report of the contract.

mod common;

use common::Sim;
use common::patrol::*;

fn help(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_patrol"))
        .args(args)
        .output()
        .expect("failed to run the patrol binary");
    assert!(output.status.success(), "{args:?} failed");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn top_level_help() {
    insta::assert_snapshot!(help(&["--help"]));
}

#[test]
fn audit_help() {
    insta::assert_snapshot!(help(&["audit", "--help"]));
}

#[test]
fn usage_error_exits_64() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_patrol"))
        .args(["audit", "--apply", "--as-of", "2026-12-01"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--as-of"));
}

#[tokio::test]
async fn contract_table_report() {
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
    insta::assert_snapshot!(String::from_utf8(output.stdout).unwrap());
}
