//! Effective configuration: defaults, then a TOML file (`--config`), then
//! `TOLLGATE_*` environment variables, then command-line flags. A bad value or
//! an unknown key stops start-up with a message naming the key and where it
//! came from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

/// Every configuration key, with its default and meaning. The config reference
/// in docs/OPERATIONS.md is checked against this table by a test.
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
        "bearer_exchange_lifetime",
        "1d",
        "lifetime of access tokens from the bearer-exchange contract",
    ),
    (
        "bearer_exchange_path",
        "/pub/v2/players/access-token",
        "path of the bearer-exchange contract, relative to the environment",
    ),
    (
        "device_credentials_path",
        "/v1/token",
        "path of the device-credentials contract",
    ),
    (
        "device_credentials_access_lifetime",
        "9000s",
        "access-token lifetime of the device-credentials contract",
    ),
    (
        "device_credentials_refresh_lifetime",
        "180d",
        "refresh-token lifetime of the device-credentials contract",
    ),
    (
        "device_credentials_claims",
        "spring",
        "claim shape of device-credentials access tokens: spring (aud, scope and authorities as lists, device_id, grant_type) or rfc9068",
    ),
    (
        "device_credentials_refresh_policy",
        "reuse",
        "reuse (Spring's default: the same refresh token comes back) or rotate (a new one each time, reuse detection)",
    ),
    (
        "header_login_path",
        "/v2/authentication",
        "path prefix of the header-login contract (login, refresh, logout)",
    ),
    (
        "header_login_access_lifetime",
        "10m",
        "access-token lifetime of the header-login contract",
    ),
    (
        "header_login_refresh_lifetime",
        "24h",
        "refresh-token lifetime of the header-login contract",
    ),
    (
        "header_login_claims",
        "rfc9068",
        "claim shape of header-login access tokens: rfc9068 or spring",
    ),
    (
        "refresh_retry_leeway",
        "10s",
        "after a rotation, how long the same refresh token still gets the same successor (a lost response) before a second use counts as reuse and revokes the family",
    ),
    (
        "key_rotation_interval",
        "off",
        "rotate every environment's signing key when its newest key is this old, e.g. 90d",
    ),
    (
        "key_publish_delay",
        "10m",
        "how long a scheduled new key is published before it signs",
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
    pub key_rotation_interval: Option<Duration>,
    /// Optional contracts enabled in the default environment, besides rfc6749.
    pub contracts: std::collections::BTreeSet<String>,
    pub bearer_exchange_lifetime: Duration,
    pub bearer_exchange_path: String,
    pub device_credentials_path: String,
    pub device_credentials_access_lifetime: Duration,
    pub device_credentials_refresh_lifetime: Duration,
    pub device_credentials_refresh_policy: tollgate_core::sessions::RefreshPolicy,
    pub refresh_retry_leeway: Duration,
    pub device_credentials_claims: tollgate_core::sessions::AccessShape,
    pub header_login_claims: tollgate_core::sessions::AccessShape,
    pub header_login_path: String,
    pub header_login_access_lifetime: Duration,
    pub header_login_refresh_lifetime: Duration,
    pub key_publish_delay: Duration,
}

/// Values given on the command line (they win over everything else).
pub type Overrides = BTreeMap<&'static str, String>;

