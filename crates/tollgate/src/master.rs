//! Where the master key comes from: `TOLLGATE_MASTER_KEY`, else the key file
//! `master.key` in the data directory, created with mode 0600 on first use.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use tollgate_core::crypto::master::{MASTER_KEY_ENV, MasterKey};

/// Name of the key file inside the data directory.
pub const KEY_FILE: &str = "master.key";

/// Loads the master key. The key file is created only for a store that holds
/// no sealed keys yet (`store_has_keys` false); otherwise a missing key is an
/// error, never silently replaced.
pub fn load(data_dir: &Path, store_has_keys: bool) -> Result<MasterKey> {
    if let Ok(v) = std::env::var(MASTER_KEY_ENV) {
        return MasterKey::parse(&v).with_context(|| format!("{MASTER_KEY_ENV} is not usable"));
    }
    let path = data_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            check_mode(&path)?;
            MasterKey::parse(&text).with_context(|| format!("{} is not usable", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && store_has_keys => bail!(
            "{} is missing but the database holds signing keys sealed under a master key: \
             restore the key file from your backup or set {MASTER_KEY_ENV}",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(&path),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Creates the data directory (mode 0700) if it does not exist.
pub fn create_data_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))
}

/// Where [`load`] takes the key from, in words.
pub fn source(data_dir: &Path) -> String {
    if std::env::var(MASTER_KEY_ENV).is_ok() {
        MASTER_KEY_ENV.to_string()
    } else {
        data_dir.join(KEY_FILE).display().to_string()
    }
}

/// The key file of `data_dir`, if there is one.
fn existing(data_dir: &Path) -> Result<Option<MasterKey>> {
    let path = data_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => MasterKey::parse(&text)
            .map(Some)
            .with_context(|| format!("{} is not usable", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Fails if `data_dir` holds a key file with another key than `key`:
/// [`install`] would refuse, and it is better known before anything else
/// is done.
pub fn check_install(data_dir: &Path, key: &MasterKey) -> Result<()> {
    match existing(data_dir)? {
        Some(k) if *k.to_base64() != *key.to_base64() => bail!(
            "{} holds another master key; it is left alone: point --to-data-dir at a new \
             directory, or remove that file if nothing uses it",
            data_dir.join(KEY_FILE).display()
        ),
        _ => Ok(()),
    }
}

/// Writes `key` as the key file of `data_dir` (created 0700; the file 0600),
/// unless that very key is there already. Returns whether it wrote. Another
/// key there is an error and is never overwritten.
pub fn install(data_dir: &Path, key: &MasterKey) -> Result<bool> {
    check_install(data_dir, key)?;
    if existing(data_dir)?.is_some() {
        return Ok(false);
    }
    create_data_dir(data_dir)?;
    let path = data_dir.join(KEY_FILE);
    write_new(&path, key).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(true)
}

/// Creates `path` (mode 0600) holding `key`; fails if it exists.
fn write_new(path: &Path, key: &MasterKey) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(key.to_base64().as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

fn create(path: &Path) -> Result<MasterKey> {
    if let Some(dir) = path.parent() {
        create_data_dir(dir)?;
    }
    let key = MasterKey::generate()?;
    match write_new(path, &key) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created a new master key; back it up with the data directory");
            Ok(key)
        }
        // Another process (the CLI, a second start) won the race: use its key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)?;
            Ok(MasterKey::parse(&text)?)
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

#[cfg(unix)]
fn check_mode(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{} is readable by other users (mode {mode:o}); run: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_: &Path) -> Result<()> {
    Ok(())
}
