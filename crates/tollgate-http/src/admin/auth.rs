//! Who may call the admin API: a bearer access token of the default
//! environment for the `tollgate-admin` API, active (its client enabled, not
//! revoked), whose scope holds what the route needs. The permission is in
//! the extractor's type ([`Caller<Read>`], [`Caller<Write>`],
//! [`Caller<Secrets>`]), so it is checked before the body is read.
//!
//! Per-environment scoping: a token whose scope holds one or more
//! `admin:env:<name>` permissions reaches only those environments. A route
//! under `/admin/v1/environments/{env}/…` elsewhere is 403 (checked here,
//! from the raw path, before any handler runs: a percent-encoded name never
//! matches, so it fails closed); the environment list and the audit log
//! show only its environments; creating an environment is refused. Because
//! the admin API's own clients live in the default environment, a
//! restricted caller may not change anything that holds or names the
//! `tollgate-admin` API ([`Caller::guard_admin_api`]): it cannot mint itself
//! a wider admin.
//!
//! Refusals follow RFC 6750 §3: 401 with `WWW-Authenticate: Bearer` (and
//! `error="invalid_token"` when a token was presented), 403
//! `insufficient_scope` naming the permission.

use std::collections::BTreeSet;
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
    /// The environments it is limited to (`admin:env:<name>`); `None`:
    /// every one.
    pub envs: Option<BTreeSet<String>>,
    _need: PhantomData<N>,
}

/// The prefix of a per-environment admin permission.
pub const ENV_PREFIX: &str = "admin:env:";

fn forbidden(scope: &str, message: String) -> AdminError {
    AdminError {
        challenge: Some(format!(
            "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{scope}\""
        )),
        ..AdminError::new(StatusCode::FORBIDDEN, "insufficient_scope", message)
    }
}

impl<N> Caller<N> {
    /// Whether it may see or change environment `env`.
    pub fn reaches(&self, env: &str) -> bool {
        self.envs.as_ref().is_none_or(|e| e.contains(env))
    }

    /// A caller limited to some environments may not change what holds or
    /// names the admin API (`holds`) in the environment that has it: that
    /// would let it mint an admin without the limit.
    pub fn guard_admin_api(&self, env: &str, holds: bool) -> Result<(), AdminError> {
        if self.envs.is_some() && env == DEFAULT_ENV && holds {
            return Err(forbidden(
                ADMIN_WRITE,
                format!(
                    "an admin limited to environments may not change what holds the {ADMIN_API} API"
                ),
            ));
        }
        Ok(())
    }
}

/// The environment a request's path addresses, raw (undecoded), if any;
/// and whether it is the environment collection itself.
fn env_of_path(path: &str) -> (Option<&str>, bool) {
    const ENVS: &str = "/admin/v1/environments";
    match path.strip_prefix(ENVS) {
        Some("" | "/") => (None, true),
        Some(rest) => match rest.strip_prefix('/') {
            Some(r) => (r.split('/').next(), false),
            None => (None, false),
        },
        None => (None, false),
    }
}

/// Refuses a limited caller a route outside its environments.
fn check_env(
    envs: Option<&BTreeSet<String>>,
    method: &axum::http::Method,
    path: &str,
) -> Result<(), AdminError> {
    let Some(envs) = envs else {
        return Ok(());
    };
    match env_of_path(path) {
        (Some(env), _) if !envs.contains(env) => Err(forbidden(
            &format!("{ENV_PREFIX}{env}"),
            format!("this admin client may not reach the environment {env}"),
        )),
        (None, true) if method != axum::http::Method::GET => Err(forbidden(
            ADMIN_WRITE,
            "an admin limited to environments may not create one".to_string(),
        )),
        // The admin API itself, in the default environment.
        (Some(env), _) if env == DEFAULT_ENV && method != axum::http::Method::GET => {
            let rest = path.split(&format!("/{env}/")).nth(1).unwrap_or_default();
            // The admin API, and what lets a caller sign or have signed
            // tokens that verify there: imported keys, published keys,
            // trusted issuers.
            let admin_api = format!("apis/{ADMIN_API}");
            let touches = rest == admin_api
                || rest.starts_with(&format!("{admin_api}/"))
                || rest.starts_with("keys/import")
                || rest.starts_with("keys/published")
                || rest.starts_with("trusted-issuers");
            if touches {
                return Err(forbidden(
                    ADMIN_WRITE,
                    format!(
                        "an admin limited to environments may not change the {ADMIN_API} API, \
                         its environment's keys or trusted issuers"
                    ),
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
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
            return Err(forbidden(
                missing,
                format!("this needs the permission {missing}"),
            ));
        }
        let envs: BTreeSet<String> = scope
            .split_whitespace()
            .filter_map(|s| s.strip_prefix(ENV_PREFIX))
            .map(str::to_string)
            .collect();
        let envs = (!envs.is_empty()).then_some(envs);
        check_env(envs.as_ref(), &parts.method, parts.uri.path())?;
        let Source(source) = Source::from_request_parts(parts, state)
            .await
            .unwrap_or(Source(None));
        Ok(Self {
            client_id: claims.client_id.unwrap_or(claims.sub),
            source,
            envs,
            _need: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{audience_has, check_env, env_of_path};
    use axum::http::Method;

    #[test]
    fn a_limited_caller_stays_in_its_environments() {
        assert_eq!(
            env_of_path("/admin/v1/environments/staging/clients"),
            (Some("staging"), false)
        );
        assert_eq!(env_of_path("/admin/v1/environments"), (None, true));
        assert_eq!(env_of_path("/admin/v1/environmentsx"), (None, false));
        assert_eq!(env_of_path("/admin/v1/audit"), (None, false));
        let envs = ["staging".to_string(), "default".to_string()].into();
        let ok = |m: Method, p: &str| check_env(Some(&envs), &m, p).is_ok();
        assert!(ok(Method::GET, "/admin/v1/environments/staging/clients"));
        assert!(!ok(
            Method::GET,
            "/admin/v1/environments/production/clients"
        ));
        assert!(!ok(Method::GET, "/admin/v1/environments/st%61ging"));
        assert!(ok(Method::GET, "/admin/v1/environments"));
        assert!(!ok(Method::POST, "/admin/v1/environments"));
        assert!(ok(
            Method::GET,
            "/admin/v1/environments/default/apis/tollgate-admin"
        ));
        assert!(!ok(
            Method::PATCH,
            "/admin/v1/environments/default/apis/tollgate-admin"
        ));
        assert!(ok(
            Method::PATCH,
            "/admin/v1/environments/default/apis/odds"
        ));
        assert!(!ok(
            Method::POST,
            "/admin/v1/environments/default/keys/import"
        ));
        assert!(!ok(
            Method::POST,
            "/admin/v1/environments/default/trusted-issuers"
        ));
        assert!(ok(
            Method::POST,
            "/admin/v1/environments/staging/keys/import"
        ));
        assert!(check_env(None, &Method::POST, "/admin/v1/environments").is_ok());
    }

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
