//! One run's kernel side, opened once and consumed by `trace` and
//! `sentinel` alike: the cgroup mounts, the loaded probe, cgroup names, the
//! memory watch, readiness of both ring buffers on the tokio runtime, and
//! the signals that end or reload a run. What it hands on is decoded,
//! named and enriched, so an OOM kill or a memory alert carries the same
//! fields from the same code in both modes.

use std::{
    io,
    os::fd::{AsFd, OwnedFd},
    path::{Path, PathBuf},
};

use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{Signal, SignalKind, signal},
};

use crate::{
    cgroupfs::{self, CgroupError, CgroupNames, Resolved},
    clock::{monotonic_now_ns, now_unix},
    events::{self, Event, Place},
    kernel::{KernelError, LoadOptions, Mkdir, Probe},
    mempress::{self, LoopRate, MemConfig, MemWarning, MemWatch, MemcgOomKill},
    report::{self, By, EventCounts},
};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Cgroups(#[from] CgroupError),
    #[error("cannot watch the probe's ring buffers: {0}")]
    Watch(#[source] io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] io::Error),
}

pub struct Options<'a> {
    pub mountinfo: &'a Path,
    pub load: LoadOptions,
    /// Names kept for cgroups no longer counted (see [`CgroupNames`]).
    pub names_cap: usize,
    pub mem: MemConfig,
}

/// SIGINT and SIGTERM end a run; SIGHUP asks it to reload.
pub struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Stop,
    Reload,
}

impl Signals {
    /// Installed before anything slow, so an early Ctrl-C is not lost.
    pub fn install() -> Result<Self, SessionError> {
        let s = |k| signal(k).map_err(SessionError::Signals);
        Ok(Self {
            int: s(SignalKind::interrupt())?,
            term: s(SignalKind::terminate())?,
            hup: s(SignalKind::hangup())?,
        })
    }

    pub async fn recv(&mut self) -> Ask {
        tokio::select! {
            _ = self.int.recv() => Ask::Stop,
            _ = self.term.recv() => Ask::Stop,
            _ = self.hup.recv() => Ask::Reload,
        }
    }
}

/// An OOM kill, named, with what the memory watch said before it: the
/// same object is printed by `trace`, kept in its summary, and sent as
/// the sentinel's `oom_kill` alert.
#[derive(Debug, Clone)]
pub struct OomKill {
    pub time_unix: f64,
    /// The victim's unit, as the sentinel labels units.
    pub unit_label: String,
    /// One line for people.
    pub human: String,
    /// The event's JSON plus `unit_label`, `last_warning` and
    /// `last_forecast`.
    pub json: serde_json::Value,
}

/// A memory alert from one sampling pass.
#[derive(Debug, Clone)]
pub enum MemAlert {
    Warning(MemWarning),
    MemcgOomKill(MemcgOomKill),
}

impl MemAlert {
    pub fn message(&self) -> &str {
        match self {
            MemAlert::Warning(w) => &w.message,
            MemAlert::MemcgOomKill(k) => &k.message,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            MemAlert::Warning(w) => serde_json::to_value(w),
            MemAlert::MemcgOomKill(k) => serde_json::to_value(k),
        }
        .expect("memory alert JSON")
    }
}

/// One event record, decoded and named.
pub struct Named<'a> {
    pub event: &'a Event,
    pub resolved: &'a Resolved,
    pub place: &'a Place,
    pub time_unix: f64,
}

/// What a drain of the event ring hands on.
pub enum Item<'a> {
    Event(Named<'a>),
    OomKill(OomKill),
}

pub struct Session {
    pub probe: Probe,
    pub names: CgroupNames,
    pub mem: MemWatch,
    /// Why cgroups cannot all be named, when they cannot.
    pub attribution_warning: Option<String>,
    pub started_ns: u64,
    /// time_unix = ts_ns / 1e9 + this.
    pub mono_to_unix: f64,
    /// Records received per kind, before any filter.
    pub delivered: EventCounts,
    /// Records of an unknown kind or size (0 unless probe and loader differ).
    pub undecodable: u64,
    mkdirs_ready: AsyncFd<OwnedFd>,
    events_ready: AsyncFd<OwnedFd>,
    /// The probe's diagnostic log, when it is on.
    log_ready: Option<AsyncFd<OwnedFd>>,
}

