//! Credential lifecycle against the running server: secret rotation with a
//! grace period, and ending the grace at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::Server;

fn setup() -> (Server, String, String) {
    let s = Server::start();
    s.cli_ok(&["api", "create", "orders", "--permission", "read"]);
    let (id, secret) = s.client(&["--name", "p", "--api", "orders=read"]);
    (s, id, secret)
}

#[tokio::test]
async fn rotated_secret_keeps_working_until_the_grace_ends() {
    let (s, id, old) = setup();
    let rotated = s.cli_json(&["client", "rotate-secret", &id, "--grace", "2s"]);
    let started = Instant::now();
    let new = rotated["client_secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(new.len(), 43);
    assert!(rotated["previous_secrets_expire_at"].is_string());
    s.sync().await;
    assert_eq!(
        s.token(&id, &old, &[]).await.status(),
        200,
        "old secret within the grace"
    );
    assert_eq!(s.token(&id, &new, &[]).await.status(), 200, "new secret");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the checks above ran inside the grace"
    );

    tokio::time::sleep(
        Duration::from_secs(2).saturating_sub(started.elapsed()) + Duration::from_millis(1100),
    )
    .await;
    assert_eq!(
        s.token(&id, &old, &[]).await.status(),
        401,
        "old secret after the grace"
    );
    assert_eq!(s.token(&id, &new, &[]).await.status(), 200);

    // `client show` lists the secrets (ids and dates), never their values.
    let shown = s.cli_json(&["client", "show", &id]);
    assert!(!shown.to_string().contains(&new));
}

