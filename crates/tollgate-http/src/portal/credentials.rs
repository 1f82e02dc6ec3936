//! A client's refresh JWTs and API keys in the portal
//! (`service/portal_credentials.rs`): the page listing them with the forms
//! that make, rotate (API keys, with a grace) and revoke them, and the
//! handlers of those forms. A new
//! secret is shown once, with copy and download, or handed over through a
//! one-time link instead (`handover.rs`). Each write is in the audit log.

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use tollgate_core::service::AuditEvent;
use tollgate_core::service::portal::SignedIn;

use super::credentials_pages::{self, Shown};
use super::handover;
use super::handover_pages::file_name;
use super::{base, header_of, page, portal_error, redirect, session, signed_post};
use crate::AppState;

#[derive(serde::Deserialize)]
pub(super) struct ClientQuery {
    env: Option<String>,
    client_id: Option<String>,
}

/// The credentials page's address for a client.
fn page_url(state: &AppState, env: &str, client_id: &str) -> String {
    let q =
        serde_urlencoded::to_string([("env", env), ("client_id", client_id)]).unwrap_or_default();
    format!("{}clients/credentials?{q}", base(state))
}

async fn audit(
    state: &AppState,
    who: &SignedIn,
    action: &str,
    env: &str,
    target: &str,
    after: serde_json::Value,
    source: Option<String>,
) {
    let event = AuditEvent {
        actor: format!("partner:{}/{}", who.partner.id, who.account.login),
        action: action.to_string(),
        env: Some(env.to_string()),
        target: target.to_string(),
        source,
        before: None,
        after: Some(after),
    };
    if let Err(e) = state.core.record_audit(event).await {
        tracing::warn!(error = %e, "portal: audit record failed");
    }
}

pub(super) async fn page_of_client(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ClientQuery>,
) -> Response {
    let (who, token) = match session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let env = q.env.unwrap_or_default();
    let client_id = q.client_id.unwrap_or_default();
    let p = &who.partner;
    let client = match state.core.partner_client(p, &env, &client_id).await {
        Ok(c) => c,
        Err(e) => return portal_error(&state, &e),
    };
    let jwts = match state.core.partner_refresh_jwts(p, &env, &client_id).await {
        Ok(j) => j,
        Err(e) => return portal_error(&state, &e),
    };
    let keys = match state.core.partner_api_keys(p, &env, &client_id).await {
        Ok(k) => k,
        Err(e) => return portal_error(&state, &e),
    };
    let csrf = state.core.portal_csrf(&token);
    page(
        StatusCode::OK,
        credentials_pages::client_page(
            base(&state),
            &header_of(&who, &csrf),
            &client,
            &jwts,
            &keys,
        ),
    )
}

/// Shows a new secret once, or hands it over if the form asked.
async fn deliver(
    state: &AppState,
    who: &SignedIn,
    token: &str,
    form: &super::Form,
    shown: Shown<'_>,
    secret: &SecretString,
) -> Response {
    let csrf = state.core.portal_csrf(token);
    if handover::wanted(form) {
        return handover::hand_over(state, who, &csrf, form, shown.label, secret).await;
    }
    page(
        StatusCode::CREATED,
        credentials_pages::shown_once(base(state), &header_of(who, &csrf), &shown),
    )
}

