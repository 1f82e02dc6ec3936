//! User sessions: device login and refresh under both policies, header login,
//! refresh and logout.

use secrecy::SecretString;
use serde_json::json;
use tollgate_core::GrantError;
use tollgate_core::model::{DEFAULT_ENV, GrantType};
use tollgate_core::service::{ClientAuth, RefreshPolicy, SessionProfile, UserPassword};
use tollgate_testkit::TestResult;

use crate::{ISSUER, PIN, World, assert_invalid_grant, device, header, lifetime, md5, rt, spec};

#[tokio::test]
async fn device_login_gives_spring_claims_and_a_refresh_token() -> TestResult {
    let w = World::new().await?;
    let p = w.device_client("tv").await?;
    let env = w.synced().await?;
    let profile = device(RefreshPolicy::Reuse);
    let s = w.login(&env, p.auth(), "tv-device", &profile).await?;
    assert_eq!(
        (s.client_id.as_str(), s.username.as_str()),
        (p.id.as_str(), "tv-device")
    );
    assert_eq!(s.scope, "read write");
    assert!(s.expires_in() <= 900 && s.expires_in() >= 899);

    let c = w.claims(&env, &s.access_token, "orders")?;
    assert_eq!(c.iss, ISSUER);
    assert_eq!(c.sub, "tv-device");
    assert_eq!(c.aud, json!(["orders"]), "Spring: a list");
    assert_eq!(c.scope.as_deref(), Some("read write"));
    assert_eq!(c.client_id.as_deref(), Some(p.id.as_str()));
    assert_eq!(c.jti, s.access_jti);
    assert_eq!(c.exp, s.expires_at);
    assert_eq!(lifetime(&c), 900);
    assert_eq!(c.other.get("user_name"), Some(&json!("tv-device")));
    assert_eq!(c.other.get("device_id"), Some(&json!("tv-device")));
    assert_eq!(
        c.other.get("grant_type"),
        Some(&json!("device_credentials"))
    );
    assert_eq!(c.other.get("authorities"), Some(&json!(["read", "write"])));
    assert_ne!(rt(&s), s.access_token);
    // Its own client sees it active.
    let me = w.tg.authenticate(&env, &p.id, &p.secret).await?;
    assert!(w.tg.introspect(&env, &me, &s.access_token).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn device_refresh_under_reuse_keeps_the_refresh_token() -> TestResult {
    let w = World::new().await?;
    let p = w.device_client("tv").await?;
    let env = w.synced().await?;
    let profile = device(RefreshPolicy::Reuse);
    let s0 = w.login(&env, p.auth(), "tv-device", &profile).await?;
    let mut seen = vec![s0.access_jti.clone()];
    for round in 0..3 {
        let s = w.refresh(&env, p.auth(), &s0, &profile).await?;
        assert_eq!(
            rt(&s),
            rt(&s0),
            "round {round}: the same refresh token back"
        );
        assert!(
            !seen.contains(&s.access_jti),
            "round {round}: a new access token"
        );
        let c = w.claims(&env, &s.access_token, "orders")?;
        assert_eq!(c.jti, s.access_jti);
        assert_eq!(c.sub, "tv-device");
        assert_eq!(lifetime(&c), 900);
        seen.push(s.access_jti);
    }
    // After a sync (the family cache emptied) it still works.
    let env = w.synced().await?;
    let s = w.refresh(&env, p.auth(), &s0, &profile).await?;
    assert_eq!(rt(&s), rt(&s0));
    Ok(())
}

#[tokio::test]
async fn device_refresh_under_rotate_detects_reuse() -> TestResult {
    let w = World::new().await?;
    let p = w.device_client("tv").await?;
    let env = w.synced().await?;
    let profile = device(RefreshPolicy::Rotate);
    let s1 = w.login(&env, p.auth(), "tv-device", &profile).await?;
    let s2 = w.refresh(&env, p.auth(), &s1, &profile).await?;
    assert_ne!(rt(&s2), rt(&s1), "a new refresh token");
    assert_ne!(s2.access_jti, s1.access_jti);
    assert_eq!(
        w.claims(&env, &s2.access_token, "orders")?.jti,
        s2.access_jti
    );

    // s1 again within the leeway (a lost response): the same successor.
    let retry = w.refresh(&env, p.auth(), &s1, &profile).await?;
    assert_eq!(rt(&retry), rt(&s2), "the same successor");
    assert_eq!(retry.access_jti, s2.access_jti, "the same access token id");
    assert_eq!(retry.expires_at, s2.expires_at);

    // The successor moves on; s1 is now reuse: the family is revoked.
    let s3 = w.refresh(&env, p.auth(), &s2, &profile).await?;
    assert_ne!(rt(&s3), rt(&s2));
    assert_invalid_grant(w.refresh(&env, p.auth(), &s1, &profile).await, "s1 reused");
    assert_invalid_grant(
        w.refresh(&env, p.auth(), &s3, &profile).await,
        "the newest, family revoked",
    );
    assert_invalid_grant(
        w.refresh(&env, p.auth(), &s2, &profile).await,
        "s2, family revoked",
    );
    let metrics = w.tg.metrics.render(&[]);
    assert!(
        metrics.contains(r#"tollgate_refresh_reuse_total{contract="device-credentials"} 1"#),
        "{metrics}"
    );

    // Another login starts a new family, untouched.
    let other = w.login(&env, p.auth(), "tv-device", &profile).await?;
    assert!(w.refresh(&env, p.auth(), &other, &profile).await.is_ok());
    Ok(())
}

#[tokio::test]
async fn without_leeway_a_retry_is_reuse() -> TestResult {
    let w = World::new().await?;
    let p = w.device_client("tv").await?;
    let env = w.synced().await?;
    let profile = SessionProfile {
        retry_leeway: 0,
        ..device(RefreshPolicy::Rotate)
    };
    let s1 = w.login(&env, p.auth(), "tv-device", &profile).await?;
    let s2 = w.refresh(&env, p.auth(), &s1, &profile).await?;
    assert_invalid_grant(w.refresh(&env, p.auth(), &s1, &profile).await, "s1 again");
    assert_invalid_grant(
        w.refresh(&env, p.auth(), &s2, &profile).await,
        "the successor",
    );
    Ok(())
}

#[tokio::test]
async fn an_expired_refresh_token_is_expired_grant_under_both_policies() -> TestResult {
    let w = World::new().await?;
    let p = w.device_client("tv").await?;
    let env = w.synced().await?;
    for policy in [RefreshPolicy::Reuse, RefreshPolicy::Rotate] {
        // Expires the second it is issued.
        let profile = SessionProfile {
            refresh_lifetime: 0,
            ..device(policy)
        };
        let s = w.login(&env, p.auth(), "tv-device", &profile).await?;
        assert_eq!(
            w.refresh(&env, p.auth(), &s, &profile).await.err(),
            Some(GrantError::ExpiredGrant),
            "{policy:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn wrong_password_unknown_user_and_disabled_user_are_invalid_grant() -> TestResult {
    let w = World::new().await?;
    let p = w.device_client("tv").await?;
    let q = w.device_client("radio").await?;
    let env = w.synced().await?;
    let profile = device(RefreshPolicy::Reuse);
    let wrong = md5("0000");
    let plain = SecretString::from(PIN);
    for (what, user, password) in [
        ("wrong password", "tv-device", &wrong),
        ("the password not MD5-hashed", "tv-device", &plain),
        ("unknown user", "nobody", &md5(PIN)),
        ("a user of another client", "radio-device", &md5(PIN)),
    ] {
        assert_invalid_grant(
            w.tg.login(&env, p.auth(), user, password, &profile, None)
                .await,
            what,
        );
    }
    // The MD5 form is case-insensitive.
    let upper =
        SecretString::from(tollgate_core::crypto::secret::md5_hex(PIN).to_ascii_uppercase());
    let s =
        w.tg.login(&env, p.auth(), "tv-device", &upper, &profile, None)
            .await?;

    w.tg.set_user_enabled(DEFAULT_ENV, "tv-device", false)
        .await?;
    let env = w.synced().await?;
    assert_invalid_grant(
        w.login(&env, p.auth(), "tv-device", &profile).await,
        "disabled user",
    );
    assert_invalid_grant(
        w.refresh(&env, p.auth(), &s, &profile).await,
        "a disabled user's refresh",
    );
    // A suspension, not a reset: enabled again, the session goes on.
    w.tg.set_user_enabled(DEFAULT_ENV, "tv-device", true)
        .await?;
    let env = w.synced().await?;
    assert!(w.refresh(&env, p.auth(), &s, &profile).await.is_ok());
    assert!(
        w.login(&env, q.auth(), "radio-device", &profile)
            .await
            .is_ok()
    );
    Ok(())
}

#[tokio::test]
async fn a_user_imported_by_md5_logs_in() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec(
            "tv",
            &[("orders", &["read"])],
            &[GrantType::DeviceCredentials],
        ))
        .await?;
    w.tg.create_user(
        DEFAULT_ENV,
        &p.id,
        "imported",
        UserPassword::Md5Hex(md5(PIN)),
    )
    .await?;
    let env = w.synced().await?;
    let s = w
        .login(&env, p.auth(), "imported", &device(RefreshPolicy::Reuse))
        .await?;
    assert_eq!(s.username, "imported");
    Ok(())
}

#[tokio::test]
async fn a_public_client_logs_in_by_id_alone_a_confidential_one_needs_its_secret() -> TestResult {
    let w = World::new().await?;
    let mut s = spec(
        "app",
        &[("orders", &["read"])],
        &[GrantType::DeviceCredentials],
    );
    s.public = true;
    let public = w.client(s).await?;
    w.user(&public.id, "app-user").await?;
    let confidential = w.device_client("tv").await?;
    let env = w.synced().await?;
    let profile = device(RefreshPolicy::Rotate);

    let by_id = ClientAuth::Public { id: &public.id };
    let s = w.login(&env, by_id, "app-user", &profile).await?;
    assert_eq!(s.client_id, public.id);
    let empty = SecretString::from("");
    let empty_secret = ClientAuth::Secret {
        id: &public.id,
        secret: &empty,
    };
    let s = w.refresh(&env, empty_secret, &s, &profile).await?;
    assert!(
        w.refresh(&env, by_id, &s, &profile).await.is_ok(),
        "refresh by id"
    );
    // A public client has no secret to present.
    let made_up = SecretString::from("C".repeat(43));
    let with_secret = ClientAuth::Secret {
        id: &public.id,
        secret: &made_up,
    };
    assert_eq!(
        w.login(&env, with_secret, "app-user", &profile).await.err(),
        Some(GrantError::InvalidClient)
    );

    let wrong = SecretString::from("D".repeat(43));
    for (what, auth) in [
        (
            "by id alone",
            ClientAuth::Public {
                id: &confidential.id,
            },
        ),
        (
            "with an empty secret",
            ClientAuth::Secret {
                id: &confidential.id,
                secret: &empty,
            },
        ),
        (
            "with a wrong secret",
            ClientAuth::Secret {
                id: &confidential.id,
                secret: &wrong,
            },
        ),
        ("an unknown client", ClientAuth::Public { id: "nobody" }),
    ] {
        assert_eq!(
            w.login(&env, auth, "tv-device", &profile).await.err(),
            Some(GrantError::InvalidClient),
            "{what}"
        );
    }
    assert!(
        w.login(&env, confidential.auth(), "tv-device", &profile)
            .await
            .is_ok()
    );

    // A disabled public client is refused too.
    w.tg.set_client_enabled(DEFAULT_ENV, &public.id, false)
        .await?;
    let env = w.synced().await?;
    assert_eq!(
        w.login(&env, by_id, "app-user", &profile).await.err(),
        Some(GrantError::InvalidClient)
    );
    Ok(())
}

#[tokio::test]
async fn a_client_without_the_grant_is_unauthorized_client() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec("cc-only", &[("orders", &["read"])], &[]))
        .await?;
    w.user(&p.id, "someone").await?;
    let env = w.synced().await?;
    assert_eq!(
        w.login(&env, p.auth(), "someone", &device(RefreshPolicy::Reuse))
            .await
            .err(),
        Some(GrantError::UnauthorizedClient("device_credentials".into()))
    );
    assert_eq!(
        w.login(&env, ClientAuth::None, "someone", &header())
            .await
            .err(),
        Some(GrantError::UnauthorizedClient("password".into()))
    );
    Ok(())
}

#[tokio::test]
async fn header_login_refresh_rotates_and_logout_ends_the_family() -> TestResult {
    let w = World::new().await?;
    let mut s = spec("shop", &[("orders", &["basic"])], &[GrantType::Password]);
    s.extra_claims.insert("tenant".into(), json!("acme"));
    let p = w.client(s).await?;
    w.user(&p.id, "buyer@example.com").await?;
    let env = w.synced().await?;
    let profile = header();

    // No client presented: the user's own.
    let s1 = w
        .login(&env, ClientAuth::None, "buyer@example.com", &profile)
        .await?;
    assert_eq!(s1.client_id, p.id);
    let c = w.claims(&env, &s1.access_token, "orders")?;
    assert_eq!(c.sub, "buyer@example.com");
    assert_eq!(c.aud, json!("orders"), "RFC 9068: a string");
    assert_eq!(c.scope.as_deref(), Some("read"));
    assert_eq!(c.client_id.as_deref(), Some(p.id.as_str()));
    assert_eq!(c.other.get("tenant"), Some(&json!("acme")));
    assert!(!c.other.contains_key("user_name"), "not Spring's shape");
    assert_eq!(lifetime(&c), 300);

    let s2 = w.refresh(&env, ClientAuth::None, &s1, &profile).await?;
    assert_ne!(rt(&s2), rt(&s1), "rotated");
    assert_ne!(s2.access_jti, s1.access_jti);
    let s3 = w.refresh(&env, ClientAuth::None, &s2, &profile).await?;

    assert!(w.tg.logout(&env, rt(&s3), &profile).await?, "ended");
    assert!(
        !w.tg.logout(&env, rt(&s3), &profile).await?,
        "nothing left to end"
    );
    assert_invalid_grant(
        w.refresh(&env, ClientAuth::None, &s3, &profile).await,
        "after logout",
    );
    assert_invalid_grant(
        w.refresh(&env, ClientAuth::None, &s2, &profile).await,
        "an older token after logout",
    );
    assert!(!w.tg.logout(&env, "garbage", &profile).await?);
    // Logging in again starts over.
    let again = w
        .login(&env, ClientAuth::None, "buyer@example.com", &profile)
        .await?;
    assert!(
        w.refresh(&env, ClientAuth::None, &again, &profile)
            .await
            .is_ok()
    );

    // A disabled client's users cannot log in.
    w.tg.set_client_enabled(DEFAULT_ENV, &p.id, false).await?;
    let env = w.synced().await?;
    assert_invalid_grant(
        w.login(&env, ClientAuth::None, "buyer@example.com", &profile)
            .await,
        "a disabled client's user",
    );
    Ok(())
}

#[tokio::test]
async fn logout_under_reuse_ends_the_session_at_once() -> TestResult {
    let w = World::new().await?;
    let p = w.device_client("tv").await?;
    let env = w.synced().await?;
    let profile = device(RefreshPolicy::Reuse);
    let s = w.login(&env, p.auth(), "tv-device", &profile).await?;
    // Read once, so that the family is cached.
    w.refresh(&env, p.auth(), &s, &profile).await?;
    assert!(w.tg.logout(&env, rt(&s), &profile).await?);
    assert_invalid_grant(
        w.refresh(&env, p.auth(), &s, &profile).await,
        "before a sync",
    );
    let env = w.synced().await?;
    assert_invalid_grant(
        w.refresh(&env, p.auth(), &s, &profile).await,
        "after a sync",
    );
    Ok(())
}

#[tokio::test]
async fn a_device_token_cannot_log_out_a_header_session() -> TestResult {
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
    let dev = device(RefreshPolicy::Reuse);
    let hdr = header();
    let d = w.login(&env, p.auth(), "someone", &dev).await?;
    let h = w.login(&env, ClientAuth::None, "someone", &hdr).await?;

    assert!(
        !w.tg.logout(&env, rt(&d), &hdr).await?,
        "a device token at the header logout"
    );
    assert!(
        !w.tg.logout(&env, rt(&h), &dev).await?,
        "a header token at a device logout"
    );
    assert!(
        !w.tg.logout(&env, &h.access_token, &hdr).await?,
        "an access token is no refresh token"
    );
    // Both sessions go on.
    let h = w.refresh(&env, ClientAuth::None, &h, &hdr).await?;
    w.refresh(&env, p.auth(), &d, &dev).await?;
    // Each ends at home.
    assert!(w.tg.logout(&env, rt(&h), &hdr).await?);
    assert!(w.tg.logout(&env, rt(&d), &dev).await?);
    Ok(())
}

#[tokio::test]
async fn a_late_reuse_can_refuse_only_that_token() -> TestResult {
    let w = World::new().await?;
    let p = w.device_client("tv").await?;
    let env = w.synced().await?;
    let profile = SessionProfile {
        retry_leeway: 0,
        late_reuse: tollgate_core::service::LateReuse::RefuseToken,
        ..device(RefreshPolicy::Rotate)
    };
    let s1 = w.login(&env, p.auth(), "tv-device", &profile).await?;
    let s2 = w.refresh(&env, p.auth(), &s1, &profile).await?;
    assert_invalid_grant(w.refresh(&env, p.auth(), &s1, &profile).await, "s1 again");
    // The family lives on with its current token.
    let s3 = w.refresh(&env, p.auth(), &s2, &profile).await?;
    assert!(w.refresh(&env, p.auth(), &s3, &profile).await.is_ok());
    let metrics = w.tg.metrics.render(&[]);
    assert!(
        metrics
            .contains(r#"tollgate_refresh_reuse_refused_total{contract="device-credentials"} 1"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains("tollgate_refresh_reuse_total{"),
        "{metrics}"
    );
    Ok(())
}
