//! `/admin/v1/environments/{env}/clients`: list, get, create (the secret in
//! the response, once), update, rotate-secret with grace, revoke-secret,
//! disable/enable, delete. No response but those of create and
//! rotate-secret holds a secret; views list secrets by id and times only.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tollgate_core::model::{ApiGrant, Capability, Client, GrantType};
use tollgate_core::service::admin::bootstrap::ADMIN_API;
use tollgate_core::service::{ClientUpdate, NewClient};

use super::api::obligation_of;
use super::auth::{Caller, Read, Secrets, Write};
use super::common::{
    AdminError, ErrorBody, JsonBody, ListQuery, QueryOf, changed_since, check_if_match, no_store,
    page_json, paginate, with_etag,
};
use super::double_option;
use super::trail::{audit, json_of};
use crate::AppState;

/// An API a client holds, with the packages or permissions it holds there.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantView {
    /// The API identifier.
    pub api: String,
    /// Package or permission names (empty: none).
    #[serde(default)]
    pub grants: Vec<String>,
}

/// A stored secret, named: never the secret, never its hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SecretView {
    /// Its id.
    pub id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds after which it stops working (a rotation's grace).
    pub expires_at: Option<i64>,
}

/// A client as the admin API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClientView {
    /// Environment.
    pub env: String,
    /// The client id.
    pub client_id: String,
    /// Human name.
    pub name: String,
    /// A disabled client gets no tokens.
    pub enabled: bool,
    /// A public client has no secret.
    pub public: bool,
    /// APIs it holds.
    pub apis: Vec<GrantView>,
    /// Grant types it may use.
    pub grant_types: Vec<String>,
    /// Its own access-token lifetime, seconds.
    pub token_lifetime: Option<u64>,
    /// Claims merged into its tokens.
    #[schema(value_type = Object)]
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// Extra powers (`introspect`).
    pub capabilities: Vec<String>,
    /// Its own obligation, if any.
    pub obligation: Option<String>,
    /// Roles (Spring authorities).
    pub roles: BTreeSet<String>,
    /// Its secrets (ids and times only).
    pub secrets: Vec<SecretView>,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<&Client> for ClientView {
    fn from(c: &Client) -> Self {
        Self {
            env: c.env.clone(),
            client_id: c.client_id.clone(),
            name: c.name.clone(),
            enabled: c.enabled,
            public: c.secrets.is_empty(),
            apis: c
                .apis
                .iter()
                .map(|g| GrantView {
                    api: g.api.clone(),
                    grants: g.grants.clone(),
                })
                .collect(),
            grant_types: c
                .grant_types
                .iter()
                .map(|g| g.as_str().to_string())
                .collect(),
            token_lifetime: c.token_lifetime,
            claims: c.extra_claims.clone(),
            capabilities: c
                .capabilities
                .iter()
                .map(|c| match c {
                    Capability::Introspect => "introspect".to_string(),
                })
                .collect(),
            obligation: c.obligation.map(|o| o.to_string()),
            roles: c.roles.clone(),
            secrets: c
                .secrets
                .iter()
                .map(|s| SecretView {
                    id: s.id.clone(),
                    created_at: s.created_at,
                    expires_at: s.expires_at,
                })
                .collect(),
            created_at: c.created_at,
        }
    }
}

/// A page of clients.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientPage {
    /// The items.
    pub items: Vec<ClientView>,
    /// The next page's cursor; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A client with a secret to show once (create, rotate-secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientWithSecret {
    /// The client.
    pub client: ClientView,
    /// Its new secret: shown here only, never again. Absent for a public client.
    pub client_secret: Option<String>,
}

