//! User sessions: the users of a client log in (device credentials, header
//! login), get an access token and a refresh token, refresh, and log out.
//!
//! Refresh tokens form *families* (OAuth 2.0 Security BCP, §4.14): a login
//! starts one; each rotation adds the next token; presenting a token that
//! was already rotated revokes the whole family, except inside a short retry
//! leeway where the same successor is handed out again (so a client whose
//! response was lost is not logged out). The store decides rotations
//! atomically ([`Store::rotate_refresh_family`](crate::store::Store::rotate_refresh_family)),
//! and keeps one row per family (its current token, and the previous one
//! during the leeway), so the table grows with live sessions, not with
//! rotations.
//!
//! A refresh token is an HS256 JWT over claims taken only from its stored
//! record, under a key derived from the master key: the store keeps the
//! record, never the token, and a retry re-creates the identical string.

use std::sync::Arc;

use md5::{Digest, Md5};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::crypto::fill_random;
use crate::error::{CoreError, GrantError};
use crate::model::{Client, GrantType, RefreshFamily, User};
use crate::secret;
use crate::service::{EnvRuntime, Tollgate, conflict, held_scope};
use crate::store::Rotation;
use crate::time::now;
use crate::token::{self, AccessClaims, SpringClaims};

/// What a refresh does to the refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshPolicy {
    /// The same refresh token stays valid and is returned again (Spring's
    /// default); only the access token is new.
    Reuse,
    /// A new refresh token replaces the old one (rotation, reuse detection).
    Rotate,
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

/// Claims of a session refresh token; every value comes from its record.
#[derive(Debug, Serialize, Deserialize)]
struct RefreshClaims {
    aud: Vec<String>,
    user_name: String,
    device_id: String,
    grant_type: String,
    scope: Vec<String>,
    ati: String,
    exp: i64,
    iat: i64,
    authorities: Vec<String>,
    client_id: String,
    jti: String,
    /// The family (first token's id).
    fam: String,
    iss: String,
    /// The contract the session was born in (absent in tokens issued before
    /// tollgate recorded it; the family's row is checked either way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ctr: Option<String>,
    /// The environment the session was born in (as `ctr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    env: Option<String>,
}

const REFRESH_ISSUER: &str = "tollgate";

impl RefreshClaims {
    /// Whether the token says it was born in `profile`'s contract and in
    /// `env` (a token that does not say is judged by its family's row).
    fn born_in(&self, env: &EnvRuntime, profile: &SessionProfile) -> bool {
        self.ctr.as_deref().is_none_or(|c| c == profile.contract)
            && self.env.as_deref().is_none_or(|e| e == env.env.name)
    }
}

/// The HS256 keys and validation rules of session refresh tokens, built once.
pub(crate) struct Codec {
    enc: jsonwebtoken::EncodingKey,
    dec: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    header: jsonwebtoken::Header,
}

impl Codec {
    pub(crate) fn new(key: &[u8]) -> Self {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_issuer(&[REFRESH_ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "jti"]);
        Self {
            enc: jsonwebtoken::EncodingKey::from_secret(key),
            dec: jsonwebtoken::DecodingKey::from_secret(key),
            validation,
            header: jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        }
    }
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Codec(<redacted>)")
    }
}

/// `md5_hex(s)`, lower case.
pub fn md5_hex(s: &str) -> String {
    let d = Md5::digest(s.as_bytes());
    let mut out = String::with_capacity(32);
    for b in d {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A random UUID (version 4) in its text form: the `jti` format of Spring.
pub fn uuid_v4() -> Result<String, CoreError> {
    let mut b = [0u8; 16];
    fill_random(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(x >> 4)]));
        out.push(char::from(HEX[usize::from(x & 0x0f)]));
    }
    Ok(out)
}

