//! [`Tollgate`]: the core service every contract and the CLI talk to.
//!
//! It keeps an in-memory snapshot of what the hot path reads (`state.rs`)
//! and read-through caches of clients, users and refresh records
//! (`cache.rs`); both are dropped when the store's revision moves
//! ([`Tollgate::sync`]), so a change made by the CLI or another instance
//! takes effect without a restart. Issuing a client_credentials token for a
//! cached client touches no store.
//!
//! This file is the only one that names the service's fields. What it does
//! lives beside it: provisioning in `admin/` (one file per noun), grants in
//! `grants/` (one file per grant over shared helpers), the argon2id bound in
//! `verifier.rs`. Callers' request and outcome types are in `requests.rs`.

pub mod admin;
pub(crate) mod cache;
pub mod grants;
mod lookup;
pub mod portal;
pub mod portal_credentials;
pub mod portal_handover;
pub mod portal_totp;
pub mod provider;
pub mod requests;
pub mod state;
pub mod throttle;
pub mod usage;
pub mod verifier;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

pub use self::requests::{
    AccessShape, ApiUpdate, AuditEvent, Authorities, ClaimShape, ClientAuth, ClientCredentials,
    ClientUpdate, EnvSettings, Issued, LateReuse, NewClient, RefreshPolicy, Session,
    SessionProfile, SpringAud, SpringOptions, UserPassword,
};
pub use self::state::{EnvExtension, EnvRuntime};
pub use self::throttle::ThrottlePolicy;
pub use self::verifier::Argon2Bound;
pub use crate::model::ObligationTarget;

use self::cache::Caches;
use self::state::Snapshot;
use self::throttle::Throttle;
use self::verifier::Verifier;
use crate::crypto::keyring;
use crate::crypto::keys::SigningKey;
use crate::crypto::master::{DerivedKeys, MasterKey};
use crate::crypto::refresh_codec::RefreshCodec;
use crate::crypto::token::{self, VerifiedClaims, VerifyError};
use crate::error::{CoreError, StoreError};
use crate::feed::ChangeFeed;
use crate::metrics::Metrics;
use crate::model::{Alg, DEFAULT_ENV, Dialect, Environment, KeyState, SigningKeyRecord};
use crate::store::Store;
use crate::sync::{read, write};
use crate::time::now;

/// The core service.
pub struct Tollgate {
    /// Operational metrics (rendered by the HTTP layer at `/metrics`).
    pub metrics: Metrics,
    store: Arc<dyn Store>,
    keys: DerivedKeys,
    /// Both kinds of tollgate's own refresh tokens.
    codec: RefreshCodec,
    public_url: String,
    revision: AtomicI64,
    snapshot: RwLock<Arc<Snapshot>>,
    caches: Caches,
    /// argon2id checks: bounded, single flight, successes remembered.
    verifier: Verifier,
    /// Failed authentications and the locks they earned.
    throttle: Throttle,
    /// Usage per client and day not yet flushed to the store (`usage.rs`).
    usage: crate::usage::Counters,
    /// When the service was last seen alive before this process started,
    /// and when it started: the outage a crash left (see `grants/refresh.rs`).
    outage: Option<Outage>,
    /// When this process last marked the service alive in the store.
    marked_alive: AtomicI64,
    /// Held by a sync while it reloads (see [`Tollgate::sync`]).
    reloading: tokio::sync::Mutex<()>,
    /// Derives what callers keep per environment and snapshot.
    extension: Option<Arc<dyn EnvExtension>>,
    /// Whether each reload also reads the deny list into the snapshot (a
    /// gate in this process decides from memory; see [`Tollgate::keep_deny_list`]).
    keep_deny_list: bool,
}

/// A period during which no instance served (a crash, a slow restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outage {
    /// The last second the service was known alive.
    pub(crate) from: i64,
    /// The second this process started serving again.
    pub(crate) until: i64,
}

/// How often an instance records that it is alive (seconds).
const ALIVE_EVERY: i64 = 1;

