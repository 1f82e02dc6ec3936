//! The markup of the provider's pages (sign-in with an admin token, the
//! partners with their pending package requests, the audit log) and of a
//! partner's package-request page. maud escapes every value; plain forms,
//! no script. A leaf: data in, markup out (the stylesheet is `pages.rs`'s,
//! served as a file).

use maud::{DOCTYPE, Markup, html};
use tollgate_core::model::AuditEntry;
use tollgate_core::package_request::{MAX_NOTE, PackageRequest};
use tollgate_core::partner::{Offer, Partner};
use tollgate_core::time::rfc3339;

/// One partner's line on the provider's overview.
pub(crate) struct PartnerLine {
    /// The partner.
    pub(crate) partner: Partner,
    /// How many clients it owns.
    pub(crate) clients: usize,
    /// How many of its package requests wait.
    pub(crate) pending: usize,
}

/// The provider's frame: its own header (sign-out goes to the provider
/// session), the portal's stylesheet.
fn frame(base: &str, title: &str, who: Option<(&str, &str)>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · tollgate provider" }
                link rel="stylesheet" href={ (base) "static/portal.css" };
            }
            body {
                header {
                    h1 { "Partner portal · provider" }
                    @if let Some((admin, csrf)) = who {
                        nav { a href={ (base) "provider/" } { "Partners" } " · " a href={ (base) "provider/audit" } { "Audit log" } }
                        span { "admin client " strong { (admin) } }
                        form method="post" action={ (base) "provider/logout" } {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    h2 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The provider's sign-in form: an admin API token, pasted.
pub(crate) fn login(base: &str, csrf: &str, error: Option<&str>) -> Markup {
    frame(
        base,
        "Provider sign-in",
        None,
        html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            p { "Sign in with an admin API token (audience " code { "tollgate-admin" } ", permission "
                code { "admin:read" } "; " code { "admin:write" } " to approve, decline, disable and enable). "
                "The session ends when the token expires." }
            form method="post" action={ (base) "provider/login" } {
                input type="hidden" name="csrf" value=(csrf);
                label for="token" { "Admin token" }
                input type="password" id="token" name="token" autocomplete="off" required autofocus;
                button type="submit" { "Sign in" }
            }
        },
    )
}

fn hidden(csrf: &str, name: &str, value: &str) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(csrf);
        input type="hidden" name=(name) value=(value);
    }
}

/// The overview: every partner, and the package requests that wait.
pub(crate) fn overview(
    base: &str,
    admin: &str,
    csrf: &str,
    may_write: bool,
    partners: &[PartnerLine],
    pending: &[PackageRequest],
) -> Markup {
    frame(
        base,
        "Partners",
        Some((admin, csrf)),
        html! {
            @if !may_write {
                p.notice { "Read only: this admin token lacks admin:write." }
            }
            section aria-labelledby="pending-title" {
                h3 id="pending-title" { "Package requests waiting (" (pending.len()) ")" }
                @if pending.is_empty() {
                    p.muted { "None." }
                } @else {
                    table id="pending" {
                        thead { tr { th scope="col" { "Partner" } th scope="col" { "Asks for" } th scope="col" { "Note" } th scope="col" { "Asked" } th scope="col" { "Decision" } } }
                        tbody {
                            @for r in pending {
                                tr id={ "request-" (r.id) } {
                                    td { (r.partner) br; span.muted { (r.requested_by) } }
                                    td { code { (r.env) } " · " code { (r.api) } " · " strong { (r.package) } }
                                    td { (r.note) }
                                    td { (rfc3339(r.created_at)) }
                                    td.row-actions {
                                        @if may_write {
                                            form method="post" action={ (base) "provider/requests/approve" } {
                                                (hidden(csrf, "id", &r.id))
                                                button type="submit" aria-label={ "Approve " (r.package) " for " (r.partner) } { "Approve" }
                                            }
                                            form method="post" action={ (base) "provider/requests/decline" } {
                                                (hidden(csrf, "id", &r.id))
                                                button.secondary type="submit" aria-label={ "Decline " (r.package) " for " (r.partner) } { "Decline" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="partners-title" {
                h3 id="partners-title" { "Partners (" (partners.len()) ")" }
                @if partners.is_empty() {
                    p.muted { "No partner yet: " code { "tollgate partner create" } " or POST /admin/v1/partners." }
                } @else {
                    table id="partners" {
                        thead { tr { th scope="col" { "Partner" } th scope="col" { "State" } th scope="col" { "Clients" } th scope="col" { "Requests waiting" } th scope="col" { "Offers" } th scope="col" { "Action" } } }
                        tbody {
                            @for l in partners {
                                tr id={ "partner-" (l.partner.id) } {
                                    td { strong { (l.partner.name) } br; code { (l.partner.id) } }
                                    td.state { @if l.partner.enabled { "enabled" } @else { strong { "disabled" } } }
                                    td { (l.clients) }
                                    td { (l.pending) }
                                    td { (offers(&l.partner.offers)) }
                                    td.row-actions {
                                        @if may_write {
                                            @if l.partner.enabled {
                                                form method="post" action={ (base) "provider/partners/disable" } {
                                                    (hidden(csrf, "partner", &l.partner.id))
                                                    button type="submit" aria-label={ "Disable " (l.partner.name) } { "Disable" }
                                                }
                                            } @else {
                                                form method="post" action={ (base) "provider/partners/enable" } {
                                                    (hidden(csrf, "partner", &l.partner.id))
                                                    button.secondary type="submit" aria-label={ "Enable " (l.partner.name) } { "Enable" }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn offers(list: &[Offer]) -> Markup {
    html! {
        @if list.is_empty() { span.muted { "none" } }
        @for o in list {
            code { (o.env) ":" (o.api) "=" (o.package) } " "
        }
    }
}

/// A page of the audit log, oldest first, with the next page's link.
pub(crate) fn audit(
    base: &str,
    admin: &str,
    csrf: &str,
    entries: &[AuditEntry],
    next: Option<&str>,
) -> Markup {
    frame(
        base,
        "Audit log",
        Some((admin, csrf)),
        html! {
            @if entries.is_empty() {
                p.muted { "No more entries." }
            } @else {
                table id="audit" {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Environment" } th scope="col" { "Target" } th scope="col" { "From" } } }
                    tbody {
                        @for e in entries {
                            tr {
                                td { (rfc3339(e.at)) }
                                td { code { (e.actor) } }
                                td { (e.action) }
                                td { (e.env.as_deref().unwrap_or("")) }
                                td { code { (e.target) } }
                                td { (e.source.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
            @if let Some(c) = next {
                p { a id="audit-next" href={ (base) "provider/audit?cursor=" (c) } { "Next page" } }
            }
        },
    )
}

/// A partner's page to ask for a package: the packages of the APIs of the
/// environments it already works in that it is not offered, and its
/// requests so far.
pub(crate) fn request_form(
    base: &str,
    csrf: &str,
    partner: &str,
    login: &str,
    choices: &[Offer],
    mine: &[PackageRequest],
    message: Option<&str>,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { "Ask for a package · tollgate partner portal" }
                link rel="stylesheet" href={ (base) "static/portal.css" };
            }
            body {
                header {
                    h1 { "Partner portal" }
                    span { (partner) " · signed in as " strong { (login) } }
                    a href=(base) { "Back to your clients" }
                }
                main id="main" {
                    h2 { "Ask for a package" }
                    @if let Some(m) = message { p.notice role="status" { (m) } }
                    @if choices.is_empty() {
                        p.muted { "There is nothing more to ask for in the environments you work in. Ask your provider directly for another environment." }
                    } @else {
                        form method="post" action={ (base) "requests" } {
                            input type="hidden" name="csrf" value=(csrf);
                            label for="package" { "Package" }
                            select id="package" name="package" required {
                                @for o in choices {
                                    option value=(serde_json::json!([o.env, o.api, o.package]).to_string()) {
                                        (o.env) " · " (o.api) " · " (o.package)
                                    }
                                }
                            }
                            label for="note" { "Note for your provider (optional, up to " (MAX_NOTE) " characters)" }
                            textarea id="note" name="note" maxlength=(MAX_NOTE) rows="3" cols="50" {}
                            br;
                            button type="submit" { "Send the request" }
                        }
                    }
                    h3 { "Your requests" }
                    @if mine.is_empty() {
                        p.muted { "None yet." }
                    } @else {
                        table id="my-requests" {
                            thead { tr { th scope="col" { "Package" } th scope="col" { "Status" } th scope="col" { "Asked" } } }
                            tbody {
                                @for r in mine.iter().rev() {
                                    tr {
                                        td { code { (r.env) } " · " code { (r.api) } " · " strong { (r.package) } }
                                        td.status { (r.status.as_str()) }
                                        td { (rfc3339(r.created_at)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
