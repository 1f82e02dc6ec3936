//! Settings where providers need them (issue 11 §2), against the running
//! server over both stores: every lifetime follows client → API →
//! environment → server on every contract; contract paths, lifetimes,
//! refresh policy, claim shape and retry leeway per environment (`env
//! update --set`, `env show`); clients and APIs changed in place; an
//! environment's issuer and algorithm changed (the algorithm through the
//! key schedule).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Server, jwt_parts, md5_hex, send, verify_with_jwks};
use serde_json::Value;

const PIN: &str = "s3cret-pin";

fn basic(v: &str) -> String {
    format!("Basic {}", STANDARD.encode(v))
}

/// `exp - iat` of a JWT.
fn life(token: &str) -> i64 {
    let (_, c) = jwt_parts(token);
    c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap()
}

/// A device login at `path` (relative to the server) with client key `key`.
async fn device_login(s: &Server, path: &str, key: &str, user: &str) -> reqwest::Response {
    send(
        s.post(&format!("{path}?grant_type=device_credentials"))
            .header("authorization", basic(key))
            .form(&[("username", user), ("password", &md5_hex(PIN))]),
    )
    .await
}

async fn device_refresh(s: &Server, path: &str, key: &str, token: &str) -> reqwest::Response {
    send(
        s.post(&format!("{path}?grant_type=refresh_token"))
            .header("authorization", basic(key))
            .form(&[("refresh_token", token)]),
    )
    .await
}

async fn header_login(s: &Server, path: &str, user: &str) -> reqwest::Response {
    send(
        s.get(path)
            .header("authorization", basic(&format!("{user}:{PIN}"))),
    )
    .await
}

/// The lifetimes the four contracts give one client's tokens now:
/// rfc6749, bearer-exchange, device-credentials, header-login.
async fn four_lifetimes(s: &Server, id: &str, secret: &str, rj: &str, user: &str) -> [i64; 4] {
    s.sync().await;
    let r = s.token(id, secret, &[]).await;
    assert_eq!(r.status(), 200);
    let cc: Value = r.json().await.unwrap();
    let cc = cc["access_token"].as_str().unwrap().to_string();
    let r = send(
        s.post("/pub/v2/players/access-token")
            .header("authorization", format!("Bearer {rj}")),
    )
    .await;
    assert_eq!(r.status(), 200);
    let ex: Value = r.json().await.unwrap();
    let r = device_login(s, "/v1/token", &format!("{id}:{secret}"), user).await;
    assert_eq!(r.status(), 200);
    let dev: Value = r.json().await.unwrap();
    let r = header_login(s, "/v2/authentication/login", user).await;
    assert_eq!(r.status(), 200);
    let hl = r.headers()["set-authorization"]
        .to_str()
        .unwrap()
        .to_string();
    [
        life(&cc),
        life(ex["token"].as_str().unwrap()),
        life(dev["access_token"].as_str().unwrap()),
        life(&hl),
    ]
}

#[tokio::test]
async fn every_lifetime_follows_client_then_api_then_environment_then_server() {
    let s = Server::start_with(&["--contracts", "all"], &[]);
    s.cli_ok(&["api", "create", "odds", "--permission", "read"]);
    let (id, secret) = s.client(&[
        "--name",
        "partner",
        "--api",
        "odds=read",
        "--grant",
        "client_credentials",
        "--grant",
        "device_credentials",
        "--grant",
        "password",
    ]);
    s.user(&id, "dev@example.com", PIN);
    let rj = s.cli_json(&["refresh-jwt", "issue", "--client", &id])["refresh_jwt"]
        .as_str()
        .unwrap()
        .to_string();
    let now = || four_lifetimes(&s, &id, &secret, &rj, "dev@example.com");

    // The server's settings (each contract's default).
    assert_eq!(now().await, [600, 86_400, 9_000, 600]);
    // The environment's own.
    s.cli_ok(&[
        "env",
        "update",
        "default",
        "--set",
        "rfc6749_token_lifetime=11m",
        "--set",
        "bearer_exchange_lifetime=2h",
        "--set",
        "device_credentials_access_lifetime=3m",
        "--set",
        "header_login_access_lifetime=4m",
    ]);
    assert_eq!(now().await, [660, 7_200, 180, 240]);
    // The API's, over every contract's.
    s.cli_ok(&["api", "update", "odds", "--token-lifetime", "20m"]);
    assert_eq!(now().await, [1_200; 4]);
    // The client's, over its API's.
    s.cli_ok(&["client", "update", &id, "--token-lifetime", "90s"]);
    assert_eq!(now().await, [90; 4]);
    // And back, one level at a time.
    s.cli_ok(&["client", "update", &id, "--token-lifetime", "inherit"]);
    assert_eq!(now().await, [1_200; 4]);
    s.cli_ok(&["api", "update", "odds", "--token-lifetime", "inherit"]);
    s.cli_ok(&[
        "env",
        "update",
        "default",
        "--unset",
        "rfc6749_token_lifetime",
        "--unset",
        "bearer_exchange_lifetime",
    ]);
    assert_eq!(now().await, [600, 86_400, 180, 240]);
}

