//! The kernel path end to end: a workload with a known spawn profile in a
//! fresh cgroup, and spawnscope's counters for that cgroup must match it
//! exactly.

use spawnscope_tests::{RunningKernel, assert_exact_counts, require_root};

#[test]
fn counts_match_a_known_workload_exactly() {
    if !require_root("exact_counts") {
        return;
    }
    let Some(kernel) = RunningKernel::get("exact_counts") else {
        return;
    };
    let s = assert_exact_counts("exact", &[]);
    assert_eq!(
        s["exit_program"],
        kernel.auto_exit_program(),
        "auto picks the program this kernel's exit tracepoint allows ({})",
        kernel.release
    );
}
