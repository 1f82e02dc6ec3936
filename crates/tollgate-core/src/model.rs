//! The provisioned data: environments, APIs, clients, their secrets and the
//! signing keys. Plain data with validation; no I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// The environment that exists from the first start and answers at the root.
pub const DEFAULT_ENV: &str = "default";

/// JWS algorithm an environment signs its tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Alg {
    /// ECDSA P-256 with SHA-256 (the default: fast and small).
    #[default]
    ES256,
    /// Ed25519.
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys (for verifiers that know nothing else).
    RS256,
    /// HMAC-SHA256 under a secret shared with the resource servers (Spring's
    /// `JwtAccessTokenConverter` default). Its keys are never published in
    /// the JWKS and never rotated automatically: whoever verifies must be
    /// given the secret (`key import --hs256-secret-file`).
    HS256,
}

impl Alg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::ES256 => "ES256",
            Alg::EdDSA => "EdDSA",
            Alg::RS256 => "RS256",
            Alg::HS256 => "HS256",
        }
    }
}

impl std::str::FromStr for Alg {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "ES256" => Ok(Alg::ES256),
            "EDDSA" | "ED25519" => Ok(Alg::EdDSA),
            "RS256" => Ok(Alg::RS256),
            "HS256" => Ok(Alg::HS256),
            _ => Err(CoreError::invalid(
                "algorithm",
                format!("'{s}' (choose ES256, EdDSA, RS256 or HS256)"),
            )),
        }
    }
}

/// An isolated issuer: its own issuer URL, keys, APIs and clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// Unique name, used in the `/e/<name>/` path prefix.
    pub name: String,
    /// Explicit issuer URL; when absent the server derives one from its public URL.
    pub issuer: Option<String>,
    /// Signing algorithm for new keys.
    pub alg: Alg,
    /// Host names that select this environment (besides the path prefix).
    pub hosts: Vec<String>,
    /// How its OAuth 2.0 token endpoint speaks (field names, claims, errors).
    #[serde(default)]
    pub dialect: Dialect,
    /// Optional wire contracts enabled here (by name, e.g. `header-login`).
    #[serde(default)]
    pub contracts: BTreeSet<String>,
    /// Settings overridden here, by key name (`header_login_path`, …), in
    /// the configuration's syntax. The core keeps them as text: the keys
    /// belong to the contracts and the HTTP layer, which check them before
    /// they are stored and resolve them once per snapshot.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// The dialect of an environment's OAuth 2.0 token endpoint: the same grant,
/// answered the way a given authorization server answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// RFC 6749 errors, RFC 9068 claims (`sub` = client id).
    #[default]
    Rfc6749,
    /// As Auth0 answers: hyphenated field names accepted, `sub` =
    /// `<client_id>@clients`, `azp`, `gty`, and `access_denied` errors.
    Auth0,
}

impl Dialect {
    /// The name used in the CLI and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Rfc6749 => "rfc6749",
            Dialect::Auth0 => "auth0",
        }
    }
}

impl std::str::FromStr for Dialect {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Dialect::Rfc6749, Dialect::Auth0]
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                CoreError::invalid("dialect", format!("'{s}' (choose rfc6749 or auth0)"))
            })
    }
}

/// A resource server: the audience of tokens, its permissions and packages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Api {
    /// Environment it belongs to.
    pub env: String,
    /// The audience identifier, e.g. `mts-insight-tech` or a URL.
    pub identifier: String,
    /// Every permission (scope) the API knows.
    pub permissions: BTreeSet<String>,
    /// Named sets of permissions, e.g. `odds-basic`.
    pub packages: BTreeMap<String, BTreeSet<String>>,
    /// Access-token lifetime in seconds of tokens for this API; `None`
    /// leaves it to the environment's (or the server's) setting of the
    /// contract that issues them.
    pub token_lifetime: Option<u64>,
    /// What its clients must honour (a client's own obligation wins).
    #[serde(default)]
    pub obligation: Option<Obligation>,
    /// Auth0's RBAC setting "Add Permissions in the Access Token":
    /// Auth0-shaped tokens for this API carry a `permissions` array.
    #[serde(default)]
    pub token_permissions: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// A rule the server enforces on a client's token requests (Sportradar:
/// "clients must reuse non-expired tokens"). Set on an API or a client; the
/// client's wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Obligation {
    /// Nothing enforced.
    Off,
    /// A client asking again for the same audience and scope while its last
    /// token has more than `min_remaining` seconds left gets that token back
    /// (with the remaining `expires_in`).
    Reuse {
        /// Seconds a token must still have to be handed out again.
        min_remaining: u64,
    },
    /// At most `max` issuances per `window` seconds per client, across all
    /// contracts; then 429 with `Retry-After`.
    Limit {
        /// Issuances per window.
        max: u64,
        /// Window length, seconds.
        window: u64,
    },
}

impl std::fmt::Display for Obligation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Obligation::Off => f.write_str("off"),
            Obligation::Reuse { min_remaining } => write!(f, "reuse:{min_remaining}s"),
            Obligation::Limit { max, window } => write!(f, "limit:{max}/{window}s"),
        }
    }
}

impl std::str::FromStr for Obligation {
    type Err = CoreError;
    /// `off`, `reuse` (30 s), `reuse:30s`, `limit:100/1h`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            CoreError::invalid(
                "obligation",
                format!("'{s}': {why} (write off, reuse, reuse:30s or limit:100/1h)"),
            )
        };
        let secs = |d: &str| -> Result<u64, CoreError> {
            let d = d.trim();
            d.parse::<u64>()
                .ok()
                .or_else(|| humantime::parse_duration(d).ok().map(|d| d.as_secs()))
                .ok_or_else(|| bad("not a duration"))
        };
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        match (kind.trim(), arg.trim()) {
            ("off", "") => Ok(Obligation::Off),
            ("reuse", "") => Ok(Obligation::Reuse { min_remaining: 30 }),
            ("reuse", d) => Ok(Obligation::Reuse {
                min_remaining: secs(d)?,
            }),
            ("limit", spec) => {
                let (max, window) = spec.split_once('/').ok_or_else(|| bad("no window"))?;
                let max: u64 = max
                    .trim()
                    .parse()
                    .map_err(|_| bad("the count is not a number"))?;
                let window = secs(window)?;
                if max == 0 || window == 0 {
                    return Err(bad("count and window must be positive"));
                }
                Ok(Obligation::Limit { max, window })
            }
            _ => Err(bad("unknown kind")),
        }
    }
}

/// Access-token lifetime when nothing more specific is known: 10 minutes
/// (the rfc6749 contract's server default).
pub const DEFAULT_TOKEN_LIFETIME: u64 = 600;

/// The longest access-token lifetime a client or an API may set: 366 days.
pub const MAX_TOKEN_LIFETIME: u64 = 366 * 86_400;

/// Checks a client's or an API's own access-token lifetime.
pub fn validate_lifetime(secs: Option<u64>) -> Result<(), CoreError> {
    match secs {
        Some(lt) if lt == 0 || lt > MAX_TOKEN_LIFETIME => Err(CoreError::invalid(
            "token lifetime",
            "must be between 1 second and 366 days",
        )),
        _ => Ok(()),
    }
}

impl Api {
    /// Expands package and permission names into permissions; an unknown name is an error.
    pub fn expand(&self, names: &[String]) -> Result<BTreeSet<String>, String> {
        let mut out = BTreeSet::new();
        for name in names {
            if let Some(pkg) = self.packages.get(name) {
                out.extend(pkg.iter().cloned());
            } else if self.permissions.contains(name) {
                out.insert(name.clone());
            } else {
                return Err(format!(
                    "'{name}' is neither a package nor a permission of API '{}'",
                    self.identifier
                ));
            }
        }
        Ok(out)
    }

