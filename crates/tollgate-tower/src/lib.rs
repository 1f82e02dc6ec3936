//! A tower layer for axum services that verifies tollgate access tokens
//! in-process, against a remote tollgate: no call to the issuer per request.
//!
//! [`TollgateLayer::builder`] names the issuer (as its tokens' `iss` say);
//! [`Builder::build`] reads its metadata and JWKS ([`tollgate_gate::RemoteKeys`]:
//! refetched on an unknown `kid` with single flight and a rate limit, and
//! refreshed periodically, so a key rotation is picked up without a
//! restart), and optionally starts polling its deny list for revocations.
//! Each request then goes through the gate's one verification core
//! ([`tollgate_gate::Gate`]: signature, issuer, `exp`/`nbf` with leeway,
//! deny list, audience, permissions, decisions cached per token and route):
//!
//! - allowed: the verified claims go into the request's extensions as
//!   [`Claims`] (also an extractor) and the inner service is called;
//! - refused: 401 with `WWW-Authenticate: Bearer` (with
//!   `error="invalid_token"` when a token was sent), 403 with
//!   `error="insufficient_scope"` and the scope needed (RFC 6750 §3), 503
//!   when the keys cannot be fetched.
//!
//! One required audience and permissions for every request, or a whole
//! route policy (the `[gate]` TOML of the server's gate, [`Builder::policy`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use tollgate_core::crypto::token::VerifiedClaims;
use tollgate_gate::decide::{KeyHeader, Request as GateRequest};
use tollgate_gate::path::Pattern;
use tollgate_gate::policy::{HeaderNames, MAX_LEEWAY};
use tollgate_gate::{
    Decision, Denial, Gate, Invalid, Policy, RemoteError, RemoteKeys, RemoteOptions, Route, Rule,
};

/// The environment name the layer decides under: routes of a policy with
/// `env` set apply only when it is this one.
pub const ENV: &str = "default";

/// The verified claims of the request's token, put in its extensions by
/// the layer. As an extractor it refuses (401) a request without them (a
/// handler outside the layer, or a public route of a policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims(pub Arc<VerifiedClaims>);

impl std::ops::Deref for Claims {
    type Target = VerifiedClaims;
    fn deref(&self) -> &VerifiedClaims {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        parts
            .extensions
            .get::<Claims>()
            .cloned()
            .ok_or_else(|| refuse(&Decision::Deny(Denial::NoToken)))
    }
}

/// Why a layer could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// Neither an audience nor a policy: a resource server must check that
    /// a token is meant for it (RFC 9068 §4).
    #[error("no audience: name the API (audience) the tokens must be for, or give a policy")]
    NoAudience,
    /// Both an audience (or permissions) and a policy.
    #[error("give either an audience with permissions, or a policy, not both")]
    Both,
    /// A leeway over 60 s.
    #[error("leeway {0:?} is over the 60s maximum")]
    Leeway(Duration),
    /// The issuer's metadata or keys could not be read.
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

/// Polling of the issuer's deny list.
struct DenyList {
    client_id: String,
    secret: SecretString,
    every: Duration,
}

/// How to build a [`TollgateLayer`].
#[must_use]
pub struct Builder {
    issuer: String,
    audience: Option<String>,
    any: Vec<String>,
    all: Vec<String>,
    policy: Option<Policy>,
    leeway: Duration,
    options: RemoteOptions,
    deny_list: Option<DenyList>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Tokens must be for `audience` (the API identifier in tollgate).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Tokens must hold at least one of `permissions`.
    pub fn permissions_any<I: IntoIterator<Item = S>, S: Into<String>>(mut self, p: I) -> Self {
        self.any.extend(p.into_iter().map(Into::into));
        self
    }

    /// Tokens must hold every one of `permissions`.
    pub fn permissions_all<I: IntoIterator<Item = S>, S: Into<String>>(mut self, p: I) -> Self {
        self.all.extend(p.into_iter().map(Into::into));
        self
    }

