//! What every contract does the same way: answer only where it is enabled,
//! stamp its outcome for the request log and metrics, and write an error
//! body of the common `{"error","error_description"}` shape.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tollgate_core::service::EnvRuntime;

use crate::AppState;
use crate::env::Env;
use crate::ops::Outcome;

/// A contract that can be switched on per environment.
pub trait Named: Send + Sync + 'static {
    /// Its name (`--contracts`, metrics, logs).
    const NAME: &'static str;
}

/// The environment of a request to contract `C`, which answers there: an
/// extractor that refuses with a bare 404 where `C` is not enabled (so an
/// environment that does not speak a contract looks as if it had no such
/// path).
#[derive(Debug)]
pub struct On<C>(pub Arc<EnvRuntime>, pub PhantomData<C>);

impl<C: Named> FromRequestParts<AppState> for On<C> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Env(env) = Env::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if state.contracts.enabled(&env, C::NAME) {
            Ok(On(env, PhantomData))
        } else {
            Err(StatusCode::NOT_FOUND.into_response())
        }
    }
}

/// The address a request came from (the TCP peer; `X-Forwarded-For` is not
/// trusted), for throttling failed attempts by source.
#[derive(Debug, Clone, Copy)]
pub struct Source(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Source(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// Attaches the outcome of a request (contract, endpoint, environment,
/// outcome code, client) for the request log and metrics.
pub(crate) fn stamp(
    mut resp: Response,
    contract: &'static str,
    endpoint: &'static str,
    env: &EnvRuntime,
    code: &'static str,
    client_id: Option<String>,
) -> Response {
    resp.extensions_mut().insert(Outcome {
        contract,
        endpoint,
        env: env.env.name.clone(),
        code,
        client_id,
    });
    resp
}

/// `{"error": code, "error_description": description}`, fields in that
/// order (RFC 6749 §5.2, and the shape Spring and Cloudbet use too).
pub(crate) fn error_body(code: &str, description: &str) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        error: &'a str,
        error_description: &'a str,
    }
    serde_json::to_string(&Body {
        error: code,
        error_description: description,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_body_has_two_fields_in_order_and_escapes() {
        assert_eq!(
            error_body("invalid_grant", "a \"quoted\" reason"),
            r#"{"error":"invalid_grant","error_description":"a \"quoted\" reason"}"#
        );
    }
}
