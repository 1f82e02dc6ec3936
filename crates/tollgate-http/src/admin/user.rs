//! Users of a client: list by client, create, get, set-password,
//! disable/enable, delete. A view never holds the password hash.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tollgate_core::model::User;
use tollgate_core::service::UserPassword;

use super::auth::{Caller, Read, Secrets, Write};
use super::common::{
    AdminError, ErrorBody, JsonBody, ListQuery, QueryOf, check_if_match, no_store, page_json,
    paginate, with_etag,
};
use super::trail::{audit, json_of};
use crate::AppState;

/// A user as the admin API shows it (no password hash).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    /// Environment.
    pub env: String,
    /// The client it belongs to.
    pub client_id: String,
    /// Login name.
    pub username: String,
    /// Its roles (empty: its client's).
    pub roles: BTreeSet<String>,
    /// A disabled user can neither log in nor refresh.
    pub enabled: bool,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            env: u.env.clone(),
            client_id: u.client_id.clone(),
            username: u.username.clone(),
            roles: u.roles.clone(),
            enabled: u.enabled,
            created_at: u.created_at,
        }
    }
}

/// A page of users.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserPage {
    /// The items.
    pub items: Vec<UserView>,
    /// The next page's cursor; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A new user: `password`, or `password_md5` (32 hex digits: an import
/// whose real password is unknown), not both.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    /// Login name.
    pub username: String,
    /// The password.
    #[serde(default)]
    pub password: Option<String>,
    /// `md5_hex(password)`.
    #[serde(default)]
    pub password_md5: Option<String>,
    /// Roles (empty: its client's).
    #[serde(default)]
    pub roles: BTreeSet<String>,
}

/// A new password (`password` or `password_md5`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The password.
    #[serde(default)]
    pub password: Option<String>,
    /// `md5_hex(password)`.
    #[serde(default)]
    pub password_md5: Option<String>,
    /// Keep the user's sessions (default: they end).
    #[serde(default)]
    pub keep_sessions: bool,
}

fn password_of(plain: Option<String>, md5: Option<String>) -> Result<UserPassword, AdminError> {
    match (plain, md5) {
        (Some(p), None) => Ok(UserPassword::Plain(SecretString::from(p))),
        (None, Some(h)) => Ok(UserPassword::Md5Hex(SecretString::from(h))),
        _ => Err(AdminError::invalid(
            "give exactly one of password and password_md5",
        )),
    }
}

