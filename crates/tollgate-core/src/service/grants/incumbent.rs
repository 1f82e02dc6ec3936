//! What the grants share for an incumbent's tokens: verification against
//! the environment's trusted issuers, revocation (the deny list by token id,
//! the client's cut-off), and the adoption of an incumbent's session (device
//! credentials, header login) into a tollgate family on its first refresh.

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

/// What an incumbent's access token is, where a contract looks at one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignAccess {
    /// Signed by a trusted issuer, unexpired, not revoked.
    Valid,
    /// Genuine, but expired.
    Expired,
    /// Genuine, but its id is on the deny list or before its client's
    /// cut-off.
    Revoked,
    /// No trusted issuer of the contract signed it.
    Invalid,
}

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

    /// An incumbent's session refresh token (device credentials, header
    /// login), adopted: verified, mapped to a tollgate client and user, and
    /// its family row stored (once) with the token's id as the current one,
    /// so that the caller rotates it into a tollgate token like any other.
    /// The scope is what the client holds here, not what the incumbent
    /// wrote.
    pub(crate) async fn adopt_foreign_session(
        &self,
        env: &EnvRuntime,
        token: &str,
        profile: &SessionProfile,
    ) -> Result<SessionClaims, GrantError> {
        let invalid = |why: &str| GrantError::InvalidGrant(why.to_string());
        let purpose = match TrustPurpose::for_contract(profile.contract) {
            Some(p @ (TrustPurpose::DeviceCredentials | TrustPurpose::HeaderLogin)) => p,
            _ => return Err(invalid("malformed or not ours")),
        };
        let (issuer, f) = Self::read_foreign(env, purpose, token).map_err(|e| match e {
            ReadError::Expired => GrantError::ExpiredGrant,
            ReadError::Invalid => invalid("malformed or not ours"),
        })?;
        let rec = issuer.record();
        // The claims that name the user, in the order tried: the operator's
        // choice, else what the incumbent's kind of service writes.
        let user_claims: &[&str] = match (&rec.user_claim, purpose) {
            (Some(c), _) => &[c.as_str()],
            (None, TrustPurpose::HeaderLogin) => &["email", "user_name", "sub"],
            (None, _) => &["user_name", "device_id"],
        };
        let username = user_claims
            .iter()
            .find_map(|c| f.text(c))
            .ok_or_else(|| invalid("no user claim"))?;
        let user = self
            .user_for_login(&env.env.name, &username, profile.fold_email_case)
            .await?
            .filter(|u| u.enabled)
            .ok_or_else(|| invalid("user disabled, deleted or not imported"))?;
        // A header login's token may name no client: its user's then (a
        // user belongs to one client).
        let client_id = match f.text(&rec.client_claim) {
            Some(c) => c,
            None if purpose == TrustPurpose::HeaderLogin => user.client_id.clone(),
            None => return Err(invalid("no client claim")),
        };
        if user.client_id != client_id {
            return Err(invalid("user disabled, deleted or not imported"));
        }
        if self.foreign_revoked(env, &client_id, &f).await? {
            return Err(invalid("revoked"));
        }
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

    /// An access token that is not tollgate's, checked against the issuers
    /// trusted for `contract`'s refresh tokens (an incumbent signs both
    /// with one key): the header login's `/refresh` answers a still-valid
    /// one without a new pair, as the incumbent did, and goes on to the
    /// refresh for an expired one, so a partner's client that sends the
    /// incumbent's access token beside its refresh token is not told the
    /// token is corrupted after the switch.
    pub async fn foreign_access(
        &self,
        env: &EnvRuntime,
        contract: &str,
        token: &str,
    ) -> Result<ForeignAccess, GrantError> {
        let Some(purpose) = TrustPurpose::for_contract(contract) else {
            return Ok(ForeignAccess::Invalid);
        };
        let (issuer, f) = match Self::read_foreign(env, purpose, token) {
            Ok(v) => v,
            Err(ReadError::Expired) => return Ok(ForeignAccess::Expired),
            Err(ReadError::Invalid) => return Ok(ForeignAccess::Invalid),
        };
        let client = f.text(&issuer.record().client_claim).unwrap_or_default();
        Ok(if self.foreign_revoked(env, &client, &f).await? {
            ForeignAccess::Revoked
        } else {
            ForeignAccess::Valid
        })
    }
}
