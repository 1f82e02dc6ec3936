//! `/admin/v1/environments/{env}/apis`: list, get, create, update, delete.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tollgate_core::CoreError;
use tollgate_core::model::{Api, Obligation};
use tollgate_core::service::ApiUpdate;
use tollgate_core::time::now;

use super::auth::{Caller, Read, Write};
use super::common::{
    AdminError, ErrorBody, JsonBody, ListQuery, QueryOf, changed_since, check_if_match, no_store,
    page_json, paginate, with_etag,
};
use super::double_option;
use super::trail::{audit, json_of};
use crate::AppState;

/// An API (resource server).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiView {
    /// Environment.
    pub env: String,
    /// The audience identifier.
    pub identifier: String,
    /// Every permission it knows.
    pub permissions: BTreeSet<String>,
    /// Named sets of permissions.
    pub packages: BTreeMap<String, BTreeSet<String>>,
    /// Its access-token lifetime in seconds (absent: the contract's setting).
    pub token_lifetime: Option<u64>,
    /// Its obligation (`reuse:30s`, `limit:100/3600s`), if any.
    pub obligation: Option<String>,
    /// Auth0's "permissions in the access token".
    pub token_permissions: bool,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<&Api> for ApiView {
    fn from(a: &Api) -> Self {
        Self {
            env: a.env.clone(),
            identifier: a.identifier.clone(),
            permissions: a.permissions.clone(),
            packages: a.packages.clone(),
            token_lifetime: a.token_lifetime,
            obligation: a.obligation.map(|o| o.to_string()),
            token_permissions: a.token_permissions,
            created_at: a.created_at,
        }
    }
}

/// A page of APIs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiPage {
    /// The items.
    pub items: Vec<ApiView>,
    /// The next page's cursor; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A new API.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiCreate {
    /// The audience identifier.
    pub identifier: String,
    /// Permissions.
    #[serde(default)]
    pub permissions: BTreeSet<String>,
    /// Packages (their permissions join the API's).
    #[serde(default)]
    pub packages: BTreeMap<String, BTreeSet<String>>,
    /// Access-token lifetime, seconds.
    #[serde(default)]
    pub token_lifetime: Option<u64>,
    /// `off`, `reuse`, `reuse:30s`, `limit:100/1h`.
    #[serde(default)]
    pub obligation: Option<String>,
    /// Auth0's "permissions in the access token".
    #[serde(default)]
    pub token_permissions: bool,
}

/// Changes to an API; an absent field stays as it is.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiPatch {
    /// Permissions to add.
    #[serde(default)]
    pub add_permissions: BTreeSet<String>,
    /// Permissions to remove.
    #[serde(default)]
    pub remove_permissions: BTreeSet<String>,
    /// Packages to create or replace.
    #[serde(default)]
    pub set_packages: BTreeMap<String, BTreeSet<String>>,
    /// Packages to remove.
    #[serde(default)]
    pub remove_packages: BTreeSet<String>,
    /// Lifetime in seconds; `null` leaves it to the contract's setting.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub token_lifetime: Option<Option<u64>>,
    /// Obligation; `null` or `off` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub obligation: Option<Option<String>>,
    /// Auth0's "permissions in the access token".
    #[serde(default)]
    pub token_permissions: Option<bool>,
}

pub(super) fn obligation_of(o: Option<String>) -> Result<Option<Obligation>, AdminError> {
    Ok(o.map(|o| o.parse::<Obligation>())
        .transpose()?
        .filter(|o| *o != Obligation::Off))
}

async fn find(state: &AppState, env: &str, id: &str) -> Result<Api, AdminError> {
    state
        .core
        .list_apis(env)
        .await?
        .into_iter()
        .find(|a| a.identifier == id)
        .ok_or_else(|| {
            CoreError::NotFound {
                kind: "api",
                name: id.to_string(),
            }
            .into()
        })
}

