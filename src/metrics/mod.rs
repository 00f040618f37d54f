//! The daemon's Prometheus metrics: what is kept between scrapes, and the exposition that
//! `/metrics` serves.
//!
//! [`Metrics`] is shared by the tenant workers (which record each run), the scheduler
//! (next runs, skipped occurrences), the reload handler and the HTTP server. It keeps
//! plain values under one mutex and builds every series at scrape time, so a scrape shows
//! each tenant either before or after a run, never halfway. Request counts are read at
//! scrape time from the tenants' clients, so they move during a long run.
//!
//! Names, types and labels follow the Prometheus naming guide and are a contract with the
//! shipped alert rules; `docs/metrics.md` lists each series. Per-token series exist only
//! for flagged tokens (verdict report or delete) of the last judged run, at most
//! `[metrics] max_token_series` per tenant. How a failed run affects them is described in
//! `tenant`. What a run decides is the audit's business; this module only counts.

mod exposition;
mod tenant;

pub use exposition::CONTENT_TYPE;
pub use tenant::{Judged, RunResult, TokenSeries, TokenSeriesSettings};

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use prometheus::core::Collector;

use crate::audit::{Run, RunError};
use crate::config::Config;
use crate::isc::Client;
use exposition::{Family, MetricType, unix_seconds};
use tenant::{BREAKERS, DELETION_RESULTS, OUTCOMES, TenantMetrics, VERDICTS};

/// One exemption of the policy as the metrics show it.
#[derive(Debug, Clone, PartialEq)]
struct ExemptionSeries {
    /// Like `token_id=bbbb…` or `owner_id=…,name_matches=^svc-`.
    selector: String,
    reason: String,
    until: Option<DateTime<Utc>>,
}

#[derive(Debug)]
struct State {
    settings: TokenSeriesSettings,
    exemptions: Vec<ExemptionSeries>,
    tenants: BTreeMap<String, TenantMetrics>,
    reloads_success: u64,
    reloads_failure: u64,
    last_reload_successful: bool,
}

/// The metrics of one daemon process.
pub struct Metrics {
    state: Mutex<State>,
    /// The `process_*` series; only Linux has them.
    process: Option<prometheus::process_collector::ProcessCollector>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Creates the metrics of a daemon running `config`.
    pub fn new(config: &Config) -> Metrics {
        let metrics = Metrics {
            state: Mutex::new(State {
                settings: settings_of(config),
                exemptions: Vec::new(),
                tenants: BTreeMap::new(),
                reloads_success: 0,
                reloads_failure: 0,
                last_reload_successful: true,
            }),
            process: process_collector(),
        };
        metrics.set_config(config);
        metrics
    }

    /// Applies a (re)loaded configuration: tenants that are gone lose all their series,
    /// new ones start at zero. The token series settings apply from each tenant's next
    /// run.
    pub fn set_config(&self, config: &Config) {
        let mut state = self.lock();
        state.settings = settings_of(config);
        state.exemptions = config
            .exemptions
            .iter()
            .map(|exemption| ExemptionSeries {
                selector: selector(exemption),
                reason: exemption.reason.clone(),
                until: exemption.until,
            })
            .collect();
        state
            .tenants
            .retain(|name, _| config.tenant(name).is_some());
        for tenant in &config.tenants {
            state.tenants.entry(tenant.name.clone()).or_default();
        }
    }

    /// Sets the client the tenant's next run uses. The counts of the one it replaces stay
    /// in the totals.
    pub fn set_client(&self, tenant: &str, client: Client) {
        let mut state = self.lock();
        if let Some(metrics) = state.tenants.get_mut(tenant)
            && let Some(old) = metrics.client.replace(client)
        {
            metrics.retiring.push(old);
        }
    }

    /// Records a finished run of `tenant`. A tenant removed by a reload while its run was
    /// going is not added back.
    pub fn record_run(
        &self,
        tenant: &str,
        result: &Result<Run, RunError>,
        ended: DateTime<Utc>,
        duration: Duration,
    ) {
        let mut state = self.lock();
        let settings = state.settings;
        if let Some(metrics) = state.tenants.get_mut(tenant) {
            metrics.record_run(result, ended, duration, settings);
        }
    }

    /// Counts an occurrence skipped because the tenant's previous run was still going.
    pub fn record_skip(&self, tenant: &str) {
        if let Some(metrics) = self.lock().tenants.get_mut(tenant) {
            metrics.skipped += 1;
        }
    }

    /// Sets the tenant's next scheduled run and the time between its next two.
    pub fn set_schedule(
        &self,
        tenant: &str,
        next: Option<DateTime<Utc>>,
        interval: Option<TimeDelta>,
    ) {
        if let Some(metrics) = self.lock().tenants.get_mut(tenant) {
            metrics.next_run = next;
            metrics.interval = interval;
        }
    }

