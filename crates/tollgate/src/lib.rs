//! The parts of the `tollgate` binary that other targets need to reach: the
//! configuration loader, so that the fuzz target (fuzz/) can feed it
//! arbitrary text. The binary itself uses it from here. Not an API.

// Hidden: the binary's own types, documented where the operator reads
// them (docs/OPERATIONS.md), not as a library.
#[doc(hidden)]
pub mod config;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use crate::config::{Config, Overrides};

    #[test]
    fn from_sources_reads_only_what_it_is_given() {
        let file = Some((
            "listen = \"127.0.0.1:9000\"\nmax_connections = 7\n",
            Path::new("t.toml"),
        ));
        let env = BTreeMap::from([
            ("TOLLGATE_MAX_CONNECTIONS".to_string(), "9".to_string()),
            ("HOME".to_string(), "/elsewhere".to_string()),
        ]);
        let cfg =
            Config::from_sources(file, &env, &Overrides::new()).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(cfg.listen.port(), 9000);
        // The environment wins over the file.
        assert_eq!(cfg.max_connections, 9);
        let flags = Overrides::from([("max_connections", "11".to_string())]);
        let cfg = Config::from_sources(file, &env, &flags).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(cfg.max_connections, 11);
        let bad = Config::from_sources(Some(("nope = 1", Path::new("t.toml"))), &env, &flags);
        let msg = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.starts_with("config file t.toml: unknown key 'nope'"),
            "{msg}"
        );
        let bad_env = BTreeMap::from([("TOLLGATE_NOPE".to_string(), "1".to_string())]);
        let msg = Config::from_sources(None, &bad_env, &Overrides::new())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.starts_with("environment variable TOLLGATE_NOPE"),
            "{msg}"
        );
    }
}
