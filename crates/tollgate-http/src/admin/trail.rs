//! The audit record of an admin write: who (the caller's admin client),
//! what, where from, and the resource before and after (views without
//! secrets), appended after the write succeeded.

use serde::Serialize;
use tollgate_core::service::AuditEvent;

use super::auth::Caller;
use crate::AppState;

/// Appends a successful write to the audit log. A failure to append is
/// logged and counted, not answered: the write itself is done and
/// committed, and telling the caller it failed would invite a second one.
pub async fn audit<N>(
    state: &AppState,
    caller: &Caller<N>,
    action: &str,
    env: Option<&str>,
    target: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) {
    let event = AuditEvent {
        actor: caller.client_id.clone(),
        action: action.to_string(),
        env: env.map(str::to_string),
        target: target.to_string(),
        source: caller.source.map(|s| s.to_string()),
        before,
        after,
    };
    if let Err(e) = state.core.record_audit(event).await {
        tracing::error!(error = %e, action, target, "admin API: cannot append to the audit log");
        state.core.metrics.count(
            "tollgate_audit_failures_total",
            "Admin writes done but not recorded in the audit log (the store refused the entry)",
            &[],
            1,
        );
    }
}

/// A value as JSON for the audit log.
pub fn json_of(v: &impl Serialize) -> Option<serde_json::Value> {
    serde_json::to_value(v).ok()
}