impl std::fmt::Debug for Tollgate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tollgate")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl Tollgate {
    /// Opens the service over `store`: creates the default environment and any
    /// missing signing key, then loads the snapshot.
    pub async fn open(
        store: Arc<dyn Store>,
        master: &MasterKey,
        public_url: &str,
    ) -> Result<Self, CoreError> {
        let keys = master.derive()?;
        let codec = RefreshCodec::new(&keys);
        let tg = Self {
            metrics: Metrics::default(),
            store,
            keys,
            codec,
            public_url: public_url.trim_end_matches('/').to_string(),
            revision: AtomicI64::new(i64::MIN),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            caches: Caches::default(),
            verifier: Verifier::new(Argon2Bound::default()),
            throttle: Throttle::new(ThrottlePolicy::default()),
            usage: crate::usage::Counters::default(),
            outage: None,
            marked_alive: AtomicI64::new(i64::MIN),
            reloading: tokio::sync::Mutex::new(()),
            extension: None,
            keep_deny_list: false,
        };
        let envs = tg.store.list_environments().await?;
        if !envs.iter().any(|e| e.name == DEFAULT_ENV) {
            match tg
                .create_environment(DEFAULT_ENV, None, Alg::default(), EnvSettings::default())
                .await
            {
                Ok(_) | Err(CoreError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        tg.reload().await?;
        let started = now();
        let outage = tg
            .store
            .last_alive()
            .await?
            .filter(|last| *last < started)
            .map(|from| Outage {
                from,
                until: started,
            });
        // Only a serving process marks the service alive (in `sync`): a CLI
        // command run during an outage must not shorten it.
        Ok(Self { outage, ..tg })
    }
    /// Replaces the throttling policy (default [`ThrottlePolicy::default`]).
    pub fn with_throttle(mut self, policy: ThrottlePolicy) -> Self {
        self.throttle = Throttle::new(policy);
        self
    }

    /// Installs `ext`, which derives what callers keep per environment at
    /// every snapshot (the HTTP layer's per-environment settings), and
    /// rebuilds the snapshot with it.
    pub async fn with_env_extension(
        mut self,
        ext: Arc<dyn EnvExtension>,
    ) -> Result<Self, CoreError> {
        self.extension = Some(ext);
        self.reload().await?;
        Ok(self)
    }

    /// Keeps the deny list in memory from now on, read again at every
    /// reload (each revocation bumps the revision), so that a gate in this
    /// process decides without a store round trip ([`EnvRuntime::is_denied`]).
    /// Costs one read of the live deny list per reload, so servers without a
    /// gate do not pay it.
    pub async fn keep_deny_list(mut self) -> Result<Self, CoreError> {
        self.keep_deny_list = true;
        self.reload().await?;
        Ok(self)
    }

    /// The store revision of the snapshot in use: it moves with every change
    /// (revocations and key rotations included) once [`Tollgate::sync`]
    /// has reloaded, so what was decided under another revision is stale.
    pub fn revision(&self) -> i64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Replaces the bound on argon2id work (default [`Argon2Bound::default`]).
    pub fn with_argon2_bound(mut self, bound: Argon2Bound) -> Self {
        self.verifier = Verifier::new(bound);
        self
    }
    /// The issuer URL of `env`: its explicit issuer; else, for an
    /// environment selected by host name, `https://HOST` of its first host,
    /// ending in `/` in the Auth0 dialect as Auth0's issuers do; else the
    /// public URL, with `/e/NAME` for any but the default environment.
    ///
    /// A host-derived issuer takes nothing from the public URL (a name
    /// partners reach is served over TLS on the standard port, whatever
    /// terminates it), so the CLI prints exactly the issuer the server
    /// signs with, even where the two were configured differently.
    pub fn issuer_for(&self, env: &Environment) -> String {
        if let Some(i) = &env.issuer {
            return i.clone();
        }
        if let Some(host) = env.hosts.first() {
            let slash = if env.dialect == Dialect::Auth0 {
                "/"
            } else {
                ""
            };
            return format!("https://{host}{slash}");
        }
        if env.name == DEFAULT_ENV {
            self.public_url.clone()
        } else {
            format!("{}/e/{}", self.public_url, env.name)
        }
    }
    /// Checks the store's revision and reloads when it moved, and records
    /// (at most once a second) that the service is alive. Returns whether
    /// it reloaded. Servers call this on a short interval.
    pub async fn sync(&self) -> Result<bool, CoreError> {
        let started = std::time::Instant::now();
        let rev = self.store.revision().await;
        self.metrics.store_timing("revision", started);
        let rev = rev?;
        let t = now();
        if t.saturating_sub(self.marked_alive.load(Ordering::Acquire)) >= ALIVE_EVERY {
            self.store.mark_alive(t).await?;
            self.marked_alive.store(t, Ordering::Release);
        }
        let expired = self.snap().valid_until.is_some_and(|u| now() >= u);
        if rev == self.revision.load(Ordering::Acquire) && !expired {
            return Ok(false);
        }
        // One reload at a time, and none for what another has just loaded:
        // two syncs racing (the change feed's and `/readyz`'s) both saw the
        // change, and the second reload would empty the caches filled since
        // the first, so a `reuse:` client got a new token where the
        // obligation promised the same one.
        let _one = self.reloading.lock().await;
        let rev = self.store.revision().await?;
        let expired = self.snap().valid_until.is_some_and(|u| now() >= u);
        if rev == self.revision.load(Ordering::Acquire) && !expired {
            return Ok(false);
        }
        self.reload().await?;
        Ok(true)
    }
    /// The store's change feed, if it can push (see [`Store::change_feed`]):
    /// a server awaits it beside its poll and calls [`Tollgate::sync`] when
    /// it fires.
    pub async fn change_feed(&self) -> Option<ChangeFeed> {
        self.store.change_feed().await
    }
    async fn reload(&self) -> Result<(), CoreError> {
        // Read the revision first: a change racing with the load bumps it
        // again, and the next sync reloads once more.
        let rev = self.store.revision().await?;
        let envs = self.store.list_environments().await?;
        let key_recs = self.store.list_signing_keys().await?;
        let apis = self.store.list_apis().await?;
        let trusted = self.store.list_trusted_issuers().await?;
        let cutoffs = self.store.list_refresh_cutoffs().await?;
        let mut snap = Snapshot::default();
        let t = now();
        let mut denied: HashMap<String, HashSet<String>> = HashMap::new();
        if self.keep_deny_list {
            for (env, jti) in self.store.list_revoked_tokens(t).await? {
                denied.entry(env).or_default().insert(jti);
            }
        }
        for env in envs {
            let max_lifetime = self.max_lifetime(&env, &apis).await?;
            let recs: Vec<&SigningKeyRecord> =
                key_recs.iter().filter(|k| k.env == env.name).collect();
            let mut keys = Vec::new();
            for sched in keyring::schedule(&recs, max_lifetime) {
                if !sched.published(t) {
                    continue;
                }
                if let Some(until) = sched.publish_until {
                    snap.valid_until = Some(snap.valid_until.map_or(until, |v| v.min(until)));
                }
                if let Some(rec) = recs.iter().find(|r| r.kid == sched.kid) {
                    let key = Arc::new(SigningKey::load(&self.keys, rec)?);
                    keys.push((sched, key));
                }
            }
            // An HS256 key is a shared secret: never published.
            let mut published: Vec<serde_json::Value> = keys
                .iter()
                .filter(|(_, k)| k.published())
                .map(|(_, k)| k.jwk().clone())
                .collect();
            published.extend(self.incumbent_jwks(&env.name, &trusted));
            let jwks = serde_json::json!({ "keys": published }).to_string();
            let env_apis = apis
                .iter()
                .filter(|a| a.env == env.name)
                .map(|a| (a.identifier.clone(), Arc::new(a.clone())))
                .collect();
            for h in &env.hosts {
                snap.hosts.insert(h.to_ascii_lowercase(), env.name.clone());
            }
            let ext = self.extension.as_ref().map(|x| x.derive(&env));
            let env_denied = denied.remove(&env.name).unwrap_or_default();
            let rt = EnvRuntime {
                ext,
                denied: env_denied,
                issuer: self.issuer_for(&env),
                path_prefix: if env.name == DEFAULT_ENV {
                    String::new()
                } else {
                    format!("/e/{}", env.name)
                },
                trusted: self.trusted_of(&env.name, &trusted),
                cutoffs: cutoffs
                    .iter()
                    .filter(|c| c.env == env.name)
                    .map(|c| (c.client_id.clone(), c.not_before))
                    .collect(),
                env,
                keys,
                apis: env_apis,
                jwks,
            };
            snap.envs.insert(rt.env.name.clone(), Arc::new(rt));
        }
        *write(&self.snapshot) = Arc::new(snap);
        self.caches.clear_all();
        self.verifier.clear();
        self.revision.store(rev, Ordering::Release);
        Ok(())
    }
    fn snap(&self) -> Arc<Snapshot> {
        read(&self.snapshot).clone()
    }
    /// Whether every environment has a key that signs now (readiness).
    pub fn every_env_can_sign(&self) -> bool {
        let snap = self.snap();
        !snap.envs.is_empty() && snap.envs.values().all(|e| e.signing_key().is_some())
    }

    /// The environment named `name`.
    pub fn env(&self, name: &str) -> Option<Arc<EnvRuntime>> {
        self.snap().envs.get(name).cloned()
    }
    /// The environment configured for host name `host` (port ignored).
    pub fn env_for_host(&self, host: &str) -> Option<Arc<EnvRuntime>> {
        let snap = self.snap();
        let h = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let name = snap.hosts.get(&h.to_ascii_lowercase())?;
        snap.envs.get(name).cloned()
    }
    /// Removes expired state (deny-list entries, refresh tokens and
    /// refresh-JWT records past their expiry); returns how many rows went.
    /// Servers run it periodically, so no table grows without bound.
    pub async fn purge_expired(&self) -> Result<u64, CoreError> {
        let mut total = 0;
        for (table, n) in self.store.purge_expired(now()).await? {
            self.metrics.count(
                "tollgate_purged_rows_total",
                "Expired rows removed by the purge task",
                &[("table", table)],
                n,
            );
            total += n;
        }
        Ok(total)
    }
    /// Published signing keys by environment and state, now (for gauges).
    pub fn key_states(&self) -> Vec<(String, KeyState, u64)> {
        let t = now();
        let mut out = Vec::new();
        for (name, env) in &self.snap().envs {
            let mut counts = [0u64; 3];
            for (sched, _) in &env.keys {
                counts[match sched.state(t) {
                    KeyState::Next => 0,
                    KeyState::Active => 1,
                    KeyState::Retired => 2,
                }] += 1;
            }
            for (state, n) in [KeyState::Next, KeyState::Active, KeyState::Retired]
                .into_iter()
                .zip(counts)
            {
                out.push((name.clone(), state, n));
            }
        }
        out.sort_by(|a, b| (&a.0, a.1.as_str()).cmp(&(&b.0, b.1.as_str())));
        out
    }
    /// Verifies an access token issued by `env`.
    pub fn verify(
        &self,
        env: &EnvRuntime,
        token: &str,
        audience: Option<&str>,
    ) -> Result<VerifiedClaims, VerifyError> {
        token::verify(
            token,
            &env.issuer,
            env.keys.iter().map(|(_, k)| k.as_ref()),
            audience,
        )
    }
}

impl Tollgate {
    /// Verifies access token `token` of `env`: type, key (one of the
    /// environment's published keys), signature and issuer, but neither its
    /// times nor its audience, which the caller checks with its own leeway
    /// and policy (the gate).
    pub fn verify_signature(
        &self,
        env: &EnvRuntime,
        token: &str,
    ) -> Result<VerifiedClaims, VerifyError> {
        token::verify_signature(token, &env.issuer, env.keys.iter().map(|(_, k)| k.as_ref()))
    }
}

pub(crate) fn conflict(e: StoreError, kind: &'static str, name: &str) -> CoreError {
    match e {
        StoreError::Conflict(_) => CoreError::AlreadyExists {
            kind,
            name: name.to_string(),
        },
        other => CoreError::Store(other),
    }
}
