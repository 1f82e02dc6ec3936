//! PEM, and just enough DER to read the keys an operator brings over from an
//! incumbent: public keys to trust (SubjectPublicKeyInfo, PKCS#1 RSA) and
//! private signing keys to import (PKCS#8, PKCS#1 RSA, SEC1 EC).
//!
//! Why by hand: jsonwebtoken's PEM support sits behind a feature that pulls
//! two more crates, and what is needed here is a few dozen lines.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::CoreError;

/// One PEM block: its label (`PUBLIC KEY`, `PRIVATE KEY`, …) and contents.
pub struct Block {
    /// The label between `BEGIN` and the dashes.
    pub label: String,
    /// The decoded contents (zeroed on drop: it may be a private key).
    pub der: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Block({}, {} bytes)", self.label, self.der.len())
    }
}

fn bad(why: impl Into<String>) -> CoreError {
    CoreError::invalid("PEM", why)
}

/// Every PEM block of `text`, in order. Encrypted blocks (with headers such
/// as `Proc-Type`) are refused: decrypt them first.
pub fn blocks(text: &str) -> Result<Vec<Block>, CoreError> {
    let mut out = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines().map(str::trim) {
        match &mut open {
            None => {
                if let Some(label) = line
                    .strip_prefix("-----BEGIN ")
                    .and_then(|l| l.strip_suffix("-----"))
                {
                    open = Some((label.to_string(), String::new()));
                }
            }
            Some((label, body)) => {
                if line.starts_with("-----END ") {
                    let der = STANDARD
                        .decode(body.as_bytes())
                        .map_err(|_| bad(format!("the {label} block is not base64")))?;
                    out.push(Block {
                        label: label.clone(),
                        der: Zeroizing::new(der),
                    });
                    body.clear();
                    open = None;
                } else if line.contains(':') {
                    return Err(bad(format!(
                        "the {label} block is encrypted or has headers: decrypt it first"
                    )));
                } else {
                    body.push_str(line);
                }
            }
        }
    }
    if out.is_empty() {
        return Err(bad("no PEM block found"));
    }
    Ok(out)
}

/// A public key read from DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA, as a PKCS#1 `RSAPublicKey`.
    Rsa(Vec<u8>),
    /// EC P-256, as an uncompressed point.
    P256(Vec<u8>),
    /// Ed25519, 32 bytes.
    Ed25519(Vec<u8>),
}

/// One DER TLV: (tag, contents, rest). Definite lengths only (DER).
fn tlv(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, d) = d.split_first()?;
    let (&first, mut d) = d.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || d.len() < n {
            return None;
        }
        let (len_bytes, rest) = d.split_at(n);
        d = rest;
        len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    if d.len() < len {
        return None;
    }
    let (content, rest) = d.split_at(len);
    Some((tag, content, rest))
}

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const BIT_STRING: u8 = 0x03;
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// Reads a SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`).
pub fn spki(der: &[u8]) -> Result<PublicKey, CoreError> {
    let not = || bad("not a public key (SubjectPublicKeyInfo)");
    let (tag, spki, _) = tlv(der).ok_or_else(not)?;
    if tag != SEQUENCE {
        return Err(not());
    }
    let (tag, alg, rest) = tlv(spki).ok_or_else(not)?;
    if tag != SEQUENCE {
        return Err(not());
    }
    let (tag, oid, params) = tlv(alg).ok_or_else(not)?;
    if tag != OID {
        return Err(not());
    }
    let (tag, bits, _) = tlv(rest).ok_or_else(not)?;
    // The first byte of a BIT STRING counts unused bits: 0 for keys.
    let key = match (tag, bits.split_first()) {
        (BIT_STRING, Some((0, key))) => key.to_vec(),
        _ => return Err(not()),
    };
    match oid {
        RSA_ENCRYPTION => Ok(PublicKey::Rsa(key)),
        EC_PUBLIC_KEY => match tlv(params) {
            Some((OID, PRIME256V1, _)) if key.len() == 65 && key.first() == Some(&4) => {
                Ok(PublicKey::P256(key))
            }
            _ => Err(bad(
                "an EC key on a curve other than P-256, or compressed (ES256 needs P-256)",
            )),
        },
        ED25519 if key.len() == 32 => Ok(PublicKey::Ed25519(key)),
        _ => Err(bad("a key type other than RSA, EC P-256 or Ed25519")),
    }
}

/// The one public key of a PEM text (`PUBLIC KEY`, or `RSA PUBLIC KEY`).
pub fn public_key(text: &str) -> Result<PublicKey, CoreError> {
    let blocks = blocks(text)?;
    let [block] = blocks.as_slice() else {
        return Err(bad("expected exactly one public key"));
    };
    match block.label.as_str() {
        "PUBLIC KEY" => spki(&block.der),
        "RSA PUBLIC KEY" => Ok(PublicKey::Rsa(block.der.to_vec())),
        l if l.contains("PRIVATE") => Err(bad(
            "this is a private key: give the incumbent's public key (openssl pkey -pubout)",
        )),
        l => Err(bad(format!("a '{l}' block is not a public key"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // `openssl genpkey -algorithm ed25519 | openssl pkey -pubout`
    const ED_PUB: &str = "-----BEGIN PUBLIC KEY-----\n\
        MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
        -----END PUBLIC KEY-----\n";

    #[test]
    fn reads_a_public_key_and_refuses_private_or_garbage() {
        match public_key(ED_PUB).unwrap() {
            PublicKey::Ed25519(k) => assert_eq!(k.len(), 32),
            other => panic!("{other:?}"),
        }
        assert!(
            public_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err()
        );
        assert!(public_key("nothing here").is_err());
        assert!(
            blocks("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END RSA PRIVATE KEY-----\n")
                .is_err()
        );
    }
}
