//! `trace --events`: deaths by SIGKILL, SIGSEGV and SIGTERM are reported
//! with the exact signal, and the core-dump flag is set exactly when a core
//! was dumped.

use std::os::unix::process::CommandExt;

use spawnscope_tests::{TestCgroup, Tracer, event_for, require_root, skip};

/// `sh -c 'kill -SIG $$'` with RLIMIT_CORE set to `core` bytes.
fn die_by(cg: &TestCgroup, sig: &str, core: bool, dir: &std::path::Path) -> (u32, i32) {
    let mut c = cg.command("/bin/sh");
    c.args(["-c", &format!("kill -{sig} $$")]).current_dir(dir);
    // SAFETY: setrlimit is async-signal-safe; the child only calls it.
    unsafe {
        c.pre_exec(move || {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::getrlimit(libc::RLIMIT_CORE, &mut lim);
            lim.rlim_cur = if core { lim.rlim_max } else { 0 };
            libc::setrlimit(libc::RLIMIT_CORE, &lim);
            Ok(())
        });
    }
    let mut child = c.spawn().unwrap();
    let pid = child.id();
    let st = child.wait().unwrap();
    (
        pid,
        std::os::unix::process::ExitStatusExt::signal(&st).unwrap(),
    )
}

#[test]
fn signal_deaths_are_exact() {
    if !require_root("events_signals") {
        return;
    }
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let cores_here = !(pattern.starts_with('|') || pattern.starts_with('/'));
    if !cores_here {
        skip(&format!(
            "events_signals (core part): core_pattern {:?} would leave cores outside the scratch directory",
            pattern.trim()
        ));
    }
    let scratch = tempfile::tempdir().unwrap();
    let cg = TestCgroup::new("ev-sig");
    let tracer = Tracer::start(&["--events", "--interval", "1h"]);
    let mut cases = vec![
        ("KILL", libc::SIGKILL, false),
        ("SEGV", libc::SIGSEGV, false),
        ("TERM", libc::SIGTERM, false),
    ];
    if cores_here {
        cases.push(("SEGV", libc::SIGSEGV, true));
    }
    let mut seen = Vec::new();
    for (name, sig, core) in &cases {
        let (pid, got) = die_by(&cg, name, *core, scratch.path());
        assert_eq!(got, *sig);
        seen.push((pid, *sig, *core));
    }
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    for (pid, sig, core) in seen {
        let e = event_for(&lines, "exit", pid);
        assert_eq!(e["signal"], sig, "{e}");
        assert_eq!(e["core_dumped"], core, "{e}");
        assert!(e.get("code").is_none(), "{e}");
    }
}
