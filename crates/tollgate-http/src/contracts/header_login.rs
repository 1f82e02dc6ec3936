//! `header-login`: log in with HTTP Basic and receive the tokens in response
//! headers, as Tradecloud documents it (`/v2/authentication/...`).
//!
//! - `GET {prefix}/login` with `Authorization: Basic base64(email:password)`
//!   → 200, `Set-Authorization: <access token>`, `Set-Refresh-Token:
//!   <refresh token>`, and `Access-Control-Expose-Headers` naming both so
//!   browser clients can read them.
//! - `GET {prefix}/refresh` with `Refresh-Token` → 200 with a new pair; the
//!   old refresh token is dead from then on (rotation, with the family rules
//!   of the core). As the page says: with a valid access token in
//!   `Authorization`, 200 without a new pair; with a corrupted one, 401
//!   whatever the refresh token. An access token that is genuine but expired
//!   (the usual reason to refresh) does not stop the refresh. After a
//!   switch-over an incumbent's access token, signed by an issuer trusted
//!   for `header-login` (`refresh-jwt trust --for header-login`), gets the
//!   same answers; its refresh tokens move into tollgate sessions.
//! - `POST {prefix}/logout` with `Refresh-Token` ends that session; its
//!   access tokens live until they expire.
//! - `_login` and `_refresh` answer too (older paths).
//!
//! Every failure is 401 with the plain-text body `Not authenticated` (503
//! `Service unavailable` when the store is down).

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use secrecy::ExposeSecret;
use tollgate_core::GrantError;
use tollgate_core::crypto::token::VerifyError;
use tollgate_core::model::GrantType;
use tollgate_core::service::EnvRuntime;
use tollgate_core::service::grants::incumbent::ForeignAccess;
use tollgate_core::service::{
    AccessShape, ClientAuth, LateReuse, RefreshPolicy, Session, SessionProfile,
};

use crate::AppState;
use crate::contracts::common::{self, Named, On, Source};
use crate::contracts::no_store;
use crate::contracts::registry::{
    Configurable, Key, OptionalContract, RETRY_LEEWAY, SPRING_AUD_HELP, SPRING_AUTHORITIES_HELP,
    SPRING_USER_NAME_HELP, format_switch, get_session, parse_path, parse_switch, set_session,
};
use crate::params::{Authorization, BasicDecoding, authorization};

/// The contract's name (for `contracts` and metrics).
pub const NAME: &str = "header-login";
/// Default path prefix, as Tradecloud serves it.
pub const DEFAULT_PREFIX: &str = "/v2/authentication";
/// Default access-token lifetime: 10 minutes.
pub const DEFAULT_ACCESS_LIFETIME: u64 = 600;
/// Default refresh-token lifetime: 24 hours.
pub const DEFAULT_REFRESH_LIFETIME: u64 = 86_400;

const SET_AUTHORIZATION: &str = "set-authorization";
const SET_REFRESH_TOKEN: &str = "set-refresh-token";
const REFRESH_TOKEN: &str = "refresh-token";

/// Where and how the contract answers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Path prefix of `login`, `refresh` and `logout`, relative to the environment.
    pub prefix: String,
    /// Sessions: lifetimes, retry leeway (always rotating).
    pub profile: SessionProfile,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.into(),
            profile: SessionProfile {
                contract: NAME,
                grant: GrantType::Password,
                access_lifetime: DEFAULT_ACCESS_LIFETIME,
                refresh_lifetime: DEFAULT_REFRESH_LIFETIME,
                policy: RefreshPolicy::Rotate,
                retry_leeway: tollgate_core::service::requests::DEFAULT_RETRY_LEEWAY,
                shape: AccessShape::Rfc9068,
                spring: tollgate_core::service::SpringOptions::default(),
                late_reuse: LateReuse::RevokeFamily,
                fold_email_case: true,
            },
        }
    }
}

impl Settings {
    /// The paths this contract answers at.
    fn all_paths(&self) -> [String; 5] {
        let p = &self.prefix;
        [
            format!("{p}/login"),
            format!("{p}/_login"),
            format!("{p}/refresh"),
            format!("{p}/_refresh"),
            format!("{p}/logout"),
        ]
    }
}

impl Named for Settings {
    const NAME: &'static str = NAME;
}

