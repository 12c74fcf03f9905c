//! `spawnscope sentinel`: the resident mode, a consumer of the session.
//! The probe counts in the kernel; the loop wakes once per interval (early
//! only for an OOM kill, a drill-down's records or a cgroup ring half
//! full), folds the counts into per-unit totals that survive restarts,
//! finds loops from counts alone, drills into up to [`DRILL_SLOTS`] units'
//! events at once for a bounded time, raises alerts and serves `/metrics`.

pub mod alert;
pub mod config;
pub mod expo;
pub mod hook;
pub mod journald;
pub mod metrics;
pub mod notify;
pub mod state;
pub mod track;

use std::{
    collections::HashMap,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

pub use spawnscope_common::DRILL_SLOTS;
use spawnscope_common::{Counters, Lifetimes};
use tokio::time::MissedTickBehavior;

use self::{
    alert::{AlertError, AlertEvent, Alerter, Priority},
    config::{Config, ConfigError},
    expo::Health,
    hook::Hook,
    journald::Journald,
    notify::Notifier,
    state::{Loaded, StateError},
    track::{TrackConfig, Tracker},
};
use crate::{
    caps,
    cgroupfs::{CgroupNames, Resolved},
    cli::SentinelArgs,
    clock::{monotonic_now_ns, now_unix},
    detect::{self, Change, Detector},
    events::{self, Event},
    kernel::{KernelError, LoadOptions, ProbeLog},
    mempress::{self, MemConfig},
    report::{self, By, Snapshot},
    session::{Ask, Item, MemAlert, Options, Session, SessionError, Signals},
};

/// Where the sentinel looks for its configuration when not told.
pub const DEFAULT_CONFIG: &str = "/etc/spawnscope/sentinel.toml";
/// The event ring while drilling: the drilled units' records for one
/// interval.
pub const DRILL_BUFFER_BYTES: u32 = 128 << 10;
/// The cgroup ring: records wait in it until the next poll, and wake the
/// loop early only once it is half full (about 120 records; sooner with a
/// small counter map), so a few hundred records of room is enough; and it
/// is resident memory (mapped twice).
pub const CGROUP_BUFFER_BYTES: u32 = 256 << 10;
/// A drill-down ends after this long even without an answer.
pub const DRILL_FOR: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum SentinelError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Alerts(#[from] AlertError),
    #[error(transparent)]
    Metrics(#[from] metrics::BindError),
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] io::Error),
    #[error("cannot drop capabilities: {0}")]
    Caps(#[source] io::Error),
}

/// The configuration: the file named, else the default file if there is
/// one, else the defaults.
pub fn load_config(path: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
    match path {
        Some(p) => Ok((Config::load(p)?, Some(p.to_path_buf()))),
        None if Path::new(DEFAULT_CONFIG).exists() => {
            let p = PathBuf::from(DEFAULT_CONFIG);
            Ok((Config::load(&p)?, Some(p)))
        }
        None => Ok((Config::default(), None)),
    }
}

/// Structured lines on stderr, with the syslog priority prefix journald
/// reads ("<6>" info ... "<3>" error).
fn log(priority: Priority, msg: &str) {
    let _ = writeln!(io::stderr(), "<{}>spawnscope: {msg}", priority as u8);
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Returns freed heap to the system (glibc keeps it otherwise).
fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory; no pointer is passed.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn bpf_stats_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|s| s.trim() == "1")
}

/// Must be called inside the runtime: the hook's runner is a task.
fn make_alerter(cfg: &Config) -> Result<Alerter<io::Stderr>, AlertError> {
    let hook = cfg.hook.clone().map(|argv| {
        Hook::start(
            argv,
            Arc::new(|line: &str| {
                let _ = writeln!(io::stderr(), "{line}");
            }),
        )
    });
    Ok(
        Alerter::new(io::stderr(), cfg.alerts_jsonl.as_deref(), hook)?
            .with_journal(Journald::from_env()),
    )
}

fn mem_config(cfg: &Config) -> MemConfig {
    MemConfig {
        warn_before_s: cfg.mem_warn_before.as_secs_f64(),
        psi_percent: cfg.psi_warn,
        psi_for_s: cfg.psi_for.as_secs_f64(),
        ..MemConfig::default()
    }
}

