//! `spawnscope sentinel`: the resident mode. The probe counts in the kernel;
//! this loop wakes once per interval (early only for an OOM kill, a
//! drill-down's records or a cgroup ring half full), folds the counts into per-unit
//! totals that survive restarts, finds loops from counts alone, drills into
//! a candidate's events for a bounded time, raises alerts and serves
//! `/metrics`.

pub mod alert;
pub mod config;
pub mod expo;
pub mod metrics;
pub mod state;
pub mod track;

use std::{
    collections::HashMap,
    io::{self, Write},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use spawnscope_common::{Counters, Lifetimes};

use crate::{
    caps,
    cgroupfs::{self, CgroupNames},
    cli::SentinelArgs,
    clock::{monotonic_now_ns, now_unix},
    detect::{self, Change, Detector},
    events::{self, Event, Place},
    kernel::{KernelError, LoadOptions, Probe},
    mempress::{self, MemConfig, MemWatch},
    report::{self, By, Snapshot},
};

use self::{
    alert::{AlertError, Alerter, Priority},
    config::{Config, ConfigError},
    expo::Health,
    state::{Loaded, StateError},
    track::{TrackConfig, Tracker},
};

/// Where the sentinel looks for its configuration when not told.
pub const DEFAULT_CONFIG: &str = "/etc/spawnscope/sentinel.toml";
/// The event ring while drilling: a loop's records for one interval.
pub const DRILL_BUFFER_BYTES: u32 = 128 << 10;
/// The cgroup ring: records wait in it until the next poll, and wake the
/// loop early only once it is half full (about 120 records), so a few
/// hundred records of room is enough; and it is resident memory (mapped
/// twice).
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
    State(#[from] StateError),
    #[error(transparent)]
    Alerts(#[from] AlertError),
    #[error(transparent)]
    Metrics(#[from] metrics::BindError),
    #[error(transparent)]
    Cgroups(#[from] cgroupfs::CgroupError),
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] io::Error),
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

fn make_alerter(cfg: &Config) -> Result<Alerter<io::Stderr>, AlertError> {
    Alerter::new(io::stderr(), cfg.alerts_jsonl.as_deref(), cfg.hook.clone())
}

fn mem_config(cfg: &Config) -> MemConfig {
    MemConfig {
        warn_before_s: cfg.mem_warn_before.as_secs_f64(),
        psi_percent: cfg.psi_warn,
        psi_for_s: cfg.psi_for.as_secs_f64(),
        ..MemConfig::default()
    }
}

/// An event drill-down into one unit.
struct Drill {
    unit: String,
    until: Instant,
    /// Opened from counts already: only the detail is wanted.
    enrich: bool,
    detector: Detector,
    last_exec: Option<(String, Vec<String>)>,
    last_death: Option<serde_json::Value>,
}

impl Drill {
    /// What was learnt, from the event detector's finding if it made one,
    /// else from the last exec and abnormal exit seen.
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
                d["signal"] = detect::signal_name(s)
                    .map_or_else(|| format!("signal {s}"), str::to_string)
                    .into();
            }
            return Some(d);
        }
        let (exe, argv) = self.last_exec.clone()?;
        let mut d = serde_json::json!({ "executable": exe, "argv": argv });
        if let Some(death) = &self.last_death {
            for k in ["exit_code", "signal"] {
                if !death[k].is_null() {
                    d[k] = death[k].clone();
                }
            }
        }
        Some(d)
    }
}

struct Loop {
    cfg: Config,
    config_path: Option<PathBuf>,
    probe: Probe,
    names: CgroupNames,
    tracker: Tracker,
    alerter: Alerter<io::Stderr>,
    mem: MemWatch,
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
    drill: Option<Drill>,
    drill_queue: Vec<(String, bool)>,
    mono_to_unix: f64,
    health: Health,
    labels: expo::Labels,
    polls_since_save: u32,
    last_summary: Instant,
}

fn label_of(names: &CgroupNames, id: u64) -> String {
    report::key_of(By::Unit, id, &names.resolve(id)).label()
}

