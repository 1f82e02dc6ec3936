//! The command-line surface (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// tollgate: issue, verify and revoke API access tokens for your partners.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Data directory (SQLite database and master key) [default: ./tollgate-data]
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Configuration file (TOML).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Database URL (postgres://…); default: SQLite in the data directory.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// Run the command against this server's admin API instead of a local
    /// store (e.g. https://auth.example.com); the admin token comes from
    /// TOLLGATE_ADMIN_TOKEN or --admin-token-file.
    #[arg(long, global = true, env = "TOLLGATE_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// A file holding the admin token for --server.
    #[arg(long, global = true, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// The admin token for --server (visible in the process list: prefer
    /// TOLLGATE_ADMIN_TOKEN or --admin-token-file).
    #[arg(long, global = true, value_name = "TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Environments (isolated issuers).
    #[command(subcommand)]
    Env(EnvCommand),
    /// APIs (resource servers: audiences, permissions, packages).
    #[command(subcommand)]
    Api(ApiCommand),
    /// Clients (partner applications).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Users (accounts, devices) of a client, for the user contracts
    /// (device-credentials, header-login).
    #[command(subcommand)]
    User(UserCommand),
    /// Long-lived refresh JWTs for the bearer-exchange contract.
    #[command(subcommand)]
    RefreshJwt(RefreshJwtCommand),
    /// API keys of clients, for the gate's X-API-Key (see docs/GATE.md).
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Partner organisations of the partner portal: offers, invitations,
    /// disabling (see docs/PORTAL.md).
    #[command(subcommand)]
    Partner(crate::partner::PartnerCommand),
    /// Check the data directory, database, master key, keys and config, and say what is wrong.
    #[command(alias = "check")]
    Doctor,
    /// Write a consistent copy of the SQLite database to FILE, also while
    /// the server runs (PostgreSQL: use pg_dump).
    Backup(BackupArgs),
    /// The gate: route policy for the provider's API (see docs/GATE.md).
    #[command(subcommand)]
    Gate(GateCommand),
    /// Copy the SQLite store of a data directory into PostgreSQL (every
    /// live row, verified; safe to re-run). See "Moving from SQLite to
    /// PostgreSQL" in OPERATIONS.md.
    MigrateStore(MigrateArgs),
    /// The admin API's own credentials (see docs/ADMIN-API.md).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Print the audit log of administrative writes, oldest first
    /// (`--json`: one JSON object per line).
    Audit(AuditArgs),
    /// The partner's side: get an access token from a tollgate (or any
    /// server speaking one of its contracts), cached across invocations.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create the `tollgate-admin` API in the default environment if it is
    /// missing, and an admin client holding admin:read, admin:write and
    /// admin:secrets; print its id and secret (shown once).
    Bootstrap {
        /// The admin client's name.
        #[arg(long, default_value = "tollgate-admin")]
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Entries from this time on: unix seconds, or a duration ago (`24h`).
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many entries (default: all).
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a valid access token (or --json, or --header for `curl -H @-`),
    /// reusing the one cached in the user's cache directory while more than
    /// --min-valid is left.
    Get(TokenGetArgs),
}

#[derive(Debug, Args)]
pub struct TokenGetArgs {
    /// The issuer's base URL (e.g. https://auth.example.com or …/e/staging).
    #[arg(long)]
    pub base_url: String,
    /// rfc6749 (form), rfc6749-json, auth0, bearer-exchange,
    /// device-credentials or header-login.
    #[arg(long, default_value = "rfc6749")]
    pub contract: String,
    /// The client id (the client key for device-credentials).
    #[arg(long, allow_hyphen_values = true)]
    pub client_id: Option<String>,
    /// File holding the client secret (for bearer-exchange: the refresh
    /// JWT); else TOLLGATE_CLIENT_SECRET. Never on the command line.
    #[arg(long)]
    pub client_secret_file: Option<PathBuf>,
    /// The audience (Auth0 style).
    #[arg(long)]
    pub audience: Option<String>,
    /// The resource (RFC 8707).
    #[arg(long)]
    pub resource: Option<String>,
    /// The scope, space-separated.
    #[arg(long)]
    pub scope: Option<String>,
    /// The user (device-credentials: the device id; header-login: the e-mail).
    #[arg(long, allow_hyphen_values = true)]
    pub username: Option<String>,
    /// File holding the user's password; else TOLLGATE_PASSWORD.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Print `Authorization: Bearer …` (for `curl -H @-`).
    #[arg(long)]
    pub header: bool,
    /// Get a new token even if the cached one is still good.
    #[arg(long)]
    pub refresh: bool,
    /// Never print a token with less than this left.
    #[arg(long, default_value = "30s")]
    pub min_valid: String,
    /// Path of the token endpoint, when not the contract's usual one.
    #[arg(long)]
    pub path: Option<String>,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The data directory whose SQLite store is copied; its master.key (or
    /// TOLLGATE_MASTER_KEY) must open the store's signing keys.
    #[arg(long)]
    pub from: PathBuf,
    /// The target database, postgres://… (its schema is created or brought
    /// up to date first). It must be empty or a copy of this source.
    #[arg(long)]
    pub to: String,
    /// Also write the master key into this data directory (created 0700,
    /// master.key 0600; an existing different key is refused), for the
    /// instances that will serve from the target.
    #[arg(long)]
    pub to_data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Validate the [gate] table of a TOML file (a config file or a policy
    /// of its own) offline; errors name the line.
    CheckPolicy {
        /// The file.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup file to write (mode 0600). The master key is not in it.
    pub file: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long)]
    pub listen: Option<String>,
    /// Base URL clients use to reach tollgate (issuer and metadata derive from it).
    #[arg(long)]
    pub public_url: Option<String>,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long)]
    pub log_format: Option<String>,
    /// Wire contracts to serve in the default environment besides rfc6749:
    /// `all` or a comma-separated list (bearer-exchange).
    #[arg(long)]
    pub contracts: Option<String>,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Create an environment with its own issuer and signing key.
    Create {
        /// Name (used in the /e/NAME/ path prefix).
        name: String,
        /// Issuer URL (default: https://HOST of the first --host, with a
        /// trailing / in the auth0 dialect; else <public URL>/e/NAME).
        #[arg(long)]
        issuer: Option<String>,
        /// Signing algorithm: ES256, EdDSA, RS256, or HS256 (a secret shared
        /// with the resource servers: `key import --hs256-secret-file`; never
        /// published) [default: ES256; RS256 with --dialect auth0]
        #[arg(long)]
        alg: Option<String>,
        /// Host name that selects this environment (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Token-endpoint dialect: rfc6749 (default) or auth0.
        #[arg(long)]
        dialect: Option<String>,
        /// Optional contracts to serve here: all, none, or a comma-separated list.
        #[arg(long)]
        contracts: Option<String>,
    },
    /// Change an environment in place: dialect, contracts, host names,
    /// issuer, signing algorithm, and its own settings.
    Update {
        /// The environment.
        name: String,
        /// Token-endpoint dialect: rfc6749 or auth0.
        #[arg(long)]
        dialect: Option<String>,
        /// Optional contracts to serve here: all, none, or a comma-separated list.
        #[arg(long)]
        contracts: Option<String>,
        /// Host names that select it (repeatable; replaces the current ones).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Remove every host name.
        #[arg(long, conflicts_with = "hosts")]
        no_hosts: bool,
        /// Issuer URL of its tokens, or `derive` to derive it from the
        /// public URL again. Tokens already issued keep the old issuer.
        #[arg(long)]
        issuer: Option<String>,
        /// Signing algorithm (ES256, EdDSA, RS256): a key of it is published
        /// now and signs after --publish-delay; the current key retires then.
        /// Not HS256 (create an HS256 environment and `key import
        /// --hs256-secret-file` instead); from HS256 to another, yes.
        #[arg(long)]
        alg: Option<String>,
        /// With --alg: how long the new key is published before it signs.
        #[arg(long, default_value = "10m", requires = "alg")]
        publish_delay: String,
        /// Set a setting for this environment only: KEY=VALUE, any key of the
        /// configuration reference that a contract or the HTTP layer
        /// registers (paths, lifetimes, refresh policy, claims, leeway…).
        /// Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Drop this environment's own value of KEY: the server's applies
        /// again. Repeatable.
        #[arg(long = "unset", value_name = "KEY")]
        unset: Vec<String>,
    },
    /// Show one environment with every per-environment setting in force
    /// there, and whether it is the environment's own or the server's.
    Show {
        /// The environment.
        name: String,
    },
    /// List environments.
    List,
}

