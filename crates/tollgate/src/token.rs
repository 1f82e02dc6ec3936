//! `tollgate token get`: the partner's side on the command line, over
//! `tollgate-client`. Secrets come from files or the environment, never
//! argv (which other users can read in `ps`). The access token is cached in
//! `$XDG_CACHE_HOME/tollgate` (else `~/.cache/tollgate`), 0600, written
//! atomically, so a shell script calling this in a loop asks the server
//! once per lifetime; refresh tokens of the user contracts live beside it
//! (the library's file store), saved before the token is printed.
//!
//! Invocations running at once share the cache through an advisory lock
//! (`flock`, on Unix) on a lock file beside the entry: the one that finds no usable
//! token takes the lock and asks the server; the others wait for the lock,
//! read the entry again and print what it fetched. So 1,000 concurrent
//! invocations cause one token request, and the user contracts' refresh
//! tokens are never rotated by two processes at once. The kernel drops the
//! lock when its holder dies, even by SIGKILL.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use tollgate_client::{
    AccessToken, BearerExchange, ClientCredentials, Contract, DeviceCredentials, FileStore,
    HeaderLogin, Options, Secret, Shape, TokenSource, write_private_file,
};
use tollgate_core::time::rfc3339;

use crate::cli::TokenGetArgs;
use crate::config::parse_duration;

/// The secret's environment variable.
const SECRET_ENV: &str = "TOLLGATE_CLIENT_SECRET";
/// The password's environment variable.
const PASSWORD_ENV: &str = "TOLLGATE_PASSWORD";

/// What the cache file holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cached {
    key: String,
    access_token: String,
    received_at: u64,
    expires_at: u64,
}

/// Runs `token get`.
pub async fn get(args: TokenGetArgs, json: bool) -> Result<()> {
    if args.header && json {
        bail!("--header and --json exclude each other");
    }
    let contract: Contract = args.contract.parse().map_err(|e: String| anyhow!(e))?;
    let min_valid = parse_duration(&args.min_valid)
        .with_context(|| format!("--min-valid {}", args.min_valid))?;
    let dir =
        cache_dir().ok_or_else(|| anyhow!("no XDG_CACHE_HOME or HOME for the token cache"))?;
    let options = Options::default()
        .margin(min_valid)
        .store(Arc::new(FileStore::new(dir.join("sessions"))));
    let source = source(&args, contract, options)?;
    let key = source.key().clone();
    let file = dir.join(format!("{}.token.json", key.file_stem()));
    let store_key = key.store_key();
    let cached = if args.refresh {
        None
    } else {
        read_cached(&file, &store_key, min_valid)
    };
    let token = match cached {
        Some(t) => t,
        None => {
            let lock = lock_entry(dir.join(format!("{}.lock", key.file_stem()))).await?;
            // Whoever held the lock before us may have fetched a token.
            let fetched_meanwhile = if args.refresh {
                None
            } else {
                read_cached(&file, &store_key, min_valid)
            };
            let t = match fetched_meanwhile {
                Some(t) => t,
                None => fetch(&source, &args, &file, store_key).await?,
            };
            drop(lock);
            t
        }
    };
    print(&token, json, args.header);
    Ok(())
}

/// A token from the server, written to the cache entry `file`.
async fn fetch(
    source: &TokenSource,
    args: &TokenGetArgs,
    file: &Path,
    store_key: String,
) -> Result<AccessToken> {
    let t = if args.refresh {
        source.refresh().await
    } else {
        source.token().await
    }
    .with_context(|| format!("getting a token from {}", args.base_url))?;
    let body = serde_json::to_vec(&Cached {
        key: store_key,
        access_token: t.secret().to_string(),
        received_at: unix(t.received_at()),
        expires_at: unix(t.expires_at()),
    })?;
    write_private_file(file, &body).map_err(|e| anyhow!("token cache: {e}"))?;
    Ok(t)
}

/// The cache entry's lock, held until the returned file is dropped (or the
/// process dies). Waiting blocks a thread, so it waits off the runtime.
async fn lock_entry(path: PathBuf) -> Result<std::fs::File> {
    tokio::task::spawn_blocking(move || -> Result<std::fs::File> {
        if let Some(dir) = path.parent() {
            create_private_dir(dir)
                .with_context(|| format!("creating the token cache {}", dir.display()))?;
        }
        let f = open_lock_file(&path).with_context(|| format!("lock file {}", path.display()))?;
        lock_exclusive(&f).with_context(|| format!("locking {}", path.display()))?;
        Ok(f)
    })
    .await
    .context("waiting for the token cache's lock")?
}

