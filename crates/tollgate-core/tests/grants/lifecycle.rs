//! What provisioning does to grants already given: deleting a client, a new
//! password, deleting a user.

use secrecy::{ExposeSecret, SecretString};
use tollgate_core::model::{DEFAULT_ENV, GrantType};
use tollgate_core::service::{ClaimShape, EnvRuntime, RefreshPolicy, UserPassword};
use tollgate_testkit::TestResult;

use crate::{World, assert_invalid_grant, device, md5, spec};

#[tokio::test]
async fn deleting_a_client_ends_its_sessions_and_refresh_jwts_even_if_its_id_comes_back()
-> TestResult {
    let w = World::new().await?;
    let grants = [GrantType::ClientCredentials, GrantType::DeviceCredentials];
    let p = w
        .client(spec("partner", &[("orders", &["read"])], &grants))
        .await?;
    w.user(&p.id, "device-1").await?;
    let (rj, _) =
        w.tg.issue_refresh_jwt(DEFAULT_ENV, &p.id, None, 3_600)
            .await?;
    let env = w.synced().await?;
    let (reuse, rotate) = (device(RefreshPolicy::Reuse), device(RefreshPolicy::Rotate));
    let kept = w.login(&env, p.auth(), "device-1", &reuse).await?;
    let rotated = w.login(&env, p.auth(), "device-1", &rotate).await?;
    // Used once each, so that the caches hold them.
    w.refresh(&env, p.auth(), &kept, &reuse).await?;
    let rotated = w.refresh(&env, p.auth(), &rotated, &rotate).await?;
    w.tg.exchange_refresh_jwt(&env, rj.expose_secret(), 60, ClaimShape::Rfc9068)
        .await?;

    w.tg.delete_client(DEFAULT_ENV, &p.id).await?;
    let env = w.synced().await?;
    let check = async |env: &EnvRuntime, what: &str| {
        assert_invalid_grant(
            w.tg.exchange_refresh_jwt(env, rj.expose_secret(), 60, ClaimShape::Rfc9068)
                .await,
            &format!("the refresh JWT, {what}"),
        );
        // Presented by id alone: the client is gone, its secret with it.
        let by_id = tollgate_core::service::ClientAuth::Public { id: &p.id };
        for (s, profile) in [(&kept, &reuse), (&rotated, &rotate)] {
            assert!(
                w.refresh(env, p.auth(), s, profile).await.is_err(),
                "{what}: a session, with its client's credentials"
            );
            assert!(
                w.refresh(env, by_id, s, profile).await.is_err(),
                "{what}: a session, by client id"
            );
        }
    };
    check(&env, "client deleted").await;
    assert!(
        w.tg.list_users(DEFAULT_ENV, Some(&p.id)).await?.is_empty(),
        "its users went too"
    );

    // The same id and secret, the same user name: a new client that must not
    // inherit anything.
    let mut again = spec("partner", &[("orders", &["read"])], &grants);
    again.client_id = Some(p.id.clone());
    again.client_secret = Some(p.secret.clone());
    w.client(again).await?;
    w.user(&p.id, "device-1").await?;
    let env = w.synced().await?;
    check(&env, "id re-created").await;
    for (s, profile) in [(&kept, &reuse), (&rotated, &rotate)] {
        assert_invalid_grant(
            w.refresh(&env, p.auth(), s, profile).await,
            "an old session under the re-created client",
        );
    }
    assert!(
        w.tg.list_refresh_jwts(DEFAULT_ENV).await?[0]
            .revoked_at
            .is_some()
    );
    // The new client works on its own.
    let fresh = w.login(&env, p.auth(), "device-1", &rotate).await?;
    assert!(w.refresh(&env, p.auth(), &fresh, &rotate).await.is_ok());
    assert!(w.tg.client_credentials(&env, &p.cc()).await.is_ok());
    Ok(())
}

