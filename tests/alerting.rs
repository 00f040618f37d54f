//! The alerting kit against the daemon. Every metric name that the alert rules
//! (`deploy/prometheus/patrol-alerts.yml`) and the Grafana dashboard
//! (`deploy/grafana/patrol-dashboard.json`) use must be exported by a running `patrol run`.
//! Renaming a metric then breaks this test instead of silently muting an alert.
//!
//! Names come from a small PromQL tokenizer: it keeps the identifiers that stand for
//! series and skips functions, aggregations, keywords, label matchers, grouping label
//! lists, strings, numbers, durations, comments and Grafana variables. The rules file is
//! read with a line scanner that understands the YAML this kit writes (plain, quoted and
//! block scalars), so no YAML parser is needed.
//!
//! The scrape test starts `patrol sim` and `patrol run` on loopback, lets runs delete, wait
//! in grace and get throttled, reloads the policy once, and collects the names of every
//! `/metrics` scrape until all used names were seen or a timeout passes. Offline tests
//! check the extractor itself, the alert annotations against the runbook's sections, and
//! the dashboard's shape. `promtool test rules` in `.ci/run` covers what the alerts
//! compute.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Sim;
use common::patrol::*;
use serde_json::Value;

const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/prometheus/patrol-alerts.yml"
);
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/grafana/patrol-dashboard.json"
);
const RUNBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/runbook.md");

/// Series that Prometheus adds to every scrape, which no exporter exports.
const SCRAPE_SERIES: [&str; 1] = ["up"];

/// How long the scrape test waits for the daemon to export every name the kit uses.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(120);
const POLL_INTERVAL: Duration = Duration::from_millis(250);

// ---------------------------------------------------------------------------------------
// Extracting metric names from PromQL
// ---------------------------------------------------------------------------------------

/// Aggregation operators: they may be followed by `by`/`without` instead of `(`.
const AGGREGATIONS: [&str; 14] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Keywords followed by a parenthesised list of label names, which are not series.
const GROUPING_KEYWORDS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Binary operators and modifiers spelled as words, and the float literals `Inf` and `NaN`.
const WORD_KEYWORDS: [&str; 8] = [
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
];

/// Returns the metric names a PromQL expression selects.
fn metric_names(query: &str) -> BTreeSet<String> {
    let chars: Vec<char> = query.chars().collect();
    let mut names = BTreeSet::new();
    let mut index = 0;
    while index < chars.len() {
        let current = chars[index];
        if current == '#' {
            index = skip_line(&chars, index);
        } else if matches!(current, '"' | '\'' | '`') {
            index = skip_string(&chars, index);
        } else if current == '{' {
            index = skip_group(&chars, index, '{', '}');
        } else if current == '[' {
            index = skip_group(&chars, index, '[', ']');
        } else if current == '$' {
            index = skip_variable(&chars, index);
        } else if current.is_ascii_digit()
            || (current == '.' && chars.get(index + 1).is_some_and(char::is_ascii_digit))
        {
            // Numbers, hexadecimal and durations such as `5m` or `1h30m`.
            index = skip_while(&chars, index, |c| c.is_ascii_alphanumeric() || c == '.');
        } else if current.is_ascii_alphabetic() || current == '_' || current == ':' {
            let end = skip_while(&chars, index, |c| {
                c.is_ascii_alphanumeric() || c == '_' || c == ':'
            });
            let word: String = chars[index..end].iter().collect();
            let lower = word.to_ascii_lowercase();
            let after = skip_while(&chars, end, char::is_whitespace);
            let next = chars.get(after).copied();
            index = end;
            if GROUPING_KEYWORDS.contains(&lower.as_str()) {
                if next == Some('(') {
                    index = skip_group(&chars, after, '(', ')');
                }
            } else if WORD_KEYWORDS.contains(&lower.as_str())
                || AGGREGATIONS.contains(&word.as_str())
                || next == Some('(')
            {
                // A keyword, an aggregation or a function call.
            } else {
                names.insert(word);
            }
        } else {
            index += 1;
        }
    }
    names
}

