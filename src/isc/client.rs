//! The client of the ISC personal access token API: settings, the list and delete
//! operations, and the mapping of their responses to results.
//!
//! One [`Client`] serves one tenant with one API client id. Its clones share the HTTP
//! connection pool, the access token cache, the pacer and the request counters, so every
//! request of the tenant counts against one rate limit however many tasks send them.
//! The request loop (pacing, retries, token renewal after a 401) is in `request.rs`, the
//! token cache in `auth.rs`, the URLs in `url.rs`.
//!
//! Invariants:
//! - TLS is rustls with the ring provider; redirects are never followed; proxies from the
//!   environment are ignored; `http://` is accepted only for loopback hosts.
//! - `Debug` and `Display` of settings, client and errors never show the client secret or
//!   an access token.
//! - The list request sends only `filters` and `owner-id`, never paging or sorting
//!   parameters, and its body is parsed straight into [`Token`]s.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, DATE};
use secrecy::{ExposeSecret, SecretString};

use super::auth::TokenCache;
use super::error::{ErrorDetails, bounded};
use super::model::TokenSummary;
use super::pacer::Pacer;
use super::request::{BodyMode, Exchange, ListBody, Operation};
use super::stats::StatsRecorder;
use super::url::Endpoints;
use super::{IscError, Token};

pub use super::stats::{LATENCY_BUCKETS_SECONDS, LatencyHistogram, RequestStats};

/// Upper bound of the window and `Retry-After` settings, far above the documented
/// 10-second window, so that instants computed from them cannot overflow.
const MAX_SETTING_DURATION: Duration = Duration::from_secs(3_600);

/// How long a connection to the tenant stays open unused. A run sends its requests without
/// long pauses and the next run comes much later, so a connection kept longer serves no
/// request. Closing it soon also gives its buffers back. With reqwest's default of 90 s, a
/// daemon stayed about 0.7 MiB larger for three minutes after a run of 100,000 tokens.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(15);

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("patrol/", env!("CARGO_PKG_VERSION"));

/// Version of the PAT API. All versions share one request and response shape, only the
/// collection path differs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    #[default]
    V3,
    Beta,
    V2024,
    V2025,
    V2026,
    /// The per-resource version introduced in 2026, `/personal-access-tokens/v1`.
    V1,
}

impl ApiVersion {
    /// Every version, in the order of the enum.
    pub const ALL: [ApiVersion; 6] = [
        ApiVersion::V3,
        ApiVersion::Beta,
        ApiVersion::V2024,
        ApiVersion::V2025,
        ApiVersion::V2026,
        ApiVersion::V1,
    ];

    /// Returns the name used in configuration files, for example `"v3"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V3 => "v3",
            ApiVersion::Beta => "beta",
            ApiVersion::V2024 => "v2024",
            ApiVersion::V2025 => "v2025",
            ApiVersion::V2026 => "v2026",
            ApiVersion::V1 => "v1",
        }
    }

    /// Returns the path of the token collection, relative to the API URL. A single token is
    /// this path plus `/{id}`.
    pub fn collection_path(self) -> &'static str {
        match self {
            ApiVersion::V3 => "/v3/personal-access-tokens",
            ApiVersion::Beta => "/beta/personal-access-tokens",
            ApiVersion::V2024 => "/v2024/personal-access-tokens",
            ApiVersion::V2025 => "/v2025/personal-access-tokens",
            ApiVersion::V2026 => "/v2026/personal-access-tokens",
            ApiVersion::V1 => "/personal-access-tokens/v1",
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of parsing an [`ApiVersion`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown API version {input:?}; expected one of v3, beta, v2024, v2025, v2026, v1")]
pub struct ParseApiVersionError {
    pub input: String,
}

impl FromStr for ApiVersion {
    type Err = ParseApiVersionError;

    /// Parses a version name, ignoring ASCII case (`"v3"`, `"V2025"`, `"beta"`).
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        ApiVersion::ALL
            .into_iter()
            .find(|version| version.as_str().eq_ignore_ascii_case(input.trim()))
            .ok_or_else(|| ParseApiVersionError {
                input: input.to_owned(),
            })
    }
}

/// Connection, authentication and pacing settings of one client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Base URL of the tenant's API, such as `https://acme.api.identitynow.com`.
    pub api_url: String,
    pub api_version: ApiVersion,
    /// OAuth client id: the id of the PAT the auditor authenticates with.
    pub client_id: String,
    pub client_secret: SecretString,
    /// Requests allowed per `rate_limit_window`, token mints and retries included.
    pub rate_limit_requests: u32,
    pub rate_limit_window: Duration,
    pub connect_timeout: Duration,
    /// Limit of one request, from sending it to reading its whole body.
    pub request_timeout: Duration,
    /// Retries of one request after a 502, 503, 504, timeout or connection failure.
    pub max_retries: u32,
    /// Retries of one request after a 429; the run deadline bounds them as well.
    pub max_rate_limited_retries: u32,
    /// Longest `Retry-After` delay honored; longer ones are cut to this.
    pub max_retry_after: Duration,
}

