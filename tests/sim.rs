//! `patrol sim` end to end: the real binary on 127.0.0.1, real HTTP, the token fixture.
//! Covers the token endpoint's request shapes and errors, the PAT paths of every version,
//! the filter semantics, the documented error bodies, the rate limit, the `Date` skew, the
//! faults and the control API.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::{Sim, TOKENS_FIXTURE, fixture_ids, ids};
use serde_json::{Value, json};

const CLIENT_ID: &str = "aaaa0000000000000000000000000001";
const CLIENT_SECRET: &str = "sim-secret-7f3a";
const CLIENT: &str = "aaaa0000000000000000000000000001:sim-secret-7f3a";

const VERSION_PATHS: [&str; 6] = [
    "/v3/personal-access-tokens",
    "/beta/personal-access-tokens",
    "/v2024/personal-access-tokens",
    "/v2025/personal-access-tokens",
    "/v2026/personal-access-tokens",
    "/personal-access-tokens/v1",
];

fn start_fixture(extra: &[&str]) -> Sim {
    let mut args = vec!["--tokens", TOKENS_FIXTURE, "--client", CLIENT];
    args.extend_from_slice(extra);
    Sim::start(&args)
}

async fn bearer(sim: &Sim) -> String {
    sim.token(CLIENT_ID, CLIENT_SECRET).await
}

fn assert_error_dto(body: &str, detail_code: &str) -> Value {
    let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(body["detailCode"], detail_code, "{body}");
    let tracking_id = body["trackingId"].as_str().expect("trackingId");
    assert_eq!(tracking_id.len(), 32, "{body}");
    assert!(tracking_id.chars().all(|c| c.is_ascii_hexdigit()), "{body}");
    assert_eq!(body["messages"][0]["locale"], "en-US", "{body}");
    assert_eq!(body["messages"][0]["localeOrigin"], "DEFAULT", "{body}");
    assert!(body["messages"][0]["text"].is_string(), "{body}");
    body
}

fn multipart_body(boundary: &str, fields: &[(&str, &str)]) -> String {
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    body
}

