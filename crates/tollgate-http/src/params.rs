//! Request parameters and client credentials as contracts receive them:
//! form or JSON bodies (size-limited, duplicates refused) and HTTP Basic.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;

/// Largest request body a contract reads (16 KiB).
pub const BODY_LIMIT: usize = 16 * 1024;

/// Why parameters could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamError {
    /// Body over [`BODY_LIMIT`].
    #[error("request body is larger than {BODY_LIMIT} bytes")]
    TooLarge,
    /// Body not parseable in its declared format; the text says why.
    #[error("{0}")]
    Malformed(String),
    /// A parameter appeared twice (RFC 6749 §3.2).
    #[error("parameter '{0}' is given more than once")]
    Duplicate(String),
    /// Content type neither form nor JSON.
    #[error(
        "unsupported content type '{0}': send application/x-www-form-urlencoded or application/json"
    )]
    ContentType(String),
}

/// Parsed parameters, in order.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of the first of `names` present (for dialect aliases).
    pub fn get_any(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| self.get(n))
    }

    /// Takes the value of `name` out of the list (for secrets, so the copy
    /// left behind is not kept around longer than needed).
    pub fn take(&mut self, name: &str) -> Option<String> {
        let i = self.0.iter().position(|(k, _)| k == name)?;
        Some(self.0.swap_remove(i).1)
    }

    /// Renames parameter `from` to `to` (a dialect's alias); both present is
    /// a duplicate.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), ParamError> {
        let Some(i) = self.0.iter().position(|(k, _)| k == from) else {
            return Ok(());
        };
        if self.get(to).is_some() {
            return Err(ParamError::Duplicate(to.to_string()));
        }
        if let Some(pair) = self.0.get_mut(i) {
            pair.0 = to.to_string();
        }
        Ok(())
    }

    /// Adds the parameters of a URL query string; a name given both in the
    /// query and already present is a duplicate.
    pub fn merge_query(&mut self, query: &str) -> Result<(), ParamError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| ParamError::Malformed(format!("query string is not valid: {e}")))?;
        for (k, v) in pairs {
            self.push_unique(k, v)?;
        }
        Ok(())
    }

    fn push_unique(&mut self, k: String, v: String) -> Result<(), ParamError> {
        if self.get(&k).is_some() {
            return Err(ParamError::Duplicate(k));
        }
        self.0.push((k, v));
        Ok(())
    }
}

/// Reads and parses a form or JSON body of at most [`BODY_LIMIT`] bytes.
pub async fn read_body(headers: &HeaderMap, body: Body) -> Result<Params, ParamError> {
    read(headers, body, false).await
}

/// Like [`read_body`], but a body declared JSON that is not JSON is read as
/// a form: clients that follow a page saying `Content-Type:
/// application/json` while sending form data (Dive's) keep working.
pub async fn read_body_lenient(headers: &HeaderMap, body: Body) -> Result<Params, ParamError> {
    read(headers, body, true).await
}

async fn read(headers: &HeaderMap, body: Body, lenient: bool) -> Result<Params, ParamError> {
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|_| ParamError::TooLarge)?;
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ctype
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut params = Params::default();
    let json = mime == "application/json" || mime.ends_with("+json");
    let json_value = if json {
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(v) => Some(v),
            Err(_) if lenient && !bytes.trim_ascii().starts_with(b"{") => None,
            Err(e) => {
                return Err(ParamError::Malformed(format!(
                    "body is not valid JSON: {e}"
                )));
            }
        }
    } else {
        None
    };
    if let Some(value) = json_value {
        let serde_json::Value::Object(map) = value else {
            return Err(ParamError::Malformed("JSON body must be an object".into()));
        };
        for (k, v) in map {
            let v = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Null => continue,
                _ => {
                    return Err(ParamError::Malformed(format!(
                        "parameter '{k}' must be a string"
                    )));
                }
            };
            params.push_unique(k, v)?;
        }
    } else if json || mime == "application/x-www-form-urlencoded" || mime.is_empty() {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| ParamError::Malformed(format!("body is not a valid form: {e}")))?;
        for (k, v) in pairs {
            params.push_unique(k, v)?;
        }
    } else {
        return Err(ParamError::ContentType(ctype.to_string()));
    }
    Ok(params)
}

/// What the `Authorization` header carried.
#[derive(Debug)]
pub enum Authorization {
    /// No header.
    None,
    /// `Basic` with a user and password (client id and secret).
    Basic {
        /// User part.
        user: String,
        /// Password part.
        password: SecretString,
    },
    /// `Bearer <token>` (scheme matched case-insensitively).
    Bearer(String),
    /// A header that could not be read.
    Malformed,
}

/// Parses the `Authorization` header. Basic credentials are split at the first
/// `:`; `%XX` escapes are decoded as RFC 6749 §2.3.1 asks, `+` is kept.
pub fn authorization(headers: &HeaderMap) -> Authorization {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Authorization::None;
    };
    let Ok(value) = value.to_str() else {
        return Authorization::Malformed;
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(raw) = STANDARD.decode(rest) else {
            return Authorization::Malformed;
        };
        let Ok(text) = String::from_utf8(raw) else {
            return Authorization::Malformed;
        };
        let (user, password) = text.split_once(':').unwrap_or((text.as_str(), ""));
        Authorization::Basic {
            user: percent_decode(user),
            password: SecretString::from(percent_decode(password)),
        }
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Authorization::Bearer(rest.to_string())
    } else {
        Authorization::Malformed
    }
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        });
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use secrecy::ExposeSecret;

    fn basic(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(v)))
                .unwrap_or(HeaderValue::from_static("")),
        );
        h
    }

    #[test]
    fn basic_splits_at_first_colon_and_decodes_escapes() {
        match authorization(&basic("id:se:cr%25et+")) {
            Authorization::Basic { user, password } => {
                assert_eq!(user, "id");
                assert_eq!(password.expose_secret(), "se:cr%et+");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bEaReR abc"),
        );
        assert!(matches!(authorization(&h), Authorization::Bearer(t) if t == "abc"));
    }

    #[tokio::test]
    async fn duplicates_and_oversize_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let dup = read_body(&h, Body::from("a=1&a=2")).await;
        assert_eq!(dup.err(), Some(ParamError::Duplicate("a".into())));
        let big = read_body(&h, Body::from(vec![b'a'; BODY_LIMIT + 1])).await;
        assert_eq!(big.err(), Some(ParamError::TooLarge));
        let ok = read_body(&h, Body::from("a=1&b=x%20y")).await;
        assert_eq!(
            ok.ok().and_then(|p| p.get("b").map(String::from)),
            Some("x y".into())
        );
    }
}
