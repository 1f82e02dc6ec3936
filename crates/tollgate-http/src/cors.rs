//! CORS for browser clients (the Fetch standard's CORS protocol), per
//! environment: which web origins may call tollgate from a page, answered on
//! every contract route and on discovery.
//!
//! Routes come in two kinds. *Credentialed* routes (every token endpoint:
//! the client secret, the user's password, a refresh token or refresh JWT
//! travels in `Authorization`, the body or `Refresh-Token`) answer only
//! origins listed exactly: a `*` in `cors_allowed_origins` does not open
//! them, since any page on the web could then drive a login with what the
//! user types into it. *Public* routes (metadata, JWKS) carry no credential
//! and answer `*` when it is listed.
//!
//! An allowed origin gets `Access-Control-Allow-Origin` (its own origin, or
//! `*` on a public route), every answer to a request with an `Origin`
//! gets `Vary: Origin` (caches must not hand one origin's answer to
//! another), and a preflight (`OPTIONS` with
//! `Access-Control-Request-Method`) is answered here with 204, or 403 for an
//! origin not allowed. `Access-Control-Allow-Credentials` is never sent:
//! tollgate sets no cookies, so a browser client sends its credentials as
//! headers it writes itself (`credentials: "omit"` or the default).
//! Without any origin configured (the default) nothing here happens and an
//! `OPTIONS` gets the route's 405, as before.
//!
//! The origins are the environment's resolved `cors_allowed_origins`
//! (`contracts::origins`, read with `contracts::setting`). The fixed routes
//! (rfc6749, discovery) run [`credentialed`] or [`public`] as a layer; the
//! optional contracts, reached through the dispatch table, call [`around`]
//! from `dispatch` once it has found the environment and the handler, so a
//! preflight to a dispatched path is answered with the same environment
//! lookup that would serve the request.

use std::future::Future;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tollgate_core::service::EnvRuntime;

use crate::AppState;
use crate::contracts::origins::{Cors, RouteKind};
use crate::env::Env;

/// Methods a preflight is told the routes take.
const METHODS: &str = "GET, POST";
/// Request headers a browser client may send: credentials, the body's
/// type, and the header-login contract's refresh token.
const HEADERS: &str = "Authorization, Content-Type, Refresh-Token";
/// How long a browser may cache a preflight answer, seconds.
const MAX_AGE: &str = "600";

/// Router layer for routes that carry credentials.
pub async fn credentialed(State(state): State<AppState>, req: Request, next: Next) -> Response {
    layer(&state, req, next, RouteKind::Credentialed).await
}

/// Router layer for the discovery documents.
pub async fn public(State(state): State<AppState>, req: Request, next: Next) -> Response {
    layer(&state, req, next, RouteKind::Public).await
}

/// A fixed route: finds the environment the way its handler will.
async fn layer(state: &AppState, req: Request, next: Next, kind: RouteKind) -> Response {
    if !req.headers().contains_key(header::ORIGIN) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let env = Env::from_request_parts(&mut parts, state).await;
    let req = Request::from_parts(parts, body);
    let Ok(Env(env)) = env else {
        // No such environment: its own 404 says so.
        return next.run(req).await;
    };
    around(state, &env, kind, req, |req| next.run(req)).await
}

/// Answers a preflight for `env`, or runs the request and adds the CORS
/// headers to its answer; without an `Origin`, or with no origin
/// configured in `env`, just runs it.
pub async fn around<F, Fut>(
    state: &AppState,
    env: &EnvRuntime,
    kind: RouteKind,
    req: Request,
    run: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let Some(origin) = req.headers().get(header::ORIGIN).cloned() else {
        return run(req).await;
    };
    let cors = match crate::contracts::setting::<Cors>(state, env) {
        Some(c) if !c.is_off() => c,
        _ => return run(req).await,
    };
    let allowed = cors.allow(&origin, kind);
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        match &allowed {
            Some(_) => {
                let mut r = StatusCode::NO_CONTENT.into_response();
                let h = r.headers_mut();
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(METHODS),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(HEADERS),
                );
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static(MAX_AGE),
                );
                r
            }
            None => (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "origin not allowed",
            )
                .into_response(),
        }
    } else {
        run(req).await
    };
    let h = resp.headers_mut();
    if let Some(v) = allowed {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    vary_origin(h);
    resp
}

/// Adds `Origin` to `Vary`, keeping what is there.
fn vary_origin(h: &mut HeaderMap) {
    let present = h.get_all(header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("origin"))
        })
    });
    if !present {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}
