//! The partner portal over HTTP without a browser (the browser test is
//! tests/portal/, in Python): the provider's `partner` commands, an
//! invitation followed to a session, a client created from an offered
//! package that gets a token at once, the CSRF check, the audit trail, and
//! disabling the partner, which refuses its client on the running server
//! (through the sync) and ends the session. Over SQLite and, with
//! `TG_TEST_STORE=postgres`, PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::Server;
use common::html::{after, cookie, text_of};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

#[tokio::test]
async fn invitation_to_token_to_disabled_partner() {
    let s = Server::start();
    s.cli_ok(&[
        "api",
        "create",
        "odds",
        "--permission",
        "odds:read",
        "--package",
        "basic=odds:read",
    ]);
    // The API made by another process reaches the server at its poll
    // (SQLite): wait for it, as the provider's API exists long before.
    s.sync().await;
    let bad = s.cli(&["partner", "create", "acme", "--offer", "odds=premium"]);
    assert!(!bad.status.success(), "an offer must name a package");
    s.cli_ok(&["partner", "create", "acme", "--offer", "odds=basic"]);
    let listed = s.cli_json(&["partner", "list"]);
    assert_eq!(listed[0]["id"], "acme");
    assert_eq!(listed[0]["offers"][0]["package"], "basic");
    let portal = format!("{}/portal/", s.url);
    let link = s.cli_json(&["partner", "invite", "acme", "--portal-url", &portal])["link"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(link.starts_with(&format!("{portal}accept?token=")));

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The sign-up page sets the pre-session cookie its CSRF token derives from.
    let page = http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let pre = cookie(&page, "tg_pre");
    let html = page.text().await.unwrap();
    let csrf = after(&html, "name=\"csrf\"", "value");
    let token = link.split("token=").nth(1).unwrap();
    let form = |csrf: &str| {
        vec![
            ("csrf".to_string(), csrf.to_string()),
            ("token".to_string(), token.to_string()),
            ("login".to_string(), "jane".to_string()),
            ("password".to_string(), "long enough password".to_string()),
            ("password2".to_string(), "long enough password".to_string()),
        ]
    };
    let forged = http
        .post(format!("{portal}accept"))
        .header(COOKIE, &pre)
        .form(&form("forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "a forged CSRF token");
    let signed = http
        .post(format!("{portal}accept"))
        .header(COOKIE, &pre)
        .form(&form(&csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    assert_eq!(signed.headers()[LOCATION], "/portal/");
    let set = signed.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let session = cookie(&signed, "tg_portal");

    // The dashboard, then a client from the offered package.
    let dash = http
        .get(&portal)
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(dash.status(), 200);
    assert_eq!(dash.headers()["cache-control"], "no-store");
    let html = dash.text().await.unwrap();
    let csrf = after(&html, "action=\"/portal/clients\"", "value");
    let offer = after(&html, "name=\"offer\"", "value").replace("&quot;", "\"");
    let created = http
        .post(format!("{portal}clients"))
        .header(COOKIE, &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("env", "default"),
            ("name", "feed"),
            ("offer", offer.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let html = created.text().await.unwrap();
    let (id, secret) = (text_of(&html, "client-id"), text_of(&html, "client-secret"));
    let first = s.token(&id, &secret, &[]).await;
    let status = first.status();
    assert_eq!(status, 200, "{}", first.text().await.unwrap());
    let audit = s.cli_ok(&["audit", "--json"]);
    assert!(
        audit.contains("\"portal.client.create\"") && audit.contains("partner:acme/jane"),
        "{audit}"
    );
    assert!(!audit.contains(&secret), "no secret in the audit log");

    // Disabling the partner: the running server refuses its client after
    // its next sync, and the session is gone.
    s.cli_ok(&["partner", "disable", "acme"]);
    let t = Instant::now();
    loop {
        if s.token(&id, &secret, &[]).await.status() == 401 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "still served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("disabled partner's client refused after {:?}", t.elapsed());
    let after_disable = http
        .get(&portal)
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(after_disable.status(), 303, "signed out");
    assert_eq!(s.cli_json(&["partner", "list"])[0]["enabled"], false);
}
