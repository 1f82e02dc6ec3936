//! The configuration: TOML text and `TOLLGATE_*` environment variables in,
//! a `Config` or an error out, never a panic; and the effective
//! configuration as `tollgate config` prints it loads back to itself.
//!
//! The input is the file's text, then (after the first NUL) environment
//! variables, one `NAME=value` a line.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tollgate::config::{Config, Overrides};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (file, env_text) = text.split_once('\0').unwrap_or((text, ""));
    let env: BTreeMap<String, String> = env_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let flags = Overrides::new();
    let Ok(cfg) = Config::from_sources(Some((file, Path::new("fuzz.toml"))), &env, &flags) else {
        return;
    };
    let printed = cfg.to_toml_redacted();
    let again = Config::from_sources(
        Some((&printed, Path::new("printed.toml"))),
        &BTreeMap::new(),
        &flags,
    )
    .unwrap_or_else(|e| panic!("the printed configuration does not load: {e:#}\n{printed}"));
    assert_eq!(again.to_toml_redacted(), printed);
});
