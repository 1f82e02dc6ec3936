//! Clients: partner applications, their secrets and the rotation of them.

use secrecy::SecretString;

use crate::crypto::random::random_alnum;
use crate::crypto::secret;
use crate::error::CoreError;
use crate::model::{ApiGrant, Client, GrantType, SecretRecord};
use crate::service::requests::{ClientUpdate, NewClient};
use crate::service::{Tollgate, conflict};
use crate::time::now;

impl Tollgate {
    /// Creates (or imports) a client; returns it with the secret to show
    /// once (none for a public client).
    pub async fn create_client(
        &self,
        new: NewClient,
    ) -> Result<(Client, Option<SecretString>), CoreError> {
        self.require_env(&new.env).await?;
        self.check_api_grants(&new.env, &new.apis).await?;
        let client_id = match new.client_id {
            Some(id) => id,
            None => random_alnum(24)?,
        };
        let t = now();
        let (secret, secrets) = match (new.public, new.client_secret) {
            (true, Some(_)) => {
                return Err(CoreError::invalid(
                    "client secret",
                    "a public client has no secret",
                ));
            }
            (true, None) => (None, Vec::new()),
            (false, s) => {
                let s = match s {
                    Some(s) => s,
                    None => secret::generate()?,
                };
                let record = secret::hash_for_storage(&self.keys, &new.env, &client_id, &s, t)?;
                (Some(s), vec![record])
            }
        };
        let grant_types = if new.grant_types.is_empty() {
            [GrantType::ClientCredentials].into_iter().collect()
        } else {
            new.grant_types
        };
        if new.public && grant_types.contains(&GrantType::ClientCredentials) {
            return Err(CoreError::invalid(
                "grant",
                "a public client cannot use client_credentials: give it user grants (--grant device_credentials, --grant password)",
            ));
        }
        let client = Client {
            env: new.env,
            client_id,
            name: new.name,
            secrets,
            apis: new.apis,
            grant_types,
            token_lifetime: new.token_lifetime,
            extra_claims: new.extra_claims,
            capabilities: new.capabilities,
            obligation: new.obligation,
            roles: new.roles,
            enabled: true,
            created_at: t,
        };
        client.validate()?;
        self.store
            .create_client(&client)
            .await
            .map_err(|e| conflict(e, "client", &client.client_id))?;
        Ok((client, secret))
    }

    /// Every granted API exists in `env` and every name granted there is a
    /// package or permission of it.
    async fn check_api_grants(&self, env: &str, grants: &[ApiGrant]) -> Result<(), CoreError> {
        let apis = self.list_apis(env).await?;
        for g in grants {
            let api = apis
                .iter()
                .find(|a| a.identifier == g.api)
                .ok_or_else(|| CoreError::not_found("api", &g.api))?;
            api.expand(&g.grants)
                .map_err(|r| CoreError::invalid("api grant", r))?;
        }
        Ok(())
    }

    /// Changes a client in place: name, APIs, grants, lifetime, claims,
    /// capabilities, obligation. Its id, secrets (and their rotation) and
    /// sessions stay; every server applies the change at its next sync.
    pub async fn update_client(
        &self,
        env: &str,
        client_id: &str,
        change: ClientUpdate,
    ) -> Result<Client, CoreError> {
        let client = self.get_client(env, client_id).await?;
        let client = self.changed_client(client, change).await?;
        // Secrets and the enabled flag are not written: a rotation or a
        // disable racing with this update keeps its effect.
        let existed = self.store.update_client(&client).await?;
        CoreError::found(existed, "client", client_id)?;
        Ok(client)
    }

    /// `client` with `change` applied, checked (not written).
    pub(crate) async fn changed_client(
        &self,
        mut client: Client,
        change: ClientUpdate,
    ) -> Result<Client, CoreError> {
        let env = client.env.clone();
        let env = env.as_str();
        if let Some(name) = change.name {
            client.name = name;
        }
        if let Some(apis) = change.apis {
            self.check_api_grants(env, &apis).await?;
            client.apis = apis;
        }
        if let Some(grants) = change.grant_types {
            if grants.is_empty() {
                return Err(CoreError::invalid(
                    "grant",
                    "a client needs at least one grant",
                ));
            }
            client.grant_types = grants;
        }
        if client.secrets.is_empty() && client.grant_types.contains(&GrantType::ClientCredentials) {
            return Err(CoreError::invalid(
                "grant",
                "a public client cannot use client_credentials",
            ));
        }
        if let Some(lifetime) = change.token_lifetime {
            client.token_lifetime = lifetime;
        }
        if let Some(claims) = change.extra_claims {
            client.extra_claims = claims;
        }
        if let Some(caps) = change.capabilities {
            client.capabilities = caps;
        }
        if let Some(obligation) = change.obligation {
            client.obligation = obligation;
        }
        if let Some(roles) = change.roles {
            client.roles = roles;
        }
        client.validate()?;
        Ok(client)
    }

