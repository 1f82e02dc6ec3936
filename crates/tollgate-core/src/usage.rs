//! Usage per client and UTC day (issue 13 §2: what a partner sees in the
//! portal): tokens issued, errors and 429s. A leaf: the records the store
//! keeps, the days they are counted by, and [`Counters`], the in-memory
//! tally the hot path adds to.
//!
//! The hot path never touches the store for usage: a request costs one
//! clock read, one hashed lookup under a read lock (no allocation once its
//! key has been seen) and one atomic add. A background task
//! (`Tollgate::flush_usage`) takes the deltas every `usage_flush_interval`
//! and adds them to the store with an add-upsert, so several instances over
//! one database add up; a failed flush puts the deltas back.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::sync::{read, write};

/// Seconds in a (UTC) day.
pub const DAY: i64 = 86_400;

/// How many days of usage the purge keeps (older days are deleted).
pub const KEEP_DAYS: i64 = 400;

/// One client's usage on one UTC day, or a delta to add to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageDay {
    /// The environment.
    pub env: String,
    /// The client.
    pub client_id: String,
    /// Days since 1970-01-01 (UTC), see [`day_of`].
    pub day: i64,
    /// Access tokens handed out (a reused token counts, it answered a call).
    pub issued: u64,
    /// Token requests naming the client that were refused, but for 429s.
    pub errors: u64,
    /// Token requests naming the client refused with 429: its issuance
    /// limit, or a lock after repeated failed authentications.
    pub throttled: u64,
}

/// What one refused or answered token request counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageKind {
    /// A token was handed out.
    Issued,
    /// Refused (bad secret, disabled, bad audience or scope, …).
    Error,
    /// Refused with 429.
    Throttled,
}

/// The UTC day of Unix second `t`.
pub fn day_of(t: i64) -> i64 {
    t.div_euclid(DAY)
}

/// `YYYY-MM-DD` of a day number.
pub fn day_string(day: i64) -> String {
    let mut s = crate::time::rfc3339(day.saturating_mul(DAY));
    s.truncate(10);
    s
}

/// The day number of `YYYY-MM-DD`, if it is a real date.
pub fn parse_day(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || d < 1 {
        return None;
    }
    // Days-from-civil (Howard Hinnant's algorithm), proleptic Gregorian.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let day = era * 146_097 + doe - 719_468;
    // A day past the month's end (2026-02-30) comes back as another date.
    (day_string(day) == s).then_some(day)
}

/// A tally's key: (environment, client, day). Looked up by borrowed parts
/// ([`KeyView`]) so that a key seen before costs no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    env: String,
    client: String,
    day: i64,
}

/// The parts of a key, owned or borrowed: what the map hashes and compares.
trait KeyView {
    fn parts(&self) -> (&str, &str, i64);
}

impl KeyView for Key {
    fn parts(&self) -> (&str, &str, i64) {
        (&self.env, &self.client, self.day)
    }
}

impl KeyView for (&str, &str, i64) {
    fn parts(&self) -> (&str, &str, i64) {
        (self.0, self.1, self.2)
    }
}

// `Key` hashes as its parts do, so a `(&str, &str, i64)` finds it.
impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.parts().hash(h);
    }
}

