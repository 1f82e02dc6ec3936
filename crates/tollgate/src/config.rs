//! Effective configuration: defaults, then a TOML file (`--config`), then
//! `TOLLGATE_*` environment variables, then command-line flags. A bad value or
//! an unknown key stops start-up with a message naming the key and where it
//! came from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

/// Every server configuration key, with its default and meaning; the
/// defaults are read from here when a key is not set. Each optional
/// contract brings its own keys (`tollgate_http::contracts::registry`). The
/// config reference in docs/OPERATIONS.md is rendered from both and checked
/// by a test.
pub const KEYS: &[(&str, &str, &str)] = &[
    ("listen", "127.0.0.1:8080", "address and port to listen on"),
    (
        "public_url",
        "http(s)://<listen address>",
        "base URL clients reach tollgate at; issuers and metadata derive from it",
    ),
    (
        "data_dir",
        "./tollgate-data",
        "directory of the SQLite database and the master key file",
    ),
    (
        "database_url",
        "sqlite in data_dir",
        "postgres://… to share one database between instances",
    ),
    ("log_format", "text", "text or json"),
    ("tls_cert", "(none)", "PEM certificate chain: serve HTTPS"),
    ("tls_key", "(none)", "PEM private key for tls_cert"),
    (
        "metrics_listen",
        "(the main listener)",
        "address and port of a listener of its own for /metrics (then the main listener does not serve it)",
    ),
    (
        "admin_listen",
        "(the main listener)",
        "address and port of a listener of its own for the admin API, /admin/… (then the main listener does not serve it)",
    ),
    (
        "portal_path",
        "/portal/",
        "where the partner portal answers on the main listener (docs/PORTAL.md); off: nowhere",
    ),
    (
        "gate_proxy_listen",
        "(none)",
        "address and port of the gate's reverse proxy, a listener of its own (needs a [gate] policy and gate_proxy_upstream; docs/GATE.md)",
    ),
    (
        "gate_proxy_upstream",
        "(none)",
        "http:// URL of the API the reverse proxy guards (a path prefix is kept)",
    ),
    (
        "gate_proxy_env",
        "default",
        "the environment whose tokens and routes the reverse proxy applies",
    ),
    (
        "gate_proxy_timeout",
        "60s",
        "how long the upstream may take to answer a proxied request (then 504)",
    ),
    (
        "metrics_token",
        "(none)",
        "a bearer token /metrics requires (Authorization: Bearer …); shown redacted",
    ),
    (
        "shutdown_grace",
        "10s",
        "how long in-flight requests may finish after SIGTERM/SIGINT",
    ),
    (
        "header_read_timeout",
        "10s",
        "how long a client may take to send a request's headers: from the accept (or the end of the TLS handshake) for a connection's first request, from the first byte for later ones; then the connection is closed",
    ),
    (
        "body_read_timeout",
        "10s",
        "how long a request's body may take to arrive after its headers; then 408 and the connection is closed",
    ),
    (
        "idle_timeout",
        "75s",
        "how long a kept-alive connection may wait for its next request before it is closed; keep it above the idle timeout of a load balancer in front",
    ),
    (
        "tls_handshake_timeout",
        "10s",
        "how long a TLS handshake may take (with tls_cert)",
    ),
    (
        "max_connections",
        "4096",
        "connections served at once; more wait in the listen backlog until one closes (keep below the open-file limit)",
    ),
    (
        "contracts",
        "rfc6749",
        "optional wire contracts to serve in the default environment (other environments: env update --contracts): all, none, or a comma-separated list",
    ),
    (
        "key_rotation_interval",
        "off",
        "rotate every environment's signing key when its newest key is this old, e.g. 90d",
    ),
    (
        "audit_retention",
        "400d",
        "how long admin audit-log entries are kept (the purge task removes older ones, every minute), e.g. 730d, or off to keep them all",
    ),
    (
        "key_publish_delay",
        "10m",
        "how long a scheduled new key is published before it signs",
    ),
    (
        "store_timeout",
        "5s",
        "how long a store call may take while serving; past it the request gets 503 + Retry-After (a hung database must not hang clients)",
    ),
    (
        "sync_interval",
        "250ms",
        "how often a server polls the store for changes made elsewhere (the CLI, other instances); over PostgreSQL changes are also pushed at once (LISTEN/NOTIFY) and the poll is the fallback",
    ),
    (
        "usage_flush_interval",
        "15s",
        "how often a server adds the usage it counted in memory (tokens issued, errors, 429s per client and day: the portal's chart, the admin API's usage route) to the store; also at shutdown",
    ),
    (
        "argon2_memory_budget",
        "64",
        "MiB that argon2id checks under way may hold together (each check is charged its hash's memory cost; 19 MiB for tollgate's own)",
    ),
    (
        "argon2_max_waiting",
        "64",
        "argon2id checks that may wait for the memory budget; more are refused at once with 503 + Retry-After",
    ),
    (
        "throttle_account_failures",
        "5",
        "failed logins of one user (or failed authentications of a client with an imported secret) within throttle_window before it is locked; 0 turns it off. Clients with generated secrets are never locked",
    ),
    (
        "throttle_source_failures",
        "50",
        "failed authentications from one address within throttle_window before it is locked; 0 turns it off (set 0 behind a proxy: every client then shares its address)",
    ),
    (
        "throttle_window",
        "15m",
        "failures less than this apart accumulate; a quiet window forgets them",
    ),
    (
        "throttle_max_lock",
        "15m",
        "the longest lock (locks double from 1 s with each failure past the threshold)",
    ),
    (
        "argon2_max_wait",
        "2s",
        "how long an argon2id check waits for the memory budget before it is refused",
    ),
];

