//! The RFC 6749 family: the token endpoint `POST /oauth/token` (here),
//! introspection `POST /oauth/introspect` (RFC 7662, [`introspect`]) and
//! revocation `POST /oauth/revoke` (RFC 7009, [`revoke`]), and the deny
//! list for gates in other processes (`GET /gate/deny-list`). They share client
//! authentication and the RFC 6749 §5.2 error format defined in this file.
//!
//! The token endpoint accepts `application/x-www-form-urlencoded` and `application/json` bodies,
//! client authentication by HTTP Basic (`client_secret_basic`) or in the body
//! (`client_secret_post`), and `grant_type=client_credentials` with an optional
//! `audience` (Auth0 style) or `resource` (RFC 8707) and `scope`. Errors are
//! RFC 6749 §5.2 JSON; nothing secret is ever echoed.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tollgate_core::GrantError;
use tollgate_core::model::{Dialect, GrantType};
use tollgate_core::service::{ClaimShape, ClientCredentials};

use crate::AppState;
use crate::contracts::common::Source;
use crate::contracts::no_store;
use crate::contracts::registry::{Configurable, Key, format_secs, parse_lifetime};
use crate::env::Env;
use crate::params::{Authorization, BasicDecoding, ParamError, Params, authorization, read_body};

/// Grant types this contract serves (listed in the RFC 8414 metadata).
pub const SERVED_GRANTS: &[GrantType] = &[GrantType::ClientCredentials];

/// Path of the token endpoint, relative to the environment.
pub const TOKEN_PATH: &str = "/oauth/token";

mod auth0;
mod deny_list;
mod introspect;
mod revoke;

/// Path of the introspection endpoint (RFC 7662).
pub const INTROSPECT_PATH: &str = "/oauth/introspect";
/// Path of the revocation endpoint (RFC 7009).
pub const REVOKE_PATH: &str = "/oauth/revoke";
pub use deny_list::DENY_LIST_PATH;

/// Default access-token lifetime of the token endpoint: 10 minutes.
pub const DEFAULT_LIFETIME: u64 = tollgate_core::model::DEFAULT_TOKEN_LIFETIME;

/// The token endpoint's settings (always on, so not an optional contract;
/// registered in `registry::common`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Access-token lifetime in seconds, when neither the client nor its
    /// API sets one.
    pub lifetime: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            lifetime: DEFAULT_LIFETIME,
        }
    }
}

const KEYS: &[Key] = &[Key {
    name: "rfc6749_token_lifetime",
    help: "lifetime of access tokens from the rfc6749 token endpoint (a client's or its API's own lifetime wins)",
}];

impl Configurable for Settings {
    fn keys(&self) -> &'static [Key] {
        KEYS
    }

    fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        match key {
            "rfc6749_token_lifetime" => self.lifetime = parse_lifetime(key, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn get(&self, key: &str) -> Option<String> {
        match key {
            "rfc6749_token_lifetime" => Some(format_secs(self.lifetime)),
            _ => None,
        }
    }

    fn clone_box(&self) -> Box<dyn Configurable> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn longest_access_lifetime(&self) -> u64 {
        self.lifetime
    }
}

/// Routes of this contract. Other methods get 405 with `Allow: POST`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(TOKEN_PATH, post(token))
        .route(INTROSPECT_PATH, post(introspect::introspect))
        .route(REVOKE_PATH, post(revoke::revoke))
        .route(DENY_LIST_PATH, get(deny_list::deny_list))
}

/// An RFC 6749 §5.2 error.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
    basic_challenge: bool,
    client_id: Option<String>,
    rate: Option<tollgate_core::model::RateInfo>,
    /// `Retry-After` of a 503.
    retry_after: Option<u64>,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            basic_challenge: false,
            client_id: None,
            rate: None,
            retry_after: None,
        }
    }

    fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = crate::contracts::common::error_body(self.code, &self.description);
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Some(info) = &self.rate {
            crate::contracts::rate_headers(&mut resp, info, true);
        }
        if let Some(secs) = self.retry_after {
            crate::contracts::retry_after(&mut resp, secs);
        }
        if self.basic_challenge {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tollgate\", charset=\"UTF-8\""),
            );
        }
        no_store(resp)
    }
}

/// Contract name in metrics.
const CONTRACT: &str = "rfc6749";

