//! What the grants share for an incumbent's tokens: verification against
//! the environment's trusted issuers, revocation (the deny list by token id,
//! the client's cut-off), and the adoption of an incumbent's device session
//! into a tollgate family on its first refresh.

use std::sync::Arc;

use crate::crypto::random::uuid_v4;
use crate::crypto::refresh_codec::{ReadError, SessionClaims};
use crate::crypto::token;
use crate::crypto::trust::{Foreign, TrustVerifier};
use crate::error::GrantError;
use crate::incumbent::TrustPurpose;
use crate::model::RefreshFamily;
use crate::service::Tollgate;
use crate::service::cache::read_through;
use crate::service::grants::issue::held_scope;
use crate::service::grants::session::unavailable;
use crate::service::requests::SessionProfile;
use crate::service::state::EnvRuntime;
use crate::time::now;

/// The family id an incumbent's session gets when adopted: derived from the
/// token's id, so that presenting the same token twice finds the same row
/// (a retry, or reuse) instead of starting a second session.
pub(crate) fn adopted_family(token_id: &str) -> String {
    format!("inc.{token_id}")
}

impl Tollgate {
    /// Verifies `token` against the environment's issuers trusted for
    /// `purpose` (the first that accepts it). `Invalid` when none does, or
    /// none is trusted.
    pub(crate) fn read_foreign(
        env: &EnvRuntime,
        purpose: TrustPurpose,
        token: &str,
    ) -> Result<(Arc<TrustVerifier>, Foreign), ReadError> {
        let mut outcome = Err(ReadError::Invalid);
        for t in env.trusted(purpose) {
            match t.verify(token) {
                Ok(f) => return Ok((Arc::clone(t), f)),
                Err(ReadError::Expired) => outcome = Err(ReadError::Expired),
                Err(ReadError::Invalid) => {}
            }
        }
        outcome
    }

    /// Whether an incumbent's token of `client_id` is revoked: issued before
    /// the client's cut-off, or its id on the deny list (cached until the
    /// store changes; revocations change it).
    pub(crate) async fn foreign_revoked(
        &self,
        env: &EnvRuntime,
        client_id: &str,
        f: &Foreign,
    ) -> Result<bool, GrantError> {
        if env.before_cutoff(client_id, f.iat) {
            return Ok(true);
        }
        let name = &env.env.name;
        let denied = read_through(
            &self.metrics,
            &self.caches.foreign_denied,
            "foreign_denied",
            "is_token_revoked",
            (name.clone(), f.id.clone()),
            true,
            || async {
                self.store
                    .is_token_revoked(name, &f.id)
                    .await
                    .map(|revoked| revoked.then_some(()))
            },
        )
        .await?;
        Ok(denied.is_some())
    }

    /// An incumbent's device refresh token, adopted: verified, mapped to a
    /// tollgate client and user, and its family row stored (once) with the
    /// token's id as the current one, so that the caller rotates it into a
    /// tollgate token like any other. The scope is what the client holds
    /// here, not what the incumbent wrote.
    pub(crate) async fn adopt_foreign_session(
        &self,
        env: &EnvRuntime,
        token: &str,
        profile: &SessionProfile,
    ) -> Result<SessionClaims, GrantError> {
        let invalid = |why: &str| GrantError::InvalidGrant(why.to_string());
        if profile.contract != TrustPurpose::DeviceCredentials.as_str() {
            return Err(invalid("malformed or not ours"));
        }
        let (issuer, f) = Self::read_foreign(env, TrustPurpose::DeviceCredentials, token).map_err(
            |e| match e {
                ReadError::Expired => GrantError::ExpiredGrant,
                ReadError::Invalid => invalid("malformed or not ours"),
            },
        )?;
        let rec = issuer.record();
        let client_id = f
            .text(&rec.client_claim)
            .ok_or_else(|| invalid("no client claim"))?;
        let username = match &rec.user_claim {
            Some(c) => f.text(c),
            None => f.text("user_name").or_else(|| f.text("device_id")),
        }
        .ok_or_else(|| invalid("no user claim"))?;
        if self.foreign_revoked(env, &client_id, &f).await? {
            return Err(invalid("revoked"));
        }
        let user = self
            .cached_user(&env.env.name, &username)
            .await?
            .filter(|u| u.enabled && u.client_id == client_id)
            .ok_or_else(|| invalid("user disabled, deleted or not imported"))?;
        let client = self
            .cached_client(&env.env.name, &client_id)
            .await?
            .filter(|c| c.enabled)
            .ok_or_else(|| invalid("client disabled or deleted"))?;
        let audience =
            client.apis.first().map(|g| g.api.clone()).ok_or_else(|| {
                GrantError::AudienceRequired("the client is granted no API".into())
            })?;
        let (_, held) = held_scope(env, &client, &audience)?;
        let t = now();
        let family = RefreshFamily {
            env: env.env.name.clone(),
            family: adopted_family(&f.id),
            contract: profile.contract.to_string(),
            client_id,
            username: user.username.clone(),
            grant: profile.grant,
            audience,
            scope: token::scope_string(&held),
            current: f.id.clone(),
            previous: None,
            access_jti: uuid_v4().map_err(|_| GrantError::Unavailable)?,
            access_exp: t,
            issued_at: f.iat.unwrap_or(t),
            expires_at: f.exp,
            rotated_at: None,
            revoked_at: None,
            created_at: t,
        };
        // Presented again (a retry, or reuse), the row exists already and
        // the rotation's compare-and-set decides as for any token.
        self.store
            .insert_refresh_family_if_absent(&family)
            .await
            .map_err(unavailable)?;
        let scope: Vec<&str> = family.scope.split_ascii_whitespace().collect();
        Ok(SessionClaims::of(&family, &scope))
    }
}