/// A new client. Its secret is generated (imported secrets: the CLI).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCreate {
    /// Human name.
    pub name: String,
    /// Its id (generated when absent).
    #[serde(default)]
    pub client_id: Option<String>,
    /// APIs it holds.
    #[serde(default)]
    pub apis: Vec<GrantView>,
    /// Grant types (default `client_credentials`).
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// Its own access-token lifetime, seconds.
    #[serde(default)]
    pub token_lifetime: Option<u64>,
    /// Claims merged into its tokens.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// Extra powers (`introspect`).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Its own obligation.
    #[serde(default)]
    pub obligation: Option<String>,
    /// Roles.
    #[serde(default)]
    pub roles: BTreeSet<String>,
    /// A public client (no secret; user grants only).
    #[serde(default)]
    pub public: bool,
}

/// Changes to a client; an absent field stays as it is.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    /// Human name.
    #[serde(default)]
    pub name: Option<String>,
    /// APIs it holds (replaces them).
    #[serde(default)]
    pub apis: Option<Vec<GrantView>>,
    /// Grant types (replaces them).
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    /// Its own lifetime; `null` inherits its API's again.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub token_lifetime: Option<Option<u64>>,
    /// Claims (replaces them).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub claims: Option<serde_json::Map<String, serde_json::Value>>,
    /// Extra powers (replaces them).
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    /// Its own obligation; `null` or `off` inherits its APIs' again.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub obligation: Option<Option<String>>,
    /// Roles (replaces them).
    #[serde(default)]
    pub roles: Option<BTreeSet<String>>,
}

/// A rotation: a new secret; the current ones keep working for `grace` seconds.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// Seconds the current secrets keep working (default 86400).
    #[serde(default)]
    pub grace: Option<u64>,
}

/// Whether a client holds the admin API (see `Caller::guard_admin_api`).
pub(super) fn holds_admin(c: &Client) -> bool {
    c.apis.iter().any(|g| g.api == ADMIN_API)
}

/// The client `id`, refused to a caller limited to environments when it
/// holds the admin API (the change would reach beyond its limit).
pub(super) async fn guarded<N>(
    state: &AppState,
    c: &Caller<N>,
    env: &str,
    id: &str,
) -> Result<Client, AdminError> {
    let client = state.core.get_client(env, id).await?;
    c.guard_admin_api(env, holds_admin(&client))?;
    Ok(client)
}

fn grants_of(g: Vec<GrantView>) -> Vec<ApiGrant> {
    g.into_iter()
        .map(|g| ApiGrant {
            api: g.api,
            grants: g.grants,
        })
        .collect()
}

fn grant_types_of(g: Vec<String>) -> Result<BTreeSet<GrantType>, AdminError> {
    Ok(g.iter()
        .map(|g| g.parse::<GrantType>())
        .collect::<Result<_, _>>()?)
}

fn capabilities_of(c: Vec<String>) -> Result<BTreeSet<Capability>, AdminError> {
    c.iter()
        .map(|c| match c.as_str() {
            "introspect" => Ok(Capability::Introspect),
            other => Err(AdminError::invalid(format!(
                "unknown capability '{other}' (known: introspect)"
            ))),
        })
        .collect()
}

fn with_secret(status: StatusCode, client: &Client, secret: Option<&SecretString>) -> Response {
    no_store(
        (
            status,
            axum::Json(ClientWithSecret {
                client: ClientView::from(client),
                client_secret: secret.map(|s| s.expose_secret().to_string()),
            }),
        )
            .into_response(),
    )
}

