//! Client obligations enforced by the server: `reuse` hands a client its
//! still-valid token again; `limit` caps issuances per window across every
//! contract, then answers 429 with `Retry-After` and `X-RateLimit-*`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Server, send};
use serde_json::Value;

async fn token_of(r: reqwest::Response) -> (String, u64) {
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_string(),
        body["expires_in"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn reuse_hands_back_the_same_token_with_the_remaining_lifetime() {
    let s = Server::start();
    s.cli_ok(&[
        "api",
        "create",
        "odds",
        "--permission",
        "read",
        "--permission",
        "write",
        "--token-lifetime",
        "600s",
        "--obligation",
        "reuse:30s",
    ]);
    let (id, secret) = s.client(&["--name", "p", "--api", "odds=read,write"]);
    s.sync().await;
    let started = std::time::Instant::now();
    let (t1, e1) = token_of(s.token(&id, &secret, &[]).await).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (t2, e2) = token_of(s.token(&id, &secret, &[]).await).await;
    // Bounded by the time that really passed (a loaded machine can take
    // seconds between the two), not by the sleep alone.
    let passed = started.elapsed().as_secs();
    assert_eq!(t2, t1, "the same token again");
    assert!(
        e2 < e1 && e1 - e2 <= passed + 1,
        "the remaining lifetime: {e1} then {e2}, {passed}s apart"
    );
    // Another scope is another token (and is itself reused).
    let (t3, _) = token_of(s.token(&id, &secret, &[("scope", "read")]).await).await;
    assert_ne!(t3, t1);
    let (t4, _) = token_of(s.token(&id, &secret, &[("scope", "read")]).await).await;
    assert_eq!(t4, t3);
    // A revoked token is never handed out again.
    let r = s
        .form(
            "/oauth/revoke",
            &[
                ("token", &t1),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    s.sync().await;
    let (t5, _) = token_of(s.token(&id, &secret, &[]).await).await;
    assert_ne!(t5, t1);
    // The client's own obligation wins over the API's.
    let out = s.cli_json(&["client", "set-obligation", &id, "off"]);
    assert_eq!(out["obligation"]["kind"], "off");
    s.sync().await;
    let (a, _) = token_of(s.token(&id, &secret, &[]).await).await;
    let (b, _) = token_of(s.token(&id, &secret, &[]).await).await;
    assert_ne!(a, b);
}

#[tokio::test]
async fn reuse_stops_when_too_little_lifetime_is_left() {
    let s = Server::start();
    s.cli_ok(&[
        "api",
        "create",
        "odds",
        "--token-lifetime",
        "4s",
        "--obligation",
        "reuse:2s",
    ]);
    let (id, secret) = s.client(&["--name", "p", "--api", "odds"]);
    s.sync().await;
    let (t1, _) = token_of(s.token(&id, &secret, &[]).await).await;
    let (t2, _) = token_of(s.token(&id, &secret, &[]).await).await;
    // Right after, at least 3 s are left (whole seconds), more than 2.
    assert_eq!(t1, t2);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (t3, e3) = token_of(s.token(&id, &secret, &[]).await).await;
    assert_ne!(t3, t1, "at most 2 s left: a new token");
    assert_eq!(e3, 4);
}

#[tokio::test]
async fn limit_refuses_with_429_and_counts_across_contracts() {
    let s = Server::start_with(&["--contracts", "all"], &[]);
    s.cli_ok(&["api", "create", "odds"]);
    let (id, secret) = s.client(&[
        "--name",
        "greedy",
        "--api",
        "odds",
        "--obligation",
        "limit:3/1h",
    ]);
    let refresh = s.cli_json(&["refresh-jwt", "issue", "--client", &id])["refresh_jwt"]
        .as_str()
        .unwrap()
        .to_string();
    s.sync().await;
    for remaining in ["2", "1"] {
        let r = s.token(&id, &secret, &[]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-ratelimit-limit"], "3");
        assert_eq!(r.headers()["x-ratelimit-remaining"], remaining);
    }
    // The third issuance goes through another contract: the count is the client's.
    let r = send(
        s.post("/pub/v2/players/access-token")
            .header("authorization", format!("Bearer {refresh}")),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    for r in [
        s.token(&id, &secret, &[]).await,
        send(
            s.post("/pub/v2/players/access-token")
                .header("authorization", format!("Bearer {refresh}")),
        )
        .await,
    ] {
        assert_eq!(r.status(), 429);
        let h = r.headers();
        assert_eq!(h["x-ratelimit-limit"], "3");
        assert_eq!(h["x-ratelimit-remaining"], "0");
        let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=3600).contains(&retry), "{retry}");
        let reset: i64 = h["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
        assert_eq!(reset % 3600, 0, "the window's end");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "too_many_requests");
    }
    // Other clients are not affected.
    let (other, other_secret) = s.client(&["--name", "calm", "--api", "odds"]);
    s.sync().await;
    assert_eq!(s.token(&other, &other_secret, &[]).await.status(), 200);
    // Bad obligations are refused by the CLI.
    let out = s.cli(&["client", "set-obligation", &id, "limit:0/1h"]);
    assert!(!out.status.success());
}
