//! The kernel path end to end: a workload with a known spawn profile in a
//! fresh cgroup, and spawnscope's counters for that cgroup must match it
//! exactly.

use spawnscope_tests::{TestCgroup, Tracer, cgroup_total, require_root, summary, workload_bin};

#[test]
fn counts_match_a_known_workload_exactly() {
    if !require_root("exact_counts") {
        return;
    }
    let cg = TestCgroup::new("exact");
    let tracer = Tracer::start(&["--interval", "500ms"]);

    let status = cg
        .command(workload_bin())
        .args([
            "--clean",
            "1000",
            "--failed",
            "500",
            "--killed",
            "300",
            "--fork-only",
            "200",
        ])
        .args(["--threads", "100"])
        .status()
        .expect("run workload");
    assert!(
        status.success(),
        "workload reported a child that did not end as asked: {status}"
    );

    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "spawnscope failed: {stderr}");
    let s = summary(&lines);
    let t = cgroup_total(s, cg.id);

    // The workload process itself: moved in before its exec, so its exec
    // and its clean exit belong here, its fork to the test's cgroup.
    let expect = [
        ("forks", 1000 + 500 + 300 + 200),
        ("threads", 100),
        ("execs", 1 + 1000 + 500),
        ("exit_clean", 1000 + 200 + 1),
        ("exit_failed", 500),
        ("exit_signaled", 300),
        ("exit_core_dumped", 0),
        ("exits", 1000 + 500 + 300 + 200 + 1),
        ("thread_exits", 100),
    ];
    for (field, want) in expect {
        assert_eq!(
            t[field], want,
            "{field} for cgroup {} ({}): {t}",
            cg.id, cg.rel
        );
    }
    let row = s["cgroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cgroup_id"] == cg.id)
        .unwrap();
    assert_eq!(
        row["cgroup"],
        cg.rel.as_str(),
        "cgroup path resolved from the id"
    );
    assert_eq!(s["probe"]["map_full"], 0);
    assert_eq!(s["probe"]["read_failed"], 0);
    assert_eq!(s["probe"]["no_layout"], 0);
}