#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Create an API.
    Create {
        /// Identifier: the token audience, e.g. mts-insight-tech or a URL.
        identifier: String,
        #[arg(long, default_value = "default")]
        env: String,
        /// A permission (scope) of the API (repeatable).
        #[arg(long = "permission")]
        permissions: Vec<String>,
        /// A package: NAME=PERM1,PERM2 (repeatable; its permissions join the API's).
        #[arg(long = "package")]
        packages: Vec<String>,
        /// Default access-token lifetime, e.g. 600s or 10m [default: 600s]
        #[arg(long)]
        token_lifetime: Option<String>,
        /// What its clients must honour: off, reuse[:30s] (a client asking
        /// again gets its still-valid token back) or limit:N/WINDOW (e.g.
        /// limit:100/1h, then 429).
        #[arg(long)]
        obligation: Option<String>,
        /// Auth0's RBAC "Add Permissions in the Access Token": its
        /// Auth0-dialect tokens carry a `permissions` array.
        #[arg(long)]
        token_permissions: bool,
    },
    /// Change an API in place (its clients keep it).
    Update {
        /// The API's identifier.
        identifier: String,
        #[arg(long, default_value = "default")]
        env: String,
        /// Add a permission (repeatable).
        #[arg(long = "permission")]
        add_permissions: Vec<String>,
        /// Remove a permission (repeatable; refused while a package names it).
        #[arg(long = "remove-permission")]
        remove_permissions: Vec<String>,
        /// Set a package: NAME=PERM1,PERM2 (repeatable; created or replaced).
        #[arg(long = "package")]
        packages: Vec<String>,
        /// Remove a package (repeatable).
        #[arg(long = "remove-package")]
        remove_packages: Vec<String>,
        /// Access-token lifetime of its tokens, e.g. 15m, or `inherit` to
        /// follow the environment's contract settings.
        #[arg(long)]
        token_lifetime: Option<String>,
        /// Its obligation: off, reuse[:30s] or limit:N/WINDOW.
        #[arg(long)]
        obligation: Option<String>,
        /// Auth0's RBAC "Add Permissions in the Access Token": true or false.
        #[arg(long)]
        token_permissions: Option<bool>,
    },
    /// Set an API's obligation (off, reuse[:30s], limit:N/WINDOW).
    SetObligation {
        identifier: String,
        obligation: String,
        #[arg(long, default_value = "default")]
        env: String,
    },
    /// List APIs.
    List {
        #[arg(long, default_value = "default")]
        env: String,
    },
    /// Delete an API.
    Delete {
        identifier: String,
        #[arg(long, default_value = "default")]
        env: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a client; prints its id and secret once.
    Create(ClientCreate),
    /// List clients.
    List {
        #[arg(long, default_value = "default")]
        env: String,
    },
    /// Show one client (never its secret).
    Show(ClientRef),
    /// Change a client in place: its id, secrets and sessions stay.
    Update(ClientUpdateArgs),
    /// Disable a client: it gets no more tokens.
    Disable(ClientRef),
    /// Enable a disabled client.
    Enable(ClientRef),
    /// Delete a client.
    Delete(ClientRef),
    /// Issue a new secret (shown once); the current ones keep working for the grace period.
    RotateSecret {
        #[command(flatten)]
        client: ClientRef,
        /// How long the current secrets keep working, e.g. 24h or 0s.
        #[arg(long, default_value = "24h")]
        grace: String,
    },
    /// Set a client's own obligation (off, reuse[:30s], limit:N/WINDOW), or
    /// `inherit` to follow its APIs'.
    SetObligation {
        #[command(flatten)]
        client: ClientRef,
        obligation: String,
    },
    /// End a rotation's grace at once.
    RevokeSecret {
        #[command(flatten)]
        client: ClientRef,
        /// Keep only the newest secret (required: says what is revoked).
        #[arg(long, required = true)]
        all_but_newest: bool,
    },
}

