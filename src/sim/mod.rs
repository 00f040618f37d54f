//! A simulated ISC tenant on loopback, for `patrol sim`, `patrol demo`, tests and
//! benchmarks. It serves the token endpoint and the PAT list and delete paths the way the
//! ISC API documents them, closely enough that SailPoint's own SDKs work against it, and
//! can inject every failure a client must survive.
//!
//! # API endpoints
//!
//! - `POST /oauth/token`: client-credentials grant, with the parameters in an urlencoded or
//!   multipart body, in the query string, or split between the two. A wrong client id or secret gets 401 with "Full authentication is required to access
//!   this resource"; with no clients configured any credentials are accepted.
//! - `GET {prefix}` lists tokens as a bare JSON array, and `DELETE {prefix}/{id}` deletes
//!   one (204, or 404 with an `ErrorResponseDto`), for every prefix of
//!   `/v3/personal-access-tokens`, `/beta/…`, `/v2024/…`, `/v2025/…`, `/v2026/…` and
//!   `/personal-access-tokens/v1`. The list takes `owner-id` (an identity id, or `me` for
//!   the owner of the calling PAT; `me` lists nothing when the calling PAT is not one of
//!   the tenant's tokens) and `filters` (only `lastUsed le` and `lastUsed isnull`, see
//!   [`filter`]). Both need `Authorization: Bearer` with a token from `/oauth/token`;
//!   missing, unknown and expired tokens get 401 with the gateway's `{"error": ...}` body.
//!   Other methods on these paths get 405; creating and patching PATs is not simulated.
//! - Requests are rate limited per client id and API version with a sliding window
//!   (default 100 requests per 10 s, like ISC). A request over the limit gets 429 with
//!   `{"message":" Rate Limit Exceeded "}` and `Retry-After` in whole seconds.
//! - Every response carries a `Date` header, shifted by the configured clock skew.
//!
//! # Control API
//!
//! Plain JSON over HTTP under `/_sim/`, without authentication, rate limit, latency or
//! faults, and left out of the statistics:
//!
//! | request | does |
//! | --- | --- |
//! | `GET /_sim/tokens` | the current tokens, in list order |
//! | `POST /_sim/tokens` | adds the token in the body (201) or replaces the one with its id in place (200) |
//! | `PATCH /_sim/tokens/{id}` | sets the top-level members of the body on the token, for example `{"lastUsed": "..."}` to simulate use; 404 if absent |
//! | `GET /_sim/stats` | [`SimStats`]: responses by method, path kind and status; deletes; 429 responses; per client and version the busiest window; token-endpoint calls; fault hits |
//! | `POST /_sim/stats/reset` | zeroes the statistics (204) |
//! | `GET /_sim/faults` | the fault settings in force, as [`Faults`] JSON |
//! | `PUT /_sim/faults` | replaces every fault setting with the body, whose names are the `patrol sim` flags (`fault-429`, `latency-ms`, `token-ttl`, …); names left out take their defaults |
//!
//! # Limits
//!
//! State lives in memory only. Tokens are served as loaded (insignificant whitespace
//! removed); nothing checks that they match the API's schema beyond `id`, `lastUsed` and
//! `owner.id`. Scopes and rights are not enforced: any valid access token may list and
//! delete every token. The tenant listens only on loopback addresses.

mod conn;
mod control;
mod faults;
pub mod filter;
mod json;
mod oauth;
mod rate;
mod responses;
mod server;
mod stats;
mod tokens;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use faults::{DEFAULT_TOKEN_TTL_SECS, Faults, SERVER_ERROR_CYCLE};
pub use stats::{FaultCounts, RateLimitInfo, SimStats, WindowStats};
pub use tokens::{SimToken, TokenError, load_tokens, parse_tokens};

use conn::{ConnectionInfo, SimListener};
use server::Tenant;
use tokens::TokenStore;

/// Requests per window that ISC allows per client id and API version.
pub const DEFAULT_RATE_LIMIT: u32 = 100;
/// The window of the ISC rate limit.
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(10);
/// Seed of the fault RNG when none is given.
pub const DEFAULT_SEED: u64 = 1;

/// Settings of a simulated tenant. [`Default`] is a permissive tenant on a free loopback
/// port: any credentials, the ISC rate limit, no faults.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on; must be a loopback address. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Accepted client credentials; empty accepts any id and secret.
    pub clients: Vec<ClientCredentials>,
    /// Requests allowed per client id and API version in one window; 0 disables the limit.
    pub rate_limit: u32,
    /// Length of the rate-limit window, also used for the busiest-window statistic.
    pub rate_window: Duration,
    /// Whether `/oauth/token` is rate limited too (under the version label `oauth`).
    pub rate_limit_token_endpoint: bool,
    /// Faults and timing at start; the control API can replace them while running.
    pub faults: Faults,
    /// Seed of the RNG that decides which requests the fault fractions hit.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            clients: Vec::new(),
            rate_limit: DEFAULT_RATE_LIMIT,
            rate_window: DEFAULT_RATE_WINDOW,
            rate_limit_token_endpoint: false,
            faults: Faults::default(),
            seed: DEFAULT_SEED,
        }
    }
}

impl SimConfig {
    /// Checks the listen address (loopback only), the window and the fault settings.
    pub fn validate(&self) -> Result<(), SimError> {
        if !self.listen.ip().is_loopback() {
            return Err(SimError::NotLoopback(self.listen));
        }
        if self.rate_window.is_zero() {
            return Err(SimError::InvalidConfig(
                "the rate-limit window must be at least 1 second".to_owned(),
            ));
        }
        self.faults.validate().map_err(SimError::InvalidConfig)
    }
}

