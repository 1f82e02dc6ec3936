//! Commands for switching over from an incumbent service: trusting its
//! refresh tokens (`refresh-jwt trust|untrust`, revocation by id or client),
//! importing its signing keys (`key import`), publishing its public keys
//! while its access tokens are in flight (`key publish|unpublish`) and
//! importing its users (`user import`).
//! Kept apart from `commands.rs` so that file keeps one block per noun.

use anyhow::{Context, Result};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tollgate_core::Tollgate;
use tollgate_core::crypto::imported::HashInput;
use tollgate_core::crypto::keys::Imported;
use tollgate_core::crypto::trust::published_jwks;
use tollgate_core::incumbent::{TrustKeys, TrustPurpose, TrustedIssuer};
use tollgate_core::model::Alg;
use tollgate_core::service::admin::trust::{NewTrust, Revoked, TrustMaterial};
use tollgate_core::service::admin::user_import::{ImportFormat, parse_line};
use tollgate_core::time::rfc3339;

use crate::cli::{KeyImportArgs, TrustArgs, UserImportArgs};
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

fn read_text(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// `refresh-jwt trust`.
pub async fn trust(tg: &Tollgate, a: TrustArgs, json_out: bool) -> Result<()> {
    let material = match (&a.key.jwks, &a.key.pem, &a.key.hs256_secret_file) {
        (Some(p), _, _) => TrustMaterial::Jwks(read_text(p)?),
        (_, Some(p), _) => TrustMaterial::Pem(read_text(p)?),
        (_, _, Some(p)) => TrustMaterial::Hs256(SecretString::from(read_text(p)?)),
        _ => anyhow::bail!("give one of --jwks, --pem and --hs256-secret-file"),
    };
    let rec = tg
        .trust_issuer(
            &a.env,
            NewTrust {
                id: a.name,
                purpose: a.purpose.parse()?,
                material,
                issuer: a.issuer,
                audience: a.audience,
                client_claim: a.client_claim,
                user_claim: a.user_claim,
                api: a.api,
            },
        )
        .await?;
    show(json_out, trusted_json(&rec, &[]), || {
        format!(
            "trusted issuer {} in {} for {}: its tokens' '{}' claim names the client\n",
            rec.id,
            rec.env,
            rec.purpose.as_str(),
            rec.client_claim
        )
    });
    Ok(())
}

/// One trusted issuer as `refresh-jwt list --json` shows it.
pub fn trusted_json(t: &TrustedIssuer, algs: &[String]) -> serde_json::Value {
    json!({
        "kind": "trusted",
        "name": t.id,
        "env": t.env,
        "for": t.purpose.as_str(),
        "keys": t.keys.kind(),
        "algorithms": algs,
        "issuer": t.issuer,
        "audience": t.audience,
        "client_claim": t.client_claim,
        "user_claim": t.user_claim,
        "api": t.api,
        "created_at": rfc3339(t.created_at),
    })
}

/// The trusted issuers of `env`, as rows and lines for `refresh-jwt list`.
pub async fn trusted_rows(tg: &Tollgate, env: &str) -> Result<(Vec<serde_json::Value>, String)> {
    let trusted = tg.list_trusted_issuers(env).await?;
    let rows = trusted.iter().map(|(t, a)| trusted_json(t, a)).collect();
    let text = trusted
        .iter()
        .map(|(t, algs)| {
            format!(
                "trusted\t{}\tfor {}\t{} {}\tclient claim '{}'{}\n",
                t.id,
                t.purpose.as_str(),
                t.keys.kind(),
                algs.join(","),
                t.client_claim,
                t.issuer
                    .as_ref()
                    .map(|i| format!("\tissuer {i}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    Ok((rows, text))
}

/// `refresh-jwt untrust`.
pub async fn untrust(tg: &Tollgate, name: &str, env: &str, json_out: bool) -> Result<()> {
    tg.untrust_issuer(env, name).await?;
    show(json_out, json!({"untrusted": name}), || {
        format!("no longer trusting {name} in {env}\n")
    });
    Ok(())
}

/// `refresh-jwt revoke` by id or by client.
pub async fn revoke(
    tg: &Tollgate,
    jti: Option<String>,
    client: Option<String>,
    env: &str,
    json_out: bool,
) -> Result<()> {
    match (jti, client) {
        (_, Some(client)) => {
            let n = tg.revoke_client_refresh_tokens(env, &client).await?;
            show(
                json_out,
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
            let kind = tg.revoke_refresh_token(env, &jti).await?;
            let (k, text) = match kind {
                Revoked::Issued => ("issued", format!("revoked refresh JWT {jti}\n")),
                Revoked::Foreign => (
                    "foreign",
                    format!(
                        "{jti} is not a refresh JWT tollgate issued: put on the deny list \
                         for trusted incumbents' tokens\n"
                    ),
                ),
            };
            show(json_out, json!({"revoked": jti, "kind": k}), || text);
        }
        (None, None) => anyhow::bail!("give a token id or --client"),
    }
    Ok(())
}

/// `key import`.
pub async fn key_import(tg: &Tollgate, a: KeyImportArgs, json_out: bool) -> Result<()> {
    let delay = parse_duration(&a.publish_delay)
        .with_context(|| format!("--publish-delay {}", a.publish_delay))?
        .as_secs();
    let text = match (&a.material.pem, &a.material.hs256_secret_file) {
        // Key material: kept in a secret wrapper, zeroed when dropped.
        (Some(p), _) | (_, Some(p)) => SecretString::from(read_text(p)?),
        _ => anyhow::bail!("give --pem or --hs256-secret-file"),
    };
    let material = if a.material.pem.is_some() {
        Imported::Pem(text.expose_secret())
    } else {
        Imported::Hs256(
            text.expose_secret()
                .trim_end_matches(['\r', '\n'])
                .as_bytes(),
        )
    };
    let rec = tg
        .import_key(&a.env, material, a.kid.as_deref(), delay)
        .await?;
    let hs = rec.alg == Alg::HS256;
    show(
        json_out,
        json!({"env": rec.env, "kid": rec.kid, "alg": rec.alg.as_str(), "published": !hs,
               "activates_at": rfc3339(rec.activates_at)}),
        || {
            format!(
                "imported key {} ({}) into {}: {}, signs from {}\n",
                rec.kid,
                rec.alg.as_str(),
                rec.env,
                if hs {
                    "a shared secret, never published"
                } else {
                    "published now"
                },
                rfc3339(rec.activates_at)
            )
        },
    );
    Ok(())
}

/// Lines between two progress reports of `user import`.
const PROGRESS_EVERY: usize = 10_000;

/// `user import`: every line read and checked first (progress on stderr),
/// then one transaction.
pub async fn user_import(tg: &Tollgate, a: UserImportArgs, json_out: bool) -> Result<()> {
    use std::io::BufRead as _;
    let input: HashInput = a
        .hashed
        .parse()
        .map_err(|e| anyhow::anyhow!("--hashed: {e}"))?;
    let file =
        std::fs::File::open(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let name = a.file.display().to_string();
    let mut format = match a.format.as_deref() {
        Some("csv") => Some(ImportFormat::Csv),
        Some("jsonl") => Some(ImportFormat::Jsonl),
        Some(other) => anyhow::bail!("--format {other}: write csv or jsonl"),
        None => None,
    };
    let mut rows = Vec::new();
    let mut count = 0;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{name}: line {}", i + 1))?;
        let f = *format.get_or_insert_with(|| ImportFormat::guess(&name, &line));
        if let Some(row) = parse_line(f, i + 1, &line, input)? {
            rows.push(row);
        }
        count = i + 1;
        if count % PROGRESS_EVERY == 0 {
            eprintln!("{name}: {count} lines read, {} users", rows.len());
        }
    }
    if count >= PROGRESS_EVERY {
        eprintln!(
            "{name}: all {count} lines read; writing {} users in one transaction",
            rows.len()
        );
    }
    let n = tg.import_users(&a.env, &a.client, rows).await?;
    show(
        json_out,
        json!({"imported": n, "client_id": a.client, "env": a.env}),
        || {
            format!(
                "imported {n} users of {} into {}: their hashes are replaced by argon2id at \
                 their first login\n",
                a.client, a.env
            )
        },
    );
    Ok(())
}

/// `key publish`.
pub async fn key_publish(
    tg: &Tollgate,
    env: &str,
    name: &str,
    jwks: &std::path::Path,
    json_out: bool,
) -> Result<()> {
    let rec = tg
        .publish_incumbent_keys(env, name, read_text(jwks)?)
        .await?;
    let kids = published_kids(&rec);
    show(
        json_out,
        json!({"env": rec.env, "name": rec.id, "kids": kids}),
        || {
            format!(
                "publishing {} incumbent key(s) in {} as {}: {}; they never sign\n",
                kids.len(),
                rec.env,
                rec.id,
                kids.join(", ")
            )
        },
    );
    Ok(())
}

/// `key unpublish`.
pub async fn key_unpublish(tg: &Tollgate, env: &str, name: &str, json_out: bool) -> Result<()> {
    let published = tg
        .list_trusted_issuers(env)
        .await?
        .into_iter()
        .any(|(t, _)| t.id == name && t.purpose == TrustPurpose::AccessTokens);
    if !published {
        anyhow::bail!("no incumbent keys named {name} are published in {env}");
    }
    tg.untrust_issuer(env, name).await?;
    show(json_out, json!({"unpublished": name}), || {
        format!("no longer publishing {name} in {env}\n")
    });
    Ok(())
}

fn published_kids(t: &TrustedIssuer) -> Vec<String> {
    let TrustKeys::Jwks { jwks } = &t.keys else {
        return Vec::new();
    };
    published_jwks(jwks)
        .unwrap_or_default()
        .iter()
        .filter_map(|k| k.get("kid").and_then(|v| v.as_str()).map(str::to_string))
        .collect()
}

/// The incumbent keys published in `env` (every environment: `None`), as
/// rows and lines for `key list`.
pub async fn published_rows(
    tg: &Tollgate,
    env: Option<&str>,
) -> Result<(Vec<serde_json::Value>, String)> {
    let envs: Vec<String> = match env {
        Some(e) => vec![e.to_string()],
        None => tg
            .list_environments()
            .await?
            .into_iter()
            .map(|e| e.name)
            .collect(),
    };
    let (mut rows, mut text) = (Vec::new(), String::new());
    for e in envs {
        for (t, algs) in tg.list_trusted_issuers(&e).await? {
            if t.purpose != TrustPurpose::AccessTokens {
                continue;
            }
            for kid in published_kids(&t) {
                rows.push(json!({
                    "env": t.env, "kid": kid, "alg": algs.join(","),
                    "state": "incumbent", "published": true, "name": t.id,
                    "created_at": rfc3339(t.created_at),
                }));
                text.push_str(&format!(
                    "{}\t{kid}\t{}\tincumbent\tpublished as {}, never signs\n",
                    t.env,
                    algs.join(","),
                    t.id
                ));
            }
        }
    }
    Ok((rows, text))
}
