//! The report as people read it (text), as programs read it (JSON) and as
//! a picture (SVG). Every journal-derived string goes through
//! [`escape_human`] before it reaches a terminal or the SVG: a MESSAGE can
//! hold escape sequences.

use std::fmt::Write as _;

use super::{Report, TOP_JOURNAL_UNITS, TimelineKind, UnitSource};
use crate::clock::date;
use crate::detect::thousands;
use crate::events::escape_human;

/// Journal text made inert for a terminal.
fn esc(s: &str) -> String {
    escape_human(s.as_bytes())
}

/// "48.7 days", "3.2 h", "12.5 min", "10 s".
pub fn span(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 60.0 {
        format!("{s:.0} s")
    } else if s < 3600.0 {
        format!("{:.1} min", s / 60.0)
    } else if s < 86_400.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} days", s / 86_400.0)
    }
}

/// Decimal units, as `du --si` and the incident report write them.
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    if n < 1e3 {
        format!("{n} B")
    } else if n < 1e6 {
        format!("{:.1} kB", n / 1e3)
    } else if n < 1e9 {
        format!("{:.1} MB", n / 1e6)
    } else {
        format!("{:.1} GB", n / 1e9)
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

impl Report {
    /// The JSON document of `postmortem --json`.
    pub fn to_json(&self) -> String {
        // The report is plain data (strings, numbers, options, vectors):
        // serialising it cannot fail, but an error is still reported as
        // JSON rather than a panic.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| {
            format!("{{\"error\":{}}}", serde_json::Value::String(e.to_string()))
        })
    }

    /// The report for people.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let r = &self.range;
        match (r.first_unix, r.last_unix) {
            (Some(a), Some(b)) => {
                let _ = writeln!(
                    o,
                    "Postmortem of {}, {} – {} ({}), {}",
                    plural(r.entries, "journal entry", "journal entries"),
                    date(a),
                    date(b),
                    span(b - a),
                    plural(r.boots.len() as u64, "boot", "boots"),
                );
            }
            _ => {
                let _ = writeln!(o, "Postmortem: the journal holds no entries");
            }
        }
        let s = &self.source;
        let _ = writeln!(
            o,
            "Read {} ({}){}",
            plural(s.files as u64, "file", "files"),
            bytes(s.bytes),
            if s.problems.is_empty() {
                String::new()
            } else {
                format!(
                    ", {}:",
                    plural(s.problems.len() as u64, "problem", "problems")
                )
            }
        );
        for (path, what) in &s.problems {
            let _ = writeln!(o, "  {}: {}", esc(path), esc(what));
        }
        if let (Some(now), Some(last)) = (self.generated_unix, r.last_unix) {
            let _ = writeln!(
                o,
                "The journal ends {} before this report.",
                span(now - last)
            );
        }

        let _ = writeln!(o, "\nRespawn loops");
        if self.loops.is_empty() {
            let _ = writeln!(
                o,
                "  none (a loop is {} or more scheduled restarts)",
                super::LOOP_MIN_RESTARTS
            );
        }
        for l in &self.loops {
            let who = match l.user_uid {
                Some(uid) => format!("{} (user {uid})", esc(&l.unit)),
                None => esc(&l.unit),
            };
            let rate = l
                .rate_per_min
                .map(|r| format!(", {r:.1}/min"))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "  {who}: {} in {}{rate}, {} – {}",
                plural(l.restarts, "restart", "restarts"),
                span(l.span_s),
                date(l.first_unix),
                date(l.last_unix),
            );
            if let (Some(last), Some(max)) = (l.counter_last, l.counter_max) {
                let _ = writeln!(
                    o,
                    "    restart counter at {} (highest {}, {})",
                    thousands(last),
                    thousands(max),
                    plural(l.counter_resets, "reset", "resets"),
                );
            }
            let _ = writeln!(
                o,
                "    {}, {}; longest pause between restarts {}",
                plural(l.starts, "start", "starts"),
                plural(l.failures, "failure", "failures"),
                span(l.longest_gap_s),
            );
            let mut last = Vec::new();
            if let Some(x) = &l.last_exit_status {
                let st = x.text.clone().unwrap_or_else(|| x.status.to_string());
                last.push(format!(
                    "last exit code={}, status={}",
                    x.code.as_str(),
                    esc(&st)
                ));
            }
            if let Some(res) = &l.last_result {
                last.push(format!("last result {}", esc(res)));
            }
            if !last.is_empty() {
                let _ = writeln!(o, "    {}", last.join("; "));
            }
            if !l.top_errors.is_empty() {
                let _ = writeln!(
                    o,
                    "    dominant {}{}:",
                    if l.errors_are_warnings {
                        "errors (warning or worse)"
                    } else {
                        "messages"
                    },
                    if l.top_errors_exact {
                        ""
                    } else {
                        ", counts are upper bounds"
                    },
                );
                let w = l
                    .top_errors
                    .iter()
                    .map(|e| thousands(e.count).len())
                    .max()
                    .unwrap_or(0);
                for e in &l.top_errors {
                    let _ = writeln!(o, "      {:>w$}  {}", thousands(e.count), esc(&e.text));
                    let _ = writeln!(o, "      {:>w$}  e.g. {}", "", esc(&e.example));
                }
            }
        }

        let _ = writeln!(o, "\nJournal volume by unit (as journalctl -u counts)");
        if self.journal_units.is_empty() {
            let _ = writeln!(o, "  no entry names a unit");
        } else {
            let shown = &self.journal_units[..self.journal_units.len().min(TOP_JOURNAL_UNITS)];
            let uw = shown
                .iter()
                .map(|u| esc(&u.unit).chars().count())
                .max()
                .unwrap_or(4)
                .max(4);
            let _ = writeln!(
                o,
                "  {:<uw$}  {:>11}  {:>6}  {:>9}",
                "UNIT", "ENTRIES", "SHARE", "BYTES"
            );
            for u in shown {
                let _ = writeln!(
                    o,
                    "  {:<uw$}  {:>11}  {:>5.1}%  {:>9}",
                    esc(&u.unit),
                    thousands(u.entries),
                    u.share * 100.0,
                    bytes(u.bytes),
                );
            }
        }

        let _ = writeln!(o, "\nMemory");
        if self.oom_kills.is_empty() && self.memory_pressure_total == 0 {
            let _ = writeln!(o, "  no OOM kill, no memory-pressure message");
        }
        for k in &self.oom_kills {
            let mut l = format!(
                "  OOM kill {}: pid {} ({})",
                date(k.time_unix),
                k.pid,
                esc(&k.comm)
            );
            if let Some(u) = &k.unit {
                let how = match k.unit_source {
                    Some(UnitSource::TaskMemcg) => "by its cgroup",
                    Some(UnitSource::Pid) => "by its pid",
                    Some(UnitSource::Systemd) => "by systemd",
                    None => "",
                };
                let _ = write!(l, " of {} ({how})", esc(u));
            }
            if let Some(kb) = k.anon_rss_kb {
                let _ = write!(l, ", anon-rss {}", bytes(kb.saturating_mul(1024)));
            }
            if !k.reason.is_empty() {
                let _ = write!(l, ", {}", esc(&k.reason));
            }
            if let Some(c) = k.constraint {
                let _ = write!(l, ", constraint {}", c.as_str());
            }
            if let Some(m) = &k.oom_memcg {
                let _ = write!(l, ", oom_memcg {}", esc(m));
            }
            let _ = writeln!(o, "{l}");
        }
        if self.oom_kills_total > self.oom_kills.len() as u64 {
            let _ = writeln!(
                o,
                "  {} in all; the last {} are listed",
                plural(self.oom_kills_total, "OOM kill", "OOM kills"),
                thousands(self.oom_kills.len() as u64)
            );
        }
        if self.memory_pressure_total > 0 {
            let _ = writeln!(
                o,
                "  {}{}",
                plural(
                    self.memory_pressure_total,
                    "memory-pressure message",
                    "memory-pressure messages"
                ),
                if self.memory_pressure_total > self.memory_pressure.len() as u64 {
                    format!(
                        " ({} shown: the first and the last)",
                        self.memory_pressure.len()
                    )
                } else {
                    String::new()
                }
            );
            for p in &self.memory_pressure {
                let _ = writeln!(
                    o,
                    "    {}  {}: {}",
                    date(p.time_unix),
                    esc(p.unit.as_deref().unwrap_or("-")),
                    esc(&p.text)
                );
            }
        }

        let _ = writeln!(o, "\nTimeline");
        let dw = self
            .timeline
            .iter()
            .map(|e| date(e.time_unix).len())
            .max()
            .unwrap_or(0);
        for e in &self.timeline {
            let what = match e.kind {
                TimelineKind::Boot => esc(&e.detail),
                TimelineKind::LoopStart => format!(
                    "respawn loop starts: {}",
                    esc(e.unit.as_deref().unwrap_or("?"))
                ),
                TimelineKind::FirstMemoryWarning => format!(
                    "first memory warning: {}: {}",
                    esc(e.unit.as_deref().unwrap_or("-")),
                    esc(&e.detail)
                ),
                TimelineKind::OomKill => match &e.unit {
                    Some(u) => format!("OOM kill in {}: {}", esc(u), esc(&e.detail)),
                    None => format!("OOM kill: {}", esc(&e.detail)),
                },
                TimelineKind::LastEntry => esc(&e.detail),
                TimelineKind::Gap => {
                    let _ = writeln!(
                        o,
                        "  {:dw$}  … {} without entries …",
                        "",
                        span(e.duration_s.unwrap_or(0.0))
                    );
                    continue;
                }
            };
            let _ = writeln!(o, "  {:<dw$}  {what}", date(e.time_unix));
        }
        o
    }

    /// A self-contained SVG timeline: restart rate per looping unit over a
    /// UTC time axis, with boots, memory warnings, OOM kills and gaps.
    pub fn to_svg(&self) -> String {
        svg(self)
    }
}

