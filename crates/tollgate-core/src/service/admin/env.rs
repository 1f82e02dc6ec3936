//! Environments: isolated issuers, each with its own keys, APIs and clients.

use std::collections::{BTreeMap, BTreeSet};

use crate::crypto::keys::{self};
use crate::error::CoreError;
use crate::model::{Alg, Dialect, Environment, SigningKeyRecord, validate_env_name};
use crate::service::requests::{EnvSettings, validate_issuer};
use crate::service::{Tollgate, conflict};
use crate::time::now;

impl Tollgate {
    /// Creates an environment and its first signing key.
    pub async fn create_environment(
        &self,
        name: &str,
        issuer: Option<String>,
        alg: Alg,
        settings: EnvSettings,
    ) -> Result<Environment, CoreError> {
        validate_env_name(name)?;
        if let Some(i) = &issuer {
            validate_issuer(i)?;
        }
        let mut env = Environment {
            name: name.to_string(),
            issuer,
            alg,
            hosts: Vec::new(),
            dialect: Dialect::default(),
            contracts: BTreeSet::new(),
            settings: BTreeMap::new(),
            created_at: now(),
        };
        settings.apply(&mut env)?;
        let key = keys::generate(&self.keys, name, alg, now())?;
        self.store
            .create_environment(&env, &key)
            .await
            .map_err(|e| conflict(e, "environment", name))?;
        Ok(env)
    }

    /// Changes an environment's hosts, dialect, contracts, issuer or
    /// setting overrides.
    pub async fn update_environment(
        &self,
        name: &str,
        settings: EnvSettings,
    ) -> Result<Environment, CoreError> {
        let mut env = self.require_env(name).await?;
        settings.apply(&mut env)?;
        let existed = self.store.update_environment(&env).await?;
        CoreError::found(existed, "environment", name)?;
        Ok(env)
    }

    /// Changes an environment's signing algorithm through the key schedule:
    /// a key of the new algorithm is published at once and signs from
    /// `publish_delay` seconds on (so verifiers caching the JWKS know it
    /// first); the current key retires then and stays published while its
    /// tokens live. Later rotations use the new algorithm. `None` when the
    /// environment already uses `alg`.
    pub async fn change_algorithm(
        &self,
        name: &str,
        alg: Alg,
        publish_delay: u64,
    ) -> Result<Option<SigningKeyRecord>, CoreError> {
        let mut env = self.require_env(name).await?;
        if env.alg == alg {
            return Ok(None);
        }
        env.alg = alg;
        // The algorithm first: should the key fail to be added, the next
        // rotation (by hand or on schedule) adds one of the new algorithm.
        let existed = self.store.update_environment(&env).await?;
        CoreError::found(existed, "environment", name)?;
        self.rotate_key(name, publish_delay).await.map(Some)
    }

    /// All environments.
    pub async fn list_environments(&self) -> Result<Vec<Environment>, CoreError> {
        Ok(self.store.list_environments().await?)
    }

    pub(crate) async fn require_env(&self, name: &str) -> Result<Environment, CoreError> {
        self.store
            .list_environments()
            .await?
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| CoreError::not_found("environment", name))
    }
}
