//! Randomness from the operating system's CSPRNG (aws-lc-rs): bytes, token
//! ids, client ids people type, and UUIDs in Spring's `jti` format.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::CoreError;

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<(), CoreError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| CoreError::Crypto("system RNG failed".into()))
}

/// `n` random bytes as base64url without padding.
pub fn random_b64(n: usize) -> Result<String, CoreError> {
    let mut buf = vec![0u8; n];
    fill_random(&mut buf)?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// `n` random characters from `[A-Za-z0-9]` (rejection sampling: no bias).
/// For identifiers people type and pass on command lines: no `-` to be read
/// as an option, no `_` to be mangled.
pub fn random_alnum(n: usize) -> Result<String, CoreError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        fill_random(&mut buf)?;
        for b in buf {
            // 248 = 4 × 62: values above it would favour the first letters.
            if b < 248 && out.len() < n {
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    Ok(out)
}

/// A random UUID (version 4) in its text form: the `jti` format of Spring.
pub fn uuid_v4() -> Result<String, CoreError> {
    let mut b = [0u8; 16];
    fill_random(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(x >> 4)]));
        out.push(char::from(HEX[usize::from(x & 0x0f)]));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alnum_ids_are_alphanumeric_and_distinct() -> Result<(), CoreError> {
        let a = random_alnum(24)?;
        assert_eq!(a.len(), 24);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, random_alnum(24)?);
        Ok(())
    }

    #[test]
    fn uuids_have_version_4_layout() -> Result<(), CoreError> {
        let u = uuid_v4()?;
        assert_eq!(u.len(), 36);
        assert_eq!(u.as_bytes()[14], b'4');
        assert!(matches!(u.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
        assert_ne!(u, uuid_v4()?);
        Ok(())
    }
}
