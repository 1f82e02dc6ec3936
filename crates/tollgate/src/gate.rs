//! The gate's glue in the binary: reading a policy file (for `serve` and
//! `gate check-policy`), with errors that name the file and the line.
//! The policy itself is `tollgate_gate`'s.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use tollgate_gate::Policy;

/// Reads and validates the `[gate]` table of `file`.
pub fn load(file: &Path) -> Result<Policy> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read gate policy {}", file.display()))?;
    Policy::parse(&text).map_err(|e| anyhow!("gate policy {}: {e}", file.display()))
}

/// `tollgate gate check-policy FILE`: validates offline; a summary on
/// success, the first error (with its line) otherwise.
pub fn check_policy(file: &Path, json: bool) -> Result<()> {
    let policy = load(file)?;
    let public = policy
        .routes
        .iter()
        .filter(|r| r.rule == tollgate_gate::Rule::Public)
        .count();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "file": file.display().to_string(),
                "routes": policy.routes.len(),
                "public_routes": public,
                "leeway_secs": policy.settings.leeway.as_secs(),
                "cache_entries": policy.settings.cache_entries,
            })
        );
    } else {
        println!(
            "{}: ok, {} routes ({public} public); unmatched requests are denied",
            file.display(),
            policy.routes.len()
        );
    }
    Ok(())
}
