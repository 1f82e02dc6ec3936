//! Wire contracts. One module per contract: it owns its routes, translates
//! its wire format to a core request and back, and maps core outcomes to its
//! own error format. An optional contract (one an environment switches on)
//! implements [`registry::OptionalContract`] and is registered by one line
//! in [`registry::all`]; what contracts share is in [`common`].
//!
//! | module | contract | compatible with |
//! |---|---|---|
//! | [`oauth2`] | RFC 6749 token endpoint `POST /oauth/token` (form or JSON body), RFC 7662 introspection, RFC 7009 revocation | any OAuth 2.0 client; Sportradar's and the JSON client_credentials samples |
//! | [`discovery`] | RFC 8414 metadata (also at `/.well-known/openid-configuration`, with OpenID Discovery's fields) and RFC 7517 JWKS | any OAuth 2.0 / JWT verifier, Auth0 SDKs |
//! | [`oauth2`] with `--dialect auth0` | the same token endpoint answered as Auth0 answers (`client-id`, `sub=<id>@clients`, `access_denied`) | Sportradar (Auth0) |
//! | [`bearer_exchange`] (`bearer-exchange`) | refresh JWT as Bearer → `{"token","expireAt"}` | Cloudbet Odds API v2 |
//! | [`device_credentials`] (`device-credentials`, dialect `spring`) | `POST /v1/token?grant_type=device_credentials` / `refresh_token` | Dive (Spring Security OAuth2) |
//! | [`header_login`] (`header-login`) | `GET /v2/authentication/login` with Basic → `Set-Authorization` / `Set-Refresh-Token`; `refresh`, `logout` | Tradecloud |

pub mod bearer_exchange;
pub mod common;
pub mod device_credentials;
pub mod discovery;
pub mod header_login;
pub mod oauth2;
pub mod registry;

use std::collections::BTreeSet;

use axum::http::{HeaderValue, header};
use axum::response::Response;

/// Adds `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`
/// (Unix seconds) for a client under an issuance limit, and `Retry-After`
/// (seconds) when the request was refused.
pub(crate) fn rate_headers(
    resp: &mut Response,
    info: &tollgate_core::model::RateInfo,
    refused: bool,
) {
    let h = resp.headers_mut();
    let mut put = |name: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(header::HeaderName::from_static(name), v);
        }
    };
    put("x-ratelimit-limit", info.limit.to_string());
    put("x-ratelimit-remaining", info.remaining.to_string());
    put("x-ratelimit-reset", info.reset_at.to_string());
    if refused {
        put("retry-after", info.retry_after().to_string());
    }
}

/// Adds `Retry-After: secs` (a 503 the client should retry later, RFC 9110 §10.2.3).
pub(crate) fn retry_after(resp: &mut Response, secs: u64) {
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

/// Adds `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub(crate) fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// The optional contracts with their settings, and where they are enabled.
#[derive(Debug)]
pub struct Settings {
    /// Contracts the server's configuration (`contracts`, `serve
    /// --contracts`) enables in the default environment, on top of those an
    /// environment enables itself (`env update --contracts`).
    pub default_env: BTreeSet<String>,
    /// Every registered optional contract, configured.
    pub optional: Vec<Box<dyn registry::OptionalContract>>,
    /// Web origins allowed to call from a browser (`cors_allowed_origins`);
    /// read only through [`Settings::cors`].
    pub cors: crate::cors::Cors,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_env: BTreeSet::new(),
            optional: registry::all(),
            cors: crate::cors::Cors::default(),
        }
    }
}

impl Settings {
    /// Sets a contract's configuration key (every contract that takes it,
    /// for a [`registry::SHARED`] key); `Ok(false)` if none has it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        if key == crate::cors::ORIGINS {
            self.cors = crate::cors::Cors::parse(value)?;
            return Ok(true);
        }
        let mut taken = false;
        for c in &mut self.optional {
            taken |= c.set(key, value)?;
        }
        Ok(taken)
    }

    /// Every contract's keys with their current values, in registry order,
    /// each key once, then the keys every contract shares (CORS).
    pub fn values(&self) -> Vec<(registry::Key, String)> {
        let mut out: Vec<(registry::Key, String)> = Vec::new();
        for c in &self.optional {
            for k in c.keys() {
                if !out.iter().any(|(seen, _)| seen.name == k.name) {
                    out.push((*k, c.get(k.name).unwrap_or_default()));
                }
            }
        }
        let cors = registry::Key {
            name: crate::cors::ORIGINS,
            help: crate::cors::ORIGINS_HELP,
        };
        out.push((cors, self.cors.format()));
        out
    }

    /// The CORS origins of `env`. Server-wide today; the one place to read
    /// them, so that a per-environment value can take over here.
    pub fn cors(&self, _env: &tollgate_core::service::EnvRuntime) -> &crate::cors::Cors {
        &self.cors
    }

    /// Checks that no two routes share a path (configured paths included),
    /// which would otherwise stop the router from being built.
    pub fn check_paths(&self) -> Result<(), String> {
        let mut seen: Vec<(String, &str)> = [
            (oauth2::TOKEN_PATH, "rfc6749 token endpoint"),
            (oauth2::INTROSPECT_PATH, "introspection"),
            (oauth2::REVOKE_PATH, "revocation"),
            ("/healthz", "health"),
            ("/readyz", "readiness"),
            ("/metrics", "metrics"),
        ]
        .into_iter()
        .map(|(p, w)| (p.to_string(), w))
        .collect();
        for c in &self.optional {
            for path in c.paths() {
                let what = c.name();
                if path.starts_with("/.well-known/") || path.starts_with("/e/") {
                    return Err(format!("the path {path} of {what} is reserved"));
                }
                if let Some((_, other)) = seen.iter().find(|(p, _)| *p == path) {
                    return Err(format!("{what} and {other} cannot share the path {path}"));
                }
                seen.push((path, what));
            }
        }
        Ok(())
    }

    /// Whether contract `name` answers in `env`.
    pub fn enabled(&self, env: &tollgate_core::service::EnvRuntime, name: &str) -> bool {
        env.env.contracts.contains(name)
            || (env.env.name == tollgate_core::model::DEFAULT_ENV
                && self.default_env.contains(name))
    }
}

/// The names of the contracts that can be switched on per environment
/// (`rfc6749` and discovery are always on).
pub fn optional_names() -> Vec<&'static str> {
    registry::all().iter().map(|c| c.name()).collect()
}

/// Parses `all` or a comma-separated list of contract names (`rfc6749` is
/// accepted and ignored: it is always on).
pub fn parse_list(v: &str) -> Result<BTreeSet<String>, String> {
    let known = optional_names();
    let mut out = BTreeSet::new();
    for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name {
            "all" => out.extend(known.iter().map(|c| (*c).to_string())),
            "rfc6749" | "none" => {}
            n if known.contains(&n) => {
                out.insert(n.to_string());
            }
            n => {
                return Err(format!(
                    "unknown contract '{n}' (known: rfc6749, {}, all or none)",
                    known.join(", ")
                ));
            }
        }
    }
    Ok(out)
}
