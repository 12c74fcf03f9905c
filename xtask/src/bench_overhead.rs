//! `cargo xtask bench overhead` (issue 9, first part): what each of
//! spawnscope's own modes adds to a spawn loop. `spawn-workload --clean N`
//! does N × (spawn `/bin/true`, wait). Each round times an untraced loop,
//! then the same loop under the mode (A/B, back to back, so that drift of
//! the machine cancels), for every mode in turn; the overhead is the
//! median over rounds of B/A − 1, with its min–max. Peers: bpftrace
//! counting the same three tracepoints per cgroup, and forkstat (both
//! installed by the bench); auditd is not here yet.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    bench::{await_stderr, build_release_bins, median, minmax, require_root},
    util::{Fail, run_checked},
};

const ROUNDS: usize = 11;
const SPAWNS: u32 = 5000;

/// How a mode says it is attached.
#[derive(Clone, Copy)]
enum Ready {
    /// A line on stderr containing this.
    Stderr(&'static str),
    /// Its stdout (sent to a file) contains this.
    Stdout(&'static str),
    /// Nothing to wait for (forkstat's netlink socket is live as soon as
    /// it runs): a fixed pause.
    Pause,
}

struct Mode {
    name: &'static str,
    /// None: the spawnscope binary under test.
    program: Option<&'static str>,
    args: &'static [&'static str],
    ready: Ready,
}

/// bpftrace's per-cgroup count of the three tracepoints spawnscope uses.
const BPFTRACE_SCRIPT: &str = "tracepoint:sched:sched_process_fork { @forks[cgroup] = count(); }\n\
    tracepoint:sched:sched_process_exec { @execs[cgroup] = count(); }\n\
    tracepoint:sched:sched_process_exit { @exits[cgroup] = count(); }\n";

const MODES: [Mode; 5] = [
    Mode {
        name: "spawnscope sentinel (counter mode)",
        program: None,
        args: &["sentinel", "--config"],
        ready: Ready::Stderr("sentinel started"),
    },
    Mode {
        name: "spawnscope trace",
        program: None,
        args: &["trace", "--interval", "1s"],
        ready: Ready::Stderr("spawnscope: tracing"),
    },
    Mode {
        name: "spawnscope trace --events > /dev/null",
        program: None,
        args: &["trace", "--events", "--interval", "1s"],
        ready: Ready::Stderr("spawnscope: tracing"),
    },
    Mode {
        name: "bpftrace, 3 tracepoints per cgroup",
        program: Some("bpftrace"),
        args: &["-e", BPFTRACE_SCRIPT],
        ready: Ready::Stdout("Attaching 3 probes"),
    },
    Mode {
        name: "forkstat > /dev/null",
        program: Some("forkstat"),
        args: &[],
        ready: Ready::Pause,
    },
];

/// Seconds for one spawn loop.
fn spawn_loop(workload: &Path) -> Result<f64, Fail> {
    let t0 = Instant::now();
    let st = Command::new(workload)
        .args(["--clean", &SPAWNS.to_string()])
        .status()
        .map_err(|e| Fail(format!("spawn-workload: {e}")))?;
    if !st.success() {
        return Err(Fail(format!("spawn-workload failed: {st}")));
    }
    Ok(t0.elapsed().as_secs_f64())
}

struct Tracer(Child);

impl Drop for Tracer {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn start(bin: &Path, mode: &Mode, dir: &Path) -> Result<Tracer, Fail> {
    let mut c = match mode.program {
        Some(p) => Command::new(p),
        None => Command::new(bin),
    };
    c.args(mode.args);
    if mode.args.last() == Some(&"--config") {
        c.arg(dir.join("sentinel.toml"));
    }
    let out = dir.join("stdout");
    let stdout = match mode.ready {
        Ready::Stdout(_) => Stdio::from(
            std::fs::File::create(&out).map_err(|e| Fail(format!("{}: {e}", out.display())))?,
        ),
        _ => Stdio::null(),
    };
    let stderr = match mode.ready {
        Ready::Stderr(_) => Stdio::piped(),
        _ => Stdio::null(),
    };
    let child = c
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| Fail(format!("cannot start {}: {e}", mode.name)))?;
    let mut t = Tracer(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    match mode.ready {
        Ready::Stderr(needle) => {
            await_stderr(&mut t.0, needle, mode.name)?;
        }
        Ready::Stdout(s) => loop {
            if std::fs::read_to_string(&out).is_ok_and(|t| t.contains(s)) {
                break;
            }
            if Instant::now() > deadline {
                return Err(Fail(format!("{} did not start within 60 s", mode.name)));
            }
            std::thread::sleep(Duration::from_millis(50));
        },
        Ready::Pause => std::thread::sleep(Duration::from_secs(1)),
    }
    Ok(t)
}

/// bpftrace finds tracepoints through tracefs; mounted for the bench if
/// it is not, and unmounted afterwards.
struct Tracefs(bool);

impl Tracefs {
    fn ensure() -> Result<Self, Fail> {
        if Path::new("/sys/kernel/tracing/events").exists() {
            return Ok(Self(false));
        }
        run_checked(Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]))?;
        Ok(Self(true))
    }
}

impl Drop for Tracefs {
    fn drop(&mut self) {
        if self.0 {
            let _ = Command::new("umount").arg("/sys/kernel/tracing").status();
        }
    }
}

pub fn overhead() -> Result<(), Fail> {
    require_root("overhead", "loads BPF programs")?;
    let target = build_release_bins()?;
    crate::setup::ensure_packages(&["bpftrace", "forkstat"])?;
    let _tracefs = Tracefs::ensure()?;
    let bin = target.join("spawnscope");
    let workload = target.join("spawn-workload");
    let dir =
        std::env::temp_dir().join(format!("spawnscope-bench-overhead-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Fail(format!("{}: {e}", dir.display())))?;
    let config = dir.join("sentinel.toml");
    std::fs::write(
        &config,
        format!(
            "state = \"{}\"\nlisten = \"127.0.0.1:0\"\n",
            dir.join("state").display()
        ),
    )
    .map_err(|e| Fail(format!("{}: {e}", config.display())))?;

    println!(
        "spawn loop: spawn-workload --clean {SPAWNS} (spawn /bin/true, wait; {SPAWNS} times), \
         {ROUNDS} rounds;"
    );
    println!("each round times the loop untraced (A), then under the mode (B), for every mode.");
    println!("Overhead: median of B/A - 1 over the rounds (min-max); A: the untraced rate.");
    println!();
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); MODES.len()];
    let mut base_rates = Vec::new();
    for _ in 0..ROUNDS {
        for (i, mode) in MODES.iter().enumerate() {
            let a = spawn_loop(&workload)?;
            let tracer = start(&bin, mode, &dir)?;
            let b = spawn_loop(&workload)?;
            drop(tracer);
            ratios[i].push(b / a);
            base_rates.push(SPAWNS as f64 / a);
        }
    }
    println!(
        "untraced: {:.0} spawns/s (median of {} runs)",
        median(&mut base_rates),
        base_rates.len()
    );
    println!("{:<40} {:>9}  {:>17}  runs", "mode", "overhead", "min-max");
    for (mode, r) in MODES.iter().zip(ratios.iter_mut()) {
        let (lo, hi) = minmax(r);
        println!(
            "{:<40} {:>8.1}%  {:>7.1}% .. {:>5.1}%  {}",
            mode.name,
            (median(r) - 1.0) * 100.0,
            (lo - 1.0) * 100.0,
            (hi - 1.0) * 100.0,
            r.len()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
