//! `spawnscope trace`: the poll loop.

use std::{
    collections::{BTreeMap, HashMap},
    io::{self, BufWriter, Write},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde::Serialize;
use spawnscope_common::Lifetimes;

use crate::{
    cgroupfs::{self, CgroupNames},
    cli::{ExitProgram, TraceArgs},
    clock::{monotonic_now_ns, now_unix},
    detect::{self, Change, Config as DetectConfig, Detector, Finding, FindingKind},
    events::{self, Event, EventFilter, Place},
    kernel::{EventOptions, KernelError, LoadOptions, Probe},
    layout::ExitFlavour,
    mempress::{self, LoopRate, MemConfig, MemWatch},
    output::{
        Reporter,
        json::Json,
        schema::{EventAccounting, IntervalReport, MemorySummary, Summary},
        table::Table,
    },
    record::{RecordError, Recorder},
    report::{self, By, EventCounts, Filter, Key, Snapshot},
};

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("cannot write output: {0}")]
    Output(#[source] io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] io::Error),
    #[error(transparent)]
    Cgroups(#[from] cgroupfs::CgroupError),
    #[error(transparent)]
    Record(RecordError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
}

/// Per-event state of a trace that streams or records events.
struct EventSink {
    /// Print events on stdout (`--events`); else only record them.
    show: bool,
    json: bool,
    filter: EventFilter,
    delivered: EventCounts,
    undecodable: u64,
    /// time_unix = ts_ns / 1e9 + this.
    mono_to_unix: f64,
    out: BufWriter<io::Stdout>,
    detector: Option<Detector>,
    oom_kills: Vec<serde_json::Value>,
    respawns: Respawns,
}

/// Respawn intervals per report group: the time between two execs of the
/// same executable in the group, in log2 buckets as lifetimes are.
struct Respawns {
    by: By,
    last: HashMap<(Key, Vec<u8>), u64>,
    hist: BTreeMap<Key, Lifetimes>,
    /// Processes inside systemd-executor (systemd >= 255 starts each of a
    /// unit's commands through it), by (tgid, start_ns): their group, the
    /// executor's path and its exec time. Each start counts once, as the
    /// command's exec, or, when the process dies in the executor, as the
    /// executor's (see the detector, which judges them the same way).
    in_executor: HashMap<(u32, u64), (Key, Vec<u8>, u64)>,
}

impl Respawns {
    /// (group, executable) pairs remembered at most; past that the map is
    /// cleared and intervals start over, rather than grow without bound.
    const MAX_PAIRS: usize = 1 << 16;

    fn exec(&mut self, x: &events::Exec, r: &cgroupfs::Resolved) {
        let key = report::key_of(self.by, x.cgroup_id, r);
        let process = (x.tgid, x.start_ns);
        if detect::is_executor_argv(&x.argv) {
            if self.in_executor.len() >= Self::MAX_PAIRS {
                // Lost exits leave entries behind; forget them all rather
                // than grow.
                self.in_executor.clear();
            }
            self.in_executor
                .insert(process, (key, x.argv[0].clone(), x.ts_ns));
            return;
        }
        self.in_executor.remove(&process);
        self.start(key, &x.filename, x.ts_ns);
    }

    fn exit(&mut self, x: &events::Exit) {
        if let Some((key, exe, ts_ns)) = self.in_executor.remove(&(x.tgid, x.start_ns)) {
            self.start(key, &exe, ts_ns);
        }
    }

    fn start(&mut self, key: Key, exe: &[u8], ts_ns: u64) {
        if self.last.len() >= Self::MAX_PAIRS {
            self.last.clear();
        }
        if let Some(prev) = self.last.insert((key.clone(), exe.to_vec()), ts_ns)
            && ts_ns >= prev
        {
            let h = self.hist.entry(key).or_insert(Lifetimes::ZERO);
            let b = &mut h.buckets[spawnscope_common::lifetime_bucket(ts_ns - prev) as usize];
            *b = b.saturating_add(1);
        }
    }
}

impl EventSink {
    /// Tells the operator about a loop as soon as it is found or stops.
    fn change(&mut self, c: Change) -> Result<(), TraceError> {
        let (what, f) = match c {
            Change::Detected(f) => ("detected", f),
            Change::Stopped(f) => ("stopped", f),
        };
        let line = if self.json {
            #[derive(Serialize)]
            struct Line<'a> {
                change: &'static str,
                #[serde(flatten)]
                finding: &'a Finding,
            }
            serde_json::to_string(&Line {
                change: what,
                finding: &f,
            })
            .expect("finding JSON")
        } else {
            let sev = serde_json::to_value(f.severity).expect("severity");
            let kind = match f.kind {
                FindingKind::RespawnLoop => "respawn loop",
                FindingKind::FailingPeriodicJob => "failing periodic job",
            };
            match what {
                "detected" => format!("!! {kind} [{}]: {}", sev.as_str().unwrap_or(""), f.message),
                _ => format!("!! {kind} stopped: {}", f.message),
            }
        };
        writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .map_err(TraceError::Output)
    }
}

/// What a drain feeds: names always, events and the record when enabled.
struct Sinks<'a> {
    names: &'a mut CgroupNames,
    events: &'a mut EventSink,
    record: Option<&'a mut Recorder>,
    mem: &'a mut MemState,
}

