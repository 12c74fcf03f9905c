//! Counter-mode accounting and loop detection for the sentinel: pure code
//! over per-interval deltas, so it is tested on fixtures without root.
//!
//! The kernel's per-cgroup counters are folded into per-unit running
//! totals (the persistent [`State`]). Loops are found from counts alone:
//! a unit whose cgroup was created again (a systemd restart) at least
//! [`TrackConfig::min_restarts`] times, with as many abnormal exits, within
//! the window is a loop. A unit with failing exits and execs but no new
//! cgroup (a supervisor inside one cgroup, or a script whose commands just
//! fail) is only a *candidate*: the sentinel drills into its events, and
//! the finding opens when the event detector confirms the loop.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::Serialize;
use spawnscope_common::{Counters, Lifetimes, lifetime_bucket};

use super::state::{FindingState, State, UnitState};
use crate::clock::date;
use crate::detect::{
    FindingKind, FindingSource, LoopState, Prior, Severity, severity_for, thousands,
};

#[derive(Debug, Clone, Copy)]
pub struct TrackConfig {
    /// How far back restarts are counted.
    pub window_s: f64,
    /// A loop is reported at this many restarts, with as many deaths.
    pub min_restarts: u64,
    /// Restarts further apart (on average) make a failing periodic job.
    pub periodic_after_s: f64,
    /// A loop is closed after no restart for 3 mean intervals, or this,
    /// whichever is longer.
    pub stop_min_s: f64,
    /// A candidate the drill-down did not confirm is not drilled again
    /// for this long.
    pub reject_for_s: f64,
}

impl Default for TrackConfig {
    fn default() -> Self {
        Self {
            window_s: 600.0,
            min_restarts: 3,
            periodic_after_s: 60.0,
            stop_min_s: 60.0,
            reject_for_s: 600.0,
        }
    }
}

/// One interval's counts of one unit.
#[derive(Debug, Clone, Copy, Default)]
struct Tick {
    t: f64,
    execs: u64,
    deaths: u64,
    recreations: u64,
}

#[derive(Debug, Default)]
struct Recent {
    ticks: VecDeque<Tick>,
    /// Last creation of the unit's cgroup, monotonic ns (for intervals).
    last_creation_ns: Option<u64>,
    /// Creations since the last interval, not yet in a tick.
    pending_recreations: u64,
    /// When the unit's cgroup was created, unix seconds, within the
    /// window (at most [`MAX_CREATIONS`]): restarts are timed by the
    /// kernel's records, not by the poll that read them, so a loop whose
    /// restarts all fall in one poll still has its rate and start.
    creations: VecDeque<f64>,
    /// Seeded from systemd at this monotonic ns: creations before it are
    /// in systemd's count already, and so is the next one when the unit
    /// was waiting to restart then (`Some(false)`: not running).
    seeded: Option<(u64, bool)>,
}

/// Creation times kept per unit: enough for a rate, however fast the loop.
const MAX_CREATIONS: usize = 64;

impl Recent {
    fn sums(&self) -> Tick {
        self.ticks.iter().fold(Tick::default(), |a, t| Tick {
            t: a.t,
            execs: a.execs + t.execs,
            deaths: a.deaths + t.deaths,
            recreations: a.recreations + t.recreations,
        })
    }

    /// Restarts in one tick: cgroup re-creations where systemd restarts
    /// the unit, else its deaths (the supervisor restarts in place).
    fn restarts(&self, t: &Tick) -> u64 {
        if self.ticks.iter().any(|t| t.recreations > 0) {
            t.recreations
        } else {
            t.deaths.min(t.execs)
        }
    }
}

/// A loop as the sentinel reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitFinding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub state: LoopState,
    pub unit: String,
    /// Restarts since first seen, across sentinel restarts and reboots.
    pub restarts: u64,
    pub rate_per_min: f64,
    pub projected_per_day: f64,
    pub first_seen_unix: f64,
    pub last_seen_unix: f64,
    /// What a drill-down found, once it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
    pub source: FindingSource,
    pub message: String,
}

impl UnitFinding {
    /// Stable across restarts: one finding per unit.
    pub fn key(&self) -> &str {
        &self.unit
    }
}

