//! Wire contracts. One module per contract: it owns its routes, translates
//! its wire format to a core request and back, and maps core outcomes to its
//! own error format. An optional contract (one an environment switches on)
//! implements [`registry::OptionalContract`] and is registered by one line
//! in [`registry::all`]; what contracts share is in [`common`].
//!
//! | module | contract | compatible with |
//! |---|---|---|
//! | [`oauth2`] | RFC 6749 token endpoint `POST /oauth/token` (form or JSON body), RFC 7662 introspection, RFC 7009 revocation | any OAuth 2.0 client; Sportradar's and the JSON client_credentials samples |
//! | [`discovery`] | RFC 8414 metadata (also at `/.well-known/openid-configuration`, with OpenID Discovery's fields) and RFC 7517 JWKS | any OAuth 2.0 / JWT verifier, Auth0 SDKs |
//! | [`oauth2`] with `--dialect auth0` | the same token endpoint answered as Auth0 answers (`client-id`, `sub=<id>@clients`, `access_denied`) | Sportradar (Auth0) |
//! | [`bearer_exchange`] (`bearer-exchange`) | refresh JWT as Bearer → `{"token","expireAt"}` | Cloudbet Odds API v2 |
//! | [`device_credentials`] (`device-credentials`, dialect `spring`) | `POST /v1/token?grant_type=device_credentials` / `refresh_token` | Dive (Spring Security OAuth2) |
//! | [`header_login`] (`header-login`) | `GET /v2/authentication/login` with Basic → `Set-Authorization` / `Set-Refresh-Token`; `refresh`, `logout` | Tradecloud |

pub mod api_keys;
pub mod bearer_exchange;
pub mod common;
pub mod device_credentials;
pub mod discovery;
pub mod header_login;
pub mod oauth2;
pub mod origins;
pub mod registry;

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::MethodRouter;
use tollgate_core::model::Environment;
use tollgate_core::service::{EnvExtension, EnvRuntime};

use crate::AppState;

/// Adds `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`
/// (Unix seconds) for a client under an issuance limit, and `Retry-After`
/// (seconds) when the request was refused.
pub(crate) fn rate_headers(
    resp: &mut Response,
    info: &tollgate_core::model::RateInfo,
    refused: bool,
) {
    let h = resp.headers_mut();
    let mut put = |name: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(header::HeaderName::from_static(name), v);
        }
    };
    put("x-ratelimit-limit", info.limit.to_string());
    put("x-ratelimit-remaining", info.remaining.to_string());
    put("x-ratelimit-reset", info.reset_at.to_string());
    if refused {
        put("retry-after", info.retry_after().to_string());
    }
}

/// Adds `Retry-After: secs` (a 503 the client should retry later, RFC 9110 §10.2.3).
pub(crate) fn retry_after(resp: &mut Response, secs: u64) {
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

/// Adds `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub(crate) fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// The optional contracts with their settings, and where they are enabled;
/// and the settings that are not an optional contract's ([`registry::common`]).
/// The server holds one, from its configuration; each environment one of
/// its own, with the environment's overrides applied ([`Settings::for_env`]).
#[derive(Debug)]
pub struct Settings {
    /// Contracts the server's configuration (`contracts`, `serve
    /// --contracts`) enables in the default environment, on top of those an
    /// environment enables itself (`env update --contracts`).
    pub default_env: BTreeSet<String>,
    /// Every registered optional contract, configured.
    pub optional: Vec<Box<dyn registry::OptionalContract>>,
    /// Every other registered group of settings, configured.
    pub common: Vec<Box<dyn registry::Configurable>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_env: BTreeSet::new(),
            optional: registry::all(),
            common: registry::common(),
        }
    }
}

impl Clone for Settings {
    fn clone(&self) -> Self {
        Self {
            default_env: self.default_env.clone(),
            optional: self.optional.iter().map(|c| c.clone_contract()).collect(),
            common: self.common.iter().map(|c| c.clone_box()).collect(),
        }
    }
}

