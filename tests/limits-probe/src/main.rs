//! The smallest programs that can do each part of spawnscope's counting,
//! attached the same way (`tp_btf` on fork, exec and exit), so that
//! `cargo xtask bench overhead` can say what a program, an increment and a
//! per-cgroup count cost on the machine it runs on, beside spawnscope's own
//! figures from the same run. Each set is three programs named
//! `<set>_fork`, `<set>_exec` and `<set>_exit`; `bpf-limits` attaches one set.
//! The `record` set is measured for its exec program, beside event mode's.
#![no_std]
#![no_main]
// The BPF target has no atomic read-modify-write in core::sync::atomic;
// the intrinsic compiles to BPF's atomic add.
#![allow(internal_features)]
#![feature(core_intrinsics)]

use core::{
    intrinsics::{AtomicOrdering, atomic_xadd},
    ptr::{addr_of, addr_of_mut, read_volatile},
};

use aya_ebpf::{
    bindings::BPF_RB_NO_WAKEUP,
    btf_maps::CgrpStorage,
    helpers::bpf_get_current_cgroup_id,
    macros::{btf_map, btf_tracepoint, map},
    maps::{PerCpuArray, PerCpuHashMap, RingBuf},
    programs::BtfTracePointContext,
};
use spawnscope_common::{DEFAULT_EVENT_BUFFER_BYTES, ExecEvent, kind};

/// `task_struct.cgroups` and `css_set.dfl_cgrp`, set by the loader from the
/// kernel's BTF (never compiled in); zero means "not set".
#[unsafe(no_mangle)]
static TASK_CGROUPS: u32 = 0;
#[unsafe(no_mangle)]
static CSS_SET_DFL_CGRP: u32 = 0;

#[map(name = "SLOT")]
static SLOT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Keyed by cgroup id, as bpftrace's `@[cgroup] = count()` and spawnscope's
/// COUNTERS are.
#[map(name = "BY_ID")]
static BY_ID: PerCpuHashMap<u64, u64> = PerCpuHashMap::with_max_entries(10240, 0);

#[btf_map]
static STORE: CgrpStorage<u64> = CgrpStorage::new();

/// As large as `trace --events`' ring by default; bpf-limits drains it.
#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_EVENT_BUFFER_BYTES, 0);

#[inline(always)]
fn empty(_: u64) {}

#[inline(always)]
fn offset(o: &u32) -> u64 {
    // SAFETY: a frozen read-only global; the volatile read keeps the
    // compiler from folding the zero it was compiled with.
    (unsafe { read_volatile(addr_of!(*o)) }) as u64
}

/// One increment of a per-CPU array slot: the cheapest count there is,
/// and not per cgroup (an inlined lookup, no helper call).
#[inline(always)]
fn array(_: u64) {
    if let Some(p) = SLOT.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; a program is not preempted by itself.
        unsafe { *p += 1 };
    }
}

/// A per-cgroup count as bpftrace makes it: the cgroup-id helper and a
/// per-CPU hash lookup, with an insert on first sight.
#[inline(always)]
fn hash(_: u64) {
    // SAFETY: helper without pointer arguments.
    let id = unsafe { bpf_get_current_cgroup_id() };
    match BY_ID.get_ptr_mut(id) {
        // SAFETY: as in array().
        Some(p) => unsafe { *p += 1 },
        None => {
            let _ = BY_ID.insert(id, 1, 0);
        }
    }
}

/// A per-cgroup count in the cgroup's own storage: no hashing, the cgroup
/// reached by two loads from the task, one shared value updated atomically.
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

/// A record of the size of spawnscope's exec record, reserved in a ring
/// buffer and submitted with only its kind written: what a record costs
/// before any of its fields is filled. Counted in SLOT once submitted, for
/// bpf-limits' check.
#[inline(always)]
fn record(_: u64) {
    if let Some(mut e) = EVENTS.reserve::<ExecEvent>(0) {
        // SAFETY: a reserved record of our type, written through a raw
        // pointer only.
        unsafe { addr_of_mut!((*e.as_mut_ptr()).kind).write(kind::EXEC) };
        e.submit(BPF_RB_NO_WAKEUP as u64);
        array(0);
    }
}

macro_rules! set {
    ($fork:ident, $exec:ident, $exit:ident, $body:ident) => {
        set!($fork, $exec, $exit, $body, $body, $body);
    };
    ($fork:ident, $exec:ident, $exit:ident, $at_fork:ident, $at_exec:ident, $at_exit:ident) => {
        #[btf_tracepoint(function = "sched_process_fork")]
        pub fn $fork(ctx: BtfTracePointContext) -> i32 {
            $at_fork(ctx.arg(1));
            0
        }
        #[btf_tracepoint(function = "sched_process_exec")]
        pub fn $exec(ctx: BtfTracePointContext) -> i32 {
            $at_exec(ctx.arg(0));
            0
        }
        #[btf_tracepoint(function = "sched_process_exit")]
        pub fn $exit(ctx: BtfTracePointContext) -> i32 {
            $at_exit(ctx.arg(0));
            0
        }
    };
}

// The task whose cgroup counts: the child at fork (as spawnscope counts
// it), the current task at exec and exit (the tracepoints' first argument).
set!(empty_fork, empty_exec, empty_exit, empty);
set!(array_fork, array_exec, array_exit, array);
set!(hash_fork, hash_exec, hash_exit, hash);
set!(cgrp_fork, cgrp_exec, cgrp_exit, cgrp);
set!(record_fork, record_exec, record_exit, empty, record, empty);

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
