//! Changes reach the other instances (issue 9 §6): two `tollgate serve`
//! instances over one store; a change made elsewhere (the CLI, or instance A)
//! is timed from the moment the change returned to the moment instance B
//! acts on it, for each kind: client disable, secret rotation, access-token
//! revocation (RFC 7009 at A, introspection at B), signing-key rotation (the
//! new kid in B's JWKS). The p50 and p99 of each are printed (`--nocapture`).
//!
//! Over PostgreSQL the instances poll only every 30 s, so only the push
//! (LISTEN/NOTIFY) can explain the sub-second bound asserted; the LISTEN
//! connections are also killed, and changes still arrive. Over SQLite there
//! is no push between processes: the bound is the default poll's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::{Server, send};
use serde_json::Value;

/// Changes timed per kind.
const TRIALS: usize = 20;
/// The poll interval over PostgreSQL: far beyond the bound asserted.
const PG_POLL: &str = "30s";

/// The bound asserted on the p99: the second the docs promise, over both
/// stores. Over PostgreSQL the poll is 30 s, so only the push can meet it
/// (its p99 is tens of milliseconds on a quiet machine; 600 ms was seen on
/// a loaded CI machine, which a tighter bound turned into a failure); over
/// SQLite it is the default poll (250 ms) plus a reload.
fn bound(_pg: bool) -> Duration {
    Duration::from_secs(1)
}

/// Instance A, instance B beside it, and whether they run over PostgreSQL.
fn pair() -> (Server, Server, bool) {
    let over_pg = tollgate_testkit::postgres_base().is_some();
    let mut env = vec![
        // One issuer, as behind a load balancer: B accepts A's tokens.
        ("TOLLGATE_PUBLIC_URL", "http://tollgate.test"),
        // Every trial ends in a refused authentication: no locking here.
        ("TOLLGATE_THROTTLE_SOURCE_FAILURES", "0"),
    ];
    if over_pg {
        env.push(("TOLLGATE_SYNC_INTERVAL", PG_POLL));
    }
    let a = Server::start_with(&[], &env);
    let b = a.start_beside(&[], &env);
    (a, b, over_pg)
}

/// How long after `since` `check` first holds (checked every 5 ms); panics
/// after 10 s.
async fn until<F, Fut>(what: &str, since: Instant, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        if check().await {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "{what}: not seen after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The p50 and p99 of `samples`, in ms.
fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1000.0
    };
    (at(0.50), at(0.99))
}

/// The status of a client_credentials request at `s`.
async fn token_status(s: &Server, id: &str, secret: &str) -> u16 {
    s.token(id, secret, &[]).await.status().as_u16()
}

async fn introspect_active(s: &Server, id: &str, secret: &str, token: &str) -> bool {
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
    let v: Value = r.json().await.unwrap();
    v["active"] == true
}