/// Lists the clients of an environment.
#[utoipa::path(get, path = "/admin/v1/environments/{env}/clients", tag = "clients",
    params(("env" = String, Path, description = "environment name"), ListQuery),
    responses((status = 200, description = "a page of clients", body = ClientPage),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn list(
    State(state): State<AppState>,
    _c: Caller<Read>,
    Path(env): Path<String>,
    QueryOf(q): QueryOf<ListQuery>,
) -> Result<Response, AdminError> {
    let clients = state.core.list_clients(&env).await?;
    let (page, next) = paginate(clients, |c| c.client_id.clone(), &q)?;
    let views: Vec<ClientView> = page.iter().map(ClientView::from).collect();
    Ok(page_json(&views, next))
}

/// Reads a client (with its `ETag`).
#[utoipa::path(get, path = "/admin/v1/environments/{env}/clients/{client_id}", tag = "clients",
    params(("env" = String, Path, description = "environment name"),
        ("client_id" = String, Path, description = "client id")),
    responses((status = 200, description = "the client", body = ClientView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn get(
    State(state): State<AppState>,
    _c: Caller<Read>,
    Path((env, id)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let client = state.core.get_client(&env, &id).await?;
    Ok(with_etag(StatusCode::OK, &ClientView::from(&client)))
}

/// Creates a client; the response holds its secret, shown once.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/clients", tag = "clients",
    request_body = ClientCreate,
    params(("env" = String, Path, description = "environment name"),
        ("Idempotency-Key" = Option<String>, Header, description = "replays the first response (secret included) for 24 h, from this instance's memory")),
    responses((status = 201, description = "created, with its secret", body = ClientWithSecret),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write", "admin:secrets"])))]
pub async fn create(
    State(state): State<AppState>,
    c: Caller<Secrets>,
    Path(env): Path<String>,
    headers: HeaderMap,
    body: JsonBody<ClientCreate>,
) -> Result<Response, AdminError> {
    let idem = super::idempotency_of(&state);
    let what = format!("POST /admin/v1/environments/{env}/clients");
    c.guard_admin_api(&env, body.value.apis.iter().any(|g| g.api == ADMIN_API))?;
    super::idempotency::once(&idem, &c.client_id, &headers, &what, &body.raw, async {
        let b = body.value;
        let (client, secret) = state
            .core
            .create_client(NewClient {
                env: env.clone(),
                name: b.name,
                client_id: b.client_id,
                client_secret: None,
                apis: grants_of(b.apis),
                grant_types: grant_types_of(b.grant_types)?,
                token_lifetime: b.token_lifetime,
                extra_claims: b.claims,
                capabilities: capabilities_of(b.capabilities)?,
                obligation: obligation_of(b.obligation)?,
                roles: b.roles,
                public: b.public,
            })
            .await?;
        let view = ClientView::from(&client);
        audit(
            &state,
            &c,
            "client.create",
            Some(&env),
            &client.client_id,
            None,
            json_of(&view),
        )
        .await;
        Ok(with_secret(StatusCode::CREATED, &client, secret.as_ref()))
    })
    .await
}

/// Changes a client in place (`If-Match` required). Secrets and the
/// enabled flag have routes of their own.
#[utoipa::path(patch, path = "/admin/v1/environments/{env}/clients/{client_id}", tag = "clients",
    request_body = ClientPatch,
    params(("env" = String, Path, description = "environment name"),
        ("client_id" = String, Path, description = "client id"),
        ("If-Match" = String, Header, description = "the ETag of the client as last read")),
    responses((status = 200, description = "changed", body = ClientView),
        (status = "4XX", description = "refused (412, 428: see If-Match)", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn update(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path((env, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: JsonBody<ClientPatch>,
) -> Result<Response, AdminError> {
    let current = guarded(&state, &c, &env, &id).await?;
    let before = ClientView::from(&current);
    check_if_match(&headers, &before)?;
    let b = body.value;
    c.guard_admin_api(&env, b.apis.iter().flatten().any(|g| g.api == ADMIN_API))?;
    let change = ClientUpdate {
        name: b.name,
        apis: b.apis.map(grants_of),
        grant_types: b.grant_types.map(grant_types_of).transpose()?,
        token_lifetime: b.token_lifetime,
        extra_claims: b.claims,
        capabilities: b.capabilities.map(capabilities_of).transpose()?,
        obligation: b.obligation.map(obligation_of).transpose()?,
        roles: b.roles,
    };
    let client = state
        .core
        .update_client_if(&current, change)
        .await?
        .ok_or_else(changed_since)?;
    let after = ClientView::from(&client);
    audit(
        &state,
        &c,
        "client.update",
        Some(&env),
        &id,
        json_of(&before),
        json_of(&after),
    )
    .await;
    Ok(with_etag(StatusCode::OK, &after))
}

/// Rotates the client's secret: a new one (in the response, once); the
/// current ones keep working for `grace` seconds.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/clients/{client_id}/rotate-secret", tag = "clients",
    request_body = RotateSecret,
    params(("env" = String, Path, description = "environment name"),
        ("client_id" = String, Path, description = "client id")),
    responses((status = 200, description = "rotated, with the new secret", body = ClientWithSecret),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write", "admin:secrets"])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    c: Caller<Secrets>,
    Path((env, id)): Path<(String, String)>,
    body: JsonBody<RotateSecret>,
) -> Result<Response, AdminError> {
    let before = ClientView::from(&guarded(&state, &c, &env, &id).await?);
    let grace = body.value.grace.unwrap_or(86_400);
    let (secret, client) = state.core.rotate_secret(&env, &id, grace).await?;
    let after = ClientView::from(&client);
    audit(
        &state,
        &c,
        "client.rotate_secret",
        Some(&env),
        &id,
        json_of(&before),
        json_of(&after),
    )
    .await;
    Ok(with_secret(StatusCode::OK, &client, Some(&secret)))
}

/// Ends every rotation's grace: only the newest secret keeps working.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/clients/{client_id}/revoke-secret", tag = "clients",
    params(("env" = String, Path, description = "environment name"),
        ("client_id" = String, Path, description = "client id")),
    responses((status = 200, description = "older secrets revoked", body = ClientView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write", "admin:secrets"])))]
pub async fn revoke_secret(
    State(state): State<AppState>,
    c: Caller<Secrets>,
    Path((env, id)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let before = ClientView::from(&guarded(&state, &c, &env, &id).await?);
    let client = state.core.revoke_all_but_newest_secret(&env, &id).await?;
    let after = ClientView::from(&client);
    audit(
        &state,
        &c,
        "client.revoke_secret",
        Some(&env),
        &id,
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
    id: String,
    enabled: bool,
) -> Result<Response, AdminError> {
    let before = ClientView::from(&guarded(&state, &c, &env, &id).await?);
    state.core.set_client_enabled(&env, &id, enabled).await?;
    let after = ClientView::from(&state.core.get_client(&env, &id).await?);
    let action = if enabled {
        "client.enable"
    } else {
        "client.disable"
    };
    audit(
        &state,
        &c,
        action,
        Some(&env),
        &id,
        json_of(&before),
        json_of(&after),
    )
    .await;
    Ok(with_etag(StatusCode::OK, &after))
}

/// Disables a client: no more tokens, its tokens introspect inactive.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/clients/{client_id}/disable", tag = "clients",
    params(("env" = String, Path, description = "environment name"),
        ("client_id" = String, Path, description = "client id")),
    responses((status = 200, description = "disabled", body = ClientView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn disable(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path((env, id)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    set_enabled(state, c, env, id, false).await
}

/// Enables a client again.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/clients/{client_id}/enable", tag = "clients",
    params(("env" = String, Path, description = "environment name"),
        ("client_id" = String, Path, description = "client id")),
    responses((status = 200, description = "enabled", body = ClientView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn enable(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path((env, id)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    set_enabled(state, c, env, id, true).await
}

/// Deletes a client with its users, revoking its refresh JWTs and sessions
/// (`If-Match` required).
#[utoipa::path(delete, path = "/admin/v1/environments/{env}/clients/{client_id}", tag = "clients",
    params(("env" = String, Path, description = "environment name"),
        ("client_id" = String, Path, description = "client id"),
        ("If-Match" = String, Header, description = "the ETag of the client as last read")),
    responses((status = 204, description = "deleted"),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn delete(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path((env, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    let current = guarded(&state, &c, &env, &id).await?;
    let before = ClientView::from(&current);
    check_if_match(&headers, &before)?;
    if !state.core.delete_client_if(&current).await? {
        return Err(changed_since());
    }
    audit(
        &state,
        &c,
        "client.delete",
        Some(&env),
        &id,
        json_of(&before),
        None,
    )
    .await;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}
