//! One module per wire contract: how to log in (or obtain) and, where the
//! contract has refresh tokens, how to refresh. They share the OAuth-style
//! JSON reading here; none knows about caching, which is
//! [`crate::source`]'s.

use std::time::{Duration, SystemTime};

use crate::error::Error;
use crate::key::{CacheKey, Contract};
use crate::secret::Secret;
use crate::token::{AccessToken, jwt_exp};
use crate::transport::Transport;

pub mod bearer_exchange;
pub mod client_credentials;
pub mod device_credentials;
pub mod header_login;

pub use bearer_exchange::BearerExchange;
pub use client_credentials::{ClientCredentials, Shape};
pub use device_credentials::DeviceCredentials;
pub use header_login::HeaderLogin;

/// What one successful token request gave.
#[derive(Debug)]
pub(crate) struct Grant {
    pub access: AccessToken,
    /// The refresh token that came with it (user contracts).
    pub refresh: Option<Secret>,
}

/// A configured contract.
#[derive(Debug, Clone)]
pub(crate) enum Flow {
    ClientCredentials(ClientCredentials),
    BearerExchange(BearerExchange),
    Device(DeviceCredentials),
    HeaderLogin(HeaderLogin),
}

impl Flow {
    pub fn key(&self) -> CacheKey {
        match self {
            Flow::ClientCredentials(c) => c.key(),
            Flow::BearerExchange(c) => c.key(),
            Flow::Device(c) => c.key(),
            Flow::HeaderLogin(c) => c.key(),
        }
    }

    /// Obtains a token from the credentials (no refresh token).
    pub async fn login(&self, t: &Transport) -> Result<Grant, Error> {
        match self {
            Flow::ClientCredentials(c) => c.obtain(t).await,
            Flow::BearerExchange(c) => c.exchange(t).await,
            Flow::Device(c) => c.login(t).await,
            Flow::HeaderLogin(c) => c.login(t).await,
        }
    }

    /// Uses a refresh token (only the user contracts have them).
    pub async fn refresh(&self, t: &Transport, refresh: &Secret) -> Result<Grant, Error> {
        match self {
            Flow::Device(c) => c.refresh(t, refresh).await,
            Flow::HeaderLogin(c) => c.refresh(t, refresh).await,
            Flow::ClientCredentials(_) | Flow::BearerExchange(_) => self.login(t).await,
        }
    }

    /// Whether a dead refresh token may be replaced by logging in again.
    pub fn can_relogin(&self) -> bool {
        match self {
            Flow::Device(_) | Flow::HeaderLogin(_) => true,
            Flow::ClientCredentials(_) | Flow::BearerExchange(_) => false,
        }
    }
}

/// `base` + `path`, one slash between them.
pub(crate) fn join(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    if path.starts_with('/') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    }
}

/// The fields of an OAuth 2.0 token answer (RFC 6749 §5.1; Spring's too).
#[derive(serde::Deserialize)]
struct TokenBody {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// The fields of an OAuth 2.0 error (RFC 6749 §5.2; Spring's and Auth0's too).
#[derive(serde::Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Reads an OAuth-shaped answer: the token on 200, the contract's error
/// otherwise. `sent_at` is taken before the request, so `expires_in`
/// counts from no later than the server's moment.
pub(crate) async fn read_oauth(
    contract: Contract,
    resp: reqwest::Response,
    sent_at: SystemTime,
) -> Result<Grant, Error> {
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| Error::Protocol {
        contract,
        detail: format!("reading the body: {e}"),
    })?;
    if status != 200 {
        return Err(refused(contract, status, &text));
    }
    let body: TokenBody = serde_json::from_str(&text).map_err(|e| Error::Protocol {
        contract,
        detail: format!("not a token answer: {e}"),
    })?;
    let expires_at = match body.expires_in {
        Some(secs) => sent_at + Duration::from_secs(secs),
        None => jwt_exp(&body.access_token).ok_or_else(|| Error::Protocol {
            contract,
            detail: "neither expires_in nor a JWT exp".into(),
        })?,
    };
    Ok(Grant {
        access: AccessToken::new(Secret::new(body.access_token), sent_at, expires_at),
        refresh: body.refresh_token.map(Secret::new),
    })
}

/// The contract's error from a refusal's body (`{"error",…}`), else
/// `http_<status>`.
pub(crate) fn refused(contract: Contract, status: u16, body: &str) -> Error {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) => Error::Refused {
            contract,
            status,
            code: e.error,
            description: e.error_description,
        },
        Err(_) => Error::Refused {
            contract,
            status,
            code: format!("http_{status}"),
            description: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_puts_one_slash() {
        assert_eq!(
            join("https://a/e/stg/", "/oauth/token"),
            "https://a/e/stg/oauth/token"
        );
        assert_eq!(join("https://a", "oauth/token"), "https://a/oauth/token");
    }

    #[test]
    fn errors_keep_the_contract_code() {
        let e = refused(
            Contract::DeviceCredentials,
            400,
            r#"{"error":"invalid_grant","error_description":"Invalid refresh token"}"#,
        );
        assert!(e.is_dead_grant());
        assert_eq!(e.code(), Some("invalid_grant"));
        assert!(e.to_string().contains("device-credentials"), "{e}");
        let e = refused(Contract::Rfc6749, 502, "<html>");
        assert_eq!(e.code(), Some("http_502"));
        assert!(!e.is_dead_grant());
    }
}
