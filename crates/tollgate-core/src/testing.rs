//! Test support (cargo feature `testing`): [`MemoryStore`], a [`Store`] held
//! in memory, so the core's behaviour can be tested in milliseconds without a
//! database.
//!
//! It follows the SQL store (`tollgate-store`) rule for rule, including what
//! the trait leaves unsaid: which writes bump the revision, which fail with
//! `Conflict`, that keys, APIs and clients need their environment (a foreign
//! key there), list orders, and the refresh-family verdicts. The shared store
//! contract suite (`tollgate-testkit`) runs over both to keep them equal.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::StoreError;
use crate::feed::{ChangeFeed, FeedSender, Reach};
use crate::incumbent::{RefreshCutoff, TrustedIssuer};
use crate::model::{
    Api, ApiKey, AuditEntry, Client, Environment, Obligation, ObligationTarget, RefreshFamily,
    RefreshJwtRecord, SecretRecord, SigningKeyRecord, User,
};
use crate::package_request::{PackageRequest, ProviderSession, RequestStatus};
use crate::partner::{
    Handover, Invitation, Partner, PartnerAccount, PartnerClient, PartnerTotp, PortalSession,
};
use crate::store::{Guarded, Store};
use crate::usage::{KEEP_DAYS, UsageDay, day_of};

/// Rows keyed by (environment, name), the primary key of every table but
/// the environments'.
type Table<T> = BTreeMap<(String, String), T>;

fn key(env: &str, name: &str) -> (String, String) {
    (env.to_string(), name.to_string())
}

/// Everything the store holds. One lock around all of it makes every method
/// one transaction, as each SQL statement (or transaction) is there.
#[derive(Debug, Default)]
struct State {
    revision: i64,
    environments: BTreeMap<String, Environment>,
    keys: Table<SigningKeyRecord>,
    apis: Table<Api>,
    clients: Table<Client>,
    /// Deny list: expiry per (env, jti).
    revoked: Table<i64>,
    refresh_jwts: Table<RefreshJwtRecord>,
    users: Table<User>,
    families: Table<RefreshFamily>,
    /// (window start, count) per (env, client).
    issuance: Table<(i64, u64)>,
    /// The last mark of the service being alive.
    alive: Option<i64>,
    /// Failed authentications: (count, expiry) per key.
    failures: BTreeMap<String, (u64, i64)>,
    /// Trusted incumbent issuers by (env, id).
    trusted: Table<TrustedIssuer>,
    /// Refresh-token cut-offs by (env, client).
    cutoffs: Table<i64>,
    /// The audit log by id.
    audit: BTreeMap<String, AuditEntry>,
    /// API keys by (env, id).
    api_keys: Table<ApiKey>,
    /// Partners by id.
    partners: BTreeMap<String, Partner>,
    /// Owned clients by (env, client id).
    partner_clients: Table<PartnerClient>,
    /// Invitations by digest.
    invitations: BTreeMap<String, Invitation>,
    /// Portal accounts by login.
    accounts: BTreeMap<String, PartnerAccount>,
    /// Portal sessions by digest.
    sessions: BTreeMap<String, PortalSession>,
    /// Package requests by id.
    package_requests: BTreeMap<String, PackageRequest>,
    /// Provider admins' portal sessions by digest.
    provider_sessions: BTreeMap<String, ProviderSession>,
    /// Portal accounts' second factors by login.
    totps: BTreeMap<String, PartnerTotp>,
    /// Pending secret handovers by digest.
    handovers: BTreeMap<String, Handover>,
    /// Usage (issued, errors, throttled) by (env, client, day).
    usage: BTreeMap<(String, String, i64), (u64, u64, u64)>,
}

