//! Verifying an incumbent's tokens: the keys of a trusted issuer (a JWKS, a
//! PEM public key, or a sealed HS256 secret), parsed once per snapshot, and
//! the checks a foreign refresh token must pass (an algorithm its key
//! allows, the signature, expiry, and the issuer and audience when the
//! operator named them).
//!
//! The algorithm is taken from the key, never from the token alone: a token
//! whose header names another algorithm than its key's is refused (no
//! RS256-key-as-HMAC-secret confusion).

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest as _, Sha256};

use crate::CoreError;
use crate::crypto::master::DerivedKeys;
use crate::crypto::pem::{self, PublicKey};
use crate::crypto::refresh_codec::ReadError;
use crate::incumbent::{TrustKeys, TrustedIssuer};

struct VerifyKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// A trusted issuer, ready to verify.
pub struct TrustVerifier {
    rec: TrustedIssuer,
    keys: Vec<VerifyKey>,
}

impl std::fmt::Debug for TrustVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustVerifier")
            .field("env", &self.rec.env)
            .field("id", &self.rec.id)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// A foreign token that verified: its claims and what tollgate reads of them.
#[derive(Debug, Clone)]
pub struct Foreign {
    /// All claims.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// Its id: `jti`, or, for a token without one, `sha256:` and the hex of
    /// the first 16 bytes of the token's SHA-256 (what `revoke` takes).
    pub id: String,
    /// `iat`, when present.
    pub iat: Option<i64>,
    /// `exp`.
    pub exp: i64,
}

impl Foreign {
    /// The claim `name` as text (a string, or a number written out).
    pub fn text(&self, name: &str) -> Option<String> {
        match self.claims.get(name)? {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

fn seal_context(env: &str, id: &str) -> String {
    format!("tollgate trusted issuer/{env}/{id}")
}

/// Seals an incumbent's HS256 secret for storage.
pub fn seal_hs256(
    derived: &DerivedKeys,
    env: &str,
    id: &str,
    secret: &[u8],
) -> Result<TrustKeys, CoreError> {
    if secret.is_empty() {
        return Err(CoreError::invalid("HS256 secret", "must not be empty"));
    }
    Ok(TrustKeys::Hs256 {
        sealed: derived.seal(&seal_context(env, id), secret)?,
    })
}

fn jwk_alg(a: KeyAlgorithm) -> Option<Algorithm> {
    match a {
        KeyAlgorithm::RS256 => Some(Algorithm::RS256),
        KeyAlgorithm::ES256 => Some(Algorithm::ES256),
        KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
        _ => None,
    }
}

fn keys_of(derived: &DerivedKeys, rec: &TrustedIssuer) -> Result<Vec<VerifyKey>, CoreError> {
    let crypto = |e: jsonwebtoken::errors::Error| CoreError::Crypto(e.to_string());
    match &rec.keys {
        TrustKeys::Hs256 { sealed } => {
            let secret = derived.open(&seal_context(&rec.env, &rec.id), sealed)?;
            Ok(vec![VerifyKey {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(&secret),
            }])
        }
        TrustKeys::Pem { pem } => {
            let (alg, key) = match pem::public_key(pem)? {
                PublicKey::Rsa(der) => (Algorithm::RS256, DecodingKey::from_rsa_der(&der)),
                PublicKey::P256(point) => (Algorithm::ES256, DecodingKey::from_ec_der(&point)),
                PublicKey::Ed25519(x) => (Algorithm::EdDSA, DecodingKey::from_ed_der(&x)),
            };
            Ok(vec![VerifyKey {
                kid: None,
                alg,
                key,
            }])
        }
        TrustKeys::Jwks { jwks } => {
            let set: JwkSet = serde_json::from_str(jwks)
                .map_err(|e| CoreError::invalid("JWKS", e.to_string()))?;
            let mut out = Vec::new();
            for jwk in &set.keys {
                if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                    continue;
                }
                let by_type = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
                    AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                        Some(Algorithm::ES256)
                    }
                    AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
                    // Symmetric keys do not belong in a published JWKS.
                    _ => None,
                };
                let alg = match jwk.common.key_algorithm {
                    Some(a) => jwk_alg(a).filter(|a| Some(*a) == by_type),
                    None => by_type,
                };
                if let Some(alg) = alg {
                    out.push(VerifyKey {
                        kid: jwk.common.key_id.clone(),
                        alg,
                        key: DecodingKey::from_jwk(jwk).map_err(crypto)?,
                    });
                }
            }
            if out.is_empty() {
                return Err(CoreError::invalid(
                    "JWKS",
                    "no RS256, ES256 (P-256) or EdDSA signing key in it",
                ));
            }
            Ok(out)
        }
    }
}

