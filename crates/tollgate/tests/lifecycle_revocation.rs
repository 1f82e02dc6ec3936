//! Lifecycle events revoke (hardening, issue 9 §4): deleting a client ends
//! everything it held, even when the same id is created again; RFC 7009
//! revocation of a refresh token or refresh JWT ends it; a new password
//! ends the user's sessions unless told otherwise; header-login `/refresh`
//! does not call a revoked access token valid.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::login::{assert_not_authenticated, basic, pair_of};
use common::{Server, md5_hex, send};
use serde_json::{Value, json};

const PIN: &str = "pin-1234";
const EXCHANGE: &str = "/pub/v2/players/access-token";

fn basic_pair(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// A confidential client holding client_credentials, device_credentials and
/// password grants, with a user; returns (id, secret).
fn partner(s: &Server) -> (String, String) {
    let c = s.client(&[
        "--name",
        "partner",
        "--api",
        "rest=device",
        "--grant",
        "client_credentials",
        "--grant",
        "device_credentials",
        "--grant",
        "password",
    ]);
    s.user(&c.0, "device-1", PIN);
    c
}

fn setup() -> Server {
    let s = Server::start_with(&["--contracts", "all"], &[]);
    s.cli_ok(&["api", "create", "rest", "--permission", "device"]);
    s
}

async fn device_login(s: &Server, id: &str, secret: &str) -> Value {
    let r = send(
        s.post("/v1/token?grant_type=device_credentials")
            .header("authorization", basic_pair(id, secret))
            .form(&[("username", "device-1"), ("password", &md5_hex(PIN))]),
    )
    .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn device_refresh(s: &Server, id: &str, secret: &str, token: &str) -> u16 {
    send(
        s.post("/v1/token?grant_type=refresh_token")
            .header("authorization", basic_pair(id, secret))
            .form(&[("refresh_token", token)]),
    )
    .await
    .status()
    .as_u16()
}

async fn exchange(s: &Server, token: &str) -> u16 {
    send(
        s.post(EXCHANGE)
            .header("authorization", format!("Bearer {token}")),
    )
    .await
    .status()
    .as_u16()
}

async fn oauth(s: &Server, path: &str, id: &str, secret: &str, token: &str) -> reqwest::Response {
    s.form(
        path,
        &[
            ("client_id", id),
            ("client_secret", secret),
            ("token", token),
        ],
    )
    .await
}

#[tokio::test]
async fn deleting_a_client_ends_everything_it_held_even_if_its_id_comes_back() {
    let s = setup();
    let (id, secret) = partner(&s);
    let (gw, gw_secret) = s.client(&["--name", "gateway", "--introspect"]);
    let rj = s.cli_json(&["refresh-jwt", "issue", "--client", &id])["refresh_jwt"]
        .as_str()
        .unwrap()
        .to_string();
    s.sync().await;
    let session = device_login(&s, &id, &secret).await;
    let access = s
        .token(&id, &secret, &[])
        .await
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(exchange(&s, &rj).await, 200);
    let active = oauth(&s, "/oauth/introspect", &gw, &gw_secret, &access).await;
    assert_eq!(active.json::<Value>().await.unwrap()["active"], true);

    // Tokens carry whole seconds: one issued in the very second its client
    // is re-created counts as the new client's. Step past that second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    s.cli_ok(&["client", "delete", &id]);
    // The same id and secret, the same user: a new client that must not
    // inherit the old one's sessions, refresh JWTs or tokens.
    s.cli_json(&[
        "client",
        "create",
        "--name",
        "partner",
        "--client-id",
        &id,
        "--client-secret",
        &secret,
        "--api",
        "rest=device",
        "--grant",
        "client_credentials",
        "--grant",
        "device_credentials",
    ]);
    s.user(&id, "device-1", PIN);
    s.sync().await;

    assert_eq!(exchange(&s, &rj).await, 401, "the old refresh JWT");
    let rt = session["refresh_token"].as_str().unwrap();
    assert_eq!(
        device_refresh(&s, &id, &secret, rt).await,
        400,
        "the old session"
    );
    let r = oauth(&s, "/oauth/introspect", &gw, &gw_secret, &access).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"active": false}),
        "the old access token"
    );
    let listed = s.cli_json(&["refresh-jwt", "list"]);
    assert!(listed[0]["revoked_at"].is_string(), "{listed}");
    // The new client works on its own.
    let fresh = device_login(&s, &id, &secret).await;
    let rt = fresh["refresh_token"].as_str().unwrap();
    assert_eq!(device_refresh(&s, &id, &secret, rt).await, 200);
}

