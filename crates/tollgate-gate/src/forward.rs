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
//! source cannot answer.

use crate::decide::{Decision, Denial, Invalid};
use crate::policy::HeaderNames;

/// The original request a check request describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Original<'a> {
    /// Its method (as sent; the caller upper-cases it).
    pub method: &'a str,
    /// Its target: path and query.
    pub target: &'a str,
}

/// Reads the original request from a check request: `header` looks a
/// header up by (lower-case) name, `own_method` is the check request's
/// method, `own_rest` what its path has after the forward-auth path (with
/// its query), if anything. `None`: the proxy said nothing usable.
pub fn original<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    own_method: &'a str,
    own_rest: Option<&'a str>,
) -> Option<Original<'a>> {
    for (m, u) in [
        ("x-original-method", "x-original-uri"),
        ("x-forwarded-method", "x-forwarded-uri"),
    ] {
        if let Some(target) = header(u) {
            // nginx's auth_request subrequest is a GET whatever the original
            // was: without the method header the route cannot be chosen.
            let method = header(m)?;
            return Some(Original { method, target });
        }
    }
    own_rest
        .filter(|r| r.starts_with('/'))
        .map(|target| Original {
            method: own_method,
            target,
        })
}

/// An answer in wire terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Status code: 200, 401, 403 or 503.
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
            let mut headers = Vec::new();
            if let Some(id) = identity {
                let mut push = |name: &str, value: &str| {
                    // A value that cannot be a header is left out rather
                    // than mangled (the upstream sees no identity).
                    if value
                        .bytes()
                        .all(|b| b == b'\t' || (b' '..0x7f).contains(&b))
                    {
                        headers.push((name.to_string(), value.to_string()));
                    }
                };
                if let Some(c) = &id.client_id {
                    push(&names.client_id, c);
                }
                push(&names.subject, &id.subject);
                push(&names.scopes, &id.scopes);
            }
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
    let body = serde_json::json!({ "error": error, "error_description": description }).to_string();
    Answer {
        status,
        headers,
        body: Some(body),
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
        let nginx = [
            ("x-original-method", "POST"),
            ("x-original-uri", "/v2/a?b=1"),
        ];
        assert_eq!(
            original(headers(&nginx), "GET", None),
            Some(Original {
                method: "POST",
                target: "/v2/a?b=1"
            })
        );
        let traefik = [("x-forwarded-method", "DELETE"), ("x-forwarded-uri", "/x")];
        assert_eq!(
            original(headers(&traefik), "GET", None),
            Some(Original {
                method: "DELETE",
                target: "/x"
            })
        );
        // Envoy: the original method, the path after the prefix.
        assert_eq!(
            original(headers(&[]), "PUT", Some("/v2/b?c")),
            Some(Original {
                method: "PUT",
                target: "/v2/b?c"
            })
        );
        // A URI without its method is not guessed at.
        assert_eq!(
            original(headers(&[("x-original-uri", "/a")]), "GET", None),
            None
        );
        assert_eq!(original(headers(&[]), "GET", None), None);
    }

    #[test]
    fn answers_follow_rfc_6750() {
        let names = HeaderNames::default();
        let id = Identity {
            client_id: Some("c1".into()),
            subject: "c1".into(),
            scopes: "a b".into(),
        };
        let ok = answer(&Decision::Allow(Some(Arc::new(id))), &names);
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
