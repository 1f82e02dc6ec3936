//! The header-login contract (Tradecloud) against the running server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::login::{
    EMAIL, PASSWORD, assert_not_authenticated, basic, login, pair_of, refresh, setup,
};
use common::{md5_hex, send, verify_with_jwks};

#[tokio::test]
async fn login_returns_the_pair_in_headers_browsers_can_read() {
    let s = setup(&[]);
    s.sync().await;
    for path in ["/v2/authentication/login", "/v2/authentication/_login"] {
        let r = login(&s, path).await;
        assert_eq!(r.status(), 200, "{path}");
        let expose = r.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(expose.contains("set-authorization") && expose.contains("set-refresh-token"));
        assert_eq!(r.headers()["cache-control"], "no-store");
        let (access, refresh) = pair_of(&r);
        assert_ne!(access, refresh);
        let claims = verify_with_jwks(
            &s.http,
            &format!("{}/.well-known/jwks.json", s.url),
            &access,
            &s.url,
            "tradecloud",
        )
        .await;
        assert_eq!(claims["sub"], EMAIL);
        assert_eq!(claims["scope"], "orders:read");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            600,
            "10 minutes"
        );
        // The access token is accepted by the API like any other (here: used
        // on /refresh, which answers 200 without a new pair while it is valid).
        let r = send(
            s.get("/v2/authentication/refresh")
                .header("authorization", format!("bearer {access}"))
                .header("refresh-token", &refresh),
        )
        .await;
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("set-authorization").is_none());
        assert!(r.headers().get("set-refresh-token").is_none());
    }
}

#[tokio::test]
async fn wrong_credentials_get_401_not_authenticated() {
    let s = setup(&[]);
    s.sync().await;
    for (what, auth) in [
        ("wrong password", Some(basic(EMAIL, "wrong"))),
        ("unknown user", Some(basic("nobody@example.com", PASSWORD))),
        (
            "md5 of the password instead of the password",
            Some(basic(EMAIL, &md5_hex(PASSWORD))),
        ),
        ("bearer instead of basic", Some("Bearer abc".to_string())),
        ("no header", None),
    ] {
        let mut rb = s.get("/v2/authentication/login");
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        assert_not_authenticated(send(rb).await, what).await;
    }
    s.cli_ok(&["user", "disable", EMAIL]);
    s.sync().await;
    assert_not_authenticated(login(&s, "/v2/authentication/login").await, "disabled").await;
    // POST is not how this contract logs in.
    let r = send(
        s.post("/v2/authentication/login")
            .header("authorization", basic(EMAIL, PASSWORD)),
    )
    .await;
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_dies() {
    // No retry leeway: a second use of a rotated token is reuse at once.
    let s = setup(&[("TOLLGATE_REFRESH_RETRY_LEEWAY", "0s")]);
    s.sync().await;
    let (_, r1) = pair_of(&login(&s, "/v2/authentication/login").await);
    let r = send(
        s.get("/v2/authentication/_refresh")
            .header("refresh-token", &r1),
    )
    .await;
    let (a2, r2) = pair_of(&r);
    assert_ne!(r2, r1);
    assert!(!a2.is_empty());
    // The old one is dead, and presenting it revoked the family.
    assert_not_authenticated(refresh(&s, &r1).await, "rotated token").await;
    assert_not_authenticated(refresh(&s, &r2).await, "family revoked after reuse").await;
    // Unknown and garbage tokens.
    assert_not_authenticated(refresh(&s, "garbage").await, "garbage").await;
    assert_not_authenticated(
        send(s.get("/v2/authentication/refresh")).await,
        "no refresh token",
    )
    .await;
}

#[tokio::test]
async fn access_token_in_authorization_decides_first() {
    let s = setup(&[("TOLLGATE_HEADER_LOGIN_ACCESS_LIFETIME", "1s")]);
    s.sync().await;
    let (access, refresh_token) = pair_of(&login(&s, "/v2/authentication/login").await);
    // Corrupted access token: 401 even with a valid refresh token.
    let mut corrupted = access.clone();
    corrupted.pop();
    corrupted.push(if access.ends_with('A') { 'B' } else { 'A' });
    for bad in [corrupted.as_str(), "not-a-jwt"] {
        let r = send(
            s.get("/v2/authentication/refresh")
                .header("authorization", format!("Bearer {bad}"))
                .header("refresh-token", &refresh_token),
        )
        .await;
        assert_not_authenticated(r, "corrupted access token").await;
    }
    // Genuine but expired: the refresh goes ahead.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = send(
        s.get("/v2/authentication/refresh")
            .header("authorization", format!("Bearer {access}"))
            .header("refresh-token", &refresh_token),
    )
    .await;
    let (a2, r2) = pair_of(&r);
    assert_ne!(a2, access);
    assert_ne!(r2, refresh_token);
}

