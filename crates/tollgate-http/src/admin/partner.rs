//! `/admin/v1/partners` and `/admin/v1/package-requests`: the partner
//! portal's provider side (what `tollgate partner …` does) over the admin
//! API: create, list, get, change name and offers per environment
//! (`If-Match`), invite (the one-time link, shown once), disable, enable,
//! a partner's accounts and clients; partners' package requests, approved
//! (the package becomes an offer) or declined.
//!
//! Partners span environments, so an admin limited to environments
//! (`admin:env:NAME`) may only read here, and sees only what lies in its
//! environments (offers, clients, requests); every partner write needs an
//! admin without that limit (403 `insufficient_scope`).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tollgate_core::package_request::{PackageRequest, RequestStatus};
use tollgate_core::partner::{Offer, Partner};
use tollgate_core::service::admin::bootstrap::ADMIN_WRITE;
use tollgate_core::time::now;

use super::auth::{Caller, Read, Secrets, Write};
use super::common::{
    AdminError, ErrorBody, JsonBody, ListQuery, QueryOf, changed_since, check_if_match, no_store,
    page_json, paginate, with_etag,
};
use super::trail::{audit, json_of};
use crate::AppState;

/// How long an invitation works when the request does not say (72 h).
const DEFAULT_INVITATION_TTL: u64 = 72 * 3600;

/// One package of one API in one environment, offered to a partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferView {
    /// The environment.
    pub env: String,
    /// The API identifier.
    pub api: String,
    /// A package (or permission) of that API.
    pub package: String,
}

impl From<&Offer> for OfferView {
    fn from(o: &Offer) -> Self {
        Self {
            env: o.env.clone(),
            api: o.api.clone(),
            package: o.package.clone(),
        }
    }
}

impl From<OfferView> for Offer {
    fn from(o: OfferView) -> Self {
        Self {
            env: o.env,
            api: o.api,
            package: o.package,
        }
    }
}

/// A partner organisation of the portal.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PartnerView {
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// A disabled partner's accounts cannot sign in and its clients are
    /// disabled.
    pub enabled: bool,
    /// What its accounts may put in the clients they create (to an admin
    /// limited to environments: those in its environments).
    pub offers: Vec<OfferView>,
    /// Unix seconds.
    pub created_at: i64,
}

impl PartnerView {
    fn of<N>(p: &Partner, c: &Caller<N>) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            enabled: p.enabled,
            offers: p
                .offers
                .iter()
                .filter(|o| c.reaches(&o.env))
                .map(OfferView::from)
                .collect(),
            created_at: p.created_at,
        }
    }
}

/// A page of partners.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PartnerPage {
    /// The items.
    pub items: Vec<PartnerView>,
    /// The next page's cursor; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A new partner.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerCreate {
    /// Its id: 1 to 64 lowercase letters, digits and `-`.
    pub id: String,
    /// Its display name (default: the id).
    #[serde(default)]
    pub name: Option<String>,
    /// Packages offered to it.
    #[serde(default)]
    pub offers: Vec<OfferView>,
}

/// One package of an API, for one environment's list of offers.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvOffer {
    /// The API identifier.
    pub api: String,
    /// A package (or permission) of that API.
    pub package: String,
}

/// Changes to a partner; an absent field stays as it is.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerPatch {
    /// Its display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Per environment named, its offers there from now on (an empty list
    /// withdraws them); environments not named keep theirs. Clients made
    /// from a withdrawn offer keep it.
    #[serde(default)]
    pub offers: BTreeMap<String, Vec<EnvOffer>>,
}

/// A request for a one-time invitation link.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationCreate {
    /// How long the link works, seconds (1 to 30 days; default 72 h).
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// The portal address the link starts with (default: the server's
    /// `public_url` and `portal_path`).
    #[serde(default)]
    pub portal_url: Option<String>,
}

/// A one-time invitation link (shown once: only a digest is kept).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InvitationView {
    /// The partner.
    pub partner: String,
    /// The link; the first person to open it creates an account.
    pub link: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A portal account of a partner (no password hash).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    /// Its login name.
    pub login: String,
    /// Failed sign-ins in a row.
    pub failed_attempts: u32,
    /// Locked until then (Unix seconds), if locked.
    pub locked_until: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A page of accounts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountPage {
    /// The items.
    pub items: Vec<AccountView>,
    /// The next page's cursor; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A client a partner owns.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PartnerClientView {
    /// Its environment.
    pub env: String,
    /// Its id.
    pub client_id: String,
    /// Its name.
    pub name: String,
    /// Whether it may get tokens.
    pub enabled: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// A page of a partner's clients.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PartnerClientPage {
    /// The items.
    pub items: Vec<PartnerClientView>,
    /// The next page's cursor; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A partner's request for a package it is not offered yet.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PackageRequestView {
    /// Its id.
    pub id: String,
    /// The asking partner.
    pub partner: String,
    /// The account that asked.
    pub requested_by: String,
    /// The environment.
    pub env: String,
    /// The API identifier.
    pub api: String,
    /// The package.
    pub package: String,
    /// The partner's note (may be empty).
    pub note: String,
    /// `pending`, `approved` or `declined`.
    pub status: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When it was decided.
    pub decided_at: Option<i64>,
    /// Who decided (an admin client's id, or `cli`).
    pub decided_by: Option<String>,
}