/// A handled request: the response, its outcome word, the authenticated client.
pub(super) type Handled = (Response, &'static str, Option<String>);

/// Turns a handler's result into the response, stamped with the [`Outcome`]
/// the request log and metrics read.
pub(super) fn respond(
    env: &tollgate_core::service::EnvRuntime,
    endpoint: &'static str,
    result: Result<Handled, OAuthError>,
) -> Response {
    let (resp, code, client_id) = match result {
        Ok(h) => h,
        Err(e) => {
            let (code, client_id) = (e.code, e.client_id.clone());
            (e.into_response(), code, client_id)
        }
    };
    crate::contracts::common::stamp(resp, CONTRACT, endpoint, env, code, client_id)
}

impl From<ParamError> for OAuthError {
    fn from(e: ParamError) -> Self {
        match e {
            ParamError::TooLarge => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                e.to_string(),
            ),
            other => Self::invalid_request(other.to_string()),
        }
    }
}

/// Reads the body, authenticates the calling client and takes the `token`
/// parameter: the common start of introspection and revocation.
pub(super) async fn caller_and_token(
    state: &AppState,
    env: &tollgate_core::service::EnvRuntime,
    source: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(std::sync::Arc<tollgate_core::model::Client>, String), OAuthError> {
    let mut params = read_body(headers, body).await?;
    let presented = presented_credentials(headers, &mut params)?;
    let client = state
        .core
        .authenticate_from(env, &presented.client_id, &presented.secret, source)
        .await
        .map_err(|e| map_grant_error(e, presented.basic))?;
    let token = params
        .take("token")
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    Ok((client, token))
}

/// The contract's error map: core outcome → RFC 6749 / RFC 8707 error.
fn map_grant_error(e: GrantError, basic: bool) -> OAuthError {
    use StatusCode as S;
    match e.clone() {
        GrantError::InvalidClient => OAuthError {
            basic_challenge: basic,
            ..OAuthError::new(
                S::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            )
        },
        GrantError::UnauthorizedClient(g) => OAuthError::new(
            S::BAD_REQUEST,
            "unauthorized_client",
            format!("the client is not allowed to use the grant type '{g}'"),
        ),
        GrantError::AudienceNotGranted(a) | GrantError::UnknownAudience(a) => OAuthError::new(
            S::BAD_REQUEST,
            "invalid_target",
            format!("the audience '{a}' is unknown or not granted to this client"),
        ),
        GrantError::AudienceRequired(d) => OAuthError::invalid_request(d),
        GrantError::InvalidScope(s) => OAuthError::new(
            S::BAD_REQUEST,
            "invalid_scope",
            format!("the client does not hold the scope: {s}"),
        ),
        GrantError::InvalidRequest(d) => OAuthError::invalid_request(d),
        GrantError::InvalidGrant(_) | GrantError::ExpiredGrant => OAuthError::new(
            S::BAD_REQUEST,
            "invalid_grant",
            "the grant is invalid, expired or revoked",
        ),
        GrantError::RateLimited(info) => OAuthError {
            rate: Some(info),
            ..OAuthError::new(
                S::TOO_MANY_REQUESTS,
                "too_many_requests",
                "the client's token issuance limit is reached: reuse the token you have, or retry after the window resets",
            )
        },
        GrantError::Throttled { retry_after } => OAuthError {
            retry_after: Some(retry_after),
            ..OAuthError::new(
                S::TOO_MANY_REQUESTS,
                "too_many_requests",
                "too many failed attempts; retry after the time Retry-After gives",
            )
        },
        GrantError::Unavailable | GrantError::Busy => OAuthError {
            retry_after: e.retry_after(),
            ..OAuthError::new(
                S::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the server cannot issue tokens right now; retry shortly",
            )
        },
    }
}

#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    scope: &'a str,
}

/// Client credentials as presented, before authentication.
pub(super) struct Presented {
    client_id: String,
    secret: SecretString,
    basic: bool,
}

/// Why no usable client credentials were presented; each dialect words it.
#[derive(Debug, Clone, Copy)]
enum CredentialProblem {
    /// Header and body both carry credentials, and they differ.
    Conflicting,
    /// The Authorization header is not valid HTTP Basic.
    MalformedHeader,
    /// A client id without a secret.
    SecretMissing,
    /// Nothing at all.
    Missing,
}

impl From<CredentialProblem> for OAuthError {
    fn from(p: CredentialProblem) -> Self {
        let unauthorized = |d: &str| OAuthError {
            basic_challenge: true,
            ..OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
        };
        match p {
            CredentialProblem::Conflicting => OAuthError::invalid_request(
                "client credentials were sent both in the Authorization header and in the body, and they differ; use one method",
            ),
            CredentialProblem::MalformedHeader => {
                unauthorized("the Authorization header is not valid HTTP Basic")
            }
            CredentialProblem::SecretMissing => OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client_secret is missing: authenticate with HTTP Basic or client_id and client_secret in the body",
            ),
            CredentialProblem::Missing => unauthorized(
                "client authentication is required: HTTP Basic or client_id and client_secret in the body",
            ),
        }
    }
}

