//! RFC 6749 §4.4 client_credentials: claims, shapes, scope, audience, client
//! authentication, imported and rotated secrets.

use secrecy::SecretString;
use serde_json::json;
use tollgate_core::GrantError;
use tollgate_core::model::{DEFAULT_ENV, GrantType};
use tollgate_core::service::{ClaimShape, ClientCredentials, EnvRuntime, Issued};
use tollgate_testkit::TestResult;

use crate::{BILLING_LIFETIME, ISSUER, ORDERS_LIFETIME, Partner, World, lifetime, spec};

/// `p`'s token for `audience`.
async fn to(
    w: &World,
    env: &EnvRuntime,
    p: &Partner,
    audience: &str,
) -> Result<Issued, GrantError> {
    let req = ClientCredentials {
        default_lifetime: 600,
        audience: Some(audience),
        ..p.cc()
    };
    w.tg.client_credentials(env, &req).await
}

#[tokio::test]
async fn issues_rfc9068_claims_for_the_only_api() -> TestResult {
    let w = World::new().await?;
    let mut s = spec("partner", &[("orders", &["basic", "write"])], &[]);
    s.extra_claims.insert("tenant".into(), json!("acme"));
    let p = w.client(s).await?;
    let env = w.synced().await?;

    let issued = w.tg.client_credentials(&env, &p.cc()).await?;
    assert_eq!(issued.audience, "orders");
    assert_eq!(issued.client_id, p.id);
    assert_eq!(issued.scope, "read write", "the package expanded, sorted");
    assert_eq!(issued.expires_in, 600);
    assert!(!issued.reused);
    assert!(issued.rate.is_none(), "no limit, no rate");

    let c = w.claims(&env, &issued.access_token, "orders")?;
    assert_eq!(c.iss, ISSUER);
    assert_eq!(env.issuer, ISSUER);
    assert_eq!(c.sub, p.id);
    assert_eq!(c.aud, json!("orders"));
    assert_eq!(c.client_id.as_deref(), Some(p.id.as_str()));
    assert_eq!(c.scope.as_deref(), Some("read write"));
    assert_eq!(lifetime(&c), ORDERS_LIFETIME);
    assert_eq!(c.exp, issued.expires_at);
    assert!(!c.jti.is_empty());
    assert_eq!(c.other.get("tenant"), Some(&json!("acme")), "extra claims");
    for absent in ["azp", "gty"] {
        assert!(!c.other.contains_key(absent), "{absent} is Auth0's");
    }
    // Another request: another token, another id.
    let again = w.tg.client_credentials(&env, &p.cc()).await?;
    let c2 = w.claims(&env, &again.access_token, "orders")?;
    assert_ne!(c2.jti, c.jti);
    // Not for another audience.
    assert!(
        w.tg.verify(&env, &issued.access_token, Some("billing"))
            .is_err()
    );
    Ok(())
}

#[tokio::test]
async fn a_client_lifetime_overrides_the_apis() -> TestResult {
    let w = World::new().await?;
    let mut s = spec(
        "short",
        &[("orders", &["read"]), ("billing", &["invoices"])],
        &[],
    );
    s.token_lifetime = Some(120);
    let short = w.client(s).await?;
    let env = w.synced().await?;
    for aud in ["orders", "billing"] {
        let req = ClientCredentials {
            default_lifetime: 600,
            audience: Some(aud),
            ..short.cc()
        };
        let issued = w.tg.client_credentials(&env, &req).await?;
        assert_eq!(issued.expires_in, 120, "{aud}");
        assert_eq!(lifetime(&w.claims(&env, &issued.access_token, aud)?), 120);
    }
    Ok(())
}

#[tokio::test]
async fn the_auth0_shape_names_the_client_at_clients_with_azp_and_gty() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec("partner", &[("orders", &["read"])], &[]))
        .await?;
    let env = w.synced().await?;
    let req = ClientCredentials {
        default_lifetime: 600,
        shape: ClaimShape::Auth0 {
            gty: "client-credentials",
        },
        ..p.cc()
    };
    let issued = w.tg.client_credentials(&env, &req).await?;
    let c = w.claims(&env, &issued.access_token, "orders")?;
    assert_eq!(c.sub, format!("{}@clients", p.id));
    assert_eq!(c.other.get("azp"), Some(&json!(p.id)));
    assert_eq!(c.other.get("gty"), Some(&json!("client-credentials")));
    assert_eq!(c.client_id.as_deref(), Some(p.id.as_str()));
    assert_eq!(c.scope.as_deref(), Some("read"));
    assert_eq!(lifetime(&c), ORDERS_LIFETIME);
    Ok(())
}