impl State {
    fn update_environment_in(&mut self, env: &Environment) -> bool {
        let Some(e) = self.environments.get_mut(&env.name) else {
            return false;
        };
        e.issuer.clone_from(&env.issuer);
        e.alg = env.alg;
        e.hosts.clone_from(&env.hosts);
        e.dialect = env.dialect;
        e.contracts.clone_from(&env.contracts);
        e.settings.clone_from(&env.settings);
        self.bump();
        true
    }
    fn update_api_in(&mut self, api: &Api) -> bool {
        let Some(a) = self.apis.get_mut(&key(&api.env, &api.identifier)) else {
            return false;
        };
        a.permissions.clone_from(&api.permissions);
        a.packages.clone_from(&api.packages);
        a.token_lifetime = api.token_lifetime;
        a.obligation = api.obligation;
        a.token_permissions = api.token_permissions;
        self.bump();
        true
    }
    fn delete_api_in(&mut self, env: &str, identifier: &str) -> bool {
        let gone = self.apis.remove(&key(env, identifier)).is_some();
        if gone {
            self.bump();
        }
        gone
    }
    fn update_client_in(&mut self, client: &Client) -> bool {
        let Some(c) = self.clients.get_mut(&key(&client.env, &client.client_id)) else {
            return false;
        };
        c.name.clone_from(&client.name);
        c.apis.clone_from(&client.apis);
        c.grant_types.clone_from(&client.grant_types);
        c.token_lifetime = client.token_lifetime;
        c.extra_claims.clone_from(&client.extra_claims);
        c.capabilities.clone_from(&client.capabilities);
        c.obligation = client.obligation;
        c.roles.clone_from(&client.roles);
        self.bump();
        true
    }
    fn delete_user_in(&mut self, env: &str, username: &str, now: i64) -> bool {
        if self.users.remove(&key(env, username)).is_none() {
            return false;
        }
        for f in self.families.values_mut() {
            if f.env == env && f.username == username && f.revoked_at.is_none() {
                f.revoked_at = Some(now);
            }
        }
        self.bump();
        true
    }
    fn delete_client_in(&mut self, env: &str, client_id: &str, now: i64) -> bool {
        if self.clients.remove(&key(env, client_id)).is_none() {
            return false;
        }
        self.users
            .retain(|(e, _), u| !(e == env && u.client_id == client_id));
        for f in self.families.values_mut() {
            if f.env == env && f.client_id == client_id && f.revoked_at.is_none() {
                f.revoked_at = Some(now);
            }
        }
        for r in self.refresh_jwts.values_mut() {
            if r.env == env && r.client_id == client_id && r.revoked_at.is_none() {
                r.revoked_at = Some(now);
            }
        }
        for k in self.api_keys.values_mut() {
            if k.env == env && k.client_id == client_id && k.revoked_at.is_none() {
                k.revoked_at = Some(now);
            }
        }
        self.bump();
        true
    }
    /// A guarded write (`Store::write_if_unchanged`): the comparison and
    /// the write under one lock.
    fn write_if_unchanged_in(&mut self, w: &Guarded) -> bool {
        match w {
            Guarded::UpdateEnvironment { expected, new } => {
                self.environments.get(&expected.name) == Some(expected)
                    && self.update_environment_in(new)
            }
            Guarded::UpdateApi { expected, new } => {
                self.apis.get(&key(&expected.env, &expected.identifier)) == Some(expected)
                    && self.update_api_in(new)
            }
            Guarded::DeleteApi { expected } => {
                self.apis.get(&key(&expected.env, &expected.identifier)) == Some(expected)
                    && self.delete_api_in(&expected.env, &expected.identifier)
            }
            Guarded::UpdateClient { expected, new } => {
                self.clients.get(&key(&expected.env, &expected.client_id)) == Some(expected)
                    && self.update_client_in(new)
            }
            Guarded::DeleteClient { expected, now } => {
                self.clients.get(&key(&expected.env, &expected.client_id)) == Some(expected)
                    && self.delete_client_in(&expected.env, &expected.client_id, *now)
            }
            Guarded::DeleteUser { expected, now } => {
                self.users.get(&key(&expected.env, &expected.username)) == Some(expected)
                    && self.delete_user_in(&expected.env, &expected.username, *now)
            }
            Guarded::UpdatePartner { expected, new } => match self.partners.get_mut(&expected.id) {
                Some(p) if p == expected => {
                    p.name.clone_from(&new.name);
                    p.offers.clone_from(&new.offers);
                    true
                }
                _ => false,
            },
        }
    }
    /// Writes that caches depend on bump the revision (the SQL store does it
    /// in the same transaction).
    fn bump(&mut self) {
        self.revision += 1;
    }

    /// Keys, APIs and clients reference their environment in SQL (a foreign
    /// key): a row for an unknown environment is refused as a backend error,
    /// not a conflict.
    fn require_env(&self, env: &str, what: &str) -> Result<(), StoreError> {
        if self.environments.contains_key(env) {
            Ok(())
        } else {
            Err(StoreError::Backend(format!(
                "foreign key: {what} of unknown environment '{env}'"
            )))
        }
    }

    fn insert_key(&mut self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        self.require_env(&k.env, "signing key")?;
        let id = key(&k.env, &k.kid);
        if self.keys.contains_key(&id) {
            return Err(conflict("signing key", &k.env, &k.kid));
        }
        self.keys.insert(id, k.clone());
        Ok(())
    }

    /// Revokes the family at `now` unless it is revoked already; bumps the
    /// revision when it did (servers cache families under the reuse policy).
    fn revoke_family(&mut self, env: &str, family: &str, now: i64) -> bool {
        match self.families.get_mut(&key(env, family)) {
            Some(f) if f.revoked_at.is_none() => {
                f.revoked_at = Some(now);
                self.bump();
                true
            }
            _ => false,
        }
    }

    fn rotate(&mut self, presented: &str, next: &RefreshFamily, now: i64) -> bool {
        let Some(f) = self.families.get_mut(&key(&next.env, &next.family)) else {
            return false;
        };
        // The SQL compare-and-set: current token, live, same contract and
        // client; times are the store's `now`, the previous id the replaced
        // current one; no revision bump (families are read from the store
        // on every refresh).
        let matches = f.current == presented
            && f.revoked_at.is_none()
            && f.expires_at > now
            && f.contract == next.contract
            && f.client_id == next.client_id;
        if matches {
            f.previous = Some(std::mem::replace(&mut f.current, next.current.clone()));
            f.access_jti.clone_from(&next.access_jti);
            f.access_exp = next.access_exp;
            f.issued_at = now;
            f.expires_at = next.expires_at;
            f.rotated_at = Some(now);
        }
        matches
    }
}

fn conflict(what: &str, env: &str, name: &str) -> StoreError {
    StoreError::Conflict(format!("{what} '{name}' in '{env}'"))
}