impl Loop {
    /// Cgroup creations and removals, then event records.
    fn drain(&mut self) -> Result<(), SentinelError> {
        let names = &mut self.names;
        let tracker = &mut self.tracker;
        let unit_paths = &mut self.unit_paths;
        let mut removed = Vec::new();
        self.probe.drain_mkdirs(|m| {
            if m.removed {
                removed.push(m.id);
                return;
            }
            if m.truncated {
                return;
            }
            names.learn(m.id, &m.path);
            let r = names.resolve(m.id);
            // Only units are restarted into a new cgroup; a scope or a
            // sub-cgroup coming and going is no restart.
            if r.owner
                .as_ref()
                .is_some_and(|o| o.unit.is_some() && o.subpath.is_none())
            {
                let key = report::key_of(By::Unit, m.id, &r);
                let label = key.label();
                tracker.creation(&label, m.ts_ns);
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
        let mut evs = Vec::new();
        self.probe.drain_events(|bytes| {
            if let Some(e) = events::decode(bytes) {
                evs.push(e);
            }
        });
        for e in evs {
            self.event(e);
        }
        for id in removed {
            self.fold_removed(id)?;
        }
        Ok(())
    }

    /// A removed cgroup's final counts, less what earlier polls took,
    /// go to its unit at the next poll; its map entries and name are freed.
    fn fold_removed(&mut self, id: u64) -> Result<(), SentinelError> {
        let before_c = self.prev.per_cgroup.remove(&id);
        let before_l = self.prev.lifetimes.remove(&id);
        if let Some((c, l)) = self.probe.take(id)? {
            let d = c.saturating_sub(&before_c.unwrap_or(Counters::ZERO));
            let l = l.map(|mut l| {
                if let Some(p) = before_l {
                    for (a, b) in l.buckets.iter_mut().zip(p.buckets.iter()) {
                        *a = a.saturating_sub(*b);
                    }
                }
                l
            });
            self.folded.push((label_of(&self.names, id), d, l));
        }
        self.names.forget(id);
        Ok(())
    }

    fn event(&mut self, mut e: Event) {
        if let Event::Oom(o) = &mut e
            && o.victim_from == "pid"
            && let Some(path) = o.fill_from_proc(Path::new("/proc"))
            && let Some(id) = self.names.id_of_path(&path)
        {
            o.cgroup_id = id;
        }
        let r = self.names.resolve_now(e.cgroup_id());
        let place = Place::of(e.cgroup_id(), &r);
        let t = e.ts_ns() as f64 / 1e9 + self.mono_to_unix;
        if let Event::Oom(_) = &e {
            let json = events::to_json(&e, &place, t);
            let mut v: serde_json::Value = serde_json::from_str(&json).expect("our own JSON");
            let unit = report::key_of(By::Unit, e.cgroup_id(), &r).label();
            v["unit_label"] = unit.clone().into();
            let msg = format!("OOM kill in {unit}: {}", events::to_human(&e, &place, t));
            self.alerter
                .notice("oom_kill", &unit, Priority::Err, t, &msg, v.clone());
            self.tracker.state.push_oom_kill(v);
            return;
        }
        let Some(d) = self.drill.as_mut() else { return };
        if let Event::Exec(x) = &e {
            d.last_exec = Some((
                String::from_utf8_lossy(&x.filename).into_owned(),
                events::det_event(&e, &place)
                    .map(|de| de.argv)
                    .unwrap_or_default(),
            ));
        }
        let Some(de) = events::det_event(&e, &place) else {
            return;
        };
        if de.kind == "exit" && (de.signal.is_some() || de.code.unwrap_or(0) != 0) {
            let mut death = serde_json::json!({});
            if let Some(s) = de.signal {
                death["signal"] = detect::signal_name(s)
                    .map_or_else(|| format!("signal {s}"), str::to_string)
                    .into();
            } else {
                death["exit_code"] = de.code.into();
            }
            d.last_death = Some(death);
        }
        if let Some(Change::Detected(f)) = d.detector.event(&de) {
            let detail = d.detail(Some(&f));
            let unit = d.unit.clone();
            self.drill_done(&unit, detail, true);
        } else if d.enrich && d.last_exec.is_some() && d.last_death.is_some() {
            // The loop is proven by its counts; one start and one death
            // name it.
            let detail = d.detail(None);
            let unit = d.unit.clone();
            self.drill_done(&unit, detail, false);
        }
    }

    /// Ends the drill-down on `unit`; `looped`: the events proved a loop.
    fn drill_done(&mut self, unit: &str, detail: Option<serde_json::Value>, looped: bool) {
        let Some(d) = self.drill.take() else { return };
        if let Err(e) = self.probe.drill_off() {
            log(
                Priority::Warning,
                &format!("cannot end the drill-down: {e}"),
            );
        }
        if looped || d.enrich {
            let gained = self.tracker.confirm(unit, detail.clone());
            if gained && let Some(f) = self.tracker.finding(unit) {
                self.alerter.notice(
                    "finding_identified",
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
    fn drill_yield(&mut self) {
        let Some(d) = self.drill.take() else { return };
        if let Err(e) = self.probe.drill_off() {
            log(
                Priority::Warning,
                &format!("cannot end the drill-down: {e}"),
            );
        }
        log(
            Priority::Info,
            &format!(
                "drill-down into {} paused: a loop found from its counts is named first",
                d.unit
            ),
        );
        self.queue_drill(d.unit, d.enrich);
    }

    /// Queues a drill-down. A loop found from its counts, to be named, goes
    /// ahead of every candidate and is no longer queued as one: a candidate
    /// (a script whose commands fail now and then) would otherwise hold the
    /// only drill-down for DRILL_FOR while the loop waits unnamed.
    fn queue_drill(&mut self, unit: String, enrich: bool) {
        if enrich {
            self.drill_queue.retain(|(u, _)| *u != unit);
            let at = self
                .drill_queue
                .iter()
                .position(|(_, enrich)| !enrich)
                .unwrap_or(self.drill_queue.len());
            self.drill_queue.insert(at, (unit, true));
        } else if !self.drill_queue.iter().any(|(u, _)| *u == unit)
            && self.drill.as_ref().is_none_or(|d| d.unit != unit)
        {
            self.drill_queue.push((unit, false));
        }
    }

    fn start_drill(&mut self, unit: String, enrich: bool) {
        let ids = self.unit_ids.get(&unit).cloned().unwrap_or_default();
        // The path the unit's next cgroup will be created at.
        let path = ids
            .iter()
            .filter_map(|id| self.names.resolve(*id).path)
            .find(|p| !p.is_empty())
            .or_else(|| self.unit_paths.get(&unit).map(|(p, _, _)| p.clone()))
            .unwrap_or_default();
        if ids.is_empty() && path.is_empty() {
            return;
        }
        if let Err(e) = self.probe.drill(path.as_bytes(), &ids) {
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
        self.drill = Some(Drill {
            unit,
            until: Instant::now() + DRILL_FOR,
            enrich,
            detector: Detector::new(
                detect::Config::default(),
                monotonic_now_ns(),
                self.mono_to_unix,
            ),
            last_exec: None,
            last_death: None,
        });
    }

    /// One poll: read, fold, detect, alert, render.
    fn poll(&mut self) -> Result<(), SentinelError> {
        let started = Instant::now();
        self.drain()?;
        let cur = self.probe.snapshot()?;
        self.names.refresh(cur.per_cgroup.keys());
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
            let l = cur.lifetimes.get(id).map(|l| {
                let mut out = *l;
                if let Some(p) = self.prev.lifetimes.get(id) {
                    for (a, b) in out.buckets.iter_mut().zip(p.buckets.iter()) {
                        *a = a.saturating_sub(*b);
                    }
                }
                out
            });
            let label = label_of(&self.names, *id);
            unit_ids.entry(label.clone()).or_default().push(*id);
            if !d.is_zero() || l.is_some_and(|l| l.buckets.iter().any(|&b| b > 0)) {
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

        // Drill-downs: one at a time, bounded.
        if let Some(d) = &self.drill
            && Instant::now() >= d.until
        {
            let unit = d.unit.clone();
            let detail = d.detail(None);
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
        // A loop waiting to be named pre-empts a candidate's drill-down; a
        // candidate that is itself that loop goes on, keeping what it has
        // seen, with naming as its aim.
        if let Some(d) = self.drill.as_mut()
            && !d.enrich
            && self.drill_queue.first().is_some_and(|(_, enrich)| *enrich)
        {
            if let Some(i) = self
                .drill_queue
                .iter()
                .position(|(u, enrich)| *enrich && *u == d.unit)
            {
                self.drill_queue.remove(i);
                d.enrich = true;
            } else {
                self.drill_yield();
            }
        }
        if self.drill.is_none() && !self.drill_queue.is_empty() {
            let (u, enrich) = self.drill_queue.remove(0);
            self.start_drill(u, enrich);
        }

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
        self.mem.set_loops(loops);
        let warnings = self.mem.sample(monotonic_now_ns() as f64 / 1e9, now);
        for w in &warnings {
            self.health.memory_warnings += 1;
            let detail = serde_json::to_value(w).expect("warning JSON");
            self.alerter.memory_warning(now, &w.message, detail);
        }
        for k in self.mem.new_memcg_oom_kills() {
            let detail = serde_json::to_value(&k).expect("kill JSON");
            self.alerter.notice(
                "memcg_oom_kill",
                "memory",
                Priority::Err,
                now,
                &k.message,
                detail,
            );
        }

        // Health and metrics.
        self.health.dropped = cur.dropped;
        self.health.overflow = (&cur.overflow).into();
        self.health.probe = cur.probe;
        self.health.polls += 1;
        self.health.rss_bytes = rss_bytes();
        self.health.programs = bpf_stats_enabled().then(|| self.probe.prog_stats());
        self.health.alerts = self.alerter.sent;
        self.health.alerts_suppressed += std::mem::take(&mut self.alerter.suppressed);
        let f = self.mem.forecast();
        self.health.memory_used_bytes =
            (f.total_bytes > 0).then_some((f.used_bytes, f.total_bytes));
        self.health.hidden = f.hidden;
        self.health.poll_seconds = started.elapsed().as_secs_f64();
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
        self.mem.set_config(mem_config(&new));
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
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(SentinelError::Signals)?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
        .map_err(SentinelError::Signals)?;

    let mounts = cgroupfs::cgroup_mounts(&args.mountinfo)?;
    if let Some(w) = cgroupfs::attribution_warning(&mounts) {
        log(Priority::Warning, &w);
    }
    let mount = cgroupfs::find_cgroup2(&args.mountinfo)?;
    let mut names = CgroupNames::new(mount.as_ref(), 16_384);
    let probe = Probe::load(&LoadOptions {
        btf_path: args.btf.clone(),
        max_cgroups: args.max_cgroups,
        events: None,
        exit_flavour: None,
        drill_buffer: Some(DRILL_BUFFER_BYTES),
        cgroup_removals: true,
        cgroup_buffer: Some(CGROUP_BUFFER_BYTES),
        lazy_cgroups: true,
        // A drill-down's records wake the sentinel as they come: only the
        // drilled unit pays for that, and only while it is drilled.
        lazy_events: false,
    })?;
    if let Some(w) = &probe.oom_scope_warning {
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
                    track::date(s.since_unix)
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
    names.walk();
    let body: metrics::Shared = Arc::new(Mutex::new(String::new()));
    let bound = metrics::serve(cfg.listen, Arc::clone(&body))?;

    // Loading parsed the kernel's BTF (several MiB, now freed).
    trim_heap();
    // Everything privileged is done: the probe is loaded and attached, the
    // port is bound. What is left reads maps through open descriptors.
    let release = caps::kernel_release();
    caps::drop_to(&caps::needed_after_load(&release)).map_err(SentinelError::Caps)?;

    let mem = MemWatch::new(
        mem_config(&cfg),
        mempress::memory_tree(&mounts),
        PathBuf::from("/proc"),
    )
    .with_units_root(mount.as_ref().map(|m| m.mount_point.clone()));
    let started_ns = monotonic_now_ns();
    let mono_to_unix = now_unix() - started_ns as f64 / 1e9;
    let interval = cfg.interval;
    let tracker = Tracker::new(TrackConfig::default(), state);
    // Findings open before a restart were alerted then.
    for f in tracker.findings() {
        alerter.seed(f.key(), f.severity as u8);
    }
    let mut lp = Loop {
        cfg,
        config_path,
        probe,
        names,
        tracker,
        alerter,
        mem,
        body,
        prev: Snapshot::default(),
        folded: Vec::new(),
        unit_ids: HashMap::new(),
        unit_paths: HashMap::new(),
        drill: None,
        drill_queue: Vec::new(),
        mono_to_unix,
        health: Health::default(),
        labels: expo::Labels::default(),
        polls_since_save: 0,
        last_summary: Instant::now(),
    };
    // Scripts and tests wait for this line.
    log(
        Priority::Info,
        &format!(
            "sentinel started: interval {}, metrics on http://{bound}/metrics, state {}",
            humantime::format_duration(interval),
            lp.cfg.state.display()
        ),
    );
    lp.poll()?;
    let mut next = Instant::now() + lp.cfg.interval;
    while !stop.load(Ordering::Relaxed) {
        if hup.swap(false, Ordering::Relaxed) {
            lp.reload();
            next = next.min(Instant::now() + lp.cfg.interval);
        }
        let now = Instant::now();
        if now >= next {
            lp.poll()?;
            while next <= Instant::now() {
                next += lp.cfg.interval;
            }
            continue;
        }
        // Sleep until the next poll. An OOM kill or a drill-down record
        // wakes the loop early, and so does a cgroup ring half full (a
        // burst of transient units); a signal ends the wait.
        let wait = (next - now).as_millis().min(i32::MAX as u128) as libc::c_int;
        let mut pfds = [
            libc::pollfd {
                fd: lp.probe.mkdir_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: lp.probe.events_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: valid pollfds for the duration of the call; EINTR just
        // ends the wait, and the loop re-checks its flags.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), 2, wait) };
        if n > 0 {
            lp.drain()?;
        }
    }
    // SIGTERM: the last interval's counts, then the state.
    lp.poll()?;
    lp.save();
    log(Priority::Info, "sentinel stopped; state saved");
    Ok(())
}
