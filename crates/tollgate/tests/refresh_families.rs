//! Refresh-token families (OAuth 2.0 Security BCP): rotation, the retry
//! leeway, reuse revoking the family, and 100 simultaneous refreshes of one
//! token, over header-login and device-credentials with rotation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::login::{assert_not_authenticated, login, pair_of, refresh, setup};
use common::{jwt_parts, md5_hex, send};
use serde_json::Value;

const LOGIN: &str = "/v2/authentication/login";

#[tokio::test]
async fn a_retry_within_the_leeway_gets_the_same_successor() {
    let s = setup(&[]); // default leeway: 10 s
    s.sync().await;
    let (_, r1) = pair_of(&login(&s, LOGIN).await);
    let (a2, r2) = pair_of(&refresh(&s, &r1).await);
    // The response was "lost": the client retries with r1.
    let (a2_again, r2_again) = pair_of(&refresh(&s, &r1).await);
    assert_eq!(r2_again, r2, "the same successor refresh token");
    let (c1, c2) = (jwt_parts(&a2).1, jwt_parts(&a2_again).1);
    assert_eq!(c1["jti"], c2["jti"], "the same access token (id, times)");
    assert_eq!(c1["exp"], c2["exp"]);
    // The successor works, and once it has moved on, r1 is reuse: the whole
    // family is revoked, the newest token included.
    let (_, r3) = pair_of(&refresh(&s, &r2).await);
    assert_not_authenticated(refresh(&s, &r1).await, "r1 after its successor moved on").await;
    assert_not_authenticated(refresh(&s, &r3).await, "family revoked").await;
    // Another login starts a new, unaffected family.
    let (_, other) = pair_of(&login(&s, LOGIN).await);
    assert_eq!(refresh(&s, &other).await.status(), 200);
    let metrics = send(s.get("/metrics")).await.text().await.unwrap();
    assert!(
        metrics.contains("tollgate_refresh_reuse_total{contract=\"header-login\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn reuse_after_the_leeway_revokes_the_family() {
    let s = setup(&[("TOLLGATE_REFRESH_RETRY_LEEWAY", "1s")]);
    s.sync().await;
    let (_, r1) = pair_of(&login(&s, LOGIN).await);
    let (_, r2) = pair_of(&refresh(&s, &r1).await);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_not_authenticated(refresh(&s, &r1).await, "reuse after the leeway").await;
    assert_not_authenticated(refresh(&s, &r2).await, "successor revoked with its family").await;
}

/// Fires 100 refreshes of one token at once; returns (statuses, successor
/// refresh tokens of the 200s).
async fn race(s: &common::Server, token: &str) -> (Vec<u16>, BTreeSet<String>) {
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let rb = s
                .get("/v2/authentication/refresh")
                .header("refresh-token", token);
            tokio::spawn(async move {
                let r = rb.send().await.unwrap();
                let status = r.status().as_u16();
                let successor = r
                    .headers()
                    .get("set-refresh-token")
                    .map(|v| v.to_str().unwrap().to_string());
                let body = r.text().await.unwrap();
                if status != 200 {
                    assert_eq!((status, body.as_str()), (401, "Not authenticated"));
                }
                (status, successor)
            })
        })
        .collect();
    let mut statuses = Vec::new();
    let mut successors = BTreeSet::new();
    for t in tasks {
        let (status, successor) = t.await.unwrap();
        statuses.push(status);
        if status == 200 {
            successors.insert(successor.unwrap());
        }
    }
    (statuses, successors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_simultaneous_refreshes_yield_one_successor() {
    let s = setup(&[]);
    s.sync().await;
    let (_, r1) = pair_of(&login(&s, LOGIN).await);
    let (statuses, successors) = race(&s, &r1).await;
    // Within the leeway every request is the same retried request: all get
    // the one successor.
    assert_eq!(successors.len(), 1, "{successors:?}");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let successor = successors.into_iter().next().unwrap();
    assert_eq!(refresh(&s, &successor).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_leeway_a_race_has_one_winner_and_clean_refusals() {
    let s = setup(&[("TOLLGATE_REFRESH_RETRY_LEEWAY", "0s")]);
    s.sync().await;
    let (_, r1) = pair_of(&login(&s, LOGIN).await);
    let (statuses, successors) = race(&s, &r1).await;
    // At most one successor exists; every other answer is a clean 401 (the
    // race itself is reuse, so the family ends revoked).
    assert!(successors.len() <= 1, "{successors:?}");
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(ok <= 1, "{statuses:?}");
    assert_eq!(ok + statuses.iter().filter(|s| **s == 401).count(), 100);
}

#[tokio::test]
async fn device_credentials_can_rotate_too() {
    let s = common::Server::start_with(
        &["--contracts", "all"],
        &[("TOLLGATE_DEVICE_CREDENTIALS_REFRESH_POLICY", "rotate")],
    );
    s.cli_ok(&["api", "create", "rest", "--permission", "device"]);
    let id = s.public_client(&[
        "--name",
        "d",
        "--api",
        "rest=device",
        "--grant",
        "device_credentials",
    ]);
    s.user(&id, "dev-1", "pin");
    s.sync().await;
    let key = format!("Basic {}", STANDARD.encode(&id));
    let body: Value = send(
        s.post("/v1/token?grant_type=device_credentials")
            .header("authorization", &key)
            .form(&[("username", "dev-1"), ("password", &md5_hex("pin"))]),
    )
    .await
    .json()
    .await
    .unwrap();
    let r1 = body["refresh_token"].as_str().unwrap().to_string();
    let refresh = |t: String| {
        send(
            s.post("/v1/token?grant_type=refresh_token")
                .header("authorization", &key)
                .form(&[("refresh_token", t)]),
        )
    };
    let next: Value = refresh(r1.clone()).await.json().await.unwrap();
    let r2 = next["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r2, r1, "rotated");
    assert_eq!(jwt_parts(&r2).1["ati"], next["jti"]);
    // A retry within the leeway: the same successor.
    let again: Value = refresh(r1.clone()).await.json().await.unwrap();
    assert_eq!(again["refresh_token"], r2.as_str());
    // Another client cannot use the token.
    let other = s.public_client(&[
        "--name",
        "e",
        "--api",
        "rest=device",
        "--grant",
        "device_credentials",
    ]);
    s.sync().await;
    let r = send(
        s.post("/v1/token?grant_type=refresh_token")
            .header(
                "authorization",
                format!("Basic {}", STANDARD.encode(&other)),
            )
            .form(&[("refresh_token", &r2)]),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
}
