//! The `cors_allowed_origins` setting: which web origins may call an
//! environment from a page, parsed and matched here. A settings group of
//! `registry::common`, so it is server-wide and overridable per environment
//! like every other key; the middleware that answers with it is `crate::cors`.

use axum::http::HeaderValue;

use crate::contracts::registry::{Configurable, Key};

/// The configuration key (registered in `registry::common`).
pub const ORIGINS: &str = "cors_allowed_origins";
/// Its meaning.
pub const ORIGINS_HELP: &str = "web origins (scheme://host[:port], comma-separated) whose pages may call tollgate; * opens only the discovery documents (metadata, JWKS), never a route that carries credentials; none: no CORS answers";

/// The origins an environment answers (the value of `cors_allowed_origins`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    /// Exact origins, lower case, as browsers serialize them.
    origins: Vec<String>,
    /// `*` was listed: public routes answer any origin.
    any: bool,
}

/// Whether a route carries credentials (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// A token endpoint: exact origins only.
    Credentialed,
    /// Discovery: `*` allowed.
    Public,
}

impl Cors {
    /// Parses `none`, or a comma-separated list of origins and `*`.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut out = Cors::default();
        let v = value.trim();
        if v.is_empty() || v == "none" {
            return Ok(out);
        }
        for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item == "*" {
                out.any = true;
                continue;
            }
            let origin = item.to_ascii_lowercase();
            let authority = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            let valid = authority.is_some_and(|a| {
                !a.is_empty()
                    && a.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '[' | ']')
                    })
            });
            if !valid {
                return Err(format!(
                    "{} = '{value}': '{item}' is not an origin (write scheme://host[:port], no path, or *)",
                    ORIGINS
                ));
            }
            if !out.origins.contains(&origin) {
                out.origins.push(origin);
            }
        }
        Ok(out)
    }

    /// The value in the configuration's syntax.
    pub fn format(&self) -> String {
        let mut items = self.origins.clone();
        if self.any {
            items.push("*".into());
        }
        if items.is_empty() {
            "none".into()
        } else {
            items.join(",")
        }
    }

    /// Whether any origin is configured.
    pub fn is_off(&self) -> bool {
        self.origins.is_empty() && !self.any
    }

    /// The `Access-Control-Allow-Origin` value for `origin` on a route of
    /// `kind`, or `None` when it is not allowed there.
    pub fn allow(&self, origin: &HeaderValue, kind: RouteKind) -> Option<HeaderValue> {
        let o = origin.to_str().ok()?;
        if self.origins.iter().any(|a| a.eq_ignore_ascii_case(o)) {
            return Some(origin.clone());
        }
        (self.any && kind == RouteKind::Public).then(|| HeaderValue::from_static("*"))
    }
}

const KEYS: &[Key] = &[Key {
    name: ORIGINS,
    help: ORIGINS_HELP,
}];

impl Configurable for Cors {
    fn keys(&self) -> &'static [Key] {
        KEYS
    }

    fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        if key != ORIGINS {
            return Ok(false);
        }
        *self = Cors::parse(value)?;
        Ok(true)
    }

    fn get(&self, key: &str) -> Option<String> {
        (key == ORIGINS).then(|| self.format())
    }

    fn clone_box(&self) -> Box<dyn Configurable> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_print_and_match() {
        let c = Cors::parse("https://App.example.com, http://localhost:3000,*").unwrap_or_default();
        assert_eq!(
            c.format(),
            "https://app.example.com,http://localhost:3000,*"
        );
        assert_eq!(Cors::parse(&c.format()), Ok(c.clone()));
        let o = HeaderValue::from_static("https://app.example.com");
        assert_eq!(c.allow(&o, RouteKind::Credentialed), Some(o.clone()));
        let other = HeaderValue::from_static("https://evil.example");
        assert_eq!(c.allow(&other, RouteKind::Credentialed), None);
        assert_eq!(
            c.allow(&other, RouteKind::Public),
            Some(HeaderValue::from_static("*"))
        );
        assert!(Cors::parse("none").is_ok_and(|c| c.is_off()));
        assert_eq!(Cors::parse("none").map(|c| c.format()), Ok("none".into()));
        for bad in [
            "app.example.com",
            "https://a.example/path",
            "ftp://a",
            "https://",
        ] {
            assert!(Cors::parse(bad).is_err(), "{bad}");
        }
    }
}
