//! The gate as a reverse proxy (issue 12, "three ways in", 1): `tollgate
//! serve` with `gate_proxy_listen` and `gate_proxy_upstream` in front of a
//! small upstream that reports what reached it. Allowed requests arrive
//! with the identity headers (a client's own dropped), `X-Forwarded-*`,
//! the client's `Host` and body; refused ones never arrive and are answered
//! as RFC 6750 says; large bodies stream both ways; an upgrade passes
//! through; an unreachable or slow upstream is 502 or 504. Runs over
//! SQLite, and over PostgreSQL with `TG_TEST_STORE=postgres`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Server, send};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const POLICY: &str = r#"
[[gate.route]]
methods = ["GET", "POST"]
path = "/v2/odds/**"
audience = "odds"
permissions_any = ["odds:read"]

[[gate.route]]
path = "/v2/admin/**"
audience = "odds"
permissions_all = ["odds:admin"]

[[gate.route]]
path = "/public/**"
public = true

[[gate.route]]
path = "/v2/feed/**"
audience = "odds"
permissions_any = ["odds:read"]
api_keys = true
"#;

/// A free local port (bound and released: good enough for a test).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads one request (head, then a `content-length` body) from `conn`:
/// (request line, headers lower-cased, body).
async fn read_request(
    conn: &mut tokio::net::TcpStream,
) -> Option<(String, Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let line = lines.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = buf[end + 4..].to_vec();
    while body.len() < len {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Some((line, headers, body))
}

/// The upstream: `/slow…` answers after 3 s, `/…/upgrade` switches to an
/// echo protocol, `/…/big` sends 4 MiB; everything else answers with what
/// it received as JSON (request line, headers, body length and byte sum).
/// Counts the requests that reached it.
async fn upstream() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let Some((line, headers, body)) = read_request(&mut conn).await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                if line.contains("/slow") {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                if line.contains("/upgrade") {
                    let _ = conn
                        .write_all(b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n")
                        .await;
                    let mut b = [0u8; 1024];
                    while let Ok(n) = conn.read(&mut b).await {
                        if n == 0 || conn.write_all(&b[..n]).await.is_err() {
                            return;
                        }
                    }
                    return;
                }
                if line.contains("/big") {
                    let body = vec![b'x'; 4 << 20];
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(&body).await;
                    return;
                }
                let seen = serde_json::json!({
                    "line": line,
                    "headers": headers.iter().map(|(k, v)| serde_json::json!([k, v])).collect::<Vec<_>>(),
                    "body_len": body.len(),
                    "body_sum": body.iter().map(|b| u64::from(*b)).sum::<u64>(),
                })
                .to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-upstream: yes\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{seen}",
                    seen.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
            });
        }
    });
    (addr, hits)
}

