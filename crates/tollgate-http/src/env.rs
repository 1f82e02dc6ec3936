//! Which environment a request is for: the `/e/{env}/` path prefix, else a
//! host name configured for an environment, else the default environment.
//! Since the `Host` header can select it, a request must carry exactly one
//! valid `Host` ([`require_one_host`]).

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::http::header::HOST;
use axum::http::request::Parts;
use axum::http::uri::Authority;
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use tollgate_core::model::DEFAULT_ENV;
use tollgate_core::service::EnvRuntime;

use crate::AppState;

/// The environment a request addresses.
#[derive(Debug, Clone)]
pub struct Env(pub Arc<EnvRuntime>);

/// No such environment: 404 with a JSON body.
#[derive(Debug)]
pub struct UnknownEnv(pub(crate) String);

impl IntoResponse for UnknownEnv {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": "not_found",
            "error_description": format!("no environment named '{}'", self.0),
        });
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

impl FromRequestParts<AppState> for Env {
    type Rejection = UnknownEnv;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Found already by the dispatcher of the optional contracts.
        if let Some(env) = parts.extensions.get::<Env>() {
            return Ok(env.clone());
        }
        let named = RawPathParams::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|p| {
                p.iter()
                    .find(|(k, _)| *k == "env")
                    .map(|(_, v)| v.to_string())
            });
        if let Some(name) = named {
            return state.core.env(&name).map(Env).ok_or(UnknownEnv(name));
        }
        if let Some(env) = parts
            .headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| state.core.env_for_host(h))
        {
            return Ok(Env(env));
        }
        state
            .core
            .env(DEFAULT_ENV)
            .map(Env)
            .ok_or_else(|| UnknownEnv(DEFAULT_ENV.into()))
    }
}

/// A request refused before any contract saw it, in the shape every
/// contract's JSON errors share (`error`, `error_description`); the
/// environment-level refusal above has it too.
pub(crate) fn refused(status: StatusCode, description: &str) -> Response {
    let body = serde_json::json!({
        "error": "invalid_request",
        "error_description": description,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A step of [`crate::edge`]: the 400 answer (`None`: let it through) for a request with more than one `Host`
/// header, without one, with one that is not `host[:port]`, or whose
/// absolute-form target names another host (RFC 9112 §3.2). Otherwise a
/// proxy in front that routes on one of them, or on the target, and
/// tollgate, which selects the environment by the header, could each see a
/// different environment. The connection is closed after the answer: a
/// client (or proxy) this confused about the head may frame the next
/// request differently too.
///
/// One exception: an HTTP/1.0 request for `/healthz` may come without
/// `Host`. HTTP/1.0 does not require one, health probes often speak it
/// without (HAProxy's default `option httpchk`), and the health check
/// selects no environment. Everything else needs the header, whatever the
/// version, because without it the request would fall silently to the
/// default environment.
pub fn host_refusal(req: &Request) -> Option<Response> {
    let problem = host_problem(req)?;
    let mut r = refused(StatusCode::BAD_REQUEST, problem);
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Some(r)
}

fn host_problem(req: &Request) -> Option<&'static str> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Some("more than one Host header: send exactly one");
    }
    let Some(host) = host else {
        if req.version() == Version::HTTP_10 && req.uri().path() == "/healthz" {
            return None;
        }
        return Some("no Host header: send exactly one");
    };
    let Some(host) = host
        .to_str()
        .ok()
        .filter(|h| !h.contains('@'))
        .and_then(|h| h.parse::<Authority>().ok())
    else {
        return Some("the Host header is not a valid host[:port]");
    };
    match req.uri().authority() {
        Some(target) if !target.as_str().eq_ignore_ascii_case(host.as_str()) => {
            Some("the request target names a different host than the Host header")
        }
        _ => None,
    }
}
