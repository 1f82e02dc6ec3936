//! Switching over from an incumbent, over HTTP (what `refresh-jwt
//! trust|untrust`, `refresh-jwt revoke --client` and `key publish|unpublish`
//! do): trusted issuers whose refresh tokens tollgate accepts, and an
//! incumbent's public keys published beside tollgate's. Views show the
//! kind of key material, never an HS256 secret (it is stored sealed).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tollgate_core::crypto::trust::published_jwks;
use tollgate_core::incumbent::{TrustKeys, TrustPurpose, TrustedIssuer};
use tollgate_core::service::admin::trust::{NewTrust, TrustMaterial};

use super::auth::{Caller, Read, Secrets, Write};
use super::common::{
    AdminError, ErrorBody, JsonBody, ListQuery, QueryOf, check_if_match, no_store, page_json,
    paginate, with_etag,
};
use super::trail::{audit, json_of};
use crate::AppState;

/// A trusted issuer (or a set of published incumbent keys).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrustedView {
    /// Environment.
    pub env: String,
    /// Its name in the environment.
    pub name: String,
    /// Which grant accepts its tokens: `bearer-exchange`,
    /// `device-credentials`, `header-login`, or `access-tokens` (published
    /// keys: no grant).
    #[serde(rename = "for")]
    pub purpose: String,
    /// `jwks`, `pem` or `hs256`.
    pub keys: String,
    /// The algorithms its keys verify.
    pub algorithms: Vec<String>,
    /// Published keys: their `kid`s.
    pub kids: Vec<String>,
    /// Required `iss` of its tokens.
    pub issuer: Option<String>,
    /// Required `aud` of its tokens.
    pub audience: Option<String>,
    /// The claim naming the tollgate client.
    pub client_claim: String,
    /// The claim naming the user.
    pub user_claim: Option<String>,
    /// Bearer exchange: the API of the access tokens.
    pub api: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

fn view(t: &TrustedIssuer, algs: &[String]) -> TrustedView {
    let kids = match &t.keys {
        TrustKeys::Jwks { jwks } if t.purpose == TrustPurpose::AccessTokens => published_jwks(jwks)
            .unwrap_or_default()
            .iter()
            .filter_map(|k| k.get("kid").and_then(|v| v.as_str()).map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    TrustedView {
        env: t.env.clone(),
        name: t.id.clone(),
        purpose: t.purpose.as_str().to_string(),
        keys: t.keys.kind().to_string(),
        algorithms: algs.to_vec(),
        kids,
        issuer: t.issuer.clone(),
        audience: t.audience.clone(),
        client_claim: t.client_claim.clone(),
        user_claim: t.user_claim.clone(),
        api: t.api.clone(),
        created_at: t.created_at,
    }
}

/// A page of trusted issuers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TrustedPage {
    /// The items.
    pub items: Vec<TrustedView>,
    /// The next page's cursor; absent on the last page.
    pub next_cursor: Option<String>,
}

/// An issuer to trust: exactly one of `jwks`, `pem`, `hs256_secret`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustCreate {
    /// A name for it (default `incumbent`).
    #[serde(default)]
    pub name: Option<String>,
    /// `bearer-exchange` (default), `device-credentials` or `header-login`.
    #[serde(default, rename = "for")]
    pub purpose: Option<String>,
    /// A JWKS (an object, or its text): RS256, ES256 or EdDSA public keys.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// A PEM public key (RSA, EC P-256 or Ed25519).
    #[serde(default)]
    pub pem: Option<String>,
    /// An HS256 shared secret (stored sealed; never shown again).
    #[serde(default)]
    pub hs256_secret: Option<String>,
    /// Required `iss` of its tokens.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required `aud` of its tokens.
    #[serde(default)]
    pub audience: Option<String>,
    /// The claim naming the client (default `sub` for bearer-exchange,
    /// `client_id` otherwise).
    #[serde(default)]
    pub client_claim: Option<String>,
    /// device-credentials, header-login: the claim naming the user.
    #[serde(default)]
    pub user_claim: Option<String>,
    /// bearer-exchange: the API of the access tokens (default: the
    /// client's only API).
    #[serde(default)]
    pub api: Option<String>,
}

/// An incumbent's public keys to publish.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishKeys {
    /// A name for these keys (default `incumbent-keys`).
    #[serde(default)]
    pub name: Option<String>,
    /// The incumbent's JWKS (an object, or its text), public keys only.
    #[schema(value_type = Object)]
    pub jwks: serde_json::Value,
}