#[tokio::test]
async fn revoke_secret_ends_the_grace_at_once() {
    let (s, id, old) = setup();
    let new = s.cli_json(&["client", "rotate-secret", &id, "--grace", "24h"])["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    s.sync().await;
    assert_eq!(s.token(&id, &old, &[]).await.status(), 200);
    let out = s.cli_json(&["client", "revoke-secret", &id, "--all-but-newest"]);
    assert_eq!(out["secrets"], 1);
    s.sync().await;
    assert_eq!(s.token(&id, &old, &[]).await.status(), 401);
    assert_eq!(s.token(&id, &new, &[]).await.status(), 200);
    // Without the flag the command refuses to guess what to revoke.
    assert!(!s.cli(&["client", "revoke-secret", &id]).status.success());
}

#[tokio::test]
async fn imported_secret_rotates_too_and_the_cache_follows() {
    let s = Server::start();
    s.cli_ok(&["api", "create", "orders"]);
    s.client(&[
        "--name",
        "legacy",
        "--api",
        "orders",
        "--client-id",
        "legacy",
        "--client-secret",
        "old-weak-secret",
    ]);
    s.sync().await;
    // The imported secret's verification is now cached...
    assert_eq!(
        s.token("legacy", "old-weak-secret", &[]).await.status(),
        200
    );
    let new = s.cli_json(&["client", "rotate-secret", "legacy", "--grace", "0s"])["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    s.sync().await;
    // ...and the cache does not outlive the rotation.
    assert_eq!(
        s.token("legacy", "old-weak-secret", &[]).await.status(),
        401
    );
    assert_eq!(s.token("legacy", &new, &[]).await.status(), 200);
}

async fn issue(s: &Server, id: &str, secret: &str) -> String {
    let v: serde_json::Value = s.token(id, secret, &[]).await.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

async fn introspect(s: &Server, id: &str, secret: &str, token: &str) -> serde_json::Value {
    let r = s
        .form(
            "/oauth/introspect",
            &[
                ("client_id", id),
                ("client_secret", secret),
                ("token", token),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

async fn revoke(s: &Server, id: &str, secret: &str, token: &str) -> reqwest::Response {
    s.form(
        "/oauth/revoke",
        &[
            ("client_id", id),
            ("client_secret", secret),
            ("token", token),
            ("token_type_hint", "access_token"),
        ],
    )
    .await
}

#[tokio::test]
async fn introspection_and_revocation() {
    let (s, id, secret) = setup();
    let (other, other_secret) = s.client(&["--name", "other", "--api", "orders"]);
    let (gateway, gateway_secret) = s.client(&["--name", "gateway", "--introspect"]);
    s.sync().await;
    let token = issue(&s, &id, &secret).await;

    // The owner sees its token; a gateway with the capability too; another partner does not.
    let mine = introspect(&s, &id, &secret, &token).await;
    assert_eq!(mine["active"], true);
    assert_eq!(mine["client_id"], id.as_str());
    assert_eq!(mine["scope"], "read");
    assert_eq!(mine["aud"], "orders");
    assert_eq!(mine["token_type"], "Bearer");
    assert!(mine["exp"].as_i64().unwrap() > mine["iat"].as_i64().unwrap());
    assert_eq!(
        introspect(&s, &gateway, &gateway_secret, &token).await["active"],
        true
    );
    assert_eq!(
        introspect(&s, &other, &other_secret, &token).await,
        serde_json::json!({"active": false})
    );
    // Garbage is simply inactive.
    assert_eq!(
        introspect(&s, &id, &secret, "not-a-token").await,
        serde_json::json!({"active": false})
    );

    // Another client may not revoke it, and is not told it is a real token
    // (RFC 7009 §2.2: answered like an invalid one).
    let r = revoke(&s, &other, &other_secret, &token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "");
    assert_eq!(introspect(&s, &id, &secret, &token).await["active"], true);

    // The owner revokes; twice is fine; unknown tokens answer 200 too.
    for _ in 0..2 {
        assert_eq!(revoke(&s, &id, &secret, &token).await.status(), 200);
    }
    assert_eq!(revoke(&s, &id, &secret, "not-a-token").await.status(), 200);
    assert_eq!(
        introspect(&s, &id, &secret, &token).await,
        serde_json::json!({"active": false})
    );
    assert_eq!(
        introspect(&s, &gateway, &gateway_secret, &token).await["active"],
        false
    );
    // Other tokens of the same client stay active.
    let fresh = issue(&s, &id, &secret).await;
    assert_eq!(introspect(&s, &id, &secret, &fresh).await["active"], true);

    // Both endpoints require client authentication and a token.
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        let r = s.form(path, &[("token", &token)]).await;
        assert_eq!(r.status(), 401, "{path}");
        let r = s
            .form(
                path,
                &[
                    ("client_id", &id),
                    ("client_secret", "wrong"),
                    ("token", &token),
                ],
            )
            .await;
        assert_eq!(r.status(), 401, "{path}");
        let r = s
            .form(path, &[("client_id", &id), ("client_secret", &secret)])
            .await;
        assert_eq!(r.status(), 400, "{path}");
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["error"],
            "invalid_request"
        );
    }

    // Listed in the RFC 8414 metadata.
    let meta: serde_json::Value = common::send(s.get("/.well-known/oauth-authorization-server"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["introspection_endpoint"],
        format!("{}/oauth/introspect", s.url).as_str()
    );
    assert_eq!(
        meta["revocation_endpoint"],
        format!("{}/oauth/revoke", s.url).as_str()
    );
    // No token in the logs.
    assert!(!s.logs().contains(token.rsplit('.').next().unwrap()));
}

/// The row of `kid` in `tollgate key list --json`.
fn key_row(listed: &serde_json::Value, kid: &str) -> serde_json::Value {
    listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap()
        .clone()
}

#[tokio::test]
async fn key_rotation_publishes_first_and_keeps_the_old_key_for_its_tokens() {
    let (s, id, secret) = setup();
    s.sync().await;
    let jwks_url = format!("{}/.well-known/jwks.json", s.url);
    let old_token = issue(&s, &id, &secret).await;
    let old_kid = common::jwt_parts(&old_token).0["kid"]
        .as_str()
        .unwrap()
        .to_string();

    let rotated = s.cli_json(&["key", "rotate", "--publish-delay", "2s"]);
    let started = Instant::now();
    let new_kid = rotated["kid"].as_str().unwrap().to_string();
    s.sync().await;
    // Published at once, not yet signing.
    let jwks: serde_json::Value = common::send(s.get("/.well-known/jwks.json"))
        .await
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
        "{kids:?}"
    );
    let during = issue(&s, &id, &secret).await;
    assert_eq!(common::jwt_parts(&during).0["kid"], old_kid.as_str());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "checked inside the delay"
    );
    let listed = s.cli_json(&["key", "list"]);
    assert_eq!(key_row(&listed, &new_kid)["state"], "next");
    assert_eq!(key_row(&listed, &old_kid)["state"], "active");

    // After the delay the new key signs, by time alone.
    tokio::time::sleep(
        Duration::from_secs(2).saturating_sub(started.elapsed()) + Duration::from_millis(1100),
    )
    .await;
    let after = issue(&s, &id, &secret).await;
    assert_eq!(common::jwt_parts(&after).0["kid"], new_kid.as_str());
    // The old token still verifies through the JWKS, and introspects active.
    common::verify_with_jwks(&s.http, &jwks_url, &old_token, &s.url, "orders").await;
    common::verify_with_jwks(&s.http, &jwks_url, &after, &s.url, "orders").await;
    assert_eq!(
        introspect(&s, &id, &secret, &old_token).await["active"],
        true
    );
    let listed = s.cli_json(&["key", "list"]);
    let state = |kid: &str| key_row(&listed, kid);
    assert_eq!(state(&new_kid)["state"], "active");
    assert_eq!(state(&old_kid)["state"], "retired");
    assert_eq!(
        state(&old_kid)["published"],
        true,
        "published until its tokens expire"
    );
    assert!(state(&old_kid)["published_until"].is_string());
}

#[tokio::test]
async fn metrics_reflect_what_happened() {
    let (s, id, secret) = setup();
    s.sync().await;
    let token = issue(&s, &id, &secret).await;
    issue(&s, &id, &secret).await;
    assert_eq!(s.token(&id, "wrong", &[]).await.status(), 401);
    introspect(&s, &id, &secret, &token).await;
    s.cli_ok(&["key", "rotate", "--publish-delay", "1h"]);
    s.sync().await;

    let r = common::send(s.get("/metrics")).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
            .parse()
            .unwrap()
    };
    let outcome = |o: &str, ep: &str| {
        value(&format!(
            r#"tollgate_outcomes_total{{env="default",contract="rfc6749",endpoint="{ep}",outcome="{o}"}}"#
        ))
    };
    assert_eq!(outcome("issued", "token"), 2.0);
    assert_eq!(outcome("invalid_client", "token"), 1.0);
    assert_eq!(outcome("introspected", "introspect"), 1.0);
    assert!(
        value(r#"tollgate_http_request_duration_seconds_count{route="/oauth/token",status="2xx"}"#)
            >= 2.0
    );
    assert_eq!(
        value(r#"tollgate_http_request_duration_seconds_count{route="/oauth/token",status="4xx"}"#),
        1.0
    );
    assert!(value(r#"tollgate_store_duration_seconds_count{op="get_client"}"#) >= 1.0);
    assert!(value(r#"tollgate_cache_lookups_total{cache="client",result="hit"}"#) >= 2.0);
    assert!(value(r#"tollgate_cache_lookups_total{cache="client",result="miss"}"#) >= 1.0);
    assert_eq!(
        value(r#"tollgate_signing_keys{env="default",state="active"}"#),
        1.0
    );
    assert_eq!(
        value(r#"tollgate_signing_keys{env="default",state="next"}"#),
        1.0
    );
    assert!(
        !text.contains(&secret) && !text.contains(&id),
        "no secrets, no client ids as labels"
    );
}

#[tokio::test]
async fn logs_never_carry_a_secret_or_token_across_the_lifecycle() {
    let (s, id, first) = setup();
    s.client(&[
        "--name",
        "imp",
        "--api",
        "orders",
        "--client-id",
        "imp",
        "--client-secret",
        "Imported-Password-1",
    ]);
    s.sync().await;
    let mut secrets = vec![first.clone(), "Imported-Password-1".to_string()];
    // (owner, owner's secret, token)
    let mut tokens = vec![
        (id.clone(), first.clone(), issue(&s, &id, &first).await),
        (
            "imp".to_string(),
            "Imported-Password-1".to_string(),
            issue(&s, "imp", "Imported-Password-1").await,
        ),
    ];
    let second = s.cli_json(&["client", "rotate-secret", &id, "--grace", "1h"])["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    secrets.push(second.clone());
    s.cli_ok(&["key", "rotate", "--publish-delay", "0s"]);
    s.sync().await;
    tokens.push((id.clone(), second.clone(), issue(&s, &id, &second).await));
    for (owner, secret, t) in &tokens {
        assert_eq!(introspect(&s, owner, secret, t).await["active"], true);
        assert_eq!(revoke(&s, owner, secret, t).await.status(), 200);
    }
    // failures, with Basic, JSON and the query string
    let _ = s.token(&id, &format!("{second}x"), &[]).await;
    let _ = common::send(
        s.post("/oauth/token")
            .basic_auth(&id, Some(&second))
            .form(&[("grant_type", "password")]),
    )
    .await;
    let _ = common::send(
        s.post("/oauth/token")
            .json(&serde_json::json!({"client_id": id, "client_secret": first})),
    )
    .await;
    let _ = common::send(s.get(&format!("/oauth/token?client_secret={second}"))).await;
    s.cli_ok(&["client", "revoke-secret", &id, "--all-but-newest"]);
    s.sync().await;

    let logs = s.logs();
    assert!(
        logs.lines().filter(|l| l.contains(" request ")).count() >= 12,
        "the requests were logged:\n{logs}"
    );
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret is in the logs");
    }
    for (_, _, t) in &tokens {
        for part in t.split('.').skip(1) {
            assert!(!logs.contains(part), "part of a token is in the logs");
        }
    }
}

#[tokio::test]
async fn scheduled_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tollgate.toml");
    std::fs::write(
        &cfg,
        "key_rotation_interval = \"2s\"\nkey_publish_delay = \"0s\"\n",
    )
    .unwrap();
    let s = Server::start_with(&["--config", cfg.to_str().unwrap()], &[]);
    s.cli_ok(&["api", "create", "orders"]);
    let (id, secret) = s.client(&["--name", "p", "--api", "orders"]);
    s.sync().await;
    let before = issue(&s, &id, &secret).await;
    let first_kid = common::jwt_parts(&before).0["kid"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    loop {
        if s.cli_json(&["key", "list"]).as_array().unwrap().len() >= 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no scheduled rotation"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.sync().await;
    let after = issue(&s, &id, &secret).await;
    assert_ne!(common::jwt_parts(&after).0["kid"], first_kid.as_str());
    let jwks_url = format!("{}/.well-known/jwks.json", s.url);
    common::verify_with_jwks(&s.http, &jwks_url, &before, &s.url, "orders").await;
    assert!(s.logs().contains("scheduled key rotation"));
}