impl Config {
    /// Loads the configuration from `file` (if any), the environment and `flags`.
    pub fn load(file: Option<&Path>, flags: &Overrides) -> Result<Self> {
        let mut values: BTreeMap<&'static str, (String, String)> = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| anyhow!("config file {}: {e}", path.display()))?;
            for (k, v) in table {
                let key = KEYS
                    .iter()
                    .map(|(n, _, _)| *n)
                    .find(|n| *n == k)
                    .ok_or_else(|| {
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
        for (name, v) in std::env::vars() {
            let Some(rest) = name.strip_prefix("TOLLGATE_") else {
                continue;
            };
            if OTHER_ENV.contains(&name.as_str()) {
                continue;
            }
            let lower = rest.to_ascii_lowercase();
            let key = KEYS
                .iter()
                .map(|(n, _, _)| *n)
                .find(|n| *n == lower)
                .ok_or_else(|| {
                    anyhow!(
                        "environment variable {name}: unknown setting (known: {})",
                        known()
                    )
                })?;
            values.insert(key, (v, format!("environment variable {name}")));
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
        let duration = |key: &str, default: u64| -> Result<Duration> {
            match get(key) {
                None => Ok(Duration::from_secs(default)),
                Some((v, src)) => {
                    parse_duration(v).map_err(|e| anyhow!("{src}: {key} = '{v}': {e}"))
                }
            }
        };
        let shutdown_grace = duration("shutdown_grace", 10)?;
        let key_rotation_interval = match get("key_rotation_interval") {
            None | Some(("off", _)) => None,
            Some((v, src)) => match parse_duration(v) {
                Ok(d) if d.as_secs() > 0 => Some(d),
                Ok(_) => bail!("{src}: key_rotation_interval = '{v}' must be positive (or off)"),
                Err(e) => bail!("{src}: key_rotation_interval = '{v}': {e}"),
            },
        };
        let contracts = match get("contracts") {
            None => Default::default(),
            Some((v, src)) => tollgate_http::contracts::parse_list(v)
                .map_err(|e| anyhow!("{src}: contracts = '{v}': {e}"))?,
        };
        let bearer_exchange_lifetime = duration(
            "bearer_exchange_lifetime",
            tollgate_http::contracts::bearer_exchange::DEFAULT_LIFETIME,
        )?;
        let path = |key: &str, default: &str| -> Result<String> {
            match get(key) {
                None => Ok(default.to_string()),
                Some((v, src)) if v.starts_with('/') && !v.contains(['{', '}', '*', '?', '#']) => {
                    Ok(v.trim_end_matches('/').to_string()).and_then(|p| {
                        if p.is_empty() {
                            bail!("{src}: {key} = '{v}' must not be the root")
                        } else {
                            Ok(p)
                        }
                    })
                }
                Some((v, src)) => bail!(
                    "{src}: {key} = '{v}' must be a path starting with '/' (no '{{', '}}', '*', '?' or '#')"
                ),
            }
        };
        let bearer_exchange_path = path(
            "bearer_exchange_path",
            tollgate_http::contracts::bearer_exchange::DEFAULT_PATH,
        )?;
        let lifetime = |key: &str, default: u64| -> Result<Duration> {
            let d = duration(key, default)?;
            if d.as_secs() == 0 {
                bail!("{key} must be at least 1s");
            }
            Ok(d)
        };
        use tollgate_http::contracts::device_credentials as dc;
        let device_credentials_path = path("device_credentials_path", dc::DEFAULT_PATH)?;
        let device_credentials_access_lifetime = lifetime(
            "device_credentials_access_lifetime",
            dc::DEFAULT_ACCESS_LIFETIME,
        )?;
        let device_credentials_refresh_lifetime = lifetime(
            "device_credentials_refresh_lifetime",
            dc::DEFAULT_REFRESH_LIFETIME,
        )?;
        let device_credentials_refresh_policy = parsed(
            get("device_credentials_refresh_policy"),
            "device_credentials_refresh_policy",
            tollgate_core::sessions::RefreshPolicy::Reuse,
        )?;
        let refresh_retry_leeway = duration("refresh_retry_leeway", 10)?;
        let device_credentials_claims = parsed(
            get("device_credentials_claims"),
            "device_credentials_claims",
            tollgate_core::sessions::AccessShape::Spring,
        )?;
        let header_login_claims = parsed(
            get("header_login_claims"),
            "header_login_claims",
            tollgate_core::sessions::AccessShape::Rfc9068,
        )?;
        use tollgate_http::contracts::header_login as hl;
        let header_login_path = path("header_login_path", hl::DEFAULT_PREFIX)?;
        let header_login_access_lifetime =
            lifetime("header_login_access_lifetime", hl::DEFAULT_ACCESS_LIFETIME)?;
        let header_login_refresh_lifetime = lifetime(
            "header_login_refresh_lifetime",
            hl::DEFAULT_REFRESH_LIFETIME,
        )?;
        let key_publish_delay = duration("key_publish_delay", 600)?;
        use tollgate_http::server::Limits;
        let header_read_timeout = lifetime(
            "header_read_timeout",
            Limits::DEFAULT.header_read_timeout.as_secs(),
        )?;
        let body_read_timeout = lifetime(
            "body_read_timeout",
            Limits::DEFAULT.body_read_timeout.as_secs(),
        )?;
        let idle_timeout = lifetime("idle_timeout", Limits::DEFAULT.idle_timeout.as_secs())?;
        let tls_handshake_timeout = lifetime(
            "tls_handshake_timeout",
            Limits::DEFAULT.tls_handshake_timeout.as_secs(),
        )?;
        let max_connections = match get("max_connections") {
            None => Limits::DEFAULT.max_connections,
            Some((v, src)) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=tokio::sync::Semaphore::MAX_PERMITS).contains(&n) => n,
                _ => bail!("{src}: max_connections = '{v}' must be a positive whole number"),
            },
        };
        if let Some((v, src)) = get("public_url") {
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                bail!("{src}: public_url = '{v}' must start with http:// or https://");
            }
        }
        let cfg = Config {
            listen,
            public_url: get("public_url").map(|(v, _)| v.trim_end_matches('/').to_string()),
            data_dir: get("data_dir")
                .map_or_else(|| PathBuf::from("tollgate-data"), |(v, _)| v.into()),
            database_url: get("database_url").map(|(v, _)| v.to_string()),
            log_format,
            tls_cert: get("tls_cert").map(|(v, _)| v.into()),
            tls_key: get("tls_key").map(|(v, _)| v.into()),
            shutdown_grace,
            header_read_timeout,
            body_read_timeout,
            idle_timeout,
            tls_handshake_timeout,
            max_connections,
            key_rotation_interval,
            key_publish_delay,
            contracts,
            bearer_exchange_lifetime,
            bearer_exchange_path,
            device_credentials_path,
            device_credentials_access_lifetime,
            device_credentials_refresh_lifetime,
            device_credentials_refresh_policy,
            refresh_retry_leeway,
            device_credentials_claims,
            header_login_claims,
            header_login_path,
            header_login_access_lifetime,
            header_login_refresh_lifetime,
        };
        if cfg.tls_cert.is_some() != cfg.tls_key.is_some() {
            bail!("tls_cert and tls_key go together: set both or neither");
        }
        Ok(cfg)
    }
}

impl Config {
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
        put(
            "shutdown_grace",
            format!("{}s", self.shutdown_grace.as_secs()),
        );
        put(
            "header_read_timeout",
            format!("{}s", self.header_read_timeout.as_secs()),
        );
        put(
            "body_read_timeout",
            format!("{}s", self.body_read_timeout.as_secs()),
        );
        put("idle_timeout", format!("{}s", self.idle_timeout.as_secs()));
        put(
            "tls_handshake_timeout",
            format!("{}s", self.tls_handshake_timeout.as_secs()),
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
        let secs = |d: Duration| format!("{}s", d.as_secs());
        put("bearer_exchange_path", self.bearer_exchange_path.clone());
        put(
            "bearer_exchange_lifetime",
            secs(self.bearer_exchange_lifetime),
        );
        put(
            "device_credentials_path",
            self.device_credentials_path.clone(),
        );
        put(
            "device_credentials_access_lifetime",
            secs(self.device_credentials_access_lifetime),
        );
        put(
            "device_credentials_refresh_lifetime",
            secs(self.device_credentials_refresh_lifetime),
        );
        put(
            "device_credentials_refresh_policy",
            match self.device_credentials_refresh_policy {
                tollgate_core::sessions::RefreshPolicy::Reuse => "reuse",
                tollgate_core::sessions::RefreshPolicy::Rotate => "rotate",
            }
            .into(),
        );
        put("header_login_path", self.header_login_path.clone());
        put(
            "header_login_access_lifetime",
            secs(self.header_login_access_lifetime),
        );
        put(
            "header_login_refresh_lifetime",
            secs(self.header_login_refresh_lifetime),
        );
        put("refresh_retry_leeway", secs(self.refresh_retry_leeway));
        put(
            "device_credentials_claims",
            self.device_credentials_claims.as_str().into(),
        );
        put(
            "header_login_claims",
            self.header_login_claims.as_str().into(),
        );
        put(
            "key_rotation_interval",
            self.key_rotation_interval.map_or("off".to_string(), secs),
        );
        put("key_publish_delay", secs(self.key_publish_delay));
        toml::to_string(&t).unwrap_or_default()
    }
}

/// `scheme://user:password@host/…` → `scheme://user:***@host/…`.
fn redact_url(url: &str) -> String {
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

/// A setting read with its type's `FromStr` (`value` = (text, source)), or
/// `default` when unset.
fn parsed<T: std::str::FromStr>(value: Option<(&str, &str)>, key: &str, default: T) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    match value {
        None => Ok(default),
        Some((v, src)) => v.parse().map_err(|e| anyhow!("{src}: {key} = '{v}': {e}")),
    }
}

fn known() -> String {
    KEYS.iter()
        .map(|(n, _, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration reference as a Markdown table (docs/OPERATIONS.md
    /// carries this exact text; a test keeps the two in step).
    fn reference_table() -> String {
        let mut out =
            String::from("| key | environment variable | default | meaning |\n|---|---|---|---|\n");
        for (key, default, meaning) in KEYS {
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
    fn redacts_database_passwords() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite:///x/y.db"), "sqlite:///x/y.db");
    }
}
