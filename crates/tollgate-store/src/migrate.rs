//! Copying one store into another of the same schema version
//! (`tollgate migrate-store`: SQLite to PostgreSQL).
//!
//! The source is read in one read transaction, so the copy is one
//! consistent snapshot even while a server keeps writing to it. The target
//! is written in one transaction, table by table in dependency order, in
//! pages: a row missing there is inserted, a row already there must equal
//! the source's, and a row that differs is a conflict — the target holds
//! other data under the same key (a server already ran on it, or it was
//! copied from another source), and the whole copy is rolled back rather
//! than mixed. Before the commit every table's rows are counted on both
//! sides (source rows copied == target rows, under the same liveness rule);
//! a mismatch (the target holds rows the source does not) is rolled back
//! too. So a run either leaves the target an exact copy of the source's
//! live rows or leaves it as it was, and running it again over its own
//! result copies nothing and succeeds.
//!
//! Rows that are already dead (expired families, refresh-JWT records and
//! deny-list entries: what the purge task would delete) are not copied.
//! Nor are the throttling and rate-limit counters: they live minutes and
//! change with every request while the source serves, so a copy would be
//! stale at once and a re-run would always find it different (see
//! [`NOT_COPIED`]).

use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::sql::SqlStore;
use crate::statements::AnyQuery;

/// Rows read, compared and written at a time. Small enough that one page's
/// parameters (17 columns × 400 rows) stay far below both backends' limits.
const PAGE: usize = 400;

/// A column's SQL type, as the schema declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// TEXT (JSON documents included).
    Text,
    /// BIGINT (times, counts, booleans as 0/1).
    Int,
}

/// One table as the copy sees it.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) name: &'static str,
    /// Every column; the primary key's columns first.
    pub(crate) columns: &'static [(&'static str, Kind)],
    /// How many of the leading `columns` form the primary key.
    pub(crate) key: usize,
    /// The column whose past value makes a row dead (the purge task's rule:
    /// `expires_at < now`), if any.
    pub(crate) expiry: Option<&'static str>,
}

use Kind::{Int, Text};

