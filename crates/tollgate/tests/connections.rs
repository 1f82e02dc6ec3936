//! What a connection may hold, against the real server over raw sockets:
//! silent, slow-header, slow-body and idle keep-alive connections are
//! closed after their timeouts while a well-behaved client keeps getting
//! tokens; a TLS handshake that never starts is cut off; past
//! `max_connections` a connection waits until another closes; and a request
//! needs exactly one valid `Host`.
//!
//! These tests are about closure, not speed: every wait is bounded by its
//! timeout plus a generous margin, and nothing asserts how soon.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::Server;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Short limits, so that the tests see them act.
const SHORT: &[(&str, &str)] = &[
    ("TOLLGATE_HEADER_READ_TIMEOUT", "1s"),
    ("TOLLGATE_BODY_READ_TIMEOUT", "1s"),
    ("TOLLGATE_IDLE_TIMEOUT", "2s"),
    ("TOLLGATE_TLS_HANDSHAKE_TIMEOUT", "1s"),
];

/// How long past its timeout a connection may stay open before the test
/// calls it a failure: several seconds, for a loaded machine.
const MARGIN: Duration = Duration::from_secs(8);

/// `host:port` of the server.
fn addr(s: &Server) -> String {
    s.url.split("://").nth(1).unwrap().to_string()
}

/// An API and a client holding it; returns (client_id, client_secret).
fn provision(s: &Server) -> (String, String) {
    s.cli_ok(&["api", "create", "orders", "--permission", "orders:read"]);
    s.client(&["--name", "p", "--api", "orders=orders:read"])
}

/// Reads until the server closes the connection (end of stream or reset)
/// and returns what it sent; fails if it is still open after `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration, what: &str) -> String {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Ok(Err(e)) => panic!("{what}: read failed: {e}"),
            Err(_) => panic!(
                "{what}: the server had not closed the connection after {within:?}; it sent {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Opens a connection, sends `raw`, and returns everything the server sent
/// before it closed the connection.
async fn exchange(addr: &str, raw: &[u8], within: Duration, what: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw).await.unwrap();
    read_until_closed(&mut stream, within, what).await
}

/// Issues tokens one after another until `stop`; every one must succeed.
/// Returns how many were issued.
async fn keep_issuing(s: &Server, id: &str, secret: &str, stop: &AtomicBool) -> usize {
    let mut issued = 0;
    while !stop.load(Ordering::Acquire) {
        let r = s.token(id, secret, &[]).await;
        assert_eq!(r.status(), 200, "a normal client is served meanwhile");
        issued += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    issued
}

#[tokio::test]
async fn slow_silent_and_idle_connections_are_closed_while_clients_are_served() {
    let s = Server::start_with(&[], SHORT);
    let (id, secret) = provision(&s);
    s.sync().await;
    let addr = addr(&s);
    let stop = AtomicBool::new(false);
    let probes = async {
        let header_limit = Duration::from_secs(1) + MARGIN;
        let silent = async {
            let mut c = TcpStream::connect(&addr).await.unwrap();
            read_until_closed(&mut c, header_limit, "a connection that sends nothing").await
        };
        let half_head = exchange(
            &addr,
            b"POST /oauth/token HTTP/1.1\r\nHost: localhost\r\nContent-Ty",
            header_limit,
            "a connection that sends half its headers",
        );
        let short_body = exchange(
            &addr,
            b"POST /oauth/token HTTP/1.1\r\nHost: localhost\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\n\r\ngrant_type",
            Duration::from_secs(1) + MARGIN,
            "a request with 10 of its 100 body bytes",
        );
        let idle = exchange(
            &addr,
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
            Duration::from_secs(2) + MARGIN,
            "a kept-alive connection left idle",
        );
        let answers = tokio::join!(silent, half_head, short_body, idle);
        stop.store(true, Ordering::Release);
        answers
    };
    let (issued, (silent, half_head, short_body, idle)) =
        tokio::join!(keep_issuing(&s, &id, &secret, &stop), probes);
    assert_eq!(silent, "", "closed without an answer");
    assert_eq!(half_head, "", "closed without an answer");
    assert!(
        short_body.starts_with("HTTP/1.1 408 "),
        "an incomplete body is answered 408: {short_body}"
    );
    assert!(
        short_body
            .to_ascii_lowercase()
            .contains("connection: close"),
        "{short_body}"
    );
    assert!(
        short_body.contains("did not arrive within 1s"),
        "{short_body}"
    );
    assert!(idle.starts_with("HTTP/1.1 200 "), "{idle}");
    assert!(
        !idle.to_ascii_lowercase().contains("connection: close"),
        "the answer kept the connection alive; the idle timeout closed it: {idle}"
    );
    assert!(
        issued >= 5,
        "tokens kept coming while the slow connections were open ({issued})"
    );
    assert!(
        s.logs().contains("status=408"),
        "the 408 is in the request log"
    );
}

#[tokio::test]
async fn past_max_connections_a_connection_waits_until_one_closes() {
    // Long timeouts: the held connections must stay open on their own.
    let s = Server::start_with(
        &[],
        &[
            ("TOLLGATE_MAX_CONNECTIONS", "8"),
            ("TOLLGATE_HEADER_READ_TIMEOUT", "120s"),
            ("TOLLGATE_IDLE_TIMEOUT", "120s"),
        ],
    );
    let addr = addr(&s);
    // The first of the eight is shown to be served, then left idle; the
    // other seven send nothing. Connections are accepted in order.
    let mut held = Vec::new();
    let mut first = TcpStream::connect(&addr).await.unwrap();
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), first.read(&mut buf))
        .await
        .expect("the first connection is served")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 "));
    held.push(first);
    for _ in 1..8 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    // The ninth connects (the kernel's backlog takes it) but is not served.
    let mut ninth = TcpStream::connect(&addr).await.unwrap();
    ninth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let early = tokio::time::timeout(Duration::from_millis(1500), ninth.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "the ninth connection must not be served while eight are open: {early:?}"
    );
    // One of the eight leaves: the ninth is served.
    drop(held.pop());
    let answer = read_until_closed(&mut ninth, Duration::from_secs(10), "the ninth").await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    drop(held);
}

