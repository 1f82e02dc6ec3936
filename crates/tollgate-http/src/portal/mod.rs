//! The partner portal (issue 13 §2; docs/PORTAL.md): server-rendered pages
//! under `portal_path` (default `/portal/`) where a partner's accounts sign
//! up from an invitation, sign in, see their clients per environment,
//! create clients from the packages offered to them, rotate a secret with
//! a grace and end the grace. Handlers map a form to one core call
//! (`service/portal.rs`) and render the outcome (`pages.rs`).
//!
//! Security: every form carries a CSRF token derived from the session (or,
//! before sign-in, from a pre-session cookie), compared in constant time;
//! cookies are HttpOnly and SameSite=Strict, Secure with the `__Host-`
//! prefix over TLS (`cookie.rs`); pages forbid framing, inline script and
//! caching (a secret is shown once); partner writes go to the audit log.

// Helpers return the page to show instead as their error: an early exit
// of a handler, built once per request, never propagated further.
#![allow(clippy::result_large_err)]

mod chart;
mod cookie;
mod credentials;
mod credentials_pages;
mod handover;
mod handover_pages;
mod pages;
mod provider;
mod provider_pages;
mod requests;
mod totp;
mod totp_pages;
mod usage;

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::Markup;
use secrecy::{ExposeSecret, SecretString};
use tollgate_core::CoreError;
use tollgate_core::model::{Client, DEFAULT_ENV};
use tollgate_core::partner::Offer;
use tollgate_core::service::AuditEvent;
use tollgate_core::service::portal::{MIN_PASSWORD, PortalError, SESSION_LIFETIME, SignedIn};
use tollgate_core::service::portal_totp::SignIn;
use tollgate_core::time::now;

use crate::AppState;
use cookie::Kind;
use pages::Header;

/// Largest form body read.
const MAX_FORM: usize = 16 * 1024;

/// The portal's routes under `base` (starts and ends with `/`).
pub fn routes(base: &str) -> Router<AppState> {
    let at = |p: &str| format!("{base}{p}");
    let mut r = Router::new()
        .route(&at(""), get(index))
        .route(&at("login"), get(login_page).post(login))
        .route(&at("accept"), get(accept_page).post(accept))
        .route(&at("logout"), post(logout))
        .route(&at("clients"), post(create_client))
        .route(&at("clients/rotate"), post(rotate))
        .route(&at("clients/revoke-old"), post(revoke_old))
        .route(&at("login/code"), post(totp::login_code))
        .route(&at("account"), get(totp::account_page))
        .route(&at("account/totp/begin"), post(totp::begin))
        .route(&at("account/totp/confirm"), post(totp::confirm))
        .route(&at("account/totp/disable"), post(totp::disable))
        .route(&at("clients/credentials"), get(credentials::page_of_client))
        .route(
            &at("clients/refresh-jwts"),
            post(credentials::issue_refresh_jwt),
        )
        .route(
            &at("clients/refresh-jwts/revoke"),
            post(credentials::revoke_refresh_jwt),
        )
        .route(&at("clients/api-keys"), post(credentials::create_api_key))
        .route(
            &at("clients/api-keys/revoke"),
            post(credentials::revoke_api_key),
        )
        .route(
            &at("clients/api-keys/rotate"),
            post(credentials::rotate_api_key),
        )
        .route(&at("handover"), get(handover::look).post(handover::open))
        .route(&at("clients/usage"), get(usage::usage_page))
        .route(&at("requests"), get(requests::form).post(requests::create))
        .route(&at("provider/"), get(provider::overview))
        .route(
            &at("provider/login"),
            get(provider::login_page).post(provider::login),
        )
        .route(&at("provider/logout"), post(provider::logout))
        .route(&at("provider/partners/disable"), post(provider::disable))
        .route(&at("provider/partners/enable"), post(provider::enable))
        .route(&at("provider/requests/approve"), post(provider::approve))
        .route(&at("provider/requests/decline"), post(provider::decline))
        .route(&at("provider/audit"), get(provider::audit))
        .route(&at("static/portal.css"), get(css))
        .route(&at("static/portal.js"), get(js));
    let bare = base.trim_end_matches('/');
    if !bare.is_empty() {
        let to = base.to_string();
        r = r.route(bare, get(move || async move { redirect(&to, None) }));
    }
    r
}

