//! The store contract: what every [`Store`] must do, as async functions over
//! an `Arc<dyn Store>` that is fresh and empty (no environment yet, as a new
//! database). Each backend runs all of them through
//! [`store_contract_tests!`](crate::store_contract_tests); the SQL store and
//! the memory store must both pass, which is what keeps them the same.
//!
//! Some tests go through the core (`Tollgate` over the store), most call the
//! store directly with fixed times, so that the verdicts (revision bumps,
//! conflicts, rotation outcomes) are checked to the second.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use tollgate_core::crypto::keys;
use tollgate_core::crypto::master::MasterKey;
use tollgate_core::crypto::token::VerifyError;
use tollgate_core::feed::{ChangeFeed, News, Reach};
use tollgate_core::incumbent::{TrustKeys, TrustPurpose, TrustedIssuer};
use tollgate_core::model::{
    Alg, Api, ApiGrant, ApiKey, AuditEntry, Capability, Client, DEFAULT_ENV, Dialect, Environment,
    GrantType, Obligation, ObligationTarget, RefreshFamily, RefreshJwtRecord, SecretHash,
    SecretRecord, SigningKeyRecord, User,
};
use tollgate_core::service::{ClaimShape, ClientCredentials, NewClient};
use tollgate_core::store::{Guarded, Store};
use tollgate_core::{GrantError, StoreError, Tollgate};

use crate::TestResult;

/// Makes one `#[tokio::test]` per contract test, each over a store from
/// `$open`: an async function returning
/// `TestResult<(Arc<dyn Store>, G)>`, where the guard `G` (a temporary
/// directory, a temporary database, `()`) lives until the test ends.
///
/// ```text
/// async fn open() -> TestResult<(Arc<dyn Store>, ())> {
///     Ok((Arc::new(MemoryStore::new()), ()))
/// }
/// tollgate_testkit::store_contract_tests!(open);
/// ```
///
/// The calling crate needs `tokio` (macros, multi-thread runtime). The tests
/// run on two worker threads, so the concurrency tests race for real.
#[macro_export]
macro_rules! store_contract_tests {
    (@each $open:path; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() -> $crate::TestResult {
                let (store, _guard) = $open().await?;
                $crate::contract::$name(store).await
            }
        )+
    };
    ($open:path) => {
        // Every function of `contract`, once: a test added there is added here.
        $crate::store_contract_tests!(@each $open;
            mutations_bump_the_revision_and_conflicts_are_typed,
            core_issues_and_verifies_over_the_store,
            deny_list_is_idempotent_and_purged_after_expiry,
            scheduled_rotation_adds_one_key_however_many_instances_run_it,
            environments_and_signing_keys,
            apis_clients_and_obligations,
            users_and_the_revocation_of_their_families,
            a_new_password_can_end_a_users_sessions,
            refresh_jwt_records,
            which_writes_bump_the_revision,
            rotation_is_a_compare_and_set,
            rotation_rewrites_the_row_in_place,
            rotation_keeps_the_family_contract_and_client,
            issuance_counts_are_atomic_per_window_and_obligations_round_trip,
            concurrent_rotations_of_one_token_have_one_winner,
            concurrent_writes_of_many_families_each_get_their_own_answer,
            a_duplicate_among_concurrent_inserts_fails_alone,
            the_alive_mark_only_moves_forward,
            auth_failures_count_per_key_within_a_window,
            trusted_issuers_and_client_cutoffs,
            a_family_is_inserted_once_if_absent,
            users_import_all_or_nothing_and_hashes_upgrade_once,
            users_are_found_by_name_without_ascii_case,
            the_change_feed_reports_what_bumps_the_revision,
            apis_and_clients_change_in_place,
            incumbent_writes_reach_the_change_feed,
            the_audit_log_keeps_entries_and_pages_by_id_since_a_time,
            api_keys_round_trip_rotate_once_and_go_with_their_client,
            guarded_writes_from_one_version_have_one_winner,
            partners_accounts_invitations_and_sessions,
            portal_second_factors_and_handovers,
            usage_adds_up_per_client_and_day_and_old_days_are_purged,
            package_requests_provider_sessions_and_guarded_partners,
        );
    };
}

// ----- fixtures --------------------------------------------------------

/// An API of the default environment with permissions `read`, `write` and
/// package `basic` = `read`.
pub fn api(identifier: &str) -> Api {
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
        token_lifetime: Some(600),
        obligation: None,
        token_permissions: true,
        created_at: 0,
    }
}

/// An environment created at `t`.
pub fn environment(name: &str, t: i64) -> Environment {
    Environment {
        name: name.into(),
        issuer: None,
        alg: Alg::ES256,
        hosts: Vec::new(),
        dialect: Dialect::Rfc6749,
        contracts: BTreeSet::new(),
        settings: BTreeMap::new(),
        created_at: t,
    }
}

/// A key record for store-level tests: not a real key (a core over the
/// store could not load it), only rows to store and list.
pub fn key_record(env: &str, kid: &str, created_at: i64, activates_at: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        env: env.into(),
        kid: kid.into(),
        alg: Alg::ES256,
        public_jwk: format!("{{\"kid\":\"{kid}\"}}"),
        private_sealed: format!("sealed-{kid}"),
        created_at,
        activates_at,
    }
}

/// A stored secret (an HMAC digest, never checked here).
pub fn secret(id: &str, expires_at: Option<i64>) -> SecretRecord {
    SecretRecord {
        id: id.into(),
        hash: SecretHash::Hmac {
            digest: format!("digest-{id}"),
        },
        created_at: 1,
        expires_at,
    }
}

/// A client with every field set (so a round trip checks every column).
pub fn client(env: &str, client_id: &str, created_at: i64) -> Client {
    let mut extra = serde_json::Map::new();
    extra.insert(
        "tier".into(),
        serde_json::json!({"level": 2, "tags": ["a"]}),
    );
    Client {
        env: env.into(),
        client_id: client_id.into(),
        name: format!("client {client_id}"),
        secrets: vec![secret("s1", None), secret("s0", Some(50))],
        apis: vec![ApiGrant {
            api: "orders".into(),
            grants: vec!["basic".into(), "write".into()],
        }],
        grant_types: [GrantType::ClientCredentials, GrantType::Password]
            .into_iter()
            .collect(),
        token_lifetime: Some(300),
        extra_claims: extra,
        capabilities: [Capability::Introspect].into_iter().collect(),
        obligation: Some(Obligation::Reuse { min_remaining: 30 }),
        roles: ["ROLE_CATALOG".to_string(), "ROLE_TV_GRID".to_string()]
            .into_iter()
            .collect(),
        enabled: true,
        created_at,
    }
}

/// A user of `client_id` in `env`.
pub fn user(env: &str, client_id: &str, username: &str, created_at: i64) -> User {
    User {
        env: env.into(),
        client_id: client_id.into(),
        username: username.into(),
        password: format!("$argon2id$fake${username}"),
        roles: [format!("ROLE_{}", username.to_ascii_uppercase())]
            .into_iter()
            .collect(),
        enabled: true,
        created_at,
    }
}

/// A refresh-JWT record issued at `t`, expiring at `t + 1000`.
pub fn refresh_jwt(env: &str, jti: &str, t: i64) -> RefreshJwtRecord {
    RefreshJwtRecord {
        env: env.into(),
        jti: jti.into(),
        client_id: "c".into(),
        audience: "orders".into(),
        created_at: t,
        expires_at: t + 1000,
        revoked_at: None,
    }
}

