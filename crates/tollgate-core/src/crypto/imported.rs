//! Password hashes as an incumbent stored them (`user import`): MD5, bcrypt
//! or argon2, of the password itself or of its MD5 form (what Dive's devices
//! send as their password). Such a hash is kept, marked, until the user's
//! first successful login re-hashes the password to tollgate's own form
//! (argon2id of `md5_hex(password)`).
//!
//! Stored form: `imported:<input>:<hash>`, `<input>` being `password` or
//! `md5`. tollgate's own hashes start with `$argon2`, so the two never mix.

use subtle::ConstantTimeEq;

use crate::crypto::secret::md5_hex;

const PREFIX: &str = "imported:";

/// The highest bcrypt cost accepted: 2^14 rounds take about a second, and
/// anyone can make the server run one by trying a password.
pub const MAX_BCRYPT_COST: u32 = 14;

/// What the incumbent hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashInput {
    /// The password as the user typed it.
    Password,
    /// `md5_hex(password)`, as Dive's devices send it.
    Md5,
}

impl HashInput {
    /// `password` or `md5`.
    pub fn as_str(self) -> &'static str {
        match self {
            HashInput::Password => "password",
            HashInput::Md5 => "md5",
        }
    }
}

impl std::str::FromStr for HashInput {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "password" => Ok(HashInput::Password),
            "md5" => Ok(HashInput::Md5),
            _ => Err(format!("'{s}' is not password or md5")),
        }
    }
}

/// The kind of an imported hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// 32 hexadecimal digits.
    Md5,
    /// `$2a$`, `$2b$` or `$2y$`.
    Bcrypt,
    /// An argon2 PHC string.
    Argon2,
}

/// An imported hash, read from its stored form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportedHash<'a> {
    /// What was hashed.
    pub input: HashInput,
    /// How.
    pub kind: HashKind,
    /// The hash as the incumbent stored it.
    pub hash: &'a str,
}

impl<'a> ImportedHash<'a> {
    /// Reads a stored password; `None` for tollgate's own hashes.
    pub fn parse(stored: &'a str) -> Option<Self> {
        let rest = stored.strip_prefix(PREFIX)?;
        let (input, hash) = rest.split_once(':')?;
        Some(Self {
            input: input.parse().ok()?,
            kind: detect(hash).ok()?,
            hash,
        })
    }

    /// Checks `value` (the password, or its MD5 form, per `input`) against
    /// an MD5 or bcrypt hash; blocking (bcrypt takes tens of ms by design).
    /// Argon2 hashes are checked by the verifier, like tollgate's own.
    pub fn verify_blocking(&self, value: &[u8]) -> bool {
        match self.kind {
            HashKind::Md5 => {
                let s = String::from_utf8_lossy(value);
                bool::from(
                    md5_hex(&s)
                        .as_bytes()
                        .ct_eq(self.hash.to_ascii_lowercase().as_bytes()),
                )
            }
            HashKind::Bcrypt => bcrypt_verify(value, self.hash),
            HashKind::Argon2 => false,
        }
    }
}

/// The stored form of an incumbent's `hash` of `input`, after checking it.
pub fn store_form(input: HashInput, hash: &str) -> Result<String, String> {
    let hash = hash.trim();
    detect(hash)?;
    Ok(format!("{PREFIX}{}:{hash}", input.as_str()))
}

fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.get(4..6)?.parse().ok()
}

/// Checks `password` against a modular-crypt bcrypt hash (`$2?$CC$` + 22
/// characters of salt + 31 of hash, bcrypt's base64): the raw EksBlowfish
/// function of the `bcrypt` crate, without its `alloc` feature (see the
/// workspace manifest), on the password NUL-terminated and cut at 72 bytes
/// as every bcrypt does. False for anything malformed or costlier than
/// [`MAX_BCRYPT_COST`].
fn bcrypt_verify(password: &[u8], hash: &str) -> bool {
    use base64::Engine as _;
    use base64::engine::{GeneralPurpose, general_purpose::NO_PAD};
    const B64: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::BCRYPT, NO_PAD);
    let Some(cost) = bcrypt_cost(hash).filter(|c| (4..=MAX_BCRYPT_COST).contains(c)) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.get(7..29), hash.get(29..)) else {
        return false;
    };
    let salt: Option<[u8; 16]> = B64.decode(salt).ok().and_then(|s| s.try_into().ok());
    let (Some(salt), Ok(expected)) = (salt, B64.decode(expected)) else {
        return false;
    };
    if expected.len() != 23 {
        return false;
    }
    let mut input = zeroize::Zeroizing::new(Vec::with_capacity(password.len() + 1));
    input.extend_from_slice(password);
    input.push(0);
    input.truncate(72);
    let out = zeroize::Zeroizing::new(bcrypt::bcrypt(cost, salt, &input));
    out.get(..23)
        .is_some_and(|o| bool::from(o.ct_eq(expected.as_slice())))
}

