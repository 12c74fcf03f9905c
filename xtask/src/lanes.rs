//! Runs the test binaries two at a time. Most of the suite's time is spent
//! waiting (for a booted systemd, a restart timer, a VM under TCG), so a
//! second binary beside the first uses a CPU that would sit idle. Booted
//! containers stay one at a time on the host (the fixture's lock; the
//! tests measure restart timings), so one lane runs the tests that boot
//! one while the other runs the rest. A few binaries change or count what
//! the whole host shares and run before the others, alone.

use std::{
    collections::BTreeMap,
    fs::File,
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    HOST_CRATES,
    test::Tally,
    util::{Fail, cmd, step, workspace_root},
};

/// Test binaries that run with nothing else running.
const ALONE: &[&str] = &[
    // Lowers kernel.pid_max for the whole host.
    "events_pid_reuse",
    // Count their own wakeups, to which every cgroup created and process
    // started elsewhere on the host adds.
    "sentinel_wakeups",
    "trace_wakeups",
];

/// How many binaries run at once.
const LANES: usize = 2;

/// One test binary, or the doc tests.
struct Job {
    name: String,
    command: Command,
    /// Boots a systemd container (its source uses the fixture).
    container: bool,
}

/// A started job.
struct Running {
    job_name: String,
    container: bool,
    child: Child,
    log: PathBuf,
    started: Instant,
}

/// The package name in a cargo package id: "…/userspace#spawnscope@0.1.0",
/// or "…/xtask#0.1.0" where it is the directory's name.
fn package_of(id: &str) -> &str {
    let (url, tail) = id.rsplit_once('#').unwrap_or((id, ""));
    match tail.split_once('@') {
        Some((name, _)) => name,
        None => url.rsplit('/').next().unwrap_or(url),
    }
}

/// Builds every test binary of the host crates and lists them.
fn build(skip_dir: &Path) -> Result<Vec<Job>, Fail> {
    let out = cmd("cargo")
        .arg("test")
        .args(HOST_CRATES)
        .args(["--no-run", "--message-format=json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Fail(format!("cannot run cargo test --no-run: {e}")))?;
    if !out.status.success() {
        return Err(Fail("building the tests failed (see above)".into()));
    }
    let root = workspace_root();
    let mut jobs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" || v["profile"]["test"] != true {
            continue;
        }
        let Some(exe) = v["executable"].as_str() else {
            continue;
        };
        let target = v["target"]["name"].as_str().unwrap_or("?");
        let kind = v["target"]["kind"][0].as_str().unwrap_or("?");
        let package = package_of(v["package_id"].as_str().unwrap_or("?"));
        let manifest = v["manifest_path"].as_str().map(PathBuf::from);
        let dir = manifest
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(&root)
            .to_path_buf();
        let source = v["target"]["src_path"].as_str().unwrap_or("");
        let container = kind == "test"
            && std::fs::read_to_string(source).is_ok_and(|s| s.contains("SystemdContainer"));
        let name = match kind {
            "test" => format!("{package}::{target}"),
            _ => format!("{package} ({kind} {target})"),
        };
        let mut c = Command::new(exe);
        c.current_dir(&dir)
            .env("CARGO_MANIFEST_DIR", &dir)
            .env("SPAWNSCOPE_SKIP_DIR", skip_dir);
        jobs.push(Job {
            name,
            command: c,
            container,
        });
    }
    let mut doc = cmd("cargo");
    doc.arg("test")
        .args(HOST_CRATES)
        .arg("--doc")
        .env("SPAWNSCOPE_SKIP_DIR", skip_dir);
    jobs.push(Job {
        name: "doc tests".into(),
        command: doc,
        container: false,
    });
    Ok(jobs)
}

