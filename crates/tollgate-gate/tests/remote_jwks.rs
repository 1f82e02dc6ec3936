//! The remote key source ([`RemoteKeys`]) against a counting issuer: a tiny
//! axum server publishing metadata and a JWKS it can change, counting JWKS
//! fetches. A flood of bogus `kid`s costs at most one fetch per window;
//! concurrent requests for a new key cost one fetch; the periodic refresh
//! picks a rotation up without any request; the issuer named in the
//! metadata must be the one asked for; the gate over this source decides.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use tollgate_core::crypto::keys::{self, SigningKey};
use tollgate_core::crypto::master::{DerivedKeys, MasterKey};
use tollgate_core::model::Alg;
use tollgate_gate::decide::{KeyHeader, Request};
use tollgate_gate::{
    Decision, Denial, Gate, Invalid, KeySource, Policy, RemoteError, RemoteKeys, RemoteOptions,
    SourceError,
};

#[derive(Clone)]
struct Issuer {
    /// The issuer URL the metadata names.
    name: Arc<Mutex<String>>,
    /// Published JWKs.
    jwks: Arc<Mutex<Vec<serde_json::Value>>>,
    fetches: Arc<AtomicUsize>,
    /// How long a JWKS answer takes (so concurrent requests overlap).
    delay: Duration,
}

async fn metadata(State(s): State<Issuer>) -> axum::Json<serde_json::Value> {
    let name = s.name.lock().unwrap().clone();
    axum::Json(serde_json::json!({
        "issuer": name,
        "jwks_uri": format!("{name}/.well-known/jwks.json"),
    }))
}

async fn jwks(State(s): State<Issuer>) -> axum::Json<serde_json::Value> {
    s.fetches.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(s.delay).await;
    let keys = s.jwks.lock().unwrap().clone();
    axum::Json(serde_json::json!({ "keys": keys }))
}

struct World {
    url: String,
    issuer: Issuer,
    derived: DerivedKeys,
}

impl World {
    async fn start(delay: Duration) -> Self {
        let issuer = Issuer {
            name: Arc::new(Mutex::new(String::new())),
            jwks: Arc::new(Mutex::new(Vec::new())),
            fetches: Arc::new(AtomicUsize::new(0)),
            delay,
        };
        let app = Router::new()
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/.well-known/jwks.json", get(jwks))
            .with_state(issuer.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        *issuer.name.lock().unwrap() = url.clone();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let derived = MasterKey::generate().unwrap().derive().unwrap();
        Self {
            url,
            issuer,
            derived,
        }
    }

    /// A new key, published.
    fn publish(&self) -> SigningKey {
        let rec = keys::generate(&self.derived, "default", Alg::ES256, 0).unwrap();
        let key = SigningKey::load(&self.derived, &rec).unwrap();
        self.issuer.jwks.lock().unwrap().push(key.jwk().clone());
        key
    }

    fn fetches(&self) -> usize {
        self.issuer.fetches.load(Ordering::SeqCst)
    }

    fn token(&self, key: &SigningKey, kid: Option<&str>, scope: &str) -> String {
        let now = now();
        let claims = serde_json::json!({
            "iss": self.url, "sub": "c1", "aud": "odds", "exp": now + 300, "iat": now,
            "jti": format!("j-{scope}-{}", kid.unwrap_or("")), "client_id": "c1", "scope": scope,
        });
        let token = key.sign(claims.to_string().as_bytes()).unwrap();
        match kid {
            None => token,
            // Another kid in the header: the signature no longer matters,
            // the key lookup fails first.
            Some(kid) => {
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                let header = serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": kid});
                let rest = token.split_once('.').unwrap().1;
                format!("{}.{rest}", b64.encode(header.to_string()))
            }
        }
    }

    async fn source(&self, gap: Duration, refresh: Duration) -> Arc<RemoteKeys> {
        RemoteKeys::discover(
            &self.url,
            RemoteOptions {
                refetch_gap: gap,
                refresh_every: refresh,
                ..RemoteOptions::default()
            },
        )
        .await
        .unwrap()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_flood_of_bogus_kids_costs_at_most_one_fetch_per_window() {
    let w = World::start(Duration::ZERO).await;
    let key = w.publish();
    let gap = Duration::from_millis(300);
    let source = w.source(gap, Duration::from_secs(3600)).await;
    assert_eq!(w.fetches(), 1, "fetched once at discovery");
    let good = w.token(&key, None, "odds:read");
    assert!(source.verify("default", &good).await.is_ok());

    let started = Instant::now();
    for i in 0..1000 {
        let bogus = w.token(&key, Some(&format!("bogus-{i}")), "x");
        assert_eq!(
            source.verify("default", &bogus).await.unwrap_err(),
            SourceError::Malformed
        );
    }
    // Also the same bogus kid, over and over (the negative cache).
    for _ in 0..1000 {
        let bogus = w.token(&key, Some("again"), "x");
        assert!(source.verify("default", &bogus).await.is_err());
    }
    let elapsed = started.elapsed();
    let windows = elapsed.as_millis() / gap.as_millis() + 1;
    let extra = w.fetches() - 1;
    assert!(
        extra as u128 <= windows,
        "{extra} extra fetches in {elapsed:?} ({windows} windows of {gap:?})"
    );
    assert_eq!(source.fetches() as usize, w.fetches());
    // The genuine token still verifies without fetching.
    let before = w.fetches();
    assert!(source.verify("default", &good).await.is_ok());
    assert_eq!(w.fetches(), before);
}

#[tokio::test]
async fn with_the_default_window_a_flood_right_after_discovery_fetches_nothing() {
    let w = World::start(Duration::ZERO).await;
    let key = w.publish();
    let source = w
        .source(
            RemoteOptions::default().refetch_gap,
            Duration::from_secs(3600),
        )
        .await;
    for i in 0..1000 {
        let bogus = w.token(&key, Some(&format!("k{i}")), "x");
        assert!(source.verify("default", &bogus).await.is_err());
    }
    // Discovery fetched less than 10 s ago: the window is not over.
    assert!(w.fetches() <= 2, "{} fetches", w.fetches());
}

#[tokio::test]
async fn concurrent_requests_for_a_new_key_cost_one_fetch() {
    // The JWKS answer takes 200 ms, so the requests overlap the fetch.
    let w = World::start(Duration::from_millis(200)).await;
    w.publish();
    let gap = Duration::from_millis(50);
    let source = w.source(gap, Duration::from_secs(3600)).await;
    let before = w.fetches();
    // The issuer rotates: a new key, unknown to the source.
    let new = w.publish();
    tokio::time::sleep(gap * 2).await;
    let token = w.token(&new, None, "odds:read");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (source, token) = (source.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            source.verify("default", &token).await
        }));
    }
    for t in tasks {
        let claims = t.await.unwrap().unwrap();
        assert_eq!(claims.sub, "c1");
    }
    assert_eq!(
        w.fetches(),
        before + 1,
        "one fetch for 50 concurrent requests"
    );
}

