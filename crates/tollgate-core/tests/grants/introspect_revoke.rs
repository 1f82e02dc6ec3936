//! RFC 7662 introspection and RFC 7009 revocation.

use secrecy::{ExposeSecret, SecretString};
use tollgate_core::GrantError;
use tollgate_core::model::{Capability, DEFAULT_ENV, GrantType};
use tollgate_core::service::{ClaimShape, EnvRuntime, Issued, RefreshPolicy};
use tollgate_testkit::TestResult;

use crate::{World, assert_invalid_grant, device, rt, spec};

/// Exchanges refresh JWT `rj` for a minute-long token.
async fn exchange(w: &World, env: &EnvRuntime, rj: &SecretString) -> Result<Issued, GrantError> {
    w.tg.exchange_refresh_jwt(env, rj.expose_secret(), 60, ClaimShape::Rfc9068)
        .await
}

#[tokio::test]
async fn introspection_shows_own_tokens_and_others_only_to_an_introspector() -> TestResult {
    let w = World::new().await?;
    let a = w.client(spec("a", &[("orders", &["read"])], &[])).await?;
    let b = w.client(spec("b", &[("orders", &["read"])], &[])).await?;
    let mut g = spec("gateway", &[], &[]);
    g.capabilities.insert(Capability::Introspect);
    let g = w.client(g).await?;
    let env = w.synced().await?;
    let (a_client, b_client, gateway) = (
        w.tg.authenticate(&env, &a.id, &a.secret).await?,
        w.tg.authenticate(&env, &b.id, &b.secret).await?,
        w.tg.authenticate(&env, &g.id, &g.secret).await?,
    );
    let token = w.tg.client_credentials(&env, &a.cc()).await?.access_token;

    let own =
        w.tg.introspect(&env, &a_client, &token)
            .await?
            .ok_or("A's own token is active for A")?;
    assert_eq!(own.sub, a.id);
    assert_eq!(own.client_id.as_deref(), Some(a.id.as_str()));
    assert_eq!(own.scope.as_deref(), Some("read"));
    assert!(
        w.tg.introspect(&env, &b_client, &token).await?.is_none(),
        "not B's business"
    );
    let seen =
        w.tg.introspect(&env, &gateway, &token)
            .await?
            .ok_or("active for an introspector")?;
    assert_eq!(seen.jti, own.jti);
    for junk in ["", "not.a.jwt", "a.b.c"] {
        assert!(
            w.tg.introspect(&env, &gateway, junk).await?.is_none(),
            "{junk:?}"
        );
    }
    // A refresh JWT is not an access token.
    let (rj, _) = w.tg.issue_refresh_jwt(DEFAULT_ENV, &a.id, None, 60).await?;
    assert!(
        w.tg.introspect(&env, &a_client, rj.expose_secret())
            .await?
            .is_none()
    );

    // Revoked: inactive for everyone, at once (no sync).
    w.tg.revoke(&env, &a_client, &token).await?;
    assert!(w.tg.is_revoked(&env, &own.jti).await?);
    assert!(w.tg.introspect(&env, &a_client, &token).await?.is_none());
    assert!(w.tg.introspect(&env, &gateway, &token).await?.is_none());
    // It still verifies as a JWT: only the deny list knows.
    assert!(w.tg.verify(&env, &token, Some("orders")).is_ok());
    Ok(())
}

#[tokio::test]
async fn a_deleted_or_disabled_clients_tokens_introspect_inactive() -> TestResult {
    let w = World::new().await?;
    let a = w.client(spec("a", &[("orders", &["read"])], &[])).await?;
    let mut g = spec("gateway", &[], &[]);
    g.capabilities.insert(Capability::Introspect);
    let g = w.client(g).await?;
    let env = w.synced().await?;
    let gateway = w.tg.authenticate(&env, &g.id, &g.secret).await?;
    let a_client = w.tg.authenticate(&env, &a.id, &a.secret).await?;
    let token = w.tg.client_credentials(&env, &a.cc()).await?.access_token;
    assert!(w.tg.introspect(&env, &gateway, &token).await?.is_some());

    w.tg.set_client_enabled(DEFAULT_ENV, &a.id, false).await?;
    let env = w.synced().await?;
    assert!(
        w.tg.introspect(&env, &gateway, &token).await?.is_none(),
        "its client disabled"
    );
    w.tg.set_client_enabled(DEFAULT_ENV, &a.id, true).await?;
    let env = w.synced().await?;
    assert!(
        w.tg.introspect(&env, &gateway, &token).await?.is_some(),
        "enabled again"
    );

    w.tg.delete_client(DEFAULT_ENV, &a.id).await?;
    let env = w.synced().await?;
    assert!(
        w.tg.introspect(&env, &gateway, &token).await?.is_none(),
        "its client deleted"
    );
    assert!(
        w.tg.introspect(&env, &a_client, &token).await?.is_none(),
        "asked by the deleted client itself (a caller read before)"
    );
    Ok(())
}