/// tollgate with the policy and the proxy in front of `upstream`; a client
/// holding `odds:read` (id, secret) and the proxy's URL.
fn tollgate(upstream: &str, timeout: &str) -> (Server, String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    let port = free_port();
    std::fs::write(
        &config,
        format!(
            "gate_proxy_listen = \"127.0.0.1:{port}\"\ngate_proxy_upstream = \"http://{upstream}\"\ngate_proxy_timeout = \"{timeout}\"\n\n[gate]\n{POLICY}"
        ),
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
    (s, id, secret, format!("http://127.0.0.1:{port}"))
}

async fn token(s: &Server, id: &str, secret: &str) -> String {
    s.sync().await;
    let r = s.token(id, secret, &[("audience", "odds")]).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// The headers the upstream saw, by lower-case name (all values).
fn seen(v: &Value, name: &str) -> Vec<String> {
    v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] == name)
        .map(|h| h[1].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn allowed_requests_reach_the_upstream_with_the_identity_and_refused_ones_never_do() {
    let (up, hits) = upstream().await;
    let (s, id, secret, proxy) = tollgate(&up, "5s");
    let t = token(&s, &id, &secret).await;
    let http = reqwest::Client::new();

    // Allowed: the identity headers are the gate's, not the client's; the
    // forwarding headers are set; Host, Authorization, query and body pass.
    let r = send(
        http.post(format!("{proxy}/v2/odds/17?market=1x2"))
            .header("authorization", format!("Bearer {t}"))
            .header("host", "api.provider.test")
            .header("x-client-id", "someone-else")
            .header("x-scopes", "odds:admin")
            .header("x-forwarded-host", "evil.test")
            .header("connection", "x-hop")
            .header("x-hop", "1")
            .body(vec![7u8; 2 << 20]),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-upstream"], "yes");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["line"], "POST /v2/odds/17?market=1x2 HTTP/1.1");
    assert_eq!(seen(&v, "x-client-id"), [id.as_str()]);
    assert_eq!(seen(&v, "x-subject"), [id.as_str()]);
    assert_eq!(seen(&v, "x-scopes"), ["odds:read"]);
    assert_eq!(seen(&v, "host"), ["api.provider.test"]);
    assert_eq!(seen(&v, "x-forwarded-host"), ["api.provider.test"]);
    assert_eq!(seen(&v, "x-forwarded-proto"), ["http"]);
    assert_eq!(seen(&v, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen(&v, "authorization"), [format!("Bearer {t}")]);
    assert!(
        seen(&v, "x-hop").is_empty(),
        "a hop-by-hop header named by Connection"
    );
    assert_eq!(v["body_len"], 2 << 20);
    assert_eq!(v["body_sum"], 7 * (2u64 << 20));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Public: passes without a token, and without anyone's identity.
    let r = send(
        http.get(format!("{proxy}/public/status"))
            .header("x-client-id", "forged")
            .header("x-subject", "forged"),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(
        seen(&v, "x-client-id").is_empty() && seen(&v, "x-subject").is_empty(),
        "{v}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // Refused here, never at the upstream.
    let r = send(http.get(format!("{proxy}/v2/odds/17"))).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = send(
        http.get(format!("{proxy}/v2/odds/17"))
            .header("authorization", "Bearer not.a.token"),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer error=\"invalid_token\"")
    );
    let r = send(
        http.get(format!("{proxy}/v2/admin/users"))
            .header("authorization", format!("Bearer {t}")),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"insufficient_scope\", scope=\"odds:admin\"")
    );
    let r = send(
        http.delete(format!("{proxy}/v2/odds/17"))
            .header("authorization", format!("Bearer {t}")),
    )
    .await;
    assert_eq!(r.status(), 403, "no route allows DELETE");
    let r = send(http.get(format!("{proxy}/elsewhere"))).await;
    assert_eq!(r.status(), 403, "unmatched routes are denied");
    assert_eq!(hits.load(Ordering::SeqCst), 2, "no refused request arrived");

    // Large answers stream back whole.
    let r = send(
        http.get(format!("{proxy}/v2/odds/big"))
            .header("authorization", format!("Bearer {t}")),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 4 << 20);

    // Every decision is in the metrics, by outcome.
    let metrics = s.metrics().await;
    for code in ["allowed", "public", "no_token", "insufficient_scope"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.contains("endpoint=\"proxy\"")
                    && l.contains(&format!("outcome=\"{code}\""))),
            "{code} missing"
        );
    }
    // Per route and client: the two allowed calls of the odds route, the
    // refused one of the admin route, and the deciding time of each route.
    let line = |prefix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .map(|v| v.to_string())
    };
    let odds = format!(
        "tollgate_gate_decisions_total{{env=\"default\",route=\"GET,POST /v2/odds/**\",client=\"{id}\",outcome=\"allowed\"}}"
    );
    assert_eq!(line(&odds).as_deref(), Some("2"), "{metrics}");
    let admin = "tollgate_gate_decisions_total{env=\"default\",route=\"* /v2/admin/**\",client=\"\",outcome=\"insufficient_scope\"}";
    assert_eq!(line(admin).as_deref(), Some("1"));
    let timed =
        "tollgate_gate_decision_seconds_count{env=\"default\",route=\"GET,POST /v2/odds/**\"}";
    assert!(
        line(timed).is_some_and(|n| n.parse::<u64>().unwrap() >= 3),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_upgrade_passes_through_once_allowed() {
    let (up, _) = upstream().await;
    let (s, id, secret, proxy) = tollgate(&up, "5s");
    let t = token(&s, &id, &secret).await;
    let addr = proxy.trim_start_matches("http://").to_string();

    // Refused without a token: no switch.
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    c.write_all(b"GET /v2/odds/upgrade HTTP/1.1\r\nhost: api\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let mut b = vec![0u8; 4096];
    let n = c.read(&mut b).await.unwrap();
    assert!(String::from_utf8_lossy(&b[..n]).starts_with("HTTP/1.1 401"));

    // Allowed: 101, then bytes go both ways.
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!(
        "GET /v2/odds/upgrade HTTP/1.1\r\nhost: api\r\nauthorization: Bearer {t}\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n"
    );
    c.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.read(&mut b).await.unwrap();
        assert!(n > 0, "closed before the 101");
        head.extend_from_slice(&b[..n]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 101"), "{text}");
    assert!(text.contains("upgrade: echo"), "{text}");
    for msg in [&b"ping"[..], b"and again"] {
        c.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, msg);
    }
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_and_a_slow_one_504() {
    let (up, _) = upstream().await;
    let (s, id, secret, proxy) = tollgate(&up, "1s");
    let t = token(&s, &id, &secret).await;
    let http = reqwest::Client::new();
    let r = send(
        http.get(format!("{proxy}/v2/odds/slow"))
            .header("authorization", format!("Bearer {t}")),
    )
    .await;
    assert_eq!(r.status(), 504);

    let dead = format!("127.0.0.1:{}", free_port());
    let (s, id, secret, proxy) = tollgate(&dead, "5s");
    let t = token(&s, &id, &secret).await;
    let r = send(
        http.get(format!("{proxy}/v2/odds/1"))
            .header("authorization", format!("Bearer {t}")),
    )
    .await;
    assert_eq!(r.status(), 502);
}

#[test]
fn a_proxy_needs_an_upstream_and_a_policy() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    for (text, says) in [
        (
            "gate_proxy_listen = \"127.0.0.1:1\"\n[gate]\n[[gate.route]]\npath = \"/x\"\npublic = true\n",
            "go together",
        ),
        (
            "gate_proxy_listen = \"127.0.0.1:1\"\ngate_proxy_upstream = \"http://127.0.0.1:2\"\n",
            "needs a [gate] policy",
        ),
        (
            "gate_proxy_listen = \"127.0.0.1:1\"\ngate_proxy_upstream = \"https://api\"\n[gate]\n[[gate.route]]\npath = \"/x\"\npublic = true\n",
            "must start with http://",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let out = std::process::Command::new(common::BIN)
            .args([
                "serve",
                "--print-config",
                "--config",
                config.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
    }
}

/// An API key (`X-API-Key`) on a route that takes them: the upstream learns
/// the key's client and never sees the key; elsewhere, or a wrong key, is
/// refused here.
#[tokio::test]
async fn an_api_key_passes_where_the_route_takes_one_and_stays_here() {
    let (up, hits) = upstream().await;
    let (s, id, _, proxy) = tollgate(&up, "5s");
    let key = s.cli_json(&["api-key", "create", "--client", &id])["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    s.sync().await;
    let http = reqwest::Client::new();
    let r = send(
        http.get(format!("{proxy}/v2/feed/live"))
            .header("x-api-key", &key),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(seen(&v, "x-client-id"), [id.as_str()]);
    assert_eq!(seen(&v, "x-scopes"), ["odds:read"]);
    assert!(
        seen(&v, "x-api-key").is_empty(),
        "the key stays at the gate"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let r = send(
        http.get(format!("{proxy}/v2/odds/1"))
            .header("x-api-key", &key),
    )
    .await;
    assert_eq!(r.status(), 401, "a route without api_keys");
    // The last character changed (to one it is not).
    let last = if key.ends_with('A') { 'B' } else { 'A' };
    let wrong = format!("{}{last}", &key[..key.len() - 1]);
    let r = send(
        http.get(format!("{proxy}/v2/feed/live"))
            .header("x-api-key", &wrong),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "refused requests never arrive"
    );
}
