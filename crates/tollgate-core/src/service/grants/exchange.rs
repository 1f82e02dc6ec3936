//! The bearer exchange: a refresh JWT for an access token.

use crate::crypto::refresh_codec::ReadError;
use crate::error::GrantError;
use crate::incumbent::TrustPurpose;
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
        let jti = match self.codec.read_refresh_jwt(&env.env.name, token) {
            Ok(jti) => jti,
            Err(ReadError::Expired) => return Err(invalid("expired")),
            // Not one of tollgate's: perhaps an incumbent's still in use.
            Err(ReadError::Invalid) => {
                return self
                    .exchange_foreign(env, token, default_lifetime, shape)
                    .await;
            }
        };
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
        let result = self
            .with_obligations(env, &client, &rec.audience, None, default_lifetime, shape)
            .await
            .map_err(|e| match e {
                GrantError::AudienceNotGranted(_) | GrantError::UnknownAudience(_) => {
                    invalid("the client no longer holds its API")
                }
                other => other,
            });
        // Counted once the client is known (an unknown token names none).
        self.tallied(env, &client.client_id, result).await
    }

    /// The exchange of a refresh JWT signed by a trusted incumbent: the
    /// client named by the issuer's client claim, unless the token is on the
    /// deny list or older than the client's cut-off. The access token's
    /// lifetime follows the same hierarchy as for tollgate's own tokens.
    async fn exchange_foreign(
        &self,
        env: &EnvRuntime,
        token: &str,
        default_lifetime: u64,
        shape: ClaimShape,
    ) -> Result<Issued, GrantError> {
        let invalid = |why: &str| GrantError::InvalidGrant(why.to_string());
        let (issuer, f) =
            Self::read_foreign(env, TrustPurpose::BearerExchange, token).map_err(|e| match e {
                ReadError::Expired => invalid("expired"),
                ReadError::Invalid => invalid("bad signature, type, issuer or audience"),
            })?;
        let rec = issuer.record();
        let client_id = f
            .text(&rec.client_claim)
            .ok_or_else(|| invalid("no client claim"))?;
        if self.foreign_revoked(env, &client_id, &f).await? {
            return Err(invalid("revoked"));
        }
        let client = self
            .cached_client(&env.env.name, &client_id)
            .await?
            .filter(|c| c.enabled)
            .ok_or_else(|| invalid("client disabled or deleted"))?;
        let audience = match (&rec.api, client.apis.as_slice()) {
            (Some(a), _) => a.clone(),
            (None, [only]) => only.api.clone(),
            (None, _) => return Err(invalid("the client holds several APIs (or none)")),
        };
        let result = self
            .with_obligations(env, &client, &audience, None, default_lifetime, shape)
            .await
            .map_err(|e| match e {
                GrantError::AudienceNotGranted(_) | GrantError::UnknownAudience(_) => {
                    invalid("the client no longer holds its API")
                }
                other => other,
            });
        // Counted once the client is known (an unknown token names none).
        self.tallied(env, &client.client_id, result).await
    }
}
