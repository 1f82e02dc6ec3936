//! Device credentials (Dive, Spring Security OAuth2): `POST
//! …/v1/token?grant_type=device_credentials` with the client key in Basic and
//! `username` + MD5 of the password as form fields; `grant_type=refresh_token`
//! with the stored refresh token. Spring's `{"error",…}` bodies.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::contracts::{Grant, join, read_oauth};
use crate::error::Error;
use crate::key::{CacheKey, Contract, md5_hex};
use crate::secret::Secret;
use crate::transport::Transport;

/// A device-credentials source's configuration.
#[derive(Debug, Clone)]
pub struct DeviceCredentials {
    pub(crate) base_url: String,
    pub(crate) path: String,
    pub(crate) client_key: String,
    pub(crate) client_secret: Option<Secret>,
    pub(crate) username: String,
    pub(crate) password_md5: Secret,
}

impl DeviceCredentials {
    /// Device `username` with `password` (sent as its MD5, as the contract
    /// asks) for the client key `client_key`, at `base_url` + `/v1/token`.
    pub fn new(
        base_url: impl Into<String>,
        client_key: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<Secret>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            path: "/v1/token".into(),
            client_key: client_key.into(),
            client_secret: None,
            username: username.into(),
            password_md5: Secret::new(md5_hex(password.into().expose())),
        }
    }

    /// The client's secret, for a confidential client (`key:secret` in Basic).
    pub fn client_secret(mut self, secret: impl Into<Secret>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// The token endpoint's path (default `/v1/token`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    pub(crate) fn key(&self) -> CacheKey {
        CacheKey {
            contract: Contract::DeviceCredentials,
            endpoint: join(&self.base_url, &self.path),
            client: self.client_key.clone(),
            subject: Some(self.username.clone()),
            audience: None,
            resource: None,
            scope: None,
        }
    }

    fn basic(&self) -> String {
        let raw = match &self.client_secret {
            Some(s) => format!("{}:{}", self.client_key, s.expose()),
            None => self.client_key.clone(),
        };
        format!("Basic {}", STANDARD.encode(raw))
    }

    async fn post(
        &self,
        t: &Transport,
        grant: &str,
        fields: &[(&str, &str)],
    ) -> Result<Grant, Error> {
        let contract = Contract::DeviceCredentials;
        let url = format!("{}?grant_type={grant}", self.key().endpoint);
        let basic = self.basic();
        let sent_at = SystemTime::now();
        let resp = t
            .send(contract, |http| {
                http.post(&url)
                    .header(reqwest::header::AUTHORIZATION, &basic)
                    .header(reqwest::header::ACCEPT, "application/json")
                    .form(fields)
            })
            .await?;
        read_oauth(contract, resp, sent_at).await
    }

    pub(crate) async fn login(&self, t: &Transport) -> Result<Grant, Error> {
        self.post(
            t,
            "device_credentials",
            &[
                ("username", &self.username),
                ("password", self.password_md5.expose()),
            ],
        )
        .await
    }

    pub(crate) async fn refresh(&self, t: &Transport, refresh: &Secret) -> Result<Grant, Error> {
        self.post(t, "refresh_token", &[("refresh_token", refresh.expose())])
            .await
    }
}
