//! Test harness: runs the real `tollgate` binary on an ephemeral port over a
//! temporary data directory, provisions it through the real CLI, and speaks
//! HTTP to it. Logs are captured to a file so tests can grep them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_testkit::{TempDatabase, postgres_base};

pub mod clients;
pub mod html;
pub mod login;
pub mod proxy;

pub const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

pub struct Server {
    pub url: String,
    /// `Some(url)` when running over PostgreSQL.
    pub database_url: Option<String>,
    database: Option<TempDatabase>,
    pub dir: tempfile::TempDir,
    /// The data directory (`dir/data`, or another server's: [`Server::start_beside`]).
    data: PathBuf,
    child: Child,
    log_path: PathBuf,
    pub http: reqwest::Client,
    extra_env: Vec<(String, String)>,
    args: Vec<String>,
    restarts: u32,
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&[], &[])
    }

    /// Starts `tollgate serve` with extra args and environment variables.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, args, env)
    }

    pub fn start_in(dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Self {
        // Which store the suite runs over: `TG_TEST_STORE=postgres` gives
        // every server a fresh PostgreSQL database (dropped with the
        // `Server`, also when it fails to start); otherwise SQLite in the
        // data dir.
        let database = postgres_base().map(|base| TempDatabase::create(&base).unwrap());
        Self::start_on(dir, database, args, env)
    }

    /// Starts `tollgate serve` over `dir`'s data directory and the given
    /// database (`None`: SQLite in the data directory), whatever the suite
    /// runs over; the `Server` owns (and drops) the database.
    pub fn start_on(
        dir: tempfile::TempDir,
        database: Option<TempDatabase>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let database_url = database.as_ref().map(TempDatabase::url);
        let data = dir.path().join("data");
        Self::spawn_over(dir, data, database, database_url, args, env)
    }

    /// Starts a second instance over this server's store (its data
    /// directory and master key, and over PostgreSQL its database), as
    /// another instance behind a load balancer; with its own logs.
    pub fn start_beside(&self, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = self.data.clone();
        Self::spawn_over(dir, data, None, self.database_url.clone(), args, env)
    }

    fn spawn_over(
        dir: tempfile::TempDir,
        data: PathBuf,
        database: Option<TempDatabase>,
        database_url: Option<String>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let log_path = dir.path().join("server.log");
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (child, url) = spawn(&data, database_url.as_deref(), &args, &env, &log_path);
        Server {
            url,
            database_url,
            database,
            dir,
            data,
            child,
            log_path,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            extra_env: env,
            args,
            restarts: 0,
        }
    }

    /// Kills the server with SIGKILL (no shutdown, no flush: a crash),
    /// waits `down`, and starts it again on the same data and database
    /// with the same settings (on a new port: `url` changes).
    pub fn crash_and_restart(&mut self, down: Duration) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(down);
        self.restarts += 1;
        let log_path = self
            .dir
            .path()
            .join(format!("server-{}.log", self.restarts));
        let (child, url) = spawn(
            &self.data,
            self.database_url.as_deref(),
            &self.args,
            &self.extra_env,
            &log_path,
        );
        self.child = child;
        self.url = url;
        self.log_path = log_path;
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory now, bytes (Linux: `VmRSS` of /proc).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }

    /// Runs a CLI command against the server's data directory.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir").arg(self.data_dir());
        if let Some(u) = &self.database_url {
            cmd.arg("--database-url").arg(u);
        }
        cmd.args(args);
        cmd.env_remove("TOLLGATE_MASTER_KEY");
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// Runs a CLI command that must succeed, returning stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "tollgate {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a `--json` CLI command and parses its output.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        serde_json::from_str(&self.cli_ok(&full)).unwrap()
    }

    /// Creates a client; returns (client_id, client_secret).
    pub fn client(&self, args: &[&str]) -> (String, String) {
        let mut full = vec!["client", "create"];
        full.extend_from_slice(args);
        let v = self.cli_json(&full);
        (
            v["client_id"].as_str().unwrap().to_string(),
            v["client_secret"].as_str().unwrap().to_string(),
        )
    }

    /// Creates a public client (no secret) with `args` (name, APIs, grants);
    /// returns its id.
    pub fn public_client(&self, args: &[&str]) -> String {
        let mut full = vec!["client", "create", "--public"];
        full.extend_from_slice(args);
        let v = self.cli_json(&full);
        assert_eq!(v["public"], true);
        assert!(
            v.get("client_secret").is_none(),
            "a public client has no secret"
        );
        v["client_id"].as_str().unwrap().to_string()
    }

    /// Creates a user of `client` in the default environment.
    pub fn user(&self, client: &str, username: &str, password: &str) {
        self.cli_ok(&[
            "user",
            "create",
            "--client",
            client,
            "--username",
            username,
            "--password",
            password,
        ]);
    }

    /// Makes the server pick up CLI changes now (/readyz syncs with the store).
    pub async fn sync(&self) {
        let r = self
            .http
            .get(format!("{}/readyz", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    /// Everything at rest: the data directory's files and, over PostgreSQL,
    /// a dump of the database.
    pub fn data_at_rest(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for e in std::fs::read_dir(self.data_dir()).unwrap() {
            all.extend(std::fs::read(e.unwrap().path()).unwrap());
        }
        if let Some(u) = &self.database_url {
            let out = Command::new("pg_dump").arg(u).output().unwrap();
            assert!(
                out.status.success(),
                "pg_dump: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!out.stdout.is_empty());
            all.extend(out.stdout);
        }
        all
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap()
    }

    /// A POST to `path` on the server, to finish and [`send`].
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.url))
    }

    /// A GET of `path` on the server, to finish and [`send`].
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.url))
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.get("/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// POSTs a form to `path`.
    pub async fn form(&self, path: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
        send(self.post(path).form(pairs)).await
    }

    /// POSTs a client_credentials form with client_secret_post.
    pub async fn token(&self, id: &str, secret: &str, extra: &[(&str, &str)]) -> reqwest::Response {
        let mut pairs = vec![
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ];
        pairs.extend_from_slice(extra);
        self.form("/oauth/token", &pairs).await
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // then `database` drops its database
    }
}

