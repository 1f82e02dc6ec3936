//! Every grant of the core, driven through `Tollgate`'s public API over the
//! in-memory store (feature `testing`): provisioned with the admin methods,
//! synced, then asked for tokens the way the wire contracts ask. Outcomes and
//! the claims of the tokens (read back with `Tollgate::verify`) are asserted.
//!
//! No test sleeps: time-dependent rules are reached with settings that decide
//! within the second (a retry leeway of 0, a refresh lifetime of 0, a reuse
//! threshold as long as the token's lifetime, a rotation grace of 0).
//!
//! One module per subject: `client_credentials`, `obligations`, `exchange`
//! (refresh JWTs), `sessions` (device and header login, refresh, logout),
//! `binding` (contract, client and environment of a session),
//! `introspect_revoke`, `lifecycle` (deleting clients, new passwords).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_keys;
mod binding;
mod client_credentials;
mod exchange;
mod found;
mod introspect_revoke;
mod lifecycle;
mod lifetimes;
mod obligations;
mod portal;
mod portal_secrets;
mod sessions;
mod usage;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use tollgate_core::crypto::master::MasterKey;
use tollgate_core::crypto::secret::md5_hex;
use tollgate_core::crypto::token::VerifiedClaims;
use tollgate_core::model::{Api, ApiGrant, DEFAULT_ENV, GrantType};
use tollgate_core::service::{
    AccessShape, ClaimShape, ClientAuth, ClientCredentials, EnvRuntime, NewClient, RefreshPolicy,
    Session, SessionProfile, UserPassword,
};
use tollgate_core::testing::MemoryStore;
use tollgate_core::{GrantError, Tollgate};
use tollgate_testkit::TestResult;

/// The public URL the core is opened with: the default environment's issuer.
pub(crate) const ISSUER: &str = "http://tollgate.test";
/// Access-token lifetime of tokens for the `orders` API, which sets none:
/// the default client requests carry (the rfc6749 contract's setting).
pub(crate) const ORDERS_LIFETIME: i64 = 600;
/// Access-token lifetime of the `billing` API.
pub(crate) const BILLING_LIFETIME: i64 = 300;
/// A user's password.
pub(crate) const PIN: &str = "4711";
/// The device-credentials contract's name.
pub(crate) const DEVICE: &str = "device-credentials";
/// The header-login contract's name.
pub(crate) const HEADER: &str = "header-login";

/// A core over a fresh memory store, with two APIs in the default
/// environment: `orders` (permissions `read write admin`, package `basic` =
/// `read`, 600 s) and `billing` (permission `invoices`, 300 s).
pub(crate) struct World {
    pub(crate) tg: Tollgate,
}

/// A provisioned client: its id and the secret to present (empty for a
/// public client).
pub(crate) struct Partner {
    pub(crate) id: String,
    pub(crate) secret: SecretString,
}

impl Partner {
    /// This client identifying itself by id and secret.
    pub(crate) fn auth(&self) -> ClientAuth<'_> {
        ClientAuth::Secret {
            id: &self.id,
            secret: &self.secret,
        }
    }

    /// A client_credentials request of this client: default audience and
    /// scope, RFC 9068 claims.
    pub(crate) fn cc(&self) -> ClientCredentials<'_> {
        ClientCredentials {
            default_lifetime: u64::try_from(ORDERS_LIFETIME).unwrap_or(600),
            client_id: &self.id,
            client_secret: &self.secret,
            audience: None,
            scope: None,
            shape: ClaimShape::Rfc9068,
            source: None,
        }
    }
}

impl World {
    pub(crate) async fn new() -> TestResult<Self> {
        Self::over(Arc::new(MemoryStore::new())).await
    }

    /// [`World::new`] over `store` (a test that reaches into the store).
    pub(crate) async fn over(store: Arc<MemoryStore>) -> TestResult<Self> {
        let tg = Tollgate::open(store, &MasterKey::generate()?, ISSUER).await?;
        tg.create_api(api(
            DEFAULT_ENV,
            "orders",
            &["read", "write", "admin"],
            &[("basic", &["read"])],
            // No lifetime of its own: each contract's setting applies
            // (ORDERS_LIFETIME is what client requests here ask for).
            0,
        ))
        .await?;
        tg.create_api(api(
            DEFAULT_ENV,
            "billing",
            &["invoices"],
            &[],
            BILLING_LIFETIME,
        ))
        .await?;
        Ok(Self { tg })
    }

    /// Syncs (as the server does every 250 ms) and returns the default
    /// environment as the hot path sees it now.
    pub(crate) async fn synced(&self) -> TestResult<Arc<EnvRuntime>> {
        self.synced_env(DEFAULT_ENV).await
    }

    /// Syncs and returns environment `name`.
    pub(crate) async fn synced_env(&self, name: &str) -> TestResult<Arc<EnvRuntime>> {
        self.tg.sync().await?;
        Ok(self.tg.env(name).ok_or("the environment exists")?)
    }

    /// Creates a client; returns it with the secret to present.
    pub(crate) async fn client(&self, spec: NewClient) -> TestResult<Partner> {
        let (client, secret) = self.tg.create_client(spec).await?;
        Ok(Partner {
            id: client.client_id,
            secret: secret.unwrap_or_else(|| SecretString::from("")),
        })
    }

