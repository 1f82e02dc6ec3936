//! The one verification core every front end uses: a request's method,
//! path and `Authorization` in, a [`Decision`] out.
//!
//! Order: the route (unmatched → denied, public → allowed), then the
//! credential. An API key, where the route takes them (`api_keys = true`):
//! the key source checks it and answers the client and what it holds at the
//! route's audience, then the route's permissions apply (not cached: the
//! source reads memory, and a `limit:` quota may count each call). Else the
//! bearer token: the key source checks type, key, signature and issuer; the
//! gate checks `exp`/`nbf` with its leeway, then (cached from here on, per
//! token and route) the deny list, the audience and the route's permissions.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use tollgate_core::crypto::token::VerifiedClaims;
use tollgate_core::model::RateInfo;
use tollgate_core::service::grants::api_key::ApiKeyError;

use crate::cache::{DecisionCache, Key};
use crate::path::RequestPath;
use crate::policy::{Policy, Rule};
use crate::source::{KeySource, SourceError};

/// Who a request is, as the upstream learns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's `client_id` (an API key's client).
    pub client_id: Option<String>,
    /// The token's `sub` (an API key's client).
    pub subject: String,
    /// The token's permissions, space-separated (an API key's client's
    /// permissions at the route's audience).
    pub scopes: String,
    /// Every verified claim (what an in-process front end such as the
    /// tower layer hands the application); none for an API key.
    pub claims: Option<Arc<VerifiedClaims>>,
    /// The API key's id when a key was presented (not secret; for logs).
    pub api_key: Option<String>,
}

/// Why an API key is not accepted (401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefused {
    /// The key header sent twice, or both a key and a bearer token: which
    /// one the upstream would read is unknown.
    Ambiguous,
    /// Not a key, no such key, or a wrong secret.
    Invalid,
    /// Past its expiry (or a rotation's grace).
    Expired,
    /// Revoked.
    Revoked,
    /// Its client is disabled or deleted.
    ClientDisabled,
}

impl KeyRefused {
    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ambiguous => "api_key_ambiguous",
            Self::Invalid => "api_key_invalid",
            Self::Expired => "api_key_expired",
            Self::Revoked => "api_key_revoked",
            Self::ClientDisabled => "client_disabled",
        }
    }
}

/// Why a token is not accepted (401 `invalid_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not a JWT of this issuer (type, unknown `kid`, unparsable).
    Malformed,
    /// Bad signature or issuer.
    Signature,
    /// Past `exp` plus the leeway.
    Expired,
    /// Before `nbf` minus the leeway.
    NotYetValid,
    /// Not for the route's audience.
    Audience,
    /// On the deny list.
    Revoked,
    /// The environment does not exist.
    UnknownEnv,
    /// Its client is disabled or deleted.
    ClientDisabled,
}

impl Invalid {
    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Signature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Audience => "wrong_audience",
            Self::Revoked => "revoked",
            Self::UnknownEnv => "unknown_env",
            Self::ClientDisabled => "client_disabled",
        }
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No route matches: denied whatever the token (403).
    NoRoute,
    /// A path the gate will not interpret (dot segments, encoded slashes; 403).
    BadPath,
    /// No bearer token on a protected route (401).
    NoToken,
    /// A bearer token that is not valid here (401 `invalid_token`).
    InvalidToken(Invalid),
    /// A valid token lacking permissions (403 `insufficient_scope`).
    InsufficientScope {
        /// The permissions needed, space-separated.
        scope: String,
        /// Whether one of them is enough (`permissions_any`) rather than all.
        any_of: bool,
    },
    /// An API key that is not accepted (401).
    InvalidApiKey(KeyRefused),
    /// A valid API key whose client holds nothing at the route's audience
    /// (403).
    NotGranted,
    /// A valid API key whose client's `limit:` quota is used up (429).
    RateLimited(RateInfo),
    /// The key source cannot tell now (503).
    Unavailable,
}

impl Denial {
    /// A short name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NoRoute => "no_route",
            Self::BadPath => "bad_path",
            Self::NoToken => "no_token",
            Self::InvalidToken(i) => i.as_str(),
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::InvalidApiKey(k) => k.as_str(),
            Self::NotGranted => "not_granted",
            Self::RateLimited(_) => "rate_limited",
            Self::Unavailable => "unavailable",
        }
    }
}

/// What the gate decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Pass; with the identity when a token was checked (`None`: public).
    Allow(Option<Arc<Identity>>),
    /// Refuse.
    Deny(Denial),
}

