//! The daemon's HTTP endpoint: `/metrics` for Prometheus, `/healthz` and `/readyz`.
//!
//! Only GET and HEAD are served, on these three paths; any other method gets 405 with an
//! `Allow` header, and any other path 404. The endpoint is meant for a loopback or
//! internal address, but it still bounds the resources a client can tie up. The request
//! head must arrive within [`HEADER_READ_TIMEOUT`], which also closes idle keep-alive
//! connections, and fit in [`MAX_REQUEST_HEAD`] bytes. A request body is never read. At
//! most [`MAX_CONNECTIONS`] connections are served at once, and further ones are closed
//! at once. hyper serves each connection (HTTP/1.1 only) and axum routes the requests.
//!
//! What the endpoints report comes from [`Metrics`] and [`Health`]; this module only
//! serves it.

mod health;

pub use health::Health;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::metrics::{self, Metrics};

/// Time allowed to send a whole request head, and to start the next request on a
/// keep-alive connection.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Maximum size of a request head (request line and headers), in bytes. hyper responds to
/// a larger one with 431 and closes the connection. 8 KiB is the smallest buffer hyper
/// accepts.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;

/// State that the handlers read.
#[derive(Debug, Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
}

/// Builds the router of the three endpoints.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(state)
}

/// Accepts connections on `listener` and serves them until the task is dropped.
pub async fn serve(listener: TcpListener, state: AppState) {
    let service = TowerToHyperService::new(router(state));
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Running out of file descriptors is the usual cause; back off briefly
                // instead of spinning on the error.
                tracing::warn!(%error, "cannot accept a metrics connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(%peer, "too many metrics connections; closing a new one");
            continue;
        };

        let service = service.clone();
        tokio::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_REQUEST_HEAD)
                .max_header_size(MAX_REQUEST_HEAD)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%peer, %error, "metrics connection ended with an error");
            }
            drop(slot);
        });
    }
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    let metrics = Arc::clone(&state.metrics);
    // Reading /proc and formatting thousands of series is short but blocking work.
    match tokio::task::spawn_blocking(move || metrics.render()).await {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering the metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendering the metrics failed\n",
            )
                .into_response()
        }
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    let silence = state.health.silence();
    if state.health.is_alive() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let message = format!(
            "the scheduler loop has not run for {} s\n",
            silence.as_secs()
        );
        (StatusCode::SERVICE_UNAVAILABLE, message).into_response()
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.health.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found; patrol serves /metrics, /healthz and /readyz\n",
    )
        .into_response()
}
