//! Runs one command: opens what it needs and prints human text or `--json`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, anyhow, bail};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tollgate_core::Tollgate;
use tollgate_core::crypto::master::MASTER_KEY_ENV;
use tollgate_core::model::{
    Alg, Api, ApiGrant, Capability, Client, Dialect, Environment, GrantType, Obligation, User,
};
use tollgate_core::service::UserPassword;
use tollgate_core::service::{ApiUpdate, ClientUpdate, EnvSettings, NewClient, ObligationTarget};
use tollgate_core::time::{now, rfc3339};

use crate::app::{load_master, open_store, public_url};
use crate::cli::{
    ApiCommand, BackupArgs, Cli, ClientCommand, ClientCreate, ClientUpdateArgs, Command,
    EnvCommand, GateCommand, KeyCommand, RefreshJwtCommand, UserCommand,
};
use crate::config::{Config, LogFormat, Overrides, parse_duration};

/// Dispatches a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    // Offline: needs neither the configuration nor a store.
    if let Command::Gate(GateCommand::CheckPolicy { file }) = &cli.command {
        return crate::gate::check_policy(file, cli.global.json);
    }
    // The partner's side: needs no configuration, store or master key.
    if let Command::Token(crate::cli::TokenCommand::Get(args)) = cli.command {
        return crate::token::get(args, cli.global.json).await;
    }
    // Remote: the admin API of another server; no local configuration.
    if let Some(server) = cli.global.server.clone() {
        return crate::remote::run(cli, server).await;
    }
    let mut flags = Overrides::new();
    if let Some(d) = &cli.global.data_dir {
        flags.insert("data_dir", d.display().to_string());
    }
    if let Some(u) = &cli.global.database_url {
        flags.insert("database_url", u.clone());
    }
    if let Command::Serve(s) = &cli.command {
        for (k, v) in [
            ("listen", s.listen.clone()),
            ("public_url", s.public_url.clone()),
            ("log_format", s.log_format.clone()),
            ("contracts", s.contracts.clone()),
            (
                "tls_cert",
                s.tls_cert.as_ref().map(|p| p.display().to_string()),
            ),
            (
                "tls_key",
                s.tls_key.as_ref().map(|p| p.display().to_string()),
            ),
        ] {
            if let Some(v) = v {
                flags.insert(k, v);
            }
        }
    }
    let config = Config::load(cli.global.config.as_deref(), &flags)?;
    if matches!(&cli.command, Command::Serve(s) if s.print_config) {
        print!("{}", config.to_toml_redacted());
        return Ok(());
    }
    init_logging(&config, matches!(cli.command, Command::Serve(_)));
    let json = cli.global.json;
    match cli.command {
        Command::Serve(_) => crate::serve::run(config).await,
        Command::Env(c) => env_cmd(&open(&config).await?, &config, c, json).await,
        Command::Api(c) => api_cmd(&open(&config).await?, c, json).await,
        Command::Client(c) => client_cmd(&open(&config).await?, c, json).await,
        Command::Doctor => crate::doctor::run(&config, json).await,
        Command::Backup(b) => backup(&config, b, json).await,
        Command::MigrateStore(m) => crate::migrate::run(&config, m, json).await,
        Command::Gate(GateCommand::CheckPolicy { file }) => crate::gate::check_policy(&file, json),
        Command::Token(_) => unreachable_token(),
        Command::RefreshJwt(c) => refresh_jwt_cmd(&open(&config).await?, c, json).await,
        Command::ApiKey(c) => crate::api_key::run(&open(&config).await?, c, json).await,
        Command::Partner(c) => crate::partner::run(&open(&config).await?, &config, c, json).await,
        Command::User(c) => user_cmd(&open(&config).await?, c, json).await,
        Command::Admin(crate::cli::AdminCommand::Bootstrap { name }) => {
            crate::admin::bootstrap(&open(&config).await?, &config, &name, json).await
        }
        Command::Audit(a) => crate::admin::audit(&open(&config).await?, a, json).await,
        Command::Key(KeyCommand::List { env }) => {
            // With the contracts' settings: a retired key stays published
            // as long as the longest lifetime they give a token.
            let contracts = std::sync::Arc::new(config.contracts());
            let tg = open(&config)
                .await?
                .with_env_extension(std::sync::Arc::new(tollgate_http::contracts::Resolver(
                    contracts,
                )))
                .await?;
            key_list(&tg, env, json).await
        }
        Command::Key(KeyCommand::Import(a)) => {
            crate::carry::key_import(&open(&config).await?, a, json).await
        }
        Command::Key(KeyCommand::Publish { jwks, env, name }) => {
            crate::carry::key_publish(&open(&config).await?, &env, &name, &jwks, json).await
        }
        Command::Key(KeyCommand::Unpublish { name, env }) => {
            crate::carry::key_unpublish(&open(&config).await?, &env, &name, json).await
        }
        Command::Key(KeyCommand::Rotate { env, publish_delay }) => {
            let delay = parse_duration(&publish_delay)
                .with_context(|| format!("--publish-delay {publish_delay}"))?
                .as_secs();
            let tg = open(&config).await?;
            let rec = tg.rotate_key(&env, delay).await?;
            print(
                json,
                json!({"env": rec.env, "kid": rec.kid, "alg": rec.alg.as_str(), "activates_at": rfc3339(rec.activates_at)}),
                || {
                    format!(
                        "new key {} for {}: published now, signs from {}\n",
                        rec.kid,
                        rec.env,
                        rfc3339(rec.activates_at)
                    )
                },
            );
            Ok(())
        }
    }
}