impl Session {
    /// Loads and attaches the probe, then names every cgroup already
    /// there. Must run inside the tokio runtime (the rings register with
    /// its reactor).
    pub fn open(opts: Options) -> Result<Self, SessionError> {
        let mounts = cgroupfs::cgroup_mounts(opts.mountinfo)?;
        let attribution_warning = cgroupfs::attribution_warning(&mounts);
        let mount = cgroupfs::find_cgroup2(opts.mountinfo)?;
        let mut names = CgroupNames::new(mount.as_ref(), opts.names_cap);
        let probe = Probe::load(&opts.load)?;
        // The mkdir probe is attached: every cgroup is either created from
        // now on (and reported) or already there for this walk to find.
        names.walk();
        let mem = MemWatch::new(
            opts.mem,
            mempress::memory_tree(&mounts),
            PathBuf::from("/proc"),
        )
        .with_units_root(mount.as_ref().map(|m| m.mount_point.clone()));
        // epoll watches the open file, so a duplicate descriptor reports
        // the ring's readiness while the probe keeps its own.
        let watch = |fd: std::os::fd::BorrowedFd| {
            let owned = fd.try_clone_to_owned().map_err(SessionError::Watch)?;
            // SAFETY: the AsyncFd owns this duplicate and nothing else
            // closes or replaces it while registered; dropping the AsyncFd
            // deregisters it before closing.
            unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }
                .map_err(|e| SessionError::Watch(e.into_parts().1))
        };
        let mkdirs_ready = watch(probe.mkdir_fd().as_fd())?;
        let events_ready = watch(probe.events_fd().as_fd())?;
        let log_ready = probe.probe_log_fd().map(watch).transpose()?;
        let started_ns = monotonic_now_ns();
        Ok(Self {
            probe,
            names,
            mem,
            attribution_warning,
            started_ns,
            mono_to_unix: now_unix() - started_ns as f64 / 1e9,
            delivered: EventCounts::default(),
            undecodable: 0,
            mkdirs_ready,
            events_ready,
            log_ready,
        })
    }

    /// Resolves when a ring has records waiting (and was set to wake
    /// userspace for them), the probe's log included. Readiness is cleared
    /// here, before the caller drains: a record committed after the drain
    /// wakes the next call.
    pub async fn ready(&self) -> Result<(), SessionError> {
        let log = async {
            match &self.log_ready {
                Some(fd) => fd.readable().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            g = self.mkdirs_ready.readable() => g.map_err(SessionError::Watch)?.clear_ready(),
            g = self.events_ready.readable() => g.map_err(SessionError::Watch)?.clear_ready(),
            g = log => g.map_err(SessionError::Watch)?.clear_ready(),
        }
        Ok(())
    }

    /// Cgroup creations and removals. A created cgroup is named before
    /// `f` sees it; a path the kernel cut short would name the wrong
    /// cgroup, so that id is left to the tree walk.
    pub fn drain_cgroups(&mut self, mut f: impl FnMut(&Mkdir, &CgroupNames)) {
        // The probe's log lines first: they tell what led to the records.
        self.probe.flush_probe_log();
        let names = &mut self.names;
        self.probe.drain_mkdirs(|m| {
            if !m.truncated && !m.removed {
                names.learn(m.id, &m.path);
            }
            f(&m, names);
        });
    }

    /// Event records, decoded, counted, named and, for OOM kills,
    /// attributed. Drain [`Self::drain_cgroups`] first: an event's cgroup
    /// was created before the event, so its name is then known. Stops
    /// handing records on at the first error `f` returns (the rest are
    /// still counted) and returns it.
    pub fn drain_events<E>(&mut self, mut f: impl FnMut(Item) -> Result<(), E>) -> Result<(), E> {
        let Session {
            probe,
            names,
            mem,
            delivered,
            undecodable,
            mono_to_unix,
            ..
        } = self;
        let mut result = Ok(());
        probe.drain_events(|bytes| {
            let Some(mut e) = events::decode(bytes) else {
                *undecodable += 1;
                return;
            };
            match &e {
                Event::Exec(_) => delivered.exec += 1,
                Event::Exit(_) => delivered.exit += 1,
                Event::Fork(_) => delivered.fork += 1,
                Event::Oom(_) => delivered.oom += 1,
            }
            if result.is_err() {
                return;
            }
            // An old kernel's pid-only kill: the victim is looked up now,
            // while it is still dying.
            if let Event::Oom(o) = &mut e
                && o.victim_from == events::VictimFrom::Pid
                && let Some(path) = o.fill_from_proc(Path::new("/proc"))
                && let Some(id) = names.id_of_path(&path)
            {
                o.cgroup_id = id;
            }
            let r = names.resolve_now(e.cgroup_id());
            let place = Place::of(e.cgroup_id(), &r);
            let t = e.ts_ns() as f64 / 1e9 + *mono_to_unix;
            result = match &mut e {
                Event::Oom(o) => {
                    if o.scope == Some(events::OomScope::Memcg) {
                        o.memcg_path = if o.memcg_hierarchy == 0 {
                            // cgroup2: the names cache, else the memory walk.
                            names
                                .resolve_now(o.memcg_id)
                                .path
                                .or_else(|| mem.path_of_ino(o.memcg_id, true))
                        } else {
                            mem.path_of_ino(o.memcg_id, false)
                        };
                    }
                    f(Item::OomKill(oom_kill(mem, &e, &r, &place, t)))
                }
                _ => f(Item::Event(Named {
                    event: &e,
                    resolved: &r,
                    place: &place,
                    time_unix: t,
                })),
            };
        });
        result
    }

    /// One pass of the memory watch, given the loops known now (their
    /// rates give the hidden victims' growth per restart).
    pub fn sample_memory(&mut self, loops: Vec<LoopRate>) -> Vec<MemAlert> {
        self.mem.set_loops(loops);
        let now = now_unix();
        let mut out: Vec<MemAlert> = self
            .mem
            .sample(monotonic_now_ns() as f64 / 1e9, now)
            .into_iter()
            .map(MemAlert::Warning)
            .collect();
        out.extend(
            self.mem
                .new_memcg_oom_kills()
                .into_iter()
                .map(MemAlert::MemcgOomKill),
        );
        out
    }
}

