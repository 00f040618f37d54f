//! `patrol run` and real signals: SIGHUP reloads (or rejects) the policy file, SIGTERM lets
//! the deletes in flight finish and exits 0.

mod common;
mod daemon_support;

use std::collections::BTreeMap;
use std::time::Duration;

use common::patrol::*;
use daemon_support::*;
use serde_json::Value;

fn success_count(scrape: &Scrape) -> f64 {
    scrape
        .value(
            "patrol_runs_total",
            &[("tenant", "acme"), ("result", "success")],
        )
        .unwrap_or(0.0)
}

#[tokio::test]
async fn sighup_reload_validates_the_file() {
    let workspace = Workspace::new();
    let shift = shift_to_now();
    let sim = contract_sim(&workspace, shift, &[]);
    let original = daemon_policy("* * * * * *", shift);
    let policy = workspace.policy(&original, &sim.base_url);
    let daemon = Daemon::start(&policy, &[]);
    let keep = [("tenant", "acme"), ("verdict", "keep")];

    daemon
        .wait_for_metrics("a successful run", |scrape| success_count(scrape) >= 1.0)
        .await;

    // An invalid file is rejected: logged, counted, and the old policy keeps running.
    workspace.policy("[[tenant]\nname = \"acme\"\n", &sim.base_url);
    daemon.signal("HUP");
    let rejected = daemon.wait_for_log("the rejected reload", |record| {
        message(record).starts_with("configuration reload rejected")
    });
    assert_eq!(rejected["level"], "ERROR");
    assert!(
        message(&rejected).contains("invalid TOML"),
        "the error is not in the log: {rejected}"
    );
    let after_rejection = daemon
        .wait_for_metrics("the counted failure", |scrape| {
            scrape.value("patrol_config_reloads_total", &[("result", "failure")]) == Some(1.0)
        })
        .await;
    assert_eq!(
        after_rejection.value("patrol_config_last_reload_successful", &[]),
        Some(0.0)
    );
    let runs_at_rejection = success_count(&after_rejection);
    let later = daemon
        .wait_for_metrics("two more runs on the old policy", |scrape| {
            success_count(scrape) >= runs_at_rejection + 2.0
        })
        .await;
    assert_eq!(later.value("patrol_tokens", &keep), Some(7.0));

    // A valid file that reports every token changes the next run.
    let report_all = format!(
        "{original}\n[[rule]]\nname = \"report-everything\"\naction = \"report\"\nname_matches = \".\"\n"
    );
    workspace.policy(&report_all, &sim.base_url);
    daemon.signal("HUP");
    daemon.wait_for_log("the accepted reload", |record| {
        message(record).starts_with("configuration reloaded")
    });
    let reloaded = daemon
        .wait_for_metrics("a run on the new policy", |scrape| {
            scrape.value("patrol_tokens", &keep) == Some(0.0)
        })
        .await;
    assert_eq!(
        reloaded.value("patrol_config_reloads_total", &[("result", "success")]),
        Some(1.0)
    );
    assert_eq!(
        reloaded.value("patrol_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert_eq!(
        reloaded.value("patrol_config_reloads_total", &[("result", "failure")]),
        Some(1.0)
    );

    let (status, log) = {
        daemon.signal("TERM");
        daemon.wait_exit(Duration::from_secs(30))
    };
    assert_eq!(status.code(), Some(0), "{log}");
}

#[tokio::test]
async fn sigterm_finishes_deletes_in_flight() {
    let workspace = Workspace::new();
    let shift = shift_to_now();
    // Every API response takes 1.5 s, so the deletes are still in flight when SIGTERM
    // arrives right after the first intent is on disk.
    let sim = contract_sim(&workspace, shift, &["--latency-ms", "1500"]);
    let mut text = daemon_policy("0 3 1 1 *", shift);
    text = set_policy_value(&text, "schedule", "run_on_start", "true");
    text = set_policy_value(&text, "safety", "dry_run", "false");
    text = set_policy_value(&text, "safety", "grace_period", "\"0s\"");
    let policy = workspace.policy(&text, &sim.base_url);
    let daemon = Daemon::start(&policy, &[]);

    daemon.wait_for_log("the start of the run", |record| {
        message(record) == "run started"
    });
    let log_path = audit_log(&workspace);
    let intents_on_disk = || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("\"delete_intent\"")
    };
    // The audit log has no log line of its own, so the test watches the file with a
    // bounded wait.
    let deadline = std::time::Instant::now() + WAIT;
    while !intents_on_disk() {
        assert!(
            std::time::Instant::now() < deadline,
            "no delete intent was written"
        );
        // The poll interval of an observable file, not a synchronization.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.signal("TERM");
    let (status, log) = daemon.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        log.contains("stopping: no new run or delete starts"),
        "{log}"
    );

    // Every intent has its result, and the results agree with the tenant.
    let records: Vec<Value> = std::fs::read_to_string(&log_path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let mut intents: BTreeMap<String, usize> = BTreeMap::new();
    let mut results: BTreeMap<String, String> = BTreeMap::new();
    for record in &records {
        let id = record["token"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match record["event"].as_str() {
            Some("delete_intent") => *intents.entry(id).or_default() += 1,
            Some("delete_result") => {
                results.insert(id, record["result"].as_str().unwrap().to_owned());
            }
            _ => {}
        }
    }
    assert!(!intents.is_empty());
    for (id, count) in &intents {
        assert_eq!(*count, 1, "{id} has {count} intents");
        assert_eq!(
            results.get(id).map(String::as_str),
            Some("deleted"),
            "the delete of {id} has no result"
        );
    }
    assert_eq!(intents.len(), results.len(), "a result without an intent");

    let remaining: Vec<String> = sim
        .control_get("/_sim/tokens")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|token| token["id"].as_str().unwrap().to_owned())
        .collect();
    for id in intents.keys() {
        assert!(
            !remaining.contains(id),
            "{id} is recorded as deleted but exists"
        );
    }
    assert!(
        records
            .iter()
            .any(|record| record["event"] == "run_finished"),
        "the run did not finish"
    );
    assert!(workspace.state_dir().join("acme/state.json").exists());

    // Deletes the stop kept from starting are deferred to the next run, never left "due".
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace.state_dir().join("acme/reports/last.json")).unwrap(),
    )
    .unwrap();
    for token in report["tokens"].as_array().unwrap() {
        assert_ne!(token["outcome"], "due", "{} was left due", token["id"]);
    }
}
