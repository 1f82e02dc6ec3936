//! The gate over the in-process key source ([`CoreKeys`]) of a real core on
//! the memory store: tokens minted by `client_credentials`, decided from
//! memory, and the changes the core's sync brings (revocation, key
//! rotation) reaching the decisions, cached ones included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use secrecy::SecretString;
use tollgate_core::Tollgate;
use tollgate_core::crypto::master::MasterKey;
use tollgate_core::model::{Api, ApiGrant, DEFAULT_ENV};
use tollgate_core::service::{ClaimShape, ClientCredentials, NewClient};
use tollgate_core::store::Store;
use tollgate_core::testing::MemoryStore;
use tollgate_gate::decide::{KeyHeader, Request};
use tollgate_gate::{CoreKeys, Decision, Denial, Gate, Invalid, Policy};

const POLICY: &str = r#"
[gate]
leeway = "10s"

[[gate.route]]
methods = ["GET"]
path = "/v2/odds/**"
audience = "odds"
permissions_any = ["odds:read"]

[[gate.route]]
path = "/v2/admin/**"
audience = "odds"
permissions_all = ["odds:read", "odds:admin"]

[[gate.route]]
path = "/health"
public = true
"#;

struct World {
    tg: Arc<Tollgate>,
    store: Arc<MemoryStore>,
    gate: Gate,
    id: String,
    secret: SecretString,
}

impl World {
    async fn new() -> Self {
        let store = Arc::new(MemoryStore::new());
        let tg = Tollgate::open(
            store.clone(),
            &MasterKey::generate().unwrap(),
            "http://tg.test",
        )
        .await
        .unwrap()
        .keep_deny_list()
        .await
        .unwrap();
        for (id, perms) in [
            ("odds", &["odds:read", "odds:admin"][..]),
            ("other", &["x"][..]),
        ] {
            tg.create_api(Api {
                env: DEFAULT_ENV.into(),
                identifier: id.into(),
                permissions: perms.iter().map(|p| (*p).to_string()).collect(),
                packages: BTreeMap::new(),
                token_lifetime: Some(600),
                token_permissions: false,
                obligation: None,
                created_at: 0,
            })
            .await
            .unwrap();
        }
        let (client, secret) = tg
            .create_client(NewClient {
                env: DEFAULT_ENV.into(),
                name: "partner".into(),
                client_id: None,
                client_secret: None,
                apis: vec![
                    ApiGrant {
                        api: "odds".into(),
                        grants: vec!["odds:read".into()],
                    },
                    ApiGrant {
                        api: "other".into(),
                        grants: vec!["x".into()],
                    },
                ],
                grant_types: BTreeSet::new(),
                token_lifetime: None,
                roles: Default::default(),
                extra_claims: serde_json::Map::new(),
                capabilities: BTreeSet::new(),
                obligation: None,
                public: false,
            })
            .await
            .unwrap();
        tg.sync().await.unwrap();
        let tg = Arc::new(tg);
        let gate = Gate::new(
            Policy::parse(POLICY).unwrap(),
            Arc::new(CoreKeys(tg.clone())),
        );
        Self {
            tg,
            store,
            gate,
            id: client.client_id,
            secret: secret.unwrap(),
        }
    }

    async fn token(&self, audience: &str) -> (String, i64) {
        let env = self.tg.env(DEFAULT_ENV).unwrap();
        let issued = self
            .tg
            .client_credentials(
                &env,
                &ClientCredentials {
                    client_id: &self.id,
                    client_secret: &self.secret,
                    audience: Some(audience),
                    scope: None,
                    shape: ClaimShape::Rfc9068,
                    source: None,
                    default_lifetime: 600,
                },
            )
            .await
            .unwrap();
        (issued.access_token, issued.expires_at)
    }

    async fn decide(&self, method: &str, path: &str, token: Option<&str>) -> Decision {
        let auth = token.map(|t| format!("Bearer {t}"));
        self.gate
            .decide(&Request {
                env: DEFAULT_ENV,
                method,
                target: path,
                authorization: auth.as_deref(),
                api_key: KeyHeader::Absent,
                count_api_key_calls: false,
            })
            .await
    }
}

fn denial(d: Decision) -> Denial {
    match d {
        Decision::Deny(d) => d,
        Decision::Allow(_) => panic!("allowed"),
    }
}