async fn token_response_body(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.expect("token response is not JSON");
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn token_endpoint_accepts_four_request_shapes() {
    let sim = start_fixture(&[]);
    let http = sim.http();
    let url = sim.url("/oauth/token");
    let credentials = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];

    let urlencoded = http.post(&url).form(&credentials).send().await.unwrap();

    let boundary = "patrol-boundary-93ab";
    let multipart = http
        .post(&url)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(multipart_body(boundary, &credentials))
        .send()
        .await
        .unwrap();

    let query = http.post(&url).query(&credentials).send().await.unwrap();

    let split = http
        .post(&url)
        .query(&[("grant_type", "client_credentials")])
        .form(&[("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)])
        .send()
        .await
        .unwrap();

    for (shape, response) in [
        ("urlencoded", urlencoded),
        ("multipart", multipart),
        ("query", query),
        ("split", split),
    ] {
        let body = token_response_body(response).await;
        assert_eq!(body["token_type"], "bearer", "{shape}: {body}");
        assert_eq!(body["expires_in"], 749, "{shape}: {body}");
        assert_eq!(
            body["identity_id"], "2c9180867b50d088017b554662fb281e",
            "{shape}: {body}"
        );
        for field in ["scope", "tenant_id", "pod", "org", "jti"] {
            assert!(body[field].is_string(), "{shape}: no {field} in {body}");
        }
        assert!(body["strong_auth"].is_boolean(), "{shape}: {body}");

        let token = body["access_token"].as_str().unwrap();
        let listed = sim.list_ids("/v3/personal-access-tokens", token).await;
        assert_eq!(listed.len(), 25, "{shape}");
    }
}

#[tokio::test]
async fn token_endpoint_rejects_wrong_credentials() {
    let sim = start_fixture(&[]);
    let url = sim.url("/oauth/token");

    for (id, secret) in [
        (CLIENT_ID, "wrong-secret"),
        ("bbbb0000000000000000000000000002", CLIENT_SECRET),
    ] {
        let response = sim
            .http()
            .post(&url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{id}");
        let body = response.text().await.unwrap();
        assert!(
            body.contains("Full authentication is required to access this resource"),
            "{body}"
        );
    }

    let missing_secret = sim
        .http()
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(missing_secret.status(), 401);
}

#[tokio::test]
async fn token_endpoint_rejects_other_grant_types() {
    let sim = start_fixture(&[]);
    let response = sim
        .http()
        .post(sim.url("/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type", "{body}");
}

#[tokio::test]
async fn token_endpoint_accepts_any_credentials_without_clients() {
    let sim = Sim::start(&["--tokens", TOKENS_FIXTURE]);
    let token = sim.token("any-id", "any-secret").await;
    assert_eq!(
        sim.list_ids("/v3/personal-access-tokens", &token)
            .await
            .len(),
        25
    );
}

#[tokio::test]
async fn every_version_path_lists_and_deletes() {
    let sim = start_fixture(&[]);
    let token = bearer(&sim).await;
    let all = fixture_ids(&(1..=25).collect::<Vec<_>>());

    for (index, path) in VERSION_PATHS.iter().enumerate() {
        let listed = sim.list_ids(path, &token).await;
        assert_eq!(listed, all[index..].to_vec(), "{path}");

        let (status, body) = sim.delete(&format!("{path}/{}", all[index]), &token).await;
        assert_eq!(status, 204, "{path}: {body}");
        assert!(body.is_empty(), "{path}: 204 with body {body:?}");
    }

    let remaining = sim.list_ids("/v3/personal-access-tokens", &token).await;
    assert_eq!(remaining, all[VERSION_PATHS.len()..].to_vec());
    assert_eq!(sim.stats().await["deletes"], 6);
}

#[tokio::test]
async fn second_delete_returns_documented_404() {
    let sim = start_fixture(&[]);
    let token = bearer(&sim).await;
    let path = "/v2025/personal-access-tokens/bbbb0000000000000000000000000003";

    assert_eq!(sim.delete(path, &token).await.0, 204);
    let (status, body) = sim.delete(path, &token).await;
    assert_eq!(status, 404);
    let body = assert_error_dto(&body, "404 Not found");
    assert_eq!(
        body["messages"][0]["text"],
        "The server did not find a current representation for the target resource."
    );
}

#[tokio::test]
async fn api_rejects_missing_unknown_and_expired_bearer() {
    let sim = start_fixture(&[]);
    let path = "/v3/personal-access-tokens";

    let response = sim.http().get(sim.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"error": "JWT is required"}));

    let (status, body) = sim.get(path, "not-a-token-the-tenant-issued").await;
    assert_eq!(status, 401);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("JWT validation failed"),
        "{body}"
    );

    let (status, _) = sim
        .delete(&format!("{path}/bbbb0000000000000000000000000002"), "")
        .await;
    assert_eq!(status, 401);

    sim.set_faults(json!({"token-ttl": 0})).await;
    let expired = bearer(&sim).await;
    let (status, body) = sim.get(path, &expired).await;
    assert_eq!(status, 401);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"error": "JWT validation failed: JWT is expired"})
    );
}

#[tokio::test]
async fn filter_le_excludes_null_and_absent_last_used() {
    let sim = start_fixture(&[]);
    let token = bearer(&sim).await;

    let listed = sim
        .list_ids(
            "/v3/personal-access-tokens?filters=lastUsed%20le%202026-09-01T00:00:00Z",
            &token,
        )
        .await;
    assert_eq!(
        listed,
        fixture_ids(&[1, 3, 5, 6, 7, 11, 13, 14, 15, 23, 25])
    );
    for never_used in fixture_ids(&[8, 9, 10, 22]) {
        assert!(!listed.contains(&never_used), "{never_used} listed");
    }
}

#[tokio::test]
async fn filter_isnull_matches_null_and_absent() {
    let sim = start_fixture(&[]);
    let token = bearer(&sim).await;
    let listed = sim
        .list_ids(
            "/beta/personal-access-tokens?filters=lastUsed+isnull",
            &token,
        )
        .await;
    assert_eq!(listed, fixture_ids(&[8, 9, 10, 22]));
}