/// An event drill-down into one unit, in one of the probe's slots.
struct Drill {
    slot: usize,
    unit: String,
    until: Instant,
    /// Opened from counts already: only the detail is wanted.
    enrich: bool,
    detector: Detector,
    /// Each process's latest exec. Since systemd 255, PID 1 starts a
    /// service through systemd-executor, which then execs the program in
    /// the same process: the program is a process's last exec, not the
    /// first exec the unit shows.
    execs: HashMap<u32, (String, Vec<String>)>,
    /// The last abnormal death of a process whose exec was seen, with
    /// what that process ran.
    named: Option<serde_json::Value>,
    /// Any exec, for a drill that ends before a death names the program.
    last_exec: Option<(String, Vec<String>)>,
}

/// Processes whose exec a drill remembers; past that it starts over (the
/// loop's next start is seen again).
const DRILL_MAX_PROCS: usize = 1024;

impl Drill {
    /// What was learnt, from the event detector's finding if it made one,
    /// else from a death and what that process ran, else from any exec.
    fn detail(&self, f: Option<&detect::Finding>) -> Option<serde_json::Value> {
        if let Some(f) = f {
            let mut d = serde_json::json!({
                "executable": f.executable,
                "argv": f.argv,
                "comm": f.comm,
                "exit_share": f.dominant.share,
                "interval_ms": f.interval_ms,
                "lifetime_ms": f.lifetime_ms,
            });
            if let Some(c) = f.dominant.code {
                d["exit_code"] = c.into();
            }
            if let Some(s) = f.dominant.signal {
                d["signal"] = signal_text(s).into();
            }
            return Some(d);
        }
        if let Some(n) = &self.named {
            return Some(n.clone());
        }
        let (exe, argv) = self.last_exec.clone()?;
        Some(serde_json::json!({ "executable": exe, "argv": argv }))
    }

    /// Feeds one of the drilled unit's events; true when the program that
    /// loops is named (a death paired with its own process's exec).
    fn see(&mut self, e: &Event, de: Option<&detect::DetEvent>) -> bool {
        match e {
            Event::Exec(x) => {
                if self.execs.len() >= DRILL_MAX_PROCS {
                    self.execs.clear();
                }
                // The executor is named by its path, not the descriptor it
                // was started from, and its argv (systemd's own) left out:
                // it is what a start that fails before the program is.
                let exe = if detect::is_executor_argv(&x.argv) {
                    (String::from_utf8_lossy(&x.argv[0]).into_owned(), Vec::new())
                } else {
                    (
                        String::from_utf8_lossy(&x.filename).into_owned(),
                        de.map(|de| de.argv.clone()).unwrap_or_default(),
                    )
                };
                self.execs.insert(x.tgid, exe.clone());
                self.last_exec = Some(exe);
                false
            }
            Event::Exit(x) => {
                let ran = self.execs.remove(&x.tgid);
                let Some(de) = de else { return false };
                let died = de.signal.is_some() || de.code.unwrap_or(0) != 0;
                let Some((exe, argv)) = ran.filter(|_| died) else {
                    return false;
                };
                let mut d = serde_json::json!({ "executable": exe, "argv": argv });
                match de.signal {
                    Some(s) => d["signal"] = signal_text(s).into(),
                    None => d["exit_code"] = de.code.into(),
                }
                self.named = Some(d);
                true
            }
            _ => false,
        }
    }
}

fn signal_text(s: u8) -> String {
    detect::signal_name(s).map_or_else(|| format!("signal {s}"), str::to_string)
}

/// Drill-downs waiting for a slot. Loops found from counts, to be named,
/// come before every candidate: a candidate (a script whose commands fail
/// now and then) must not hold a slot while a real loop waits unnamed.
#[derive(Default)]
struct DrillQueue {
    waiting: Vec<(String, bool)>,
}

impl DrillQueue {
    fn push(&mut self, unit: String, enrich: bool) {
        if enrich {
            self.waiting.retain(|(u, _)| *u != unit);
            let at = self
                .waiting
                .iter()
                .position(|(_, enrich)| !enrich)
                .unwrap_or(self.waiting.len());
            self.waiting.insert(at, (unit, true));
        } else if !self.waiting.iter().any(|(u, _)| *u == unit) {
            self.waiting.push((unit, false));
        }
    }

    fn pop(&mut self) -> Option<(String, bool)> {
        (!self.waiting.is_empty()).then(|| self.waiting.remove(0))
    }

