//! Aligned text for people.

use std::io::{self, Write};

use spawnscope_common::Counters;

use super::Reporter;
use super::schema::{IntervalReport, Summary};
use crate::report::{By, Row};

pub struct Table<W: Write> {
    out: W,
    /// Rows shown per interval and in the summary's top list.
    top: usize,
    by: By,
}

const NAME_WIDTH: usize = 44;
const CONTAINER_WIDTH: usize = 18;

impl<W: Write> Table<W> {
    pub fn new(out: W, top: usize, by: By) -> Self {
        Self { out, top, by }
    }

    fn head(&self) -> String {
        let name = match self.by {
            By::Unit => "UNIT",
            By::Slice => "SLICE",
            By::Cgroup => "CGROUP",
            By::Container => return format!("{:<NAME_WIDTH$}", "CONTAINER"),
        };
        format!("{:<CONTAINER_WIDTH$} {name:<NAME_WIDTH$}", "CONTAINER")
    }

    fn label(&self, r: &Row) -> String {
        let mut name = r.group.clone();
        if let (Some(true), Some(uid)) = (r.user_manager, r.user) {
            name = format!("{name} (uid {uid})");
        }
        if self.by == By::Container {
            return format!("{:<NAME_WIDTH$}", fit(&name, NAME_WIDTH));
        }
        let container = r.container.as_ref().map_or("-".to_string(), |c| c.label());
        format!(
            "{:<CONTAINER_WIDTH$} {:<NAME_WIDTH$}",
            fit(&container, CONTAINER_WIDTH),
            fit(&name, NAME_WIDTH)
        )
    }

    fn blank_label(&self, text: &str) -> String {
        let width = match self.by {
            By::Container => NAME_WIDTH,
            _ => CONTAINER_WIDTH + 1 + NAME_WIDTH,
        };
        format!("{text:<width$}")
    }
}

fn mib(b: f64) -> String {
    format!("{:.1} MiB", b / 1048576.0)
}

/// One line of memory forecast under each interval table.
fn memory_line(m: &crate::mempress::MemForecast) -> String {
    let mut s = format!(
        "memory: {} of {} used",
        mib(m.used_bytes as f64),
        mib(m.total_bytes as f64)
    );
    match (m.growth_bytes_per_s, m.seconds_to_exhaustion) {
        (Some(g), Some(t)) => s.push_str(&format!(
            ", growing {}/s{}, exhausted in {}",
            mib(g),
            // How far the forecast reaches beyond what was seen.
            m.observed_s
                .map(|o| format!(" for {o:.0} s"))
                .unwrap_or_default(),
            humantime::format_duration(std::time::Duration::from_secs(t as u64))
        )),
        (Some(g), None) => s.push_str(&format!(", trend {}/s", mib(g))),
        _ => s.push_str(", trend: too few samples yet"),
    }
    if let Some(t) = m.top_growth.first() {
        s.push_str(&format!(
            "; top growth {} (+{}/s{})",
            t.unit.as_deref().unwrap_or(&t.cgroup),
            mib(t.growth_bytes_per_s),
            t.seconds_to_limit
                .map(|x| format!(", limit in {x:.0} s"))
                .unwrap_or_default()
        ));
    }
    s
}

/// One line of bars for log2 buckets: from the lowest bucket with a count
/// to the highest, one character per bucket, ' ' for none and ▁ to █ by
/// count relative to the largest. None when there is no count.
pub fn bars(buckets: &[crate::report::LifetimeBucket]) -> Option<String> {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let first = buckets.first()?;
    let last = buckets.last()?;
    let idx = |b: &crate::report::LifetimeBucket| b.ge_ns.max(1).ilog2() as usize;
    let (lo, hi) = (idx(first), idx(last));
    let max = buckets.iter().map(|b| b.count).max()?.max(1);
    let mut line: Vec<char> = vec![' '; hi - lo + 1];
    for b in buckets {
        // The smallest block for any count: a lone process still shows.
        let level = ((b.count * 8).div_ceil(max)).clamp(1, 8) as usize - 1;
        line[idx(b) - lo] = BLOCKS[level];
    }
    let n: u64 = buckets.iter().map(|b| b.count).sum();
    Some(format!(
        "{:>7} {} {:<7} n={n}",
        crate::events::fmt_duration(first.ge_ns),
        line.into_iter().collect::<String>(),
        crate::events::fmt_duration(last.lt_ns),
    ))
}

