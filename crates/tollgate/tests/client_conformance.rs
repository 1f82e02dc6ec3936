//! The Rust client (`tollgate-client`) against the real server, its column
//! of the client conformance matrix (docs/PARTNERS.md), for every
//! contract: 1,000 concurrent callers across token lifetimes cause one
//! token request per lifetime and never see less than the margin; 429 with
//! `Retry-After` is waited out; a server restart mid-run and a signing-key
//! rotation are survived without the caller noticing. (Its SIGKILL trials
//! are tests/client_kill.rs, a plain binary that runs itself as the child.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::clients::{self, DEVICE, EMAIL, PASSWORD, Setup, Throttled};
use common::proxy::Proxy;
use common::{contract_requests, jwt_parts, verify_with_jwks};
use tollgate_client::{
    BearerExchange, ClientCredentials, DeviceCredentials, HeaderLogin, MemoryStore, Options,
    RetryPolicy, Shape, TokenSource,
};

/// Token lifetime on the test server (short, so a run spans lifetimes).
const LIFETIME: u64 = 6;

fn setup() -> Setup {
    clients::setup(LIFETIME)
}

fn options(margin: Duration) -> Options {
    Options::default()
        .margin(margin)
        .store(Arc::new(MemoryStore::new()))
        .retry(RetryPolicy {
            max_attempts: 12,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(30),
        })
}

/// The source for `contract` at `base`, and the server's contract label
/// counting its requests.
fn source_for(
    st: &Setup,
    base: &str,
    contract: &str,
    opts: Options,
) -> (TokenSource, &'static str) {
    match contract {
        "rfc6749" | "rfc6749-json" | "auth0" => {
            let shape = match contract {
                "rfc6749" => Shape::Form,
                "rfc6749-json" => Shape::Json,
                _ => Shape::Auth0,
            };
            let src = ClientCredentials::new(base, &st.id, st.secret.as_str())
                .audience("orders")
                .shape(shape)
                .build(opts)
                .unwrap();
            (src, "rfc6749")
        }
        "bearer-exchange" => (
            BearerExchange::new(base, st.refresh_jwt.as_str())
                .build(opts)
                .unwrap(),
            "bearer-exchange",
        ),
        "device-credentials" => (
            DeviceCredentials::new(base, &st.public_id, DEVICE, PASSWORD)
                .build(opts)
                .unwrap(),
            "device-credentials",
        ),
        "header-login" => (
            HeaderLogin::new(base, EMAIL, PASSWORD).build(opts).unwrap(),
            "header-login",
        ),
        other => panic!("{other}"),
    }
}