/// One service as systemd knew it when the sentinel started.
#[derive(Debug, Clone)]
pub struct Seed {
    /// The unit's label, as the sentinel names it ("unit @container").
    pub label: String,
    /// systemd's `NRestarts`.
    pub n_restarts: u64,
    /// Set when the unit is looping right now.
    pub prior: Option<Prior>,
    /// The unit has a cgroup now (it runs): that start is in `n_restarts`,
    /// and the next cgroup creation is a restart. Without one (waiting in
    /// `auto-restart`) the next creation is the start `n_restarts`
    /// already counts.
    pub running: bool,
}

pub struct Tracker {
    pub cfg: TrackConfig,
    pub state: State,
    recent: HashMap<String, Recent>,
    /// Candidates the drill-down confirmed.
    confirmed: HashSet<String>,
    /// Candidates it did not, until when.
    rejected: HashMap<String, f64>,
    /// Drill-down details for a finding about to open.
    pending_detail: HashMap<String, serde_json::Value>,
}

fn message(f: &FindingState) -> String {
    let what = match f.kind {
        FindingKind::FailingPeriodicJob => "failing periodic job",
        FindingKind::RespawnLoop => "respawn loop",
    };
    let from = match f.source {
        FindingSource::Live => "",
        FindingSource::Systemd => ", from systemd",
        FindingSource::SystemdAndLive => ", from systemd, and seen live since",
    };
    let mut m = format!(
        "{what} in {}: {} restarts since {} ({:.1}/min{from})",
        f.unit,
        thousands(f.restarts),
        date(f.first_seen_unix),
        f.rate_per_min
    );
    if let Some(d) = &f.detail {
        if let Some(exe) = d["executable"].as_str() {
            m.push_str(&format!("; runs {exe}"));
        }
        if let Some(code) = d["exit_code"].as_u64() {
            m.push_str(&format!(", exits with status {code}"));
        } else if let Some(sig) = d["signal"].as_str() {
            m.push_str(&format!(", killed by {sig}"));
        }
    }
    m
}

impl Tracker {
    pub fn new(cfg: TrackConfig, state: State) -> Self {
        Self {
            cfg,
            state,
            recent: HashMap::new(),
            confirmed: HashSet::new(),
            rejected: HashMap::new(),
            pending_detail: HashMap::new(),
        }
    }

    /// A cgroup was created for `unit` at `ts_ns` (monotonic), which is
    /// `t_unix`: if it had one before, the unit was started again.
    pub fn creation(&mut self, unit: &str, ts_ns: u64, t_unix: f64) {
        let r = self.recent.entry(unit.to_string()).or_default();
        if r.creations.len() >= MAX_CREATIONS {
            r.creations.pop_front();
        }
        r.creations.push_back(t_unix);
        if let Some((at_ns, running)) = r.seeded {
            if ts_ns < at_ns || !running {
                // A start systemd's count has (before the reading, or the
                // restart it had scheduled then): timed, not counted.
                if ts_ns >= at_ns {
                    r.seeded = None;
                }
                r.last_creation_ns = Some(ts_ns);
                return;
            }
            r.seeded = None;
            // Running when read: this is a restart of its own, after the
            // start that was running then.
            r.last_creation_ns.get_or_insert(at_ns);
        }
        if let Some(prev) = r.last_creation_ns.replace(ts_ns)
            && ts_ns >= prev
        {
            r.pending_recreations += 1;
            let u = self.state.units.entry(unit.to_string()).or_default();
            let i = lifetime_bucket(ts_ns - prev);
            if u.intervals.len() <= i {
                u.intervals.resize(i + 1, 0);
            }
            let b = &mut u.intervals[i];
            *b = b.saturating_add(1);
            u.recreations = u.recreations.saturating_add(1);
        }
    }

