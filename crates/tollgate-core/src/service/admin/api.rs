//! APIs: resource servers with their permissions and packages.

use crate::error::CoreError;
use crate::model::Api;
use crate::service::requests::ApiUpdate;
use crate::service::{Tollgate, conflict};

impl Tollgate {
    /// Creates an API.
    pub async fn create_api(&self, api: Api) -> Result<Api, CoreError> {
        self.require_env(&api.env).await?;
        api.validate()?;
        self.store
            .create_api(&api)
            .await
            .map_err(|e| conflict(e, "api", &api.identifier))?;
        Ok(api)
    }

    /// Changes an API in place (its clients keep it): permissions, packages,
    /// lifetime, obligation. Takes effect in every server at its next sync.
    pub async fn update_api(
        &self,
        env: &str,
        identifier: &str,
        change: ApiUpdate,
    ) -> Result<Api, CoreError> {
        let api = self
            .list_apis(env)
            .await?
            .into_iter()
            .find(|a| a.identifier == identifier)
            .ok_or_else(|| CoreError::not_found("api", identifier))?;
        let api = Self::changed_api(api, change)?;
        let existed = self.store.update_api(&api).await?;
        CoreError::found(existed, "api", identifier)?;
        Ok(api)
    }

    /// `api` with `change` applied, checked (not written).
    pub(crate) fn changed_api(mut api: Api, change: ApiUpdate) -> Result<Api, CoreError> {
        api.permissions.extend(change.add_permissions);
        for name in &change.remove_packages {
            if api.packages.remove(name).is_none() {
                return Err(CoreError::not_found("package", name));
            }
        }
        for (name, members) in change.set_packages {
            api.permissions.extend(members.iter().cloned());
            api.packages.insert(name, members);
        }
        for p in &change.remove_permissions {
            if !api.permissions.remove(p) {
                return Err(CoreError::not_found("permission", p));
            }
        }
        if let Some(lifetime) = change.token_lifetime {
            api.token_lifetime = lifetime;
        }
        if let Some(obligation) = change.obligation {
            api.obligation = obligation;
        }
        if let Some(on) = change.token_permissions {
            api.token_permissions = on;
        }
        // Also refuses a package left naming a removed permission.
        api.validate()?;
        Ok(api)
    }

    /// APIs of `env`.
    pub async fn list_apis(&self, env: &str) -> Result<Vec<Api>, CoreError> {
        self.require_env(env).await?;
        let mut apis = self.store.list_apis().await?;
        apis.retain(|a| a.env == env);
        Ok(apis)
    }

    /// Deletes an API.
    pub async fn delete_api(&self, env: &str, identifier: &str) -> Result<(), CoreError> {
        let existed = self.store.delete_api(env, identifier).await?;
        CoreError::found(existed, "api", identifier)
    }
}
