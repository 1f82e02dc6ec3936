//! Input bounds over the real server: the parameter cap on query strings and
//! bodies, duplicate JSON keys, and Basic credentials read literally
//! (RFC 7617) by the header login.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::login::{assert_not_authenticated, basic, pair_of};
use common::{Server, jwt_parts, md5_hex, send};
use serde_json::Value;

/// The server's cap on parameters per body or query string.
const MAX_PARAMS: usize = 64;
const API: &str = "bounds-api";

/// A server with every contract on, an API, a confidential client for the
/// token endpoint and a public one with a user for the device contract.
/// Returns (server, client id, secret, device key).
fn setup() -> (Server, String, String, String) {
    let s = Server::start_with(&["--contracts", "all"], &[]);
    s.cli_ok(&["api", "create", API, "--permission", "read"]);
    let (id, secret) = s.client(&["--name", "confidential", "--api", &format!("{API}=read")]);
    let key = s.public_client(&[
        "--name",
        "device",
        "--api",
        &format!("{API}=read"),
        "--grant",
        "device_credentials",
    ]);
    s.user(&key, "123456", "pin");
    (s, id, secret, key)
}

/// `n` extra parameters `x0=1`, `x1=1`, …
fn extras(n: usize) -> Vec<(String, String)> {
    (0..n).map(|i| (format!("x{i}"), "1".to_string())).collect()
}

/// `n` distinct parameters as a query string, three characters each
/// (`aaa&aab&…`): ten thousand fit in the 64 KiB a URI may have.
fn extra_query(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let base = ALPHABET.len();
    (0..n)
        .map(|i| {
            [i / (base * base), i / base, i]
                .iter()
                .map(|d| char::from(ALPHABET[d % base]))
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// An RFC 6749 §5.2 error body: exactly `error` and `error_description`.
async fn oauth_error(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = r.json().await.unwrap();
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, vec!["error", "error_description"], "{body}");
    (status, body)
}

#[tokio::test]
async fn ten_thousand_query_parameters_get_a_400_in_rfc6749_json() {
    let (s, _, _, key) = setup();
    s.sync().await;
    let login = |query: String| {
        send(
            s.post(&format!("/v1/token?grant_type=device_credentials&{query}"))
                .header("authorization", basic(&key, ""))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("username=123456&password={}", md5_hex("pin"))),
        )
    };
    let (status, body) = oauth_error(login(extra_query(10_000)).await).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(body["error_description"], "more than 64 parameters");
    // Up to the cap (grant_type and the extras) the same login is served.
    let r = login(extra_query(MAX_PARAMS - 1)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn token_bodies_over_the_cap_get_invalid_request() {
    let (s, id, secret, _) = setup();
    s.sync().await;
    let base = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("audience", API),
    ];
    // `extra` more parameters beside the four a token request needs.
    let request = |extra: usize, as_json: bool| {
        let mut pairs: Vec<(String, String)> = base
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        pairs.extend(extras(extra));
        let rb = s.post("/oauth/token");
        send(if as_json {
            let object: serde_json::Map<String, Value> = pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            rb.json(&object)
        } else {
            rb.form(&pairs)
        })
    };
    for as_json in [false, true] {
        let r = request(MAX_PARAMS - base.len(), as_json).await;
        assert_eq!(r.status(), 200, "at the cap, json: {as_json}");
        let (status, body) = oauth_error(request(MAX_PARAMS - base.len() + 1, as_json).await).await;
        assert_eq!(status, 400, "json: {as_json}");
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(body["error_description"], "more than 64 parameters");
    }
}

#[tokio::test]
async fn duplicate_client_id_in_json_is_refused_not_last_wins() {
    let (s, id, _, _) = setup();
    let (other, other_secret) = s.client(&["--name", "other", "--api", &format!("{API}=read")]);
    s.sync().await;
    // Built by hand: no JSON map type keeps a repeated key.
    let body = format!(
        r#"{{"grant_type":"client_credentials","audience":"{API}","client_id":"{id}","client_id":"{other}","client_secret":"{other_secret}"}}"#
    );
    let r = send(
        s.post("/oauth/token")
            .header("content-type", "application/json")
            .body(body),
    )
    .await;
    let (status, body) = oauth_error(r).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(
        body["error_description"],
        "parameter 'client_id' is given more than once"
    );
    // The same body without the repeat authenticates as the other client:
    // the refusal above is about the repeat alone.
    let r = send(s.post("/oauth/token").json(&serde_json::json!({
        "grant_type": "client_credentials",
        "audience": API,
        "client_id": other,
        "client_secret": other_secret,
    })))
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn header_login_reads_basic_credentials_literally() {
    const ALICE: &str = "alice@example.com";
    const PASSWORD: &str = "p%41ss word";
    let s = Server::start_with(&["--contracts", "all"], &[]);
    s.cli_ok(&["api", "create", "tradecloud", "--permission", "orders:read"]);
    let id = s.public_client(&[
        "--name",
        "tradecloud-web",
        "--api",
        "tradecloud=orders:read",
        "--grant",
        "password",
    ]);
    s.user(&id, ALICE, PASSWORD);
    s.sync().await;
    let login = |user: &str, password: &str| {
        send(
            s.get("/v2/authentication/login")
                .header("authorization", basic(user, password)),
        )
    };
    // The password exactly as the user typed it, `%41` included.
    let r = login(ALICE, PASSWORD).await;
    let (access, _) = pair_of(&r);
    assert_eq!(jwt_parts(&access).1["sub"], ALICE);
    // Escapes are not decoded: neither in the e-mail address nor, as the
    // old workaround had it, in the password.
    for (what, user, password) in [
        ("escaped e-mail", "alice%40example.com", PASSWORD),
        ("escaped password", ALICE, "p%2541ss%20word"),
        ("decoded password", ALICE, "pAss word"),
    ] {
        assert_not_authenticated(login(user, password).await, what).await;
    }
}