fn skip_while(chars: &[char], start: usize, keep: impl Fn(char) -> bool) -> usize {
    let mut index = start;
    while index < chars.len() && keep(chars[index]) {
        index += 1;
    }
    index
}

fn skip_line(chars: &[char], start: usize) -> usize {
    skip_while(chars, start, |c| c != '\n')
}

/// Skips a string literal. Backquoted strings have no escapes.
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut index = start + 1;
    while index < chars.len() {
        match chars[index] {
            '\\' if quote != '`' => index += 2,
            c if c == quote => return index + 1,
            _ => index += 1,
        }
    }
    index
}

/// Skips from an opening bracket to its match, past nested brackets and strings.
fn skip_group(chars: &[char], start: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    let mut index = start;
    while index < chars.len() {
        let current = chars[index];
        if matches!(current, '"' | '\'' | '`') {
            index = skip_string(chars, index);
            continue;
        }
        if current == open {
            depth += 1;
        } else if current == close {
            depth -= 1;
            if depth == 0 {
                return index + 1;
            }
        }
        index += 1;
    }
    index
}

/// Skips a Grafana variable: `$name`, `$__interval` or `${name}`.
fn skip_variable(chars: &[char], start: usize) -> usize {
    if chars.get(start + 1) == Some(&'{') {
        return skip_group(chars, start + 1, '{', '}');
    }
    skip_while(chars, start + 1, |c| c.is_ascii_alphanumeric() || c == '_')
}

// ---------------------------------------------------------------------------------------
// Reading the rules file and the dashboard
// ---------------------------------------------------------------------------------------

/// Returns the value of every `key:` entry in YAML text.
///
/// It reads the shapes this kit writes: a plain or quoted scalar on the same line, or a
/// block scalar (`|`, `>`, with or without `-`) on the lines indented below it. Block lines
/// are joined with newlines, which is enough for PromQL and for checks on single words.
fn yaml_values(text: &str, key: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let prefix = format!("{key}:");
    let mut values = Vec::new();
    for (number, line) in lines.iter().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let content = line.trim_start();
        let content = content.strip_prefix("- ").unwrap_or(content);
        let Some(rest) = content.strip_prefix(&prefix) else {
            continue;
        };
        let rest = rest.trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            let block: Vec<&str> = lines[number + 1..]
                .iter()
                .take_while(|next| {
                    next.trim().is_empty() || next.len() - next.trim_start().len() > indent
                })
                .map(|next| next.trim())
                .collect();
            values.push(block.join("\n").trim().to_owned());
        } else {
            values.push(yaml_scalar(rest));
        }
    }
    values
}

/// Unquotes a one-line YAML scalar and drops a trailing comment from a plain one.
fn yaml_scalar(text: &str) -> String {
    if let Some(inner) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        return inner.replace("''", "'");
    }
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return inner.replace("\\\"", "\"").replace("\\\\", "\\");
    }
    match text.find(" #") {
        Some(comment) => text[..comment].trim_end().to_owned(),
        None => text.to_owned(),
    }
}

/// One `- alert:` entry of the rules file, as text.
struct AlertRule {
    name: String,
    text: String,
}

/// Splits the rules file into its alerts. Each alert keeps the lines up to the next one.
fn alert_rules(rules: &str) -> Vec<AlertRule> {
    let mut alerts: Vec<AlertRule> = Vec::new();
    for line in rules.lines() {
        if let Some(name) = line.trim_start().strip_prefix("- alert:") {
            alerts.push(AlertRule {
                name: name.trim().to_owned(),
                text: String::new(),
            });
        }
        if let Some(alert) = alerts.last_mut() {
            alert.text.push_str(line);
            alert.text.push('\n');
        }
    }
    alerts
}

