//! Key rotation, as a schedule derived from timestamps.
//!
//! A key is *next* until its `activates_at`, *active* from then until the
//! next key activates, and *retired* after that. The signing key is the
//! newest key already active, so a rotation takes effect by time alone, with
//! no job flipping states. A new key is published in the JWKS from its
//! creation (verifiers that cache the JWKS learn it during the publication
//! delay); a retired key stays published until every token it can have
//! signed has expired (`retired_at + max token lifetime + leeway`).

use crate::model::{KeyState, SigningKeyRecord};

/// Seconds a retired key stays published beyond the longest token lifetime.
pub const RETIRE_LEEWAY: i64 = 60;

/// One key's place in the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// Key id.
    pub kid: String,
    /// From when it signs.
    pub activates_at: i64,
    /// When the next key took over (None while it is the newest).
    pub retired_at: Option<i64>,
    /// Until when it is published (None while it is not retired).
    pub publish_until: Option<i64>,
}

impl Scheduled {
    /// Its state at `now`.
    pub fn state(&self, now: i64) -> KeyState {
        if now < self.activates_at {
            KeyState::Next
        } else if self.retired_at.is_some_and(|r| now >= r) {
            KeyState::Retired
        } else {
            KeyState::Active
        }
    }

    /// Whether it belongs in the JWKS at `now`.
    pub fn published(&self, now: i64) -> bool {
        self.publish_until.is_none_or(|u| now < u)
    }
}

/// The longest access-token lifetime an environment can issue, from its
/// APIs' lifetimes, its clients' overrides and the longest lifetime its
/// contracts' settings give (`env_longest`, when known; else the API
/// default when it has nothing else): how long a retired key must stay
/// published.
pub fn max_token_lifetime(
    api_lifetimes: impl IntoIterator<Item = u64>,
    client_overrides: impl IntoIterator<Item = u64>,
    env_longest: Option<u64>,
) -> i64 {
    let max = api_lifetimes
        .into_iter()
        .chain(client_overrides)
        .chain(env_longest)
        .max()
        .unwrap_or(crate::model::DEFAULT_TOKEN_LIFETIME);
    i64::try_from(max).unwrap_or(i64::MAX)
}

/// The schedule of one environment's keys, oldest first. `max_lifetime` is
/// the longest access-token lifetime the environment can issue.
pub fn schedule(keys: &[&SigningKeyRecord], max_lifetime: i64) -> Vec<Scheduled> {
    let mut sorted: Vec<&SigningKeyRecord> = keys.to_vec();
    sorted.sort_by(|a, b| {
        (a.activates_at, a.created_at, &a.kid).cmp(&(b.activates_at, b.created_at, &b.kid))
    });
    let mut out: Vec<Scheduled> = Vec::with_capacity(sorted.len());
    for (i, k) in sorted.iter().enumerate() {
        let retired_at = sorted.get(i + 1).map(|n| n.activates_at);
        out.push(Scheduled {
            kid: k.kid.clone(),
            activates_at: k.activates_at,
            retired_at,
            publish_until: retired_at
                .map(|r| r.saturating_add(max_lifetime).saturating_add(RETIRE_LEEWAY)),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Alg;

    fn rec(kid: &str, created: i64, activates: i64) -> SigningKeyRecord {
        SigningKeyRecord {
            env: "default".into(),
            kid: kid.into(),
            alg: Alg::ES256,
            public_jwk: String::new(),
            private_sealed: String::new(),
            created_at: created,
            activates_at: activates,
        }
    }

    #[test]
    fn longest_lifetime_counts_client_overrides_and_defaults() {
        assert_eq!(max_token_lifetime([600, 3600], [90], None), 3600);
        assert_eq!(max_token_lifetime([600], [7200], None), 7200);
        // A contract's setting (bearer-exchange: a day) counts too.
        assert_eq!(max_token_lifetime([600], [90], Some(86_400)), 86_400);
        // No API: the client overrides alone, not the default on top.
        assert_eq!(max_token_lifetime([], [90], None), 90);
        assert_eq!(
            max_token_lifetime([], [], None),
            i64::try_from(crate::model::DEFAULT_TOKEN_LIFETIME).unwrap_or(0)
        );
    }

    #[test]
    fn rotation_timeline() {
        let (a, b) = (rec("a", 0, 0), rec("b", 1000, 1600));
        let s = schedule(&[&b, &a], 600);
        assert_eq!(s[0].kid, "a");
        // before b activates: a signs, b is next and already published
        assert_eq!(
            (s[0].state(1500), s[1].state(1500)),
            (KeyState::Active, KeyState::Next)
        );
        assert!(s[1].published(1000));
        // after: b signs, a is retired but published for a token's lifetime
        assert_eq!(
            (s[0].state(1600), s[1].state(1600)),
            (KeyState::Retired, KeyState::Active)
        );
        assert!(s[0].published(1600 + 600 + RETIRE_LEEWAY - 1));
        assert!(!s[0].published(1600 + 600 + RETIRE_LEEWAY));
        assert!(s[1].published(i64::MAX));
    }
}