    /// Which running drills yield their slot (indices into `running`,
    /// highest first) and which waiting ones start, given whether each
    /// running drill names a loop (`true`) or judges a candidate. Free
    /// slots go in queue order; when none is free, a loop waiting to be
    /// named takes the slot of the latest candidate. The caller queues the
    /// yielded candidates again, behind what still waits.
    fn plan(&mut self, running: &[bool], slots: usize) -> (Vec<usize>, Vec<(String, bool)>) {
        let mut free = slots.saturating_sub(running.len());
        let mut candidates: Vec<usize> = (0..running.len()).filter(|&i| !running[i]).collect();
        let (mut yields, mut starts) = (Vec::new(), Vec::new());
        while let Some(&(_, enrich)) = self.waiting.first() {
            if free > 0 {
                free -= 1;
            } else if let Some(i) = candidates.pop().filter(|_| enrich) {
                yields.push(i);
            } else {
                break;
            }
            starts.extend(self.pop());
        }
        yields.sort_unstable_by(|a, b| b.cmp(a));
        (yields, starts)
    }
}

struct Sentinel {
    cfg: Config,
    config_path: Option<PathBuf>,
    s: Session,
    tracker: Tracker,
    alerter: Alerter<io::Stderr>,
    body: metrics::Shared,
    prev: Snapshot,
    /// Final counts of cgroups removed since the last poll, read and freed
    /// as their removal is reported, so the kernel maps hold live cgroups
    /// only, however fast transient units come and go.
    folded: Vec<(String, Counters, Option<Lifetimes>)>,
    /// Live cgroup ids per unit label, from the last reading.
    unit_ids: HashMap<String, Vec<u64>>,
    /// Where each unit's cgroup was last created: where a drill-down waits
    /// for its next restart when it has no cgroup between two; and the
    /// unit's name and container apart, for the memory watch.
    unit_paths: HashMap<String, (String, String, Option<String>)>,
    drills: Vec<Drill>,
    queue: DrillQueue,
    health: Health,
    labels: expo::Labels,
    polls_since_save: u32,
    last_summary: Instant,
    last_poll: Instant,
}

fn label_of(names: &CgroupNames, id: u64) -> String {
    report::key_of(By::Unit, id, &names.resolve(id)).label()
}

fn label_resolved(id: u64, r: &Resolved) -> String {
    report::key_of(By::Unit, id, r).label()
}

impl Sentinel {
    /// Cgroup creations and removals, then event records; the ids of the
    /// removed cgroups, whose final counts are folded.
    fn drain(&mut self) -> Result<Vec<u64>, SentinelError> {
        let tracker = &mut self.tracker;
        let unit_paths = &mut self.unit_paths;
        let mono_to_unix = self.s.mono_to_unix;
        let mut removed = Vec::new();
        self.s.drain_cgroups(|m, names| {
            if m.removed {
                removed.push(m.id);
                return;
            }
            if m.truncated {
                return;
            }
            let r = names.resolve(m.id);
            // Only units are restarted into a new cgroup; a scope or a
            // sub-cgroup coming and going is no restart.
            if r.owner
                .as_ref()
                .is_some_and(|o| o.unit.is_some() && o.subpath.is_none())
            {
                let key = report::key_of(By::Unit, m.id, &r);
                let label = key.label();
                tracker.creation(&label, m.ts_ns, m.ts_ns as f64 / 1e9 + mono_to_unix);
                if unit_paths.len() >= 2 * state::MAX_UNITS {
                    unit_paths.clear();
                }
                if let Some(p) = r.path {
                    let who = (
                        p,
                        key.name().to_string(),
                        key.container().map(str::to_string),
                    );
                    unit_paths.insert(label, who);
                }
            }
        });
        // Events before removals: an OOM victim's cgroup may be gone by
        // now, and its name is forgotten with its counts.
        let mut kills = Vec::new();
        let mut seen: Vec<(usize, Option<Change>, bool)> = Vec::new();
        let drills = &mut self.drills;
        self.s.drain_events(|item| {
            match item {
                Item::OomKill(k) => kills.push(k),
                Item::Event(n) => {
                    if drills.is_empty() {
                        return Ok(());
                    }
                    let label = label_resolved(n.event.cgroup_id(), n.resolved);
                    let Some(i) = drills.iter().position(|d| d.unit == label) else {
                        return Ok(());
                    };
                    let d = &mut drills[i];
                    let de = events::det_event(n.event, n.place);
                    let named = d.see(n.event, de.as_ref());
                    let change = de.and_then(|de| d.detector.event(&de));
                    seen.push((i, change, named));
                }
            }
            Ok::<(), SentinelError>(())
        })?;
        for k in kills {
            let msg = format!("OOM kill in {}: {}", k.unit_label, k.human);
            self.alerter.notice(
                AlertEvent::OomKill,
                &k.unit_label,
                Priority::Err,
                k.time_unix,
                &msg,
                k.json.clone(),
            );
            self.tracker.state.push_oom_kill(k.json);
        }
        // A drill ends at most once, whatever else its records said.
        let mut done: Vec<(String, Option<serde_json::Value>, bool)> = Vec::new();
        for (i, change, named) in seen {
            let d = &self.drills[i];
            if done.iter().any(|(u, _, _)| *u == d.unit) {
                continue;
            }
            if let Some(Change::Detected(f)) = change {
                done.push((d.unit.clone(), d.detail(Some(&f)), true));
            } else if d.enrich && named {
                // The loop is proven by its counts; one death and what
                // that process ran name it.
                done.push((d.unit.clone(), d.detail(None), false));
            }
        }
        for (unit, detail, looped) in done {
            self.drill_done(&unit, detail, looped);
        }
        for &id in &removed {
            self.fold_removed(id)?;
        }
        Ok(removed)
    }

