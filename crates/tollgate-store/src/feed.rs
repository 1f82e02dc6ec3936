//! The SQL store's change feed ([`tollgate_core::feed`]).
//!
//! Every commit that bumps the revision through this store tells the feed
//! directly (both backends: this process's own writes are known at once). On
//! PostgreSQL a trigger on the revision row also notifies channel
//! `tollgate_changes` in the writing transaction (`schema.rs`), so any writer —
//! another instance, the CLI — pushes; a task holds one LISTEN connection and
//! turns each notification into a push. When that connection drops, the task
//! reconnects with backoff, and each (re)connection counts as a *resume*:
//! notifications sent meanwhile are lost, so subscribers sync once. SQLite
//! has no such channel: another process's writes reach a server only through
//! its poll.
//!
//! The listener starts with the first subscriber (a CLI command never opens
//! a LISTEN connection) and stops when the store is closed.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;
use tollgate_core::feed::{ChangeFeed, FeedSender, Reach};

use crate::schema::CHANGE_CHANNEL;

/// The first wait before reconnecting a dropped LISTEN connection; doubled
/// after each failed attempt up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between reconnection attempts (the poll covers the gap).
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The store's side of its change feed.
#[derive(Debug)]
pub(crate) struct Feed {
    sender: std::sync::Arc<FeedSender>,
    /// The LISTEN task (PostgreSQL), once a subscriber asked.
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl Feed {
    /// The feed of a store over `backend` (`sqlite` or `postgres`).
    pub(crate) fn new(backend: &str) -> Self {
        let reach = if backend == "postgres" {
            Reach::AllWriters
        } else {
            Reach::ThisProcess
        };
        Self {
            sender: std::sync::Arc::new(FeedSender::new(reach)),
            listener: Mutex::new(None),
        }
    }

    /// A commit through this store bumped the revision.
    pub(crate) fn local_change(&self) {
        self.sender.local_change();
    }

    /// A new subscriber; on PostgreSQL starts the LISTEN task at the first
    /// (`url`: the database's, read only then).
    pub(crate) fn subscribe(&self, url: impl FnOnce() -> Option<String>) -> ChangeFeed {
        let feed = self.sender.subscribe();
        let mut listener = self
            .listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if listener.is_none() {
            // Subscribing is async (the store's `change_feed`), so a runtime
            // is there; without one there is no push, only the poll.
            if let (Some(url), Ok(rt)) = (url(), tokio::runtime::Handle::try_current()) {
                *listener = Some(rt.spawn(listen(url, self.sender.clone())));
            }
        }
        feed
    }

    /// Stops the LISTEN task, if any.
    pub(crate) fn stop(&self) {
        let task = self
            .listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(t) = task {
            t.abort();
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Holds a LISTEN connection on `url` for as long as it runs, pushing every
/// notification to `sender`; reconnects with backoff, and counts every
/// (re)connection as a resume.
async fn listen(url: String, sender: std::sync::Arc<FeedSender>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let mut listener = match connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis(), "change feed: cannot listen to the database; polling meanwhile");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = MIN_BACKOFF;
        tracing::info!(channel = CHANGE_CHANNEL, "change feed: listening");
        sender.resumed();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => sender.pushed(),
                // The connection dropped and sqlx has already reconnected
                // and listened again: whatever was sent in between is lost.
                Ok(None) => {
                    tracing::warn!("change feed: connection lost and re-established");
                    sender.resumed();
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis(), "change feed: connection lost; polling meanwhile");
                    break;
                }
            }
        }
        drop(listener);
        tokio::time::sleep(backoff).await;
    }
}

/// A connection listening on the change channel.
async fn connect(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANGE_CHANNEL).await?;
    Ok(listener)
}
