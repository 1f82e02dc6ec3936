//! Trusting an incumbent's refresh tokens (switching over without
//! re-onboarding partners): trusted issuers per environment and purpose, and
//! revocation of refresh tokens by id or by client, whoever issued them.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::trust::{TrustVerifier, published_jwks, seal_hs256};
use crate::error::CoreError;
use crate::incumbent::{TrustKeys, TrustPurpose, TrustedIssuer};
use crate::service::grants::incumbent::adopted_family;
use crate::service::{Tollgate, conflict};
use crate::time::now;

/// How long an incumbent's token id stays on the deny list. Its expiry is
/// unknown to tollgate (it was never seen, perhaps), so: longer than any
/// refresh token an incumbent hands out (Spring's default is 30 days, Dive's
/// 180 days).
pub const FOREIGN_DENY_SECS: i64 = 10 * 366 * 86_400;

/// Where a trusted issuer's keys come from.
pub enum TrustMaterial {
    /// A JWKS document (its text).
    Jwks(String),
    /// A PEM public key (its text).
    Pem(String),
    /// A shared HS256 secret.
    Hs256(SecretString),
}

impl std::fmt::Debug for TrustMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrustMaterial::Jwks(_) => "Jwks",
            TrustMaterial::Pem(_) => "Pem",
            TrustMaterial::Hs256(_) => "Hs256(<redacted>)",
        })
    }
}

/// A trusted issuer to add (`refresh-jwt trust`).
#[derive(Debug)]
pub struct NewTrust {
    /// Its name in the environment.
    pub id: String,
    /// Which grant accepts its tokens.
    pub purpose: TrustPurpose,
    /// Its keys.
    pub material: TrustMaterial,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Required `aud`.
    pub audience: Option<String>,
    /// The claim naming the client (default: `sub` for the bearer exchange,
    /// `client_id` for device credentials).
    pub client_claim: Option<String>,
    /// Device credentials: the claim naming the user (default `user_name`,
    /// then `device_id`).
    pub user_claim: Option<String>,
    /// Bearer exchange: the API of its access tokens (default: the client's
    /// only API).
    pub api: Option<String>,
}

/// What a revocation by id found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// A refresh JWT tollgate issued.
    Issued,
    /// Another issuer's token: its id is on the deny list.
    Foreign,
}

impl Tollgate {
    /// Trusts an incumbent issuer in `env`: its refresh tokens are accepted
    /// by `purpose`'s grant, mapped to tollgate clients (and users) by claim.
    pub async fn trust_issuer(&self, env: &str, t: NewTrust) -> Result<TrustedIssuer, CoreError> {
        self.require_env(env).await?;
        let keys = match t.material {
            TrustMaterial::Jwks(jwks) => TrustKeys::Jwks { jwks },
            TrustMaterial::Pem(pem) => TrustKeys::Pem { pem },
            TrustMaterial::Hs256(secret) => {
                // A file's trailing newline is not part of the key.
                let s = secret.expose_secret().trim_end_matches(['\r', '\n']);
                seal_hs256(&self.keys, env, &t.id, s.as_bytes())?
            }
        };
        let default_claim = match t.purpose {
            TrustPurpose::BearerExchange => "sub",
            TrustPurpose::DeviceCredentials | TrustPurpose::HeaderLogin => "client_id",
            TrustPurpose::AccessTokens => "",
        };
        let rec = TrustedIssuer {
            env: env.to_string(),
            id: t.id,
            purpose: t.purpose,
            keys,
            issuer: t.issuer,
            audience: t.audience,
            client_claim: t.client_claim.unwrap_or_else(|| default_claim.into()),
            user_claim: t.user_claim,
            api: t.api,
            created_at: now(),
        };
        rec.validate()?;
        if let TrustKeys::Jwks { jwks } = &rec.keys
            && rec.purpose == TrustPurpose::AccessTokens
        {
            published_jwks(jwks)?;
        }
        if let Some(api) = &rec.api {
            let apis = self.store.list_apis().await?;
            if !apis.iter().any(|a| a.env == env && &a.identifier == api) {
                return Err(CoreError::not_found("api", api));
            }
        }
        // Refused here, not at the next reload: the keys must parse.
        TrustVerifier::load(&self.keys, &rec)?;
        self.store
            .insert_trusted_issuer(&rec)
            .await
            .map_err(|e| conflict(e, "trusted issuer", &rec.id))?;
        Ok(rec)
    }