#[tokio::test]
async fn filter_literal_forms_agree() {
    let sim = start_fixture(&[]);
    let token = bearer(&sim).await;
    // Token 23 was last used at 2026-05-01T10:00:00.123456Z exactly, token 25 at
    // 2026-02-01T12:00:00.000+02:00.
    let expected = fixture_ids(&[11, 13, 14, 15, 23, 25]);

    for query in [
        "filters=lastUsed+le+2026-05-01T10:00:00.123456Z",
        "filters=lastUsed%20le%202026-05-01T10%3A00%3A00.123456Z",
        "filters=lastUsed+le+%222026-05-01T10:00:00.123456Z%22",
        "filters=lastUsed+le+2026-05-01T12:00:00.123456%2B02:00",
        "filters=lastUsed+le+2026-05-01T10:00:00.123456000Z",
        "filters=lastUsed%20le%20%222026-05-01T05:00:00.123456-05:00%22",
    ] {
        let listed = sim
            .list_ids(&format!("/v2024/personal-access-tokens?{query}"), &token)
            .await;
        assert_eq!(listed, expected, "{query}");
    }

    let before = sim
        .list_ids(
            "/v2024/personal-access-tokens?filters=lastUsed+le+2026-05-01T10:00:00.123455Z",
            &token,
        )
        .await;
    assert_eq!(before, fixture_ids(&[11, 13, 14, 15, 25]));

    let whole_seconds = sim
        .list_ids(
            "/v2024/personal-access-tokens?filters=lastUsed+le+2026-04-01T00:00:00Z",
            &token,
        )
        .await;
    assert_eq!(whole_seconds, fixture_ids(&[11, 13, 14, 15, 25]));
}

#[tokio::test]
async fn filter_combines_with_or_and_not() {
    let sim = start_fixture(&[]);
    let token = bearer(&sim).await;

    let either = sim
        .list_ids(
            "/v3/personal-access-tokens?filters=lastUsed+le+2026-04-01T00:00:00Z+or+lastUsed+isnull",
            &token,
        )
        .await;
    assert_eq!(either, fixture_ids(&[8, 9, 10, 11, 13, 14, 15, 22, 25]));

    let used = sim
        .list_ids(
            "/v3/personal-access-tokens?filters=not+lastUsed+isnull",
            &token,
        )
        .await;
    assert_eq!(used.len(), 21);
}

#[tokio::test]
async fn unsupported_filter_returns_400() {
    let sim = start_fixture(&[]);
    let token = bearer(&sim).await;

    for (query, named) in [
        ("filters=name+eq+%22nightly-sync%22", "'name'"),
        ("filters=lastUsed+ge+2026-04-01T00:00:00Z", "'ge'"),
        ("filters=lastUsed+gt+2026-04-01T00:00:00Z", "'gt'"),
        ("filters=created+le+2026-04-01T00:00:00Z", "'created'"),
        ("filters=lastUsed+le+yesterday", "'yesterday'"),
    ] {
        let (status, body) = sim
            .get(&format!("/v3/personal-access-tokens?{query}"), &token)
            .await;
        assert_eq!(status, 400, "{query}");
        let body = assert_error_dto(&body, "400.1 Bad Request Content");
        let text = body["messages"][0]["text"].as_str().unwrap();
        assert!(text.contains(named), "{query}: {text}");
        assert_eq!(body["causes"], json!([]), "{query}");
    }
}

#[tokio::test]
async fn owner_id_selects_owner_and_me() {
    let sim = start_fixture(&[]);
    let token = bearer(&sim).await;

    let managed_owner = sim
        .list_ids(
            "/v3/personal-access-tokens?owner-id=2c91808568c529c60168cca6f90c1313",
            &token,
        )
        .await;
    assert_eq!(managed_owner, fixture_ids(&[11, 12]));

    // The calling PAT (token 1) belongs to 2c9180867b50d088017b554662fb281e.
    let mine = sim
        .list_ids(
            "/v3/personal-access-tokens?owner-id=me&filters=lastUsed+isnull",
            &token,
        )
        .await;
    assert_eq!(mine, fixture_ids(&[10]));
}

