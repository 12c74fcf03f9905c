//! Prometheus text exposition (format 0.0.4): one histogram family per
//! measure with `_bucket{le=...}`, `_sum` and `_count`, and counters of
//! spawns and exits by class, all labelled by unit. Bucket counts are read
//! off the HdrHistogram at its precision (3 significant figures): a value
//! counts below `le` when its bucket's highest equivalent value does.
//!
//! The time histograms share their names, meanings and `le` bounds
//! ([`TIME_EDGES_LOG2_NS`]) with the sentinel's `/metrics`, so one query
//! or dashboard panel reads both.

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::{Data, Measure};

pub const FILE_NAME: &str = "spawnscope.prom";

pub struct Prom;

impl super::Exporter for Prom {
    fn files(&self, data: &Data) -> Vec<(&'static str, Vec<u8>)> {
        vec![(FILE_NAME, render(data).into_bytes())]
    }
}

/// Escapes a label value as the exposition format requires.
pub fn label_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The `le` bound of every time histogram spawnscope exposes, the
/// sentinel's and export's alike, as a power of two nanoseconds: every
/// fourth, from 2^10 (~1 µs) to 2^46 (~19.5 h). They are edges of the
/// probe's log2 buckets, so the sentinel's kernel-side histograms are
/// exact at each; sixteen-fold steps keep a unit's series few.
pub const TIME_EDGES_LOG2_NS: [u32; 10] = [10, 14, 18, 22, 26, 30, 34, 38, 42, 46];

/// A time bound of [`TIME_EDGES_LOG2_NS`], in seconds.
pub fn time_edge_seconds(log2_ns: u32) -> f64 {
    (1u64 << log2_ns) as f64 / 1e9
}

/// What `spawnscope_respawn_interval_seconds` measures, in the sentinel's
/// exposition and export's alike.
pub const RESPAWN_INTERVAL_HELP: &str =
    "Time between two starts of a unit (each a new cgroup of its own: a systemd restart).";

