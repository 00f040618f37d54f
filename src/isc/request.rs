//! The request loop shared by every operation: bearer token, pacing, one HTTP exchange,
//! then retry, renew the token, or hand the final response to the operation.
//!
//! - Each attempt takes a slot from the client's pacer first, so mints, lists, deletes and
//!   retries together stay under the rate limit.
//! - A 401 on an API call invalidates the token that was sent, and the call is repeated once
//!   with a new token. A second 401 is final. This repeat does not count against
//!   `max_retries`.
//! - 502, 503, 504, timeouts and connection failures are retried up to `max_retries` times
//!   with the delays of `retry.rs`, and a list body that breaks off mid-stream at most
//!   twice. A 429 is retried up to `max_rate_limited_retries` times, because throttling
//!   should slow a run down rather than fail its deletes, and it pauses every request of
//!   the client for the capped `Retry-After` delay (or the backoff when there is none).
//! - The deadline bounds everything: a request in flight is cut off at the deadline, and a
//!   wait that would end after it fails with [`IscError::DeadlineExceeded`] without waiting.
//!
//! The loop returns the final response, whatever its status, and leaves the status mapping
//! to the operation. It logs each request at DEBUG and each retry at WARN, without URLs
//! (the owner filter is in the query) and without any header value.

use std::error::Error as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::array::ArrayParser;
use super::auth::{CachedToken, parse_token_response};
use super::client::Inner;
use super::error::{MAX_MESSAGE_CHARS, bounded};
use super::fast_element::FastElement;
use super::model::TokenSummary;
use super::retry::{
    StatusRetry, backoff_delay, classify_status, parse_retry_after, rate_limited_delay,
    transient_delay,
};
use super::{IscError, Token};

/// Maximum number of error body bytes read. The message the client keeps is much shorter.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Maximum retries of a list request whose body broke off mid-stream. One broken read of a listing that is
/// tens of megabytes should not fail the run, but a body that breaks every time is not
/// worth the full backoff of `max_retries`.
const MAX_CUT_BODY_RETRIES: u32 = 2;

/// The operations, as named in logs and in [`super::RequestStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Token,
    List,
    Delete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Token => "token",
            Operation::List => "list",
            Operation::Delete => "delete",
        }
    }

    fn sends_bearer(self) -> bool {
        self != Operation::Token
    }
}

/// A response read in full (error bodies up to [`MAX_ERROR_BODY_BYTES`]).
pub(crate) struct Exchange {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body, except that of a successful list, which is parsed into `tokens` instead.
    pub body: Vec<u8>,
    /// The tokens of a successful list, or why its body is not a JSON array of tokens.
    pub tokens: Option<Result<ListBody, String>>,
    /// The access token the request carried, so errors can redact it.
    pub bearer: Option<SecretString>,
}

/// Closure that builds the request of one attempt. It runs again for every retry.
pub(crate) type RequestFactory<'a> =
    dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + 'a;

type BoxedBearer<'a> = Pin<Box<dyn Future<Output = Result<SecretString, IscError>> + Send + 'a>>;

/// The status, headers and body of one response.
struct Response {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
    tokens: Option<Result<ListBody, String>>,
}

/// The part of a successful response body that the client keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyMode {
    /// The bytes.
    Bytes,
    /// Each listed token, parsed as the body arrives.
    Tokens,
    /// The id and last use of each listed token, see [`TokenSummary`].
    Summaries,
}

/// A list body parsed according to its [`BodyMode`].
pub(crate) enum ListBody {
    Tokens(Vec<Token>),
    Summaries(Vec<TokenSummary>),
}

/// A retry decision: how long to wait, and whether the wait is for the rate limit.
struct Retry {
    wait: Duration,
    rate_limited: bool,
}

