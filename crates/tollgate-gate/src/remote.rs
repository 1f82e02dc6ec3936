//! A remote issuer's keys and revocations over HTTP: the [`KeySource`] of a
//! gate that runs outside the tollgate server (the tower layer).
//!
//! [`RemoteKeys::discover`] reads the issuer's metadata (RFC 8414
//! `/.well-known/oauth-authorization-server` under the issuer, else OpenID
//! Connect Discovery's `/.well-known/openid-configuration`; tollgate serves
//! both per environment), checks that it names the same issuer, and fetches
//! the JWKS it points to once. After that:
//!
//! - a token whose `kid` is not known triggers a refetch, **single flight**
//!   (concurrent requests for the same new key wait for one fetch) and
//!   **rate limited**: at most one fetch per `refetch_gap` (10 s by
//!   default) whatever the `kid`s, so a flood of bogus `kid`s costs at most
//!   one fetch per window. A `kid` found absent is remembered (the negative
//!   cache) and refused without waiting for the fetch lock until the window
//!   has passed;
//! - a background task ([`RemoteKeys::spawn_refresh`]) refetches every
//!   `refresh_every` (5 min by default), so keys tollgate publishes ahead of
//!   a rotation (`tollgate key rotate --publish-delay`) are known before
//!   they sign, and retired keys are dropped;
//! - an optional second task ([`RemoteKeys::spawn_deny_list`]) polls the
//!   issuer's deny list (`GET /gate/deny-list`, authenticated as a client
//!   with the introspect capability), so revoked tokens are refused.
//!
//! A source holds one issuer; the environment a gate names is ignored.
//! Fetches go through hyper's HTTP/1 client, without TLS: the issuer must be
//! reachable over `http://` (an internal address, a sidecar terminating
//! TLS). Answers are read up to 1 MiB. (`reqwest` was not used: as a
//! normal dependency it turns on hyper-util's proxy support, which builds a
//! second `base64`.)

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use secrecy::{ExposeSecret, SecretString};
use tollgate_core::crypto::token::{
    VerifiedClaims, VerifyError, access_token_kid, verify_signature_with,
};

use crate::source::{KeySource, SourceError};

/// Default [`RemoteOptions::refetch_gap`].
pub const DEFAULT_REFETCH_GAP: Duration = Duration::from_secs(10);
/// Default [`RemoteOptions::refresh_every`].
pub const DEFAULT_REFRESH_EVERY: Duration = Duration::from_secs(300);
/// Path of tollgate's deny list, relative to the issuer.
pub const DENY_LIST_PATH: &str = "/gate/deny-list";
/// `kid`s remembered as absent at most; beyond, the memory is cleared (the
/// rate limit still holds).
const NEGATIVE_ENTRIES: usize = 4096;
/// A `kid` longer than this is not remembered (nor ever found).
const LONGEST_KID: usize = 256;
/// The largest answer read (metadata, JWKS, deny list).
const LARGEST_ANSWER: usize = 1 << 20;

type Http = Client<HttpConnector, Empty<Bytes>>;

/// How a [`RemoteKeys`] fetches.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Least time between two JWKS fetches caused by unknown `kid`s.
    pub refetch_gap: Duration,
    /// Period of the background refresh ([`RemoteKeys::spawn_refresh`]).
    pub refresh_every: Duration,
    /// Timeout of each HTTP request (answer included).
    pub timeout: Duration,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            refetch_gap: DEFAULT_REFETCH_GAP,
            refresh_every: DEFAULT_REFRESH_EVERY,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why an issuer's metadata or keys could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// The issuer is not an `http://` URL.
    #[error("issuer '{0}' is not an http:// URL (https is not supported: see the module doc)")]
    BadIssuer(String),
    /// A request failed (network, status, body).
    #[error("fetching {url}: {reason}")]
    Fetch {
        /// What was fetched.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// The metadata names another issuer (RFC 8414 §3.3: it must not be used).
    #[error("metadata at {url} names issuer '{found}', not '{expected}'")]
    IssuerMismatch {
        /// Where the metadata was read.
        url: String,
        /// The issuer asked for.
        expected: String,
        /// The issuer it names.
        found: String,
    },
    /// The metadata has no `jwks_uri`.
    #[error("metadata at {0} has no jwks_uri")]
    NoJwksUri(String),
    /// The JWKS is not a JSON object with `keys`.
    #[error("the JWKS at {0} is not a key set")]
    BadJwks(String),
}