    /// Folds one interval's per-cgroup deltas, already named by unit, into
    /// the totals, and opens, updates and closes findings.
    pub fn interval(
        &mut self,
        now_unix: f64,
        deltas: impl IntoIterator<Item = (String, Counters, Option<Lifetimes>)>,
    ) -> Outcome {
        let mut per_unit: HashMap<String, UnitState> = HashMap::new();
        for (unit, c, l) in deltas {
            let u = per_unit.entry(unit).or_default();
            u.add(&UnitState {
                // The state keeps process counts only.
                counts: Counters {
                    threads: 0,
                    thread_exits: 0,
                    ..c
                },
                // Up to the highest bucket in use: most units' lifetimes
                // span a few buckets, and a thousand units are kept.
                lifetimes: l
                    .map(|l| {
                        let used = l.buckets.iter().rposition(|&n| n > 0).map_or(0, |i| i + 1);
                        l.buckets[..used].to_vec()
                    })
                    .unwrap_or_default(),
                ..Default::default()
            });
        }
        for (unit, r) in &self.recent {
            if r.pending_recreations > 0 {
                per_unit.entry(unit.clone()).or_default();
            }
        }
        // Restarts of this interval, per unit.
        let mut now_restarts: HashMap<String, u64> = HashMap::new();
        for (unit, mut d) in per_unit {
            let r = self.recent.entry(unit.clone()).or_default();
            let tick = Tick {
                t: now_unix,
                execs: d.counts.execs,
                deaths: d.counts.exit_failed + d.counts.exit_signaled + d.counts.exit_core,
                recreations: std::mem::take(&mut r.pending_recreations),
            };
            if d.spawns() + d.process_exits() + tick.recreations > 0 {
                d.last_active_unix = now_unix;
                self.state.units.entry(unit.clone()).or_default().add(&d);
            }
            if tick.deaths + tick.recreations > 0 {
                r.ticks.push_back(tick);
                now_restarts.insert(unit, r.restarts(&tick));
            }
        }
        let horizon = now_unix - self.cfg.window_s;
        for r in self.recent.values_mut() {
            while r.ticks.front().is_some_and(|t| t.t < horizon) {
                r.ticks.pop_front();
            }
            while r.creations.front().is_some_and(|&t| t < horizon) {
                r.creations.pop_front();
            }
        }
        self.rejected.retain(|_, until| *until > now_unix);

        let mut out = Outcome::default();
        // Open findings: count this interval's restarts, or close.
        let keys: Vec<String> = self.state.findings.keys().cloned().collect();
        for key in keys {
            let f = self.state.findings.get_mut(&key).expect("listed above");
            let n = now_restarts.get(&f.unit).copied().unwrap_or(0);
            if n > 0 {
                f.restarts = f.restarts.saturating_add(n);
                f.last_seen_unix = now_unix;
                f.source = f.source.with_live();
            }
            // systemd's rate stands until restarts seen live give one.
            if let Some(r) = self.recent.get(&f.unit)
                && (f.source == FindingSource::Live || rate(r, now_unix) > 0.0)
            {
                f.rate_per_min = rate(r, now_unix);
                let kind = kind_of(f.rate_per_min, &self.cfg);
                f.kind = kind;
                f.severity = severity_for(kind, f.seen_for_s());
            }
            let mean_s = if f.rate_per_min > 0.0 {
                60.0 / f.rate_per_min
            } else {
                0.0
            };
            let stop_after = self.cfg.stop_min_s.max(3.0 * mean_s);
            if now_unix - f.last_seen_unix > stop_after {
                let f = self.state.findings.remove(&key).expect("listed above");
                self.confirmed.remove(&f.unit);
                // Its history is spent: only new restarts open it again.
                if let Some(r) = self.recent.get_mut(&f.unit) {
                    r.ticks.clear();
                }
                out.closed.push(view(&f, LoopState::Stopped));
            }
        }
        // New findings.
        let mut units: Vec<&String> = self.recent.keys().collect();
        units.sort();
        for unit in units {
            if self.state.findings.contains_key(unit.as_str()) {
                continue;
            }
            let r = &self.recent[unit];
            let s = r.sums();
            let min = self.cfg.min_restarts;
            let proven = (s.recreations >= min && s.deaths >= min)
                || (self.confirmed.contains(unit.as_str()) && s.deaths > 0);
            if proven {
                let restarts: u64 = r.ticks.iter().map(|t| r.restarts(t)).sum();
                let per_min = rate(r, now_unix);
                let kind = kind_of(per_min, &self.cfg);
                let mut f = FindingState {
                    unit: unit.clone(),
                    // The first start the kernel recorded in the window,
                    // else the poll that first saw a death.
                    first_seen_unix: r
                        .creations
                        .front()
                        .copied()
                        .or(r.ticks.front().map(|t| t.t))
                        .unwrap_or(now_unix),
                    last_seen_unix: r
                        .creations
                        .back()
                        .copied()
                        .or(r.ticks.back().map(|t| t.t))
                        .unwrap_or(now_unix),
                    restarts,
                    kind,
                    severity: Severity::Medium,
                    rate_per_min: per_min,
                    detail: self.pending_detail.remove(unit.as_str()),
                    source: FindingSource::Live,
                };
                f.severity = severity_for(kind, f.seen_for_s());
                out.opened.push(unit.clone());
                self.state.findings.insert(unit.clone(), f);
            } else if s.recreations == 0
                && s.deaths >= min
                && s.execs >= min
                && !self.confirmed.contains(unit.as_str())
                && !self.rejected.contains_key(unit.as_str())
            {
                out.drill.push(unit.clone());
            }
        }
        // Units with nothing recent and no cgroup creation to remember;
        // past a bound, the creations are forgotten too.
        self.recent
            .retain(|_, r| !r.ticks.is_empty() || r.last_creation_ns.is_some());
        if self.recent.len() > 2 * super::state::MAX_UNITS {
            self.recent.retain(|_, r| !r.ticks.is_empty());
        }
        self.state.bound_units();
        out
    }

