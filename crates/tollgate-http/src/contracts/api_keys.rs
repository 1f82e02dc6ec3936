//! The gate's API-key settings per environment: which request header
//! carries the key (`gate_api_key_header`, `X-API-Key` as Cloudbet's
//! partners send it) and whether a call allowed by key counts against the
//! client's `limit:` quota (`gate_api_key_limit`). A settings group of
//! `registry::common`, so server-wide and overridable per environment
//! (`env update NAME --set gate_api_key_header=X-Partner-Key`); read by the
//! forward-auth endpoint (`crate::gate`).

use axum::http::HeaderName;

use crate::contracts::registry::{Configurable, Key, format_switch, parse_switch};

/// The header key.
pub const HEADER: &str = "gate_api_key_header";
/// The counting key.
pub const LIMIT: &str = "gate_api_key_limit";

/// The API-key settings in force in an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeys {
    /// The header carrying the key.
    pub header: HeaderName,
    /// Whether calls allowed by key count against a `limit:` obligation.
    pub count_limit: bool,
}

impl Default for ApiKeys {
    fn default() -> Self {
        Self {
            header: HeaderName::from_static("x-api-key"),
            count_limit: false,
        }
    }
}

const KEYS: &[Key] = &[
    Key {
        name: HEADER,
        help: "the request header the gate reads an API key from, on routes with api_keys = true",
    },
    Key {
        name: LIMIT,
        help: "on: each call the gate allows by API key counts against the client's limit: obligation (refused with 429 past it; one store write per call); off: API keys are not counted",
    },
];

impl Configurable for ApiKeys {
    fn keys(&self) -> &'static [Key] {
        KEYS
    }

    fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        match key {
            HEADER => {
                // Not one of the headers a bearer token or a proxy's
                // description of the request travels in.
                let name = HeaderName::from_bytes(value.trim().as_bytes())
                    .map_err(|_| format!("{HEADER} = '{value}': not a header name"))?;
                let taken = [
                    "authorization",
                    "host",
                    "x-original-uri",
                    "x-original-method",
                    "x-forwarded-uri",
                    "x-forwarded-method",
                    "x-forwarded-host",
                ];
                if taken.contains(&name.as_str()) {
                    return Err(format!(
                        "{HEADER} = '{value}': that header means something else to the gate"
                    ));
                }
                self.header = name;
                Ok(true)
            }
            LIMIT => {
                self.count_limit = parse_switch(key, value)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn get(&self, key: &str) -> Option<String> {
        match key {
            HEADER => Some(display_name(&self.header)),
            LIMIT => Some(format_switch(self.count_limit)),
            _ => None,
        }
    }

    fn clone_box(&self) -> Box<dyn Configurable> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A header name as people write it (`X-API-Key`, not `x-api-key`), for
/// `--print-config` and the docs; header names compare without case.
fn display_name(h: &HeaderName) -> String {
    if h.as_str() == "x-api-key" {
        return "X-API-Key".into();
    }
    h.as_str()
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_print_and_refuse_taken_headers() {
        let mut s = ApiKeys::default();
        assert_eq!(s.get(HEADER).as_deref(), Some("X-API-Key"));
        assert_eq!(s.get(LIMIT).as_deref(), Some("off"));
        assert_eq!(s.set(HEADER, "x-partner-key"), Ok(true));
        assert_eq!(s.header.as_str(), "x-partner-key");
        assert_eq!(s.get(HEADER).as_deref(), Some("X-Partner-Key"));
        assert_eq!(s.set(LIMIT, "on"), Ok(true));
        assert!(s.count_limit);
        for bad in ["Authorization", "X Key", "", "x-original-uri"] {
            assert!(s.set(HEADER, bad).is_err(), "{bad}");
        }
        assert!(s.set(LIMIT, "sometimes").is_err());
        assert_eq!(s.set("other", "x"), Ok(false));
    }
}
