//! What every grant shares: client authentication, the obligation in force
//! (reuse, issuance limit), and minting an access token for a client.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::random::random_b64;
use crate::crypto::secret::{self, Check};
use crate::crypto::token::{self, AccessClaims};
use crate::error::GrantError;
use crate::model::{Api, Client, Obligation, RateInfo, SecretHash};
use crate::service::requests::{ClaimShape, Issued};
use crate::service::state::EnvRuntime;
use crate::service::throttle::Kind;
use crate::service::verifier::VERIFIED_TTL;
use crate::service::{Tollgate, cache::CACHE_MAX};
use crate::sync::lock;
use crate::time::now;

/// What an authentication attempt is throttled by: the account it names
/// (when guessing it is possible) and where it comes from.
#[derive(Debug)]
pub(crate) struct Guard {
    /// `usr:ENV:NAME` or `cli:ENV:ID`.
    pub(crate) account: Option<String>,
    /// `src:ADDRESS`.
    pub(crate) source: Option<String>,
}

impl Guard {
    fn kinds(&self) -> impl Iterator<Item = (Kind, &str)> {
        self.account
            .iter()
            .map(|k| (Kind::Account, k.as_str()))
            .chain(self.source.iter().map(|k| (Kind::Source, k.as_str())))
    }

    fn keys(&self) -> impl Iterator<Item = &str> {
        self.kinds().map(|(_, k)| k)
    }
}

impl Tollgate {
    /// Authenticates a client by id and secret. Unknown client, wrong secret
    /// and disabled client all give [`GrantError::InvalidClient`], at the same cost.
    pub async fn authenticate(
        &self,
        env: &EnvRuntime,
        client_id: &str,
        presented: &SecretString,
    ) -> Result<Arc<Client>, GrantError> {
        self.authenticate_from(env, client_id, presented, None)
            .await
    }

    /// [`Self::authenticate`] of a request from `source`, throttled: a
    /// client holding an imported (guessable) secret is locked after
    /// repeated failures, and so is a source address (see `throttle.rs`).
    pub async fn authenticate_from(
        &self,
        env: &EnvRuntime,
        client_id: &str,
        presented: &SecretString,
        source: Option<IpAddr>,
    ) -> Result<Arc<Client>, GrantError> {
        let client = self.cached_client(&env.env.name, client_id).await?;
        let guessable = client.as_ref().is_some_and(|c| {
            c.secrets
                .iter()
                .any(|r| matches!(r.hash, SecretHash::Argon2 { .. }))
        });
        let guard = Guard {
            account: guessable.then(|| format!("cli:{}:{client_id}", env.env.name)),
            source: source.map(|ip| format!("src:{ip}")),
        };
        self.guard_check(&guard)?;
        let result = self.verify_client(env, client_id, presented, client).await;
        match &result {
            Ok(_) => self.guard_passed(&guard).await,
            Err(GrantError::InvalidClient) => self.guard_failed(&guard).await,
            Err(_) => {}
        }
        result
    }

    /// Refuses a request whose account or source is locked now.
    pub(crate) fn guard_check(&self, guard: &Guard) -> Result<(), GrantError> {
        let t = now();
        for key in guard.keys() {
            if let Some(retry_after) = self.throttle.locked(key, t) {
                return Err(GrantError::Throttled { retry_after });
            }
        }
        Ok(())
    }

