//! The `auth0` dialect of `/oauth/token` (Sportradar's page), per
//! environment, against the running server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Server, jwt_parts, send, verify_with_jwks};
use serde_json::{Value, json};

const AUD: &str = "mts-insight-tech-non-prod";
const TOKEN: &str = "/e/stg/oauth/token";

/// An auth0-dialect environment `stg` with an API (600 s tokens), a second
/// API the client is not granted, and a client. Returns (server, id, secret).
fn setup() -> (Server, String, String) {
    let s = Server::start();
    s.cli_ok(&["env", "create", "stg", "--dialect", "auth0"]);
    s.cli_ok(&[
        "api",
        "create",
        AUD,
        "--env",
        "stg",
        "--permission",
        "insight:read",
        "--token-lifetime",
        "600s",
    ]);
    s.cli_ok(&["api", "create", "other-api", "--env", "stg"]);
    let grant = format!("{AUD}=insight:read");
    let (id, secret) = s.client(&["--name", "partner", "--env", "stg", "--api", &grant]);
    (s, id, secret)
}

async fn error_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["cache-control"], "no-store");
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn hyphenated_form_fields_give_an_auth0_shaped_token() {
    let (s, id, secret) = setup();
    s.sync().await;
    let r = s
        .form(
            TOKEN,
            &[
                ("client-id", &id),
                ("client-secret", &secret),
                ("audience", AUD),
                ("grant-type", "client_credentials"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "insight:read");
    let token = body["access_token"].as_str().unwrap();
    let issuer = format!("{}/e/stg", s.url);
    let claims = verify_with_jwks(
        &s.http,
        &format!("{}/e/stg/.well-known/jwks.json", s.url),
        token,
        &issuer,
        AUD,
    )
    .await;
    assert_eq!(claims["sub"], format!("{id}@clients"));
    assert_eq!(claims["azp"], id.as_str());
    assert_eq!(claims["gty"], "client-credentials");
    assert_eq!(claims["aud"], AUD);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );

    // The underscored names (the page's curl) and a JSON body work too.
    let r = s
        .form(
            TOKEN,
            &[
                ("client_id", &id),
                ("client_secret", &secret),
                ("audience", AUD),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = send(s.post(TOKEN).json(&json!({
        "client_id": id, "client_secret": secret, "audience": AUD,
        "grant_type": "client_credentials"
    })))
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let claims = jwt_parts(body["access_token"].as_str().unwrap()).1;
    assert_eq!(claims["gty"], "client-credentials");

    // The same field under both names is refused.
    let r = s
        .form(
            TOKEN,
            &[
                ("client_id", &id),
                ("client-id", &id),
                ("client_secret", &secret),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
    let (status, body) = error_of(r).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn errors_are_answered_as_auth0_answers_them() {
    let (s, id, secret) = setup();
    let (cc_less, cc_less_secret) = s.client(&[
        "--name",
        "refresh-only",
        "--env",
        "stg",
        "--api",
        AUD,
        "--grant",
        "refresh_token",
    ]);
    s.sync().await;
    let form = |id: &str, secret: &str, aud: &str| {
        vec![
            ("client_id".to_string(), id.to_string()),
            ("client_secret".to_string(), secret.to_string()),
            ("audience".to_string(), aud.to_string()),
            ("grant_type".to_string(), "client_credentials".to_string()),
        ]
    };
    let post = |pairs: Vec<(String, String)>| send(s.post(TOKEN).form(&pairs));

    let unauthorized = json!({"error": "access_denied", "error_description": "Unauthorized"});
    for (what, pairs) in [
        ("wrong secret", form(&id, "wrong-secret", AUD)),
        ("unknown client", form("nobody", &secret, AUD)),
    ] {
        let (status, body) = error_of(post(pairs).await).await;
        assert_eq!((status, &body), (401, &unauthorized), "{what}");
    }

    let (status, body) = error_of(post(form(&id, &secret, "other-api")).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("access_denied"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("\"other-api\""),
        "{body}"
    );
    let (status, body) = error_of(post(form(&id, &secret, "no-such-api")).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("access_denied"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("no-such-api"),
        "{body}"
    );

    let (status, body) = error_of(post(form(&cc_less, &cc_less_secret, AUD)).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("unauthorized_client"))
    );

    let mut no_grant = form(&id, &secret, AUD);
    no_grant.retain(|(k, _)| k != "grant_type");
    let (status, body) = error_of(post(no_grant).await).await;
    assert_eq!(
        (status, &body),
        (
            400,
            &json!({"error": "invalid_request", "error_description": "Missing required parameter: grant_type"})
        )
    );
    let mut no_client = form(&id, &secret, AUD);
    no_client.retain(|(k, _)| !k.starts_with("client_"));
    let (status, body) = error_of(post(no_client).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // Nothing secret is echoed.
    assert!(!body.to_string().contains(&secret));
}

#[tokio::test]
async fn the_dialect_is_per_environment_and_switches_live() {
    let s = Server::start();
    s.cli_ok(&["api", "create", AUD]);
    let (id, secret) = s.client(&["--name", "p", "--api", AUD]);
    s.sync().await;
    // The default environment speaks RFC 6749.
    let r = s.token(&id, "wrong-secret", &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let body: Value = s.token(&id, &secret, &[]).await.json().await.unwrap();
    assert_eq!(
        jwt_parts(body["access_token"].as_str().unwrap()).1["sub"],
        id.as_str()
    );

    let updated = s.cli_json(&["env", "update", "default", "--dialect", "auth0"]);
    assert_eq!(updated["dialect"], "auth0");
    s.sync().await;
    let r = s.token(&id, "wrong-secret", &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "access_denied");
    let body: Value = s.token(&id, &secret, &[]).await.json().await.unwrap();
    let claims = jwt_parts(body["access_token"].as_str().unwrap()).1;
    assert_eq!(claims["sub"], format!("{id}@clients"));
    assert_eq!(claims["gty"], "client-credentials");

    let out = s.cli(&["env", "update", "default", "--dialect", "spring-ish"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rfc6749 or auth0"));
    let listed = s.cli_json(&["env", "list"]);
    assert_eq!(listed[0]["dialect"], "auth0");
}

#[tokio::test]
async fn gty_names_the_grant_of_each_contract() {
    let s = Server::start_with(&["--contracts", "all"], &[]);
    s.cli_ok(&["env", "update", "default", "--dialect", "auth0"]);
    s.cli_ok(&["api", "create", AUD]);
    let (id, secret) = s.client(&["--name", "p", "--api", AUD]);
    let refresh = s.cli_json(&["refresh-jwt", "issue", "--client", &id])["refresh_jwt"]
        .as_str()
        .unwrap()
        .to_string();
    s.sync().await;
    let body: Value = s.token(&id, &secret, &[]).await.json().await.unwrap();
    let cc = jwt_parts(body["access_token"].as_str().unwrap()).1;
    assert_eq!(cc["gty"], "client-credentials");
    let r = send(
        s.post("/pub/v2/players/access-token")
            .header("authorization", format!("Bearer {refresh}")),
    )
    .await;
    let body: Value = r.json().await.unwrap();
    let exchanged = jwt_parts(body["token"].as_str().unwrap()).1;
    assert_eq!(exchanged["gty"], "refresh_token");
    assert_eq!(exchanged["sub"], format!("{id}@clients"));
}

/// Auth0's defaults (issue 11 §2): RS256, and for an environment selected
/// by host the issuer `https://HOST/` with Auth0's trailing slash, which
/// `env create` prints and the server signs with.
#[tokio::test]
async fn a_host_selected_auth0_environment_signs_rs256_as_its_host() {
    let s = Server::start();
    let host = "stg-auth.sportradar.test";
    let issuer = format!("https://{host}/");
    let created = s.cli_json(&[
        "env",
        "create",
        "live",
        "--dialect",
        "auth0",
        "--host",
        host,
    ]);
    assert_eq!(created["alg"], "RS256");
    assert_eq!(created["issuer"], issuer.as_str());
    s.cli_ok(&["api", "create", AUD, "--env", "live"]);
    let (id, secret) = s.client(&["--name", "p", "--env", "live", "--api", AUD]);
    s.sync().await;
    let r = send(s.post("/oauth/token").header("host", host).form(&[
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("audience", AUD),
        ("grant_type", "client_credentials"),
    ]))
    .await;
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (head, _) = jwt_parts(&token);
    assert_eq!(head["alg"], "RS256");
    let claims = verify_with_jwks(
        &s.http,
        &format!("{}/e/live/.well-known/jwks.json", s.url),
        &token,
        &issuer,
        AUD,
    )
    .await;
    assert_eq!(claims["sub"], format!("{id}@clients"));
    // What an Auth0 SDK discovers at the host: the same issuer, RS256.
    let d: Value = send(
        s.get("/.well-known/openid-configuration")
            .header("host", host),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(d["issuer"], issuer.as_str());
    assert_eq!(
        d["jwks_uri"],
        format!("https://{host}/.well-known/jwks.json").as_str()
    );
    assert_eq!(
        d["token_endpoint"],
        format!("https://{host}/oauth/token").as_str()
    );
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["RS256"]));
    assert_eq!(
        s.cli_json(&["env", "list"]).as_array().unwrap()[1]["issuer"],
        issuer.as_str(),
        "env list shows it too"
    );

    // --issuer and --alg say otherwise when given.
    let custom = s.cli_json(&[
        "env",
        "create",
        "custom",
        "--dialect",
        "auth0",
        "--host",
        "other.test",
        "--issuer",
        "https://login.partner.test/",
        "--alg",
        "ES256",
    ]);
    assert_eq!(custom["issuer"], "https://login.partner.test/");
    assert_eq!(custom["alg"], "ES256");
    // Another dialect selected by host: the host, without Auth0's slash.
    let plain = s.cli_json(&["env", "create", "plain", "--host", "plain.test"]);
    assert_eq!(plain["issuer"], "https://plain.test");
    assert_eq!(plain["alg"], "ES256");
}

/// Auth0's RBAC setting per API: `permissions` in the access token, only in
/// the Auth0 dialect and only for the API that has it on.
#[tokio::test]
async fn an_api_can_put_permissions_in_auth0_tokens() {
    let (s, id, secret) = setup();
    s.cli_ok(&[
        "api",
        "create",
        "rbac-api",
        "--env",
        "stg",
        "--permission",
        "read:odds",
        "--permission",
        "read:stats",
        "--token-permissions",
    ]);
    let (rbac_id, rbac_secret) = s.client(&[
        "--name",
        "rbac",
        "--env",
        "stg",
        "--api",
        "rbac-api=read:odds,read:stats",
    ]);
    s.sync().await;
    let token = |id: String, secret: String, aud: &'static str| {
        let s = &s;
        async move {
            let r = s
                .form(
                    TOKEN,
                    &[
                        ("client_id", id.as_str()),
                        ("client_secret", secret.as_str()),
                        ("audience", aud),
                        ("grant_type", "client_credentials"),
                    ],
                )
                .await;
            assert_eq!(r.status(), 200);
            let body: Value = r.json().await.unwrap();
            jwt_parts(body["access_token"].as_str().unwrap()).1
        }
    };
    let c = token(rbac_id.clone(), rbac_secret.clone(), "rbac-api").await;
    assert_eq!(c["permissions"], json!(["read:odds", "read:stats"]));
    assert_eq!(c["scope"], "read:odds read:stats");
    // An API without the setting: no permissions claim.
    let c = token(id.clone(), secret.clone(), AUD).await;
    assert!(c.get("permissions").is_none(), "{c}");
    let apis = s.cli_json(&["api", "list", "--env", "stg"]);
    assert!(
        apis.to_string().contains("\"token_permissions\":true"),
        "{apis}"
    );
    // Switched in place (`api update`): off for one API, on for the other.
    s.cli_ok(&[
        "api",
        "update",
        "rbac-api",
        "--env",
        "stg",
        "--token-permissions",
        "false",
    ]);
    s.cli_ok(&[
        "api",
        "update",
        AUD,
        "--env",
        "stg",
        "--token-permissions",
        "true",
    ]);
    s.sync().await;
    let c = token(rbac_id.clone(), rbac_secret.clone(), "rbac-api").await;
    assert!(c.get("permissions").is_none(), "{c}");
    let c = token(id, secret, AUD).await;
    assert!(c["permissions"].is_array(), "{c}");
    // Not in the rfc6749 dialect (no Auth0 shape there).
    s.cli_ok(&["env", "update", "stg", "--dialect", "rfc6749"]);
    s.sync().await;
    let c = token(rbac_id, rbac_secret, "rbac-api").await;
    assert!(c.get("permissions").is_none(), "{c}");
}