/// Environment variables that are not configuration keys but are known.
const OTHER_ENV: &[&str] = &[
    "TOLLGATE_MASTER_KEY",
    "TOLLGATE_LOG",
    "TOLLGATE_IMPORT_CLIENT_SECRET",
    "TOLLGATE_USER_PASSWORD",
];

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: Option<String>,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub log_format: LogFormat,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub shutdown_grace: Duration,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub max_connections: usize,
    pub metrics_listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    /// The partner portal's path (leading and trailing `/`); `None`: off.
    pub portal_path: Option<String>,
    pub metrics_token: Option<secrecy::SecretString>,
    pub key_rotation_interval: Option<Duration>,
    /// How long audit entries are kept; `None`: for ever.
    pub audit_retention: Option<Duration>,
    /// Optional contracts enabled in the default environment, besides rfc6749.
    pub contracts: std::collections::BTreeSet<String>,
    pub key_publish_delay: Duration,
    pub store_timeout: Duration,
    pub sync_interval: Duration,
    /// How often counted usage is flushed to the store.
    pub usage_flush_interval: Duration,
    pub argon2: tollgate_core::service::Argon2Bound,
    pub throttle: tollgate_core::service::ThrottlePolicy,
    /// The optional contracts, configured (paths, lifetimes, policies).
    pub contract_settings: Vec<(String, String)>,
    /// The file whose `[gate]` table is the gate's policy (the config file,
    /// when it has one): `/gate/check` is served.
    pub gate_policy: Option<PathBuf>,
    /// The gate's reverse proxy, when configured.
    pub gate_proxy: Option<GateProxy>,
}

/// The gate's reverse proxy: where it listens, what it guards.
#[derive(Debug, Clone)]
pub struct GateProxy {
    pub listen: SocketAddr,
    pub upstream: String,
    pub env: String,
    pub timeout: Duration,
}

/// Values given on the command line (they win over everything else).
pub type Overrides = BTreeMap<&'static str, String>;