/// Lists the APIs of an environment.
#[utoipa::path(get, path = "/admin/v1/environments/{env}/apis", tag = "apis",
    params(("env" = String, Path, description = "environment name"), ListQuery),
    responses((status = 200, description = "a page of APIs", body = ApiPage),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn list(
    State(state): State<AppState>,
    _c: Caller<Read>,
    Path(env): Path<String>,
    QueryOf(q): QueryOf<ListQuery>,
) -> Result<Response, AdminError> {
    let apis = state.core.list_apis(&env).await?;
    let (page, next) = paginate(apis, |a| a.identifier.clone(), &q)?;
    let views: Vec<ApiView> = page.iter().map(ApiView::from).collect();
    Ok(page_json(&views, next))
}

/// Reads an API (with its `ETag`).
#[utoipa::path(get, path = "/admin/v1/environments/{env}/apis/{api}", tag = "apis",
    params(("env" = String, Path, description = "environment name"),
        ("api" = String, Path, description = "API identifier (percent-encoded)")),
    responses((status = 200, description = "the API", body = ApiView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn get(
    State(state): State<AppState>,
    _c: Caller<Read>,
    Path((env, id)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let api = find(&state, &env, &id).await?;
    Ok(with_etag(StatusCode::OK, &ApiView::from(&api)))
}

/// Creates an API.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/apis", tag = "apis",
    request_body = ApiCreate,
    params(("env" = String, Path, description = "environment name"),
        ("Idempotency-Key" = Option<String>, Header, description = "replays the first response for 24 h")),
    responses((status = 201, description = "created", body = ApiView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn create(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path(env): Path<String>,
    headers: HeaderMap,
    body: JsonBody<ApiCreate>,
) -> Result<Response, AdminError> {
    let idem = super::idempotency_of(&state);
    let what = format!("POST /admin/v1/environments/{env}/apis");
    super::idempotency::once(&idem, &c.client_id, &headers, &what, &body.raw, async {
        let b = body.value;
        let mut permissions = b.permissions;
        for members in b.packages.values() {
            permissions.extend(members.iter().cloned());
        }
        let api = state
            .core
            .create_api(Api {
                env: env.clone(),
                identifier: b.identifier,
                permissions,
                packages: b.packages,
                token_lifetime: b.token_lifetime,
                obligation: obligation_of(b.obligation)?,
                token_permissions: b.token_permissions,
                created_at: now(),
            })
            .await?;
        let view = ApiView::from(&api);
        audit(
            &state,
            &c,
            "api.create",
            Some(&env),
            &api.identifier,
            None,
            json_of(&view),
        )
        .await;
        Ok(with_etag(StatusCode::CREATED, &view))
    })
    .await
}

/// Changes an API in place (`If-Match` required).
#[utoipa::path(patch, path = "/admin/v1/environments/{env}/apis/{api}", tag = "apis",
    request_body = ApiPatch,
    params(("env" = String, Path, description = "environment name"),
        ("api" = String, Path, description = "API identifier"),
        ("If-Match" = String, Header, description = "the ETag of the API as last read")),
    responses((status = 200, description = "changed", body = ApiView),
        (status = "4XX", description = "refused (412, 428: see If-Match)", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn update(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path((env, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: JsonBody<ApiPatch>,
) -> Result<Response, AdminError> {
    let current = find(&state, &env, &id).await?;
    let before = ApiView::from(&current);
    check_if_match(&headers, &before)?;
    let b = body.value;
    let change = ApiUpdate {
        add_permissions: b.add_permissions,
        remove_permissions: b.remove_permissions,
        set_packages: b.set_packages,
        remove_packages: b.remove_packages,
        token_lifetime: b.token_lifetime,
        obligation: b.obligation.map(obligation_of).transpose()?,
        token_permissions: b.token_permissions,
    };
    let api = state
        .core
        .update_api_if(&current, change)
        .await?
        .ok_or_else(changed_since)?;
    let after = ApiView::from(&api);
    audit(
        &state,
        &c,
        "api.update",
        Some(&env),
        &id,
        json_of(&before),
        json_of(&after),
    )
    .await;
    Ok(with_etag(StatusCode::OK, &after))
}

/// Deletes an API (`If-Match` required).
#[utoipa::path(delete, path = "/admin/v1/environments/{env}/apis/{api}", tag = "apis",
    params(("env" = String, Path, description = "environment name"),
        ("api" = String, Path, description = "API identifier"),
        ("If-Match" = String, Header, description = "the ETag of the API as last read")),
    responses((status = 204, description = "deleted"),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn delete(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path((env, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    let current = find(&state, &env, &id).await?;
    let before = ApiView::from(&current);
    check_if_match(&headers, &before)?;
    if !state.core.delete_api_if(&current).await? {
        return Err(changed_since());
    }
    audit(
        &state,
        &c,
        "api.delete",
        Some(&env),
        &id,
        json_of(&before),
        None,
    )
    .await;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}
