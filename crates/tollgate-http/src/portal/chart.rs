//! A stacked bar chart as inline SVG, rendered on the server (the portal's
//! usage page): one bar per day, tokens issued, errors and 429s stacked.
//! No script and no `style` attribute (the portal's CSP allows neither):
//! colours are SVG presentation attributes. The chart names itself to
//! assistive technology (`role="img"`, `<title>`, `<desc>` with the
//! totals); the page beside it carries the numbers as a table. A leaf: data
//! in, markup out (maud escapes every interpolated value).

use maud::{Markup, html};

/// One bar: a day's label and its three counts.
#[derive(Debug, Clone)]
pub(crate) struct Bar {
    /// The x-axis label (a date).
    pub(crate) label: String,
    pub(crate) issued: u64,
    pub(crate) errors: u64,
    pub(crate) throttled: u64,
}

impl Bar {
    fn total(&self) -> u64 {
        self.issued
            .saturating_add(self.errors)
            .saturating_add(self.throttled)
    }
}

/// The three series: name and fill, bottom to top (contrast ≥ 4.5:1 on white).
pub(crate) const SERIES: [(&str, &str); 3] = [
    ("tokens issued", "#0b3d6e"),
    ("errors", "#9b1c1c"),
    ("429s", "#8a4b00"),
];

/// Plot area, in SVG user units.
const WIDTH: f64 = 960.0;
const PLOT_TOP: f64 = 30.0;
const PLOT_HEIGHT: f64 = 180.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 8.0;

/// The smallest of 1, 2, 5 × 10^k at least `max` (and at least 1): the
/// axis' top, so the scale reads in round numbers.
pub(crate) fn axis_top(max: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            let top = step.saturating_mul(m);
            if top >= max {
                return top;
            }
        }
        if step > u64::MAX / 10 {
            return u64::MAX;
        }
        step *= 10;
    }
}

/// The height of `n` on an axis topping at `top` (`top` > 0).
fn height(n: u64, top: u64) -> f64 {
    // Precision lost above 2^53 calls a day is invisible in a chart.
    let r = n as f64 / top as f64;
    r * PLOT_HEIGHT
}

/// A bar's non-empty segments, bottom up: (y, height, fill).
fn segments(b: &Bar, top: u64, base: f64) -> Vec<(f64, f64, &'static str)> {
    let mut y = base;
    [b.issued, b.errors, b.throttled]
        .iter()
        .zip(SERIES.iter())
        .filter(|(n, _)| **n > 0)
        .map(|(n, (_, fill))| {
            let h = height(*n, top);
            y -= h;
            (y, h, *fill)
        })
        .collect()
}

fn fmt(x: f64) -> String {
    format!("{x:.1}")
}

