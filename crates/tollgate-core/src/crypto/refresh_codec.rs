//! tollgate's own refresh tokens, both kinds, under HS256 keys derived from
//! the master key (only tollgate reads them, and signing-key rotation must
//! not touch them). Keys, headers and validation rules are built once.
//!
//! - **Session refresh tokens** (device credentials, header login): claims
//!   taken only from the session's family row, so the store keeps the row,
//!   never the token, and the same row always gives the same string.
//! - **Refresh JWTs** (the bearer exchange): `typ: rt+jwt`, audience bound to
//!   the environment; only their `jti` and metadata are stored.
//!
//! The two kinds use separate keys, so neither can pass for the other.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::crypto::master::DerivedKeys;
use crate::model::{RefreshFamily, RefreshJwtRecord};

/// `typ` of the refresh JWTs of the bearer-exchange contract.
pub const REFRESH_TYP: &str = "rt+jwt";
/// `iss` of both kinds. They are read only by tollgate, so they are bound to
/// the environment (in a claim), not to a URL that the CLI minting them may
/// not know.
const ISSUER: &str = "tollgate";

/// The `aud` of refresh JWTs of environment `env`.
fn refresh_jwt_audience(env: &str) -> String {
    format!("tollgate:refresh:{env}")
}

/// Why a refresh token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// Genuine (the signature holds) but past its expiry.
    Expired,
    /// Not one of ours: malformed, bad signature, wrong kind, issuer or
    /// audience.
    Invalid,
}

/// Claims of a session refresh token; every value comes from its family's
/// row (Spring's refresh-token claims, plus `fam`, `iss`, `ctr`, `env`).
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The API the session is for (a list, as Spring writes it).
    pub aud: Vec<String>,
    /// The user.
    pub user_name: String,
    /// The user again, under Dive's name.
    pub device_id: String,
    /// The grant the session was started with.
    pub grant_type: String,
    /// Granted scope.
    pub scope: Vec<String>,
    /// The access token issued with it.
    pub ati: String,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Granted scope, as Spring's authorities.
    pub authorities: Vec<String>,
    /// The client.
    pub client_id: String,
    /// This token's id (the family's current id).
    pub jti: String,
    /// The family (first token's id).
    pub fam: String,
    iss: String,
    /// The contract the session was born in (absent in tokens issued before
    /// tollgate recorded it; the family's row is checked either way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctr: Option<String>,
    /// The environment the session was born in (as `ctr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

impl SessionClaims {
    /// The claims of `rec`'s current token, granting `scope` (what
    /// [`RefreshCodec::encode_session`] signs; also how an incumbent's
    /// adopted session is read).
    pub fn of(rec: &RefreshFamily, scope: &[&str]) -> Self {
        let scope: Vec<String> = scope.iter().map(|s| (*s).to_string()).collect();
        SessionClaims {
            aud: vec![rec.audience.clone()],
            user_name: rec.username.clone(),
            device_id: rec.username.clone(),
            grant_type: rec.grant.as_str().to_string(),
            authorities: scope.clone(),
            scope,
            ati: rec.access_jti.clone(),
            exp: rec.expires_at,
            iat: rec.issued_at,
            client_id: rec.client_id.clone(),
            jti: rec.current.clone(),
            fam: rec.family.clone(),
            iss: ISSUER.to_string(),
            ctr: Some(rec.contract.clone()),
            env: Some(rec.env.clone()),
        }
    }

    /// Whether the token says it was born in `contract` and `env` (a token
    /// that does not say is judged by its family's row).
    pub fn born_in(&self, env: &str, contract: &str) -> bool {
        self.ctr.as_deref().is_none_or(|c| c == contract)
            && self.env.as_deref().is_none_or(|e| e == env)
    }
}

/// Claims of a refresh JWT, in the order earlier releases wrote them
/// (alphabetical), so the bytes stay as they were.
#[derive(Debug, Serialize, Deserialize)]
struct RefreshJwtClaims {
    aud: String,
    exp: i64,
    iat: i64,
    iss: String,
    jti: String,
    sub: String,
}

/// HS256 keys for one kind of token.
struct Hs256 {
    enc: EncodingKey,
    dec: DecodingKey,
}

impl Hs256 {
    fn new(key: &[u8]) -> Self {
        Self {
            enc: EncodingKey::from_secret(key),
            dec: DecodingKey::from_secret(key),
        }
    }
}

/// Encodes and reads both kinds; one per service.
pub struct RefreshCodec {
    session: Hs256,
    session_header: Header,
    session_validation: Validation,
    jwt: Hs256,
    jwt_header: Header,
    jwt_validation: Validation,
}

impl std::fmt::Debug for RefreshCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshCodec(<redacted>)")
    }
}

fn read_error(e: &jsonwebtoken::errors::Error) -> ReadError {
    match e.kind() {
        ErrorKind::ExpiredSignature => ReadError::Expired,
        _ => ReadError::Invalid,
    }
}

