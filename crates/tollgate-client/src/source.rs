//! [`TokenSource`]: the one place that decides when to ask for a token.
//!
//! - The token lives in a [`TokenCache`] slot keyed by [`CacheKey`]
//!   (everything that changes the token); sources sharing a cache and a key
//!   share the token and the single flight.
//! - Single flight: a caller without a usable token waits on the slot's
//!   async lock; the first sends the request, the rest find its token (or
//!   its error) when they get the lock, so N callers cause one request.
//! - A token is usable while more than the margin is left. Past
//!   `refresh_at` of its lifetime (minus jitter) the caller still gets it
//!   and one background task refreshes, so nobody waits while a valid token
//!   exists.
//! - A rotated refresh token is saved in the store before the access token
//!   that came with it leaves this file. A refused refresh token is
//!   retried once with what the store holds (another process may have
//!   rotated it first), then replaced by a new login where allowed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::contracts::{
    BearerExchange, ClientCredentials, DeviceCredentials, Flow, Grant, HeaderLogin,
};
use crate::error::Error;
use crate::key::CacheKey;
use crate::options::Options;
use crate::secret::Secret;
use crate::store::{FileStore, MemoryStore, RefreshStore};
use crate::token::AccessToken;
use crate::transport::Transport;

/// Tokens by [`CacheKey`], shareable between sources (clone it into each
/// source's [`Options::cache`]).
#[derive(Clone, Default)]
pub struct TokenCache {
    slots: Arc<Mutex<HashMap<CacheKey, Arc<Slot>>>>,
}

impl TokenCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many distinct keys it holds.
    pub fn len(&self) -> usize {
        lock(&self.slots).len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slot(&self, key: &CacheKey) -> Arc<Slot> {
        lock(&self.slots).entry(key.clone()).or_default().clone()
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("keys", &self.len())
            .finish()
    }
}

/// One key's token, its flight and its refresh token.
#[derive(Default)]
struct Slot {
    current: Mutex<Option<Current>>,
    flight: tokio::sync::Mutex<Flight>,
    /// Completed fetches; a waiter that saw another fetch fail while it
    /// waited takes that error instead of sending one more request.
    attempts: AtomicU64,
    background: AtomicBool,
}

struct Current {
    token: AccessToken,
    refresh_at: SystemTime,
}

