//! Tests of the client against scripted in-process servers on 127.0.0.1 (real HTTP over
//! loopback). Each server records what it received and replies through a closure. Pacing and
//! backoff under paused time are tested in `pacer.rs`, `retry.rs` and `auth.rs`, never here,
//! because paused time and real sockets do not mix.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use chrono::TimeZone;
use secrecy::SecretString;

use super::*;

const SECRET: &str = "sEcReT-4f9d-client-secret";
const CLIENT_ID: &str = "86f1dc6fe8f54414950454cbb11278fa";
const TOKEN_PATH: &str = "/oauth/token";
const LIST_PATH: &str = "/v3/personal-access-tokens";

/// One request as the scripted server received it.
#[derive(Debug, Clone)]
struct Received {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// A scripted reply.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    /// Time the server waits before it sends the reply.
    delay: Duration,
}

impl Reply {
    fn new(status: u16, body: &str) -> Self {
        Reply {
            status,
            headers: vec![("content-type", "application/json".to_owned())],
            body: body.to_owned(),
            delay: Duration::ZERO,
        }
    }

    fn empty(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Responder = dyn Fn(&Received) -> Reply + Send + Sync;

#[derive(Clone)]
struct ServerState {
    received: Arc<Mutex<Vec<Received>>>,
    respond: Arc<Responder>,
}

/// A scripted HTTP server on 127.0.0.1 with an ephemeral port.
struct Server {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Server {
    async fn start(respond: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Server {
        let state = ServerState {
            received: Arc::default(),
            respond: Arc::new(respond),
        };
        let received = Arc::clone(&state.received);
        let app = axum::Router::new().fallback(handle).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server {
            url: format!("http://{address}"),
            received,
        }
    }

    /// Starts a server whose token endpoint mints `access-1`, `access-2`, ... valid for an
    /// hour, and whose other paths reply through `respond`.
    async fn with_tokens(respond: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Server {
        let minted = AtomicUsize::new(0);
        Server::start(move |request| {
            if request.path == TOKEN_PATH {
                let number = minted.fetch_add(1, Ordering::SeqCst) + 1;
                token_reply(&format!("access-{number}"), 3_600)
            } else {
                respond(request)
            }
        })
        .await
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn count(&self, path: &str) -> usize {
        self.received()
            .iter()
            .filter(|request| request.path == path)
            .count()
    }

    fn settings(&self) -> ClientSettings {
        ClientSettings::new(
            &self.url,
            ApiVersion::V3,
            CLIENT_ID,
            SecretString::from(SECRET),
        )
    }

    fn client(&self) -> Client {
        Client::new(self.settings()).unwrap()
    }
}

async fn handle(
    State(state): State<ServerState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received {
        method,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let reply = (state.respond)(&received);
    state.received.lock().unwrap().push(received);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }

    let mut response = Response::builder().status(reply.status);
    for (name, value) in reply.headers {
        response = response.header(name, value);
    }
    response.body(Body::from(reply.body)).unwrap()
}

fn token_reply(access_token: &str, expires_in: u64) -> Reply {
    Reply::new(
        200,
        &format!(
            r#"{{"access_token":"{access_token}","token_type":"bearer","expires_in":{expires_in},
                "scope":"sp:scopes:all","tenant_id":"58eb06a4","pod":"cook","jti":"9499b299"}}"#
        ),
    )
}

const ONE_TOKEN_LIST: &str = r#"[{"id":"86f1dc6fe8f54414950454cbb11278fa","name":"NodeJS Integration",
    "scope":["demo:personal-access-token-scope:first"],
    "owner":{"type":"IDENTITY","id":"2c9180a46faadee4016fb4e018c20639","name":"Support"},
    "created":"2017-07-11T18:45:37.098Z","lastUsed":"2017-07-11T18:45:37.098Z","managed":false,
    "accessTokenValiditySeconds":36900,"expirationDate":"2026-12-31T23:59:59.999Z",
    "userAwareTokenNeverExpires":false}]"#;

const FORBIDDEN_BODY: &str = r#"{"detailCode":"403 Forbidden","trackingId":"b21b1f7ce4da4d639f2c62a57171b427",
    "messages":[{"locale":"en-US","localeOrigin":"DEFAULT",
    "text":"The server understood the request but refuses to authorize it."}]}"#;

const INTERNAL_FAULT_BODY: &str = r#"{"detailCode":"500.0 Internal Fault","trackingId":"c0ffee00c0ffee00c0ffee00c0ffee00",
    "messages":[{"locale":"en-US","localeOrigin":"DEFAULT","text":"An internal fault occurred."}]}"#;