impl Settings {
    /// Sets a configuration key (in every group that takes it, for a
    /// [`registry::SHARED`] key); `Ok(false)` if none has it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let mut taken = false;
        for c in &mut self.common {
            taken |= c.set(key, value)?;
        }
        for c in &mut self.optional {
            taken |= c.set(key, value)?;
        }
        Ok(taken)
    }

    /// The value of `key` in the configuration's syntax, if a group has it.
    pub fn get(&self, key: &str) -> Option<String> {
        self.common
            .iter()
            .find_map(|c| c.get(key))
            .or_else(|| self.optional.iter().find_map(|c| c.get(key)))
    }

    /// Every key with its current value: the common groups', then each
    /// contract's in registry order, each key once.
    pub fn values(&self) -> Vec<(registry::Key, String)> {
        let mut out: Vec<(registry::Key, String)> = Vec::new();
        let mut add = |keys: &[registry::Key], get: &dyn Fn(&str) -> Option<String>| {
            for k in keys {
                if !out.iter().any(|(seen, _)| seen.name == k.name) {
                    out.push((*k, get(k.name).unwrap_or_default()));
                }
            }
        };
        for c in &self.common {
            add(c.keys(), &|k| c.get(k));
        }
        for c in &self.optional {
            add(c.keys(), &|k| c.get(k));
        }
        out
    }

    /// The settings group of type `T`, if registered.
    pub fn group<T: 'static>(&self) -> Option<&T> {
        self.common
            .iter()
            .find_map(|c| c.as_any().downcast_ref::<T>())
            .or_else(|| {
                self.optional
                    .iter()
                    .find_map(|c| c.as_any().downcast_ref::<T>())
            })
    }

    /// Checks that no two routes share a path (configured paths included):
    /// a fixed route would shadow a dispatched one, and two contracts cannot
    /// share a table entry. Every registered contract's paths count, enabled
    /// or not, so that switching one on never makes a collision.
    pub fn check_paths(&self) -> Result<(), String> {
        let mut seen: Vec<(String, &str)> = [
            (oauth2::TOKEN_PATH, "rfc6749 token endpoint"),
            (oauth2::INTROSPECT_PATH, "introspection"),
            (oauth2::REVOKE_PATH, "revocation"),
            ("/healthz", "health"),
            ("/readyz", "readiness"),
            ("/metrics", "metrics"),
        ]
        .into_iter()
        .map(|(p, w)| (p.to_string(), w))
        .collect();
        for c in &self.optional {
            for path in c.paths() {
                let what = c.name();
                if path.starts_with("/.well-known/") || path.starts_with("/e/") {
                    return Err(format!("the path {path} of {what} is reserved"));
                }
                if let Some((_, other)) = seen.iter().find(|(p, _)| *p == path) {
                    return Err(format!("{what} and {other} cannot share the path {path}"));
                }
                seen.push((path, what));
            }
        }
        Ok(())
    }

    /// Whether contract `name` answers in `env`.
    pub fn enabled(&self, env: &tollgate_core::service::EnvRuntime, name: &str) -> bool {
        self.enabled_in(&env.env, name)
    }

    /// Whether contract `name` answers in the environment `env`.
    pub fn enabled_in(&self, env: &Environment, name: &str) -> bool {
        env.contracts.contains(name)
            || (env.name == tollgate_core::model::DEFAULT_ENV && self.default_env.contains(name))
    }

    /// These (server) settings with `env`'s overrides applied, and the
    /// dispatch table of the contracts enabled there. Refused when an
    /// override names no key, has a bad value, or makes paths collide in
    /// that environment — `env update --set` checks this before storing.
    pub fn for_env(&self, env: &Environment) -> Result<EnvContracts, String> {
        let mut settings = self.clone();
        for (key, value) in &env.settings {
            if !settings.set(key, value)? {
                return Err(format!(
                    "unknown setting '{key}' (per-environment settings: {})",
                    settings
                        .values()
                        .iter()
                        .map(|(k, _)| k.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        settings
            .check_paths()
            .map_err(|e| format!("in environment {}: {e}", env.name))?;
        let mut table = HashMap::new();
        for c in &settings.optional {
            if settings.enabled_in(env, c.name()) {
                for (path, handlers) in c.endpoints() {
                    let entry = Entry {
                        labels: [format!("/e/{{env}}{path}"), path.clone()],
                        handlers,
                        ready: OnceLock::new(),
                    };
                    table.insert(path, entry);
                }
            }
        }
        Ok(EnvContracts { settings, table })
    }

    /// [`Self::for_env`], falling back to the server's settings (with the
    /// environment's contracts) when the stored overrides no longer fit —
    /// the server was started with settings they now collide with. The
    /// server settings themselves were checked at start.
    pub fn resolve(&self, env: &Environment) -> EnvContracts {
        match self.for_env(env) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(env = %env.name, error = %e, "the environment's setting overrides are ignored");
                let bare = Environment {
                    settings: Default::default(),
                    ..env.clone()
                };
                self.for_env(&bare).unwrap_or_else(|_| EnvContracts {
                    settings: self.clone(),
                    table: HashMap::new(),
                })
            }
        }
    }
}

/// One environment's settings (the server's with its overrides) and its
/// dispatch table: derived once per snapshot by [`Resolver`], read from
/// memory by every request.
#[derive(Debug)]
pub struct EnvContracts {
    /// The effective settings.
    pub settings: Settings,
    /// Path (relative to the environment) → handlers of the optional
    /// contracts enabled there.
    table: HashMap<String, Entry>,
}

impl EnvContracts {
    /// The handlers answering at `path`, if an enabled contract has it.
    pub fn route(&self, path: &str) -> Option<&Entry> {
        self.table.get(path)
    }
}

/// One path of an environment's dispatch table.
#[derive(Debug)]
pub struct Entry {
    /// Its label in logs and metrics: under `/e/{env}`, and at the root.
    labels: [String; 2],
    handlers: MethodRouter<AppState>,
    /// The handlers with the server's state applied, made by the first
    /// request (the state exists only once serving; the table is rebuilt
    /// with each snapshot). Applying it turns every handler into a ready
    /// route; doing it per request cost a conversion of each handler and a
    /// copy of the state, every time. The state it holds (and through it
    /// the core) lives as long as this snapshot's table.
    ready: OnceLock<MethodRouter<()>>,
}

impl Entry {
    /// The handlers, ready to be called with `state`'s values.
    pub fn ready(&self, state: &AppState) -> MethodRouter<()> {
        self.ready
            .get_or_init(|| self.handlers.clone().with_state(state.clone()))
            .clone()
    }

    /// Its route label: `/e/{env}/…` when reached under the prefix.
    pub fn label(&self, nested: bool) -> &str {
        &self.labels[usize::from(!nested)]
    }
}

/// The [`EnvExtension`] the HTTP layer installs in the core: each
/// environment's [`EnvContracts`], derived when the snapshot is built.
#[derive(Debug, Clone)]
pub struct Resolver(pub Arc<Settings>);

impl EnvExtension for Resolver {
    fn derive(&self, env: &Environment) -> Arc<dyn Any + Send + Sync> {
        Arc::new(self.0.resolve(env))
    }

    fn longest_access_lifetime(&self, env: &Environment) -> u64 {
        let s = self.0.resolve(env).settings;
        s.common
            .iter()
            .map(|c| c.longest_access_lifetime())
            .chain(
                s.optional
                    .iter()
                    .filter(|c| s.enabled_in(env, c.name()))
                    .map(|c| c.longest_access_lifetime()),
            )
            .max()
            .unwrap_or(0)
    }
}

/// The settings group `T` in force in `env`: the environment's (with its
/// overrides) when the [`Resolver`] is installed, else the server's.
pub fn setting<'a, T: 'static>(state: &'a AppState, env: &'a EnvRuntime) -> Option<&'a T> {
    env.ext::<EnvContracts>()
        .map_or(&*state.contracts, |c| &c.settings)
        .group::<T>()
}

/// The names of the contracts that can be switched on per environment
/// (`rfc6749` and discovery are always on).
pub fn optional_names() -> Vec<&'static str> {
    registry::all().iter().map(|c| c.name()).collect()
}