impl From<&PackageRequest> for PackageRequestView {
    fn from(r: &PackageRequest) -> Self {
        Self {
            id: r.id.clone(),
            partner: r.partner.clone(),
            requested_by: r.requested_by.clone(),
            env: r.env.clone(),
            api: r.api.clone(),
            package: r.package.clone(),
            note: r.note.clone(),
            status: r.status.as_str().to_string(),
            created_at: r.created_at,
            decided_at: r.decided_at,
            decided_by: r.decided_by.clone(),
        }
    }
}

/// A page of package requests.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PackageRequestPage {
    /// The items, oldest first.
    pub items: Vec<PackageRequestView>,
    /// The next page's cursor; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `?status=&partner=&limit=&cursor=` of the package requests.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestQuery {
    /// `pending`, `approved` or `declined` (default: all).
    pub status: Option<String>,
    /// Only this partner's.
    pub partner: Option<String>,
    /// Items per page, 1 to 1000 (default 50).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Partners span environments: an admin limited to some may not change
/// them.
fn unlimited<N>(c: &Caller<N>) -> Result<(), AdminError> {
    if c.envs.is_none() {
        return Ok(());
    }
    Err(AdminError {
        challenge: Some(format!(
            "Bearer realm=\"tollgate-admin\", error=\"insufficient_scope\", scope=\"{ADMIN_WRITE}\""
        )),
        ..AdminError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "partners span environments: an admin limited to environments may only read them",
        )
    })
}

async fn find(state: &AppState, id: &str) -> Result<Partner, AdminError> {
    Ok(state.core.get_partner(id).await?)
}

