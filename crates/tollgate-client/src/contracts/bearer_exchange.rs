//! The refresh-JWT exchange (Cloudbet): `POST …/access-token` with
//! `Authorization: Bearer <refresh JWT>`, no body, answered
//! `{"token","expireAt"}`. The refresh JWT is long-lived and never rotated,
//! so nothing is stored; a refused one is the partner's to replace.

use std::time::SystemTime;

use crate::contracts::{Grant, join, refused};
use crate::error::Error;
use crate::key::{CacheKey, Contract, md5_hex};
use crate::secret::Secret;
use crate::token::{AccessToken, parse_rfc3339};
use crate::transport::Transport;

/// A bearer-exchange source's configuration.
#[derive(Debug, Clone)]
pub struct BearerExchange {
    pub(crate) base_url: String,
    pub(crate) path: String,
    pub(crate) refresh_jwt: Secret,
}

#[derive(serde::Deserialize)]
struct Body {
    token: String,
    #[serde(rename = "expireAt")]
    expire_at: String,
}

impl BearerExchange {
    /// Exchanges `refresh_jwt` at `base_url` + `/pub/v2/players/access-token`.
    pub fn new(base_url: impl Into<String>, refresh_jwt: impl Into<Secret>) -> Self {
        Self {
            base_url: base_url.into(),
            path: "/pub/v2/players/access-token".into(),
            refresh_jwt: refresh_jwt.into(),
        }
    }

    /// The exchange's path.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    pub(crate) fn key(&self) -> CacheKey {
        CacheKey {
            contract: Contract::BearerExchange,
            endpoint: join(&self.base_url, &self.path),
            // Which refresh JWT, without writing it anywhere.
            client: md5_hex(self.refresh_jwt.expose()),
            subject: None,
            audience: None,
            resource: None,
            scope: None,
        }
    }

    pub(crate) async fn exchange(&self, t: &Transport) -> Result<Grant, Error> {
        let contract = Contract::BearerExchange;
        let url = self.key().endpoint;
        let sent_at = SystemTime::now();
        let resp = t
            .send(contract, |http| {
                http.post(&url)
                    .header(reqwest::header::ACCEPT, "application/json")
                    .bearer_auth(self.refresh_jwt.expose())
            })
            .await?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| Error::Protocol {
            contract,
            detail: e.to_string(),
        })?;
        if status != 200 {
            return Err(refused(contract, status, &text));
        }
        let body: Body = serde_json::from_str(&text).map_err(|e| Error::Protocol {
            contract,
            detail: format!("not {{\"token\",\"expireAt\"}}: {e}"),
        })?;
        let expires_at = parse_rfc3339(&body.expire_at).ok_or_else(|| Error::Protocol {
            contract,
            detail: format!("expireAt '{}' is not RFC 3339", body.expire_at),
        })?;
        Ok(Grant {
            access: AccessToken::new(Secret::new(body.token), sent_at, expires_at),
            refresh: None,
        })
    }
}
