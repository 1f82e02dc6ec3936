//! A real nginx (Debian's `nginx-light`, which has `auth_request`) in front
//! of a small upstream, asking tollgate's `/gate/check` before each request,
//! configured as docs/GATE.md says: allowed (the upstream sees the identity
//! headers, a client's own are dropped), no token, expired, wrong audience,
//! insufficient permission (with the RFC 6750 challenge), revoked (within
//! 1 s), a rotated key, an API key (nginx passes the client's `X-API-Key`
//! to the check). Over SQLite, and PostgreSQL with
//! `TG_TEST_STORE=postgres`.
//!
//! nginx is required, not optional: scripts/install-test-deps.sh installs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POLICY: &str = r#"
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

[[gate.route]]
path = "/v2/feed/**"
audience = "odds"
permissions_any = ["odds:read"]
api_keys = true
"#;

/// nginx in front of `upstream`, asking `gate` (host:port): the
/// configuration docs/GATE.md shows, with paths of a temporary prefix.
fn nginx_conf(dir: &Path, listen: u16, gate: &str, upstream: &str) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;

  # A 403's challenge (insufficient_scope) is passed on; nginx passes a
  # 401's WWW-Authenticate itself.
  map $status $gate_challenge {{
    403 $gate_www_authenticate;
    default "";
  }}

  server {{
    listen 127.0.0.1:{listen};

    location = /_gate {{
      internal;
      proxy_pass http://{gate}/gate/check;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
    }}

    location / {{
      auth_request /_gate;
      auth_request_set $gate_client_id $upstream_http_x_client_id;
      auth_request_set $gate_subject $upstream_http_x_subject;
      auth_request_set $gate_scopes $upstream_http_x_scopes;
      auth_request_set $gate_www_authenticate $upstream_http_www_authenticate;
      add_header WWW-Authenticate $gate_challenge always;
      # Set from the gate's answer, never from the client: an empty value
      # (a public route) removes the header.
      proxy_set_header X-Client-Id $gate_client_id;
      proxy_set_header X-Subject $gate_subject;
      proxy_set_header X-Scopes $gate_scopes;
      proxy_pass http://{upstream};
    }}
  }}
}}
"#
    )
}

