//! Form bodies (`application/x-www-form-urlencoded`, and no content type):
//! any bytes parse or are refused, never a panic; what parses keeps the
//! invariants (at most MAX_PARAMS pairs, no name twice) and, encoded again,
//! parses back to the same pairs.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use tollgate_http::params::{MAX_PARAMS, parse};

fuzz_target!(|data: &[u8]| {
    for ctype in ["application/x-www-form-urlencoded", ""] {
        let Ok(p) = parse(ctype, data, false) else {
            continue;
        };
        let pairs = p.pairs();
        assert!(pairs.len() <= MAX_PARAMS);
        let names: HashSet<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names.len(), pairs.len(), "a name twice");
        let again = serde_urlencoded::to_string(pairs).expect("pairs of strings encode");
        let back = parse(ctype, again.as_bytes(), false).expect("an encoded form parses");
        assert_eq!(back.pairs(), pairs, "round trip through {again:?}");
    }
});
