//! Schema migrations, written once for both backends. Each step runs once and
//! is recorded in `tg_meta.schema_version`; every statement is idempotent so
//! that instances starting together cannot trip over each other.

/// Migration steps, in order. Step *n* brings the schema to version *n + 1*.
pub(crate) const STEPS: &[&[&str]] = &[
    &[
        "CREATE TABLE IF NOT EXISTS tg_environments (
        name TEXT PRIMARY KEY,
        issuer TEXT,
        alg TEXT NOT NULL,
        hosts TEXT NOT NULL,
        created_at BIGINT NOT NULL
    )",
        "CREATE TABLE IF NOT EXISTS tg_signing_keys (
        env TEXT NOT NULL REFERENCES tg_environments(name) ON DELETE CASCADE,
        kid TEXT NOT NULL,
        alg TEXT NOT NULL,
        state TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        private_sealed TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        activates_at BIGINT NOT NULL,
        retired_at BIGINT,
        PRIMARY KEY (env, kid)
    )",
        "CREATE TABLE IF NOT EXISTS tg_apis (
        env TEXT NOT NULL REFERENCES tg_environments(name) ON DELETE CASCADE,
        identifier TEXT NOT NULL,
        permissions TEXT NOT NULL,
        packages TEXT NOT NULL,
        token_lifetime BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (env, identifier)
    )",
        "CREATE TABLE IF NOT EXISTS tg_clients (
        env TEXT NOT NULL REFERENCES tg_environments(name) ON DELETE CASCADE,
        client_id TEXT NOT NULL,
        name TEXT NOT NULL,
        secrets TEXT NOT NULL,
        apis TEXT NOT NULL,
        grant_types TEXT NOT NULL,
        token_lifetime BIGINT,
        extra_claims TEXT NOT NULL,
        enabled BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (env, client_id)
    )",
    ],
    &[
        "CREATE TABLE IF NOT EXISTS tg_revoked_tokens (
            env TEXT NOT NULL,
            jti TEXT NOT NULL,
            expires_at BIGINT NOT NULL,
            PRIMARY KEY (env, jti)
        )",
        "CREATE INDEX IF NOT EXISTS tg_revoked_tokens_expiry ON tg_revoked_tokens (expires_at)",
        "ALTER TABLE tg_clients ADD COLUMN capabilities TEXT NOT NULL DEFAULT '[]'",
    ],
    &["CREATE TABLE IF NOT EXISTS tg_refresh_jwts (
            env TEXT NOT NULL,
            jti TEXT NOT NULL,
            client_id TEXT NOT NULL,
            audience TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            revoked_at BIGINT,
            PRIMARY KEY (env, jti)
        )"],
    &[
        "ALTER TABLE tg_environments ADD COLUMN dialect TEXT NOT NULL DEFAULT 'rfc6749'",
        "ALTER TABLE tg_environments ADD COLUMN contracts TEXT NOT NULL DEFAULT '[]'",
    ],
    &[
        "CREATE TABLE IF NOT EXISTS tg_users (
            env TEXT NOT NULL,
            username TEXT NOT NULL,
            client_id TEXT NOT NULL,
            password TEXT NOT NULL,
            enabled BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            PRIMARY KEY (env, username)
        )",
        "CREATE INDEX IF NOT EXISTS tg_users_client ON tg_users (env, client_id)",
        "CREATE TABLE IF NOT EXISTS tg_refresh_families (
            env TEXT NOT NULL,
            family TEXT NOT NULL,
            contract TEXT NOT NULL,
            client_id TEXT NOT NULL,
            username TEXT NOT NULL,
            grant_type TEXT NOT NULL,
            audience TEXT NOT NULL,
            scope TEXT NOT NULL,
            current_id TEXT NOT NULL,
            previous_id TEXT,
            access_jti TEXT NOT NULL,
            access_exp BIGINT NOT NULL,
            issued_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            rotated_at BIGINT,
            revoked_at BIGINT,
            created_at BIGINT NOT NULL,
            PRIMARY KEY (env, family)
        )",
        "CREATE INDEX IF NOT EXISTS tg_refresh_families_user ON tg_refresh_families (env, username)",
        "CREATE INDEX IF NOT EXISTS tg_refresh_families_expiry ON tg_refresh_families (expires_at)",
        "CREATE INDEX IF NOT EXISTS tg_refresh_jwts_expiry ON tg_refresh_jwts (expires_at)",
    ],
    &[
        "ALTER TABLE tg_apis ADD COLUMN obligation TEXT",
        "ALTER TABLE tg_clients ADD COLUMN obligation TEXT",
        "CREATE TABLE IF NOT EXISTS tg_issuance_counts (
            env TEXT NOT NULL,
            client_id TEXT NOT NULL,
            window_start BIGINT NOT NULL,
            count BIGINT NOT NULL,
            PRIMARY KEY (env, client_id)
        )",
    ],
    &[
        // Failed authentications per account or source address, for
        // throttling; purged when quiet for a window.
        "CREATE TABLE IF NOT EXISTS tg_auth_failures (
            key TEXT PRIMARY KEY,
            failures BIGINT NOT NULL,
            expires_at BIGINT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS tg_auth_failures_expiry ON tg_auth_failures (expires_at)",
    ],
    &[
        // A key's state follows from the schedule (activation times); the
        // stored copy was written once and never kept true.
        "ALTER TABLE tg_signing_keys DROP COLUMN state",
        "ALTER TABLE tg_signing_keys DROP COLUMN retired_at",
    ],
    // PostgreSQL only (POSTGRES_STEPS): the change feed's trigger.
    &[],
    &[
        // Setting overrides per environment (key → value text, JSON).
        "ALTER TABLE tg_environments ADD COLUMN settings TEXT NOT NULL DEFAULT '{}'",
        // An API's lifetime becomes optional: unset, tokens for it follow
        // the issuing contract's setting for the environment. The old
        // column held 600 s whenever `api create` was given no lifetime, so
        // 600 is read as unset — which is what every contract but rfc6749
        // already did, and what rfc6749 does too, its default being 600 s.
        "ALTER TABLE tg_apis ADD COLUMN access_lifetime BIGINT",
        "UPDATE tg_apis SET access_lifetime = token_lifetime WHERE token_lifetime <> 600",
        "ALTER TABLE tg_apis DROP COLUMN token_lifetime",
    ],
    &[
        // Header-login e-mail names compare case-insensitively
        // (`Store::find_users_folded`); without it an unknown name would
        // scan the table.
        "CREATE INDEX IF NOT EXISTS tg_users_folded ON tg_users (env, lower(username))",
        // Roles (Spring authorities) of clients and users, and Auth0's
        // "permissions in the access token" per API.
        "ALTER TABLE tg_clients ADD COLUMN roles TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE tg_users ADD COLUMN roles TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE tg_apis ADD COLUMN token_permissions BIGINT NOT NULL DEFAULT 0",
    ],
    &[
        // Switching over from an incumbent: the issuers whose refresh
        // tokens are still accepted, and per-client cut-offs (revocation by
        // client of tokens tollgate never saw).
        "CREATE TABLE IF NOT EXISTS tg_trusted_issuers (
            env TEXT NOT NULL,
            id TEXT NOT NULL,
            purpose TEXT NOT NULL,
            keys TEXT NOT NULL,
            issuer TEXT,
            audience TEXT,
            client_claim TEXT NOT NULL,
            user_claim TEXT,
            api TEXT,
            created_at BIGINT NOT NULL,
            PRIMARY KEY (env, id)
        )",
        "CREATE TABLE IF NOT EXISTS tg_refresh_cutoffs (
            env TEXT NOT NULL,
            client_id TEXT NOT NULL,
            not_before BIGINT NOT NULL,
            PRIMARY KEY (env, client_id)
        )",
    ],
    &[
        // API keys for the gate: id, owner and a keyed hash, never the key.
        "CREATE TABLE IF NOT EXISTS tg_api_keys (
            env TEXT NOT NULL,
            id TEXT NOT NULL,
            client_id TEXT NOT NULL,
            name TEXT,
            digest TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT,
            revoked_at BIGINT,
            PRIMARY KEY (env, id)
        )",
        "CREATE INDEX IF NOT EXISTS tg_api_keys_client ON tg_api_keys (env, client_id)",
    ],
    &[
        // The audit log of administrative writes (the admin API). Ids sort
        // as written (time first), so pages go by `id > cursor`; `since`
        // filters by time. Before/after are JSON views without secrets.
        "CREATE TABLE IF NOT EXISTS tg_audit (
            id TEXT PRIMARY KEY,
            at BIGINT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            env TEXT,
            target TEXT NOT NULL,
            source TEXT,
            before_json TEXT,
            after_json TEXT
        )",
        "CREATE INDEX IF NOT EXISTS tg_audit_at ON tg_audit (at)",
    ],
    &[
        // The partner portal (issue 13 §2): partner organisations with the
        // packages offered to them (JSON), the clients each owns, portal
        // accounts (argon2id hash, failed-attempt count and lock), and
        // invitations and sessions stored as SHA-256 digests of their tokens.
        "CREATE TABLE IF NOT EXISTS tg_partners (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            offers TEXT NOT NULL,
            enabled BIGINT NOT NULL,
            created_at BIGINT NOT NULL
        )",
        "CREATE TABLE IF NOT EXISTS tg_partner_clients (
            env TEXT NOT NULL,
            client_id TEXT NOT NULL,
            partner TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            PRIMARY KEY (env, client_id)
        )",
        "CREATE INDEX IF NOT EXISTS tg_partner_clients_partner ON tg_partner_clients (partner)",
        "CREATE TABLE IF NOT EXISTS tg_partner_accounts (
            login TEXT PRIMARY KEY,
            partner TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            failed_attempts BIGINT NOT NULL,
            locked_until BIGINT,
            created_at BIGINT NOT NULL
        )",
        "CREATE TABLE IF NOT EXISTS tg_partner_invitations (
            digest TEXT PRIMARY KEY,
            partner TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            used_at BIGINT
        )",
        "CREATE TABLE IF NOT EXISTS tg_portal_sessions (
            digest TEXT PRIMARY KEY,
            login TEXT NOT NULL,
            partner TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS tg_portal_sessions_partner ON tg_portal_sessions (partner)",
    ],
    &[
        // The portal's secrets that must be read back, sealed under a key
        // derived from the master key: accounts' TOTP secrets (with the
        // last step used, against replay) and secrets waiting to be handed
        // over through a one-time link (keyed by their token's SHA-256).
        "CREATE TABLE IF NOT EXISTS tg_partner_totp (
            login TEXT PRIMARY KEY,
            sealed TEXT NOT NULL,
            confirmed BIGINT NOT NULL,
            last_step BIGINT,
            created_at BIGINT NOT NULL
        )",
        "CREATE TABLE IF NOT EXISTS tg_portal_handovers (
            digest TEXT PRIMARY KEY,
            partner TEXT NOT NULL,
            label TEXT NOT NULL,
            sealed TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL
        )",
    ],
    &[
        // Usage per client and UTC day (issue 13 §2): tokens issued, errors
        // and 429s, added to by each instance's periodic flush (an
        // add-upsert); days are days since 1970-01-01, purged after 400.
        "CREATE TABLE IF NOT EXISTS tg_usage (
            env TEXT NOT NULL,
            client_id TEXT NOT NULL,
            day BIGINT NOT NULL,
            issued BIGINT NOT NULL,
            errors BIGINT NOT NULL,
            throttled BIGINT NOT NULL,
            PRIMARY KEY (env, client_id, day)
        )",
    ],
    &[
        // The provider's side of the portal: partners' package requests
        // (pending until approved or declined, then kept as a record) and
        // provider admins' portal sessions, opened with an admin API token
        // and stored as the SHA-256 digest of the cookie's token.
        "CREATE TABLE IF NOT EXISTS tg_package_requests (
            id TEXT PRIMARY KEY,
            partner TEXT NOT NULL,
            requested_by TEXT NOT NULL,
            env TEXT NOT NULL,
            api TEXT NOT NULL,
            package TEXT NOT NULL,
            note TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            decided_at BIGINT,
            decided_by TEXT
        )",
        "CREATE INDEX IF NOT EXISTS tg_package_requests_partner ON tg_package_requests (partner)",
        "CREATE TABLE IF NOT EXISTS tg_provider_sessions (
            digest TEXT PRIMARY KEY,
            admin_client TEXT NOT NULL,
            scope TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL
        )",
    ],
];

