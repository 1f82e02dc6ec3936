//! What the hot path reads: one immutable snapshot of every environment
//! (issuer, parsed signing keys with their schedule, pre-serialized JWKS,
//! APIs), swapped whole when the store changes.

use std::collections::HashMap;
use std::sync::Arc;

use crate::crypto::keyring;
use crate::crypto::keys::SigningKey;
use crate::crypto::trust::TrustVerifier;
use crate::incumbent::TrustPurpose;
use crate::model::{Api, Environment, KeyState};
use crate::time::now;

/// One environment as the hot path sees it.
#[derive(Debug)]
pub struct EnvRuntime {
    /// The stored environment.
    pub env: Environment,
    /// Effective issuer URL.
    pub issuer: String,
    /// Path prefix under which it answers (`""` for the default environment).
    pub path_prefix: String,
    /// Published keys with their schedule, oldest first.
    pub(crate) keys: Vec<(keyring::Scheduled, Arc<SigningKey>)>,
    pub(crate) apis: HashMap<String, Arc<Api>>,
    pub(crate) jwks: String,
    /// Incumbent issuers whose refresh tokens are accepted here.
    pub(crate) trusted: Vec<Arc<TrustVerifier>>,
    /// Refresh tokens of these clients issued before the time are refused.
    pub(crate) cutoffs: HashMap<String, i64>,
}

impl EnvRuntime {
    /// `{"keys":[...]}`, serialized once per snapshot.
    pub fn jwks_json(&self) -> &str {
        &self.jwks
    }

    /// The API with this identifier.
    pub fn api(&self, identifier: &str) -> Option<&Arc<Api>> {
        self.apis.get(identifier)
    }

    /// The trusted incumbent issuers for `purpose`.
    pub fn trusted(&self, purpose: TrustPurpose) -> impl Iterator<Item = &Arc<TrustVerifier>> {
        self.trusted
            .iter()
            .filter(move |t| t.record().purpose == purpose)
    }

    /// Whether a refresh token of `client_id` issued at `iat` (unknown:
    /// `None`) falls before the client's cut-off.
    pub fn before_cutoff(&self, client_id: &str, iat: Option<i64>) -> bool {
        self.cutoffs
            .get(client_id)
            .is_some_and(|c| iat.is_none_or(|i| i < *c))
    }

    /// The key that signs new tokens now: the one the schedule calls active
    /// (the newest already activated).
    pub fn signing_key(&self) -> Option<&Arc<SigningKey>> {
        let t = now();
        self.keys
            .iter()
            .rev()
            .find(|(sched, _)| sched.state(t) == KeyState::Active)
            .map(|(_, k)| k)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) envs: HashMap<String, Arc<EnvRuntime>>,
    pub(crate) hosts: HashMap<String, String>,
    /// When a retired key leaves a JWKS, the snapshot must be rebuilt.
    pub(crate) valid_until: Option<i64>,
}
