//! Aligned text for people.

use std::io::{self, Write};

use super::Reporter;
use crate::report::{CgroupRow, CountersOut, IntervalReport, Summary};

pub struct Table<W: Write> {
    out: W,
    /// Rows shown per interval and in the summary's top list.
    top: usize,
}

const PATH_WIDTH: usize = 48;

impl<W: Write> Table<W> {
    pub fn new(out: W, top: usize) -> Self {
        Self { out, top }
    }
}

/// Shortens long paths from the left: the leaf names the unit.
fn fit(path: &str, width: usize) -> String {
    let n = path.chars().count();
    if n <= width {
        return path.to_string();
    }
    let tail: String = path.chars().skip(n - (width - 1)).collect();
    format!("…{tail}")
}

fn label(r: &CgroupRow) -> String {
    match &r.cgroup {
        Some(p) => p.clone(),
        None => format!("cgroup-id:{}", r.cgroup_id),
    }
}

fn counts(c: &CountersOut) -> String {
    format!(
        "{:>8} {:>8} {:>8} {:>8} {:>7} {:>5} {:>8} {:>8}",
        c.forks,
        c.execs,
        c.exit_clean,
        c.exit_failed,
        c.exit_signaled,
        c.exit_core_dumped,
        c.threads,
        c.thread_exits
    )
}

const COUNT_HEADS: &str = "   FORKS    EXECS  EXIT_OK EXIT_ERR  SIGNAL  CORE  THREADS THR_EXIT";

impl<W: Write> Reporter for Table<W> {
    fn interval(&mut self, r: &IntervalReport) -> io::Result<()> {
        writeln!(
            self.out,
            "--- {:.1}s elapsed, interval {:.2}s, {} active cgroup(s)",
            r.elapsed_s,
            r.interval_s,
            r.cgroups.len()
        )?;
        if !r.cgroups.is_empty() {
            writeln!(
                self.out,
                "{:<PATH_WIDTH$} {COUNT_HEADS}   FORK/s   EXEC/s   EXIT/s",
                "CGROUP"
            )?;
        }
        for row in r.cgroups.iter().take(self.top) {
            let rate = row.rate.expect("interval rows carry rates");
            writeln!(
                self.out,
                "{:<PATH_WIDTH$} {} {:>8.1} {:>8.1} {:>8.1}",
                fit(&label(row), PATH_WIDTH),
                counts(&row.total),
                rate.forks_per_s,
                rate.execs_per_s,
                rate.exits_per_s
            )?;
        }
        if r.cgroups.len() > self.top {
            writeln!(
                self.out,
                "  ... and {} more (see --top)",
                r.cgroups.len() - self.top
            )?;
        }
        self.out.flush()
    }

    fn summary(&mut self, s: &Summary) -> io::Result<()> {
        writeln!(self.out)?;
        writeln!(
            self.out,
            "=== summary: {:.1}s, {} cgroup(s) seen",
            s.duration_s,
            s.cgroups.len()
        )?;
        writeln!(self.out, "{:<PATH_WIDTH$} {COUNT_HEADS}", "CGROUP")?;
        writeln!(self.out, "{:<PATH_WIDTH$} {}", "TOTAL", counts(&s.totals))?;
        for row in s.cgroups.iter().take(self.top) {
            writeln!(
                self.out,
                "{:<PATH_WIDTH$} {}",
                fit(&label(row), PATH_WIDTH),
                counts(&row.total)
            )?;
        }
        if s.cgroups.len() > self.top {
            writeln!(
                self.out,
                "  ... and {} more (see --top)",
                s.cgroups.len() - self.top
            )?;
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
                "warning: {} kernel read(s) failed; see README (probe.read_failed)",
                s.probe.read_failed
            )?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ProbeStats, Rates};
    use spawnscope_common::Counters;

    fn out(c: Counters) -> CountersOut {
        (&c).into()
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

    #[test]
    fn interval_and_summary_render_rows_and_warnings() {
        let row = CgroupRow {
            cgroup_id: 42,
            cgroup: None,
            total: out(Counters {
                forks: 3,
                execs: 2,
                exit_failed: 1,
                ..Counters::ZERO
            }),
            interval: Some(out(Counters {
                forks: 1,
                ..Counters::ZERO
            })),
            rate: Some(Rates {
                forks_per_s: 1.0,
                execs_per_s: 0.0,
                exits_per_s: 0.0,
                threads_per_s: 0.0,
            }),
        };
        let mut buf = Vec::new();
        let mut t = Table::new(&mut buf, 10);
        t.interval(&IntervalReport {
            kind: "interval",
            time_unix: 0.0,
            elapsed_s: 1.0,
            interval_s: 1.0,
            cgroups: vec![row.clone()],
            overflow: out(Counters::ZERO),
            probe: ProbeStats::default(),
        })
        .unwrap();
        t.summary(&Summary {
            kind: "summary",
            time_unix: 0.0,
            duration_s: 1.0,
            totals: row.total,
            cgroups: vec![CgroupRow {
                interval: None,
                rate: None,
                ..row
            }],
            overflow: out(Counters::ZERO),
            probe: ProbeStats {
                map_full: 5,
                read_failed: 0,
                no_layout: 0,
            },
            exit_program: "group_dead",
        })
        .unwrap();
        let text = String::from_utf8(buf).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("cgroup-id:42"))
            .unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "cgroup-id:42",
                "3",
                "2",
                "0",
                "1",
                "0",
                "0",
                "0",
                "0",
                "1.0",
                "0.0",
                "0.0"
            ]
        );
        assert!(text.contains("=== summary: 1.0s, 1 cgroup(s) seen"));
        assert!(text.contains("warning: 5 event(s) found the cgroup map full"));
    }
}
