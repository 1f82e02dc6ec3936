//! Benchmark floor: the least an ES256 client_credentials endpoint can do.
//!
//! One axum route, `POST /oauth/token`, parses the form body, checks the
//! grant type, and signs a JWT with the same crate tollgate verifies with
//! (jsonwebtoken, aws-lc-rs backend) and the same kind of key (P-256). No
//! client lookup, no secret check, no logging. tollgate is measured against
//! this in the same run (see bench/run.sh and docs/BENCHMARKS.md).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use axum::extract::{Form, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: String,
    client_id: String,
    #[allow(dead_code)]
    client_secret: String,
    audience: Option<String>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    iat: u64,
    jti: String,
    client_id: &'a str,
    scope: &'a str,
}

struct Floor {
    key: EncodingKey,
    header: Header,
}

async fn token(State(f): State<Arc<Floor>>, Form(req): Form<TokenRequest>) -> Response {
    if req.grant_type != "client_credentials" {
        return (StatusCode::BAD_REQUEST, "unsupported_grant_type").into_response();
    }
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut jti = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut jti);
    let claims = Claims {
        iss: "http://127.0.0.1",
        sub: &req.client_id,
        aud: req.audience.as_deref().unwrap_or("api"),
        exp: iat + 600,
        iat,
        jti: jti.iter().map(|b| format!("{b:02x}")).collect(),
        client_id: &req.client_id,
        scope: "odds:read",
    };
    match jsonwebtoken::encode(&f.header, &claims, &f.key) {
        Ok(t) => (
            [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")],
            format!(r#"{{"access_token":"{t}","token_type":"Bearer","expires_in":600,"scope":"odds:read"}}"#),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| std::io::Error::other("key generation failed"))?;
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    header.kid = Some("floor".into());
    let floor = Arc::new(Floor {
        key: EncodingKey::from_ec_der(pkcs8.as_ref()),
        header,
    });
    let app = axum::Router::new()
        .route("/oauth/token", post(token))
        .with_state(floor);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("floor listening on {addr}");
    axum::serve(listener, app).await
}
