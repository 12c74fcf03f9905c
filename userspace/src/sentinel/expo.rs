//! The sentinel's `/metrics`: Prometheus text exposition (0.0.4) of the
//! persistent per-unit totals, the open findings and the sentinel's own
//! health. Pure: rendered from values, tested with promtool.
//!
//! Label cardinality is bounded: at most `top_units` units get their own
//! `unit` label, kept for the process's life (see [`Labels`]); all others
//! are counted under `unit="other"`. Histograms are the probe's log2 buckets:
//! `le` is a power of two nanoseconds, in seconds, every fourth bucket
//! from ~1 µs to ~20 h (export's bounds too:
//! [`crate::export::prom::TIME_EDGES_LOG2_NS`]), so each bound is exact (a
//! value in bucket [2^i, 2^(i+1)) is below every `le` ≥ 2^(i+1)). `_sum` is
//! estimated from bucket midpoints.

use std::{
    collections::{BTreeMap, HashSet},
    fmt::Write,
};

use spawnscope_common::Counters;

use crate::{
    detect::FindingKind,
    export::prom::{
        RESPAWN_INTERVAL_HELP, TIME_EDGES_LOG2_NS, build_info, label_escape, time_edge_seconds,
    },
    kernel::ProgStats,
    mempress::HiddenTrend,
    report::{EventCounts, ProbeStats},
};

use super::{
    state::{OTHER_UNIT, State, UnitState},
    track::UnitFinding,
};

/// The sentinel's view of itself, for the health metrics.
#[derive(Debug, Clone, Default)]
pub struct Health {
    pub dropped: EventCounts,
    /// Events whose cgroup found the counters map full.
    pub overflow: Counters,
    pub probe: ProbeStats,
    /// The last poll's duration.
    pub poll_seconds: f64,
    /// The configured time between polls.
    pub poll_interval_seconds: f64,
    /// When the last poll completed (unix time): a stalled poll loop
    /// shows as this standing still while the endpoint still answers.
    pub last_poll_unix: f64,
    pub polls: u64,
    pub rss_bytes: u64,
    /// None when kernel.bpf_stats_enabled is off.
    pub programs: Option<Vec<ProgStats>>,
    pub drills: u64,
    pub alerts: u64,
    pub alerts_suppressed: u64,
    pub state_saves: u64,
    pub state_save_errors: u64,
    pub memory_used_bytes: Option<(u64, u64)>,
    pub memory_warnings: u64,
    /// PID 1s, journalds and journals: what a respawn loop makes grow.
    pub hidden: Vec<HiddenTrend>,
}

fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}");
    let _ = writeln!(o, "# TYPE {name} {kind}");
}

fn secs(ns: f64) -> String {
    let s = format!("{}", ns / 1e9);
    if s == "inf" { "+Inf".into() } else { s }
}

fn histogram(o: &mut String, name: &str, unit: &str, buckets: &[u64]) {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return;
    }
    let l = label_escape(unit);
    let mut below = 0u64;
    let mut i = 0usize;
    for edge in TIME_EDGES_LOG2_NS {
        // Bucket i holds [2^i, 2^(i+1)): all of it is below 2^edge when
        // i < edge.
        while i < buckets.len() && i < edge as usize {
            below += buckets[i];
            i += 1;
        }
        let _ = writeln!(
            o,
            "{name}_bucket{{unit=\"{l}\",le=\"{}\"}} {below}",
            time_edge_seconds(edge)
        );
    }
    let _ = writeln!(o, "{name}_bucket{{unit=\"{l}\",le=\"+Inf\"}} {total}");
    let sum: f64 = buckets
        .iter()
        .enumerate()
        .map(|(i, &n)| n as f64 * 1.5 * (1u64 << i.min(62)) as f64)
        .sum();
    let _ = writeln!(o, "{name}_sum{{unit=\"{l}\"}} {}", secs(sum));
    let _ = writeln!(o, "{name}_count{{unit=\"{l}\"}} {total}");
}

