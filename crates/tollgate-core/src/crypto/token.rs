//! Access tokens: RFC 9068 JWT claims, minting and verification.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::crypto::keys::{SigningKey, jwt_alg};

/// The claims of an RFC 9068 access token (client_credentials shape).
#[derive(Debug, Serialize)]
pub struct AccessClaims<'a> {
    /// Issuer.
    pub iss: &'a str,
    /// Subject: the client id for client_credentials (`<id>@clients` in
    /// the Auth0 dialect), the user for user grants.
    pub sub: &'a str,
    /// Audience: the API identifier.
    pub aud: &'a str,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Unique token id.
    pub jti: &'a str,
    /// The client.
    pub client_id: &'a str,
    /// Space-separated permissions.
    pub scope: &'a str,
    /// Authorized party (Auth0 dialect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azp: Option<&'a str>,
    /// Grant type, hyphenated (Auth0 dialect: `client-credentials`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gty: Option<&'static str>,
    /// The granted permissions as a list (Auth0's RBAC "Add Permissions in
    /// the Access Token", for APIs that ask for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<&'a str>>,
    /// The client's extra claims.
    #[serde(flatten)]
    pub extra: &'a serde_json::Map<String, serde_json::Value>,
}

/// The claims of an access token in the Spring Security OAuth2 shape (the
/// `device-credentials` contract): `aud`, `scope` and `authorities` as
/// lists, `device_id`, `grant_type`, `user_name` (optional); plus `iss`,
/// `sub` and `iat` so that the gate and introspection read it like any
/// other token; then the client's extra claims.
#[derive(Debug, Serialize)]
pub struct SpringClaims<'a> {
    /// Issuer.
    pub iss: &'a str,
    /// Subject: the user.
    pub sub: &'a str,
    /// Audience: a list, or a string.
    pub aud: serde_json::Value,
    /// The user (Spring's claim name), unless switched off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<&'a str>,
    /// The device (the user that logged in).
    pub device_id: &'a str,
    /// The grant the session started with.
    pub grant_type: &'a str,
    /// Permissions, as a list.
    pub scope: Vec<&'a str>,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Spring authorities: the permissions, or the roles.
    pub authorities: Vec<&'a str>,
    /// The client.
    pub client_id: &'a str,
    /// Token id.
    pub jti: &'a str,
    /// The client's extra claims, but those named like the claims above.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The claims [`SpringClaims`] writes itself: an extra claim of the same
/// name is left out rather than written twice.
pub const SPRING_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "user_name",
    "device_id",
    "grant_type",
    "scope",
    "exp",
    "iat",
    "authorities",
    "client_id",
    "jti",
];

/// Signs `claims` with `key`.
pub fn mint(key: &SigningKey, claims: &impl Serialize) -> Result<String, CoreError> {
    let json = serde_json::to_vec(claims).map_err(|e| CoreError::Crypto(e.to_string()))?;
    key.sign(&json)
}

/// Joins permissions into a scope string (sorted, space-separated).
pub fn scope_string(perms: &BTreeSet<String>) -> String {
    let mut s = String::new();
    for p in perms {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(p);
    }
    s
}

/// The claims a verifier reads back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct VerifiedClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Audience.
    pub aud: serde_json::Value,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Token id.
    pub jti: String,
    /// Client.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Scope: a space-separated string, or a list (Spring shape) joined
    /// into one.
    #[serde(default, deserialize_with = "scope_any")]
    pub scope: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

fn scope_any<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scope {
        Text(String),
        List(Vec<String>),
    }
    Ok(Option::<Scope>::deserialize(d)?.map(|s| match s {
        Scope::Text(t) => t,
        Scope::List(l) => l.join(" "),
    }))
}

/// Why a token did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a JWT, or not one of ours (unknown `kid`, wrong `typ`).
    #[error("malformed or foreign token")]
    Malformed,
    /// Bad signature, wrong issuer or audience.
    #[error("invalid token")]
    Invalid,
    /// Expired.
    #[error("expired token")]
    Expired,
}

/// Verifies access token `token` against `keys` (the environment's published
/// keys) for `issuer`.
pub fn verify<'k>(
    token: &str,
    issuer: &str,
    keys: impl IntoIterator<Item = &'k SigningKey>,
    audience: Option<&str>,
) -> Result<VerifiedClaims, VerifyError> {
    verify_typ(token, "at+jwt", issuer, keys, Check::Timed(audience))
}

