//! spawnscope's kernel side: per-cgroup fork/exec/exit counters.
//!
//! Everything is aggregated here, in per-CPU maps keyed by cgroup v2 id, so
//! the hot path is a hash lookup and a few increments with no wakeup of
//! userspace. Kernel struct offsets are not compiled in: userspace reads them
//! from the running kernel's BTF and overrides [`KERNEL_LAYOUT`] at load time.
#![no_std]
#![no_main]

use core::{
    ffi::c_void,
    ptr::{addr_of, addr_of_mut, read_volatile},
};

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_uid_gid, generated,
    },
    macros::{btf_tracepoint, map},
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::BtfTracePointContext,
};
use spawnscope_common::{
    ARGS_MAX, ARGS_TRUNCATED, ARGS_UNREADABLE, CGROUP_PATH_MAX, CgroupMkdir, CgroupStats, Counters,
    DEFAULT_MAX_CGROUPS, DRILL_MAX_IDS, DRILL_PATH_MAX, DRILL_SLOTS, DrillPath, EventConfig,
    ExecEvent, ExitClass, ExitEvent, FILENAME_MAX, FILENAME_TRUNCATED, ForkEvent, KernelLayout,
    LAYOUT_MAGIC, Lifetimes, MEMCG_LIMIT_SLACK_PAGES, MEMCG_MAX_DEPTH, MKDIR_EVENTS_BYTES,
    OOM_PID_ONLY, OomEvent, SIGNAL_GROUP_EXIT, classify_exit, kind, lifetime_bucket, oom_scope,
    stat,
};

/// Overridden by userspace before load; zero means "not provided".
#[unsafe(no_mangle)]
static KERNEL_LAYOUT: KernelLayout = KernelLayout {
    magic: 0,
    task_pid: 0,
    task_tgid: 0,
    task_exit_code: 0,
    task_group_leader: 0,
    task_signal: 0,
    task_cgroups: 0,
    signal_live: 0,
    signal_flags: 0,
    signal_group_exit_code: 0,
    css_set_dfl_cgrp: 0,
    cgroup_kn: 0,
    kernfs_node_id: 0,
    cgroup_root: 0,
    cgroup_root_hierarchy_id: 0,
    task_real_parent: 0,
    task_start_time: 0,
    task_mm: 0,
    mm_arg_start: 0,
    mm_arg_end: 0,
    binprm_filename: 0,
    task_comm: 0,
    mm_rss_stat: 0,
    percpu_counter_size: 0,
    percpu_counter_count: 0,
    css_set_subsys: 0,
    memory_cgrp_id: 0,
    mem_cgroup_css: 0,
    mem_cgroup_memory: 0,
    page_counter_usage: 0,
    page_counter_max: 0,
    page_counter_parent: 0,
    css_cgroup: 0,
    memcg_layout: 0,
};

/// Overridden by userspace before load when a mode streams events.
#[unsafe(no_mangle)]
static EVENT_CONFIG: EventConfig = EventConfig {
    enabled: 0,
    forks: 0,
    drill: 0,
    cgroups_wake_bytes: 0,
    events_wake_bytes: 0,
};

/// Overridden by userspace before load: non-zero keeps the diagnostic log
/// (`--probe-log`). Zero, the default, makes every [`diag!`] dead code that
/// the verifier removes, so the programs run as if it were not there.
#[unsafe(no_mangle)]
static LOG_ENABLED: u32 = 0;

/// BPF_F_NO_PREALLOC: memory grows with the cgroups actually seen instead of
/// max_entries x possible CPUs up front.
const BPF_F_NO_PREALLOC: u32 = 1;
/// BPF_NOEXIST
const NOEXIST: u64 = 1;

/// Per cgroup: its counters and its process lifetime histogram (kept in
/// every mode), in one value so that an exit does one lookup.
#[map(name = "COUNTERS")]
static COUNTERS: PerCpuHashMap<u64, CgroupStats> =
    PerCpuHashMap::with_max_entries(DEFAULT_MAX_CGROUPS, BPF_F_NO_PREALLOC);

/// Events whose cgroup did not fit in COUNTERS, still counted by class.
#[map(name = "OVERFLOW")]
static OVERFLOW: PerCpuArray<Counters> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "PROBE_STATS")]
static PROBE_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

#[map(name = "MKDIR_EVENTS")]
static MKDIR_EVENTS: RingBuf = RingBuf::with_byte_size(MKDIR_EVENTS_BYTES, 0);

/// Per-event records. One page unless userspace sizes it for a mode that
/// streams events.
#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(4096, 0);

/// Records that found EVENTS full, by kind.
#[map(name = "EVENT_DROPS")]
static EVENT_DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(kind::COUNT, 0);