#[tokio::test]
async fn an_environment_sets_its_own_paths_lifetimes_policy_claims_and_leeway() {
    let s = Server::start_with(&["--contracts", "all"], &[]);
    s.cli_ok(&["env", "create", "partners", "--contracts", "all"]);
    s.cli_ok(&[
        "api",
        "create",
        "rest",
        "--env",
        "partners",
        "--permission",
        "device",
    ]);
    let key = s.cli_json(&[
        "client",
        "create",
        "--public",
        "--env",
        "partners",
        "--name",
        "dive-app",
        "--api",
        "rest=device",
        "--grant",
        "device_credentials",
        "--grant",
        "password",
    ])["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    s.cli_ok(&[
        "user",
        "create",
        "--env",
        "partners",
        "--client",
        &key,
        "--username",
        "123456",
        "--password",
        PIN,
    ]);
    s.cli_ok(&[
        "env",
        "update",
        "partners",
        "--set",
        "device_credentials_path=/oauth2/token/",
        "--set",
        "device_credentials_access_lifetime=5m",
        "--set",
        "device_credentials_refresh_policy=rotate",
        "--set",
        "device_credentials_claims=rfc9068",
        "--set",
        "header_login_path=/auth",
        "--set",
        "refresh_retry_leeway=0s",
    ]);
    // `env show` says what is in force there and where it comes from.
    let shown = s.cli_json(&["env", "show", "partners"]);
    let effective: Vec<(String, String, String)> = shown["effective"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
                e["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let row = |k: &str| {
        effective
            .iter()
            .find(|(key, _, _)| key == k)
            .unwrap()
            .clone()
    };
    assert_eq!(
        row("device_credentials_path"),
        (
            "device_credentials_path".into(),
            "/oauth2/token".into(),
            "environment".into()
        )
    );
    assert_eq!(row("refresh_retry_leeway").1, "0s");
    assert_eq!(row("device_credentials_refresh_policy").1, "rotate");
    assert_eq!(
        row("bearer_exchange_path"),
        (
            "bearer_exchange_path".into(),
            "/pub/v2/players/access-token".into(),
            "server".into()
        )
    );
    assert!(row("rfc6749_token_lifetime").2 == "server");
    let text = s.cli_ok(&["env", "show", "partners"]);
    assert!(
        text.contains("header_login_path = /auth\t(environment)"),
        "{text}"
    );
    s.sync().await;

    // Its device endpoint moved; the default environment's did not.
    let r = device_login(&s, "/e/partners/oauth2/token", &key, "123456").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap();
    let issuer = format!("{}/e/partners", s.url);
    let claims = verify_with_jwks(
        &s.http,
        &format!("{issuer}/.well-known/jwks.json"),
        access,
        &issuer,
        "rest",
    )
    .await;
    assert_eq!(life(access), 300, "the environment's lifetime");
    assert_eq!(claims["aud"], "rest", "RFC 9068 claims: aud a string");
    assert!(claims.get("user_name").is_none(), "not Spring's shape");
    assert_eq!(
        device_login(&s, "/e/partners/v1/token", &key, "123456")
            .await
            .status(),
        404
    );
    assert_ne!(
        send(s.post("/v1/token?grant_type=device_credentials"))
            .await
            .status(),
        404,
        "the default environment keeps the server's path"
    );

    // Rotation, and no leeway: the replaced token presented again at once
    // is reuse.
    let first = body["refresh_token"].as_str().unwrap().to_string();
    let r = device_refresh(&s, "/e/partners/oauth2/token", &key, &first).await;
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.unwrap();
    assert_ne!(second["refresh_token"].as_str().unwrap(), first, "rotated");
    let r = device_refresh(&s, "/e/partners/oauth2/token", &key, &first).await;
    assert_eq!(r.status(), 400, "reuse without leeway");
    let r = device_refresh(
        &s,
        "/e/partners/oauth2/token",
        &key,
        second["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(r.status(), 400, "the family was revoked");

    // The latency metric names the dispatched route as a template.
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("route=\"/e/{env}/oauth2/token\""),
        "{metrics}"
    );

    // Header-login under its own prefix there.
    let r = header_login(&s, "/e/partners/auth/login", "123456").await;
    assert_eq!(r.status(), 200);
    let r = header_login(&s, "/e/partners/v2/authentication/login", "123456").await;
    assert_eq!(r.status(), 404);

    // What cannot be stored: an unknown key, a bad value, a path that
    // collides there. Nothing changes.
    for (set, why) in [
        ("no_such_setting=1", "unknown setting"),
        ("header_login_access_lifetime=0s", "at least 1s"),
        (
            "device_credentials_path=/oauth/token",
            "cannot share the path",
        ),
        ("bearer_exchange_path=/auth/login", "cannot share the path"),
        ("device_credentials_path", "KEY=VALUE"),
    ] {
        let out = s.cli(&["env", "update", "partners", "--set", set]);
        assert!(!out.status.success(), "{set}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{set}: {err}");
    }
    // Unset: the server's setting applies again.
    s.cli_ok(&[
        "env",
        "update",
        "partners",
        "--unset",
        "device_credentials_path",
    ]);
    s.sync().await;
    assert_eq!(
        device_login(&s, "/e/partners/v1/token", &key, "123456")
            .await
            .status(),
        200
    );
    assert_eq!(
        device_login(&s, "/e/partners/oauth2/token", &key, "123456")
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn clients_and_apis_change_in_place_without_a_new_secret() {
    let s = Server::start();
    s.cli_ok(&[
        "api",
        "create",
        "odds",
        "--permission",
        "read",
        "--package",
        "basic=read",
    ]);
    let (id, secret) = s.client(&["--name", "acme", "--api", "odds=basic"]);
    s.sync().await;
    let token = |extra: &'static [(&'static str, &'static str)]| {
        let (id, secret) = (id.clone(), secret.clone());
        let s = &s;
        async move { s.token(&id, &secret, extra).await }
    };
    let r = token(&[]).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "read");

    s.cli_ok(&[
        "api",
        "update",
        "odds",
        "--permission",
        "write",
        "--package",
        "pro=read,write",
    ]);
    let updated = s.cli_json(&[
        "client",
        "update",
        &id,
        "--name",
        "acme renamed",
        "--api",
        "odds=pro",
        "--claims",
        r#"{"tier":"gold"}"#,
        "--obligation",
        "limit:1/1h",
    ]);
    assert_eq!(updated["name"], "acme renamed");
    assert_eq!(
        updated["secrets"].as_array().unwrap().len(),
        1,
        "same secret"
    );
    s.sync().await;
    // The same secret works, and the token carries the changes.
    let r = token(&[]).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "read write");
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["tier"], "gold");
    // ...under its new obligation.
    assert_eq!(token(&[]).await.status(), 429);

    // A permission a package names cannot go; a reserved claim cannot be set.
    let out = s.cli(&["api", "update", "odds", "--remove-permission", "write"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pro"));
    let out = s.cli(&["client", "update", &id, "--claims", r#"{"sub":"x"}"#]);
    assert!(!out.status.success());
    // Grants: without client_credentials, the token endpoint refuses it.
    s.cli_ok(&[
        "client",
        "update",
        &id,
        "--grant",
        "password",
        "--obligation",
        "inherit",
    ]);
    s.sync().await;
    let r = token(&[]).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");
    let shown = s.cli_json(&["client", "show", &id]);
    assert_eq!(shown["grant_types"], serde_json::json!(["password"]));
    assert_eq!(shown["obligation"], Value::Null);
}

#[tokio::test]
async fn an_environment_changes_issuer_and_algorithm_through_the_key_schedule() {
    let s = Server::start();
    s.cli_ok(&["env", "create", "p"]);
    s.cli_ok(&[
        "api",
        "create",
        "odds",
        "--env",
        "p",
        "--permission",
        "read",
    ]);
    let (id, secret) = s.client(&["--env", "p", "--name", "acme", "--api", "odds"]);
    let token = || async {
        let r = send(s.post("/e/p/oauth/token").form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ]))
        .await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_string()
    };
    let jwks = || async {
        let v: Value = send(s.get("/e/p/.well-known/jwks.json"))
            .await
            .json()
            .await
            .unwrap();
        v["keys"].as_array().unwrap().clone()
    };
    s.sync().await;
    assert_eq!(jwt_parts(&token().await).0["alg"], "ES256");

    // A new algorithm: its key is published at once, but the old one signs
    // until the publication delay has passed.
    let out = s.cli_json(&["env", "update", "p", "--alg", "RS256"]);
    assert_eq!(out["alg"], "RS256");
    assert_eq!(out["new_key"]["alg"], "RS256");
    s.sync().await;
    let keys = jwks().await;
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().any(|k| k["kty"] == "RSA"));
    assert_eq!(jwt_parts(&token().await).0["alg"], "ES256", "not yet");
    let listed = s.cli_json(&["key", "list", "--env", "p"]);
    let states: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["alg"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("ES256", "active"), ("RS256", "next")]);
    // Once it is due (here: a second delay, on another environment), it
    // signs, and verifiers find it in the JWKS.
    s.cli_ok(&["env", "create", "q"]);
    s.cli_ok(&[
        "api",
        "create",
        "odds",
        "--env",
        "q",
        "--permission",
        "read",
    ]);
    let (qid, qsecret) = s.client(&["--env", "q", "--name", "acme", "--api", "odds"]);
    s.cli_ok(&[
        "env",
        "update",
        "q",
        "--alg",
        "EdDSA",
        "--publish-delay",
        "1s",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    s.sync().await;
    let r = send(s.post("/e/q/oauth/token").form(&[
        ("grant_type", "client_credentials"),
        ("client_id", qid.as_str()),
        ("client_secret", qsecret.as_str()),
    ]))
    .await;
    let v: Value = r.json().await.unwrap();
    let t = v["access_token"].as_str().unwrap();
    assert_eq!(jwt_parts(t).0["alg"], "EdDSA");
    let issuer = format!("{}/e/q", s.url);
    verify_with_jwks(
        &s.http,
        &format!("{issuer}/.well-known/jwks.json"),
        t,
        &issuer,
        "odds",
    )
    .await;

    // The issuer: set, then derived again.
    s.cli_ok(&["env", "update", "p", "--issuer", "https://id.example.com/"]);
    s.sync().await;
    assert_eq!(
        jwt_parts(&token().await).1["iss"],
        "https://id.example.com/"
    );
    let shown = s.cli_json(&["env", "show", "p"]);
    assert_eq!(shown["issuer"], "https://id.example.com/");
    s.cli_ok(&["env", "update", "p", "--issuer", "derive"]);
    s.sync().await;
    assert_eq!(jwt_parts(&token().await).1["iss"], format!("{}/e/p", s.url));
    let out = s.cli(&["env", "update", "p", "--issuer", "ftp://nope"]);
    assert!(!out.status.success());
}
