//! Client secrets: generation, storage form, verification.
//!
//! * Generated secrets are 32 random bytes, base64url (43 characters). They are
//!   stored as HMAC-SHA256 under a server key derived from the master key and
//!   compared in constant time: microseconds on the hot path, and useless to
//!   whoever steals the database without the master key.
//! * Imported secrets (partners migrating with their existing pair) may be weak,
//!   so they are stored with argon2id. A successful verification may be cached
//!   in memory for a short time under a keyed hash of the presented secret.
//!
//! Timing: the work done for a presented secret depends only on its *shape*
//! (generated format → one HMAC; anything else → one argon2id verification,
//! against a dummy hash when there is nothing real to compare with), never on
//! whether the client exists, so an unknown client and a wrong secret cost the
//! same.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use md5::Digest as _;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::CoreError;
use crate::crypto::master::DerivedKeys;
use crate::crypto::random::fill_random;
use crate::model::{SecretHash, SecretRecord};

/// Length of a generated secret in characters (32 bytes, base64url).
pub const GENERATED_LEN: usize = 43;

/// argon2id parameters: OWASP's 19 MiB, 2 passes, 1 lane (≈ 20-40 ms here).
pub fn argon2() -> Argon2<'static> {
    // Constant, valid parameters; fall back to the crate default only if the
    // crate ever rejects them.
    let params = Params::new(19 * 1024, 2, 1, Some(32)).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A fresh generated secret.
pub fn generate() -> Result<SecretString, CoreError> {
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    fill_random(raw.as_mut())?;
    Ok(SecretString::from(URL_SAFE_NO_PAD.encode(raw.as_ref())))
}

/// Whether `s` has the shape of a generated secret.
pub fn is_generated_format(s: &str) -> bool {
    s.len() == GENERATED_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Builds the stored form of `secret` for client `client_id` in `env`.
///
/// Secrets in the generated format are stored as keyed hashes (they carry 256
/// bits by construction); anything else, imported secrets included, with argon2id.
pub fn hash_for_storage(
    keys: &DerivedKeys,
    env: &str,
    client_id: &str,
    secret: &SecretString,
    now: i64,
) -> Result<SecretRecord, CoreError> {
    let s = secret.expose_secret();
    if s.is_empty() {
        return Err(CoreError::invalid("client secret", "must not be empty"));
    }
    if s.len() > 512 {
        return Err(CoreError::invalid(
            "client secret",
            "must be at most 512 bytes",
        ));
    }
    let hash = if is_generated_format(s) {
        SecretHash::Hmac {
            digest: URL_SAFE_NO_PAD.encode(hmac_of(keys, env, client_id, s)),
        }
    } else {
        SecretHash::Argon2 {
            phc: hash_argon2(s.as_bytes())?,
        }
    };
    Ok(SecretRecord {
        id: crate::crypto::random::random_b64(6)?,
        hash,
        created_at: now,
        expires_at: None,
    })
}

/// An argon2id PHC string of `value` with a fresh random salt.
pub fn hash_argon2(value: &[u8]) -> Result<String, CoreError> {
    let mut salt = [0u8; 16];
    fill_random(&mut salt)?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| CoreError::Crypto(format!("salt: {e}")))?;
    Ok(argon2()
        .hash_password(value, &salt)
        .map_err(|e| CoreError::Crypto(format!("argon2: {e}")))?
        .to_string())
}

fn hmac_of(keys: &DerivedKeys, env: &str, client_id: &str, secret: &str) -> [u8; 32] {
    keys.secret_digest(&[env.as_bytes(), client_id.as_bytes(), secret.as_bytes()])
}

/// The outcome of checking a presented secret against stored records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// It matches the record at this index.
    Match(usize),
    /// It matches nothing.
    NoMatch,
}

/// Checks a generated-format secret: one HMAC and a constant-time compare with
/// every live keyed-hash record. Cheap; call it inline.
pub fn check_generated(
    keys: &DerivedKeys,
    env: &str,
    client_id: &str,
    presented: &str,
    records: &[SecretRecord],
    now: i64,
) -> Check {
    let mine = hmac_of(keys, env, client_id, presented);
    let mut found = Check::NoMatch;
    for (i, r) in records.iter().enumerate() {
        if let SecretHash::Hmac { digest } = &r.hash {
            let live = r.expires_at.is_none_or(|e| now < e);
            let stored = URL_SAFE_NO_PAD.decode(digest).unwrap_or_default();
            if bool::from(stored.ct_eq(&mine)) && live && found == Check::NoMatch {
                found = Check::Match(i);
            }
        }
    }
    found
}

/// Checks a secret that is not in the generated format against the argon2id
/// records. Slow by design (tens of ms): call it off the async executor. When
/// no live argon2 record exists, verifies against a dummy hash so the cost is
/// the same.
pub fn check_argon2(presented: &SecretString, phcs: &[(usize, String)]) -> Check {
    check_argon2_in(presented, phcs, &mut Vec::new())
}

/// [`check_argon2`] computing in `memory`, grown as needed and left allocated
/// for the next check. Reusing one buffer per concurrent check keeps the
/// process's memory at what the checks under way need: freshly allocated
/// 19 MiB buffers freed from many threads stay in the allocator's per-thread
/// arenas (a flood once left 3 GB resident).
pub fn check_argon2_in(
    presented: &SecretString,
    phcs: &[(usize, String)],
    memory: &mut Vec<argon2::Block>,
) -> Check {
    let pw = presented.expose_secret().as_bytes();
    if phcs.is_empty() {
        let _ = verify_phc(pw, dummy_phc(), memory);
        return Check::NoMatch;
    }
    let mut found = Check::NoMatch;
    for (i, phc) in phcs {
        if verify_phc(pw, phc, memory) && found == Check::NoMatch {
            found = Check::Match(*i);
        }
    }
    found
}

