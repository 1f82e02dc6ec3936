//! Forward-auth without HTTP types: which original request a proxy's check
//! request describes, and the RFC 6750 answer to a [`Decision`].
//!
//! Three dialects, one endpoint:
//! - nginx `auth_request`: `X-Original-Method` and `X-Original-URI` (set in
//!   the `location` of the subrequest; nginx has no defaults for them);
//! - Traefik ForwardAuth: `X-Forwarded-Method`, `X-Forwarded-Uri` (and
//!   `X-Forwarded-Host`, which the front end may use to pick the
//!   environment);
//! - Envoy `ext_authz` (HTTP mode): the check request keeps the original
//!   method, and its path is the configured `path_prefix` followed by the
//!   original path, so the original is what follows `/gate/check`.
//!
//! Only 2xx, 401 and 403 mean something to nginx (anything else is a 500
//! to the client), so every refusal is one of those but a 503 when the key
//! source cannot answer and a 429 when an API key's client is past its
//! `limit:` quota (Traefik and Envoy pass it on).

use crate::decide::{Decision, Denial, Invalid, KeyRefused};
use crate::policy::HeaderNames;

/// The original request a check request describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Original<'a> {
    /// Its method (as sent; the caller upper-cases it).
    pub method: &'a str,
    /// Its target: path and query.
    pub target: &'a str,
}

/// Why a check request does not say which request to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    /// No dialect's description (a misconfigured proxy).
    #[error("the check request names no original method and URI")]
    Missing,
    /// Two descriptions that differ: one of them came from the client.
    #[error("the check request's descriptions of the original request differ")]
    Conflict,
}

/// Reads the original request from a check request: `header` looks a
/// header up by (lower-case) name, `own_method` is the check request's
/// method, `own_rest` what its path has after the forward-auth path (with
/// its query), if anything.
///
/// Every dialect's description present must agree. Proxies pass the
/// client's own headers on to the check, so a client behind Traefik could
/// add an `X-Original-URI` naming a public route (or behind nginx an
/// `X-Forwarded-Uri`); the proxy always sets its own, and a difference is
/// refused rather than resolved by a precedence the client could exploit.
pub fn original<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    own_method: &'a str,
    own_rest: Option<&'a str>,
) -> Result<Original<'a>, Unreadable> {
    let mut found: Option<Original<'a>> = None;
    let mut candidates = Vec::with_capacity(3);
    for (m, u) in [
        ("x-original-method", "x-original-uri"),
        ("x-forwarded-method", "x-forwarded-uri"),
    ] {
        match (header(m), header(u)) {
            (Some(method), Some(target)) => candidates.push(Original { method, target }),
            (None, None) => {}
            // nginx's auth_request subrequest is a GET whatever the original
            // was: half a description cannot be completed by guessing.
            _ => return Err(Unreadable::Conflict),
        }
    }
    if let Some(target) = own_rest.filter(|r| r.starts_with('/')) {
        candidates.push(Original {
            method: own_method,
            target,
        });
    }
    for c in candidates {
        match found {
            None => found = Some(c),
            Some(f) if f.target == c.target && f.method.eq_ignore_ascii_case(c.method) => {}
            Some(_) => return Err(Unreadable::Conflict),
        }
    }
    found.ok_or(Unreadable::Missing)
}

/// An answer in wire terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Status code: 200, 401, 403, 429 or 503.
    pub status: u16,
    /// Headers to send (identity headers on 200, `WWW-Authenticate` on
    /// refusals).
    pub headers: Vec<(String, String)>,
    /// A JSON body on refusals (`error`, `error_description`), which
    /// Traefik relays to the client.
    pub body: Option<String>,
}