/// What revoking a client's refresh tokens did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RevokedClientTokens {
    /// The client.
    pub client_id: String,
    /// How many of its refresh JWTs were revoked (trusted incumbents'
    /// tokens of it issued until now are refused too, however many).
    pub refresh_jwts: u64,
}

fn text_of(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// The trusted issuers of `env` whose purpose `keep` accepts.
async fn of_env(
    state: &AppState,
    env: &str,
    keep: impl Fn(TrustPurpose) -> bool,
) -> Result<Vec<TrustedView>, AdminError> {
    Ok(state
        .core
        .list_trusted_issuers(env)
        .await?
        .iter()
        .filter(|(t, _)| keep(t.purpose))
        .map(|(t, a)| view(t, a))
        .collect())
}

async fn one(
    state: &AppState,
    env: &str,
    name: &str,
    published: bool,
) -> Result<TrustedView, AdminError> {
    of_env(state, env, |p| {
        (p == TrustPurpose::AccessTokens) == published
    })
    .await?
    .into_iter()
    .find(|t| t.name == name)
    .ok_or_else(|| {
        tollgate_core::CoreError::NotFound {
            kind: if published {
                "published keys"
            } else {
                "trusted issuer"
            },
            name: name.to_string(),
        }
        .into()
    })
}

/// Lists the issuers whose refresh tokens `env` accepts.
#[utoipa::path(get, path = "/admin/v1/environments/{env}/trusted-issuers", tag = "switch-over",
    params(("env" = String, Path, description = "environment name"), ListQuery),
    responses((status = 200, description = "a page of trusted issuers", body = TrustedPage),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn list(
    State(state): State<AppState>,
    _c: Caller<Read>,
    Path(env): Path<String>,
    QueryOf(q): QueryOf<ListQuery>,
) -> Result<Response, AdminError> {
    let all = of_env(&state, &env, |p| p != TrustPurpose::AccessTokens).await?;
    let (page, next) = paginate(all, |t| t.name.clone(), &q)?;
    Ok(page_json(&page, next))
}

/// Reads one trusted issuer (with its `ETag`).
#[utoipa::path(get, path = "/admin/v1/environments/{env}/trusted-issuers/{name}", tag = "switch-over",
    params(("env" = String, Path, description = "environment name"),
        ("name" = String, Path, description = "the issuer's name")),
    responses((status = 200, description = "the issuer", body = TrustedView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn get(
    State(state): State<AppState>,
    _c: Caller<Read>,
    Path((env, name)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    Ok(with_etag(
        StatusCode::OK,
        &one(&state, &env, &name, false).await?,
    ))
}

/// Trusts an incumbent's refresh tokens (`refresh-jwt trust`).
#[utoipa::path(post, path = "/admin/v1/environments/{env}/trusted-issuers", tag = "switch-over",
    request_body = TrustCreate,
    params(("env" = String, Path, description = "environment name")),
    responses((status = 201, description = "trusted", body = TrustedView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write", "admin:secrets"])))]
pub async fn create(
    State(state): State<AppState>,
    c: Caller<Secrets>,
    Path(env): Path<String>,
    body: JsonBody<TrustCreate>,
) -> Result<Response, AdminError> {
    let b = body.value;
    let material = match (b.jwks, b.pem, b.hs256_secret) {
        (Some(j), None, None) => TrustMaterial::Jwks(text_of(j)),
        (None, Some(p), None) => TrustMaterial::Pem(p),
        (None, None, Some(s)) => TrustMaterial::Hs256(SecretString::from(s)),
        _ => {
            return Err(AdminError::invalid(
                "give exactly one of jwks, pem and hs256_secret",
            ));
        }
    };
    let purpose: TrustPurpose = b.purpose.as_deref().unwrap_or("bearer-exchange").parse()?;
    if purpose == TrustPurpose::AccessTokens {
        return Err(AdminError::invalid(
            "published keys have their own route: POST …/keys/published",
        ));
    }
    let rec = state
        .core
        .trust_issuer(
            &env,
            NewTrust {
                id: b.name.unwrap_or_else(|| "incumbent".into()),
                purpose,
                material,
                issuer: b.issuer,
                audience: b.audience,
                client_claim: b.client_claim,
                user_claim: b.user_claim,
                api: b.api,
            },
        )
        .await?;
    let v = one(&state, &env, &rec.id, false).await?;
    audit(
        &state,
        &c,
        "trust.create",
        Some(&env),
        &rec.id,
        None,
        json_of(&v),
    )
    .await;
    Ok(with_etag(StatusCode::CREATED, &v))
}

async fn remove(
    state: AppState,
    c: Caller<Write>,
    env: String,
    name: String,
    headers: HeaderMap,
    published: bool,
) -> Result<Response, AdminError> {
    let before = one(&state, &env, &name, published).await?;
    check_if_match(&headers, &before)?;
    state.core.untrust_issuer(&env, &name).await?;
    let action = if published {
        "key.unpublish"
    } else {
        "trust.delete"
    };
    audit(
        &state,
        &c,
        action,
        Some(&env),
        &name,
        json_of(&before),
        None,
    )
    .await;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}

/// Stops trusting an issuer (`refresh-jwt untrust`; `If-Match` required).
#[utoipa::path(delete, path = "/admin/v1/environments/{env}/trusted-issuers/{name}", tag = "switch-over",
    params(("env" = String, Path, description = "environment name"),
        ("name" = String, Path, description = "the issuer's name"),
        ("If-Match" = String, Header, description = "the ETag of the issuer as last read")),
    responses((status = 204, description = "no longer trusted"),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn delete(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path((env, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    remove(state, c, env, name, headers, false).await
}

/// Lists the incumbent keys `env` publishes beside its own.
#[utoipa::path(get, path = "/admin/v1/environments/{env}/keys/published", tag = "switch-over",
    params(("env" = String, Path, description = "environment name"), ListQuery),
    responses((status = 200, description = "a page of published key sets", body = TrustedPage),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn list_published(
    State(state): State<AppState>,
    _c: Caller<Read>,
    Path(env): Path<String>,
    QueryOf(q): QueryOf<ListQuery>,
) -> Result<Response, AdminError> {
    let all = of_env(&state, &env, |p| p == TrustPurpose::AccessTokens).await?;
    let (page, next) = paginate(all, |t| t.name.clone(), &q)?;
    Ok(page_json(&page, next))
}

/// Reads one set of published incumbent keys (with its `ETag`).
#[utoipa::path(get, path = "/admin/v1/environments/{env}/keys/published/{name}", tag = "switch-over",
    params(("env" = String, Path, description = "environment name"),
        ("name" = String, Path, description = "the name given at publishing")),
    responses((status = 200, description = "the published keys", body = TrustedView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn get_published(
    State(state): State<AppState>,
    _c: Caller<Read>,
    Path((env, name)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    Ok(with_etag(
        StatusCode::OK,
        &one(&state, &env, &name, true).await?,
    ))
}

/// Publishes an incumbent's public keys in `env`'s JWKS (`key publish`);
/// they never sign.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/keys/published", tag = "switch-over",
    request_body = PublishKeys,
    params(("env" = String, Path, description = "environment name")),
    responses((status = 201, description = "published", body = TrustedView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn publish(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path(env): Path<String>,
    body: JsonBody<PublishKeys>,
) -> Result<Response, AdminError> {
    let b = body.value;
    let name = b.name.unwrap_or_else(|| "incumbent-keys".into());
    state
        .core
        .publish_incumbent_keys(&env, &name, text_of(b.jwks))
        .await?;
    let v = one(&state, &env, &name, true).await?;
    audit(
        &state,
        &c,
        "key.publish",
        Some(&env),
        &name,
        None,
        json_of(&v),
    )
    .await;
    Ok(with_etag(StatusCode::CREATED, &v))
}

/// Stops publishing an incumbent's keys (`key unpublish`; `If-Match`
/// required).
#[utoipa::path(delete, path = "/admin/v1/environments/{env}/keys/published/{name}", tag = "switch-over",
    params(("env" = String, Path, description = "environment name"),
        ("name" = String, Path, description = "the name given at publishing"),
        ("If-Match" = String, Header, description = "the ETag as last read")),
    responses((status = 204, description = "no longer published"),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn unpublish(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path((env, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    remove(state, c, env, name, headers, true).await
}

/// Revokes every refresh token of a client: its refresh JWTs, and every
/// token of it a trusted incumbent issued until now (`refresh-jwt revoke
/// --client`).
#[utoipa::path(post, path = "/admin/v1/environments/{env}/clients/{client_id}/revoke-refresh-tokens", tag = "refresh-jwts",
    params(("env" = String, Path, description = "environment name"),
        ("client_id" = String, Path, description = "client id")),
    responses((status = 200, description = "revoked", body = RevokedClientTokens),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn revoke_client_tokens(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path((env, id)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let n = state.core.revoke_client_refresh_tokens(&env, &id).await?;
    let out = RevokedClientTokens {
        client_id: id.clone(),
        refresh_jwts: n,
    };
    audit(
        &state,
        &c,
        "client.revoke_refresh_tokens",
        Some(&env),
        &id,
        None,
        json_of(&out),
    )
    .await;
    Ok(no_store((StatusCode::OK, axum::Json(out)).into_response()))
}
