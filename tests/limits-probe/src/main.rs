//! The smallest programs that can do each part of spawnscope's counting,
//! attached the same way (`tp_btf` on fork, exec and exit), so that
//! `cargo xtask bench overhead` can say what a program, an increment, a
//! per-cgroup count and a record cost on the machine it runs on, beside
//! spawnscope's own figures from the same run. Each set is three programs
//! named `<set>_fork`, `<set>_exec` and `<set>_exit`; `bpf-limits` attaches
//! one set. The cgroup-storage set is in `cgrp.rs`.
#![no_std]
#![no_main]

use core::ptr::addr_of_mut;

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::bpf_get_current_cgroup_id,
    macros::map,
    maps::{PerCpuArray, PerCpuHashMap, RingBuf},
};
use spawnscope_common::{DEFAULT_EVENT_BUFFER_BYTES, DEFAULT_MAX_CGROUPS, ExecEvent, kind};
use spawnscope_limits_probe::set;

/// Slot 0: the array set's count. Slot 1: records submitted. Slot 2:
/// records that found the ring full (bpf-limits stops if one does: the
/// figure would be of a cheaper failure).
#[map(name = "SLOT")]
static SLOT: PerCpuArray<u64> = PerCpuArray::with_max_entries(3, 0);

/// Sized and flagged as spawnscope's COUNTERS, keyed as bpftrace's
/// `@[cgroup] = count()` is, by the cgroup-id helper.
#[map(name = "BY_ID")]
static BY_ID: PerCpuHashMap<u64, u64> =
    PerCpuHashMap::with_max_entries(DEFAULT_MAX_CGROUPS, BPF_F_NO_PREALLOC);

/// As large as `trace --events`' ring by default; bpf-limits drains it.
#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_EVENT_BUFFER_BYTES, 0);

#[inline(always)]
fn bump(slot: u32) {
    if let Some(p) = SLOT.get_ptr_mut(slot) {
        // SAFETY: this CPU's slot; a program is not preempted by itself.
        unsafe { *p += 1 };
    }
}

#[inline(always)]
fn empty(_: u64) {}

/// One increment of a per-CPU array slot, not per cgroup (an inlined
/// lookup, no helper call).
#[inline(always)]
fn array(_: u64) {
    bump(0);
}

/// A per-cgroup count: the cgroup-id helper and a per-CPU hash lookup,
/// with an insert on first sight.
#[inline(always)]
fn hash(_: u64) {
    // SAFETY: helper without pointer arguments.
    let id = unsafe { bpf_get_current_cgroup_id() };
    match BY_ID.get_ptr_mut(id) {
        // SAFETY: this CPU's value, as in bump().
        Some(p) => unsafe { *p += 1 },
        None => {
            let _ = BY_ID.insert(id, 1, 0);
        }
    }
}

/// A record of the size of spawnscope's exec record, reserved in a ring
/// buffer and submitted with only its kind written, with the wakeup choice
/// `trace --events` makes (a wakeup once half the ring is pending): what
/// a record costs before any of its fields is filled.
#[inline(always)]
fn record(_: u64) {
    match EVENTS.reserve::<ExecEvent>(0) {
        Some(mut e) => {
            // SAFETY: a reserved record of our type, written through a raw
            // pointer only.
            unsafe { addr_of_mut!((*e.as_mut_ptr()).kind).write(kind::EXEC) };
            let flags = if EVENTS.query(BPF_RB_AVAIL_DATA as u64)
                >= u64::from(DEFAULT_EVENT_BUFFER_BYTES / 2)
            {
                BPF_RB_FORCE_WAKEUP
            } else {
                BPF_RB_NO_WAKEUP
            };
            e.submit(flags as u64);
            bump(1);
        }
        None => bump(2),
    }
}

set!(empty_fork, empty_exec, empty_exit, empty);
set!(array_fork, array_exec, array_exit, array);
set!(hash_fork, hash_exec, hash_exit, hash);
set!(record_fork, record_exec, record_exit, empty, record, empty);

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