    /// Checks identifiers, names and that packages only name known permissions.
    pub fn validate(&self) -> Result<(), CoreError> {
        validate_token("api identifier", &self.identifier)?;
        for p in &self.permissions {
            validate_scope_token(p)?;
        }
        for (name, perms) in &self.packages {
            validate_token("package name", name)?;
            if let Some(p) = perms.iter().find(|p| !self.permissions.contains(*p)) {
                return Err(CoreError::invalid(
                    "package",
                    format!("package '{name}' names '{p}', which is not a permission of the API"),
                ));
            }
        }
        validate_lifetime(self.token_lifetime)
    }
}

/// One API a client is granted, with the packages/permissions it holds there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiGrant {
    /// The API identifier (audience).
    pub api: String,
    /// Package or permission names, resolved against the API at token time,
    /// so that changing a package changes every client holding it.
    pub grants: Vec<String>,
}

/// How a stored client secret is hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SecretHash {
    /// A generated (high-entropy) secret: base64url HMAC-SHA256 under the server key.
    Hmac {
        /// base64url digest.
        digest: String,
    },
    /// An imported (possibly weak) secret: an argon2id PHC string.
    Argon2 {
        /// PHC string.
        phc: String,
    },
}

/// A client secret as stored: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    /// Short id to name the secret in listings (not secret).
    pub id: String,
    /// The hash.
    #[serde(flatten)]
    pub hash: SecretHash,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds after which the secret no longer works (rotation grace).
    pub expires_at: Option<i64>,
}

/// OAuth 2.0 grant types tollgate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 6749 §6 (served by the contracts that issue refresh tokens).
    RefreshToken,
    /// A user (device) of the client logs in with username and MD5 password
    /// (the `device-credentials` contract, Spring Security OAuth2 style).
    DeviceCredentials,
    /// A user of the client logs in with username and password (the
    /// `header-login` contract).
    Password,
}

impl GrantType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::RefreshToken => "refresh_token",
            GrantType::DeviceCredentials => "device_credentials",
            GrantType::Password => "password",
        }
    }

    /// Every grant type a client can be allowed.
    pub const ALL: &'static [GrantType] = &[
        GrantType::ClientCredentials,
        GrantType::RefreshToken,
        GrantType::DeviceCredentials,
        GrantType::Password,
    ];
}

impl std::str::FromStr for GrantType {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GrantType::ALL
            .iter()
            .copied()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| CoreError::invalid("grant type", format!("unknown grant type '{s}'")))
    }
}

/// A partner application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Client {
    /// Environment it belongs to.
    pub env: String,
    /// The public identifier.
    pub client_id: String,
    /// Human name.
    pub name: String,
    /// Hashed secrets (several during a rotation).
    pub secrets: Vec<SecretRecord>,
    /// APIs it is granted.
    pub apis: Vec<ApiGrant>,
    /// Grant types it may use.
    pub grant_types: BTreeSet<GrantType>,
    /// Its access-token lifetime, over its API's and the environment's.
    pub token_lifetime: Option<u64>,
    /// Claims merged into its tokens.
    pub extra_claims: serde_json::Map<String, serde_json::Value>,
    /// What the client may do beyond getting tokens.
    #[serde(default)]
    pub capabilities: BTreeSet<Capability>,
    /// Overrides its APIs' obligations.
    #[serde(default)]
    pub obligation: Option<Obligation>,
    /// Its roles (Spring authorities such as `ROLE_CATALOG`), for its users
    /// that have none of their own.
    #[serde(default)]
    pub roles: BTreeSet<String>,
    /// A disabled client gets no tokens.
    pub enabled: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// Extra powers a client can be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// May introspect tokens issued to other clients (a resource server or gateway).
    Introspect,
}

/// Claims a client's extra claims may not override.
pub const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "scope",
    "azp",
    "gty",
];

