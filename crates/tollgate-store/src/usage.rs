//! Usage per client and UTC day (`tg_usage`): the statements `sql.rs` runs
//! for it. A leaf beside `statements.rs`, like `partners.rs`. No write here
//! bumps the revision: no cache holds these rows.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row as _};
use tollgate_core::StoreError;
use tollgate_core::usage::{KEEP_DAYS, UsageDay, day_of};

use crate::statements::backend;

/// Deletes the days older than [`KEEP_DAYS`] before the purge's `now` (bound
/// by [`purge_before`]).
pub(crate) const PURGE: &str = "DELETE FROM tg_usage WHERE day < $1";

/// The first day the purge keeps, at Unix second `now`.
pub(crate) fn purge_before(now: i64) -> i64 {
    day_of(now) - KEEP_DAYS
}

fn count(n: u64) -> i64 {
    // A day's count never nears 2^63; saturate rather than wrap if it did.
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uncount(r: &AnyRow, col: &str) -> Result<u64, StoreError> {
    let n: i64 = r.try_get(col).map_err(backend)?;
    u64::try_from(n).map_err(|e| StoreError::Corrupt(format!("usage {col}: {e}")))
}

/// Adds every delta in one transaction. Rows are written in key order, so
/// two instances flushing at once over PostgreSQL lock rows in the same
/// order and cannot deadlock.
pub(crate) async fn add(w: &AnyPool, deltas: &[UsageDay]) -> Result<(), StoreError> {
    if deltas.is_empty() {
        return Ok(());
    }
    let mut sorted: Vec<&UsageDay> = deltas.iter().collect();
    sorted.sort_by(|a, b| (&a.env, &a.client_id, a.day).cmp(&(&b.env, &b.client_id, b.day)));
    let mut tx = w.begin().await.map_err(backend)?;
    for d in sorted {
        sqlx::query(
            "INSERT INTO tg_usage (env, client_id, day, issued, errors, throttled) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (env, client_id, day) DO UPDATE SET \
             issued = tg_usage.issued + excluded.issued, \
             errors = tg_usage.errors + excluded.errors, \
             throttled = tg_usage.throttled + excluded.throttled",
        )
        .bind(d.env.clone())
        .bind(d.client_id.clone())
        .bind(d.day)
        .bind(count(d.issued))
        .bind(count(d.errors))
        .bind(count(d.throttled))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

/// A client's rows from `from` to `to` (days, both included), by day.
pub(crate) async fn list(
    r: &AnyPool,
    env: &str,
    client_id: &str,
    from: i64,
    to: i64,
) -> Result<Vec<UsageDay>, StoreError> {
    sqlx::query(
        "SELECT env, client_id, day, issued, errors, throttled FROM tg_usage \
         WHERE env = $1 AND client_id = $2 AND day >= $3 AND day <= $4 ORDER BY day",
    )
    .bind(env.to_string())
    .bind(client_id.to_string())
    .bind(from)
    .bind(to)
    .fetch_all(r)
    .await
    .map_err(backend)?
    .iter()
    .map(|r| {
        Ok(UsageDay {
            env: r.try_get("env").map_err(backend)?,
            client_id: r.try_get("client_id").map_err(backend)?,
            day: r.try_get("day").map_err(backend)?,
            issued: uncount(r, "issued")?,
            errors: uncount(r, "errors")?,
            throttled: uncount(r, "throttled")?,
        })
    })
    .collect()
}

/// A client's issuance count as it stands (the `limit:` obligation's).
pub(crate) async fn issuance(
    r: &AnyPool,
    env: &str,
    client_id: &str,
) -> Result<Option<(i64, u64)>, StoreError> {
    let row = sqlx::query(
        "SELECT window_start, count FROM tg_issuance_counts WHERE env = $1 AND client_id = $2",
    )
    .bind(env.to_string())
    .bind(client_id.to_string())
    .fetch_optional(r)
    .await
    .map_err(backend)?;
    row.map(|r| {
        Ok((
            r.try_get("window_start").map_err(backend)?,
            uncount(&r, "count")?,
        ))
    })
    .transpose()
}