/// Members of a JWK that only a private (or symmetric) key has.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The JWKs of an incumbent's JWKS to publish beside tollgate's: every
/// signing key, as given. Refused: a private or symmetric key (publishing
/// one would hand out the incumbent's signing power), a key without `kid`
/// (verifiers pick keys by it), a document without signing keys.
pub fn published_jwks(jwks: &str) -> Result<Vec<serde_json::Value>, CoreError> {
    let bad = |why: String| CoreError::invalid("JWKS", why);
    let doc: serde_json::Value = serde_json::from_str(jwks).map_err(|e| bad(e.to_string()))?;
    let keys = doc
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| bad("no \"keys\" array".into()))?;
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let obj = k
            .as_object()
            .ok_or_else(|| bad(format!("key {i} is not an object")))?;
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
            return Err(bad(format!(
                "key {i} has the private member \"{m}\": give the public JWKS"
            )));
        }
        if obj.get("use").and_then(|u| u.as_str()) == Some("enc") {
            continue;
        }
        let kid = obj.get("kid").and_then(serde_json::Value::as_str);
        if kid.is_none_or(str::is_empty) {
            return Err(bad(format!("key {i} has no \"kid\"")));
        }
        out.push(k.clone());
    }
    // The keys must also load as verification keys (the checks of
    // `keys_of`: RS256, ES256 or EdDSA).
    let set: JwkSet = serde_json::from_str(jwks).map_err(|e| bad(e.to_string()))?;
    for jwk in &set.keys {
        DecodingKey::from_jwk(jwk).map_err(|e| bad(e.to_string()))?;
    }
    if out.is_empty() {
        return Err(bad("no signing key in it".into()));
    }
    Ok(out)
}

impl TrustVerifier {
    /// Parses (and for HS256 unseals) a trusted issuer's keys.
    pub fn load(derived: &DerivedKeys, rec: &TrustedIssuer) -> Result<Self, CoreError> {
        Ok(Self {
            keys: keys_of(derived, rec)?,
            rec: rec.clone(),
        })
    }

    /// The stored record.
    pub fn record(&self) -> &TrustedIssuer {
        &self.rec
    }

    /// The algorithms its keys verify, e.g. `RS256` (for listings).
    pub fn algorithms(&self) -> Vec<String> {
        let mut a: Vec<String> = self.keys.iter().map(|k| format!("{:?}", k.alg)).collect();
        a.sort();
        a.dedup();
        a
    }

