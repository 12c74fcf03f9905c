//! `spawnscope trace`: the poll loop.

use std::{
    io,
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::{
    cgroupfs::{self, CgroupNames},
    cli::{ExitProgram, TraceArgs},
    kernel::{KernelError, LoadOptions, Probe},
    layout::ExitFlavour,
    output::{Reporter, json::Json, table::Table},
    report::{self, Filter, IntervalReport, Snapshot, Summary},
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
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Waits until `until`, draining cgroup creations as they arrive rather
/// than once per interval, so a burst of them fits in the ring buffer;
/// wakes early when `stop` is set.
fn wait_until(until: Instant, stop: &AtomicBool, probe: &mut Probe, names: &mut CgroupNames) {
    loop {
        drain(probe, names);
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) || now >= until {
            return;
        }
        let wait = (until - now).min(Duration::from_millis(100));
        let mut pfd = libc::pollfd {
            fd: probe.mkdir_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call. EINTR (a
        // signal) and errors just end this wait early; the loop re-checks.
        unsafe { libc::poll(&mut pfd, 1, wait.as_millis() as libc::c_int) };
    }
}

fn drain(probe: &mut Probe, names: &mut CgroupNames) {
    probe.drain_mkdirs(|m| {
        // A path the kernel cut short would name the wrong cgroup; leave
        // that id to the tree walk.
        if !m.truncated {
            names.learn(m.id, &m.path);
        }
    });
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

    let mut probe = Probe::load(&LoadOptions {
        btf_path: args.btf.clone(),
        max_cgroups: args.max_cgroups,
        exit_flavour: match args.exit_program {
            ExitProgram::Auto => None,
            ExitProgram::GroupDead => Some(ExitFlavour::GroupDeadArg),
            ExitProgram::Legacy => Some(ExitFlavour::Legacy),
        },
    })?;
    // The mkdir probe is attached: every cgroup is either created from now
    // on (and reported) or already there for this walk to find.
    names.walk();
    let started = Instant::now();
    // Scripts and tests wait for this line before starting their workload.
    eprintln!(
        "spawnscope: tracing fork/exec/exit per {}; interval {}, {}",
        args.by.as_str(),
        humantime::format_duration(args.interval),
        match args.duration {
            Some(d) => format!("for {}", humantime::format_duration(d)),
            None => "until Ctrl-C".to_string(),
        }
    );

    let stdout = io::stdout().lock();
    let mut out: Box<dyn Reporter> = if args.json {
        Box::new(Json::new(stdout))
    } else {
        Box::new(Table::new(stdout, args.top as usize, args.by))
    };
    let deadline = args.duration.map(|d| started + d);

    let mut prev = Snapshot::default();
    let mut prev_at = started;
    let mut next_tick = started + args.interval;
    loop {
        let wake = match deadline {
            Some(d) if d < next_tick => d,
            _ => next_tick,
        };
        wait_until(wake, &stop, &mut probe, &mut names);
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let cur = probe.snapshot()?;
        let at = Instant::now();
        // Every id in `cur` had its mkdir record submitted before it was
        // first counted, so this drain has them all (bar lost ones).
        drain(&mut probe, &mut names);
        names.refresh(cur.per_cgroup.keys());
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
        };
        out.interval(&rep).map_err(TraceError::Output)?;
        prev = cur;
        prev_at = at;
        next_tick += args.interval;
    }

    // The final reading, after the stop, so nothing counted is left out.
    let cur = probe.snapshot()?;
    drain(&mut probe, &mut names);
    names.refresh(cur.per_cgroup.keys());
    let rows = report::summary_rows(&cur, args.by, &filter, &|id| names.resolve(id));
    let summary = Summary {
        kind: "summary",
        time_unix: now_unix(),
        duration_s: started.elapsed().as_secs_f64(),
        by: args.by,
        matched: (!filter.is_empty()).then(|| report::sum_rows(&rows)),
        filter,
        totals: (&report::totals(&cur)).into(),
        rows,
        overflow: (&cur.overflow).into(),
        probe: cur.probe,
        exit_program: match probe.exit_flavour {
            ExitFlavour::GroupDeadArg => "group_dead",
            ExitFlavour::Legacy => "legacy",
        },
        attribution_warning,
    };
    out.summary(&summary).map_err(TraceError::Output)?;
    // Dropping the probe detaches every program.
    drop(probe);
    Ok(())
}
