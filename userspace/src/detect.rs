//! Respawn-loop detection: pure code over exec/exit events, shared by the
//! live `trace` and the offline `analyze`, so the same events give the same
//! findings.
//!
//! A *start* is an exec (a program started, possibly by a supervisor), or,
//! for a process that never exec'd, its fork (a daemon re-forking a worker;
//! seen when the worker exits). Starts are grouped by what is started again:
//! in a unit, (container, unit, executable, argv); outside one, (cgroup,
//! executable, argv, parent). A group whose instances die — non-zero exit or
//! signal — and are started again is a loop: restarts at most
//! [`Config::max_interval`] apart make a *respawn loop*, further apart a
//! *failing periodic job* (lower severity). Clean exits never count as
//! deaths, so timers and build bursts stay silent.
//!
//! systemd 255 and later start every command of a unit through
//! `systemd-executor`: PID 1 forks, the child execs the executor (from a
//! descriptor: the kernel's filename is `/proc/self/fd/N`, the comm `N`),
//! and the executor sets the process up and execs the command. That first
//! exec is systemd's machinery, not what the unit runs, so it starts
//! nothing here; the command's exec is the start. A process that dies in
//! the executor without exec'ing its command (status 203/EXEC for a
//! missing binary, 217/USER for an unknown user, …) is a start that failed,
//! named after the executor and the comm it gave itself, `(command)`.

use std::collections::{BTreeMap, HashMap, HashSet};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// One exec or exit, as recorded (`trace --record`) or as seen live.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DetEvent {
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub ts_ns: u64,
    pub tgid: u32,
    #[serde(default)]
    pub ppid: u32,
    pub start_ns: u64,
    #[serde(default)]
    pub cgroup: Option<String>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub container: Option<String>,
    #[serde(default)]
    pub comm: String,
    #[serde(default)]
    pub parent_comm: String,
    #[serde(default)]
    pub filename: String,
    #[serde(default)]
    pub argv: Vec<String>,
    #[serde(default)]
    pub code: Option<u8>,
    #[serde(default)]
    pub signal: Option<u8>,
    #[serde(default)]
    pub core_dumped: Option<bool>,
}

/// The events the detector reads, by their `type` in the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Exec,
    Exit,
}

impl DetEvent {
    fn outcome(&self) -> Outcome {
        match self.signal {
            Some(s) => Outcome::Signal(s),
            None => Outcome::Code(self.code.unwrap_or(0)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Code(u8),
    Signal(u8),
}

impl Outcome {
    fn failed(self) -> bool {
        self != Outcome::Code(0)
    }

    fn describe(self) -> String {
        match self {
            Outcome::Code(c) => format!("exit status {c}"),
            Outcome::Signal(s) => match signal_name(s) {
                Some(n) => format!("signal {s} ({n})"),
                None => format!("signal {s}"),
            },
        }
    }
}

pub fn signal_name(s: u8) -> Option<&'static str> {
    Some(match s {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// A loop is reported at this many restarts (with as many deaths).
    pub min_restarts: u64,
    /// Restarts further apart (median) make a failing periodic job.
    pub max_interval_ns: u64,
    /// A loop is marked stopped after this many tenths of its (median)
    /// interval without a start, or `stop_min_ns`, whichever is longer.
    /// 2.5 intervals and 58 s keep the promise "within 3 intervals or
    /// 60 s" with room for the time between two checks.
    pub stop_tenths_of_interval: u64,
    pub stop_min_ns: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            min_restarts: 3,
            max_interval_ns: 60_000_000_000,
            stop_tenths_of_interval: 25,
            stop_min_ns: 58_000_000_000,
        }
    }
}

/// What is started again and again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    container: Option<String>,
    unit: Option<String>,
    /// Only outside units.
    cgroup: Option<String>,
    executable: String,
    argv: Vec<String>,
    /// Only outside units: the supervising parent.
    parent: Option<u32>,
}

struct Track {
    comm: String,
    parent_tgid: u32,
    parent_comm: String,
    /// Started by fork, not exec (a re-forked worker).
    forked: bool,
    starts: u64,
    first_start: u64,
    last_start: u64,
    last_exit: u64,
    deaths: u64,
    exits: u64,
    outcomes: BTreeMap<Outcome, u64>,
    /// Microseconds. Allocated at the first death: most groups never die
    /// (a build runs thousands of them), and a histogram is ~100 KiB.
    intervals: Option<Histogram<u64>>,
    lifetimes: Option<Histogram<u64>>,
    reported: bool,
    stopped_since: Option<u64>,
}

/// Microseconds from 1 µs to about 19 hours; longer values saturate.
fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 1 << 36, 3).expect("valid bounds")
}

fn empty() -> &'static Histogram<u64> {
    static EMPTY: std::sync::OnceLock<Histogram<u64>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Histogram::new_with_bounds(1, 2, 1).expect("valid bounds"))
}

impl Track {
    fn new(ev: &DetEvent, forked: bool) -> Self {
        Self {
            comm: ev.comm.clone(),
            parent_tgid: ev.ppid,
            parent_comm: ev.parent_comm.clone(),
            forked,
            starts: 0,
            first_start: 0,
            last_start: 0,
            last_exit: 0,
            deaths: 0,
            exits: 0,
            outcomes: BTreeMap::new(),
            intervals: None,
            lifetimes: None,
            reported: false,
            stopped_since: None,
        }
    }

    fn start(&mut self, ts: u64) {
        if self.starts > 0 {
            let us = ts.saturating_sub(self.last_start) / 1000;
            if let Some(h) = self.intervals.as_mut() {
                h.saturating_record(us.max(1));
            }
        } else {
            self.first_start = ts;
        }
        self.starts += 1;
        self.last_start = ts;
        if self.stopped_since.take().is_some() {
            // Resumed: reported again as active.
            self.reported = false;
        }
    }

