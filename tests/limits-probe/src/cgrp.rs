//! The cgroup-storage set of the limits probe (see main.rs), an object of
//! its own: its map type exists from Linux 6.2 on, and aya creates every
//! map of an object it loads.
#![no_std]
#![no_main]
// The BPF target has no atomic read-modify-write in core::sync::atomic;
// the intrinsic compiles to BPF's atomic add.
#![allow(internal_features)]
#![feature(core_intrinsics)]

use core::{
    intrinsics::{AtomicOrdering, atomic_xadd},
    ptr::{addr_of, read_volatile},
};

use aya_ebpf::{btf_maps::CgrpStorage, macros::btf_map};
use spawnscope_limits_probe::set;

/// `task_struct.cgroups` and `css_set.dfl_cgrp`, set by the loader from the
/// kernel's BTF (never compiled in); zero means "not set".
#[unsafe(no_mangle)]
static TASK_CGROUPS: u32 = 0;
#[unsafe(no_mangle)]
static CSS_SET_DFL_CGRP: u32 = 0;

#[btf_map]
static STORE: CgrpStorage<u64> = CgrpStorage::new();

#[inline(always)]
fn offset(o: &u32) -> u64 {
    // SAFETY: a frozen read-only global; the volatile read keeps the
    // compiler from folding the zero it was compiled with.
    (unsafe { read_volatile(addr_of!(*o)) }) as u64
}

/// A per-cgroup count in the cgroup's own storage: no hashing, the cgroup
/// reached by two loads from the task (the child's at fork, as spawnscope
/// counts it), one value shared by every CPU and updated atomically.
#[inline(always)]
fn cgrp(task: u64) {
    let (c, d) = (offset(&TASK_CGROUPS), offset(&CSS_SET_DFL_CGRP));
    if task == 0 || c == 0 || d == 0 {
        return;
    }
    // SAFETY: `task` is a tp_btf argument, typed by BTF, and the offsets
    // are frozen constants, so the verifier checks both loads against the
    // kernel's types (a faulting load reads as zero).
    let cset = unsafe { read_volatile((task + c) as *const u64) };
    if cset == 0 {
        return;
    }
    // SAFETY: as above, a field of the css_set the task points to.
    let cgroup = unsafe { read_volatile((cset + d) as *const u64) };
    if cgroup == 0 {
        return;
    }
    // SAFETY: `cgroup` is a BTF-typed `struct cgroup *`, which the helper
    // checks.
    let p = unsafe { STORE.get_or_insert_ptr_mut(cgroup as *mut _, None) };
    if !p.is_null() {
        // SAFETY: the storage value is a live, aligned u64 while the
        // program runs; other CPUs update it atomically too.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, 1) };
    }
}

set!(cgrp_fork, cgrp_exec, cgrp_exit, cgrp);

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