/// `token` commands return before the configuration is loaded.
fn unreachable_token() -> Result<()> {
    bail!("token commands run before the configuration is read")
}

fn init_logging(config: &Config, serving: bool) {
    let default = if serving { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Opens the store and the core service for `config`.
async fn open(config: &Config) -> Result<Tollgate> {
    let store = open_store(config).await?;
    let master = load_master(config, store.as_ref()).await?;
    Ok(Tollgate::open(store, &master, &public_url(config, config.listen)).await?)
}

/// `tollgate backup FILE`: an online copy of the SQLite store.
async fn backup(config: &Config, args: BackupArgs, json_out: bool) -> Result<()> {
    const PG_DUMP: &str = "this installation's store is PostgreSQL: back it up with pg_dump, \
         e.g. pg_dump --format=custom --file FILE \"$TOLLGATE_DATABASE_URL\"";
    match &config.database_url {
        // Said before connecting: no need to reach the server to know.
        Some(url) if url.starts_with("postgres:") || url.starts_with("postgresql:") => {
            bail!("{PG_DUMP}")
        }
        Some(_) => {}
        None => {
            let db = tollgate_store::database_path(&config.data_dir);
            if !db.exists() {
                bail!(
                    "there is no database at {}: nothing to back up (wrong --data-dir?)",
                    db.display()
                );
            }
        }
    }
    let store = open_store(config).await?;
    let written = store.backup(&args.file, args.force).await;
    store.close().await;
    let report = match written {
        Ok(r) => r,
        Err(tollgate_store::BackupError::Exists(p)) => bail!(
            "{} already exists; refusing to overwrite it (pass --force to replace it)",
            p.display()
        ),
        Err(tollgate_store::BackupError::Unsupported { .. }) => bail!("{PG_DUMP}"),
        Err(e) => return Err(e.into()),
    };
    let tables: serde_json::Map<String, serde_json::Value> = report
        .tables
        .iter()
        .map(|(t, n)| (t.clone(), json!(n)))
        .collect();
    print(
        json_out,
        json!({
            "file": report.path.display().to_string(),
            "bytes": report.bytes,
            "schema_version": report.schema_version,
            "tables": tables,
            "check": report.check,
        }),
        || {
            let mut text = format!(
                "wrote {} ({} bytes, schema version {}, check: {})\n",
                report.path.display(),
                report.bytes,
                report.schema_version,
                report.check
            );
            for (t, n) in &report.tables {
                text.push_str(&format!("  {t}\t{n} rows\n"));
            }
            text.push_str(&format!(
                "The master key is not in the backup: keep {} (or {MASTER_KEY_ENV}) with it, \
                 stored apart; without the key the backup's signing keys cannot be used.\n",
                config.data_dir.join(crate::master::KEY_FILE).display()
            ));
            text
        },
    );
    if report.check != "ok" {
        bail!(
            "the copy does not pass SQLite's quick_check: {}",
            report.check
        );
    }
    Ok(())
}

fn print(json: bool, value: serde_json::Value, text: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        print!("{}", text());
    }
}

fn env_json(tg: &Tollgate, e: &Environment) -> serde_json::Value {
    json!({
        "name": e.name,
        "issuer": tg.issuer_for(e),
        "alg": e.alg.as_str(),
        "hosts": e.hosts,
        "dialect": e.dialect.as_str(),
        "contracts": e.contracts,
        "settings": e.settings,
    })
}

fn env_settings(
    dialect: Option<String>,
    contracts: Option<String>,
    hosts: Option<Vec<String>>,
) -> Result<EnvSettings> {
    Ok(EnvSettings {
        hosts,
        dialect: dialect.map(|d| d.parse::<Dialect>()).transpose()?,
        contracts: contracts
            .map(|c| tollgate_http::contracts::parse_list(&c))
            .transpose()
            .map_err(|e| anyhow!("--contracts: {e}"))?,
        ..Default::default()
    })
}

/// `--set KEY=VALUE` and `--unset KEY` as changes of an environment's
/// setting overrides.
fn setting_changes(set: &[String], unset: &[String]) -> Result<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    for s in set {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {s}: write KEY=VALUE"))?;
        out.insert(k.trim().to_string(), Some(v.trim().to_string()));
    }
    for k in unset {
        out.insert(k.trim().to_string(), None);
    }
    Ok(out)
}

