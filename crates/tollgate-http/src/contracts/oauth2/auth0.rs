//! The `auth0` dialect of the token endpoint, for environments created or
//! updated with `--dialect auth0`: the same client_credentials grant, read
//! and answered as Auth0 does (Sportradar's page). The core stamps the claims
//! (`sub` = `<client_id>@clients`, `azp`, `gty`); this file owns the wire side:
//!
//! - the hyphenated field names of the page's table (`client-id`,
//!   `client-secret`, `grant-type`) are accepted beside the underscored ones;
//! - errors: bad client or secret → 401 `access_denied` "Unauthorized";
//!   an audience the client is not granted, or no API at all → 403
//!   `access_denied` naming it; a grant the client may not use → 403
//!   `unauthorized_client`; missing parameters → 400 `invalid_request`;
//! - the success body in Auth0's field order, `scope` only when there is one.

use axum::http::StatusCode;
use serde::Serialize;
use tollgate_core::GrantError;
use tollgate_core::service::Issued;

use super::{CredentialProblem, OAuthError};
use crate::params::{ParamError, Params};

/// Hyphenated names Auth0's documentation tables use, and their RFC names.
const ALIASES: &[(&str, &str)] = &[
    ("client-id", "client_id"),
    ("client-secret", "client_secret"),
    ("grant-type", "grant_type"),
];

/// Renames the hyphenated aliases; the same field under both names is a duplicate.
pub(super) fn normalize(params: &mut Params) -> Result<(), ParamError> {
    for (from, to) in ALIASES {
        params.rename(from, to)?;
    }
    Ok(())
}

fn error(status: StatusCode, code: &'static str, description: impl Into<String>) -> OAuthError {
    OAuthError::new(status, code, description)
}

/// A required parameter is absent.
pub(super) fn missing(name: &str) -> OAuthError {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        format!("Missing required parameter: {name}"),
    )
}

/// The grant type is not one this endpoint serves.
pub(super) fn unsupported_grant_type(g: &str) -> OAuthError {
    error(
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
        format!("Unsupported grant type: {g}"),
    )
}

fn unauthorized() -> OAuthError {
    error(StatusCode::UNAUTHORIZED, "access_denied", "Unauthorized")
}

/// Missing or unusable client credentials.
pub(super) fn credential_error(p: CredentialProblem) -> OAuthError {
    match p {
        CredentialProblem::Missing => missing("client_id"),
        CredentialProblem::Conflicting => error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Client credentials were sent in the Authorization header and in the body, and they differ",
        ),
        CredentialProblem::MalformedHeader | CredentialProblem::SecretMissing => unauthorized(),
    }
}

/// The dialect's error map: core outcome → Auth0's status, code and text.
pub(super) fn grant_error(e: GrantError) -> OAuthError {
    use StatusCode as S;
    match e.clone() {
        GrantError::InvalidClient => unauthorized(),
        GrantError::UnauthorizedClient(g) => error(
            S::FORBIDDEN,
            "unauthorized_client",
            format!("Grant type '{g}' not allowed for the client."),
        ),
        GrantError::AudienceNotGranted(a) => error(
            S::FORBIDDEN,
            "access_denied",
            format!(
                "Client is not authorized to access \"{a}\". A client grant for this API must be created first."
            ),
        ),
        GrantError::UnknownAudience(a) => error(
            S::FORBIDDEN,
            "access_denied",
            format!("Service not found: {a}"),
        ),
        GrantError::AudienceRequired(_) => missing("audience"),
        GrantError::InvalidScope(s) => error(
            S::FORBIDDEN,
            "access_denied",
            format!("Client has not been granted scopes: {s}"),
        ),
        GrantError::InvalidRequest(d) => error(S::BAD_REQUEST, "invalid_request", d),
        GrantError::InvalidGrant(_) | GrantError::ExpiredGrant => {
            error(S::FORBIDDEN, "invalid_grant", "Invalid grant")
        }
        GrantError::RateLimited(info) => OAuthError {
            rate: Some(info),
            ..error(
                S::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many token requests: reuse the token until it is about to expire",
            )
        },
        // Auth0's own answer to brute force (its "too_many_attempts").
        GrantError::Throttled { retry_after } => OAuthError {
            retry_after: Some(retry_after),
            ..error(
                S::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "Too many failed attempts; try again later",
            )
        },
        GrantError::Unavailable | GrantError::Busy => OAuthError {
            retry_after: e.retry_after(),
            ..error(
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
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
    expires_in: u64,
    token_type: &'static str,
}

/// The success body, fields in Auth0's order.
pub(super) fn token_body(issued: &Issued) -> String {
    serde_json::to_string(&TokenBody {
        access_token: &issued.access_token,
        scope: &issued.scope,
        expires_in: issued.expires_in,
        token_type: "Bearer",
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyphenated_names_become_rfc_names_and_both_at_once_is_a_duplicate() {
        let mut p = Params::default();
        assert!(
            p.merge_query("client-id=a&grant-type=client_credentials")
                .is_ok()
        );
        assert!(normalize(&mut p).is_ok());
        assert_eq!(p.get("client_id"), Some("a"));
        assert_eq!(p.get("grant_type"), Some("client_credentials"));
        let mut both = Params::default();
        assert!(both.merge_query("client-id=a&client_id=a").is_ok());
        assert_eq!(
            normalize(&mut both).err(),
            Some(ParamError::Duplicate("client_id".into()))
        );
    }
}
