//! Online backup of the SQLite store: `VACUUM INTO` a new file.
//!
//! `VACUUM INTO` reads the database in one read transaction, so the copy is
//! one consistent snapshot even while a server keeps writing (WAL readers do
//! not block writers, nor writers them), and the copy is compact and needs
//! no `-wal` beside it. It refuses a target that exists unless it is empty
//! and keeps an empty target's mode, so the target is created first, 0600,
//! with `create_new` (which also makes "do not overwrite" atomic). To
//! replace a file, the copy is written beside it and renamed over it, so the
//! old backup stays whole until the new one is. PostgreSQL has `pg_dump`.

use std::path::{Path, PathBuf};

use sqlx::{ConnectOptions as _, Connection as _};

use crate::files::{create_new_private, set_private};
use crate::sql::SqlStore;

/// Why a backup was not written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The store is not SQLite.
    #[error(
        "online backup is for the SQLite store; this store is {backend}: back it up with pg_dump"
    )]
    Unsupported {
        /// The store's backend.
        backend: &'static str,
    },
    /// The target exists and replacing it was not asked for.
    #[error("{} already exists; refusing to overwrite it", .0.display())]
    Exists(PathBuf),
    /// SQLite takes the target as text.
    #[error("the backup path {} is not valid UTF-8", .0.display())]
    PathNotUtf8(PathBuf),
    /// Creating, renaming or reading the target failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite refused the copy, or the copy could not be read back.
    #[error("backup failed: {0}")]
    Sql(String),
}

/// What a backup wrote, read back from the copy itself.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackupReport {
    /// The backup file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The schema version recorded in it.
    pub schema_version: i64,
    /// Every table in it with its row count, by name.
    pub tables: Vec<(String, u64)>,
    /// SQLite's `quick_check` of the copy: `ok`, or what is wrong.
    pub check: String,
}

impl SqlStore {
    /// Writes a consistent copy of the SQLite database to `target` (mode
    /// 0600). An existing `target` is an error unless `replace`.
    pub async fn backup(&self, target: &Path, replace: bool) -> Result<BackupReport, BackupError> {
        if self.backend() != "sqlite" {
            return Err(BackupError::Unsupported {
                backend: self.backend(),
            });
        }
        let work = if replace {
            sibling(target)
        } else {
            target.to_path_buf()
        };
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BackupError::Io { path, source }
        };
        let text = work
            .to_str()
            .ok_or_else(|| BackupError::PathNotUtf8(target.to_path_buf()))?
            .to_string();
        match create_new_private(&work) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && !replace => {
                return Err(BackupError::Exists(target.to_path_buf()));
            }
            Err(e) => return Err(io(&work)(e)),
        }
        // On the readers' pool: a read transaction, so the server's writer
        // goes on meanwhile.
        let copied = sqlx::query("VACUUM INTO $1")
            .bind(text)
            .execute(self.reader())
            .await;
        let placed = match copied {
            Ok(_) if replace => std::fs::rename(&work, target).map_err(io(target)),
            Ok(_) => Ok(()),
            Err(e) => Err(BackupError::Sql(e.to_string())),
        };
        if let Err(e) = placed {
            // Leave nothing half-written behind (best effort: the error that
            // matters is the one returned).
            let _ = std::fs::remove_file(&work);
            return Err(e);
        }
        // Already 0600 from its creation; said again in case the target was
        // replaced by something else between the two steps.
        set_private(target).map_err(io(target))?;
        report(target).await
    }
}

/// A fresh temporary name beside `target` (same directory, so the rename
/// is atomic).
fn sibling(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.{}-{nanos}.tmp", std::process::id()))
}

/// Reads the copy back: size, schema version, tables and their rows, and a
/// quick check. Opened read-only and immutable, so no `-wal` or `-shm` is
/// made beside it.
async fn report(path: &Path) -> Result<BackupReport, BackupError> {
    let sql = |e: sqlx::Error| BackupError::Sql(format!("reading the copy back: {e}"));
    let bytes = std::fs::metadata(path)
        .map_err(|source| BackupError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(true)
        .connect()
        .await
        .map_err(sql)?;
    let check: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut conn)
        .await
        .map_err(sql)?;
    let schema_version: i64 =
        sqlx::query_scalar("SELECT value FROM tg_meta WHERE key = 'schema_version'")
            .fetch_one(&mut conn)
            .await
            .map_err(sql)?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(sql)?;
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        // Names come from the copy's own catalogue; quoting them is enough,
        // but a name that would need escaping is not one of ours.
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{name}\""))
            .fetch_one(&mut conn)
            .await
            .map_err(sql)?;
        tables.push((name, u64::try_from(n).unwrap_or_default()));
    }
    conn.close().await.map_err(sql)?;
    Ok(BackupReport {
        path: path.to_path_buf(),
        bytes,
        schema_version,
        tables,
        check,
    })
}

// Modes are a Unix matter; the helpers unwrap as the tests do.
#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;
    use std::sync::Arc;

    use tollgate_core::Tollgate;
    use tollgate_core::crypto::master::MasterKey;

    use super::*;

    /// A SQLite store in a fresh data directory, with its default
    /// environment and key.
    async fn store(dir: &Path) -> SqlStore {
        let data = dir.join("data");
        std::fs::create_dir(&data).unwrap();
        let s = SqlStore::open_data_dir(&data).await.unwrap();
        Tollgate::open(
            Arc::new(s.clone()),
            &MasterKey::generate().unwrap(),
            "http://t",
        )
        .await
        .unwrap();
        s
    }

    fn rows(r: &BackupReport, table: &str) -> u64 {
        r.tables.iter().find(|(t, _)| t == table).unwrap().1
    }

    #[tokio::test]
    async fn writes_a_private_checked_copy_and_never_overwrites_by_accident() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        let target = dir.path().join("backup.db");

        let r = s.backup(&target, false).await.unwrap();
        assert_eq!(r.check, "ok");
        assert_eq!(rows(&r, "tg_environments"), 1);
        assert_eq!(rows(&r, "tg_signing_keys"), 1);
        assert_eq!(
            r.schema_version,
            i64::try_from(crate::schema::STEPS.len()).unwrap()
        );
        assert_eq!(r.bytes, std::fs::metadata(&target).unwrap().len());
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        // An existing file is refused and left as it was.
        std::fs::write(&target, b"an older backup").unwrap();
        assert!(matches!(
            s.backup(&target, false).await,
            Err(BackupError::Exists(_))
        ));
        assert_eq!(std::fs::read(&target).unwrap(), b"an older backup");

        // Replacing goes through a sibling renamed over it: nothing else is
        // left in the directory.
        let r = s.backup(&target, true).await.unwrap();
        assert_eq!(r.check, "ok");
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["backup.db", "data"]);

        // A target that cannot be created: an error, nothing written.
        let nowhere = dir.path().join("missing").join("backup.db");
        assert!(matches!(
            s.backup(&nowhere, false).await,
            Err(BackupError::Io { .. })
        ));
        s.close().await;
    }

    #[tokio::test]
    async fn postgres_is_refused_with_pg_dump() {
        let Some(base) = tollgate_testkit::postgres_base() else {
            eprintln!("skipped: TG_TEST_STORE is not postgres");
            return;
        };
        let db = tollgate_testkit::TempDatabase::create(&base).unwrap();
        let s = SqlStore::open(&db.url()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("backup.db");
        let e = s.backup(&target, false).await.unwrap_err();
        assert!(matches!(e, BackupError::Unsupported { .. }), "{e}");
        assert!(e.to_string().contains("pg_dump"), "{e}");
        assert!(!target.exists());
        s.close().await;
    }
}