    fn exit(&mut self, ts: u64, lifetime_ns: u64, o: Outcome) {
        self.exits += 1;
        self.deaths += o.failed() as u64;
        *self.outcomes.entry(o).or_default() += 1;
        if o.failed() && self.lifetimes.is_none() {
            self.intervals = Some(hist());
            self.lifetimes = Some(hist());
        }
        if let Some(h) = self.lifetimes.as_mut() {
            h.saturating_record((lifetime_ns / 1000).max(1));
        }
        self.last_exit = ts;
    }

    fn restarts(&self) -> u64 {
        self.starts.saturating_sub(1)
    }

    fn is_loop(&self, cfg: &Config) -> bool {
        self.restarts() >= cfg.min_restarts
            && self.deaths >= cfg.min_restarts
            && self.deaths * 2 >= self.exits
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    RespawnLoop,
    FailingPeriodicJob,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The severity as it is serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// The severity ladder of both detectors, `trace`'s from events and the
/// sentinel's from counts, so that one loop is rated alike by either: a
/// failing periodic job is low; a respawn loop is critical from one
/// restart a second, high from 1,000 a day, medium below.
pub fn severity_for(kind: FindingKind, per_day: f64) -> Severity {
    match kind {
        FindingKind::FailingPeriodicJob => Severity::Low,
        FindingKind::RespawnLoop if per_day >= 86_400.0 => Severity::Critical,
        FindingKind::RespawnLoop if per_day >= 1_000.0 => Severity::High,
        FindingKind::RespawnLoop => Severity::Medium,
    }
}

/// Where a finding's evidence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FindingSource {
    /// Restarts seen by spawnscope itself.
    #[default]
    #[serde(rename = "live")]
    Live,
    /// systemd's own counters, read at start: the loop was running before
    /// spawnscope was.
    #[serde(rename = "systemd")]
    Systemd,
    /// Found from systemd at start, and since confirmed by restarts seen
    /// live.
    #[serde(rename = "systemd+live")]
    SystemdAndLive,
}

impl FindingSource {
    pub fn is_live(&self) -> bool {
        *self == Self::Live
    }

    /// The source once restarts have been seen live.
    pub fn with_live(self) -> Self {
        match self {
            Self::Live => Self::Live,
            Self::Systemd | Self::SystemdAndLive => Self::SystemdAndLive,
        }
    }
}

/// How the start of a loop found in systemd is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FirstSeenFrom {
    /// systemd's restart count times the length of one cycle, back from now.
    Estimate,
    /// The manager's "restart counter is at 1" message that began its
    /// current count, found in its journal.
    Journal,
}

/// A loop systemd already knew of when spawnscope started, reported at
/// once: its counter and times are systemd's (and the journal's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prior {
    #[serde(rename = "type", skip_deserializing, default = "finding_type")]
    pub type_: &'static str,
    pub kind: FindingKind,
    pub severity: Severity,
    pub source: FindingSource,
    pub unit: String,
    pub container: Option<String>,
    /// systemd's `NRestarts` when read.
    pub restarts: u64,
    pub rate_per_min: f64,
    pub projected_per_day: f64,
    /// Unknown (null) when systemd was read while the unit ran: systemd
    /// keeps the length of the last run only between runs.
    pub first_seen_unix: Option<f64>,
    pub first_seen_from: Option<FirstSeenFrom>,
    /// The last start systemd recorded.
    pub last_seen_unix: f64,
    /// `ExecMainStatus` of the last run, when it exited with a code.
    pub last_exit_status: Option<i32>,
    /// `Result`, e.g. "exit-code".
    pub result: Option<String>,
    pub message: String,
}

fn finding_type() -> &'static str {
    "finding"
}

impl Prior {
    /// The severity of a loop systemd has counted: its rate, as for a live
    /// loop.
    pub fn severity_of(per_min: f64) -> Severity {
        severity_for(FindingKind::RespawnLoop, per_min * 1440.0)
    }
}

/// Whether a loop still restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoopState {
    Active,
    /// No start for 3 intervals or 60 s.
    Stopped,
}