impl Client {
    /// The grant for `api`, if the client holds it.
    pub fn grant_for(&self, api: &str) -> Option<&ApiGrant> {
        self.apis.iter().find(|g| g.api == api)
    }

    /// Checks names, roles and extra claims.
    pub fn validate(&self) -> Result<(), CoreError> {
        validate_token("client id", &self.client_id)?;
        validate_roles(&self.roles)?;
        if self.name.trim().is_empty() {
            return Err(CoreError::invalid("client name", "must not be empty"));
        }
        if let Some(k) = self
            .extra_claims
            .keys()
            .find(|k| RESERVED_CLAIMS.contains(&k.as_str()))
        {
            return Err(CoreError::invalid(
                "claims",
                format!("'{k}' is set by tollgate and cannot be overridden"),
            ));
        }
        validate_lifetime(self.token_lifetime)
    }
}

/// A user (an account or a device) of a client, who logs in over the user
/// contracts. Usernames are unique per environment (header login names no
/// client).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Environment.
    pub env: String,
    /// The client it belongs to.
    pub client_id: String,
    /// Login name (an e-mail address, a device id).
    pub username: String,
    /// argon2id PHC string of `md5_hex(password)`: devices send that MD5
    /// form, the header login sends the password and tollgate applies MD5
    /// first, so one hash serves both. MD5 is only a wire pre-hash here.
    pub password: String,
    /// Its roles (Spring authorities); when empty, its client's count.
    #[serde(default)]
    pub roles: BTreeSet<String>,
    /// A disabled user cannot log in or refresh.
    pub enabled: bool,
    /// Unix seconds.
    pub created_at: i64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("env", &self.env)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl User {
    /// Checks the username and roles.
    pub fn validate(&self) -> Result<(), CoreError> {
        validate_roles(&self.roles)?;
        let u = &self.username;
        if u.is_empty() || u.len() > 255 || u.chars().any(|c| c.is_control() || c == ':') {
            return Err(CoreError::invalid(
                "username",
                "must be 1 to 255 characters without ':' or control characters",
            ));
        }
        Ok(())
    }
}

/// A login session's refresh-token family (device credentials, header
/// login): one row per family, holding its *current* refresh token and,
/// during the retry leeway after a rotation, the one it replaced. A rotation
/// rewrites the row in place, so the table holds one row per live session,
/// not one per rotation.
///
/// Tokens are never stored: a refresh token is an HS256 JWT re-derivable from
/// this record under a key derived from the master key, which is what lets a
/// retried rotation get the very same successor back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshFamily {
    /// Environment.
    pub env: String,
    /// Family id (the first token's id).
    pub family: String,
    /// The contract that issued it.
    pub contract: String,
    /// The client.
    pub client_id: String,
    /// The user.
    pub username: String,
    /// The grant the session started with.
    pub grant: GrantType,
    /// Audience of its access tokens.
    pub audience: String,
    /// Granted scope, space-separated.
    pub scope: String,
    /// Id (`jti`) of the current refresh token.
    pub current: String,
    /// Id of the token the current one replaced (for the retry leeway).
    pub previous: Option<String>,
    /// The access token issued with the current refresh token: its id and
    /// expiry (so a retried rotation re-creates the same pair).
    pub access_jti: String,
    /// Unix seconds.
    pub access_exp: i64,
    /// Unix seconds at which the current token was issued.
    pub issued_at: i64,
    /// Unix seconds at which the current token expires.
    pub expires_at: i64,
    /// When the current token replaced the previous one.
    pub rotated_at: Option<i64>,
    /// When the family was revoked (logout, reuse, user deleted).
    pub revoked_at: Option<i64>,
    /// Unix seconds: the login.
    pub created_at: i64,
}

/// A long-lived refresh JWT as stored: never the token, only what identifies
/// and governs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshJwtRecord {
    /// Environment.
    pub env: String,
    /// Its `jti`.
    pub jti: String,
    /// The client it acts for.
    pub client_id: String,
    /// The API its access tokens are for.
    pub audience: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds, once revoked.
    pub revoked_at: Option<i64>,
}

