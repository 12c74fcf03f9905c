//! `cargo xtask bench`: every benchmark in one run, written to
//! BENCHMARKS.md; each section can also run alone (`bench overhead`, ...),
//! printing its part only. `bench memory` (the memory sampling pass) is
//! separate, and its part of BENCHMARKS.md is kept as it is.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::util::{Fail, cmd, output, run_checked, step, workspace_root};

/// One section of BENCHMARKS.md: a title, and Markdown made from the
/// figures of this run.
pub struct Section {
    pub title: String,
    pub body: String,
}

impl Section {
    fn render(&self) -> String {
        format!("## {}\n\n{}\n", self.title, self.body.trim_end())
    }
}

/// BENCHMARKS.md below this line is not written by `cargo xtask bench`.
const KEPT: &str = "<!-- Below: other benchmarks, not written by `cargo xtask bench`. -->";

/// CPU time of every thread of `pid`, in ns (0 once it is gone).
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    rd.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A slice of throwaway units below our own cgroup2 cgroup.
pub struct Slice(pub std::path::PathBuf);

impl Drop for Slice {
    fn drop(&mut self) {
        remove_cgroup_tree(&self.0);
    }
}

/// Removes the (empty) cgroup directory `dir` and its children, deepest
/// first.
pub fn remove_cgroup_tree(dir: &std::path::Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&e.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

pub fn cgroup2_slice() -> Result<Slice, Fail> {
    cgroup2_dir(&format!("spawnscope-bench-{}.slice", std::process::id()))
}

/// A cgroup2 directory `name` below our own cgroup, removed on drop (with
/// its children, which must be empty by then).
pub fn cgroup2_dir(name: &str) -> Result<Slice, Fail> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Fail(format!("mountinfo: {e}")))?;
    let mount = mountinfo
        .lines()
        .find(|l| {
            l.split(" - ")
                .nth(1)
                .is_some_and(|t| t.starts_with("cgroup2 "))
        })
        .and_then(|l| l.split_whitespace().nth(4))
        .ok_or_else(|| Fail("no cgroup2 mount".into()))?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| Fail(format!("/proc/self/cgroup: {e}")))?;
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| Fail("no cgroup2 entry in /proc/self/cgroup".into()))?;
    let dir = std::path::Path::new(mount)
        .join(own.trim_start_matches('/'))
        .join(name);
    std::fs::create_dir(&dir).map_err(|e| Fail(format!("mkdir {}: {e}", dir.display())))?;
    Ok(Slice(dir))
}

/// Makes `c`'s process join the cgroup2 directory `dir` before it execs.
/// The path is prepared here: between fork and exec only raw system calls
/// are safe (the bench has threads, and another may hold the allocator's
/// lock at the fork).
pub fn join_cgroup(c: &mut Command, dir: &std::path::Path) -> Result<(), Fail> {
    use std::os::unix::{ffi::OsStrExt, process::CommandExt};
    let procs = std::ffi::CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
        .map_err(|_| Fail(format!("{}: NUL in path", dir.display())))?;
    // SAFETY: open, write and close are async-signal-safe, and every
    // argument was made before the fork.
    unsafe {
        c.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let n = libc::write(fd, b"0".as_ptr().cast(), 1);
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if n != 1 {
                return Err(err);
            }
            Ok(())
        });
    }
    Ok(())
}

/// A scratch directory for bench `name`, holding `sentinel.toml`: the
/// default configuration but with its state kept here and metrics on a
/// free loopback port. Returns (directory, configuration file).
pub fn sentinel_scratch(name: &str) -> Result<(std::path::PathBuf, std::path::PathBuf), Fail> {
    let dir = std::env::temp_dir().join(format!("spawnscope-bench-{name}-{}", std::process::id()));
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
    Ok((dir, config))
}

/// Keeps `kernel.bpf_stats_enabled` on; restores it on drop.
pub struct BpfStats(String);

impl BpfStats {
    const PATH: &str = "/proc/sys/kernel/bpf_stats_enabled";

    pub fn enable() -> Result<Self, Fail> {
        let old = std::fs::read_to_string(Self::PATH)
            .map_err(|e| Fail(format!("{}: {e}", Self::PATH)))?;
        std::fs::write(Self::PATH, "1").map_err(|e| Fail(format!("{}: {e}", Self::PATH)))?;
        Ok(Self(old.trim().to_string()))
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::PATH, &self.0);
    }
}

