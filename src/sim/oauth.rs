//! `POST /oauth/token`: the client-credentials grant of the simulated tenant.
//!
//! The parameters `grant_type`, `client_id` and `client_secret` are read from the query
//! string and from the body, which may be `application/x-www-form-urlencoded` or
//! `multipart/form-data`. Any mix of the two places works, and the first occurrence of a
//! name wins. That covers the four shapes the official clients send: urlencoded body
//! (Python, Go SDKs), multipart body (TypeScript, PowerShell SDKs), everything in the query
//! (documented), and `grant_type` in the query with the credentials in the body (the CLI).
//!
//! With no clients configured any id and secret are accepted; otherwise the pair must match
//! one configured client. Issued access tokens are random opaque strings kept in memory with
//! their expiry and client id. They are not JWTs, and their RNG is not a cryptographic one,
//! which is enough for a test double that listens only on loopback. The endpoint is rate limited only when the
//! configuration enables it, under the version label `oauth`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Form;
use axum::Json;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde_json::json;

use super::responses::{self, FULL_AUTHENTICATION_REQUIRED};
use super::server::{AccessToken, Tenant, lock};

/// Tenant facts in every token response.
const TENANT_ID: &str = "5e3f0c1a-7d2b-4c8e-9a61-0b5d2f4e8c73";
const ORG: &str = "sim";
const POD: &str = "sim";

/// `identity_id` returned for a client id that is not the id of a listed token.
const UNKNOWN_IDENTITY_ID: &str = "00000000000000000000000000000000";

/// Access tokens kept before expired ones are pruned; tokens stay known as "expired"
/// for at least an hour after their expiry.
const PRUNE_ABOVE: usize = 100_000;
const KEEP_EXPIRED_FOR: Duration = Duration::from_secs(3600);

pub(crate) async fn issue_token(State(tenant): State<Arc<Tenant>>, request: Request) -> Response {
    tenant.stats().totals_mut().token_requests += 1;

    let params = match read_parameters(request).await {
        Ok(params) => params,
        Err(response) => return response,
    };
    let parameter = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };

    match parameter("grant_type") {
        None => {
            return responses::oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Missing grant type",
            );
        }
        Some("client_credentials") => {}
        Some(other) => {
            return responses::oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("Unsupported grant type: {other}"),
            );
        }
    }

    let (Some(client_id), Some(client_secret)) =
        (parameter("client_id"), parameter("client_secret"))
    else {
        return unauthorized();
    };
    let clients = &tenant.config.clients;
    let known = clients.is_empty()
        || clients
            .iter()
            .any(|client| client.id == client_id && client.secret.expose_secret() == client_secret);
    if !known {
        tracing::debug!(client_id, "token request with wrong client credentials");
        return unauthorized();
    }

    if tenant.config.rate_limit_token_endpoint
        && let Err(rejection) = tenant.check_rate_limit(client_id, "oauth")
    {
        return rejection.into_response();
    }

    let ttl = tenant.faults().token_ttl_secs;
    let access_token = format!("{:032x}{:032x}", fastrand::u128(..), fastrand::u128(..));
    store_access_token(&tenant, &access_token, client_id, ttl);

    let identity_id = tenant
        .tokens()
        .get(client_id)
        .and_then(|token| token.owner_id().map(str::to_owned))
        .unwrap_or_else(|| UNKNOWN_IDENTITY_ID.to_owned());
    tracing::debug!(client_id, ttl, "access token issued");

    Json(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": ttl,
        "scope": "sp:scopes:all",
        "accessType": "OFFLINE",
        "tenant_id": TENANT_ID,
        "internal": false,
        "pod": POD,
        "strong_auth_supported": false,
        "org": ORG,
        "identity_id": identity_id,
        "strong_auth": true,
        "enabled": true,
        "jti": uuid_like(fastrand::u128(..)),
    }))
    .into_response()
}

fn unauthorized() -> Response {
    responses::oauth_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        FULL_AUTHENTICATION_REQUIRED,
    )
}

fn store_access_token(tenant: &Tenant, value: &str, client_id: &str, ttl_secs: u64) {
    let now = Instant::now();
    let expires_at = now
        .checked_add(Duration::from_secs(ttl_secs))
        .unwrap_or(now + Duration::from_secs(u64::from(u32::MAX)));

    let mut access_tokens = lock(&tenant.access_tokens);
    if access_tokens.len() >= PRUNE_ABOVE {
        access_tokens.retain(|_, token| token.expires_at + KEEP_EXPIRED_FOR > now);
    }
    access_tokens.insert(
        value.to_owned(),
        AccessToken {
            client_id: client_id.to_owned(),
            expires_at,
        },
    );
}

/// Collects the parameters from the query string and the body.
async fn read_parameters(request: Request) -> Result<Vec<(String, String)>, Response> {
    let invalid =
        |text: String| responses::oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &text);

    let Query(mut params) = Query::<Vec<(String, String)>>::try_from_uri(request.uri())
        .map_err(|error| invalid(format!("invalid query string: {error}")))?;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();

    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|error| invalid(format!("invalid multipart body: {}", error.body_text())))?;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|error| invalid(format!("invalid multipart body: {}", error.body_text())))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            let value = field.text().await.map_err(|error| {
                invalid(format!("invalid multipart field: {}", error.body_text()))
            })?;
            params.push((name, value));
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        let Form(body) = Form::<Vec<(String, String)>>::from_request(request, &())
            .await
            .map_err(|error| invalid(format!("invalid form body: {}", error.body_text())))?;
        params.extend(body);
    }
    Ok(params)
}

fn uuid_like(value: u128) -> String {
    let hex = format!("{value:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_like_has_uuid_shape() {
        assert_eq!(
            uuid_like(0x0123456789abcdef0123456789abcdef),
            "01234567-89ab-cdef-0123-456789abcdef"
        );
    }
}
