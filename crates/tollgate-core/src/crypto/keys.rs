//! Signing keys: generation, sealing at rest, and the parsed, ready-to-sign
//! form kept in memory.
//!
//! A key is parsed once when the server loads it; signing a token is then one
//! base64 of the claims and one signature, with the JWS header encoded once per
//! key. The public half is published as a JWK (RFC 7517) and kept as a
//! `jsonwebtoken::DecodingKey` for verification.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde_json::json;
use zeroize::Zeroizing;

use crate::CoreError;
use crate::crypto::master::DerivedKeys;
use crate::crypto::random::random_b64;
use crate::model::{Alg, SigningKeyRecord};

enum Pair {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rs256(RsaKeyPair),
    /// A shared secret (its "private key" is the secret itself).
    Hs256(Box<aws_lc_rs::hmac::Key>),
}

/// A parsed signing key, ready to sign.
pub struct SigningKey {
    kid: String,
    alg: Alg,
    pair: Pair,
    rng: SystemRandom,
    /// `base64url(header) + "."`, computed once.
    header_prefix: String,
    jwk: serde_json::Value,
    decoding: DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn seal_context(env: &str, kid: &str) -> String {
    format!("tollgate signing key/{env}/{kid}")
}

/// Generates a new key for `env`, sealed under `keys`, signing from `now`
/// (a caller scheduling it later sets `activates_at`).
pub fn generate(
    keys: &DerivedKeys,
    env: &str,
    alg: Alg,
    now: i64,
) -> Result<SigningKeyRecord, CoreError> {
    let rng = SystemRandom::new();
    let pkcs8: Zeroizing<Vec<u8>> = match alg {
        Alg::ES256 => Zeroizing::new(
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| CoreError::Crypto("EC key generation failed".into()))?
                .as_ref()
                .to_vec(),
        ),
        Alg::EdDSA => Zeroizing::new(
            Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| CoreError::Crypto("Ed25519 key generation failed".into()))?
                .as_ref()
                .to_vec(),
        ),
        Alg::RS256 => {
            let kp = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048)
                .map_err(|_| CoreError::Crypto("RSA key generation failed".into()))?;
            let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp)
                .map_err(|_| CoreError::Crypto("RSA key encoding failed".into()))?;
            Zeroizing::new(der.as_ref().to_vec())
        }
        Alg::HS256 => {
            // A secret nobody else knows yet: until one shared with the
            // resource servers is imported, nothing can verify it.
            let mut secret = Zeroizing::new(vec![0u8; 32]);
            crate::crypto::random::fill_random(&mut secret)?;
            secret
        }
    };
    record(keys, env, &random_b64(12)?, alg, &pkcs8, now)
}

/// The stored form of key material `pkcs8` (for HS256, the secret).
fn record(
    keys: &DerivedKeys,
    env: &str,
    kid: &str,
    alg: Alg,
    pkcs8: &[u8],
    now: i64,
) -> Result<SigningKeyRecord, CoreError> {
    let parsed = SigningKey::from_pkcs8(kid, alg, pkcs8)?;
    Ok(SigningKeyRecord {
        env: env.to_string(),
        kid: kid.to_string(),
        alg,
        public_jwk: parsed.jwk.to_string(),
        private_sealed: keys.seal(&seal_context(env, kid), pkcs8)?,
        created_at: now,
        activates_at: now,
    })
}