/// The smallest and the largest of `v`.
pub fn minmax(v: &[f64]) -> (f64, f64) {
    (
        v.iter().copied().fold(f64::MAX, f64::min),
        v.iter().copied().fold(f64::MIN, f64::max),
    )
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Reads a child's (piped) stderr on a thread, to the end, and returns
/// the first line containing `needle`; fails after 60 s.
pub fn await_stderr(child: &mut Child, needle: &'static str, what: &str) -> Result<String, Fail> {
    let err = child
        .stderr
        .take()
        .ok_or_else(|| Fail(format!("{what}: stderr not piped")))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut last = None;
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains(needle) {
                let _ = tx.send(Ok(line));
            } else {
                last = Some(line);
            }
        }
        // Its stderr closed, so it ended: say what it said last.
        let _ = tx.send(Err(last));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(line)) => Ok(line),
        Ok(Err(Some(last))) => Err(Fail(format!("{what} ended before it started: {last}"))),
        Ok(Err(None)) => Err(Fail(format!(
            "{what} ended before it started, saying nothing"
        ))),
        Err(_) => Err(Fail(format!("{what} did not start within 60 s"))),
    }
}

/// Release builds of spawnscope and the test helpers (spawn-workload,
/// bpf-limits).
pub fn build_release_bins() -> Result<std::path::PathBuf, Fail> {
    step("build: release spawnscope, spawn-workload and bpf-limits");
    run_checked(cmd("cargo").args([
        "build",
        "--release",
        "--package",
        "spawnscope",
        "--package",
        "spawnscope-tests",
        "--package",
        "spawnscope-workload",
        "--package",
        "spawnscope-limits",
        "--bins",
    ]))?;
    Ok(workspace_root().join("target/release"))
}

/// Benchmarks load BPF programs (and boot containers): root only.
pub fn require_root(bench: &str, why: &str) -> Result<(), Fail> {
    let what = if bench.is_empty() {
        "bench".to_string()
    } else {
        format!("bench {bench}")
    };
    crate::util::require_root(&format!("{what} {why}"))
}

/// Runs the ignored benchmark test `name` (release build), which prints
/// its table and writes its section to `SPAWNSCOPE_BENCH_OUT`.
fn bench_test(name: &str) -> Result<String, Fail> {
    let out = std::env::temp_dir().join(format!("spawnscope-{name}-{}.md", std::process::id()));
    let _ = std::fs::remove_file(&out);
    run_checked(
        cmd("cargo")
            .args([
                "test",
                "--release",
                "--package",
                "spawnscope-tests",
                "--test",
                name,
                "--",
                "--ignored",
                "--nocapture",
            ])
            .env("SPAWNSCOPE_BENCH_OUT", &out),
    )?;
    let md = std::fs::read_to_string(&out)
        .map_err(|e| Fail(format!("{name} wrote no report ({}: {e})", out.display())))?;
    let _ = std::fs::remove_file(&out);
    Ok(md)
}

/// Section 3: the ignored `bench_capacity` test.
pub fn capacity() -> Result<Section, Fail> {
    require_root("capacity", "loads BPF programs")?;
    crate::setup::ensure_packages(&["stress-ng"])?;
    step("bench: lossless capacity (about 2 minutes)");
    Ok(Section {
        title: "3. Lossless capacity".into(),
        body: bench_test("bench_capacity")?,
    })
}

/// Section 5: the ignored `bench_detect` test, in a real systemd.
pub fn detect() -> Result<Section, Fail> {
    require_root("detect", "boots a container and loads BPF programs")?;
    step("bench: detection latency (real systemd, about 2 minutes)");
    let table = bench_test("bench_detect")?;
    Ok(Section {
        title: "5. Detection latency".into(),
        body: format!(
            "The real-systemd fixture (see DEVELOPERS.md) runs three units that fail 50 ms \
             after each start (`spawn-workload --fail-after 50`) with `Restart=always`, no start \
             limit and `RestartSec=` 10 s, 2 s and 100 ms, watched by `spawnscope trace` and \
             `spawnscope sentinel` at once. Every latency is the bench's own clock \
             (CLOCK_MONOTONIC): from just before `systemctl start` (the first start), or from \
             systemd's `ExecMainStartTimestampMonotonic` read before the stop (the last start), \
             or from the return of `systemctl stop`, to the moment `trace`'s line or the \
             sentinel's alert reached the bench. Restarts at detection are systemd's \
             `NRestarts`, read as the line arrived (a fast loop restarts again during that \
             read), beside the count `trace` reported. Then the units are stopped, and the last \
             column is how long each took to be marked stopped (closed). One run.\n\n{}\n",
            table.trim_end()
        ),
    })
}

