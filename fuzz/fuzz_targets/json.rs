//! JSON bodies, strict and lenient (Dive's reader, which falls back to a
//! form): any bytes parse or are refused, never a panic; what parses keeps
//! the invariants, and the pairs written back as a JSON object of strings
//! parse back to the same pairs.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use tollgate_http::params::{MAX_PARAMS, parse};

fuzz_target!(|data: &[u8]| {
    for (ctype, lenient) in [
        ("application/json", false),
        ("application/json", true),
        ("application/jwt+json; charset=utf-8", false),
    ] {
        let Ok(p) = parse(ctype, data, lenient) else {
            continue;
        };
        let pairs = p.pairs();
        assert!(pairs.len() <= MAX_PARAMS);
        let names: HashSet<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names.len(), pairs.len(), "a name twice");
        let object: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let again = serde_json::to_vec(&object).expect("a map of strings serializes");
        let back = parse("application/json", &again, false).expect("an object of strings parses");
        // serde_json's map is sorted by name: compare as sets of pairs.
        let mut want = pairs.to_vec();
        want.sort();
        let mut got = back.pairs().to_vec();
        got.sort();
        assert_eq!(got, want);
    }
});
