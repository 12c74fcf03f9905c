//! Lifetimes: `sleep 0.2` children are reported as living 200 ms ± 20 ms,
//! per event and in the kernel's per-cgroup log2 histogram (kept without
//! any per-event traffic, in counters mode too).

use spawnscope_tests::{TestCgroup, Tracer, event_for, require_root, row_with_id, summary};

#[test]
fn sleep_lifetimes_are_measured() {
    if !require_root("events_lifetime") {
        return;
    }
    let cg = TestCgroup::new("ev-life");
    let events = Tracer::start(&["--events", "--interval", "1h"]);
    let counters = Tracer::start(&["--interval", "1h", "--by", "cgroup"]);
    let mut pids = Vec::new();
    for _ in 0..5 {
        let mut c = cg.command("/bin/sleep").arg("0.2").spawn().unwrap();
        pids.push(c.id());
        assert!(c.wait().unwrap().success());
    }
    let (code, lines, stderr) = events.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, clines, stderr) = counters.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    for pid in pids {
        let e = event_for(&lines, "exit", pid);
        let ns = e["lifetime_ns"].as_u64().unwrap();
        assert!(
            (180_000_000..=220_000_000).contains(&ns),
            "sleep 0.2 lived {ns} ns: {e}"
        );
    }
    // 200 ms is in [2^27, 2^28) ns.
    let row = row_with_id(summary(&clines), cg.id);
    assert_eq!(
        row["lifetimes"],
        serde_json::json!([{"ge_ns": 1u64 << 27, "lt_ns": 1u64 << 28, "count": 5}]),
        "{row}"
    );
    assert!(
        summary(&clines).get("events").is_none(),
        "counters mode streams nothing"
    );
}
