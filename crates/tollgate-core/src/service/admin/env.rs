//! Environments: isolated issuers, each with its own keys, APIs and clients.

use std::collections::BTreeSet;

use crate::crypto::keys::{self};
use crate::error::CoreError;
use crate::model::{Alg, Dialect, Environment, validate_env_name};
use crate::service::requests::EnvSettings;
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
            if !(i.starts_with("https://") || i.starts_with("http://")) {
                return Err(CoreError::invalid("issuer", "must be an http(s) URL"));
            }
        }
        let mut env = Environment {
            name: name.to_string(),
            issuer,
            alg,
            hosts: Vec::new(),
            dialect: Dialect::default(),
            contracts: BTreeSet::new(),
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

    /// Changes an environment's hosts, dialect or contracts.
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