/// The portal's path, as configured.
fn base(state: &AppState) -> &str {
    state.ops.portal_path.as_deref().unwrap_or("/portal/")
}

/// Cookies get `Secure` and `__Host-` when tollgate serves TLS itself.
fn secure(state: &AppState) -> bool {
    state.ops.hsts
}

/// Headers of every page: no caching (secrets), no framing, no inline
/// script or style, no referrer (the invitation link holds a token).
fn page(status: StatusCode, markup: Markup) -> Response {
    let mut resp = (status, markup.into_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    hardening(h);
    resp
}

fn hardening(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
}

/// 303 to `to`, optionally setting a cookie.
fn redirect(to: &str, cookie: Option<HeaderValue>) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(to) {
        h.insert(header::LOCATION, v);
    }
    if let Some(c) = cookie {
        h.append(header::SET_COOKIE, c);
    }
    hardening(h);
    resp
}

fn error_page(state: &AppState, status: StatusCode, title: &str, message: &str) -> Response {
    page(status, pages::error(base(state), title, message))
}

/// An error of the core as a page; details of the store stay in the log.
fn core_error(state: &AppState, e: &CoreError) -> Response {
    match e {
        CoreError::NotFound { .. } => {
            error_page(state, StatusCode::NOT_FOUND, "Not found", &e.to_string())
        }
        CoreError::AlreadyExists { .. } => error_page(
            state,
            StatusCode::CONFLICT,
            "Already exists",
            &e.to_string(),
        ),
        CoreError::Invalid { .. } => error_page(
            state,
            StatusCode::BAD_REQUEST,
            "Not accepted",
            &e.to_string(),
        ),
        CoreError::Crypto(_) | CoreError::Store(_) => {
            tracing::warn!(error = %e, "portal: request failed");
            error_page(
                state,
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The service could not complete this request. Please try again in a moment.",
            )
        }
    }
}

fn portal_error(state: &AppState, e: &PortalError) -> Response {
    match e {
        PortalError::Core(c) => core_error(state, c),
        PortalError::BadCredentials => error_page(
            state,
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            &e.to_string(),
        ),
        PortalError::Locked { .. } => error_page(
            state,
            StatusCode::TOO_MANY_REQUESTS,
            "Account locked",
            "Too many failed sign-ins: this account is locked for 15 minutes.",
        ),
        PortalError::InvitationUnusable => error_page(
            state,
            StatusCode::GONE,
            "Invitation not valid",
            &e.to_string(),
        ),
        PortalError::PartnerDisabled => error_page(
            state,
            StatusCode::FORBIDDEN,
            "Access disabled",
            &e.to_string(),
        ),
        PortalError::NotYours => {
            error_page(state, StatusCode::NOT_FOUND, "Not found", &e.to_string())
        }
        PortalError::Busy => error_page(
            state,
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "The server is busy. Please try again in a moment.",
        ),
        PortalError::CodeRequired | PortalError::BadCode => error_page(
            state,
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            &e.to_string(),
        ),
        PortalError::LinkUnusable => {
            error_page(state, StatusCode::GONE, "Link not valid", &e.to_string())
        }
    }
}

/// A form's fields (repeated names kept, in order).
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A POST's headers, source address and form body.
async fn read_form(req: Request) -> Result<(HeaderMap, Option<String>, Form), StatusCode> {
    let (parts, body) = req.into_parts();
    let source = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let bytes = axum::body::to_bytes(Body::new(body), MAX_FORM)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE)?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&bytes).map_err(|_| StatusCode::BAD_REQUEST)?;
    Ok((parts.headers, source, Form(pairs)))
}

