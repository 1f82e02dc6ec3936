//! Forward-auth (`/gate/check`, issue 12) served by `tollgate serve` with a
//! `[gate]` policy in its config file, asked the way nginx `auth_request`,
//! Traefik ForwardAuth and Envoy `ext_authz` ask: allowed (with identity
//! headers), no token, expired, wrong audience, insufficient permission,
//! revoked (at another instance, seen within 1 s), a rotated key; and
//! `tollgate gate check-policy`. Runs over SQLite, and over PostgreSQL with
//! `TG_TEST_STORE=postgres`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{BIN, Server, jwt_parts, send};

/// Every instance's issuer: a token revoked at one is recognised by another.
const ISSUER: &str = "http://gate.test";

const POLICY: &str = r#"
[gate]
headers = { subject = "X-User" }

[[gate.route]]
methods = ["GET"]
path = "/v2/odds/**"
audience = "odds"
permissions_any = ["odds:read"]

[[gate.route]]
path = "/v2/admin/**"
audience = "odds"
permissions_all = ["odds:admin"]

[[gate.route]]
path = "/short/**"
audience = "short"

[[gate.route]]
path = "/health"
public = true
"#;

/// A server with the policy above, APIs `odds` (`odds:read`, `odds:admin`),
/// `other` and `short` (1 s tokens), and a client holding `odds:read` and
/// both other APIs; returns it with the client's (id, secret).
fn setup() -> (Server, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(&config, format!("public_url = \"{ISSUER}\"\n{POLICY}")).unwrap();
    let s = Server::start_in(dir, &["--config", config.to_str().unwrap()], &[]);
    s.cli_ok(&[
        "api",
        "create",
        "odds",
        "--permission",
        "odds:read",
        "--permission",
        "odds:admin",
    ]);
    s.cli_ok(&["api", "create", "other", "--permission", "x"]);
    s.cli_ok(&[
        "api",
        "create",
        "short",
        "--permission",
        "s",
        "--token-lifetime",
        "1s",
    ]);
    let (id, secret) = s.client(&[
        "--name",
        "partner",
        "--api",
        "odds=odds:read",
        "--api",
        "other=x",
        "--api",
        "short=s",
    ]);
    (s, id, secret)
}

