//! Secrets at rest and in logs, the master key, and the CLI's output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Server, send};

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn no_secret_or_token_in_the_database_or_the_logs() {
    let s = Server::start();
    s.cli_ok(&["api", "create", "orders", "--permission", "orders:read"]);
    let (id, generated) = s.client(&["--name", "gen", "--api", "orders=orders:read"]);
    let imported = "Imported-Secret-4711";
    s.client(&[
        "--name",
        "imp",
        "--api",
        "orders",
        "--client-id",
        "imp-1",
        "--client-secret",
        imported,
    ]);
    s.sync().await;
    let mut tokens = Vec::new();
    for (cid, secret) in [(id.as_str(), generated.as_str()), ("imp-1", imported)] {
        let r = s.token(cid, secret, &[]).await;
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        tokens.push(v["access_token"].as_str().unwrap().to_string());
        // and a failure, whose body must not echo the secret either
        let r = s.token(cid, &format!("{secret}x"), &[]).await;
        assert!(!r.text().await.unwrap().contains(secret));
    }
    // secrets sent in Basic, in JSON, in the query string of a wrong route
    let _ = send(s.get(&format!("/oauth/token?client_secret={generated}"))).await;

    let data = s.data_at_rest();
    let logs = s.logs();
    for secret in [generated.as_str(), imported] {
        assert!(
            !contains(&data, secret),
            "a client secret is stored in clear"
        );
        assert!(!logs.contains(secret), "a client secret is in the logs");
    }
    for t in &tokens {
        let sig = t.rsplit('.').next().unwrap();
        assert!(!contains(&data, sig), "an access token is stored");
        assert!(!logs.contains(sig), "an access token is in the logs");
    }
    // Signing keys are sealed: no PKCS#8 header in the database.
    assert!(!contains(&data, "PRIVATE KEY"));
    // The request log is there, one line per request, with the client id.
    assert!(logs.contains("path=/oauth/token status=200"));
    assert!(logs.contains(&format!("client_id=\"{id}\"")));
}