impl Inner {
    /// Sends the request built by `build` until a final response arrives, and returns it.
    pub(crate) async fn execute(
        &self,
        operation: Operation,
        body: BodyMode,
        deadline: Option<Instant>,
        build: &RequestFactory<'_>,
    ) -> Result<Exchange, IscError> {
        let mut retry: u32 = 0;
        let mut throttled: u32 = 0;
        let mut cut_bodies: u32 = 0;
        let mut renewed_after_401 = false;

        loop {
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Err(IscError::DeadlineExceeded);
            }
            let bearer = match operation.sends_bearer() {
                true => Some(self.bearer(deadline).await?),
                false => None,
            };
            let waited = self
                .pacer
                .acquire(deadline)
                .await
                .map_err(|_| IscError::DeadlineExceeded)?;
            self.stats.record_rate_limit_wait(waited);

            let attempt = retry + 1 + u32::from(renewed_after_401);
            let next = match self
                .send_once(operation, body, build, bearer.as_ref(), attempt, deadline)
                .await?
            {
                Ok(response) => {
                    let rejected = bearer
                        .as_ref()
                        .filter(|_| response.status == 401 && !renewed_after_401);
                    if let Some(rejected) = rejected {
                        renewed_after_401 = true;
                        self.tokens.invalidate(rejected, deadline).await?;
                        self.stats.record_retry();
                        warn!(
                            operation = operation.as_str(),
                            status = response.status,
                            attempt,
                            wait_ms = 0u64,
                            "ISC rejected the access token; minting a new one and retrying once"
                        );
                        continue;
                    }

                    match self.retry_after_response(&response, retry + throttled) {
                        Some(next)
                            if (next.rate_limited
                                && throttled < self.settings.max_rate_limited_retries)
                                || (!next.rate_limited && retry < self.settings.max_retries) =>
                        {
                            warn!(
                                operation = operation.as_str(),
                                status = response.status,
                                attempt,
                                wait_ms = next.wait.as_millis() as u64,
                                "ISC request failed; retrying"
                            );
                            next
                        }
                        _ => {
                            return Ok(Exchange {
                                status: response.status,
                                headers: response.headers,
                                body: response.body,
                                tokens: response.tokens,
                                bearer,
                            });
                        }
                    }
                }
                Err(err) => {
                    let message = describe_transport_error(&err);
                    let cut_body = operation == Operation::List && is_cut_body(&err);
                    let retryable = match cut_body {
                        true => cut_bodies < MAX_CUT_BODY_RETRIES,
                        false => is_retryable(&err),
                    };
                    if !retryable || retry >= self.settings.max_retries {
                        if err.is_body() || err.is_decode() {
                            return Err(IscError::IncompleteResponse { message });
                        }
                        return Err(IscError::Network { message });
                    }
                    cut_bodies += u32::from(cut_body);
                    let wait = backoff_delay(retry, fastrand::f64());
                    warn!(
                        operation = operation.as_str(),
                        cause = %message,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "ISC request failed; retrying"
                    );
                    Retry {
                        wait,
                        rate_limited: false,
                    }
                }
            };

            if deadline.is_some_and(|deadline| Instant::now() + next.wait > deadline) {
                return Err(IscError::DeadlineExceeded);
            }
            self.stats.record_retry();
            if next.rate_limited {
                self.stats.record_rate_limit_wait(next.wait);
            }
            tokio::time::sleep(next.wait).await;
            if next.rate_limited {
                throttled += 1;
            } else {
                retry += 1;
            }
        }
    }

    /// Sends one attempt and records it. The outer error is the deadline cutting the request
    /// off, and the inner one is a transport failure.
    async fn send_once(
        &self,
        operation: Operation,
        body: BodyMode,
        build: &RequestFactory<'_>,
        bearer: Option<&SecretString>,
        attempt: u32,
        deadline: Option<Instant>,
    ) -> Result<Result<Response, reqwest::Error>, IscError> {
        let mut request = build(&self.http);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer.expose_secret());
        }

        let started = Instant::now();
        let sent = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, send(request, body)).await,
            None => Ok(send(request, body).await),
        };
        let latency = started.elapsed();
        let duration_ms = latency.as_millis() as u64;
        let operation_name = operation.as_str();

        match &sent {
            Ok(Ok(response)) => {
                let status = response.status;
                self.stats
                    .record_request(operation_name, Some(status), latency);
                debug!(
                    operation = operation_name,
                    status, attempt, duration_ms, "ISC request completed"
                );
                self.log_deprecation(operation, &response.headers);
            }
            Ok(Err(err)) => {
                self.stats.record_request(operation_name, None, latency);
                let error = describe_transport_error(err);
                debug!(operation = operation_name, attempt, duration_ms, %error, "ISC request failed");
            }
            Err(_elapsed) => {
                self.stats.record_request(operation_name, None, latency);
                debug!(
                    operation = operation_name,
                    attempt, duration_ms, "ISC request cut off by the deadline"
                );
            }
        }
        sent.map_err(|_elapsed| IscError::DeadlineExceeded)
    }

    /// Decides whether a response is retried and after which wait, and pauses the pacer
    /// on 429. Returns `None` for a final response.
    fn retry_after_response(&self, response: &Response, retry: u32) -> Option<Retry> {
        let max_retry_after = self.settings.max_retry_after;
        let retry_after = response
            .headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, SystemTime::now()));

        match classify_status(response.status) {
            StatusRetry::Final => None,
            StatusRetry::RateLimited => {
                self.stats.record_rate_limited();
                let wait = rate_limited_delay(retry_after, max_retry_after, retry, fastrand::f64());
                // The service limits the client id, so every request of this client waits.
                let pause = retry_after.map_or(wait, |delay| delay.min(max_retry_after));
                self.pacer.pause_until(Instant::now() + pause);
                Some(Retry {
                    wait,
                    rate_limited: true,
                })
            }
            StatusRetry::Transient => Some(Retry {
                wait: transient_delay(retry_after, max_retry_after, retry, fastrand::f64()),
                rate_limited: false,
            }),
        }
    }

    /// Returns the cached access token, minting one first if there is none or it is stale.
    ///
    /// The future is boxed because minting runs [`Inner::execute`], which calls this
    /// function, and the box breaks the cycle in the future's type.
    fn bearer(&self, deadline: Option<Instant>) -> BoxedBearer<'_> {
        Box::pin(
            self.tokens
                .get_or_mint(deadline, move || self.mint(deadline)),
        )
    }

    /// Requests a new access token with the client credentials grant.
    async fn mint(&self, deadline: Option<Instant>) -> Result<CachedToken, IscError> {
        let requested_at = Instant::now();
        let settings = &self.settings;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", settings.client_id.as_str()),
            ("client_secret", settings.client_secret.expose_secret()),
        ];
        let url = &self.endpoints.token;
        let exchange = self
            .execute(Operation::Token, BodyMode::Bytes, deadline, &|http| {
                http.post(url.clone())
                    .header(ACCEPT, "application/json")
                    .form(&form)
            })
            .await?;

        if exchange.status != 200 {
            return Err(self.error_for(Operation::Token, &exchange));
        }
        parse_token_response(exchange.status, &exchange.body, requested_at)
    }

    /// Logs a WARN the first time a response carries `X-Deprecated: true`.
    fn log_deprecation(&self, operation: Operation, headers: &HeaderMap) {
        let deprecated = headers
            .get("x-deprecated")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"));
        if deprecated && !self.deprecation_logged.swap(true, Ordering::Relaxed) {
            warn!(
                operation = operation.as_str(),
                api_version = %self.settings.api_version,
                "the ISC API marks this endpoint as deprecated (X-Deprecated: true); \
                 plan a move to a newer api_version"
            );
        }
    }
}

