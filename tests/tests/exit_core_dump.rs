//! Core-dumping deaths are their own exit class, not "signaled".

use spawnscope_tests::{TestCgroup, Tracer, cgroup_total, require_root, summary, workload_bin};

#[test]
fn core_dumps_are_classified_separately() {
    if !require_root("exit_core_dump") {
        return;
    }
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    // A piped pattern hands cores to a host service (systemd-coredump,
    // apport); this test must not feed it. A file pattern writes into the
    // scratch directory below, which is removed afterwards.
    if pattern.starts_with('|') {
        let msg = format!(
            "exit_core_dump: core_pattern pipes to a host handler ({})",
            pattern.trim()
        );
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{msg}; CI=true forbids skipping"
        );
        eprintln!("\n*** SKIPPED {msg} ***\n");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let cg = TestCgroup::new("core");
    let tracer = Tracer::start(&[]);
    let status = cg
        .command(workload_bin())
        .args(["--core", "3", "--killed", "2"])
        .current_dir(scratch.path())
        .status()
        .unwrap();
    assert!(status.success(), "workload: {status}");
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let t = cgroup_total(summary(&lines), cg.id);
    assert_eq!(t["exit_core_dumped"], 3, "{t}");
    assert_eq!(t["exit_signaled"], 2, "{t}");
    assert_eq!(t["forks"], 5, "{t}");
    assert_eq!(t["exit_clean"], 1, "the workload itself: {t}");
}