/// One accepted pair of client id (a PAT id) and client secret.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub id: String,
    pub secret: SecretString,
}

impl ClientCredentials {
    /// Parses `ID:SECRET`; the secret may contain further colons.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok(Self {
                id: id.to_owned(),
                secret: SecretString::from(secret.to_owned()),
            }),
            _ => Err("expected ID:SECRET with a non-empty id and secret".to_owned()),
        }
    }
}

/// Failures of loading tokens and starting or stopping the tenant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    #[error("failed to read tokens file {path}: {source}")]
    ReadTokens {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "invalid tokens file {source_name}: {reason} (expected a JSON array of objects, \
         each with a string `id`)"
    )]
    InvalidTokens { source_name: String, reason: String },
    #[error("token id {0:?} appears more than once; ids must be unique")]
    DuplicateTokenId(String),
    #[error(
        "cannot listen on {0}: the simulated tenant accepts any credentials unless clients \
         are configured, so it listens only on loopback addresses (127.0.0.0/8 or ::1); \
         use for example 127.0.0.1:0"
    )]
    NotLoopback(SocketAddr),
    #[error("invalid simulated tenant settings: {0}")]
    InvalidConfig(String),
    #[error("failed to listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("the simulated tenant's server failed: {0}")]
    Serve(#[source] io::Error),
}

/// A running simulated tenant. Dropping the handle stops the server in the background, and
/// [`SimHandle::shutdown`] stops it and waits for the responses to open requests.
pub struct SimHandle {
    /// Base URL of the API and the token endpoint, like `http://127.0.0.1:41234`.
    pub base_url: String,
    /// The bound address.
    pub addr: SocketAddr,
    tenant: Arc<Tenant>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<io::Result<()>>>,
}

impl SimHandle {
    /// Statistics since start or the last reset.
    pub fn stats(&self) -> SimStats {
        self.tenant.stats().snapshot()
    }

    /// Returns the fault settings in force.
    pub fn faults(&self) -> Faults {
        self.tenant.faults()
    }

    /// Replaces the fault settings, as `PUT /_sim/faults` does.
    pub fn set_faults(&self, faults: Faults) -> Result<(), SimError> {
        faults.validate().map_err(SimError::InvalidConfig)?;
        self.tenant.set_faults(faults);
        Ok(())
    }

    /// Stops accepting connections, closes idle ones, and waits for open requests.
    pub async fn shutdown(mut self) -> Result<(), SimError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.server.take() {
            Some(server) => match server.await {
                Ok(result) => result.map_err(SimError::Serve),
                Err(join_error) => Err(SimError::Serve(io::Error::other(join_error))),
            },
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for SimHandle {
    // Only the address, because the tenant state contains the issued access tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("base_url", &self.base_url)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a simulated tenant serving `tokens` (in this order) on `config.listen`, and
/// returns once it accepts connections.
pub async fn spawn(config: SimConfig, tokens: Vec<SimToken>) -> Result<SimHandle, SimError> {
    config.validate()?;
    let store = TokenStore::new(tokens).map_err(SimError::DuplicateTokenId)?;
    let token_count = store.len();

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: config.listen,
        source,
    })?;

    let tenant = Arc::new(Tenant::new(config, store));
    let app =
        server::router(Arc::clone(&tenant)).into_make_service_with_connect_info::<ConnectionInfo>();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(SimListener::new(listener), app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    tracing::info!(%addr, tokens = token_count, "simulated tenant listening");
    Ok(SimHandle {
        base_url: format!("http://{addr}"),
        addr,
        tenant,
        stop: Some(stop),
        server: Some(server),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_credentials_parse() {
        let client = ClientCredentials::parse("abc:s3:cret").unwrap();
        assert_eq!(client.id, "abc");
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&client.secret),
            "s3:cret"
        );
        assert!(ClientCredentials::parse("abc").is_err());
        assert!(ClientCredentials::parse(":secret").is_err());
        assert!(ClientCredentials::parse("abc:").is_err());
    }

    #[test]
    fn client_credentials_debug_hides_secret() {
        let client = ClientCredentials::parse("abc:topsecret").unwrap();
        assert!(!format!("{client:?}").contains("topsecret"));
    }

    #[test]
    fn validate_rejects_non_loopback() {
        let config = SimConfig {
            listen: "0.0.0.0:0".parse().unwrap(),
            ..SimConfig::default()
        };
        let error = config.validate().unwrap_err();
        assert!(matches!(error, SimError::NotLoopback(_)));
        assert!(error.to_string().contains("loopback"));

        let ipv6 = SimConfig {
            listen: "[::1]:0".parse().unwrap(),
            ..SimConfig::default()
        };
        assert!(ipv6.validate().is_ok());
    }

    #[tokio::test]
    async fn handle_debug_shows_only_address() {
        let handle = spawn(SimConfig::default(), Vec::new()).await.unwrap();
        let debug = format!("{handle:?}");
        assert!(debug.contains(&handle.base_url), "{debug}");
        assert!(!debug.contains("tenant"), "{debug}");
        handle.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn spawn_rejects_duplicate_ids() {
        let token = SimToken::from_json(r#"{"id":"a"}"#).unwrap();
        let error = spawn(SimConfig::default(), vec![token.clone(), token])
            .await
            .unwrap_err();
        assert!(matches!(error, SimError::DuplicateTokenId(id) if id == "a"));
    }
}
