//! The partner portal's domain (issue 13 §2), without HTTP: the provider's
//! side (partners, the packages offered to them, invitations, disabling)
//! and the partner's (accepting an invitation, signing in and out, the
//! clients it owns: create from its offers, rotate with a grace, revoke old
//! secrets).
//!
//! Tokens (invitations, sessions) are 32 random bytes shown once; the store
//! keeps their SHA-256 only, so a copy of the database opens no session.
//! Passwords are argon2id under the server's bounded verifier; an unknown
//! login costs the same check (against a dummy hash) as a wrong password.
//! A session's CSRF token derives from the session token, so it needs no
//! row and is compared in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::crypto::random::fill_random;
use crate::crypto::secret;
use crate::error::{CoreError, GrantError};
use crate::model::{ApiGrant, Client};
use crate::partner::{
    Invitation, Offer, Partner, PartnerAccount, PartnerClient, PortalSession, validate_login,
    validate_partner_id,
};
use crate::service::requests::NewClient;
use crate::service::{Tollgate, conflict};
use crate::time::now;

/// How long a portal session lasts (absolute, from sign-in).
pub const SESSION_LIFETIME: i64 = 8 * 3600;
/// Failed sign-ins in a row that lock an account.
pub const MAX_FAILURES: u32 = 5;
/// How long a lock lasts.
pub const LOCK_SECS: i64 = 15 * 60;
/// Shortest password an account may set.
pub const MIN_PASSWORD: usize = 12;
/// The longest grace a partner may give an old secret (7 days).
pub const MAX_GRACE: u64 = 7 * 24 * 3600;

/// Why a portal action was refused. The HTTP layer shows each as a page.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// Unknown login or wrong password (never which).
    #[error("the login or the password is wrong")]
    BadCredentials,
    /// Too many failures: refused without a check until the lock ends.
    #[error("too many failed sign-ins; try again after {until}")]
    Locked {
        /// Unix seconds.
        until: i64,
    },
    /// The invitation is unknown, used or expired.
    #[error("this invitation link is not valid (unknown, used or expired)")]
    InvitationUnusable,
    /// The partner is disabled by the provider.
    #[error("this partner is disabled")]
    PartnerDisabled,
    /// The client is not the partner's (or does not exist).
    #[error("no such client")]
    NotYours,
    /// The argon2id budget is spent: try again shortly.
    #[error("the server is busy; try again")]
    Busy,
    /// The account has a second factor: sign in with
    /// [`Tollgate::portal_sign_in`] and then the code.
    #[error("this account signs in with a one-time code too")]
    CodeRequired,
    /// The one-time code is wrong, used already, or the sign-in it
    /// completes has expired.
    #[error("the code is wrong or was used already")]
    BadCode,
    /// A one-time link to a secret is unknown, opened already or expired.
    #[error("this link is not valid (unknown, opened already or expired)")]
    LinkUnusable,
    /// Anything else (validation, the store).
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// A signed-in account with its partner.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The account.
    pub account: PartnerAccount,
    /// Its partner (enabled).
    pub partner: Partner,
}

/// SHA-256 of a token, hex: what the store keeps.
pub(crate) fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 32 random bytes, base64url.
pub(crate) fn new_token() -> Result<SecretString, CoreError> {
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    fill_random(raw.as_mut())?;
    Ok(SecretString::from(URL_SAFE_NO_PAD.encode(raw.as_ref())))
}