#[tokio::test]
async fn revoking_an_access_token() -> TestResult {
    let w = World::new().await?;
    let a = w.client(spec("a", &[("orders", &["read"])], &[])).await?;
    let b = w.client(spec("b", &[("orders", &["read"])], &[])).await?;
    let env = w.synced().await?;
    let a_client = w.tg.authenticate(&env, &a.id, &a.secret).await?;
    let b_client = w.tg.authenticate(&env, &b.id, &b.secret).await?;
    let token = w.tg.client_credentials(&env, &a.cc()).await?.access_token;
    let jti = w.claims(&env, &token, "orders")?.jti;

    // Another client's: answered as a success, and nothing happens.
    w.tg.revoke(&env, &b_client, &token).await?;
    assert!(!w.tg.is_revoked(&env, &jti).await?);
    assert!(w.tg.introspect(&env, &a_client, &token).await?.is_some());
    // Junk: a success too.
    w.tg.revoke(&env, &a_client, "not.a.jwt").await?;
    w.tg.revoke(&env, &a_client, "").await?;

    // Its own: denied at once; twice is fine.
    w.tg.revoke(&env, &a_client, &token).await?;
    assert!(w.tg.is_revoked(&env, &jti).await?);
    assert!(w.tg.introspect(&env, &a_client, &token).await?.is_none());
    w.tg.revoke(&env, &a_client, &token).await?;
    let env = w.synced().await?;
    assert!(
        w.tg.introspect(&env, &a_client, &token).await?.is_none(),
        "after a sync"
    );
    // Other tokens of the client are untouched.
    let other = w.tg.client_credentials(&env, &a.cc()).await?.access_token;
    assert!(w.tg.introspect(&env, &a_client, &other).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn revoking_a_session_refresh_token_ends_its_session() -> TestResult {
    let w = World::new().await?;
    let a = w.device_client("a").await?;
    let b = w.device_client("b").await?;
    let env = w.synced().await?;
    let a_client = w.tg.authenticate(&env, &a.id, &a.secret).await?;
    let b_client = w.tg.authenticate(&env, &b.id, &b.secret).await?;
    for policy in [RefreshPolicy::Reuse, RefreshPolicy::Rotate] {
        let profile = device(policy);
        let s = w.login(&env, a.auth(), "a-device", &profile).await?;
        // Refreshed once (under reuse the family is now cached).
        let s = w.refresh(&env, a.auth(), &s, &profile).await?;

        w.tg.revoke(&env, &b_client, rt(&s)).await?;
        let s = w.refresh(&env, a.auth(), &s, &profile).await?;

        w.tg.revoke(&env, &a_client, rt(&s)).await?;
        assert_invalid_grant(
            w.refresh(&env, a.auth(), &s, &profile).await,
            "revoked, before a sync",
        );
        let env = w.synced().await?;
        assert_invalid_grant(
            w.refresh(&env, a.auth(), &s, &profile).await,
            "revoked, after a sync",
        );
        // The session's access token is a token of A too, and lives on
        // until revoked itself.
        assert!(
            w.tg.introspect(&env, &a_client, &s.access_token)
                .await?
                .is_some()
        );
        w.tg.revoke(&env, &a_client, &s.access_token).await?;
        assert!(
            w.tg.introspect(&env, &a_client, &s.access_token)
                .await?
                .is_none()
        );
    }
    Ok(())
}

#[tokio::test]
async fn revoking_a_refresh_jwt() -> TestResult {
    let w = World::new().await?;
    let a = w
        .client(spec(
            "a",
            &[("orders", &["read"])],
            &[GrantType::ClientCredentials],
        ))
        .await?;
    let b = w.client(spec("b", &[("orders", &["read"])], &[])).await?;
    let (rj, rec) =
        w.tg.issue_refresh_jwt(DEFAULT_ENV, &a.id, None, 3_600)
            .await?;
    let env = w.synced().await?;
    let a_client = w.tg.authenticate(&env, &a.id, &a.secret).await?;
    let b_client = w.tg.authenticate(&env, &b.id, &b.secret).await?;
    exchange(&w, &env, &rj).await?;

    // Another client's: nothing happens.
    w.tg.revoke(&env, &b_client, rj.expose_secret()).await?;
    let env = w.synced().await?;
    assert!(exchange(&w, &env, &rj).await.is_ok(), "B cannot revoke A's");
    assert!(
        w.tg.list_refresh_jwts(DEFAULT_ENV).await?[0]
            .revoked_at
            .is_none()
    );

    // Its own: revoked in the store; refused from the next sync on.
    w.tg.revoke(&env, &a_client, rj.expose_secret()).await?;
    let listed = w.tg.list_refresh_jwts(DEFAULT_ENV).await?;
    assert_eq!(listed[0].jti, rec.jti);
    assert!(listed[0].revoked_at.is_some(), "revoked");
    let env = w.synced().await?;
    assert_invalid_grant(exchange(&w, &env, &rj).await, "revoked");
    Ok(())
}
