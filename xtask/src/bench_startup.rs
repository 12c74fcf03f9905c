//! `cargo xtask bench startup`: what starting spawnscope costs a machine
//! that may already be short of memory. Peak RSS (wait4's ru_maxrss) of
//! `trace` with detection on, of the sentinel, and of bpftrace counting
//! the same three tracepoints, each started [`RUNS`] times, interleaved;
//! and spawnscope's time from exec to its ready line.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use spawnscope_common::{DEFAULT_EVENT_BUFFER_BYTES, MKDIR_EVENTS_BYTES};

use crate::{
    bench::{Section, await_stderr, median, minmax, require_root, sentinel_scratch},
    bench_overhead::{BPFTRACE_COUNT, Tracefs, wait_file},
    util::Fail,
};

const RUNS: usize = 5;
/// Peak RSS target, MiB, for `trace` and the sentinel.
const RSS_TARGET_MIB: f64 = 24.0;
/// Exec to "tracing", ms.
const READY_TARGET_MS: f64 = 150.0;

/// Waits for our own child; its peak RSS in KiB, and whether it exited 0
/// or by the signal `expected`.
fn reap(child: Child, expected: Option<i32>, what: &str) -> Result<u64, Fail> {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, with valid pointers; the Child is
    // not waited for again (it is only dropped).
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let clean = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let by_signal =
        expected.is_some_and(|s| libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == s);
    if r != pid || !(clean || by_signal) {
        return Err(Fail(format!("{what} failed (wait status {status:#x})")));
    }
    Ok(ru.ru_maxrss as u64)
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: signalling our own child, which has not been reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
}

/// Starts spawnscope with `args` and waits for the line containing
/// `ready` on its stderr: the child, and ms from spawn to that line.
fn start_ready(
    bin: &Path,
    args: &[&std::ffi::OsStr],
    ready: &'static str,
    what: &str,
) -> Result<(Child, f64), Fail> {
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Fail(format!("cannot start {what}: {e}")))?;
    await_stderr(&mut child, ready, what)?;
    Ok((child, t0.elapsed().as_secs_f64() * 1e3))
}

/// `spawnscope trace --for 2s`, detection on (the default): peak RSS
/// (KiB) and ms from spawn to its "tracing" line.
fn trace(bin: &Path) -> Result<(u64, f64), Fail> {
    let what = "spawnscope trace";
    let args = ["trace", "--for", "2s"].map(std::ffi::OsStr::new);
    let (child, ready) = start_ready(bin, &args, "spawnscope: tracing", what)?;
    Ok((reap(child, None, what)?, ready))
}

/// The sentinel with a scratch configuration, through its first poll
/// (5 s): peak RSS (KiB) and ms from spawn to "sentinel started".
fn sentinel(bin: &Path, config: &Path) -> Result<(u64, f64), Fail> {
    let what = "the sentinel";
    let args = ["sentinel".as_ref(), "--config".as_ref(), config.as_os_str()];
    let (child, ready) = start_ready(bin, &args, "sentinel started", what)?;
    std::thread::sleep(Duration::from_secs(6));
    signal(&child, libc::SIGTERM);
    Ok((reap(child, None, what)?, ready))
}

/// bpftrace counting per cgroup, for 3 s after it says it attaches, then
/// SIGINT (it prints its maps and exits): peak RSS, KiB.
fn bpftrace(dir: &Path) -> Result<u64, Fail> {
    let out = dir.join("bpftrace.out");
    let file = std::fs::File::create(&out).map_err(|e| Fail(format!("{}: {e}", out.display())))?;
    let child = Command::new("bpftrace")
        .args(["-e", BPFTRACE_COUNT])
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Fail(format!("cannot start bpftrace: {e}")))?;
    if let Err(e) = wait_file(&out, "Attaching", "bpftrace") {
        signal(&child, libc::SIGKILL);
        let _ = reap(child, Some(libc::SIGKILL), "bpftrace");
        return Err(e);
    }
    std::thread::sleep(Duration::from_secs(3));
    signal(&child, libc::SIGINT);
    reap(child, Some(libc::SIGINT), "bpftrace")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// "median (min … max)" of KiB figures, in MiB.
fn mib_range(v: &[f64]) -> String {
    let (lo, hi) = minmax(v);
    format!(
        "{:.1} MiB ({:.1} … {:.1})",
        median(&mut v.to_vec()) / 1024.0,
        lo / 1024.0,
        hi / 1024.0
    )
}

