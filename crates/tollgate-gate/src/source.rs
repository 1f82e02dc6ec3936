//! Where a gate gets an issuer's keys, revocations and API keys: the [`KeySource`]
//! port, and [`CoreKeys`], the source of a gate inside a tollgate server,
//! which reads the core's in-memory snapshot (kept current by the server's
//! sync, so a decision costs no store round trip).
//!
//! A remote issuer (the tower layer) is the second implementation,
//! [`crate::RemoteKeys`], fetching metadata and JWKS; the trait is async for
//! it (an unknown `kid` triggers a fetch).

use std::sync::Arc;

use async_trait::async_trait;
use tollgate_core::Tollgate;
use tollgate_core::crypto::token::{VerifiedClaims, VerifyError};
use tollgate_core::service::grants::api_key::{ApiKeyError, KeyHolder};

/// Why a source did not vouch for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// No such environment (issuer).
    #[error("unknown environment")]
    UnknownEnv,
    /// Not a JWT, or not one of this issuer's (type, unknown `kid`).
    #[error("malformed or foreign token")]
    Malformed,
    /// Bad signature or wrong issuer.
    #[error("bad signature or issuer")]
    Invalid,
    /// The source cannot tell now (a remote issuer unreachable).
    #[error("key source unavailable")]
    Unavailable,
    /// Genuine, but its client is disabled or deleted (only a source that
    /// holds the issuer's clients can tell).
    #[error("the token's client is disabled")]
    ClientDisabled,
}

/// An issuer's keys and deny list, as a gate needs them.
#[async_trait]
pub trait KeySource: Send + Sync + 'static {
    /// A number that moves whenever keys or the deny list may have changed:
    /// decisions cached under another generation are dropped.
    fn generation(&self) -> i64;
    /// Checks `token`'s type, key, signature and issuer for environment
    /// `env`, and returns its claims. Times and audience are the gate's.
    async fn verify(&self, env: &str, token: &str) -> Result<VerifiedClaims, SourceError>;
    /// Whether token `jti` of `env` is revoked; from memory.
    fn is_denied(&self, env: &str, jti: &str) -> bool;
    /// Checks API key `key` of `env` for `audience`: the client it acts for
    /// and what that client holds there; with `count`, the client's
    /// `limit:` quota counts the call. API keys are the issuer's own
    /// records, so only a source inside the issuer can check them; the
    /// default answers [`ApiKeyError::Unavailable`].
    async fn api_key(
        &self,
        env: &str,
        key: &str,
        audience: &str,
        count: bool,
    ) -> Result<KeyHolder, ApiKeyError> {
        let _ = (env, key, audience, count);
        Err(ApiKeyError::Unavailable)
    }
}

/// The in-process source: the core's snapshot. The core must keep its deny
/// list in memory ([`Tollgate::keep_deny_list`]), or nothing reads as revoked.
#[derive(Debug, Clone)]
pub struct CoreKeys(pub Arc<Tollgate>);

#[async_trait]
impl KeySource for CoreKeys {
    fn generation(&self) -> i64 {
        self.0.revision()
    }

    async fn verify(&self, env: &str, token: &str) -> Result<VerifiedClaims, SourceError> {
        let rt = self.0.env(env).ok_or(SourceError::UnknownEnv)?;
        let claims = self.0.verify_signature(&rt, token).map_err(|e| match e {
            VerifyError::Malformed => SourceError::Malformed,
            // Signature-only verification never reports expiry; any
            // other outcome is a token not to trust.
            _ => SourceError::Invalid,
        })?;
        // A disabled or deleted client's tokens stop here too, as they do
        // at introspection (from memory once its record is cached; the
        // change that disables it moves the generation).
        if let Some(client) = &claims.client_id {
            match self.0.client_enabled(env, client).await {
                Ok(true) => {}
                Ok(false) => return Err(SourceError::ClientDisabled),
                Err(_) => return Err(SourceError::Unavailable),
            }
        }
        Ok(claims)
    }

    fn is_denied(&self, env: &str, jti: &str) -> bool {
        self.0.env(env).is_some_and(|rt| rt.is_denied(jti))
    }

    async fn api_key(
        &self,
        env: &str,
        key: &str,
        audience: &str,
        count: bool,
    ) -> Result<KeyHolder, ApiKeyError> {
        let rt = self.0.env(env).ok_or(ApiKeyError::Invalid)?;
        self.0.check_api_key(&rt, key, audience, count).await
    }
}
