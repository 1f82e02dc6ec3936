//! Refresh JWTs of the bearer exchange: minted once, listed, revoked.

use secrecy::SecretString;

use crate::crypto::random::random_b64;
use crate::error::CoreError;
use crate::model::RefreshJwtRecord;
use crate::service::Tollgate;
use crate::time::now;

impl Tollgate {
    /// Mints a long-lived refresh JWT for a client (shown once; only its
    /// `jti` and metadata are stored). `audience` defaults to the client's
    /// only API. Signed HS256 under a key derived from the master key: only
    /// tollgate verifies it, and signing-key rotation does not touch it.
    pub async fn issue_refresh_jwt(
        &self,
        env: &str,
        client_id: &str,
        audience: Option<&str>,
        ttl: u64,
    ) -> Result<(SecretString, RefreshJwtRecord), CoreError> {
        self.require_env(env).await?;
        let client = self.get_client(env, client_id).await?;
        let audience = match (audience, client.apis.as_slice()) {
            (Some(a), _) => a.to_string(),
            (None, [only]) => only.api.clone(),
            (None, _) => {
                return Err(CoreError::invalid(
                    "api",
                    "the client holds several APIs (or none): name one with --api",
                ));
            }
        };
        if client.grant_for(&audience).is_none() {
            return Err(CoreError::invalid(
                "api",
                format!("the client is not granted '{audience}'"),
            ));
        }
        let t = now();
        let rec = RefreshJwtRecord {
            env: env.to_string(),
            jti: random_b64(16)?,
            client_id: client_id.to_string(),
            audience,
            created_at: t,
            expires_at: t.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
            revoked_at: None,
        };
        let token = self
            .codec
            .encode_refresh_jwt(&rec)
            .map_err(|e| CoreError::Crypto(e.to_string()))?;
        self.store.insert_refresh_jwt(&rec).await?;
        Ok((SecretString::from(token), rec))
    }

    /// Refresh JWTs of an environment (metadata only).
    pub async fn list_refresh_jwts(&self, env: &str) -> Result<Vec<RefreshJwtRecord>, CoreError> {
        self.require_env(env).await?;
        Ok(self.store.list_refresh_jwts(env).await?)
    }

    /// Revokes a refresh JWT by its `jti`.
    pub async fn revoke_refresh_jwt(&self, env: &str, jti: &str) -> Result<(), CoreError> {
        self.forget_refresh_jwt(env, jti);
        let existed = self.store.revoke_refresh_jwt(env, jti, now()).await?;
        CoreError::found(existed, "active refresh JWT", jti)
    }
}
