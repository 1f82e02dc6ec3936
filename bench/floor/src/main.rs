//! Benchmark floor: the least an ES256 client_credentials endpoint can do.
//!
//! `tollgate-bench-floor ADDR CLIENT_ID CLIENT_SECRET` serves one axum route,
//! `POST /oauth/token` (`client_secret_post`), that per request costs exactly:
//!
//! 1. a form parse (axum's `Form`, serde_urlencoded);
//! 2. one constant-time compare of the presented secret with CLIENT_SECRET
//!    (and a plain compare of the client id);
//! 3. one serialization of the RFC 9068 claims tollgate issues (serde_json),
//!    with a fresh 16-byte `jti`;
//! 4. one base64url of the claims and one ES256 signature (P-256, fixed
//!    signing, aws-lc-rs), exactly as tollgate signs
//!    (`tollgate_core::crypto::keys::SigningKey::sign`): the key pair is
//!    parsed from PKCS#8 once at start and the JWS header is encoded once;
//!
//! and answers tollgate's body shape (`access_token`, `token_type`,
//! `expires_in`, `scope`) with `Cache-Control: no-store` and
//! `Pragma: no-cache`. No store, no cache lookup, no scope resolution, no
//! logging, no metrics. tollgate is measured against this in the same run (see
//! bench/run.sh and docs/BENCHMARKS.md).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use axum::extract::{Form, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The form of a `client_secret_post` client_credentials request.
#[derive(Deserialize)]
struct TokenRequest {
    grant_type: String,
    client_id: String,
    client_secret: String,
    audience: Option<String>,
}

/// The claims tollgate signs for client_credentials (RFC 9068 shape).
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    iat: u64,
    jti: &'a str,
    client_id: &'a str,
    scope: &'a str,
}

/// tollgate's RFC 6749 token response body.
#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    scope: &'a str,
}

/// What the floor prepares once, at start.
struct Floor {
    issuer: String,
    client_id: String,
    secret: Vec<u8>,
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    /// `base64url(header) + "."`, computed once.
    header_prefix: String,
}

const LIFETIME: u64 = 600;
const SCOPE: &str = "odds:read";

fn error(status: StatusCode, code: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!(r#"{{"error":"{code}"}}"#),
    )
        .into_response()
}

impl Floor {
    /// `base64url(header).base64url(claims).base64url(signature)`, as
    /// tollgate's `SigningKey::sign` builds it.
    fn sign(&self, claims_json: &[u8]) -> Option<String> {
        let mut out =
            String::with_capacity(self.header_prefix.len() + claims_json.len() * 4 / 3 + 8 + 350);
        out.push_str(&self.header_prefix);
        URL_SAFE_NO_PAD.encode_string(claims_json, &mut out);
        let sig = self.pair.sign(&self.rng, out.as_bytes()).ok()?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut out);
        Some(out)
    }
}

async fn token(State(f): State<Arc<Floor>>, Form(req): Form<TokenRequest>) -> Response {
    if req.grant_type != "client_credentials" {
        return error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let secret_ok = verify_slices_are_equal(req.client_secret.as_bytes(), &f.secret).is_ok();
    if req.client_id != f.client_id || !secret_ok {
        return error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut raw = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut raw).is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    }
    let jti = URL_SAFE_NO_PAD.encode(raw);
    let claims = Claims {
        iss: &f.issuer,
        sub: &req.client_id,
        aud: req.audience.as_deref().unwrap_or("api"),
        exp: iat + LIFETIME,
        iat,
        jti: &jti,
        client_id: &req.client_id,
        scope: SCOPE,
    };
    let Some(access_token) = serde_json::to_vec(&claims)
        .ok()
        .and_then(|json| f.sign(&json))
    else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
    };
    let body = serde_json::to_string(&TokenBody {
        access_token: &access_token,
        token_type: "Bearer",
        expires_in: LIFETIME,
        scope: SCOPE,
    })
    .unwrap_or_default();
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(client_id), Some(secret)) = (args.next(), args.next(), args.next())
    else {
        eprintln!("usage: tollgate-bench-floor ADDR CLIENT_ID CLIENT_SECRET");
        std::process::exit(2);
    };
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| std::io::Error::other("key generation failed"))?;
    // Parsed once, as tollgate parses its keys once at load.
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|_| std::io::Error::other("key parsing failed"))?;
    let header = serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": "floor-key-01"});
    let floor = Arc::new(Floor {
        issuer: format!("http://{addr}"),
        client_id,
        secret: secret.into_bytes(),
        pair,
        rng,
        header_prefix: format!("{}.", URL_SAFE_NO_PAD.encode(header.to_string())),
    });
    let app = axum::Router::new()
        .route("/oauth/token", post(token))
        .with_state(floor);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("floor listening on {addr}");
    axum::serve(listener, app).await
}
