//! The sentinel's `/metrics` text, rendered from a fixture state without
//! root: promtool accepts it, unit labels are bounded to the top N plus
//! "other" with nothing lost, and histogram buckets are exact.

mod common;

use common::{have, promtool_check};
use spawnscope::{
    kernel::ProgStats,
    mempress::{HiddenKind, HiddenTrend, PerRestart},
    sentinel::{
        expo::{Health, render},
        state::{State, UnitState},
        track::{TrackConfig, Tracker},
    },
};
use spawnscope_common::{Counters, Lifetimes};

const T0: f64 = 1_768_294_800.0;

/// 60 units of decreasing activity, one in a restart loop, one with an
/// awkward name.
fn fixture() -> (State, Vec<spawnscope::sentinel::track::UnitFinding>) {
    let mut t = Tracker::new(TrackConfig::default(), State::fresh(T0));
    let getty = "serial-getty@ttyS0.service";
    for i in 0..5u64 {
        t.creation(getty, i * 10_000_000_000, T0 + (i * 10) as f64);
        let mut l = Lifetimes::ZERO;
        l.buckets[33] = 1; // ~10 s
        l.buckets[12] = 1; // ~5 µs
        let c = Counters {
            forks: 1,
            execs: 1,
            exit_failed: 1,
            exit_clean: 1,
            ..Counters::ZERO
        };
        t.interval(
            T0 + (i * 10) as f64 + 1.0,
            [(getty.to_string(), c, Some(l))],
        );
    }
    for i in 0..60u64 {
        let name = if i == 7 {
            "weird\"name\\with\nnewline.service".to_string()
        } else {
            format!("u{i:02}.service")
        };
        let c = Counters {
            forks: 100 - i,
            execs: 100 - i,
            exit_clean: 100 - i,
            ..Counters::ZERO
        };
        t.interval(T0 + 60.0, [(name, c, None)]);
    }
    let findings = t.findings();
    assert_eq!(findings.len(), 1, "the loop is open");
    (t.state, findings)
}

fn health() -> Health {
    Health {
        poll_seconds: 0.0012,
        polls: 12,
        rss_bytes: 7 << 20,
        programs: Some(vec![ProgStats {
            name: "sched_process_exec",
            run_time_ns: 123_456,
            run_count: 1000,
        }]),
        memory_used_bytes: Some((1 << 30, 8 << 30)),
        hidden: vec![
            HiddenTrend {
                what: HiddenKind::Journald,
                pid: 31,
                comm: "systemd-journal".into(),
                cgroup: Some("/system.slice/systemd-journald.service".into()),
                container: None,
                bytes: 40 << 20,
                disk_bytes: None,
                growth_bytes_per_s: Some(1536.0),
                per_restart: Some(PerRestart {
                    loops: vec!["serial-getty@ttyS0.service".into()],
                    restarts_per_s: 0.1,
                    bytes_per_restart: 15360.0,
                }),
            },
            HiddenTrend {
                what: HiddenKind::Pid1,
                pid: 1,
                comm: "systemd".into(),
                cgroup: Some("/init.scope".into()),
                container: None,
                bytes: 12 << 20,
                disk_bytes: None,
                growth_bytes_per_s: None,
                per_restart: None,
            },
        ],
        ..Health::default()
    }
}

fn samples<'a>(text: &'a str, metric: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']))
        .collect()
}

#[test]
fn promtool_accepts_the_sentinel_exposition() {
    if !have("promtool", "--version") {
        return;
    }
    let (state, findings) = fixture();
    let text = render(&state, &findings, 50, &health());
    let (ok, said) = promtool_check(text.as_bytes());
    assert!(ok && said.trim().is_empty(), "promtool: {said}\n{text}");
}

#[test]
fn unit_labels_are_the_top_n_plus_other_and_nothing_is_lost() {
    let (state, findings) = fixture();
    let text = render(&state, &findings, 50, &health());
    let execs = samples(&text, "spawnscope_spawns_total")
        .into_iter()
        .filter(|l| l.contains("kind=\"exec\""))
        .collect::<Vec<_>>();
    assert_eq!(execs.len(), 51, "50 units and other:\n{}", execs.join("\n"));
    assert!(
        execs
            .iter()
            .any(|l| l.starts_with("spawnscope_spawns_total{unit=\"other\","))
    );
    // The busiest (u00, 100 execs) has its own label; the 10 least busy
    // (u50..u59) are summed under other, with the loop's unit (5 execs).
    assert!(execs.contains(&"spawnscope_spawns_total{unit=\"u00.service\",kind=\"exec\"} 100"));
    let other: u64 = (50..60).map(|i| 100 - i).sum::<u64>() + 5;
    assert!(
        execs.contains(
            &format!("spawnscope_spawns_total{{unit=\"other\",kind=\"exec\"}} {other}").as_str()
        ),
        "{}",
        execs.join("\n")
    );
    let sum: u64 = execs
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    let all: u64 = state
        .units
        .values()
        .map(|u: &UnitState| u.counts.execs)
        .sum();
    assert_eq!(sum, all);
    assert!(
        text.contains("unit=\"weird\\\"name\\\\with\\nnewline.service\""),
        "escaped label"
    );
    // The loop is a gauge even though its unit's counters went to other.
    assert_eq!(
        samples(&text, "spawnscope_finding"),
        [
            "spawnscope_finding{unit=\"serial-getty@ttyS0.service\",kind=\"respawn_loop\",severity=\"high\"} 1"
        ]
    );
    assert_eq!(
        samples(&text, "spawnscope_finding_restarts"),
        ["spawnscope_finding_restarts{unit=\"serial-getty@ttyS0.service\"} 4"]
    );
}

#[test]
fn lifetime_buckets_are_exact_powers_of_two() {
    let (state, findings) = fixture();
    // Top 60: the loop's unit keeps its own label.
    let text = render(&state, &findings, 100, &health());
    let b = |le: &str| {
        let key = format!(
            "spawnscope_process_lifetime_seconds_bucket{{unit=\"serial-getty@ttyS0.service\",le=\"{le}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .unwrap_or_else(|| panic!("no {key}"))
            .parse::<u64>()
            .unwrap()
    };
    // 5 lifetimes in [2^12, 2^13) ns and 5 in [2^33, 2^34) ns.
    assert_eq!(b("0.000001024"), 0, "le 2^10 ns");
    assert_eq!(b("0.000016384"), 5, "le 2^14 ns holds [2^12, 2^13)");
    assert_eq!(b("0.004194304"), 5, "le 2^22");
    assert_eq!(b("17.179869184"), 10, "le 2^34 holds [2^33, 2^34)");
    assert_eq!(b("+Inf"), 10);
    assert!(text.contains(
        "spawnscope_respawn_interval_seconds_count{unit=\"serial-getty@ttyS0.service\"} 4"
    ));
    assert!(text.contains("spawnscope_bpf_runs_total{program=\"sched_process_exec\"} 1000"));
    assert!(text.contains("spawnscope_resident_memory_bytes 7340032"));
    // journald beside the loop: its growth per restart; PID 1 has no
    // growth yet, so only its size.
    assert!(text.contains(
        "spawnscope_hidden_bytes_per_restart{what=\"journald\",container=\"\",pid=\"31\"} 15360\n"
    ));
    assert!(
        text.contains("spawnscope_hidden_bytes{what=\"pid1\",container=\"\",pid=\"1\"} 12582912\n")
    );
    assert!(!text.contains("spawnscope_hidden_growth_bytes_per_second{what=\"pid1\""));
}
