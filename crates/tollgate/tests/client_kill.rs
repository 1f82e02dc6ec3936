//! The Rust crate's SIGKILL trials (its cell of "a refresh is persisted
//! before use" in docs/PARTNERS.md's matrix), for both rotating contracts
//! (header login; device credentials under `rotate`). Each trial runs a
//! child process that continues the session with `tollgate-client` over a
//! file store whose `save` announces itself and blocks, and kills it with
//! SIGKILL at one of the two points that matter: right after the server
//! answered the rotation (before the save) or right after the save (before
//! the token is used). The next child must carry the session on: one login
//! for the whole run, every refresh answered, no reuse detected.
//!
//! A plain binary (`harness = false`), so it can run itself as the child:
//! `client_kill child` (settings in `TG_KILL_*`). `TG_CLIENT_KILL_TRIALS`
//! sets the trials per contract (default 100).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::clients::{DEVICE, EMAIL, PASSWORD, label, outcome, reuse_detected, setup};
use common::verify_with_jwks;
use tollgate_client::{
    DeviceCredentials, FileStore, HeaderLogin, Options, RefreshStore, Secret, StoreError,
    TokenSource,
};

const NAME: &str = "sigkill_trials_rust_crate";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        child();
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("{NAME}: test");
        return;
    }
    if !selected(&args) {
        println!("running 0 tests");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        trials("header-login", "login", "refresh", "not_authenticated").await;
        trials("device-credentials", "token", "token", "invalid_grant").await;
    });
    println!("test {NAME} ... ok");
}

/// Whether libtest's arguments select this test: `cargo test thousand`
/// runs every test binary with the filter `thousand`; `--skip NAME` and
/// `--exact` are honoured, the other options ignored (their values too).
fn selected(args: &[String]) -> bool {
    let mut filters = Vec::new();
    let mut exact = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--exact" => exact = true,
            "--skip" => {
                if it.next().is_some_and(|s| NAME.contains(s.as_str())) {
                    return false;
                }
            }
            "--test-threads" | "--format" | "--color" | "--logfile" | "--shuffle-seed" | "-Z" => {
                it.next();
            }
            s if s.starts_with('-') => {}
            s => filters.push(s),
        }
    }
    filters.is_empty()
        || filters
            .iter()
            .any(|f| if exact { *f == NAME } else { NAME.contains(f) })
}

/// A file store that prints `ROTATED <token>` before saving or `SAVED
/// <token>` after (by `TG_KILL_MODE`), then waits for the parent's kill.
struct Announcing {
    inner: FileStore,
    mode: String,
}

impl RefreshStore for Announcing {
    fn load(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        self.inner.load(key)
    }

    fn save(&self, key: &str, token: &Secret) -> Result<(), StoreError> {
        if self.mode == "before-save" {
            announce("ROTATED", token);
        }
        self.inner.save(key, token)?;
        if self.mode == "after-save" {
            announce("SAVED", token);
        }
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.inner.remove(key)
    }
}

fn announce(what: &str, token: &Secret) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{what} {}", token.expose()).unwrap();
    out.flush().unwrap();
    drop(out);
    // The parent kills us while we wait here.
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
}

/// The child: one `token()` of the session kept in the store.
fn child() {
    let var = |k: &str| std::env::var(k).unwrap();
    let store = Announcing {
        inner: FileStore::new(var("TG_KILL_STORE")),
        mode: var("TG_KILL_MODE"),
    };
    // No new login: a lost session must fail the trial, not be papered over.
    let options = Options::default()
        .store(Arc::new(store))
        .relogin(false)
        .margin(Duration::from_secs(1));
    let base = var("TG_KILL_BASE");
    let source: TokenSource = match var("TG_KILL_CONTRACT").as_str() {
        "header-login" => HeaderLogin::new(base, EMAIL, PASSWORD).build(options),
        _ => DeviceCredentials::new(base, var("TG_KILL_CLIENT"), DEVICE, PASSWORD).build(options),
    }
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match rt.block_on(source.token()) {
        Ok(t) => println!("TOKEN {}", t.secret()),
        Err(e) => {
            eprintln!("the session was lost: {e}");
            std::process::exit(1);
        }
    }
}

fn spawn_child(contract: &str, base: &str, client: &str, store: &Path, mode: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .arg("child")
        .env("TG_KILL_CONTRACT", contract)
        .env("TG_KILL_BASE", base)
        .env("TG_KILL_CLIENT", client)
        .env("TG_KILL_STORE", store)
        .env("TG_KILL_MODE", mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A child run to its end; returns the token it printed.
fn finish(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the session was lost: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().last().unwrap().to_string()
}

async fn trials(contract: &str, login: &str, refresh: &str, refused: &str) {
    let trials: usize = std::env::var("TG_CLIENT_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let st = setup(3600);
    st.s.sync().await;
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let base = st.s.url.clone();
    let run = |mode: &str| spawn_child(contract, &base, &st.public_id, &store_dir, mode);
    let started = Instant::now();
    tokio::task::block_in_place(|| finish(run("none"))); // the one login
    let files = FileStore::new(&store_dir);
    let key = match contract {
        "header-login" => HeaderLogin::new(&base, EMAIL, PASSWORD).build(Options::default()),
        _ => {
            DeviceCredentials::new(&base, &st.public_id, DEVICE, PASSWORD).build(Options::default())
        }
    }
    .unwrap()
    .key()
    .store_key();
    let saved = || files.load(&key).unwrap().map(|s| s.expose().to_string());
    for trial in 0..trials {
        let mode = if trial % 2 == 0 {
            "before-save"
        } else {
            "after-save"
        };
        let before = saved();
        let mut child = run(mode);
        let mut line = String::new();
        tokio::task::block_in_place(|| {
            BufReader::new(child.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .unwrap()
        });
        let words: Vec<&str> = line.split_whitespace().collect();
        if !matches!(words.first(), Some(&"ROTATED" | &"SAVED")) {
            let out = child.wait_with_output().unwrap();
            panic!(
                "{contract} trial {trial}: the child did not rotate: {line}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "{contract} trial {trial}: killed");
        let rotated = Some(words[1].to_string());
        assert_ne!(
            rotated, before,
            "{contract} trial {trial}: the server rotated"
        );
        if mode == "before-save" {
            assert_eq!(
                saved(),
                before,
                "killed before the save: the store is unchanged"
            );
        } else {
            assert_eq!(saved(), rotated, "saved before the token was used");
        }
    }
    // The session goes on after the last kill, with a token of its user.
    let token = tokio::task::block_in_place(|| finish(run("none")));
    let jwks = format!("{base}/.well-known/jwks.json");
    verify_with_jwks(&st.s.http, &jwks, &token, &base, "orders").await;
    let l = label(contract);
    assert_eq!(
        outcome(&st.s, l, login, "issued").await,
        1,
        "{contract}: never logged in again"
    );
    assert_eq!(
        outcome(&st.s, l, refresh, "refreshed").await,
        trials as u64 + 1,
        "{contract}: every trial's refresh and the last one answered"
    );
    assert_eq!(outcome(&st.s, l, refresh, refused).await, 0);
    assert!(
        !reuse_detected(&st.s).await,
        "{contract}: no reuse detected"
    );
    println!(
        "{contract}: {trials} SIGKILL trials ({} before the save, {} after), no session lost, \
         in {:.1} s",
        trials.div_ceil(2),
        trials / 2,
        started.elapsed().as_secs_f64()
    );
}