#[tokio::test]
async fn decides_every_case_from_memory() {
    let w = World::new().await;
    let (token, _) = w.token("odds").await;
    match w.decide("GET", "/v2/odds/1?x=2", Some(&token)).await {
        Decision::Allow(Some(id)) => {
            assert_eq!(id.client_id.as_deref(), Some(w.id.as_str()));
            assert_eq!(id.subject, w.id);
            assert_eq!(id.scopes, "odds:read");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        w.decide("GET", "/health", None).await,
        Decision::Allow(None)
    );
    assert_eq!(
        denial(w.decide("GET", "/v2/odds/1", None).await),
        Denial::NoToken
    );
    assert_eq!(
        denial(w.decide("POST", "/v2/odds/1", Some(&token)).await),
        Denial::NoRoute
    );
    assert_eq!(
        denial(w.decide("GET", "/v2/../admin", Some(&token)).await),
        Denial::BadPath
    );
    assert_eq!(
        denial(w.decide("GET", "/v2/admin/x", Some(&token)).await),
        Denial::InsufficientScope {
            scope: "odds:admin".into(),
            any_of: false
        }
    );
    let (other, _) = w.token("other").await;
    assert_eq!(
        denial(w.decide("GET", "/v2/odds/1", Some(&other)).await),
        Denial::InvalidToken(Invalid::Audience)
    );
    // A token signed by another key, and garbage.
    let mut forged = token.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    assert_eq!(
        denial(w.decide("GET", "/v2/odds/1", Some(&forged)).await),
        Denial::InvalidToken(Invalid::Signature)
    );
    assert_eq!(
        denial(w.decide("GET", "/v2/odds/1", Some("abc")).await),
        Denial::InvalidToken(Invalid::Malformed)
    );
    assert_eq!(
        denial(w.decide("GET", "/v2/odds/1", Some("a b")).await),
        Denial::InvalidToken(Invalid::Malformed)
    );
}

#[tokio::test]
async fn expiry_counts_the_leeway_and_cached_allows_expire_too() {
    let w = World::new().await;
    let (token, exp) = w.token("odds").await;
    let auth = format!("Bearer {token}");
    let req = Request {
        env: DEFAULT_ENV,
        method: "GET",
        target: "/v2/odds/1",
        authorization: Some(&auth),
        api_key: KeyHeader::Absent,
        count_api_key_calls: false,
    };
    assert!(matches!(
        w.gate.decide_at(&req, exp - 1).await,
        Decision::Allow(_)
    ));
    assert_eq!(w.gate.cached(), 1);
    // Within the 10 s leeway, from the cache.
    assert!(matches!(
        w.gate.decide_at(&req, exp + 9).await,
        Decision::Allow(_)
    ));
    // Past it, the cached allow is not reused.
    assert_eq!(
        denial(w.gate.decide_at(&req, exp + 10).await),
        Denial::InvalidToken(Invalid::Expired)
    );
    // Without a cache entry as well.
    let fresh = Gate::new(
        Policy::parse(POLICY).unwrap(),
        Arc::new(CoreKeys(w.tg.clone())),
    );
    assert_eq!(
        denial(fresh.decide_at(&req, exp + 10).await),
        Denial::InvalidToken(Invalid::Expired)
    );
}

#[tokio::test]
async fn a_revocation_reaches_a_cached_allow_at_the_next_sync() {
    let w = World::new().await;
    let (token, _) = w.token("odds").await;
    assert!(matches!(
        w.decide("GET", "/v2/odds/1", Some(&token)).await,
        Decision::Allow(_)
    ));
    assert_eq!(w.gate.cached(), 1);
    let env = w.tg.env(DEFAULT_ENV).unwrap();
    let caller = w
        .store
        .get_client(DEFAULT_ENV, &w.id)
        .await
        .unwrap()
        .unwrap();
    w.tg.revoke(&env, &caller, &token).await.unwrap();
    assert!(
        w.tg.sync().await.unwrap(),
        "the revocation moved the revision"
    );
    assert_eq!(
        denial(w.decide("GET", "/v2/odds/1", Some(&token)).await),
        Denial::InvalidToken(Invalid::Revoked)
    );
    // Another token of the same client still passes.
    let (other, _) = w.token("odds").await;
    assert!(matches!(
        w.decide("GET", "/v2/odds/1", Some(&other)).await,
        Decision::Allow(_)
    ));
}

#[tokio::test]
async fn without_keep_deny_list_the_core_reports_nothing_revoked() {
    let store = Arc::new(MemoryStore::new());
    let tg = Tollgate::open(store.clone(), &MasterKey::generate().unwrap(), "http://t")
        .await
        .unwrap();
    store
        .revoke_token(DEFAULT_ENV, "j1", i64::MAX)
        .await
        .unwrap();
    tg.sync().await.unwrap();
    assert!(!tg.env(DEFAULT_ENV).unwrap().is_denied("j1"));
    let tg = tg.keep_deny_list().await.unwrap();
    assert!(tg.env(DEFAULT_ENV).unwrap().is_denied("j1"));
    assert!(!tg.env(DEFAULT_ENV).unwrap().is_denied("j2"));
}

#[tokio::test]
async fn tokens_of_a_rotated_key_pass_once_synced() {
    let w = World::new().await;
    let (before, _) = w.token("odds").await;
    // Keys are ordered by the second they activate: the new key must come
    // a second after the first to be the one that signs.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.tg.rotate_key(DEFAULT_ENV, 0).await.unwrap();
    w.tg.sync().await.unwrap();
    let (after, _) = w.token("odds").await;
    let kid = |t: &str| {
        use base64::Engine as _;
        let head = t.split('.').next().unwrap();
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(head)
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&json).unwrap()["kid"].clone()
    };
    assert_ne!(kid(&before), kid(&after), "the new key signs");
    for t in [&before, &after] {
        assert!(matches!(
            w.decide("GET", "/v2/odds/1", Some(t)).await,
            Decision::Allow(_)
        ));
    }
}

