//! SVG charts, one self-contained file each (no scripts, no external
//! fonts or styles): the lifetime and respawn-interval distributions of
//! the top units (share of each unit's processes per log2 bucket, on a log
//! time axis), and exec rate and memory over the recording. Each has a
//! title, axis labels with units, ticks and a legend.

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::{Data, Measure};

pub struct Svg;

impl super::Exporter for Svg {
    fn files(&self, data: &Data) -> Vec<(&'static str, Vec<u8>)> {
        charts(data)
            .into_iter()
            .map(|(name, c)| (name, render(&c).into_bytes()))
            .collect()
    }
}

const W: f64 = 900.0;
const H: f64 = 500.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 250.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const COLORS: [&str; 5] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"];
/// Series drawn at most; the rest are named in a note.
pub const TOP_SERIES: usize = 5;

pub struct Chart {
    pub title: String,
    pub x_label: &'static str,
    pub y_label: &'static str,
    /// x values are nanoseconds, drawn on a log scale.
    pub x_log_ns: bool,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Units left out for room.
    pub more: usize,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Share of the histogram's count per log2 bucket, at the bucket's
/// geometric middle, empty buckets between the first and the last
/// included (as 0), so that a line never bridges a gap.
fn distribution(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut buckets = std::collections::BTreeMap::<u32, u64>::new();
    for v in h.iter_recorded() {
        *buckets
            .entry(v.value_iterated_to().max(1).ilog2())
            .or_default() += v.count_at_value();
    }
    let (Some(&lo), Some(&hi)) = (buckets.keys().next(), buckets.keys().next_back()) else {
        return Vec::new();
    };
    let n = h.len().max(1) as f64;
    (lo..=hi)
        .map(|i| {
            let c = buckets.get(&i).copied().unwrap_or(0);
            (2f64.powf(i as f64 + 0.5), 100.0 * c as f64 / n)
        })
        .collect()
}

/// A decade of nanoseconds as people write it: 1ns … 100ms, 1s, 10s, …
fn decade(d: i64) -> String {
    const UNITS: [&str; 4] = ["ns", "µs", "ms", "s"];
    let d = d.max(0);
    let (unit, rest) = ((d / 3).min(3) as usize, d - 3 * (d / 3).min(3));
    format!("{}{}", 10u64.pow(rest as u32), UNITS[unit])
}

fn distribution_chart(data: &Data, m: Measure, title: &str) -> Chart {
    let mut units: Vec<(&String, &Histogram<u64>)> = data
        .units
        .iter()
        .map(|(k, u)| (k, &u.hists[&m]))
        .filter(|(_, h)| !h.is_empty())
        .collect();
    units.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    let more = units.len().saturating_sub(TOP_SERIES);
    Chart {
        title: title.to_string(),
        x_label: "time (log scale)",
        y_label: "share of the unit's count (%)",
        x_log_ns: true,
        series: units
            .into_iter()
            .take(TOP_SERIES)
            .map(|(k, h)| (format!("{k} (n={})", h.len()), distribution(h)))
            .collect(),
        more,
    }
}

/// The four charts and their file names.
pub fn charts(data: &Data) -> Vec<(&'static str, Chart)> {
    let mut rates: Vec<(&String, &Vec<(f64, f64)>)> = data.rates.iter().collect();
    let total = |v: &Vec<(f64, f64)>| v.iter().map(|p| p.1).sum::<f64>();
    rates.sort_by(|a, b| total(b.1).total_cmp(&total(a.1)).then(a.0.cmp(b.0)));
    let more_rates = rates.len().saturating_sub(TOP_SERIES);
    vec![
        (
            "spawnscope-lifetime.svg",
            distribution_chart(data, Measure::LifetimeNs, "Process lifetime by unit"),
        ),
        (
            "spawnscope-interval.svg",
            distribution_chart(
                data,
                Measure::ExecIntervalNs,
                "Exec interval by unit (time between execs of the same executable)",
            ),
        ),
        (
            "spawnscope-exec-rate.svg",
            Chart {
                title: "Exec rate by unit".into(),
                x_label: "time since the recording started (s)",
                y_label: "execs per second",
                x_log_ns: false,
                series: rates
                    .into_iter()
                    .take(TOP_SERIES)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                more: more_rates,
            },
        ),
        (
            "spawnscope-memory.svg",
            Chart {
                title: "Memory used (MemTotal − MemAvailable)".into(),
                x_label: "time since the recording started (s)",
                y_label: "MiB",
                x_log_ns: false,
                series: if data.memory.is_empty() {
                    Vec::new()
                } else {
                    vec![(
                        format!("system (of {:.0} MiB)", data.memory[0].2 as f64 / 1048576.0),
                        data.memory
                            .iter()
                            .map(|(t, used, _)| (*t, *used as f64 / 1048576.0))
                            .collect(),
                    )]
                },
                more: 0,
            },
        ),
    ]
}

/// "Nice" tick values covering [lo, hi]: steps of 1, 2 or 5 × 10^k.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(f64::EPSILON);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

fn num(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e15 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

pub fn render(c: &Chart) -> String {
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let pts = c.series.iter().flat_map(|s| s.1.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0f64);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    let empty = x0 > x1;
    // Axis ranges: decades for log time, zero-based for the rest.
    let (xa, xb) = if empty {
        (0.0, 1.0)
    } else if c.x_log_ns {
        (
            x0.log10().floor(),
            x1.log10().ceil().max(x0.log10().floor() + 1.0),
        )
    } else {
        (0.0, if x1 > 0.0 { x1 } else { 1.0 })
    };
    let yb = if y1 > 0.0 { y1 * 1.1 } else { 1.0 };
    let sx = |x: f64| {
        let v = if c.x_log_ns { x.log10() } else { x };
        LEFT + (v - xa) / (xb - xa) * pw
    };
    let sy = |y: f64| TOP + ph - y / yb * ph;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="{}" y="28" font-size="16" font-weight="bold">{}</text>"#,
        LEFT,
        esc(&c.title)
    );
    // Grid and ticks.
    let xticks: Vec<(f64, String)> = if c.x_log_ns {
        (xa as i64..=xb as i64)
            .map(|d| (10f64.powi(d as i32), decade(d)))
            .collect()
    } else {
        ticks(xa, xb).into_iter().map(|t| (t, num(t))).collect()
    };
    for (x, label) in &xticks {
        let px = sx(*x);
        let _ = writeln!(
            o,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#e0e0e0"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 18.0,
            esc(label)
        );
    }
    for y in ticks(0.0, yb) {
        let py = sy(y);
        let _ = writeln!(
            o,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            py + 4.0,
            num(y)
        );
    }
    // Axes and their labels.
    let _ = writeln!(
        o,
        r##"<path d="M{LEFT},{TOP} V{:.1} H{:.1}" fill="none" stroke="#333"/>"##,
        TOP + ph,
        LEFT + pw
    );
    let _ = writeln!(
        o,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + pw / 2.0,
        H - 15.0,
        esc(c.x_label)
    );
    let _ = writeln!(
        o,
        r#"<text transform="translate(22,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + ph / 2.0,
        esc(c.y_label)
    );
    if empty {
        let _ = writeln!(
            o,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#777">no data in this recording</text>"##,
            LEFT + pw / 2.0,
            TOP + ph / 2.0
        );
    }
    // Series and legend.
    for (i, (name, points)) in c.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = writeln!(
            o,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for &(x, y) in points {
            let _ = writeln!(
                o,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                sx(x),
                sy(y)
            );
        }
        let ly = TOP + 10.0 + 22.0 * i as f64;
        let lx = W - RIGHT + 20.0;
        let _ = writeln!(
            o,
            r#"<rect x="{lx}" y="{:.1}" width="14" height="14" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            ly - 11.0,
            lx + 20.0,
            ly,
            esc(&shorten(name, 30))
        );
    }
    if c.more > 0 {
        let _ = writeln!(
            o,
            r##"<text x="{:.1}" y="{:.1}" fill="#555">… and {} more unit(s)</text>"##,
            W - RIGHT + 20.0,
            TOP + 10.0 + 22.0 * c.series.len() as f64,
            c.more
        );
    }
    o.push_str("</svg>\n");
    o
}

/// Keeps the end of long names (the unit is at the end of a path).
fn shorten(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let tail: String = s.chars().skip(n - (max - 1)).collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::tests::fixture;

    #[test]
    fn every_chart_has_title_axes_and_legend() {
        let d = Data::from_recording(&fixture()).unwrap();
        let cs = charts(&d);
        assert_eq!(
            cs.iter().map(|c| c.0).collect::<Vec<_>>(),
            [
                "spawnscope-lifetime.svg",
                "spawnscope-interval.svg",
                "spawnscope-exec-rate.svg",
                "spawnscope-memory.svg"
            ]
        );
        let life = render(&cs[0].1);
        assert!(life.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(life.contains(">Process lifetime by unit</text>"));
        assert!(life.contains(">time (log scale)</text>"));
        assert!(life.contains(">share of the unit&apos;s count (%)</text>"));
        assert!(life.contains(">/ (n=46)</text>"), "legend: {life}");
        assert!(life.contains(">1ms</text>"), "decade ticks: {life}");
        // The fixture has no memory samples: said, not drawn blank.
        let mem = render(&cs[3].1);
        assert!(mem.contains("no data in this recording"));
        assert!(!mem.contains("<polyline"));
    }

    #[test]
    fn distribution_shares_add_up_to_100() {
        let d = Data::from_recording(&fixture()).unwrap();
        let h = &d.units["/"].hists[&Measure::LifetimeNs];
        let dist = distribution(h);
        let total: f64 = dist.iter().map(|p| p.1).sum();
        assert!((total - 100.0).abs() < 1e-9, "{total}");
        // One point per log2 bucket, gaps included.
        assert!(
            dist.windows(2)
                .all(|w| (w[1].0 / w[0].0 - 2.0).abs() < 1e-9)
        );
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(0.0, 0.35), [0.0, 0.1, 0.2, 0.30000000000000004]);
        assert_eq!(shorten("/a/very/long/path/x.service", 12), "…h/x.service");
        assert_eq!(esc("a<b>&'\""), "a&lt;b&gt;&amp;&apos;&quot;");
        let d: Vec<String> = [0, 2, 3, 6, 8, 9, 10, 12].into_iter().map(decade).collect();
        assert_eq!(
            d,
            ["1ns", "100ns", "1µs", "1ms", "100ms", "1s", "10s", "1000s"]
        );
    }
}
