//! Validation of the policy file: every value checked, every problem collected.
//!
//! Problems come out sorted by line, so that the first one printed is the first one in
//! the file. Nothing here reads the network, and nothing reads a secret: whether each
//! secret exists is left to [`Config::check_secrets`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::TimeDelta;
use regex::Regex;
use toml::Spanned;

use super::duration::{parse_duration, parse_instant};
use super::error::{ConfigError, Locator, Problem};
use super::schedule::{parse_cron, parse_timezone};
use super::{Config, Log, Metrics, Schedule, SecretSource, Tenant, file};
use crate::isc::ApiVersion;
use crate::logging::LogFormat;
use crate::policy::{Action, Matchers, Policy, Rule};
use crate::safety::{Exemption, Settings};

/// `lastUsed` moves at most once a day, so a shorter staleness threshold would judge
/// tokens that are in daily use as unused.
const MIN_LAST_USED_AGE: TimeDelta = TimeDelta::days(2);

const DEFAULT_CRON: &str = "15 3 * * *";
const DEFAULT_TIMEZONE: &str = "UTC";
const DEFAULT_STATE_DIR: &str = "/var/lib/patrol";
const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
const DEFAULT_MAX_TOKEN_SERIES: usize = 1_000;
const DEFAULT_RATE_LIMIT: u32 = 100;
const DEFAULT_RATE_LIMIT_WINDOW: Duration = Duration::from_secs(10);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(30 * 60);

pub(super) fn build(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let locator = Locator::new(text);
    let (raw, unknown_keys) =
        parse_past_unknown_keys(text, &locator).map_err(|problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })?;

    let mut checker = Checker {
        locator,
        problems: unknown_keys,
        base_dir: path.parent().map(Path::to_owned).unwrap_or_default(),
    };
    let tenants = checker.tenants(&raw.tenant);
    let schedule = checker.schedule(raw.schedule.as_ref());
    let safety = checker.safety(raw.safety.as_ref());
    let metrics = checker.metrics(raw.metrics.as_ref());
    let state_dir = checker.state_dir(raw.state.as_ref());
    let audit_log_max_bytes = checker.audit_log_max_bytes(raw.state.as_ref());
    let log = checker.log(raw.log.as_ref());
    let policy = checker.rules(&raw.rule);
    let exemptions = checker.exemptions(&raw.exemption);

    if !checker.problems.is_empty() {
        let mut problems = without_masked_problems(checker.problems);
        problems.sort_by_key(|problem| (problem.line, problem.column));
        return Err(ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        });
    }
    Ok(Config {
        path: path.to_owned(),
        tenants,
        schedule,
        safety,
        metrics,
        state_dir,
        audit_log_max_bytes,
        log,
        policy,
        exemptions,
    })
}

/// Drops the problems of a whole table (such as a rule without any condition) when the
/// table also has an unknown key, because the unknown key is most likely the misspelled
/// one that was meant to complete it.
fn without_masked_problems(problems: Vec<Problem>) -> Vec<Problem> {
    let unknown_parents: Vec<String> = problems
        .iter()
        .filter(|problem| problem.message.starts_with("unknown key"))
        .filter_map(|problem| {
            problem
                .key
                .rsplit_once('.')
                .map(|(parent, _)| parent.to_owned())
        })
        .collect();
    problems
        .into_iter()
        .filter(|problem| !unknown_parents.contains(&problem.key))
        .collect()
}

/// Most unknown keys a file may have before the search for more problems stops.
const MAX_UNKNOWN_KEYS: usize = 50;

/// Deserializes the policy text, reporting every unknown key rather than the first one.
///
/// serde stops at the first unknown key, so each one found is blanked out (its line turned
/// into spaces, which keeps every other offset) and the text is parsed again. Any other
/// error ends the search; if blanking a line broke the syntax, only the unknown keys found
/// so far are reported, since the break is an artefact of the blanking.
fn parse_past_unknown_keys(
    text: &str,
    locator: &Locator<'_>,
) -> Result<(file::File, Vec<Problem>), Vec<Problem>> {
    let mut working = text.to_owned();
    let mut unknown = Vec::new();
    loop {
        match file::parse(&working, locator) {
            Ok(raw) => return Ok((raw, unknown)),
            Err(problem)
                if problem.message.starts_with("unknown key")
                    && problem.line > 0
                    && unknown.len() < MAX_UNKNOWN_KEYS =>
            {
                blank_entry(&mut working, problem.line);
                unknown.push(problem);
            }
            Err(_) if !unknown.is_empty() => return Err(unknown),
            Err(problem) => return Err(vec![problem]),
        }
    }
}