impl LoopState {
    /// The state as it is serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            LoopState::Active => "active",
            LoopState::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for LoopState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dist {
    pub p50: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
}

/// The middle of the histogram bucket holding quantile `q`, in µs.
fn quantile_us(h: &Histogram<u64>, q: f64) -> u64 {
    h.median_equivalent(h.value_at_quantile(q))
}

fn dist_ms(h: &Histogram<u64>) -> Option<Dist> {
    (!h.is_empty()).then(|| Dist {
        p50: quantile_us(h, 0.5) as f64 / 1000.0,
        p99: quantile_us(h, 0.99) as f64 / 1000.0,
        min: h.median_equivalent(h.min()) as f64 / 1000.0,
        max: h.median_equivalent(h.max()) as f64 / 1000.0,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parent {
    pub tgid: u32,
    pub comm: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DominantOutcome {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<u8>,
    /// Of all exits seen.
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub kind: FindingKind,
    pub severity: Severity,
    pub state: LoopState,
    pub unit: Option<String>,
    pub container: Option<String>,
    pub cgroup: Option<String>,
    pub executable: String,
    pub argv: Vec<String>,
    pub comm: String,
    /// True for a worker re-forked without exec; `executable` is then
    /// "fork of COMM".
    pub forked: bool,
    pub parent: Parent,
    pub starts: u64,
    pub restarts: u64,
    pub deaths: u64,
    pub rate_per_min: f64,
    pub projected_per_day: f64,
    pub interval_ms: Option<Dist>,
    /// 1 for a perfectly regular loop, towards 0 for irregular restarts:
    /// 1 - min(1, stddev / mean) of the intervals.
    pub periodicity: f64,
    pub lifetime_ms: Option<Dist>,
    pub dominant: DominantOutcome,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    pub first_seen_unix: f64,
    pub last_seen_unix: f64,
    pub stopped_since_unix: Option<f64>,
    /// `systemd+live` when systemd had counted this unit's loop before
    /// spawnscope started (then in `systemd`); absent for `live`, as in
    /// recordings made before findings had a source.
    #[serde(skip_serializing_if = "FindingSource::is_live")]
    pub source: FindingSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub systemd: Option<Prior>,
    pub message: String,
}

/// Rounded to 3 significant figures: the rate comes from a histogram
/// with 3-figure precision, and "≈" should not claim more.
fn approx3(x: f64) -> f64 {
    if x < 1000.0 {
        return x.round();
    }
    let scale = 10f64.powi(x.log10().floor() as i32 - 2);
    (x / scale).round() * scale
}

/// 421491 → "421,491": counts in messages, as people write them.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn span(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    match s {
        0 => format!("{:.1}s", ns as f64 / 1e9),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s / 60) % 60),
    }
}

fn ms(x: f64) -> String {
    if x >= 1000.0 {
        format!("{:.1} s", x / 1000.0)
    } else if x >= 1.0 {
        format!("{x:.0} ms")
    } else {
        format!("{:.0} µs", x * 1000.0)
    }
}

pub struct Detector {
    cfg: Config,
    /// Starts before this are not the detector's to judge (processes that
    /// were running when the trace began).
    since_ns: u64,
    /// CLOCK_MONOTONIC → unix seconds.
    mono_to_unix: f64,
    tracks: HashMap<Key, Track>,
    /// Live processes started by exec: (tgid, start_ns) → their group.
    running: HashMap<(u32, u64), Key>,
    /// Processes inside systemd-executor, not yet running their command:
    /// (tgid, start_ns) → the executor's exec.
    in_executor: HashMap<(u32, u64), DetEvent>,
    /// Loops systemd had counted before the trace, by (container, unit).
    priors: HashMap<(Option<String>, String), Prior>,
}

/// True for the argv of `systemd-executor` as a systemd manager execs it,
/// on its way to a unit's command. Told by the argv, which the manager
/// writes: the filename is only a descriptor's path, and the comm that
/// descriptor's number.
pub fn is_executor_argv<A: AsRef<[u8]>>(argv: &[A]) -> bool {
    argv.first()
        .is_some_and(|a| a.as_ref().rsplit(|&b| b == b'/').next() == Some(&b"systemd-executor"[..]))
        && argv.iter().any(|a| a.as_ref() == b"--deserialize")
}

fn is_executor_exec(ev: &DetEvent) -> bool {
    is_executor_argv(&ev.argv)
}

/// A state change worth telling the operator at once.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Detected(Box<Finding>),
    Stopped(Box<Finding>),
}

impl Detector {
    pub fn new(cfg: Config, since_ns: u64, mono_to_unix: f64) -> Self {
        Self {
            cfg,
            since_ns,
            mono_to_unix,
            tracks: HashMap::new(),
            running: HashMap::new(),
            in_executor: HashMap::new(),
            priors: HashMap::new(),
        }
    }

    /// Loops systemd already knew of: a live loop in the same unit is
    /// their continuation, and says so.
    pub fn seed(&mut self, priors: impl IntoIterator<Item = Prior>) {
        for p in priors {
            self.priors.insert((p.container.clone(), p.unit.clone()), p);
        }
    }