fn request_count(stats: &RequestStats, operation: &str, class: &str) -> u64 {
    stats
        .requests
        .get(&(operation.to_owned(), class.to_owned()))
        .copied()
        .unwrap_or(0)
}

/// Collects the formatted log lines of everything run while the guard lives.
fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = Buffer(Arc::clone(&buffer));
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (buffer, tracing::subscriber::set_default(subscriber))
}

fn logged(buffer: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()
}

#[test]
fn api_version_names_round_trip() {
    for version in ApiVersion::ALL {
        let name = version.to_string();
        assert_eq!(name.parse::<ApiVersion>(), Ok(version));
        let json = serde_json::to_string(&version).unwrap();
        assert_eq!(json, format!("\"{name}\""));
    }
    assert_eq!("V2025".parse::<ApiVersion>(), Ok(ApiVersion::V2025));
    let err = "v4".parse::<ApiVersion>().unwrap_err();
    assert!(err.to_string().contains("v3, beta"), "{err}");
    assert_eq!(ApiVersion::default(), ApiVersion::V3);
}

#[test]
fn api_version_collection_paths() {
    let paths: Vec<&str> = ApiVersion::ALL
        .iter()
        .map(|version| version.collection_path())
        .collect();
    assert_eq!(
        paths,
        [
            "/v3/personal-access-tokens",
            "/beta/personal-access-tokens",
            "/v2024/personal-access-tokens",
            "/v2025/personal-access-tokens",
            "/v2026/personal-access-tokens",
            "/personal-access-tokens/v1",
        ]
    );
}

#[test]
fn filter_expression_uses_milliseconds_in_utc() {
    let cutoff = Utc.with_ymd_and_hms(2026, 9, 2, 0, 0, 0).unwrap();
    assert_eq!(
        ListFilter::LastUsedLe(cutoff).expression().as_deref(),
        Some("lastUsed le 2026-09-02T00:00:00.000Z")
    );

    // Sub-millisecond digits are cut, never rounded up past the requested instant.
    let precise = DateTime::parse_from_rfc3339("2023-02-05T12:59:27.214999+02:00")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        ListFilter::LastUsedLe(precise).expression().as_deref(),
        Some("lastUsed le 2023-02-05T10:59:27.214Z")
    );
    assert_eq!(
        ListFilter::LastUsedIsNull.expression().as_deref(),
        Some("lastUsed isnull")
    );
    assert_eq!(ListFilter::All.expression(), None);
}

#[test]
fn client_new_checks_url_scheme_and_host() {
    let settings =
        |url: &str| ClientSettings::new(url, ApiVersion::V3, CLIENT_ID, SecretString::from(SECRET));

    let rejected = Client::new(settings("http://acme.api.identitynow.com")).unwrap_err();
    assert!(
        matches!(rejected, IscError::InvalidUrl { .. }),
        "{rejected:?}"
    );
    assert!(rejected.to_string().contains("use https"), "{rejected}");

    for url in [
        "https://acme.api.identitynow.com",
        "http://127.0.0.1:8080",
        "http://[::1]:8080",
        "http://localhost:8080",
    ] {
        assert!(Client::new(settings(url)).is_ok(), "{url}");
    }
}

#[test]
fn client_new_rejects_settings_out_of_range() {
    let base = ClientSettings::new(
        "https://acme.api.identitynow.com",
        ApiVersion::V3,
        CLIENT_ID,
        SecretString::from(SECRET),
    );

    let mut zero_limit = base.clone();
    zero_limit.rate_limit_requests = 0;
    let err = Client::new(zero_limit).unwrap_err();
    assert!(
        matches!(
            err,
            IscError::InvalidSettings {
                setting: "rate_limit_requests",
                ..
            }
        ),
        "{err:?}"
    );

    let mut zero_window = base.clone();
    zero_window.rate_limit_window = Duration::ZERO;
    assert!(Client::new(zero_window).is_err());

    let mut huge_retry_after = base.clone();
    huge_retry_after.max_retry_after = Duration::from_secs(u64::MAX);
    assert!(Client::new(huge_retry_after).is_err());

    let mut no_id = base;
    no_id.client_id = " ".to_owned();
    assert!(Client::new(no_id).is_err());
}

