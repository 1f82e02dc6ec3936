//! The statements of the API-key table (`tg_api_keys`), which `sql.rs`
//! runs: a leaf beside `statements.rs`, so the store's one `impl Store`
//! stays readable without a file importing it back.

use sqlx::Row as _;
use sqlx::any::AnyRow;
use tollgate_core::StoreError;
use tollgate_core::model::ApiKey;

use crate::statements::{AnyQuery, backend};

const COLUMNS: &str = "env, id, client_id, name, digest, created_at, expires_at, revoked_at";

/// Stores a new key.
pub(crate) fn insert(k: &ApiKey) -> AnyQuery<'static> {
    sqlx::query(
        "INSERT INTO tg_api_keys (env, id, client_id, name, digest, created_at, expires_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(k.env.clone())
    .bind(k.id.clone())
    .bind(k.client_id.clone())
    .bind(k.name.clone())
    .bind(k.digest.clone())
    .bind(k.created_at)
    .bind(k.expires_at)
    .bind(k.revoked_at)
}

/// One key by (env, id).
pub(crate) fn get(env: &str, id: &str) -> AnyQuery<'static> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql =
        SQL.get_or_init(|| format!("SELECT {COLUMNS} FROM tg_api_keys WHERE env = $1 AND id = $2"));
    sqlx::query(sql.as_str())
        .bind(env.to_string())
        .bind(id.to_string())
}

/// The keys of an environment, or of one client there.
pub(crate) fn list(env: &str, client_id: Option<&str>) -> AnyQuery<'static> {
    static ALL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static ONE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    match client_id {
        None => sqlx::query(
            ALL.get_or_init(|| {
                format!("SELECT {COLUMNS} FROM tg_api_keys WHERE env = $1 ORDER BY created_at, id")
            })
            .as_str(),
        )
        .bind(env.to_string()),
        Some(c) => sqlx::query(
            ONE.get_or_init(|| {
                format!(
                    "SELECT {COLUMNS} FROM tg_api_keys WHERE env = $1 AND client_id = $2 \
                     ORDER BY created_at, id"
                )
            })
            .as_str(),
        )
        .bind(env.to_string())
        .bind(c.to_string()),
    }
}

/// Revokes a live key.
pub(crate) fn revoke(env: &str, id: &str, now: i64) -> AnyQuery<'static> {
    sqlx::query(
        "UPDATE tg_api_keys SET revoked_at = $1 WHERE env = $2 AND id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(env.to_string())
    .bind(id.to_string())
}

/// Revokes every live key of a client (the client is deleted).
pub(crate) fn revoke_client(env: &str, client_id: &str, now: i64) -> AnyQuery<'static> {
    sqlx::query(
        "UPDATE tg_api_keys SET revoked_at = $1 \
         WHERE env = $2 AND client_id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(env.to_string())
    .bind(client_id.to_string())
}

/// A rotation's compare and set on the old key: still unrevoked, its
/// expiry still the one read (written as two statements, since `= NULL`
/// never holds), then given `until`.
pub(crate) fn expire_if_unchanged(old: &ApiKey, until: i64) -> AnyQuery<'static> {
    let q = match old.expires_at {
        None => sqlx::query(
            "UPDATE tg_api_keys SET expires_at = $1 \
             WHERE env = $2 AND id = $3 AND revoked_at IS NULL AND expires_at IS NULL",
        ),
        Some(_) => sqlx::query(
            "UPDATE tg_api_keys SET expires_at = $1 \
             WHERE env = $2 AND id = $3 AND revoked_at IS NULL AND expires_at = $4",
        ),
    };
    let q = q.bind(until).bind(old.env.clone()).bind(old.id.clone());
    match old.expires_at {
        Some(e) => q.bind(e),
        None => q,
    }
}

/// The purge: keys past their expiry (revoked keys without one stay, for
/// the listing).
pub(crate) const PURGE: &str = "DELETE FROM tg_api_keys WHERE expires_at < $1";

/// A row as a key.
pub(crate) fn row(r: &AnyRow) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        env: r.try_get("env").map_err(backend)?,
        id: r.try_get("id").map_err(backend)?,
        client_id: r.try_get("client_id").map_err(backend)?,
        name: r.try_get("name").map_err(backend)?,
        digest: r.try_get("digest").map_err(backend)?,
        created_at: r.try_get("created_at").map_err(backend)?,
        expires_at: r.try_get("expires_at").map_err(backend)?,
        revoked_at: r.try_get("revoked_at").map_err(backend)?,
    })
}
