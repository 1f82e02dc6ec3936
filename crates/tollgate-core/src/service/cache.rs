//! The in-memory caches in front of the store, and the read-through rule
//! they share. Every cache is emptied when the store's revision moves
//! ([`Caches::clear_all`]), so a change made anywhere reaches every instance
//! within a sync.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use crate::error::{GrantError, StoreError};
use crate::metrics::Metrics;
use crate::model::{ApiKey, Client, RefreshFamily, RefreshJwtRecord, User};
use crate::service::requests::Issued;
use crate::sync::{lock, read, write};

/// Upper bound of entries in one cache before it is reset.
pub(crate) const CACHE_MAX: usize = 100_000;

/// A cache of store rows by (environment, name); `None` remembers a row
/// that does not exist.
pub(crate) type Cache<T> = HashMap<(String, String), Option<Arc<T>>>;

/// Every cache of one service.
#[derive(Debug, Default)]
pub(crate) struct Caches {
    /// Clients by (environment, client id).
    pub(crate) clients: RwLock<Cache<Client>>,
    /// Users by (environment, username).
    pub(crate) users: RwLock<Cache<User>>,
    /// Refresh-JWT records by (environment, jti); they change only by
    /// revocation, which bumps the revision. Unknown ids are not remembered.
    pub(crate) refresh_jwts: RwLock<Cache<RefreshJwtRecord>>,
    /// Refresh families read under the reuse policy (where only a
    /// revocation, which bumps the revision, changes them); a rotation or a
    /// logout here drops its entry at once.
    pub(crate) families: RwLock<Cache<RefreshFamily>>,
    /// Whether an incumbent's token id is on the deny list (`Some` when it
    /// is); revocations bump the revision, which empties this.
    pub(crate) foreign_denied: RwLock<Cache<()>>,
    /// API keys by (environment, id), unknown ids remembered (a flood of
    /// made-up keys costs the store one read each at most once per sync);
    /// revocations and rotations bump the revision, which empties this.
    pub(crate) api_keys: RwLock<Cache<ApiKey>>,
    /// Tokens handed out again under [`crate::model::Obligation::Reuse`],
    /// by everything that shapes a token. Per instance.
    pub(crate) reuse: Mutex<HashMap<String, Issued>>,
}

impl Caches {
    /// Empties every cache.
    pub(crate) fn clear_all(&self) {
        write(&self.clients).clear();
        write(&self.users).clear();
        write(&self.refresh_jwts).clear();
        write(&self.families).clear();
        write(&self.foreign_denied).clear();
        write(&self.api_keys).clear();
        lock(&self.reuse).clear();
    }
}

/// A read-through lookup keyed by (environment, name): a hit costs no store
/// round trip; a miss runs `load` (timed as store op `op`) and remembers the
/// result, an absent row only when `remember_missing`.
pub(crate) async fn read_through<T, F, Fut>(
    metrics: &Metrics,
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
        metrics.cache_event(name, "hit");
        return Ok(hit);
    }
    metrics.cache_event(name, "miss");
    let started = std::time::Instant::now();
    let loaded = load().await;
    metrics.store_timing(op, started);
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
