//! The HTTP side of the simulated tenant: shared state, routes, the middleware every response
//! passes through, and the PAT list and delete handlers.
//!
//! An API request (token endpoint or PAT path) goes through these steps in order:
//!
//! 1. the configured latency,
//! 2. the dropped-connection fault,
//! 3. bearer-token authentication (401),
//! 4. the per-client, per-version rate limit (429),
//! 5. the injected 429 and 5xx faults,
//! 6. the handler itself, after which the drop-after-processing fault may still close the
//!    connection without a response.
//!
//! The token endpoint takes only steps 1 and 6 (and 4 when configured). Control requests under `/_sim/` skip all of them. Every response, control
//! API included, gets a `Date` header shifted by the configured clock skew, and every
//! response outside `/_sim/` is counted in the statistics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use super::conn::ConnectionInfo;
use super::faults::{Dice, Faults};
use super::filter::Filter;
use super::rate::SlidingWindowLimiter;
use super::responses;
use super::stats::StatsRecorder;
use super::tokens::TokenStore;
use super::{SimConfig, control, oauth};

/// The API versions whose PAT paths the tenant serves, with their list path. The delete
/// path is the list path followed by `/{id}`.
pub(crate) const API_VERSIONS: [(&str, &str); 6] = [
    ("v3", "/v3/personal-access-tokens"),
    ("beta", "/beta/personal-access-tokens"),
    ("v2024", "/v2024/personal-access-tokens"),
    ("v2025", "/v2025/personal-access-tokens"),
    ("v2026", "/v2026/personal-access-tokens"),
    ("v1", "/personal-access-tokens/v1"),
];

/// An access token issued by `/oauth/token`.
#[derive(Debug)]
pub(crate) struct AccessToken {
    /// The client id (PAT id) it was issued to; the rate limit is keyed on it.
    pub(crate) client_id: String,
    pub(crate) expires_at: Instant,
}

/// Everything the handlers share. It has no `Debug` on purpose, because it contains every
/// issued access token and every listed token.
pub(crate) struct Tenant {
    pub(crate) config: SimConfig,
    pub(crate) tokens: RwLock<TokenStore>,
    /// Issued access tokens by their value.
    pub(crate) access_tokens: Mutex<HashMap<String, AccessToken>>,
    pub(crate) limiter: Mutex<SlidingWindowLimiter<(String, &'static str)>>,
    pub(crate) stats: Mutex<StatsRecorder>,
    pub(crate) faults: RwLock<Faults>,
    pub(crate) dice: Mutex<Dice>,
}

impl Tenant {
    pub(crate) fn new(config: SimConfig, tokens: TokenStore) -> Self {
        Self {
            tokens: RwLock::new(tokens),
            access_tokens: Mutex::new(HashMap::new()),
            limiter: Mutex::new(SlidingWindowLimiter::new(
                config.rate_limit,
                config.rate_window,
            )),
            stats: Mutex::new(StatsRecorder::new(config.rate_limit, config.rate_window)),
            faults: RwLock::new(config.faults.clone()),
            dice: Mutex::new(Dice::new(config.seed)),
            config,
        }
    }

    pub(crate) fn faults(&self) -> Faults {
        self.faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        *self.faults.write().unwrap_or_else(PoisonError::into_inner) = faults;
    }

    pub(crate) fn tokens(&self) -> RwLockReadGuard<'_, TokenStore> {
        self.tokens.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn tokens_mut(&self) -> RwLockWriteGuard<'_, TokenStore> {
        self.tokens.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stats(&self) -> MutexGuard<'_, StatsRecorder> {
        lock(&self.stats)
    }

    fn hits(&self, fraction: f64) -> bool {
        lock(&self.dice).hits(fraction)
    }

    /// Records an arrival for the statistics and checks the limiter.
    pub(crate) fn check_rate_limit(
        &self,
        client_id: &str,
        version: &'static str,
    ) -> Result<(), Rejection> {
        let now = Instant::now();
        self.stats().record_arrival(client_id, version, now);
        let admitted = lock(&self.limiter).try_acquire((client_id.to_owned(), version), now);
        admitted.map_err(|wait| {
            self.stats().totals_mut().rate_limited += 1;
            Rejection::TooManyRequests {
                retry_after_secs: whole_seconds_up(wait),
            }
        })
    }

