//! API keys (the gate's `X-API-Key`): created and shown once, stored as a
//! keyed hash, listed without the key; checked for an audience from memory
//! once warm (client enabled, its permissions there, its `limit:` when
//! counted); revoked, expired, rotated with a grace.

use secrecy::ExposeSecret;
use tollgate_core::CoreError;
use tollgate_core::crypto::api_key;
use tollgate_core::model::{DEFAULT_ENV, Obligation};
use tollgate_core::service::ObligationTarget;
use tollgate_core::service::grants::api_key::ApiKeyError;
use tollgate_testkit::TestResult;

use crate::{World, spec};

/// Lookups of the API-key cache that went to the store so far.
fn key_misses(w: &World) -> u64 {
    w.tg.metrics
        .render(&[])
        .lines()
        .find(|l| {
            l.starts_with("tollgate_cache_lookups_total{")
                && l.contains("cache=\"api_key\"")
                && l.contains("result=\"miss\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_key_acts_for_its_client_with_its_permissions_from_memory() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec("partner", &[("orders", &["basic", "write"])], &[]))
        .await?;
    let (key, rec) =
        w.tg.create_api_key(DEFAULT_ENV, &p.id, Some("ci"), None)
            .await?;
    let k = key.expose_secret();
    assert!(k.starts_with(&format!("tgk_{}_", rec.id)));
    assert_eq!(rec.client_id, p.id);
    let (_, secret) = api_key::split(k).ok_or("the key's shape")?;
    assert!(!rec.digest.contains(secret), "stored hashed");
    let env = w.synced().await?;

    let holder = w.tg.check_api_key(&env, k, "orders", false).await?;
    assert_eq!(holder.client_id, p.id);
    assert_eq!(holder.key_id, rec.id);
    assert_eq!(
        holder.permissions.into_iter().collect::<Vec<_>>(),
        ["read", "write"],
        "the package expanded"
    );
    // Warm: checks read memory only.
    let misses = key_misses(&w);
    for _ in 0..5 {
        w.tg.check_api_key(&env, k, "orders", false).await?;
    }
    assert_eq!(key_misses(&w), misses, "a warm check went to the store");

    // Another audience the client does not hold; a wrong secret, an unknown
    // id, another environment, not a key at all.
    assert_eq!(
        w.tg.check_api_key(&env, k, "billing", false).await,
        Err(ApiKeyError::NotGranted("billing".into()))
    );
    let wrong = format!("tgk_{}_{}", rec.id, "A".repeat(api_key::SECRET_LEN));
    let unknown = format!("tgk_{}_{secret}", "B".repeat(api_key::ID_LEN));
    for bad in [wrong.as_str(), unknown.as_str(), "tgk_", "", &k[1..]] {
        assert_eq!(
            w.tg.check_api_key(&env, bad, "orders", false).await,
            Err(ApiKeyError::Invalid),
            "{bad}"
        );
    }
    w.tg.create_environment("stg", None, Default::default(), Default::default())
        .await?;
    let stg = w.synced_env("stg").await?;
    assert_eq!(
        w.tg.check_api_key(&stg, k, "orders", false).await,
        Err(ApiKeyError::Invalid)
    );

    // Listed without the key.
    let listed = w.tg.list_api_keys(DEFAULT_ENV, Some(&p.id)).await?;
    assert_eq!(listed, std::slice::from_ref(&rec));
    assert!(!format!("{listed:?}").contains(secret));
    Ok(())
}

#[tokio::test]
async fn revoked_expired_and_disabled_are_refused_after_a_sync() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec("partner", &[("orders", &["read"])], &[]))
        .await?;
    let (key, rec) = w.tg.create_api_key(DEFAULT_ENV, &p.id, None, None).await?;
    let k = key.expose_secret();
    let env = w.synced().await?;
    w.tg.check_api_key(&env, k, "orders", false).await?;

    // Disabled client (a change elsewhere: seen at the sync).
    w.tg.set_client_enabled(DEFAULT_ENV, &p.id, false).await?;
    let env = w.synced().await?;
    assert_eq!(
        w.tg.check_api_key(&env, k, "orders", false).await,
        Err(ApiKeyError::ClientDisabled)
    );
    w.tg.set_client_enabled(DEFAULT_ENV, &p.id, true).await?;
    let env = w.synced().await?;
    w.tg.check_api_key(&env, k, "orders", false).await?;

    // Revoked by the whole key, as an operator pastes a leaked one.
    let revoked = w.tg.revoke_api_key(DEFAULT_ENV, k).await?;
    assert_eq!(revoked.id, rec.id);
    let env = w.synced().await?;
    assert_eq!(
        w.tg.check_api_key(&env, k, "orders", false).await,
        Err(ApiKeyError::Revoked)
    );
    assert!(matches!(
        w.tg.revoke_api_key(DEFAULT_ENV, &rec.id).await,
        Err(CoreError::NotFound { .. })
    ));

    // Expired: a key made to live 0 s.
    let (short, _) =
        w.tg.create_api_key(DEFAULT_ENV, &p.id, None, Some(0))
            .await?;
    let env = w.synced().await?;
    assert_eq!(
        w.tg.check_api_key(&env, short.expose_secret(), "orders", false)
            .await,
        Err(ApiKeyError::Expired)
    );

    // Deleting the client revokes its keys.
    let (kept, _) = w.tg.create_api_key(DEFAULT_ENV, &p.id, None, None).await?;
    w.tg.delete_client(DEFAULT_ENV, &p.id).await?;
    let env = w.synced().await?;
    assert_eq!(
        w.tg.check_api_key(&env, kept.expose_secret(), "orders", false)
            .await,
        Err(ApiKeyError::Revoked)
    );
    assert!(matches!(
        w.tg.create_api_key(DEFAULT_ENV, &p.id, None, None).await,
        Err(CoreError::NotFound { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn rotation_keeps_the_old_key_for_the_grace_only() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec("partner", &[("orders", &["read"])], &[]))
        .await?;
    let (old_key, old) =
        w.tg.create_api_key(DEFAULT_ENV, &p.id, Some("ci"), Some(86_400))
            .await?;

    // With a grace: both work.
    let (new_key, new, old_after) =
        w.tg.rotate_api_key(DEFAULT_ENV, &old.id, 3600, None)
            .await?;
    assert_ne!(new.id, old.id);
    assert_eq!(new.name.as_deref(), Some("ci"));
    assert_eq!(new.client_id, p.id);
    let lifetime = new.expires_at.ok_or("the new key expires")? - new.created_at;
    assert_eq!(lifetime, 86_400, "the old key's lifetime again");
    let grace_end = old_after.expires_at.ok_or("the old key expires")?;
    assert!(grace_end <= new.created_at + 3600);
    let env = w.synced().await?;
    for k in [&old_key, &new_key] {
        w.tg.check_api_key(&env, k.expose_secret(), "orders", false)
            .await?;
    }
    // A second rotation cannot stretch the grace.
    let (_, _, again) =
        w.tg.rotate_api_key(DEFAULT_ENV, &old.id, 86_400 * 30, Some(60))
            .await?;
    assert_eq!(again.expires_at, Some(grace_end));

    // Without a grace: the old one stops at once.
    let (newest_key, newest, _) = w.tg.rotate_api_key(DEFAULT_ENV, &new.id, 0, None).await?;
    let env = w.synced().await?;
    assert_eq!(
        w.tg.check_api_key(&env, new_key.expose_secret(), "orders", false)
            .await,
        Err(ApiKeyError::Expired)
    );
    w.tg.check_api_key(&env, newest_key.expose_secret(), "orders", false)
        .await?;
    // A key that no longer works is not rotated.
    assert!(matches!(
        w.tg.rotate_api_key(DEFAULT_ENV, &new.id, 0, None).await,
        Err(CoreError::Invalid { .. })
    ));
    assert_eq!(
        w.tg.list_api_keys(DEFAULT_ENV, None)
            .await?
            .iter()
            .filter(|k| k.id == newest.id)
            .count(),
        1
    );
    Ok(())
}

#[tokio::test]
async fn a_limit_counts_key_calls_only_when_asked() -> TestResult {
    let w = World::new().await?;
    let p = w
        .client(spec("partner", &[("orders", &["read"])], &[]))
        .await?;
    w.tg.set_obligation(
        DEFAULT_ENV,
        ObligationTarget::Client(&p.id),
        Some(Obligation::Limit {
            max: 2,
            window: 10 * 365 * 86_400,
        }),
    )
    .await?;
    let (key, _) = w.tg.create_api_key(DEFAULT_ENV, &p.id, None, None).await?;
    let k = key.expose_secret();
    let env = w.synced().await?;
    for _ in 0..5 {
        let h = w.tg.check_api_key(&env, k, "orders", false).await?;
        assert_eq!(h.rate, None, "not counted");
    }
    let first = w.tg.check_api_key(&env, k, "orders", true).await?;
    assert_eq!(first.rate.map(|r| r.remaining), Some(1));
    w.tg.check_api_key(&env, k, "orders", true).await?;
    match w.tg.check_api_key(&env, k, "orders", true).await {
        Err(ApiKeyError::RateLimited(info)) => {
            assert_eq!((info.limit, info.remaining), (2, 0));
        }
        other => return Err(format!("expected the limit, got {other:?}").into()),
    }
    Ok(())
}