/// A new header-login family `id` of client `c` and user `u@example.com`,
/// logged in at `t`, its token valid until `t + 1000`.
pub fn family(id: &str, t: i64) -> RefreshFamily {
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
pub fn next(f: &RefreshFamily, to: &str, t: i64) -> RefreshFamily {
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

/// The stored family, which must exist.
async fn stored_family(s: &Arc<dyn Store>, env: &str, id: &str) -> TestResult<RefreshFamily> {
    Ok(s.get_refresh_family(env, id)
        .await?
        .ok_or_else(|| format!("no family {id}"))?)
}

// ----- the contract ----------------------------------------------------

/// A write bumps the revision, a failed write or a no-op does not, and the
/// core notices; a duplicate is [`StoreError::Conflict`].
pub async fn mutations_bump_the_revision_and_conflicts_are_typed(s: Arc<dyn Store>) -> TestResult {
    let tg = Tollgate::open(s.clone(), &MasterKey::generate()?, "http://t").await?;
    let r0 = s.revision().await?;
    tg.create_api(api("orders")).await?;
    let r1 = s.revision().await?;
    assert!(r1 > r0);
    assert!(matches!(
        s.create_api(&api("orders")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.revision().await?, r1, "a failed write does not bump");
    assert!(!s.delete_api(DEFAULT_ENV, "nope").await?);
    assert_eq!(s.revision().await?, r1, "a no-op does not bump");
    assert!(tg.sync().await?, "the core notices the change");
    assert!(!tg.sync().await?);
    Ok(())
}

/// The core over the store: a client gets a token that verifies, here and in
/// a second core over the same store; secrets are never stored in clear.
pub async fn core_issues_and_verifies_over_the_store(s: Arc<dyn Store>) -> TestResult {
    let master = MasterKey::generate()?;
    let tg = Tollgate::open(s.clone(), &master, "http://t").await?;
    tg.create_api(api("orders")).await?;
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
            roles: Default::default(),
        })
        .await?;
    let secret = secret.ok_or("a confidential client gets a secret")?;
    // Stored as a keyed hash, never in clear.
    let stored = s
        .get_client(DEFAULT_ENV, &client.client_id)
        .await?
        .ok_or("the client is stored")?;
    assert!(!serde_json::to_string(&stored.secrets)?.contains(secret.expose_secret()));

    tg.sync().await?;
    let env = tg.env(DEFAULT_ENV).ok_or("the default environment")?;
    let req = ClientCredentials {
        default_lifetime: 600,
        client_id: &client.client_id,
        client_secret: &secret,
        audience: None,
        scope: None,
        shape: ClaimShape::Rfc9068,
        source: None,
    };
    let issued = tg.client_credentials(&env, &req).await?;
    assert_eq!(issued.scope, "read");
    let claims = tg.verify(&env, &issued.access_token, Some("orders"))?;
    assert_eq!(claims.sub, client.client_id);
    assert_eq!(
        tg.verify(&env, &issued.access_token, Some("other")).err(),
        Some(VerifyError::Invalid)
    );
    assert_eq!(
        tg.verify(&env, "not.a.jwt", None).err(),
        Some(VerifyError::Malformed)
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
    let other = Tollgate::open(s.clone(), &master, "http://t").await?;
    let other_env = other.env(DEFAULT_ENV).ok_or("the default environment")?;
    assert!(other.verify(&other_env, &issued.access_token, None).is_ok());
    assert_eq!(other_env.jwks_json(), env.jwks_json());

    // Wrong secret and unknown client: the same error.
    let wrong = SecretString::from("x".repeat(43));
    let bad = ClientCredentials {
        default_lifetime: 600,
        client_secret: &wrong,
        ..req
    };
    assert_eq!(
        tg.client_credentials(&env, &bad).await.err(),
        Some(GrantError::InvalidClient)
    );
    let unknown = ClientCredentials {
        default_lifetime: 600,
        client_id: "nobody",
        ..req
    };
    assert_eq!(
        tg.client_credentials(&env, &unknown).await.err(),
        Some(GrantError::InvalidClient)
    );
    Ok(())
}

/// Revoking a token twice is one entry; the purge removes entries whose
/// token expired before `now` (not at `now`), per environment.
pub async fn deny_list_is_idempotent_and_purged_after_expiry(s: Arc<dyn Store>) -> TestResult {
    s.revoke_token("default", "jti-1", 100).await?;
    s.revoke_token("default", "jti-1", 100).await?;
    s.revoke_token("default", "jti-2", 300).await?;
    s.revoke_token("default", "jti-at", 200).await?;
    assert!(s.is_token_revoked("default", "jti-1").await?);
    assert!(!s.is_token_revoked("other", "jti-1").await?);
    // What a gate holds in memory: the entries not expired at `now`.
    let mut live = s.list_revoked_tokens(200).await?;
    live.sort();
    assert_eq!(
        live,
        vec![
            ("default".to_string(), "jti-2".to_string()),
            ("default".to_string(), "jti-at".to_string())
        ]
    );
    assert_eq!(
        s.purge_expired(200).await?,
        vec![
            ("revoked_tokens", 1),
            ("refresh_families", 0),
            ("refresh_jwts", 0),
            ("auth_failures", 0),
            ("api_keys", 0),
            ("portal_sessions", 0),
            ("partner_invitations", 0),
            ("portal_handovers", 0),
            ("provider_sessions", 0),
            ("usage", 0)
        ]
    );
    assert!(!s.is_token_revoked("default", "jti-1").await?);
    assert!(s.is_token_revoked("default", "jti-2").await?);
    assert!(
        s.is_token_revoked("default", "jti-at").await?,
        "expiring at the purge's now: kept"
    );
    // Through the core (real time: jti-2, jti-at and jti-3 are long
    // expired), the purge's work shows in the metrics.
    s.revoke_token("default", "jti-3", 0).await?;
    let tg = Tollgate::open(s.clone(), &MasterKey::generate()?, "http://t").await?;
    assert_eq!(tg.purge_expired().await?, 3);
    assert!(
        tg.metrics
            .render(&[])
            .contains("tollgate_purged_rows_total{table=\"revoked_tokens\"} 3\n")
    );
    Ok(())
}

/// Instances running the scheduled rotation at the same moment add one key.
pub async fn scheduled_rotation_adds_one_key_however_many_instances_run_it(
    s: Arc<dyn Store>,
) -> TestResult {
    let master = MasterKey::generate()?;
    // The default environment's first key, an hour old: due under a
    // one-minute interval without waiting for the clock.
    let hour_ago = tollgate_core::time::now() - 3600;
    let first = keys::generate(&master.derive()?, DEFAULT_ENV, Alg::ES256, hour_ago)?;
    s.create_environment(&environment(DEFAULT_ENV, hour_ago), &first)
        .await?;
    let mut cores = Vec::new();
    for _ in 0..4 {
        cores.push(Arc::new(
            Tollgate::open(s.clone(), &master, "http://t").await?,
        ));
    }
    assert_eq!(s.list_signing_keys().await?.len(), 1);
    // Not due yet: nothing happens.
    assert!(cores[0].rotate_due_keys(7200, 0).await?.is_empty());
    let tasks: Vec<_> = cores
        .iter()
        .map(|c| {
            let c = c.clone();
            tokio::spawn(async move { c.rotate_due_keys(60, 0).await.map(|k| k.len()) })
        })
        .collect();
    let mut added = 0;
    for t in tasks {
        added += t.await??;
    }
    assert_eq!(added, 1);
    assert_eq!(s.list_signing_keys().await?.len(), 2);
    Ok(())
}

/// Environments: created with their first key in one step, replaced in
/// part, listed by name. Signing keys: unique per environment, only for an
/// existing one, the conditional insert, listed by environment, activation
/// and kid.
pub async fn environments_and_signing_keys(s: Arc<dyn Store>) -> TestResult {
    let r0 = s.revision().await?;
    s.create_environment(&environment("b", 5), &key_record("b", "kb1", 5, 5))
        .await?;
    s.create_environment(&environment("a", 6), &key_record("a", "ka1", 6, 6))
        .await?;
    let r1 = s.revision().await?;
    assert!(r1 > r0);
    // A second "a" fails whole: its key is not added either.
    assert!(matches!(
        s.create_environment(&environment("a", 7), &key_record("a", "ka-dup", 7, 7))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.revision().await?, r1);
    let names: Vec<String> = s
        .list_environments()
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["a", "b"]);

    // An update replaces issuer, algorithm, hosts, dialect, contracts and
    // setting overrides; name and creation time stay.
    let mut changed = environment("a", 99);
    changed.alg = Alg::EdDSA;
    changed.issuer = Some("https://issuer.example".into());
    changed.hosts = vec!["a.example".into()];
    changed.dialect = Dialect::Auth0;
    changed.contracts = ["header-login".to_string()].into_iter().collect();
    changed.settings = [
        ("header_login_path".to_string(), "/auth".to_string()),
        ("refresh_retry_leeway".to_string(), "30s".to_string()),
    ]
    .into_iter()
    .collect();
    assert!(s.update_environment(&changed).await?);
    let r2 = s.revision().await?;
    assert!(r2 > r1);
    let a = s
        .list_environments()
        .await?
        .into_iter()
        .find(|e| e.name == "a")
        .ok_or("environment a")?;
    assert_eq!(
        a,
        Environment {
            created_at: 6,
            ..changed.clone()
        }
    );
    assert!(!s.update_environment(&environment("nope", 1)).await?);
    assert_eq!(s.revision().await?, r2, "no such environment: no bump");

    // Keys: unique per (environment, kid); none for an unknown environment.
    s.insert_signing_key(&key_record("a", "ka2", 8, 3)).await?;
    let r3 = s.revision().await?;
    assert!(r3 > r2);
    assert!(matches!(
        s.insert_signing_key(&key_record("a", "ka2", 9, 9)).await,
        Err(StoreError::Conflict(_))
    ));
    s.insert_signing_key(&key_record("b", "ka2", 9, 9)).await?;
    assert!(matches!(
        s.insert_signing_key(&key_record("nope", "k", 9, 9)).await,
        Err(StoreError::Backend(_))
    ));
    let r4 = s.revision().await?;
    assert!(r4 > r3);

    // The conditional insert: only while the environment has no key created
    // after the cutoff (other environments' keys do not count).
    assert!(
        !s.insert_signing_key_unless_newer(&key_record("a", "ka3", 20, 20), 7)
            .await?,
        "ka2 (8) is newer than 7"
    );
    assert_eq!(s.revision().await?, r4, "not inserted: no bump");
    assert!(
        s.insert_signing_key_unless_newer(&key_record("a", "ka3", 20, 20), 8)
            .await?
    );
    let r5 = s.revision().await?;
    assert!(r5 > r4);
    assert!(
        !s.insert_signing_key_unless_newer(&key_record("a", "ka4", 21, 21), 8)
            .await?
    );
    assert!(
        s.insert_signing_key_unless_newer(&key_record("b", "kb2", 21, 21), 10)
            .await?
    );
    assert!(
        s.insert_signing_key_unless_newer(&key_record("nope", "k", 21, 21), 10)
            .await
            .is_err()
    );
    let listed: Vec<(String, String)> = s
        .list_signing_keys()
        .await?
        .into_iter()
        .map(|k| (k.env, k.kid))
        .collect();
    let want = [
        ("a", "ka2"), // activates at 3
        ("a", "ka1"), // 6
        ("a", "ka3"), // 20
        ("b", "kb1"), // 5
        ("b", "ka2"), // 9
        ("b", "kb2"), // 21
    ];
    assert_eq!(listed, want.map(|(e, k)| (e.to_string(), k.to_string())));
    // Every column round-trips.
    let ka3 = s
        .list_signing_keys()
        .await?
        .into_iter()
        .find(|k| k.kid == "ka3")
        .ok_or("ka3")?;
    assert_eq!(ka3, key_record("a", "ka3", 20, 20));
    Ok(())
}

/// APIs and clients: unique per environment, only in an existing one,
/// listed in order; clients enabled, their secrets swapped by compare and
/// set, obligations set and cleared; deleting a client deletes its users.
pub async fn apis_clients_and_obligations(s: Arc<dyn Store>) -> TestResult {
    s.create_environment(
        &environment(DEFAULT_ENV, 1),
        &key_record(DEFAULT_ENV, "k", 1, 1),
    )
    .await?;
    s.create_environment(&environment("other", 1), &key_record("other", "k", 1, 1))
        .await?;
    let r0 = s.revision().await?;
    assert!(matches!(
        s.create_api(&Api {
            env: "nope".into(),
            ..api("orders")
        })
        .await,
        Err(StoreError::Backend(_))
    ));
    assert_eq!(s.revision().await?, r0);
    s.create_api(&api("orders")).await?;
    s.create_api(&api("billing")).await?;
    s.create_api(&Api {
        env: "other".into(),
        ..api("alpha")
    })
    .await?;
    let apis: Vec<(String, String)> = s
        .list_apis()
        .await?
        .into_iter()
        .map(|a| (a.env, a.identifier))
        .collect();
    assert_eq!(
        apis,
        [
            (DEFAULT_ENV, "billing"),
            (DEFAULT_ENV, "orders"),
            ("other", "alpha")
        ]
        .map(|(e, i)| (e.to_string(), i.to_string()))
    );
    let r1 = s.revision().await?;
    assert!(s.delete_api(DEFAULT_ENV, "billing").await?);
    let r2 = s.revision().await?;
    assert!(r2 > r1);
    assert!(!s.delete_api(DEFAULT_ENV, "billing").await?);
    assert_eq!(s.revision().await?, r2);

    // Clients: every field round-trips; listed by creation, then id.
    s.create_client(&client(DEFAULT_ENV, "c2", 10)).await?;
    s.create_client(&client(DEFAULT_ENV, "c1", 10)).await?;
    s.create_client(&client(DEFAULT_ENV, "c0", 20)).await?;
    s.create_client(&client("other", "c9", 1)).await?;
    assert!(matches!(
        s.create_client(&client(DEFAULT_ENV, "c1", 30)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.create_client(&client("nope", "c1", 30)).await,
        Err(StoreError::Backend(_))
    ));
    assert_eq!(
        s.get_client(DEFAULT_ENV, "c1").await?,
        Some(client(DEFAULT_ENV, "c1", 10))
    );
    assert_eq!(s.get_client("other", "c1").await?, None);
    let ids: Vec<String> = s
        .list_clients(DEFAULT_ENV)
        .await?
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(ids, ["c1", "c2", "c0"]);

    // Enabled flag.
    let r3 = s.revision().await?;
    assert!(s.set_client_enabled(DEFAULT_ENV, "c1", false).await?);
    let r4 = s.revision().await?;
    assert!(r4 > r3);
    assert!(!s.get_client(DEFAULT_ENV, "c1").await?.ok_or("c1")?.enabled);
    assert!(!s.set_client_enabled(DEFAULT_ENV, "nobody", true).await?);
    assert_eq!(s.revision().await?, r4);

    // Secrets: compare and set.
    let old = client(DEFAULT_ENV, "c1", 10).secrets;
    let new = vec![secret("s2", None), secret("s1", Some(99))];
    assert!(
        !s.swap_client_secrets(DEFAULT_ENV, "c1", &new, &old).await?,
        "expected the wrong secrets"
    );
    assert_eq!(s.revision().await?, r4);
    assert!(s.swap_client_secrets(DEFAULT_ENV, "c1", &old, &new).await?);
    let r5 = s.revision().await?;
    assert!(r5 > r4);
    assert!(
        !s.swap_client_secrets(DEFAULT_ENV, "c1", &old, &[]).await?,
        "a second swap from the same secrets loses"
    );
    assert!(
        !s.swap_client_secrets(DEFAULT_ENV, "nobody", &old, &new)
            .await?
    );
    assert_eq!(
        s.get_client(DEFAULT_ENV, "c1").await?.ok_or("c1")?.secrets,
        new
    );

    // Obligations: of an API or of a client, set and cleared.
    let limit = Obligation::Limit { max: 5, window: 60 };
    assert!(
        s.set_obligation(DEFAULT_ENV, ObligationTarget::Client("c1"), Some(&limit))
            .await?
    );
    let r6 = s.revision().await?;
    assert!(r6 > r5);
    assert_eq!(
        s.get_client(DEFAULT_ENV, "c1")
            .await?
            .ok_or("c1")?
            .obligation,
        Some(limit)
    );
    assert!(
        s.set_obligation(DEFAULT_ENV, ObligationTarget::Client("c1"), None)
            .await?
    );
    assert_eq!(
        s.get_client(DEFAULT_ENV, "c1")
            .await?
            .ok_or("c1")?
            .obligation,
        None
    );
    assert!(
        s.set_obligation(
            DEFAULT_ENV,
            ObligationTarget::Api("orders"),
            Some(&Obligation::Off)
        )
        .await?
    );
    assert!(
        !s.set_obligation("other", ObligationTarget::Api("orders"), None)
            .await?
    );
    // Deleting a client deletes its users and revokes its sessions and
    // refresh JWTs (in its environment only), so that a client re-created
    // under the same id inherits nothing.
    s.create_user(&user(DEFAULT_ENV, "c1", "u1", 1)).await?;
    s.create_user(&user(DEFAULT_ENV, "c2", "u2", 1)).await?;
    s.create_user(&user("other", "c1", "u3", 1)).await?;
    let t = 1_000;
    let held = RefreshFamily {
        client_id: "c1".into(),
        ..family("c1-session", t)
    };
    let kept = RefreshFamily {
        client_id: "c2".into(),
        ..family("c2-session", t)
    };
    s.insert_refresh_family(&held).await?;
    s.insert_refresh_family(&kept).await?;
    let held_jwt = RefreshJwtRecord {
        client_id: "c1".into(),
        ..refresh_jwt(DEFAULT_ENV, "j-c1", t)
    };
    s.insert_refresh_jwt(&held_jwt).await?;
    let r8 = s.revision().await?;
    assert!(s.delete_client(DEFAULT_ENV, "c1", t + 5).await?);
    assert!(s.revision().await? > r8);
    assert_eq!(s.get_client(DEFAULT_ENV, "c1").await?, None);
    assert!(s.get_user(DEFAULT_ENV, "u1").await?.is_none());
    assert!(s.get_user(DEFAULT_ENV, "u2").await?.is_some());
    assert!(s.get_user("other", "u3").await?.is_some());
    let revoked_at = |f: Option<RefreshFamily>| f.and_then(|f| f.revoked_at);
    assert_eq!(
        revoked_at(s.get_refresh_family(DEFAULT_ENV, "c1-session").await?),
        Some(t + 5)
    );
    assert_eq!(
        revoked_at(s.get_refresh_family(DEFAULT_ENV, "c2-session").await?),
        None
    );
    assert_eq!(
        s.get_refresh_jwt(DEFAULT_ENV, "j-c1")
            .await?
            .and_then(|r| r.revoked_at),
        Some(t + 5)
    );
    assert!(!s.delete_client(DEFAULT_ENV, "c1", t + 6).await?);
    Ok(())
}

/// Updating a user with `end_sessions` revokes that user's live families
/// at that time, in the same step; without it, sessions stay.
pub async fn a_new_password_can_end_a_users_sessions(s: Arc<dyn Store>) -> TestResult {
    s.create_user(&user(DEFAULT_ENV, "c", "zed", 5)).await?;
    let t = 1_000;
    for (id, name) in [("zed-1", "zed"), ("amy-1", "amy")] {
        s.insert_refresh_family(&RefreshFamily {
            username: name.into(),
            ..family(id, t)
        })
        .await?;
    }
    let revoked_at = |f: Option<RefreshFamily>| f.and_then(|f| f.revoked_at);
    assert!(
        s.update_user(&user(DEFAULT_ENV, "c", "zed", 5), None)
            .await?
    );
    assert_eq!(
        revoked_at(s.get_refresh_family(DEFAULT_ENV, "zed-1").await?),
        None
    );
    assert!(
        s.update_user(&user(DEFAULT_ENV, "c", "zed", 5), Some(t + 7))
            .await?
    );
    assert_eq!(
        revoked_at(s.get_refresh_family(DEFAULT_ENV, "zed-1").await?),
        Some(t + 7)
    );
    assert_eq!(
        revoked_at(s.get_refresh_family(DEFAULT_ENV, "amy-1").await?),
        None
    );
    // An unknown user changes nothing and ends nothing.
    assert!(
        !s.update_user(&user(DEFAULT_ENV, "c", "amy", 5), Some(t + 8))
            .await?
    );
    assert_eq!(
        revoked_at(s.get_refresh_family(DEFAULT_ENV, "amy-1").await?),
        None
    );
    Ok(())
}

/// Users: unique per environment (whatever the client), listed by creation
/// then name, optionally of one client; an update changes the password and
/// the flag only; deleting one revokes its live families.
pub async fn users_and_the_revocation_of_their_families(s: Arc<dyn Store>) -> TestResult {
    let r0 = s.revision().await?;
    s.create_user(&user(DEFAULT_ENV, "c", "zed", 5)).await?;
    let r1 = s.revision().await?;
    assert!(r1 > r0);
    s.create_user(&user(DEFAULT_ENV, "d", "amy", 5)).await?;
    s.create_user(&user(DEFAULT_ENV, "c", "bob", 9)).await?;
    s.create_user(&user("other", "c", "zed", 1)).await?;
    let r2 = s.revision().await?;
    assert!(matches!(
        s.create_user(&user(DEFAULT_ENV, "d", "zed", 7)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.revision().await?, r2);
    assert_eq!(
        s.get_user(DEFAULT_ENV, "zed").await?,
        Some(user(DEFAULT_ENV, "c", "zed", 5))
    );
    let names = |users: Vec<User>| users.into_iter().map(|u| u.username).collect::<Vec<_>>();
    assert_eq!(
        names(s.list_users(DEFAULT_ENV, None).await?),
        ["amy", "zed", "bob"]
    );
    assert_eq!(
        names(s.list_users(DEFAULT_ENV, Some("c")).await?),
        ["zed", "bob"]
    );
    assert!(s.list_users(DEFAULT_ENV, Some("nobody")).await?.is_empty());

    // An update: password and flag; client and creation time stay.
    let mut changed = user(DEFAULT_ENV, "other-client", "zed", 77);
    changed.password = "$argon2id$new".into();
    changed.enabled = false;
    assert!(s.update_user(&changed, None).await?);
    let r3 = s.revision().await?;
    assert!(r3 > r2);
    assert_eq!(
        s.get_user(DEFAULT_ENV, "zed").await?,
        Some(User {
            client_id: "c".into(),
            created_at: 5,
            ..changed
        })
    );
    assert!(
        !s.update_user(&user(DEFAULT_ENV, "c", "nobody", 1), None)
            .await?
    );
    assert_eq!(s.revision().await?, r3);

    // Deleting zed revokes its live families at `now`; one revoked before
    // keeps its time; other users' and other environments' stay live.
    let t = 1_000;
    let live = RefreshFamily {
        username: "zed".into(),
        ..family("zed-live", t)
    };
    let revoked = RefreshFamily {
        username: "zed".into(),
        revoked_at: Some(t + 1),
        ..family("zed-old", t)
    };
    let bobs = RefreshFamily {
        username: "bob".into(),
        ..family("bob-live", t)
    };
    let elsewhere = RefreshFamily {
        env: "other".into(),
        username: "zed".into(),
        ..family("zed-other", t)
    };
    for f in [&live, &revoked, &bobs, &elsewhere] {
        s.insert_refresh_family(f).await?;
    }
    assert!(s.delete_user(DEFAULT_ENV, "zed", t + 50).await?);
    let r4 = s.revision().await?;
    assert!(r4 > r3);
    assert!(s.get_user(DEFAULT_ENV, "zed").await?.is_none());
    assert!(s.get_user("other", "zed").await?.is_some());
    let revoked_at = |f: RefreshFamily| f.revoked_at;
    assert_eq!(
        revoked_at(stored_family(&s, DEFAULT_ENV, "zed-live").await?),
        Some(t + 50)
    );
    assert_eq!(
        revoked_at(stored_family(&s, DEFAULT_ENV, "zed-old").await?),
        Some(t + 1)
    );
    assert_eq!(
        revoked_at(stored_family(&s, DEFAULT_ENV, "bob-live").await?),
        None
    );
    assert_eq!(
        revoked_at(stored_family(&s, "other", "zed-other").await?),
        None
    );
    assert!(!s.delete_user(DEFAULT_ENV, "zed", t + 60).await?);
    assert_eq!(s.revision().await?, r4);
    Ok(())
}

/// Refresh-JWT records: unique per environment, listed by creation then id,
/// revoked once, purged after expiry.
pub async fn refresh_jwt_records(s: Arc<dyn Store>) -> TestResult {
    s.insert_refresh_jwt(&refresh_jwt(DEFAULT_ENV, "j2", 10))
        .await?;
    s.insert_refresh_jwt(&refresh_jwt(DEFAULT_ENV, "j1", 10))
        .await?;
    s.insert_refresh_jwt(&refresh_jwt(DEFAULT_ENV, "j0", 20))
        .await?;
    s.insert_refresh_jwt(&refresh_jwt("other", "j1", 10))
        .await?;
    assert!(matches!(
        s.insert_refresh_jwt(&refresh_jwt(DEFAULT_ENV, "j1", 30))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.get_refresh_jwt(DEFAULT_ENV, "j1").await?,
        Some(refresh_jwt(DEFAULT_ENV, "j1", 10))
    );
    assert_eq!(s.get_refresh_jwt(DEFAULT_ENV, "nope").await?, None);
    let jtis: Vec<String> = s
        .list_refresh_jwts(DEFAULT_ENV)
        .await?
        .into_iter()
        .map(|r| r.jti)
        .collect();
    assert_eq!(jtis, ["j1", "j2", "j0"]);

    let r0 = s.revision().await?;
    assert!(s.revoke_refresh_jwt(DEFAULT_ENV, "j1", 15).await?);
    let r1 = s.revision().await?;
    assert!(r1 > r0);
    assert!(
        !s.revoke_refresh_jwt(DEFAULT_ENV, "j1", 16).await?,
        "revoked already"
    );
    assert!(!s.revoke_refresh_jwt(DEFAULT_ENV, "nope", 16).await?);
    assert_eq!(s.revision().await?, r1);
    assert_eq!(
        s.get_refresh_jwt(DEFAULT_ENV, "j1")
            .await?
            .ok_or("j1")?
            .revoked_at,
        Some(15)
    );
    assert_eq!(
        s.get_refresh_jwt("other", "j1")
            .await?
            .ok_or("other j1")?
            .revoked_at,
        None
    );

    // j1, j2 and other's j1 expire at 1010, j0 at 1020: a purge at 1010
    // keeps all, at 1011 leaves j0.
    assert!(s.purge_expired(1010).await?.contains(&("refresh_jwts", 0)));
    assert!(s.purge_expired(1011).await?.contains(&("refresh_jwts", 3)));
    let left: Vec<String> = s
        .list_refresh_jwts(DEFAULT_ENV)
        .await?
        .into_iter()
        .map(|r| r.jti)
        .collect();
    assert_eq!(left, ["j0"]);
    Ok(())
}

/// The hot writes that the core reads back from the store each time (new
/// sessions, rotations, refresh-JWT records, issuance counts) and the purge
/// do not move the revision, so they never empty the caches; revocations
/// do.
pub async fn which_writes_bump_the_revision(s: Arc<dyn Store>) -> TestResult {
    let t = 1_000;
    let r0 = s.revision().await?;
    let f1 = family("f1", t);
    s.insert_refresh_family(&f1).await?;
    assert!(
        s.rotate_refresh_family("f1", &next(&f1, "f2", t + 1), t + 1)
            .await?
    );
    assert!(
        !s.rotate_refresh_family("f1", &next(&f1, "f2-bis", t + 2), t + 2)
            .await?,
        "lost: nothing written"
    );
    s.insert_refresh_jwt(&refresh_jwt(DEFAULT_ENV, "j", t))
        .await?;
    s.count_issuance(DEFAULT_ENV, "c", t).await?;
    s.purge_expired(t + 5000).await?;
    assert_eq!(s.revision().await?, r0, "none of these bumps");

    // Revocations do: of a token (the first time), of a family, by reuse.
    s.revoke_token(DEFAULT_ENV, "x", t).await?;
    let r1 = s.revision().await?;
    assert!(r1 > r0);
    s.revoke_token(DEFAULT_ENV, "x", t).await?;
    assert_eq!(s.revision().await?, r1, "revoked already: no change");
    let g1 = family("g1", t);
    s.insert_refresh_family(&g1).await?;
    assert!(s.revoke_refresh_family(DEFAULT_ENV, "g1", t).await?);
    let r2 = s.revision().await?;
    assert!(r2 > r1);
    assert!(!s.revoke_refresh_family(DEFAULT_ENV, "g1", t).await?);
    assert!(!s.revoke_refresh_family(DEFAULT_ENV, "nope", t).await?);
    assert_eq!(s.revision().await?, r2);
    Ok(())
}

/// Rotation is a compare-and-set and nothing more: it moves the family
/// from its current token to the next only when the presented token is the
/// current one and the family is live; otherwise it writes nothing (what a
/// lost rotation means — a retry, reuse — is the core's to decide, from the
/// row). Then the purge of expired families.
pub async fn rotation_is_a_compare_and_set(s: Arc<dyn Store>) -> TestResult {
    let t = 1_000;
    let f1 = family("r1", t);
    s.insert_refresh_family(&f1).await?;
    assert!(matches!(
        s.insert_refresh_family(&f1).await,
        Err(StoreError::Conflict(_))
    ));
    // First use rotates; the family holds one row whatever the rotations.
    let f2 = next(&f1, "r2", t + 5);
    assert!(s.rotate_refresh_family("r1", &f2, t + 5).await?);
    let after = stored_family(&s, DEFAULT_ENV, "r1").await?;
    assert_eq!(after.current, "r2");
    // The replaced token again: lost, and the row is left exactly as it is
    // (not revoked: that verdict is not the store's).
    assert!(
        !s.rotate_refresh_family("r1", &next(&f1, "r2-bis", t + 8), t + 8)
            .await?
    );
    assert_eq!(stored_family(&s, DEFAULT_ENV, "r1").await?, after);
    // An unknown family, a revoked one, an expired one: lost.
    assert!(
        !s.rotate_refresh_family("nope", &family("nope", t), t)
            .await?
    );
    assert!(s.revoke_refresh_family(DEFAULT_ENV, "r1", t + 9).await?);
    assert!(
        !s.rotate_refresh_family("r2", &next(&f2, "r3", t + 10), t + 10)
            .await?
    );
    let x1 = family("x1", t);
    s.insert_refresh_family(&x1).await?;
    assert!(
        !s.rotate_refresh_family("x1", &next(&x1, "x2", t + 1000), t + 1000)
            .await?,
        "expired (at its expiry second)"
    );
    assert_eq!(stored_family(&s, DEFAULT_ENV, "x1").await?, x1, "untouched");
    // Revocation by family, and the purge of expired families (expiring
    // at the purge's now: kept).
    assert!(
        !s.revoke_refresh_family(DEFAULT_ENV, "r1", t).await?,
        "revoked already"
    );
    let purged = s.purge_expired(t + 1000).await?;
    assert!(purged.contains(&("refresh_families", 0)), "{purged:?}");
    let purged = s.purge_expired(t + 2000).await?;
    assert!(purged.contains(&("refresh_families", 2)), "{purged:?}");
    assert!(s.get_refresh_family(DEFAULT_ENV, "r1").await?.is_none());
    Ok(())
}

/// A rotation rewrites the family's row: the new current token, access
/// token and expiry from `next`; issued and rotated at the store's `now`;
/// the previous token is the one replaced, whatever `next` says; the rest
/// stays.
pub async fn rotation_rewrites_the_row_in_place(s: Arc<dyn Store>) -> TestResult {
    let t = 1_000;
    let f1 = family("w1", t);
    s.insert_refresh_family(&f1).await?;
    assert_eq!(stored_family(&s, DEFAULT_ENV, "w1").await?, f1);
    let odd = RefreshFamily {
        previous: Some("not-w1".into()),
        access_exp: t + 777,
        issued_at: t + 999,
        rotated_at: Some(t + 999),
        expires_at: t + 3000,
        scope: "write".into(),
        audience: "elsewhere".into(),
        username: "someone-else".into(),
        created_at: t + 999,
        ..next(&f1, "w2", t + 999)
    };
    assert!(s.rotate_refresh_family("w1", &odd, t + 7).await?);
    assert_eq!(
        stored_family(&s, DEFAULT_ENV, "w1").await?,
        RefreshFamily {
            current: "w2".into(),
            previous: Some("w1".into()),
            access_jti: "a-w2".into(),
            access_exp: t + 777,
            issued_at: t + 7,
            expires_at: t + 3000,
            rotated_at: Some(t + 7),
            ..f1
        }
    );
    Ok(())
}

/// A token born in one contract (or for one client) never rotates in
/// another: the compare-and-set compares those too, and writes nothing.
pub async fn rotation_keeps_the_family_contract_and_client(s: Arc<dyn Store>) -> TestResult {
    let t = 1_000;
    let f1 = family("k1", t);
    s.insert_refresh_family(&f1).await?;
    let r0 = s.revision().await?;
    let elsewhere = RefreshFamily {
        contract: "device-credentials".into(),
        ..next(&f1, "k2", t + 1)
    };
    let other_client = RefreshFamily {
        client_id: "d".into(),
        ..next(&f1, "k2", t + 1)
    };
    for n in [&elsewhere, &other_client] {
        assert!(!s.rotate_refresh_family("k1", n, t + 1).await?);
    }
    assert_eq!(stored_family(&s, DEFAULT_ENV, "k1").await?, f1, "unchanged");
    assert_eq!(s.revision().await?, r0);
    // In its own contract, for its own client, it still rotates.
    assert!(
        s.rotate_refresh_family("k1", &next(&f1, "k2", t + 1), t + 1)
            .await?
    );
    Ok(())
}

/// Issuance counts: concurrent counts in one window get every number once;
/// a new window restarts at 1; obligations round-trip through the listing.
pub async fn issuance_counts_are_atomic_per_window_and_obligations_round_trip(
    s: Arc<dyn Store>,
) -> TestResult {
    // 20 concurrent counts in one window: every number 1..=20 exactly once.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.count_issuance(DEFAULT_ENV, "c", 600).await })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await??);
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=20).collect::<Vec<u64>>());
    // A new window starts again at 1; other clients and environments count
    // on their own.
    assert_eq!(s.count_issuance(DEFAULT_ENV, "c", 1200).await?, 1);
    assert_eq!(s.count_issuance(DEFAULT_ENV, "c", 1200).await?, 2);
    assert_eq!(s.count_issuance(DEFAULT_ENV, "d", 1200).await?, 1);
    assert_eq!(s.count_issuance("other", "c", 1200).await?, 1);

    // The core creates the default environment.
    Tollgate::open(s.clone(), &MasterKey::generate()?, "http://t").await?;
    s.create_api(&api("orders")).await?;
    let limit = Obligation::Limit { max: 5, window: 60 };
    assert!(
        s.set_obligation(DEFAULT_ENV, ObligationTarget::Api("orders"), Some(&limit))
            .await?
    );
    let apis = s.list_apis().await?;
    assert_eq!(apis[0].obligation, Some(limit));
    assert!(
        !s.set_obligation(DEFAULT_ENV, ObligationTarget::Client("nobody"), None)
            .await?
    );
    Ok(())
}

/// 64 concurrent rotations of one token: exactly one wins, and the row holds
/// the winner's successor.
pub async fn concurrent_rotations_of_one_token_have_one_winner(s: Arc<dyn Store>) -> TestResult {
    let t = 1_000;
    let f = family("race", t);
    s.insert_refresh_family(&f).await?;
    // On SQLite they share batches (one transaction), on PostgreSQL they
    // race on the row lock, in memory on the lock; either way one wins.
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let s = s.clone();
            let n = next(&f, &format!("succ-{i}"), t + 1);
            tokio::spawn(async move {
                let won = s.rotate_refresh_family("race", &n, t + 1).await?;
                Ok::<_, StoreError>(won.then_some(n.current))
            })
        })
        .collect();
    let mut winners = BTreeSet::new();
    for task in tasks {
        if let Some(w) = task.await?? {
            winners.insert(w);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let stored = stored_family(&s, DEFAULT_ENV, "race").await?;
    assert!(winners.contains(&stored.current));
    assert_eq!(stored.previous.as_deref(), Some("race"));
    Ok(())
}

/// Concurrent inserts that include duplicates (on SQLite, one batch whose
/// INSERT fails as a whole, then retried row by row): every new family
/// lands, and only the duplicates are refused, each with a conflict.
pub async fn a_duplicate_among_concurrent_inserts_fails_alone(s: Arc<dyn Store>) -> TestResult {
    let t = 1_000;
    s.insert_refresh_family(&family("old", t)).await?;
    let mut ids: Vec<String> = (0..40).map(|i| format!("new-{i:02}")).collect();
    ids.extend(["old", "old", "twice", "twice"].map(String::from));
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let s = s.clone();
            let f = family(id, t);
            tokio::spawn(async move { (f.family.clone(), s.insert_refresh_family(&f).await) })
        })
        .collect();
    let mut landed: BTreeMap<String, usize> = BTreeMap::new();
    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    for task in tasks {
        match task.await? {
            (id, Ok(())) => *landed.entry(id).or_default() += 1,
            (id, Err(StoreError::Conflict(_))) => *refused.entry(id).or_default() += 1,
            (id, Err(e)) => return Err(format!("{id}: {e}").into()),
        }
    }
    assert_eq!(refused.get("old"), Some(&2));
    assert_eq!(
        (landed.get("twice"), refused.get("twice")),
        (Some(&1), Some(&1))
    );
    for i in 0..40 {
        let id = format!("new-{i:02}");
        assert_eq!(landed.get(&id), Some(&1), "{id}");
        assert_eq!(stored_family(&s, DEFAULT_ENV, &id).await?, family(&id, t));
    }
    assert_eq!(landed.len(), 41);
    Ok(())
}

/// Many families written at once (SQLite writes them in shared batches):
/// 48 inserted concurrently all land whole; then, concurrently, each gets
/// two rotations presenting its current token (exactly one wins), one
/// presenting a token it never had, one naming the wrong client, and the
/// expired and revoked ones none; every caller is told its own outcome.
pub async fn concurrent_writes_of_many_families_each_get_their_own_answer(
    s: Arc<dyn Store>,
) -> TestResult {
    let t = 1_000;
    let ids: Vec<String> = (0..48).map(|i| format!("fam-{i:02}")).collect();
    let inserts: Vec<_> = ids
        .iter()
        .map(|id| {
            let s = s.clone();
            let mut f = family(id, t);
            f.previous = Some(format!("before-{id}"));
            if id.ends_with('7') {
                f.expires_at = t; // expired at the rotations' time
            }
            tokio::spawn(async move { s.insert_refresh_family(&f).await })
        })
        .collect();
    for task in inserts {
        task.await??;
    }
    for id in &ids {
        let f = stored_family(&s, DEFAULT_ENV, id).await?;
        assert_eq!(f, {
            let mut want = family(id, t);
            want.previous = Some(format!("before-{id}"));
            if id.ends_with('7') {
                want.expires_at = t;
            }
            want
        });
    }
    assert!(s.revoke_refresh_family(DEFAULT_ENV, "fam-03", t).await?);
    // (family, presented, successor, client, expected to win alone)
    let mut attempts = Vec::new();
    for id in &ids {
        let f = family(id, t);
        attempts.push((f.clone(), id.clone(), format!("{id}-a"), "c"));
        attempts.push((f.clone(), id.clone(), format!("{id}-b"), "c"));
        attempts.push((f.clone(), format!("{id}-never"), format!("{id}-c"), "c"));
        attempts.push((f, id.clone(), format!("{id}-d"), "other"));
    }
    let tasks: Vec<_> = attempts
        .into_iter()
        .map(|(f, presented, to, client)| {
            let s = s.clone();
            let mut n = next(&f, &to, t + 1);
            n.client_id = client.into();
            tokio::spawn(async move {
                let won = s.rotate_refresh_family(&presented, &n, t + 1).await?;
                Ok::<_, StoreError>((f.family, to, won))
            })
        })
        .collect();
    let mut winners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for task in tasks {
        let (fam, to, won) = task.await??;
        if won {
            assert!(
                to.ends_with("-a") || to.ends_with("-b"),
                "{to} must not win"
            );
            winners.entry(fam).or_default().push(to);
        }
    }
    for id in &ids {
        let stored = stored_family(&s, DEFAULT_ENV, id).await?;
        let won = winners.get(id).cloned().unwrap_or_default();
        if id == "fam-03" || id.ends_with('7') {
            assert!(won.is_empty(), "{id}: revoked or expired, yet {won:?}");
            assert_eq!(stored.current, *id);
            continue;
        }
        assert_eq!(won.len(), 1, "{id}: {won:?}");
        assert_eq!(stored.current, won[0]);
        assert_eq!(stored.previous.as_deref(), Some(id.as_str()));
        assert_eq!(stored.access_jti, format!("a-{}", won[0]));
        assert_eq!(stored.issued_at, t + 1);
        assert_eq!(stored.rotated_at, Some(t + 1));
        assert_eq!(stored.expires_at, t + 1 + 1000);
    }
    Ok(())
}

/// The alive mark: absent at first, then the latest second recorded by any
/// instance (a lagging clock never moves it back), and no revision bump.
pub async fn the_alive_mark_only_moves_forward(s: Arc<dyn Store>) -> TestResult {
    assert_eq!(s.last_alive().await?, None);
    let r0 = s.revision().await?;
    s.mark_alive(1_000).await?;
    assert_eq!(s.last_alive().await?, Some(1_000));
    s.mark_alive(990).await?;
    assert_eq!(s.last_alive().await?, Some(1_000), "never back");
    s.mark_alive(1_005).await?;
    assert_eq!(s.last_alive().await?, Some(1_005));
    assert_eq!(s.revision().await?, r0);
    Ok(())
}

/// Failed authentications: counted atomically per key while less than a
/// window apart, restarted after a quiet window, cleared on demand, purged
/// when quiet; no revision bump.
pub async fn auth_failures_count_per_key_within_a_window(s: Arc<dyn Store>) -> TestResult {
    let r0 = s.revision().await?;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.count_auth_failure("usr:alice", 1_000, 60).await })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await??);
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=20).collect::<Vec<u64>>());
    assert_eq!(
        s.count_auth_failure("src:10.0.0.1", 1_000, 60).await?,
        1,
        "keys count apart"
    );
    // 59 s later still the same window (it extends with each failure)...
    assert_eq!(s.count_auth_failure("usr:alice", 1_059, 60).await?, 21);
    // ...a quiet window later, a fresh start.
    assert_eq!(s.count_auth_failure("usr:alice", 1_119, 60).await?, 1);
    s.clear_auth_failures("usr:alice").await?;
    assert_eq!(s.count_auth_failure("usr:alice", 1_120, 60).await?, 1);
    assert_eq!(s.revision().await?, r0);
    // The purge removes quiet keys only.
    let purged = s.purge_expired(1_100).await?;
    assert!(purged.contains(&("auth_failures", 1)), "{purged:?}");
    assert_eq!(s.count_auth_failure("usr:alice", 1_121, 60).await?, 2);
    Ok(())
}

