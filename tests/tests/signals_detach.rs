//! SIGTERM (like Ctrl-C) ends a trace with its summary and exit 0, and the
//! probes are gone from the kernel afterwards.

use std::time::{Duration, Instant};

use spawnscope_tests::{
    Tracer, loaded_spawnscope_programs, programs_held_by, require_root, spawn_true, summary,
};

#[test]
fn sigterm_prints_summary_and_detaches() {
    if !require_root("signals_detach") {
        return;
    }
    let tracer = Tracer::start(&["--interval", "10m"]);
    // Its own, by its descriptors: another tracer may load and unload the
    // same programs meanwhile.
    let ours: Vec<u32> = loaded_spawnscope_programs()
        .intersection(&programs_held_by(tracer.pid()))
        .copied()
        .collect();
    assert_eq!(
        ours.len(),
        3,
        "fork, exec and exit programs loaded: {ours:?}"
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
    assert!(!stderr.contains("panicked"), "{stderr}");

    // The kernel frees programs after an RCU grace period, not at close().
    let still = || {
        let now = loaded_spawnscope_programs();
        ours.iter()
            .copied()
            .filter(|id| now.contains(id))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !still().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        still(),
        Vec::<u32>::new(),
        "programs still loaded 20 s after exit"
    );
}
