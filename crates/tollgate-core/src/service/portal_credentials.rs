//! A partner's refresh JWTs (bearer exchange) and gate API keys for the
//! clients it owns: the admin services (`admin/refresh_jwt.rs`,
//! `admin/api_key.rs`) behind the ownership check; API keys rotate with
//! a grace of at most 7 days, as client secrets do. Each new secret is
//! returned once, for the page that shows or hands it over.

use secrecy::SecretString;

use crate::crypto::api_key;
use crate::error::CoreError;
use crate::model::{ApiKey, Client, RefreshJwtRecord};
use crate::partner::Partner;
use crate::service::Tollgate;
use crate::service::portal::{MAX_GRACE, PortalError};
use crate::time::now;

/// The longest lifetime a partner may give a refresh JWT (one year).
pub const MAX_REFRESH_JWT_TTL: u64 = 365 * 24 * 3600;
/// The longest lifetime a partner may give an API key (two years); none
/// means until revoked.
pub const MAX_API_KEY_TTL: u64 = 2 * 365 * 24 * 3600;

impl Tollgate {
    /// Client `client_id` of `env` if partner `p` owns it.
    pub async fn partner_client(
        &self,
        p: &Partner,
        env: &str,
        client_id: &str,
    ) -> Result<Client, PortalError> {
        self.owned_client(p, env, client_id).await
    }

    async fn owned_by_enabled(
        &self,
        p: &Partner,
        env: &str,
        client_id: &str,
    ) -> Result<(), PortalError> {
        if !p.enabled {
            return Err(PortalError::PartnerDisabled);
        }
        self.owned_client(p, env, client_id).await.map(drop)
    }

    /// Mints a refresh JWT for a client `p` owns, for `audience` (one of
    /// its APIs; the only one by default), working `ttl` seconds.
    pub async fn partner_issue_refresh_jwt(
        &self,
        p: &Partner,
        env: &str,
        client_id: &str,
        audience: Option<&str>,
        ttl: u64,
    ) -> Result<(SecretString, RefreshJwtRecord), PortalError> {
        if ttl == 0 || ttl > MAX_REFRESH_JWT_TTL {
            return Err(CoreError::invalid("lifetime", "give 1 s to 365 days").into());
        }
        self.owned_by_enabled(p, env, client_id).await?;
        Ok(self
            .issue_refresh_jwt(env, client_id, audience.filter(|a| !a.is_empty()), ttl)
            .await?)
    }

    /// The refresh JWTs of a client `p` owns that still work (metadata).
    pub async fn partner_refresh_jwts(
        &self,
        p: &Partner,
        env: &str,
        client_id: &str,
    ) -> Result<Vec<RefreshJwtRecord>, PortalError> {
        self.owned_client(p, env, client_id).await?;
        let t = now();
        Ok(self
            .list_refresh_jwts(env)
            .await?
            .into_iter()
            .filter(|r| r.client_id == client_id && r.revoked_at.is_none() && r.expires_at > t)
            .collect())
    }

    /// Revokes refresh JWT `jti` of a client `p` owns.
    pub async fn partner_revoke_refresh_jwt(
        &self,
        p: &Partner,
        env: &str,
        client_id: &str,
        jti: &str,
    ) -> Result<(), PortalError> {
        let mine = self
            .partner_refresh_jwts(p, env, client_id)
            .await?
            .iter()
            .any(|r| r.jti == jti);
        if !mine {
            return Err(PortalError::NotYours);
        }
        Ok(self.revoke_refresh_jwt(env, jti).await?)
    }

    /// Creates a gate API key for a client `p` owns, working `ttl` seconds
    /// (`None`: until revoked).
    pub async fn partner_create_api_key(
        &self,
        p: &Partner,
        env: &str,
        client_id: &str,
        name: Option<&str>,
        ttl: Option<u64>,
    ) -> Result<(SecretString, ApiKey), PortalError> {
        if ttl.is_some_and(|t| t == 0 || t > MAX_API_KEY_TTL) {
            return Err(CoreError::invalid("lifetime", "give 1 s to 2 years, or none").into());
        }
        self.owned_by_enabled(p, env, client_id).await?;
        Ok(self.create_api_key(env, client_id, name, ttl).await?)
    }

    /// The API keys of a client `p` owns that still work (never the keys).
    pub async fn partner_api_keys(
        &self,
        p: &Partner,
        env: &str,
        client_id: &str,
    ) -> Result<Vec<ApiKey>, PortalError> {
        self.owned_client(p, env, client_id).await?;
        let t = now();
        Ok(self
            .list_api_keys(env, Some(client_id))
            .await?
            .into_iter()
            .filter(|k| k.live_at(t))
            .collect())
    }

    /// Rotates API key `id` of a client `p` owns: a new key (returned, to
    /// show once) for the same name and lifetime; the old one keeps
    /// working `grace` seconds (at most 7 days). Returns the new key's and
    /// the old key's records too.
    pub async fn partner_rotate_api_key(
        &self,
        p: &Partner,
        env: &str,
        client_id: &str,
        reference: &str,
        grace: u64,
    ) -> Result<(SecretString, ApiKey, ApiKey), PortalError> {
        if grace > MAX_GRACE {
            return Err(CoreError::invalid("grace", "at most 7 days").into());
        }
        if !p.enabled {
            return Err(PortalError::PartnerDisabled);
        }
        let id = api_key::id_of(reference);
        let mine = self
            .partner_api_keys(p, env, client_id)
            .await?
            .iter()
            .any(|k| k.id == id);
        if !mine {
            return Err(PortalError::NotYours);
        }
        Ok(self.rotate_api_key(env, id, grace, None).await?)
    }

    /// Revokes API key `id` (or `tgk_<id>`, or the whole key) of a client
    /// `p` owns.
    pub async fn partner_revoke_api_key(
        &self,
        p: &Partner,
        env: &str,
        client_id: &str,
        reference: &str,
    ) -> Result<ApiKey, PortalError> {
        let id = api_key::id_of(reference);
        let mine = self
            .partner_api_keys(p, env, client_id)
            .await?
            .iter()
            .any(|k| k.id == id);
        if !mine {
            return Err(PortalError::NotYours);
        }
        Ok(self.revoke_api_key(env, id).await?)
    }
}
