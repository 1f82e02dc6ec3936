//! A token tollgate mints verifies, and has the claims it was signed with:
//! access tokens (RFC 9068 shape with extra claims, under each algorithm)
//! and session refresh tokens, with names and values the fuzzer picks.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use tollgate_core::crypto::token::{AccessClaims, mint, verify};
use tollgate_core::model::{GrantType, RESERVED_CLAIMS, RefreshFamily};

fn access(u: &mut Unstructured<'_>) -> Result<()> {
    let k = common::keys();
    let key = &k.signing[usize::from(u.arbitrary::<u8>()?) % k.signing.len()];
    let (sub, aud, jti, client_id, scope): (String, String, String, String, String) =
        u.arbitrary()?;
    let azp: Option<String> = u.arbitrary()?;
    let mut extra = serde_json::Map::new();
    for _ in 0..u.int_in_range(0..=4)? {
        let (name, value): (String, String) = u.arbitrary()?;
        // Client validation refuses these names (Client::validate).
        if !RESERVED_CLAIMS.contains(&name.as_str()) {
            extra.insert(name, serde_json::Value::String(value));
        }
    }
    let now = tollgate_core::time::now();
    let exp = now + 1 + i64::from(u.arbitrary::<u32>()?);
    let claims = AccessClaims {
        iss: common::ISSUER,
        sub: &sub,
        aud: &aud,
        exp,
        iat: now,
        jti: &jti,
        client_id: &client_id,
        scope: &scope,
        azp: azp.as_deref(),
        gty: azp.as_ref().map(|_| "client-credentials"),
        permissions: None,
        extra: &extra,
    };
    let token = mint(key, &claims).expect("minting");
    let got = verify(&token, common::ISSUER, &k.signing, Some(&aud)).expect("own token verifies");
    assert_eq!(got.sub, sub);
    assert_eq!(got.aud, serde_json::Value::String(aud.clone()));
    assert_eq!((got.exp, got.iat), (exp, now));
    assert_eq!(got.jti, jti);
    assert_eq!(got.client_id.as_deref(), Some(client_id.as_str()));
    assert_eq!(got.scope.as_deref(), Some(scope.as_str()));
    assert_eq!(
        got.other.get("azp").and_then(|v| v.as_str()),
        azp.as_deref()
    );
    for (name, value) in &extra {
        assert_eq!(got.other.get(name), Some(value), "extra claim {name}");
    }
    // Another audience is refused.
    let other = format!("{aud}x");
    assert!(verify(&token, common::ISSUER, &k.signing, Some(&other)).is_err());
    Ok(())
}

fn session(u: &mut Unstructured<'_>) -> Result<()> {
    let k = common::keys();
    let now = tollgate_core::time::now();
    let (env, family, contract, client_id, username): (String, String, String, String, String) =
        u.arbitrary()?;
    let (audience, current, access_jti): (String, String, String) = u.arbitrary()?;
    let scope: Vec<String> = u.arbitrary()?;
    let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
    let rec = RefreshFamily {
        env,
        family,
        contract,
        client_id,
        username,
        grant: *u.choose(&[GrantType::Password, GrantType::DeviceCredentials])?,
        audience,
        scope: scope.join(" "),
        current,
        previous: None,
        access_jti,
        access_exp: now + 60,
        issued_at: now,
        expires_at: now + 1 + i64::from(u.arbitrary::<u32>()?),
        rotated_at: None,
        revoked_at: None,
        created_at: now,
    };
    let token = k.codec.encode_session(&rec, &scope).expect("encoding");
    let got = k
        .codec
        .read_session(&token)
        .expect("own session token reads");
    assert_eq!(got.aud, vec![rec.audience.clone()]);
    assert_eq!(
        (&got.user_name, &got.client_id),
        (&rec.username, &rec.client_id)
    );
    assert_eq!(
        (&got.jti, &got.fam, &got.ati),
        (&rec.current, &rec.family, &rec.access_jti)
    );
    assert_eq!(got.scope, scope);
    assert_eq!(got.exp, rec.expires_at);
    assert!(got.born_in(&rec.env, &rec.contract));
    // Not a refresh JWT, whatever it carries.
    assert!(k.codec.read_refresh_jwt(&rec.env, &token).is_err());
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = if u.arbitrary::<bool>().unwrap_or(false) {
        access(&mut u)
    } else {
        session(&mut u)
    };
});
