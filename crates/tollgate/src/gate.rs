//! The gate's glue in the binary: reading a policy file (for `serve` and
//! `gate check-policy`), with errors that name the file and the line, and
//! reloading it while serving (on SIGHUP, and when the file changes).
//! The policy itself is `tollgate_gate`'s.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tollgate_core::Tollgate;
use tollgate_gate::{Gate, Policy};

/// How often the policy file is looked at for changes. Reading a small
/// file every two seconds costs nothing; an edit is in force within that.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);

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

/// What the file holds now, to tell an edit: its content, not its times
/// (an editor that restores the mtime, or a copy within the same second,
/// still counts). A policy file is small; keeping a copy is cheap.
fn fingerprint(file: &Path) -> Option<Vec<u8>> {
    std::fs::read(file).ok()
}

/// Reloads `gate`'s policy from `file` on SIGHUP and whenever the file's
/// content changes (looked at every [`RELOAD_POLL`]). A policy that does
/// not validate is refused with its line in the log and the old one stays
/// in force: a typo must not open or close the API. Each attempt is
/// counted in `tollgate_gate_policy_reloads_total{outcome}`.
pub fn watch(
    gate: Arc<Gate>,
    file: PathBuf,
    core: Arc<Tollgate>,
) -> Result<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot handle SIGHUP")?;
    Ok(tokio::spawn(async move {
        let mut seen = fingerprint(&file);
        let mut tick = tokio::time::interval(RELOAD_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let forced = tokio::select! {
                _ = tick.tick() => false,
                _ = hup.recv() => true,
            };
            #[cfg(not(unix))]
            let forced = {
                tick.tick().await;
                false
            };
            let now = fingerprint(&file);
            if !forced && now == seen {
                continue;
            }
            seen = now;
            let outcome = match load(&file) {
                Ok(p) => {
                    tracing::info!(
                        file = %file.display(),
                        routes = p.routes.len(),
                        signal = forced,
                        "gate policy reloaded"
                    );
                    gate.set_policy(p);
                    "ok"
                }
                Err(e) => {
                    tracing::error!(error = %e, "gate policy not reloaded: the previous one stays in force");
                    "invalid"
                }
            };
            core.metrics.count(
                "tollgate_gate_policy_reloads_total",
                "Reloads of the gate's policy file (on SIGHUP or a change): ok, or invalid (the previous policy stays)",
                &[("outcome", outcome)],
                1,
            );
        }
    }))
}