/// The tables copied, in dependency order (environments before what
/// references them).
pub(crate) const TABLES: &[Table] = &[
    Table {
        name: "tg_environments",
        columns: &[
            ("name", Text),
            ("issuer", Text),
            ("alg", Text),
            ("hosts", Text),
            ("dialect", Text),
            ("contracts", Text),
            ("settings", Text),
            ("created_at", Int),
        ],
        key: 1,
        expiry: None,
    },
    Table {
        name: "tg_signing_keys",
        columns: &[
            ("env", Text),
            ("kid", Text),
            ("alg", Text),
            ("public_jwk", Text),
            ("private_sealed", Text),
            ("created_at", Int),
            ("activates_at", Int),
        ],
        key: 2,
        expiry: None,
    },
    Table {
        name: "tg_apis",
        columns: &[
            ("env", Text),
            ("identifier", Text),
            ("permissions", Text),
            ("packages", Text),
            ("access_lifetime", Int),
            ("obligation", Text),
            ("token_permissions", Int),
            ("created_at", Int),
        ],
        key: 2,
        expiry: None,
    },
    Table {
        name: "tg_clients",
        columns: &[
            ("env", Text),
            ("client_id", Text),
            ("name", Text),
            ("secrets", Text),
            ("apis", Text),
            ("grant_types", Text),
            ("token_lifetime", Int),
            ("extra_claims", Text),
            ("capabilities", Text),
            ("obligation", Text),
            ("roles", Text),
            ("enabled", Int),
            ("created_at", Int),
        ],
        key: 2,
        expiry: None,
    },
    Table {
        name: "tg_users",
        columns: &[
            ("env", Text),
            ("username", Text),
            ("client_id", Text),
            ("password", Text),
            ("roles", Text),
            ("enabled", Int),
            ("created_at", Int),
        ],
        key: 2,
        expiry: None,
    },
    Table {
        name: "tg_refresh_families",
        columns: &[
            ("env", Text),
            ("family", Text),
            ("contract", Text),
            ("client_id", Text),
            ("username", Text),
            ("grant_type", Text),
            ("audience", Text),
            ("scope", Text),
            ("current_id", Text),
            ("previous_id", Text),
            ("access_jti", Text),
            ("access_exp", Int),
            ("issued_at", Int),
            ("expires_at", Int),
            ("rotated_at", Int),
            ("revoked_at", Int),
            ("created_at", Int),
        ],
        key: 2,
        expiry: Some("expires_at"),
    },
    Table {
        name: "tg_refresh_jwts",
        columns: &[
            ("env", Text),
            ("jti", Text),
            ("client_id", Text),
            ("audience", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
        ],
        key: 2,
        expiry: Some("expires_at"),
    },
    Table {
        name: "tg_revoked_tokens",
        columns: &[("env", Text), ("jti", Text), ("expires_at", Int)],
        key: 2,
        expiry: Some("expires_at"),
    },
    // A switch-over's records: both live until removed (a trusted issuer
    // until `refresh-jwt untrust`; a cut-off for good, since an incumbent's
    // token older than it may still turn up). The issuers' keys are copied
    // as stored, HS256 secrets sealed under the master key both stores share.
    Table {
        name: "tg_trusted_issuers",
        columns: &[
            ("env", Text),
            ("id", Text),
            ("purpose", Text),
            ("keys", Text),
            ("issuer", Text),
            ("audience", Text),
            ("client_claim", Text),
            ("user_claim", Text),
            ("api", Text),
            ("created_at", Int),
        ],
        key: 2,
        expiry: None,
    },
    Table {
        name: "tg_refresh_cutoffs",
        columns: &[("env", Text), ("client_id", Text), ("not_before", Int)],
        key: 2,
        expiry: None,
    },
    // The audit log: kept for good (no purge), so copied whole.
    Table {
        name: "tg_audit",
        columns: &[
            ("id", Text),
            ("at", Int),
            ("actor", Text),
            ("action", Text),
            ("env", Text),
            ("target", Text),
            ("source", Text),
            ("before_json", Text),
            ("after_json", Text),
        ],
        key: 1,
        expiry: None,
    },
    // API keys: every row, also expired and revoked ones (a key without an
    // expiry has a NULL there, which a liveness clause would drop); their
    // digests are keyed by the master key both stores share.
    Table {
        name: "tg_api_keys",
        columns: &[
            ("env", Text),
            ("id", Text),
            ("client_id", Text),
            ("name", Text),
            ("digest", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
        ],
        key: 2,
        expiry: None,
    },
    // The partner portal: partners, what they own, their accounts (hashes
    // only), and live invitations and sessions (digests only: a partner
    // signed in stays signed in across the move).
    Table {
        name: "tg_partners",
        columns: &[
            ("id", Text),
            ("name", Text),
            ("offers", Text),
            ("enabled", Int),
            ("created_at", Int),
        ],
        key: 1,
        expiry: None,
    },
    Table {
        name: "tg_partner_clients",
        columns: &[
            ("env", Text),
            ("client_id", Text),
            ("partner", Text),
            ("created_at", Int),
        ],
        key: 2,
        expiry: None,
    },
    Table {
        name: "tg_partner_accounts",
        columns: &[
            ("login", Text),
            ("partner", Text),
            ("password_hash", Text),
            ("failed_attempts", Int),
            ("locked_until", Int),
            ("created_at", Int),
        ],
        key: 1,
        expiry: None,
    },
    Table {
        name: "tg_partner_invitations",
        columns: &[
            ("digest", Text),
            ("partner", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("used_at", Int),
        ],
        key: 1,
        expiry: Some("expires_at"),
    },
    Table {
        name: "tg_portal_sessions",
        columns: &[
            ("digest", Text),
            ("login", Text),
            ("partner", Text),
            ("created_at", Int),
            ("expires_at", Int),
        ],
        key: 1,
        expiry: Some("expires_at"),
    },
    // Second factors (sealed; the target shares the master key) and
    // pending handovers (sealed, until they expire).
    Table {
        name: "tg_partner_totp",
        columns: &[
            ("login", Text),
            ("sealed", Text),
            ("confirmed", Int),
            ("last_step", Int),
            ("created_at", Int),
        ],
        key: 1,
        expiry: None,
    },
    Table {
        name: "tg_portal_handovers",
        columns: &[
            ("digest", Text),
            ("partner", Text),
            ("label", Text),
            ("sealed", Text),
            ("created_at", Int),
            ("expires_at", Int),
        ],
        key: 1,
        expiry: Some("expires_at"),
    },
    // Usage per client and day: the history partners see. Copied whole
    // (today's row keeps moving while the source serves: copy with the
    // source stopped, or a re-run finds today's counts different).
    Table {
        name: "tg_usage",
        columns: &[
            ("env", Text),
            ("client_id", Text),
            ("day", Int),
            ("issued", Int),
            ("errors", Int),
            ("throttled", Int),
        ],
        key: 3,
        expiry: None,
    },
    // Package requests (the record of each decision too), and provider
    // admins' portal sessions (digests only, like partners').
    Table {
        name: "tg_package_requests",
        columns: &[
            ("id", Text),
            ("partner", Text),
            ("requested_by", Text),
            ("env", Text),
            ("api", Text),
            ("package", Text),
            ("note", Text),
            ("status", Text),
            ("created_at", Int),
            ("decided_at", Int),
            ("decided_by", Text),
        ],
        key: 1,
        expiry: None,
    },
    Table {
        name: "tg_provider_sessions",
        columns: &[
            ("digest", Text),
            ("admin_client", Text),
            ("scope", Text),
            ("created_at", Int),
            ("expires_at", Int),
        ],
        key: 1,
        expiry: Some("expires_at"),
    },
];

/// The schema's tables that are not copied row by row, and why.
pub const NOT_COPIED: &[(&str, &str)] = &[
    (
        "tg_meta",
        "the target keeps its own schema version and revision (bumped after a copy); \
         the last-alive time is carried over, the later of the two kept",
    ),
    (
        "tg_issuance_counts",
        "rate-limit windows (limit obligations) start afresh on the target",
    ),
    (
        "tg_auth_failures",
        "failed-attempt counters (throttling) start afresh on the target",
    ),
];

/// Why a copy was refused or failed. Nothing was committed to the target
/// in any of these cases.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The two stores are at different schema versions.
    #[error("the source is at schema version {source_version}, the target at {target_version}")]
    SchemaMismatch {
        /// The source's version.
        source_version: i64,
        /// The target's version.
        target_version: i64,
    },
    /// Reading the source failed.
    #[error("reading the source: {0}")]
    Source(String),
    /// Reading or writing the target failed.
    #[error("writing the target: {0}")]
    Target(String),
    /// The target holds rows that differ from the source's under the same
    /// key: it is not (or no longer) a copy of this source.
    #[error(
        "{table}: {rows} row(s) in the target differ from the source's under the same key \
         (first: {first}); the target is not a copy of this source (was a server already \
         running on it?): nothing was written"
    )]
    Conflict {
        /// The table.
        table: &'static str,
        /// How many rows differ.
        rows: u64,
        /// The first such row's key.
        first: String,
    },
    /// After the copy the target's live rows do not match the source's.
    #[error(
        "{table}: {source_rows} live row(s) in the source, {target_rows} in the target after \
         the copy (the target holds rows the source does not): nothing was written"
    )]
    CountMismatch {
        /// The table.
        table: &'static str,
        /// Live rows in the source.
        source_rows: u64,
        /// Live rows in the target.
        target_rows: u64,
    },
}

