//! `patrol run` against a simulated tenant: the metrics contract, the HTTP endpoint, the
//! systemd notifications, skipped runs and start-up errors.

mod common;
mod daemon_support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::patrol::*;
use daemon_support::*;
use serde_json::Value;

/// Every series of the metrics contract, with its type.
const CONTRACT_SERIES: [(&str, &str); 31] = [
    ("patrol_build_info", "gauge"),
    ("patrol_tokens", "gauge"),
    ("patrol_token_outcomes", "gauge"),
    ("patrol_tokens_listed", "gauge"),
    ("patrol_token_info", "gauge"),
    ("patrol_token_last_used_timestamp_seconds", "gauge"),
    ("patrol_token_created_timestamp_seconds", "gauge"),
    ("patrol_token_expiration_timestamp_seconds", "gauge"),
    ("patrol_token_deletion_due_timestamp_seconds", "gauge"),
    ("patrol_token_series_dropped", "gauge"),
    ("patrol_deletions_total", "counter"),
    ("patrol_runs_total", "counter"),
    ("patrol_runs_skipped_total", "counter"),
    ("patrol_last_run_duration_seconds", "gauge"),
    ("patrol_last_run_timestamp_seconds", "gauge"),
    ("patrol_last_success_timestamp_seconds", "gauge"),
    ("patrol_breaker_tripped", "gauge"),
    ("patrol_exemptions", "gauge"),
    ("patrol_exemption_expiry_timestamp_seconds", "gauge"),
    ("patrol_filter_disagreements", "gauge"),
    ("patrol_clock_skew_seconds", "gauge"),
    ("patrol_api_requests_total", "counter"),
    ("patrol_api_request_duration_seconds", "histogram"),
    ("patrol_api_retries_total", "counter"),
    ("patrol_api_throttled_total", "counter"),
    ("patrol_api_rate_limit_wait_seconds_total", "counter"),
    ("patrol_schedule_next_run_timestamp_seconds", "gauge"),
    ("patrol_schedule_interval_seconds", "gauge"),
    ("patrol_config_reloads_total", "counter"),
    ("patrol_config_last_reload_successful", "gauge"),
    ("process_resident_memory_bytes", "gauge"),
];

const OUTCOMES: [&str; 11] = [
    "none",
    "reported",
    "exempt",
    "protected",
    "grace",
    "deferred",
    "held",
    "dry_run",
    "deleted",
    "gone",
    "failed",
];

fn expected_tokens() -> Vec<Value> {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(EXPECTED_FIXTURE).unwrap()).unwrap();
    expected["tokens"].as_array().unwrap().clone()
}

/// Returns the contract tokens moved by `shift`, keyed by id.
fn shifted_tokens(shift: chrono::TimeDelta) -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(common::TOKENS_FIXTURE).unwrap();
    let tokens: Vec<Value> = serde_json::from_str(&shift_tokens(&text, shift)).unwrap();
    tokens
        .into_iter()
        .map(|token| (token["id"].as_str().unwrap().to_owned(), token))
        .collect()
}

