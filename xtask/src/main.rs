//! Project chores: `cargo xtask setup|build|run|test|fuzz|dist|bench`.

mod bench;
mod bench_overhead;
mod bench_postmortem;
mod bench_sentinel;
mod bench_startup;
mod dist;
mod fuzz;
mod lanes;
mod noisy;
mod setup;
mod test;
mod util;

use std::{env, path::PathBuf, process::ExitCode};

use util::{Fail, cmd, run_checked, workspace_root};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  setup           install what building needs (idempotent): the pinned
                  nightly, LLVM, bpf-linker, the musl targets
  build           setup, then build spawnscope (release)
  dist            setup, then the release artifacts in target/dist: static
                  x86_64 and aarch64 binaries as tarballs and .debs, and
                  SHA256SUMS, byte-identical for the same commit
  dist --check-reproducible
                  the same, also built from a copy of the tree at another
                  path; fails unless every artifact is byte-identical
  run -- ARGS     setup, build, then run `spawnscope ARGS` as root
  test            setup plus what only the tests need, lint (fmt, clippy incl.
                  the probe), a 20 s smoke of each fuzz target, dist, then every test,
                  ending with 'N passed, M failed, K skipped, L ignored' and
                  each skip's reason; privileged tests need root, and a
                  skipped test fails the run (under CI=true, the test itself
                  fails)
  test --allow-skips
                  the same, but skips (counted and named) do not fail it
  test --noisy    the tests while the host also runs a CPU hog, a crash loop
                  and a rootfs install loop (root)
  fuzz [--seconds N] [TARGET]
                  setup plus cargo-fuzz, then the libFuzzer targets of every
                  parser of outside input, N s each (default 60), or only
                  TARGET; per target exec/s, coverage, corpus, crashes
                  (`cargo xtask fuzz --help` lists the targets)
  bench           every benchmark below but memory, in one run (root; about
                  18 minutes); writes BENCHMARKS.md. It installs bpftrace,
                  forkstat, auditd, bpftool and stress-ng if missing
  bench overhead  1. what sentinel, trace, trace --events, bpftrace (the same
                  tracepoints per cgroup), forkstat and auditd (an execve
                  rule) add to a spawn loop, interleaved A/B against no
                  tracer; 2. each BPF program's cost per run, next to
                  bpftrace's (about 5 minutes)
  bench capacity  3. the highest spawn rates (stress-ng, spawn-workload);
                  counter mode's counts at that rate (exact, asserted) and
                  event mode's drops (about 2 minutes)
  bench sentinel  4. the resident sentinel's CPU and memory, idle, under
                  1,000 spawns/s, and as 10,000 transient units come and
                  go (about 3 minutes)
  bench detect    5. respawn-loop detection latency for 10 s, 2 s and 100 ms
                  loops in a real systemd (about 2 minutes)
  bench postmortem
                  6. `spawnscope postmortem` over the incident's journal at
                  full size (1.26 M entries) against `journalctl -o export`:
                  wall time and peak RSS (about 2 minutes)
  bench memory    cost of one memory sampling pass, as is and with 500
                  more memory cgroups (about 2 minutes; printed only)
  bench systemd   one reading of systemd's state over D-Bus (connect, list,
                  every service's properties) in a container running 500
                  more services, 10 runs per way of fetching the properties
                  (about 1 minute; printed only)
  bench startup   8. peak RSS of trace, the sentinel and bpftrace (the same
                  tracepoints per cgroup), 5 starts each, and spawnscope's
                  time from exec to ready (about 1 minute)";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::run(),
        Some("build") => setup::run().and_then(|()| build_release()).map(|_| ()),
        Some("run") => run(&args[1..]),
        Some("dist") => {
            dist::Options::parse(&args[1..]).and_then(|o| setup::run().and_then(|()| dist::run(&o)))
        }
        Some("test") => test::Options::parse(&args[1..]).and_then(|o| test::run(&o)),
        Some("fuzz") => fuzz::Options::parse(&args[1..]).and_then(|o| fuzz::run(&o)),
        Some("bench") => setup::run()
            .and_then(|()| setup::test_deps())
            .and_then(|()| match args.get(1).map(String::as_str) {
                None => bench::all(),
                Some("overhead") => bench::build_release_bins()
                    .and_then(|t| bench_overhead::overhead(&t))
                    .map(|(a, b)| bench::print(&[a, b])),
                Some("capacity") => bench::build_release_bins()
                    .and_then(|_| bench::capacity())
                    .map(|s| bench::print(&[s])),
                Some("sentinel") => bench::build_release_bins()
                    .and_then(|_| dist::build_static_host_bin())
                    .and_then(|bin| bench_sentinel::sentinel(&bin))
                    .map(|s| bench::print(&[s])),
                Some("detect") => bench::build_release_bins()
                    .and_then(|_| bench::detect())
                    .map(|s| bench::print(&[s])),
                Some("memory") => bench::memory(),
                Some("postmortem") => bench::build_release_bins()
                    .and_then(|t| bench_postmortem::postmortem(&t, &dist::build_static_host_bin()?))
                    .map(|s| bench::print(&[s])),
                Some("startup") => dist::build_static_host_bin()
                    .and_then(|bin| bench_startup::startup(&bin))
                    .map(|s| bench::print(&[s])),
                Some("systemd") => bench::build_release_bins()
                    .and_then(|_| bench::systemd())
                    .map(|s| bench::print(&[s])),
                Some(other) => Err(Fail(format!("unknown benchmark {other:?}\n{USAGE}"))),
            }),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(Fail(format!("unknown command {other:?}\n{USAGE}"))),
        None => Err(Fail(USAGE.to_string())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(msg)) => {
            eprintln!("xtask: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn build_release() -> Result<PathBuf, Fail> {
    run_checked(cmd("cargo").args(["build", "--release", "--package", "spawnscope"]))?;
    Ok(workspace_root().join("target/release/spawnscope"))
}

fn run(args: &[String]) -> Result<(), Fail> {
    let args = match args.first().map(String::as_str) {
        Some("--") => &args[1..],
        _ => args,
    };
    setup::run()?;
    let bin = build_release()?;
    let mut c = if util::is_root() {
        cmd(&bin)
    } else {
        eprintln!("xtask: not root; running spawnscope through sudo");
        let mut c = cmd("sudo");
        c.arg("--").arg(&bin);
        c
    };
    c.args(args);
    // Ctrl-C reaches spawnscope directly (same process group); we only wait
    // for its summary. A SIGTERM sent to us is passed on.
    let term = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let int = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, term.clone())
        .map_err(|e| Fail(format!("signal setup: {e}")))?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, int)
        .map_err(|e| Fail(format!("signal setup: {e}")))?;
    let mut child = c
        .spawn()
        .map_err(|e| Fail(format!("cannot start {}: {e}", bin.display())))?;
    let mut forwarded = false;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| Fail(format!("wait: {e}")))? {
            return match status.code() {
                Some(0) => Ok(()),
                Some(code) => std::process::exit(code),
                None => Err(Fail(format!("spawnscope ended by {status}"))),
            };
        }
        if term.load(std::sync::atomic::Ordering::Relaxed) && !forwarded {
            // SAFETY: kill with our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            forwarded = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Every crate but the probes, which only build for bpfel with nightly
/// (each is built by its loader's build.rs and linted separately).
const HOST_CRATES: [&str; 5] = [
    "--workspace",
    "--exclude",
    "spawnscope-probe",
    "--exclude",
    "spawnscope-limits-probe",
];

fn cargo_host(subcommand: &str, extra: &[&str]) -> Result<(), Fail> {
    run_checked(cmd("cargo").arg(subcommand).args(HOST_CRATES).args(extra))
}
