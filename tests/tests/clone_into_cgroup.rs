//! A fork made with clone3(CLONE_INTO_CGROUP), as systemd and container
//! runtimes spawn, belongs to the cgroup the child is born in, not to the
//! parent's.

use spawnscope_tests::{TestCgroup, Tracer, cgroup_total, require_root, summary, workload_bin};

#[test]
fn fork_counts_in_the_childs_cgroup() {
    if !require_root("clone_into_cgroup") {
        return;
    }
    let parent = TestCgroup::new("into-parent");
    let target = TestCgroup::new("into-target");
    let tracer = Tracer::start(&[]);
    let status = parent
        .command(workload_bin())
        .arg("--into-cgroup")
        .arg(&target.path)
        .args(["--into", "25", "--fork-only", "3"])
        .status()
        .unwrap();
    assert!(status.success(), "workload: {status}");
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let s = summary(&lines);

    let t = cgroup_total(s, target.id);
    assert_eq!(t["forks"], 25, "{t}");
    assert_eq!(t["exit_clean"], 25, "{t}");
    assert_eq!(t["execs"], 0, "{t}");
    let p = cgroup_total(s, parent.id);
    assert_eq!(
        p["forks"], 3,
        "only the plain forks stay with the parent: {p}"
    );
    assert_eq!(p["exit_clean"], 3 + 1, "plain forks and the workload: {p}");
}