struct MemState {
    watch: MemWatch,
    every: Duration,
    next: Instant,
}

/// Samples memory when due, and tells the operator about new warnings.
fn sample_memory(sinks: &mut Sinks) -> Result<(), TraceError> {
    let now = Instant::now();
    if now < sinks.mem.next {
        return Ok(());
    }
    while sinks.mem.next <= now {
        sinks.mem.next += sinks.mem.every;
    }
    let watch = &mut sinks.mem.watch;
    let warnings = watch.sample(monotonic_now_ns() as f64 / 1e9, now_unix());
    let kills = watch.new_memcg_oom_kills();
    let alerts = warnings
        .iter()
        .map(|w| (serde_json::to_string(w), &w.message))
        .chain(kills.iter().map(|k| (serde_json::to_string(k), &k.message)));
    for (json, message) in alerts {
        let json = json.expect("alert JSON");
        if let Some(r) = sinks.record.as_deref_mut() {
            r.line(&json).map_err(TraceError::Record)?;
        }
        let ev = &mut *sinks.events;
        let line = if ev.json {
            json
        } else {
            format!("!! memory: {message}")
        };
        writeln!(ev.out, "{line}")
            .and_then(|()| ev.out.flush())
            .map_err(TraceError::Output)?;
    }
    Ok(())
}

/// The active respawn loops' rates, for the memory forecast's
/// per-restart figures.
fn loop_rates(findings: &[Finding]) -> Vec<LoopRate> {
    findings
        .iter()
        .filter(|f| f.state == "active")
        .map(|f| LoopRate {
            unit: f
                .unit
                .clone()
                .or_else(|| f.cgroup.clone())
                .unwrap_or_else(|| f.executable.clone()),
            container: f.container.clone(),
            restarts_per_s: f.rate_per_min / 60.0,
        })
        .collect()
}

