//! argon2id verification with bounded work: a memory budget shared by every
//! check under way, a bounded queue in front of it, single flight for
//! identical checks, and a short-lived cache of successes.
//!
//! Why: one argon2id check holds its whole memory cost (19 MiB for the
//! parameters tollgate hashes with, more for hashes imported from elsewhere)
//! for tens of milliseconds, and anyone can make the server run one by
//! presenting a secret that is not in the generated shape. Unbounded, 64
//! connections doing that took a server from 13 MB to 4 GB. Here a check
//! first takes its memory cost, in MiB, from a semaphore sized by the budget;
//! when the budget is taken, at most `max_waiting` checks wait, each for at
//! most `max_wait`, and the rest are refused at once with
//! [`GrantError::Busy`] (503 with `Retry-After` on the wire). Generated
//! secrets are checked by HMAC and never come here, so partners using them
//! keep getting tokens during such a flood.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::PasswordHash;
use secrecy::SecretString;
use tokio::sync::{OnceCell, Semaphore};

use crate::crypto::secret::{self, Check};
use crate::error::GrantError;
use crate::metrics::Metrics;
use crate::sync::lock;
use crate::time::now;

/// How long a successful verification is remembered (seconds).
pub const VERIFIED_TTL: i64 = 60;
/// Upper bound of remembered successes before the map is reset.
const REMEMBER_MAX: usize = 100_000;
/// Memory cost assumed for a hash whose parameters cannot be read (KiB):
/// the cost of tollgate's own parameters.
const DEFAULT_COST_KIB: u32 = 19 * 1024;

/// Limits on argon2id work; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Bound {
    /// Memory all checks under way may hold together, MiB. A single hash
    /// costing more than the budget runs alone.
    pub memory_budget_mib: u32,
    /// Checks that may wait for the budget; more are refused at once.
    pub max_waiting: usize,
    /// How long a check waits for the budget before it is refused.
    pub max_wait: Duration,
}

impl Default for Argon2Bound {
    /// 64 MiB: three of tollgate's own hashes at once, which keeps two cores
    /// busy; 64 waiting for at most 2 s (a burst of logins at a cold cache
    /// queues instead of failing; a flood is refused within a bounded time).
    fn default() -> Self {
        Self {
            memory_budget_mib: 64,
            max_waiting: 64,
            max_wait: Duration::from_secs(2),
        }
    }
}

/// The verifier; one per [`crate::Tollgate`].
#[derive(Debug)]
pub(crate) struct Verifier {
    bound: Argon2Bound,
    memory: Arc<Semaphore>,
    waiting: AtomicUsize,
    /// Successful checks by keyed digest of (context, presented secret),
    /// with the Unix second they stop counting.
    verified: Mutex<HashMap<[u8; 32], i64>>,
    /// Checks under way, by the same key (single flight).
    inflight: Mutex<HashMap<[u8; 32], Arc<OnceCell<bool>>>>,
    /// Block buffers of finished checks, reused by the next ones: at most
    /// as many as run at once, so memory stays within the budget instead of
    /// piling up in the allocator's per-thread arenas.
    buffers: Arc<Mutex<Vec<Vec<argon2::Block>>>>,
}

