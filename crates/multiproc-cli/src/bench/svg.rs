//! `--svg FILE`: the run as a chart, written by hand (plain SVG text and
//! rectangles; the viewer picks a sans-serif font, so nothing here needs
//! font files): messages/s of every stream row, and p50 of every ping-pong
//! row, grouped by message size, on log scales. multiproc's rows are drawn
//! in one colour, the operating system's in another, the peers' in a third.

use std::fmt::Write as _;

use super::{Row, human_ns, human_rate, human_size};

const WIDTH: f64 = 900.0;
const LABEL: f64 = 220.0;
const VALUE: f64 = 110.0;
const BAR_H: f64 = 14.0;
const GAP: f64 = 4.0;

fn colour(mechanism: &str) -> &'static str {
    if mechanism.starts_with("peer-") {
        "#d95f02"
    } else if mechanism.starts_with("os-") || mechanism == "memcpy" {
        "#7570b3"
    } else {
        "#1b9e77"
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One chart: `title`, then for each size the rows `pick` gives a value
/// for, largest bar first; `fmt` writes a value. Returns the height used.
fn chart(
    out: &mut String,
    top: f64,
    title: &str,
    rows: &[Row],
    pick: &dyn Fn(&Row) -> Option<f64>,
    fmt: &dyn Fn(f64) -> String,
) -> f64 {
    let values: Vec<f64> = rows.iter().filter_map(pick).filter(|v| *v > 0.0).collect();
    if values.is_empty() {
        return 0.0;
    }
    let lo = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .log10()
        .floor();
    let hi = values
        .iter()
        .copied()
        .fold(0.0, f64::max)
        .log10()
        .ceil()
        .max(lo + 1.0);
    let span = WIDTH - LABEL - VALUE;
    let x = |v: f64| LABEL + span * ((v.log10() - lo) / (hi - lo)).clamp(0.02, 1.0);
    let mut y = top;
    let _ = writeln!(
        out,
        r#"<text x="10" y="{:.0}" font-size="15" font-weight="bold">{}</text>"#,
        y + 15.0,
        escape(title)
    );
    y += 24.0;
    let mut sizes: Vec<usize> = rows
        .iter()
        .filter(|r| pick(r).is_some())
        .map(|r| r.size)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes {
        let mut group: Vec<(&Row, f64)> = rows
            .iter()
            .filter(|r| r.size == size)
            .filter_map(|r| pick(r).map(|v| (r, v)))
            .collect();
        group.sort_by(|a, b| b.1.total_cmp(&a.1));
        let _ = writeln!(
            out,
            r#"<text x="10" y="{:.0}" font-size="12" font-style="italic">{}</text>"#,
            y + 11.0,
            human_size(size)
        );
        y += BAR_H + GAP;
        for (r, v) in group {
            let label = format!("{} ({})", r.mechanism, r.pattern);
            let _ = writeln!(
                out,
                r#"<text x="{:.0}" y="{:.0}" font-size="11" text-anchor="end">{}</text><rect x="{LABEL:.0}" y="{:.0}" width="{:.1}" height="{BAR_H:.0}" fill="{}"/><text x="{:.1}" y="{:.0}" font-size="11">{}</text>"#,
                LABEL - 6.0,
                y + 11.0,
                escape(&label),
                y,
                x(v) - LABEL,
                colour(&r.mechanism),
                x(v) + 4.0,
                y + 11.0,
                escape(&fmt(v)),
            );
            y += BAR_H + GAP;
        }
        y += GAP * 2.0;
    }
    y - top
}

/// The SVG of the run, titled with `caption` (the date and machine).
pub(super) fn render(rows: &[Row], caption: &str) -> String {
    let mut body = String::new();
    let mut y = 40.0;
    y += chart(
        &mut body,
        y,
        "Stream: messages per second (log scale, longer is better)",
        rows,
        &|r| (r.pattern == "stream").then_some(r.msgs_per_s).flatten(),
        &|v| format!("{}/s", human_rate(v, "")),
    );
    y += 20.0;
    y += chart(
        &mut body,
        y,
        "Ping-pong: p50 round trip (log scale, shorter is better)",
        rows,
        &|r| {
            r.pattern
                .starts_with("pingpong")
                .then_some(r.p50_ns.map(|p| p as f64))
                .flatten()
        },
        &|v| human_ns(v as u64),
    );
    let legend = format!(
        r##"<rect x="10" y="{0:.0}" width="12" height="12" fill="#1b9e77"/><text x="26" y="{1:.0}" font-size="11">multiproc</text><rect x="110" y="{0:.0}" width="12" height="12" fill="#7570b3"/><text x="126" y="{1:.0}" font-size="11">operating system</text><rect x="250" y="{0:.0}" width="12" height="12" fill="#d95f02"/><text x="266" y="{1:.0}" font-size="11">peer libraries</text>"##,
        y + 10.0,
        y + 20.0
    );
    let height = y + 40.0;
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0}" height="{height:.0}" viewBox="0 0 {WIDTH:.0} {height:.0}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="24" font-size="17" font-weight="bold">multiproc bench: {}</text>
{body}{legend}
</svg>
"#,
        escape(caption)
    )
}
