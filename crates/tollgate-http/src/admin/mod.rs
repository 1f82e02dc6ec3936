//! The admin HTTP API: `/admin/v1/…`, JSON in and out, over the core's
//! provisioning methods (what the CLI does), one file per noun. Handlers
//! map JSON to a core call and back; the rules are the core's.
//!
//! - Authentication (`auth.rs`): a bearer access token tollgate issued to
//!   itself, for the `tollgate-admin` API of the default environment; its
//!   permissions `admin:read`, `admin:write`, `admin:secrets` scope what a
//!   route allows.
//! - Lists page with an opaque cursor (`?limit=&cursor=`, `next_cursor`);
//!   reads carry an `ETag`, and PATCH/DELETE need `If-Match` (412 on a
//!   stale tag, 428 without one); creates honour `Idempotency-Key`
//!   (`idempotency.rs`).
//! - Every write is appended to the audit log (who, what, when, from where,
//!   before/after without secrets): `trail.rs`.
//! - The OpenAPI 3.1 document (`openapi.rs`) is derived from the handlers'
//!   annotations; a test checks that it and the router name the same
//!   routes.

pub mod audit;
pub mod auth;
pub mod common;
pub mod env;
pub mod idempotency;
pub mod introspect;
pub mod openapi;
pub mod trail;

mod api;
mod api_key;
mod client;
mod key;
mod partner;
mod refresh_jwt;
mod trust;
mod usage;
mod user;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};
use serde::{Deserialize, Deserializer};

use crate::AppState;

/// The admin API's path prefix.
pub const PREFIX: &str = "/admin";

/// The router with the list of (method, path) it was given: the OpenAPI
/// drift test compares the list with the document.
struct Routes {
    router: Router<AppState>,
    registered: Vec<(Method, &'static str)>,
}

impl Routes {
    fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = match method.as_str() {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PATCH" => MethodFilter::PATCH,
            "PUT" => MethodFilter::PUT,
            _ => MethodFilter::DELETE,
        };
        self.router = self.router.route(path, on(filter, handler));
        self.registered.push((method, path));
        self
    }
}

