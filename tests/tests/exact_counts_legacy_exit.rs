//! The exit program for kernels before 6.16 (no `group_dead` argument),
//! forced on this kernel: it must give the same exact counts when threads
//! exit one at a time, as they do in the workload.

use spawnscope_tests::{assert_exact_counts, require_root};

#[test]
fn legacy_exit_program_counts_exactly() {
    if !require_root("exact_counts_legacy_exit") {
        return;
    }
    let s = assert_exact_counts("legacy", &["--exit-program", "legacy"]);
    assert_eq!(s["exit_program"], "legacy");
}