const KEYS: &[Key] = &[
    Key {
        name: "header_login_path",
        help: "path prefix of the header-login contract (login, refresh, logout)",
    },
    Key {
        name: "header_login_access_lifetime",
        help: "access-token lifetime of the header-login contract (a client's or its API's own lifetime wins)",
    },
    Key {
        name: "header_login_refresh_lifetime",
        help: "refresh-token lifetime of the header-login contract",
    },
    Key {
        name: "header_login_claims",
        help: "claim shape of header-login access tokens: rfc9068 or spring",
    },
    Key {
        name: "header_login_spring_aud",
        help: SPRING_AUD_HELP,
    },
    Key {
        name: "header_login_spring_user_name",
        help: SPRING_USER_NAME_HELP,
    },
    Key {
        name: "header_login_spring_authorities",
        help: SPRING_AUTHORITIES_HELP,
    },
    Key {
        name: "header_login_email_case_insensitive",
        help: "on: a login name holding @ also matches a user whose name differs only in ASCII case (as mail addresses compare); off: exact names only",
    },
    Key {
        name: "header_login_late_reuse",
        help: "a rotated refresh token presented after the retry leeway: revoke-family (every token of the session dies; the user logs in again) or refuse-token (only that token is refused; the session goes on)",
    },
    RETRY_LEEWAY,
];

const PREFIX: &str = "header_login";

impl Configurable for Settings {
    fn keys(&self) -> &'static [Key] {
        KEYS
    }

    fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        match key {
            "header_login_path" => self.prefix = parse_path(key, value)?,
            "header_login_email_case_insensitive" => {
                self.profile.fold_email_case = parse_switch(key, value)?;
            }
            _ => return set_session(PREFIX, &mut self.profile, key, value),
        }
        Ok(true)
    }

    fn get(&self, key: &str) -> Option<String> {
        match key {
            "header_login_path" => Some(self.prefix.clone()),
            "header_login_email_case_insensitive" => {
                Some(format_switch(self.profile.fold_email_case))
            }
            _ => get_session(PREFIX, &self.profile, key),
        }
    }

    fn clone_box(&self) -> Box<dyn Configurable> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn longest_access_lifetime(&self) -> u64 {
        self.profile.access_lifetime
    }
}

impl OptionalContract for Settings {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Other methods get 405.
    fn endpoints(&self) -> Vec<(String, MethodRouter<AppState>)> {
        let [
            login_path,
            old_login,
            refresh_path,
            old_refresh,
            logout_path,
        ] = self.all_paths();
        let settings = Extension(Arc::new(self.clone()));
        vec![
            (login_path, get(login).layer(settings.clone())),
            (old_login, get(login).layer(settings.clone())),
            (refresh_path, get(refresh).layer(settings.clone())),
            (old_refresh, get(refresh).layer(settings.clone())),
            (logout_path, post(logout).layer(settings)),
        ]
    }

    fn clone_contract(&self) -> Box<dyn OptionalContract> {
        Box::new(self.clone())
    }
}

/// A plain-text answer, the way this contract refuses.
fn plain(status: StatusCode, text: &'static str) -> Response {
    no_store(
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text,
        )
            .into_response(),
    )
}

fn not_authenticated() -> Response {
    plain(StatusCode::UNAUTHORIZED, "Not authenticated")
}