/// A GET of `path` with an API-key header and an `Authorization` header.
async fn decide(gate: &Gate, path: &str, api_key: KeyHeader<'_>, auth: Option<&str>) -> Decision {
    gate.decide(&Request {
        env: DEFAULT_ENV,
        method: "GET",
        target: path,
        authorization: auth,
        api_key,
        count_api_key_calls: false,
    })
    .await
}

/// The policy above with API keys taken on the odds and admin routes.
fn keys_policy() -> Policy {
    let text = POLICY
        .replace(
            "permissions_any = [\"odds:read\"]",
            "permissions_any = [\"odds:read\"]\napi_keys = true",
        )
        .replace(
            "permissions_all = [\"odds:read\", \"odds:admin\"]",
            "permissions_all = [\"odds:read\", \"odds:admin\"]\napi_keys = true",
        );
    Policy::parse(&text).unwrap()
}

#[tokio::test]
async fn an_api_key_stands_in_for_a_token_only_where_the_route_says() {
    use secrecy::ExposeSecret;
    use tollgate_gate::KeyRefused;

    let w = World::new().await;
    let (key, rec) =
        w.tg.create_api_key(DEFAULT_ENV, &w.id, None, None)
            .await
            .unwrap();
    let key = key.expose_secret().to_string();
    w.tg.sync().await.unwrap();
    let keyed = Gate::new(keys_policy(), Arc::new(CoreKeys(w.tg.clone())));
    match decide(&keyed, "/v2/odds/1", KeyHeader::One(&key), None).await {
        Decision::Allow(Some(id)) => {
            assert_eq!(id.client_id.as_deref(), Some(w.id.as_str()));
            assert_eq!(id.subject, w.id);
            assert_eq!(id.scopes, "odds:read");
            assert_eq!(id.api_key.as_deref(), Some(rec.id.as_str()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(keyed.cached(), 0, "key decisions are not cached");
    // The client lacks odds:admin.
    assert!(matches!(
        denial(decide(&keyed, "/v2/admin/x", KeyHeader::One(&key), None).await),
        Denial::InsufficientScope { .. }
    ));
    // A key beside a bearer token, or twice: refused.
    let (token, _) = w.token("odds").await;
    let bearer = format!("Bearer {token}");
    for (header, auth) in [
        (KeyHeader::One(&key), Some(bearer.as_str())),
        (KeyHeader::Repeated, None),
    ] {
        assert_eq!(
            denial(decide(&keyed, "/v2/odds/1", header, auth).await),
            Denial::InvalidApiKey(KeyRefused::Ambiguous)
        );
    }
    // A bearer token alone still decides; another scheme beside a key is no token.
    assert!(matches!(
        decide(&keyed, "/v2/odds/1", KeyHeader::Absent, Some(&bearer)).await,
        Decision::Allow(Some(_))
    ));
    assert!(matches!(
        decide(
            &keyed,
            "/v2/odds/1",
            KeyHeader::One(&key),
            Some("Basic eDp5")
        )
        .await,
        Decision::Allow(Some(_))
    ));
    // Where the route takes no keys (the first policy), a key is no credential.
    assert_eq!(
        denial(decide(&w.gate, "/v2/odds/1", KeyHeader::One(&key), None).await),
        Denial::NoToken
    );
    // Revoked: refused once the core has synced.
    w.tg.revoke_api_key(DEFAULT_ENV, &rec.id).await.unwrap();
    w.tg.sync().await.unwrap();
    assert_eq!(
        denial(decide(&keyed, "/v2/odds/1", KeyHeader::One(&key), None).await),
        Denial::InvalidApiKey(KeyRefused::Revoked)
    );
    assert_eq!(
        denial(decide(&keyed, "/v2/odds/1", KeyHeader::One("tgk_nope"), None).await),
        Denial::InvalidApiKey(KeyRefused::Invalid)
    );
}
