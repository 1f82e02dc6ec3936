//! Signing keys: the rotation schedule (published before use, retired keys
//! kept until their tokens expire).

use crate::crypto::keyring;
use crate::crypto::keys::{self};
use crate::error::CoreError;
use crate::model::{Alg, Api, Environment, SigningKeyRecord};
use crate::service::Tollgate;
use crate::time::now;

impl Tollgate {
    /// The longest access-token lifetime `env` can issue (APIs, client
    /// overrides, and its contracts' settings when an extension knows them).
    pub(crate) async fn max_lifetime(
        &self,
        env: &Environment,
        apis: &[Api],
    ) -> Result<i64, CoreError> {
        let clients = self.store.list_clients(&env.name).await?;
        Ok(keyring::max_token_lifetime(
            apis.iter()
                .filter(|a| a.env == env.name)
                .filter_map(|a| a.token_lifetime),
            clients.iter().filter_map(|c| c.token_lifetime),
            self.extension
                .as_ref()
                .map(|x| x.longest_access_lifetime(env)),
        ))
    }

    /// Signing keys with their schedule (metadata only), per environment.
    pub async fn list_keys(
        &self,
    ) -> Result<Vec<(SigningKeyRecord, keyring::Scheduled)>, CoreError> {
        let recs = self.store.list_signing_keys().await?;
        let apis = self.store.list_apis().await?;
        let mut out = Vec::new();
        for env in self.store.list_environments().await? {
            let mine: Vec<&SigningKeyRecord> = recs.iter().filter(|k| k.env == env.name).collect();
            let max_lifetime = self.max_lifetime(&env, &apis).await?;
            for sched in keyring::schedule(&mine, max_lifetime) {
                if let Some(rec) = mine.iter().find(|r| r.kid == sched.kid) {
                    out.push(((*rec).clone(), sched));
                }
            }
        }
        Ok(out)
    }

    /// Scheduled rotation: rotates every environment whose newest key is older
    /// than `interval` seconds (publication delay `publish_delay`). Returns
    /// the keys added. Safe to run on several instances at once.
    pub async fn rotate_due_keys(
        &self,
        interval: u64,
        publish_delay: u64,
    ) -> Result<Vec<SigningKeyRecord>, CoreError> {
        let t = now();
        let cutoff = t.saturating_sub(i64::try_from(interval).unwrap_or(i64::MAX));
        let keys = self.store.list_signing_keys().await?;
        let mut added = Vec::new();
        for env in self.store.list_environments().await? {
            let newest = keys
                .iter()
                .filter(|k| k.env == env.name)
                .map(|k| k.created_at)
                .max();
            // A shared secret is rotated by importing the next one: a
            // generated secret would be one no resource server knows.
            if newest.is_some_and(|c| c > cutoff) || env.alg == Alg::HS256 {
                continue;
            }
            let rec = self.next_key(&env.name, env.alg, publish_delay, t)?;
            if self
                .store
                .insert_signing_key_unless_newer(&rec, cutoff)
                .await?
            {
                added.push(rec);
            }
        }
        Ok(added)
    }

    /// A new key for `env`, created at `t` and signing from `t + publish_delay`.
    pub(crate) fn next_key(
        &self,
        env: &str,
        alg: Alg,
        publish_delay: u64,
        t: i64,
    ) -> Result<SigningKeyRecord, CoreError> {
        let mut rec = keys::generate(&self.keys, env, alg, t)?;
        rec.activates_at = t.saturating_add(i64::try_from(publish_delay).unwrap_or(i64::MAX));
        Ok(rec)
    }

    /// Rotates `env`'s signing key: the new key is published at once and
    /// signs from `publish_delay` seconds on; the current key then retires.
    pub async fn rotate_key(
        &self,
        env: &str,
        publish_delay: u64,
    ) -> Result<SigningKeyRecord, CoreError> {
        let e = self.require_env(env).await?;
        if e.alg == Alg::HS256 {
            return Err(CoreError::invalid(
                "algorithm",
                "an HS256 key is a secret shared with the resource servers: import the next \
                 one with `key import --hs256-secret-file` instead",
            ));
        }
        let t = now();
        let mut rec = self.next_key(env, e.alg, publish_delay, t)?;
        rec.activates_at = self.after_the_newest(env, rec.activates_at).await?;
        self.store.insert_signing_key(&rec).await?;
        Ok(rec)
    }

    /// `wanted`, or the second after `env`'s newest key activates if that
    /// is later: a key added by hand must be the newest in the schedule,
    /// not tie with a key that activates in the same second (ties go by
    /// kid, at random, so a rotation within the second the current key
    /// was made could leave the old key signing).
    async fn after_the_newest(&self, env: &str, wanted: i64) -> Result<i64, CoreError> {
        let latest = self
            .store
            .list_signing_keys()
            .await?
            .iter()
            .filter(|k| k.env == env)
            .map(|k| k.activates_at)
            .max();
        Ok(latest.map_or(wanted, |l| wanted.max(l.saturating_add(1))))
    }

    /// Imports an incumbent's signing key (PEM) or HS256 secret into `env`,
    /// as `kid` (default: a random one), signing from `publish_delay`
    /// seconds on. The key must be of the environment's algorithm. Its
    /// public half is published at once (not an HS256 secret, ever).
    pub async fn import_key(
        &self,
        env: &str,
        material: keys::Imported<'_>,
        kid: Option<&str>,
        publish_delay: u64,
    ) -> Result<SigningKeyRecord, CoreError> {
        let e = self.require_env(env).await?;
        let kid = match kid {
            Some(k) => k.to_string(),
            None => crate::crypto::random::random_b64(12)?,
        };
        crate::model::validate_token("kid", &kid)?;
        let t = now();
        let mut rec = keys::import(&self.keys, env, e.alg, material, &kid, t)?;
        let wanted = t.saturating_add(i64::try_from(publish_delay).unwrap_or(i64::MAX));
        rec.activates_at = self.after_the_newest(env, wanted).await?;
        self.store
            .insert_signing_key(&rec)
            .await
            .map_err(|e| crate::service::conflict(e, "signing key", &kid))?;
        Ok(rec)
    }
}