/// Collects every PromQL expression of a dashboard: panel targets, rows included, and the
/// queries of query variables.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut queries = Vec::new();
    collect_panel_queries(&dashboard["panels"], &mut queries);
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] != "query" {
            continue;
        }
        let query = match &variable["query"] {
            Value::String(text) => text.as_str(),
            object => object["query"].as_str().unwrap_or_default(),
        };
        queries.push(grafana_variable_query(query).to_owned());
    }
    queries
}

fn collect_panel_queries(panels: &Value, queries: &mut Vec<String>) {
    for panel in panels.as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                queries.push(expr.to_owned());
            }
        }
        collect_panel_queries(&panel["panels"], queries);
    }
}

/// Returns the PromQL part of a Grafana variable query: the series selector of
/// `label_values(SELECTOR, LABEL)`, the expression of `query_result(EXPR)`, nothing for
/// `label_values(LABEL)`, and the query itself otherwise.
fn grafana_variable_query(query: &str) -> &str {
    let query = query.trim();
    if let Some(inner) = query
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        return match top_level_comma(inner) {
            Some(comma) => &inner[..comma],
            None => "",
        };
    }
    if let Some(inner) = query
        .strip_prefix("query_result(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        return inner;
    }
    query
}

/// Position of the last comma outside braces and strings.
fn top_level_comma(text: &str) -> Option<usize> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut depth = 0;
    let mut quote = None;
    let mut found = None;
    for &(position, current) in &chars {
        match (quote, current) {
            (Some(open), c) if c == open => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(current),
            (None, '{' | '(' | '[') => depth += 1,
            (None, '}' | ')' | ']') => depth -= 1,
            (None, ',') if depth == 0 => found = Some(position),
            _ => {}
        }
    }
    found
}

/// Collects every metric name used by the alert rules and the dashboard, with its users.
fn used_metric_names() -> BTreeMap<String, BTreeSet<String>> {
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let rules = read(RULES);
    for alert in alert_rules(&rules) {
        for expr in yaml_values(&alert.text, "expr") {
            for name in metric_names(&expr) {
                used.entry(name).or_default().insert(alert.name.clone());
            }
        }
    }
    let dashboard = dashboard();
    for query in dashboard_queries(&dashboard) {
        for name in metric_names(&query) {
            used.entry(name).or_default().insert("dashboard".to_owned());
        }
    }
    used
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD))
        .unwrap_or_else(|error| panic!("{DASHBOARD} is not valid JSON: {error}"))
}

// ---------------------------------------------------------------------------------------
// The metric names of a scrape
// ---------------------------------------------------------------------------------------

/// The names in a Prometheus or OpenMetrics text exposition.
#[derive(Debug, Default)]
struct Exposition {
    /// Names of the samples.
    samples: BTreeSet<String>,
    /// Metric families declared by `# TYPE`, with their type, samples or not.
    families: BTreeMap<String, String>,
}

impl Exposition {
    fn parse(text: &str) -> Self {
        let mut exposition = Self::default();
        exposition.add(text);
        exposition
    }

    /// Adds the names of another scrape, since some series appear only after an event.
    fn add(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.trim();
            if let Some(declaration) = line.strip_prefix("# TYPE ") {
                let mut parts = declaration.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    self.families.insert(name.to_owned(), kind.to_owned());
                }
            } else if !line.is_empty() && !line.starts_with('#') {
                let end = line.find(['{', ' ']).unwrap_or(line.len());
                self.samples.insert(line[..end].to_owned());
            }
        }
    }

    /// Whether a query can find series named `name`, because a sample has that name or a
    /// declared family produces it. A histogram produces `_bucket`, `_sum` and `_count`, an
    /// OpenMetrics counter `_total` and an info `_info`.
    fn exports(&self, name: &str) -> bool {
        if self.samples.contains(name) {
            return true;
        }
        if let Some(kind) = self.families.get(name) {
            return kind != "histogram";
        }
        let suffixes: [(&str, &[&str]); 4] = [
            ("histogram", &["_bucket", "_sum", "_count"]),
            ("summary", &["_sum", "_count"]),
            ("counter", &["_total"]),
            ("info", &["_info"]),
        ];
        suffixes.iter().any(|(kind, endings)| {
            endings.iter().any(|ending| {
                name.strip_suffix(ending)
                    .and_then(|family| self.families.get(family))
                    .is_some_and(|declared| declared == kind)
            })
        })
    }
}