fn oom_kill(mem: &MemWatch, e: &Event, r: &Resolved, place: &Place, t: f64) -> OomKill {
    let Event::Oom(o) = e else {
        unreachable!("called for OOM records only")
    };
    let unit_label = report::key_of(By::Unit, e.cgroup_id(), r).label();
    let mut v: serde_json::Value =
        serde_json::from_str(&events::to_json(e, place, t)).expect("our own JSON");
    v["unit_label"] = unit_label.clone().into();
    // The last memory warning before the kill: the victim's own, else
    // its cgroup's, else the system's.
    let last = mem
        .warnings
        .iter()
        .rev()
        .find(|w| w.pids.contains(&o.tgid))
        .or_else(|| {
            mem.warnings
                .iter()
                .rev()
                .find(|w| w.cgroup.is_some() && w.cgroup == place.cgroup)
        })
        .or_else(|| {
            mem.warnings
                .iter()
                .rev()
                .find(|w| w.target == mempress::WarningTarget::System)
        });
    v["last_warning"] = serde_json::to_value(last).expect("warning JSON");
    // The limiting cgroup's trend, else the victim's own when the
    // memory hierarchy is the one it was named in (cgroup2).
    let memcg = o.memcg_path.clone().or_else(|| {
        (mem.hierarchy() == Some(mempress::MemHierarchy::V2))
            .then(|| place.cgroup.clone())
            .flatten()
    });
    v["last_forecast"] =
        serde_json::to_value(mem.kill_forecast(memcg.as_deref())).expect("forecast JSON");
    OomKill {
        time_unix: t,
        human: events::to_human(e, place, t),
        unit_label,
        json: v,
    }
}