    /// Counts a SIGHUP reload and whether the new configuration was accepted.
    pub fn record_reload(&self, accepted: bool) {
        let mut state = self.lock();
        if accepted {
            state.reloads_success += 1;
        } else {
            state.reloads_failure += 1;
        }
        state.last_reload_successful = accepted;
    }

    /// Returns every series in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut families = {
            let state = self.lock();
            collect(&state, Utc::now())
        };
        if let Some(process) = &self.process {
            families.extend(process.collect());
        }
        exposition::encode(families)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Each update leaves the state consistent, so a panic elsewhere does not poison it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn settings_of(config: &Config) -> TokenSeriesSettings {
    TokenSeriesSettings {
        max_token_series: config.metrics.max_token_series,
        token_labels: config.metrics.token_labels,
    }
}

fn selector(exemption: &crate::safety::Exemption) -> String {
    let mut parts = Vec::new();
    if let Some(id) = &exemption.token_id {
        parts.push(format!("token_id={id}"));
    }
    if let Some(owner) = &exemption.owner_id {
        parts.push(format!("owner_id={owner}"));
    }
    if let Some(pattern) = &exemption.name_matches {
        parts.push(format!("name_matches={}", pattern.as_str()));
    }
    parts.join(",")
}

#[cfg(target_os = "linux")]
fn process_collector() -> Option<prometheus::process_collector::ProcessCollector> {
    Some(prometheus::process_collector::ProcessCollector::for_self())
}

#[cfg(not(target_os = "linux"))]
fn process_collector() -> Option<prometheus::process_collector::ProcessCollector> {
    None
}