#[derive(Default)]
struct Flight {
    /// The refresh token last received or loaded.
    refresh: Option<Secret>,
    last_error: Option<Error>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding it leaves plain data: keep going.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Hands out access tokens for one contract and configuration. Cheap to
/// clone; clones share everything.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

struct Inner {
    flow: Flow,
    key: CacheKey,
    store_key: String,
    opts: Options,
    transport: Transport,
    store: Arc<dyn RefreshStore>,
    slot: Arc<Slot>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("key", &self.inner.key)
            .field("options", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

/// Clears the background flag however the task ends.
struct BackgroundGuard(Arc<Slot>);

impl Drop for BackgroundGuard {
    fn drop(&mut self) {
        self.0.background.store(false, Ordering::Release);
    }
}

impl TokenSource {
    fn build(flow: Flow, opts: Options) -> Result<Self, Error> {
        opts.check()?;
        if let Flow::ClientCredentials(c) = &flow {
            c.check()?;
        }
        let key = flow.key();
        let http = match &opts.http {
            Some(h) => h.clone(),
            None => reqwest::Client::builder()
                .build()
                .map_err(|e| Error::Config(format!("HTTP client: {e}")))?,
        };
        let store: Arc<dyn RefreshStore> = match (&opts.store, key.contract.has_refresh()) {
            (Some(s), _) => s.clone(),
            (None, true) => match FileStore::default_dir() {
                Some(dir) => Arc::new(FileStore::new(dir)),
                None => {
                    tracing::warn!(
                        "no XDG_STATE_HOME or HOME: refresh tokens are kept in memory only"
                    );
                    Arc::new(MemoryStore::new())
                }
            },
            (None, false) => Arc::new(MemoryStore::new()),
        };
        let cache = opts.cache.clone().unwrap_or_default();
        let slot = cache.slot(&key);
        Ok(Self {
            inner: Arc::new(Inner {
                transport: Transport {
                    http,
                    retry: opts.retry.clone(),
                    timeout: opts.request_timeout,
                },
                store_key: key.store_key(),
                flow,
                key,
                opts,
                store,
                slot,
            }),
        })
    }

    /// The key this source's tokens are cached under.
    pub fn key(&self) -> &CacheKey {
        &self.inner.key
    }

    /// A token with more than the margin left: the cached one, else one
    /// fetched now (one request however many callers wait for it).
    pub async fn token(&self) -> Result<AccessToken, Error> {
        let seen = self.inner.slot.attempts.load(Ordering::Acquire);
        if let Some((token, due)) = self.usable(SystemTime::now()) {
            if due {
                self.refresh_in_background();
            }
            return Ok(token);
        }
        self.fetch_now(seen).await
    }

    /// Drops `token` from the cache if it is still the cached one (the API
    /// refused it: revoked, or signed with a key the API does not know yet).
    /// The next [`TokenSource::token`] fetches a new one.
    pub fn invalidate(&self, token: &AccessToken) {
        let mut cur = lock(&self.inner.slot.current);
        if cur
            .as_ref()
            .is_some_and(|c| c.token.secret() == token.secret())
        {
            *cur = None;
        }
    }

    /// A new token now, whatever the cache holds (single-flighted like
    /// [`TokenSource::token`]).
    pub async fn refresh(&self) -> Result<AccessToken, Error> {
        let seen = self.inner.slot.attempts.load(Ordering::Acquire);
        let held = lock(&self.inner.slot.current)
            .as_ref()
            .map(|c| c.token.clone());
        if let Some(t) = &held {
            self.invalidate(t);
        }
        self.fetch_now(seen).await
    }

    /// The cached token and whether its refresh is due, if more than the
    /// margin is left at `now`.
    fn usable(&self, now: SystemTime) -> Option<(AccessToken, bool)> {
        let cur = lock(&self.inner.slot.current);
        let c = cur.as_ref()?;
        (c.token.remaining_at(now) > self.inner.opts.margin)
            .then(|| (c.token.clone(), now >= c.refresh_at))
    }

    async fn fetch_now(&self, seen: u64) -> Result<AccessToken, Error> {
        let slot = &self.inner.slot;
        let mut flight = slot.flight.lock().await;
        if let Some((token, _)) = self.usable(SystemTime::now()) {
            return Ok(token);
        }
        if slot.attempts.load(Ordering::Acquire) != seen {
            if let Some(e) = &flight.last_error {
                return Err(e.clone());
            }
        }
        let result = self.fetch(&mut flight).await.and_then(|t| self.install(t));
        slot.attempts.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(t) => {
                flight.last_error = None;
                Ok(t)
            }
            Err(e) => {
                flight.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    fn refresh_in_background(&self) {
        let slot = self.inner.slot.clone();
        if slot.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let guard = BackgroundGuard(slot);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            // Not on tokio: the token is refreshed when it nears the margin.
            return;
        };
        let this = self.clone();
        rt.spawn(async move {
            let _guard = guard;
            let slot = &this.inner.slot;
            let mut flight = slot.flight.lock().await;
            // Someone may have refreshed while we waited for the lock.
            if this
                .usable(SystemTime::now())
                .is_some_and(|(_, due)| !due)
            {
                return;
            }
            let result = this.fetch(&mut flight).await.and_then(|t| this.install(t));
            slot.attempts.fetch_add(1, Ordering::AcqRel);
            if let Err(e) = result {
                tracing::warn!(key = ?this.inner.key, error = %e, "background token refresh failed; the current token stays in use");
                this.postpone();
            }
        });
    }

    /// After a failed background refresh: try again halfway to the margin,
    /// not at every call.
    fn postpone(&self) {
        let now = SystemTime::now();
        let mut cur = lock(&self.inner.slot.current);
        if let Some(c) = cur.as_mut() {
            let left = c
                .token
                .remaining_at(now)
                .saturating_sub(self.inner.opts.margin);
            c.refresh_at = now + (left / 2).max(Duration::from_secs(1));
        }
    }

    /// Caches a fresh token with its refresh moment; refuses one that
    /// would be handed out with less than the margin left.
    fn install(&self, token: AccessToken) -> Result<AccessToken, Error> {
        let opts = &self.inner.opts;
        let now = SystemTime::now();
        if token.remaining_at(now) <= opts.margin {
            return Err(Error::TooShort {
                lifetime: token.lifetime(),
                margin: opts.margin,
            });
        }
        let fraction = opts.refresh_at - opts.jitter * fastrand::f64();
        let planned = token.received_at() + token.lifetime().mul_f64(fraction);
        let latest = token
            .expires_at()
            .checked_sub(opts.margin)
            .unwrap_or(planned);
        *lock(&self.inner.slot.current) = Some(Current {
            token: token.clone(),
            refresh_at: planned.min(latest),
        });
        Ok(token)
    }

    /// One round of the contract: obtain, or refresh (re-reading the store
    /// once and logging in again when the refresh token is dead), then
    /// persist a rotated refresh token. Called under the flight lock.
    async fn fetch(&self, flight: &mut Flight) -> Result<AccessToken, Error> {
        let flow = &self.inner.flow;
        let t = &self.inner.transport;
        if !self.inner.key.contract.has_refresh() {
            return Ok(flow.login(t).await?.access);
        }
        let presented = match flight.refresh.clone() {
            Some(r) => Some(r),
            None => self.load().await?,
        };
        let grant = match &presented {
            None => flow.login(t).await?,
            Some(rt) => match flow.refresh(t, rt).await {
                Ok(g) => g,
                Err(e) if e.is_dead_grant() => self.after_dead(flight, rt, e).await?,
                Err(e) => return Err(e),
            },
        };
        self.persist(flight, presented.as_ref(), grant).await
    }

    async fn after_dead(
        &self,
        flight: &mut Flight,
        presented: &Secret,
        mut error: Error,
    ) -> Result<Grant, Error> {
        let flow = &self.inner.flow;
        let t = &self.inner.transport;
        // Lost a race with another process that rotated first? Its new
        // token is in the store.
        if let Some(stored) = self.load().await?.filter(|s| s != presented) {
            tracing::debug!(key = ?self.inner.key, "refresh token refused; trying the stored one");
            match flow.refresh(t, &stored).await {
                Ok(g) => return Ok(g),
                Err(e) if e.is_dead_grant() => error = e,
                Err(e) => return Err(e),
            }
        }
        let code = error.code().unwrap_or("unknown").to_string();
        if self.inner.opts.relogin && flow.can_relogin() {
            tracing::info!(key = ?self.inner.key, code, "refresh token refused; logging in again");
            flight.refresh = None;
            return flow.login(t).await;
        }
        Err(Error::SessionEnded {
            contract: self.inner.key.contract,
            code,
        })
    }

    /// Saves a new refresh token (durably) before its access token is
    /// returned; an unchanged one (the `reuse` policy) is not rewritten.
    async fn persist(
        &self,
        flight: &mut Flight,
        presented: Option<&Secret>,
        grant: Grant,
    ) -> Result<AccessToken, Error> {
        if let Some(new) = grant.refresh {
            if presented != Some(&new) {
                self.save(&new).await?;
            }
            flight.refresh = Some(new);
        }
        Ok(grant.access)
    }

    async fn load(&self) -> Result<Option<Secret>, Error> {
        let store = self.inner.store.clone();
        let key = self.inner.store_key.clone();
        tokio::task::spawn_blocking(move || store.load(&key))
            .await
            .map_err(|e| Error::Store(e.to_string()))?
            .map_err(|e| Error::Store(e.0))
    }

    async fn save(&self, token: &Secret) -> Result<(), Error> {
        let store = self.inner.store.clone();
        let key = self.inner.store_key.clone();
        let token = token.clone();
        tokio::task::spawn_blocking(move || store.save(&key, &token))
            .await
            .map_err(|e| Error::Store(e.to_string()))?
            .map_err(|e| Error::Store(e.0))
    }
}

macro_rules! sources {
    ($($ty:ident => $variant:ident),* $(,)?) => {$(
        impl $ty {
            /// A [`TokenSource`] with these options.
            pub fn build(self, options: Options) -> Result<TokenSource, Error> {
                TokenSource::build(Flow::$variant(self), options)
            }

            /// A [`TokenSource`] with the default [`Options`].
            pub fn source(self) -> Result<TokenSource, Error> {
                self.build(Options::default())
            }
        }
    )*};
}

sources! {
    ClientCredentials => ClientCredentials,
    BearerExchange => BearerExchange,
    DeviceCredentials => Device,
    HeaderLogin => HeaderLogin,
}