impl ClientSettings {
    /// Creates settings with the documented rate limit (100 requests per 10 seconds) and
    /// default timeouts and retries.
    pub fn new(
        api_url: &str,
        api_version: ApiVersion,
        client_id: &str,
        client_secret: SecretString,
    ) -> Self {
        Self {
            api_url: api_url.to_owned(),
            api_version,
            client_id: client_id.to_owned(),
            client_secret,
            rate_limit_requests: 100,
            rate_limit_window: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_retries: 8,
            max_rate_limited_retries: 30,
            max_retry_after: Duration::from_secs(60),
        }
    }

    fn validate(&self) -> Result<(), IscError> {
        let invalid = |setting: &'static str, reason: &str| {
            Err(IscError::InvalidSettings {
                setting,
                reason: reason.to_owned(),
            })
        };
        if self.client_id.trim().is_empty() {
            return invalid("client_id", "must not be empty");
        }
        if self.client_secret.expose_secret().is_empty() {
            return invalid("client_secret", "must not be empty");
        }
        if self.rate_limit_requests == 0 {
            return invalid("rate_limit_requests", "must be at least 1");
        }
        if self.rate_limit_window.is_zero() || self.rate_limit_window > MAX_SETTING_DURATION {
            return invalid(
                "rate_limit_window",
                "must be longer than zero and at most 1 hour",
            );
        }
        if self.max_retry_after > MAX_SETTING_DURATION {
            return invalid("max_retry_after", "must be at most 1 hour");
        }
        if self.connect_timeout.is_zero() {
            return invalid("connect_timeout", "must be longer than zero");
        }
        if self.request_timeout.is_zero() {
            return invalid("request_timeout", "must be longer than zero");
        }
        Ok(())
    }
}

/// Client of one tenant's PAT API. Cheap to clone; clones share the token cache, the pacer
/// and the request counters.
#[derive(Clone)]
pub struct Client {
    pub(super) inner: Arc<Inner>,
    pub(super) deadline: Option<tokio::time::Instant>,
}

/// State shared by all clones of a client.
pub(super) struct Inner {
    pub http: reqwest::Client,
    pub endpoints: Endpoints,
    pub settings: ClientSettings,
    pub tokens: TokenCache,
    pub pacer: Pacer,
    pub stats: StatsRecorder,
    /// Whether the `X-Deprecated` warning was logged already.
    pub deprecation_logged: AtomicBool,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api_url", &self.inner.settings.api_url)
            .field("api_version", &self.inner.settings.api_version)
            .field("client_id", &self.inner.settings.client_id)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// Selection of tokens for a list request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFilter {
    /// Every token, no `filters` parameter.
    All,
    /// `lastUsed le <instant>`: tokens last used at or before the instant.
    LastUsedLe(DateTime<Utc>),
    /// `lastUsed isnull`: tokens never used to mint an access token, or not since the API
    /// added the field in February 2023.
    LastUsedIsNull,
}

impl ListFilter {
    /// Returns the `filters` expression, or `None` for [`ListFilter::All`].
    ///
    /// The instant is written as the API's own example writes it: unquoted, UTC,
    /// `YYYY-MM-DDTHH:MM:SS.sssZ`. Sub-millisecond digits are cut, never rounded up, so the
    /// server never matches a token used after the requested instant.
    pub fn expression(&self) -> Option<String> {
        match self {
            ListFilter::All => None,
            ListFilter::LastUsedLe(instant) => Some(format!(
                "lastUsed le {}",
                instant.format("%Y-%m-%dT%H:%M:%S%.3fZ")
            )),
            ListFilter::LastUsedIsNull => Some("lastUsed isnull".to_owned()),
        }
    }
}

/// Result of one list request.
#[derive(Debug, Clone)]
pub struct Listing {
    pub tokens: Vec<Token>,
    /// The response's `Date` header, for the clock skew check.
    pub server_date: Option<DateTime<Utc>>,
}

/// Result of one list request that kept only each token's id and last use.
#[derive(Debug, Clone)]
pub struct SummaryListing {
    pub tokens: Vec<TokenSummary>,
    /// The response's `Date` header.
    pub server_date: Option<DateTime<Utc>>,
}

