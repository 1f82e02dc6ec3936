//! `tollgate admin bootstrap` (the first admin client of the admin API) and
//! `tollgate audit` (the audit log, as text or JSON lines).

use std::io::Write as _;

use anyhow::{Context, Result, bail};
use secrecy::ExposeSecret;
use serde_json::json;
use tollgate_core::Tollgate;
use tollgate_core::model::DEFAULT_ENV;
use tollgate_core::service::AuditEvent;
use tollgate_core::service::admin::audit::MAX_AUDIT_PAGE;
use tollgate_core::service::admin::bootstrap::{ADMIN_API, ADMIN_PERMISSIONS};
use tollgate_core::time::{now, rfc3339};

use crate::app::public_url;
use crate::cli::AuditArgs;
use crate::config::{Config, parse_duration};

/// Creates the admin API if missing and an admin client; prints its
/// credentials once. Recorded in the audit log with actor `cli`.
pub async fn bootstrap(tg: &Tollgate, config: &Config, name: &str, json_out: bool) -> Result<()> {
    let (client, secret) = tg.bootstrap_admin(name).await?;
    let secret = secret.context("the admin client was created without a secret")?;
    tg.record_audit(AuditEvent {
        actor: "cli".into(),
        action: "admin.bootstrap".into(),
        env: Some(DEFAULT_ENV.into()),
        target: client.client_id.clone(),
        source: None,
        before: None,
        after: Some(json!({"client_id": client.client_id, "name": client.name, "api": ADMIN_API})),
    })
    .await?;
    let token_url = format!("{}/oauth/token", public_url(config, config.listen));
    if json_out {
        println!(
            "{}",
            json!({
                "client_id": client.client_id,
                "client_secret": secret.expose_secret(),
                "audience": ADMIN_API,
                "permissions": ADMIN_PERMISSIONS,
                "token_endpoint": token_url,
            })
        );
    } else {
        println!(
            "admin client {} created (permissions {}).\nclient secret (shown once): {}\n\
             Get an admin token:\n  curl -s -u {}:SECRET -d grant_type=client_credentials -d audience={ADMIN_API} {token_url}",
            client.client_id,
            ADMIN_PERMISSIONS.join(" "),
            secret.expose_secret(),
            client.client_id,
        );
    }
    Ok(())
}

/// Prints the audit log from `--since` on, oldest first.
pub async fn audit(tg: &Tollgate, args: AuditArgs, json_out: bool) -> Result<()> {
    let since = match args.since.as_deref() {
        None => i64::MIN,
        Some(s) => match s.parse::<i64>() {
            Ok(t) => t,
            Err(_) => {
                let ago = parse_duration(s).with_context(|| format!("--since {s}"))?;
                now().saturating_sub(i64::try_from(ago.as_secs()).unwrap_or(i64::MAX))
            }
        },
    };
    if args.limit == Some(0) {
        bail!("--limit must be positive");
    }
    let mut left = args.limit.unwrap_or(usize::MAX);
    let mut after: Option<String> = None;
    let mut out = std::io::stdout().lock();
    while left > 0 {
        let page = u32::try_from(left.min(MAX_AUDIT_PAGE as usize)).unwrap_or(MAX_AUDIT_PAGE);
        let entries = tg.list_audit(since, after.as_deref(), page).await?;
        let full = entries.len() == page as usize;
        for e in &entries {
            if json_out {
                writeln!(out, "{}", serde_json::to_string(e)?)?;
            } else {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    rfc3339(e.at),
                    e.actor,
                    e.action,
                    e.env.as_deref().unwrap_or("-"),
                    e.target,
                    e.source.as_deref().unwrap_or("-"),
                )?;
            }
        }
        left -= entries.len();
        after = entries.last().map(|e| e.id.clone());
        if !full {
            break;
        }
    }
    Ok(())
}
