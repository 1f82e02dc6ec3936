//! Refresh JWTs of the bearer exchange: issue (the token in the response,
//! once), list (metadata only), revoke.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tollgate_core::model::RefreshJwtRecord;
use tollgate_core::service::admin::trust::Revoked;

use super::auth::{Caller, Read, Secrets, Write};
use super::common::{
    AdminError, ErrorBody, JsonBody, ListQuery, QueryOf, no_store, page_json, paginate,
};
use super::trail::{audit, json_of};
use crate::AppState;

/// A refresh JWT's record (never the token).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RefreshJwtView {
    /// Environment.
    pub env: String,
    /// Its `jti`.
    pub jti: String,
    /// The client it acts for.
    pub client_id: String,
    /// The API its access tokens are for.
    pub audience: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds, once revoked.
    pub revoked_at: Option<i64>,
}

impl From<&RefreshJwtRecord> for RefreshJwtView {
    fn from(r: &RefreshJwtRecord) -> Self {
        Self {
            env: r.env.clone(),
            jti: r.jti.clone(),
            client_id: r.client_id.clone(),
            audience: r.audience.clone(),
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// A page of refresh JWTs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefreshJwtPage {
    /// The items.
    pub items: Vec<RefreshJwtView>,
    /// The next page's cursor; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A refresh JWT to issue.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshJwtIssue {
    /// The client it acts for.
    pub client_id: String,
    /// The API (default: the client's only one).
    #[serde(default)]
    pub api: Option<String>,
    /// Lifetime in seconds (default 365 days).
    #[serde(default)]
    pub ttl: Option<u64>,
}

/// An issued refresh JWT: the token is shown here only.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedRefreshJwt {
    /// Its record.
    pub refresh_jwt: RefreshJwtView,
    /// The token.
    pub token: String,
}

/// Lists an environment's refresh JWTs.
#[utoipa::path(get, path = "/admin/v1/environments/{env}/refresh-jwts", tag = "refresh-jwts",
    params(("env" = String, Path, description = "environment name"), ListQuery),
    responses((status = 200, description = "a page of records", body = RefreshJwtPage),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn list(
    State(state): State<AppState>,
    _c: Caller<Read>,
    Path(env): Path<String>,
    QueryOf(q): QueryOf<ListQuery>,
) -> Result<Response, AdminError> {
    let recs = state.core.list_refresh_jwts(&env).await?;
    let (page, next) = paginate(recs, |r| r.jti.clone(), &q)?;
    let views: Vec<RefreshJwtView> = page.iter().map(RefreshJwtView::from).collect();
    Ok(page_json(&views, next))
}

/// Issues a refresh JWT for a client; the token is in the response, once.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/refresh-jwts", tag = "refresh-jwts",
    request_body = RefreshJwtIssue,
    params(("env" = String, Path, description = "environment name"),
        ("Idempotency-Key" = Option<String>, Header, description = "replays the first response (token included) for 24 h, from this instance's memory")),
    responses((status = 201, description = "issued", body = IssuedRefreshJwt),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write", "admin:secrets"])))]
pub async fn issue(
    State(state): State<AppState>,
    c: Caller<Secrets>,
    Path(env): Path<String>,
    headers: HeaderMap,
    body: JsonBody<RefreshJwtIssue>,
) -> Result<Response, AdminError> {
    let idem = super::idempotency_of(&state);
    let what = format!("POST /admin/v1/environments/{env}/refresh-jwts");
    super::client::guarded(&state, &c, &env, &body.value.client_id).await?;
    super::idempotency::once(&idem, &c.client_id, &headers, &what, &body.raw, async {
        let b = body.value;
        let (token, rec) = state
            .core
            .issue_refresh_jwt(
                &env,
                &b.client_id,
                b.api.as_deref(),
                b.ttl.unwrap_or(365 * 86_400),
            )
            .await?;
        let view = RefreshJwtView::from(&rec);
        audit(
            &state,
            &c,
            "refresh_jwt.issue",
            Some(&env),
            &rec.jti,
            None,
            json_of(&view),
        )
        .await;
        Ok(no_store(
            (
                StatusCode::CREATED,
                axum::Json(IssuedRefreshJwt {
                    refresh_jwt: view,
                    token: token.expose_secret().to_string(),
                }),
            )
                .into_response(),
        ))
    })
    .await
}

/// Revokes a refresh JWT by its `jti`; where an incumbent is trusted, an
/// id tollgate did not issue is put on the deny list for the incumbent's
/// tokens instead.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/refresh-jwts/{jti}/revoke", tag = "refresh-jwts",
    params(("env" = String, Path, description = "environment name"),
        ("jti" = String, Path, description = "the token's id")),
    responses((status = 204, description = "revoked"),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn revoke(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path((env, jti)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let kind = state.core.revoke_refresh_token(&env, &jti).await?;
    let after = match kind {
        Revoked::Issued => serde_json::json!({"revoked": "issued"}),
        Revoked::Foreign => serde_json::json!({"revoked": "foreign"}),
    };
    audit(
        &state,
        &c,
        "refresh_jwt.revoke",
        Some(&env),
        &jti,
        None,
        Some(after),
    )
    .await;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}
