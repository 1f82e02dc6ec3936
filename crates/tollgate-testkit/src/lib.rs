//! What tollgate's test trees share, so that each is written once:
//!
//! - [`contract`]: the store contract suite, async functions over any
//!   `Arc<dyn Store>`, and [`store_contract_tests!`], which makes one
//!   `#[tokio::test]` of each for a backend. `tollgate-store` runs it over
//!   SQLite and PostgreSQL, `tollgate-core` over its `MemoryStore`.
//! - [`postgres`]: a fresh PostgreSQL database per test, dropped afterwards
//!   (`TG_TEST_STORE=postgres`).
//! - [`md5_hex`], computed outside tollgate's code.
//!
//! Helpers return [`TestResult`] instead of panicking: tests propagate with
//! `?`, and a failure reads as the error that caused it.

pub mod contract;
pub mod postgres;

pub use postgres::{TempDatabase, postgres_base, postgres_server};

/// Any error, as a test reports it.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// What a test or a test helper returns.
pub type TestResult<T = ()> = Result<T, Error>;

/// `md5_hex(s)`, computed by Python's hashlib: independent of tollgate's
/// code (and of the MD5 crate it uses), so a test comparing the two proves
/// something.
pub fn md5_hex(s: &str) -> TestResult<String> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys;print(hashlib.md5(sys.argv[1].encode()).hexdigest())",
            s,
        ])
        .output()
        .map_err(|e| format!("running python3: {e}"))?;
    if !out.status.success() {
        return Err(format!("python3: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_hex_matches_the_reference_vectors() -> TestResult {
        // RFC 1321, appendix A.5.
        assert_eq!(md5_hex("")?, "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex("abc")?, "900150983cd24fb0d6963f7d28e17f72");
        Ok(())
    }
}
