//! Secret handover through a one-time link (`service/portal_handover.rs`):
//! a form that makes a secret may ask for a link instead of the secret;
//! the link's page, opened by anyone holding it, first shows only what the
//! secret is for (link previews and scanners fetch with GET and must not
//! use it up), and shows the secret on a POST, which deletes it.

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use tollgate_core::model::Client;
use tollgate_core::service::AuditEvent;
use tollgate_core::service::portal::SignedIn;

use super::cookie::{self, Kind};
use super::handover_pages::{self, LINK_TTLS};
use super::pages::{self, layout};
use super::{
    Form, TokenQuery, base, csrf_refused, error_page, header_of, page, portal_error, pre_session,
    read_form, secure, with_cookie,
};
use crate::AppState;

/// Whether the form asked for a one-time link instead of the secret.
pub(super) fn wanted(form: &Form) -> bool {
    form.get("deliver") == Some("link")
}

/// What a client secret is, for whoever opens its link.
pub(super) fn client_label(c: &Client) -> String {
    format!(
        "the client secret of “{}” (client id {}, environment {})",
        c.name, c.client_id, c.env
    )
}

/// Stores `secret` for a one-time link and answers the page that shows
/// the link (not the secret).
pub(super) async fn hand_over(
    state: &AppState,
    who: &SignedIn,
    csrf: &str,
    form: &Form,
    label: &str,
    secret: &SecretString,
) -> Response {
    let ttl = form
        .get("link_ttl")
        .and_then(|t| t.parse::<u64>().ok())
        .or_else(|| LINK_TTLS.first().map(|t| t.0))
        .unwrap_or(3600);
    let (token, h) = match state
        .core
        .partner_handover(&who.partner, label, secret, ttl)
        .await
    {
        Ok(x) => x,
        Err(e) => return portal_error(state, &e),
    };
    let event = AuditEvent {
        actor: format!("partner:{}/{}", who.partner.id, who.account.login),
        action: "portal.handover.create".into(),
        env: None,
        target: h.digest.chars().take(12).collect(),
        source: None,
        before: None,
        after: Some(serde_json::json!({"label": h.label, "expires_at": h.expires_at})),
    };
    if let Err(e) = state.core.record_audit(event).await {
        tracing::warn!(error = %e, "portal: audit record failed");
    }
    let link = format!(
        "{}{}handover?token={}",
        state.core.public_url(),
        base(state),
        token.expose_secret()
    );
    page(
        StatusCode::CREATED,
        layout(
            base(state),
            "One-time link made",
            Some(&header_of(who, csrf)),
            html_link_made(state, &link, &h.label, h.expires_at),
        ),
    )
}

fn html_link_made(state: &AppState, link: &str, label: &str, expires: i64) -> maud::Markup {
    maud::html! {
        (handover_pages::link_made(link, label, &pages::when(expires)))
        p { a href=(base(state)) { "Back to your clients" } }
    }
}

/// GET: what the link holds and the button that shows it (nothing used up).
pub(super) async fn look(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    let token = q.token.unwrap_or_default();
    let h = match state.core.peek_handover(&token).await {
        Ok(h) => h,
        Err(e) => return portal_error(&state, &e),
    };
    let (pre, set) = match pre_session(&state, &headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let csrf = state.core.portal_csrf(&pre);
    with_cookie(
        page(
            StatusCode::OK,
            layout(
                base(&state),
                "A secret for you",
                None,
                handover_pages::look(
                    base(&state),
                    &csrf,
                    &token,
                    &h.label,
                    &pages::when(h.expires_at),
                ),
            ),
        ),
        set,
    )
}

/// POST: the secret, once; the row is gone after this.
pub(super) async fn open(State(state): State<AppState>, req: Request) -> Response {
    let (headers, source, form) = match read_form(req).await {
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
    let (h, secret) = match state
        .core
        .open_handover(form.get("token").unwrap_or(""))
        .await
    {
        Ok(x) => x,
        Err(e) => return portal_error(&state, &e),
    };
    let event = AuditEvent {
        actor: "portal:handover-link".into(),
        action: "portal.handover.open".into(),
        env: None,
        target: h.digest.chars().take(12).collect(),
        source,
        before: None,
        after: Some(serde_json::json!({"partner": h.partner, "label": h.label})),
    };
    if let Err(e) = state.core.record_audit(event).await {
        tracing::warn!(error = %e, "portal: audit record failed");
    }
    let short: String = h.digest.chars().take(8).collect();
    let file = handover_pages::file_name(&["secret", &short]);
    page(
        StatusCode::OK,
        layout(
            base(&state),
            "Your secret",
            None,
            handover_pages::opened(&h.label, secret.expose_secret(), &file),
        ),
    )
}