/// An API key as stored: never the key, only what identifies and governs it
/// and a keyed hash of its secret part (see `crypto::api_key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Environment.
    pub env: String,
    /// Its public id: the `<id>` of `tgk_<id>_<secret>` (not secret; it
    /// names the key in listings, logs and `api-key revoke`).
    pub id: String,
    /// The client it acts for.
    pub client_id: String,
    /// A label for people (`--name`).
    pub name: Option<String>,
    /// base64url HMAC-SHA256 of (environment, id, secret) under a key
    /// derived from the master key.
    pub digest: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds from which it no longer works (`--expires`, or the end
    /// of a rotation's grace); `None`: until revoked.
    pub expires_at: Option<i64>,
    /// Unix seconds, once revoked.
    pub revoked_at: Option<i64>,
}

impl ApiKey {
    /// Whether it works at `now`: neither revoked nor expired.
    pub fn live_at(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// Life-cycle state of a signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published in the JWKS, not yet signing.
    Next,
    /// Signing new tokens.
    Active,
    /// No longer signing; published until its tokens have expired.
    Retired,
}

impl KeyState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        }
    }
}

impl std::str::FromStr for KeyState {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [KeyState::Next, KeyState::Active, KeyState::Retired]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| CoreError::invalid("key state", format!("unknown key state '{s}'")))
    }
}

/// A signing key as stored: the private key only encrypted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    /// Environment it signs for.
    pub env: String,
    /// Key id (`kid`).
    pub kid: String,
    /// Algorithm.
    pub alg: Alg,
    /// The public JWK as JSON text.
    pub public_jwk: String,
    /// AES-256-GCM sealed PKCS#8 private key (base64url of nonce ‖ ciphertext ‖ tag).
    pub private_sealed: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds from which it signs. Its state (next, active,
    /// retired) is not stored: it follows from this and the activation of
    /// the environment's next key (`crypto::keyring`), so it is never stale.
    pub activates_at: i64,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("env", &self.env)
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("activates_at", &self.activates_at)
            .field("private_sealed", &"<sealed>")
            .finish_non_exhaustive()
    }
}

/// One entry of the audit log: an administrative write, who made it, from
/// where, and the thing before and after (views without secrets: a client's
/// secret ids and times, never a hash; a user without its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sortable id: the time in nanoseconds (fixed-width hex) then random
    /// hex, so ids order entries as written and page by `id > cursor`.
    pub id: String,
    /// Unix seconds.
    pub at: i64,
    /// Who: the admin client's id, or `cli`.
    pub actor: String,
    /// What: `noun.verb` (`client.create`, `client.rotate_secret`, …).
    pub action: String,
    /// The environment concerned, if any.
    pub env: Option<String>,
    /// The thing changed (a client id, an API identifier, a kid, …).
    pub target: String,
    /// The address the request came from (the TCP peer), if any.
    pub source: Option<String>,
    /// The thing before the write (none for a create).
    pub before: Option<serde_json::Value>,
    /// The thing after the write (none for a delete).
    pub after: Option<serde_json::Value>,
}

/// Roles are claim values in a list: printable ASCII without spaces, `,`
/// or `=` (the CLI's separators).
pub fn validate_roles(roles: &BTreeSet<String>) -> Result<(), CoreError> {
    for r in roles {
        validate_token("role", r)?;
    }
    Ok(())
}

