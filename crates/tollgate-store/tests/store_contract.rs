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
