//! client_credentials (RFC 6749 §4.4) at `/oauth/token`, in the three shapes
//! the seeds send: a form body (RFC 6749), a JSON body (the JSON sample),
//! and Auth0's form with `audience` (Sportradar). The client authenticates
//! in the body, as all three samples do.

use std::time::SystemTime;

use crate::contracts::{Grant, join, read_oauth};
use crate::error::Error;
use crate::key::{CacheKey, Contract};
use crate::secret::Secret;
use crate::transport::Transport;

/// How the request body is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `application/x-www-form-urlencoded` (RFC 6749).
    Form,
    /// `application/json`.
    Json,
    /// Auth0: a form with `audience` (required).
    Auth0,
}

/// A client_credentials source's configuration.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub(crate) base_url: String,
    pub(crate) path: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: Secret,
    pub(crate) audience: Option<String>,
    pub(crate) resource: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) shape: Shape,
}

impl ClientCredentials {
    /// A form-body client at `base_url` (the issuer: `https://auth.example.com`
    /// or `…/e/<env>`) with the token endpoint at `/oauth/token`.
    pub fn new(
        base_url: impl Into<String>,
        client_id: impl Into<String>,
        secret: impl Into<Secret>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            path: "/oauth/token".into(),
            client_id: client_id.into(),
            client_secret: secret.into(),
            audience: None,
            resource: None,
            scope: None,
            shape: Shape::Form,
        }
    }

    /// The body shape.
    pub fn shape(mut self, shape: Shape) -> Self {
        self.shape = shape;
        self
    }

    /// The token endpoint's path (default `/oauth/token`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// `audience` (Auth0 style).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// `resource` (RFC 8707).
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// `scope` (space-separated).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    pub(crate) fn key(&self) -> CacheKey {
        CacheKey {
            contract: match self.shape {
                Shape::Form => Contract::Rfc6749,
                Shape::Json => Contract::Rfc6749Json,
                Shape::Auth0 => Contract::Auth0,
            },
            endpoint: join(&self.base_url, &self.path),
            client: self.client_id.clone(),
            subject: None,
            audience: self.audience.clone(),
            resource: self.resource.clone(),
            scope: self.scope.clone(),
        }
    }

    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.shape == Shape::Auth0 && self.audience.is_none() {
            return Err(Error::Config("the auth0 shape needs an audience".into()));
        }
        Ok(())
    }

    pub(crate) async fn obtain(&self, t: &Transport) -> Result<Grant, Error> {
        let key = self.key();
        let mut fields: Vec<(&str, &str)> = vec![
            ("grant_type", "client_credentials"),
            ("client_id", &self.client_id),
            ("client_secret", self.client_secret.expose()),
        ];
        for (name, v) in [
            ("audience", &self.audience),
            ("resource", &self.resource),
            ("scope", &self.scope),
        ] {
            if let Some(v) = v {
                fields.push((name, v));
            }
        }
        let sent_at = SystemTime::now();
        let resp = t
            .send(key.contract, |http| {
                let rb = http
                    .post(&key.endpoint)
                    .header(reqwest::header::ACCEPT, "application/json");
                match self.shape {
                    Shape::Json => {
                        let map: serde_json::Map<String, serde_json::Value> = fields
                            .iter()
                            .map(|(k, v)| ((*k).to_string(), serde_json::Value::from(*v)))
                            .collect();
                        rb.json(&map)
                    }
                    Shape::Form | Shape::Auth0 => rb.form(&fields),
                }
            })
            .await?;
        read_oauth(key.contract, resp, sent_at).await
    }
}
