//! Time-based one-time passwords (RFC 6238) for portal accounts: HMAC-SHA1,
//! 30-second steps, 6 digits, the parameters every authenticator app
//! assumes when an `otpauth://` URI names none. SHA-1 is fine here: HOTP
//! needs only HMAC's pseudo-randomness, which SHA-1's collisions do not
//! touch (RFC 4226, appendix A). A leaf: bytes and numbers, no I/O.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq as _;

use crate::CoreError;

/// Seconds per step.
pub const STEP: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps accepted either side of the current one (clock drift, typing time).
pub const WINDOW: i64 = 1;
/// Bytes of a new secret (160 bits, RFC 4226's recommendation).
pub const SECRET_LEN: usize = 20;

/// The step `t` (Unix seconds) falls in.
pub fn step_of(t: i64) -> i64 {
    t.div_euclid(STEP)
}

/// The HOTP value (RFC 4226 §5.3) of `secret` at counter `step`, with
/// `digits` digits (6 to 9).
pub fn code_at(secret: &[u8], step: u64, digits: u32) -> Result<u32, CoreError> {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret)
        .map_err(|_| CoreError::Crypto("bad TOTP key".into()))?;
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    // Dynamic truncation: the low nibble of the last byte picks 4 bytes.
    let off = usize::from(h.get(19).copied().unwrap_or(0) & 0x0f);
    let word = h
        .get(off..off + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| CoreError::Crypto("TOTP truncation".into()))?;
    Ok((word & 0x7fff_ffff) % 10u32.pow(digits.clamp(6, 9)))
}

/// The code of `secret` at time `t`, as the 6 digits an app shows.
pub fn code(secret: &[u8], t: i64) -> Result<String, CoreError> {
    let step = u64::try_from(step_of(t)).unwrap_or(0);
    Ok(format!(
        "{:0width$}",
        code_at(secret, step, DIGITS)?,
        width = DIGITS as usize
    ))
}

/// The step whose code `presented` is, within [`WINDOW`] of `t`'s step,
/// or `None`. Every step of the window is computed and compared in
/// constant time, so the answer's timing tells nothing of which matched.
/// Spaces a user types between groups of digits are ignored.
pub fn verify(secret: &[u8], presented: &str, t: i64) -> Result<Option<i64>, CoreError> {
    let typed: String = presented.chars().filter(|c| !c.is_whitespace()).collect();
    if typed.len() != DIGITS as usize || !typed.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let now = step_of(t);
    let mut found = None;
    for step in now - WINDOW..=now + WINDOW {
        let Ok(counter) = u64::try_from(step) else {
            continue;
        };
        let expected = format!(
            "{:0width$}",
            code_at(secret, counter, DIGITS)?,
            width = DIGITS as usize
        );
        if bool::from(expected.as_bytes().ct_eq(typed.as_bytes())) && found.is_none() {
            found = Some(step);
        }
    }
    Ok(found)
}

/// RFC 4648 base32 without padding: how apps take a secret typed by hand.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The bytes of RFC 4648 base32 text (no padding; case and spaces as an
/// app shows them are accepted), or `None` if it is not base32.
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let (mut acc, mut bits) = (0u32, 0u32);
    let mut out = Vec::new();
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = match c.to_ascii_uppercase() {
            u @ b'A'..=b'Z' => u - b'A',
            d @ b'2'..=b'7' => d - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// Percent-encodes a label part of an `otpauth://` URI.
fn uri_part(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The `otpauth://totp/...` URI an app reads from the QR code (Key URI
/// Format): issuer, account, secret and the parameters spelled out.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        uri_part(issuer),
        uri_part(account),
        base32(secret),
        uri_part(issuer),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// RFC 6238 appendix B, the SHA-1 rows (8 digits, the 20-byte ASCII key).
    #[test]
    fn rfc6238_test_vectors() {
        let key = b"12345678901234567890";
        for (t, want) in [
            (59_i64, 94_287_082_u32),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            let step = u64::try_from(step_of(t)).unwrap();
            assert_eq!(code_at(key, step, 8).unwrap(), want, "t = {t}");
        }
        // Six digits are the last six of the same value.
        assert_eq!(code(key, 59).unwrap(), "287082");
        assert_eq!(code(key, 1_111_111_109).unwrap(), "081804");
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        for raw in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"foobar",
            &[0xff; 20],
        ] {
            assert_eq!(from_base32(&base32(raw)).unwrap(), raw);
        }
        assert_eq!(from_base32("mzxw 6ytb oi").unwrap(), b"foobar");
        assert_eq!(from_base32("MZ1"), None);
    }

    #[test]
    fn the_window_is_one_step_either_side() {
        let key = b"12345678901234567890";
        let t = 1_111_111_111;
        let now = step_of(t);
        let at = |s: i64| code(key, s * STEP).unwrap();
        assert_eq!(verify(key, &at(now), t).unwrap(), Some(now));
        assert_eq!(verify(key, &at(now - 1), t).unwrap(), Some(now - 1));
        assert_eq!(verify(key, &at(now + 1), t).unwrap(), Some(now + 1));
        assert_eq!(verify(key, &at(now - 2), t).unwrap(), None);
        assert_eq!(verify(key, &at(now + 2), t).unwrap(), None);
        let spaced = format!("{} {}", &at(now)[..3], &at(now)[3..]);
        assert_eq!(verify(key, &spaced, t).unwrap(), Some(now));
        assert_eq!(verify(key, "12345", t).unwrap(), None);
        assert_eq!(verify(key, "abcdef", t).unwrap(), None);
    }

    #[test]
    fn the_uri_names_every_parameter() {
        let uri = otpauth_uri("tollgate Acme", "jane", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/tollgate%20Acme:jane?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=tollgate%20Acme&algorithm=SHA1&digits=6&period=30"
        );
    }
}