fn start(mut job: Job, logs: &Path) -> Result<Running, Fail> {
    let log = logs.join(format!("{}.log", job.name.replace(['/', ' ', ':'], "_")));
    let out = File::create(&log).map_err(|e| Fail(format!("{}: {e}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(|e| Fail(format!("{}: {e}", log.display())))?;
    let child = job
        .command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| Fail(format!("cannot run {}: {e}", job.name)))?;
    Ok(Running {
        job_name: job.name,
        container: job.container,
        child,
        log,
        started: Instant::now(),
    })
}

/// Echoes a finished job's output as one block and tallies it.
fn finish(r: &Running, ok: bool, tally: &mut Tally) -> Result<(), Fail> {
    let text = std::fs::read_to_string(&r.log).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "     Running {}", r.job_name);
    for line in text.lines() {
        tally.line(line);
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "     ({} {} in {:.1} s)",
        r.job_name,
        if ok { "ended" } else { "FAILED" },
        r.started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Builds and runs every test binary: [`ALONE`] first, one at a time, then
/// the others in [`LANES`] lanes, longest first as far as known, never two
/// that boot a container at once. Returns whether every binary exited 0,
/// and the tally of libtest's lines.
pub fn run_tests(skip_dir: &Path) -> Result<(bool, Tally), Fail> {
    let jobs = build(skip_dir)?;
    let logs = workspace_root().join("target/test-logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).map_err(|e| Fail(format!("{}: {e}", logs.display())))?;
    let is_alone = |j: &Job| ALONE.iter().any(|a| j.name.ends_with(&format!("::{a}")));
    let (alone, mut rest): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(is_alone);
    // The VM tests (several kernels under TCG) are the longest without a
    // container: start them first so they overlap the containers' queue.
    rest.sort_by_key(|j| (!j.name.contains("::vm_"), j.name.clone()));
    let mut tally = Tally::default();
    let mut ok = true;
    let mut times: BTreeMap<String, f64> = BTreeMap::new();
    for job in alone {
        let mut r = start(job, &logs)?;
        let st = r
            .child
            .wait()
            .map_err(|e| Fail(format!("waiting for {}: {e}", r.job_name)))?;
        ok &= st.success();
        finish(&r, st.success(), &mut tally)?;
        times.insert(r.job_name.clone(), r.started.elapsed().as_secs_f64());
    }
    step(&format!(
        "test: {} binaries in {LANES} lanes, containers one at a time",
        rest.len()
    ));
    let mut running: Vec<Running> = Vec::new();
    while !rest.is_empty() || !running.is_empty() {
        while running.len() < LANES {
            let container_running = running.iter().any(|r| r.container);
            // A container test whenever none runs (they are the critical
            // path), else anything that boots none.
            let pick = if container_running {
                rest.iter().position(|j| !j.container)
            } else {
                rest.iter()
                    .position(|j| j.container)
                    .or_else(|| (!rest.is_empty()).then_some(0))
            };
            let Some(i) = pick else { break };
            running.push(start(rest.remove(i), &logs)?);
        }
        let mut i = 0;
        let mut any = false;
        while i < running.len() {
            match running[i].child.try_wait() {
                Ok(Some(st)) => {
                    let r = running.swap_remove(i);
                    ok &= st.success();
                    finish(&r, st.success(), &mut tally)?;
                    times.insert(r.job_name.clone(), r.started.elapsed().as_secs_f64());
                    any = true;
                }
                Ok(None) => i += 1,
                Err(e) => {
                    return Err(Fail(format!("waiting for {}: {e}", running[i].job_name)));
                }
            }
        }
        if !any {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let mut longest: Vec<(&String, &f64)> = times.iter().collect();
    longest.sort_by(|a, b| b.1.total_cmp(a.1));
    let top: Vec<String> = longest
        .iter()
        .take(5)
        .map(|(n, t)| format!("{n} {t:.0} s"))
        .collect();
    step(&format!("test: longest binaries: {}", top.join(", ")));
    Ok((ok, tally))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_come_from_cargo_package_ids() {
        assert_eq!(
            package_of("path+file:///work/main/userspace#spawnscope@0.1.0"),
            "spawnscope"
        );
        assert_eq!(
            package_of("path+file:///work/main/tests#spawnscope-tests@0.1.0"),
            "spawnscope-tests"
        );
        assert_eq!(package_of("path+file:///work/main/xtask#0.1.0"), "xtask");
        assert_eq!(package_of("registry+https://x#serde@1.0.0"), "serde");
    }
}
