//! Errors of the API client, by cause.

/// Error of one API operation. Carries the HTTP status and the `trackingId` where the
/// service sent them, never a secret or a response body that could hold one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IscError {
    #[error("invalid API URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
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
    #[error("network error: {message}")]
    Network { message: String },
    #[error("invalid response body: {message}")]
    Decode { status: u16, message: String },
    #[error("the run deadline passed")]
    DeadlineExceeded,
}
