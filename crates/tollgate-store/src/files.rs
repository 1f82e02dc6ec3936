//! File modes of the SQLite database in the data directory.
//!
//! The database and the `-wal` and `-shm` files SQLite keeps beside it in WAL
//! mode hold every client's secret hash, every user's password hash and
//! every sealed signing key, so they are the owner's alone (0600), whatever
//! the process umask and whoever else can enter the directory. SQLite
//! creates a new database 0644 (less the umask) and gives `-wal` and `-shm`
//! the database's own mode, so the database is created here, 0600, before
//! SQLite opens it; files left looser by an older tollgate or by hand are
//! tightened when the store opens them, with one warning each (the next open
//! finds them tight and says nothing).

use std::path::{Path, PathBuf};

/// Name of the SQLite database inside the data directory.
pub const DB_FILE: &str = "tollgate.db";

/// The SQLite database of the data directory `data_dir`.
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_FILE)
}

/// The database `db` and the `-wal` and `-shm` files SQLite keeps beside it
/// (which exist only while it is open, or after an unclean stop).
pub fn database_files(db: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [db.to_path_buf(), with("-wal"), with("-shm")]
}

/// Creates `path` empty with mode 0600 unless it exists (SQLite accepts an
/// empty file as a new database and keeps its mode).
pub(crate) fn create_private(path: &Path) -> std::io::Result<()> {
    match create_new_private(path) {
        // There already (an existing database, or another process won the
        // race): `tighten` sees to its mode.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Creates `path` empty with mode 0600; an error of kind `AlreadyExists`
/// if anything is there already (checked and created in one step).
pub(crate) fn create_new_private(path: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    opts.open(path).map(drop)
}

/// Sets every file of `files` that exists and is open to group or others to
/// 0600, logging a warning for each one changed. A file that cannot be
/// changed (another owner) is logged and left: the store still opens, and
/// `tollgate doctor` reports it.
pub(crate) fn tighten(files: &[PathBuf]) {
    for path in files {
        let Some(mode) = loose_mode(path) else {
            continue;
        };
        match set_private(path) {
            Ok(()) => tracing::warn!(
                path = %path.display(),
                was = %format!("{mode:o}"),
                "database file was readable by other users; set to mode 600"
            ),
            Err(e) => tracing::warn!(
                path = %path.display(),
                mode = %format!("{mode:o}"),
                error = %e,
                "database file is readable by other users and its mode cannot be changed"
            ),
        }
    }
}

/// The permission bits of `path` if it exists and group or others have any
/// access to it.
#[cfg(unix)]
pub fn loose_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

/// Modes are a Unix matter.
#[cfg(not(unix))]
pub fn loose_mode(_: &Path) -> Option<u32> {
    None
}

/// Sets `path` to mode 0600.
#[cfg(unix)]
pub(crate) fn set_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Modes are a Unix matter.
#[cfg(not(unix))]
pub(crate) fn set_private(_: &Path) -> std::io::Result<()> {
    Ok(())
}

// Modes are a Unix matter; the helpers unwrap as the tests do.
#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// Whatever the umask (0022 in the test run: SQLite alone would make
    /// them 0644), the database and its WAL files are the owner's alone.
    #[tokio::test]
    async fn an_opened_store_has_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::SqlStore::open_data_dir(dir.path()).await.unwrap();
        let files = database_files(&database_path(dir.path()));
        for f in &files {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
        s.close().await;
    }

    #[test]
    fn companions_are_named_after_the_database() {
        let [db, wal, shm] = database_files(Path::new("/d/tollgate.db"));
        assert_eq!(db, Path::new("/d/tollgate.db"));
        assert_eq!(wal, Path::new("/d/tollgate.db-wal"));
        assert_eq!(shm, Path::new("/d/tollgate.db-shm"));
    }

    #[test]
    fn creates_private_and_tightens_loose_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = database_files(&database_path(dir.path()));
        create_private(&files[0]).unwrap();
        assert_eq!(mode(&files[0]), 0o600);
        // An existing file is left as it is by create_private...
        std::fs::set_permissions(&files[0], std::fs::Permissions::from_mode(0o644)).unwrap();
        create_private(&files[0]).unwrap();
        assert_eq!(loose_mode(&files[0]), Some(0o644));
        // ...and tightened by tighten, which skips the missing ones.
        std::fs::write(&files[1], b"").unwrap();
        std::fs::set_permissions(&files[1], std::fs::Permissions::from_mode(0o640)).unwrap();
        tighten(&files);
        assert_eq!(mode(&files[0]), 0o600);
        assert_eq!(mode(&files[1]), 0o600);
        assert!(!files[2].exists());
        assert_eq!(loose_mode(&files[0]), None);
    }
}