/// Checks an environment as it would be after `changes` against the
/// server's settings: every key known, every value acceptable, no paths
/// colliding there. (A server started with other settings checks again
/// when it loads the environment, and ignores overrides that no longer fit.)
fn check_env_settings(config: &Config, env: &Environment, settings: &EnvSettings) -> Result<()> {
    let mut after = env.clone();
    if let Some(c) = &settings.contracts {
        after.contracts = c.clone();
    }
    for (k, v) in &settings.settings {
        match v {
            Some(v) => after.settings.insert(k.clone(), v.clone()),
            None => after.settings.remove(k),
        };
    }
    config
        .contracts()
        .for_env(&after)
        .map(drop)
        .map_err(|e| anyhow!("environment {}: {e}", env.name))
}

async fn env_cmd(tg: &Tollgate, config: &Config, c: EnvCommand, json_out: bool) -> Result<()> {
    match c {
        EnvCommand::Create {
            name,
            issuer,
            alg,
            hosts,
            dialect,
            contracts,
        } => {
            let settings = env_settings(dialect, contracts, Some(hosts))?;
            // Auth0 signs with RS256; an auth0-dialect environment does too
            // unless --alg says otherwise.
            let alg: Alg = match alg {
                Some(a) => a.parse()?,
                None if settings.dialect == Some(Dialect::Auth0) => Alg::RS256,
                None => Alg::default(),
            };
            let env = tg.create_environment(&name, issuer, alg, settings).await?;
            let issuer = tg.issuer_for(&env);
            print(json_out, env_json(tg, &env), || {
                format!(
                    "created environment {} (issuer {issuer}, {}, dialect {})\n",
                    env.name,
                    env.alg.as_str(),
                    env.dialect.as_str()
                )
            });
        }
        EnvCommand::Update {
            name,
            dialect,
            contracts,
            hosts,
            no_hosts,
            issuer,
            alg,
            publish_delay,
            set,
            unset,
        } => {
            let hosts = (no_hosts || !hosts.is_empty()).then_some(hosts);
            let mut settings = env_settings(dialect, contracts, hosts)?;
            settings.settings = setting_changes(&set, &unset)?;
            settings.issuer = issuer.map(|i| (i != "derive").then_some(i));
            let current = tg
                .list_environments()
                .await?
                .into_iter()
                .find(|e| e.name == name)
                .ok_or_else(|| anyhow!("no environment named '{name}'"))?;
            check_env_settings(config, &current, &settings)?;
            // The algorithm's check comes before anything is written.
            let alg = alg
                .map(|a| -> Result<(Alg, u64)> {
                    let delay = parse_duration(&publish_delay)
                        .with_context(|| format!("--publish-delay {publish_delay}"))?
                        .as_secs();
                    let alg: Alg = a.parse()?;
                    Tollgate::check_algorithm_change(current.alg, alg)?;
                    Ok((alg, delay))
                })
                .transpose()?;
            let mut env = tg.update_environment(&name, settings).await?;
            let mut new_key = None;
            if let Some((alg, delay)) = alg {
                new_key = tg.change_algorithm(&name, alg, delay).await?;
                env.alg = alg;
            }
            let mut v = env_json(tg, &env);
            if let Some(k) = &new_key {
                v["new_key"] = json!({"kid": k.kid, "alg": k.alg.as_str(), "activates_at": rfc3339(k.activates_at)});
            }
            print(json_out, v, || {
                let mut text = format!(
                    "updated environment {}: issuer {}, {}, dialect {}, contracts [{}], hosts [{}], settings [{}]\n",
                    env.name,
                    tg.issuer_for(&env),
                    env.alg.as_str(),
                    env.dialect.as_str(),
                    env.contracts.iter().cloned().collect::<Vec<_>>().join(", "),
                    env.hosts.join(", "),
                    env.settings
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if let Some(k) = &new_key {
                    text.push_str(&format!(
                        "new {} key {}: published now, signs from {}\n",
                        k.alg.as_str(),
                        k.kid,
                        rfc3339(k.activates_at)
                    ));
                }
                text
            });
        }
        EnvCommand::Show { name } => {
            let env = tg
                .list_environments()
                .await?
                .into_iter()
                .find(|e| e.name == name)
                .ok_or_else(|| anyhow!("no environment named '{name}'"))?;
            let server = config.contracts();
            let effective = server.resolve(&env).settings;
            let rows: Vec<(String, String, &str)> = effective
                .values()
                .into_iter()
                .map(|(k, v)| {
                    let source = if env.settings.contains_key(k.name) {
                        "environment"
                    } else {
                        "server"
                    };
                    (k.name.to_string(), v, source)
                })
                .collect();
            let mut v = env_json(tg, &env);
            v["effective"] = json!(
                rows.iter()
                    .map(|(k, val, src)| json!({"key": k, "value": val, "source": src}))
                    .collect::<Vec<_>>()
            );
            print(json_out, v, || {
                let mut text = format!(
                    "environment {}\n  issuer     {}\n  alg        {}\n  dialect    {}\n  contracts  {}\n  hosts      {}\nsettings (environment: set here; server: the server's configuration):\n",
                    env.name,
                    tg.issuer_for(&env),
                    env.alg.as_str(),
                    env.dialect.as_str(),
                    env.contracts.iter().cloned().collect::<Vec<_>>().join(","),
                    env.hosts.join(","),
                );
                for (k, val, src) in &rows {
                    text.push_str(&format!("  {k} = {val}\t({src})\n"));
                }
                text
            });
        }
        EnvCommand::List => {
            let envs = tg.list_environments().await?;
            let rows: Vec<_> = envs.iter().map(|e| env_json(tg, e)).collect();
            print(json_out, json!(rows), || {
                envs.iter()
                    .map(|e| {
                        format!(
                            "{}\t{}\t{}\t{}\t{}\n",
                            e.name,
                            e.alg.as_str(),
                            e.dialect.as_str(),
                            tg.issuer_for(e),
                            e.contracts.iter().cloned().collect::<Vec<_>>().join(",")
                        )
                    })
                    .collect()
            });
        }
    }
    Ok(())
}

fn api_json(a: &Api) -> serde_json::Value {
    json!({
        "env": a.env,
        "identifier": a.identifier,
        "permissions": a.permissions,
        "packages": a.packages,
        "token_lifetime": a.token_lifetime,
        "obligation": a.obligation,
        "token_permissions": a.token_permissions,
    })
}

async fn api_cmd(tg: &Tollgate, c: ApiCommand, json_out: bool) -> Result<()> {
    match c {
        ApiCommand::SetObligation {
            identifier,
            obligation,
            env,
        } => {
            let ob: Obligation = obligation.parse()?;
            tg.set_obligation(&env, ObligationTarget::Api(&identifier), Some(ob))
                .await?;
            print(
                json_out,
                json!({"api": identifier, "obligation": ob}),
                || format!("API {identifier}: obligation {ob}\n"),
            );
        }
        ApiCommand::Create {
            identifier,
            env,
            permissions,
            packages,
            obligation,
            token_lifetime,
            token_permissions,
        } => {
            let mut perms: BTreeSet<String> = permissions.into_iter().collect();
            let pkgs = parse_packages(&packages)?;
            for members in pkgs.values() {
                perms.extend(members.iter().cloned());
            }
            let lifetime = token_lifetime
                .map(|t| lifetime_arg(&t, "its contract's setting"))
                .transpose()?
                .flatten();
            let api = tg
                .create_api(Api {
                    env,
                    identifier,
                    permissions: perms,
                    packages: pkgs,
                    token_lifetime: lifetime,
                    obligation: obligation.map(|o| o.parse()).transpose()?,
                    token_permissions,
                    created_at: now(),
                })
                .await?;
            print(json_out, api_json(&api), || {
                format!(
                    "created API {} ({} permissions, {} packages, tokens live {})\n",
                    api.identifier,
                    api.permissions.len(),
                    api.packages.len(),
                    lifetime_text(api.token_lifetime, "as the contract's setting says")
                )
            });
        }
        ApiCommand::Update {
            identifier,
            env,
            add_permissions,
            remove_permissions,
            packages,
            remove_packages,
            token_lifetime,
            obligation,
            token_permissions,
        } => {
            let change = ApiUpdate {
                add_permissions: add_permissions.into_iter().collect(),
                remove_permissions: remove_permissions.into_iter().collect(),
                set_packages: parse_packages(&packages)?,
                remove_packages: remove_packages.into_iter().collect(),
                token_lifetime: token_lifetime
                    .map(|t| lifetime_arg(&t, "inherit"))
                    .transpose()?,
                obligation: obligation
                    .map(|o| {
                        o.parse::<Obligation>()
                            .map(|o| (o != Obligation::Off).then_some(o))
                    })
                    .transpose()?,
                token_permissions,
            };
            let api = tg.update_api(&env, &identifier, change).await?;
            print(json_out, api_json(&api), || {
                format!(
                    "updated API {}: {} permissions, {} packages, tokens live {}, obligation {}\n",
                    api.identifier,
                    api.permissions.len(),
                    api.packages.len(),
                    lifetime_text(api.token_lifetime, "as the contract's setting says"),
                    api.obligation.map_or("off".to_string(), |o| o.to_string())
                )
            });
        }
        ApiCommand::List { env } => {
            let apis = tg.list_apis(&env).await?;
            print(
                json_out,
                json!(apis.iter().map(api_json).collect::<Vec<_>>()),
                || {
                    apis.iter()
                        .map(|a| {
                            format!(
                                "{}\t{}\t{}\n",
                                a.identifier,
                                a.token_lifetime
                                    .map_or("-".to_string(), |t| format!("{t}s")),
                                a.permissions.iter().cloned().collect::<Vec<_>>().join(" ")
                            )
                        })
                        .collect()
                },
            );
        }
        ApiCommand::Delete { identifier, env } => {
            tg.delete_api(&env, &identifier).await?;
            print(json_out, json!({"deleted": identifier}), || {
                format!("deleted API {identifier}\n")
            });
        }
    }
    Ok(())
}

/// `--package NAME=PERM1,PERM2` values as packages.
fn parse_packages(specs: &[String]) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut pkgs = BTreeMap::new();
    for p in specs {
        let (name, list) = p
            .split_once('=')
            .ok_or_else(|| anyhow!("--package {p}: write NAME=PERM1,PERM2"))?;
        let members: BTreeSet<String> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        pkgs.insert(name.to_string(), members);
    }
    Ok(pkgs)
}

