//! The markup of a client's credentials page (refresh JWTs of the bearer
//! exchange, gate API keys: the live ones listed without their secret,
//! forms to make, rotate and revoke them) and of the page that shows a new one
//! once. Data in, markup out.

use maud::{Markup, html};
use tollgate_core::model::{ApiKey, Client, RefreshJwtRecord};

use super::handover_pages::{deliver_choice, download_link};
use super::pages::{Header, layout, when};

/// Lifetimes offered for a refresh JWT: (seconds, label).
const JWT_TTLS: &[(u64, &str)] = &[
    (90 * 24 * 3600, "90 days"),
    (30 * 24 * 3600, "30 days"),
    (365 * 24 * 3600, "365 days"),
    (24 * 3600, "1 day"),
];

/// Lifetimes offered for an API key: (seconds, label); 0 is none.
const KEY_TTLS: &[(u64, &str)] = &[
    (0, "until revoked"),
    (30 * 24 * 3600, "30 days"),
    (90 * 24 * 3600, "90 days"),
    (365 * 24 * 3600, "365 days"),
];

/// Graces offered for a rotated API key: (seconds, label).
const GRACES: &[(u64, &str)] = &[
    (3600, "1 hour"),
    (24 * 3600, "24 hours"),
    (7 * 24 * 3600, "7 days"),
    (0, "no time: stop it now"),
];

fn hidden(csrf: &str, c: &Client) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(csrf);
        input type="hidden" name="env" value=(c.env);
        input type="hidden" name="client_id" value=(c.client_id);
    }
}

/// The credentials page of client `c`.
pub(crate) fn client_page(
    base: &str,
    who: &Header<'_>,
    c: &Client,
    jwts: &[RefreshJwtRecord],
    keys: &[ApiKey],
) -> Markup {
    layout(
        base,
        "Refresh JWTs and API keys",
        Some(who),
        html! {
            p { "Client " strong { (c.name) } " (" code { (c.client_id) } ", environment " code { (c.env) } ")." }
            section aria-labelledby="rj" {
                h3 id="rj" { "Refresh JWTs (bearer exchange)" }
                p.muted { "A long-lived token your client exchanges for access tokens at "
                    code { "POST /pub/v2/players/access-token" } " (header " code { "Authorization: Bearer <refresh JWT>" } ")." }
                @if jwts.is_empty() {
                    p.muted { "None that still work." }
                } @else {
                    table {
                        thead { tr { th scope="col" { "Id" } th scope="col" { "API" } th scope="col" { "Made" } th scope="col" { "Expires" } th scope="col" { "Action" } } }
                        tbody {
                            @for r in jwts {
                                tr {
                                    td { code { (r.jti) } }
                                    td { code { (r.audience) } }
                                    td { (when(r.created_at)) }
                                    td { (when(r.expires_at)) }
                                    td {
                                        form method="post" action={ (base) "clients/refresh-jwts/revoke" } {
                                            (hidden(who.csrf, c))
                                            input type="hidden" name="jti" value=(r.jti);
                                            button.secondary type="submit" aria-label={ "Revoke refresh JWT " (r.jti) } { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                form method="post" action={ (base) "clients/refresh-jwts" } {
                    (hidden(who.csrf, c))
                    fieldset {
                        legend { "Issue a refresh JWT" }
                        label for="rj-api" { "For the API" }
                        select id="rj-api" name="api" {
                            @for g in &c.apis { option value=(g.api) { (g.api) } }
                        }
                        label for="rj-ttl" { "Works for" }
                        select id="rj-ttl" name="ttl" {
                            @for (secs, label) in JWT_TTLS { option value=(secs) { (label) } }
                        }
                        (deliver_choice("rj"))
                        button type="submit" { "Issue refresh JWT" }
                    }
                }
            }
            section aria-labelledby="ak" {
                h3 id="ak" { "API keys (gate)" }
                p.muted { "Sent as " code { "X-API-Key: <key>" } " to the provider's API routes that accept keys." }
                @if keys.is_empty() {
                    p.muted { "None that still work." }
                } @else {
                    table {
                        thead { tr { th scope="col" { "Id" } th scope="col" { "Name" } th scope="col" { "Made" } th scope="col" { "Expires" } th scope="col" { "Action" } } }
                        tbody {
                            @for k in keys {
                                tr {
                                    td { code { "tgk_" (k.id) } }
                                    td { (k.name.as_deref().unwrap_or("")) }
                                    td { (when(k.created_at)) }
                                    td { @if let Some(e) = k.expires_at { (when(e)) } @else { "never" } }
                                    td.row-actions {
                                        form method="post" action={ (base) "clients/api-keys/rotate" } {
                                            (hidden(who.csrf, c))
                                            input type="hidden" name="id" value=(k.id);
                                            label for={ "grace-" (k.id) } { "Old key keeps working for" }
                                            select id={ "grace-" (k.id) } name="grace" {
                                                @for (secs, label) in GRACES { option value=(secs) { (label) } }
                                            }
                                            (deliver_choice(&format!("rot-{}", k.id)))
                                            button type="submit" aria-label={ "Rotate API key " (k.id) } { "Rotate" }
                                        }
                                        form method="post" action={ (base) "clients/api-keys/revoke" } {
                                            (hidden(who.csrf, c))
                                            input type="hidden" name="id" value=(k.id);
                                            button.secondary type="submit" aria-label={ "Revoke API key " (k.id) } { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                form method="post" action={ (base) "clients/api-keys" } {
                    (hidden(who.csrf, c))
                    fieldset {
                        legend { "Create an API key" }
                        label for="ak-name" { "Name (optional, e.g. where it is used)" }
                        input type="text" id="ak-name" name="name" maxlength="200";
                        label for="ak-ttl" { "Works" }
                        select id="ak-ttl" name="ttl" {
                            @for (secs, label) in KEY_TTLS { option value=(secs) { (label) } }
                        }
                        (deliver_choice("ak"))
                        button type="submit" { "Create API key" }
                    }
                }
            }
            p { a href=(base) { "Back to your clients" } }
        },
    )
}

/// What a page that shows a new secret once says about it.
pub(crate) struct Shown<'a> {
    /// The page's title.
    pub(crate) title: &'a str,
    /// What the secret is.
    pub(crate) label: &'a str,
    /// The secret.
    pub(crate) secret: &'a str,
    /// The download's file name.
    pub(crate) file: &'a str,
    /// How to use it.
    pub(crate) usage: &'a str,
    /// Where to go back to.
    pub(crate) back: &'a str,
}

/// The page that shows a new refresh JWT or API key, once.
pub(crate) fn shown_once(base: &str, who: &Header<'_>, s: &Shown<'_>) -> Markup {
    layout(
        base,
        s.title,
        Some(who),
        html! {
            p.notice role="status" {
                strong { "Copy or download it now: it is shown only once." }
                " tollgate does not keep it; if you lose it, revoke it and make a new one."
            }
            dl {
                dt { "For" } dd { (s.label) }
                dt { "Secret" }
                dd { code.secret id="new-secret" { (s.secret) }
                     button type="button" data-copy="new-secret" hidden { "Copy" } }
            }
            p { (download_link(s.file, s.secret)) }
            p { (s.usage) }
            p { a href=(s.back) { "Back to the client's credentials" } }
        },
    )
}
