//! Measurement charts drawn as SVG on the server: no script, no inline style (the classes are
//! in `tillit.css`), a text alternative, and the reference range as a shaded band so that a
//! value outside it stands out by position and by a different marker, not by colour alone.

use std::fmt::Write as _;
use time::OffsetDateTime;

/// One series of a chart (a blood pressure chart has two).
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(OffsetDateTime, f64)>,
    /// The reference range (low, high), where the record gives one.
    pub range: Option<(Option<f64>, Option<f64>)>,
}

const W: f64 = 640.0;
const H: f64 = 240.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 36.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A number as the page shows it: no needless decimals.
pub fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Whether `v` lies outside the range.
pub fn outside(v: f64, range: Option<(Option<f64>, Option<f64>)>) -> bool {
    match range {
        Some((low, high)) => low.is_some_and(|l| v < l) || high.is_some_and(|h| v > h),
        None => false,
    }
}

/// Draws the series over time. `title` names the chart for screen readers; `date` formats the
/// first and last dates on the time axis. Returns `None` when there is nothing to draw.
pub fn svg(
    title: &str,
    series: &[Series],
    date: impl Fn(OffsetDateTime) -> String,
) -> Option<String> {
    let all: Vec<(OffsetDateTime, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    let (first, last) = (
        all.iter().map(|p| p.0).min()?,
        all.iter().map(|p| p.0).max()?,
    );
    let mut lo = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let mut hi = all.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    for s in series {
        if let Some((l, h)) = s.range {
            lo = l.map_or(lo, |l| lo.min(l));
            hi = h.map_or(hi, |h| hi.max(h));
        }
    }
    let pad = ((hi - lo) * 0.1).max(1.0);
    let (lo, hi) = ((lo - pad).floor(), (hi + pad).ceil());
    let span_t = (last - first).as_seconds_f64().max(1.0);
    let x = |t: OffsetDateTime| {
        if first == last {
            LEFT + (W - LEFT - RIGHT) / 2.0
        } else {
            LEFT + (t - first).as_seconds_f64() / span_t * (W - LEFT - RIGHT)
        }
    };
    let y = |v: f64| TOP + (hi - v) / (hi - lo) * (H - TOP - BOTTOM);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-label="{}"><title>{}</title>"#,
        esc(title),
        esc(title)
    );
    // Reference ranges first, under everything.
    for s in series {
        if let Some((l, h)) = s.range {
            let top = y(h.unwrap_or(hi));
            let bottom = y(l.unwrap_or(lo));
            let _ = write!(
                out,
                r#"<rect class="chart-range" x="{LEFT}" y="{top:.1}" width="{:.1}" height="{:.1}"/>"#,
                W - LEFT - RIGHT,
                (bottom - top).max(0.0)
            );
        }
    }
    // Axes, with the value scale at both ends and the dates at both ends.
    let _ = write!(
        out,
        r#"<line class="chart-axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}"/><line class="chart-axis" x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/>"#,
        H - BOTTOM,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM
    );
    for v in [lo, (lo + hi) / 2.0, hi] {
        let _ = write!(
            out,
            r#"<text class="chart-label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y(v) + 4.0,
            number(v.round())
        );
    }
    let _ = write!(
        out,
        r#"<text class="chart-label" x="{LEFT}" y="{:.1}">{}</text>"#,
        H - 12.0,
        esc(&date(first))
    );
    if first != last {
        let _ = write!(
            out,
            r#"<text class="chart-label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            W - RIGHT,
            H - 12.0,
            esc(&date(last))
        );
    }
    for s in series {
        let mut pts = s.points.clone();
        pts.sort_by_key(|p| p.0);
        if pts.len() > 1 {
            let path: Vec<String> = pts
                .iter()
                .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
                .collect();
            let _ = write!(
                out,
                r#"<polyline class="chart-line" points="{}"/>"#,
                path.join(" ")
            );
        }
        for (t, v) in &pts {
            // Outside the range: a larger square marker, not only another colour.
            if outside(*v, s.range) {
                let _ = write!(
                    out,
                    r#"<rect class="chart-point out" x="{:.1}" y="{:.1}" width="9" height="9"/>"#,
                    x(*t) - 4.5,
                    y(*v) - 4.5
                );
            } else {
                let _ = write!(
                    out,
                    r#"<circle class="chart-point" cx="{:.1}" cy="{:.1}" r="3.5"/>"#,
                    x(*t),
                    y(*v)
                );
            }
        }
        if let Some((t, v)) = pts.last() {
            let _ = write!(
                out,
                r#"<text class="chart-label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                x(*t) - 6.0,
                y(*v) - 8.0,
                esc(&s.label)
            );
        }
    }
    out.push_str("</svg>");
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use time::macros::datetime;

    fn series(points: &[(OffsetDateTime, f64)]) -> Series {
        Series {
            label: "Puls <x>".into(),
            points: points.to_vec(),
            range: Some((Some(50.0), Some(100.0))),
        }
    }

    #[test]
    fn draws_range_points_and_a_text_alternative() {
        let s = series(&[
            (datetime!(2026-11-01 08:00 UTC), 72.0),
            (datetime!(2026-11-08 08:00 UTC), 110.0),
        ]);
        let svg = svg("Puls", &[s], |t| t.date().to_string()).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"role="img" aria-label="Puls""#));
        assert!(svg.contains("chart-range"));
        assert_eq!(
            svg.matches("chart-point out").count(),
            1,
            "110 is above the range"
        );
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(svg.contains("Puls &lt;x&gt;"), "labels are escaped");
        assert!(!svg.contains("style="), "no inline style under the CSP");
    }

    #[test]
    fn one_point_and_no_points() {
        let s = series(&[(datetime!(2026-11-01 08:00 UTC), 72.0)]);
        assert!(svg("x", &[s], |t| t.date().to_string()).is_some());
        assert!(svg("x", &[series(&[])], |t| t.date().to_string()).is_none());
    }

    #[test]
    fn numbers_and_ranges() {
        assert_eq!(number(72.0), "72");
        assert_eq!(number(7.25), "7.25");
        assert_eq!(number(7.5), "7.5");
        assert!(outside(49.0, Some((Some(50.0), None))));
        assert!(!outside(49.0, Some((None, Some(100.0)))));
        assert!(!outside(49.0, None));
    }
}
