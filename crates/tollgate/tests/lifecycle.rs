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
