//! Every access token's lifetime follows one rule on every grant: the
//! client's own, else its API's, else the contract's setting (which the
//! contract resolved from the environment, else the server); and a change
//! made in place (`update_client`, `update_api`) applies at the next sync.

use secrecy::{ExposeSecret, SecretString};
use tollgate_core::model::{DEFAULT_ENV, GrantType};
use tollgate_core::service::{ApiUpdate, ClaimShape, ClientAuth, ClientUpdate, RefreshPolicy};
use tollgate_testkit::TestResult;

use crate::{World, device, header, lifetime, spec};

/// What each grant gives now, in seconds: client_credentials (contract
/// default 111), the exchange (222), a device login (900) and its refresh,
/// a header login (300).
async fn lifetimes(
    w: &World,
    id: &str,
    secret: &SecretString,
    rj: &str,
    user: &str,
) -> TestResult<[i64; 5]> {
    let env = w.synced().await?;
    let cc =
        w.tg.client_credentials(
            &env,
            &tollgate_core::service::ClientCredentials {
                default_lifetime: 111,
                client_id: id,
                client_secret: secret,
                audience: None,
                scope: None,
                shape: ClaimShape::Rfc9068,
                source: None,
            },
        )
        .await?;
    let ex =
        w.tg.exchange_refresh_jwt(&env, rj, 222, ClaimShape::Rfc9068)
            .await?;
    let profile = device(RefreshPolicy::Rotate);
    let s = w.login(&env, ClientAuth::None, user, &profile).await?;
    let r = w.refresh(&env, ClientAuth::None, &s, &profile).await?;
    let h = w.login(&env, ClientAuth::None, user, &header()).await?;
    let exp = |t: &str| -> TestResult<i64> { Ok(lifetime(&w.claims(&env, t, "orders")?)) };
    Ok([
        exp(&cc.access_token)?,
        exp(&ex.access_token)?,
        exp(&s.access_token)?,
        exp(&r.access_token)?,
        exp(&h.access_token)?,
    ])
}

#[tokio::test]
async fn the_client_then_the_api_then_the_contract_decide_on_every_grant() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec(
            "everything",
            &[("orders", &["basic"])],
            &[
                GrantType::ClientCredentials,
                GrantType::DeviceCredentials,
                GrantType::Password,
            ],
        ))
        .await?;
    w.user(&p.id, "dev-1").await?;
    let (rj, _) =
        w.tg.issue_refresh_jwt(DEFAULT_ENV, &p.id, None, 3_600)
            .await?;
    let rj = rj.expose_secret().to_string();
    // Neither sets one: each contract's own.
    assert_eq!(
        lifetimes(&w, &p.id, &p.secret, &rj, "dev-1").await?,
        [111, 222, 900, 900, 300]
    );
    // The API sets one: every contract follows it.
    w.tg.update_api(
        DEFAULT_ENV,
        "orders",
        ApiUpdate {
            token_lifetime: Some(Some(1_234)),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(
        lifetimes(&w, &p.id, &p.secret, &rj, "dev-1").await?,
        [1_234; 5]
    );
    // The client sets one: it wins over the API's.
    w.tg.update_client(
        DEFAULT_ENV,
        &p.id,
        ClientUpdate {
            token_lifetime: Some(Some(77)),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(
        lifetimes(&w, &p.id, &p.secret, &rj, "dev-1").await?,
        [77; 5]
    );
    // Back to inheriting, step by step.
    w.tg.update_client(
        DEFAULT_ENV,
        &p.id,
        ClientUpdate {
            token_lifetime: Some(None),
            ..Default::default()
        },
    )
    .await?;
    w.tg.update_api(
        DEFAULT_ENV,
        "orders",
        ApiUpdate {
            token_lifetime: Some(None),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(
        lifetimes(&w, &p.id, &p.secret, &rj, "dev-1").await?,
        [111, 222, 900, 900, 300]
    );
    Ok(())
}
