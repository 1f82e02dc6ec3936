//! API keys of clients (the gate's `X-API-Key`): created and shown once,
//! listed without the key, revoked, rotated with a grace. The format and
//! the stored keyed hash are `crypto::api_key`'s; the gate's check is
//! `grants/api_key.rs`.

use secrecy::SecretString;

use crate::crypto::api_key;
use crate::error::{CoreError, StoreError};
use crate::model::ApiKey;
use crate::service::Tollgate;
use crate::time::now;

/// Longest `--name`: a label, not a document.
const NAME_MAX: usize = 200;

impl Tollgate {
    /// Creates an API key for client `client_id` of `env`, working for
    /// `ttl` seconds (`None`: until revoked). Returns the key, to show once
    /// (only its id and a keyed hash are stored), and its record.
    pub async fn create_api_key(
        &self,
        env: &str,
        client_id: &str,
        name: Option<&str>,
        ttl: Option<u64>,
    ) -> Result<(SecretString, ApiKey), CoreError> {
        self.require_env(env).await?;
        self.get_client(env, client_id).await?;
        let name = checked_name(name)?;
        let t = now();
        let (key, rec) = self.new_key(env, client_id, name, ttl, t)?;
        self.store
            .insert_api_key(&rec)
            .await
            .map_err(|e| id_clash(e, &rec.id))?;
        Ok((key, rec))
    }

    /// The API keys of `env`, optionally of one client (never the keys).
    pub async fn list_api_keys(
        &self,
        env: &str,
        client_id: Option<&str>,
    ) -> Result<Vec<ApiKey>, CoreError> {
        self.require_env(env).await?;
        Ok(self.store.list_api_keys(env, client_id).await?)
    }

    /// Revokes an API key, named by its id, `tgk_<id>`, or the whole key
    /// (a leaked key pasted as found). Servers refuse it from their next
    /// sync.
    pub async fn revoke_api_key(&self, env: &str, reference: &str) -> Result<ApiKey, CoreError> {
        let id = api_key::id_of(reference);
        let revoked = self.store.revoke_api_key(env, id, now()).await?;
        CoreError::found(revoked, "active API key", id)?;
        self.store
            .get_api_key(env, id)
            .await?
            .ok_or_else(|| CoreError::not_found("API key", id))
    }

    /// Rotates an API key: a new key for the same client and name (shown
    /// once), working for `ttl` seconds (`None`: as long as the old one was
    /// made to, from now); the old one keeps working for `grace` seconds
    /// (never longer than it would have), then stops. Of two concurrent
    /// rotations of one key, one wins; the other is refused.
    pub async fn rotate_api_key(
        &self,
        env: &str,
        reference: &str,
        grace: u64,
        ttl: Option<u64>,
    ) -> Result<(SecretString, ApiKey, ApiKey), CoreError> {
        let id = api_key::id_of(reference);
        let old = self
            .store
            .get_api_key(env, id)
            .await?
            .ok_or_else(|| CoreError::not_found("API key", id))?;
        let t = now();
        if !old.live_at(t) {
            return Err(CoreError::invalid(
                "API key",
                format!("{id} is revoked or expired: create a new one instead"),
            ));
        }
        let ttl = ttl.or_else(|| {
            old.expires_at
                .and_then(|e| u64::try_from(e.saturating_sub(old.created_at)).ok())
        });
        let (key, new) = self.new_key(env, &old.client_id, old.name.clone(), ttl, t)?;
        let grace_end = t.saturating_add(i64::try_from(grace).unwrap_or(i64::MAX));
        let until = old.expires_at.map_or(grace_end, |e| e.min(grace_end));
        if !self
            .store
            .rotate_api_key(&old, until, &new)
            .await
            .map_err(|e| id_clash(e, &new.id))?
        {
            return Err(CoreError::invalid(
                "API key",
                format!("{id} changed while it was being rotated; try again"),
            ));
        }
        let old = ApiKey {
            expires_at: Some(until),
            ..old
        };
        Ok((key, new, old))
    }

    fn new_key(
        &self,
        env: &str,
        client_id: &str,
        name: Option<String>,
        ttl: Option<u64>,
        t: i64,
    ) -> Result<(SecretString, ApiKey), CoreError> {
        let g = api_key::generate(&self.keys, env)?;
        let rec = ApiKey {
            env: env.to_string(),
            id: g.id,
            client_id: client_id.to_string(),
            name,
            digest: g.digest,
            created_at: t,
            expires_at: ttl.map(|s| t.saturating_add(i64::try_from(s).unwrap_or(i64::MAX))),
            revoked_at: None,
        };
        Ok((g.key, rec))
    }
}

fn checked_name(name: Option<&str>) -> Result<Option<String>, CoreError> {
    match name.map(str::trim) {
        None | Some("") => Ok(None),
        Some(n) if n.len() > NAME_MAX || n.chars().any(char::is_control) => Err(
            CoreError::invalid("name", "at most 200 bytes, no control characters"),
        ),
        Some(n) => Ok(Some(n.to_string())),
    }
}

/// A random id taken already (71 bits: never in practice, but not silently).
fn id_clash(e: StoreError, id: &str) -> CoreError {
    crate::service::conflict(e, "API key", id)
}