#[tokio::test]
async fn metrics_cover_the_contract() {
    let workspace = Workspace::new();
    let shift = shift_to_now();
    let sim = contract_sim(&workspace, shift, &[]);
    let policy = workspace.policy(&daemon_policy("* * * * * *", shift), &sim.base_url);
    let daemon = Daemon::start(&policy, &[]);

    let scrape = daemon
        .wait_for_metrics("a successful run", |scrape| {
            scrape
                .value(
                    "patrol_runs_total",
                    &[("tenant", "acme"), ("result", "success")],
                )
                .is_some_and(|runs| runs >= 1.0)
        })
        .await;

    for (name, kind) in CONTRACT_SERIES {
        assert!(
            scrape.has_family(name),
            "{name} is missing:\n{}",
            scrape.text
        );
        assert_eq!(scrape.types[name], kind, "type of {name}");
    }
    for name in [
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(scrape.has_family(name), "{name} is missing");
    }
    let tenant = [("tenant", "acme")];
    for (name, labels, _) in &scrape.samples {
        let global = name.starts_with("process_")
            || name.starts_with("patrol_config_")
            || name == "patrol_build_info";
        if !global {
            assert_eq!(
                labels.get("tenant").map(String::as_str),
                Some("acme"),
                "{name}"
            );
        }
    }

    // Counts by verdict and outcome, as the contract expects them.
    let expected = expected_tokens();
    for verdict in ["keep", "report", "delete"] {
        let count = expected
            .iter()
            .filter(|token| token["verdict"] == verdict)
            .count();
        assert_eq!(
            scrape.value("patrol_tokens", &[("tenant", "acme"), ("verdict", verdict)]),
            Some(count as f64),
            "patrol_tokens{{verdict={verdict}}}"
        );
    }
    for outcome in OUTCOMES {
        let count = expected
            .iter()
            .filter(|token| token["outcome"] == outcome)
            .count();
        assert_eq!(
            scrape.value(
                "patrol_token_outcomes",
                &[("tenant", "acme"), ("outcome", outcome)]
            ),
            Some(count as f64),
            "patrol_token_outcomes{{outcome={outcome}}}"
        );
    }
    assert_eq!(scrape.value("patrol_tokens_listed", &tenant), Some(25.0));
    assert_eq!(
        scrape.value("patrol_token_series_dropped", &tenant),
        Some(0.0)
    );
    assert_eq!(
        scrape.value("patrol_filter_disagreements", &tenant),
        Some(0.0)
    );
    for breaker in [
        "deletion_percent",
        "clock_skew",
        "incomplete_listing",
        "state_reset",
    ] {
        assert_eq!(
            scrape.value(
                "patrol_breaker_tripped",
                &[("tenant", "acme"), ("breaker", breaker)]
            ),
            Some(0.0),
            "breaker {breaker}"
        );
    }
    assert_eq!(
        scrape.value(
            "patrol_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.value("patrol_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert_eq!(
        scrape.value("patrol_config_reloads_total", &[("result", "failure")]),
        Some(0.0)
    );
    assert_eq!(
        scrape.value("patrol_schedule_interval_seconds", &tenant),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(
            "patrol_deletions_total",
            &[("tenant", "acme"), ("result", "deleted")]
        ),
        Some(0.0)
    );
    assert!(
        scrape
            .value(
                "patrol_api_requests_total",
                &[
                    ("tenant", "acme"),
                    ("operation", "list"),
                    ("status_class", "2xx")
                ]
            )
            .is_some_and(|requests| requests >= 3.0),
        "each run lists three times"
    );

    // One series set per flagged token, with the token's own instants.
    let tokens = shifted_tokens(shift);
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace.state_dir().join("acme/state.json")).unwrap(),
    )
    .unwrap();
    let flagged: Vec<&Value> = expected
        .iter()
        .filter(|token| token["verdict"] != "keep")
        .collect();
    assert_eq!(
        scrape.find("patrol_token_info", &tenant).len(),
        flagged.len()
    );
    for want in flagged {
        let id = want["id"].as_str().unwrap();
        let token = &tokens[id];
        let info = scrape.find("patrol_token_info", &[("tenant", "acme"), ("token_id", id)]);
        assert_eq!(info.len(), 1, "info series of {id}");
        let labels = &info[0].1;
        assert_eq!(
            labels["verdict"],
            want["verdict"].as_str().unwrap(),
            "verdict of {id}"
        );
        assert_eq!(
            labels["outcome"],
            want["outcome"].as_str().unwrap(),
            "outcome of {id}"
        );
        assert_eq!(
            labels["token_name"],
            token["name"].as_str().unwrap(),
            "name of {id}"
        );
        assert_eq!(
            labels["owner_id"],
            token["owner"]["id"].as_str().unwrap_or(""),
            "owner of {id}"
        );

        let series = [("tenant", "acme"), ("token_id", id)];
        let instant = |field: &str| token[field].as_str().map(unix);
        assert_eq!(
            scrape.value("patrol_token_created_timestamp_seconds", &series),
            instant("created"),
            "created of {id}"
        );
        assert_eq!(
            scrape.value("patrol_token_last_used_timestamp_seconds", &series),
            instant("lastUsed"),
            "lastUsed of {id}"
        );
        assert_eq!(
            scrape.value("patrol_token_expiration_timestamp_seconds", &series),
            instant("expirationDate"),
            "expirationDate of {id}"
        );
        // The grace period (7 days) runs from the first run that flagged the token.
        let due = if want["outcome"] == "grace" {
            let first = state["first_flagged"][id].as_str().unwrap();
            let first: DateTime<Utc> = DateTime::parse_from_rfc3339(first).unwrap().to_utc();
            Some((first + chrono::TimeDelta::days(7)).timestamp() as f64)
        } else {
            None
        };
        assert_eq!(
            scrape.value("patrol_token_deletion_due_timestamp_seconds", &series),
            due,
            "deletion due of {id}"
        );
    }

    // Exemptions: two active (one with an until), one expired.
    assert_eq!(
        scrape.value(
            "patrol_exemptions",
            &[("tenant", "acme"), ("state", "active")]
        ),
        Some(2.0)
    );
    assert_eq!(
        scrape.value(
            "patrol_exemptions",
            &[("tenant", "acme"), ("state", "expired")]
        ),
        Some(1.0)
    );
    let quarterly = parse_instant("2027-03-01T00:00:00Z") + shift;
    let expiry = scrape.find(
        "patrol_exemption_expiry_timestamp_seconds",
        &[("exemption", "token_id=bbbb0000000000000000000000000013")],
    );
    assert_eq!(expiry.len(), 1);
    assert_eq!(
        expiry[0].1["reason"],
        "Quarterly export job; reviewed with its owner"
    );
    assert_eq!(expiry[0].2, quarterly.timestamp() as f64);

    promtool_check(&daemon.scrape_text().await);
}

