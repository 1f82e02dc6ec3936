//! The second factor's handlers: the account page, starting, confirming
//! and turning off TOTP (`service/portal_totp.rs`), and the sign-in's
//! second step, which takes the code with the ticket the password step
//! handed out. Each write is in the audit log.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use secrecy::ExposeSecret;
use tollgate_core::service::AuditEvent;
use tollgate_core::service::portal::{PortalError, SESSION_LIFETIME, SignedIn};
use tollgate_core::service::portal_totp::TotpState;

use super::cookie::{self, Kind};
use super::totp_pages::{self, State as Shown};
use super::{
    base, core_error, csrf_refused, error_page, header_of, page, portal_error, read_form, redirect,
    secure, session, signed_post,
};
use crate::AppState;

/// Records an account event (actor and target: the account).
pub(super) async fn audit_account(
    state: &AppState,
    who: &SignedIn,
    action: &str,
    source: Option<String>,
) {
    let event = AuditEvent {
        actor: format!("partner:{}/{}", who.partner.id, who.account.login),
        action: action.to_string(),
        env: None,
        target: who.account.login.clone(),
        source,
        before: None,
        after: None,
    };
    if let Err(e) = state.core.record_audit(event).await {
        tracing::warn!(error = %e, "portal: audit record failed");
    }
}

/// The account page as it stands, with an error or a notice.
async fn account_as_is(
    state: &AppState,
    who: &SignedIn,
    token: &str,
    status: StatusCode,
    error: Option<&str>,
    notice: Option<&str>,
) -> Response {
    let csrf = state.core.portal_csrf(token);
    let header = header_of(who, &csrf);
    let shown = match state.core.totp_state(&who.account.login).await {
        Ok(s) => s,
        Err(e) => return core_error(state, &e),
    };
    match shown {
        TotpState::Off => page(
            status,
            totp_pages::account(base(state), &header, Shown::Off, error, notice),
        ),
        TotpState::On => page(
            status,
            totp_pages::account(base(state), &header, Shown::On, error, notice),
        ),
        TotpState::Pending => match state.core.pending_totp(who).await {
            Ok(Some(e)) => page(
                status,
                totp_pages::account(
                    base(state),
                    &header,
                    Shown::Pending {
                        base32: e.base32.expose_secret(),
                        uri: e.uri.expose_secret(),
                    },
                    error,
                    notice,
                ),
            ),
            Ok(None) => page(
                status,
                totp_pages::account(base(state), &header, Shown::Off, error, notice),
            ),
            Err(e) => core_error(state, &e),
        },
    }
}

pub(super) async fn account_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (who, token) = match session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    account_as_is(&state, &who, &token, StatusCode::OK, None, None).await
}

pub(super) async fn begin(State(state): State<AppState>, req: Request) -> Response {
    let (who, token, _, _) = match signed_post(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(e) = state.core.begin_totp(&who).await {
        return core_error(&state, &e);
    }
    account_as_is(&state, &who, &token, StatusCode::OK, None, None).await
}

pub(super) async fn confirm(State(state): State<AppState>, req: Request) -> Response {
    let (who, token, source, form) = match signed_post(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match state
        .core
        .confirm_totp(&who, form.get("code").unwrap_or(""))
        .await
    {
        Ok(()) => {
            audit_account(&state, &who, "portal.account.totp-on", source).await;
            account_as_is(
                &state,
                &who,
                &token,
                StatusCode::OK,
                None,
                Some("Two-step sign-in is on."),
            )
            .await
        }
        Err(PortalError::BadCode) => {
            account_as_is(
                &state,
                &who,
                &token,
                StatusCode::BAD_REQUEST,
                Some("That code is not right (or was used already). Wait for the next one and try again."),
                None,
            )
            .await
        }
        Err(e) => portal_error(&state, &e),
    }
}

pub(super) async fn disable(State(state): State<AppState>, req: Request) -> Response {
    let (who, token, source, form) = match signed_post(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let was = state.core.totp_state(&who.account.login).await;
    match state
        .core
        .disable_totp(&who, form.get("code").unwrap_or(""))
        .await
    {
        Ok(()) => {
            if matches!(was, Ok(TotpState::On)) {
                audit_account(&state, &who, "portal.account.totp-off", source).await;
            }
            account_as_is(
                &state,
                &who,
                &token,
                StatusCode::OK,
                None,
                Some("Two-step sign-in is off."),
            )
            .await
        }
        Err(PortalError::BadCode) => {
            account_as_is(
                &state,
                &who,
                &token,
                StatusCode::BAD_REQUEST,
                Some("That code is not right (or was used already). Wrong codes count towards the account's lock."),
                None,
            )
            .await
        }
        Err(e) => portal_error(&state, &e),
    }
}

/// The code form of a sign-in whose password was right.
pub(super) fn code_page(
    state: &AppState,
    pre: &str,
    ticket: &str,
    error: Option<&str>,
) -> Response {
    let csrf = state.core.portal_csrf(pre);
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    page(
        status,
        totp_pages::code_form(base(state), &csrf, ticket, error),
    )
}

pub(super) async fn login_code(State(state): State<AppState>, req: Request) -> Response {
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
    let ticket = form.get("ticket").unwrap_or("");
    match state
        .core
        .portal_sign_in_code(ticket, form.get("code").unwrap_or(""))
        .await
    {
        Ok(token) => redirect(
            base(&state),
            cookie::set(
                Kind::Session,
                secure(&state),
                token.expose_secret(),
                SESSION_LIFETIME,
            ),
        ),
        Err(PortalError::BadCode) => code_page(
            &state,
            &pre,
            ticket,
            Some(
                "That code is not right, was used already, or this sign-in took too long. Try the next code, or start again.",
            ),
        ),
        Err(e) => portal_error(&state, &e),
    }
}