/// A `--token-lifetime` value: a duration, or `inherit` (`None`: the next
/// less specific setting applies).
fn lifetime_arg(text: &str, inherit: &str) -> Result<Option<u64>> {
    if text == "inherit" {
        return Ok(None);
    }
    let secs = parse_duration(text)
        .with_context(|| format!("--token-lifetime {text} (a duration, or inherit: {inherit})"))?
        .as_secs();
    Ok(Some(secs))
}

fn lifetime_text(lifetime: Option<u64>, otherwise: &str) -> String {
    lifetime.map_or(otherwise.to_string(), |t| format!("{t}s"))
}

fn client_json(c: &Client) -> serde_json::Value {
    json!({
        "env": c.env,
        "client_id": c.client_id,
        "name": c.name,
        "enabled": c.enabled,
        "apis": c.apis.iter().map(|g| json!({"api": g.api, "grants": g.grants})).collect::<Vec<_>>(),
        "grant_types": c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "token_lifetime": c.token_lifetime,
        "claims": c.extra_claims,
        "capabilities": c.capabilities,
        "obligation": c.obligation,
        "roles": c.roles,
        "public": c.secrets.is_empty(),
        "secrets": c.secrets.iter().map(|s| json!({
            "id": s.id,
            "created_at": rfc3339(s.created_at),
            "expires_at": s.expires_at.map(rfc3339),
        })).collect::<Vec<_>>(),
        "created_at": rfc3339(c.created_at),
    })
}

