//! `tollgate doctor`: checks what a running tollgate depends on and says what
//! is wrong in plain words. Exits non-zero when any check fails.

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde_json::json;
use tollgate_core::crypto::keyring;
use tollgate_core::crypto::keys::SigningKey;
use tollgate_core::crypto::master::MASTER_KEY_ENV;
use tollgate_core::store::Store as _;
use tollgate_core::time::{now, rfc3339};
use tollgate_store::SqlStore;

use crate::config::Config;

/// Keys older than this are worth rotating.
const KEY_AGE_WARNING: i64 = 180 * 86_400;

/// How long the doctor waits for the database server to answer.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Fail,
}

struct Report(Vec<(Status, String, String)>);

impl Report {
    fn add(&mut self, status: Status, check: &str, detail: impl Into<String>) {
        self.0.push((status, check.to_string(), detail.into()));
    }
}

/// Runs every check and prints the report.
pub async fn run(config: &Config, json_out: bool) -> Result<()> {
    let mut r = Report(Vec::new());
    check_all(config, &mut r).await;
    if json_out {
        let rows: Vec<_> =
            r.0.iter()
                .map(|(s, c, d)| json!({"status": word(*s), "check": c, "detail": d}))
                .collect();
        println!("{}", json!(rows));
    } else {
        for (s, c, d) in &r.0 {
            println!("{:<5} {c}: {d}", word(*s));
        }
    }
    let failed = r.0.iter().filter(|(s, _, _)| *s == Status::Fail).count();
    if failed > 0 {
        bail!("{failed} check(s) failed");
    }
    Ok(())
}

fn word(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Warn => "warn",
        Status::Fail => "FAIL",
    }
}

async fn check_all(config: &Config, r: &mut Report) {
    r.add(
        Status::Ok,
        "config",
        format!("loaded; listen {}", config.listen),
    );
    if let (Some(c), Some(k)) = (&config.tls_cert, &config.tls_key) {
        match tollgate_http::server::tls_config(c, k) {
            Ok(_) => r.add(
                Status::Ok,
                "tls",
                format!("{} and {} load", c.display(), k.display()),
            ),
            Err(e) => r.add(Status::Fail, "tls", e.to_string()),
        }
    }
    if config.database_url.is_none() {
        match std::fs::metadata(&config.data_dir) {
            Ok(m) if m.is_dir() => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt as _;
                    let mode = m.permissions().mode() & 0o777;
                    if mode & 0o077 == 0 {
                        r.add(
                            Status::Ok,
                            "data directory",
                            format!("{} (mode {mode:o})", config.data_dir.display()),
                        );
                    } else {
                        r.add(
                            Status::Warn,
                            "data directory",
                            format!(
                                "{} is open to other users (mode {mode:o}); run: chmod 700 {}",
                                config.data_dir.display(),
                                config.data_dir.display()
                            ),
                        );
                    }
                }
                #[cfg(not(unix))]
                r.add(
                    Status::Ok,
                    "data directory",
                    config.data_dir.display().to_string(),
                );
            }
            Ok(_) => {
                return r.add(
                    Status::Fail,
                    "data directory",
                    format!("{} is not a directory", config.data_dir.display()),
                );
            }
            Err(_) => {
                return r.add(
                    Status::Fail,
                    "data directory",
                    format!(
                        "{} does not exist: start `tollgate serve` once, or pass --data-dir",
                        config.data_dir.display()
                    ),
                );
            }
        }
    }
    // Stat before opening: opening the store tightens the database files,
    // and a file that was open to others is worth reporting even then.
    let loose = loose_files(config);
    // A database server: one plain connection first, which fails fast and
    // with the cause. (A SQLite file has nothing to probe.)
    if let Some(url) = config
        .database_url
        .as_ref()
        .filter(|u| !u.starts_with("sqlite:"))
    {
        if let Err(e) = SqlStore::probe(url, PROBE_TIMEOUT).await {
            report_modes(r, &loose);
            return r.add(Status::Fail, "database", e.to_string());
        }
    }
    let store = match crate::app::open_store(config).await {
        Ok(s) => s,
        Err(e) => {
            report_modes(r, &loose);
            return r.add(Status::Fail, "database", format!("{e:#}"));
        }
    };
    report_modes(r, &loose);
    check_store(config, &store, r).await;
    store.close().await;
}

/// The private files of this installation: the SQLite database with its
/// `-wal` and `-shm` (when the store is SQLite in the data directory) and
/// the master key file (when there is one, even if `TOLLGATE_MASTER_KEY`
/// is what is used: the file is a key all the same).
fn private_files(config: &Config) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if config.database_url.is_none() {
        files.extend(tollgate_store::database_files(
            &tollgate_store::database_path(&config.data_dir),
        ));
    }
    files.push(config.data_dir.join(crate::master::KEY_FILE));
    files.retain(|f| f.exists());
    files
}

/// What [`report_modes`] reports on.
struct Modes {
    checked: Vec<PathBuf>,
    /// Those group or others could read, with their mode.
    loose: Vec<(PathBuf, u32)>,
}

