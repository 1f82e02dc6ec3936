//! The grants' reads of clients, users, refresh-JWT records and API keys: from memory
//! when seen before, else one store round trip (see `cache.rs`).

use std::sync::Arc;

use crate::error::GrantError;
use crate::model::{ApiKey, Client, RefreshJwtRecord, User};
use crate::service::Tollgate;
use crate::service::cache::read_through;

impl Tollgate {
    /// A client, cached (absent ones too).
    /// Whether `client_id` exists in `env` and is enabled, from memory once
    /// known (the cache empties when the store changes, so a disabled
    /// client is seen at the next sync): what a gate asks of a token's
    /// client.
    pub async fn client_enabled(&self, env: &str, client_id: &str) -> Result<bool, GrantError> {
        Ok(self
            .cached_client(env, client_id)
            .await?
            .is_some_and(|c| c.enabled))
    }

    pub(crate) async fn cached_client(
        &self,
        env: &str,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, GrantError> {
        let key = (env.to_string(), client_id.to_string());
        read_through(
            &self.metrics,
            &self.caches.clients,
            "client",
            "get_client",
            key,
            true,
            || self.store.get_client(env, client_id),
        )
        .await
    }

    /// A user, cached (absent ones too).
    pub(crate) async fn cached_user(
        &self,
        env: &str,
        username: &str,
    ) -> Result<Option<Arc<User>>, GrantError> {
        let key = (env.to_string(), username.to_string());
        read_through(
            &self.metrics,
            &self.caches.users,
            "user",
            "get_user",
            key,
            true,
            || self.store.get_user(env, username),
        )
        .await
    }

    /// The user a login name designates: the exact name first; with
    /// `fold` and an e-mail address (a name holding `@`), else the one
    /// user whose name differs only in ASCII case. Two such users (which
    /// only an import can create) make the name ambiguous: none is chosen.
    /// Cached like [`Self::cached_user`], under the folded name.
    pub(crate) async fn user_for_login(
        &self,
        env: &str,
        username: &str,
        fold: bool,
    ) -> Result<Option<Arc<User>>, GrantError> {
        let exact = self.cached_user(env, username).await?;
        if exact.is_some() || !fold || !username.contains('@') {
            return Ok(exact);
        }
        // A NUL cannot start a user name: no clash with exact entries.
        let key = (
            env.to_string(),
            format!("\0{}", username.to_ascii_lowercase()),
        );
        read_through(
            &self.metrics,
            &self.caches.users,
            "user",
            "find_users_folded",
            key,
            true,
            || async {
                let mut found = self.store.find_users_folded(env, username).await?;
                found.retain(|u| u.username.eq_ignore_ascii_case(username));
                Ok(match found.len() {
                    1 => found.pop(),
                    _ => None,
                })
            },
        )
        .await
    }

    /// Drops a refresh JWT's record from this instance's cache (it was
    /// revoked here; other instances drop theirs at their next sync).
    pub(crate) fn forget_refresh_jwt(&self, env: &str, jti: &str) {
        crate::sync::write(&self.caches.refresh_jwts).remove(&(env.to_string(), jti.to_string()));
    }

    /// A refresh JWT's record, cached once known.
    pub(crate) async fn cached_refresh_jwt(
        &self,
        env: &str,
        jti: &str,
    ) -> Result<Option<Arc<RefreshJwtRecord>>, GrantError> {
        let key = (env.to_string(), jti.to_string());
        read_through(
            &self.metrics,
            &self.caches.refresh_jwts,
            "refresh_jwt",
            "get_refresh_jwt",
            key,
            false,
            || self.store.get_refresh_jwt(env, jti),
        )
        .await
    }

    /// An API key's record by id, cached (unknown ids too).
    pub(crate) async fn cached_api_key(
        &self,
        env: &str,
        id: &str,
    ) -> Result<Option<Arc<ApiKey>>, GrantError> {
        let key = (env.to_string(), id.to_string());
        read_through(
            &self.metrics,
            &self.caches.api_keys,
            "api_key",
            "get_api_key",
            key,
            true,
            || self.store.get_api_key(env, id),
        )
        .await
    }
}
