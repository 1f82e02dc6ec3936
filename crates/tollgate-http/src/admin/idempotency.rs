//! `Idempotency-Key` on creates: a create repeated with the same key by the
//! same admin client within 24 hours gets the first response again
//! (`Idempotent-Replayed: true`) instead of a second resource.
//!
//! Kept in this process's memory, not in the store, on purpose: the first
//! response of a client create or a refresh-JWT issue holds a secret that is
//! shown once and must never be at rest (the store, its backups, a
//! migration). The cost: a retry that a load balancer sends to another
//! instance is not recognised there (route admin traffic to one instance,
//! or accept that a lost response may cost a second create). A key reused
//! for another request (another path or body) is refused (422), and a
//! request arriving while the first with its key is still running gets
//! 409. Responses of 5xx are not kept: the request may be retried.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};

use super::common::AdminError;

/// How long a response is kept for replay.
pub const TTL: Duration = Duration::from_secs(24 * 3600);
/// The most keys kept at once (the oldest go first past it).
const CAPACITY: usize = 10_000;
/// The header.
pub const HEADER: &str = "idempotency-key";

#[derive(Debug)]
enum Slot {
    Running {
        fingerprint: [u8; 32],
        since: Instant,
    },
    Done {
        fingerprint: [u8; 32],
        since: Instant,
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: Bytes,
    },
}

impl Slot {
    fn since(&self) -> Instant {
        match self {
            Slot::Running { since, .. } | Slot::Done { since, .. } => *since,
        }
    }
}

/// The keys seen, per admin client.
#[derive(Debug, Default)]
pub struct Idempotency {
    slots: Mutex<HashMap<(String, String), Slot>>,
}

/// What a create does with its key.
#[derive(Debug)]
pub enum Begin {
    /// No key: run, keep nothing.
    Untracked,
    /// First time: run, then [`Ticket::finish`].
    Fresh(Ticket),
    /// Seen: answer this.
    Replay(Response),
}

/// The right to run a create under a key; dropped unfinished (an error
/// before the response), it frees the key for a retry.
#[derive(Debug)]
pub struct Ticket {
    store: Arc<Idempotency>,
    key: (String, String),
    fingerprint: [u8; 32],
    finished: bool,
}

impl Ticket {
    /// Keeps `resp` for replay (unless a 5xx) and returns it.
    pub async fn finish(mut self, resp: Response) -> Response {
        let status = resp.status();
        if status.is_server_error() {
            return resp;
        }
        let (parts, body) = resp.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let content_type = parts.headers.get(header::CONTENT_TYPE).cloned();
        self.store.lock().insert(
            self.key.clone(),
            Slot::Done {
                fingerprint: self.fingerprint,
                since: Instant::now(),
                status,
                content_type,
                body: bytes.clone(),
            },
        );
        self.finished = true;
        Response::from_parts(parts, axum::body::Body::from(bytes))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.finished {
            self.store.lock().remove(&self.key);
        }
    }
}

