//! The partner portal's second factor, credentials pages and one-time
//! links over HTTP without a browser (the browser test is tests/portal/):
//! TOTP enrolment confirmed by a code and a sign-in that asks for one
//! (replay refused); a refresh JWT and an API key issued from the portal
//! and used at once (bearer exchange, gate check), rotated with a grace,
//! revoked; a secret
//! handed over through a link that a GET does not use up and a POST opens
//! once. Over SQLite and, with `TG_TEST_STORE=postgres`, PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::html::{after, cookie, text_of};
use common::{Server, send};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use tollgate_core::crypto::{api_key, totp};

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

const PASSWORD: &str = "long enough password";

/// Partner `acme` offered `odds`/`basic`, and account `jane` signed up
/// from an invitation: the portal's URL and the session cookie.
async fn signed_up(s: &Server, http: &reqwest::Client) -> (String, String) {
    s.cli_ok(&[
        "api",
        "create",
        "odds",
        "--permission",
        "odds:read",
        "--package",
        "basic=odds:read",
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
    let csrf = after(&page.text().await.unwrap(), "name=\"csrf\"", "value");
    let token = link.split("token=").nth(1).unwrap();
    let signed = http
        .post(format!("{portal}accept"))
        .header(COOKIE, &pre)
        .form(&[
            ("csrf", csrf.as_str()),
            ("token", token),
            ("login", "jane"),
            ("password", PASSWORD),
            ("password2", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    (portal, cookie(&signed, "tg_portal"))
}

/// GETs `url` signed in: the page's HTML and its first form's CSRF token.
async fn get_page(http: &reqwest::Client, url: &str, session: &str) -> (String, String) {
    let r = http.get(url).header(COOKIE, session).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    let html = r.text().await.unwrap();
    let csrf = after(&html, "name=\"csrf\"", "value");
    (html, csrf)
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    http.post(url)
        .header(COOKIE, cookie)
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Whether `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn totp_enrolment_then_sign_in_asks_for_a_code_once() {
    let s = Server::start();
    let http = http();
    let (portal, session) = signed_up(&s, &http).await;

    let (html, csrf) = get_page(&http, &format!("{portal}account"), &session).await;
    assert!(html.contains("Set up two-step sign-in"), "{html}");
    let begun = post(
        &http,
        &format!("{portal}account/totp/begin"),
        &session,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(begun.status(), 200);
    let html = begun.text().await.unwrap();
    let base32 = text_of(&html, "totp-secret");
    let uri = text_of(&html, "totp-uri");
    assert!(
        uri.starts_with("otpauth://totp/tollgate%20acme:jane?secret=") && uri.contains(&base32),
        "{uri}"
    );
    assert!(
        html.contains("<svg") && html.contains("class=\"qr\""),
        "a QR code"
    );
    let secret = totp::from_base32(&base32).unwrap();

    // A wrong code does not confirm; the right one does.
    let wrong = post(
        &http,
        &format!("{portal}account/totp/confirm"),
        &session,
        &[("csrf", &csrf), ("code", "abcdef")],
    )
    .await;
    assert_eq!(wrong.status(), 400);
    let code = totp::code(&secret, now()).unwrap();
    let on = post(
        &http,
        &format!("{portal}account/totp/confirm"),
        &session,
        &[("csrf", &csrf), ("code", &code)],
    )
    .await;
    assert_eq!(on.status(), 200);
    assert!(on.text().await.unwrap().contains("Two-step sign-in is on."));
    let audit = s.cli_ok(&["audit", "--json"]);
    assert!(audit.contains("\"portal.account.totp-on\""), "{audit}");
    assert!(!audit.contains(&base32), "no secret in the audit log");
    // Sealed at rest: neither its base32 nor its bytes in the files (or
    // the PostgreSQL dump), nor in the log.
    let rest = s.data_at_rest();
    assert!(!contains(&rest, base32.as_bytes()), "base32 secret at rest");
    assert!(!contains(&rest, &secret), "raw secret at rest");
    assert!(!s.logs().contains(&base32));

    // Sign in again: password, then a code.
    let login = http.get(format!("{portal}login")).send().await.unwrap();
    let pre = cookie(&login, "tg_pre");
    let csrf = after(&login.text().await.unwrap(), "name=\"csrf\"", "value");
    let step1 = post(
        &http,
        &format!("{portal}login"),
        &pre,
        &[("csrf", &csrf), ("login", "jane"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(step1.status(), 200, "no session yet: the code form");
    assert!(step1.headers().get(SET_COOKIE).is_none());
    let html = step1.text().await.unwrap();
    let ticket = after(&html, "name=\"ticket\"", "value");
    // The code that confirmed is spent: replay refused.
    let replay = post(
        &http,
        &format!("{portal}login/code"),
        &pre,
        &[("csrf", &csrf), ("ticket", &ticket), ("code", &code)],
    )
    .await;
    assert_eq!(replay.status(), 401);
    // The next step's code (one step of drift is accepted).
    let next = totp::code(&secret, now() + totp::STEP).unwrap();
    let step2 = post(
        &http,
        &format!("{portal}login/code"),
        &pre,
        &[("csrf", &csrf), ("ticket", &ticket), ("code", &next)],
    )
    .await;
    assert_eq!(step2.status(), 303);
    assert_eq!(step2.headers()[LOCATION], "/portal/");
    let again = cookie(&step2, "tg_portal");
    get_page(&http, &portal, &again).await;
    let replay = post(
        &http,
        &format!("{portal}login/code"),
        &pre,
        &[("csrf", &csrf), ("ticket", &ticket), ("code", &next)],
    )
    .await;
    assert_eq!(replay.status(), 401, "a code works once");
    let forged = post(
        &http,
        &format!("{portal}login/code"),
        &pre,
        &[("csrf", "forged"), ("ticket", &ticket), ("code", &next)],
    )
    .await;
    assert_eq!(forged.status(), 403);

    // Off with a current code: a step later than the one just used (the
    // next step's), so wait until that step has begun.
    let used = totp::step_of(now()) + 1;
    let (_, csrf) = get_page(&http, &format!("{portal}account"), &again).await;
    let off_wrong = post(
        &http,
        &format!("{portal}account/totp/disable"),
        &again,
        &[("csrf", &csrf), ("code", "000000x")],
    )
    .await;
    assert_eq!(off_wrong.status(), 400);
    while totp::step_of(now()) < used {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let later = totp::code(&secret, now() + totp::STEP).unwrap();
    let off = post(
        &http,
        &format!("{portal}account/totp/disable"),
        &again,
        &[("csrf", &csrf), ("code", &later)],
    )
    .await;
    assert_eq!(off.status(), 200);
    assert!(
        off.text()
            .await
            .unwrap()
            .contains("Two-step sign-in is off.")
    );
}

const POLICY: &str = r#"
[gate]

[[gate.route]]
methods = ["GET"]
path = "/v2/odds/**"
audience = "odds"
permissions_any = ["odds:read"]
api_keys = true
"#;

async fn gate_check(s: &Server, key: &str) -> u16 {
    send(
        s.get("/gate/check")
            .header("x-original-method", "GET")
            .header("x-original-uri", "/v2/odds/1")
            .header("x-api-key", key),
    )
    .await
    .status()
    .as_u16()
}

#[tokio::test]
async fn refresh_jwts_api_keys_and_one_time_links() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        format!("public_url = \"http://gate.test\"\n{POLICY}"),
    )
    .unwrap();
    let s = Server::start_in(
        dir,
        &["--config", config.to_str().unwrap(), "--contracts", "all"],
        &[],
    );
    let http = http();
    let (portal, session) = signed_up(&s, &http).await;

    // A client whose secret goes through a one-time link.
    let (html, csrf) = get_page(&http, &portal, &session).await;
    let offer = after(&html, "name=\"offer\"", "value").replace("&quot;", "\"");
    let made = post(
        &http,
        &format!("{portal}clients"),
        &session,
        &[
            ("csrf", &csrf),
            ("env", "default"),
            ("name", "feed"),
            ("offer", &offer),
            ("deliver", "link"),
            ("link_ttl", "3600"),
        ],
    )
    .await;
    assert_eq!(made.status(), 201);
    let html = made.text().await.unwrap();
    assert!(!html.contains("id=\"client-secret\""), "not shown");
    let link = text_of(&html, "handover-link");
    assert!(
        link.starts_with("http://gate.test/portal/handover?token="),
        "{link}"
    );
    let local = link.replace("http://gate.test", &s.url);
    // Looking (what a link preview does) does not use it up.
    for _ in 0..2 {
        let look = http.get(&local).send().await.unwrap();
        assert_eq!(look.status(), 200);
        assert!(!look.text().await.unwrap().contains("handover-secret"));
    }
    let look = http.get(&local).send().await.unwrap();
    let pre = cookie(&look, "tg_pre");
    let look_html = look.text().await.unwrap();
    let csrf_pre = after(&look_html, "name=\"csrf\"", "value");
    let token = after(&look_html, "name=\"token\"", "value");
    let opened = post(
        &http,
        &format!("{portal}handover"),
        &pre,
        &[("csrf", &csrf_pre), ("token", &token)],
    )
    .await;
    assert_eq!(opened.status(), 200);
    let html = opened.text().await.unwrap();
    let secret = text_of(&html, "handover-secret");
    assert!(html.contains("download=\""), "a download link");
    let again = post(
        &http,
        &format!("{portal}handover"),
        &pre,
        &[("csrf", &csrf_pre), ("token", &token)],
    )
    .await;
    assert_eq!(again.status(), 410, "opened once");
    assert_eq!(http.get(&local).send().await.unwrap().status(), 410);
    let clients = s.cli_json(&["client", "list"]);
    let id = clients
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "feed")
        .unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s.token(&id, &secret, &[]).await.status(),
        200,
        "the handed-over secret works"
    );
    // Neither the secret nor the link's token was ever at rest in clear.
    let rest = s.data_at_rest();
    assert!(!contains(&rest, secret.as_bytes()), "secret at rest");
    assert!(!contains(&rest, token.as_bytes()), "link token at rest");
    assert!(!s.logs().contains(&secret) && !s.logs().contains(&token));

    // The credentials page: a refresh JWT, used at the bearer exchange.
    let cred_url = format!("{portal}clients/credentials?env=default&client_id={id}");
    let (html, csrf) = get_page(&http, &cred_url, &session).await;
    assert!(html.contains("None that still work."));
    let issued = post(
        &http,
        &format!("{portal}clients/refresh-jwts"),
        &session,
        &[
            ("csrf", &csrf),
            ("env", "default"),
            ("client_id", &id),
            ("api", "odds"),
            ("ttl", "86400"),
            ("deliver", "show"),
        ],
    )
    .await;
    assert_eq!(issued.status(), 201);
    let html = issued.text().await.unwrap();
    let jwt = text_of(&html, "new-secret");
    assert!(html.contains("download=\"refresh-jwt-"), "{html}");
    let exchanged = send(
        s.post("/pub/v2/players/access-token")
            .header("authorization", format!("Bearer {jwt}")),
    )
    .await;
    assert_eq!(exchanged.status(), 200);

    // An API key, accepted by the gate, then revoked from the page.
    let made = post(
        &http,
        &format!("{portal}clients/api-keys"),
        &session,
        &[
            ("csrf", &csrf),
            ("env", "default"),
            ("client_id", &id),
            ("name", "ci"),
            ("ttl", "0"),
            ("deliver", "show"),
        ],
    )
    .await;
    assert_eq!(made.status(), 201);
    let key = text_of(&made.text().await.unwrap(), "new-secret");
    assert!(key.starts_with("tgk_"));
    let t = Instant::now();
    while gate_check(&s, &key).await != 200 {
        assert!(t.elapsed() < Duration::from_secs(10), "key not accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (html, csrf) = get_page(&http, &cred_url, &session).await;
    let id_field = after(
        &html[html.find("clients/api-keys/revoke").unwrap()..],
        "name=\"id\"",
        "value",
    );
    assert!(key.starts_with(&format!("tgk_{id_field}_")));
    let revoked = post(
        &http,
        &format!("{portal}clients/api-keys/revoke"),
        &session,
        &[
            ("csrf", &csrf),
            ("env", "default"),
            ("client_id", &id),
            ("id", &id_field),
        ],
    )
    .await;
    assert_eq!(revoked.status(), 303);
    let t = Instant::now();
    while gate_check(&s, &key).await == 200 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "revoked key accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // An API key handed over: the link opens once and the key works.
    let made = post(
        &http,
        &format!("{portal}clients/api-keys"),
        &session,
        &[
            ("csrf", &csrf),
            ("env", "default"),
            ("client_id", &id),
            ("ttl", "2592000"),
            ("deliver", "link"),
            ("link_ttl", "3600"),
        ],
    )
    .await;
    assert_eq!(made.status(), 201);
    let html = made.text().await.unwrap();
    assert!(!html.contains("id=\"new-secret\""), "not shown");
    let local = text_of(&html, "handover-link").replace("http://gate.test", &s.url);
    let look = http.get(&local).send().await.unwrap();
    let pre = cookie(&look, "tg_pre");
    let look_html = look.text().await.unwrap();
    let opened = post(
        &http,
        &format!("{portal}handover"),
        &pre,
        &[
            ("csrf", &after(&look_html, "name=\"csrf\"", "value")),
            ("token", &after(&look_html, "name=\"token\"", "value")),
        ],
    )
    .await;
    let key = text_of(&opened.text().await.unwrap(), "handover-secret");
    let t = Instant::now();
    while gate_check(&s, &key).await != 200 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "handed-over key not accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Rotation with a grace: the new key (shown once) and the old one both
    // pass until the grace ends.
    let (key_id, _) = api_key::split(&key).unwrap();
    let rotated = post(
        &http,
        &format!("{portal}clients/api-keys/rotate"),
        &session,
        &[
            ("csrf", &csrf),
            ("env", "default"),
            ("client_id", &id),
            ("id", key_id),
            ("grace", "3600"),
            ("deliver", "show"),
        ],
    )
    .await;
    assert_eq!(rotated.status(), 201);
    let html = rotated.text().await.unwrap();
    assert!(html.contains("keeps working until"), "{html}");
    let new_key = text_of(&html, "new-secret");
    assert_ne!(new_key, key);
    let t = Instant::now();
    while gate_check(&s, &new_key).await != 200 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "rotated key not accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gate_check(&s, &key).await, 200, "the old key in its grace");
    let (html, _) = get_page(&http, &cred_url, &session).await;
    assert_eq!(
        html.matches("action=\"/portal/clients/api-keys/revoke\"")
            .count(),
        2
    );

    // Another partner's client is not reachable from this account.
    let (theirs, _) = s.client(&["--name", "theirs", "--api", "odds=odds:read"]);
    let audit = s.cli_ok(&["audit", "--json"]);
    for action in [
        "portal.handover.create",
        "portal.handover.open",
        "portal.refresh-jwt.issue",
        "portal.api-key.create",
        "portal.api-key.revoke",
        "portal.api-key.rotate",
    ] {
        assert!(
            audit.contains(&format!("\"{action}\"")),
            "{action}: {audit}"
        );
    }
    assert!(
        !audit.contains(&jwt) && !audit.contains(&key) && !audit.contains(&new_key),
        "no secret in the audit log"
    );
    let other = post(
        &http,
        &format!("{portal}clients/api-keys"),
        &session,
        &[
            ("csrf", &csrf),
            ("env", "default"),
            ("client_id", &theirs),
            ("deliver", "show"),
        ],
    )
    .await;
    assert_eq!(other.status(), 404);
}

#[tokio::test]
async fn the_provider_resets_a_lost_second_factor() {
    let s = Server::start();
    let http = http();
    let (portal, session) = signed_up(&s, &http).await;
    let (_, csrf) = get_page(&http, &format!("{portal}account"), &session).await;
    let begun = post(
        &http,
        &format!("{portal}account/totp/begin"),
        &session,
        &[("csrf", &csrf)],
    )
    .await;
    let secret = totp::from_base32(&text_of(&begun.text().await.unwrap(), "totp-secret")).unwrap();
    let code = totp::code(&secret, now()).unwrap();
    let on = post(
        &http,
        &format!("{portal}account/totp/confirm"),
        &session,
        &[("csrf", &csrf), ("code", &code)],
    )
    .await;
    assert_eq!(on.status(), 200);

    let sign_in = || async {
        let login = http.get(format!("{portal}login")).send().await.unwrap();
        let pre = cookie(&login, "tg_pre");
        let csrf = after(&login.text().await.unwrap(), "name=\"csrf\"", "value");
        post(
            &http,
            &format!("{portal}login"),
            &pre,
            &[("csrf", &csrf), ("login", "jane"), ("password", PASSWORD)],
        )
        .await
        .status()
    };
    assert_eq!(sign_in().await, 200, "the code form");
    let reset = s.cli_json(&["partner", "reset-totp", "jane"]);
    assert_eq!(reset["had_totp"], true);
    assert_eq!(sign_in().await, 303, "the password alone");
    assert_eq!(
        s.cli_json(&["partner", "reset-totp", "jane"])["had_totp"],
        false
    );
    assert!(!s.cli(&["partner", "reset-totp", "nobody"]).status.success());
    let audit = s.cli_ok(&["audit", "--json"]);
    assert!(audit.contains("\"partner.account.reset-totp\""), "{audit}");
}
