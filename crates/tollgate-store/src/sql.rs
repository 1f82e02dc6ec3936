//! [`SqlStore`]: the `Store` implementation over SQLite or PostgreSQL.

use std::path::Path;
use std::str::FromStr;

use async_trait::async_trait;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use tollgate_core::StoreError;
use tollgate_core::feed::ChangeFeed;
use tollgate_core::incumbent::{RefreshCutoff, TrustPurpose, TrustedIssuer};
use tollgate_core::model::{
    Alg, Api, ApiKey, AuditEntry, Client, Environment, GrantType, Obligation, ObligationTarget,
    RefreshFamily, RefreshJwtRecord, SecretRecord, SigningKeyRecord, User,
};
use tollgate_core::package_request::{PackageRequest, ProviderSession, RequestStatus};
use tollgate_core::partner::{
    Handover, Invitation, Partner, PartnerAccount, PartnerClient, PartnerTotp, PortalSession,
};
use tollgate_core::store::{Guarded, Store};
use tollgate_core::usage::UsageDay;

use crate::api_keys;
use crate::batch::{Batcher, Op};
use crate::feed::Feed;
use crate::files::{create_private, database_files, database_path, tighten};
use crate::package_requests;
use crate::partners;
use crate::portal_secrets;
use crate::schema::{POSTGRES_STEPS, STEPS};
use crate::statements::{AnyQuery, backend, insert_family, insert_family_if_absent, rotate_family};
use crate::usage;

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreOpenError {
    /// The URL names no supported backend.
    #[error("unsupported database URL (use sqlite://PATH or postgres://...)")]
    UnsupportedUrl,
    /// Connecting or migrating failed.
    #[error("cannot open the database: {0}")]
    Connect(String),
    /// The database file could not be created.
    #[error("cannot create the database file {}: {source}", path.display())]
    File {
        /// The database file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database was written by a newer tollgate.
    #[error("the database schema is version {found}, newer than this tollgate knows ({known})")]
    TooNew {
        /// Version found.
        found: i64,
        /// Latest version known here.
        known: i64,
    },
}

/// The SQL store.
#[derive(Debug, Clone)]
pub struct SqlStore {
    /// Reads (and, on PostgreSQL, writes).
    pool: AnyPool,
    /// Writes. On SQLite a single connection: writers queue here, in order,
    /// instead of sleeping in SQLite's busy handler while another connection
    /// holds the write lock (which cost seconds at the tail under load). On
    /// PostgreSQL the same pool as `pool`.
    writer: AnyPool,
    /// SQLite: group commit of the hot writes (see [`crate::batch`]).
    batcher: Option<Batcher>,
    backend: &'static str,
    /// The change feed, shared by every clone of this store.
    feed: std::sync::Arc<Feed>,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn text_enum<T: FromStr>(what: &str, s: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| corrupt(what, e))
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| corrupt("encoding", e))
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

impl SqlStore {
    /// Opens (creating if needed) the SQLite database in `data_dir`, its
    /// files private to the owner (mode 0600, see [`crate::files`]).
    pub async fn open_data_dir(data_dir: &Path) -> Result<Self, StoreOpenError> {
        let path = database_path(data_dir);
        let files = database_files(&path);
        create_private(&path).map_err(|source| StoreOpenError::File {
            path: path.clone(),
            source,
        })?;
        // Before SQLite opens them: it gives a new -wal and -shm the
        // database's mode, so they are born private too.
        tighten(&files);
        let store = Self::open(&format!("sqlite://{}?mode=rwc", path.display())).await?;
        // WAL mode made its -wal and -shm now; an -shm or -wal left loose by
        // an earlier run was reused as it was.
        tighten(&files[1..]);
        Ok(store)
    }

    /// Connects once to the database at `url`, without a pool, and says why
    /// that failed: a pool retries a refused connection until its acquire
    /// timeout and then reports only that it timed out, which hides the
    /// cause from whoever is trying to find it (`tollgate doctor`).
    pub async fn probe(url: &str, within: std::time::Duration) -> Result<(), StoreOpenError> {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let attempt = sqlx::AnyConnection::connect(url);
        match tokio::time::timeout(within, attempt).await {
            Ok(Ok(conn)) => conn
                .close()
                .await
                .map_err(|e| StoreOpenError::Connect(e.to_string())),
            Ok(Err(e)) => Err(StoreOpenError::Connect(e.to_string())),
            Err(_) => Err(StoreOpenError::Connect(format!(
                "no answer within {} s",
                within.as_secs()
            ))),
        }
    }

    /// Opens the database at `url` (`sqlite://…` or `postgres://…`) and migrates it.
    pub async fn open(url: &str) -> Result<Self, StoreOpenError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            "sqlite"
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            "postgres"
        } else {
            return Err(StoreOpenError::UnsupportedUrl);
        };
        let opts =
            AnyConnectOptions::from_str(url).map_err(|e| StoreOpenError::Connect(e.to_string()))?;
        let is_sqlite = backend == "sqlite";
        let pool = Self::pool(&opts, is_sqlite, if is_sqlite { 4 } else { 16 }).await?;
        let writer = if is_sqlite {
            Self::pool(&opts, true, 1).await?
        } else {
            pool.clone()
        };
        let batcher = is_sqlite.then(|| Batcher::spawn(writer.clone()));
        let store = Self {
            pool,
            writer,
            batcher,
            backend,
            feed: std::sync::Arc::new(Feed::new(backend)),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn pool(
        opts: &AnyConnectOptions,
        is_sqlite: bool,
        size: u32,
    ) -> Result<AnyPool, StoreOpenError> {
        AnyPoolOptions::new()
            .max_connections(size)
            // No ping before every checkout: it doubled the round trips of
            // each query. A broken connection fails its query and is replaced.
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if is_sqlite {
                        use sqlx::Executor as _;
                        // WAL lets the CLI write while the server reads; the
                        // busy timeout settles writers from two processes.
                        // One statement per call: each must take effect.
                        // synchronous = NORMAL in WAL mode: a commit is a
                        // write to the WAL, not an fsync (durable at the
                        // next checkpoint; the database stays consistent).
                        for pragma in [
                            "PRAGMA busy_timeout = 5000",
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA synchronous = NORMAL",
                            // Pages through the OS's page cache, not read()
                            // calls; and a larger cache of its own.
                            "PRAGMA mmap_size = 268435456",
                            "PRAGMA cache_size = -16384",
                        ] {
                            conn.execute(pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(opts.clone())
            .await
            .map_err(|e| StoreOpenError::Connect(e.to_string()))
    }

    /// Waits for in-flight queries and closes every connection (on SQLite this
    /// also checkpoints the WAL into the database file).
    pub async fn close(&self) {
        self.feed.stop();
        self.pool.close().await;
        self.writer.close().await;
    }

    /// The schema version recorded in the database, and the latest one known.
    pub async fn schema_version(&self) -> Result<(i64, i64), StoreError> {
        let v: i64 = sqlx::query_scalar("SELECT value FROM tg_meta WHERE key = 'schema_version'")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        Ok((v, i64::try_from(STEPS.len()).unwrap_or(i64::MAX)))
    }

    /// The readers' pool (on PostgreSQL also the writers').
    pub(crate) fn reader(&self) -> &AnyPool {
        &self.pool
    }

    /// The writers' pool (on SQLite the single writer connection).
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Brings the schema up to date, one instance at a time: on PostgreSQL
    /// under an advisory lock (concurrent `CREATE TABLE IF NOT EXISTS` can
    /// fail there), on SQLite inside one `BEGIN IMMEDIATE` transaction (a
    /// deferred one that reads, then writes, fails at once under WAL instead
    /// of waiting for the other writer).
    async fn migrate(&self) -> Result<(), StoreOpenError> {
        let err = |e: sqlx::Error| StoreOpenError::Connect(e.to_string());
        let mut conn = self.pool.acquire().await.map_err(err)?;
        let (lock, unlock, abort) = if self.backend == "postgres" {
            (
                format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"),
                format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"),
                format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"),
            )
        } else {
            ("BEGIN IMMEDIATE".into(), "COMMIT".into(), "ROLLBACK".into())
        };
        sqlx::query(&lock).execute(&mut *conn).await.map_err(err)?;
        let result = migrate_on(&mut conn, self.backend == "postgres").await;
        let end = if result.is_ok() { &unlock } else { &abort };
        sqlx::query(end).execute(&mut *conn).await.map_err(err)?;
        result
    }

    /// Runs `stmt` (already bound) and bumps the revision, in one transaction.
    /// Returns the number of rows `stmt` touched.
    async fn mutate(&self, stmt: AnyQuery<'_>) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let n = stmt
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        if n > 0 {
            bump_revision(&mut tx).await?;
        }
        self.commit(tx, n > 0).await?;
        Ok(n)
    }

    /// Commits `tx`; when it bumped the revision, tells the change feed
    /// (after the commit: a subscriber that syncs at once must see it).
    async fn commit(
        &self,
        tx: sqlx::Transaction<'_, sqlx::Any>,
        bumped: bool,
    ) -> Result<(), StoreError> {
        tx.commit().await.map_err(backend)?;
        if bumped {
            self.feed.local_change();
        }
        Ok(())
    }
}

async fn bump_revision(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<(), StoreError> {
    sqlx::query("UPDATE tg_meta SET value = value + 1 WHERE key = 'revision'")
        .execute(&mut **tx)
        .await
        .map_err(backend)
        .map(drop)
}

fn insert_key(k: &SigningKeyRecord) -> AnyQuery<'static> {
    sqlx::query(
        "INSERT INTO tg_signing_keys (env, kid, alg, public_jwk, private_sealed, created_at, activates_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(k.env.clone())
    .bind(k.kid.clone())
    .bind(k.alg.as_str())
    .bind(k.public_jwk.clone())
    .bind(k.private_sealed.clone())
    .bind(k.created_at)
    .bind(k.activates_at)
}

/// Advisory-lock key of tollgate's migrations ("tollgate" in ASCII).
const MIGRATION_LOCK: i64 = 0x746f_6c6c_6761_7465;

/// Runs the missing migration steps on `conn`, which the caller holds
/// exclusively (see [`SqlStore::migrate`]); with `postgres`, also the steps'
/// PostgreSQL-only statements.
async fn migrate_on(conn: &mut sqlx::AnyConnection, postgres: bool) -> Result<(), StoreOpenError> {
    let err = |e: sqlx::Error| StoreOpenError::Connect(e.to_string());
    sqlx::query("CREATE TABLE IF NOT EXISTS tg_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)")
        .execute(&mut *conn)
        .await
        .map_err(err)?;
    for key in ["schema_version", "revision"] {
        sqlx::query("INSERT INTO tg_meta (key, value) VALUES ($1, 0) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .execute(&mut *conn)
            .await
            .map_err(err)?;
    }
    let known = i64::try_from(STEPS.len()).unwrap_or(i64::MAX);
    let version: i64 = sqlx::query_scalar("SELECT value FROM tg_meta WHERE key = 'schema_version'")
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?;
    if version > known {
        return Err(StoreOpenError::TooNew {
            found: version,
            known,
        });
    }
    for (i, step) in STEPS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(usize::MAX))
    {
        let only_pg = POSTGRES_STEPS
            .iter()
            .filter(|(at, _)| postgres && *at == i)
            .flat_map(|(_, stmts)| stmts.iter());
        for stmt in step.iter().chain(only_pg) {
            sqlx::query(stmt).execute(&mut *conn).await.map_err(err)?;
        }
        sqlx::query("UPDATE tg_meta SET value = value + 1 WHERE key = 'schema_version'")
            .execute(&mut *conn)
            .await
            .map_err(err)?;
    }
    Ok(())
}

/// The UPDATE of an environment's changeable columns.
fn update_environment(env: &Environment) -> Result<AnyQuery<'static>, StoreError> {
    Ok(sqlx::query(
        "UPDATE tg_environments SET issuer = $1, hosts = $2, dialect = $3, contracts = $4, \
         alg = $5, settings = $6 WHERE name = $7",
    )
    .bind(env.issuer.clone())
    .bind(json(&env.hosts)?)
    .bind(env.dialect.as_str())
    .bind(json(&env.contracts)?)
    .bind(env.alg.as_str())
    .bind(json(&env.settings)?)
    .bind(env.name.clone()))
}

/// The UPDATE of an API's changeable columns.
fn update_api(api: &Api) -> Result<AnyQuery<'static>, StoreError> {
    Ok(sqlx::query(
        "UPDATE tg_apis SET permissions = $1, packages = $2, access_lifetime = $3, obligation = $4, \
         token_permissions = $5 WHERE env = $6 AND identifier = $7",
    )
    .bind(json(&api.permissions)?)
    .bind(json(&api.packages)?)
    .bind(api.token_lifetime.map(lifetime).transpose()?)
    .bind(api.obligation.as_ref().map(json).transpose()?)
    .bind(i64::from(api.token_permissions))
    .bind(api.env.clone())
    .bind(api.identifier.clone()))
}

fn delete_api(env: &str, identifier: &str) -> AnyQuery<'static> {
    sqlx::query("DELETE FROM tg_apis WHERE env = $1 AND identifier = $2")
        .bind(env.to_string())
        .bind(identifier.to_string())
}

/// The UPDATE of a client's changeable columns (never its secrets or its
/// enabled flag).
fn update_client(c: &Client) -> Result<AnyQuery<'static>, StoreError> {
    Ok(sqlx::query(
        "UPDATE tg_clients SET name = $1, apis = $2, grant_types = $3, token_lifetime = $4, \
         extra_claims = $5, capabilities = $6, obligation = $7, roles = $8 \
         WHERE env = $9 AND client_id = $10",
    )
    .bind(c.name.clone())
    .bind(json(&c.apis)?)
    .bind(json(&c.grant_types)?)
    .bind(c.token_lifetime.map(lifetime).transpose()?)
    .bind(json(&c.extra_claims)?)
    .bind(json(&c.capabilities)?)
    .bind(c.obligation.as_ref().map(json).transpose()?)
    .bind(json(&c.roles)?)
    .bind(c.env.clone())
    .bind(c.client_id.clone()))
}

/// Deletes a client within `tx`, bumping the revision when it existed.
/// Its users go with it, and its sessions, refresh JWTs and API keys are
/// revoked, not merely orphaned: a client re-created with the same id must
/// not find them alive again.
async fn delete_client_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    env: &str,
    client_id: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let n = sqlx::query("DELETE FROM tg_clients WHERE env = $1 AND client_id = $2")
        .bind(env.to_string())
        .bind(client_id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(backend)?
        .rows_affected();
    if n > 0 {
        sqlx::query("DELETE FROM tg_users WHERE env = $1 AND client_id = $2")
            .bind(env.to_string())
            .bind(client_id.to_string())
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
        for table in ["tg_refresh_families", "tg_refresh_jwts"] {
            sqlx::query(&format!(
                "UPDATE {table} SET revoked_at = $1 \
                 WHERE env = $2 AND client_id = $3 AND revoked_at IS NULL"
            ))
            .bind(now)
            .bind(env.to_string())
            .bind(client_id.to_string())
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
        }
        api_keys::revoke_client(env, client_id, now)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
        bump_revision(tx).await?;
    }
    Ok(n)
}

/// Deletes a user within `tx` and revokes its sessions, bumping the
/// revision when it existed.
async fn delete_user_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    env: &str,
    username: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let n = sqlx::query("DELETE FROM tg_users WHERE env = $1 AND username = $2")
        .bind(env.to_string())
        .bind(username.to_string())
        .execute(&mut **tx)
        .await
        .map_err(backend)?
        .rows_affected();
    if n > 0 {
        sqlx::query(
            "UPDATE tg_refresh_families SET revoked_at = $1 WHERE env = $2 AND username = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(env.to_string())
        .bind(username.to_string())
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
        bump_revision(tx).await?;
    }
    Ok(n)
}

fn row_env(r: &AnyRow) -> Result<Environment, StoreError> {
    Ok(Environment {
        name: r.try_get("name").map_err(backend)?,
        issuer: r.try_get("issuer").map_err(backend)?,
        alg: text_enum("alg", &r.try_get::<String, _>("alg").map_err(backend)?)?,
        hosts: parse("hosts", &r.try_get::<String, _>("hosts").map_err(backend)?)?,
        dialect: text_enum(
            "dialect",
            &r.try_get::<String, _>("dialect").map_err(backend)?,
        )?,
        contracts: parse(
            "contracts",
            &r.try_get::<String, _>("contracts").map_err(backend)?,
        )?,
        settings: parse(
            "settings",
            &r.try_get::<String, _>("settings").map_err(backend)?,
        )?,
        created_at: r.try_get("created_at").map_err(backend)?,
    })
}

fn row_key(r: &AnyRow) -> Result<SigningKeyRecord, StoreError> {
    Ok(SigningKeyRecord {
        env: r.try_get("env").map_err(backend)?,
        kid: r.try_get("kid").map_err(backend)?,
        alg: text_enum::<Alg>("alg", &r.try_get::<String, _>("alg").map_err(backend)?)?,
        public_jwk: r.try_get("public_jwk").map_err(backend)?,
        private_sealed: r.try_get("private_sealed").map_err(backend)?,
        created_at: r.try_get("created_at").map_err(backend)?,
        activates_at: r.try_get("activates_at").map_err(backend)?,
    })
}

fn row_api(r: &AnyRow) -> Result<Api, StoreError> {
    let lifetime: Option<i64> = r.try_get("access_lifetime").map_err(backend)?;
    Ok(Api {
        env: r.try_get("env").map_err(backend)?,
        identifier: r.try_get("identifier").map_err(backend)?,
        permissions: parse(
            "permissions",
            &r.try_get::<String, _>("permissions").map_err(backend)?,
        )?,
        packages: parse(
            "packages",
            &r.try_get::<String, _>("packages").map_err(backend)?,
        )?,
        token_lifetime: lifetime
            .map(u64::try_from)
            .transpose()
            .map_err(|e| corrupt("access_lifetime", e))?,
        obligation: optional_json(r, "obligation")?,
        token_permissions: r.try_get::<i64, _>("token_permissions").map_err(backend)? != 0,
        created_at: r.try_get("created_at").map_err(backend)?,
    })
}

fn row_client(r: &AnyRow) -> Result<Client, StoreError> {
    let lifetime: Option<i64> = r.try_get("token_lifetime").map_err(backend)?;
    Ok(Client {
        env: r.try_get("env").map_err(backend)?,
        client_id: r.try_get("client_id").map_err(backend)?,
        name: r.try_get("name").map_err(backend)?,
        secrets: parse(
            "secrets",
            &r.try_get::<String, _>("secrets").map_err(backend)?,
        )?,
        apis: parse("apis", &r.try_get::<String, _>("apis").map_err(backend)?)?,
        grant_types: parse(
            "grant_types",
            &r.try_get::<String, _>("grant_types").map_err(backend)?,
        )?,
        token_lifetime: lifetime
            .map(u64::try_from)
            .transpose()
            .map_err(|e| corrupt("token_lifetime", e))?,
        extra_claims: parse(
            "extra_claims",
            &r.try_get::<String, _>("extra_claims").map_err(backend)?,
        )?,
        capabilities: parse(
            "capabilities",
            &r.try_get::<String, _>("capabilities").map_err(backend)?,
        )?,
        obligation: optional_json(r, "obligation")?,
        roles: parse("roles", &r.try_get::<String, _>("roles").map_err(backend)?)?,
        enabled: r.try_get::<i64, _>("enabled").map_err(backend)? != 0,
        created_at: r.try_get("created_at").map_err(backend)?,
    })
}

fn optional_json<T: serde::de::DeserializeOwned>(
    r: &AnyRow,
    column: &str,
) -> Result<Option<T>, StoreError> {
    r.try_get::<Option<String>, _>(column)
        .map_err(backend)?
        .map(|s| parse(column, &s))
        .transpose()
}

fn row_refresh(r: &AnyRow) -> Result<RefreshJwtRecord, StoreError> {
    Ok(RefreshJwtRecord {
        env: r.try_get("env").map_err(backend)?,
        jti: r.try_get("jti").map_err(backend)?,
        client_id: r.try_get("client_id").map_err(backend)?,
        audience: r.try_get("audience").map_err(backend)?,
        created_at: r.try_get("created_at").map_err(backend)?,
        expires_at: r.try_get("expires_at").map_err(backend)?,
        revoked_at: r.try_get("revoked_at").map_err(backend)?,
    })
}

fn row_user(r: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        env: r.try_get("env").map_err(backend)?,
        client_id: r.try_get("client_id").map_err(backend)?,
        username: r.try_get("username").map_err(backend)?,
        password: r.try_get("password").map_err(backend)?,
        roles: parse("roles", &r.try_get::<String, _>("roles").map_err(backend)?)?,
        enabled: r.try_get::<i64, _>("enabled").map_err(backend)? != 0,
        created_at: r.try_get("created_at").map_err(backend)?,
    })
}

