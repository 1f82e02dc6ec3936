//! Where refresh tokens outlive the process. A rotated refresh token is
//! saved here before the access token that came with it is handed out, so a
//! crash right after the server rotated loses nothing the server would not
//! take back within its retry leeway.
//!
//! [`FileStore`] (the default) keeps one file per session, 0600 in a 0700
//! directory, written atomically: a temporary file, fsync, rename, fsync of
//! the directory. [`MemoryStore`] keeps them for the process only.
//! Implement [`RefreshStore`] for anything else (a keychain, a database).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::key::md5_hex;
use crate::secret::Secret;

/// A store failure, as text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Persistent refresh tokens, by [`crate::CacheKey::store_key`]. Calls run
/// on a blocking thread; `save` must be durable when it returns.
pub trait RefreshStore: Send + Sync + 'static {
    /// The refresh token saved under `key`, if any.
    fn load(&self, key: &str) -> Result<Option<Secret>, StoreError>;
    /// Saves `token` under `key`, replacing what was there.
    fn save(&self, key: &str, token: &Secret) -> Result<(), StoreError>;
    /// Forgets `key` (the session ended).
    fn remove(&self, key: &str) -> Result<(), StoreError>;
}

/// Refresh tokens in files, one per key, in a directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    key: String,
    refresh_token: String,
}

impl FileStore {
    /// A store in `dir` (created 0700 when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The default directory: `$XDG_STATE_HOME/tollgate-client`, else
    /// `~/.local/state/tollgate-client`.
    pub fn default_dir() -> Option<PathBuf> {
        let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        non_empty("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| non_empty("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .map(|d| d.join("tollgate-client"))
    }

    /// The file holding `key` (a [`crate::CacheKey::store_key`]).
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{}.json", md5_hex(key)))
    }
}

impl RefreshStore for FileStore {
    fn load(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        let path = self.path_of(key);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError(format!("{}: {e}", path.display()))),
        };
        let saved: Saved = serde_json::from_str(&text)
            .map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
        // A different key hashing to the same name is not ours.
        Ok((saved.key == key).then(|| Secret::new(saved.refresh_token)))
    }

    fn save(&self, key: &str, token: &Secret) -> Result<(), StoreError> {
        let body = serde_json::to_vec(&Saved {
            key: key.to_string(),
            refresh_token: token.expose().to_string(),
        })
        .map_err(|e| StoreError(e.to_string()))?;
        write_private_file(&self.path_of(key), &body)
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        match std::fs::remove_file(self.path_of(key)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError(e.to_string())),
        }
    }
}

/// Writes `body` to `path` atomically and durably, readable by the owner
/// only: a 0600 temporary file beside it, fsync, rename over `path`, fsync
/// of the directory. Readers see the old file or the new one, never half.
pub fn write_private_file(path: &Path, body: &[u8]) -> Result<(), StoreError> {
    let err = |what: &str, e: std::io::Error| StoreError(format!("{what} {}: {e}", path.display()));
    let dir = path
        .parent()
        .ok_or_else(|| StoreError(format!("{} has no directory", path.display())))?;
    create_private_dir(dir).map_err(|e| err("creating the directory of", e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ));
    let result = (|| {
        let mut f = open_private(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable only once the directory is.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| err("writing", e))
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Refresh tokens in this process's memory only.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tokens: Mutex<HashMap<String, Secret>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl RefreshStore for MemoryStore {
    fn load(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        let map = self
            .tokens
            .lock()
            .map_err(|_| StoreError("poisoned".into()))?;
        Ok(map.get(key).cloned())
    }

    fn save(&self, key: &str, token: &Secret) -> Result<(), StoreError> {
        let mut map = self
            .tokens
            .lock()
            .map_err(|_| StoreError("poisoned".into()))?;
        map.insert(key.to_string(), token.clone());
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        let mut map = self
            .tokens
            .lock()
            .map_err(|_| StoreError("poisoned".into()))?;
        map.remove(key);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn file_store_round_trip_private_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("state"));
        assert!(store.load("k").unwrap().is_none());
        store.save("k", &Secret::new("r1")).unwrap();
        store.save("k", &Secret::new("r2")).unwrap();
        assert_eq!(store.load("k").unwrap().unwrap().expose(), "r2");
        assert!(store.load("other").unwrap().is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(store.path_of("k"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(dir.path().join("state"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("state"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        store.remove("k").unwrap();
        assert!(store.load("k").unwrap().is_none());
        store.remove("k").unwrap();
    }

    #[test]
    fn a_file_of_another_key_is_not_read_as_ours() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        store.save("a", &Secret::new("ra")).unwrap();
        std::fs::rename(store.path_of("a"), store.path_of("b")).unwrap();
        assert!(store.load("b").unwrap().is_none());
    }
}
