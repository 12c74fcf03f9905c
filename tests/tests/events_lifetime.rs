//! Lifetimes: `sleep 0.2` children are reported as living 200 ms ± 20 ms,
//! per event and in the kernel's per-cgroup log2 histogram (kept without
//! any per-event traffic, in counters mode too).

use spawnscope_tests::{TestCgroup, Tracer, events_of, require_root, row_with_id, summary};

#[test]
fn sleep_lifetimes_are_measured() {
    if !require_root("events_lifetime") {
        return;
    }
    let cg = TestCgroup::new("ev-life");
    let events = Tracer::start(&["--events", "--interval", "1h"]);
    let counters = Tracer::start(&["--interval", "1h", "--by", "cgroup", "--no-detect"]);
    // One shell moved into the cgroup runs the sleeps: moving a process
    // between cgroups waits for an RCU grace period, which would count in
    // each sleep's lifetime if every sleep were moved on its own.
    let st = cg
        .command("/bin/sh")
        .args(["-c", "for i in 1 2 3 4 5; do /bin/sleep 0.2; done"])
        .status()
        .unwrap();
    assert!(st.success());
    let (code, lines, stderr) = events.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, clines, stderr) = counters.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let sleeps: Vec<_> = events_of(&lines, "exit")
        .into_iter()
        .filter(|e| e["comm"] == "sleep" && e["cgroup"] == cg.rel.as_str())
        .collect();
    assert_eq!(sleeps.len(), 5, "{sleeps:?}");
    for e in sleeps {
        let ns = e["lifetime_ns"].as_u64().unwrap();
        assert!(
            (180_000_000..=220_000_000).contains(&ns),
            "sleep 0.2 lived {ns} ns: {e}"
        );
    }
    // 200 ms is in [2^27, 2^28) ns; the shell's own second is elsewhere.
    let row = row_with_id(summary(&clines), cg.id);
    let buckets = row["lifetimes"].as_array().unwrap();
    let b27 = buckets
        .iter()
        .find(|b| b["ge_ns"] == 1u64 << 27)
        .unwrap_or_else(|| panic!("{row}"));
    assert_eq!(b27["lt_ns"], 1u64 << 28);
    assert_eq!(b27["count"], 5, "{row}");
    let all: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(all, 6, "5 sleeps and the shell: {row}");
    assert!(
        summary(&clines).get("events").is_none(),
        "counters mode streams nothing"
    );
}