const USER_COLUMNS: &str = "env, username, client_id, password, enabled, created_at, roles";
/// How many columns [`USER_COLUMNS`] names (multi-row inserts number their
/// parameters by it).
const USER_FIELDS: usize = 7;

fn row_family(r: &AnyRow) -> Result<RefreshFamily, StoreError> {
    Ok(RefreshFamily {
        env: r.try_get("env").map_err(backend)?,
        family: r.try_get("family").map_err(backend)?,
        contract: r.try_get("contract").map_err(backend)?,
        client_id: r.try_get("client_id").map_err(backend)?,
        username: r.try_get("username").map_err(backend)?,
        grant: text_enum::<GrantType>(
            "grant_type",
            &r.try_get::<String, _>("grant_type").map_err(backend)?,
        )?,
        audience: r.try_get("audience").map_err(backend)?,
        scope: r.try_get("scope").map_err(backend)?,
        current: r.try_get("current_id").map_err(backend)?,
        previous: r.try_get("previous_id").map_err(backend)?,
        access_jti: r.try_get("access_jti").map_err(backend)?,
        access_exp: r.try_get("access_exp").map_err(backend)?,
        issued_at: r.try_get("issued_at").map_err(backend)?,
        expires_at: r.try_get("expires_at").map_err(backend)?,
        rotated_at: r.try_get("rotated_at").map_err(backend)?,
        revoked_at: r.try_get("revoked_at").map_err(backend)?,
        created_at: r.try_get("created_at").map_err(backend)?,
    })
}

