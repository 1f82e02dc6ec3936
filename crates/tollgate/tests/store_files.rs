//! The store's files and what tends them (issues 9 §5, §6 and 10): the
//! SQLite database and its `-wal` and `-shm` are the owner's alone (0600),
//! also when an older install left them looser; `doctor` names any private
//! file open to others, and reports store errors as failures instead of
//! reading them as "nothing there"; `backup` copies a live SQLite store
//! into a file another tollgate can serve from, and over PostgreSQL points
//! to `pg_dump`.
//!
//! The SQLite-only tests return early, without asserting, when the suite
//! runs over PostgreSQL (`TG_TEST_STORE=postgres`): there is no database
//! file to look at.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Server, jwt_parts, send};
use serde_json::Value;

/// True, after saying why, when the suite runs over PostgreSQL.
fn skip_over_postgres(test: &str) -> bool {
    let pg = tollgate_testkit::postgres_base().is_some();
    if pg {
        eprintln!("{test}: skipped over PostgreSQL (it is about SQLite's database files)");
    }
    pg
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// The database, -wal and -shm of a data directory.
fn db_files(data: &Path) -> [PathBuf; 3] {
    let db = data.join("tollgate.db");
    [
        db.clone(),
        data.join("tollgate.db-wal"),
        data.join("tollgate.db-shm"),
    ]
}

/// Runs `tollgate` over `data` (and `database_url`, if any) with extra
/// environment variables; a clean environment otherwise.
fn tollgate(
    data: &Path,
    database_url: Option<&str>,
    env: &[(&str, &str)],
    args: &[&str],
) -> Output {
    let mut cmd = Command::new(common::BIN);
    cmd.arg("--data-dir").arg(data);
    if let Some(u) = database_url {
        cmd.arg("--database-url").arg(u);
    }
    cmd.args(args)
        .env_remove("TOLLGATE_MASTER_KEY")
        .env_remove("TOLLGATE_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs SQL on the server's database with the database's own client
/// (`sqlite3` or `psql`), not through tollgate.
fn raw_sql(s: &Server, sql: &str) {
    let out = match &s.database_url {
        Some(u) => Command::new("psql")
            .arg(u)
            .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap(),
        None => Command::new("sqlite3")
            .args(["-cmd", ".timeout 5000"])
            .arg(s.data_dir().join("tollgate.db"))
            .arg(sql)
            .output()
            .unwrap(),
    };
    assert!(out.status.success(), "{sql}: {}", stderr(&out));
}

/// The lines of a doctor's output that failed.
fn failures(o: &Output) -> Vec<String> {
    stdout(o)
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn serve_creates_the_database_and_its_wal_files_0600() {
    if skip_over_postgres("serve_creates_the_database_and_its_wal_files_0600") {
        return;
    }
    // The harness runs with the usual umask (022): left to SQLite, the
    // database would be 0644 and its -wal and -shm with it.
    let s = Server::start();
    s.cli_ok(&["api", "create", "orders", "--permission", "read"]);
    let (id, secret) = s.client(&["--name", "p", "--api", "orders=read"]);
    s.sync().await;
    assert_eq!(s.token(&id, &secret, &[]).await.status(), 200);
    for f in db_files(&s.data_dir()) {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

#[tokio::test]
async fn an_existing_database_open_to_others_is_tightened_once() {
    if skip_over_postgres("an_existing_database_open_to_others_is_tightened_once") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A database made earlier (a provisioning command leaves its -wal and
    // -shm behind), then opened up as an older tollgate or a careless copy
    // would have left it.
    let out = tollgate(&data, None, &[], &["api", "create", "orders"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let files = db_files(&data);
    // The -wal and -shm are left only if the command's last connection did
    // not close cleanly first (closing checkpoints and removes them), so
    // whichever exist are opened up; after the start all three must be 0600.
    for f in files.iter().filter(|f| f.exists()) {
        chmod(f, 0o644);
    }
    let s = Server::start_in(dir, &[], &[]);
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    let logs = s.logs();
    let warned: Vec<_> = logs
        .lines()
        .filter(|l| l.contains("readable by other users"))
        .collect();
    assert!(
        warned
            .iter()
            .any(|l| l.contains("tollgate.db ") || l.ends_with("tollgate.db")),
        "{logs}"
    );
    // Once: the next open finds nothing to say.
    let out = s.cli(&["api", "list"]);
    assert!(out.status.success());
    assert!(
        !stderr(&out).contains("readable by other users"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn doctor_names_a_database_or_master_key_file_open_to_others() {
    if skip_over_postgres("doctor_names_a_database_or_master_key_file_open_to_others") {
        return;
    }
    let s = Server::start();
    let data = s.data_dir();
    let ok = s.cli(&["doctor"]);
    assert!(ok.status.success(), "{}", stdout(&ok));
    assert!(
        stdout(&ok).contains("ok    file modes: "),
        "{}",
        stdout(&ok)
    );

    let db = data.join("tollgate.db");
    chmod(&db, 0o644);
    let out = s.cli(&["doctor"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let failed = failures(&out);
    assert!(
        failed
            .iter()
            .any(|l| l.contains("file modes") && l.contains(&db.display().to_string())),
        "{}",
        stdout(&out)
    );
    // Opening the store tightened it; the next check is clean.
    assert_eq!(mode(&db), 0o600);
    assert!(s.cli(&["doctor"]).status.success());

    let key = data.join("master.key");
    chmod(&key, 0o644);
    let out = s.cli(&["doctor"]);
    assert!(!out.status.success());
    assert!(
        failures(&out)
            .iter()
            .any(|l| l.contains("file modes") && l.contains(&key.display().to_string())),
        "{}",
        stdout(&out)
    );
    chmod(&key, 0o600);
}

/// A key file open to others is a problem even while the key in use comes
/// from `TOLLGATE_MASTER_KEY` (the file is never read then). Both backends.
#[tokio::test]
async fn doctor_names_a_master_key_file_open_to_others_under_the_environment_key() {
    let s = Server::start();
    let key = s.data_dir().join("master.key");
    let value = std::fs::read_to_string(&key).unwrap();
    let env = [("TOLLGATE_MASTER_KEY", value.trim())];
    let url = s.database_url.as_deref();
    let out = tollgate(&s.data_dir(), url, &env, &["doctor"]);
    assert!(out.status.success(), "{}", stdout(&out));

    chmod(&key, 0o644);
    let out = tollgate(&s.data_dir(), url, &env, &["doctor"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        failures(&out)
            .iter()
            .any(|l| l.contains("file modes") && l.contains(&key.display().to_string())),
        "{}",
        stdout(&out)
    );
}

/// A store that answers with an error is a failed check with the error's
/// text, never an empty list. Both backends.
#[tokio::test]
async fn doctor_reports_store_errors_as_failures() {
    let mut s = Server::start();
    s.cli_ok(&["api", "create", "orders", "--permission", "read"]);
    s.client(&["--name", "p", "--api", "orders=read"]);
    s.stop();
    assert!(s.cli(&["doctor"]).status.success());

    raw_sql(&s, "UPDATE tg_apis SET permissions = 'not json'");
    let out = s.cli(&["doctor"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        failures(&out)
            .iter()
            .any(|l| l.starts_with("FAIL  apis: cannot read them: ") && l.contains("corrupt")),
        "{}",
        stdout(&out)
    );

    raw_sql(&s, "UPDATE tg_apis SET permissions = '[\"read\"]'");
    raw_sql(&s, "UPDATE tg_clients SET secrets = 'not json'");
    let out = s.cli(&["doctor"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        failures(&out).iter().any(|l| l
            .starts_with("FAIL  environment default: cannot read its clients: ")
            && l.contains("corrupt")),
        "{}",
        stdout(&out)
    );
}

/// Nothing listens on port 1: the doctor fails at once, with the cause.
#[tokio::test]
async fn doctor_over_unreachable_postgres_fails_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = tollgate(
        &dir.path().join("data"),
        Some("postgres://postgres@127.0.0.1:1/test"),
        &[],
        &["doctor"],
    );
    let took = started.elapsed();
    assert!(!out.status.success(), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(!text.contains("ok    database"), "{text}");
    let line = failures(&out)
        .into_iter()
        .find(|l| l.starts_with("FAIL  database: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.to_lowercase().contains("refused"), "{line}");
    // Not a pool's 30 s of retries ending in "timed out".
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test]
async fn backup_copies_a_live_sqlite_store_or_points_postgres_to_pg_dump() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    let file_arg = file.to_str().unwrap();
    if s.database_url.is_some() {
        let out = s.cli(&["backup", file_arg]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("pg_dump"), "{}", stderr(&out));
        assert!(!file.exists());
        return;
    }

    s.cli_ok(&["api", "create", "orders", "--permission", "read"]);
    let mut clients = Vec::new();
    for name in ["a", "b", "c"] {
        clients.push(s.client(&[
            "--name",
            name,
            "--api",
            "orders=read",
            "--grant",
            "client_credentials",
            "--grant",
            "password",
        ]));
    }
    s.user(&clients[0].0, "alice@example.com", "pw-alice-1");
    s.user(&clients[0].0, "bob@example.com", "pw-bob-1");
    s.sync().await;
    let (id, secret) = clients[0].clone();
    let first = s.token(&id, &secret, &[]).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let (header, _) = jwt_parts(first["access_token"].as_str().unwrap());

    // Requests that read and write (issue, then revoke) while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, served) = (stop.clone(), served.clone());
        let http = s.http.clone();
        let url = s.url.clone();
        let (id, secret) = (id.clone(), secret.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = send(http.post(format!("{url}/oauth/token")).form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", id.as_str()),
                    ("client_secret", secret.as_str()),
                ]))
                .await;
                assert_eq!(r.status(), 200);
                let v: Value = r.json().await.unwrap();
                let token = v["access_token"].as_str().unwrap().to_string();
                let r = send(
                    http.post(format!("{url}/oauth/revoke"))
                        .basic_auth(&id, Some(&secret))
                        .form(&[("token", token.as_str())]),
                )
                .await;
                assert_eq!(r.status(), 200);
                served.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while served.load(Ordering::Relaxed) < 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = served.load(Ordering::Relaxed);
    let out = {
        let data = s.data_dir();
        let file = file.clone();
        tokio::task::spawn_blocking(move || {
            tollgate(
                &data,
                None,
                &[],
                &["--json", "backup", file.to_str().unwrap()],
            )
        })
        .await
        .unwrap()
    };
    let during = served.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(during > 0, "no request was served while the backup ran");

    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["check"], "ok", "{report}");
    assert_eq!(report["file"], file_arg);
    assert_eq!(
        report["bytes"].as_u64().unwrap(),
        std::fs::metadata(&file).unwrap().len()
    );
    assert_eq!(report["tables"]["tg_clients"], 3, "{report}");
    assert_eq!(report["tables"]["tg_users"], 2, "{report}");
    assert_eq!(report["tables"]["tg_apis"], 1, "{report}");
    assert!(
        report["tables"]["tg_revoked_tokens"].as_u64().unwrap() >= before,
        "{report}"
    );
    assert_eq!(mode(&file), 0o600);

    // No silent overwrite; --force replaces.
    let written = std::fs::read(&file).unwrap();
    let out = s.cli(&["backup", file_arg]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&file).unwrap(), written);
    let out = s.cli(&["backup", "--force", file_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("master key is not in the backup"));
    assert_eq!(mode(&file), 0o600);

    // Restore: the copy and the master key in a new data directory.
    let restored = tempfile::tempdir().unwrap();
    let data = restored.path().join("data");
    std::fs::create_dir(&data).unwrap();
    chmod(&data, 0o700);
    std::fs::copy(&file, data.join("tollgate.db")).unwrap();
    std::fs::copy(s.data_dir().join("master.key"), data.join("master.key")).unwrap();
    chmod(&data.join("master.key"), 0o600);

    let out = tollgate(&data, None, &[], &["--json", "client", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let mut ids: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut want: Vec<_> = clients.iter().map(|(i, _)| i.clone()).collect();
    want.sort();
    assert_eq!(ids, want);
    let out = tollgate(&data, None, &[], &["--json", "user", "list"]);
    let users: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 2, "{users}");

    // A server started on the copy issues tokens to the same clients,
    // signed with the same key.
    let copy = Server::start_in(restored, &[], &[]);
    let r = copy.token(&id, &secret, &[]).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let (h, _) = jwt_parts(v["access_token"].as_str().unwrap());
    assert_eq!(h["kid"], header["kid"]);
    let (b, b_secret) = &clients[1];
    assert_eq!(copy.token(b, b_secret, &[]).await.status(), 200);
}
