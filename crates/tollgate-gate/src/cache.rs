//! The decision cache: what the gate decided for one token on one route.
//!
//! The key is the token (as a SHA-256 digest together with the environment,
//! so tokens are not kept) *and* the route's index in the policy: a token
//! allowed on a route needing little is looked up afresh on a route needing
//! more (the opposite of caching identity alone, Oathkeeper's issue #763).
//! An entry lives until the token's expiry (plus leeway) at most; the whole
//! cache is dropped when the key source's generation moves (a revocation, a
//! key rotation) or the policy is replaced. Bounded: when full, expired
//! entries go first, then everything (rare, and only costs recomputation).

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// The cache key: digest of (environment, token) and the route index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    digest: [u8; 32],
    route: usize,
}

impl Key {
    /// The key of `token` in `env` on route `route`.
    pub fn new(env: &str, token: &str, route: usize) -> Self {
        let mut h = Sha256::new();
        h.update(env.as_bytes());
        h.update([0]);
        h.update(token.as_bytes());
        Self {
            digest: h.finalize().into(),
            route,
        }
    }
}

#[derive(Debug)]
struct Inner<D> {
    generation: Option<i64>,
    entries: HashMap<Key, (D, i64)>,
}

/// Bounded decisions (see the module doc); generic over what a decision
/// is, so that the cache knows nothing of the gate.
#[derive(Debug)]
pub struct DecisionCache<D> {
    capacity: usize,
    inner: Mutex<Inner<D>>,
}

impl<D: Clone> DecisionCache<D> {
    /// A cache of at most `capacity` decisions (0: none cached).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner {
                generation: None,
                entries: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<D>> {
        // A panic while holding the lock leaves a map that is still
        // consistent (every operation is one insert or clear).
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The decision cached for `key` under `generation` and still valid at
    /// `now`.
    pub fn get(&self, key: &Key, generation: i64, now: i64) -> Option<D> {
        let mut inner = self.lock();
        if inner.generation != Some(generation) {
            inner.entries.clear();
            inner.generation = Some(generation);
            return None;
        }
        match inner.entries.get(key) {
            Some((d, until)) if now < *until => Some(d.clone()),
            Some(_) => {
                inner.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers `decision` for `key` until `until` (exclusive), if it was
    /// made under the current `generation`.
    pub fn put(&self, key: Key, generation: i64, decision: D, until: i64, now: i64) {
        if self.capacity == 0 || until <= now {
            return;
        }
        let mut inner = self.lock();
        if inner.generation != Some(generation) {
            // Made under another generation than the cache now holds: it
            // may be stale (a revocation landed while deciding).
            return;
        }
        if inner.entries.len() >= self.capacity && !inner.entries.contains_key(&key) {
            inner.entries.retain(|_, (_, u)| now < *u);
            if inner.entries.len() >= self.capacity {
                inner.entries.clear();
            }
        }
        inner.entries.insert(key, (decision, until));
    }

    /// Drops every decision (the policy changed).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.generation = None;
    }

    /// How many decisions are held.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