#[tokio::test]
async fn token_request_sends_client_credentials_form() {
    let server = Server::with_tokens(|_| Reply::new(200, "[]")).await;
    server.client().list(ListFilter::All, None).await.unwrap();

    let received = server.received();
    assert_eq!(received.len(), 2);
    let mint = &received[0];
    assert_eq!(mint.method, Method::POST);
    assert_eq!(mint.path, TOKEN_PATH);
    assert_eq!(mint.query, None);
    assert_eq!(
        mint.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    // None of the values contains a character that form encoding escapes.
    let form: HashMap<&str, &str> = mint
        .body
        .split('&')
        .map(|pair| pair.split_once('=').unwrap())
        .collect();
    assert_eq!(form.len(), 3);
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], CLIENT_ID);
    assert_eq!(form["client_secret"], SECRET);
    assert_eq!(mint.header("authorization"), None);

    let list = &received[1];
    assert_eq!(list.method, Method::GET);
    assert_eq!(list.path, LIST_PATH);
    assert_eq!(list.header("authorization"), Some("Bearer access-1"));
    assert_eq!(list.header("user-agent"), Some(USER_AGENT));
    assert_eq!(USER_AGENT, concat!("patrol/", env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn token_is_minted_once_for_many_calls() {
    let server = Server::with_tokens(|_| Reply::empty(204)).await;
    let client = server.client();

    let mut tasks = Vec::new();
    for number in 0..20 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client.delete(&format!("token-{number}")).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), DeleteOutcome::Deleted);
    }

    assert_eq!(server.count(TOKEN_PATH), 1);
    let stats = client.stats();
    assert_eq!(request_count(&stats, "token", "2xx"), 1);
    assert_eq!(request_count(&stats, "delete", "2xx"), 20);
    assert!(
        server
            .received()
            .iter()
            .filter(|request| request.path != TOKEN_PATH)
            .all(|request| request.header("authorization") == Some("Bearer access-1"))
    );
}

#[tokio::test]
async fn token_near_expiry_is_minted_again() {
    // A lifetime of zero seconds leaves no time before the renewal margin, so every call
    // finds the cached token due for renewal.
    let minted = AtomicUsize::new(0);
    let server = Server::start(move |request| {
        if request.path == TOKEN_PATH {
            let number = minted.fetch_add(1, Ordering::SeqCst) + 1;
            token_reply(&format!("access-{number}"), 0)
        } else {
            Reply::empty(204)
        }
    })
    .await;
    let client = server.client();

    for id in ["a", "b", "c"] {
        client.delete(id).await.unwrap();
    }

    assert_eq!(server.count(TOKEN_PATH), 3);
    let bearers: Vec<String> = server
        .received()
        .iter()
        .filter(|request| request.method == Method::DELETE)
        .map(|request| request.header("authorization").unwrap().to_owned())
        .collect();
    assert_eq!(
        bearers,
        ["Bearer access-1", "Bearer access-2", "Bearer access-3"]
    );
}

