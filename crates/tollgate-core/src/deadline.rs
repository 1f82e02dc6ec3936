//! A deadline on every store call: the store port wrapped so that a call
//! that has not answered within the deadline fails with
//! [`StoreError::Timeout`], which grants turn into
//! [`crate::GrantError::Unavailable`] and every contract into its own 503
//! with `Retry-After`. Why: a hung database (a lock held for 45 s) used to
//! hang logins for as long; clients and load balancers cope far better with
//! a prompt 503 than with a request that never ends.
//!
//! A timed-out write may still commit in the database. Every write the hot
//! path makes is safe to retry: a login makes a new session, a rotation
//! retried within the leeway gets the same successor, a count of issuances
//! is one too many at worst.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::feed::ChangeFeed;
use crate::incumbent::{RefreshCutoff, TrustedIssuer};
use crate::model::{
    Api, ApiKey, AuditEntry, Client, Environment, Obligation, ObligationTarget, RefreshFamily,
    RefreshJwtRecord, SecretRecord, SigningKeyRecord, User,
};
use crate::package_request::{PackageRequest, ProviderSession, RequestStatus};
use crate::partner::{
    Handover, Invitation, Partner, PartnerAccount, PartnerClient, PartnerTotp, PortalSession,
};
use crate::store::Store;
use crate::usage::UsageDay;

/// A [`Store`] whose every call ends within `deadline`.
#[derive(Clone)]
pub struct DeadlineStore {
    inner: Arc<dyn Store>,
    deadline: Duration,
}

impl std::fmt::Debug for DeadlineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadlineStore")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl DeadlineStore {
    /// Wraps `inner` so that each call ends within `deadline`.
    pub fn new(inner: Arc<dyn Store>, deadline: Duration) -> Self {
        Self { inner, deadline }
    }

    async fn within<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        within(self.deadline, op, call).await
    }
}

/// `call`, or [`StoreError::Timeout`] once `deadline` has passed.
async fn within<T>(
    deadline: Duration,
    op: &'static str,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(deadline, call).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::Timeout {
            op,
            after_ms: u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
        }),
    }
}

#[async_trait]
impl Store for DeadlineStore {
    async fn change_feed(&self) -> Option<ChangeFeed> {
        // No deadline: subscribing waits for no database (a push channel
        // connects in the background).
        self.inner.change_feed().await
    }

    async fn count_auth_failure(
        &self,
        key: &str,
        now: i64,
        window: i64,
    ) -> Result<u64, StoreError> {
        self.within(
            "count_auth_failure",
            self.inner.count_auth_failure(key, now, window),
        )
        .await
    }

    async fn refund_issuance(
        &self,
        env: &str,
        client_id: &str,
        window_start: i64,
    ) -> Result<(), StoreError> {
        self.within(
            "refund_issuance",
            self.inner.refund_issuance(env, client_id, window_start),
        )
        .await
    }

    async fn clear_auth_failures(&self, key: &str) -> Result<(), StoreError> {
        self.within("clear_auth_failures", self.inner.clear_auth_failures(key))
            .await
    }

    async fn revision(&self) -> Result<i64, StoreError> {
        self.within("revision", self.inner.revision()).await
    }

    async fn last_alive(&self) -> Result<Option<i64>, StoreError> {
        self.within("last_alive", self.inner.last_alive()).await
    }

    async fn mark_alive(&self, now: i64) -> Result<(), StoreError> {
        self.within("mark_alive", self.inner.mark_alive(now)).await
    }

    async fn create_environment(
        &self,
        env: &Environment,
        first_key: &SigningKeyRecord,
    ) -> Result<(), StoreError> {
        self.within(
            "create_environment",
            self.inner.create_environment(env, first_key),
        )
        .await
    }

    async fn update_environment(&self, env: &Environment) -> Result<bool, StoreError> {
        self.within("update_environment", self.inner.update_environment(env))
            .await
    }

    async fn list_environments(&self) -> Result<Vec<Environment>, StoreError> {
        self.within("list_environments", self.inner.list_environments())
            .await
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        self.within("insert_signing_key", self.inner.insert_signing_key(key))
            .await
    }

    async fn insert_signing_key_unless_newer(
        &self,
        key: &SigningKeyRecord,
        cutoff: i64,
    ) -> Result<bool, StoreError> {
        self.within(
            "insert_signing_key_unless_newer",
            self.inner.insert_signing_key_unless_newer(key, cutoff),
        )
        .await
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.within("list_signing_keys", self.inner.list_signing_keys())
            .await
    }

