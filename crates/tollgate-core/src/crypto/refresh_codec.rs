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
//!
//! Session tokens are read at every refresh, so they are signed and read
//! here with one HMAC key built once and one parse of the claims, in the
//! bytes jsonwebtoken wrote for them before (tokens already handed out stay
//! valid). jsonwebtoken's general decoder parsed the claims twice and, for
//! its audience check, tried `aud` as a string before the list a session
//! token carries, building a serde error on every refresh.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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

/// The JOSE header of session tokens, as jsonwebtoken serializes
/// `Header::new(HS256)` (the bytes of every session token handed out).
const SESSION_HEADER: &str = r#"{"typ":"JWT","alg":"HS256"}"#;

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
    session: hmac::Key,
    /// [`SESSION_HEADER`] in base64url, then the `.` before the claims.
    session_prefix: String,
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
        let mut session_prefix = URL_SAFE_NO_PAD.encode(SESSION_HEADER);
        session_prefix.push('.');
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
            session: hmac::Key::new(hmac::HMAC_SHA256, keys.session_refresh_key()),
            session_prefix,
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
    ) -> Result<String, serde_json::Error> {
        let claims = serde_json::to_vec(&SessionClaims::of(rec, scope))?;
        let mut out = String::with_capacity(self.session_prefix.len() + claims.len() * 4 / 3 + 48);
        out.push_str(&self.session_prefix);
        URL_SAFE_NO_PAD.encode_string(&claims, &mut out);
        let tag = hmac::sign(&self.session, out.as_bytes());
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut out);
        Ok(out)
    }

    /// Verifies a session refresh token: its header is the one tollgate
    /// writes, then the signature (in constant time), then the claims,
    /// issuer and expiry (valid through its `exp` second, as before).
    pub fn read_session(&self, token: &str) -> Result<SessionClaims, ReadError> {
        let (message, signature) = token.rsplit_once('.').ok_or(ReadError::Invalid)?;
        let payload = message
            .strip_prefix(self.session_prefix.as_str())
            .filter(|p| !p.contains('.'))
            .ok_or(ReadError::Invalid)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| ReadError::Invalid)?;
        hmac::verify(&self.session, message.as_bytes(), &signature)
            .map_err(|_| ReadError::Invalid)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| ReadError::Invalid)?;
        let claims: SessionClaims =
            serde_json::from_slice(&json).map_err(|_| ReadError::Invalid)?;
        if claims.iss != ISSUER || claims.exp < 0 {
            return Err(ReadError::Invalid);
        }
        if claims.exp < crate::time::now() {
            return Err(ReadError::Expired);
        }
        Ok(claims)
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

    /// What jsonwebtoken wrote for a session token before this codec signed
    /// them itself: the same bytes, and each reads the other's.
    #[test]
    fn session_tokens_are_the_bytes_jsonwebtoken_wrote() {
        let keys = MasterKey::generate().unwrap().derive().unwrap();
        let c = RefreshCodec::new(&keys);
        let ours = c.encode_session(&family(), &["read", "write"]).unwrap();
        let key = EncodingKey::from_secret(keys.session_refresh_key());
        let claims = SessionClaims::of(&family(), &["read", "write"]);
        let theirs = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap();
        assert_eq!(ours, theirs);
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_aud = false;
        v.set_issuer(&[ISSUER]);
        let read = jsonwebtoken::decode::<SessionClaims>(
            &ours,
            &DecodingKey::from_secret(keys.session_refresh_key()),
            &v,
        )
        .unwrap()
        .claims;
        assert_eq!(read.jti, "t1");
        assert_eq!(c.read_session(&theirs).unwrap().scope, ["read", "write"]);
    }

    /// Only a whole token of ours, signed by the session key, with our
    /// header and issuer, is read; a genuine one past its `exp` second is
    /// expired, not invalid.
    #[test]
    fn session_tokens_are_read_whole_or_not_at_all() {
        let keys = MasterKey::generate().unwrap().derive().unwrap();
        let c = RefreshCodec::new(&keys);
        let token = c.encode_session(&family(), &["read"]).unwrap();
        let (message, sig) = token.rsplit_once('.').unwrap();
        let (header, payload) = message.split_once('.').unwrap();
        let invalid =
            |t: &str| assert_eq!(c.read_session(t).err(), Some(ReadError::Invalid), "{t}");
        invalid("");
        invalid("a.b");
        invalid(message);
        invalid(&format!("{message}."));
        invalid(&format!("{message}.{}", &sig[1..]));
        invalid(&format!("{message}x.{sig}"));
        invalid(&format!("{header}.{payload}.{payload}.{sig}"));
        invalid(&format!("{header}.x{payload}.{sig}"));
        // Another header (here `alg: none`), even with a signature that
        // holds over its bytes under the session key.
        let none = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"none"}"#);
        let forged = format!("{none}.{payload}");
        let tag = hmac::sign(&c.session, forged.as_bytes());
        invalid(&format!(
            "{forged}.{}",
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        ));
        invalid(&format!("{forged}."));
        // The right key and header, another issuer.
        let mut claims = SessionClaims::of(&family(), &["read"]);
        claims.iss = "someone-else".into();
        let key = EncodingKey::from_secret(keys.session_refresh_key());
        invalid(&jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap());
        // The refresh-JWT key's signature over a session token's bytes.
        let other = hmac::Key::new(hmac::HMAC_SHA256, keys.refresh_jwt_key());
        let tag = hmac::sign(&other, message.as_bytes());
        invalid(&format!(
            "{message}.{}",
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        ));
        // Expiry: valid through its `exp` second.
        let now = crate::time::now();
        let mut f = family();
        f.expires_at = now - 1;
        let old = c.encode_session(&f, &["read"]).unwrap();
        assert_eq!(c.read_session(&old).err(), Some(ReadError::Expired));
        f.expires_at = now + 5;
        assert!(
            c.read_session(&c.encode_session(&f, &["read"]).unwrap())
                .is_ok()
        );
    }
}
