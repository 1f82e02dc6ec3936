//! Obligations: `reuse:N` hands a token out again, `limit:K/W` counts
//! issuances (across every grant) and refuses past K.

use secrecy::ExposeSecret;
use tollgate_core::GrantError;
use tollgate_core::model::{DEFAULT_ENV, GrantType, Obligation, RateInfo};
use tollgate_core::service::{ClaimShape, ClientCredentials, ObligationTarget, RefreshPolicy};
use tollgate_core::time::now;
use tollgate_testkit::TestResult;

use crate::{ORDERS_LIFETIME, World, device, spec};

/// A window so long (ten years) that no test run straddles two of them.
const LONG_WINDOW: u64 = 10 * 365 * 86_400;

#[tokio::test]
async fn reuse_hands_back_the_same_token_until_the_store_changes() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec("partner", &[("orders", &["basic", "write"])], &[]))
        .await?;
    w.tg.set_obligation(
        DEFAULT_ENV,
        ObligationTarget::Api("orders"),
        Some(Obligation::Reuse { min_remaining: 30 }),
    )
    .await?;
    let env = w.synced().await?;

    let first = w.tg.client_credentials(&env, &p.cc()).await?;
    assert!(!first.reused);
    let second = w.tg.client_credentials(&env, &p.cc()).await?;
    assert!(second.reused, "handed out again");
    assert_eq!(second.access_token, first.access_token);
    assert_eq!(second.expires_at, first.expires_at);
    assert!(
        second.expires_in <= first.expires_in,
        "the remaining lifetime"
    );
    // The same scope in another order is the same request.
    let ask = |scope| ClientCredentials {
        default_lifetime: 600,
        scope: Some(scope),
        ..p.cc()
    };
    let named = w.tg.client_credentials(&env, &ask("read write")).await?;
    assert!(
        !named.reused,
        "asking for a scope is another request than asking for none"
    );
    let reordered =
        w.tg.client_credentials(&env, &ask("write  read write"))
            .await?;
    assert!(reordered.reused);
    assert_eq!(reordered.access_token, named.access_token);

    // Whatever shapes the token is part of the key: scope, claim shape.
    let narrow = w.tg.client_credentials(&env, &ask("read")).await?;
    assert!(!narrow.reused);
    assert_ne!(narrow.access_token, first.access_token);
    assert_eq!(narrow.scope, "read");
    let auth0 = ClientCredentials {
        default_lifetime: 600,
        shape: ClaimShape::Auth0 {
            gty: "client-credentials",
        },
        ..p.cc()
    };
    let shaped = w.tg.client_credentials(&env, &auth0).await?;
    assert!(!shaped.reused);
    assert!(
        w.claims(&env, &shaped.access_token, "orders")?
            .sub
            .ends_with("@clients")
    );

    // Any store change (here an unrelated API) drops what was remembered.
    w.tg.create_api(crate::api(DEFAULT_ENV, "unrelated", &["x"], &[], 60))
        .await?;
    let env = w.synced().await?;
    let fresh = w.tg.client_credentials(&env, &p.cc()).await?;
    assert!(!fresh.reused, "a new token after the store changed");
    assert_ne!(fresh.access_token, first.access_token);
    let again = w.tg.client_credentials(&env, &p.cc()).await?;
    assert!(again.reused);
    assert_eq!(again.access_token, fresh.access_token);
    Ok(())
}

#[tokio::test]
async fn a_revoked_token_is_not_handed_out_again() -> TestResult {
    let w = World::new().await?;
    let mut s = spec("partner", &[("orders", &["read"])], &[]);
    s.obligation = Some(Obligation::Reuse { min_remaining: 30 });
    let p = w.client(s).await?;
    let env = w.synced().await?;
    let first = w.tg.client_credentials(&env, &p.cc()).await?;
    assert!(w.tg.client_credentials(&env, &p.cc()).await?.reused);
    let me = w.tg.authenticate(&env, &p.id, &p.secret).await?;
    w.tg.revoke(&env, &me, &first.access_token).await?;
    let env = w.synced().await?;
    let next = w.tg.client_credentials(&env, &p.cc()).await?;
    assert!(!next.reused);
    assert_ne!(next.access_token, first.access_token);
    assert!(
        w.tg.introspect(&env, &me, &next.access_token)
            .await?
            .is_some()
    );
    Ok(())
}

#[tokio::test]
async fn reuse_needs_more_than_n_seconds_left() -> TestResult {
    let w = World::new().await?;
    let mut s = spec("partner", &[("orders", &["read"])], &[]);
    // As long as the token lives: never more than that is left.
    s.obligation = Some(Obligation::Reuse {
        min_remaining: u64::try_from(ORDERS_LIFETIME)?,
    });
    let p = w.client(s).await?;
    let env = w.synced().await?;
    let first = w.tg.client_credentials(&env, &p.cc()).await?;
    let second = w.tg.client_credentials(&env, &p.cc()).await?;
    assert!(!second.reused);
    assert_ne!(second.access_token, first.access_token);
    Ok(())
}

