//! Discovery: RFC 8414 authorization-server metadata, the same metadata at
//! OpenID Connect Discovery's `/.well-known/openid-configuration` (libraries
//! made for Auth0-protected APIs look only there), and the RFC 7517 JWKS,
//! per environment. All are cacheable for a short time so that verifiers
//! see a new key soon after it is published.

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
/// Well-known path of the OpenID Connect Discovery document (appended to
/// the issuer, as OpenID Connect Discovery 1.0 §4 says).
pub const OIDC_PATH: &str = "/.well-known/openid-configuration";
/// Well-known path of the key set.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// `Cache-Control` of both documents: five minutes.
const CACHE: &str = "public, max-age=300";

/// Routes served per environment.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(METADATA_PATH, get(metadata))
        .route(OIDC_PATH, get(openid_configuration))
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

/// The OpenID Connect Discovery document of `env`: the RFC 8414 metadata
/// plus what OpenID Connect Discovery 1.0 §3 requires of a provider.
/// tollgate issues no ID tokens and has no authorization endpoint; these
/// fields are there because OpenID libraries refuse a document without
/// them, and they are true of what is served:
///
/// - `id_token_signing_alg_values_supported`: the algorithms of the keys
///   the environment publishes (verifiers such as Auth0's SDKs take it as
///   the algorithms to accept), then `RS256`, which the specification says
///   the list must hold;
/// - `subject_types_supported`: `public` (a `sub` is the same for every
///   audience);
/// - `response_types_supported`: `token`, since the field must not be empty;
///   with no `authorization_endpoint` no client can act on it.
pub fn openid_document(env: &EnvRuntime) -> serde_json::Value {
    let mut doc = metadata_document(env);
    let mut algs: Vec<&'static str> = vec![env.env.alg.as_str()];
    for alg in env.published_algs() {
        if !algs.contains(&alg.as_str()) {
            algs.push(alg.as_str());
        }
    }
    if !algs.contains(&"RS256") {
        algs.push("RS256");
    }
    if let Some(o) = doc.as_object_mut() {
        o.insert("response_types_supported".into(), json!(["token"]));
        o.insert("subject_types_supported".into(), json!(["public"]));
        o.insert("id_token_signing_alg_values_supported".into(), json!(algs));
    }
    doc
}

async fn openid_configuration(Env(env): Env) -> Response {
    cached_json(openid_document(&env).to_string())
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
