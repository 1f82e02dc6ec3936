//! How a source behaves, the same names for every contract (and in the
//! Python package): when to refresh, the margin, retries, the HTTP client,
//! the refresh-token store and the shared cache.

use std::sync::Arc;
use std::time::Duration;

use crate::store::RefreshStore;

/// Retries of the token request itself.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// First backoff (doubled each time, capped, with full jitter).
    pub base_delay: Duration,
    /// Longest backoff.
    pub max_delay: Duration,
    /// Longest `Retry-After` (429/503) waited out; a longer one is
    /// reported as [`crate::Error::RateLimited`] at once.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry `n` (1 = the first retry): full jitter over
    /// `base * 2^(n-1)`, capped at `max_delay`, never below half of it so
    /// a burst of failures cannot retry at once.
    pub fn backoff(&self, n: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX));
        let capped = exp.min(self.max_delay);
        capped.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// A source's behaviour. `Options::default()` suits most partners.
#[derive(Clone)]
pub struct Options {
    /// Refresh once this fraction of the lifetime has passed (0.75).
    pub refresh_at: f64,
    /// Up to this fraction of the lifetime earlier, at random (0.05), so a
    /// fleet started together does not refresh together.
    pub jitter: f64,
    /// Never hand out a token with less than this left (30 s); the
    /// refresh happens no later than this before expiry.
    pub margin: Duration,
    /// Retries of the token request.
    pub retry: RetryPolicy,
    /// Timeout of one token request (10 s).
    pub request_timeout: Duration,
    /// The HTTP client (bring your own for TLS settings or a proxy).
    pub http: Option<reqwest::Client>,
    /// Where rotated refresh tokens are kept (default: [`crate::FileStore`]
    /// in the user's state directory).
    pub store: Option<Arc<dyn RefreshStore>>,
    /// Log in again when the refresh token is dead, where the contract
    /// can (true).
    pub relogin: bool,
    /// A cache shared with other sources (default: the source's own).
    pub cache: Option<crate::TokenCache>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            refresh_at: 0.75,
            jitter: 0.05,
            margin: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(10),
            http: None,
            store: None,
            relogin: true,
            cache: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("refresh_at", &self.refresh_at)
            .field("jitter", &self.jitter)
            .field("margin", &self.margin)
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .field("relogin", &self.relogin)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Sets [`Options::margin`].
    pub fn margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Sets [`Options::refresh_at`] and [`Options::jitter`].
    pub fn refresh_at(mut self, fraction: f64, jitter: f64) -> Self {
        self.refresh_at = fraction;
        self.jitter = jitter;
        self
    }

    /// Sets [`Options::store`].
    pub fn store(mut self, store: Arc<dyn RefreshStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Sets [`Options::http`].
    pub fn http(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Sets [`Options::retry`].
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets [`Options::relogin`].
    pub fn relogin(mut self, relogin: bool) -> Self {
        self.relogin = relogin;
        self
    }

    /// Sets [`Options::cache`].
    pub fn cache(mut self, cache: crate::TokenCache) -> Self {
        self.cache = Some(cache);
        self
    }

    pub(crate) fn check(&self) -> Result<(), crate::Error> {
        let ok = self.refresh_at > 0.0
            && self.refresh_at <= 1.0
            && (0.0..self.refresh_at).contains(&self.jitter)
            && self.retry.max_attempts >= 1;
        if ok {
            Ok(())
        } else {
            Err(crate::Error::Config(
                "refresh_at must be in (0, 1], jitter in [0, refresh_at), max_attempts at least 1"
                    .into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        for _ in 0..100 {
            let b1 = p.backoff(1);
            assert!(b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(100));
            let b3 = p.backoff(3);
            assert!(b3 >= Duration::from_millis(200) && b3 <= Duration::from_millis(400));
            let b40 = p.backoff(40);
            assert!(b40 >= Duration::from_millis(500) && b40 <= Duration::from_secs(1));
        }
    }

    #[test]
    fn nonsense_fractions_are_refused() {
        assert!(Options::default().check().is_ok());
        assert!(Options::default().refresh_at(1.5, 0.0).check().is_err());
        assert!(Options::default().refresh_at(0.5, 0.6).check().is_err());
    }
}
