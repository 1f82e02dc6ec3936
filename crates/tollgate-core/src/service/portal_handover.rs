//! Handing a secret over through a one-time link, instead of showing it:
//! the secret is sealed (AES-256-GCM under a key derived from the master
//! key, bound to the link's digest) and stored until the link is opened —
//! then deleted in the same statement that reads it — or expires, then
//! purged. The link's token is 32 random bytes; the store keeps only its
//! SHA-256, so a copy of the database opens no link.
//!
//! Opening is two steps in the HTTP layer: a look (does not consume; what
//! link scanners and previews fetch) and the taking, on a button.

use secrecy::{ExposeSecret, SecretString};

use crate::error::CoreError;
use crate::partner::{Handover, Partner};
use crate::service::Tollgate;
use crate::service::portal::{PortalError, digest, new_token};
use crate::time::now;

/// The longest a link may wait to be opened (7 days).
pub const MAX_HANDOVER_TTL: u64 = 7 * 24 * 3600;

fn seal_context(digest: &str) -> String {
    format!("tollgate/v1/portal-handover/{digest}")
}

impl Tollgate {
    /// The server's public URL (no trailing `/`): where links start.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Stores `secret` for a one-time link working `ttl` seconds; returns
    /// the link's token (shown once) and the record (its expiry).
    pub async fn partner_handover(
        &self,
        p: &Partner,
        label: &str,
        secret: &SecretString,
        ttl: u64,
    ) -> Result<(SecretString, Handover), PortalError> {
        if ttl == 0 || ttl > MAX_HANDOVER_TTL {
            return Err(CoreError::invalid("expiry", "give 1 s to 7 days").into());
        }
        let token = new_token()?;
        let d = digest(token.expose_secret());
        let t = now();
        let h = Handover {
            sealed: self
                .keys
                .seal(&seal_context(&d), secret.expose_secret().as_bytes())?,
            digest: d,
            partner: p.id.clone(),
            label: label.chars().take(300).collect(),
            created_at: t,
            expires_at: t.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
        };
        self.store
            .insert_handover(&h)
            .await
            .map_err(CoreError::from)?;
        Ok((token, h))
    }

    /// Whether the partner of a handover is enabled: a disabled partner's
    /// links do not open (its clients are refused anyway).
    async fn partner_enabled(&self, h: &Handover) -> Result<bool, CoreError> {
        Ok(self
            .store
            .get_partner(&h.partner)
            .await?
            .is_some_and(|p| p.enabled))
    }

    /// The handover behind `token` if it can still be opened (not opened).
    pub async fn peek_handover(&self, token: &str) -> Result<Handover, PortalError> {
        let h = self
            .store
            .get_handover(&digest(token))
            .await
            .map_err(CoreError::from)?
            .filter(|h| h.expires_at > now())
            .ok_or(PortalError::LinkUnusable)?;
        if !self.partner_enabled(&h).await? {
            return Err(PortalError::LinkUnusable);
        }
        Ok(h)
    }

    /// Opens the link: the row is deleted as it is read (one opener gets
    /// it), then the secret unsealed. An expired row goes too, and so does
    /// a disabled partner's (refused).
    pub async fn open_handover(
        &self,
        token: &str,
    ) -> Result<(Handover, SecretString), PortalError> {
        let h = self
            .store
            .take_handover(&digest(token))
            .await
            .map_err(CoreError::from)?
            .filter(|h| h.expires_at > now())
            .ok_or(PortalError::LinkUnusable)?;
        if !self.partner_enabled(&h).await? {
            return Err(PortalError::LinkUnusable);
        }
        let plain = self.keys.open(&seal_context(&h.digest), &h.sealed)?;
        let text = String::from_utf8(plain.to_vec())
            .map_err(|_| CoreError::Crypto("a handed-over secret is not text".into()))?;
        Ok((h, SecretString::from(text)))
    }
}
