//! The policy file exactly as written: serde types that reject unknown keys.
//!
//! Values that need checking beyond their TOML type (durations, instants, regular
//! expressions, actions, addresses) are kept as spanned strings here, so that the
//! validation in `build` can report every problem with its line instead of stopping at the
//! first one.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub tenant: Vec<Spanned<Tenant>>,
    #[serde(default)]
    pub schedule: Option<Spanned<Schedule>>,
    #[serde(default)]
    pub safety: Option<Spanned<Safety>>,
    #[serde(default)]
    pub metrics: Option<Spanned<Metrics>>,
    #[serde(default)]
    pub state: Option<Spanned<State>>,
    #[serde(default)]
    pub rule: Vec<Spanned<Rule>>,
    #[serde(default)]
    pub exemption: Vec<Spanned<Exemption>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub name: Spanned<String>,
    pub api_url: Spanned<String>,
    pub api_version: Option<Spanned<String>>,
    pub client_id: Spanned<String>,
    pub client_secret_env: Option<Spanned<String>>,
    pub client_secret_file: Option<Spanned<String>>,
    pub client_secret_credential: Option<Spanned<String>>,
    pub owner_id: Option<Spanned<String>>,
    pub rate_limit: Option<Spanned<i64>>,
    pub rate_limit_window: Option<Spanned<String>>,
    pub request_timeout: Option<Spanned<String>>,
    pub run_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub cron: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub run_on_start: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Safety {
    pub dry_run: Option<bool>,
    pub protect_managed: Option<bool>,
    pub min_token_age: Option<Spanned<String>>,
    pub grace_period: Option<Spanned<String>>,
    pub max_deletions_per_run: Option<Spanned<i64>>,
    pub max_deletion_percent: Option<Spanned<f64>>,
    pub max_clock_skew: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    pub listen: Option<Spanned<String>>,
    pub max_token_series: Option<Spanned<i64>>,
    pub token_labels: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub dir: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: Spanned<String>,
    pub action: Spanned<String>,
    pub description: Option<String>,
    pub last_used_older_than: Option<Spanned<String>>,
    pub never_used: Option<bool>,
    pub created_older_than: Option<Spanned<String>>,
    pub expires_within: Option<Spanned<String>>,
    pub expired: Option<bool>,
    pub never_expires: Option<bool>,
    pub scope_includes: Option<Spanned<Vec<String>>>,
    pub name_matches: Option<Spanned<String>>,
    pub owner_name_matches: Option<Spanned<String>>,
    pub owner_ids: Option<Spanned<Vec<String>>>,
    pub managed: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    pub token_id: Option<Spanned<String>>,
    pub owner_id: Option<Spanned<String>>,
    pub name_matches: Option<Spanned<String>>,
    pub reason: Option<Spanned<String>>,
    pub until: Option<Spanned<String>>,
}