/// An incumbent's key material, brought over so that resource servers that
/// pinned its key (or `kid`) keep verifying.
pub enum Imported<'a> {
    /// A PEM private key: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE
    /// KEY`) or SEC1 (`EC PRIVATE KEY`).
    Pem(&'a str),
    /// An HS256 secret shared with the resource servers.
    Hs256(&'a [u8]),
}

/// Imports key material for `env` (signing with `alg`, which the key must
/// be of), as key `kid`, signing from `now`.
pub fn import(
    keys: &DerivedKeys,
    env: &str,
    alg: Alg,
    material: Imported<'_>,
    kid: &str,
    now: i64,
) -> Result<SigningKeyRecord, CoreError> {
    let wrong = |what: &str| {
        CoreError::invalid(
            "key",
            format!(
                "{what}, but environment '{env}' signs with {}: import a key of its \
                 algorithm, or change the environment's first (`env update --alg`; an \
                 HS256 environment is created as one)",
                alg.as_str()
            ),
        )
    };
    let material: Zeroizing<Vec<u8>> = match (material, alg) {
        (Imported::Hs256(secret), Alg::HS256) => {
            if secret.is_empty() {
                return Err(CoreError::invalid("HS256 secret", "must not be empty"));
            }
            Zeroizing::new(secret.to_vec())
        }
        (Imported::Hs256(_), _) => return Err(wrong("an HS256 secret was given")),
        (Imported::Pem(_), Alg::HS256) => return Err(wrong("a PEM key was given")),
        (Imported::Pem(text), _) => {
            let blocks = crate::crypto::pem::blocks(text)?;
            let block = blocks
                .iter()
                .find(|b| b.label.ends_with("PRIVATE KEY"))
                .ok_or_else(|| CoreError::invalid("PEM", "no private key in it"))?;
            let der: &[u8] = &block.der;
            let not = |_| wrong(&format!("the {} block is not such a key", block.label));
            match (block.label.as_str(), alg) {
                // Normalised to the form the loader reads (PKCS#8 v2).
                ("PRIVATE KEY", Alg::EdDSA) => Zeroizing::new(
                    Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                        .map_err(not)?
                        .to_pkcs8()
                        .map_err(|_| CoreError::Crypto("Ed25519 key encoding failed".into()))?
                        .as_ref()
                        .to_vec(),
                ),
                ("PRIVATE KEY", _) => block.der.clone(),
                ("RSA PRIVATE KEY", Alg::RS256) => {
                    let kp = RsaKeyPair::from_der(der).map_err(not)?;
                    let doc = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp)
                        .map_err(|_| CoreError::Crypto("RSA key encoding failed".into()))?;
                    Zeroizing::new(doc.as_ref().to_vec())
                }
                ("EC PRIVATE KEY", Alg::ES256) => Zeroizing::new(
                    EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                        .map_err(not)?
                        .to_pkcs8v1()
                        .map_err(|_| CoreError::Crypto("EC key encoding failed".into()))?
                        .as_ref()
                        .to_vec(),
                ),
                (label, _) => return Err(wrong(&format!("a '{label}' was given"))),
            }
        }
    };
    SigningKey::from_pkcs8(kid, alg, &material)
        .map_err(|_| wrong(&format!("the key is not a {} key", alg.as_str())))?;
    record(keys, env, kid, alg, &material, now)
}

impl SigningKey {
    /// Unseals and parses a stored key.
    pub fn load(keys: &DerivedKeys, rec: &SigningKeyRecord) -> Result<Self, CoreError> {
        let pkcs8 = keys.open(&seal_context(&rec.env, &rec.kid), &rec.private_sealed)?;
        Self::from_pkcs8(&rec.kid, rec.alg, &pkcs8)
    }

    fn from_pkcs8(kid: &str, alg: Alg, pkcs8: &[u8]) -> Result<Self, CoreError> {
        let bad = |_| CoreError::Crypto(format!("key {kid} is not a valid {} key", alg.as_str()));
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let (pair, jwk, decoding) = match alg {
            Alg::ES256 => {
                let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(bad)?;
                let point = kp.public_key().as_ref();
                // Uncompressed SEC1 point: 0x04 ‖ X ‖ Y.
                if point.len() != 65 {
                    return Err(CoreError::Crypto("unexpected EC point length".into()));
                }
                let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
                let decoding = DecodingKey::from_ec_components(&x, &y)
                    .map_err(|e| CoreError::Crypto(e.to_string()))?;
                let jwk = json!({"kty":"EC","crv":"P-256","x":x,"y":y});
                (Pair::Es256(kp), jwk, decoding)
            }
            Alg::EdDSA => {
                let kp = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(bad)?;
                let x = b64(kp.public_key().as_ref());
                let decoding = DecodingKey::from_ed_components(&x)
                    .map_err(|e| CoreError::Crypto(e.to_string()))?;
                (
                    Pair::EdDsa(kp),
                    json!({"kty":"OKP","crv":"Ed25519","x":x}),
                    decoding,
                )
            }
            Alg::RS256 => {
                let kp = RsaKeyPair::from_pkcs8(pkcs8).map_err(bad)?;
                let pk = kp.public_key();
                let n = pk.modulus().big_endian_without_leading_zero().to_vec();
                let e = pk.exponent().big_endian_without_leading_zero().to_vec();
                let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
                (
                    Pair::Rs256(kp),
                    json!({"kty":"RSA","n":b64(&n),"e":b64(&e)}),
                    decoding,
                )
            }
            Alg::HS256 => (
                Pair::Hs256(Box::new(aws_lc_rs::hmac::Key::new(
                    aws_lc_rs::hmac::HMAC_SHA256,
                    pkcs8,
                ))),
                // Never the secret: this JWK is never published anyway.
                json!({"kty":"oct"}),
                DecodingKey::from_secret(pkcs8),
            ),
        };
        let mut jwk = jwk;
        if let Some(o) = jwk.as_object_mut() {
            o.insert("kid".into(), kid.into());
            o.insert("alg".into(), alg.as_str().into());
            o.insert("use".into(), "sig".into());
        }
        let header = json!({"alg": alg.as_str(), "typ": "at+jwt", "kid": kid});
        Ok(Self {
            kid: kid.to_string(),
            alg,
            pair,
            rng: SystemRandom::new(),
            header_prefix: format!("{}.", b64(header.to_string().as_bytes())),
            jwk,
            decoding,
        })
    }