/// One published key, ready to verify.
struct Key {
    key: DecodingKey,
    alg: Algorithm,
}

/// What the last fetch for unknown `kid`s did, guarded by the single-flight
/// lock.
#[derive(Default)]
struct Fetched {
    /// When the last fetch started (any fetch: refresh or unknown `kid`).
    at: Option<Instant>,
    /// Whether it failed (unknown `kid`s then read as "cannot tell").
    failed: bool,
}

/// A remote issuer's keys and deny list (see the module doc).
pub struct RemoteKeys {
    issuer: String,
    jwks_uri: String,
    http: Http,
    timeout: Duration,
    refetch_gap: Duration,
    refresh_every: Duration,
    keys: RwLock<Arc<HashMap<String, Key>>>,
    denied: RwLock<Arc<HashSet<String>>>,
    generation: AtomicI64,
    /// Single flight: held while fetching the JWKS.
    fetch: tokio::sync::Mutex<Fetched>,
    /// `kid`s found absent, and when.
    absent: Mutex<HashMap<String, Instant>>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("issuer", &self.issuer)
            .field("jwks_uri", &self.jwks_uri)
            .finish_non_exhaustive()
    }
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

fn write<T>(lock: &RwLock<T>, value: T) {
    *lock
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = value;
}

impl RemoteKeys {
    /// Reads `issuer`'s metadata and JWKS (see the module doc).
    pub async fn discover(issuer: &str, opts: RemoteOptions) -> Result<Arc<Self>, RemoteError> {
        if !issuer.starts_with("http://") {
            return Err(RemoteError::BadIssuer(issuer.to_string()));
        }
        let http: Http = Client::builder(TokioExecutor::new()).build_http();
        let timeout = opts.timeout;
        let base = issuer.trim_end_matches('/');
        let mut last = None;
        let mut metadata = None;
        for well_known in [
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ] {
            let url = format!("{base}{well_known}");
            match get_json(&http, timeout, &url).await {
                Ok(doc) => {
                    metadata = Some((url, doc));
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some((url, doc)) = metadata else {
            return Err(last.unwrap_or(RemoteError::BadIssuer(issuer.to_string())));
        };
        let found = doc["issuer"].as_str().unwrap_or_default();
        if found != issuer {
            return Err(RemoteError::IssuerMismatch {
                url,
                expected: issuer.to_string(),
                found: found.to_string(),
            });
        }
        let jwks_uri = doc["jwks_uri"]
            .as_str()
            .ok_or_else(|| RemoteError::NoJwksUri(url.clone()))?
            .to_string();
        let source = Arc::new(Self {
            issuer: issuer.to_string(),
            jwks_uri,
            http,
            timeout,
            refetch_gap: opts.refetch_gap,
            refresh_every: opts.refresh_every,
            keys: RwLock::new(Arc::new(HashMap::new())),
            denied: RwLock::new(Arc::new(HashSet::new())),
            generation: AtomicI64::new(0),
            fetch: tokio::sync::Mutex::new(Fetched::default()),
            absent: Mutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
        });
        let mut fetched = source.fetch.lock().await;
        source.refetch(&mut fetched).await?;
        drop(fetched);
        Ok(source)
    }

    /// The issuer, as its metadata names it.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The JWKS URL the metadata gave.
    pub fn jwks_uri(&self) -> &str {
        &self.jwks_uri
    }

    /// JWKS fetches so far (the first one included).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Whether key `kid` is known now (no fetch).
    pub fn knows(&self, kid: &str) -> bool {
        read(&self.keys).contains_key(kid)
    }

    /// Revoked token ids known now.
    pub fn denied(&self) -> usize {
        read(&self.denied).len()
    }

    /// Fetches the JWKS now, under the single-flight lock `fetched`, and
    /// installs it; on failure the keys held stay.
    async fn refetch(&self, fetched: &mut Fetched) -> Result<(), RemoteError> {
        fetched.at = Some(Instant::now());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = get_json(&self.http, self.timeout, &self.jwks_uri)
            .await
            .and_then(|doc| {
                parse_jwks(&doc).ok_or_else(|| RemoteError::BadJwks(self.jwks_uri.clone()))
            });
        fetched.failed = result.is_err();
        let keys = result?;
        let changed = {
            let old = read(&self.keys);
            old.len() != keys.len() || keys.keys().any(|k| !old.contains_key(k))
        };
        write(&self.keys, Arc::new(keys));
        if changed {
            self.generation.fetch_add(1, Ordering::AcqRel);
            // A kid found absent may be there now.
            self.absent_map().clear();
        }
        Ok(())
    }

    fn absent_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.absent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn recently_absent(&self, kid: &str) -> bool {
        self.absent_map()
            .get(kid)
            .is_some_and(|at| at.elapsed() < self.refetch_gap)
    }

    fn remember_absent(&self, kid: &str) {
        if kid.len() > LONGEST_KID {
            return;
        }
        let mut absent = self.absent_map();
        if absent.len() >= NEGATIVE_ENTRIES {
            absent.clear();
        }
        absent.insert(kid.to_string(), Instant::now());
    }

    /// The key `kid`, fetching the JWKS again if the rate limit allows.
    async fn key_for(&self, kid: &str) -> Result<Arc<HashMap<String, Key>>, SourceError> {
        let keys = read(&self.keys);
        if keys.contains_key(kid) {
            return Ok(keys);
        }
        if kid.len() > LONGEST_KID || self.recently_absent(kid) {
            return Err(SourceError::Malformed);
        }
        let mut fetched = self.fetch.lock().await;
        // Another request may have fetched while this one waited.
        let keys = read(&self.keys);
        if keys.contains_key(kid) {
            return Ok(keys);
        }
        if fetched.at.is_some_and(|at| at.elapsed() < self.refetch_gap) {
            self.remember_absent(kid);
            return Err(if fetched.failed {
                SourceError::Unavailable
            } else {
                SourceError::Malformed
            });
        }
        if self.refetch(&mut fetched).await.is_err() {
            return Err(SourceError::Unavailable);
        }
        let keys = read(&self.keys);
        if keys.contains_key(kid) {
            Ok(keys)
        } else {
            self.remember_absent(kid);
            Err(SourceError::Malformed)
        }
    }

    /// Fetches the JWKS now, whatever the rate limit (what the background
    /// refresh does each period), after any fetch under way.
    pub async fn refresh(&self) -> Result<(), RemoteError> {
        let mut fetched = self.fetch.lock().await;
        self.refetch(&mut fetched).await
    }

    /// Starts the periodic refresh; it ends when the source is dropped.
    pub fn spawn_refresh(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let every = self.refresh_every.max(Duration::from_millis(10));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(me) = weak.upgrade() else { return };
                if let Err(e) = me.refresh().await {
                    tracing::warn!(error = %e, "refreshing a remote issuer's keys failed; the keys held stay");
                }
            }
        })
    }

