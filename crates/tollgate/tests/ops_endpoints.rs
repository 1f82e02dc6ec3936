//! Operations endpoints and headers (hardening, issue 9 §7): `/metrics`
//! behind a token or on a listener of its own, `X-Content-Type-Options:
//! nosniff` on every answer, HSTS when tollgate serves TLS itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Server, send};

#[tokio::test]
async fn metrics_can_require_a_token_and_every_answer_says_nosniff() {
    let s = Server::start_with(&[], &[("TOLLGATE_METRICS_TOKEN", "scrape-me")]);
    let r = send(s.get("/metrics")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"metrics\"");
    let r = send(s.get("/metrics").bearer_auth("wrong")).await;
    assert_eq!(r.status(), 401);
    let r = send(s.get("/metrics").bearer_auth("scrape-me")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.text().await.unwrap().contains("tollgate_"));
    // Every answer, errors and contracts included, carries nosniff.
    for r in [
        send(s.get("/healthz")).await,
        s.form("/oauth/token", &[("grant_type", "client_credentials")])
            .await,
        send(s.get("/.well-known/jwks.json")).await,
    ] {
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert!(
            r.headers().get("strict-transport-security").is_none(),
            "no TLS here"
        );
    }
    // The token never shows in the printed configuration.
    let printed = s.cli_ok(&["serve", "--print-config"]);
    assert!(printed.contains("metrics_token = \"***\""), "{printed}");
    assert!(!printed.contains("scrape-me"));
}

#[tokio::test]
async fn metrics_can_have_a_listener_of_their_own() {
    let s = Server::start_with(&[], &[("TOLLGATE_METRICS_LISTEN", "127.0.0.1:0")]);
    assert_eq!(
        send(s.get("/metrics")).await.status(),
        404,
        "not on the main listener"
    );
    let logs = s.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("metrics listening"))
        .unwrap_or_else(|| panic!("{logs}"));
    let addr = line
        .split("address=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let r = s
        .http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("tollgate_"));
    // Only /metrics there.
    let r = s
        .http
        .get(format!("http://{addr}/oauth/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn hsts_when_tollgate_serves_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = common::self_signed_cert(dir.path());
    let s = Server::start_in(
        dir,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    let out = std::process::Command::new("curl")
        .args(["-sk", "-D", "-", "-o", "/dev/null"])
        .arg(format!("{}/healthz", s.url))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(headers.starts_with("http/1.1 200"), "{headers}");
    assert!(
        headers.contains("strict-transport-security: max-age=31536000"),
        "{headers}"
    );
    assert!(
        headers.contains("x-content-type-options: nosniff"),
        "{headers}"
    );
}