/// Runs `promtool check metrics` on a scrape. Without promtool the check is skipped with a
/// message, except in CI, where it must be installed.
fn promtool_check(text: &str) {
    let spawned = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "skipping promtool check metrics: promtool cannot run ({error}); CI installs it"
            );
            return;
        }
        Err(error) => panic!("promtool is required in CI: {error}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "promtool rejected the scrape:\n{stdout}{stderr}"
    );
    assert!(
        stdout.trim().is_empty() && stderr.trim().is_empty(),
        "promtool warned:\n{stdout}{stderr}"
    );
}

#[tokio::test]
async fn token_series_respect_cap_and_labels_switch() {
    let workspace = Workspace::new();
    let shift = shift_to_now();
    let sim = contract_sim(&workspace, shift, &[]);
    let mut text = daemon_policy("* * * * * *", shift);
    text = set_policy_value(&text, "metrics", "max_token_series", "4");
    text = set_policy_value(&text, "metrics", "token_labels", "false");
    let policy = workspace.policy(&text, &sim.base_url);
    let daemon = Daemon::start(&policy, &[]);

    let scrape = daemon
        .wait_for_metrics("a judged run", |scrape| {
            scrape
                .value("patrol_tokens_listed", &[("tenant", "acme")])
                .is_some()
        })
        .await;
    let flagged = expected_tokens()
        .iter()
        .filter(|token| token["verdict"] != "keep")
        .count();
    let info = scrape.find("patrol_token_info", &[("tenant", "acme")]);
    assert_eq!(info.len(), 4);
    assert_eq!(
        scrape.value("patrol_token_series_dropped", &[("tenant", "acme")]),
        Some((flagged - 4) as f64)
    );
    for (_, labels, _) in info {
        assert_eq!(labels["token_name"], "");
        assert_eq!(labels["owner_name"], "");
        assert_eq!(labels["verdict"], "delete", "delete verdicts go first");
    }
    assert_eq!(
        scrape
            .find("patrol_token_created_timestamp_seconds", &[])
            .len(),
        4
    );
    assert!(
        !scrape.text.contains("patrol-auditor"),
        "a token name leaked"
    );
}

