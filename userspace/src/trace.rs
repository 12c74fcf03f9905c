//! `spawnscope trace`: the poll loop.

use std::{
    io,
    path::Path,
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
    report::{self, IntervalReport, Snapshot, Summary},
};

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("cannot write output: {0}")]
    Output(#[source] io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] io::Error),
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Sleeps until `until`, waking early when `stop` is set.
fn sleep_until(until: Instant, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

pub fn run(args: &TraceArgs) -> Result<(), TraceError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(TraceError::Signals)?;
    }

    let mount = cgroupfs::find_cgroup2(Path::new(cgroupfs::MOUNTINFO))
        .ok()
        .flatten();
    if mount.is_none() {
        eprintln!(
            "spawnscope: warning: no cgroup2 mount in {}; counts are shown by cgroup id only",
            cgroupfs::MOUNTINFO
        );
    }
    let mut names = CgroupNames::new(mount.map(|m| m.mount_point));

    let probe = Probe::load(&LoadOptions {
        btf_path: args.btf.clone(),
        max_cgroups: args.max_cgroups,
        exit_flavour: match args.exit_program {
            ExitProgram::Auto => None,
            ExitProgram::GroupDead => Some(ExitFlavour::GroupDeadArg),
            ExitProgram::Legacy => Some(ExitFlavour::Legacy),
        },
    })?;
    let started = Instant::now();
    // Scripts and tests wait for this line before starting their workload.
    eprintln!(
        "spawnscope: tracing fork/exec/exit per cgroup; interval {}, {}",
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
        Box::new(Table::new(stdout, args.top as usize))
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
        sleep_until(wake, &stop);
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let cur = probe.snapshot()?;
        let at = Instant::now();
        names.refresh(cur.per_cgroup.keys());
        let secs = (at - prev_at).as_secs_f64();
        let name = |id| names.name(id).map(str::to_string);
        let rep = IntervalReport {
            kind: "interval",
            time_unix: now_unix(),
            elapsed_s: (at - started).as_secs_f64(),
            interval_s: secs,
            cgroups: report::interval_rows(&prev, &cur, secs, name),
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
    names.refresh(cur.per_cgroup.keys());
    let summary = Summary {
        kind: "summary",
        time_unix: now_unix(),
        duration_s: started.elapsed().as_secs_f64(),
        totals: (&report::totals(&cur)).into(),
        cgroups: report::summary_rows(&cur, |id| names.name(id).map(str::to_string)),
        overflow: (&cur.overflow).into(),
        probe: cur.probe,
        exit_program: match probe.exit_flavour {
            ExitFlavour::GroupDeadArg => "group_dead",
            ExitFlavour::Legacy => "legacy",
        },
    };
    out.summary(&summary).map_err(TraceError::Output)?;
    // Dropping the probe detaches every program.
    drop(probe);
    Ok(())
}
