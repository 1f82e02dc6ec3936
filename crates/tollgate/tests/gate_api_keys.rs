//! API keys at the gate (issue 12): `tollgate api-key create|list|revoke|
//! rotate` through the real CLI, and `/gate/check` asked the way nginx
//! `auth_request` asks, with `X-API-Key`: accepted on a route with
//! `api_keys = true` and refused on one without, a wrong key, both a key and
//! a token, revoked (seen within 1 s), expired, rotated with a grace, a
//! disabled client, the header renamed and calls counted per environment;
//! the key never in the logs, the listing or the store. Runs over SQLite,
//! and over PostgreSQL with `TG_TEST_STORE=postgres`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Server, send};

const POLICY: &str = r#"
[gate]

[[gate.route]]
methods = ["GET"]
path = "/v2/odds/**"
audience = "odds"
permissions_any = ["odds:read"]
api_keys = true

[[gate.route]]
path = "/v2/admin/**"
audience = "odds"
permissions_all = ["odds:admin"]
api_keys = true

[[gate.route]]
path = "/v2/tokens-only/**"
audience = "odds"
"#;

/// A server with the policy above, API `odds` (`odds:read`, `odds:admin`)
/// and a client holding `odds:read`; returns it with the client's id and
/// secret.
fn setup() -> (Server, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        format!("public_url = \"http://gate.test\"\n{POLICY}"),
    )
    .unwrap();
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
    let (id, secret) = s.client(&["--name", "partner", "--api", "odds=odds:read"]);
    (s, id, secret)
}

