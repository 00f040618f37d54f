//! `patrol demo`: a simulated tenant with the bundled token set, one dry-run audit, and the
//! report on stdout.
//!
//! The token set and the policy are compiled into the binary, so the demo works from any
//! directory. Their instants are written relative to [`ANCHOR`] and shifted by
//! `now - ANCHOR` before use, so the tokens keep the same ages whenever the demo runs. The
//! state goes to a temporary directory that is removed at exit.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use super::audit::{Format, run_exit_code, whole_seconds_now};
use super::exit;
use crate::audit::{RunOptions, run_tenant};
use crate::config::{Config, SecretSource};
use crate::isc::{Client, ClientSettings};
use crate::sim::{self, ClientCredentials, SimConfig, SimToken};

const DEMO_TOKENS: &str = include_str!("../../config/demo-tokens.json");
const DEMO_POLICY: &str = include_str!("../../config/demo.toml");

/// The instant the bundled tokens and exemptions are written relative to.
const ANCHOR: &str = "2026-12-01T00:00:00Z";

/// Fields of a token that hold instants.
const INSTANT_FIELDS: [&str; 3] = ["created", "lastUsed", "expirationDate"];

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Output format of the report on stdout.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Runs the demo and returns the exit code.
pub async fn run(args: DemoArgs) -> u8 {
    match demo(&args).await {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("the demo failed: {error:#}");
            exit::SOFTWARE
        }
    }
}

async fn demo(args: &DemoArgs) -> anyhow::Result<u8> {
    let now = whole_seconds_now();
    let anchor = DateTime::parse_from_rfc3339(ANCHOR)?.with_timezone(&Utc);
    let shift = now - anchor;

    let tokens = shifted_tokens(DEMO_TOKENS, shift)?;
    let mut config = Config::parse(DEMO_POLICY, Path::new("config/demo.toml"))?;
    for exemption in &mut config.exemptions {
        exemption.until = exemption.until.map(|until| until + shift);
    }

    let workspace = tempfile::Builder::new().prefix("patrol-demo-").tempdir()?;
    let secret = format!("demo-{:016x}", fastrand::u64(..));
    let secret_path = workspace.path().join("client-secret");
    std::fs::write(&secret_path, &secret)?;

    let tenant_config = config
        .tenants
        .first_mut()
        .ok_or_else(|| anyhow::anyhow!("the demo policy has no tenant"))?;
    let credentials = ClientCredentials::parse(&format!("{}:{secret}", tenant_config.client_id))
        .map_err(anyhow::Error::msg)?;
    let tenant = sim::spawn(
        SimConfig {
            clients: vec![credentials],
            ..SimConfig::default()
        },
        tokens,
    )
    .await?;
    tracing::info!(base_url = %tenant.base_url, "simulated tenant started");

    tenant_config.api_url = tenant.base_url.clone();
    tenant_config.secret = SecretSource::File(secret_path);
    config.state_dir = workspace.path().join("state");
    let tenant_config = tenant_config.clone();

    let mut settings = ClientSettings::new(
        &tenant_config.api_url,
        tenant_config.api_version,
        &tenant_config.client_id,
        tenant_config.secret.load()?,
    );
    settings.rate_limit_requests = tenant_config.rate_limit_requests;
    settings.rate_limit_window = tenant_config.rate_limit_window;
    let client = Client::new(settings)?;
    let options = RunOptions {
        now,
        forecast: false,
        dry_run: true,
        delete_concurrency: 8,
        stop: None,
    };
    let run = run_tenant(&config, &tenant_config, &client, &options).await?;

    let mut out = std::io::stdout().lock();
    let written = match args.format {
        Format::Table => crate::report::render_table(&run, &mut out),
        Format::Json => crate::report::render_json(&run, &mut out),
        Format::Csv => crate::report::render_csv(std::slice::from_ref(&run), &mut out),
        Format::Markdown => crate::report::render_markdown(&run, Some(&config.schedule), &mut out),
    };
    tenant.shutdown().await?;
    match written.and_then(|()| out.flush()) {
        Ok(()) => Ok(run_exit_code(&run)),
        Err(error) => Ok(exit::output_error(&error, "the report")),
    }
}

/// Parses the bundled token list and moves every instant by `shift`.
fn shifted_tokens(text: &str, shift: TimeDelta) -> anyhow::Result<Vec<SimToken>> {
    let Value::Array(mut tokens) = serde_json::from_str(text)? else {
        anyhow::bail!("the bundled token list is not a JSON array");
    };
    for token in &mut tokens {
        for field in INSTANT_FIELDS {
            let Some(value) = token.get_mut(field) else {
                continue;
            };
            let Some(text) = value.as_str() else { continue };
            let instant = DateTime::parse_from_rfc3339(text)?.with_timezone(&Utc) + shift;
            *value = Value::String(crate::report::instant(instant));
        }
    }
    tokens
        .iter()
        .map(|token| SimToken::from_value(token).map_err(anyhow::Error::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_tokens_shift_by_whole_delta() {
        let tokens = shifted_tokens(DEMO_TOKENS, TimeDelta::days(10)).unwrap();
        let original: Vec<Value> = serde_json::from_str(DEMO_TOKENS).unwrap();
        assert_eq!(tokens.len(), original.len());
        let first_used = original
            .iter()
            .zip(&tokens)
            .find_map(|(before, after)| {
                let text = before.get("lastUsed")?.as_str()?;
                let before = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
                Some((before, after.last_used()?))
            })
            .expect("some bundled token was used");
        assert_eq!(first_used.1 - first_used.0, TimeDelta::days(10));
    }
}
