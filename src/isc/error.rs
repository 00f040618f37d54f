//! Errors of the API client, by cause, and their construction from an HTTP response.
//!
//! Every error carries the HTTP status and the service's `trackingId` where the service sent
//! them. Its message is the service's own text (`messages[0].text` of an `ErrorResponseDto`,
//! `error_description` or `error` of a 401 or OAuth body, `message` of a 429 body), trimmed
//! and cut to [`MAX_MESSAGE_CHARS`]. The client secret and the access token are replaced by
//! `[redacted]` wherever the service echoes them. A body that is not one of these JSON shapes
//! is never copied into an error, because an HTML error page or a token response could
//! contain a secret. Retrying and status mapping by operation live in the client.

use serde::Deserialize;

/// Maximum length, in characters, of a message taken from a response.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// Maximum length, in characters, of a `trackingId` taken from a response.
const MAX_TRACKING_ID_CHARS: usize = 64;

/// Error of one API operation. Carries the HTTP status and the `trackingId` where the
/// service sent them, never a secret or a response body that could hold one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IscError {
    #[error("invalid API URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// A client setting is out of range, for example a rate limit of zero requests.
    #[error("invalid client setting {setting}: {reason}")]
    InvalidSettings {
        setting: &'static str,
        reason: String,
    },
    /// A token id that cannot name a single token in a URL path (empty, `.` or `..`).
    #[error("invalid token id {id:?}: an id must be non-empty and not \".\" or \"..\"")]
    InvalidTokenId { id: String },
    #[error("authentication failed (HTTP {status}): {message}")]
    Authentication {
        status: u16,
        tracking_id: Option<String>,
        message: String,
    },
    #[error("forbidden (HTTP {status}): {message}")]
    Forbidden {
        status: u16,
        tracking_id: Option<String>,
        message: String,
    },
    #[error("rate limited after all retries")]
    RateLimited { tracking_id: Option<String> },
    #[error("server error (HTTP {status}): {message}")]
    Server {
        status: u16,
        tracking_id: Option<String>,
        message: String,
    },
    #[error("request rejected (HTTP {status}): {message}")]
    Client {
        status: u16,
        tracking_id: Option<String>,
        message: String,
    },
    /// A status the operation does not expect, such as a redirect (never followed) or a
    /// success code other than the documented one.
    #[error("unexpected response (HTTP {status}): {message}")]
    UnexpectedStatus {
        status: u16,
        tracking_id: Option<String>,
        message: String,
    },
    #[error("network error: {message}")]
    Network { message: String },
    /// The response started but its body ended early or could not be read, so the
    /// service was reached and the data is incomplete.
    #[error("incomplete response: {message}")]
    IncompleteResponse { message: String },
    #[error("invalid response body: {message}")]
    Decode { status: u16, message: String },
    #[error("the run deadline passed")]
    DeadlineExceeded,
}

impl IscError {
    /// Returns the HTTP status of the response behind this error, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            IscError::Authentication { status, .. }
            | IscError::Forbidden { status, .. }
            | IscError::Server { status, .. }
            | IscError::Client { status, .. }
            | IscError::UnexpectedStatus { status, .. }
            | IscError::Decode { status, .. } => Some(*status),
            IscError::RateLimited { .. } => Some(429),
            IscError::InvalidUrl { .. }
            | IscError::InvalidSettings { .. }
            | IscError::InvalidTokenId { .. }
            | IscError::Network { .. }
            | IscError::IncompleteResponse { .. }
            | IscError::DeadlineExceeded => None,
        }
    }

    /// Returns the `trackingId` the service sent with the failed response, if any. SailPoint
    /// support uses it to find the request in their logs.
    pub fn tracking_id(&self) -> Option<&str> {
        match self {
            IscError::Authentication { tracking_id, .. }
            | IscError::Forbidden { tracking_id, .. }
            | IscError::RateLimited { tracking_id }
            | IscError::Server { tracking_id, .. }
            | IscError::Client { tracking_id, .. }
            | IscError::UnexpectedStatus { tracking_id, .. } => tracking_id.as_deref(),
            _ => None,
        }
    }
}

/// The error fields of the bodies the service sends: `ErrorResponseDto` (`trackingId`,
/// `detailCode`, `messages`), the gateway's 401 body (`error`), OAuth errors (`error`,
/// `error_description`) and the 429 body (`message`). Every field is optional.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(rename = "trackingId", default)]
    tracking_id: Option<String>,
    #[serde(rename = "detailCode", default)]
    detail_code: Option<String>,
    #[serde(default)]
    messages: Option<Vec<ErrorMessage>>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorMessage {
    #[serde(default)]
    text: Option<String>,
}

/// The message and tracking id read from an error response, already trimmed, bounded and
/// free of the secrets passed to [`ErrorDetails::from_body`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorDetails {
    pub message: String,
    pub tracking_id: Option<String>,
}

