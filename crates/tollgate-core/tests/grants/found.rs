//! Behaviours the core got wrong until the grant tests found them: refused
//! requests counted against an issuance limit, a token revoked here handed
//! out again (reuse) or exchanged again (refresh JWT) before the next sync,
//! and a refresh JWT not mintable in an environment just created.

use secrecy::ExposeSecret;
use tollgate_core::model::Alg;
use tollgate_core::model::{DEFAULT_ENV, GrantType, Obligation};
use tollgate_core::service::{
    ClaimShape, ClientCredentials, EnvSettings, ObligationTarget, RefreshPolicy,
};
use tollgate_testkit::TestResult;

use crate::{World, assert_invalid_grant, device, rt, spec};

#[tokio::test]
async fn refused_requests_are_not_counted_as_issuances() -> TestResult {
    let w = World::new().await?;
    let mut s = spec(
        "a",
        &[("orders", &["read"])],
        &[GrantType::ClientCredentials, GrantType::DeviceCredentials],
    );
    s.obligation = Some(Obligation::Limit {
        max: 3,
        window: 10 * 365 * 86_400,
    });
    let p = w.client(s).await?;
    w.user(&p.id, "u").await?;
    let env = w.synced().await?;
    // Refused: a scope it does not hold, a refresh of an ended session.
    let bad = ClientCredentials {
        default_lifetime: 600,
        scope: Some("admin"),
        ..p.cc()
    };
    assert!(w.tg.client_credentials(&env, &bad).await.is_err());
    let profile = device(RefreshPolicy::Rotate);
    let s1 = w.login(&env, p.auth(), "u", &profile).await?; // issuance 1
    w.tg.logout(&env, rt(&s1), &profile).await?;
    assert_invalid_grant(w.refresh(&env, p.auth(), &s1, &profile).await, "ended");
    // Issuance 2 of 3: must be granted, with one left.
    let issued = w.tg.client_credentials(&env, &p.cc()).await?;
    assert_eq!(issued.rate.map(|r| r.remaining), Some(1));
    Ok(())
}

#[tokio::test]
async fn a_revoked_token_is_not_handed_out_again_even_before_a_sync() -> TestResult {
    let w = World::new().await?;
    let mut s = spec("a", &[("orders", &["read"])], &[]);
    s.obligation = Some(Obligation::Reuse { min_remaining: 30 });
    let p = w.client(s).await?;
    let env = w.synced().await?;
    let first = w.tg.client_credentials(&env, &p.cc()).await?;
    let me = w.tg.authenticate(&env, &p.id, &p.secret).await?;
    w.tg.revoke(&env, &me, &first.access_token).await?;
    let next = w.tg.client_credentials(&env, &p.cc()).await?;
    assert_ne!(
        next.access_token, first.access_token,
        "the revoked token handed out again"
    );
    Ok(())
}

#[tokio::test]
async fn a_refresh_jwt_revoked_here_is_refused_here_at_once() -> TestResult {
    let w = World::new().await?;
    let p = w.client(spec("a", &[("orders", &["read"])], &[])).await?;
    let (rj, _) =
        w.tg.issue_refresh_jwt(DEFAULT_ENV, &p.id, None, 3_600)
            .await?;
    let env = w.synced().await?;
    w.tg.exchange_refresh_jwt(&env, rj.expose_secret(), 60, ClaimShape::Rfc9068)
        .await?;
    let me = w.tg.authenticate(&env, &p.id, &p.secret).await?;
    w.tg.revoke(&env, &me, rj.expose_secret()).await?;
    assert_invalid_grant(
        w.tg.exchange_refresh_jwt(&env, rj.expose_secret(), 60, ClaimShape::Rfc9068)
            .await,
        "revoked on this instance, before its next sync",
    );
    Ok(())
}

#[tokio::test]
async fn a_refresh_jwt_can_be_minted_in_an_environment_just_created() -> TestResult {
    let w = World::new().await?;
    w.tg.create_environment("staging", None, Alg::ES256, EnvSettings::default())
        .await?;
    w.tg.create_api(crate::api("staging", "orders", &["read"], &[], 600))
        .await?;
    let mut s = spec("a", &[("orders", &["read"])], &[]);
    s.env = "staging".into();
    let p = w.client(s).await?;
    w.tg.issue_refresh_jwt("staging", &p.id, None, 3_600)
        .await?;
    let _ = ObligationTarget::Api("x");
    Ok(())
}