/// What happened to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableCopy {
    /// The table.
    pub table: &'static str,
    /// Its live rows in the source snapshot.
    pub source_rows: u64,
    /// Rows inserted into the target.
    pub copied: u64,
    /// Rows the target already held, equal to the source's.
    pub present: u64,
    /// Its live rows in the target after the copy (== `source_rows`).
    pub target_rows: u64,
}

/// What a copy did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MigrationReport {
    /// The schema version of both stores.
    pub schema_version: i64,
    /// Every copied table, in the order copied.
    pub tables: Vec<TableCopy>,
    /// Whether the target's revision was bumped (anything was inserted), so
    /// that servers already running on it reload.
    pub revision_bumped: bool,
}

/// Where a copy stands, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The table being copied.
    pub table: &'static str,
    /// Its rows handled so far.
    pub done: u64,
    /// Its live rows in the source.
    pub total: u64,
    /// Whether the table is finished (and verified).
    pub finished: bool,
}

impl Progress {
    /// The start of `table`, with `total` rows to go.
    pub fn new(table: &'static str, total: u64) -> Self {
        Self {
            table,
            done: 0,
            total,
            finished: false,
        }
    }
}

/// One column's value. No `Debug`: rows carry secret hashes and sealed keys.
#[derive(Clone, PartialEq, Eq)]
enum Value {
    Text(Option<String>),
    Int(Option<i64>),
}

type Values = Vec<Value>;

fn read(r: &AnyRow, columns: &[(&str, Kind)]) -> Result<Values, sqlx::Error> {
    columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| match kind {
            Text => r.try_get::<Option<String>, _>(i).map(Value::Text),
            Int => r.try_get::<Option<i64>, _>(i).map(Value::Int),
        })
        .collect()
}

fn bind<'q>(q: AnyQuery<'q>, v: &Value) -> AnyQuery<'q> {
    match v {
        Value::Text(s) => q.bind(s.clone()),
        Value::Int(i) => q.bind(*i),
    }
}