/// Verifies access token `token`'s type, key, signature and issuer only:
/// its times (`exp`, `nbf`) and audience are left to the caller, which
/// applies its own leeway and reads the audience from its route policy (the
/// gate). `exp`, `iss`, `sub` and `aud` must be present.
pub fn verify_signature<'k>(
    token: &str,
    issuer: &str,
    keys: impl IntoIterator<Item = &'k SigningKey>,
) -> Result<VerifiedClaims, VerifyError> {
    verify_typ(token, "at+jwt", issuer, keys, Check::Untimed)
}

/// What [`verify_typ`] checks beyond type, key, signature and issuer.
enum Check<'a> {
    /// Expiry (no leeway), and the audience when one is given.
    Timed(Option<&'a str>),
    /// Neither times nor audience.
    Untimed,
}

/// The key id of access token `token` (its header's `kid`), once its type
/// is checked; nothing else is verified. A verifier holding a remote
/// issuer's keys reads it to know whether it must fetch them again.
pub fn access_token_kid(token: &str) -> Result<String, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if header.typ.as_deref() != Some("at+jwt") {
        return Err(VerifyError::Malformed);
    }
    header.kid.ok_or(VerifyError::Malformed)
}

/// [`verify_signature`] against one key given as a verification key and
/// its algorithm (a remote issuer's, read from its JWKS) rather than a
/// keyring: the type, the `kid` (must be `kid`), the algorithm (must be
/// `alg`, never the header's choice), signature and issuer.
pub fn verify_signature_with(
    token: &str,
    issuer: &str,
    kid: &str,
    key: &jsonwebtoken::DecodingKey,
    alg: jsonwebtoken::Algorithm,
) -> Result<VerifiedClaims, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if header.typ.as_deref() != Some("at+jwt") || header.kid.as_deref() != Some(kid) {
        return Err(VerifyError::Malformed);
    }
    decode_checked(token, header.alg, alg, issuer, key, Check::Untimed)
}

fn verify_typ<'k>(
    token: &str,
    typ: &str,
    issuer: &str,
    keys: impl IntoIterator<Item = &'k SigningKey>,
    check: Check<'_>,
) -> Result<VerifiedClaims, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if header.typ.as_deref() != Some(typ) {
        return Err(VerifyError::Malformed);
    }
    let kid = header.kid.ok_or(VerifyError::Malformed)?;
    let key = keys
        .into_iter()
        .find(|k| k.kid() == kid)
        .ok_or(VerifyError::Malformed)?;
    decode_checked(
        token,
        header.alg,
        jwt_alg(key.alg()),
        issuer,
        key.decoding_key(),
        check,
    )
}

/// The checks after the key is found: the header's algorithm must be the
/// key's, then signature, issuer and what `check` asks.
fn decode_checked(
    token: &str,
    header_alg: jsonwebtoken::Algorithm,
    key_alg: jsonwebtoken::Algorithm,
    issuer: &str,
    key: &jsonwebtoken::DecodingKey,
    check: Check<'_>,
) -> Result<VerifiedClaims, VerifyError> {
    if key_alg != header_alg {
        return Err(VerifyError::Invalid);
    }
    let mut v = jsonwebtoken::Validation::new(header_alg);
    v.leeway = 0;
    v.set_issuer(&[issuer]);
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    match check {
        Check::Timed(Some(a)) => v.set_audience(&[a]),
        Check::Timed(None) => v.validate_aud = false,
        Check::Untimed => {
            v.validate_aud = false;
            v.validate_exp = false;
            v.validate_nbf = false;
        }
    }
    jsonwebtoken::decode::<VerifiedClaims>(token, key, &v)
        .map(|d| d.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => VerifyError::Expired,
            _ => VerifyError::Invalid,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_reads_as_a_string_from_either_shape() {
        let base = r#""iss":"i","sub":"s","aud":["a"],"exp":1,"iat":0,"jti":"j""#;
        for (scope, want) in [
            (r#""scope":"a b""#, Some("a b")),
            (r#""scope":["a","b"]"#, Some("a b")),
            (r#""x":1"#, None),
        ] {
            let c: Result<VerifiedClaims, _> = serde_json::from_str(&format!("{{{base},{scope}}}"));
            assert_eq!(c.ok().and_then(|c| c.scope).as_deref(), want, "{scope}");
        }
    }
}