#[tokio::test]
async fn scope_narrows_and_an_unheld_permission_is_invalid_scope() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec("partner", &[("orders", &["basic", "write"])], &[]))
        .await?;
    let env = w.synced().await?;
    let ask = |scope| ClientCredentials {
        default_lifetime: 600,
        scope: Some(scope),
        ..p.cc()
    };
    for (asked, granted) in [
        ("read", "read"),
        ("write read", "read write"),
        ("read read", "read"),
        ("   ", "read write"),
    ] {
        let issued = w.tg.client_credentials(&env, &ask(asked)).await?;
        assert_eq!(issued.scope, granted, "asked '{asked}'");
        let c = w.claims(&env, &issued.access_token, "orders")?;
        assert_eq!(c.scope.as_deref(), Some(granted), "asked '{asked}'");
    }
    for (asked, missing) in [
        ("read admin", "admin"),
        ("invoices", "invoices"),
        ("nope write", "nope"),
    ] {
        assert_eq!(
            w.tg.client_credentials(&env, &ask(asked)).await.err(),
            Some(GrantError::InvalidScope(missing.into())),
            "asked '{asked}'"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_audience_must_exist_be_granted_and_be_named_among_several() -> TestResult {
    let w = World::new().await?;
    let one = w.client(spec("one", &[("orders", &["read"])], &[])).await?;
    let two = w
        .client(spec(
            "two",
            &[("orders", &["read"]), ("billing", &["invoices"])],
            &[],
        ))
        .await?;
    let none = w.client(spec("none", &[], &[])).await?;
    let env = w.synced().await?;
    assert_eq!(
        to(&w, &env, &one, "nope").await.err(),
        Some(GrantError::UnknownAudience("nope".into()))
    );
    assert_eq!(
        to(&w, &env, &one, "billing").await.err(),
        Some(GrantError::AudienceNotGranted("billing".into()))
    );
    assert!(matches!(
        w.tg.client_credentials(&env, &two.cc()).await,
        Err(GrantError::AudienceRequired(_))
    ));
    assert!(matches!(
        w.tg.client_credentials(&env, &none.cc()).await,
        Err(GrantError::AudienceRequired(_))
    ));
    let billing = to(&w, &env, &two, "billing").await?;
    assert_eq!(billing.audience, "billing");
    let c = w.claims(&env, &billing.access_token, "billing")?;
    assert_eq!(c.scope.as_deref(), Some("invoices"));
    assert_eq!(lifetime(&c), BILLING_LIFETIME, "the API's own lifetime");
    let orders = to(&w, &env, &two, "orders").await?;
    assert_eq!(orders.scope, "read");
    Ok(())
}

#[tokio::test]
async fn wrong_secret_unknown_client_and_disabled_client_are_all_invalid_client() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec("partner", &[("orders", &["read"])], &[]))
        .await?;
    let env = w.synced().await?;
    assert!(w.tg.client_credentials(&env, &p.cc()).await.is_ok());

    let generated_shape = SecretString::from("A".repeat(43));
    let other_shape = SecretString::from("not-the-secret");
    let empty = SecretString::from("");
    for (what, secret) in [
        ("a wrong secret in the generated shape", &generated_shape),
        ("a wrong secret in another shape (argon2id)", &other_shape),
        ("an empty secret", &empty),
    ] {
        let req = ClientCredentials {
            default_lifetime: 600,
            client_secret: secret,
            ..p.cc()
        };
        assert_eq!(
            w.tg.client_credentials(&env, &req).await.err(),
            Some(GrantError::InvalidClient),
            "{what}"
        );
    }
    let unknown = ClientCredentials {
        default_lifetime: 600,
        client_id: "nobody",
        ..p.cc()
    };
    assert_eq!(
        w.tg.client_credentials(&env, &unknown).await.err(),
        Some(GrantError::InvalidClient),
        "an unknown client"
    );
    // Another client's (right) secret is not this client's.
    let q = w
        .client(spec("other", &[("orders", &["read"])], &[]))
        .await?;
    let env = w.synced().await?;
    let swapped = ClientCredentials {
        default_lifetime: 600,
        client_secret: &q.secret,
        ..p.cc()
    };
    assert_eq!(
        w.tg.client_credentials(&env, &swapped).await.err(),
        Some(GrantError::InvalidClient),
        "another client's secret"
    );

    w.tg.set_client_enabled(DEFAULT_ENV, &p.id, false).await?;
    let env = w.synced().await?;
    assert_eq!(
        w.tg.client_credentials(&env, &p.cc()).await.err(),
        Some(GrantError::InvalidClient),
        "a disabled client"
    );
    assert!(
        w.tg.authenticate(&env, &p.id, &p.secret).await.is_err(),
        "a disabled client does not authenticate"
    );
    w.tg.set_client_enabled(DEFAULT_ENV, &p.id, true).await?;
    let env = w.synced().await?;
    assert!(
        w.tg.client_credentials(&env, &p.cc()).await.is_ok(),
        "enabled again"
    );
    Ok(())
}