#[cfg(unix)]
#[tokio::test]
async fn master_key_file_is_private_and_required() {
    use std::os::unix::fs::PermissionsExt as _;
    let mut s = Server::start();
    let key = s.data_dir().join("master.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(s.data_dir())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    assert!(s.stop().success(), "SIGTERM stops the server cleanly");
    assert!(s.logs().contains("shutting down"));

    // A loose key file is refused with a plain explanation.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = s.cli(&["env", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // A lost key file is an error, not silently replaced.
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let out = s.cli(&["env", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("restore the key file"));
    assert!(!key.exists());

    // The wrong master key cannot open the signing keys.
    let wrong = "q7Gv5Yl1b1kz2nH3oX4pW5rS6tU7vY8zA9bC0dE1fG0=";
    std::fs::write(&key, wrong).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = s.cli(&["env", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong master key"));

    // Restored, everything works again.
    std::fs::write(&key, saved).unwrap();
    s.cli_ok(&["env", "list"]);
}

#[tokio::test]
async fn master_key_from_the_environment() {
    let key = "q7Gv5Yl1b1kz2nH3oX4pW5rS6tU7vY8zA9bC0dE1fG0=";
    let s = Server::start_with(&[], &[("TOLLGATE_MASTER_KEY", key)]);
    assert!(
        !s.data_dir().join("master.key").exists(),
        "no key file when the variable is set"
    );
    s.cli_ok(&["api", "create", "orders"]);
    let (id, secret) = s.client(&["--name", "p", "--api", "orders"]);
    s.sync().await;
    assert_eq!(s.token(&id, &secret, &[]).await.status(), 200);
}

#[tokio::test]
async fn cli_output_text_and_json() {
    let s = Server::start();
    // Creating prints the secret once, with a warning.
    s.cli_ok(&[
        "api",
        "create",
        "orders",
        "--permission",
        "a",
        "--package",
        "basic=a,b",
        "--token-lifetime",
        "10m",
    ]);
    let text = s.cli_ok(&[
        "client",
        "create",
        "--name",
        "acme",
        "--api",
        "orders=basic",
    ]);
    assert!(
        text.contains("client_id:")
            && text.contains("client_secret:")
            && text.contains("shown only this once")
    );
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(secret.len(), 43, "256-bit generated secret");

    let created = s.cli_json(&["client", "create", "--name", "beta", "--api", "orders"]);
    let obj = created.as_object().unwrap();
    assert_eq!(
        obj.keys().collect::<Vec<_>>(),
        vec!["client_id", "client_key", "client_secret"]
    );
    // The client key is HTTP Basic's value for the pair (Dive's pages call it so).
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(created["client_key"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(key).unwrap(),
        format!(
            "{}:{}",
            created["client_id"].as_str().unwrap(),
            created["client_secret"].as_str().unwrap()
        )
    );

    let apis = s.cli_json(&["api", "list"]);
    assert_eq!(apis[0]["identifier"], "orders");
    assert_eq!(apis[0]["token_lifetime"], 600);
    assert_eq!(apis[0]["permissions"], serde_json::json!(["a", "b"]));

    let clients = s.cli_json(&["client", "list"]);
    assert_eq!(clients.as_array().unwrap().len(), 2);
    let listing = serde_json::to_string(&clients).unwrap() + &s.cli_ok(&["client", "list"]);
    assert!(!listing.contains(&secret), "listings never show a secret");
    let id = created["client_id"].as_str().unwrap();
    let shown = s.cli_json(&["client", "show", id]);
    assert_eq!(shown["name"], "beta");
    assert_eq!(shown["enabled"], true);
    assert_eq!(
        shown["grant_types"],
        serde_json::json!(["client_credentials"])
    );
    assert!(
        !shown
            .to_string()
            .contains(created["client_secret"].as_str().unwrap())
    );

    let keys = s.cli_json(&["key", "list"]);
    assert_eq!(keys[0]["state"], "active");
    assert_eq!(keys[0]["alg"], "ES256");
    let envs = s.cli_json(&["env", "list"]);
    assert_eq!(envs[0]["name"], "default");
    assert_eq!(
        s.cli_json(&["api", "delete", "orders"])["deleted"],
        "orders"
    );
    assert_eq!(s.cli_json(&["api", "list"]), serde_json::json!([]));
}

#[tokio::test]
async fn cli_refuses_bad_input_with_clear_messages() {
    let s = Server::start();
    let cases: &[(&[&str], &str)] = &[
        (&["env", "create", "bad/name"], "environment name"),
        (
            &["env", "create", "x", "--alg", "HS256"],
            "ES256, EdDSA or RS256",
        ),
        (
            &["api", "create", "orders", "--token-lifetime", "soon"],
            "--token-lifetime",
        ),
        (
            &["api", "create", "orders", "--package", "nolist"],
            "NAME=PERM1,PERM2",
        ),
        (
            &["api", "create", "x", "--env", "nope"],
            "environment not found",
        ),
        (
            &["client", "create", "--name", "c", "--api", "missing"],
            "api not found",
        ),
        (
            &["client", "create", "--name", "c", "--claims", "[1]"],
            "JSON object",
        ),
        (
            &[
                "client",
                "create",
                "--name",
                "c",
                "--claims",
                r#"{"sub":"x"}"#,
            ],
            "cannot be overridden",
        ),
        (
            &["client", "create", "--name", "c", "--grant", "implicit"],
            "unknown grant type",
        ),
    ];
    s.cli_ok(&["api", "create", "orders", "--permission", "a"]);
    let more: &[(&[&str], &str)] = &[
        (
            &["client", "create", "--name", "c", "--api", "orders=nope"],
            "neither a package nor a permission",
        ),
        (&["api", "create", "orders"], "already exists"),
    ];
    for (args, expect) in cases.iter().chain(more) {
        let out = s.cli(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(expect),
            "{args:?}: expected '{expect}' in: {err}"
        );
    }
}

#[test]
fn config_errors_name_their_source() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tollgate.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nlisten_port = 3\n").unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown key 'listen_port'") && err.contains("tollgate.toml"),
        "{err}"
    );

    let out = std::process::Command::new(common::BIN)
        .args(["serve"])
        .env("TOLLGATE_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TOLLGATE_LISTEN"), "{err}");
}

#[test]
fn print_config_shows_the_effective_settings_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tollgate.toml");
    std::fs::write(&cfg, "listen = \"0.0.0.0:9000\"\nlog_format = \"json\"\n").unwrap();
    let out = std::process::Command::new(common::BIN)
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "serve",
            "--print-config",
            "--listen",
            "127.0.0.1:9100",
        ])
        .env(
            "TOLLGATE_DATABASE_URL",
            "postgres://tg:hunter2@db.internal:5432/tollgate",
        )
        .env("TOLLGATE_SHUTDOWN_GRACE", "30s")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let v: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(
        v["listen"].as_str(),
        Some("127.0.0.1:9100"),
        "flag beats file"
    );
    assert_eq!(v["log_format"].as_str(), Some("json"), "from the file");
    assert_eq!(
        v["shutdown_grace"].as_str(),
        Some("30s"),
        "from the environment"
    );
    assert_eq!(
        v["database_url"].as_str(),
        Some("postgres://tg:***@db.internal:5432/tollgate")
    );
    assert!(!text.contains("hunter2"));
}

