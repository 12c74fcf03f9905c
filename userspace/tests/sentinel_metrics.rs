//! The sentinel's `/metrics` text, rendered from a fixture state without
//! root: promtool accepts it, unit labels are bounded to the top N plus
//! "other" with nothing lost, labels hold from one scrape to the next
//! while units change rank, and histogram buckets are exact.

mod common;

use common::{have, promtool_check};
use spawnscope::{
    kernel::ProgStats,
    mempress::{HiddenKind, HiddenTrend, PerRestart},
    sentinel::{
        expo::{Health, Labels, render},
        state::{OTHER_UNIT, State, UnitState},
        track::{TrackConfig, Tracker},
    },
};
use spawnscope_common::{Counters, Lifetimes};
use std::collections::{BTreeMap, BTreeSet};

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
        last_poll_unix: T0 + 61.5,
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
    let text = render(&state, &findings, 50, &health(), &mut Labels::default());
    let (ok, said) = promtool_check(text.as_bytes());
    assert!(ok && said.trim().is_empty(), "promtool: {said}\n{text}");
}

#[test]
fn unit_labels_are_the_top_n_plus_other_and_nothing_is_lost() {
    let (state, findings) = fixture();
    let text = render(&state, &findings, 50, &health(), &mut Labels::default());
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
    // The loop is a gauge even though its unit's counters went to other;
    // seen for 40 s, it is medium.
    assert_eq!(
        samples(&text, "spawnscope_finding"),
        [
            "spawnscope_finding{unit=\"serial-getty@ttyS0.service\",kind=\"respawn_loop\",severity=\"medium\"} 1"
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
    let text = render(&state, &findings, 100, &health(), &mut Labels::default());
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
    assert!(text.contains(
        "# TYPE spawnscope_last_poll_timestamp_seconds gauge\nspawnscope_last_poll_timestamp_seconds 1768294861.5\n"
    ));
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

/// Samples by their full name with labels.
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// The per-unit families: every sample of them is a counter (histogram
/// buckets, sums and counts included).
const PER_UNIT: [&str; 5] = [
    "spawnscope_spawns_total",
    "spawnscope_exits_total",
    "spawnscope_unit_restarts_total",
    "spawnscope_process_lifetime_seconds",
    "spawnscope_respawn_interval_seconds",
];

/// Units with their own label in a scrape.
fn labelled(m: &BTreeMap<String, f64>) -> BTreeSet<String> {
    m.keys()
        .filter_map(|k| k.strip_prefix("spawnscope_spawns_total{unit=\""))
        .map(|r| r.split('"').next().unwrap().to_string())
        .filter(|u| u != OTHER_UNIT)
        .collect()
}

/// One round's activity of a unit: `n` forks, execs, failed exits, lifetimes
/// (~5 µs) and restarts.
fn activity(n: u64, t: f64) -> UnitState {
    let mut lifetimes = vec![0; 13];
    lifetimes[12] = n;
    let mut intervals = vec![0; 34];
    intervals[33] = n;
    UnitState {
        counts: Counters {
            forks: n,
            execs: n,
            exit_failed: n,
            ..Counters::ZERO
        },
        lifetimes,
        intervals,
        recreations: n,
        systemd_restarts: 0,
        last_active_unix: t,
    }
}

/// Rounds of a sentinel's life, each a set of units' activity, then
/// (optionally) a new `top_units`: as the state takes in each round (and
/// folds its least recent units once past its bound), the exposition
/// rendered after it keeps every series of the one before, no counter
/// goes down, and `other` grows by exactly what the units in it did.
fn check_rounds(rounds: &[(Vec<(String, u64)>, usize)]) -> Vec<BTreeMap<String, f64>> {
    let mut state = State::fresh(T0);
    let mut labels = Labels::default();
    let mut scrapes: Vec<BTreeMap<String, f64>> = Vec::new();
    let mut top_before = usize::MAX;
    for (i, (acts, top)) in rounds.iter().enumerate() {
        let t = T0 + i as f64 * 60.0;
        for (u, n) in acts {
            state
                .units
                .entry(u.clone())
                .or_default()
                .add(&activity(*n, t));
        }
        state.bound_units();
        let m = parse(&render(&state, &[], *top, &health(), &mut labels));
        let own = labelled(&m);
        assert!(own.len() <= *top, "round {i}: {own:?} over the cap {top}");
        if let Some(prev) = scrapes.last() {
            for (k, v) in prev {
                if !PER_UNIT.iter().any(|f| k.starts_with(f)) {
                    continue;
                }
                let lowered = *top < top_before;
                let unit_gone = k
                    .split("unit=\"")
                    .nth(1)
                    .map(|r| r.split('"').next().unwrap())
                    .is_some_and(|u| u != OTHER_UNIT && !own.contains(u));
                // Lowering top_units is the one way a unit loses its
                // label.
                if lowered && unit_gone {
                    continue;
                }
                let now = m
                    .get(k)
                    .unwrap_or_else(|| panic!("round {i}: {k} vanished; labelled now: {own:?}"));
                assert!(now >= v, "round {i}: {k} went down from {v} to {now}");
            }
            // What the units without a label of their own did this round.
            let in_other: u64 = acts
                .iter()
                .filter(|(u, _)| !own.contains(u))
                .map(|(_, n)| n)
                .sum();
            for key in [
                "spawnscope_spawns_total{unit=\"other\",kind=\"exec\"}",
                "spawnscope_spawns_total{unit=\"other\",kind=\"fork\"}",
                "spawnscope_exits_total{unit=\"other\",class=\"failed\"}",
                "spawnscope_unit_restarts_total{unit=\"other\"}",
                "spawnscope_process_lifetime_seconds_count{unit=\"other\"}",
                "spawnscope_respawn_interval_seconds_count{unit=\"other\"}",
            ] {
                let before = prev.get(key).copied().unwrap_or(0.0);
                let now = m.get(key).copied().unwrap_or(0.0);
                assert_eq!(
                    now - before,
                    in_other as f64,
                    "round {i}: {key} rose by what the units in other did ({own:?} labelled)"
                );
            }
        }
        top_before = *top;
        scrapes.push(m);
    }
    scrapes
}

fn round(acts: &[(&str, u64)], top: usize) -> (Vec<(String, u64)>, usize) {
    (acts.iter().map(|(u, n)| (u.to_string(), *n)).collect(), top)
}

#[test]
fn labels_hold_while_units_climb_and_fall_in_rank() {
    let scrapes = check_rounds(&[
        // Three units, room for four: all labelled, no other yet.
        round(
            &[("a.service", 100), ("b.service", 50), ("c.service", 20)],
            4,
        ),
        // Two new ones for the one label left: the busier gets it.
        round(&[("d.service", 1), ("e.service", 30)], 4),
        // d climbs past everyone; re-ranking would push c (idle) out.
        round(&[("d.service", 500), ("a.service", 1)], 4),
        round(&[("d.service", 5000), ("f.service", 7)], 4),
        // b falls idle, c wakes a little.
        round(&[("d.service", 10), ("c.service", 2)], 4),
    ]);
    let last = scrapes.last().unwrap();
    let own = labelled(last);
    assert_eq!(
        own,
        ["a", "b", "c", "e"]
            .map(|u| format!("{u}.service"))
            .into_iter()
            .collect(),
        "the first labels, for good"
    );
    // d and f never had a label: their totals are other's.
    assert_eq!(
        last["spawnscope_spawns_total{unit=\"other\",kind=\"exec\"}"],
        (1 + 500 + 5000 + 7 + 10) as f64
    );
    assert_eq!(
        last["spawnscope_spawns_total{unit=\"c.service\",kind=\"exec\"}"],
        22.0
    );
}

#[test]
fn labels_hold_when_the_state_folds_units_away() {
    // Past its bound the state folds its least recent units into its own
    // "other": a labelled one among them keeps its series, and other does
    // not take its total; when it is active again its series goes on.
    let many: Vec<(String, u64)> = (0..1100).map(|i| (format!("t{i:04}.service"), 1)).collect();
    let with = |extra: &[(&str, u64)]| {
        let mut v = many.clone();
        v.extend(extra.iter().map(|(u, n)| (u.to_string(), *n)));
        v
    };
    let scrapes = check_rounds(&[
        round(&[("a.service", 100), ("old.service", 40)], 3),
        // 1100 transient units at once: one gets the last label; the
        // state folds the least recent, the two labelled units (idle
        // since the first round) first.
        (with(&[]), 3),
        round(&[("old.service", 3), ("a.service", 1)], 3),
        round(&[("t0000.service", 5), ("t0500.service", 5)], 3),
    ]);
    let last = scrapes.last().unwrap();
    assert_eq!(
        last["spawnscope_spawns_total{unit=\"old.service\",kind=\"exec\"}"], 43.0,
        "its folded total, then its new activity"
    );
    assert_eq!(labelled(last).len(), 3);
}

#[test]
fn a_lower_top_units_drops_labels_without_a_jump_in_other() {
    let scrapes = check_rounds(&[
        round(
            &[("a.service", 100), ("b.service", 50), ("c.service", 20)],
            3,
        ),
        round(&[("a.service", 1), ("b.service", 2), ("c.service", 3)], 3),
        // SIGHUP with top_units = 1: b and c lose their labels; only
        // what they do from now on is other's.
        round(&[("a.service", 1), ("b.service", 4), ("c.service", 5)], 1),
        round(&[("b.service", 6), ("x.service", 7)], 1),
        // Room again: a new unit gets a label, b and c stay in other.
        round(&[("b.service", 1), ("y.service", 2)], 2),
    ]);
    let last = scrapes.last().unwrap();
    assert_eq!(
        labelled(last),
        ["a.service", "y.service"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert_eq!(
        last["spawnscope_spawns_total{unit=\"other\",kind=\"exec\"}"],
        (4 + 5 + 6 + 7 + 1) as f64
    );
}

/// The restart rate is in base units (per second), and the build is named.
#[test]
fn restart_rate_is_per_second_and_the_build_is_named() {
    let (state, findings) = fixture();
    let text = render(&state, &findings, 50, &health(), &mut Labels::default());
    let want = findings[0].rate_per_min / 60.0;
    assert!(want > 0.0);
    assert_eq!(
        samples(&text, "spawnscope_finding_restarts_per_second"),
        [format!(
            "spawnscope_finding_restarts_per_second{{unit=\"serial-getty@ttyS0.service\"}} {want}"
        )]
    );
    assert!(!text.contains("per_minute"));
    assert_eq!(
        samples(&text, "spawnscope_build_info"),
        [format!(
            "spawnscope_build_info{{version=\"{}\",arch=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH
        )]
    );
}

/// The `le` bounds of a family's buckets, in order.
fn les(text: &str, family: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in samples(text, &format!("{family}_bucket")) {
        let le = l.split("le=\"").nth(1).unwrap().split('"').next().unwrap();
        if !out.iter().any(|x| x == le) {
            out.push(le.to_string());
        }
    }
    out
}

/// One query reads the sentinel's and export's time histograms alike: the
/// same families with the same bounds, export's from a recording whose
/// unit starts three times in new cgroups and whose processes exit.
#[test]
fn sentinel_and_export_share_the_time_buckets() {
    let (state, findings) = fixture();
    let sentinel = render(&state, &findings, 100, &health(), &mut Labels::default());
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("restarts.jsonl");
    let mut text =
        String::from("{\"type\":\"header\",\"format\":\"spawnscope-record\",\"version\":1}\n");
    for (i, id) in [100u64, 104, 109].into_iter().enumerate() {
        let ts = (10 + 7 * i as u64) * 1_000_000_000;
        text += &format!(
            "{{\"type\":\"exec\",\"ts_ns\":{ts},\"pid\":{id},\"cgroup_id\":{id},\"cgroup\":\"/system.slice/flaky.service\",\"unit\":\"flaky.service\",\"container\":null,\"filename\":\"/bin/false\",\"argv\":[\"false\"]}}\n\
             {{\"type\":\"exit\",\"ts_ns\":{},\"pid\":{id},\"unit\":\"flaky.service\",\"container\":null,\"comm\":\"false\",\"code\":1,\"lifetime_ns\":5000000}}\n",
            ts + 5_000_000
        );
    }
    std::fs::write(&recording, text).unwrap();
    let export = spawnscope::export::prom::render(
        &spawnscope::export::Data::from_recording(&recording).unwrap(),
    );
    assert!(
        export.contains("spawnscope_respawn_interval_seconds_count{unit=\"flaky.service\"} 2\n"),
        "{export}"
    );
    for family in [
        "spawnscope_process_lifetime_seconds",
        "spawnscope_respawn_interval_seconds",
    ] {
        let s = les(&sentinel, family);
        assert_eq!(s.len(), 11, "{family}: {s:?}");
        assert_eq!(s.last().map(String::as_str), Some("+Inf"));
        assert_eq!(s, les(&export, family), "{family}");
    }
}

/// Findings are labelled by unit whatever its rank, so they are bounded
/// apart: at most `top_units` of them are shown, the first seen first (an
/// order that holds while they are open, however they escalate), and
/// spawnscope_findings_open counts them all.
#[test]
fn findings_shown_are_bounded_by_top_units_and_all_are_counted() {
    let mut t = Tracker::new(TrackConfig::default(), State::fresh(T0));
    // b is first seen, then c, then a, which restarts the most.
    for (u, n, offset) in [
        ("a.service", 9u64, 3u64),
        ("b.service", 5, 1),
        ("c.service", 6, 2),
    ] {
        for i in 0..n {
            let at = i * 10 + offset;
            t.creation(u, at * 1_000_000_000, T0 + at as f64);
            t.interval(
                T0 + at as f64 + 1.0,
                [(
                    u.to_string(),
                    Counters {
                        execs: 1,
                        exit_failed: 1,
                        ..Counters::ZERO
                    },
                    None,
                )],
            );
        }
    }
    let findings = t.findings();
    assert_eq!(findings.len(), 3, "{findings:?}");
    let text = render(&t.state, &findings, 2, &health(), &mut Labels::default());
    let shown: Vec<&str> = samples(&text, "spawnscope_finding_restarts")
        .into_iter()
        .map(|l| l.split('"').nth(1).unwrap())
        .collect();
    assert_eq!(shown, ["b.service", "c.service"], "{text}");
    assert_eq!(samples(&text, "spawnscope_finding").len(), 2);
    assert_eq!(
        samples(&text, "spawnscope_findings_open"),
        [
            "spawnscope_findings_open{kind=\"respawn_loop\"} 3",
            "spawnscope_findings_open{kind=\"failing_periodic_job\"} 0"
        ]
    );
}

/// The shipped Grafana dashboard: every panel queries Prometheus, only the
/// variables it declares (and Grafana's own) occur, and every metric it
/// names is one the sentinel serves. (The end-to-end test sends each
/// query to a real Prometheus scraping real sentinels.)
#[test]
fn the_dashboard_queries_only_served_metrics_and_declared_variables() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/spawnscope.dashboard.json");
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let (state, findings) = fixture();
    let text = render(&state, &findings, 50, &health(), &mut Labels::default());
    let served: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["instance"]);
    let panels = d["panels"].as_array().unwrap();
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for want in [
        "Spawn rate by unit",
        "Open findings",
        "Restarts",
        "Process lifetime",
        "Respawn interval",
        "Memory forecast",
        "Memory warnings and OOM kills",
        "Sentinel health",
    ] {
        assert!(titles.contains(&want), "no {want} panel: {titles:?}");
    }
    for p in panels {
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", p["title"]);
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}");
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            for v in expr.split('$').skip(1) {
                let v: String = v
                    .trim_start_matches('{')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    v == "instance" || v == "__rate_interval",
                    "undeclared ${v} in {expr}"
                );
            }
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr}");
            for n in names {
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| n.strip_suffix(s))
                    .filter(|f| served.contains(f))
                    .unwrap_or(&n);
                assert!(
                    served.contains(family) || family == "up",
                    "{n} in {expr} is not served"
                );
            }
        }
    }
}

/// The metric names in a PromQL expression: `spawnscope_…` words, and `up`
/// where it selects series.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        if word(b[i]) && (i == 0 || !word(b[i - 1])) {
            let start = i;
            while i < b.len() && word(b[i]) {
                i += 1;
            }
            let w = &expr[start..i];
            if w.starts_with("spawnscope_") || (w == "up" && b.get(i) == Some(&b'{')) {
                out.push(w.to_string());
            }
        } else {
            i += 1;
        }
    }
    out
}
