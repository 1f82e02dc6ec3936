//! Header login (Tradecloud): `GET …/login` with Basic `email:password`,
//! answered in `Set-Authorization` / `Set-Refresh-Token`; `GET …/refresh`
//! with `Refresh-Token` gives a new pair and kills the old refresh token.
//! Every refusal is a plain 401 `Not authenticated` (code
//! `not_authenticated` here). The access token's expiry is its JWT `exp`.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::contracts::{Grant, join};
use crate::error::Error;
use crate::key::{CacheKey, Contract};
use crate::secret::Secret;
use crate::token::{AccessToken, jwt_exp};
use crate::transport::Transport;

/// The lifetime Tradecloud documents, used when the token is not a JWT.
const DOCUMENTED_LIFETIME: Duration = Duration::from_secs(600);

/// A header-login source's configuration.
#[derive(Debug, Clone)]
pub struct HeaderLogin {
    pub(crate) base_url: String,
    pub(crate) prefix: String,
    pub(crate) email: String,
    pub(crate) password: Secret,
}

impl HeaderLogin {
    /// `email` with `password` at `base_url` + `/v2/authentication`.
    pub fn new(
        base_url: impl Into<String>,
        email: impl Into<String>,
        password: impl Into<Secret>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            prefix: "/v2/authentication".into(),
            email: email.into(),
            password: password.into(),
        }
    }

    /// The path prefix of `login` and `refresh` (default `/v2/authentication`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    pub(crate) fn key(&self) -> CacheKey {
        CacheKey {
            contract: Contract::HeaderLogin,
            endpoint: join(&self.base_url, &self.prefix),
            client: String::new(),
            subject: Some(self.email.clone()),
            audience: None,
            resource: None,
            scope: None,
        }
    }

    async fn get(&self, t: &Transport, what: &str, header: (&str, String)) -> Result<Grant, Error> {
        let contract = Contract::HeaderLogin;
        let url = format!("{}/{what}", self.key().endpoint);
        let sent_at = SystemTime::now();
        let resp = t
            .send(contract, |http| http.get(&url).header(header.0, &header.1))
            .await?;
        let status = resp.status().as_u16();
        if status != 200 {
            let code = if status == 401 {
                "not_authenticated".to_string()
            } else {
                format!("http_{status}")
            };
            return Err(Error::Refused {
                contract,
                status,
                code,
                description: resp.text().await.ok().filter(|t| !t.is_empty()),
            });
        }
        let h = resp.headers();
        let read = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let (Some(access), Some(refresh)) = (read("set-authorization"), read("set-refresh-token"))
        else {
            return Err(Error::Protocol {
                contract,
                detail: "200 without Set-Authorization and Set-Refresh-Token".into(),
            });
        };
        // Some servers prefix the scheme; the API wants the bare token after ours.
        let access = access
            .strip_prefix("Bearer ")
            .map(str::to_string)
            .unwrap_or(access);
        let expires_at = jwt_exp(&access).unwrap_or(sent_at + DOCUMENTED_LIFETIME);
        Ok(Grant {
            access: AccessToken::new(Secret::new(access), sent_at, expires_at),
            refresh: Some(Secret::new(refresh)),
        })
    }

    pub(crate) async fn login(&self, t: &Transport) -> Result<Grant, Error> {
        let raw = format!("{}:{}", self.email, self.password.expose());
        let basic = format!("Basic {}", STANDARD.encode(raw));
        self.get(t, "login", ("authorization", basic)).await
    }

    pub(crate) async fn refresh(&self, t: &Transport, refresh: &Secret) -> Result<Grant, Error> {
        self.get(
            t,
            "refresh",
            ("refresh-token", refresh.expose().to_string()),
        )
        .await
    }
}
