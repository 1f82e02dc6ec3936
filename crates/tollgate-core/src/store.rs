//! The storage port. The core persists through this trait only; backends
//! (SQLite, PostgreSQL) live in `tollgate-store` and must behave the same, which
//! the integration suite checks by running over each.
//!
//! Every mutation bumps a store-wide *revision*; servers poll it and drop their
//! caches when it moves, so a change made by another process (the CLI, another
//! instance behind a load balancer) takes effect everywhere. A store that can
//! also push changes offers a [`ChangeFeed`] ([`Store::change_feed`]), so
//! servers sync at once instead of at their next poll.

use async_trait::async_trait;

use crate::StoreError;
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
use crate::usage::UsageDay;

/// A write made only if its record is still exactly as the caller read it
/// (the admin API's `If-Match`): the store compares and writes in one
/// transaction, so of two writers holding the same version one wins and the
/// other is told the record changed.
#[derive(Clone)]
// Made once per admin write and passed by reference: the size of the
// largest variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Guarded {
    /// [`Store::update_environment`] from `expected`.
    UpdateEnvironment {
        /// As read.
        expected: Environment,
        /// As to be written.
        new: Environment,
    },
    /// [`Store::update_api`] from `expected`.
    UpdateApi {
        /// As read.
        expected: Api,
        /// As to be written.
        new: Api,
    },
    /// [`Store::delete_api`] of `expected`.
    DeleteApi {
        /// As read.
        expected: Api,
    },
    /// [`Store::update_client`] from `expected`.
    UpdateClient {
        /// As read.
        expected: Client,
        /// As to be written.
        new: Client,
    },
    /// [`Store::delete_client`] of `expected`.
    DeleteClient {
        /// As read.
        expected: Client,
        /// Unix seconds (its sessions' revocation).
        now: i64,
    },
    /// [`Store::delete_user`] of `expected`.
    DeleteUser {
        /// As read.
        expected: User,
        /// Unix seconds (its sessions' revocation).
        now: i64,
    },
    /// [`Store::update_partner`] from `expected` (name and offers; the
    /// enabled flag compared too).
    UpdatePartner {
        /// As read.
        expected: Partner,
        /// As to be written.
        new: Partner,
    },
}

// Records hold secrets' hashes: the variant's name only.
impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Guarded::UpdateEnvironment { .. } => "Guarded::UpdateEnvironment",
            Guarded::UpdateApi { .. } => "Guarded::UpdateApi",
            Guarded::DeleteApi { .. } => "Guarded::DeleteApi",
            Guarded::UpdateClient { .. } => "Guarded::UpdateClient",
            Guarded::DeleteClient { .. } => "Guarded::DeleteClient",
            Guarded::DeleteUser { .. } => "Guarded::DeleteUser",
            Guarded::UpdatePartner { .. } => "Guarded::UpdatePartner",
        })
    }
}

