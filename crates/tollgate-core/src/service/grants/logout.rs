//! Ending a session.

use crate::error::GrantError;
use crate::service::Tollgate;
use crate::service::grants::session::unavailable;
use crate::service::requests::SessionProfile;
use crate::service::state::EnvRuntime;
use crate::time::now;

impl Tollgate {
    /// Ends the session of `refresh_token` (its family). Access tokens
    /// already issued live until they expire. An invalid token is not an
    /// error (there is nothing to end).
    pub async fn logout(
        &self,
        env: &EnvRuntime,
        refresh_token: &str,
        profile: &SessionProfile,
    ) -> Result<bool, GrantError> {
        let Ok(claims) = self.read_refresh_token(refresh_token) else {
            return Ok(false);
        };
        // Only the contract the session was born in can end it.
        if !claims.born_in(&env.env.name, profile.contract) {
            return Ok(false);
        }
        // Claims come from the family's row, so a token naming its contract
        // needs no second look; an older token is judged by the row.
        if claims.ctr.is_none() {
            let family = self
                .store
                .get_refresh_family(&env.env.name, &claims.fam)
                .await
                .map_err(unavailable)?;
            if family
                .is_none_or(|f| f.contract != profile.contract || f.client_id != claims.client_id)
            {
                return Ok(false);
            }
        }
        self.forget_family(&env.env.name, &claims.fam);
        self.store
            .revoke_refresh_family(&env.env.name, &claims.fam, now())
            .await
            .map_err(unavailable)
    }
}
