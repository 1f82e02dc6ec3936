//! A session is usable only where it was born: its contract, its client, its
//! environment.

use tollgate_core::model::{Alg, GrantType};
use tollgate_core::service::{ClientAuth, EnvSettings, RefreshPolicy, UserPassword};
use tollgate_testkit::TestResult;

use crate::{PIN, World, assert_invalid_grant, device, header, md5, spec};

#[tokio::test]
async fn a_session_is_refused_in_another_contract() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec(
            "both",
            &[("orders", &["read"])],
            &[GrantType::DeviceCredentials, GrantType::Password],
        ))
        .await?;
    w.user(&p.id, "someone").await?;
    let env = w.synced().await?;
    for policy in [RefreshPolicy::Reuse, RefreshPolicy::Rotate] {
        let dev = device(policy);
        let hdr = header();
        let d = w.login(&env, p.auth(), "someone", &dev).await?;
        let h = w.login(&env, ClientAuth::None, "someone", &hdr).await?;
        assert_invalid_grant(
            w.refresh(&env, ClientAuth::None, &d, &hdr).await,
            "a device session at header-login",
        );
        assert_invalid_grant(
            w.refresh(&env, p.auth(), &d, &hdr).await,
            "a device session at header-login, with its client",
        );
        assert_invalid_grant(
            w.refresh(&env, p.auth(), &h, &dev).await,
            "a header session at device-credentials",
        );
        // The same profile under another contract name is another contract.
        let renamed = tollgate_core::service::SessionProfile {
            contract: "another-device-contract",
            ..device(policy)
        };
        assert_invalid_grant(
            w.refresh(&env, p.auth(), &d, &renamed).await,
            "a device session at a contract of another name",
        );
        // Nothing was revoked by the refusals: both work at home.
        assert!(
            w.refresh(&env, p.auth(), &d, &dev).await.is_ok(),
            "{policy:?}"
        );
        assert!(
            w.refresh(&env, ClientAuth::None, &h, &hdr).await.is_ok(),
            "{policy:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_refresh_token_of_client_a_is_refused_for_client_b() -> TestResult {
    let w = World::new().await?;
    let a = w.device_client("a").await?;
    let b = w.device_client("b").await?;
    let env = w.synced().await?;
    for policy in [RefreshPolicy::Reuse, RefreshPolicy::Rotate] {
        let profile = device(policy);
        let s = w.login(&env, a.auth(), "a-device", &profile).await?;
        assert_invalid_grant(
            w.refresh(&env, b.auth(), &s, &profile).await,
            "A's refresh token presented by B",
        );
        assert_invalid_grant(
            w.login(&env, b.auth(), "a-device", &profile).await,
            "A's user logging in through B",
        );
        // Refused, not revoked: A goes on.
        let next = w.refresh(&env, a.auth(), &s, &profile).await?;
        assert_eq!(next.client_id, a.id, "{policy:?}");
        // Nor can B end A's session by revoking its refresh token.
        let b_client = w.tg.authenticate(&env, &b.id, &b.secret).await?;
        w.tg.revoke(&env, &b_client, crate::rt(&next)).await?;
        assert!(
            w.refresh(&env, a.auth(), &next, &profile).await.is_ok(),
            "{policy:?}: still A's"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_session_is_bound_to_its_environment() -> TestResult {
    let w = World::new().await?;
    let p = w.device_client("tv").await?;
    // Staging: the same client id and secret, a user of the same name.
    w.tg.create_environment("staging", None, Alg::ES256, EnvSettings::default())
        .await?;
    w.tg.create_api(crate::api(
        "staging",
        "orders",
        &["read", "write"],
        &[],
        600,
    ))
    .await?;
    let mut twin = spec(
        "tv",
        &[("orders", &["read", "write"])],
        &[GrantType::DeviceCredentials],
    );
    twin.env = "staging".into();
    twin.client_id = Some(p.id.clone());
    twin.client_secret = Some(p.secret.clone());
    w.client(twin).await?;
    w.tg.create_user(
        "staging",
        &p.id,
        "tv-device",
        UserPassword::Md5Hex(md5(PIN)),
    )
    .await?;
    let default = w.synced().await?;
    let staging = w.tg.env("staging").ok_or("staging")?;
    for policy in [RefreshPolicy::Reuse, RefreshPolicy::Rotate] {
        let profile = device(policy);
        let here = w.login(&default, p.auth(), "tv-device", &profile).await?;
        let there = w.login(&staging, p.auth(), "tv-device", &profile).await?;
        assert_invalid_grant(
            w.refresh(&staging, p.auth(), &here, &profile).await,
            "default's session in staging",
        );
        assert_invalid_grant(
            w.refresh(&default, p.auth(), &there, &profile).await,
            "staging's session in default",
        );
        assert!(w.refresh(&default, p.auth(), &here, &profile).await.is_ok());
        let at_home = w.refresh(&staging, p.auth(), &there, &profile).await?;
        assert_eq!(
            w.claims(&staging, &at_home.access_token, "orders")?.iss,
            staging.issuer
        );
    }
    Ok(())
}
