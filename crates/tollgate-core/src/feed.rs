//! A store's change feed: a push that something changed, so a server syncs
//! at once instead of at its next poll.
//!
//! The store keeps a [`FeedSender`] and bumps its counters; each consumer
//! holds a [`ChangeFeed`] and awaits [`ChangeFeed::next`]. It carries no data
//! (the revision is read by `Tollgate::sync` as always), only *that* something
//! happened, and many pushes arriving before the consumer wakes coalesce into
//! one wake-up: a burst of changes costs one sync, not one each. A feed is an
//! accelerator, never the only path: servers keep polling, so a missed push
//! costs at most one poll interval.

use tokio::sync::watch;

/// Which changes a feed reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Changes written through this process's store only (SQLite: another
    /// process writing the same file is seen by the poll).
    ThisProcess,
    /// Changes by every writer of the database, other processes and
    /// instances included (PostgreSQL LISTEN/NOTIFY).
    AllWriters,
}

impl Reach {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reach::ThisProcess => "this-process",
            Reach::AllWriters => "all-writers",
        }
    }
}

impl std::fmt::Display for Reach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a feed has counted since it started; consumers compare with what
/// they saw last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    /// Changes written through this process's store.
    local: u64,
    /// Changes pushed by the database (any writer, this one included).
    pushed: u64,
    /// Times the push channel was (re)established: pushes may have been
    /// missed while it was down, so a consumer syncs once.
    resumed: u64,
}

/// What happened since the consumer last looked (never all zero).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct News {
    /// Changes written through this process's store.
    pub local: u64,
    /// Changes pushed by the database.
    pub pushed: u64,
    /// Times the push channel was (re)established.
    pub resumed: u64,
}

/// The store's side of a feed: it counts changes; consumers subscribe.
#[derive(Debug)]
pub struct FeedSender {
    tx: watch::Sender<Counts>,
    reach: Reach,
}

impl FeedSender {
    /// A feed reporting the changes `reach` says.
    pub fn new(reach: Reach) -> Self {
        Self {
            tx: watch::Sender::new(Counts::default()),
            reach,
        }
    }
    /// A change was committed through this process's store.
    pub fn local_change(&self) {
        // `send_modify` updates even with no subscriber (a CLI process).
        self.tx.send_modify(|c| c.local = c.local.wrapping_add(1));
    }
    /// The database pushed a change.
    pub fn pushed(&self) {
        self.tx.send_modify(|c| c.pushed = c.pushed.wrapping_add(1));
    }
    /// The push channel was (re)established.
    pub fn resumed(&self) {
        self.tx
            .send_modify(|c| c.resumed = c.resumed.wrapping_add(1));
    }
    /// A consumer that sees what happens from now on.
    pub fn subscribe(&self) -> ChangeFeed {
        let rx = self.tx.subscribe();
        let seen = *rx.borrow();
        ChangeFeed {
            rx,
            seen,
            reach: self.reach,
        }
    }
}

/// A consumer's handle on a store's change feed.
#[derive(Debug)]
pub struct ChangeFeed {
    rx: watch::Receiver<Counts>,
    seen: Counts,
    reach: Reach,
}

impl ChangeFeed {
    /// Which changes this feed reports.
    pub fn reach(&self) -> Reach {
        self.reach
    }
    /// Waits until something happened since the last call (everything that
    /// happened meanwhile comes as one [`News`]); `None` once the store side
    /// is gone (then only polling is left).
    pub async fn next(&mut self) -> Option<News> {
        self.rx.changed().await.ok()?;
        let now = *self.rx.borrow_and_update();
        let news = News {
            local: now.local.wrapping_sub(self.seen.local),
            pushed: now.pushed.wrapping_sub(self.seen.pushed),
            resumed: now.resumed.wrapping_sub(self.seen.resumed),
        };
        self.seen = now;
        Some(news)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn changes_before_a_wake_up_come_as_one_news() {
        let tx = FeedSender::new(Reach::AllWriters);
        let mut feed = tx.subscribe();
        assert_eq!(feed.reach(), Reach::AllWriters);
        tx.local_change();
        tx.pushed();
        tx.pushed();
        tx.resumed();
        assert_eq!(
            feed.next().await,
            Some(News {
                local: 1,
                pushed: 2,
                resumed: 1
            })
        );
        tx.pushed();
        assert_eq!(
            feed.next().await,
            Some(News {
                pushed: 1,
                ..News::default()
            })
        );
    }

    #[tokio::test]
    async fn a_subscriber_sees_only_what_happens_after_it_subscribed() {
        let tx = FeedSender::new(Reach::ThisProcess);
        tx.local_change();
        let mut feed = tx.subscribe();
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), feed.next()).await;
        assert!(waiting.is_err(), "no news yet: {waiting:?}");
        tx.local_change();
        assert_eq!(
            feed.next().await,
            Some(News {
                local: 1,
                ..News::default()
            })
        );
    }

    #[tokio::test]
    async fn the_feed_ends_when_the_store_side_goes() {
        let tx = FeedSender::new(Reach::ThisProcess);
        let mut feed = tx.subscribe();
        drop(tx);
        assert_eq!(feed.next().await, None);
    }
}
