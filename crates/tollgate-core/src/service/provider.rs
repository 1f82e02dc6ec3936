//! The provider's side of the partner portal beyond the CLI (issue 13):
//! package requests (a partner asks for a package it is not offered;
//! the provider approves, and it becomes an offer, or declines), the
//! admin API's partner reads and guarded offer changes, and provider
//! admins' portal sessions.
//!
//! A provider admin signs in to the portal with an admin API token (the
//! one the admin API takes: audience `tollgate-admin`), not a password: no
//! new kind of credential exists, the token's scope decides what the pages
//! allow (`admin:read` to look, `admin:write` to decide and disable), and
//! the session ends when the token would have expired, at sign-out, or as
//! soon as its admin client is disabled or deleted. Only a digest of the
//! session's own token is stored; the admin token is not kept at all.

use std::collections::{BTreeMap, BTreeSet};

use secrecy::{ExposeSecret, SecretString};

use crate::StoreError;
use crate::error::CoreError;
use crate::model::DEFAULT_ENV;
use crate::package_request::{PackageRequest, ProviderSession, RequestStatus, validate_note};
use crate::partner::{Offer, Partner, PartnerAccount};
use crate::service::Tollgate;
use crate::service::admin::bootstrap::{ADMIN_API, ADMIN_READ, ADMIN_WRITE};
use crate::service::portal::{SESSION_LIFETIME, digest, new_token};
use crate::time::now;

/// The most pending requests a partner may have at once (a flood of them
/// would bury the provider's list).
pub const MAX_PENDING: usize = 20;

/// The prefix of a per-environment admin permission.
const ENV_PREFIX: &str = "admin:env:";

/// Why a provider admin could not sign in to the portal.
#[derive(Debug, thiserror::Error)]
pub enum ProviderLoginError {
    /// Not an active admin token of this server.
    #[error("this is not a valid admin API token (expired, revoked, or for another audience)")]
    InvalidToken,
    /// An admin token without `admin:read`, or limited to environments.
    #[error(
        "this admin token may not open the provider pages: they need admin:read and an admin \
         without environment limits (admin:env:…)"
    )]
    NotAllowed,
    /// The store or the key material failed.
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// A signed-in provider admin.
#[derive(Debug, Clone)]
pub struct ProviderAdmin {
    /// Its session.
    pub session: ProviderSession,
}

impl ProviderAdmin {
    /// Whether its token's scope allowed writes (`admin:write`).
    pub fn may_write(&self) -> bool {
        self.session
            .scope
            .split_whitespace()
            .any(|s| s == ADMIN_WRITE)
    }
}

/// A fresh request id: nanoseconds since the epoch, then 8 random hex
/// digits (ids sort by creation; two at once do not collide).
fn request_id() -> Result<String, CoreError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let mut r = [0u8; 4];
    crate::crypto::random::fill_random(&mut r)?;
    Ok(format!("{nanos:016x}{:08x}", u32::from_be_bytes(r)))
}

/// The admin API's own packages are never requestable: an approval
/// clicked through would hand a partner's client admin rights.
fn is_admin_api(o: &Offer) -> bool {
    o.env == DEFAULT_ENV && o.api == ADMIN_API
}

fn already_decided(r: &PackageRequest) -> CoreError {
    CoreError::Store(StoreError::Conflict(format!(
        "package request '{}' is already {}",
        r.id,
        r.status.as_str()
    )))
}

impl Tollgate {
    /// Partner `p`'s account `login` asks for `package` of `api` in `env`:
    /// it must exist, not be offered to `p` already, and not be asked for
    /// (pending) already.
    pub async fn request_package(
        &self,
        p: &Partner,
        login: &str,
        offer: Offer,
        note: &str,
    ) -> Result<PackageRequest, CoreError> {
        if !p.enabled {
            return Err(CoreError::invalid("partner", "the partner is disabled"));
        }
        validate_note(note)?;
        // Only in an environment it already works in: the portal lists
        // those environments' packages, and no other environment's name
        // or APIs are disclosed by the answers.
        if !self.partner_envs(p).await?.contains(&offer.env) {
            return Err(CoreError::invalid(
                "env",
                "ask your provider directly for an environment you have no offer or client in",
            ));
        }
        if is_admin_api(&offer) {
            return Err(CoreError::invalid(
                "api",
                "the admin API cannot be asked for",
            ));
        }
        self.check_offers(std::slice::from_ref(&offer)).await?;
        if p.offers.contains(&offer) {
            return Err(CoreError::invalid(
                "package",
                format!(
                    "'{}' of '{}' is offered to you already",
                    offer.package, offer.api
                ),
            ));
        }
        let pending: Vec<PackageRequest> = self
            .store
            .list_package_requests(Some(&p.id))
            .await?
            .into_iter()
            .filter(|r| r.status == RequestStatus::Pending)
            .collect();
        if pending
            .iter()
            .any(|r| r.env == offer.env && r.api == offer.api && r.package == offer.package)
        {
            return Err(CoreError::AlreadyExists {
                kind: "pending request",
                name: format!("{}:{}={}", offer.env, offer.api, offer.package),
            });
        }
        if pending.len() >= MAX_PENDING {
            return Err(CoreError::invalid(
                "package",
                format!("at most {MAX_PENDING} requests may wait at once"),
            ));
        }
        let r = PackageRequest {
            id: request_id()?,
            partner: p.id.clone(),
            requested_by: login.to_string(),
            env: offer.env,
            api: offer.api,
            package: offer.package,
            note: note.trim().to_string(),
            status: RequestStatus::Pending,
            created_at: now(),
            decided_at: None,
            decided_by: None,
        };
        self.store.insert_package_request(&r).await?;
        Ok(r)
    }

