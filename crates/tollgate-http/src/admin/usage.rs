//! `/admin/v1/environments/{env}/clients/{client_id}/usage`: a client's
//! usage per UTC day (tokens issued, errors, 429s; see the core's
//! `service/usage.rs` for what counts) and its issuance limit's state.
//! Flushed by each instance every `usage_flush_interval`, so a day's
//! numbers trail the live ones by at most that much.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tollgate_core::service::usage::QuotaState;
use tollgate_core::time::now;
use tollgate_core::usage::{day_of, day_string, parse_day};

use super::auth::{Caller, Read};
use super::common::{AdminError, ErrorBody, QueryOf};
use crate::AppState;

/// Days shown when `from` is not given: the 30 up to `to`.
const DEFAULT_DAYS: i64 = 30;

/// `?from=&to=`: UTC days, `YYYY-MM-DD`, both included.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// The first day (default: 29 days before `to`).
    pub from: Option<String>,
    /// The last day (default: today, UTC).
    pub to: Option<String>,
}

/// One UTC day of a client's usage.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageDayView {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Access tokens handed out.
    pub issued: u64,
    /// Token requests naming the client that were refused (but for 429s).
    pub errors: u64,
    /// Token requests refused with 429 (issuance limit, or a lock).
    pub throttled: u64,
}

/// A client's issuance limit (`limit:` obligation) and its current window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QuotaView {
    /// Issuances allowed per window.
    pub max: u64,
    /// The window, seconds.
    pub window: u64,
    /// Issuances counted in the current window.
    pub used: u64,
    /// Unix seconds at which the current window ends.
    pub resets_at: i64,
}

impl From<QuotaState> for QuotaView {
    fn from(q: QuotaState) -> Self {
        Self {
            max: q.max,
            window: q.window,
            used: q.used,
            resets_at: q.resets_at,
        }
    }
}

/// A client's usage: every day of the range, zeros included.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageView {
    /// Environment.
    pub env: String,
    /// The client id.
    pub client_id: String,
    /// The first day.
    pub from: String,
    /// The last day.
    pub to: String,
    /// One entry per day, oldest first.
    pub days: Vec<UsageDayView>,
    /// Its issuance limit, if it has one (its own, else its API's).
    pub quota: Option<QuotaView>,
}

fn day_param(name: &str, v: Option<&str>) -> Result<Option<i64>, AdminError> {
    v.map(|s| {
        parse_day(s)
            .ok_or_else(|| AdminError::invalid(format!("{name}: '{s}' is not a YYYY-MM-DD date")))
    })
    .transpose()
}

/// Reads a client's usage per day and its quota state.
#[utoipa::path(get, path = "/admin/v1/environments/{env}/clients/{client_id}/usage", tag = "clients",
    params(("env" = String, Path, description = "environment name"),
        ("client_id" = String, Path, description = "client id"), UsageQuery),
    responses((status = 200, description = "the client's usage per UTC day", body = UsageView),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn client_usage(
    State(state): State<AppState>,
    _c: Caller<Read>,
    Path((env, id)): Path<(String, String)>,
    QueryOf(q): QueryOf<UsageQuery>,
) -> Result<Response, AdminError> {
    let to = day_param("to", q.to.as_deref())?.unwrap_or_else(|| day_of(now()));
    let from = day_param("from", q.from.as_deref())?.unwrap_or(to - (DEFAULT_DAYS - 1));
    let days = state.core.client_usage(&env, &id, from, to).await?;
    let client = state.core.get_client(&env, &id).await?;
    let quota = state.core.quota_state(&client).await?.map(QuotaView::from);
    Ok(Json(UsageView {
        env,
        client_id: id,
        from: day_string(from),
        to: day_string(to),
        days: days
            .into_iter()
            .map(|d| UsageDayView {
                day: day_string(d.day),
                issued: d.issued,
                errors: d.errors,
                throttled: d.throttled,
            })
            .collect(),
        quota,
    })
    .into_response())
}
