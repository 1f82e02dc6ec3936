//! Outages and restarts (hardening, issue 9 §5): a crash between a
//! rotation and its response, and a restart slower than the retry leeway,
//! must not turn the client's retry into "reuse" that revokes its session.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::login::{assert_not_authenticated, login, pair_of, refresh, setup};

const LOGIN: &str = "/v2/authentication/login";

#[tokio::test]
async fn a_retry_after_a_crash_gets_the_leeway_the_crash_interrupted() {
    // A 3 s leeway and a 5 s outage: without counting the outage out, the
    // retry would come 5+ s after the rotation and be taken for reuse.
    let mut s = setup(&[("TOLLGATE_REFRESH_RETRY_LEEWAY", "3s")]);
    s.sync().await;
    let (_, r1) = pair_of(&login(&s, LOGIN).await);
    // Let the server mark itself alive after the login, then rotate: the
    // response to this rotation is "lost" in the crash that follows.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.sync().await;
    let (_, r2) = pair_of(&refresh(&s, &r1).await);
    s.crash_and_restart(Duration::from_secs(5));
    s.sync().await;
    let (_, again) = pair_of(&refresh(&s, &r1).await);
    assert_eq!(
        again, r2,
        "the retry gets the successor the crash swallowed"
    );
    // The session goes on.
    let (_, r3) = pair_of(&refresh(&s, &r2).await);
    // And reuse is still reuse: r1 once its successor has moved on.
    assert_not_authenticated(refresh(&s, &r1).await, "r1 after r2 moved on").await;
    assert_not_authenticated(refresh(&s, &r3).await, "family revoked").await;
}

#[tokio::test]
async fn a_token_whose_leeway_ran_out_before_the_crash_is_still_reuse() {
    let mut s = setup(&[("TOLLGATE_REFRESH_RETRY_LEEWAY", "1s")]);
    s.sync().await;
    let (_, r1) = pair_of(&login(&s, LOGIN).await);
    let (_, r2) = pair_of(&refresh(&s, &r1).await);
    // The leeway runs out while the server is up and marking itself alive.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        s.sync().await;
    }
    s.crash_and_restart(Duration::from_secs(2));
    s.sync().await;
    assert_not_authenticated(refresh(&s, &r1).await, "reuse after the leeway").await;
    assert_not_authenticated(refresh(&s, &r2).await, "its family revoked").await;
}

/// Holds the store's write lock for `secs` seconds from another process:
/// over SQLite an exclusive transaction on the database file, over
/// PostgreSQL an exclusive lock on the tables a login and a sync write.
/// Returns once the lock is held.
fn hold_the_store(s: &common::Server, secs: u32) -> std::process::Child {
    let (program, args): (&str, Vec<String>) = match &s.database_url {
        Some(url) => (
            "psql",
            vec![
                url.clone(),
                "-q".into(),
                "-c".into(),
                format!(
                    "BEGIN; LOCK TABLE tg_refresh_families, tg_meta IN ACCESS EXCLUSIVE MODE; \
                     SELECT pg_sleep({secs}); COMMIT;"
                ),
            ],
        ),
        None => (
            "python3",
            vec![
                "-c".into(),
                format!(
                    "import sqlite3,sys,time\n\
                     c=sqlite3.connect(sys.argv[1],isolation_level=None)\n\
                     c.execute('BEGIN EXCLUSIVE')\n\
                     print('locked',flush=True)\n\
                     time.sleep({secs})\n\
                     c.execute('COMMIT')"
                ),
                s.data_dir().join("tollgate.db").display().to_string(),
            ],
        ),
    };
    let mut child = std::process::Command::new(program)
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if s.database_url.is_none() {
        // Wait for "locked".
        use std::io::BufRead;
        let out = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "locked");
    } else {
        // psql gives no signal: give it a moment to take the lock.
        std::thread::sleep(Duration::from_millis(500));
    }
    child
}

#[tokio::test]
async fn a_hung_store_gets_prompt_503s_and_a_live_healthz() {
    let s = setup(&[("TOLLGATE_STORE_TIMEOUT", "1s")]);
    s.sync().await;
    let mut holder = hold_the_store(&s, 6);
    // Liveness does not touch the store.
    let started = std::time::Instant::now();
    let r = common::send(s.get("/healthz")).await;
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "healthz is immediate"
    );
    // A login must write its session: it gets the contract's 503, promptly,
    // with Retry-After, instead of hanging for as long as the lock is held.
    let started = std::time::Instant::now();
    let r = login(&s, LOGIN).await;
    let waited = started.elapsed();
    assert_eq!(r.status(), 503);
    assert!(
        r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(r.text().await.unwrap(), "Service unavailable");
    assert!(waited < Duration::from_secs(4), "answered after {waited:?}");
    // Readiness says so too (a sync must mark the service alive: a write).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = common::send(s.get("/readyz")).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    // Once the lock is gone, the server serves again without a restart.
    holder.wait().unwrap();
    let r = login(&s, LOGIN).await;
    assert_eq!(r.status(), 200);
    assert_eq!(common::send(s.get("/readyz")).await.status(), 200);
}