/// A request as a front end read it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The environment (issuer) it is for.
    pub env: &'a str,
    /// Its method, upper case.
    pub method: &'a str,
    /// Its target: path and query.
    pub target: &'a str,
    /// Its `Authorization` header, if it had one.
    pub authorization: Option<&'a str>,
    /// Its API-key header (`X-API-Key` unless configured otherwise).
    pub api_key: KeyHeader<'a>,
    /// Whether a call allowed by API key counts against the client's
    /// `limit:` quota (a setting of the environment).
    pub count_api_key_calls: bool,
}

/// The API-key header of a request, as a front end found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyHeader<'a> {
    /// None sent.
    #[default]
    Absent,
    /// One, with its value (not text: an empty value, which no key is).
    One(&'a str),
    /// Several.
    Repeated,
}

/// A policy with its decisions: replaced together, so no decision outlives
/// the policy that made it.
#[derive(Debug)]
struct Loaded {
    policy: Policy,
    cache: DecisionCache<Decision>,
}

/// The gate: a policy, a key source and the decisions cached between them.
pub struct Gate {
    source: Arc<dyn KeySource>,
    loaded: RwLock<Arc<Loaded>>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate deciding by `policy` with keys from `source`.
    pub fn new(policy: Policy, source: Arc<dyn KeySource>) -> Self {
        Self {
            source,
            loaded: RwLock::new(Arc::new(Self::load(policy))),
        }
    }

    fn load(policy: Policy) -> Loaded {
        Loaded {
            cache: DecisionCache::new(policy.settings.cache_entries),
            policy,
        }
    }

    fn current(&self) -> Arc<Loaded> {
        self.loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the policy; every cached decision goes with the old one.
    pub fn set_policy(&self, policy: Policy) {
        let fresh = Arc::new(Self::load(policy));
        *self
            .loaded
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.current().policy.clone()
    }

    /// Runs `f` on the policy in force (without copying it).
    pub fn with_policy<R>(&self, f: impl FnOnce(&Policy) -> R) -> R {
        f(&self.current().policy)
    }

    /// Decisions cached now.
    pub fn cached(&self) -> usize {
        self.current().cache.len()
    }

    /// Decides `req` now.
    pub async fn decide(&self, req: &Request<'_>) -> Decision {
        self.decide_at(req, unix_now()).await
    }

    /// Decides `req` at Unix time `now` (tests move the clock).
    pub async fn decide_at(&self, req: &Request<'_>, now: i64) -> Decision {
        let loaded = self.current();
        let Ok(path) = RequestPath::parse(req.target) else {
            return Decision::Deny(Denial::BadPath);
        };
        let Some(matched) = loaded.policy.route_for(req.env, req.method, &path) else {
            return Decision::Deny(Denial::NoRoute);
        };
        let (audience, any, all, api_keys) = match &matched.route.rule {
            Rule::Public => return Decision::Allow(None),
            Rule::Protected {
                audience,
                any,
                all,
                api_keys,
            } => (audience, any, all, *api_keys),
        };
        match req.api_key {
            // Where the route takes no keys, a key header means nothing:
            // the bearer token decides (none: 401).
            _ if !api_keys => {}
            KeyHeader::Absent => {}
            KeyHeader::Repeated => {
                return Decision::Deny(Denial::InvalidApiKey(KeyRefused::Ambiguous));
            }
            KeyHeader::One(_) if !matches!(bearer(req.authorization), Bearer::None) => {
                return Decision::Deny(Denial::InvalidApiKey(KeyRefused::Ambiguous));
            }
            KeyHeader::One(key) => return self.by_api_key(req, key, audience, any, all).await,
        }
        let token = match bearer(req.authorization) {
            Bearer::None => return Decision::Deny(Denial::NoToken),
            Bearer::Bad => return Decision::Deny(Denial::InvalidToken(Invalid::Malformed)),
            Bearer::Token(t) => t,
        };
        let generation = self.source.generation();
        let key = Key::new(req.env, token, matched.index);
        if let Some(d) = loaded.cache.get(&key, generation, now) {
            return d;
        }
        let claims = match self.source.verify(req.env, token).await {
            Ok(c) => c,
            Err(e) => {
                return Decision::Deny(match e {
                    SourceError::UnknownEnv => Denial::InvalidToken(Invalid::UnknownEnv),
                    SourceError::Malformed => Denial::InvalidToken(Invalid::Malformed),
                    SourceError::Invalid => Denial::InvalidToken(Invalid::Signature),
                    SourceError::Unavailable => Denial::Unavailable,
                    SourceError::ClientDisabled => Denial::InvalidToken(Invalid::ClientDisabled),
                });
            }
        };
        let leeway = i64::try_from(loaded.policy.settings.leeway.as_secs()).unwrap_or(0);
        let until = claims.exp.saturating_add(leeway);
        if now >= until {
            return Decision::Deny(Denial::InvalidToken(Invalid::Expired));
        }
        if nbf(&claims).is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Decision::Deny(Denial::InvalidToken(Invalid::NotYetValid));
        }
        let decision = if self.source.is_denied(req.env, &claims.jti) {
            Decision::Deny(Denial::InvalidToken(Invalid::Revoked))
        } else {
            judge(&claims, audience, any, all)
        };
        loaded
            .cache
            .put(key, generation, decision.clone(), until, now);
        decision
    }
}