    /// A removed cgroup's final counts, less what earlier polls took,
    /// go to its unit at the next poll; its map entries and name are freed.
    fn fold_removed(&mut self, id: u64) -> Result<(), SentinelError> {
        let before_c = self.prev.per_cgroup.remove(&id);
        let before_l = self.prev.lifetimes.remove(&id);
        if let Some((c, l)) = self.s.probe.take(id)? {
            let d = c.saturating_sub(&before_c.unwrap_or(Counters::ZERO));
            let l = l.map(|l| l.saturating_sub(&before_l.unwrap_or(Lifetimes::ZERO)));
            self.folded.push((label_of(&self.s.names, id), d, l));
        }
        self.s.names.forget(id);
        Ok(())
    }

    fn drill_off(&mut self, slot: usize) {
        if let Err(e) = self.s.probe.drill_off(slot) {
            log(
                Priority::Warning,
                &format!("cannot end the drill-down: {e}"),
            );
        }
    }

    /// Ends the drill-down on `unit`; `looped`: the events proved a loop.
    fn drill_done(&mut self, unit: &str, detail: Option<serde_json::Value>, looped: bool) {
        let Some(i) = self.drills.iter().position(|d| d.unit == unit) else {
            return;
        };
        let d = self.drills.swap_remove(i);
        self.drill_off(d.slot);
        if looped || d.enrich {
            let gained = self.tracker.confirm(unit, detail.clone());
            if gained && let Some(f) = self.tracker.finding(unit) {
                self.alerter.notice(
                    AlertEvent::FindingIdentified,
                    unit,
                    Priority::Info,
                    now_unix(),
                    &f.message,
                    serde_json::to_value(&f).expect("finding JSON"),
                );
            }
        } else {
            self.tracker.reject(unit, now_unix());
        }
        log(
            Priority::Info,
            &format!(
                "drill-down into {unit} ended: {}",
                match (looped, &detail) {
                    (true, _) => "loop confirmed",
                    (false, Some(_)) if d.enrich => "detail gathered",
                    _ if d.enrich => "nothing seen",
                    _ => "no loop seen",
                }
            ),
        );
    }

    /// Ends a candidate's drill-down without a verdict and queues it again,
    /// behind the loops waiting to be named.
    fn drill_yield(&mut self, i: usize) {
        let d = self.drills.swap_remove(i);
        self.drill_off(d.slot);
        log(
            Priority::Info,
            &format!(
                "drill-down into {} paused: a loop found from its counts is named first",
                d.unit
            ),
        );
        self.queue.push(d.unit, d.enrich);
    }

    fn queue_drill(&mut self, unit: String, enrich: bool) {
        match self.drills.iter_mut().find(|d| d.unit == unit) {
            // A candidate that is itself the loop to name goes on,
            // keeping what it has seen, with naming as its aim.
            Some(d) => d.enrich |= enrich,
            None => self.queue.push(unit, enrich),
        }
    }

    /// Fills free slots from the queue; a loop waiting to be named takes
    /// a candidate's slot when none is free.
    fn schedule_drills(&mut self) {
        let running: Vec<bool> = self.drills.iter().map(|d| d.enrich).collect();
        let (yields, starts) = self.queue.plan(&running, DRILL_SLOTS);
        // Highest index first: swap_remove leaves the lower ones in place.
        for i in yields {
            self.drill_yield(i);
        }
        for (u, enrich) in starts {
            self.start_drill(u, enrich);
        }
    }