fn parse_api_grant(spec: &str) -> ApiGrant {
    match spec.split_once('=') {
        Some((api, list)) => ApiGrant {
            api: api.to_string(),
            grants: list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        },
        None => ApiGrant {
            api: spec.to_string(),
            grants: Vec::new(),
        },
    }
}

async fn client_create(tg: &Tollgate, c: ClientCreate, json_out: bool) -> Result<()> {
    let grant_types = c
        .grants
        .iter()
        .map(|g| g.parse::<GrantType>())
        .collect::<Result<BTreeSet<_>, _>>()?;
    let token_lifetime = c
        .token_lifetime
        .map(|t| lifetime_arg(&t, "its API's"))
        .transpose()?
        .flatten();
    let extra_claims = c
        .claims
        .as_deref()
        .map(claims_arg)
        .transpose()?
        .unwrap_or_default();
    let (client, secret) = tg
        .create_client(NewClient {
            env: c.env,
            name: c.name,
            client_id: c.client_id,
            client_secret: c.client_secret.map(SecretString::from),
            apis: c.apis.iter().map(|s| parse_api_grant(s)).collect(),
            grant_types,
            token_lifetime,
            extra_claims,
            capabilities: if c.introspect {
                [Capability::Introspect].into_iter().collect()
            } else {
                BTreeSet::new()
            },
            public: c.public,
            obligation: c.obligation.map(|o| o.parse()).transpose()?,
            roles: c.roles.into_iter().collect(),
        })
        .await?;
    let Some(secret) = secret else {
        print(
            json_out,
            json!({"client_id": client.client_id, "public": true, "client_key": client_key(&client.client_id, None)}),
            || {
                format!(
                    "client_id:  {}\nclient_key: {}\n\nA public client: it has no secret and identifies itself by id alone\n(client_key is the value of 'Authorization: Basic' for the device-credentials contract).\n",
                    client.client_id,
                    client_key(&client.client_id, None)
                )
            },
        );
        return Ok(());
    };
    print(
        json_out,
        json!({
            "client_id": client.client_id,
            "client_secret": secret.expose_secret(),
            "client_key": client_key(&client.client_id, Some(&secret)),
        }),
        || {
            format!(
                "client_id:     {}\nclient_secret: {}\n\nThe secret is shown only this once: hand it to the partner over a secure channel now.\n",
                client.client_id,
                secret.expose_secret()
            )
        },
    );
    Ok(())
}

