//! RFC 7009 token revocation: `POST /oauth/revoke` with `token` (and an
//! optional `token_type_hint`), the caller authenticated as a client. A
//! revoked access token is denied by introspection until it would have
//! expired. Revoking is idempotent, and an unknown or invalid token is
//! answered 200 as §2.2 asks; a token of another client is refused.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{OAuthError, caller_and_token, map_grant_error, respond};
use crate::AppState;
use crate::contracts::common::Source;
use crate::contracts::no_store;
use crate::env::Env;

pub(super) async fn revoke(
    State(state): State<AppState>,
    Env(env): Env,
    Source(source): Source,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let (caller, token) = caller_and_token(&state, &env, source, &headers, body).await?;
        state
            .core
            .revoke(&env, &caller, &token)
            .await
            .map_err(|e| map_grant_error(e, false))?;
        let resp = StatusCode::OK.into_response();
        Ok::<_, OAuthError>((no_store(resp), "revoked", Some(caller.client_id.clone())))
    }
    .await;
    respond(&env, "revoke", result)
}
