//! Harness for the `patrol run` tests: a policy for the simulated tenant, the daemon as a
//! child process with JSON logs, waits on its log lines and its `/metrics`, and a parser
//! of the text exposition.
//!
//! Every wait has a deadline and ends as soon as the awaited event is observable: a log
//! line arrives (the reader thread wakes the waiters), a scrape shows the value, or the
//! process exits. Nothing here reaches an address other than 127.0.0.1.

#![allow(
    dead_code,
    reason = "each daemon test crate uses a different subset of these helpers"
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::Value;

use crate::common::Sim;
use crate::common::patrol::*;

/// Maximum wait for any one event.
pub const WAIT: Duration = Duration::from_secs(60);

/// Starts the simulated tenant with the contract tokens moved by `shift` (see
/// [`shift_to_now`]), and `extra` flags.
pub fn contract_sim(workspace: &Workspace, shift: TimeDelta, extra: &[&str]) -> Sim {
    let tokens = shift_tokens(
        &std::fs::read_to_string(crate::common::TOKENS_FIXTURE).unwrap(),
        shift,
    );
    let path = workspace.write("tokens.json", &tokens);
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

/// Returns the contract policy for the daemon, with the schedule `cron` in UTC, metrics on
/// a free loopback port, and exemption dates moved by `shift` like the tokens. So the
/// contract's verdicts and outcomes hold whenever the test runs.
pub fn daemon_policy(cron: &str, shift: TimeDelta) -> String {
    let mut text = std::fs::read_to_string(POLICY_FIXTURE).unwrap();
    text = set_policy_value(&text, "schedule", "cron", &format!("\"{cron}\""));
    text = set_policy_value(&text, "schedule", "timezone", "\"UTC\"");
    text = set_policy_value(&text, "metrics", "listen", "\"127.0.0.1:0\"");
    shift_exemptions(&text, shift)
}

/// Moves each `until = "YYYY-MM-DD"` of the policy by `shift`.
pub fn shift_exemptions(policy: &str, shift: TimeDelta) -> String {
    let mut lines = Vec::new();
    for line in policy.lines() {
        let date = line
            .trim()
            .strip_prefix("until = \"")
            .and_then(|rest| rest.strip_suffix('"'))
            .and_then(|date| NaiveDate::parse_from_str(date, "%Y-%m-%d").ok());
        match date {
            Some(date) => {
                let until = date.and_hms_opt(0, 0, 0).unwrap().and_utc() + shift;
                lines.push(format!(
                    "until = \"{}\"",
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ));
            }
            None => lines.push(line.to_owned()),
        }
    }
    lines.join("\n") + "\n"
}

/// The log lines of a child process, shared with the thread that reads them.
#[derive(Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

/// A running `patrol run`.
pub struct Daemon {
    child: Child,
    log: Arc<Log>,
    /// Where `/metrics` is served.
    pub address: SocketAddr,
    http: reqwest::Client,
}

impl Daemon {
    /// Starts `patrol run --config policy --log-format json` with the contract secret and
    /// `env`, and waits until it logs that it is running.
    pub fn start(policy: &Path, env: &[(&str, &str)]) -> Daemon {
        let (child, log) = spawn_run(policy, env);
        let mut daemon = Daemon {
            child,
            log,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            http: crate::common::http_client(),
        };
        let running = daemon.wait_for_log("the daemon is running", |record| {
            message(record).starts_with("patrol is running")
        });
        daemon.address = running["address"]
            .as_str()
            .and_then(|address| address.parse().ok())
            .unwrap_or_else(|| panic!("no address in {running}"));
        daemon
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://ADDRESS` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Returns every log line so far.
    pub fn log_text(&self) -> String {
        self.log.lines.lock().unwrap().join("\n")
    }

    /// Waits for a JSON log record that satisfies `predicate` and returns it.
    pub fn wait_for_log(&self, description: &str, predicate: impl Fn(&Value) -> bool) -> Value {
        wait_for_line(&self.log, description, |line| {
            serde_json::from_str::<Value>(line)
                .ok()
                .filter(|record| predicate(record))
        })
    }

    /// Counts the JSON log records that satisfy `predicate`.
    pub fn count_logs(&self, predicate: impl Fn(&Value) -> bool) -> usize {
        self.log
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|record| predicate(record))
            .count()
    }

    /// Fetches `/metrics` and parses it.
    pub async fn scrape(&self) -> Scrape {
        Scrape::parse(&self.scrape_text().await)
    }

    /// Fetches `/metrics` as text.
    pub async fn scrape_text(&self) -> String {
        let response = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics failed");
        assert_eq!(response.status(), 200, "GET /metrics");
        response.text().await.expect("cannot read /metrics")
    }

    /// Scrapes until `predicate` holds, and returns that scrape.
    pub async fn wait_for_metrics(
        &self,
        description: &str,
        predicate: impl Fn(&Scrape) -> bool,
    ) -> Scrape {
        let deadline = Instant::now() + WAIT;
        loop {
            let scrape = self.scrape().await;
            if predicate(&scrape) {
                return scrape;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {description}; last scrape:\n{}\nlog:\n{}",
                scrape.text,
                self.log_text()
            );
            // The poll interval of an observable value, not a synchronization.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends a signal by name (`HUP`, `TERM`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("failed to run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(mut self, timeout: Duration) -> (ExitStatus, String) {
        let status = wait_child(&mut self.child, timeout).unwrap_or_else(|| {
            panic!(
                "patrol run did not exit within {timeout:?}; log:\n{}",
                self.log_text()
            )
        });
        // The reader thread sees the end of stderr once the process is gone.
        let text = self.log_text();
        (status, text)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `patrol run` expecting it to exit on its own, and returns its status and stderr.
pub fn run_to_exit(policy: &Path, env: &[(&str, &str)]) -> (ExitStatus, String) {
    let (mut child, log) = spawn_run(policy, env);
    let status = wait_child(&mut child, WAIT).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("patrol run did not exit");
    });
    // Wait for the reader to reach the end of stderr.
    wait_for_line(&log, "the end of stderr", |line| {
        (line == EOF_MARK).then_some(())
    });
    let text = log.lines.lock().unwrap().join("\n");
    (status, text)
}

/// Appended by the reader thread when stderr ends.
const EOF_MARK: &str = "\u{0}end of stderr";

fn spawn_run(policy: &Path, env: &[(&str, &str)]) -> (Child, Arc<Log>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_patrol"))
        .args(["run", "--config"])
        .arg(policy)
        .args(["--log-format", "json"])
        .env(SECRET_ENV, CLIENT_SECRET)
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("failed to start patrol run");

    let log = Arc::new(Log::default());
    let stderr = child.stderr.take().expect("stderr is piped");
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            sink.lines.lock().unwrap().push(line);
            sink.grew.notify_all();
        }
        sink.lines.lock().unwrap().push(EOF_MARK.to_owned());
        sink.grew.notify_all();
    });
    (child, log)
}