/// Starts `tollgate serve` over data directory `data` (and `database_url`),
/// logging to `log_path`; returns the process and the URL it listens at.
fn spawn(
    data: &Path,
    database_url: Option<&str>,
    args: &[String],
    env: &[(String, String)],
    log_path: &Path,
) -> (Child, String) {
    let log = std::fs::File::create(log_path).unwrap();
    let mut cmd = Command::new(BIN);
    if let Some(u) = database_url {
        cmd.arg("--database-url").arg(u);
    }
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("TOLLGATE_MASTER_KEY")
        .env_remove("TG_TEST_STORE")
        .env_remove("TOLLGATE_LOG")
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    match std::panic::catch_unwind(|| wait_for_listening(log_path)) {
        Ok(url) => (child, url),
        Err(p) => {
            let _ = child.kill();
            let _ = child.wait();
            std::panic::resume_unwind(p)
        }
    }
}

/// Sends a request that must get an HTTP answer (any status).
pub async fn send(rb: reqwest::RequestBuilder) -> reqwest::Response {
    rb.send().await.unwrap()
}

fn wait_for_listening(log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(f) = std::fs::File::open(log) {
            for line in BufReader::new(f).lines().map_while(Result::ok) {
                if line.contains(" listening ") {
                    if let Some(rest) = line.split("address=").nth(1) {
                        return rest.split_whitespace().next().unwrap().to_string();
                    }
                }
                // --log-format json
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v["message"] == "listening" {
                        return v["address"].as_str().unwrap().to_string();
                    }
                }
            }
        }
        if Instant::now() > deadline {
            panic!(
                "server did not start; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Sum of `tollgate_outcomes_total` over every line naming `contract`
/// (all environments, endpoints and outcomes): the requests the server
/// answered for that contract.
pub async fn contract_requests(s: &Server, contract: &str) -> u64 {
    let text = s.metrics().await;
    let needle = format!("contract=\"{contract}\"");
    text.lines()
        .filter(|l| l.starts_with("tollgate_outcomes_total{") && l.contains(&needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Decodes a JWT's header and claims without verifying (for inspection).
pub fn jwt_parts(token: &str) -> (Value, Value) {
    use base64::Engine as _;
    let dec = |s: &str| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap(),
        )
        .unwrap()
    };
    let mut it = token.split('.');
    let h = dec(it.next().unwrap());
    let c = dec(it.next().unwrap());
    (h, c)
}

/// Verifies `token` with the key from the JWKS at `jwks_url`, using
/// jsonwebtoken (independent of tollgate's own signing code).
pub async fn verify_with_jwks(
    http: &reqwest::Client,
    jwks_url: &str,
    token: &str,
    issuer: &str,
    aud: &str,
) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet = http
        .get(jwks_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_issuer(&[issuer]);
    v.set_audience(&[aud]);
    v.leeway = 0;
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap()
        .claims
}

/// `md5_hex(s)`, computed by Python's hashlib (independent of tollgate's code).
pub fn md5_hex(s: &str) -> String {
    tollgate_testkit::md5_hex(s).unwrap()
}

/// A throw-away self-signed P-256 certificate and key for `localhost`,
/// written into `dir` by openssl; returns (certificate, key) paths.
pub fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}
