//! CORS for browser clients (the Fetch standard's CORS protocol), per
//! environment: which web origins may call tollgate from a page, answered on
//! every contract route and on discovery.
//!
//! Routes come in two kinds. *Credentialed* routes (every token endpoint:
//! the client secret, the user's password, a refresh token or refresh JWT
//! travels in `Authorization`, the body or `Refresh-Token`) answer only
//! origins listed exactly: a `*` in `cors_allowed_origins` does not open
//! them, since any page on the web could then drive a login with what the
//! user types into it. *Public* routes (metadata, JWKS) carry no credential
//! and answer `*` when it is listed.
//!
//! An allowed origin gets `Access-Control-Allow-Origin` (its own origin, or
//! `*` on a public route), every answer to a request with an `Origin`
//! gets `Vary: Origin` (caches must not hand one origin's answer to
//! another), and a preflight (`OPTIONS` with
//! `Access-Control-Request-Method`) is answered here with 204, or 403 for an
//! origin not allowed. `Access-Control-Allow-Credentials` is never sent:
//! tollgate sets no cookies, so a browser client sends its credentials as
//! headers it writes itself (`credentials: "omit"` or the default).
//! Without any origin configured (the default) nothing here happens and an
//! `OPTIONS` gets the route's 405, as before.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::env::Env;

/// The configuration key (registered in `contracts::Settings`).
pub const ORIGINS: &str = "cors_allowed_origins";
/// Its meaning.
pub const ORIGINS_HELP: &str = "web origins (scheme://host[:port], comma-separated) whose pages may call tollgate; * opens only the discovery documents (metadata, JWKS), never a route that carries credentials; none: no CORS answers";

/// Methods a preflight is told the routes take.
const METHODS: &str = "GET, POST";
/// Request headers a browser client may send: credentials, the body's
/// type, and the header-login contract's refresh token.
const HEADERS: &str = "Authorization, Content-Type, Refresh-Token";
/// How long a browser may cache a preflight answer, seconds.
const MAX_AGE: &str = "600";

/// The origins an environment answers (the value of `cors_allowed_origins`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    /// Exact origins, lower case, as browsers serialize them.
    origins: Vec<String>,
    /// `*` was listed: public routes answer any origin.
    any: bool,
}

/// Whether a route carries credentials (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// A token endpoint: exact origins only.
    Credentialed,
    /// Discovery: `*` allowed.
    Public,
}

impl Cors {
    /// Parses `none`, or a comma-separated list of origins and `*`.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut out = Cors::default();
        let v = value.trim();
        if v.is_empty() || v == "none" {
            return Ok(out);
        }
        for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item == "*" {
                out.any = true;
                continue;
            }
            let origin = item.to_ascii_lowercase();
            let authority = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            let valid = authority.is_some_and(|a| {
                !a.is_empty()
                    && a.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '[' | ']')
                    })
            });
            if !valid {
                return Err(format!(
                    "{} = '{value}': '{item}' is not an origin (write scheme://host[:port], no path, or *)",
                    ORIGINS
                ));
            }
            if !out.origins.contains(&origin) {
                out.origins.push(origin);
            }
        }
        Ok(out)
    }

    /// The value in the configuration's syntax.
    pub fn format(&self) -> String {
        let mut items = self.origins.clone();
        if self.any {
            items.push("*".into());
        }
        if items.is_empty() {
            "none".into()
        } else {
            items.join(",")
        }
    }

    /// Whether any origin is configured.
    pub fn is_off(&self) -> bool {
        self.origins.is_empty() && !self.any
    }

    /// The `Access-Control-Allow-Origin` value for `origin` on a route of
    /// `kind`, or `None` when it is not allowed there.
    pub fn allow(&self, origin: &HeaderValue, kind: RouteKind) -> Option<HeaderValue> {
        let o = origin.to_str().ok()?;
        if self.origins.iter().any(|a| a.eq_ignore_ascii_case(o)) {
            return Some(origin.clone());
        }
        (self.any && kind == RouteKind::Public).then(|| HeaderValue::from_static("*"))
    }
}

/// Router layer for routes that carry credentials.
pub async fn credentialed(State(state): State<AppState>, req: Request, next: Next) -> Response {
    answer(&state, req, next, RouteKind::Credentialed).await
}

/// Router layer for the discovery documents.
pub async fn public(State(state): State<AppState>, req: Request, next: Next) -> Response {
    answer(&state, req, next, RouteKind::Public).await
}

async fn answer(state: &AppState, req: Request, next: Next, kind: RouteKind) -> Response {
    let Some(origin) = req.headers().get(header::ORIGIN).cloned() else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    let env = Env::from_request_parts(&mut parts, state).await;
    let req = Request::from_parts(parts, body);
    let Ok(Env(env)) = env else {
        // No such environment: its own 404 says so.
        return next.run(req).await;
    };
    let cors = state.contracts.cors(&env);
    if cors.is_off() {
        return next.run(req).await;
    }
    let allowed = cors.allow(&origin, kind);
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        match &allowed {
            Some(_) => {
                let mut r = StatusCode::NO_CONTENT.into_response();
                let h = r.headers_mut();
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(METHODS),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(HEADERS),
                );
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static(MAX_AGE),
                );
                r
            }
            None => (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "origin not allowed",
            )
                .into_response(),
        }
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    if let Some(v) = allowed {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    vary_origin(h);
    resp
}

/// Adds `Origin` to `Vary`, keeping what is there.
fn vary_origin(h: &mut HeaderMap) {
    let present = h.get_all(header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("origin"))
        })
    });
    if !present {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_print_and_match() {
        let c = Cors::parse("https://App.example.com, http://localhost:3000,*").unwrap_or_default();
        assert_eq!(
            c.format(),
            "https://app.example.com,http://localhost:3000,*"
        );
        assert_eq!(Cors::parse(&c.format()), Ok(c.clone()));
        let o = HeaderValue::from_static("https://app.example.com");
        assert_eq!(c.allow(&o, RouteKind::Credentialed), Some(o.clone()));
        let other = HeaderValue::from_static("https://evil.example");
        assert_eq!(c.allow(&other, RouteKind::Credentialed), None);
        assert_eq!(
            c.allow(&other, RouteKind::Public),
            Some(HeaderValue::from_static("*"))
        );
        assert!(Cors::parse("none").is_ok_and(|c| c.is_off()));
        assert_eq!(Cors::parse("none").map(|c| c.format()), Ok("none".into()));
        for bad in [
            "app.example.com",
            "https://a.example/path",
            "ftp://a",
            "https://",
        ] {
            assert!(Cors::parse(bad).is_err(), "{bad}");
        }
    }
}
