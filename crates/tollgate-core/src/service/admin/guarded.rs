//! The admin API's conditional writes (`If-Match`): a change or a delete
//! made only if the record is still the one the caller's entity tag named,
//! settled by the store in one transaction ([`Guarded`]), so that of two
//! admins writing from the same version exactly one succeeds. `None` or
//! `false`: the record changed (or went) since it was read; nothing was
//! written.

use crate::error::CoreError;
use crate::model::{Api, Client, Environment, User};
use crate::service::Tollgate;
use crate::service::requests::{ApiUpdate, ClientUpdate, EnvSettings};
use crate::store::Guarded;
use crate::time::now;

impl Tollgate {
    /// `update_environment`, from `expected` as read.
    pub async fn update_environment_if(
        &self,
        expected: &Environment,
        settings: EnvSettings,
    ) -> Result<Option<Environment>, CoreError> {
        let mut new = expected.clone();
        settings.apply(&mut new)?;
        let w = Guarded::UpdateEnvironment {
            expected: expected.clone(),
            new: new.clone(),
        };
        Ok(self.store.write_if_unchanged(&w).await?.then_some(new))
    }

    /// `update_api`, from `expected` as read.
    pub async fn update_api_if(
        &self,
        expected: &Api,
        change: ApiUpdate,
    ) -> Result<Option<Api>, CoreError> {
        let new = Self::changed_api(expected.clone(), change)?;
        let w = Guarded::UpdateApi {
            expected: expected.clone(),
            new: new.clone(),
        };
        Ok(self.store.write_if_unchanged(&w).await?.then_some(new))
    }

    /// `delete_api` of `expected` as read.
    pub async fn delete_api_if(&self, expected: &Api) -> Result<bool, CoreError> {
        let w = Guarded::DeleteApi {
            expected: expected.clone(),
        };
        Ok(self.store.write_if_unchanged(&w).await?)
    }

    /// `update_client`, from `expected` as read.
    pub async fn update_client_if(
        &self,
        expected: &Client,
        change: ClientUpdate,
    ) -> Result<Option<Client>, CoreError> {
        let new = self.changed_client(expected.clone(), change).await?;
        let w = Guarded::UpdateClient {
            expected: expected.clone(),
            new: new.clone(),
        };
        Ok(self.store.write_if_unchanged(&w).await?.then_some(new))
    }

    /// `delete_client` of `expected` as read.
    pub async fn delete_client_if(&self, expected: &Client) -> Result<bool, CoreError> {
        let w = Guarded::DeleteClient {
            expected: expected.clone(),
            now: now(),
        };
        Ok(self.store.write_if_unchanged(&w).await?)
    }

    /// `delete_user` of `expected` as read.
    pub async fn delete_user_if(&self, expected: &User) -> Result<bool, CoreError> {
        let w = Guarded::DeleteUser {
            expected: expected.clone(),
            now: now(),
        };
        Ok(self.store.write_if_unchanged(&w).await?)
    }
}