/// The CSRF token of a session: bound to it, unguessable without it.
fn csrf_of(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"tollgate portal csrf\0");
    h.update(session_token.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

impl Tollgate {
    /// Checks that each offer names an environment, an API there and one
    /// of its packages or permissions.
    pub(crate) async fn check_offers(&self, offers: &[Offer]) -> Result<(), CoreError> {
        for o in offers {
            self.require_env(&o.env).await?;
            let apis = self.list_apis(&o.env).await?;
            let api = apis
                .iter()
                .find(|a| a.identifier == o.api)
                .ok_or_else(|| CoreError::not_found("api", &o.api))?;
            api.expand(std::slice::from_ref(&o.package))
                .map_err(|r| CoreError::invalid("offer", r))?;
        }
        Ok(())
    }

    /// Creates a partner offered `offers`.
    pub async fn create_partner(
        &self,
        id: &str,
        name: &str,
        mut offers: Vec<Offer>,
    ) -> Result<Partner, CoreError> {
        validate_partner_id(id)?;
        if name.trim().is_empty() || name.len() > 200 {
            return Err(CoreError::invalid("name", "give 1 to 200 characters"));
        }
        self.check_offers(&offers).await?;
        offers.sort();
        offers.dedup();
        let p = Partner {
            id: id.to_string(),
            name: name.trim().to_string(),
            offers,
            enabled: true,
            created_at: now(),
        };
        self.store
            .insert_partner(&p)
            .await
            .map_err(|e| conflict(e, "partner", id))?;
        Ok(p)
    }

    /// Adds offers to a partner (those it has stay).
    pub async fn offer_to_partner(
        &self,
        id: &str,
        offers: Vec<Offer>,
    ) -> Result<Partner, CoreError> {
        self.check_offers(&offers).await?;
        let mut p = self.get_partner(id).await?;
        p.offers.extend(offers);
        p.offers.sort();
        p.offers.dedup();
        let existed = self.store.update_partner(&p).await?;
        CoreError::found(existed, "partner", id)?;
        Ok(p)
    }

    /// One partner.
    pub async fn get_partner(&self, id: &str) -> Result<Partner, CoreError> {
        self.store
            .get_partner(id)
            .await?
            .ok_or_else(|| CoreError::not_found("partner", id))
    }

    /// Every partner, by id.
    pub async fn list_partners(&self) -> Result<Vec<Partner>, CoreError> {
        Ok(self.store.list_partners().await?)
    }

    /// Enables or disables a partner with every client it owns, in one
    /// transaction that bumps the revision (so every server refuses the
    /// clients at its next sync); disabling ends its portal sessions.
    pub async fn set_partner_enabled(&self, id: &str, enabled: bool) -> Result<(), CoreError> {
        let existed = self.store.set_partner_enabled(id, enabled).await?;
        CoreError::found(existed, "partner", id)
    }

    /// A one-time invitation to create an account of partner `id`, valid
    /// for `ttl` seconds; returns the token (to put in a link, shown once).
    pub async fn invite_partner(
        &self,
        id: &str,
        ttl: u64,
    ) -> Result<(SecretString, Invitation), CoreError> {
        if ttl == 0 || ttl > 30 * 24 * 3600 {
            return Err(CoreError::invalid("ttl", "give 1 s to 30 days"));
        }
        let p = self.get_partner(id).await?;
        if !p.enabled {
            return Err(CoreError::invalid("partner", "the partner is disabled"));
        }
        let token = new_token()?;
        let t = now();
        let inv = Invitation {
            digest: digest(token.expose_secret()),
            partner: p.id,
            created_at: t,
            expires_at: t.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
            used_at: None,
        };
        self.store.insert_invitation(&inv).await?;
        Ok((token, inv))
    }

    /// The invitation behind `token` and its partner, if it can still be used.
    pub async fn usable_invitation(
        &self,
        token: &str,
    ) -> Result<(Invitation, Partner), PortalError> {
        let inv = self
            .store
            .get_invitation(&digest(token))
            .await
            .map_err(CoreError::from)?
            .filter(|i| i.used_at.is_none() && i.expires_at > now())
            .ok_or(PortalError::InvitationUnusable)?;
        let p = self
            .store
            .get_partner(&inv.partner)
            .await
            .map_err(CoreError::from)?
            .ok_or(PortalError::InvitationUnusable)?;
        if !p.enabled {
            return Err(PortalError::PartnerDisabled);
        }
        Ok((inv, p))
    }

    /// Creates an account with invitation `token` (used up by it) and
    /// signs it in; returns the session token.
    pub async fn accept_invitation(
        &self,
        token: &str,
        login: &str,
        password: &SecretString,
    ) -> Result<SecretString, PortalError> {
        let (inv, partner) = self.usable_invitation(token).await?;
        validate_login(login)?;
        let pw = password.expose_secret();
        if pw.chars().count() < MIN_PASSWORD || pw.len() > 1024 {
            return Err(CoreError::invalid(
                "password",
                format!("use at least {MIN_PASSWORD} characters (at most 1024 bytes)"),
            )
            .into());
        }
        let hash = {
            let pw = password.clone();
            tokio::task::spawn_blocking(move || secret::hash_argon2(pw.expose_secret().as_bytes()))
                .await
                .map_err(|e| CoreError::Crypto(format!("hashing task: {e}")))??
        };
        let t = now();
        let account = PartnerAccount {
            login: login.to_string(),
            partner: partner.id.clone(),
            password_hash: hash,
            failed_attempts: 0,
            locked_until: None,
            created_at: t,
        };
        let accepted = self
            .store
            .accept_invitation(&inv.digest, t, &account)
            .await
            .map_err(|e| conflict(e, "login", login))?;
        if !accepted {
            return Err(PortalError::InvitationUnusable);
        }
        Ok(self.open_session(&account).await?)
    }

    async fn open_session(&self, account: &PartnerAccount) -> Result<SecretString, CoreError> {
        let token = new_token()?;
        let t = now();
        self.store
            .insert_portal_session(&PortalSession {
                digest: digest(token.expose_secret()),
                login: account.login.clone(),
                partner: account.partner.clone(),
                created_at: t,
                expires_at: t + SESSION_LIFETIME,
            })
            .await?;
        Ok(token)
    }

    /// Signs an account in; returns the session token. A locked account is
    /// refused before any password work; the [`MAX_FAILURES`]-th failure
    /// in a row locks it for [`LOCK_SECS`].
    /// An account with a second factor is refused
    /// ([`PortalError::CodeRequired`]): it signs in with
    /// [`Tollgate::portal_sign_in`].
    pub async fn portal_login(
        &self,
        login: &str,
        password: &SecretString,
    ) -> Result<SecretString, PortalError> {
        let account = self.check_password(login, password).await?;
        if self.totp_required(&account.login).await? {
            return Err(PortalError::CodeRequired);
        }
        Ok(self.finish_sign_in(&account).await?)
    }

    /// The account `login` if `password` is its password and it may sign
    /// in: a locked account is refused before any password work; a
    /// failure is counted. The count is not reset here: an account with a
    /// second factor forgets its failures only after the code.
    pub(crate) async fn check_password(
        &self,
        login: &str,
        password: &SecretString,
    ) -> Result<PartnerAccount, PortalError> {
        let t = now();
        let account = self
            .store
            .get_partner_account(login)
            .await
            .map_err(CoreError::from)?;
        if let Some(until) = account
            .as_ref()
            .and_then(|a| a.locked_until)
            .filter(|u| *u > t)
        {
            return Err(PortalError::Locked { until });
        }
        let phcs = account
            .as_ref()
            .map(|a| vec![(0, a.password_hash.clone())])
            .unwrap_or_default();
        let cache_key = self.keys.cache_digest(&[
            b"portal",
            login.as_bytes(),
            password.expose_secret().as_bytes(),
        ]);
        let ok = self
            .verifier
            .check(
                &self.metrics,
                "portal_password",
                cache_key,
                password,
                phcs,
                t + 60,
            )
            .await
            .map_err(|e| match e {
                GrantError::Busy => PortalError::Busy,
                other => PortalError::Core(CoreError::Crypto(other.to_string())),
            })?;
        let Some(account) = account.filter(|_| ok) else {
            self.store
                .partner_login_failed(login, t, MAX_FAILURES, LOCK_SECS)
                .await
                .map_err(CoreError::from)?;
            return Err(PortalError::BadCredentials);
        };
        let partner = self.get_partner(&account.partner).await?;
        if !partner.enabled {
            return Err(PortalError::PartnerDisabled);
        }
        Ok(account)
    }

    /// The end of a successful sign-in: failures forgotten, a session.
    pub(crate) async fn finish_sign_in(
        &self,
        account: &PartnerAccount,
    ) -> Result<SecretString, CoreError> {
        if account.failed_attempts > 0 {
            self.store.partner_login_succeeded(&account.login).await?;
        }
        self.open_session(account).await
    }

    /// The signed-in account behind a session token: `None` if unknown,
    /// expired, or its partner is disabled.
    pub async fn portal_session(&self, token: &str) -> Result<Option<SignedIn>, CoreError> {
        let Some(s) = self
            .store
            .get_portal_session(&digest(token))
            .await?
            .filter(|s| s.expires_at > now())
        else {
            return Ok(None);
        };
        let Some(account) = self.store.get_partner_account(&s.login).await? else {
            return Ok(None);
        };
        let Some(partner) = self
            .store
            .get_partner(&account.partner)
            .await?
            .filter(|p| p.enabled)
        else {
            return Ok(None);
        };
        Ok(Some(SignedIn { account, partner }))
    }

    /// Ends a session.
    pub async fn portal_logout(&self, token: &str) -> Result<(), CoreError> {
        Ok(self.store.delete_portal_session(&digest(token)).await?)
    }

    /// The CSRF token every form of session `token` carries.
    pub fn portal_csrf(&self, token: &str) -> String {
        csrf_of(token)
    }

    /// Whether `presented` is session `token`'s CSRF token (constant time).
    pub fn portal_csrf_matches(&self, token: &str, presented: &str) -> bool {
        bool::from(csrf_of(token).as_bytes().ct_eq(presented.as_bytes()))
    }

    /// The clients partner `id` owns (in every environment), as they are now.
    pub async fn partner_clients(&self, id: &str) -> Result<Vec<Client>, CoreError> {
        let mut out = Vec::new();
        for o in self.store.list_partner_clients(id).await? {
            if let Some(c) = self.store.get_client(&o.env, &o.client_id).await? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// One client partner `p` owns.
    pub(crate) async fn owned_client(
        &self,
        p: &Partner,
        env: &str,
        client_id: &str,
    ) -> Result<Client, PortalError> {
        let owned = self
            .store
            .list_partner_clients(&p.id)
            .await
            .map_err(CoreError::from)?
            .into_iter()
            .any(|o| o.env == env && o.client_id == client_id);
        if !owned {
            return Err(PortalError::NotYours);
        }
        self.store
            .get_client(env, client_id)
            .await
            .map_err(CoreError::from)?
            .ok_or(PortalError::NotYours)
    }

    /// Creates a client of partner `p` in `env` holding `chosen`, which must
    /// all be offered to it there; returns it with its secret (shown once).
    pub async fn partner_create_client(
        &self,
        p: &Partner,
        env: &str,
        name: &str,
        chosen: &[Offer],
    ) -> Result<(Client, SecretString), PortalError> {
        if !p.enabled {
            return Err(PortalError::PartnerDisabled);
        }
        if name.trim().is_empty() || name.len() > 200 {
            return Err(CoreError::invalid("name", "give 1 to 200 characters").into());
        }
        if chosen.is_empty() {
            return Err(CoreError::invalid("packages", "choose at least one package").into());
        }
        let mut apis: Vec<ApiGrant> = Vec::new();
        for o in chosen {
            if o.env != env || !p.offers.contains(o) {
                return Err(CoreError::invalid(
                    "packages",
                    format!(
                        "'{}' of '{}' is not offered to you in '{env}'",
                        o.package, o.api
                    ),
                )
                .into());
            }
            match apis.iter_mut().find(|g| g.api == o.api) {
                Some(g) => g.grants.push(o.package.clone()),
                None => apis.push(ApiGrant {
                    api: o.api.clone(),
                    grants: vec![o.package.clone()],
                }),
            }
        }
        let (client, secret) = self
            .create_client(NewClient {
                env: env.to_string(),
                name: name.trim().to_string(),
                client_id: None,
                client_secret: None,
                apis,
                grant_types: Default::default(),
                token_lifetime: None,
                extra_claims: Default::default(),
                capabilities: Default::default(),
                obligation: None,
                roles: Default::default(),
                public: false,
            })
            .await?;
        let owned = PartnerClient {
            partner: p.id.clone(),
            env: env.to_string(),
            client_id: client.client_id.clone(),
            created_at: client.created_at,
        };
        if let Err(e) = self.store.insert_partner_client(&owned).await {
            // No client without an owner: take it back.
            let _ = self
                .store
                .delete_client(env, &client.client_id, now())
                .await;
            return Err(CoreError::from(e).into());
        }
        let secret = secret.ok_or_else(|| CoreError::Crypto("no secret generated".into()))?;
        Ok((client, secret))
    }

    /// Rotates the secret of a client `p` owns: the new one is returned
    /// (shown once), the current ones work `grace` seconds more.
    pub async fn partner_rotate_secret(
        &self,
        p: &Partner,
        env: &str,
        client_id: &str,
        grace: u64,
    ) -> Result<(SecretString, Client), PortalError> {
        if grace > MAX_GRACE {
            return Err(CoreError::invalid("grace", "at most 7 days").into());
        }
        self.owned_client(p, env, client_id).await?;
        Ok(self.rotate_secret(env, client_id, grace).await?)
    }

    /// Ends the grace of the old secrets of a client `p` owns at once.
    pub async fn partner_revoke_old_secrets(
        &self,
        p: &Partner,
        env: &str,
        client_id: &str,
    ) -> Result<Client, PortalError> {
        self.owned_client(p, env, client_id).await?;
        Ok(self.revoke_all_but_newest_secret(env, client_id).await?)
    }
}