/// A growing hidden victim (PID 1, journald, the journal), with its
/// growth per restart of the loops beside it; None while it does not grow.
fn hidden_line(h: &crate::mempress::HiddenTrend) -> Option<String> {
    let g = h.growth_bytes_per_s.filter(|g| *g > 0.0)?;
    let what = match h.what {
        crate::mempress::HiddenKind::Pid1 => format!("PID 1 {} [{}]", h.comm, h.pid),
        crate::mempress::HiddenKind::Journald => format!("journald [{}]", h.pid),
        crate::mempress::HiddenKind::Journal => format!("the journal of journald [{}]", h.pid),
    };
    let place = h
        .container
        .as_ref()
        .map(|c| format!(" in {c}"))
        .unwrap_or_default();
    let per = h
        .per_restart
        .as_ref()
        .map(|p| {
            format!(
                ", {:.1} KiB per restart of {}",
                p.bytes_per_restart / 1024.0,
                p.loops.join(" + ")
            )
        })
        .unwrap_or_default();
    Some(format!(
        "memory: {what}{place}: {}, growing {}/s{per}",
        mib(h.bytes as f64),
        mib(g)
    ))
}

/// Shortens long names from the left: the leaf names the unit.
fn fit(path: &str, width: usize) -> String {
    let n = path.chars().count();
    if n <= width {
        return path.to_string();
    }
    let tail: String = path.chars().skip(n - (width - 1)).collect();
    format!("…{tail}")
}

fn counts(c: &Counters) -> String {
    format!(
        "{:>8} {:>8} {:>8} {:>8} {:>7} {:>5} {:>8} {:>8}",
        c.forks,
        c.execs,
        c.exit_clean,
        c.exit_failed,
        c.exit_signaled,
        c.exit_core,
        c.threads,
        c.thread_exits
    )
}

const COUNT_HEADS: &str = "   FORKS    EXECS  EXIT_OK EXIT_ERR  SIGNAL  CORE  THREADS THR_EXIT";

impl<W: Write> Reporter for Table<W> {
    fn interval(&mut self, r: &IntervalReport) -> io::Result<()> {
        writeln!(
            self.out,
            "--- {:.1}s elapsed, interval {:.2}s, {} active",
            r.elapsed_s,
            r.interval_s,
            r.rows.len()
        )?;
        if !r.rows.is_empty() {
            writeln!(
                self.out,
                "{} {COUNT_HEADS}   FORK/s   EXEC/s   EXIT/s",
                self.head()
            )?;
        }
        for row in r.rows.iter().take(self.top) {
            let rate = row.rate.expect("interval rows carry rates");
            writeln!(
                self.out,
                "{} {} {:>8.1} {:>8.1} {:>8.1}",
                self.label(row),
                counts(&row.total),
                rate.forks_per_s,
                rate.execs_per_s,
                rate.exits_per_s
            )?;
        }
        if r.rows.len() > self.top {
            writeln!(
                self.out,
                "  ... and {} more (see --top)",
                r.rows.len() - self.top
            )?;
        }
        if let Some(m) = &r.memory {
            writeln!(self.out, "{}", memory_line(m))?;
            // Live, only what a loop is costing: the rest is in the summary.
            for h in m.hidden.iter().filter(|h| h.per_restart.is_some()) {
                if let Some(line) = hidden_line(h) {
                    writeln!(self.out, "{line}")?;
                }
            }
        }
        self.out.flush()
    }

