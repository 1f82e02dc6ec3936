//! `tollgate token get` against the running server: cached across
//! invocations (one request per lifetime), secrets never on the command
//! line, the output forms; and the crash trials: the CLI, refreshing a
//! header-login session, is killed with SIGKILL right after the server
//! answered the rotation, and the next invocation carries the session on
//! (no new login, no reuse detected). `TG_CLIENT_KILL_TRIALS` sets the
//! number of trials (default 20; the 100: `TG_CLIENT_KILL_TRIALS=100`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::proxy::Proxy;
use common::{BIN, Server, contract_requests, verify_with_jwks};
use serde_json::Value;

const PASSWORD: &str = "pa55word";
const EMAIL: &str = "buyer@example.com";

/// `tollgate token get` with `args`, the cache in `cache`, and `env`.
fn token_cmd(cache: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["token", "get"])
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .env_remove("TOLLGATE_CLIENT_SECRET")
        .env_remove("TOLLGATE_PASSWORD")
        .env_remove("TOLLGATE_LOG")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "token get failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn token_get_caches_across_invocations_and_prints_three_ways() {
    let s = Server::start();
    s.cli_ok(&["api", "create", "orders", "--permission", "orders:read"]);
    let (id, secret) = s.client(&["--name", "partner", "--api", "orders=orders:read"]);
    s.sync().await;
    let cache = tempfile::tempdir().unwrap();
    let base = [
        "--base-url",
        &s.url,
        "--client-id",
        &id,
        "--audience",
        "orders",
    ];
    let env = [("TOLLGATE_CLIENT_SECRET", secret.as_str())];
    let first = ok(token_cmd(cache.path(), &base, &env).output().unwrap());
    let token = first.trim().to_string();
    verify_with_jwks(
        &s.http,
        &format!("{}/.well-known/jwks.json", s.url),
        &token,
        &s.url,
        "orders",
    )
    .await;
    for _ in 0..4 {
        let again = ok(token_cmd(cache.path(), &base, &env).output().unwrap());
        assert_eq!(again.trim(), token, "the cached token");
    }
    assert_eq!(
        contract_requests(&s, "rfc6749").await,
        1,
        "five invocations, one request"
    );

    // The cache is the user's only.
    let dir = cache.path().join("tollgate");
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(e.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    // --json and --header; the secret from a file.
    let file = cache.path().join("secret");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let from_file = [&base[..], &["--client-secret-file", file.to_str().unwrap()]].concat();
    let json: Value = serde_json::from_str(&ok(token_cmd(
        cache.path(),
        &[&from_file[..], &["--json"]].concat(),
        &[],
    )
    .output()
    .unwrap()))
    .unwrap();
    assert_eq!(json["access_token"], token.as_str());
    assert_eq!(json["token_type"], "Bearer");
    assert!(json["expires_in"].as_u64().unwrap() > 30);
    assert!(json["expires_at"].as_str().unwrap().ends_with('Z'));
    let header = ok(
        token_cmd(cache.path(), &[&from_file[..], &["--header"]].concat(), &[])
            .output()
            .unwrap(),
    );
    assert_eq!(header, format!("Authorization: Bearer {token}\n"));

    // --refresh asks anew; a scope is another cache entry.
    let fresh = ok(
        token_cmd(cache.path(), &[&base[..], &["--refresh"]].concat(), &env)
            .output()
            .unwrap(),
    );
    assert_ne!(fresh.trim(), token);
    let scoped = ok(token_cmd(
        cache.path(),
        &[&base[..], &["--scope", "orders:read"]].concat(),
        &env,
    )
    .output()
    .unwrap());
    assert_ne!(scoped.trim(), fresh.trim());
    assert_eq!(contract_requests(&s, "rfc6749").await, 3);

    // Never a secret on the command line; none at all is a clear error.
    let out = token_cmd(
        cache.path(),
        &[&base[..], &["--client-secret", &secret]].concat(),
        &[],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let out = token_cmd(cache.path(), &[&base[..], &["--refresh"]].concat(), &[])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOLLGATE_CLIENT_SECRET"));
    // A wrong secret names the contract's error.
    let out = token_cmd(
        cache.path(),
        &[&base[..], &["--refresh"]].concat(),
        &[("TOLLGATE_CLIENT_SECRET", "wrong")],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_client"));
}

/// `outcome` count of `endpoint` of `contract` in /metrics.
async fn outcome(s: &Server, contract: &str, endpoint: &str, outcome: &str) -> u64 {
    let text = s
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let want = format!("contract=\"{contract}\",endpoint=\"{endpoint}\",outcome=\"{outcome}\"}}");
    text.lines()
        .filter(|l| l.starts_with("tollgate_outcomes_total{") && l.contains(&want))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_right_after_a_rotation_loses_no_session() {
    let trials: usize = std::env::var("TG_CLIENT_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let s = Server::start_with(&["--contracts", "all"], &[]);
    s.cli_ok(&["api", "create", "orders", "--permission", "orders:read"]);
    let id = s.public_client(&[
        "--name",
        "web",
        "--api",
        "orders=orders:read",
        "--grant",
        "password",
    ]);
    s.user(&id, EMAIL, PASSWORD);
    s.sync().await;
    let proxy = Proxy::start(&s.url).await;
    let cache = tempfile::tempdir().unwrap();
    let args = [
        "--contract",
        "header-login",
        "--base-url",
        &proxy.url,
        "--username",
        EMAIL,
        "--refresh",
    ];
    let env = [("TOLLGATE_PASSWORD", PASSWORD)];
    // The session starts: one login.
    ok(token_cmd(cache.path(), &args, &env).output().unwrap());
    let sessions = cache.path().join("tollgate/sessions");
    let saved = || -> String {
        std::fs::read_dir(&sessions)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
            .collect()
    };
    let mut before_save = 0;
    for trial in 0..trials {
        let was = saved();
        // Refresh, and die right after the server answered the rotation.
        let child = token_cmd(cache.path(), &args, &env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        *proxy.victim.lock().unwrap() = Some(child);
        loop {
            let done = proxy
                .victim
                .lock()
                .unwrap()
                .as_mut()
                .map(|c| c.try_wait().unwrap().is_some())
                .unwrap();
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        proxy.victim.lock().unwrap().take();
        // Killed before it saved the rotated token: the hard case.
        if saved() == was {
            before_save += 1;
        }
        // The next run goes on with the session, whatever the dead one saved.
        let out =
            tokio::task::block_in_place(|| token_cmd(cache.path(), &args, &env).output().unwrap());
        assert!(
            out.status.success(),
            "trial {trial}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let kills = proxy.kills.load(Ordering::SeqCst);
    eprintln!(
        "{kills} of {trials} children killed, {before_save} before they saved the new refresh token"
    );
    assert!(
        before_save > 0,
        "no kill landed between the answer and the save: the hard case was not exercised"
    );
    assert!(
        kills * 2 >= trials,
        "only {kills} of {trials} children were still running when killed"
    );
    assert_eq!(
        outcome(&s, "header-login", "login", "issued").await,
        1,
        "no session was lost: never a second login ({kills} kills)"
    );
    assert_eq!(
        outcome(&s, "header-login", "refresh", "not_authenticated").await,
        0,
        "no refresh was refused"
    );
    let metrics = s
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("tollgate_refresh_reuse_total") && !l.ends_with(" 0")),
        "no reuse detected"
    );
}
