//! Guessing is slow and visible: failed authentications are counted per
//! account and per source address in the store (so the count holds across
//! instances), and past a threshold the key is locked for an exponentially
//! growing time (1 s, 2 s, 4 s, … up to `max_lock`). A locked key is refused
//! before any password work with `GrantError::Throttled` (429 +
//! `Retry-After` in the contract's format).
//!
//! Trade-offs, and why the defaults are what they are:
//! - An account lock can be triggered by anyone who knows the account name.
//!   So account locks apply only where guessing is possible: user passwords
//!   and PINs, and clients holding an imported (argon2id) secret. A client
//!   whose secrets are all generated (256 bits) is never locked: nobody can
//!   guess such a secret, and locking it would only hand attackers a way to
//!   cut a partner off. Its failures still count towards the source's.
//! - A source lock stops every attempt from one address; behind a proxy
//!   that is every client's address, so set `throttle_source_failures = 0`
//!   there (tollgate does not trust `X-Forwarded-For`).
//! - Each instance remembers the locks it has seen; the store's counts are
//!   global, so once an account passes the threshold, every instance locks
//!   it at its next failure there.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::sync::lock;

/// Thresholds and timings of throttling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures of one account within a window before it is locked (0: off).
    pub account_failures: u64,
    /// Failures from one source address within a window before it is
    /// locked (0: off).
    pub source_failures: u64,
    /// Seconds of quiet after which failures are forgotten.
    pub window: u64,
    /// The longest lock, seconds.
    pub max_lock: u64,
}

impl Default for ThrottlePolicy {
    /// 5 failures of an account, 50 from an address, in a 15-minute
    /// window; locks up to 15 minutes.
    fn default() -> Self {
        Self {
            account_failures: 5,
            source_failures: 50,
            window: 900,
            max_lock: 900,
        }
    }
}

/// What is being throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A user or a client.
    Account,
    /// A source address.
    Source,
}

impl Kind {
    /// For metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Source => "source",
        }
    }
}

/// The locks this instance knows of, by key.
#[derive(Debug)]
pub(crate) struct Throttle {
    pub(crate) policy: ThrottlePolicy,
    locks: Mutex<HashMap<String, i64>>,
}

/// Upper bound of remembered locks before the map is reset (it is only
/// memory of what the store knows).
const LOCKS_MAX: usize = 100_000;

impl Throttle {
    pub(crate) fn new(policy: ThrottlePolicy) -> Self {
        Self {
            policy,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The threshold for `kind`; 0 turns it off.
    pub(crate) fn threshold(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Account => self.policy.account_failures,
            Kind::Source => self.policy.source_failures,
        }
    }

    /// Seconds until `key` may try again, if it is locked now. Time is in
    /// whole seconds, so a lock of `n` s covers the second it began in and
    /// the `n` after it: at least `n` full seconds.
    pub(crate) fn locked(&self, key: &str, now: i64) -> Option<u64> {
        let until = lock(&self.locks).get(key).copied()?;
        u64::try_from(until - now + 1).ok().filter(|s| *s > 0)
    }

    /// After the `failures`th failure of `key`: locks it when past the
    /// threshold and returns for how long (seconds).
    pub(crate) fn failed(&self, kind: Kind, key: &str, failures: u64, now: i64) -> Option<u64> {
        let threshold = self.threshold(kind);
        if threshold == 0 || failures < threshold {
            return None;
        }
        let doublings = u32::try_from(failures - threshold)
            .unwrap_or(u32::MAX)
            .min(30);
        let secs = (1u64 << doublings).min(self.policy.max_lock.max(1));
        let mut locks = lock(&self.locks);
        if locks.len() >= LOCKS_MAX {
            locks.clear();
        }
        locks.insert(
            key.to_string(),
            now + i64::try_from(secs).unwrap_or(i64::MAX),
        );
        Some(secs)
    }

    /// Whether this instance has seen failures of `key` (then a success
    /// clears them in the store).
    pub(crate) fn forget(&self, key: &str) -> bool {
        lock(&self.locks).remove(key).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_grow_exponentially_from_the_threshold_up_to_the_cap() {
        let t = Throttle::new(ThrottlePolicy {
            account_failures: 3,
            source_failures: 0,
            window: 900,
            max_lock: 10,
        });
        assert_eq!(t.failed(Kind::Account, "a", 2, 100), None);
        assert_eq!(t.locked("a", 100), None);
        assert_eq!(t.failed(Kind::Account, "a", 3, 100), Some(1));
        assert_eq!(t.locked("a", 100), Some(2), "a whole second at least");
        assert_eq!(t.locked("a", 101), Some(1));
        assert_eq!(t.locked("a", 102), None, "over");
        assert_eq!(t.failed(Kind::Account, "a", 4, 101), Some(2));
        assert_eq!(t.failed(Kind::Account, "a", 6, 101), Some(8));
        assert_eq!(t.failed(Kind::Account, "a", 7, 101), Some(10), "capped");
        assert_eq!(t.failed(Kind::Account, "a", 99, 101), Some(10));
        // Sources are off here.
        assert_eq!(t.failed(Kind::Source, "s", 1_000, 101), None);
        assert!(t.forget("a"));
        assert!(!t.forget("a"));
        assert_eq!(t.locked("a", 101), None);
    }
}