    fn start_drill(&mut self, unit: String, enrich: bool) {
        let Some(slot) = (0..DRILL_SLOTS).find(|s| self.drills.iter().all(|d| d.slot != *s)) else {
            self.queue.push(unit, enrich);
            return;
        };
        let ids = self.unit_ids.get(&unit).cloned().unwrap_or_default();
        // The path the unit's next cgroup will be created at.
        let path = ids
            .iter()
            .filter_map(|id| self.s.names.resolve(*id).path)
            .find(|p| !p.is_empty())
            .or_else(|| self.unit_paths.get(&unit).map(|(p, _, _)| p.clone()))
            .unwrap_or_default();
        if ids.is_empty() && path.is_empty() {
            return;
        }
        if let Err(e) = self.s.probe.drill(slot, path.as_bytes(), &ids) {
            log(Priority::Warning, &format!("cannot drill into {unit}: {e}"));
            return;
        }
        self.health.drills += 1;
        log(
            Priority::Info,
            &format!(
                "drilling into {unit} ({}) for up to {}s",
                if enrich {
                    "to name what loops"
                } else {
                    "a candidate loop"
                },
                DRILL_FOR.as_secs()
            ),
        );
        self.drills.push(Drill {
            slot,
            unit,
            until: Instant::now() + DRILL_FOR,
            enrich,
            detector: Detector::new(
                detect::Config::default(),
                monotonic_now_ns(),
                self.s.mono_to_unix,
            ),
            execs: HashMap::new(),
            named: None,
            last_exec: None,
        });
    }

    /// One poll: read, fold, detect, alert, render.
    fn poll(&mut self) -> Result<(), SentinelError> {
        let started = Instant::now();
        // The reading first, then the drain: every id in the reading had
        // its mkdir record submitted before it was first counted, so the
        // drain names them all (bar lost ones). Drained first, a unit made,
        // run and removed between the two would be counted under its bare
        // id, and its removal then fold nothing under its name.
        let mut cur = self.s.probe.snapshot()?;
        for id in self.drain()? {
            // Folded whole, from its final counts.
            cur.per_cgroup.remove(&id);
            cur.lifetimes.remove(&id);
        }
        self.s.names.refresh(cur.per_cgroup.keys());
        let now = now_unix();

        let mut deltas = std::mem::take(&mut self.folded);
        let churn = deltas.len() >= 64;
        let mut unit_ids: HashMap<String, Vec<u64>> = HashMap::new();
        for (id, c) in &cur.per_cgroup {
            let before = self
                .prev
                .per_cgroup
                .get(id)
                .copied()
                .unwrap_or(Counters::ZERO);
            let d = c.saturating_sub(&before);
            let l = cur
                .lifetimes
                .get(id)
                .map(|l| l.saturating_sub(self.prev.lifetimes.get(id).unwrap_or(&Lifetimes::ZERO)));
            let label = label_of(&self.s.names, *id);
            unit_ids.entry(label.clone()).or_default().push(*id);
            if !d.is_zero() || l.is_some_and(|l| !l.is_zero()) {
                deltas.push((label, d, l));
            }
        }
        self.unit_ids = unit_ids;
        let out = self.tracker.interval(now, deltas);

        // Alerts: every open finding is reported each poll; the alerter
        // sends only openings, escalations and closings.
        for f in self.tracker.findings() {
            let rank = f.severity as u8;
            let detail = serde_json::to_value(&f).expect("finding JSON");
            self.alerter
                .finding(f.key(), rank, true, now, &f.message, detail);
        }
        for f in &out.closed {
            let detail = serde_json::to_value(f).expect("finding JSON");
            self.alerter
                .finding(f.key(), f.severity as u8, false, now, &f.message, detail);
        }
        if self.last_summary.elapsed() >= Duration::from_secs(3600) {
            self.alerter.summarise();
            self.last_summary = Instant::now();
        }

        // Drill-downs: bounded in time and in number.
        let expired: Vec<(String, Option<serde_json::Value>)> = self
            .drills
            .iter()
            .filter(|d| Instant::now() >= d.until)
            .map(|d| (d.unit.clone(), d.detail(None)))
            .collect();
        for (unit, detail) in expired {
            self.drill_done(&unit, detail, false);
        }
        for u in &out.opened {
            if self.tracker.finding(u).is_some_and(|f| f.detail.is_none()) {
                self.queue_drill(u.clone(), true);
            }
        }
        for u in out.drill {
            self.queue_drill(u, false);
        }
        self.schedule_drills();

        // Memory: the loops' rates give the hidden victims' growth (PID 1,
        // journald, the journal beside them) per restart.
        let loops = self
            .tracker
            .findings()
            .iter()
            .filter_map(|f| {
                let (_, unit, container) = self.unit_paths.get(&f.unit)?;
                Some(mempress::LoopRate {
                    unit: unit.clone(),
                    container: container.clone(),
                    restarts_per_s: f.rate_per_min / 60.0,
                })
            })
            .collect();
        for a in self.s.sample_memory(loops) {
            let detail = a.to_json();
            match &a {
                MemAlert::Warning(w) => {
                    self.health.memory_warnings += 1;
                    self.alerter.memory_warning(now, &w.message, detail);
                }
                MemAlert::MemcgOomKill(k) => self.alerter.notice(
                    AlertEvent::MemcgOomKill,
                    "memory",
                    Priority::Err,
                    now,
                    &k.message,
                    detail,
                ),
            }
        }

        // Health and metrics.
        self.health.dropped = cur.dropped;
        self.health.overflow = cur.overflow;
        self.health.probe = cur.probe;
        self.health.polls += 1;
        self.health.rss_bytes = rss_bytes();
        self.health.programs = bpf_stats_enabled().then(|| self.s.probe.prog_stats());
        self.health.alerts = self.alerter.sent;
        self.health.alerts_suppressed += std::mem::take(&mut self.alerter.suppressed);
        let f = self.s.mem.forecast();
        self.health.memory_used_bytes =
            (f.total_bytes > 0).then_some((f.used_bytes, f.total_bytes));
        self.health.hidden = f.hidden;
        self.health.poll_seconds = started.elapsed().as_secs_f64();
        self.health.poll_interval_seconds = self.cfg.interval.as_secs_f64();
        self.health.last_poll_unix = now_unix();
        let text = expo::render(
            &self.tracker.state,
            &self.tracker.findings(),
            self.cfg.top_units as usize,
            &self.health,
            &mut self.labels,
        );
        *self.body.lock().unwrap_or_else(|p| p.into_inner()) = text;
        self.prev = cur;
        if churn {
            trim_heap();
        }

        self.polls_since_save += 1;
        if self.polls_since_save >= self.cfg.save_every {
            self.save();
        }
        self.last_poll = Instant::now();
        Ok(())
    }

