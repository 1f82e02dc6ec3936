//! A user logs in: device credentials (Dive) and header login (Tradecloud).

use std::net::IpAddr;

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::crypto::imported::{HashInput, HashKind, ImportedHash};
use crate::crypto::secret::{hash_argon2, md5_hex};

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
        let result = self
            .login_inner(env, auth, username, password_md5, None, profile, source)
            .await;
        self.tallied_session(env, auth, result).await
    }

    /// [`Self::login`] for a contract that receives the password itself
    /// (the header login): a user imported with a hash of the password (not
    /// of its MD5 form) needs it, once, until re-hashed.
    pub async fn login_with_password(
        &self,
        env: &EnvRuntime,
        auth: ClientAuth<'_>,
        username: &str,
        password: &SecretString,
        profile: &SessionProfile,
        source: Option<IpAddr>,
    ) -> Result<Session, GrantError> {
        let md5 = SecretString::from(md5_hex(password.expose_secret()));
        let result = self
            .login_inner(env, auth, username, &md5, Some(password), profile, source)
            .await;
        self.tallied_session(env, auth, result).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn login_inner(
        &self,
        env: &EnvRuntime,
        auth: ClientAuth<'_>,
        username: &str,
        password_md5: &SecretString,
        plain: Option<&SecretString>,
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
        let t = now();
        // A hash brought over from an incumbent is checked its own way,
        // and replaced by tollgate's after the first success.
        let imported = user
            .as_ref()
            .filter(|u| ImportedHash::parse(&u.password).is_some())
            .map(|u| u.password.clone());
        let ok = match &imported {
            Some(stored) => {
                self.check_imported(stored, cache_key, &presented, plain, t)
                    .await?
            }
            None => {
                let phcs = user
                    .as_ref()
                    .map(|u| vec![(0, u.password.clone())])
                    .unwrap_or_default();
                self.check_argon2_cached(
                    "password_verification",
                    cache_key,
                    &presented,
                    phcs,
                    t + 60,
                )
                .await?
            }
        };
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
        if let Some(old) = imported {
            self.upgrade_imported(&user.env, &user.username, old, &presented)
                .await;
        }
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

    /// Checks a login against an imported hash: MD5 by comparison, argon2
    /// by the verifier, bcrypt within the verifier's bound (as costly as one
    /// of tollgate's argon2id checks). A hash of the password itself needs
    /// the password (`plain`), which only the header login has.
    async fn check_imported(
        &self,
        stored: &str,
        cache_key: [u8; 32],
        presented_md5: &SecretString,
        plain: Option<&SecretString>,
        t: i64,
    ) -> Result<bool, GrantError> {
        let Some(h) = ImportedHash::parse(stored) else {
            return Ok(false);
        };
        let value = match (h.kind, h.input) {
            // MD5 of the password is what the device sends: compare.
            (HashKind::Md5, HashInput::Password) => {
                let mine = presented_md5.expose_secret().as_bytes();
                return Ok(bool::from(
                    mine.ct_eq(h.hash.to_ascii_lowercase().as_bytes()),
                ));
            }
            (_, HashInput::Md5) => presented_md5.clone(),
            (_, HashInput::Password) => match plain {
                Some(p) => p.clone(),
                None => return Ok(false),
            },
        };
        if h.kind == HashKind::Argon2 {
            let phcs = vec![(0, h.hash.to_string())];
            return self
                .check_argon2_cached("password_verification", cache_key, &value, phcs, t + 60)
                .await;
        }
        let stored = stored.to_string();
        self.verifier
            .run_bounded(
                &self.metrics,
                "password_verification",
                IMPORTED_COST_MIB,
                move || {
                    ImportedHash::parse(&stored)
                        .is_some_and(|h| h.verify_blocking(value.expose_secret().as_bytes()))
                },
            )
            .await
    }

    /// Replaces an imported hash by tollgate's own (argon2id of the MD5
    /// form) after a successful login. Best effort: a failure leaves the
    /// imported hash, which still accepts the same password.
    async fn upgrade_imported(&self, env: &str, username: &str, old: String, md5: &SecretString) {
        let md5 = md5.clone();
        let new = self
            .verifier
            .run_bounded(
                &self.metrics,
                "password_rehash",
                IMPORTED_COST_MIB,
                move || hash_argon2(md5.expose_secret().as_bytes()),
            )
            .await;
        let outcome = match new {
            Ok(Ok(new)) => self
                .store
                .upgrade_user_password(env, username, &old, &new)
                .await
                .map_err(|e| e.to_string()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(_) => {
                // Both the exact entry and the case-folded one (lookup.rs)
                // may hold the imported hash.
                let mut users = crate::sync::write(&self.caches.users);
                users.remove(&(env.to_string(), username.to_string()));
                users.remove(&(
                    env.to_string(),
                    format!("\0{}", username.to_ascii_lowercase()),
                ));
                drop(users);
                self.metrics.count(
                    "tollgate_imported_password_upgrades_total",
                    "Imported password hashes replaced by argon2id after a login",
                    &[],
                    1,
                );
            }
            Err(e) => tracing::warn!(env, error = %e, "imported hash not upgraded (kept)"),
        }
    }
}

/// MiB of the argon2id budget a bcrypt check or a re-hash takes: as much
/// as one of tollgate's own checks, so the bound counts them alike.
const IMPORTED_COST_MIB: u32 = 19;
