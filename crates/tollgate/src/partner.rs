//! `tollgate partner create|offer|invite|list|disable|enable|reset-totp|
//! requests|approve|decline`: the provider's side of the partner portal
//! (docs/PORTAL.md). An invitation link is printed once (only a digest of
//! its token is kept). Each write goes to the audit log with actor `cli`.
//! The rules are the core's (`service/portal.rs`, `service/provider.rs`).

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use secrecy::ExposeSecret;
use serde_json::json;
use tollgate_core::Tollgate;
use tollgate_core::package_request::{PackageRequest, RequestStatus};
use tollgate_core::partner::{Offer, Partner};
use tollgate_core::service::AuditEvent;
use tollgate_core::time::rfc3339;

use crate::app::public_url;
use crate::config::{Config, parse_duration};

#[derive(Debug, Subcommand)]
pub enum PartnerCommand {
    /// Create a partner organisation, optionally offering it packages.
    Create {
        /// Its id: lowercase letters, digits and '-'.
        id: String,
        /// Its display name [default: the id].
        #[arg(long)]
        name: Option<String>,
        /// The environment of the --offer packages.
        #[arg(long, default_value = "default")]
        env: String,
        /// A package offered to it, as API=PACKAGE (repeatable).
        #[arg(long = "offer", value_name = "API=PACKAGE")]
        offers: Vec<String>,
    },
    /// Offer a partner more packages (those it has stay).
    Offer {
        /// The partner's id.
        id: String,
        #[arg(long, default_value = "default")]
        env: String,
        /// A package, as API=PACKAGE (repeatable).
        #[arg(long = "offer", value_name = "API=PACKAGE", required = true)]
        offers: Vec<String>,
    },
    /// Print a one-time invitation link to create an account of the
    /// partner (shown once; it expires).
    Invite {
        /// The partner's id.
        id: String,
        /// How long the link works.
        #[arg(long, default_value = "72h")]
        expires: String,
        /// The portal's address the link starts with [default: public_url
        /// and portal_path].
        #[arg(long)]
        portal_url: Option<String>,
    },
    /// List partners, their offers and how many clients each owns.
    List,
    /// Disable a partner: its accounts cannot sign in, its sessions end and
    /// every client it owns is disabled (each server at its next sync).
    Disable {
        /// The partner's id.
        id: String,
    },
    /// Enable a partner again, with every client it owns.
    Enable {
        /// The partner's id.
        id: String,
    },
    /// Turn off a portal account's two-step sign-in (TOTP), e.g. after a
    /// lost phone: it signs in with its password alone until it sets it
    /// up again.
    ResetTotp {
        /// The account's login name.
        login: String,
    },
    /// List partners' package requests (asked for in the portal), oldest
    /// first.
    Requests {
        /// Only those waiting for a decision.
        #[arg(long)]
        pending: bool,
        /// Only this partner's.
        #[arg(long)]
        partner: Option<String>,
    },
    /// Approve a pending package request: the package is offered to the
    /// partner from now on.
    Approve {
        /// The request's id (`partner requests`).
        id: String,
    },
    /// Decline a pending package request.
    Decline {
        /// The request's id (`partner requests`).
        id: String,
    },
}

/// A package request as `partner requests --json` prints it.
pub(crate) fn request_row(r: &PackageRequest) -> serde_json::Value {
    json!({
        "id": r.id,
        "partner": r.partner,
        "requested_by": r.requested_by,
        "env": r.env,
        "api": r.api,
        "package": r.package,
        "note": r.note,
        "status": r.status.as_str(),
        "created_at": rfc3339(r.created_at),
        "decided_at": r.decided_at.map(rfc3339),
        "decided_by": r.decided_by,
    })
}

/// A package request's text line.
pub(crate) fn request_line(v: &serde_json::Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    format!(
        "{}\t{}\t{}\t{}:{}={}\t{}\t{}\n",
        s("id"),
        s("status"),
        s("partner"),
        s("env"),
        s("api"),
        s("package"),
        s("requested_by"),
        s("note").replace(['\n', '\r', '\t'], " ")
    )
}

fn offers(env: &str, specs: &[String]) -> Result<Vec<Offer>> {
    specs
        .iter()
        .map(|s| {
            let Some((api, package)) = s.rsplit_once('=') else {
                bail!("--offer {s}: give API=PACKAGE");
            };
            Ok(Offer {
                env: env.to_string(),
                api: api.to_string(),
                package: package.to_string(),
            })
        })
        .collect()
}

fn row(p: &Partner, clients: usize) -> serde_json::Value {
    json!({
        "id": p.id,
        "name": p.name,
        "enabled": p.enabled,
        "offers": p.offers,
        "clients": clients,
        "created_at": rfc3339(p.created_at),
    })
}

fn offers_text(p: &Partner) -> String {
    p.offers
        .iter()
        .map(|o| format!("{}:{}={}", o.env, o.api, o.package))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn record(tg: &Tollgate, action: &str, target: &str, after: serde_json::Value) -> Result<()> {
    tg.record_audit(AuditEvent {
        actor: "cli".into(),
        action: action.into(),
        env: None,
        target: target.into(),
        source: None,
        before: None,
        after: Some(after),
    })
    .await?;
    Ok(())
}

fn show(json: bool, value: serde_json::Value, text: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        print!("{}", text());
    }
}

