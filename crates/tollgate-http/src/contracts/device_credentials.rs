//! `device-credentials`: the token endpoint of a Spring Security OAuth2
//! server as Dive documents it (`POST /v1/token`), the `spring` dialect.
//!
//! - `grant_type=device_credentials` (in the query or the body) with
//!   `username` and `password` (= `md5_hex(password)`) as form fields, JSON
//!   or query parameters; a body declared JSON that is really a form is read
//!   as a form, as Dive's clients send it.
//! - `grant_type=refresh_token` with `refresh_token`.
//! - The client in `Authorization: Basic`: base64 of `client_id:secret`, or of
//!   a bare client key (the id of a public client). `client_id` and
//!   `client_secret` form fields are accepted too, as Spring allows.
//! - Success: `access_token`, `token_type: "bearer"`, `refresh_token` (a
//!   JWT), `expires_in` (seconds left), `scope`, `device_id`, `client_id`,
//!   `jti`, in that order; `Cache-Control: no-store`, `Pragma: no-cache`.
//! - Errors in Spring's `{"error","error_description"}` shape; the error map
//!   is [`grant_error`]. Unlike Spring, tollgate never echoes a presented
//!   refresh token in an error description.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tollgate_core::GrantError;
use tollgate_core::model::GrantType;
use tollgate_core::service::EnvRuntime;
use tollgate_core::service::{
    AccessShape, ClientAuth, LateReuse, RefreshPolicy, Session, SessionProfile,
};

use crate::AppState;
use crate::contracts::common::{Named, On, Source, error_body, stamp};
use crate::contracts::no_store;
use crate::contracts::registry::{
    Configurable, Key, OptionalContract, RETRY_LEEWAY, SPRING_AUD_HELP, SPRING_AUTHORITIES_HELP,
    SPRING_USER_NAME_HELP, get_session, parse_path, set_session,
};
use crate::params::{
    Authorization, BasicDecoding, ParamError, Params, authorization, read_body_lenient,
};

/// The contract's name (for `contracts` and metrics).
pub const NAME: &str = "device-credentials";
/// Default path, as Dive serves it.
pub const DEFAULT_PATH: &str = "/v1/token";
/// Default access-token lifetime: 9000 s, as Dive documents.
pub const DEFAULT_ACCESS_LIFETIME: u64 = 9000;
/// Default refresh-token lifetime: 180 days.
pub const DEFAULT_REFRESH_LIFETIME: u64 = 180 * 86_400;

/// Where and how the contract answers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Path of the token endpoint, relative to the environment.
    pub path: String,
    /// Sessions: lifetimes, refresh policy, retry leeway.
    pub profile: SessionProfile,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            path: DEFAULT_PATH.into(),
            profile: SessionProfile {
                contract: NAME,
                grant: GrantType::DeviceCredentials,
                access_lifetime: DEFAULT_ACCESS_LIFETIME,
                refresh_lifetime: DEFAULT_REFRESH_LIFETIME,
                policy: RefreshPolicy::Reuse,
                retry_leeway: tollgate_core::service::requests::DEFAULT_RETRY_LEEWAY,
                shape: AccessShape::Spring,
                spring: tollgate_core::service::SpringOptions::default(),
                late_reuse: LateReuse::RevokeFamily,
                // Device ids are not mail addresses: exact names.
                fold_email_case: false,
            },
        }
    }
}

impl Named for Settings {
    const NAME: &'static str = NAME;
}

const KEYS: &[Key] = &[
    Key {
        name: "device_credentials_path",
        help: "path of the device-credentials contract",
    },
    Key {
        name: "device_credentials_access_lifetime",
        help: "access-token lifetime of the device-credentials contract (a client's or its API's own lifetime wins)",
    },
    Key {
        name: "device_credentials_refresh_lifetime",
        help: "refresh-token lifetime of the device-credentials contract",
    },
    Key {
        name: "device_credentials_claims",
        help: "claim shape of device-credentials access tokens: spring (aud, scope and authorities as lists, device_id, grant_type) or rfc9068",
    },
    Key {
        name: "device_credentials_spring_aud",
        help: SPRING_AUD_HELP,
    },
    Key {
        name: "device_credentials_spring_user_name",
        help: SPRING_USER_NAME_HELP,
    },
    Key {
        name: "device_credentials_spring_authorities",
        help: SPRING_AUTHORITIES_HELP,
    },
    Key {
        name: "device_credentials_refresh_policy",
        help: "reuse (Spring's default: the same refresh token comes back) or rotate (a new one each time, reuse detection)",
    },
    Key {
        name: "device_credentials_late_reuse",
        help: "under rotate, a rotated refresh token presented after the retry leeway: revoke-family or refuse-token (see header_login_late_reuse)",
    },
    RETRY_LEEWAY,
];

