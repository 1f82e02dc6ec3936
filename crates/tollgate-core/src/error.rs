//! Typed errors of the core. Contracts map [`GrantError`] to their own wire
//! format; provisioning callers (CLI, admin API) show [`CoreError`] as is.

use thiserror::Error;

/// A failure of the storage backend. Exhaustive: the admin API's error
/// map names every variant.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The backend could not be reached or failed a query.
    #[error("store backend: {0}")]
    Backend(String),
    /// A row that must be unique already exists.
    #[error("already exists: {0}")]
    Conflict(String),
    /// Stored data could not be decoded (corruption or a newer schema).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The store did not answer within its deadline (a hung database, a
    /// lock held too long).
    #[error("store call {op} timed out after {after_ms} ms")]
    Timeout {
        /// The call.
        op: &'static str,
        /// The deadline it missed.
        after_ms: u64,
    },
}

/// Errors of provisioning and key handling. Exhaustive, like
/// [`GrantError`]: the admin API maps each variant to a status by name, so
/// a new one is a compile error until it has one.
#[derive(Debug, Error)]
pub enum CoreError {
    /// The named thing does not exist.
    #[error("{kind} not found: {name}")]
    NotFound {
        /// What was looked for ("environment", "api", "client").
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The named thing exists already.
    #[error("{kind} already exists: {name}")]
    AlreadyExists {
        /// What was created.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// An argument was not acceptable; the text says why.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The argument.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A cryptographic operation failed (bad master key, corrupt key material).
    #[error("crypto: {0}")]
    Crypto(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CoreError {
    pub(crate) fn not_found(kind: &'static str, name: &str) -> Self {
        Self::NotFound {
            kind,
            name: name.to_string(),
        }
    }

    /// `Ok` when the store reported the row existed, else `NotFound`.
    pub(crate) fn found(existed: bool, kind: &'static str, name: &str) -> Result<(), Self> {
        if existed {
            Ok(())
        } else {
            Err(Self::not_found(kind, name))
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// Why a token request was refused. These are domain outcomes, not wire
/// errors: each contract maps them onto its own format (RFC 6749, Auth0, ...).
/// Deliberately exhaustive: a new outcome must be placed in every contract's
/// error map by hand, which the compiler enforces.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GrantError {
    /// Unknown client, wrong secret, or disabled client. Deliberately one
    /// variant so that no contract can tell them apart.
    #[error("client authentication failed")]
    InvalidClient,
    /// The client may not use this grant type.
    #[error("the client is not allowed to use the grant type '{0}'")]
    UnauthorizedClient(String),
    /// The requested audience is an API the client is not granted.
    #[error("the client is not granted the audience '{0}'")]
    AudienceNotGranted(String),
    /// The requested audience names no API of the environment (asked only
    /// by authenticated clients, so telling it apart leaks nothing).
    #[error("no API has the identifier '{0}'")]
    UnknownAudience(String),
    /// No audience was named and the client holds several (or none).
    #[error("{0}")]
    AudienceRequired(String),
    /// The requested scope exceeds what the client holds.
    #[error("scope not granted: {0}")]
    InvalidScope(String),
    /// A presented grant (a refresh JWT, a refresh token) is invalid, expired,
    /// revoked, or no longer backed by an enabled client. The text is for
    /// logs and error descriptions; it never contains the grant.
    #[error("invalid grant: {0}")]
    InvalidGrant(String),
    /// A presented refresh token is genuine but expired (Spring answers this
    /// one differently from an unknown token).
    #[error("the grant has expired")]
    ExpiredGrant,
    /// The client is past its issuance limit ([`crate::model::Obligation::Limit`]).
    #[error("issuance limit reached")]
    RateLimited(crate::model::RateInfo),
    /// The request is malformed in a way the core detected.
    #[error("{0}")]
    InvalidRequest(String),
    /// The server could not complete the request (store down, key missing).
    #[error("temporarily unavailable")]
    Unavailable,
    /// Too many failed authentications of this account or from this source:
    /// refused without checking, for `retry_after` seconds.
    #[error("too many failed attempts; retry in {retry_after} s")]
    Throttled {
        /// Seconds until the lock ends.
        retry_after: u64,
    },
    /// Too many password checks are under way (the argon2id memory budget is
    /// taken and its queue full); retry shortly.
    #[error("too many password checks under way")]
    Busy,
}

impl GrantError {
    /// Seconds a client should wait before retrying (`Retry-After`), for
    /// the outcomes that are the server's condition, not the request's.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Unavailable => Some(UNAVAILABLE_RETRY_AFTER),
            Self::Busy => Some(BUSY_RETRY_AFTER),
            Self::RateLimited(info) => Some(info.retry_after()),
            Self::Throttled { retry_after } => Some(*retry_after),
            Self::InvalidClient
            | Self::UnauthorizedClient(_)
            | Self::AudienceNotGranted(_)
            | Self::UnknownAudience(_)
            | Self::AudienceRequired(_)
            | Self::InvalidScope(_)
            | Self::InvalidGrant(_)
            | Self::ExpiredGrant
            | Self::InvalidRequest(_) => None,
        }
    }
}

/// `Retry-After` of [`GrantError::Unavailable`]: the store usually comes
/// back (failover, a lock released) within seconds.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 5;
/// `Retry-After` of [`GrantError::Busy`]: a check takes tens of ms, so the
/// queue moves within a second.
pub const BUSY_RETRY_AFTER: u64 = 1;
