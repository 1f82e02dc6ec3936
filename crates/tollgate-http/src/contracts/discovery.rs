//! Discovery: RFC 8414 authorization-server metadata and the RFC 7517 JWKS,
//! per environment. Both are cacheable for a short time so that verifiers see
//! a new key soon after it is published.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tollgate_core::service::EnvRuntime;

use crate::AppState;
use crate::contracts::oauth2::{self, TOKEN_PATH};
use crate::env::{Env, UnknownEnv};

/// Well-known path of the metadata document.
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// Well-known path of the key set.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// `Cache-Control` of both documents: five minutes.
const CACHE: &str = "public, max-age=300";

/// Routes served per environment.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(METADATA_PATH, get(metadata))
        .route(JWKS_PATH, get(jwks))
}

/// RFC 8414 §3 places the well-known segment before the issuer's path:
/// `/.well-known/oauth-authorization-server/e/{env}`.
pub fn rfc8414_routes() -> Router<AppState> {
    Router::new().route(
        "/.well-known/oauth-authorization-server/e/{env}",
        get(metadata_by_path),
    )
}

fn cached_json(body: String) -> Response {
    let mut r = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE));
    r
}

/// The metadata document of `env`.
pub fn metadata_document(env: &EnvRuntime) -> serde_json::Value {
    let base = env.issuer.trim_end_matches('/');
    json!({
        "issuer": env.issuer,
        "token_endpoint": format!("{base}{TOKEN_PATH}"),
        "jwks_uri": format!("{base}{JWKS_PATH}"),
        "grant_types_supported": oauth2::SERVED_GRANTS.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint": format!("{base}{}", oauth2::INTROSPECT_PATH),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint": format!("{base}{}", oauth2::REVOKE_PATH),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],
    })
}

async fn metadata(Env(env): Env) -> Response {
    cached_json(metadata_document(&env).to_string())
}

async fn metadata_by_path(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    match state.core.env(&name) {
        Some(env) => cached_json(metadata_document(&env).to_string()),
        None => UnknownEnv(name).into_response(),
    }
}

async fn jwks(Env(env): Env) -> Response {
    let mut r = cached_json(env.jwks_json().to_string());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    r
}
