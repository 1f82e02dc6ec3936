//! Forward-auth: `/gate/check` (any method, and `/gate/check/…` for Envoy,
//! which appends the original path), served when the server has a gate
//! policy. A proxy asks before passing a request on: 200 with the identity
//! headers, or 401/403 per RFC 6750 (503 when the gate cannot tell).
//!
//! All the deciding is `tollgate_gate`'s; this file only reads the check
//! request (which dialect, which environment, the bearer token and the API
//! key under the header the environment's settings name) and writes the
//! answer. The
//! environment is the one the path names (`/e/{env}/gate/check`), else the
//! default one.

use axum::Router;
use axum::extract::{RawPathParams, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use tollgate_core::model::DEFAULT_ENV;
use tollgate_gate::decide::{KeyHeader, Request};
use tollgate_gate::forward::{self, Unreadable};
use tollgate_gate::{Decision, Denial, Invalid};

use crate::AppState;
use crate::contracts::api_keys::ApiKeys;
use crate::env::UnknownEnv;
use crate::ops::Outcome;

/// The forward-auth path.
pub const CHECK_PATH: &str = "/gate/check";

/// The forward-auth routes (merged under every environment prefix).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(CHECK_PATH, any(check))
        .route("/gate/check/{*rest}", any(check))
}

async fn check(
    State(state): State<AppState>,
    params: RawPathParams,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Some(gate) = state.gate.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // Only the path chooses the environment (`/e/{env}/gate/check`, else
    // the default one), never `Host` or `X-Forwarded-Host`: proxies pass a
    // client's own headers on to the check, and a client choosing the
    // environment would choose whose tokens and routes apply.
    let named = params
        .iter()
        .find(|(k, _)| *k == "env")
        .map(|(_, v)| v.to_string());
    let env = match named {
        Some(name) => match state.core.env(&name) {
            Some(e) => e,
            None => return UnknownEnv(name).into_response(),
        },
        None => match state.core.env(DEFAULT_ENV) {
            Some(e) => e,
            None => return UnknownEnv(DEFAULT_ENV.into()).into_response(),
        },
    };
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // Envoy: what follows the check path is the original path (and query;
    // under `/e/{env}` the router has stripped the prefix already).
    let rest = uri
        .path()
        .strip_prefix(CHECK_PATH)
        .filter(|r| !r.is_empty())
        .map(|r| match uri.query() {
            Some(q) => format!("{r}?{q}"),
            None => r.to_string(),
        });
    let decision = match forward::original(text, method.as_str(), rest.as_deref()) {
        Err(why) => {
            tracing::warn!(reason = %why, "forward-auth check without a usable original request");
            Decision::Deny(match why {
                Unreadable::Missing | Unreadable::Conflict => Denial::BadPath,
            })
        }
        Ok(orig) => {
            let mut auths = headers.get_all(AUTHORIZATION).iter();
            let first = auths.next();
            if auths.next().is_some() {
                // Two credentials: which one the upstream reads is unknown.
                Decision::Deny(Denial::InvalidToken(Invalid::Malformed))
            } else {
                let keys = crate::contracts::setting::<ApiKeys>(&state, &env);
                let (api_key, count_api_key_calls) = match keys {
                    Some(k) => (key_header(&headers, &k.header), k.count_limit),
                    None => (KeyHeader::Absent, false),
                };
                let m = orig.method.to_ascii_uppercase();
                let req = Request {
                    env: &env.env.name,
                    method: &m,
                    target: orig.target,
                    authorization: first.and_then(|v| v.to_str().ok()),
                    api_key,
                    count_api_key_calls,
                };
                let started = std::time::Instant::now();
                let decision = gate.decide(&req).await;
                record(&state, gate, &req, &decision, started);
                decision
            }
        }
    };
    let answer = gate.with_policy(|p| forward::answer(&decision, &p.settings.headers));
    let (code, client_id) = outcome_of(&decision);
    let mut resp = answered(answer);
    resp.extensions_mut().insert(Outcome {
        contract: "gate",
        endpoint: "check",
        env: env.env.name.clone(),
        code,
        client_id,
    });
    resp
}

/// The API-key header of a check request (the proxy passes the client's
/// headers on). A value that is not text is sent on as empty, which no key
/// matches.
pub(crate) fn key_header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> KeyHeader<'a> {
    let mut all = headers.get_all(name).iter();
    match (all.next(), all.next()) {
        (None, _) => KeyHeader::Absent,
        (Some(v), None) => KeyHeader::One(v.to_str().unwrap_or("")),
        (Some(_), Some(_)) => KeyHeader::Repeated,
    }
}

/// What a decision is called in logs and metrics, with the client it
/// identified (none for a public route or a refusal).
pub(crate) fn outcome_of(decision: &Decision) -> (&'static str, Option<String>) {
    match decision {
        Decision::Allow(Some(id)) => ("allowed", id.client_id.clone()),
        Decision::Allow(None) => ("public", None),
        Decision::Deny(d) => (d.as_str(), None),
    }
}

/// Counts a decision per route and client
/// (`tollgate_gate_decisions_total{env, route, client, outcome}`) and its
/// time (`tollgate_gate_decision_seconds{env, route}`, the deciding alone,
/// without an upstream). The route is its methods and pattern as written
/// (`Policy::route_label`), so reloads that keep a route keep its series.
pub(crate) fn record(
    state: &AppState,
    gate: &tollgate_gate::Gate,
    req: &Request<'_>,
    decision: &Decision,
    started: std::time::Instant,
) {
    let route = gate.with_policy(|p| p.route_label(req.env, req.method, req.target));
    let (outcome, client) = outcome_of(decision);
    let m = &state.core.metrics;
    m.count(
        "tollgate_gate_decisions_total",
        "Gate decisions by environment, route (methods and pattern), client (empty when none was identified) and outcome",
        &[
            ("env", req.env),
            ("route", &route),
            ("client", client.as_deref().unwrap_or("")),
            ("outcome", outcome),
        ],
        1,
    );
    m.observe(
        "tollgate_gate_decision_seconds",
        "Time the gate took to decide (from memory; no upstream), by environment and route",
        &[("env", req.env), ("route", &route)],
        started.elapsed(),
    );
}

/// A gate's answer in HTTP terms: its status, headers and JSON body (the
/// check's answer to the proxy asking, and the reverse proxy's refusals).
pub(crate) fn answered(answer: forward::Answer) -> Response {
    let mut resp = match answer.body {
        Some(b) => b.into_response(),
        None => ().into_response(),
    };
    *resp.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::FORBIDDEN);
    let h = resp.headers_mut();
    for (name, value) in answer.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            h.insert(n, v);
        }
    }
    resp
}