/// The kind of `hash`, refusing what tollgate could not verify (or only at
/// an unbounded cost).
pub fn detect(hash: &str) -> Result<HashKind, String> {
    if hash.len() == 32 && hash.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(HashKind::Md5);
    }
    if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
        let cost = bcrypt_cost(hash).ok_or("a bcrypt hash without a cost")?;
        if hash.len() != 60 || hash.get(6..7) != Some("$") {
            return Err("a malformed bcrypt hash".into());
        }
        if cost > MAX_BCRYPT_COST {
            return Err(format!(
                "bcrypt cost {cost} is above {MAX_BCRYPT_COST} (each check would take seconds)"
            ));
        }
        return Ok(HashKind::Bcrypt);
    }
    if hash.starts_with("$argon2") {
        return argon2::password_hash::PasswordHash::new(hash)
            .map(|_| HashKind::Argon2)
            .map_err(|e| format!("a malformed argon2 hash: {e}"));
    }
    Err("not an MD5 (32 hex digits), bcrypt ($2a$, $2b$, $2y$) or argon2 hash".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// `crypt("pw", …)` by Python (glibc/libxcrypt), cost 4.
    const BCRYPT_PW: &str = "$2b$04$Xfs0Kvfnny3xW1.uUlNfi.gvlFQTierlKV3c7ili.87xwFh.AJp1S";

    /// Long passwords count up to 72 bytes, as in every bcrypt; a hash
    /// altered in its salt or its sum does not verify.
    #[test]
    fn bcrypt_cuts_at_72_bytes_and_checks_every_part() {
        let long = [b'x'; 100];
        // `crypt("x" * 100, …)` by Python.
        let h = "$2b$04$mj8.qkTTV81klyWGEhcb9.mpnWbRlJTz7PNtwxKxVnrjtvBWdKq06";
        assert!(bcrypt_verify(&long, h));
        assert!(bcrypt_verify(&long[..72], h));
        assert!(!bcrypt_verify(&long[..71], h));
        assert!(bcrypt_verify(b"pw", BCRYPT_PW));
        let mut salt = BCRYPT_PW.to_string();
        salt.replace_range(10..11, if &BCRYPT_PW[10..11] == "a" { "b" } else { "a" });
        assert!(!bcrypt_verify(b"pw", &salt));
        let mut sum = BCRYPT_PW.to_string();
        sum.replace_range(40..41, if &BCRYPT_PW[40..41] == "a" { "b" } else { "a" });
        assert!(!bcrypt_verify(b"pw", &sum));
        assert!(!bcrypt_verify(b"pw", &BCRYPT_PW.replace("$04$", "$03$")));
    }

    #[test]
    fn stored_forms_round_trip_and_verify() {
        let md5 = store_form(HashInput::Password, &md5_hex("pw")).unwrap();
        let h = ImportedHash::parse(&md5).unwrap();
        assert_eq!(h.kind, HashKind::Md5);
        assert!(h.verify_blocking(b"pw"));
        assert!(!h.verify_blocking(b"pw2"));
        // bcrypt at cost 4 of "pw" (made by Python's crypt, independent of
        // the code under test; the process tests make more).
        let b = BCRYPT_PW;
        let stored = store_form(HashInput::Md5, b).unwrap();
        let h = ImportedHash::parse(&stored).unwrap();
        assert_eq!((h.kind, h.input), (HashKind::Bcrypt, HashInput::Md5));
        assert!(h.verify_blocking(b"pw"));
        assert!(!h.verify_blocking(b"px"));
        assert!(ImportedHash::parse("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").is_none());
        for bad in ["", "abc", "$2b$31$", "$1$md5crypt$x"] {
            assert!(store_form(HashInput::Password, bad).is_err(), "{bad}");
        }
        let costly = format!("$2b$15${}", "a".repeat(53));
        assert!(
            store_form(HashInput::Password, &costly)
                .unwrap_err()
                .contains("cost 15")
        );
    }
}
