//! `--server URL`: the provisioning commands over a remote server's admin
//! API (docs/ADMIN-API.md) instead of a local store, so an operator needs
//! no shell on the host. The admin token comes from `TOLLGATE_ADMIN_TOKEN`,
//! `--admin-token-file` or (visible to other local users in the process
//! list, so warned about) `--admin-token`. Output is the local mode's: the
//! same `--json` objects and text lines, built from the API's views.
//!
//! Plain HTTP only for now (see `run`). Covered: `env list|show|create|update`,
//! `api list|create|update|set-obligation|delete`, `client
//! create|list|show|update|set-obligation|disable|enable|delete|
//! rotate-secret|revoke-secret`, `user create|list|set-roles|set-password|
//! import|disable|enable|delete`, `refresh-jwt issue|list|revoke|trust|
//! untrust`, `key list|rotate|import|publish|unpublish`, `api-key
//! create|list|revoke|rotate`, `partner create|offer|invite|list|disable|
//! enable|requests|approve|decline`, `audit`. Other commands say they run
//! on the host.

use anyhow::{Context, Result, anyhow, bail};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tollgate_core::model::Obligation;
use tollgate_core::time::{now, rfc3339};

use crate::cli::{
    ApiCommand, ApiKeyCommand, Cli, ClientCommand, Command, EnvCommand, Global, KeyCommand,
    RefreshJwtCommand, UserCommand,
};
use crate::config::parse_duration;
use crate::partner::PartnerCommand;

/// The environment variable holding the admin token.
pub const TOKEN_ENV: &str = "TOLLGATE_ADMIN_TOKEN";

/// The admin API of one server, with a token.
struct Remote {
    http: reqwest::Client,
    base: String,
    token: SecretString,
}

/// The admin token: the environment, a file, or the flag (in that order of
/// preference; one is needed).
fn token_of(g: &Global) -> Result<SecretString> {
    if let Some(path) = &g.admin_token_file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(SecretString::from(text.trim().to_string()));
    }
    if let Some(t) = &g.admin_token {
        eprintln!(
            "warning: --admin-token is visible to other users of this machine; prefer {TOKEN_ENV} or --admin-token-file"
        );
        return Ok(SecretString::from(t.clone()));
    }
    match std::env::var(TOKEN_ENV) {
        Ok(t) if !t.trim().is_empty() => Ok(SecretString::from(t.trim().to_string())),
        _ => bail!(
            "--server needs an admin token: set {TOKEN_ENV} or give --admin-token-file \
             (request one with audience=tollgate-admin; see docs/ADMIN-API.md)"
        ),
    }
}

/// A path segment, percent-encoded (client ids, usernames, API identifiers
/// may hold `/`, `@`, `:`).
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A file's text (key material: sent to the server, not kept here).
fn read(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn secs(flag: &str, v: &str) -> Result<u64> {
    Ok(parse_duration(v)
        .with_context(|| format!("{flag} {v}"))?
        .as_secs())
}

/// An RFC 3339 time from a view's unix seconds (`null` stays `null`).
fn time(v: &Value) -> Value {
    v.as_i64().map_or(Value::Null, |t| json!(rfc3339(t)))
}

fn print(json_out: bool, value: Value, text: impl FnOnce() -> String) {
    if json_out {
        println!("{value}");
    } else {
        print!("{}", text());
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

impl Remote {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        self.call_with(method, path, body, None)
            .await
            .map(|(v, _)| v)
    }

    /// One request; the JSON body and the `ETag` of a success, else the
    /// API's error as an error.
    async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> Result<(Value, Option<String>)> {
        let url = format!("{}/admin/v1{path}", self.base);
        let mut rb = self
            .http
            .request(method, &url)
            .bearer_auth(self.token.expose_secret());
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        if let Some(tag) = if_match {
            rb = rb.header("if-match", tag);
        }
        let resp = rb
            .send()
            .await
            .with_context(|| format!("reaching {}", self.base))?;
        let status = resp.status();
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let why = value["message"].as_str().unwrap_or(text.as_str());
            bail!("{} ({}): {why}", status.as_u16(), s(&value["error"]));
        }
        Ok((value, etag))
    }

    /// Every item of a list, following the cursor.
    async fn all(&self, path: &str) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let sep = if path.contains('?') { '&' } else { '?' };
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit=1000&cursor={c}"),
                None => format!("{path}{sep}limit=1000"),
            };
            let page = self.call(Method::GET, &url, None).await?;
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(items),
            }
        }
    }

    /// A PATCH as the CLI means it: of what is there now (the `If-Match`
    /// of a fresh read).
    async fn patch(&self, path: &str, body: Value) -> Result<Value> {
        let (_, tag) = self.call_with(Method::GET, path, None, None).await?;
        let tag = tag.ok_or_else(|| anyhow!("the server sent no ETag for {path}"))?;
        self.call_with(Method::PATCH, path, Some(body), Some(&tag))
            .await
            .map(|(v, _)| v)
    }

    /// A DELETE as the CLI means it: of what is there now (the `If-Match`
    /// of a fresh read).
    async fn delete(&self, path: &str) -> Result<()> {
        let (_, tag) = self.call_with(Method::GET, path, None, None).await?;
        let tag = tag.ok_or_else(|| anyhow!("the server sent no ETag for {path}"))?;
        self.call_with(Method::DELETE, path, None, Some(&tag))
            .await
            .map(drop)
    }
}

/// An obligation's text (`reuse:30s`) as local mode prints it: its
/// structure.
fn obligation(v: &Value) -> Value {
    v.as_str()
        .and_then(|o| o.parse::<Obligation>().ok())
        .map_or(Value::Null, |o| json!(o))
}

