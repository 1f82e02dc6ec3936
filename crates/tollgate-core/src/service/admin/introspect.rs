//! Introspection of any token of an environment by an administrator: the
//! same verdict RFC 7662 gives a client with the introspect capability,
//! without a calling client.

use crate::crypto::token::VerifiedClaims;
use crate::error::{CoreError, GrantError};
use crate::service::Tollgate;

impl Tollgate {
    /// The claims of access token `token` of `env` if it is active: a valid
    /// signature of the environment, not expired, its client enabled (and
    /// not re-created since), not on the deny list. `None`: inactive,
    /// whatever the reason.
    pub async fn introspect_any(
        &self,
        env: &str,
        token: &str,
    ) -> Result<Option<VerifiedClaims>, CoreError> {
        let rt = self
            .env(env)
            .ok_or_else(|| CoreError::not_found("environment", env))?;
        let Ok(claims) = self.verify(&rt, token, None) else {
            return Ok(None);
        };
        let unavailable = |e: GrantError| {
            CoreError::Store(crate::StoreError::Backend(format!(
                "introspection could not read the store: {e}"
            )))
        };
        let holder = match claims.client_id.as_deref() {
            Some(id) => self.cached_client(env, id).await.map_err(unavailable)?,
            None => None,
        };
        if !holder.is_some_and(|c| c.enabled && c.created_at <= claims.iat) {
            return Ok(None);
        }
        let revoked = self
            .is_revoked(&rt, &claims.jti)
            .await
            .map_err(unavailable)?;
        Ok((!revoked).then_some(claims))
    }
}