/// Parses `all` or a comma-separated list of contract names (`rfc6749` is
/// accepted and ignored: it is always on).
pub fn parse_list(v: &str) -> Result<BTreeSet<String>, String> {
    let known = optional_names();
    let mut out = BTreeSet::new();
    for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name {
            "all" => out.extend(known.iter().map(|c| (*c).to_string())),
            "rfc6749" | "none" => {}
            n if known.contains(&n) => {
                out.insert(n.to_string());
            }
            n => {
                return Err(format!(
                    "unknown contract '{n}' (known: rfc6749, {}, all or none)",
                    known.join(", ")
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str, contracts: &[&str], settings: &[(&str, &str)]) -> Environment {
        Environment {
            name: name.into(),
            issuer: None,
            alg: Default::default(),
            hosts: Vec::new(),
            dialect: Default::default(),
            contracts: contracts.iter().map(|c| (*c).to_string()).collect(),
            settings: settings
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            created_at: 0,
        }
    }

    #[test]
    fn an_environment_overrides_any_registered_key_by_name() {
        let server = Settings::default();
        let e = env(
            "p",
            &["device-credentials"],
            &[
                ("device_credentials_path", "/oauth2/token"),
                ("rfc6749_token_lifetime", "1h"),
                ("refresh_retry_leeway", "30s"),
            ],
        );
        let c = server.for_env(&e).unwrap_or_else(|e| panic!("{e}"));
        // Its table: the moved path, and only the contracts enabled there.
        assert!(c.route("/oauth2/token").is_some());
        assert!(c.route("/v1/token").is_none());
        assert!(c.route("/v2/authentication/login").is_none());
        // Typed settings read back, overrides applied; the shared key
        // reaches every contract that takes it.
        assert_eq!(
            c.settings.group::<oauth2::Settings>().map(|s| s.lifetime),
            Some(3_600)
        );
        assert_eq!(
            c.settings
                .group::<device_credentials::Settings>()
                .map(|s| s.profile.retry_leeway),
            Some(30)
        );
        assert_eq!(
            c.settings
                .group::<header_login::Settings>()
                .map(|s| s.profile.retry_leeway),
            Some(30)
        );
        // The server's own settings are untouched.
        assert_eq!(
            server.get("device_credentials_path").as_deref(),
            Some("/v1/token")
        );
    }

    #[test]
    fn bad_overrides_are_refused_and_resolve_falls_back_to_the_server() {
        let server = Settings::default();
        for (k, v, why) in [
            ("nope", "1", "unknown setting"),
            ("header_login_access_lifetime", "0s", "at least 1s"),
            ("bearer_exchange_path", "/oauth/token", "cannot share"),
        ] {
            let e = env("p", &["bearer-exchange", "header-login"], &[(k, v)]);
            let err = server.for_env(&e).err().unwrap_or_default();
            assert!(err.contains(why), "{k}: {err}");
            // Served anyway, with the server's settings.
            let c = server.resolve(&e);
            assert!(c.route("/pub/v2/players/access-token").is_some(), "{k}");
        }
    }

    #[test]
    fn the_longest_lifetime_counts_the_environments_settings_and_contracts() {
        let r = Resolver(Arc::new(Settings::default()));
        // rfc6749 only: its 10 minutes.
        assert_eq!(r.longest_access_lifetime(&env("p", &[], &[])), 600);
        // The exchange's day, where it is enabled; an override raises it.
        assert_eq!(
            r.longest_access_lifetime(&env("p", &["bearer-exchange"], &[])),
            86_400
        );
        assert_eq!(
            r.longest_access_lifetime(&env(
                "p",
                &["bearer-exchange"],
                &[("bearer_exchange_lifetime", "3d")]
            )),
            3 * 86_400
        );
    }
}