    async fn create_api(&self, api: &Api) -> Result<(), StoreError> {
        self.within("create_api", self.inner.create_api(api)).await
    }

    async fn list_apis(&self) -> Result<Vec<Api>, StoreError> {
        self.within("list_apis", self.inner.list_apis()).await
    }

    async fn update_api(&self, api: &Api) -> Result<bool, StoreError> {
        self.within("update_api", self.inner.update_api(api)).await
    }

    async fn delete_api(&self, env: &str, identifier: &str) -> Result<bool, StoreError> {
        self.within("delete_api", self.inner.delete_api(env, identifier))
            .await
    }

    async fn create_client(&self, client: &Client) -> Result<(), StoreError> {
        self.within("create_client", self.inner.create_client(client))
            .await
    }

    async fn get_client(&self, env: &str, client_id: &str) -> Result<Option<Client>, StoreError> {
        self.within("get_client", self.inner.get_client(env, client_id))
            .await
    }

    async fn list_clients(&self, env: &str) -> Result<Vec<Client>, StoreError> {
        self.within("list_clients", self.inner.list_clients(env))
            .await
    }

    async fn write_if_unchanged(&self, w: &crate::store::Guarded) -> Result<bool, StoreError> {
        self.within("write_if_unchanged", self.inner.write_if_unchanged(w))
            .await
    }

