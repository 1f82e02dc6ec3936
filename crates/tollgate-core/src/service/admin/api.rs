//! APIs: resource servers with their permissions and packages.

use crate::error::CoreError;
use crate::model::Api;
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
