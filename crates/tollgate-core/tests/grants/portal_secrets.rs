//! The portal's second factor, credentials pages' services and secret
//! handovers over the memory store: TOTP enrolment confirmed by a code,
//! sign-in with a code (window, replay, failures towards the lock),
//! disabling with a code; refresh JWTs and API keys only for owned
//! clients, usable at once; a handover opened once.

use secrecy::{ExposeSecret, SecretString};
use tollgate_core::crypto::totp;
use tollgate_core::model::DEFAULT_ENV;
use tollgate_core::partner::Offer;
use tollgate_core::service::ClaimShape;
use tollgate_core::service::portal::{MAX_FAILURES, PortalError, SignedIn};
use tollgate_core::service::portal_totp::{SignIn, TotpState};
use tollgate_core::time::now;
use tollgate_testkit::TestResult;

use crate::World;

const PW: &str = "correct horse battery";

/// Partner `acme` offered `orders`/`basic`, with account `jane` signed in.
async fn signed_in(w: &World) -> TestResult<SignedIn> {
    w.tg.create_partner(
        "acme",
        "Acme",
        vec![Offer {
            env: DEFAULT_ENV.into(),
            api: "orders".into(),
            package: "basic".into(),
        }],
    )
    .await?;
    let (token, _) = w.tg.invite_partner("acme", 3600).await?;
    let session =
        w.tg.accept_invitation(token.expose_secret(), "jane", &SecretString::from(PW))
            .await?;
    Ok(w.tg
        .portal_session(session.expose_secret())
        .await?
        .ok_or("signed in")?)
}

/// The code an app shows `steps` steps from now.
fn code(secret: &[u8], steps: i64) -> TestResult<String> {
    Ok(totp::code(secret, now() + steps * totp::STEP)?)
}

/// A well-formed code that no step of the window has: a later step's.
fn wrong(secret: &[u8]) -> TestResult<String> {
    let window = [code(secret, -1)?, code(secret, 0)?, code(secret, 1)?];
    for steps in 5..100 {
        let c = code(secret, steps)?;
        if !window.contains(&c) {
            return Ok(c);
        }
    }
    Err("no wrong code found".into())
}

async fn ticket(w: &World) -> TestResult<String> {
    match w.tg.portal_sign_in("jane", &SecretString::from(PW)).await? {
        SignIn::Code(t) => Ok(t.expose_secret().to_string()),
        SignIn::Session(_) => Err("a code should have been asked for".into()),
    }
}