fn ms_range(v: &[f64]) -> String {
    let (lo, hi) = minmax(v);
    format!("{:.0} ms ({:.0} … {:.0})", median(&mut v.to_vec()), lo, hi)
}

fn verdict(met: bool) -> &'static str {
    if met { "Met" } else { "Not met" }
}

/// `bin`: spawnscope as it ships, the static release-dist binary.
pub fn startup(bin: &Path) -> Result<Section, Fail> {
    require_root("startup", "loads BPF programs")?;
    crate::setup::ensure_packages(&["bpftrace"])?;
    let _tracefs = Tracefs::ensure()?;
    crate::util::step("bench startup: peak RSS and time to ready (about 1 minute)");
    let (dir, config) = sentinel_scratch("startup")?;
    let (mut trace_rss, mut trace_ready) = (Vec::new(), Vec::new());
    let (mut sent_rss, mut sent_ready) = (Vec::new(), Vec::new());
    let mut bpf_rss = Vec::new();
    let result = (|| {
        for _ in 0..RUNS {
            let (r, t) = trace(bin)?;
            trace_rss.push(r as f64);
            trace_ready.push(t);
            let (r, t) = sentinel(bin, &config)?;
            sent_rss.push(r as f64);
            sent_ready.push(t);
            bpf_rss.push(bpftrace(&dir)? as f64);
        }
        Ok::<_, Fail>(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    let btf = std::fs::metadata("/sys/kernel/btf/vmlinux").map_or(0, |m| m.len());
    let med = |v: &[f64]| median(&mut v.to_vec());
    let (tr, sr) = (med(&trace_rss), med(&sent_rss));
    let tt = med(&trace_ready);
    let body = format!(
        "Each tool started {RUNS} times, interleaved; median (min … max). Peak RSS: wait4's \
         ru_maxrss. spawnscope as it ships (the static release-dist binary); the kernel's BTF \
         is {:.1} MB. `trace --for 2s` runs with loop detection on, its default; the sentinel \
         with a scratch state and `listen` on an ephemeral loopback port, stopped by SIGTERM \
         after its first poll; bpftrace counts the three tracepoints per cgroup (section 2's \
         script), stopped by SIGINT 3 s after it says it attaches. Ready: from spawn to \
         spawnscope's \"spawnscope: tracing\" line, or the sentinel's \"sentinel started\", which \
         it prints after it has also read systemd's managers and made its first poll, so that \
         /metrics is full when it says so.\n\n\
         | tool | peak RSS | ready |\n\
         |---|---|---|\n\
         | `spawnscope trace` | {} | {} |\n\
         | `spawnscope sentinel` | {} | {} |\n\
         | bpftrace, 3 tracepoints counted per cgroup | {} | |\n\n\
         Peak RSS counts a ring buffer's pages twice: the kernel maps its data area twice in a \
         row so that records wrapping its end read as one. `trace` maps its event ring ({} MiB, \
         {} MiB of RSS) and its cgroup ring ({} MiB, {} MiB of RSS); the sentinel streams no \
         event, so its event ring is one page.\n\n\
         Targets: peak RSS ≤ {RSS_TARGET_MIB:.0} MiB for `trace` ({:.1} MiB): **{}**; for the \
         sentinel ({:.1} MiB): **{}**. `trace` tracing within {READY_TARGET_MS:.0} ms of its \
         start ({:.0} ms): **{}**.\n",
        btf as f64 / 1e6,
        mib_range(&trace_rss),
        ms_range(&trace_ready),
        mib_range(&sent_rss),
        ms_range(&sent_ready),
        mib_range(&bpf_rss),
        DEFAULT_EVENT_BUFFER_BYTES >> 20,
        DEFAULT_EVENT_BUFFER_BYTES >> 19,
        MKDIR_EVENTS_BYTES >> 20,
        MKDIR_EVENTS_BYTES >> 19,
        mib(tr as u64),
        verdict(mib(tr as u64) <= RSS_TARGET_MIB),
        mib(sr as u64),
        verdict(mib(sr as u64) <= RSS_TARGET_MIB),
        tt,
        verdict(tt <= READY_TARGET_MS),
    );
    Ok(Section {
        title: "8. Memory at start and time to ready".into(),
        body,
    })
}
