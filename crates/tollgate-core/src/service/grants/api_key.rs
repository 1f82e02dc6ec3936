//! The gate's API keys: a presented `tgk_…` key becomes the client it acts
//! for and the permissions that client holds at the route's audience, under
//! the client's obligation (a `limit:` quota counts the call when the
//! caller asks it to).
//!
//! From memory once warm: the key's record and the client come from the
//! read-through caches, which every store change empties (a revocation made
//! anywhere reaches this check at the next sync), and the check is one
//! HMAC. Only a counted limit costs a store round trip.

use std::collections::BTreeSet;

use crate::crypto::api_key;
use crate::error::GrantError;
use crate::model::RateInfo;
use crate::service::Tollgate;
use crate::service::grants::issue::held_scope;
use crate::service::state::EnvRuntime;
use crate::time::now;

/// Who a valid API key speaks for, at one audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHolder {
    /// The key's client.
    pub client_id: String,
    /// The key's id (not secret: for logs).
    pub key_id: String,
    /// The permissions the client holds at the audience (packages expanded).
    pub permissions: BTreeSet<String>,
    /// Where the client stands against a counted limit, if one was counted.
    pub rate: Option<RateInfo>,
}

/// Why an API key was refused. Unknown keys and wrong secrets are one
/// outcome: nothing tells a guesser which ids exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    /// Not a key's shape, no such key, or a wrong secret.
    #[error("the API key is not valid")]
    Invalid,
    /// Past its expiry (also the end of a rotation's grace).
    #[error("the API key expired")]
    Expired,
    /// Revoked (also by deleting its client).
    #[error("the API key was revoked")]
    Revoked,
    /// Its client is disabled (or gone).
    #[error("the API key's client is disabled")]
    ClientDisabled,
    /// Its client holds nothing at the audience.
    #[error("the API key's client is not granted '{0}'")]
    NotGranted(String),
    /// Its client's `limit:` quota is used up for this window.
    #[error("the client's limit is reached")]
    RateLimited(RateInfo),
    /// The store could not be reached (a cold cache, or counting a limit).
    #[error("the API key cannot be checked now")]
    Unavailable,
}

/// A digest nothing matches, compared against when the id is unknown so
/// that an unknown id costs the same HMAC as a wrong secret.
const NO_DIGEST: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

impl Tollgate {
    /// Checks `presented` (the whole `X-API-Key` value) for `audience` in
    /// `env`. With `count`, a `limit:` obligation of the client counts this
    /// call as one issuance (refused past the limit).
    pub async fn check_api_key(
        &self,
        env: &EnvRuntime,
        presented: &str,
        audience: &str,
        count: bool,
    ) -> Result<KeyHolder, ApiKeyError> {
        let (id, secret) = api_key::split(presented).ok_or(ApiKeyError::Invalid)?;
        let name = &env.env.name;
        let rec = self
            .cached_api_key(name, id)
            .await
            .map_err(|_| ApiKeyError::Unavailable)?;
        let stored = rec.as_ref().map_or(NO_DIGEST, |r| r.digest.as_str());
        let genuine = api_key::matches(&self.keys, name, id, secret, stored);
        let rec = match rec {
            Some(r) if genuine => r,
            _ => return Err(ApiKeyError::Invalid),
        };
        // Told apart only to the key's holder (the secret matched).
        if rec.revoked_at.is_some() {
            return Err(ApiKeyError::Revoked);
        }
        if rec.expires_at.is_some_and(|e| now() >= e) {
            return Err(ApiKeyError::Expired);
        }
        let client = match self.cached_client(name, &rec.client_id).await {
            Ok(Some(c)) if c.enabled => c,
            Ok(_) => return Err(ApiKeyError::ClientDisabled),
            Err(_) => return Err(ApiKeyError::Unavailable),
        };
        let (_, permissions) = held_scope(env, &client, audience)
            .map_err(|_| ApiKeyError::NotGranted(audience.to_string()))?;
        let rate = if count {
            let obligation = Self::obligation_for(env, &client, audience);
            self.check_limit(env, &client, obligation)
                .await
                .map_err(|e| match e {
                    GrantError::RateLimited(info) => ApiKeyError::RateLimited(info),
                    _ => ApiKeyError::Unavailable,
                })?
        } else {
            None
        };
        Ok(KeyHolder {
            client_id: rec.client_id.clone(),
            key_id: rec.id.clone(),
            permissions,
            rate,
        })
    }
}
