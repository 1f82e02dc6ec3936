//! The `Authorization` header, under both Basic decodings: never a panic;
//! RFC 7617 credentials encoded again read back the same; a bare `Basic`
//! is never credentials; a bearer token is never empty.
#![no_main]

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use tollgate_http::params::{Authorization, BasicDecoding, authorization};

fn headers(value: HeaderValue) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::AUTHORIZATION, value);
    h
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let h = headers(value);
    for d in [BasicDecoding::Rfc7617, BasicDecoding::Rfc6749Form] {
        let got = authorization(&h, d);
        if let Ok(text) = std::str::from_utf8(data) {
            if text.trim().eq_ignore_ascii_case("basic") {
                assert!(matches!(got, Authorization::Malformed), "{text:?}");
            }
        }
        match got {
            Authorization::Basic { user, password } if d == BasicDecoding::Rfc7617 => {
                use secrecy::ExposeSecret as _;
                assert!(!user.contains(':'), "the user ends at the first ':'");
                let pw = password.expose_secret();
                let again = format!("Basic {}", STANDARD.encode(format!("{user}:{pw}")));
                let again = HeaderValue::from_str(&again).expect("base64 is a header value");
                match authorization(&headers(again), d) {
                    Authorization::Basic {
                        user: u,
                        password: p,
                    } => {
                        assert_eq!((u.as_str(), p.expose_secret()), (user.as_str(), pw));
                    }
                    other => panic!("re-encoded credentials read as {other:?}"),
                }
            }
            Authorization::Bearer(t) => {
                assert!(!t.is_empty() && t.trim() == t, "bearer token {t:?}");
            }
            _ => {}
        }
    }
});