/// The contract's error map: every refusal is the same 401 (a client past
/// its issuance limit gets 429, the server's own trouble 503 with
/// `Retry-After`).
fn failure(e: &GrantError) -> (Response, &'static str) {
    match e {
        GrantError::Unavailable | GrantError::Busy => {
            let mut r = plain(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable");
            if let Some(secs) = e.retry_after() {
                crate::contracts::retry_after(&mut r, secs);
            }
            (r, "temporarily_unavailable")
        }
        GrantError::RateLimited(info) => {
            let mut r = plain(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            crate::contracts::rate_headers(&mut r, info, true);
            (r, "too_many_requests")
        }
        GrantError::Throttled { retry_after } => {
            let mut r = plain(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            crate::contracts::retry_after(&mut r, *retry_after);
            (r, "too_many_attempts")
        }
        GrantError::InvalidClient
        | GrantError::UnauthorizedClient(_)
        | GrantError::AudienceNotGranted(_)
        | GrantError::UnknownAudience(_)
        | GrantError::AudienceRequired(_)
        | GrantError::InvalidScope(_)
        | GrantError::InvalidGrant(_)
        | GrantError::ExpiredGrant
        | GrantError::InvalidRequest(_) => (not_authenticated(), "not_authenticated"),
    }
}

fn pair(s: &Session) -> Response {
    let mut r = no_store(StatusCode::OK.into_response());
    let h = r.headers_mut();
    for (name, value) in [
        (SET_AUTHORIZATION, s.access_token.as_str()),
        (SET_REFRESH_TOKEN, s.refresh_token.expose_secret()),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    }
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Set-Authorization, Set-Refresh-Token"),
    );
    r
}

fn stamp(
    resp: Response,
    env: &EnvRuntime,
    endpoint: &'static str,
    code: &'static str,
    client_id: Option<String>,
) -> Response {
    common::stamp(resp, NAME, endpoint, env, code, client_id)
}

async fn login(
    State(state): State<AppState>,
    On(env, _): On<Settings>,
    Extension(settings): Extension<Arc<Settings>>,
    Source(source): Source,
    headers: HeaderMap,
) -> Response {
    // Tradecloud's clients send RFC 7617 Basic: no percent-decoding.
    let Authorization::Basic { user, password } = authorization(&headers, BasicDecoding::Rfc7617)
    else {
        return stamp(
            not_authenticated(),
            &env,
            "login",
            "not_authenticated",
            None,
        );
    };
    let profile = &settings.profile;
    // The password itself (the core applies MD5): a user imported with a
    // hash of the password needs it.
    let result = state
        .core
        .login_with_password(&env, ClientAuth::None, &user, &password, profile, source)
        .await;
    answer(&env, "login", "issued", result)
}

/// A new pair, or the contract's failure, stamped for the log.
fn answer(
    env: &EnvRuntime,
    endpoint: &'static str,
    ok: &'static str,
    result: Result<Session, GrantError>,
) -> Response {
    match result {
        Ok(s) => stamp(pair(&s), env, endpoint, ok, Some(s.client_id)),
        Err(e) => {
            let (r, code) = failure(&e);
            stamp(r, env, endpoint, code, None)
        }
    }
}

async fn refresh(
    State(state): State<AppState>,
    On(env, _): On<Settings>,
    Extension(settings): Extension<Arc<Settings>>,
    Source(source): Source,
    headers: HeaderMap,
) -> Response {
    // Basic is refused here, so its decoding does not matter.
    match authorization(&headers, BasicDecoding::Rfc7617) {
        Authorization::None => {}
        Authorization::Bearer(t) => match state.core.verify(&env, &t, None) {
            // Still valid: nothing to do, and no new pair. A revoked token is
            // not valid: refused like a corrupted one.
            Ok(claims) => {
                return match state.core.is_revoked(&env, &claims.jti).await {
                    Ok(false) => stamp(
                        no_store(StatusCode::OK.into_response()),
                        &env,
                        "refresh",
                        "still_valid",
                        claims.client_id,
                    ),
                    Ok(true) => stamp(
                        not_authenticated(),
                        &env,
                        "refresh",
                        "revoked_access_token",
                        None,
                    ),
                    Err(e) => {
                        let (r, code) = failure(&e);
                        stamp(r, &env, "refresh", code, None)
                    }
                };
            }
            // Genuine but expired: the reason to refresh.
            Err(VerifyError::Expired) => {}
            // Not tollgate's: perhaps a trusted incumbent's, from before
            // the switch, which gets the incumbent's answers.
            Err(_) => match state.core.foreign_access(&env, NAME, &t).await {
                Ok(ForeignAccess::Expired) => {}
                Ok(ForeignAccess::Valid) => {
                    return stamp(
                        no_store(StatusCode::OK.into_response()),
                        &env,
                        "refresh",
                        "still_valid",
                        None,
                    );
                }
                Ok(ForeignAccess::Revoked) => {
                    return stamp(
                        not_authenticated(),
                        &env,
                        "refresh",
                        "revoked_access_token",
                        None,
                    );
                }
                Ok(ForeignAccess::Invalid) => {
                    return stamp(
                        not_authenticated(),
                        &env,
                        "refresh",
                        "corrupted_access_token",
                        None,
                    );
                }
                Err(e) => {
                    let (r, code) = failure(&e);
                    return stamp(r, &env, "refresh", code, None);
                }
            },
        },
        Authorization::Basic { .. } | Authorization::Malformed => {
            return stamp(
                not_authenticated(),
                &env,
                "refresh",
                "corrupted_access_token",
                None,
            );
        }
    }
    let Some(token) = headers.get(REFRESH_TOKEN).and_then(|v| v.to_str().ok()) else {
        return stamp(
            not_authenticated(),
            &env,
            "refresh",
            "not_authenticated",
            None,
        );
    };
    let profile = &settings.profile;
    let result = state
        .core
        .refresh(&env, ClientAuth::None, token.trim(), profile, source)
        .await;
    answer(&env, "refresh", "refreshed", result)
}

async fn logout(
    State(state): State<AppState>,
    On(env, _): On<Settings>,
    Extension(settings): Extension<Arc<Settings>>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = headers.get(REFRESH_TOKEN).and_then(|v| v.to_str().ok()) else {
        return stamp(
            not_authenticated(),
            &env,
            "logout",
            "not_authenticated",
            None,
        );
    };
    let profile = &settings.profile;
    match state.core.logout(&env, token.trim(), profile).await {
        Ok(_) => stamp(
            no_store(StatusCode::OK.into_response()),
            &env,
            "logout",
            "logged_out",
            None,
        ),
        Err(e) => {
            let (r, code) = failure(&e);
            stamp(r, &env, "logout", code, None)
        }
    }
}