fn hash_password(pw: &UserPassword) -> Result<String, CoreError> {
    let md5 = match pw {
        UserPassword::Plain(p) => {
            if p.expose_secret().is_empty() {
                return Err(CoreError::invalid("password", "must not be empty"));
            }
            md5_hex(p.expose_secret())
        }
        UserPassword::Md5Hex(h) => {
            let h = h.expose_secret().trim().to_ascii_lowercase();
            if h.len() != 32 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(CoreError::invalid(
                    "password-md5",
                    "must be 32 hexadecimal digits",
                ));
            }
            h
        }
    };
    secret::hash_argon2(md5.as_bytes())
}

impl Tollgate {
    // ----- provisioning -------------------------------------------------

    /// Creates a user of client `client_id`.
    pub async fn create_user(
        &self,
        env: &str,
        client_id: &str,
        username: &str,
        password: UserPassword,
    ) -> Result<User, CoreError> {
        self.require_env(env).await?;
        self.get_client(env, client_id).await?;
        let user = User {
            env: env.to_string(),
            client_id: client_id.to_string(),
            username: username.to_string(),
            password: hash_password(&password)?,
            enabled: true,
            created_at: now(),
        };
        user.validate()?;
        self.store
            .create_user(&user)
            .await
            .map_err(|e| conflict(e, "user", username))?;
        Ok(user)
    }

    /// Users of `env`, optionally of one client.
    pub async fn list_users(
        &self,
        env: &str,
        client_id: Option<&str>,
    ) -> Result<Vec<User>, CoreError> {
        self.require_env(env).await?;
        Ok(self.store.list_users(env, client_id).await?)
    }

    async fn change_user(
        &self,
        env: &str,
        username: &str,
        end_sessions: bool,
        change: impl FnOnce(&mut User) -> Result<(), CoreError>,
    ) -> Result<User, CoreError> {
        let mut user = self
            .store
            .get_user(env, username)
            .await?
            .ok_or_else(|| CoreError::not_found("user", username))?;
        change(&mut user)?;
        let existed = self
            .store
            .update_user(&user, end_sessions.then(now))
            .await?;
        CoreError::found(existed, "user", username)?;
        Ok(user)
    }

    /// Enables or disables a user (a disabled user can neither log in nor refresh).
    pub async fn set_user_enabled(
        &self,
        env: &str,
        username: &str,
        enabled: bool,
    ) -> Result<User, CoreError> {
        // A disabled user's refreshes are refused while disabled; enabling
        // it again lets its sessions go on (a suspension, not a reset).
        self.change_user(env, username, false, |u| {
            u.enabled = enabled;
            Ok(())
        })
        .await
    }

    /// Sets a user's password and, unless `keep_sessions`, ends the user's
    /// sessions (whoever learnt the old password may hold one).
    pub async fn set_user_password(
        &self,
        env: &str,
        username: &str,
        password: UserPassword,
        keep_sessions: bool,
    ) -> Result<User, CoreError> {
        let hash = hash_password(&password)?;
        self.change_user(env, username, !keep_sessions, |u| {
            u.password = hash;
            Ok(())
        })
        .await
    }

    /// Deletes a user and revokes its sessions.
    pub async fn delete_user(&self, env: &str, username: &str) -> Result<(), CoreError> {
        let existed = self.store.delete_user(env, username, now()).await?;
        CoreError::found(existed, "user", username)
    }

    // ----- grants -------------------------------------------------------

    async fn cached_user(
        &self,
        env: &str,
        username: &str,
    ) -> Result<Option<Arc<User>>, GrantError> {
        let key = (env.to_string(), username.to_string());
        self.read_through(&self.users, "user", "get_user", key, true, || {
            self.store.get_user(env, username)
        })
        .await
    }

    /// The calling client of a user grant: authenticated by secret, or a
    /// public client by id alone. `None` when no client was presented.
    async fn calling_client(
        &self,
        env: &EnvRuntime,
        auth: ClientAuth<'_>,
    ) -> Result<Option<Arc<Client>>, GrantError> {
        match auth {
            ClientAuth::Secret { id, secret } if !secret.expose_secret().is_empty() => {
                self.authenticate(env, id, secret).await.map(Some)
            }
            ClientAuth::Secret { id, .. } | ClientAuth::Public { id } => {
                match self.cached_client(&env.env.name, id).await? {
                    Some(c) if c.enabled && c.secrets.is_empty() => Ok(Some(c)),
                    _ => Err(GrantError::InvalidClient),
                }
            }
            ClientAuth::None => Ok(None),
        }
    }