/// The signed-in account of a request with its session token, or the
/// response to give instead (the sign-in page).
async fn session(state: &AppState, headers: &HeaderMap) -> Result<(SignedIn, String), Response> {
    let Some(token) = cookie::read(headers, Kind::Session, secure(state)) else {
        return Err(redirect(&format!("{}login", base(state)), None));
    };
    match state.core.portal_session(&token).await {
        Ok(Some(s)) => Ok((s, token)),
        Ok(None) => Err(redirect(
            &format!("{}login", base(state)),
            cookie::set(Kind::Session, secure(state), "", 0),
        )),
        Err(e) => Err(core_error(state, &e)),
    }
}

/// A signed-in POST: session, then its CSRF token.
async fn signed_post(
    state: &AppState,
    req: Request,
) -> Result<(SignedIn, String, Option<String>, Form), Response> {
    let (headers, source, form) = read_form(req)
        .await
        .map_err(|s| error_page(state, s, "Request refused", "The form could not be read."))?;
    let (who, token) = session(state, &headers).await?;
    let presented = form.get("csrf").unwrap_or("");
    if !state.core.portal_csrf_matches(&token, presented) {
        return Err(csrf_refused(state));
    }
    Ok((who, token, source, form))
}

fn csrf_refused(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form was not issued by your current session (or it expired). Go back, reload the page and try again.",
    )
}

fn header_of<'a>(who: &'a SignedIn, csrf: &'a str) -> Header<'a> {
    Header {
        login: &who.account.login,
        partner: &who.partner.name,
        csrf,
    }
}

async fn audit(state: &AppState, who: &SignedIn, action: &str, c: &Client, source: Option<String>) {
    let event = AuditEvent {
        actor: format!("partner:{}/{}", who.partner.id, who.account.login),
        action: action.to_string(),
        env: Some(c.env.clone()),
        target: c.client_id.clone(),
        source,
        before: None,
        after: Some(serde_json::json!({
            "name": c.name,
            "apis": c.apis.iter().map(|g| serde_json::json!({"api": g.api, "grants": g.grants})).collect::<Vec<_>>(),
            "secrets": c.secrets.iter().map(|s| serde_json::json!({"id": s.id, "created_at": s.created_at, "expires_at": s.expires_at})).collect::<Vec<_>>(),
        })),
    };
    if let Err(e) = state.core.record_audit(event).await {
        tracing::warn!(error = %e, "portal: audit record failed");
    }
}

async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (who, token) = match session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let clients = match state.core.partner_clients(&who.partner.id).await {
        Ok(c) => c,
        Err(e) => return core_error(&state, &e),
    };
    // Environments where the partner has clients or offers, in order.
    let mut envs: Vec<(String, Vec<Client>, Vec<Offer>)> = Vec::new();
    let slot = |envs: &mut Vec<(String, Vec<Client>, Vec<Offer>)>, env: &str| -> usize {
        match envs.iter().position(|(e, _, _)| e == env) {
            Some(i) => i,
            None => {
                envs.push((env.to_string(), Vec::new(), Vec::new()));
                envs.len() - 1
            }
        }
    };
    for o in &who.partner.offers {
        let i = slot(&mut envs, &o.env);
        envs[i].2.push(o.clone());
    }
    for c in clients {
        let i = slot(&mut envs, &c.env);
        envs[i].1.push(c);
    }
    envs.sort_by(|a, b| a.0.cmp(&b.0));
    let csrf = state.core.portal_csrf(&token);
    page(
        StatusCode::OK,
        pages::dashboard(base(&state), &header_of(&who, &csrf), &envs, now()),
    )
}

