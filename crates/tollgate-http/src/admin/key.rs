//! Signing keys: list (metadata and schedule, never key material), rotate,
//! and import an incumbent's key (`key import`; the material goes in, never
//! out).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tollgate_core::crypto::keyring::Scheduled;
use tollgate_core::crypto::keys::Imported;
use tollgate_core::model::SigningKeyRecord;
use tollgate_core::time::now;

use super::auth::{Caller, Read, Secrets};
use super::common::{
    AdminError, ErrorBody, JsonBody, ListQuery, QueryOf, page_json, paginate, with_etag,
};
use super::trail::{audit, json_of};
use crate::AppState;

/// A signing key's public facts and schedule.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    /// Environment.
    pub env: String,
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: String,
    /// `next`, `active` or `retired`, now.
    pub state: String,
    /// Whether the JWKS publishes it now.
    pub published: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds from which it signs.
    pub activates_at: i64,
    /// Unix seconds at which the next key took over, if it has.
    pub retired_at: Option<i64>,
    /// Unix seconds until which it stays published, if known.
    pub published_until: Option<i64>,
}

fn view(k: &SigningKeyRecord, s: Option<&Scheduled>) -> KeyView {
    let t = now();
    KeyView {
        env: k.env.clone(),
        kid: k.kid.clone(),
        alg: k.alg.as_str().to_string(),
        state: s.map_or("next", |s| s.state(t).as_str()).to_string(),
        published: s.is_some_and(|s| s.published(t)),
        created_at: k.created_at,
        activates_at: s.map_or(k.activates_at, |s| s.activates_at),
        retired_at: s.and_then(|s| s.retired_at),
        published_until: s.and_then(|s| s.publish_until),
    }
}

/// A page of keys.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyPage {
    /// The items.
    pub items: Vec<KeyView>,
    /// The next page's cursor; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A rotation.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// Seconds the new key is published before it signs (default 600).
    #[serde(default)]
    pub publish_delay: Option<u64>,
}

/// Lists an environment's signing keys with their schedule.
#[utoipa::path(get, path = "/admin/v1/environments/{env}/keys", tag = "keys",
    params(("env" = String, Path, description = "environment name"), ListQuery),
    responses((status = 200, description = "a page of keys", body = KeyPage),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn list(
    State(state): State<AppState>,
    _c: Caller<Read>,
    Path(env): Path<String>,
    QueryOf(q): QueryOf<ListQuery>,
) -> Result<Response, AdminError> {
    state
        .core
        .list_environments()
        .await?
        .iter()
        .find(|e| e.name == env)
        .ok_or_else(|| tollgate_core::CoreError::NotFound {
            kind: "environment",
            name: env.clone(),
        })?;
    let mut keys = state.core.list_keys().await?;
    keys.retain(|(k, _)| k.env == env);
    let (page, next) = paginate(keys, |(k, _)| k.kid.clone(), &q)?;
    let views: Vec<KeyView> = page.iter().map(|(k, s)| view(k, Some(s))).collect();
    Ok(page_json(&views, next))
}

/// Rotates an environment's signing key: the new key is published at once
/// and signs from `publish_delay` seconds on.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/keys/rotate", tag = "keys",
    request_body = RotateKey,
    params(("env" = String, Path, description = "environment name")),
    responses((status = 201, description = "the new key", body = KeyView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write", "admin:secrets"])))]
pub async fn rotate(
    State(state): State<AppState>,
    c: Caller<Secrets>,
    Path(env): Path<String>,
    body: JsonBody<RotateKey>,
) -> Result<Response, AdminError> {
    let delay = body.value.publish_delay.unwrap_or(600);
    let rec = state.core.rotate_key(&env, delay).await?;
    let v = view(&rec, None);
    audit(
        &state,
        &c,
        "key.rotate",
        Some(&env),
        &rec.kid,
        None,
        json_of(&v),
    )
    .await;
    Ok(with_etag(StatusCode::CREATED, &v))
}

/// An incumbent's signing key to import: exactly one of `pem` and
/// `hs256_secret`, of the environment's algorithm.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportKey {
    /// A PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC; RSA, P-256 or
    /// Ed25519).
    #[serde(default)]
    pub pem: Option<String>,
    /// The HS256 secret the resource servers verify with (an HS256
    /// environment).
    #[serde(default)]
    pub hs256_secret: Option<String>,
    /// The key id to publish and sign with (default: a random one).
    #[serde(default)]
    pub kid: Option<String>,
    /// Seconds it is published before it signs (default 0: at once, for a
    /// key the resource servers already trust).
    #[serde(default)]
    pub publish_delay: Option<u64>,
}

// Key material never prints, not even in a debug log.
impl std::fmt::Debug for ImportKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportKey")
            .field("kid", &self.kid)
            .field("publish_delay", &self.publish_delay)
            .finish_non_exhaustive()
    }
}

/// Imports an incumbent's signing key (PEM) or HS256 secret, so resource
/// servers that pinned it, or its kid, keep verifying.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/keys/import", tag = "keys",
    request_body = ImportKey,
    params(("env" = String, Path, description = "environment name")),
    responses((status = 201, description = "the imported key (metadata only)", body = KeyView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write", "admin:secrets"])))]
pub async fn import(
    State(state): State<AppState>,
    c: Caller<Secrets>,
    Path(env): Path<String>,
    body: JsonBody<ImportKey>,
) -> Result<Response, AdminError> {
    let b = body.value;
    let delay = b.publish_delay.unwrap_or(0);
    let rec = match (b.pem, b.hs256_secret) {
        (Some(pem), None) => {
            let pem = SecretString::from(pem);
            state
                .core
                .import_key(
                    &env,
                    Imported::Pem(pem.expose_secret()),
                    b.kid.as_deref(),
                    delay,
                )
                .await?
        }
        (None, Some(secret)) => {
            let secret = SecretString::from(secret);
            state
                .core
                .import_key(
                    &env,
                    Imported::Hs256(secret.expose_secret().as_bytes()),
                    b.kid.as_deref(),
                    delay,
                )
                .await?
        }
        _ => {
            return Err(AdminError::invalid(
                "give exactly one of pem and hs256_secret",
            ));
        }
    };
    let v = view(&rec, None);
    audit(
        &state,
        &c,
        "key.import",
        Some(&env),
        &rec.kid,
        None,
        json_of(&v),
    )
    .await;
    Ok(with_etag(StatusCode::CREATED, &v))
}