    /// A user logs in with `password_md5` (= `md5_hex(password)`; the
    /// header login applies [`md5_hex`] first). Unknown user, wrong password,
    /// disabled user and a user of another client all give the same
    /// [`GrantError::InvalidGrant`], at the same cost (one argon2id, cached
    /// for a minute after a success).
    pub async fn login(
        &self,
        env: &EnvRuntime,
        auth: ClientAuth<'_>,
        username: &str,
        password_md5: &SecretString,
        profile: &SessionProfile,
    ) -> Result<Session, GrantError> {
        let caller = self.calling_client(env, auth).await?;
        let user = self.cached_user(&env.env.name, username).await?;
        let presented = SecretString::from(password_md5.expose_secret().to_ascii_lowercase());
        let cache_key = self.keys.cache_digest(&[
            env.env.name.as_bytes(),
            b"user",
            username.as_bytes(),
            presented.expose_secret().as_bytes(),
        ]);
        let phcs = user
            .as_ref()
            .map(|u| vec![(0, u.password.clone())])
            .unwrap_or_default();
        let t = now();
        let ok = self
            .check_argon2_cached("password_verification", cache_key, &presented, phcs, t + 60)
            .await?;
        let bad = || GrantError::InvalidGrant("bad credentials".into());
        let user = match user {
            Some(u) if ok && u.enabled => u,
            _ => return Err(bad()),
        };
        if caller
            .as_ref()
            .is_some_and(|c| c.client_id != user.client_id)
        {
            return Err(bad());
        }
        let client = match caller {
            Some(c) => c,
            None => self
                .cached_client(&env.env.name, &user.client_id)
                .await?
                .filter(|c| c.enabled)
                .ok_or_else(bad)?,
        };
        if !client.grant_types.contains(&profile.grant) {
            return Err(GrantError::UnauthorizedClient(
                profile.grant.as_str().into(),
            ));
        }
        let audience =
            client.apis.first().map(|g| g.api.clone()).ok_or_else(|| {
                GrantError::AudienceRequired("the client is granted no API".into())
            })?;
        let (_, held) = held_scope(env, &client, &audience)?;
        self.check_limit(env, &client, Self::obligation_for(env, &client, &audience))
            .await?;
        let id = uuid_v4().map_err(|_| GrantError::Unavailable)?;
        let rec = RefreshFamily {
            env: env.env.name.clone(),
            family: id.clone(),
            contract: profile.contract.to_string(),
            client_id: client.client_id.clone(),
            username: user.username.clone(),
            grant: profile.grant,
            audience,
            scope: token::scope_string(&held),
            current: id,
            previous: None,
            access_jti: uuid_v4().map_err(|_| GrantError::Unavailable)?,
            access_exp: add(t, profile.access_lifetime),
            issued_at: t,
            expires_at: add(t, profile.refresh_lifetime),
            rotated_at: None,
            revoked_at: None,
            created_at: t,
        };
        let started = std::time::Instant::now();
        let stored = self.store.insert_refresh_family(&rec).await;
        self.store_timing("insert_refresh_family", started);
        stored.map_err(|e| {
            tracing::error!(error = %e, "store failed while saving a refresh token");
            GrantError::Unavailable
        })?;
        self.session_from(env, &client, &rec, profile, None)
    }

