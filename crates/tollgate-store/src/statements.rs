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

/// The INSERT of a refresh family up to its VALUES, as a literal for `concat!`.
macro_rules! insert_family_into {
    () => {
        "INSERT INTO tg_refresh_families (env, family, contract, client_id, username, grant_type, \
         audience, scope, current_id, previous_id, access_jti, access_exp, issued_at, expires_at, \
         rotated_at, revoked_at, created_at) "
    };
}

/// The INSERT of a refresh family, as a literal for `concat!`.
macro_rules! insert_family_sql {
    () => {
        concat!(
            insert_family_into!(),
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        )
    };
}

/// [`insert_family_sql`] up to its VALUES: the batcher inserts several
/// families with one statement.
pub(crate) const INSERT_FAMILY_INTO: &str = insert_family_into!();

/// The INSERT of a refresh family ([`insert_family`]).
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

/// How many parameters [`bind_family`] binds (one per column).
pub(crate) const FAMILY_PARAMETERS: usize = 17;

/// How many parameters [`bind_rotate`] binds.
pub(crate) const ROTATE_PARAMETERS: usize = 10;

/// [`ROTATE_FAMILY_SQL`] for `rows` rotations in one statement (SQLite's
/// write batcher): the same compare-and-set, each VALUES row carrying one
/// rotation's ten parameters in [`bind_rotate`]'s order (`columnK` is
/// `$K`). A family matched by two rows of one statement is updated once, by
/// one of them. The parameters are anonymous `?`: sqlx looks a numbered
/// parameter up by its name, and SQLite finds a name by scanning them all,
/// so a statement of a thousand numbered parameters binds in quadratic time
/// (a third of the writer thread's time, measured).
pub(crate) fn rotate_families_sql(rows: usize) -> String {
    format!(
        "UPDATE tg_refresh_families AS f SET current_id = v.column1, previous_id = f.current_id, \
         access_jti = v.column2, access_exp = v.column3, issued_at = v.column4, \
         expires_at = v.column5, rotated_at = v.column4 \
         FROM (VALUES {}) AS v \
         WHERE f.env = v.column6 AND f.family = v.column7 AND f.current_id = v.column8 \
         AND f.contract = v.column9 AND f.client_id = v.column10 \
         AND f.revoked_at IS NULL AND f.expires_at > v.column4",
        anonymous_rows(rows, ROTATE_PARAMETERS)
    )
}

/// [`INSERT_FAMILY_SQL`] for `rows` families in one statement (SQLite's
/// write batcher), each VALUES row in [`bind_family`]'s order. A row whose
/// env is empty is skipped: the batcher pads with such rows so that a few
/// texts serve every batch size.
pub(crate) fn insert_families_sql(rows: usize) -> String {
    format!(
        "{INSERT_FAMILY_INTO}SELECT * FROM (VALUES {}) WHERE column1 <> ''",
        anonymous_rows(rows, FAMILY_PARAMETERS)
    )
}

/// `(?, …), (?, …)`: `rows` rows of `columns` anonymous parameters.
fn anonymous_rows(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

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