fn wait_for_line<T>(log: &Log, description: &str, find: impl Fn(&str) -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    let mut lines = log.lines.lock().unwrap();
    let mut seen = 0;
    loop {
        for line in &lines[seen..] {
            if let Some(found) = find(line) {
                return found;
            }
        }
        seen = lines.len();
        let now = Instant::now();
        assert!(
            now < deadline && !lines.iter().any(|line| line == EOF_MARK),
            "no log line for {description}; log:\n{}",
            lines.join("\n")
        );
        lines = log.grew.wait_timeout(lines, deadline - now).unwrap().0;
    }
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    // Waiting happens on a helper thread so that the timeout can apply.
    let pid = child.id();
    let (sender, receiver) = mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let _ = sender.send(child.wait());
        });
        match receiver.recv_timeout(timeout) {
            Ok(status) => Some(status.expect("wait failed")),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                None
            }
        }
    })
}

/// Returns the `message` of a JSON log record.
pub fn message(record: &Value) -> &str {
    record["message"].as_str().unwrap_or_default()
}

/// One parsed scrape of `/metrics`.
pub struct Scrape {
    pub text: String,
    /// (name, labels, value) of every sample, in order.
    pub samples: Vec<(String, BTreeMap<String, String>, f64)>,
    /// The `# TYPE` of each family.
    pub types: BTreeMap<String, String>,
}

impl Scrape {
    /// Parses the text format as patrol writes it, without timestamps.
    pub fn parse(text: &str) -> Scrape {
        let mut samples = Vec::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                other => other
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, parse_labels(labels.strip_suffix('}').unwrap())),
                None => (series, BTreeMap::new()),
            };
            samples.push((name.to_owned(), labels, value));
        }
        Scrape {
            text: text.to_owned(),
            samples,
            types,
        }
    }

    /// Returns the samples of `name` whose labels include every pair of `labels`.
    pub fn find(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Vec<&(String, BTreeMap<String, String>, f64)> {
        self.samples
            .iter()
            .filter(|(sample, sample_labels, _)| {
                sample == name
                    && labels.iter().all(|(key, value)| {
                        sample_labels.get(*key).map(String::as_str) == Some(*value)
                    })
            })
            .collect()
    }

    /// Returns the value of the one sample of `name` with `labels`, if there is one.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found = self.find(name, labels);
        assert!(
            found.len() <= 1,
            "{} samples of {name} match {labels:?}",
            found.len()
        );
        found.first().map(|(_, _, value)| *value)
    }

    /// Checks whether any sample of the family `name` exists, histogram samples included.
    pub fn has_family(&self, name: &str) -> bool {
        self.types.contains_key(name)
            && self.samples.iter().any(|(sample, _, _)| {
                sample == name
                    || sample
                        .strip_prefix(name)
                        .is_some_and(|suffix| ["_bucket", "_sum", "_count"].contains(&suffix))
            })
    }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").unwrap();
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((index, char)) = chars.next() {
            match char {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => break,
                },
                '"' => {
                    end = index + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        labels.insert(key.to_owned(), value);
        rest = after[end..].strip_prefix(',').unwrap_or(&after[end..]);
    }
    labels
}

/// Converts an RFC 3339 instant to Unix seconds.
pub fn unix(text: &str) -> f64 {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
        .timestamp_millis() as f64
        / 1000.0
}

/// Returns the path of the tenant's audit log in the workspace.
pub fn audit_log(workspace: &Workspace) -> PathBuf {
    workspace.state_dir().join("acme/audit.jsonl")
}
