//! Requests to the optional contracts: their paths are settings, and can
//! differ per environment, so they are not routes of the fixed router but
//! entries of each environment's dispatch table (`contracts::EnvContracts`,
//! built once per snapshot). The router's fallback lands here: it finds the
//! environment (`/e/{env}` prefix, else the host, else the default one), looks
//! the rest of the path up in that environment's table and hands the
//! request to the handlers found there, which answer other methods with 405
//! themselves. No entry: a bare 404, as for any unknown path. CORS
//! (`cors::around`) runs here too, once the environment is known.

use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::http::header::HOST;
use axum::response::{IntoResponse, Response};
use tollgate_core::model::DEFAULT_ENV;

use crate::AppState;
use crate::contracts::EnvContracts;
use crate::contracts::origins::RouteKind;
use crate::cors;
use crate::env::{Env, UnknownEnv};
use crate::ops::RouteLabel;

/// The router's fallback: one environment's optional contracts.
pub async fn dispatch(State(state): State<AppState>, mut req: Request) -> Response {
    let full = req.uri().path();
    let (env, nested, path) = match full.strip_prefix("/e/") {
        Some(rest) => {
            let (name, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match state.core.env(name) {
                Some(env) => (env, true, path.to_string()),
                None if path.is_empty() => return StatusCode::NOT_FOUND.into_response(),
                None => return UnknownEnv(name.to_string()).into_response(),
            }
        }
        None => {
            let by_host = req
                .headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| state.core.env_for_host(h));
            match by_host.or_else(|| state.core.env(DEFAULT_ENV)) {
                Some(env) => (env, false, full.to_string()),
                None => return UnknownEnv(DEFAULT_ENV.into()).into_response(),
            }
        }
    };
    // The table built with the snapshot; without the resolver installed
    // (a core opened without it), the server's settings, resolved now.
    let resolved;
    let contracts = match env.ext::<EnvContracts>() {
        Some(c) => c,
        None => {
            resolved = state.contracts.resolve(&env.env);
            &resolved
        }
    };
    let Some(entry) = contracts.route(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let handler = entry.ready(&state);
    let label = entry.label(nested).to_string();
    // The handlers' `Env` extractor finds the environment here instead of
    // in path parameters, which a fallback has none of.
    req.extensions_mut().insert(Env(env.clone()));
    // Every optional contract carries credentials (a secret, a password, a
    // refresh token): exact origins only. A preflight is answered here,
    // for this environment, before its handler would refuse the method.
    let mut resp = cors::around(&state, &env, RouteKind::Credentialed, req, |req| {
        Handler::call(handler, req, ())
    })
    .await;
    resp.extensions_mut().insert(RouteLabel(label));
    resp
}