#[tokio::test]
async fn a_clients_obligation_overrides_its_apis() -> TestResult {
    let w = World::new().await?;
    let mut s = spec("exempt", &[("orders", &["read"])], &[]);
    s.obligation = Some(Obligation::Off);
    let exempt = w.client(s).await?;
    let bound = w
        .client(spec("bound", &[("orders", &["read"])], &[]))
        .await?;
    w.tg.set_obligation(
        DEFAULT_ENV,
        ObligationTarget::Api("orders"),
        Some(Obligation::Reuse { min_remaining: 30 }),
    )
    .await?;
    let env = w.synced().await?;
    w.tg.client_credentials(&env, &exempt.cc()).await?;
    assert!(!w.tg.client_credentials(&env, &exempt.cc()).await?.reused);
    w.tg.client_credentials(&env, &bound.cc()).await?;
    assert!(w.tg.client_credentials(&env, &bound.cc()).await?.reused);

    // Cleared on the client: the API's applies again.
    w.tg.set_obligation(DEFAULT_ENV, ObligationTarget::Client(&exempt.id), None)
        .await?;
    let env = w.synced().await?;
    w.tg.client_credentials(&env, &exempt.cc()).await?;
    assert!(w.tg.client_credentials(&env, &exempt.cc()).await?.reused);
    Ok(())
}

#[tokio::test]
async fn limit_counts_issuances_and_refuses_past_k() -> TestResult {
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
            max: 3,
            window: LONG_WINDOW,
        }),
    )
    .await?;
    let env = w.synced().await?;
    let window = i64::try_from(LONG_WINDOW)?;
    let mut resets = Vec::new();
    for remaining in [2, 1, 0] {
        let issued = w.tg.client_credentials(&env, &p.cc()).await?;
        let rate = issued
            .rate
            .ok_or("a limited client's issuance carries its rate")?;
        assert_eq!((rate.limit, rate.remaining), (3, remaining));
        resets.push(rate.reset_at);
    }
    let t = now();
    assert!(resets.iter().all(|r| *r == resets[0]), "one window");
    assert!(
        resets[0] > t && resets[0] - window <= t,
        "the window holds now"
    );

    match w.tg.client_credentials(&env, &p.cc()).await {
        Err(GrantError::RateLimited(RateInfo {
            limit,
            remaining,
            reset_at,
        })) => {
            assert_eq!((limit, remaining, reset_at), (3, 0, resets[0]));
        }
        other => panic!("the fourth issuance: expected RateLimited, got {other:?}"),
    }
    let refused = w.tg.client_credentials(&env, &p.cc()).await.err();
    let Some(GrantError::RateLimited(info)) = refused else {
        panic!("still refused: {refused:?}");
    };
    assert!(info.retry_after() >= 1);
    assert_eq!(
        refused.as_ref().and_then(GrantError::retry_after),
        Some(info.retry_after())
    );

    // Per client: another one is not counted with it.
    let free = w.tg.client_credentials(&env, &other.cc()).await?;
    assert!(free.rate.is_none());
    Ok(())
}

#[tokio::test]
async fn limit_counts_across_grants() -> TestResult {
    let w = World::new().await?;
    let mut s = spec(
        "partner",
        &[("orders", &["read"])],
        &[GrantType::ClientCredentials, GrantType::DeviceCredentials],
    );
    s.obligation = Some(Obligation::Limit {
        max: 4,
        window: LONG_WINDOW,
    });
    let p = w.client(s).await?;
    w.user(&p.id, "device-1").await?;
    let (rj, _) =
        w.tg.issue_refresh_jwt(DEFAULT_ENV, &p.id, None, 3_600)
            .await?;
    let env = w.synced().await?;
    let profile = device(RefreshPolicy::Rotate);

    // One of each: client_credentials, exchange, login, refresh.
    let issued = w.tg.client_credentials(&env, &p.cc()).await?;
    assert_eq!(issued.rate.map(|r| r.remaining), Some(3));
    let exchanged =
        w.tg.exchange_refresh_jwt(&env, rj.expose_secret(), 60, ClaimShape::Rfc9068)
            .await?;
    assert_eq!(exchanged.rate.map(|r| r.remaining), Some(2));
    let session = w.login(&env, p.auth(), "device-1", &profile).await?;
    let session = w.refresh(&env, p.auth(), &session, &profile).await?;

    // The fifth, whichever grant asks, is refused.
    let limited = |r: Result<(), GrantError>, what: &str| match r {
        Err(GrantError::RateLimited(info)) => assert_eq!(info.limit, 4, "{what}"),
        other => panic!("{what}: expected RateLimited, got {other:?}"),
    };
    limited(
        w.tg.client_credentials(&env, &p.cc()).await.map(drop),
        "client_credentials",
    );
    limited(
        w.tg.exchange_refresh_jwt(&env, rj.expose_secret(), 60, ClaimShape::Rfc9068)
            .await
            .map(drop),
        "exchange",
    );
    limited(
        w.login(&env, p.auth(), "device-1", &profile)
            .await
            .map(drop),
        "login",
    );
    limited(
        w.refresh(&env, p.auth(), &session, &profile)
            .await
            .map(drop),
        "refresh",
    );
    Ok(())
}