    /// What systemd knew when the sentinel started. A unit seen for the
    /// first time starts its restarts total at systemd's `NRestarts`; one
    /// the state already holds keeps counting from its own total, so a
    /// `reset-failed` or a reboot in between costs nothing. A loop running
    /// right now opens its finding at once, with systemd's counter, times
    /// and rate.
    pub fn seed(&mut self, now_unix: f64, now_ns: u64, seeds: impl IntoIterator<Item = Seed>) {
        for seed in seeds {
            if seed.n_restarts > 0 && !self.state.units.contains_key(&seed.label) {
                self.recent.entry(seed.label.clone()).or_default().seeded =
                    Some((now_ns, seed.running));
                self.state.units.insert(
                    seed.label.clone(),
                    UnitState {
                        systemd_restarts: seed.n_restarts,
                        last_active_unix: now_unix,
                        ..Default::default()
                    },
                );
            }
            let Some(p) = seed.prior else { continue };
            if self.state.findings.contains_key(&seed.label) {
                continue;
            }
            let mut detail = serde_json::json!({ "source": "systemd" });
            if let Some(code) = p.last_exit_status {
                detail["exit_code"] = code.into();
            }
            if let Some(r) = &p.result {
                detail["result"] = r.as_str().into();
            }
            self.state.findings.insert(
                seed.label.clone(),
                FindingState {
                    unit: seed.label,
                    // Unknown while the unit ran when read: its last
                    // start is the earliest time known.
                    first_seen_unix: p.first_seen_unix.unwrap_or(p.last_seen_unix),
                    last_seen_unix: p.last_seen_unix,
                    restarts: p.restarts,
                    kind: p.kind,
                    severity: p.severity,
                    rate_per_min: p.rate_per_min,
                    detail: Some(detail),
                    source: FindingSource::Systemd,
                },
            );
        }
        self.state.bound_units();
    }

    /// The open findings, as reported.
    pub fn findings(&self) -> Vec<UnitFinding> {
        self.state
            .findings
            .values()
            .map(|f| view(f, LoopState::Active))
            .collect()
    }

    pub fn finding(&self, unit: &str) -> Option<UnitFinding> {
        self.state
            .findings
            .get(unit)
            .map(|f| view(f, LoopState::Active))
    }

    /// The drill-down saw `unit` loop; `detail` is what it learnt. True
    /// when an open finding gained the detail.
    pub fn confirm(&mut self, unit: &str, detail: Option<serde_json::Value>) -> bool {
        self.confirmed.insert(unit.to_string());
        self.rejected.remove(unit);
        let Some(d) = detail else { return false };
        match self.state.findings.get_mut(unit) {
            Some(f) => {
                f.detail = Some(d);
                true
            }
            None => {
                self.pending_detail.insert(unit.to_string(), d);
                false
            }
        }
    }

    /// The drill-down ended without seeing a loop.
    pub fn reject(&mut self, unit: &str, now_unix: f64) {
        self.pending_detail.remove(unit);
        self.rejected
            .insert(unit.to_string(), now_unix + self.cfg.reject_for_s);
    }

    /// Units whose recent history is kept (for the footprint bench).
    pub fn tracked(&self) -> usize {
        self.recent.len()
    }
}

/// What one interval changed.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// Units whose finding opened.
    pub opened: Vec<String>,
    /// Findings that closed.
    pub closed: Vec<UnitFinding>,
    /// Candidates to drill into.
    pub drill: Vec<String>,
}

