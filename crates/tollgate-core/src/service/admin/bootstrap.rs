//! The admin API's own API: `tollgate-admin` in the default environment,
//! whose permissions scope what an admin client may do, and the first admin
//! client (`tollgate admin bootstrap`). Admin tokens are ordinary access
//! tokens of the default environment with `aud = tollgate-admin`.

use std::collections::BTreeSet;

use secrecy::SecretString;

use crate::error::CoreError;
use crate::model::{Api, ApiGrant, Client, DEFAULT_ENV};
use crate::service::Tollgate;
use crate::service::requests::{ApiUpdate, NewClient};
use crate::time::now;

/// The audience of admin tokens.
pub const ADMIN_API: &str = "tollgate-admin";
/// Reading anything through the admin API.
pub const ADMIN_READ: &str = "admin:read";
/// Creating, changing and deleting through the admin API.
pub const ADMIN_WRITE: &str = "admin:write";
/// Anything that returns or rotates a secret (client secrets, refresh JWTs).
pub const ADMIN_SECRETS: &str = "admin:secrets";
/// Every admin permission.
pub const ADMIN_PERMISSIONS: &[&str] = &[ADMIN_READ, ADMIN_WRITE, ADMIN_SECRETS];

impl Tollgate {
    /// Makes sure the default environment has the `tollgate-admin` API with
    /// every admin permission (adding any missing), then creates an admin
    /// client holding them all, named `name`; returns it with its secret
    /// (shown once).
    pub async fn bootstrap_admin(
        &self,
        name: &str,
    ) -> Result<(Client, Option<SecretString>), CoreError> {
        let permissions: BTreeSet<String> =
            ADMIN_PERMISSIONS.iter().map(|p| p.to_string()).collect();
        let existing = self
            .list_apis(DEFAULT_ENV)
            .await?
            .into_iter()
            .find(|a| a.identifier == ADMIN_API);
        match existing {
            None => {
                let api = Api {
                    env: DEFAULT_ENV.to_string(),
                    identifier: ADMIN_API.to_string(),
                    permissions: permissions.clone(),
                    packages: Default::default(),
                    token_lifetime: None,
                    obligation: None,
                    token_permissions: false,
                    created_at: now(),
                };
                match self.create_api(api).await {
                    // Another bootstrap raced this one: its API is the same.
                    Ok(_) | Err(CoreError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Some(api) if !permissions.is_subset(&api.permissions) => {
                let change = ApiUpdate {
                    add_permissions: permissions.clone(),
                    ..Default::default()
                };
                self.update_api(DEFAULT_ENV, ADMIN_API, change).await?;
            }
            Some(_) => {}
        }
        self.create_client(NewClient {
            env: DEFAULT_ENV.to_string(),
            name: name.to_string(),
            client_id: None,
            client_secret: None,
            apis: vec![ApiGrant {
                api: ADMIN_API.to_string(),
                grants: permissions.into_iter().collect(),
            }],
            grant_types: BTreeSet::new(),
            token_lifetime: None,
            extra_claims: Default::default(),
            capabilities: BTreeSet::new(),
            obligation: None,
            roles: BTreeSet::new(),
            public: false,
        })
        .await
    }
}
