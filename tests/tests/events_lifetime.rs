//! Lifetimes: `sleep 0.2` children are reported as living at least the
//! 200 ms they slept, per event, and the kernel's per-cgroup log2
//! histogram (kept without any per-event traffic, in counters mode too)
//! puts each of them, and the shell that ran them, in the bucket of the
//! lifetime its event reported.

use spawnscope_tests::{TestCgroup, Tracer, events_of, require_root, row_with_id, summary};

const SLEPT_NS: u64 = 200_000_000;

/// The log2 bucket of `ns`: the histogram counts it in [2^k, 2^(k+1)).
fn bucket(ns: u64) -> u32 {
    63 - ns.max(1).leading_zeros()
}

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
    let exits: Vec<_> = events_of(&lines, "exit")
        .into_iter()
        .filter(|e| e["cgroup"] == cg.rel.as_str())
        .collect();
    let lifetimes = |comm: &str| -> Vec<u64> {
        exits
            .iter()
            .filter(|e| e["comm"] == comm)
            .map(|e| e["lifetime_ns"].as_u64().unwrap())
            .collect()
    };
    let sleeps = lifetimes("sleep");
    assert_eq!(sleeps.len(), 5, "{exits:?}");
    for &ns in &sleeps {
        // A sleep cannot end early; a load on the host only makes it late.
        // The upper bound only says the figure is a lifetime at all.
        assert!(
            (SLEPT_NS..60 * SLEPT_NS).contains(&ns),
            "sleep 0.2 lived {ns} ns"
        );
    }
    let shell = lifetimes("sh");
    assert_eq!(shell.len(), 1, "{exits:?}");
    assert!(shell[0] >= 5 * SLEPT_NS, "the shell outlived its sleeps");

    // The counters tracer's own probe measured the same exits microseconds
    // apart, so a lifetime within that of a bucket edge may fall on either
    // side of it.
    let all: Vec<u64> = sleeps.iter().chain(&shell).copied().collect();
    let row = row_with_id(summary(&clines), cg.id);
    let buckets = row["lifetimes"].as_array().unwrap();
    let mut total = 0;
    for b in buckets {
        let ge = b["ge_ns"].as_u64().unwrap();
        let k = bucket(ge);
        assert_eq!(ge, 1 << k, "{row}");
        assert_eq!(b["lt_ns"].as_u64().unwrap(), 1 << (k + 1), "{row}");
        let count = b["count"].as_u64().unwrap();
        // Within 1 ms of one of this bucket's edges.
        let near = |ns: u64| {
            [k, k + 1]
                .iter()
                .any(|&e| ns.abs_diff(1u64 << e) < 1_000_000)
        };
        let surely = all
            .iter()
            .filter(|&&ns| bucket(ns) == k && !near(ns))
            .count() as u64;
        let maybe = all.iter().filter(|&&ns| near(ns)).count() as u64;
        assert!(
            (surely..=surely + maybe).contains(&count),
            "bucket [2^{k}, 2^{}) holds {count}; the events' lifetimes {all:?}: {row}",
            k + 1
        );
        total += count;
    }
    assert_eq!(total, 6, "5 sleeps and the shell: {row}");
    assert!(
        summary(&clines).get("events").is_none(),
        "counters mode streams nothing"
    );
}