/// The version and build of this spawnscope, as the conventional
/// `_build_info` gauge: its labels, for a `* on (instance) group_left`.
pub fn build_info(o: &mut String) {
    let _ = writeln!(
        o,
        "# HELP spawnscope_build_info The spawnscope that wrote these metrics: version and architecture."
    );
    let _ = writeln!(o, "# TYPE spawnscope_build_info gauge");
    let _ = writeln!(
        o,
        "spawnscope_build_info{{version=\"{}\",arch=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    );
}

struct Family {
    name: &'static str,
    help: &'static str,
    /// Native value per exported unit (1e9: ns to s).
    scale: f64,
    /// Upper bounds, in exported units.
    bounds: Vec<f64>,
}

fn family(m: Measure) -> Family {
    let time = || TIME_EDGES_LOG2_NS.map(time_edge_seconds).to_vec();
    match m {
        Measure::LifetimeNs => Family {
            name: "spawnscope_process_lifetime_seconds",
            help: "Process lifetime (exec or fork to exit) per unit.",
            scale: 1e9,
            bounds: time(),
        },
        Measure::RespawnIntervalNs => Family {
            name: "spawnscope_respawn_interval_seconds",
            help: RESPAWN_INTERVAL_HELP,
            scale: 1e9,
            bounds: time(),
        },
        Measure::ExecIntervalNs => Family {
            name: "spawnscope_exec_interval_seconds",
            help: "Time between two execs of the same executable in a unit.",
            scale: 1e9,
            bounds: time(),
        },
        Measure::ExecRateMilliPerS => Family {
            name: "spawnscope_interval_execs_per_second",
            help: "Execs per second in each trace interval in which the unit was active.",
            scale: 1e3,
            bounds: vec![0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0],
        },
    }
}

fn count_le(h: &Histogram<u64>, bound_native: f64) -> u64 {
    h.iter_recorded()
        .take_while(|v| v.value_iterated_to() as f64 <= bound_native)
        .map(|v| v.count_at_value())
        .sum()
}

fn num(x: f64) -> String {
    // Shortest round-trip form; integers without a fraction.
    let s = format!("{x}");
    if s == "inf" { "+Inf".into() } else { s }
}

pub fn render(data: &Data) -> String {
    let mut o = String::new();
    build_info(&mut o);
    for m in Measure::ALL {
        let f = family(m);
        let _ = writeln!(o, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(o, "# TYPE {} histogram", f.name);
        for (label, u) in &data.units {
            let h = &u.hists[&m];
            if h.is_empty() {
                continue;
            }
            let l = label_escape(label);
            for b in &f.bounds {
                let _ = writeln!(
                    o,
                    "{}_bucket{{unit=\"{l}\",le=\"{}\"}} {}",
                    f.name,
                    num(*b),
                    count_le(h, b * f.scale)
                );
            }
            let _ = writeln!(
                o,
                "{}_bucket{{unit=\"{l}\",le=\"+Inf\"}} {}",
                f.name,
                h.len()
            );
            let sum: f64 = h
                .iter_recorded()
                .map(|v| {
                    h.median_equivalent(v.value_iterated_to()) as f64 * v.count_at_value() as f64
                })
                .sum::<f64>()
                / f.scale;
            let _ = writeln!(o, "{}_sum{{unit=\"{l}\"}} {}", f.name, num(sum));
            let _ = writeln!(o, "{}_count{{unit=\"{l}\"}} {}", f.name, h.len());
        }
    }
    if let Some((_, used, total)) = data.memory.last() {
        let _ = writeln!(
            o,
            "# HELP spawnscope_memory_used_bytes System memory used (MemTotal - MemAvailable) at the recording's last interval."
        );
        let _ = writeln!(o, "# TYPE spawnscope_memory_used_bytes gauge");
        let _ = writeln!(o, "spawnscope_memory_used_bytes {used}");
        let _ = writeln!(
            o,
            "# HELP spawnscope_memory_total_bytes System memory (MemTotal)."
        );
        let _ = writeln!(o, "# TYPE spawnscope_memory_total_bytes gauge");
        let _ = writeln!(o, "spawnscope_memory_total_bytes {total}");
    }
    let _ = writeln!(
        o,
        "# HELP spawnscope_spawns_total Forks and execs per unit over the recording (the kernel's counts)."
    );
    let _ = writeln!(o, "# TYPE spawnscope_spawns_total counter");
    for (label, u) in &data.units {
        if let Some(t) = &u.totals {
            let l = label_escape(label);
            let _ = writeln!(
                o,
                "spawnscope_spawns_total{{unit=\"{l}\",kind=\"fork\"}} {}",
                t.forks
            );
            let _ = writeln!(
                o,
                "spawnscope_spawns_total{{unit=\"{l}\",kind=\"exec\"}} {}",
                t.execs
            );
        }
    }
    let _ = writeln!(
        o,
        "# HELP spawnscope_exits_total Process exits per unit and class over the recording \
         (the kernel's counts, else the exit records')."
    );
    let _ = writeln!(o, "# TYPE spawnscope_exits_total counter");
    for (label, u) in &data.units {
        let e = u.totals.unwrap_or(u.exits);
        let l = label_escape(label);
        for (class, n) in [
            ("clean", e.exit_clean),
            ("failed", e.exit_failed),
            ("signaled", e.exit_signaled),
            ("core_dumped", e.exit_core),
        ] {
            let _ = writeln!(
                o,
                "spawnscope_exits_total{{unit=\"{l}\",class=\"{class}\"}} {n}"
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::tests::fixture;

    #[test]
    fn buckets_are_cumulative_and_end_at_the_count() {
        let d = Data::from_recording(&fixture()).unwrap();
        let text = render(&d);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("spawnscope_process_lifetime_seconds_bucket{unit=\"/\""))
            .collect();
        let counts: Vec<u64> = lines
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        assert_eq!(*counts.last().unwrap(), 46);
        assert!(lines.last().unwrap().contains("le=\"+Inf\""));
        assert!(text.contains("spawnscope_process_lifetime_seconds_count{unit=\"/\"} 46\n"));
        assert!(text.contains("spawnscope_exits_total{unit=\"/\",class=\"failed\"} 6\n"));
        assert!(text.contains("spawnscope_spawns_total{unit=\"/\",kind=\"exec\"} 43\n"));
    }

    #[test]
    fn memory_gauges_come_from_the_last_sample() {
        let mut d = Data::from_recording(&fixture()).unwrap();
        assert!(
            !render(&d).contains("spawnscope_memory"),
            "no samples, no gauges"
        );
        d.memory = vec![(1.0, 100, 1000), (2.0, 150, 1000)];
        let t = render(&d);
        assert!(t.contains("\nspawnscope_memory_used_bytes 150\n"), "{t}");
        assert!(t.contains("\nspawnscope_memory_total_bytes 1000\n"), "{t}");
    }

    /// The sentinel's and export's time histograms have one set of bounds.
    #[test]
    fn time_bounds_are_the_log2_edges() {
        let d = Data::from_recording(&fixture()).unwrap();
        let text = render(&d);
        let les: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("spawnscope_process_lifetime_seconds_bucket{unit=\"/\""))
            .map(|l| l.split("le=\"").nth(1).unwrap().split('"').next().unwrap())
            .collect();
        assert_eq!(
            les,
            [
                "0.000001024",
                "0.000016384",
                "0.000262144",
                "0.004194304",
                "0.067108864",
                "1.073741824",
                "17.179869184",
                "274.877906944",
                "4398.046511104",
                "70368.744177664",
                "+Inf"
            ]
        );
        assert!(text.contains(&format!(
            "\nspawnscope_build_info{{version=\"{}\",arch=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH
        )));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