    /// Exchanges a refresh token. With [`RefreshPolicy::Rotate`] the store
    /// decides atomically: the first request rotates; a retry within the
    /// leeway gets the same successor; a later reuse revokes the family.
    /// With [`RefreshPolicy::Reuse`] the same refresh token comes back with
    /// a new access token. A client, when presented, must be the token's.
    pub async fn refresh(
        &self,
        env: &EnvRuntime,
        auth: ClientAuth<'_>,
        refresh_token: &str,
        profile: &SessionProfile,
    ) -> Result<Session, GrantError> {
        let caller = self.calling_client(env, auth).await?;
        let claims = self.read_refresh_token(refresh_token)?;
        let invalid = |why: &str| GrantError::InvalidGrant(why.to_string());
        // A session is usable only where it was born: its contract, its
        // environment and its client. The claims say so for tokens that
        // carry them; the family's row is checked below in every case.
        if !claims.born_in(env, profile) {
            return Err(invalid("born in another contract or environment"));
        }
        if caller
            .as_ref()
            .is_some_and(|c| c.client_id != claims.client_id)
        {
            return Err(invalid("issued to another client"));
        }
        let user = self
            .cached_user(&env.env.name, &claims.user_name)
            .await?
            .filter(|u| u.enabled && u.client_id == claims.client_id)
            .ok_or_else(|| invalid("user disabled or deleted"))?;
        let client = self
            .cached_client(&env.env.name, &user.client_id)
            .await?
            .filter(|c| c.enabled)
            .ok_or_else(|| invalid("client disabled or deleted"))?;
        // The client must still hold the grant the session was started with.
        if !client.grant_types.contains(&profile.grant) {
            return Err(GrantError::UnauthorizedClient(
                profile.grant.as_str().into(),
            ));
        }
        let audience = claims.aud.first().map_or("", String::as_str);
        self.check_limit(env, &client, Self::obligation_for(env, &client, audience))
            .await?;
        let t = now();
        let started = std::time::Instant::now();
        let outcome = match profile.policy {
            RefreshPolicy::Reuse => {
                // From memory when seen before: under this policy a family
                // changes only by revocation, which bumps the store revision
                // and empties the cache on every instance within a sync.
                let key = (env.env.name.clone(), claims.fam.clone());
                let f = self
                    .read_through(
                        &self.families,
                        "refresh_family",
                        "get_refresh_family",
                        key,
                        false,
                        || self.store.get_refresh_family(&env.env.name, &claims.fam),
                    )
                    .await?
                    .ok_or_else(|| invalid("unknown"))?;
                if f.contract != profile.contract || f.client_id != claims.client_id {
                    return Err(invalid("born in another contract"));
                }
                if f.revoked_at.is_some() {
                    return Err(invalid("revoked"));
                }
                if f.current != claims.jti {
                    return Err(invalid("not the family's current token"));
                }
                if f.expires_at <= t {
                    return Err(GrantError::ExpiredGrant);
                }
                // A new access token; the refresh token stays as it is.
                let fresh = RefreshFamily {
                    access_jti: uuid_v4().map_err(|_| GrantError::Unavailable)?,
                    access_exp: add(t, profile.access_lifetime),
                    issued_at: t,
                    ..(*f).clone()
                };
                return self.session_from(env, &client, &fresh, profile, Some(refresh_token));
            }
            RefreshPolicy::Rotate => {
                let next = RefreshFamily {
                    env: env.env.name.clone(),
                    family: claims.fam.clone(),
                    contract: profile.contract.to_string(),
                    client_id: claims.client_id.clone(),
                    username: claims.user_name.clone(),
                    grant: claims
                        .grant_type
                        .parse()
                        .map_err(|_| invalid("bad grant"))?,
                    audience: claims.aud.first().cloned().unwrap_or_default(),
                    scope: claims.scope.join(" "),
                    current: uuid_v4().map_err(|_| GrantError::Unavailable)?,
                    previous: Some(claims.jti.clone()),
                    access_jti: uuid_v4().map_err(|_| GrantError::Unavailable)?,
                    access_exp: add(t, profile.access_lifetime),
                    issued_at: t,
                    expires_at: add(t, profile.refresh_lifetime),
                    rotated_at: Some(t),
                    revoked_at: None,
                    created_at: t,
                };
                let leeway = i64::try_from(profile.retry_leeway).unwrap_or(i64::MAX);
                let r = self
                    .store
                    .rotate_refresh_family(&claims.jti, &next, t, leeway)
                    .await;
                self.store_timing("rotate_refresh_family", started);
                (r.map_err(unavailable)?, next)
            }
        };
        // Whatever the store decided, a copy of this family cached under the
        // reuse policy (another contract's settings, an older process state)
        // is stale now.
        self.forget_family(&env.env.name, &claims.fam);
        match outcome {
            (Rotation::Rotated, next) => self.session_from(env, &client, &next, profile, None),
            (Rotation::Retry(existing), _) => {
                self.session_from(env, &client, &existing, profile, None)
            }
            (Rotation::Reused, _) => {
                tracing::warn!(
                    env = %env.env.name,
                    client_id = %claims.client_id,
                    family = %claims.fam,
                    "refresh token reused after rotation: family revoked"
                );
                self.metrics.count(
                    "tollgate_refresh_reuse_total",
                    "Rotated refresh tokens presented again (families revoked)",
                    &[("contract", profile.contract)],
                    1,
                );
                Err(invalid("reused: family revoked"))
            }
            (Rotation::Unknown, _) => Err(invalid("unknown")),
            (Rotation::Revoked, _) => Err(invalid("revoked")),
            (Rotation::Expired, _) => Err(GrantError::ExpiredGrant),
        }
    }