/// Lists the users of a client.
#[utoipa::path(get, path = "/admin/v1/environments/{env}/clients/{client_id}/users", tag = "users",
    params(("env" = String, Path, description = "environment name"),
        ("client_id" = String, Path, description = "client id"), ListQuery),
    responses((status = 200, description = "a page of users", body = UserPage),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn list(
    State(state): State<AppState>,
    _c: Caller<Read>,
    Path((env, client)): Path<(String, String)>,
    QueryOf(q): QueryOf<ListQuery>,
) -> Result<Response, AdminError> {
    state.core.get_client(&env, &client).await?;
    let users = state.core.list_users(&env, Some(&client)).await?;
    let (page, next) = paginate(users, |u| u.username.clone(), &q)?;
    let views: Vec<UserView> = page.iter().map(UserView::from).collect();
    Ok(page_json(&views, next))
}

/// Creates a user of a client.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/clients/{client_id}/users", tag = "users",
    request_body = UserCreate,
    params(("env" = String, Path, description = "environment name"),
        ("client_id" = String, Path, description = "client id"),
        ("Idempotency-Key" = Option<String>, Header, description = "replays the first response for 24 h")),
    responses((status = 201, description = "created", body = UserView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write", "admin:secrets"])))]
pub async fn create(
    State(state): State<AppState>,
    c: Caller<Secrets>,
    Path((env, client)): Path<(String, String)>,
    headers: HeaderMap,
    body: JsonBody<UserCreate>,
) -> Result<Response, AdminError> {
    let idem = super::idempotency_of(&state);
    let what = format!("POST /admin/v1/environments/{env}/clients/{client}/users");
    super::idempotency::once(&idem, &c.client_id, &headers, &what, &body.raw, async {
        let b = body.value;
        let password = password_of(b.password, b.password_md5)?;
        let user = state
            .core
            .create_user_with_roles(&env, &client, &b.username, password, b.roles)
            .await?;
        let view = UserView::from(&user);
        audit(
            &state,
            &c,
            "user.create",
            Some(&env),
            &user.username,
            None,
            json_of(&view),
        )
        .await;
        Ok(with_etag(StatusCode::CREATED, &view))
    })
    .await
}

/// Reads a user (with its `ETag`).
#[utoipa::path(get, path = "/admin/v1/environments/{env}/users/{username}", tag = "users",
    params(("env" = String, Path, description = "environment name"),
        ("username" = String, Path, description = "login name (percent-encoded)")),
    responses((status = 200, description = "the user", body = UserView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn get(
    State(state): State<AppState>,
    _c: Caller<Read>,
    Path((env, username)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let user = state.core.get_user(&env, &username).await?;
    Ok(with_etag(StatusCode::OK, &UserView::from(&user)))
}

/// Sets a user's password; unless `keep_sessions`, its sessions end.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/users/{username}/password", tag = "users",
    request_body = SetPassword,
    params(("env" = String, Path, description = "environment name"),
        ("username" = String, Path, description = "login name")),
    responses((status = 200, description = "set", body = UserView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write", "admin:secrets"])))]
pub async fn set_password(
    State(state): State<AppState>,
    c: Caller<Secrets>,
    Path((env, username)): Path<(String, String)>,
    body: JsonBody<SetPassword>,
) -> Result<Response, AdminError> {
    let b = body.value;
    let before = UserView::from(&state.core.get_user(&env, &username).await?);
    let password = password_of(b.password, b.password_md5)?;
    let user = state
        .core
        .set_user_password(&env, &username, password, b.keep_sessions)
        .await?;
    let after = UserView::from(&user);
    // The view holds no password: the entry says that it changed, not to what.
    audit(
        &state,
        &c,
        "user.set_password",
        Some(&env),
        &username,
        json_of(&before),
        json_of(&after),
    )
    .await;
    Ok(with_etag(StatusCode::OK, &after))
}

async fn set_enabled(
    state: AppState,
    c: Caller<Write>,
    env: String,
    username: String,
    enabled: bool,
) -> Result<Response, AdminError> {
    let before = UserView::from(&state.core.get_user(&env, &username).await?);
    let user = state
        .core
        .set_user_enabled(&env, &username, enabled)
        .await?;
    let after = UserView::from(&user);
    let action = if enabled {
        "user.enable"
    } else {
        "user.disable"
    };
    audit(
        &state,
        &c,
        action,
        Some(&env),
        &username,
        json_of(&before),
        json_of(&after),
    )
    .await;
    Ok(with_etag(StatusCode::OK, &after))
}

/// Disables a user (no logins, no refreshes).
#[utoipa::path(post, path = "/admin/v1/environments/{env}/users/{username}/disable", tag = "users",
    params(("env" = String, Path, description = "environment name"),
        ("username" = String, Path, description = "login name")),
    responses((status = 200, description = "disabled", body = UserView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn disable(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path((env, username)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    set_enabled(state, c, env, username, false).await
}

/// Enables a user again.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/users/{username}/enable", tag = "users",
    params(("env" = String, Path, description = "environment name"),
        ("username" = String, Path, description = "login name")),
    responses((status = 200, description = "enabled", body = UserView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn enable(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path((env, username)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    set_enabled(state, c, env, username, true).await
}

/// Deletes a user and revokes its sessions (`If-Match` required).
#[utoipa::path(delete, path = "/admin/v1/environments/{env}/users/{username}", tag = "users",
    params(("env" = String, Path, description = "environment name"),
        ("username" = String, Path, description = "login name"),
        ("If-Match" = String, Header, description = "the ETag of the user as last read")),
    responses((status = 204, description = "deleted"),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn delete(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path((env, username)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    let before = UserView::from(&state.core.get_user(&env, &username).await?);
    check_if_match(&headers, &before)?;
    state.core.delete_user(&env, &username).await?;
    audit(
        &state,
        &c,
        "user.delete",
        Some(&env),
        &username,
        json_of(&before),
        None,
    )
    .await;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}
