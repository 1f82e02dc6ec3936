//! `tollgate migrate-store`: a SQLite store provisioned through the CLI,
//! with live sessions and tokens, moved to a fresh PostgreSQL database
//! while its server runs; a server started on the copy with the same master
//! key carries on as if nothing happened. The source is always SQLite and
//! the target always PostgreSQL, whatever `TG_TEST_STORE` says.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{BIN, Server, jwt_parts, md5_hex, send, verify_with_jwks};
use serde_json::Value;
use tollgate_testkit::{TempDatabase, postgres_server};

const PUBLIC: &str = "https://auth.example.test";
const ARGS: &[&str] = &["--contracts", "all", "--public-url", PUBLIC];
const IMPORTED_ID: &str = "legacy-partner";
const IMPORTED_SECRET: &str = "an old secret from the previous vendor";
const PIN: &str = "s3cret-pin";
const EMAIL: &str = "buyer@example.com";
const PASSWORD: &str = "correct horse battery staple";
const INCUMBENT_SECRET: &str = "the incumbent's shared refresh-token key";

/// Runs `tollgate migrate-store` (with `--json` when asked).
fn migrate(from: &Path, to: &str, extra: &[&str], json: bool) -> Output {
    let mut cmd = Command::new(BIN);
    if json {
        cmd.arg("--json");
    }
    cmd.arg("migrate-store")
        .arg("--from")
        .arg(from)
        .args(["--to", to])
        .args(extra)
        .env_remove("TOLLGATE_MASTER_KEY")
        .env_remove("TOLLGATE_DATABASE_URL");
    cmd.output().unwrap()
}

