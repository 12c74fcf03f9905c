//! `spawnscope trace`: a session's events and counts, as a table, JSON
//! lines or a recording, with loops and memory warnings as they happen.

use std::{
    collections::{BTreeMap, HashMap},
    io::{self, BufWriter, Write},
    path::Path,
    time::{Duration, Instant},
};

use serde::Serialize;
use spawnscope_common::Lifetimes;
use tokio::time::MissedTickBehavior;

use crate::{
    cgroupfs,
    cli::{ExitProgram, TraceArgs},
    clock::{monotonic_now_ns, now_unix},
    detect::{self, Change, Config as DetectConfig, Detector, Finding, FindingKind, Prior},
    events::{self, Event, EventFilter},
    kernel::{EventOptions, KernelError, LoadOptions, ProbeLog},
    layout::ExitFlavour,
    mempress::{LoopRate, MemConfig},
    output::{
        Reporter,
        json::Json,
        schema::{EventAccounting, IntervalReport, MemorySummary, Schema, Summary},
        table::Table,
    },
    record::{RecordError, Recorder},
    report::{self, By, EventCounts, Filter, Key, Snapshot},
    session::{Item, MemAlert, Options, Session, SessionError, Signals},
};

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("cannot write output: {0}")]
    Output(#[source] io::Error),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] io::Error),
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
                schema: Schema,
                change: &'static str,
                #[serde(flatten)]
                finding: &'a Finding,
            }
            serde_json::to_string(&Line {
                schema: Schema,
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

impl EventSink {
    /// A loop systemd had counted before the trace began: told at once, as
    /// a live finding is when detected.
    fn prior(&mut self, p: &Prior) -> Result<(), TraceError> {
        let line = if self.json {
            #[derive(Serialize)]
            struct Line<'a> {
                schema: Schema,
                change: &'static str,
                #[serde(flatten)]
                finding: &'a Prior,
            }
            serde_json::to_string(&Line {
                schema: Schema,
                change: "detected",
                finding: p,
            })
            .expect("finding JSON")
        } else {
            format!("!! respawn loop [{}]: {}", p.severity.as_str(), p.message)
        };
        writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .map_err(TraceError::Output)
    }

    /// Events mode's line per interval: what was delivered and dropped.
    fn status(
        &mut self,
        rep: &IntervalReport,
        delivered: EventCounts,
        dropped: EventCounts,
    ) -> Result<(), TraceError> {
        let st = Status {
            kind: "status",
            schema: Schema,
            time_unix: rep.time_unix,
            elapsed_s: rep.elapsed_s,
            delivered,
            dropped,
        };
        let line = if self.json {
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
        self.line(&line)
    }

    fn line(&mut self, line: &str) -> Result<(), TraceError> {
        writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .map_err(TraceError::Output)
    }

    /// Memory warnings and memcg OOM kills: recorded, and shown in every
    /// mode.
    fn memory(
        &mut self,
        alerts: Vec<MemAlert>,
        record: Option<&mut Recorder>,
    ) -> Result<(), TraceError> {
        let mut record = record;
        for a in alerts {
            let json = a.to_json().to_string();
            if let Some(r) = record.as_deref_mut() {
                r.line(&json).map_err(TraceError::Record)?;
            }
            let line = if self.json {
                json
            } else {
                format!("!! memory: {}", a.message())
            };
            self.line(&line)?;
        }
        Ok(())
    }
}

/// The active respawn loops' rates, for the memory forecast's
/// per-restart figures.
fn loop_rates(detector: Option<&mut Detector>) -> Vec<LoopRate> {
    let Some(d) = detector else {
        return Vec::new();
    };
    d.findings(monotonic_now_ns())
        .iter()
        .filter(|f| f.state == detect::LoopState::Active)
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

/// Cgroup creations first: an event's cgroup was created before the event,
/// so its name is known by the time the event is rendered.
fn drain(
    s: &mut Session,
    ev: &mut EventSink,
    mut record: Option<&mut Recorder>,
) -> Result<(), TraceError> {
    s.drain_cgroups(|_, _| {});
    let mut changes = Vec::new();
    s.drain_events(|item| {
        match item {
            Item::OomKill(k) => {
                // An alert in every mode, and kept for the summary.
                let j = k.json.to_string();
                if let Some(rec) = record.as_deref_mut() {
                    rec.line(&j).map_err(TraceError::Record)?;
                }
                let line = if ev.json {
                    j
                } else {
                    format!("!! OOM kill: {}", k.human)
                };
                ev.oom_kills.push(k.json);
                writeln!(ev.out, "{line}").map_err(TraceError::Output)?;
            }
            Item::Event(n) => {
                let e = n.event;
                match e {
                    Event::Exec(x) => ev.respawns.exec(x, n.resolved),
                    Event::Exit(x) => ev.respawns.exit(x),
                    Event::Fork(_) | Event::Oom(_) => {}
                }
                if let (Some(d), Some(de)) = (ev.detector.as_mut(), events::det_event(e, n.place)) {
                    changes.extend(d.event(&de));
                }
                let json =
                    (ev.json || record.is_some()).then(|| events::to_json(e, n.place, n.time_unix));
                if let (Some(rec), Some(j)) = (record.as_deref_mut(), &json) {
                    rec.line(j).map_err(TraceError::Record)?;
                }
                if ev.show && ev.filter.accepts(e, n.resolved) {
                    let line = match json {
                        Some(j) if ev.json => j,
                        _ => events::to_human(e, n.place, n.time_unix),
                    };
                    writeln!(ev.out, "{line}").map_err(TraceError::Output)?;
                }
            }
        }
        Ok::<(), TraceError>(())
    })?;
    for c in changes {
        ev.change(c)?;
    }
    ev.out.flush().map_err(TraceError::Output)
}

#[derive(Serialize)]
struct Status {
    #[serde(rename = "type")]
    kind: &'static str,
    schema: Schema,
    time_unix: f64,
    elapsed_s: f64,
    delivered: EventCounts,
    dropped: EventCounts,
}

pub fn run(args: &TraceArgs) -> Result<(), TraceError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TraceError::Runtime)?
        .block_on(trace(args))
}

/// How often the rings are drained, the detector is told the time, and
/// Ctrl-C is noticed, whatever the report interval: the rings do not
/// wake the trace for each record (see EventConfig::events_wake_bytes).
const HOUSEKEEPING: Duration = Duration::from_millis(100);

async fn trace(args: &TraceArgs) -> Result<(), TraceError> {
    let mut signals = Signals::install()?;
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

    let mut s = Session::open(Options {
        mountinfo: &args.mountinfo,
        load: LoadOptions {
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
            // The loop below drains both rings every HOUSEKEEPING, so no
            // record needs to wake it.
            lazy_cgroups: true,
            lazy_events: true,
            probe_log: if args.probe_log {
                ProbeLog::Stderr
            } else {
                ProbeLog::Off
            },
        },
        // Names of cgroups still counted are never evicted; this bounds
        // the ones kept only because they once existed.
        names_cap: (args.max_cgroups as usize).saturating_mul(2).max(4096),
        mem: MemConfig {
            warn_before_s: args.mem_warn_before.as_secs_f64(),
            psi_percent: args.psi_warn,
            psi_for_s: args.psi_for.as_secs_f64(),
            ..MemConfig::default()
        },
    })?;
    if let Some(w) = &s.attribution_warning {
        eprintln!("spawnscope: warning: {w}");
    }
    if let Some(w) = &s.probe.oom_scope_warning {
        eprintln!("spawnscope: warning: {w}");
    }
    let started = Instant::now();
    let started_unix = now_unix();
    if let Some(r) = recorder.as_mut() {
        r.header(started_unix, s.started_ns, s.mono_to_unix)
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
        out: BufWriter::with_capacity(1 << 16, io::stdout()),
        detector: detect
            .then(|| Detector::new(DetectConfig::default(), s.started_ns, s.mono_to_unix)),
        oom_kills: Vec::new(),
        respawns: Respawns {
            by: args.by,
            last: HashMap::new(),
            hist: BTreeMap::new(),
            in_executor: HashMap::new(),
        },
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

    // What systemd already knows, read on a thread of its own (a
    // container's manager may take seconds to answer, and nothing of that
    // may hold up the trace): loops running now are told as soon as it is
    // read, before the first interval when it answers in time; live loops
    // in the same units continue them.
    let (systemd_tx, mut systemd_read) = tokio::sync::oneshot::channel();
    if !args.no_systemd {
        std::thread::spawn(move || {
            let _ = systemd_tx.send(crate::history::read_blocking(Path::new("/proc")));
        });
    }
    let mut systemd_pending = !args.no_systemd;
    let mut known: Option<crate::history::Known> = None;
    let mut priors: Vec<Prior> = Vec::new();

    let mut out: Box<dyn Reporter> = if args.json {
        Box::new(Json::new(io::stdout()))
    } else {
        Box::new(Table::new(io::stdout(), args.top as usize, args.by))
    };
    if args.events && !args.json {
        writeln!(sink.out, "{}", events::HUMAN_HEAD).map_err(TraceError::Output)?;
    }
    let start = tokio::time::Instant::from_std(started);
    let deadline = args.duration.map(|d| start + d);
    let mut report_tick = tokio::time::interval_at(start + args.interval, args.interval);
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    housekeeping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut mem_tick = tokio::time::interval(args.mem_interval);
    mem_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);

    let mut prev = Snapshot::default();
    let mut prev_at = started;
    loop {
        tokio::select! {
            // Ending first: a report due at the deadline is the summary's.
            biased;
            // SIGHUP too: its terminal is gone. Each ends the trace with
            // its summary and a complete recording.
            _ = signals.recv() => break,
            () = sleep_until_opt(deadline) => break,
            k = &mut systemd_read, if systemd_pending => {
                systemd_pending = false;
                if let Ok(Some(k)) = k {
                    priors = tell_priors(&k, &filter, &mut sink, recorder.as_mut())?;
                    known = Some(k);
                }
            }
            _ = report_tick.tick() => {
                let cur = s.probe.snapshot()?;
                let at = Instant::now();
                // Every id in `cur` had its mkdir record submitted before
                // it was first counted, so this drain has them all (bar
                // lost ones).
                drain(&mut s, &mut sink, recorder.as_mut())?;
                s.names.refresh(cur.per_cgroup.keys());
                let secs = (at - prev_at).as_secs_f64();
                let rep = IntervalReport {
                    kind: "interval",
                    schema: Schema,
                    time_unix: now_unix(),
                    elapsed_s: (at - started).as_secs_f64(),
                    interval_s: secs,
                    by: args.by,
                    rows: report::interval_rows(&prev, &cur, secs, args.by, &filter, &|id| {
                        s.names.resolve(id)
                    }),
                    overflow: cur.overflow,
                    probe: cur.probe,
                    memory: (!s.mem.pass_us.is_empty()).then(|| s.mem.forecast()),
                };
                if let Some(r) = recorder.as_mut() {
                    r.value(&rep).map_err(TraceError::Record)?;
                }
                if sink.show {
                    // Events mode: a status line instead of the table, so
                    // drops are seen as they happen.
                    sink.status(&rep, s.delivered, cur.dropped)?;
                } else {
                    out.interval(&rep).map_err(TraceError::Output)?;
                }
                prev = cur;
                prev_at = at;
            }
            r = s.ready() => {
                r?;
                drain(&mut s, &mut sink, recorder.as_mut())?;
            }
            _ = mem_tick.tick() => {
                let loops = loop_rates(sink.detector.as_mut());
                let alerts = s.sample_memory(loops);
                sink.memory(alerts, recorder.as_mut())?;
            }
            _ = housekeeping.tick() => {
                drain(&mut s, &mut sink, recorder.as_mut())?;
                // Stopped loops are marked between readings too, not only
                // at the interval, so a long --interval does not delay the
                // mark.
                let changes = sink
                    .detector
                    .as_mut()
                    .map(|d| d.tick(monotonic_now_ns()))
                    .unwrap_or_default();
                for c in changes {
                    sink.change(c)?;
                }
            }
        }
    }

    // Detach first: the last reading is then final, and per kind the
    // kernel's count equals records delivered plus records dropped.
    s.probe.detach();
    let cur = s.probe.snapshot()?;
    drain(&mut s, &mut sink, recorder.as_mut())?;
    s.names.refresh(cur.per_cgroup.keys());
    let rows = report::summary_rows_with(
        &cur,
        args.by,
        &filter,
        &|id| s.names.resolve(id),
        want_events.then_some(&sink.respawns.hist),
    );
    let totals = report::totals(&cur);
    let end_ns = monotonic_now_ns();
    let findings = sink.detector.as_mut().map(|d| d.findings(end_ns));
    let systemd_summary = known.map(|k| {
        // The loops a live finding continued are told there.
        let alone = match sink.detector.as_ref() {
            Some(d) => d.priors_alone(),
            None => priors,
        };
        k.summary(alone)
    });
    s.mem.set_loops(loop_rates(sink.detector.as_mut()));
    let mem = &s.mem;
    let summary = Summary {
        kind: "summary",
        schema: Schema,
        time_unix: now_unix(),
        duration_s: started.elapsed().as_secs_f64(),
        by: args.by,
        matched: (!filter.is_empty()).then(|| report::sum_rows(&rows)),
        filter,
        totals,
        rows,
        overflow: cur.overflow,
        probe: cur.probe,
        exit_program: match s.probe.exit_flavour {
            ExitFlavour::GroupDeadArg => "group_dead",
            ExitFlavour::Legacy => "legacy",
        },
        attribution_warning: s.attribution_warning.clone(),
        events: want_events.then(|| EventAccounting {
            counted: EventCounts {
                exec: totals.execs,
                exit: totals.process_exits(),
                fork: if args.forks { totals.forks } else { 0 },
                // Not counted apart in the kernel; every record is here.
                oom: s.delivered.oom + cur.dropped.oom,
            },
            delivered: s.delivered,
            dropped: cur.dropped,
            undecodable: s.undecodable,
        }),
        monotonic_end_ns: end_ns,
        findings,
        systemd: systemd_summary,
        oom_kills: std::mem::take(&mut sink.oom_kills),
        memory: MemorySummary {
            hierarchy: mem.hierarchy(),
            samples: mem.pass_us.len(),
            pass_us_p50: mem.median_pass_us(),
            pass_us_slab_p50: mem.median_slab_pass_us(),
            pass_us_max: mem.pass_us.iter().max().copied(),
            cgroups: mem.cgroups_sampled(),
            warnings: mem.warnings.clone(),
            memcg_oom_kills: mem.memcg_oom_kills.clone(),
            forecast: mem.forecast(),
        },
    };
    if let Some(r) = recorder.as_mut() {
        r.value(&summary).map_err(TraceError::Record)?;
    }
    let recorded = recorder.map(Recorder::finish).transpose();
    out.summary(&summary).map_err(TraceError::Output)?;
    recorded.map_err(TraceError::Record)?;
    drop(s);
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

/// Tells the loops systemd has been counting (one line each, or a JSON
/// finding), records them, and seeds the detector with them.
fn tell_priors(
    k: &crate::history::Known,
    filter: &crate::report::Filter,
    sink: &mut EventSink,
    mut recorder: Option<&mut Recorder>,
) -> Result<Vec<Prior>, TraceError> {
    if let Some(line) = k.problem() {
        eprintln!("spawnscope: {line}");
    }
    let priors: Vec<Prior> = k
        .priors()
        .into_iter()
        .filter(|p| filter.admits_unit(&p.unit, p.container.as_deref()))
        .collect();
    for p in &priors {
        sink.prior(p)?;
        if let Some(r) = recorder.as_deref_mut() {
            r.value(&serde_json::json!({"type": "prior", "schema": Schema, "finding": p}))
                .map_err(TraceError::Record)?;
        }
    }
    if let Some(d) = sink.detector.as_mut() {
        d.seed(priors.iter().cloned());
    }
    Ok(priors)
}

/// Never resolves without a deadline.
async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