/// Restarts per minute over the window, between the first and the last
/// restart seen in it: from the kernel's creation times where the unit is
/// restarted into new cgroups, else from the polls that saw deaths.
fn rate(r: &Recent, now_unix: f64) -> f64 {
    if r.ticks.iter().any(|t| t.recreations > 0)
        && let (Some(first), Some(last)) = (r.creations.front(), r.creations.back())
        && r.creations.len() >= 3
        && last > first
    {
        return (r.creations.len() - 1) as f64 / (last - first) * 60.0;
    }
    let restarts: u64 = r.ticks.iter().map(|t| r.restarts(t)).sum();
    let Some(first) = r.ticks.front() else {
        return 0.0;
    };
    // The first tick's restarts happened somewhere in the interval before
    // it; counting from that tick would overstate the rate of a slow loop
    // seen only once or twice, so its own restarts are left out.
    let after_first = restarts.saturating_sub(r.restarts(first));
    // Between the first and the last restart seen: a loop that has just
    // stopped keeps its rate until it is closed.
    let last = r.ticks.back().map_or(now_unix, |t| t.t);
    let span = last - first.t;
    if after_first == 0 || span <= 0.0 {
        return 0.0;
    }
    after_first as f64 / span * 60.0
}

fn kind_of(per_min: f64, cfg: &TrackConfig) -> FindingKind {
    if per_min > 0.0 && 60.0 / per_min > cfg.periodic_after_s {
        FindingKind::FailingPeriodicJob
    } else {
        FindingKind::RespawnLoop
    }
}

