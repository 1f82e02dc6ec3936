//! Users of a client: list by client, create, get, set-password, set-roles,
//! disable/enable, delete, and import in bulk (an incumbent's users with
//! their hashes, CSV or JSON lines, all or none). A view never holds the
//! password hash.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tollgate_core::crypto::imported::HashInput;
use tollgate_core::model::User;
use tollgate_core::service::UserPassword;
use tollgate_core::service::admin::user_import::{ImportFormat, parse_line};

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
    super::client::guarded(&state, &c, &env, &client).await?;
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
    let current = state.core.get_user(&env, &username).await?;
    let before = UserView::from(&current);
    check_if_match(&headers, &before)?;
    if !state.core.delete_user_if(&current).await? {
        return Err(super::common::changed_since());
    }
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

/// A user's roles.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRoles {
    /// The roles (Spring authorities); empty: its client's count.
    pub roles: BTreeSet<String>,
}

/// Replaces a user's roles.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/users/{username}/roles", tag = "users",
    request_body = SetRoles,
    params(("env" = String, Path, description = "environment name"),
        ("username" = String, Path, description = "login name")),
    responses((status = 200, description = "set", body = UserView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn set_roles(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path((env, username)): Path<(String, String)>,
    body: JsonBody<SetRoles>,
) -> Result<Response, AdminError> {
    let before = UserView::from(&state.core.get_user(&env, &username).await?);
    let user = state
        .core
        .set_user_roles(&env, &username, body.value.roles)
        .await?;
    let after = UserView::from(&user);
    audit(
        &state,
        &c,
        "user.set_roles",
        Some(&env),
        &username,
        json_of(&before),
        json_of(&after),
    )
    .await;
    Ok(with_etag(StatusCode::OK, &after))
}

/// The largest import body: about half a million lines of bcrypt hashes.
pub const MAX_IMPORT: usize = 64 * 1024 * 1024;

/// `?hashed=&format=` of an import.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// What the hashes are of, unless a line says: `password` (default) or
    /// `md5` (md5_hex of the password).
    pub hashed: Option<String>,
}

/// What an import did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Imported {
    /// How many users were created.
    pub imported: usize,
    /// Their client.
    pub client_id: String,
    /// Environment.
    pub env: String,
}

/// Imports an incumbent's users with their password hashes as it stored
/// them (MD5, bcrypt, argon2), all or none: the body is CSV
/// (`username,hash[,input]`, `Content-Type: text/csv`) or JSON lines
/// (`{"username","hash","input"}`, `Content-Type: application/x-ndjson` or
/// `application/jsonl`). A bad line is refused with its number (400) and
/// nothing is written.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/clients/{client_id}/users/import", tag = "users",
    request_body(content(
        (String = "text/csv"),
        (String = "application/x-ndjson"),
        (String = "application/jsonl"))),
    params(("env" = String, Path, description = "environment name"),
        ("client_id" = String, Path, description = "client id"), ImportQuery),
    responses((status = 201, description = "imported", body = Imported),
        (status = "4XX", description = "refused (a bad line: 400 naming it)", body = ErrorBody)),
    security(("admin_token" = ["admin:write", "admin:secrets"])))]
pub async fn import(
    State(state): State<AppState>,
    c: Caller<Secrets>,
    Path((env, client)): Path<(String, String)>,
    QueryOf(q): QueryOf<ImportQuery>,
    req: axum::extract::Request,
) -> Result<Response, AdminError> {
    let media = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let format = match media.as_str() {
        "text/csv" => ImportFormat::Csv,
        "application/x-ndjson" | "application/jsonl" | "application/json-lines" => {
            ImportFormat::Jsonl
        }
        _ => {
            return Err(AdminError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request",
                "send the users as text/csv or application/x-ndjson",
            ));
        }
    };
    let input: HashInput = q
        .hashed
        .as_deref()
        .unwrap_or("password")
        .parse()
        .map_err(|e: String| AdminError::invalid(format!("hashed: {e}")))?;
    super::client::guarded(&state, &c, &env, &client).await?;
    let raw = axum::body::to_bytes(req.into_body(), MAX_IMPORT)
        .await
        .map_err(|_| {
            AdminError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                format!("the body is larger than {MAX_IMPORT} bytes"),
            )
        })?;
    let text = std::str::from_utf8(&raw)
        .map_err(|e| AdminError::invalid(format!("the body is not UTF-8: {e}")))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(row) = parse_line(format, i + 1, line, input)? {
            rows.push(row);
        }
    }
    let n = state.core.import_users(&env, &client, rows).await?;
    let out = Imported {
        imported: n,
        client_id: client.clone(),
        env: env.clone(),
    };
    audit(
        &state,
        &c,
        "user.import",
        Some(&env),
        &client,
        None,
        json_of(&out),
    )
    .await;
    Ok(no_store(
        (StatusCode::CREATED, axum::Json(out)).into_response(),
    ))
}
