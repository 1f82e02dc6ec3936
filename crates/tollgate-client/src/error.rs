//! What can go wrong, typed: each error names the contract and, when the
//! server refused, the contract's own error code (`invalid_client`,
//! `invalid_grant`, `invalid_token`, `Not authenticated`, …).

use std::time::Duration;

use crate::key::Contract;

/// An error from a token source. `Clone`, so every caller waiting on one
/// failed request gets the same error without sending another.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The server answered with the contract's error.
    #[error("{contract}: the server refused ({status}): {code}{}", describe(.description))]
    Refused {
        /// The contract.
        contract: Contract,
        /// HTTP status.
        status: u16,
        /// The contract's error code (`invalid_grant`, …; `not_authenticated`
        /// for the header login's plain 401).
        code: String,
        /// The server's description, if any.
        description: Option<String>,
    },
    /// The refresh token is dead and this source may not log in again
    /// (the contract has no login, or re-login is switched off).
    #[error("{contract}: the session ended (refresh token refused: {code}); a new login is needed")]
    SessionEnded {
        /// The contract.
        contract: Contract,
        /// The error code of the last refusal.
        code: String,
    },
    /// Still 429 after the retries, or a `Retry-After` longer than allowed.
    #[error("{contract}: rate limited (retry after {retry_after:?})")]
    RateLimited {
        /// The contract.
        contract: Contract,
        /// What the server asked for, if anything.
        retry_after: Option<Duration>,
    },
    /// 5xx or no answer after every retry.
    #[error("{contract}: unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// The contract.
        contract: Contract,
        /// Attempts made.
        attempts: u32,
        /// The last status or transport error.
        last: String,
    },
    /// The answer did not have the contract's shape.
    #[error("{contract}: unexpected answer: {detail}")]
    Protocol {
        /// The contract.
        contract: Contract,
        /// What was wrong.
        detail: String,
    },
    /// The token's whole lifetime is not longer than the margin, so it could
    /// never be handed out.
    #[error("a token lives {lifetime:?}, not longer than the margin {margin:?}")]
    TooShort {
        /// The token's lifetime when received.
        lifetime: Duration,
        /// The configured margin.
        margin: Duration,
    },
    /// The refresh-token store failed; the token is not handed out, since it
    /// could not be persisted first.
    #[error("refresh-token store: {0}")]
    Store(String),
    /// The source's configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
}

fn describe(d: &Option<String>) -> String {
    d.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
}

impl Error {
    /// Whether this is the server saying the presented grant (refresh
    /// token, refresh JWT) is no good: the cue to re-read the store or log
    /// in again, never to retry the same request.
    pub fn is_dead_grant(&self) -> bool {
        matches!(self, Error::Refused { code, .. }
            if matches!(code.as_str(), "invalid_grant" | "invalid_token" | "not_authenticated"))
    }

    /// The contract's error code, when the server refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Refused { code, .. } | Error::SessionEnded { code, .. } => Some(code),
            _ => None,
        }
    }
}