#[derive(Debug, Args)]
pub struct ClientRef {
    /// The client id.
    // An imported id may begin with `-`. It is read as the id unless it is
    // one of this command's flags (`--env`, `--json`, `-h`, …), which stay
    // flags; such an id goes after `--`. So with every argument naming a
    // client or a user.
    #[arg(allow_hyphen_values = true)]
    pub client_id: String,
    #[arg(long, default_value = "default")]
    pub env: String,
}

#[derive(Debug, Args)]
pub struct ClientUpdateArgs {
    #[command(flatten)]
    pub client: ClientRef,
    /// Human name.
    #[arg(long)]
    pub name: Option<String>,
    /// Its APIs: IDENTIFIER or IDENTIFIER=PACKAGE_OR_PERMISSION,...
    /// (repeatable; replaces the current list).
    #[arg(long = "api")]
    pub apis: Vec<String>,
    /// Allowed grant types (repeatable; replaces the current ones).
    #[arg(long = "grant")]
    pub grants: Vec<String>,
    /// Its access-token lifetime, e.g. 300s, or `inherit` to follow its API's.
    #[arg(long)]
    pub token_lifetime: Option<String>,
    /// Extra claims merged into its tokens, as a JSON object (replaces them).
    #[arg(long)]
    pub claims: Option<String>,
    /// Whether it may introspect other clients' tokens.
    #[arg(long)]
    pub introspect: Option<bool>,
    /// Its own obligation (off, reuse[:30s], limit:N/WINDOW), or `inherit`.
    #[arg(long)]
    pub obligation: Option<String>,
    /// A role (Spring authority) for its users that have none of their own
    /// (repeatable; replaces its roles).
    #[arg(long = "role", conflicts_with = "no_roles")]
    pub roles: Vec<String>,
    /// Remove all its roles.
    #[arg(long)]
    pub no_roles: bool,
}

