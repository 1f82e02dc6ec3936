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