/// A `--claims` value: a JSON object.
fn claims_arg(text: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_str(text).context("--claims must be a JSON object")? {
        serde_json::Value::Object(m) => Ok(m),
        _ => bail!("--claims must be a JSON object"),
    }
}

/// `client update`: the changes given, nothing else.
async fn client_update(tg: &Tollgate, c: ClientUpdateArgs, json_out: bool) -> Result<()> {
    let grant_types = c
        .grants
        .iter()
        .map(|g| g.parse::<GrantType>())
        .collect::<Result<BTreeSet<_>, _>>()?;
    let change = ClientUpdate {
        name: c.name,
        apis: (!c.apis.is_empty()).then(|| c.apis.iter().map(|s| parse_api_grant(s)).collect()),
        grant_types: (!grant_types.is_empty()).then_some(grant_types),
        token_lifetime: c
            .token_lifetime
            .map(|t| lifetime_arg(&t, "its API's"))
            .transpose()?,
        extra_claims: c.claims.as_deref().map(claims_arg).transpose()?,
        capabilities: c.introspect.map(|on| {
            if on {
                [Capability::Introspect].into_iter().collect()
            } else {
                BTreeSet::new()
            }
        }),
        obligation: c
            .obligation
            .map(|o| match o.as_str() {
                "inherit" => Ok(None),
                other => other.parse::<Obligation>().map(Some),
            })
            .transpose()?,
        roles: (c.no_roles || !c.roles.is_empty()).then(|| c.roles.into_iter().collect()),
    };
    let client = tg
        .update_client(&c.client.env, &c.client.client_id, change)
        .await?;
    let v = client_json(&client);
    let pretty = serde_json::to_string_pretty(&v)?;
    print(json_out, v, || {
        format!("updated client {}:\n{pretty}\n", client.client_id)
    });
    Ok(())
}

/// The "client key" of pages like Dive's (`Authorization: Basic {client_key}`):
/// base64 of `client_id:client_secret`, or of the bare id of a public client.
fn client_key(client_id: &str, secret: Option<&SecretString>) -> String {
    use base64::Engine as _;
    let plain = match secret {
        Some(s) => format!("{client_id}:{}", s.expose_secret()),
        None => client_id.to_string(),
    };
    base64::engine::general_purpose::STANDARD.encode(plain)
}