/// The drill-downs' target paths, one per slot, written by userspace at
/// run time.
#[map(name = "DRILL")]
static DRILL: Array<DrillPath> = Array::with_max_entries(DRILL_SLOTS as u32, 0);

/// Bit `i` is set while slot `i` of DRILL is active. The exec and exit
/// programs test this one word (an inlined array load) before anything
/// else, so a sentinel that drills into nothing pays what it paid with a
/// single slot.
#[map(name = "DRILL_ACTIVE")]
static DRILL_ACTIVE: Array<u32> = Array::with_max_entries(1, 0);

/// Cgroups whose exec and exit records a drill-down streams; the value is
/// the slot of DRILL that follows the cgroup.
#[map(name = "DRILL_IDS")]
static DRILL_IDS: HashMap<u64, u32> = HashMap::with_max_entries(DRILL_MAX_IDS, 0);

/// One all-zero [`CgroupStats`]: a new COUNTERS entry is inserted from
/// here, since its 576 bytes do not fit on the BPF stack.
#[map(name = "COUNTERS_ZERO")]
static COUNTERS_ZERO: Array<CgroupStats> = Array::with_max_entries(1, 0);

#[inline(always)]
fn layout_field(f: &u32) -> u32 {
    // SAFETY: `f` points into a static; the volatile read keeps the compiler
    // from folding the pre-override zero into the code.
    unsafe { read_volatile(f) }
}

macro_rules! off {
    ($field:ident) => {{
        // Also expanded inside unsafe blocks, where this one is redundant.
        #[allow(unused_unsafe)]
        // SAFETY: addr_of! on a static never creates an invalid reference.
        let f = unsafe { &*addr_of!(KERNEL_LAYOUT.$field) };
        layout_field(f)
    }};
}

#[inline(always)]
fn log_on() -> bool {
    // SAFETY: as layout_field: a static the loader may have overridden.
    unsafe { read_volatile(addr_of!(LOG_ENABLED)) != 0 }
}

/// A line of the diagnostic log, for rare paths only (a failed kernel
/// read, a missing layout, drill-down bookkeeping): never once per event
/// on a path that every spawn takes. Behind [`LOG_ENABLED`], which the
/// verifier sees as a constant, so with the log off the code is removed
/// at load and the counting path does not carry it.
macro_rules! diag {
    ($level:ident, $($arg:tt)+) => {
        if log_on() {
            aya_log_ebpf::$level!(&(), $($arg)+);
        }
    };
}

/// The current task's thread group id, for a diagnostic line.
#[inline(always)]
fn current_tgid() -> u32 {
    // SAFETY: helper without pointer arguments.
    (unsafe { generated::bpf_get_current_pid_tgid() } >> 32) as u32
}

#[inline(always)]
fn bump_stat(slot: u32) {
    if let Some(p) = PROBE_STATS.get_ptr_mut(slot) {
        // SAFETY: a per-CPU slot, only written from this CPU while the program
        // runs with migration disabled.
        unsafe { *p += 1 };
    }
}

/// Plain data the probe reads out of kernel memory: integers and byte
/// arrays, for which all-zero bytes are a valid value.
trait Plain: Copy {}
impl Plain for u8 {}
impl Plain for u32 {}
impl Plain for i32 {}
impl Plain for u64 {}
impl Plain for i64 {}
impl Plain for [u8; 16] {}

/// Reads a `T` at `base + off` in kernel memory. The destination starts
/// zeroed: with an uninitialised one the compiler may carry its undefined
/// bytes through the failure path, and verifiers before Linux ~5.14 reject
/// that read of uninitialised stack (seen on 5.10).
#[inline(always)]
fn read<T: Plain>(base: u64, off: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    // SAFETY: T is Plain, so all-zero bytes are a valid T.
    let mut v: T = unsafe { core::mem::zeroed() };
    // SAFETY: the helper writes at most size_of::<T>() bytes into `v`, and
    // validates the source address, failing cleanly.
    let r = unsafe {
        generated::bpf_probe_read_kernel(
            (&mut v as *mut T).cast::<c_void>(),
            core::mem::size_of::<T>() as u32,
            (base + off as u64) as *const c_void,
        )
    };
    (r == 0).then_some(v)
}

/// Reads a `T` at `base + off` with a plain load instead of a helper call
/// (a helper call per field was most of the exit program's cost). Only for
/// pointers the verifier knows by BTF type: a `tp_btf` argument, or a
/// pointer field loaded from one. `off` comes from KERNEL_LAYOUT, which
/// is frozen read-only data, so the verifier sees a constant and checks the
/// access against the kernel's BTF at load time; a faulting load reads as
/// zero (the kernel's exception table), and a zero `base` is not followed
/// but read as zero too. No `Option` here: a `None` leaves its payload
/// register unset, and verifiers before 6.x reject reading it on the
/// path they cannot prune ("!read_ok", seen on 5.10 and 6.1).
#[inline(always)]
fn load<T: Plain>(base: u64, off: u32) -> T {
    if base == 0 {
        // SAFETY: T is Plain, so all-zero bytes are a valid T.
        return unsafe { core::mem::zeroed() };
    }
    // SAFETY: see above: the verifier admits the access only as a checked
    // BTF field read, which cannot fault the kernel.
    unsafe { read_volatile((base + off as u64) as *const T) }
}

