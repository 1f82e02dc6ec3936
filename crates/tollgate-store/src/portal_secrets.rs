//! The partner portal's second factors and pending secret handovers
//! (`tg_partner_totp`, `tg_portal_handovers`): the statements `sql.rs`
//! runs for them. A leaf beside `partners.rs`. Both hold secrets only
//! sealed under a key derived from the master key; no write bumps the
//! revision (no cache holds these rows).

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row as _};
use tollgate_core::StoreError;
use tollgate_core::partner::{Handover, PartnerTotp};

use crate::statements::backend;

fn totp_row(r: &AnyRow) -> Result<PartnerTotp, StoreError> {
    let confirmed: i64 = r.try_get("confirmed").map_err(backend)?;
    Ok(PartnerTotp {
        login: r.try_get("login").map_err(backend)?,
        sealed: r.try_get("sealed").map_err(backend)?,
        confirmed: confirmed != 0,
        last_step: r.try_get("last_step").map_err(backend)?,
        created_at: r.try_get("created_at").map_err(backend)?,
    })
}

/// Replaces the account's row in one transaction (delete, insert), which
/// both backends run alike.
pub(crate) async fn put_totp(w: &AnyPool, t: &PartnerTotp) -> Result<(), StoreError> {
    let mut tx = w.begin().await.map_err(backend)?;
    sqlx::query("DELETE FROM tg_partner_totp WHERE login = $1")
        .bind(t.login.clone())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    sqlx::query(
        "INSERT INTO tg_partner_totp (login, sealed, confirmed, last_step, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(t.login.clone())
    .bind(t.sealed.clone())
    .bind(i64::from(t.confirmed))
    .bind(t.last_step)
    .bind(t.created_at)
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

pub(crate) async fn get_totp(r: &AnyPool, login: &str) -> Result<Option<PartnerTotp>, StoreError> {
    sqlx::query(
        "SELECT login, sealed, confirmed, last_step, created_at FROM tg_partner_totp \
         WHERE login = $1",
    )
    .bind(login.to_string())
    .fetch_optional(r)
    .await
    .map_err(backend)?
    .as_ref()
    .map(totp_row)
    .transpose()
}

/// The compare-and-set of an accepted code: one statement, so two uses of
/// one code cannot both pass.
pub(crate) async fn use_totp_step(
    w: &AnyPool,
    login: &str,
    step: i64,
    confirm: bool,
) -> Result<bool, StoreError> {
    sqlx::query(
        "UPDATE tg_partner_totp SET last_step = $1, \
         confirmed = CASE WHEN $2 = 1 THEN 1 ELSE confirmed END \
         WHERE login = $3 AND (last_step IS NULL OR last_step < $1)",
    )
    .bind(step)
    .bind(i64::from(confirm))
    .bind(login.to_string())
    .execute(w)
    .await
    .map_err(backend)
    .map(|r| r.rows_affected() > 0)
}

pub(crate) async fn delete_totp(w: &AnyPool, login: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM tg_partner_totp WHERE login = $1")
        .bind(login.to_string())
        .execute(w)
        .await
        .map_err(backend)
        .map(drop)
}

const HANDOVER_COLUMNS: &str = "digest, partner, label, sealed, created_at, expires_at";

fn handover_row(r: &AnyRow) -> Result<Handover, StoreError> {
    Ok(Handover {
        digest: r.try_get("digest").map_err(backend)?,
        partner: r.try_get("partner").map_err(backend)?,
        label: r.try_get("label").map_err(backend)?,
        sealed: r.try_get("sealed").map_err(backend)?,
        created_at: r.try_get("created_at").map_err(backend)?,
        expires_at: r.try_get("expires_at").map_err(backend)?,
    })
}

pub(crate) async fn insert_handover(w: &AnyPool, h: &Handover) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO tg_portal_handovers ({HANDOVER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
    ))
    .bind(h.digest.clone())
    .bind(h.partner.clone())
    .bind(h.label.clone())
    .bind(h.sealed.clone())
    .bind(h.created_at)
    .bind(h.expires_at)
    .execute(w)
    .await
    .map_err(backend)
    .map(drop)
}

pub(crate) async fn get_handover(
    r: &AnyPool,
    digest: &str,
) -> Result<Option<Handover>, StoreError> {
    sqlx::query(&format!(
        "SELECT {HANDOVER_COLUMNS} FROM tg_portal_handovers WHERE digest = $1"
    ))
    .bind(digest.to_string())
    .fetch_optional(r)
    .await
    .map_err(backend)?
    .as_ref()
    .map(handover_row)
    .transpose()
}

/// `DELETE … RETURNING` (SQLite 3.35+, PostgreSQL): the row goes and comes
/// back in one statement, so of two openers one gets the secret.
pub(crate) async fn take_handover(
    w: &AnyPool,
    digest: &str,
) -> Result<Option<Handover>, StoreError> {
    sqlx::query(&format!(
        "DELETE FROM tg_portal_handovers WHERE digest = $1 RETURNING {HANDOVER_COLUMNS}"
    ))
    .bind(digest.to_string())
    .fetch_optional(w)
    .await
    .map_err(backend)?
    .as_ref()
    .map(handover_row)
    .transpose()
}

/// The purge's statement: handovers past their expiry.
pub(crate) const PURGE_HANDOVERS: &str = "DELETE FROM tg_portal_handovers WHERE expires_at < $1";