impl RefreshCodec {
    /// Builds the keys and rules from the service's derived keys.
    pub fn new(keys: &DerivedKeys) -> Self {
        let mut session_validation = Validation::new(Algorithm::HS256);
        session_validation.leeway = 0;
        session_validation.validate_aud = false;
        session_validation.set_issuer(&[ISSUER]);
        session_validation.set_required_spec_claims(&["exp", "iss", "jti"]);
        // The audience is per environment; it is compared after decoding
        // so that one rule serves every environment.
        let mut jwt_validation = Validation::new(Algorithm::HS256);
        jwt_validation.leeway = 0;
        jwt_validation.validate_aud = false;
        jwt_validation.set_issuer(&[ISSUER]);
        jwt_validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "jti"]);
        let mut jwt_header = Header::new(Algorithm::HS256);
        jwt_header.typ = Some(REFRESH_TYP.into());
        Self {
            session: Hs256::new(keys.session_refresh_key()),
            session_header: Header::new(Algorithm::HS256),
            session_validation,
            jwt: Hs256::new(keys.refresh_jwt_key()),
            jwt_header,
            jwt_validation,
        }
    }

    /// The session refresh token of `rec`, granting `scope`.
    pub fn encode_session(
        &self,
        rec: &RefreshFamily,
        scope: &[&str],
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = SessionClaims::of(rec, scope);
        jsonwebtoken::encode(&self.session_header, &claims, &self.session.enc)
    }

    /// Verifies a session refresh token (signature first, then expiry).
    pub fn read_session(&self, token: &str) -> Result<SessionClaims, ReadError> {
        jsonwebtoken::decode::<SessionClaims>(token, &self.session.dec, &self.session_validation)
            .map(|d| d.claims)
            .map_err(|e| read_error(&e))
    }

    /// The refresh JWT of `rec`.
    pub fn encode_refresh_jwt(
        &self,
        rec: &RefreshJwtRecord,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = RefreshJwtClaims {
            aud: refresh_jwt_audience(&rec.env),
            exp: rec.expires_at,
            iat: rec.created_at,
            iss: ISSUER.to_string(),
            jti: rec.jti.clone(),
            sub: rec.client_id.clone(),
        };
        jsonwebtoken::encode(&self.jwt_header, &claims, &self.jwt.enc)
    }

    /// Verifies a refresh JWT of environment `env` (type, signature, issuer,
    /// audience, expiry) and returns its `jti`.
    pub fn read_refresh_jwt(&self, env: &str, token: &str) -> Result<String, ReadError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| ReadError::Invalid)?;
        if header.typ.as_deref() != Some(REFRESH_TYP) || header.alg != Algorithm::HS256 {
            return Err(ReadError::Invalid);
        }
        let claims =
            jsonwebtoken::decode::<RefreshJwtClaims>(token, &self.jwt.dec, &self.jwt_validation)
                .map_err(|e| read_error(&e))?
                .claims;
        if claims.aud != refresh_jwt_audience(env) {
            return Err(ReadError::Invalid);
        }
        Ok(claims.jti)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crypto::master::MasterKey;
    use crate::model::GrantType;

    fn family() -> RefreshFamily {
        RefreshFamily {
            env: "default".into(),
            family: "f1".into(),
            contract: "header-login".into(),
            client_id: "c1".into(),
            username: "u".into(),
            grant: GrantType::Password,
            audience: "api".into(),
            scope: "read".into(),
            current: "t1".into(),
            previous: None,
            access_jti: "a1".into(),
            access_exp: i64::MAX / 2,
            issued_at: 1,
            expires_at: i64::MAX / 2,
            rotated_at: None,
            revoked_at: None,
            created_at: 1,
        }
    }

    #[test]
    fn the_two_kinds_never_pass_for_each_other() {
        let keys = MasterKey::generate().unwrap().derive().unwrap();
        let c = RefreshCodec::new(&keys);
        let session = c.encode_session(&family(), &["read"]).unwrap();
        let rec = RefreshJwtRecord {
            env: "default".into(),
            jti: "j1".into(),
            client_id: "c1".into(),
            audience: "api".into(),
            created_at: 1,
            expires_at: i64::MAX / 2,
            revoked_at: None,
        };
        let jwt = c.encode_refresh_jwt(&rec).unwrap();
        let read = c.read_session(&session).unwrap();
        assert!(read.born_in("default", "header-login"));
        assert!(!read.born_in("default", "device-credentials"));
        assert!(!read.born_in("other", "header-login"));
        assert_eq!(c.read_refresh_jwt("default", &jwt).unwrap(), "j1");
        assert_eq!(c.read_refresh_jwt("other", &jwt), Err(ReadError::Invalid));
        assert_eq!(
            c.read_refresh_jwt("default", &session),
            Err(ReadError::Invalid)
        );
        assert!(c.read_session(&jwt).is_err());
        // The same row gives the same string.
        assert_eq!(c.encode_session(&family(), &["read"]).unwrap(), session);
    }
}