/// `a - b`, field by field, for a total less what of it is shown elsewhere.
fn minus(a: &UnitState, b: &UnitState) -> UnitState {
    let buckets = |a: &[u64], b: &[u64]| -> Vec<u64> {
        a.iter()
            .enumerate()
            .map(|(i, n)| n.saturating_sub(b.get(i).copied().unwrap_or(0)))
            .collect()
    };
    UnitState {
        counts: a.counts.saturating_sub(&b.counts),
        lifetimes: buckets(&a.lifetimes, &b.lifetimes),
        intervals: buckets(&a.intervals, &b.intervals),
        recreations: a.recreations.saturating_sub(b.recreations),
        systemd_restarts: a.systemd_restarts.saturating_sub(b.systemd_restarts),
        last_active_unix: a.last_active_unix,
    }
}

/// `now` continues `before`: no count went down. A unit's entry that the
/// state folded into "other" and created again since starts from zero.
fn continues(before: &UnitState, now: &UnitState) -> bool {
    let buckets = |a: &[u64], b: &[u64]| {
        a.iter()
            .enumerate()
            .all(|(i, n)| b.get(i).copied().unwrap_or(0) >= *n)
    };
    let (n, b) = (&now.counts, &before.counts);
    n.forks >= b.forks
        && n.execs >= b.execs
        && n.exit_clean >= b.exit_clean
        && n.exit_failed >= b.exit_failed
        && n.exit_signaled >= b.exit_signaled
        && n.exit_core >= b.exit_core
        && now.recreations >= before.recreations
        && now.systemd_restarts >= before.systemd_restarts
        && buckets(&before.lifetimes, &now.lifetimes)
        && buckets(&before.intervals, &now.intervals)
}

fn activity(u: &UnitState) -> u64 {
    u.spawns().saturating_add(u.process_exits())
}

/// A unit with its own label.
#[derive(Debug, Default)]
struct Labelled {
    /// Its entries the state folded into "other" since it was labelled:
    /// shown under its label already, so its series goes on from them.
    base: UnitState,
    /// Its state entry at the last render.
    last: UnitState,
}

/// Which units have their own `unit` label, kept from one render to the
/// next for the process's life. Re-ranking at every scrape would make the
/// unit a climber pushes out vanish and land its whole total in
/// `unit="other"` at once, a burst of spawns that never happened in
/// `rate()`. So instead:
/// - at the first render the busiest units get labels, up to `top_units`;
/// - a unit that has a label keeps it, and its series, for good (also
///   when the state folds it into "other": its series then holds still);
/// - a unit first seen while labels are left gets one; one seen once they
///   are all taken goes to `other`, and stays there;
/// - `other` is a counter: the counts of the units in it, from the time
///   they are in it.
///
/// Lowering `top_units` (SIGHUP) is the one way to lose a label: the
/// least busy labelled units lose theirs, their series end, and only what
/// they do from then on counts in `other`.
#[derive(Debug, Default)]
pub struct Labels {
    labelled: BTreeMap<String, Labelled>,
    /// The state's unlabelled units at the last render: in `other`.
    in_other: HashSet<String>,
    /// What `other`'s sum of the state's unlabelled units holds that was
    /// shown under a label: folded or demoted labelled units' counts.
    hidden: UnitState,
    /// `other` was shown once: it is shown from then on.
    other_shown: bool,
}