/// A [`Store`] in memory, for tests: fast, empty at start, gone at drop.
/// Its change feed reports every write that bumps the revision (like
/// SQLite's, it reaches this process only: there is no other).
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    feed: FeedSender,
    /// While set, [`Store::add_usage`] fails as a database down would
    /// ([`MemoryStore::fail_usage_writes`]).
    usage_down: AtomicBool,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            feed: FeedSender::new(Reach::ThisProcess),
            usage_down: AtomicBool::new(false),
        }
    }
}

impl MemoryStore {
    /// An empty store (no environments; revision 0, as a fresh database).
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes [`Store::add_usage`] fail (`on`) or work again: what a test
    /// of the usage flush's failure path needs.
    pub fn fail_usage_writes(&self, on: bool) {
        self.usage_down.store(on, Ordering::SeqCst);
    }

    /// Runs `f` on the state under the lock. The lock is never held across
    /// an `.await` (`f` is synchronous). A poisoned lock (a panic while it
    /// was held, in a test) is recovered: every change here is made whole or
    /// not at all before anything can panic, so the state is consistent.
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut guard: MutexGuard<'_, State> =
            self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let before = guard.revision;
        let r = f(&mut guard);
        let bumped = guard.revision != before;
        drop(guard);
        if bumped {
            self.feed.local_change();
        }
        r
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn revision(&self) -> Result<i64, StoreError> {
        Ok(self.with(|s| s.revision))
    }

    async fn change_feed(&self) -> Option<ChangeFeed> {
        Some(self.feed.subscribe())
    }

