//! A user logs in: device credentials (Dive) and header login (Tradecloud).

use std::net::IpAddr;

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::random::uuid_v4;
use crate::crypto::token::{self};
use crate::error::GrantError;
use crate::model::RefreshFamily;
use crate::service::Tollgate;
use crate::service::grants::issue::{Guard, access_lifetime, held_scope};
use crate::service::grants::session::add;
use crate::service::requests::{ClientAuth, Session, SessionProfile};
use crate::service::state::EnvRuntime;
use crate::time::now;

impl Tollgate {
    /// A user logs in with `password_md5` (= `md5_hex(password)`; the
    /// header login applies [`md5_hex`] first). Unknown user, wrong password,
    /// disabled user and a user of another client all give the same
    /// [`GrantError::InvalidGrant`], at the same cost (one argon2id, cached
    /// for a minute after a success). Repeated failures lock the user and
    /// the `source` address for a while (`throttle.rs`).
    pub async fn login(
        &self,
        env: &EnvRuntime,
        auth: ClientAuth<'_>,
        username: &str,
        password_md5: &SecretString,
        profile: &SessionProfile,
        source: Option<IpAddr>,
    ) -> Result<Session, GrantError> {
        // Names that designate one user count against one lock, whatever
        // their case, when they fold.
        let folds = profile.fold_email_case && username.contains('@');
        let account = if folds {
            username.to_ascii_lowercase()
        } else {
            username.to_string()
        };
        let guard = Guard {
            account: Some(format!("usr:{}:{account}", env.env.name)),
            source: source.map(|ip| format!("src:{ip}")),
        };
        self.guard_check(&guard)?;
        let caller = self.calling_client(env, auth, source).await?;
        let user = self
            .user_for_login(&env.env.name, username, profile.fold_email_case)
            .await?;
        let presented = SecretString::from(password_md5.expose_secret().to_ascii_lowercase());
        let cache_key = self.keys.cache_digest(&[
            env.env.name.as_bytes(),
            b"user",
            username.as_bytes(),
            presented.expose_secret().as_bytes(),
        ]);
        let phcs = user
            .as_ref()
            .map(|u| vec![(0, u.password.clone())])
            .unwrap_or_default();
        let t = now();
        let ok = self
            .check_argon2_cached("password_verification", cache_key, &presented, phcs, t + 60)
            .await?;
        let bad = || GrantError::InvalidGrant("bad credentials".into());
        let user = match user {
            Some(u) if ok && u.enabled => u,
            _ => {
                // A wrong password or an unknown user: a guess. (A disabled
                // user with the right password is not.)
                if !ok {
                    self.guard_failed(&guard).await;
                }
                return Err(bad());
            }
        };
        self.guard_passed(&guard).await;
        if caller
            .as_ref()
            .is_some_and(|c| c.client_id != user.client_id)
        {
            return Err(bad());
        }
        let client = match caller {
            Some(c) => c,
            None => self
                .cached_client(&env.env.name, &user.client_id)
                .await?
                .filter(|c| c.enabled)
                .ok_or_else(bad)?,
        };
        if !client.grant_types.contains(&profile.grant) {
            return Err(GrantError::UnauthorizedClient(
                profile.grant.as_str().into(),
            ));
        }
        let audience =
            client.apis.first().map(|g| g.api.clone()).ok_or_else(|| {
                GrantError::AudienceRequired("the client is granted no API".into())
            })?;
        let (_, held) = held_scope(env, &client, &audience)?;
        self.check_limit(env, &client, Self::obligation_for(env, &client, &audience))
            .await?;
        let lifetime = access_lifetime(env, &client, &audience, profile.access_lifetime);
        let id = uuid_v4().map_err(|_| GrantError::Unavailable)?;
        let rec = RefreshFamily {
            env: env.env.name.clone(),
            family: id.clone(),
            contract: profile.contract.to_string(),
            client_id: client.client_id.clone(),
            username: user.username.clone(),
            grant: profile.grant,
            audience,
            scope: token::scope_string(&held),
            current: id,
            previous: None,
            access_jti: uuid_v4().map_err(|_| GrantError::Unavailable)?,
            access_exp: add(t, lifetime),
            issued_at: t,
            expires_at: add(t, profile.refresh_lifetime),
            rotated_at: None,
            revoked_at: None,
            created_at: t,
        };
        let started = std::time::Instant::now();
        let stored = self.store.insert_refresh_family(&rec).await;
        self.metrics.store_timing("insert_refresh_family", started);
        stored.map_err(|e| {
            tracing::error!(error = %e, "store failed while saving a refresh token");
            GrantError::Unavailable
        })?;
        self.session_from(env, &client, &user, &rec, profile, None)
    }
}
