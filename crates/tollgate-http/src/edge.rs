//! The steps every request goes through before its route's handler, as one
//! middleware: security headers, the request log (and its metrics), the
//! one-`Host` rule, the request body's read deadline, outermost first.
//!
//! Why one: axum applies a router's layers to each route, and each
//! `from_fn` layer clones the route below it on every call. Four layers
//! stacked that way cloned (and boxed) about thirty services per request,
//! a tenth of the instructions of an issued token (callgrind, 2026-12-03).
//! The steps themselves live beside what they guard ([`crate::ops`],
//! [`crate::env`], [`crate::server`]); this file only orders them.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;
use crate::{env, ops, server};

/// The public and contract routes: every step.
pub async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = ops::logged(&state, req, |req| async move {
        // Inside the request log, so that it records these refusals.
        if let Some(refusal) = env::host_refusal(&req) {
            return refusal;
        }
        server::within_read_deadline(req, |req| next.run(req)).await
    })
    .await;
    ops::add_security_headers(&state, &mut resp);
    resp
}

/// The admin API on a listener of its own: as [`edge`], without the
/// one-`Host` rule (the admin API selects no environment by host).
pub async fn admin_edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = ops::logged(&state, req, |req| {
        server::within_read_deadline(req, |req| next.run(req))
    })
    .await;
    ops::add_security_headers(&state, &mut resp);
    resp
}