    fn summary(&mut self, s: &Summary) -> io::Result<()> {
        writeln!(self.out)?;
        writeln!(
            self.out,
            "=== summary: {:.1}s, {} row(s) by {}",
            s.duration_s,
            s.rows.len(),
            s.by.as_str()
        )?;
        writeln!(self.out, "{} {COUNT_HEADS}", self.head())?;
        writeln!(
            self.out,
            "{} {}",
            self.blank_label("TOTAL (all cgroups)"),
            counts(&s.totals)
        )?;
        if let Some(m) = &s.matched {
            writeln!(
                self.out,
                "{} {}",
                self.blank_label("MATCHED (--unit/--container)"),
                counts(m)
            )?;
        }
        for row in s.rows.iter().take(self.top) {
            writeln!(self.out, "{} {}", self.label(row), counts(&row.total))?;
        }
        if s.rows.len() > self.top {
            writeln!(
                self.out,
                "  ... and {} more (see --top)",
                s.rows.len() - self.top
            )?;
        }
        // The top rows' distributions, as bars.
        let shown: Vec<&Row> = s
            .rows
            .iter()
            .take(self.top.min(5))
            .filter(|r| r.lifetimes.as_ref().is_some_and(|l| !l.is_empty()))
            .collect();
        if !shown.is_empty() {
            writeln!(
                self.out,
                "distributions (log2 buckets, ▁ to █ by count, from the first bucket's floor to the last's ceiling):"
            )?;
            for r in shown {
                let name = match &r.container {
                    Some(c) => format!("{} @{}", r.group, c.label()),
                    None => r.group.clone(),
                };
                for (what, b) in [("lifetime", &r.lifetimes), ("interval", &r.intervals)] {
                    if let Some(line) = b.as_deref().and_then(bars) {
                        writeln!(self.out, "  {name:<40} {what:<8} {line}")?;
                    }
                }
            }
        }
        match &s.findings {
            Some(f) if f.is_empty() => writeln!(self.out, "respawn loops: none found")?,
            Some(f) => {
                writeln!(self.out, "respawn loops and failing jobs: {}", f.len())?;
                for x in f {
                    writeln!(
                        self.out,
                        "  [{}] {} ({})",
                        x.severity.as_str(),
                        x.message,
                        x.state
                    )?;
                }
            }
            None => {}
        }
        if s.probe.map_full > 0 {
            writeln!(
                self.out,
                "warning: {} event(s) found the cgroup map full; they are in the totals but not \
                 attributed (raise --max-cgroups)",
                s.probe.map_full
            )?;
        }
        if s.probe.read_failed > 0 {
            writeln!(
                self.out,
                "warning: {} kernel read(s) failed; see docs/trace.md (probe.read_failed)",
                s.probe.read_failed
            )?;
        }
        if s.probe.names_lost > 0 {
            writeln!(
                self.out,
                "warning: {} cgroup creation(s) were not reported by the kernel (ring buffer \
                 full); short-lived ones among them may show as cgroup-id:N",
                s.probe.names_lost
            )?;
        }
        writeln!(self.out, "{}", memory_line(&s.memory.forecast))?;
        for h in s.memory.forecast.hidden.iter() {
            if let Some(line) = hidden_line(h) {
                writeln!(self.out, "{line}")?;
            }
        }
        for w in &s.memory.warnings {
            writeln!(self.out, "memory warning: {}", w.message)?;
        }
        for k in &s.memory.memcg_oom_kills {
            writeln!(self.out, "memory: {}", k.message)?;
        }
        for k in &s.oom_kills {
            let scope = match (k["scope"].as_str(), k["limiting_cgroup"]["path"].as_str()) {
                (Some("memcg"), Some(p)) => format!("memory limit of {p}"),
                (Some("memcg"), None) => "a memory cgroup's limit".to_string(),
                (Some("global"), _) => "global: the system ran out".to_string(),
                _ => "scope unknown".to_string(),
            };
            writeln!(
                self.out,
                "OOM kill ({scope}): {} (pid {}) in {}, rss {}, killed while {} (pid {}) allocated",
                k["comm"].as_str().unwrap_or("?"),
                k["pid"],
                k["unit"]
                    .as_str()
                    .or(k["cgroup"].as_str())
                    .unwrap_or("an unknown cgroup"),
                k["rss_bytes"]
                    .as_u64()
                    .map_or("unknown".into(), |b| format!(
                        "{:.1} MiB",
                        b as f64 / 1048576.0
                    )),
                k["killer"]["comm"].as_str().unwrap_or("?"),
                k["killer"]["pid"],
            )?;
        }
        if let Some(e) = &s.events {
            writeln!(
                self.out,
                "events: delivered exec {} exit {} fork {}; dropped exec {} exit {} fork {}{}",
                e.delivered.exec,
                e.delivered.exit,
                e.delivered.fork,
                e.dropped.exec,
                e.dropped.exit,
                e.dropped.fork,
                if e.undecodable > 0 {
                    format!("; undecodable {}", e.undecodable)
                } else {
                    String::new()
                }
            )?;
            if e.dropped.exec + e.dropped.exit + e.dropped.fork > 0 {
                writeln!(
                    self.out,
                    "warning: the event ring buffer overflowed; the counts above are complete, \
                     the event lines are not"
                )?;
            }
        }
        if let Some(w) = &s.attribution_warning {
            writeln!(self.out, "warning: {w}")?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroupfs::Resolved;
    use crate::output::schema::Schema;
    use crate::report::{Filter, ProbeStats, summary_rows};
    use crate::unit;
    use spawnscope_common::Counters;

    #[test]
    fn bars_span_the_buckets_with_counts() {
        use crate::report::LifetimeBucket as B;
        let b = |i: u32, count| B {
            ge_ns: 1 << i,
            lt_ns: 1 << (i + 1),
            count,
        };
        // 1 ms (2^20 ns) ×16, nothing at 2^21, 4 ms ×1, 8 ms ×8.
        assert_eq!(
            bars(&[b(20, 16), b(22, 1), b(23, 8)]).unwrap(),
            "  1.0ms █ ▁▄ 16.8ms  n=25"
        );
        assert_eq!(bars(&[]), None);
        assert_eq!(bars(&[b(0, 3)]).unwrap(), "    1ns █ 2ns     n=3");
    }

    #[test]
    fn fit_keeps_the_leaf() {
        assert_eq!(fit("/a/b", 10), "/a/b");
        let f = fit(
            "/system.slice/system-serial\\x2dgetty.slice/serial-getty@ttyS0.service",
            30,
        );
        assert_eq!(f.chars().count(), 30);
        assert!(
            f.starts_with('…') && f.ends_with("serial-getty@ttyS0.service"),
            "{f}"
        );
    }

    fn resolve(id: u64) -> Resolved {
        let path = match id {
            1 => "/web/payload/system.slice/crashy.service",
            2 => "/user.slice/user-1000.slice/user@1000.service/app.slice/a.service",
            _ => {
                return Resolved {
                    path: None,
                    owner: None,
                };
            }
        };
        Resolved {
            path: Some(path.into()),
            owner: Some(unit::parse(path.as_bytes())),
        }
    }

    #[test]
    fn interval_and_summary_render_rows_and_warnings() {
        let snap = crate::report::Snapshot {
            per_cgroup: [
                (
                    1,
                    Counters {
                        forks: 3,
                        execs: 2,
                        exit_failed: 1,
                        ..Counters::ZERO
                    },
                ),
                (
                    2,
                    Counters {
                        execs: 1,
                        ..Counters::ZERO
                    },
                ),
                (
                    42,
                    Counters {
                        forks: 1,
                        ..Counters::ZERO
                    },
                ),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let f = Filter::default();
        let rows =
            crate::report::interval_rows(&Default::default(), &snap, 1.0, By::Unit, &f, &resolve);
        let mut buf = Vec::new();
        let mut t = Table::new(&mut buf, 10, By::Unit);
        t.interval(&IntervalReport {
            kind: "interval",
            schema: Schema,
            time_unix: 0.0,
            elapsed_s: 1.0,
            interval_s: 1.0,
            by: By::Unit,
            rows,
            overflow: Counters::ZERO,
            probe: ProbeStats::default(),
            memory: Some(crate::mempress::MemForecast {
                used_bytes: 1 << 30,
                total_bytes: 4 << 30,
                growth_bytes_per_s: Some(1048576.0),
                seconds_to_exhaustion: Some(3072.0),
                observed_s: Some(90.0),
                meminfo: None,
                top_growth: vec![crate::mempress::CgroupTrend {
                    cgroup: "/system.slice/leak.service".into(),
                    unit: Some("leak.service".into()),
                    used_bytes: 1,
                    use_bytes: 1,
                    limit_bytes: None,
                    growth_bytes_per_s: 1048576.0,
                    observed_s: Some(90.0),
                    seconds_to_limit: None,
                    share_of_system_growth: Some(1.0),
                    breakdown: None,
                }],
                slab_growth: vec![],
                hidden: vec![],
            }),
        })
        .unwrap();
        t.summary(&Summary {
            kind: "summary",
            schema: Schema,
            time_unix: 0.0,
            duration_s: 1.0,
            by: By::Unit,
            filter: f.clone(),
            totals: crate::report::totals(&snap),
            matched: None,
            rows: summary_rows(&snap, By::Unit, &f, &resolve),
            overflow: Counters::ZERO,
            probe: ProbeStats {
                map_full: 5,
                read_failed: 0,
                no_layout: 0,
                names_lost: 2,
                lifetimes_full: 0,
            },
            exit_program: "group_dead",
            attribution_warning: Some("no cgroup2".into()),
            events: None,
            monotonic_end_ns: 0,
            findings: Some(vec![]),
            systemd: None,
            oom_kills: vec![serde_json::json!({
                "comm": "leaker", "pid": 42, "unit": "leak.service", "cgroup": "/system.slice/leak.service",
                "rss_bytes": 67108864u64, "killer": {"comm": "leaker", "pid": 42},
                "scope": "memcg", "limiting_cgroup": {"hierarchy": "v1", "id": 7, "path": "/leak"}
            })],
            memory: crate::output::schema::MemorySummary {
                hierarchy: Some(crate::mempress::MemHierarchy::V1),
                samples: 3,
                pass_us_p50: Some(120),
                pass_us_slab_p50: Some(2000),
                pass_us_max: Some(2500),
                cgroups: 3,
                warnings: vec![crate::mempress::MemWarning {
                    kind: "memory_warning",
                    schema: Schema,
                    target: crate::mempress::WarningTarget::Cgroup,
                    cgroup: Some("/leak".into()),
                    unit: None,
                    time_unix: 0.0,
                    seconds_to_exhaustion: Some(7.0),
                    growth_bytes_per_s: 1.0,
                    observed_s: Some(3.0),
                    used_bytes: 1,
                    limit_bytes: Some(2),
                    pids: vec![42],
                    culprits: vec![],
                    message: "/leak will reach its memory limit in 7 s".into(),
                }],
                memcg_oom_kills: vec![crate::mempress::MemcgOomKill {
                    kind: "memcg_oom_kill",
                    schema: Schema,
                    time_unix: 0.0,
                    cgroup: "/leak".into(),
                    unit: None,
                    kills: 1,
                    total: 1,
                    message: "/leak counted 1 OOM kill(s) under its memory limit (1 in all)".into(),
                }],
                forecast: crate::mempress::MemForecast {
                    used_bytes: 0,
                    total_bytes: 0,
                    growth_bytes_per_s: None,
                    seconds_to_exhaustion: None,
                    observed_s: None,
                    meminfo: None,
                    top_growth: vec![],
                    slab_growth: vec![],
                    hidden: vec![
                        crate::mempress::HiddenTrend {
                            what: crate::mempress::HiddenKind::Journal,
                            pid: 77,
                            comm: "systemd-journal".into(),
                            cgroup: Some("/web/payload/system.slice/systemd-journald.service".into()),
                            container: Some("web".into()),
                            bytes: 8 << 20,
                            disk_bytes: Some(16 << 20),
                            growth_bytes_per_s: Some(262144.0),
                            per_restart: Some(crate::mempress::PerRestart {
                                loops: vec!["crashy.service".into()],
                                restarts_per_s: 1.0,
                                bytes_per_restart: 262144.0,
                            }),
                        },
                        crate::mempress::HiddenTrend {
                            what: crate::mempress::HiddenKind::Pid1,
                            pid: 1,
                            comm: "init".into(),
                            cgroup: None,
                            container: None,
                            bytes: 1 << 20,
                            disk_bytes: None,
                            growth_bytes_per_s: Some(0.0),
                            per_restart: None,
                        },
                    ],
                },
            },
        })
        .unwrap();
        let text = String::from_utf8(buf).unwrap();
        let line = text.lines().find(|l| l.starts_with("web ")).unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "web",
                "crashy.service",
                "3",
                "2",
                "0",
                "1",
                "0",
                "0",
                "0",
                "0",
                "3.0",
                "2.0",
                "1.0"
            ]
        );
        assert!(text.contains("a.service (uid 1000)"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("-") && l.contains("cgroup-id:42"))
        );
        assert!(text.contains("=== summary: 1.0s, 3 row(s) by unit"));
        assert!(text.contains("warning: 5 event(s) found the cgroup map full"));
        assert!(text.contains("warning: 2 cgroup creation(s) were not reported"));
        assert!(text.contains("warning: no cgroup2"));
        assert!(text.contains("respawn loops: none found"));
        assert!(text.contains("memory warning: /leak will reach its memory limit in 7 s"));
        assert!(
            text.contains(
                "memory: 1024.0 MiB of 4096.0 MiB used, growing 1.0 MiB/s for 90 s, exhausted in 51m 12s; \
                 top growth leak.service (+1.0 MiB/s)"
            ),
            "{text}"
        );
        assert!(text.contains(
            "OOM kill (memory limit of /leak): leaker (pid 42) in leak.service, rss 64.0 MiB, \
             killed while leaker (pid 42) allocated"
        ));
        assert!(
            text.contains(
                "memory: the journal of journald [77] in web: 8.0 MiB, growing 0.2 MiB/s, \
             256.0 KiB per restart of crashy.service"
            ),
            "{text}"
        );
        assert!(
            !text.contains("PID 1 init"),
            "a flat PID 1 is not news: {text}"
        );
        assert!(
            text.contains("memory: /leak counted 1 OOM kill(s) under its memory limit (1 in all)")
        );
    }
}
