//! Request parameters and client credentials as contracts receive them:
//! form or JSON bodies and query strings (size- and count-limited,
//! duplicates refused) and HTTP Basic, decoded as each contract's clients
//! encode it.

use std::fmt;
use std::marker::PhantomData;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

/// Largest request body a contract reads (16 KiB).
pub const BODY_LIMIT: usize = 16 * 1024;

/// Most parameters one body or query string may carry. A token request has
/// fewer than 10; 64 leaves room for extensions and clients that send
/// extras, while bounding the work per request: parsers stop at the 65th
/// name, and every lookup in a [`Params`] scans at most this many entries.
/// Without it, a URL of thousands of parameters cost tens of milliseconds
/// of CPU per request.
pub const MAX_PARAMS: usize = 64;

/// Why parameters could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamError {
    /// Body over [`BODY_LIMIT`].
    #[error("request body is larger than {BODY_LIMIT} bytes")]
    TooLarge,
    /// More than [`MAX_PARAMS`] parameters in a body or query string.
    #[error("more than {MAX_PARAMS} parameters")]
    TooMany,
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

/// Parsed parameters, in order; never more than [`MAX_PARAMS`] and never a
/// name twice.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The pairs, in the order they were given.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
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
    /// query and already present is a duplicate, and the total is capped at
    /// [`MAX_PARAMS`].
    pub fn merge_query(&mut self, query: &str) -> Result<(), ParamError> {
        for (k, v) in parse_form(query.as_bytes(), "query string is not valid")? {
            self.push_unique(k, v)?;
        }
        Ok(())
    }

    /// Appends a pair. The scan for `k` is bounded: the list never grows
    /// past [`MAX_PARAMS`].
    fn push_unique(&mut self, k: String, v: String) -> Result<(), ParamError> {
        if self.0.len() >= MAX_PARAMS {
            return Err(ParamError::TooMany);
        }
        if self.get(&k).is_some() {
            return Err(ParamError::Duplicate(k));
        }
        self.0.push((k, v));
        Ok(())
    }
}

/// The pairs of a form or JSON object, in order, up to the first problem: a
/// name seen before, or a name past [`MAX_PARAMS`].
///
/// Objects are walked entry by entry because serde_json's `Value`/`Map`
/// keep only the last of repeated keys (`{"client_id":"A","client_id":"B"}`
/// would authenticate as B); forms take the same walk so that both are
/// counted and checked alike, in one pass. Each name is compared with the
/// ones before it: at most [`MAX_PARAMS`] of them, cheaper at the usual
/// handful than hashing every name into a set (callgrind: a set cost about
/// 1 % of an issued token).
///
/// `DRAIN`: serde_json checks that an object was read to its closing brace,
/// so after a problem the rest is skipped unread (still parsed: a body
/// broken further on is malformed, not a duplicate). serde_urlencoded does
/// not check, so forms and query strings stop at once.
struct Walk<V, const DRAIN: bool> {
    pairs: Vec<(String, V)>,
    problem: Option<ParamError>,
}

/// A form body or query string: values are strings.
type FormWalk = Walk<String, false>;
/// A JSON object: values are anything, judged afterwards (see [`json_params`]).
type JsonWalk = Walk<serde_json::Value, true>;

impl<'de, V: Deserialize<'de>, const DRAIN: bool> Deserialize<'de> for Walk<V, DRAIN> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(WalkVisitor(PhantomData))
    }
}

struct WalkVisitor<V, const DRAIN: bool>(PhantomData<V>);

impl<'de, V: Deserialize<'de>, const DRAIN: bool> Visitor<'de> for WalkVisitor<V, DRAIN> {
    type Value = Walk<V, DRAIN>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of parameters")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs: Vec<(String, V)> = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let problem = if pairs.len() == MAX_PARAMS {
                ParamError::TooMany
            } else if pairs.iter().any(|(seen, _)| *seen == name) {
                ParamError::Duplicate(name)
            } else {
                let value = map.next_value::<V>()?;
                pairs.push((name, value));
                continue;
            };
            if DRAIN {
                map.next_value::<IgnoredAny>()?;
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            }
            return Ok(Walk {
                pairs,
                problem: Some(problem),
            });
        }
        Ok(Walk {
            pairs,
            problem: None,
        })
    }
}

/// The pairs of a form or query string, duplicates and overflow refused;
/// `what` begins the message when it is not a form at all.
fn parse_form(bytes: &[u8], what: &str) -> Result<Vec<(String, String)>, ParamError> {
    let walk: FormWalk = serde_urlencoded::from_bytes(bytes)
        .map_err(|e| ParamError::Malformed(format!("{what}: {e}")))?;
    match walk.problem {
        Some(p) => Err(p),
        None => Ok(walk.pairs),
    }
}