    fn save(&mut self) {
        // Transient units come and go by the thousand: hand the heap they
        // freed back, so the resident set tracks what is kept.
        trim_heap();
        self.polls_since_save = 0;
        self.tracker.state.saved_unix = now_unix();
        match state::save(&self.cfg.state, &self.tracker.state) {
            Ok(()) => self.health.state_saves += 1,
            Err(e) => {
                self.health.state_save_errors += 1;
                log(Priority::Err, &e.to_string());
            }
        }
    }

    /// SIGHUP: a valid file replaces the configuration; an invalid one is
    /// logged and the old configuration stays.
    fn reload(&mut self) {
        let Some(path) = self.config_path.clone() else {
            log(
                Priority::Notice,
                "SIGHUP: no configuration file in use; nothing to reload",
            );
            return;
        };
        let new = match Config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                log(
                    Priority::Err,
                    &format!("SIGHUP: keeping the old configuration: {e}"),
                );
                return;
            }
        };
        if let Some(dir) = new.state.parent().filter(|d| !d.as_os_str().is_empty())
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            log(
                Priority::Err,
                &format!(
                    "SIGHUP: keeping the old configuration: cannot create the state directory {}: {e}",
                    dir.display()
                ),
            );
            return;
        }
        let mut alerter = match make_alerter(&new) {
            Ok(a) => a,
            Err(e) => {
                log(
                    Priority::Err,
                    &format!("SIGHUP: keeping the old configuration: {e}"),
                );
                return;
            }
        };
        // Finding states carry over, so nothing open is alerted again.
        alerter.take_state_from(&mut self.alerter);
        // The old hook finishes what it has queued, on its own.
        if let Some(h) = self.alerter.take_hook() {
            tokio::spawn(h.finish());
        }
        self.alerter = alerter;
        if new.listen != self.cfg.listen {
            log(
                Priority::Warning,
                &format!(
                    "SIGHUP: listen {} -> {}: takes effect at the next start; still serving {}",
                    self.cfg.listen, new.listen, self.cfg.listen
                ),
            );
        }
        self.s.mem.set_config(mem_config(&new));
        let listen = self.cfg.listen;
        self.cfg = Config { listen, ..new };
        log(
            Priority::Info,
            &format!("SIGHUP: configuration reloaded from {}", path.display()),
        );
    }
}