fn migrate_json(from: &Path, to: &str, extra: &[&str]) -> Value {
    let out = migrate(from, to, extra, true);
    assert!(
        out.status.success(),
        "migrate-store failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs one statement in the database at `url`.
fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .arg(url)
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .unwrap();
    assert!(out.status.success(), "psql: {}", stderr(&out));
}

fn basic(v: &str) -> String {
    format!("Basic {}", STANDARD.encode(v))
}

async fn access_token(s: &Server, prefix: &str, id: &str, secret: &str) -> String {
    let r = s
        .form(
            &format!("{prefix}/oauth/token"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ],
        )
        .await;
    assert_eq!(r.status(), 200, "token for {id}");
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn introspect(s: &Server, id: &str, secret: &str, token: &str) -> Value {
    s.form(
        "/oauth/introspect",
        &[
            ("client_id", id),
            ("client_secret", secret),
            ("token", token),
        ],
    )
    .await
    .json()
    .await
    .unwrap()
}

async fn device_refresh(s: &Server, client: &str, token: &str) -> reqwest::Response {
    send(
        s.post("/v1/token?grant_type=refresh_token")
            .header("authorization", basic(client))
            .header("content-type", "application/json")
            .body(format!("refresh_token={token}")),
    )
    .await
}

async fn header_refresh(s: &Server, token: &str) -> reqwest::Response {
    send(
        s.get("/v2/authentication/refresh")
            .header("refresh-token", token),
    )
    .await
}

/// Every table's counts from a `--json` report: (source, copied, present, target).
fn counts(report: &Value, table: &str) -> (u64, u64, u64, u64) {
    let t = &report["tables"][table];
    let n = |k: &str| {
        t[k].as_u64()
            .unwrap_or_else(|| panic!("{table}.{k} in {report}"))
    };
    (n("source"), n("copied"), n("present"), n("target"))
}

#[tokio::test]
async fn a_live_sqlite_store_moves_to_postgres_and_everything_carries_on() {
    let src = Server::start_on(tempfile::tempdir().unwrap(), None, ARGS, &[]);
    src.cli_ok(&["env", "create", "staging"]);
    src.cli_ok(&["api", "create", "orders", "--permission", "orders:read"]);
    src.cli_ok(&["api", "create", "orders", "--env", "staging"]);
    let (gen_id, gen_secret) = src.client(&["--name", "generated", "--api", "orders=orders:read"]);
    src.cli_json(&[
        "client",
        "create",
        "--name",
        "imported",
        "--client-id",
        IMPORTED_ID,
        "--client-secret",
        IMPORTED_SECRET,
        "--api",
        "orders",
    ]);
    let (stg_id, stg_secret) =
        src.client(&["--name", "stg", "--env", "staging", "--api", "orders"]);
    let device = src.public_client(&[
        "--name",
        "dive",
        "--api",
        "orders=orders:read",
        "--grant",
        "device_credentials",
    ]);
    src.user(&device, "123456", PIN);
    let web = src.public_client(&[
        "--name",
        "web",
        "--api",
        "orders=orders:read",
        "--grant",
        "password",
    ]);
    src.user(&web, EMAIL, PASSWORD);
    let rj = src.cli_json(&["refresh-jwt", "issue", "--client", &gen_id])["refresh_jwt"]
        .as_str()
        .unwrap()
        .to_string();
    // A switch-over's trusted incumbent (an HS256 secret, sealed) and a
    // cut-off of another client's incumbent tokens.
    let secret_file = src.dir.path().join("incumbent-secret");
    std::fs::write(&secret_file, INCUMBENT_SECRET).unwrap();
    src.cli_ok(&[
        "refresh-jwt",
        "trust",
        "--name",
        "old",
        "--hs256-secret-file",
        secret_file.to_str().unwrap(),
        "--client-claim",
        "sub",
    ]);
    src.cli_ok(&["refresh-jwt", "revoke", "--client", IMPORTED_ID]);
    // API keys of the gate: one live, one revoked.
    let key_id = src.cli_json(&["api-key", "create", "--client", &gen_id])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let gone = src.cli_json(&["api-key", "create", "--client", &gen_id])["id"]
        .as_str()
        .unwrap()
        .to_string();
    src.cli_ok(&["api-key", "revoke", &gone]);
    src.sync().await;

    // Staging signs with its first key, then with a second one.
    let stg_before = access_token(&src, "/e/staging", &stg_id, &stg_secret).await;
    src.cli_ok(&["key", "rotate", "--env", "staging", "--publish-delay", "0s"]);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    src.sync().await;
    let stg_after = access_token(&src, "/e/staging", &stg_id, &stg_secret).await;
    assert_ne!(
        jwt_parts(&stg_before).0["kid"],
        jwt_parts(&stg_after).0["kid"]
    );

    // Tokens and sessions born on SQLite.
    let kept = access_token(&src, "", &gen_id, &gen_secret).await;
    let revoked = access_token(&src, "", &gen_id, &gen_secret).await;
    let r = src
        .form(
            "/oauth/revoke",
            &[
                ("client_id", gen_id.as_str()),
                ("client_secret", gen_secret.as_str()),
                ("token", revoked.as_str()),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = send(
        src.post("/v1/token?grant_type=device_credentials")
            .header("authorization", basic(&device))
            .header("content-type", "application/json")
            .body(format!("username=123456&password={}", md5_hex(PIN))),
    )
    .await;
    assert_eq!(r.status(), 200);
    let device_rt = r.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = send(src.get("/v2/authentication/login").header(
        "authorization",
        format!("Basic {}", STANDARD.encode(format!("{EMAIL}:{PASSWORD}"))),
    ))
    .await;
    assert_eq!(r.status(), 200);
    let web_rt = r.headers()["set-refresh-token"]
        .to_str()
        .unwrap()
        .to_string();

    // Moved while the SQLite server keeps running.
    let db = TempDatabase::create(&postgres_server()).unwrap();
    let url = db.url();
    let dst_dir = tempfile::tempdir().unwrap();
    let dst_data = dst_dir.path().join("data");
    let out = migrate(
        &src.data_dir(),
        &url,
        &["--to-data-dir", dst_data.to_str().unwrap()],
        true,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let first: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (table, n) in [
        ("tg_environments", 2),
        ("tg_signing_keys", 3),
        ("tg_apis", 2),
        ("tg_clients", 5),
        ("tg_users", 2),
        ("tg_refresh_families", 2),
        ("tg_refresh_jwts", 1),
        ("tg_revoked_tokens", 1),
        ("tg_trusted_issuers", 1),
        ("tg_refresh_cutoffs", 1),
        ("tg_api_keys", 2),
    ] {
        assert_eq!(counts(&first, table), (n, n, 0, n), "{table}");
    }
    assert_eq!(first["revision_bumped"], true);
    let key_file = dst_data.join("master.key");
    assert_eq!(
        first["master_key"]["written_to"],
        key_file.display().to_string()
    );
    assert_eq!(
        std::fs::read(&key_file).unwrap(),
        std::fs::read(src.data_dir().join("master.key")).unwrap()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key_file), 0o600);
        assert_eq!(mode(&dst_data), 0o700);
    }
    // Progress went to stderr, one plain line per table (not a terminal).
    let progress = stderr(&out);
    assert!(!progress.contains('\r'), "{progress}");
    // Nineteen tables: the ten of before, the API keys (`tg_api_keys`),
    // the audit log (`tg_audit`), the partner portal's five and its
    // provider side's two (`tg_package_requests`, `tg_provider_sessions`).
    assert_eq!(progress.lines().count(), 19, "{progress}");
    assert!(
        progress
            .lines()
            .any(|l| l.starts_with("tg_clients") && l.ends_with(" 5/5")),
        "{progress}"
    );

    // Again: nothing copied, the same counts; without --to-data-dir it
    // says where the key must go.
    let again = migrate_json(&src.data_dir(), &url, &[]);
    for table in first["tables"].as_object().unwrap().keys() {
        let (s, _, _, t) = counts(&first, table);
        assert_eq!(counts(&again, table), (s, 0, s, t), "{table}");
    }
    assert_eq!(again["revision_bumped"], false);
    let told = again["master_key"]["instruction"].as_str().unwrap();
    assert!(
        told.contains(&format!(
            "copy {}",
            src.data_dir().join("master.key").display()
        )),
        "{told}"
    );

    // A target holding a row the source does not: the count check names
    // the table, and nothing is written.
    psql(
        &url,
        "INSERT INTO tg_revoked_tokens (env, jti, expires_at) VALUES ('default', 'stray', 9999999999)",
    );
    let out = migrate(&src.data_dir(), &url, &[], false);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("tg_revoked_tokens: 1 live row(s) in the source, 2 in the target"),
        "{e}"
    );
    psql(&url, "DELETE FROM tg_revoked_tokens WHERE jti = 'stray'");

    // Cut over: the SQLite server stops, one starts on PostgreSQL with the
    // key the migration wrote.
    let mut src = src;
    src.stop();
    let dst = Server::start_on(dst_dir, Some(db), ARGS, &[]);
    assert!(dst.database_url.is_some());
    dst.sync().await;

    // Both clients with their old secrets.
    access_token(&dst, "", &gen_id, &gen_secret).await;
    access_token(&dst, "", IMPORTED_ID, IMPORTED_SECRET).await;
    // Old access tokens verify against the new JWKS (same kids), in both
    // environments, before and after the rotation.
    let jwks = format!("{}/.well-known/jwks.json", dst.url);
    let claims = verify_with_jwks(&dst.http, &jwks, &kept, PUBLIC, "orders").await;
    assert_eq!(claims["client_id"], gen_id.as_str());
    let stg_jwks = format!("{}/e/staging/.well-known/jwks.json", dst.url);
    let stg_issuer = format!("{PUBLIC}/e/staging");
    for t in [&stg_before, &stg_after] {
        verify_with_jwks(&dst.http, &stg_jwks, t, &stg_issuer, "orders").await;
    }
    access_token(&dst, "/e/staging", &stg_id, &stg_secret).await;
    // The API keys, as they were (their digests keyed by the same master key).
    let keys = dst.cli_json(&["api-key", "list"]);
    let status = |id: &str| {
        keys.as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id)
            .map(|k| k["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status(&key_id).as_deref(), Some("active"), "{keys}");
    assert_eq!(status(&gone).as_deref(), Some("revoked"), "{keys}");
    // The revoked token stays revoked; the other one is active.
    assert_eq!(
        introspect(&dst, &gen_id, &gen_secret, &revoked).await["active"],
        false
    );
    assert_eq!(
        introspect(&dst, &gen_id, &gen_secret, &kept).await["active"],
        true
    );
    // The refresh JWT exchanges.
    let r = send(
        dst.post("/pub/v2/players/access-token")
            .header("authorization", format!("Bearer {rj}")),
    )
    .await;
    assert_eq!(r.status(), 200);
    // So does a token of the trusted incumbent: its secret opens on the target.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let incumbent = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": gen_id, "jti": "inc-1", "iat": t, "exp": t + 3600}),
        &jsonwebtoken::EncodingKey::from_secret(INCUMBENT_SECRET.as_bytes()),
    )
    .unwrap();
    let r = send(
        dst.post("/pub/v2/players/access-token")
            .header("authorization", format!("Bearer {incumbent}")),
    )
    .await;
    assert_eq!(r.status(), 200);
    // The sessions go on: the device's refresh token works, the
    // header-login one rotates.
    assert_eq!(
        device_refresh(&dst, &device, &device_rt).await.status(),
        200
    );
    let r = header_refresh(&dst, &web_rt).await;
    assert_eq!(r.status(), 200);
    let next = r.headers()["set-refresh-token"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(next, web_rt);
    let r = header_refresh(&dst, &next).await;
    assert_eq!(r.status(), 200);
    let latest = r.headers()["set-refresh-token"]
        .to_str()
        .unwrap()
        .to_string();

    // The target has moved on (the rotation): a new run refuses to mix the
    // old state into it and names the table.
    let out = migrate(
        &src.data_dir(),
        dst.database_url.as_deref().unwrap(),
        &[],
        false,
    );
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("tg_refresh_families: ") && e.contains("row(s) in the target differ"),
        "{e}"
    );
    // ...and nothing changed: the session goes on.
    dst.sync().await;
    let r = header_refresh(&dst, &latest).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_master_key_that_cannot_open_the_store_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["api", "create", "orders"])
        .env_remove("TOLLGATE_MASTER_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let db = TempDatabase::create(&postgres_server()).unwrap();
    let tables = || {
        let out = Command::new("psql")
            .arg(db.url())
            .args([
                "-Atc",
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_name LIKE 'tg_%'",
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };

    // Another key in the environment: the source's keys do not open.
    let other = STANDARD.encode([7u8; 32]);
    let out = Command::new(BIN)
        .arg("migrate-store")
        .arg("--from")
        .arg(&data)
        .args(["--to", &db.url()])
        .env("TOLLGATE_MASTER_KEY", &other)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("do not open under the master key from TOLLGATE_MASTER_KEY"),
        "{e}"
    );
    assert_eq!(tables(), "0", "the target was not even opened");

    // A target data directory holding another key: refused, left alone.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("master.key"), format!("{other}\n")).unwrap();
    let out = migrate(
        &data,
        &db.url(),
        &["--to-data-dir", elsewhere.to_str().unwrap()],
        false,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("holds another master key"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(elsewhere.join("master.key")).unwrap(),
        format!("{other}\n")
    );
    assert_eq!(tables(), "0");

    // A missing source is not created.
    let out = migrate(&dir.path().join("nothing"), &db.url(), &[], false);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no database at"), "{}", stderr(&out));
    assert!(!dir.path().join("nothing").exists());
}