const FAMILY_COLUMNS: &str = "env, family, contract, client_id, username, grant_type, audience, scope, current_id, previous_id, access_jti, access_exp, issued_at, expires_at, rotated_at, revoked_at, created_at";

const REFRESH_COLUMNS: &str = "env, jti, client_id, audience, created_at, expires_at, revoked_at";

const TRUST_COLUMNS: &str =
    "env, id, purpose, keys, issuer, audience, client_claim, user_claim, api, created_at";

fn row_trusted(r: &AnyRow) -> Result<TrustedIssuer, StoreError> {
    Ok(TrustedIssuer {
        env: r.try_get("env").map_err(backend)?,
        id: r.try_get("id").map_err(backend)?,
        purpose: text_enum::<TrustPurpose>(
            "purpose",
            &r.try_get::<String, _>("purpose").map_err(backend)?,
        )?,
        keys: parse("keys", &r.try_get::<String, _>("keys").map_err(backend)?)?,
        issuer: r.try_get("issuer").map_err(backend)?,
        audience: r.try_get("audience").map_err(backend)?,
        client_claim: r.try_get("client_claim").map_err(backend)?,
        user_claim: r.try_get("user_claim").map_err(backend)?,
        api: r.try_get("api").map_err(backend)?,
        created_at: r.try_get("created_at").map_err(backend)?,
    })
}