/// Builds every patrol family from the state at `now`.
fn collect(state: &State, now: DateTime<Utc>) -> Vec<prometheus::proto::MetricFamily> {
    let mut families = Vec::new();
    let mut push = |family: Family| families.push(family.into_inner());

    let mut build = Family::gauge(
        "patrol_build_info",
        "Always 1; the version label names the running patrol.",
    );
    build.sample(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    push(build);

    let mut reloads = Family::counter(
        "patrol_config_reloads_total",
        "Configuration reloads on SIGHUP, by whether the new configuration was accepted.",
    );
    reloads.sample(&[("result", "success")], state.reloads_success as f64);
    reloads.sample(&[("result", "failure")], state.reloads_failure as f64);
    push(reloads);
    let mut reload_ok = Family::gauge(
        "patrol_config_last_reload_successful",
        "1 if the last configuration reload was accepted (or none happened), 0 if it was \
         rejected and the previous configuration is still in use.",
    );
    reload_ok.sample(&[], f64::from(u8::from(state.last_reload_successful)));
    push(reload_ok);

    for family in run_families(state) {
        push(family);
    }
    for family in judged_families(state) {
        push(family);
    }
    for family in token_families(state) {
        push(family);
    }
    for family in exemption_families(state, now) {
        push(family);
    }
    for family in api_families(state) {
        push(family);
    }
    families
}

/// Builds the runs, deletions and schedule of every tenant, present from the start.
fn run_families(state: &State) -> Vec<Family> {
    let mut runs = Family::counter(
        "patrol_runs_total",
        "Finished runs by result: success, breaker (a breaker held every delete), \
         incomplete (some deletes failed), auth_failed, unreachable, error.",
    );
    let mut skipped = Family::counter(
        "patrol_runs_skipped_total",
        "Scheduled runs skipped because the previous run of the tenant was still going.",
    );
    let mut deletions = Family::counter(
        "patrol_deletions_total",
        "Tokens whose deletion was attempted, by result: deleted, gone (already deleted, \
         HTTP 404) or failed.",
    );
    let mut duration = Family::gauge(
        "patrol_last_run_duration_seconds",
        "Duration of the last run, whatever its result.",
    );
    let mut last_run = Family::gauge(
        "patrol_last_run_timestamp_seconds",
        "Unix time at which the last run ended, whatever its result.",
    );
    let mut last_success = Family::gauge(
        "patrol_last_success_timestamp_seconds",
        "Unix time at which the last run that listed and judged the tenant ended (result \
         success, breaker or incomplete); the token series describe that run.",
    );
    let mut next_run = Family::gauge(
        "patrol_schedule_next_run_timestamp_seconds",
        "Unix time of the next scheduled run.",
    );
    let mut interval = Family::gauge(
        "patrol_schedule_interval_seconds",
        "Time between the next two scheduled runs.",
    );

    for (tenant, metrics) in &state.tenants {
        let tenant = tenant.as_str();
        for (result, count) in RunResult::ALL.iter().zip(metrics.runs) {
            runs.sample(
                &[("tenant", tenant), ("result", result.as_str())],
                count as f64,
            );
        }
        skipped.sample(&[("tenant", tenant)], metrics.skipped as f64);
        for (result, count) in DELETION_RESULTS.iter().zip(metrics.deletions) {
            deletions.sample(&[("tenant", tenant), ("result", result)], count as f64);
        }
        if let Some(seconds) = metrics.last_run_duration {
            duration.sample(&[("tenant", tenant)], seconds.as_secs_f64());
        }
        if let Some(end) = metrics.last_run_end {
            last_run.sample(&[("tenant", tenant)], unix_seconds(end));
        }
        if let Some(end) = metrics.last_success_end {
            last_success.sample(&[("tenant", tenant)], unix_seconds(end));
        }
        if let Some(next) = metrics.next_run {
            next_run.sample(&[("tenant", tenant)], unix_seconds(next));
        }
        if let Some(seconds) = metrics.interval {
            interval.sample(&[("tenant", tenant)], seconds.as_seconds_f64());
        }
    }
    vec![
        runs,
        skipped,
        deletions,
        duration,
        last_run,
        last_success,
        next_run,
        interval,
    ]
}

/// Builds the counts of the last judged run, absent until the tenant's first one.
fn judged_families(state: &State) -> Vec<Family> {
    let mut tokens = Family::gauge(
        "patrol_tokens",
        "Tokens by verdict (keep, report, delete) in the last judged run.",
    );
    let mut outcomes = Family::gauge(
        "patrol_token_outcomes",
        "Tokens by outcome in the last judged run; every outcome is present.",
    );
    let mut listed = Family::gauge(
        "patrol_tokens_listed",
        "Tokens in the unfiltered listing of the last judged run.",
    );
    let mut dropped = Family::gauge(
        "patrol_token_series_dropped",
        "Flagged tokens without per-token series because of [metrics] max_token_series.",
    );
    let mut breakers = Family::gauge(
        "patrol_breaker_tripped",
        "1 if the breaker held every delete in the last judged run, else 0.",
    );
    let mut disagreements = Family::gauge(
        "patrol_filter_disagreements",
        "Tokens for which the server's lastUsed filters disagreed with the local reading \
         in the last judged run.",
    );
    let mut skew = Family::gauge(
        "patrol_clock_skew_seconds",
        "Local clock minus the API's Date header in the last judged run.",
    );

    for (tenant, metrics) in &state.tenants {
        let Some(judged) = &metrics.judged else {
            continue;
        };
        let tenant = tenant.as_str();
        for (verdict, count) in VERDICTS.iter().zip(judged.verdicts) {
            tokens.sample(
                &[("tenant", tenant), ("verdict", verdict.as_str())],
                count as f64,
            );
        }
        for (outcome, count) in OUTCOMES.iter().zip(judged.outcomes) {
            outcomes.sample(&[("tenant", tenant), ("outcome", outcome)], count as f64);
        }
        listed.sample(&[("tenant", tenant)], judged.listed as f64);
        dropped.sample(&[("tenant", tenant)], judged.dropped as f64);
        for breaker in BREAKERS {
            let tripped = judged.breaker == Some(breaker);
            breakers.sample(
                &[("tenant", tenant), ("breaker", breaker)],
                f64::from(u8::from(tripped)),
            );
        }
        disagreements.sample(&[("tenant", tenant)], judged.filter_disagreements as f64);
        if let Some(seconds) = judged.clock_skew_seconds {
            skew.sample(&[("tenant", tenant)], seconds as f64);
        }
    }
    vec![
        tokens,
        outcomes,
        listed,
        dropped,
        breakers,
        disagreements,
        skew,
    ]
}

/// Builds one series set per flagged token of the last judged run.
fn token_families(state: &State) -> Vec<Family> {
    let mut info = Family::gauge(
        "patrol_token_info",
        "Always 1, one per flagged token (verdict report or delete) of the last judged run; \
         token_name and owner_name are empty when [metrics] token_labels = false.",
    );
    let mut last_used = Family::gauge(
        "patrol_token_last_used_timestamp_seconds",
        "Unix time of the flagged token's lastUsed, for tokens that were used.",
    );
    let mut created = Family::gauge(
        "patrol_token_created_timestamp_seconds",
        "Unix time at which the flagged token was created.",
    );
    let mut expiration = Family::gauge(
        "patrol_token_expiration_timestamp_seconds",
        "Unix time at which the flagged token expires, for tokens that expire.",
    );
    let mut deletion_due = Family::gauge(
        "patrol_token_deletion_due_timestamp_seconds",
        "Unix time at which the grace period of the flagged token ends and it becomes due \
         for deletion, for tokens in grace.",
    );

    for (tenant, metrics) in &state.tenants {
        let Some(judged) = &metrics.judged else {
            continue;
        };
        let tenant = tenant.as_str();
        for token in &judged.tokens {
            let id = [("tenant", tenant), ("token_id", token.id.as_str())];
            info.sample(
                &[
                    ("tenant", tenant),
                    ("token_id", &token.id),
                    ("token_name", &token.name),
                    ("owner_id", &token.owner_id),
                    ("owner_name", &token.owner_name),
                    ("verdict", token.verdict),
                    ("outcome", token.outcome),
                ],
                1.0,
            );
            if let Some(instant) = token.last_used {
                last_used.sample(&id, unix_seconds(instant));
            }
            created.sample(&id, unix_seconds(token.created));
            if let Some(instant) = token.expiration {
                expiration.sample(&id, unix_seconds(instant));
            }
            if let Some(instant) = token.deletion_due {
                deletion_due.sample(&id, unix_seconds(instant));
            }
        }
    }
    vec![info, last_used, created, expiration, deletion_due]
}

/// Builds the policy's exemptions, for every tenant, at `now`.
fn exemption_families(state: &State, now: DateTime<Utc>) -> Vec<Family> {
    let mut counts = Family::gauge(
        "patrol_exemptions",
        "Exemptions of the policy by state: active, or expired (past their until).",
    );
    let mut expiry = Family::gauge(
        "patrol_exemption_expiry_timestamp_seconds",
        "Unix time at which the exemption expires, for exemptions with an until.",
    );
    let expired = state
        .exemptions
        .iter()
        .filter(|exemption| exemption.until.is_some_and(|until| until <= now))
        .count();
    let active = state.exemptions.len() - expired;
    // Two exemptions with the same selector and reason would make two samples of one
    // series, which Prometheus rejects; the later `until` is the one that matters.
    let mut expiries: BTreeMap<(&str, &str), DateTime<Utc>> = BTreeMap::new();
    for exemption in &state.exemptions {
        if let Some(until) = exemption.until {
            let key = (exemption.selector.as_str(), exemption.reason.as_str());
            let latest = expiries.entry(key).or_insert(until);
            *latest = (*latest).max(until);
        }
    }

    for tenant in state.tenants.keys() {
        let tenant = tenant.as_str();
        counts.sample(&[("tenant", tenant), ("state", "active")], active as f64);
        counts.sample(&[("tenant", tenant), ("state", "expired")], expired as f64);
        for ((selector, reason), until) in &expiries {
            expiry.sample(
                &[
                    ("tenant", tenant),
                    ("exemption", selector),
                    ("reason", reason),
                ],
                unix_seconds(*until),
            );
        }
    }
    vec![counts, expiry]
}

/// Builds the request counts of the tenants' clients since the daemon started.
fn api_families(state: &State) -> Vec<Family> {
    let mut requests = Family::counter(
        "patrol_api_requests_total",
        "HTTP requests to the tenant's API, by operation (token, list, delete) and status \
         class (2xx, 4xx, 5xx, or error when no response arrived); each retry counts.",
    );
    let mut latency = Family::new(
        "patrol_api_request_duration_seconds",
        "Time from sending an API request to reading its whole response body.",
        MetricType::HISTOGRAM,
    );
    let mut retries = Family::counter(
        "patrol_api_retries_total",
        "API requests sent again after a retryable failure.",
    );
    let mut throttled = Family::counter(
        "patrol_api_throttled_total",
        "API responses with status 429 (rate limited).",
    );
    let mut waited = Family::counter(
        "patrol_api_rate_limit_wait_seconds_total",
        "Time spent waiting for the client's own pacing or a Retry-After delay; concurrent \
         waits add up.",
    );

    for (tenant, metrics) in &state.tenants {
        let tenant = tenant.as_str();
        let stats = metrics.request_stats();
        for ((operation, class), count) in &stats.requests {
            requests.sample(
                &[
                    ("tenant", tenant),
                    ("operation", operation),
                    ("status_class", class),
                ],
                *count as f64,
            );
        }
        for (operation, histogram) in &stats.latency {
            latency.histogram(&[("tenant", tenant), ("operation", operation)], histogram);
        }
        retries.sample(&[("tenant", tenant)], stats.retries as f64);
        throttled.sample(&[("tenant", tenant)], stats.rate_limited as f64);
        waited.sample(&[("tenant", tenant)], stats.rate_limit_wait.as_secs_f64());
    }
    vec![requests, latency, retries, throttled, waited]
}

#[cfg(test)]
mod tests;
