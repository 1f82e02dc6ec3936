//! API keys: their format, generation and stored form.
//!
//! A key reads `tgk_<id>_<secret>`:
//! - `tgk_` is a fixed prefix, so a key pasted into a repository, a log or a
//!   ticket is found by a secret scanner or a grep
//!   (`tgk_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43}`);
//! - `<id>` is 12 random letters and digits, unique per environment: the
//!   key's public name (listings, `api-key revoke`), and what the gate looks
//!   the key up by;
//! - `<secret>` is 32 random bytes, base64url (43 characters).
//!
//! Only a keyed hash is stored: HMAC-SHA256 of (environment, id, secret)
//! under a key derived from the master key (`DerivedKeys::api_key_digest`),
//! like generated client secrets. No argon2id: the secret carries 256 bits
//! of randomness, so a fast keyed hash already defeats guessing, and the gate
//! checks a key on every request (microseconds, not tens of milliseconds).
//! Whoever steals the database without the master key can neither use nor
//! test the keys.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use subtle::ConstantTimeEq;

use crate::CoreError;
use crate::crypto::master::DerivedKeys;
use crate::crypto::random::{fill_random, random_alnum};

/// The prefix every key starts with.
pub const PREFIX: &str = "tgk_";
/// Characters of the id.
pub const ID_LEN: usize = 12;
/// Characters of the secret part (32 bytes, base64url).
pub const SECRET_LEN: usize = 43;

/// A new key: the whole key (to show once) with its id and stored digest.
#[derive(Debug)]
pub struct Generated {
    /// `tgk_<id>_<secret>`.
    pub key: SecretString,
    /// The id.
    pub id: String,
    /// The digest to store (base64url).
    pub digest: String,
}

/// Generates a key for environment `env`.
pub fn generate(keys: &DerivedKeys, env: &str) -> Result<Generated, CoreError> {
    let id = random_alnum(ID_LEN)?;
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    fill_random(raw.as_mut())?;
    let secret = zeroize::Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_ref()));
    let digest = URL_SAFE_NO_PAD.encode(digest_of(keys, env, &id, &secret));
    Ok(Generated {
        key: SecretString::from(format!("{PREFIX}{id}_{}", secret.as_str())),
        id,
        digest,
    })
}

/// Splits a presented key into (id, secret) when it has the shape of one.
pub fn split(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix(PREFIX)?;
    let id = rest.get(..ID_LEN)?;
    let secret = rest.get(ID_LEN..)?.strip_prefix('_')?;
    let id_ok = id.bytes().all(|b| b.is_ascii_alphanumeric());
    let secret_ok = secret.len() == SECRET_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some((id, secret))
}

/// The id an operator means: a bare id, `tgk_<id>`, or a whole key (a
/// leaked key pasted as found; only its id is used).
pub fn id_of(reference: &str) -> &str {
    if let Some((id, _)) = split(reference) {
        return id;
    }
    reference.strip_prefix(PREFIX).unwrap_or(reference)
}

/// Whether `secret` is the one `stored` (a digest from [`generate`]) was
/// made of, for key `id` of `env`; one HMAC and a constant-time compare.
pub fn matches(keys: &DerivedKeys, env: &str, id: &str, secret: &str, stored: &str) -> bool {
    let mine = digest_of(keys, env, id, secret);
    let stored = URL_SAFE_NO_PAD.decode(stored).unwrap_or_default();
    bool::from(stored.ct_eq(&mine))
}

fn digest_of(keys: &DerivedKeys, env: &str, id: &str, secret: &str) -> [u8; 32] {
    keys.api_key_digest(&[env.as_bytes(), id.as_bytes(), secret.as_bytes()])
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::crypto::master::MasterKey;

    #[test]
    fn keys_have_the_documented_shape_and_verify_only_where_made()
    -> Result<(), Box<dyn std::error::Error>> {
        let keys = MasterKey::generate()?.derive()?;
        let g = generate(&keys, "default")?;
        let key = g.key.expose_secret();
        assert_eq!(key.len(), PREFIX.len() + ID_LEN + 1 + SECRET_LEN);
        let (id, secret) = split(key).ok_or("shape")?;
        assert_eq!(id, g.id);
        assert!(!g.digest.contains(secret));
        assert!(matches(&keys, "default", id, secret, &g.digest));
        // Bound to its environment and id, and to the master key.
        assert!(!matches(&keys, "staging", id, secret, &g.digest));
        assert!(!matches(
            &keys,
            "default",
            "AAAAAAAAAAAA",
            secret,
            &g.digest
        ));
        let other = MasterKey::generate()?.derive()?;
        assert!(!matches(&other, "default", id, secret, &g.digest));
        let again = generate(&keys, "default")?;
        assert_ne!(again.id, g.id);
        assert!(!matches(&keys, "default", id, secret, &again.digest));
        assert!(!format!("{g:?}").contains(secret), "Debug shows the key");
        Ok(())
    }

    #[test]
    fn only_the_shape_of_a_key_splits() -> Result<(), CoreError> {
        let keys = MasterKey::generate()?.derive()?;
        let g = generate(&keys, "default")?;
        let key = g.key.expose_secret();
        for bad in [
            "",
            "tgk_",
            &key[..key.len() - 1],
            &format!("{key}x"),
            &key.replacen("tgk_", "tgx_", 1),
            &key.replacen('_', ".", 2),
        ] {
            assert_eq!(split(bad), None, "{bad}");
        }
        assert_eq!(id_of(key), g.id);
        assert_eq!(id_of(&format!("tgk_{}", g.id)), g.id);
        assert_eq!(id_of(&g.id), g.id);
        Ok(())
    }
}
