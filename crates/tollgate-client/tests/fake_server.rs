//! The token sources against a tiny in-test server (axum) that counts
//! requests and misbehaves on purpose: single flight, the cache key,
//! background refresh, the margin, Retry-After, rotation and its store,
//! the lost race, re-login, and the 401 retry of both middlewares.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tollgate_client::{
    AuthedClient, BearerLayer, ClientCredentials, Error, HeaderLogin, MemoryStore, Options,
    RefreshStore, RetryPolicy, Secret, SendWithToken as _, StoreError, TokenCache,
};

#[derive(Default)]
struct Fake {
    /// Token requests at /oauth/token.
    tokens: AtomicUsize,
    logins: AtomicUsize,
    refreshes: AtomicUsize,
    /// Seconds of life of each token.
    lifetime: AtomicUsize,
    /// This many token requests get 429 with `Retry-After: retry_after`.
    rate_limited: AtomicUsize,
    retry_after: AtomicUsize,
    /// When set, /oauth/token refuses with invalid_client.
    refuse: AtomicUsize,
    /// Token requests take this long (ms), so concurrent callers overlap.
    delay_ms: AtomicUsize,
    /// The live refresh token of the header login.
    current_refresh: Mutex<Option<String>>,
    /// Access tokens /api accepts.
    valid: Mutex<HashSet<String>>,
    seq: AtomicUsize,
}

type Shared = Arc<Fake>;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Fake {
    fn next(&self) -> usize {
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// An unsigned JWT-shaped token with `exp` (clients read exp only).
    fn jwt(&self, tag: &str) -> String {
        let exp = now_secs() + self.lifetime.load(Ordering::SeqCst) as u64;
        let payload =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp},"n":"{tag}-{}"}}"#, self.next()));
        let t = format!("eyJhbGciOiJub25lIn0.{payload}.x");
        self.valid.lock().unwrap().insert(t.clone());
        t
    }
}

async fn token(State(f): State<Shared>, body: String) -> Response {
    f.tokens.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(
        f.delay_ms.load(Ordering::SeqCst) as u64
    ))
    .await;
    if f.rate_limited.load(Ordering::SeqCst) > 0 {
        f.rate_limited.fetch_sub(1, Ordering::SeqCst);
        let secs = f.retry_after.load(Ordering::SeqCst).to_string();
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", secs)], "").into_response();
    }
    if f.refuse.load(Ordering::SeqCst) > 0 {
        return (
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
        )
            .into_response();
    }
    let scope = serde_urlencoded::from_str::<Vec<(String, String)>>(&body)
        .unwrap_or_default()
        .into_iter()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v)
        .unwrap_or_default();
    let t = f.jwt(&scope);
    let body = serde_json::json!({
        "access_token": t,
        "token_type": "Bearer",
        "expires_in": f.lifetime.load(Ordering::SeqCst),
    });
    ([("content-type", "application/json")], body.to_string()).into_response()
}

fn pair(f: &Fake) -> Response {
    let access = f.jwt("user");
    let refresh = format!("r-{}", f.next());
    *f.current_refresh.lock().unwrap() = Some(refresh.clone());
    (
        StatusCode::OK,
        [
            ("set-authorization", access),
            ("set-refresh-token", refresh),
        ],
    )
        .into_response()
}

async fn login(State(f): State<Shared>, h: HeaderMap) -> Response {
    f.logins.fetch_add(1, Ordering::SeqCst);
    if h.get("authorization").is_none() {
        return (StatusCode::UNAUTHORIZED, "Not authenticated").into_response();
    }
    pair(&f)
}