/// The pre-session token of a request, or a new one with its cookie.
fn pre_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(String, Option<HeaderValue>), Response> {
    if let Some(t) = cookie::read(headers, Kind::Pre, secure(state)) {
        return Ok((t, None));
    }
    let t = tollgate_core::crypto::random::random_b64(32).map_err(|e| core_error(state, &e))?;
    let c = cookie::set(Kind::Pre, secure(state), &t, SESSION_LIFETIME);
    Ok((t, c))
}

fn with_cookie(mut resp: Response, c: Option<HeaderValue>) -> Response {
    if let Some(c) = c {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (pre, set) = match pre_session(&state, &headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let csrf = state.core.portal_csrf(&pre);
    with_cookie(
        page(StatusCode::OK, pages::login(base(&state), &csrf, None)),
        set,
    )
}

async fn login(State(state): State<AppState>, req: Request) -> Response {
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
    let login = form.get("login").unwrap_or("").trim().to_ascii_lowercase();
    let password = SecretString::from(form.get("password").unwrap_or(""));
    match state.core.portal_sign_in(&login, &password).await {
        Ok(SignIn::Code(ticket)) => totp::code_page(&state, &pre, ticket.expose_secret(), None),
        Ok(SignIn::Session(token)) => redirect(
            base(&state),
            cookie::set(
                Kind::Session,
                secure(&state),
                token.expose_secret(),
                SESSION_LIFETIME,
            ),
        ),
        Err(PortalError::BadCredentials) => {
            let csrf = state.core.portal_csrf(&pre);
            page(
                StatusCode::UNAUTHORIZED,
                pages::login(
                    base(&state),
                    &csrf,
                    Some("The login name or the password is wrong."),
                ),
            )
        }
        Err(e) => portal_error(&state, &e),
    }
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn accept_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    let token = q.token.unwrap_or_default();
    let partner = match state.core.usable_invitation(&token).await {
        Ok((_, p)) => p,
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
            pages::accept(
                base(&state),
                &csrf,
                &token,
                &partner.name,
                MIN_PASSWORD,
                None,
            ),
        ),
        set,
    )
}

async fn accept(State(state): State<AppState>, req: Request) -> Response {
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
    let token = form.get("token").unwrap_or("");
    let login = form.get("login").unwrap_or("").trim();
    let password = SecretString::from(form.get("password").unwrap_or(""));
    let again_page = |status: StatusCode, message: &str, partner: &str| {
        let csrf = state.core.portal_csrf(&pre);
        page(
            status,
            pages::accept(
                base(&state),
                &csrf,
                token,
                partner,
                MIN_PASSWORD,
                Some(message),
            ),
        )
    };
    let partner = match state.core.usable_invitation(token).await {
        Ok((_, p)) => p,
        Err(e) => return portal_error(&state, &e),
    };
    if form.get("password2").unwrap_or("") != password.expose_secret() {
        return again_page(
            StatusCode::BAD_REQUEST,
            "The two passwords differ.",
            &partner.name,
        );
    }
    match state.core.accept_invitation(token, login, &password).await {
        Ok(session) => {
            let event = AuditEvent {
                actor: format!("partner:{}/{login}", partner.id),
                action: "portal.account.create".into(),
                env: None,
                target: login.to_string(),
                source,
                before: None,
                after: None,
            };
            if let Err(e) = state.core.record_audit(event).await {
                tracing::warn!(error = %e, "portal: audit record failed");
            }
            redirect(
                base(&state),
                cookie::set(
                    Kind::Session,
                    secure(&state),
                    session.expose_secret(),
                    SESSION_LIFETIME,
                ),
            )
        }
        Err(PortalError::Core(e @ CoreError::Invalid { .. })) => {
            again_page(StatusCode::BAD_REQUEST, &e.to_string(), &partner.name)
        }
        // A login taken: say so, on the form (the invitation stays unused).
        Err(PortalError::Core(e @ CoreError::AlreadyExists { .. })) => {
            again_page(StatusCode::CONFLICT, &e.to_string(), &partner.name)
        }
        Err(e) => portal_error(&state, &e),
    }
}

async fn logout(State(state): State<AppState>, req: Request) -> Response {
    let (_, token, _, _) = match signed_post(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(e) = state.core.portal_logout(&token).await {
        return core_error(&state, &e);
    }
    redirect(
        &format!("{}login", base(&state)),
        cookie::set(Kind::Session, secure(&state), "", 0),
    )
}

/// Where a client of `env` asks for tokens.
fn token_path(env: &str) -> String {
    if env == DEFAULT_ENV {
        "/oauth/token".to_string()
    } else {
        format!("/e/{env}/oauth/token")
    }
}

async fn create_client(State(state): State<AppState>, req: Request) -> Response {
    let (who, token, source, form) = match signed_post(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let env = form.get("env").unwrap_or("");
    let chosen: Vec<Offer> = form
        .all("offer")
        .filter_map(|v| serde_json::from_str::<(String, String)>(v).ok())
        .map(|(api, package)| Offer {
            env: env.to_string(),
            api,
            package,
        })
        .collect();
    let name = form.get("name").unwrap_or("");
    match state
        .core
        .partner_create_client(&who.partner, env, name, &chosen)
        .await
    {
        Ok((client, secret)) => {
            audit(&state, &who, "portal.client.create", &client, source).await;
            let csrf = state.core.portal_csrf(&token);
            if handover::wanted(&form) {
                let label = handover::client_label(&client);
                return handover::hand_over(&state, &who, &csrf, &form, &label, &secret).await;
            }
            page(
                StatusCode::CREATED,
                pages::secret(
                    base(&state),
                    &header_of(&who, &csrf),
                    "Client created",
                    &client,
                    secret.expose_secret(),
                    &token_path(env),
                    None,
                ),
            )
        }
        Err(e) => portal_error(&state, &e),
    }
}

async fn rotate(State(state): State<AppState>, req: Request) -> Response {
    let (who, token, source, form) = match signed_post(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let env = form.get("env").unwrap_or("");
    let client_id = form.get("client_id").unwrap_or("");
    let Some(grace) = form.get("grace").and_then(|g| g.trim().parse::<u64>().ok()) else {
        return error_page(
            &state,
            StatusCode::BAD_REQUEST,
            "Not accepted",
            "The grace must be a number of seconds.",
        );
    };
    match state
        .core
        .partner_rotate_secret(&who.partner, env, client_id, grace)
        .await
    {
        Ok((secret, client)) => {
            audit(&state, &who, "portal.client.rotate-secret", &client, source).await;
            let csrf = state.core.portal_csrf(&token);
            if handover::wanted(&form) {
                let label = handover::client_label(&client);
                return handover::hand_over(&state, &who, &csrf, &form, &label, &secret).await;
            }
            let until = client.secrets.iter().filter_map(|s| s.expires_at).max();
            page(
                StatusCode::OK,
                pages::secret(
                    base(&state),
                    &header_of(&who, &csrf),
                    "Secret rotated",
                    &client,
                    secret.expose_secret(),
                    &token_path(env),
                    until,
                ),
            )
        }
        Err(e) => portal_error(&state, &e),
    }
}

async fn revoke_old(State(state): State<AppState>, req: Request) -> Response {
    let (who, _, source, form) = match signed_post(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let env = form.get("env").unwrap_or("");
    let client_id = form.get("client_id").unwrap_or("");
    match state
        .core
        .partner_revoke_old_secrets(&who.partner, env, client_id)
        .await
    {
        Ok(client) => {
            audit(
                &state,
                &who,
                "portal.client.revoke-old-secrets",
                &client,
                source,
            )
            .await;
            redirect(base(&state), None)
        }
        Err(e) => portal_error(&state, &e),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", pages::CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", pages::JS)
}
