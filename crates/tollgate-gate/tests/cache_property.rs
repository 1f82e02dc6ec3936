//! The decision cache never changes a decision: over random policies,
//! tokens and request sequences, a gate with its cache answers exactly as a
//! gate deciding every request afresh. In particular an "allow" cached for
//! a route needing little is never reused for a route needing more.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use proptest::prelude::*;
use tollgate_core::crypto::token::VerifiedClaims;
use tollgate_gate::decide::{KeyHeader, Request};
use tollgate_gate::{Decision, Gate, KeySource, Policy, SourceError};

/// Tokens are names; their claims are looked up (the cache's logic, not
/// cryptography, is under test). Revocations move the generation, as a
/// core's sync does.
struct Fake {
    tokens: HashMap<String, VerifiedClaims>,
    revoked: std::sync::Mutex<Vec<String>>,
    generation: AtomicI64,
}

#[async_trait]
impl KeySource for Fake {
    fn generation(&self) -> i64 {
        self.generation.load(Ordering::SeqCst)
    }
    async fn verify(&self, _env: &str, token: &str) -> Result<VerifiedClaims, SourceError> {
        self.tokens.get(token).cloned().ok_or(SourceError::Invalid)
    }
    fn is_denied(&self, _env: &str, jti: &str) -> bool {
        self.revoked.lock().unwrap().iter().any(|j| j == jti)
    }
}

const PERMS: [&str; 4] = ["a", "b", "c", "d"];
const AUDS: [&str; 2] = ["x", "y"];

fn claims(jti: usize, aud: usize, scope: &[bool], exp: i64) -> VerifiedClaims {
    let scope: Vec<&str> = PERMS
        .iter()
        .zip(scope)
        .filter(|(_, h)| **h)
        .map(|(p, _)| *p)
        .collect();
    serde_json::from_value(serde_json::json!({
        "iss": "i", "sub": "s", "aud": AUDS[aud], "exp": exp, "iat": 0,
        "jti": format!("j{jti}"), "client_id": "c", "scope": scope.join(" "),
    }))
    .unwrap()
}

fn list(mask: &[bool]) -> String {
    PERMS
        .iter()
        .zip(mask)
        .filter(|(_, on)| **on)
        .map(|(p, _)| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(",")
}

/// Route i at path /r{i}: an audience and optional any-of / all-of sets.
fn policy(routes: &[(usize, Vec<bool>, Vec<bool>)]) -> String {
    let mut text = String::from("[gate]\n");
    for (i, (aud, any, all)) in routes.iter().enumerate() {
        text.push_str(&format!(
            "[[gate.route]]\npath = \"/r{i}\"\naudience = \"{}\"\n",
            AUDS[*aud]
        ));
        if any.iter().any(|x| *x) {
            text.push_str(&format!("permissions_any = [{}]\n", list(any)));
        }
        if all.iter().any(|x| *x) {
            text.push_str(&format!("permissions_all = [{}]\n", list(all)));
        }
    }
    text
}

#[derive(Debug, Clone)]
enum Step {
    Ask { token: usize, route: usize, at: i64 },
    Revoke(usize),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn cached_decisions_equal_fresh_ones(
        routes in proptest::collection::vec(
            (0..2usize, proptest::collection::vec(any::<bool>(), 4), proptest::collection::vec(any::<bool>(), 4)),
            1..6),
        tokens in proptest::collection::vec(
            (0..2usize, proptest::collection::vec(any::<bool>(), 4), 90..110i64), 1..5),
        steps in proptest::collection::vec(
            prop_oneof![
                8 => (0..5usize, 0..6usize, 80..120i64).prop_map(|(token, route, at)| Step::Ask { token, route, at }),
                1 => (0..5usize).prop_map(Step::Revoke),
            ],
            1..40),
    ) {
        let text = policy(&routes);
        let p = Policy::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let source = Arc::new(Fake {
            tokens: tokens
                .iter()
                .enumerate()
                .map(|(i, (aud, scope, exp))| (format!("t{i}"), claims(i, *aud, scope, *exp)))
                .collect(),
            revoked: std::sync::Mutex::new(Vec::new()),
            generation: AtomicI64::new(0),
        });
        let cached = Gate::new(p.clone(), source.clone());
        let mut uncached_policy = p;
        uncached_policy.settings.cache_entries = 0;
        let fresh = Gate::new(uncached_policy, source.clone());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for step in steps {
            match step {
                Step::Revoke(t) => {
                    source.revoked.lock().unwrap().push(format!("j{t}"));
                    source.generation.fetch_add(1, Ordering::SeqCst);
                }
                Step::Ask { token, route, at } => {
                    let auth = format!("Bearer t{}", token % tokens.len());
                    let target = format!("/r{}", route % routes.len());
                    let req = Request { env: "default", method: "GET", target: &target, authorization: Some(&auth), api_key: KeyHeader::Absent, count_api_key_calls: false };
                    let (a, b): (Decision, Decision) =
                        rt.block_on(async { (cached.decide_at(&req, at).await, fresh.decide_at(&req, at).await) });
                    prop_assert_eq!(a, b, "{:?} at {} on {}", auth, at, target);
                }
            }
        }
    }
}