/// Result of one delete request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// 204: the token was deleted by this request.
    Deleted,
    /// 404: no token with this id exists (deleted earlier, perhaps by a previous attempt).
    AlreadyGone,
}

impl Client {
    /// Creates a client. Checks the settings and the API URL; sends nothing.
    pub fn new(settings: ClientSettings) -> Result<Self, IscError> {
        settings.validate()?;
        let endpoints = Endpoints::new(&settings.api_url, settings.api_version)?;

        let http = build_http_client(&settings, endpoints.token.scheme() == "https")?;
        let pacer = Pacer::new(settings.rate_limit_requests, settings.rate_limit_window);
        let inner = Inner {
            http,
            endpoints,
            settings,
            tokens: TokenCache::default(),
            pacer,
            stats: StatsRecorder::default(),
            deprecation_logged: AtomicBool::new(false),
        };
        Ok(Client {
            inner: Arc::new(inner),
            deadline: None,
        })
    }

    /// Returns a clone whose every operation gives up with [`IscError::DeadlineExceeded`]
    /// at `deadline`: requests in flight are cut off, and a wait (pacing, `Retry-After`,
    /// backoff) that would end after it fails at once. Replaces any earlier deadline.
    pub fn with_deadline(&self, deadline: tokio::time::Instant) -> Self {
        Client {
            inner: Arc::clone(&self.inner),
            deadline: Some(deadline),
        }
    }

    /// Lists the tenant's tokens matching `filter`, of one owner if `owner_id` is given
    /// (an identity id, or `me`).
    pub async fn list(
        &self,
        filter: ListFilter,
        owner_id: Option<&str>,
    ) -> Result<Listing, IscError> {
        let (body, server_date) = self.list_body(filter, owner_id, BodyMode::Tokens).await?;
        let tokens = match body {
            ListBody::Tokens(tokens) => tokens,
            ListBody::Summaries(_) => unreachable!("a token listing is parsed into tokens"),
        };
        Ok(Listing {
            tokens,
            server_date,
        })
    }

    /// Lists like [`Client::list`], but reads only the id and last use of each token, after
    /// checking the fields every token must have ([`TokenSummary`]). A listing that only
    /// cross-checks the full one costs a fraction of the time and memory this way.
    pub async fn list_summaries(
        &self,
        filter: ListFilter,
        owner_id: Option<&str>,
    ) -> Result<SummaryListing, IscError> {
        let (body, server_date) = self
            .list_body(filter, owner_id, BodyMode::Summaries)
            .await?;
        let tokens = match body {
            ListBody::Summaries(tokens) => tokens,
            ListBody::Tokens(_) => unreachable!("a summary listing is parsed into summaries"),
        };
        Ok(SummaryListing {
            tokens,
            server_date,
        })
    }

    async fn list_body(
        &self,
        filter: ListFilter,
        owner_id: Option<&str>,
        mode: BodyMode,
    ) -> Result<(ListBody, Option<DateTime<Utc>>), IscError> {
        let url = self.inner.endpoints.list(&filter, owner_id);
        let exchange = self
            .inner
            .execute(Operation::List, mode, self.deadline, &|http| {
                http.get(url.clone()).header(ACCEPT, "application/json")
            })
            .await?;

        if exchange.status != 200 {
            return Err(self.inner.error_for(Operation::List, &exchange));
        }
        let server_date = exchange
            .headers
            .get(DATE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| httpdate::parse_http_date(value).ok())
            .map(DateTime::<Utc>::from);
        let body = match exchange.tokens {
            Some(parsed) => parsed,
            // A 200 is a success, so its body was parsed as it arrived.
            None => Err("the body was not parsed".to_owned()),
        }
        .map_err(|reason| IscError::Decode {
            status: exchange.status,
            message: bounded(
                &format!("the token list is not a JSON array of tokens: {reason}"),
                super::error::MAX_MESSAGE_CHARS,
            ),
        })?;
        Ok((body, server_date))
    }

    /// Deletes one token by id. A 404 means the token does not exist (any more) and is
    /// reported as [`DeleteOutcome::AlreadyGone`], not as an error.
    pub async fn delete(&self, id: &str) -> Result<DeleteOutcome, IscError> {
        let url = self.inner.endpoints.token_by_id(id)?;
        let exchange = self
            .inner
            .execute(Operation::Delete, BodyMode::Bytes, self.deadline, &|http| {
                http.delete(url.clone()).header(ACCEPT, "application/json")
            })
            .await?;

        match exchange.status {
            // NOTE: the API documents 204. A 200 also means the DELETE succeeded in HTTP
            // terms and is taken as such; any other 2xx (202 Accepted) is not.
            204 | 200 => Ok(DeleteOutcome::Deleted),
            404 => Ok(DeleteOutcome::AlreadyGone),
            _ => Err(self.inner.error_for(Operation::Delete, &exchange)),
        }
    }

