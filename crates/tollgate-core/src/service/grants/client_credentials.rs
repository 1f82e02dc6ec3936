//! RFC 6749 §4.4 client_credentials, as every contract speaks it.

use crate::error::GrantError;
use crate::model::GrantType;
use crate::service::Tollgate;
use crate::service::requests::{ClientCredentials, Issued};
use crate::service::state::EnvRuntime;

impl Tollgate {
    /// The client_credentials grant (RFC 6749 §4.4), as every contract
    /// speaks it; counted in the client's usage (`usage.rs`).
    pub async fn client_credentials(
        &self,
        env: &EnvRuntime,
        req: &ClientCredentials<'_>,
    ) -> Result<Issued, GrantError> {
        let result = self.client_credentials_uncounted(env, req).await;
        self.tallied(env, req.client_id, result).await
    }

    async fn client_credentials_uncounted(
        &self,
        env: &EnvRuntime,
        req: &ClientCredentials<'_>,
    ) -> Result<Issued, GrantError> {
        let client = self
            .authenticate_from(env, req.client_id, req.client_secret, req.source)
            .await?;
        if !client.grant_types.contains(&GrantType::ClientCredentials) {
            return Err(GrantError::UnauthorizedClient(
                GrantType::ClientCredentials.as_str().into(),
            ));
        }
        let audience = match req.audience {
            Some(a) => a,
            None => match client.apis.as_slice() {
                [only] => only.api.as_str(),
                [] => {
                    return Err(GrantError::AudienceRequired(
                        "the client is granted no API".into(),
                    ));
                }
                _ => {
                    return Err(GrantError::AudienceRequired(
                        "the client holds several APIs: name one with 'audience' or 'resource'"
                            .into(),
                    ));
                }
            },
        };
        self.with_obligations(
            env,
            &client,
            audience,
            req.scope,
            req.default_lifetime,
            req.shape,
        )
        .await
    }
}