impl Config {
    /// Loads the configuration from `file` (if any), the environment and `flags`.
    pub fn load(file: Option<&Path>, flags: &Overrides) -> Result<Self> {
        let text = match file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?,
            ),
            None => None,
        };
        // `vars()` would panic on a variable that is not UTF-8; only ours
        // must be text, anything else in the environment is none of our
        // business.
        let mut env = BTreeMap::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str().filter(|n| n.starts_with("TOLLGATE_")) else {
                continue;
            };
            let value = value
                .into_string()
                .map_err(|_| anyhow!("environment variable {name} is not valid UTF-8"))?;
            env.insert(name.to_string(), value);
        }
        Self::from_sources(text.as_deref().zip(file), &env, flags)
    }

    /// The configuration from the text of a config file (with its path, for
    /// messages), environment variables and `flags`; reads nothing itself,
    /// so the fuzz target and tests can feed it any text.
    pub fn from_sources(
        file: Option<(&str, &Path)>,
        env: &BTreeMap<String, String>,
        flags: &Overrides,
    ) -> Result<Self> {
        let mut values: BTreeMap<&'static str, (String, String)> = BTreeMap::new();
        let mut gate_policy = None;
        if let Some((text, path)) = file {
            let table: toml::Table =
                toml::from_str(text).map_err(|e| anyhow!("config file {}: {e}", path.display()))?;
            for (k, v) in table {
                // The gate's policy: validated as a whole by tollgate-gate
                // (which names lines), not a key=value setting.
                if k == "gate" && v.is_table() {
                    gate_policy = Some(path.to_path_buf());
                    continue;
                }
                let key = key_named(&k).ok_or_else(|| {
                    anyhow!(
                        "config file {}: unknown key '{k}' (known: {})",
                        path.display(),
                        known()
                    )
                })?;
                let v = match v {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    other => bail!(
                        "config file {}: key '{k}' must be a string, got {}",
                        path.display(),
                        other.type_str()
                    ),
                };
                values.insert(key, (v, format!("config file {}", path.display())));
            }
        }
        for (name, v) in env {
            let Some(rest) = name.strip_prefix("TOLLGATE_") else {
                continue;
            };
            if OTHER_ENV.contains(&name.as_str()) {
                continue;
            }
            let lower = rest.to_ascii_lowercase();
            let key = key_named(&lower).ok_or_else(|| {
                anyhow!(
                    "environment variable {name}: unknown setting (known: {})",
                    known()
                )
            })?;
            values.insert(key, (v.clone(), format!("environment variable {name}")));
        }
        for (k, v) in flags {
            values.insert(k, (v.clone(), format!("flag --{}", k.replace('_', "-"))));
        }
        let get = |k: &str| values.get(k).map(|(v, s)| (v.as_str(), s.as_str()));
        let listen = match get("listen") {
            Some((v, src)) => v
                .parse()
                .map_err(|e| anyhow!("{src}: listen = '{v}' is not an address:port ({e})"))?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let log_format = match get("log_format") {
            None | Some(("text", _)) => LogFormat::Text,
            Some(("json", _)) => LogFormat::Json,
            Some((v, src)) => bail!("{src}: log_format = '{v}' (use text or json)"),
        };
        // A setting's text, or its default from KEYS.
        let text = |key: &str| -> (String, String) {
            match get(key) {
                Some((v, src)) => (v.to_string(), src.to_string()),
                None => (default_of(key).to_string(), "the default".to_string()),
            }
        };
        let duration = |key: &str| -> Result<Duration> {
            let (v, src) = text(key);
            parse_duration(&v).map_err(|e| anyhow!("{src}: {key} = '{v}': {e}"))
        };
        let number = |key: &str| -> Result<u64> {
            let (v, src) = text(key);
            v.trim()
                .parse()
                .map_err(|e| anyhow!("{src}: {key} = '{v}' is not a whole number ({e})"))
        };
        let shutdown_grace = duration("shutdown_grace")?;
        let key_rotation_interval = match get("key_rotation_interval") {
            None | Some(("off", _)) => None,
            Some((v, src)) => match parse_duration(v) {
                Ok(d) if d.as_secs() > 0 => Some(d),
                Ok(_) => bail!("{src}: key_rotation_interval = '{v}' must be positive (or off)"),
                Err(e) => bail!("{src}: key_rotation_interval = '{v}': {e}"),
            },
        };
        let audit_retention = match get("audit_retention") {
            Some(("off", _)) => None,
            None => Some(Duration::from_secs(400 * 86_400)),
            Some((v, src)) => match parse_duration(v) {
                Ok(d) if d.as_secs() > 0 => Some(d),
                Ok(_) => bail!("{src}: audit_retention = '{v}' must be positive (or off)"),
                Err(e) => bail!("{src}: audit_retention = '{v}': {e}"),
            },
        };
        let contracts = match get("contracts") {
            None => Default::default(),
            Some((v, src)) => tollgate_http::contracts::parse_list(v)
                .map_err(|e| anyhow!("{src}: contracts = '{v}': {e}"))?,
        };
        // Every other key belongs to an optional contract.
        let mut contract_settings = Vec::new();
        let mut probe = tollgate_http::contracts::Settings::default();
        for (k, (v, src)) in &values {
            if KEYS.iter().any(|(n, _, _)| n == k) {
                continue;
            }
            match probe.set(k, v) {
                Ok(true) => contract_settings.push(((*k).to_string(), v.clone())),
                Ok(false) => bail!("{src}: unknown key '{k}' (known: {})", known()),
                Err(e) => bail!("{src}: {e}"),
            }
        }
        let key_publish_delay = duration("key_publish_delay")?;
        let store_timeout = duration("store_timeout")?;
        if store_timeout.is_zero() {
            bail!("store_timeout must be positive");
        }
        let sync_interval = duration("sync_interval")?;
        if sync_interval < Duration::from_millis(10) {
            bail!("sync_interval must be at least 10ms");
        }
        let usage_flush_interval = duration("usage_flush_interval")?;
        if usage_flush_interval < Duration::from_millis(100) {
            bail!("usage_flush_interval must be at least 100ms");
        }
        let argon2 = tollgate_core::service::Argon2Bound {
            memory_budget_mib: u32::try_from(number("argon2_memory_budget")?)
                .ok()
                .filter(|m| *m > 0)
                .ok_or_else(|| anyhow!("argon2_memory_budget must be between 1 and 2^32-1 MiB"))?,
            max_waiting: usize::try_from(number("argon2_max_waiting")?)
                .map_err(|e| anyhow!("argon2_max_waiting: {e}"))?,
            max_wait: duration("argon2_max_wait")?,
        };
        let throttle = tollgate_core::service::ThrottlePolicy {
            account_failures: number("throttle_account_failures")?,
            source_failures: number("throttle_source_failures")?,
            window: duration("throttle_window")?.as_secs().max(1),
            max_lock: duration("throttle_max_lock")?.as_secs().max(1),
        };
        // Connection limits: timeouts of at least a second, a positive cap.
        let at_least_a_second = |key: &str| -> Result<Duration> {
            let d = duration(key)?;
            if d.as_secs() == 0 {
                bail!("{key} must be at least 1s");
            }
            Ok(d)
        };
        let header_read_timeout = at_least_a_second("header_read_timeout")?;
        let body_read_timeout = at_least_a_second("body_read_timeout")?;
        let idle_timeout = at_least_a_second("idle_timeout")?;
        let tls_handshake_timeout = at_least_a_second("tls_handshake_timeout")?;
        let max_connections = match usize::try_from(number("max_connections")?) {
            Ok(n) if (1..=tokio::sync::Semaphore::MAX_PERMITS).contains(&n) => n,
            _ => bail!("max_connections must be a positive whole number"),
        };
        let metrics_listen = match get("metrics_listen") {
            None => None,
            Some((v, src)) => Some(v.parse().map_err(|e| {
                anyhow!("{src}: metrics_listen = '{v}' is not an address:port ({e})")
            })?),
        };
        let admin_listen = match get("admin_listen") {
            None => None,
            Some((v, src)) => Some(v.parse().map_err(|e| {
                anyhow!("{src}: admin_listen = '{v}' is not an address:port ({e})")
            })?),
        };
        let portal_path = match get("portal_path") {
            None => Some("/portal/".to_string()),
            Some((v, src)) => {
                parse_portal_path(v).map_err(|why| anyhow!("{src}: portal_path = '{v}' {why}"))?
            }
        };
        let gate_proxy = match (get("gate_proxy_listen"), get("gate_proxy_upstream")) {
            (None, None) => None,
            (Some((l, src)), Some((u, usrc))) => {
                let listen = l.parse().map_err(|e| {
                    anyhow!("{src}: gate_proxy_listen = '{l}' is not an address:port ({e})")
                })?;
                let (env, _) = text("gate_proxy_env");
                let timeout = at_least_a_second("gate_proxy_timeout")?;
                tollgate_http::proxy::Upstream::parse(u, &env, timeout, false)
                    .map_err(|e| anyhow!("{usrc}: {e}"))?;
                if gate_policy.is_none() {
                    bail!(
                        "{src}: gate_proxy_listen needs a [gate] policy in the config file (docs/GATE.md)"
                    );
                }
                Some(GateProxy {
                    listen,
                    upstream: u.to_string(),
                    env,
                    timeout,
                })
            }
            (Some((_, src)), None) | (None, Some((_, src))) => {
                bail!("{src}: gate_proxy_listen and gate_proxy_upstream go together")
            }
        };
        let public_url = match get("public_url") {
            None => None,
            Some((v, src)) => Some(
                parse_public_url(v).map_err(|why| anyhow!("{src}: public_url = '{v}' {why}"))?,
            ),
        };
        let cfg = Config {
            listen,
            public_url,
            data_dir: get("data_dir")
                .map_or_else(|| PathBuf::from("tollgate-data"), |(v, _)| v.into()),
            database_url: get("database_url").map(|(v, _)| v.to_string()),
            log_format,
            tls_cert: get("tls_cert").map(|(v, _)| v.into()),
            tls_key: get("tls_key").map(|(v, _)| v.into()),
            metrics_listen,
            admin_listen,
            portal_path,
            metrics_token: get("metrics_token")
                .map(|(v, _)| v.trim())
                .filter(|v| !v.is_empty())
                .map(|v| secrecy::SecretString::from(v.to_string())),
            shutdown_grace,
            header_read_timeout,
            body_read_timeout,
            idle_timeout,
            tls_handshake_timeout,
            max_connections,
            key_rotation_interval,
            audit_retention,
            key_publish_delay,
            contracts,
            store_timeout,
            sync_interval,
            usage_flush_interval,
            argon2,
            throttle,
            contract_settings,
            gate_policy,
            gate_proxy,
        };
        if cfg.tls_cert.is_some() != cfg.tls_key.is_some() {
            bail!("tls_cert and tls_key go together: set both or neither");
        }
        Ok(cfg)
    }
}

