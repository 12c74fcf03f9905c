//! Sections 1 and 2 of `cargo xtask bench`: what each spawnscope mode and
//! each peer adds to a spawn loop, and what each BPF program costs per
//! run, measured in the same loops.
//!
//! `spawn-workload --clean N` does N × (spawn `/bin/true`, wait), pinned to
//! the last CPU so that run-to-run spread comes from the work, not from
//! migrations. Each round times an untraced loop (A), then starts the
//! mode, times the loop again (B) and stops the mode, for every mode in
//! turn, so that drift of the machine cancels; the overhead is the median
//! over rounds of B/A − 1. `kernel.bpf_stats_enabled` stays on for the
//! whole section (toggling it while programs run corrupts the figures:
//! a run that straddles the switch is charged from time zero) and is
//! restored at the end.
//!
//! auditd runs in rounds of its own, after all other modes: starting it
//! sets the kernel's sticky `audit_ever_enabled`, after which every new
//! task carries an audit context until reboot, and that would slow the
//! untraced loops of every mode measured later.

use std::{
    collections::BTreeMap,
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    bench::{
        BpfStats, Section, await_stderr, cgroup2_slice, cpu_ns, join_cgroup, median, minmax,
        require_root, sentinel_scratch,
    },
    util::{Fail, output, run_checked},
};

const ROUNDS: usize = 9;
const SPAWNS: u32 = 3000;
/// Section 2's targets: counter mode's BPF time per spawn (fork, exec and
/// exit), its exit program per run, and event mode's exec program per run,
/// ns; and counter mode at most this share of bpftrace's count per spawn.
const TARGET_SPAWN_NS: f64 = 600.0;
const TARGET_EXIT_NS: f64 = 300.0;
const TARGET_EVENT_EXEC_NS: f64 = 1000.0;
const TARGET_OF_BPFTRACE: f64 = 0.5;
/// Loops under each of the limits (section 2's floors and smallest
/// counts), interleaved.
const LIMIT_LOOPS: usize = 3;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Spawnscope(&'static [&'static str]),
    Bpftrace(&'static str),
    /// `bpf-limits SET`: the smallest programs doing one part of counting.
    Limits(&'static str),
    Forkstat,
    Auditd,
}

struct Mode {
    name: &'static str,
    kind: Kind,
}

/// bpftrace's per-cgroup count of the three tracepoints spawnscope uses.
pub(crate) const BPFTRACE_COUNT: &str = "tracepoint:sched:sched_process_fork { @forks[cgroup] = count(); }\n\
    tracepoint:sched:sched_process_exec { @execs[cgroup] = count(); }\n\
    tracepoint:sched:sched_process_exit { @exits[cgroup] = count(); }\n";

/// The same tracepoints with programs that do nothing: what any program
/// run costs on this machine, measured the same way.
const BPFTRACE_EMPTY: &str = "tracepoint:sched:sched_process_fork,\
    tracepoint:sched:sched_process_exec,tracepoint:sched:sched_process_exit { }\n";

const COUNTER: &str = "spawnscope sentinel (counter mode)";
const EVENTS: &str = "spawnscope trace --events > /dev/null";

const MODES: [Mode; 6] = [
    Mode {
        name: COUNTER,
        kind: Kind::Spawnscope(&["sentinel", "--config"]),
    },
    Mode {
        name: "spawnscope trace",
        kind: Kind::Spawnscope(&["trace", "--interval", "1s"]),
    },
    Mode {
        name: EVENTS,
        kind: Kind::Spawnscope(&["trace", "--events", "--interval", "1s"]),
    },
    Mode {
        name: "bpftrace, 3 tracepoints counted per cgroup",
        kind: Kind::Bpftrace(BPFTRACE_COUNT),
    },
    Mode {
        name: "forkstat > /dev/null",
        kind: Kind::Forkstat,
    },
    Mode {
        name: "auditd, execve rule",
        kind: Kind::Auditd,
    },
];

const BPFTRACE: &str = "bpftrace, 3 tracepoints counted per cgroup";

/// Section 2's limits: what a program, an increment and a per-cgroup count
/// cost here, each measured alone with the smallest programs that do it.
/// All but bpftrace's floor are `bpf-limits` sets, attached as
/// spawnscope's programs are (tp_btf on the same tracepoints).
const LIMITS: [Mode; 6] = [
    Mode {
        name: "floor: bpftrace, empty programs",
        kind: Kind::Bpftrace(BPFTRACE_EMPTY),
    },
    Mode {
        name: "floor: tp_btf, empty programs",
        kind: Kind::Limits("empty"),
    },
    Mode {
        name: "limit: one per-CPU array increment",
        kind: Kind::Limits("array"),
    },
    Mode {
        name: "limit: per-cgroup count, per-CPU hash",
        kind: Kind::Limits("hash"),
    },
    Mode {
        name: "limit: per-cgroup count, cgroup storage",
        kind: Kind::Limits("cgrp"),
    },
    Mode {
        name: "limit: an exec record, reserved and submitted",
        kind: Kind::Limits("record"),
    },
];
/// Indices into LIMITS.
const BPFTRACE_FLOOR: usize = 0;
const TP_BTF_FLOOR: usize = 1;
const ARRAY: usize = 2;
const HASH: usize = 3;
const CGRP: usize = 4;
const RECORD: usize = 5;

/// The CPU the loop is pinned to: the last one, away from CPU 0's
/// interrupts; None on a one-CPU machine.
fn loop_cpu() -> Option<usize> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (n > 1).then_some(n - 1)
}

