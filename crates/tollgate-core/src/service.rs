//! [`Tollgate`]: the core service every contract and the CLI talk to.
//!
//! It keeps an in-memory snapshot of what the hot path reads (environments,
//! their parsed signing keys and published JWKS, APIs) and a cache of clients.
//! Both are dropped when the store's revision moves ([`Tollgate::sync`]), so a
//! change made by the CLI or another instance takes effect without a restart.
//! Issuing a client_credentials token for a cached client touches no store.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::{DerivedKeys, MasterKey, random_b64};
use crate::error::{CoreError, GrantError, StoreError};
use crate::keyring;
use crate::keys::{self, SigningKey};
use crate::metrics::Metrics;
use crate::model::{
    Alg, Api, ApiGrant, Capability, Client, DEFAULT_ENV, Dialect, Environment, GrantType, KeyState,
    Obligation, RefreshJwtRecord, SecretRecord, SigningKeyRecord, validate_env_name,
};
use crate::secret::{self, Check};
use crate::store::Store;
use crate::sync::{lock, read, write};
use crate::time::now;
use crate::token::{self, AccessClaims, VerifiedClaims, VerifyError};
use crate::verifier::{Argon2Bound, VERIFIED_TTL, Verifier};

/// `typ` of the refresh JWTs of the bearer-exchange contract.
pub const REFRESH_TYP: &str = "rt+jwt";
/// `iss` of refresh JWTs. They are read only by tollgate, so they are bound to
/// the environment (in `aud`), not to a URL that the CLI minting them may not
/// know.
const REFRESH_ISSUER: &str = "tollgate";

fn refresh_audience(env: &str) -> String {
    format!("tollgate:refresh:{env}")
}

/// Upper bound of cached clients (and verifications) before the cache is reset.
pub(crate) const CACHE_MAX: usize = 100_000;

/// One environment as the hot path sees it.
#[derive(Debug)]
pub struct EnvRuntime {
    /// The stored environment.
    pub env: Environment,
    /// Effective issuer URL.
    pub issuer: String,
    /// Path prefix under which it answers (`""` for the default environment).
    pub path_prefix: String,
    /// Published keys with their schedule, oldest first.
    keys: Vec<(keyring::Scheduled, Arc<SigningKey>)>,
    apis: HashMap<String, Arc<Api>>,
    jwks: String,
}

impl EnvRuntime {
    /// `{"keys":[...]}`, serialized once per snapshot.
    pub fn jwks_json(&self) -> &str {
        &self.jwks
    }

    /// The API with this identifier.
    pub fn api(&self, identifier: &str) -> Option<&Arc<Api>> {
        self.apis.get(identifier)
    }

    /// The key that signs new tokens now: the one the schedule calls active
    /// (the newest already activated).
    pub fn signing_key(&self) -> Option<&Arc<SigningKey>> {
        let t = now();
        self.keys
            .iter()
            .rev()
            .find(|(sched, _)| sched.state(t) == KeyState::Active)
            .map(|(_, k)| k)
    }
}

#[derive(Debug, Default)]
struct Snapshot {
    envs: HashMap<String, Arc<EnvRuntime>>,
    hosts: HashMap<String, String>,
    /// When a retired key leaves a JWKS, the snapshot must be rebuilt.
    valid_until: Option<i64>,
}

/// A client_credentials request, already translated from its wire format.
#[derive(Debug)]
pub struct ClientCredentials<'a> {
    /// The presented client id.
    pub client_id: &'a str,
    /// The presented secret.
    pub client_secret: &'a SecretString,
    /// Requested audience (`audience` or RFC 8707 `resource`).
    pub audience: Option<&'a str>,
    /// Requested scope, space-separated.
    pub scope: Option<&'a str>,
}

/// Where a client stands against its issuance limit
/// ([`Obligation::Limit`]), for `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    /// Issuances allowed per window.
    pub limit: u64,
    /// Issuances left in this window.
    pub remaining: u64,
    /// Unix seconds at which the window resets.
    pub reset_at: i64,
}

impl RateInfo {
    /// Seconds until the window resets (for `Retry-After`), at least 1.
    pub fn retry_after(&self) -> u64 {
        u64::try_from(self.reset_at - now()).unwrap_or(0).max(1)
    }
}

/// A freshly minted access token.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The JWT.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Unix seconds at which it expires.
    pub expires_at: i64,
    /// Granted scope, space-separated.
    pub scope: String,
    /// The audience it was minted for.
    pub audience: String,
    /// The client it was minted for.
    pub client_id: String,
    /// Its client's standing against an issuance limit, if it has one.
    pub rate: Option<RateInfo>,
    /// Whether this is a token issued before and handed out again
    /// ([`Obligation::Reuse`]).
    pub reused: bool,
}