impl Idempotency {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Looks `headers`' key up for `caller`; `what` (method and path) and
    /// `body` make the request's fingerprint.
    pub fn begin(
        self: &Arc<Self>,
        caller: &str,
        headers: &HeaderMap,
        what: &str,
        body: &[u8],
    ) -> Result<Begin, AdminError> {
        let Some(key) = headers.get(HEADER) else {
            return Ok(Begin::Untracked);
        };
        let key = key
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 255)
            .ok_or_else(|| {
                AdminError::invalid("Idempotency-Key must be 1 to 255 visible ASCII characters")
            })?
            .to_string();
        let mut h = Sha256::new();
        h.update(what.as_bytes());
        h.update([0]);
        h.update(body);
        let fingerprint: [u8; 32] = h.finalize().into();
        let now = Instant::now();
        let id = (caller.to_string(), key);
        let mut slots = self.lock();
        slots.retain(|_, s| now.duration_since(s.since()) < TTL);
        match slots.get(&id) {
            Some(Slot::Running { fingerprint: f, .. })
            | Some(Slot::Done { fingerprint: f, .. })
                if *f != fingerprint =>
            {
                Err(AdminError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for another request; use a new key",
                ))
            }
            Some(Slot::Running { .. }) => Err(AdminError::new(
                StatusCode::CONFLICT,
                "idempotency_in_progress",
                "a request with this Idempotency-Key is still running; retry shortly",
            )),
            Some(Slot::Done {
                status,
                content_type,
                body,
                ..
            }) => {
                let mut resp = (*status, body.clone()).into_response();
                let h = resp.headers_mut();
                if let Some(ct) = content_type {
                    h.insert(header::CONTENT_TYPE, ct.clone());
                }
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                h.insert("idempotent-replayed", HeaderValue::from_static("true"));
                Ok(Begin::Replay(resp))
            }
            None => {
                if slots.len() >= CAPACITY {
                    if let Some(oldest) = slots
                        .iter()
                        .min_by_key(|(_, s)| s.since())
                        .map(|(k, _)| k.clone())
                    {
                        slots.remove(&oldest);
                    }
                }
                slots.insert(
                    id.clone(),
                    Slot::Running {
                        fingerprint,
                        since: now,
                    },
                );
                Ok(Begin::Fresh(Ticket {
                    store: self.clone(),
                    key: id,
                    fingerprint,
                    finished: false,
                }))
            }
        }
    }
}

/// Runs `create` under the request's idempotency key, if it has one.
pub async fn once<F>(
    store: &Arc<Idempotency>,
    caller: &str,
    headers: &HeaderMap,
    what: &str,
    body: &[u8],
    create: F,
) -> Result<Response, AdminError>
where
    F: std::future::Future<Output = Result<Response, AdminError>>,
{
    match store.begin(caller, headers, what, body)? {
        Begin::Replay(r) => Ok(r),
        Begin::Untracked => create.await,
        Begin::Fresh(ticket) => {
            // An error answer is kept too (it is the answer to this
            // request), unless it is the server's condition.
            let resp = match create.await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            };
            Ok(ticket.finish(resp).await)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn key(k: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_static(k));
        h
    }

    #[tokio::test]
    async fn a_repeat_is_replayed_another_body_refused_a_failure_forgotten() {
        let store = Arc::new(Idempotency::default());
        let Begin::Fresh(t) = store.begin("a", &key("k1"), "POST /x", b"{}").unwrap() else {
            panic!("first use is fresh")
        };
        // While running: a repeat waits its turn.
        let busy = store.begin("a", &key("k1"), "POST /x", b"{}").unwrap_err();
        assert_eq!(busy.status, StatusCode::CONFLICT);
        t.finish((StatusCode::CREATED, "made").into_response())
            .await;
        let Begin::Replay(r) = store.begin("a", &key("k1"), "POST /x", b"{}").unwrap() else {
            panic!("a repeat is replayed")
        };
        assert_eq!(r.status(), StatusCode::CREATED);
        let body = axum::body::to_bytes(r.into_body(), 100).await.unwrap();
        assert_eq!(&body[..], b"made");
        let reused = store
            .begin("a", &key("k1"), "POST /x", b"{\"a\":1}")
            .unwrap_err();
        assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
        // Another caller's key is its own.
        assert!(matches!(
            store.begin("b", &key("k1"), "POST /x", b"{}").unwrap(),
            Begin::Fresh(_)
        ));
        // Dropped unfinished: the key is free again.
        assert!(matches!(
            store.begin("b", &key("k1"), "POST /x", b"{}").unwrap(),
            Begin::Fresh(_)
        ));
        assert!(matches!(
            store
                .begin("a", &HeaderMap::new(), "POST /x", b"{}")
                .unwrap(),
            Begin::Untracked
        ));
    }
}
