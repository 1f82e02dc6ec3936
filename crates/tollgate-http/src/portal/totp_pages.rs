//! The pages of the second factor: the account page (on, off, pending),
//! the enrolment page (secret in base32, `otpauth://` URI and its QR code
//! drawn as inline SVG, a form for the confirming code), and the sign-in's
//! code form. Data in, markup out.

use maud::{Markup, PreEscaped, html};
use qrcodegen::{QrCode, QrCodeEcc};

use super::pages::{Header, layout};

/// What the account page shows of the second factor.
pub(crate) enum State<'a> {
    /// Off: a button to start.
    Off,
    /// Pending: the secret again, with the confirming form.
    Pending { base32: &'a str, uri: &'a str },
    /// On: the form to turn it off.
    On,
}

/// The QR code of `text` as an SVG element: one path of unit squares, a
/// quiet zone of four modules; `None` if the text does not fit a code.
/// Attributes only (no `style`), so the page's CSP is untouched.
pub(crate) fn qr_svg(text: &str) -> Option<Markup> {
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).ok()?;
    let n = qr.size();
    let mut d = String::new();
    for y in 0..n {
        for x in 0..n {
            if qr.get_module(x, y) {
                d.push_str(&format!("M{},{}h1v1h-1z", x + 4, y + 4));
            }
        }
    }
    let side = n + 8;
    Some(html! {
        svg xmlns="http://www.w3.org/2000/svg" class="qr" role="img"
            aria-label="QR code of the authenticator URI"
            viewBox={ "0 0 " (side) " " (side) } width="240" height="240"
            shape-rendering="crispEdges" {
            rect width=(side) height=(side) fill="#ffffff" {}
            path d=(PreEscaped(d)) fill="#000000" {}
        }
    })
}

fn code_input() -> Markup {
    html! {
        label for="code" { "6-digit code from your authenticator app" }
        input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code"
            pattern="[0-9 ]{6,7}" maxlength="7" required autofocus;
    }
}

/// The account page: who is signed in and the second factor's state.
pub(crate) fn account(
    base: &str,
    who: &Header<'_>,
    state: State<'_>,
    error: Option<&str>,
    notice: Option<&str>,
) -> Markup {
    layout(
        base,
        "Account security",
        Some(who),
        html! {
            @if let Some(n) = notice { p.notice role="status" { (n) } }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            h3 { "Two-step sign-in (TOTP)" }
            @match state {
                State::Off => {
                    p { "Off. When on, signing in asks for a 6-digit code from an authenticator app \
                         (any app that reads TOTP QR codes) after your password." }
                    form method="post" action={ (base) "account/totp/begin" } {
                        input type="hidden" name="csrf" value=(who.csrf);
                        button type="submit" { "Set up two-step sign-in" }
                    }
                }
                State::Pending { base32, uri } => {
                    p.notice role="status" {
                        strong { "Scan the QR code with your authenticator app, then enter the code it shows." }
                        " Two-step sign-in is on only once a code is confirmed. Keep this secret to yourself."
                    }
                    @if let Some(svg) = qr_svg(uri) {
                        figure { (svg) figcaption.muted { "QR code of the setup URI below" } }
                    }
                    dl {
                        dt { "Secret (to type in by hand)" }
                        dd { code.secret id="totp-secret" { (base32) }
                             button.secondary type="button" data-copy="totp-secret" hidden { "Copy secret" } }
                        dt { "Setup URI" }
                        dd { code id="totp-uri" { (uri) } }
                    }
                    form method="post" action={ (base) "account/totp/confirm" } {
                        input type="hidden" name="csrf" value=(who.csrf);
                        (code_input())
                        button type="submit" { "Confirm and turn on" }
                    }
                    form method="post" action={ (base) "account/totp/disable" } {
                        input type="hidden" name="csrf" value=(who.csrf);
                        button.secondary type="submit" { "Cancel the set-up" }
                    }
                }
                State::On => {
                    p { strong { "On." } " Signing in asks for a code after your password." }
                    form method="post" action={ (base) "account/totp/disable" } {
                        input type="hidden" name="csrf" value=(who.csrf);
                        fieldset {
                            legend { "Turn two-step sign-in off" }
                            (code_input())
                            button.secondary type="submit" { "Turn off" }
                        }
                    }
                }
            }
            p { a href=(base) { "Back to your clients" } }
        },
    )
}

/// The sign-in's second step: the code, with the ticket of the first.
pub(crate) fn code_form(base: &str, csrf: &str, ticket: &str, error: Option<&str>) -> Markup {
    layout(
        base,
        "Enter your code",
        None,
        html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            p { "Your account uses two-step sign-in. Enter the code your authenticator app shows now." }
            form method="post" action={ (base) "login/code" } {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="ticket" value=(ticket);
                (code_input())
                button type="submit" { "Sign in" }
            }
            p { a href={ (base) "login" } { "Start again" } }
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_qr_code_is_an_svg_of_squares() {
        let svg = qr_svg("otpauth://totp/x:y?secret=GEZDGNBV")
            .unwrap()
            .into_string();
        assert!(svg.starts_with("<svg"));
        assert!(
            svg.contains("M4,4h1v1h-1z"),
            "the finder pattern's corner is dark"
        );
        assert!(!svg.contains("style"));
    }
}