/// The nginx binary, which the suite needs.
fn nginx_bin() -> PathBuf {
    let found = Command::new("sh")
        .args(["-c", "command -v nginx || ls /usr/sbin/nginx"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.lines().next().unwrap_or_default().trim().to_string())
        .filter(|s| !s.is_empty());
    PathBuf::from(found.unwrap_or_else(|| {
        panic!("nginx is needed (Debian: nginx-light; scripts/install-test-deps.sh installs it)")
    }))
}

/// An nginx child process, killed when dropped.
struct Nginx {
    child: Child,
    url: String,
    /// Its prefix (config, logs, temporary files), removed when dropped.
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn start(gate: &str, upstream: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, nginx_conf(dir.path(), port, gate, upstream)).unwrap();
        let child = Command::new(nginx_bin())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

/// A small upstream answering every request with the identity headers it
/// received, as JSON.
async fn upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let mut seen = serde_json::Map::new();
                for line in head.lines().skip(1) {
                    if let Some((k, v)) = line.split_once(':') {
                        let k = k.trim().to_ascii_lowercase();
                        if ["x-client-id", "x-subject", "x-scopes"].contains(&k.as_str()) {
                            seen.insert(k, v.trim().into());
                        }
                    }
                }
                let body = serde_json::Value::Object(seen).to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

/// tollgate with the policy, APIs and a client (id, secret) holding
/// `odds:read` and tokens of `other` and `short` (1 s).
fn tollgate() -> (Server, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(&config, format!("[gate]\n{POLICY}")).unwrap();
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
    (s, id, secret)
}

async fn token(s: &Server, id: &str, secret: &str, audience: &str) -> String {
    s.sync().await;
    let r = s.token(id, secret, &[("audience", audience)]).await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

async fn through(
    n: &Nginx,
    http: &reqwest::Client,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut rb = http.request(method, format!("{}{path}", n.url));
    if let Some(t) = token {
        rb = rb.header("authorization", format!("Bearer {t}"));
    }
    // A client's own identity headers, which must never reach the upstream.
    rb = rb
        .header("x-client-id", "spoofed")
        .header("x-scopes", "odds:admin");
    send(rb).await
}

fn challenge(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn nginx_auth_request_in_front_of_an_upstream() {
    let (s, id, secret) = tollgate();
    let gate = s.url.trim_start_matches("http://").to_string();
    let up = upstream().await;
    let n = Nginx::start(&gate, &up);
    let http = reqwest::Client::new();
    let get = reqwest::Method::GET;
    let odds = token(&s, &id, &secret, "odds").await;

    // Allowed: the upstream sees the gate's identity, not the client's.
    let r = through(&n, &http, get.clone(), "/v2/odds/1?m=1", Some(&odds)).await;
    assert_eq!(r.status(), 200);
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["x-client-id"], id.as_str());
    assert_eq!(seen["x-subject"], id.as_str());
    assert_eq!(seen["x-scopes"], "odds:read");

    // Public: passes, and the client's identity headers are dropped.
    let r = through(&n, &http, get.clone(), "/health", None).await;
    assert_eq!(r.status(), 200);
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        seen,
        serde_json::json!({}),
        "no identity reaches the upstream"
    );

    // No token.
    let r = through(&n, &http, get.clone(), "/v2/odds/1", None).await;
    assert_eq!(
        (r.status().as_u16(), challenge(&r).as_str()),
        (401, "Bearer")
    );

    // Wrong audience.
    let other = token(&s, &id, &secret, "other").await;
    let r = through(&n, &http, get.clone(), "/v2/odds/1", Some(&other)).await;
    assert_eq!(r.status(), 401);
    assert!(
        challenge(&r).contains("error=\"invalid_token\""),
        "{}",
        challenge(&r)
    );

    // Insufficient permission: 403 with the scope needed.
    let r = through(
        &n,
        &http,
        reqwest::Method::POST,
        "/v2/admin/reset",
        Some(&odds),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(
        challenge(&r).contains("error=\"insufficient_scope\""),
        "{}",
        challenge(&r)
    );
    assert!(
        challenge(&r).contains("scope=\"odds:admin\""),
        "{}",
        challenge(&r)
    );

    // Expired.
    let short = token(&s, &id, &secret, "short").await;
    assert_eq!(
        through(&n, &http, get.clone(), "/short/a", Some(&short))
            .await
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = through(&n, &http, get.clone(), "/short/a", Some(&short)).await;
    assert_eq!(r.status(), 401);
    assert!(challenge(&r).contains("expired"), "{}", challenge(&r));

    // A rotated key: the old key's tokens and the new key's pass.
    s.cli_ok(&["key", "rotate", "--publish-delay", "0s"]);
    s.sync().await;
    let fresh = token(&s, &id, &secret, "odds").await;
    assert_ne!(
        common::jwt_parts(&odds).0["kid"],
        common::jwt_parts(&fresh).0["kid"],
        "the new key signs"
    );
    for t in [&odds, &fresh] {
        assert_eq!(
            through(&n, &http, get.clone(), "/v2/odds/1", Some(t))
                .await
                .status(),
            200
        );
    }

    // Revoked: refused within a second, through nginx.
    let r = s
        .form(
            "/oauth/revoke",
            &[
                ("client_id", &id),
                ("client_secret", &secret),
                ("token", &odds),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let revoked_at = Instant::now();
    loop {
        let r = through(&n, &http, get.clone(), "/v2/odds/1", Some(&odds)).await;
        if r.status() == 401 {
            assert!(challenge(&r).contains("revoked"), "{}", challenge(&r));
            break;
        }
        assert_eq!(r.status(), 200);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "still allowed after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        through(&n, &http, get.clone(), "/v2/odds/1", Some(&fresh))
            .await
            .status(),
        200
    );

    // An API key, where the route takes one: the upstream learns its client.
    let key = s.cli_json(&["api-key", "create", "--client", &id])["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    s.sync().await;
    let with_key = |path: &str, key: &str| {
        http.get(format!("{}{path}", n.url))
            .header("x-api-key", key.to_string())
            .header("x-client-id", "spoofed")
    };
    let r = send(with_key("/v2/feed/live", &key)).await;
    assert_eq!(r.status(), 200);
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["x-client-id"], id.as_str());
    assert_eq!(seen["x-scopes"], "odds:read");
    let r = send(with_key("/v2/odds/1", &key)).await;
    assert_eq!(r.status(), 401, "a route without api_keys");
    let revoked = s.cli_json(&["api-key", "list", "--client", &id]);
    let key_id = revoked[0]["id"].as_str().unwrap().to_string();
    s.cli_ok(&["api-key", "revoke", &key_id]);
    let revoked_at = Instant::now();
    loop {
        let r = send(with_key("/v2/feed/live", &key)).await;
        if r.status() == 401 {
            break;
        }
        assert_eq!(r.status(), 200);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "a revoked key still passes after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
