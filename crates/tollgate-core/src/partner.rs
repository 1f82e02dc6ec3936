//! The partner portal's records (issue 13 §2): partner organisations, the
//! packages the provider offers each, which clients each owns, its
//! accounts (login name and argon2id hash, failed-attempt counter and
//! lock), one-time invitations and portal sessions. Invitations and
//! sessions are stored only as a digest of their token. Plain data with
//! validation; no I/O. A leaf, like `model.rs`.

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// A partner organisation: it owns clients (in any environment where the
/// provider offers it packages) and has accounts that sign in to the portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    /// Its id, chosen by the provider (`[a-z0-9-]`, 1–64).
    pub id: String,
    /// Its display name.
    pub name: String,
    /// What its accounts may put in the clients they create.
    pub offers: Vec<Offer>,
    /// A disabled partner's clients are disabled and its accounts cannot
    /// sign in.
    pub enabled: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// One package of one API in one environment, offered to a partner.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Offer {
    /// The environment.
    pub env: String,
    /// The API identifier (audience).
    pub api: String,
    /// A package (or permission) name of that API.
    pub package: String,
}

/// A client owned by a partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerClient {
    /// The owner.
    pub partner: String,
    /// The client's environment.
    pub env: String,
    /// The client's id.
    pub client_id: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// An account of a partner's portal. The login is a name, not an e-mail
/// address: tollgate sends no mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerAccount {
    /// Unique across partners (`[a-z0-9._-]`, 3–64).
    pub login: String,
    /// The partner it belongs to.
    pub partner: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Failed sign-ins since the last success or lock.
    pub failed_attempts: u32,
    /// Refused without a password check until then (Unix seconds).
    pub locked_until: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A one-time invitation to create an account of a partner. Only a digest
/// of its token is stored: the link is shown once, to the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// SHA-256 of the token, hex.
    pub digest: String,
    /// The partner the new account joins.
    pub partner: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Refused from then on.
    pub expires_at: i64,
    /// Set when an account was created with it (refused from then on).
    pub used_at: Option<i64>,
}

/// A signed-in portal session, stored as a digest of its cookie's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSession {
    /// SHA-256 of the token, hex.
    pub digest: String,
    /// The account.
    pub login: String,
    /// The account's partner.
    pub partner: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Refused from then on.
    pub expires_at: i64,
}

/// An account's second factor (TOTP, RFC 6238). The secret must be read
/// back to check a code, so it is sealed (AES-256-GCM under a key derived
/// from the master key, bound to the login), never stored in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerTotp {
    /// The account.
    pub login: String,
    /// The sealed secret (base64url of nonce, ciphertext and tag).
    pub sealed: String,
    /// False until a code confirmed the enrolment; only a confirmed
    /// secret is asked for at sign-in.
    pub confirmed: bool,
    /// The last step whose code was accepted: no code of it or of an
    /// earlier step is accepted again (replay).
    pub last_step: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A secret waiting to be handed over through a one-time link: sealed
/// until the link is opened (then deleted) or expires (then purged). Only
/// a digest of the link's token is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    /// SHA-256 of the token, hex.
    pub digest: String,
    /// The partner whose secret it is.
    pub partner: String,
    /// What the secret is, shown to whoever opens the link.
    pub label: String,
    /// The sealed secret.
    pub sealed: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Refused (and purged) from then on.
    pub expires_at: i64,
}

/// Checks a partner id: lowercase letters, digits and `-`, 1–64.
pub fn validate_partner_id(id: &str) -> Result<(), CoreError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "partner id",
            "use 1 to 64 lowercase letters, digits and '-'",
        ))
    }
}

/// Checks a login name: lowercase letters, digits, `.`, `_`, `-`, 3–64.
pub fn validate_login(login: &str) -> Result<(), CoreError> {
    let ok = (3..=64).contains(&login.len())
        && login.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "login",
            "use 3 to 64 lowercase letters, digits, '.', '_' and '-'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_logins() {
        assert!(validate_partner_id("acme-1").is_ok());
        assert!(validate_partner_id("Acme").is_err());
        assert!(validate_partner_id("").is_err());
        assert!(validate_login("jane.doe").is_ok());
        assert!(validate_login("jd").is_err());
        assert!(validate_login("jane doe").is_err());
    }
}