    /// Returns the client id behind the request's bearer token.
    fn authenticate(&self, headers: &HeaderMap) -> Result<String, Rejection> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty());
        let Some(bearer) = bearer else {
            return Err(Rejection::Unauthorized("JWT is required"));
        };

        let access_tokens = lock(&self.access_tokens);
        match access_tokens.get(bearer) {
            None => Err(Rejection::Unauthorized(
                "JWT validation failed: JWT signature does not match",
            )),
            Some(token) if Instant::now() >= token.expires_at => Err(Rejection::Unauthorized(
                "JWT validation failed: JWT is expired",
            )),
            Some(token) => Ok(token.client_id.clone()),
        }
    }
}

/// Reason a request ends before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// 401 with this message.
    Unauthorized(&'static str),
    /// 429, from the rate limit or the 429 fault.
    TooManyRequests { retry_after_secs: u64 },
    /// An injected 5xx with this status.
    ServerError(u16),
    /// The connection is closed without a response.
    Dropped,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthorized(message) => responses::unauthorized(message),
            Self::TooManyRequests { retry_after_secs } => {
                responses::too_many_requests(retry_after_secs)
            }
            Self::ServerError(status) => responses::server_error(status),
            Self::Dropped => {
                let mut response = StatusCode::OK.into_response();
                response.extensions_mut().insert(Dropped);
                response
            }
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Rounds up to whole seconds, at least 1, as `Retry-After` needs.
fn whole_seconds_up(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

/// Marks a response that is never sent because its connection was dropped.
#[derive(Debug, Clone, Copy)]
struct Dropped;

pub(crate) fn router(tenant: Arc<Tenant>) -> Router {
    let mut router = Router::new().route("/oauth/token", post(oauth::issue_token));
    for (version, path) in API_VERSIONS {
        router = router
            .route(
                path,
                get(
                    move |state: State<Arc<Tenant>>,
                          connection: ConnectInfo<ConnectionInfo>,
                          headers: HeaderMap,
                          query: Query<Vec<(String, String)>>| {
                        list_tokens(state, connection, headers, query, version)
                    },
                ),
            )
            .route(
                &format!("{path}/{{id}}"),
                delete(
                    move |state: State<Arc<Tenant>>,
                          connection: ConnectInfo<ConnectionInfo>,
                          headers: HeaderMap,
                          id: Path<String>| {
                        delete_token(state, connection, headers, id, version)
                    },
                ),
            );
    }

    router
        .merge(control::router())
        .fallback(|| async { responses::not_found() })
        .method_not_allowed_fallback(|| async { responses::method_not_allowed() })
        .layer(middleware::from_fn_with_state(tenant.clone(), track))
        .with_state(tenant)
}

/// The kinds of path the statistics distinguish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathKind {
    Token,
    List,
    Delete,
    Control,
    Other,
}

impl PathKind {
    fn of(path: &str) -> Self {
        if path == "/oauth/token" {
            return Self::Token;
        }
        if path == "/_sim" || path.starts_with("/_sim/") {
            return Self::Control;
        }
        for (_, list_path) in API_VERSIONS {
            if path == list_path {
                return Self::List;
            }
            if let Some(rest) = path.strip_prefix(list_path)
                && rest.len() > 1
                && rest.starts_with('/')
                && !rest[1..].contains('/')
            {
                return Self::Delete;
            }
        }
        Self::Other
    }

    fn label(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::List => "list",
            Self::Delete => "delete",
            Self::Control => "control",
            Self::Other => "other",
        }
    }
}

/// Applies latency, counts the response and sets the `Date` header.
async fn track(State(tenant): State<Arc<Tenant>>, request: Request, next: Next) -> Response {
    let kind = PathKind::of(request.uri().path());
    let method = request.method().clone();
    let faults = tenant.faults();

    if kind != PathKind::Control && faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }

    let mut response = next.run(request).await;

    if kind != PathKind::Control {
        let status = if response.extensions().get::<Dropped>().is_some() {
            "dropped".to_owned()
        } else {
            response.status().as_u16().to_string()
        };
        tenant
            .stats()
            .record_response(method.as_str(), kind.label(), &status);
        tracing::debug!(%method, kind = kind.label(), %status, "responded");
    }

    let date = skewed(SystemTime::now(), tenant.faults().clock_skew_secs);
    if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(date)) {
        response.headers_mut().insert(header::DATE, value);
    }
    response
}

