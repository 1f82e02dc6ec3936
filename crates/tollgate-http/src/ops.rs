//! Operations endpoints and the request log.
//!
//! Every request produces one log line: request id (from `X-Request-Id` when
//! the caller sent a sane one), method, path (never the query string, which
//! some contracts use for credentials), status, latency, and what the handler
//! reported in an [`Outcome`]: the client id once authenticated and the
//! outcome code. No secret, token or password is ever logged.

use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

/// What a handler reports for the request log.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `issued`, or the wire error code.
    pub code: &'static str,
    /// The authenticated client (never an unauthenticated guess).
    pub client_id: Option<String>,
}

impl Outcome {
    /// A new outcome.
    pub fn new(code: &'static str, client_id: Option<String>) -> Self {
        Self { code, client_id }
    }
}

/// `/healthz`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.core.sync().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: store unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unreachable\n").into_response()
        }
    }
}

fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(String::from)
        .or_else(|| tollgate_core::crypto::random_b64(12).ok())
        .unwrap_or_default()
}

/// Middleware: logs one line per request and echoes `X-Request-Id`.
pub async fn request_log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut resp = next.run(req).await;
    let outcome = resp.extensions().get::<Outcome>().cloned();
    tracing::info!(
        target: "tollgate::request",
        request_id = %id,
        method = %method,
        path = %path,
        status = resp.status().as_u16(),
        latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
        client_id = outcome.as_ref().and_then(|o| o.client_id.as_deref()).unwrap_or("-"),
        outcome = outcome.as_ref().map_or("-", |o| o.code),
        "request"
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}