fn view(f: &FindingState, state: LoopState) -> UnitFinding {
    UnitFinding {
        kind: f.kind,
        severity: severity_for(f.kind, f.seen_for_s()),
        state,
        unit: f.unit.clone(),
        restarts: f.restarts,
        rate_per_min: f.rate_per_min,
        projected_per_day: f.rate_per_min * 1440.0,
        first_seen_unix: f.first_seen_unix,
        last_seen_unix: f.last_seen_unix,
        detail: f.detail.clone(),
        source: f.source,
        message: match state {
            LoopState::Stopped => format!("stopped: {}", message(f)),
            LoopState::Active => message(f),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 1_768_294_800.0; // 13 Jan 2026 09:00 UTC
    const S: u64 = 1_000_000_000;

    fn failed(execs: u64, deaths: u64) -> Counters {
        Counters {
            forks: execs,
            execs,
            exit_failed: deaths,
            ..Counters::ZERO
        }
    }

    /// A systemd service restarted every 10 s, as in the incident: a new
    /// cgroup, one exec and one failed exit per restart; polled every 5 s.
    fn getty_loop(t: &mut Tracker, from_s: u64, restarts: u64) -> Vec<Outcome> {
        let unit = "serial-getty@ttyS0.service";
        let mut out = Vec::new();
        for i in 0..restarts {
            let at = from_s + 10 * i;
            t.creation(unit, at * S, T0 + at as f64);
            out.push(t.interval(T0 + at as f64 + 1.0, [(unit.into(), failed(1, 1), None)]));
            out.push(t.interval(T0 + at as f64 + 6.0, []));
        }
        out
    }

    #[test]
    fn a_systemd_restart_loop_opens_at_the_third_restart_and_counts_on() {
        let mut t = Tracker::new(TrackConfig::default(), State::fresh(T0));
        let outs = getty_loop(&mut t, 0, 5);
        // The first creation has nothing before it; restarts 1..3 follow.
        let opened_at = outs.iter().position(|o| !o.opened.is_empty()).unwrap();
        assert_eq!(opened_at, 6, "the 4th creation is the 3rd restart");
        assert_eq!(outs[opened_at].opened, ["serial-getty@ttyS0.service"]);
        assert!(outs.iter().all(|o| o.drill.is_empty()), "counts prove it");
        let f = t.finding("serial-getty@ttyS0.service").unwrap();
        assert_eq!(f.kind, FindingKind::RespawnLoop);
        assert_eq!(f.restarts, 4, "restarts 1-4 of the 5 starts");
        assert!((f.rate_per_min - 6.0).abs() < 0.5, "{}", f.rate_per_min);
        assert_eq!(f.severity, Severity::Medium, "seen for 40 s");
        let u = &t.state.units["serial-getty@ttyS0.service"];
        assert_eq!(
            (u.counts.execs, u.counts.exit_failed, u.recreations),
            (5, 5, 4)
        );
        // 10 s intervals land in log2 bucket 33 (8.6 s .. 17.2 s).
        assert_eq!(u.intervals[33], 4);
        assert!(
            f.message.starts_with(
                "respawn loop in serial-getty@ttyS0.service: 4 restarts since 13 Jan 2026 09:00 UTC"
            ),
            "{}",
            f.message
        );
    }

    #[test]
    fn severity_rises_with_persistence_not_with_rate() {
        let mut t = Tracker::new(TrackConfig::default(), State::fresh(T0));
        let unit = "serial-getty@ttyS0.service";
        let sev = |t: &Tracker| t.finding(unit).map(|f| f.severity);
        getty_loop(&mut t, 0, 5);
        assert_eq!(sev(&t), Some(Severity::Medium), "found");
        // First start at 0 s; the 60th restart is 600 s in.
        getty_loop(&mut t, 50, 55);
        assert_eq!(sev(&t), Some(Severity::Medium), "590 s");
        getty_loop(&mut t, 600, 1);
        assert_eq!(sev(&t), Some(Severity::High), "600 s");
        getty_loop(&mut t, 610, 299);
        assert_eq!(sev(&t), Some(Severity::High), "3590 s");
        getty_loop(&mut t, 3600, 1);
        assert_eq!(sev(&t), Some(Severity::Critical), "an hour");
    }

    fn getty_prior(restarts: u64, now: f64) -> Prior {
        let mut p = Prior {
            type_: "finding",
            kind: FindingKind::RespawnLoop,
            severity: Severity::Medium,
            source: FindingSource::Systemd,
            unit: "serial-getty@ttyS0.service".into(),
            container: None,
            restarts,
            rate_per_min: 6.0,
            projected_per_day: 8640.0,
            first_seen_unix: Some(T0),
            first_seen_from: Some(crate::detect::FirstSeenFrom::Estimate),
            last_seen_unix: now - 2.0,
            last_exit_status: Some(1),
            result: Some("exit-code".into()),
            message: String::new(),
        };
        p.severity = p.rated();
        p
    }

    fn getty_seed(n_restarts: u64, prior: Option<Prior>) -> Seed {
        Seed {
            label: "serial-getty@ttyS0.service".into(),
            n_restarts,
            prior,
            running: false,
        }
    }

    #[test]
    fn a_unit_first_seen_starts_its_restarts_total_at_systemds_counter() {
        let mut t = Tracker::new(TrackConfig::default(), State::fresh(T0));
        t.seed(T0 + 100.0, 100 * S, [getty_seed(421_491, None)]);
        assert_eq!(
            t.state.units["serial-getty@ttyS0.service"].restarts(),
            421_491
        );
        // Live restarts add to it.
        getty_loop(&mut t, 200, 3);
        assert_eq!(
            t.state.units["serial-getty@ttyS0.service"].restarts(),
            421_491 + 2
        );
    }

    #[test]
    fn a_running_unit_seeded_counts_its_next_cgroup_as_a_restart() {
        let unit = "serial-getty@ttyS0.service";
        let mut t = Tracker::new(TrackConfig::default(), State::fresh(T0));
        let mut seed = getty_seed(40, None);
        seed.running = true;
        t.seed(T0 + 50.0, 50 * S, [seed]);
        t.creation(unit, 60 * S, T0 + 60.0);
        t.interval(T0 + 61.0, [(unit.into(), failed(1, 1), None)]);
        assert_eq!(t.state.units[unit].restarts(), 41);
    }

    /// Read while waiting in auto-restart: the probe saw the cgroup made
    /// before the reading (drained only at the next poll), then the one of
    /// the restart systemd had scheduled; both are in its count.
    #[test]
    fn starts_systemd_had_counted_are_not_counted_again() {
        let unit = "serial-getty@ttyS0.service";
        let mut t = Tracker::new(TrackConfig::default(), State::fresh(T0));
        t.seed(T0 + 50.0, 50 * S, [getty_seed(40, None)]);
        t.creation(unit, 45 * S, T0 + 45.0);
        t.creation(unit, 55 * S, T0 + 55.0);
        t.creation(unit, 65 * S, T0 + 65.0);
        t.interval(T0 + 66.0, [(unit.into(), failed(3, 3), None)]);
        assert_eq!(t.state.units[unit].restarts(), 41);
    }

    #[test]
    fn a_unit_already_counted_is_not_seeded_again_nor_lowered_by_reset_failed() {
        let mut t = Tracker::new(TrackConfig::default(), State::fresh(T0));
        t.seed(T0, 0, [getty_seed(100, None)]);
        getty_loop(&mut t, 10, 3);
        let before = t.state.units["serial-getty@ttyS0.service"].restarts();
        assert_eq!(before, 102);
        // The sentinel restarts with its state: systemd's counter went on
        // (or was reset); the state's total is already past it.
        for n in [150, 0] {
            t.seed(T0 + 100.0, 100 * S, [getty_seed(n, None)]);
            assert_eq!(
                t.state.units["serial-getty@ttyS0.service"].restarts(),
                before
            );
        }
    }

    #[test]
    fn a_loop_systemd_has_counted_is_a_finding_at_once_and_then_continues_live() {
        let mut t = Tracker::new(TrackConfig::default(), State::fresh(T0));
        let now = T0 + 48.7 * 86_400.0;
        t.seed(
            now,
            90 * S,
            [getty_seed(421_491, Some(getty_prior(421_491, now)))],
        );
        let f = t
            .finding("serial-getty@ttyS0.service")
            .expect("open at once");
        assert_eq!(f.source, FindingSource::Systemd);
        assert_eq!(f.restarts, 421_491);
        assert_eq!(f.first_seen_unix, T0);
        assert_eq!(
            f.message,
            "respawn loop in serial-getty@ttyS0.service: 421,491 restarts since 13 Jan 2026 09:00 UTC (6.0/min, from systemd), exits with status 1"
        );
        // One poll with no restart yet keeps systemd's rate.
        t.interval(now + 1.0, []);
        let f = t.finding("serial-getty@ttyS0.service").unwrap();
        assert_eq!((f.rate_per_min, f.source), (6.0, FindingSource::Systemd));
        // A restart seen live continues the same finding.
        let unit = "serial-getty@ttyS0.service";
        t.creation(unit, 100 * S, now + 5.0);
        t.creation(unit, 110 * S, now + 15.0);
        t.interval(now + 16.0, [(unit.into(), failed(2, 2), None)]);
        let f = t.finding(unit).unwrap();
        assert_eq!(f.source, FindingSource::SystemdAndLive);
        assert_eq!(f.restarts, 421_492);
        assert!(
            f.message.contains("from systemd, and seen live since"),
            "{}",
            f.message
        );
    }

    #[test]
    fn totals_and_findings_continue_after_a_restart_of_the_sentinel() {
        let mut t = Tracker::new(TrackConfig::default(), State::fresh(T0));
        getty_loop(&mut t, 0, 5);
        let saved = t.state.clone();
        // The sentinel restarts 30 s later; the loop went on meanwhile.
        let mut t = Tracker::new(TrackConfig::default(), saved);
        let outs = getty_loop(&mut t, 80, 3);
        assert!(
            outs.iter()
                .all(|o| o.opened.is_empty() && o.closed.is_empty())
        );
        let f = t.finding("serial-getty@ttyS0.service").unwrap();
        // 4 before. The restarts while it was down are not seen; the 3
        // after are (the first by its death, its creation having no
        // predecessor in memory).
        assert_eq!(f.restarts, 7);
        assert_eq!(
            f.first_seen_unix, T0,
            "first seen before the restart, at the first start recorded"
        );
        assert_eq!(t.state.units["serial-getty@ttyS0.service"].counts.execs, 8);
    }

    #[test]
    fn a_loop_that_stops_is_closed_once() {
        let mut t = Tracker::new(TrackConfig::default(), State::fresh(T0));
        getty_loop(&mut t, 0, 5);
        let mut closed = Vec::new();
        for s in (50..200).step_by(5) {
            closed.extend(t.interval(T0 + s as f64, []).closed);
        }
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].state, LoopState::Stopped);
        assert!(
            closed[0]
                .message
                .starts_with("stopped: respawn loop in serial-getty")
        );
        assert!(t.findings().is_empty());
    }

    #[test]
    fn failing_exits_without_new_cgroups_are_drilled_then_confirmed_or_rejected() {
        let mut t = Tracker::new(TrackConfig::default(), State::fresh(T0));
        let unit = "health-check.service";
        let mut drill = Vec::new();
        for i in 0..3 {
            drill = t
                .interval(T0 + 5.0 * i as f64, [(unit.into(), failed(2, 1), None)])
                .drill;
        }
        assert_eq!(drill, [unit], "3 deaths and 6 execs: a candidate");
        assert!(t.findings().is_empty(), "counts alone do not prove it");
        // The drill-down saw no loop (say, grep failing inside a healthy
        // service): not drilled again for a while.
        t.reject(unit, T0 + 15.0);
        let o = t.interval(T0 + 20.0, [(unit.into(), failed(2, 1), None)]);
        assert!(o.drill.is_empty() && o.opened.is_empty());
        // Another unit, confirmed by its events: opens at the next poll,
        // with what the drill-down learnt.
        let other = "worker.service";
        for i in 0..3 {
            t.interval(T0 + 30.0 + i as f64, [(other.into(), failed(1, 1), None)]);
        }
        let detail = serde_json::json!({"executable": "/usr/bin/worker", "exit_code": 2});
        assert!(!t.confirm(other, Some(detail.clone())), "not open yet");
        let o = t.interval(T0 + 34.0, [(other.into(), failed(1, 1), None)]);
        assert_eq!(o.opened, [other]);
        let f = t.finding(other).unwrap();
        assert_eq!(f.detail, Some(detail));
        assert!(
            f.message
                .ends_with("; runs /usr/bin/worker, exits with status 2"),
            "{}",
            f.message
        );
    }

    /// A 500 ms loop polled every 10 s: its restarts all fall in one poll.
    /// The kernel's creation times give its rate and its start, not the
    /// poll that read them.
    #[test]
    fn restarts_within_one_poll_have_their_own_rate_and_start() {
        let mut t = Tracker::new(TrackConfig::default(), State::fresh(T0));
        let unit = "fast.service";
        for i in 0..8u64 {
            t.creation(unit, i * S / 2, T0 + 2.0 + i as f64 / 2.0);
        }
        let o = t.interval(T0 + 10.0, [(unit.into(), failed(8, 8), None)]);
        assert_eq!(o.opened, [unit]);
        let f = t.finding(unit).unwrap();
        assert!((f.rate_per_min - 120.0).abs() < 1.0, "{}", f.rate_per_min);
        assert_eq!(f.first_seen_unix, T0 + 2.0, "the first start, not the poll");
        assert_eq!(f.last_seen_unix, T0 + 5.5, "the last start");
        assert!(f.message.contains("(120.0/min)"), "{}", f.message);
    }

    #[test]
    fn clean_exits_never_make_a_finding() {
        let mut t = Tracker::new(TrackConfig::default(), State::fresh(T0));
        for i in 0..100 {
            t.creation("build.service", i * S, T0 + i as f64);
            let c = Counters {
                forks: 500,
                execs: 500,
                exit_clean: 500,
                ..Counters::ZERO
            };
            let o = t.interval(T0 + i as f64, [("build.service".into(), c, None)]);
            assert_eq!(o, Outcome::default());
        }
        assert_eq!(t.state.units["build.service"].counts.execs, 50_000);
    }

    #[test]
    fn slow_restarts_are_a_failing_periodic_job_of_low_severity() {
        let mut t = Tracker::new(TrackConfig::default(), State::fresh(T0));
        for i in 0..5u64 {
            t.creation("backup.service", i * 120 * S, T0 + (i * 120) as f64);
            t.interval(
                T0 + (i * 120) as f64 + 1.0,
                [("backup.service".into(), failed(1, 1), None)],
            );
        }
        let f = t.finding("backup.service").unwrap();
        assert_eq!(f.kind, FindingKind::FailingPeriodicJob);
        assert_eq!(f.severity, Severity::Low);
        assert!(
            f.message
                .starts_with("failing periodic job in backup.service")
        );
    }

    #[test]
    fn lifetimes_fold_into_their_unit() {
        let mut t = Tracker::new(TrackConfig::default(), State::fresh(T0));
        let mut l = Lifetimes::ZERO;
        l.buckets[20] = 3;
        t.interval(T0, [("a.service".into(), failed(3, 0), Some(l))]);
        t.interval(T0 + 5.0, [("a.service".into(), failed(1, 0), Some(l))]);
        let u = &t.state.units["a.service"];
        assert_eq!(u.lifetimes.len(), 21, "up to the highest bucket used");
        assert_eq!(u.lifetimes[20], 6);
        assert_eq!(u.last_active_unix, T0 + 5.0);
    }

    #[test]
    fn dates_and_thousands_read_as_people_write_them() {
        assert_eq!(date(T0), "13 Jan 2026 09:00 UTC");
        assert_eq!(date(0.0), "1 Jan 1970 00:00 UTC");
        assert_eq!(date(951_825_600.0), "29 Feb 2000 12:00 UTC");
        assert_eq!(thousands(421_491), "421,491");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