/// Replaces the key at 1-based line `line` with spaces, keeping byte offsets: the line
/// itself, or for a table header the whole table up to the next header.
fn blank_entry(text: &mut String, line: usize) {
    let lines: Vec<(usize, usize)> = text
        .split_inclusive('\n')
        .scan(0, |offset, piece| {
            let start = *offset;
            *offset += piece.len();
            Some((start, start + piece.trim_end_matches('\n').len()))
        })
        .collect();
    let Some(&(first_start, first_end)) = lines.get(line - 1) else {
        return;
    };
    let mut ranges = vec![(first_start, first_end)];
    if text[first_start..first_end].trim_start().starts_with('[') {
        ranges.extend(
            lines[line..]
                .iter()
                .take_while(|(start, end)| !text[*start..*end].trim_start().starts_with('['))
                .copied(),
        );
    }
    for (start, end) in ranges {
        let blank = " ".repeat(end - start);
        text.replace_range(start..end, &blank);
    }
}

struct Checker<'a> {
    locator: Locator<'a>,
    problems: Vec<Problem>,
    base_dir: PathBuf,
}

impl Checker<'_> {
    fn report<T>(
        &mut self,
        value: &Spanned<T>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let problem = self.locator.problem(value.span(), key, message);
        self.problems.push(problem);
    }

    fn duration(&mut self, value: &Spanned<String>, key: &str) -> Option<TimeDelta> {
        match parse_duration(value.get_ref()) {
            Ok(duration) => Some(duration),
            Err(message) => {
                self.report(value, key, message);
                None
            }
        }
    }

    fn positive_duration(
        &mut self,
        value: Option<&Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Duration {
        let Some(value) = value else { return default };
        match self.duration(value, key) {
            Some(duration) if duration > TimeDelta::zero() => duration.to_std().unwrap_or(default),
            Some(_) => {
                self.report(value, key, "must be longer than 0s");
                default
            }
            None => default,
        }
    }

    fn regex(&mut self, value: &Spanned<String>, key: &str) -> Option<Regex> {
        match Regex::new(value.get_ref()) {
            Ok(regex) => Some(regex),
            Err(error) => {
                let detail = error
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim_start_matches("error: ")
                    .to_owned();
                self.report(value, key, format!("invalid regular expression: {detail}"));
                None
            }
        }
    }

    fn tenants(&mut self, raw: &[Spanned<file::Tenant>]) -> Vec<Tenant> {
        if raw.is_empty() {
            // Nothing in the file marks the absence, so the problem points at its start.
            self.problems.push(Problem {
                line: 1,
                column: 1,
                key: "tenant".into(),
                message: "no [[tenant]] is configured; add one with name, api_url, client_id \
                          and a client secret source"
                    .into(),
            });
        }
        let mut tenants = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (index, spanned) in raw.iter().enumerate() {
            let tenant = spanned.get_ref();
            let key = |field: &str| format!("tenant[{index}].{field}");

            let name = tenant.name.get_ref().clone();
            if !is_valid_tenant_name(&name) {
                self.report(
                    &tenant.name,
                    key("name"),
                    format!(
                        "invalid tenant name \"{name}\": use letters, digits, '.', '_' and '-', \
                         starting with a letter or digit (it names the state directory)"
                    ),
                );
            } else if names.contains(&name) {
                self.report(
                    &tenant.name,
                    key("name"),
                    format!("duplicate tenant name \"{name}\""),
                );
            }
            names.push(name.clone());

            let api_url = tenant.api_url.get_ref().trim_end_matches('/').to_owned();
            if let Err(message) = check_api_url(&api_url) {
                self.report(&tenant.api_url, key("api_url"), message);
            }

            let api_version = match &tenant.api_version {
                None => ApiVersion::V3,
                Some(value) => match parse_api_version(value.get_ref()) {
                    Some(version) => version,
                    None => {
                        self.report(
                            value,
                            key("api_version"),
                            format!(
                                "unknown API version \"{}\", expected one of v3, beta, v2024, \
                                 v2025, v2026, v1",
                                value.get_ref()
                            ),
                        );
                        ApiVersion::V3
                    }
                },
            };

            let client_id = tenant.client_id.get_ref().clone();
            if client_id.is_empty() || client_id.chars().any(char::is_whitespace) {
                self.report(
                    &tenant.client_id,
                    key("client_id"),
                    "must be the auditor token's id: non-empty, without spaces",
                );
            }

            let secret = self.secret_source(spanned, index);
            let secret_position = [
                &tenant.client_secret_env,
                &tenant.client_secret_file,
                &tenant.client_secret_credential,
            ]
            .into_iter()
            .flatten()
            .next()
            .map_or((0, 0), |value| self.locator.position(value.span().start));
            let rate_limit_requests = match &tenant.rate_limit {
                None => DEFAULT_RATE_LIMIT,
                Some(value) => match u32::try_from(*value.get_ref()) {
                    Ok(limit) if (1..=10_000).contains(&limit) => limit,
                    _ => {
                        self.report(
                            value,
                            key("rate_limit"),
                            "must be between 1 and 10000 requests per window",
                        );
                        DEFAULT_RATE_LIMIT
                    }
                },
            };
            let rate_limit_window = self.positive_duration(
                tenant.rate_limit_window.as_ref(),
                &key("rate_limit_window"),
                DEFAULT_RATE_LIMIT_WINDOW,
            );
            let request_timeout = self.positive_duration(
                tenant.request_timeout.as_ref(),
                &key("request_timeout"),
                DEFAULT_REQUEST_TIMEOUT,
            );
            let run_timeout = self.positive_duration(
                tenant.run_timeout.as_ref(),
                &key("run_timeout"),
                DEFAULT_RUN_TIMEOUT,
            );

            let owner_id = tenant
                .owner_id
                .as_ref()
                .map(|value| value.get_ref().clone());
            if let (Some(value), Some(id)) = (&tenant.owner_id, &owner_id)
                && id.is_empty()
            {
                self.report(
                    value,
                    key("owner_id"),
                    "must not be empty; remove it to audit every owner",
                );
            }

            if let Some(secret) = secret {
                tenants.push(Tenant {
                    name,
                    api_url,
                    api_version,
                    client_id,
                    secret,
                    secret_position,
                    owner_id,
                    rate_limit_requests,
                    rate_limit_window,
                    request_timeout,
                    run_timeout,
                });
            }
        }
        tenants
    }

    fn secret_source(
        &mut self,
        spanned: &Spanned<file::Tenant>,
        index: usize,
    ) -> Option<SecretSource> {
        let tenant = spanned.get_ref();
        let mut sources = Vec::new();
        if let Some(name) = &tenant.client_secret_env {
            if name.get_ref().is_empty() {
                self.report(
                    name,
                    format!("tenant[{index}].client_secret_env"),
                    "must name an environment variable",
                );
            }
            sources.push(SecretSource::Env(name.get_ref().clone()));
        }
        if let Some(path) = &tenant.client_secret_file {
            let path = PathBuf::from(path.get_ref());
            let path = if path.is_relative() {
                self.base_dir.join(path)
            } else {
                path
            };
            sources.push(SecretSource::File(path));
        }
        if let Some(name) = &tenant.client_secret_credential {
            if name.get_ref().is_empty() || name.get_ref().contains('/') {
                self.report(
                    name,
                    format!("tenant[{index}].client_secret_credential"),
                    "must be a credential name without '/'",
                );
            }
            sources.push(SecretSource::Credential(name.get_ref().clone()));
        }
        match sources.len() {
            1 => sources.pop(),
            0 => {
                self.report(
                    spanned,
                    format!("tenant[{index}]"),
                    "no client secret source: set one of client_secret_env, client_secret_file \
                     or client_secret_credential",
                );
                None
            }
            _ => {
                self.report(
                    spanned,
                    format!("tenant[{index}]"),
                    "more than one client secret source: keep only one of client_secret_env, \
                     client_secret_file and client_secret_credential",
                );
                None
            }
        }
    }

    fn schedule(&mut self, raw: Option<&Spanned<file::Schedule>>) -> Schedule {
        let raw = raw.map(Spanned::get_ref);
        let run_on_start = raw
            .and_then(|schedule| schedule.run_on_start)
            .unwrap_or(false);
        let mut schedule = Schedule::from_valid(DEFAULT_CRON, DEFAULT_TIMEZONE, run_on_start);

        if let Some(cron) = raw.and_then(|schedule| schedule.cron.as_ref()) {
            match parse_cron(cron.get_ref()) {
                Ok(pattern) => {
                    schedule.cron = cron.get_ref().trim().to_owned();
                    schedule.pattern = pattern;
                }
                Err(message) => self.report(cron, "schedule.cron", message),
            }
        }
        if let Some(zone) = raw.and_then(|schedule| schedule.timezone.as_ref()) {
            match parse_timezone(zone.get_ref()) {
                Ok(timezone) => schedule.timezone = timezone,
                Err(message) => self.report(zone, "schedule.timezone", message),
            }
        }
        schedule
    }

    fn safety(&mut self, raw: Option<&Spanned<file::Safety>>) -> Settings {
        let defaults = Settings::default();
        let Some(raw) = raw.map(Spanned::get_ref) else {
            return defaults;
        };
        let optional_duration =
            |checker: &mut Self, value: Option<&Spanned<String>>, key: &str, default: TimeDelta| {
                let Some(value) = value else { return default };
                match checker.duration(value, key) {
                    Some(duration) => duration,
                    None => default,
                }
            };
        let min_token_age = optional_duration(
            self,
            raw.min_token_age.as_ref(),
            "safety.min_token_age",
            defaults.min_token_age,
        );
        let grace_period = optional_duration(
            self,
            raw.grace_period.as_ref(),
            "safety.grace_period",
            defaults.grace_period,
        );
        let max_clock_skew = optional_duration(
            self,
            raw.max_clock_skew.as_ref(),
            "safety.max_clock_skew",
            defaults.max_clock_skew,
        );
        if let Some(value) = &raw.max_clock_skew
            && max_clock_skew <= TimeDelta::zero()
        {
            self.report(value, "safety.max_clock_skew", "must be longer than 0s");
        }
        let max_deletions_per_run = match &raw.max_deletions_per_run {
            None => defaults.max_deletions_per_run,
            Some(value) => match usize::try_from(*value.get_ref()) {
                Ok(count) => count,
                Err(_) => {
                    self.report(value, "safety.max_deletions_per_run", "must be 0 or more");
                    defaults.max_deletions_per_run
                }
            },
        };
        let max_deletion_percent = match &raw.max_deletion_percent {
            None => defaults.max_deletion_percent,
            Some(value) => {
                let percent = *value.get_ref();
                if !(0.0..=100.0).contains(&percent) {
                    self.report(
                        value,
                        "safety.max_deletion_percent",
                        format!("{percent} is out of range: use a percentage from 0 to 100"),
                    );
                }
                percent
            }
        };
        Settings {
            dry_run: raw.dry_run.unwrap_or(defaults.dry_run),
            protect_managed: raw.protect_managed.unwrap_or(defaults.protect_managed),
            min_token_age,
            grace_period,
            max_deletions_per_run,
            max_deletion_percent,
            max_clock_skew,
        }
    }

    fn metrics(&mut self, raw: Option<&Spanned<file::Metrics>>) -> Metrics {
        let raw = raw.map(Spanned::get_ref);
        let listen = match raw.and_then(|metrics| metrics.listen.as_ref()) {
            None => DEFAULT_METRICS_LISTEN
                .parse()
                .expect("valid default address"),
            Some(value) => {
                match value.get_ref().parse::<SocketAddr>() {
                    Ok(address) => address,
                    Err(_) => {
                        self.report(
                        value,
                        "metrics.listen",
                        format!("invalid address \"{}\", expected IP:PORT such as \"127.0.0.1:9464\"", value.get_ref()),
                    );
                        DEFAULT_METRICS_LISTEN
                            .parse()
                            .expect("valid default address")
                    }
                }
            }
        };
        let max_token_series = match raw.and_then(|metrics| metrics.max_token_series.as_ref()) {
            None => DEFAULT_MAX_TOKEN_SERIES,
            Some(value) => match usize::try_from(*value.get_ref()) {
                Ok(count) => count,
                Err(_) => {
                    self.report(value, "metrics.max_token_series", "must be 0 or more");
                    DEFAULT_MAX_TOKEN_SERIES
                }
            },
        };
        Metrics {
            listen,
            max_token_series,
            token_labels: raw.and_then(|metrics| metrics.token_labels).unwrap_or(true),
        }
    }

    fn log(&mut self, raw: Option<&Spanned<file::Log>>) -> Log {
        let raw = raw.map(Spanned::get_ref);
        let mut log = Log::default();
        if let Some(level) = raw.and_then(|log| log.level.as_ref()) {
            match crate::logging::parse_level(level.get_ref()) {
                Ok(()) => log.level = level.get_ref().trim().to_owned(),
                Err(message) => self.report(level, "log.level", message),
            }
        }
        if let Some(format) = raw.and_then(|log| log.format.as_ref()) {
            match LogFormat::parse(format.get_ref()) {
                Some(parsed) => log.format = parsed,
                None => self.report(
                    format,
                    "log.format",
                    format!(
                        "unknown log format \"{}\", expected \"auto\", \"text\" or \"json\"",
                        format.get_ref()
                    ),
                ),
            }
        }
        log
    }

    fn state_dir(&mut self, raw: Option<&Spanned<file::State>>) -> PathBuf {
        match raw.and_then(|state| state.get_ref().dir.as_ref()) {
            Some(dir) if dir.get_ref().is_empty() => {
                self.report(dir, "state.dir", "must not be empty");
                PathBuf::from(DEFAULT_STATE_DIR)
            }
            Some(dir) => {
                let path = PathBuf::from(dir.get_ref());
                if path.is_relative() {
                    self.base_dir.join(path)
                } else {
                    path
                }
            }
            // systemd sets STATE_DIRECTORY for units with StateDirectory=.
            None => std::env::var_os("STATE_DIRECTORY")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
        }
    }

    fn audit_log_max_bytes(&mut self, raw: Option<&Spanned<file::State>>) -> u64 {
        let default = crate::state::Rotation::default().max_bytes;
        let Some(value) = raw.and_then(|state| state.get_ref().audit_log_max_bytes.as_ref()) else {
            return default;
        };
        match u64::try_from(*value.get_ref()) {
            Ok(bytes) if bytes >= 1_024 => bytes,
            _ => {
                self.report(
                    value,
                    "state.audit_log_max_bytes",
                    format!("must be at least 1024 bytes; the default is {default} (16 MiB)"),
                );
                default
            }
        }
    }

    fn rules(&mut self, raw: &[Spanned<file::Rule>]) -> Policy {
        let mut rules = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (index, spanned) in raw.iter().enumerate() {
            let rule = spanned.get_ref();
            let key = |field: &str| format!("rule[{index}].{field}");

            let name = rule.name.get_ref().clone();
            if name.trim().is_empty() {
                self.report(&rule.name, key("name"), "must not be empty");
            } else if names.contains(&name) {
                self.report(
                    &rule.name,
                    key("name"),
                    format!("duplicate rule name \"{name}\"; rule names must be unique"),
                );
            }
            names.push(name.clone());

            let action = Action::parse(rule.action.get_ref());
            if action.is_none() {
                self.report(
                    &rule.action,
                    key("action"),
                    format!(
                        "unknown action \"{}\", expected one of keep, report, delete",
                        rule.action.get_ref()
                    ),
                );
            }

            let mut matchers = Matchers {
                never_used: rule.never_used.as_ref().map(|value| *value.get_ref()),
                expired: rule.expired.as_ref().map(|value| *value.get_ref()),
                never_expires: rule.never_expires.as_ref().map(|value| *value.get_ref()),
                managed: rule.managed,
                ..Matchers::default()
            };
            if let Some(value) = &rule.last_used_older_than {
                matchers.last_used_older_than = self.duration(value, &key("last_used_older_than"));
                if let Some(age) = matchers.last_used_older_than
                    && age < MIN_LAST_USED_AGE
                {
                    self.report(
                        value,
                        key("last_used_older_than"),
                        "must be at least 2d: lastUsed is updated at most once a day, so a \
                         shorter threshold flags tokens that are in daily use",
                    );
                }
            }
            if let Some(value) = &rule.created_older_than {
                matchers.created_older_than = self.duration(value, &key("created_older_than"));
            }
            if let Some(value) = &rule.expires_within {
                matchers.expires_within = self.duration(value, &key("expires_within"));
            }
            if let Some(value) = &rule.name_matches {
                matchers.name_matches = self.regex(value, &key("name_matches"));
            }
            if let Some(value) = &rule.owner_name_matches {
                matchers.owner_name_matches = self.regex(value, &key("owner_name_matches"));
            }
            if let Some(value) = &rule.scope_includes {
                if value.get_ref().is_empty() {
                    self.report(value, key("scope_includes"), "must list at least one scope");
                }
                matchers.scope_includes = Some(value.get_ref().clone());
            }
            if let Some(value) = &rule.owner_ids {
                if value.get_ref().is_empty() {
                    self.report(
                        value,
                        key("owner_ids"),
                        "must list at least one identity id",
                    );
                }
                matchers.owner_ids = Some(value.get_ref().clone());
            }
            let declared = [
                rule.last_used_older_than.is_some(),
                rule.never_used.is_some(),
                rule.created_older_than.is_some(),
                rule.expires_within.is_some(),
                rule.expired.is_some(),
                rule.never_expires.is_some(),
                rule.scope_includes.is_some(),
                rule.name_matches.is_some(),
                rule.owner_name_matches.is_some(),
                rule.owner_ids.is_some(),
                rule.managed.is_some(),
            ];
            if !declared.contains(&true) {
                self.report(
                    &rule.name,
                    format!("rule[{index}]"),
                    format!(
                        "rule \"{name}\" has no condition, so it would match every token; add \
                         at least one, such as last_used_older_than = \"90d\""
                    ),
                );
            }

            self.contradictions(rule, index);

            if let Some(action) = action {
                rules.push(Rule {
                    name,
                    action,
                    description: rule.description.clone(),
                    matchers,
                });
            }
        }
        Policy { rules }
    }

    /// Reports pairs of conditions that no token can meet together, since such a rule can
    /// never match and was certainly meant otherwise.
    fn contradictions(&mut self, rule: &file::Rule, index: usize) {
        let is_true = |value: &Option<Spanned<bool>>| {
            value
                .as_ref()
                .filter(|value| *value.get_ref())
                .map(Spanned::span)
        };
        let key = |field: &str| format!("rule[{index}].{field}");

        if let (Some(span), Some(_)) = (is_true(&rule.never_used), &rule.last_used_older_than) {
            let problem = self.locator.problem(
                span,
                key("never_used"),
                "contradicts last_used_older_than: a token that was never used has no lastUsed, \
                 so this rule can never match; split it into two rules",
            );
            self.problems.push(problem);
        }
        if let (Some(span), Some(_)) = (is_true(&rule.expired), &rule.expires_within) {
            let problem = self.locator.problem(
                span,
                key("expired"),
                "contradicts expires_within, which matches only tokens that have not expired \
                 yet, so this rule can never match; split it into two rules",
            );
            self.problems.push(problem);
        }
        if let Some(span) = is_true(&rule.never_expires) {
            let other = if is_true(&rule.expired).is_some() {
                Some("expired = true")
            } else if rule.expires_within.is_some() {
                Some("expires_within")
            } else {
                None
            };
            if let Some(other) = other {
                let problem = self.locator.problem(
                    span,
                    key("never_expires"),
                    format!(
                        "contradicts {other}: a token that never expires has no expiration \
                         date, so this rule can never match; split it into two rules"
                    ),
                );
                self.problems.push(problem);
            }
        }
    }

    fn exemptions(&mut self, raw: &[Spanned<file::Exemption>]) -> Vec<Exemption> {
        let mut exemptions = Vec::new();
        for (index, spanned) in raw.iter().enumerate() {
            let exemption = spanned.get_ref();
            let key = |field: &str| format!("exemption[{index}].{field}");

            if exemption.token_id.is_none()
                && exemption.owner_id.is_none()
                && exemption.name_matches.is_none()
            {
                self.report(
                    spanned,
                    format!("exemption[{index}]"),
                    "selects nothing: set token_id, owner_id or name_matches",
                );
            }
            for (value, field) in [
                (&exemption.token_id, "token_id"),
                (&exemption.owner_id, "owner_id"),
            ] {
                if let Some(value) = value
                    && value.get_ref().trim().is_empty()
                {
                    self.report(value, key(field), "must not be empty");
                }
            }
            let reason = match &exemption.reason {
                Some(reason) if !reason.get_ref().trim().is_empty() => {
                    reason.get_ref().trim().to_owned()
                }
                Some(reason) => {
                    self.report(
                        reason,
                        key("reason"),
                        "must not be empty: say why the token is kept and who agreed",
                    );
                    String::new()
                }
                None => {
                    self.report(
                        spanned,
                        key("reason"),
                        "missing: every exemption needs a reason saying why the token is kept",
                    );
                    String::new()
                }
            };
            let name_matches = exemption
                .name_matches
                .as_ref()
                .and_then(|value| self.regex(value, &key("name_matches")));
            let until =
                exemption
                    .until
                    .as_ref()
                    .and_then(|value| match parse_instant(value.get_ref()) {
                        Ok(instant) => Some(instant),
                        Err(message) => {
                            self.report(value, key("until"), message);
                            None
                        }
                    });
            exemptions.push(Exemption {
                token_id: exemption
                    .token_id
                    .as_ref()
                    .map(|value| value.get_ref().clone()),
                owner_id: exemption
                    .owner_id
                    .as_ref()
                    .map(|value| value.get_ref().clone()),
                name_matches,
                reason,
                until,
            });
        }
        exemptions
    }
}

