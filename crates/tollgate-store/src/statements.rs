//! What the store (`sql.rs`) and SQLite's write batcher (`batch.rs`) both
//! need: the two hot statements the batcher runs, the query type, and the
//! mapping of sqlx errors to [`StoreError`]. A leaf: it imports neither of
//! them, so they share it without importing each other.

use tollgate_core::StoreError;
use tollgate_core::model::RefreshFamily;

/// A bound query over the `Any` driver.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// A sqlx error as the store reports it: a unique violation is a conflict
/// (the caller may say "already exists"), anything else a backend failure.
pub(crate) fn backend(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(d.to_string()),
        _ => StoreError::Backend(e.to_string()),
    }
}

/// The INSERT of a refresh family, as a literal for `concat!`.
macro_rules! insert_family_sql {
    () => {
        "INSERT INTO tg_refresh_families (env, family, contract, client_id, username, grant_type, \
         audience, scope, current_id, previous_id, access_jti, access_exp, issued_at, expires_at, \
         rotated_at, revoked_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    };
}

/// The INSERT of a refresh family ([`insert_family`]); the batcher repeats
/// it, renumbered, to commit several in one call.
pub(crate) const INSERT_FAMILY_SQL: &str = insert_family_sql!();

/// Stores a new refresh family.
pub(crate) fn insert_family(f: &RefreshFamily) -> AnyQuery<'static> {
    bind_family(sqlx::query(INSERT_FAMILY_SQL), f)
}

/// Stores a refresh family unless its (env, family) exists.
pub(crate) fn insert_family_if_absent(f: &RefreshFamily) -> AnyQuery<'static> {
    bind_family(
        sqlx::query(concat!(
            insert_family_sql!(),
            " ON CONFLICT (env, family) DO NOTHING"
        )),
        f,
    )
}

/// Binds a family's seventeen columns, in the order of the INSERT.
pub(crate) fn bind_family<'q>(q: AnyQuery<'q>, f: &RefreshFamily) -> AnyQuery<'q> {
    q.bind(f.env.clone())
        .bind(f.family.clone())
        .bind(f.contract.clone())
        .bind(f.client_id.clone())
        .bind(f.username.clone())
        .bind(f.grant.as_str())
        .bind(f.audience.clone())
        .bind(f.scope.clone())
        .bind(f.current.clone())
        .bind(f.previous.clone())
        .bind(f.access_jti.clone())
        .bind(f.access_exp)
        .bind(f.issued_at)
        .bind(f.expires_at)
        .bind(f.rotated_at)
        .bind(f.revoked_at)
        .bind(f.created_at)
}

/// The rotation's compare-and-set: only the live current token moves on.
/// PostgreSQL re-checks the condition after a concurrent writer's commit
/// (row lock); SQLite serializes writers. The right side of SET reads the
/// row as it was, so previous_id gets the old current_id.
pub(crate) const ROTATE_FAMILY_SQL: &str = "UPDATE tg_refresh_families SET current_id = $1, previous_id = current_id, \
     access_jti = $2, access_exp = $3, issued_at = $4, expires_at = $5, rotated_at = $4 \
     WHERE env = $6 AND family = $7 AND current_id = $8 \
     AND contract = $9 AND client_id = $10 \
     AND revoked_at IS NULL AND expires_at > $4";

/// [`ROTATE_FAMILY_SQL`], bound.
pub(crate) fn rotate_family(presented: &str, next: &RefreshFamily, now: i64) -> AnyQuery<'static> {
    bind_rotate(sqlx::query(ROTATE_FAMILY_SQL), presented, next, now)
}

/// Binds the rotation's ten parameters, in the order of [`ROTATE_FAMILY_SQL`].
pub(crate) fn bind_rotate<'q>(
    q: AnyQuery<'q>,
    presented: &str,
    next: &RefreshFamily,
    now: i64,
) -> AnyQuery<'q> {
    q.bind(next.current.clone())
        .bind(next.access_jti.clone())
        .bind(next.access_exp)
        .bind(now)
        .bind(next.expires_at)
        .bind(next.env.clone())
        .bind(next.family.clone())
        .bind(presented.to_string())
        .bind(next.contract.clone())
        .bind(next.client_id.clone())
}