    /// Counts a failed authentication of the guard's account and source in
    /// the store; locks what passed its threshold (logged, counted).
    pub(crate) async fn guard_failed(&self, guard: &Guard) {
        let t = now();
        let window = i64::try_from(self.throttle.policy.window).unwrap_or(i64::MAX);
        for (kind, key) in guard.kinds() {
            if self.throttle.threshold(kind) == 0 {
                continue;
            }
            self.metrics.count(
                "tollgate_auth_failures_total",
                "Failed authentications counted for throttling, by what was counted",
                &[("kind", kind.as_str())],
                1,
            );
            let failures = match self.store.count_auth_failure(key, t, window).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "could not count a failed authentication");
                    continue;
                }
            };
            if let Some(secs) = self.throttle.failed(kind, key, failures, t) {
                tracing::warn!(kind = kind.as_str(), key = %key, failures, lock_seconds = secs, "locked after repeated failures");
                self.metrics.count(
                    "tollgate_lockouts_total",
                    "Accounts and source addresses locked after repeated failures",
                    &[("kind", kind.as_str())],
                    1,
                );
            }
        }
    }

    /// A success: the account's failures are forgotten (in the store, when
    /// this instance saw any).
    pub(crate) async fn guard_passed(&self, guard: &Guard) {
        let Some(key) = &guard.account else {
            return;
        };
        if self.throttle.forget(key) {
            if let Err(e) = self.store.clear_auth_failures(key).await {
                tracing::warn!(error = %e, "could not clear failed authentications");
            }
        }
    }

    /// Checks a client's presented secret (see [`Self::authenticate`]).
    async fn verify_client(
        &self,
        env: &EnvRuntime,
        client_id: &str,
        presented: &SecretString,
        client: Option<Arc<Client>>,
    ) -> Result<Arc<Client>, GrantError> {
        let records = client.as_ref().map_or(&[][..], |c| &c.secrets[..]);
        let t = now();
        let s = presented.expose_secret();
        let ok = if secret::is_generated_format(s) {
            secret::check_generated(&self.keys, &env.env.name, client_id, s, records, t)
                != Check::NoMatch
        } else {
            let cache_key = self.keys.cache_digest(&[
                env.env.name.as_bytes(),
                client_id.as_bytes(),
                s.as_bytes(),
            ]);
            let phcs = secret::argon2_records(records, t);
            let expiry = phcs
                .iter()
                .filter_map(|(i, _)| records.get(*i).and_then(|r| r.expires_at))
                .min()
                .map_or(t + VERIFIED_TTL, |e| e.min(t + VERIFIED_TTL));
            self.check_argon2_cached("secret_verification", cache_key, presented, phcs, expiry)
                .await?
        };
        match client {
            Some(c) if ok && c.enabled => Ok(c),
            _ => Err(GrantError::InvalidClient),
        }
    }

    /// [`Verifier::check`] with this service's metrics.
    pub(crate) async fn check_argon2_cached(
        &self,
        cache: &'static str,
        cache_key: [u8; 32],
        presented: &SecretString,
        phcs: Vec<(usize, String)>,
        expiry: i64,
    ) -> Result<bool, GrantError> {
        self.verifier
            .check(&self.metrics, cache, cache_key, presented, phcs, expiry)
            .await
    }

    /// The obligation governing `client` at `audience`: its own, else the API's.
    pub(crate) fn obligation_for(env: &EnvRuntime, client: &Client, audience: &str) -> Obligation {
        client
            .obligation
            .or_else(|| env.api(audience).and_then(|a| a.obligation))
            .unwrap_or(Obligation::Off)
    }

    /// Counts an issuance against a [`Obligation::Limit`]; refuses with
    /// [`GrantError::RateLimited`] past it. One store round trip, only for
    /// limited clients.
    pub(crate) async fn check_limit(
        &self,
        env: &EnvRuntime,
        client: &Client,
        obligation: Obligation,
    ) -> Result<Option<RateInfo>, GrantError> {
        let Obligation::Limit { max, window } = obligation else {
            return Ok(None);
        };
        let window = i64::try_from(window).unwrap_or(i64::MAX);
        let t = now();
        let start = t - t.rem_euclid(window);
        let started = std::time::Instant::now();
        let count = self
            .store
            .count_issuance(&env.env.name, &client.client_id, start)
            .await;
        self.metrics.store_timing("count_issuance", started);
        let count = count.map_err(|e| {
            tracing::error!(error = %e, "store failed while counting issuances");
            GrantError::Unavailable
        })?;
        let info = RateInfo {
            limit: max,
            remaining: max.saturating_sub(count),
            reset_at: start.saturating_add(window),
        };
        if count > max {
            self.metrics.count(
                "tollgate_rate_limited_total",
                "Token requests refused by a client's issuance limit",
                &[("env", env.env.name.as_str())],
                1,
            );
            return Err(GrantError::RateLimited(info));
        }
        Ok(Some(info))
    }

    /// Takes back an issuance counted by [`Self::check_limit`] for a request
    /// that then was refused. Best effort: a failure only leaves the count
    /// one high until the window ends.
    pub(crate) async fn refund_limit(&self, env: &EnvRuntime, client: &Client, rate: &RateInfo) {
        let Some(window) = client
            .obligation
            .or_else(|| {
                client
                    .apis
                    .iter()
                    .find_map(|g| env.api(&g.api).and_then(|a| a.obligation))
            })
            .and_then(|o| match o {
                Obligation::Limit { window, .. } => i64::try_from(window).ok(),
                Obligation::Reuse { .. } | Obligation::Off => None,
            })
        else {
            return;
        };
        let start = rate.reset_at.saturating_sub(window);
        if let Err(e) = self
            .store
            .refund_issuance(&env.env.name, &client.client_id, start)
            .await
        {
            tracing::warn!(error = %e, "could not take back a refused issuance");
        }
    }

    /// [`Self::mint_access`] under the client's obligation: a reusable token
    /// is handed out again, a limit is counted.
    pub(crate) async fn with_obligations(
        &self,
        env: &EnvRuntime,
        client: &Client,
        audience: &str,
        scope: Option<&str>,
        default_lifetime: u64,
        shape: ClaimShape,
    ) -> Result<Issued, GrantError> {
        let lifetime = access_lifetime(env, client, audience, default_lifetime);
        match Self::obligation_for(env, client, audience) {
            Obligation::Reuse { min_remaining } => {
                let mut wanted: Vec<&str> = scope.unwrap_or("").split_ascii_whitespace().collect();
                wanted.sort_unstable();
                wanted.dedup();
                // Everything that shapes the token is in the key: a token
                // asked for in another claim shape is another token.
                let key = format!(
                    "{}\n{}\n{audience}\n{}\n{lifetime}\n{shape:?}",
                    env.env.name,
                    client.client_id,
                    wanted.join(" ")
                );
                let t = now();
                let min = i64::try_from(min_remaining).unwrap_or(i64::MAX);
                let hit = lock(&self.caches.reuse)
                    .get(&key)
                    .cloned()
                    .filter(|i| i.expires_at - t > min);
                if let Some(mut again) = hit {
                    self.metrics.cache_event("reuse", "hit");
                    again.expires_in = u64::try_from(again.expires_at - t).unwrap_or(0);
                    again.reused = true;
                    return Ok(again);
                }
                self.metrics.cache_event("reuse", "miss");
                let issued = self.mint_access(env, client, audience, scope, lifetime, shape)?;
                let mut r = lock(&self.caches.reuse);
                if r.len() >= CACHE_MAX {
                    r.clear();
                }
                r.insert(key, issued.clone());
                Ok(issued)
            }
            limit @ Obligation::Limit { .. } => {
                // Minted first: a request refused for its audience or scope
                // is not an issuance and must not use up the quota.
                let mut issued = self.mint_access(env, client, audience, scope, lifetime, shape)?;
                issued.rate = self.check_limit(env, client, limit).await?;
                Ok(issued)
            }
            Obligation::Off => self.mint_access(env, client, audience, scope, lifetime, shape),
        }
    }

    /// Mints an access token for `client` and `audience`, with `scope`
    /// narrowing what it holds there, living `lifetime` seconds (resolved by
    /// [`access_lifetime`]), laid out as `shape` (which the contract chose).
    /// Shared by every client grant.
    pub(crate) fn mint_access(
        &self,
        env: &EnvRuntime,
        client: &Client,
        audience: &str,
        scope: Option<&str>,
        lifetime: u64,
        shape: ClaimShape,
    ) -> Result<Issued, GrantError> {
        let (api, held) = held_scope(env, client, audience)?;
        let granted = match scope.map(str::trim).filter(|s| !s.is_empty()) {
            None => held,
            Some(s) => {
                let wanted: BTreeSet<String> =
                    s.split_ascii_whitespace().map(String::from).collect();
                let missing: Vec<&str> = wanted
                    .iter()
                    .filter(|w| !held.contains(*w))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() {
                    return Err(GrantError::InvalidScope(missing.join(" ")));
                }
                wanted
            }
        };
        let iat = now();
        let exp = iat.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX));
        let scope = token::scope_string(&granted);
        let jti = random_b64(16).map_err(|_| GrantError::Unavailable)?;
        let key = env.signing_key().ok_or(GrantError::Unavailable)?;
        let (auth0_sub, gty) = match shape {
            ClaimShape::Rfc9068 => (None, None),
            ClaimShape::Auth0 { gty } => (Some(format!("{}@clients", client.client_id)), Some(gty)),
        };
        let access_token = token::mint(
            key,
            &AccessClaims {
                iss: &env.issuer,
                sub: auth0_sub.as_deref().unwrap_or(&client.client_id),
                aud: audience,
                exp,
                iat,
                jti: &jti,
                client_id: &client.client_id,
                scope: &scope,
                azp: gty.map(|_| client.client_id.as_str()),
                gty,
                // Auth0 writes it only for APIs with RBAC's setting on.
                permissions: (gty.is_some() && api.token_permissions)
                    .then(|| granted.iter().map(String::as_str).collect()),
                extra: &client.extra_claims,
            },
        )
        .map_err(|e| {
            tracing::error!(error = %e, "signing failed");
            GrantError::Unavailable
        })?;
        Ok(Issued {
            rate: None,
            reused: false,
            access_token,
            expires_in: lifetime,
            expires_at: exp,
            scope,
            audience: audience.to_string(),
            client_id: client.client_id.clone(),
        })
    }
}

