//! `tollgate api-key create|list|revoke|rotate`: API keys of clients for
//! the gate. A new key is printed once; listings show ids (`tgk_<id>`),
//! never keys. The rules are the core's (`service/admin/api_key.rs`).

use anyhow::{Context, Result};
use secrecy::ExposeSecret;
use serde_json::json;
use tollgate_core::Tollgate;
use tollgate_core::model::ApiKey;
use tollgate_core::time::{now, rfc3339};

use crate::cli::ApiKeyCommand;
use crate::config::parse_duration;

/// Prints `value` under `--json`, else `text` (as `commands.rs` does; not
/// imported from there, which imports this file).
fn show(json: bool, value: serde_json::Value, text: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        print!("{}", text());
    }
}

fn seconds(flag: &str, value: Option<String>) -> Result<Option<u64>> {
    value
        .map(|v| {
            parse_duration(&v)
                .with_context(|| format!("{flag} {v}"))
                .map(|d| d.as_secs())
        })
        .transpose()
}

/// What a key is now, for listings.
fn status(k: &ApiKey, t: i64) -> &'static str {
    if k.revoked_at.is_some() {
        "revoked"
    } else if k.expires_at.is_some_and(|e| t >= e) {
        "expired"
    } else {
        "active"
    }
}

/// A key's record as `--json` shows it: everything but the digest.
fn row(k: &ApiKey, t: i64) -> serde_json::Value {
    json!({
        "id": format!("tgk_{}", k.id),
        "env": k.env,
        "client_id": k.client_id,
        "name": k.name,
        "created_at": rfc3339(k.created_at),
        "expires_at": k.expires_at.map(rfc3339),
        "revoked_at": k.revoked_at.map(rfc3339),
        "status": status(k, t),
    })
}

fn until(k: &ApiKey) -> String {
    k.expires_at.map_or_else(
        || "until revoked".to_string(),
        |e| format!("until {}", rfc3339(e)),
    )
}

/// Runs one `api-key` command.
pub async fn run(tg: &Tollgate, c: ApiKeyCommand, json_out: bool) -> Result<()> {
    let t = now();
    match c {
        ApiKeyCommand::Create {
            client,
            env,
            expires,
            name,
        } => {
            let ttl = seconds("--expires", expires)?;
            let (key, rec) = tg
                .create_api_key(&env, &client, name.as_deref(), ttl)
                .await?;
            let mut value = row(&rec, t);
            value["api_key"] = json!(key.expose_secret());
            show(json_out, value, || {
                format!(
                    "API key tgk_{} for {} ({}):\n{}\n\nIt is shown only this once. Send it as X-API-Key.\n",
                    rec.id,
                    rec.client_id,
                    until(&rec),
                    key.expose_secret()
                )
            });
        }
        ApiKeyCommand::List { client, env } => {
            let keys = tg.list_api_keys(&env, client.as_deref()).await?;
            let rows: Vec<_> = keys.iter().map(|k| row(k, t)).collect();
            show(json_out, json!(rows), || {
                keys.iter()
                    .map(|k| {
                        format!(
                            "tgk_{}\t{}\t{}\tcreated {}\t{}\t{}\n",
                            k.id,
                            k.client_id,
                            k.name.as_deref().unwrap_or("-"),
                            rfc3339(k.created_at),
                            until(k),
                            status(k, t)
                        )
                    })
                    .collect()
            });
        }
        ApiKeyCommand::Revoke { id, env } => {
            let rec = tg.revoke_api_key(&env, &id).await?;
            show(json_out, row(&rec, t), || {
                format!(
                    "revoked tgk_{} of {}; servers refuse it from their next sync\n",
                    rec.id, rec.client_id
                )
            });
        }
        ApiKeyCommand::Rotate {
            id,
            env,
            grace,
            expires,
        } => {
            let grace = parse_duration(&grace)
                .with_context(|| format!("--grace {grace}"))?
                .as_secs();
            let ttl = seconds("--expires", expires)?;
            let (key, new, old) = tg.rotate_api_key(&env, &id, grace, ttl).await?;
            let mut value = row(&new, t);
            value["api_key"] = json!(key.expose_secret());
            value["replaces"] = row(&old, t);
            show(json_out, value, || {
                format!(
                    "API key tgk_{} for {} ({}), replacing tgk_{} (works {}):\n{}\n\nIt is shown only this once.\n",
                    new.id,
                    new.client_id,
                    until(&new),
                    old.id,
                    until(&old),
                    key.expose_secret()
                )
            });
        }
    }
    Ok(())
}