    /// Replaces the deny list; the generation moves when it changed.
    pub fn set_denied(&self, jtis: HashSet<String>) {
        if *read(&self.denied) == jtis {
            return;
        }
        write(&self.denied, Arc::new(jtis));
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Polls the issuer's deny list every `every` as client `client_id`
    /// (which needs the introspect capability), replacing the one held; it
    /// ends when the source is dropped. The first poll is at once.
    pub fn spawn_deny_list(
        self: &Arc<Self>,
        client_id: String,
        secret: SecretString,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let url = format!("{}{DENY_LIST_PATH}", self.issuer.trim_end_matches('/'));
        let every = every.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut etag: Option<String> = None;
            loop {
                let Some(me) = weak.upgrade() else { return };
                match me
                    .poll_deny_list(&url, &client_id, &secret, etag.as_deref())
                    .await
                {
                    Ok(Some(tag)) => etag = tag,
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "polling a remote issuer's deny list failed; the list held stays");
                    }
                }
                drop(me);
                tokio::time::sleep(every).await;
            }
        })
    }

    /// One poll: `Ok(None)` when unchanged (304), `Ok(Some(etag))` when
    /// replaced.
    async fn poll_deny_list(
        &self,
        url: &str,
        client_id: &str,
        secret: &SecretString,
        etag: Option<&str>,
    ) -> Result<Option<Option<String>>, RemoteError> {
        let fail = |reason: String| RemoteError::Fetch {
            url: url.to_string(),
            reason,
        };
        // RFC 6749 §2.3.1: id and secret are form-encoded inside Basic.
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            form_encode(client_id),
            form_encode(secret.expose_secret())
        ));
        let mut headers = vec![("authorization", format!("Basic {basic}"))];
        if let Some(tag) = etag {
            headers.push(("if-none-match", tag.to_string()));
        }
        let got = get(&self.http, self.timeout, url, &headers)
            .await
            .map_err(fail)?;
        if got.status == 304 {
            return Ok(None);
        }
        if got.status != 200 {
            return Err(fail(format!("status {}", got.status)));
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&got.body).map_err(|e| fail(e.to_string()))?;
        let list = doc["revoked"]
            .as_array()
            .ok_or_else(|| fail("no 'revoked' list".into()))?;
        let jtis = list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        self.set_denied(jtis);
        Ok(Some(got.etag))
    }
}