#[tokio::test]
async fn a_new_password_ends_the_users_sessions_unless_kept() -> TestResult {
    let w = World::new().await?;
    let p = w.device_client("tv").await?;
    let env = w.synced().await?;
    let (reuse, rotate) = (device(RefreshPolicy::Reuse), device(RefreshPolicy::Rotate));
    let a = w.login(&env, p.auth(), "tv-device", &reuse).await?;
    let b = w.login(&env, p.auth(), "tv-device", &rotate).await?;
    w.refresh(&env, p.auth(), &a, &reuse).await?;

    let new_pw = SecretString::from("new-pin");
    w.tg.set_user_password(
        DEFAULT_ENV,
        "tv-device",
        UserPassword::Plain(new_pw.clone()),
        true,
    )
    .await?;
    let env = w.synced().await?;
    assert!(
        w.refresh(&env, p.auth(), &a, &reuse).await.is_ok(),
        "kept (reuse)"
    );
    let b = w.refresh(&env, p.auth(), &b, &rotate).await?;
    // The old password no longer logs in, the new one does.
    assert_invalid_grant(
        w.login(&env, p.auth(), "tv-device", &reuse).await,
        "old password",
    );
    let c =
        w.tg.login(
            &env,
            p.auth(),
            "tv-device",
            &md5(new_pw.expose_secret()),
            &reuse,
            None,
        )
        .await?;

    w.tg.set_user_password(
        DEFAULT_ENV,
        "tv-device",
        UserPassword::Plain(new_pw.clone()),
        false,
    )
    .await?;
    let env = w.synced().await?;
    assert_invalid_grant(w.refresh(&env, p.auth(), &a, &reuse).await, "ended (reuse)");
    assert_invalid_grant(
        w.refresh(&env, p.auth(), &b, &rotate).await,
        "ended (rotate)",
    );
    assert_invalid_grant(w.refresh(&env, p.auth(), &c, &reuse).await, "ended (new)");
    // Logging in again starts a new session.
    let d =
        w.tg.login(
            &env,
            p.auth(),
            "tv-device",
            &md5(new_pw.expose_secret()),
            &rotate,
            None,
        )
        .await?;
    assert!(w.refresh(&env, p.auth(), &d, &rotate).await.is_ok());
    Ok(())
}

#[tokio::test]
async fn deleting_a_user_ends_its_sessions() -> TestResult {
    let w = World::new().await?;
    let p = w.device_client("tv").await?;
    w.user(&p.id, "other-device").await?;
    let env = w.synced().await?;
    let profile = device(RefreshPolicy::Reuse);
    let gone = w.login(&env, p.auth(), "tv-device", &profile).await?;
    let stays = w.login(&env, p.auth(), "other-device", &profile).await?;
    w.tg.delete_user(DEFAULT_ENV, "tv-device").await?;
    let env = w.synced().await?;
    assert_invalid_grant(
        w.refresh(&env, p.auth(), &gone, &profile).await,
        "deleted user",
    );
    assert_invalid_grant(
        w.login(&env, p.auth(), "tv-device", &profile).await,
        "login",
    );
    assert!(w.refresh(&env, p.auth(), &stays, &profile).await.is_ok());
    // The same name again: the old session stays ended.
    w.user(&p.id, "tv-device").await?;
    let env = w.synced().await?;
    assert_invalid_grant(
        w.refresh(&env, p.auth(), &gone, &profile).await,
        "an old session of a re-created user",
    );
    Ok(())
}

/// Rotations in the second the current key was made (as a test or a
/// script does) each schedule a key strictly after the newest one: the
/// last rotated key is the one that signs once its second has come, never
/// an older key that tied with it and won on its kid.
#[tokio::test]
async fn rotations_within_one_second_each_take_the_next_second() -> TestResult {
    let w = World::new().await?;
    let mut rotated = Vec::new();
    for _ in 0..3 {
        rotated.push(w.tg.rotate_key(DEFAULT_ENV, 0).await?);
    }
    let keys = w.tg.list_keys().await?;
    let first = keys
        .iter()
        .filter(|(r, _)| r.env == DEFAULT_ENV)
        .map(|(r, _)| r)
        .find(|r| rotated.iter().all(|k| k.kid != r.kid))
        .ok_or("the key made at open")?;
    let mut before = first.activates_at;
    for k in &rotated {
        assert!(k.activates_at > before, "{} after {before}", k.activates_at);
        before = k.activates_at;
    }
    // In the schedule, the last rotated key is the last to take over.
    let last = keys
        .iter()
        .filter(|(r, _)| r.env == DEFAULT_ENV)
        .max_by_key(|(_, s)| s.activates_at)
        .ok_or("keys")?;
    assert_eq!(last.0.kid, rotated[2].kid);
    Ok(())
}