fn skewed(now: SystemTime, skew_secs: i64) -> SystemTime {
    let shift = Duration::from_secs(skew_secs.unsigned_abs());
    let shifted = if skew_secs >= 0 {
        now.checked_add(shift)
    } else {
        now.checked_sub(shift)
    };
    shifted.unwrap_or(now)
}

/// The steps every PAT request passes before its handler: dropped-connection fault,
/// authentication, rate limit, 429 and 5xx faults. Returns the caller's client id.
fn admit(
    tenant: &Tenant,
    connection: &ConnectionInfo,
    headers: &HeaderMap,
    version: &'static str,
    faults: &Faults,
) -> Result<String, Rejection> {
    if tenant.hits(faults.drop_connection) {
        connection.connection.abort();
        tenant.stats().totals_mut().faults.dropped += 1;
        return Err(Rejection::Dropped);
    }

    let client_id = tenant.authenticate(headers)?;
    tenant.check_rate_limit(&client_id, version)?;

    if tenant.hits(faults.too_many_requests) {
        tenant.stats().totals_mut().faults.too_many_requests += 1;
        return Err(Rejection::TooManyRequests {
            retry_after_secs: faults.retry_after_secs,
        });
    }
    if tenant.hits(faults.server_error) {
        let status = lock(&tenant.dice).server_error_status(faults.server_error_status);
        tenant.stats().totals_mut().faults.server_errors += 1;
        return Err(Rejection::ServerError(status));
    }
    Ok(client_id)
}

/// Owners whose tokens a list request covers.
enum OwnerScope {
    All,
    Identity(String),
    /// `owner-id=me` from a client whose PAT is not in the tenant's token list.
    Nobody,
}

