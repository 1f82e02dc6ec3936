//! RFC 7662 token introspection: `POST /oauth/introspect` with `token` (and
//! an optional `token_type_hint`), the caller authenticated as a client. An
//! inactive answer is `{"active":false}` and nothing more, whatever the reason.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{OAuthError, caller_and_token, map_grant_error, respond};
use crate::AppState;
use crate::contracts::common::Source;
use crate::contracts::no_store;
use crate::env::Env;

pub(super) async fn introspect(
    State(state): State<AppState>,
    Env(env): Env,
    Source(source): Source,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let (caller, token) = caller_and_token(&state, &env, source, &headers, body).await?;
        let claims = state
            .core
            .introspect(&env, &caller, &token)
            .await
            .map_err(|e| map_grant_error(e, false))?;
        let mut body = match claims {
            None => json!({"active": false}),
            Some(c) => {
                let mut v = json!({
                    "active": true,
                    "token_type": "Bearer",
                    "iss": c.iss,
                    "sub": c.sub,
                    "aud": c.aud,
                    "exp": c.exp,
                    "iat": c.iat,
                    "jti": c.jti,
                });
                if let Some(o) = v.as_object_mut() {
                    if let Some(id) = c.client_id {
                        o.insert("client_id".into(), id.into());
                    }
                    if let Some(scope) = c.scope {
                        o.insert("scope".into(), scope.into());
                    }
                }
                v
            }
        }
        .to_string();
        body.push('\n');
        let resp = (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        Ok::<_, OAuthError>((
            no_store(resp),
            "introspected",
            Some(caller.client_id.clone()),
        ))
    }
    .await;
    respond(&env, "introspect", result)
}