/// A walked JSON object as parameters: strings as they are, numbers and
/// booleans as their JSON text, `null` as absent, anything else (arrays,
/// nested objects) refused. Problems are reported in the body's order.
fn json_params(walk: JsonWalk) -> Result<Params, ParamError> {
    let mut params = Vec::with_capacity(walk.pairs.len());
    for (k, v) in walk.pairs {
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
        params.push((k, v));
    }
    match walk.problem {
        Some(p) => Err(p),
        None => Ok(Params(params)),
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
    parse(ctype, &bytes, lenient)
}

/// Parses a body of content type `ctype` (see [`read_body_lenient`] for
/// `lenient`). Public for the fuzz targets (fuzz/); contracts use
/// [`read_body`] and [`read_body_lenient`].
pub fn parse(ctype: &str, bytes: &[u8], lenient: bool) -> Result<Params, ParamError> {
    let mime = ctype
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || mime.ends_with("+json") {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        match JsonWalk::deserialize(&mut de).and_then(|w| de.end().map(|()| w)) {
            Ok(walk) => return json_params(walk),
            // Well-formed JSON of the wrong type: the walk accepts any key
            // and value inside an object, so only the top level can be wrong.
            Err(e) if e.is_data() => {
                return Err(ParamError::Malformed("JSON body must be an object".into()));
            }
            Err(_) if lenient && !bytes.trim_ascii().starts_with(b"{") => {}
            Err(e) => {
                return Err(ParamError::Malformed(format!(
                    "body is not valid JSON: {e}"
                )));
            }
        }
    } else if !(mime == "application/x-www-form-urlencoded" || mime.is_empty()) {
        return Err(ParamError::ContentType(ctype.to_string()));
    }
    parse_form(bytes, "body is not a valid form").map(Params)
}

/// How a contract's clients put the user and password into HTTP Basic. Each
/// caller of [`authorization`] names one: the two read `%` differently, so
/// the wrong one silently changes who is authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicDecoding {
    /// RFC 6749 §2.3.1: OAuth 2.0 clients form-encode the client id and
    /// secret before Basic, so `%XX` escapes are decoded. `+` is kept, not
    /// read as a space: clients that skip the encoding send it literally.
    Rfc6749Form,
    /// RFC 7617: the user-id and password exactly as sent, UTF-8, no
    /// escapes (`%41` is three characters). Browsers, Tradecloud's clients
    /// and Spring Security's `BasicAuthenticationFilter` work this way.
    Rfc7617,
}

/// What the `Authorization` header carried.
#[derive(Debug)]
pub enum Authorization {
    /// No header.
    None,
    /// `Basic` with a user and password (client id and secret), decoded as
    /// the caller's [`BasicDecoding`] says.
    Basic {
        /// User part.
        user: String,
        /// Password part.
        password: SecretString,
    },
    /// `Bearer <token>` (scheme matched case-insensitively).
    Bearer(String),
    /// A header that could not be read: not visible ASCII, Basic without
    /// credentials or that is not base64 or not UTF-8, an unknown scheme.
    /// Each contract answers it with its own "bad client credentials".
    Malformed,
}

/// Parses the `Authorization` header. Basic credentials are split at the
/// first `:`, then decoded as `decoding` says. Without a `:` the whole text
/// is the user and the password is empty (Dive sends a bare client key).
pub fn authorization(headers: &HeaderMap, decoding: BasicDecoding) -> Authorization {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Authorization::None;
    };
    let Ok(value) = value.to_str() else {
        return Authorization::Malformed;
    };
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        // A bare `Basic` carries no credentials at all; base64 of nothing
        // would otherwise read as an empty client id and password.
        if rest.is_empty() {
            return Authorization::Malformed;
        }
        let Ok(raw) = STANDARD.decode(rest) else {
            return Authorization::Malformed;
        };
        let Ok(text) = String::from_utf8(raw) else {
            return Authorization::Malformed;
        };
        let (user, password) = text.split_once(':').unwrap_or((text.as_str(), ""));
        let (user, password) = match decoding {
            BasicDecoding::Rfc6749Form => (percent_decode(user), percent_decode(password)),
            BasicDecoding::Rfc7617 => (user.to_string(), password.to_string()),
        };
        Authorization::Basic {
            user,
            password: SecretString::from(password),
        }
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Authorization::Bearer(rest.to_string())
    } else {
        Authorization::Malformed
    }
}

