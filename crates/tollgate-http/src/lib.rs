//! tollgate's HTTP layer.
//!
//! Each wire contract lives in one module under [`contracts`]: it translates
//! its wire format into a core request, calls [`tollgate_core::Tollgate`], and
//! translates the outcome back, owning its error map. Everything shared by
//! contracts (environment selection, parameter parsing, client credentials in
//! headers, request logging) sits beside them. A new contract is a new module
//! in `contracts/` plus one line in [`contracts::registry::all`].

pub mod admin;
pub mod contracts;
pub mod cors;
pub mod dispatch;
pub mod edge;
pub mod env;
pub mod gate;
pub mod ops;
pub mod params;
pub mod portal;
pub mod proxy;
pub mod server;

use std::sync::Arc;

use axum::Router;
use tollgate_core::Tollgate;

/// Shared state of every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The core service.
    pub core: Arc<Tollgate>,
    /// Which optional contracts answer where, and how.
    pub contracts: Arc<contracts::Settings>,
    /// Where `/metrics` answers and who may read it; security headers.
    pub ops: Arc<ops::Settings>,
    /// The gate, when the server has a policy: `/gate/check` answers.
    pub gate: Option<Arc<tollgate_gate::Gate>>,
}

/// The complete router: every contract at the root (default environment or the
/// one selected by host name) and under `/e/{env}/`. The optional contracts
/// answer through the fallback ([`dispatch`]): each environment has its own
/// table of their paths (settings it may override), holding only the
/// contracts enabled there, so elsewhere their paths are 404.
pub fn router(state: AppState) -> Router {
    // CORS wraps each fixed route (not the whole router): it must see the
    // matched `/e/{env}` to know the environment, and whether the route
    // carries credentials. The dispatched optional contracts get theirs in
    // `dispatch`, which finds their environment itself.
    let credentialed = || axum::middleware::from_fn_with_state(state.clone(), cors::credentialed);
    let public = || axum::middleware::from_fn_with_state(state.clone(), cors::public);
    let mut per_env = Router::new()
        .merge(contracts::oauth2::routes().layer(credentialed()))
        .merge(contracts::discovery::routes().layer(public()));
    if state.gate.is_some() {
        per_env = per_env.merge(gate::routes());
    }
    Router::new()
        .merge(per_env.clone())
        .nest("/e/{env}", per_env)
        .merge(contracts::discovery::rfc8414_routes().layer(public()))
        .merge(ops::routes(&state.ops))
        .merge(if state.ops.admin_elsewhere {
            Router::new()
        } else {
            admin::routes()
        })
        .merge(match &state.ops.portal_path {
            Some(p) => portal::routes(p),
            None => Router::new(),
        })
        .fallback(dispatch::dispatch)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            edge::edge,
        ))
        .with_state(state)
}

/// The admin API alone, for a listener of its own (`admin_listen`), with
/// the request log and security headers of the main router.
pub fn admin_router(state: AppState) -> Router {
    admin::routes()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            edge::admin_edge,
        ))
        .with_state(state)
}

/// `/metrics` alone, for a listener of its own (`metrics_listen`).
pub fn metrics_router(state: AppState) -> Router {
    ops::metrics_routes()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::security_headers,
        ))
        .with_state(state)
}
