//! What callers hand the service and get back: requests already translated
//! from their wire format, and the outcomes contracts translate back. Plain
//! data; the service's behaviour lives in `admin/` and `grants/`.

use std::collections::{BTreeMap, BTreeSet};

use secrecy::SecretString;

use crate::CoreError;
use crate::model::{ApiGrant, Capability, Dialect, Environment, GrantType, Obligation, RateInfo};
use crate::time::now;

/// A client_credentials request, already translated from its wire format.
#[derive(Debug)]
pub struct ClientCredentials<'a> {
    /// The presented client id.
    pub client_id: &'a str,
    /// The presented secret.
    pub client_secret: &'a SecretString,
    /// Requested audience (`audience` or RFC 8707 `resource`).
    pub audience: Option<&'a str>,
    /// Requested scope, space-separated.
    pub scope: Option<&'a str>,
    /// The claim layout the contract answers with.
    pub shape: ClaimShape,
    /// Access-token lifetime when neither the client nor its API sets one:
    /// the contract's setting for the environment (else the server's).
    pub default_lifetime: u64,
    /// Where the request came from (for throttling failed attempts).
    pub source: Option<std::net::IpAddr>,
}

/// The claim layout of a client's access token. The contract chooses it:
/// a wire dialect reaches the core only as this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClaimShape {
    /// RFC 9068: `sub` is the client id.
    Rfc9068,
    /// Auth0's: `sub` is `<client id>@clients`, with `azp`, and `gty` naming
    /// the grant.
    Auth0 {
        /// The grant, in Auth0's words (`client-credentials`, `refresh_token`).
        gty: &'static str,
    },
}

/// A freshly minted access token.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The JWT.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Unix seconds at which it expires.
    pub expires_at: i64,
    /// Granted scope, space-separated.
    pub scope: String,
    /// The audience it was minted for.
    pub audience: String,
    /// The client it was minted for.
    pub client_id: String,
    /// Its client's standing against an issuance limit, if it has one.
    pub rate: Option<RateInfo>,
    /// Whether this is a token issued before and handed out again
    /// ([`Obligation::Reuse`]).
    pub reused: bool,
}

/// Input of [`Tollgate::create_client`].
#[derive(Debug)]
pub struct NewClient {
    /// Environment.
    pub env: String,
    /// Human name.
    pub name: String,
    /// Imported client id (generated when absent).
    pub client_id: Option<String>,
    /// Imported secret (generated when absent).
    pub client_secret: Option<SecretString>,
    /// Granted APIs with package/permission names.
    pub apis: Vec<ApiGrant>,
    /// Allowed grants (client_credentials when empty).
    pub grant_types: BTreeSet<GrantType>,
    /// Per-client token lifetime.
    pub token_lifetime: Option<u64>,
    /// Extra claims.
    pub extra_claims: serde_json::Map<String, serde_json::Value>,
    /// Extra powers (introspecting others' tokens).
    pub capabilities: BTreeSet<Capability>,
    /// Overrides its APIs' obligations.
    pub obligation: Option<Obligation>,
    /// Its roles (Spring authorities), for its users that have none.
    pub roles: BTreeSet<String>,
    /// A public client (RFC 6749 §2.1): no secret; it identifies itself by
    /// id alone and may only use user grants, where the user's password is
    /// the credential.
    pub public: bool,
}

/// An administrative write to append to the audit log
/// ([`Tollgate::record_audit`](crate::Tollgate::record_audit)).
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// Who: the admin client's id, or `cli`.
    pub actor: String,
    /// What: `noun.verb`.
    pub action: String,
    /// The environment concerned, if any.
    pub env: Option<String>,
    /// The thing changed.
    pub target: String,
    /// The address the request came from.
    pub source: Option<String>,
    /// The thing before (no secrets).
    pub before: Option<serde_json::Value>,
    /// The thing after (no secrets).
    pub after: Option<serde_json::Value>,
}

/// Settable properties of an environment; `None` leaves one as it is.
#[derive(Debug, Default)]
pub struct EnvSettings {
    /// Host names that select it.
    pub hosts: Option<Vec<String>>,
    /// Token-endpoint dialect.
    pub dialect: Option<Dialect>,
    /// Optional contracts enabled there (names are checked by the caller,
    /// which knows the contracts).
    pub contracts: Option<BTreeSet<String>>,
    /// Issuer URL: `Some(Some(url))` sets it, `Some(None)` derives it again
    /// from the server's public URL.
    pub issuer: Option<Option<String>>,
    /// Per-environment setting overrides: `Some(value)` sets a key,
    /// `None` removes its override (the server's setting applies again).
    /// Keys and values are checked by the caller, which knows them.
    pub settings: BTreeMap<String, Option<String>>,
}

/// Checks an issuer URL.
pub(crate) fn validate_issuer(issuer: &str) -> Result<(), CoreError> {
    if issuer.starts_with("https://") || issuer.starts_with("http://") {
        Ok(())
    } else {
        Err(CoreError::invalid("issuer", "must be an http(s) URL"))
    }
}