#[tokio::test]
async fn rejected_token_is_minted_again_once() {
    let server = Server::with_tokens(|request| match request.header("authorization") {
        Some("Bearer access-1") => {
            Reply::new(401, r#"{"error":"JWT validation failed: JWT is expired"}"#)
        }
        _ => Reply::empty(204),
    })
    .await;
    let client = server.client();

    assert_eq!(client.delete("a").await.unwrap(), DeleteOutcome::Deleted);

    assert_eq!(server.count(TOKEN_PATH), 2);
    assert_eq!(server.count("/v3/personal-access-tokens/a"), 2);
    let stats = client.stats();
    assert_eq!(stats.retries, 1);
    assert_eq!(request_count(&stats, "delete", "4xx"), 1);
    assert_eq!(request_count(&stats, "delete", "2xx"), 1);
}

#[tokio::test]
async fn persistent_401_is_authentication_error() {
    let server = Server::with_tokens(|_| {
        Reply::new(401, r#"{"error":"JWT validation failed: JWT is expired"}"#)
    })
    .await;

    let err = server.client().delete("a").await.unwrap_err();

    let IscError::Authentication {
        status, message, ..
    } = &err
    else {
        panic!("expected Authentication, got {err:?}");
    };
    assert_eq!(*status, 401);
    assert_eq!(message, "JWT validation failed: JWT is expired");
    assert_eq!(server.count(TOKEN_PATH), 2);
    assert_eq!(server.count("/v3/personal-access-tokens/a"), 2);
}

#[tokio::test]
async fn token_endpoint_rejection_is_authentication_error() {
    let server = Server::start(|request| match request.path.as_str() {
        TOKEN_PATH => Reply::new(
            401,
            r#"{"error":"unauthorized","error_description":"Full authentication is required to access this resource"}"#,
        ),
        _ => Reply::empty(204),
    })
    .await;

    let err = server.client().delete("a").await.unwrap_err();

    assert_eq!(
        err,
        IscError::Authentication {
            status: 401,
            tracking_id: None,
            message: "Full authentication is required to access this resource".to_owned(),
        }
    );
    assert_eq!(server.count(TOKEN_PATH), 1);
    assert_eq!(server.count("/v3/personal-access-tokens/a"), 0);
}

#[tokio::test]
async fn token_endpoint_bad_request_is_authentication_error() {
    let server = Server::start(|_| {
        Reply::new(
            400,
            r#"{"error":"invalid_client","error_description":"Bad client credentials"}"#,
        )
    })
    .await;

    let err = server
        .client()
        .list(ListFilter::All, None)
        .await
        .unwrap_err();

    assert!(
        matches!(err, IscError::Authentication { status: 400, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("Bad client credentials"), "{err}");
    assert_eq!(server.count(TOKEN_PATH), 1);
}

#[tokio::test]
async fn token_endpoint_429_is_retried() {
    let calls = AtomicUsize::new(0);
    let server = Server::start(move |request| match request.path.as_str() {
        TOKEN_PATH if calls.fetch_add(1, Ordering::SeqCst) == 0 => {
            Reply::new(429, r#"{"message":" Rate Limit Exceeded "}"#).header("retry-after", "0")
        }
        TOKEN_PATH => token_reply("access-1", 3_600),
        _ => Reply::empty(204),
    })
    .await;
    let client = server.client();

    assert_eq!(client.delete("a").await.unwrap(), DeleteOutcome::Deleted);

    assert_eq!(server.count(TOKEN_PATH), 2);
    let stats = client.stats();
    assert_eq!(request_count(&stats, "token", "4xx"), 1);
    assert_eq!(stats.rate_limited, 1);
}

#[tokio::test]
async fn rate_limited_request_waits_retry_after() {
    let calls = AtomicUsize::new(0);
    let server = Server::with_tokens(move |_| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::new(429, r#"{"message":" Rate Limit Exceeded "}"#).header("retry-after", "1")
        } else {
            Reply::new(200, ONE_TOKEN_LIST)
        }
    })
    .await;
    let client = server.client();

    let listing = client.list(ListFilter::All, None).await.unwrap();

    assert_eq!(listing.tokens.len(), 1);
    assert_eq!(server.count(LIST_PATH), 2);
    let stats = client.stats();
    assert_eq!(stats.rate_limited, 1);
    assert_eq!(stats.retries, 1);
    assert_eq!(request_count(&stats, "list", "4xx"), 1);
    assert_eq!(request_count(&stats, "list", "2xx"), 1);
    assert!(stats.rate_limit_wait >= Duration::from_secs(1), "{stats:?}");
}

#[tokio::test]
async fn rate_limit_persisting_after_retries_is_error() {
    let server = Server::with_tokens(|_| {
        Reply::new(429, r#"{"message":" Rate Limit Exceeded "}"#).header("retry-after", "0")
    })
    .await;
    let mut settings = server.settings();
    settings.max_retries = 0;
    settings.max_rate_limited_retries = 2;
    let client = Client::new(settings).unwrap();

    let err = client.delete("a").await.unwrap_err();

    // 429s have their own retry budget, apart from max_retries.
    assert_eq!(err, IscError::RateLimited { tracking_id: None });
    assert_eq!(server.count("/v3/personal-access-tokens/a"), 3);
    assert_eq!(client.stats().retries, 2);
}

#[tokio::test]
async fn unavailable_server_is_retried() {
    let calls = AtomicUsize::new(0);
    let server = Server::with_tokens(move |_| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::new(503, "{}")
        } else {
            Reply::empty(204)
        }
    })
    .await;
    let client = server.client();

    assert_eq!(client.delete("a").await.unwrap(), DeleteOutcome::Deleted);
    assert_eq!(server.count("/v3/personal-access-tokens/a"), 2);
    let stats = client.stats();
    assert_eq!(request_count(&stats, "delete", "5xx"), 1);
    assert_eq!(stats.retries, 1);
    assert_eq!(stats.rate_limited, 0);
}

#[tokio::test]
async fn server_error_500_and_501_are_not_retried() {
    for status in [500, 501] {
        let server = Server::with_tokens(move |_| Reply::new(status, INTERNAL_FAULT_BODY)).await;

        let err = server.client().delete("a").await.unwrap_err();

        assert_eq!(
            err,
            IscError::Server {
                status,
                tracking_id: Some("c0ffee00c0ffee00c0ffee00c0ffee00".to_owned()),
                message: "An internal fault occurred.".to_owned(),
            }
        );
        assert_eq!(server.count("/v3/personal-access-tokens/a"), 1);
    }
}

#[tokio::test]
async fn bad_request_is_not_retried() {
    let server = Server::with_tokens(|_| {
        Reply::new(
            400,
            r#"{"detailCode":"400.1 Bad Request Content","trackingId":"e7eab60924f64aa284175b9fa3309599",
            "messages":[{"locale":"en-US","localeOrigin":"DEFAULT","text":"The request was syntactically correct but its content is semantically invalid."}],"causes":[]}"#,
        )
    })
    .await;
    let client = server.client();

    let err = client
        .list(ListFilter::LastUsedIsNull, None)
        .await
        .unwrap_err();

    assert!(
        matches!(err, IscError::Client { status: 400, .. }),
        "{err:?}"
    );
    assert_eq!(err.tracking_id(), Some("e7eab60924f64aa284175b9fa3309599"));
    assert_eq!(server.count(LIST_PATH), 1);
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn forbidden_error_carries_tracking_id() {
    let server = Server::with_tokens(|_| Reply::new(403, FORBIDDEN_BODY)).await;

    let err = server.client().delete("a").await.unwrap_err();

    assert!(matches!(err, IscError::Forbidden { .. }), "{err:?}");
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.tracking_id(), Some("b21b1f7ce4da4d639f2c62a57171b427"));
    assert_eq!(
        err.to_string(),
        "forbidden (HTTP 403): The server understood the request but refuses to authorize it."
    );
}

#[tokio::test]
async fn delete_maps_204_and_404() {
    let server = Server::with_tokens(|request| match request.path.as_str() {
        "/v3/personal-access-tokens/present" => Reply::empty(204),
        _ => Reply::new(
            404,
            r#"{"detailCode":"404 Not found","trackingId":"b21b1f7ce4da4d639f2c62a57171b427",
            "messages":[{"locale":"en-US","localeOrigin":"DEFAULT","text":"The server did not find a current representation for the target resource."}]}"#,
        ),
    })
    .await;
    let client = server.client();

    assert_eq!(
        client.delete("present").await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        client.delete("missing").await.unwrap(),
        DeleteOutcome::AlreadyGone
    );

    let deletes: Vec<Received> = server
        .received()
        .into_iter()
        .filter(|request| request.method == Method::DELETE)
        .collect();
    assert_eq!(deletes.len(), 2);
    assert_eq!(deletes[0].path, "/v3/personal-access-tokens/present");
    assert_eq!(deletes[1].path, "/v3/personal-access-tokens/missing");
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn delete_encodes_id_rejects_dot_segments() {
    let server = Server::with_tokens(|_| Reply::empty(204)).await;
    let client = server.client();

    client.delete("a/b c").await.unwrap();
    let err = client.delete("..").await.unwrap_err();

    assert!(matches!(err, IscError::InvalidTokenId { .. }), "{err:?}");
    let deletes: Vec<String> = server
        .received()
        .into_iter()
        .filter(|request| request.method == Method::DELETE)
        .map(|request| request.path)
        .collect();
    assert_eq!(deletes, ["/v3/personal-access-tokens/a%2Fb%20c"]);
}

#[tokio::test]
async fn list_sends_exact_filter_queries() {
    let server = Server::with_tokens(|_| Reply::new(200, "[]")).await;
    let client = server.client();
    let cutoff = Utc.with_ymd_and_hms(2026, 9, 2, 0, 0, 0).unwrap();

    client.list(ListFilter::All, None).await.unwrap();
    client
        .list(ListFilter::LastUsedLe(cutoff), None)
        .await
        .unwrap();
    client.list(ListFilter::LastUsedIsNull, None).await.unwrap();
    client
        .list(
            ListFilter::LastUsedIsNull,
            Some("2c9180a46faadee4016fb4e018c20639"),
        )
        .await
        .unwrap();
    client.list(ListFilter::All, Some("me")).await.unwrap();

    let queries: Vec<Option<String>> = server
        .received()
        .into_iter()
        .filter(|request| request.path == LIST_PATH)
        .map(|request| request.query)
        .collect();
    assert_eq!(
        queries,
        [
            None,
            Some("filters=lastUsed+le+2026-09-02T00%3A00%3A00.000Z".to_owned()),
            Some("filters=lastUsed+isnull".to_owned()),
            Some("filters=lastUsed+isnull&owner-id=2c9180a46faadee4016fb4e018c20639".to_owned()),
            Some("owner-id=me".to_owned()),
        ]
    );
}

#[tokio::test]
async fn list_parses_tokens_and_date_header() {
    let server = Server::with_tokens(|_| {
        Reply::new(200, ONE_TOKEN_LIST).header("date", "Wed, 02 Sep 2026 08:00:00 GMT")
    })
    .await;

    let listing = server.client().list(ListFilter::All, None).await.unwrap();

    assert_eq!(listing.tokens.len(), 1);
    let token = &listing.tokens[0];
    assert_eq!(token.id, "86f1dc6fe8f54414950454cbb11278fa");
    assert_eq!(token.owner.name.as_deref(), Some("Support"));
    assert_eq!(
        listing.server_date,
        Some(Utc.with_ymd_and_hms(2026, 9, 2, 8, 0, 0).unwrap())
    );
}

#[tokio::test]
async fn list_rejects_malformed_body() {
    let server = Server::with_tokens(|_| Reply::new(200, r#"{"items":[]}"#)).await;

    let err = server
        .client()
        .list(ListFilter::All, None)
        .await
        .unwrap_err();

    assert!(
        matches!(err, IscError::Decode { status: 200, .. }),
        "{err:?}"
    );
    assert_eq!(server.count(LIST_PATH), 1);
}

#[tokio::test]
async fn every_api_version_uses_its_paths() {
    let server = Server::with_tokens(|request| match request.method {
        Method::GET => Reply::new(200, "[]"),
        _ => Reply::empty(204),
    })
    .await;

    for version in ApiVersion::ALL {
        let mut settings = server.settings();
        settings.api_version = version;
        let client = Client::new(settings).unwrap();
        client.list(ListFilter::All, None).await.unwrap();
        client
            .delete("ef38f94347e94562b5bb8424a56397d8")
            .await
            .unwrap();
    }

    let paths: Vec<String> = server
        .received()
        .into_iter()
        .filter(|request| request.path != TOKEN_PATH)
        .map(|request| format!("{} {}", request.method, request.path))
        .collect();
    let mut expected = Vec::new();
    for version in ApiVersion::ALL {
        let collection = version.collection_path();
        expected.push(format!("GET {collection}"));
        expected.push(format!(
            "DELETE {collection}/ef38f94347e94562b5bb8424a56397d8"
        ));
    }
    assert_eq!(paths, expected);
}

#[tokio::test]
async fn redirect_is_not_followed() {
    let target = Arc::new(Mutex::new(String::new()));
    let location = Arc::clone(&target);
    let server = Server::with_tokens(move |request| match request.path.as_str() {
        LIST_PATH => Reply::empty(302).header("location", &location.lock().unwrap()),
        _ => Reply::new(200, "[]"),
    })
    .await;
    *target.lock().unwrap() = format!("{}/elsewhere?access_token=leak", server.url);

    let err = server
        .client()
        .list(ListFilter::All, None)
        .await
        .unwrap_err();

    assert!(
        matches!(err, IscError::UnexpectedStatus { status: 302, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("not followed"), "{err}");
    assert!(!err.to_string().contains("leak"), "{err}");
    assert_eq!(server.count("/elsewhere"), 0);
    assert_eq!(server.count(LIST_PATH), 1);
}

#[tokio::test]
async fn deadline_stops_retry_wait_at_once() {
    let server = Server::with_tokens(|_| {
        Reply::new(429, r#"{"message":" Rate Limit Exceeded "}"#).header("retry-after", "30")
    })
    .await;
    let client = server
        .client()
        .with_deadline(tokio::time::Instant::now() + Duration::from_secs(5));

    let err = client.delete("a").await.unwrap_err();

    assert_eq!(err, IscError::DeadlineExceeded);
    assert_eq!(server.count("/v3/personal-access-tokens/a"), 1);
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn deadline_in_the_past_sends_nothing() {
    let server = Server::with_tokens(|_| Reply::empty(204)).await;
    let client = server.client();
    let expired = client.with_deadline(tokio::time::Instant::now());

    // The deadline has passed by the time the pacer or the token cache is asked.
    let err = expired.delete("a").await.unwrap_err();

    assert_eq!(err, IscError::DeadlineExceeded);
    assert_eq!(server.received().len(), 0);
    // The clone without a deadline still works and shares the counters.
    assert_eq!(client.delete("a").await.unwrap(), DeleteOutcome::Deleted);
}

#[tokio::test]
async fn connection_failure_is_network_error_after_retries() {
    // Bind a port, then close it, so that nothing listens there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let mut settings = ClientSettings::new(
        &format!("http://{address}"),
        ApiVersion::V3,
        CLIENT_ID,
        SecretString::from(SECRET),
    );
    settings.max_retries = 1;
    let client = Client::new(settings).unwrap();

    let err = client.list(ListFilter::All, None).await.unwrap_err();

    assert!(matches!(err, IscError::Network { .. }), "{err:?}");
    let stats = client.stats();
    assert_eq!(request_count(&stats, "token", "error"), 2);
    assert_eq!(stats.retries, 1);
}

#[tokio::test]
async fn request_timeout_is_retried_then_network_error() {
    let server =
        Server::with_tokens(|_| Reply::new(200, "[]").delayed(Duration::from_secs(5))).await;
    let mut settings = server.settings();
    settings.request_timeout = Duration::from_millis(200);
    settings.max_retries = 1;
    let client = Client::new(settings).unwrap();

    let err = client.list(ListFilter::All, None).await.unwrap_err();

    let IscError::Network { message } = &err else {
        panic!("expected Network, got {err:?}");
    };
    assert!(message.contains("timed out"), "{message}");
    assert_eq!(server.count(LIST_PATH), 2);
    assert_eq!(request_count(&client.stats(), "list", "error"), 2);
}

#[tokio::test]
async fn deadline_cuts_off_request_in_flight() {
    let server =
        Server::with_tokens(|_| Reply::new(200, "[]").delayed(Duration::from_secs(5))).await;
    let client = server
        .client()
        .with_deadline(tokio::time::Instant::now() + Duration::from_millis(300));

    let err = client.list(ListFilter::All, None).await.unwrap_err();

    assert_eq!(err, IscError::DeadlineExceeded);
    assert_eq!(server.count(LIST_PATH), 1);
    assert_eq!(request_count(&client.stats(), "list", "error"), 1);
}

#[tokio::test]
async fn stats_record_latency_per_operation() {
    let server = Server::with_tokens(|_| Reply::empty(204)).await;
    let client = server.client();
    client.delete("a").await.unwrap();
    client.delete("b").await.unwrap();

    let stats = client.stats();
    assert_eq!(stats.latency["delete"].count, 2);
    assert_eq!(stats.latency["token"].count, 1);
    assert!(!stats.latency.contains_key("list"));
    assert_eq!(stats.latency["delete"].buckets.last(), Some(&2));
}

#[tokio::test]
async fn secrets_stay_out_of_debug_errors_and_logs() {
    let (logs, _guard) = capture_logs();
    let calls = AtomicUsize::new(0);
    let server = Server::start(move |request| match request.path.as_str() {
        TOKEN_PATH if calls.fetch_add(1, Ordering::SeqCst) == 0 => {
            token_reply("eyJ-ACCESS-TOKEN-1", 3_600)
        }
        TOKEN_PATH => Reply::new(
            400,
            &format!(
                r#"{{"error":"invalid_client","error_description":"secret {SECRET} is wrong"}}"#
            ),
        ),
        _ => Reply::new(401, r#"{"error":"JWT is expired: eyJ-ACCESS-TOKEN-1"}"#),
    })
    .await;
    let settings = server.settings();
    let client = Client::new(settings.clone()).unwrap();

    let err = client.list(ListFilter::All, None).await.unwrap_err();

    // The first mint succeeded, the list got a 401, and the second mint was rejected with
    // a message that echoes the secret.
    assert!(
        matches!(err, IscError::Authentication { status: 400, .. }),
        "{err:?}"
    );
    let texts = [
        format!("{settings:?}"),
        format!("{client:?}"),
        format!("{err:?}"),
        err.to_string(),
        logged(&logs),
    ];
    for text in &texts {
        assert!(!text.contains(SECRET), "secret in {text}");
        assert!(
            !text.contains("eyJ-ACCESS-TOKEN-1"),
            "access token in {text}"
        );
    }
    assert!(
        err.to_string().contains("secret [redacted] is wrong"),
        "{err}"
    );
    assert!(
        logged(&logs).contains("minting a new one"),
        "{}",
        logged(&logs)
    );
}

#[tokio::test]
async fn retry_warning_carries_request_fields() {
    let (logs, _guard) = capture_logs();
    let calls = AtomicUsize::new(0);
    let server = Server::with_tokens(move |_| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::new(503, "{}")
        } else {
            Reply::empty(204)
        }
    })
    .await;

    server.client().delete("a").await.unwrap();

    let text = logged(&logs);
    let retry_line = text
        .lines()
        .find(|line| line.contains("WARN") && line.contains("retrying"))
        .unwrap_or_else(|| panic!("no retry warning in {text}"));
    assert!(retry_line.contains("operation=\"delete\""), "{retry_line}");
    assert!(retry_line.contains("status=503"), "{retry_line}");
    assert!(retry_line.contains("attempt=1"), "{retry_line}");
    assert!(retry_line.contains("wait_ms="), "{retry_line}");
    let completed = text
        .lines()
        .filter(|line| line.contains("DEBUG") && line.contains("ISC request completed"))
        .count();
    assert_eq!(completed, 3, "{text}");
}

#[tokio::test]
async fn deprecation_header_is_logged_once() {
    let (logs, _guard) = capture_logs();
    let server =
        Server::with_tokens(|_| Reply::new(200, "[]").header("x-deprecated", "true")).await;
    let client = server.client();

    client.list(ListFilter::All, None).await.unwrap();
    client
        .clone()
        .list(ListFilter::LastUsedIsNull, None)
        .await
        .unwrap();

    let text = logged(&logs);
    let warnings = text
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("X-Deprecated"))
        .count();
    assert_eq!(warnings, 1, "{text}");
}

#[tokio::test]
async fn list_reads_one_hundred_thousand_tokens() {
    let mut body = String::from("[");
    for number in 0..100_000 {
        if number > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"id":"{number:032x}","name":"token {number}","scope":["sp:scopes:all"],
            "owner":{{"type":"IDENTITY","id":"{:032x}","name":"Owner {}"}},
            "created":"2025-01-01T00:00:00.000Z","lastUsed":null,"managed":false,
            "accessTokenValiditySeconds":43200,"expirationDate":"2026-12-31T23:59:59.999Z"}}"#,
            number % 5_000,
            number % 5_000
        ));
    }
    body.push(']');
    let body = Arc::new(body);
    let server = Server::with_tokens(move |_| Reply::new(200, &body)).await;

    let listing = server.client().list(ListFilter::All, None).await.unwrap();

    assert_eq!(listing.tokens.len(), 100_000);
    assert_eq!(listing.tokens[99_999].id, format!("{:032x}", 99_999));
}

#[tokio::test]
async fn localhost_url_reaches_loopback_server() {
    let server = Server::with_tokens(|_| Reply::new(200, "[]")).await;
    let port = server.url.rsplit(':').next().unwrap();
    let client = Client::new(ClientSettings::new(
        &format!("http://localhost:{port}"),
        ApiVersion::V3,
        CLIENT_ID,
        SecretString::from(SECRET),
    ))
    .unwrap();

    let listing = client.list(ListFilter::All, None).await.unwrap();

    assert!(listing.tokens.is_empty());
    assert_eq!(server.count(LIST_PATH), 1);
}

#[tokio::test]
async fn tls_handshake_failure_is_not_retried() {
    // A plain HTTP server behind an https:// URL: the client's TLS handshake reads an HTTP
    // reply, which no retry can change.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    let settings = ClientSettings::new(
        &format!("https://127.0.0.1:{port}"),
        ApiVersion::V3,
        CLIENT_ID,
        SecretString::from(SECRET),
    );
    let client = Client::new(settings).unwrap();

    let error = client.list(ListFilter::All, None).await.unwrap_err();
    assert!(matches!(error, IscError::Network { .. }), "{error}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "{error}");
}
