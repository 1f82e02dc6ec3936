//! The partner portal's tables (`tg_partners`, `tg_partner_clients`,
//! `tg_partner_accounts`, `tg_partner_invitations`, `tg_portal_sessions`):
//! the statements `sql.rs` runs for them. A leaf beside `statements.rs`, so
//! the store's one `impl Store` delegates here without a file importing it
//! back. None of these writes bumps the revision (no cache holds these
//! rows), but for disabling a partner, which `sql.rs` runs itself.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row as _};
use tollgate_core::StoreError;
use tollgate_core::partner::{
    Invitation, Offer, Partner, PartnerAccount, PartnerClient, PortalSession,
};

use crate::statements::backend;

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(crate) const PARTNER_COLUMNS: &str = "id, name, offers, enabled, created_at";

pub(crate) fn partner_row(r: &AnyRow) -> Result<Partner, StoreError> {
    let offers: String = r.try_get("offers").map_err(backend)?;
    let offers: Vec<Offer> =
        serde_json::from_str(&offers).map_err(|e| corrupt("partner offers", e))?;
    let enabled: i64 = r.try_get("enabled").map_err(backend)?;
    Ok(Partner {
        id: r.try_get("id").map_err(backend)?,
        name: r.try_get("name").map_err(backend)?,
        offers,
        enabled: enabled != 0,
        created_at: r.try_get("created_at").map_err(backend)?,
    })
}

pub(crate) fn offers_json(p: &Partner) -> Result<String, StoreError> {
    serde_json::to_string(&p.offers).map_err(|e| corrupt("partner offers", e))
}

pub(crate) async fn insert_partner(w: &AnyPool, p: &Partner) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tg_partners (id, name, offers, enabled, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(p.id.clone())
    .bind(p.name.clone())
    .bind(offers_json(p)?)
    .bind(i64::from(p.enabled))
    .bind(p.created_at)
    .execute(w)
    .await
    .map_err(backend)
    .map(drop)
}