#[derive(Debug, Args)]
pub struct ClientCreate {
    /// Human name.
    #[arg(long)]
    pub name: String,
    #[arg(long, default_value = "default")]
    pub env: String,
    /// Grant an API: IDENTIFIER or IDENTIFIER=PACKAGE_OR_PERMISSION,... (repeatable).
    /// Without a list the client gets tokens for that audience with an empty scope.
    #[arg(long = "api")]
    pub apis: Vec<String>,
    /// Allowed grant type (repeatable) [default: client_credentials]
    #[arg(long = "grant")]
    pub grants: Vec<String>,
    /// Access-token lifetime for this client, e.g. 300s (overrides the API's).
    #[arg(long)]
    pub token_lifetime: Option<String>,
    /// Extra claims merged into its tokens, as a JSON object.
    #[arg(long)]
    pub claims: Option<String>,
    /// Let this client introspect tokens of other clients (for a resource server or gateway).
    #[arg(long)]
    pub introspect: bool,
    /// Its own obligation (off, reuse[:30s], limit:N/WINDOW), over its APIs'.
    #[arg(long)]
    pub obligation: Option<String>,
    /// A role (Spring authority, e.g. ROLE_CATALOG) for its users that have
    /// none of their own (repeatable); in tokens with
    /// `*_spring_authorities = roles`.
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// A public client: no secret; it identifies itself by id alone and may
    /// only use user grants (device_credentials, password).
    #[arg(long, conflicts_with = "client_secret")]
    pub public: bool,
    /// Import an existing client id.
    // Imported ids and secrets are often base64url, which may begin with
    // `-`: the value after the flag is the value, never an option.
    #[arg(long, allow_hyphen_values = true)]
    pub client_id: Option<String>,
    /// Import an existing secret (or set TOLLGATE_IMPORT_CLIENT_SECRET to keep it out of `ps`).
    #[arg(
        long,
        env = "TOLLGATE_IMPORT_CLIENT_SECRET",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub client_secret: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List signing keys and their states (next, active, retired).
    List {
        /// Only this environment.
        #[arg(long)]
        env: Option<String>,
    },
    /// Add a new signing key: published now, signing after the delay.
    Rotate {
        #[arg(long, default_value = "default")]
        env: String,
        /// How long the new key is published before it signs, so that
        /// verifiers caching the JWKS know it first.
        #[arg(long, default_value = "10m")]
        publish_delay: String,
    },
    /// Import an incumbent's signing key (or HS256 secret), so resource
    /// servers that pinned it, or its kid, keep verifying.
    Import(KeyImportArgs),
    /// Publish an incumbent's public keys (its JWKS) beside tollgate's, so
    /// that access tokens it issued before the switch keep verifying where
    /// resource servers fetch the JWKS; they never sign.
    Publish {
        /// The incumbent's JWKS file (public keys only).
        #[arg(long, value_name = "FILE")]
        jwks: PathBuf,
        #[arg(long, default_value = "default")]
        env: String,
        /// A name for these keys (for list and unpublish).
        #[arg(long, default_value = "incumbent-keys")]
        name: String,
    },
    /// Stop publishing an incumbent's keys (once its tokens have expired).
    Unpublish {
        /// The name given at `key publish`.
        name: String,
        #[arg(long, default_value = "default")]
        env: String,
    },
}

