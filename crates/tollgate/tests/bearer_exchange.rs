//! The bearer-exchange contract (Cloudbet's refresh-JWT exchange) against
//! the running server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Server, jwt_parts, send, verify_with_jwks};
use serde_json::Value;

const PATH: &str = "/pub/v2/players/access-token";

/// A server with the contract on, a client, and a refresh JWT for it.
/// Returns (server, client id, client secret, refresh JWT).
fn setup_with_secret() -> (Server, String, String, String) {
    let s = Server::start_with(&["--contracts", "all"], &[]);
    s.cli_ok(&["api", "create", "odds", "--permission", "odds:read"]);
    let (id, secret) = s.client(&["--name", "player", "--api", "odds=odds:read"]);
    let issued = s.cli_json(&["refresh-jwt", "issue", "--client", &id]);
    let refresh = issued["refresh_jwt"].as_str().unwrap().to_string();
    (s, id, secret, refresh)
}

fn setup() -> (Server, String, String) {
    let (s, id, _, refresh) = setup_with_secret();
    (s, id, refresh)
}

async fn exchange(s: &Server, auth: Option<&str>) -> reqwest::Response {
    let mut rb = s.post(PATH);
    if let Some(a) = auth {
        rb = rb.header("authorization", a);
    }
    send(rb).await
}

async fn assert_refused(r: reqwest::Response, what: &str) {
    assert_eq!(r.status(), 401, "{what}");
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\"",
        "{what}"
    );
    let body: Value = r.json().await.unwrap();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        vec!["error", "error_description"],
        "{what}: one shape for every failure"
    );
    assert_eq!(body["error"], "invalid_token", "{what}");
}

#[tokio::test]
async fn exchange_answers_token_and_expire_at() {
    let (s, id, secret, refresh) = setup_with_secret();
    s.sync().await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // With Accept (curl, Go samples) and without (Python, JavaScript), any case of "Bearer".
    for (scheme, accept) in [("Bearer", true), ("bearer", false), ("BEARER", false)] {
        let mut rb = s
            .post(PATH)
            .header("authorization", format!("{scheme} {refresh}"));
        if accept {
            rb = rb.header("accept", "application/json");
        }
        let r = send(rb).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let body: Value = r.json().await.unwrap();
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(keys, vec!["expireAt", "token"]);
        let token = body["token"].as_str().unwrap();
        let claims = jwt_parts(token).1;
        assert_eq!(claims["client_id"], id.as_str());
        assert_eq!(claims["aud"], "odds");
        let exp = claims["exp"].as_i64().unwrap();
        assert!((exp - before - 86_400).abs() <= 5, "one day");
        assert_eq!(body["expireAt"], tollgate_core_rfc3339(exp).as_str());
        // Accepted like any other tollgate token.
        verify_with_jwks(
            &s.http,
            &format!("{}/.well-known/jwks.json", s.url),
            token,
            &s.url,
            "odds",
        )
        .await;
        let r = s
            .form(
                "/oauth/introspect",
                &[
                    ("client_id", &id),
                    ("client_secret", &secret),
                    ("token", token),
                ],
            )
            .await;
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["active"], true, "introspection accepts it");
        assert_eq!(v["client_id"], id.as_str());
    }
}

/// RFC 3339 as tollgate writes it (`YYYY-MM-DDTHH:MM:SSZ`), computed here with
/// the system `date` so the test does not reuse the code it checks.
fn tollgate_core_rfc3339(unix: i64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{unix}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn every_failure_is_one_shape() {
    let (s, id, refresh) = setup();
    s.sync().await;
    assert_refused(exchange(&s, None).await, "missing").await;
    assert_refused(exchange(&s, Some("Bearer")).await, "empty").await;
    assert_refused(exchange(&s, Some("Bearer not.a.jwt")).await, "malformed").await;
    assert_refused(
        exchange(&s, Some(&format!("Basic {refresh}"))).await,
        "wrong scheme",
    )
    .await;
    // Tampered: last signature character changed.
    let mut forged = refresh.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_refused(
        exchange(&s, Some(&format!("Bearer {forged}"))).await,
        "tampered",
    )
    .await;
    // An access token is not a refresh JWT.
    let (cid, secret) = s.client(&["--name", "other", "--api", "odds"]);
    s.sync().await;
    let access: Value = s.token(&cid, &secret, &[]).await.json().await.unwrap();
    let access = access["access_token"].as_str().unwrap();
    assert_refused(
        exchange(&s, Some(&format!("Bearer {access}"))).await,
        "access token",
    )
    .await;
    // Another server's refresh JWT (foreign signature).
    let (other, _, foreign) = setup();
    drop(other);
    assert_refused(
        exchange(&s, Some(&format!("Bearer {foreign}"))).await,
        "foreign",
    )
    .await;
    // GET is 405.
    let r = send(
        s.get(PATH)
            .header("authorization", format!("Bearer {refresh}")),
    )
    .await;
    assert_eq!(r.status(), 405);

    // Revoked.
    let listed = s.cli_json(&["refresh-jwt", "list"]);
    let jti = listed[0]["jti"].as_str().unwrap().to_string();
    assert_eq!(
        exchange(&s, Some(&format!("Bearer {refresh}")))
            .await
            .status(),
        200
    );
    s.cli_ok(&["refresh-jwt", "revoke", &jti]);
    // Like every CLI change, it reaches the server at its next sync (≤ 250 ms).
    s.sync().await;
    assert_refused(
        exchange(&s, Some(&format!("Bearer {refresh}"))).await,
        "revoked",
    )
    .await;
    assert!(s.cli_json(&["refresh-jwt", "list"])[0]["revoked_at"].is_string());

    // The client disabled.
    let second = s.cli_json(&["refresh-jwt", "issue", "--client", &id])["refresh_jwt"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        exchange(&s, Some(&format!("Bearer {second}")))
            .await
            .status(),
        200
    );
    s.cli_ok(&["client", "disable", &id]);
    s.sync().await;
    assert_refused(
        exchange(&s, Some(&format!("Bearer {second}"))).await,
        "client disabled",
    )
    .await;

    // Expired.
    s.cli_ok(&["client", "enable", &id]);
    let short =
        s.cli_json(&["refresh-jwt", "issue", "--client", &id, "--ttl", "1s"])["refresh_jwt"]
            .as_str()
            .unwrap()
            .to_string();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_refused(
        exchange(&s, Some(&format!("Bearer {short}"))).await,
        "expired",
    )
    .await;
    // No refresh JWT, nor any token, in the logs or at rest.
    let logs = s.logs();
    let data = s.data_at_rest();
    for t in [&refresh, &second] {
        let sig = t.rsplit('.').next().unwrap();
        assert!(!logs.contains(sig));
        assert!(!data.windows(sig.len()).any(|w| w == sig.as_bytes()));
    }
}

#[tokio::test]
async fn off_unless_enabled() {
    let s = Server::start();
    let r = send(s.post(PATH).header("authorization", "Bearer x")).await;
    assert_eq!(r.status(), 404);
    let out = s.cli(&["serve", "--contracts", "nope", "--print-config"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown contract 'nope'"));
}