impl<'a> Borrow<dyn KeyView + 'a> for Key {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

impl Hash for dyn KeyView + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.parts().hash(h);
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn KeyView + '_ {}

/// The three counts of one key, added to under the map's read lock.
#[derive(Debug, Default)]
struct Slot {
    issued: AtomicU64,
    errors: AtomicU64,
    throttled: AtomicU64,
}

impl Slot {
    fn counter(&self, kind: UsageKind) -> &AtomicU64 {
        match kind {
            UsageKind::Issued => &self.issued,
            UsageKind::Error => &self.errors,
            UsageKind::Throttled => &self.throttled,
        }
    }
}

/// Upper bound of keys held in memory. Only known clients are counted, and
/// a flush forgets the past days' keys, so this is a guard, not a limit one
/// meets: past it a new key's counts are dropped (and logged by the caller).
const KEYS_MAX: usize = 200_000;

/// The in-memory tally of usage not yet flushed to the store.
#[derive(Debug, Default)]
pub struct Counters {
    map: RwLock<HashMap<Key, Slot>>,
}

impl Counters {
    /// Counts one request of `kind` for `client` in `env` on `day`. Returns
    /// false when the tally is full and the count was dropped.
    pub fn add(&self, env: &str, client: &str, day: i64, kind: UsageKind) -> bool {
        {
            let map = read(&self.map);
            let view: &dyn KeyView = &(env, client, day);
            if let Some(slot) = map.get(view) {
                // Relaxed: a flush takes the counts under the write lock's
                // exclusion or with a swap; no other memory depends on them.
                slot.counter(kind).fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
        let mut map = write(&self.map);
        if map.len() >= KEYS_MAX {
            return false;
        }
        let slot = map
            .entry(Key {
                env: env.to_string(),
                client: client.to_string(),
                day,
            })
            .or_default();
        slot.counter(kind).fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Takes every non-zero count (the counters go back to zero) and
    /// forgets keys of days before `today` that had nothing to take.
    pub fn take(&self, today: i64) -> Vec<UsageDay> {
        let mut out = Vec::new();
        let mut stale = false;
        {
            let map = read(&self.map);
            for (k, slot) in map.iter() {
                let d = UsageDay {
                    env: k.env.clone(),
                    client_id: k.client.clone(),
                    day: k.day,
                    issued: slot.issued.swap(0, Ordering::Relaxed),
                    errors: slot.errors.swap(0, Ordering::Relaxed),
                    throttled: slot.throttled.swap(0, Ordering::Relaxed),
                };
                if d.issued == 0 && d.errors == 0 && d.throttled == 0 {
                    stale |= k.day < today;
                } else {
                    out.push(d);
                }
            }
        }
        if stale {
            write(&self.map).retain(|k, slot| {
                k.day >= today
                    || slot.issued.load(Ordering::Relaxed) != 0
                    || slot.errors.load(Ordering::Relaxed) != 0
                    || slot.throttled.load(Ordering::Relaxed) != 0
            });
        }
        out
    }

    /// Puts back deltas a flush could not write, so the next one carries them.
    pub fn restore(&self, deltas: &[UsageDay]) {
        let mut map = write(&self.map);
        for d in deltas {
            let slot = map
                .entry(Key {
                    env: d.env.clone(),
                    client: d.client_id.clone(),
                    day: d.day,
                })
                .or_default();
            slot.issued.fetch_add(d.issued, Ordering::Relaxed);
            slot.errors.fetch_add(d.errors, Ordering::Relaxed);
            slot.throttled.fetch_add(d.throttled, Ordering::Relaxed);
        }
    }

    /// How many keys are held (for tests and metrics).
    pub fn keys(&self) -> usize {
        read(&self.map).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_format_and_parse_both_ways() {
        assert_eq!(day_string(0), "1970-01-01");
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2026-12-03"), Some(day_of(1_796_256_000)));
        assert_eq!(day_string(day_of(1_796_256_000)), "2026-12-03");
        assert_eq!(
            parse_day("2024-02-29").map(day_string).as_deref(),
            Some("2024-02-29")
        );
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "2026-1-01",
            "x026-01-01",
            "",
            "2026-01-00",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn counts_per_key_and_kind_are_taken_once_and_restored() {
        let c = Counters::default();
        c.add("default", "a", 10, UsageKind::Issued);
        c.add("default", "a", 10, UsageKind::Issued);
        c.add("default", "a", 10, UsageKind::Error);
        c.add("default", "a", 11, UsageKind::Throttled);
        c.add("other", "a", 10, UsageKind::Issued);
        let mut taken = c.take(11);
        taken.sort_by(|x, y| (&x.env, x.day).cmp(&(&y.env, y.day)));
        let counts: Vec<(&str, i64, u64, u64, u64)> = taken
            .iter()
            .map(|d| (d.env.as_str(), d.day, d.issued, d.errors, d.throttled))
            .collect();
        assert_eq!(
            counts,
            [
                ("default", 10, 2, 1, 0),
                ("default", 11, 0, 0, 1),
                ("other", 10, 1, 0, 0)
            ]
        );
        assert!(c.take(11).is_empty(), "taken once");
        // Yesterday's keys that had nothing left are forgotten.
        assert_eq!(c.keys(), 1);
        c.restore(&taken);
        let again: u64 = c
            .take(11)
            .iter()
            .map(|d| d.issued + d.errors + d.throttled)
            .sum();
        assert_eq!(again, 5, "restored deltas come back whole");
    }
}
