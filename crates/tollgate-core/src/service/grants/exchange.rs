//! The bearer exchange: a refresh JWT for an access token.

use crate::crypto::refresh_codec::ReadError;
use crate::error::GrantError;
use crate::service::Tollgate;
use crate::service::requests::{ClaimShape, Issued};
use crate::service::state::EnvRuntime;

impl Tollgate {
    /// Exchanges a refresh JWT for an access token laid out as `shape`,
    /// living the client's lifetime, else its API's, else `default_lifetime`
    /// (the contract's setting for the environment). At most one store round trip (the refresh JWT's
    /// record, cached once seen); every refusal is [`GrantError::InvalidGrant`].
    pub async fn exchange_refresh_jwt(
        &self,
        env: &EnvRuntime,
        token: &str,
        default_lifetime: u64,
        shape: ClaimShape,
    ) -> Result<Issued, GrantError> {
        let invalid = |why: &str| GrantError::InvalidGrant(why.to_string());
        let jti = self
            .codec
            .read_refresh_jwt(&env.env.name, token)
            .map_err(|e| match e {
                ReadError::Expired => invalid("expired"),
                ReadError::Invalid => invalid("bad signature, type, issuer or audience"),
            })?;
        let rec = self
            .cached_refresh_jwt(&env.env.name, &jti)
            .await?
            .ok_or_else(|| invalid("unknown"))?;
        if rec.revoked_at.is_some() {
            return Err(invalid("revoked"));
        }
        let client = self
            .cached_client(&env.env.name, &rec.client_id)
            .await?
            .filter(|c| c.enabled)
            .ok_or_else(|| invalid("client disabled or deleted"))?;
        self.with_obligations(env, &client, &rec.audience, None, default_lifetime, shape)
            .await
            .map_err(|e| match e {
                GrantError::AudienceNotGranted(_) | GrantError::UnknownAudience(_) => {
                    invalid("the client no longer holds its API")
                }
                other => other,
            })
    }
}