/// Applies `f` to this CPU's counters for `cgid`, creating the entry on
/// first sight, and returns the cgroup's lifetime histogram on this CPU. A
/// full map routes the event to OVERFLOW, so no count is lost (the
/// histogram is then None).
#[inline(always)]
fn with_counters(cgid: u64, f: impl Fn(&mut Counters)) -> Option<*mut Lifetimes> {
    let mut p = COUNTERS.get_ptr_mut(cgid);
    if p.is_none() {
        // EEXIST from a racing CPU is fine: the lookup below then succeeds.
        if let Some(zero) = COUNTERS_ZERO.get(0) {
            let _ = COUNTERS.insert(cgid, zero, NOEXIST);
        }
        p = COUNTERS.get_ptr_mut(cgid);
    }
    match p {
        Some(s) => {
            // SAFETY: per-CPU value of this CPU, see bump_stat.
            f(unsafe { &mut (*s).counters });
            // SAFETY: as above; a field of the same value.
            Some(unsafe { addr_of_mut!((*s).lifetimes) })
        }
        None => {
            bump_stat(stat::MAP_FULL);
            if let Some(o) = OVERFLOW.get_ptr_mut(0) {
                // SAFETY: as above.
                f(unsafe { &mut *o });
            }
            None
        }
    }
}

#[inline(always)]
fn layout_ready() -> bool {
    if off!(magic) == LAYOUT_MAGIC {
        true
    } else {
        bump_stat(stat::NO_LAYOUT);
        diag!(
            warn,
            "no kernel layout: magic {:x}, expected {:x}; nothing is counted",
            off!(magic),
            LAYOUT_MAGIC
        );
        false
    }
}

#[inline(always)]
fn current_cgroup() -> u64 {
    // SAFETY: helper without pointer arguments.
    unsafe { bpf_get_current_cgroup_id() }
}

#[inline(always)]
fn events_on() -> bool {
    // SAFETY: as layout_field: a static the loader may have overridden.
    unsafe { read_volatile(addr_of!(EVENT_CONFIG.enabled)) != 0 }
}

#[inline(always)]
fn drill_on() -> bool {
    // SAFETY: as above.
    unsafe { read_volatile(addr_of!(EVENT_CONFIG.drill)) != 0 }
}

/// The slots of DRILL that are active, one bit each; 0 when none is.
#[inline(always)]
fn drill_active() -> u32 {
    DRILL_ACTIVE.get(0).copied().unwrap_or(0)
}

/// Whether exec and exit records of `cgid` are streamed: always in the
/// event modes; while drilling, for the cgroups of any slot. The array
/// lookup keeps the idle sentinel's cost at one inlined load per event.
#[inline(always)]
fn streams(cgid: u64) -> bool {
    if events_on() {
        return true;
    }
    if !drill_on() || drill_active() == 0 {
        return false;
    }
    // SAFETY: the value is only tested for presence, never read.
    unsafe { DRILL_IDS.get(cgid).is_some() }
}

/// A drill-down follows its unit across restarts: a cgroup created at the
/// path an active slot waits on joins DRILL_IDS with that slot, here,
/// before any process can be moved into it. The first slot that matches
/// takes it.
#[inline(always)]
fn drill_match(id: u64, path: *const u8, len: u32) {
    let active = drill_active();
    if active == 0 {
        return;
    }
    for slot in 0..DRILL_SLOTS as u32 {
        if active & (1 << slot) == 0 {
            continue;
        }
        let Some(d) = DRILL.get(slot) else { continue };
        if d.active == 0 || d.len == 0 || d.len != len || !same_path(path, d, len) {
            continue;
        }
        match DRILL_IDS.insert(id, slot, 0) {
            Ok(()) => diag!(info, "drill: cgroup {} joins slot {}", id, slot),
            Err(e) => diag!(
                warn,
                "drill: cgroup {} not followed by slot {}: DRILL_IDS insert failed ({}), full at {} \
                 cgroups?",
                id,
                slot,
                e,
                DRILL_MAX_IDS
            ),
        }
        return;
    }
}