/// Section 7: reading systemd's state over D-Bus, the ignored
/// `bench_systemd` test, in a real systemd.
pub fn systemd() -> Result<Section, Fail> {
    require_root("systemd", "boots a container")?;
    step("bench: reading systemd's state over D-Bus (about 1 minute)");
    let table = bench_test("bench_systemd")?;
    Ok(Section {
        title: "7. Reading systemd's state over D-Bus".into(),
        body: format!(
            "`spawnscope::systemd` reads one manager: it connects to a container's private \
             socket from inside the container's PID namespace, lists the loaded services and \
             reads each one's properties, pipelined on the one connection. The container (the \
             real-systemd fixture, see DEVELOPERS.md) runs 500 more services (`bench@N.service`, \
             `sleep infinity`). Each figure is the whole reading, timed by the bench; 10 runs \
             after one untimed. trace and the sentinel read what a loop needs (the last \
             row).\n\n{}\n",
            table.trim_end()
        ),
    })
}

/// What BENCHMARKS.md says about the machine and the run.
fn preamble(minutes: f64) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let date = output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])).unwrap_or_default();
    let commit = output(cmd("git").args(["rev-parse", "--short", "HEAD"])).unwrap_or_default();
    let dirty =
        output(cmd("git").args(["status", "--porcelain"])).is_some_and(|s| !s.trim().is_empty());
    format!(
        "# Benchmarks\n\n\
         Written by `cargo xtask bench` (root; it installs bpftrace, forkstat, auditd, bpftool \
         and stress-ng if they are missing). Every figure in sections 1–8 comes from one run \
         of that command: {}, commit {}{}, {minutes:.1} minutes. Figures are medians with \
         (min … max) and the number of runs; overheads are ratios against an untraced \
         baseline measured in the same run, interleaved. Each section also runs alone, \
         printing its part: `cargo xtask bench overhead` (sections 1 and 2), `bench \
         capacity`, `bench sentinel`, `bench detect`, `bench postmortem`, `bench systemd`, `bench startup`.\n\n\
         Machine: {cpu}, {cpus} CPUs, {mem_gib:.0} GiB, kernel {}, release builds.\n",
        date.trim(),
        commit.trim(),
        if dirty {
            " with uncommitted changes"
        } else {
            ""
        },
        kernel.trim(),
    )
}

/// `cargo xtask bench`: sections 1–8, printed as they finish and written
/// to BENCHMARKS.md (keeping the part below [`KEPT`]).
pub fn all() -> Result<(), Fail> {
    require_root("", "loads BPF programs and boots a container")?;
    let t0 = Instant::now();
    let target = build_release_bins()?;
    let mut sections = Vec::new();
    let mut show = |s: Section| {
        println!("{}", s.render());
        sections.push(s);
    };
    let (s1, s2) = crate::bench_overhead::overhead(&target)?;
    show(s1);
    show(s2);
    show(capacity()?);
    // The footprint of the sentinel as it ships: the static musl build.
    show(crate::bench_sentinel::sentinel(
        &crate::dist::build_static_host_bin()?,
    )?);
    show(detect()?);
    show(crate::bench_postmortem::postmortem(
        &target,
        &crate::dist::build_static_host_bin()?,
    )?);
    show(systemd()?);
    show(crate::bench_startup::startup(
        &crate::dist::build_static_host_bin()?,
    )?);
    let path = workspace_root().join("BENCHMARKS.md");
    let kept = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.find(KEPT).map(|i| s[i..].to_string()))
        .unwrap_or_else(|| format!("{KEPT}\n"));
    let mut md = preamble(t0.elapsed().as_secs_f64() / 60.0);
    for s in &sections {
        md.push('\n');
        md.push_str(&s.render());
    }
    md.push('\n');
    md.push_str(&kept);
    std::fs::write(&path, md).map_err(|e| Fail(format!("{}: {e}", path.display())))?;
    eprintln!(
        "==> wrote {} ({:.1} minutes)",
        path.display(),
        t0.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}

/// Prints sections run alone.
pub fn print(sections: &[Section]) {
    for s in sections {
        println!("{}", s.render());
    }
}

const MEM_RUNS: usize = 3;
const MEM_SECONDS: u32 = 20;
const EXTRA_CGROUPS: usize = 500;

