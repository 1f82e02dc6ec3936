//! Obligations: reuse and issuance limits set on an API or a client.

use crate::error::CoreError;
use crate::model::{Obligation, ObligationTarget};
use crate::service::Tollgate;

impl Tollgate {
    /// Sets (or clears) the obligation of an API or of a client.
    pub async fn set_obligation(
        &self,
        env: &str,
        target: ObligationTarget<'_>,
        obligation: Option<Obligation>,
    ) -> Result<(), CoreError> {
        self.require_env(env).await?;
        let (kind, name) = match target {
            ObligationTarget::Api(a) => ("api", a),
            ObligationTarget::Client(c) => ("client", c),
        };
        let existed = self
            .store
            .set_obligation(env, target, obligation.as_ref())
            .await?;
        CoreError::found(existed, kind, name)
    }
}