/// `key import`'s key material: exactly one source.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct KeyMaterialArgs {
    /// A PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC; RSA, P-256 or
    /// Ed25519), of the environment's algorithm.
    #[arg(long, value_name = "FILE")]
    pub pem: Option<PathBuf>,
    /// A file holding the HS256 secret the resource servers verify with
    /// (an HS256 environment; a trailing newline is not part of it).
    #[arg(long, value_name = "FILE")]
    pub hs256_secret_file: Option<PathBuf>,
}

/// `key import`.
#[derive(Debug, Args)]
pub struct KeyImportArgs {
    #[command(flatten)]
    pub material: KeyMaterialArgs,
    #[arg(long, default_value = "default")]
    pub env: String,
    /// The key id to publish and sign with (the incumbent's, if resource
    /// servers pinned it) [default: a random one].
    #[arg(long)]
    pub kid: Option<String>,
    /// How long the key is published before it signs (0: at once, for a
    /// key the resource servers already trust).
    #[arg(long, default_value = "0s")]
    pub publish_delay: String,
}

#[derive(Debug, Subcommand)]
pub enum RefreshJwtCommand {
    /// Mint a refresh JWT for a client; printed once, only its id is kept.
    Issue {
        /// The client it acts for.
        #[arg(long, allow_hyphen_values = true)]
        client: String,
        #[arg(long, default_value = "default")]
        env: String,
        /// The API its access tokens are for (default: the client's only API).
        #[arg(long)]
        api: Option<String>,
        /// Lifetime, e.g. 365d.
        #[arg(long, default_value = "365d")]
        ttl: String,
    },
    /// List refresh JWTs (ids and dates, never the tokens).
    List {
        #[arg(long, default_value = "default")]
        env: String,
    },
    /// Revoke a refresh JWT by its id (jti), a trusted incumbent's token by
    /// its id, or with --client every refresh token of a client.
    Revoke {
        /// The token's id: a refresh JWT's jti (base64url: it may well
        /// start with `-`), or an incumbent's token's.
        #[arg(
            required_unless_present = "client",
            conflicts_with = "client",
            allow_hyphen_values = true
        )]
        jti: Option<String>,
        /// Revoke every refresh token of this client instead, tollgate's and
        /// incumbents' (also those never presented yet).
        #[arg(long, allow_hyphen_values = true)]
        client: Option<String>,
        #[arg(long, default_value = "default")]
        env: String,
    },
    /// Accept refresh tokens an incumbent signed (switching over without
    /// re-onboarding partners).
    Trust(TrustArgs),
    /// Stop accepting an incumbent's refresh tokens.
    Untrust {
        /// The trusted issuer's name.
        name: String,
        #[arg(long, default_value = "default")]
        env: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key for a client; printed once, only a keyed hash is kept.
    Create {
        /// The client it acts for.
        #[arg(long, allow_hyphen_values = true)]
        client: String,
        #[arg(long, default_value = "default")]
        env: String,
        /// How long it works, e.g. 90d [default: until revoked].
        #[arg(long)]
        expires: Option<String>,
        /// A label for people (where the key is used).
        #[arg(long)]
        name: Option<String>,
    },
    /// List API keys (ids and dates, never the keys).
    List {
        /// Only this client's.
        #[arg(long, allow_hyphen_values = true)]
        client: Option<String>,
        #[arg(long, default_value = "default")]
        env: String,
    },
    /// Revoke an API key, by its id, tgk_<id>, or the whole key as found.
    Revoke {
        /// The key's id (or tgk_<id>, or the whole key).
        id: String,
        #[arg(long, default_value = "default")]
        env: String,
    },
    /// Issue a new key for the same client (printed once); the old one keeps
    /// working for the grace period.
    Rotate {
        /// The key's id (or tgk_<id>, or the whole key).
        id: String,
        #[arg(long, default_value = "default")]
        env: String,
        /// How long the old key keeps working, e.g. 24h or 0s.
        #[arg(long, default_value = "24h")]
        grace: String,
        /// How long the new key works [default: as long as the old one was
        /// made to; until revoked if it had no expiry].
        #[arg(long)]
        expires: Option<String>,
    },
}

