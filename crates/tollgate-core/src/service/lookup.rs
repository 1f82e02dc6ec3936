//! The grants' reads of clients, users and refresh-JWT records: from memory
//! when seen before, else one store round trip (see `cache.rs`).

use std::sync::Arc;

use crate::error::GrantError;
use crate::model::{Client, RefreshJwtRecord, User};
use crate::service::Tollgate;
use crate::service::cache::read_through;

impl Tollgate {
    /// A client, cached (absent ones too).
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
}