/// The answer to `decision`, identity headers named by `names`.
pub fn answer(decision: &Decision, names: &HeaderNames) -> Answer {
    let denial = match decision {
        Decision::Allow(identity) => {
            // All three names always, empty when unknown (a public route):
            // proxies that copy the answer's headers onto the upstream
            // request (Traefik's authResponseHeaders, Envoy's
            // allowed_upstream_headers) then overwrite whatever a client
            // sent under those names; nginx drops an empty one.
            let (client_id, subject, scopes) = match identity {
                Some(id) => (
                    id.client_id.as_deref().unwrap_or(""),
                    id.subject.as_str(),
                    id.scopes.as_str(),
                ),
                None => ("", "", ""),
            };
            let headers = [
                (&names.client_id, client_id),
                (&names.subject, subject),
                (&names.scopes, scopes),
            ]
            .into_iter()
            .map(|(name, value)| {
                // A value that cannot be a header is sent empty rather than
                // mangled (the upstream sees no identity).
                let clean = value
                    .bytes()
                    .all(|b| b == b'\t' || (b' '..0x7f).contains(&b));
                (name.clone(), if clean { value } else { "" }.to_string())
            })
            .collect();
            return Answer {
                status: 200,
                headers,
                body: None,
            };
        }
        Decision::Deny(d) => d,
    };
    let (status, challenge, error, description): (u16, Option<String>, &str, String) = match denial
    {
        Denial::NoRoute => (
            403,
            None,
            "access_denied",
            "no route allows this request".into(),
        ),
        Denial::BadPath => (
            403,
            None,
            "access_denied",
            "the request path is not accepted".into(),
        ),
        Denial::NoToken => (
            401,
            Some("Bearer".into()),
            "invalid_request",
            "an access token is required".into(),
        ),
        Denial::InvalidToken(why) => {
            let d = describe(*why);
            (
                401,
                Some(format!(
                    "Bearer error=\"invalid_token\", error_description=\"{d}\""
                )),
                "invalid_token",
                d.into(),
            )
        }
        Denial::InsufficientScope { scope, any_of } => {
            let d = if *any_of {
                "the access token needs one of the permissions in scope"
            } else {
                "the access token needs every permission in scope"
            };
            (
                403,
                Some(format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{scope}\", error_description=\"{d}\""
                )),
                "insufficient_scope",
                format!("{d}: {scope}"),
            )
        }
        Denial::InvalidApiKey(why) => {
            let d = describe_key(*why);
            (
                401,
                Some(format!(
                    "ApiKey error=\"invalid_api_key\", error_description=\"{d}\""
                )),
                "invalid_api_key",
                d.into(),
            )
        }
        Denial::NotGranted => (
            403,
            None,
            "access_denied",
            "the API key's client is not granted this API".into(),
        ),
        Denial::RateLimited(_) => (
            429,
            None,
            "rate_limited",
            "the client's request limit is reached".into(),
        ),
        Denial::Unavailable => (
            503,
            None,
            "temporarily_unavailable",
            "the token cannot be checked now".into(),
        ),
    };
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(c) = challenge {
        headers.push(("www-authenticate".into(), c));
    }
    if status == 503 {
        headers.push(("retry-after".into(), "1".into()));
    }
    if let Denial::RateLimited(info) = denial {
        headers.push(("retry-after".into(), info.retry_after().to_string()));
        headers.push(("x-ratelimit-limit".into(), info.limit.to_string()));
        headers.push(("x-ratelimit-remaining".into(), info.remaining.to_string()));
        headers.push(("x-ratelimit-reset".into(), info.reset_at.to_string()));
    }
    let body = serde_json::json!({ "error": error, "error_description": description }).to_string();
    Answer {
        status,
        headers,
        body: Some(body),
    }
}

fn describe_key(why: KeyRefused) -> &'static str {
    match why {
        KeyRefused::Ambiguous => "send one API key and no bearer token (or a bearer token alone)",
        KeyRefused::Invalid => "the API key is not valid",
        KeyRefused::Expired => "the API key expired",
        KeyRefused::Revoked => "the API key was revoked",
        KeyRefused::ClientDisabled => "the API key's client is disabled",
    }
}

