//! The provider's side of the partner portal (issue 13): a partner's
//! request for a package it is not offered yet (approved, it becomes an
//! offer; declined, it stays on record), and a provider admin's portal
//! session, opened with an admin API token and stored as a digest of its
//! cookie's token. Plain data with validation; no I/O. A leaf, like
//! `partner.rs`.

use crate::CoreError;

/// The longest note a partner may add to a request.
pub const MAX_NOTE: usize = 500;

/// Where a package request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RequestStatus {
    /// Waiting for the provider.
    Pending,
    /// Approved: the package is offered to the partner.
    Approved,
    /// Declined.
    Declined,
}

impl RequestStatus {
    /// Its name in the store and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Declined => "declined",
        }
    }
}

impl std::str::FromStr for RequestStatus {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, CoreError> {
        match s {
            "pending" => Ok(Self::Pending),
            "approved" => Ok(Self::Approved),
            "declined" => Ok(Self::Declined),
            _ => Err(CoreError::invalid(
                "status",
                "use pending, approved or declined",
            )),
        }
    }
}

/// A partner's request for one package of one API in one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRequest {
    /// Its id (random, sortable by creation: time first).
    pub id: String,
    /// The asking partner.
    pub partner: String,
    /// The account that asked.
    pub requested_by: String,
    /// The environment.
    pub env: String,
    /// The API identifier.
    pub api: String,
    /// A package (or permission) of that API.
    pub package: String,
    /// The partner's note (at most [`MAX_NOTE`] bytes; may be empty).
    pub note: String,
    /// Where it stands.
    pub status: RequestStatus,
    /// Unix seconds.
    pub created_at: i64,
    /// When it was approved or declined.
    pub decided_at: Option<i64>,
    /// Who decided (an admin client's id, or `cli`).
    pub decided_by: Option<String>,
}

/// A provider admin signed in to the portal with an admin API token. The
/// token itself is not kept: the session lasts until the token would have
/// expired, and carries the token's admin client and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSession {
    /// SHA-256 of the cookie's token, hex.
    pub digest: String,
    /// The admin client whose token opened it (the audit log's actor).
    pub admin_client: String,
    /// The token's scope (space-separated).
    pub scope: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Refused from then on (the token's `exp`).
    pub expires_at: i64,
}

/// Checks a request's note: at most [`MAX_NOTE`] bytes, no control
/// characters but line breaks.
pub fn validate_note(note: &str) -> Result<(), CoreError> {
    let ok = note.len() <= MAX_NOTE
        && note
            .chars()
            .all(|c| !c.is_control() || c == '\n' || c == '\r');
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "note",
            format!("use at most {MAX_NOTE} bytes of text"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_notes() {
        for s in [
            RequestStatus::Pending,
            RequestStatus::Approved,
            RequestStatus::Declined,
        ] {
            assert_eq!(s.as_str().parse::<RequestStatus>().ok(), Some(s));
        }
        assert!("done".parse::<RequestStatus>().is_err());
        assert!(validate_note("").is_ok());
        assert!(validate_note("for the\nlive feed").is_ok());
        assert!(validate_note("bell\u{7}").is_err());
        assert!(validate_note(&"x".repeat(MAX_NOTE + 1)).is_err());
    }
}
