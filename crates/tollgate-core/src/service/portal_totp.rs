//! Optional second factor of portal accounts: TOTP (RFC 6238, see
//! `crypto/totp.rs`). Enrolment stores a new secret unconfirmed and shows
//! it once (base32 and `otpauth://` URI); a valid code confirms it; from
//! then on sign-in asks for a code after the password, and disabling needs
//! a current code.
//!
//! The secret must be read back to check a code, so it cannot be hashed:
//! it is sealed with AES-256-GCM under the key derived from the master key
//! that seals signing keys, the login as associated data (a row copied to
//! another account does not open). A code is accepted once: the store
//! records its step with a compare-and-set, and no code of that step or an
//! earlier one passes again. Wrong codes at sign-in count towards the
//! account's lock like wrong passwords, and the failure count is reset
//! only after the code, so a known password does not buy unlimited guesses.
//!
//! Between the password and the code, the sign-in travels as a ticket: the
//! login and an expiry sealed under the same key (another context), so it
//! needs no row and cannot be forged or altered.

use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::crypto::random::fill_random;
use crate::crypto::totp;
use crate::error::CoreError;
use crate::partner::{PartnerAccount, PartnerTotp};
use crate::service::Tollgate;
use crate::service::portal::{LOCK_SECS, MAX_FAILURES, PortalError, SignedIn};
use crate::time::now;

/// How long a sign-in waits for its code after the password (seconds).
pub const TICKET_LIFETIME: i64 = 5 * 60;

const TICKET_CONTEXT: &str = "tollgate/v1/portal-sign-in-ticket";

/// The associated data of an account's sealed TOTP secret.
fn seal_context(login: &str) -> String {
    format!("tollgate/v1/portal-totp/{login}")
}

/// What a password sign-in leads to.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in: the session token.
    Session(SecretString),
    /// The account has a second factor: the ticket to present with the code
    /// (within [`TICKET_LIFETIME`]).
    Code(SecretString),
}

/// A new secret to show once, while its enrolment waits for a code.
#[derive(Debug)]
pub struct Enrolment {
    /// The secret in base32, for typing into an app.
    pub base32: SecretString,
    /// The `otpauth://` URI (the QR code's content).
    pub uri: SecretString,
}

/// Where an account stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpState {
    /// No second factor.
    Off,
    /// A secret shown, not yet confirmed by a code.
    Pending,
    /// Asked for at sign-in.
    On,
}

impl Tollgate {
    /// Whether sign-in of `login` needs a code (a confirmed second factor).
    pub(crate) async fn totp_required(&self, login: &str) -> Result<bool, CoreError> {
        Ok(self
            .store
            .get_partner_totp(login)
            .await?
            .is_some_and(|t| t.confirmed))
    }

    /// Where `login`'s second factor stands.
    pub async fn totp_state(&self, login: &str) -> Result<TotpState, CoreError> {
        Ok(match self.store.get_partner_totp(login).await? {
            None => TotpState::Off,
            Some(t) if t.confirmed => TotpState::On,
            Some(_) => TotpState::Pending,
        })
    }

    fn enrolment(&self, who: &SignedIn, secret: &[u8]) -> Enrolment {
        let issuer = format!("tollgate {}", who.partner.name);
        Enrolment {
            base32: SecretString::from(totp::base32(secret)),
            uri: SecretString::from(totp::otpauth_uri(&issuer, &who.account.login, secret)),
        }
    }

    /// Starts an enrolment: a new secret, stored sealed and unconfirmed
    /// (replacing one not confirmed yet), to show once. Refused while a
    /// confirmed one is on: disable it first (with a code).
    pub async fn begin_totp(&self, who: &SignedIn) -> Result<Enrolment, CoreError> {
        let login = &who.account.login;
        if self.totp_required(login).await? {
            return Err(CoreError::invalid(
                "totp",
                "a second factor is on already: turn it off first",
            ));
        }
        let mut secret = Zeroizing::new([0u8; totp::SECRET_LEN]);
        fill_random(secret.as_mut())?;
        let row = PartnerTotp {
            login: login.clone(),
            sealed: self.keys.seal(&seal_context(login), secret.as_ref())?,
            confirmed: false,
            last_step: None,
            created_at: now(),
        };
        self.store.put_partner_totp(&row).await?;
        Ok(self.enrolment(who, secret.as_ref()))
    }

    /// The pending enrolment's secret again (to show the page once more
    /// after a wrong code), or `None` if none is pending.
    pub async fn pending_totp(&self, who: &SignedIn) -> Result<Option<Enrolment>, CoreError> {
        let Some(row) = self
            .store
            .get_partner_totp(&who.account.login)
            .await?
            .filter(|t| !t.confirmed)
        else {
            return Ok(None);
        };
        let secret = self
            .keys
            .open(&seal_context(&who.account.login), &row.sealed)?;
        Ok(Some(self.enrolment(who, &secret)))
    }

