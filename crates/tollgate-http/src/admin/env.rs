//! `/admin/v1/environments`: list, get, create, update.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tollgate_core::Tollgate;
use tollgate_core::model::{Alg, Dialect, Environment};
use tollgate_core::service::EnvSettings;

use super::auth::{Caller, Read, Write};
use super::common::{
    AdminError, ErrorBody, JsonBody, ListQuery, QueryOf, check_if_match, page_json, paginate,
    with_etag,
};
use super::double_option;
use super::trail::{audit, json_of};
use crate::AppState;

/// An environment as the admin API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EnvView {
    /// Name (the `/e/NAME` prefix).
    pub name: String,
    /// The issuer its tokens carry (explicit, or derived).
    pub issuer: String,
    /// Whether the issuer was set explicitly (else derived from the server's URL or host).
    pub issuer_explicit: bool,
    /// Signing algorithm.
    pub alg: String,
    /// Host names that select it.
    pub hosts: Vec<String>,
    /// Token-endpoint dialect: `rfc6749` or `auth0`.
    pub dialect: String,
    /// Optional contracts enabled here.
    pub contracts: BTreeSet<String>,
    /// Setting overrides, by key.
    pub settings: BTreeMap<String, String>,
    /// Unix seconds.
    pub created_at: i64,
}

impl EnvView {
    fn of(core: &Tollgate, e: &Environment) -> Self {
        Self {
            name: e.name.clone(),
            issuer: core.issuer_for(e),
            issuer_explicit: e.issuer.is_some(),
            alg: e.alg.as_str().to_string(),
            hosts: e.hosts.clone(),
            dialect: e.dialect.as_str().to_string(),
            contracts: e.contracts.clone(),
            settings: e.settings.clone(),
            created_at: e.created_at,
        }
    }
}

/// A new environment.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvCreate {
    /// Name: 1-63 letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// Explicit issuer URL (default: derived).
    #[serde(default)]
    pub issuer: Option<String>,
    /// ES256 (default; RS256 in the auth0 dialect), EdDSA, RS256 or HS256.
    #[serde(default)]
    pub alg: Option<String>,
    /// Host names that select it.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `rfc6749` (default) or `auth0`.
    #[serde(default)]
    pub dialect: Option<String>,
    /// Optional contracts to enable (names, or `all`).
    #[serde(default)]
    pub contracts: Option<Vec<String>>,
}

/// Changes to an environment; an absent field stays as it is.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvPatch {
    /// Explicit issuer URL; `null` derives it again.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub issuer: Option<Option<String>>,
    /// Host names (replaces them; `[]`: none).
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    /// `rfc6749` or `auth0`.
    #[serde(default)]
    pub dialect: Option<String>,
    /// Optional contracts enabled (replaces them; names, or `all`).
    #[serde(default)]
    pub contracts: Option<Vec<String>>,
    /// Setting overrides: a value sets a key, `null` removes its override.
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, Option<String>>>)]
    pub settings: Option<BTreeMap<String, Option<String>>>,
    /// A new signing algorithm, through the key schedule.
    #[serde(default)]
    pub alg: Option<String>,
    /// Seconds the new algorithm's key is published before it signs (default 600).
    #[serde(default)]
    pub publish_delay: Option<u64>,
}

fn contracts_of(names: Option<Vec<String>>) -> Result<Option<BTreeSet<String>>, AdminError> {
    names
        .map(|n| crate::contracts::parse_list(&n.join(",")))
        .transpose()
        .map_err(|e| AdminError::invalid(format!("contracts: {e}")))
}

fn dialect_of(d: Option<String>) -> Result<Option<Dialect>, AdminError> {
    Ok(d.map(|d| d.parse::<Dialect>()).transpose()?)
}

/// Checks the environment as it would be after `s` against the server's
/// settings (keys known, values acceptable, no colliding paths), as the CLI does.
fn check_settings(state: &AppState, env: &Environment, s: &EnvSettings) -> Result<(), AdminError> {
    let mut after = env.clone();
    if let Some(c) = &s.contracts {
        after.contracts = c.clone();
    }
    for (k, v) in &s.settings {
        match v {
            Some(v) => after.settings.insert(k.clone(), v.clone()),
            None => after.settings.remove(k),
        };
    }
    state
        .contracts
        .for_env(&after)
        .map(drop)
        .map_err(|e| AdminError::invalid(format!("environment {}: {e}", env.name)))
}

async fn find(core: &Tollgate, name: &str) -> Result<Environment, AdminError> {
    core.list_environments()
        .await?
        .into_iter()
        .find(|e| e.name == name)
        .ok_or_else(|| {
            tollgate_core::CoreError::NotFound {
                kind: "environment",
                name: name.to_string(),
            }
            .into()
        })
}