    /// Decides by a route policy (method + path → audience and
    /// permissions, or public; unmatched: 403) instead of one rule for
    /// every request; e.g. `Policy::parse` of the gate's `[gate]` TOML.
    /// Its leeway and cache size apply.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Tolerance on `exp`/`nbf` (at most 60 s; default none).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How keys are fetched (rate limit window, refresh period, timeout,
    /// HTTP client).
    pub fn remote_options(mut self, options: RemoteOptions) -> Self {
        self.options = options;
        self
    }

    /// Polls the issuer's deny list every `every` as client `client_id`
    /// (created with `--introspect`), so revoked tokens are refused within
    /// about `every` of the revocation.
    pub fn deny_list(
        mut self,
        client_id: impl Into<String>,
        secret: SecretString,
        every: Duration,
    ) -> Self {
        self.deny_list = Some(DenyList {
            client_id: client_id.into(),
            secret,
            every,
        });
        self
    }

    fn make_policy(&mut self) -> Result<Policy, BuildError> {
        if let Some(p) = self.policy.take() {
            if self.audience.is_some() || !self.any.is_empty() || !self.all.is_empty() {
                return Err(BuildError::Both);
            }
            return Ok(p);
        }
        let audience = self.audience.take().ok_or(BuildError::NoAudience)?;
        if self.leeway > MAX_LEEWAY {
            return Err(BuildError::Leeway(self.leeway));
        }
        let mut policy = Policy::default();
        policy.settings.leeway = self.leeway;
        policy.routes.push(Route {
            line: 0,
            env: None,
            methods: Vec::new(),
            // Every path. Parsing this constant cannot fail; the error is
            // mapped rather than unwrapped (workspace lints).
            path: Pattern::parse("/**").map_err(|_| BuildError::NoAudience)?,
            rule: Rule::Protected {
                audience,
                any: std::mem::take(&mut self.any).into_iter().collect(),
                all: std::mem::take(&mut self.all).into_iter().collect(),
                api_keys: false,
            },
        });
        Ok(policy)
    }

    /// Reads the issuer's metadata and keys and starts the background
    /// tasks (key refresh; deny-list polling when asked). Call inside a
    /// tokio runtime; the tasks end when the layer and its services are
    /// dropped.
    pub async fn build(mut self) -> Result<TollgateLayer, BuildError> {
        let policy = self.make_policy()?;
        let source = RemoteKeys::discover(&self.issuer, self.options.clone()).await?;
        source.spawn_refresh();
        if let Some(d) = self.deny_list.take() {
            source.spawn_deny_list(d.client_id, d.secret, d.every);
        }
        let gate = Gate::new(policy, source.clone());
        Ok(TollgateLayer {
            shared: Arc::new(Shared { gate, source }),
        })
    }
}

struct Shared {
    gate: Gate,
    source: Arc<RemoteKeys>,
}

/// The layer (see the crate doc). Cheap to clone: every service it makes
/// shares one key source and decision cache.
#[derive(Clone)]
pub struct TollgateLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TollgateLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TollgateLayer")
            .field("issuer", &self.shared.source.issuer())
            .finish_non_exhaustive()
    }
}

impl TollgateLayer {
    /// A layer for tokens of `issuer` (e.g. `https://auth.example.com`, or
    /// `…/e/production` for another environment than the default).
    pub fn builder(issuer: impl Into<String>) -> Builder {
        Builder {
            issuer: issuer.into(),
            audience: None,
            any: Vec::new(),
            all: Vec::new(),
            policy: None,
            leeway: Duration::ZERO,
            options: RemoteOptions::default(),
            deny_list: None,
        }
    }

    /// The key source (for its counters: fetches, keys known, deny list).
    pub fn keys(&self) -> &Arc<RemoteKeys> {
        &self.shared.source
    }
}

impl<S> tower::Layer<S> for TollgateLayer {
    type Service = TollgateService<S>;

    fn layer(&self, inner: S) -> TollgateService<S> {
        TollgateService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service the layer wraps around `S`.
#[derive(Clone)]
pub struct TollgateService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for TollgateService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TollgateService").finish_non_exhaustive()
    }
}