    async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
        self.within("update_client", self.inner.update_client(client))
            .await
    }

    async fn set_client_enabled(
        &self,
        env: &str,
        client_id: &str,
        enabled: bool,
    ) -> Result<bool, StoreError> {
        self.within(
            "set_client_enabled",
            self.inner.set_client_enabled(env, client_id, enabled),
        )
        .await
    }

    async fn swap_client_secrets(
        &self,
        env: &str,
        client_id: &str,
        expected: &[SecretRecord],
        new: &[SecretRecord],
    ) -> Result<bool, StoreError> {
        self.within(
            "swap_client_secrets",
            self.inner
                .swap_client_secrets(env, client_id, expected, new),
        )
        .await
    }

    async fn revoke_token(&self, env: &str, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        self.within(
            "revoke_token",
            self.inner.revoke_token(env, jti, expires_at),
        )
        .await
    }

    async fn is_token_revoked(&self, env: &str, jti: &str) -> Result<bool, StoreError> {
        self.within("is_token_revoked", self.inner.is_token_revoked(env, jti))
            .await
    }

    async fn list_revoked_tokens(&self, now: i64) -> Result<Vec<(String, String)>, StoreError> {
        self.within("list_revoked_tokens", self.inner.list_revoked_tokens(now))
            .await
    }

    async fn purge_expired(&self, now: i64) -> Result<Vec<(&'static str, u64)>, StoreError> {
        self.within("purge_expired", self.inner.purge_expired(now))
            .await
    }

    async fn insert_refresh_jwt(&self, rec: &RefreshJwtRecord) -> Result<(), StoreError> {
        self.within("insert_refresh_jwt", self.inner.insert_refresh_jwt(rec))
            .await
    }

    async fn get_refresh_jwt(
        &self,
        env: &str,
        jti: &str,
    ) -> Result<Option<RefreshJwtRecord>, StoreError> {
        self.within("get_refresh_jwt", self.inner.get_refresh_jwt(env, jti))
            .await
    }

    async fn list_refresh_jwts(&self, env: &str) -> Result<Vec<RefreshJwtRecord>, StoreError> {
        self.within("list_refresh_jwts", self.inner.list_refresh_jwts(env))
            .await
    }

    async fn revoke_refresh_jwt(&self, env: &str, jti: &str, now: i64) -> Result<bool, StoreError> {
        self.within(
            "revoke_refresh_jwt",
            self.inner.revoke_refresh_jwt(env, jti, now),
        )
        .await
    }

    async fn set_obligation(
        &self,
        env: &str,
        target: ObligationTarget<'_>,
        obligation: Option<&Obligation>,
    ) -> Result<bool, StoreError> {
        self.within(
            "set_obligation",
            self.inner.set_obligation(env, target, obligation),
        )
        .await
    }

    async fn count_issuance(
        &self,
        env: &str,
        client_id: &str,
        window_start: i64,
    ) -> Result<u64, StoreError> {
        self.within(
            "count_issuance",
            self.inner.count_issuance(env, client_id, window_start),
        )
        .await
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        self.within("create_user", self.inner.create_user(user))
            .await
    }

    async fn get_user(&self, env: &str, username: &str) -> Result<Option<User>, StoreError> {
        self.within("get_user", self.inner.get_user(env, username))
            .await
    }

    async fn find_users_folded(&self, env: &str, username: &str) -> Result<Vec<User>, StoreError> {
        self.within(
            "find_users_folded",
            self.inner.find_users_folded(env, username),
        )
        .await
    }

    async fn list_users(
        &self,
        env: &str,
        client_id: Option<&str>,
    ) -> Result<Vec<User>, StoreError> {
        self.within("list_users", self.inner.list_users(env, client_id))
            .await
    }

    async fn update_user(
        &self,
        user: &User,
        end_sessions: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.within("update_user", self.inner.update_user(user, end_sessions))
            .await
    }

    async fn delete_user(&self, env: &str, username: &str, now: i64) -> Result<bool, StoreError> {
        self.within("delete_user", self.inner.delete_user(env, username, now))
            .await
    }

    async fn insert_refresh_family(&self, rec: &RefreshFamily) -> Result<(), StoreError> {
        self.within(
            "insert_refresh_family",
            self.inner.insert_refresh_family(rec),
        )
        .await
    }

    async fn get_refresh_family(
        &self,
        env: &str,
        family: &str,
    ) -> Result<Option<RefreshFamily>, StoreError> {
        self.within(
            "get_refresh_family",
            self.inner.get_refresh_family(env, family),
        )
        .await
    }

    async fn rotate_refresh_family(
        &self,
        presented: &str,
        next: &RefreshFamily,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.within(
            "rotate_refresh_family",
            self.inner.rotate_refresh_family(presented, next, now),
        )
        .await
    }

    async fn revoke_refresh_family(
        &self,
        env: &str,
        family: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.within(
            "revoke_refresh_family",
            self.inner.revoke_refresh_family(env, family, now),
        )
        .await
    }

    async fn delete_client(
        &self,
        env: &str,
        client_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.within(
            "delete_client",
            self.inner.delete_client(env, client_id, now),
        )
        .await
    }

    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.within("insert_api_key", self.inner.insert_api_key(key))
            .await
    }

    async fn get_api_key(&self, env: &str, id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.within("get_api_key", self.inner.get_api_key(env, id))
            .await
    }

    async fn list_api_keys(
        &self,
        env: &str,
        client_id: Option<&str>,
    ) -> Result<Vec<ApiKey>, StoreError> {
        self.within("list_api_keys", self.inner.list_api_keys(env, client_id))
            .await
    }

    async fn revoke_api_key(&self, env: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        self.within("revoke_api_key", self.inner.revoke_api_key(env, id, now))
            .await
    }

    async fn rotate_api_key(
        &self,
        old: &ApiKey,
        until: i64,
        new: &ApiKey,
    ) -> Result<bool, StoreError> {
        self.within("rotate_api_key", self.inner.rotate_api_key(old, until, new))
            .await
    }

    async fn insert_trusted_issuer(&self, issuer: &TrustedIssuer) -> Result<(), StoreError> {
        self.within(
            "insert_trusted_issuer",
            self.inner.insert_trusted_issuer(issuer),
        )
        .await
    }

    async fn list_trusted_issuers(&self) -> Result<Vec<TrustedIssuer>, StoreError> {
        self.within("list_trusted_issuers", self.inner.list_trusted_issuers())
            .await
    }

    async fn delete_trusted_issuer(&self, env: &str, id: &str) -> Result<bool, StoreError> {
        self.within(
            "delete_trusted_issuer",
            self.inner.delete_trusted_issuer(env, id),
        )
        .await
    }

    async fn revoke_client_refresh_tokens(
        &self,
        env: &str,
        client_id: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.within(
            "revoke_client_refresh_tokens",
            self.inner.revoke_client_refresh_tokens(env, client_id, now),
        )
        .await
    }

    async fn list_refresh_cutoffs(&self) -> Result<Vec<RefreshCutoff>, StoreError> {
        self.within("list_refresh_cutoffs", self.inner.list_refresh_cutoffs())
            .await
    }

    async fn insert_refresh_family_if_absent(
        &self,
        rec: &RefreshFamily,
    ) -> Result<bool, StoreError> {
        self.within(
            "insert_refresh_family_if_absent",
            self.inner.insert_refresh_family_if_absent(rec),
        )
        .await
    }

    async fn import_users(&self, users: &[User]) -> Result<(), StoreError> {
        // One transaction: a timeout leaves nothing half-imported.
        self.within("import_users", self.inner.import_users(users))
            .await
    }

    async fn upgrade_user_password(
        &self,
        env: &str,
        username: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        self.within(
            "upgrade_user_password",
            self.inner.upgrade_user_password(env, username, old, new),
        )
        .await
    }

    async fn purge_audit(&self, before: i64) -> Result<u64, StoreError> {
        self.within("purge_audit", self.inner.purge_audit(before))
            .await
    }

    async fn insert_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.within("insert_audit", self.inner.insert_audit(entry))
            .await
    }

    async fn list_audit(
        &self,
        since: i64,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.within("list_audit", self.inner.list_audit(since, after, limit))
            .await
    }

    async fn insert_partner(&self, partner: &Partner) -> Result<(), StoreError> {
        self.within("insert_partner", self.inner.insert_partner(partner))
            .await
    }

    async fn get_partner(&self, id: &str) -> Result<Option<Partner>, StoreError> {
        self.within("get_partner", self.inner.get_partner(id)).await
    }

    async fn list_partners(&self) -> Result<Vec<Partner>, StoreError> {
        self.within("list_partners", self.inner.list_partners())
            .await
    }

    async fn update_partner(&self, partner: &Partner) -> Result<bool, StoreError> {
        self.within("update_partner", self.inner.update_partner(partner))
            .await
    }

    async fn set_partner_enabled(&self, id: &str, enabled: bool) -> Result<bool, StoreError> {
        self.within(
            "set_partner_enabled",
            self.inner.set_partner_enabled(id, enabled),
        )
        .await
    }

    async fn insert_partner_client(&self, owned: &PartnerClient) -> Result<(), StoreError> {
        self.within(
            "insert_partner_client",
            self.inner.insert_partner_client(owned),
        )
        .await
    }

    async fn list_partner_clients(&self, partner: &str) -> Result<Vec<PartnerClient>, StoreError> {
        self.within(
            "list_partner_clients",
            self.inner.list_partner_clients(partner),
        )
        .await
    }

    async fn insert_invitation(&self, invitation: &Invitation) -> Result<(), StoreError> {
        self.within(
            "insert_invitation",
            self.inner.insert_invitation(invitation),
        )
        .await
    }

    async fn get_invitation(&self, digest: &str) -> Result<Option<Invitation>, StoreError> {
        self.within("get_invitation", self.inner.get_invitation(digest))
            .await
    }

    async fn accept_invitation(
        &self,
        digest: &str,
        now: i64,
        account: &PartnerAccount,
    ) -> Result<bool, StoreError> {
        self.within(
            "accept_invitation",
            self.inner.accept_invitation(digest, now, account),
        )
        .await
    }

    async fn get_partner_account(&self, login: &str) -> Result<Option<PartnerAccount>, StoreError> {
        self.within("get_partner_account", self.inner.get_partner_account(login))
            .await
    }

    async fn partner_login_failed(
        &self,
        login: &str,
        now: i64,
        max_failures: u32,
        lock_secs: i64,
    ) -> Result<(), StoreError> {
        self.within(
            "partner_login_failed",
            self.inner
                .partner_login_failed(login, now, max_failures, lock_secs),
        )
        .await
    }

    async fn partner_login_succeeded(&self, login: &str) -> Result<(), StoreError> {
        self.within(
            "partner_login_succeeded",
            self.inner.partner_login_succeeded(login),
        )
        .await
    }

    async fn insert_portal_session(&self, session: &PortalSession) -> Result<(), StoreError> {
        self.within(
            "insert_portal_session",
            self.inner.insert_portal_session(session),
        )
        .await
    }

    async fn get_portal_session(&self, digest: &str) -> Result<Option<PortalSession>, StoreError> {
        self.within("get_portal_session", self.inner.get_portal_session(digest))
            .await
    }

    async fn delete_portal_session(&self, digest: &str) -> Result<(), StoreError> {
        self.within(
            "delete_portal_session",
            self.inner.delete_portal_session(digest),
        )
        .await
    }

    async fn list_partner_accounts(
        &self,
        partner: &str,
    ) -> Result<Vec<PartnerAccount>, StoreError> {
        self.within(
            "list_partner_accounts",
            self.inner.list_partner_accounts(partner),
        )
        .await
    }

    async fn insert_package_request(&self, request: &PackageRequest) -> Result<(), StoreError> {
        self.within(
            "insert_package_request",
            self.inner.insert_package_request(request),
        )
        .await
    }

    async fn get_package_request(&self, id: &str) -> Result<Option<PackageRequest>, StoreError> {
        self.within("get_package_request", self.inner.get_package_request(id))
            .await
    }

    async fn list_package_requests(
        &self,
        partner: Option<&str>,
    ) -> Result<Vec<PackageRequest>, StoreError> {
        self.within(
            "list_package_requests",
            self.inner.list_package_requests(partner),
        )
        .await
    }

    async fn decide_package_request(
        &self,
        id: &str,
        status: RequestStatus,
        at: i64,
        by: &str,
    ) -> Result<bool, StoreError> {
        self.within(
            "decide_package_request",
            self.inner.decide_package_request(id, status, at, by),
        )
        .await
    }

    async fn insert_provider_session(&self, session: &ProviderSession) -> Result<(), StoreError> {
        self.within(
            "insert_provider_session",
            self.inner.insert_provider_session(session),
        )
        .await
    }

    async fn get_provider_session(
        &self,
        digest: &str,
    ) -> Result<Option<ProviderSession>, StoreError> {
        self.within(
            "get_provider_session",
            self.inner.get_provider_session(digest),
        )
        .await
    }

    async fn delete_provider_session(&self, digest: &str) -> Result<(), StoreError> {
        self.within(
            "delete_provider_session",
            self.inner.delete_provider_session(digest),
        )
        .await
    }

    async fn put_partner_totp(&self, totp: &PartnerTotp) -> Result<(), StoreError> {
        self.within("put_partner_totp", self.inner.put_partner_totp(totp))
            .await
    }

    async fn get_partner_totp(&self, login: &str) -> Result<Option<PartnerTotp>, StoreError> {
        self.within("get_partner_totp", self.inner.get_partner_totp(login))
            .await
    }

    async fn use_partner_totp_step(
        &self,
        login: &str,
        step: i64,
        confirm: bool,
    ) -> Result<bool, StoreError> {
        self.within(
            "use_partner_totp_step",
            self.inner.use_partner_totp_step(login, step, confirm),
        )
        .await
    }

    async fn add_usage(&self, deltas: &[UsageDay]) -> Result<(), StoreError> {
        self.within("add_usage", self.inner.add_usage(deltas)).await
    }

    async fn list_usage(
        &self,
        env: &str,
        client_id: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<UsageDay>, StoreError> {
        self.within(
            "list_usage",
            self.inner.list_usage(env, client_id, from, to),
        )
        .await
    }

    async fn delete_partner_totp(&self, login: &str) -> Result<(), StoreError> {
        self.within("delete_partner_totp", self.inner.delete_partner_totp(login))
            .await
    }

    async fn insert_handover(&self, handover: &Handover) -> Result<(), StoreError> {
        self.within("insert_handover", self.inner.insert_handover(handover))
            .await
    }

    async fn get_handover(&self, digest: &str) -> Result<Option<Handover>, StoreError> {
        self.within("get_handover", self.inner.get_handover(digest))
            .await
    }

    async fn take_handover(&self, digest: &str) -> Result<Option<Handover>, StoreError> {
        self.within("take_handover", self.inner.take_handover(digest))
            .await
    }

    async fn get_issuance(
        &self,
        env: &str,
        client_id: &str,
    ) -> Result<Option<(i64, u64)>, StoreError> {
        self.within("get_issuance", self.inner.get_issuance(env, client_id))
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_call_that_does_not_answer_in_time_is_a_timeout() {
        let d = Duration::from_millis(50);
        assert_eq!(within(d, "revision", async { Ok(7) }).await.unwrap(), 7);
        let started = std::time::Instant::now();
        let err = within(
            d,
            "revision",
            std::future::pending::<Result<(), StoreError>>(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Timeout {
                    op: "revision",
                    after_ms: 50
                }
            ),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        // The store's own errors pass through unchanged.
        let own = within(d, "get_client", async {
            Err::<(), _>(StoreError::Backend("down".into()))
        })
        .await
        .unwrap_err();
        assert!(matches!(own, StoreError::Backend(_)));
    }
}
