//! RFC 7009 revocation of access tokens, session refresh tokens and refresh JWTs.

use crate::error::{GrantError, StoreError};
use crate::model::Client;
use crate::service::Tollgate;
use crate::service::grants::session::unavailable;
use crate::service::state::EnvRuntime;
use crate::sync::lock;
use crate::time::now;

impl Tollgate {
    /// RFC 7009: revokes `token` if it is the caller's. An access token goes
    /// on the deny list until it would have expired; a session refresh token
    /// ends its session (its family); a refresh JWT is revoked. Tokens that
    /// are invalid, expired, or another client's are answered the same way
    /// as a success (§2.2), so the answer tells nothing about them.
    pub async fn revoke(
        &self,
        env: &EnvRuntime,
        caller: &Client,
        token: &str,
    ) -> Result<(), GrantError> {
        let failed = |e: StoreError| {
            tracing::error!(error = %e, "store failed while revoking");
            GrantError::Unavailable
        };
        if let Ok(claims) = self.verify(env, token, None) {
            if claims.client_id.as_deref() != Some(caller.client_id.as_str()) {
                tracing::debug!("revocation of another client's token ignored");
                return Ok(());
            }
            // Never hand it out again from this instance's reuse memory
            // (other instances drop theirs at their next sync).
            lock(&self.caches.reuse).retain(|_, issued| issued.access_token != token);
            return self
                .store
                .revoke_token(&env.env.name, &claims.jti, claims.exp)
                .await
                .map_err(failed);
        }
        if self.revoke_session_token(env, caller, token).await? {
            return Ok(());
        }
        if let Ok(jti) = self.codec.read_refresh_jwt(&env.env.name, token) {
            let rec = self.store.get_refresh_jwt(&env.env.name, &jti).await;
            if rec
                .map_err(failed)?
                .is_some_and(|r| r.client_id == caller.client_id)
            {
                self.forget_refresh_jwt(&env.env.name, &jti);
                self.store
                    .revoke_refresh_jwt(&env.env.name, &jti, now())
                    .await
                    .map_err(failed)?;
            }
        }
        Ok(())
    }

    /// RFC 7009 for a session refresh token of this environment: when it is
    /// `caller`'s, ends its session. Returns whether `token` was a session
    /// refresh token at all (another client's counts, and is left alone).
    pub(crate) async fn revoke_session_token(
        &self,
        env: &EnvRuntime,
        caller: &Client,
        token: &str,
    ) -> Result<bool, GrantError> {
        let claims = match self.read_refresh_token(token) {
            Ok(c) => c,
            Err(_) => return Ok(false),
        };
        if claims.env.as_deref().is_some_and(|e| e != env.env.name)
            || claims.client_id != caller.client_id
        {
            return Ok(true);
        }
        self.forget_family(&env.env.name, &claims.fam);
        self.store
            .revoke_refresh_family(&env.env.name, &claims.fam, now())
            .await
            .map_err(unavailable)?;
        Ok(true)
    }
}
