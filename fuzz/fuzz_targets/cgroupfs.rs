//! A memory cgroup's files (v2 and v1), read by the memory sampler and the
//! forecast. The input stands for several files, split at NUL bytes: the
//! current usage, the limit, memory.high (v1: the fail count),
//! memory.stat, memory.events (v1: memory.oom_control) and
//! memory.pressure.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spawnscope::{
    memory,
    mempress::{MemConfig, MemTree, MemWatch},
};
use spawnscope_fuzz::{assert_one_line, parts, scratch, write};

fuzz_target!(|data: &[u8]| {
    let [current, max, high, stat, events, pressure] = parts::<6>(data);
    for (name, bytes) in [
        ("v2/memory.current", current),
        ("v2/memory.max", max),
        ("v2/memory.high", high),
        ("v2/memory.stat", stat),
        ("v2/memory.events", events),
        ("v2/memory.pressure", pressure),
        ("v1/memory.usage_in_bytes", current),
        ("v1/memory.limit_in_bytes", max),
        ("v1/memory.failcnt", high),
        ("v1/memory.stat", stat),
        ("v1/memory.oom_control", events),
    ] {
        write(name, bytes);
    }
    for (dir, v2) in [("v2", true), ("v1", false)] {
        let root = scratch().join(dir);
        let read = if v2 {
            memory::read_cgroup_v2(&root)
        } else {
            memory::read_cgroup_v1(&root)
        };
        if let Err(e) = read {
            assert_one_line(&e.to_string());
        }
        // The sampler over a tree of this one cgroup, with no /proc files:
        // enough passes for a trend, then the forecast that reads the
        // cgroup whole.
        let mut w = MemWatch::new(
            MemConfig::default(),
            Some(MemTree { root, v2 }),
            scratch().join("no-proc"),
        );
        for t in 0..4 {
            w.sample(f64::from(t) * 10.0, 1e9);
        }
        w.forecast();
    }
});