/// Whether the `len` bytes at `path` (a reserved cgroup record's path)
/// are the slot's path.
///
/// The paths are compared a word at a time over a fixed length, with the
/// bytes past `len` masked off: a loop whose trip count depends on `len`
/// is compiled into pointer increments that 5.10's and 6.1's verifiers
/// cannot bound (seen in the VM tests).
#[inline(always)]
fn same_path(path: *const u8, d: &DrillPath, len: u32) -> bool {
    let mut diff = 0u64;
    for k in 0..DRILL_PATH_MAX / 8 {
        let off = (k * 8) as u32;
        let mask = if len >= off + 8 {
            u64::MAX
        } else if len <= off {
            0
        } else {
            (1u64 << ((len - off) * 8)) - 1
        };
        // SAFETY: k * 8 + 8 <= DRILL_PATH_MAX < CGROUP_PATH_MAX, so both
        // words lie inside the reserved record and the map value; both
        // arrays start 8-aligned (offsets 24 and 8 of 8-aligned records).
        let (a, b) = unsafe {
            (
                *(path.add(k * 8) as *const u64),
                *(d.path.as_ptr().add(k * 8) as *const u64),
            )
        };
        diff |= (a ^ b) & mask;
    }
    diff == 0
}

/// The wakeup a record asks for: the default (wake a waiting reader) when
/// `wake_bytes` is zero, else none until that many bytes wait.
#[inline(always)]
fn submit_flags(ring: &RingBuf, wake_bytes: &u32) -> u64 {
    let wake_bytes = layout_field(wake_bytes);
    if wake_bytes == 0 {
        return 0;
    }
    if ring.query(BPF_RB_AVAIL_DATA as u64) >= u64::from(wake_bytes) {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

#[inline(always)]
fn cgroup_submit_flags() -> u64 {
    // SAFETY: addr_of! on a static never creates an invalid reference.
    submit_flags(&MKDIR_EVENTS, unsafe {
        &*addr_of!(EVENT_CONFIG.cgroups_wake_bytes)
    })
}

#[inline(always)]
fn event_submit_flags() -> u64 {
    // SAFETY: as above.
    submit_flags(&EVENTS, unsafe {
        &*addr_of!(EVENT_CONFIG.events_wake_bytes)
    })
}

#[inline(always)]
fn fork_events_on() -> bool {
    // SAFETY: as above.
    unsafe { read_volatile(addr_of!(EVENT_CONFIG.forks)) != 0 }
}

#[inline(always)]
fn count_drop(k: u32) {
    if let Some(p) = EVENT_DROPS.get_ptr_mut(k) {
        // SAFETY: per-CPU slot, see bump_stat.
        unsafe { *p += 1 };
    }
}

#[inline(always)]
fn now_ns() -> u64 {
    // SAFETY: helper without arguments.
    unsafe { generated::bpf_ktime_get_ns() }
}

/// The process's start time: its leader's, which exec keeps (de_thread
/// copies it), so (tgid, start) names one process for its whole life.
#[inline(always)]
fn process_start(task: u64) -> u64 {
    load(leader_of(task), off!(task_start_time))
}

/// The task's group leader; the task itself if that cannot be read.
#[inline(always)]
fn leader_of(task: u64) -> u64 {
    match load(task, off!(task_group_leader)) {
        0 => task,
        l => l,
    }
}

#[inline(always)]
fn parent_tgid(task: u64) -> u32 {
    load(load(task, off!(task_real_parent)), off!(task_tgid))
}

/// A task's `comm` by two plain loads (see [`load`]) instead of a helper
/// call; `task` must be typed by BTF, as for [`load`].
#[inline(always)]
fn load_comm(task: u64) -> [u8; 16] {
    let off = off!(task_comm);
    let lo: u64 = load(task, off);
    let hi: u64 = load(task, off + 8);
    let mut c = [0u8; 16];
    c[..8].copy_from_slice(&lo.to_le_bytes());
    c[8..].copy_from_slice(&hi.to_le_bytes());
    c
}

#[inline(always)]
fn comm() -> [u8; 16] {
    bpf_get_current_comm().unwrap_or([0; 16])
}

/// The child's cgroup, not the parent's: with CLONE_INTO_CGROUP (systemd,
/// container runtimes) a child starts life elsewhere, and the fork belongs to
/// the unit it was created for. Zero when unknown (no cgroup has id 0).
#[inline(always)]
fn task_cgroup(task: u64) -> u64 {
    let cset: u64 = load(task, off!(task_cgroups));
    let cgrp: u64 = load(cset, off!(css_set_dfl_cgrp));
    let kn: u64 = load(cgrp, off!(cgroup_kn));
    load(kn, off!(kernfs_node_id))
}

#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> i32 {
    if !layout_ready() {
        return 0;
    }
    let child: u64 = ctx.arg(1);
    let pid: i32 = load(child, off!(task_pid));
    let tgid: i32 = load(child, off!(task_tgid));
    let cgid = match task_cgroup(child) {
        0 => {
            bump_stat(stat::READ_FAILED);
            diag!(
                warn,
                "fork: the cgroup of child {} is unreadable; counted in its parent's",
                pid
            );
            current_cgroup()
        }
        id => id,
    };
    // A forked task never has tgid 0 (that is the idle task's).
    let thread = if tgid == 0 {
        bump_stat(stat::READ_FAILED);
        diag!(
            warn,
            "fork: the tgid of child {} is unreadable; counted as a process",
            pid
        );
        false
    } else {
        pid != tgid
    };
    let _ = with_counters(cgid, |c| if thread { c.threads += 1 } else { c.forks += 1 });
    if !thread && events_on() && fork_events_on() {
        let parent: u64 = ctx.arg(0);
        match EVENTS.reserve::<ForkEvent>(0) {
            Some(mut e) => {
                e.write(ForkEvent {
                    kind: kind::FORK,
                    parent_pid: load(parent, off!(task_pid)),
                    parent_tgid: load(parent, off!(task_tgid)),
                    child_pid: pid as u32,
                    ts_ns: now_ns(),
                    child_start_ns: load(child, off!(task_start_time)),
                    cgroup_id: cgid,
                    // The forking task is the current one.
                    comm: load_comm(parent),
                });
                e.submit(event_submit_flags());
            }
            None => count_drop(kind::FORK),
        }
    }
    0
}

/// `sched_process_exec(struct task_struct *p, pid_t old_pid, struct
/// linux_binprm *bprm)`.
#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(ctx: BtfTracePointContext) -> i32 {
    let cgid = current_cgroup();
    let _ = with_counters(cgid, |c| c.execs += 1);
    if layout_ready() && streams(cgid) {
        emit_exec(&ctx, cgid);
    }
    0
}

