//! tollgate's domain core.
//!
//! Everything tollgate *means* lives here: environments (isolated issuers),
//! APIs (resource servers with permissions and packages), clients (partner
//! applications with secrets and grants), signing keys, and the rules that turn
//! an authenticated client into a signed access token. This crate knows no HTTP
//! and no SQL: wire contracts call [`service::Tollgate`], which persists through
//! the [`store::Store`] trait.
//!
//! Data flows one way: a contract (HTTP layer) translates its wire format into a
//! core request, the core decides and mints, and talks to the store only where
//! it must.
//!
//! With the cargo feature `testing`, `testing::MemoryStore` is a `Store` in
//! memory for tests (the same contract suite runs over it and the SQL store).

pub mod crypto;
pub mod deadline;
pub mod error;
pub mod feed;
pub mod incumbent;
pub mod metrics;
pub mod model;
pub mod package_request;
pub mod partner;
pub mod service;
pub mod store;
mod sync;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod usage;

pub use error::{CoreError, GrantError, StoreError};
pub use service::Tollgate;