impl EnvSettings {
    pub(crate) fn apply(self, env: &mut Environment) -> Result<(), CoreError> {
        if let Some(hosts) = self.hosts {
            let hosts: Vec<String> = hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect();
            if let Some(h) = hosts.iter().find(|h| {
                h.is_empty()
                    || !h
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
            }) {
                return Err(CoreError::invalid(
                    "host",
                    format!("'{h}' is not a host name"),
                ));
            }
            env.hosts = hosts;
        }
        if let Some(d) = self.dialect {
            env.dialect = d;
        }
        if let Some(c) = self.contracts {
            for name in &c {
                crate::model::validate_token("contract", name)?;
            }
            env.contracts = c;
        }
        if let Some(issuer) = self.issuer {
            if let Some(i) = &issuer {
                validate_issuer(i)?;
            }
            env.issuer = issuer;
        }
        for (key, value) in self.settings {
            crate::model::validate_token("setting", &key)?;
            match value {
                Some(v) => env.settings.insert(key, v),
                None => env.settings.remove(&key),
            };
        }
        Ok(())
    }
}

/// Changes to a client, made in place (its id and secrets stay); `None`
/// leaves a property as it is.
#[derive(Debug, Default)]
pub struct ClientUpdate {
    /// Human name.
    pub name: Option<String>,
    /// Granted APIs (replaces the list).
    pub apis: Option<Vec<ApiGrant>>,
    /// Allowed grants (replaces the set).
    pub grant_types: Option<BTreeSet<GrantType>>,
    /// Its own access-token lifetime; `Some(None)` inherits its API's again.
    pub token_lifetime: Option<Option<u64>>,
    /// Extra claims (replaces them).
    pub extra_claims: Option<serde_json::Map<String, serde_json::Value>>,
    /// Extra powers (replaces them).
    pub capabilities: Option<BTreeSet<Capability>>,
    /// Its own obligation; `Some(None)` inherits its APIs' again.
    pub obligation: Option<Option<Obligation>>,
    /// Its roles (replaces them; empty: none).
    pub roles: Option<BTreeSet<String>>,
}

/// Changes to an API, made in place; `None` leaves a property as it is.
#[derive(Debug, Default)]
pub struct ApiUpdate {
    /// Permissions to add.
    pub add_permissions: BTreeSet<String>,
    /// Permissions to remove (a package still naming one is refused).
    pub remove_permissions: BTreeSet<String>,
    /// Packages to set (created or replaced); their permissions join the API's.
    pub set_packages: BTreeMap<String, BTreeSet<String>>,
    /// Packages to remove.
    pub remove_packages: BTreeSet<String>,
    /// Its access-token lifetime; `Some(None)` leaves it to the
    /// environment's (or server's) contract settings.
    pub token_lifetime: Option<Option<u64>>,
    /// Its obligation; `Some(None)` clears it.
    pub obligation: Option<Option<Obligation>>,
    /// Auth0's "permissions in the access token" on or off.
    pub token_permissions: Option<bool>,
}

/// What a refresh does to the refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshPolicy {
    /// The same refresh token stays valid and is returned again (Spring's
    /// default); only the access token is new.
    Reuse,
    /// A new refresh token replaces the old one (rotation, reuse detection).
    Rotate,
}

impl RefreshPolicy {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reuse => "reuse",
            Self::Rotate => "rotate",
        }
    }
}

impl std::str::FromStr for RefreshPolicy {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reuse" => Ok(Self::Reuse),
            "rotate" => Ok(Self::Rotate),
            _ => Err(CoreError::invalid(
                "refresh policy",
                format!("'{s}' (choose reuse or rotate)"),
            )),
        }
    }
}

/// The claim layout of a session's access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessShape {
    /// RFC 9068: `sub` = the user, `scope` a string.
    Rfc9068,
    /// Spring Security OAuth2: lists for `aud`, `scope`, `authorities`.
    Spring,
}

impl std::str::FromStr for AccessShape {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rfc9068" => Ok(Self::Rfc9068),
            "spring" => Ok(Self::Spring),
            _ => Err(CoreError::invalid(
                "claim shape",
                format!("'{s}' (choose rfc9068 or spring)"),
            )),
        }
    }
}

impl AccessShape {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rfc9068 => "rfc9068",
            Self::Spring => "spring",
        }
    }
}

/// How a Spring-shaped access token writes `aud`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpringAud {
    /// A list holding the session's API (Spring's `aud` is always a list).
    #[default]
    List,
    /// A list of every API the client is granted, the session's first, as
    /// Spring lists a client's resource ids.
    All,
    /// A plain string, for verifiers that expect one.
    Text,
}

/// Where a Spring-shaped token's `authorities` come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Authorities {
    /// The granted permissions, as in `scope`.
    #[default]
    Scope,
    /// The user's roles, or its client's when the user has none.
    Roles,
}