impl Labels {
    /// Units with their own label (at most `top_units`), then `other`
    /// when it has ever had anything, with the totals to show.
    pub fn assign(&mut self, state: &State, top_units: usize) -> Vec<(String, UnitState)> {
        let units = &state.units;
        let empty = UnitState::default();
        // Entries the state folded away (or made anew) since the last
        // render: what was shown of them stays shown, and is in "other"'s
        // sum now without being other's.
        for (name, l) in &mut self.labelled {
            if !units.get(name).is_some_and(|u| continues(&l.last, u)) {
                let last = std::mem::take(&mut l.last);
                l.base.add(&last);
                self.hidden.add(&last);
            }
        }
        // A lower cap: the least busy lose their labels.
        if self.labelled.len() > top_units {
            let mut rank: Vec<(u64, &String)> = self
                .labelled
                .iter()
                .map(|(n, l)| {
                    let now = units.get(n).unwrap_or(&empty);
                    (activity(&l.base).saturating_add(activity(now)), n)
                })
                .collect();
            rank.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
            let demoted: Vec<String> = rank[top_units..]
                .iter()
                .map(|(_, n)| (*n).clone())
                .collect();
            for n in demoted {
                if let Some(l) = self.labelled.remove(&n) {
                    // Its entry, now in other's sum: what was shown of it
                    // is not other's; what it did since is.
                    self.hidden.add(&l.last);
                    self.in_other.insert(n);
                }
            }
        }
        // Units new since the last render, while labels are left, busiest
        // first.
        let room = top_units.saturating_sub(self.labelled.len());
        if room > 0 {
            let mut new: Vec<(&String, &UnitState)> = units
                .iter()
                .filter(|(n, _)| {
                    n.as_str() != OTHER_UNIT
                        && !self.labelled.contains_key(*n)
                        && !self.in_other.contains(*n)
                })
                .collect();
            new.sort_by(|a, b| activity(b.1).cmp(&activity(a.1)).then_with(|| a.0.cmp(b.0)));
            for (n, _) in new.into_iter().take(room) {
                self.labelled.insert(n.clone(), Labelled::default());
            }
        }

        let mut out = Vec::with_capacity(self.labelled.len() + 1);
        for (name, l) in &mut self.labelled {
            let now = units.get(name).unwrap_or(&empty);
            let mut shown = l.base.clone();
            shown.add(now);
            l.last.clone_from(now);
            out.push((name.clone(), shown));
        }
        let mut sum = UnitState::default();
        let mut any = false;
        self.in_other.retain(|n| units.contains_key(n));
        for (name, u) in units {
            if self.labelled.contains_key(name) {
                continue;
            }
            sum.add(u);
            any = true;
            if name != OTHER_UNIT && !self.in_other.contains(name) {
                self.in_other.insert(name.clone());
            }
        }
        if any || self.other_shown {
            self.other_shown = true;
            out.push((OTHER_UNIT.to_string(), minus(&sum, &self.hidden)));
        }
        out
    }
}

/// One number of a finding, as a gauge.
type FindingValue = fn(&UnitFinding) -> f64;

