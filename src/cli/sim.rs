//! `patrol sim`: serves a simulated ISC tenant on loopback until SIGINT or SIGTERM.
//!
//! The first line on stdout is the tenant's base URL, flushed at once so that a parent
//! process can read it. Logs go to stderr through tracing (`RUST_LOG` sets the level,
//! default `info`). The flags map one to one onto [`crate::sim::SimConfig`] and
//! [`crate::sim::Faults`], and the fault flags have the same names as the JSON fields of
//! `PUT /_sim/faults`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use super::exit;
use crate::sim::{self, ClientCredentials, Faults, SimConfig, SimError};

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on, as IP:PORT; loopback only (127.0.0.0/8 or ::1). Port 0 picks
    /// a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// JSON file with the tenant's tokens, shaped like the list response: an array of
    /// objects with a string `id`. Without it the tenant has no tokens.
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,

    /// Accepted client credentials for /oauth/token (repeatable). Without any, every id
    /// and secret is accepted.
    #[arg(long = "client", value_name = "ID:SECRET", value_parser = parse_client)]
    pub clients: Vec<ClientCredentials>,

    /// Requests allowed per client id and API version in one window; 0 disables the limit.
    #[arg(long, value_name = "N", default_value_t = sim::DEFAULT_RATE_LIMIT)]
    pub rate_limit: u32,

    /// Length of the rate-limit window, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = sim::DEFAULT_RATE_WINDOW.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub rate_window: u64,

    /// Apply the rate limit to /oauth/token as well (not limited by default).
    #[arg(long)]
    pub rate_limit_token_endpoint: bool,

    /// Delay before every API response, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,

    /// Lifetime of issued access tokens, in seconds; a short one simulates expiry mid-run.
    #[arg(long, value_name = "SECS", default_value_t = sim::DEFAULT_TOKEN_TTL_SECS)]
    pub token_ttl: u64,

    /// Seconds added to the Date header of every response; negative values put it behind.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub clock_skew: i64,

    /// Fraction (0 to 1) of PAT requests that get 429.
    #[arg(long = "fault-429", value_name = "FRACTION", default_value_t = 0.0, value_parser = parse_fraction)]
    pub fault_429: f64,

    /// Retry-After of the injected 429 responses, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    pub fault_retry_after: u64,

    /// Fraction (0 to 1) of PAT requests that get a 5xx status.
    #[arg(long = "fault-5xx", value_name = "FRACTION", default_value_t = 0.0, value_parser = parse_fraction)]
    pub fault_5xx: f64,

    /// Status of the injected 5xx responses (500 to 599); without it they cycle through 500,
    /// 502, 503 and 504.
    #[arg(long = "fault-5xx-status", value_name = "STATUS",
          value_parser = clap::value_parser!(u16).range(500..=599))]
    pub fault_5xx_status: Option<u16>,

    /// Fraction (0 to 1) of PAT requests whose connection is closed without a response,
    /// before the request is processed.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0, value_parser = parse_fraction)]
    pub fault_drop: f64,

    /// Fraction (0 to 1) of PAT requests that are processed (a delete is performed) and
    /// whose connection is then closed without a response.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0, value_parser = parse_fraction)]
    pub fault_drop_after: f64,

    /// Fraction (0 to 1) of list responses whose body is not valid JSON.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0, value_parser = parse_fraction)]
    pub fault_malformed: f64,

    /// Fraction (0 to 1) of list responses cut off halfway through the body, after which the
    /// connection closes.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0, value_parser = parse_fraction)]
    pub fault_cut_body: f64,

    /// Maximum number of tokens in one list response; the rest is silently left out.
    #[arg(long, value_name = "N")]
    pub fault_list_cap: Option<usize>,

    /// Ignore the `filters` parameter: every list returns all tokens of the requested
    /// owner.
    #[arg(long)]
    pub fault_ignore_filters: bool,

    /// Seed of the RNG that picks the requests hit by fault fractions; the same seed and
    /// request sequence give the same faults.
    #[arg(long, value_name = "N", default_value_t = sim::DEFAULT_SEED)]
    pub seed: u64,
}

impl SimArgs {
    fn config(&self) -> SimConfig {
        SimConfig {
            listen: self.listen,
            clients: self.clients.clone(),
            rate_limit: self.rate_limit,
            rate_window: Duration::from_secs(self.rate_window),
            rate_limit_token_endpoint: self.rate_limit_token_endpoint,
            faults: Faults {
                latency_ms: self.latency_ms,
                too_many_requests: self.fault_429,
                retry_after_secs: self.fault_retry_after,
                server_error: self.fault_5xx,
                server_error_status: self.fault_5xx_status,
                drop_connection: self.fault_drop,
                drop_after_processing: self.fault_drop_after,
                malformed_body: self.fault_malformed,
                cut_body: self.fault_cut_body,
                list_cap: self.fault_list_cap,
                ignore_filters: self.fault_ignore_filters,
                token_ttl_secs: self.token_ttl,
                clock_skew_secs: self.clock_skew,
            },
            seed: self.seed,
        }
    }
}

