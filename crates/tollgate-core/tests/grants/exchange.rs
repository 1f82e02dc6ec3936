//! The bearer exchange: a refresh JWT for an access token. Every refusal is
//! `InvalidGrant`.

use secrecy::ExposeSecret;
use serde_json::json;
use tollgate_core::model::{Alg, DEFAULT_ENV, GrantType};
use tollgate_core::service::{ClaimShape, EnvSettings, RefreshPolicy};
use tollgate_core::{CoreError, Tollgate};
use tollgate_testkit::TestResult;

use crate::{ISSUER, World, assert_invalid_grant, device, lifetime, rt, spec};

#[tokio::test]
async fn a_refresh_jwt_exchanges_for_an_access_token() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec("partner", &[("orders", &["basic", "write"])], &[]))
        .await?;
    let (rj, rec) =
        w.tg.issue_refresh_jwt(DEFAULT_ENV, &p.id, None, 3_600)
            .await?;
    assert_eq!(rec.audience, "orders", "the client's only API");
    assert_eq!(rec.client_id, p.id);
    assert_eq!(rec.expires_at - rec.created_at, 3_600);
    let env = w.synced().await?;

    let issued =
        w.tg.exchange_refresh_jwt(&env, rj.expose_secret(), 120, ClaimShape::Rfc9068)
            .await?;
    assert_eq!(issued.expires_in, 120, "the contract's lifetime");
    assert_eq!(
        (issued.audience.as_str(), issued.scope.as_str()),
        ("orders", "read write")
    );
    let c = w.claims(&env, &issued.access_token, "orders")?;
    assert_eq!(c.iss, ISSUER);
    assert_eq!(c.sub, p.id);
    assert_eq!(c.client_id.as_deref(), Some(p.id.as_str()));
    assert_eq!(c.scope.as_deref(), Some("read write"));
    assert_eq!(lifetime(&c), 120);

    // Again (the record now cached), in Auth0's shape.
    let auth0 =
        w.tg.exchange_refresh_jwt(
            &env,
            rj.expose_secret(),
            60,
            ClaimShape::Auth0 {
                gty: "refresh_token",
            },
        )
        .await?;
    let c2 = w.claims(&env, &auth0.access_token, "orders")?;
    assert_eq!(c2.sub, format!("{}@clients", p.id));
    assert_eq!(c2.other.get("gty"), Some(&json!("refresh_token")));
    assert_eq!(c2.other.get("azp"), Some(&json!(p.id)));
    assert_ne!(c2.jti, c.jti);
    assert_eq!(lifetime(&c2), 60);
    Ok(())
}

#[tokio::test]
async fn minting_names_a_granted_api() -> TestResult {
    let w = World::new().await?;
    let two = w
        .client(spec(
            "two",
            &[("orders", &["read"]), ("billing", &["invoices"])],
            &[],
        ))
        .await?;
    assert!(matches!(
        w.tg.issue_refresh_jwt(DEFAULT_ENV, &two.id, None, 60).await,
        Err(CoreError::Invalid { .. })
    ));
    let one = w.client(spec("one", &[("orders", &["read"])], &[])).await?;
    assert!(matches!(
        w.tg.issue_refresh_jwt(DEFAULT_ENV, &one.id, Some("billing"), 60)
            .await,
        Err(CoreError::Invalid { .. })
    ));
    let (rj, _) =
        w.tg.issue_refresh_jwt(DEFAULT_ENV, &two.id, Some("billing"), 60)
            .await?;
    let env = w.synced().await?;
    let issued =
        w.tg.exchange_refresh_jwt(&env, rj.expose_secret(), 30, ClaimShape::Rfc9068)
            .await?;
    assert_eq!(issued.audience, "billing");
    assert_eq!(
        w.claims(&env, &issued.access_token, "billing")?
            .scope
            .as_deref(),
        Some("invoices")
    );
    Ok(())
}

#[tokio::test]
async fn a_revoked_refresh_jwt_is_invalid_grant() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec("partner", &[("orders", &["read"])], &[]))
        .await?;
    let (rj, rec) =
        w.tg.issue_refresh_jwt(DEFAULT_ENV, &p.id, None, 3_600)
            .await?;
    let (unused, unused_rec) =
        w.tg.issue_refresh_jwt(DEFAULT_ENV, &p.id, None, 3_600)
            .await?;
    let env = w.synced().await?;
    w.tg.exchange_refresh_jwt(&env, rj.expose_secret(), 60, ClaimShape::Rfc9068)
        .await?;

    w.tg.revoke_refresh_jwt(DEFAULT_ENV, &rec.jti).await?;
    w.tg.revoke_refresh_jwt(DEFAULT_ENV, &unused_rec.jti)
        .await?;
    assert!(
        w.tg.revoke_refresh_jwt(DEFAULT_ENV, &rec.jti)
            .await
            .is_err(),
        "no longer an active refresh JWT"
    );
    let env = w.synced().await?;
    for (what, token) in [("used before", &rj), ("never used", &unused)] {
        assert_invalid_grant(
            w.tg.exchange_refresh_jwt(&env, token.expose_secret(), 60, ClaimShape::Rfc9068)
                .await,
            what,
        );
    }
    let listed = w.tg.list_refresh_jwts(DEFAULT_ENV).await?;
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|r| r.revoked_at.is_some()));
    Ok(())
}

