//! Operations endpoints and the request log.
//!
//! Every request produces one log line: request id (from `X-Request-Id` when
//! the caller sent a sane one), method, path (never the query string, which
//! some contracts use for credentials), status, latency, and what the handler
//! reported in an [`Outcome`]: the client id once authenticated and the
//! outcome code. No secret, token or password is ever logged.

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::AppState;

/// What a contract's handler reports for the request log and metrics.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The contract (`rfc6749`, …).
    pub contract: &'static str,
    /// The endpoint within it (`token`, `introspect`, `revoke`, …).
    pub endpoint: &'static str,
    /// The environment.
    pub env: String,
    /// `issued` (or another success word), or the wire error code.
    pub code: &'static str,
    /// The authenticated client (never an unauthenticated guess).
    pub client_id: Option<String>,
}

/// How the operations endpoints and headers behave.
#[derive(Debug, Default)]
pub struct Settings {
    /// A bearer token `/metrics` requires (`metrics_token`); `None`: open.
    pub metrics_token: Option<SecretString>,
    /// `/metrics` is served on a listener of its own (`metrics_listen`),
    /// not on the main one.
    pub metrics_elsewhere: bool,
    /// The admin API is served on a listener of its own (`admin_listen`),
    /// not on the main one.
    pub admin_elsewhere: bool,
    /// Add `Strict-Transport-Security` (the server terminates TLS itself);
    /// the partner portal's cookies are then `Secure` and `__Host-`.
    pub hsts: bool,
    /// Where the partner portal answers (`portal_path`, starting and ending
    /// with `/`); `None`: nowhere.
    pub portal_path: Option<String>,
    /// The server's public base URL (`public_url`, or its bound address):
    /// where the admin API's invitation links point.
    pub public_url: String,
}

/// `/healthz` (the process is alive: no store, always fast), `/readyz`
/// (ready to serve: the store answered within its deadline and every
/// environment has a signing key) and, unless it has a listener of its own,
/// `/metrics`.
pub fn routes(settings: &Settings) -> Router<AppState> {
    let r = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if settings.metrics_elsewhere {
        r
    } else {
        r.merge(metrics_routes())
    }
}

/// `/metrics` (behind its token, when one is set).
pub fn metrics_routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// `X-Content-Type-Options: nosniff` on every answer (no body of ours is
/// meant to be sniffed into HTML or script), and HSTS when tollgate serves
/// TLS itself.
pub async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    add_security_headers(&state, &mut resp);
    resp
}

/// The headers of [`security_headers`], added to an answer.
pub fn add_security_headers(state: &AppState, resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if state.ops.hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.ops.metrics_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let expected = token.expose_secret().as_bytes();
        if !bool::from(presented.as_bytes().ct_eq(expected)) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\"")],
                "a metrics token is required\n",
            )
                .into_response();
        }
    }
    let gauges: Vec<_> = state
        .core
        .key_states()
        .into_iter()
        .map(|(env, st, n)| {
            (
                "tollgate_signing_keys",
                "Published signing keys by environment and state",
                vec![("env", env), ("state", st.as_str().to_string())],
                n,
            )
        })
        .collect();
    (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.core.metrics.render(&gauges),
    )
        .into_response()
}

/// Liveness: answered by the process alone, so a hung database cannot make
/// an orchestrator restart a healthy process.
async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// Readiness: syncs with the store (bounded by the store deadline) and
/// checks that every environment can sign. A load balancer takes an
/// instance out while this answers 503.
async fn readyz(State(state): State<AppState>) -> Response {
    let not_ready = |why: &'static str| {
        let mut r = (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
        crate::contracts::retry_after(&mut r, tollgate_core::error::UNAVAILABLE_RETRY_AFTER);
        r
    };
    if let Err(e) = state.core.sync().await {
        tracing::warn!(error = %e, "readiness: store unreachable");
        return not_ready("store unreachable\n");
    }
    if !state.core.every_env_can_sign() {
        return not_ready("no signing key\n");
    }
    (StatusCode::OK, "ready\n").into_response()
}

fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
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
        .unwrap_or_else(new_request_id)
}

/// A request id of our own: 6 bytes drawn once per process, then a 6-byte
/// counter, as 16 base64url characters. Unique within the process by the
/// counter and across instances by the prefix (a 1 in 2^48 chance that two
/// share one); ids need not be unpredictable, only distinct. Drawing 12
/// random bytes per request cost about 1 % of an issued token and 2.5 % of
/// a gate decision (callgrind).
fn new_request_id() -> String {
    static PREFIX: OnceLock<[u8; 6]> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut b = [0u8; 6];
        if tollgate_core::crypto::random::fill_random(&mut b).is_err() {
            // The system RNG failed (tokens cannot be issued either): the
            // clock still tells instances apart, if less surely.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            b.copy_from_slice(&nanos.to_le_bytes()[..6]);
        }
        b
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    let mut id = [0u8; 12];
    id[..6].copy_from_slice(prefix);
    id[6..].copy_from_slice(&n[2..]);
    URL_SAFE_NO_PAD.encode(id)
}

/// The route of a response the router's fallback dispatched to an
/// optional contract (the fallback has no `MatchedPath`), for the latency
/// metric's `route` label.
#[derive(Debug, Clone)]
pub struct RouteLabel(pub String);

/// Middleware: logs one line per request, records its metrics, and echoes
/// `X-Request-Id`.
pub async fn request_log(State(state): State<AppState>, req: Request, next: Next) -> Response {
    logged(&state, req, |req| next.run(req)).await
}

/// [`request_log`] around `run`, for a middleware that composes it with
/// other steps ([`crate::edge`]).
pub async fn logged<F, Fut>(state: &AppState, req: Request, run: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let start = Instant::now();
    let id = request_id(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = run(req).await;
    let elapsed = start.elapsed();
    let outcome = resp.extensions().get::<Outcome>().cloned();
    let status = resp.status().as_u16();
    let m = &state.core.metrics;
    let dispatched = resp.extensions().get::<RouteLabel>();
    m.observe(
        "tollgate_http_request_duration_seconds",
        "Request latency by route and status class",
        &[
            (
                "route",
                route
                    .as_ref()
                    .map(MatchedPath::as_str)
                    .or(dispatched.map(|r| r.0.as_str()))
                    .unwrap_or("unmatched"),
            ),
            ("status", status_class(status)),
        ],
        elapsed,
    );
    if let Some(o) = &outcome {
        m.count(
            "tollgate_outcomes_total",
            "Contract outcomes (tokens issued, introspections, revocations, each error code) by environment, contract and endpoint",
            &[("env", &o.env), ("contract", o.contract), ("endpoint", o.endpoint), ("outcome", o.code)],
            1,
        );
    }
    tracing::info!(
        target: "tollgate::request",
        request_id = %id,
        method = %method,
        path = %path,
        status,
        latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        env = outcome.as_ref().map_or("-", |o| o.env.as_str()),
        client_id = outcome.as_ref().and_then(|o| o.client_id.as_deref()).unwrap_or("-"),
        outcome = outcome.as_ref().map_or("-", |o| o.code),
        "request"
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_and_share_the_process_prefix() {
        let ids: Vec<String> = (0..1000).map(|_| new_request_id()).collect();
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        for id in &ids {
            assert_eq!(id.len(), 16, "{id}");
            assert_eq!(id[..8], ids[0][..8], "one prefix per process");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{id}"
            );
        }
    }
}