fn loose_files(config: &Config) -> Modes {
    let checked = private_files(config);
    let loose = checked
        .iter()
        .filter_map(|f| tollgate_store::loose_mode(f).map(|m| (f.clone(), m)))
        .collect();
    Modes { checked, loose }
}

fn report_modes(r: &mut Report, modes: &Modes) {
    if modes.checked.is_empty() {
        return;
    }
    if modes.loose.is_empty() {
        let names: Vec<_> = modes
            .checked
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        return r.add(
            Status::Ok,
            "file modes",
            format!("{} (owner only)", names.join(", ")),
        );
    }
    for (path, mode) in &modes.loose {
        let detail = if tollgate_store::loose_mode(path).is_none() {
            // Opening the store just tightened it; it was exposed until now.
            format!(
                "{} was readable by other users (mode {mode:o}); opening the database set it to 600, \
                 but whoever could read it may have copied it",
                path.display()
            )
        } else {
            format!(
                "{} is readable by other users (mode {mode:o}); run: chmod 600 {}",
                path.display(),
                path.display()
            )
        };
        r.add(Status::Fail, "file modes", detail);
    }
}

/// The checks that read the store. Every store error is a failed check with
/// its text: an error here is what the doctor exists to show.
async fn check_store(config: &Config, store: &SqlStore, r: &mut Report) {
    match store.schema_version().await {
        Ok((found, known)) if found == known => {
            r.add(
                Status::Ok,
                "database",
                format!("{} reachable, schema version {found}", store.backend()),
            );
        }
        Ok((found, known)) => r.add(
            Status::Fail,
            "database",
            format!("schema version {found}, this tollgate expects {known}"),
        ),
        Err(e) => return r.add(Status::Fail, "database", e.to_string()),
    }
    let keys = match store.list_signing_keys().await {
        Ok(k) => k,
        Err(e) => return r.add(Status::Fail, "signing keys", e.to_string()),
    };
    let master = match crate::master::load(&config.data_dir, !keys.is_empty()) {
        Ok(m) => {
            let source = if std::env::var(MASTER_KEY_ENV).is_ok() {
                format!("from {MASTER_KEY_ENV}")
            } else {
                format!(
                    "from {}",
                    config.data_dir.join(crate::master::KEY_FILE).display()
                )
            };
            r.add(Status::Ok, "master key", source);
            m
        }
        Err(e) => return r.add(Status::Fail, "master key", format!("{e:#}")),
    };
    let derived = match master.derive() {
        Ok(d) => d,
        Err(e) => return r.add(Status::Fail, "master key", e.to_string()),
    };
    let envs = match store.list_environments().await {
        Ok(e) => e,
        Err(e) => {
            return r.add(
                Status::Fail,
                "environments",
                format!("cannot read them: {e}"),
            );
        }
    };
    let apis = match store.list_apis().await {
        Ok(a) => a,
        Err(e) => return r.add(Status::Fail, "apis", format!("cannot read them: {e}")),
    };
    let t = now();
    for env in &envs {
        let mine: Vec<_> = keys.iter().filter(|k| k.env == env.name).collect();
        let clients = match store.list_clients(&env.name).await {
            Ok(c) => c,
            Err(e) => {
                r.add(
                    Status::Fail,
                    &format!("environment {}", env.name),
                    format!("cannot read its clients: {e}"),
                );
                continue;
            }
        };
        let max = keyring::max_token_lifetime(
            apis.iter()
                .filter(|a| a.env == env.name)
                .filter_map(|a| a.token_lifetime),
            clients.iter().filter_map(|c| c.token_lifetime),
            Some(
                tollgate_core::service::EnvExtension::longest_access_lifetime(
                    &tollgate_http::contracts::Resolver(std::sync::Arc::new(config.contracts())),
                    env,
                ),
            ),
        );
        let sched = keyring::schedule(&mine, max);
        let mut active = 0;
        for s in &sched {
            let Some(rec) = mine.iter().find(|k| k.kid == s.kid) else {
                continue;
            };
            let label = format!("key {}/{}", env.name, rec.kid);
            if let Err(e) = SigningKey::load(&derived, rec) {
                r.add(
                    Status::Fail,
                    &label,
                    format!("{e} (is this the master key the key was sealed with?)"),
                );
                continue;
            }
            let state = s.state(t);
            if state == tollgate_core::model::KeyState::Active {
                active += 1;
                if t - s.activates_at > KEY_AGE_WARNING {
                    r.add(
                        Status::Warn,
                        &label,
                        format!(
                            "active since {}: consider `tollgate key rotate --env {}`",
                            rfc3339(s.activates_at),
                            env.name
                        ),
                    );
                    continue;
                }
            }
            r.add(
                Status::Ok,
                &label,
                format!(
                    "{} {}, {}",
                    rec.alg.as_str(),
                    state.as_str(),
                    if s.published(t) {
                        "published"
                    } else {
                        "no longer published"
                    }
                ),
            );
        }
        if active == 0 {
            r.add(
                Status::Fail,
                &format!("environment {}", env.name),
                "has no active signing key: it cannot issue tokens",
            );
        }
    }
}