async fn refresh(State(f): State<Shared>, h: HeaderMap) -> Response {
    f.refreshes.fetch_add(1, Ordering::SeqCst);
    let presented = h
        .get("refresh-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let live = f.current_refresh.lock().unwrap().clone();
    if presented.is_none() || presented != live {
        return (StatusCode::UNAUTHORIZED, "Not authenticated").into_response();
    }
    pair(&f)
}

async fn api(State(f): State<Shared>, h: HeaderMap) -> StatusCode {
    let t = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if f.valid.lock().unwrap().contains(t) {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

async fn start(lifetime: usize) -> (String, Shared) {
    let f: Shared = Arc::new(Fake::default());
    f.lifetime.store(lifetime, Ordering::SeqCst);
    let app = Router::new()
        .route("/oauth/token", post(token))
        .route("/v2/authentication/login", get(login))
        .route("/v2/authentication/refresh", get(refresh))
        .route("/api", get(api))
        .with_state(f.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, f)
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(5),
    }
}

fn opts() -> Options {
    Options::default()
        .margin(Duration::from_secs(1))
        .retry(quick_retries())
        .store(Arc::new(MemoryStore::new()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_cause_one_request() {
    let (url, f) = start(600).await;
    f.delay_ms.store(100, Ordering::SeqCst);
    let src = ClientCredentials::new(&url, "c", "s")
        .build(opts())
        .unwrap();
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let s = src.clone();
            tokio::spawn(async move { s.token().await.unwrap().secret().to_string() })
        })
        .collect();
    let mut seen = HashSet::new();
    for t in tasks {
        seen.insert(t.await.unwrap());
    }
    assert_eq!(f.tokens.load(Ordering::SeqCst), 1);
    assert_eq!(seen.len(), 1, "everybody got the same token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_share_one_failure_instead_of_repeating_it() {
    let (url, f) = start(600).await;
    f.delay_ms.store(100, Ordering::SeqCst);
    f.refuse.store(1, Ordering::SeqCst);
    let src = ClientCredentials::new(&url, "c", "wrong")
        .build(opts())
        .unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let s = src.clone();
            tokio::spawn(async move { s.token().await })
        })
        .collect();
    for t in tasks {
        match t.await.unwrap() {
            Err(Error::Refused { code, status, .. }) => {
                assert_eq!((code.as_str(), status), ("invalid_client", 401));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(f.tokens.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_cache_key_separates_scopes_and_shares_equal_keys() {
    let (url, f) = start(600).await;
    let cache = TokenCache::new();
    let o = || opts().cache(cache.clone());
    let read = ClientCredentials::new(&url, "c", "s")
        .scope("read")
        .build(o())
        .unwrap();
    let write = ClientCredentials::new(&url, "c", "s")
        .scope("write")
        .build(o())
        .unwrap();
    let read_again = ClientCredentials::new(&url, "c", "s")
        .scope("read")
        .build(o())
        .unwrap();
    let other_aud = ClientCredentials::new(&url, "c", "s")
        .scope("read")
        .audience("x")
        .build(o())
        .unwrap();
    let r = read.token().await.unwrap();
    let w = write.token().await.unwrap();
    assert_ne!(r.secret(), w.secret());
    assert_eq!(read_again.token().await.unwrap().secret(), r.secret());
    assert_ne!(other_aud.token().await.unwrap().secret(), r.secret());
    assert_eq!(f.tokens.load(Ordering::SeqCst), 3);
    assert_eq!(cache.len(), 3);
}

#[tokio::test]
async fn refresh_happens_in_the_background_while_the_old_token_is_handed_out() {
    let (url, f) = start(4).await;
    f.delay_ms.store(300, Ordering::SeqCst);
    let src = ClientCredentials::new(&url, "c", "s")
        .build(opts().refresh_at(0.5, 0.0))
        .unwrap();
    let first = src.token().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    // Past half the lifetime: the caller gets the old token at once…
    let still = src.token().await.unwrap();
    assert_eq!(still.secret(), first.secret());
    // …and one refresh is under way, whoever else asks meanwhile.
    for _ in 0..20 {
        assert_eq!(src.token().await.unwrap().secret(), first.secret());
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(f.tokens.load(Ordering::SeqCst), 2);
    assert_ne!(src.token().await.unwrap().secret(), first.secret());
}

#[tokio::test]
async fn no_token_with_less_than_the_margin_left_is_handed_out() {
    let (url, f) = start(3).await;
    let margin = Duration::from_secs(2);
    // Refresh late (at 90 %), so only the margin protects the callers.
    let src = ClientCredentials::new(&url, "c", "s")
        .build(opts().margin(margin).refresh_at(0.9, 0.0))
        .unwrap();
    let until = Instant::now() + Duration::from_secs(4);
    let mut calls = 0;
    while Instant::now() < until {
        let t = src.token().await.unwrap();
        assert!(
            t.remaining() > margin - Duration::from_millis(5),
            "{:?}",
            t.remaining()
        );
        calls += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(calls > 20);
    assert!(
        f.tokens.load(Ordering::SeqCst) >= 3,
        "refreshed at least every second"
    );
    // A token that cannot outlive the margin is refused, not handed out.
    let strict = ClientCredentials::new(&url, "c2", "s")
        .build(opts().margin(Duration::from_secs(5)))
        .unwrap();
    assert!(matches!(strict.token().await, Err(Error::TooShort { .. })));
}

#[tokio::test]
async fn retry_after_is_waited_out_not_hammered() {
    let (url, f) = start(600).await;
    f.rate_limited.store(2, Ordering::SeqCst);
    f.retry_after.store(1, Ordering::SeqCst);
    let src = ClientCredentials::new(&url, "c", "s")
        .build(opts())
        .unwrap();
    let started = Instant::now();
    src.token().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        f.tokens.load(Ordering::SeqCst),
        3,
        "two refusals, one success"
    );

    // Asked to wait longer than allowed: a typed error at once, one request.
    let (url, f) = start(600).await;
    f.rate_limited.store(1, Ordering::SeqCst);
    f.retry_after.store(3600, Ordering::SeqCst);
    let src = ClientCredentials::new(&url, "c", "s")
        .build(opts())
        .unwrap();
    match src.token().await {
        Err(Error::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(3600)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.tokens.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff() {
    // Nothing listens on this port: every attempt fails to connect.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let src = ClientCredentials::new(format!("http://127.0.0.1:{port}"), "c", "s")
        .build(opts())
        .unwrap();
    match src.token().await {
        Err(Error::Unavailable { attempts, .. }) => assert_eq!(attempts, 4),
        other => panic!("{other:?}"),
    }
}

/// A store that records the order of saves and can be told to fail.
#[derive(Default)]
struct Recording {
    inner: MemoryStore,
    saves: Mutex<Vec<String>>,
    fail: AtomicUsize,
}

impl RefreshStore for Recording {
    fn load(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        self.inner.load(key)
    }
    fn save(&self, key: &str, token: &Secret) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) > 0 {
            return Err(StoreError("disk full".into()));
        }
        self.saves.lock().unwrap().push(token.expose().to_string());
        self.inner.save(key, token)
    }
    fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.inner.remove(key)
    }
}

#[tokio::test]
async fn a_rotated_refresh_token_is_stored_before_the_access_token_is_used() {
    let (url, f) = start(600).await;
    let store = Arc::new(Recording::default());
    let src = HeaderLogin::new(&url, "a@example.com", "pw")
        .build(opts().store(store.clone()))
        .unwrap();
    src.token().await.unwrap();
    for _ in 0..3 {
        src.refresh().await.unwrap();
        // When the token is in our hands, the server's live refresh token is on disk.
        let live = f.current_refresh.lock().unwrap().clone().unwrap();
        assert_eq!(store.saves.lock().unwrap().last().unwrap(), &live);
    }
    assert_eq!(store.saves.lock().unwrap().len(), 4);
    // If it cannot be stored, the new access token is not handed out.
    store.fail.store(1, Ordering::SeqCst);
    assert!(matches!(src.refresh().await, Err(Error::Store(_))));
    assert_eq!(f.logins.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_lost_race_rereads_the_store_before_giving_up() {
    let (url, f) = start(600).await;
    // Two processes: their own caches, one store.
    let store = Arc::new(MemoryStore::new());
    let a = HeaderLogin::new(&url, "a@example.com", "pw")
        .build(opts().store(store.clone()).relogin(false))
        .unwrap();
    let b = HeaderLogin::new(&url, "a@example.com", "pw")
        .build(opts().store(store.clone()).relogin(false))
        .unwrap();
    a.token().await.unwrap(); // login: r1
    b.refresh().await.unwrap(); // r1 → r2, stored
    // A still holds r1: refused, re-reads the store, refreshes with r2.
    a.refresh().await.unwrap();
    assert_eq!(f.logins.load(Ordering::SeqCst), 1, "no new login");
    assert_eq!(f.refreshes.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_dead_refresh_token_means_a_new_login_or_a_typed_error() {
    let (url, f) = start(600).await;
    let store = Arc::new(MemoryStore::new());
    let relogin = HeaderLogin::new(&url, "a@example.com", "pw")
        .build(opts().store(store.clone()))
        .unwrap();
    relogin.token().await.unwrap();
    *f.current_refresh.lock().unwrap() = None; // the server forgot the session
    relogin.refresh().await.unwrap();
    assert_eq!(f.logins.load(Ordering::SeqCst), 2);

    let strict = HeaderLogin::new(&url, "b@example.com", "pw")
        .build(opts().relogin(false))
        .unwrap();
    strict.token().await.unwrap();
    *f.current_refresh.lock().unwrap() = None;
    match strict.refresh().await {
        Err(Error::SessionEnded { code, contract }) => {
            assert_eq!(code, "not_authenticated");
            assert_eq!(contract.name(), "header-login");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn reqwest_helper_refreshes_once_on_401() {
    let (url, f) = start(600).await;
    let src = ClientCredentials::new(&url, "c", "s")
        .build(opts())
        .unwrap();
    let client = AuthedClient::new(reqwest::Client::new(), src.clone());
    let r = client
        .send(client.http().get(format!("{url}/api")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The API stops accepting the cached token (revoked, unknown key).
    f.valid.lock().unwrap().clear();
    let r = reqwest::Client::new()
        .get(format!("{url}/api"))
        .send_with(&src)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(f.tokens.load(Ordering::SeqCst), 2);
    // Any other answer is the caller's, without a new token.
    let before = f.tokens.load(Ordering::SeqCst);
    let r = reqwest::Client::new()
        .get(format!("{url}/nothing-here"))
        .send_with(&src)
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(f.tokens.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn tower_layer_adds_the_token_and_retries_once_on_401() {
    use tower::{Layer as _, ServiceExt as _};
    let (url, f) = start(600).await;
    let src = ClientCredentials::new(&url, "c", "s")
        .build(opts())
        .unwrap();
    let http = reqwest::Client::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let inner = tower::service_fn(move |req: http::Request<String>| {
        let http = http.clone();
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            let r = http
                .request(req.method().clone(), req.uri().to_string())
                .headers(req.headers().clone())
                .body(req.into_body())
                .send()
                .await?;
            let status = r.status();
            let body = r.text().await?;
            let mut resp = http::Response::new(body);
            *resp.status_mut() = status;
            Ok::<_, reqwest::Error>(resp)
        }
    });
    let svc = BearerLayer::new(src).layer(inner);
    let req = || {
        http::Request::get(format!("{url}/api"))
            .body(String::new())
            .unwrap()
    };
    let r = svc.clone().oneshot(req()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    f.valid.lock().unwrap().clear();
    let r = svc.oneshot(req()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 3, "the 401 and its retry");
    assert_eq!(f.tokens.load(Ordering::SeqCst), 2);
}