#[tokio::test]
async fn rate_limit_returns_429_and_counts() {
    let sim = start_fixture(&["--rate-limit", "3", "--rate-window", "60"]);
    let token = bearer(&sim).await;

    for _ in 0..3 {
        assert_eq!(sim.get("/v3/personal-access-tokens", &token).await.0, 200);
    }
    let response = sim
        .http()
        .get(sim.url("/v3/personal-access-tokens"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"message": " Rate Limit Exceeded "}));

    // The limit applies per API version.
    assert_eq!(sim.get("/beta/personal-access-tokens", &token).await.0, 200);

    let stats = sim.stats().await;
    assert_eq!(stats["rate_limited"], 1, "{stats}");
    assert_eq!(stats["too_many_requests"], 1, "{stats}");
    assert_eq!(stats["requests"]["GET"]["list"]["429"], 1, "{stats}");
    assert_eq!(stats["requests"]["GET"]["list"]["200"], 4, "{stats}");
    let windows = stats["windows"].as_array().unwrap();
    let v3 = windows
        .iter()
        .find(|window| window["version"] == "v3")
        .expect("v3 window");
    assert_eq!(v3["client_id"], CLIENT_ID);
    assert_eq!(v3["max_in_window"], 4);
    assert_eq!(
        stats["rate_limit"],
        json!({"requests": 3, "window_secs": 60})
    );
}

#[tokio::test]
async fn date_header_carries_clock_skew() {
    let sim = start_fixture(&["--clock-skew", "3600"]);
    let skew_of = |response: &reqwest::Response| -> i64 {
        let date = httpdate::parse_http_date(response.headers()["date"].to_str().unwrap())
            .expect("Date is an HTTP date");
        let now = SystemTime::now();
        match date.duration_since(now) {
            Ok(ahead) => ahead.as_secs() as i64,
            Err(behind) => -(behind.duration().as_secs() as i64),
        }
    };

    let response = sim
        .http()
        .get(sim.url("/v3/personal-access-tokens"))
        .send()
        .await
        .unwrap();
    let skew = skew_of(&response);
    // HTTP dates have whole seconds, so allow a margin around the configured skew.
    assert!((3540..=3660).contains(&skew), "skew {skew}");

    sim.set_faults(json!({"clock-skew": -7200})).await;
    let response = sim
        .http()
        .post(sim.url("/oauth/token"))
        .send()
        .await
        .unwrap();
    let skew = skew_of(&response);
    assert!((-7260..=-7140).contains(&skew), "skew {skew}");
}

#[tokio::test]
async fn malformed_body_fault_breaks_json() {
    let sim = start_fixture(&[]);
    let token = bearer(&sim).await;
    sim.set_faults(json!({"fault-malformed": 1})).await;

    let (status, body) = sim.get("/v3/personal-access-tokens", &token).await;
    assert_eq!(status, 200);
    assert!(body.starts_with(r#"[{"id":"aaaa"#), "{body}");
    assert!(serde_json::from_str::<Value>(&body).is_err(), "{body}");
    assert_eq!(sim.stats().await["faults"]["malformed"], 1);
}

#[tokio::test]
async fn cut_body_fault_stops_halfway() {
    let sim = start_fixture(&[]);
    let token = bearer(&sim).await;
    sim.set_faults(json!({"fault-cut-body": 1})).await;

    let received = sim.raw_exchange(&format!(
        "GET /v3/personal-access-tokens HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
        sim.addr
    ));
    let header_end = received
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&received[..header_end]);
    let body = &received[header_end + 4..];
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let announced: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("Content-Length");
    assert!(
        body.len() < announced,
        "{} of {announced} bytes",
        body.len()
    );
    assert_eq!(body.len(), announced / 2);
    assert_eq!(sim.stats().await["faults"]["cut_bodies"], 1);
}

#[tokio::test]
async fn drop_fault_closes_without_response() {
    let sim = start_fixture(&[]);
    let token = bearer(&sim).await;
    sim.set_faults(json!({"fault-drop": 1})).await;

    let received = sim.raw_exchange(&format!(
        "DELETE /v3/personal-access-tokens/bbbb0000000000000000000000000002 HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
        sim.addr
    ));
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );

    let stats = sim.stats().await;
    assert_eq!(
        stats["requests"]["DELETE"]["delete"]["dropped"], 1,
        "{stats}"
    );
    assert_eq!(stats["deletes"], 0, "{stats}");
}