fn lifetime(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|e| corrupt("token_lifetime", e))
}

const CLIENT_COLUMNS: &str = "env, client_id, name, secrets, apis, grant_types, token_lifetime, extra_claims, enabled, created_at, capabilities, obligation, roles";

#[async_trait]
impl Store for SqlStore {
    async fn revision(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT value FROM tg_meta WHERE key = 'revision'")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    async fn change_feed(&self) -> Option<ChangeFeed> {
        let postgres = self.backend == "postgres";
        Some(self.feed.subscribe(|| {
            postgres.then(|| {
                self.pool
                    .connect_options()
                    .database_url
                    .as_str()
                    .to_string()
            })
        }))
    }

    async fn last_alive(&self) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar("SELECT value FROM tg_meta WHERE key = 'alive'")
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    async fn mark_alive(&self, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tg_meta (key, value) VALUES ('alive', $1) ON CONFLICT (key) \
             DO UPDATE SET value = CASE WHEN excluded.value > tg_meta.value \
             THEN excluded.value ELSE tg_meta.value END",
        )
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(backend)
        .map(drop)
    }

    async fn create_environment(
        &self,
        env: &Environment,
        k: &SigningKeyRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO tg_environments (name, issuer, alg, hosts, dialect, contracts, settings, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(env.name.clone())
        .bind(env.issuer.clone())
        .bind(env.alg.as_str())
        .bind(json(&env.hosts)?)
        .bind(env.dialect.as_str())
        .bind(json(&env.contracts)?)
        .bind(json(&env.settings)?)
        .bind(env.created_at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        insert_key(k).execute(&mut *tx).await.map_err(backend)?;
        bump_revision(&mut tx).await?;
        self.commit(tx, true).await
    }

    async fn update_environment(&self, env: &Environment) -> Result<bool, StoreError> {
        self.mutate(update_environment(env)?).await.map(|n| n > 0)
    }

    async fn list_environments(&self) -> Result<Vec<Environment>, StoreError> {
        sqlx::query(
            "SELECT name, issuer, alg, hosts, dialect, contracts, settings, created_at FROM tg_environments ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(row_env)
        .collect()
    }

    async fn insert_signing_key(&self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        self.mutate(insert_key(k)).await.map(drop)
    }

    async fn insert_signing_key_unless_newer(
        &self,
        k: &SigningKeyRecord,
        cutoff: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        // Serialize rotations of one environment: this takes the row lock on
        // PostgreSQL (SQLite: the write lock), so a concurrent rotation waits
        // here and then, in a new statement, sees the key the first one added.
        sqlx::query("UPDATE tg_environments SET name = name WHERE name = $1")
            .bind(k.env.clone())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let newer: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tg_signing_keys WHERE env = $1 AND created_at > $2",
        )
        .bind(k.env.clone())
        .bind(cutoff)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        if newer > 0 {
            tx.rollback().await.map_err(backend)?;
            return Ok(false);
        }
        insert_key(k).execute(&mut *tx).await.map_err(backend)?;
        bump_revision(&mut tx).await?;
        self.commit(tx, true).await?;
        Ok(true)
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        sqlx::query(
            "SELECT env, kid, alg, public_jwk, private_sealed, created_at, activates_at \
             FROM tg_signing_keys ORDER BY env, activates_at, kid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(row_key)
        .collect()
    }

    async fn create_api(&self, api: &Api) -> Result<(), StoreError> {
        self.mutate(
            sqlx::query(
                "INSERT INTO tg_apis (env, identifier, permissions, packages, access_lifetime, created_at, obligation, token_permissions) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(api.env.clone())
            .bind(api.identifier.clone())
            .bind(json(&api.permissions)?)
            .bind(json(&api.packages)?)
            .bind(api.token_lifetime.map(lifetime).transpose()?)
            .bind(api.created_at)
            .bind(api.obligation.as_ref().map(json).transpose()?)
            .bind(i64::from(api.token_permissions)),
        )
        .await
        .map(drop)
    }

    async fn list_apis(&self) -> Result<Vec<Api>, StoreError> {
        sqlx::query(
            "SELECT env, identifier, permissions, packages, access_lifetime, created_at, obligation, token_permissions FROM tg_apis ORDER BY env, identifier",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(row_api)
        .collect()
    }

    async fn update_api(&self, api: &Api) -> Result<bool, StoreError> {
        self.mutate(update_api(api)?).await.map(|n| n > 0)
    }

    async fn delete_api(&self, env: &str, identifier: &str) -> Result<bool, StoreError> {
        self.mutate(delete_api(env, identifier))
            .await
            .map(|n| n > 0)
    }

    async fn create_client(&self, c: &Client) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO tg_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        );
        self.mutate(
            sqlx::query(&sql)
                .bind(c.env.clone())
                .bind(c.client_id.clone())
                .bind(c.name.clone())
                .bind(json(&c.secrets)?)
                .bind(json(&c.apis)?)
                .bind(json(&c.grant_types)?)
                .bind(c.token_lifetime.map(lifetime).transpose()?)
                .bind(json(&c.extra_claims)?)
                .bind(i64::from(c.enabled))
                .bind(c.created_at)
                .bind(json(&c.capabilities)?)
                .bind(c.obligation.as_ref().map(json).transpose()?)
                .bind(json(&c.roles)?),
        )
        .await
        .map(drop)
    }

    async fn set_obligation(
        &self,
        env: &str,
        target: ObligationTarget<'_>,
        obligation: Option<&Obligation>,
    ) -> Result<bool, StoreError> {
        let value = obligation.map(json).transpose()?;
        let (sql, name) = match target {
            ObligationTarget::Api(a) => (
                "UPDATE tg_apis SET obligation = $1 WHERE env = $2 AND identifier = $3",
                a,
            ),
            ObligationTarget::Client(c) => (
                "UPDATE tg_clients SET obligation = $1 WHERE env = $2 AND client_id = $3",
                c,
            ),
        };
        self.mutate(
            sqlx::query(sql)
                .bind(value)
                .bind(env.to_string())
                .bind(name.to_string()),
        )
        .await
        .map(|n| n > 0)
    }

    async fn count_issuance(
        &self,
        env: &str,
        client_id: &str,
        window_start: i64,
    ) -> Result<u64, StoreError> {
        // One statement, atomic in both backends: a new window starts at 1.
        let n: i64 = sqlx::query_scalar(
            "INSERT INTO tg_issuance_counts (env, client_id, window_start, count) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (env, client_id) DO UPDATE SET \
             count = CASE WHEN tg_issuance_counts.window_start = excluded.window_start \
                     THEN tg_issuance_counts.count + 1 ELSE 1 END, \
             window_start = excluded.window_start \
             RETURNING count",
        )
        .bind(env.to_string())
        .bind(client_id.to_string())
        .bind(window_start)
        .fetch_one(&self.writer)
        .await
        .map_err(backend)?;
        u64::try_from(n).map_err(|e| corrupt("count", e))
    }

    async fn refund_issuance(
        &self,
        env: &str,
        client_id: &str,
        window_start: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE tg_issuance_counts SET count = count - 1 \
             WHERE env = $1 AND client_id = $2 AND window_start = $3 AND count > 0",
        )
        .bind(env.to_string())
        .bind(client_id.to_string())
        .bind(window_start)
        .execute(&self.writer)
        .await
        .map_err(backend)
        .map(drop)
    }

    async fn count_auth_failure(
        &self,
        key: &str,
        now: i64,
        window: i64,
    ) -> Result<u64, StoreError> {
        // One statement, atomic in both backends: a row whose window has
        // passed starts again at 1; each failure extends the window.
        let n: i64 = sqlx::query_scalar(
            "INSERT INTO tg_auth_failures (key, failures, expires_at) VALUES ($1, 1, $2 + $3) \
             ON CONFLICT (key) DO UPDATE SET \
             failures = CASE WHEN tg_auth_failures.expires_at <= $2 \
                        THEN 1 ELSE tg_auth_failures.failures + 1 END, \
             expires_at = excluded.expires_at \
             RETURNING failures",
        )
        .bind(key.to_string())
        .bind(now)
        .bind(window)
        .fetch_one(&self.writer)
        .await
        .map_err(backend)?;
        u64::try_from(n).map_err(|e| corrupt("failures", e))
    }

    async fn clear_auth_failures(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM tg_auth_failures WHERE key = $1")
            .bind(key.to_string())
            .execute(&self.writer)
            .await
            .map_err(backend)
            .map(drop)
    }

    async fn get_client(&self, env: &str, client_id: &str) -> Result<Option<Client>, StoreError> {
        let sql =
            format!("SELECT {CLIENT_COLUMNS} FROM tg_clients WHERE env = $1 AND client_id = $2");
        sqlx::query(&sql)
            .bind(env.to_string())
            .bind(client_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(row_client)
            .transpose()
    }

    async fn list_clients(&self, env: &str) -> Result<Vec<Client>, StoreError> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM tg_clients WHERE env = $1 ORDER BY created_at, client_id"
        );
        sqlx::query(&sql)
            .bind(env.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(row_client)
            .collect()
    }

    async fn update_client(&self, c: &Client) -> Result<bool, StoreError> {
        self.mutate(update_client(c)?).await.map(|n| n > 0)
    }

    async fn set_client_enabled(
        &self,
        env: &str,
        client_id: &str,
        enabled: bool,
    ) -> Result<bool, StoreError> {
        self.mutate(
            sqlx::query("UPDATE tg_clients SET enabled = $1 WHERE env = $2 AND client_id = $3")
                .bind(i64::from(enabled))
                .bind(env.to_string())
                .bind(client_id.to_string()),
        )
        .await
        .map(|n| n > 0)
    }

    async fn swap_client_secrets(
        &self,
        env: &str,
        client_id: &str,
        expected: &[SecretRecord],
        new: &[SecretRecord],
    ) -> Result<bool, StoreError> {
        self.mutate(
            sqlx::query(
                "UPDATE tg_clients SET secrets = $1 WHERE env = $2 AND client_id = $3 AND secrets = $4",
            )
            .bind(json(&new)?)
            .bind(env.to_string())
            .bind(client_id.to_string())
            .bind(json(&expected)?),
        )
        .await
        .map(|n| n > 0)
    }

    async fn revoke_token(&self, env: &str, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        // Bumps the revision: instances drop tokens they would hand out
        // again (reuse obligation); the deny list itself is read from here.
        self.mutate(
            sqlx::query(
                "INSERT INTO tg_revoked_tokens (env, jti, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (env, jti) DO NOTHING",
            )
            .bind(env.to_string())
            .bind(jti.to_string())
            .bind(expires_at),
        )
        .await
        .map(drop)
    }

    async fn is_token_revoked(&self, env: &str, jti: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tg_revoked_tokens WHERE env = $1 AND jti = $2",
        )
        .bind(env.to_string())
        .bind(jti.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(n > 0)
    }

    async fn list_revoked_tokens(&self, now: i64) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT env, jti FROM tg_revoked_tokens WHERE expires_at >= $1")
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("env").map_err(backend)?,
                    r.try_get("jti").map_err(backend)?,
                ))
            })
            .collect()
    }

    async fn purge_expired(&self, now: i64) -> Result<Vec<(&'static str, u64)>, StoreError> {
        let mut out = Vec::new();
        for (table, sql) in [
            (
                "revoked_tokens",
                "DELETE FROM tg_revoked_tokens WHERE expires_at < $1",
            ),
            (
                "refresh_families",
                "DELETE FROM tg_refresh_families WHERE expires_at < $1",
            ),
            (
                "refresh_jwts",
                "DELETE FROM tg_refresh_jwts WHERE expires_at < $1",
            ),
            (
                "auth_failures",
                "DELETE FROM tg_auth_failures WHERE expires_at < $1",
            ),
            ("api_keys", api_keys::PURGE),
            ("portal_sessions", partners::PURGE_SESSIONS),
            ("partner_invitations", partners::PURGE_INVITATIONS),
            ("portal_handovers", portal_secrets::PURGE_HANDOVERS),
            ("provider_sessions", package_requests::PURGE_SESSIONS),
        ] {
            let n = sqlx::query(sql)
                .bind(now)
                .execute(&self.writer)
                .await
                .map_err(backend)?
                .rows_affected();
            out.push((table, n));
        }
        let n = sqlx::query(usage::PURGE)
            .bind(usage::purge_before(now))
            .execute(&self.writer)
            .await
            .map_err(backend)?
            .rows_affected();
        out.push(("usage", n));
        Ok(out)
    }

    async fn insert_refresh_jwt(&self, r: &RefreshJwtRecord) -> Result<(), StoreError> {
        // A new record: no cache holds it yet (servers do not remember
        // unknown ids), so no revision bump; revoking one bumps it.
        sqlx::query(&format!(
            "INSERT INTO tg_refresh_jwts ({REFRESH_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(r.env.clone())
        .bind(r.jti.clone())
        .bind(r.client_id.clone())
        .bind(r.audience.clone())
        .bind(r.created_at)
        .bind(r.expires_at)
        .bind(r.revoked_at)
        .execute(&self.writer)
        .await
        .map_err(backend)
        .map(drop)
    }

    async fn get_refresh_jwt(
        &self,
        env: &str,
        jti: &str,
    ) -> Result<Option<RefreshJwtRecord>, StoreError> {
        sqlx::query(&format!(
            "SELECT {REFRESH_COLUMNS} FROM tg_refresh_jwts WHERE env = $1 AND jti = $2"
        ))
        .bind(env.to_string())
        .bind(jti.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .as_ref()
        .map(row_refresh)
        .transpose()
    }

    async fn list_refresh_jwts(&self, env: &str) -> Result<Vec<RefreshJwtRecord>, StoreError> {
        sqlx::query(&format!(
            "SELECT {REFRESH_COLUMNS} FROM tg_refresh_jwts WHERE env = $1 ORDER BY created_at, jti"
        ))
        .bind(env.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(row_refresh)
        .collect()
    }

    async fn revoke_refresh_jwt(&self, env: &str, jti: &str, now: i64) -> Result<bool, StoreError> {
        // Bumps the revision: servers cache refresh-JWT records.
        self.mutate(
            sqlx::query(
                "UPDATE tg_refresh_jwts SET revoked_at = $1 WHERE env = $2 AND jti = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(env.to_string())
            .bind(jti.to_string()),
        )
        .await
        .map(|n| n > 0)
    }

    async fn delete_client(
        &self,
        env: &str,
        client_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let n = delete_client_in(&mut tx, env, client_id, now).await?;
        self.commit(tx, n > 0).await?;
        Ok(n > 0)
    }

    async fn create_user(&self, u: &User) -> Result<(), StoreError> {
        self.mutate(
            sqlx::query(&format!(
                "INSERT INTO tg_users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ))
            .bind(u.env.clone())
            .bind(u.username.clone())
            .bind(u.client_id.clone())
            .bind(u.password.clone())
            .bind(i64::from(u.enabled))
            .bind(u.created_at)
            .bind(json(&u.roles)?),
        )
        .await
        .map(drop)
    }

    async fn get_user(&self, env: &str, username: &str) -> Result<Option<User>, StoreError> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM tg_users WHERE env = $1 AND username = $2"
        ))
        .bind(env.to_string())
        .bind(username.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .as_ref()
        .map(row_user)
        .transpose()
    }

    async fn find_users_folded(&self, env: &str, username: &str) -> Result<Vec<User>, StoreError> {
        // `lower` folds ASCII in SQLite and more in PostgreSQL; the index
        // `tg_users_folded` serves both.
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM tg_users WHERE env = $1 AND lower(username) = lower($2)"
        ))
        .bind(env.to_string())
        .bind(username.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(row_user).collect()
    }

    async fn list_users(
        &self,
        env: &str,
        client_id: Option<&str>,
    ) -> Result<Vec<User>, StoreError> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM tg_users WHERE env = $1 AND ($2 = '' OR client_id = $2) \
             ORDER BY created_at, username"
        ))
        .bind(env.to_string())
        .bind(client_id.unwrap_or("").to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(row_user)
        .collect()
    }

    async fn update_user(&self, u: &User, end_sessions: Option<i64>) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let n = sqlx::query(
            "UPDATE tg_users SET password = $1, enabled = $2, roles = $3 WHERE env = $4 AND username = $5",
        )
        .bind(u.password.clone())
        .bind(i64::from(u.enabled))
        .bind(json(&u.roles)?)
        .bind(u.env.clone())
        .bind(u.username.clone())
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        if n > 0 {
            if let Some(now) = end_sessions {
                sqlx::query(
                    "UPDATE tg_refresh_families SET revoked_at = $1 \
                     WHERE env = $2 AND username = $3 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(u.env.clone())
                .bind(u.username.clone())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
            bump_revision(&mut tx).await?;
        }
        self.commit(tx, n > 0).await?;
        Ok(n > 0)
    }

    async fn delete_user(&self, env: &str, username: &str, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let n = delete_user_in(&mut tx, env, username, now).await?;
        self.commit(tx, n > 0).await?;
        Ok(n > 0)
    }

    async fn write_if_unchanged(&self, w: &Guarded) -> Result<bool, StoreError> {
        // PostgreSQL: the row is locked until the commit, so a second
        // writer waits here and then reads what the first one wrote. SQLite:
        // one writer connection, so writers of this process queue anyway.
        let lock = if self.backend == "postgres" {
            " FOR UPDATE"
        } else {
            ""
        };
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let same = match w {
            Guarded::UpdateEnvironment { expected, .. } => {
                let sql = format!(
                    "SELECT name, issuer, alg, hosts, dialect, contracts, settings, created_at \
                     FROM tg_environments WHERE name = $1{lock}"
                );
                let row = sqlx::query(&sql)
                    .bind(expected.name.clone())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
                row.as_ref().map(row_env).transpose()?.as_ref() == Some(expected)
            }
            Guarded::UpdateApi { expected, .. } | Guarded::DeleteApi { expected } => {
                let sql = format!(
                    "SELECT env, identifier, permissions, packages, access_lifetime, obligation, \
                     token_permissions, created_at FROM tg_apis WHERE env = $1 AND identifier = $2{lock}"
                );
                let row = sqlx::query(&sql)
                    .bind(expected.env.clone())
                    .bind(expected.identifier.clone())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
                row.as_ref().map(row_api).transpose()?.as_ref() == Some(expected)
            }
            Guarded::UpdateClient { expected, .. } | Guarded::DeleteClient { expected, .. } => {
                let sql = format!(
                    "SELECT {CLIENT_COLUMNS} FROM tg_clients WHERE env = $1 AND client_id = $2{lock}"
                );
                let row = sqlx::query(&sql)
                    .bind(expected.env.clone())
                    .bind(expected.client_id.clone())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
                row.as_ref().map(row_client).transpose()?.as_ref() == Some(expected)
            }
            Guarded::DeleteUser { expected, .. } => {
                let sql = format!(
                    "SELECT {USER_COLUMNS} FROM tg_users WHERE env = $1 AND username = $2{lock}"
                );
                let row = sqlx::query(&sql)
                    .bind(expected.env.clone())
                    .bind(expected.username.clone())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
                row.as_ref().map(row_user).transpose()?.as_ref() == Some(expected)
            }
            Guarded::UpdatePartner { expected, .. } => {
                let sql = format!(
                    "SELECT {} FROM tg_partners WHERE id = $1{lock}",
                    partners::PARTNER_COLUMNS
                );
                let row = sqlx::query(&sql)
                    .bind(expected.id.clone())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
                row.as_ref()
                    .map(partners::partner_row)
                    .transpose()?
                    .as_ref()
                    == Some(expected)
            }
        };
        if !same {
            tx.rollback().await.map_err(backend)?;
            return Ok(false);
        }
        let single = match w {
            Guarded::UpdateEnvironment { new, .. } => Some(update_environment(new)?),
            Guarded::UpdateApi { new, .. } => Some(update_api(new)?),
            Guarded::DeleteApi { expected } => {
                Some(delete_api(&expected.env, &expected.identifier))
            }
            Guarded::UpdateClient { new, .. } => Some(update_client(new)?),
            Guarded::DeleteClient { .. }
            | Guarded::DeleteUser { .. }
            | Guarded::UpdatePartner { .. } => None,
        };
        // Each path bumps the revision once when it wrote.
        let n = match (single, w) {
            (Some(stmt), _) => {
                let n = stmt
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?
                    .rows_affected();
                if n > 0 {
                    bump_revision(&mut tx).await?;
                }
                n
            }
            (None, Guarded::DeleteClient { expected, now }) => {
                delete_client_in(&mut tx, &expected.env, &expected.client_id, *now).await?
            }
            (None, Guarded::DeleteUser { expected, now }) => {
                delete_user_in(&mut tx, &expected.env, &expected.username, *now).await?
            }
            // No cache holds partners: no revision bump.
            (None, Guarded::UpdatePartner { new, .. }) => {
                sqlx::query("UPDATE tg_partners SET name = $1, offers = $2 WHERE id = $3")
                    .bind(new.name.clone())
                    .bind(partners::offers_json(new)?)
                    .bind(new.id.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?
                    .rows_affected()
            }
            (None, _) => 0,
        };
        self.commit(tx, n > 0).await?;
        Ok(n > 0)
    }

    async fn insert_refresh_family(&self, f: &RefreshFamily) -> Result<(), StoreError> {
        // Sessions are read from the store on every refresh: no revision bump.
        match &self.batcher {
            Some(b) => b.run(Op::InsertFamily(f.clone())).await.map(drop),
            None => insert_family(f)
                .execute(&self.writer)
                .await
                .map_err(backend)
                .map(drop),
        }
    }

    async fn get_refresh_family(
        &self,
        env: &str,
        family: &str,
    ) -> Result<Option<RefreshFamily>, StoreError> {
        sqlx::query(&format!(
            "SELECT {FAMILY_COLUMNS} FROM tg_refresh_families WHERE env = $1 AND family = $2"
        ))
        .bind(env.to_string())
        .bind(family.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .as_ref()
        .map(row_family)
        .transpose()
    }

    async fn rotate_refresh_family(
        &self,
        presented: &str,
        next: &RefreshFamily,
        now: i64,
    ) -> Result<bool, StoreError> {
        // The compare-and-set (`rotate_family`), one statement; on SQLite
        // committed with whatever other writes arrived at the same moment.
        let n = match &self.batcher {
            Some(b) => {
                b.run(Op::Rotate {
                    presented: presented.to_string(),
                    next: next.clone(),
                    now,
                })
                .await?
            }
            None => rotate_family(presented, next, now)
                .execute(&self.writer)
                .await
                .map_err(backend)?
                .rows_affected(),
        };
        Ok(n == 1)
    }

    async fn revoke_refresh_family(
        &self,
        env: &str,
        family: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        // Bumps the revision: servers cache families under the reuse policy.
        self.mutate(
            sqlx::query(
                "UPDATE tg_refresh_families SET revoked_at = $1 WHERE env = $2 AND family = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(env.to_string())
            .bind(family.to_string()),
        )
        .await
        .map(|n| n > 0)
    }

    async fn insert_api_key(&self, k: &ApiKey) -> Result<(), StoreError> {
        // Bumps the revision: servers remember ids they found unknown.
        self.mutate(api_keys::insert(k)).await.map(drop)
    }

    async fn get_api_key(&self, env: &str, id: &str) -> Result<Option<ApiKey>, StoreError> {
        api_keys::get(env, id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(api_keys::row)
            .transpose()
    }

    async fn list_api_keys(
        &self,
        env: &str,
        client_id: Option<&str>,
    ) -> Result<Vec<ApiKey>, StoreError> {
        api_keys::list(env, client_id)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(api_keys::row)
            .collect()
    }

    async fn revoke_api_key(&self, env: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        self.mutate(api_keys::revoke(env, id, now))
            .await
            .map(|n| n > 0)
    }

    async fn rotate_api_key(
        &self,
        old: &ApiKey,
        until: i64,
        new: &ApiKey,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let n = api_keys::expire_if_unchanged(old, until)
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        if n == 0 {
            // Dropping the transaction rolls it back: nothing written.
            return Ok(false);
        }
        api_keys::insert(new)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        bump_revision(&mut tx).await?;
        self.commit(tx, true).await?;
        Ok(true)
    }

    async fn insert_trusted_issuer(&self, t: &TrustedIssuer) -> Result<(), StoreError> {
        self.mutate(
            sqlx::query(&format!(
                "INSERT INTO tg_trusted_issuers ({TRUST_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ))
            .bind(t.env.clone())
            .bind(t.id.clone())
            .bind(t.purpose.as_str())
            .bind(json(&t.keys)?)
            .bind(t.issuer.clone())
            .bind(t.audience.clone())
            .bind(t.client_claim.clone())
            .bind(t.user_claim.clone())
            .bind(t.api.clone())
            .bind(t.created_at),
        )
        .await
        .map(drop)
    }

    async fn list_trusted_issuers(&self) -> Result<Vec<TrustedIssuer>, StoreError> {
        sqlx::query(&format!(
            "SELECT {TRUST_COLUMNS} FROM tg_trusted_issuers ORDER BY env, created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(row_trusted)
        .collect()
    }

    async fn delete_trusted_issuer(&self, env: &str, id: &str) -> Result<bool, StoreError> {
        self.mutate(
            sqlx::query("DELETE FROM tg_trusted_issuers WHERE env = $1 AND id = $2")
                .bind(env.to_string())
                .bind(id.to_string()),
        )
        .await
        .map(|n| n > 0)
    }

    async fn revoke_client_refresh_tokens(
        &self,
        env: &str,
        client_id: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let n = sqlx::query(
            "UPDATE tg_refresh_jwts SET revoked_at = $1 \
             WHERE env = $2 AND client_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(env.to_string())
        .bind(client_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        sqlx::query(
            "INSERT INTO tg_refresh_cutoffs (env, client_id, not_before) VALUES ($1, $2, $3) \
             ON CONFLICT (env, client_id) DO UPDATE SET not_before = excluded.not_before",
        )
        .bind(env.to_string())
        .bind(client_id.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        bump_revision(&mut tx).await?;
        self.commit(tx, true).await?;
        Ok(n)
    }

    async fn list_refresh_cutoffs(&self) -> Result<Vec<RefreshCutoff>, StoreError> {
        sqlx::query(
            "SELECT env, client_id, not_before FROM tg_refresh_cutoffs ORDER BY env, client_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(|r| {
            Ok(RefreshCutoff {
                env: r.try_get("env").map_err(backend)?,
                client_id: r.try_get("client_id").map_err(backend)?,
                not_before: r.try_get("not_before").map_err(backend)?,
            })
        })
        .collect()
    }

    async fn insert_refresh_family_if_absent(&self, f: &RefreshFamily) -> Result<bool, StoreError> {
        // Once per adopted session: not worth the batcher.
        insert_family_if_absent(f)
            .execute(&self.writer)
            .await
            .map_err(backend)
            .map(|r| r.rows_affected() == 1)
    }

    async fn import_users(&self, users: &[User]) -> Result<(), StoreError> {
        // One transaction, several rows per statement (a large import is
        // otherwise a round trip per user on PostgreSQL).
        const ROWS: usize = 100;
        let mut tx = self.writer.begin().await.map_err(backend)?;
        for chunk in users.chunks(ROWS) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let cols: Vec<String> = (1..=USER_FIELDS)
                        .map(|c| format!("${}", i * USER_FIELDS + c))
                        .collect();
                    format!("({})", cols.join(", "))
                })
                .collect();
            let sql = format!(
                "INSERT INTO tg_users ({USER_COLUMNS}) VALUES {}",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for u in chunk {
                q = q
                    .bind(u.env.clone())
                    .bind(u.username.clone())
                    .bind(u.client_id.clone())
                    .bind(u.password.clone())
                    .bind(i64::from(u.enabled))
                    .bind(u.created_at)
                    .bind(json(&u.roles)?);
            }
            // A conflict returns early: the transaction is dropped, rolled back.
            q.execute(&mut *tx).await.map_err(backend)?;
        }
        if !users.is_empty() {
            bump_revision(&mut tx).await?;
        }
        self.commit(tx, !users.is_empty()).await
    }

    async fn upgrade_user_password(
        &self,
        env: &str,
        username: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        sqlx::query(
            "UPDATE tg_users SET password = $1 WHERE env = $2 AND username = $3 AND password = $4",
        )
        .bind(new.to_string())
        .bind(env.to_string())
        .bind(username.to_string())
        .bind(old.to_string())
        .execute(&self.writer)
        .await
        .map_err(backend)
        .map(|r| r.rows_affected() == 1)
    }

    async fn purge_audit(&self, before: i64) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM tg_audit WHERE at < $1")
            .bind(before)
            .execute(&self.writer)
            .await
            .map_err(backend)
            .map(|r| r.rows_affected())
    }

    async fn insert_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        // No revision bump: no cache holds the log.
        let opt_json = |v: &Option<serde_json::Value>| v.as_ref().map(json).transpose();
        sqlx::query(&format!(
            "INSERT INTO tg_audit ({AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(e.id.clone())
        .bind(e.at)
        .bind(e.actor.clone())
        .bind(e.action.clone())
        .bind(e.env.clone())
        .bind(e.target.clone())
        .bind(e.source.clone())
        .bind(opt_json(&e.before)?)
        .bind(opt_json(&e.after)?)
        .execute(&self.writer)
        .await
        .map_err(backend)
        .map(drop)
    }

    async fn list_audit(
        &self,
        since: i64,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        sqlx::query(&format!(
            "SELECT {AUDIT_COLUMNS} FROM tg_audit WHERE at >= $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(since)
        .bind(after.unwrap_or("").to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(|r| {
            let opt = |col: &str| -> Result<Option<serde_json::Value>, StoreError> {
                let text: Option<String> = r.try_get(col).map_err(backend)?;
                text.map(|t| parse("audit entry", &t)).transpose()
            };
            Ok(AuditEntry {
                id: r.try_get("id").map_err(backend)?,
                at: r.try_get("at").map_err(backend)?,
                actor: r.try_get("actor").map_err(backend)?,
                action: r.try_get("action").map_err(backend)?,
                env: r.try_get("env").map_err(backend)?,
                target: r.try_get("target").map_err(backend)?,
                source: r.try_get("source").map_err(backend)?,
                before: opt("before_json")?,
                after: opt("after_json")?,
            })
        })
        .collect()
    }

    async fn insert_partner(&self, partner: &Partner) -> Result<(), StoreError> {
        partners::insert_partner(&self.writer, partner).await
    }

    async fn get_partner(&self, id: &str) -> Result<Option<Partner>, StoreError> {
        partners::get_partner(&self.pool, id).await
    }

    async fn list_partners(&self) -> Result<Vec<Partner>, StoreError> {
        partners::list_partners(&self.pool).await
    }

    async fn update_partner(&self, partner: &Partner) -> Result<bool, StoreError> {
        partners::update_partner(&self.writer, partner).await
    }

    async fn set_partner_enabled(&self, id: &str, enabled: bool) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let n = sqlx::query(partners::SET_ENABLED)
            .bind(i64::from(enabled))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        sqlx::query(partners::SET_CLIENTS_ENABLED)
            .bind(i64::from(enabled))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if !enabled {
            sqlx::query(partners::END_SESSIONS)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        // Clients are cached: every server must reload them.
        bump_revision(&mut tx).await?;
        self.commit(tx, true).await?;
        Ok(true)
    }

    async fn insert_partner_client(&self, owned: &PartnerClient) -> Result<(), StoreError> {
        partners::insert_partner_client(&self.writer, owned).await
    }

    async fn list_partner_clients(&self, partner: &str) -> Result<Vec<PartnerClient>, StoreError> {
        partners::list_partner_clients(&self.pool, partner).await
    }

    async fn insert_invitation(&self, invitation: &Invitation) -> Result<(), StoreError> {
        partners::insert_invitation(&self.writer, invitation).await
    }

    async fn get_invitation(&self, digest: &str) -> Result<Option<Invitation>, StoreError> {
        partners::get_invitation(&self.pool, digest).await
    }

    async fn accept_invitation(
        &self,
        digest: &str,
        now: i64,
        account: &PartnerAccount,
    ) -> Result<bool, StoreError> {
        partners::accept_invitation(&self.writer, digest, now, account).await
    }

    async fn get_partner_account(&self, login: &str) -> Result<Option<PartnerAccount>, StoreError> {
        partners::get_partner_account(&self.pool, login).await
    }

    async fn partner_login_failed(
        &self,
        login: &str,
        now: i64,
        max_failures: u32,
        lock_secs: i64,
    ) -> Result<(), StoreError> {
        partners::login_failed(&self.writer, login, now, max_failures, lock_secs).await
    }

    async fn partner_login_succeeded(&self, login: &str) -> Result<(), StoreError> {
        partners::login_succeeded(&self.writer, login).await
    }

    async fn insert_portal_session(&self, session: &PortalSession) -> Result<(), StoreError> {
        partners::insert_session(&self.writer, session).await
    }

    async fn get_portal_session(&self, digest: &str) -> Result<Option<PortalSession>, StoreError> {
        partners::get_session(&self.pool, digest).await
    }

    async fn delete_portal_session(&self, digest: &str) -> Result<(), StoreError> {
        partners::delete_session(&self.writer, digest).await
    }

    async fn list_partner_accounts(
        &self,
        partner: &str,
    ) -> Result<Vec<PartnerAccount>, StoreError> {
        package_requests::list_accounts(&self.pool, partner).await
    }

    async fn insert_package_request(&self, request: &PackageRequest) -> Result<(), StoreError> {
        package_requests::insert_request(&self.writer, request).await
    }

    async fn get_package_request(&self, id: &str) -> Result<Option<PackageRequest>, StoreError> {
        package_requests::get_request(&self.pool, id).await
    }

    async fn list_package_requests(
        &self,
        partner: Option<&str>,
    ) -> Result<Vec<PackageRequest>, StoreError> {
        package_requests::list_requests(&self.pool, partner).await
    }

    async fn decide_package_request(
        &self,
        id: &str,
        status: RequestStatus,
        at: i64,
        by: &str,
    ) -> Result<bool, StoreError> {
        package_requests::decide_request(&self.writer, id, status, at, by).await
    }

    async fn insert_provider_session(&self, session: &ProviderSession) -> Result<(), StoreError> {
        package_requests::insert_session(&self.writer, session).await
    }

    async fn get_provider_session(
        &self,
        digest: &str,
    ) -> Result<Option<ProviderSession>, StoreError> {
        package_requests::get_session(&self.pool, digest).await
    }

    async fn delete_provider_session(&self, digest: &str) -> Result<(), StoreError> {
        package_requests::delete_session(&self.writer, digest).await
    }

    async fn put_partner_totp(&self, totp: &PartnerTotp) -> Result<(), StoreError> {
        portal_secrets::put_totp(&self.writer, totp).await
    }

    async fn get_partner_totp(&self, login: &str) -> Result<Option<PartnerTotp>, StoreError> {
        portal_secrets::get_totp(&self.pool, login).await
    }

    async fn use_partner_totp_step(
        &self,
        login: &str,
        step: i64,
        confirm: bool,
    ) -> Result<bool, StoreError> {
        portal_secrets::use_totp_step(&self.writer, login, step, confirm).await
    }

    async fn delete_partner_totp(&self, login: &str) -> Result<(), StoreError> {
        portal_secrets::delete_totp(&self.writer, login).await
    }

    async fn insert_handover(&self, handover: &Handover) -> Result<(), StoreError> {
        portal_secrets::insert_handover(&self.writer, handover).await
    }

    async fn get_handover(&self, digest: &str) -> Result<Option<Handover>, StoreError> {
        portal_secrets::get_handover(&self.pool, digest).await
    }

    async fn take_handover(&self, digest: &str) -> Result<Option<Handover>, StoreError> {
        portal_secrets::take_handover(&self.writer, digest).await
    }

    async fn add_usage(&self, deltas: &[UsageDay]) -> Result<(), StoreError> {
        usage::add(&self.writer, deltas).await
    }

    async fn list_usage(
        &self,
        env: &str,
        client_id: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<UsageDay>, StoreError> {
        usage::list(&self.pool, env, client_id, from, to).await
    }

    async fn get_issuance(
        &self,
        env: &str,
        client_id: &str,
    ) -> Result<Option<(i64, u64)>, StoreError> {
        usage::issuance(&self.pool, env, client_id).await
    }
}

/// The audit log's columns, in the order they are bound.
const AUDIT_COLUMNS: &str = "id, at, actor, action, env, target, source, before_json, after_json";