/// Lists partners (by id).
#[utoipa::path(get, path = "/admin/v1/partners", tag = "partners",
    params(ListQuery),
    responses((status = 200, description = "a page of partners", body = PartnerPage),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn list(
    State(state): State<AppState>,
    c: Caller<Read>,
    QueryOf(q): QueryOf<ListQuery>,
) -> Result<Response, AdminError> {
    let partners = state.core.list_partners().await?;
    let (page, next) = paginate(partners, |p| p.id.clone(), &q)?;
    let views: Vec<PartnerView> = page.iter().map(|p| PartnerView::of(p, &c)).collect();
    Ok(page_json(&views, next))
}

/// Reads a partner (with its `ETag`).
#[utoipa::path(get, path = "/admin/v1/partners/{id}", tag = "partners",
    params(("id" = String, Path, description = "partner id")),
    responses((status = 200, description = "the partner", body = PartnerView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn get(
    State(state): State<AppState>,
    c: Caller<Read>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let p = find(&state, &id).await?;
    Ok(with_etag(StatusCode::OK, &PartnerView::of(&p, &c)))
}

/// Creates a partner.
#[utoipa::path(post, path = "/admin/v1/partners", tag = "partners",
    request_body = PartnerCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "replays the first response for 24 h")),
    responses((status = 201, description = "created", body = PartnerView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn create(
    State(state): State<AppState>,
    c: Caller<Write>,
    headers: HeaderMap,
    body: JsonBody<PartnerCreate>,
) -> Result<Response, AdminError> {
    unlimited(&c)?;
    let idem = super::idempotency_of(&state);
    super::idempotency::once(
        &idem,
        &c.client_id,
        &headers,
        "POST /admin/v1/partners",
        &body.raw,
        async {
            let b = body.value;
            let name = b.name.unwrap_or_else(|| b.id.clone());
            let offers = b.offers.into_iter().map(Offer::from).collect();
            let p = state.core.create_partner(&b.id, &name, offers).await?;
            let view = PartnerView::of(&p, &c);
            audit(
                &state,
                &c,
                "partner.create",
                None,
                &p.id,
                None,
                json_of(&view),
            )
            .await;
            Ok(with_etag(StatusCode::CREATED, &view))
        },
    )
    .await
}

/// Changes a partner's name and its offers per environment (`If-Match`
/// required).
#[utoipa::path(patch, path = "/admin/v1/partners/{id}", tag = "partners",
    request_body = PartnerPatch,
    params(("id" = String, Path, description = "partner id"),
        ("If-Match" = String, Header, description = "the ETag of the partner as last read")),
    responses((status = 200, description = "changed", body = PartnerView),
        (status = "4XX", description = "refused (412, 428: see If-Match)", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn update(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<PartnerPatch>,
) -> Result<Response, AdminError> {
    unlimited(&c)?;
    let current = find(&state, &id).await?;
    let before = PartnerView::of(&current, &c);
    check_if_match(&headers, &before)?;
    let b = body.value;
    let offers: BTreeMap<String, Vec<Offer>> = b
        .offers
        .into_iter()
        .map(|(env, list)| {
            let list = list
                .into_iter()
                .map(|o| Offer {
                    env: env.clone(),
                    api: o.api,
                    package: o.package,
                })
                .collect();
            (env, list)
        })
        .collect();
    let p = state
        .core
        .update_partner_if(&current, b.name.as_deref(), &offers)
        .await?
        .ok_or_else(changed_since)?;
    let after = PartnerView::of(&p, &c);
    audit(
        &state,
        &c,
        "partner.update",
        None,
        &id,
        json_of(&before),
        json_of(&after),
    )
    .await;
    Ok(with_etag(StatusCode::OK, &after))
}

/// A one-time invitation link to create an account of the partner: shown
/// once, in this answer.
#[utoipa::path(post, path = "/admin/v1/partners/{id}/invitations", tag = "partners",
    request_body = InvitationCreate,
    params(("id" = String, Path, description = "partner id")),
    responses((status = 201, description = "the link, shown once", body = InvitationView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write", "admin:secrets"])))]
pub async fn invite(
    State(state): State<AppState>,
    c: Caller<Secrets>,
    Path(id): Path<String>,
    body: JsonBody<InvitationCreate>,
) -> Result<Response, AdminError> {
    unlimited(&c)?;
    let b = body.value;
    let base = match (&b.portal_url, &state.ops.portal_path) {
        (Some(u), _) => {
            if !(u.starts_with("https://") || u.starts_with("http://")) || u.len() > 2000 {
                return Err(AdminError::invalid(
                    "portal_url must be an http(s) URL of at most 2000 characters",
                ));
            }
            format!("{}/", u.trim_end_matches('/'))
        }
        (None, Some(path)) => format!("{}{path}", state.ops.public_url.trim_end_matches('/')),
        (None, None) => {
            return Err(AdminError::invalid(
                "the portal is off (portal_path = off): an invitation would lead nowhere",
            ));
        }
    };
    let ttl = b.expires_in.unwrap_or(DEFAULT_INVITATION_TTL);
    let (token, inv) = state.core.invite_partner(&id, ttl).await?;
    audit(
        &state,
        &c,
        "partner.invite",
        None,
        &id,
        None,
        Some(serde_json::json!({"expires_at": inv.expires_at})),
    )
    .await;
    let view = InvitationView {
        partner: id,
        link: format!("{base}accept?token={}", token.expose_secret()),
        expires_at: inv.expires_at,
    };
    Ok(no_store(
        (StatusCode::CREATED, axum::Json(view)).into_response(),
    ))
}

async fn set_enabled(
    state: AppState,
    c: Caller<Write>,
    id: String,
    enabled: bool,
) -> Result<Response, AdminError> {
    unlimited(&c)?;
    let before = PartnerView::of(&find(&state, &id).await?, &c);
    state.core.set_partner_enabled(&id, enabled).await?;
    let after = PartnerView::of(&find(&state, &id).await?, &c);
    audit(
        &state,
        &c,
        if enabled {
            "partner.enable"
        } else {
            "partner.disable"
        },
        None,
        &id,
        json_of(&before),
        json_of(&after),
    )
    .await;
    Ok(with_etag(StatusCode::OK, &after))
}

/// Disables a partner: its accounts cannot sign in, its portal sessions
/// end, and every client it owns is disabled (on every server at its next
/// sync).
#[utoipa::path(post, path = "/admin/v1/partners/{id}/disable", tag = "partners",
    params(("id" = String, Path, description = "partner id")),
    responses((status = 200, description = "disabled", body = PartnerView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn disable(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    set_enabled(state, c, id, false).await
}

/// Enables a partner again, with every client it owns.
#[utoipa::path(post, path = "/admin/v1/partners/{id}/enable", tag = "partners",
    params(("id" = String, Path, description = "partner id")),
    responses((status = 200, description = "enabled", body = PartnerView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn enable(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    set_enabled(state, c, id, true).await
}

/// Lists a partner's portal accounts (by login; no password hashes).
#[utoipa::path(get, path = "/admin/v1/partners/{id}/accounts", tag = "partners",
    params(("id" = String, Path, description = "partner id"), ListQuery),
    responses((status = 200, description = "a page of accounts", body = AccountPage),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn accounts(
    State(state): State<AppState>,
    _c: Caller<Read>,
    Path(id): Path<String>,
    QueryOf(q): QueryOf<ListQuery>,
) -> Result<Response, AdminError> {
    let all = state.core.partner_accounts(&id).await?;
    let (page, next) = paginate(all, |a| a.login.clone(), &q)?;
    let views: Vec<AccountView> = page
        .iter()
        .map(|a| AccountView {
            login: a.login.clone(),
            failed_attempts: a.failed_attempts,
            locked_until: a.locked_until.filter(|u| *u > now()),
            created_at: a.created_at,
        })
        .collect();
    Ok(page_json(&views, next))
}

/// Lists the clients a partner owns (to an admin limited to environments:
/// those in its environments).
#[utoipa::path(get, path = "/admin/v1/partners/{id}/clients", tag = "partners",
    params(("id" = String, Path, description = "partner id"), ListQuery),
    responses((status = 200, description = "a page of clients", body = PartnerClientPage),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn clients(
    State(state): State<AppState>,
    c: Caller<Read>,
    Path(id): Path<String>,
    QueryOf(q): QueryOf<ListQuery>,
) -> Result<Response, AdminError> {
    find(&state, &id).await?;
    let mut all = state.core.partner_clients(&id).await?;
    all.retain(|cl| c.reaches(&cl.env));
    // The key joins environment and id with a byte neither may hold.
    let (page, next) = paginate(all, |cl| format!("{}\u{1}{}", cl.env, cl.client_id), &q)?;
    let views: Vec<PartnerClientView> = page
        .iter()
        .map(|cl| PartnerClientView {
            env: cl.env.clone(),
            client_id: cl.client_id.clone(),
            name: cl.name.clone(),
            enabled: cl.enabled,
            created_at: cl.created_at,
        })
        .collect();
    Ok(page_json(&views, next))
}

/// Lists partners' package requests, oldest first (to an admin limited to
/// environments: those in its environments).
#[utoipa::path(get, path = "/admin/v1/package-requests", tag = "partners",
    params(RequestQuery),
    responses((status = 200, description = "a page of requests", body = PackageRequestPage),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn list_requests(
    State(state): State<AppState>,
    c: Caller<Read>,
    QueryOf(q): QueryOf<RequestQuery>,
) -> Result<Response, AdminError> {
    let status = q
        .status
        .as_deref()
        .map(str::parse::<RequestStatus>)
        .transpose()?;
    let mut all = state
        .core
        .list_package_requests(q.partner.as_deref(), status)
        .await?;
    all.retain(|r| c.reaches(&r.env));
    let paging = ListQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let (page, next) = paginate(all, |r| r.id.clone(), &paging)?;
    let views: Vec<PackageRequestView> = page.iter().map(PackageRequestView::from).collect();
    Ok(page_json(&views, next))
}

/// Approves a pending package request: the package is offered to the
/// partner from now on (409 if it was decided already).
#[utoipa::path(post, path = "/admin/v1/package-requests/{id}/approve", tag = "partners",
    params(("id" = String, Path, description = "request id")),
    responses((status = 200, description = "approved", body = PackageRequestView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn approve(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    unlimited(&c)?;
    let (r, _) = state
        .core
        .approve_package_request(&id, &c.client_id)
        .await?;
    let view = PackageRequestView::from(&r);
    audit(
        &state,
        &c,
        "package-request.approve",
        Some(&r.env),
        &r.id,
        None,
        json_of(&view),
    )
    .await;
    Ok(no_store((StatusCode::OK, axum::Json(view)).into_response()))
}

/// Declines a pending package request (409 if it was decided already).
#[utoipa::path(post, path = "/admin/v1/package-requests/{id}/decline", tag = "partners",
    params(("id" = String, Path, description = "request id")),
    responses((status = 200, description = "declined", body = PackageRequestView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn decline(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    unlimited(&c)?;
    let r = state
        .core
        .decline_package_request(&id, &c.client_id)
        .await?;
    let view = PackageRequestView::from(&r);
    audit(
        &state,
        &c,
        "package-request.decline",
        Some(&r.env),
        &r.id,
        None,
        json_of(&view),
    )
    .await;
    Ok(no_store((StatusCode::OK, axum::Json(view)).into_response()))
}