pub(super) async fn issue_refresh_jwt(State(state): State<AppState>, req: Request) -> Response {
    let (who, token, source, form) = match signed_post(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let env = form.get("env").unwrap_or("");
    let client_id = form.get("client_id").unwrap_or("");
    let ttl = form
        .get("ttl")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(0);
    match state
        .core
        .partner_issue_refresh_jwt(&who.partner, env, client_id, form.get("api"), ttl)
        .await
    {
        Ok((jwt, rec)) => {
            audit(
                &state,
                &who,
                "portal.refresh-jwt.issue",
                env,
                client_id,
                serde_json::json!({"jti": rec.jti, "audience": rec.audience, "expires_at": rec.expires_at}),
                source,
            )
            .await;
            let label = format!(
                "a refresh JWT of client {client_id} (environment {env}, API {}, id {})",
                rec.audience, rec.jti
            );
            let file = file_name(&["refresh-jwt", client_id]);
            let back = page_url(&state, env, client_id);
            let shown = Shown {
                title: "Refresh JWT issued",
                label: &label,
                secret: jwt.expose_secret(),
                file: &file,
                usage: "Exchange it for an access token: POST /pub/v2/players/access-token with Authorization: Bearer <refresh JWT>.",
                back: &back,
            };
            deliver(&state, &who, &token, &form, shown, &jwt).await
        }
        Err(e) => portal_error(&state, &e),
    }
}

pub(super) async fn revoke_refresh_jwt(State(state): State<AppState>, req: Request) -> Response {
    let (who, _, source, form) = match signed_post(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let env = form.get("env").unwrap_or("");
    let client_id = form.get("client_id").unwrap_or("");
    let jti = form.get("jti").unwrap_or("");
    match state
        .core
        .partner_revoke_refresh_jwt(&who.partner, env, client_id, jti)
        .await
    {
        Ok(()) => {
            audit(
                &state,
                &who,
                "portal.refresh-jwt.revoke",
                env,
                client_id,
                serde_json::json!({"jti": jti}),
                source,
            )
            .await;
            redirect(&page_url(&state, env, client_id), None)
        }
        Err(e) => portal_error(&state, &e),
    }
}

pub(super) async fn create_api_key(State(state): State<AppState>, req: Request) -> Response {
    let (who, token, source, form) = match signed_post(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let env = form.get("env").unwrap_or("");
    let client_id = form.get("client_id").unwrap_or("");
    let ttl = form
        .get("ttl")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0);
    match state
        .core
        .partner_create_api_key(&who.partner, env, client_id, form.get("name"), ttl)
        .await
    {
        Ok((key, rec)) => {
            audit(
                &state,
                &who,
                "portal.api-key.create",
                env,
                client_id,
                serde_json::json!({"id": rec.id, "name": rec.name, "expires_at": rec.expires_at}),
                source,
            )
            .await;
            let label = format!(
                "an API key of client {client_id} (environment {env}, id tgk_{})",
                rec.id
            );
            let file = file_name(&["api-key", client_id]);
            let back = page_url(&state, env, client_id);
            let shown = Shown {
                title: "API key created",
                label: &label,
                secret: key.expose_secret(),
                file: &file,
                usage: "Send it as the X-API-Key header to the API routes that accept keys.",
                back: &back,
            };
            deliver(&state, &who, &token, &form, shown, &key).await
        }
        Err(e) => portal_error(&state, &e),
    }
}

pub(super) async fn rotate_api_key(State(state): State<AppState>, req: Request) -> Response {
    let (who, token, source, form) = match signed_post(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let env = form.get("env").unwrap_or("");
    let client_id = form.get("client_id").unwrap_or("");
    let id = form.get("id").unwrap_or("");
    let grace = form
        .get("grace")
        .and_then(|g| g.parse::<u64>().ok())
        .unwrap_or(0);
    match state
        .core
        .partner_rotate_api_key(&who.partner, env, client_id, id, grace)
        .await
    {
        Ok((key, new, old)) => {
            audit(
                &state,
                &who,
                "portal.api-key.rotate",
                env,
                client_id,
                serde_json::json!({"id": new.id, "replaces": old.id, "old_expires_at": old.expires_at}),
                source,
            )
            .await;
            let label = format!(
                "an API key of client {client_id} (environment {env}, id tgk_{}, replacing tgk_{})",
                new.id, old.id
            );
            let file = file_name(&["api-key", client_id]);
            let back = page_url(&state, env, client_id);
            let usage = match old.expires_at {
                Some(t) => format!(
                    "The previous key tgk_{} keeps working until {}. Send the new one as the X-API-Key header.",
                    old.id,
                    super::pages::when(t)
                ),
                None => "Send it as the X-API-Key header.".to_string(),
            };
            let shown = Shown {
                title: "API key rotated",
                label: &label,
                secret: key.expose_secret(),
                file: &file,
                usage: &usage,
                back: &back,
            };
            deliver(&state, &who, &token, &form, shown, &key).await
        }
        Err(e) => portal_error(&state, &e),
    }
}

pub(super) async fn revoke_api_key(State(state): State<AppState>, req: Request) -> Response {
    let (who, _, source, form) = match signed_post(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let env = form.get("env").unwrap_or("");
    let client_id = form.get("client_id").unwrap_or("");
    let id = form.get("id").unwrap_or("");
    match state
        .core
        .partner_revoke_api_key(&who.partner, env, client_id, id)
        .await
    {
        Ok(k) => {
            audit(
                &state,
                &who,
                "portal.api-key.revoke",
                env,
                client_id,
                serde_json::json!({"id": k.id}),
                source,
            )
            .await;
            redirect(&page_url(&state, env, client_id), None)
        }
        Err(e) => portal_error(&state, &e),
    }
}
