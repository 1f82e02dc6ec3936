//! What every admin handler shares: the JSON error body and the exhaustive
//! map from the core's errors, JSON bodies in, cursor pagination, entity
//! tags (`ETag` / `If-Match`).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tollgate_core::{CoreError, StoreError};

/// The largest JSON body an admin request may carry.
pub const MAX_BODY: usize = 64 * 1024;
/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest page.
pub const MAX_LIMIT: usize = 1000;

/// Every admin error: `{"error": code, "message": text}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable code: `not_found`, `conflict`, `invalid_request`,
    /// `invalid_token`, `insufficient_scope`, `precondition_failed`,
    /// `precondition_required`, `idempotency_key_reused`,
    /// `idempotency_in_progress`, `unavailable`, `internal`.
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
}

/// An admin request refused or failed.
#[derive(Debug)]
pub struct AdminError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// `WWW-Authenticate` of a 401 or 403 (RFC 6750 §3).
    pub(crate) challenge: Option<String>,
    /// `Retry-After` of a 503.
    pub(crate) retry_after: Option<u64>,
}

impl AdminError {
    /// An error without a challenge.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            challenge: None,
            retry_after: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_string(),
            message: self.message,
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(header::WWW_AUTHENTICATE, c);
        }
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// The core's provisioning errors, each by name: a new variant is a
/// compile error here until it has a status.
impl From<CoreError> for AdminError {
    fn from(e: CoreError) -> Self {
        let message = e.to_string();
        match e {
            CoreError::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            CoreError::AlreadyExists { .. } => Self::new(StatusCode::CONFLICT, "conflict", message),
            CoreError::Invalid { .. } => Self::invalid(message),
            CoreError::Crypto(_) => {
                tracing::error!(error = %message, "admin API: cryptographic failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "a cryptographic operation failed (see the server log)",
                )
            }
            CoreError::Store(s) => match s {
                StoreError::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", message),
                StoreError::Backend(_) | StoreError::Timeout { .. } => {
                    tracing::error!(error = %message, "admin API: store failed");
                    Self {
                        retry_after: Some(tollgate_core::error::UNAVAILABLE_RETRY_AFTER),
                        ..Self::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "unavailable",
                            "the store is unavailable; retry shortly",
                        )
                    }
                }
                StoreError::Corrupt(_) => {
                    tracing::error!(error = %message, "admin API: stored data is corrupt");
                    Self::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "stored data could not be read (see the server log)",
                    )
                }
            },
        }
    }
}

/// A JSON request body (at most [`MAX_BODY`]), refused as an admin error
/// (400 `invalid_request` naming the problem) rather than axum's text. The
/// raw bytes are kept: an idempotent create fingerprints them.
#[derive(Debug)]
pub struct JsonBody<T> {
    /// The parsed body.
    pub value: T,
    /// The bytes as received.
    pub raw: Bytes,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = AdminError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !json {
            return Err(AdminError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request",
                "send the body as application/json",
            ));
        }
        let raw = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| {
                AdminError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_request",
                    format!("the body is larger than {MAX_BODY} bytes"),
                )
            })?;
        let _ = state;
        let value = serde_json::from_slice(&raw)
            .map_err(|e| AdminError::invalid(format!("the JSON body: {e}")))?;
        Ok(Self { value, raw })
    }
}

/// `?limit=&cursor=` of a list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items per page, 1 to 1000 (default 50).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page (opaque).
    pub cursor: Option<String>,
}

/// The query string, parsed into `T`, refused as an admin error.
#[derive(Debug)]
pub struct QueryOf<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequestParts<S> for QueryOf<T> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.uri.query() {
            None => Ok(Self(T::default())),
            Some(q) => serde_urlencoded::from_str(q)
                .map(Self)
                .map_err(|e| AdminError::invalid(format!("the query string: {e}"))),
        }
    }
}

impl ListQuery {
    /// The page size asked for, checked.
    pub fn limit(&self) -> Result<usize, AdminError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(AdminError::invalid(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            ))),
        }
    }

    /// The key the previous page ended at, decoded from the cursor.
    pub fn after(&self) -> Result<Option<String>, AdminError> {
        self.cursor
            .as_deref()
            .map(|c| {
                URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| AdminError::invalid("the cursor is not one this API gave"))
            })
            .transpose()
    }
}