const PREFIX: &str = "device_credentials";

impl Configurable for Settings {
    fn keys(&self) -> &'static [Key] {
        KEYS
    }

    fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        match key {
            "device_credentials_path" => self.path = parse_path(key, value)?,
            "device_credentials_refresh_policy" => {
                self.profile.policy = value
                    .parse()
                    .map_err(|e: tollgate_core::CoreError| format!("{key} = '{value}': {e}"))?;
            }
            _ => return set_session(PREFIX, &mut self.profile, key, value),
        }
        Ok(true)
    }

    fn get(&self, key: &str) -> Option<String> {
        match key {
            "device_credentials_path" => Some(self.path.clone()),
            "device_credentials_refresh_policy" => Some(self.profile.policy.as_str().to_string()),
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
        vec![(
            self.path.clone(),
            post(token).layer(Extension(Arc::new(self.clone()))),
        )]
    }

    fn clone_contract(&self) -> Box<dyn OptionalContract> {
        Box::new(self.clone())
    }
}

/// A Spring OAuth2 error.
struct SpringError {
    status: StatusCode,
    code: &'static str,
    description: String,
    rate: Option<tollgate_core::model::RateInfo>,
    /// `Retry-After` of a 503.
    retry_after: Option<u64>,
}

impl SpringError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            rate: None,
            retry_after: None,
        }
    }

    fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }

    fn bad_client() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Bad client credentials",
        )
    }

    fn into_response(self) -> Response {
        let body = error_body(self.code, &self.description);
        let mut r = (self.status, [(header::CONTENT_TYPE, JSON)], body).into_response();
        if let Some(info) = &self.rate {
            crate::contracts::rate_headers(&mut r, info, true);
        }
        if let Some(secs) = self.retry_after {
            crate::contracts::retry_after(&mut r, secs);
        }
        if self.code == "invalid_client" {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"oauth2/client\""),
            );
        }
        no_store(r)
    }
}

impl From<ParamError> for SpringError {
    fn from(e: ParamError) -> Self {
        Self::invalid_request(e.to_string())
    }
}

const JSON: &str = "application/json;charset=UTF-8";

/// Which request a core outcome answers (Spring words them differently).
#[derive(Clone, Copy)]
enum Request {
    Login,
    Refresh,
}

/// The contract's error map: core outcome → Spring's status, code and text.
fn grant_error(e: GrantError, req: Request) -> SpringError {
    use StatusCode as S;
    match e.clone() {
        GrantError::InvalidClient => SpringError::bad_client(),
        GrantError::UnauthorizedClient(g) => SpringError::new(
            S::UNAUTHORIZED,
            "invalid_client",
            format!("Unauthorized grant type: {g}"),
        ),
        GrantError::InvalidGrant(_) => match req {
            Request::Login => SpringError::new(S::BAD_REQUEST, "invalid_grant", "Bad credentials"),
            Request::Refresh => {
                SpringError::new(S::BAD_REQUEST, "invalid_grant", "Invalid refresh token")
            }
        },
        GrantError::ExpiredGrant => SpringError::new(
            S::UNAUTHORIZED,
            "invalid_token",
            "Invalid refresh token (expired)",
        ),
        GrantError::AudienceRequired(d) | GrantError::InvalidRequest(d) => {
            SpringError::invalid_request(d)
        }
        GrantError::AudienceNotGranted(a) | GrantError::UnknownAudience(a) => {
            SpringError::invalid_request(format!("the client holds no usable API ('{a}')"))
        }
        GrantError::RateLimited(info) => SpringError {
            rate: Some(info),
            ..SpringError::new(
                S::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many token requests for this client; retry after the window resets",
            )
        },
        GrantError::InvalidScope(s) => SpringError::new(
            S::BAD_REQUEST,
            "invalid_scope",
            format!("Invalid scope: {s}"),
        ),
        GrantError::Throttled { retry_after } => SpringError {
            retry_after: Some(retry_after),
            ..SpringError::new(
                S::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many failed attempts; retry later",
            )
        },
        GrantError::Unavailable | GrantError::Busy => SpringError {
            retry_after: e.retry_after(),
            ..SpringError::new(
                S::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "The server cannot issue tokens right now; retry shortly",
            )
        },
    }
}

