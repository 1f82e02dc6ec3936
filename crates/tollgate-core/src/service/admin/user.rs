//! Users of a client (accounts, devices) for the user contracts.

use std::collections::BTreeSet;

use secrecy::ExposeSecret;

use crate::crypto::secret::{self, md5_hex};
use crate::error::CoreError;
use crate::model::User;
use crate::service::requests::UserPassword;
use crate::service::{Tollgate, conflict};
use crate::time::now;

pub(crate) fn hash_password(pw: &UserPassword) -> Result<String, CoreError> {
    let md5 = match pw {
        UserPassword::Plain(p) => {
            if p.expose_secret().is_empty() {
                return Err(CoreError::invalid("password", "must not be empty"));
            }
            md5_hex(p.expose_secret())
        }
        UserPassword::Md5Hex(h) => {
            let h = h.expose_secret().trim().to_ascii_lowercase();
            if h.len() != 32 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(CoreError::invalid(
                    "password-md5",
                    "must be 32 hexadecimal digits",
                ));
            }
            h
        }
    };
    secret::hash_argon2(md5.as_bytes())
}

impl Tollgate {
    /// Creates a user of client `client_id`, without roles of its own.
    pub async fn create_user(
        &self,
        env: &str,
        client_id: &str,
        username: &str,
        password: UserPassword,
    ) -> Result<User, CoreError> {
        self.create_user_with_roles(env, client_id, username, password, BTreeSet::new())
            .await
    }

    /// Creates a user of client `client_id` with its roles (Spring
    /// authorities; empty: its client's count), in one write.
    pub async fn create_user_with_roles(
        &self,
        env: &str,
        client_id: &str,
        username: &str,
        password: UserPassword,
        roles: BTreeSet<String>,
    ) -> Result<User, CoreError> {
        self.require_env(env).await?;
        self.get_client(env, client_id).await?;
        let user = User {
            env: env.to_string(),
            client_id: client_id.to_string(),
            username: username.to_string(),
            password: hash_password(&password)?,
            roles,
            enabled: true,
            created_at: now(),
        };
        user.validate()?;
        self.store
            .create_user(&user)
            .await
            .map_err(|e| conflict(e, "user", username))?;
        Ok(user)
    }

    /// Replaces a user's roles (Spring authorities; empty: its client's).
    pub async fn set_user_roles(
        &self,
        env: &str,
        username: &str,
        roles: BTreeSet<String>,
    ) -> Result<User, CoreError> {
        let mut user = self
            .store
            .get_user(env, username)
            .await?
            .ok_or_else(|| CoreError::not_found("user", username))?;
        user.roles = roles;
        user.validate()?;
        let existed = self.store.update_user(&user, None).await?;
        CoreError::found(existed, "user", username)?;
        Ok(user)
    }

    /// One user.
    pub async fn get_user(&self, env: &str, username: &str) -> Result<User, CoreError> {
        self.store
            .get_user(env, username)
            .await?
            .ok_or_else(|| CoreError::not_found("user", username))
    }

    /// Users of `env`, optionally of one client.
    pub async fn list_users(
        &self,
        env: &str,
        client_id: Option<&str>,
    ) -> Result<Vec<User>, CoreError> {
        self.require_env(env).await?;
        Ok(self.store.list_users(env, client_id).await?)
    }

    pub(crate) async fn change_user(
        &self,
        env: &str,
        username: &str,
        end_sessions: bool,
        change: impl FnOnce(&mut User) -> Result<(), CoreError>,
    ) -> Result<User, CoreError> {
        let mut user = self
            .store
            .get_user(env, username)
            .await?
            .ok_or_else(|| CoreError::not_found("user", username))?;
        change(&mut user)?;
        let existed = self
            .store
            .update_user(&user, end_sessions.then(now))
            .await?;
        CoreError::found(existed, "user", username)?;
        Ok(user)
    }

    /// Enables or disables a user (a disabled user can neither log in nor refresh).
    pub async fn set_user_enabled(
        &self,
        env: &str,
        username: &str,
        enabled: bool,
    ) -> Result<User, CoreError> {
        // A disabled user's refreshes are refused while disabled; enabling
        // it again lets its sessions go on (a suspension, not a reset).
        self.change_user(env, username, false, |u| {
            u.enabled = enabled;
            Ok(())
        })
        .await
    }

    /// Sets a user's password and, unless `keep_sessions`, ends the user's
    /// sessions (whoever learnt the old password may hold one).
    pub async fn set_user_password(
        &self,
        env: &str,
        username: &str,
        password: UserPassword,
        keep_sessions: bool,
    ) -> Result<User, CoreError> {
        let hash = hash_password(&password)?;
        self.change_user(env, username, !keep_sessions, |u| {
            u.password = hash;
            Ok(())
        })
        .await
    }

    /// Deletes a user and revokes its sessions.
    pub async fn delete_user(&self, env: &str, username: &str) -> Result<(), CoreError> {
        let existed = self.store.delete_user(env, username, now()).await?;
        CoreError::found(existed, "user", username)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn imported_md5_must_be_hex() {
        assert!(hash_password(&UserPassword::Md5Hex(SecretString::from("xyz"))).is_err());
        assert!(hash_password(&UserPassword::Plain(SecretString::from(""))).is_err());
        assert!(hash_password(&UserPassword::Md5Hex(SecretString::from(md5_hex("pw")))).is_ok());
    }
}