    /// The environments partner `p` works in: where it has an offer or
    /// owns a client.
    pub async fn partner_envs(&self, p: &Partner) -> Result<BTreeSet<String>, CoreError> {
        let mut envs: BTreeSet<String> = p.offers.iter().map(|o| o.env.clone()).collect();
        envs.extend(
            self.store
                .list_partner_clients(&p.id)
                .await?
                .into_iter()
                .map(|o| o.env),
        );
        Ok(envs)
    }

    /// What partner `p` may ask for: every package of every API of the
    /// environments it works in, not offered to it and not asked for
    /// (pending) already.
    pub async fn requestable_packages(&self, p: &Partner) -> Result<Vec<Offer>, CoreError> {
        let pending: Vec<PackageRequest> = self
            .list_package_requests(Some(&p.id), Some(RequestStatus::Pending))
            .await?;
        let mut out = Vec::new();
        for env in self.partner_envs(p).await? {
            let Ok(apis) = self.list_apis(&env).await else {
                continue;
            };
            for api in apis {
                for package in api.packages.keys() {
                    let o = Offer {
                        env: env.clone(),
                        api: api.identifier.clone(),
                        package: package.clone(),
                    };
                    let asked = pending
                        .iter()
                        .any(|r| r.env == o.env && r.api == o.api && r.package == o.package);
                    if !asked && !p.offers.contains(&o) && !is_admin_api(&o) {
                        out.push(o);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Package requests (of `partner` if given; with `status` if given),
    /// oldest first.
    pub async fn list_package_requests(
        &self,
        partner: Option<&str>,
        status: Option<RequestStatus>,
    ) -> Result<Vec<PackageRequest>, CoreError> {
        let mut all = self.store.list_package_requests(partner).await?;
        all.retain(|r| status.is_none_or(|s| r.status == s));
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    /// One package request.
    pub async fn get_package_request(&self, id: &str) -> Result<PackageRequest, CoreError> {
        self.store
            .get_package_request(id)
            .await?
            .ok_or_else(|| CoreError::not_found("package request", id))
    }

    /// Approves a pending request (`by`: who, for the record): the package
    /// is offered to the partner from then on. A request decided already
    /// is a conflict; one whose API or package went since is refused and
    /// stays pending.
    pub async fn approve_package_request(
        &self,
        id: &str,
        by: &str,
    ) -> Result<(PackageRequest, Partner), CoreError> {
        let r = self.get_package_request(id).await?;
        if r.status != RequestStatus::Pending {
            return Err(already_decided(&r));
        }
        let offer = Offer {
            env: r.env.clone(),
            api: r.api.clone(),
            package: r.package.clone(),
        };
        self.check_offers(std::slice::from_ref(&offer)).await?;
        let at = now();
        if !self
            .store
            .decide_package_request(id, RequestStatus::Approved, at, by)
            .await?
        {
            return Err(already_decided(&self.get_package_request(id).await?));
        }
        let p = self.offer_to_partner(&r.partner, vec![offer]).await?;
        let decided = PackageRequest {
            status: RequestStatus::Approved,
            decided_at: Some(at),
            decided_by: Some(by.to_string()),
            ..r
        };
        Ok((decided, p))
    }

    /// Declines a pending request; one decided already is a conflict.
    pub async fn decline_package_request(
        &self,
        id: &str,
        by: &str,
    ) -> Result<PackageRequest, CoreError> {
        let r = self.get_package_request(id).await?;
        if r.status != RequestStatus::Pending {
            return Err(already_decided(&r));
        }
        let at = now();
        if !self
            .store
            .decide_package_request(id, RequestStatus::Declined, at, by)
            .await?
        {
            return Err(already_decided(&self.get_package_request(id).await?));
        }
        Ok(PackageRequest {
            status: RequestStatus::Declined,
            decided_at: Some(at),
            decided_by: Some(by.to_string()),
            ..r
        })
    }

    /// A partner's accounts, by login.
    pub async fn partner_accounts(&self, id: &str) -> Result<Vec<PartnerAccount>, CoreError> {
        self.get_partner(id).await?;
        Ok(self.store.list_partner_accounts(id).await?)
    }

    /// Changes partner `expected` (as read): its name if given, and for
    /// each environment named in `offers`, its offers there replaced by
    /// those (an empty list withdraws them). `None`: the partner changed
    /// since it was read; nothing was written. Clients made from a
    /// withdrawn offer keep it (withdrawing stops new clients only).
    pub async fn update_partner_if(
        &self,
        expected: &Partner,
        name: Option<&str>,
        offers: &BTreeMap<String, Vec<Offer>>,
    ) -> Result<Option<Partner>, CoreError> {
        let mut new = expected.clone();
        if let Some(n) = name {
            if n.trim().is_empty() || n.len() > 200 {
                return Err(CoreError::invalid("name", "give 1 to 200 characters"));
            }
            new.name = n.trim().to_string();
        }
        for (env, list) in offers {
            if list.iter().any(|o| &o.env != env) {
                return Err(CoreError::invalid(
                    "offers",
                    "each offer's environment must be the one it is listed under",
                ));
            }
            self.check_offers(list).await?;
            new.offers.retain(|o| &o.env != env);
            new.offers.extend(list.iter().cloned());
        }
        new.offers.sort();
        new.offers.dedup();
        let w = crate::store::Guarded::UpdatePartner {
            expected: expected.clone(),
            new: new.clone(),
        };
        Ok(self.store.write_if_unchanged(&w).await?.then_some(new))
    }

    /// Opens a provider admin's portal session with admin API token
    /// `token`; returns the session's own token (for a cookie). The
    /// session ends when the admin token would have (at most
    /// [`SESSION_LIFETIME`] from now).
    pub async fn provider_login(
        &self,
        token: &SecretString,
    ) -> Result<SecretString, ProviderLoginError> {
        let claims = self
            .introspect_any(DEFAULT_ENV, token.expose_secret().trim())
            .await?
            .ok_or(ProviderLoginError::InvalidToken)?;
        let for_admin = match &claims.aud {
            serde_json::Value::String(s) => s == ADMIN_API,
            serde_json::Value::Array(a) => a.iter().any(|v| v.as_str() == Some(ADMIN_API)),
            _ => false,
        };
        if !for_admin {
            return Err(ProviderLoginError::InvalidToken);
        }
        let scope = claims.scope.clone().unwrap_or_default();
        let reads = scope.split_whitespace().any(|s| s == ADMIN_READ);
        let limited = scope.split_whitespace().any(|s| s.starts_with(ENV_PREFIX));
        if !reads || limited {
            return Err(ProviderLoginError::NotAllowed);
        }
        let admin_client = claims.client_id.clone().unwrap_or(claims.sub.clone());
        let session_token = new_token()?;
        let t = now();
        self.store
            .insert_provider_session(&ProviderSession {
                digest: digest(session_token.expose_secret()),
                admin_client,
                scope,
                created_at: t,
                expires_at: claims.exp.min(t + SESSION_LIFETIME),
            })
            .await
            .map_err(CoreError::from)?;
        Ok(session_token)
    }

    /// The provider admin behind a session token: `None` if unknown,
    /// expired, or its admin client is no longer enabled.
    pub async fn provider_session(&self, token: &str) -> Result<Option<ProviderAdmin>, CoreError> {
        let Some(session) = self
            .store
            .get_provider_session(&digest(token))
            .await?
            .filter(|s| s.expires_at > now())
        else {
            return Ok(None);
        };
        let active = self
            .store
            .get_client(DEFAULT_ENV, &session.admin_client)
            .await?
            .is_some_and(|c| c.enabled && c.created_at <= session.created_at);
        Ok(active.then_some(ProviderAdmin { session }))
    }

    /// Ends a provider session.
    pub async fn provider_logout(&self, token: &str) -> Result<(), CoreError> {
        Ok(self.store.delete_provider_session(&digest(token)).await?)
    }
}