/// Names: environments, client ids, API identifiers, package names. Printable
/// ASCII without spaces or `=`/`,` (the CLI's separators), 1..=255 bytes.
pub fn validate_token(field: &'static str, s: &str) -> Result<(), CoreError> {
    if s.is_empty() || s.len() > 255 {
        return Err(CoreError::invalid(field, "must be 1 to 255 characters"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !c.is_ascii_graphic() || *c == '=' || *c == ',')
    {
        return Err(CoreError::invalid(
            field,
            format!(
                "'{s}' contains '{}', which is not allowed",
                c.escape_default()
            ),
        ));
    }
    Ok(())
}

/// A scope token per RFC 6749 §3.3 (`%x21 / %x23-5B / %x5D-7E`), without `,` and `=`.
pub fn validate_scope_token(s: &str) -> Result<(), CoreError> {
    validate_token("permission", s)?;
    if s.contains(['"', '\\']) {
        return Err(CoreError::invalid(
            "permission",
            format!("'{s}' contains a quote or backslash"),
        ));
    }
    Ok(())
}

/// Environment names also appear in URL paths: letters, digits, `-`, `_`, `.`.
pub fn validate_env_name(s: &str) -> Result<(), CoreError> {
    if s.is_empty()
        || s.len() > 63
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(CoreError::invalid(
            "environment name",
            format!("'{s}' (use 1-63 letters, digits, '-', '_' or '.')"),
        ));
    }
    Ok(())
}

/// What an obligation is set on (`Tollgate::set_obligation`, `Store::set_obligation`).
#[derive(Debug, Clone, Copy)]
pub enum ObligationTarget<'a> {
    /// An API (every client holding it, unless a client has its own).
    Api(&'a str),
    /// One client.
    Client(&'a str),
}

/// Where a client stands against its issuance limit
/// ([`Obligation::Limit`]), for `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    /// Issuances allowed per window.
    pub limit: u64,
    /// Issuances left in this window.
    pub remaining: u64,
    /// Unix seconds at which the window resets.
    pub reset_at: i64,
}
impl RateInfo {
    /// Seconds until the window resets (for `Retry-After`), at least 1.
    pub fn retry_after(&self) -> u64 {
        u64::try_from(self.reset_at - crate::time::now())
            .unwrap_or(0)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> Api {
        Api {
            env: DEFAULT_ENV.into(),
            identifier: "mts-insight-tech".into(),
            permissions: ["odds:read", "odds:write", "stats"]
                .into_iter()
                .map(String::from)
                .collect(),
            packages: [(
                "odds-basic".to_string(),
                ["odds:read".to_string()].into_iter().collect(),
            )]
            .into_iter()
            .collect(),
            token_lifetime: Some(600),
            obligation: None,
            token_permissions: false,
            created_at: 0,
        }
    }

    #[test]
    fn obligations_parse_and_print() {
        for (text, want) in [
            ("off", Obligation::Off),
            ("reuse", Obligation::Reuse { min_remaining: 30 }),
            ("reuse:1m", Obligation::Reuse { min_remaining: 60 }),
            (
                "limit:100/1h",
                Obligation::Limit {
                    max: 100,
                    window: 3600,
                },
            ),
        ] {
            let got: Obligation = text.parse().unwrap_or(Obligation::Off);
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string().parse::<Obligation>().ok(), Some(want));
        }
        for bad in ["limit:0/1h", "limit:5", "reuse:soon", "maybe"] {
            assert!(bad.parse::<Obligation>().is_err(), "{bad}");
        }
    }

    #[test]
    fn expands_packages_and_permissions() {
        let a = api();
        let got = a
            .expand(&["odds-basic".into(), "stats".into()])
            .unwrap_or_default();
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec!["odds:read".to_string(), "stats".to_string()]
        );
        assert!(a.expand(&["nope".into()]).is_err());
    }

    #[test]
    fn package_must_name_known_permissions() {
        let mut a = api();
        a.packages
            .insert("bad".into(), ["missing".to_string()].into_iter().collect());
        assert!(a.validate().is_err());
        assert!(api().validate().is_ok());
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_env_name("production").is_ok());
        assert!(validate_env_name("a/b").is_err());
        assert!(validate_token("x", "https://api.example.com/v1").is_ok());
        assert!(validate_token("x", "a b").is_err());
        assert!(validate_token("x", "a=b").is_err());
    }
}
