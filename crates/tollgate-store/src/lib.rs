//! Storage backends for tollgate.
//!
//! One implementation of [`tollgate_core::store::Store`] over sqlx's `Any`
//! driver serves both the embedded default (SQLite, WAL) and PostgreSQL (for
//! several instances behind a load balancer). The SQL is kept portable
//! (`$n` placeholders, TEXT and BIGINT columns, JSON as text, `ON CONFLICT`),
//! so both backends run the same statements and the same test suite.

mod api_keys;
mod backup;
mod batch;
mod feed;
mod files;
mod migrate;
mod package_requests;
mod partners;
mod portal_secrets;
mod schema;
mod sql;
mod statements;
mod usage;

pub use backup::{BackupError, BackupReport};
pub use files::{DB_FILE, database_files, database_path, loose_mode};
pub use migrate::{MigrateError, MigrationReport, NOT_COPIED, Progress, TableCopy};
pub use sql::{SqlStore, StoreOpenError};