/// A client view as `client list|show --json` prints a client.
fn client_json(v: &Value) -> Value {
    let secrets: Vec<Value> = v["secrets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| json!({"id": s["id"], "created_at": time(&s["created_at"]), "expires_at": time(&s["expires_at"])}))
        .collect();
    json!({
        "env": v["env"], "client_id": v["client_id"], "name": v["name"], "enabled": v["enabled"],
        "apis": v["apis"], "grant_types": v["grant_types"], "token_lifetime": v["token_lifetime"],
        "claims": v["claims"], "capabilities": v["capabilities"], "obligation": obligation(&v["obligation"]),
        "roles": v["roles"], "public": v["public"], "secrets": secrets,
        "created_at": time(&v["created_at"]),
    })
}

/// An API-key view as `api-key list --json` prints a key.
fn api_key_json(v: &Value) -> Value {
    json!({
        "id": v["id"], "env": v["env"], "client_id": v["client_id"], "name": v["name"],
        "created_at": time(&v["created_at"]), "expires_at": time(&v["expires_at"]),
        "revoked_at": time(&v["revoked_at"]), "status": v["status"],
    })
}

fn until(v: &Value) -> String {
    v["expires_at"].as_i64().map_or_else(
        || "until revoked".to_string(),
        |e| format!("until {}", rfc3339(e)),
    )
}

/// An API view as `api list --json` prints an API.
fn api_json(v: &Value) -> Value {
    json!({
        "env": v["env"], "identifier": v["identifier"], "permissions": v["permissions"],
        "packages": v["packages"], "token_lifetime": v["token_lifetime"],
        "obligation": obligation(&v["obligation"]), "token_permissions": v["token_permissions"],
    })
}

fn user_json(v: &Value) -> Value {
    json!({
        "env": v["env"], "username": v["username"], "client_id": v["client_id"],
        "enabled": v["enabled"], "roles": v["roles"], "created_at": time(&v["created_at"]),
    })
}

fn env_json(v: &Value) -> Value {
    json!({
        "name": v["name"], "issuer": v["issuer"], "alg": v["alg"], "hosts": v["hosts"],
        "dialect": v["dialect"], "contracts": v["contracts"], "settings": v["settings"],
    })
}

fn client_key(client_id: &str, secret: Option<&str>) -> String {
    use base64::Engine as _;
    let plain = match secret {
        Some(s) => format!("{client_id}:{s}"),
        None => client_id.to_string(),
    };
    base64::engine::general_purpose::STANDARD.encode(plain)
}

/// `--package NAME=PERM1,PERM2` values as the API's packages object.
fn packages_of(specs: &[String]) -> Result<Value> {
    let mut pkgs = serde_json::Map::new();
    for p in specs {
        let (name, list) = p
            .split_once('=')
            .ok_or_else(|| anyhow!("--package {p}: write NAME=PERM1,PERM2"))?;
        let members: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        pkgs.insert(name.to_string(), json!(members));
    }
    Ok(Value::Object(pkgs))
}

/// A `--token-lifetime` value of an update: seconds, or `inherit` (null).
fn lifetime_of(t: &str) -> Result<Value> {
    if t == "inherit" {
        return Ok(Value::Null);
    }
    Ok(json!(secs("--token-lifetime", t)?))
}

fn grant(spec: &str) -> Value {
    match spec.split_once('=') {
        Some((api, list)) => json!({"api": api, "grants": list
            .split(',').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>()}),
        None => json!({"api": spec, "grants": []}),
    }
}

/// A command not (yet) run over the admin API.
fn here(what: &str) -> Result<()> {
    bail!("`{what}` does not run over --server yet: run it on the host (see docs/ADMIN-API.md)")
}

/// Runs one command against the server `cli.global.server` names.
pub async fn run(cli: Cli, server: String) -> Result<()> {
    // This build's HTTP client speaks plain HTTP only (no TLS stack is
    // linked for it): reach the admin listener over a private network or a
    // tunnel.
    if !server.starts_with("http://") {
        bail!(
            "--server {server}: give an http:// URL (the admin listener on a private network, \
             or a tunnel to it); https is not supported by the CLI yet"
        );
    }
    let r = Remote {
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?,
        base: server.trim_end_matches('/').to_string(),
        token: token_of(&cli.global)?,
    };
    let j = cli.global.json;
    match cli.command {
        Command::Env(c) => env(&r, c, j).await,
        Command::Api(c) => api(&r, c, j).await,
        Command::Client(c) => client(&r, c, j).await,
        Command::User(c) => user(&r, c, j).await,
        Command::RefreshJwt(c) => refresh_jwt(&r, c, j).await,
        Command::Key(c) => key(&r, c, j).await,
        Command::ApiKey(c) => api_key(&r, c, j).await,
        Command::Audit(a) => audit(&r, a, j).await,
        Command::Partner(c) => partner(&r, c, j).await,
        _ => here("this command"),
    }
}

async fn env(r: &Remote, c: EnvCommand, j: bool) -> Result<()> {
    let line = |v: &Value| {
        let contracts: Vec<&str> = v["contracts"]
            .as_array()
            .map(|a| a.iter().map(s).collect())
            .unwrap_or_default();
        format!(
            "{}\t{}\t{}\t{}\t{}\n",
            s(&v["name"]),
            s(&v["alg"]),
            s(&v["dialect"]),
            s(&v["issuer"]),
            contracts.join(",")
        )
    };
    match c {
        EnvCommand::List => {
            let envs = r.all("/environments").await?;
            let rows: Vec<Value> = envs.iter().map(env_json).collect();
            print(j, json!(rows), || envs.iter().map(line).collect());
        }
        EnvCommand::Show { name } => {
            let v = r
                .call(Method::GET, &format!("/environments/{}", seg(&name)), None)
                .await?;
            let pretty = serde_json::to_string_pretty(&v)?;
            print(j, v, || format!("{pretty}\n"));
        }
        EnvCommand::Create {
            name,
            issuer,
            alg,
            hosts,
            dialect,
            contracts,
        } => {
            let contracts = contracts.map(|c| {
                c.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect::<Vec<_>>()
            });
            let v = r
                .call(
                    Method::POST,
                    "/environments",
                    Some(
                        json!({"name": name, "issuer": issuer, "alg": alg, "hosts": hosts,
                                "dialect": dialect, "contracts": contracts}),
                    ),
                )
                .await?;
            print(j, env_json(&v), || {
                format!(
                    "environment {} created: issuer {}, {}\n",
                    s(&v["name"]),
                    s(&v["issuer"]),
                    s(&v["alg"])
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
            let mut body = json!({});
            if no_hosts || !hosts.is_empty() {
                body["hosts"] = json!(hosts);
            }
            if let Some(d) = dialect {
                body["dialect"] = json!(d);
            }
            if let Some(c) = contracts {
                body["contracts"] = json!(
                    c.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                );
            }
            if let Some(i) = issuer {
                body["issuer"] = if i == "derive" { Value::Null } else { json!(i) };
            }
            let mut settings = serde_json::Map::new();
            for kv in &set {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--set {kv}: write KEY=VALUE"))?;
                settings.insert(k.trim().to_string(), json!(v.trim()));
            }
            for k in &unset {
                settings.insert(k.trim().to_string(), Value::Null);
            }
            if !settings.is_empty() {
                body["settings"] = Value::Object(settings);
            }
            if let Some(a) = &alg {
                body["alg"] = json!(a);
                body["publish_delay"] = json!(secs("--publish-delay", &publish_delay)?);
            }
            let before = r
                .call(Method::GET, &format!("/environments/{}", seg(&name)), None)
                .await?;
            let v = r
                .patch(&format!("/environments/{}", seg(&name)), body)
                .await?;
            let mut out = env_json(&v);
            // The key an algorithm change added: the newest of the new
            // algorithm (none when it did not change).
            let new_key = if alg.is_some() && before["alg"] != v["alg"] {
                r.all(&format!("/environments/{}/keys", seg(&name)))
                    .await?
                    .into_iter()
                    .filter(|k| k["alg"] == v["alg"])
                    .max_by_key(|k| k["activates_at"].as_i64())
            } else {
                None
            };
            if let Some(k) = &new_key {
                out["new_key"] = json!({"kid": k["kid"], "alg": k["alg"],
                                        "activates_at": time(&k["activates_at"])});
            }
            print(j, out, || {
                let list = |x: &Value| -> String {
                    x.as_array()
                        .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default()
                };
                let settings = v["settings"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, x)| format!("{k}={}", s(x)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                let mut text = format!(
                    "updated environment {}: issuer {}, {}, dialect {}, contracts [{}], hosts [{}], settings [{settings}]\n",
                    s(&v["name"]),
                    s(&v["issuer"]),
                    s(&v["alg"]),
                    s(&v["dialect"]),
                    list(&v["contracts"]),
                    list(&v["hosts"]),
                );
                if let Some(k) = &new_key {
                    text.push_str(&format!(
                        "new {} key {}: published now, signs from {}\n",
                        s(&k["alg"]),
                        s(&k["kid"]),
                        time(&k["activates_at"]).as_str().unwrap_or_default()
                    ));
                }
                text
            });
        }
    }
    Ok(())
}

async fn api(r: &Remote, c: ApiCommand, j: bool) -> Result<()> {
    match c {
        ApiCommand::List { env } => {
            let apis = r.all(&format!("/environments/{}/apis", seg(&env))).await?;
            let rows: Vec<Value> = apis.iter().map(api_json).collect();
            print(j, json!(rows), || {
                apis.iter()
                    .map(|a| {
                        let perms: Vec<&str> = a["permissions"]
                            .as_array()
                            .map(|p| p.iter().map(s).collect())
                            .unwrap_or_default();
                        format!(
                            "{}\t{}\t{}\n",
                            s(&a["identifier"]),
                            a["token_lifetime"]
                                .as_u64()
                                .map_or("-".to_string(), |t| format!("{t}s")),
                            perms.join(" ")
                        )
                    })
                    .collect()
            });
        }
        ApiCommand::Create {
            identifier,
            env,
            permissions,
            packages,
            token_lifetime,
            obligation,
            token_permissions,
        } => {
            let pkgs = packages_of(&packages)?;
            let lifetime = token_lifetime
                .map(|t| secs("--token-lifetime", &t))
                .transpose()?;
            let v = r
                .call(
                    Method::POST,
                    &format!("/environments/{}/apis", seg(&env)),
                    Some(json!({"identifier": identifier, "permissions": permissions,
                                "packages": pkgs, "token_lifetime": lifetime,
                                "obligation": obligation, "token_permissions": token_permissions})),
                )
                .await?;
            print(j, api_json(&v), || {
                format!(
                    "created API {} ({} permissions, {} packages, tokens live {})\n",
                    s(&v["identifier"]),
                    v["permissions"].as_array().map_or(0, Vec::len),
                    v["packages"].as_object().map_or(0, serde_json::Map::len),
                    v["token_lifetime"]
                        .as_u64()
                        .map_or("as the contract's setting says".to_string(), |t| format!(
                            "{t}s"
                        ))
                )
            });
        }
        ApiCommand::Delete { identifier, env } => {
            r.delete(&format!(
                "/environments/{}/apis/{}",
                seg(&env),
                seg(&identifier)
            ))
            .await?;
            print(j, json!({"deleted": identifier}), || {
                format!("deleted API {identifier}\n")
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
            obligation: ob,
            token_permissions,
        } => {
            let mut body = json!({
                "add_permissions": add_permissions, "remove_permissions": remove_permissions,
                "set_packages": packages_of(&packages)?, "remove_packages": remove_packages,
            });
            if let Some(t) = token_lifetime {
                body["token_lifetime"] = lifetime_of(&t)?;
            }
            if let Some(o) = ob {
                body["obligation"] = json!(o);
            }
            if let Some(on) = token_permissions {
                body["token_permissions"] = json!(on);
            }
            let v = r
                .patch(
                    &format!("/environments/{}/apis/{}", seg(&env), seg(&identifier)),
                    body,
                )
                .await?;
            print(j, api_json(&v), || {
                format!(
                    "updated API {}: {} permissions, {} packages, tokens live {}, obligation {}\n",
                    s(&v["identifier"]),
                    v["permissions"].as_array().map_or(0, Vec::len),
                    v["packages"].as_object().map_or(0, serde_json::Map::len),
                    v["token_lifetime"]
                        .as_u64()
                        .map_or("as the contract's setting says".to_string(), |t| format!(
                            "{t}s"
                        )),
                    v["obligation"].as_str().unwrap_or("off")
                )
            });
        }
        ApiCommand::SetObligation {
            identifier,
            obligation: ob,
            env,
        } => {
            let parsed: Obligation = ob.parse()?;
            r.patch(
                &format!("/environments/{}/apis/{}", seg(&env), seg(&identifier)),
                json!({"obligation": ob}),
            )
            .await?;
            print(j, json!({"api": identifier, "obligation": parsed}), || {
                format!("API {identifier}: obligation {parsed}\n")
            });
        }
    }
    Ok(())
}

async fn client(r: &Remote, c: ClientCommand, j: bool) -> Result<()> {
    let one = |env: &str, id: &str| format!("/environments/{}/clients/{}", seg(env), seg(id));
    match c {
        ClientCommand::Create(c) => {
            if c.client_secret.is_some() {
                bail!(
                    "an imported client secret is not sent over the network: run `client create --client-secret` on the host"
                );
            }
            let lifetime = c
                .token_lifetime
                .filter(|t| t != "inherit")
                .map(|t| secs("--token-lifetime", &t))
                .transpose()?;
            let claims: Value = match c.claims.as_deref() {
                Some(t) => serde_json::from_str(t).context("--claims must be a JSON object")?,
                None => json!({}),
            };
            let body = json!({
                "name": c.name, "client_id": c.client_id,
                "apis": c.apis.iter().map(|a| grant(a)).collect::<Vec<_>>(),
                "grant_types": c.grants, "token_lifetime": lifetime, "claims": claims,
                "capabilities": if c.introspect { vec!["introspect"] } else { vec![] },
                "obligation": c.obligation, "roles": c.roles, "public": c.public,
            });
            let v = r
                .call(
                    Method::POST,
                    &format!("/environments/{}/clients", seg(&c.env)),
                    Some(body),
                )
                .await?;
            let id = s(&v["client"]["client_id"]).to_string();
            match v["client_secret"].as_str() {
                None => print(
                    j,
                    json!({"client_id": id, "public": true, "client_key": client_key(&id, None)}),
                    || {
                        format!(
                            "client_id:  {id}\nclient_key: {}\n\nA public client: it has no secret and identifies itself by id alone\n(client_key is the value of 'Authorization: Basic' for the device-credentials contract).\n",
                            client_key(&id, None)
                        )
                    },
                ),
                Some(secret) => print(
                    j,
                    json!({"client_id": id, "client_secret": secret,
                           "client_key": client_key(&id, Some(secret))}),
                    || {
                        format!(
                            "client_id:     {id}\nclient_secret: {secret}\n\nThe secret is shown only this once: hand it to the partner over a secure channel now.\n"
                        )
                    },
                ),
            }
        }
        ClientCommand::List { env } => {
            let mut clients = r
                .all(&format!("/environments/{}/clients", seg(&env)))
                .await?;
            // Pages come in cursor (id) order; local mode lists by creation.
            clients.sort_by(|a, b| {
                (a["created_at"].as_i64(), s(&a["client_id"]))
                    .cmp(&(b["created_at"].as_i64(), s(&b["client_id"])))
            });
            let rows: Vec<Value> = clients.iter().map(client_json).collect();
            print(j, json!(rows), || {
                clients
                    .iter()
                    .map(|c| {
                        format!(
                            "{}\t{}\t{}\n",
                            s(&c["client_id"]),
                            if c["enabled"].as_bool().unwrap_or(false) {
                                "enabled"
                            } else {
                                "disabled"
                            },
                            s(&c["name"])
                        )
                    })
                    .collect()
            });
        }
        ClientCommand::Show(c) => {
            let v = client_json(
                &r.call(Method::GET, &one(&c.env, &c.client_id), None)
                    .await?,
            );
            let pretty = serde_json::to_string_pretty(&v)?;
            print(j, v, || format!("{pretty}\n"));
        }
        ClientCommand::Disable(c) => client_enabled(r, &c.env, &c.client_id, false, j).await?,
        ClientCommand::Enable(c) => client_enabled(r, &c.env, &c.client_id, true, j).await?,
        ClientCommand::Delete(c) => {
            r.delete(&one(&c.env, &c.client_id)).await?;
            print(j, json!({"deleted": c.client_id}), || {
                format!("deleted client {}\n", c.client_id)
            });
        }
        ClientCommand::RotateSecret { client: c, grace } => {
            let grace = secs("--grace", &grace)?;
            let v = r
                .call(
                    Method::POST,
                    &format!("{}/rotate-secret", one(&c.env, &c.client_id)),
                    Some(json!({"grace": grace})),
                )
                .await?;
            let secret = s(&v["client_secret"]).to_string();
            let until = v["client"]["secrets"]
                .as_array()
                .and_then(|a| a.iter().filter_map(|s| s["expires_at"].as_i64()).max())
                .map(rfc3339);
            print(
                j,
                json!({"client_id": c.client_id, "client_secret": secret, "previous_secrets_expire_at": until}),
                || {
                    format!(
                        "client_id:     {}\nclient_secret: {secret}\n\nThe previous secret(s) work until {}.\nThe new secret is shown only this once.\n",
                        c.client_id,
                        until.as_deref().unwrap_or("now (there were none)")
                    )
                },
            );
        }
        ClientCommand::RevokeSecret { client: c, .. } => {
            let v = r
                .call(
                    Method::POST,
                    &format!("{}/revoke-secret", one(&c.env, &c.client_id)),
                    None,
                )
                .await?;
            let n = v["secrets"].as_array().map_or(0, Vec::len);
            print(j, json!({"client_id": c.client_id, "secrets": n}), || {
                format!("client {}: only the newest secret works now\n", c.client_id)
            });
        }
        ClientCommand::Update(c) => {
            let mut body = json!({});
            if let Some(n) = c.name {
                body["name"] = json!(n);
            }
            if !c.apis.is_empty() {
                body["apis"] = json!(c.apis.iter().map(|a| grant(a)).collect::<Vec<_>>());
            }
            if !c.grants.is_empty() {
                body["grant_types"] = json!(c.grants);
            }
            if let Some(t) = c.token_lifetime {
                body["token_lifetime"] = lifetime_of(&t)?;
            }
            if let Some(text) = c.claims {
                let claims: Value =
                    serde_json::from_str(&text).context("--claims must be a JSON object")?;
                if !claims.is_object() {
                    bail!("--claims must be a JSON object");
                }
                body["claims"] = claims;
            }
            if let Some(on) = c.introspect {
                body["capabilities"] = json!(if on { vec!["introspect"] } else { vec![] });
            }
            if let Some(o) = c.obligation {
                body["obligation"] = if o == "inherit" {
                    Value::Null
                } else {
                    json!(o)
                };
            }
            if c.no_roles || !c.roles.is_empty() {
                body["roles"] = json!(c.roles);
            }
            let v = client_json(
                &r.patch(&one(&c.client.env, &c.client.client_id), body)
                    .await?,
            );
            let pretty = serde_json::to_string_pretty(&v)?;
            print(j, v, || {
                format!("updated client {}:\n{pretty}\n", c.client.client_id)
            });
        }
        ClientCommand::SetObligation {
            client: c,
            obligation: ob,
        } => {
            let parsed: Option<Obligation> = match ob.as_str() {
                "inherit" => None,
                other => Some(other.parse()?),
            };
            let body = json!({"obligation": parsed.map(|_| ob.clone())});
            r.patch(&one(&c.env, &c.client_id), body).await?;
            print(
                j,
                json!({"client_id": c.client_id, "obligation": parsed}),
                || {
                    format!(
                        "client {}: obligation {}\n",
                        c.client_id,
                        parsed.map_or("inherited from its APIs".to_string(), |o| o.to_string())
                    )
                },
            );
        }
    }
    Ok(())
}

async fn client_enabled(r: &Remote, env: &str, id: &str, on: bool, j: bool) -> Result<()> {
    let verb = if on { "enable" } else { "disable" };
    r.call(
        Method::POST,
        &format!("/environments/{}/clients/{}/{verb}", seg(env), seg(id)),
        None,
    )
    .await?;
    print(j, json!({"client_id": id, "enabled": on}), || {
        format!("{verb}d client {id}\n")
    });
    Ok(())
}

async fn user(r: &Remote, c: UserCommand, j: bool) -> Result<()> {
    let one = |env: &str, u: &str| format!("/environments/{}/users/{}", seg(env), seg(u));
    match c {
        UserCommand::Create {
            client,
            username,
            password,
            env,
            roles,
        } => {
            let v = r
                .call(
                    Method::POST,
                    &format!("/environments/{}/clients/{}/users", seg(&env), seg(&client)),
                    Some(json!({"username": username, "password": password.password,
                                "password_md5": password.password_md5, "roles": roles})),
                )
                .await?;
            print(j, user_json(&v), || {
                format!(
                    "created user {} (client {})\n",
                    s(&v["username"]),
                    s(&v["client_id"])
                )
            });
        }
        UserCommand::List { client, env } => {
            let users = match client {
                Some(c) => {
                    r.all(&format!(
                        "/environments/{}/clients/{}/users",
                        seg(&env),
                        seg(&c)
                    ))
                    .await?
                }
                None => {
                    let mut all = Vec::new();
                    for c in r
                        .all(&format!("/environments/{}/clients", seg(&env)))
                        .await?
                    {
                        all.extend(
                            r.all(&format!(
                                "/environments/{}/clients/{}/users",
                                seg(&env),
                                seg(s(&c["client_id"]))
                            ))
                            .await?,
                        );
                    }
                    all
                }
            };
            let rows: Vec<Value> = users.iter().map(user_json).collect();
            print(j, json!(rows), || {
                users
                    .iter()
                    .map(|u| {
                        format!(
                            "{}\t{}\t{}\n",
                            s(&u["username"]),
                            s(&u["client_id"]),
                            if u["enabled"].as_bool().unwrap_or(false) {
                                "enabled"
                            } else {
                                "disabled"
                            }
                        )
                    })
                    .collect()
            });
        }
        UserCommand::Delete(u) => {
            r.delete(&one(&u.env, &u.username)).await?;
            print(j, json!({"deleted": u.username}), || {
                format!("deleted user {} and revoked its sessions\n", u.username)
            });
        }
        UserCommand::Disable(u) => user_enabled(r, &u.env, &u.username, false, j).await?,
        UserCommand::Enable(u) => user_enabled(r, &u.env, &u.username, true, j).await?,
        UserCommand::SetRoles { user: u, roles } => {
            let v = r
                .call(
                    Method::POST,
                    &format!("{}/roles", one(&u.env, &u.username)),
                    Some(json!({"roles": roles})),
                )
                .await?;
            print(j, user_json(&v), || {
                format!(
                    "set the roles of user {} (client {})\n",
                    s(&v["username"]),
                    s(&v["client_id"])
                )
            });
        }
        UserCommand::SetPassword {
            user: u,
            password,
            keep_sessions,
        } => {
            let v = r
                .call(
                    Method::POST,
                    &format!("{}/password", one(&u.env, &u.username)),
                    Some(
                        json!({"password": password.password, "password_md5": password.password_md5,
                                "keep_sessions": keep_sessions}),
                    ),
                )
                .await?;
            print(j, user_json(&v), || {
                format!(
                    "set the password of user {} (client {})\n",
                    s(&v["username"]),
                    s(&v["client_id"])
                )
            });
        }
        UserCommand::Import(a) => {
            let text = std::fs::read_to_string(&a.file)
                .with_context(|| format!("reading {}", a.file.display()))?;
            let name = a.file.display().to_string();
            let jsonl = match a.format.as_deref() {
                Some("csv") => false,
                Some("jsonl") => true,
                Some(other) => bail!("--format {other}: write csv or jsonl"),
                None => {
                    let lower = name.to_ascii_lowercase();
                    lower.ends_with(".jsonl")
                        || lower.ends_with(".ndjson")
                        || (!lower.ends_with(".csv") && text.trim_start().starts_with('{'))
                }
            };
            let url = format!(
                "{}/admin/v1/environments/{}/clients/{}/users/import?hashed={}",
                r.base,
                seg(&a.env),
                seg(&a.client),
                seg(&a.hashed)
            );
            let resp = r
                .http
                .post(&url)
                .bearer_auth(r.token.expose_secret())
                .header(
                    "content-type",
                    if jsonl {
                        "application/x-ndjson"
                    } else {
                        "text/csv"
                    },
                )
                .body(text)
                .send()
                .await
                .with_context(|| format!("reaching {}", r.base))?;
            let status = resp.status();
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                bail!(
                    "{name}: {} ({}): {}",
                    status.as_u16(),
                    s(&v["error"]),
                    s(&v["message"])
                );
            }
            let n = v["imported"].as_u64().unwrap_or(0);
            print(
                j,
                json!({"imported": n, "client_id": a.client, "env": a.env}),
                || {
                    format!(
                        "imported {n} users of {} into {}: their hashes are replaced by argon2id at \
                         their first login\n",
                        a.client, a.env
                    )
                },
            );
        }
    }
    Ok(())
}

async fn user_enabled(r: &Remote, env: &str, name: &str, on: bool, j: bool) -> Result<()> {
    let verb = if on { "enable" } else { "disable" };
    let v = r
        .call(
            Method::POST,
            &format!("/environments/{}/users/{}/{verb}", seg(env), seg(name)),
            None,
        )
        .await?;
    print(j, user_json(&v), || {
        format!("{verb}d user {name} (client {})\n", s(&v["client_id"]))
    });
    Ok(())
}

async fn refresh_jwt(r: &Remote, c: RefreshJwtCommand, j: bool) -> Result<()> {
    match c {
        RefreshJwtCommand::Issue {
            client,
            env,
            api,
            ttl,
        } => {
            let ttl = secs("--ttl", &ttl)?;
            let v = r
                .call(
                    Method::POST,
                    &format!("/environments/{}/refresh-jwts", seg(&env)),
                    Some(json!({"client_id": client, "api": api, "ttl": ttl})),
                )
                .await?;
            let rec = &v["refresh_jwt"];
            print(
                j,
                json!({"refresh_jwt": v["token"], "jti": rec["jti"], "client_id": rec["client_id"],
                       "api": rec["audience"], "expires_at": time(&rec["expires_at"])}),
                || {
                    format!(
                        "refresh JWT for {} ({}), valid until {}:\n{}\n\nIt is shown only this once.\n",
                        s(&rec["client_id"]),
                        s(&rec["audience"]),
                        time(&rec["expires_at"]).as_str().unwrap_or_default(),
                        s(&v["token"])
                    )
                },
            );
        }
        RefreshJwtCommand::List { env } => {
            let recs = r
                .all(&format!("/environments/{}/refresh-jwts", seg(&env)))
                .await?;
            let rows: Vec<Value> = recs
                .iter()
                .map(|r| {
                    json!({"kind": "issued", "jti": r["jti"], "client_id": r["client_id"],
                           "api": r["audience"], "created_at": time(&r["created_at"]),
                           "expires_at": time(&r["expires_at"]), "revoked_at": time(&r["revoked_at"])})
                })
                .collect();
            print(j, json!(rows), || {
                recs.iter()
                    .map(|r| {
                        format!(
                            "{}\t{}\t{}\texpires {}{}\n",
                            s(&r["jti"]),
                            s(&r["client_id"]),
                            s(&r["audience"]),
                            time(&r["expires_at"]).as_str().unwrap_or_default(),
                            if r["revoked_at"].is_null() {
                                ""
                            } else {
                                "\trevoked"
                            }
                        )
                    })
                    .collect()
            });
        }
        RefreshJwtCommand::Revoke { jti, client, env } => match (jti, client) {
            (_, Some(client)) => {
                let v = r
                    .call(
                        Method::POST,
                        &format!(
                            "/environments/{}/clients/{}/revoke-refresh-tokens",
                            seg(&env),
                            seg(&client)
                        ),
                        None,
                    )
                    .await?;
                let n = v["refresh_jwts"].as_u64().unwrap_or(0);
                print(
                    j,
                    json!({"revoked_client": client, "refresh_jwts": n}),
                    || {
                        format!(
                            "revoked {n} refresh JWT(s) of {client}, and every refresh token \
                             of it a trusted incumbent issued until now\n"
                        )
                    },
                );
            }
            (Some(jti), None) => {
                r.call(
                    Method::POST,
                    &format!(
                        "/environments/{}/refresh-jwts/{}/revoke",
                        seg(&env),
                        seg(&jti)
                    ),
                    None,
                )
                .await?;
                print(j, json!({"revoked": jti}), || {
                    format!("revoked refresh JWT {jti}\n")
                });
            }
            (None, None) => bail!("give a token id or --client"),
        },
        RefreshJwtCommand::Trust(a) => {
            let mut body = json!({
                "name": a.name, "for": a.purpose, "issuer": a.issuer, "audience": a.audience,
                "client_claim": a.client_claim, "user_claim": a.user_claim, "api": a.api,
            });
            match (&a.key.jwks, &a.key.pem, &a.key.hs256_secret_file) {
                (Some(p), _, _) => body["jwks"] = json!(read(p)?),
                (_, Some(p), _) => body["pem"] = json!(read(p)?),
                (_, _, Some(p)) => body["hs256_secret"] = json!(read(p)?),
                _ => bail!("give one of --jwks, --pem and --hs256-secret-file"),
            }
            let v = r
                .call(
                    Method::POST,
                    &format!("/environments/{}/trusted-issuers", seg(&a.env)),
                    Some(body),
                )
                .await?;
            // As local mode prints a new issuer (its algorithms: in `list`).
            let out = json!({
                "kind": "trusted", "name": v["name"], "env": v["env"], "for": v["for"],
                "keys": v["keys"], "algorithms": [], "issuer": v["issuer"],
                "audience": v["audience"], "client_claim": v["client_claim"],
                "user_claim": v["user_claim"], "api": v["api"], "created_at": time(&v["created_at"]),
            });
            print(j, out, || {
                format!(
                    "trusted issuer {} in {} for {}: its tokens' '{}' claim names the client\n",
                    s(&v["name"]),
                    s(&v["env"]),
                    s(&v["for"]),
                    s(&v["client_claim"])
                )
            });
        }
        RefreshJwtCommand::Untrust { name, env } => {
            r.delete(&format!(
                "/environments/{}/trusted-issuers/{}",
                seg(&env),
                seg(&name)
            ))
            .await?;
            print(j, json!({"untrusted": name}), || {
                format!("no longer trusting {name} in {env}\n")
            });
        }
    }
    Ok(())
}

async fn key(r: &Remote, c: KeyCommand, j: bool) -> Result<()> {
    match c {
        KeyCommand::List { env } => {
            let envs: Vec<String> = match env {
                Some(e) => vec![e],
                None => r
                    .all("/environments")
                    .await?
                    .iter()
                    .map(|e| s(&e["name"]).to_string())
                    .collect(),
            };
            let mut keys = Vec::new();
            for e in envs {
                keys.extend(r.all(&format!("/environments/{}/keys", seg(&e))).await?);
            }
            let rows: Vec<Value> = keys
                .iter()
                .map(|k| {
                    json!({"env": k["env"], "kid": k["kid"], "alg": k["alg"], "state": k["state"],
                           "published": k["published"], "created_at": time(&k["created_at"]),
                           "activates_at": time(&k["activates_at"])})
                })
                .collect();
            print(j, json!(rows), || {
                keys.iter()
                    .map(|k| {
                        format!(
                            "{}\t{}\t{}\t{}\tsigns from {}\n",
                            s(&k["env"]),
                            s(&k["kid"]),
                            s(&k["alg"]),
                            s(&k["state"]),
                            time(&k["activates_at"]).as_str().unwrap_or_default()
                        )
                    })
                    .collect()
            });
        }
        KeyCommand::Rotate { env, publish_delay } => {
            let delay = secs("--publish-delay", &publish_delay)?;
            let v = r
                .call(
                    Method::POST,
                    &format!("/environments/{}/keys/rotate", seg(&env)),
                    Some(json!({"publish_delay": delay})),
                )
                .await?;
            print(
                j,
                json!({"env": v["env"], "kid": v["kid"], "alg": v["alg"], "activates_at": time(&v["activates_at"])}),
                || {
                    format!(
                        "new key {} for {}: published now, signs from {}\n",
                        s(&v["kid"]),
                        s(&v["env"]),
                        time(&v["activates_at"]).as_str().unwrap_or_default()
                    )
                },
            );
        }
        KeyCommand::Import(a) => {
            let delay = secs("--publish-delay", &a.publish_delay)?;
            let mut body = json!({"kid": a.kid, "publish_delay": delay});
            match (&a.material.pem, &a.material.hs256_secret_file) {
                (Some(p), _) => body["pem"] = json!(read(p)?),
                (_, Some(p)) => {
                    body["hs256_secret"] = json!(read(p)?.trim_end_matches(['\r', '\n']))
                }
                _ => bail!("give --pem or --hs256-secret-file"),
            }
            let v = r
                .call(
                    Method::POST,
                    &format!("/environments/{}/keys/import", seg(&a.env)),
                    Some(body),
                )
                .await?;
            let hs = v["alg"] == "HS256";
            print(
                j,
                json!({"env": v["env"], "kid": v["kid"], "alg": v["alg"], "published": !hs,
                       "activates_at": time(&v["activates_at"])}),
                || {
                    format!(
                        "imported key {} ({}) into {}: {}, signs from {}\n",
                        s(&v["kid"]),
                        s(&v["alg"]),
                        s(&v["env"]),
                        if hs {
                            "a shared secret, never published"
                        } else {
                            "published now"
                        },
                        time(&v["activates_at"]).as_str().unwrap_or_default()
                    )
                },
            );
        }
        KeyCommand::Publish { jwks, env, name } => {
            let v = r
                .call(
                    Method::POST,
                    &format!("/environments/{}/keys/published", seg(&env)),
                    Some(json!({"name": name, "jwks": read(&jwks)?})),
                )
                .await?;
            let kids: Vec<&str> = v["kids"]
                .as_array()
                .map(|k| k.iter().map(s).collect())
                .unwrap_or_default();
            print(
                j,
                json!({"env": v["env"], "name": v["name"], "kids": v["kids"]}),
                || {
                    format!(
                        "publishing {} incumbent key(s) in {} as {}: {}; they never sign\n",
                        kids.len(),
                        s(&v["env"]),
                        s(&v["name"]),
                        kids.join(", ")
                    )
                },
            );
        }
        KeyCommand::Unpublish { name, env } => {
            r.delete(&format!(
                "/environments/{}/keys/published/{}",
                seg(&env),
                seg(&name)
            ))
            .await?;
            print(j, json!({"unpublished": name}), || {
                format!("no longer publishing {name} in {env}\n")
            });
        }
    }
    Ok(())
}

async fn api_key(r: &Remote, c: ApiKeyCommand, j: bool) -> Result<()> {
    match c {
        ApiKeyCommand::Create {
            client,
            env,
            expires,
            name,
        } => {
            let ttl = expires.map(|e| secs("--expires", &e)).transpose()?;
            let v = r
                .call(
                    Method::POST,
                    &format!("/environments/{}/api-keys", seg(&env)),
                    Some(json!({"client_id": client, "name": name, "ttl": ttl})),
                )
                .await?;
            let rec = &v["api_key"];
            let mut value = api_key_json(rec);
            value["api_key"] = v["key"].clone();
            print(j, value, || {
                format!(
                    "API key {} for {} ({}):\n{}\n\nIt is shown only this once. Send it as X-API-Key.\n",
                    s(&rec["id"]),
                    s(&rec["client_id"]),
                    until(rec),
                    s(&v["key"])
                )
            });
        }
        ApiKeyCommand::List { client, env } => {
            let path = match &client {
                Some(c) => format!("/environments/{}/api-keys?client={}", seg(&env), seg(c)),
                None => format!("/environments/{}/api-keys", seg(&env)),
            };
            let keys = r.all(&path).await?;
            let rows: Vec<Value> = keys.iter().map(api_key_json).collect();
            print(j, json!(rows), || {
                keys.iter()
                    .map(|k| {
                        format!(
                            "{}\t{}\t{}\tcreated {}\t{}\t{}\n",
                            s(&k["id"]),
                            s(&k["client_id"]),
                            k["name"].as_str().unwrap_or("-"),
                            time(&k["created_at"]).as_str().unwrap_or_default(),
                            until(k),
                            s(&k["status"])
                        )
                    })
                    .collect()
            });
        }
        ApiKeyCommand::Revoke { id, env } => {
            let v = r
                .call(
                    Method::POST,
                    &format!("/environments/{}/api-keys/{}/revoke", seg(&env), seg(&id)),
                    None,
                )
                .await?;
            print(j, api_key_json(&v), || {
                format!(
                    "revoked {} of {}; servers refuse it from their next sync\n",
                    s(&v["id"]),
                    s(&v["client_id"])
                )
            });
        }
        ApiKeyCommand::Rotate {
            id,
            env,
            grace,
            expires,
        } => {
            let grace = secs("--grace", &grace)?;
            let ttl = expires.map(|e| secs("--expires", &e)).transpose()?;
            let v = r
                .call(
                    Method::POST,
                    &format!("/environments/{}/api-keys/{}/rotate", seg(&env), seg(&id)),
                    Some(json!({"grace": grace, "ttl": ttl})),
                )
                .await?;
            let (new, old) = (&v["api_key"], &v["replaces"]);
            let mut value = api_key_json(new);
            value["api_key"] = v["key"].clone();
            value["replaces"] = api_key_json(old);
            print(j, value, || {
                format!(
                    "API key {} for {} ({}), replacing {} (works {}):\n{}\n\nIt is shown only this once.\n",
                    s(&new["id"]),
                    s(&new["client_id"]),
                    until(new),
                    s(&old["id"]),
                    until(old),
                    s(&v["key"])
                )
            });
        }
    }
    Ok(())
}

async fn audit(r: &Remote, a: crate::cli::AuditArgs, j: bool) -> Result<()> {
    let since = match a.since.as_deref() {
        None => None,
        Some(v) => Some(match v.parse::<i64>() {
            Ok(t) => t,
            Err(_) => now().saturating_sub(i64::try_from(secs("--since", v)?).unwrap_or(i64::MAX)),
        }),
    };
    let path = since.map_or_else(|| "/audit".to_string(), |t| format!("/audit?since={t}"));
    let mut entries = r.all(&path).await?;
    if let Some(n) = a.limit {
        entries.truncate(n);
    }
    for e in &entries {
        if j {
            println!("{e}");
        } else {
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                time(&e["at"]).as_str().unwrap_or_default(),
                s(&e["actor"]),
                s(&e["action"]),
                e["env"].as_str().unwrap_or("-"),
                s(&e["target"]),
                e["source"].as_str().unwrap_or("-")
            );
        }
    }
    Ok(())
}

/// A partner view as `partner list --json` prints a partner.
fn partner_json(v: &Value, clients: usize) -> Value {
    json!({
        "id": v["id"], "name": v["name"], "enabled": v["enabled"], "offers": v["offers"],
        "clients": clients, "created_at": time(&v["created_at"]),
    })
}

fn offers_text(v: &Value) -> String {
    v["offers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| format!("{}:{}={}", s(&o["env"]), s(&o["api"]), s(&o["package"])))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// `--offer API=PACKAGE` values of environment `env` as the API's offers.
fn offers_of(env: &str, specs: &[String]) -> Result<Vec<Value>> {
    specs
        .iter()
        .map(|spec| {
            let (api, package) = spec
                .rsplit_once('=')
                .ok_or_else(|| anyhow!("--offer {spec}: give API=PACKAGE"))?;
            Ok(json!({"env": env, "api": api, "package": package}))
        })
        .collect()
}

/// A package-request view as `partner requests --json` prints a request.
fn request_json(v: &Value) -> Value {
    json!({
        "id": v["id"], "partner": v["partner"], "requested_by": v["requested_by"],
        "env": v["env"], "api": v["api"], "package": v["package"], "note": v["note"],
        "status": v["status"], "created_at": time(&v["created_at"]),
        "decided_at": time(&v["decided_at"]), "decided_by": v["decided_by"],
    })
}

async fn partner(r: &Remote, c: PartnerCommand, j: bool) -> Result<()> {
    match c {
        // No admin route turns a second factor off: the one way is a
        // shell on the host, where the provider also checks who asks.
        PartnerCommand::ResetTotp { .. } => bail!(
            "partner reset-totp works on the host only (no admin API route turns a second factor off)"
        ),
        PartnerCommand::Create {
            id,
            name,
            env,
            offers,
        } => {
            let body = json!({"id": id, "name": name.unwrap_or_else(|| id.clone()),
                "offers": offers_of(&env, &offers)?});
            let v = r.call(Method::POST, "/partners", Some(body)).await?;
            print(j, partner_json(&v, 0), || {
                format!(
                    "partner {} created; offers: {}\n",
                    s(&v["id"]),
                    offers_text(&v)
                )
            });
        }
        PartnerCommand::Offer { id, env, offers } => {
            // Those it has in `env` stay: the new list is the union, sent
            // under the If-Match of the read it was computed from.
            let path = format!("/partners/{}", seg(&id));
            let (current, tag) = r.call_with(Method::GET, &path, None, None).await?;
            let tag = tag.ok_or_else(|| anyhow!("the server sent no ETag for {path}"))?;
            let mut list: Vec<Value> = current["offers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|o| o["env"] == json!(env))
                .collect();
            list.extend(offers_of(&env, &offers)?);
            let list: Vec<Value> = list
                .iter()
                .map(|o| json!({"api": o["api"], "package": o["package"]}))
                .collect();
            let body = json!({"offers": {env.clone(): list}});
            let (v, _) = r
                .call_with(Method::PATCH, &path, Some(body), Some(&tag))
                .await?;
            print(j, partner_json(&v, 0), || {
                format!("partner {} offers: {}\n", s(&v["id"]), offers_text(&v))
            });
        }
        PartnerCommand::Invite {
            id,
            expires,
            portal_url,
        } => {
            let body =
                json!({"expires_in": secs("--expires", &expires)?, "portal_url": portal_url});
            let v = r
                .call(
                    Method::POST,
                    &format!("/partners/{}/invitations", seg(&id)),
                    Some(body),
                )
                .await?;
            let (link, until) = (s(&v["link"]).to_string(), time(&v["expires_at"]));
            let until = until.as_str().unwrap_or_default().to_string();
            print(
                j,
                json!({"partner": id, "link": link, "expires_at": until}),
                || format!("invitation for {id} (one use, until {until}; shown once):\n{link}\n"),
            );
        }
        PartnerCommand::List => {
            let mut rows = Vec::new();
            for p in r.all("/partners").await? {
                let n = r
                    .all(&format!("/partners/{}/clients", seg(s(&p["id"]))))
                    .await?
                    .len();
                rows.push((p, n));
            }
            if j {
                println!(
                    "{}",
                    Value::Array(rows.iter().map(|(p, n)| partner_json(p, *n)).collect())
                );
            } else {
                for (p, n) in &rows {
                    println!(
                        "{}\t{}\t{}\tclients={n}\t{}",
                        s(&p["id"]),
                        if p["enabled"] == json!(true) {
                            "enabled"
                        } else {
                            "disabled"
                        },
                        s(&p["name"]),
                        offers_text(p)
                    );
                }
            }
        }
        PartnerCommand::Disable { id } => partner_enabled(r, &id, false, j).await?,
        PartnerCommand::Enable { id } => partner_enabled(r, &id, true, j).await?,
        PartnerCommand::Requests { pending, partner } => {
            let mut query = Vec::new();
            if pending {
                query.push("status=pending".to_string());
            }
            if let Some(p) = partner {
                query.push(format!("partner={}", seg(&p)));
            }
            let path = if query.is_empty() {
                "/package-requests".to_string()
            } else {
                format!("/package-requests?{}", query.join("&"))
            };
            let rows: Vec<Value> = r.all(&path).await?.iter().map(request_json).collect();
            if j {
                println!("{}", Value::Array(rows));
            } else {
                for v in &rows {
                    print!("{}", crate::partner::request_line(v));
                }
            }
        }
        PartnerCommand::Approve { id } => {
            let v = r
                .call(
                    Method::POST,
                    &format!("/package-requests/{}/approve", seg(&id)),
                    None,
                )
                .await?;
            print(j, request_json(&v), || {
                format!(
                    "request {id} approved: {} is offered {}:{}={}\n",
                    s(&v["partner"]),
                    s(&v["env"]),
                    s(&v["api"]),
                    s(&v["package"])
                )
            });
        }
        PartnerCommand::Decline { id } => {
            let v = r
                .call(
                    Method::POST,
                    &format!("/package-requests/{}/decline", seg(&id)),
                    None,
                )
                .await?;
            print(j, request_json(&v), || format!("request {id} declined\n"));
        }
    }
    Ok(())
}

async fn partner_enabled(r: &Remote, id: &str, enabled: bool, j: bool) -> Result<()> {
    let verb = if enabled { "enable" } else { "disable" };
    r.call(
        Method::POST,
        &format!("/partners/{}/{verb}", seg(id)),
        Some(json!({})),
    )
    .await?;
    print(j, json!({"id": id, "enabled": enabled}), || {
        format!("partner {id} {verb}d, with its clients\n")
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::seg;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(seg("ann@example.com"), "ann%40example.com");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
        assert_eq!(seg("tgk_Ab-9._~"), "tgk_Ab-9._~");
    }
}