/// Persistence for tollgate's provisioned data.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A number that changes whenever anything the caches depend on changes.
    async fn revision(&self) -> Result<i64, StoreError>;

    /// A push of the revision's moves, as far as this store can push them
    /// (its [`ChangeFeed::reach`]); `None` (the default): the store cannot,
    /// and consumers rely on polling [`Store::revision`]. Each call gives a
    /// new subscriber. Never replaces the poll: a push can be lost (a dropped
    /// connection), a poll cannot.
    async fn change_feed(&self) -> Option<ChangeFeed> {
        None
    }

    /// The last time (Unix seconds) any instance recorded that the service
    /// was alive ([`Store::mark_alive`]); `None` before the first.
    async fn last_alive(&self) -> Result<Option<i64>, StoreError>;
    /// Records that the service is alive at `now`; never moves the mark
    /// back (instances' clocks differ by a little), bumps no revision.
    async fn mark_alive(&self, now: i64) -> Result<(), StoreError>;

    /// Creates an environment together with its first signing key, atomically
    /// (no instance ever sees an environment without a key); `Conflict` if
    /// the name exists.
    async fn create_environment(
        &self,
        env: &Environment,
        first_key: &SigningKeyRecord,
    ) -> Result<(), StoreError>;
    /// Replaces an environment's issuer, algorithm, hosts, dialect,
    /// contracts and setting overrides (name and creation time stay); false
    /// if it does not exist.
    async fn update_environment(&self, env: &Environment) -> Result<bool, StoreError>;
    /// All environments.
    async fn list_environments(&self) -> Result<Vec<Environment>, StoreError>;

    /// Adds a signing key.
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;
    /// Adds a signing key only if its environment has no key created after
    /// `cutoff`, atomically (instances rotating on a schedule at the same
    /// moment add one key, not several); false if one exists.
    async fn insert_signing_key_unless_newer(
        &self,
        key: &SigningKeyRecord,
        cutoff: i64,
    ) -> Result<bool, StoreError>;
    /// Signing keys of every environment.
    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;

    /// Creates an API; `Conflict` if (env, identifier) exists.
    async fn create_api(&self, api: &Api) -> Result<(), StoreError>;
    /// APIs of every environment.
    async fn list_apis(&self) -> Result<Vec<Api>, StoreError>;
    /// Replaces an API's permissions, packages, lifetime and obligation;
    /// false if it does not exist.
    async fn update_api(&self, api: &Api) -> Result<bool, StoreError>;
    /// Deletes an API; false if it did not exist.
    async fn delete_api(&self, env: &str, identifier: &str) -> Result<bool, StoreError>;

    /// Creates a client with its secrets; `Conflict` if (env, client_id) exists.
    async fn create_client(&self, client: &Client) -> Result<(), StoreError>;
    /// One client with its secrets, in one round trip.
    async fn get_client(&self, env: &str, client_id: &str) -> Result<Option<Client>, StoreError>;
    /// The clients of an environment.
    async fn list_clients(&self, env: &str) -> Result<Vec<Client>, StoreError>;
    /// Replaces a client's name, APIs, grant types, lifetime, extra claims,
    /// capabilities and obligation — never its secrets (changed only by
    /// [`Store::swap_client_secrets`]) or its enabled flag; false if it does
    /// not exist.
    async fn update_client(&self, client: &Client) -> Result<bool, StoreError>;
    /// Enables or disables a client; false if it did not exist.
    async fn set_client_enabled(
        &self,
        env: &str,
        client_id: &str,
        enabled: bool,
    ) -> Result<bool, StoreError>;
    /// Replaces a client's secrets if they are still `expected` (compare and
    /// set, so two concurrent rotations cannot both win); false otherwise.
    async fn swap_client_secrets(
        &self,
        env: &str,
        client_id: &str,
        expected: &[SecretRecord],
        new: &[SecretRecord],
    ) -> Result<bool, StoreError>;
    /// Puts a token id on the deny list until `expires_at` (idempotent).
    async fn revoke_token(&self, env: &str, jti: &str, expires_at: i64) -> Result<(), StoreError>;
    /// Whether a token id is on the deny list.
    async fn is_token_revoked(&self, env: &str, jti: &str) -> Result<bool, StoreError>;
    /// The deny list's entries (environment, token id) whose token has not
    /// expired at `now`: what a gate holds in memory.
    async fn list_revoked_tokens(&self, now: i64) -> Result<Vec<(String, String)>, StoreError>;
    /// Removes rows that expired before `now` (deny-list entries, refresh
    /// families, refresh-JWT records, API keys, portal sessions and
    /// invitations); returns how many per table.
    async fn purge_expired(&self, now: i64) -> Result<Vec<(&'static str, u64)>, StoreError>;
    /// Records an issued refresh JWT.
    async fn insert_refresh_jwt(&self, rec: &RefreshJwtRecord) -> Result<(), StoreError>;
    /// One refresh JWT record.
    async fn get_refresh_jwt(
        &self,
        env: &str,
        jti: &str,
    ) -> Result<Option<RefreshJwtRecord>, StoreError>;
    /// The refresh JWT records of an environment.
    async fn list_refresh_jwts(&self, env: &str) -> Result<Vec<RefreshJwtRecord>, StoreError>;
    /// Marks a refresh JWT revoked at `now`; false if unknown or revoked already.
    async fn revoke_refresh_jwt(&self, env: &str, jti: &str, now: i64) -> Result<bool, StoreError>;
    /// Sets (or with `None` clears) the obligation of an API or a client;
    /// false if it does not exist.
    async fn set_obligation(
        &self,
        env: &str,
        target: ObligationTarget<'_>,
        obligation: Option<&Obligation>,
    ) -> Result<bool, StoreError>;
    /// Counts one issuance for a client in the window starting at
    /// `window_start` (a new window restarts the count), atomically; returns
    /// the count including this one.
    async fn count_issuance(
        &self,
        env: &str,
        client_id: &str,
        window_start: i64,
    ) -> Result<u64, StoreError>;

    /// Takes back one issuance counted in the window starting at
    /// `window_start` (a request counted before the store refused it); no
    /// effect once that window has passed.
    async fn refund_issuance(
        &self,
        env: &str,
        client_id: &str,
        window_start: i64,
    ) -> Result<(), StoreError>;

    /// Counts one failed authentication of `key` (an account or a source
    /// address) at `now`, atomically; failures less than `window` seconds
    /// apart accumulate, a quiet `window` starts the count again. Returns the
    /// count including this one. No revision bump.
    async fn count_auth_failure(&self, key: &str, now: i64, window: i64)
    -> Result<u64, StoreError>;
    /// Forgets the failures of `key` (after a success).
    async fn clear_auth_failures(&self, key: &str) -> Result<(), StoreError>;

    /// Creates a user; `Conflict` if (env, username) exists.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    /// One user.
    async fn get_user(&self, env: &str, username: &str) -> Result<Option<User>, StoreError>;
    /// The users of an environment whose name equals `username` ignoring
    /// ASCII case (e-mail logins). A backend may return more (PostgreSQL
    /// folds beyond ASCII); the caller keeps the ASCII matches.
    async fn find_users_folded(&self, env: &str, username: &str) -> Result<Vec<User>, StoreError>;
    /// The users of an environment, optionally of one client.
    async fn list_users(&self, env: &str, client_id: Option<&str>)
    -> Result<Vec<User>, StoreError>;
    /// Replaces a user's password hash, roles and enabled flag; false if unknown.
    /// With `end_sessions` (the time now), also revokes the user's refresh
    /// families, in the same transaction.
    async fn update_user(&self, user: &User, end_sessions: Option<i64>)
    -> Result<bool, StoreError>;
    /// Deletes a user and revokes its refresh tokens; false if unknown.
    async fn delete_user(&self, env: &str, username: &str, now: i64) -> Result<bool, StoreError>;

    /// Makes the write `w` if, within the same transaction, its record is
    /// still equal to the one it expects; false (nothing written) when it
    /// changed or is gone.
    async fn write_if_unchanged(&self, w: &Guarded) -> Result<bool, StoreError>;

    /// Stores a new family (a login).
    async fn insert_refresh_family(&self, rec: &RefreshFamily) -> Result<(), StoreError>;
    /// One family.
    async fn get_refresh_family(
        &self,
        env: &str,
        family: &str,
    ) -> Result<Option<RefreshFamily>, StoreError>;
    /// Rotates family `next.family` from its current token `presented` to
    /// `next` (current, access token, expiry; issued and rotated at `now`,
    /// the replaced id kept as previous), as one compare-and-set: only when
    /// `presented` is the family's current token, the family is live
    /// (neither revoked nor expired at `now`) and its contract and client are
    /// `next`'s. Of any number of concurrent calls presenting one token
    /// exactly one gets `true`. A `false` writes nothing; what it means
    /// (a retry, reuse) is for the caller to read from the row.
    async fn rotate_refresh_family(
        &self,
        presented: &str,
        next: &RefreshFamily,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Revokes a family; false if unknown or revoked already.
    async fn revoke_refresh_family(
        &self,
        env: &str,
        family: &str,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Deletes a client with its users and revokes (at `now`) everything it
    /// held: its refresh JWTs, its API keys and its users' refresh families, atomically, so
    /// that a client re-created with the same id starts with nothing; false
    /// if it did not exist.
    async fn delete_client(&self, env: &str, client_id: &str, now: i64)
    -> Result<bool, StoreError>;

    // ---- API keys (the gate's `X-API-Key`) ----

    /// Stores a new API key; `Conflict` if (env, id) exists. Bumps the
    /// revision (servers remember unknown ids, so a new one must reach them).
    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;
    /// One API key.
    async fn get_api_key(&self, env: &str, id: &str) -> Result<Option<ApiKey>, StoreError>;
    /// The API keys of an environment, optionally of one client, by
    /// creation time then id.
    async fn list_api_keys(
        &self,
        env: &str,
        client_id: Option<&str>,
    ) -> Result<Vec<ApiKey>, StoreError>;
    /// Marks an API key revoked at `now`; false if unknown or revoked
    /// already. Bumps the revision.
    async fn revoke_api_key(&self, env: &str, id: &str, now: i64) -> Result<bool, StoreError>;
    /// Gives key `old` (as read: same id, not revoked, and its expiry still
    /// `old.expires_at`) the expiry `until` and stores `new`, in one
    /// transaction: a compare and set, so of two concurrent rotations of one
    /// key one wins. False (nothing written) otherwise. Bumps the revision.
    async fn rotate_api_key(
        &self,
        old: &ApiKey,
        until: i64,
        new: &ApiKey,
    ) -> Result<bool, StoreError>;

    // ---- Carried over from an incumbent (see `crate::incumbent`) ----

    /// Adds a trusted issuer; `Conflict` if (env, id) exists. Bumps the
    /// revision (servers hold the parsed keys in their snapshot).
    async fn insert_trusted_issuer(&self, issuer: &TrustedIssuer) -> Result<(), StoreError>;
    /// Trusted issuers of every environment, by environment, creation, id.
    async fn list_trusted_issuers(&self) -> Result<Vec<TrustedIssuer>, StoreError>;
    /// Removes a trusted issuer; false if unknown.
    async fn delete_trusted_issuer(&self, env: &str, id: &str) -> Result<bool, StoreError>;
    /// Revokes a client's refresh JWTs at `now` and records `now` as its
    /// cut-off (refresh tokens of the client issued before it are refused,
    /// also those tollgate never saw), in one transaction. Returns how many
    /// records it revoked.
    async fn revoke_client_refresh_tokens(
        &self,
        env: &str,
        client_id: &str,
        now: i64,
    ) -> Result<u64, StoreError>;
    /// Every cut-off of every environment.
    async fn list_refresh_cutoffs(&self) -> Result<Vec<RefreshCutoff>, StoreError>;
    /// Stores a family unless one with its (env, family) exists (an
    /// incumbent's session adopted on its first refresh, by two requests at
    /// once); true if this call stored it. No revision bump.
    async fn insert_refresh_family_if_absent(
        &self,
        rec: &RefreshFamily,
    ) -> Result<bool, StoreError>;
    /// Creates all `users` or none: `Conflict` (and nothing written) if any
    /// username exists or repeats.
    async fn import_users(&self, users: &[User]) -> Result<(), StoreError>;
    /// Replaces a user's password hash if it is still `old` (an imported
    /// hash upgraded to argon2id after a login); false otherwise. No
    /// revision bump: both hashes accept the same password, so a cached
    /// copy of the old one is stale but not wrong.
    async fn upgrade_user_password(
        &self,
        env: &str,
        username: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError>;
    /// Appends an entry to the audit log. No revision bump: no cache
    /// holds the log. `Conflict` if the id exists.
    async fn insert_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// At most `limit` audit entries at or after `since` (unix seconds)
    /// whose id is greater than `after` (a page's last id), in id order.
    async fn list_audit(
        &self,
        since: i64,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError>;
    /// Removes the audit entries written before `before` (unix seconds):
    /// the retention the operator chose. Returns how many went.
    async fn purge_audit(&self, before: i64) -> Result<u64, StoreError>;

    // ---- The partner portal (see `crate::partner`) ----
    // No revision bump, but for `set_partner_enabled`: no cache holds
    // these rows (the portal reads them from the store on each request).

    /// Creates a partner; `Conflict` if its id exists.
    async fn insert_partner(&self, partner: &Partner) -> Result<(), StoreError>;
    /// One partner.
    async fn get_partner(&self, id: &str) -> Result<Option<Partner>, StoreError>;
    /// Every partner, by id.
    async fn list_partners(&self) -> Result<Vec<Partner>, StoreError>;
    /// Replaces a partner's name and offers; false if unknown.
    async fn update_partner(&self, partner: &Partner) -> Result<bool, StoreError>;
    /// Enables or disables a partner and, in the same transaction, sets the
    /// enabled flag of every client it owns; disabling also ends its portal
    /// sessions. Bumps the revision (clients are cached); false if unknown.
    async fn set_partner_enabled(&self, id: &str, enabled: bool) -> Result<bool, StoreError>;
    /// Records that a partner owns a client; `Conflict` if the client is
    /// owned already.
    async fn insert_partner_client(&self, owned: &PartnerClient) -> Result<(), StoreError>;
    /// The clients a partner owns, by environment, creation, id.
    async fn list_partner_clients(&self, partner: &str) -> Result<Vec<PartnerClient>, StoreError>;
    /// Stores an invitation; `Conflict` if its digest exists.
    async fn insert_invitation(&self, invitation: &Invitation) -> Result<(), StoreError>;
    /// One invitation by digest, used or not.
    async fn get_invitation(&self, digest: &str) -> Result<Option<Invitation>, StoreError>;
    /// Marks invitation `digest` used at `now` and creates `account`, in one
    /// transaction, only if the invitation is unused, unexpired at `now`
    /// and for `account.partner`: false (nothing written) otherwise;
    /// `Conflict` (nothing written) if the login exists.
    async fn accept_invitation(
        &self,
        digest: &str,
        now: i64,
        account: &PartnerAccount,
    ) -> Result<bool, StoreError>;
    /// One account.
    async fn get_partner_account(&self, login: &str) -> Result<Option<PartnerAccount>, StoreError>;
    /// Counts a failed sign-in of `login`, atomically; the `max_failures`-th
    /// locks it until `now + lock_secs` and starts the count again.
    async fn partner_login_failed(
        &self,
        login: &str,
        now: i64,
        max_failures: u32,
        lock_secs: i64,
    ) -> Result<(), StoreError>;
    /// Forgets `login`'s failed sign-ins (after a success).
    async fn partner_login_succeeded(&self, login: &str) -> Result<(), StoreError>;
    /// Stores a portal session.
    async fn insert_portal_session(&self, session: &PortalSession) -> Result<(), StoreError>;
    /// One portal session by digest (expired or not: the caller checks).
    async fn get_portal_session(&self, digest: &str) -> Result<Option<PortalSession>, StoreError>;
    /// Ends a portal session (idempotent).
    async fn delete_portal_session(&self, digest: &str) -> Result<(), StoreError>;

    /// A partner's accounts, by login.
    async fn list_partner_accounts(&self, partner: &str)
    -> Result<Vec<PartnerAccount>, StoreError>;

    /// Stores a new package request; `Conflict` if its id exists.
    async fn insert_package_request(&self, request: &PackageRequest) -> Result<(), StoreError>;

    /// One package request.
    async fn get_package_request(&self, id: &str) -> Result<Option<PackageRequest>, StoreError>;

    /// Every package request (of `partner` if given), by id (oldest first).
    async fn list_package_requests(
        &self,
        partner: Option<&str>,
    ) -> Result<Vec<PackageRequest>, StoreError>;

    /// Settles a pending request as `status` at `at` by `by`: a
    /// compare-and-set, false (nothing written) unless it was pending.
    async fn decide_package_request(
        &self,
        id: &str,
        status: RequestStatus,
        at: i64,
        by: &str,
    ) -> Result<bool, StoreError>;

    /// Stores a provider admin's portal session.
    async fn insert_provider_session(&self, session: &ProviderSession) -> Result<(), StoreError>;

    /// One provider session by digest (expired or not: the caller checks).
    async fn get_provider_session(
        &self,
        digest: &str,
    ) -> Result<Option<ProviderSession>, StoreError>;

    /// Ends a provider session (idempotent).
    async fn delete_provider_session(&self, digest: &str) -> Result<(), StoreError>;
    /// Stores `totp` as its account's second factor, replacing any it had.
    async fn put_partner_totp(&self, totp: &PartnerTotp) -> Result<(), StoreError>;
    /// An account's second factor, confirmed or not.
    async fn get_partner_totp(&self, login: &str) -> Result<Option<PartnerTotp>, StoreError>;
    /// Records that a code of `step` was accepted (and, with `confirm`,
    /// confirms the enrolment), only if no code of `step` or a later step
    /// was: a compare-and-set, so of two uses of one code one wins. False
    /// (nothing written) otherwise, or if `login` has no second factor.
    async fn use_partner_totp_step(
        &self,
        login: &str,
        step: i64,
        confirm: bool,
    ) -> Result<bool, StoreError>;
    /// Removes an account's second factor (idempotent).
    async fn delete_partner_totp(&self, login: &str) -> Result<(), StoreError>;
    /// Stores a pending handover; `Conflict` if its digest exists.
    async fn insert_handover(&self, handover: &Handover) -> Result<(), StoreError>;
    /// One pending handover by digest (expired or not: the caller checks).
    async fn get_handover(&self, digest: &str) -> Result<Option<Handover>, StoreError>;
    /// Deletes handover `digest` and returns what it was: of two takers,
    /// one gets it.
    async fn take_handover(&self, digest: &str) -> Result<Option<Handover>, StoreError>;

    // ---- Usage per client and day (see `crate::usage`) ----
    // No revision bump: no cache holds these rows.

    /// Adds each delta to its (env, client, day) row, creating it at zero
    /// first: an atomic add, so instances flushing at once add up. All or
    /// nothing (one transaction).
    async fn add_usage(&self, deltas: &[UsageDay]) -> Result<(), StoreError>;
    /// A client's usage rows from day `from` to day `to` (both included),
    /// by day. Days without a row are absent.
    async fn list_usage(
        &self,
        env: &str,
        client_id: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<UsageDay>, StoreError>;
    /// A client's issuance count ([`Self::count_issuance`]) as it stands:
    /// (window start, count), without counting; `None` if never counted.
    async fn get_issuance(
        &self,
        env: &str,
        client_id: &str,
    ) -> Result<Option<(i64, u64)>, StoreError>;
}
