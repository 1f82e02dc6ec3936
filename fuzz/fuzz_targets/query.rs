//! Query strings merged into parameters already read (as the contracts do:
//! body first, then the query): never a panic; the merged list stays
//! within MAX_PARAMS with no name twice, keeps what was there, and a query
//! alone reads exactly as a form body.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use tollgate_http::params::{MAX_PARAMS, Params, parse};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Two query strings: before and after the first '#'.
    let (first, second) = text.split_once('#').unwrap_or((&text, ""));
    let mut p = Params::default();
    let alone = p.merge_query(first);
    let as_form = parse("application/x-www-form-urlencoded", first.as_bytes(), false);
    match (&alone, &as_form) {
        (Ok(()), Ok(f)) => assert_eq!(p.pairs(), f.pairs()),
        (Err(a), Err(f)) => assert_eq!(
            std::mem::discriminant(a),
            std::mem::discriminant(f),
            "{a} / {f}"
        ),
        (a, f) => panic!("query {a:?} but form {f:?}"),
    }
    if alone.is_err() {
        return;
    }
    let before = p.pairs().to_vec();
    let merged = p.merge_query(second);
    let pairs = p.pairs();
    assert!(pairs.len() <= MAX_PARAMS);
    assert!(pairs.starts_with(&before), "a merge changed what was there");
    let names: HashSet<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names.len(), pairs.len(), "a name twice after {merged:?}");
});