/// Decodes `%XX` escapes (two hex digits; anything else is kept as is). A
/// result that is not UTF-8 leaves the text as sent.
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let hex = |c: u8| char::from(c).to_digit(16);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        // `to_digit` per byte, not `from_str_radix` on the pair, which would
        // take a sign: "%+1" is not an escape.
        let escaped = match (c, b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) => hex(h).zip(hex(l)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match escaped.and_then(|v| u8::try_from(v).ok()) {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
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
    use proptest::prelude::*;
    use secrecy::ExposeSecret;
    use std::collections::HashSet;

    const FORM: &str = "application/x-www-form-urlencoded";
    const JSON: &str = "application/json";

    fn basic_raw(raw: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(raw)))
                .unwrap_or(HeaderValue::from_static("")),
        );
        h
    }

    fn basic(v: &str) -> HeaderMap {
        basic_raw(v.as_bytes())
    }

    /// (user, password) of a Basic header, or None for anything else.
    fn creds(h: &HeaderMap, d: BasicDecoding) -> Option<(String, String)> {
        match authorization(h, d) {
            Authorization::Basic { user, password } => {
                Some((user, password.expose_secret().to_string()))
            }
            _ => None,
        }
    }

    /// `n` distinct pairs `p0=v0`, `p1=v1`, …
    fn numbered(n: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (format!("p{i}"), format!("v{i}"))).collect()
    }

    fn form_text(pairs: &[(String, String)]) -> String {
        serde_urlencoded::to_string(pairs).unwrap()
    }

    /// A JSON object with the pairs in order, repeats included (which no
    /// map type would let us build).
    fn json_text(pairs: &[(String, String)]) -> String {
        let entries: Vec<String> = pairs
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}:{}",
                    serde_json::to_string(k).unwrap(),
                    serde_json::to_string(v).unwrap()
                )
            })
            .collect();
        format!("{{{}}}", entries.join(","))
    }

    fn query(text: &str) -> Result<Params, ParamError> {
        let mut p = Params::default();
        p.merge_query(text).map(|()| p)
    }

    #[test]
    fn basic_splits_at_first_colon_and_decodes_escapes_for_oauth2() {
        assert_eq!(
            creds(&basic("id:se:cr%25et+"), BasicDecoding::Rfc6749Form),
            Some(("id".into(), "se:cr%et+".into()))
        );
    }

    #[test]
    fn basic_decoding_modes_differ_only_on_escapes() {
        let h = basic("alice%40example.com:p%41ss");
        assert_eq!(
            creds(&h, BasicDecoding::Rfc7617),
            Some(("alice%40example.com".into(), "p%41ss".into()))
        );
        assert_eq!(
            creds(&h, BasicDecoding::Rfc6749Form),
            Some(("alice@example.com".into(), "pAss".into()))
        );
        // RFC 7617: the first ':' splits, later ones belong to the password;
        // UTF-8 is kept as sent.
        assert_eq!(
            creds(&basic("alice@example.com:a:b é"), BasicDecoding::Rfc7617),
            Some(("alice@example.com".into(), "a:b é".into()))
        );
    }

    #[test]
    fn basic_without_colon_is_a_user_with_an_empty_password() {
        for d in [BasicDecoding::Rfc7617, BasicDecoding::Rfc6749Form] {
            assert_eq!(
                creds(&basic("bare-key"), d),
                Some(("bare-key".into(), String::new()))
            );
        }
    }

    #[test]
    fn basic_without_credentials_is_malformed_not_empty_credentials() {
        for value in ["Basic", "basic", " Basic ", "BASIC   "] {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            for d in [BasicDecoding::Rfc7617, BasicDecoding::Rfc6749Form] {
                assert!(
                    matches!(authorization(&h, d), Authorization::Malformed),
                    "{value:?} {d:?}"
                );
            }
        }
        // An explicit empty user and password (base64 of ":") is still read
        // as sent: the core refuses the unknown client.
        assert_eq!(
            creds(&basic(":"), BasicDecoding::Rfc7617),
            Some((String::new(), String::new()))
        );
    }

    #[test]
    fn bad_base64_and_non_utf8_basic_are_malformed() {
        let mut not_base64 = HeaderMap::new();
        not_base64.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic not*base64"),
        );
        // "al\xffce:pw": base64 of bytes that are not UTF-8 (Latin-1 'ÿ').
        let latin1 = basic_raw(b"al\xffce:pw");
        for d in [BasicDecoding::Rfc7617, BasicDecoding::Rfc6749Form] {
            assert!(matches!(
                authorization(&not_base64, d),
                Authorization::Malformed
            ));
            assert!(matches!(
                authorization(&latin1, d),
                Authorization::Malformed
            ));
        }
    }

    #[test]
    fn form_escapes_need_two_hex_digits() {
        // "%+1" would pass `u8::from_str_radix("+1", 16)`; it is not an escape.
        assert_eq!(
            creds(&basic("a%+1%4:b%zz%41"), BasicDecoding::Rfc6749Form),
            Some(("a%+1%4".into(), "b%zzA".into()))
        );
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bEaReR abc"),
        );
        assert!(matches!(
            authorization(&h, BasicDecoding::Rfc7617),
            Authorization::Bearer(t) if t == "abc"
        ));
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

    #[test]
    fn the_cap_holds_for_forms_json_and_queries() {
        let at_cap = numbered(MAX_PARAMS);
        let over = numbered(MAX_PARAMS + 1);
        let last = format!("p{}", MAX_PARAMS - 1);
        for (what, ok, refused) in [
            (
                "form",
                parse(FORM, form_text(&at_cap).as_bytes(), false),
                parse(FORM, form_text(&over).as_bytes(), false),
            ),
            (
                "json",
                parse(JSON, json_text(&at_cap).as_bytes(), false),
                parse(JSON, json_text(&over).as_bytes(), false),
            ),
            (
                "query",
                query(&form_text(&at_cap)),
                query(&form_text(&over)),
            ),
        ] {
            let ok = ok.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(ok.get(&last), Some(format!("v{}", MAX_PARAMS - 1).as_str()));
            assert_eq!(refused.err(), Some(ParamError::TooMany), "{what}");
        }
        // A query merged into parameters already read counts with them.
        let mut p = query(&form_text(&numbered(MAX_PARAMS - 1))).unwrap();
        assert_eq!(p.merge_query("x=1"), Ok(()));
        assert_eq!(p.merge_query("y=1"), Err(ParamError::TooMany));
    }

    #[test]
    fn the_cap_is_checked_before_thousands_of_names_are_read() {
        // 10,000 names, the last repeating the first: the walk stops at the
        // 65th, so the repeat is never reached.
        let mut many = numbered(10_000);
        many.push(("p0".into(), "again".into()));
        let text = form_text(&many);
        assert_eq!(query(&text).err(), Some(ParamError::TooMany));
        assert_eq!(
            parse(JSON, json_text(&many).as_bytes(), false).err(),
            Some(ParamError::TooMany)
        );
    }

    #[test]
    fn duplicate_json_keys_are_refused_not_last_wins() {
        for (body, name) in [
            (r#"{"client_id":"A","client_id":"B"}"#, "client_id"),
            (r#"{"scope":"a","grant_type":"x","scope":"b"}"#, "scope"),
            (r#"{"n":1,"n":1}"#, "n"),
            // null reads as absent, but the key is still given twice.
            (r#"{"audience":null,"audience":"api"}"#, "audience"),
        ] {
            assert_eq!(
                parse(JSON, body.as_bytes(), false).err(),
                Some(ParamError::Duplicate(name.into())),
                "{body}"
            );
        }
        // The lenient reader (Dive's) refuses them too.
        assert_eq!(
            parse(JSON, br#"{"a":"1","a":"2"}"#, true).err(),
            Some(ParamError::Duplicate("a".into()))
        );
    }

    #[test]
    fn nested_json_values_are_refused_and_their_keys_are_not_top_level() {
        for body in [
            r#"{"client_id":"A","extra":{"client_id":"B"}}"#,
            r#"{"extra":{"x":1,"x":2},"client_id":"A"}"#,
            r#"{"client_id":"A","extra":["client_id","B"]}"#,
        ] {
            assert_eq!(
                parse(JSON, body.as_bytes(), false).err(),
                Some(ParamError::Malformed(
                    "parameter 'extra' must be a string".into()
                )),
                "{body}"
            );
        }
    }

    #[test]
    fn json_scalars_read_as_before() {
        let p = parse(
            JSON,
            br#"{"s":"x","n":42,"neg":-7,"f":1.5,"e":1e3,"t":true,"z":null}"#,
            false,
        )
        .unwrap();
        assert_eq!(p.get("s"), Some("x"));
        assert_eq!(p.get("n"), Some("42"));
        assert_eq!(p.get("neg"), Some("-7"));
        assert_eq!(p.get("f"), Some("1.5"));
        assert_eq!(p.get("e"), Some("1000.0"));
        assert_eq!(p.get("t"), Some("true"));
        assert_eq!(p.get("z"), None);
    }

    #[test]
    fn non_object_and_broken_json_bodies() {
        let must_be_object = Some(ParamError::Malformed("JSON body must be an object".into()));
        for body in [&b"[1]"[..], b"\"x\"", b"null", b"  7 "] {
            assert_eq!(parse(JSON, body, false).err(), must_be_object);
            assert_eq!(parse(JSON, body, true).err(), must_be_object);
        }
        assert!(matches!(
            parse(JSON, b"{\"a\":", false),
            Err(ParamError::Malformed(m)) if m.starts_with("body is not valid JSON")
        ));
        // Broken after a duplicate: malformed, the whole body is parsed.
        assert!(matches!(
            parse(JSON, b"{\"a\":\"1\",\"a\":\"2\",", false),
            Err(ParamError::Malformed(_))
        ));
        // Lenient: a form sent as JSON is read as a form, a broken object is not.
        let p = parse(JSON, b"username=u&password=p", true).unwrap();
        assert_eq!(p.get("password"), Some("p"));
        assert!(matches!(
            parse(JSON, b"{username=u", true),
            Err(ParamError::Malformed(_))
        ));
        assert_eq!(
            parse("text/plain", b"a=1", false).err(),
            Some(ParamError::ContentType("text/plain".into()))
        );
    }

    /// What the parsers must answer for `pairs`, walked in order: the first
    /// name past the cap, else the first repeated name, refuses the list.
    fn expected(pairs: &[(String, String)]) -> Result<(), ParamError> {
        let mut seen = HashSet::new();
        for (i, (k, _)) in pairs.iter().enumerate() {
            if i == MAX_PARAMS {
                return Err(ParamError::TooMany);
            }
            if !seen.insert(k) {
                return Err(ParamError::Duplicate(k.clone()));
            }
        }
        Ok(())
    }

    /// Lists around the cap: names from a tiny alphabet (repeats likely,
    /// characters that need escaping), or distinct names with perhaps one
    /// repeat spliced in.
    fn lists() -> impl Strategy<Value = Vec<(String, String)>> {
        let value = "[a-z0-9 &=%+é\"\\\\]{0,6}";
        let small = prop::collection::vec(("[ab&=%+ é]{0,2}", value), 0..=MAX_PARAMS + 4);
        let distinct = (
            prop::collection::vec(value, 0..=MAX_PARAMS + 4),
            any::<Option<(prop::sample::Index, prop::sample::Index)>>(),
        )
            .prop_map(|(values, repeat)| {
                let mut pairs: Vec<(String, String)> = values
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (format!("n{i}"), v))
                    .collect();
                if let (Some((from, to)), false) = (repeat, pairs.is_empty()) {
                    let name = pairs[from.index(pairs.len())].0.clone();
                    let at = to.index(pairs.len() + 1);
                    pairs.insert(at, (name, "again".into()));
                }
                pairs
            });
        prop_oneof![small, distinct]
    }

    fn invariants(p: &Params) -> Result<(), TestCaseError> {
        prop_assert!(p.0.len() <= MAX_PARAMS);
        let names: HashSet<&String> = p.0.iter().map(|(k, _)| k).collect();
        prop_assert_eq!(names.len(), p.0.len());
        Ok(())
    }

    proptest! {
        #[test]
        fn parsers_refuse_exactly_repeats_and_overflow(pairs in lists()) {
            let want = expected(&pairs);
            let form = form_text(&pairs);
            for (what, got) in [
                ("form", parse(FORM, form.as_bytes(), false)),
                ("json", parse(JSON, json_text(&pairs).as_bytes(), false)),
                ("query", query(&form)),
            ] {
                match (&want, got) {
                    (Ok(()), Ok(p)) => {
                        prop_assert_eq!(&p.0, &pairs, "{}", what);
                    }
                    (Err(w), Err(g)) => prop_assert_eq!(w, &g, "{}", what),
                    (w, g) => prop_assert!(false, "{}: expected {:?}, got {:?}", what, w, g),
                }
            }
        }

        #[test]
        fn arbitrary_bodies_never_panic_and_keep_the_invariants(
            bytes in prop::collection::vec(any::<u8>(), 0..300),
            ctype in prop::sample::select(vec![FORM, JSON, "", "text/plain"]),
            lenient in any::<bool>(),
        ) {
            if let Ok(p) = parse(ctype, &bytes, lenient) {
                invariants(&p)?;
            }
            if let Ok(p) = query(&String::from_utf8_lossy(&bytes)) {
                invariants(&p)?;
            }
        }

        #[test]
        fn rfc7617_gives_back_exactly_what_was_sent(
            user in "[^:]{0,12}",
            password in "\\PC{0,12}",
        ) {
            let h = basic(&format!("{user}:{password}"));
            prop_assert_eq!(creds(&h, BasicDecoding::Rfc7617), Some((user, password)));
        }
    }
}
