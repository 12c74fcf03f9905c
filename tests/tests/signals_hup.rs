//! SIGHUP ends a trace like SIGTERM. Apart from signals_detach, whose
//! count of the programs loaded would include this test's.

use spawnscope_tests::{Tracer, require_root, spawn_true, summary};

/// SIGHUP (the terminal of an interactive trace closed) ends it the same
/// way: summary, exit 0, not a silent death.
#[test]
fn sighup_ends_a_trace_with_its_summary() {
    if !require_root("signals_detach") {
        return;
    }
    let tracer = Tracer::start(&["--interval", "10m"]);
    spawn_true(3);
    let (code, lines, stderr) = tracer.stop_with(libc::SIGHUP);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(summary(&lines)["totals"]["execs"].as_u64().unwrap() >= 3);
}