async fn client_cmd(tg: &Tollgate, c: ClientCommand, json_out: bool) -> Result<()> {
    match c {
        ClientCommand::Create(c) => client_create(tg, c, json_out).await?,
        ClientCommand::Update(c) => client_update(tg, c, json_out).await?,
        ClientCommand::List { env } => {
            let clients = tg.list_clients(&env).await?;
            print(
                json_out,
                json!(clients.iter().map(client_json).collect::<Vec<_>>()),
                || {
                    clients
                        .iter()
                        .map(|c| {
                            format!(
                                "{}\t{}\t{}\n",
                                c.client_id,
                                if c.enabled { "enabled" } else { "disabled" },
                                c.name
                            )
                        })
                        .collect()
                },
            );
        }
        ClientCommand::Show(r) => {
            let c = tg.get_client(&r.env, &r.client_id).await?;
            let v = client_json(&c);
            let pretty = serde_json::to_string_pretty(&v)?;
            print(json_out, v, || format!("{pretty}\n"));
        }
        ClientCommand::Disable(r) => {
            tg.set_client_enabled(&r.env, &r.client_id, false).await?;
            print(
                json_out,
                json!({"client_id": r.client_id, "enabled": false}),
                || format!("disabled client {}\n", r.client_id),
            );
        }
        ClientCommand::Enable(r) => {
            tg.set_client_enabled(&r.env, &r.client_id, true).await?;
            print(
                json_out,
                json!({"client_id": r.client_id, "enabled": true}),
                || format!("enabled client {}\n", r.client_id),
            );
        }
        ClientCommand::RotateSecret { client: r, grace } => {
            let grace = parse_duration(&grace)
                .with_context(|| format!("--grace {grace}"))?
                .as_secs();
            let (secret, c) = tg.rotate_secret(&r.env, &r.client_id, grace).await?;
            let until = c
                .secrets
                .iter()
                .filter_map(|s| s.expires_at)
                .max()
                .map(rfc3339);
            print(
                json_out,
                json!({"client_id": c.client_id, "client_secret": secret.expose_secret(), "previous_secrets_expire_at": until}),
                || {
                    format!(
                        "client_id:     {}\nclient_secret: {}\n\nThe previous secret(s) work until {}.\nThe new secret is shown only this once.\n",
                        c.client_id,
                        secret.expose_secret(),
                        until.as_deref().unwrap_or("now (there were none)")
                    )
                },
            );
        }
        ClientCommand::RevokeSecret { client: r, .. } => {
            let c = tg
                .revoke_all_but_newest_secret(&r.env, &r.client_id)
                .await?;
            print(
                json_out,
                json!({"client_id": c.client_id, "secrets": c.secrets.len()}),
                || format!("client {}: only the newest secret works now\n", c.client_id),
            );
        }
        ClientCommand::SetObligation {
            client: r,
            obligation,
        } => {
            let ob: Option<Obligation> = match obligation.as_str() {
                "inherit" => None,
                other => Some(other.parse()?),
            };
            tg.set_obligation(&r.env, ObligationTarget::Client(&r.client_id), ob)
                .await?;
            print(
                json_out,
                json!({"client_id": r.client_id, "obligation": ob}),
                || {
                    format!(
                        "client {}: obligation {}\n",
                        r.client_id,
                        ob.map_or("inherited from its APIs".to_string(), |o| o.to_string())
                    )
                },
            );
        }
        ClientCommand::Delete(r) => {
            tg.delete_client(&r.env, &r.client_id).await?;
            print(json_out, json!({"deleted": r.client_id}), || {
                format!("deleted client {}\n", r.client_id)
            });
        }
    }
    Ok(())
}

async fn key_list(tg: &Tollgate, env: Option<String>, json_out: bool) -> Result<()> {
    let mut keys = tg.list_keys().await?;
    if let Some(e) = &env {
        keys.retain(|(k, _)| &k.env == e);
    }
    let t = now();
    let rows: Vec<_> = keys
        .iter()
        .map(|(k, s)| {
            json!({
                "env": k.env,
                "kid": k.kid,
                "alg": k.alg.as_str(),
                "state": s.state(t).as_str(),
                "published": s.published(t),
                "created_at": rfc3339(k.created_at),
                "activates_at": rfc3339(s.activates_at),
                "retired_at": s.retired_at.map(rfc3339),
                "published_until": s.publish_until.map(rfc3339),
            })
        })
        .collect();
    let (incumbent_rows, incumbent_text) = crate::carry::published_rows(tg, env.as_deref()).await?;
    let mut rows = rows;
    rows.extend(incumbent_rows);
    print(json_out, json!(rows), || {
        let mut text: String = keys
            .iter()
            .map(|(k, s)| {
                format!(
                    "{}\t{}\t{}\t{}\tactivates {}{}\n",
                    k.env,
                    k.kid,
                    k.alg.as_str(),
                    s.state(t).as_str(),
                    rfc3339(s.activates_at),
                    s.retired_at
                        .map(|r| format!(", retired {}", rfc3339(r)))
                        .unwrap_or_default()
                )
            })
            .collect();
        text.push_str(&incumbent_text);
        text
    });
    Ok(())
}

