//! Introspection of any access token of an environment (RFC 7662's answer,
//! without a calling client).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::{Caller, Read};
use super::common::{AdminError, ErrorBody, JsonBody, no_store};
use crate::AppState;

/// A token to introspect.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntrospectRequest {
    /// The access token.
    pub token: String,
}

/// RFC 7662's answer: `{"active": false}` alone, or the token's claims.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Introspection {
    /// Whether the token is active.
    pub active: bool,
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Audience (a string or a list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
    /// Expiry, unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issued at, unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Introspects any access token of the environment.
#[utoipa::path(post, path = "/admin/v1/environments/{env}/introspect", tag = "tokens",
    request_body = IntrospectRequest,
    params(("env" = String, Path, description = "environment name")),
    responses((status = 200, description = "the verdict", body = Introspection),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn introspect(
    State(state): State<AppState>,
    _c: Caller<Read>,
    Path(env): Path<String>,
    body: JsonBody<IntrospectRequest>,
) -> Result<Response, AdminError> {
    let claims = state.core.introspect_any(&env, &body.value.token).await?;
    let answer = match claims {
        None => Introspection {
            active: false,
            iss: None,
            sub: None,
            aud: None,
            exp: None,
            iat: None,
            jti: None,
            client_id: None,
            scope: None,
        },
        Some(c) => Introspection {
            active: true,
            iss: Some(c.iss),
            sub: Some(c.sub),
            aud: Some(c.aud),
            exp: Some(c.exp),
            iat: Some(c.iat),
            jti: Some(c.jti),
            client_id: c.client_id,
            scope: c.scope,
        },
    };
    Ok(no_store(axum::Json(answer).into_response()))
}