/// Input of [`Tollgate::create_client`].
#[derive(Debug)]
pub struct NewClient {
    /// Environment.
    pub env: String,
    /// Human name.
    pub name: String,
    /// Imported client id (generated when absent).
    pub client_id: Option<String>,
    /// Imported secret (generated when absent).
    pub client_secret: Option<SecretString>,
    /// Granted APIs with package/permission names.
    pub apis: Vec<ApiGrant>,
    /// Allowed grants (client_credentials when empty).
    pub grant_types: BTreeSet<GrantType>,
    /// Per-client token lifetime.
    pub token_lifetime: Option<u64>,
    /// Extra claims.
    pub extra_claims: serde_json::Map<String, serde_json::Value>,
    /// Extra powers (introspecting others' tokens).
    pub capabilities: BTreeSet<Capability>,
    /// Overrides its APIs' obligations.
    pub obligation: Option<Obligation>,
    /// A public client (RFC 6749 §2.1): no secret; it identifies itself by
    /// id alone and may only use user grants, where the user's password is
    /// the credential.
    pub public: bool,
}

/// What [`Tollgate::set_obligation`] applies to.
#[derive(Debug, Clone, Copy)]
pub enum ObligationTarget<'a> {
    /// An API (every client holding it, unless a client has its own).
    Api(&'a str),
    /// One client.
    Client(&'a str),
}

/// Settable properties of an environment; `None` leaves one as it is.
#[derive(Debug, Default)]
pub struct EnvSettings {
    /// Host names that select it.
    pub hosts: Option<Vec<String>>,
    /// Token-endpoint dialect.
    pub dialect: Option<Dialect>,
    /// Optional contracts enabled there (names are checked by the caller,
    /// which knows the contracts).
    pub contracts: Option<BTreeSet<String>>,
}

impl EnvSettings {
    fn apply(self, env: &mut Environment) -> Result<(), CoreError> {
        if let Some(hosts) = self.hosts {
            let hosts: Vec<String> = hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect();
            if let Some(h) = hosts.iter().find(|h| {
                h.is_empty()
                    || !h
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
            }) {
                return Err(CoreError::invalid(
                    "host",
                    format!("'{h}' is not a host name"),
                ));
            }
            env.hosts = hosts;
        }
        if let Some(d) = self.dialect {
            env.dialect = d;
        }
        if let Some(c) = self.contracts {
            for name in &c {
                crate::model::validate_token("contract", name)?;
            }
            env.contracts = c;
        }
        Ok(())
    }
}

/// A cache of store rows by (environment, name); `None` remembers a row
/// that does not exist.
pub(crate) type Cache<T> = HashMap<(String, String), Option<Arc<T>>>;

/// The core service.
pub struct Tollgate {
    /// Operational metrics (rendered by the HTTP layer at `/metrics`).
    pub metrics: Metrics,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) keys: DerivedKeys,
    pub(crate) session_codec: crate::sessions::Codec,
    public_url: String,
    revision: AtomicI64,
    snapshot: RwLock<Arc<Snapshot>>,
    clients: RwLock<Cache<Client>>,
    pub(crate) users: RwLock<Cache<crate::model::User>>,
    /// Tokens handed out again under [`Obligation::Reuse`], by client,
    /// audience, scope and lifetime. Per instance; dropped on every reload
    /// (revocations, disabled clients).
    reuse: Mutex<HashMap<String, Issued>>,
    /// Refresh-JWT records by (environment, jti), dropped on every reload.
    refresh_jwts: RwLock<Cache<RefreshJwtRecord>>,
    /// Refresh families read under the reuse policy (where only a
    /// revocation, which bumps the revision, changes them).
    pub(crate) families: RwLock<Cache<crate::model::RefreshFamily>>,
    /// argon2id checks: bounded, single flight, successes remembered.
    verifier: Verifier,
}

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
        let session_codec = crate::sessions::Codec::new(keys.session_refresh_key());
        let tg = Self {
            metrics: Metrics::default(),
            store,
            keys,
            session_codec,
            public_url: public_url.trim_end_matches('/').to_string(),
            revision: AtomicI64::new(i64::MIN),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            clients: RwLock::new(HashMap::new()),
            users: RwLock::new(HashMap::new()),
            reuse: Mutex::new(HashMap::new()),
            refresh_jwts: RwLock::new(HashMap::new()),
            families: RwLock::new(HashMap::new()),
            verifier: Verifier::new(Argon2Bound::default()),
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
        Ok(tg)
    }

    /// Replaces the bound on argon2id work (default [`Argon2Bound::default`]).
    pub fn with_argon2_bound(mut self, bound: Argon2Bound) -> Self {
        self.verifier = Verifier::new(bound);
        self
    }

    /// The issuer URL of `env`.
    pub fn issuer_for(&self, env: &Environment) -> String {
        match &env.issuer {
            Some(i) => i.clone(),
            None if env.name == DEFAULT_ENV => self.public_url.clone(),
            None => format!("{}/e/{}", self.public_url, env.name),
        }
    }

    /// Checks the store's revision and reloads when it moved. Returns whether
    /// it reloaded. Servers call this on a short interval.
    pub async fn sync(&self) -> Result<bool, CoreError> {
        let started = std::time::Instant::now();
        let rev = self.store.revision().await;
        self.store_timing("revision", started);
        let rev = rev?;
        let expired = self.snap().valid_until.is_some_and(|u| now() >= u);
        if rev == self.revision.load(Ordering::Acquire) && !expired {
            return Ok(false);
        }
        self.reload().await?;
        Ok(true)
    }

    async fn reload(&self) -> Result<(), CoreError> {
        // Read the revision first: a change racing with the load bumps it
        // again, and the next sync reloads once more.
        let rev = self.store.revision().await?;
        let envs = self.store.list_environments().await?;
        let key_recs = self.store.list_signing_keys().await?;
        let apis = self.store.list_apis().await?;
        let mut snap = Snapshot::default();
        let t = now();
        for env in envs {
            let max_lifetime = self.max_lifetime(&env.name, &apis).await?;
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
            let jwks = serde_json::json!({
                "keys": keys.iter().map(|(_, k)| k.jwk().clone()).collect::<Vec<_>>()
            })
            .to_string();
            let env_apis = apis
                .iter()
                .filter(|a| a.env == env.name)
                .map(|a| (a.identifier.clone(), Arc::new(a.clone())))
                .collect();
            for h in &env.hosts {
                snap.hosts.insert(h.to_ascii_lowercase(), env.name.clone());
            }
            let rt = EnvRuntime {
                issuer: self.issuer_for(&env),
                path_prefix: if env.name == DEFAULT_ENV {
                    String::new()
                } else {
                    format!("/e/{}", env.name)
                },
                env,
                keys,
                apis: env_apis,
                jwks,
            };
            snap.envs.insert(rt.env.name.clone(), Arc::new(rt));
        }
        *write(&self.snapshot) = Arc::new(snap);
        write(&self.clients).clear();
        write(&self.users).clear();
        lock(&self.reuse).clear();
        write(&self.refresh_jwts).clear();
        write(&self.families).clear();
        self.verifier.clear();
        self.revision.store(rev, Ordering::Release);
        Ok(())
    }

    fn snap(&self) -> Arc<Snapshot> {
        read(&self.snapshot).clone()
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

    // ----- provisioning -------------------------------------------------

    /// Creates an environment and its first signing key.
    pub async fn create_environment(
        &self,
        name: &str,
        issuer: Option<String>,
        alg: Alg,
        settings: EnvSettings,
    ) -> Result<Environment, CoreError> {
        validate_env_name(name)?;
        if let Some(i) = &issuer {
            if !(i.starts_with("https://") || i.starts_with("http://")) {
                return Err(CoreError::invalid("issuer", "must be an http(s) URL"));
            }
        }
        let mut env = Environment {
            name: name.to_string(),
            issuer,
            alg,
            hosts: Vec::new(),
            dialect: Dialect::default(),
            contracts: BTreeSet::new(),
            created_at: now(),
        };
        settings.apply(&mut env)?;
        let key = keys::generate(&self.keys, name, alg, KeyState::Active, now())?;
        self.store
            .create_environment(&env, &key)
            .await
            .map_err(|e| conflict(e, "environment", name))?;
        Ok(env)
    }

    /// Changes an environment's hosts, dialect or contracts.
    pub async fn update_environment(
        &self,
        name: &str,
        settings: EnvSettings,
    ) -> Result<Environment, CoreError> {
        let mut env = self.require_env(name).await?;
        settings.apply(&mut env)?;
        let existed = self.store.update_environment(&env).await?;
        CoreError::found(existed, "environment", name)?;
        Ok(env)
    }

    /// All environments.
    pub async fn list_environments(&self) -> Result<Vec<Environment>, CoreError> {
        Ok(self.store.list_environments().await?)
    }

    pub(crate) async fn require_env(&self, name: &str) -> Result<Environment, CoreError> {
        self.store
            .list_environments()
            .await?
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| CoreError::not_found("environment", name))
    }

    /// Creates an API.
    pub async fn create_api(&self, api: Api) -> Result<Api, CoreError> {
        self.require_env(&api.env).await?;
        api.validate()?;
        self.store
            .create_api(&api)
            .await
            .map_err(|e| conflict(e, "api", &api.identifier))?;
        Ok(api)
    }

    /// APIs of `env`.
    pub async fn list_apis(&self, env: &str) -> Result<Vec<Api>, CoreError> {
        self.require_env(env).await?;
        let mut apis = self.store.list_apis().await?;
        apis.retain(|a| a.env == env);
        Ok(apis)
    }

    /// Deletes an API.
    pub async fn delete_api(&self, env: &str, identifier: &str) -> Result<(), CoreError> {
        let existed = self.store.delete_api(env, identifier).await?;
        CoreError::found(existed, "api", identifier)
    }

    /// Creates (or imports) a client; returns it with the secret to show
    /// once (none for a public client).
    pub async fn create_client(
        &self,
        new: NewClient,
    ) -> Result<(Client, Option<SecretString>), CoreError> {
        self.require_env(&new.env).await?;
        let apis = self.list_apis(&new.env).await?;
        for g in &new.apis {
            let api = apis
                .iter()
                .find(|a| a.identifier == g.api)
                .ok_or_else(|| CoreError::not_found("api", &g.api))?;
            api.expand(&g.grants)
                .map_err(|r| CoreError::invalid("api grant", r))?;
        }
        let client_id = match new.client_id {
            Some(id) => id,
            None => crate::crypto::random_alnum(24)?,
        };
        let t = now();
        let (secret, secrets) = match (new.public, new.client_secret) {
            (true, Some(_)) => {
                return Err(CoreError::invalid(
                    "client secret",
                    "a public client has no secret",
                ));
            }
            (true, None) => (None, Vec::new()),
            (false, s) => {
                let s = match s {
                    Some(s) => s,
                    None => secret::generate()?,
                };
                let record = secret::hash_for_storage(&self.keys, &new.env, &client_id, &s, t)?;
                (Some(s), vec![record])
            }
        };
        let grant_types = if new.grant_types.is_empty() {
            [GrantType::ClientCredentials].into_iter().collect()
        } else {
            new.grant_types
        };
        if new.public && grant_types.contains(&GrantType::ClientCredentials) {
            return Err(CoreError::invalid(
                "grant",
                "a public client cannot use client_credentials: give it user grants (--grant device_credentials, --grant password)",
            ));
        }
        let client = Client {
            env: new.env,
            client_id,
            name: new.name,
            secrets,
            apis: new.apis,
            grant_types,
            token_lifetime: new.token_lifetime,
            extra_claims: new.extra_claims,
            capabilities: new.capabilities,
            obligation: new.obligation,
            enabled: true,
            created_at: t,
        };
        client.validate()?;
        self.store
            .create_client(&client)
            .await
            .map_err(|e| conflict(e, "client", &client.client_id))?;
        Ok((client, secret))
    }

    /// Clients of `env`.
    pub async fn list_clients(&self, env: &str) -> Result<Vec<Client>, CoreError> {
        self.require_env(env).await?;
        Ok(self.store.list_clients(env).await?)
    }

    /// One client.
    pub async fn get_client(&self, env: &str, client_id: &str) -> Result<Client, CoreError> {
        self.store
            .get_client(env, client_id)
            .await?
            .ok_or_else(|| CoreError::not_found("client", client_id))
    }

    /// Enables or disables a client.
    pub async fn set_client_enabled(
        &self,
        env: &str,
        client_id: &str,
        enabled: bool,
    ) -> Result<(), CoreError> {
        let existed = self
            .store
            .set_client_enabled(env, client_id, enabled)
            .await?;
        CoreError::found(existed, "client", client_id)
    }

    /// Deletes a client with its users, revoking its refresh JWTs and
    /// sessions; its access tokens introspect inactive from then on.
    pub async fn delete_client(&self, env: &str, client_id: &str) -> Result<(), CoreError> {
        let existed = self.store.delete_client(env, client_id, now()).await?;
        CoreError::found(existed, "client", client_id)
    }

    /// Rotates a client's secret: a new secret is added and returned (to show
    /// once); the current ones keep working for `grace` seconds, then stop.
    /// Secrets already expired are dropped.
    pub async fn rotate_secret(
        &self,
        env: &str,
        client_id: &str,
        grace: u64,
    ) -> Result<(SecretString, Client), CoreError> {
        let t = now();
        let until = t.saturating_add(i64::try_from(grace).unwrap_or(i64::MAX));
        let secret = secret::generate()?;
        let record = secret::hash_for_storage(&self.keys, env, client_id, &secret, t)?;
        let client = self
            .update_secrets(env, client_id, |secrets| {
                secrets.retain(|r| r.expires_at.is_none_or(|e| e > t));
                for r in secrets.iter_mut() {
                    r.expires_at = Some(r.expires_at.map_or(until, |e| e.min(until)));
                }
                secrets.push(record.clone());
                Ok(())
            })
            .await?;
        Ok((secret, client))
    }

    /// Ends every rotation grace at once: only the newest secret keeps working.
    pub async fn revoke_all_but_newest_secret(
        &self,
        env: &str,
        client_id: &str,
    ) -> Result<Client, CoreError> {
        self.update_secrets(env, client_id, |secrets| {
            let newest = secrets
                .iter()
                .enumerate()
                .max_by_key(|(i, r)| (r.created_at, *i))
                .map(|(i, _)| i)
                .ok_or_else(|| CoreError::invalid("client", "the client has no secret"))?;
            let keep = secrets.swap_remove(newest);
            secrets.clear();
            secrets.push(SecretRecord {
                expires_at: None,
                ..keep
            });
            Ok(())
        })
        .await
    }

    /// Read, change, compare-and-set; retried a few times when another writer
    /// changed the secrets in between.
    async fn update_secrets(
        &self,
        env: &str,
        client_id: &str,
        change: impl Fn(&mut Vec<SecretRecord>) -> Result<(), CoreError>,
    ) -> Result<Client, CoreError> {
        for _ in 0..5 {
            let mut client = self.get_client(env, client_id).await?;
            let before = client.secrets.clone();
            change(&mut client.secrets)?;
            if self
                .store
                .swap_client_secrets(env, client_id, &before, &client.secrets)
                .await?
            {
                return Ok(client);
            }
        }
        Err(CoreError::invalid(
            "client",
            "its secrets kept changing concurrently; try again",
        ))
    }

    /// The longest access-token lifetime `env` can issue (APIs and client overrides).
    async fn max_lifetime(&self, env: &str, apis: &[Api]) -> Result<i64, CoreError> {
        let clients = self.store.list_clients(env).await?;
        Ok(keyring::max_token_lifetime(
            apis.iter()
                .filter(|a| a.env == env)
                .map(|a| a.token_lifetime),
            clients.iter().filter_map(|c| c.token_lifetime),
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
            let max_lifetime = self.max_lifetime(&env.name, &apis).await?;
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
            if newest.is_some_and(|c| c > cutoff) {
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
    fn next_key(
        &self,
        env: &str,
        alg: Alg,
        publish_delay: u64,
        t: i64,
    ) -> Result<SigningKeyRecord, CoreError> {
        let mut rec = keys::generate(&self.keys, env, alg, KeyState::Next, t)?;
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
        let t = now();
        let rec = self.next_key(env, e.alg, publish_delay, t)?;
        self.store.insert_signing_key(&rec).await?;
        Ok(rec)
    }

    // ----- grants -------------------------------------------------------

    pub(crate) async fn cached_client(
        &self,
        env: &str,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, GrantError> {
        let key = (env.to_string(), client_id.to_string());
        self.read_through(&self.clients, "client", "get_client", key, true, || {
            self.store.get_client(env, client_id)
        })
        .await
    }

    /// A read-through cache in front of the store, keyed by (environment,
    /// name): a hit costs no store round trip; a miss runs `load` (timed as
    /// store op `op`) and remembers the result, an absent row only when
    /// `remember_missing`. Every cache is emptied on reload.
    pub(crate) async fn read_through<T, F, Fut>(
        &self,
        cache: &RwLock<Cache<T>>,
        name: &'static str,
        op: &'static str,
        key: (String, String),
        remember_missing: bool,
        load: F,
    ) -> Result<Option<Arc<T>>, GrantError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, StoreError>>,
    {
        let hit = read(cache).get(&key).cloned();
        if let Some(hit) = hit {
            self.cache_event(name, "hit");
            return Ok(hit);
        }
        self.cache_event(name, "miss");
        let started = std::time::Instant::now();
        let loaded = load().await;
        self.store_timing(op, started);
        let loaded = loaded
            .map_err(|e| {
                tracing::error!(error = %e, cache = name, "store failed while loading");
                GrantError::Unavailable
            })?
            .map(Arc::new);
        if loaded.is_some() || remember_missing {
            let mut c = write(cache);
            if c.len() >= CACHE_MAX {
                c.clear();
            }
            c.insert(key, loaded.clone());
        }
        Ok(loaded)
    }

    /// Authenticates a client by id and secret. Unknown client, wrong secret
    /// and disabled client all give [`GrantError::InvalidClient`], at the same cost.
    pub async fn authenticate(
        &self,
        env: &EnvRuntime,
        client_id: &str,
        presented: &SecretString,
    ) -> Result<Arc<Client>, GrantError> {
        let client = self.cached_client(&env.env.name, client_id).await?;
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

    /// The client_credentials grant (RFC 6749 §4.4), as every contract speaks it.
    pub async fn client_credentials(
        &self,
        env: &EnvRuntime,
        req: &ClientCredentials<'_>,
    ) -> Result<Issued, GrantError> {
        let client = self
            .authenticate(env, req.client_id, req.client_secret)
            .await?;
        if !client.grant_types.contains(&GrantType::ClientCredentials) {
            return Err(GrantError::UnauthorizedClient(
                GrantType::ClientCredentials.as_str().into(),
            ));
        }
        let audience = match req.audience {
            Some(a) => a,
            None => match client.apis.as_slice() {
                [only] => only.api.as_str(),
                [] => {
                    return Err(GrantError::AudienceRequired(
                        "the client is granted no API".into(),
                    ));
                }
                _ => {
                    return Err(GrantError::AudienceRequired(
                        "the client holds several APIs: name one with 'audience' or 'resource'"
                            .into(),
                    ));
                }
            },
        };
        self.with_obligations(
            env,
            &client,
            audience,
            req.scope,
            None,
            "client-credentials",
        )
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
        self.store_timing("count_issuance", started);
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

    /// [`Self::mint_access`] under the client's obligation: a reusable token
    /// is handed out again, a limit is counted.
    async fn with_obligations(
        &self,
        env: &EnvRuntime,
        client: &Client,
        audience: &str,
        scope: Option<&str>,
        lifetime: Option<u64>,
        gty: &'static str,
    ) -> Result<Issued, GrantError> {
        match Self::obligation_for(env, client, audience) {
            Obligation::Reuse { min_remaining } => {
                let mut wanted: Vec<&str> = scope.unwrap_or("").split_ascii_whitespace().collect();
                wanted.sort_unstable();
                wanted.dedup();
                let key = format!(
                    "{}\n{}\n{audience}\n{}\n{lifetime:?}",
                    env.env.name,
                    client.client_id,
                    wanted.join(" ")
                );
                let t = now();
                let min = i64::try_from(min_remaining).unwrap_or(i64::MAX);
                let hit = lock(&self.reuse)
                    .get(&key)
                    .cloned()
                    .filter(|i| i.expires_at - t > min);
                if let Some(mut again) = hit {
                    self.cache_event("reuse", "hit");
                    again.expires_in = u64::try_from(again.expires_at - t).unwrap_or(0);
                    again.reused = true;
                    return Ok(again);
                }
                self.cache_event("reuse", "miss");
                let issued = self.mint_access(env, client, audience, scope, lifetime, gty)?;
                let mut r = lock(&self.reuse);
                if r.len() >= CACHE_MAX {
                    r.clear();
                }
                r.insert(key, issued.clone());
                Ok(issued)
            }
            limit @ Obligation::Limit { .. } => {
                let rate = self.check_limit(env, client, limit).await?;
                let mut issued = self.mint_access(env, client, audience, scope, lifetime, gty)?;
                issued.rate = rate;
                Ok(issued)
            }
            Obligation::Off => self.mint_access(env, client, audience, scope, lifetime, gty),
        }
    }

    /// Sets (or clears) the obligation of an API or of a client.
    pub async fn set_obligation(
        &self,
        env: &str,
        target: ObligationTarget<'_>,
        obligation: Option<Obligation>,
    ) -> Result<(), CoreError> {
        self.require_env(env).await?;
        let (api, client, kind, name) = match target {
            ObligationTarget::Api(a) => (Some(a), None, "api", a),
            ObligationTarget::Client(c) => (None, Some(c), "client", c),
        };
        let existed = self
            .store
            .set_obligation(env, api, client, obligation.as_ref())
            .await?;
        CoreError::found(existed, kind, name)
    }

    /// Mints an access token for `client` and `audience`, with `scope`
    /// narrowing what it holds there, living `lifetime` seconds (default: the
    /// client's, else the API's). Shared by every grant; `gty` names the
    /// grant in the Auth0 dialect's `gty` claim.
    fn mint_access(
        &self,
        env: &EnvRuntime,
        client: &Client,
        audience: &str,
        scope: Option<&str>,
        lifetime: Option<u64>,
        gty: &'static str,
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
        let lifetime = lifetime
            .or(client.token_lifetime)
            .unwrap_or(api.token_lifetime);
        let iat = now();
        let exp = iat.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX));
        let scope = token::scope_string(&granted);
        let jti = random_b64(16).map_err(|_| GrantError::Unavailable)?;
        let key = env.signing_key().ok_or(GrantError::Unavailable)?;
        let auth0 = env.env.dialect == Dialect::Auth0;
        let auth0_sub;
        let access_token = token::mint(
            key,
            &AccessClaims {
                iss: &env.issuer,
                sub: if auth0 {
                    auth0_sub = format!("{}@clients", client.client_id);
                    &auth0_sub
                } else {
                    &client.client_id
                },
                aud: audience,
                exp,
                iat,
                jti: &jti,
                client_id: &client.client_id,
                scope: &scope,
                azp: auth0.then_some(client.client_id.as_str()),
                gty: auth0.then_some(gty),
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

    // ----- refresh JWTs (bearer exchange) --------------------------------

    /// Mints a long-lived refresh JWT for a client (shown once; only its
    /// `jti` and metadata are stored). `audience` defaults to the client's
    /// only API. Signed HS256 under a key derived from the master key: only
    /// tollgate verifies it, and signing-key rotation does not touch it.
    pub async fn issue_refresh_jwt(
        &self,
        env: &str,
        client_id: &str,
        audience: Option<&str>,
        ttl: u64,
    ) -> Result<(SecretString, RefreshJwtRecord), CoreError> {
        let rt = self
            .env(env)
            .ok_or_else(|| CoreError::not_found("environment", env))?;
        let client = self.get_client(env, client_id).await?;
        let audience = match (audience, client.apis.as_slice()) {
            (Some(a), _) => a.to_string(),
            (None, [only]) => only.api.clone(),
            (None, _) => {
                return Err(CoreError::invalid(
                    "api",
                    "the client holds several APIs (or none): name one with --api",
                ));
            }
        };
        if client.grant_for(&audience).is_none() {
            return Err(CoreError::invalid(
                "api",
                format!("the client is not granted '{audience}'"),
            ));
        }
        let t = now();
        let rec = RefreshJwtRecord {
            env: env.to_string(),
            jti: random_b64(16)?,
            client_id: client_id.to_string(),
            audience,
            created_at: t,
            expires_at: t.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
            revoked_at: None,
        };
        let claims = serde_json::json!({
            "iss": REFRESH_ISSUER,
            "sub": rec.client_id,
            "aud": refresh_audience(&rt.env.name),
            "iat": rec.created_at,
            "exp": rec.expires_at,
            "jti": rec.jti,
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.typ = Some(REFRESH_TYP.into());
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.keys.refresh_jwt_key()),
        )
        .map_err(|e| CoreError::Crypto(e.to_string()))?;
        self.store.insert_refresh_jwt(&rec).await?;
        Ok((SecretString::from(token), rec))
    }

    /// Refresh JWTs of an environment (metadata only).
    pub async fn list_refresh_jwts(&self, env: &str) -> Result<Vec<RefreshJwtRecord>, CoreError> {
        self.require_env(env).await?;
        Ok(self.store.list_refresh_jwts(env).await?)
    }

    /// Revokes a refresh JWT by its `jti`.
    pub async fn revoke_refresh_jwt(&self, env: &str, jti: &str) -> Result<(), CoreError> {
        let existed = self.store.revoke_refresh_jwt(env, jti, now()).await?;
        CoreError::found(existed, "active refresh JWT", jti)
    }

    /// Exchanges a refresh JWT for an access token living `lifetime` seconds.
    /// One store round trip (the refresh JWT's record); every failure is
    /// [`GrantError::InvalidGrant`].
    pub async fn exchange_refresh_jwt(
        &self,
        env: &EnvRuntime,
        token: &str,
        lifetime: u64,
    ) -> Result<Issued, GrantError> {
        let invalid = |why: &str| GrantError::InvalidGrant(why.to_string());
        let jti = self.read_refresh_jwt(env, token)?;
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
        self.with_obligations(
            env,
            &client,
            &rec.audience,
            None,
            Some(lifetime),
            "refresh_token",
        )
        .await
        .map_err(|e| match e {
            GrantError::AudienceNotGranted(_) | GrantError::UnknownAudience(_) => {
                invalid("the client no longer holds its API")
            }
            other => other,
        })
    }

    /// Verifies a refresh JWT of `env` (signature, type, issuer, audience,
    /// expiry) and returns its `jti`; every failure is
    /// [`GrantError::InvalidGrant`].
    fn read_refresh_jwt(&self, env: &EnvRuntime, token: &str) -> Result<String, GrantError> {
        let invalid = |why: &str| GrantError::InvalidGrant(why.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed"))?;
        if header.typ.as_deref() != Some(REFRESH_TYP)
            || header.alg != jsonwebtoken::Algorithm::HS256
        {
            return Err(invalid("not a refresh JWT"));
        }
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.leeway = 0;
        v.set_issuer(&[REFRESH_ISSUER]);
        v.set_audience(&[refresh_audience(&env.env.name)]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub", "jti"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            token,
            &jsonwebtoken::DecodingKey::from_secret(self.keys.refresh_jwt_key()),
            &v,
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => invalid("expired"),
            _ => invalid("bad signature, issuer or audience"),
        })?
        .claims;
        claims["jti"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| invalid("no jti"))
    }

    /// A refresh JWT's record, from memory when seen before. Records change
    /// only by revocation, which bumps the store revision and so empties
    /// this cache on every instance within a sync interval; unknown ids are
    /// not remembered.
    async fn cached_refresh_jwt(
        &self,
        env: &str,
        jti: &str,
    ) -> Result<Option<Arc<RefreshJwtRecord>>, GrantError> {
        let key = (env.to_string(), jti.to_string());
        self.read_through(
            &self.refresh_jwts,
            "refresh_jwt",
            "get_refresh_jwt",
            key,
            false,
            || self.store.get_refresh_jwt(env, jti),
        )
        .await
    }

    /// RFC 7662: the claims of an active token, if `caller` may see them:
    /// tokens issued to the caller itself, or any token when the caller has
    /// the introspect capability. `None` means "inactive" on the wire:
    /// invalid, expired, revoked or not the caller's business.
    pub async fn introspect(
        &self,
        env: &EnvRuntime,
        caller: &Client,
        token: &str,
    ) -> Result<Option<VerifiedClaims>, GrantError> {
        let Ok(claims) = self.verify(env, token, None) else {
            return Ok(None);
        };
        let allowed = claims.client_id.as_deref() == Some(caller.client_id.as_str())
            || caller.capabilities.contains(&Capability::Introspect);
        if !allowed {
            return Ok(None);
        }
        // A token outlives neither its client (deleted or disabled) nor a
        // re-creation of a client under the same id.
        let holder = match claims.client_id.as_deref() {
            Some(id) => self.cached_client(&env.env.name, id).await?,
            None => None,
        };
        if !holder.is_some_and(|c| c.enabled && c.created_at <= claims.iat) {
            return Ok(None);
        }
        let revoked = self.is_revoked(env, &claims.jti).await?;
        Ok((!revoked).then_some(claims))
    }

    /// Whether access token `jti` of `env` is on the deny list (one store
    /// round trip).
    pub async fn is_revoked(&self, env: &EnvRuntime, jti: &str) -> Result<bool, GrantError> {
        let started = std::time::Instant::now();
        let revoked = self.store.is_token_revoked(&env.env.name, jti).await;
        self.store_timing("is_token_revoked", started);
        revoked.map_err(|e| {
            tracing::error!(error = %e, "store failed while reading the deny list");
            GrantError::Unavailable
        })
    }

    /// RFC 7009: revokes `token` if it is the caller's. An access token goes
    /// on the deny list until it would have expired; a session refresh token
    /// ends its session (its family); a refresh JWT is revoked. Tokens that
    /// are invalid, expired, or another client's are answered the same way
    /// as a success (§2.2), so the answer tells nothing about them.
    pub async fn revoke(
        &self,
        env: &EnvRuntime,
        caller: &Client,
        token: &str,
    ) -> Result<(), GrantError> {
        let failed = |e: StoreError| {
            tracing::error!(error = %e, "store failed while revoking");
            GrantError::Unavailable
        };
        if let Ok(claims) = self.verify(env, token, None) {
            if claims.client_id.as_deref() != Some(caller.client_id.as_str()) {
                tracing::debug!("revocation of another client's token ignored");
                return Ok(());
            }
            return self
                .store
                .revoke_token(&env.env.name, &claims.jti, claims.exp)
                .await
                .map_err(failed);
        }
        if self.revoke_session_token(env, caller, token).await? {
            return Ok(());
        }
        if let Ok(jti) = self.read_refresh_jwt(env, token) {
            let rec = self.store.get_refresh_jwt(&env.env.name, &jti).await;
            if rec
                .map_err(failed)?
                .is_some_and(|r| r.client_id == caller.client_id)
            {
                self.store
                    .revoke_refresh_jwt(&env.env.name, &jti, now())
                    .await
                    .map_err(failed)?;
            }
        }
        Ok(())
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

    pub(crate) fn store_timing(&self, op: &'static str, started: std::time::Instant) {
        self.metrics.observe(
            "tollgate_store_duration_seconds",
            "Latency of store calls made while serving requests",
            &[("op", op)],
            started.elapsed(),
        );
    }

    pub(crate) fn cache_event(&self, cache: &'static str, result: &'static str) {
        self.metrics.count(
            "tollgate_cache_lookups_total",
            "In-memory cache lookups by cache and result (hit ratio = hit / all)",
            &[("cache", cache), ("result", result)],
            1,
        );
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

pub(crate) fn conflict(e: StoreError, kind: &'static str, name: &str) -> CoreError {
    match e {
        StoreError::Conflict(_) => CoreError::AlreadyExists {
            kind,
            name: name.to_string(),
        },
        other => CoreError::Store(other),
    }
}