#[tokio::test]
async fn totp_enrolment_sign_in_replay_window_lock_and_disable() -> TestResult {
    let w = World::new().await?;
    let who = signed_in(&w).await?;
    assert_eq!(w.tg.totp_state("jane").await?, TotpState::Off);
    assert!(matches!(
        w.tg.portal_sign_in("jane", &SecretString::from(PW)).await?,
        SignIn::Session(_)
    ));

    let e = w.tg.begin_totp(&who).await?;
    let secret = totp::from_base32(e.base32.expose_secret()).ok_or("base32")?;
    assert_eq!(secret.len(), totp::SECRET_LEN);
    assert!(
        e.uri
            .expose_secret()
            .starts_with("otpauth://totp/tollgate%20Acme:jane?secret=")
    );
    assert_eq!(w.tg.totp_state("jane").await?, TotpState::Pending);
    // Pending: sign-in does not ask yet; the page can show it again.
    assert!(matches!(
        w.tg.portal_sign_in("jane", &SecretString::from(PW)).await?,
        SignIn::Session(_)
    ));
    let shown = w.tg.pending_totp(&who).await?.ok_or("pending")?;
    assert_eq!(shown.base32.expose_secret(), e.base32.expose_secret());

    assert!(matches!(
        w.tg.confirm_totp(&who, &wrong(&secret)?).await,
        Err(PortalError::BadCode)
    ));
    w.tg.confirm_totp(&who, &code(&secret, 0)?).await?;
    assert_eq!(w.tg.totp_state("jane").await?, TotpState::On);
    assert!(w.tg.pending_totp(&who).await?.is_none());
    assert!(w.tg.begin_totp(&who).await.is_err(), "turn it off first");

    // The plain password sign-in is refused from now on.
    assert!(matches!(
        w.tg.portal_login("jane", &SecretString::from(PW)).await,
        Err(PortalError::CodeRequired)
    ));
    // The code used to confirm is spent: a replay is refused.
    let t = ticket(&w).await?;
    assert!(matches!(
        w.tg.portal_sign_in_code(&t, &code(&secret, 0)?).await,
        Err(PortalError::BadCode)
    ));
    // The next step's code (clock drift of one step) works, once.
    let session = w.tg.portal_sign_in_code(&t, &code(&secret, 1)?).await?;
    assert!(
        w.tg.portal_session(session.expose_secret())
            .await?
            .is_some()
    );
    assert!(matches!(
        w.tg.portal_sign_in_code(&t, &code(&secret, 1)?).await,
        Err(PortalError::BadCode)
    ));
    // Two steps ahead is outside the window.
    assert!(matches!(
        w.tg.portal_sign_in_code(&t, &code(&secret, 2)?).await,
        Err(PortalError::BadCode)
    ));
    // A forged ticket gets nowhere.
    assert!(matches!(
        w.tg.portal_sign_in_code("forged", &code(&secret, 2)?).await,
        Err(PortalError::BadCode)
    ));

    // Disabling needs a current code; a wrong one counts towards the lock.
    assert!(matches!(
        w.tg.disable_totp(&who, &wrong(&secret)?).await,
        Err(PortalError::BadCode)
    ));
    assert_eq!(w.tg.totp_state("jane").await?, TotpState::On);

    // Wrong codes lock the account like wrong passwords: three failures
    // counted above (the replay, the step outside the window, the wrong
    // code to turn it off); a correct password in between resets nothing.
    for _ in 3..MAX_FAILURES {
        let t = ticket(&w).await?;
        assert!(matches!(
            w.tg.portal_sign_in_code(&t, &wrong(&secret)?).await,
            Err(PortalError::BadCode)
        ));
    }
    assert!(matches!(
        w.tg.portal_sign_in("jane", &SecretString::from(PW)).await,
        Err(PortalError::Locked { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn totp_off_with_a_current_code() -> TestResult {
    let w = World::new().await?;
    let who = signed_in(&w).await?;
    let e = w.tg.begin_totp(&who).await?;
    let secret = totp::from_base32(e.base32.expose_secret()).ok_or("base32")?;
    w.tg.confirm_totp(&who, &code(&secret, -1)?).await?;
    w.tg.disable_totp(&who, &code(&secret, 0)?).await?;
    assert_eq!(w.tg.totp_state("jane").await?, TotpState::Off);
    assert!(matches!(
        w.tg.portal_sign_in("jane", &SecretString::from(PW)).await?,
        SignIn::Session(_)
    ));
    Ok(())
}

#[tokio::test]
async fn refresh_jwts_and_api_keys_for_owned_clients_only() -> TestResult {
    let w = World::new().await?;
    let who = signed_in(&w).await?;
    let p = &who.partner;
    let offer = p.offers.clone();
    let (client, _) =
        w.tg.partner_create_client(p, DEFAULT_ENV, "app", &offer)
            .await?;
    let id = client.client_id.as_str();
    let other = w.tg.create_partner("beta", "Beta", vec![]).await?;

    // A refresh JWT: minted, exchanged at once, listed, revoked.
    let (rj, rec) =
        w.tg.partner_issue_refresh_jwt(p, DEFAULT_ENV, id, None, 3600)
            .await?;
    assert_eq!(rec.audience, "orders");
    let env = w.synced().await?;
    w.tg.exchange_refresh_jwt(&env, rj.expose_secret(), 60, ClaimShape::Rfc9068)
        .await?;
    assert_eq!(
        w.tg.partner_refresh_jwts(p, DEFAULT_ENV, id).await?.len(),
        1
    );
    assert!(matches!(
        w.tg.partner_issue_refresh_jwt(&other, DEFAULT_ENV, id, None, 3600)
            .await,
        Err(PortalError::NotYours)
    ));
    assert!(matches!(
        w.tg.partner_revoke_refresh_jwt(&other, DEFAULT_ENV, id, &rec.jti)
            .await,
        Err(PortalError::NotYours)
    ));
    assert!(
        w.tg.partner_issue_refresh_jwt(p, DEFAULT_ENV, id, None, 400 * 24 * 3600)
            .await
            .is_err(),
        "at most a year"
    );
    w.tg.partner_revoke_refresh_jwt(p, DEFAULT_ENV, id, &rec.jti)
        .await?;
    let env = w.synced().await?;
    assert!(
        w.tg.exchange_refresh_jwt(&env, rj.expose_secret(), 60, ClaimShape::Rfc9068)
            .await
            .is_err()
    );
    assert!(
        w.tg.partner_refresh_jwts(p, DEFAULT_ENV, id)
            .await?
            .is_empty()
    );

    // An API key: works at the gate's check, listed, revoked.
    let (key, k) =
        w.tg.partner_create_api_key(p, DEFAULT_ENV, id, Some("ci"), None)
            .await?;
    let env = w.synced().await?;
    let holder =
        w.tg.check_api_key(&env, key.expose_secret(), "orders", false)
            .await?;
    assert_eq!(holder.client_id, id);
    assert!(matches!(
        w.tg.partner_create_api_key(&other, DEFAULT_ENV, id, None, None)
            .await,
        Err(PortalError::NotYours)
    ));
    assert!(matches!(
        w.tg.partner_revoke_api_key(&other, DEFAULT_ENV, id, &k.id)
            .await,
        Err(PortalError::NotYours)
    ));
    assert_eq!(w.tg.partner_api_keys(p, DEFAULT_ENV, id).await?.len(), 1);

    // Rotation with a grace: both keys work until the old one's grace ends.
    assert!(matches!(
        w.tg.partner_rotate_api_key(&other, DEFAULT_ENV, id, &k.id, 60)
            .await,
        Err(PortalError::NotYours)
    ));
    assert!(
        w.tg.partner_rotate_api_key(p, DEFAULT_ENV, id, &k.id, 8 * 24 * 3600)
            .await
            .is_err(),
        "a grace of at most 7 days"
    );
    let (new_key, new, old) =
        w.tg.partner_rotate_api_key(p, DEFAULT_ENV, id, &k.id, 3600)
            .await?;
    assert_eq!(old.id, k.id);
    assert_eq!(new.name.as_deref(), Some("ci"));
    let env = w.synced().await?;
    for key in [&key, &new_key] {
        w.tg.check_api_key(&env, key.expose_secret(), "orders", false)
            .await?;
    }
    assert_eq!(w.tg.partner_api_keys(p, DEFAULT_ENV, id).await?.len(), 2);
    w.tg.partner_revoke_api_key(p, DEFAULT_ENV, id, &new.id)
        .await?;
    w.tg.partner_revoke_api_key(p, DEFAULT_ENV, id, &k.id)
        .await?;
    let env = w.synced().await?;
    assert!(
        w.tg.check_api_key(&env, key.expose_secret(), "orders", false)
            .await
            .is_err()
    );
    assert!(w.tg.partner_api_keys(p, DEFAULT_ENV, id).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_handover_link_opens_once() -> TestResult {
    let w = World::new().await?;
    let who = signed_in(&w).await?;
    let secret = SecretString::from("s3cret-value");
    assert!(
        w.tg.partner_handover(&who.partner, "x", &secret, 0)
            .await
            .is_err()
    );
    let (token, h) =
        w.tg.partner_handover(&who.partner, "Client secret of app", &secret, 600)
            .await?;
    assert!(!h.sealed.contains("s3cret"), "stored sealed");
    assert_ne!(h.digest, token.expose_secret(), "stored as a digest");
    assert_eq!(h.expires_at - h.created_at, 600);
    let seen = w.tg.peek_handover(token.expose_secret()).await?;
    assert_eq!(seen.label, "Client secret of app");
    let (opened, got) = w.tg.open_handover(token.expose_secret()).await?;
    assert_eq!(got.expose_secret(), "s3cret-value");
    assert_eq!(opened.partner, "acme");
    assert!(matches!(
        w.tg.open_handover(token.expose_secret()).await,
        Err(PortalError::LinkUnusable)
    ));
    assert!(matches!(
        w.tg.peek_handover(token.expose_secret()).await,
        Err(PortalError::LinkUnusable)
    ));
    assert!(matches!(
        w.tg.open_handover("unknown").await,
        Err(PortalError::LinkUnusable)
    ));

    // A disabled partner's links do not open.
    let (token, _) =
        w.tg.partner_handover(&who.partner, "another", &secret, 600)
            .await?;
    w.tg.set_partner_enabled("acme", false).await?;
    assert!(matches!(
        w.tg.peek_handover(token.expose_secret()).await,
        Err(PortalError::LinkUnusable)
    ));
    assert!(matches!(
        w.tg.open_handover(token.expose_secret()).await,
        Err(PortalError::LinkUnusable)
    ));
    Ok(())
}