impl Gate {
    /// Decides by API key `key` on a route that takes keys.
    async fn by_api_key(
        &self,
        req: &Request<'_>,
        key: &str,
        audience: &str,
        any: &BTreeSet<String>,
        all: &BTreeSet<String>,
    ) -> Decision {
        let holder = match self
            .source
            .api_key(req.env, key, audience, req.count_api_key_calls)
            .await
        {
            Ok(h) => h,
            Err(e) => {
                return Decision::Deny(match e {
                    ApiKeyError::Invalid => Denial::InvalidApiKey(KeyRefused::Invalid),
                    ApiKeyError::Expired => Denial::InvalidApiKey(KeyRefused::Expired),
                    ApiKeyError::Revoked => Denial::InvalidApiKey(KeyRefused::Revoked),
                    ApiKeyError::ClientDisabled => {
                        Denial::InvalidApiKey(KeyRefused::ClientDisabled)
                    }
                    ApiKeyError::NotGranted(_) => Denial::NotGranted,
                    ApiKeyError::RateLimited(info) => Denial::RateLimited(info),
                    ApiKeyError::Unavailable => Denial::Unavailable,
                });
            }
        };
        let held: BTreeSet<&str> = holder.permissions.iter().map(String::as_str).collect();
        if let Some(d) = lacking(&held, any, all) {
            return Decision::Deny(d);
        }
        let scopes = holder
            .permissions
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        Decision::Allow(Some(Arc::new(Identity {
            client_id: Some(holder.client_id.clone()),
            subject: holder.client_id,
            scopes,
            claims: None,
            api_key: Some(holder.key_id),
        })))
    }
}

/// What `held` lacks of a route's permissions: `all`, then one of `any`.
fn lacking(
    held: &BTreeSet<&str>,
    any: &BTreeSet<String>,
    all: &BTreeSet<String>,
) -> Option<Denial> {
    let missing: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|p| !held.contains(p))
        .collect();
    if !missing.is_empty() {
        return Some(Denial::InsufficientScope {
            scope: missing.join(" "),
            any_of: false,
        });
    }
    if !any.is_empty() && !any.iter().any(|p| held.contains(p.as_str())) {
        return Some(Denial::InsufficientScope {
            scope: any.iter().map(String::as_str).collect::<Vec<_>>().join(" "),
            any_of: true,
        });
    }
    None
}

/// The audience and permissions of a verified, current, unrevoked token
/// against a route's: pure, so a cached decision is exactly this.
pub fn judge(
    claims: &VerifiedClaims,
    audience: &str,
    any: &BTreeSet<String>,
    all: &BTreeSet<String>,
) -> Decision {
    let for_audience = match &claims.aud {
        serde_json::Value::String(a) => a == audience,
        serde_json::Value::Array(list) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    if !for_audience {
        return Decision::Deny(Denial::InvalidToken(Invalid::Audience));
    }
    let scopes = claims.scope.as_deref().unwrap_or("");
    let held: BTreeSet<&str> = scopes.split_ascii_whitespace().collect();
    if let Some(d) = lacking(&held, any, all) {
        return Decision::Deny(d);
    }
    Decision::Allow(Some(Arc::new(Identity {
        client_id: claims.client_id.clone(),
        subject: claims.sub.clone(),
        scopes: scopes.to_string(),
        claims: Some(Arc::new(claims.clone())),
        api_key: None,
    })))
}

fn nbf(claims: &VerifiedClaims) -> Option<i64> {
    claims.other.get("nbf").and_then(serde_json::Value::as_i64)
}

enum Bearer<'a> {
    /// No credentials, or another scheme's.
    None,
    /// `Bearer` with nothing usable after it.
    Bad,
    Token(&'a str),
}

/// The token of an `Authorization: Bearer …` header (RFC 6750 §2.1: the
/// scheme is case-insensitive, the token is b64token characters).
fn bearer(header: Option<&str>) -> Bearer<'_> {
    let Some(h) = header else {
        return Bearer::None;
    };
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Bearer::None;
    }
    let token = rest.trim();
    let b64token = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
    if token.is_empty() || !token.bytes().all(b64token) {
        return Bearer::Bad;
    }
    Bearer::Token(token)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