fn is_valid_tenant_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphanumeric())
        && characters
            .all(|character| character.is_ascii_alphanumeric() || "._-".contains(character))
}

fn parse_api_version(text: &str) -> Option<ApiVersion> {
    text.parse().ok()
}

/// Accepts `https://` URLs, and `http://` only for loopback hosts, where tests and the
/// simulated tenant run. The URL is the tenant's API base: no credentials, query, fragment
/// or API version path, since the client adds the version from `api_version`.
fn check_api_url(text: &str) -> Result<(), String> {
    let shown = without_userinfo(text);
    let url = reqwest::Url::parse(text).map_err(|error| {
        format!(
            "invalid URL \"{shown}\" ({error}), expected for example \
             \"https://acme.api.identitynow.com\""
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "URL \"{shown}\" must not contain a user name or password; the client secret \
             belongs in client_secret_env, client_secret_file or client_secret_credential"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("URL \"{text}\" must not have a query or fragment"));
    }
    let last_segment = url
        .path_segments()
        .and_then(|mut segments| segments.rfind(|segment| !segment.is_empty()));
    if let Some(version) = last_segment
        && parse_api_version(version).is_some()
    {
        return Err(format!(
            "URL \"{text}\" ends with the API version \"/{version}\"; remove it and set \
             api_version = \"{version}\" instead"
        ));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if crate::isc::url::is_loopback(&url) => Ok(()),
        "http" => Err(format!(
            "plain http is allowed only for loopback addresses, and \"{text}\" is not one; use https://"
        )),
        scheme => Err(format!(
            "unsupported scheme \"{scheme}\" in \"{text}\"; use https://"
        )),
    }
}

/// Replaces anything between `://` and `@` in a URL, so that messages never show a
/// password written into the URL.
fn without_userinfo(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => text.to_owned(),
    }
}
