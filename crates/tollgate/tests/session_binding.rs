//! A session is usable only where it was born (hardening, issue 9 §1): a
//! refresh token works in the contract, environment and client that started
//! its session, a refresh JWT works only at the exchange, and presenting a
//! token in the wrong place changes nothing for its rightful holder. Every
//! cross pair, over the store the suite runs on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::login::{assert_not_authenticated, basic};
use common::{Server, md5_hex, send};
use serde_json::Value;

const DEVICE: &str = "/v1/token";
const HEADER_LOGIN: &str = "/v2/authentication/login";
const HEADER_REFRESH: &str = "/v2/authentication/refresh";
const HEADER_LOGOUT: &str = "/v2/authentication/logout";
const EXCHANGE: &str = "/pub/v2/players/access-token";
const PIN: &str = "pin-1234";
const EMAIL: &str = "buyer@example.com";
const PASSWORD: &str = "correct horse";

/// Everything one environment needs for the four kinds of token.
struct World {
    s: Server,
    /// A confidential device client (id, secret) and a second one.
    device: (String, String),
    other_device: (String, String),
    /// The public client of the header-login users.
    web: String,
    /// A client holding a refresh JWT.
    player: String,
    refresh_jwt: String,
}

fn setup() -> World {
    let s = Server::start_with(&["--contracts", "all"], &[]);
    s.cli_ok(&["api", "create", "rest", "--permission", "device"]);
    let device = s.client(&[
        "--name",
        "dive-tv",
        "--api",
        "rest=device",
        "--grant",
        "device_credentials",
    ]);
    s.user(&device.0, "device-1", PIN);
    let other_device = s.client(&[
        "--name",
        "other-tv",
        "--api",
        "rest=device",
        "--grant",
        "device_credentials",
    ]);
    s.user(&other_device.0, "device-2", PIN);
    let web = s.public_client(&[
        "--name",
        "web",
        "--api",
        "rest=device",
        "--grant",
        "password",
    ]);
    s.user(&web, EMAIL, PASSWORD);
    let (player, _) = s.client(&["--name", "player", "--api", "rest=device"]);
    let refresh_jwt = s.cli_json(&["refresh-jwt", "issue", "--client", &player])["refresh_jwt"]
        .as_str()
        .unwrap()
        .to_string();
    World {
        s,
        device,
        other_device,
        web,
        player,
        refresh_jwt,
    }
}

fn basic_pair(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn basic_key(id: &str) -> String {
    format!("Basic {}", STANDARD.encode(id))
}

async fn device_login(s: &Server, prefix: &str, auth: &str, user: &str) -> Value {
    let r = send(
        s.post(&format!("{prefix}{DEVICE}?grant_type=device_credentials"))
            .header("authorization", auth)
            .form(&[("username", user), ("password", &md5_hex(PIN))]),
    )
    .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn device_refresh(s: &Server, prefix: &str, auth: &str, token: &str) -> reqwest::Response {
    send(
        s.post(&format!("{prefix}{DEVICE}?grant_type=refresh_token"))
            .header("authorization", auth)
            .form(&[("refresh_token", token)]),
    )
    .await
}

/// A device refresh the Spring way must fail with `invalid_grant` (or
/// `invalid_client` when the client itself is refused) and hand out nothing.
async fn assert_device_refused(r: reqwest::Response, code: &str, what: &str) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], code, "{what}: {body}");
    assert!(body.get("access_token").is_none(), "{what}");
    assert!(matches!(status, 400 | 401), "{what}: {status}");
}

async fn header_login(s: &Server) -> (String, String) {
    let r = send(
        s.get(HEADER_LOGIN)
            .header("authorization", basic(EMAIL, PASSWORD)),
    )
    .await;
    common::login::pair_of(&r)
}

async fn header_refresh(s: &Server, token: &str) -> reqwest::Response {
    send(s.get(HEADER_REFRESH).header("refresh-token", token)).await
}

async fn exchange(s: &Server, token: &str) -> reqwest::Response {
    send(
        s.post(EXCHANGE)
            .header("authorization", format!("Bearer {token}")),
    )
    .await
}

#[tokio::test]
async fn a_device_refresh_token_works_only_at_the_device_endpoint() {
    let w = setup();
    w.s.sync().await;
    let auth = basic_pair(&w.device.0, &w.device.1);
    let rt = device_login(&w.s, "", &auth, "device-1").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();

    // header-login /refresh (no client authentication there): refused, and
    // the refused attempt does not rotate the device's session away.
    assert_not_authenticated(header_refresh(&w.s, &rt).await, "device token at /refresh").await;
    // header-login /logout does not end it either.
    let r = send(w.s.post(HEADER_LOGOUT).header("refresh-token", &rt)).await;
    assert_eq!(r.status(), 200, "logout answers as always");
    // The exchange does not take it.
    assert_eq!(exchange(&w.s, &rt).await.status(), 401);
    // Another confidential client holding the same grant cannot use it.
    let other = basic_pair(&w.other_device.0, &w.other_device.1);
    assert_device_refused(
        device_refresh(&w.s, "", &other, &rt).await,
        "invalid_grant",
        "another client",
    )
    .await;
    // Its own client without its secret, or with a wrong one: refused.
    assert_device_refused(
        device_refresh(&w.s, "", &basic_key(&w.device.0), &rt).await,
        "invalid_client",
        "no secret",
    )
    .await;
    assert_device_refused(
        device_refresh(&w.s, "", &basic_pair(&w.device.0, "wrong"), &rt).await,
        "invalid_client",
        "wrong secret",
    )
    .await;
    // The public header-login client cannot use it.
    assert_device_refused(
        device_refresh(&w.s, "", &basic_key(&w.web), &rt).await,
        "invalid_grant",
        "the public web client",
    )
    .await;

    // After all that, the device's own refresh still works.
    let r = device_refresh(&w.s, "", &auth, &rt).await;
    assert_eq!(r.status(), 200, "the rightful holder goes on");
}

