//! The portal's two cookies: the session (after sign-in) and the
//! pre-session (before it, so the sign-in and sign-up forms carry a CSRF
//! token too). Both HttpOnly, SameSite=Strict, Path=/; over TLS also
//! Secure with the `__Host-` prefix (the browser then refuses them from a
//! sibling domain or over plain HTTP). A leaf.

use axum::http::{HeaderMap, HeaderValue, header};

/// Which cookie.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// A signed-in session.
    Session,
    /// Before sign-in: the CSRF token's root on the sign-in forms.
    Pre,
    /// A provider admin's session (the provider pages, `provider.rs`).
    Provider,
}

fn name(kind: Kind, secure: bool) -> &'static str {
    match (kind, secure) {
        (Kind::Session, true) => "__Host-tg_portal",
        (Kind::Session, false) => "tg_portal",
        (Kind::Pre, true) => "__Host-tg_pre",
        (Kind::Pre, false) => "tg_pre",
        (Kind::Provider, true) => "__Host-tg_provider",
        (Kind::Provider, false) => "tg_provider",
    }
}

/// The value of cookie `kind` in the request, if any.
pub(crate) fn read(headers: &HeaderMap, kind: Kind, secure: bool) -> Option<String> {
    let want = name(kind, secure);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == want)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// A `Set-Cookie` value that sets cookie `kind` for `max_age` seconds
/// (0: deletes it).
pub(crate) fn set(kind: Kind, secure: bool, value: &str, max_age: i64) -> Option<HeaderValue> {
    let secure_attr = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure_attr}",
        name(kind, secure)
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_attributes_and_parsing() {
        let v = set(Kind::Session, true, "abc", 60).unwrap();
        assert_eq!(
            v.to_str().unwrap(),
            "__Host-tg_portal=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        let plain = set(Kind::Pre, false, "x", 0).unwrap();
        assert!(!plain.to_str().unwrap().contains("Secure"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-tg_portal=tok; tg_pre=p"),
        );
        assert_eq!(read(&h, Kind::Session, true).as_deref(), Some("tok"));
        assert_eq!(read(&h, Kind::Session, false), None);
        assert_eq!(read(&h, Kind::Pre, false).as_deref(), Some("p"));
    }
}
