//! The portal's usage page (`clients/usage?env=&client=`): one of the
//! partner's clients, its last 30 UTC days of token requests as a chart
//! (`chart.rs`) and a table, and the state of its issuance limit. The
//! numbers are what the instances have flushed to the store (every
//! `usage_flush_interval`, 15 s by default): fresh within a minute.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use tollgate_core::model::Client;
use tollgate_core::service::portal::PortalError;
use tollgate_core::service::usage::QuotaState;
use tollgate_core::time::now;
use tollgate_core::usage::{UsageDay, day_of, day_string};

use super::chart::{self, Bar};
use super::pages::{Header, layout};
use super::{base, core_error, header_of, page, portal_error, session};
use crate::AppState;

/// Days the page shows, today included.
const DAYS: i64 = 30;

#[derive(serde::Deserialize)]
pub(super) struct UsageQuery {
    env: Option<String>,
    client: Option<String>,
}

pub(super) async fn usage_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<UsageQuery>,
) -> Response {
    let (who, token) = match session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (env, id) = (q.env.unwrap_or_default(), q.client.unwrap_or_default());
    // Only the partner's own clients; another's looks like none at all.
    let client = match state.core.partner_clients(&who.partner.id).await {
        Ok(cs) => cs.into_iter().find(|c| c.env == env && c.client_id == id),
        Err(e) => return core_error(&state, &e),
    };
    let Some(client) = client else {
        return portal_error(&state, &PortalError::NotYours);
    };
    let today = day_of(now());
    let days = match state
        .core
        .client_usage(&env, &id, today - (DAYS - 1), today)
        .await
    {
        Ok(d) => d,
        Err(e) => return core_error(&state, &e),
    };
    let quota = match state.core.quota_state(&client).await {
        Ok(q) => q,
        Err(e) => return core_error(&state, &e),
    };
    let csrf = state.core.portal_csrf(&token);
    page(
        StatusCode::OK,
        render(base(&state), &header_of(&who, &csrf), &client, &days, quota),
    )
}

/// `3600` as "1 hour", `90` as "90 seconds".
fn window(secs: u64) -> String {
    let unit = |n: u64, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    match secs {
        s if s % 86_400 == 0 => unit(s / 86_400, "day"),
        s if s % 3_600 == 0 => unit(s / 3_600, "hour"),
        s if s % 60 == 0 => unit(s / 60, "minute"),
        s => unit(s, "second"),
    }
}

fn quota_section(quota: Option<QuotaState>) -> Markup {
    html! {
        section aria-labelledby="quota" {
            h3 id="quota" { "Issuance limit" }
            @match quota {
                None => p id="quota-state" { "This client has no issuance limit." },
                Some(q) => {
                    p id="quota-state" {
                        "At most " strong { (q.max) } " tokens per " (window(q.window)) ". "
                        "In the current window " strong id="quota-used" { (q.used) } " of " (q.max)
                        " are used; it ends at " (tollgate_core::time::rfc3339(q.resets_at)) "."
                    }
                    label for="quota-meter" { "Used in the current window" }
                    meter id="quota-meter" min="0" max=(q.max) value=(q.used) { (q.used) " of " (q.max) }
                }
            }
        }
    }
}

fn render(
    base: &str,
    who: &Header<'_>,
    client: &Client,
    days: &[UsageDay],
    quota: Option<QuotaState>,
) -> Markup {
    let bars: Vec<Bar> = days
        .iter()
        .map(|d| Bar {
            label: day_string(d.day),
            issued: d.issued,
            errors: d.errors,
            throttled: d.throttled,
        })
        .collect();
    let (from, to) = (
        bars.first().map(|b| b.label.clone()).unwrap_or_default(),
        bars.last().map(|b| b.label.clone()).unwrap_or_default(),
    );
    let sum = |f: fn(&UsageDay) -> u64| days.iter().map(f).sum::<u64>();
    layout(
        base,
        &format!("Usage of {}", client.name),
        Some(who),
        html! {
            p { "Client " code { (client.client_id) } " in environment " code { (client.env) } "." }
            (quota_section(quota))
            section aria-labelledby="days" {
                h3 id="days" { "Token requests, last " (DAYS) " days (UTC)" }
                p.muted { "Counts reach this page within a minute. Errors are refused requests naming this client (a wrong secret, an audience or scope it does not hold); 429s are refusals by the issuance limit or after repeated failed sign-ins." }
                (chart::stacked_bars("usage-chart", &format!("Token requests per day, {from} to {to}"), &bars))
                table id="usage-table" {
                    caption { "Token requests per day, newest first" }
                    thead { tr { th scope="col" { "Day (UTC)" } th scope="col" { "Tokens issued" } th scope="col" { "Errors" } th scope="col" { "429s" } } }
                    tbody {
                        @for d in days.iter().rev() {
                            tr {
                                th scope="row" { (day_string(d.day)) }
                                td.issued { (d.issued) }
                                td.errors { (d.errors) }
                                td.throttled { (d.throttled) }
                            }
                        }
                    }
                    tfoot {
                        tr id="usage-total" {
                            th scope="row" { "Total" }
                            td.issued { (sum(|d| d.issued)) }
                            td.errors { (sum(|d| d.errors)) }
                            td.throttled { (sum(|d| d.throttled)) }
                        }
                    }
                }
            }
            p { a href=(base) { "Back to your clients" } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::window;

    #[test]
    fn windows_read_in_their_largest_whole_unit() {
        assert_eq!(window(3_600), "1 hour");
        assert_eq!(window(7_200), "2 hours");
        assert_eq!(window(86_400), "1 day");
        assert_eq!(window(90), "90 seconds");
        assert_eq!(window(60), "1 minute");
    }
}