pub fn render(
    state: &State,
    findings: &[UnitFinding],
    top_units: usize,
    h: &Health,
    labels: &mut Labels,
) -> String {
    let mut o = String::with_capacity(16 << 10);
    let units = labels.assign(state, top_units);
    build_info(&mut o);
    // Findings are labelled by their unit whatever its rank, so their
    // series are bounded apart: the `top_units` first seen are shown, an
    // order a finding keeps while it is open, so a shown finding's alert
    // never resolves while its loop goes on; spawnscope_findings_open
    // counts them all, for the rule that says some are not shown.
    let all_findings = findings;
    let mut shown: Vec<&UnitFinding> = findings.iter().collect();
    shown.sort_by(|a, b| {
        a.first_seen_unix
            .total_cmp(&b.first_seen_unix)
            .then_with(|| a.unit.cmp(&b.unit))
    });
    shown.truncate(top_units);
    let findings = shown;

    family(
        &mut o,
        "spawnscope_spawns_total",
        "counter",
        "Forks and execs per unit since the sentinel's state began (spawnscope_state_since_timestamp_seconds).",
    );
    for (u, s) in &units {
        let l = label_escape(u);
        let _ = writeln!(
            o,
            "spawnscope_spawns_total{{unit=\"{l}\",kind=\"fork\"}} {}",
            s.counts.forks
        );
        let _ = writeln!(
            o,
            "spawnscope_spawns_total{{unit=\"{l}\",kind=\"exec\"}} {}",
            s.counts.execs
        );
    }
    family(
        &mut o,
        "spawnscope_exits_total",
        "counter",
        "Process exits per unit by class since the state began.",
    );
    for (u, s) in &units {
        let l = label_escape(u);
        for (class, n) in [
            ("clean", s.counts.exit_clean),
            ("failed", s.counts.exit_failed),
            ("signaled", s.counts.exit_signaled),
            ("core_dumped", s.counts.exit_core),
        ] {
            let _ = writeln!(
                o,
                "spawnscope_exits_total{{unit=\"{l}\",class=\"{class}\"}} {n}"
            );
        }
    }
    family(
        &mut o,
        "spawnscope_unit_restarts_total",
        "counter",
        "systemd restarts of a unit: systemd's NRestarts when the sentinel first saw the unit, plus every re-creation of its cgroup at the same path since.",
    );
    for (u, s) in &units {
        let _ = writeln!(
            o,
            "spawnscope_unit_restarts_total{{unit=\"{}\"}} {}",
            label_escape(u),
            s.restarts()
        );
    }
    family(
        &mut o,
        "spawnscope_process_lifetime_seconds",
        "histogram",
        "Process lifetime (start to exit) per unit, from the kernel's log2 buckets.",
    );
    for (u, s) in &units {
        histogram(
            &mut o,
            "spawnscope_process_lifetime_seconds",
            u,
            &s.lifetimes,
        );
    }
    family(
        &mut o,
        "spawnscope_respawn_interval_seconds",
        "histogram",
        RESPAWN_INTERVAL_HELP,
    );
    for (u, s) in &units {
        histogram(
            &mut o,
            "spawnscope_respawn_interval_seconds",
            u,
            &s.intervals,
        );
    }

    family(
        &mut o,
        "spawnscope_finding",
        "gauge",
        "1 for each open finding (a respawn loop or a failing periodic job), by severity.",
    );
    for f in &findings {
        let kind = serde_json::to_value(f.kind).unwrap_or_default();
        let sev = serde_json::to_value(f.severity).unwrap_or_default();
        let _ = writeln!(
            o,
            "spawnscope_finding{{unit=\"{}\",kind=\"{}\",severity=\"{}\"}} 1",
            label_escape(&f.unit),
            kind.as_str().unwrap_or(""),
            sev.as_str().unwrap_or("")
        );
    }
    let per_finding: [(&str, &str, FindingValue); 3] = [
        (
            "spawnscope_finding_restarts",
            "Restarts of an open finding's unit since it was first seen (across sentinel restarts).",
            |f| f.restarts as f64,
        ),
        (
            "spawnscope_finding_restarts_per_second",
            "Restart rate of an open finding's unit over the detection window.",
            |f| f.rate_per_min / 60.0,
        ),
        (
            "spawnscope_finding_first_seen_timestamp_seconds",
            "When an open finding was first seen.",
            |f| f.first_seen_unix,
        ),
    ];
    for (name, help, value) in per_finding {
        family(&mut o, name, "gauge", help);
        for f in &findings {
            let _ = writeln!(
                o,
                "{name}{{unit=\"{}\"}} {}",
                label_escape(&f.unit),
                value(f)
            );
        }
    }
    family(
        &mut o,
        "spawnscope_findings_open",
        "gauge",
        "Open findings by kind, each one whether or not it is among the top_units shown with spawnscope_finding.",
    );
    for kind in [FindingKind::RespawnLoop, FindingKind::FailingPeriodicJob] {
        let n = all_findings.iter().filter(|f| f.kind == kind).count();
        let name = serde_json::to_value(kind).unwrap_or_default();
        let _ = writeln!(
            o,
            "spawnscope_findings_open{{kind=\"{}\"}} {n}",
            name.as_str().unwrap_or("")
        );
    }
    family(
        &mut o,
        "spawnscope_oom_kills_total",
        "counter",
        "OOM kills seen since the state began (the state keeps the last 100 in detail).",
    );
    let _ = writeln!(o, "spawnscope_oom_kills_total {}", state.oom_kills_total);
    if let Some((used, total)) = h.memory_used_bytes {
        family(
            &mut o,
            "spawnscope_memory_used_bytes",
            "gauge",
            "System memory used (MemTotal - MemAvailable) at the last sample.",
        );
        let _ = writeln!(o, "spawnscope_memory_used_bytes {used}");
        family(
            &mut o,
            "spawnscope_memory_total_bytes",
            "gauge",
            "System memory (MemTotal).",
        );
        let _ = writeln!(o, "spawnscope_memory_total_bytes {total}");
    }
    family(
        &mut o,
        "spawnscope_hidden_bytes",
        "gauge",
        "Memory a respawn loop makes grow out of sight: PID 1's and journald's resident bytes, the journal's bytes in use; container=\"\" is the host (or a container without a name).",
    );
    let hidden_labels = |h: &HiddenTrend| {
        let what = serde_json::to_value(h.what).unwrap_or_default();
        // The pid keeps two unnamed containers' PID 1s apart.
        format!(
            "what=\"{}\",container=\"{}\",pid=\"{}\"",
            what.as_str().unwrap_or(""),
            label_escape(h.container.as_deref().unwrap_or("")),
            h.pid
        )
    };
    for h in &h.hidden {
        let _ = writeln!(
            o,
            "spawnscope_hidden_bytes{{{}}} {}",
            hidden_labels(h),
            h.bytes
        );
    }
    family(
        &mut o,
        "spawnscope_hidden_growth_bytes_per_second",
        "gauge",
        "Their growth over the last 10 minutes (Theil-Sen), once known.",
    );
    for h in &h.hidden {
        if let Some(g) = h.growth_bytes_per_s {
            let _ = writeln!(
                o,
                "spawnscope_hidden_growth_bytes_per_second{{{}}} {g}",
                hidden_labels(h)
            );
        }
    }
    family(
        &mut o,
        "spawnscope_hidden_bytes_per_restart",
        "gauge",
        "Their growth divided by the restart rate of the respawn loops beside them (same host or container), while both are positive.",
    );
    for h in &h.hidden {
        if let Some(p) = &h.per_restart {
            let _ = writeln!(
                o,
                "spawnscope_hidden_bytes_per_restart{{{}}} {}",
                hidden_labels(h),
                p.bytes_per_restart
            );
        }
    }
    family(
        &mut o,
        "spawnscope_memory_warnings_total",
        "counter",
        "Memory exhaustion warnings raised since the sentinel started.",
    );
    let _ = writeln!(o, "spawnscope_memory_warnings_total {}", h.memory_warnings);

    // Health.
    family(
        &mut o,
        "spawnscope_state_since_timestamp_seconds",
        "gauge",
        "When counting began: the first start without saved state.",
    );
    let _ = writeln!(
        o,
        "spawnscope_state_since_timestamp_seconds {}",
        state.since_unix
    );
    family(
        &mut o,
        "spawnscope_dropped_records_total",
        "counter",
        "Event records lost because the ring buffer was full, by kind, since the sentinel started.",
    );
    for (kind, n) in [
        ("exec", h.dropped.exec),
        ("exit", h.dropped.exit),
        ("fork", h.dropped.fork),
        ("oom", h.dropped.oom),
    ] {
        let _ = writeln!(o, "spawnscope_dropped_records_total{{kind=\"{kind}\"}} {n}");
    }
    family(
        &mut o,
        "spawnscope_map_overflow_events_total",
        "counter",
        "Spawns and exits counted in the overflow slot because the per-cgroup map was full, since the sentinel started.",
    );
    let ov = &h.overflow;
    let _ = writeln!(
        o,
        "spawnscope_map_overflow_events_total {}",
        ov.forks + ov.threads + ov.execs + ov.process_exits() + ov.thread_exits
    );
    family(
        &mut o,
        "spawnscope_probe_errors_total",
        "counter",
        "Probe-side problems by kind since the sentinel started (each still counted its event).",
    );
    for (kind, n) in [
        ("map_full", h.probe.map_full),
        ("read_failed", h.probe.read_failed),
        ("no_layout", h.probe.no_layout),
        ("names_lost", h.probe.names_lost),
        ("lifetimes_full", h.probe.lifetimes_full),
    ] {
        let _ = writeln!(o, "spawnscope_probe_errors_total{{kind=\"{kind}\"}} {n}");
    }
    family(
        &mut o,
        "spawnscope_poll_duration_seconds",
        "gauge",
        "How long the last poll (read, fold, detect, render) took.",
    );
    let _ = writeln!(o, "spawnscope_poll_duration_seconds {}", h.poll_seconds);
    family(
        &mut o,
        "spawnscope_poll_interval_seconds",
        "gauge",
        "The configured time between polls: how stale spawnscope_last_poll_timestamp_seconds may normally be.",
    );
    let _ = writeln!(
        o,
        "spawnscope_poll_interval_seconds {}",
        h.poll_interval_seconds
    );
    family(
        &mut o,
        "spawnscope_last_poll_timestamp_seconds",
        "gauge",
        "When the last poll completed (unix time): a sentinel that still answers but no longer polls stands still here.",
    );
    let _ = writeln!(
        o,
        "spawnscope_last_poll_timestamp_seconds {}",
        h.last_poll_unix
    );
    family(
        &mut o,
        "spawnscope_polls_total",
        "counter",
        "Polls since the sentinel started.",
    );
    let _ = writeln!(o, "spawnscope_polls_total {}", h.polls);
    family(
        &mut o,
        "spawnscope_resident_memory_bytes",
        "gauge",
        "The sentinel's own resident set size.",
    );
    let _ = writeln!(o, "spawnscope_resident_memory_bytes {}", h.rss_bytes);
    family(
        &mut o,
        "spawnscope_tracked_units",
        "gauge",
        "Units in the state (bounded; the least recent are folded into unit=\"other\").",
    );
    let _ = writeln!(o, "spawnscope_tracked_units {}", state.units.len());
    family(
        &mut o,
        "spawnscope_drilldowns_total",
        "counter",
        "Event drill-downs started since the sentinel started.",
    );
    let _ = writeln!(o, "spawnscope_drilldowns_total {}", h.drills);
    family(
        &mut o,
        "spawnscope_alerts_total",
        "counter",
        "Alerts sent since the sentinel started; repeats are suppressed and counted apart.",
    );
    let _ = writeln!(o, "spawnscope_alerts_total {}", h.alerts);
    family(
        &mut o,
        "spawnscope_alerts_suppressed_total",
        "counter",
        "Repeated finding reports not alerted again.",
    );
    let _ = writeln!(
        o,
        "spawnscope_alerts_suppressed_total {}",
        h.alerts_suppressed
    );
    family(
        &mut o,
        "spawnscope_state_saves_total",
        "counter",
        "State saves since the sentinel started, by result.",
    );
    let _ = writeln!(
        o,
        "spawnscope_state_saves_total{{result=\"ok\"}} {}",
        h.state_saves
    );
    let _ = writeln!(
        o,
        "spawnscope_state_saves_total{{result=\"error\"}} {}",
        h.state_save_errors
    );
    family(
        &mut o,
        "spawnscope_bpf_stats_enabled",
        "gauge",
        "1 when kernel.bpf_stats_enabled is on, so that BPF run times are counted.",
    );
    let _ = writeln!(
        o,
        "spawnscope_bpf_stats_enabled {}",
        u8::from(h.programs.is_some())
    );
    if let Some(progs) = &h.programs {
        family(
            &mut o,
            "spawnscope_bpf_run_seconds_total",
            "counter",
            "Time the kernel spent in each spawnscope program while bpf_stats_enabled was on.",
        );
        for p in progs {
            let _ = writeln!(
                o,
                "spawnscope_bpf_run_seconds_total{{program=\"{}\"}} {}",
                p.name,
                secs(p.run_time_ns as f64)
            );
        }
        family(
            &mut o,
            "spawnscope_bpf_runs_total",
            "counter",
            "Runs of each spawnscope program while bpf_stats_enabled was on.",
        );
        for p in progs {
            let _ = writeln!(
                o,
                "spawnscope_bpf_runs_total{{program=\"{}\"}} {}",
                p.name, p.run_count
            );
        }
    }
    o
}