impl Config {
    /// The optional contracts as configured, enabled in the default
    /// environment as `contracts` says.
    pub fn contracts(&self) -> tollgate_http::contracts::Settings {
        let mut settings = tollgate_http::contracts::Settings {
            default_env: self.contracts.clone(),
            ..Default::default()
        };
        for (k, v) in &self.contract_settings {
            // Checked when loaded: cannot fail here.
            let _ = settings.set(k, v);
        }
        settings
    }

    /// The effective configuration as TOML, secrets redacted (the password of
    /// `database_url`). The master key is never part of the configuration.
    pub fn to_toml_redacted(&self) -> String {
        let mut t = toml::Table::new();
        let mut put = |k: &str, v: String| {
            t.insert(k.to_string(), toml::Value::String(v));
        };
        put("listen", self.listen.to_string());
        if let Some(u) = &self.public_url {
            put("public_url", u.clone());
        }
        put("data_dir", self.data_dir.display().to_string());
        if let Some(u) = &self.database_url {
            put("database_url", redact_url(u));
        }
        put(
            "log_format",
            match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }
            .into(),
        );
        if let Some(p) = &self.tls_cert {
            put("tls_cert", p.display().to_string());
        }
        if let Some(p) = &self.tls_key {
            put("tls_key", p.display().to_string());
        }
        if let Some(a) = &self.metrics_listen {
            put("metrics_listen", a.to_string());
        }
        if let Some(a) = &self.admin_listen {
            put("admin_listen", a.to_string());
        }
        put(
            "portal_path",
            self.portal_path.clone().unwrap_or_else(|| "off".into()),
        );
        if self.metrics_token.is_some() {
            put("metrics_token", "***".into());
        }
        if let Some(g) = &self.gate_proxy {
            put("gate_proxy_listen", g.listen.to_string());
            put("gate_proxy_upstream", g.upstream.clone());
            put("gate_proxy_env", g.env.clone());
            put("gate_proxy_timeout", format_duration(g.timeout));
        }
        put("shutdown_grace", format_duration(self.shutdown_grace));
        put(
            "header_read_timeout",
            format_duration(self.header_read_timeout),
        );
        put("body_read_timeout", format_duration(self.body_read_timeout));
        put("idle_timeout", format_duration(self.idle_timeout));
        put(
            "tls_handshake_timeout",
            format_duration(self.tls_handshake_timeout),
        );
        put("max_connections", self.max_connections.to_string());
        put(
            "contracts",
            if self.contracts.is_empty() {
                "none".to_string()
            } else {
                self.contracts.iter().cloned().collect::<Vec<_>>().join(",")
            },
        );
        for (k, v) in self.contracts().values() {
            put(k.name, v);
        }
        put(
            "key_rotation_interval",
            self.key_rotation_interval
                .map_or("off".to_string(), format_duration),
        );
        put(
            "audit_retention",
            self.audit_retention
                .map_or("off".to_string(), format_duration),
        );
        put("key_publish_delay", format_duration(self.key_publish_delay));
        put("store_timeout", format_duration(self.store_timeout));
        put("sync_interval", format_duration(self.sync_interval));
        put(
            "usage_flush_interval",
            format_duration(self.usage_flush_interval),
        );
        put(
            "argon2_memory_budget",
            self.argon2.memory_budget_mib.to_string(),
        );
        put("argon2_max_waiting", self.argon2.max_waiting.to_string());
        put("argon2_max_wait", format_duration(self.argon2.max_wait));
        put(
            "throttle_account_failures",
            self.throttle.account_failures.to_string(),
        );
        put(
            "throttle_source_failures",
            self.throttle.source_failures.to_string(),
        );
        put("throttle_window", format!("{}s", self.throttle.window));
        put("throttle_max_lock", format!("{}s", self.throttle.max_lock));
        toml::to_string(&t).unwrap_or_default()
    }
}

