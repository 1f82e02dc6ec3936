//! JWT headers and claims as the core reads them: access tokens
//! (`crypto::token::verify`, as `Tollgate::verify` and introspection call
//! it), session refresh tokens and refresh JWTs (`RefreshCodec`). Never a
//! panic, whatever the text; and claims signed with a real key verify to
//! exactly what the claims JSON says.
//!
//! The first byte picks the shape of the rest: 0 the token text as is; 1
//! header, claims and signature separated by newlines, each base64url-
//! encoded here so that the JSON parsers are reached; 2 claims JSON signed
//! with one of the environment's keys.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use tollgate_core::crypto::token::{VerifiedClaims, verify};

fn read_all(token: &str) {
    let k = common::keys();
    for aud in [None, Some("api")] {
        let _ = verify(token, common::ISSUER, &k.signing, aud);
    }
    let _ = k.codec.read_session(token);
    let _ = k.codec.read_refresh_jwt("default", token);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => read_all(&String::from_utf8_lossy(rest)),
        1 => {
            let mut parts = rest.splitn(3, |b| *b == b'\n');
            let enc = |p: Option<&[u8]>| URL_SAFE_NO_PAD.encode(p.unwrap_or_default());
            let token = format!(
                "{}.{}.{}",
                enc(parts.next()),
                enc(parts.next()),
                enc(parts.next())
            );
            read_all(&token);
        }
        _ => {
            let Some((&which, claims)) = rest.split_first() else {
                return;
            };
            let k = common::keys();
            let key = &k.signing[usize::from(which) % k.signing.len()];
            let token = key.sign(claims).expect("signing");
            read_all(&token);
            if let Ok(got) = verify(&token, common::ISSUER, &k.signing, None) {
                let want: VerifiedClaims =
                    serde_json::from_slice(claims).expect("claims that verified are claims");
                assert_eq!(got.iss, common::ISSUER);
                assert_eq!(
                    serde_json::to_value(&got).ok(),
                    serde_json::to_value(&want).ok()
                );
            }
        }
    }
});