#[tokio::test]
async fn drop_after_fault_deletes_then_closes() {
    let sim = start_fixture(&[]);
    let token = bearer(&sim).await;
    let id = "bbbb0000000000000000000000000002";
    sim.set_faults(json!({"fault-drop-after": 1})).await;

    let received = sim.raw_exchange(&format!(
        "DELETE /v3/personal-access-tokens/{id} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
        sim.addr
    ));
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );

    let tokens = sim.control_get("/_sim/tokens").await;
    assert!(!tokens.to_string().contains(id), "{id} still listed");
    let stats = sim.stats().await;
    assert_eq!(stats["deletes"], 1, "{stats}");
    assert_eq!(stats["faults"]["dropped_after_processing"], 1, "{stats}");

    sim.set_faults(json!({})).await;
    let (status, _) = sim
        .delete(&format!("/v3/personal-access-tokens/{id}"), &token)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn injected_429_and_5xx_faults() {
    let sim = start_fixture(&[]);
    let token = bearer(&sim).await;

    sim.set_faults(json!({"fault-429": 1, "fault-retry-after": 7}))
        .await;
    let response = sim
        .http()
        .get(sim.url("/v3/personal-access-tokens"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");

    sim.set_faults(json!({"fault-5xx": 1})).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, body) = sim.get("/v3/personal-access-tokens", &token).await;
        let body: Value = serde_json::from_str(&body).unwrap();
        assert!(body["trackingId"].is_string(), "{body}");
        statuses.push(status);
    }
    assert_eq!(statuses, vec![500, 502, 503, 504, 500]);

    sim.set_faults(json!({"fault-5xx": 1, "fault-5xx-status": 503}))
        .await;
    assert_eq!(sim.get("/v3/personal-access-tokens", &token).await.0, 503);

    let stats = sim.stats().await;
    assert_eq!(stats["faults"]["too_many_requests"], 1, "{stats}");
    assert_eq!(stats["faults"]["server_errors"], 6, "{stats}");
}

