//! The optional contracts, in one list: each is registered here by one line,
//! and everything else — its routes, the path-collision check, the names
//! `--contracts` accepts, its configuration keys with their defaults, and
//! the configuration reference in docs/OPERATIONS.md — follows from it.
//!
//! A contract describes itself through [`OptionalContract`]: its name, its
//! settings ([`Configurable`]: keys, parsed from and printed to the
//! configuration's syntax, defaults being whatever its `Default` holds), and
//! its endpoints (paths with their handlers, which carry its settings).
//!
//! Settings that are not an optional contract's — the rfc6749 token
//! endpoint's, the HTTP layer's own — are [`Configurable`]s listed in
//! [`common`]. Every key either list registers is a server setting (file,
//! `TOLLGATE_*`, docs table) *and* can be overridden per environment by
//! name (`env update NAME --set key=value`): the environment's value is
//! applied over the server's when the snapshot is built
//! (`contracts::Resolver`), and handlers read the result from memory.

use std::any::Any;
use std::time::Duration;

use axum::routing::MethodRouter;

use crate::AppState;
use crate::contracts::{
    api_keys, bearer_exchange, device_credentials, header_login, oauth2, origins,
};

/// A configuration key of a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key, as written in the TOML file (`TOLLGATE_` + upper case in
    /// the environment).
    pub name: &'static str,
    /// What it means, for `--help`-like listings and the docs.
    pub help: &'static str,
}

/// A group of settings: server-wide from the configuration, and each key
/// overridable per environment.
pub trait Configurable: std::fmt::Debug + Send + Sync + 'static {
    /// Its configuration keys.
    fn keys(&self) -> &'static [Key];
    /// Sets `key` from its configuration text. `Ok(false)`: not this
    /// group's key. `Err`: the value is not acceptable (the text says why).
    fn set(&mut self, key: &str, value: &str) -> Result<bool, String>;
    /// The value of `key` in the configuration's syntax (its default before
    /// any `set`).
    fn get(&self, key: &str) -> Option<String>;
    /// A copy (each environment gets its own, with its overrides applied).
    fn clone_box(&self) -> Box<dyn Configurable>;
    /// Itself, for handlers to read their typed settings back
    /// (`contracts::setting`).
    fn as_any(&self) -> &dyn Any;
    /// The longest access-token lifetime these settings give a token, in
    /// seconds (0 when they issue none): a retired signing key stays
    /// published that long.
    fn longest_access_lifetime(&self) -> u64 {
        0
    }
}

/// What the server needs to know of an optional contract.
pub trait OptionalContract: Configurable {
    /// Its name, as `--contracts` and `env update --contracts` take it.
    fn name(&self) -> &'static str;
    /// Its endpoints: each path (relative to the environment) with its
    /// handlers, which carry these settings (`Extension(Arc<Settings>)`).
    /// Built once per environment and snapshot, with the environment's
    /// settings.
    fn endpoints(&self) -> Vec<(String, MethodRouter<AppState>)>;
    /// The paths it answers at, relative to the environment.
    fn paths(&self) -> Vec<String> {
        self.endpoints().into_iter().map(|(p, _)| p).collect()
    }
    /// A copy (see [`Configurable::clone_box`]).
    fn clone_contract(&self) -> Box<dyn OptionalContract>;
}

/// Settings that are not an optional contract's, with their defaults: the
/// rfc6749 token endpoint's, the CORS origins every route answers, and the
/// gate's API-key header and counting.
/// Settings of the HTTP layer itself go here too (one line each), and are
/// then per-environment like every other key.
pub fn common() -> Vec<Box<dyn Configurable>> {
    vec![
        Box::new(oauth2::Settings::default()),
        Box::new(origins::Cors::default()),
        Box::new(api_keys::ApiKeys::default()),
    ]
}

/// Every optional contract, with its default settings. A new contract is a
/// new module in `contracts/` plus one line here.
pub fn all() -> Vec<Box<dyn OptionalContract>> {
    vec![
        Box::new(bearer_exchange::Settings::default()),
        Box::new(device_credentials::Settings::default()),
        Box::new(header_login::Settings::default()),
    ]
}

