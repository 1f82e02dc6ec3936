//! The deny list for gates in other processes: `GET /gate/deny-list`
//! (under `/e/{env}` for another environment), the caller authenticated as
//! a client with the introspect capability (HTTP Basic). The answer is
//! `{"revoked": [jti, …]}`, the ids of the environment's access tokens
//! revoked and not yet expired, with an `ETag` (the server's store revision)
//! so that a poller sending `If-None-Match` gets a bodiless 304 while
//! nothing changed. tollgate's tower layer polls it.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{OAuthError, map_grant_error, presented_credentials, respond};
use crate::AppState;
use crate::contracts::common::Source;
use crate::contracts::no_store;
use crate::env::Env;
use crate::params::Params;

/// Path of the deny list, relative to the environment.
pub const DENY_LIST_PATH: &str = "/gate/deny-list";

pub(super) async fn deny_list(
    State(state): State<AppState>,
    Env(env): Env,
    Source(source): Source,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let presented = presented_credentials(&headers, &mut Params::default())?;
        let caller = state
            .core
            .authenticate_from(&env, &presented.client_id, &presented.secret, source)
            .await
            .map_err(|e| map_grant_error(e, presented.basic))?;
        let client_id = Some(caller.client_id.clone());
        // The revision read before the list: a change landing in between
        // moves the revision again, so the next poll refetches.
        let etag = format!("\"r{}\"", state.core.revision());
        let Some(revoked) = state
            .core
            .deny_list(&env, &caller)
            .await
            .map_err(|e| map_grant_error(e, presented.basic))?
        else {
            return Err(OAuthError {
                client_id,
                ..OAuthError::new(
                    StatusCode::FORBIDDEN,
                    "unauthorized_client",
                    "reading the deny list needs a client with the introspect capability",
                )
            });
        };
        let unchanged = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
        let mut resp = if unchanged {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut body = json!({ "revoked": revoked }).to_string();
            body.push('\n');
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        };
        if let Ok(v) = HeaderValue::from_str(&etag) {
            resp.headers_mut().insert(header::ETAG, v);
        }
        let code = if unchanged { "unchanged" } else { "listed" };
        Ok::<_, OAuthError>((no_store(resp), code, client_id))
    }
    .await;
    respond(&env, "deny_list", result)
}