/// Lists environments (those the caller may reach).
#[utoipa::path(get, path = "/admin/v1/environments", tag = "environments",
    params(ListQuery),
    responses((status = 200, description = "a page of environments", body = EnvPage),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn list(
    State(state): State<AppState>,
    c: Caller<Read>,
    QueryOf(q): QueryOf<ListQuery>,
) -> Result<Response, AdminError> {
    let mut envs = state.core.list_environments().await?;
    envs.retain(|e| c.reaches(&e.name));
    let (page, next) = paginate(envs, |e| e.name.clone(), &q)?;
    let views: Vec<EnvView> = page.iter().map(|e| EnvView::of(&state.core, e)).collect();
    Ok(page_json(&views, next))
}

/// A page of environments.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnvPage {
    /// The items.
    pub items: Vec<EnvView>,
    /// The next page's cursor; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Reads an environment (with its `ETag`).
#[utoipa::path(get, path = "/admin/v1/environments/{env}", tag = "environments",
    params(("env" = String, Path, description = "environment name")),
    responses((status = 200, description = "the environment", body = EnvView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn get(
    State(state): State<AppState>,
    _c: Caller<Read>,
    Path(name): Path<String>,
) -> Result<Response, AdminError> {
    let env = find(&state.core, &name).await?;
    Ok(with_etag(StatusCode::OK, &EnvView::of(&state.core, &env)))
}

/// Creates an environment and its first signing key.
#[utoipa::path(post, path = "/admin/v1/environments", tag = "environments",
    request_body = EnvCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "replays the first response for 24 h")),
    responses((status = 201, description = "created", body = EnvView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn create(
    State(state): State<AppState>,
    c: Caller<Write>,
    headers: HeaderMap,
    body: JsonBody<EnvCreate>,
) -> Result<Response, AdminError> {
    let idem = super::idempotency_of(&state);
    let what = "POST /admin/v1/environments";
    super::idempotency::once(&idem, &c.client_id, &headers, what, &body.raw, async {
        let b = body.value;
        let settings = EnvSettings {
            hosts: Some(b.hosts),
            dialect: dialect_of(b.dialect)?,
            contracts: contracts_of(b.contracts)?,
            ..Default::default()
        };
        let alg: Alg = match b.alg {
            Some(a) => a.parse()?,
            // Auth0 signs with RS256, and so does an auth0-dialect environment.
            None if settings.dialect == Some(Dialect::Auth0) => Alg::RS256,
            None => Alg::default(),
        };
        let env = state
            .core
            .create_environment(&b.name, b.issuer, alg, settings)
            .await?;
        let view = EnvView::of(&state.core, &env);
        audit(
            &state,
            &c,
            "environment.create",
            Some(&env.name),
            &env.name,
            None,
            json_of(&view),
        )
        .await;
        Ok(with_etag(StatusCode::CREATED, &view))
    })
    .await
}

/// Changes an environment (`If-Match` required).
#[utoipa::path(patch, path = "/admin/v1/environments/{env}", tag = "environments",
    request_body = EnvPatch,
    params(("env" = String, Path, description = "environment name"),
        ("If-Match" = String, Header, description = "the ETag of the environment as last read")),
    responses((status = 200, description = "changed", body = EnvView),
        (status = "4XX", description = "refused (412: changed since read; 428: no If-Match)", body = ErrorBody)),
    security(("admin_token" = ["admin:write"])))]
pub async fn update(
    State(state): State<AppState>,
    c: Caller<Write>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: JsonBody<EnvPatch>,
) -> Result<Response, AdminError> {
    let current = find(&state.core, &name).await?;
    let before = EnvView::of(&state.core, &current);
    check_if_match(&headers, &before)?;
    let b = body.value;
    let settings = EnvSettings {
        hosts: b.hosts,
        dialect: dialect_of(b.dialect)?,
        contracts: contracts_of(b.contracts)?,
        issuer: b.issuer,
        settings: b.settings.unwrap_or_default(),
    };
    check_settings(&state, &current, &settings)?;
    // The algorithm's check comes before anything is written.
    let alg = b.alg.map(|a| a.parse::<Alg>()).transpose()?;
    if let Some(a) = alg {
        Tollgate::check_algorithm_change(current.alg, a)?;
    }
    let mut env = state
        .core
        .update_environment_if(&current, settings)
        .await?
        .ok_or_else(super::common::changed_since)?;
    if let Some(a) = alg {
        state
            .core
            .change_algorithm(&name, a, b.publish_delay.unwrap_or(600))
            .await?;
        env.alg = a;
    }
    let after = EnvView::of(&state.core, &env);
    audit(
        &state,
        &c,
        "environment.update",
        Some(&name),
        &name,
        json_of(&before),
        json_of(&after),
    )
    .await;
    Ok(with_etag(StatusCode::OK, &after))
}
