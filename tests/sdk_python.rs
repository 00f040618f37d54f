//! SailPoint's official Python SDK (PyPI `sailpoint`, the version pinned in
//! `tests/sdk/requirements.txt`) against the real `patrol sim` binary, unchanged: it gets a
//! token, lists with and without filters, deletes a token, and meets the documented 404 on
//! a second delete. `tests/sdk/pat_roundtrip.py` drives the SDK and prints what it saw.
//!
//! The SDK lives in `.venv-sdk`, which `scripts/sdk-venv.sh` creates. Without it (or with
//! another SDK version in it) the test fails when the environment variable `CI` is set,
//! and otherwise prints why it skipped to stderr and passes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Sim, TOKENS_FIXTURE, fixture_ids};
use serde_json::Value;

const CLIENT_ID: &str = "aaaa0000000000000000000000000001";
const CLIENT_SECRET: &str = "sdk-secret-41c2";
const DELETED_ID: &str = "bbbb0000000000000000000000000003";

fn project_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The pinned SDK version, from `sailpoint==X` in the requirements file.
fn pinned_version() -> String {
    let requirements =
        std::fs::read_to_string(project_root().join("tests/sdk/requirements.txt")).unwrap();
    requirements
        .lines()
        .find_map(|line| line.trim().strip_prefix("sailpoint=="))
        .expect("tests/sdk/requirements.txt pins sailpoint")
        .to_owned()
}

/// Finds the venv's interpreter, or returns why it cannot run the pinned SDK.
fn sdk_python() -> Result<PathBuf, String> {
    let python = project_root().join(".venv-sdk/bin/python");
    if !python.exists() {
        return Err(format!("{} does not exist", python.display()));
    }
    let output = Command::new(&python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('sailpoint'))",
        ])
        .output()
        .map_err(|error| format!("failed to run {}: {error}", python.display()))?;
    let installed = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let pinned = pinned_version();
    if !output.status.success() || installed != pinned {
        return Err(format!(
            "{} has sailpoint {:?}, the test needs {pinned}",
            python.display(),
            if installed.is_empty() {
                "missing"
            } else {
                &installed
            }
        ));
    }
    Ok(python)
}

#[tokio::test]
async fn python_sdk_lists_and_deletes_tokens() {
    let python = match sdk_python() {
        Ok(python) => python,
        Err(reason) if std::env::var_os("CI").is_some() => {
            panic!("{reason}; run scripts/sdk-venv.sh to install the Python SDK")
        }
        Err(reason) => {
            eprintln!(
                "skipped python_sdk_lists_and_deletes_tokens: {reason}; \
                 run scripts/sdk-venv.sh to enable it"
            );
            return;
        }
    };

    let client = format!("{CLIENT_ID}:{CLIENT_SECRET}");
    let sim = Sim::start(&["--tokens", TOKENS_FIXTURE, "--client", &client]);
    // The SDK reads ./config.json when it exists, so run it in an empty directory.
    let workdir = tempfile::tempdir().unwrap();
    let output = Command::new(&python)
        .arg(project_root().join("tests/sdk/pat_roundtrip.py"))
        .current_dir(workdir.path())
        .env_remove("SAIL_BASE_URL")
        .env_remove("SAIL_CLIENT_ID")
        .env_remove("SAIL_CLIENT_SECRET")
        .env("SIM_BASE_URL", &sim.base_url)
        .env("SIM_CLIENT_ID", CLIENT_ID)
        .env("SIM_CLIENT_SECRET", CLIENT_SECRET)
        .env("SIM_CUTOFF", "2026-05-01T10:00:00.123456Z")
        .env("SIM_DELETE_ID", DELETED_ID)
        .output()
        .expect("failed to run the SDK script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK script failed ({}):\n{stderr}\n{stdout}",
        output.status
    );
    let seen: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"));

    let ids = |key: &str| -> Vec<String> {
        serde_json::from_value(seen[key].clone()).unwrap_or_else(|_| panic!("{key}: {seen}"))
    };
    assert_eq!(ids("all"), fixture_ids(&(1..=25).collect::<Vec<_>>()));
    assert_eq!(ids("stale"), fixture_ids(&[11, 13, 14, 15, 23, 25]));
    assert_eq!(ids("never_used"), fixture_ids(&[8, 9, 10, 22]));
    assert_eq!(
        ids("mine"),
        fixture_ids(&[1, 2, 10, 13, 14, 15, 18, 19, 20])
    );
    let after_delete = ids("after_delete");
    assert_eq!(after_delete.len(), 24);
    assert!(!after_delete.contains(&DELETED_ID.to_owned()));
    assert_eq!(seen["second_delete_status"], 404);

    let parsed = &seen["parsed"];
    assert_eq!(
        parsed["bbbb0000000000000000000000000025"]["last_used"],
        "2026-02-01T12:00:00+02:00"
    );
    assert_eq!(
        parsed["bbbb0000000000000000000000000023"]["last_used"],
        "2026-05-01T10:00:00.123456+00:00"
    );
    assert_eq!(
        parsed["bbbb0000000000000000000000000010"]["last_used"],
        Value::Null
    );
    assert_eq!(parsed["bbbb0000000000000000000000000011"]["managed"], true);

    let remaining = sim.control_get("/_sim/tokens").await;
    let remaining: Vec<&str> = remaining
        .as_array()
        .unwrap()
        .iter()
        .map(|token| token["id"].as_str().unwrap())
        .collect();
    assert_eq!(remaining.len(), 24);
    assert!(!remaining.contains(&DELETED_ID));

    let stats = sim.stats().await;
    assert_eq!(stats["deletes"], 1, "{stats}");
    assert_eq!(stats["token_requests"], 1, "{stats}");
    assert_eq!(stats["requests"]["GET"]["list"]["200"], 5, "{stats}");
    assert_eq!(stats["requests"]["DELETE"]["delete"]["404"], 1, "{stats}");
}