#[inline(always)]
fn emit_exec(ctx: &BtfTracePointContext, cgid: u64) {
    let Some(mut entry) = EVENTS.reserve::<ExecEvent>(0) else {
        count_drop(kind::EXEC);
        return;
    };
    let task: u64 = ctx.arg(0);
    let bprm: u64 = ctx.arg(2);
    let rec = entry.as_mut_ptr();
    let mut flags = 0u32;
    // SAFETY: `rec` is a reserved record of our type; the uninitialised
    // memory is written through raw pointers only.
    unsafe {
        addr_of_mut!((*rec).kind).write(kind::EXEC);
        addr_of_mut!((*rec).pid).write(load(task, off!(task_pid)));
        addr_of_mut!((*rec).tgid).write(load(task, off!(task_tgid)));
        let parent: u64 = load(task, off!(task_real_parent));
        addr_of_mut!((*rec).ppid).write(load(parent, off!(task_tgid)));
        addr_of_mut!((*rec).uid).write(bpf_get_current_uid_gid() as u32);
        addr_of_mut!((*rec).ts_ns).write(now_ns());
        addr_of_mut!((*rec).start_ns).write(process_start(task));
        addr_of_mut!((*rec).cgroup_id).write(cgid);
        // `task` is the current task: its comm is the new image's name.
        addr_of_mut!((*rec).comm).write(load_comm(task));
        addr_of_mut!((*rec).parent_comm).write(load_comm(parent));

        let fname: u64 = load(bprm, off!(binprm_filename));
        let n = generated::bpf_probe_read_kernel_str(
            addr_of_mut!((*rec).filename) as *mut c_void,
            FILENAME_MAX as u32,
            fname as *const c_void,
        );
        let flen = if n > 0 { n as u32 - 1 } else { 0 };
        // A full buffer may hold the whole name or a cut one: the byte the
        // NUL replaced tells.
        if flen as usize == FILENAME_MAX - 1 {
            let last: Option<u8> = read(fname, (FILENAME_MAX - 1) as u32);
            if last.is_some_and(|b| b != 0) {
                flags |= FILENAME_TRUNCATED;
            }
        }
        addr_of_mut!((*rec).filename_len).write(flen);

        // The new image's argument vector, NUL-separated, from its stack.
        let mm: u64 = load(task, off!(task_mm));
        let start: u64 = load(mm, off!(mm_arg_start));
        let end: u64 = load(mm, off!(mm_arg_end));
        let mut len = end.saturating_sub(start);
        if len > ARGS_MAX as u64 {
            len = ARGS_MAX as u64;
            flags |= ARGS_TRUNCATED;
        }
        let mut alen = 0u32;
        if start != 0 && len > 0 {
            let r = generated::bpf_probe_read_user(
                addr_of_mut!((*rec).args) as *mut c_void,
                len as u32,
                start as *const c_void,
            );
            if r == 0 {
                alen = len as u32;
            } else {
                flags |= ARGS_UNREADABLE;
            }
        }
        addr_of_mut!((*rec).args_len).write(alen);
        addr_of_mut!((*rec).flags).write(flags);
    }
    entry.submit(event_submit_flags());
}