async fn jwks_kids(s: &Server) -> Vec<String> {
    let v: Value = send(s.get("/.well-known/jwks.json"))
        .await
        .json()
        .await
        .unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// A counter of `s`'s `/metrics` (0 when absent).
async fn counter(s: &Server, series: &str) -> u64 {
    let text = s.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn every_kind_of_change_reaches_the_other_instance_within_the_bound() {
    let (a, b, pg) = pair();
    a.cli_ok(&["api", "create", "orders", "--permission", "read"]);
    let mut report = Vec::new();

    // Client disable (CLI), seen as a refused token at B.
    let (id, secret) = a.client(&["--name", "d", "--api", "orders=read"]);
    let mut samples = Vec::new();
    for _ in 0..TRIALS {
        a.cli_ok(&["client", "enable", &id]);
        // B serves the client (and holds it in its cache) before the change.
        until("enable at B", Instant::now(), || async {
            token_status(&b, &id, &secret).await == 200
        })
        .await;
        a.cli_ok(&["client", "disable", &id]);
        let t0 = Instant::now();
        samples.push(
            until("disable at B", t0, || async {
                token_status(&b, &id, &secret).await == 401
            })
            .await,
        );
    }
    report.push(("client disable", percentiles(&mut samples)));

    // Secret rotation with no grace (CLI), seen as the old secret refused at B.
    let (id, mut secret) = a.client(&["--name", "r", "--api", "orders=read"]);
    let mut samples = Vec::new();
    for _ in 0..TRIALS {
        until("current secret at B", Instant::now(), || async {
            token_status(&b, &id, &secret).await == 200
        })
        .await;
        let rotated = a.cli_json(&["client", "rotate-secret", &id, "--grace", "0s"]);
        let t0 = Instant::now();
        let new = rotated["client_secret"].as_str().unwrap().to_string();
        samples.push(
            until("rotation at B", t0, || async {
                token_status(&b, &id, &secret).await == 401
            })
            .await,
        );
        secret = new;
    }
    report.push(("client rotate-secret", percentiles(&mut samples)));

    // RFC 7009 revocation at A, seen as an inactive token at B.
    let (id, secret) = a.client(&["--name", "v", "--api", "orders=read"]);
    let mut samples = Vec::new();
    for _ in 0..TRIALS {
        let r: Value = a.token(&id, &secret, &[]).await.json().await.unwrap();
        let token = r["access_token"].as_str().unwrap().to_string();
        assert!(introspect_active(&b, &id, &secret, &token).await);
        let r = a
            .form(
                "/oauth/revoke",
                &[
                    ("client_id", id.as_str()),
                    ("client_secret", secret.as_str()),
                    ("token", token.as_str()),
                ],
            )
            .await;
        let t0 = Instant::now();
        assert_eq!(r.status(), 200);
        samples.push(
            until("revocation at B", t0, || async {
                !introspect_active(&b, &id, &secret, &token).await
            })
            .await,
        );
    }
    report.push(("token revocation", percentiles(&mut samples)));

    // Signing-key rotation (CLI), seen as the new kid in B's JWKS.
    let mut samples = Vec::new();
    for _ in 0..TRIALS {
        let rotated = a.cli_json(&["key", "rotate", "--publish-delay", "1h"]);
        let t0 = Instant::now();
        let kid = rotated["kid"].as_str().unwrap().to_string();
        samples.push(
            until("new key at B", t0, || async {
                jwks_kids(&b).await.contains(&kid)
            })
            .await,
        );
    }
    report.push(("key rotation", percentiles(&mut samples)));

    let store = if pg {
        format!("PostgreSQL, sync_interval {PG_POLL}")
    } else {
        "SQLite, sync_interval 250ms (default)".to_string()
    };
    println!("change seen by the other instance ({store}, {TRIALS} trials each):");
    for (kind, (p50, p99)) in &report {
        println!("  {kind:<22} p50 {p50:7.1} ms   p99 {p99:7.1} ms");
    }
    for (kind, (_, p99)) in &report {
        assert!(
            *p99 < bound(pg).as_secs_f64() * 1000.0,
            "{kind}: p99 {p99:.1} ms over {:?}",
            bound(pg)
        );
    }
    // A learnt of its own writes (the revocations) from its store at
    // once, over both stores.
    let local = counter(&a, "tollgate_change_feed_events_total{event=\"local\"}").await;
    assert_eq!(local, TRIALS as u64);
    // Over PostgreSQL B learnt of the changes from the database's pushes.
    let pushed = counter(&b, "tollgate_change_feed_events_total{event=\"pushed\"}").await;
    if pg {
        assert!(pushed >= 4 * TRIALS as u64, "pushed {pushed}");
    } else {
        assert_eq!(pushed, 0, "SQLite pushes nothing between processes");
    }
}

/// The push is not the only path: over PostgreSQL, with both instances'
/// LISTEN connections killed, a change still reaches B well within a second
/// (their feeds reconnect and resync; the poll is 30 s); over SQLite a
/// change by another process reaches B by its poll alone.
#[tokio::test]
async fn changes_arrive_after_the_listen_connection_is_lost() {
    let (a, b, pg) = pair();
    a.cli_ok(&["api", "create", "orders", "--permission", "read"]);
    let (id, secret) = a.client(&["--name", "k", "--api", "orders=read"]);
    until("client at B", Instant::now(), || async {
        token_status(&b, &id, &secret).await == 200
    })
    .await;
    let resumed = "tollgate_change_feed_events_total{event=\"resumed\"}";
    if pg {
        // Both first LISTEN connections are up before they are killed.
        for s in [&a, &b] {
            until("listening", Instant::now(), || async {
                counter(s, resumed).await == 1
            })
            .await;
        }
        let url = b.database_url.as_deref().unwrap();
        // This database's LISTEN connections only (the server is shared);
        // materialized so that the filter runs before any termination.
        let out = std::process::Command::new("psql")
            .arg(url)
            .args([
                "-tAc",
                "WITH l AS MATERIALIZED (SELECT pid FROM pg_stat_activity \
                WHERE datname = current_database() AND query LIKE 'LISTEN%') \
                SELECT COUNT(*) FROM l WHERE pg_terminate_backend(pid)",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "2",
            "A's and B's"
        );
    }
    a.cli_ok(&["client", "disable", &id]);
    let t0 = Instant::now();
    let seen = until("disable at B", t0, || async {
        token_status(&b, &id, &secret).await == 401
    })
    .await;
    if pg {
        println!("disable seen by B after the LISTEN connections were killed: {seen:?}");
    } else {
        println!("disable seen by B (SQLite: by its poll): {seen:?}");
    }
    assert!(seen < bound(pg), "{seen:?}");
    if pg {
        until("B listening again", Instant::now(), || async {
            counter(&b, resumed).await == 2
        })
        .await;
        assert!(
            b.logs().contains("change feed: connection lost"),
            "{}",
            b.logs()
        );
    } else {
        assert_eq!(counter(&b, resumed).await, 0, "SQLite has no push channel");
        assert!(b.logs().contains("this-process"), "{}", b.logs());
    }
}