/// Leaves the waiting count when dropped (also when the wait is cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Verifier {
    pub(crate) fn new(bound: Argon2Bound) -> Self {
        let budget = bound.memory_budget_mib.max(1);
        Self {
            bound: Argon2Bound {
                memory_budget_mib: budget,
                ..bound
            },
            memory: Arc::new(Semaphore::new(usize::try_from(budget).unwrap_or(1))),
            waiting: AtomicUsize::new(0),
            verified: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            buffers: Arc::default(),
        }
    }

    /// Forgets every remembered success (the store changed: a secret may
    /// have been rotated out, a password changed).
    pub(crate) fn clear(&self) {
        lock(&self.verified).clear();
    }

    /// Checks `presented` against argon2id hashes `phcs` (a dummy when
    /// empty, so the cost is the same), off the async executor and within
    /// the bound. A success is remembered under `cache_key` until `expiry`
    /// (at most [`VERIFIED_TTL`] from now).
    pub(crate) async fn check(
        &self,
        metrics: &Metrics,
        cache: &'static str,
        cache_key: [u8; 32],
        presented: &SecretString,
        phcs: Vec<(usize, String)>,
        expiry: i64,
    ) -> Result<bool, GrantError> {
        let t = now();
        let cached = lock(&self.verified)
            .get(&cache_key)
            .is_some_and(|exp| t < *exp);
        metrics.cache_event(cache, if cached { "hit" } else { "miss" });
        if cached {
            return Ok(true);
        }
        // Single flight: identical checks arriving together (a client's or
        // user's burst at a cold cache) share one computation.
        let cell = lock(&self.inflight).entry(cache_key).or_default().clone();
        let result = cell
            .get_or_try_init(|| self.compute(metrics, cache, presented.clone(), phcs))
            .await
            .copied();
        {
            let mut m = lock(&self.inflight);
            if m.get(&cache_key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                m.remove(&cache_key);
            }
        }
        let ok = result?;
        if ok {
            let mut v = lock(&self.verified);
            if v.len() >= REMEMBER_MAX {
                v.clear();
            }
            v.insert(cache_key, expiry.min(t + VERIFIED_TTL));
        }
        Ok(ok)
    }

    /// Runs `work` (a bcrypt check, an argon2id re-hash: password work that
    /// is not an argon2id check) off the executor under the same bound,
    /// taking `cost_mib` of the budget while it runs.
    pub(crate) async fn run_bounded<T: Send + 'static>(
        &self,
        metrics: &Metrics,
        cache: &'static str,
        cost_mib: u32,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, GrantError> {
        let cost = cost_mib.clamp(1, self.bound.memory_budget_mib);
        let permit = self.permit(metrics, cache, cost).await?;
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await
        .map_err(|_| GrantError::Unavailable)
    }

    /// `cost` MiB of the budget, waiting within the bound.
    async fn permit(
        &self,
        metrics: &Metrics,
        cache: &'static str,
        cost: u32,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, GrantError> {
        Ok(
            match Arc::clone(&self.memory).try_acquire_many_owned(cost) {
                Ok(p) => p,
                Err(_) => {
                    if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.bound.max_waiting {
                        self.waiting.fetch_sub(1, Ordering::AcqRel);
                        return Err(refuse(metrics, cache, "queue_full"));
                    }
                    let _waiting = Waiting(&self.waiting);
                    let acquire = Arc::clone(&self.memory).acquire_many_owned(cost);
                    match tokio::time::timeout(self.bound.max_wait, acquire).await {
                        Ok(Ok(p)) => p,
                        Ok(Err(_)) => return Err(GrantError::Unavailable),
                        Err(_) => return Err(refuse(metrics, cache, "wait_timeout")),
                    }
                }
            },
        )
    }

    /// One computation, once its memory cost is granted.
    async fn compute(
        &self,
        metrics: &Metrics,
        cache: &'static str,
        presented: SecretString,
        phcs: Vec<(usize, String)>,
    ) -> Result<bool, GrantError> {
        let cost = self.cost_mib(&phcs);
        let permit = self.permit(metrics, cache, cost).await?;
        metrics.count(
            "tollgate_argon2_verifications_total",
            "argon2id verifications computed (cache misses that were not shared)",
            &[("cache", cache)],
            1,
        );
        let buffers = Arc::clone(&self.buffers);
        let standard = usize::try_from(DEFAULT_COST_KIB).unwrap_or(usize::MAX);
        tokio::task::spawn_blocking(move || {
            let mut memory = lock(&buffers).pop().unwrap_or_default();
            let ok = secret::check_argon2_in(&presented, &phcs, &mut memory) != Check::NoMatch;
            // A buffer grown for an unusually costly imported hash is given
            // back rather than kept.
            if memory.len() <= standard {
                lock(&buffers).push(memory);
            }
            drop(permit);
            ok
        })
        .await
        .map_err(|_| GrantError::Unavailable)
    }

    /// MiB of memory the costliest of `phcs` needs (they run one after the
    /// other), at least 1 and at most the whole budget.
    fn cost_mib(&self, phcs: &[(usize, String)]) -> u32 {
        let kib = phcs
            .iter()
            .map(|(_, phc)| {
                PasswordHash::new(phc)
                    .ok()
                    .and_then(|h| h.params.get_decimal("m"))
                    .unwrap_or(DEFAULT_COST_KIB)
            })
            .max()
            .unwrap_or(DEFAULT_COST_KIB);
        kib.div_ceil(1024).clamp(1, self.bound.memory_budget_mib)
    }
}

