//! The policy file: schema, defaults, validation and the secrets it points to.
//!
//! Loading happens in two steps. `file` deserializes the TOML into types that mirror it and
//! reject unknown keys; `build` checks every value and turns them into the typed
//! [`Config`], collecting every problem with its line and key instead of stopping at the
//! first one. Secrets are not read here: [`SecretSource::load`] reads them when a run needs
//! them, and `check-config` calls it to tell whether they exist.

mod build;
pub mod duration;
mod error;
mod file;
mod schedule;
mod secret;

pub use error::{ConfigError, Problem};
pub use schedule::{Schedule, parse_cron, parse_timezone};
pub use secret::{SecretError, SecretSource};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::isc::ApiVersion;
use crate::logging::LogFormat;
use crate::policy::Policy;
use crate::safety::{Exemption, Settings};

/// Where `patrol` looks for its policy file when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/patrol/patrol.toml";

/// A loaded and validated policy file.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub tenants: Vec<Tenant>,
    pub schedule: Schedule,
    pub safety: Settings,
    pub metrics: Metrics,
    pub state_dir: PathBuf,
    /// Size at which the audit log is rotated to a numbered file.
    pub audit_log_max_bytes: u64,
    pub log: Log,
    pub policy: Policy,
    pub exemptions: Vec<Exemption>,
}

/// One `[[tenant]]`: where its API is and how patrol authenticates.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub name: String,
    pub api_url: String,
    pub api_version: ApiVersion,
    pub client_id: String,
    pub secret: SecretSource,
    /// 1-based line and column of the client secret key in the policy file, so that a
    /// missing secret can be reported at the line that names it.
    pub secret_position: (usize, usize),
    /// Audit only this identity's tokens (the API's `owner-id`); all owners when absent.
    pub owner_id: Option<String>,
    /// Requests per `rate_limit_window` for this client id; ISC documents 100 per 10 s.
    pub rate_limit_requests: u32,
    pub rate_limit_window: Duration,
    pub request_timeout: Duration,
    /// Upper bound on one whole run of this tenant, retries and waits included.
    pub run_timeout: Duration,
}

/// The `[metrics]` endpoint of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    pub listen: SocketAddr,
    pub max_token_series: usize,
    /// Whether per-token info series carry free-text labels (token name, owner name).
    pub token_labels: bool,
}

/// The `[log]` section: what the daemon logs and how. `RUST_LOG` overrides the level and
/// `--log-format` the format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// A tracing filter directive such as `info` or `patrol=debug,info`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Auto,
        }
    }
}

impl Config {
    /// Reads and validates the policy file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Validates policy text; `path` is used in messages and to resolve relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        build::build(text, path)
    }

    /// Logs a warning for each exemption whose reason is still the review pack's
    /// placeholder. Such an exemption works, but the audit log then records no real reason.
    pub fn warn_about_placeholder_reasons(&self) {
        for exemption in self
            .exemptions
            .iter()
            .filter(|e| e.has_placeholder_reason())
        {
            tracing::warn!(
                exemption = %exemption.selector(),
                "an exemption keeps the review pack's placeholder reason; replace it with why \
                 the token is still needed and who agreed"
            );
        }
    }

    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|tenant| tenant.name == name)
    }

    /// Checks that the client secret of every tenant can be read, and drops each value at
    /// once. Returns one problem per tenant whose secret is missing, unreadable or empty,
    /// naming the tenant and the source but no part of the value.
    ///
    /// A systemd credential cannot be read outside its service, where
    /// `$CREDENTIALS_DIRECTORY` is not set, so it is not checked there; the names of such
    /// tenants are returned apart.
    pub fn check_secrets(&self) -> (Vec<Problem>, Vec<String>) {
        let mut problems = Vec::new();
        let mut unchecked = Vec::new();
        for (index, tenant) in self.tenants.iter().enumerate() {
            match tenant.secret.load() {
                Ok(_) => {}
                Err(SecretError::NoCredentialsDirectory { .. }) => {
                    unchecked.push(tenant.name.clone());
                }
                Err(error) => {
                    let (line, column) = tenant.secret_position;
                    problems.push(Problem {
                        line,
                        column,
                        key: format!("tenant[{index}].{}", tenant.secret.key()),
                        message: format!("client secret of tenant \"{}\": {error}", tenant.name),
                    });
                }
            }
        }
        (problems, unchecked)
    }
}

#[cfg(test)]
mod tests;
