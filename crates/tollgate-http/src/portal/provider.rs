//! The provider's pages under `provider/` of the portal: sign-in with an
//! admin API token (`service/provider.rs` says why a token and not a
//! password), every partner with its state, clients and waiting package
//! requests, approve/decline and disable/enable in one click (POST forms
//! with the session's CSRF token), and the audit log a page at a time.
//!
//! The session cookie is its own (`tg_provider`, `__Host-` over TLS), so a
//! browser signed in as a partner and as a provider keeps both apart.
//! Writes need `admin:write` in the token the session was opened with;
//! each goes to the audit log with the admin client as actor, under the
//! admin API's action names.

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use tollgate_core::package_request::RequestStatus;
use tollgate_core::service::AuditEvent;
use tollgate_core::service::provider::{ProviderAdmin, ProviderLoginError};
use tollgate_core::{CoreError, StoreError};

use super::cookie::{self, Kind};
use super::provider_pages::{self, PartnerLine};
use super::{
    Form, base, core_error, csrf_refused, error_page, page, pre_session, read_form, redirect,
    secure, with_cookie,
};
use crate::AppState;

/// Entries per audit page.
const AUDIT_PAGE: u32 = 50;

fn login_path(state: &AppState) -> String {
    format!("{}provider/login", base(state))
}

/// The signed-in provider admin with its session token, or the response
/// to give instead (the sign-in page).
async fn admin(state: &AppState, headers: &HeaderMap) -> Result<(ProviderAdmin, String), Response> {
    let Some(token) = cookie::read(headers, Kind::Provider, secure(state)) else {
        return Err(redirect(&login_path(state), None));
    };
    match state.core.provider_session(&token).await {
        Ok(Some(a)) => Ok((a, token)),
        Ok(None) => Err(redirect(
            &login_path(state),
            cookie::set(Kind::Provider, secure(state), "", 0),
        )),
        Err(e) => Err(core_error(state, &e)),
    }
}

/// A provider POST: session, CSRF token, and (`write`) `admin:write`.
async fn admin_post(
    state: &AppState,
    req: Request,
    write: bool,
) -> Result<(ProviderAdmin, String, Option<String>, Form), Response> {
    let (headers, source, form) = read_form(req)
        .await
        .map_err(|s| error_page(state, s, "Request refused", "The form could not be read."))?;
    let (who, token) = admin(state, &headers).await?;
    if !state
        .core
        .portal_csrf_matches(&token, form.get("csrf").unwrap_or(""))
    {
        return Err(csrf_refused(state));
    }
    if write && !who.may_write() {
        return Err(error_page(
            state,
            StatusCode::FORBIDDEN,
            "Not allowed",
            "This admin token has no admin:write: it may look, not change.",
        ));
    }
    Ok((who, token, source, form))
}

async fn record(
    state: &AppState,
    who: &ProviderAdmin,
    action: &str,
    env: Option<String>,
    target: &str,
    source: Option<String>,
    after: serde_json::Value,
) {
    let event = AuditEvent {
        actor: who.session.admin_client.clone(),
        action: action.to_string(),
        env,
        target: target.to_string(),
        source,
        before: None,
        after: Some(after),
    };
    if let Err(e) = state.core.record_audit(event).await {
        tracing::warn!(error = %e, "provider pages: audit record failed");
    }
}

/// `GET provider/login`.
pub(super) async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (pre, set) = match pre_session(&state, &headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let csrf = state.core.portal_csrf(&pre);
    with_cookie(
        page(
            StatusCode::OK,
            provider_pages::login(base(&state), &csrf, None),
        ),
        set,
    )
}

/// `POST provider/login`: an admin token opens a session.
pub(super) async fn login(State(state): State<AppState>, req: Request) -> Response {
    let (headers, _, form) = match read_form(req).await {
        Ok(f) => f,
        Err(s) => return error_page(&state, s, "Request refused", "The form could not be read."),
    };
    let Some(pre) = cookie::read(&headers, Kind::Pre, secure(&state)) else {
        return csrf_refused(&state);
    };
    if !state
        .core
        .portal_csrf_matches(&pre, form.get("csrf").unwrap_or(""))
    {
        return csrf_refused(&state);
    }
    let token = SecretString::from(form.get("token").unwrap_or("").to_string());
    match state.core.provider_login(&token).await {
        Ok(session) => redirect(
            &format!("{}provider/", base(&state)),
            cookie::set(
                Kind::Provider,
                secure(&state),
                session.expose_secret(),
                tollgate_core::service::portal::SESSION_LIFETIME,
            ),
        ),
        Err(e @ (ProviderLoginError::InvalidToken | ProviderLoginError::NotAllowed)) => {
            let csrf = state.core.portal_csrf(&pre);
            page(
                StatusCode::UNAUTHORIZED,
                provider_pages::login(base(&state), &csrf, Some(&e.to_string())),
            )
        }
        Err(ProviderLoginError::Core(e)) => core_error(&state, &e),
    }
}

