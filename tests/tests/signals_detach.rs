//! SIGTERM (like Ctrl-C) ends a trace with its summary and exit 0, and the
//! probes are gone from the kernel afterwards.

use spawnscope_tests::{Tracer, loaded_spawnscope_programs, require_root, spawn_true, summary};

#[test]
fn sigterm_prints_summary_and_detaches() {
    if !require_root("signals_detach") {
        return;
    }
    let before = loaded_spawnscope_programs();
    let tracer = Tracer::start(&["--interval", "10m"]);
    assert_eq!(
        loaded_spawnscope_programs(),
        before + 3,
        "fork, exec and exit programs loaded"
    );
    spawn_true(5);
    let (code, lines, stderr) = tracer.stop_with(libc::SIGTERM);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        lines.len(),
        1,
        "only the summary with a 10m interval: {lines:?}"
    );
    let s = summary(&lines);
    assert!(s["totals"]["execs"].as_u64().unwrap() >= 5, "{s}");
    // The kernel frees programs after an RCU grace period, not at close().
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while loaded_spawnscope_programs() != before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        loaded_spawnscope_programs(),
        before,
        "programs still loaded 20 s after exit"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
