//! Usage per client and day: what each grant counts (issued, errors, 429s),
//! that a flush adds to the store, and that a failed flush loses nothing.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use tollgate_core::model::{DEFAULT_ENV, GrantType, Obligation};
use tollgate_core::service::{ClaimShape, ClientCredentials, ObligationTarget, RefreshPolicy};
use tollgate_core::testing::MemoryStore;
use tollgate_core::time::now;
use tollgate_core::usage::day_of;
use tollgate_testkit::TestResult;

use crate::{World, device, spec};

/// Today's (issued, errors, 429s) of `client` as the store has them.
async fn today(w: &World, client: &str) -> TestResult<(u64, u64, u64)> {
    let d = day_of(now());
    let days = w.tg.client_usage(DEFAULT_ENV, client, d, d).await?;
    let u = days.first().ok_or("one day asked, one day answered")?;
    Ok((u.issued, u.errors, u.throttled))
}

#[tokio::test]
async fn each_kind_is_counted_per_client_and_reaches_the_store_at_the_flush() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec("partner", &[("orders", &["read"])], &[]))
        .await?;
    let other = w
        .client(spec("other", &[("orders", &["read"])], &[]))
        .await?;
    w.tg.set_obligation(
        DEFAULT_ENV,
        ObligationTarget::Client(&p.id),
        Some(Obligation::Limit {
            max: 2,
            window: 10 * 365 * 86_400,
        }),
    )
    .await?;
    let env = w.synced().await?;

    for _ in 0..2 {
        w.tg.client_credentials(&env, &p.cc()).await?;
    }
    // Past the limit: two 429s.
    for _ in 0..2 {
        assert!(w.tg.client_credentials(&env, &p.cc()).await.is_err());
    }
    // A wrong secret, an audience not held, a scope not held: errors.
    let wrong = SecretString::from("not-the-secret");
    let bad_secret = ClientCredentials {
        client_secret: &wrong,
        ..p.cc()
    };
    assert!(w.tg.client_credentials(&env, &bad_secret).await.is_err());
    let bad_audience = ClientCredentials {
        audience: Some("billing"),
        ..other.cc()
    };
    assert!(w.tg.client_credentials(&env, &bad_audience).await.is_err());
    let bad_scope = ClientCredentials {
        scope: Some("admin"),
        ..other.cc()
    };
    assert!(w.tg.client_credentials(&env, &bad_scope).await.is_err());
    w.tg.client_credentials(&env, &other.cc()).await?;
    // A client id that does not exist counts nowhere.
    let nobody = ClientCredentials {
        client_id: "no-such-client",
        ..p.cc()
    };
    assert!(w.tg.client_credentials(&env, &nobody).await.is_err());

    assert_eq!(
        today(&w, &p.id).await?,
        (0, 0, 0),
        "memory only until the flush"
    );
    assert_eq!(w.tg.flush_usage().await?, 2, "one row per client and day");
    assert_eq!(today(&w, &p.id).await?, (2, 1, 2));
    assert_eq!(today(&w, &other.id).await?, (1, 2, 0));
    assert!(
        w.tg.client_usage(DEFAULT_ENV, "no-such-client", 0, 0)
            .await
            .is_err(),
        "an unknown client has no usage"
    );

    // A second flush adds to the rows (as another instance's would).
    w.tg.client_credentials(&env, &other.cc()).await?;
    assert_eq!(w.tg.flush_usage().await?, 1);
    assert_eq!(w.tg.flush_usage().await?, 0, "nothing new");
    assert_eq!(today(&w, &other.id).await?, (2, 2, 0));
    Ok(())
}

#[tokio::test]
async fn every_grant_counts_its_tokens() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec(
            "partner",
            &[("orders", &["read"])],
            &[GrantType::ClientCredentials, GrantType::DeviceCredentials],
        ))
        .await?;
    w.user(&p.id, "device-1").await?;
    let (rj, _) =
        w.tg.issue_refresh_jwt(DEFAULT_ENV, &p.id, None, 3_600)
            .await?;
    let env = w.synced().await?;
    let profile = device(RefreshPolicy::Rotate);

    w.tg.client_credentials(&env, &p.cc()).await?;
    w.tg.exchange_refresh_jwt(&env, rj.expose_secret(), 60, ClaimShape::Rfc9068)
        .await?;
    let session = w.login(&env, p.auth(), "device-1", &profile).await?;
    w.refresh(&env, p.auth(), &session, &profile).await?;
    // A user's wrong password presented with the client's id: an error.
    assert!(
        w.tg.login(
            &env,
            p.auth(),
            "device-1",
            &crate::md5("0000"),
            &profile,
            None
        )
        .await
        .is_err()
    );
    // A refresh token that is not one: an error of the client presented.
    assert!(
        w.tg.refresh(&env, p.auth(), "garbage", &profile, None)
            .await
            .is_err()
    );
    w.tg.flush_usage().await?;
    assert_eq!(today(&w, &p.id).await?, (4, 2, 0));
    Ok(())
}

#[tokio::test]
async fn a_failed_flush_keeps_the_counts_for_the_next() -> TestResult {
    let store = Arc::new(MemoryStore::new());
    let w = World::over(store.clone()).await?;
    let p = w
        .client(spec("partner", &[("orders", &["read"])], &[]))
        .await?;
    let env = w.synced().await?;
    for _ in 0..3 {
        w.tg.client_credentials(&env, &p.cc()).await?;
    }
    store.fail_usage_writes(true);
    assert!(w.tg.flush_usage().await.is_err());
    w.tg.client_credentials(&env, &p.cc()).await?;
    assert!(w.tg.flush_usage().await.is_err(), "still down");
    store.fail_usage_writes(false);
    assert_eq!(w.tg.flush_usage().await?, 1);
    assert_eq!(
        today(&w, &p.id).await?,
        (4, 0, 0),
        "nothing lost, nothing twice"
    );
    Ok(())
}

#[tokio::test]
async fn a_limited_clients_quota_state_shows_the_window_in_use() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec("partner", &[("orders", &["read"])], &[]))
        .await?;
    let free = w
        .client(spec("free", &[("orders", &["read"])], &[]))
        .await?;
    w.tg.set_obligation(
        DEFAULT_ENV,
        ObligationTarget::Client(&p.id),
        Some(Obligation::Limit {
            max: 2,
            window: 3_600,
        }),
    )
    .await?;
    let env = w.synced().await?;
    let client = w.tg.get_client(DEFAULT_ENV, &p.id).await?;
    let q = w.tg.quota_state(&client).await?.ok_or("a limit")?;
    assert_eq!((q.max, q.window, q.used), (2, 3_600, 0));
    assert!(q.resets_at > now() && q.resets_at <= now() + 3_600);
    for _ in 0..3 {
        let _ = w.tg.client_credentials(&env, &p.cc()).await;
    }
    let q = w.tg.quota_state(&client).await?.ok_or("a limit")?;
    assert_eq!(q.used, 2, "refusals past the limit are not issuances");
    let free = w.tg.get_client(DEFAULT_ENV, &free.id).await?;
    assert_eq!(w.tg.quota_state(&free).await?, None);
    Ok(())
}