async fn list_tokens(
    State(tenant): State<Arc<Tenant>>,
    ConnectInfo(connection): ConnectInfo<ConnectionInfo>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
    version: &'static str,
) -> Response {
    let faults = tenant.faults();
    let client_id = match admit(&tenant, &connection, &headers, version, &faults) {
        Ok(client_id) => client_id,
        Err(rejection) => return rejection.into_response(),
    };

    let parameter = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let filter = match parameter("filters").map(str::trim) {
        Some(text) if !text.is_empty() && !faults.ignore_filters => match Filter::parse(text) {
            Ok(filter) => Some(filter),
            Err(error) => return responses::bad_request(&error.to_string()),
        },
        _ => None,
    };

    let (mut body, capped) = {
        let tokens = tenant.tokens();
        let owner = match parameter("owner-id") {
            None => OwnerScope::All,
            Some("me") => match tokens.get(&client_id).and_then(|token| token.owner_id()) {
                Some(owner) => OwnerScope::Identity(owner.to_owned()),
                None => OwnerScope::Nobody,
            },
            Some(owner) => OwnerScope::Identity(owner.to_owned()),
        };
        list_body(&tokens, &owner, filter.as_ref(), faults.list_cap)
    };
    if capped {
        tenant.stats().totals_mut().faults.capped_lists += 1;
    }
    if let Err(rejection) = drop_after_processing(&tenant, &connection, &faults) {
        return rejection.into_response();
    }

    if tenant.hits(faults.malformed_body) {
        tenant.stats().totals_mut().faults.malformed += 1;
        body.pop();
        body.push_str(if body.len() > 1 {
            ",{\"id\":"
        } else {
            "{\"id\":"
        });
    } else if tenant.hits(faults.cut_body) {
        tenant.stats().totals_mut().faults.cut_bodies += 1;
        connection.connection.cut_body_after(body.len() / 2);
    }

    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Joins the stored text of every listed token into a JSON array. Returns the body and
/// whether `cap` left tokens out.
fn list_body(
    tokens: &TokenStore,
    owner: &OwnerScope,
    filter: Option<&Filter>,
    cap: Option<usize>,
) -> (String, bool) {
    let mut body = String::from("[");
    let mut listed = 0usize;

    for token in tokens.iter() {
        let owner_matches = match owner {
            OwnerScope::All => true,
            OwnerScope::Identity(id) => token.owner_id() == Some(id.as_str()),
            OwnerScope::Nobody => false,
        };
        if !owner_matches || !filter.is_none_or(|filter| filter.matches(token.last_used())) {
            continue;
        }
        if cap.is_some_and(|cap| listed >= cap) {
            body.push(']');
            return (body, true);
        }
        if listed > 0 {
            body.push(',');
        }
        body.push_str(token.raw_json());
        listed += 1;
    }
    body.push(']');
    (body, false)
}

async fn delete_token(
    State(tenant): State<Arc<Tenant>>,
    ConnectInfo(connection): ConnectInfo<ConnectionInfo>,
    headers: HeaderMap,
    Path(id): Path<String>,
    version: &'static str,
) -> Response {
    let faults = tenant.faults();
    if let Err(rejection) = admit(&tenant, &connection, &headers, version, &faults) {
        return rejection.into_response();
    }

    let removed = tenant.tokens_mut().remove(&id);
    if !removed {
        return responses::not_found();
    }
    tenant.stats().totals_mut().deletes += 1;
    tracing::debug!(token_id = %id, version, "token deleted");
    if let Err(rejection) = drop_after_processing(&tenant, &connection, &faults) {
        return rejection.into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Closes the connection without a response when the drop-after-processing fault hits.
fn drop_after_processing(
    tenant: &Tenant,
    connection: &ConnectionInfo,
    faults: &Faults,
) -> Result<(), Rejection> {
    if tenant.hits(faults.drop_after_processing) {
        connection.connection.abort();
        tenant.stats().totals_mut().faults.dropped_after_processing += 1;
        return Err(Rejection::Dropped);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::tokens::SimToken;

    fn store(texts: &[&str]) -> TokenStore {
        TokenStore::new(
            texts
                .iter()
                .map(|text| SimToken::from_json(text).unwrap())
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn path_kinds() {
        assert_eq!(PathKind::of("/oauth/token"), PathKind::Token);
        assert_eq!(PathKind::of("/_sim/stats"), PathKind::Control);
        assert_eq!(PathKind::of("/personal-access-tokens/v1"), PathKind::List);
        assert_eq!(
            PathKind::of("/v2025/personal-access-tokens/abc"),
            PathKind::Delete
        );
        assert_eq!(PathKind::of("/v3/personal-access-tokens/"), PathKind::Other);
        assert_eq!(
            PathKind::of("/v3/personal-access-tokens/a/b"),
            PathKind::Other
        );
        assert_eq!(PathKind::of("/v4/personal-access-tokens"), PathKind::Other);
    }

    #[test]
    fn list_body_filters_owner_and_caps() {
        let tokens = store(&[
            r#"{"id":"a","owner":{"id":"o1"},"lastUsed":"2020-01-01T00:00:00Z"}"#,
            r#"{"id":"b","owner":{"id":"o2"},"lastUsed":null}"#,
            r#"{"id":"c","owner":{"id":"o1"}}"#,
        ]);
        let (body, capped) = list_body(&tokens, &OwnerScope::All, None, None);
        assert_eq!(
            body,
            r#"[{"id":"a","owner":{"id":"o1"},"lastUsed":"2020-01-01T00:00:00Z"},{"id":"b","owner":{"id":"o2"},"lastUsed":null},{"id":"c","owner":{"id":"o1"}}]"#
        );
        assert!(!capped);

        let isnull = Filter::parse("lastUsed isnull").unwrap();
        let (body, _) = list_body(
            &tokens,
            &OwnerScope::Identity("o1".into()),
            Some(&isnull),
            None,
        );
        assert_eq!(body, r#"[{"id":"c","owner":{"id":"o1"}}]"#);

        let (body, capped) = list_body(&tokens, &OwnerScope::All, None, Some(1));
        assert!(body.starts_with(r#"[{"id":"a""#), "{body}");
        assert!(body.ends_with("}]"), "{body}");
        assert!(!body.contains(r#""id":"b""#), "{body}");
        assert!(capped);

        let (body, _) = list_body(&tokens, &OwnerScope::Nobody, None, None);
        assert_eq!(body, "[]");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(whole_seconds_up(Duration::ZERO), 1);
        assert_eq!(whole_seconds_up(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds_up(Duration::from_secs(3)), 3);
    }

    #[test]
    fn skew_shifts_both_ways() {
        let now = SystemTime::now();
        assert_eq!(
            skewed(now, 3600).duration_since(now).unwrap(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            now.duration_since(skewed(now, -90)).unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(skewed(now, 0), now);
    }
}