/// Finds the client credentials in the header and/or body. Both at once is
/// accepted only when they agree.
fn presented_credentials(
    headers: &HeaderMap,
    params: &mut Params,
) -> Result<Presented, CredentialProblem> {
    let body_id = params.take("client_id");
    let body_secret = params.take("client_secret").map(SecretString::from);
    // RFC 6749 §2.3.1: the id and secret are form-encoded inside Basic.
    match authorization(headers, BasicDecoding::Rfc6749Form) {
        Authorization::Basic { user, password } => {
            let differs = body_id.as_ref().is_some_and(|id| *id != user)
                || body_secret
                    .as_ref()
                    .is_some_and(|s| s.expose_secret() != password.expose_secret());
            if differs {
                return Err(CredentialProblem::Conflicting);
            }
            Ok(Presented {
                client_id: user,
                secret: password,
                basic: true,
            })
        }
        Authorization::Malformed => Err(CredentialProblem::MalformedHeader),
        Authorization::None | Authorization::Bearer(_) => match (body_id, body_secret) {
            (Some(client_id), Some(secret)) => Ok(Presented {
                client_id,
                secret,
                basic: false,
            }),
            (Some(_), None) => Err(CredentialProblem::SecretMissing),
            _ => Err(CredentialProblem::Missing),
        },
    }
}

async fn token(
    State(state): State<AppState>,
    Env(env): Env,
    Source(source): Source,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(
        &env,
        "token",
        handle(&state, &env, source, &headers, body).await,
    )
}

async fn handle(
    state: &AppState,
    env: &tollgate_core::service::EnvRuntime,
    source: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Handled, OAuthError> {
    let auth0 = env.env.dialect == Dialect::Auth0;
    let mut params = read_body(headers, body).await?;
    if auth0 {
        auth0::normalize(&mut params)?;
    }
    let Some(grant_type) = params.get("grant_type") else {
        return Err(if auth0 {
            auth0::missing("grant_type")
        } else {
            OAuthError::invalid_request("grant_type is missing")
        });
    };
    if grant_type != GrantType::ClientCredentials.as_str() {
        return Err(if auth0 {
            auth0::unsupported_grant_type(grant_type)
        } else {
            OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type '{grant_type}' is not supported here; use client_credentials"),
            )
        });
    }
    let presented = presented_credentials(headers, &mut params).map_err(|p| {
        if auth0 {
            auth0::credential_error(p)
        } else {
            OAuthError::from(p)
        }
    })?;
    let audience = match (params.get("audience"), params.get("resource")) {
        (Some(a), Some(r)) if a != r => {
            return Err(OAuthError::invalid_request(
                "audience and resource name different APIs; send one",
            ));
        }
        (a, r) => a.or(r),
    };
    let req = ClientCredentials {
        client_id: &presented.client_id,
        client_secret: &presented.secret,
        audience,
        scope: params.get("scope"),
        source,
        default_lifetime: crate::contracts::setting::<Settings>(state, env)
            .map_or(DEFAULT_LIFETIME, |s| s.lifetime),
        shape: if auth0 {
            ClaimShape::Auth0 {
                gty: "client-credentials",
            }
        } else {
            ClaimShape::Rfc9068
        },
    };
    let issued = state
        .core
        .client_credentials(env, &req)
        .await
        .map_err(|e| {
            let mut err = if auth0 {
                auth0::grant_error(e)
            } else {
                map_grant_error(e, presented.basic)
            };
            // The presented id is logged only once it is known to be a real client.
            if !matches!(err.code, "invalid_client" | "access_denied")
                || err.status != StatusCode::UNAUTHORIZED
            {
                err.client_id = Some(presented.client_id.clone());
            }
            err
        })?;
    let body = if auth0 {
        auth0::token_body(&issued)
    } else {
        serde_json::to_string(&TokenBody {
            access_token: &issued.access_token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            scope: &issued.scope,
        })
        .unwrap_or_default()
    };
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if let Some(info) = &issued.rate {
        crate::contracts::rate_headers(&mut resp, info, false);
    }
    let outcome = if issued.reused { "reused" } else { "issued" };
    Ok((no_store(resp), outcome, Some(issued.client_id)))
}