/// The status wait(2) will report for the process whose last thread is
/// `task`: the group exit code once the group is exiting, else the leader's
/// own exit code (the rule of wait_task_zombie()). `leader` is
/// [`leader_of`] the task.
#[inline(always)]
fn process_exit_code(task: u64, leader: u64) -> Option<u32> {
    let signal: u64 = load(task, off!(task_signal));
    if signal == 0 {
        return None;
    }
    let flags: u32 = load(signal, off!(signal_flags));
    // Both read, then one chosen: reading one or the other lets LLVM pick
    // the base pointer and the offset by two separate branches, and older
    // verifiers then try the mixed pair ("access beyond struct
    // signal_struct", seen on 5.10 and 6.1).
    let group: u32 = load(signal, off!(signal_group_exit_code));
    let own: u32 = load(leader, off!(task_exit_code));
    Some(if flags & SIGNAL_GROUP_EXIT != 0 {
        group
    } else {
        own
    })
}

#[inline(always)]
fn count_exit(task: u64, group_dead: bool) {
    let cgid = current_cgroup();
    if !group_dead {
        let _ = with_counters(cgid, |c| c.thread_exits += 1);
        return;
    }
    // Loaded once for both the status and the start time.
    let leader = leader_of(task);
    let code = process_exit_code(task, leader);
    let class = match code {
        Some(code) => classify_exit(code),
        None => {
            bump_stat(stat::READ_FAILED);
            diag!(
                warn,
                "exit: the status of process {} is unreadable; counted as failed",
                current_tgid()
            );
            // Unknown status: count the exit, as failed rather than clean.
            ExitClass::Failed
        }
    };
    let hist = with_counters(cgid, |c| match class {
        ExitClass::Clean => c.exit_clean += 1,
        ExitClass::Failed => c.exit_failed += 1,
        ExitClass::Signaled => c.exit_signaled += 1,
        ExitClass::CoreDumped => c.exit_core += 1,
    });

    let now = now_ns();
    let start: u64 = load(leader, off!(task_start_time));
    match hist {
        Some(h) => {
            let b = lifetime_bucket(now.saturating_sub(start)) & 63;
            // SAFETY: this CPU's histogram, see with_counters; b < 64.
            unsafe { (*h).buckets[b] += 1 };
        }
        None => bump_stat(stat::LIFETIMES_FULL),
    }
    if streams(cgid) {
        match EVENTS.reserve::<ExitEvent>(0) {
            Some(mut e) => {
                e.write(ExitEvent {
                    kind: kind::EXIT,
                    pid: load(task, off!(task_pid)),
                    tgid: load(task, off!(task_tgid)),
                    ppid: parent_tgid(task),
                    uid: bpf_get_current_uid_gid() as u32,
                    // An unreadable status was counted as failed above.
                    status: code.unwrap_or(1 << 8),
                    ts_ns: now,
                    start_ns: start,
                    cgroup_id: cgid,
                    // The exiting task is the current one.
                    comm: load_comm(task),
                });
                e.submit(event_submit_flags());
            }
            None => count_drop(kind::EXIT),
        }
    }
}

/// Linux 6.16+: `sched_process_exit(struct task_struct *p, bool group_dead)`.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(ctx: BtfTracePointContext) -> i32 {
    if !layout_ready() {
        return 0;
    }
    let task: u64 = ctx.arg(0);
    let group_dead: u64 = ctx.arg(1);
    count_exit(task, group_dead & 0xff != 0);
    0
}

/// Older kernels pass only the task. do_exit() has already decremented
/// `signal->live`, so zero means this is the last thread. Two threads exiting
/// at the same instant can both read zero; the loader prefers the exact
/// program above whenever the kernel offers it.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit_legacy(ctx: BtfTracePointContext) -> i32 {
    if !layout_ready() {
        return 0;
    }
    let task: u64 = ctx.arg(0);
    let signal: Option<u64> = read(task, off!(task_signal));
    let live: Option<i32> = signal.and_then(|s| read(s, off!(signal_live)));
    let group_dead = match live {
        Some(n) => n == 0,
        None => {
            bump_stat(stat::READ_FAILED);
            diag!(
                warn,
                "exit: signal_struct.live of process {} is unreadable; counted as its last thread",
                current_tgid()
            );
            true
        }
    };
    count_exit(task, group_dead);
    0
}

/// `cgroup_mkdir(struct cgroup *cgrp, const char *path)`. Counters are read
/// only once per interval, and a unit that starts and stops between two
/// readings has no directory left to look up by then; its name is caught
/// here, as it is created.
#[btf_tracepoint(function = "cgroup_mkdir")]
pub fn cgroup_mkdir(ctx: BtfTracePointContext) -> i32 {
    cgroup_change(&ctx, false);
    0
}