#[tokio::test]
async fn a_tls_handshake_that_never_comes_is_cut_off() {
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
        SHORT,
    );
    assert!(s.url.starts_with("https://"), "{}", s.url);
    let addr = addr(&s);
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let sent = read_until_closed(
        &mut silent,
        Duration::from_secs(1) + MARGIN,
        "a TLS connection that never says hello",
    )
    .await;
    assert_eq!(sent, "", "closed without a word");
    // A real TLS client is still served.
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = std::process::Command::new("timeout")
            .args(["20", "openssl", "s_client", "-quiet", "-connect", &addr])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

#[tokio::test]
async fn a_request_needs_exactly_one_valid_host() {
    let s = Server::start();
    let (id, secret) = provision(&s);
    s.sync().await;
    let addr = addr(&s);
    let within = Duration::from_secs(10);
    let form = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let token_request = |head: &str| {
        format!(
            "POST /oauth/token {head}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len()
        )
    };
    // The same request with one Host is served: raw requests as such are fine.
    let one = exchange(
        &addr,
        token_request("HTTP/1.1\r\nHost: localhost").as_bytes(),
        within,
        "one Host",
    )
    .await;
    assert!(one.starts_with("HTTP/1.1 200 "), "{one}");
    let refused = [
        (
            "two Host headers",
            "HTTP/1.1\r\nHost: localhost\r\nHost: other.example",
            "HTTP/1.1 400 ",
            "more than one Host",
        ),
        ("no Host, HTTP/1.1", "HTTP/1.1", "HTTP/1.1 400 ", "no Host"),
        ("no Host, HTTP/1.0", "HTTP/1.0", "HTTP/1.0 400 ", "no Host"),
        (
            "a Host with user info",
            "HTTP/1.1\r\nHost: me@localhost",
            "HTTP/1.1 400 ",
            "not a valid host",
        ),
    ];
    for (what, head, status, why) in refused {
        let answer = exchange(&addr, token_request(head).as_bytes(), within, what).await;
        assert!(answer.starts_with(status), "{what}: {answer}");
        assert!(answer.contains(why), "{what}: {answer}");
        assert!(
            answer.contains(r#""error":"invalid_request""#),
            "{what}: {answer}"
        );
    }
    let absolute = exchange(
        &addr,
        b"GET http://other.example/.well-known/jwks.json HTTP/1.1\r\nHost: localhost\r\n\r\n",
        within,
        "an absolute-form target naming another host",
    )
    .await;
    assert!(absolute.starts_with("HTTP/1.1 400 "), "{absolute}");
    // HTTP/1.0 health probes may omit Host; HTTP/1.1 ones may not.
    let probe = exchange(
        &addr,
        b"GET /healthz HTTP/1.0\r\n\r\n",
        within,
        "HTTP/1.0 probe",
    )
    .await;
    assert!(probe.starts_with("HTTP/1.0 200 "), "{probe}");
    let probe11 = exchange(
        &addr,
        b"GET /healthz HTTP/1.1\r\n\r\n",
        within,
        "HTTP/1.1 probe",
    )
    .await;
    assert!(probe11.starts_with("HTTP/1.1 400 "), "{probe11}");
    // Normal clients are unaffected.
    assert_eq!(s.token(&id, &secret, &[]).await.status(), 200);
    assert!(
        s.logs().contains("status=400"),
        "refusals are in the request log"
    );
}
