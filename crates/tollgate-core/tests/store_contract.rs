//! The store contract suite (`tollgate-testkit`) over [`MemoryStore`]: the
//! same tests the SQL store passes, so the memory store behaves the same.

use std::sync::Arc;

use tollgate_core::store::Store;
use tollgate_core::testing::MemoryStore;
use tollgate_testkit::TestResult;

/// A fresh, empty memory store; nothing to clean up afterwards.
async fn open() -> TestResult<(Arc<dyn Store>, ())> {
    Ok((Arc::new(MemoryStore::new()), ()))
}

tollgate_testkit::store_contract_tests!(open);