    /// Key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Algorithm.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// Whether it belongs in the JWKS: not a shared secret (HS256).
    pub fn published(&self) -> bool {
        self.alg != Alg::HS256
    }

    /// Public JWK (with `kid`, `alg`, `use`).
    pub fn jwk(&self) -> &serde_json::Value {
        &self.jwk
    }

    /// Verification key.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// Signs `claims_json` (the serialized claims) into a compact JWS with the
    /// header `{"alg","typ":"at+jwt","kid"}`.
    pub fn sign(&self, claims_json: &[u8]) -> Result<String, CoreError> {
        let enc = &URL_SAFE_NO_PAD;
        let mut out =
            String::with_capacity(self.header_prefix.len() + claims_json.len() * 4 / 3 + 8 + 350);
        out.push_str(&self.header_prefix);
        enc.encode_string(claims_json, &mut out);
        let fail = |_| CoreError::Crypto("signing failed".into());
        match &self.pair {
            Pair::Es256(kp) => {
                let sig = kp.sign(&self.rng, out.as_bytes()).map_err(fail)?;
                out.push('.');
                enc.encode_string(sig.as_ref(), &mut out);
            }
            Pair::EdDsa(kp) => {
                let sig = kp.sign(out.as_bytes());
                out.push('.');
                enc.encode_string(sig.as_ref(), &mut out);
            }
            Pair::Rs256(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &self.rng, out.as_bytes(), &mut sig)
                    .map_err(fail)?;
                out.push('.');
                enc.encode_string(&sig, &mut out);
            }
            Pair::Hs256(key) => {
                let tag = aws_lc_rs::hmac::sign(key, out.as_bytes());
                out.push('.');
                enc.encode_string(tag.as_ref(), &mut out);
            }
        }
        Ok(out)
    }
}

/// The jsonwebtoken algorithm for `alg`.
pub fn jwt_alg(alg: Alg) -> jsonwebtoken::Algorithm {
    match alg {
        Alg::ES256 => jsonwebtoken::Algorithm::ES256,
        Alg::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        Alg::RS256 => jsonwebtoken::Algorithm::RS256,
        Alg::HS256 => jsonwebtoken::Algorithm::HS256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::master::MasterKey;

    #[test]
    fn every_algorithm_signs_what_jsonwebtoken_verifies() -> Result<(), CoreError> {
        let keys = MasterKey::generate()?.derive()?;
        for alg in [Alg::ES256, Alg::EdDSA, Alg::RS256, Alg::HS256] {
            let rec = generate(&keys, "default", alg, 0)?;
            assert!(!rec.private_sealed.is_empty());
            let key = SigningKey::load(&keys, &rec)?;
            let token = key.sign(br#"{"sub":"c1","exp":4102444800}"#)?;
            let header = jsonwebtoken::decode_header(&token)
                .map_err(|e| CoreError::Crypto(e.to_string()))?;
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(header.kid.as_deref(), Some(rec.kid.as_str()));
            let mut v = jsonwebtoken::Validation::new(jwt_alg(alg));
            v.required_spec_claims.clear();
            let data = jsonwebtoken::decode::<serde_json::Value>(&token, key.decoding_key(), &v)
                .map_err(|e| CoreError::Crypto(format!("{alg:?}: {e}")))?;
            assert_eq!(data.claims["sub"], "c1");
            // the JWK in the record is the one the parsed key publishes
            let jwk: serde_json::Value = serde_json::from_str(&rec.public_jwk)
                .map_err(|e| CoreError::Crypto(e.to_string()))?;
            assert_eq!(&jwk, key.jwk());
        }
        Ok(())
    }
}
