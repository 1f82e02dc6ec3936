//! The audit log of administrative writes: appended by the admin API after
//! each successful write, read back in pages (`since`, then by id), and
//! purged past the retention the operator set (`audit_retention`).

use crate::crypto::random::fill_random;
use crate::error::CoreError;
use crate::model::AuditEntry;
use crate::service::Tollgate;
use crate::service::requests::AuditEvent;
use crate::time::now;

/// The most entries one page of the log holds.
pub const MAX_AUDIT_PAGE: u32 = 1000;

/// A fresh entry id: nanoseconds since the epoch (16 hex digits, so text
/// order is time order) and 8 random hex digits (two writes in the same
/// nanosecond, or on two instances, do not collide).
fn entry_id() -> Result<String, CoreError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let mut r = [0u8; 4];
    fill_random(&mut r)?;
    Ok(format!("{nanos:016x}{:08x}", u32::from_be_bytes(r)))
}

impl Tollgate {
    /// Appends `event` to the audit log, stamped now; returns the entry.
    pub async fn record_audit(&self, event: AuditEvent) -> Result<AuditEntry, CoreError> {
        let entry = AuditEntry {
            id: entry_id()?,
            at: now(),
            actor: event.actor,
            action: event.action,
            env: event.env,
            target: event.target,
            source: event.source,
            before: event.before,
            after: event.after,
        };
        self.store.insert_audit(&entry).await?;
        Ok(entry)
    }

    /// At most `limit` (1..=[`MAX_AUDIT_PAGE`]) entries written at or after
    /// `since` (unix seconds), after the entry `after` (a page's last id).
    pub async fn list_audit(
        &self,
        since: i64,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, CoreError> {
        if limit == 0 || limit > MAX_AUDIT_PAGE {
            return Err(CoreError::invalid(
                "limit",
                format!("must be between 1 and {MAX_AUDIT_PAGE}"),
            ));
        }
        Ok(self.store.list_audit(since, after, limit).await?)
    }

    /// Removes the entries older than `retention` (the `audit_retention`
    /// setting); counted in `tollgate_purged_rows_total{table="audit"}`.
    /// Returns how many went.
    pub async fn purge_audit(&self, retention: std::time::Duration) -> Result<u64, CoreError> {
        let age = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
        let n = self.store.purge_audit(now().saturating_sub(age)).await?;
        self.metrics.count(
            "tollgate_purged_rows_total",
            "Expired rows removed by the purge task",
            &[("table", "audit")],
            n,
        );
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::entry_id;

    #[test]
    fn ids_sort_in_the_order_they_were_made() {
        let a = entry_id().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = entry_id().unwrap();
        assert_eq!(a.len(), 24);
        assert!(a < b, "{a} then {b}");
    }
}
