//! Temporary PostgreSQL databases: the suites run over PostgreSQL when
//! `TG_TEST_STORE=postgres`, each test (or server) in a fresh database of
//! its own, created with `psql` and dropped when its guard goes.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::TestResult;

/// The PostgreSQL server to test over, when `TG_TEST_STORE=postgres`: its
/// URL without a database (`TG_TEST_PG`, by default
/// `postgres://postgres@127.0.0.1:5432`, trust authentication). `None`: the
/// suites run over SQLite.
pub fn postgres_base() -> Option<String> {
    match std::env::var("TG_TEST_STORE").as_deref() {
        Ok("postgres") => Some(postgres_server()),
        _ => None,
    }
}

/// The PostgreSQL server, for the tests that need one whatever the suite
/// runs over (moving a SQLite store to PostgreSQL): `TG_TEST_PG`, by
/// default `postgres://postgres@127.0.0.1:5432`.
pub fn postgres_server() -> String {
    std::env::var("TG_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Runs one statement with `psql`, connected to the `test` database (which
/// must exist: `CREATE/DROP DATABASE` need a database to run in).
fn psql(base: &str, sql: &str) -> TestResult {
    let out = Command::new("psql")
        .arg(format!("{base}/test"))
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .map_err(|e| format!("running psql: {e}"))?;
    if !out.status.success() {
        return Err(format!("psql {sql}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

/// A fresh PostgreSQL database, dropped (`WITH (FORCE)`, so open
/// connections do not keep it) when this guard goes, also when the test
/// fails.
#[derive(Debug)]
pub struct TempDatabase {
    base: String,
    name: String,
}

impl TempDatabase {
    /// Creates an empty database on the server at `base` (a URL without a
    /// database, as [`postgres_base`] gives).
    pub fn create(base: &str) -> TestResult<Self> {
        // Unique among the tests of this process (the counter) and of others
        // running at once (the pid); the clock keeps a reused pid from
        // meeting a database a killed run left behind.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let seq = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("tg_{}_{seq}_{nanos:x}", std::process::id());
        psql(base, &format!("CREATE DATABASE {name}"))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            name,
        })
    }

    /// Its connection URL.
    pub fn url(&self) -> String {
        format!("{}/{}", self.base, self.name)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        // Said, not panicked: a panic here, while a failed test unwinds,
        // would abort the whole test binary.
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = psql(&self.base, &sql) {
            eprintln!("tollgate-testkit: could not drop {}: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Over PostgreSQL only: a database exists while its guard lives.
    #[test]
    fn a_temporary_database_lives_as_long_as_its_guard() -> TestResult {
        let Some(base) = postgres_base() else {
            return Ok(());
        };
        let exists = |name: &str| -> TestResult<bool> {
            let out = Command::new("psql")
                .arg(format!("{base}/test"))
                .args([
                    "-Atc",
                    &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
                ])
                .output()?;
            Ok(String::from_utf8(out.stdout)?.trim() == "1")
        };
        let db = TempDatabase::create(&base)?;
        let name = db.name().to_string();
        assert!(exists(&name)?);
        assert!(db.url().ends_with(&format!("/{name}")));
        drop(db);
        assert!(!exists(&name)?);
        Ok(())
    }
}
