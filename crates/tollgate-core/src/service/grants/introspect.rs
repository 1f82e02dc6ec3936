//! RFC 7662 introspection and the deny list.

use crate::crypto::token::VerifiedClaims;
use crate::error::GrantError;
use crate::model::{Capability, Client};
use crate::service::Tollgate;
use crate::service::state::EnvRuntime;
use crate::time::now;

impl Tollgate {
    /// RFC 7662: the claims of an active token, if `caller` may see them:
    /// tokens issued to the caller itself, or any token when the caller has
    /// the introspect capability. `None` means "inactive" on the wire:
    /// invalid, expired, revoked or not the caller's business.
    pub async fn introspect(
        &self,
        env: &EnvRuntime,
        caller: &Client,
        token: &str,
    ) -> Result<Option<VerifiedClaims>, GrantError> {
        let Ok(claims) = self.verify(env, token, None) else {
            return Ok(None);
        };
        let allowed = claims.client_id.as_deref() == Some(caller.client_id.as_str())
            || caller.capabilities.contains(&Capability::Introspect);
        if !allowed {
            return Ok(None);
        }
        // A token outlives neither its client (deleted or disabled) nor a
        // re-creation of a client under the same id.
        let holder = match claims.client_id.as_deref() {
            Some(id) => self.cached_client(&env.env.name, id).await?,
            None => None,
        };
        if !holder.is_some_and(|c| c.enabled && c.created_at <= claims.iat) {
            return Ok(None);
        }
        let revoked = self.is_revoked(env, &claims.jti).await?;
        Ok((!revoked).then_some(claims))
    }

    /// Whether access token `jti` of `env` is on the deny list (one store
    /// round trip).
    pub async fn is_revoked(&self, env: &EnvRuntime, jti: &str) -> Result<bool, GrantError> {
        let started = std::time::Instant::now();
        let revoked = self.store.is_token_revoked(&env.env.name, jti).await;
        self.metrics.store_timing("is_token_revoked", started);
        revoked.map_err(|e| {
            tracing::error!(error = %e, "store failed while reading the deny list");
            GrantError::Unavailable
        })
    }

    /// The live deny list of `env` (ids of access tokens revoked and not
    /// yet expired), for a gate in another process (the tower layer) that
    /// polls it; one store round trip. `None` when `caller` may not read
    /// it: only a client with the introspect capability may, as only such
    /// a client may learn about other clients' tokens.
    pub async fn deny_list(
        &self,
        env: &EnvRuntime,
        caller: &Client,
    ) -> Result<Option<Vec<String>>, GrantError> {
        if !caller.capabilities.contains(&Capability::Introspect) {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let listed = self.store.list_revoked_tokens(now()).await;
        self.metrics.store_timing("list_revoked_tokens", started);
        let listed = listed.map_err(|e| {
            tracing::error!(error = %e, "store failed while reading the deny list");
            GrantError::Unavailable
        })?;
        Ok(Some(
            listed
                .into_iter()
                .filter(|(e, _)| *e == env.env.name)
                .map(|(_, jti)| jti)
                .collect(),
        ))
    }
}