impl ErrorDetails {
    /// Reads the service's message and `trackingId` from an error body. Falls back to the
    /// status's reason phrase when the body is not one of the documented JSON shapes.
    pub fn from_body(status: u16, body: &[u8], secrets: &[&str]) -> Self {
        let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();

        let first_text = parsed
            .messages
            .iter()
            .flatten()
            .filter_map(|message| message.text.as_deref())
            .find(|text| !text.trim().is_empty());
        let candidates = [
            first_text,
            parsed.error_description.as_deref(),
            parsed.error.as_deref(),
            parsed.message.as_deref(),
            parsed.detail_code.as_deref(),
        ];
        let message = candidates
            .into_iter()
            .flatten()
            .map(str::trim)
            .find(|text| !text.is_empty())
            .map(|text| bounded(&redact(text, secrets), MAX_MESSAGE_CHARS))
            .unwrap_or_else(|| reason_phrase(status));

        let tracking_id = parsed
            .tracking_id
            .map(|id| bounded(&redact(id.trim(), secrets), MAX_TRACKING_ID_CHARS))
            .filter(|id| !id.is_empty());

        ErrorDetails {
            message,
            tracking_id,
        }
    }
}

/// Replaces every occurrence of each non-empty secret by `[redacted]`.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
        text = text.replace(secret, "[redacted]");
    }
    text
}

/// Cuts `text` to at most `max_chars` characters, marking a cut with an ellipsis.
pub(crate) fn bounded(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_owned(),
        Some((cut, _)) => {
            let mut short = text[..cut].to_owned();
            short.push('…');
            short
        }
    }
}

fn reason_phrase(status: u16) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|status| status.canonical_reason());
    match reason {
        Some(reason) => format!("{reason} (no error message in the response)"),
        None => "no error message in the response".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_take_first_message_text_and_tracking_id() {
        let body =
            br#"{"detailCode":"403 Forbidden","trackingId":"b21b1f7ce4da4d639f2c62a57171b427",
            "messages":[{"locale":"en-US","localeOrigin":"DEFAULT",
            "text":"The server understood the request but refuses to authorize it."}]}"#;
        let details = ErrorDetails::from_body(403, body, &[]);
        assert_eq!(
            details.message,
            "The server understood the request but refuses to authorize it."
        );
        assert_eq!(
            details.tracking_id.as_deref(),
            Some("b21b1f7ce4da4d639f2c62a57171b427")
        );
    }

    #[test]
    fn details_read_gateway_and_rate_limit_bodies() {
        let expired = ErrorDetails::from_body(
            401,
            br#"{"error":"JWT validation failed: JWT is expired"}"#,
            &[],
        );
        assert_eq!(expired.message, "JWT validation failed: JWT is expired");
        assert_eq!(expired.tracking_id, None);

        let limited = ErrorDetails::from_body(429, br#"{"message":" Rate Limit Exceeded "}"#, &[]);
        assert_eq!(limited.message, "Rate Limit Exceeded");
    }

    #[test]
    fn details_prefer_oauth_description_over_code() {
        let body = br#"{"error":"unauthorized",
            "error_description":"Full authentication is required to access this resource"}"#;
        let details = ErrorDetails::from_body(401, body, &[]);
        assert_eq!(
            details.message,
            "Full authentication is required to access this resource"
        );
    }

    #[test]
    fn details_ignore_non_json_body() {
        let body = b"<html>client_secret=hunter2 access_token=abc</html>";
        let details = ErrorDetails::from_body(502, body, &[]);
        assert_eq!(
            details.message,
            "Bad Gateway (no error message in the response)"
        );
        assert!(!details.message.contains("hunter2"));
    }

    #[test]
    fn details_redact_echoed_secrets() {
        let body = br#"{"error":"bad client_secret s3cr3t-value for token tok-123"}"#;
        let details = ErrorDetails::from_body(400, body, &["s3cr3t-value", "tok-123", ""]);
        assert_eq!(
            details.message,
            "bad client_secret [redacted] for token [redacted]"
        );
    }

    #[test]
    fn details_bound_long_messages() {
        let long = "x".repeat(5_000);
        let body = format!(r#"{{"messages":[{{"text":"{long}"}}],"trackingId":"{long}"}}"#);
        let details = ErrorDetails::from_body(400, body.as_bytes(), &[]);
        assert_eq!(details.message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(details.message.ends_with('…'));
        assert_eq!(
            details.tracking_id.unwrap().chars().count(),
            MAX_TRACKING_ID_CHARS + 1
        );
    }

    #[test]
    fn bounded_cuts_at_character_boundaries() {
        assert_eq!(bounded("héllo", 2), "hé…");
        assert_eq!(bounded("hé", 2), "hé");
    }

    #[test]
    fn status_and_tracking_id_helpers() {
        let forbidden = IscError::Forbidden {
            status: 403,
            tracking_id: Some("t-1".to_owned()),
            message: "no".to_owned(),
        };
        assert_eq!(forbidden.status(), Some(403));
        assert_eq!(forbidden.tracking_id(), Some("t-1"));

        let limited = IscError::RateLimited { tracking_id: None };
        assert_eq!(limited.status(), Some(429));
        assert_eq!(limited.tracking_id(), None);

        assert_eq!(IscError::DeadlineExceeded.status(), None);
        let network = IscError::Network {
            message: "connection refused".to_owned(),
        };
        assert_eq!(network.status(), None);
    }
}
