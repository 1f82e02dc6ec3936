//! The provider side of the partner portal's tables
//! (`tg_package_requests`, `tg_provider_sessions`) and the partner reads
//! the admin API adds (a partner's accounts, a partner row as the guarded
//! write compares it): the statements `sql.rs` runs for them. A leaf beside
//! `partners.rs`. None of these writes bumps the revision: no cache holds
//! these rows.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row as _};
use tollgate_core::StoreError;
use tollgate_core::package_request::{PackageRequest, ProviderSession, RequestStatus};
use tollgate_core::partner::PartnerAccount;

use crate::statements::backend;

const REQUEST_COLUMNS: &str = "id, partner, requested_by, env, api, package, note, status, \
     created_at, decided_at, decided_by";

fn request_row(r: &AnyRow) -> Result<PackageRequest, StoreError> {
    let status: String = r.try_get("status").map_err(backend)?;
    Ok(PackageRequest {
        id: r.try_get("id").map_err(backend)?,
        partner: r.try_get("partner").map_err(backend)?,
        requested_by: r.try_get("requested_by").map_err(backend)?,
        env: r.try_get("env").map_err(backend)?,
        api: r.try_get("api").map_err(backend)?,
        package: r.try_get("package").map_err(backend)?,
        note: r.try_get("note").map_err(backend)?,
        status: status
            .parse::<RequestStatus>()
            .map_err(|e| StoreError::Corrupt(format!("package request status: {e}")))?,
        created_at: r.try_get("created_at").map_err(backend)?,
        decided_at: r.try_get("decided_at").map_err(backend)?,
        decided_by: r.try_get("decided_by").map_err(backend)?,
    })
}

pub(crate) async fn insert_request(w: &AnyPool, q: &PackageRequest) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO tg_package_requests ({REQUEST_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(q.id.clone())
    .bind(q.partner.clone())
    .bind(q.requested_by.clone())
    .bind(q.env.clone())
    .bind(q.api.clone())
    .bind(q.package.clone())
    .bind(q.note.clone())
    .bind(q.status.as_str())
    .bind(q.created_at)
    .bind(q.decided_at)
    .bind(q.decided_by.clone())
    .execute(w)
    .await
    .map_err(backend)
    .map(drop)
}

pub(crate) async fn get_request(
    r: &AnyPool,
    id: &str,
) -> Result<Option<PackageRequest>, StoreError> {
    sqlx::query(&format!(
        "SELECT {REQUEST_COLUMNS} FROM tg_package_requests WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(r)
    .await
    .map_err(backend)?
    .as_ref()
    .map(request_row)
    .transpose()
}

pub(crate) async fn list_requests(
    r: &AnyPool,
    partner: Option<&str>,
) -> Result<Vec<PackageRequest>, StoreError> {
    let rows = match partner {
        Some(p) => sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM tg_package_requests WHERE partner = $1 ORDER BY id"
        ))
        .bind(p.to_string())
        .fetch_all(r)
        .await
        .map_err(backend)?,
        None => sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM tg_package_requests ORDER BY id"
        ))
        .fetch_all(r)
        .await
        .map_err(backend)?,
    };
    rows.iter().map(request_row).collect()
}

/// One statement: only a pending request changes (of two deciders, one
/// wins).
pub(crate) async fn decide_request(
    w: &AnyPool,
    id: &str,
    status: RequestStatus,
    at: i64,
    by: &str,
) -> Result<bool, StoreError> {
    sqlx::query(
        "UPDATE tg_package_requests SET status = $1, decided_at = $2, decided_by = $3 \
         WHERE id = $4 AND status = 'pending'",
    )
    .bind(status.as_str())
    .bind(at)
    .bind(by.to_string())
    .bind(id.to_string())
    .execute(w)
    .await
    .map_err(backend)
    .map(|r| r.rows_affected() > 0)
}

pub(crate) async fn insert_session(w: &AnyPool, s: &ProviderSession) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tg_provider_sessions (digest, admin_client, scope, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(s.digest.clone())
    .bind(s.admin_client.clone())
    .bind(s.scope.clone())
    .bind(s.created_at)
    .bind(s.expires_at)
    .execute(w)
    .await
    .map_err(backend)
    .map(drop)
}

pub(crate) async fn get_session(
    r: &AnyPool,
    digest: &str,
) -> Result<Option<ProviderSession>, StoreError> {
    sqlx::query(
        "SELECT digest, admin_client, scope, created_at, expires_at FROM tg_provider_sessions \
         WHERE digest = $1",
    )
    .bind(digest.to_string())
    .fetch_optional(r)
    .await
    .map_err(backend)?
    .map(|r| {
        Ok(ProviderSession {
            digest: r.try_get("digest").map_err(backend)?,
            admin_client: r.try_get("admin_client").map_err(backend)?,
            scope: r.try_get("scope").map_err(backend)?,
            created_at: r.try_get("created_at").map_err(backend)?,
            expires_at: r.try_get("expires_at").map_err(backend)?,
        })
    })
    .transpose()
}

pub(crate) async fn delete_session(w: &AnyPool, digest: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM tg_provider_sessions WHERE digest = $1")
        .bind(digest.to_string())
        .execute(w)
        .await
        .map_err(backend)
        .map(drop)
}

/// The purge's statement: expired provider sessions.
pub(crate) const PURGE_SESSIONS: &str = "DELETE FROM tg_provider_sessions WHERE expires_at < $1";

pub(crate) async fn list_accounts(
    r: &AnyPool,
    partner: &str,
) -> Result<Vec<PartnerAccount>, StoreError> {
    sqlx::query(
        "SELECT login, partner, password_hash, failed_attempts, locked_until, created_at \
         FROM tg_partner_accounts WHERE partner = $1 ORDER BY login",
    )
    .bind(partner.to_string())
    .fetch_all(r)
    .await
    .map_err(backend)?
    .iter()
    .map(|r| {
        let failed: i64 = r.try_get("failed_attempts").map_err(backend)?;
        Ok(PartnerAccount {
            login: r.try_get("login").map_err(backend)?,
            partner: r.try_get("partner").map_err(backend)?,
            password_hash: r.try_get("password_hash").map_err(backend)?,
            failed_attempts: u32::try_from(failed).unwrap_or(u32::MAX),
            locked_until: r.try_get("locked_until").map_err(backend)?,
            created_at: r.try_get("created_at").map_err(backend)?,
        })
    })
    .collect()
}