    /// Verifies `token`: signature under one of the keys (the token's `kid`
    /// picks among keys that have one), then expiry, issuer and audience.
    /// `Expired` only for a genuine token.
    pub fn verify(&self, token: &str) -> Result<Foreign, ReadError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| ReadError::Invalid)?;
        let mut outcome = Err(ReadError::Invalid);
        for k in self.keys.iter().filter(|k| {
            k.alg == header.alg
                && match (&k.kid, &header.kid) {
                    (Some(mine), Some(theirs)) => mine == theirs,
                    _ => true,
                }
        }) {
            let mut v = Validation::new(k.alg);
            v.leeway = 0;
            v.set_required_spec_claims(&["exp"]);
            if let Some(iss) = &self.rec.issuer {
                v.set_issuer(&[iss]);
            }
            match &self.rec.audience {
                Some(aud) => v.set_audience(&[aud]),
                None => v.validate_aud = false,
            }
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token, &k.key, &v,
            ) {
                Ok(data) => {
                    outcome = Ok(data.claims);
                    break;
                }
                Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => {
                    outcome = Err(ReadError::Expired);
                    break;
                }
                Err(_) => {}
            }
        }
        let claims = outcome?;
        let exp = claims
            .get("exp")
            .and_then(serde_json::Value::as_i64)
            .ok_or(ReadError::Invalid)?;
        let iat = claims.get("iat").and_then(serde_json::Value::as_i64);
        let id = match claims.get("jti").and_then(|j| j.as_str()) {
            Some(j) if !j.is_empty() => j.to_string(),
            _ => {
                let d = Sha256::digest(token.as_bytes());
                format!("sha256:{}", hex(d.get(..16).unwrap_or_default()))
            }
        };
        Ok(Foreign {
            claims,
            id,
            iat,
            exp,
        })
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crypto::master::MasterKey;
    use crate::incumbent::TrustPurpose;
    use jsonwebtoken::{EncodingKey, Header};

    fn rec(keys: TrustKeys) -> TrustedIssuer {
        TrustedIssuer {
            env: "default".into(),
            id: "old".into(),
            purpose: TrustPurpose::DeviceCredentials,
            keys,
            issuer: None,
            audience: None,
            client_claim: "client_id".into(),
            user_claim: None,
            api: None,
            created_at: 0,
        }
    }

    #[test]
    fn hs256_tokens_verify_and_other_algorithms_do_not() {
        let derived = MasterKey::generate().unwrap().derive().unwrap();
        let keys = seal_hs256(&derived, "default", "old", b"spring-signing-key").unwrap();
        let v = TrustVerifier::load(&derived, &rec(keys)).unwrap();
        let claims =
            serde_json::json!({"client_id":"c","user_name":"u","jti":"j1","exp": 4_102_444_800i64});
        let good = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"spring-signing-key"),
        )
        .unwrap();
        let f = v.verify(&good).unwrap();
        assert_eq!(f.id, "j1");
        assert_eq!(f.text("user_name").as_deref(), Some("u"));
        let wrong = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"another key"),
        )
        .unwrap();
        assert_eq!(v.verify(&wrong).err(), Some(ReadError::Invalid));
        let expired = jsonwebtoken::encode(
            &Header::default(),
            &serde_json::json!({"exp": 1}),
            &EncodingKey::from_secret(b"spring-signing-key"),
        )
        .unwrap();
        assert_eq!(v.verify(&expired).err(), Some(ReadError::Expired));
        let hs384 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &claims,
            &EncodingKey::from_secret(b"spring-signing-key"),
        )
        .unwrap();
        assert_eq!(v.verify(&hs384).err(), Some(ReadError::Invalid));
    }

    /// `key publish`: an incumbent's public JWKS is published as given;
    /// private or symmetric members, keys without `kid` and empty sets are
    /// refused; encryption keys are left out.
    #[test]
    fn only_public_signing_keys_with_a_kid_are_published() {
        let derived = MasterKey::generate().unwrap().derive().unwrap();
        let rec = crate::crypto::keys::generate(&derived, "default", crate::model::Alg::ES256, 0)
            .unwrap();
        let public: serde_json::Value = serde_json::from_str(&rec.public_jwk).unwrap();
        let doc = |keys: Vec<serde_json::Value>| serde_json::json!({ "keys": keys }).to_string();
        let mut enc = public.clone();
        enc["use"] = "enc".into();
        enc["kid"] = "enc-1".into();
        let out = published_jwks(&doc(vec![public.clone(), enc])).unwrap();
        assert_eq!(out, vec![public.clone()]);

        let mut private = public.clone();
        private["d"] = "c2VjcmV0".into();
        let e = published_jwks(&doc(vec![private])).unwrap_err().to_string();
        assert!(e.contains("private member \"d\""), "{e}");
        let oct = serde_json::json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"});
        assert!(published_jwks(&doc(vec![oct])).is_err());
        let mut no_kid = public.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        let e = published_jwks(&doc(vec![no_kid])).unwrap_err().to_string();
        assert!(e.contains("no \"kid\""), "{e}");
        assert!(published_jwks(&doc(vec![])).is_err());
        assert!(published_jwks("{}").is_err());
    }
}