/// Where an incumbent's verification key comes from: exactly one.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct TrustKeyArgs {
    /// A JWKS file (RS256, ES256 or EdDSA public keys).
    #[arg(long, value_name = "FILE")]
    pub jwks: Option<PathBuf>,
    /// A PEM public key file (RSA, EC P-256 or Ed25519).
    #[arg(long, value_name = "FILE")]
    pub pem: Option<PathBuf>,
    /// A file holding the HS256 shared secret (stored sealed; a trailing
    /// newline is not part of it).
    #[arg(long, value_name = "FILE")]
    pub hs256_secret_file: Option<PathBuf>,
}

/// `refresh-jwt trust`.
#[derive(Debug, Args)]
pub struct TrustArgs {
    #[command(flatten)]
    pub key: TrustKeyArgs,
    #[arg(long, default_value = "default")]
    pub env: String,
    /// Which grant accepts the tokens: bearer-exchange (refresh JWTs),
    /// device-credentials (Spring refresh tokens) or header-login (its
    /// refresh tokens, and its access tokens at /refresh).
    #[arg(long = "for", default_value = "bearer-exchange")]
    pub purpose: String,
    /// A name for this issuer (for list and untrust).
    #[arg(long, default_value = "incumbent")]
    pub name: String,
    /// Required `iss` of its tokens.
    #[arg(long)]
    pub issuer: Option<String>,
    /// Required `aud` of its tokens.
    #[arg(long)]
    pub audience: Option<String>,
    /// The claim naming the tollgate client [default: sub for
    /// bearer-exchange, client_id otherwise; header-login: the user's
    /// client when the token has none].
    #[arg(long)]
    pub client_claim: Option<String>,
    /// device-credentials and header-login: the claim naming the user
    /// [default: user_name, then device_id; header-login: email, then
    /// user_name, then sub].
    #[arg(long)]
    pub user_claim: Option<String>,
    /// bearer-exchange: the API of the access tokens [default: the
    /// client's only API].
    #[arg(long)]
    pub api: Option<String>,
}

