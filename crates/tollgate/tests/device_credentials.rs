//! The device-credentials contract (Dive's Spring Security OAuth2 token
//! endpoint) against the running server: logins, refreshes and every error
//! the issue lists.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Server, jwt_parts, md5_hex as md5, send, verify_with_jwks};
use serde_json::{Value, json};

const LOGIN: &str = "/v1/token?grant_type=device_credentials";
const REFRESH: &str = "/v1/token?grant_type=refresh_token";
const PASSWORD: &str = "s3cret-pin";
/// A server with the contract on, an API, a public client (bare key) with a
/// user `123456`. Returns (server, client id).
fn setup(env: &[(&str, &str)]) -> (Server, String) {
    let s = Server::start_with(&["--contracts", "all"], env);
    s.cli_ok(&[
        "api",
        "create",
        "rest",
        "--permission",
        "device",
        "--permission",
        "ROLE_TV_GRID",
    ]);
    let id = s.public_client(&[
        "--name",
        "dive-app",
        "--api",
        "rest=device,ROLE_TV_GRID",
        "--grant",
        "device_credentials",
    ]);
    s.user(&id, "123456", PASSWORD);
    (s, id)
}

fn basic(v: &str) -> String {
    format!("Basic {}", STANDARD.encode(v))
}

/// Logs in as Dive's page shows: form fields, `Content-Type:
/// application/json`, the bare client key in Basic.
async fn login(s: &Server, key: &str, username: &str, password_md5: &str) -> reqwest::Response {
    send(
        s.post(LOGIN)
            .header("authorization", basic(key))
            .header("content-type", "application/json")
            .body(format!("username={username}&password={password_md5}")),
    )
    .await
}

async fn refresh(s: &Server, key: &str, token: &str) -> reqwest::Response {
    send(
        s.post(REFRESH)
            .header("authorization", basic(key))
            .header("content-type", "application/json")
            .body(format!("refresh_token={token}")),
    )
    .await
}

async fn spring_error(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        vec!["error", "error_description"],
        "Spring's error shape"
    );
    (status, body)
}