fn describe(why: Invalid) -> &'static str {
    match why {
        Invalid::Malformed => "the access token is malformed",
        Invalid::Signature => "the access token is not genuine",
        Invalid::Expired => "the access token expired",
        Invalid::NotYetValid => "the access token is not valid yet",
        Invalid::Audience => "the access token is not for this API",
        Invalid::Revoked => "the access token was revoked",
        Invalid::UnknownEnv => "the access token's issuer is unknown",
        Invalid::ClientDisabled => "the access token's client is disabled",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::decide::Identity;

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    #[test]
    fn reads_each_dialect() {
        let o = |method, target| Ok(Original { method, target });
        let nginx = [
            ("x-original-method", "POST"),
            ("x-original-uri", "/v2/a?b=1"),
        ];
        assert_eq!(
            original(headers(&nginx), "GET", None),
            o("POST", "/v2/a?b=1")
        );
        let traefik = [("x-forwarded-method", "DELETE"), ("x-forwarded-uri", "/x")];
        assert_eq!(original(headers(&traefik), "GET", None), o("DELETE", "/x"));
        // Envoy: the original method, the path after the prefix.
        assert_eq!(
            original(headers(&[]), "PUT", Some("/v2/b?c")),
            o("PUT", "/v2/b?c")
        );
        // A URI without its method is not guessed at.
        assert_eq!(
            original(headers(&[("x-original-uri", "/a")]), "GET", None),
            Err(Unreadable::Conflict)
        );
        assert_eq!(
            original(headers(&[]), "GET", None),
            Err(Unreadable::Missing)
        );
        // Agreeing descriptions are fine (methods compared without case).
        let both = [
            ("x-original-method", "get"),
            ("x-original-uri", "/a"),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/a"),
        ];
        assert!(original(headers(&both), "GET", None).is_ok());
    }

    #[test]
    fn a_client_cannot_override_what_the_proxy_says() {
        // Behind Traefik, a client adds nginx's header naming a public route.
        let spoofed = [
            ("x-original-method", "GET"),
            ("x-original-uri", "/health"),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/v2/admin"),
        ];
        assert_eq!(
            original(headers(&spoofed), "GET", None),
            Err(Unreadable::Conflict)
        );
        // Behind Envoy, a client adds a header the path contradicts.
        let envoy = [
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/health"),
        ];
        assert_eq!(
            original(headers(&envoy), "GET", Some("/v2/admin")),
            Err(Unreadable::Conflict)
        );
        let method = [("x-forwarded-method", "GET"), ("x-forwarded-uri", "/a")];
        assert_eq!(
            original(headers(&method), "DELETE", Some("/a")),
            Err(Unreadable::Conflict)
        );
    }

    #[test]
    fn answers_follow_rfc_6750() {
        let names = HeaderNames::default();
        let id = Identity {
            client_id: Some("c1".into()),
            subject: "c1".into(),
            scopes: "a b".into(),
            claims: Some(Arc::new(
                serde_json::from_value(serde_json::json!({
                    "iss": "i", "sub": "c1", "aud": "a", "exp": 1, "iat": 0, "jti": "j",
                }))
                .unwrap(),
            )),
            api_key: None,
        };
        let ok = answer(&Decision::Allow(Some(Arc::new(id))), &names);
        let public = answer(&Decision::Allow(None), &names);
        assert_eq!(
            public.headers,
            [("X-Client-Id", ""), ("X-Subject", ""), ("X-Scopes", "")]
                .map(|(k, v)| (k.to_string(), v.to_string())),
            "a public route's answer clears the identity headers"
        );
        assert_eq!(ok.status, 200);
        assert_eq!(
            ok.headers,
            [
                ("X-Client-Id", "c1"),
                ("X-Subject", "c1"),
                ("X-Scopes", "a b")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        let find = |a: &Answer| {
            a.headers
                .iter()
                .find(|(k, _)| k == "www-authenticate")
                .map(|(_, v)| v.clone())
        };
        let none = answer(&Decision::Deny(Denial::NoToken), &names);
        assert_eq!((none.status, find(&none).as_deref()), (401, Some("Bearer")));
        let bad = answer(
            &Decision::Deny(Denial::InvalidToken(Invalid::Expired)),
            &names,
        );
        assert_eq!(bad.status, 401);
        assert!(
            find(&bad)
                .unwrap_or_default()
                .starts_with("Bearer error=\"invalid_token\"")
        );
        let scope = answer(
            &Decision::Deny(Denial::InsufficientScope {
                scope: "odds:write".into(),
                any_of: false,
            }),
            &names,
        );
        assert_eq!(scope.status, 403);
        assert!(
            find(&scope)
                .unwrap_or_default()
                .contains("scope=\"odds:write\"")
        );
        assert_eq!(answer(&Decision::Deny(Denial::NoRoute), &names).status, 403);
    }
}
