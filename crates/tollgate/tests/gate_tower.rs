//! The tower layer (`tollgate-tower`, issue 12) in an axum app, verifying
//! tokens of a real `tollgate serve` through its metadata and JWKS: allowed
//! with the claims in the request's extensions, no token, wrong audience,
//! insufficient permission, expired, a rotated key picked up without a
//! restart, a revocation learnt by polling the deny list; and the deny-list
//! endpoint itself (`GET /gate/deny-list`). Runs over SQLite, and over
//! PostgreSQL with `TG_TEST_STORE=postgres`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::{Server, jwt_parts, send};
use tollgate_gate::{Policy, RemoteOptions};
use tollgate_tower::{Claims, TollgateLayer};

const POLICY: &str = r#"
[gate]
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

struct World {
    s: Server,
    id: String,
    secret: String,
    /// A client with the introspect capability (reads the deny list).
    gw: (String, String),
    /// The app behind the layer.
    app: String,
    layer: TollgateLayer,
}

/// A server with APIs `odds` (`odds:read`, `odds:admin`), `other` and
/// `short` (1 s tokens), a client holding `odds:read` and both other APIs,
/// a gateway client with `--introspect`; and an axum app behind the layer
/// (policy above), polling the deny list every 100 ms.
async fn setup() -> World {
    let s = Server::start();
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
    let gw = s.client(&["--name", "gateway", "--introspect"]);
    s.sync().await;
    let layer = TollgateLayer::builder(s.url.clone())
        .policy(Policy::parse(POLICY).unwrap())
        .remote_options(RemoteOptions {
            // Short, so the test need not wait 10 s for a rotated key.
            refetch_gap: Duration::from_millis(500),
            ..RemoteOptions::default()
        })
        .deny_list(
            gw.0.clone(),
            gw.1.clone().into(),
            Duration::from_millis(100),
        )
        .build()
        .await
        .unwrap();
    let who = |claims: Claims| async move {
        axum::Json(serde_json::json!({
            "sub": claims.sub,
            "client_id": claims.client_id,
            "jti": claims.jti,
            "scope": claims.scope,
        }))
    };
    let router = Router::new()
        .route("/v2/odds/{id}", get(who))
        .route("/v2/admin/{id}", get(who))
        .route("/short/{id}", get(who))
        .route("/health", get(|| async { "ok" }))
        .layer(layer.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    World {
        s,
        id,
        secret,
        gw,
        app,
        layer,
    }
}

impl World {
    async fn token(&self, audience: &str) -> String {
        let r = self
            .s
            .token(&self.id, &self.secret, &[("audience", audience)])
            .await;
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_string()
    }

    async fn call(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut rb = self.s.http.get(format!("{}{path}", self.app));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        send(rb).await
    }
}

fn challenge(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_layer_answers_every_case_as_rfc_6750_says() {
    let w = setup().await;
    let odds = w.token("odds").await;

    // Allowed: the handler reads the verified claims from the extensions.
    let r = w.call("/v2/odds/17?market=1x2", Some(&odds)).await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["client_id"], w.id.as_str());
    assert_eq!(v["sub"], w.id.as_str());
    assert_eq!(v["scope"], "odds:read");
    assert_eq!(v["jti"], jwt_parts(&odds).1["jti"]);

    // Public: no token needed.
    assert_eq!(w.call("/health", None).await.status(), 200);

    // No token: 401 with a bare challenge.
    let r = w.call("/v2/odds/17", None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(challenge(&r), "Bearer");

    // A garbled token: invalid_token.
    let r = w.call("/v2/odds/17", Some("not.a.token")).await;
    assert_eq!(r.status(), 401);
    assert!(challenge(&r).contains("error=\"invalid_token\""));

    // Wrong audience: a genuine token for another API.
    let other = w.token("other").await;
    let r = w.call("/v2/odds/17", Some(&other)).await;
    assert_eq!(r.status(), 401);
    let c = challenge(&r);
    assert!(
        c.contains("error=\"invalid_token\"") && c.contains("not for this API"),
        "{c}"
    );

    // Insufficient permission: 403 naming the scope needed.
    let r = w.call("/v2/admin/1", Some(&odds)).await;
    assert_eq!(r.status(), 403);
    let c = challenge(&r);
    assert!(
        c.contains("error=\"insufficient_scope\"") && c.contains("scope=\"odds:admin\""),
        "{c}"
    );

    // Expired: a 1 s token, after it expired (no leeway).
    let short = w.token("short").await;
    assert_eq!(w.call("/short/1", Some(&short)).await.status(), 200);
    let exp = jwt_parts(&short).1["exp"].as_i64().unwrap();
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        if now >= exp {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = w.call("/short/1", Some(&short)).await;
    assert_eq!(r.status(), 401);
    assert!(challenge(&r).contains("expired"), "{}", challenge(&r));
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_without_a_restart() {
    let w = setup().await;
    let before = w.token("odds").await;
    assert_eq!(w.call("/v2/odds/1", Some(&before)).await.status(), 200);
    let fetches = w.layer.keys().fetches();
    // Keys order by the second they activate: rotate a second later.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.s.cli_ok(&["key", "rotate", "--publish-delay", "0s"]);
    w.s.sync().await;
    let after = w.token("odds").await;
    let kid = jwt_parts(&after).0["kid"].as_str().unwrap().to_string();
    assert_ne!(
        jwt_parts(&before).0["kid"],
        kid.as_str(),
        "the new key signs"
    );
    assert!(!w.layer.keys().knows(&kid));
    // The unknown kid makes the layer fetch the JWKS again (once the
    // rate-limit window since the last fetch is over).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = w.call("/v2/odds/1", Some(&after)).await;
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 401);
        assert!(Instant::now() < deadline, "the new key was never fetched");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(w.layer.keys().knows(&kid));
    assert!(w.layer.keys().fetches() > fetches);
    // The old key's tokens still pass: it stays published until they expire.
    assert_eq!(w.call("/v2/odds/1", Some(&before)).await.status(), 200);
}

#[tokio::test]
async fn a_revocation_reaches_the_layer_through_the_deny_list() {
    let w = setup().await;
    let odds = w.token("odds").await;
    assert_eq!(w.call("/v2/odds/1", Some(&odds)).await.status(), 200);
    let r =
        w.s.form(
            "/oauth/revoke",
            &[
                ("client_id", w.id.as_str()),
                ("client_secret", w.secret.as_str()),
                ("token", odds.as_str()),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = w.call("/v2/odds/1", Some(&odds)).await;
        if r.status() == 401 {
            assert!(challenge(&r).contains("revoked"), "{}", challenge(&r));
            break;
        }
        assert_eq!(r.status(), 200);
        assert!(
            Instant::now() < deadline,
            "still allowed 5 s after the revocation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(w.layer.keys().denied(), 1);
    // Another token of the client still passes.
    let fresh = w.token("odds").await;
    assert_eq!(w.call("/v2/odds/1", Some(&fresh)).await.status(), 200);
}

#[tokio::test]
async fn the_deny_list_is_for_introspecting_clients_and_answers_304_when_unchanged() {
    let w = setup().await;
    let odds = w.token("odds").await;
    let jti = jwt_parts(&odds).1["jti"].as_str().unwrap().to_string();
    let r =
        w.s.form(
            "/oauth/revoke",
            &[
                ("client_id", w.id.as_str()),
                ("client_secret", w.secret.as_str()),
                ("token", odds.as_str()),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    w.s.sync().await;

    // No credentials, and a client without --introspect: refused.
    let r = send(w.s.get("/gate/deny-list")).await;
    assert_eq!(r.status(), 401);
    let r = send(
        w.s.get("/gate/deny-list")
            .basic_auth(&w.id, Some(&w.secret)),
    )
    .await;
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "unauthorized_client");

    // The gateway reads it, with an ETag.
    let r = send(
        w.s.get("/gate/deny-list")
            .basic_auth(&w.gw.0, Some(&w.gw.1)),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["revoked"], serde_json::json!([jti]));
    // Unchanged: 304.
    let r = send(
        w.s.get("/gate/deny-list")
            .basic_auth(&w.gw.0, Some(&w.gw.1))
            .header("if-none-match", &etag),
    )
    .await;
    assert_eq!(r.status(), 304);
    // Another environment's list is its own (and empty).
    w.s.cli_ok(&["env", "create", "staging"]);
    w.s.sync().await;
    let r = send(
        w.s.get("/e/staging/gate/deny-list")
            .basic_auth(&w.gw.0, Some(&w.gw.1)),
    )
    .await;
    // The gateway client belongs to the default environment.
    assert_eq!(r.status(), 401);
}
