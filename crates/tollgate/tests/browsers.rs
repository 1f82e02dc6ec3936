//! Browsers and strict clients (issue 11 §3), against the running server:
//! CORS as a browser plays it (preflight, then the request), header names on
//! the wire as the vendor writes them, header-login names that are e-mail
//! addresses compared without case, and what a late reuse of a rotated
//! refresh token does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};

use common::login::{EMAIL, PASSWORD, basic, login, pair_of, refresh, setup};
use common::{Server, send};

const APP: &str = "https://app.example.com";
const EVIL: &str = "https://evil.example";

/// One raw HTTP/1.1 exchange on a plain TCP connection: the bytes as they
/// came, so that header-name case is visible.
fn raw_exchange(s: &Server, request: &str) -> String {
    let addr = s.url.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn header_names_go_out_as_the_vendor_writes_them() {
    let s = setup(&[]);
    s.sync().await;
    let addr = s.url.trim_start_matches("http://").to_string();
    let head = raw_exchange(
        &s,
        &format!(
            "GET /v2/authentication/login HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            basic(EMAIL, PASSWORD)
        ),
    );
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    for name in [
        "Set-Authorization",
        "Set-Refresh-Token",
        "Access-Control-Expose-Headers",
        "Cache-Control",
    ] {
        assert!(
            head.contains(&format!("\r\n{name}: ")),
            "{name} title-cased on the wire:\n{head}"
        );
    }
    assert!(!head.contains("\r\nset-authorization:"), "{head}");
    // The refresh answers the same way.
    let refresh_token = head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("Set-Refresh-Token: "))
        .unwrap()
        .to_string();
    let head = raw_exchange(
        &s,
        &format!(
            "GET /v2/authentication/refresh HTTP/1.1\r\nHost: {addr}\r\nRefresh-Token: {refresh_token}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nSet-Authorization: "), "{head}");
    assert!(head.contains("\r\nSet-Refresh-Token: "), "{head}");
}

/// A browser's preflight of `method path` from `origin` asking for `headers`.
async fn preflight(
    s: &Server,
    path: &str,
    origin: &str,
    method: &str,
    headers: &str,
) -> reqwest::Response {
    send(
        s.http
            .request(reqwest::Method::OPTIONS, format!("{}{path}", s.url))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers),
    )
    .await
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

fn varies_on_origin(r: &reqwest::Response) -> bool {
    r.headers()
        .get_all("vary")
        .iter()
        .any(|v| v.to_str().unwrap().to_ascii_lowercase().contains("origin"))
}