/// Waits until `until`, draining the ring buffers as they fill rather than
/// once per interval, so bursts fit; wakes early when `stop` is set.
fn wait_until(
    until: Instant,
    stop: &AtomicBool,
    probe: &mut Probe,
    sinks: &mut Sinks,
) -> Result<(), TraceError> {
    loop {
        drain(probe, sinks)?;
        sample_memory(sinks)?;
        // Stopped loops are marked between readings too, not only at the
        // interval, so a long --interval does not delay the mark.
        let ev = &mut *sinks.events;
        let changes = ev
            .detector
            .as_mut()
            .map(|d| d.tick(monotonic_now_ns()))
            .unwrap_or_default();
        for c in changes {
            ev.change(c)?;
        }
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) || now >= until {
            return Ok(());
        }
        let wait = (until - now).min(Duration::from_millis(100));
        let mut pfds = [
            libc::pollfd {
                fd: probe.mkdir_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: probe.events_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: valid pollfds for the duration of the call. EINTR (a
        // signal) and errors just end this wait early; the loop re-checks.
        unsafe { libc::poll(pfds.as_mut_ptr(), 2, wait.as_millis() as libc::c_int) };
    }
}

/// Cgroup creations first: an event's cgroup was created before the event,
/// so its name is known by the time the event is rendered.
fn drain(probe: &mut Probe, sinks: &mut Sinks) -> Result<(), TraceError> {
    let names = &mut *sinks.names;
    probe.drain_mkdirs(|m| {
        // A path the kernel cut short would name the wrong cgroup; leave
        // that id to the tree walk.
        if !m.truncated && !m.removed {
            names.learn(m.id, &m.path);
        }
    });
    let ev = &mut *sinks.events;
    let mut record = sinks.record.as_deref_mut();
    let mem = &sinks.mem.watch;
    let mut result = Ok(());
    let mut changes = Vec::new();
    probe.drain_events(|bytes| {
        let Some(e) = events::decode(bytes) else {
            ev.undecodable += 1;
            return;
        };
        match &e {
            Event::Exec(_) => ev.delivered.exec += 1,
            Event::Exit(_) => ev.delivered.exit += 1,
            Event::Fork(_) => ev.delivered.fork += 1,
            Event::Oom(_) => ev.delivered.oom += 1,
        }
        if result.is_err() {
            return;
        }
        let mut e = e;
        // An old kernel's pid-only kill: the victim is looked up now,
        // while it is still dying.
        if let Event::Oom(o) = &mut e
            && o.victim_from == "pid"
            && let Some(path) = o.fill_from_proc(Path::new("/proc"))
            && let Some(id) = names.id_of_path(&path)
        {
            o.cgroup_id = id;
        }
        let r = names.resolve_now(e.cgroup_id());
        let place = Place::of(e.cgroup_id(), &r);
        match &e {
            Event::Exec(x) => ev.respawns.exec(x, &r),
            Event::Exit(x) => ev.respawns.exit(x),
            Event::Fork(_) | Event::Oom(_) => {}
        }
        if let Event::Oom(o) = &mut e
            && o.scope == Some("memcg")
        {
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
        let t = e.ts_ns() as f64 / 1e9 + ev.mono_to_unix;
        if let (Some(d), Some(de)) = (ev.detector.as_mut(), events::det_event(&e, &place)) {
            changes.extend(d.event(&de));
        }
        let oom = matches!(e, Event::Oom(_));
        let json = (ev.json || record.is_some() || oom).then(|| events::to_json(&e, &place, t));
        if let (Some(rec), Some(j)) = (record.as_deref_mut(), &json)
            && let Err(err) = rec.line(j)
        {
            result = Err(TraceError::Record(err));
            return;
        }
        if oom {
            // An alert in every mode, and kept for the summary, with the
            // last memory warning that came before it for its cgroup (or
            // the system).
            let mut v: serde_json::Value =
                serde_json::from_str(json.as_deref().expect("made above")).expect("our own JSON");
            let victim = match &e {
                Event::Oom(o) => o.tgid,
                _ => 0,
            };
            let last = mem
                .warnings
                .iter()
                .rev()
                .find(|w| w.pids.contains(&victim))
                .or_else(|| {
                    mem.warnings
                        .iter()
                        .rev()
                        .find(|w| w.cgroup.is_some() && w.cgroup == place.cgroup)
                })
                .or_else(|| mem.warnings.iter().rev().find(|w| w.target == "system"));
            v["last_warning"] = serde_json::to_value(last).expect("warning JSON");
            // The limiting cgroup's trend, else the victim's own when the
            // memory hierarchy is the one it was named in (cgroup2).
            let memcg = match &e {
                Event::Oom(o) => o.memcg_path.clone(),
                _ => None,
            }
            .or_else(|| {
                (mem.hierarchy() == Some("v2"))
                    .then(|| place.cgroup.clone())
                    .flatten()
            });
            v["last_forecast"] =
                serde_json::to_value(mem.kill_forecast(memcg.as_deref())).expect("forecast JSON");
            let j = v.to_string();
            let line = if ev.json {
                j.clone()
            } else {
                format!("!! OOM kill: {}", events::to_human(&e, &place, t))
            };
            ev.oom_kills.push(v);
            if let Err(err) = writeln!(ev.out, "{line}") {
                result = Err(TraceError::Output(err));
            }
        } else if ev.show && ev.filter.accepts(&e, &r) {
            let line = match &json {
                Some(j) if ev.json => j.clone(),
                _ => events::to_human(&e, &place, t),
            };
            if let Err(err) = writeln!(ev.out, "{line}") {
                result = Err(TraceError::Output(err));
            }
        }
    });
    result?;
    for c in changes {
        ev.change(c)?;
    }
    ev.out.flush().map_err(TraceError::Output)
}

#[derive(Serialize)]
struct Status {
    #[serde(rename = "type")]
    kind: &'static str,
    time_unix: f64,
    elapsed_s: f64,
    delivered: EventCounts,
    dropped: EventCounts,
}

pub fn run(args: &TraceArgs) -> Result<(), TraceError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(TraceError::Signals)?;
    }

    let mounts = cgroupfs::cgroup_mounts(&args.mountinfo).map_err(TraceError::Cgroups)?;
    let attribution_warning = cgroupfs::attribution_warning(&mounts);
    if let Some(w) = &attribution_warning {
        eprintln!("spawnscope: warning: {w}");
    }
    let mount = cgroupfs::find_cgroup2(&args.mountinfo).map_err(TraceError::Cgroups)?;
    // Names of cgroups still counted are never evicted; this bounds the
    // ones kept only because they once existed.
    let cap = (args.max_cgroups as usize).saturating_mul(2).max(4096);
    let mut names = CgroupNames::new(mount.as_ref(), cap);
    let filter = Filter {
        units: args.units.clone(),
        containers: args.containers.clone(),
    };
    // Created before the probes load, so a bad path fails fast.
    // --export reads the recording back at the end: one is made in the
    // export directory when none was asked for.
    let own_record = match (&args.export, &args.record) {
        (Some(dir), None) => {
            std::fs::create_dir_all(dir).map_err(|source| crate::export::ExportError::Mkdir {
                path: dir.clone(),
                source,
            })?;
            Some(dir.join(format!(".spawnscope-export-{}.jsonl", std::process::id())))
        }
        _ => None,
    };
    let record_path = args.record.clone().or_else(|| own_record.clone());
    let mut recorder = match &record_path {
        Some(p) => Some(Recorder::create(p).map_err(TraceError::Record)?),
        None => None,
    };
    let detect = !args.no_detect;
    let want_events = args.events || recorder.is_some() || detect;

    let mut probe = Probe::load(&LoadOptions {
        btf_path: args.btf.clone(),
        max_cgroups: args.max_cgroups,
        events: want_events.then_some(EventOptions {
            forks: args.forks,
            buffer_bytes: args.event_buffer,
        }),
        exit_flavour: match args.exit_program {
            ExitProgram::Auto => None,
            ExitProgram::GroupDead => Some(ExitFlavour::GroupDeadArg),
            ExitProgram::Legacy => Some(ExitFlavour::Legacy),
        },
        drill_buffer: None,
        cgroup_removals: false,
        cgroup_buffer: None,
        // The loop below looks at both rings at least every 100 ms, so
        // no record needs to wake it (see EventConfig::lazy_events).
        lazy_cgroups: true,
        lazy_events: true,
    })?;
    if let Some(w) = &probe.oom_scope_warning {
        eprintln!("spawnscope: warning: {w}");
    }
    // The mkdir probe is attached: every cgroup is either created from now
    // on (and reported) or already there for this walk to find.
    names.walk();
    let started = Instant::now();
    let started_unix = now_unix();
    let started_ns = monotonic_now_ns();
    let mono_to_unix = started_unix - started_ns as f64 / 1e9;
    if let Some(r) = recorder.as_mut() {
        r.header(started_unix, started_ns, mono_to_unix)
            .map_err(TraceError::Record)?;
    }
    // The event ring is drained in every mode: OOM kills come through it
    // even when no exec or exit does.
    let mut sink = EventSink {
        show: args.events,
        json: args.json,
        filter: EventFilter {
            cgroups: filter.clone(),
            comms: args.comms.clone(),
            failed: args.failed,
            min_lifetime: args.min_lifetime,
            max_lifetime: args.max_lifetime,
        },
        delivered: EventCounts::default(),
        undecodable: 0,
        mono_to_unix,
        out: BufWriter::with_capacity(1 << 16, io::stdout()),
        detector: detect.then(|| Detector::new(DetectConfig::default(), started_ns, mono_to_unix)),
        oom_kills: Vec::new(),
        respawns: Respawns {
            by: args.by,
            last: HashMap::new(),
            hist: BTreeMap::new(),
            in_executor: HashMap::new(),
        },
    };
    let mut mem = MemState {
        watch: MemWatch::new(
            MemConfig {
                warn_before_s: args.mem_warn_before.as_secs_f64(),
                psi_percent: args.psi_warn,
                psi_for_s: args.psi_for.as_secs_f64(),
                ..MemConfig::default()
            },
            mempress::memory_tree(&mounts),
            PathBuf::from("/proc"),
        )
        .with_units_root(mount.as_ref().map(|m| m.mount_point.clone())),
        every: args.mem_interval,
        next: Instant::now(),
    };
    // Scripts and tests wait for this line before starting their workload.
    eprintln!(
        "spawnscope: tracing fork/exec/exit per {}{}; interval {}, {}",
        args.by.as_str(),
        if args.events {
            ", streaming events"
        } else {
            ""
        },
        humantime::format_duration(args.interval),
        match args.duration {
            Some(d) => format!("for {}", humantime::format_duration(d)),
            None => "until Ctrl-C".to_string(),
        }
    );

    let mut out: Box<dyn Reporter> = if args.json {
        Box::new(Json::new(io::stdout()))
    } else {
        Box::new(Table::new(io::stdout(), args.top as usize, args.by))
    };
    if args.events && !args.json {
        writeln!(sink.out, "{}", events::HUMAN_HEAD).map_err(TraceError::Output)?;
    }
    let deadline = args.duration.map(|d| started + d);

    let mut prev = Snapshot::default();
    let mut prev_at = started;
    let mut next_tick = started + args.interval;
    loop {
        let wake = match deadline {
            Some(d) if d < next_tick => d,
            _ => next_tick,
        };
        wait_until(
            wake,
            &stop,
            &mut probe,
            &mut Sinks {
                names: &mut names,
                events: &mut sink,
                record: recorder.as_mut(),
                mem: &mut mem,
            },
        )?;
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let cur = probe.snapshot()?;
        let at = Instant::now();
        // Every id in `cur` had its mkdir record submitted before it was
        // first counted, so this drain has them all (bar lost ones).
        drain(
            &mut probe,
            &mut Sinks {
                names: &mut names,
                events: &mut sink,
                record: recorder.as_mut(),
                mem: &mut mem,
            },
        )?;
        names.refresh(cur.per_cgroup.keys());
        if let Some(d) = sink.detector.as_mut() {
            mem.watch
                .set_loops(loop_rates(&d.findings(monotonic_now_ns())));
        }
        let secs = (at - prev_at).as_secs_f64();
        let rep = IntervalReport {
            kind: "interval",
            time_unix: now_unix(),
            elapsed_s: (at - started).as_secs_f64(),
            interval_s: secs,
            by: args.by,
            rows: report::interval_rows(&prev, &cur, secs, args.by, &filter, &|id| {
                names.resolve(id)
            }),
            overflow: (&cur.overflow).into(),
            probe: cur.probe,
            memory: (!mem.watch.pass_us.is_empty()).then(|| mem.watch.forecast()),
        };
        if let Some(r) = recorder.as_mut() {
            r.value(&rep).map_err(TraceError::Record)?;
        }

        if sink.show {
            // Events mode: a status line instead of the table, so drops
            // are seen as they happen.
            let st = Status {
                kind: "status",
                time_unix: rep.time_unix,
                elapsed_s: rep.elapsed_s,
                delivered: sink.delivered,
                dropped: cur.dropped,
            };
            let line = if sink.json {
                serde_json::to_string(&st).expect("status JSON")
            } else {
                format!(
                    "# {:.1}s: delivered exec {} exit {} fork {}; dropped exec {} exit {} fork {}",
                    st.elapsed_s,
                    st.delivered.exec,
                    st.delivered.exit,
                    st.delivered.fork,
                    st.dropped.exec,
                    st.dropped.exit,
                    st.dropped.fork
                )
            };
            writeln!(sink.out, "{line}")
                .and_then(|()| sink.out.flush())
                .map_err(TraceError::Output)?;
        } else {
            out.interval(&rep).map_err(TraceError::Output)?;
        }
        prev = cur;
        prev_at = at;
        next_tick += args.interval;
    }

    // Detach first: the last reading is then final, and per kind the
    // kernel's count equals records delivered plus records dropped.
    probe.detach();
    let cur = probe.snapshot()?;
    drain(
        &mut probe,
        &mut Sinks {
            names: &mut names,
            events: &mut sink,
            record: recorder.as_mut(),
            mem: &mut mem,
        },
    )?;
    names.refresh(cur.per_cgroup.keys());
    let rows = report::summary_rows_with(
        &cur,
        args.by,
        &filter,
        &|id| names.resolve(id),
        want_events.then_some(&sink.respawns.hist),
    );
    let totals = report::totals(&cur);
    let end_ns = monotonic_now_ns();
    let findings = sink.detector.as_mut().map(|d| d.findings(end_ns));
    if let Some(f) = &findings {
        mem.watch.set_loops(loop_rates(f));
    }
    let summary = Summary {
        kind: "summary",
        time_unix: now_unix(),
        duration_s: started.elapsed().as_secs_f64(),
        by: args.by,
        matched: (!filter.is_empty()).then(|| report::sum_rows(&rows)),
        filter,
        totals: (&totals).into(),
        rows,
        overflow: (&cur.overflow).into(),
        probe: cur.probe,
        exit_program: match probe.exit_flavour {
            ExitFlavour::GroupDeadArg => "group_dead",
            ExitFlavour::Legacy => "legacy",
        },
        attribution_warning,
        events: want_events.then(|| EventAccounting {
            counted: EventCounts {
                exec: totals.execs,
                exit: totals.process_exits(),
                fork: if args.forks { totals.forks } else { 0 },
                // Not counted apart in the kernel; every record is here.
                oom: sink.delivered.oom + cur.dropped.oom,
            },
            delivered: sink.delivered,
            dropped: cur.dropped,
            undecodable: sink.undecodable,
        }),
        monotonic_end_ns: end_ns,
        findings,
        oom_kills: std::mem::take(&mut sink.oom_kills),
        memory: MemorySummary {
            hierarchy: mem.watch.hierarchy(),
            samples: mem.watch.pass_us.len(),
            pass_us_p50: mem.watch.median_pass_us(),
            pass_us_slab_p50: mem.watch.median_slab_pass_us(),
            pass_us_max: mem.watch.pass_us.iter().max().copied(),
            cgroups: mem.watch.cgroups_sampled(),
            warnings: mem.watch.warnings.clone(),
            memcg_oom_kills: mem.watch.memcg_oom_kills.clone(),
            forecast: mem.watch.forecast(),
        },
    };
    if let Some(r) = recorder.as_mut() {
        r.value(&summary).map_err(TraceError::Record)?;
    }
    let recorded = recorder.map(Recorder::finish).transpose();
    out.summary(&summary).map_err(TraceError::Output)?;
    recorded.map_err(TraceError::Record)?;
    drop(probe);
    if let (Some(dir), Some(rec)) = (&args.export, &record_path) {
        let written = crate::export::export_all(rec, dir);
        if let Some(own) = &own_record {
            let _ = std::fs::remove_file(own);
        }
        for p in written? {
            eprintln!("spawnscope: exported {}", p.display());
        }
    }
    Ok(())
}
