//! What tollgate keeps of an incumbent service it replaces: the issuers whose
//! refresh tokens it goes on accepting after the switch (so partners are not
//! re-onboarded), the incumbent keys it goes on publishing while the
//! incumbent's access tokens are in flight, and the per-client cut-offs
//! that revoke such tokens wholesale. Plain data with validation; no I/O. A
//! leaf, like `model.rs`.

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Which tollgate grant accepts an incumbent's tokens (or, for
/// [`TrustPurpose::AccessTokens`], that its keys are published).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustPurpose {
    /// Refresh JWTs presented to the bearer exchange (Cloudbet's contract).
    BearerExchange,
    /// Refresh tokens presented to the device-credentials refresh (Spring
    /// Security OAuth2's `JwtTokenStore`, Dive's contract).
    DeviceCredentials,
    /// Refresh tokens presented to the header login's `/refresh`
    /// (Tradecloud's contract).
    HeaderLogin,
    /// No grant: the incumbent's public keys (a JWKS) are published in the
    /// environment's JWKS beside tollgate's, so that resource servers that
    /// discover keys at the issuer go on verifying the access tokens the
    /// incumbent issued before the switch (Auth0's, whose private keys
    /// cannot be exported). `key publish`.
    AccessTokens,
}

impl TrustPurpose {
    /// Every purpose.
    pub const ALL: [TrustPurpose; 4] = [
        TrustPurpose::BearerExchange,
        TrustPurpose::DeviceCredentials,
        TrustPurpose::HeaderLogin,
        TrustPurpose::AccessTokens,
    ];

    /// The name used in the CLI (the contract's name).
    pub fn as_str(self) -> &'static str {
        match self {
            TrustPurpose::BearerExchange => "bearer-exchange",
            TrustPurpose::DeviceCredentials => "device-credentials",
            TrustPurpose::HeaderLogin => "header-login",
            TrustPurpose::AccessTokens => "access-tokens",
        }
    }

    /// The purpose whose refresh tokens the contract `name` accepts.
    pub fn for_contract(name: &str) -> Option<TrustPurpose> {
        [
            TrustPurpose::BearerExchange,
            TrustPurpose::DeviceCredentials,
            TrustPurpose::HeaderLogin,
        ]
        .into_iter()
        .find(|p| p.as_str() == name)
    }
}

impl std::str::FromStr for TrustPurpose {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TrustPurpose::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                CoreError::invalid(
                    "purpose",
                    format!(
                        "'{s}' (choose bearer-exchange, device-credentials, header-login or \
                         access-tokens)"
                    ),
                )
            })
    }
}

/// The verification material of a trusted issuer, as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrustKeys {
    /// A JWKS document (public keys; RS256, ES256 or EdDSA).
    Jwks {
        /// The JWKS JSON text.
        jwks: String,
    },
    /// One public key in PEM (SubjectPublicKeyInfo, or PKCS#1 for RSA).
    Pem {
        /// The PEM text.
        pem: String,
    },
    /// A shared HS256 secret, sealed under the master key like signing keys
    /// (the incumbent's secret signs tokens: it must not sit in the clear).
    Hs256 {
        /// AES-256-GCM sealed secret (base64url).
        sealed: String,
    },
}

impl TrustKeys {
    /// `jwks`, `pem` or `hs256`.
    pub fn kind(&self) -> &'static str {
        match self {
            TrustKeys::Jwks { .. } => "jwks",
            TrustKeys::Pem { .. } => "pem",
            TrustKeys::Hs256 { .. } => "hs256",
        }
    }
}

impl std::fmt::Debug for TrustKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Public material could be shown, but one rule for all is simpler.
        write!(f, "TrustKeys({})", self.kind())
    }
}

/// An incumbent issuer whose tokens an environment accepts for `purpose`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedIssuer {
    /// Environment.
    pub env: String,
    /// Its name in listings and `untrust` (unique per environment).
    pub id: String,
    /// Which grant accepts its tokens.
    pub purpose: TrustPurpose,
    /// How its signatures are verified.
    pub keys: TrustKeys,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud` (one of), when set.
    pub audience: Option<String>,
    /// The claim naming the tollgate client (e.g. `sub`, `client_id`);
    /// empty for [`TrustPurpose::AccessTokens`]. For the header login a
    /// token without it belongs to its user's client.
    pub client_claim: String,
    /// Device credentials: the claim naming the user (`user_name`, with
    /// `device_id` as the fall-back when unset); header login: likewise
    /// (`email`, then `user_name`, then `sub`).
    pub user_claim: Option<String>,
    /// Bearer exchange: the API its access tokens are for (default: the
    /// client's only API).
    pub api: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

impl TrustedIssuer {
    /// Checks names, and that published keys are a JWKS.
    pub fn validate(&self) -> Result<(), CoreError> {
        crate::model::validate_token("trusted issuer id", &self.id)?;
        if self.purpose == TrustPurpose::AccessTokens {
            if !matches!(self.keys, TrustKeys::Jwks { .. }) {
                return Err(CoreError::invalid(
                    "keys",
                    "published incumbent keys come as a JWKS (its public keys)",
                ));
            }
            return Ok(());
        }
        if self.client_claim.trim().is_empty() {
            return Err(CoreError::invalid("client claim", "must not be empty"));
        }
        Ok(())
    }
}

/// Refresh tokens (tollgate's refresh JWTs, incumbents' tokens) of a client
/// issued before `not_before` are refused: revocation by client of tokens
/// tollgate never saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshCutoff {
    /// Environment.
    pub env: String,
    /// The client.
    pub client_id: String,
    /// Unix seconds.
    pub not_before: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_parse_and_keys_never_debug_print() {
        assert_eq!(
            "device-credentials".parse::<TrustPurpose>().ok(),
            Some(TrustPurpose::DeviceCredentials)
        );
        assert!("nope".parse::<TrustPurpose>().is_err());
        for p in TrustPurpose::ALL {
            assert_eq!(p.as_str().parse::<TrustPurpose>().ok(), Some(p));
        }
        assert_eq!(
            TrustPurpose::for_contract("header-login"),
            Some(TrustPurpose::HeaderLogin)
        );
        assert_eq!(TrustPurpose::for_contract("access-tokens"), None);
        let k = TrustKeys::Hs256 {
            sealed: "c2VjcmV0".into(),
        };
        assert_eq!(format!("{k:?}"), "TrustKeys(hs256)");
    }
}