/// Whether `pw` matches the argon2 PHC string `phc` (any variant, version
/// and parameters it names), computed in `memory`.
fn verify_phc(pw: &[u8], phc: &str, memory: &mut Vec<argon2::Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, argon2::Block::new());
    }
    let mut out = zeroize::Zeroizing::new(vec![0u8; expected.len()]);
    let a = Argon2::new(algorithm, version, params);
    a.hash_password_into_with_memory(pw, salt, &mut out, &mut memory[..blocks])
        .is_ok()
        && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

/// The live argon2 records of `records` with their indices.
pub fn argon2_records(records: &[SecretRecord], now: i64) -> Vec<(usize, String)> {
    records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.expires_at.is_none_or(|e| now < e))
        .filter_map(|(i, r)| match &r.hash {
            SecretHash::Argon2 { phc } => Some((i, phc.clone())),
            SecretHash::Hmac { .. } => None,
        })
        .collect()
}

fn dummy_phc() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::encode_b64(b"tollgate-dummy-salt").ok();
        salt.and_then(|s| {
            argon2()
                .hash_password(b"tollgate dummy secret for timing", &s)
                .ok()
                .map(|h| h.to_string())
        })
        .unwrap_or_default()
    })
}

/// `md5_hex(s)`, lower case: the pre-hash Dive's devices send as their
/// password. Only a wire format, never a protection.
pub fn md5_hex(s: &str) -> String {
    let d = md5::Md5::digest(s.as_bytes());
    let mut out = String::with_capacity(32);
    for b in d {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::master::MasterKey;

    #[test]
    fn generated_secret_has_256_bits_and_uses_hmac() -> Result<(), CoreError> {
        let keys = MasterKey::generate()?.derive()?;
        let s = generate()?;
        assert_eq!(s.expose_secret().len(), GENERATED_LEN);
        assert!(is_generated_format(s.expose_secret()));
        let rec = hash_for_storage(&keys, "default", "c1", &s, 0)?;
        assert!(matches!(rec.hash, SecretHash::Hmac { .. }));
        let recs = vec![rec];
        assert_eq!(
            check_generated(&keys, "default", "c1", s.expose_secret(), &recs, 1),
            Check::Match(0)
        );
        // bound to the client: the same secret does not match for another client
        assert_eq!(
            check_generated(&keys, "default", "c2", s.expose_secret(), &recs, 1),
            Check::NoMatch
        );
        let other = generate()?;
        assert_eq!(
            check_generated(&keys, "default", "c1", other.expose_secret(), &recs, 1),
            Check::NoMatch
        );
        Ok(())
    }

    #[test]
    fn imported_weak_secret_uses_argon2id_and_expiry_is_honoured() -> Result<(), CoreError> {
        let keys = MasterKey::generate()?.derive()?;
        let weak = SecretString::from("bccws2523wqlj10yGhW83Je");
        let mut rec = hash_for_storage(&keys, "default", "c1", &weak, 0)?;
        let SecretHash::Argon2 { phc } = &rec.hash else {
            return Err(CoreError::Crypto("expected argon2".into()));
        };
        assert!(phc.starts_with("$argon2id$"));
        assert!(!phc.contains("bccws2523"));
        let recs = vec![rec.clone()];
        assert_eq!(
            check_argon2(&weak, &argon2_records(&recs, 1)),
            Check::Match(0)
        );
        assert_eq!(
            check_argon2(&SecretString::from("wrong"), &argon2_records(&recs, 1)),
            Check::NoMatch
        );
        rec.expires_at = Some(5);
        assert!(argon2_records(&[rec], 5).is_empty());
        Ok(())
    }

    #[test]
    fn hashes_made_elsewhere_verify_with_their_own_parameters() -> Result<(), CoreError> {
        // argon2i and argon2d, other costs and output lengths, as an
        // incumbent may have stored them.
        let mut memory = Vec::new();
        for (alg, m, t, p, len) in [
            (Algorithm::Argon2i, 8 * 1024, 3, 1, 32),
            (Algorithm::Argon2d, 4096, 1, 2, 16),
            (Algorithm::Argon2id, 32 * 1024, 2, 1, 64),
        ] {
            let params =
                Params::new(m, t, p, Some(len)).map_err(|e| CoreError::Crypto(e.to_string()))?;
            let salt = SaltString::encode_b64(b"0123456789abcdef")
                .map_err(|e| CoreError::Crypto(e.to_string()))?;
            let phc = Argon2::new(alg, Version::V0x13, params)
                .hash_password(b"imported", &salt)
                .map_err(|e| CoreError::Crypto(e.to_string()))?
                .to_string();
            let recs = vec![(3, phc)];
            assert_eq!(
                check_argon2_in(&SecretString::from("imported"), &recs, &mut memory),
                Check::Match(3)
            );
            assert_eq!(
                check_argon2_in(&SecretString::from("imported!"), &recs, &mut memory),
                Check::NoMatch
            );
        }
        // The buffer grew to the largest cost seen and stays for reuse.
        assert_eq!(memory.len(), 32 * 1024);
        assert_eq!(
            check_argon2_in(
                &SecretString::from("x"),
                &[(0, "not a phc".into())],
                &mut memory
            ),
            Check::NoMatch
        );
        Ok(())
    }

    #[test]
    fn debug_never_shows_the_secret() -> Result<(), CoreError> {
        let s = generate()?;
        assert!(!format!("{s:?}").contains(s.expose_secret()));
        Ok(())
    }

    #[test]
    fn md5_hex_matches_the_reference_vectors() {
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex("password"), "5f4dcc3b5aa765d61d8327deb882cf99");
    }
}