#[tokio::test]
async fn rfc7009_revocation_ends_refresh_tokens_and_refresh_jwts() {
    let s = setup();
    let (id, secret) = partner(&s);
    let (other, other_secret) = partner_named(&s, "other");
    let rj = s.cli_json(&["refresh-jwt", "issue", "--client", &id])["refresh_jwt"]
        .as_str()
        .unwrap()
        .to_string();
    s.sync().await;
    let rt = device_login(&s, &id, &secret).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();

    // Another client: 200, nothing happens, nothing told.
    for t in [&rt, &rj] {
        let r = oauth(&s, "/oauth/revoke", &other, &other_secret, t).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(device_refresh(&s, &id, &secret, &rt).await, 200);
    assert_eq!(exchange(&s, &rj).await, 200);

    // The owner: both end.
    for t in [&rt, &rj] {
        let r = oauth(&s, "/oauth/revoke", &id, &secret, t).await;
        assert_eq!(r.status(), 200);
    }
    s.sync().await;
    assert_eq!(
        device_refresh(&s, &id, &secret, &rt).await,
        400,
        "refresh token revoked"
    );
    assert_eq!(exchange(&s, &rj).await, 401, "refresh JWT revoked");
}

fn partner_named(s: &Server, name: &str) -> (String, String) {
    s.client(&[
        "--name",
        name,
        "--api",
        "rest=device",
        "--grant",
        "device_credentials",
    ])
}

#[tokio::test]
async fn a_new_password_ends_the_users_sessions_unless_kept() {
    let s = setup();
    let (id, secret) = partner(&s);
    s.sync().await;
    let first = device_login(&s, &id, &secret).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    s.cli_ok(&[
        "user",
        "set-password",
        "device-1",
        "--password",
        PIN,
        "--keep-sessions",
    ]);
    s.sync().await;
    assert_eq!(device_refresh(&s, &id, &secret, &first).await, 200, "kept");
    s.cli_ok(&["user", "set-password", "device-1", "--password", PIN]);
    s.sync().await;
    assert_eq!(device_refresh(&s, &id, &secret, &first).await, 400, "ended");
    // Logging in again starts a new session.
    let again = device_login(&s, &id, &secret).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(device_refresh(&s, &id, &secret, &again).await, 200);
}

#[tokio::test]
async fn header_login_refresh_does_not_call_a_revoked_access_token_valid() {
    let s = setup();
    let (id, secret) = partner(&s);
    s.user(&id, "buyer@example.com", "pw-1");
    s.sync().await;
    let (access, _) = pair_of(
        &send(
            s.get("/v2/authentication/login")
                .header("authorization", basic("buyer@example.com", "pw-1")),
        )
        .await,
    );
    let still = |t: String| {
        send(
            s.get("/v2/authentication/refresh")
                .header("authorization", format!("Bearer {t}")),
        )
    };
    let r = still(access.clone()).await;
    assert_eq!(r.status(), 200, "valid: nothing to do");
    assert!(r.headers().get("set-authorization").is_none());
    assert_eq!(
        oauth(&s, "/oauth/revoke", &id, &secret, &access)
            .await
            .status(),
        200
    );
    assert_not_authenticated(still(access).await, "revoked access token").await;
}