/// A change made with the CLI reaches a running server within a second,
/// with no help from the test (no /healthz call): the server's own sync does it.
/// Polls with `secret` until the server answers `expect`; fails after 1 s.
async fn within_one_second(s: &Server, id: &str, secret: &str, expect: u16, what: &str) {
    let changed = std::time::Instant::now();
    loop {
        if s.token(id, secret, &[]).await.status() == expect {
            break;
        }
        assert!(
            changed.elapsed() < std::time::Duration::from_secs(1),
            "{what} not in effect after 1 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    eprintln!("{what} took effect after {:?}", changed.elapsed());
}

/// A change made with the CLI reaches a running server within a second,
/// with no help from the test (no /healthz call): the server's own sync does
/// it. Disable, enable, secret rotation without grace, delete.
#[tokio::test]
async fn cli_changes_reach_the_running_server_within_one_second() {
    let s = Server::start();
    s.cli_ok(&["api", "create", "orders"]);
    let (id, secret) = s.client(&["--name", "p", "--api", "orders"]);
    s.sync().await;
    assert_eq!(
        s.token(&id, &secret, &[]).await.status(),
        200,
        "cached and working"
    );

    s.cli_ok(&["client", "disable", &id]);
    within_one_second(&s, &id, &secret, 401, "disable").await;
    s.cli_ok(&["client", "enable", &id]);
    within_one_second(&s, &id, &secret, 200, "enable").await;

    let new = s.cli_json(&["client", "rotate-secret", &id, "--grace", "0s"])["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    within_one_second(&s, &id, &secret, 401, "rotate-secret (old secret)").await;
    assert_eq!(s.token(&id, &new, &[]).await.status(), 200);

    s.cli_ok(&["client", "delete", &id]);
    within_one_second(&s, &id, &new, 401, "delete").await;
}

#[tokio::test]
async fn json_logs_carry_the_request_id() {
    let s = Server::start_with(&["--log-format", "json"], &[]);
    let r = common::send(s.get("/healthz").header("x-request-id", "req-4711")).await;
    assert_eq!(r.headers()["x-request-id"], "req-4711", "echoed");
    let r = common::send(
        s.get("/healthz")
            .header("x-request-id", "bad id with spaces"),
    )
    .await;
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(generated, "bad id with spaces", "unsafe ids are replaced");
    let logs = s.logs();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let req = lines
        .iter()
        .find(|l| l["request_id"] == "req-4711")
        .expect("request line");
    assert_eq!(req["path"], "/healthz");
    assert_eq!(req["status"], 200);
    assert!(req["latency_us"].is_u64());
    assert!(lines.iter().any(|l| l["request_id"] == generated.as_str()));
}

#[tokio::test]
async fn doctor_says_what_is_wrong() {
    let mut s = Server::start();
    s.cli_ok(&["env", "create", "production", "--alg", "EdDSA"]);
    let out = s.cli(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let backend = if s.database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    assert!(
        text.contains(&format!(
            "ok    database: {backend} reachable, schema version"
        )),
        "{text}"
    );
    assert!(text.contains("ok    master key: from"), "{text}");
    assert!(
        text.lines().filter(|l| l.starts_with("ok    key ")).count() == 2,
        "{text}"
    );
    let rows = s.cli_json(&["doctor"]);
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] != "FAIL")
    );
    s.stop();

    // The wrong master key: every key is named as undecryptable.
    let key = s.data_dir().join("master.key");
    let saved = std::fs::read(&key).unwrap();
    std::fs::write(&key, "q7Gv5Yl1b1kz2nH3oX4pW5rS6tU7vY8zA9bC0dE1fG0=").unwrap();
    let out = s.cli(&["doctor"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("FAIL  key ")).count(),
        2,
        "{text}"
    );
    assert!(
        text.contains("master key the key was sealed with"),
        "{text}"
    );
    std::fs::write(&key, saved).unwrap();

    // A data directory that does not exist.
    let out = std::process::Command::new(common::BIN)
        .args(["--data-dir", "/nonexistent/tollgate", "doctor"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL  data directory"));
}

/// SIGTERM lets a request already in flight finish, then the server exits.
#[tokio::test]
async fn sigterm_finishes_in_flight_requests() {
    let mut s = Server::start();
    s.cli_ok(&["api", "create", "orders"]);
    s.client(&[
        "--name",
        "p",
        "--api",
        "orders",
        "--client-id",
        "slow",
        "--client-secret",
        "imported-secret",
    ]);
    s.sync().await;
    // An imported secret not yet in the verification cache costs one argon2id
    // verification (tens of ms): the request is still being served when the
    // signal arrives.
    let http = s.http.clone();
    let url = format!("{}/oauth/token", s.url);
    let in_flight = tokio::spawn(async move {
        http.post(url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "slow"),
                ("client_secret", "imported-secret"),
            ])
            .send()
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    let status = tokio::task::spawn_blocking(move || {
        let st = s.stop();
        (st, s)
    });
    let resp = in_flight
        .await
        .unwrap()
        .expect("the in-flight request got its answer");
    assert_eq!(resp.status(), 200);
    let (exit, s) = status.await.unwrap();
    assert!(exit.success());
    assert!(s.logs().contains("stopped"));
}

/// Someone else's environment variable that is not UTF-8 is ignored (it
/// used to panic the configuration reader); one of ours that is not UTF-8
/// is refused by name.
#[test]
fn environment_variables_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt as _;
    let junk = std::ffi::OsStr::from_bytes(b"\xff\xfe");
    let out = std::process::Command::new(common::BIN)
        .args(["serve", "--print-config"])
        .env("SOMEONE_ELSES", junk)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(common::BIN)
        .args(["serve", "--print-config"])
        .env("TOLLGATE_LISTEN", junk)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TOLLGATE_LISTEN") && err.contains("UTF-8"),
        "{err}"
    );
}