fn refuse(metrics: &Metrics, cache: &'static str, why: &'static str) -> GrantError {
    metrics.count(
        "tollgate_argon2_refused_total",
        "argon2id checks refused because the memory budget was taken (503 + Retry-After)",
        &[("cache", cache), ("reason", why)],
        1,
    );
    GrantError::Busy
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn phc() -> Vec<(usize, String)> {
        vec![(0, secret::hash_argon2(b"right").unwrap())]
    }

    #[tokio::test]
    async fn a_check_verifies_and_remembers_a_success() {
        let v = Verifier::new(Argon2Bound::default());
        let m = Metrics::default();
        let key = [1u8; 32];
        let right = SecretString::from("right");
        assert!(
            v.check(&m, "t", key, &right, phc(), now() + 60)
                .await
                .unwrap()
        );
        // Remembered: an empty hash list would fail, the cache answers.
        assert!(
            v.check(&m, "t", key, &right, vec![], now() + 60)
                .await
                .unwrap()
        );
        let wrong = SecretString::from("wrong");
        assert!(
            !v.check(&m, "t", [2u8; 32], &wrong, phc(), now() + 60)
                .await
                .unwrap()
        );
        v.clear();
        assert!(
            !v.check(&m, "t", key, &right, vec![], now() + 60)
                .await
                .unwrap()
        );
    }

    #[test]
    fn the_cost_is_read_from_the_hash_and_capped_by_the_budget() {
        let v = Verifier::new(Argon2Bound {
            memory_budget_mib: 40,
            ..Argon2Bound::default()
        });
        assert_eq!(v.cost_mib(&phc()), 19);
        let big = "$argon2id$v=19$m=262144,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_string();
        assert_eq!(v.cost_mib(&[(0, big)]), 40, "a 256 MiB hash runs alone");
        assert_eq!(
            v.cost_mib(&[]),
            19,
            "the dummy costs what a real hash costs"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_password_work_shares_the_same_bound() {
        // Room for one 19 MiB job at a time, nobody may wait: while a
        // bcrypt-like job runs, another is refused, not run.
        let v = Arc::new(Verifier::new(Argon2Bound {
            memory_budget_mib: 19,
            max_waiting: 0,
            max_wait: Duration::from_millis(1),
        }));
        let m = Arc::new(Metrics::default());
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let first = {
            let (v, m) = (v.clone(), m.clone());
            tokio::spawn(async move {
                v.run_bounded(&m, "t", 19, move || {
                    started_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                    7
                })
                .await
            })
        };
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        let second = v.run_bounded(&m, "t", 19, || 8).await;
        assert!(matches!(second, Err(GrantError::Busy)), "{second:?}");
        release_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 7);
        assert_eq!(v.run_bounded(&m, "t", 19, || 9).await.unwrap(), 9);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn past_the_budget_and_the_queue_checks_are_refused_not_run() {
        // Room for one check at a time, nobody may wait.
        let v = Arc::new(Verifier::new(Argon2Bound {
            memory_budget_mib: 19,
            max_waiting: 0,
            max_wait: Duration::from_millis(1),
        }));
        let m = Arc::new(Metrics::default());
        let hashes = phc();
        let tasks: Vec<_> = (0u8..8)
            .map(|i| {
                let (v, m, hashes) = (v.clone(), m.clone(), hashes.clone());
                tokio::spawn(async move {
                    let s = SecretString::from(format!("wrong-{i}"));
                    v.check(&m, "t", [i; 32], &s, hashes, now() + 60).await
                })
            })
            .collect();
        let mut busy = 0;
        let mut ran = 0;
        for t in tasks {
            match t.await.unwrap() {
                Err(GrantError::Busy) => busy += 1,
                Ok(false) => ran += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(ran >= 1, "the first check runs");
        assert!(
            busy >= 1,
            "eight at once with room for one: some are refused"
        );
        assert!(
            m.render(&[]).contains("tollgate_argon2_refused_total"),
            "refusals are counted"
        );
    }
}
