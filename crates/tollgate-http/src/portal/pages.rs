//! The portal's pages, rendered on the server with maud (which escapes
//! every interpolated value). Plain HTML forms that work without
//! JavaScript; the one script only adds copy buttons. Every input has a
//! label, the tab order follows the page, colours keep a contrast of at
//! least 7:1. A leaf: data in, markup out.

use maud::{DOCTYPE, Markup, html};
use tollgate_core::model::Client;
use tollgate_core::partner::Offer;

use super::handover_pages::{deliver_choice, download_link, file_name};

/// The stylesheet, served at `static/portal.css` (a file, not inline, so
/// the Content-Security-Policy can forbid inline style and script).
pub(crate) const CSS: &str = r#"
:root { color-scheme: light; }
body { font-family: system-ui, sans-serif; margin: 0; color: #1a1a1a; background: #ffffff; line-height: 1.5; }
header { background: #0b3d6e; color: #ffffff; padding: .75rem 1.5rem; display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; }
header h1 { font-size: 1.2rem; margin: 0; flex: 1; }
header form { margin: 0; }
header a { color: #ffffff; }
main { max-width: 60rem; margin: 1.5rem auto; padding: 0 1.5rem; }
h2 { border-bottom: 2px solid #0b3d6e; padding-bottom: .25rem; }
label { display: block; font-weight: 600; margin-top: .75rem; }
label.inline { display: inline; font-weight: normal; margin: 0 0 0 .25rem; }
input[type=text], input[type=password], input[type=number] { font: inherit; padding: .4rem; border: 1px solid #4a4a4a; border-radius: 4px; width: 100%; max-width: 24rem; box-sizing: border-box; }
input[type=number] { max-width: 10rem; }
button { font: inherit; background: #0b3d6e; color: #ffffff; border: 2px solid #0b3d6e; border-radius: 4px; padding: .35rem .9rem; cursor: pointer; margin-top: .75rem; }
button.secondary { background: #ffffff; color: #0b3d6e; }
header button { background: #ffffff; color: #0b3d6e; margin: 0; }
:focus-visible { outline: 3px solid #b35c00; outline-offset: 2px; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { text-align: left; border-bottom: 1px solid #8a8a8a; padding: .4rem; vertical-align: top; }
code, .secret { font-family: ui-monospace, monospace; word-break: break-all; }
.secret { display: block; background: #f2f2f2; border: 1px solid #4a4a4a; padding: .5rem; font-size: 1.05rem; }
.notice { background: #fff4d6; border-left: 4px solid #8a5a00; padding: .5rem 1rem; }
.error { background: #fde8e8; border-left: 4px solid #9b1c1c; padding: .5rem 1rem; }
fieldset { border: 1px solid #8a8a8a; border-radius: 4px; margin: .75rem 0; }
.row-actions form { display: inline-block; margin-right: 1rem; }
.muted { color: #4a4a4a; }
dt { font-weight: 600; margin-top: .5rem; }
dd { margin-left: 0; }
a.button { display: inline-block; background: #ffffff; color: #0b3d6e; border: 2px solid #0b3d6e; border-radius: 4px; padding: .35rem .9rem; text-decoration: none; }
header a { color: #ffffff; }
svg.qr { display: block; border: 1px solid #4a4a4a; }
"#;

/// The copy buttons: each `button[data-copy]` copies the text of the
/// element it names. Without JavaScript the buttons stay hidden and the
/// secret can be selected by hand.
pub(crate) const JS: &str = r#"
document.querySelectorAll('button[data-copy]').forEach(function (b) {
  b.hidden = false;
  b.addEventListener('click', function () {
    var el = document.getElementById(b.getAttribute('data-copy'));
    if (!el) { return; }
    navigator.clipboard.writeText(el.textContent.trim()).then(function () {
      b.textContent = 'Copied';
    }, function () {
      var r = document.createRange(); r.selectNodeContents(el);
      var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
      b.textContent = 'Selected: press Ctrl+C';
    });
  });
});
"#;

/// Who is signed in, for the header.
pub(crate) struct Header<'a> {
    pub(crate) login: &'a str,
    pub(crate) partner: &'a str,
    pub(crate) csrf: &'a str,
}

/// The frame of every page. `base` is the portal's path, ending in `/`.
pub(crate) fn layout(base: &str, title: &str, who: Option<&Header<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · tollgate partner portal" }
                link rel="stylesheet" href={ (base) "static/portal.css" };
            }
            body {
                header {
                    h1 { "Partner portal" }
                    @if let Some(w) = who {
                        span { (w.partner) " · signed in as " strong { (w.login) } }
                        a href={ (base) "account" } { "Account security" }
                        form method="post" action={ (base) "logout" } {
                            input type="hidden" name="csrf" value=(w.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    h2 { (title) }
                    (body)
                }
                script src={ (base) "static/portal.js" } defer {}
            }
        }
    }
}

/// The sign-in form.
pub(crate) fn login(base: &str, csrf: &str, error: Option<&str>) -> Markup {
    layout(
        base,
        "Sign in",
        None,
        html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action={ (base) "login" } {
                input type="hidden" name="csrf" value=(csrf);
                label for="login" { "Login name" }
                input type="text" id="login" name="login" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input type="password" id="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
            p.muted { "No account yet? Ask your provider for an invitation link." }
        },
    )
}

/// The sign-up form of an invitation.
pub(crate) fn accept(
    base: &str,
    csrf: &str,
    token: &str,
    partner: &str,
    min_password: usize,
    error: Option<&str>,
) -> Markup {
    layout(
        base,
        "Create your account",
        None,
        html! {
            p { "You were invited to manage the API clients of " strong { (partner) } "." }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action={ (base) "accept" } {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="token" value=(token);
                label for="login" { "Login name (lowercase letters, digits, '.', '_', '-')" }
                input type="text" id="login" name="login" autocomplete="username" required
                    minlength="3" maxlength="64" pattern="[a-z0-9._\\-]{3,64}" autofocus;
                label for="password" { "Password (at least " (min_password) " characters)" }
                input type="password" id="password" name="password" autocomplete="new-password"
                    required minlength=(min_password);
                label for="password2" { "Password again" }
                input type="password" id="password2" name="password2" autocomplete="new-password"
                    required minlength=(min_password);
                button type="submit" { "Create account" }
            }
        },
    )
}

/// A client's packages, as "api: a, b".
fn grants(c: &Client) -> Markup {
    html! {
        ul {
            @for g in &c.apis {
                li { code { (g.api) } ": " (g.grants.join(", ")) }
            }
        }
    }
}

pub(crate) fn when(t: i64) -> String {
    let secs = u64::try_from(t).unwrap_or(0);
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

/// The dashboard: the partner's clients per environment, each with its
/// rotation and revocation forms, and a creation form per environment
/// where packages are offered.
pub(crate) fn dashboard(
    base: &str,
    who: &Header<'_>,
    envs: &[(String, Vec<Client>, Vec<Offer>)],
    now: i64,
) -> Markup {
    layout(
        base,
        "Your API clients",
        Some(who),
        html! {
            @if envs.is_empty() {
                p.notice { "Your provider has not offered you any API package yet." }
            }
            p { a id="ask-package" href={ (base) "requests" } { "Ask for another package" } }
            @for (env, clients, offers) in envs {
                section aria-labelledby={ "env-" (env) } {
                    h3 id={ "env-" (env) } { "Environment " code { (env) } }
                    @if clients.is_empty() {
                        p.muted { "No client here yet." }
                    } @else {
                        table {
                            caption.muted { "Clients in " (env) }
                            thead { tr { th scope="col" { "Name and id" } th scope="col" { "APIs and packages" } th scope="col" { "Secrets" } th scope="col" { "Actions" } } }
                            tbody {
                                @for c in clients {
                                    (client_row(base, who.csrf, c, now))
                                }
                            }
                        }
                    }
                    @if !offers.is_empty() {
                        (create_form(base, who.csrf, env, offers))
                    }
                }
            }
        },
    )
}

fn client_row(base: &str, csrf: &str, c: &Client, now: i64) -> Markup {
    let live: Vec<_> = c
        .secrets
        .iter()
        .filter(|s| s.expires_at.is_none_or(|e| e > now))
        .collect();
    let id = format!("{}-{}", c.env, c.client_id);
    html! {
        tr {
            td {
                strong { (c.name) }
                br;
                code { (c.client_id) }
                @if !c.enabled { br; span.error { "disabled" } }
            }
            td { (grants(c)) }
            td {
                ul {
                    @for s in &live {
                        li {
                            "created " (when(s.created_at))
                            @if let Some(e) = s.expires_at { br; "in grace until " strong { (when(e)) } }
                        }
                    }
                }
            }
            td.row-actions {
                p { a href=(usage_link(base, c)) { "Usage and quota" } }
                form method="post" action={ (base) "clients/rotate" } {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="env" value=(c.env);
                    input type="hidden" name="client_id" value=(c.client_id);
                    label for={ "grace-" (id) } { "Old secret keeps working for (seconds)" }
                    input type="number" id={ "grace-" (id) } name="grace" min="0" max="604800" value="3600" required;
                    br;
                    (deliver_choice(&format!("rot-{id}")))
                    button type="submit" { "Rotate secret" }
                }
                p { a href={ (base) "clients/credentials?" (credentials_query(c)) } { "Refresh JWTs and API keys" } }
                @if live.len() > 1 {
                    form method="post" action={ (base) "clients/revoke-old" } {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="env" value=(c.env);
                        input type="hidden" name="client_id" value=(c.client_id);
                        button.secondary type="submit" { "Revoke old secrets now" }
                    }
                }
            }
        }
    }
}

/// The link to a client's usage page (`usage.rs`).
fn usage_link(base: &str, c: &Client) -> String {
    let q = serde_urlencoded::to_string([("env", &c.env), ("client", &c.client_id)])
        .unwrap_or_default();
    format!("{base}clients/usage?{q}")
}

fn create_form(base: &str, csrf: &str, env: &str, offers: &[Offer]) -> Markup {
    html! {
        form method="post" action={ (base) "clients" } {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="env" value=(env);
            fieldset {
                legend { "Create a client in " code { (env) } }
                label for={ "name-" (env) } { "Client name" }
                input type="text" id={ "name-" (env) } name="name" required maxlength="200";
                p { "Packages:" }
                @for (i, o) in offers.iter().enumerate() {
                    div {
                        input type="checkbox" id={ "offer-" (env) "-" (i) } name="offer"
                            value=(offer_value(o)) checked[offers.len() == 1];
                        label.inline for={ "offer-" (env) "-" (i) } { code { (o.api) } " — " (o.package) }
                    }
                }
                (deliver_choice(&format!("new-{env}")))
                button type="submit" { "Create client" }
            }
        }
    }
}

/// The query of a client's credentials page.
fn credentials_query(c: &Client) -> String {
    serde_urlencoded::to_string([("env", &c.env), ("client_id", &c.client_id)]).unwrap_or_default()
}

/// How an offer travels in a checkbox: `[api, package]` as JSON (a
/// separator character could occur in either, and browsers rewrite
/// newlines in submitted values).
pub(crate) fn offer_value(o: &Offer) -> String {
    serde_json::json!([o.api, o.package]).to_string()
}

/// The page that shows a new secret, once.
pub(crate) fn secret(
    base: &str,
    who: &Header<'_>,
    title: &str,
    client: &Client,
    secret: &str,
    token_path: &str,
    grace_until: Option<i64>,
) -> Markup {
    layout(
        base,
        title,
        Some(who),
        html! {
            p.notice role="status" {
                strong { "Copy the secret now: it is shown only once." }
                " tollgate keeps only a keyed hash of it; if you lose it, rotate again."
            }
            @if let Some(u) = grace_until {
                p { "The previous secret keeps working until " strong { (when(u)) } "." }
            }
            dl {
                dt { "Client" } dd { (client.name) " (environment " code { (client.env) } ")" }
                dt { "Client id" }
                dd { code id="client-id" { (client.client_id) } " "
                     button.secondary type="button" data-copy="client-id" hidden { "Copy id" } }
                dt { "Client secret" }
                dd { code.secret id="client-secret" { (secret) }
                     button type="button" data-copy="client-secret" hidden { "Copy secret" } }
                dd { (download_link(&file_name(&["client-secret", &client.client_id]), secret)) }
                dt { "Token endpoint" } dd { code { (token_path) } }
            }
            p { "Request a token with:" }
            pre { code { "curl -u '" (client.client_id) ":<secret>' -d grant_type=client_credentials \\\n     https://<this host>" (token_path) } }
            p { a href=(base) { "Back to your clients" } }
        },
    )
}

/// An error page with a way back.
pub(crate) fn error(base: &str, title: &str, message: &str) -> Markup {
    layout(
        base,
        title,
        None,
        html! {
            p.error role="alert" { (message) }
            p { a href=(base) { "Back to the portal" } }
        },
    )
}