#[tokio::test]
async fn a_header_login_refresh_token_works_only_at_header_login() {
    let w = setup();
    w.s.sync().await;
    let (_, rt) = header_login(&w.s).await;

    // At the device endpoint, by the token's own (public) client, which holds
    // no device_credentials grant: refused.
    assert_device_refused(
        device_refresh(&w.s, "", &basic_key(&w.web), &rt).await,
        "invalid_grant",
        "header token at the device endpoint, own client",
    )
    .await;
    // By a confidential client that does hold the device grant: refused.
    let auth = basic_pair(&w.device.0, &w.device.1);
    assert_device_refused(
        device_refresh(&w.s, "", &auth, &rt).await,
        "invalid_grant",
        "header token at the device endpoint, device client",
    )
    .await;
    // At the exchange: refused.
    assert_eq!(exchange(&w.s, &rt).await.status(), 401);

    // The session is untouched: it rotates at /refresh as usual, and its
    // successor keeps working.
    let (_, next) = common::login::pair_of(&header_refresh(&w.s, &rt).await);
    let r = header_refresh(&w.s, &next).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_refresh_jwt_works_only_at_the_exchange() {
    let w = setup();
    w.s.sync().await;
    let rj = &w.refresh_jwt;
    assert_not_authenticated(header_refresh(&w.s, rj).await, "refresh JWT at /refresh").await;
    for auth in [
        basic_pair(&w.device.0, &w.device.1),
        basic_key(&w.web),
        basic_key(&w.player),
    ] {
        assert!(
            !device_refresh(&w.s, "", &auth, rj)
                .await
                .status()
                .is_success(),
            "refresh JWT at the device endpoint"
        );
    }
    let r = exchange(&w.s, rj).await;
    assert_eq!(r.status(), 200, "it still works where it belongs");
    let body: Value = r.json().await.unwrap();
    assert!(body["token"].is_string());
}

#[tokio::test]
async fn access_tokens_are_not_refresh_tokens() {
    let w = setup();
    w.s.sync().await;
    let auth = basic_pair(&w.device.0, &w.device.1);
    let device_access = device_login(&w.s, "", &auth, "device-1").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (header_access, _) = header_login(&w.s).await;
    for t in [&device_access, &header_access] {
        assert_not_authenticated(header_refresh(&w.s, t).await, "access token at /refresh").await;
        assert_device_refused(
            device_refresh(&w.s, "", &auth, t).await,
            "invalid_grant",
            "access token at the device endpoint",
        )
        .await;
        assert_eq!(exchange(&w.s, t).await.status(), 401);
    }
}

#[tokio::test]
async fn a_session_is_bound_to_its_environment() {
    let w = setup();
    // A second environment with a client of the same id and secret and a
    // user of the same name: only the environment differs.
    w.s.cli_ok(&["env", "create", "other", "--contracts", "all"]);
    w.s.cli_ok(&[
        "api",
        "create",
        "rest",
        "--permission",
        "device",
        "--env",
        "other",
    ]);
    let imported = w.s.cli_json(&[
        "client",
        "create",
        "--env",
        "other",
        "--name",
        "dive-tv",
        "--client-id",
        &w.device.0,
        "--client-secret",
        &w.device.1,
        "--api",
        "rest=device",
        "--grant",
        "device_credentials",
    ]);
    assert_eq!(imported["client_id"], w.device.0.as_str());
    w.s.cli_ok(&[
        "user",
        "create",
        "--env",
        "other",
        "--client",
        &w.device.0,
        "--username",
        "device-1",
        "--password",
        PIN,
    ]);
    w.s.sync().await;
    let auth = basic_pair(&w.device.0, &w.device.1);
    let here = device_login(&w.s, "", &auth, "device-1").await;
    let there = device_login(&w.s, "/e/other", &auth, "device-1").await;
    for (prefix, token, what) in [
        (
            "/e/other",
            &here["refresh_token"],
            "default's token in other",
        ),
        ("", &there["refresh_token"], "other's token in default"),
    ] {
        assert_device_refused(
            device_refresh(&w.s, prefix, &auth, token.as_str().unwrap()).await,
            "invalid_grant",
            what,
        )
        .await;
    }
    for (prefix, token) in [
        ("", &here["refresh_token"]),
        ("/e/other", &there["refresh_token"]),
    ] {
        let r = device_refresh(&w.s, prefix, &auth, token.as_str().unwrap()).await;
        assert_eq!(r.status(), 200, "each works at home");
    }
}