#[tokio::test]
async fn logout_ends_the_session_and_expired_refresh_tokens_fail() {
    let s = setup(&[("TOLLGATE_HEADER_LOGIN_REFRESH_LIFETIME", "1s")]);
    s.sync().await;
    let (_, r1) = pair_of(&login(&s, "/v2/authentication/login").await);
    let r = send(
        s.post("/v2/authentication/logout")
            .header("refresh-token", &r1),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_not_authenticated(refresh(&s, &r1).await, "logged out").await;
    let (_, r2) = pair_of(&login(&s, "/v2/authentication/login").await);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_not_authenticated(refresh(&s, &r2).await, "expired").await;
}

#[tokio::test]
async fn contracts_are_enabled_per_environment_at_configurable_paths() {
    let s = common::Server::start_with(&[], &[("TOLLGATE_HEADER_LOGIN_PATH", "/auth/")]);
    s.cli_ok(&["env", "create", "stg", "--contracts", "header-login"]);
    s.cli_ok(&["api", "create", "tc", "--env", "stg"]);
    let id = s.public_client(&[
        "--env", "stg", "--name", "web", "--api", "tc", "--grant", "password",
    ]);
    s.cli_ok(&[
        "user",
        "create",
        "--env",
        "stg",
        "--client",
        &id,
        "--username",
        EMAIL,
        "--password",
        PASSWORD,
    ]);
    s.sync().await;
    let auth = basic(EMAIL, PASSWORD);
    // Off in the default environment (no --contracts), on in stg, at the configured prefix.
    let r = send(s.get("/auth/login").header("authorization", &auth)).await;
    assert_eq!(r.status(), 404);
    let r = send(s.get("/e/stg/auth/login").header("authorization", &auth)).await;
    pair_of(&r);
    let r = send(
        s.get("/e/stg/v2/authentication/login")
            .header("authorization", &auth),
    )
    .await;
    assert_eq!(
        r.status(),
        404,
        "the default path is not mounted when configured away"
    );
    // Switched off again, live.
    let out = s.cli_json(&["env", "update", "stg", "--contracts", "none"]);
    assert_eq!(out["contracts"], serde_json::json!([]));
    s.sync().await;
    let r = send(s.get("/e/stg/auth/login").header("authorization", &auth)).await;
    assert_eq!(r.status(), 404);
    // Unknown contract names are refused.
    let out = s.cli(&["env", "update", "stg", "--contracts", "telepathy"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown contract"));
}

#[test]
fn colliding_contract_paths_stop_start_up_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("TOLLGATE_MASTER_KEY")
        .env("TOLLGATE_DEVICE_CREDENTIALS_PATH", "/oauth/token")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/oauth/token"), "{err}");
}

#[tokio::test]
async fn the_claim_shape_is_configurable() {
    let s = setup(&[("TOLLGATE_HEADER_LOGIN_CLAIMS", "spring")]);
    s.sync().await;
    let (access, _) = pair_of(&login(&s, "/v2/authentication/login").await);
    let claims = common::jwt_parts(&access).1;
    assert_eq!(claims["scope"], serde_json::json!(["orders:read"]));
    assert_eq!(claims["authorities"], serde_json::json!(["orders:read"]));
    assert_eq!(claims["aud"], serde_json::json!(["tradecloud"]));
    assert_eq!(claims["user_name"], EMAIL);
    assert_eq!(claims["grant_type"], "password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_logins_at_a_cold_cache_runs_argon2_once() {
    let s = setup(&[]);
    s.sync().await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let rb = s
                .get("/v2/authentication/login")
                .header("authorization", basic(EMAIL, PASSWORD));
            tokio::spawn(async move { rb.send().await.unwrap().status().as_u16() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let metrics = s.metrics().await;
    let computed: u64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("tollgate_argon2_verifications_total{cache=\"password_verification\"}")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no argon2 counter in:\n{metrics}"));
    // One shared computation; a request that looked at the cache just before
    // it was filled and joined just after the flight ended may run a second.
    assert!(
        (1..=2).contains(&computed),
        "{computed} argon2 runs for 16 logins"
    );
}
