//! The store contract suite (`tollgate-testkit`) over [`SqlStore`]: over
//! SQLite, and over PostgreSQL when `TG_TEST_STORE=postgres` (a fresh
//! database per test). Plus what only a SQL store has: migrations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use tollgate_core::Tollgate;
use tollgate_core::crypto::master::MasterKey;
use tollgate_core::store::Store;
use tollgate_store::SqlStore;
use tollgate_testkit::{TempDatabase, TestResult, postgres_base};

/// A fresh, empty database: a file in a temporary directory, or over
/// PostgreSQL (`TG_TEST_STORE=postgres`) a new database, dropped with this.
struct Fresh {
    url: String,
    dir: tempfile::TempDir,
    _database: Option<TempDatabase>,
}

impl Fresh {
    fn new() -> TestResult<Self> {
        let dir = tempfile::tempdir()?;
        Ok(match postgres_base() {
            Some(base) => {
                let db = TempDatabase::create(&base)?;
                Self {
                    url: db.url(),
                    dir,
                    _database: Some(db),
                }
            }
            None => Self {
                url: format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("tollgate.db").display()
                ),
                dir,
                _database: None,
            },
        })
    }
}

/// A store over a fresh database, and the guard that removes it.
async fn open() -> TestResult<(Arc<dyn Store>, Fresh)> {
    let fresh = Fresh::new()?;
    let store = SqlStore::open(&fresh.url).await?;
    Ok((Arc::new(store), fresh))
}

tollgate_testkit::store_contract_tests!(open);

/// Instances starting together against one fresh database all come up, and
/// the default environment gets exactly one key.
#[tokio::test]
async fn concurrent_first_starts_migrate_once() {
    let fresh = Fresh::new().unwrap();
    assert!(fresh.dir.path().exists());
    let master = Arc::new(MasterKey::generate().unwrap());
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = fresh.url.clone();
        let master = master.clone();
        tasks.push(tokio::spawn(async move {
            let s = SqlStore::open(&url).await.unwrap();
            Tollgate::open(Arc::new(s), &master, "http://t")
                .await
                .map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let s = SqlStore::open(&fresh.url).await.unwrap();
    assert_eq!(s.list_environments().await.unwrap().len(), 1);
    assert_eq!(s.list_signing_keys().await.unwrap().len(), 1);
}

/// A write through another store over the same database (another process:
/// the CLI, another instance) reaches this store's change feed where the
/// backend can push (PostgreSQL), also after the LISTEN connection was
/// killed (the feed reconnects and says so); over SQLite it is not pushed
/// (only the poll sees it), and the feed says it reaches this process only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_writer_is_pushed_where_the_backend_can_push() {
    use std::time::Duration;
    use tollgate_core::feed::{News, Reach};
    use tollgate_testkit::contract::{environment, gather, key_record};

    let fresh = Fresh::new().unwrap();
    let here = SqlStore::open(&fresh.url).await.unwrap();
    let other = SqlStore::open(&fresh.url).await.unwrap();
    let mut feed = here.change_feed().await.unwrap();
    let long = Duration::from_secs(10);
    let r0 = here.revision().await.unwrap();
    if here.backend() == "sqlite" {
        assert_eq!(feed.reach(), Reach::ThisProcess);
        other
            .create_environment(&environment("e1", 1), &key_record("e1", "k1", 1, 1))
            .await
            .unwrap();
        let news = gather(&mut feed, |_| false, Duration::from_millis(300)).await;
        assert_eq!(news, News::default(), "SQLite pushes nothing across stores");
        assert!(here.revision().await.unwrap() > r0, "the poll sees it");
        return;
    }
    assert_eq!(feed.reach(), Reach::AllWriters);
    let up = gather(&mut feed, |n| n.resumed > 0, long).await;
    assert_eq!(up.resumed, 1, "{up:?}");
    other
        .create_environment(&environment("e1", 1), &key_record("e1", "k1", 1, 1))
        .await
        .unwrap();
    let news = gather(&mut feed, |n| n.pushed > 0, long).await;
    assert_eq!(
        news,
        News {
            pushed: 1,
            ..News::default()
        },
        "pushed, and not a local change here"
    );

    // Kill the listener's backend (this database's only): the feed comes
    // back and says so, and pushes again.
    use sqlx::Connection as _;
    let mut admin = sqlx::AnyConnection::connect(&fresh.url).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        // Materialized first: the filter must run before any termination
        // (other databases on this server are not ours).
        "WITH l AS MATERIALIZED (SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%') \
         SELECT COUNT(*) FROM l WHERE pg_terminate_backend(pid)",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, 1, "one LISTEN connection");
    let back = gather(&mut feed, |n| n.resumed > 0, long).await;
    assert_eq!(back.resumed, 1, "{back:?}");
    other
        .create_environment(&environment("e2", 1), &key_record("e2", "k2", 1, 1))
        .await
        .unwrap();
    let again = gather(&mut feed, |n| n.pushed > 0, long).await;
    assert_eq!(again.pushed, 1, "{again:?}");
    admin.close().await.unwrap();
    here.close().await;
    other.close().await;
}