    /// Clients of `env`.
    pub async fn list_clients(&self, env: &str) -> Result<Vec<Client>, CoreError> {
        self.require_env(env).await?;
        Ok(self.store.list_clients(env).await?)
    }

    /// One client.
    pub async fn get_client(&self, env: &str, client_id: &str) -> Result<Client, CoreError> {
        self.store
            .get_client(env, client_id)
            .await?
            .ok_or_else(|| CoreError::not_found("client", client_id))
    }

    /// Enables or disables a client.
    pub async fn set_client_enabled(
        &self,
        env: &str,
        client_id: &str,
        enabled: bool,
    ) -> Result<(), CoreError> {
        let existed = self
            .store
            .set_client_enabled(env, client_id, enabled)
            .await?;
        CoreError::found(existed, "client", client_id)
    }

    /// Deletes a client with its users, revoking its refresh JWTs and
    /// sessions; its access tokens introspect inactive from then on.
    pub async fn delete_client(&self, env: &str, client_id: &str) -> Result<(), CoreError> {
        let existed = self.store.delete_client(env, client_id, now()).await?;
        CoreError::found(existed, "client", client_id)
    }

    /// Rotates a client's secret: a new secret is added and returned (to show
    /// once); the current ones keep working for `grace` seconds, then stop.
    /// Secrets already expired are dropped.
    pub async fn rotate_secret(
        &self,
        env: &str,
        client_id: &str,
        grace: u64,
    ) -> Result<(SecretString, Client), CoreError> {
        let t = now();
        let until = t.saturating_add(i64::try_from(grace).unwrap_or(i64::MAX));
        let secret = secret::generate()?;
        let record = secret::hash_for_storage(&self.keys, env, client_id, &secret, t)?;
        let client = self
            .update_secrets(env, client_id, |secrets| {
                secrets.retain(|r| r.expires_at.is_none_or(|e| e > t));
                for r in secrets.iter_mut() {
                    r.expires_at = Some(r.expires_at.map_or(until, |e| e.min(until)));
                }
                secrets.push(record.clone());
                Ok(())
            })
            .await?;
        Ok((secret, client))
    }

    /// Ends every rotation grace at once: only the newest secret keeps working.
    pub async fn revoke_all_but_newest_secret(
        &self,
        env: &str,
        client_id: &str,
    ) -> Result<Client, CoreError> {
        self.update_secrets(env, client_id, |secrets| {
            let newest = secrets
                .iter()
                .enumerate()
                .max_by_key(|(i, r)| (r.created_at, *i))
                .map(|(i, _)| i)
                .ok_or_else(|| CoreError::invalid("client", "the client has no secret"))?;
            let keep = secrets.swap_remove(newest);
            secrets.clear();
            secrets.push(SecretRecord {
                expires_at: None,
                ..keep
            });
            Ok(())
        })
        .await
    }

    /// Read, change, compare-and-set; retried a few times when another writer
    /// changed the secrets in between.
    pub(crate) async fn update_secrets(
        &self,
        env: &str,
        client_id: &str,
        change: impl Fn(&mut Vec<SecretRecord>) -> Result<(), CoreError>,
    ) -> Result<Client, CoreError> {
        for _ in 0..5 {
            let mut client = self.get_client(env, client_id).await?;
            let before = client.secrets.clone();
            change(&mut client.secrets)?;
            if self
                .store
                .swap_client_secrets(env, client_id, &before, &client.secrets)
                .await?
            {
                return Ok(client);
            }
        }
        Err(CoreError::invalid(
            "client",
            "its secrets kept changing concurrently; try again",
        ))
    }
}
