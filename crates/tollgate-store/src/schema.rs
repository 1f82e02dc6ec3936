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
];