/// Keys that more than one contract takes (each applies it to itself): the
/// retry leeway of refresh-token rotation, one rule for every session.
pub const SHARED: &[&str] = &["refresh_retry_leeway"];

/// What `{prefix}_spring_aud` means (every session contract has one).
pub const SPRING_AUD_HELP: &str = "with claims = spring: aud as list (the session's API in a list, Spring's way), all (every API the client holds, as Spring lists resource ids) or string";
/// What `{prefix}_spring_user_name` means.
pub const SPRING_USER_NAME_HELP: &str = "with claims = spring: on writes user_name (Spring's claim for a user's token), off leaves it out (as Dive's samples)";
/// What `{prefix}_spring_authorities` means.
pub const SPRING_AUTHORITIES_HELP: &str = "with claims = spring: authorities as scope (the granted permissions) or roles (the user's roles, else its client's: user create/set-roles --role, client create/update --role)";

/// The key of the retry leeway every session contract takes.
pub const RETRY_LEEWAY: Key = Key {
    name: "refresh_retry_leeway",
    help: "after a rotation, how long the same refresh token still gets the same successor (a lost response) before a second use counts as reuse and revokes the family",
};

/// Sets one of the session settings a user contract shares the shape of:
/// `{prefix}_access_lifetime`, `{prefix}_refresh_lifetime`,
/// `{prefix}_claims`, `{prefix}_spring_aud`, `{prefix}_spring_user_name`,
/// `{prefix}_spring_authorities`, `{prefix}_late_reuse`, and the shared
/// retry leeway.
/// `Ok(false)`: not one.
pub fn set_session(
    prefix: &str,
    profile: &mut tollgate_core::service::SessionProfile,
    key: &str,
    value: &str,
) -> Result<bool, String> {
    let Some(rest) = key.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')) else {
        if key == RETRY_LEEWAY.name {
            profile.retry_leeway = parse_secs(key, value)?;
            return Ok(true);
        }
        return Ok(false);
    };
    match rest {
        "access_lifetime" => profile.access_lifetime = parse_lifetime(key, value)?,
        "refresh_lifetime" => profile.refresh_lifetime = parse_lifetime(key, value)?,
        "claims" => {
            profile.shape = value
                .parse()
                .map_err(|e: tollgate_core::CoreError| format!("{key} = '{value}': {e}"))?;
        }
        "late_reuse" => {
            profile.late_reuse = value
                .parse()
                .map_err(|e: tollgate_core::CoreError| format!("{key} = '{value}': {e}"))?;
        }
        "spring_aud" => {
            profile.spring.aud = value
                .parse()
                .map_err(|e: tollgate_core::CoreError| format!("{key} = '{value}': {e}"))?;
        }
        "spring_user_name" => profile.spring.user_name = parse_switch(key, value)?,
        "spring_authorities" => {
            profile.spring.authorities = value
                .parse()
                .map_err(|e: tollgate_core::CoreError| format!("{key} = '{value}': {e}"))?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// The value of a session setting (see [`set_session`]).
pub fn get_session(
    prefix: &str,
    profile: &tollgate_core::service::SessionProfile,
    key: &str,
) -> Option<String> {
    if key == RETRY_LEEWAY.name {
        return Some(format_secs(profile.retry_leeway));
    }
    match key.strip_prefix(prefix)?.strip_prefix('_')? {
        "access_lifetime" => Some(format_secs(profile.access_lifetime)),
        "refresh_lifetime" => Some(format_secs(profile.refresh_lifetime)),
        "claims" => Some(profile.shape.as_str().to_string()),
        "late_reuse" => Some(profile.late_reuse.as_str().to_string()),
        "spring_aud" => Some(profile.spring.aud.as_str().to_string()),
        "spring_user_name" => Some(format_switch(profile.spring.user_name)),
        "spring_authorities" => Some(profile.spring.authorities.as_str().to_string()),
        _ => None,
    }
}

/// An on/off setting (`on`, `off`; `true`, `false`; `yes`, `no`).
pub fn parse_switch(key: &str, v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("{key} = '{v}': write on or off")),
    }
}