#[tokio::test]
async fn list_cap_and_ignored_filters_faults() {
    let sim = start_fixture(&["--fault-list-cap", "5"]);
    let token = bearer(&sim).await;

    let capped = sim.list_ids("/v3/personal-access-tokens", &token).await;
    assert_eq!(capped, fixture_ids(&[1, 2, 3, 4, 5]));

    sim.set_faults(json!({"fault-ignore-filters": true})).await;
    let unfiltered = sim
        .list_ids("/v3/personal-access-tokens?filters=lastUsed+isnull", &token)
        .await;
    assert_eq!(unfiltered.len(), 25);
    let (status, _) = sim
        .get("/v3/personal-access-tokens?filters=name+eq+%22x%22", &token)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn latency_delays_api_responses() {
    let sim = start_fixture(&["--latency-ms", "300"]);
    let token = bearer(&sim).await;
    let started = Instant::now();
    assert_eq!(sim.get("/v3/personal-access-tokens", &token).await.0, 200);
    // A lower bound only: the delay guarantees it, however slow the machine is.
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn control_patch_changes_listing() {
    let sim = start_fixture(&[]);
    let token = bearer(&sim).await;
    let never_used = "bbbb0000000000000000000000000008";

    let (status, patched) = sim
        .control_send(
            "PATCH",
            &format!("/_sim/tokens/{never_used}"),
            &json!({"lastUsed": "2026-03-01T00:00:00.000Z"}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["lastUsed"], "2026-03-01T00:00:00.000Z");
    assert_eq!(patched["name"], "never-used-since-august");

    let isnull = sim
        .list_ids("/v3/personal-access-tokens?filters=lastUsed+isnull", &token)
        .await;
    assert_eq!(isnull, fixture_ids(&[9, 10, 22]));
    let stale = sim
        .list_ids(
            "/v3/personal-access-tokens?filters=lastUsed+le+2026-04-01T00:00:00Z",
            &token,
        )
        .await;
    assert_eq!(stale, fixture_ids(&[8, 11, 13, 14, 15, 25]));

    let (status, _) = sim
        .control_send("PATCH", "/_sim/tokens/absent", &json!({"lastUsed": null}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = sim
        .control_send(
            "PATCH",
            &format!("/_sim/tokens/{never_used}"),
            &json!({"id": "other"}),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn control_post_adds_and_replaces_tokens() {
    let sim = start_fixture(&[]);
    let token = bearer(&sim).await;

    let new_token = json!({"id": "cccc0000000000000000000000000099", "name": "added",
                           "owner": {"type": "IDENTITY", "id": "o", "name": "O"},
                           "created": "2026-01-01T00:00:00Z", "lastUsed": null,
                           "somethingNew": {"kept": true}});
    let (status, _) = sim.control_send("POST", "/_sim/tokens", &new_token).await;
    assert_eq!(status, 201);

    let (status, body) = sim.get("/v3/personal-access-tokens", &token).await;
    assert_eq!(status, 200);
    let listed: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(listed.len(), 26);
    assert_eq!(listed[25], new_token);

    let replacement = json!({"id": "bbbb0000000000000000000000000002", "name": "replaced"});
    let (status, _) = sim.control_send("POST", "/_sim/tokens", &replacement).await;
    assert_eq!(status, 200);
    let tokens = sim.control_get("/_sim/tokens").await;
    assert_eq!(tokens[1], replacement);
    assert_eq!(tokens.as_array().unwrap().len(), 26);

    let (status, body) = sim
        .control_send("POST", "/_sim/tokens", &json!({"name": "no id"}))
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn control_faults_reject_unknown_names_and_stats_reset() {
    let sim = start_fixture(&[]);
    let token = bearer(&sim).await;
    assert_eq!(sim.get("/v3/personal-access-tokens", &token).await.0, 200);

    let (status, body) = sim
        .control_send("PUT", "/_sim/faults", &json!({"fault-typo": 1}))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = sim
        .control_send("PUT", "/_sim/faults", &json!({"fault-drop": 2}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("fault-drop"));

    let stats = sim.stats().await;
    assert_eq!(stats["token_requests"], 1, "{stats}");
    assert_eq!(stats["requests"]["POST"]["token"]["200"], 1, "{stats}");
    assert_eq!(stats["requests"]["GET"]["list"]["200"], 1, "{stats}");

    let (status, _) = sim
        .control_send("POST", "/_sim/stats/reset", &Value::Null)
        .await;
    assert_eq!(status, 204);
    let stats = sim.stats().await;
    assert_eq!(stats["token_requests"], 0, "{stats}");
    assert_eq!(stats["requests"], json!({}), "{stats}");
    assert_eq!(stats["windows"], json!([]), "{stats}");
}

#[tokio::test]
async fn unknown_path_returns_404_dto() {
    let sim = start_fixture(&[]);
    let token = bearer(&sim).await;
    let (status, body) = sim.get("/v4/personal-access-tokens", &token).await;
    assert_eq!(status, 404);
    assert_error_dto(&body, "404 Not found");
}

#[tokio::test]
async fn unserved_method_returns_405_dto() {
    let sim = start_fixture(&[]);
    let token = bearer(&sim).await;
    let response = sim
        .http()
        .post(sim.url("/v3/personal-access-tokens"))
        .bearer_auth(&token)
        .json(&json!({"name": "new"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_error_dto(&response.text().await.unwrap(), "405 Method Not Allowed");
}

#[tokio::test]
async fn token_endpoint_rate_limit_is_opt_in() {
    let unlimited = start_fixture(&["--rate-limit", "1"]);
    for _ in 0..3 {
        bearer(&unlimited).await;
    }

    let limited = start_fixture(&["--rate-limit", "1", "--rate-limit-token-endpoint"]);
    bearer(&limited).await;
    let response = limited
        .http()
        .post(limited.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));

    let stats = limited.stats().await;
    let oauth = stats["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|window| window["version"] == "oauth")
        .expect("oauth window");
    assert_eq!(oauth["requests"], 2, "{stats}");
}

#[tokio::test]
async fn same_seed_hits_same_requests() {
    async fn statuses(seed: &str) -> Vec<u16> {
        let sim = start_fixture(&["--fault-5xx", "0.5", "--seed", seed]);
        let token = bearer(&sim).await;
        let mut statuses = Vec::new();
        for _ in 0..24 {
            statuses.push(sim.get("/v3/personal-access-tokens", &token).await.0);
        }
        statuses
    }

    let first = statuses("7").await;
    let second = statuses("7").await;
    assert_eq!(first, second);
    assert!(first.contains(&200), "{first:?}");
    assert!(first.iter().any(|&status| status >= 500), "{first:?}");

    let other_seed = statuses("8").await;
    assert_ne!(first, other_seed);
}

#[test]
fn sigterm_stops_with_exit_zero() {
    let sim = start_fixture(&[]);
    let status = sim.terminate();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn logs_never_contain_client_secret() {
    let sim = Sim::start_with_env(
        &["--tokens", TOKENS_FIXTURE, "--client", CLIENT],
        &[("RUST_LOG", "debug")],
    );
    let token = bearer(&sim).await;
    let _ = sim
        .http()
        .post(sim.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", "wrong-secret-5b1c"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(sim.get("/v3/personal-access-tokens", &token).await.0, 200);

    let status = sim.http().get(sim.url("/_sim/stats")).send().await.unwrap();
    assert_eq!(status.status(), 200);
    let logs = sim.stop_and_stderr();
    assert!(logs.contains("access token issued"), "{logs}");
    for secret in [CLIENT_SECRET, "wrong-secret-5b1c", token.as_str()] {
        assert!(!logs.contains(secret), "{secret} in logs:\n{logs}");
    }
}

/// Runs `patrol sim` with `args`, checks that it fails with exit code `code` before
/// printing a base URL, and returns its stderr.
fn run_sim_expecting_failure(args: &[&str], code: i32) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_patrol"))
        .arg("sim")
        .args(args)
        .output()
        .expect("failed to run patrol");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "patrol sim {args:?}: {stderr}"
    );
    assert!(output.stdout.is_empty(), "printed a base URL");
    stderr
}

#[test]
fn non_loopback_listen_is_rejected() {
    let stderr = run_sim_expecting_failure(&["--listen", "0.0.0.0:0"], 64);
    assert!(stderr.contains("loopback"), "{stderr}");
    assert!(stderr.contains("0.0.0.0:0"), "{stderr}");
}

#[test]
fn taken_listen_address_fails_with_internal_error() {
    let occupant = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = occupant.local_addr().unwrap().to_string();
    let stderr = run_sim_expecting_failure(&["--listen", &address], 70);
    assert!(stderr.contains(&address), "{stderr}");
}

#[test]
fn invalid_tokens_file_is_named() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("tokens.json");
    std::fs::write(&path, r#"[{"id":"a"},{"name":"no id"}]"#).unwrap();
    let path_text = path.to_str().unwrap();

    let stderr = run_sim_expecting_failure(&["--tokens", path_text], 65);
    assert!(stderr.contains(path_text), "{stderr}");
    assert!(stderr.contains("element 1"), "{stderr}");
    assert!(stderr.contains("`id`"), "{stderr}");

    std::fs::write(&path, r#"{"id":"a"}"#).unwrap();
    let stderr = run_sim_expecting_failure(&["--tokens", path_text], 65);
    assert!(stderr.contains("JSON array"), "{stderr}");

    let missing = directory.path().join("missing.json");
    let stderr = run_sim_expecting_failure(&["--tokens", missing.to_str().unwrap()], 66);
    assert!(stderr.contains("missing.json"), "{stderr}");
}

#[test]
fn list_serves_fixture_in_file_order() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(TOKENS_FIXTURE).unwrap()).unwrap();
    let sim = start_fixture(&[]);
    runtime.block_on(async {
        let token = bearer(&sim).await;
        let (_, body) = sim.get("/personal-access-tokens/v1", &token).await;
        let served: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(served, fixture);
        assert_eq!(ids(&body).len(), 25);
    });
}