pub fn run(args: &SentinelArgs) -> Result<(), SentinelError> {
    let (cfg, config_path) = load_config(args.config.as_deref())?;
    if args.check_config {
        println!(
            "{}: valid",
            config_path
                .as_deref()
                .map_or("(defaults)".to_string(), |p| p.display().to_string())
        );
        return Ok(());
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SentinelError::Runtime)?
        .block_on(sentinel(args, cfg, config_path))
}

async fn sentinel(
    args: &SentinelArgs,
    cfg: Config,
    config_path: Option<PathBuf>,
) -> Result<(), SentinelError> {
    let mut signals = Signals::install()?;
    let notifier = Notifier::from_env();
    let s = Session::open(Options {
        mountinfo: &args.mountinfo,
        load: LoadOptions {
            btf_path: args.btf.clone(),
            max_cgroups: args.max_cgroups,
            events: None,
            exit_flavour: None,
            drill_buffer: Some(DRILL_BUFFER_BYTES),
            cgroup_removals: true,
            cgroup_buffer: Some(CGROUP_BUFFER_BYTES),
            lazy_cgroups: true,
            // A drill-down's records wake the sentinel as they come: only
            // the drilled units pay for that, and only while drilled.
            lazy_events: false,
            probe_log: if args.probe_log {
                ProbeLog::Journal
            } else {
                ProbeLog::Off
            },
        },
        names_cap: 16_384,
        mem: mem_config(&cfg),
    })?;
    if let Some(w) = &s.attribution_warning {
        log(Priority::Warning, w);
    }
    if let Some(w) = &s.probe.oom_scope_warning {
        log(Priority::Warning, w);
    }
    // The state is read once the kernel has proved it can run the probe:
    // on a kernel it cannot, the one line that says why is all there is.
    if let Some(dir) = cfg.state.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| SentinelError::StateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let state = match state::load(&cfg.state, now_unix())? {
        Loaded::Fresh(s) => {
            log(
                Priority::Info,
                &format!("no state at {}: counting from now", cfg.state.display()),
            );
            s
        }
        Loaded::Restored(s) => {
            log(
                Priority::Info,
                &format!(
                    "state restored from {}: {} units, {} open findings, counting since {}",
                    cfg.state.display(),
                    s.units.len(),
                    s.findings.len(),
                    crate::clock::date(s.since_unix)
                ),
            );
            s
        }
        Loaded::MovedAside {
            state,
            moved_to,
            why,
        } => {
            log(
                Priority::Warning,
                &format!(
                    "state {} unusable ({why}); moved to {} and counting from now",
                    cfg.state.display(),
                    moved_to.display()
                ),
            );
            state
        }
    };
    let mut alerter = make_alerter(&cfg)?;
    let body: metrics::Shared = Arc::new(Mutex::new(String::new()));
    let listener = metrics::bind(cfg.listen)?;
    let bound = listener.local_addr().map_err(|source| metrics::BindError {
        addr: cfg.listen,
        source,
    })?;

    // Loading parsed the kernel's BTF (several MiB, now freed).
    trim_heap();
    // Everything privileged is done: the probe is loaded and attached, the
    // port is bound. What is left reads maps through open descriptors.
    // Read while the capabilities last: a container's manager is reached
    // from inside its PID namespace (setns needs CAP_SYS_ADMIN). On threads
    // of its own, all gone before the capabilities are dropped: a thread
    // keeps the capabilities it was made with.
    let known = if args.no_systemd {
        None
    } else {
        crate::history::read_apart(Path::new("/proc"))
    };
    let release = caps::kernel_release();
    caps::drop_to(&caps::needed_after_load(&release)).map_err(SentinelError::Caps)?;

    let tracker = Tracker::new(TrackConfig::default(), state);
    // Findings open before a restart were alerted then.
    for f in tracker.findings() {
        alerter.seed(f.key(), f.severity as u8);
    }
    let interval = cfg.interval;
    let mut lp = Sentinel {
        cfg,
        config_path,
        s,
        tracker,
        alerter,
        body: Arc::clone(&body),
        prev: Snapshot::default(),
        folded: Vec::new(),
        unit_ids: HashMap::new(),
        unit_paths: HashMap::new(),
        drills: Vec::new(),
        queue: DrillQueue::default(),
        health: Health::default(),
        labels: expo::Labels::default(),
        polls_since_save: 0,
        last_summary: Instant::now(),
        last_poll: Instant::now(),
    };
    let started = format!(
        "sentinel started: interval {}, metrics on http://{bound}/metrics, state {}",
        humantime::format_duration(interval),
        lp.cfg.state.display()
    );
    // systemd's counters before the first poll: its alerts then include
    // the loops systemd has been counting, and totals start at its count.
    if let Some(known) = known {
        if let Some(line) = known.problem() {
            log(Priority::Info, &line);
        }
        lp.tracker.seed(now_unix(), known.mono_ns, known.seeds());
    }
    // The first poll fills /metrics before anyone is told it is there:
    // scripts and tests wait for this line, systemd for READY=1. Until
    // then, scrapes wait in the listen backlog rather than read an empty
    // page. The page is served from a thread of its own, made after the
    // capabilities are dropped so that it holds no more than the loop: a
    // stuck poll loop leaves it answering, its last poll's time standing
    // still.
    lp.poll()?;
    metrics::spawn(listener, body)?;
    log(Priority::Info, &started);
    notifier.ready(&started);

    let new_tick = |every: Duration| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        t.set_missed_tick_behavior(MissedTickBehavior::Skip);
        t
    };
    let mut poll_tick = new_tick(lp.cfg.interval);
    let mut pet = new_tick(notifier.watchdog_every.unwrap_or(Duration::from_secs(3600)));
    loop {
        tokio::select! {
            biased;
            ask = signals.recv() => match ask {
                Ask::Stop => break,
                Ask::Reload => {
                    let before = lp.cfg.interval;
                    lp.reload();
                    if lp.cfg.interval != before {
                        poll_tick = new_tick(lp.cfg.interval);
                    }
                }
            },
            _ = poll_tick.tick() => lp.poll()?,
            // An OOM kill or a drill-down record wakes the loop early, and
            // so does a cgroup ring half full (a burst of transient units).
            r = lp.s.ready() => {
                r?;
                lp.drain()?;
            }
            // Petted only while polls keep coming: a loop that still turns
            // but no longer polls is as stuck as one that does not turn.
            _ = pet.tick(), if notifier.watchdog_every.is_some() => {
                if lp.last_poll.elapsed() < 2 * lp.cfg.interval + Duration::from_secs(5) {
                    notifier.watchdog();
                }
            }
        }
    }
    notifier.stopping();
    // SIGTERM: the last interval's counts, then the state.
    lp.poll()?;
    lp.save();
    if let Some(h) = lp.alerter.take_hook() {
        // What is queued still goes out, for as long as one hook may take;
        // a hook still running then is killed as the runtime ends.
        let _ = tokio::time::timeout(hook::HOOK_TIMEOUT, h.finish()).await;
    }
    log(Priority::Info, "sentinel stopped; state saved");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(items: &[(&str, bool)]) -> DrillQueue {
        let mut q = DrillQueue::default();
        for (u, e) in items {
            q.push(u.to_string(), *e);
        }
        q
    }

    #[test]
    fn loops_to_name_queue_ahead_of_candidates_once_each() {
        let mut q = queue(&[("a", false), ("b", false), ("a", false), ("c", true)]);
        q.push("b".into(), true);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            [("c".into(), true), ("b".into(), true), ("a".into(), false)]
        );
    }

    #[test]
    fn free_slots_go_in_queue_order_without_pre_empting() {
        let mut q = queue(&[("cand", false), ("loop", true)]);
        let (yields, starts) = q.plan(&[false, false], 8);
        assert!(yields.is_empty(), "a free slot for each");
        assert_eq!(starts, [("loop".into(), true), ("cand".into(), false)]);
    }

    #[test]
    fn with_every_slot_taken_a_loop_pre_empts_the_latest_candidate_only() {
        let running = [false, true, false, true];
        let mut q = queue(&[
            ("loop1", true),
            ("loop2", true),
            ("loop3", true),
            ("cand", false),
        ]);
        let (yields, starts) = q.plan(&running, 4);
        assert_eq!(yields, [2, 0], "both candidates yield, loops never");
        assert_eq!(starts, [("loop1".into(), true), ("loop2".into(), true)]);
        assert_eq!(q.pop(), Some(("loop3".into(), true)), "still first in line");
        let mut q = queue(&[("cand2", false)]);
        let (yields, starts) = q.plan(&[false; 4], 4);
        assert!(yields.is_empty() && starts.is_empty(), "a candidate waits");
    }
}
