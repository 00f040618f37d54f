//! The control API under `/_sim/`: read and change the tenant's tokens, read and reset the
//! statistics, read and replace the fault settings. The module header of `sim` lists the
//! routes. Control requests need no authentication, are never rate limited, delayed or hit
//! by faults, and do not count in the statistics. Errors are `{"error": "..."}` with 400 or
//! 404.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde_json::json;

use super::faults::Faults;
use super::server::Tenant;
use super::tokens::SimToken;

pub(crate) fn router() -> Router<Arc<Tenant>> {
    Router::new()
        .route("/_sim/tokens", get(list_tokens).post(put_token))
        .route("/_sim/tokens/{id}", patch(patch_token))
        .route("/_sim/stats", get(stats))
        .route("/_sim/stats/reset", post(reset_stats))
        .route("/_sim/faults", get(faults).put(replace_faults))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn token_response(status: StatusCode, token: &SimToken) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        token.raw_json().to_owned(),
    )
        .into_response()
}

async fn list_tokens(State(tenant): State<Arc<Tenant>>) -> Response {
    let tokens = tenant.tokens();
    let mut body = String::from("[");
    for (index, token) in tokens.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        body.push_str(token.raw_json());
    }
    body.push(']');
    drop(tokens);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Adds a token at the end of the list, or replaces the token with the same id in place.
/// Returns the stored token with 201 for a new token and 200 for a replaced one.
async fn put_token(State(tenant): State<Arc<Tenant>>, body: String) -> Response {
    let token = match SimToken::from_json(&body) {
        Ok(token) => token,
        Err(reason) => return error(StatusCode::BAD_REQUEST, &format!("invalid token: {reason}")),
    };
    let created = tenant.tokens_mut().upsert(token.clone());
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    tracing::info!(token_id = token.id(), created, "control API stored a token");
    token_response(status, &token)
}

/// Sets the top-level members of the body (a JSON object) on the token, for example a new
/// `lastUsed`. Returns the updated token.
async fn patch_token(
    State(tenant): State<Arc<Tenant>>,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let mut tokens = tenant.tokens_mut();
    let Some(current) = tokens.get(&id) else {
        return error(StatusCode::NOT_FOUND, &format!("no token with id {id:?}"));
    };
    let merged = match current.merged(&body) {
        Ok(merged) => merged,
        Err(reason) => return error(StatusCode::BAD_REQUEST, &format!("invalid patch: {reason}")),
    };
    tokens.upsert(merged.clone());
    drop(tokens);
    tracing::info!(token_id = %id, "control API patched a token");
    token_response(StatusCode::OK, &merged)
}

async fn stats(State(tenant): State<Arc<Tenant>>) -> Response {
    let snapshot = tenant.stats().snapshot();
    Json(snapshot).into_response()
}

async fn reset_stats(State(tenant): State<Arc<Tenant>>) -> Response {
    tenant.stats().reset();
    StatusCode::NO_CONTENT.into_response()
}

async fn faults(State(tenant): State<Arc<Tenant>>) -> Response {
    Json(tenant.faults()).into_response()
}

/// Replaces every fault setting; names left out take their defaults.
async fn replace_faults(State(tenant): State<Arc<Tenant>>, body: String) -> Response {
    let faults: Faults = match serde_json::from_str(&body) {
        Ok(faults) => faults,
        Err(reason) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid fault settings: {reason}"),
            );
        }
    };
    if let Err(reason) = faults.validate() {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("invalid fault settings: {reason}"),
        );
    }
    tracing::info!(?faults, "control API replaced the fault settings");
    tenant.set_faults(faults.clone());
    Json(faults).into_response()
}
