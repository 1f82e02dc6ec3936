//! The provider's side of the partner portal over HTTP without a browser
//! (the browser test is tests/portal/): a partner asks for a package in
//! the portal; the provider signs in to the provider pages with an admin
//! token, approves (the partner can then create a client with it),
//! disables the partner in one click (its client refused within a second)
//! and reads the audit log; a read-only token may look, not change; a
//! token limited to environments, a forged CSRF token and a bad token are
//! refused. Also `tollgate partner requests|approve|decline` and the admin
//! API's package-request routes. Over SQLite and, with
//! `TG_TEST_STORE=postgres`, PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::Server;
use common::html::{after, cookie, text_of};
use reqwest::header::{COOKIE, LOCATION};
use serde_json::{Value, json};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// API `odds` (packages basic, premium, live) and partner `acme` offered
/// basic, with a signed-in account `jane`; returns the session cookie.
async fn partner_signed_in(s: &Server, http: &reqwest::Client) -> String {
    s.cli_ok(&[
        "api",
        "create",
        "odds",
        "--permission",
        "odds:read",
        "--permission",
        "odds:live",
        "--package",
        "basic=odds:read",
        "--package",
        "premium=odds:read,odds:live",
        "--package",
        "live=odds:live",
    ]);
    s.sync().await;
    s.cli_ok(&["partner", "create", "acme", "--offer", "odds=basic"]);
    let portal = format!("{}/portal/", s.url);
    let link = s.cli_json(&["partner", "invite", "acme", "--portal-url", &portal])["link"]
        .as_str()
        .unwrap()
        .to_string();
    let page = http.get(&link).send().await.unwrap();
    let pre = cookie(&page, "tg_pre");
    let html = page.text().await.unwrap();
    let csrf = after(&html, "name=\"csrf\"", "value");
    let signed = http
        .post(format!("{portal}accept"))
        .header(COOKIE, &pre)
        .form(&[
            ("csrf", csrf.as_str()),
            ("token", link.split("token=").nth(1).unwrap()),
            ("login", "jane"),
            ("password", "long enough password"),
            ("password2", "long enough password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    cookie(&signed, "tg_portal")
}

/// Asks for `package` of odds in default with `note`; returns the page.
async fn ask(
    s: &Server,
    http: &reqwest::Client,
    session: &str,
    package: &str,
    note: &str,
) -> (u16, String) {
    let page = http
        .get(format!("{}/portal/requests", s.url))
        .header(COOKIE, session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let csrf = after(&html, "name=\"csrf\"", "value");
    let value = json!(["default", "odds", package]).to_string();
    let r = http
        .post(format!("{}/portal/requests", s.url))
        .header(COOKIE, session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("package", value.as_str()),
            ("note", note),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// An admin client with `grants` of the admin API and a token of it.
async fn admin_token(s: &Server, grants: &[&str]) -> String {
    let v = s.cli_json(&["admin", "bootstrap"]);
    let (id, secret) = (
        v["client_id"].as_str().unwrap().to_string(),
        v["client_secret"].as_str().unwrap().to_string(),
    );
    s.sync().await;
    let full = token_of(s, &id, &secret).await;
    if grants.is_empty() {
        return full;
    }
    let r = s
        .http
        .post(format!("{}/admin/v1/environments/default/clients", s.url))
        .bearer_auth(&full)
        .json(&json!({"name": "narrow", "apis": [{"api": "tollgate-admin", "grants": grants}]}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    s.sync().await;
    token_of(
        s,
        v["client"]["client_id"].as_str().unwrap(),
        v["client_secret"].as_str().unwrap(),
    )
    .await
}

async fn token_of(s: &Server, id: &str, secret: &str) -> String {
    let r = s.token(id, secret, &[("audience", "tollgate-admin")]).await;
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// Signs in to the provider pages with `token`: the answer, and the cookie
/// when it was accepted.
async fn provider_login(
    s: &Server,
    http: &reqwest::Client,
    token: &str,
) -> (u16, Option<String>, String) {
    let page = http
        .get(format!("{}/portal/provider/login", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let pre = cookie(&page, "tg_pre");
    let html = page.text().await.unwrap();
    let csrf = after(&html, "name=\"csrf\"", "value");
    let r = http
        .post(format!("{}/portal/provider/login", s.url))
        .header(COOKIE, &pre)
        .form(&[("csrf", csrf.as_str()), ("token", token)])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let c = (status == 303).then(|| cookie(&r, "tg_provider"));
    (status, c, r.text().await.unwrap())
}

async fn provider_page(s: &Server, http: &reqwest::Client, c: &str, path: &str) -> (u16, String) {
    let r = http
        .get(format!("{}/portal/provider/{path}", s.url))
        .header(COOKIE, c)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// One of the overview's buttons: the CSRF token of the page, then the POST.
async fn provider_click(
    s: &Server,
    http: &reqwest::Client,
    c: &str,
    action: &str,
    field: (&str, &str),
) -> reqwest::Response {
    let (_, html) = provider_page(s, http, c, "").await;
    let csrf = after(&html, "name=\"csrf\"", "value");
    http.post(format!("{}/portal/provider/{action}", s.url))
        .header(COOKIE, c)
        .form(&[("csrf", csrf.as_str()), field])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_request_approved_in_the_provider_pages_then_a_one_click_disable() {
    let s = Server::start();
    let http = no_redirects();
    let session = partner_signed_in(&s, &http).await;

    // The dashboard links to the request page, which offers what is not
    // offered yet (premium, live), never basic.
    let dash = http
        .get(format!("{}/portal/", s.url))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(dash.contains("href=\"/portal/requests\""), "{dash}");
    let (status, html) = ask(&s, &http, &session, "premium", "for the live <feed>").await;
    assert_eq!(status, 201, "{html}");
    assert!(html.contains("Request sent"), "{html}");
    assert!(html.contains("for the live") || html.contains("pending"));
    assert!(!html.contains("<feed>"), "the note is escaped");
    let (status, html) = ask(&s, &http, &session, "premium", "").await;
    assert_eq!(status, 400, "asked already: {html}");
    let (status, _) = ask(&s, &http, &session, "basic", "").await;
    assert_eq!(status, 400, "offered already");

    // The provider signs in with an admin token and sees the request.
    let token = admin_token(&s, &[]).await;
    let (status, _, _) = provider_login(&s, &http, "not a token").await;
    assert_eq!(status, 401);
    let (status, c, _) = provider_login(&s, &http, &token).await;
    assert_eq!(status, 303);
    let c = c.unwrap();
    let (status, html) = provider_page(&s, &http, &c, "").await;
    assert_eq!(status, 200);
    assert!(html.contains("Package requests waiting (1)"), "{html}");
    assert!(html.contains("for the live &lt;feed&gt;"), "{html}");
    let row = after(&html, "id=\"partner-acme\"", "id");
    assert_eq!(row, "partner-acme");
    let id = s.cli_json(&["partner", "requests", "--pending"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A forged CSRF token changes nothing.
    let forged = http
        .post(format!("{}/portal/provider/requests/approve", s.url))
        .header(COOKIE, &c)
        .form(&[("csrf", "forged"), ("id", id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // The partner's session is not a provider's.
    let crossed = http
        .get(format!("{}/portal/provider/", s.url))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(crossed.status(), 303, "to the provider sign-in");

    let approved = provider_click(&s, &http, &c, "requests/approve", ("id", &id)).await;
    assert_eq!(approved.status(), 303);
    assert_eq!(approved.headers()[LOCATION], "/portal/provider/");
    let again = provider_click(&s, &http, &c, "requests/approve", ("id", &id)).await;
    assert_eq!(again.status(), 409, "decided already");
    assert_eq!(
        s.cli_json(&["partner", "requests"])[0]["status"],
        "approved"
    );

    // The partner now has premium in its form and makes a client with it.
    let dash = http
        .get(format!("{}/portal/", s.url))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let premium = json!(["odds", "premium"])
        .to_string()
        .replace('"', "&quot;");
    assert!(dash.contains(&premium), "{dash}");
    let csrf = after(&dash, "action=\"/portal/clients\"", "value");
    let created = http
        .post(format!("{}/portal/clients", s.url))
        .header(COOKIE, &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("env", "default"),
            ("name", "live feed"),
            ("offer", &json!(["odds", "premium"]).to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let html = created.text().await.unwrap();
    let (cid, secret) = (text_of(&html, "client-id"), text_of(&html, "client-secret"));
    let r = s.token(&cid, &secret, &[("audience", "odds")]).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["scope"].as_str().unwrap().contains("odds:live"),
        "premium's permissions: {v}"
    );

    // One click disables the partner: its client is refused within a
    // second on the running server.
    let (_, html) = provider_page(&s, &http, &c, "").await;
    assert!(html.contains("action=\"/portal/provider/partners/disable\""));
    let t = Instant::now();
    let off = provider_click(&s, &http, &c, "partners/disable", ("partner", "acme")).await;
    assert_eq!(off.status(), 303);
    while s.token(&cid, &secret, &[]).await.status() != 401 {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "still served after a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, html) = provider_page(&s, &http, &c, "").await;
    assert!(html.contains("action=\"/portal/provider/partners/enable\""));
    let ended = http
        .get(format!("{}/portal/", s.url))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 303, "the partner's session ended");

    // The audit log, in the pages: the request, its approval, the disable.
    let (status, html) = provider_page(&s, &http, &c, "audit").await;
    assert_eq!(status, 200);
    for action in [
        "portal.package-request.create",
        "package-request.approve",
        "partner.disable",
    ] {
        assert!(html.contains(action), "{action} in {html}");
    }
    assert!(!html.contains(&secret), "no secret in the audit page");

    // Sign-out ends the provider session.
    let (_, html) = provider_page(&s, &http, &c, "").await;
    let csrf = after(&html, "name=\"csrf\"", "value");
    let out = http
        .post(format!("{}/portal/provider/logout", s.url))
        .header(COOKIE, &c)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(provider_page(&s, &http, &c, "").await.0, 303);
}

#[tokio::test]
async fn a_read_only_token_looks_and_a_limited_one_is_refused() {
    let s = Server::start();
    let http = no_redirects();
    let session = partner_signed_in(&s, &http).await;
    assert_eq!(ask(&s, &http, &session, "live", "").await.0, 201);
    let read_only = admin_token(&s, &["admin:read"]).await;
    let (status, c, _) = provider_login(&s, &http, &read_only).await;
    assert_eq!(status, 303);
    let c = c.unwrap();
    let (_, html) = provider_page(&s, &http, &c, "").await;
    assert!(html.contains("Read only"), "{html}");
    assert!(!html.contains("partners/disable"), "no buttons: {html}");
    let id = s.cli_json(&["partner", "requests", "--pending"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = provider_click(&s, &http, &c, "requests/decline", ("id", &id)).await;
    assert_eq!(r.status(), 403);
    let r = provider_click(&s, &http, &c, "partners/disable", ("partner", "acme")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(s.cli_json(&["partner", "list"])[0]["enabled"], true);

    // A token limited to environments does not open the provider pages
    // (partners span environments).
    let full = admin_token(&s, &[]).await;
    let api = s
        .http
        .get(format!(
            "{}/admin/v1/environments/default/apis/tollgate-admin",
            s.url
        ))
        .bearer_auth(&full)
        .send()
        .await
        .unwrap();
    let tag = api.headers()["etag"].to_str().unwrap().to_string();
    let r = s
        .http
        .patch(format!(
            "{}/admin/v1/environments/default/apis/tollgate-admin",
            s.url
        ))
        .bearer_auth(&full)
        .header("if-match", tag)
        .json(&json!({"add_permissions": ["admin:env:default"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.sync().await;
    let limited = admin_token(&s, &["admin:read", "admin:write", "admin:env:default"]).await;
    let (status, c, html) = provider_login(&s, &http, &limited).await;
    assert_eq!((status, c), (401, None), "{html}");
    assert!(html.contains("environment limits"), "{html}");
}

#[tokio::test]
async fn requests_through_the_cli_and_the_admin_api() {
    let s = Server::start();
    let http = no_redirects();
    let session = partner_signed_in(&s, &http).await;
    assert_eq!(ask(&s, &http, &session, "premium", "please").await.0, 201);
    assert_eq!(ask(&s, &http, &session, "live", "").await.0, 201);
    let pending = s.cli_json(&["partner", "requests", "--pending"]);
    assert_eq!(pending.as_array().unwrap().len(), 2);
    assert_eq!(pending[0]["package"], "premium");
    assert_eq!(pending[0]["note"], "please");
    assert_eq!(pending[0]["requested_by"], "jane");
    let text = s.cli_ok(&["partner", "requests"]);
    assert!(
        text.contains("pending\tacme\tdefault:odds=premium\tjane\tplease"),
        "{text}"
    );
    let premium = pending[0]["id"].as_str().unwrap().to_string();
    let live = pending[1]["id"].as_str().unwrap().to_string();
    let out = s.cli_ok(&["partner", "approve", &premium]);
    assert!(out.contains("approved"), "{out}");
    assert!(
        !s.cli(&["partner", "approve", &premium]).status.success(),
        "decided already"
    );
    let offers = &s.cli_json(&["partner", "list"])[0]["offers"];
    assert!(
        offers
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["package"] == "premium"),
        "{offers}"
    );

    // The admin API: list (filtered), decline, a second decision is 409.
    let token = admin_token(&s, &[]).await;
    let get = |path: String| {
        let (http, token) = (s.http.clone(), token.clone());
        async move {
            let r = http.get(path).bearer_auth(token).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, page) = get(format!(
        "{}/admin/v1/package-requests?status=pending",
        s.url
    ))
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], json!(live));
    let (status, page) = get(format!(
        "{}/admin/v1/package-requests?partner=acme&limit=1",
        s.url
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"][0]["status"], "approved");
    assert!(page["next_cursor"].is_string());
    let (status, _) = get(format!("{}/admin/v1/package-requests?status=done", s.url)).await;
    assert_eq!(status, 400);
    let post = |path: String| {
        let (http, token) = (s.http.clone(), token.clone());
        async move {
            let r = http.post(path).bearer_auth(token).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, v) = post(format!(
        "{}/admin/v1/package-requests/{live}/decline",
        s.url
    ))
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "declined");
    assert!(v["decided_by"].is_string());
    let (status, v) = post(format!(
        "{}/admin/v1/package-requests/{live}/approve",
        s.url
    ))
    .await;
    assert_eq!((status, v["error"].as_str()), (409, Some("conflict")));
    let (status, _) = post(format!("{}/admin/v1/package-requests/nope/approve", s.url)).await;
    assert_eq!(status, 404);
    let offers = &s.cli_json(&["partner", "list"])[0]["offers"];
    assert!(
        !offers
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["package"] == "live"),
        "declined: not offered"
    );
    let audit = s.cli_ok(&["audit", "--json"]);
    for action in [
        "\"portal.package-request.create\"",
        "\"package-request.approve\"",
        "\"package-request.decline\"",
    ] {
        assert!(audit.contains(action), "{action} in {audit}");
    }
}

/// `tollgate --server URL partner …` through the admin API, with the output
/// of local mode.
#[tokio::test]
async fn the_remote_cli_drives_partners_through_the_admin_api() {
    let s = Server::start();
    let http = no_redirects();
    let session = partner_signed_in(&s, &http).await;
    assert_eq!(ask(&s, &http, &session, "live", "").await.0, 201);
    let token = admin_token(&s, &[]).await;
    let remote = |args: &[&str]| {
        let out = std::process::Command::new(common::BIN)
            .arg("--server")
            .arg(&s.url)
            .args(args)
            .env("TOLLGATE_DATA_DIR", "/nonexistent/tollgate-remote-test")
            .env("TOLLGATE_ADMIN_TOKEN", &token)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "--server {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let json_of = |text: String| serde_json::from_str::<Value>(&text).unwrap();
    let made = json_of(remote(&[
        "--json",
        "partner",
        "create",
        "beta",
        "--name",
        "Beta",
        "--offer",
        "odds=basic",
    ]));
    assert_eq!(
        made["offers"],
        json!([{"env": "default", "api": "odds", "package": "basic"}])
    );
    let offered = json_of(remote(&[
        "--json",
        "partner",
        "offer",
        "beta",
        "--offer",
        "odds=premium",
    ]));
    assert_eq!(offered["offers"].as_array().unwrap().len(), 2, "{offered}");
    // The remote list is the local list.
    assert_eq!(
        json_of(remote(&["--json", "partner", "list"])),
        s.cli_json(&["partner", "list"])
    );
    assert_eq!(
        remote(&["partner", "list"]),
        s.cli_ok(&["partner", "list"]),
        "the same text"
    );
    let inv = json_of(remote(&[
        "--json",
        "partner",
        "invite",
        "beta",
        "--expires",
        "1h",
    ]));
    assert!(
        inv["link"]
            .as_str()
            .unwrap()
            .contains("/portal/accept?token=")
    );
    assert_eq!(
        json_of(remote(&["--json", "partner", "requests", "--pending"])),
        s.cli_json(&["partner", "requests", "--pending"])
    );
    let id = s.cli_json(&["partner", "requests", "--pending"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let approved = json_of(remote(&["--json", "partner", "approve", &id]));
    assert_eq!(approved["status"], "approved");
    let out = remote(&["partner", "disable", "beta"]);
    assert_eq!(out, "partner beta disabled, with its clients\n");
    assert_eq!(s.cli_json(&["partner", "list"])[1]["enabled"], false);
    remote(&["partner", "enable", "beta"]);
    assert_eq!(s.cli_json(&["partner", "list"])[1]["enabled"], true);
}