/// `api-key create` (JSON): the key and its `tgk_<id>`.
fn create(s: &Server, args: &[&str]) -> (String, String) {
    let mut full = vec!["api-key", "create"];
    full.extend_from_slice(args);
    let v = s.cli_json(&full);
    (
        v["api_key"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

/// nginx `auth_request`'s check of `GET uri` with these extra headers.
async fn check(s: &Server, uri: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut rb = s
        .get("/gate/check")
        .header("x-original-method", "GET")
        .header("x-original-uri", uri);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    send(rb).await
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

/// Asks with `key` until the answer is not 200, at most a second after
/// `since`; returns the refusal.
async fn refused_within_a_second(s: &Server, key: &str, since: Instant) -> reqwest::Response {
    loop {
        let r = check(s, "/v2/odds/1", &[("x-api-key", key)]).await;
        if r.status() != 200 {
            return r;
        }
        assert!(
            since.elapsed() < Duration::from_secs(1),
            "still allowed a second after the change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_key_passes_where_the_route_takes_keys_and_is_never_shown_again() {
    let (s, id, secret) = setup();
    let (key, key_id) = create(&s, &["--client", &id, "--name", "odds feed"]);
    assert!(key.starts_with(&format!("{key_id}_")), "{key} {key_id}");
    assert!(key_id.starts_with("tgk_"));
    s.sync().await;

    // Accepted, the identity being the client's.
    let r = check(&s, "/v2/odds/17", &[("x-api-key", &key)]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-client-id").as_deref(), Some(id.as_str()));
    assert_eq!(header(&r, "x-subject").as_deref(), Some(id.as_str()));
    assert_eq!(header(&r, "x-scopes").as_deref(), Some("odds:read"));
    // Header names compare without case.
    let r = check(&s, "/v2/odds/17", &[("X-Api-KEY", &key)]).await;
    assert_eq!(r.status(), 200);

    // A route without api_keys: as if no credential was sent.
    let r = check(&s, "/v2/tokens-only/1", &[("x-api-key", &key)]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "www-authenticate").as_deref(), Some("Bearer"));
    // The client's permissions apply.
    let r = check(&s, "/v2/admin/reset", &[("x-api-key", &key)]).await;
    assert_eq!(r.status(), 403);
    assert!(
        header(&r, "www-authenticate")
            .unwrap()
            .contains("scope=\"odds:admin\"")
    );
    // A wrong key (the right id, another secret); not a key at all.
    let wrong = format!("{key_id}_{}", "A".repeat(43));
    for bad in [wrong.as_str(), "hunter2"] {
        let r = check(&s, "/v2/odds/1", &[("x-api-key", bad)]).await;
        assert_eq!(r.status(), 401, "{bad}");
        let challenge = header(&r, "www-authenticate").unwrap();
        assert!(
            challenge.starts_with("ApiKey error=\"invalid_api_key\""),
            "{challenge}"
        );
    }
    // Nothing at all: 401 as for tokens.
    let r = check(&s, "/v2/odds/1", &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "www-authenticate").as_deref(), Some("Bearer"));
    // A key and a token together: which one the upstream reads is unknown.
    let t = s
        .token(&id, &secret, &[("audience", "odds")])
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", t["access_token"].as_str().unwrap());
    let r = check(
        &s,
        "/v2/odds/1",
        &[("x-api-key", &key), ("authorization", &bearer)],
    )
    .await;
    assert_eq!(r.status(), 401);
    let r = check(&s, "/v2/odds/1", &[("authorization", &bearer)]).await;
    assert_eq!(r.status(), 200, "the token alone still passes");
    // The header twice.
    let r = send(
        s.get("/gate/check")
            .header("x-original-method", "GET")
            .header("x-original-uri", "/v2/odds/1")
            .header("x-api-key", &key)
            .header("x-api-key", &key),
    )
    .await;
    assert_eq!(r.status(), 401);

    // The listing never shows the key; neither do the logs or the store.
    let listed = s.cli_ok(&["api-key", "list", "--client", &id]);
    assert!(listed.contains(&key_id), "{listed}");
    assert!(listed.contains("odds feed"), "{listed}");
    let json = s.cli_json(&["api-key", "list"]);
    assert_eq!(json[0]["id"], key_id.as_str());
    assert_eq!(json[0]["status"], "active");
    let secret_part = &key[key_id.len() + 1..];
    let at_rest = String::from_utf8_lossy(&s.data_at_rest()).into_owned();
    assert!(at_rest.contains(&key_id[4..]), "the key's row is stored");
    for (what, text) in [
        ("the listing", format!("{listed}{json}")),
        ("the logs", s.logs()),
        ("the store", at_rest),
    ] {
        assert!(!text.contains(secret_part), "the key in {what}");
    }
    let logs = s.logs();
    for outcome in [
        "allowed",
        "api_key_invalid",
        "api_key_ambiguous",
        "no_token",
    ] {
        assert!(
            logs.contains(&format!("outcome=\"{outcome}\"")),
            "{outcome} not logged"
        );
    }
}

#[tokio::test]
async fn a_revocation_reaches_the_gate_within_a_second() {
    let (s, id, _) = setup();
    let (key, key_id) = create(&s, &["--client", &id]);
    s.sync().await;
    assert_eq!(
        check(&s, "/v2/odds/1", &[("x-api-key", &key)])
            .await
            .status(),
        200
    );
    // Revoked by the whole key, as found leaked (another process: the CLI).
    let out = s.cli_ok(&["api-key", "revoke", &key]);
    assert!(out.contains(&key_id), "{out}");
    assert!(!out.contains(&key[key_id.len() + 1..]), "{out}");
    let r = refused_within_a_second(&s, &key, Instant::now()).await;
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").unwrap().contains("revoked"));
    let json = s.cli_json(&["api-key", "list"]);
    assert_eq!(json[0]["status"], "revoked");
    // Once only.
    assert!(!s.cli(&["api-key", "revoke", &key_id]).status.success());
}

#[tokio::test]
async fn expired_keys_and_a_rotations_grace() {
    let (s, id, _) = setup();
    let (short, _) = create(&s, &["--client", &id, "--expires", "1s"]);
    let (old, old_id) = create(&s, &["--client", &id, "--name", "ci"]);
    s.sync().await;

    // Rotated with a grace: both work, then only the new one. (A grace of
    // 4 s, counted in whole seconds: at least 3 s for the checks below,
    // over by 5 s.)
    let v = s.cli_json(&["api-key", "rotate", &old_id, "--grace", "4s"]);
    let rotated = Instant::now();
    let new = v["api_key"].as_str().unwrap().to_string();
    assert_eq!(v["name"], "ci");
    assert_eq!(v["replaces"]["id"], old_id.as_str());
    for k in [&old, &new] {
        assert_eq!(
            check(&s, "/v2/odds/1", &[("x-api-key", k)]).await.status(),
            200
        );
    }
    // The short key (1 s, whole seconds) has expired 2 s after it was made.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = check(&s, "/v2/odds/1", &[("x-api-key", &short)]).await;
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").unwrap().contains("expired"));
    while rotated.elapsed() < Duration::from_millis(5100) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = check(&s, "/v2/odds/1", &[("x-api-key", &old)]).await;
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").unwrap().contains("expired"));
    assert_eq!(
        check(&s, "/v2/odds/1", &[("x-api-key", &new)])
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_disabled_clients_key_is_refused() {
    let (s, id, _) = setup();
    let (key, _) = create(&s, &["--client", &id]);
    s.sync().await;
    assert_eq!(
        check(&s, "/v2/odds/1", &[("x-api-key", &key)])
            .await
            .status(),
        200
    );
    s.cli_ok(&["client", "disable", &id]);
    let r = refused_within_a_second(&s, &key, Instant::now()).await;
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").unwrap().contains("disabled"));
    s.cli_ok(&["client", "enable", &id]);
    s.sync().await;
    assert_eq!(
        check(&s, "/v2/odds/1", &[("x-api-key", &key)])
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn the_header_and_the_counting_are_settings_of_the_environment() {
    let (s, id, _) = setup();
    let (key, _) = create(&s, &["--client", &id]);
    s.cli_ok(&["client", "set-obligation", &id, "limit:2/1h"]);
    s.cli_ok(&[
        "env",
        "update",
        "default",
        "--set",
        "gate_api_key_header=X-Partner-Key",
        "--set",
        "gate_api_key_limit=on",
    ]);
    s.sync().await;
    // The old name means nothing now.
    let r = check(&s, "/v2/odds/1", &[("x-api-key", &key)]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "www-authenticate").as_deref(), Some("Bearer"));
    // Two calls pass, the third is past the limit.
    for _ in 0..2 {
        let r = check(&s, "/v2/odds/1", &[("x-partner-key", &key)]).await;
        assert_eq!(r.status(), 200);
    }
    let r = check(&s, "/v2/odds/1", &[("x-partner-key", &key)]).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "x-ratelimit-limit").as_deref(), Some("2"));
    assert_eq!(header(&r, "x-ratelimit-remaining").as_deref(), Some("0"));
    assert!(header(&r, "retry-after").is_some());
    // A header the gate reads for something else is refused as a setting.
    let out = s.cli(&[
        "env",
        "update",
        "default",
        "--set",
        "gate_api_key_header=Authorization",
    ]);
    assert!(!out.status.success());
}