/// 1,000 callers, each asking again and again at random moments for
/// `lifetimes` token lifetimes. Returns (distinct tokens seen, server
/// requests, seconds elapsed).
async fn thousand_callers(contract: &str) {
    let st = setup();
    st.s.sync().await;
    let margin = Duration::from_secs(1);
    let (src, label) = source_for(&st, &st.s.url, contract, options(margin));
    let before = contract_requests(&st.s, label).await;
    let started = Instant::now();
    let run_for = Duration::from_secs(LIFETIME * 2);

    // Phase 1: 1,000 callers at once, nothing cached.
    let first: Vec<_> = (0..1000)
        .map(|_| {
            let s = src.clone();
            tokio::spawn(async move { s.token().await.unwrap() })
        })
        .collect();
    let mut tokens = HashSet::new();
    for t in first {
        let t = t.await.unwrap();
        assert!(
            t.remaining() > margin,
            "{contract}: {:?} left",
            t.remaining()
        );
        tokens.insert(t.secret().to_string());
    }
    assert_eq!(tokens.len(), 1, "{contract}: one token for 1,000 callers");
    assert_eq!(
        contract_requests(&st.s, label).await - before,
        1,
        "{contract}: 1,000 concurrent callers, one token request"
    );

    // Phase 2: the same 1,000 callers keep asking for two lifetimes.
    let callers: Vec<_> = (0..1000)
        .map(|i| {
            let s = src.clone();
            tokio::spawn(async move {
                let mut seen = HashSet::new();
                let mut k = i as u64;
                while started.elapsed() < run_for {
                    let t = s.token().await.unwrap();
                    assert!(t.remaining() > margin, "{:?} left", t.remaining());
                    seen.insert(t.secret().to_string());
                    k = k
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    tokio::time::sleep(Duration::from_millis(50 + (k >> 33) % 250)).await;
                }
                seen
            })
        })
        .collect();
    for c in callers {
        tokens.extend(c.await.unwrap());
    }
    // Let a refresh started at the very end land before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let requests = contract_requests(&st.s, label).await - before;
    let elapsed = started.elapsed().as_secs_f64();
    // Refreshes happen at 70-75 % of the lifetime: one request per such
    // period, none wasted (every token a request fetched was handed out,
    // except possibly one fetched as the run ended).
    let periods = elapsed / (LIFETIME as f64 * 0.70);
    assert!(
        requests as f64 <= periods.floor() + 1.0,
        "{contract}: {requests} requests in {elapsed:.1} s"
    );
    assert!(requests >= 2, "{contract}: refreshed during the run");
    assert!(
        tokens.len() as u64 + 1 >= requests,
        "{contract}: {requests} requests, {} tokens used",
        tokens.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_callers_rfc6749_form() {
    thousand_callers("rfc6749").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_callers_rfc6749_json() {
    thousand_callers("rfc6749-json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_callers_auth0_shape() {
    thousand_callers("auth0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_callers_bearer_exchange() {
    thousand_callers("bearer-exchange").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_callers_device_credentials() {
    thousand_callers("device-credentials").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_callers_header_login() {
    thousand_callers("header-login").await;
}

/// Every contract through a proxy; the server is killed and restarted on
/// another port while the client is in use. Sessions go on (no re-login:
/// `relogin(false)` would turn a lost session into an error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_mid_run_is_survived() {
    let mut st = setup();
    st.s.sync().await;
    let proxy = Proxy::start(&st.s.url).await;
    let contracts = [
        "rfc6749",
        "rfc6749-json",
        "auth0",
        "bearer-exchange",
        "device-credentials",
        "header-login",
    ];
    let sources: Vec<_> = contracts
        .iter()
        .map(|c| {
            source_for(
                &st,
                &proxy.url,
                c,
                options(Duration::from_secs(1)).relogin(false),
            )
            .0
        })
        .collect();
    for s in &sources {
        s.token().await.unwrap();
    }
    // Down for a second; the refreshes asked meanwhile retry until it is back.
    let pending: Vec<_> = sources
        .iter()
        .map(|s| {
            let s = s.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                s.refresh().await
            })
        })
        .collect();
    let url = tokio::task::block_in_place(|| {
        st.s.crash_and_restart(Duration::from_secs(1));
        st.s.url.clone()
    });
    proxy.set_upstream(&url);
    for (c, p) in contracts.iter().zip(pending) {
        let t = p.await.unwrap().unwrap_or_else(|e| panic!("{c}: {e}"));
        assert!(t.remaining() > Duration::from_secs(1), "{c}");
    }
    // And again, on the restarted server.
    for (c, s) in contracts.iter().zip(&sources) {
        s.refresh().await.unwrap_or_else(|e| panic!("{c}: {e}"));
    }
    assert_eq!(
        contract_requests(&st.s, "header-login").await,
        2,
        "two refreshes and no login since the restart"
    );
}

/// A signing-key rotation needs nothing from the client, for every
/// contract: the cached token stays valid (its key stays published) and is
/// still handed out, the next one is signed with the new key, and both
/// verify against the JWKS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_is_invisible_to_the_client() {
    let st = setup();
    st.s.sync().await;
    let kid = |t: &str| jwt_parts(t).0["kid"].as_str().unwrap().to_string();
    let margin = Duration::from_secs(1);
    let mut old = Vec::new();
    for c in clients::CONTRACTS {
        let (src, _) = source_for(&st, &st.s.url, c, options(margin));
        let t = src.token().await.unwrap();
        old.push((c, src, t));
    }
    let old_kid = kid(old[0].2.secret());
    // Keys order by the second they start signing: a key rotated within
    // the first key's second would tie with it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    st.s.cli_ok(&["key", "rotate", "--publish-delay", "0s"]);
    st.s.sync().await;
    let jwks = format!("{}/.well-known/jwks.json", st.s.url);
    for (c, src, t) in &old {
        assert_eq!(kid(t.secret()), old_kid, "{c}");
        verify_with_jwks(&st.s.http, &jwks, t.secret(), &st.s.url, "orders").await;
        let again = src.token().await.unwrap();
        if again.secret() != t.secret() {
            // Only a token past its refresh point may have been replaced
            // (LIFETIME is short): the replacement carries the new key.
            assert_ne!(kid(again.secret()), old_kid, "{c}");
        }
    }
    for (c, src, _) in &old {
        let new = src.refresh().await.unwrap();
        assert_ne!(kid(new.secret()), old_kid, "{c}: signed with the new key");
        verify_with_jwks(&st.s.http, &jwks, new.secret(), &st.s.url, "orders").await;
    }
}

/// A client allowed one token per 3 s: the second request meets a 429
/// with `Retry-After`, and the source waits it out and succeeds after
/// exactly one refused request (waited out, not hammered), for each of the
/// three client-credentials shapes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_is_waited_out() {
    let st = setup();
    let (id, secret) = st.s.client(&[
        "--name",
        "limited",
        "--api",
        "orders=orders:read",
        "--obligation",
        "limit:1/3s",
    ]);
    st.s.sync().await;
    for shape in [Shape::Form, Shape::Json, Shape::Auth0] {
        let src = ClientCredentials::new(&st.s.url, &id, secret.as_str())
            .audience("orders")
            .shape(shape)
            .build(options(Duration::from_secs(1)))
            .unwrap();
        // (The previous shape's tokens share the window: this may wait too.)
        let first = src.token().await.unwrap();
        let throttled = Throttled::before(&st.s).await;
        let second = src.refresh().await.unwrap();
        assert_ne!(first.secret(), second.secret());
        throttled.assert_waited(&st.s, &format!("{shape:?}")).await;
    }
}