/// `POST provider/logout`.
pub(super) async fn logout(State(state): State<AppState>, req: Request) -> Response {
    let (_, token, _, _) = match admin_post(&state, req, false).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(e) = state.core.provider_logout(&token).await {
        return core_error(&state, &e);
    }
    redirect(
        &login_path(&state),
        cookie::set(Kind::Provider, secure(&state), "", 0),
    )
}

/// `GET provider/`: partners and waiting requests.
pub(super) async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (who, token) = match admin(&state, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let pending = match state
        .core
        .list_package_requests(None, Some(RequestStatus::Pending))
        .await
    {
        Ok(p) => p,
        Err(e) => return core_error(&state, &e),
    };
    let partners = match state.core.list_partners().await {
        Ok(p) => p,
        Err(e) => return core_error(&state, &e),
    };
    let mut lines = Vec::with_capacity(partners.len());
    for p in partners {
        let clients = match state.core.partner_clients(&p.id).await {
            Ok(c) => c.len(),
            Err(e) => return core_error(&state, &e),
        };
        let waiting = pending.iter().filter(|r| r.partner == p.id).count();
        lines.push(PartnerLine {
            partner: p,
            clients,
            pending: waiting,
        });
    }
    let csrf = state.core.portal_csrf(&token);
    page(
        StatusCode::OK,
        provider_pages::overview(
            base(&state),
            &who.session.admin_client,
            &csrf,
            who.may_write(),
            &lines,
            &pending,
        ),
    )
}

async fn set_enabled(state: AppState, req: Request, enabled: bool) -> Response {
    let (who, _, source, form) = match admin_post(&state, req, true).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = form.get("partner").unwrap_or("");
    if let Err(e) = state.core.set_partner_enabled(id, enabled).await {
        return core_error(&state, &e);
    }
    let action = if enabled {
        "partner.enable"
    } else {
        "partner.disable"
    };
    record(
        &state,
        &who,
        action,
        None,
        id,
        source,
        serde_json::json!({"enabled": enabled}),
    )
    .await;
    redirect(&format!("{}provider/", base(&state)), None)
}

/// `POST provider/partners/disable`: the partner, its accounts and every
/// client it owns (the store revision moves: every server refuses the
/// clients at its next sync).
pub(super) async fn disable(State(state): State<AppState>, req: Request) -> Response {
    set_enabled(state, req, false).await
}

/// `POST provider/partners/enable`.
pub(super) async fn enable(State(state): State<AppState>, req: Request) -> Response {
    set_enabled(state, req, true).await
}

async fn decide(state: AppState, req: Request, approve: bool) -> Response {
    let (who, _, source, form) = match admin_post(&state, req, true).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = form.get("id").unwrap_or("");
    let by = who.session.admin_client.clone();
    let decided = if approve {
        state
            .core
            .approve_package_request(id, &by)
            .await
            .map(|(r, _)| r)
    } else {
        state.core.decline_package_request(id, &by).await
    };
    let r = match decided {
        Ok(r) => r,
        // Another admin (or a second click) decided it first.
        Err(CoreError::Store(StoreError::Conflict(m))) => {
            return error_page(&state, StatusCode::CONFLICT, "Already decided", &m);
        }
        Err(e) => return core_error(&state, &e),
    };
    let action = if approve {
        "package-request.approve"
    } else {
        "package-request.decline"
    };
    record(
        &state,
        &who,
        action,
        Some(r.env.clone()),
        &r.id,
        source,
        serde_json::json!({
            "partner": r.partner, "api": r.api, "package": r.package, "status": r.status.as_str(),
        }),
    )
    .await;
    redirect(&format!("{}provider/", base(&state)), None)
}

/// `POST provider/requests/approve`.
pub(super) async fn approve(State(state): State<AppState>, req: Request) -> Response {
    decide(state, req, true).await
}

/// `POST provider/requests/decline`.
pub(super) async fn decline(State(state): State<AppState>, req: Request) -> Response {
    decide(state, req, false).await
}

#[derive(serde::Deserialize)]
pub(super) struct AuditQuery {
    cursor: Option<String>,
}

/// `GET provider/audit?cursor=`: the audit log, oldest first.
pub(super) async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Response {
    let (who, token) = match admin(&state, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    // The cursor is the last entry id of the page before (ids are hex).
    let after = q
        .cursor
        .filter(|c| !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_hexdigit()));
    let entries = match state
        .core
        .list_audit(i64::MIN, after.as_deref(), AUDIT_PAGE)
        .await
    {
        Ok(e) => e,
        Err(e) => return core_error(&state, &e),
    };
    let next = (entries.len() == AUDIT_PAGE as usize)
        .then(|| entries.last().map(|e| e.id.clone()))
        .flatten();
    let csrf = state.core.portal_csrf(&token);
    page(
        StatusCode::OK,
        provider_pages::audit(
            base(&state),
            &who.session.admin_client,
            &csrf,
            &entries,
            next.as_deref(),
        ),
    )
}
