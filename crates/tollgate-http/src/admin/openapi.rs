//! The admin API's OpenAPI 3.1 document, derived by `utoipa` from the
//! handlers' `#[utoipa::path]` annotations and the request and response
//! types, served at `/admin/openapi.json` (to admin callers, like every
//! admin route). `tests` below fails when a route has no operation in the
//! document or the document has one without a route.

use axum::response::{IntoResponse, Response};
use utoipa::OpenApi as _;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::auth::{Caller, Read};
use super::{
    api, api_key, audit, client, env, introspect, key, partner, refresh_jwt, trust, usage, user,
};

/// Where the document is served.
pub const PATH: &str = "/admin/openapi.json";

/// The document's definition.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "tollgate admin API",
        description = "Provisioning of environments, APIs, clients, users, signing keys, refresh JWTs, API keys and an incumbent's trusted issuers and keys; partners of the portal and their package requests; introspection; the audit log. Authenticate with an access token of the default environment for the audience tollgate-admin (permissions admin:read, admin:write, admin:secrets).",
        version = "1"
    ),
    paths(
        env::list, env::get, env::create, env::update,
        api::list, api::get, api::create, api::update, api::delete,
        client::list, client::get, client::create, client::update, client::delete,
        client::rotate_secret, client::revoke_secret, client::disable, client::enable,
        usage::client_usage,
        user::list, user::create, user::get, user::delete, user::set_password,
        user::disable, user::enable, user::set_roles, user::import,
        key::list, key::rotate, key::import,
        trust::list_published, trust::publish, trust::get_published, trust::unpublish,
        trust::list, trust::create, trust::get, trust::delete, trust::revoke_client_tokens,
        api_key::list, api_key::create, api_key::revoke, api_key::rotate,
        refresh_jwt::list, refresh_jwt::issue, refresh_jwt::revoke,
        introspect::introspect,
        partner::list, partner::get, partner::create, partner::update, partner::invite,
        partner::disable, partner::enable, partner::accounts, partner::clients,
        partner::list_requests, partner::approve, partner::decline,
        audit::list,
        document,
    ),
    modifiers(&BearerAuth),
)]
pub struct AdminDoc;

/// Declares the `admin_token` security scheme the operations name.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "POST /oauth/token with grant_type=client_credentials and audience=tollgate-admin",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as JSON text.
pub fn json() -> String {
    AdminDoc::openapi().to_json().unwrap_or_default()
}

/// Serves the OpenAPI document.
#[utoipa::path(get, path = "/admin/openapi.json", tag = "meta",
    responses((status = 200, description = "this document (OpenAPI 3.1)", content_type = "application/json"),
        (status = "4XX", description = "refused", body = super::common::ErrorBody)),
    security(("admin_token" = ["admin:read"])))]
pub async fn document(_c: Caller<Read>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeSet;

    use utoipa::OpenApi as _;

    use super::AdminDoc;

    /// Every route the admin router registers has an operation in the
    /// document, and every operation of the document is a route.
    #[test]
    fn the_document_and_the_router_name_the_same_routes() {
        let doc = AdminDoc::openapi();
        let mut documented = BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("PATCH", &item.patch),
                ("DELETE", &item.delete),
                ("HEAD", &item.head),
                ("OPTIONS", &item.options),
                ("TRACE", &item.trace),
            ] {
                if op.is_some() {
                    documented.insert((method.to_string(), path.clone()));
                }
            }
        }
        let routed: BTreeSet<(String, String)> = super::super::registered()
            .into_iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes without a schema: {undocumented:?}"
        );
        assert!(unrouted.is_empty(), "schemas without a route: {unrouted:?}");
        assert_eq!(routed.len(), 62, "every route counted once");
    }

    #[test]
    fn the_document_is_openapi_3_1_with_the_bearer_scheme() {
        let v: serde_json::Value = serde_json::from_str(&super::json()).unwrap();
        assert!(v["openapi"].as_str().unwrap().starts_with("3.1"));
        assert_eq!(
            v["components"]["securitySchemes"]["admin_token"]["scheme"],
            "bearer"
        );
        // Operations name the permission they need.
        assert_eq!(
            v["paths"]["/admin/v1/environments/{env}/clients"]["post"]["security"][0]["admin_token"],
            serde_json::json!(["admin:write", "admin:secrets"])
        );
    }
}