/// Sends one request and reads its body: all of it on success, a bounded prefix otherwise.
/// A successful list body is parsed as it arrives, per `mode`, instead of being kept.
async fn send(
    request: reqwest::RequestBuilder,
    mode: BodyMode,
) -> Result<Response, reqwest::Error> {
    let mut response = request.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();

    if response.status().is_success() && mode != BodyMode::Bytes {
        let tokens = match mode {
            BodyMode::Summaries => parse_list::<TokenSummary>(&mut response)
                .await?
                .map(ListBody::Summaries),
            _ => parse_list::<Token>(&mut response)
                .await?
                .map(ListBody::Tokens),
        };
        return Ok(Response {
            status,
            headers,
            body: Vec::new(),
            tokens: Some(tokens),
        });
    }

    let body = if response.status().is_success() {
        Vec::from(response.bytes().await?)
    } else {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            let room = MAX_ERROR_BODY_BYTES - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_ERROR_BODY_BYTES {
                break;
            }
        }
        body
    };
    Ok(Response {
        status,
        headers,
        body,
        tokens: None,
    })
}

/// Feeds the body to `parser` chunk by chunk. The outer error is a transport failure. The
/// inner one is a body that is not a JSON array of tokens, and reading stops at the first
/// invalid element.
async fn parse_list<T: serde::de::DeserializeOwned + FastElement>(
    response: &mut reqwest::Response,
) -> Result<Result<Vec<T>, String>, reqwest::Error> {
    let mut parser = ArrayParser::new();
    if let Some(length) = response.content_length() {
        parser.reserve_for_body(length);
    }
    while let Some(chunk) = response.chunk().await? {
        if let Err(reason) = parser.feed(&chunk) {
            return Ok(Err(reason));
        }
    }
    Ok(parser.finish())
}

/// Checks whether a failed attempt may succeed when repeated. Timeouts, connection failures
/// and connections closed mid-exchange may, TLS failures such as an untrusted certificate not.
/// A body that breaks off while it is read is not counted here, see [`is_cut_body`].
fn is_retryable(err: &reqwest::Error) -> bool {
    let transient = err.is_timeout() || err.is_connect() || err.is_request() || err.is_body();
    transient && !is_tls_failure(err)
}

/// Returns whether the response body broke off while it was read, such as a connection
/// closed before `Content-Length` bytes arrived. reqwest reports every failure to read a
/// body chunk as a decode error, and patrol decodes no content encoding, so a decode error
/// is a failed read. A read that timed out counts as a timeout instead.
fn is_cut_body(err: &reqwest::Error) -> bool {
    err.is_decode() && !err.is_timeout()
}

fn is_tls_failure(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if current.is::<rustls::Error>() {
            return true;
        }
        // An I/O error's `source` skips the error it wraps, and the wrapped error can be
        // another I/O error (the connector wraps the TLS stream's), so follow it instead.
        source = match current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    false
}

/// Describes a transport failure by its chain of causes, without the URL.
fn describe_transport_error(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = err.source();
    while let Some(current) = source {
        let text = current.to_string();
        if !text.is_empty() && parts.last() != Some(&text) {
            parts.push(text);
        }
        source = current.source();
    }

    if parts.is_empty() {
        let kind = if err.is_timeout() {
            "timed out"
        } else if err.is_connect() {
            "connection failed"
        } else {
            "failed without a response"
        };
        parts.push(kind.to_owned());
    }
    bounded(&parts.join(": "), MAX_MESSAGE_CHARS)
}