impl<S> tower::Service<Request> for TollgateService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The clone that was polled ready serves this request (tower's
        // rule); a fresh clone stays behind for the next one.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let shared = self.shared.clone();
        Box::pin(async move {
            let asked = Asked::of(&req);
            let decision = asked.decide(&shared.gate).await;
            match decision {
                Decision::Allow(Some(id)) => {
                    // A token's claims (the remote source checks no API
                    // keys, so there always are some here).
                    if let Some(c) = &id.claims {
                        req.extensions_mut().insert(Claims(c.clone()));
                    }
                    inner.call(req).await
                }
                Decision::Allow(None) => inner.call(req).await,
                Decision::Deny(_) => Ok(refuse(&decision)),
            }
        })
    }
}

/// What the gate reads of a request, copied out of it: the body is not
/// `Sync`, so the request cannot be borrowed across the decision's await.
struct Asked {
    method: String,
    target: String,
    authorization: Option<String>,
    /// Two `Authorization` headers: which one a handler reads is unknown.
    doubled: bool,
}

impl Asked {
    fn of(req: &Request) -> Self {
        let mut auths = req.headers().get_all(header::AUTHORIZATION).iter();
        let first = auths.next();
        Self {
            method: req.method().as_str().to_string(),
            target: req
                .uri()
                .path_and_query()
                .map_or_else(|| req.uri().path(), |pq| pq.as_str())
                .to_string(),
            authorization: first.and_then(|v| v.to_str().ok()).map(str::to_string),
            doubled: auths.next().is_some(),
        }
    }

    async fn decide(&self, gate: &Gate) -> Decision {
        if self.doubled {
            return Decision::Deny(Denial::InvalidToken(Invalid::Malformed));
        }
        gate.decide(&GateRequest {
            env: ENV,
            method: &self.method,
            target: &self.target,
            authorization: self.authorization.as_deref(),
            // API keys are the issuer's records, which a remote source
            // cannot check: a key header is not read here.
            api_key: KeyHeader::Absent,
            count_api_key_calls: false,
        })
        .await
    }
}

/// The RFC 6750 answer to a refusal (the gate's, shared with forward-auth).
fn refuse(decision: &Decision) -> Response {
    let answer = tollgate_gate::forward::answer(decision, &HeaderNames::default());
    let mut resp = answer.body.unwrap_or_default().into_response();
    *resp.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::FORBIDDEN);
    let h = resp.headers_mut();
    for (name, value) in answer.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            h.insert(n, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_follow_rfc_6750() {
        let r = refuse(&Decision::Deny(Denial::NoToken));
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let r = refuse(&Decision::Deny(Denial::InvalidToken(Invalid::Expired)));
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let c = r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap_or("");
        assert!(c.starts_with("Bearer error=\"invalid_token\""), "{c}");
        let r = refuse(&Decision::Deny(Denial::InsufficientScope {
            scope: "odds:admin".into(),
            any_of: false,
        }));
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let c = r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap_or("");
        assert!(
            c.contains("error=\"insufficient_scope\"") && c.contains("scope=\"odds:admin\""),
            "{c}"
        );
    }

    #[test]
    fn an_audience_or_a_policy_is_required_not_both() {
        let mut b = TollgateLayer::builder("http://i.test");
        assert_eq!(b.make_policy().err(), Some(BuildError::NoAudience));
        let mut b = TollgateLayer::builder("http://i.test")
            .audience("odds")
            .policy(Policy::default());
        assert_eq!(b.make_policy().err(), Some(BuildError::Both));
        let mut b = TollgateLayer::builder("http://i.test")
            .audience("odds")
            .leeway(Duration::from_secs(61));
        assert!(matches!(b.make_policy(), Err(BuildError::Leeway(_))));
        let mut b = TollgateLayer::builder("http://i.test")
            .audience("odds")
            .permissions_any(["odds:read"]);
        let p = b.make_policy().unwrap_or_default();
        assert_eq!(p.routes.len(), 1);
        assert!(
            matches!(&p.routes[0].rule, Rule::Protected { audience, any, .. }
            if audience == "odds" && any.contains("odds:read"))
        );
    }
}

/// The README's example, compiled (not run) with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;