/// An on/off setting in the configuration's syntax.
pub fn format_switch(on: bool) -> String {
    if on { "on" } else { "off" }.to_string()
}

/// A path setting: starts with `/`, no pattern characters, not the root;
/// a trailing `/` is dropped.
pub fn parse_path(key: &str, v: &str) -> Result<String, String> {
    if !v.starts_with('/') || v.contains(['{', '}', '*', '?', '#']) {
        return Err(format!(
            "{key} = '{v}' must be a path starting with '/' (no '{{', '}}', '*', '?' or '#')"
        ));
    }
    let p = v.trim_end_matches('/');
    if p.is_empty() {
        return Err(format!("{key} = '{v}' must not be the root"));
    }
    Ok(p.to_string())
}

/// A duration setting in seconds: `600`, `600s`, `10m`, `24h`, `365d`.
pub fn parse_secs(key: &str, v: &str) -> Result<u64, String> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(secs);
    }
    humantime::parse_duration(v)
        .map(|d| d.as_secs())
        .map_err(|e| format!("{key} = '{v}' is not a duration ({e}); write e.g. 600s, 10m or 24h"))
}

/// A token lifetime: a duration of at least a second.
pub fn parse_lifetime(key: &str, v: &str) -> Result<u64, String> {
    match parse_secs(key, v)? {
        0 => Err(format!("{key} must be at least 1s")),
        secs => Ok(secs),
    }
}

/// Seconds in the configuration's syntax, in the largest unit that divides
/// them (days, hours, minutes below an hour, else seconds): `1d`, `10m`,
/// `9000s`.
pub fn format_secs(secs: u64) -> String {
    let d = Duration::from_secs(secs).as_secs();
    if d > 0 && d % 86_400 == 0 {
        format!("{}d", d / 86_400)
    } else if d > 0 && d % 3_600 == 0 {
        format!("{}h", d / 3_600)
    } else if d > 0 && d < 3_600 && d % 60 == 0 {
        format!("{}m", d / 60)
    } else {
        format!("{d}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keys_and_paths_are_unique_and_defaults_read_back() {
        let all = all();
        let mut names: Vec<&str> = all.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len(), "contract names are unique");
        let mut keys: Vec<&str> = all
            .iter()
            .flat_map(|c| c.keys().iter().map(|k| k.name))
            .chain(
                common()
                    .iter()
                    .flat_map(|c| c.keys().iter().map(|k| k.name)),
            )
            .filter(|k| !SHARED.contains(k))
            .collect();
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(
            keys.len(),
            n,
            "no two contracts claim one key, but the shared ones"
        );
        for c in &all {
            assert!(!c.paths().is_empty(), "{} answers somewhere", c.name());
        }
        let groups = all
            .iter()
            .map(|c| c.clone_box())
            .chain(common())
            .collect::<Vec<_>>();
        for mut c in groups {
            for k in c.keys() {
                // Every default prints, parses back, and prints the same.
                let v = c.get(k.name).unwrap_or_default();
                assert!(!v.is_empty(), "{}: no default", k.name);
                assert_eq!(c.set(k.name, &v), Ok(true), "{}", k.name);
                assert_eq!(c.get(k.name), Some(v), "{}", k.name);
            }
            assert_eq!(c.set("no_such_key", "1"), Ok(false));
        }
    }

    #[test]
    fn durations_print_in_their_largest_unit_and_parse_back() {
        for (secs, text) in [
            (86_400, "1d"),
            (180 * 86_400, "180d"),
            (7_200, "2h"),
            (600, "10m"),
            (9_000, "9000s"),
            (10, "10s"),
            (0, "0s"),
        ] {
            assert_eq!(format_secs(secs), text);
            assert_eq!(parse_secs("k", text), Ok(secs));
        }
        assert!(parse_lifetime("k", "0s").is_err());
        assert!(parse_secs("k", "soon").is_err());
        assert_eq!(parse_path("p", "/a/b/"), Ok("/a/b".into()));
        assert!(parse_path("p", "/").is_err());
        assert!(parse_path("p", "a").is_err());
        assert!(parse_path("p", "/a/{x}").is_err());
    }
}