fn parse_client(text: &str) -> Result<ClientCredentials, String> {
    ClientCredentials::parse(text)
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is not a fraction between 0 and 1"))
    }
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    init_tracing();

    let config = args.config();
    config.validate()?;
    let tokens = match &args.tokens {
        Some(path) => sim::load_tokens(path)?,
        None => Vec::new(),
    };

    let handle = sim::spawn(config, tokens).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", handle.base_url).context("failed to write the base URL")?;
    stdout.flush().context("failed to write the base URL")?;
    drop(stdout);

    let signal = wait_for_signal()
        .await
        .context("failed to listen for signals")?;
    tracing::info!(signal, "stopping the simulated tenant");
    handle.shutdown().await?;
    tracing::info!("simulated tenant stopped");
    Ok(())
}

/// Returns the exit code of a failed `patrol sim`. Invalid settings from the command line give 64.
/// A tokens file gives 65 when it is not a valid list of tokens and 66 when it cannot be
/// read. A tenant that cannot listen, or whose server fails, gives 70.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    match error.downcast_ref::<SimError>() {
        Some(SimError::NotLoopback(_) | SimError::InvalidConfig(_)) => exit::USAGE,
        Some(SimError::InvalidTokens { .. } | SimError::DuplicateTokenId(_)) => exit::DATA_ERROR,
        Some(SimError::ReadTokens { .. }) => exit::NOT_FOUND,
        Some(SimError::Bind { .. } | SimError::Serve(_)) | None => exit::SOFTWARE,
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A subscriber set earlier (by a caller embedding this command) stays in place.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
}

#[cfg(unix)]
async fn wait_for_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    })
}

#[cfg(not(unix))]
async fn wait_for_signal() -> std::io::Result<&'static str> {
    tokio::signal::ctrl_c().await?;
    Ok("Ctrl-C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> Result<SimArgs, clap::Error> {
        Command::try_parse_from(std::iter::once("sim").chain(args.iter().copied()))
            .map(|command| command.sim)
    }

    #[test]
    fn defaults_match_permissive_tenant() {
        let config = parse(&[]).unwrap().config();
        assert_eq!(config.rate_limit, 100);
        assert_eq!(config.rate_window, Duration::from_secs(10));
        assert_eq!(config.faults, Faults::default());
        assert!(config.clients.is_empty());
        assert!(config.listen.ip().is_loopback());
    }

    #[test]
    fn flags_reach_config() {
        let config = parse(&[
            "--client",
            "id1:secret1",
            "--client",
            "id2:secret2",
            "--rate-limit",
            "5",
            "--rate-window",
            "60",
            "--clock-skew",
            "-300",
            "--fault-429",
            "0.5",
            "--fault-5xx-status",
            "503",
            "--fault-list-cap",
            "3",
            "--fault-ignore-filters",
            "--token-ttl",
            "0",
            "--seed",
            "9",
        ])
        .unwrap()
        .config();

        assert_eq!(config.clients.len(), 2);
        assert_eq!(config.clients[1].id, "id2");
        assert_eq!(config.rate_limit, 5);
        assert_eq!(config.rate_window, Duration::from_secs(60));
        assert_eq!(config.faults.clock_skew_secs, -300);
        assert_eq!(config.faults.too_many_requests, 0.5);
        assert_eq!(config.faults.server_error_status, Some(503));
        assert_eq!(config.faults.list_cap, Some(3));
        assert!(config.faults.ignore_filters);
        assert_eq!(config.faults.token_ttl_secs, 0);
        assert_eq!(config.seed, 9);
    }

    #[test]
    fn invalid_values_are_rejected() {
        assert!(parse(&["--fault-drop", "1.5"]).is_err());
        assert!(parse(&["--fault-5xx-status", "404"]).is_err());
        assert!(parse(&["--rate-window", "0"]).is_err());
        assert!(parse(&["--client", "no-secret"]).is_err());
    }

    #[test]
    fn non_loopback_listen_is_rejected_by_validation() {
        let config = parse(&["--listen", "0.0.0.0:8080"]).unwrap().config();
        let error = config.validate().unwrap_err();
        assert!(error.to_string().contains("loopback"), "{error}");
    }
}