/// `scheme://user:password@host/…` → `scheme://user:***@host/…`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{masked}@{host}{path}")
        }
        None => url.to_string(),
    }
}

/// The default of server key `key` (KEYS), `""` if none.
fn default_of(key: &str) -> &'static str {
    KEYS.iter()
        .find(|(n, _, _)| *n == key)
        .map_or("", |(_, d, _)| *d)
}

/// The configuration key named `name`: a server key or a contract's.
fn key_named(name: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|(n, _, _)| *n)
        .chain(contract_keys().into_iter().map(|(k, _)| k.name))
        .find(|n| *n == name)
}

/// Every contract's keys with their defaults.
fn contract_keys() -> Vec<(tollgate_http::contracts::registry::Key, String)> {
    tollgate_http::contracts::Settings::default().values()
}

fn known() -> String {
    KEYS.iter()
        .map(|(n, _, _)| *n)
        .chain(contract_keys().into_iter().map(|(k, _)| k.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A duration as `parse_duration` reads it back exactly: whole seconds as
/// `30s`, below a second as `500ms` (or nanoseconds), else seconds plus
/// the rest, `1s 500ms`. Printing whole seconds only turned
/// `store_timeout = "500ms"` into `0s`, which the loader refuses; and
/// humantime refuses a component whose nanoseconds pass 64 bits, so the
/// rest is never more than a second (both found by the `config` fuzz
/// target).
pub fn format_duration(d: Duration) -> String {
    let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
    let rest = if nanos % 1_000_000 == 0 {
        format!("{}ms", nanos / 1_000_000)
    } else {
        format!("{nanos}ns")
    };
    match (secs, nanos) {
        (_, 0) => format!("{secs}s"),
        (0, _) => rest,
        _ => format!("{secs}s {rest}"),
    }
}

/// Parses `600`, `600s`, `10m`, `24h`, `365d` into a duration.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s)
        .map_err(|e| anyhow!("not a duration ({e}); write e.g. 600s, 10m or 24h"))
}

/// `public_url`: the issuer URL, without its trailing `/`. RFC 8414 §2: an
/// `https` (here also `http`) URL with a host and no query or fragment.
/// Checked after the `/` is gone, so that what is printed loads back
/// (`https:///` used to become `https:`).
fn parse_public_url(v: &str) -> Result<String, &'static str> {
    let url = v.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    let host = rest.split('/').next().unwrap_or(rest);
    if host.is_empty() {
        return Err("must name a host");
    }
    if url.contains(['?', '#']) {
        return Err("must have no query or fragment (RFC 8414)");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    Ok(url.to_string())
}

/// `portal_path`: `off` (none), else a path of letters, digits, `-`, `_`,
/// `.` and `/`, not `/` alone, given its leading and trailing `/`.
fn parse_portal_path(v: &str) -> Result<Option<String>, &'static str> {
    let v = v.trim();
    if v == "off" {
        return Ok(None);
    }
    let inner = v.trim_matches('/');
    if inner.is_empty() {
        return Err("must name a path below / (or be off)");
    }
    if !inner
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        || inner.contains("//")
    {
        return Err("may hold only letters, digits, '-', '_', '.' and '/'");
    }
    // Below another fixed route's first segment a portal page could
    // collide with it (the router refuses two handlers for one path).
    let first = inner.split('/').next().unwrap_or(inner);
    if [
        "admin",
        "oauth",
        "e",
        "gate",
        ".well-known",
        "healthz",
        "readyz",
        "metrics",
    ]
    .contains(&first)
    {
        return Err("must not start with a path tollgate answers itself");
    }
    Ok(Some(format!("/{inner}/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_paths() {
        assert_eq!(parse_portal_path("off"), Ok(None));
        assert_eq!(parse_portal_path("partners"), Ok(Some("/partners/".into())));
        assert_eq!(parse_portal_path("/a/b/"), Ok(Some("/a/b/".into())));
        assert!(parse_portal_path("/").is_err());
        assert!(parse_portal_path("/a b/").is_err());
        assert!(parse_portal_path("/a//b/").is_err());
        assert!(parse_portal_path("/oauth/").is_err());
        assert!(parse_portal_path("/admin/portal/").is_err());
    }

    /// The configuration reference as a Markdown table (docs/OPERATIONS.md
    /// carries this exact text; a test keeps the two in step).
    fn reference_table() -> String {
        let mut out =
            String::from("| key | environment variable | default | meaning |\n|---|---|---|---|\n");
        let contracts = contract_keys();
        let rows = KEYS
            .iter()
            .map(|(k, d, m)| (*k, (*d).to_string(), *m))
            .chain(
                contracts
                    .iter()
                    .map(|(k, default)| (k.name, default.clone(), k.help)),
            );
        for (key, default, meaning) in rows {
            out.push_str(&format!(
                "| `{key}` | `TOLLGATE_{}` | {default} | {meaning} |\n",
                key.to_ascii_uppercase()
            ));
        }
        out
    }

    #[test]
    fn operations_doc_has_the_current_config_reference() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/OPERATIONS.md"
        ))
        .unwrap_or_default();
        let table = reference_table();
        assert!(
            doc.contains(&table),
            "docs/OPERATIONS.md must contain the config reference exactly as the code defines it:\n\n{table}"
        );
    }

    #[test]
    fn server_defaults_are_the_ones_the_code_uses_without_a_config() {
        let cfg = Config::load(None, &Overrides::new()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.argon2, tollgate_core::service::Argon2Bound::default());
        assert_eq!(
            cfg.throttle,
            tollgate_core::service::ThrottlePolicy::default()
        );
        let d = tollgate_http::server::Limits::DEFAULT;
        assert_eq!(cfg.header_read_timeout, d.header_read_timeout);
        assert_eq!(cfg.body_read_timeout, d.body_read_timeout);
        assert_eq!(cfg.idle_timeout, d.idle_timeout);
        assert_eq!(cfg.tls_handshake_timeout, d.tls_handshake_timeout);
        assert_eq!(cfg.max_connections, d.max_connections);
    }

    #[test]
    fn sync_interval_defaults_to_250ms_and_refuses_a_busy_loop() {
        let load = |v: Option<&str>| {
            let mut flags = Overrides::new();
            if let Some(v) = v {
                flags.insert("sync_interval", v.to_string());
            }
            Config::load(None, &flags)
        };
        let cfg = load(None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.sync_interval, Duration::from_millis(250));
        assert!(cfg.to_toml_redacted().contains("sync_interval = \"250ms\""));
        let cfg = load(Some("30s")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.sync_interval, Duration::from_secs(30));
        let err = load(Some("5ms")).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("sync_interval must be at least 10ms"));
    }

    #[test]
    fn sub_second_durations_print_exactly_and_load_back() {
        // The `config` fuzz target's find: `store_timeout = "500ms"` printed
        // as `0s`, which the loader refuses.
        let keys = [
            "shutdown_grace",
            "header_read_timeout",
            "body_read_timeout",
            "idle_timeout",
            "tls_handshake_timeout",
            "key_rotation_interval",
            "audit_retention",
            "key_publish_delay",
            "store_timeout",
            "sync_interval",
            "usage_flush_interval",
            "argon2_max_wait",
        ];
        let file: String = keys.iter().map(|k| format!("{k} = \"1500ms\"\n")).collect();
        let cfg = load_text(&file);
        let printed = cfg.to_toml_redacted();
        for k in keys {
            assert!(
                printed.contains(&format!("{k} = \"1s 500ms\"")),
                "{k}:\n{printed}"
            );
        }
        let again = load_text(&printed);
        assert_eq!(again.store_timeout, Duration::from_millis(1500));
        assert_eq!(again.shutdown_grace, Duration::from_millis(1500));
        assert_eq!(again.to_toml_redacted(), printed);
        for (d, text) in [
            (Duration::from_secs(30), "30s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_nanos(1_000_001), "1000001ns"),
            (Duration::new(u64::MAX / 1000, 5), "18446744073709551s 5ns"),
        ] {
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text).ok(), Some(d));
        }
    }

    #[test]
    fn public_urls_need_a_host_and_no_query() {
        assert_eq!(
            parse_public_url("https://auth.example.com/"),
            Ok("https://auth.example.com".into())
        );
        assert_eq!(
            parse_public_url("http://127.0.0.1:8080/tg"),
            Ok("http://127.0.0.1:8080/tg".into())
        );
        // The `config` fuzz target's find: `https:///` printed as `https:`.
        for bad in [
            "https:///",
            "https://",
            "auth.example.com",
            "ftp://x",
            "https://a/?x=1",
            "https://a/#f",
            "https://a b/",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn huge_durations_print_and_load_back() {
        // The `config` fuzz target's find: hours beyond any clock.
        let cfg = load_text("store_timeout = \"000000000000000900000000000h8689997ms\"\n");
        let printed = cfg.to_toml_redacted();
        let again = load_text(&printed);
        assert_eq!(again.store_timeout, cfg.store_timeout);
    }

    /// The configuration in `text` (no environment, no flags); panics with
    /// the text if it does not load.
    fn load_text(text: &str) -> Config {
        Config::from_sources(
            Some((text, Path::new("t.toml"))),
            &BTreeMap::new(),
            &Overrides::new(),
        )
        .unwrap_or_else(|e| panic!("{e:#}\n{text}"))
    }

    #[test]
    fn redacts_database_passwords() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite:///x/y.db"), "sqlite:///x/y.db");
    }
}