#[tokio::test]
async fn a_client_without_the_grant_is_unauthorized_client() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec(
            "devices-only",
            &[("orders", &["read"])],
            &[GrantType::DeviceCredentials],
        ))
        .await?;
    let env = w.synced().await?;
    assert_eq!(
        w.tg.client_credentials(&env, &p.cc()).await.err(),
        Some(GrantError::UnauthorizedClient("client_credentials".into()))
    );
    // Authentication comes first: a wrong secret is still InvalidClient.
    let wrong = SecretString::from("B".repeat(43));
    let req = ClientCredentials {
        default_lifetime: 600,
        client_secret: &wrong,
        ..p.cc()
    };
    assert_eq!(
        w.tg.client_credentials(&env, &req).await.err(),
        Some(GrantError::InvalidClient)
    );
    Ok(())
}

#[tokio::test]
async fn an_imported_secret_is_checked_with_argon2() -> TestResult {
    let w = World::new().await?;
    let mut s = spec("imported", &[("orders", &["read"])], &[]);
    s.client_id = Some("legacy-partner".into());
    s.client_secret = Some(SecretString::from("their old secret"));
    let p = w.client(s).await?;
    assert_eq!(p.id, "legacy-partner");
    let env = w.synced().await?;
    let issued = w.tg.client_credentials(&env, &p.cc()).await?;
    assert_eq!(
        w.claims(&env, &issued.access_token, "orders")?.sub,
        "legacy-partner"
    );
    // Remembered after a success, and still the same answer.
    assert!(w.tg.client_credentials(&env, &p.cc()).await.is_ok());
    let wrong = SecretString::from("their old secreT");
    let req = ClientCredentials {
        default_lifetime: 600,
        client_secret: &wrong,
        ..p.cc()
    };
    assert_eq!(
        w.tg.client_credentials(&env, &req).await.err(),
        Some(GrantError::InvalidClient)
    );
    Ok(())
}

#[tokio::test]
async fn a_rotated_secret_works_during_the_grace_and_not_after() -> TestResult {
    let w = World::new().await?;
    let old = w
        .client(spec("partner", &[("orders", &["read"])], &[]))
        .await?;
    let with = |secret| Partner {
        id: old.id.clone(),
        secret,
    };
    let (new, client) = w.tg.rotate_secret(DEFAULT_ENV, &old.id, 3_600).await?;
    assert_eq!(client.secrets.len(), 2);
    let new = with(new);
    let env = w.synced().await?;
    assert!(
        w.tg.client_credentials(&env, &old.cc()).await.is_ok(),
        "old, in grace"
    );
    assert!(
        w.tg.client_credentials(&env, &new.cc()).await.is_ok(),
        "new"
    );

    // The grace ended early: only the newest works.
    w.tg.revoke_all_but_newest_secret(DEFAULT_ENV, &old.id)
        .await?;
    let env = w.synced().await?;
    assert_eq!(
        w.tg.client_credentials(&env, &old.cc()).await.err(),
        Some(GrantError::InvalidClient),
        "old, after the grace"
    );
    assert!(w.tg.client_credentials(&env, &new.cc()).await.is_ok());

    // A rotation without grace: the previous secret stops at once.
    let (newest, _) = w.tg.rotate_secret(DEFAULT_ENV, &old.id, 0).await?;
    let newest = with(newest);
    let env = w.synced().await?;
    assert_eq!(
        w.tg.client_credentials(&env, &new.cc()).await.err(),
        Some(GrantError::InvalidClient),
        "grace 0"
    );
    assert!(w.tg.client_credentials(&env, &newest.cc()).await.is_ok());
    Ok(())
}