    /// Ends the session of `refresh_token` (its family). Access tokens
    /// already issued live until they expire. An invalid token is not an
    /// error (there is nothing to end).
    pub async fn logout(
        &self,
        env: &EnvRuntime,
        refresh_token: &str,
        profile: &SessionProfile,
    ) -> Result<bool, GrantError> {
        let Ok(claims) = self.read_refresh_token(refresh_token) else {
            return Ok(false);
        };
        // Only the contract the session was born in can end it.
        if !claims.born_in(env, profile) {
            return Ok(false);
        }
        // Claims come from the family's row, so a token naming its contract
        // needs no second look; an older token is judged by the row.
        if claims.ctr.is_none() {
            let family = self
                .store
                .get_refresh_family(&env.env.name, &claims.fam)
                .await
                .map_err(unavailable)?;
            if family
                .is_none_or(|f| f.contract != profile.contract || f.client_id != claims.client_id)
            {
                return Ok(false);
            }
        }
        self.forget_family(&env.env.name, &claims.fam);
        self.store
            .revoke_refresh_family(&env.env.name, &claims.fam, now())
            .await
            .map_err(unavailable)
    }

    /// RFC 7009 for a session refresh token of this environment: when it is
    /// `caller`'s, ends its session. Returns whether `token` was a session
    /// refresh token at all (another client's counts, and is left alone).
    pub(crate) async fn revoke_session_token(
        &self,
        env: &EnvRuntime,
        caller: &Client,
        token: &str,
    ) -> Result<bool, GrantError> {
        let claims = match self.read_refresh_token(token) {
            Ok(c) => c,
            Err(_) => return Ok(false),
        };
        if claims.env.as_deref().is_some_and(|e| e != env.env.name)
            || claims.client_id != caller.client_id
        {
            return Ok(true);
        }
        self.forget_family(&env.env.name, &claims.fam);
        self.store
            .revoke_refresh_family(&env.env.name, &claims.fam, now())
            .await
            .map_err(unavailable)?;
        Ok(true)
    }

    /// Drops a family from the reuse-policy cache (after it changed here;
    /// changes elsewhere bump the store revision, which empties the cache).
    fn forget_family(&self, env: &str, family: &str) {
        let key = (env.to_string(), family.to_string());
        crate::sync::write(&self.families).remove(&key);
    }

