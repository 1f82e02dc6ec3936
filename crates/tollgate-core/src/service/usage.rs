//! Usage per client and day, as the grants count it and the admin API and
//! the portal read it (the tally itself is `crate::usage`).
//!
//! What counts, per token request (every contract; the grants call
//! [`Tollgate::tally_issued`] and [`Tollgate::tally_refused`]):
//! - *issued*: a token was handed out (a reused one too);
//! - *429s*: refused by the client's issuance limit (`limit:`), or by a lock
//!   after repeated failed authentications (`throttle.rs`);
//! - *errors*: any other refusal of a request naming an existing client:
//!   wrong secret, disabled client, grant type, audience or scope not held,
//!   an invalid refresh token or user password presented with the client's
//!   id, the store unavailable. A request naming no existing client counts
//!   nowhere (a made-up id must not grow the tally or the table).
//!
//! Not counted: introspection and revocation, and the gate's API-key checks
//! (they issue no token).

use crate::error::{CoreError, GrantError, StoreError};
use crate::model::{Client, Obligation};
use crate::service::Tollgate;
use crate::service::requests::{ClientAuth, Session};
use crate::service::state::EnvRuntime;
use crate::time::now;
use crate::usage::{KEEP_DAYS, UsageDay, UsageKind, day_of};

/// A client's issuance limit and where it stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaState {
    /// Issuances allowed per window.
    pub max: u64,
    /// The window, seconds.
    pub window: u64,
    /// Issuances counted in the current window (at most `max`: refused
    /// requests past it are not issuances).
    pub used: u64,
    /// Unix seconds at which the current window ends.
    pub resets_at: i64,
}

impl Tollgate {
    /// Counts a token handed out to `client_id`. Memory only.
    pub(crate) fn tally_issued(&self, env: &EnvRuntime, client_id: &str) {
        self.tally(&env.env.name, client_id, UsageKind::Issued);
    }

    /// Counts a refused token request naming `client_id`, if that client
    /// exists (from the client cache, which the request has just filled).
    pub(crate) async fn tally_refused(&self, env: &EnvRuntime, client_id: &str, e: &GrantError) {
        if !matches!(
            self.cached_client(&env.env.name, client_id).await,
            Ok(Some(_))
        ) {
            return;
        }
        let kind = match e {
            GrantError::RateLimited(_) | GrantError::Throttled { .. } => UsageKind::Throttled,
            _ => UsageKind::Error,
        };
        self.tally(&env.env.name, client_id, kind);
    }

    /// Counts `result` for `client_id` (issued, or refused as
    /// [`Self::tally_refused`] does) and hands it back.
    pub(crate) async fn tallied<T>(
        &self,
        env: &EnvRuntime,
        client_id: &str,
        result: Result<T, GrantError>,
    ) -> Result<T, GrantError> {
        match &result {
            Ok(_) => self.tally_issued(env, client_id),
            Err(e) => self.tally_refused(env, client_id, e).await,
        }
        result
    }

    /// Counts a user grant's `result`: a session for its client, a
    /// refusal for the client the request named (`auth`), if any.
    pub(crate) async fn tallied_session(
        &self,
        env: &EnvRuntime,
        auth: ClientAuth<'_>,
        result: Result<Session, GrantError>,
    ) -> Result<Session, GrantError> {
        match (&result, auth) {
            (Ok(s), _) => self.tally_issued(env, &s.client_id),
            (Err(e), ClientAuth::Secret { id, .. } | ClientAuth::Public { id }) => {
                self.tally_refused(env, id, e).await;
            }
            (Err(_), ClientAuth::None) => {}
        }
        result
    }

    fn tally(&self, env: &str, client_id: &str, kind: UsageKind) {
        if !self.usage.add(env, client_id, day_of(now()), kind) {
            tracing::warn!("usage tally full: a count was dropped");
        }
    }

    /// Adds the usage counted since the last flush to the store. On failure
    /// the deltas go back into the tally for the next flush (nothing lost);
    /// returns how many rows were written.
    pub async fn flush_usage(&self) -> Result<usize, StoreError> {
        let deltas = self.usage.take(day_of(now()));
        if deltas.is_empty() {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        let written = self.store.add_usage(&deltas).await;
        self.metrics.store_timing("add_usage", started);
        match written {
            Ok(()) => Ok(deltas.len()),
            Err(e) => {
                self.usage.restore(&deltas);
                Err(e)
            }
        }
    }

    /// A client's usage from day `from` to day `to` (days since the epoch,
    /// both included; at most [`KEEP_DAYS`] days), one entry per day with
    /// zeros where nothing was counted. `NotFound` if the client does not
    /// exist. What this instance has not flushed yet is not included.
    pub async fn client_usage(
        &self,
        env: &str,
        client_id: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<UsageDay>, CoreError> {
        if to < from {
            return Err(CoreError::Invalid {
                field: "from",
                reason: "must not be after 'to'".into(),
            });
        }
        if to - from >= KEEP_DAYS {
            return Err(CoreError::Invalid {
                field: "from",
                reason: format!("at most {KEEP_DAYS} days at a time"),
            });
        }
        self.get_client(env, client_id).await?;
        let rows = self.store.list_usage(env, client_id, from, to).await?;
        let mut rows = rows.into_iter().peekable();
        Ok((from..=to)
            .map(|day| {
                rows.next_if(|r| r.day == day).unwrap_or_else(|| UsageDay {
                    env: env.to_string(),
                    client_id: client_id.to_string(),
                    day,
                    issued: 0,
                    errors: 0,
                    throttled: 0,
                })
            })
            .collect())
    }

    /// The issuance limit governing `client` (its own, else the first of its
    /// APIs' that has one) and how much of the current window is used;
    /// `None` without a limit. One store read.
    pub async fn quota_state(&self, client: &Client) -> Result<Option<QuotaState>, CoreError> {
        let own = client.obligation;
        let from_api = || {
            let env = self.env(&client.env)?;
            client
                .apis
                .iter()
                .filter_map(|g| env.api(&g.api).and_then(|a| a.obligation))
                .find(|o| matches!(o, Obligation::Limit { .. }))
        };
        let Some(Obligation::Limit { max, window }) = own.or_else(from_api) else {
            return Ok(None);
        };
        let t = now();
        let w = i64::try_from(window).unwrap_or(i64::MAX);
        let start = t - t.rem_euclid(w);
        let used = match self
            .store
            .get_issuance(&client.env, &client.client_id)
            .await?
        {
            Some((s, n)) if s == start => n.min(max),
            _ => 0,
        };
        Ok(Some(QuotaState {
            max,
            window,
            used,
            resets_at: start.saturating_add(w),
        }))
    }
}
