//! The RFC 6749 client_credentials contract at `POST /oauth/token`, against
//! the real server: every success and error case of the foundation issue.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Server, jwt_parts, send, verify_with_jwks};
use serde_json::Value;

const API: &str = "mts-insight-tech";

/// A server with one API (two packages) and one client holding `odds-basic`.
fn provisioned() -> (Server, String, String) {
    provisioned_with(&[])
}

fn provisioned_with(env: &[(&str, &str)]) -> (Server, String, String) {
    let s = Server::start_with(&[], env);
    s.cli_ok(&[
        "api",
        "create",
        API,
        "--permission",
        "odds:read",
        "--permission",
        "odds:write",
        "--package",
        "odds-basic=odds:read,stats:read",
        "--token-lifetime",
        "600s",
    ]);
    let (id, secret) = s.client(&[
        "--name",
        "acme",
        "--api",
        &format!("{API}=odds-basic"),
        "--claims",
        r#"{"https://sportradar/common-iam/accounts":["i|2"]}"#,
    ]);
    (s, id, secret)
}

async fn json(r: reqwest::Response) -> Value {
    r.json().await.unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn form_post_issues_an_rfc9068_token() {
    let (s, id, secret) = provisioned();
    s.sync().await;
    let r = s.token(&id, &secret, &[("audience", API)]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), Some("no-store"));
    assert_eq!(header(&r, "pragma"), Some("no-cache"));
    assert!(
        header(&r, "content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let body = json(r).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "odds:read stats:read");
    let token = body["access_token"].as_str().unwrap();

    let (h, c) = jwt_parts(token);
    assert_eq!(h["typ"], "at+jwt");
    assert_eq!(h["alg"], "ES256");
    assert!(h["kid"].is_string());
    assert_eq!(c["iss"], s.url.as_str());
    assert_eq!(c["sub"], id.as_str());
    assert_eq!(c["client_id"], id.as_str());
    assert_eq!(c["aud"], API);
    assert_eq!(c["scope"], "odds:read stats:read");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 600);
    assert!(c["jti"].as_str().unwrap().len() >= 16);
    assert!(c.get("nbf").is_none());
    assert_eq!(c["https://sportradar/common-iam/accounts"][0], "i|2");

    let claims = verify_with_jwks(
        &s.http,
        &format!("{}/.well-known/jwks.json", s.url),
        token,
        &s.url,
        API,
    )
    .await;
    assert_eq!(claims["sub"], id.as_str());
}

#[tokio::test]
async fn json_body_and_basic_auth_both_work_and_jti_is_unique() {
    let (s, id, secret) = provisioned();
    s.sync().await;
    let r = send(s.post("/oauth/token")
        .json(&serde_json::json!({"client_id": id, "client_secret": secret, "grant_type": "client_credentials"}))).await;
    assert_eq!(r.status(), 200, "JSON body");
    let a = json(r).await["access_token"].as_str().unwrap().to_string();

    let r = send(
        s.post("/oauth/token")
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials"), ("audience", API)]),
    )
    .await;
    assert_eq!(r.status(), 200, "client_secret_basic");
    let b = json(r).await["access_token"].as_str().unwrap().to_string();
    assert_ne!(jwt_parts(&a).1["jti"], jwt_parts(&b).1["jti"]);

    // Basic and body together: fine when they agree, an error when they differ.
    let same = send(
        s.post("/oauth/token")
            .basic_auth(&id, Some(&secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ]),
    )
    .await;
    assert_eq!(same.status(), 200);
    let differ = send(
        s.post("/oauth/token")
            .basic_auth(&id, Some(&secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", "other"),
            ]),
    )
    .await;
    assert_eq!(differ.status(), 400);
    let body = json(differ).await;
    assert_eq!(body["error"], "invalid_request");
    assert!(!body.to_string().contains(&secret));
}

#[tokio::test]
async fn audience_resource_and_scope_rules() {
    let (s, id, secret) = provisioned();
    s.cli_ok(&[
        "api",
        "create",
        "https://stats.example.com/",
        "--permission",
        "read",
    ]);
    let (two, two_secret) = s.client(&[
        "--name",
        "two-apis",
        "--api",
        &format!("{API}=odds:read,odds:write"),
        "--api",
        "https://stats.example.com/",
    ]);
    s.sync().await;

    // One API: audience may be omitted.
    assert_eq!(s.token(&id, &secret, &[]).await.status(), 200);
    // RFC 8707 resource works like audience.
    assert_eq!(
        s.token(&id, &secret, &[("resource", API)]).await.status(),
        200
    );
    // Both, disagreeing.
    let r = s
        .token(&id, &secret, &[("resource", API), ("audience", "other")])
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(json(r).await["error"], "invalid_request");
    // Several APIs: audience required.
    let r = s.token(&two, &two_secret, &[]).await;
    assert_eq!(r.status(), 400);
    let body = json(r).await;
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("audience")
    );
    // An API granted without a list: that audience, empty scope.
    let r = s
        .token(
            &two,
            &two_secret,
            &[("audience", "https://stats.example.com/")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let body = json(r).await;
    assert_eq!(body["scope"], "");
    assert_eq!(
        jwt_parts(body["access_token"].as_str().unwrap()).1["aud"],
        "https://stats.example.com/"
    );
    // Unknown audience, and one that exists but is not granted.
    for aud in ["nope", "https://stats.example.com/"] {
        let r = s.token(&id, &secret, &[("audience", aud)]).await;
        assert_eq!(r.status(), 400, "{aud}");
        let body = json(r).await;
        assert_eq!(body["error"], "invalid_target");
        assert!(body["error_description"].as_str().unwrap().contains(aud));
    }
    // Scope narrows to a subset...
    let r = s
        .token(
            &two,
            &two_secret,
            &[("audience", API), ("scope", "odds:write")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let body = json(r).await;
    assert_eq!(body["scope"], "odds:write");
    assert_eq!(
        jwt_parts(body["access_token"].as_str().unwrap()).1["scope"],
        "odds:write"
    );
    // ...and asking for more is invalid_scope.
    let r = s
        .token(&id, &secret, &[("scope", "odds:read odds:write")])
        .await;
    assert_eq!(r.status(), 400);
    let body = json(r).await;
    assert_eq!(body["error"], "invalid_scope");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("odds:write")
    );
}

#[tokio::test]
async fn client_authentication_failures_are_uniform() {
    let (s, id, secret) = provisioned();
    s.sync().await;
    let wrong = s.token(&id, "x".repeat(43).as_str(), &[]).await;
    let unknown = s.token("no-such-client", &secret, &[]).await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    assert!(
        wrong.headers().get("www-authenticate").is_none(),
        "no Basic was used"
    );
    let (a, b) = (wrong.text().await.unwrap(), unknown.text().await.unwrap());
    assert_eq!(a, b, "unknown client and wrong secret must look the same");
    assert_eq!(
        serde_json::from_str::<Value>(&a).unwrap()["error"],
        "invalid_client"
    );
    assert!(!a.contains(&secret) && !a.contains(&id));

    // With Basic: 401 and a Basic challenge.
    let r = send(
        s.post("/oauth/token")
            .basic_auth(&id, Some("wrong"))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    assert_eq!(json(r).await["error"], "invalid_client");

    // No credentials at all, and a client_id without a secret.
    let r = s
        .form("/oauth/token", &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(json(r).await["error"], "invalid_client");
    let r = s
        .form(
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("client_id", &id)],
        )
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(json(r).await["error"], "invalid_client");
}

/// The work done for a presented secret depends on its shape only: an
/// unknown client costs what a known client with a wrong secret costs.
#[tokio::test]
async fn unknown_client_and_wrong_secret_take_the_same_time() {
    // Fourteen failures in a row would lock the imported client (and it is
    // the checking that is timed here, not the lock).
    let (s, _, _) = provisioned_with(&[
        ("TOLLGATE_THROTTLE_ACCOUNT_FAILURES", "0"),
        ("TOLLGATE_THROTTLE_SOURCE_FAILURES", "0"),
    ]);
    s.client(&[
        "--name",
        "imported",
        "--api",
        API,
        "--client-id",
        "legacy-1",
        "--client-secret",
        "weak-password",
    ]);
    s.sync().await;
    // The work: one argon2id verification per failure, known or not
    // (counted by the server; exact, whatever the machine's load).
    async fn verifications(s: &Server) -> u64 {
        let text = send(s.get("/metrics")).await.text().await.unwrap();
        text.lines()
            .filter(|l| l.starts_with("tollgate_argon2_verifications_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
    async fn fail(s: &Server, id: &str) -> f64 {
        let start = std::time::Instant::now();
        let r = s.token(id, "not-the-password", &[]).await;
        assert_eq!(r.status(), 401);
        start.elapsed().as_secs_f64()
    }
    for id in ["legacy-1", "no-such-client"] {
        let before = verifications(&s).await;
        fail(&s, id).await;
        assert_eq!(
            verifications(&s).await - before,
            1,
            "{id}: one argon2id check"
        );
    }
    // The time, as a guard against a gross difference (an unknown client
    // answered without the check would be ten times faster): interleaved,
    // so that the machine's load falls on both alike, and compared loosely.
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        known.push(fail(&s, "legacy-1").await);
        unknown.push(fail(&s, "no-such-client").await);
    }
    known.sort_by(f64::total_cmp);
    unknown.sort_by(f64::total_cmp);
    let (known, unknown) = (known[4], unknown[4]);
    let ratio = known / unknown;
    assert!(
        (0.25..4.0).contains(&ratio),
        "argon2-shaped secrets: known {known:.4}s vs unknown {unknown:.4}s"
    );
}

#[tokio::test]
async fn grant_type_errors() {
    let (s, id, secret) = provisioned();
    let (rt_only, rt_secret) =
        s.client(&["--name", "rt", "--api", API, "--grant", "refresh_token"]);
    s.sync().await;
    let r = s
        .form(
            "/oauth/token",
            &[("client_id", &id), ("client_secret", &secret)],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(json(r).await["error"], "invalid_request");
    let r = s
        .form(
            "/oauth/token",
            &[
                ("grant_type", "password"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(json(r).await["error"], "unsupported_grant_type");
    let r = s.token(&rt_only, &rt_secret, &[]).await;
    assert_eq!(r.status(), 400);
    assert_eq!(json(r).await["error"], "unauthorized_client");
}

#[tokio::test]
async fn malformed_oversized_and_wrong_method() {
    let (s, id, secret) = provisioned();
    s.sync().await;
    let url = format!("{}/oauth/token", s.url);
    let r = send(s.get("/oauth/token")).await;
    assert_eq!(r.status(), 405);
    assert_eq!(header(&r, "allow"), Some("POST"));
    let r = send(s.http.put(&url)).await;
    assert_eq!(r.status(), 405);

    let big = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(17 * 1024)
    );
    let r = send(
        s.post("/oauth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(big),
    )
    .await;
    assert_eq!(r.status(), 413);

    for (ctype, body) in [
        ("application/json", "{not json"),
        ("application/json", "[1,2]"),
        ("application/json", r#"{"grant_type":{"x":1}}"#),
        (
            "application/x-www-form-urlencoded",
            "grant_type=client_credentials&grant_type=client_credentials",
        ),
        ("text/plain", "grant_type=client_credentials"),
    ] {
        let r = send(
            s.post("/oauth/token")
                .header("content-type", ctype)
                .body(body),
        )
        .await;
        assert_eq!(r.status(), 400, "{ctype}: {body}");
        assert_eq!(header(&r, "cache-control"), Some("no-store"));
        let v = json(r).await;
        assert_eq!(v["error"], "invalid_request", "{ctype}: {body}");
        assert!(
            v["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
    }
    // A malformed Basic header.
    let r = send(
        s.post("/oauth/token")
            .header("authorization", "Basic %%%")
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    assert_eq!(r.status(), 401);
    // The good request still works afterwards.
    assert_eq!(s.token(&id, &secret, &[]).await.status(), 200);
}

#[tokio::test]
async fn disabled_and_deleted_clients_are_refused() {
    let (s, id, secret) = provisioned();
    s.sync().await;
    assert_eq!(s.token(&id, &secret, &[]).await.status(), 200);
    s.cli_ok(&["client", "disable", &id]);
    s.sync().await;
    let r = s.token(&id, &secret, &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(json(r).await["error"], "invalid_client");
    s.cli_ok(&["client", "enable", &id]);
    s.sync().await;
    assert_eq!(s.token(&id, &secret, &[]).await.status(), 200);
    s.cli_ok(&["client", "delete", &id]);
    s.sync().await;
    assert_eq!(s.token(&id, &secret, &[]).await.status(), 401);
    let out = s.cli(&["client", "show", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[tokio::test]
async fn imported_client_pair_works_unchanged() {
    let (s, _, _) = provisioned();
    let (id, secret) = s.client(&[
        "--name",
        "migrated",
        "--api",
        API,
        "--client-id",
        "ew27623ybFwq82nsjkdpsdwsh",
        "--client-secret",
        "bccws2523wqlj10yGhW83Je",
    ]);
    assert_eq!(
        (id.as_str(), secret.as_str()),
        ("ew27623ybFwq82nsjkdpsdwsh", "bccws2523wqlj10yGhW83Je")
    );
    s.sync().await;
    for _ in 0..2 {
        // the second one is served from the verification cache
        let r = s.token(&id, &secret, &[("audience", API)]).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        s.token(&id, "bccws2523wqlj10yGhW83Jf", &[]).await.status(),
        401
    );
    // The same id again is a conflict, not an overwrite.
    let out = s.cli(&[
        "client",
        "create",
        "--name",
        "dup",
        "--client-id",
        "ew27623ybFwq82nsjkdpsdwsh",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}

#[tokio::test]
async fn per_client_lifetime_overrides_the_api() {
    let (s, _, _) = provisioned();
    let (id, secret) = s.client(&["--name", "short", "--api", API, "--token-lifetime", "90s"]);
    s.sync().await;
    let body = json(s.token(&id, &secret, &[]).await).await;
    assert_eq!(body["expires_in"], 90);
    let c = jwt_parts(body["access_token"].as_str().unwrap()).1;
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 90);
}

#[tokio::test]
async fn every_algorithm_in_its_own_environment() {
    let s = Server::start();
    for (env, alg) in [("es", "ES256"), ("ed", "EdDSA"), ("rs", "RS256")] {
        let created = s.cli_json(&["env", "create", env, "--alg", alg]);
        assert_eq!(created["alg"], alg);
        s.cli_ok(&[
            "api",
            "create",
            "orders",
            "--env",
            env,
            "--permission",
            "orders:read",
        ]);
        let (id, secret) = s.client(&["--name", "p", "--env", env, "--api", "orders=orders:read"]);
        s.sync().await;
        let r = s
            .form(
                &format!("/e/{env}/oauth/token"),
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &id),
                    ("client_secret", &secret),
                ],
            )
            .await;
        assert_eq!(r.status(), 200, "{alg}");
        let token = json(r).await["access_token"].as_str().unwrap().to_string();
        let (h, c) = jwt_parts(&token);
        assert_eq!(h["alg"], alg);
        let issuer = format!("{}/e/{env}", s.url);
        assert_eq!(c["iss"], issuer.as_str());
        verify_with_jwks(
            &s.http,
            &format!("{issuer}/.well-known/jwks.json"),
            &token,
            &issuer,
            "orders",
        )
        .await;
        // The client of one environment does not exist in another.
        assert_eq!(s.token(&id, &secret, &[]).await.status(), 401);
    }
    let r = s
        .form(
            "/e/nope/oauth/token",
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn host_name_selects_an_environment() {
    let s = Server::start();
    s.cli_ok(&["env", "create", "production", "--host", "auth.partner.test"]);
    s.cli_ok(&["api", "create", "orders", "--env", "production"]);
    let (id, secret) = s.client(&["--name", "p", "--env", "production", "--api", "orders"]);
    s.sync().await;
    let r = send(
        s.post("/oauth/token")
            .header("host", "auth.partner.test")
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ]),
    )
    .await;
    assert_eq!(r.status(), 200);
    let token = json(r).await["access_token"].as_str().unwrap().to_string();
    // A host-selected environment's issuer is its host.
    assert_eq!(jwt_parts(&token).1["iss"], "https://auth.partner.test");
    // Without the host name the default environment answers, which does not know the client.
    assert_eq!(s.token(&id, &secret, &[]).await.status(), 401);
}

#[tokio::test]
async fn discovery_documents() {
    let s = Server::start();
    s.cli_ok(&["env", "create", "integration"]);
    s.sync().await;
    let r = send(s.get("/.well-known/oauth-authorization-server")).await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "cache-control").unwrap().contains("max-age"));
    let m = json(r).await;
    assert_eq!(m["issuer"], s.url.as_str());
    assert_eq!(
        m["token_endpoint"],
        format!("{}/oauth/token", s.url).as_str()
    );
    assert_eq!(
        m["jwks_uri"],
        format!("{}/.well-known/jwks.json", s.url).as_str()
    );
    assert_eq!(
        m["grant_types_supported"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );

    // A named environment: under its prefix and at the RFC 8414 §3 location.
    let issuer = format!("{}/e/integration", s.url);
    for path in [
        "/e/integration/.well-known/oauth-authorization-server",
        "/.well-known/oauth-authorization-server/e/integration",
    ] {
        let m = json(send(s.get(path)).await).await;
        assert_eq!(m["issuer"], issuer.as_str(), "{path}");
        assert_eq!(
            m["token_endpoint"],
            format!("{issuer}/oauth/token").as_str()
        );
    }
    let r = send(s.get("/.well-known/jwks.json")).await;
    assert_eq!(header(&r, "content-type"), Some("application/jwk-set+json"));
    assert!(header(&r, "cache-control").unwrap().contains("max-age"));
    let jwks = json(r).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "EC");
    assert!(
        keys[0].get("d").is_none(),
        "no private material in the JWKS"
    );
    // The environments have different keys.
    let other = json(
        s.http
            .get(format!("{issuer}/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_ne!(other["keys"][0]["kid"], keys[0]["kid"]);
}

#[tokio::test]
async fn openid_configuration_is_the_same_metadata_with_what_openid_requires() {
    let s = Server::start();
    s.cli_ok(&["env", "create", "integration", "--alg", "EdDSA"]);
    s.sync().await;
    for (env_path, alg) in [("", "ES256"), ("/e/integration", "EdDSA")] {
        let oidc = send(s.get(&format!("{env_path}/.well-known/openid-configuration"))).await;
        assert_eq!(oidc.status(), 200, "{env_path}");
        assert!(header(&oidc, "cache-control").unwrap().contains("max-age"));
        assert_eq!(header(&oidc, "content-type"), Some("application/json"));
        let oidc = json(oidc).await;
        let rfc8414 = json(
            send(s.get(&format!(
                "{env_path}/.well-known/oauth-authorization-server"
            )))
            .await,
        )
        .await;
        // Every RFC 8414 field, the same; only response_types_supported
        // differs (OpenID libraries refuse an empty list).
        for (k, v) in rfc8414.as_object().unwrap() {
            if k != "response_types_supported" {
                assert_eq!(&oidc[k], v, "{env_path}: {k}");
            }
        }
        assert_eq!(oidc["issuer"], format!("{}{env_path}", s.url).as_str());
        assert_eq!(
            oidc["jwks_uri"],
            format!("{}{env_path}/.well-known/jwks.json", s.url).as_str()
        );
        assert_eq!(
            oidc["response_types_supported"],
            serde_json::json!(["token"])
        );
        assert_eq!(
            oidc["subject_types_supported"],
            serde_json::json!(["public"])
        );
        // The environment's own algorithm first, then the RS256 the
        // specification requires the list to hold.
        assert_eq!(
            oidc["id_token_signing_alg_values_supported"],
            serde_json::json!([alg, "RS256"]),
            "{env_path}"
        );
    }
    // An unknown environment is a 404, as for the other documents.
    let r = send(s.get("/e/nope/.well-known/openid-configuration")).await;
    assert_eq!(r.status(), 404);
}