#[tokio::test]
async fn the_periodic_refresh_picks_a_rotation_up_without_a_request() {
    let w = World::start(Duration::ZERO).await;
    let old = w.publish();
    let old_kid = old.kid().to_string();
    let source = w
        .source(Duration::from_secs(3600), Duration::from_millis(100))
        .await;
    let _refresh = source.spawn_refresh();
    let generation = source.generation();
    let new = w.publish();
    let kid = new.kid().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !source.knows(&kid) {
        assert!(Instant::now() < deadline, "the new key was never fetched");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(source.generation() > generation, "cached decisions go");
    // The window is an hour: the key is used without a fetch on demand.
    let fetches = w.fetches();
    assert!(
        source
            .verify("default", &w.token(&new, None, "x"))
            .await
            .is_ok()
    );
    assert_eq!(w.fetches(), fetches);
    // A retired key (gone from the JWKS) is dropped at a later refresh.
    w.issuer
        .jwks
        .lock()
        .unwrap()
        .retain(|k| k["kid"] == kid.as_str());
    let deadline = Instant::now() + Duration::from_secs(10);
    while source.knows(&old_kid) {
        assert!(
            Instant::now() < deadline,
            "the retired key was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        source
            .verify("default", &w.token(&old, None, "x"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn metadata_naming_another_issuer_is_refused() {
    let w = World::start(Duration::ZERO).await;
    w.publish();
    *w.issuer.name.lock().unwrap() = "http://elsewhere.test".into();
    let err = RemoteKeys::discover(&w.url, RemoteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, RemoteError::IssuerMismatch { .. }), "{err}");
    assert!(matches!(
        RemoteKeys::discover("ftp://x", RemoteOptions::default()).await,
        Err(RemoteError::BadIssuer(_))
    ));
}

#[tokio::test]
async fn a_token_of_another_issuer_or_key_is_refused() {
    let w = World::start(Duration::ZERO).await;
    let key = w.publish();
    let source = w
        .source(Duration::from_secs(3600), Duration::from_secs(3600))
        .await;
    // Signed by a key the issuer does not publish, under a published kid.
    let other = World::start(Duration::ZERO).await;
    let stranger = other.publish();
    let forged = other.token(&stranger, Some(key.kid()), "x");
    assert_eq!(
        source.verify("default", &forged).await.unwrap_err(),
        SourceError::Invalid
    );
    // The other world's issuer in a token signed by this issuer's key.
    let now = now();
    let claims = serde_json::json!({
        "iss": other.url, "sub": "c1", "aud": "odds", "exp": now + 300, "iat": now, "jti": "j",
    });
    let foreign = key.sign(claims.to_string().as_bytes()).unwrap();
    assert_eq!(
        source.verify("default", &foreign).await.unwrap_err(),
        SourceError::Invalid
    );
}

#[tokio::test]
async fn the_gate_decides_over_the_remote_source_and_its_deny_list() {
    let w = World::start(Duration::ZERO).await;
    let key = w.publish();
    let source = w
        .source(Duration::from_secs(3600), Duration::from_secs(3600))
        .await;
    let policy = Policy::parse(
        r#"
[gate]
[[gate.route]]
path = "/v2/odds/**"
audience = "odds"
permissions_any = ["odds:read"]
"#,
    )
    .unwrap();
    let gate = Gate::new(policy, source.clone());
    let token = w.token(&key, None, "odds:read");
    let auth = format!("Bearer {token}");
    let req = Request {
        env: "default",
        method: "GET",
        target: "/v2/odds/1",
        authorization: Some(&auth),
        api_key: KeyHeader::Absent,
        count_api_key_calls: false,
    };
    let Decision::Allow(Some(id)) = gate.decide(&req).await else {
        panic!("not allowed");
    };
    assert_eq!(id.subject, "c1");
    let claims = id.claims.clone().expect("a token's claims");
    assert_eq!(claims.aud, "odds");
    let thin = format!("Bearer {}", w.token(&key, None, "odds:write"));
    assert!(matches!(
        gate.decide(&Request {
            authorization: Some(&thin),
            ..req
        })
        .await,
        Decision::Deny(Denial::InsufficientScope { .. })
    ));
    // A revocation learnt from the deny list drops the cached allow.
    let jti = claims.jti.clone();
    source.set_denied([jti].into_iter().collect());
    assert_eq!(
        gate.decide(&req).await,
        Decision::Deny(Denial::InvalidToken(Invalid::Revoked))
    );
}
