//! A partner's package requests in the portal (`requests`): a page listing
//! what it may ask for (packages of the APIs of the environments it works
//! in, not offered to it yet) with its requests so far, and the form's
//! POST (session + CSRF, like every portal form), which records the
//! request (the provider approves or declines it: `provider.rs`, the admin
//! API, the CLI) and appends `portal.package-request.create` to the audit
//! log.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tollgate_core::partner::Offer;
use tollgate_core::service::AuditEvent;
use tollgate_core::service::portal::SignedIn;

use super::{base, core_error, page, provider_pages, session, signed_post};
use crate::AppState;

async fn render(
    state: &AppState,
    who: &SignedIn,
    token: &str,
    status: StatusCode,
    message: Option<&str>,
) -> Response {
    let choices = match state.core.requestable_packages(&who.partner).await {
        Ok(c) => c,
        Err(e) => return core_error(state, &e),
    };
    let mine = match state
        .core
        .list_package_requests(Some(&who.partner.id), None)
        .await
    {
        Ok(m) => m,
        Err(e) => return core_error(state, &e),
    };
    let csrf = state.core.portal_csrf(token);
    page(
        status,
        provider_pages::request_form(
            base(state),
            &csrf,
            &who.partner.name,
            &who.account.login,
            &choices,
            &mine,
            message,
        ),
    )
}

/// `GET requests`: the form and the partner's requests.
pub(super) async fn form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session(&state, &headers).await {
        Ok((who, token)) => render(&state, &who, &token, StatusCode::OK, None).await,
        Err(r) => r,
    }
}

/// `POST requests`: records a request.
pub(super) async fn create(State(state): State<AppState>, req: Request) -> Response {
    let (who, token, source, form) = match signed_post(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some((env, api, package)) = form
        .get("package")
        .and_then(|v| serde_json::from_str::<(String, String, String)>(v).ok())
    else {
        return render(
            &state,
            &who,
            &token,
            StatusCode::BAD_REQUEST,
            Some("Choose a package."),
        )
        .await;
    };
    let note = form.get("note").unwrap_or("");
    let offer = Offer { env, api, package };
    match state
        .core
        .request_package(&who.partner, &who.account.login, offer, note)
        .await
    {
        Ok(r) => {
            let event = AuditEvent {
                actor: format!("partner:{}/{}", who.partner.id, who.account.login),
                action: "portal.package-request.create".into(),
                env: Some(r.env.clone()),
                target: r.id.clone(),
                source,
                before: None,
                after: Some(serde_json::json!({
                    "api": r.api, "package": r.package, "note": r.note,
                })),
            };
            if let Err(e) = state.core.record_audit(event).await {
                tracing::warn!(error = %e, "portal: audit record failed");
            }
            let message = format!(
                "Request sent: {} of {} in {}. Your provider decides; once approved, the package \
                 is offered in the form of that environment.",
                r.package, r.api, r.env
            );
            render(&state, &who, &token, StatusCode::CREATED, Some(&message)).await
        }
        Err(
            e @ (tollgate_core::CoreError::Invalid { .. }
            | tollgate_core::CoreError::AlreadyExists { .. }
            | tollgate_core::CoreError::NotFound { .. }),
        ) => {
            render(
                &state,
                &who,
                &token,
                StatusCode::BAD_REQUEST,
                Some(&e.to_string()),
            )
            .await
        }
        Err(e) => core_error(&state, &e),
    }
}