/// A trusted issuer of `env` named `id` (an HS256 one: only rows here).
pub fn trusted(env: &str, id: &str, created_at: i64) -> TrustedIssuer {
    TrustedIssuer {
        env: env.into(),
        id: id.into(),
        purpose: TrustPurpose::DeviceCredentials,
        keys: TrustKeys::Hs256 {
            sealed: format!("sealed-{id}"),
        },
        issuer: Some("https://old.example".into()),
        audience: None,
        client_claim: "client_id".into(),
        user_claim: Some("device_id".into()),
        api: Some("orders".into()),
        created_at,
    }
}

/// Trusted issuers round-trip every field, conflict by (env, id), list in
/// order and bump the revision (servers hold them in their snapshot);
/// revoking a client's refresh tokens revokes its records and records a
/// cut-off, in one write.
pub async fn trusted_issuers_and_client_cutoffs(s: Arc<dyn Store>) -> TestResult {
    let r0 = s.revision().await?;
    s.insert_trusted_issuer(&trusted(DEFAULT_ENV, "b", 20))
        .await?;
    s.insert_trusted_issuer(&trusted(DEFAULT_ENV, "a", 20))
        .await?;
    s.insert_trusted_issuer(&trusted("other", "a", 10)).await?;
    let mut jwks = trusted(DEFAULT_ENV, "j", 5);
    jwks.keys = TrustKeys::Jwks {
        jwks: r#"{"keys":[]}"#.into(),
    };
    jwks.purpose = TrustPurpose::BearerExchange;
    jwks.user_claim = None;
    jwks.issuer = None;
    s.insert_trusted_issuer(&jwks).await?;
    assert!(s.revision().await? > r0);
    assert!(matches!(
        s.insert_trusted_issuer(&trusted(DEFAULT_ENV, "a", 30))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let all = s.list_trusted_issuers().await?;
    let names: Vec<(&str, &str)> = all
        .iter()
        .map(|t| (t.env.as_str(), t.id.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("default", "j"),
            ("default", "a"),
            ("default", "b"),
            ("other", "a")
        ]
    );
    assert_eq!(all[0], jwks);
    assert_eq!(all[1], trusted(DEFAULT_ENV, "a", 20));
    let r1 = s.revision().await?;
    assert!(s.delete_trusted_issuer(DEFAULT_ENV, "b").await?);
    assert!(!s.delete_trusted_issuer(DEFAULT_ENV, "b").await?);
    assert!(s.revision().await? > r1);
    assert_eq!(s.list_trusted_issuers().await?.len(), 3);

    s.insert_refresh_jwt(&refresh_jwt(DEFAULT_ENV, "j1", 10))
        .await?;
    s.insert_refresh_jwt(&refresh_jwt(DEFAULT_ENV, "j2", 10))
        .await?;
    s.revoke_refresh_jwt(DEFAULT_ENV, "j2", 12).await?;
    let r2 = s.revision().await?;
    assert_eq!(
        s.revoke_client_refresh_tokens(DEFAULT_ENV, "c", 15).await?,
        1,
        "j2 was revoked already"
    );
    assert!(s.revision().await? > r2);
    let revoked: Vec<Option<i64>> = s
        .list_refresh_jwts(DEFAULT_ENV)
        .await?
        .into_iter()
        .map(|r| r.revoked_at)
        .collect();
    assert_eq!(revoked, [Some(15), Some(12)]);
    // A second revocation moves the cut-off on.
    s.revoke_client_refresh_tokens(DEFAULT_ENV, "c", 40).await?;
    s.revoke_client_refresh_tokens("other", "d", 7).await?;
    let cutoffs: Vec<(String, String, i64)> = s
        .list_refresh_cutoffs()
        .await?
        .into_iter()
        .map(|c| (c.env, c.client_id, c.not_before))
        .collect();
    assert_eq!(
        cutoffs,
        [
            ("default".to_string(), "c".to_string(), 40),
            ("other".to_string(), "d".to_string(), 7)
        ]
    );
    Ok(())
}

/// An adopted session's family is stored once, whoever asks twice; no
/// revision bump (sessions are read from the store).
pub async fn a_family_is_inserted_once_if_absent(s: Arc<dyn Store>) -> TestResult {
    let r0 = s.revision().await?;
    let f = family("inc.x", 100);
    assert!(s.insert_refresh_family_if_absent(&f).await?);
    let other = RefreshFamily {
        username: "someone-else".into(),
        ..family("inc.x", 200)
    };
    assert!(!s.insert_refresh_family_if_absent(&other).await?);
    assert_eq!(stored_family(&s, DEFAULT_ENV, "inc.x").await?, f);
    assert_eq!(s.revision().await?, r0);
    Ok(())
}

/// A user import writes all or nothing: a username that exists or repeats
/// is a conflict and leaves no user of the import behind. An upgraded hash
/// replaces the old one only while it is still the old one, without a bump.
pub async fn users_import_all_or_nothing_and_hashes_upgrade_once(s: Arc<dyn Store>) -> TestResult {
    s.create_user(&user(DEFAULT_ENV, "c", "taken", 1)).await?;
    // 250 users: more than one multi-row statement.
    let mut batch: Vec<User> = (0..250)
        .map(|i| user(DEFAULT_ENV, "c", &format!("u{i:03}"), 5))
        .collect();
    batch.push(user(DEFAULT_ENV, "c", "taken", 5));
    let r0 = s.revision().await?;
    assert!(matches!(
        s.import_users(&batch).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.list_users(DEFAULT_ENV, None).await?.len(),
        1,
        "nothing half-imported"
    );
    assert_eq!(s.revision().await?, r0);
    batch.pop();
    batch.push(user(DEFAULT_ENV, "c", "u000", 5));
    assert!(matches!(
        s.import_users(&batch).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.list_users(DEFAULT_ENV, None).await?.len(), 1);
    batch.pop();
    s.import_users(&batch).await?;
    assert!(s.revision().await? > r0);
    assert_eq!(s.list_users(DEFAULT_ENV, Some("c")).await?.len(), 251);
    assert_eq!(
        s.get_user(DEFAULT_ENV, "u249").await?,
        Some(user(DEFAULT_ENV, "c", "u249", 5))
    );

    let r1 = s.revision().await?;
    let old = user(DEFAULT_ENV, "c", "u001", 5).password;
    assert!(
        s.upgrade_user_password(DEFAULT_ENV, "u001", &old, "$argon2id$new")
            .await?
    );
    assert!(
        !s.upgrade_user_password(DEFAULT_ENV, "u001", &old, "$argon2id$again")
            .await?
    );
    assert!(
        !s.upgrade_user_password(DEFAULT_ENV, "nobody", &old, "x")
            .await?
    );
    assert_eq!(
        s.get_user(DEFAULT_ENV, "u001")
            .await?
            .ok_or("u001")?
            .password,
        "$argon2id$new"
    );
    assert_eq!(s.revision().await?, r1, "an upgrade bumps nothing");
    Ok(())
}

/// `find_users_folded`: every user of the environment whose name matches
/// ignoring ASCII case (all spellings, so the caller can see an ambiguity),
/// none of another environment.
pub async fn users_are_found_by_name_without_ascii_case(s: Arc<dyn Store>) -> TestResult {
    s.create_user(&user(DEFAULT_ENV, "c", "Buyer@Example.com", 5))
        .await?;
    s.create_user(&user(DEFAULT_ENV, "c", "twin@x.test", 5))
        .await?;
    s.create_user(&user(DEFAULT_ENV, "c", "TWIN@x.test", 5))
        .await?;
    s.create_user(&user("other", "c", "buyer@example.com", 5))
        .await?;
    let names = |found: Vec<User>| {
        let mut n: Vec<String> = found
            .into_iter()
            .filter(|u| u.env == DEFAULT_ENV)
            .map(|u| u.username)
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        names(
            s.find_users_folded(DEFAULT_ENV, "BUYER@example.COM")
                .await?
        ),
        ["Buyer@Example.com"]
    );
    assert_eq!(
        names(s.find_users_folded(DEFAULT_ENV, "Twin@X.Test").await?),
        ["TWIN@x.test", "twin@x.test"]
    );
    assert!(
        s.find_users_folded(DEFAULT_ENV, "nobody@x.test")
            .await?
            .is_empty()
    );
    assert_eq!(
        s.find_users_folded("other", "Buyer@Example.com")
            .await?
            .len(),
        1
    );
    Ok(())
}

/// What `feed` reports from now until `done` holds (or `within` has
/// passed), added up.
pub async fn gather(
    feed: &mut ChangeFeed,
    done: impl Fn(&News) -> bool,
    within: std::time::Duration,
) -> News {
    let mut all = News::default();
    let deadline = tokio::time::Instant::now() + within;
    while !done(&all) {
        match tokio::time::timeout_at(deadline, feed.next()).await {
            Ok(Some(n)) => {
                all.local += n.local;
                all.pushed += n.pushed;
                all.resumed += n.resumed;
            }
            Ok(None) | Err(_) => break,
        }
    }
    all
}

/// Every store here has a change feed: it reports each write that bumps the
/// revision (and only those) as a local change; a store whose feed reaches
/// all writers (PostgreSQL) first reports that its push channel is up, then
/// also pushes each of those writes.
pub async fn the_change_feed_reports_what_bumps_the_revision(s: Arc<dyn Store>) -> TestResult {
    let long = std::time::Duration::from_secs(10);
    let mut feed = s.change_feed().await.ok_or("a change feed")?;
    let all_writers = feed.reach() == Reach::AllWriters;
    if all_writers {
        let up = gather(&mut feed, |n| n.resumed > 0, long).await;
        assert_eq!(up.resumed, 1, "the push channel came up once: {up:?}");
    }
    // A write that bumps nothing is no news; one that bumps is.
    s.count_issuance(DEFAULT_ENV, "c", 1_000).await?;
    s.revoke_token(DEFAULT_ENV, "x", 1_000).await?;
    let first = |n: &News| n.local >= 1 && (!all_writers || n.pushed >= 1);
    let bumped = gather(&mut feed, first, long).await;
    assert_eq!(bumped.local, 1, "{bumped:?}");
    assert_eq!(bumped.pushed, u64::from(all_writers), "{bumped:?}");
    s.revoke_token(DEFAULT_ENV, "x", 1_000).await?;
    s.count_issuance(DEFAULT_ENV, "c", 1_000).await?;
    s.create_environment(&environment("feed", 1), &key_record("feed", "k", 1, 1))
        .await?;
    let want = |n: &News| n.local >= 1 && (!all_writers || n.pushed >= 1);
    let more = gather(&mut feed, want, long).await;
    assert_eq!(more.local, 1, "one more bump: {more:?}");
    assert_eq!(more.pushed, u64::from(all_writers), "{more:?}");
    let quiet = gather(&mut feed, |_| false, std::time::Duration::from_millis(200)).await;
    assert_eq!(quiet, News::default(), "nothing else happened");
    Ok(())
}

/// An API and a client change in place: every changeable column
/// round-trips (an unset lifetime included), a client's secrets and enabled
/// flag are left as they are, an unknown one is `false` without a bump.
pub async fn apis_and_clients_change_in_place(s: Arc<dyn Store>) -> TestResult {
    s.create_environment(
        &environment(DEFAULT_ENV, 1),
        &key_record(DEFAULT_ENV, "k", 1, 1),
    )
    .await?;
    s.create_api(&api("orders")).await?;
    s.create_client(&client(DEFAULT_ENV, "c1", 10)).await?;

    let r0 = s.revision().await?;
    let mut changed = api("orders");
    changed.permissions.insert("admin".into());
    changed.packages.insert(
        "all".into(),
        ["read", "write", "admin"].map(String::from).into(),
    );
    changed.token_lifetime = None;
    changed.obligation = Some(Obligation::Limit { max: 3, window: 60 });
    changed.token_permissions = !changed.token_permissions;
    assert!(s.update_api(&changed).await?);
    let r1 = s.revision().await?;
    assert!(r1 > r0);
    let stored = s.list_apis().await?;
    assert_eq!(stored, vec![changed.clone()]);
    changed.token_lifetime = Some(42);
    assert!(s.update_api(&changed).await?);
    assert_eq!(
        s.list_apis().await?.first().and_then(|a| a.token_lifetime),
        Some(42)
    );
    let r2 = s.revision().await?;
    assert!(!s.update_api(&api("nope")).await?);
    assert_eq!(s.revision().await?, r2, "no such API: no bump");

    // A client: the secrets and the enabled flag it is given are ignored.
    let before = client(DEFAULT_ENV, "c1", 10);
    let mut c = before.clone();
    c.name = "renamed".into();
    c.apis = vec![ApiGrant {
        api: "orders".into(),
        grants: vec!["all".into()],
    }];
    c.grant_types = [GrantType::DeviceCredentials].into_iter().collect();
    c.token_lifetime = None;
    c.extra_claims = serde_json::Map::new();
    c.capabilities = BTreeSet::new();
    c.obligation = None;
    c.roles = ["ROLE_CATALOG".to_string()].into_iter().collect();
    c.secrets = Vec::new();
    c.enabled = false;
    assert!(s.update_client(&c).await?);
    let r3 = s.revision().await?;
    assert!(r3 > r2);
    assert_eq!(
        s.get_client(DEFAULT_ENV, "c1").await?,
        Some(Client {
            secrets: before.secrets.clone(),
            enabled: true,
            ..c.clone()
        })
    );
    assert!(
        !s.update_client(&client(DEFAULT_ENV, "nobody", 1)).await?,
        "no such client"
    );
    assert_eq!(s.revision().await?, r3, "no such client: no bump");
    Ok(())
}

/// The switch-over's writes that bump the revision reach the change feed
/// like every other (other servers hold trusted issuers and cut-offs in
/// their snapshot): adding and removing a trusted issuer, revoking a
/// client's refresh tokens, a user import. Adopting a session and upgrading
/// a hash bump nothing, so they are no news.
pub async fn incumbent_writes_reach_the_change_feed(s: Arc<dyn Store>) -> TestResult {
    let long = std::time::Duration::from_secs(10);
    let mut feed = s.change_feed().await.ok_or("a change feed")?;
    let all_writers = feed.reach() == Reach::AllWriters;
    if all_writers {
        let up = gather(&mut feed, |n| n.resumed > 0, long).await;
        assert_eq!(up.resumed, 1, "the push channel came up once: {up:?}");
    }
    s.insert_trusted_issuer(&trusted(DEFAULT_ENV, "a", 1))
        .await?;
    s.revoke_client_refresh_tokens(DEFAULT_ENV, "c", 2).await?;
    s.import_users(&[user(DEFAULT_ENV, "c", "u1", 3)]).await?;
    s.delete_trusted_issuer(DEFAULT_ENV, "a").await?;
    let four = |n: &News| n.local >= 4 && (!all_writers || n.pushed >= 4);
    let bumped = gather(&mut feed, four, long).await;
    assert_eq!(bumped.local, 4, "{bumped:?}");
    assert_eq!(bumped.pushed, 4 * u64::from(all_writers), "{bumped:?}");

    s.insert_refresh_family_if_absent(&family("inc.y", 5))
        .await?;
    let old = user(DEFAULT_ENV, "c", "u1", 3).password;
    assert!(
        s.upgrade_user_password(DEFAULT_ENV, "u1", &old, "$argon2id$new")
            .await?
    );
    let quiet = gather(&mut feed, |_| false, std::time::Duration::from_millis(200)).await;
    assert_eq!(quiet, News::default(), "nothing else happened");
    Ok(())
}

/// An audit entry with id `id` written at `at` (its views round-trip as
/// JSON; one side may be absent).
pub fn audit_entry(id: &str, at: i64) -> AuditEntry {
    AuditEntry {
        id: id.into(),
        at,
        actor: "admin-1".into(),
        action: "client.update".into(),
        env: (at % 2 == 0).then(|| DEFAULT_ENV.to_string()),
        target: format!("target-{id}"),
        source: Some("127.0.0.1".into()),
        before: Some(serde_json::json!({"name": "old", "n": at})),
        after: (at % 3 != 0).then(|| serde_json::json!({"name": "new", "list": [1, 2]})),
    }
}

/// The audit log: entries come back as written, in id order, from a time
/// on, a page at a time after a given id; a repeated id is a conflict;
/// appending bumps no revision.
pub async fn the_audit_log_keeps_entries_and_pages_by_id_since_a_time(
    s: Arc<dyn Store>,
) -> TestResult {
    let rev = s.revision().await?;
    // Written out of order: the log is ordered by id, not by arrival.
    let entries: Vec<AuditEntry> = [("03", 30), ("01", 10), ("02", 20), ("04", 40), ("05", 50)]
        .into_iter()
        .map(|(id, at)| audit_entry(id, at))
        .collect();
    for e in &entries {
        s.insert_audit(e).await?;
    }
    assert_eq!(s.revision().await?, rev, "the log bumps no revision");
    assert!(matches!(
        s.insert_audit(&audit_entry("02", 99)).await,
        Err(StoreError::Conflict(_))
    ));
    let mut sorted = entries.clone();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(s.list_audit(0, None, 100).await?, sorted, "all, as written");
    let ids = |v: Vec<AuditEntry>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(s.list_audit(0, None, 2).await?), ["01", "02"]);
    assert_eq!(ids(s.list_audit(0, Some("02"), 2).await?), ["03", "04"]);
    assert_eq!(ids(s.list_audit(0, Some("04"), 2).await?), ["05"]);
    assert!(s.list_audit(0, Some("05"), 2).await?.is_empty());
    assert_eq!(ids(s.list_audit(30, None, 10).await?), ["03", "04", "05"]);
    assert_eq!(ids(s.list_audit(30, Some("03"), 1).await?), ["04"]);
    // Retention: what was written before the cut-off goes, nothing else.
    assert_eq!(s.purge_audit(30).await?, 2);
    assert_eq!(ids(s.list_audit(0, None, 10).await?), ["03", "04", "05"]);
    assert_eq!(s.purge_audit(30).await?, 0);
    assert_eq!(s.revision().await?, rev, "nor does its purge");
    Ok(())
}

/// An API key of `client_id` in `env` created at `t`, with every field set
/// but the revocation.
pub fn api_key(env: &str, id: &str, client_id: &str, t: i64) -> ApiKey {
    ApiKey {
        env: env.into(),
        id: id.into(),
        client_id: client_id.into(),
        name: Some(format!("key {id}")),
        digest: format!("digest-of-{id}"),
        created_at: t,
        expires_at: Some(t + 1000),
        revoked_at: None,
    }
}

/// API keys: every column round-trips (no name, no expiry included), ids
/// are unique per environment, listings order by creation then id and
/// filter by client; revocation is once and bumps the revision; a rotation
/// is a compare and set on the old key's expiry (one of two concurrent
/// ones wins, a revoked key loses) that writes both rows or neither;
/// deleting the client revokes its keys; the purge removes expired ones
/// and keeps those without an expiry.
pub async fn api_keys_round_trip_rotate_once_and_go_with_their_client(
    s: Arc<dyn Store>,
) -> TestResult {
    s.create_environment(
        &environment(DEFAULT_ENV, 1),
        &key_record(DEFAULT_ENV, "k", 1, 1),
    )
    .await?;
    s.create_client(&client(DEFAULT_ENV, "c", 1)).await?;
    let a = api_key(DEFAULT_ENV, "aaa", "c", 20);
    let b = ApiKey {
        name: None,
        expires_at: None,
        ..api_key(DEFAULT_ENV, "bbb", "c", 10)
    };
    let other = api_key(DEFAULT_ENV, "ccc", "d", 10);
    let r0 = s.revision().await?;
    s.insert_api_key(&a).await?;
    assert!(s.revision().await? > r0, "a new key bumps the revision");
    s.insert_api_key(&b).await?;
    s.insert_api_key(&other).await?;
    s.insert_api_key(&api_key("stg", "aaa", "c", 5)).await?;
    assert!(matches!(
        s.insert_api_key(&api_key(DEFAULT_ENV, "aaa", "d", 30))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_api_key(DEFAULT_ENV, "aaa").await?, Some(a.clone()));
    assert_eq!(s.get_api_key(DEFAULT_ENV, "bbb").await?, Some(b.clone()));
    assert_eq!(s.get_api_key(DEFAULT_ENV, "nope").await?, None);
    let ids = |keys: Vec<ApiKey>| keys.into_iter().map(|k| k.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_api_keys(DEFAULT_ENV, None).await?),
        ["bbb", "ccc", "aaa"]
    );
    assert_eq!(
        ids(s.list_api_keys(DEFAULT_ENV, Some("c")).await?),
        ["bbb", "aaa"]
    );
    assert_eq!(ids(s.list_api_keys("stg", None).await?), ["aaa"]);

    // Rotation: a compare and set on the old key's expiry.
    let a2 = api_key(DEFAULT_ENV, "aa2", "c", 40);
    let a3 = api_key(DEFAULT_ENV, "aa3", "c", 40);
    let r1 = s.revision().await?;
    assert!(s.rotate_api_key(&a, 100, &a2).await?);
    assert!(s.revision().await? > r1);
    assert!(
        !s.rotate_api_key(&a, 90, &a3).await?,
        "the expiry moved: the second rotation loses"
    );
    assert_eq!(
        s.get_api_key(DEFAULT_ENV, "aa3").await?,
        None,
        "nothing written"
    );
    assert_eq!(
        s.get_api_key(DEFAULT_ENV, "aaa")
            .await?
            .ok_or("aaa")?
            .expires_at,
        Some(100)
    );
    assert_eq!(s.get_api_key(DEFAULT_ENV, "aa2").await?, Some(a2.clone()));
    // A key without an expiry rotates too.
    assert!(s.rotate_api_key(&b, 50, &a3).await?);
    assert_eq!(
        s.get_api_key(DEFAULT_ENV, "bbb")
            .await?
            .ok_or("bbb")?
            .expires_at,
        Some(50)
    );

    // Revocation: once, with a bump; a revoked key does not rotate.
    let r2 = s.revision().await?;
    assert!(s.revoke_api_key(DEFAULT_ENV, "aa2", 60).await?);
    assert!(s.revision().await? > r2);
    let r3 = s.revision().await?;
    assert!(!s.revoke_api_key(DEFAULT_ENV, "aa2", 61).await?);
    assert!(!s.revoke_api_key(DEFAULT_ENV, "nope", 61).await?);
    assert_eq!(s.revision().await?, r3);
    let revoked = s.get_api_key(DEFAULT_ENV, "aa2").await?.ok_or("aa2")?;
    assert_eq!(revoked.revoked_at, Some(60));
    let a4 = api_key(DEFAULT_ENV, "aa4", "c", 70);
    assert!(!s.rotate_api_key(&revoked, 80, &a4).await?);
    assert_eq!(s.get_api_key(DEFAULT_ENV, "aa4").await?, None);

    // Deleting the client revokes its live keys, not another client's.
    assert!(s.delete_client(DEFAULT_ENV, "c", 75).await?);
    for id in ["aaa", "bbb", "aa3"] {
        let k = s.get_api_key(DEFAULT_ENV, id).await?.ok_or("kept")?;
        assert_eq!(k.revoked_at, Some(75), "{id}");
    }
    assert_eq!(
        s.get_api_key(DEFAULT_ENV, "aa2")
            .await?
            .ok_or("aa2")?
            .revoked_at,
        Some(60),
        "revoked earlier: its time stays"
    );
    assert_eq!(
        s.get_api_key(DEFAULT_ENV, "ccc")
            .await?
            .ok_or("ccc")?
            .revoked_at,
        None
    );

    // The purge: expired keys go (aaa at 100, bbb at 50; aa2, aa3 and ccc
    // expire at 1040 and 1010); none without an expiry exists now, so one
    // is added to show it stays.
    let forever = ApiKey {
        expires_at: None,
        ..api_key(DEFAULT_ENV, "eee", "d", 1)
    };
    s.insert_api_key(&forever).await?;
    assert!(s.purge_expired(101).await?.contains(&("api_keys", 2)));
    assert_eq!(
        ids(s.list_api_keys(DEFAULT_ENV, None).await?),
        ["eee", "ccc", "aa2", "aa3"]
    );
    assert!(s.purge_expired(5_000).await?.contains(&("api_keys", 4)));
    assert_eq!(ids(s.list_api_keys(DEFAULT_ENV, None).await?), ["eee"]);
    Ok(())
}

/// `write_if_unchanged` (the admin API's `If-Match`): writers that all read
/// the same version race; exactly one writes, the others find it changed
/// and write nothing. The same for a delete, and for a record that is gone.
pub async fn guarded_writes_from_one_version_have_one_winner(s: Arc<dyn Store>) -> TestResult {
    s.create_environment(
        &environment(DEFAULT_ENV, 1),
        &key_record(DEFAULT_ENV, "k", 1, 1),
    )
    .await?;
    s.create_api(&api("orders")).await?;
    let read = client(DEFAULT_ENV, "c1", 10);
    s.create_client(&read).await?;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = s.clone();
            let mut new = read.clone();
            new.name = format!("writer {i}");
            let w = Guarded::UpdateClient {
                expected: read.clone(),
                new,
            };
            tokio::spawn(async move { s.write_if_unchanged(&w).await.map(|won| won.then_some(i)) })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(i) = task.await?? {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let stored = s.get_client(DEFAULT_ENV, "c1").await?.ok_or("c1")?;
    assert_eq!(stored.name, format!("writer {}", winners[0]));

    // From the stale version: refused, nothing written, no bump.
    let r = s.revision().await?;
    let mut late = read.clone();
    late.name = "late".into();
    let w = Guarded::UpdateClient {
        expected: read.clone(),
        new: late,
    };
    assert!(!s.write_if_unchanged(&w).await?);
    assert_eq!(s.revision().await?, r);
    assert!(
        !s.write_if_unchanged(&Guarded::DeleteClient {
            expected: read,
            now: 20
        })
        .await?
    );
    // From the current one: done, and the revision moves.
    assert!(
        s.write_if_unchanged(&Guarded::DeleteClient {
            expected: stored.clone(),
            now: 20
        })
        .await?
    );
    assert!(s.revision().await? > r);
    assert_eq!(s.get_client(DEFAULT_ENV, "c1").await?, None);
    assert!(
        !s.write_if_unchanged(&Guarded::DeleteClient {
            expected: stored,
            now: 21
        })
        .await?
    );

    // APIs and environments alike.
    let a = api("orders");
    let mut wider = a.clone();
    wider.permissions.insert("admin".into());
    assert!(
        s.write_if_unchanged(&Guarded::UpdateApi {
            expected: a.clone(),
            new: wider.clone()
        })
        .await?
    );
    assert!(
        !s.write_if_unchanged(&Guarded::UpdateApi {
            expected: a.clone(),
            new: a.clone()
        })
        .await?
    );
    assert!(
        !s.write_if_unchanged(&Guarded::DeleteApi { expected: a })
            .await?
    );
    assert!(
        s.write_if_unchanged(&Guarded::DeleteApi { expected: wider })
            .await?
    );
    assert!(s.list_apis().await?.is_empty());
    let e = environment(DEFAULT_ENV, 1);
    let mut hosted = e.clone();
    hosted.hosts = vec!["auth.example.com".into()];
    assert!(
        s.write_if_unchanged(&Guarded::UpdateEnvironment {
            expected: e.clone(),
            new: hosted.clone()
        })
        .await?
    );
    assert!(
        !s.write_if_unchanged(&Guarded::UpdateEnvironment {
            expected: e,
            new: hosted
        })
        .await?
    );
    Ok(())
}

/// The partner portal's rows: partners and their offers, owned clients
/// (disabling a partner disables them, with a revision bump, and ends its
/// sessions), one-time invitations that create an account atomically, the
/// failed-attempt counter and its lock, sessions and their purge.
pub async fn partners_accounts_invitations_and_sessions(s: Arc<dyn Store>) -> TestResult {
    use tollgate_core::partner::{
        Invitation, Offer, Partner, PartnerAccount, PartnerClient, PortalSession,
    };
    s.create_environment(
        &environment(DEFAULT_ENV, 1),
        &key_record(DEFAULT_ENV, "k", 1, 1),
    )
    .await?;
    s.create_client(&client(DEFAULT_ENV, "c1", 1)).await?;
    s.create_client(&client(DEFAULT_ENV, "other", 1)).await?;
    let acme = Partner {
        id: "acme".into(),
        name: "Acme".into(),
        offers: vec![Offer {
            env: DEFAULT_ENV.into(),
            api: "https://api".into(),
            package: "basic".into(),
        }],
        enabled: true,
        created_at: 5,
    };
    s.insert_partner(&acme).await?;
    assert!(matches!(
        s.insert_partner(&acme).await,
        Err(StoreError::Conflict(_))
    ));
    s.insert_partner(&Partner {
        id: "beta".into(),
        offers: vec![],
        ..acme.clone()
    })
    .await?;
    assert_eq!(s.get_partner("acme").await?, Some(acme.clone()));
    let ids: Vec<String> = s.list_partners().await?.into_iter().map(|p| p.id).collect();
    assert_eq!(ids, ["acme", "beta"]);
    let renamed = Partner {
        name: "Acme Ltd".into(),
        offers: vec![],
        ..acme.clone()
    };
    assert!(s.update_partner(&renamed).await?);
    assert_eq!(s.get_partner("acme").await?, Some(renamed.clone()));
    assert!(
        !s.update_partner(&Partner {
            id: "nope".into(),
            ..renamed.clone()
        })
        .await?
    );

    let owned = PartnerClient {
        partner: "acme".into(),
        env: DEFAULT_ENV.into(),
        client_id: "c1".into(),
        created_at: 6,
    };
    s.insert_partner_client(&owned).await?;
    assert!(matches!(
        s.insert_partner_client(&PartnerClient {
            partner: "beta".into(),
            ..owned.clone()
        })
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.list_partner_clients("acme").await?, vec![owned.clone()]);
    assert!(s.list_partner_clients("beta").await?.is_empty());

    // An invitation creates one account, once, before it expires.
    let inv = Invitation {
        digest: "d1".into(),
        partner: "acme".into(),
        created_at: 10,
        expires_at: 100,
        used_at: None,
    };
    s.insert_invitation(&inv).await?;
    s.insert_invitation(&Invitation {
        digest: "old".into(),
        expires_at: 20,
        ..inv.clone()
    })
    .await?;
    assert_eq!(s.get_invitation("d1").await?, Some(inv.clone()));
    let jane = PartnerAccount {
        login: "jane".into(),
        partner: "acme".into(),
        password_hash: "$argon2id$x".into(),
        failed_attempts: 0,
        locked_until: None,
        created_at: 30,
    };
    assert!(
        !s.accept_invitation(
            "d1",
            30,
            &PartnerAccount {
                partner: "beta".into(),
                ..jane.clone()
            }
        )
        .await?,
        "another partner's invitation"
    );
    assert!(!s.accept_invitation("old", 30, &jane).await?, "expired");
    assert!(!s.accept_invitation("nope", 30, &jane).await?, "unknown");
    assert!(s.accept_invitation("d1", 30, &jane).await?);
    assert!(!s.accept_invitation("d1", 31, &jane).await?, "used once");
    assert_eq!(s.get_invitation("d1").await?.ok_or("d1")?.used_at, Some(30));
    assert_eq!(s.get_partner_account("jane").await?, Some(jane.clone()));
    // A taken login leaves the invitation unused.
    s.insert_invitation(&Invitation {
        digest: "d2".into(),
        ..inv.clone()
    })
    .await?;
    assert!(matches!(
        s.accept_invitation("d2", 40, &jane).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_invitation("d2").await?.ok_or("d2")?.used_at, None);

    // Failures count up; the third locks and starts again; a success clears.
    s.partner_login_failed("jane", 50, 3, 600).await?;
    s.partner_login_failed("jane", 51, 3, 600).await?;
    let a = s.get_partner_account("jane").await?.ok_or("jane")?;
    assert_eq!((a.failed_attempts, a.locked_until), (2, None));
    s.partner_login_failed("jane", 52, 3, 600).await?;
    let a = s.get_partner_account("jane").await?.ok_or("jane")?;
    assert_eq!((a.failed_attempts, a.locked_until), (0, Some(652)));
    s.partner_login_failed("jane", 53, 3, 600).await?;
    s.partner_login_succeeded("jane").await?;
    let a = s.get_partner_account("jane").await?.ok_or("jane")?;
    assert_eq!((a.failed_attempts, a.locked_until), (0, Some(652)));
    s.partner_login_failed("nobody", 53, 3, 600).await?;
    assert_eq!(s.get_partner_account("nobody").await?, None);

    // Sessions.
    let sess = PortalSession {
        digest: "s1".into(),
        login: "jane".into(),
        partner: "acme".into(),
        created_at: 60,
        expires_at: 1000,
    };
    s.insert_portal_session(&sess).await?;
    s.insert_portal_session(&PortalSession {
        digest: "s2".into(),
        ..sess.clone()
    })
    .await?;
    s.insert_portal_session(&PortalSession {
        digest: "s3".into(),
        expires_at: 70,
        ..sess.clone()
    })
    .await?;
    assert_eq!(s.get_portal_session("s1").await?, Some(sess.clone()));
    s.delete_portal_session("s1").await?;
    s.delete_portal_session("s1").await?;
    assert_eq!(s.get_portal_session("s1").await?, None);
    let purged = s.purge_expired(80).await?;
    assert!(purged.contains(&("portal_sessions", 1)), "{purged:?}");
    assert!(purged.contains(&("partner_invitations", 1)), "{purged:?}");
    assert_eq!(s.get_portal_session("s3").await?, None);
    assert_eq!(s.get_invitation("old").await?, None);

    // Disabling: the owned client (only) with a bump, sessions ended.
    let r = s.revision().await?;
    assert!(s.set_partner_enabled("acme", false).await?);
    assert!(s.revision().await? > r);
    assert!(!s.get_partner("acme").await?.ok_or("acme")?.enabled);
    assert!(!s.get_client(DEFAULT_ENV, "c1").await?.ok_or("c1")?.enabled);
    assert!(
        s.get_client(DEFAULT_ENV, "other")
            .await?
            .ok_or("other")?
            .enabled
    );
    assert_eq!(s.get_portal_session("s2").await?, None);
    assert!(s.set_partner_enabled("acme", true).await?);
    assert!(s.get_client(DEFAULT_ENV, "c1").await?.ok_or("c1")?.enabled);
    assert!(!s.set_partner_enabled("nope", false).await?);
    Ok(())
}

/// The portal's second factors (replaced whole, a step used once and only
/// forward, confirmation with the first code) and pending handovers
/// (taken once, purged after expiry).
pub async fn portal_second_factors_and_handovers(s: Arc<dyn Store>) -> TestResult {
    use tollgate_core::partner::{Handover, PartnerTotp};

    let pending = PartnerTotp {
        login: "jane".into(),
        sealed: "sealed-1".into(),
        confirmed: false,
        last_step: None,
        created_at: 10,
    };
    assert_eq!(s.get_partner_totp("jane").await?, None);
    assert!(!s.use_partner_totp_step("jane", 5, true).await?, "no row");
    s.put_partner_totp(&pending).await?;
    assert_eq!(s.get_partner_totp("jane").await?, Some(pending.clone()));
    // The confirming code: its step is recorded and the enrolment confirmed.
    assert!(s.use_partner_totp_step("jane", 100, true).await?);
    let t = s.get_partner_totp("jane").await?.ok_or("totp")?;
    assert_eq!((t.confirmed, t.last_step), (true, Some(100)));
    // Replay of the same step, or an earlier one: refused, nothing written.
    assert!(!s.use_partner_totp_step("jane", 100, false).await?);
    assert!(!s.use_partner_totp_step("jane", 99, false).await?);
    assert!(s.use_partner_totp_step("jane", 101, false).await?);
    let t = s.get_partner_totp("jane").await?.ok_or("totp")?;
    assert_eq!((t.confirmed, t.last_step), (true, Some(101)));
    // A new enrolment replaces the row whole.
    let again = PartnerTotp {
        sealed: "sealed-2".into(),
        created_at: 20,
        ..pending.clone()
    };
    s.put_partner_totp(&again).await?;
    assert_eq!(s.get_partner_totp("jane").await?, Some(again));
    assert!(s.use_partner_totp_step("jane", 7, false).await?);
    assert!(
        !s.get_partner_totp("jane").await?.ok_or("totp")?.confirmed,
        "a step used without confirm leaves it unconfirmed"
    );
    s.put_partner_totp(&PartnerTotp {
        login: "john".into(),
        ..pending.clone()
    })
    .await?;
    s.delete_partner_totp("jane").await?;
    s.delete_partner_totp("jane").await?;
    assert_eq!(s.get_partner_totp("jane").await?, None);
    assert!(s.get_partner_totp("john").await?.is_some());

    // Handovers.
    let h = Handover {
        digest: "h1".into(),
        partner: "acme".into(),
        label: "Client secret of app".into(),
        sealed: "sealed".into(),
        created_at: 10,
        expires_at: 1000,
    };
    s.insert_handover(&h).await?;
    assert!(
        matches!(s.insert_handover(&h).await, Err(StoreError::Conflict(_))),
        "one digest once"
    );
    s.insert_handover(&Handover {
        digest: "h2".into(),
        expires_at: 50,
        ..h.clone()
    })
    .await?;
    assert_eq!(s.get_handover("h1").await?, Some(h.clone()));
    assert_eq!(
        s.get_handover("h1").await?,
        Some(h.clone()),
        "a look keeps it"
    );
    assert_eq!(s.take_handover("h1").await?, Some(h.clone()));
    assert_eq!(s.take_handover("h1").await?, None, "taken once");
    assert_eq!(s.get_handover("h1").await?, None);
    let purged = s.purge_expired(60).await?;
    assert!(purged.contains(&("portal_handovers", 1)), "{purged:?}");
    assert_eq!(s.get_handover("h2").await?, None);
    Ok(())
}

/// Usage rows: deltas add up per (env, client, day), also from flushes
/// racing each other (instances over one database); a client's days come
/// back in order within the range asked; days older than the kept history
/// go with the purge. The issuance count reads back without counting.
pub async fn usage_adds_up_per_client_and_day_and_old_days_are_purged(
    s: Arc<dyn Store>,
) -> TestResult {
    use tollgate_core::usage::{KEEP_DAYS, UsageDay};
    let row = |client: &str, day: i64, n: (u64, u64, u64)| UsageDay {
        env: "default".into(),
        client_id: client.into(),
        day,
        issued: n.0,
        errors: n.1,
        throttled: n.2,
    };
    assert!(s.list_usage("default", "a", 0, 1_000).await?.is_empty());
    s.add_usage(&[]).await?;
    s.add_usage(&[
        row("a", 100, (2, 1, 0)),
        row("a", 101, (1, 0, 0)),
        row("b", 100, (5, 0, 0)),
    ])
    .await?;
    s.add_usage(&[row("a", 100, (3, 0, 4))]).await?;
    // Two instances flushing the same rows at once: every delta counts.
    let flushes = (0..8).map(|_| {
        let s = s.clone();
        tokio::spawn(async move {
            s.add_usage(&[row("b", 100, (1, 1, 1)), row("a", 101, (1, 0, 0))])
                .await
        })
    });
    for f in flushes.collect::<Vec<_>>() {
        f.await.map_err(|e| e.to_string())??;
    }
    assert_eq!(
        s.list_usage("default", "a", 100, 101).await?,
        vec![row("a", 100, (5, 1, 4)), row("a", 101, (9, 0, 0))]
    );
    assert_eq!(
        s.list_usage("default", "a", 101, 200).await?,
        vec![row("a", 101, (9, 0, 0))]
    );
    assert_eq!(
        s.list_usage("default", "b", 0, 1_000).await?,
        vec![row("b", 100, (13, 8, 8))]
    );
    assert!(s.list_usage("other", "a", 0, 1_000).await?.is_empty());
    // The purge at the end of day 100 + KEEP_DAYS keeps day 100 and 101;
    // a day later day 100 goes.
    let day = 86_400;
    let kept = s.purge_expired((100 + KEEP_DAYS) * day).await?;
    assert!(kept.contains(&("usage", 0)), "{kept:?}");
    let purged = s.purge_expired((101 + KEEP_DAYS) * day).await?;
    assert!(purged.contains(&("usage", 2)), "{purged:?}");
    assert_eq!(
        s.list_usage("default", "a", 0, 1_000).await?,
        vec![row("a", 101, (9, 0, 0))]
    );

    assert_eq!(s.get_issuance("default", "a").await?, None);
    s.count_issuance("default", "a", 60).await?;
    s.count_issuance("default", "a", 60).await?;
    assert_eq!(s.get_issuance("default", "a").await?, Some((60, 2)));
    Ok(())
}

/// Package requests (a decision is a compare-and-set from pending: of
/// two deciders one wins), a partner's accounts listed, provider admins'
/// portal sessions (purged once expired), and the guarded partner write
/// (of two writers from one version, one wins; a stale one writes nothing).
pub async fn package_requests_provider_sessions_and_guarded_partners(
    s: Arc<dyn Store>,
) -> TestResult {
    use tollgate_core::package_request::{PackageRequest, ProviderSession, RequestStatus};
    use tollgate_core::partner::{Offer, Partner, PartnerAccount};
    use tollgate_core::store::Guarded;

    let acme = Partner {
        id: "acme".into(),
        name: "Acme".into(),
        offers: vec![],
        enabled: true,
        created_at: 5,
    };
    s.insert_partner(&acme).await?;
    let ask = |id: &str, partner: &str, package: &str| PackageRequest {
        id: id.into(),
        partner: partner.into(),
        requested_by: "jane".into(),
        env: DEFAULT_ENV.into(),
        api: "https://api".into(),
        package: package.into(),
        note: "for the live feed".into(),
        status: RequestStatus::Pending,
        created_at: 10,
        decided_at: None,
        decided_by: None,
    };
    let r1 = ask("0001", "acme", "basic");
    s.insert_package_request(&r1).await?;
    assert!(matches!(
        s.insert_package_request(&r1).await,
        Err(StoreError::Conflict(_))
    ));
    s.insert_package_request(&ask("0002", "beta", "basic"))
        .await?;
    s.insert_package_request(&ask("0003", "acme", "full"))
        .await?;
    assert_eq!(s.get_package_request("0001").await?, Some(r1.clone()));
    assert_eq!(s.get_package_request("nope").await?, None);
    let ids = |v: Vec<PackageRequest>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_package_requests(None).await?),
        ["0001", "0002", "0003"]
    );
    assert_eq!(
        ids(s.list_package_requests(Some("acme")).await?),
        ["0001", "0003"]
    );

    // Two deciders of one request: one wins, the other changes nothing.
    let (a, b) = tokio::join!(
        s.decide_package_request("0001", RequestStatus::Approved, 20, "admin-a"),
        s.decide_package_request("0001", RequestStatus::Declined, 21, "admin-b"),
    );
    assert!(a? ^ b?, "exactly one decision wins");
    let decided = s.get_package_request("0001").await?.ok_or("request gone")?;
    assert_ne!(decided.status, RequestStatus::Pending);
    assert!(decided.decided_at.is_some() && decided.decided_by.is_some());
    assert!(
        !s.decide_package_request("0001", RequestStatus::Declined, 30, "late")
            .await?
    );
    assert_eq!(s.get_package_request("0001").await?, Some(decided));
    assert!(
        !s.decide_package_request("nope", RequestStatus::Approved, 30, "x")
            .await?
    );
    assert!(
        s.decide_package_request("0003", RequestStatus::Declined, 31, "cli")
            .await?
    );
    let declined = s.get_package_request("0003").await?.ok_or("request gone")?;
    assert_eq!(
        (
            declined.status,
            declined.decided_at,
            declined.decided_by.as_deref()
        ),
        (RequestStatus::Declined, Some(31), Some("cli"))
    );

    // A partner's accounts.
    assert!(s.list_partner_accounts("acme").await?.is_empty());
    for (login, digest) in [("zed", "i1"), ("amy", "i2")] {
        s.insert_invitation(&tollgate_core::partner::Invitation {
            digest: digest.into(),
            partner: "acme".into(),
            created_at: 1,
            expires_at: i64::MAX,
            used_at: None,
        })
        .await?;
        assert!(
            s.accept_invitation(
                digest,
                2,
                &PartnerAccount {
                    login: login.into(),
                    partner: "acme".into(),
                    password_hash: "$argon2id$x".into(),
                    failed_attempts: 0,
                    locked_until: None,
                    created_at: 2,
                },
            )
            .await?
        );
    }
    let logins: Vec<String> = s
        .list_partner_accounts("acme")
        .await?
        .into_iter()
        .map(|a| a.login)
        .collect();
    assert_eq!(logins, ["amy", "zed"]);
    assert!(s.list_partner_accounts("beta").await?.is_empty());

    // Provider sessions.
    let session = ProviderSession {
        digest: "d1".into(),
        admin_client: "admin".into(),
        scope: "admin:read admin:write".into(),
        created_at: 100,
        expires_at: 150,
    };
    s.insert_provider_session(&session).await?;
    assert_eq!(s.get_provider_session("d1").await?, Some(session.clone()));
    s.insert_provider_session(&ProviderSession {
        digest: "d2".into(),
        expires_at: 500,
        ..session.clone()
    })
    .await?;
    s.delete_provider_session("d2").await?;
    s.delete_provider_session("d2").await?;
    assert_eq!(s.get_provider_session("d2").await?, None);
    let purged = s.purge_expired(200).await?;
    assert!(purged.contains(&("provider_sessions", 1)), "{purged:?}");
    assert_eq!(s.get_provider_session("d1").await?, None);

    // The guarded partner write: two writers from one version.
    let offer = |package: &str| Offer {
        env: DEFAULT_ENV.into(),
        api: "https://api".into(),
        package: package.into(),
    };
    let mut with_basic = acme.clone();
    with_basic.offers = vec![offer("basic")];
    let mut renamed = acme.clone();
    renamed.name = "Acme Ltd".into();
    let first = Guarded::UpdatePartner {
        expected: acme.clone(),
        new: with_basic.clone(),
    };
    let second = Guarded::UpdatePartner {
        expected: acme.clone(),
        new: renamed.clone(),
    };
    let (a, b) = tokio::join!(s.write_if_unchanged(&first), s.write_if_unchanged(&second));
    let (a, b) = (a?, b?);
    assert!(a ^ b, "exactly one guarded write wins");
    let now = s.get_partner("acme").await?.ok_or("partner gone")?;
    assert_eq!(now, if a { with_basic } else { renamed });
    // A disabled partner is another version: the enabled flag is compared.
    assert!(s.set_partner_enabled("acme", false).await?);
    let mut stale = now.clone();
    stale.name = "Stale".into();
    assert!(
        !s.write_if_unchanged(&Guarded::UpdatePartner {
            expected: now.clone(),
            new: stale,
        })
        .await?
    );
    let disabled = s.get_partner("acme").await?.ok_or("partner gone")?;
    assert!(!disabled.enabled);
    assert_eq!(disabled.name, now.name);
    assert!(
        !s.write_if_unchanged(&Guarded::UpdatePartner {
            expected: Partner {
                id: "ghost".into(),
                ..acme.clone()
            },
            new: Partner {
                id: "ghost".into(),
                ..acme
            },
        })
        .await?
    );
    Ok(())
}
