//! The markup of secret handover: the choice on every form that makes a
//! secret (show it, or a one-time link instead), the download link of a
//! shown secret, the page with a new link, and the pages a colleague sees
//! opening it. A `data:` link with `download` works without JavaScript and
//! under the portal's CSP (a download is no fetch and no navigation of
//! the page). Data in, markup out.

use maud::{Markup, html};

/// Expiries offered for a one-time link: (seconds, label); the default is
/// the first.
pub(crate) const LINK_TTLS: &[(u64, &str)] = &[
    (24 * 3600, "24 hours"),
    (3600, "1 hour"),
    (3 * 24 * 3600, "3 days"),
    (7 * 24 * 3600, "7 days"),
];

/// The choice of how a new secret is handed over, for a form whose ids
/// start with `id`.
pub(crate) fn deliver_choice(id: &str) -> Markup {
    html! {
        fieldset.deliver {
            legend { "The new secret" }
            div {
                input type="radio" id={ (id) "-show" } name="deliver" value="show" checked;
                label.inline for={ (id) "-show" } { "Show it to me once" }
            }
            div {
                input type="radio" id={ (id) "-link" } name="deliver" value="link";
                label.inline for={ (id) "-link" } { "Instead, make a one-time link for a colleague" }
            }
            label for={ (id) "-ttl" } { "The link expires after" }
            select id={ (id) "-ttl" } name="link_ttl" {
                @for (secs, label) in LINK_TTLS {
                    option value=(secs) { (label) }
                }
            }
        }
    }
}

/// A `data:` URL of `text` as a plain-text file.
fn data_url(text: &str) -> String {
    let mut out = String::from("data:text/plain;charset=utf-8,");
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A link that downloads `secret` as `file` (no script, no request).
pub(crate) fn download_link(file: &str, secret: &str) -> Markup {
    html! {
        a.button download=(file) href=(data_url(&format!("{secret}\n"))) { "Download as " (file) }
    }
}

/// A file name made of `parts`: letters, digits, `-` and `_` only.
pub(crate) fn file_name(parts: &[&str]) -> String {
    let joined = parts.join("-");
    let clean: String = joined
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    format!("{clean}.txt")
}

/// The page showing a new one-time link to its maker.
pub(crate) fn link_made(link: &str, label: &str, expires: &str) -> Markup {
    html! {
        p.notice role="status" {
            strong { "Send this link to your colleague through a channel you trust." }
            " It shows the secret once: the first opening deletes it from the server."
        }
        dl {
            dt { "For" } dd { (label) }
            dt { "One-time link" }
            dd { code.secret id="handover-link" { (link) }
                 button type="button" data-copy="handover-link" hidden { "Copy link" } }
            dt { "Expires" } dd { strong { (expires) } " (if nobody opened it by then, the secret is deleted: make a new one)" }
        }
        p.muted { "The secret itself was not shown here, and tollgate does not keep it once the link is opened or expired." }
    }
}

/// What a colleague sees before opening: the button that takes the secret.
pub(crate) fn look(base: &str, csrf: &str, token: &str, label: &str, expires: &str) -> Markup {
    html! {
        p { "A secret was handed over to you: " strong { (label) } "." }
        p { "It can be shown once. After that, or at " strong { (expires) } ", this link stops working." }
        form method="post" action={ (base) "handover" } {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="token" value=(token);
            button type="submit" { "Show the secret now" }
        }
    }
}

/// The opened secret.
pub(crate) fn opened(label: &str, secret: &str, file: &str) -> Markup {
    html! {
        p.notice role="status" {
            strong { "Copy or download the secret now: this page cannot be shown again." }
            " The link is used up and the secret was deleted from the server."
        }
        dl {
            dt { "For" } dd { (label) }
            dt { "Secret" }
            dd { code.secret id="handover-secret" { (secret) }
                 button type="button" data-copy="handover-secret" hidden { "Copy secret" } }
        }
        p { (download_link(file, secret)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_and_file_names_are_safe() {
        assert_eq!(
            data_url("a b/+%\n"),
            "data:text/plain;charset=utf-8,a%20b%2F%2B%25%0A"
        );
        assert_eq!(file_name(&["client", "my app/x"]), "client-my_app_x.txt");
        let html = download_link("s.txt", "tgk_1_2").into_string();
        assert!(html.contains(r#"download="s.txt""#), "{html}");
    }
}