/// A row's key as an operator reads it: `(default, abc)`. Keys are names
/// and ids, never secrets.
fn show_key(key: &[Value]) -> String {
    let parts: Vec<String> = key
        .iter()
        .map(|v| match v {
            Value::Text(Some(s)) => s.clone(),
            Value::Int(Some(i)) => i.to_string(),
            Value::Text(None) | Value::Int(None) => "NULL".into(),
        })
        .collect();
    format!("({})", parts.join(", "))
}

fn column_list(t: &Table) -> String {
    t.columns
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_list(t: &Table) -> String {
    t.columns[..t.key]
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `WHERE expires_at >= $1` for a table with an expiry: the rows the purge
/// task would keep at `now`. Empty otherwise.
fn live_clause(t: &Table) -> String {
    t.expiry
        .map(|c| format!(" WHERE {c} >= $1"))
        .unwrap_or_default()
}

/// Counts a table's live rows (`$1` = now when it has an expiry).
pub(crate) fn count_sql(t: &Table) -> String {
    format!("SELECT COUNT(*) FROM {}{}", t.name, live_clause(t))
}

/// One page of live rows in key order: the first page, or the one after
/// the key bound next (keyset pagination, so a page costs the same however
/// deep into the table it is). `$1` is now when the table has an expiry.
pub(crate) fn page_sql(t: &Table, after: bool) -> String {
    let mut sql = format!("SELECT {} FROM {}", column_list(t), t.name);
    let mut next = 1;
    let mut conds = Vec::new();
    if let Some(c) = t.expiry {
        conds.push(format!("{c} >= $1"));
        next = 2;
    }
    if after {
        // (k1 > a) OR (k1 = a AND k2 > b) OR ...: portable where row-value
        // comparison is not written the same way everywhere.
        let keys: Vec<&str> = t.columns[..t.key].iter().map(|(c, _)| *c).collect();
        let mut ors = Vec::new();
        for i in 0..keys.len() {
            let mut ands: Vec<String> = (0..i)
                .map(|j| format!("{} = ${}", keys[j], next + j))
                .collect();
            ands.push(format!("{} > ${}", keys[i], next + i));
            ors.push(format!("({})", ands.join(" AND ")));
        }
        conds.push(format!("({})", ors.join(" OR ")));
    }
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    sql.push_str(&format!(" ORDER BY {} LIMIT {PAGE}", key_list(t)));
    sql
}

/// The target's rows with any of `n` keys (all key columns bound in order,
/// key after key), as a join with a `VALUES` list: both backends name its
/// columns `column1`, `column2`…, and the planner may probe the primary key
/// or hash the list. (An `OR` of 400 equalities cost PostgreSQL 150 ms of
/// planning per page.)
pub(crate) fn by_keys_sql(t: &Table, n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|row| {
            let ps: Vec<String> = (0..t.key)
                .map(|i| format!("${}", row * t.key + i + 1))
                .collect();
            format!("({})", ps.join(", "))
        })
        .collect();
    let on: Vec<String> = t.columns[..t.key]
        .iter()
        .enumerate()
        .map(|(i, (c, _))| format!("t.{c} = k.column{}", i + 1))
        .collect();
    let columns: Vec<String> = t.columns.iter().map(|(c, _)| format!("t.{c}")).collect();
    format!(
        "SELECT {} FROM {} t JOIN (VALUES {}) AS k ON {}",
        columns.join(", "),
        t.name,
        rows.join(", "),
        on.join(" AND ")
    )
}

/// Inserts `n` rows; a row whose key arrived meanwhile is left alone (the
/// final count catches what that means).
pub(crate) fn insert_sql(t: &Table, n: usize) -> String {
    let width = t.columns.len();
    let rows: Vec<String> = (0..n)
        .map(|r| {
            let ps: Vec<String> = (0..width)
                .map(|c| format!("${}", r * width + c + 1))
                .collect();
            format!("({})", ps.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) DO NOTHING",
        t.name,
        column_list(t),
        rows.join(", "),
        key_list(t)
    )
}

/// How a page compares with the target.
#[derive(Default)]
struct Compared {
    /// Rows missing from the target.
    missing: Vec<Values>,
    /// Rows there and equal.
    present: u64,
    /// Keys of the rows there and different.
    differing: Vec<String>,
}

/// Sorts a page of source rows against the target's rows with the same keys.
fn compare(t: &Table, page: Vec<Values>, existing: &[Values]) -> Compared {
    let mut out = Compared::default();
    for row in page {
        match existing.iter().find(|e| e[..t.key] == row[..t.key]) {
            None => out.missing.push(row),
            Some(e) if *e == row => out.present += 1,
            Some(_) => out.differing.push(show_key(&row[..t.key])),
        }
    }
    out
}

impl SqlStore {
    /// Copies this store's live rows into `target` (already opened, so its
    /// schema is current), as of `now`, calling `progress` as it goes. See
    /// the module documentation for what is copied and when it refuses.
    pub async fn migrate_into(
        &self,
        target: &SqlStore,
        now: i64,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<MigrationReport, MigrateError> {
        let (source_version, _) = self
            .schema_version()
            .await
            .map_err(|e| MigrateError::Source(e.to_string()))?;
        let (target_version, _) = target
            .schema_version()
            .await
            .map_err(|e| MigrateError::Target(e.to_string()))?;
        if source_version != target_version {
            return Err(MigrateError::SchemaMismatch {
                source_version,
                target_version,
            });
        }
        let src_err =
            |what: String| move |e: sqlx::Error| MigrateError::Source(format!("{what}: {e}"));
        let dst_err =
            |what: String| move |e: sqlx::Error| MigrateError::Target(format!("{what}: {e}"));

        let mut src = self
            .reader()
            .begin()
            .await
            .map_err(src_err("beginning".into()))?;
        if self.backend() == "postgres" {
            // PostgreSQL's default (read committed) gives each statement its
            // own snapshot; SQLite's read transaction is one snapshot already.
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *src)
                .await
                .map_err(src_err("beginning".into()))?;
        }
        let mut dst = target
            .writer()
            .begin()
            .await
            .map_err(dst_err("beginning".into()))?;

        let mut tables = Vec::with_capacity(TABLES.len());
        for t in TABLES {
            let count_sql = count_sql(t);
            let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
            if t.expiry.is_some() {
                count = count.bind(now);
            }
            let total = count
                .fetch_one(&mut *src)
                .await
                .map_err(src_err(format!("counting {}", t.name)))?;
            let total = u64::try_from(total).unwrap_or_default();
            progress(Progress {
                table: t.name,
                done: 0,
                total,
                finished: false,
            });
            let mut copy = TableCopy {
                table: t.name,
                source_rows: 0,
                copied: 0,
                present: 0,
                target_rows: 0,
            };
            let mut differing: Vec<String> = Vec::new();
            let mut after: Option<Values> = None;
            loop {
                let sql = page_sql(t, after.is_some());
                let mut q = sqlx::query(&sql);
                if t.expiry.is_some() {
                    q = q.bind(now);
                }
                for v in after.iter().flat_map(|k| k.iter()) {
                    q = bind(q, v);
                }
                let page = q
                    .fetch_all(&mut *src)
                    .await
                    .map_err(src_err(format!("reading {}", t.name)))?
                    .iter()
                    .map(|r| read(r, t.columns))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(src_err(format!("reading {}", t.name)))?;
                let Some(last) = page.last() else { break };
                let full = page.len() == PAGE;
                after = Some(last[..t.key].to_vec());
                copy.source_rows += page.len() as u64;

                let sql = by_keys_sql(t, page.len());
                let mut q = sqlx::query(&sql);
                for v in page.iter().flat_map(|r| r[..t.key].iter()) {
                    q = bind(q, v);
                }
                let existing = q
                    .fetch_all(&mut *dst)
                    .await
                    .map_err(dst_err(format!("reading {}", t.name)))?
                    .iter()
                    .map(|r| read(r, t.columns))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(dst_err(format!("reading {}", t.name)))?;
                let compared = compare(t, page, &existing);
                copy.present += compared.present;
                differing.extend(compared.differing);
                // Once the table conflicts nothing will be committed: go on
                // only to count how much differs.
                if differing.is_empty() && !compared.missing.is_empty() {
                    let sql = insert_sql(t, compared.missing.len());
                    let mut q = sqlx::query(&sql);
                    for v in compared.missing.iter().flatten() {
                        q = bind(q, v);
                    }
                    copy.copied += q
                        .execute(&mut *dst)
                        .await
                        .map_err(dst_err(format!("writing {}", t.name)))?
                        .rows_affected();
                }
                progress(Progress {
                    table: t.name,
                    done: copy.source_rows,
                    total,
                    finished: false,
                });
                if !full {
                    break;
                }
            }
            if let Some(first) = differing.first() {
                // Dropping `dst` rolls it back; said explicitly all the same.
                let _ = dst.rollback().await;
                return Err(MigrateError::Conflict {
                    table: t.name,
                    rows: differing.len() as u64,
                    first: first.clone(),
                });
            }
            let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
            if t.expiry.is_some() {
                count = count.bind(now);
            }
            let there = count
                .fetch_one(&mut *dst)
                .await
                .map_err(dst_err(format!("counting {}", t.name)))?;
            copy.target_rows = u64::try_from(there).unwrap_or_default();
            if copy.target_rows != copy.source_rows {
                let _ = dst.rollback().await;
                return Err(MigrateError::CountMismatch {
                    table: t.name,
                    source_rows: copy.source_rows,
                    target_rows: copy.target_rows,
                });
            }
            progress(Progress {
                table: t.name,
                done: copy.source_rows,
                total,
                finished: true,
            });
            tables.push(copy);
        }

        // The outage rule needs the last time the service was alive: keep
        // the later of the two, as `mark_alive` does.
        let alive: Option<i64> =
            sqlx::query_scalar("SELECT value FROM tg_meta WHERE key = 'alive'")
                .fetch_optional(&mut *src)
                .await
                .map_err(src_err("reading tg_meta".into()))?;
        if let Some(alive) = alive {
            sqlx::query(
                "INSERT INTO tg_meta (key, value) VALUES ('alive', $1) ON CONFLICT (key) \
                 DO UPDATE SET value = CASE WHEN excluded.value > tg_meta.value \
                 THEN excluded.value ELSE tg_meta.value END",
            )
            .bind(alive)
            .execute(&mut *dst)
            .await
            .map_err(dst_err("writing tg_meta".into()))?;
        }
        let revision_bumped = tables.iter().any(|t| t.copied > 0);
        if revision_bumped {
            sqlx::query("UPDATE tg_meta SET value = value + 1 WHERE key = 'revision'")
                .execute(&mut *dst)
                .await
                .map_err(dst_err("writing tg_meta".into()))?;
        }
        dst.commit().await.map_err(dst_err("committing".into()))?;
        // A read-only transaction: ending it changes nothing.
        let _ = src.rollback().await;
        Ok(MigrationReport {
            schema_version: source_version,
            tables,
            revision_bumped,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use tollgate_core::Tollgate;
    use tollgate_core::crypto::master::MasterKey;
    use tollgate_core::model::{GrantType, RefreshFamily};
    use tollgate_core::store::Store as _;

    use super::*;

    #[test]
    fn pages_follow_the_key_and_keep_only_live_rows() {
        let t = TABLES
            .iter()
            .find(|t| t.name == "tg_revoked_tokens")
            .unwrap();
        assert_eq!(
            page_sql(t, false),
            format!(
                "SELECT env, jti, expires_at FROM tg_revoked_tokens WHERE expires_at >= $1 \
                 ORDER BY env, jti LIMIT {PAGE}"
            )
        );
        assert_eq!(
            page_sql(t, true),
            format!(
                "SELECT env, jti, expires_at FROM tg_revoked_tokens WHERE expires_at >= $1 \
                 AND ((env > $2) OR (env = $2 AND jti > $3)) ORDER BY env, jti LIMIT {PAGE}"
            )
        );
        let e = &TABLES[0];
        assert!(page_sql(e, true).contains("WHERE ((name > $1)) ORDER BY name"));
        assert_eq!(
            count_sql(t),
            "SELECT COUNT(*) FROM tg_revoked_tokens WHERE expires_at >= $1"
        );
        assert_eq!(count_sql(e), "SELECT COUNT(*) FROM tg_environments");
    }

    #[test]
    fn lookups_and_inserts_number_their_parameters_row_after_row() {
        let t = TABLES
            .iter()
            .find(|t| t.name == "tg_revoked_tokens")
            .unwrap();
        assert_eq!(
            by_keys_sql(t, 2),
            "SELECT t.env, t.jti, t.expires_at FROM tg_revoked_tokens t \
             JOIN (VALUES ($1, $2), ($3, $4)) AS k ON t.env = k.column1 AND t.jti = k.column2"
        );
        assert_eq!(
            insert_sql(t, 2),
            "INSERT INTO tg_revoked_tokens (env, jti, expires_at) VALUES ($1, $2, $3), \
             ($4, $5, $6) ON CONFLICT (env, jti) DO NOTHING"
        );
        // The widest table's page stays well under SQLite's and
        // PostgreSQL's parameter limits (32766, 65535).
        let widest = TABLES.iter().map(|t| t.columns.len()).max().unwrap();
        assert!(widest * PAGE < 32_766);
    }

    #[test]
    fn rows_compare_as_missing_present_or_differing() {
        let t = TABLES
            .iter()
            .find(|t| t.name == "tg_revoked_tokens")
            .unwrap();
        let row = |jti: &str, exp: i64| {
            vec![
                Value::Text(Some("default".into())),
                Value::Text(Some(jti.into())),
                Value::Int(Some(exp)),
            ]
        };
        let c = compare(
            t,
            vec![row("a", 1), row("b", 2), row("c", 3)],
            &[row("b", 2), row("c", 4)],
        );
        assert_eq!(c.missing.len(), 1);
        assert!(c.missing[0] == row("a", 1));
        assert_eq!(c.present, 1);
        assert_eq!(c.differing, ["(default, c)"]);
    }

    /// The copy must know every column of every table, or a later schema
    /// step would be lost in a migration without anyone noticing.
    #[tokio::test]
    async fn every_table_and_column_of_the_schema_is_copied_or_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqlStore::open_data_dir(dir.path()).await.unwrap();
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(s.reader())
        .await
        .unwrap();
        let mut seen = BTreeSet::new();
        for name in &names {
            if NOT_COPIED.iter().any(|(n, _)| n == name) {
                continue;
            }
            let t = TABLES
                .iter()
                .find(|t| t.name == name)
                .unwrap_or_else(|| unreachable!("table {name} is neither copied nor named"));
            let info = sqlx::query(&format!(
                "SELECT name, type, pk FROM pragma_table_info('{name}') ORDER BY cid"
            ))
            .fetch_all(s.reader())
            .await
            .unwrap();
            let mut columns: Vec<(String, Kind)> = Vec::new();
            let mut key: Vec<(i64, String)> = Vec::new();
            for r in &info {
                let col: String = r.try_get(0).unwrap();
                let ty: String = r.try_get(1).unwrap();
                let pk: i64 = r.try_get(2).unwrap();
                let kind = if ty == "TEXT" { Text } else { Int };
                assert!(ty == "TEXT" || ty == "BIGINT", "{name}.{col}: {ty}");
                if pk > 0 {
                    key.push((pk, col.clone()));
                }
                columns.push((col, kind));
            }
            key.sort();
            let key: Vec<&str> = key.iter().map(|(_, c)| c.as_str()).collect();
            let spec_key: Vec<&str> = t.columns[..t.key].iter().map(|(c, _)| *c).collect();
            assert_eq!(key, spec_key, "{name}: primary key");
            let mut want: Vec<(String, Kind)> = t
                .columns
                .iter()
                .map(|(c, k)| ((*c).to_string(), *k))
                .collect();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            columns.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(columns, want, "{name}: columns");
            seen.insert(t.name);
        }
        assert_eq!(seen.len(), TABLES.len(), "every copied table exists");
        s.close().await;
    }

    fn family(id: &str, expires_at: i64) -> RefreshFamily {
        RefreshFamily {
            env: "default".into(),
            family: id.into(),
            contract: "header-login".into(),
            client_id: "c".into(),
            username: "u".into(),
            grant: GrantType::Password,
            audience: "api".into(),
            scope: String::new(),
            current: format!("{id}-1"),
            previous: None,
            access_jti: format!("{id}-a"),
            access_exp: expires_at,
            issued_at: 1,
            expires_at,
            rotated_at: None,
            revoked_at: None,
            created_at: 1,
        }
    }

    /// The target: a second SQLite store, or a fresh PostgreSQL database
    /// when the suite runs over PostgreSQL.
    async fn target(dir: &std::path::Path) -> (SqlStore, Option<tollgate_testkit::TempDatabase>) {
        match tollgate_testkit::postgres_base() {
            Some(base) => {
                let db = tollgate_testkit::TempDatabase::create(&base).unwrap();
                (SqlStore::open(&db.url()).await.unwrap(), Some(db))
            }
            None => {
                let d = dir.join("target");
                std::fs::create_dir(&d).unwrap();
                (SqlStore::open_data_dir(&d).await.unwrap(), None)
            }
        }
    }

    #[tokio::test]
    async fn copies_live_rows_once_refuses_divergence_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let src_dir = dir.path().join("source");
        std::fs::create_dir(&src_dir).unwrap();
        let src = SqlStore::open_data_dir(&src_dir).await.unwrap();
        Tollgate::open(
            Arc::new(src.clone()),
            &MasterKey::generate().unwrap(),
            "http://t",
        )
        .await
        .unwrap();
        // More families than one page, one of them already dead.
        let now = 1_000_000;
        for i in 0..(PAGE + 5) {
            src.insert_refresh_family(&family(&format!("f{i:04}"), now + 10))
                .await
                .unwrap();
        }
        src.insert_refresh_family(&family("dead", now - 1))
            .await
            .unwrap();
        src.revoke_token("default", "j1", now + 10).await.unwrap();
        src.mark_alive(now - 5).await.unwrap();
        // A switch-over's records travel too.
        src.insert_trusted_issuer(&tollgate_testkit::contract::trusted("default", "old", 1))
            .await
            .unwrap();
        src.revoke_client_refresh_tokens("default", "c", now - 3)
            .await
            .unwrap();
        let (dst, _db) = target(dir.path()).await;
        let rev_before = dst.revision().await.unwrap();

        let mut seen = Vec::new();
        let r = src
            .migrate_into(&dst, now, &mut |p| seen.push(p))
            .await
            .unwrap();
        let fam = r
            .tables
            .iter()
            .find(|t| t.table == "tg_refresh_families")
            .unwrap();
        assert_eq!(
            (fam.source_rows, fam.copied, fam.present, fam.target_rows),
            ((PAGE + 5) as u64, (PAGE + 5) as u64, 0, (PAGE + 5) as u64)
        );
        assert!(r.revision_bumped);
        assert!(dst.revision().await.unwrap() > rev_before);
        assert_eq!(dst.last_alive().await.unwrap(), Some(now - 5));
        assert!(
            dst.get_refresh_family("default", "dead")
                .await
                .unwrap()
                .is_none()
        );
        assert!(dst.is_token_revoked("default", "j1").await.unwrap());
        assert_eq!(
            dst.list_signing_keys().await.unwrap(),
            src.list_signing_keys().await.unwrap()
        );
        assert_eq!(
            dst.list_trusted_issuers().await.unwrap(),
            src.list_trusted_issuers().await.unwrap()
        );
        assert_eq!(dst.list_refresh_cutoffs().await.unwrap().len(), 1);
        // Progress: a start, pages, and one finish per table.
        assert_eq!(seen.iter().filter(|p| p.finished).count(), TABLES.len());
        assert!(seen.contains(&Progress {
            table: "tg_refresh_families",
            done: PAGE as u64,
            total: (PAGE + 5) as u64,
            finished: false
        }));

        // Again: nothing to copy, the same counts, the revision left alone.
        let rev = dst.revision().await.unwrap();
        let again = src.migrate_into(&dst, now, &mut |_| {}).await.unwrap();
        assert!(
            again
                .tables
                .iter()
                .all(|t| t.copied == 0 && t.present == t.source_rows)
        );
        let counts =
            |r: &MigrationReport| -> Vec<u64> { r.tables.iter().map(|t| t.target_rows).collect() };
        assert_eq!(counts(&again), counts(&r));
        assert!(!again.revision_bumped);
        assert_eq!(dst.revision().await.unwrap(), rev);

        // A row deleted from the target comes back.
        sqlx::query("DELETE FROM tg_revoked_tokens")
            .execute(dst.writer())
            .await
            .unwrap();
        let again = src.migrate_into(&dst, now, &mut |_| {}).await.unwrap();
        let revoked = again
            .tables
            .iter()
            .find(|t| t.table == "tg_revoked_tokens")
            .unwrap();
        assert_eq!(revoked.copied, 1);

        // A row the source does not have: the counts differ, nothing written.
        dst.revoke_token("default", "extra", now + 10)
            .await
            .unwrap();
        let missing = family("late", now + 10);
        src.insert_refresh_family(&missing).await.unwrap();
        let e = src.migrate_into(&dst, now, &mut |_| {}).await.unwrap_err();
        assert!(
            matches!(
                e,
                MigrateError::CountMismatch {
                    table: "tg_revoked_tokens",
                    source_rows: 1,
                    target_rows: 2
                }
            ),
            "{e}"
        );
        assert!(
            dst.get_refresh_family("default", "late")
                .await
                .unwrap()
                .is_none(),
            "rolled back"
        );
        sqlx::query("DELETE FROM tg_revoked_tokens WHERE jti = 'extra'")
            .execute(dst.writer())
            .await
            .unwrap();

        // A row that differs under the same key: refused, nothing written.
        src.revoke_refresh_family("default", "f0001", now)
            .await
            .unwrap();
        let e = src.migrate_into(&dst, now, &mut |_| {}).await.unwrap_err();
        match &e {
            MigrateError::Conflict { table, rows, first } => {
                assert_eq!(
                    (*table, *rows, first.as_str()),
                    ("tg_refresh_families", 1, "(default, f0001)")
                );
            }
            other => unreachable!("{other}"),
        }
        assert!(
            dst.get_refresh_family("default", "late")
                .await
                .unwrap()
                .is_none(),
            "rolled back"
        );
        src.close().await;
        dst.close().await;
    }
}