/// `cgroup_rmdir(struct cgroup *cgrp, const char *path)`: a removed cgroup
/// has no task left, and every task's exit was counted before it left, so
/// its counters are final once this record is read.
#[btf_tracepoint(function = "cgroup_rmdir")]
pub fn cgroup_rmdir(ctx: BtfTracePointContext) -> i32 {
    cgroup_change(&ctx, true);
    0
}

#[inline(always)]
fn cgroup_change(ctx: &BtfTracePointContext, removed: bool) {
    if !layout_ready() {
        return;
    }
    let cgrp: u64 = ctx.arg(0);
    let path: u64 = ctx.arg(1);
    // v1 hierarchies number their directories independently; only the
    // default hierarchy (id 0) shares the counters' id space. Failed reads
    // become values no cgroup has (hierarchy ids are >= 0, kernfs ids
    // >= 1) rather than a match on two Options: its None arms leave their
    // payload registers unset, and with the log code in this program LLVM
    // read one of them anyway, which the verifier rejects ("!read_ok").
    let root: u64 = read(cgrp, off!(cgroup_root)).unwrap_or(0);
    let kn: u64 = read(cgrp, off!(cgroup_kn)).unwrap_or(0);
    let hierarchy: i32 = read(root, off!(cgroup_root_hierarchy_id)).unwrap_or(-1);
    let id: u64 = read(kn, off!(kernfs_node_id)).unwrap_or(0);
    if hierarchy < 0 || id == 0 {
        bump_stat(stat::READ_FAILED);
        bump_stat(stat::NAMES_LOST);
        diag!(
            warn,
            "cgroup_{}: the cgroup's hierarchy or id is unreadable; its name is lost",
            if removed { "rmdir" } else { "mkdir" }
        );
        return;
    }
    if hierarchy != 0 {
        return;
    }
    let Some(mut entry) = MKDIR_EVENTS.reserve::<CgroupMkdir>(0) else {
        bump_stat(stat::NAMES_LOST);
        return;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` is a reserved ring buffer record of our type; fields are
    // written through raw pointers because the memory is uninitialised.
    unsafe {
        addr_of_mut!((*rec).id).write(id);
        addr_of_mut!((*rec).ts_ns).write(now_ns());
        addr_of_mut!((*rec).removed).write(removed as u32);
    }
    if removed {
        // SAFETY: as above.
        unsafe { addr_of_mut!((*rec).len).write(0) };
        entry.submit(cgroup_submit_flags());
        return;
    }
    // SAFETY: as above.
    let n = unsafe {
        generated::bpf_probe_read_kernel_str(
            addr_of_mut!((*rec).path) as *mut c_void,
            CGROUP_PATH_MAX as u32,
            path as *const c_void,
        )
    };
    if n <= 0 {
        entry.discard(0);
        bump_stat(stat::NAMES_LOST);
        diag!(
            warn,
            "cgroup_mkdir: the path of cgroup {} is unreadable ({}); its name is lost",
            id,
            n
        );
        return;
    }
    let len = n as u32 - 1;
    // SAFETY: as above; n counts the NUL, and is at most CGROUP_PATH_MAX.
    unsafe { addr_of_mut!((*rec).len).write(len) };
    if drill_on() {
        // SAFETY: as above.
        drill_match(id, unsafe { addr_of!((*rec).path) } as *const u8, len);
    }
    entry.submit(cgroup_submit_flags());
}

/// Pages counted in one of mm->rss_stat's per-CPU counters (its central
/// count: within a batch per CPU of the exact sum, which is what the OOM
/// killer's own report prints too).
#[inline(always)]
fn rss_counter(mm: u64, index: u32) -> u64 {
    let size = off!(percpu_counter_size);
    let at = off!(mm_rss_stat) + index * size + off!(percpu_counter_count);
    read::<i64>(mm, at).map_or(0, |n| n.max(0) as u64)
}

/// A page_counter.max at or above this is "no limit" (PAGE_COUNTER_MAX
/// is LONG_MAX / PAGE_SIZE, about 2^51 with 4 KiB pages).
const NO_LIMIT_PAGES: u64 = 1 << 50;

/// The memory cgroup whose limit makes this an OOM kill of its own:
/// (oom_scope, hierarchy id, cgroup id). Walks `page_counter.parent` from
/// the task's memory cgroup up, and takes the first counter (all but) at
/// its max.
#[inline(always)]
fn oom_scope_of(task: u64) -> (u32, u32, u64) {
    const UNKNOWN: (u32, u32, u64) = (oom_scope::UNKNOWN, 0, 0);
    if off!(memcg_layout) == 0 {
        return UNKNOWN;
    }
    let Some(cset) = read::<u64>(task, off!(task_cgroups)) else {
        return UNKNOWN;
    };
    let slot = off!(css_set_subsys) + 8 * off!(memory_cgrp_id);
    let css: u64 = match read(cset, slot) {
        Some(c) if c != 0 => c,
        _ => return UNKNOWN,
    };
    let mut pc = css - off!(mem_cgroup_css) as u64 + off!(mem_cgroup_memory) as u64;
    for _ in 0..MEMCG_MAX_DEPTH {
        let (Some(usage), Some(max)) = (
            read::<i64>(pc, off!(page_counter_usage)),
            read::<u64>(pc, off!(page_counter_max)),
        ) else {
            return UNKNOWN;
        };
        if max < NO_LIMIT_PAGES
            && (usage.max(0) as u64).saturating_add(MEMCG_LIMIT_SLACK_PAGES) >= max
        {
            let css = pc - off!(mem_cgroup_memory) as u64 + off!(mem_cgroup_css) as u64;
            let cgrp: u64 = read(css, off!(css_cgroup)).unwrap_or(0);
            let kn: u64 = read(cgrp, off!(cgroup_kn)).unwrap_or(0);
            let root: u64 = read(cgrp, off!(cgroup_root)).unwrap_or(0);
            return (
                oom_scope::MEMCG,
                read(root, off!(cgroup_root_hierarchy_id)).unwrap_or(0),
                read(kn, off!(kernfs_node_id)).unwrap_or(0),
            );
        }
        match read::<u64>(pc, off!(page_counter_parent)) {
            Some(p) if p != 0 => pc = p,
            Some(_) => return (oom_scope::GLOBAL, 0, 0),
            None => return UNKNOWN,
        }
    }
    // Deeper than followed: no verdict.
    UNKNOWN
}

/// `mark_victim(struct task_struct *task, uid_t uid)`: streamed in every
/// mode, whatever EVENT_CONFIG says.
#[btf_tracepoint(function = "mark_victim")]
pub fn mark_victim(ctx: BtfTracePointContext) -> i32 {
    if !layout_ready() {
        return 0;
    }
    let task: u64 = ctx.arg(0);
    let uid: u64 = ctx.arg(1);
    let rss_pages = if off!(percpu_counter_size) == 0 {
        u64::MAX
    } else {
        let mm: u64 = read(task, off!(task_mm)).unwrap_or(0);
        // MM_FILEPAGES, MM_ANONPAGES, MM_SHMEMPAGES (2 is swap entries).
        rss_counter(mm, 0) + rss_counter(mm, 1) + rss_counter(mm, 3)
    };
    // SAFETY: helper without pointer arguments.
    let killer = unsafe { generated::bpf_get_current_pid_tgid() };
    let (scope, memcg_hierarchy, memcg_id) = oom_scope_of(task);
    let Some(mut e) = EVENTS.reserve::<OomEvent>(0) else {
        count_drop(kind::OOM);
        return 0;
    };
    e.write(OomEvent {
        kind: kind::OOM,
        pid: read(task, off!(task_pid)).unwrap_or(0),
        tgid: read(task, off!(task_tgid)).unwrap_or(0),
        uid: uid as u32,
        killer_pid: killer as u32,
        killer_tgid: (killer >> 32) as u32,
        scope,
        memcg_hierarchy,
        flags: 0,
        _pad: 0,
        memcg_id,
        ts_ns: now_ns(),
        start_ns: process_start(task),
        cgroup_id: task_cgroup(task),
        killer_cgroup_id: current_cgroup(),
        rss_pages,
        comm: read(task, off!(task_comm)).unwrap_or([0; 16]),
        killer_comm: comm(),
    });
    e.submit(0);
    0
}

/// `mark_victim(int pid)`, on older kernels: the tracepoint gives only the
/// victim's pid, so the record carries that and the killer; userspace
/// looks the victim up in /proc ([`OOM_PID_ONLY`]).
#[btf_tracepoint(function = "mark_victim")]
pub fn mark_victim_pid(ctx: BtfTracePointContext) -> i32 {
    if !layout_ready() {
        return 0;
    }
    let pid: u64 = ctx.arg(0);
    // SAFETY: helper without pointer arguments.
    let killer = unsafe { generated::bpf_get_current_pid_tgid() };
    let Some(mut e) = EVENTS.reserve::<OomEvent>(0) else {
        count_drop(kind::OOM);
        return 0;
    };
    e.write(OomEvent {
        kind: kind::OOM,
        pid: pid as u32,
        tgid: 0,
        uid: 0,
        killer_pid: killer as u32,
        killer_tgid: (killer >> 32) as u32,
        scope: oom_scope::UNKNOWN,
        memcg_hierarchy: 0,
        flags: OOM_PID_ONLY,
        _pad: 0,
        memcg_id: 0,
        ts_ns: now_ns(),
        start_ns: 0,
        cgroup_id: 0,
        killer_cgroup_id: current_cgroup(),
        rss_pages: u64::MAX,
        comm: [0; 16],
        killer_comm: comm(),
    });
    e.submit(0);
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