#[tokio::test]
async fn a_browser_on_an_allowed_origin_passes_the_preflight_and_reads_the_pair() {
    let s = setup(&[("TOLLGATE_CORS_ALLOWED_ORIGINS", &format!("{APP},*"))]);
    s.sync().await;

    // The preflight of the login, as a browser sends it before a GET with
    // an Authorization header.
    let r = preflight(&s, "/v2/authentication/login", APP, "GET", "authorization").await;
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(APP));
    let allowed = header(&r, "access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("refresh-token"));
    assert!(
        header(&r, "access-control-allow-methods")
            .unwrap()
            .contains("GET")
    );
    assert!(varies_on_origin(&r));
    assert!(header(&r, "access-control-allow-credentials").is_none());

    // The request itself: the origin is allowed, and the pair is readable.
    let r = send(
        s.get("/v2/authentication/login")
            .header("origin", APP)
            .header("authorization", basic(EMAIL, PASSWORD)),
    )
    .await;
    assert_eq!(header(&r, "access-control-allow-origin"), Some(APP));
    assert!(varies_on_origin(&r));
    let expose = header(&r, "access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(expose.contains("set-authorization") && expose.contains("set-refresh-token"));
    let (_, rt) = pair_of(&r);

    // The refresh, whose token travels in Refresh-Token.
    let r = preflight(
        &s,
        "/v2/authentication/refresh",
        APP,
        "GET",
        "refresh-token",
    )
    .await;
    assert_eq!(r.status(), 204);
    let r = send(
        s.get("/v2/authentication/refresh")
            .header("origin", APP)
            .header("refresh-token", &rt),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(APP));

    // A refusal is readable by the page too (it can tell 401 from a
    // network error).
    let r = send(
        s.get("/v2/authentication/login")
            .header("origin", APP)
            .header("authorization", basic(EMAIL, "wrong")),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(APP));

    // Every contract route answers its preflight, in every environment.
    s.cli_ok(&["env", "create", "web", "--contracts", "all"]);
    s.sync().await;
    for path in [
        "/oauth/token",
        "/oauth/introspect",
        "/oauth/revoke",
        "/v1/token",
        "/pub/v2/players/access-token",
        "/v2/authentication/logout",
        "/e/web/oauth/token",
        "/e/web/v2/authentication/login",
        "/e/web/v1/token",
    ] {
        let r = preflight(&s, path, APP, "POST", "authorization,content-type").await;
        assert_eq!(r.status(), 204, "{path}");
        assert_eq!(
            header(&r, "access-control-allow-origin"),
            Some(APP),
            "{path}"
        );
    }
}

#[tokio::test]
async fn other_origins_are_refused_and_a_star_opens_only_what_carries_no_credentials() {
    let s = setup(&[("TOLLGATE_CORS_ALLOWED_ORIGINS", &format!("{APP},*"))]);
    s.sync().await;
    // A credential-carrying route: `*` does not open it.
    let r = preflight(&s, "/v2/authentication/login", EVIL, "GET", "authorization").await;
    assert_eq!(r.status(), 403);
    assert!(header(&r, "access-control-allow-origin").is_none());
    assert!(varies_on_origin(&r));
    let r = send(
        s.get("/v2/authentication/login")
            .header("origin", EVIL)
            .header("authorization", basic(EMAIL, PASSWORD)),
    )
    .await;
    // Served (CORS is the browser's rule, not an authentication), but the
    // browser will not hand the answer to the page.
    assert_eq!(r.status(), 200);
    assert!(header(&r, "access-control-allow-origin").is_none());
    assert!(varies_on_origin(&r));
    // The discovery documents carry none: any origin may read them.
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let r = send(s.get(path).header("origin", EVIL)).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            header(&r, "access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
    }
    // A request without Origin (not a browser's cross-origin call) is as before.
    let r = login(&s, "/v2/authentication/login").await;
    assert!(header(&r, "access-control-allow-origin").is_none());
}

#[tokio::test]
async fn without_allowed_origins_there_are_no_cors_answers() {
    let s = setup(&[]);
    s.sync().await;
    let r = preflight(&s, "/v2/authentication/login", APP, "GET", "authorization").await;
    assert_eq!(r.status(), 405, "an OPTIONS is just another method");
    let r = send(s.get("/.well-known/jwks.json").header("origin", APP)).await;
    assert!(header(&r, "access-control-allow-origin").is_none());
    // A bad value stops the server with a message naming the key.
    let out = std::process::Command::new(common::BIN)
        .args(["serve", "--print-config"])
        .env("TOLLGATE_CORS_ALLOWED_ORIGINS", "app.example.com")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cors_allowed_origins"));
}

#[tokio::test]
async fn e_mail_user_names_compare_without_case_unless_switched_off() {
    let s = setup(&[]);
    s.sync().await;
    let shouted = EMAIL.to_ascii_uppercase();
    let r = send(
        s.get("/v2/authentication/login")
            .header("authorization", basic(&shouted, PASSWORD)),
    )
    .await;
    let (access, rt) = pair_of(&r);
    // The session is the stored user's, whatever case was typed.
    assert_eq!(common::jwt_parts(&access).1["sub"], EMAIL);
    assert_eq!(refresh(&s, &rt).await.status(), 200);
    // A wrong password is still wrong.
    let r = send(
        s.get("/v2/authentication/login")
            .header("authorization", basic(&shouted, "wrong")),
    )
    .await;
    assert_eq!(r.status(), 401);

    // Two users whose names differ only in case (an import can make them):
    // each by its exact name, neither by a third spelling.
    let id = s.cli_json(&["user", "list"])[0]["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    s.user(&id, "Twin@Example.com", "first twin");
    s.user(&id, "twin@example.com", "second twin");
    s.sync().await;
    let try_login = |user: &'static str, pw: &'static str| {
        send(
            s.get("/v2/authentication/login")
                .header("authorization", basic(user, pw)),
        )
    };
    assert_eq!(
        try_login("Twin@Example.com", "first twin").await.status(),
        200
    );
    assert_eq!(
        try_login("twin@example.com", "second twin").await.status(),
        200
    );
    assert_eq!(
        try_login("TWIN@EXAMPLE.COM", "first twin").await.status(),
        401
    );
    assert_eq!(
        try_login("TWIN@EXAMPLE.COM", "second twin").await.status(),
        401
    );

    // Switched off: exact names only.
    let s = setup(&[("TOLLGATE_HEADER_LOGIN_EMAIL_CASE_INSENSITIVE", "off")]);
    s.sync().await;
    let r = send(
        s.get("/v2/authentication/login")
            .header("authorization", basic(&shouted, PASSWORD)),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(login(&s, "/v2/authentication/login").await.status(), 200);
}

/// Logs in, rotates once, then presents the replaced token again after the
/// (zero) leeway. Returns the server and the current refresh token.
async fn late_reuse(extra: &[(&str, &str)]) -> (Server, String) {
    let mut env = vec![("TOLLGATE_REFRESH_RETRY_LEEWAY", "0")];
    env.extend_from_slice(extra);
    let s = setup(&env);
    s.sync().await;
    let (_, first) = pair_of(&login(&s, "/v2/authentication/login").await);
    let (_, second) = pair_of(&refresh(&s, &first).await);
    let r = refresh(&s, &first).await;
    assert_eq!(r.status(), 401, "a rotated token is refused");
    (s, second)
}

async fn metrics(s: &Server) -> String {
    s.metrics().await
}

#[tokio::test]
async fn a_late_reuse_revokes_the_family_by_default() {
    let (s, current) = late_reuse(&[]).await;
    assert_eq!(
        refresh(&s, &current).await.status(),
        401,
        "the whole session ended"
    );
    let m = metrics(&s).await;
    assert!(
        m.contains("tollgate_refresh_reuse_total{contract=\"header-login\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn a_late_reuse_can_refuse_only_that_token() {
    let (s, current) = late_reuse(&[("TOLLGATE_HEADER_LOGIN_LATE_REUSE", "refuse-token")]).await;
    // The session goes on with its current token, and keeps rotating.
    let (_, next) = pair_of(&refresh(&s, &current).await);
    assert_eq!(refresh(&s, &next).await.status(), 200);
    let m = metrics(&s).await;
    assert!(
        m.contains("tollgate_refresh_reuse_refused_total{contract=\"header-login\"} 1"),
        "{m}"
    );
    assert!(!m.contains("tollgate_refresh_reuse_total{"), "{m}");
    // The setting is printed back as set.
    let out = std::process::Command::new(common::BIN)
        .args(["serve", "--print-config"])
        .env("TOLLGATE_HEADER_LOGIN_LATE_REUSE", "refuse-token")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("header_login_late_reuse = \"refuse-token\""),
        "{text}"
    );
    assert!(
        text.contains("header_login_email_case_insensitive = \"on\""),
        "{text}"
    );
}

/// The setting of `key` as `env show NAME` reports it: (value, source).
fn shown(s: &Server, env: &str, key: &str) -> (String, String) {
    let shown = s.cli_json(&["env", "show", env]);
    let row = shown["effective"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == key)
        .unwrap_or_else(|| panic!("{key} in env show"))
        .clone();
    (
        row["value"].as_str().unwrap().to_string(),
        row["source"].as_str().unwrap().to_string(),
    )
}

/// CORS, the e-mail case rule and the late-reuse policy are set for one
/// environment (`env update NAME --set`), leaving the others with the
/// server's: a preflight to a fixed route and to a dispatched one is
/// answered for the environment that would serve the request.
#[tokio::test]
async fn browser_settings_are_per_environment() {
    let s = setup(&[]);
    s.cli_ok(&["env", "create", "plain", "--contracts", "all"]);
    s.sync().await;
    let shouted = EMAIL.to_ascii_uppercase();
    let shouted_login = || {
        send(
            s.get("/v2/authentication/login")
                .header("authorization", basic(&shouted, PASSWORD)),
        )
    };
    assert_eq!(shouted_login().await.status(), 200, "the server's rule: on");

    // A bad value is refused before it is stored, naming the key.
    let out = s.cli(&[
        "env",
        "update",
        "default",
        "--set",
        "cors_allowed_origins=app.example.com",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cors_allowed_origins"));

    s.cli_ok(&[
        "env",
        "update",
        "default",
        "--set",
        &format!("cors_allowed_origins={APP}"),
        "--set",
        "header_login_email_case_insensitive=off",
        "--set",
        "header_login_late_reuse=refuse-token",
        "--set",
        "refresh_retry_leeway=0",
    ]);
    s.sync().await;
    assert_eq!(
        shown(&s, "default", "cors_allowed_origins"),
        (APP.to_string(), "environment".to_string())
    );
    assert_eq!(
        shown(&s, "plain", "cors_allowed_origins"),
        ("none".to_string(), "server".to_string())
    );
    assert_eq!(
        shown(&s, "default", "header_login_late_reuse").0,
        "refuse-token"
    );

    // CORS: the default environment (at the root and under /e/default)
    // answers the preflight, on the dispatched header-login and
    // device-credentials paths and on the fixed token endpoint; "plain"
    // has no origins, so an OPTIONS there is just another method.
    for path in [
        "/v2/authentication/login",
        "/v1/token",
        "/oauth/token",
        "/e/default/v2/authentication/login",
        "/e/default/oauth/token",
    ] {
        let r = preflight(&s, path, APP, "POST", "authorization").await;
        assert_eq!(r.status(), 204, "{path}");
        assert_eq!(
            header(&r, "access-control-allow-origin"),
            Some(APP),
            "{path}"
        );
        assert!(varies_on_origin(&r), "{path}");
    }
    for path in ["/e/plain/v2/authentication/login", "/e/plain/oauth/token"] {
        let r = preflight(&s, path, APP, "POST", "authorization").await;
        assert_eq!(r.status(), 405, "{path}");
        assert!(
            header(&r, "access-control-allow-origin").is_none(),
            "{path}"
        );
    }
    let r = send(
        s.get("/e/plain/.well-known/jwks.json")
            .header("origin", APP),
    )
    .await;
    assert!(header(&r, "access-control-allow-origin").is_none());
    let r = send(s.get("/.well-known/jwks.json").header("origin", APP)).await;
    assert_eq!(header(&r, "access-control-allow-origin"), Some(APP));

    // E-mail names: exact in this environment now.
    assert_eq!(shouted_login().await.status(), 401);
    let (_, first) = pair_of(&login(&s, "/v2/authentication/login").await);

    // Late reuse: refuse-token here, so the session outlives a replay.
    let (_, second) = pair_of(&refresh(&s, &first).await);
    assert_eq!(refresh(&s, &first).await.status(), 401);
    assert_eq!(refresh(&s, &second).await.status(), 200, "the family lives");

    // Unset: the server's settings again.
    s.cli_ok(&[
        "env",
        "update",
        "default",
        "--unset",
        "cors_allowed_origins",
        "--unset",
        "header_login_email_case_insensitive",
    ]);
    s.sync().await;
    let r = preflight(&s, "/v2/authentication/login", APP, "GET", "authorization").await;
    assert_eq!(r.status(), 405);
    assert_eq!(shouted_login().await.status(), 200);
}