    /// The loops from systemd that no live loop continues (yet).
    pub fn priors_alone(&self) -> Vec<Prior> {
        let live: HashSet<(Option<String>, String)> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.is_loop(&self.cfg))
            .filter_map(|(k, _)| Some((k.container.clone(), k.unit.clone()?)))
            .collect();
        let mut out: Vec<Prior> = self
            .priors
            .iter()
            .filter(|(k, _)| !live.contains(*k))
            .map(|(_, p)| p.clone())
            .collect();
        out.sort_by(|a, b| b.restarts.cmp(&a.restarts).then(a.unit.cmp(&b.unit)));
        out
    }

    fn key(ev: &DetEvent, executable: String, argv: Vec<String>) -> Key {
        let in_unit = ev.unit.is_some();
        Key {
            container: ev.container.clone(),
            unit: ev.unit.clone(),
            cgroup: (!in_unit).then(|| ev.cgroup.clone()).flatten(),
            executable,
            argv,
            parent: (!in_unit).then_some(ev.ppid),
        }
    }

    /// Feeds one event (in time order); returns a change if this event made
    /// a loop reportable.
    pub fn event(&mut self, ev: &DetEvent) -> Option<Change> {
        match ev.kind {
            EventKind::Exec if is_executor_exec(ev) => {
                // Whatever the process ran before, it runs that no more.
                self.running.remove(&(ev.tgid, ev.start_ns));
                self.in_executor.insert((ev.tgid, ev.start_ns), ev.clone());
                None
            }
            EventKind::Exec => {
                self.in_executor.remove(&(ev.tgid, ev.start_ns));
                let key = Self::key(ev, ev.filename.clone(), ev.argv.clone());
                self.running.insert((ev.tgid, ev.start_ns), key.clone());
                let t = self
                    .tracks
                    .entry(key.clone())
                    .or_insert_with(|| Track::new(ev, false));
                t.comm = ev.comm.clone();
                t.parent_tgid = ev.ppid;
                t.parent_comm = ev.parent_comm.clone();
                t.start(ev.ts_ns);
                self.maybe_report(&key)
            }
            EventKind::Exit => {
                let lifetime = ev.ts_ns.saturating_sub(ev.start_ns);
                if let Some(x) = self.in_executor.remove(&(ev.tgid, ev.start_ns)) {
                    return self.executor_death(&x, ev, lifetime);
                }
                match self.running.remove(&(ev.tgid, ev.start_ns)) {
                    Some(key) => {
                        if let Some(t) = self.tracks.get_mut(&key) {
                            t.exit(ev.ts_ns, lifetime, ev.outcome());
                        }
                        None
                    }
                    // Never exec'd while traced: a forked worker, judged
                    // at its exit (its start is its fork).
                    None if ev.start_ns >= self.since_ns => {
                        let key = Self::key(ev, format!("fork of {}", ev.comm), Vec::new());
                        let t = self
                            .tracks
                            .entry(key.clone())
                            .or_insert_with(|| Track::new(ev, true));
                        t.start(ev.start_ns);
                        t.exit(ev.ts_ns, lifetime, ev.outcome());
                        self.maybe_report(&key)
                    }
                    None => None,
                }
            }
        }
    }

    /// A unit's start that ended in systemd-executor (`exec`), before its
    /// command ran: started at the executor's exec, ended by `exit`. The
    /// executor's argv is left out of the group: it names a descriptor
    /// that differs from one start to the next.
    fn executor_death(
        &mut self,
        exec: &DetEvent,
        exit: &DetEvent,
        lifetime: u64,
    ) -> Option<Change> {
        let executable = exec.argv.first().cloned().unwrap_or_default();
        let key = Self::key(exec, executable, Vec::new());
        let t = self
            .tracks
            .entry(key.clone())
            .or_insert_with(|| Track::new(exec, false));
        // The executor names itself after the command it was to run.
        t.comm = exit.comm.clone();
        t.parent_tgid = exec.ppid;
        t.parent_comm = exec.parent_comm.clone();
        t.start(exec.ts_ns);
        t.exit(exit.ts_ns, lifetime, exit.outcome());
        self.maybe_report(&key)
    }

    fn maybe_report(&mut self, key: &Key) -> Option<Change> {
        let t = self.tracks.get_mut(key)?;
        if t.reported || !t.is_loop(&self.cfg) {
            return None;
        }
        t.reported = true;
        let f = self.finding(key, self.tracks.get(key)?);
        Some(Change::Detected(Box::new(f)))
    }

    /// Marks loops that have gone quiet as stopped, as of `now_ns`, and
    /// forgets groups that never died and have been idle for 10 minutes,
    /// so memory follows what is running, not everything that ever ran.
    pub fn tick(&mut self, now_ns: u64) -> Vec<Change> {
        let cfg = self.cfg;
        const IDLE_NS: u64 = 600_000_000_000;
        if self.tracks.len() > 4096 {
            self.tracks.retain(|_, t| {
                t.deaths > 0 || now_ns.saturating_sub(t.last_start.max(t.last_exit)) < IDLE_NS
            });
        }
        let mut out = Vec::new();
        let keys: Vec<Key> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.reported && t.stopped_since.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            let t = self.tracks.get_mut(&k).expect("listed above");
            let p50 = quantile_us(t.intervals.as_ref().unwrap_or(empty()), 0.5) * 1000;
            let quiet = (cfg.stop_tenths_of_interval * p50 / 10).max(cfg.stop_min_ns);
            if now_ns.saturating_sub(t.last_start) > quiet {
                t.stopped_since = Some(t.last_exit.max(t.last_start));
                let t = &self.tracks[&k];
                out.push(Change::Stopped(Box::new(self.finding(&k, t))));
            }
        }
        out.sort_by_key(change_order);
        out
    }

    /// Every loop found so far, as of `now_ns` (stopped ones included),
    /// most severe first.
    pub fn findings(&mut self, now_ns: u64) -> Vec<Finding> {
        self.tick(now_ns);
        let mut out: Vec<Finding> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.is_loop(&self.cfg))
            .map(|(k, t)| self.finding(k, t))
            .collect();
        out.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(b.restarts.cmp(&a.restarts))
                .then(a.message.cmp(&b.message))
        });
        out
    }

    fn unix(&self, ns: u64) -> f64 {
        ns as f64 / 1e9 + self.mono_to_unix
    }

    fn finding(&self, k: &Key, t: &Track) -> Finding {
        let intervals = t.intervals.as_ref().unwrap_or(empty());
        let interval = dist_ms(intervals);
        let p50_ms = interval.as_ref().map_or(0.0, |d| d.p50);
        let periodic = p50_ms * 1e6 > self.cfg.max_interval_ns as f64;
        let kind = if periodic {
            FindingKind::FailingPeriodicJob
        } else {
            FindingKind::RespawnLoop
        };
        let per_min = if p50_ms > 0.0 { 60_000.0 / p50_ms } else { 0.0 };
        let per_day = per_min * 60.0 * 24.0;
        let severity = severity_for(kind, per_day);
        let (dom, count) = t
            .outcomes
            .iter()
            .filter(|(o, _)| o.failed())
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(o, c)| (*o, *c))
            .unwrap_or((Outcome::Code(0), 0));
        let share = if t.exits > 0 {
            count as f64 / t.exits as f64
        } else {
            0.0
        };
        let mean = intervals.mean();
        let periodicity = if intervals.len() > 1 && mean > 0.0 {
            1.0 - (intervals.stdev() / mean).min(1.0)
        } else {
            0.0
        };
        let lifetime = dist_ms(t.lifetimes.as_ref().unwrap_or(empty()));
        let who = match (&k.unit, &k.container) {
            (Some(u), Some(c)) => format!("{u} @{c}"),
            (Some(u), None) => u.clone(),
            (None, c) => {
                let base = k.cgroup.clone().unwrap_or_else(|| "?".into());
                match c {
                    Some(c) => format!("{base} @{c}"),
                    None => base,
                }
            }
        };
        let what = if periodic { "failed" } else { "restarted" };
        let message = format!(
            "{who}: {} {what} {} times in {} (every {}, p99 {}), {} in {:.0}% after {} — ≈{} restarts/day",
            k.executable,
            t.restarts(),
            // Starts out of order (a recording is any file) span nothing.
            span(t.last_start.saturating_sub(t.first_start)),
            ms(p50_ms),
            ms(interval.as_ref().map_or(0.0, |d| d.p99)),
            dom.describe(),
            share * 100.0,
            ms(lifetime.as_ref().map_or(0.0, |d| d.p50)),
            thousands(approx3(per_day).round() as u64),
        );
        let (code, signal) = match dom {
            Outcome::Code(c) => (Some(c), None),
            Outcome::Signal(s) => (None, Some(s)),
        };
        let prior = k
            .unit
            .as_ref()
            .and_then(|u| self.priors.get(&(k.container.clone(), u.clone())));
        let message = match prior {
            Some(p) => format!(
                "{message}; continues a loop systemd had counted {} restarts of{}",
                thousands(p.restarts),
                p.first_seen_unix
                    .map(|t| format!(" since {}", crate::clock::date(t)))
                    .unwrap_or_default()
            ),
            None => message,
        };
        Finding {
            type_: "finding",
            kind,
            severity,
            state: if t.stopped_since.is_some() {
                LoopState::Stopped
            } else {
                LoopState::Active
            },
            unit: k.unit.clone(),
            container: k.container.clone(),
            cgroup: k.cgroup.clone(),
            executable: k.executable.clone(),
            argv: k.argv.clone(),
            comm: t.comm.clone(),
            forked: t.forked,
            parent: Parent {
                tgid: t.parent_tgid,
                comm: t.parent_comm.clone(),
            },
            starts: t.starts,
            restarts: t.restarts(),
            deaths: t.deaths,
            rate_per_min: per_min,
            projected_per_day: per_day,
            interval_ms: interval,
            periodicity,
            lifetime_ms: lifetime,
            dominant: DominantOutcome {
                code,
                signal,
                share,
            },
            first_seen_ns: t.first_start,
            last_seen_ns: t.last_start,
            first_seen_unix: self.unix(t.first_start),
            last_seen_unix: self.unix(t.last_start),
            stopped_since_unix: t.stopped_since.map(|s| self.unix(s)),
            source: if prior.is_some() {
                FindingSource::SystemdAndLive
            } else {
                FindingSource::Live
            },
            systemd: prior.cloned(),
            message,
        }
    }
}