#[tokio::test]
async fn a_disabled_client_cannot_exchange() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec("partner", &[("orders", &["read"])], &[]))
        .await?;
    let (rj, _) =
        w.tg.issue_refresh_jwt(DEFAULT_ENV, &p.id, None, 3_600)
            .await?;
    w.tg.set_client_enabled(DEFAULT_ENV, &p.id, false).await?;
    let env = w.synced().await?;
    assert_invalid_grant(
        w.tg.exchange_refresh_jwt(&env, rj.expose_secret(), 60, ClaimShape::Rfc9068)
            .await,
        "disabled client",
    );
    w.tg.set_client_enabled(DEFAULT_ENV, &p.id, true).await?;
    let env = w.synced().await?;
    assert!(
        w.tg.exchange_refresh_jwt(&env, rj.expose_secret(), 60, ClaimShape::Rfc9068)
            .await
            .is_ok(),
        "enabled again"
    );
    Ok(())
}

#[tokio::test]
async fn a_refresh_jwt_does_not_outlive_its_api() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec(
            "partner",
            &[("orders", &["read"]), ("billing", &["invoices"])],
            &[],
        ))
        .await?;
    let (rj, _) =
        w.tg.issue_refresh_jwt(DEFAULT_ENV, &p.id, Some("billing"), 3_600)
            .await?;
    w.tg.delete_api(DEFAULT_ENV, "billing").await?;
    let env = w.synced().await?;
    assert_invalid_grant(
        w.tg.exchange_refresh_jwt(&env, rj.expose_secret(), 60, ClaimShape::Rfc9068)
            .await,
        "its API was deleted",
    );
    Ok(())
}

#[tokio::test]
async fn other_tokens_are_not_refresh_jwts() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec(
            "partner",
            &[("orders", &["read"])],
            &[GrantType::ClientCredentials, GrantType::DeviceCredentials],
        ))
        .await?;
    w.user(&p.id, "device-1").await?;
    let env = w.synced().await?;
    let session = w
        .login(&env, p.auth(), "device-1", &device(RefreshPolicy::Reuse))
        .await?;
    let access = w.tg.client_credentials(&env, &p.cc()).await?.access_token;
    for (what, token) in [
        ("a session refresh token", rt(&session)),
        ("a session access token", session.access_token.as_str()),
        ("a client_credentials access token", access.as_str()),
        ("garbage", "not.a.jwt"),
        ("nothing", ""),
    ] {
        assert_invalid_grant(
            w.tg.exchange_refresh_jwt(&env, token, 60, ClaimShape::Rfc9068)
                .await,
            what,
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_refresh_jwt_is_bound_to_its_environment() -> TestResult {
    let w = World::new().await?;
    w.tg.create_environment("staging", None, Alg::ES256, EnvSettings::default())
        .await?;
    w.tg.create_api(crate::api("staging", "orders", &["read"], &[], 600))
        .await?;
    let p = w
        .client(spec("partner", &[("orders", &["read"])], &[]))
        .await?;
    // The same client id and secret in staging.
    let mut twin = spec("partner", &[("orders", &["read"])], &[]);
    twin.env = "staging".into();
    twin.client_id = Some(p.id.clone());
    twin.client_secret = Some(p.secret.clone());
    w.client(twin).await?;
    // Minting reads the environment from the snapshot: sync first.
    w.tg.sync().await?;
    let (here, _) =
        w.tg.issue_refresh_jwt(DEFAULT_ENV, &p.id, None, 3_600)
            .await?;
    let (there, _) =
        w.tg.issue_refresh_jwt("staging", &p.id, None, 3_600)
            .await?;
    let default = w.synced().await?;
    let staging = w.tg.env("staging").ok_or("staging")?;
    assert_eq!(staging.issuer, format!("{ISSUER}/e/staging"));

    assert_invalid_grant(
        w.tg.exchange_refresh_jwt(&staging, here.expose_secret(), 60, ClaimShape::Rfc9068)
            .await,
        "default's in staging",
    );
    assert_invalid_grant(
        w.tg.exchange_refresh_jwt(&default, there.expose_secret(), 60, ClaimShape::Rfc9068)
            .await,
        "staging's in default",
    );
    let at_home =
        w.tg.exchange_refresh_jwt(&staging, there.expose_secret(), 60, ClaimShape::Rfc9068)
            .await?;
    let c = w.claims(&staging, &at_home.access_token, "orders")?;
    assert_eq!(c.iss, staging.issuer);
    assert!(
        w.tg.verify(&default, &at_home.access_token, None).is_err(),
        "staging's tokens do not verify in default"
    );
    Ok(())
}

#[tokio::test]
async fn a_refresh_jwt_is_bound_to_its_master_key() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec("partner", &[("orders", &["read"])], &[]))
        .await?;
    let (rj, _) =
        w.tg.issue_refresh_jwt(DEFAULT_ENV, &p.id, None, 3_600)
            .await?;
    // Another deployment (another master key) with the same names.
    let elsewhere = Tollgate::open(
        std::sync::Arc::new(tollgate_core::testing::MemoryStore::new()),
        &tollgate_core::crypto::master::MasterKey::generate()?,
        ISSUER,
    )
    .await?;
    let env = elsewhere.env(DEFAULT_ENV).ok_or("default")?;
    assert_invalid_grant(
        elsewhere
            .exchange_refresh_jwt(&env, rj.expose_secret(), 60, ClaimShape::Rfc9068)
            .await,
        "another master key",
    );
    Ok(())
}
