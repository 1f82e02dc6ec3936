//! Who may call the admin API: a bearer access token of the default
//! environment for the `tollgate-admin` API, active (its client enabled, not
//! revoked), whose scope holds what the route needs. The permission is in
//! the extractor's type ([`Caller<Read>`], [`Caller<Write>`],
//! [`Caller<Secrets>`]), so it is checked before the body is read.
//!
//! Refusals follow RFC 6750 §3: 401 with `WWW-Authenticate: Bearer` (and
//! `error="invalid_token"` when a token was presented), 403
//! `insufficient_scope` naming the permission.

use std::marker::PhantomData;
use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use tollgate_core::model::DEFAULT_ENV;
use tollgate_core::service::admin::bootstrap::{ADMIN_API, ADMIN_READ, ADMIN_SECRETS, ADMIN_WRITE};

use super::common::AdminError;
use crate::AppState;
use crate::contracts::common::Source;
use crate::params::{Authorization, BasicDecoding, authorization};

/// The realm of the admin API's challenges.
const REALM: &str = "tollgate-admin";

/// The permissions a route needs.
pub trait Need: Send + Sync + 'static {
    /// Every one of them must be in the token's scope.
    const PERMISSIONS: &'static [&'static str];
}

/// Reading: `admin:read`.
#[derive(Debug)]
pub struct Read;
/// Writing: `admin:write`.
#[derive(Debug)]
pub struct Write;
/// A write that returns or rotates a secret: `admin:write` and `admin:secrets`.
#[derive(Debug)]
pub struct Secrets;

impl Need for Read {
    const PERMISSIONS: &'static [&'static str] = &[ADMIN_READ];
}
impl Need for Write {
    const PERMISSIONS: &'static [&'static str] = &[ADMIN_WRITE];
}
impl Need for Secrets {
    const PERMISSIONS: &'static [&'static str] = &[ADMIN_WRITE, ADMIN_SECRETS];
}

/// An authenticated admin caller holding the permissions `N` needs.
#[derive(Debug)]
pub struct Caller<N> {
    /// The admin client's id (the audit log's actor).
    pub client_id: String,
    /// Where the request came from (the TCP peer).
    pub source: Option<IpAddr>,
    _need: PhantomData<N>,
}

fn unauthorized(presented: bool, message: &str) -> AdminError {
    let challenge = if presented {
        format!(
            "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{message}\""
        )
    } else {
        format!("Bearer realm=\"{REALM}\"")
    };
    AdminError {
        challenge: Some(challenge),
        ..AdminError::new(
            StatusCode::UNAUTHORIZED,
            if presented {
                "invalid_token"
            } else {
                "unauthorized"
            },
            message,
        )
    }
}

/// Whether a token's `aud` (a string or a list) names `api`.
fn audience_has(aud: &serde_json::Value, api: &str) -> bool {
    match aud {
        serde_json::Value::String(s) => s == api,
        serde_json::Value::Array(a) => a.iter().any(|v| v.as_str() == Some(api)),
        _ => false,
    }
}

impl<N: Need> FromRequestParts<AppState> for Caller<N> {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = match authorization(&parts.headers, BasicDecoding::Rfc6749Form) {
            Authorization::Bearer(t) if !t.is_empty() => t,
            Authorization::None => {
                return Err(unauthorized(
                    false,
                    "an admin access token is required (Authorization: Bearer …, audience tollgate-admin)",
                ));
            }
            _ => return Err(unauthorized(true, "send the admin token as a Bearer token")),
        };
        let claims = state
            .core
            .introspect_any(DEFAULT_ENV, &token)
            .await?
            .ok_or_else(|| unauthorized(true, "the token is invalid, expired or revoked"))?;
        if !audience_has(&claims.aud, ADMIN_API) {
            return Err(unauthorized(
                true,
                "the token is not for the admin API (request it with audience=tollgate-admin)",
            ));
        }
        let scope = claims.scope.unwrap_or_default();
        if let Some(missing) = N::PERMISSIONS
            .iter()
            .find(|p| !scope.split_whitespace().any(|s| s == **p))
        {
            return Err(AdminError {
                challenge: Some(format!(
                    "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{missing}\""
                )),
                ..AdminError::new(
                    StatusCode::FORBIDDEN,
                    "insufficient_scope",
                    format!("this needs the permission {missing}"),
                )
            });
        }
        let Source(source) = Source::from_request_parts(parts, state)
            .await
            .unwrap_or(Source(None));
        Ok(Self {
            client_id: claims.client_id.unwrap_or(claims.sub),
            source,
            _need: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::audience_has;

    #[test]
    fn the_audience_may_be_a_string_or_a_list() {
        assert!(audience_has(
            &serde_json::json!("tollgate-admin"),
            "tollgate-admin"
        ));
        assert!(audience_has(
            &serde_json::json!(["x", "tollgate-admin"]),
            "tollgate-admin"
        ));
        assert!(!audience_has(
            &serde_json::json!("tollgate-admin2"),
            "tollgate-admin"
        ));
        assert!(!audience_has(&serde_json::json!(null), "tollgate-admin"));
    }
}
