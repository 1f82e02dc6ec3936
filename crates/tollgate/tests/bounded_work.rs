//! Bounded work for unauthenticated input (hardening, issue 9 §2): a flood
//! of client authentications that each cost an argon2id check (secrets not
//! in the generated shape) keeps the server's memory under a stated bound,
//! is refused with 503 + `Retry-After` in the contract's format past the
//! budget, and does not stop a client with a generated secret from getting
//! tokens meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

/// The bound the issue states for this flood.
const RSS_LIMIT: u64 = 256 * 1024 * 1024;
const FLOOD_CONNECTIONS: usize = 64;
const FLOOD_FOR: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_argon2_flood_stays_within_memory_and_generated_secrets_keep_working() {
    // A small queue, so that past the budget the flood is refused rather
    // than queued (the default waits up to 64 checks for 2 s).
    let s = Arc::new(Server::start_with(
        &[],
        &[
            ("TOLLGATE_ARGON2_MAX_WAITING", "4"),
            // This flood is about memory, not guessing: no locks here
            // (tests/throttling.rs covers those).
            ("TOLLGATE_THROTTLE_ACCOUNT_FAILURES", "0"),
            ("TOLLGATE_THROTTLE_SOURCE_FAILURES", "0"),
        ],
    ));
    s.cli_ok(&["api", "create", "odds", "--permission", "odds:read"]);
    // An imported (argon2id-stored) secret, and a generated one.
    let (imported, _) = s.client(&[
        "--name",
        "legacy",
        "--api",
        "odds=odds:read",
        "--client-secret",
        "legacy-secret-1",
    ]);
    let (fast, fast_secret) = s.client(&["--name", "fast", "--api", "odds=odds:read"]);
    s.sync().await;
    let before = s.rss_bytes();

    let deadline = Instant::now() + FLOOD_FOR;
    let (refused, denied) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut flood = Vec::new();
    for c in 0..FLOOD_CONNECTIONS {
        let (s, imported) = (s.clone(), imported.clone());
        let (refused, denied) = (refused.clone(), denied.clone());
        flood.push(tokio::spawn(async move {
            let mut n = 0u32;
            while Instant::now() < deadline {
                n += 1;
                // A different wrong secret each time: nothing to share or cache.
                let secret = format!("guess-{c}-{n}");
                let r = s.token(&imported, &secret, &[]).await;
                match r.status().as_u16() {
                    401 => {
                        denied.fetch_add(1, Ordering::Relaxed);
                    }
                    503 => {
                        let retry: u64 = r.headers()["retry-after"]
                            .to_str()
                            .unwrap()
                            .parse()
                            .unwrap();
                        assert!(retry >= 1);
                        let body: Value = r.json().await.unwrap();
                        assert_eq!(body["error"], "temporarily_unavailable");
                        refused.fetch_add(1, Ordering::Relaxed);
                        // A polite client waits; a flood does not. Keep flooding.
                    }
                    other => panic!("unexpected status {other}"),
                }
            }
        }));
    }
    // Meanwhile: the generated-secret client, and the memory, sampled.
    let mut served = 0;
    let mut peak = before;
    while Instant::now() < deadline {
        let r = s.token(&fast, &fast_secret, &[]).await;
        assert_eq!(
            r.status(),
            200,
            "a generated secret is served during the flood"
        );
        served += 1;
        peak = peak.max(s.rss_bytes());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for f in flood {
        f.await.unwrap();
    }
    peak = peak.max(s.rss_bytes());
    let (refused, denied) = (
        refused.load(Ordering::Relaxed),
        denied.load(Ordering::Relaxed),
    );
    eprintln!(
        "rss before {} MiB, peak {} MiB; {denied} denied (argon2id ran), {refused} refused (503), {served} served",
        before >> 20,
        peak >> 20
    );
    assert!(served >= 10, "the fast client kept being served: {served}");
    assert!(denied > 0, "checks did run");
    assert!(
        refused > 0,
        "past the budget the flood is refused, not queued without end"
    );
    assert!(
        peak < RSS_LIMIT,
        "resident memory peaked at {} MiB",
        peak >> 20
    );
    // The legitimate holder of the imported secret still gets in.
    let r = s.token(&imported, "legacy-secret-1", &[]).await;
    assert_eq!(r.status(), 200);
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("tollgate_argon2_refused_total"),
        "{metrics}"
    );
}
