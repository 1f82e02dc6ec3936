//! The master key and what is derived from it.
//!
//! One 256-bit master key protects everything at rest: from it tollgate derives
//! (HMAC-SHA256 with fixed labels) the key that seals signing keys with
//! AES-256-GCM, and the server keys under which generated client secrets and
//! API keys are stored as keyed hashes. Backing up the master key is backing up the server.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::CoreError;
use crate::crypto::random::fill_random;

type HmacSha256 = Hmac<Sha256>;

/// Environment variable that carries the master key (base64 or hex of 32 bytes).
pub const MASTER_KEY_ENV: &str = "TOLLGATE_MASTER_KEY";

/// The 256-bit master key. Never printed, zeroed on drop.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, CoreError> {
        let mut k = Zeroizing::new([0u8; 32]);
        fill_random(k.as_mut())?;
        Ok(Self(k))
    }

    /// Parses base64 (standard or URL-safe, padded or not) or 64 hex digits.
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        let t = text.trim();
        let mut bytes = if t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit()) {
            decode_hex(t)
        } else {
            STANDARD
                .decode(t)
                .or_else(|_| URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')))
                .ok()
        }
        .ok_or_else(|| CoreError::Crypto("master key is neither base64 nor hex".into()))?;
        if bytes.len() != 32 {
            bytes.zeroize();
            return Err(CoreError::Crypto(format!(
                "master key must be 32 bytes, got {}",
                bytes.len()
            )));
        }
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(&bytes);
        bytes.zeroize();
        Ok(Self(k))
    }

    /// Base64 text form, for writing the key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }

    /// Derives the keys tollgate uses.
    pub fn derive(&self) -> Result<DerivedKeys, CoreError> {
        let seal = self.subkey(b"tollgate/v1/signing-key-seal")?;
        let unbound = UnboundKey::new(&AES_256_GCM, seal.as_ref())
            .map_err(|_| CoreError::Crypto("cannot build AES-256-GCM key".into()))?;
        let secret_hash = self.subkey(b"tollgate/v1/client-secret-hash")?;
        let cache = self.subkey(b"tollgate/v1/verification-cache")?;
        let api_key = self.subkey(b"tollgate/v1/api-key-hash")?;
        let refresh = self.subkey(b"tollgate/v1/refresh-jwt")?;
        let session = self.subkey(b"tollgate/v1/session-refresh-token")?;
        Ok(DerivedKeys {
            seal: LessSafeKey::new(unbound),
            secret_hash: keyed(secret_hash.as_ref())?,
            cache: keyed(cache.as_ref())?,
            api_key: keyed(api_key.as_ref())?,
            refresh,
            session,
        })
    }

    fn subkey(&self, label: &[u8]) -> Result<Zeroizing<[u8; 32]>, CoreError> {
        let mut mac = keyed(self.0.as_ref())?;
        mac.update(label);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&mac.finalize().into_bytes());
        Ok(out)
    }
}

fn keyed(key: &[u8]) -> Result<HmacSha256, CoreError> {
    HmacSha256::new_from_slice(key).map_err(|_| CoreError::Crypto("bad HMAC key length".into()))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Keys derived from the master key. Cloning the HMAC states is cheap, so the
/// hot path never re-keys.
pub struct DerivedKeys {
    seal: LessSafeKey,
    secret_hash: HmacSha256,
    cache: HmacSha256,
    api_key: HmacSha256,
    refresh: Zeroizing<[u8; 32]>,
    session: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for DerivedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DerivedKeys(<redacted>)")
    }
}

impl DerivedKeys {
    /// Encrypts `plaintext` bound to `context` (additional data, e.g. env and kid).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<String, CoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let mut buf = Zeroizing::new(plaintext.to_vec());
        self.seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut *buf,
            )
            .map_err(|_| CoreError::Crypto("sealing failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypts what [`seal`](Self::seal) produced with the same `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>, CoreError> {
        let raw = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| CoreError::Crypto("sealed key is not base64url".into()))?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(CoreError::Crypto("sealed key is truncated".into()));
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| CoreError::Crypto("bad nonce".into()))?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let plain = self
            .seal
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| {
                CoreError::Crypto(
                    "cannot decrypt a signing key: wrong master key or corrupt data".into(),
                )
            })?;
        Ok(Zeroizing::new(plain.to_vec()))
    }

    /// HMAC-SHA256 of `parts` under the client-secret key (for stored secrets).
    pub fn secret_digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        digest(&self.secret_hash, parts)
    }

    /// The HS256 key of refresh JWTs (verified only by tollgate itself, so
    /// symmetric, and independent of signing-key rotation).
    pub fn refresh_jwt_key(&self) -> &[u8] {
        self.refresh.as_ref()
    }

    /// HS256 key of session refresh tokens (device credentials, header
    /// login); separate from [`Self::refresh_jwt_key`] so neither kind of
    /// token can pass for the other.
    pub fn session_refresh_key(&self) -> &[u8] {
        self.session.as_ref()
    }

    /// HMAC-SHA256 of `parts` under the API-key key (for stored API keys;
    /// a key of its own, so no API-key digest can pass for a client
    /// secret's or the other way round).
    pub fn api_key_digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        digest(&self.api_key, parts)
    }

    /// HMAC-SHA256 of `parts` under the cache key (for in-memory cache keys).
    pub fn cache_digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        digest(&self.cache, parts)
    }
}

fn digest(mac: &HmacSha256, parts: &[&[u8]]) -> [u8; 32] {
    let mut m = mac.clone();
    for p in parts {
        // Length-prefix each part so that ("ab","c") and ("a","bc") differ.
        m.update(&(p.len() as u64).to_be_bytes());
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_binds_context() -> Result<(), CoreError> {
        let keys = MasterKey::generate()?.derive()?;
        let sealed = keys.seal("default/kid1", b"private key bytes")?;
        assert_eq!(
            keys.open("default/kid1", &sealed)?.as_slice(),
            b"private key bytes"
        );
        assert!(keys.open("default/kid2", &sealed).is_err());
        let other = MasterKey::generate()?.derive()?;
        assert!(other.open("default/kid1", &sealed).is_err());
        Ok(())
    }

    #[test]
    fn master_key_parses_base64_and_hex() -> Result<(), CoreError> {
        let k = MasterKey::generate()?;
        let b64 = k.to_base64();
        let again = MasterKey::parse(&b64)?;
        assert_eq!(again.0.as_ref(), k.0.as_ref());
        let hex: String = k.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(MasterKey::parse(&hex)?.0.as_ref(), k.0.as_ref());
        assert!(MasterKey::parse("c2hvcnQ=").is_err());
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
        Ok(())
    }
}
