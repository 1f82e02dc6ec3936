//! What a token depends on: the contract and [`CacheKey`]. Two sources share
//! a cached token (and a single flight) only when every field that changes
//! the token is equal, so a token for one scope or audience is never handed
//! to a caller asking for another (the mistake behind CVE-2025-26620).

use std::fmt;
use std::str::FromStr;

use md5::{Digest as _, Md5};

/// The wire contract a source speaks (the names `tollgate token get
/// --contract` accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Contract {
    /// RFC 6749 client_credentials, form body (`rfc6749`).
    Rfc6749,
    /// The same with a JSON body (`rfc6749-json`), as the JSON sample sends.
    Rfc6749Json,
    /// Auth0's shape: form body with `audience` (`auth0`; Sportradar).
    Auth0,
    /// Refresh JWT exchanged for an access token (`bearer-exchange`; Cloudbet).
    BearerExchange,
    /// Device login and refresh, Spring style (`device-credentials`; Dive).
    DeviceCredentials,
    /// Basic login answered in headers, rotating refresh (`header-login`; Tradecloud).
    HeaderLogin,
}

impl Contract {
    /// Every contract, in the order the docs list them.
    pub const ALL: [Contract; 6] = [
        Contract::Rfc6749,
        Contract::Rfc6749Json,
        Contract::Auth0,
        Contract::BearerExchange,
        Contract::DeviceCredentials,
        Contract::HeaderLogin,
    ];

    /// The contract's name.
    pub fn name(self) -> &'static str {
        match self {
            Contract::Rfc6749 => "rfc6749",
            Contract::Rfc6749Json => "rfc6749-json",
            Contract::Auth0 => "auth0",
            Contract::BearerExchange => "bearer-exchange",
            Contract::DeviceCredentials => "device-credentials",
            Contract::HeaderLogin => "header-login",
        }
    }

    /// Whether the contract hands out refresh tokens the client must keep.
    pub fn has_refresh(self) -> bool {
        matches!(self, Contract::DeviceCredentials | Contract::HeaderLogin)
    }
}

impl fmt::Display for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Contract {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "client-credentials" => return Ok(Contract::Rfc6749),
            "client-credentials-json" | "json" => return Ok(Contract::Rfc6749Json),
            _ => {}
        }
        Contract::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Contract::ALL.iter().map(|c| c.name()).collect();
                format!("unknown contract '{s}' (one of: {})", names.join(", "))
            })
    }
}

/// Everything that changes the token a source obtains.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The contract.
    pub contract: Contract,
    /// The endpoint the token comes from (full URL).
    pub endpoint: String,
    /// The client (client id, client key; for a refresh JWT the MD5 of it,
    /// never the credential itself).
    pub client: String,
    /// The user or device, for the user contracts.
    pub subject: Option<String>,
    /// `audience` asked for.
    pub audience: Option<String>,
    /// `resource` (RFC 8707) asked for.
    pub resource: Option<String>,
    /// `scope` asked for.
    pub scope: Option<String>,
}

impl CacheKey {
    /// A stable text form, for stores (no secrets in it).
    pub fn store_key(&self) -> String {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        format!(
            "{}|{}|{}|{}|{}|{}|{}",
            self.contract,
            self.endpoint,
            self.client,
            o(&self.subject),
            o(&self.audience),
            o(&self.resource),
            o(&self.scope)
        )
    }

    /// A file name for this key (hex MD5 of [`CacheKey::store_key`]): the
    /// name [`crate::FileStore`] uses, and `tollgate token get`'s cache.
    pub fn file_stem(&self) -> String {
        md5_hex(&self.store_key())
    }
}

/// Lower-case hex MD5 of `s` (Dive's password form, and file names).
pub(crate) fn md5_hex(s: &str) -> String {
    let digest = Md5::digest(s.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Contract::ALL {
            assert_eq!(c.name().parse::<Contract>(), Ok(c));
        }
        assert!("nope".parse::<Contract>().is_err());
    }

    #[test]
    fn md5_matches_the_rfc_1321_test_vector() {
        assert_eq!(md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn every_field_changes_the_store_key() {
        let base = CacheKey {
            contract: Contract::Rfc6749,
            endpoint: "https://a/oauth/token".into(),
            client: "c".into(),
            subject: None,
            audience: Some("a".into()),
            resource: None,
            scope: Some("read".into()),
        };
        let variants = [
            CacheKey {
                contract: Contract::Auth0,
                ..base.clone()
            },
            CacheKey {
                endpoint: "https://b/oauth/token".into(),
                ..base.clone()
            },
            CacheKey {
                client: "d".into(),
                ..base.clone()
            },
            CacheKey {
                subject: Some("u".into()),
                ..base.clone()
            },
            CacheKey {
                audience: Some("b".into()),
                ..base.clone()
            },
            CacheKey {
                resource: Some("r".into()),
                ..base.clone()
            },
            CacheKey {
                scope: Some("write".into()),
                ..base.clone()
            },
        ];
        for v in variants {
            assert_ne!(v.store_key(), base.store_key(), "{v:?}");
            assert_ne!(v, base);
        }
    }
}