/// Statements only PostgreSQL runs, with the index of the step in [`STEPS`]
/// they belong to (both backends keep one version count).
pub(crate) const POSTGRES_STEPS: &[(usize, &[&str])] = &[(
    8,
    &[
        // Every revision bump notifies `CHANGE_CHANNEL` (the new revision as
        // payload), delivered when its transaction commits: a trigger, so
        // that every writer (a server, the CLI, an older tollgate) pushes,
        // not only those that remember to.
        "CREATE OR REPLACE FUNCTION tg_notify_change() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('tollgate_changes', NEW.value::text);
            RETURN NULL;
        END
        $$ LANGUAGE plpgsql",
        "DROP TRIGGER IF EXISTS tg_meta_change ON tg_meta",
        "CREATE TRIGGER tg_meta_change AFTER UPDATE ON tg_meta FOR EACH ROW
        WHEN (NEW.key = 'revision') EXECUTE FUNCTION tg_notify_change()",
    ],
)];

/// The PostgreSQL channel the trigger notifies (see [`POSTGRES_STEPS`]).
pub(crate) const CHANGE_CHANNEL: &str = "tollgate_changes";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use sqlx::Connection as _;
    use tollgate_core::store::Store as _;

    use super::STEPS;
    use crate::SqlStore;

    /// A database left at the schema before APIs' lifetimes became
    /// optional, with an API created without a lifetime (stored as 600)
    /// and one with its own: after the migration the first has none (each
    /// contract's setting applies, as it did for all but rfc6749, whose
    /// default is 600 s) and the second keeps its own. Over SQLite, and
    /// over PostgreSQL with `TG_TEST_STORE=postgres`.
    #[tokio::test]
    async fn old_api_lifetimes_become_optional() {
        let dir = tempfile::tempdir().unwrap();
        let pg = tollgate_testkit::postgres_base()
            .map(|base| tollgate_testkit::TempDatabase::create(&base).unwrap());
        let url = pg.as_ref().map_or_else(
            || format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display()),
            tollgate_testkit::TempDatabase::url,
        );
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        // The step that makes the lifetime optional; later steps (roles,
        // token_permissions) run over the old rows too.
        let before = STEPS
            .iter()
            .position(|s| s.iter().any(|q| q.contains("ADD COLUMN access_lifetime")))
            .unwrap();
        for sql in [
            "CREATE TABLE tg_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)".to_string(),
            format!("INSERT INTO tg_meta (key, value) VALUES ('schema_version', {before})"),
            "INSERT INTO tg_meta (key, value) VALUES ('revision', 0)".to_string(),
        ]
        .into_iter()
        .chain(STEPS[..before].iter().flat_map(|s| s.iter().map(|q| q.to_string())))
        .chain([
            "INSERT INTO tg_environments (name, issuer, alg, hosts, created_at) \
             VALUES ('default', NULL, 'ES256', '[]', 1)"
                .to_string(),
            "INSERT INTO tg_apis (env, identifier, permissions, packages, token_lifetime, created_at) \
             VALUES ('default', 'plain', '[]', '{}', 600, 1), ('default', 'own', '[]', '{}', 300, 1)"
                .to_string(),
        ]) {
            sqlx::query(&sql).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();

        let store = SqlStore::open(&url).await.unwrap();
        let lifetimes: Vec<(String, Option<u64>, bool)> = store
            .list_apis()
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.identifier, a.token_lifetime, a.token_permissions))
            .collect();
        assert_eq!(
            lifetimes,
            [
                ("own".to_string(), Some(300), false),
                ("plain".to_string(), None, false)
            ]
        );
        let envs = store.list_environments().await.unwrap();
        assert!(envs[0].settings.is_empty(), "no overrides yet");
        store.close().await;
    }
}
