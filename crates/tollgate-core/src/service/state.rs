//! What the hot path reads: one immutable snapshot of every environment
//! (issuer, parsed signing keys with their schedule, pre-serialized JWKS,
//! APIs, and what an [`EnvExtension`] derived from it: the HTTP layer's
//! per-environment settings and dispatch table), swapped whole when the
//! store changes.

use std::any::Any;
use std::collections::{HashMap, HashSet};
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
    /// What the installed [`EnvExtension`] derived from this environment.
    pub(crate) ext: Option<Arc<dyn Any + Send + Sync>>,
    /// The deny list's live token ids, when the service keeps it in memory
    /// ([`crate::Tollgate::keep_deny_list`]); empty otherwise.
    pub(crate) denied: HashSet<String>,
}

/// Something a caller derives from each environment once per snapshot, so
/// that requests read it from memory instead of resolving it each time.
/// The HTTP layer installs one: the contracts' settings with the
/// environment's overrides applied, and its dispatch table. The core knows
/// nothing of what it holds.
pub trait EnvExtension: Send + Sync + std::fmt::Debug + 'static {
    /// Derives the value for `env` (called at each snapshot rebuild).
    fn derive(&self, env: &Environment) -> Arc<dyn Any + Send + Sync>;
    /// The longest access-token lifetime `env`'s settings can give a token
    /// (so that a retired signing key stays published long enough).
    fn longest_access_lifetime(&self, env: &Environment) -> u64;
}

impl EnvRuntime {
    /// `{"keys":[...]}`, serialized once per snapshot.
    pub fn jwks_json(&self) -> &str {
        &self.jwks
    }

    /// What the installed [`EnvExtension`] derived for this environment,
    /// if it is a `T`.
    pub fn ext<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.ext.as_deref().and_then(|x| x.downcast_ref::<T>())
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

    /// Whether access token `jti` is on the deny list as of the last sync,
    /// from memory; always false unless the service keeps the deny list
    /// ([`crate::Tollgate::keep_deny_list`]).
    pub fn is_denied(&self, jti: &str) -> bool {
        self.denied.contains(jti)
    }

    /// The algorithms of the keys it publishes, oldest key first.
    pub fn published_algs(&self) -> Vec<crate::model::Alg> {
        self.keys.iter().map(|(_, k)| k.alg()).collect()
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
