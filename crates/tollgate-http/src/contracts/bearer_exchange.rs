//! `bearer-exchange`: a long-lived refresh JWT, sent as a Bearer token,
//! exchanged for a short-lived access JWT. Compatible with Cloudbet's Odds API
//! v2 (`POST /pub/v2/players/access-token`, response `{"token","expireAt"}`).
//!
//! The request has no body; `Accept: application/json` is optional. Every
//! failure answers 401 (503 when the store is down) with one JSON shape,
//! `{"error":"invalid_token","error_description":"…"}`, and
//! `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3).

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use tollgate_core::GrantError;
use tollgate_core::model::Dialect;
use tollgate_core::service::{ClaimShape, EnvRuntime};
use tollgate_core::time::rfc3339;

use crate::AppState;
use crate::contracts::common::{Named, On, error_body, stamp};
use crate::contracts::no_store;
use crate::contracts::registry::{
    Configurable, Key, OptionalContract, format_secs, parse_lifetime, parse_path,
};
use crate::params::{Authorization, BasicDecoding, authorization};

/// The contract's name (for `--contracts` and metrics).
pub const NAME: &str = "bearer-exchange";
/// Default path, as Cloudbet serves it.
pub const DEFAULT_PATH: &str = "/pub/v2/players/access-token";
/// Default access-token lifetime: one day, as Cloudbet documents.
pub const DEFAULT_LIFETIME: u64 = 86_400;

/// The success body, fields in the order Cloudbet's page shows them.
#[derive(serde::Serialize)]
struct TokenBody<'a> {
    token: &'a str,
    #[serde(rename = "expireAt")]
    expire_at: String,
}

/// Where and how the contract answers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Path of the exchange, relative to the environment.
    pub path: String,
    /// Access-token lifetime in seconds, when neither the client nor its
    /// API sets one.
    pub lifetime: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            path: DEFAULT_PATH.into(),
            lifetime: DEFAULT_LIFETIME,
        }
    }
}

impl Named for Settings {
    const NAME: &'static str = NAME;
}

const KEYS: &[Key] = &[
    Key {
        name: "bearer_exchange_path",
        help: "path of the bearer-exchange contract, relative to the environment",
    },
    Key {
        name: "bearer_exchange_lifetime",
        help: "lifetime of access tokens from the bearer-exchange contract (a client's or its API's own lifetime wins)",
    },
];

impl Configurable for Settings {
    fn keys(&self) -> &'static [Key] {
        KEYS
    }

    fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        match key {
            "bearer_exchange_path" => self.path = parse_path(key, value)?,
            "bearer_exchange_lifetime" => self.lifetime = parse_lifetime(key, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn get(&self, key: &str) -> Option<String> {
        match key {
            "bearer_exchange_path" => Some(self.path.clone()),
            "bearer_exchange_lifetime" => Some(format_secs(self.lifetime)),
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

impl OptionalContract for Settings {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Other methods get 405 with `Allow: POST`.
    fn endpoints(&self) -> Vec<(String, MethodRouter<AppState>)> {
        vec![(
            self.path.clone(),
            post(exchange).layer(Extension(Arc::new(self.clone()))),
        )]
    }

    fn clone_contract(&self) -> Box<dyn OptionalContract> {
        Box::new(self.clone())
    }
}

fn error(status: StatusCode, description: &str) -> Response {
    let body = error_body("invalid_token", description);
    let mut r = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    no_store(r)
}

/// The claim layout of the exchanged token: Auth0's (with `gty` naming the
/// refresh) in an environment speaking the Auth0 dialect, else RFC 9068.
fn shape(env: &EnvRuntime) -> ClaimShape {
    match env.env.dialect {
        Dialect::Auth0 => ClaimShape::Auth0 {
            gty: "refresh_token",
        },
        Dialect::Rfc6749 => ClaimShape::Rfc9068,
    }
}

async fn exchange(
    State(state): State<AppState>,
    On(env, _): On<Settings>,
    Extension(settings): Extension<Arc<Settings>>,
    headers: HeaderMap,
) -> Response {
    // Only Bearer is accepted, so the Basic decoding does not matter.
    let (resp, code, client_id) = match authorization(&headers, BasicDecoding::Rfc7617) {
        Authorization::Bearer(token) => {
            match state
                .core
                .exchange_refresh_jwt(&env, &token, settings.lifetime, shape(&env))
                .await
            {
                Ok(issued) => {
                    let body = serde_json::to_string(&TokenBody {
                        token: &issued.access_token,
                        expire_at: rfc3339(issued.expires_at),
                    })
                    .unwrap_or_default();
                    let mut r = (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                        .into_response();
                    if let Some(info) = &issued.rate {
                        crate::contracts::rate_headers(&mut r, info, false);
                    }
                    let outcome = if issued.reused { "reused" } else { "issued" };
                    (no_store(r), outcome, Some(issued.client_id))
                }
                Err(GrantError::RateLimited(info)) => {
                    let body = error_body(
                        "too_many_requests",
                        "the client's token issuance limit is reached; retry after the window resets",
                    );
                    let mut r = (
                        StatusCode::TOO_MANY_REQUESTS,
                        [(header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                        .into_response();
                    crate::contracts::rate_headers(&mut r, &info, true);
                    (no_store(r), "too_many_requests", None)
                }
                Err(GrantError::InvalidGrant(why)) => {
                    tracing::debug!(reason = %why, "refresh JWT refused");
                    (
                        error(
                            StatusCode::UNAUTHORIZED,
                            "the refresh token is invalid, expired or revoked",
                        ),
                        "invalid_token",
                        None,
                    )
                }
                Err(GrantError::Throttled { retry_after }) => {
                    let mut r = error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too many failed attempts; retry later",
                    );
                    crate::contracts::retry_after(&mut r, retry_after);
                    (r, "too_many_attempts", None)
                }
                Err(e @ (GrantError::Unavailable | GrantError::Busy)) => {
                    let mut r = error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the server cannot issue tokens right now; retry shortly",
                    );
                    if let Some(secs) = e.retry_after() {
                        crate::contracts::retry_after(&mut r, secs);
                    }
                    (r, "temporarily_unavailable", None)
                }
                // The exchange authenticates by the refresh JWT alone: every
                // other outcome means the JWT cannot be used, one answer.
                Err(
                    e @ (GrantError::InvalidClient
                    | GrantError::UnauthorizedClient(_)
                    | GrantError::AudienceNotGranted(_)
                    | GrantError::UnknownAudience(_)
                    | GrantError::AudienceRequired(_)
                    | GrantError::InvalidScope(_)
                    | GrantError::ExpiredGrant
                    | GrantError::InvalidRequest(_)),
                ) => {
                    tracing::debug!(reason = %e, "refresh JWT refused");
                    (
                        error(
                            StatusCode::UNAUTHORIZED,
                            "the refresh token is invalid, expired or revoked",
                        ),
                        "invalid_token",
                        None,
                    )
                }
            }
        }
        _ => (
            error(
                StatusCode::UNAUTHORIZED,
                "send the refresh token as 'Authorization: Bearer <refresh JWT>'",
            ),
            "invalid_token",
            None,
        ),
    };
    stamp(resp, NAME, "access-token", &env, code, client_id)
}