/// A user's password, from exactly one source.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct PasswordArgs {
    /// The password (or set TOLLGATE_USER_PASSWORD to keep it out of `ps`).
    // A password may begin with `-`.
    #[arg(
        long,
        env = "TOLLGATE_USER_PASSWORD",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub password: Option<String>,
    /// Import by md5_hex(password), as devices send it, when the password itself is unknown.
    #[arg(long)]
    pub password_md5: Option<String>,
}

#[derive(Debug, Args)]
pub struct UserRef {
    /// The username.
    // Imported usernames may begin with `-` (see [`ClientRef`]).
    #[arg(allow_hyphen_values = true)]
    pub username: String,
    #[arg(long, default_value = "default")]
    pub env: String,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user of a client.
    Create {
        /// The client it belongs to.
        #[arg(long, allow_hyphen_values = true)]
        client: String,
        /// Login name (e-mail address, device id); unique per environment.
        #[arg(long, allow_hyphen_values = true)]
        username: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[arg(long, default_value = "default")]
        env: String,
        /// A role (Spring authority, e.g. ROLE_CATALOG; repeatable); none:
        /// its client's count.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// List users (never their password hashes).
    List {
        /// Only the users of this client.
        #[arg(long, allow_hyphen_values = true)]
        client: Option<String>,
        #[arg(long, default_value = "default")]
        env: String,
    },
    /// Replace a user's roles (Spring authorities; none: its client's count).
    SetRoles {
        #[command(flatten)]
        user: UserRef,
        /// A role, e.g. ROLE_CATALOG (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Disable a user: no more logins or refreshes.
    Disable(UserRef),
    /// Enable a disabled user.
    Enable(UserRef),
    /// Delete a user and revoke its sessions.
    Delete(UserRef),
    /// Set a user's password.
    SetPassword {
        #[command(flatten)]
        user: UserRef,
        #[command(flatten)]
        password: PasswordArgs,
        /// Keep the user's sessions (by default a new password ends them:
        /// whoever knew the old one may hold a refresh token).
        #[arg(long)]
        keep_sessions: bool,
    },
    /// Import an incumbent's users with their password hashes as it stored
    /// them (MD5, bcrypt or argon2), all or none; each is re-hashed to
    /// argon2id at its first login.
    Import(UserImportArgs),
}

/// `user import`.
#[derive(Debug, Args)]
pub struct UserImportArgs {
    /// The file: CSV (`username,hash[,input]`, an optional header) or JSON
    /// lines (`{"username","hash","input"}`).
    pub file: PathBuf,
    /// The client the users belong to.
    #[arg(long, allow_hyphen_values = true)]
    pub client: String,
    #[arg(long, default_value = "default")]
    pub env: String,
    /// What the hashes are of, unless a line says: `password`, or `md5`
    /// (md5_hex of the password, what Dive's devices send).
    #[arg(long, default_value = "password")]
    pub hashed: String,
    /// csv or jsonl [default: by the file's name, else its first line].
    #[arg(long)]
    pub format: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use clap::Parser as _;

    use super::{Cli, ClientCommand, Command, RefreshJwtCommand, UserCommand};

    /// A refresh JWT's id is base64url, so one in 64 starts with `-`:
    /// it is still the id, not an option.
    #[test]
    fn a_jti_may_start_with_a_hyphen() {
        let cli =
            Cli::try_parse_from(["tollgate", "refresh-jwt", "revoke", "-oxXLKIYz6cs"]).unwrap();
        match cli.command {
            Command::RefreshJwt(RefreshJwtCommand::Revoke { jti, .. }) => {
                assert_eq!(jti.as_deref(), Some("-oxXLKIYz6cs"));
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    /// An imported client's id and secret, and a user's password, may start
    /// with `-` (a generated base64url secret does one time in 64).
    #[test]
    fn imported_credentials_may_start_with_a_hyphen() {
        let create = [
            "tollgate",
            "client",
            "create",
            "--name",
            "p",
            "--client-id",
            "-id",
            "--client-secret",
            "-RxaeIXPaLC",
            "--api",
            "rest",
        ];
        match Cli::try_parse_from(create).unwrap().command {
            Command::Client(ClientCommand::Create(a)) => {
                assert_eq!(a.client_id.as_deref(), Some("-id"));
                assert_eq!(a.client_secret.as_deref(), Some("-RxaeIXPaLC"));
            }
            other => panic!("parsed as {other:?}"),
        }
        let user = [
            "tollgate",
            "user",
            "create",
            "--client",
            "c",
            "--username",
            "u",
            "--password",
            "-pw",
        ];
        match Cli::try_parse_from(user).unwrap().command {
            Command::User(UserCommand::Create { password, .. }) => {
                assert_eq!(password.password.as_deref(), Some("-pw"));
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    /// Every argument naming a client or a user takes an imported id that
    /// begins with `-`, wherever it stands among the global flags; the
    /// command's own flags stay flags.
    #[test]
    fn client_and_user_references_may_start_with_a_hyphen() {
        let cases: &[&[&str]] = &[
            &["client", "show", "-id9"],
            &["client", "show", "-id9", "--json"],
            &["client", "show", "--json", "-id9", "--env", "e"],
            &["client", "delete", "-id9"],
            &["client", "disable", "-id9"],
            &["client", "enable", "-id9"],
            &["client", "update", "-id9", "--name", "n"],
            &["client", "rotate-secret", "-id9", "--grace", "0s"],
            &["client", "set-obligation", "-id9", "inherit"],
            &["client", "revoke-secret", "-id9", "--all-but-newest"],
            &[
                "user",
                "create",
                "--client",
                "-id9",
                "--username",
                "-u9",
                "--password",
                "p",
            ],
            &["user", "list", "--client", "-id9"],
            &["user", "disable", "-u9"],
            &["user", "delete", "-u9", "--json"],
            &["user", "set-roles", "-u9", "--role", "R"],
            &["user", "import", "users.csv", "--client", "-id9"],
            &["refresh-jwt", "issue", "--client", "-id9"],
            &["refresh-jwt", "revoke", "--client", "-id9"],
            &["api-key", "create", "--client", "-id9"],
            &["api-key", "list", "--client", "-id9"],
            &[
                "token",
                "get",
                "--base-url",
                "http://x",
                "--client-id",
                "-id9",
                "--username",
                "-u9",
            ],
        ];
        for args in cases {
            let argv = std::iter::once("tollgate").chain(args.iter().copied());
            let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let parsed = format!("{:?}", cli.command);
            for value in ["-id9", "-u9"] {
                if args.contains(&value) {
                    assert!(
                        parsed.contains(&format!("\"{value}\"")),
                        "{args:?}: {parsed}"
                    );
                }
            }
            assert_eq!(cli.global.json, args.contains(&"--json"), "{args:?}");
        }
        // A flag of the command is still the flag, not an id.
        let help = Cli::try_parse_from(["tollgate", "client", "show", "-h"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        match Cli::try_parse_from(["tollgate", "client", "show", "--", "--json"])
            .unwrap()
            .command
        {
            Command::Client(ClientCommand::Show(c)) => assert_eq!(c.client_id, "--json"),
            other => panic!("parsed as {other:?}"),
        }
    }
}