#[async_trait]
impl KeySource for RemoteKeys {
    fn generation(&self) -> i64 {
        self.generation.load(Ordering::Acquire)
    }

    async fn verify(&self, _env: &str, token: &str) -> Result<VerifiedClaims, SourceError> {
        let kid = access_token_kid(token).map_err(|_| SourceError::Malformed)?;
        let keys = self.key_for(&kid).await?;
        let key = keys.get(&kid).ok_or(SourceError::Malformed)?;
        verify_signature_with(token, &self.issuer, &kid, &key.key, key.alg).map_err(|e| match e {
            VerifyError::Malformed => SourceError::Malformed,
            _ => SourceError::Invalid,
        })
    }

    fn is_denied(&self, _env: &str, jti: &str) -> bool {
        read(&self.denied).contains(jti)
    }
}

/// An answer as read.
struct Got {
    status: u16,
    etag: Option<String>,
    body: Bytes,
}

/// `GET url` with `headers`, the whole answer within `timeout`.
async fn get(
    http: &Http,
    timeout: Duration,
    url: &str,
    headers: &[(&str, String)],
) -> Result<Got, String> {
    let mut req = hyper::Request::get(url);
    for (name, value) in headers {
        req = req.header(*name, value.as_str());
    }
    let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
    let exchange = async {
        let resp = http.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = Limited::new(resp.into_body(), LARGEST_ANSWER)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Got { status, etag, body })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

async fn get_json(
    http: &Http,
    timeout: Duration,
    url: &str,
) -> Result<serde_json::Value, RemoteError> {
    let fail = |reason: String| RemoteError::Fetch {
        url: url.to_string(),
        reason,
    };
    let got = get(http, timeout, url, &[]).await.map_err(fail)?;
    if got.status != 200 {
        return Err(fail(format!("status {}", got.status)));
    }
    serde_json::from_slice(&got.body).map_err(|e| fail(e.to_string()))
}

/// The usable keys of a JWKS document, by `kid`; `None` when it is not a
/// key set. Keys without a `kid`, of a kind this verifier does not take, or
/// shared secrets (`oct`: a JWKS is public, and accepting one would let
/// anyone sign) are skipped, not fatal: an issuer may publish more than a
/// verifier uses.
fn parse_jwks(doc: &serde_json::Value) -> Option<HashMap<String, Key>> {
    let list = doc.get("keys")?.as_array()?;
    let mut keys = HashMap::new();
    for v in list {
        let Ok(jwk) = serde_json::from_value::<Jwk>(v.clone()) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let Some(alg) = algorithm(&jwk) else {
            continue;
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        keys.insert(kid, Key { key, alg });
    }
    Some(keys)
}

/// The algorithm a key verifies: its `alg` when it names one that fits the
/// key's kind, else the kind's only one (RSA: RS256).
fn algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let named = jwk.common.key_algorithm.map(Algorithm::try_from);
    let fits = |a: Algorithm| match (&jwk.algorithm, a) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512) => {
            true
        }
        (AlgorithmParameters::RSA(_), Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512) => {
            true
        }
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        _ => false,
    };
    match named {
        Some(Ok(a)) => fits(a).then_some(a),
        Some(Err(_)) => None,
        None => [
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
        ]
        .into_iter()
        .find(|a| fits(*a)),
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._*".contains(&b) {
            out.push(char::from(b));
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_secrets_and_unknown_kinds_are_skipped() {
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "s", "k": "c2VjcmV0", "alg": "HS256"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "e", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "XYZ", "kid": "x"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "r", "alg": "RS256", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]});
        let keys = parse_jwks(&doc).unwrap();
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        assert_eq!(kids, ["e"]);
        assert_eq!(keys["e"].alg, Algorithm::EdDSA);
        assert!(parse_jwks(&serde_json::json!({"nokeys": []})).is_none());
    }

    #[test]
    fn form_encoding_leaves_unreserved_bytes() {
        assert_eq!(form_encode("a-b_c.d"), "a-b_c.d");
        assert_eq!(form_encode("a b:c/é"), "a+b%3Ac%2F%C3%A9");
    }
}
