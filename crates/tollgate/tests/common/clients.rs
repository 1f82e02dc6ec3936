//! What the client conformance suites share (the Rust crate's in
//! client_conformance.rs and client_kill.rs, the CLI's in token_cli.rs):
//! a server with every contract on and device credentials rotating their
//! refresh tokens, the credentials each contract needs, how to ask
//! `tollgate token get` for each, and the server's counts of outcomes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{BIN, Server};

/// Every contract the clients speak.
pub const CONTRACTS: [&str; 6] = [
    "rfc6749",
    "rfc6749-json",
    "auth0",
    "bearer-exchange",
    "device-credentials",
    "header-login",
];

pub const PASSWORD: &str = "pa55word";
pub const DEVICE: &str = "device-1";
pub const EMAIL: &str = "buyer@example.com";

/// The `contract` label under which the server counts a client contract's
/// token requests (the three client-credentials shapes are one contract).
pub fn label(contract: &str) -> &'static str {
    match contract {
        "rfc6749" | "rfc6749-json" | "auth0" => "rfc6749",
        "bearer-exchange" => "bearer-exchange",
        "device-credentials" => "device-credentials",
        "header-login" => "header-login",
        other => panic!("{other}"),
    }
}

/// A server with every contract on (device credentials under the `rotate`
/// policy, so both user contracts rotate), an API `orders` whose tokens
/// live `lifetime` seconds, and the credentials each contract needs.
pub struct Setup {
    pub s: Server,
    pub id: String,
    pub secret: String,
    pub public_id: String,
    pub refresh_jwt: String,
}

pub fn setup(lifetime: u64) -> Setup {
    let s = Server::start_with(
        &["--contracts", "all"],
        &[("TOLLGATE_DEVICE_CREDENTIALS_REFRESH_POLICY", "rotate")],
    );
    let life = format!("{lifetime}s");
    s.cli_ok(&[
        "api",
        "create",
        "orders",
        "--permission",
        "orders:read",
        "--token-lifetime",
        &life,
    ]);
    let (id, secret) = s.client(&["--name", "partner", "--api", "orders=orders:read"]);
    let public_id = s.public_client(&[
        "--name",
        "app",
        "--api",
        "orders=orders:read",
        "--grant",
        "device_credentials",
        "--grant",
        "password",
    ]);
    s.user(&public_id, DEVICE, PASSWORD);
    s.user(&public_id, EMAIL, PASSWORD);
    let refresh_jwt = s.cli_json(&["refresh-jwt", "issue", "--client", &id])["refresh_jwt"]
        .as_str()
        .unwrap()
        .to_string();
    Setup {
        s,
        id,
        secret,
        public_id,
        refresh_jwt,
    }
}

impl Setup {
    /// `tollgate token get` for `contract` at `base`, its cache in `cache`
    /// (as `XDG_CACHE_HOME`), the secrets in the environment.
    pub fn token_cmd(&self, cache: &Path, contract: &str, base: &str, extra: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(["token", "get", "--contract", contract, "--base-url", base])
            .env("XDG_CACHE_HOME", cache)
            .env_remove("TOLLGATE_CLIENT_SECRET")
            .env_remove("TOLLGATE_PASSWORD")
            .env_remove("TOLLGATE_LOG")
            .stdin(Stdio::null());
        match contract {
            "rfc6749" | "rfc6749-json" | "auth0" => {
                cmd.args(["--client-id", &self.id, "--audience", "orders"])
                    .env("TOLLGATE_CLIENT_SECRET", &self.secret);
            }
            "bearer-exchange" => {
                cmd.env("TOLLGATE_CLIENT_SECRET", &self.refresh_jwt);
            }
            "device-credentials" => {
                cmd.args(["--client-id", &self.public_id, "--username", DEVICE])
                    .env("TOLLGATE_PASSWORD", PASSWORD);
            }
            "header-login" => {
                cmd.args(["--username", EMAIL])
                    .env("TOLLGATE_PASSWORD", PASSWORD);
            }
            other => panic!("{other}"),
        }
        cmd.args(extra);
        cmd
    }
}

/// `outcome` count of `endpoint` of `contract` in /metrics.
pub async fn outcome(s: &Server, contract: &str, endpoint: &str, outcome: &str) -> u64 {
    let text = s.metrics().await;
    let want = format!("contract=\"{contract}\",endpoint=\"{endpoint}\",outcome=\"{outcome}\"}}");
    text.lines()
        .filter(|l| l.starts_with("tollgate_outcomes_total{") && l.contains(&want))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The server's rfc6749 token counts before a client's refresh that hits
/// a `limit:` window: [`Throttled::assert_waited`] checks afterwards that
/// it met exactly one 429, then waited the window out and got one token.
pub struct Throttled {
    refused: u64,
    issued: u64,
    t0: Instant,
}

impl Throttled {
    /// Counts now; the refresh follows.
    pub async fn before(s: &Server) -> Self {
        Self {
            refused: outcome(s, "rfc6749", "token", "too_many_requests").await,
            issued: outcome(s, "rfc6749", "token", "issued").await,
            t0: Instant::now(),
        }
    }

    /// One 429, one token, and at least the half second the window had left.
    pub async fn assert_waited(self, s: &Server, what: &str) {
        assert_eq!(
            outcome(s, "rfc6749", "token", "too_many_requests").await - self.refused,
            1,
            "{what}: one 429, then it waited"
        );
        assert_eq!(
            outcome(s, "rfc6749", "token", "issued").await - self.issued,
            1
        );
        assert!(
            self.t0.elapsed() >= Duration::from_millis(500),
            "{what}: the window had not reset at once"
        );
    }
}

/// Whether the server detected a refresh token's reuse (a lost session).
pub async fn reuse_detected(s: &Server) -> bool {
    s.metrics()
        .await
        .lines()
        .any(|l| l.starts_with("tollgate_refresh_reuse_total") && !l.ends_with(" 0"))
}
