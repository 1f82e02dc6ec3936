//! What the user grants (login, refresh, logout) share: the calling client,
//! the user lookup, and the pair of tokens derived from a family row.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::refresh_codec::{ReadError, SessionClaims};
use crate::crypto::token::{self, AccessClaims, SpringClaims};
use crate::error::GrantError;
use crate::model::{Client, RefreshFamily, User};
use crate::service::Tollgate;
use crate::service::requests::{
    AccessShape, Authorities, ClientAuth, Session, SessionProfile, SpringAud,
};
use crate::service::state::EnvRuntime;

impl Tollgate {
    /// The calling client of a user grant: authenticated by secret, or a
    /// public client by id alone. `None` when no client was presented.
    pub(crate) async fn calling_client(
        &self,
        env: &EnvRuntime,
        auth: ClientAuth<'_>,
        source: Option<std::net::IpAddr>,
    ) -> Result<Option<Arc<Client>>, GrantError> {
        match auth {
            ClientAuth::Secret { id, secret } if !secret.expose_secret().is_empty() => self
                .authenticate_from(env, id, secret, source)
                .await
                .map(Some),
            ClientAuth::Secret { id, .. } | ClientAuth::Public { id } => {
                match self.cached_client(&env.env.name, id).await? {
                    Some(c) if c.enabled && c.secrets.is_empty() => Ok(Some(c)),
                    _ => Err(GrantError::InvalidClient),
                }
            }
            ClientAuth::None => Ok(None),
        }
    }

    /// Drops a family from the reuse-policy cache (after it changed here;
    /// changes elsewhere bump the store revision, which empties the cache).
    pub(crate) fn forget_family(&self, env: &str, family: &str) {
        let key = (env.to_string(), family.to_string());
        crate::sync::write(&self.caches.families).remove(&key);
    }

    /// Verifies a refresh token's signature and reads its claims; expiry is
    /// reported as [`GrantError::ExpiredGrant`] (only after the signature).
    pub(crate) fn read_refresh_token(&self, token: &str) -> Result<SessionClaims, GrantError> {
        self.codec.read_session(token).map_err(|e| match e {
            ReadError::Expired => GrantError::ExpiredGrant,
            ReadError::Invalid => GrantError::InvalidGrant("malformed or not ours".into()),
        })
    }

    /// The access and refresh tokens of `rec`, both derived from the record
    /// and what the operator set (so a retry re-creates the same pair);
    /// `keep` is a refresh token to hand back as it is (the reuse policy).
    pub(crate) fn session_from(
        &self,
        env: &EnvRuntime,
        client: &Client,
        user: &User,
        rec: &RefreshFamily,
        profile: &SessionProfile,
        keep: Option<&str>,
    ) -> Result<Session, GrantError> {
        let scope: Vec<&str> = rec.scope.split_ascii_whitespace().collect();
        let key = env.signing_key().ok_or(GrantError::Unavailable)?;
        let signed = match profile.shape {
            AccessShape::Spring => {
                let o = profile.spring;
                let aud = match o.aud {
                    SpringAud::Text => serde_json::json!(rec.audience),
                    SpringAud::List => serde_json::json!([rec.audience]),
                    SpringAud::All => {
                        let mut all = vec![rec.audience.as_str()];
                        for g in &client.apis {
                            if !all.contains(&g.api.as_str()) {
                                all.push(&g.api);
                            }
                        }
                        serde_json::json!(all)
                    }
                };
                let roles = if user.roles.is_empty() {
                    &client.roles
                } else {
                    &user.roles
                };
                let authorities = match o.authorities {
                    Authorities::Scope => scope.clone(),
                    Authorities::Roles => roles.iter().map(String::as_str).collect(),
                };
                let extra = client
                    .extra_claims
                    .iter()
                    .filter(|(k, _)| !token::SPRING_CLAIMS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                token::mint(
                    key,
                    &SpringClaims {
                        iss: &env.issuer,
                        sub: &rec.username,
                        aud,
                        user_name: o.user_name.then_some(rec.username.as_str()),
                        device_id: &rec.username,
                        grant_type: rec.grant.as_str(),
                        scope: scope.clone(),
                        exp: rec.access_exp,
                        iat: rec.issued_at,
                        authorities,
                        client_id: &rec.client_id,
                        jti: &rec.access_jti,
                        extra,
                    },
                )
            }
            AccessShape::Rfc9068 => token::mint(
                key,
                &AccessClaims {
                    iss: &env.issuer,
                    sub: &rec.username,
                    aud: &rec.audience,
                    exp: rec.access_exp,
                    iat: rec.issued_at,
                    jti: &rec.access_jti,
                    client_id: &rec.client_id,
                    scope: &rec.scope,
                    azp: None,
                    gty: None,
                    permissions: None,
                    extra: &client.extra_claims,
                },
            ),
        };
        let access_token = signed.map_err(|e| {
            tracing::error!(error = %e, "signing failed");
            GrantError::Unavailable
        })?;
        let refresh = match keep {
            Some(t) => t.to_string(),
            None => self
                .codec
                .encode_session(rec, &scope)
                .map_err(|_| GrantError::Unavailable)?,
        };
        Ok(Session {
            access_token,
            access_jti: rec.access_jti.clone(),
            expires_at: rec.access_exp,
            refresh_token: SecretString::from(refresh),
            scope: rec.scope.clone(),
            client_id: rec.client_id.clone(),
            username: rec.username.clone(),
        })
    }
}

pub(crate) fn add(t: i64, secs: u64) -> i64 {
    t.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX))
}

pub(crate) fn unavailable(e: crate::StoreError) -> GrantError {
    tracing::error!(error = %e, "store failed during a refresh");
    GrantError::Unavailable
}
