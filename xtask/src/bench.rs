//! `cargo xtask bench events`: how fast this machine can exec while
//! `spawnscope trace --events --json` streams every record to a file, and
//! whether any record was dropped. Prints medians of several runs.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::util::{Fail, cmd, run_checked, step, workspace_root};

const RUNS: usize = 5;
const EXECS_PER_WORKER: u32 = 3000;

fn median(v: &mut [f64]) -> f64 {
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
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains("spawnscope: tracing") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .map_err(|_| Fail("spawnscope did not attach within 60 s".into()))?;
    Ok(child)
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
fn require_root(bench: &str, why: &str) -> Result<(), Fail> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Fail(format!("bench {bench} {why}: run it as root")));
    }
    Ok(())
}

pub fn events() -> Result<(), Fail> {
    require_root("events", "loads BPF programs")?;
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
    let target = workspace_root().join("target/release");
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
