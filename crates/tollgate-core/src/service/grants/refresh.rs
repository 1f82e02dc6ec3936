//! A session refresh token for a new access token (reuse or rotation).

use crate::crypto::random::uuid_v4;
use crate::error::GrantError;
use crate::model::RefreshFamily;
use crate::service::Tollgate;
use crate::service::cache::read_through;
use crate::service::grants::session::{add, unavailable};
use crate::service::requests::{ClientAuth, RefreshPolicy, Session, SessionProfile};
use crate::service::state::EnvRuntime;
use crate::store::Rotation;
use crate::time::now;

impl Tollgate {
    /// Exchanges a refresh token. With [`RefreshPolicy::Rotate`] the store
    /// decides atomically: the first request rotates; a retry within the
    /// leeway gets the same successor; a later reuse revokes the family.
    /// With [`RefreshPolicy::Reuse`] the same refresh token comes back with
    /// a new access token. A client, when presented, must be the token's.
    pub async fn refresh(
        &self,
        env: &EnvRuntime,
        auth: ClientAuth<'_>,
        refresh_token: &str,
        profile: &SessionProfile,
    ) -> Result<Session, GrantError> {
        let caller = self.calling_client(env, auth).await?;
        let claims = self.read_refresh_token(refresh_token)?;
        let invalid = |why: &str| GrantError::InvalidGrant(why.to_string());
        // A session is usable only where it was born: its contract, its
        // environment and its client. The claims say so for tokens that
        // carry them; the family's row is checked below in every case.
        if !claims.born_in(&env.env.name, profile.contract) {
            return Err(invalid("born in another contract or environment"));
        }
        if caller
            .as_ref()
            .is_some_and(|c| c.client_id != claims.client_id)
        {
            return Err(invalid("issued to another client"));
        }
        let user = self
            .cached_user(&env.env.name, &claims.user_name)
            .await?
            .filter(|u| u.enabled && u.client_id == claims.client_id)
            .ok_or_else(|| invalid("user disabled or deleted"))?;
        let client = self
            .cached_client(&env.env.name, &user.client_id)
            .await?
            .filter(|c| c.enabled)
            .ok_or_else(|| invalid("client disabled or deleted"))?;
        // The client must still hold the grant the session was started with.
        if !client.grant_types.contains(&profile.grant) {
            return Err(GrantError::UnauthorizedClient(
                profile.grant.as_str().into(),
            ));
        }
        let audience = claims.aud.first().map_or("", String::as_str);
        self.check_limit(env, &client, Self::obligation_for(env, &client, audience))
            .await?;
        let t = now();
        let started = std::time::Instant::now();
        let outcome = match profile.policy {
            RefreshPolicy::Reuse => {
                // From memory when seen before: under this policy a family
                // changes only by revocation, which bumps the store revision
                // and empties the cache on every instance within a sync.
                let key = (env.env.name.clone(), claims.fam.clone());
                let f = read_through(
                    &self.metrics,
                    &self.caches.families,
                    "refresh_family",
                    "get_refresh_family",
                    key,
                    false,
                    || self.store.get_refresh_family(&env.env.name, &claims.fam),
                )
                .await?
                .ok_or_else(|| invalid("unknown"))?;
                if f.contract != profile.contract || f.client_id != claims.client_id {
                    return Err(invalid("born in another contract"));
                }
                if f.revoked_at.is_some() {
                    return Err(invalid("revoked"));
                }
                if f.current != claims.jti {
                    return Err(invalid("not the family's current token"));
                }
                if f.expires_at <= t {
                    return Err(GrantError::ExpiredGrant);
                }
                // A new access token; the refresh token stays as it is.
                let fresh = RefreshFamily {
                    access_jti: uuid_v4().map_err(|_| GrantError::Unavailable)?,
                    access_exp: add(t, profile.access_lifetime),
                    issued_at: t,
                    ..(*f).clone()
                };
                return self.session_from(env, &client, &fresh, profile, Some(refresh_token));
            }
            RefreshPolicy::Rotate => {
                let next = RefreshFamily {
                    env: env.env.name.clone(),
                    family: claims.fam.clone(),
                    contract: profile.contract.to_string(),
                    client_id: claims.client_id.clone(),
                    username: claims.user_name.clone(),
                    grant: claims
                        .grant_type
                        .parse()
                        .map_err(|_| invalid("bad grant"))?,
                    audience: claims.aud.first().cloned().unwrap_or_default(),
                    scope: claims.scope.join(" "),
                    current: uuid_v4().map_err(|_| GrantError::Unavailable)?,
                    previous: Some(claims.jti.clone()),
                    access_jti: uuid_v4().map_err(|_| GrantError::Unavailable)?,
                    access_exp: add(t, profile.access_lifetime),
                    issued_at: t,
                    expires_at: add(t, profile.refresh_lifetime),
                    rotated_at: Some(t),
                    revoked_at: None,
                    created_at: t,
                };
                let leeway = i64::try_from(profile.retry_leeway).unwrap_or(i64::MAX);
                let r = self
                    .store
                    .rotate_refresh_family(&claims.jti, &next, t, leeway)
                    .await;
                self.metrics.store_timing("rotate_refresh_family", started);
                (r.map_err(unavailable)?, next)
            }
        };
        // Whatever the store decided, a copy of this family cached under the
        // reuse policy (another contract's settings, an older process state)
        // is stale now.
        self.forget_family(&env.env.name, &claims.fam);
        match outcome {
            (Rotation::Rotated, next) => self.session_from(env, &client, &next, profile, None),
            (Rotation::Retry(existing), _) => {
                self.session_from(env, &client, &existing, profile, None)
            }
            (Rotation::Reused, _) => {
                tracing::warn!(
                    env = %env.env.name,
                    client_id = %claims.client_id,
                    family = %claims.fam,
                    "refresh token reused after rotation: family revoked"
                );
                self.metrics.count(
                    "tollgate_refresh_reuse_total",
                    "Rotated refresh tokens presented again (families revoked)",
                    &[("contract", profile.contract)],
                    1,
                );
                Err(invalid("reused: family revoked"))
            }
            (Rotation::Unknown, _) => Err(invalid("unknown")),
            (Rotation::Revoked, _) => Err(invalid("revoked")),
            (Rotation::Expired, _) => Err(GrantError::ExpiredGrant),
        }
    }
}
