//! Error responses of the simulated tenant, shaped like the ISC API documents them.
//!
//! - 400, 404, 405, 500 and the other 5xx: `ErrorResponseDto`, with `detailCode`, a random
//!   32-hex `trackingId` and one message in `en-US`. The 400 body also carries an empty
//!   `causes` array, as the documented example does.
//! - 401: `{"error": "..."}`, not an `ErrorResponseDto`.
//! - 429: `{"message":" Rate Limit Exceeded "}` (the spaces are in the documented example)
//!   with `Retry-After` in whole seconds.
//! - The token endpoint returns OAuth errors as RFC 6749 (section 5.2) defines them:
//!   `{"error": code, "error_description": text}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The text SailPoint's gateway returns when a token request has wrong client credentials.
pub(crate) const FULL_AUTHENTICATION_REQUIRED: &str =
    "Full authentication is required to access this resource";

/// Generates a random `trackingId`: 32 lowercase hex digits.
pub(crate) fn tracking_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

fn error_dto(status: StatusCode, detail_code: &str, text: &str, with_causes: bool) -> Response {
    let mut body = json!({
        "detailCode": detail_code,
        "trackingId": tracking_id(),
        "messages": [{"locale": "en-US", "localeOrigin": "DEFAULT", "text": text}],
    });
    if with_causes {
        body["causes"] = Value::Array(Vec::new());
    }
    (status, Json(body)).into_response()
}

/// 400 for a request whose content the API rejects, such as an unsupported filter.
pub(crate) fn bad_request(text: &str) -> Response {
    error_dto(
        StatusCode::BAD_REQUEST,
        "400.1 Bad Request Content",
        text,
        true,
    )
}

/// 404 for a token id that does not exist (any more), or a path the tenant does not serve.
pub(crate) fn not_found() -> Response {
    error_dto(
        StatusCode::NOT_FOUND,
        "404 Not found",
        "The server did not find a current representation for the target resource.",
        false,
    )
}

/// 405 for a method the tenant does not serve on a known path.
pub(crate) fn method_not_allowed() -> Response {
    error_dto(
        StatusCode::METHOD_NOT_ALLOWED,
        "405 Method Not Allowed",
        "The method received in the request-line is not supported by the target resource.",
        false,
    )
}

/// Builds a 5xx response: the documented 500 body, and the same shape for the gateway
/// statuses.
pub(crate) fn server_error(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (detail_code, text) = match status.as_u16() {
        500 => ("500.0 Internal Fault", "An internal fault occurred."),
        502 => (
            "502 Bad Gateway",
            "The gateway received an invalid response.",
        ),
        503 => ("503 Service Unavailable", "The service is unavailable."),
        504 => ("504 Gateway Timeout", "The gateway timed out."),
        _ => ("500.0 Internal Fault", "An internal fault occurred."),
    };
    error_dto(status, detail_code, text, false)
}

/// 401 on an API path, with the gateway's `{"error": ...}` body.
pub(crate) fn unauthorized(message: &str) -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({ "error": message }))).into_response()
}

/// 429 with `Retry-After` in seconds (at least 1).
pub(crate) fn too_many_requests(retry_after_secs: u64) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({"message": " Rate Limit Exceeded "})),
    )
        .into_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs.max(1)),
    );
    response
}

/// Builds an OAuth error response of the token endpoint.
pub(crate) fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_ids_are_32_hex() {
        let id = tracking_id();
        assert_eq!(id.len(), 32);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_uppercase())
        );
        assert_ne!(id, tracking_id());
    }

    #[test]
    fn too_many_requests_has_at_least_one_second() {
        let response = too_many_requests(0);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn server_error_keeps_chosen_status() {
        assert_eq!(server_error(503).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(server_error(599).status().as_u16(), 599);
    }
}