/// Seconds for one spawn loop, run in `cgroup` (its own, as a unit's
/// would be: a sentinel drilling into the bench's cgroup, where other
/// things may fail, then does not stream the loop's records).
fn spawn_loop(workload: &Path, cgroup: &Path) -> Result<f64, Fail> {
    let mut c = Command::new(workload);
    c.args(["--clean", &SPAWNS.to_string()]);
    join_cgroup(&mut c, cgroup)?;
    if let Some(cpu) = loop_cpu() {
        // SAFETY: sched_setaffinity on the child itself, with a set built
        // on its own stack; async-signal-safe.
        unsafe {
            c.pre_exec(move || {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let t0 = Instant::now();
    let st = c
        .status()
        .map_err(|e| Fail(format!("spawn-workload: {e}")))?;
    if !st.success() {
        return Err(Fail(format!("spawn-workload failed: {st}")));
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// One loaded BPF program's cumulative statistics.
#[derive(Clone)]
struct Prog {
    name: String,
    run_time_ns: u64,
    run_cnt: u64,
}

/// Every loaded program, by id, named by its tracepoint when it is a
/// classic tracepoint program (bpftrace's names are cut to 15 bytes,
/// which makes exec and exit both "sched_process_e").
fn programs() -> Result<BTreeMap<u64, Prog>, Fail> {
    let json = |args: &[&str]| -> Result<serde_json::Value, Fail> {
        let text = output(Command::new("bpftool").args(args))
            .ok_or_else(|| Fail(format!("bpftool {} failed", args.join(" "))))?;
        serde_json::from_str(&text).map_err(|e| Fail(format!("bpftool {}: {e}", args.join(" "))))
    };
    let mut tracepoints = BTreeMap::new();
    for p in json(&["perf", "show", "-j"])?
        .as_array()
        .into_iter()
        .flatten()
    {
        if let (Some(id), Some(tp)) = (p["prog_id"].as_u64(), p["tracepoint"].as_str()) {
            tracepoints.insert(id, tp.to_string());
        }
    }
    let mut out = BTreeMap::new();
    for p in json(&["prog", "show", "-j"])?
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(id) = p["id"].as_u64() else { continue };
        let name = tracepoints
            .get(&id)
            .cloned()
            .or_else(|| p["name"].as_str().map(str::to_string))
            .unwrap_or_default();
        out.insert(
            id,
            Prog {
                name,
                run_time_ns: p["run_time_ns"].as_u64().unwrap_or(0),
                run_cnt: p["run_cnt"].as_u64().unwrap_or(0),
            },
        );
    }
    Ok(out)
}

/// Run time and runs of the programs in `after` that are not in `loaded`
/// (so: the mode's own), between two snapshots, by program name.
fn prog_deltas(
    loaded: &BTreeMap<u64, Prog>,
    before: &BTreeMap<u64, Prog>,
    after: &BTreeMap<u64, Prog>,
) -> BTreeMap<String, (u64, u64)> {
    let mut d = BTreeMap::new();
    for (id, a) in after {
        if loaded.contains_key(id) {
            continue;
        }
        let Some(b) = before.get(id) else { continue };
        if a.run_cnt > b.run_cnt {
            d.insert(
                a.name.clone(),
                (a.run_time_ns - b.run_time_ns, a.run_cnt - b.run_cnt),
            );
        }
    }
    d
}

/// The rule auditd runs with (added with -a, removed with -d).
const AUDIT_RULE: [&str; 7] = [
    "always,exit",
    "-F",
    "arch=b64",
    "-S",
    "execve",
    "-k",
    "spawnscope-bench",
];

fn audit_rule(op: &str) -> Command {
    let mut c = Command::new("auditctl");
    c.arg(op).args(AUDIT_RULE);
    c
}

/// The kernel's audit `enabled` flag (auditctl -s), restored on drop with
/// the rule removed; see the module comment for what cannot be restored.
struct AuditState(Option<String>);

impl AuditState {
    fn save() -> Self {
        let s = output(Command::new("auditctl").arg("-s")).unwrap_or_default();
        Self(
            s.lines()
                .find_map(|l| l.strip_prefix("enabled ").map(|v| v.trim().to_string())),
        )
    }
}

impl Drop for AuditState {
    fn drop(&mut self) {
        let _ = audit_rule("-d").stderr(Stdio::null()).status();
        if let Some(e) = &self.0 {
            let _ = Command::new("auditctl")
                .args(["-e", e])
                .stdout(Stdio::null())
                .status();
        }
    }
}

/// One audit daemon per kernel: a host's own (Debian's package starts one
/// where systemd runs) is not the bench's to stop, so the bench refuses to
/// start rather than measure alongside it.
fn no_audit_daemon() -> Result<(), Fail> {
    let status = output(Command::new("auditctl").arg("-s")).unwrap_or_default();
    match status
        .lines()
        .find_map(|l| l.strip_prefix("pid "))
        .map(str::trim)
        .filter(|p| *p != "0")
    {
        Some(pid) => Err(Fail(format!(
            "an audit daemon (pid {pid}) is already running; stop it for the bench \
             (e.g. systemctl stop auditd)"
        ))),
        None => Ok(()),
    }
}

/// A running mode, stopped by pid (and its audit rule removed) on drop.
struct Tracer {
    child: Child,
    audit: bool,
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if self.audit {
            let _ = audit_rule("-d").stderr(Stdio::null()).status();
        }
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

pub(crate) fn wait_file(path: &Path, needle: &str, what: &str) -> Result<(), Fail> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
        if Instant::now() > deadline {
            return Err(Fail(format!("{what} did not start within 60 s")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Starts `mode`; `dir` is the scratch directory, `config` the sentinel's.
fn start(bin: &Path, mode: &Mode, dir: &Path, config: &Path) -> Result<Tracer, Fail> {
    let spawn = |c: &mut Command| {
        c.spawn()
            .map_err(|e| Fail(format!("cannot start {}: {e}", mode.name)))
    };
    let out = dir.join("stdout");
    let file = || {
        std::fs::File::create(&out)
            .map(Stdio::from)
            .map_err(|e| Fail(format!("{}: {e}", out.display())))
    };
    match mode.kind {
        Kind::Spawnscope(args) => {
            let mut c = Command::new(bin);
            c.args(args);
            let ready = if args[0] == "sentinel" {
                c.arg(config);
                "sentinel started"
            } else {
                "spawnscope: tracing"
            };
            let mut t = Tracer {
                child: spawn(c.stdout(Stdio::null()).stderr(Stdio::piped()))?,
                audit: false,
            };
            await_stderr(&mut t.child, ready, mode.name)?;
            Ok(t)
        }
        Kind::Bpftrace(script) => {
            let t = Tracer {
                child: spawn(
                    Command::new("bpftrace")
                        .args(["-e", script])
                        .stdout(file()?)
                        .stderr(Stdio::null()),
                )?,
                audit: false,
            };
            wait_file(&out, "Attaching", mode.name)?;
            // "Attaching N probes..." comes before the attach itself.
            std::thread::sleep(Duration::from_secs(1));
            Ok(t)
        }
        Kind::Limits(set) => {
            let mut t = Tracer {
                child: spawn(
                    Command::new(limits_bin(bin))
                        .arg(set)
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped()),
                )?,
                audit: false,
            };
            // It says so once its programs are attached and have counted
            // a spawn of its own.
            await_stderr(&mut t.child, "bpf-limits: attached", mode.name)?;
            Ok(t)
        }
        Kind::Forkstat => {
            let t = Tracer {
                child: spawn(
                    Command::new("forkstat")
                        .stdout(Stdio::null())
                        .stderr(Stdio::null()),
                )?,
                audit: false,
            };
            // Its netlink socket is live as soon as it runs.
            std::thread::sleep(Duration::from_secs(1));
            Ok(t)
        }
        Kind::Auditd => {
            // Its own configuration, so the bench's records go to a scratch
            // log instead of the host's.
            let conf = std::fs::read_to_string("/etc/audit/auditd.conf")
                .map_err(|e| Fail(format!("/etc/audit/auditd.conf: {e}")))?;
            let conf: String = conf
                .lines()
                .filter(|l| !l.trim_start().starts_with("log_file"))
                .map(|l| format!("{l}\n"))
                .collect();
            let conf = format!("{conf}log_file = {}\n", dir.join("audit.log").display());
            let confdir = dir.join("audit");
            std::fs::create_dir_all(&confdir)
                .and_then(|()| std::fs::write(confdir.join("auditd.conf"), conf))
                .map_err(|e| Fail(format!("{}: {e}", confdir.display())))?;
            let mut t = Tracer {
                child: spawn(
                    Command::new("auditd")
                        .arg("-n")
                        .arg("-c")
                        .arg(&confdir)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null()),
                )?,
                audit: false,
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            let pid = format!("pid {}", t.child.id());
            while !output(Command::new("auditctl").arg("-s"))
                .is_some_and(|s| s.lines().any(|l| l.trim() == pid))
            {
                if Instant::now() > deadline {
                    return Err(Fail("auditd did not register within 30 s".into()));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            run_checked(audit_rule("-a").stdout(Stdio::null()))?;
            t.audit = true;
            Ok(t)
        }
    }
}

/// `bpf-limits`, built beside `bin` (see build_release_bins).
fn limits_bin(bin: &Path) -> std::path::PathBuf {
    bin.with_file_name("bpf-limits")
}

/// Whether this kernel can load the limit `mode` (`bpf-limits
/// --supported`: 0 yes, 2 no); every mode but a bpf-limits set can.
fn limit_supported(bin: &Path, mode: &Mode) -> Result<bool, Fail> {
    let Kind::Limits(set) = mode.kind else {
        return Ok(true);
    };
    let limits = limits_bin(bin);
    let st = Command::new(&limits)
        .args(["--supported", set])
        .stderr(Stdio::null())
        .status()
        .map_err(|e| Fail(format!("{}: {e}", limits.display())))?;
    match st.code() {
        Some(0) => Ok(true),
        Some(2) => Ok(false),
        _ => Err(Fail(format!("bpf-limits --supported {set}: {st}"))),
    }
}

/// bpftrace finds tracepoints through tracefs; mounted for the bench if
/// it is not, and unmounted afterwards.
pub(crate) struct Tracefs(bool);

impl Tracefs {
    pub(crate) fn ensure() -> Result<Self, Fail> {
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

/// What one mode's B loops gave.
#[derive(Default)]
struct Runs {
    ratios: Vec<f64>,
    /// The tracer's own CPU time per spawn, µs.
    tracer_us: Vec<f64>,
    /// Per program: ns per run, and runs per spawn, one entry per loop.
    progs: BTreeMap<String, Vec<(f64, f64)>>,
}

impl Runs {
    /// Per program: its ns per run in each loop, and the medians of ns per
    /// run and of runs per spawn.
    fn prog_medians(&self) -> Vec<(&str, Vec<f64>, f64, f64)> {
        self.progs
            .iter()
            .map(|(name, v)| {
                let ns: Vec<f64> = v.iter().map(|x| x.0).collect();
                let mut per: Vec<f64> = v.iter().map(|x| x.1).collect();
                let ns_med = median(&mut ns.clone());
                (name.as_str(), ns, ns_med, median(&mut per))
            })
            .collect()
    }

    fn bpf_ns_per_spawn(&self) -> Vec<f64> {
        let loops = self.progs.values().map(Vec::len).max().unwrap_or(0);
        (0..loops)
            .map(|i| {
                self.progs
                    .values()
                    .filter_map(|v| v.get(i))
                    .map(|(ns, per)| ns * per)
                    .sum()
            })
            .collect()
    }
}

/// Times one B loop under `tracer`, with its CPU and its programs' cost.
fn measured_loop(
    workload: &Path,
    cgroup: &Path,
    tracer: &Tracer,
    loaded: &BTreeMap<u64, Prog>,
    runs: &mut Runs,
) -> Result<f64, Fail> {
    let pid = tracer.child.id();
    let (c0, p0) = (cpu_ns(pid), programs()?);
    let b = spawn_loop(workload, cgroup)?;
    let (c1, p1) = (cpu_ns(pid), programs()?);
    // A tracer that ended during the loop (bpf-limits ends when a record
    // found its ring full) measured something else than it says.
    // SAFETY: siginfo_t is plain data, valid all zero.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid on our own child with WNOWAIT, which leaves it to be
    // reaped by Tracer's drop; `info` is a valid siginfo_t.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: si_pid is set when waitid reports a child, zero otherwise.
    if r == 0 && unsafe { info.si_pid() } != 0 {
        return Err(Fail(format!(
            "the tracer (pid {pid}) ended during its measured loop"
        )));
    }
    runs.tracer_us
        .push(c1.saturating_sub(c0) as f64 / 1e3 / SPAWNS as f64);
    for (name, (ns, cnt)) in prog_deltas(loaded, &p0, &p1) {
        runs.progs
            .entry(name)
            .or_default()
            .push((ns as f64 / cnt as f64, cnt as f64 / SPAWNS as f64));
    }
    Ok(b)
}

fn pct(r: f64) -> String {
    format!("{:.1} %", (r - 1.0) * 100.0)
}

/// Median (min–max) of `v`, formatted with `f`.
fn mmm(v: &[f64], f: impl Fn(f64) -> String) -> String {
    let mut v = v.to_vec();
    let (lo, hi) = minmax(&v);
    format!("{} ({} … {})", f(median(&mut v)), f(lo), f(hi))
}

/// Runs sections 1 and 2; returns them in that order.
pub fn overhead(target: &Path) -> Result<(Section, Section), Fail> {
    require_root("overhead", "loads BPF programs")?;
    crate::setup::ensure_packages(&["bpftrace", "forkstat", "auditd", "bpftool"])?;
    no_audit_daemon()?;
    let _tracefs = Tracefs::ensure()?;
    let bin = target.join("spawnscope");
    let workload = target.join("spawn-workload");
    let (dir, config) = sentinel_scratch("overhead")?;
    let slice = cgroup2_slice()?;
    let cg = slice.0.as_path();
    let stats = BpfStats::enable()?;
    let audit_state = AuditState::save();

    let mut runs: Vec<Runs> = MODES.iter().map(|_| Runs::default()).collect();
    let mut base = Vec::new();
    let (main_modes, audit_modes): (Vec<usize>, Vec<usize>) =
        (0..MODES.len()).partition(|&i| MODES[i].kind != Kind::Auditd);
    let started = Instant::now();
    // Which limits this kernel can load (cgroup storage needs Linux 6.2).
    let limits_supported = LIMITS
        .iter()
        .map(|m| limit_supported(&bin, m))
        .collect::<Result<Vec<bool>, Fail>>()?;
    let mut limits: Vec<Runs> = LIMITS.iter().map(|_| Runs::default()).collect();
    for phase in [&main_modes, &audit_modes] {
        if phase == &audit_modes {
            // The limits, interleaved as the modes are, before auditd's
            // sticky audit contexts (see the module comment) slow every
            // spawn after it.
            for round in 0..LIMIT_LOOPS {
                eprintln!(
                    "==> overhead: limits, round {}/{LIMIT_LOOPS} ({:.0} s)",
                    round + 1,
                    started.elapsed().as_secs_f64()
                );
                for ((mode, runs), _) in LIMITS
                    .iter()
                    .zip(&mut limits)
                    .zip(&limits_supported)
                    .filter(|(_, ok)| **ok)
                {
                    let loaded = programs()?;
                    let tracer = start(&bin, mode, &dir, &config)?;
                    measured_loop(&workload, cg, &tracer, &loaded, runs)?;
                }
            }
        }
        for round in 0..ROUNDS {
            eprintln!(
                "==> overhead: round {}/{ROUNDS}{} ({:.0} s)",
                round + 1,
                if phase == &audit_modes {
                    " (auditd)"
                } else {
                    ""
                },
                started.elapsed().as_secs_f64()
            );
            for &i in phase.iter() {
                let a = spawn_loop(&workload, cg)?;
                let loaded = programs()?;
                let tracer = start(&bin, &MODES[i], &dir, &config)?;
                let b = measured_loop(&workload, cg, &tracer, &loaded, &mut runs[i])?;
                drop(tracer);
                runs[i].ratios.push(b / a);
                // The untraced figures below come from the rounds before
                // auditd ever ran (see the module comment).
                if MODES[i].kind != Kind::Auditd {
                    base.push(a);
                }
            }
        }
    }
    drop(audit_state);
    drop(stats);
    // Every figure below needs each program of each measured mode.
    let measured = MODES
        .iter()
        .zip(&runs)
        .filter(|(m, _)| matches!(m.kind, Kind::Spawnscope(_) | Kind::Bpftrace(_)))
        .chain(
            LIMITS
                .iter()
                .zip(&limits)
                .zip(&limits_supported)
                .filter(|(_, ok)| **ok)
                .map(|(x, _)| x),
        );
    for (m, r) in measured {
        for what in ["fork", "exec", "exit"] {
            if !r.progs.keys().any(|k| k.contains(what)) {
                return Err(Fail(format!("{}: no {what} program ran", m.name)));
            }
        }
    }
    drop(slice);
    let _ = std::fs::remove_dir_all(&dir);

    let spawn_us = median(&mut base.clone()) * 1e6 / SPAWNS as f64;
    let rates: Vec<f64> = base.iter().map(|s| SPAWNS as f64 / s).collect();
    // Untraced run-to-run spread: how far consecutive A loops differ.
    let aa: Vec<f64> = base.windows(2).map(|w| (w[1] / w[0] - 1.0).abs()).collect();
    let spread = median(&mut aa.clone());
    let mut s1 = String::new();
    s1.push_str(&format!(
        "`spawn-workload --clean {SPAWNS}` spawns `/bin/true` and waits for it, {SPAWNS} times, \
         in a cgroup of its own, pinned to CPU {}. Each round times the loop untraced (A), starts the mode, times the \
         loop again (B) and stops the mode, for every mode in turn; {ROUNDS} rounds. Overhead: \
         B/A − 1, median (min … max) over the rounds. auditd's rounds come after all others \
         (see below). Tracer CPU: the tracing process's own CPU time (all its threads) during \
         B, per spawn, on any CPU. BPF: the kernel's run time of the mode's programs per \
         spawn (section 2), spent inside the loop's tasks.\n\n",
        loop_cpu().map_or("(none: one CPU)".to_string(), |c| c.to_string())
    ));
    s1.push_str(&format!(
        "Untraced: {} spawns/s, {spawn_us:.0} µs per spawn (median (min … max) of {} loops); \
         consecutive untraced loops differ by {:.1} % (median; at most {:.1} %).\n\n",
        mmm(&rates, |r| format!("{r:.0}")),
        base.len(),
        spread * 100.0,
        minmax(&aa).1 * 100.0,
    ));
    s1.push_str("| mode | overhead | runs | tracer CPU per spawn | BPF per spawn |\n");
    s1.push_str("|---|---|---|---|---|\n");
    for (m, r) in MODES.iter().zip(&runs) {
        let bpf = r.bpf_ns_per_spawn();
        s1.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            m.name,
            mmm(&r.ratios, pct),
            r.ratios.len(),
            mmm(&r.tracer_us, |u| format!("{u:.1} µs")),
            if bpf.is_empty() {
                "none".to_string()
            } else {
                mmm(&bpf, |n| format!("{n:.0} ns"))
            }
        ));
    }
    let med = |i: usize| median(&mut runs[i].ratios.clone()) - 1.0;
    let bpf_med = |r: &Runs| median(&mut r.bpf_ns_per_spawn());
    let counter = MODES.iter().position(|m| m.name == COUNTER).expect("mode");
    let bpftrace = MODES.iter().position(|m| m.name == BPFTRACE).expect("mode");
    let events = MODES.iter().position(|m| m.name == EVENTS).expect("mode");
    let (counter_bpf, bpftrace_bpf) = (bpf_med(&runs[counter]), bpf_med(&runs[bpftrace]));
    let apart =
        minmax(&runs[counter].bpf_ns_per_spawn()).1 < minmax(&runs[bpftrace].bpf_ns_per_spawn()).0;
    let events_cpu = median(&mut runs[events].tracer_us.clone());
    s1.push_str(&format!(
        "\nTargets:\n\n\
         - Counter mode adds ≤ 1 %: median {:.1} %, against a median untraced loop-to-loop \
         difference of {:.1} %. What counter mode adds inside the loop is its BPF time, \
         {counter_bpf:.0} ns per spawn: {:.2} % of the {spawn_us:.0} µs a spawn takes. {}\n\
         - Counter mode costs less than bpftrace's per-cgroup count: overhead {:.1} % against \
         {:.1} %; BPF per spawn {counter_bpf:.0} ns against {bpftrace_bpf:.0} ns. {}\n\
         - Event mode (`trace --events`) adds ≤ 3 %: median {:.1} %. {} Its userspace \
         (decoding, naming, detecting, formatting each record) is not pinned with the loop and \
         took {events_cpu:.1} µs of CPU time per spawn, {:.1} % of a spawn's time, on whichever \
         CPU the scheduler gave it; a machine with no idle CPU would add that to the loop as \
         well.\n",
        med(counter) * 100.0,
        spread * 100.0,
        counter_bpf / (spawn_us * 1e3) * 100.0,
        overhead_verdict(med(counter), spread, 0.01),
        med(counter) * 100.0,
        med(bpftrace) * 100.0,
        if counter_bpf < bpftrace_bpf && apart {
            "**Met**: every counter-mode loop spent less BPF time per spawn than every bpftrace \
             loop."
                .to_string()
        } else if counter_bpf < bpftrace_bpf {
            format!(
                "**Met by the medians only**: the BPF-time ranges of the two overlap{}",
                if med(counter).abs() <= spread && med(bpftrace).abs() <= spread {
                    ", and both wall-clock overheads are within the untraced loops' own spread."
                } else {
                    "."
                }
            )
        } else {
            "**Not met in BPF time** (section 2 shows each program's cost).".to_string()
        },
        med(events) * 100.0,
        overhead_verdict(med(events), spread, 0.03),
        events_cpu / spawn_us * 100.0,
    ));
    s1.push_str(
        "\nauditd: the bench starts its own `auditd -n` with a scratch log, adds `-a always,exit \
         -F arch=b64 -S execve`, and removes the rule, stops auditd and restores the kernel's \
         audit `enabled` flag afterwards. Starting auditd also sets the kernel's sticky \
         `audit_ever_enabled`, after which every new task carries an audit context until \
         reboot; its rounds therefore come last, and their untraced loops already pay that.\n",
    );

    let mut s2 = String::new();
    s2.push_str(&format!(
        "With `kernel.bpf_stats_enabled=1` for the whole of section 1 (restored afterwards), \
         the kernel's run_time_ns / run_cnt of each program of the mode, over each B loop. \
         Median (min … max) over the rounds; runs per spawn tells which programs fire per \
         spawn. The floor and limit rows, measured after the modes in the same way ({LIMIT_LOOPS} \
         loops each, interleaved), are the smallest programs that do one part of counting: \
         bpftrace's programs that return at once; then `bpf-limits` (tests/limits), whose \
         programs are attached as spawnscope's are, by tp_btf, and which checks before it is \
         measured that each set counts a spawn of its own: programs that return at once, one \
         increment of a per-CPU array slot (the cheapest count there is, and not per cgroup), \
         a per-cgroup count in a per-CPU hash keyed by the cgroup-id helper (keyed as bpftrace \
         keys its count, the map sized and flagged as spawnscope's), and a per-cgroup count in the cgroup's own storage \
         (BPF_MAP_TYPE_CGRP_STORAGE, Linux ≥ 6.2: the cgroup by two loads from the task, no \
         hashing, one atomic add); and, at exec only, a record of the size of spawnscope's exec \
         record, reserved in a ring buffer and submitted with only its kind written (bpf-limits \
         drains the ring, and a reservation that failed would end it and the bench).\n\n"
    ));
    s2.push_str("| mode | program | ns per run | runs per spawn |\n|---|---|---|---|\n");
    let mut rows: Vec<(&str, &Runs)> = MODES
        .iter()
        .zip(&runs)
        .filter(|(m, _)| matches!(m.kind, Kind::Spawnscope(_) | Kind::Bpftrace(_)))
        .map(|(m, r)| (m.name, r))
        .collect();
    rows.extend(LIMITS.iter().zip(&limits).map(|(m, r)| (m.name, r)));
    let mut worst: Option<(String, f64)> = None;
    for (name, r) in &rows {
        for (prog, ns, m, per) in r.prog_medians() {
            s2.push_str(&format!(
                "| {name} | {prog} | {} | {per:.2} |\n",
                mmm(&ns, |n| format!("{n:.0}")),
            ));
            if name.starts_with("spawnscope") && worst.as_ref().is_none_or(|w| m > w.1) {
                worst = Some((format!("{prog} in {name}"), m));
            }
        }
    }
    let t = Targets {
        counter: &runs[counter],
        bpftrace: &runs[bpftrace],
        events: &runs[events],
        limits: &limits,
    };
    s2.push_str(&t.text(worst));
    Ok((
        Section {
            title: "1. Spawn-loop overhead".into(),
            body: s1,
        },
        Section {
            title: "2. Per-event BPF cost".into(),
            body: s2,
        },
    ))
}

/// The figures section 2's targets are judged on, from one run.
struct Targets<'a> {
    counter: &'a Runs,
    bpftrace: &'a Runs,
    events: &'a Runs,
    /// In LIMITS' order.
    limits: &'a [Runs],
}

impl Targets<'_> {
    /// Median ns per run of the program of `r` whose name contains `what`
    /// (exec, exit, fork: spawnscope's names and bpftrace's tracepoints
    /// alike), 0 if none ran.
    fn prog(r: &Runs, what: &str) -> f64 {
        r.prog_medians()
            .iter()
            .find(|p| p.0.contains(what))
            .map_or(0.0, |p| p.2)
    }

    /// Median ns per run times runs per spawn, summed over the programs.
    fn per_spawn(r: &Runs) -> f64 {
        r.prog_medians().iter().map(|p| p.2 * p.3).sum()
    }

    fn text(&self, worst: Option<(String, f64)>) -> String {
        let (counter, bpftrace) = (
            Self::per_spawn(self.counter),
            Self::per_spawn(self.bpftrace),
        );
        let p = |r: &Runs, w: &str| Self::prog(r, w);
        let exit = p(self.counter, "exit");
        let event_exec = p(self.events, "exec");
        let counter_exec = p(self.counter, "exec");
        // Each limit's figures, None where this kernel could not load it:
        // per spawn, exec per run, exit per run.
        let limit = |i: usize| {
            let r = &self.limits[i];
            (!r.progs.is_empty()).then(|| (Self::per_spawn(r), p(r, "exec"), p(r, "exit")))
        };
        let unloaded = (0.0, 0.0, 0.0);
        let (floor, floor_exec, floor_exit) = limit(TP_BTF_FLOOR).unwrap_or(unloaded);
        let (array, _, array_exit) = limit(ARRAY).unwrap_or(unloaded);
        let (hash, hash_exec, hash_exit) = limit(HASH).unwrap_or(unloaded);
        let cgrp = limit(CGRP);
        let bpftrace_floor = limit(BPFTRACE_FLOOR).unwrap_or(unloaded).0;
        // A bare record at exec, above the floor.
        let record = limit(RECORD).unwrap_or(unloaded).1 - floor_exec;
        let mut out = format!(
            "\nTargets, from this run's medians (per spawn: ns per run × runs per spawn, summed \
             over fork, exec and exit):\n\n\
             - Counter mode (the sentinel) ≤ {TARGET_SPAWN_NS:.0} ns per spawn: {counter:.0} ns \
             (exec, exit, fork: {:.0}, {exit:.0}, {:.0}). {}\n\
             - Counter mode ≤ {:.0} % of bpftrace's per-cgroup count: {counter:.0} ns against \
             {bpftrace:.0} ns, {:.0} % of it. {}\n\
             - Counter mode's exit program ≤ {TARGET_EXIT_NS:.0} ns per run: {exit:.0} ns. {}\n\
             - Event mode's (`trace --events`) exec program ≤ {:.0} µs per run: {event_exec:.0} \
             ns. {}\n",
            counter_exec,
            p(self.counter, "fork"),
            verdict(counter <= TARGET_SPAWN_NS),
            TARGET_OF_BPFTRACE * 100.0,
            counter / bpftrace * 100.0,
            verdict(counter <= bpftrace * TARGET_OF_BPFTRACE),
            verdict(exit <= TARGET_EXIT_NS),
            TARGET_EVENT_EXEC_NS / 1000.0,
            verdict(event_exec <= TARGET_EVENT_EXEC_NS),
        );
        // Signed differences read as "more" or "less": in a noisy run
        // either side of a comparison can come out dearer.
        let beyond = |ns: f64| {
            if ns >= 0.0 {
                format!("{ns:.0} ns more")
            } else {
                format!("{:.0} ns less", -ns)
            }
        };
        out.push_str(&format!(
            "\nWhat the figures are made of, from the floor and limit rows of this run (per \
             spawn; the exit program's ns per run in brackets):\n\n\
             - Programs that return at once: {floor:.0} ns ({floor_exit:.0}); bpftrace's, \
             {bpftrace_floor:.0} ns. This is the statistics' own clock reads and the first cache \
             misses of a program that runs once per process.\n\
             - One per-CPU array increment per program: {array:.0} ns ({array_exit:.0}).\n\
             - A per-cgroup count in a per-CPU hash: {hash:.0} ns ({hash_exit:.0}).\n\
             - A per-cgroup count in cgroup storage: {}.\n\
             - bpftrace's per-cgroup count: {bpftrace:.0} ns.\n\
             - A bare exec record, reserved and submitted: {} than the floor's exec.\n\n",
            match cgrp {
                Some((c, _, c_exit)) => format!(
                    "{c:.0} ns ({c_exit:.0}), {} than the hash",
                    beyond(c - hash)
                ),
                None => "not measured: this kernel has no cgroup storage maps (Linux 6.2 and \
                         later have)"
                    .to_string(),
            },
            beyond(record),
        ));
        // The cheaper of the per-cgroup counts, and the cheapest of all
        // the counts measured, each named.
        let per_cgroup = match cgrp {
            Some((c, c_exec, c_exit)) if c < hash => Count {
                name: "cgroup storage",
                per_spawn: c,
                exec: c_exec,
                exit: c_exit,
            },
            _ => Count {
                name: "a per-CPU hash",
                per_spawn: hash,
                exec: hash_exec,
                exit: hash_exit,
            },
        };
        let (cheapest_name, cheapest) = if array <= per_cgroup.per_spawn {
            (
                "one array increment per program, which counts nothing per cgroup".to_string(),
                array,
            )
        } else {
            (
                format!("a per-cgroup count in {}", per_cgroup.name),
                per_cgroup.per_spawn,
            )
        };
        let mut why = Vec::new();
        if counter > TARGET_SPAWN_NS {
            why.push(if cheapest > TARGET_SPAWN_NS {
                format!(
                    "The {TARGET_SPAWN_NS:.0} ns target per spawn is below what the cheapest \
                     count measured here costs on this machine: {cheapest_name}, {cheapest:.0} \
                     ns, {:.1} times the target.",
                    cheapest / TARGET_SPAWN_NS
                )
            } else if per_cgroup.per_spawn > TARGET_SPAWN_NS {
                format!(
                    "One array increment per program fits the {TARGET_SPAWN_NS:.0} ns target \
                     ({array:.0} ns), but no per-cgroup count does: the cheaper, in {}, costs \
                     {:.0} ns.",
                    per_cgroup.name, per_cgroup.per_spawn
                )
            } else {
                format!(
                    "A bare per-cgroup count, in {}, fits the {TARGET_SPAWN_NS:.0} ns target \
                     ({:.0} ns); counter mode's own work takes it over.",
                    per_cgroup.name, per_cgroup.per_spawn
                )
            });
        }
        if exit > TARGET_EXIT_NS {
            why.push(if array_exit > TARGET_EXIT_NS {
                format!(
                    "The exit target, {TARGET_EXIT_NS:.0} ns per run, is below one array \
                     increment at exit ({array_exit:.0} ns)."
                )
            } else if per_cgroup.exit > TARGET_EXIT_NS {
                format!(
                    "One array increment at exit fits the exit target ({array_exit:.0} ns); \
                     the cheaper per-cgroup count at exit, in {}, costs {:.0} ns.",
                    per_cgroup.name, per_cgroup.exit
                )
            } else {
                format!(
                    "A per-cgroup count at exit, in {}, fits the exit target ({:.0} ns); \
                     counter mode's own work at exit takes it over.",
                    per_cgroup.name, per_cgroup.exit
                )
            });
        }
        if counter > bpftrace * TARGET_OF_BPFTRACE {
            why.push(format!(
                "{:.0} % of bpftrace's count is {:.0} ns; the cheaper bare per-cgroup count, in \
                 {}, is {:.0} % of bpftrace's by itself.",
                TARGET_OF_BPFTRACE * 100.0,
                bpftrace * TARGET_OF_BPFTRACE,
                per_cgroup.name,
                per_cgroup.per_spawn / bpftrace * 100.0
            ));
        }
        // What filling the record takes in event mode: its exec, less
        // counter mode's and the bare record's.
        let fill = event_exec - counter_exec - record;
        if event_exec > TARGET_EVENT_EXEC_NS {
            // The least an exec program that counts and streams can cost.
            let least = per_cgroup.exec + record.max(0.0);
            why.push(if least > TARGET_EVENT_EXEC_NS {
                format!(
                    "The {:.0} µs exec target is below the cheaper per-cgroup count at exec \
                     ({:.0} ns) and a bare record ({record:.0}) together, before any of the \
                     record's fields is filled.",
                    TARGET_EVENT_EXEC_NS / 1000.0,
                    per_cgroup.exec
                )
            } else {
                format!(
                    "The cheaper per-cgroup count at exec ({:.0} ns) and a bare record \
                     ({:.0}) leave {:.0} ns of the {:.0} µs exec target for filling the \
                     record, which takes {fill:.0} ns in event mode.",
                    per_cgroup.exec,
                    record.max(0.0),
                    TARGET_EVENT_EXEC_NS - least,
                    TARGET_EVENT_EXEC_NS / 1000.0,
                )
            });
        }
        if !why.is_empty() {
            out.push_str(&why.join(" "));
            out.push(' ');
        }
        out.push_str(&format!(
            "Counter mode is the per-CPU hash count and {} per spawn: fork follows the child's \
             cgroup four pointers deep (under CLONE_INTO_CGROUP it is not the parent's), and \
             exit reads the exit status (the task's signal struct and the leader's exit code), \
             the leader's start time and the clock for the lifetime histogram, which shares the \
             counters' map value (one lookup per exit). Its exit program, {exit:.0} ns, is the \
             hash count's exit ({hash_exit:.0}) and {} for the status, the start time, the \
             clock and the drill-down check. Event mode's exec, {event_exec:.0} ns, is counter \
             mode's exec ({counter_exec:.0}) and {} for the {}-byte record: the bare record's \
             reservation and submission ({}) and {} to fill it with the clock, ids, both \
             comms, the file name and the argument vector (the last two copied by helper \
             calls); the exit record is {} bytes.",
            beyond(counter - hash),
            beyond(exit - hash_exit),
            beyond(event_exec - counter_exec),
            std::mem::size_of::<spawnscope_common::ExecEvent>(),
            beyond(record),
            beyond(fill),
            std::mem::size_of::<spawnscope_common::ExitEvent>(),
        ));
        if let Some((name, ns)) = worst {
            out.push_str(&format!(
                " The most expensive program of any mode: {name}, {ns:.0} ns."
            ));
        }
        out.push('\n');
        out
    }
}

/// A per-cgroup count's figures, from a limit row: per spawn, and its exec
/// and exit programs per run.
struct Count {
    name: &'static str,
    per_spawn: f64,
    exec: f64,
    exit: f64,
}

/// A wall-clock overhead target, judged against the untraced loops' own
/// spread: a median inside a spread wider than the target says little.
fn overhead_verdict(median: f64, spread: f64, target: f64) -> String {
    match (median <= target, spread <= target) {
        (true, true) => "**Met.**".into(),
        (true, false) => format!(
            "**Met by the median only**: untraced loops differ from one another by {:.1} %, \
             more than the {:.0} % target, so this run cannot resolve it.",
            spread * 100.0,
            target * 100.0
        ),
        (false, true) => "**Not met.**".into(),
        (false, false) => format!(
            "**Not met** by the median, which lies within the untraced loops' own spread \
             ({:.1} %).",
            spread * 100.0
        ),
    }
}

pub fn verdict(met: bool) -> &'static str {
    if met { "**Met.**" } else { "**Not met.**" }
}

#[cfg(test)]
mod tests {
    use super::{LIMITS, Runs, Targets, overhead_verdict};

    /// One loop's medians for fork, exec and exit, one run of each per
    /// spawn.
    fn runs(fork: f64, exec: f64, exit: f64) -> Runs {
        let mut r = Runs::default();
        for (name, ns) in [
            ("sched_process_fork", fork),
            ("sched_process_exec", exec),
            ("sched_process_exit", exit),
        ] {
            r.progs.insert(name.into(), vec![(ns, 1.0)]);
        }
        r
    }

    /// Section 2's reasons for this VM's figures of counter mode,
    /// bpftrace and LIMITS' rows (bpftrace's floor, the tp_btf floor,
    /// array, hash), with event mode's, cgroup storage's and the record's
    /// as given.
    fn explain(events: Runs, cgrp: Runs, record: Runs) -> String {
        let limits = vec![
            runs(140.0, 170.0, 200.0),
            runs(140.0, 170.0, 200.0),
            runs(160.0, 190.0, 340.0),
            runs(480.0, 640.0, 685.0),
            cgrp,
            record,
        ];
        assert_eq!(limits.len(), LIMITS.len());
        Targets {
            counter: &runs(530.0, 760.0, 1240.0),
            bpftrace: &runs(870.0, 1090.0, 1110.0),
            events: &events,
            limits: &limits,
        }
        .text(None)
    }

    #[test]
    fn each_missed_cost_target_is_explained_by_the_limit_rows() {
        let text = explain(
            runs(600.0, 2175.0, 1800.0),
            runs(280.0, 386.0, 438.0),
            runs(130.0, 720.0, 190.0),
        );
        // 160 + 190 + 340 = 690 per spawn for one array increment each.
        assert!(text.contains("below what the cheapest count measured here costs on this machine: one array increment per program, which counts nothing per cgroup, 690 ns, 1.1 times the target"), "{text}");
        assert!(
            text.contains(
                "The exit target, 300 ns per run, is below one array increment at exit (340 ns)."
            ),
            "{text}"
        );
        // cgroup storage: 1104 per spawn, the hash 1805.
        assert!(
            text.contains("in cgroup storage, is 36 % of bpftrace's by itself"),
            "{text}"
        );
        assert!(
            text.contains("1104 ns (438), 701 ns less than the hash"),
            "{text}"
        );
        // 386 at exec and a bare record of 720 - 170 = 550: 936, so 64 ns
        // are left of the 1 µs.
        assert!(
            text.contains("leave 64 ns of the 1 µs exec target"),
            "{text}"
        );
        assert_eq!(text.matches("**Not met.**").count(), 4, "{text}");
    }

    #[test]
    fn a_kernel_without_cgroup_storage_is_said_so_and_the_hash_stands_in() {
        let text = explain(
            runs(600.0, 900.0, 1300.0),
            Runs::default(),
            runs(130.0, 300.0, 190.0),
        );
        assert!(
            text.contains(
                "in cgroup storage: not measured: this kernel has no cgroup storage maps"
            ),
            "{text}"
        );
        assert!(
            text.contains("the cheaper bare per-cgroup count, in a per-CPU hash, is 59 % of bpftrace's by itself"),
            "{text}"
        );
        // 900 ns: event mode's exec target is met, and not explained.
        assert!(!text.contains("exec target is below"), "{text}");
        assert!(
            text.contains("exec program ≤ 1 µs per run: 900 ns. **Met.**"),
            "{text}"
        );
    }

    #[test]
    fn an_overhead_inside_a_wider_spread_is_not_a_plain_met() {
        assert_eq!(overhead_verdict(0.004, 0.002, 0.01), "**Met.**");
        assert!(overhead_verdict(-0.013, 0.072, 0.01).starts_with("**Met by the median only**"));
        assert_eq!(overhead_verdict(0.02, 0.005, 0.01), "**Not met.**");
        assert!(overhead_verdict(0.02, 0.05, 0.01).starts_with("**Not met** by the median"));
    }
}