async fn refresh_jwt_cmd(tg: &Tollgate, c: RefreshJwtCommand, json_out: bool) -> Result<()> {
    match c {
        RefreshJwtCommand::Issue {
            client,
            env,
            api,
            ttl,
        } => {
            let ttl = parse_duration(&ttl)
                .with_context(|| format!("--ttl {ttl}"))?
                .as_secs();
            let (token, rec) = tg
                .issue_refresh_jwt(&env, &client, api.as_deref(), ttl)
                .await?;
            print(
                json_out,
                json!({"refresh_jwt": token.expose_secret(), "jti": rec.jti, "client_id": rec.client_id,
                       "api": rec.audience, "expires_at": rfc3339(rec.expires_at)}),
                || {
                    format!(
                        "refresh JWT (id {}, for {} on {}, expires {}):\n{}\n\nIt is shown only this once.\n",
                        rec.jti,
                        rec.client_id,
                        rec.audience,
                        rfc3339(rec.expires_at),
                        token.expose_secret()
                    )
                },
            );
        }
        RefreshJwtCommand::List { env } => {
            let recs = tg.list_refresh_jwts(&env).await?;
            let (trusted_rows, trusted_text) = crate::carry::trusted_rows(tg, &env).await?;
            let mut rows: Vec<_> = recs
                .iter()
                .map(|r| {
                    json!({"kind": "issued", "jti": r.jti, "client_id": r.client_id, "api": r.audience,
                    "created_at": rfc3339(r.created_at), "expires_at": rfc3339(r.expires_at),
                    "revoked_at": r.revoked_at.map(rfc3339)})
                })
                .collect();
            rows.extend(trusted_rows);
            print(json_out, json!(rows), || {
                recs.iter()
                    .map(|r| {
                        format!(
                            "{}\t{}\t{}\texpires {}{}\n",
                            r.jti,
                            r.client_id,
                            r.audience,
                            rfc3339(r.expires_at),
                            if r.revoked_at.is_some() {
                                "\trevoked"
                            } else {
                                ""
                            }
                        )
                    })
                    .chain(std::iter::once(trusted_text))
                    .collect()
            });
        }
        RefreshJwtCommand::Revoke { jti, client, env } => {
            crate::carry::revoke(tg, jti, client, &env, json_out).await?;
        }
        RefreshJwtCommand::Trust(a) => crate::carry::trust(tg, a, json_out).await?,
        RefreshJwtCommand::Untrust { name, env } => {
            crate::carry::untrust(tg, &name, &env, json_out).await?;
        }
    }
    Ok(())
}

fn user_password(p: crate::cli::PasswordArgs) -> Result<UserPassword> {
    match (p.password, p.password_md5) {
        (Some(pw), None) => Ok(UserPassword::Plain(SecretString::from(pw))),
        (None, Some(h)) => Ok(UserPassword::Md5Hex(SecretString::from(h))),
        _ => bail!("give exactly one of --password and --password-md5"),
    }
}

fn user_json(u: &User) -> serde_json::Value {
    json!({
        "env": u.env,
        "username": u.username,
        "client_id": u.client_id,
        "enabled": u.enabled,
        "roles": u.roles,
        "created_at": rfc3339(u.created_at),
    })
}

async fn user_cmd(tg: &Tollgate, c: UserCommand, json_out: bool) -> Result<()> {
    let show = |u: &User, verb: &str| {
        print(json_out, user_json(u), || {
            format!("{verb} user {} (client {})\n", u.username, u.client_id)
        });
    };
    match c {
        UserCommand::Create {
            client,
            username,
            password,
            env,
            roles,
        } => {
            let u = tg
                .create_user_with_roles(
                    &env,
                    &client,
                    &username,
                    user_password(password)?,
                    roles.into_iter().collect(),
                )
                .await?;
            show(&u, "created");
        }
        UserCommand::List { client, env } => {
            let users = tg.list_users(&env, client.as_deref()).await?;
            print(
                json_out,
                json!(users.iter().map(user_json).collect::<Vec<_>>()),
                || {
                    users
                        .iter()
                        .map(|u| {
                            format!(
                                "{}\t{}\t{}\n",
                                u.username,
                                u.client_id,
                                if u.enabled { "enabled" } else { "disabled" }
                            )
                        })
                        .collect()
                },
            );
        }
        UserCommand::SetRoles { user, roles } => show(
            &tg.set_user_roles(&user.env, &user.username, roles.into_iter().collect())
                .await?,
            "set the roles of",
        ),
        UserCommand::Disable(r) => show(
            &tg.set_user_enabled(&r.env, &r.username, false).await?,
            "disabled",
        ),
        UserCommand::Enable(r) => show(
            &tg.set_user_enabled(&r.env, &r.username, true).await?,
            "enabled",
        ),
        UserCommand::Delete(r) => {
            tg.delete_user(&r.env, &r.username).await?;
            print(json_out, json!({"deleted": r.username}), || {
                format!("deleted user {} and revoked its sessions\n", r.username)
            });
        }
        UserCommand::Import(a) => crate::carry::user_import(tg, a, json_out).await?,
        UserCommand::SetPassword {
            user,
            password,
            keep_sessions,
        } => {
            let u = tg
                .set_user_password(
                    &user.env,
                    &user.username,
                    user_password(password)?,
                    keep_sessions,
                )
                .await?;
            show(&u, "set the password of");
        }
    }
    Ok(())
}