#[tokio::test]
async fn login_answers_exactly_as_the_page_shows() {
    let (s, id) = setup(&[]);
    s.sync().await;
    let r = login(&s, &id, "123456", &md5(PASSWORD)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let text = r.text().await.unwrap();
    // Field order as on the page.
    let order: Vec<usize> = [
        "\"access_token\"",
        "\"token_type\"",
        "\"refresh_token\"",
        "\"expires_in\"",
        "\"scope\"",
        "\"device_id\"",
        "\"client_id\"",
        "\"jti\"",
    ]
    .iter()
    .map(|k| {
        text.find(k)
            .unwrap_or_else(|| panic!("{k} missing in {text}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body.as_object().unwrap().len(), 8);
    assert_eq!(body["token_type"], "bearer");
    let expires_in = body["expires_in"].as_u64().unwrap();
    assert!((8998..=9000).contains(&expires_in), "{expires_in}");
    assert_eq!(body["scope"], "ROLE_TV_GRID device");
    assert_eq!(body["device_id"], "123456");
    assert_eq!(body["client_id"], id.as_str());
    let jti = body["jti"].as_str().unwrap();
    assert_eq!(jti.len(), 36, "a UUID like the page's");

    let access = body["access_token"].as_str().unwrap();
    let claims = verify_with_jwks(
        &s.http,
        &format!("{}/.well-known/jwks.json", s.url),
        access,
        &s.url,
        "rest",
    )
    .await;
    assert_eq!(claims["aud"], json!(["rest"]));
    assert_eq!(claims["device_id"], "123456");
    assert_eq!(claims["grant_type"], "device_credentials");
    assert_eq!(claims["scope"], json!(["ROLE_TV_GRID", "device"]));
    assert_eq!(claims["authorities"], json!(["ROLE_TV_GRID", "device"]));
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["jti"], jti);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        9000
    );
    let (rh, rc) = jwt_parts(body["refresh_token"].as_str().unwrap());
    assert_eq!(rh["alg"], "HS256");
    assert_eq!(rc["ati"], jti, "the refresh token names its access token");
    assert_eq!(rc["device_id"], "123456");
    assert_eq!(rc["scope"], json!(["ROLE_TV_GRID", "device"]));
    assert_eq!(rc["user_name"], "123456");
    let refresh_life = rc["exp"].as_i64().unwrap() - rc["iat"].as_i64().unwrap();
    assert_eq!(refresh_life, 180 * 86_400);
}

#[tokio::test]
async fn every_parameter_placement_and_client_key_form_is_accepted() {
    let (s, public_id) = setup(&[]);
    let (conf_id, conf_secret) = s.client(&[
        "--name",
        "confidential",
        "--api",
        "rest=device",
        "--grant",
        "device_credentials",
    ]);
    s.cli_ok(&[
        "user",
        "create",
        "--client",
        &conf_id,
        "--username",
        "imported@example.com",
        "--password-md5",
        &md5("old-password").to_uppercase(),
    ]);
    s.sync().await;
    let pw = md5(PASSWORD);
    // JSON body, grant_type in the body.
    let r = send(
        s.post("/v1/token")
            .header("authorization", basic(&public_id))
            .json(
                &json!({"grant_type": "device_credentials", "username": "123456", "password": pw}),
            ),
    )
    .await;
    assert_eq!(r.status(), 200);
    // Everything in the query.
    let r = send(
        s.post(&format!("{LOGIN}&username=123456&password={pw}"))
            .header("authorization", basic(&format!("{public_id}:"))),
    )
    .await;
    assert_eq!(r.status(), 200);
    // A confidential client: id:secret; an imported MD5 password (any case).
    let r = send(
        s.post(LOGIN)
            .header("authorization", basic(&format!("{conf_id}:{conf_secret}")))
            .form(&[
                ("username", "imported@example.com"),
                ("password", &md5("old-password")),
            ]),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "device");
    // A confidential client cannot use a bare key.
    let r = send(
        s.post(LOGIN)
            .header("authorization", basic(&conf_id))
            .form(&[
                ("username", "imported@example.com"),
                ("password", &md5("old-password")),
            ]),
    )
    .await;
    let (status, body) = spring_error(r).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

#[tokio::test]
async fn refresh_with_the_default_reuse_policy_returns_the_same_refresh_token() {
    let (s, id) = setup(&[]);
    s.sync().await;
    let first: Value = login(&s, &id, "123456", &md5(PASSWORD))
        .await
        .json()
        .await
        .unwrap();
    let rt = first["refresh_token"].as_str().unwrap();
    for _ in 0..2 {
        let r = refresh(&s, &id, rt).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["refresh_token"], rt,
            "Spring's reuse: same refresh token"
        );
        assert_ne!(body["jti"], first["jti"], "a new access token");
        assert_ne!(body["access_token"], first["access_token"]);
        assert_eq!(body["device_id"], "123456");
        assert_eq!(body["token_type"], "bearer");
    }
}

#[tokio::test]
async fn errors_are_answered_in_springs_shape() {
    let (s, id) = setup(&[("TOLLGATE_DEVICE_CREDENTIALS_REFRESH_LIFETIME", "1s")]);
    s.sync().await;
    let pw = md5(PASSWORD);

    let r = send(
        s.post("/v1/token?grant_type=password")
            .header("authorization", basic(&id))
            .form(&[("username", "123456"), ("password", &pw)]),
    )
    .await;
    let (status, body) = spring_error(r).await;
    assert_eq!(
        (status, &body),
        (
            400,
            &json!({"error": "unsupported_grant_type", "error_description": "Unsupported grant type: password"})
        )
    );

    let bad_client =
        json!({"error": "invalid_client", "error_description": "Bad client credentials"});
    for key in ["no-such-client", "no-such-client:secret"] {
        let (status, body) = spring_error(login(&s, key, "123456", &pw).await).await;
        assert_eq!((status, &body), (401, &bad_client), "{key}");
    }
    let r = send(
        s.post(LOGIN)
            .form(&[("username", "123456"), ("password", &pw)]),
    )
    .await;
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"oauth2/client\""
    );
    let (status, body) = spring_error(r).await;
    assert_eq!((status, &body), (401, &bad_client), "no Authorization");

    let bad_credentials = json!({"error": "invalid_grant", "error_description": "Bad credentials"});
    for (user, password) in [
        ("123456", md5("wrong").as_str()),
        ("123456", PASSWORD), // the password itself, not its MD5
        ("654321", pw.as_str()),
    ] {
        let (status, body) = spring_error(login(&s, &id, user, password).await).await;
        assert_eq!((status, &body), (400, &bad_credentials), "{user}");
    }

    let r = send(
        s.post(LOGIN)
            .header("authorization", basic(&id))
            .form(&[("password", &pw)]),
    )
    .await;
    let (status, body) = spring_error(r).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, body) =
        spring_error(send(s.post(REFRESH).header("authorization", basic(&id))).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // Unknown (forged, foreign) refresh tokens.
    let (status, body) = spring_error(refresh(&s, &id, "not-a-token").await).await;
    assert_eq!(
        (status, &body),
        (
            400,
            &json!({"error": "invalid_grant", "error_description": "Invalid refresh token"})
        )
    );

    // An expired one (refresh lifetime 1 s here).
    let body: Value = login(&s, &id, "123456", &pw).await.json().await.unwrap();
    let rt = body["refresh_token"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body) = spring_error(refresh(&s, &id, &rt).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );

    // A disabled user can neither log in nor refresh.
    let body: Value = login(&s, &id, "123456", &pw).await.json().await.unwrap();
    assert!(body["access_token"].is_string());
    s.cli_ok(&["user", "disable", "123456"]);
    s.sync().await;
    let (status, body) = spring_error(login(&s, &id, "123456", &pw).await).await;
    assert_eq!((status, &body), (400, &bad_credentials));
    // Nothing secret in any answer.
    assert!(!body.to_string().contains(&pw));
}

#[tokio::test]
async fn users_are_managed_from_the_cli_and_never_stored_in_clear() {
    let (s, id) = setup(&[]);
    let listed = s.cli_json(&["user", "list", "--client", &id]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["username"], "123456");
    assert!(listed[0].get("password").is_none());
    s.cli_ok(&["user", "set-password", "123456", "--password", "new-pin"]);
    s.sync().await;
    assert_eq!(login(&s, &id, "123456", &md5(PASSWORD)).await.status(), 400);
    assert_eq!(
        login(&s, &id, "123456", &md5("new-pin")).await.status(),
        200
    );
    let at_rest = s.data_at_rest();
    for needle in ["new-pin", md5("new-pin").as_str(), PASSWORD] {
        assert!(
            !at_rest
                .windows(needle.len())
                .any(|w| w == needle.as_bytes()),
            "{needle} found at rest"
        );
    }
    let out = s.cli(&[
        "user",
        "create",
        "--client",
        &id,
        "--username",
        "123456",
        "--password",
        "x",
    ]);
    assert!(
        !out.status.success(),
        "usernames are unique per environment"
    );
    let body: Value = login(&s, &id, "123456", &md5("new-pin"))
        .await
        .json()
        .await
        .unwrap();
    let rt = body["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(
        refresh(&s, &id, &rt).await.status(),
        200,
        "cached from here on"
    );
    s.cli_ok(&["user", "delete", "123456"]);
    s.sync().await;
    assert_eq!(
        refresh(&s, &id, &rt).await.status(),
        400,
        "a deleted user's sessions end on every instance at the next sync"
    );
    assert_eq!(
        login(&s, &id, "123456", &md5("new-pin")).await.status(),
        400
    );
}

/// The Spring claim shape's options (issue 11 §2): by default as before,
/// plus the client's own `--claims`; then `aud` of every API as Spring lists
/// resource ids, no `user_name` (Dive's samples have none), and
/// `authorities` from roles (the user's, else its client's), distinct from
/// `scope`.
#[tokio::test]
async fn spring_claim_options_aud_user_name_roles_and_custom_claims() {
    let claims_of = |r: &Value| jwt_parts(r["access_token"].as_str().unwrap()).1;
    let provision = |s: &Server| -> String {
        s.cli_ok(&["api", "create", "api-server", "--permission", "device"]);
        s.cli_ok(&["api", "create", "oauth-server"]);
        let id = s.public_client(&[
            "--name",
            "rtve",
            "--api",
            "api-server=device",
            "--api",
            "oauth-server",
            "--grant",
            "device_credentials",
            "--claims",
            r#"{"tenant":"rtve","authorities":["IGNORED"]}"#,
            "--role",
            "ROLE_CATALOG",
            "--role",
            "ROLE_TV_GRID",
        ]);
        s.user(&id, "123456", PASSWORD);
        s.user(&id, "654321", PASSWORD);
        s.cli_ok(&["user", "set-roles", "654321", "--role", "ROLE_ONE_SHOT"]);
        id
    };

    // Defaults: aud a one-API list, user_name, authorities = scope; the
    // client's custom claim is there now, one named like Spring's is not.
    let s = Server::start_with(&["--contracts", "all"], &[]);
    let id = provision(&s);
    s.sync().await;
    let r = login(&s, &id, "123456", &md5(PASSWORD)).await;
    assert_eq!(r.status(), 200);
    let c = claims_of(&r.json().await.unwrap());
    assert_eq!(c["aud"], json!(["api-server"]));
    assert_eq!(c["user_name"], "123456");
    assert_eq!(c["authorities"], json!(["device"]));
    assert_eq!(c["scope"], json!(["device"]));
    assert_eq!(c["tenant"], "rtve");
    assert!(
        !c.to_string().contains("IGNORED"),
        "Spring's own claim wins: {c}"
    );

    // Dive's own shape.
    let s = Server::start_with(
        &["--contracts", "all"],
        &[
            ("TOLLGATE_DEVICE_CREDENTIALS_SPRING_AUD", "all"),
            ("TOLLGATE_DEVICE_CREDENTIALS_SPRING_USER_NAME", "off"),
            ("TOLLGATE_DEVICE_CREDENTIALS_SPRING_AUTHORITIES", "roles"),
        ],
    );
    let id = provision(&s);
    s.sync().await;
    let r = login(&s, &id, "123456", &md5(PASSWORD)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let c = claims_of(&body);
    assert_eq!(c["aud"], json!(["api-server", "oauth-server"]));
    assert!(c.get("user_name").is_none(), "{c}");
    assert_eq!(c["device_id"], "123456");
    assert_eq!(c["authorities"], json!(["ROLE_CATALOG", "ROLE_TV_GRID"]));
    assert_eq!(c["scope"], json!(["device"]));
    // The same after a refresh (the claims come from the family and settings).
    let r = refresh(&s, &id, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200);
    let c = claims_of(&r.json().await.unwrap());
    assert_eq!(c["authorities"], json!(["ROLE_CATALOG", "ROLE_TV_GRID"]));
    assert!(c.get("user_name").is_none());
    // A user with roles of its own.
    let r = login(&s, &id, "654321", &md5(PASSWORD)).await;
    let c = claims_of(&r.json().await.unwrap());
    assert_eq!(c["authorities"], json!(["ROLE_ONE_SHOT"]));
    let users = s.cli_json(&["user", "list"]);
    assert!(users.to_string().contains("ROLE_ONE_SHOT"), "{users}");

    // aud as a plain string.
    let s = Server::start_with(
        &["--contracts", "all"],
        &[("TOLLGATE_DEVICE_CREDENTIALS_SPRING_AUD", "string")],
    );
    let id = provision(&s);
    s.sync().await;
    let r = login(&s, &id, "123456", &md5(PASSWORD)).await;
    assert_eq!(claims_of(&r.json().await.unwrap())["aud"], "api-server");
}

/// Roles change in place (`client update --role`, `--no-roles`; `user
/// create --role`), and the Spring options are set for one environment
/// (`env update NAME --set device_credentials_spring_*`), not the others.
#[tokio::test]
async fn roles_change_in_place_and_spring_options_are_per_environment() {
    let claims_of = |r: &Value| jwt_parts(r["access_token"].as_str().unwrap()).1;
    let s = Server::start_with(&["--contracts", "all"], &[]);
    s.cli_ok(&["env", "create", "plain", "--contracts", "all"]);
    for env in ["default", "plain"] {
        s.cli_ok(&[
            "api",
            "create",
            "api-server",
            "--env",
            env,
            "--permission",
            "device",
        ]);
    }
    let provision = |env: &str| -> String {
        let id = s.public_client(&[
            "--name",
            "rtve",
            "--env",
            env,
            "--api",
            "api-server=device",
            "--grant",
            "device_credentials",
        ]);
        s.cli_ok(&[
            "user",
            "create",
            "--client",
            &id,
            "--env",
            env,
            "--username",
            "123456",
            "--password",
            PASSWORD,
        ]);
        s.cli_ok(&[
            "user",
            "create",
            "--client",
            &id,
            "--env",
            env,
            "--username",
            "654321",
            "--password",
            PASSWORD,
            "--role",
            "ROLE_OWN",
        ]);
        s.cli_ok(&[
            "client",
            "update",
            &id,
            "--env",
            env,
            "--role",
            "ROLE_CATALOG",
        ]);
        id
    };
    let id = provision("default");
    let plain_id = provision("plain");
    s.cli_ok(&[
        "env",
        "update",
        "default",
        "--set",
        "device_credentials_spring_authorities=roles",
        "--set",
        "device_credentials_spring_user_name=off",
        "--set",
        "device_credentials_spring_aud=string",
    ]);
    s.sync().await;

    // The default environment: roles as authorities (the client's, or the
    // user's own), no user_name, aud a string.
    let r = login(&s, &id, "123456", &md5(PASSWORD)).await;
    assert_eq!(r.status(), 200);
    let c = claims_of(&r.json().await.unwrap());
    assert_eq!(c["authorities"], json!(["ROLE_CATALOG"]));
    assert!(c.get("user_name").is_none(), "{c}");
    assert_eq!(c["aud"], "api-server");
    let r = login(&s, &id, "654321", &md5(PASSWORD)).await;
    assert_eq!(
        claims_of(&r.json().await.unwrap())["authorities"],
        json!(["ROLE_OWN"])
    );

    // "plain" keeps the server's Spring options.
    let r = send(
        s.post(&format!("/e/plain{LOGIN}"))
            .header("authorization", basic(&plain_id))
            .form(&[("username", "123456"), ("password", &md5(PASSWORD))]),
    )
    .await;
    assert_eq!(r.status(), 200);
    let c = claims_of(&r.json().await.unwrap());
    assert_eq!(c["authorities"], json!(["device"]));
    assert_eq!(c["user_name"], "123456");
    assert_eq!(c["aud"], json!(["api-server"]));

    // The client's roles replaced, then cleared, in place.
    s.cli_ok(&["client", "update", &id, "--role", "ROLE_TV_GRID"]);
    s.sync().await;
    let r = login(&s, &id, "123456", &md5(PASSWORD)).await;
    assert_eq!(
        claims_of(&r.json().await.unwrap())["authorities"],
        json!(["ROLE_TV_GRID"])
    );
    let shown = s.cli_json(&["client", "update", &id, "--no-roles"]);
    assert_eq!(shown["roles"], json!([]), "{shown}");
    s.sync().await;
    let r = login(&s, &id, "123456", &md5(PASSWORD)).await;
    let c = claims_of(&r.json().await.unwrap());
    assert!(!c.to_string().contains("ROLE_"), "{c}");
}
