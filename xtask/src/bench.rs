//! `cargo xtask bench events`: how fast this machine can exec while
//! `spawnscope trace --events --json` streams every record to a file, and
//! whether any record was dropped. `bench memory`: what one memory
//! sampling pass costs. Both print medians of several runs.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::util::{Fail, cmd, run_checked, step, workspace_root};

const RUNS: usize = 5;
const EXECS_PER_WORKER: u32 = 3000;

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

/// Starts the tracer and waits for its readiness line.
fn start_tracer(bin: &std::path::Path, out: &std::path::Path) -> Result<Child, Fail> {
    let file = std::fs::File::create(out).map_err(|e| Fail(format!("{}: {e}", out.display())))?;
    let mut child = Command::new(bin)
        .args(["trace", "--events", "--json", "--interval", "1h"])
        .stdout(file)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Fail(format!("cannot start {}: {e}", bin.display())))?;
    await_stderr(&mut child, "spawnscope: tracing", "spawnscope")?;
    Ok(child)
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
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains(needle) {
                let _ = tx.send(line);
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .map_err(|_| Fail(format!("{what} did not start within 60 s")))
}

/// Release builds of spawnscope and the test helpers (spawn-workload).
pub fn build_release_bins() -> Result<std::path::PathBuf, Fail> {
    step("build: release spawnscope and spawn-workload");
    run_checked(cmd("cargo").args([
        "build",
        "--release",
        "--package",
        "spawnscope",
        "--package",
        "spawnscope-tests",
        "--bins",
    ]))?;
    Ok(workspace_root().join("target/release"))
}

/// Runs `workers` storms at once; returns execs per second.
fn storm(workload: &std::path::Path, workers: u32) -> Result<f64, Fail> {
    let t0 = Instant::now();
    let kids: Vec<Child> = (0..workers)
        .map(|_| {
            Command::new(workload)
                .args(["--clean", &EXECS_PER_WORKER.to_string()])
                .spawn()
                .map_err(|e| Fail(format!("spawn-workload: {e}")))
        })
        .collect::<Result<_, _>>()?;
    for mut k in kids {
        let st = k.wait().map_err(|e| Fail(format!("wait: {e}")))?;
        if !st.success() {
            return Err(Fail(format!("spawn-workload failed: {st}")));
        }
    }
    Ok((workers * EXECS_PER_WORKER) as f64 / t0.elapsed().as_secs_f64())
}

fn stop(child: &mut Child) -> Result<(), Fail> {
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let st = child.wait().map_err(|e| Fail(format!("wait: {e}")))?;
    if !st.success() {
        return Err(Fail(format!("spawnscope failed: {st}")));
    }
    Ok(())
}

/// Benchmarks load BPF programs (and boot containers): root only.
pub fn require_root(bench: &str, why: &str) -> Result<(), Fail> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Fail(format!("bench {bench} {why}: run it as root")));
    }
    Ok(())
}

pub fn events() -> Result<(), Fail> {
    require_root("events", "loads BPF programs")?;
    let target = build_release_bins()?;
    let spawnscope = target.join("spawnscope");
    let workload = target.join("spawn-workload");
    let scratch = tempfile_dir()?;
    let out = scratch.join("events.jsonl");

    println!(
        "exec storm: W workers × {EXECS_PER_WORKER} fork+exec of /bin/true, {RUNS} runs each,"
    );
    println!("untraced, then while `spawnscope trace --events --json` writes every record");
    println!("to a file (default 8 MiB ring buffer). Rates are medians; ratio = traced/untraced;");
    println!("drops are the worst traced run.");
    println!();
    println!(
        "workers  untraced execs/s  traced execs/s  ratio  records/s  dropped (max)  events file"
    );
    for workers in [1u32, 2, 4] {
        let mut base = Vec::new();
        let mut rates = Vec::new();
        let mut worst_drop = 0u64;
        let mut size = 0u64;
        for _ in 0..RUNS {
            base.push(storm(&workload, workers)?);
            let mut tracer = start_tracer(&spawnscope, &out)?;
            let rate = storm(&workload, workers)?;
            stop(&mut tracer)?;
            let text = std::fs::read_to_string(&out).map_err(|e| Fail(format!("{e}")))?;
            size = text.len() as u64;
            let summary: serde_json::Value = text
                .lines()
                .last()
                .and_then(|l| serde_json::from_str(l).ok())
                .ok_or_else(|| Fail("no summary line in the events file".into()))?;
            let d = &summary["events"]["dropped"];
            let dropped = d["exec"].as_u64().unwrap_or(0) + d["exit"].as_u64().unwrap_or(0);
            worst_drop = worst_drop.max(dropped);
            rates.push(rate);
        }
        let b = median(&mut base);
        let r = median(&mut rates);
        println!(
            "{workers:>7}  {b:>16.0}  {r:>14.0}  {:>5.2}  {:>9.0}  {worst_drop:>13}  {:.1} MB",
            r / b,
            2.0 * r,
            size as f64 / 1e6
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf, Fail> {
    let d = std::env::temp_dir().join(format!("spawnscope-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).map_err(|e| Fail(format!("{}: {e}", d.display())))?;
    Ok(d)
}

/// `cargo xtask bench detect`: the ignored `bench_detect` scenario, which
/// prints its own table.
pub fn detect() -> Result<(), Fail> {
    require_root("detect", "boots a container and loads BPF programs")?;
    step("build: spawnscope and test helpers");
    run_checked(cmd("cargo").args([
        "build",
        "--workspace",
        "--exclude",
        "spawnscope-probe",
        "--bins",
    ]))?;
    step("bench: detection latency (real systemd, about 2 minutes)");
    run_checked(cmd("cargo").args([
        "test",
        "--package",
        "spawnscope-tests",
        "--test",
        "bench_detect",
        "--",
        "--ignored",
        "--nocapture",
    ]))
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