/// An opaque cursor naming `key`, the last item of a page.
pub fn cursor_for(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// One page of `items` (any order): sorted by `key`, those after the
/// cursor's key, at most `limit`; with the cursor of the next page when
/// more follow.
pub fn paginate<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    q: &ListQuery,
) -> Result<(Vec<T>, Option<String>), AdminError> {
    let limit = q.limit()?;
    let after = q.after()?;
    items.sort_by_key(|a| key(a));
    let mut page: Vec<T> = items
        .into_iter()
        .filter(|i| after.as_deref().is_none_or(|a| key(i).as_str() > a))
        .take(limit + 1)
        .collect();
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|l| cursor_for(&key(l)))
    } else {
        None
    };
    Ok((page, next))
}

/// A page of `T` as JSON: `{"items": [...], "next_cursor": …}`.
pub fn page_json<T: Serialize>(items: &[T], next: Option<String>) -> Response {
    no_store(axum::Json(serde_json::json!({ "items": items, "next_cursor": next })).into_response())
}

/// The strong entity tag of a resource: a hash of its JSON view.
pub fn etag(view: &impl Serialize) -> String {
    let text = serde_json::to_string(view).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// `view` as a 200 (or `status`) JSON response with its `ETag`.
pub fn with_etag(status: StatusCode, view: &impl Serialize) -> Response {
    let tag = etag(view);
    let mut resp = no_store((status, axum::Json(view)).into_response());
    if let Ok(v) = HeaderValue::from_str(&tag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// A change of a resource needs `If-Match` naming its current tag (or
/// `*`): 428 without one, 412 when it names another version. The handler
/// then writes through a `Tollgate::*_if` method, which has the store
/// check again that the record is still the one compared here, in the
/// write's own transaction. Strong
/// comparison (RFC 9110 §13.1.1): a weak tag never matches.
pub fn check_if_match(headers: &HeaderMap, current: &impl Serialize) -> Result<(), AdminError> {
    let values: Vec<&str> = headers
        .get_all(header::IF_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Err(AdminError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition_required",
            "send If-Match with the ETag of the resource as you last read it",
        ));
    }
    let tag = etag(current);
    if values.iter().any(|v| *v == "*" || *v == tag) {
        Ok(())
    } else {
        Err(changed_since())
    }
}

/// 412: the resource changed since the caller read it. Also the answer
/// when the store finds, at the write itself, that another write came
/// between the `If-Match` check and this one (see `Tollgate::*_if`).
pub fn changed_since() -> AdminError {
    AdminError::new(
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
        "the resource changed since you read it: read it again, then retry with its new ETag",
    )
}

/// `Cache-Control: no-store` (admin answers hold provisioning data).
pub fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pages_follow_the_cursor_to_the_end() {
        let items: Vec<String> = ["d", "a", "c", "b", "e"].map(String::from).to_vec();
        let mut q = ListQuery {
            limit: Some(2),
            cursor: None,
        };
        let mut seen = Vec::new();
        loop {
            let (page, next) = paginate(items.clone(), |s| s.clone(), &q).unwrap();
            seen.extend(page);
            match next {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
        q.cursor = Some("not base64 !".into());
        assert!(paginate(items, |s| s.clone(), &q).is_err());
    }

    #[test]
    fn if_match_is_required_and_strong() {
        let view = serde_json::json!({"a": 1});
        let mut h = HeaderMap::new();
        assert_eq!(
            check_if_match(&h, &view).unwrap_err().status,
            StatusCode::PRECONDITION_REQUIRED
        );
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"other\""));
        assert_eq!(
            check_if_match(&h, &view).unwrap_err().status,
            StatusCode::PRECONDITION_FAILED
        );
        let weak = format!("W/{}", etag(&view));
        h.insert(header::IF_MATCH, HeaderValue::from_str(&weak).unwrap());
        assert!(check_if_match(&h, &view).is_err());
        h.insert(
            header::IF_MATCH,
            HeaderValue::from_str(&etag(&view)).unwrap(),
        );
        assert!(check_if_match(&h, &view).is_ok());
    }
}
