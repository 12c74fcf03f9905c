//! Core-dumping deaths are their own exit class, not "signaled".

use spawnscope_tests::{
    TestCgroup, Tracer, cgroup_total, require_root, skip, summary, workload_bin,
};

#[test]
fn core_dumps_are_classified_separately() {
    if !require_root("exit_core_dump") {
        return;
    }
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    // A piped pattern hands cores to a host service (systemd-coredump,
    // apport) and an absolute one writes into a host directory; this test
    // touches neither. A relative pattern writes into the scratch directory
    // below, which is removed afterwards.
    if pattern.starts_with('|') || pattern.starts_with('/') {
        skip(&format!(
            "exit_core_dump: core_pattern {:?} would leave cores outside the test's scratch directory",
            pattern.trim()
        ));
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
