//! The store contract and the core over it, without HTTP: over SQLite, and
//! over PostgreSQL when `TG_TEST_STORE=postgres` (fresh schema per test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use tollgate_core::crypto::master::MasterKey;
use tollgate_core::crypto::token::VerifyError;
use tollgate_core::model::{Api, ApiGrant, DEFAULT_ENV, GrantType, Obligation, RefreshFamily};
use tollgate_core::service::{ClaimShape, ClientCredentials, NewClient};
use tollgate_core::store::{Rotation, Store};
use tollgate_core::{GrantError, StoreError, Tollgate};
use tollgate_store::SqlStore;

/// A fresh, empty database: a file in a temporary directory, or over
/// PostgreSQL (`TG_TEST_STORE=postgres`) a new database dropped afterwards.
struct Fresh {
    url: String,
    dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl Fresh {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        if std::env::var("TG_TEST_STORE").as_deref() == Ok("postgres") {
            let base = std::env::var("TG_TEST_PG")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
            let tag = dir
                .path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_ascii_lowercase();
            let name = format!(
                "tg_store_{}_{}",
                std::process::id(),
                tag.replace(['.', '-'], "_")
            );
            psql(&base, &format!("CREATE DATABASE {name}"));
            Self {
                url: format!("{base}/{name}"),
                dir,
                pg: Some((base, name)),
            }
        } else {
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("tollgate.db").display()
            );
            Self { url, dir, pg: None }
        }
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        if let Some((base, name)) = &self.pg {
            psql(
                base,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

fn psql(base: &str, sql: &str) {
    let out = std::process::Command::new("psql")
        .arg(format!("{base}/test"))
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn store() -> (SqlStore, Fresh) {
    let fresh = Fresh::new();
    (SqlStore::open(&fresh.url).await.unwrap(), fresh)
}

fn api(identifier: &str) -> Api {
    Api {
        env: DEFAULT_ENV.into(),
        identifier: identifier.into(),
        permissions: ["read".to_string(), "write".to_string()]
            .into_iter()
            .collect(),
        packages: [(
            "basic".to_string(),
            ["read".to_string()].into_iter().collect(),
        )]
        .into_iter()
        .collect(),
        token_lifetime: 600,
        obligation: None,
        created_at: 0,
    }
}

#[tokio::test]
async fn mutations_bump_the_revision_and_conflicts_are_typed() {
    let (s, _dir) = store().await;
    let tg = Tollgate::open(
        Arc::new(s.clone()),
        &MasterKey::generate().unwrap(),
        "http://t",
    )
    .await
    .unwrap();
    let r0 = s.revision().await.unwrap();
    tg.create_api(api("orders")).await.unwrap();
    let r1 = s.revision().await.unwrap();
    assert!(r1 > r0);
    assert!(matches!(
        s.create_api(&api("orders")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.revision().await.unwrap(),
        r1,
        "a failed write does not bump"
    );
    assert!(!s.delete_api(DEFAULT_ENV, "nope").await.unwrap());
    assert_eq!(s.revision().await.unwrap(), r1, "a no-op does not bump");
    assert!(tg.sync().await.unwrap(), "the core notices the change");
    assert!(!tg.sync().await.unwrap());
}

#[tokio::test]
async fn core_issues_and_verifies_over_the_store() {
    let (s, _dir) = store().await;
    let master = MasterKey::generate().unwrap();
    let tg = Tollgate::open(Arc::new(s.clone()), &master, "http://t")
        .await
        .unwrap();
    tg.create_api(api("orders")).await.unwrap();
    let (client, secret) = tg
        .create_client(NewClient {
            env: DEFAULT_ENV.into(),
            name: "c".into(),
            client_id: None,
            client_secret: None,
            apis: vec![ApiGrant {
                api: "orders".into(),
                grants: vec!["basic".into()],
            }],
            grant_types: Default::default(),
            token_lifetime: None,
            extra_claims: Default::default(),
            capabilities: Default::default(),
            public: false,
            obligation: None,
        })
        .await
        .unwrap();
    let secret = secret.unwrap();
    // Stored as a keyed hash, never in clear.
    let stored = s
        .get_client(DEFAULT_ENV, &client.client_id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !serde_json::to_string(&stored.secrets)
            .unwrap()
            .contains(secret.expose_secret())
    );

    tg.sync().await.unwrap();
    let env = tg.env(DEFAULT_ENV).unwrap();
    let req = ClientCredentials {
        client_id: &client.client_id,
        client_secret: &secret,
        audience: None,
        scope: None,
        shape: ClaimShape::Rfc9068,
    };
    let issued = tg.client_credentials(&env, &req).await.unwrap();
    assert_eq!(issued.scope, "read");
    let claims = tg
        .verify(&env, &issued.access_token, Some("orders"))
        .unwrap();
    assert_eq!(claims.sub, client.client_id);
    assert_eq!(
        tg.verify(&env, &issued.access_token, Some("other"))
            .unwrap_err(),
        VerifyError::Invalid
    );
    assert_eq!(
        tg.verify(&env, "not.a.jwt", None).unwrap_err(),
        VerifyError::Malformed
    );
    let mut forged = issued.access_token.clone();
    forged.pop();
    forged.push(if issued.access_token.ends_with('A') {
        'B'
    } else {
        'A'
    });
    assert!(tg.verify(&env, &forged, None).is_err());

    // A second core over the same store (another instance) loads the same keys.
    let other = Tollgate::open(Arc::new(s.clone()), &master, "http://t")
        .await
        .unwrap();
    let other_env = other.env(DEFAULT_ENV).unwrap();
    assert!(other.verify(&other_env, &issued.access_token, None).is_ok());
    assert_eq!(other_env.jwks_json(), env.jwks_json());

    // Wrong secret and unknown client: the same error.
    let wrong = SecretString::from("x".repeat(43));
    let bad = ClientCredentials {
        client_secret: &wrong,
        ..req
    };
    assert_eq!(
        tg.client_credentials(&env, &bad).await.unwrap_err(),
        GrantError::InvalidClient
    );
    let unknown = ClientCredentials {
        client_id: "nobody",
        ..req
    };
    assert_eq!(
        tg.client_credentials(&env, &unknown).await.unwrap_err(),
        GrantError::InvalidClient
    );
}

/// Instances starting together against one fresh database all come up, and
/// the default environment gets exactly one key.
#[tokio::test]
async fn concurrent_first_starts_migrate_once() {
    let fresh = Fresh::new();
    assert!(fresh.dir.path().exists());
    let master = Arc::new(MasterKey::generate().unwrap());
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = fresh.url.clone();
        let master = master.clone();
        tasks.push(tokio::spawn(async move {
            let s = SqlStore::open(&url).await.unwrap();
            Tollgate::open(Arc::new(s), &master, "http://t")
                .await
                .map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let s = SqlStore::open(&fresh.url).await.unwrap();
    assert_eq!(s.list_environments().await.unwrap().len(), 1);
    assert_eq!(s.list_signing_keys().await.unwrap().len(), 1);
}

#[tokio::test]
async fn deny_list_is_idempotent_and_purged_after_expiry() {
    let (s, _fresh) = store().await;
    s.revoke_token("default", "jti-1", 100).await.unwrap();
    s.revoke_token("default", "jti-1", 100).await.unwrap();
    s.revoke_token("default", "jti-2", 300).await.unwrap();
    assert!(s.is_token_revoked("default", "jti-1").await.unwrap());
    assert!(!s.is_token_revoked("other", "jti-1").await.unwrap());
    assert_eq!(
        s.purge_expired(200).await.unwrap(),
        vec![
            ("revoked_tokens", 1),
            ("refresh_families", 0),
            ("refresh_jwts", 0)
        ]
    );
    assert!(!s.is_token_revoked("default", "jti-1").await.unwrap());
    assert!(s.is_token_revoked("default", "jti-2").await.unwrap());
    // Through the core (real time: jti-2 and jti-3 are long expired), the
    // purge's work shows in the metrics.
    s.revoke_token("default", "jti-3", 0).await.unwrap();
    let tg = Tollgate::open(
        Arc::new(s.clone()),
        &MasterKey::generate().unwrap(),
        "http://t",
    )
    .await
    .unwrap();
    assert_eq!(tg.purge_expired().await.unwrap(), 2);
    assert!(
        tg.metrics
            .render(&[])
            .contains("tollgate_purged_rows_total{table=\"revoked_tokens\"} 2\n")
    );
}

/// Instances running the scheduled rotation at the same moment add one key.
#[tokio::test]
async fn scheduled_rotation_adds_one_key_however_many_instances_run_it() {
    let (s, _fresh) = store().await;
    let master = MasterKey::generate().unwrap();
    let mut cores = Vec::new();
    for _ in 0..4 {
        cores.push(Arc::new(
            Tollgate::open(Arc::new(s.clone()), &master, "http://t")
                .await
                .unwrap(),
        ));
    }
    assert_eq!(s.list_signing_keys().await.unwrap().len(), 1);
    // Not due yet: nothing happens.
    assert!(cores[0].rotate_due_keys(3600, 0).await.unwrap().is_empty());
    // Due with a 1 s interval once the key is over a second old (times are
    // whole seconds).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let tasks: Vec<_> = cores
        .iter()
        .map(|c| {
            let c = c.clone();
            tokio::spawn(async move { c.rotate_due_keys(1, 0).await.unwrap().len() })
        })
        .collect();
    let mut added = 0;
    for t in tasks {
        added += t.await.unwrap();
    }
    assert_eq!(added, 1);
    assert_eq!(s.list_signing_keys().await.unwrap().len(), 2);
}

fn family(id: &str, t: i64) -> RefreshFamily {
    RefreshFamily {
        env: DEFAULT_ENV.into(),
        family: id.into(),
        contract: "header-login".into(),
        client_id: "c".into(),
        username: "u@example.com".into(),
        grant: GrantType::Password,
        audience: "orders".into(),
        scope: "read".into(),
        current: id.into(),
        previous: None,
        access_jti: format!("a-{id}"),
        access_exp: t + 600,
        issued_at: t,
        expires_at: t + 1000,
        rotated_at: None,
        revoked_at: None,
        created_at: t,
    }
}

/// The family `f` rotated to token `to` at `t`.
fn next(f: &RefreshFamily, to: &str, t: i64) -> RefreshFamily {
    RefreshFamily {
        current: to.into(),
        previous: Some(f.current.clone()),
        access_jti: format!("a-{to}"),
        issued_at: t,
        expires_at: t + 1000,
        rotated_at: Some(t),
        ..f.clone()
    }
}

#[tokio::test]
async fn rotation_is_decided_by_the_store_retry_within_leeway_reuse_revokes_the_family() {
    let (s, _fresh) = store().await;
    let t = 1_000;
    let f1 = family("r1", t);
    s.insert_refresh_family(&f1).await.unwrap();
    // First use rotates; the family holds one row whatever the rotations.
    let f2 = next(&f1, "r2", t + 5);
    assert_eq!(
        s.rotate_refresh_family("r1", &f2, t + 5, 10).await.unwrap(),
        Rotation::Rotated
    );
    // A retry within the leeway gets the family as it stands, not a new token.
    let other = next(&f1, "r2-bis", t + 8);
    match s
        .rotate_refresh_family("r1", &other, t + 8, 10)
        .await
        .unwrap()
    {
        Rotation::Retry(f) => {
            assert_eq!(f.current, "r2");
            assert_eq!(f.access_jti, "a-r2");
            assert_eq!(f.issued_at, t + 5);
        }
        o => panic!("expected a retry, got {o:?}"),
    }
    // After the leeway it is reuse: the family is revoked, r2 with it.
    assert_eq!(
        s.rotate_refresh_family("r1", &other, t + 16, 10)
            .await
            .unwrap(),
        Rotation::Reused
    );
    let f3 = next(&f2, "r3", t + 17);
    assert_eq!(
        s.rotate_refresh_family("r2", &f3, t + 17, 10)
            .await
            .unwrap(),
        Rotation::Revoked
    );
    // Once the successor has moved on, the old token is reuse even inside the leeway.
    let g1 = family("g1", t);
    s.insert_refresh_family(&g1).await.unwrap();
    let g2 = next(&g1, "g2", t + 1);
    let g3 = next(&g2, "g3", t + 2);
    assert_eq!(
        s.rotate_refresh_family("g1", &g2, t + 1, 10).await.unwrap(),
        Rotation::Rotated
    );
    assert_eq!(
        s.rotate_refresh_family("g2", &g3, t + 2, 10).await.unwrap(),
        Rotation::Rotated
    );
    assert_eq!(
        s.rotate_refresh_family("g1", &next(&g1, "x", t + 3), t + 3, 10)
            .await
            .unwrap(),
        Rotation::Reused
    );
    // Unknown and expired.
    assert_eq!(
        s.rotate_refresh_family("nope", &family("nope", t), t, 10)
            .await
            .unwrap(),
        Rotation::Unknown
    );
    let x1 = family("x1", t);
    s.insert_refresh_family(&x1).await.unwrap();
    assert_eq!(
        s.rotate_refresh_family("x1", &next(&x1, "x2", t + 1000), t + 1000, 10)
            .await
            .unwrap(),
        Rotation::Expired
    );
    // Revocation by family, and the purge of expired families.
    assert!(
        !s.revoke_refresh_family(DEFAULT_ENV, "r1", t).await.unwrap(),
        "revoked already"
    );
    let purged = s.purge_expired(t + 2000).await.unwrap();
    assert!(purged.contains(&("refresh_families", 3)), "{purged:?}");
    assert!(
        s.get_refresh_family(DEFAULT_ENV, "r1")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn issuance_counts_are_atomic_per_window_and_obligations_round_trip() {
    let (s, _fresh) = store().await;
    // 20 concurrent counts in one window: every number 1..=20 exactly once.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.count_issuance(DEFAULT_ENV, "c", 600).await })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap().unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=20).collect::<Vec<u64>>());
    // A new window starts again at 1; other clients count on their own.
    assert_eq!(s.count_issuance(DEFAULT_ENV, "c", 1200).await.unwrap(), 1);
    assert_eq!(s.count_issuance(DEFAULT_ENV, "d", 1200).await.unwrap(), 1);

    // The core creates the default environment.
    Tollgate::open(
        Arc::new(s.clone()),
        &MasterKey::generate().unwrap(),
        "http://t",
    )
    .await
    .unwrap();
    s.create_api(&api("orders")).await.unwrap();
    let limit = Obligation::Limit { max: 5, window: 60 };
    assert!(
        s.set_obligation(DEFAULT_ENV, Some("orders"), None, Some(&limit))
            .await
            .unwrap()
    );
    let apis = s.list_apis().await.unwrap();
    assert_eq!(apis[0].obligation, Some(limit));
    assert!(
        !s.set_obligation(DEFAULT_ENV, None, Some("nobody"), None)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn concurrent_rotations_of_one_token_have_one_winner() {
    let (s, _fresh) = store().await;
    let t = 1_000;
    let f = family("race", t);
    s.insert_refresh_family(&f).await.unwrap();
    // 64 at once: on SQLite they share batches (one transaction), on
    // PostgreSQL they race on the row lock; either way one wins.
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let s = s.clone();
            let n = next(&f, &format!("succ-{i}"), t + 1);
            tokio::spawn(async move { s.rotate_refresh_family("race", &n, t + 1, 10).await })
        })
        .collect();
    let mut rotated = 0;
    let mut current = BTreeSet::new();
    for task in tasks {
        match task.await.unwrap().unwrap() {
            Rotation::Rotated => rotated += 1,
            Rotation::Retry(f) => {
                current.insert(f.current);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(rotated, 1);
    let stored = s
        .get_refresh_family(DEFAULT_ENV, "race")
        .await
        .unwrap()
        .unwrap();
    assert!(current.iter().all(|c| *c == stored.current), "{current:?}");
    assert_eq!(stored.previous.as_deref(), Some("race"));
}