pub(crate) async fn get_partner(r: &AnyPool, id: &str) -> Result<Option<Partner>, StoreError> {
    sqlx::query(&format!(
        "SELECT {PARTNER_COLUMNS} FROM tg_partners WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(r)
    .await
    .map_err(backend)?
    .as_ref()
    .map(partner_row)
    .transpose()
}

pub(crate) async fn list_partners(r: &AnyPool) -> Result<Vec<Partner>, StoreError> {
    sqlx::query(&format!(
        "SELECT {PARTNER_COLUMNS} FROM tg_partners ORDER BY id"
    ))
    .fetch_all(r)
    .await
    .map_err(backend)?
    .iter()
    .map(partner_row)
    .collect()
}

pub(crate) async fn update_partner(w: &AnyPool, p: &Partner) -> Result<bool, StoreError> {
    sqlx::query("UPDATE tg_partners SET name = $1, offers = $2 WHERE id = $3")
        .bind(p.name.clone())
        .bind(offers_json(p)?)
        .bind(p.id.clone())
        .execute(w)
        .await
        .map_err(backend)
        .map(|r| r.rows_affected() > 0)
}

/// The statements of [`Store::set_partner_enabled`](tollgate_core::store::Store::set_partner_enabled),
/// run by `sql.rs` in one transaction with the revision bump: the partner's
/// flag, its clients' flags, and (disabling) the end of its sessions.
pub(crate) const SET_ENABLED: &str = "UPDATE tg_partners SET enabled = $1 WHERE id = $2";
pub(crate) const SET_CLIENTS_ENABLED: &str = "UPDATE tg_clients SET enabled = $1 WHERE EXISTS \
     (SELECT 1 FROM tg_partner_clients o WHERE o.partner = $2 \
      AND o.env = tg_clients.env AND o.client_id = tg_clients.client_id)";
pub(crate) const END_SESSIONS: &str = "DELETE FROM tg_portal_sessions WHERE partner = $1";

pub(crate) async fn insert_partner_client(
    w: &AnyPool,
    o: &PartnerClient,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tg_partner_clients (env, client_id, partner, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(o.env.clone())
    .bind(o.client_id.clone())
    .bind(o.partner.clone())
    .bind(o.created_at)
    .execute(w)
    .await
    .map_err(backend)
    .map(drop)
}

pub(crate) async fn list_partner_clients(
    r: &AnyPool,
    partner: &str,
) -> Result<Vec<PartnerClient>, StoreError> {
    sqlx::query(
        "SELECT env, client_id, partner, created_at FROM tg_partner_clients WHERE partner = $1 \
         ORDER BY env, created_at, client_id",
    )
    .bind(partner.to_string())
    .fetch_all(r)
    .await
    .map_err(backend)?
    .iter()
    .map(|r| {
        Ok(PartnerClient {
            env: r.try_get("env").map_err(backend)?,
            client_id: r.try_get("client_id").map_err(backend)?,
            partner: r.try_get("partner").map_err(backend)?,
            created_at: r.try_get("created_at").map_err(backend)?,
        })
    })
    .collect()
}

pub(crate) async fn insert_invitation(w: &AnyPool, i: &Invitation) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tg_partner_invitations (digest, partner, created_at, expires_at, used_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(i.digest.clone())
    .bind(i.partner.clone())
    .bind(i.created_at)
    .bind(i.expires_at)
    .bind(i.used_at)
    .execute(w)
    .await
    .map_err(backend)
    .map(drop)
}

pub(crate) async fn get_invitation(
    r: &AnyPool,
    digest: &str,
) -> Result<Option<Invitation>, StoreError> {
    sqlx::query(
        "SELECT digest, partner, created_at, expires_at, used_at FROM tg_partner_invitations \
         WHERE digest = $1",
    )
    .bind(digest.to_string())
    .fetch_optional(r)
    .await
    .map_err(backend)?
    .map(|r| {
        Ok(Invitation {
            digest: r.try_get("digest").map_err(backend)?,
            partner: r.try_get("partner").map_err(backend)?,
            created_at: r.try_get("created_at").map_err(backend)?,
            expires_at: r.try_get("expires_at").map_err(backend)?,
            used_at: r.try_get("used_at").map_err(backend)?,
        })
    })
    .transpose()
}

/// Accepts an invitation and creates the account in one transaction; the
/// UPDATE is the compare-and-set (of two concurrent acceptances one wins).
pub(crate) async fn accept_invitation(
    w: &AnyPool,
    digest: &str,
    now: i64,
    a: &PartnerAccount,
) -> Result<bool, StoreError> {
    let mut tx = w.begin().await.map_err(backend)?;
    let n = sqlx::query(
        "UPDATE tg_partner_invitations SET used_at = $1 \
         WHERE digest = $2 AND partner = $3 AND used_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(digest.to_string())
    .bind(a.partner.clone())
    .execute(&mut *tx)
    .await
    .map_err(backend)?
    .rows_affected();
    if n == 0 {
        return Ok(false);
    }
    // A taken login fails here (Conflict) and the dropped transaction
    // leaves the invitation unused.
    sqlx::query(
        "INSERT INTO tg_partner_accounts \
         (login, partner, password_hash, failed_attempts, locked_until, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(a.login.clone())
    .bind(a.partner.clone())
    .bind(a.password_hash.clone())
    .bind(i64::from(a.failed_attempts))
    .bind(a.locked_until)
    .bind(a.created_at)
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok(true)
}

pub(crate) async fn get_partner_account(
    r: &AnyPool,
    login: &str,
) -> Result<Option<PartnerAccount>, StoreError> {
    sqlx::query(
        "SELECT login, partner, password_hash, failed_attempts, locked_until, created_at \
         FROM tg_partner_accounts WHERE login = $1",
    )
    .bind(login.to_string())
    .fetch_optional(r)
    .await
    .map_err(backend)?
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
    .transpose()
}

/// One statement: the count goes up, and the `max`-th failure locks the
/// account and starts the count again (so concurrent failures cannot skip
/// the lock).
pub(crate) async fn login_failed(
    w: &AnyPool,
    login: &str,
    now: i64,
    max: u32,
    lock_secs: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tg_partner_accounts SET \
         locked_until = CASE WHEN failed_attempts + 1 >= $1 THEN $2 ELSE locked_until END, \
         failed_attempts = CASE WHEN failed_attempts + 1 >= $1 THEN 0 ELSE failed_attempts + 1 END \
         WHERE login = $3",
    )
    .bind(i64::from(max))
    .bind(now.saturating_add(lock_secs))
    .bind(login.to_string())
    .execute(w)
    .await
    .map_err(backend)
    .map(drop)
}

pub(crate) async fn login_succeeded(w: &AnyPool, login: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE tg_partner_accounts SET failed_attempts = 0 WHERE login = $1")
        .bind(login.to_string())
        .execute(w)
        .await
        .map_err(backend)
        .map(drop)
}

pub(crate) async fn insert_session(w: &AnyPool, s: &PortalSession) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tg_portal_sessions (digest, login, partner, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(s.digest.clone())
    .bind(s.login.clone())
    .bind(s.partner.clone())
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
) -> Result<Option<PortalSession>, StoreError> {
    sqlx::query(
        "SELECT digest, login, partner, created_at, expires_at FROM tg_portal_sessions \
         WHERE digest = $1",
    )
    .bind(digest.to_string())
    .fetch_optional(r)
    .await
    .map_err(backend)?
    .map(|r| {
        Ok(PortalSession {
            digest: r.try_get("digest").map_err(backend)?,
            login: r.try_get("login").map_err(backend)?,
            partner: r.try_get("partner").map_err(backend)?,
            created_at: r.try_get("created_at").map_err(backend)?,
            expires_at: r.try_get("expires_at").map_err(backend)?,
        })
    })
    .transpose()
}

pub(crate) async fn delete_session(w: &AnyPool, digest: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM tg_portal_sessions WHERE digest = $1")
        .bind(digest.to_string())
        .execute(w)
        .await
        .map_err(backend)
        .map(drop)
}

/// The purge's statements: expired sessions and invitations.
pub(crate) const PURGE_SESSIONS: &str = "DELETE FROM tg_portal_sessions WHERE expires_at < $1";
pub(crate) const PURGE_INVITATIONS: &str =
    "DELETE FROM tg_partner_invitations WHERE expires_at < $1";
