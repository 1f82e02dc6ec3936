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

fn create(path: &Path) -> Result<MasterKey> {
    if let Some(dir) = path.parent() {
        create_data_dir(dir)?;
    }
    let key = MasterKey::generate()?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(key.to_base64().as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
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