fn build() -> Routes {
    let r = Routes {
        router: Router::new(),
        registered: Vec::new(),
    };
    const ENVS: &str = "/admin/v1/environments";
    const ENV: &str = "/admin/v1/environments/{env}";
    const APIS: &str = "/admin/v1/environments/{env}/apis";
    const API: &str = "/admin/v1/environments/{env}/apis/{api}";
    const CLIENTS: &str = "/admin/v1/environments/{env}/clients";
    const CLIENT: &str = "/admin/v1/environments/{env}/clients/{client_id}";
    const USERS: &str = "/admin/v1/environments/{env}/clients/{client_id}/users";
    const USER: &str = "/admin/v1/environments/{env}/users/{username}";
    const RJWTS: &str = "/admin/v1/environments/{env}/refresh-jwts";
    const PUBLISHED: &str = "/admin/v1/environments/{env}/keys/published";
    const PUBLISHED_ONE: &str = "/admin/v1/environments/{env}/keys/published/{name}";
    const TRUSTED: &str = "/admin/v1/environments/{env}/trusted-issuers";
    const TRUSTED_ONE: &str = "/admin/v1/environments/{env}/trusted-issuers/{name}";
    const API_KEYS: &str = "/admin/v1/environments/{env}/api-keys";
    const PARTNERS: &str = "/admin/v1/partners";
    const PARTNER: &str = "/admin/v1/partners/{id}";
    r.add(Method::GET, ENVS, env::list)
        .add(Method::POST, ENVS, env::create)
        .add(Method::GET, ENV, env::get)
        .add(Method::PATCH, ENV, env::update)
        .add(Method::GET, APIS, api::list)
        .add(Method::POST, APIS, api::create)
        .add(Method::GET, API, api::get)
        .add(Method::PATCH, API, api::update)
        .add(Method::DELETE, API, api::delete)
        .add(Method::GET, CLIENTS, client::list)
        .add(Method::POST, CLIENTS, client::create)
        .add(Method::GET, CLIENT, client::get)
        .add(Method::PATCH, CLIENT, client::update)
        .add(Method::DELETE, CLIENT, client::delete)
        .add(
            Method::POST,
            "/admin/v1/environments/{env}/clients/{client_id}/rotate-secret",
            client::rotate_secret,
        )
        .add(
            Method::POST,
            "/admin/v1/environments/{env}/clients/{client_id}/revoke-secret",
            client::revoke_secret,
        )
        .add(
            Method::POST,
            "/admin/v1/environments/{env}/clients/{client_id}/disable",
            client::disable,
        )
        .add(
            Method::POST,
            "/admin/v1/environments/{env}/clients/{client_id}/enable",
            client::enable,
        )
        .add(
            Method::GET,
            "/admin/v1/environments/{env}/clients/{client_id}/usage",
            usage::client_usage,
        )
        .add(Method::GET, USERS, user::list)
        .add(Method::POST, USERS, user::create)
        .add(Method::GET, USER, user::get)
        .add(Method::DELETE, USER, user::delete)
        .add(
            Method::POST,
            "/admin/v1/environments/{env}/users/{username}/password",
            user::set_password,
        )
        .add(
            Method::POST,
            "/admin/v1/environments/{env}/users/{username}/disable",
            user::disable,
        )
        .add(
            Method::POST,
            "/admin/v1/environments/{env}/users/{username}/enable",
            user::enable,
        )
        .add(Method::GET, "/admin/v1/environments/{env}/keys", key::list)
        .add(
            Method::POST,
            "/admin/v1/environments/{env}/keys/rotate",
            key::rotate,
        )
        .add(Method::GET, RJWTS, refresh_jwt::list)
        .add(Method::POST, RJWTS, refresh_jwt::issue)
        .add(
            Method::POST,
            "/admin/v1/environments/{env}/refresh-jwts/{jti}/revoke",
            refresh_jwt::revoke,
        )
        .add(
            Method::POST,
            "/admin/v1/environments/{env}/introspect",
            introspect::introspect,
        )
        .add(
            Method::POST,
            "/admin/v1/environments/{env}/users/{username}/roles",
            user::set_roles,
        )
        .add(
            Method::POST,
            "/admin/v1/environments/{env}/clients/{client_id}/users/import",
            user::import,
        )
        .add(
            Method::POST,
            "/admin/v1/environments/{env}/keys/import",
            key::import,
        )
        .add(Method::GET, PUBLISHED, trust::list_published)
        .add(Method::POST, PUBLISHED, trust::publish)
        .add(Method::GET, PUBLISHED_ONE, trust::get_published)
        .add(Method::DELETE, PUBLISHED_ONE, trust::unpublish)
        .add(Method::GET, TRUSTED, trust::list)
        .add(Method::POST, TRUSTED, trust::create)
        .add(Method::GET, TRUSTED_ONE, trust::get)
        .add(Method::DELETE, TRUSTED_ONE, trust::delete)
        .add(
            Method::POST,
            "/admin/v1/environments/{env}/clients/{client_id}/revoke-refresh-tokens",
            trust::revoke_client_tokens,
        )
        .add(Method::GET, API_KEYS, api_key::list)
        .add(Method::POST, API_KEYS, api_key::create)
        .add(
            Method::POST,
            "/admin/v1/environments/{env}/api-keys/{id}/revoke",
            api_key::revoke,
        )
        .add(
            Method::POST,
            "/admin/v1/environments/{env}/api-keys/{id}/rotate",
            api_key::rotate,
        )
        .add(Method::GET, PARTNERS, partner::list)
        .add(Method::POST, PARTNERS, partner::create)
        .add(Method::GET, PARTNER, partner::get)
        .add(Method::PATCH, PARTNER, partner::update)
        .add(
            Method::POST,
            "/admin/v1/partners/{id}/invitations",
            partner::invite,
        )
        .add(
            Method::POST,
            "/admin/v1/partners/{id}/disable",
            partner::disable,
        )
        .add(
            Method::POST,
            "/admin/v1/partners/{id}/enable",
            partner::enable,
        )
        .add(
            Method::GET,
            "/admin/v1/partners/{id}/accounts",
            partner::accounts,
        )
        .add(
            Method::GET,
            "/admin/v1/partners/{id}/clients",
            partner::clients,
        )
        .add(
            Method::GET,
            "/admin/v1/package-requests",
            partner::list_requests,
        )
        .add(
            Method::POST,
            "/admin/v1/package-requests/{id}/approve",
            partner::approve,
        )
        .add(
            Method::POST,
            "/admin/v1/package-requests/{id}/decline",
            partner::decline,
        )
        .add(Method::GET, "/admin/v1/audit", audit::list)
        .add(Method::GET, openapi::PATH, openapi::document)
}

/// Every admin route.
pub fn routes() -> Router<AppState> {
    build().router
}

/// The (method, path) of every admin route, as registered.
pub fn registered() -> Vec<(Method, &'static str)> {
    build().registered
}

/// The idempotency keys of this process (see `idempotency.rs`: memory, on
/// purpose).
fn idempotency_of(_: &AppState) -> Arc<idempotency::Idempotency> {
    static KEYS: OnceLock<Arc<idempotency::Idempotency>> = OnceLock::new();
    KEYS.get_or_init(Default::default).clone()
}

/// A field that may be absent (leave it), `null` (clear it) or a value:
/// `None`, `Some(None)`, `Some(Some(v))`.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