    /// Creates user `username` of client `client_id` with password [`PIN`].
    pub(crate) async fn user(&self, client_id: &str, username: &str) -> TestResult {
        self.tg
            .create_user(
                DEFAULT_ENV,
                client_id,
                username,
                UserPassword::Plain(SecretString::from(PIN)),
            )
            .await?;
        Ok(())
    }

    /// A device client (`device_credentials`) holding `orders` = `basic
    /// write`, with user `device-1`.
    pub(crate) async fn device_client(&self, name: &str) -> TestResult<Partner> {
        let p = self
            .client(spec(
                name,
                &[("orders", &["basic", "write"])],
                &[GrantType::DeviceCredentials],
            ))
            .await?;
        self.user(&p.id, &format!("{name}-device")).await?;
        Ok(p)
    }

    /// Logs `username` in with [`PIN`].
    pub(crate) async fn login(
        &self,
        env: &EnvRuntime,
        auth: ClientAuth<'_>,
        username: &str,
        profile: &SessionProfile,
    ) -> Result<Session, GrantError> {
        self.tg
            .login(env, auth, username, &md5(PIN), profile, None)
            .await
    }

    /// Refreshes with `session`'s refresh token.
    pub(crate) async fn refresh(
        &self,
        env: &EnvRuntime,
        auth: ClientAuth<'_>,
        session: &Session,
        profile: &SessionProfile,
    ) -> Result<Session, GrantError> {
        self.tg.refresh(env, auth, rt(session), profile, None).await
    }

    /// The claims of access token `token`, which must verify for `audience`.
    pub(crate) fn claims(
        &self,
        env: &EnvRuntime,
        token: &str,
        audience: &str,
    ) -> TestResult<VerifiedClaims> {
        Ok(self.tg.verify(env, token, Some(audience))?)
    }
}

/// An API of `env`.
pub(crate) fn api(
    env: &str,
    identifier: &str,
    permissions: &[&str],
    packages: &[(&str, &[&str])],
    lifetime: i64,
) -> Api {
    let set =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|s| (*s).to_string()).collect() };
    Api {
        env: env.into(),
        identifier: identifier.into(),
        permissions: set(permissions),
        packages: packages
            .iter()
            .map(|(name, perms)| ((*name).to_string(), set(perms)))
            .collect::<BTreeMap<_, _>>(),
        token_lifetime: (lifetime > 0).then(|| u64::try_from(lifetime).unwrap()),
        obligation: None,
        token_permissions: false,
        created_at: 0,
    }
}

/// A confidential client of the default environment named `name`, holding
/// `apis` (API, package or permission names) and allowed `grants`.
pub(crate) fn spec(name: &str, apis: &[(&str, &[&str])], grants: &[GrantType]) -> NewClient {
    NewClient {
        env: DEFAULT_ENV.into(),
        name: name.into(),
        client_id: None,
        client_secret: None,
        apis: apis
            .iter()
            .map(|(api, names)| ApiGrant {
                api: (*api).to_string(),
                grants: names.iter().map(|n| (*n).to_string()).collect(),
            })
            .collect(),
        grant_types: grants.iter().copied().collect(),
        token_lifetime: None,
        extra_claims: serde_json::Map::new(),
        capabilities: BTreeSet::new(),
        obligation: None,
        roles: Default::default(),
        public: false,
    }
}

/// `md5_hex(password)`, the form the user grants take a password in.
pub(crate) fn md5(password: &str) -> SecretString {
    SecretString::from(md5_hex(password))
}

/// The refresh token of `s`.
pub(crate) fn rt(s: &Session) -> &str {
    s.refresh_token.expose_secret()
}

/// The device-credentials contract's sessions: Spring claims, 900 s access
/// tokens, a day-long refresh token, a 10 s retry leeway.
pub(crate) fn device(policy: RefreshPolicy) -> SessionProfile {
    SessionProfile {
        contract: DEVICE,
        grant: GrantType::DeviceCredentials,
        access_lifetime: 900,
        refresh_lifetime: 86_400,
        policy,
        retry_leeway: 10,
        shape: AccessShape::Spring,
        spring: tollgate_core::service::SpringOptions::default(),
        late_reuse: tollgate_core::service::LateReuse::RevokeFamily,
        fold_email_case: false,
    }
}

/// The header-login contract's sessions: RFC 9068 claims, 300 s access
/// tokens, rotation with a 10 s retry leeway.
pub(crate) fn header() -> SessionProfile {
    SessionProfile {
        contract: HEADER,
        grant: GrantType::Password,
        access_lifetime: 300,
        refresh_lifetime: 3_600,
        policy: RefreshPolicy::Rotate,
        retry_leeway: 10,
        shape: AccessShape::Rfc9068,
        spring: tollgate_core::service::SpringOptions::default(),
        late_reuse: tollgate_core::service::LateReuse::RevokeFamily,
        fold_email_case: true,
    }
}

/// Asserts `r` is [`GrantError::InvalidGrant`]; `what` names the case.
#[track_caller]
pub(crate) fn assert_invalid_grant<T: std::fmt::Debug>(r: Result<T, GrantError>, what: &str) {
    match r {
        Err(GrantError::InvalidGrant(_)) => {}
        other => panic!("{what}: expected InvalidGrant, got {other:?}"),
    }
}

/// `exp - iat` of `c`.
pub(crate) fn lifetime(c: &VerifiedClaims) -> i64 {
    c.exp - c.iat
}
