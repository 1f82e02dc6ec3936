//! tollgate's HTTP layer.
//!
//! Each wire contract lives in one module under [`contracts`]: it translates
//! its wire format into a core request, calls [`tollgate_core::Tollgate`], and
//! translates the outcome back, owning its error map. Everything shared by
//! contracts (environment selection, parameter parsing, client credentials in
//! headers, request logging) sits beside them. A new contract is a new module
//! in `contracts/` plus one line in [`contracts::registry::all`].

pub mod contracts;
pub mod cors;
pub mod env;
pub mod ops;
pub mod params;
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
}

/// The complete router: every contract at the root (default environment or the
/// one selected by host name) and under `/e/{env}/`. Optional contracts are
/// mounted at their configured paths and answer 404 in environments where
/// they are not enabled.
pub fn router(state: AppState) -> Router {
    // CORS wraps each route (not the whole router): it must see the
    // matched `/e/{env}` to know the environment, and whether the route
    // carries credentials.
    let credentialed = || axum::middleware::from_fn_with_state(state.clone(), cors::credentialed);
    let public = || axum::middleware::from_fn_with_state(state.clone(), cors::public);
    let mut per_env = Router::new()
        .merge(contracts::oauth2::routes().layer(credentialed()))
        .merge(contracts::discovery::routes().layer(public()));
    for c in &state.contracts.optional {
        per_env = per_env.merge(c.routes().layer(credentialed()));
    }
    Router::new()
        .merge(per_env.clone())
        .nest("/e/{env}", per_env)
        .merge(contracts::discovery::rfc8414_routes().layer(public()))
        .merge(ops::routes(&state.ops))
        // Inside the request log, so that it records these refusals.
        .layer(axum::middleware::from_fn(server::enforce_read_deadline))
        .layer(axum::middleware::from_fn(env::require_one_host))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::request_log,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::security_headers,
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