    /// Returns a snapshot of the request counters shared by this client and its clones.
    pub fn stats(&self) -> RequestStats {
        self.inner.stats.snapshot()
    }

    /// Returns the mean latency of the delete requests sent so far, retries included, or
    /// `None` before the first one completed.
    pub fn mean_delete_latency(&self) -> Option<Duration> {
        self.inner.stats.mean_latency(Operation::Delete.as_str())
    }

    /// Returns the rate limit the client paces its requests under: requests per window.
    pub fn rate_limit(&self) -> (u32, Duration) {
        let settings = &self.inner.settings;
        (settings.rate_limit_requests, settings.rate_limit_window)
    }
}

impl Inner {
    /// Maps a final response that is not the operation's success to an error by cause.
    pub(super) fn error_for(&self, operation: Operation, exchange: &Exchange) -> IscError {
        let status = exchange.status;
        let bearer = exchange.bearer.as_ref().map(|token| token.expose_secret());
        let secrets = [
            self.settings.client_secret.expose_secret(),
            bearer.unwrap_or_default(),
        ];
        let ErrorDetails {
            message,
            tracking_id,
        } = ErrorDetails::from_body(status, &exchange.body, &secrets);

        match status {
            // The token endpoint rejects bad credentials with 400 or 401.
            400..=499 if operation == Operation::Token && status != 429 => {
                IscError::Authentication {
                    status,
                    tracking_id,
                    message,
                }
            }
            401 => IscError::Authentication {
                status,
                tracking_id,
                message,
            },
            403 => IscError::Forbidden {
                status,
                tracking_id,
                message,
            },
            429 => IscError::RateLimited { tracking_id },
            400..=499 => IscError::Client {
                status,
                tracking_id,
                message,
            },
            500..=599 => IscError::Server {
                status,
                tracking_id,
                message,
            },
            300..=399 => IscError::UnexpectedStatus {
                status,
                tracking_id,
                message: redirect_message(exchange),
            },
            _ => IscError::UnexpectedStatus {
                status,
                tracking_id,
                message: format!(
                    "not the documented success status of the {} request",
                    operation.as_str()
                ),
            },
        }
    }
}

/// Describes a redirect by the origin it points to, never its full location, which could
/// carry a token in its query.
fn redirect_message(exchange: &Exchange) -> String {
    let target = exchange
        .headers
        .get(reqwest::header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .map(|location| match reqwest::Url::parse(location) {
            Ok(url) => format!("to {}", url.origin().ascii_serialization()),
            Err(_) => "to a path on the same host".to_owned(),
        })
        .unwrap_or_else(|| "without a Location".to_owned());
    format!("the server redirected {target}; redirects are not followed, so check api_url")
}

/// Builds the HTTP client: rustls with ring, no redirects, no proxy, both timeouts.
/// `https` is true when the tenant's URL is `https://`. A client of a loopback `http://`
/// tenant, such as the simulated one, trusts no certificate: that spares it reading the
/// system's CA certificates, about 1% of the CPU time of a run of 100,000 tokens.
fn build_http_client(settings: &ClientSettings, https: bool) -> Result<reqwest::Client, IscError> {
    // reqwest is built without a default crypto provider. Installing ring as the process
    // default fails harmlessly when the process installed one already.
    let _ = rustls::crypto::ring::default_provider().install_default();

    // `localhost` resolves to the loopback addresses only, whatever the system resolver
    // returns, so an `http://localhost` URL cannot send the bearer token over the network.
    // reqwest ignores the port of these addresses and uses the URL's port.
    let loopback = [
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
    ];

    let mut builder = reqwest::Client::builder().tls_backend_rustls();
    if !https {
        // Every endpoint has the scheme of the tenant's URL, and redirects are not
        // followed. So this client opens no TLS connection, and one would fail.
        builder = builder.tls_certs_only(std::iter::empty());
    }
    builder
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
        .resolve_to_addrs("localhost", &loopback)
        .build()
        .map_err(|err| IscError::InvalidSettings {
            setting: "tls",
            reason: format!("the HTTP client could not be built: {err}"),
        })
}

#[cfg(test)]
mod tests;