    async fn refund_issuance(
        &self,
        env: &str,
        client_id: &str,
        window_start: i64,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some((start, n)) = s.issuance.get_mut(&key(env, client_id)) {
                if *start == window_start {
                    *n = n.saturating_sub(1);
                }
            }
        });
        Ok(())
    }

    async fn count_auth_failure(
        &self,
        key: &str,
        now: i64,
        window: i64,
    ) -> Result<u64, StoreError> {
        Ok(self.with(|s| {
            let e = s.failures.entry(key.to_string()).or_insert((0, now));
            e.0 = if e.1 <= now { 1 } else { e.0 + 1 };
            e.1 = now + window;
            e.0
        }))
    }

    async fn clear_auth_failures(&self, key: &str) -> Result<(), StoreError> {
        self.with(|s| s.failures.remove(key));
        Ok(())
    }

    async fn last_alive(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.with(|s| s.alive))
    }

    async fn mark_alive(&self, now: i64) -> Result<(), StoreError> {
        self.with(|s| s.alive = Some(s.alive.map_or(now, |a| a.max(now))));
        Ok(())
    }

    async fn create_environment(
        &self,
        env: &Environment,
        first_key: &SigningKeyRecord,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            if s.environments.contains_key(&env.name) {
                return Err(StoreError::Conflict(format!("environment '{}'", env.name)));
            }
            // Both rows or neither: every check is made before anything is
            // added (the key may only name this or an existing environment).
            if first_key.env != env.name {
                s.require_env(&first_key.env, "signing key")?;
            }
            if s.keys.contains_key(&key(&first_key.env, &first_key.kid)) {
                return Err(conflict("signing key", &first_key.env, &first_key.kid));
            }
            s.environments.insert(env.name.clone(), env.clone());
            s.insert_key(first_key)?;
            s.bump();
            Ok(())
        })
    }

    async fn update_environment(&self, env: &Environment) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.update_environment_in(env)))
    }

    async fn list_environments(&self) -> Result<Vec<Environment>, StoreError> {
        Ok(self.with(|s| s.environments.values().cloned().collect()))
    }

    async fn insert_signing_key(&self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        self.with(|s| {
            s.insert_key(k)?;
            s.bump();
            Ok(())
        })
    }

    async fn insert_signing_key_unless_newer(
        &self,
        k: &SigningKeyRecord,
        cutoff: i64,
    ) -> Result<bool, StoreError> {
        self.with(|s| {
            let newer = s
                .keys
                .values()
                .any(|o| o.env == k.env && o.created_at > cutoff);
            if newer {
                return Ok(false);
            }
            s.insert_key(k)?;
            s.bump();
            Ok(true)
        })
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let mut keys: Vec<SigningKeyRecord> = self.with(|s| s.keys.values().cloned().collect());
        keys.sort_by(|a, b| {
            (&a.env, a.activates_at, &a.kid).cmp(&(&b.env, b.activates_at, &b.kid))
        });
        Ok(keys)
    }

    async fn create_api(&self, api: &Api) -> Result<(), StoreError> {
        self.with(|s| {
            s.require_env(&api.env, "API")?;
            let id = key(&api.env, &api.identifier);
            if s.apis.contains_key(&id) {
                return Err(conflict("API", &api.env, &api.identifier));
            }
            s.apis.insert(id, api.clone());
            s.bump();
            Ok(())
        })
    }

    async fn list_apis(&self) -> Result<Vec<Api>, StoreError> {
        // Keyed by (env, identifier): the SQL order already.
        Ok(self.with(|s| s.apis.values().cloned().collect()))
    }

    async fn update_api(&self, api: &Api) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.update_api_in(api)))
    }

    async fn delete_api(&self, env: &str, identifier: &str) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.delete_api_in(env, identifier)))
    }

    async fn create_client(&self, client: &Client) -> Result<(), StoreError> {
        self.with(|s| {
            s.require_env(&client.env, "client")?;
            let id = key(&client.env, &client.client_id);
            if s.clients.contains_key(&id) {
                return Err(conflict("client", &client.env, &client.client_id));
            }
            s.clients.insert(id, client.clone());
            s.bump();
            Ok(())
        })
    }

    async fn get_client(&self, env: &str, client_id: &str) -> Result<Option<Client>, StoreError> {
        Ok(self.with(|s| s.clients.get(&key(env, client_id)).cloned()))
    }

    async fn list_clients(&self, env: &str) -> Result<Vec<Client>, StoreError> {
        let mut clients: Vec<Client> = self.with(|s| {
            s.clients
                .values()
                .filter(|c| c.env == env)
                .cloned()
                .collect()
        });
        clients.sort_by(|a, b| (a.created_at, &a.client_id).cmp(&(b.created_at, &b.client_id)));
        Ok(clients)
    }

    async fn write_if_unchanged(&self, w: &Guarded) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.write_if_unchanged_in(w)))
    }

    async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.update_client_in(client)))
    }

    async fn set_client_enabled(
        &self,
        env: &str,
        client_id: &str,
        enabled: bool,
    ) -> Result<bool, StoreError> {
        // Setting the flag it already has still counts as a change, as the
        // SQL UPDATE matches the row.
        Ok(self.with(|s| {
            let Some(c) = s.clients.get_mut(&key(env, client_id)) else {
                return false;
            };
            c.enabled = enabled;
            s.bump();
            true
        }))
    }

    async fn swap_client_secrets(
        &self,
        env: &str,
        client_id: &str,
        expected: &[SecretRecord],
        new: &[SecretRecord],
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            match s.clients.get_mut(&key(env, client_id)) {
                Some(c) if c.secrets == expected => c.secrets = new.to_vec(),
                _ => return false,
            }
            s.bump();
            true
        }))
    }

    async fn revoke_token(&self, env: &str, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        self.with(|s| {
            // Idempotent: a second revocation keeps the first expiry and
            // changes nothing, so it bumps nothing.
            if let Entry::Vacant(slot) = s.revoked.entry(key(env, jti)) {
                slot.insert(expires_at);
                s.bump();
            }
        });
        Ok(())
    }

    async fn is_token_revoked(&self, env: &str, jti: &str) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.revoked.contains_key(&key(env, jti))))
    }

    async fn list_revoked_tokens(&self, now: i64) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self.with(|s| {
            s.revoked
                .iter()
                .filter(|(_, exp)| **exp >= now)
                .map(|(k, _)| k.clone())
                .collect()
        }))
    }

    async fn purge_expired(&self, now: i64) -> Result<Vec<(&'static str, u64)>, StoreError> {
        // Purging bumps nothing: no cache holds what expired.
        fn count(before: usize, after: usize) -> u64 {
            u64::try_from(before - after).unwrap_or(u64::MAX)
        }
        Ok(self.with(|s| {
            let before = s.revoked.len();
            s.revoked.retain(|_, exp| *exp >= now);
            let revoked = count(before, s.revoked.len());
            let before = s.families.len();
            s.families.retain(|_, f| f.expires_at >= now);
            let families = count(before, s.families.len());
            let before = s.refresh_jwts.len();
            s.refresh_jwts.retain(|_, r| r.expires_at >= now);
            let jwts = count(before, s.refresh_jwts.len());
            let before = s.failures.len();
            s.failures.retain(|_, (_, exp)| *exp >= now);
            let failures = count(before, s.failures.len());
            let before = s.api_keys.len();
            s.api_keys
                .retain(|_, k| k.expires_at.is_none_or(|e| e >= now));
            let api_keys = count(before, s.api_keys.len());
            let before = s.sessions.len();
            s.sessions.retain(|_, x| x.expires_at >= now);
            let sessions = count(before, s.sessions.len());
            let before = s.invitations.len();
            s.invitations.retain(|_, i| i.expires_at >= now);
            let invitations = count(before, s.invitations.len());
            let before = s.provider_sessions.len();
            s.provider_sessions.retain(|_, x| x.expires_at >= now);
            let provider_sessions = count(before, s.provider_sessions.len());
            let before = s.handovers.len();
            s.handovers.retain(|_, h| h.expires_at >= now);
            let handovers = count(before, s.handovers.len());
            let before = s.usage.len();
            let oldest = day_of(now) - KEEP_DAYS;
            s.usage.retain(|(_, _, day), _| *day >= oldest);
            let usage = count(before, s.usage.len());
            vec![
                ("revoked_tokens", revoked),
                ("refresh_families", families),
                ("refresh_jwts", jwts),
                ("auth_failures", failures),
                ("api_keys", api_keys),
                ("portal_sessions", sessions),
                ("partner_invitations", invitations),
                ("portal_handovers", handovers),
                ("provider_sessions", provider_sessions),
                ("usage", usage),
            ]
        }))
    }

    async fn insert_refresh_jwt(&self, rec: &RefreshJwtRecord) -> Result<(), StoreError> {
        // A new record: no cache holds it yet (unknown ids are not
        // remembered), so no bump.
        self.with(|s| {
            let id = key(&rec.env, &rec.jti);
            if s.refresh_jwts.contains_key(&id) {
                return Err(conflict("refresh JWT", &rec.env, &rec.jti));
            }
            s.refresh_jwts.insert(id, rec.clone());
            Ok(())
        })
    }

    async fn get_refresh_jwt(
        &self,
        env: &str,
        jti: &str,
    ) -> Result<Option<RefreshJwtRecord>, StoreError> {
        Ok(self.with(|s| s.refresh_jwts.get(&key(env, jti)).cloned()))
    }

    async fn list_refresh_jwts(&self, env: &str) -> Result<Vec<RefreshJwtRecord>, StoreError> {
        let mut recs: Vec<RefreshJwtRecord> = self.with(|s| {
            s.refresh_jwts
                .values()
                .filter(|r| r.env == env)
                .cloned()
                .collect()
        });
        recs.sort_by(|a, b| (a.created_at, &a.jti).cmp(&(b.created_at, &b.jti)));
        Ok(recs)
    }

    async fn revoke_refresh_jwt(&self, env: &str, jti: &str, now: i64) -> Result<bool, StoreError> {
        // Bumps: servers cache refresh-JWT records.
        Ok(self.with(|s| {
            match s.refresh_jwts.get_mut(&key(env, jti)) {
                Some(r) if r.revoked_at.is_none() => r.revoked_at = Some(now),
                _ => return false,
            }
            s.bump();
            true
        }))
    }

    async fn set_obligation(
        &self,
        env: &str,
        target: ObligationTarget<'_>,
        obligation: Option<&Obligation>,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            let slot = match target {
                ObligationTarget::Api(a) => s.apis.get_mut(&key(env, a)).map(|a| &mut a.obligation),
                ObligationTarget::Client(c) => {
                    s.clients.get_mut(&key(env, c)).map(|c| &mut c.obligation)
                }
            };
            let Some(slot) = slot else {
                return false;
            };
            *slot = obligation.copied();
            s.bump();
            true
        }))
    }

    async fn count_issuance(
        &self,
        env: &str,
        client_id: &str,
        window_start: i64,
    ) -> Result<u64, StoreError> {
        // Counts are read back from here each time, never cached: no bump.
        Ok(self.with(|s| {
            let entry = s
                .issuance
                .entry(key(env, client_id))
                .or_insert((window_start, 0));
            if entry.0 == window_start {
                entry.1 = entry.1.saturating_add(1);
            } else {
                *entry = (window_start, 1);
            }
            entry.1
        }))
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        // No foreign key to the client here (as in SQL).
        self.with(|s| {
            let id = key(&user.env, &user.username);
            if s.users.contains_key(&id) {
                return Err(conflict("user", &user.env, &user.username));
            }
            s.users.insert(id, user.clone());
            s.bump();
            Ok(())
        })
    }

    async fn get_user(&self, env: &str, username: &str) -> Result<Option<User>, StoreError> {
        Ok(self.with(|s| s.users.get(&key(env, username)).cloned()))
    }

    async fn find_users_folded(&self, env: &str, username: &str) -> Result<Vec<User>, StoreError> {
        Ok(self.with(|s| {
            s.users
                .values()
                .filter(|u| u.env == env && u.username.eq_ignore_ascii_case(username))
                .cloned()
                .collect()
        }))
    }

    async fn list_users(
        &self,
        env: &str,
        client_id: Option<&str>,
    ) -> Result<Vec<User>, StoreError> {
        // The SQL store reads an empty client id as "any client"; so here.
        let client_id = client_id.filter(|c| !c.is_empty());
        let mut users: Vec<User> = self.with(|s| {
            s.users
                .values()
                .filter(|u| u.env == env && client_id.is_none_or(|c| u.client_id == c))
                .cloned()
                .collect()
        });
        users.sort_by(|a, b| (a.created_at, &a.username).cmp(&(b.created_at, &b.username)));
        Ok(users)
    }

    async fn update_user(
        &self,
        user: &User,
        end_sessions: Option<i64>,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            let Some(u) = s.users.get_mut(&key(&user.env, &user.username)) else {
                return false;
            };
            u.password.clone_from(&user.password);
            u.roles.clone_from(&user.roles);
            u.enabled = user.enabled;
            if let Some(now) = end_sessions {
                for f in s.families.values_mut() {
                    if f.env == user.env && f.username == user.username && f.revoked_at.is_none() {
                        f.revoked_at = Some(now);
                    }
                }
            }
            s.bump();
            true
        }))
    }

    async fn delete_user(&self, env: &str, username: &str, now: i64) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.delete_user_in(env, username, now)))
    }

    async fn insert_refresh_family(&self, rec: &RefreshFamily) -> Result<(), StoreError> {
        // Sessions are read from the store on every refresh: no bump.
        self.with(|s| {
            let id = key(&rec.env, &rec.family);
            if s.families.contains_key(&id) {
                return Err(conflict("refresh family", &rec.env, &rec.family));
            }
            s.families.insert(id, rec.clone());
            Ok(())
        })
    }

    async fn get_refresh_family(
        &self,
        env: &str,
        family: &str,
    ) -> Result<Option<RefreshFamily>, StoreError> {
        Ok(self.with(|s| s.families.get(&key(env, family)).cloned()))
    }

    async fn rotate_refresh_family(
        &self,
        presented: &str,
        next: &RefreshFamily,
        now: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.rotate(presented, next, now)))
    }

    async fn revoke_refresh_family(
        &self,
        env: &str,
        family: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.revoke_family(env, family, now)))
    }

    async fn delete_client(
        &self,
        env: &str,
        client_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        // Its users go with it, and everything it held is revoked (a client
        // re-created under the same id must find nothing alive).
        Ok(self.with(|s| s.delete_client_in(env, client_id, now)))
    }

    async fn insert_api_key(&self, k: &ApiKey) -> Result<(), StoreError> {
        self.with(|s| {
            let id = key(&k.env, &k.id);
            if s.api_keys.contains_key(&id) {
                return Err(conflict("API key", &k.env, &k.id));
            }
            s.api_keys.insert(id, k.clone());
            s.bump();
            Ok(())
        })
    }

    async fn get_api_key(&self, env: &str, id: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(self.with(|s| s.api_keys.get(&key(env, id)).cloned()))
    }

    async fn list_api_keys(
        &self,
        env: &str,
        client_id: Option<&str>,
    ) -> Result<Vec<ApiKey>, StoreError> {
        let mut keys: Vec<ApiKey> = self.with(|s| {
            s.api_keys
                .values()
                .filter(|k| k.env == env && client_id.is_none_or(|c| k.client_id == c))
                .cloned()
                .collect()
        });
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    async fn revoke_api_key(&self, env: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            match s.api_keys.get_mut(&key(env, id)) {
                Some(k) if k.revoked_at.is_none() => k.revoked_at = Some(now),
                _ => return false,
            }
            s.bump();
            true
        }))
    }

    async fn rotate_api_key(
        &self,
        old: &ApiKey,
        until: i64,
        new: &ApiKey,
    ) -> Result<bool, StoreError> {
        self.with(|s| {
            let new_id = key(&new.env, &new.id);
            if s.api_keys.contains_key(&new_id) {
                return Err(conflict("API key", &new.env, &new.id));
            }
            match s.api_keys.get_mut(&key(&old.env, &old.id)) {
                Some(k) if k.revoked_at.is_none() && k.expires_at == old.expires_at => {
                    k.expires_at = Some(until);
                }
                _ => return Ok(false),
            }
            s.api_keys.insert(new_id, new.clone());
            s.bump();
            Ok(true)
        })
    }

    async fn insert_trusted_issuer(&self, issuer: &TrustedIssuer) -> Result<(), StoreError> {
        self.with(|s| {
            let id = key(&issuer.env, &issuer.id);
            if s.trusted.contains_key(&id) {
                return Err(conflict("trusted issuer", &issuer.env, &issuer.id));
            }
            s.trusted.insert(id, issuer.clone());
            s.bump();
            Ok(())
        })
    }

    async fn list_trusted_issuers(&self) -> Result<Vec<TrustedIssuer>, StoreError> {
        let mut all: Vec<TrustedIssuer> = self.with(|s| s.trusted.values().cloned().collect());
        all.sort_by(|a, b| (&a.env, a.created_at, &a.id).cmp(&(&b.env, b.created_at, &b.id)));
        Ok(all)
    }

    async fn delete_trusted_issuer(&self, env: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            let gone = s.trusted.remove(&key(env, id)).is_some();
            if gone {
                s.bump();
            }
            gone
        }))
    }

    async fn revoke_client_refresh_tokens(
        &self,
        env: &str,
        client_id: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        Ok(self.with(|s| {
            let mut n = 0;
            for r in s.refresh_jwts.values_mut() {
                if r.env == env && r.client_id == client_id && r.revoked_at.is_none() {
                    r.revoked_at = Some(now);
                    n += 1;
                }
            }
            s.cutoffs.insert(key(env, client_id), now);
            s.bump();
            n
        }))
    }

    async fn list_refresh_cutoffs(&self) -> Result<Vec<RefreshCutoff>, StoreError> {
        Ok(self.with(|s| {
            s.cutoffs
                .iter()
                .map(|((env, client_id), t)| RefreshCutoff {
                    env: env.clone(),
                    client_id: client_id.clone(),
                    not_before: *t,
                })
                .collect()
        }))
    }

    async fn insert_refresh_family_if_absent(
        &self,
        rec: &RefreshFamily,
    ) -> Result<bool, StoreError> {
        Ok(
            self.with(|s| match s.families.entry(key(&rec.env, &rec.family)) {
                Entry::Vacant(slot) => {
                    slot.insert(rec.clone());
                    true
                }
                Entry::Occupied(_) => false,
            }),
        )
    }

    async fn import_users(&self, users: &[User]) -> Result<(), StoreError> {
        self.with(|s| {
            let mut seen = std::collections::BTreeSet::new();
            for u in users {
                let id = key(&u.env, &u.username);
                if s.users.contains_key(&id) || !seen.insert(id) {
                    return Err(conflict("user", &u.env, &u.username));
                }
            }
            for u in users {
                s.users.insert(key(&u.env, &u.username), u.clone());
            }
            if !users.is_empty() {
                s.bump();
            }
            Ok(())
        })
    }

    async fn upgrade_user_password(
        &self,
        env: &str,
        username: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.users.get_mut(&key(env, username)) {
            Some(u) if u.password == old => {
                u.password = new.to_string();
                true
            }
            _ => false,
        }))
    }

    async fn purge_audit(&self, before: i64) -> Result<u64, StoreError> {
        Ok(self.with(|s| {
            let n = s.audit.len();
            s.audit.retain(|_, e| e.at >= before);
            u64::try_from(n - s.audit.len()).unwrap_or(u64::MAX)
        }))
    }

    async fn insert_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        // The log is read by no cache: no bump.
        self.with(|s| match s.audit.entry(entry.id.clone()) {
            Entry::Occupied(_) => Err(StoreError::Conflict(format!("audit entry {}", entry.id))),
            Entry::Vacant(v) => {
                v.insert(entry.clone());
                Ok(())
            }
        })
    }

    async fn list_audit(
        &self,
        since: i64,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self.with(|s| {
            s.audit
                .values()
                .filter(|e| e.at >= since && after.is_none_or(|a| e.id.as_str() > a))
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .cloned()
                .collect()
        }))
    }

    async fn insert_partner(&self, partner: &Partner) -> Result<(), StoreError> {
        self.with(|s| match s.partners.entry(partner.id.clone()) {
            Entry::Occupied(_) => Err(StoreError::Conflict(format!("partner '{}'", partner.id))),
            Entry::Vacant(v) => {
                v.insert(partner.clone());
                Ok(())
            }
        })
    }

    async fn get_partner(&self, id: &str) -> Result<Option<Partner>, StoreError> {
        Ok(self.with(|s| s.partners.get(id).cloned()))
    }

    async fn list_partners(&self) -> Result<Vec<Partner>, StoreError> {
        Ok(self.with(|s| s.partners.values().cloned().collect()))
    }

    async fn update_partner(&self, partner: &Partner) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.partners.get_mut(&partner.id) {
            Some(p) => {
                p.name.clone_from(&partner.name);
                p.offers.clone_from(&partner.offers);
                true
            }
            None => false,
        }))
    }

    async fn set_partner_enabled(&self, id: &str, enabled: bool) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            let Some(p) = s.partners.get_mut(id) else {
                return false;
            };
            p.enabled = enabled;
            let owned: Vec<(String, String)> = s
                .partner_clients
                .iter()
                .filter(|(_, o)| o.partner == id)
                .map(|(k, _)| k.clone())
                .collect();
            for k in owned {
                if let Some(c) = s.clients.get_mut(&k) {
                    c.enabled = enabled;
                }
            }
            if !enabled {
                s.sessions.retain(|_, x| x.partner != id);
            }
            s.bump();
            true
        }))
    }

    async fn insert_partner_client(&self, owned: &PartnerClient) -> Result<(), StoreError> {
        self.with(
            |s| match s.partner_clients.entry(key(&owned.env, &owned.client_id)) {
                Entry::Occupied(_) => Err(conflict("owned client", &owned.env, &owned.client_id)),
                Entry::Vacant(v) => {
                    v.insert(owned.clone());
                    Ok(())
                }
            },
        )
    }

    async fn list_partner_clients(&self, partner: &str) -> Result<Vec<PartnerClient>, StoreError> {
        let mut v: Vec<PartnerClient> = self.with(|s| {
            s.partner_clients
                .values()
                .filter(|o| o.partner == partner)
                .cloned()
                .collect()
        });
        v.sort_by(|a, b| {
            (&a.env, a.created_at, &a.client_id).cmp(&(&b.env, b.created_at, &b.client_id))
        });
        Ok(v)
    }

    async fn insert_invitation(&self, invitation: &Invitation) -> Result<(), StoreError> {
        self.with(|s| match s.invitations.entry(invitation.digest.clone()) {
            Entry::Occupied(_) => Err(StoreError::Conflict("invitation".to_string())),
            Entry::Vacant(v) => {
                v.insert(invitation.clone());
                Ok(())
            }
        })
    }

    async fn get_invitation(&self, digest: &str) -> Result<Option<Invitation>, StoreError> {
        Ok(self.with(|s| s.invitations.get(digest).cloned()))
    }

    async fn accept_invitation(
        &self,
        digest: &str,
        now: i64,
        account: &PartnerAccount,
    ) -> Result<bool, StoreError> {
        self.with(|s| {
            let usable = s.invitations.get(digest).is_some_and(|i| {
                i.used_at.is_none() && i.expires_at > now && i.partner == account.partner
            });
            if !usable {
                return Ok(false);
            }
            if s.accounts.contains_key(&account.login) {
                return Err(StoreError::Conflict(format!("account '{}'", account.login)));
            }
            if let Some(i) = s.invitations.get_mut(digest) {
                i.used_at = Some(now);
            }
            s.accounts.insert(account.login.clone(), account.clone());
            Ok(true)
        })
    }

    async fn get_partner_account(&self, login: &str) -> Result<Option<PartnerAccount>, StoreError> {
        Ok(self.with(|s| s.accounts.get(login).cloned()))
    }

    async fn partner_login_failed(
        &self,
        login: &str,
        now: i64,
        max_failures: u32,
        lock_secs: i64,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(a) = s.accounts.get_mut(login) {
                a.failed_attempts = a.failed_attempts.saturating_add(1);
                if a.failed_attempts >= max_failures {
                    a.failed_attempts = 0;
                    a.locked_until = Some(now.saturating_add(lock_secs));
                }
            }
        });
        Ok(())
    }

    async fn partner_login_succeeded(&self, login: &str) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(a) = s.accounts.get_mut(login) {
                a.failed_attempts = 0;
            }
        });
        Ok(())
    }

    async fn insert_portal_session(&self, session: &PortalSession) -> Result<(), StoreError> {
        self.with(|s| match s.sessions.entry(session.digest.clone()) {
            Entry::Occupied(_) => Err(StoreError::Conflict("portal session".to_string())),
            Entry::Vacant(v) => {
                v.insert(session.clone());
                Ok(())
            }
        })
    }

    async fn get_portal_session(&self, digest: &str) -> Result<Option<PortalSession>, StoreError> {
        Ok(self.with(|s| s.sessions.get(digest).cloned()))
    }

    async fn delete_portal_session(&self, digest: &str) -> Result<(), StoreError> {
        self.with(|s| s.sessions.remove(digest));
        Ok(())
    }

    async fn list_partner_accounts(
        &self,
        partner: &str,
    ) -> Result<Vec<PartnerAccount>, StoreError> {
        Ok(self.with(|s| {
            s.accounts
                .values()
                .filter(|a| a.partner == partner)
                .cloned()
                .collect()
        }))
    }

    async fn insert_package_request(&self, request: &PackageRequest) -> Result<(), StoreError> {
        self.with(|s| match s.package_requests.entry(request.id.clone()) {
            Entry::Occupied(_) => Err(StoreError::Conflict(format!(
                "package request '{}'",
                request.id
            ))),
            Entry::Vacant(v) => {
                v.insert(request.clone());
                Ok(())
            }
        })
    }

    async fn get_package_request(&self, id: &str) -> Result<Option<PackageRequest>, StoreError> {
        Ok(self.with(|s| s.package_requests.get(id).cloned()))
    }

    async fn list_package_requests(
        &self,
        partner: Option<&str>,
    ) -> Result<Vec<PackageRequest>, StoreError> {
        Ok(self.with(|s| {
            s.package_requests
                .values()
                .filter(|r| partner.is_none_or(|p| r.partner == p))
                .cloned()
                .collect()
        }))
    }

    async fn decide_package_request(
        &self,
        id: &str,
        status: RequestStatus,
        at: i64,
        by: &str,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.package_requests.get_mut(id) {
            Some(r) if r.status == RequestStatus::Pending => {
                r.status = status;
                r.decided_at = Some(at);
                r.decided_by = Some(by.to_string());
                true
            }
            _ => false,
        }))
    }

    async fn insert_provider_session(&self, session: &ProviderSession) -> Result<(), StoreError> {
        self.with(|s| {
            s.provider_sessions
                .insert(session.digest.clone(), session.clone())
        });
        Ok(())
    }

    async fn get_provider_session(
        &self,
        digest: &str,
    ) -> Result<Option<ProviderSession>, StoreError> {
        Ok(self.with(|s| s.provider_sessions.get(digest).cloned()))
    }

    async fn delete_provider_session(&self, digest: &str) -> Result<(), StoreError> {
        self.with(|s| s.provider_sessions.remove(digest));
        Ok(())
    }

    async fn put_partner_totp(&self, totp: &PartnerTotp) -> Result<(), StoreError> {
        self.with(|s| s.totps.insert(totp.login.clone(), totp.clone()));
        Ok(())
    }

    async fn get_partner_totp(&self, login: &str) -> Result<Option<PartnerTotp>, StoreError> {
        Ok(self.with(|s| s.totps.get(login).cloned()))
    }

    async fn use_partner_totp_step(
        &self,
        login: &str,
        step: i64,
        confirm: bool,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.totps.get_mut(login) {
            Some(t) if t.last_step.is_none_or(|l| l < step) => {
                t.last_step = Some(step);
                t.confirmed |= confirm;
                true
            }
            _ => false,
        }))
    }

    async fn delete_partner_totp(&self, login: &str) -> Result<(), StoreError> {
        self.with(|s| s.totps.remove(login));
        Ok(())
    }

    async fn insert_handover(&self, handover: &Handover) -> Result<(), StoreError> {
        self.with(|s| match s.handovers.entry(handover.digest.clone()) {
            Entry::Occupied(_) => Err(StoreError::Conflict("handover".to_string())),
            Entry::Vacant(v) => {
                v.insert(handover.clone());
                Ok(())
            }
        })
    }

    async fn get_handover(&self, digest: &str) -> Result<Option<Handover>, StoreError> {
        Ok(self.with(|s| s.handovers.get(digest).cloned()))
    }

    async fn take_handover(&self, digest: &str) -> Result<Option<Handover>, StoreError> {
        Ok(self.with(|s| s.handovers.remove(digest)))
    }

    async fn add_usage(&self, deltas: &[UsageDay]) -> Result<(), StoreError> {
        if self.usage_down.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("usage writes are failing".into()));
        }
        self.with(|s| {
            for d in deltas {
                let row = s
                    .usage
                    .entry((d.env.clone(), d.client_id.clone(), d.day))
                    .or_default();
                row.0 = row.0.saturating_add(d.issued);
                row.1 = row.1.saturating_add(d.errors);
                row.2 = row.2.saturating_add(d.throttled);
            }
        });
        Ok(())
    }

    async fn list_usage(
        &self,
        env: &str,
        client_id: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<UsageDay>, StoreError> {
        Ok(self.with(|s| {
            s.usage
                .range((env.to_string(), client_id.to_string(), from)..)
                .take_while(|((e, c, day), _)| e == env && c == client_id && *day <= to)
                .map(|((e, c, day), (issued, errors, throttled))| UsageDay {
                    env: e.clone(),
                    client_id: c.clone(),
                    day: *day,
                    issued: *issued,
                    errors: *errors,
                    throttled: *throttled,
                })
                .collect()
        }))
    }

    async fn get_issuance(
        &self,
        env: &str,
        client_id: &str,
    ) -> Result<Option<(i64, u64)>, StoreError> {
        Ok(self.with(|s| s.issuance.get(&key(env, client_id)).copied()))
    }
}
