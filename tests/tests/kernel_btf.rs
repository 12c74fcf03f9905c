//! The running kernel's own BTF: parsed whole, and the layout the probe is
//! loaded with is complete. What each part must read is derived from the
//! kernel's version and from facts read elsewhere (/proc/cgroups), so the
//! test holds on any supported kernel, not only the one it was written on.

use std::collections::BTreeMap;

use spawnscope::layout::{OomFlavour, from_btf, oom_flavour};
use spawnscope_tests::RunningKernel;

#[test]
fn running_kernel_btf_parses() {
    let Some(k) = RunningKernel::get("kernel_btf") else {
        return;
    };
    let f = k.btf.field("task_struct", "pid").unwrap();
    assert_eq!(f.size, 4, "pid_t");
    // sched_process_fork(parent, child) since BTF tracepoints exist.
    assert_eq!(k.btf.tracepoint_arg_count("sched_process_fork").unwrap(), 2);
}

#[test]
fn running_kernel_layout_is_complete() {
    let Some(k) = RunningKernel::get("kernel_btf") else {
        return;
    };
    let (l, _) = from_btf(&k.btf).unwrap();
    // pid and tgid are adjacent pid_t fields in every kernel since 2.6.
    assert_eq!(l.task_tgid, l.task_pid + 4);
    assert_ne!(l.kernfs_node_id, 0);
    // 6.2 made mm->rss_stat an array of percpu_counter; before it, the
    // layout is left out (OOM kills are reported without RSS).
    if k.version >= (6, 2) {
        assert!(l.percpu_counter_size >= 16, "{}: {l:?}", k.release);
    } else {
        assert_eq!(l.percpu_counter_size, 0, "{}: {l:?}", k.release);
    }
    // Memory cgroups: configured exactly when /proc/cgroups lists them.
    let cgroups = std::fs::read_to_string("/proc/cgroups").unwrap();
    let controllers: BTreeMap<&str, &str> = cgroups
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((*f.first()?, *f.get(3)?))
        })
        .collect();
    let memcg = u32::from(controllers.contains_key("memory"));
    assert_eq!(l.memcg_layout, memcg, "/proc/cgroups: {cgroups}");
}

#[test]
fn running_kernel_oom_tracepoint_flavour() {
    let Some(k) = RunningKernel::get("kernel_btf") else {
        return;
    };
    // mark_victim passes the task since 6.9; stable series took the change
    // too (Debian's 5.10 and 6.1, shown by vm_release_kernels), so below 6.9
    // either form is a supported kernel.
    let flavour = oom_flavour(&k.btf).unwrap();
    if k.version >= (6, 9) {
        assert_eq!(flavour, OomFlavour::Task, "{}", k.release);
    }
    eprintln!("{}: mark_victim {flavour:?}", k.release);
}