    /// Publishes an incumbent's public keys (its JWKS) in `env`'s JWKS
    /// beside tollgate's own, so that resource servers that discover keys
    /// at the issuer go on verifying the access tokens the incumbent issued
    /// before the switch. They never sign; `untrust_issuer` (`key
    /// unpublish`) ends it once those tokens have expired.
    pub async fn publish_incumbent_keys(
        &self,
        env: &str,
        id: &str,
        jwks: String,
    ) -> Result<TrustedIssuer, CoreError> {
        self.trust_issuer(
            env,
            NewTrust {
                id: id.to_string(),
                purpose: TrustPurpose::AccessTokens,
                material: TrustMaterial::Jwks(jwks),
                issuer: None,
                audience: None,
                client_claim: None,
                user_claim: None,
                api: None,
            },
        )
        .await
    }

    /// Stops trusting an issuer: its tokens are refused from the next sync
    /// (sessions already adopted into tollgate families go on).
    pub async fn untrust_issuer(&self, env: &str, id: &str) -> Result<(), CoreError> {
        let existed = self.store.delete_trusted_issuer(env, id).await?;
        CoreError::found(existed, "trusted issuer", id)
    }

    /// The trusted issuers of `env`, with the algorithms their keys verify.
    pub async fn list_trusted_issuers(
        &self,
        env: &str,
    ) -> Result<Vec<(TrustedIssuer, Vec<String>)>, CoreError> {
        self.require_env(env).await?;
        let mut out = Vec::new();
        for rec in self.store.list_trusted_issuers().await? {
            if rec.env == env {
                let algs = TrustVerifier::load(&self.keys, &rec)
                    .map(|v| v.algorithms())
                    .unwrap_or_default();
                out.push((rec, algs));
            }
        }
        Ok(out)
    }

    /// Revokes a refresh token by id: a refresh JWT tollgate issued, else
    /// (where an issuer is trusted) an incumbent's token, put on the deny
    /// list; an incumbent's device session already adopted ends too.
    pub async fn revoke_refresh_token(&self, env: &str, jti: &str) -> Result<Revoked, CoreError> {
        self.require_env(env).await?;
        if self.store.get_refresh_jwt(env, jti).await?.is_some() {
            self.revoke_refresh_jwt(env, jti).await?;
            return Ok(Revoked::Issued);
        }
        let trusts = self.store.list_trusted_issuers().await?;
        // Published keys (access tokens) are no issuer of refresh tokens.
        if !trusts
            .iter()
            .any(|t| t.env == env && t.purpose != TrustPurpose::AccessTokens)
        {
            return Err(CoreError::not_found("refresh JWT", jti));
        }
        let t = now();
        self.store
            .revoke_token(env, jti, t.saturating_add(FOREIGN_DENY_SECS))
            .await?;
        self.store
            .revoke_refresh_family(env, &adopted_family(jti), t)
            .await?;
        Ok(Revoked::Foreign)
    }

    /// Revokes every refresh token of a client: its refresh JWTs, and every
    /// incumbent's token of the client issued before now (by a cut-off, so
    /// also those tollgate never saw). Returns how many refresh JWTs it
    /// revoked.
    pub async fn revoke_client_refresh_tokens(
        &self,
        env: &str,
        client_id: &str,
    ) -> Result<u64, CoreError> {
        self.get_client(env, client_id).await?;
        Ok(self
            .store
            .revoke_client_refresh_tokens(env, client_id, now())
            .await?)
    }

    /// The parsed verifiers of `env`'s trusted issuers; one that does not
    /// load (a master key changed under it) is left out and logged, not
    /// allowed to stop the environment.
    pub(crate) fn trusted_of(&self, env: &str, all: &[TrustedIssuer]) -> Vec<Arc<TrustVerifier>> {
        all.iter()
            .filter(|t| t.env == env)
            .filter_map(|t| match TrustVerifier::load(&self.keys, t) {
                Ok(v) => Some(Arc::new(v)),
                Err(e) => {
                    tracing::error!(env, id = %t.id, error = %e, "trusted issuer not loaded");
                    None
                }
            })
            .collect()
    }

    /// The incumbent's public keys `env` publishes beside its own (`key
    /// publish`), checked again: one that no longer passes is left out and
    /// logged.
    pub(crate) fn incumbent_jwks(
        &self,
        env: &str,
        all: &[TrustedIssuer],
    ) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for t in all
            .iter()
            .filter(|t| t.env == env && t.purpose == TrustPurpose::AccessTokens)
        {
            let TrustKeys::Jwks { jwks } = &t.keys else {
                continue;
            };
            match published_jwks(jwks) {
                Ok(keys) => out.extend(keys),
                Err(e) => {
                    tracing::error!(env, id = %t.id, error = %e, "incumbent keys not published")
                }
            }
        }
        out
    }
}