/// Waits for the exclusive `flock` of `f` (released when `f` is closed,
/// which the kernel does for a killed process too).
#[cfg(unix)]
fn lock_exclusive(f: &std::fs::File) -> std::io::Result<()> {
    use rustix::fs::{FlockOperation, flock};
    loop {
        match flock(f, FlockOperation::LockExclusive) {
            Err(e) if e == rustix::io::Errno::INTR => continue,
            r => return r.map_err(std::io::Error::from),
        }
    }
}

/// No cross-process lock off Unix: concurrent invocations may each ask for
/// a token (the cache stays consistent: writes are atomic).
#[cfg(not(unix))]
fn lock_exclusive(_f: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn open_lock_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_lock_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

fn source(args: &TokenGetArgs, contract: Contract, options: Options) -> Result<TokenSource> {
    let base = args.base_url.clone();
    let client_id = || {
        args.client_id
            .clone()
            .ok_or_else(|| anyhow!("--contract {contract} needs --client-id"))
    };
    let username = || {
        args.username
            .clone()
            .ok_or_else(|| anyhow!("--contract {contract} needs --username"))
    };
    let secret = || {
        read_secret(
            args.client_secret_file.as_deref(),
            SECRET_ENV,
            "--client-secret-file",
        )
    };
    let password = || {
        read_secret(
            args.password_file.as_deref(),
            PASSWORD_ENV,
            "--password-file",
        )
    };
    let built = match contract {
        Contract::Rfc6749 | Contract::Rfc6749Json | Contract::Auth0 => {
            let shape = match contract {
                Contract::Rfc6749Json => Shape::Json,
                Contract::Auth0 => Shape::Auth0,
                _ => Shape::Form,
            };
            let mut c = ClientCredentials::new(base, client_id()?, secret()?).shape(shape);
            if let Some(a) = &args.audience {
                c = c.audience(a);
            }
            if let Some(r) = &args.resource {
                c = c.resource(r);
            }
            if let Some(s) = &args.scope {
                c = c.scope(s);
            }
            if let Some(p) = &args.path {
                c = c.path(p);
            }
            c.build(options)
        }
        Contract::BearerExchange => {
            let mut c = BearerExchange::new(base, secret()?);
            if let Some(p) = &args.path {
                c = c.path(p);
            }
            c.build(options)
        }
        Contract::DeviceCredentials => {
            let mut c = DeviceCredentials::new(base, client_id()?, username()?, password()?);
            if args.client_secret_file.is_some() || std::env::var_os(SECRET_ENV).is_some() {
                c = c.client_secret(secret()?);
            }
            if let Some(p) = &args.path {
                c = c.path(p);
            }
            c.build(options)
        }
        Contract::HeaderLogin => {
            let mut c = HeaderLogin::new(base, username()?, password()?);
            if let Some(p) = &args.path {
                c = c.prefix(p);
            }
            c.build(options)
        }
    };
    built.map_err(|e| anyhow!("{e}"))
}

/// A secret from `file` (trailing newline dropped), else `env`.
fn read_secret(file: Option<&Path>, env: &str, flag: &str) -> Result<Secret> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f).with_context(|| format!("{flag} {}", f.display()))?;
        return Ok(Secret::new(text.trim_end_matches(['\r', '\n'])));
    }
    match std::env::var(env) {
        Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
        _ => bail!("no secret: give {flag} or set {env}"),
    }
}

/// `$XDG_CACHE_HOME/tollgate`, else `~/.cache/tollgate`.
fn cache_dir() -> Option<PathBuf> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    non_empty("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("tollgate"))
}

/// The cached token for `key` if more than `min_valid` is left.
fn read_cached(file: &Path, key: &str, min_valid: Duration) -> Option<AccessToken> {
    let c: Cached = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
    if c.key != key {
        return None;
    }
    let t = AccessToken::new(
        Secret::new(c.access_token),
        UNIX_EPOCH + Duration::from_secs(c.received_at),
        UNIX_EPOCH + Duration::from_secs(c.expires_at),
    );
    (t.remaining() > min_valid).then_some(t)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn print(t: &AccessToken, json: bool, header: bool) {
    if json {
        let exp = unix(t.expires_at());
        let v = json!({
            "access_token": t.secret(),
            "token_type": "Bearer",
            "expires_in": t.remaining().as_secs(),
            "expires_at": rfc3339(i64::try_from(exp).unwrap_or(i64::MAX)),
        });
        println!("{v}");
    } else if header {
        println!("Authorization: {}", t.header_value());
    } else {
        println!("{}", t.secret());
    }
}
