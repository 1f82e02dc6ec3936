//! `/admin/v1/environments/{env}/api-keys`: API keys of clients for the
//! gate (what `tollgate api-key` does): list (never the key), create and
//! rotate (the key in the response, once), revoke. Keys are named by their
//! id, `tgk_<id>`, as in the CLI.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tollgate_core::model::ApiKey;
use tollgate_core::time::now;

use super::auth::{Caller, Read, Secrets, Write};
use super::common::{
    AdminError, ErrorBody, JsonBody, ListQuery, QueryOf, no_store, page_json, paginate, with_etag,
};
use super::trail::{audit, json_of};
use crate::AppState;

/// An API key's record: never the key, never its hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    /// Environment.
    pub env: String,
    /// Its id, `tgk_<id>` (not secret).
    pub id: String,
    /// The client it acts for.
    pub client_id: String,
    /// A label for people.
    pub name: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds from which it no longer works; absent: until revoked.
    pub expires_at: Option<i64>,
    /// Unix seconds, once revoked.
    pub revoked_at: Option<i64>,
    /// `active`, `expired` or `revoked`, now.
    pub status: String,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        let status = if k.revoked_at.is_some() {
            "revoked"
        } else if k.live_at(now()) {
            "active"
        } else {
            "expired"
        };
        Self {
            env: k.env.clone(),
            id: format!("tgk_{}", k.id),
            client_id: k.client_id.clone(),
            name: k.name.clone(),
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            status: status.to_string(),
        }
    }
}

/// A page of API keys.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyPage {
    /// The items.
    pub items: Vec<ApiKeyView>,
    /// The next page's cursor; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `?client=&limit=&cursor=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApiKeyQuery {
    /// Only this client's keys.
    pub client: Option<String>,
    /// Items per page, 1 to 1000 (default 50).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page (opaque).
    pub cursor: Option<String>,
}

/// A new API key.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreate {
    /// The client it acts for.
    pub client_id: String,
    /// A label for people (where the key is used).
    #[serde(default)]
    pub name: Option<String>,
    /// Seconds it works (default: until revoked).
    #[serde(default)]
    pub ttl: Option<u64>,
}

/// A rotation: a new key for the same client; the old one keeps working for
/// `grace` seconds.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRotate {
    /// Seconds the old key keeps working (default 86400; 0: none).
    #[serde(default)]
    pub grace: Option<u64>,
    /// Seconds the new key works (default: as long as the old one was made to).
    #[serde(default)]
    pub ttl: Option<u64>,
}

/// A new key: the key is shown here only.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedApiKey {
    /// Its record.
    pub api_key: ApiKeyView,
    /// The key (`tgk_<id>_<secret>`), to send as `X-API-Key`.
    pub key: String,
    /// A rotation: the key it replaces, with the end of its grace.
    pub replaces: Option<ApiKeyView>,
}

fn issued(status: StatusCode, key: &str, rec: &ApiKey, old: Option<&ApiKey>) -> Response {
    no_store(
        (
            status,
            axum::Json(IssuedApiKey {
                api_key: ApiKeyView::from(rec),
                key: key.to_string(),
                replaces: old.map(ApiKeyView::from),
            }),
        )
            .into_response(),
    )
}

/// Lists an environment's API keys (optionally one client's).
#[utoipa::path(get, path = "/admin/v1/environments/{env}/api-keys", tag = "api-keys",
    params(("env" = String, Path, description = "environment name"), ApiKeyQuery),
    responses((status = 200, description = "a page of API keys", body = ApiKeyPage),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn list(
    State(state): State<AppState>,
    _c: Caller<Read>,
    Path(env): Path<String>,
    QueryOf(q): QueryOf<ApiKeyQuery>,
) -> Result<Response, AdminError> {
    let keys = state.core.list_api_keys(&env, q.client.as_deref()).await?;
    let paging = ListQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let (page, next) = paginate(keys, |k| k.id.clone(), &paging)?;
    let views: Vec<ApiKeyView> = page.iter().map(ApiKeyView::from).collect();
    Ok(page_json(&views, next))
}

/// Creates an API key for a client; the key is in the response, once.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/api-keys", tag = "api-keys",
    request_body = ApiKeyCreate,
    params(("env" = String, Path, description = "environment name"),
        ("Idempotency-Key" = Option<String>, Header, description = "replays the first response (key included) for 24 h, from this instance's memory")),
    responses((status = 201, description = "created, with the key", body = IssuedApiKey),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write", "admin:secrets"])))]
pub async fn create(
    State(state): State<AppState>,
    c: Caller<Secrets>,
    Path(env): Path<String>,
    headers: HeaderMap,
    body: JsonBody<ApiKeyCreate>,
) -> Result<Response, AdminError> {
    let idem = super::idempotency_of(&state);
    let what = format!("POST /admin/v1/environments/{env}/api-keys");
    super::idempotency::once(&idem, &c.client_id, &headers, &what, &body.raw, async {
        let b = body.value;
        let (key, rec) = state
            .core
            .create_api_key(&env, &b.client_id, b.name.as_deref(), b.ttl)
            .await?;
        let view = ApiKeyView::from(&rec);
        audit(
            &state,
            &c,
            "api_key.create",
            Some(&env),
            &view.id,
            None,
            json_of(&view),
        )
        .await;
        Ok(issued(StatusCode::CREATED, key.expose_secret(), &rec, None))
    })
    .await
}

/// Revokes an API key (by `tgk_<id>` or its id); servers refuse it from
/// their next sync.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/api-keys/{id}/revoke", tag = "api-keys",
    params(("env" = String, Path, description = "environment name"),
        ("id" = String, Path, description = "the key's id, tgk_<id>")),
    responses((status = 200, description = "revoked", body = ApiKeyView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn revoke(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path((env, id)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let rec = state.core.revoke_api_key(&env, &id).await?;
    let view = ApiKeyView::from(&rec);
    audit(
        &state,
        &c,
        "api_key.revoke",
        Some(&env),
        &view.id,
        None,
        json_of(&view),
    )
    .await;
    Ok(with_etag(StatusCode::OK, &view))
}

/// Rotates an API key: a new key (in the response, once) for the same
/// client; the old one keeps working for `grace` seconds.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/api-keys/{id}/rotate", tag = "api-keys",
    request_body = ApiKeyRotate,
    params(("env" = String, Path, description = "environment name"),
        ("id" = String, Path, description = "the key's id, tgk_<id>")),
    responses((status = 201, description = "the new key", body = IssuedApiKey),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write", "admin:secrets"])))]
pub async fn rotate(
    State(state): State<AppState>,
    c: Caller<Secrets>,
    Path((env, id)): Path<(String, String)>,
    body: JsonBody<ApiKeyRotate>,
) -> Result<Response, AdminError> {
    let b = body.value;
    let (key, new, old) = state
        .core
        .rotate_api_key(&env, &id, b.grace.unwrap_or(86_400), b.ttl)
        .await?;
    let view = ApiKeyView::from(&new);
    audit(
        &state,
        &c,
        "api_key.rotate",
        Some(&env),
        &view.id,
        json_of(&ApiKeyView::from(&old)),
        json_of(&view),
    )
    .await;
    Ok(issued(
        StatusCode::CREATED,
        key.expose_secret(),
        &new,
        Some(&old),
    ))
}