/// Names that `used` needs and `exposition` lacks, with where each is used.
fn missing_names(
    used: &BTreeMap<String, BTreeSet<String>>,
    exposition: &Exposition,
) -> Vec<String> {
    used.iter()
        .filter(|(name, _)| !SCRAPE_SERIES.contains(&name.as_str()) && !exposition.exports(name))
        .map(|(name, users)| {
            let users: Vec<&str> = users.iter().map(String::as_str).collect();
            format!("{name} (used by {})", users.join(", "))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The scrape test
// ---------------------------------------------------------------------------------------

/// A `patrol run` child process, killed on drop, with its output in files.
struct Daemon {
    child: Child,
    stderr_path: PathBuf,
}

impl Daemon {
    fn start(policy: &Path, workspace: &Workspace) -> Self {
        let stdout_path = workspace.path().join("daemon.stdout");
        let stderr_path = workspace.path().join("daemon.stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_patrol"))
            .args(["run", "--config", policy.to_str().unwrap()])
            .env(SECRET_ENV, CLIENT_SECRET)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("failed to start patrol run");
        Self { child, stderr_path }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Panics with the log if the daemon has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("failed to poll patrol run") {
            panic!(
                "patrol run exited with {status} before exporting the metrics; stderr:\n{}",
                self.stderr()
            );
        }
    }

    /// Sends SIGHUP, which makes the daemon reload its policy file.
    fn reload(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("failed to run kill");
        assert!(status.success(), "kill -HUP failed");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns a loopback port that was free a moment ago. The daemon may not accept port 0,
/// and its address must be known in advance.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("failed to bind a port");
    listener.local_addr().unwrap().port()
}

/// Writes the reference policy pointed at `sim`, with runs every second that delete, a
/// grace period of 3 seconds so that tokens pass through grace into deletion during the
/// test, and the metrics endpoint on `port`.
fn daemon_policy(workspace: &Workspace, sim: &Sim, port: u16) -> PathBuf {
    let mut policy = read(POLICY_FIXTURE);
    for (section, key, value) in [
        ("schedule", "cron", "\"* * * * * *\"".to_owned()),
        ("schedule", "run_on_start", "true".to_owned()),
        ("safety", "dry_run", "false".to_owned()),
        ("safety", "grace_period", "\"3s\"".to_owned()),
        ("metrics", "listen", format!("\"127.0.0.1:{port}\"")),
    ] {
        policy = set_policy_value(&policy, section, key, &value);
    }
    workspace.policy(&policy, &sim.base_url)
}

async fn scrape(client: &reqwest::Client, url: &str) -> Option<String> {
    let response = client.get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.text().await.ok()
}

#[tokio::test]
async fn rules_and_dashboard_use_exported_metrics() {
    let used = used_metric_names();
    let workspace = Workspace::new();
    // One PAT request in five gets a 429 response, so that the throttling metrics have values.
    let sim = start_sim(&workspace, &contract_tokens_now(), &["--fault-429", "0.2"]);
    let port = free_port();
    let policy = daemon_policy(&workspace, &sim, port);
    let mut daemon = Daemon::start(&policy, &workspace);

    let client = common::http_client();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + EXPORT_TIMEOUT;
    let mut exposition = Exposition::default();
    let mut reloaded = false;
    let mut scrapes = 0;
    loop {
        daemon.assert_running();
        if let Some(text) = scrape(&client, &url).await {
            scrapes += 1;
            exposition.add(&text);
        }
        // The reload metrics may appear only after a reload. A reload after the first run
        // also checks that runs continue after one.
        if !reloaded && exposition.exports("patrol_last_run_timestamp_seconds") {
            daemon.reload();
            reloaded = true;
        }
        if reloaded && missing_names(&used, &exposition).is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }

    assert!(
        scrapes > 0,
        "no scrape of {url} succeeded within {EXPORT_TIMEOUT:?}; stderr:\n{}",
        daemon.stderr()
    );
    assert!(
        reloaded,
        "no run completed within {EXPORT_TIMEOUT:?}: patrol_last_run_timestamp_seconds never \
         appeared in {scrapes} scrapes; stderr:\n{}",
        daemon.stderr()
    );
    let missing = missing_names(&used, &exposition);
    assert!(
        missing.is_empty(),
        "the alert rules or the dashboard use metrics that patrol run did not export in \
         {scrapes} scrapes:\n  {}\nexported: {:?}",
        missing.join("\n  "),
        exposition.samples
    );
}

// ---------------------------------------------------------------------------------------
// Offline checks of the kit
// ---------------------------------------------------------------------------------------

#[test]
fn kit_uses_only_patrol_process_and_up_names() {
    let used = used_metric_names();
    assert!(
        used.len() > 20,
        "only {} names extracted: {used:?}",
        used.len()
    );
    for name in used.keys() {
        assert!(
            name.starts_with("patrol_") || name.starts_with("process_") || name == "up",
            "{name} is not a patrol metric: a label name or keyword leaked out of the extractor, \
             or a rule uses a foreign metric"
        );
    }
    for expected in [
        "patrol_token_info",
        "patrol_token_deletion_due_timestamp_seconds",
        "patrol_breaker_tripped",
        "patrol_last_success_timestamp_seconds",
        "patrol_schedule_interval_seconds",
        "patrol_api_throttled_total",
        "patrol_api_request_duration_seconds_bucket",
        "process_start_time_seconds",
        "up",
    ] {
        assert!(
            used.contains_key(expected),
            "{expected} not found in {used:?}"
        );
    }
}

#[test]
fn alerts_have_severity_annotations_and_runbook_section() {
    let rules = read(RULES);
    let runbook = read(RUNBOOK);
    let headings: BTreeSet<&str> = runbook
        .lines()
        .filter_map(|line| line.strip_prefix("## "))
        .map(str::trim)
        .collect();
    let alerts = alert_rules(&rules);
    assert!(alerts.len() >= 13, "only {} alerts found", alerts.len());

    for alert in &alerts {
        let name = &alert.name;
        let severity = yaml_values(&alert.text, "severity");
        assert_eq!(severity.len(), 1, "{name}: one severity label expected");
        assert!(
            ["info", "warning", "critical"].contains(&severity[0].as_str()),
            "{name}: unknown severity {:?}",
            severity[0]
        );
        for key in ["summary", "description"] {
            let values = yaml_values(&alert.text, key);
            assert_eq!(values.len(), 1, "{name}: one {key} expected");
            assert!(!values[0].is_empty(), "{name}: empty {key}");
        }
        let summary = &yaml_values(&alert.text, "summary")[0];
        let expr = &yaml_values(&alert.text, "expr")[0];
        let per_tenant = expr.contains("patrol_") && !expr.contains("patrol_config_");
        if per_tenant {
            assert!(
                summary.contains("$labels.tenant"),
                "{name}: the summary does not name the tenant"
            );
        }
        if expr.contains("patrol_token_info") {
            for label in ["$labels.token_id", "$labels.owner_id", "$labels.owner_name"] {
                assert!(summary.contains(label), "{name}: the summary lacks {label}");
            }
        }

        let links = yaml_values(&alert.text, "runbook_url");
        assert_eq!(links.len(), 1, "{name}: one runbook_url expected");
        let anchor = format!("#{}", name.to_lowercase());
        assert!(
            links[0].ends_with(&format!("docs/runbook.md{{{{ end }}}}{anchor}")),
            "{name}: runbook_url {:?} does not end with the default document and {anchor}",
            links[0]
        );
        assert!(
            !links[0].contains("github.com"),
            "{name}: runbook_url names a host"
        );
        assert!(
            headings.contains(name.as_str()),
            "{name}: docs/runbook.md has no section \"## {name}\""
        );
    }
}

#[test]
fn dashboard_is_portable_grafana_model() {
    let dashboard = dashboard();
    let text = read(DASHBOARD);

    assert!(
        dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 39),
        "schemaVersion {} is older than Grafana 10.4",
        dashboard["schemaVersion"]
    );
    assert!(
        dashboard["uid"]
            .as_str()
            .is_some_and(|uid| !uid.is_empty() && uid.len() <= 40),
        "uid must be set and at most 40 characters"
    );
    assert!(
        dashboard["id"].is_null(),
        "id must be null so imports create it"
    );
    for forbidden in ["http://", "https://", "localhost", "127.0.0.1"] {
        assert!(
            !text.contains(forbidden),
            "the dashboard contains {forbidden:?}, a hard-coded instance"
        );
    }

    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list");
    let variable = |name: &str| {
        variables
            .iter()
            .find(|variable| variable["name"] == name)
            .unwrap_or_else(|| panic!("no variable {name}"))
    };
    let datasource = variable("datasource");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    let tenant = variable("tenant");
    assert_eq!(tenant["type"], "query");
    assert_eq!(tenant["multi"], true);
    assert_eq!(tenant["includeAll"], true);

    let mut ids = BTreeSet::new();
    let mut panels: Vec<&Value> = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        panels.push(panel);
        panels.extend(panel["panels"].as_array().into_iter().flatten());
    }
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        assert!(ids.insert(panel["id"].to_string()), "{title}: duplicate id");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{title}: the panel's data source is not the variable"
        );
        for target in panel["targets"].as_array().expect("targets") {
            assert_eq!(
                target["datasource"]["uid"], "${datasource}",
                "{title}: a query's data source is not the variable"
            );
            let expr = target["expr"].as_str().expect("expr");
            let per_tenant = !expr.contains("process_")
                && !expr.contains("patrol_build_info")
                && !expr.contains("patrol_config_");
            if per_tenant {
                assert!(
                    expr.contains("tenant=~\"$tenant\""),
                    "{title}: {expr} ignores the tenant variable"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Unit tests of the extractor
// ---------------------------------------------------------------------------------------

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|name| (*name).to_owned()).collect()
}

#[test]
fn extractor_finds_series_names_only() {
    let query = r#"
        # A comment naming not_a_metric.
        sum by (tenant, verdict) (
          rate(patrol_api_requests_total{operation="token", status_class=~"4xx|5xx"}[5m] offset 1d)
        )
        / on (job, instance) group_left (owner_name)
          max without (le) (patrol_token_info{reason="has, commas (and parens)"})
        and bool 0.5 > histogram_quantile(0.95, sum(rate(patrol_api_request_duration_seconds_bucket[$__rate_interval])))
        or absent(up{job="patrol"}) unless vector(1e3) * Inf
        + count(process_start_time_seconds @ start()) + 0x1f + topk(3, patrol_tokens)
        - group_left_metric:recorded
    "#;
    assert_eq!(
        metric_names(query),
        names(&[
            "group_left_metric:recorded",
            "patrol_api_request_duration_seconds_bucket",
            "patrol_api_requests_total",
            "patrol_token_info",
            "patrol_tokens",
            "process_start_time_seconds",
            "up",
        ])
    );
}

#[test]
fn extractor_skips_grafana_variables() {
    let query =
        r#"increase(patrol_deletions_total{tenant=~"$tenant"}[$__range]) * ${factor} + $scale"#;
    assert_eq!(metric_names(query), names(&["patrol_deletions_total"]));
}

#[test]
fn label_values_query_yields_its_selector() {
    assert_eq!(
        grafana_variable_query(
            r#"label_values(patrol_tokens_listed{job="$job", tenant=~"a,b"}, tenant)"#
        ),
        r#"patrol_tokens_listed{job="$job", tenant=~"a,b"}"#
    );
    assert_eq!(grafana_variable_query("label_values(tenant)"), "");
    assert_eq!(
        grafana_variable_query("query_result(topk(5, patrol_tokens))"),
        "topk(5, patrol_tokens)"
    );
}

#[test]
fn yaml_values_reads_inline_quoted_and_block_scalars() {
    let yaml = r#"
groups:
  - name: sample
    rules:
      - alert: Inline
        expr: patrol_tokens > 0 # a comment
      - alert: Block
        expr: |
          2 <
            patrol_last_run_duration_seconds

        for: 5m
        annotations:
          summary: 'It''s quoted'
          description: "Say \"hello\""
"#;
    assert_eq!(
        yaml_values(yaml, "expr"),
        vec![
            "patrol_tokens > 0".to_owned(),
            "2 <\npatrol_last_run_duration_seconds".to_owned(),
        ]
    );
    assert_eq!(yaml_values(yaml, "summary"), vec!["It's quoted".to_owned()]);
    assert_eq!(
        yaml_values(yaml, "description"),
        vec!["Say \"hello\"".to_owned()]
    );
    let alerts = alert_rules(yaml);
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[1].name, "Block");
    assert_eq!(yaml_values(&alerts[1].text, "for"), vec!["5m".to_owned()]);
}

#[test]
fn missing_names_lists_names_not_exported() {
    let scrape = "\
# HELP patrol_tokens Tokens by verdict.
# TYPE patrol_tokens gauge
patrol_tokens{tenant=\"acme\",verdict=\"keep\"} 3
# TYPE patrol_api_request_duration_seconds histogram
# TYPE patrol_deletions_total counter
# TYPE patrol_runs counter
patrol_runs_total{tenant=\"acme\",result=\"success\"} 1
process_start_time_seconds 1.7e9
";
    let exposition = Exposition::parse(scrape);
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in [
        "patrol_tokens",
        // Declared without samples: a histogram's series and a counter with no label set yet.
        "patrol_api_request_duration_seconds_bucket",
        "patrol_api_request_duration_seconds_count",
        "patrol_deletions_total",
        "patrol_runs_total",
        "process_start_time_seconds",
        "up",
        // Renamed or never exported.
        "patrol_token_count",
        "patrol_api_request_duration_seconds",
        "patrol_tokens_bucket",
    ] {
        used.entry(name.to_owned())
            .or_default()
            .insert("SomeAlert".to_owned());
    }
    assert_eq!(
        missing_names(&used, &exposition),
        vec![
            "patrol_api_request_duration_seconds (used by SomeAlert)".to_owned(),
            "patrol_token_count (used by SomeAlert)".to_owned(),
            "patrol_tokens_bucket (used by SomeAlert)".to_owned(),
        ]
    );
}

#[test]
fn renamed_metric_in_a_rule_is_reported() {
    let exposition = Exposition::parse(
        "patrol_breaker_tripped{tenant=\"acme\",breaker=\"clock_skew\"} 0\n\
         patrol_token_info{tenant=\"acme\",token_id=\"t1\"} 1\n",
    );
    let rule = "patrol_breaker_trips == 1 or patrol_token_info";
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in metric_names(rule) {
        used.entry(name)
            .or_default()
            .insert("PatrolBreakerTripped".to_owned());
    }
    assert_eq!(
        missing_names(&used, &exposition),
        vec!["patrol_breaker_trips (used by PatrolBreakerTripped)".to_owned()]
    );
}
