//! Exact counts while the spawns race each other: two workloads of known
//! shape per CPU run at once in one fresh cgroup, so forks, execs, thread
//! and process exits of every class (clean, failed, signalled, core
//! dumped) happen on all CPUs at the same time; the cgroup's counters must
//! equal the sum of what each one did.

use spawnscope_tests::{
    TestCgroup, Tracer, cgroup_total, known_mix, require_root, skip, summary, workload_bin,
};

/// Core-dumping children per workload.
const CORES: u64 = 2;

#[test]
fn concurrent_workloads_count_exactly() {
    if !require_root("exact_counts_concurrent") {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let workers = 2 * cpus;
    let cg = TestCgroup::new("concurrent");
    let tracer = Tracer::start(&["--interval", "500ms", "--no-detect"]);
    let (mut mix, mut each) = known_mix(20);
    // Cores land where core_pattern says: only a relative pattern keeps
    // them in the scratch directory (see exit_core_dump).
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let cores = if pattern.starts_with('|') || pattern.starts_with('/') {
        skip(&format!(
            "exact_counts_concurrent: core dumps left out, core_pattern {:?} writes outside the scratch directory",
            pattern.trim()
        ));
        0
    } else {
        CORES
    };
    mix.extend(["--core".to_string(), cores.to_string()]);
    for (field, n) in &mut each {
        if ["forks", "exits", "exit_core_dumped"].contains(field) {
            *n += cores;
        }
    }
    // A directory per workload: two dumps racing for one "core" file would
    // leave one child without its core.
    let scratch: Vec<_> = (0..workers).map(|_| tempfile::tempdir().unwrap()).collect();
    let kids: Vec<_> = scratch
        .iter()
        .map(|dir| {
            cg.command(workload_bin())
                .args(&mix)
                .current_dir(dir.path())
                .spawn()
                .expect("start spawn-workload")
        })
        .collect();
    for mut k in kids {
        let st = k.wait().expect("wait");
        assert!(
            st.success(),
            "a workload reported a child that did not end as asked: {st}"
        );
    }
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let s = summary(&lines);
    let t = cgroup_total(s, cg.id);
    for (field, per_worker) in each {
        assert_eq!(
            t[field],
            workers * per_worker,
            "{field} for {workers} workers in {}: {t}",
            cg.rel
        );
    }
    for stat in ["map_full", "read_failed", "no_layout", "names_lost"] {
        assert_eq!(s["probe"][stat], 0, "probe.{stat}: {}", s["probe"]);
    }
    eprintln!("{workers} concurrent workloads counted exactly: {t}");
}
