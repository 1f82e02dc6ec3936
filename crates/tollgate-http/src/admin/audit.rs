//! `GET /admin/v1/audit?since=&limit=&cursor=`: the audit log, oldest
//! first, a page at a time (a caller limited to environments: their
//! entries only).

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tollgate_core::model::AuditEntry;

use super::auth::{Caller, Read};
use super::common::{AdminError, ErrorBody, ListQuery, QueryOf, cursor_for, page_json};
use crate::AppState;

/// One audit entry.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    /// Sortable id.
    pub id: String,
    /// Unix seconds.
    pub at: i64,
    /// The admin client (or `cli`).
    pub actor: String,
    /// `noun.verb`.
    pub action: String,
    /// Environment.
    pub env: Option<String>,
    /// What was changed.
    pub target: String,
    /// The caller's address.
    pub source: Option<String>,
    /// Before (no secrets).
    pub before: Option<serde_json::Value>,
    /// After (no secrets).
    pub after: Option<serde_json::Value>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action,
            env: e.env,
            target: e.target,
            source: e.source,
            before: e.before,
            after: e.after,
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// The items, oldest first.
    pub items: Vec<AuditView>,
    /// The next page's cursor; absent once a page is not full.
    pub next_cursor: Option<String>,
}

/// `?since=&limit=&cursor=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries written at or after this time (unix seconds; default: all).
    pub since: Option<i64>,
    /// Items per page, 1 to 1000 (default 50).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Reads the audit log.
#[utoipa::path(get, path = "/admin/v1/audit", tag = "audit",
    params(AuditQuery),
    responses((status = 200, description = "a page of entries", body = AuditPage),
        (status = "4XX", description = "refused", body = ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn list(
    State(state): State<AppState>,
    c: Caller<Read>,
    QueryOf(q): QueryOf<AuditQuery>,
) -> Result<Response, AdminError> {
    let paging = ListQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = paging.limit()?;
    let after = paging.after()?;
    let entries = state
        .core
        .list_audit(
            q.since.unwrap_or(i64::MIN),
            after.as_deref(),
            u32::try_from(limit).unwrap_or(u32::MAX),
        )
        .await?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| cursor_for(&e.id)))
        .flatten();
    // A caller limited to environments sees their entries only; the
    // cursor still follows the unfiltered log, so pages may be short.
    let views: Vec<AuditView> = entries
        .into_iter()
        .filter(|e| e.env.as_deref().is_some_and(|env| c.reaches(env)) || c.envs.is_none())
        .map(AuditView::from)
        .collect();
    Ok(page_json(&views, next))
}