async fn token(s: &Server, id: &str, secret: &str, audience: &str) -> String {
    // The APIs were created by the CLI: the server learns them at a sync.
    s.sync().await;
    let r = s.token(id, secret, &[("audience", audience)]).await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// nginx `auth_request`: the subrequest is a GET of /gate/check carrying
/// the original method and URI in headers.
async fn nginx(s: &Server, method: &str, uri: &str, token: Option<&str>) -> reqwest::Response {
    let mut rb = s
        .get("/gate/check")
        .header("x-original-method", method)
        .header("x-original-uri", uri);
    if let Some(t) = token {
        rb = rb.header("authorization", format!("Bearer {t}"));
    }
    send(rb).await
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn forward_auth_answers_every_case_as_rfc_6750_says() {
    let (s, id, secret) = setup();
    let odds = token(&s, &id, &secret, "odds").await;

    // Allowed, with the identity headers (one renamed by the policy).
    let r = nginx(&s, "GET", "/v2/odds/17?market=1x2", Some(&odds)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-client-id").as_deref(), Some(id.as_str()));
    assert_eq!(header(&r, "x-user").as_deref(), Some(id.as_str()));
    assert_eq!(header(&r, "x-scopes").as_deref(), Some("odds:read"));

    // No token: 401 with a bare Bearer challenge.
    let r = nginx(&s, "GET", "/v2/odds/17", None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "www-authenticate").as_deref(), Some("Bearer"));

    // A bad token, and a token for another API: invalid_token.
    for t in ["not.a.token", &token(&s, &id, &secret, "other").await] {
        let r = nginx(&s, "GET", "/v2/odds/17", Some(t)).await;
        assert_eq!(r.status(), 401);
        assert!(
            header(&r, "www-authenticate")
                .unwrap()
                .starts_with("Bearer error=\"invalid_token\"")
        );
    }

    // Valid, but lacking a permission: 403 naming it.
    let r = nginx(&s, "POST", "/v2/admin/reset", Some(&odds)).await;
    assert_eq!(r.status(), 403);
    let challenge = header(&r, "www-authenticate").unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"odds:admin\""), "{challenge}");

    // No route (a method the route does not list, an unknown path): 403.
    assert_eq!(
        nginx(&s, "DELETE", "/v2/odds/17", Some(&odds))
            .await
            .status(),
        403
    );
    assert_eq!(nginx(&s, "GET", "/v3/x", Some(&odds)).await.status(), 403);
    // A path the upstream could resolve elsewhere: 403.
    assert_eq!(
        nginx(&s, "GET", "/v2/odds/../admin/x", Some(&odds))
            .await
            .status(),
        403
    );
    // Public: 200 with no identity.
    let r = nginx(&s, "GET", "/health", None).await;
    assert_eq!(r.status(), 200);
    // Empty identity headers: a proxy copying them overwrites a client's.
    assert_eq!(header(&r, "x-client-id").as_deref(), Some(""));

    // Traefik ForwardAuth: X-Forwarded-Method/-Uri/-Host.
    let r = send(
        s.get("/gate/check")
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-uri", "/v2/odds/1")
            .header("x-forwarded-host", "api.example")
            .header("authorization", format!("Bearer {odds}")),
    )
    .await;
    assert_eq!(r.status(), 200);
    // A client behind Traefik adding nginx's header to name a public route.
    let r = send(
        s.get("/gate/check")
            .header("x-forwarded-method", "POST")
            .header("x-forwarded-uri", "/v2/admin/reset")
            .header("x-original-method", "GET")
            .header("x-original-uri", "/health"),
    )
    .await;
    assert_eq!(r.status(), 403, "conflicting descriptions are refused");

    // Envoy ext_authz (HTTP): the original method, path after the prefix.
    let r = send(
        s.http
            .get(format!("{}/gate/check/v2/odds/1?x=1", s.url))
            .header("authorization", format!("Bearer {odds}")),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = send(
        s.post("/gate/check/v2/odds/1")
            .header("authorization", format!("Bearer {odds}")),
    )
    .await;
    assert_eq!(r.status(), 403, "POST is not a listed method");
    // The environment prefix works too.
    assert_eq!(
        send(
            s.get("/e/default/gate/check/v2/odds/1")
                .header("authorization", format!("Bearer {odds}"))
        )
        .await
        .status(),
        200
    );

    // Expired (the policy has no leeway): 401 invalid_token.
    let short = token(&s, &id, &secret, "short").await;
    assert_eq!(
        nginx(&s, "GET", "/short/a", Some(&short)).await.status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = nginx(&s, "GET", "/short/a", Some(&short)).await;
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").unwrap().contains("expired"));

    // One log line per decision with its outcome, never the token.
    let logs = s.logs();
    for outcome in [
        "allowed",
        "no_token",
        "wrong_audience",
        "insufficient_scope",
        "no_route",
        "expired",
        "public",
    ] {
        assert!(
            logs.contains(&format!("outcome=\"{outcome}\"")),
            "{outcome} not logged"
        );
    }
    assert!(!logs.contains(&odds), "a token in the logs");
}

#[tokio::test]
async fn a_revocation_at_another_instance_reaches_the_gate_within_a_second() {
    let (s, id, secret) = setup();
    let odds = token(&s, &id, &secret, "odds").await;
    // Decided once, so that an allow is cached.
    assert_eq!(
        nginx(&s, "GET", "/v2/odds/1", Some(&odds)).await.status(),
        200
    );
    let other = s.start_beside(&["--public-url", ISSUER], &[]);
    let r = other
        .form(
            "/oauth/revoke",
            &[
                ("client_id", &id),
                ("client_secret", &secret),
                ("token", &odds),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let revoked_at = Instant::now();
    loop {
        let r = nginx(&s, "GET", "/v2/odds/1", Some(&odds)).await;
        if r.status() == 401 {
            assert!(header(&r, "www-authenticate").unwrap().contains("revoked"));
            break;
        }
        assert_eq!(r.status(), 200);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "still allowed a second after the revocation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another token of the client still passes.
    let fresh = token(&s, &id, &secret, "odds").await;
    assert_eq!(
        nginx(&s, "GET", "/v2/odds/1", Some(&fresh)).await.status(),
        200
    );
}

#[tokio::test]
async fn tokens_of_a_rotated_key_pass() {
    let (s, id, secret) = setup();
    let before = token(&s, &id, &secret, "odds").await;
    assert_eq!(
        nginx(&s, "GET", "/v2/odds/1", Some(&before)).await.status(),
        200
    );
    // Keys order by the second they activate: rotate a second later.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.cli_ok(&["key", "rotate", "--publish-delay", "0s"]);
    s.sync().await;
    let after = token(&s, &id, &secret, "odds").await;
    assert_ne!(
        jwt_parts(&before).0["kid"],
        jwt_parts(&after).0["kid"],
        "the new key signs"
    );
    for t in [&before, &after] {
        assert_eq!(nginx(&s, "GET", "/v2/odds/1", Some(t)).await.status(), 200);
    }
}

#[tokio::test]
async fn only_the_path_chooses_the_environment() {
    let (s, _, _) = setup();
    s.cli_ok(&["env", "create", "stg", "--host", "stg.example"]);
    s.cli_ok(&[
        "api",
        "create",
        "odds",
        "--env",
        "stg",
        "--permission",
        "odds:read",
    ]);
    let (id, secret) = s.client(&["--env", "stg", "--name", "p", "--api", "odds=odds:read"]);
    s.sync().await;
    let r = s
        .form(
            "/e/stg/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("audience", "odds"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let stg: serde_json::Value = r.json().await.unwrap();
    let stg = stg["access_token"].as_str().unwrap();
    let ask = |path: &str| {
        s.get(path)
            .header("x-original-method", "GET")
            .header("x-original-uri", "/v2/odds/1")
            .header("authorization", format!("Bearer {stg}"))
    };
    // A staging token at the default environment's check, whatever host
    // headers a client adds: not this issuer's.
    for (name, value) in [("x-forwarded-host", "stg.example"), ("host", "stg.example")] {
        let r = send(ask("/gate/check").header(name, value)).await;
        assert_eq!(r.status(), 401, "{name} chose the environment");
    }
    // The proxy of the staging API names it in the path.
    assert_eq!(send(ask("/e/stg/gate/check")).await.status(), 200);
}

#[test]
fn check_policy_validates_offline_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, POLICY).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["gate", "check-policy"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 routes (1 public)"));
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        POLICY.replace("permissions_all = [\"odds:admin\"]", "permissions_all = []"),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["gate", "check-policy"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 14: permissions_all must not be empty"),
        "{err}"
    );
}

/// Waits (up to 10 s) until the check of GET `uri` answers `status`.
async fn until_status(s: &Server, uri: &str, token: &str, status: u16) -> Duration {
    let start = Instant::now();
    loop {
        let got = nginx(s, "GET", uri, Some(token)).await.status().as_u16();
        if got == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still {got}, not {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `tollgate_gate_policy_reloads_total{outcome}` as the server reports it.
async fn reloads(s: &Server, outcome: &str) -> u64 {
    let text = s.metrics().await;
    let prefix = format!("tollgate_gate_policy_reloads_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// The policy is reloaded while serving: an edit of the file is in force
/// within seconds (no restart); a file that does not validate is refused,
/// with its line in the log, and the previous policy stays; SIGHUP reloads
/// at once, even with no change.
#[tokio::test]
async fn the_policy_reloads_on_change_and_on_sighup_keeping_the_last_valid_one() {
    let (s, id, secret) = setup();
    let odds = token(&s, &id, &secret, "odds").await;
    let config = s.dir.path().join("tollgate.toml");
    assert_eq!(
        nginx(&s, "GET", "/v2/odds/1", Some(&odds)).await.status(),
        200
    );

    // Tightened: the odds route now needs odds:admin, which the client lacks.
    let stricter = POLICY.replacen(
        "permissions_any = [\"odds:read\"]",
        "permissions_any = [\"odds:admin\"]",
        1,
    );
    assert_ne!(stricter, POLICY);
    std::fs::write(&config, format!("public_url = \"{ISSUER}\"\n{stricter}")).unwrap();
    let took = until_status(&s, "/v2/odds/1", &odds, 403).await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(reloads(&s, "ok").await, 1);

    // A typo: refused, the stricter policy stays.
    let broken = format!(
        "public_url = \"{ISSUER}\"\n{stricter}\n[[gate.route]]\npath = \"/x\"\npublic = \"yes\"\n"
    );
    std::fs::write(&config, broken).unwrap();
    let start = Instant::now();
    while reloads(&s, "invalid").await < 1 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no reload attempt"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        nginx(&s, "GET", "/v2/odds/1", Some(&odds)).await.status(),
        403
    );
    let logs = s.logs();
    assert!(
        logs.contains("gate policy not reloaded") && logs.contains("line"),
        "{logs}"
    );

    // SIGHUP forces a reload of the unchanged file: counted again.
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let start = Instant::now();
    while reloads(&s, "invalid").await < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "SIGHUP not handled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Fixed: the original policy is back in force.
    std::fs::write(&config, format!("public_url = \"{ISSUER}\"\n{POLICY}")).unwrap();
    until_status(&s, "/v2/odds/1", &odds, 200).await;
    assert_eq!(reloads(&s, "ok").await, 2);
}

/// A disabled client's unexpired tokens stop passing the gate within a
/// second, as they stop at introspection; enabled again, they pass again.
#[tokio::test]
async fn a_disabled_clients_tokens_are_refused_within_a_second() {
    let (s, id, secret) = setup();
    let odds = token(&s, &id, &secret, "odds").await;
    assert_eq!(
        nginx(&s, "GET", "/v2/odds/1", Some(&odds)).await.status(),
        200
    );
    s.cli_ok(&["client", "disable", &id]);
    let disabled_at = Instant::now();
    loop {
        let r = nginx(&s, "GET", "/v2/odds/1", Some(&odds)).await;
        if r.status() == 401 {
            let challenge = header(&r, "www-authenticate").unwrap();
            assert!(challenge.contains("client is disabled"), "{challenge}");
            break;
        }
        assert_eq!(r.status(), 200);
        assert!(
            disabled_at.elapsed() < Duration::from_secs(1),
            "still allowed after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.cli_ok(&["client", "enable", &id]);
    until_status(&s, "/v2/odds/1", &odds, 200).await;
}
