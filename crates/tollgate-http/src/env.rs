//! Which environment a request is for: the `/e/{env}/` path prefix, else a
//! host name configured for an environment, else the default environment.

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header::HOST;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
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
