//! Guessing is slow and visible (hardening, issue 9 §3): repeated failed
//! logins lock the account, repeated failures from one address lock the
//! address, each answered 429 + `Retry-After` in the contract's format and
//! counted in /metrics; a success resets the account; clients whose
//! secrets are all generated are never locked (nobody can guess them, and
//! a lock would only let an attacker cut a partner off).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::login::basic;
use common::{Server, md5_hex, send};
use serde_json::Value;

const LOGIN: &str = "/v2/authentication/login";

fn server(account: &str, source: &str) -> Server {
    let s = Server::start_with(
        &["--contracts", "all"],
        &[
            ("TOLLGATE_THROTTLE_ACCOUNT_FAILURES", account),
            ("TOLLGATE_THROTTLE_SOURCE_FAILURES", source),
        ],
    );
    s.cli_ok(&["api", "create", "rest", "--permission", "read"]);
    s
}

async fn header_login(s: &Server, user: &str, pw: &str) -> reqwest::Response {
    send(s.get(LOGIN).header("authorization", basic(user, pw))).await
}

#[tokio::test]
async fn a_guessed_account_is_locked_then_a_success_resets_it() {
    let s = server("3", "0");
    let web = s.public_client(&["--name", "web", "--api", "rest=read", "--grant", "password"]);
    s.user(&web, "buyer@example.com", "right");
    s.user(&web, "other@example.com", "right");
    s.sync().await;
    for _ in 0..3 {
        assert_eq!(
            header_login(&s, "buyer@example.com", "wrong")
                .await
                .status(),
            401
        );
    }
    // Locked: even the right password is refused, before any password work.
    let r = header_login(&s, "buyer@example.com", "right").await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(r.text().await.unwrap(), "Too many requests");
    // Another account is not affected.
    assert_eq!(
        header_login(&s, "other@example.com", "right")
            .await
            .status(),
        200
    );
    // After the lock, the right password works and resets the count: three
    // more failures are needed for the next lock.
    tokio::time::sleep(Duration::from_millis(retry * 1000 + 100)).await;
    assert_eq!(
        header_login(&s, "buyer@example.com", "right")
            .await
            .status(),
        200
    );
    for _ in 0..2 {
        assert_eq!(
            header_login(&s, "buyer@example.com", "wrong")
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        header_login(&s, "buyer@example.com", "right")
            .await
            .status(),
        200
    );
    let metrics = send(s.get("/metrics")).await.text().await.unwrap();
    assert!(
        metrics.contains("tollgate_lockouts_total{kind=\"account\"} 1"),
        "{metrics}"
    );
    assert!(s.logs().contains("locked after repeated failures"));
}

#[tokio::test]
async fn a_device_pin_cannot_be_walked() {
    let s = server("3", "0");
    let app = s.public_client(&[
        "--name",
        "dive",
        "--api",
        "rest=read",
        "--grant",
        "device_credentials",
    ]);
    s.user(&app, "123456", "4711");
    s.sync().await;
    let key = format!("Basic {}", STANDARD.encode(&app));
    let try_pin = |pin: &str| {
        send(
            s.post("/v1/token?grant_type=device_credentials")
                .header("authorization", key.clone())
                .form(&[("username", "123456"), ("password", &md5_hex(pin))]),
        )
    };
    for pin in ["0000", "0001", "0002"] {
        assert_eq!(try_pin(pin).await.status(), 400);
    }
    let r = try_pin("4711").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests", "Spring's shape: {body}");
    assert!(body.get("access_token").is_none());
}

#[tokio::test]
async fn one_address_guessing_many_accounts_is_locked() {
    let s = server("0", "4");
    let web = s.public_client(&["--name", "web", "--api", "rest=read", "--grant", "password"]);
    for i in 0..5 {
        s.user(&web, &format!("u{i}@example.com"), "right");
    }
    s.sync().await;
    for i in 0..4 {
        assert_eq!(
            header_login(&s, &format!("u{i}@example.com"), "wrong")
                .await
                .status(),
            401
        );
    }
    let r = header_login(&s, "u4@example.com", "right").await;
    assert_eq!(
        r.status(),
        429,
        "this address is locked, whatever account it names"
    );
    let metrics = send(s.get("/metrics")).await.text().await.unwrap();
    assert!(
        metrics.contains("tollgate_lockouts_total{kind=\"source\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn generated_secrets_are_never_locked_imported_ones_are() {
    let s = server("3", "0");
    let (gen_id, gen_secret) = s.client(&["--name", "partner", "--api", "rest=read"]);
    let (imp_id, _) = s.client(&[
        "--name",
        "legacy",
        "--api",
        "rest=read",
        "--client-secret",
        "legacy-secret",
    ]);
    s.sync().await;
    // Ten wrong secrets of either shape against the generated client: it
    // still gets its token at once.
    for i in 0..10 {
        let wrong = if i % 2 == 0 {
            "x".repeat(43)
        } else {
            format!("guess-{i}")
        };
        assert_eq!(s.token(&gen_id, &wrong, &[]).await.status(), 401);
    }
    assert_eq!(s.token(&gen_id, &gen_secret, &[]).await.status(), 200);
    // The imported (guessable) secret's client is locked after three.
    for i in 0..3 {
        assert_eq!(
            s.token(&imp_id, &format!("guess-{i}"), &[]).await.status(),
            401
        );
    }
    let r = s.token(&imp_id, "legacy-secret", &[]).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");
}