/// Runs one `partner` command.
pub async fn run(tg: &Tollgate, config: &Config, c: PartnerCommand, json_out: bool) -> Result<()> {
    match c {
        PartnerCommand::Create {
            id,
            name,
            env,
            offers: specs,
        } => {
            let p = tg
                .create_partner(&id, name.as_deref().unwrap_or(&id), offers(&env, &specs)?)
                .await?;
            record(tg, "partner.create", &p.id, row(&p, 0)).await?;
            show(json_out, row(&p, 0), || {
                format!("partner {} created; offers: {}\n", p.id, offers_text(&p))
            });
        }
        PartnerCommand::Offer {
            id,
            env,
            offers: specs,
        } => {
            let p = tg.offer_to_partner(&id, offers(&env, &specs)?).await?;
            record(tg, "partner.offer", &p.id, json!({"offers": p.offers})).await?;
            show(json_out, row(&p, 0), || {
                format!("partner {} offers: {}\n", p.id, offers_text(&p))
            });
        }
        PartnerCommand::Invite {
            id,
            expires,
            portal_url,
        } => {
            let ttl = parse_duration(&expires)
                .with_context(|| format!("--expires {expires}"))?
                .as_secs();
            let Some(path) = &config.portal_path else {
                bail!("the portal is off (portal_path = off): an invitation would lead nowhere");
            };
            let base = match portal_url {
                Some(u) => format!("{}/", u.trim_end_matches('/')),
                None => format!("{}{path}", public_url(config, config.listen)),
            };
            let (token, inv) = tg.invite_partner(&id, ttl).await?;
            record(
                tg,
                "partner.invite",
                &id,
                json!({"expires_at": rfc3339(inv.expires_at)}),
            )
            .await?;
            let link = format!("{base}accept?token={}", token.expose_secret());
            show(
                json_out,
                json!({"partner": id, "link": link, "expires_at": rfc3339(inv.expires_at)}),
                || {
                    format!(
                        "invitation for {id} (one use, until {}; shown once):\n{link}\n",
                        rfc3339(inv.expires_at)
                    )
                },
            );
        }
        PartnerCommand::List => {
            let mut rows = Vec::new();
            for p in tg.list_partners().await? {
                let n = tg.partner_clients(&p.id).await?.len();
                rows.push((p, n));
            }
            if json_out {
                println!(
                    "{}",
                    serde_json::Value::Array(rows.iter().map(|(p, n)| row(p, *n)).collect())
                );
            } else {
                for (p, n) in &rows {
                    println!(
                        "{}\t{}\t{}\tclients={n}\t{}",
                        p.id,
                        if p.enabled { "enabled" } else { "disabled" },
                        p.name,
                        offers_text(p)
                    );
                }
            }
        }
        PartnerCommand::Disable { id } => {
            tg.set_partner_enabled(&id, false).await?;
            record(tg, "partner.disable", &id, json!({"enabled": false})).await?;
            show(json_out, json!({"id": id, "enabled": false}), || {
                format!("partner {id} disabled, with its clients\n")
            });
        }
        PartnerCommand::ResetTotp { login } => {
            let had = tg.reset_partner_totp(&login).await?;
            record(
                tg,
                "partner.account.reset-totp",
                &login,
                json!({"had_totp": had}),
            )
            .await?;
            show(json_out, json!({"login": login, "had_totp": had}), || {
                if had {
                    format!("{login}: two-step sign-in removed; the password alone signs in\n")
                } else {
                    format!("{login} had no two-step sign-in; nothing changed\n")
                }
            });
        }
        PartnerCommand::Enable { id } => {
            tg.set_partner_enabled(&id, true).await?;
            record(tg, "partner.enable", &id, json!({"enabled": true})).await?;
            show(json_out, json!({"id": id, "enabled": true}), || {
                format!("partner {id} enabled, with its clients\n")
            });
        }
        PartnerCommand::Requests { pending, partner } => {
            let status = pending.then_some(RequestStatus::Pending);
            let rows: Vec<serde_json::Value> = tg
                .list_package_requests(partner.as_deref(), status)
                .await?
                .iter()
                .map(request_row)
                .collect();
            if json_out {
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for r in &rows {
                    print!("{}", request_line(r));
                }
            }
        }
        PartnerCommand::Approve { id } => {
            let (r, p) = tg.approve_package_request(&id, "cli").await?;
            let row = request_row(&r);
            tg.record_audit(AuditEvent {
                actor: "cli".into(),
                action: "package-request.approve".into(),
                env: Some(r.env.clone()),
                target: r.id.clone(),
                source: None,
                before: None,
                after: Some(row.clone()),
            })
            .await?;
            show(json_out, row, || {
                format!(
                    "request {id} approved: {} is offered {}:{}={}\n",
                    p.id, r.env, r.api, r.package
                )
            });
        }
        PartnerCommand::Decline { id } => {
            let r = tg.decline_package_request(&id, "cli").await?;
            let row = request_row(&r);
            tg.record_audit(AuditEvent {
                actor: "cli".into(),
                action: "package-request.decline".into(),
                env: Some(r.env.clone()),
                target: r.id.clone(),
                source: None,
                before: None,
                after: Some(row.clone()),
            })
            .await?;
            show(json_out, row, || format!("request {id} declined\n"));
        }
    }
    Ok(())
}