/// The chart. `id` makes the `<title>`/`<desc>` ids unique on the page.
pub(crate) fn stacked_bars(id: &str, title: &str, bars: &[Bar]) -> Markup {
    let top = axis_top(bars.iter().map(Bar::total).max().unwrap_or(0));
    let sums = [
        bars.iter().map(|b| b.issued).sum::<u64>(),
        bars.iter().map(|b| b.errors).sum::<u64>(),
        bars.iter().map(|b| b.throttled).sum::<u64>(),
    ];
    let desc = if sums.iter().all(|s| *s == 0) {
        format!("No token requests in the {} days shown.", bars.len())
    } else {
        format!(
            "Over the {} days shown: {} tokens issued, {} errors, {} 429s. The table below has each day's numbers.",
            bars.len(),
            sums[0],
            sums[1],
            sums[2]
        )
    };
    let slot = (WIDTH - LEFT - RIGHT) / bars.len().max(1) as f64;
    let bar_w = (slot * 0.7).max(1.0);
    let base = PLOT_TOP + PLOT_HEIGHT;
    let total_h = base + 40.0;
    // The last day's label, and every seventh before it: they never
    // overlap. The last ends at its bar, so it stays inside the chart.
    let labelled = |i: usize| (bars.len() - 1 - i) % 7 == 0;
    let anchor = |i: usize| if i + 1 == bars.len() { "end" } else { "middle" };
    html! {
        svg xmlns="http://www.w3.org/2000/svg" role="img" width="100%"
            viewBox={ "0 0 " (WIDTH) " " (total_h) }
            aria-labelledby={ (id) "-title " (id) "-desc" } class="chart" {
            title id={ (id) "-title" } { (title) }
            desc id={ (id) "-desc" } { (desc) }
            // Legend.
            @for (i, (name, fill)) in SERIES.iter().enumerate() {
                @let x = LEFT + 150.0 * (i as f64);
                rect x=(fmt(x)) y="6" width="12" height="12" fill=(fill) {}
                text x=(fmt(x + 18.0)) y="16" font-size="12" fill="#1a1a1a" { (name) }
            }
            // The axis: 0 and the top, with a grid line at each.
            line x1=(fmt(LEFT)) y1=(fmt(base)) x2=(fmt(WIDTH - RIGHT)) y2=(fmt(base)) stroke="#4a4a4a" {}
            line x1=(fmt(LEFT)) y1=(fmt(PLOT_TOP)) x2=(fmt(WIDTH - RIGHT)) y2=(fmt(PLOT_TOP)) stroke="#d0d0d0" {}
            text x=(fmt(LEFT - 6.0)) y=(fmt(base + 4.0)) font-size="11" text-anchor="end" fill="#1a1a1a" { "0" }
            text x=(fmt(LEFT - 6.0)) y=(fmt(PLOT_TOP + 4.0)) font-size="11" text-anchor="end" fill="#1a1a1a" class="chart-top" { (top) }
            @for (i, b) in bars.iter().enumerate() {
                @let x = LEFT + slot * (i as f64) + (slot - bar_w) / 2.0;
                g class="chart-day" {
                    title { (b.label) ": " (b.issued) " issued, " (b.errors) " errors, " (b.throttled) " 429s" }
                    @for (y, h, fill) in segments(b, top, base) {
                        rect x=(fmt(x)) y=(fmt(y)) width=(fmt(bar_w)) height=(fmt(h)) fill=(fill) {}
                    }
                    @if labelled(i) {
                        text x=(fmt(if i + 1 == bars.len() { x + bar_w } else { x + bar_w / 2.0 })) y=(fmt(base + 16.0)) font-size="11" text-anchor=(anchor(i)) fill="#1a1a1a" { (b.label) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn bar(label: &str, issued: u64, errors: u64, throttled: u64) -> Bar {
        Bar {
            label: label.into(),
            issued,
            errors,
            throttled,
        }
    }

    /// The heights of the `rect`s after the legend's three.
    fn heights(svg: &str) -> Vec<f64> {
        svg.split("<rect ")
            .skip(4)
            .map(|r| {
                let h = r.split("height=\"").nth(1).unwrap();
                h[..h.find('"').unwrap()].parse().unwrap()
            })
            .collect()
    }

    #[test]
    fn the_axis_tops_at_a_round_number() {
        let tops: Vec<u64> = [0, 1, 2, 3, 5, 6, 11, 99, 100, 101, 4_999]
            .iter()
            .map(|n| axis_top(*n))
            .collect();
        assert_eq!(tops, [1, 1, 2, 5, 5, 10, 20, 100, 100, 200, 5_000]);
        assert_eq!(axis_top(u64::MAX), u64::MAX);
    }

    #[test]
    fn bars_scale_to_the_axis_and_stack() {
        let svg = stacked_bars(
            "u",
            "Usage",
            &[bar("d1", 10, 0, 0), bar("d2", 5, 0, 0), bar("d3", 2, 2, 1)],
        )
        .into_string();
        // Axis top 10: 10 fills the plot, 5 half of it; 2+2+1 stack.
        assert_eq!(heights(&svg), [180.0, 90.0, 36.0, 36.0, 18.0]);
        assert!(svg.contains(r#"class="chart-top">10<"#));
        assert!(svg.contains("d3: 2 issued, 2 errors, 1 429s"));
        assert!(svg.contains("17 tokens issued, 2 errors, 1 429s"));
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains(r#"aria-labelledby="u-title u-desc""#));
        assert!(
            !svg.contains("style="),
            "no inline style: the CSP forbids it"
        );
        // Labels: the last day's, and every seventh before it.
        let labels: Vec<&str> = svg
            .split("</text>")
            .filter_map(|t| t.rsplit('>').next())
            .filter(|t| t.starts_with('d'))
            .collect();
        assert_eq!(labels, ["d3"]);
    }

    #[test]
    fn no_data_draws_no_bar_and_says_so() {
        let days: Vec<Bar> = (0..30).map(|i| bar(&format!("d{i}"), 0, 0, 0)).collect();
        let svg = stacked_bars("u", "Usage", &days).into_string();
        assert!(heights(&svg).is_empty());
        assert!(svg.contains("No token requests in the 30 days shown."));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        let none = stacked_bars("u", "Usage", &[]).into_string();
        assert!(none.contains("No token requests in the 0 days shown."));
    }

    #[test]
    fn text_is_escaped() {
        let svg = stacked_bars(
            "u\"><script>",
            "A <b>&",
            &[bar("<script>alert(1)</script>", 1, 0, 0)],
        )
        .into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(!svg.contains("<b>"));
        assert!(svg.contains("A &lt;b&gt;&amp;"));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }
}