#[tokio::test]
async fn http_endpoint_serves_get_and_head_only() {
    let workspace = Workspace::new();
    let shift = shift_to_now();
    let sim = contract_sim(&workspace, shift, &[]);
    let policy = workspace.policy(&daemon_policy("0 3 * * *", shift), &sim.base_url);
    let daemon = Daemon::start(&policy, &[]);
    let http = common::http_client();

    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = http.get(daemon.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
    }
    let metrics = http.get(daemon.url("/metrics")).send().await.unwrap();
    assert_eq!(
        metrics.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );

    let head = http.head(daemon.url("/metrics")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.text().await.unwrap().is_empty(), "HEAD has a body");

    for path in ["/", "/metrics/", "/health", "/debug/pprof", "/metrics/x"] {
        let response = http.get(daemon.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "GET {path}");
    }
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = http
            .request(method.clone(), daemon.url("/metrics"))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} /metrics");
        assert_eq!(response.headers()["allow"], "GET,HEAD");
    }

    // A request head over 8 KiB is refused and the connection closed.
    let mut request = String::from("GET /metrics HTTP/1.1\r\nHost: x\r\n");
    request.push_str(&format!("X-Padding: {}\r\n\r\n", "a".repeat(10_000)));
    let answer = exchange(daemon.address, request.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "oversized head answered: {answer}"
    );

    // A head that never completes is cut off by the header read timeout.
    let started = Instant::now();
    let answer = exchange(daemon.address, b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
    assert!(
        !answer.contains("200 OK"),
        "an incomplete head was served: {answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// An idle daemon gives a large run's freed memory back only through jemalloc's background
/// thread. After a run of 100,000 tokens, glibc's allocator kept about 64 MiB and jemalloc
/// without the thread about 61 MiB. jemalloc starts the thread with the process.
#[cfg(target_os = "linux")]
#[test]
fn daemon_runs_the_allocator_background_thread() {
    let workspace = Workspace::new();
    let shift = shift_to_now();
    let sim = contract_sim(&workspace, shift, &[]);
    let policy = workspace.policy(&daemon_policy("0 3 * * *", shift), &sim.base_url);
    let daemon = Daemon::start(&policy, &[]);

    let tasks = std::fs::read_dir(format!("/proc/{}/task", daemon.pid())).unwrap();
    let names: Vec<String> = tasks
        .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect();
    assert!(
        names.iter().any(|name| name == "jemalloc_bg_thd"),
        "no jemalloc background thread among {names:?}"
    );
}

/// Sends `request` on a new connection and returns what arrives until the daemon closes
/// it; panics if it stays open for 30 seconds.
fn exchange(address: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(error) => panic!("the daemon kept the connection open: {error}"),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn notify_socket_sees_ready_watchdog_status_stopping() {
    let workspace = Workspace::new();
    let shift = shift_to_now();
    let sim = contract_sim(&workspace, shift, &[]);
    let mut text = daemon_policy("0 3 1 1 *", shift);
    text = set_policy_value(&text, "schedule", "run_on_start", "true");
    let policy = workspace.policy(&text, &sim.base_url);

    let socket_path = workspace.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let daemon = Daemon::start(
        &policy,
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "2000000"),
        ],
    );

    // Read until READY, two watchdog pings and the status of the first run have arrived.
    let mut messages: Vec<String> = Vec::new();
    let count = |messages: &[String], prefix: &str| {
        messages
            .iter()
            .filter(|line| line.starts_with(prefix))
            .count()
    };
    let has_run_status = |messages: &[String]| {
        messages
            .iter()
            .any(|line| line.starts_with("STATUS=acme: 25 listed"))
    };
    while !(count(&messages, "WATCHDOG=1") >= 2 && has_run_status(&messages)) {
        messages.extend(receive(&socket));
    }
    daemon.signal("TERM");
    while count(&messages, "STOPPING=1") == 0 {
        messages.extend(receive(&socket));
    }
    let (status, log) = daemon.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{log}");

    let position = |predicate: &dyn Fn(&String) -> bool| {
        messages
            .iter()
            .position(predicate)
            .unwrap_or_else(|| panic!("missing message in {messages:?}"))
    };
    let ready = position(&|line| line == "READY=1");
    let watchdog = position(&|line| line == "WATCHDOG=1");
    let run_status = position(&|line| line.starts_with("STATUS=acme: 25 listed"));
    let stopping = position(&|line| line == "STOPPING=1");
    assert!(ready < watchdog, "{messages:?}");
    assert!(watchdog < run_status, "{messages:?}");
    assert!(run_status < stopping, "{messages:?}");
    assert_eq!(ready, 0, "READY is the first message: {messages:?}");
    let run_line = &messages[run_status];
    assert!(
        run_line.contains("5 to report, 13 to delete, 0 deleted, 0 failed (dry run)"),
        "{run_line}"
    );
}

/// Receives one datagram and splits it into its lines.
fn receive(socket: &UnixDatagram) -> Vec<String> {
    let mut buffer = [0u8; 4096];
    let size = socket
        .recv(&mut buffer)
        .expect("no notification arrived in time");
    String::from_utf8_lossy(&buffer[..size])
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn slow_run_skips_occurrences() {
    let workspace = Workspace::new();
    let shift = shift_to_now();
    let sim = contract_sim(&workspace, shift, &["--latency-ms", "1500"]);
    let policy = workspace.policy(&daemon_policy("* * * * * *", shift), &sim.base_url);
    let daemon = Daemon::start(&policy, &[]);

    let skipped = daemon.wait_for_log("a skipped run", |record| {
        message(record).starts_with("run skipped") && record["tenant"] == "acme"
    });
    assert_eq!(skipped["level"], "WARN");
    daemon
        .wait_for_metrics("a counted skip", |scrape| {
            scrape
                .value("patrol_runs_skipped_total", &[("tenant", "acme")])
                .is_some_and(|skipped| skipped >= 1.0)
        })
        .await;
    // Runs never overlap: each "run started" is followed by its "run finished" first.
    let mut going = 0;
    for line in daemon.log_text().lines() {
        let Ok(record) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        match message(&record) {
            "run started" => going += 1,
            "run finished" => going -= 1,
            _ => {}
        }
        assert!((0..=1).contains(&going), "two runs overlapped");
    }
}

#[test]
fn missing_secret_stops_start_with_config_error() {
    let workspace = Workspace::new();
    let shift = shift_to_now();
    let policy = workspace.policy(&daemon_policy("0 3 * * *", shift), "http://127.0.0.1:9");
    let (status, log) = run_to_exit(&policy, &[(SECRET_ENV, "")]);
    assert_eq!(status.code(), Some(78), "{log}");
    assert!(
        log.contains("tenant acme: cannot read the client secret (client_secret_env)"),
        "{log}"
    );
    assert!(!log.contains("patrol is running"), "{log}");
}

#[test]
fn invalid_policy_stops_start_with_config_error() {
    let workspace = Workspace::new();
    let shift = shift_to_now();
    let text =
        daemon_policy("0 3 * * *", shift).replace("cron = \"0 3 * * *\"", "cron = \"0 25 * * *\"");
    let policy = workspace.policy(&text, "http://127.0.0.1:9");
    let (status, log) = run_to_exit(&policy, &[]);
    assert_eq!(status.code(), Some(78), "{log}");
    assert!(log.contains("schedule.cron"), "{log}");
}

#[test]
fn listen_address_in_use_stops_start() {
    let workspace = Workspace::new();
    let shift = shift_to_now();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let text = set_policy_value(
        &daemon_policy("0 3 * * *", shift),
        "metrics",
        "listen",
        &format!("\"{address}\""),
    );
    let policy = workspace.policy(&text, "http://127.0.0.1:9");
    let (status, log) = run_to_exit(&policy, &[]);
    assert_eq!(status.code(), Some(78), "{log}");
    assert!(log.contains("cannot listen for metrics scrapes"), "{log}");
}

#[tokio::test]
async fn log_level_from_policy_or_rust_log() {
    let workspace = Workspace::new();
    let shift = shift_to_now();
    let sim = contract_sim(&workspace, shift, &[]);
    let mut text = daemon_policy("0 3 1 1 *", shift);
    text = set_policy_value(&text, "schedule", "run_on_start", "true");
    text.push_str("\n[log]\nlevel = \"debug\"\n");
    let policy = workspace.policy(&text, &sim.base_url);
    let is_debug = |record: &Value| record["level"] == "DEBUG";

    let from_policy = Daemon::start(&policy, &[("RUST_LOG", "")]);
    from_policy.wait_for_log("a debug line", |record| {
        is_debug(record) && message(record) == "run due"
    });
    // The second daemon uses the same state directory, so the first must be gone.
    drop(from_policy);

    let from_env = Daemon::start(&policy, &[("RUST_LOG", "info")]);
    from_env.wait_for_log("the end of the run", |record| {
        message(record) == "run finished"
    });
    assert_eq!(from_env.count_logs(is_debug), 0, "{}", from_env.log_text());
}
