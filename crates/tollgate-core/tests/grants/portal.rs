//! The partner portal's domain over the memory store: an invitation used
//! once, sign-in and its lock, the CSRF token, clients created only from
//! offered packages and usable at once, rotation with a grace and the end
//! of it, and a disabled partner's clients refused.

use secrecy::{ExposeSecret, SecretString};
use tollgate_core::GrantError;
use tollgate_core::model::DEFAULT_ENV;
use tollgate_core::partner::Offer;
use tollgate_core::service::portal::{MAX_FAILURES, PortalError};
use tollgate_testkit::TestResult;

use crate::{Partner, World};

fn offer(api: &str, package: &str) -> Offer {
    Offer {
        env: DEFAULT_ENV.into(),
        api: api.into(),
        package: package.into(),
    }
}

#[tokio::test]
async fn a_partner_signs_up_creates_rotates_and_is_disabled() -> TestResult {
    let w = World::new().await?;
    assert!(
        w.tg.create_partner("acme", "Acme", vec![offer("orders", "nope")])
            .await
            .is_err(),
        "an offer names a package of the API"
    );
    let p =
        w.tg.create_partner("acme", "Acme", vec![offer("orders", "basic")])
            .await?;
    let (token, _) = w.tg.invite_partner("acme", 3600).await?;
    let (_, invited) = w.tg.usable_invitation(token.expose_secret()).await?;
    assert_eq!(invited.id, "acme");
    let pw = SecretString::from("correct horse battery");
    assert!(matches!(
        w.tg.accept_invitation(token.expose_secret(), "jane", &SecretString::from("short"))
            .await,
        Err(PortalError::Core(_))
    ));
    let session =
        w.tg.accept_invitation(token.expose_secret(), "jane", &pw)
            .await?;
    assert!(matches!(
        w.tg.accept_invitation(token.expose_secret(), "john", &pw)
            .await,
        Err(PortalError::InvitationUnusable)
    ));
    let signed =
        w.tg.portal_session(session.expose_secret())
            .await?
            .ok_or("signed in")?;
    assert_eq!(signed.account.login, "jane");
    let csrf = w.tg.portal_csrf(session.expose_secret());
    assert!(w.tg.portal_csrf_matches(session.expose_secret(), &csrf));
    assert!(!w.tg.portal_csrf_matches(session.expose_secret(), "forged"));
    assert!(!w.tg.portal_csrf_matches("another session", &csrf));

    // Only offered packages.
    assert!(
        w.tg.partner_create_client(&p, DEFAULT_ENV, "app", &[offer("orders", "write")])
            .await
            .is_err()
    );
    let (client, secret) =
        w.tg.partner_create_client(&p, DEFAULT_ENV, "app", &[offer("orders", "basic")])
            .await?;
    assert_eq!(w.tg.partner_clients("acme").await?.len(), 1);
    let old = Partner {
        id: client.client_id.clone(),
        secret,
    };
    let env = w.synced().await?;
    assert!(w.tg.client_credentials(&env, &old.cc()).await.is_ok());

    // Rotation with a grace: both work; ending the grace leaves the new one.
    let (new, _) =
        w.tg.partner_rotate_secret(&p, DEFAULT_ENV, &client.client_id, 3600)
            .await?;
    let new = Partner {
        id: client.client_id.clone(),
        secret: new,
    };
    let env = w.synced().await?;
    assert!(w.tg.client_credentials(&env, &old.cc()).await.is_ok());
    assert!(w.tg.client_credentials(&env, &new.cc()).await.is_ok());
    w.tg.partner_revoke_old_secrets(&p, DEFAULT_ENV, &client.client_id)
        .await?;
    let env = w.synced().await?;
    assert_eq!(
        w.tg.client_credentials(&env, &old.cc()).await.err(),
        Some(GrantError::InvalidClient)
    );
    assert!(w.tg.client_credentials(&env, &new.cc()).await.is_ok());

    // Another partner cannot touch it.
    let other = w.tg.create_partner("beta", "Beta", vec![]).await?;
    assert!(matches!(
        w.tg.partner_rotate_secret(&other, DEFAULT_ENV, &client.client_id, 0)
            .await,
        Err(PortalError::NotYours)
    ));

    // Sign-in; failures lock the account, even for the right password.
    let again = w.tg.portal_login("jane", &pw).await?;
    assert!(w.tg.portal_session(again.expose_secret()).await?.is_some());
    w.tg.portal_logout(again.expose_secret()).await?;
    assert!(w.tg.portal_session(again.expose_secret()).await?.is_none());
    assert!(matches!(
        w.tg.portal_login("nobody", &pw).await,
        Err(PortalError::BadCredentials)
    ));
    for _ in 0..MAX_FAILURES {
        assert!(matches!(
            w.tg.portal_login("jane", &SecretString::from("wrong password!"))
                .await,
            Err(PortalError::BadCredentials)
        ));
    }
    assert!(matches!(
        w.tg.portal_login("jane", &pw).await,
        Err(PortalError::Locked { .. })
    ));

    // Disabling the partner disables its client and ends its sessions.
    w.tg.set_partner_enabled("acme", false).await?;
    let env = w.synced().await?;
    assert_eq!(
        w.tg.client_credentials(&env, &new.cc()).await.err(),
        Some(GrantError::InvalidClient)
    );
    assert!(
        w.tg.portal_session(session.expose_secret())
            .await?
            .is_none()
    );
    w.tg.set_partner_enabled("acme", true).await?;
    let env = w.synced().await?;
    assert!(w.tg.client_credentials(&env, &new.cc()).await.is_ok());
    Ok(())
}