/// One `trace --no-detect` run sampling memory every 100 ms; returns the
/// summary's memory section.
fn memory_run(bin: &std::path::Path) -> Result<serde_json::Value, Fail> {
    let out = Command::new(bin)
        .args([
            "trace",
            "--json",
            "--no-detect",
            "--interval",
            "1h",
            "--mem-interval",
            "100ms",
            "--for",
            &format!("{MEM_SECONDS}s"),
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Fail(format!("cannot start {}: {e}", bin.display())))?;
    if !out.status.success() {
        return Err(Fail(format!("spawnscope failed: {}", out.status)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| Fail("no summary line".into()))?;
    Ok(summary["memory"].clone())
}

/// Empty memory cgroups under this process's own memory cgroup, removed
/// on drop: more cgroups for every pass to read.
struct ExtraCgroups(Vec<std::path::PathBuf>);

impl ExtraCgroups {
    fn create(n: usize) -> Result<Self, Fail> {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| Fail(format!("/proc/self/mountinfo: {e}")))?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| Fail(format!("/proc/self/cgroup: {e}")))?;
        // The v1 memory hierarchy, where children of our own cgroup are
        // memory cgroups at once; on cgroup2 only when the memory
        // controller is delegated to our cgroup's children.
        let v1 = mounts.lines().find_map(|l| {
            let (_, post) = l.split_once(" - ")?;
            let mut f = post.split_whitespace();
            let (fstype, _, opts) = (f.next()?, f.next()?, f.next()?);
            (fstype == "cgroup" && opts.split(',').any(|o| o == "memory"))
                .then(|| l.split_whitespace().nth(4).map(std::path::PathBuf::from))
                .flatten()
        });
        let base = match v1 {
            Some(mp) => {
                let rel = own
                    .lines()
                    .find_map(|l| {
                        let mut f = l.splitn(3, ':');
                        let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
                        ctrl.split(',')
                            .any(|c| c == "memory")
                            .then(|| path.to_string())
                    })
                    .ok_or_else(|| Fail("no v1 memory line in /proc/self/cgroup".into()))?;
                mp.join(rel.trim_start_matches('/'))
            }
            None => {
                let rel = own
                    .lines()
                    .find_map(|l| l.strip_prefix("0::"))
                    .ok_or_else(|| Fail("no cgroup2 line in /proc/self/cgroup".into()))?;
                let base = std::path::Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
                let ctl = std::fs::read_to_string(base.join("cgroup.subtree_control"))
                    .unwrap_or_default();
                if !ctl.split_whitespace().any(|c| c == "memory") {
                    return Err(Fail(format!(
                        "{}: memory is not enabled for its children",
                        base.display()
                    )));
                }
                base
            }
        };
        let mut made = Self(Vec::new());
        for i in 0..n {
            let d = base.join(format!("spawnscope-bench-{}-{i}", std::process::id()));
            std::fs::create_dir(&d).map_err(|e| Fail(format!("mkdir {}: {e}", d.display())))?;
            made.0.push(d);
        }
        Ok(made)
    }
}

impl Drop for ExtraCgroups {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// `cargo xtask bench memory`: the cost of one memory sampling pass on
/// this host as it is, then with 500 more memory cgroups to read.
pub fn memory() -> Result<(), Fail> {
    require_root("memory", "loads BPF programs")?;
    step("build: release spawnscope");
    run_checked(cmd("cargo").args(["build", "--release", "--package", "spawnscope"]))?;
    let bin = workspace_root().join("target/release/spawnscope");
    println!(
        "memory sampling pass: `spawnscope trace --no-detect --mem-interval 100ms` for \
         {MEM_SECONDS} s, {MEM_RUNS} runs each."
    );
    println!("A pass reads every memory cgroup's usage (and OOM-kill counter when it has a");
    println!("limit), /proc/meminfo, PSI, PID 1's and journald's statm and the journal's");
    println!("headers; every 6th pass also the limits, /proc/slabinfo and the cgroup2 tree");
    println!("for PID 1s and journalds. Figures: median of the runs' medians (min-max of");
    println!("those medians) in microseconds; max: the slowest pass seen.");
    println!();
    println!("setup                 cgroups  passes  pass p50 (min-max)   slab pass p50  max");
    for extra in [0, EXTRA_CGROUPS] {
        let _cgroups = if extra > 0 {
            match ExtraCgroups::create(extra) {
                Ok(c) => Some(c),
                Err(Fail(why)) => {
                    println!("+{extra} cgroups: skipped ({why})");
                    continue;
                }
            }
        } else {
            None
        };
        let mut p50 = Vec::new();
        let mut slab = Vec::new();
        let (mut max, mut cgroups, mut passes) = (0u64, 0u64, 0u64);
        for _ in 0..MEM_RUNS {
            let m = memory_run(&bin)?;
            let get = |k: &str| {
                m[k].as_u64()
                    .ok_or_else(|| Fail(format!("summary memory.{k} missing: {m}")))
            };
            p50.push(get("pass_us_p50")? as f64);
            slab.push(get("pass_us_slab_p50")? as f64);
            max = max.max(get("pass_us_max")?);
            cgroups = get("cgroups")?;
            passes = get("samples")?;
        }
        let (lo, hi) = minmax(&p50);
        println!(
            "{:<20}  {cgroups:>7}  {passes:>6}  {:>8.0} ({lo:.0}-{hi:.0})  {:>13.0}  {max}",
            if extra == 0 {
                "host as is".to_string()
            } else {
                format!("+{extra} empty cgroups")
            },
            median(&mut p50),
            median(&mut slab),
        );
    }
    Ok(())
}