    /// Verifies a refresh token's signature and reads its claims; expiry is
    /// reported as [`GrantError::ExpiredGrant`] (only after the signature).
    fn read_refresh_token(&self, token: &str) -> Result<RefreshClaims, GrantError> {
        let invalid = |why: &str| GrantError::InvalidGrant(why.to_string());
        let c = &self.session_codec;
        jsonwebtoken::decode::<RefreshClaims>(token, &c.dec, &c.validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => GrantError::ExpiredGrant,
                _ => invalid("malformed or not ours"),
            })
    }

    /// The refresh JWT of `rec`: HS256 over claims from the record only.
    fn encode_refresh_token(
        &self,
        rec: &RefreshFamily,
        scope: &[&str],
    ) -> Result<String, GrantError> {
        let claims = RefreshClaims {
            aud: vec![rec.audience.clone()],
            user_name: rec.username.clone(),
            device_id: rec.username.clone(),
            grant_type: rec.grant.as_str().to_string(),
            scope: scope.iter().map(|s| (*s).to_string()).collect(),
            ati: rec.access_jti.clone(),
            exp: rec.expires_at,
            iat: rec.issued_at,
            authorities: scope.iter().map(|s| (*s).to_string()).collect(),
            client_id: rec.client_id.clone(),
            jti: rec.current.clone(),
            fam: rec.family.clone(),
            iss: REFRESH_ISSUER.to_string(),
            ctr: Some(rec.contract.clone()),
            env: Some(rec.env.clone()),
        };
        jsonwebtoken::encode(&self.session_codec.header, &claims, &self.session_codec.enc)
            .map_err(|_| GrantError::Unavailable)
    }

    /// The access and refresh tokens of `rec`, both derived from the record
    /// alone (so a retry re-creates the same pair); `keep` is a refresh token
    /// to hand back as it is (the reuse policy).
    fn session_from(
        &self,
        env: &EnvRuntime,
        client: &Client,
        rec: &RefreshFamily,
        profile: &SessionProfile,
        keep: Option<&str>,
    ) -> Result<Session, GrantError> {
        let scope: Vec<&str> = rec.scope.split_ascii_whitespace().collect();
        let key = env.signing_key().ok_or(GrantError::Unavailable)?;
        let signed = match profile.shape {
            AccessShape::Spring => token::mint(
                key,
                &SpringClaims {
                    iss: &env.issuer,
                    sub: &rec.username,
                    aud: [&rec.audience],
                    user_name: &rec.username,
                    device_id: &rec.username,
                    grant_type: rec.grant.as_str(),
                    scope: scope.clone(),
                    exp: rec.access_exp,
                    iat: rec.issued_at,
                    authorities: scope.clone(),
                    client_id: &rec.client_id,
                    jti: &rec.access_jti,
                },
            ),
            AccessShape::Rfc9068 => token::mint(
                key,
                &AccessClaims {
                    iss: &env.issuer,
                    sub: &rec.username,
                    aud: &rec.audience,
                    exp: rec.access_exp,
                    iat: rec.issued_at,
                    jti: &rec.access_jti,
                    client_id: &rec.client_id,
                    scope: &rec.scope,
                    azp: None,
                    gty: None,
                    extra: &client.extra_claims,
                },
            ),
        };
        let access_token = signed.map_err(|e| {
            tracing::error!(error = %e, "signing failed");
            GrantError::Unavailable
        })?;
        let refresh = match keep {
            Some(t) => t.to_string(),
            None => self.encode_refresh_token(rec, &scope)?,
        };
        Ok(Session {
            access_token,
            access_jti: rec.access_jti.clone(),
            expires_at: rec.access_exp,
            refresh_token: SecretString::from(refresh),
            scope: rec.scope.clone(),
            client_id: rec.client_id.clone(),
            username: rec.username.clone(),
        })
    }
}

fn add(t: i64, secs: u64) -> i64 {
    t.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX))
}

fn unavailable(e: crate::StoreError) -> GrantError {
    tracing::error!(error = %e, "store failed during a refresh");
    GrantError::Unavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_hex_matches_the_reference_vectors() {
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex("password"), "5f4dcc3b5aa765d61d8327deb882cf99");
    }

    #[test]
    fn uuids_have_version_4_layout() -> Result<(), CoreError> {
        let u = uuid_v4()?;
        assert_eq!(u.len(), 36);
        assert_eq!(u.as_bytes()[14], b'4');
        assert!(matches!(u.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
        assert_ne!(u, uuid_v4()?);
        Ok(())
    }

    #[test]
    fn imported_md5_must_be_hex() {
        assert!(hash_password(&UserPassword::Md5Hex(SecretString::from("xyz"))).is_err());
        assert!(hash_password(&UserPassword::Plain(SecretString::from(""))).is_err());
    }
}