/// The lifetime of an access token for `client` at `audience`: the most
/// specific setting wins — the client's, then the API's, then
/// `contract_default`, which the contract resolved from the environment's
/// setting, else the server's. Every contract's tokens follow this one rule.
pub(crate) fn access_lifetime(
    env: &EnvRuntime,
    client: &Client,
    audience: &str,
    contract_default: u64,
) -> u64 {
    client
        .token_lifetime
        .or_else(|| env.api(audience).and_then(|a| a.token_lifetime))
        .unwrap_or(contract_default)
}

/// The API `audience` and the permissions `client` holds there.
pub(crate) fn held_scope(
    env: &EnvRuntime,
    client: &Client,
    audience: &str,
) -> Result<(Arc<Api>, BTreeSet<String>), GrantError> {
    let api = env
        .api(audience)
        .ok_or_else(|| GrantError::UnknownAudience(audience.to_string()))?;
    let grant = client
        .grant_for(audience)
        .ok_or_else(|| GrantError::AudienceNotGranted(audience.to_string()))?;
    // Names that no longer exist in the API grant nothing.
    let held: BTreeSet<String> = grant
        .grants
        .iter()
        .flat_map(|n| api.expand(std::slice::from_ref(n)).unwrap_or_default())
        .collect();
    Ok((api.clone(), held))
}