#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    token_type: &'static str,
    refresh_token: &'a str,
    expires_in: u64,
    scope: &'a str,
    device_id: &'a str,
    client_id: &'a str,
    jti: &'a str,
}

fn success(s: &Session) -> Response {
    let body = serde_json::to_string(&TokenBody {
        access_token: &s.access_token,
        token_type: "bearer",
        refresh_token: s.refresh_token.expose_secret(),
        expires_in: s.expires_in(),
        scope: &s.scope,
        device_id: &s.username,
        client_id: &s.client_id,
        jti: &s.access_jti,
    })
    .unwrap_or_default();
    no_store((StatusCode::OK, [(header::CONTENT_TYPE, JSON)], body).into_response())
}

async fn token(
    State(state): State<AppState>,
    On(env, _): On<Settings>,
    Extension(settings): Extension<Arc<Settings>>,
    Source(source): Source,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (resp, code, client_id) = match handle(
        &state,
        &settings,
        source,
        &env,
        query.as_deref(),
        &headers,
        body,
    )
    .await
    {
        Ok((s, what)) => (success(&s), what, Some(s.client_id)),
        Err(e) => {
            let code = e.code;
            (e.into_response(), code, None)
        }
    };
    stamp(resp, NAME, "token", &env, code, client_id)
}

async fn handle(
    state: &AppState,
    settings: &Settings,
    source: Option<std::net::IpAddr>,
    env: &EnvRuntime,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Session, &'static str), SpringError> {
    let mut params = read_body_lenient(headers, body).await?;
    let mut query_params = Params::default();
    if let Some(q) = query {
        query_params.merge_query(q)?;
    }
    // Query and body together; the same name in both must agree.
    let mut take = |name: &str| -> Result<Option<String>, SpringError> {
        match (query_params.take(name), params.take(name)) {
            (Some(a), Some(b)) if a != b => Err(SpringError::invalid_request(format!(
                "parameter '{name}' differs between the query and the body"
            ))),
            (a, b) => Ok(a.or(b)),
        }
    };
    let grant_type =
        take("grant_type")?.ok_or_else(|| SpringError::invalid_request("Missing grant type"))?;
    let body_id = take("client_id")?;
    let body_secret = take("client_secret")?.map(SecretString::from);
    // Spring's BasicAuthenticationFilter does not URL-decode: RFC 7617.
    let (id, secret) = match authorization(headers, BasicDecoding::Rfc7617) {
        Authorization::Basic { user, password } => (user, password),
        Authorization::None | Authorization::Bearer(_) => match body_id {
            Some(id) => (id, body_secret.unwrap_or_else(|| SecretString::from(""))),
            None => return Err(SpringError::bad_client()),
        },
        Authorization::Malformed => return Err(SpringError::bad_client()),
    };
    let auth = ClientAuth::Secret {
        id: &id,
        secret: &secret,
    };
    let profile = &settings.profile;
    match grant_type.as_str() {
        "device_credentials" => {
            let username = take("username")?
                .ok_or_else(|| SpringError::invalid_request("Missing parameter: username"))?;
            let password = take("password")?
                .map(SecretString::from)
                .ok_or_else(|| SpringError::invalid_request("Missing parameter: password"))?;
            state
                .core
                .login(env, auth, &username, &password, profile, source)
                .await
                .map(|s| (s, "issued"))
                .map_err(|e| grant_error(e, Request::Login))
        }
        "refresh_token" => {
            let token = take("refresh_token")?
                .ok_or_else(|| SpringError::invalid_request("Missing parameter: refresh_token"))?;
            state
                .core
                .refresh(env, auth, &token, profile, source)
                .await
                .map(|s| (s, "refreshed"))
                .map_err(|e| grant_error(e, Request::Refresh))
        }
        other => Err(SpringError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("Unsupported grant type: {other}"),
        )),
    }
}