fn change_order(c: &Change) -> String {
    match c {
        Change::Detected(f) | Change::Stopped(f) => f.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    /// Builds events for a fixture: a tiny event language keeps each loop
    /// shape readable.
    struct Fx {
        events: Vec<DetEvent>,
        next_pid: u32,
    }

    impl Fx {
        fn new() -> Self {
            Self {
                events: Vec::new(),
                next_pid: 1000,
            }
        }

        /// One process: exec'd at `at`, exits after `life` with `outcome`.
        #[allow(clippy::too_many_arguments)]
        fn run(
            &mut self,
            unit: Option<&str>,
            exe: &str,
            argv: &[&str],
            ppid: u32,
            at: u64,
            life: u64,
            outcome: Outcome,
        ) -> u32 {
            self.next_pid += 1;
            let pid = self.next_pid;
            let base = DetEvent {
                kind: EventKind::Exec,
                ts_ns: at,
                tgid: pid,
                ppid,
                start_ns: at - 100_000,
                cgroup: Some(format!("/{}", unit.unwrap_or("raw"))),
                unit: unit.map(str::to_string),
                container: None,
                comm: exe.rsplit('/').next().unwrap().chars().take(15).collect(),
                parent_comm: "parent".into(),
                filename: exe.into(),
                argv: argv.iter().map(|a| a.to_string()).collect(),
                code: None,
                signal: None,
                core_dumped: None,
            };
            let mut exit = base.clone();
            exit.kind = EventKind::Exit;
            exit.ts_ns = at + life;
            match outcome {
                Outcome::Code(c) => exit.code = Some(c),
                Outcome::Signal(s) => {
                    exit.signal = Some(s);
                    exit.core_dumped = Some(false)
                }
            }
            self.events.push(base);
            self.events.push(exit);
            pid
        }

        /// A worker forked (no exec) at `at` by `ppid`.
        fn fork_worker(&mut self, cg: &str, comm: &str, ppid: u32, at: u64, life: u64, o: Outcome) {
            self.next_pid += 1;
            let mut exit = DetEvent {
                kind: EventKind::Exit,
                ts_ns: at + life,
                tgid: self.next_pid,
                ppid,
                start_ns: at,
                cgroup: Some(cg.into()),
                unit: None,
                container: None,
                comm: comm.into(),
                parent_comm: String::new(),
                filename: String::new(),
                argv: vec![],
                code: None,
                signal: None,
                core_dumped: None,
            };
            match o {
                Outcome::Code(c) => exit.code = Some(c),
                Outcome::Signal(s) => exit.signal = Some(s),
            }
            self.events.push(exit);
        }

        /// A unit's command started as systemd >= 255 starts it: PID 1's
        /// child execs systemd-executor at `at` (by descriptor 9, with
        /// `--deserialize n`), which execs `exe` `handoff` later
        /// (None: it dies first, as `(comm)`); the process exits `life`
        /// after its fork with `outcome`.
        #[allow(clippy::too_many_arguments)]
        fn run_via_executor(
            &mut self,
            unit: &str,
            exe: &str,
            argv: &[&str],
            n: u32,
            at: u64,
            handoff: Option<u64>,
            life: u64,
            outcome: Outcome,
        ) {
            self.next_pid += 1;
            let pid = self.next_pid;
            let n = n.to_string();
            let executor = DetEvent {
                kind: EventKind::Exec,
                ts_ns: at,
                tgid: pid,
                ppid: 1,
                start_ns: at - 100_000,
                cgroup: Some(format!("/system.slice/{unit}")),
                unit: Some(unit.into()),
                container: None,
                comm: "9".into(),
                parent_comm: "systemd".into(),
                filename: "/proc/self/fd/9".into(),
                argv: [
                    "/usr/lib/systemd/systemd-executor",
                    "--deserialize",
                    &n,
                    "--log-level",
                    "info",
                    "--log-target",
                    "journal",
                ]
                .map(str::to_string)
                .to_vec(),
                code: None,
                signal: None,
                core_dumped: None,
            };
            let mut exit = executor.clone();
            exit.kind = EventKind::Exit;
            exit.ts_ns = executor.start_ns + life;
            exit.filename.clear();
            exit.argv.clear();
            let cmd: String = exe.rsplit('/').next().unwrap().chars().take(15).collect();
            match outcome {
                Outcome::Code(c) => exit.code = Some(c),
                Outcome::Signal(s) => exit.signal = Some(s),
            }
            if let Some(h) = handoff {
                let mut program = executor.clone();
                program.ts_ns = at + h;
                program.comm = cmd.clone();
                program.filename = exe.into();
                program.argv = argv.iter().map(|a| a.to_string()).collect();
                self.events.push(program);
                exit.comm = cmd;
            } else {
                exit.comm = format!("({cmd})").chars().take(15).collect();
            }
            self.events.push(executor);
            self.events.push(exit);
        }

        /// Runs the detector over the events in time order; returns the
        /// changes, with the index of the start that caused each.
        fn detect(&mut self, end: u64) -> (Vec<Change>, Vec<Finding>, Detector) {
            self.events.sort_by_key(|e| e.ts_ns);
            let mut d = Detector::new(Config::default(), 0, 0.0);
            let mut changes = Vec::new();
            // As live: time passes (ticks) between events.
            for e in &self.events {
                changes.extend(d.tick(e.ts_ns));
                changes.extend(d.event(e));
            }
            changes.extend(d.tick(end));
            let f = d.findings(end);
            (changes, f, d)
        }
    }

    fn detected(c: &[Change]) -> Vec<&Finding> {
        c.iter()
            .filter_map(|c| match c {
                Change::Detected(f) => Some(&**f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn systemd_loop_every_10s_is_reported_at_its_third_restart() {
        let mut fx = Fx::new();
        for i in 0..10 {
            fx.run(
                Some("serial-getty@ttyS0.service"),
                "/sbin/agetty",
                &["/sbin/agetty", "ttyS0"],
                1,
                100 * S + i * 10 * S,
                12 * MS,
                Outcome::Code(1),
            );
        }
        let (changes, findings, _) = fx.detect(200 * S);
        let d = detected(&changes);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].restarts, 3, "reported at the 3rd restart");
        assert_eq!(d[0].kind, FindingKind::RespawnLoop);
        let f = &findings[0];
        assert_eq!(f.restarts, 9);
        assert_eq!(f.unit.as_deref(), Some("serial-getty@ttyS0.service"));
        assert_eq!(f.dominant.code, Some(1));
        assert_eq!(f.dominant.share, 1.0);
        assert_eq!(f.severity, Severity::High);
        assert!((f.rate_per_min - 6.0).abs() < 0.01, "{}", f.rate_per_min);
        // HdrHistogram with 3 significant figures: within 0.1 %.
        assert!(
            (f.projected_per_day - 8640.0).abs() < 9.0,
            "{}",
            f.projected_per_day
        );
        assert!(f.periodicity > 0.99, "{}", f.periodicity);
        assert_eq!(
            f.message,
            "serial-getty@ttyS0.service: /sbin/agetty restarted 9 times in 1m30s (every 10.0 s, \
             p99 10.0 s), exit status 1 in 100% after 12 ms — ≈8,640 restarts/day"
        );
        // Quiet since 190 s: more than 60 s (and 3 intervals) at 200 s? No.
        assert_eq!(f.state, LoopState::Active);
    }

    #[test]
    fn command_started_through_systemd_executor_is_the_loop_not_the_executor() {
        let mut fx = Fx::new();
        let argv = ["/sbin/agetty", "-o", "-p -- \\u", "ttyS0", "vt220"];
        for i in 0..10 {
            // The descriptor number differs from one start to the next.
            fx.run_via_executor(
                "serial-getty@ttyS0.service",
                "/sbin/agetty",
                &argv,
                34 + (i % 2) as u32,
                100 * S + i * 10 * S,
                Some(25 * MS),
                12 * MS + 25 * MS,
                Outcome::Code(1),
            );
        }
        let (changes, findings, _) = fx.detect(200 * S);
        let d = detected(&changes);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].restarts, 3, "reported at the 3rd restart");
        assert_eq!(findings.len(), 1, "{findings:?}");
        let f = &findings[0];
        assert_eq!(f.executable, "/sbin/agetty");
        assert_eq!(f.argv, argv);
        assert_eq!(f.comm, "agetty");
        assert_eq!(f.parent.comm, "systemd");
        assert_eq!((f.starts, f.restarts, f.deaths), (10, 9, 10));
        assert!((f.rate_per_min - 6.0).abs() < 0.01, "{}", f.rate_per_min);
        assert_eq!(
            f.first_seen_ns,
            100 * S + 25 * MS,
            "the first exec of agetty"
        );
        assert_eq!(f.last_seen_ns, 190 * S + 25 * MS);
        assert!(
            f.message
                .starts_with("serial-getty@ttyS0.service: /sbin/agetty restarted 9 times"),
            "{}",
            f.message
        );
    }

    #[test]
    fn start_that_fails_inside_systemd_executor_is_named_after_it() {
        let mut fx = Fx::new();
        for i in 0..6 {
            // 203/EXEC: the command does not exist.
            fx.run_via_executor(
                "missing.service",
                "/usr/local/bin/nonexistent",
                &[],
                36 + (i % 3) as u32,
                50 * S + i * 1200 * MS,
                None,
                60 * MS,
                Outcome::Code(203),
            );
        }
        let (changes, findings, _) = fx.detect(60 * S);
        assert_eq!(detected(&changes).len(), 1);
        assert_eq!(
            findings.len(),
            1,
            "one group across descriptors: {findings:?}"
        );
        let f = &findings[0];
        assert_eq!(f.executable, "/usr/lib/systemd/systemd-executor");
        assert!(f.argv.is_empty(), "{:?}", f.argv);
        assert_eq!(f.comm, "(nonexistent)");
        assert_eq!(f.parent.comm, "systemd");
        assert_eq!((f.starts, f.restarts, f.deaths), (6, 5, 6));
        assert_eq!(f.dominant.code, Some(203));
        assert_eq!(f.first_seen_ns, 50 * S);
        assert!((f.rate_per_min - 50.0).abs() < 0.1, "{}", f.rate_per_min);
        assert!(
            f.message.starts_with(
                "missing.service: /usr/lib/systemd/systemd-executor restarted 5 times"
            ),
            "{}",
            f.message
        );
    }

    #[test]
    fn fast_loop_is_reported_within_2s_and_marked_stopped_after_60s() {
        let mut fx = Fx::new();
        for i in 0..50 {
            fx.run(
                Some("fast.service"),
                "/usr/bin/crash",
                &["crash"],
                1,
                10 * S + i * 100 * MS,
                5 * MS,
                Outcome::Signal(11),
            );
        }
        // Last start at 14.9 s; stopped once quiet for max(3 × 100 ms, 60 s).
        let (changes, findings, _) = fx.detect(80 * S);
        let d = detected(&changes);
        assert_eq!(d.len(), 1);
        assert!(d[0].last_seen_ns - 10 * S <= 2 * S, "within 2 s");
        let stopped: Vec<_> = changes
            .iter()
            .filter(|c| matches!(c, Change::Stopped(_)))
            .collect();
        assert_eq!(stopped.len(), 1);
        assert_eq!(findings[0].state, LoopState::Stopped);
        assert_eq!(findings[0].dominant.signal, Some(11));
        assert_eq!(findings[0].severity, Severity::Critical);
        assert!(findings[0].message.contains("signal 11 (SIGSEGV) in 100%"));
    }

    #[test]
    fn stopped_mark_keeps_the_3_intervals_or_60s_promise() {
        for (every, not_yet, by) in [(10 * S, 57 * S, 59 * S), (30 * S, 74 * S, 76 * S)] {
            let mut d = Detector::new(Config::default(), 0, 0.0);
            let mut fx = Fx::new();
            for i in 0..5 {
                fx.run(
                    Some("s.service"),
                    "/s",
                    &["/s"],
                    1,
                    S + i * every,
                    MS,
                    Outcome::Code(1),
                );
            }
            fx.events.sort_by_key(|e| e.ts_ns);
            for e in &fx.events {
                d.event(e);
            }
            let last = S + 4 * every;
            assert!(d.tick(last + not_yet).is_empty(), "too early for {every}");
            let c = d.tick(last + by);
            assert!(
                matches!(c.as_slice(), [Change::Stopped(_)]),
                "{every}: {c:?}"
            );
            assert!(by <= (3 * every).max(60 * S), "the promise itself");
        }
    }

    #[test]
    fn stop_and_resume_reports_again() {
        let mut fx = Fx::new();
        for i in 0..5 {
            fx.run(
                Some("a.service"),
                "/a",
                &["/a"],
                1,
                S + i * S,
                MS,
                Outcome::Code(2),
            );
        }
        for i in 0..5 {
            fx.run(
                Some("a.service"),
                "/a",
                &["/a"],
                1,
                200 * S + i * S,
                MS,
                Outcome::Code(2),
            );
        }
        let (changes, findings, _) = fx.detect(210 * S);
        let kinds: Vec<&str> = changes
            .iter()
            .map(|c| match c {
                Change::Detected(_) => "detected",
                Change::Stopped(_) => "stopped",
            })
            .collect();
        assert_eq!(kinds, vec!["detected", "stopped", "detected"]);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].state, LoopState::Active);
        assert_eq!(findings[0].restarts, 9);
    }

    #[test]
    fn hidden_supervisor_loop_and_two_loops_in_one_unit() {
        let mut fx = Fx::new();
        // while true; do app; sleep 1; done  — plus a second failing helper.
        for i in 0..6 {
            let t = S + i * 1_050 * MS;
            fx.run(
                Some("svc.service"),
                "/usr/bin/app",
                &["app"],
                500,
                t,
                50 * MS,
                Outcome::Code(3),
            );
            fx.run(
                Some("svc.service"),
                "/bin/sleep",
                &["sleep", "1"],
                500,
                t + 50 * MS,
                S,
                Outcome::Code(0),
            );
            fx.run(
                Some("svc.service"),
                "/usr/bin/helper",
                &["helper"],
                500,
                t + 10 * MS,
                MS,
                Outcome::Signal(9),
            );
        }
        let (_, findings, _) = fx.detect(8 * S);
        let exes: Vec<&str> = findings.iter().map(|f| f.executable.as_str()).collect();
        assert_eq!(exes.len(), 2, "{exes:?}");
        assert!(exes.contains(&"/usr/bin/app") && exes.contains(&"/usr/bin/helper"));
        assert!(!exes.contains(&"/bin/sleep"), "clean sleeps are no loop");
        let app = findings
            .iter()
            .find(|f| f.executable == "/usr/bin/app")
            .unwrap();
        assert_eq!(app.parent.tgid, 500);
    }

    #[test]
    fn jittered_loop_outside_systemd_keyed_by_parent() {
        let mut fx = Fx::new();
        let jitter = [0, 300, 700, 100, 900, 200, 600, 400];
        for (i, j) in jitter.iter().enumerate() {
            fx.run(
                None,
                "/opt/w",
                &["w", "-x"],
                77,
                S + i as u64 * 2 * S + j * MS,
                30 * MS,
                Outcome::Code(1),
            );
        }
        // The same program under another parent is another loop candidate.
        fx.run(
            None,
            "/opt/w",
            &["w", "-x"],
            78,
            3 * S,
            30 * MS,
            Outcome::Code(1),
        );
        let (_, findings, _) = fx.detect(20 * S);
        assert_eq!(findings.len(), 1);
        let f = &findings[0];
        assert_eq!(f.parent.tgid, 77);
        assert_eq!(f.unit, None);
        assert_eq!(f.cgroup.as_deref(), Some("/raw"));
        assert!(
            f.periodicity < 0.99 && f.periodicity > 0.5,
            "{}",
            f.periodicity
        );
        let i = f.interval_ms.as_ref().unwrap();
        assert!(i.p50 > 1500.0 && i.p50 < 2800.0, "{i:?}");
    }

    #[test]
    fn reforked_worker_without_exec_is_a_loop() {
        let mut fx = Fx::new();
        for i in 0..5 {
            fx.fork_worker(
                "/daemon",
                "nginx",
                300,
                S + i * 500 * MS,
                20 * MS,
                Outcome::Signal(6),
            );
        }
        let (_, findings, _) = fx.detect(4 * S);
        assert_eq!(findings.len(), 1);
        assert!(findings[0].forked);
        assert_eq!(findings[0].executable, "fork of nginx");
        assert_eq!(findings[0].dominant.signal, Some(6));
    }

    #[test]
    fn healthy_timer_and_build_bursts_are_silent() {
        let mut fx = Fx::new();
        // A timer's oneshot every 2 s, exit 0.
        for i in 0..30 {
            fx.run(
                Some("tick.service"),
                "/bin/true",
                &["/bin/true"],
                1,
                S + i * 2 * S,
                MS,
                Outcome::Code(0),
            );
        }
        // A build: thousands of compiler runs, all different, all exit 0,
        // and a few repeated identical ones, also exit 0.
        for i in 0..3000u64 {
            let arg = format!("src{i}.c");
            fx.run(
                Some("build.scope"),
                "/usr/bin/cc",
                &["cc", "-c", &arg],
                42,
                S + i * 3 * MS,
                2 * MS,
                Outcome::Code(0),
            );
        }
        for i in 0..50 {
            fx.run(
                Some("build.scope"),
                "/usr/bin/ld",
                &["ld"],
                42,
                20 * S + i * 10 * MS,
                5 * MS,
                Outcome::Code(0),
            );
        }
        // Fork-only workers that exit 0 (stress-ng --fork).
        for i in 0..2000 {
            fx.fork_worker(
                "/stress",
                "stress-ng-fork",
                9,
                S + i * MS,
                100_000,
                Outcome::Code(0),
            );
        }
        let (changes, findings, _) = fx.detect(100 * S);
        assert!(changes.is_empty(), "{changes:?}");
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[test]
    fn failing_periodic_job_is_a_separate_low_finding() {
        let mut fx = Fx::new();
        for i in 0..6 {
            fx.run(
                Some("backup.service"),
                "/usr/bin/backup",
                &["backup"],
                1,
                S + i * 300 * S,
                2 * S,
                Outcome::Code(4),
            );
        }
        let (_, findings, _) = fx.detect(1600 * S);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].kind, FindingKind::FailingPeriodicJob);
        assert_eq!(findings[0].severity, Severity::Low);
        assert!(
            findings[0].message.contains("failed 5 times"),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn occasional_failures_among_successes_are_not_a_loop() {
        let mut fx = Fx::new();
        for i in 0..40 {
            let o = if i % 10 == 0 {
                Outcome::Code(1)
            } else {
                Outcome::Code(0)
            };
            fx.run(Some("flaky.service"), "/x", &["/x"], 1, S + i * S, MS, o);
        }
        let (_, findings, _) = fx.detect(50 * S);
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[test]
    fn processes_started_before_the_trace_are_not_judged() {
        let mut d = Detector::new(Config::default(), 50 * S, 0.0);
        for i in 0..10u32 {
            let e = DetEvent {
                kind: EventKind::Exit,
                ts_ns: 60 * S + i as u64,
                tgid: 10 + i,
                ppid: 1,
                start_ns: 10 * S,
                cgroup: None,
                unit: None,
                container: None,
                comm: "old".into(),
                parent_comm: String::new(),
                filename: String::new(),
                argv: vec![],
                code: Some(1),
                signal: None,
                core_dumped: None,
            };
            assert_eq!(d.event(&e), None);
        }
        assert!(d.findings(70 * S).is_empty());
    }

    #[test]
    fn names_are_the_serialized_ones() {
        for s in [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in [LoopState::Active, LoopState::Stopped] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn severity_ladder_thresholds() {
        use FindingKind::*;
        assert_eq!(severity_for(FailingPeriodicJob, 1e9), Severity::Low);
        assert_eq!(severity_for(RespawnLoop, 86_400.0), Severity::Critical);
        assert_eq!(severity_for(RespawnLoop, 86_399.0), Severity::High);
        assert_eq!(severity_for(RespawnLoop, 1_000.0), Severity::High);
        assert_eq!(severity_for(RespawnLoop, 999.0), Severity::Medium);
        assert_eq!(severity_for(RespawnLoop, 0.0), Severity::Medium);
    }

    #[test]
    fn formatting_helpers() {
        assert_eq!(thousands(8640), "8,640");
        assert_eq!(thousands(1234567.4_f64.round() as u64), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(approx3(8641.2), 8640.0);
        assert_eq!(approx3(123_456.0), 123_000.0);
        assert_eq!(approx3(999.4), 999.0);
        assert_eq!(span(370 * S), "6m10s");
        assert_eq!(span(500 * MS), "0.5s");
        assert_eq!(ms(12.3), "12 ms");
        assert_eq!(ms(10_000.0), "10.0 s");
    }
}