    /// Checks `code` against `login`'s secret (confirmed or pending as
    /// `confirmed` says) and uses its step up: true once per step.
    async fn use_code(
        &self,
        login: &str,
        code: &str,
        confirmed: bool,
        confirm: bool,
    ) -> Result<bool, CoreError> {
        let Some(row) = self
            .store
            .get_partner_totp(login)
            .await?
            .filter(|t| t.confirmed == confirmed)
        else {
            return Ok(false);
        };
        let secret = self.keys.open(&seal_context(login), &row.sealed)?;
        let Some(step) = totp::verify(&secret, code, now())? else {
            return Ok(false);
        };
        if row.last_step.is_some_and(|l| l >= step) {
            return Ok(false);
        }
        Ok(self
            .store
            .use_partner_totp_step(login, step, confirm)
            .await?)
    }

    /// Confirms a pending enrolment with a code of its secret: from then on
    /// sign-in asks for a code.
    pub async fn confirm_totp(&self, who: &SignedIn, code: &str) -> Result<(), PortalError> {
        if self.use_code(&who.account.login, code, false, true).await? {
            Ok(())
        } else {
            Err(PortalError::BadCode)
        }
    }

    /// Turns the second factor off (or drops a pending enrolment): a
    /// confirmed one needs a current code, and a wrong one counts towards
    /// the lock as at sign-in.
    pub async fn disable_totp(&self, who: &SignedIn, code: &str) -> Result<(), PortalError> {
        let login = &who.account.login;
        if self.totp_required(login).await? && !self.use_code(login, code, true, false).await? {
            self.store
                .partner_login_failed(login, now(), MAX_FAILURES, LOCK_SECS)
                .await
                .map_err(CoreError::from)?;
            return Err(PortalError::BadCode);
        }
        self.store
            .delete_partner_totp(login)
            .await
            .map_err(CoreError::from)?;
        Ok(())
    }

    /// The provider's reset of an account's second factor (a lost
    /// authenticator): removed, so the account signs in with its password
    /// alone until it sets one up again. Returns whether it had one.
    pub async fn reset_partner_totp(&self, login: &str) -> Result<bool, CoreError> {
        self.store
            .get_partner_account(login)
            .await?
            .ok_or_else(|| CoreError::not_found("account", login))?;
        let had = self.store.get_partner_totp(login).await?.is_some();
        self.store.delete_partner_totp(login).await?;
        Ok(had)
    }

    /// Signs in with a password: a session, or (second factor on) a ticket
    /// to complete with [`Tollgate::portal_sign_in_code`].
    pub async fn portal_sign_in(
        &self,
        login: &str,
        password: &SecretString,
    ) -> Result<SignIn, PortalError> {
        let account = self.check_password(login, password).await?;
        if !self.totp_required(&account.login).await? {
            return Ok(SignIn::Session(self.finish_sign_in(&account).await?));
        }
        let body = serde_json::json!({
            "login": account.login,
            "exp": now() + TICKET_LIFETIME,
        })
        .to_string();
        Ok(SignIn::Code(SecretString::from(
            self.keys.seal(TICKET_CONTEXT, body.as_bytes())?,
        )))
    }

    /// Completes a sign-in with the code: the session token. The lock is
    /// checked again (failures may have come since the password), and a
    /// wrong code counts towards it.
    pub async fn portal_sign_in_code(
        &self,
        ticket: &str,
        code: &str,
    ) -> Result<SecretString, PortalError> {
        let t = now();
        let login = self
            .keys
            .open(TICKET_CONTEXT, ticket)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .filter(|v| v["exp"].as_i64().is_some_and(|e| e > t))
            .and_then(|v| v["login"].as_str().map(str::to_string))
            .ok_or(PortalError::BadCode)?;
        let account: PartnerAccount = self
            .store
            .get_partner_account(&login)
            .await
            .map_err(CoreError::from)?
            .ok_or(PortalError::BadCredentials)?;
        if let Some(until) = account.locked_until.filter(|u| *u > t) {
            return Err(PortalError::Locked { until });
        }
        if !self.use_code(&login, code, true, false).await? {
            self.store
                .partner_login_failed(&login, t, MAX_FAILURES, LOCK_SECS)
                .await
                .map_err(CoreError::from)?;
            return Err(PortalError::BadCode);
        }
        let partner = self.get_partner(&account.partner).await?;
        if !partner.enabled {
            return Err(PortalError::PartnerDisabled);
        }
        Ok(self.finish_sign_in(&account).await?)
    }
}