/// The options of the Spring claim shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpringOptions {
    /// How `aud` is written.
    pub aud: SpringAud,
    /// Whether `user_name` is there (Spring writes it for a user's token;
    /// Dive's samples have none).
    pub user_name: bool,
    /// What `authorities` holds.
    pub authorities: Authorities,
}

impl Default for SpringOptions {
    fn default() -> Self {
        Self {
            aud: SpringAud::List,
            user_name: true,
            authorities: Authorities::Scope,
        }
    }
}

impl SpringAud {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::All => "all",
            Self::Text => "string",
        }
    }
}

impl std::str::FromStr for SpringAud {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::List, Self::All, Self::Text]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| CoreError::invalid("aud", format!("'{s}' (choose list, all or string)")))
    }
}

impl Authorities {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scope => "scope",
            Self::Roles => "roles",
        }
    }
}

impl std::str::FromStr for Authorities {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Scope, Self::Roles]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                CoreError::invalid("authorities", format!("'{s}' (choose scope or roles)"))
            })
    }
}

/// What a rotated refresh token presented again after the retry leeway
/// does (a *late reuse*): one of two copies of the session is in the wrong
/// hands, or a client kept an old token by mistake, and the server cannot
/// tell which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LateReuse {
    /// The whole family is revoked (OAuth 2.0 Security BCP §4.14): a thief
    /// holding either copy is cut off, and so is the rightful user, who must
    /// log in again.
    #[default]
    RevokeFamily,
    /// Only the presented token is refused; the session goes on with its
    /// current token. No user is logged out by a buggy client, but a thief
    /// who rotated first keeps the session until it expires or is revoked.
    RefuseToken,
}

impl LateReuse {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RevokeFamily => "revoke-family",
            Self::RefuseToken => "refuse-token",
        }
    }
}

impl std::str::FromStr for LateReuse {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::RevokeFamily, Self::RefuseToken]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                CoreError::invalid(
                    "late reuse",
                    format!("'{s}' (choose revoke-family or refuse-token)"),
                )
            })
    }
}

/// Seconds after a rotation during which presenting the replaced refresh
/// token again gets the same successor (a response lost on the way), by
/// default: long enough for a client's retry, short enough that a stolen
/// token replayed later is caught as reuse.
pub const DEFAULT_RETRY_LEEWAY: u64 = 10;

/// How a contract runs its sessions.
#[derive(Debug, Clone)]
pub struct SessionProfile {
    /// Contract name (stored with each refresh token).
    pub contract: &'static str,
    /// The grant a login uses.
    pub grant: GrantType,
    /// Access-token lifetime, seconds.
    pub access_lifetime: u64,
    /// Refresh-token lifetime, seconds.
    pub refresh_lifetime: u64,
    /// Reuse or rotate on refresh.
    pub policy: RefreshPolicy,
    /// Seconds after a rotation during which the same request gets the same
    /// successor back instead of counting as reuse.
    pub retry_leeway: u64,
    /// Claim layout of access tokens.
    pub shape: AccessShape,
    /// Options of the Spring layout.
    pub spring: SpringOptions,
    /// What a rotated token presented after the leeway does (rotation only).
    pub late_reuse: LateReuse,
    /// Whether a login name that is an e-mail address (holds an `@`)
    /// matches a user whose name differs only in ASCII case, as mail
    /// systems treat addresses.
    pub fold_email_case: bool,
}

/// A user's password as given to the CLI.
#[derive(Debug)]
pub enum UserPassword {
    /// The password itself.
    Plain(SecretString),
    /// `md5_hex(password)`, to import users whose real password is unknown.
    Md5Hex(SecretString),
}

/// How the calling client identified itself on a user grant.
#[derive(Debug, Clone, Copy)]
pub enum ClientAuth<'a> {
    /// A client id and secret (a confidential client).
    Secret {
        /// Client id.
        id: &'a str,
        /// Secret.
        secret: &'a SecretString,
    },
    /// A client id alone: accepted only for public clients (created with
    /// `--public`, no secret).
    Public {
        /// Client id.
        id: &'a str,
    },
    /// No client: the user's own client is used (header login).
    None,
}

/// An access token and a refresh token for a user.
#[derive(Debug)]
pub struct Session {
    /// The access JWT.
    pub access_token: String,
    /// Its `jti`.
    pub access_jti: String,
    /// Unix seconds at which it expires.
    pub expires_at: i64,
    /// The refresh token.
    pub refresh_token: SecretString,
    /// Granted scope, space-separated.
    pub scope: String,
    /// The client.
    pub client_id: String,
    /// The user.
    pub username: String,
}

impl Session {
    /// Seconds until the access token expires, from now.
    pub fn expires_in(&self) -> u64 {
        u64::try_from(self.expires_at - now()).unwrap_or(0)
    }
}