/// Text for XML: inert for terminals first (XML 1.0 forbids most control
/// characters anyway), then the five entities.
fn xml(s: &str) -> String {
    esc(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Columns of the drawn rate series, at most.
const DRAWN_BUCKETS: usize = 200;
/// Narrowest drawn column: a rate over less than a minute is mostly the
/// phase of the restarts against the column edges.
const DRAWN_MIN_S: f64 = 60.0;
/// Lanes drawn; more loops are named in a note.
const MAX_LANES: usize = 10;

fn svg(r: &Report) -> String {
    const W: f64 = 1100.0;
    const L: f64 = 240.0;
    const R: f64 = 30.0;
    const TOP: f64 = 50.0;
    const LANE: f64 = 70.0;
    let (t0, t1) = match (r.range.first_unix, r.range.last_unix) {
        (Some(a), Some(b)) if b > a => (a, b),
        (Some(a), _) => (a, a + 1.0),
        _ => (0.0, 1.0),
    };
    let lanes = r.series.len().min(MAX_LANES);
    let plot_h = (lanes.max(1) as f64) * LANE;
    let axis_y = TOP + plot_h;
    let h = axis_y + 90.0;
    let x = |t: f64| L + (t - t0) / (t1 - t0) * (W - L - R);
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">
<rect x="0" y="0" width="{W}" height="{h}" fill="white"/>
<text x="10" y="22" font-size="16" font-weight="bold">spawnscope postmortem: restarts per minute, by unit ({} – {})</text>"#,
        xml(&date(t0)),
        xml(&date(t1)),
    );

    // Gaps first, under everything.
    for e in r.timeline.iter().filter(|e| e.kind == TimelineKind::Gap) {
        let d = e.duration_s.unwrap_or(0.0);
        let (a, b) = (x(e.time_unix), x(e.time_unix + d));
        let _ = writeln!(
            o,
            r##"<rect x="{a:.1}" y="{TOP}" width="{:.1}" height="{plot_h}" fill="#dddddd"/>
<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555555">no entries for {}</text>"##,
            (b - a).max(1.0),
            (a + b) / 2.0,
            TOP + 14.0,
            xml(&span(d)),
        );
    }

    let columns = ((t1 - t0) / DRAWN_MIN_S)
        .floor()
        .clamp(1.0, DRAWN_BUCKETS as f64) as usize;
    let dw = (t1 - t0) / columns as f64;
    for (lane, s) in r.series.iter().take(MAX_LANES).enumerate() {
        // Spread each kept bucket over the drawn ones it overlaps, in
        // proportion: the kept width doubles as time goes on and rarely
        // matches the drawn one.
        let mut drawn = vec![0f64; columns];
        let lp = r.loops.iter().find(|l| l.unit == s.unit);
        // A kept bucket holds no restart before the first or after the
        // last: spreading over those parts would draw restarts in a gap.
        let (lo, hi) = lp.map_or((t0, t1), |l| (l.first_unix, l.last_unix));
        for (j, &c) in s.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let a = (s.origin_unix + j as f64 * s.width_s).max(lo);
            let b = (s.origin_unix + (j + 1) as f64 * s.width_s).min(hi + 1e-3);
            if b <= a {
                let k = (((a - t0) / dw).floor().max(0.0) as usize).min(columns - 1);
                drawn[k] += f64::from(c);
                continue;
            }
            let (ca, cb) = (a.max(t0), b.min(t1 + dw));
            if cb <= ca {
                // All of it outside the range (clock jumps): into the
                // nearest edge bucket.
                let k = if b <= t0 { 0 } else { columns - 1 };
                drawn[k] += f64::from(c);
                continue;
            }
            let first = (((ca - t0) / dw).floor() as usize).min(columns - 1);
            let last = (((cb - t0) / dw).ceil() as usize).clamp(first + 1, columns);
            for (k, slot) in drawn.iter_mut().enumerate().take(last).skip(first) {
                let ka = t0 + k as f64 * dw;
                let kb = ka + dw;
                let overlap = (kb.min(b) - ka.max(a)).max(0.0);
                *slot += f64::from(c) * overlap / (b - a);
            }
        }
        let max = drawn.iter().copied().fold(0.0, f64::max);
        let rate = r
            .loops
            .iter()
            .find(|l| l.unit == s.unit)
            .and_then(|l| l.rate_per_min);
        let y0 = TOP + lane as f64 * LANE;
        let base = y0 + LANE - 8.0;
        let _ = writeln!(
            o,
            r##"<line x1="{L}" y1="{base}" x2="{:.1}" y2="{base}" stroke="#999999"/>
<text x="{}" y="{:.1}" text-anchor="end">{}</text>
<text x="{}" y="{:.1}" text-anchor="end" fill="#555555" font-size="10">{}</text>"##,
            W - R,
            L - 8.0,
            y0 + LANE / 2.0,
            xml(&s.unit),
            L - 8.0,
            y0 + LANE / 2.0 + 14.0,
            rate.map(|r| format!("{r:.1}/min on average"))
                .unwrap_or_default(),
        );
        if max > 0.0 {
            let bw = (W - L - R) / columns as f64;
            for (k, &n) in drawn.iter().enumerate() {
                if n <= 0.0 {
                    continue;
                }
                let bh = (n / max) * (LANE - 16.0);
                let _ = writeln!(
                    o,
                    r##"<rect x="{:.1}" y="{:.1}" width="{:.2}" height="{bh:.1}" fill="#3366aa"/>"##,
                    L + k as f64 * bw,
                    base - bh,
                    bw,
                );
            }
        }
    }
    if r.series.is_empty() {
        let _ = writeln!(
            o,
            r#"<text x="{L}" y="{:.1}">no respawn loops</text>"#,
            TOP + LANE / 2.0
        );
    } else if r.series.len() > MAX_LANES {
        let _ = writeln!(
            o,
            r#"<text x="10" y="{:.1}" font-size="10">and {} more looping units (see the text report)</text>"#,
            axis_y + 76.0,
            r.series.len() - MAX_LANES
        );
    }

    // Markers: boots, memory warnings, OOM kills.
    let marker = |o: &mut String, t: f64, colour: &str, label: &str, dy: f64| {
        let px = x(t);
        // Labels near the right edge go to the left of their line.
        let (lx, anchor) = if px > W - R - 60.0 {
            (px - 2.0, "end")
        } else {
            (px + 2.0, "start")
        };
        let _ = writeln!(
            o,
            r#"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{axis_y}" stroke="{colour}" stroke-width="1.5"/>
<text x="{lx:.1}" y="{:.1}" fill="{colour}" font-size="10" text-anchor="{anchor}">{}</text>"#,
            TOP - 12.0,
            TOP - 14.0 + dy,
            xml(label),
        );
    };
    for e in &r.timeline {
        match e.kind {
            TimelineKind::Boot => marker(&mut o, e.time_unix, "#228833", "boot", 0.0),
            TimelineKind::OomKill => marker(&mut o, e.time_unix, "#cc2222", "OOM kill", 10.0),
            _ => {}
        }
    }
    for p in &r.memory_pressure {
        let px = x(p.time_unix);
        let _ = writeln!(
            o,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{axis_y}" stroke="#ee8800" stroke-width="1" stroke-dasharray="3,2"/>"##,
        );
    }

    // The axis.
    let _ = writeln!(
        o,
        r##"<line x1="{L}" y1="{axis_y}" x2="{:.1}" y2="{axis_y}" stroke="black"/>"##,
        W - R
    );
    let spanv = t1 - t0;
    const STEPS: [f64; 12] = [
        60.0,
        300.0,
        900.0,
        3600.0,
        6.0 * 3600.0,
        12.0 * 3600.0,
        86_400.0,
        2.0 * 86_400.0,
        7.0 * 86_400.0,
        14.0 * 86_400.0,
        28.0 * 86_400.0,
        91.0 * 86_400.0,
    ];
    let step = STEPS
        .iter()
        .copied()
        .find(|s| spanv / s <= 8.0)
        .unwrap_or(spanv / 8.0);
    let mut t = (t0 / step).ceil() * step;
    while t <= t1 {
        let px = x(t);
        // "13 Jan 2026 09:00 UTC" → "13 Jan" for day steps, "13 Jan 09:00" below.
        let d = date(t);
        let w: Vec<&str> = d.split(' ').collect();
        let label = match (w.first(), w.get(1), w.get(3)) {
            (Some(day), Some(mon), Some(hm)) if step < 86_400.0 => format!("{day} {mon} {hm}"),
            (Some(day), Some(mon), _) => format!("{day} {mon}"),
            _ => d.clone(),
        };
        let _ = writeln!(
            o,
            r#"<line x1="{px:.1}" y1="{axis_y}" x2="{px:.1}" y2="{:.1}" stroke="black"/>
<text x="{px:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
            axis_y + 5.0,
            axis_y + 18.0,
            xml(&label),
        );
        t += step;
    }
    let _ = writeln!(
        o,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="10">UTC</text>
<rect x="{L}" y="{:.1}" width="12" height="8" fill="#3366aa"/><text x="{:.1}" y="{:.1}" font-size="10">restarts/min</text>
<rect x="{:.1}" y="{:.1}" width="12" height="2" fill="#228833"/><text x="{:.1}" y="{:.1}" font-size="10">boot</text>
<rect x="{:.1}" y="{:.1}" width="12" height="2" fill="#ee8800"/><text x="{:.1}" y="{:.1}" font-size="10">memory warning</text>
<rect x="{:.1}" y="{:.1}" width="12" height="2" fill="#cc2222"/><text x="{:.1}" y="{:.1}" font-size="10">OOM kill</text>
<rect x="{:.1}" y="{:.1}" width="12" height="8" fill="#dddddd"/><text x="{:.1}" y="{:.1}" font-size="10">no journal entries</text>
</svg>"##,
        L - 8.0,
        axis_y + 18.0,
        axis_y + 40.0,
        L + 16.0,
        axis_y + 48.0,
        L + 120.0,
        axis_y + 43.0,
        L + 136.0,
        axis_y + 48.0,
        L + 200.0,
        axis_y + 43.0,
        L + 216.0,
        axis_y + 48.0,
        L + 340.0,
        axis_y + 43.0,
        L + 356.0,
        axis_y + 48.0,
        L + 440.0,
        axis_y + 40.0,
        L + 456.0,
        axis_y + 48.0,
    );
    o
}
