//! Records shared by the kernel probe and userspace.
//!
//! Everything here crosses the kernel/user boundary byte for byte, so every
//! type is `#[repr(C)]` and built only from fields of one width: no hidden
//! padding, nothing that differs between the bpfel and the host compilation.
#![no_std]

/// Spawn counters for one cgroup. The probe keeps one per CPU per cgroup;
/// userspace sums the CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// New processes (clone/fork/vfork without CLONE_THREAD).
    pub forks: u64,
    /// New threads (clone with CLONE_THREAD).
    pub threads: u64,
    /// Successful execve/execveat calls.
    pub execs: u64,
    /// Processes whose last thread exited with status 0.
    pub exit_clean: u64,
    /// Processes that exited with a non-zero status.
    pub exit_failed: u64,
    /// Processes killed by a signal, without a core dump.
    pub exit_signaled: u64,
    /// Processes killed by a signal that dumped core.
    pub exit_core: u64,
    /// Threads that exited while other threads of their process lived on.
    pub thread_exits: u64,
}

impl Counters {
    pub const ZERO: Self = Self {
        forks: 0,
        threads: 0,
        execs: 0,
        exit_clean: 0,
        exit_failed: 0,
        exit_signaled: 0,
        exit_core: 0,
        thread_exits: 0,
    };

    /// All process exits, whatever their class.
    pub const fn process_exits(&self) -> u64 {
        self.exit_clean + self.exit_failed + self.exit_signaled + self.exit_core
    }

    pub const fn saturating_add(&self, o: &Self) -> Self {
        Self {
            forks: self.forks.saturating_add(o.forks),
            threads: self.threads.saturating_add(o.threads),
            execs: self.execs.saturating_add(o.execs),
            exit_clean: self.exit_clean.saturating_add(o.exit_clean),
            exit_failed: self.exit_failed.saturating_add(o.exit_failed),
            exit_signaled: self.exit_signaled.saturating_add(o.exit_signaled),
            exit_core: self.exit_core.saturating_add(o.exit_core),
            thread_exits: self.thread_exits.saturating_add(o.thread_exits),
        }
    }

    pub const fn saturating_sub(&self, o: &Self) -> Self {
        Self {
            forks: self.forks.saturating_sub(o.forks),
            threads: self.threads.saturating_sub(o.threads),
            execs: self.execs.saturating_sub(o.execs),
            exit_clean: self.exit_clean.saturating_sub(o.exit_clean),
            exit_failed: self.exit_failed.saturating_sub(o.exit_failed),
            exit_signaled: self.exit_signaled.saturating_sub(o.exit_signaled),
            exit_core: self.exit_core.saturating_sub(o.exit_core),
            thread_exits: self.thread_exits.saturating_sub(o.thread_exits),
        }
    }

    pub const fn is_zero(&self) -> bool {
        self.forks == 0
            && self.threads == 0
            && self.execs == 0
            && self.process_exits() == 0
            && self.thread_exits == 0
    }
}

/// Exit classes as the probe decides them from a wait(2)-style status word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitClass {
    Clean,
    Failed,
    Signaled,
    CoreDumped,
}

/// Classifies a kernel exit code (the value wait(2) reports): bits 0-6 are
/// the killing signal, bit 7 the core-dump flag, bits 8-15 the exit status.
#[inline(always)]
pub const fn classify_exit(code: u32) -> ExitClass {
    if code & 0x7f != 0 {
        if code & 0x80 != 0 {
            ExitClass::CoreDumped
        } else {
            ExitClass::Signaled
        }
    } else if (code >> 8) & 0xff == 0 {
        ExitClass::Clean
    } else {
        ExitClass::Failed
    }
}

/// `SIGNAL_GROUP_EXIT` from include/linux/sched/signal.h: set on
/// `signal_struct.flags` once the whole group is exiting, after which
/// `group_exit_code` holds the status that wait(2) will report.
pub const SIGNAL_GROUP_EXIT: u32 = 0x4;

/// Written into [`KernelLayout::magic`] by userspace, so the probe can tell a
/// layout filled from BTF from the zeroed default and refuse to read through
/// offsets nobody set.
pub const LAYOUT_MAGIC: u32 = 0x5350_4e31; // "SPN1"

/// Byte offsets of the kernel struct fields the probe reads. Userspace fills
/// this from the running kernel's BTF at load time and hands it to the probe
/// as the read-only global [`KERNEL_LAYOUT_SYMBOL`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelLayout {
    pub magic: u32,
    /// `task_struct.pid`
    pub task_pid: u32,
    /// `task_struct.tgid`
    pub task_tgid: u32,
    /// `task_struct.exit_code`
    pub task_exit_code: u32,
    /// `task_struct.group_leader`
    pub task_group_leader: u32,
    /// `task_struct.signal`
    pub task_signal: u32,
    /// `task_struct.cgroups`
    pub task_cgroups: u32,
    /// `signal_struct.live`
    pub signal_live: u32,
    /// `signal_struct.flags`
    pub signal_flags: u32,
    /// `signal_struct.group_exit_code`
    pub signal_group_exit_code: u32,
    /// `css_set.dfl_cgrp`
    pub css_set_dfl_cgrp: u32,
    /// `cgroup.kn`
    pub cgroup_kn: u32,
    /// `cgroup.root`
    pub cgroup_root: u32,
    /// `cgroup_root.hierarchy_id`
    pub cgroup_root_hierarchy_id: u32,
    /// `task_struct.real_parent`
    pub task_real_parent: u32,
    /// `task_struct.start_time` (CLOCK_MONOTONIC ns, as bpf_ktime_get_ns)
    pub task_start_time: u32,
    /// `task_struct.mm`
    pub task_mm: u32,
    /// `mm_struct.arg_start`
    pub mm_arg_start: u32,
    /// `mm_struct.arg_end`
    pub mm_arg_end: u32,
    /// `linux_binprm.filename`
    pub binprm_filename: u32,
    /// `task_struct.comm`
    pub task_comm: u32,
    /// `mm_struct.rss_stat` (an array of `struct percpu_counter` since
    /// Linux 6.2); 0 when the layout is another, and RSS is not read.
    pub mm_rss_stat: u32,
    /// `sizeof(struct percpu_counter)`
    pub percpu_counter_size: u32,
    /// `percpu_counter.count`
    pub percpu_counter_count: u32,
    /// `kernfs_node.id`
    pub kernfs_node_id: u32,
    /// `css_set.subsys` (an array of `cgroup_subsys_state *`)
    pub css_set_subsys: u32,
    /// The memory controller's index in it (`memory_cgrp_id`).
    pub memory_cgrp_id: u32,
    /// `mem_cgroup.css`
    pub mem_cgroup_css: u32,
    /// `mem_cgroup.memory` (a `struct page_counter`)
    pub mem_cgroup_memory: u32,
    /// `page_counter.usage`, in pages
    pub page_counter_usage: u32,
    /// `page_counter.max`, in pages
    pub page_counter_max: u32,
    /// `page_counter.parent`
    pub page_counter_parent: u32,
    /// `cgroup_subsys_state.cgroup`
    pub css_cgroup: u32,
    /// 1 when the memcg fields above were all found: OOM kills are then
    /// classified global or memcg-limited.
    pub memcg_layout: u32,
}

pub const KERNEL_LAYOUT_SYMBOL: &str = "KERNEL_LAYOUT";

/// Map names, shared so that a rename cannot split the two sides.
pub const COUNTERS_MAP: &str = "COUNTERS";
pub const OVERFLOW_MAP: &str = "OVERFLOW";
pub const PROBE_STATS_MAP: &str = "PROBE_STATS";
pub const MKDIR_EVENTS_MAP: &str = "MKDIR_EVENTS";

/// Bytes of ring buffer for [`CgroupMkdir`] records: about a thousand
/// cgroup creations between two drains before any is lost (and counted).
pub const MKDIR_EVENTS_BYTES: u32 = 1 << 20;

/// The kernel formats the path handed to the cgroup tracepoints into a
/// buffer of this size (TRACE_CGROUP_PATH_LEN in kernel/cgroup/).
pub const CGROUP_PATH_MAX: usize = 1024;

/// A cgroup2 directory was created (or, for the modes that ask, removed).
/// Streamed so that a cgroup that lives shorter than one poll interval can
/// still be named after it is gone, and so that the sentinel can fold a
/// removed cgroup's final counts into its unit and free its map entries.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CgroupMkdir {
    /// The cgroup's id, as the counters are keyed.
    pub id: u64,
    /// bpf_ktime_get_ns() at the tracepoint: a systemd service gets a new
    /// cgroup at every (re)start, so creation times are its start times.
    pub ts_ns: u64,
    /// Bytes of `path` in use, without the terminating NUL.
    pub len: u32,
    /// 1 for an rmdir (no path is read), 0 for a mkdir.
    pub removed: u32,
    /// Path from the cgroup2 root ("/system.slice/foo.service"), as the
    /// kernel's tracepoint formats it; possibly truncated when `len` is
    /// `CGROUP_PATH_MAX - 1`.
    pub path: [u8; CGROUP_PATH_MAX],
}

/// Default capacity of [`COUNTERS_MAP`], in cgroups.
pub const DEFAULT_MAX_CGROUPS: u32 = 10_240;

pub const EVENTS_MAP: &str = "EVENTS";
/// A `u32` global: non-zero keeps the probe's diagnostic log (aya-log) on
/// its rare paths; zero, the default, lets the verifier prune that code.
pub const LOG_ENABLED_SYMBOL: &str = "LOG_ENABLED";
/// aya-log's ring buffer, created by aya-log-ebpf in the probe.
pub const LOG_MAP: &str = "AYA_LOGS";
pub const EVENT_DROPS_MAP: &str = "EVENT_DROPS";
pub const EVENT_CONFIG_SYMBOL: &str = "EVENT_CONFIG";

/// Default size of the per-event ring buffer when a mode streams events.
/// At the highest spawn rates of a 2-CPU machine (about 2,200 exec and
/// exit pairs a second, 1.5 MB/s of records) it holds over 2 s, against a
/// reader that drains it every 100 ms. It is also memory at start: the
/// reader's mapping of it counts twice in RSS (the data area is mapped
/// twice in a row, so that a record wrapping its end reads as one).
pub const DEFAULT_EVENT_BUFFER_BYTES: u32 = 4 << 20;

/// What the probe streams, set by userspace at load time. With `enabled`
/// and `drill` zero the verifier prunes the event code: counters-only modes
/// pay nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventConfig {
    /// Stream exec and exit records.
    pub enabled: u32,
    /// Also stream fork records.
    pub forks: u32,
    /// Keep the drill-down code: exec and exit records of the cgroups in
    /// [`DRILL_IDS_MAP`] only, while a slot of [`DRILL_MAP`] is active.
    pub drill: u32,
    /// Zero: every cgroup record wakes a waiting reader. Otherwise records
    /// wake it only once this many bytes wait in the ring: a mode that
    /// reads on its own schedule (the sentinel) then wakes at its interval,
    /// and early only when records would otherwise be lost, or, when it
    /// frees removed cgroups' counters, before a burst of transient units
    /// could fill the counter map.
    pub cgroups_wake_bytes: u32,
    /// The same for exec, exit and fork records. Waking the reader costs
    /// the traced task an irq_work per record (measured on a 2-core VM:
    /// 16 µs of a 17 µs exec program run), so a mode that polls anyway
    /// (`trace` looks every 100 ms) asks for a wakeup only when the ring
    /// is half full. OOM records always wake.
    pub events_wake_bytes: u32,
}

pub const DRILL_MAP: &str = "DRILL";
pub const DRILL_IDS_MAP: &str = "DRILL_IDS";
pub const DRILL_ACTIVE_MAP: &str = "DRILL_ACTIVE";
/// Drill-downs that can run at once, each in a slot of [`DRILL_MAP`], so
/// that a loop can be named while other units' candidates are judged.
pub const DRILL_SLOTS: usize = 8;
const _: () = assert!(DRILL_SLOTS <= 32, "DRILL_ACTIVE_MAP is a 32-bit mask");
/// Cgroups one drill-down follows (one unit's successive cgroups; a bigger
/// set is a sign the drill has run long enough).
pub const DRILL_IDS_PER_SLOT: u32 = 64;
/// Cgroups streamed at once by all drill-downs together.
pub const DRILL_MAX_IDS: u32 = DRILL_SLOTS as u32 * DRILL_IDS_PER_SLOT;
/// Longest cgroup path a drill-down can follow across re-creations. A
/// multiple of 8: the probe compares paths a word at a time.
pub const DRILL_PATH_MAX: usize = 256;
const _: () = assert!(DRILL_PATH_MAX.is_multiple_of(8) && DRILL_PATH_MAX < CGROUP_PATH_MAX);

/// One slot of [`DRILL_MAP`]: while `active` (and its bit is set in
/// [`DRILL_ACTIVE_MAP`]), a cgroup created at exactly `path` joins
/// [`DRILL_IDS_MAP`] in the kernel, with the slot's index as its value,
/// race-free, so a unit's next restart (a new cgroup) is streamed from its
/// first exec and routed to the drill-down that waits for it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrillPath {
    pub active: u32,
    /// Bytes of `path` in use, without a NUL; 0 matches no creation.
    pub len: u32,
    pub path: [u8; DRILL_PATH_MAX],
}

impl DrillPath {
    pub const OFF: Self = Self {
        active: 0,
        len: 0,
        path: [0; DRILL_PATH_MAX],
    };
}

/// Record kinds; also the slots of the per-CPU [`EVENT_DROPS_MAP`].
pub mod kind {
    pub const EXEC: u32 = 0;
    pub const EXIT: u32 = 1;
    pub const FORK: u32 = 2;
    /// OOM kills are streamed in every mode: they are rare and must never
    /// be missed.
    pub const OOM: u32 = 3;
    pub const COUNT: u32 = 4;
}

/// The OOM killer chose a victim (oom:mark_victim). The tracepoint runs in
/// the killer's context, so the victim's cgroup is read from the victim.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OomEvent {
    /// [`kind::OOM`]
    pub kind: u32,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    /// The task whose allocation set off the kill.
    pub killer_pid: u32,
    pub killer_tgid: u32,
    /// [`oom_scope`]: a global or a memory-cgroup-limited kill.
    pub scope: u32,
    /// `hierarchy_id` of the limiting memory cgroup's hierarchy: 0 for
    /// cgroup2, else a cgroup v1 hierarchy.
    pub memcg_hierarchy: u32,
    /// [`OOM_PID_ONLY`] or 0.
    pub flags: u32,
    /// Explicit so the record has no hidden padding.
    pub _pad: u32,
    /// The limiting memory cgroup's id in that hierarchy (0 unless
    /// `scope` is [`oom_scope::MEMCG`]).
    pub memcg_id: u64,
    pub ts_ns: u64,
    pub start_ns: u64,
    /// The victim's cgroup2 id.
    pub cgroup_id: u64,
    pub killer_cgroup_id: u64,
    /// File + anon + shmem pages mapped at the kill; `u64::MAX` when the
    /// kernel's layout gives no way to read them.
    pub rss_pages: u64,
    pub comm: [u8; COMM_LEN],
    pub killer_comm: [u8; COMM_LEN],
}

/// What set off an OOM kill. `mark_victim` does not see the kernel's
/// `oom_control`, so the probe walks the victim's memory cgroup and its
/// ancestors: a kill in a cgroup subtree whose limit is (all but) reached
/// is that cgroup's; with none at its limit, the machine ran out.
pub mod oom_scope {
    /// This kernel's layout gave no way to tell, or a read failed.
    pub const UNKNOWN: u32 = 0;
    /// No memory cgroup above the victim was at its limit: the machine
    /// (or a cpuset or mempolicy) ran out of memory.
    pub const GLOBAL: u32 = 1;
    /// A memory cgroup above the victim (or its own) was at its limit.
    pub const MEMCG: u32 = 2;
}

/// `OomEvent::flags`: the kernel named the victim by pid only (its
/// `mark_victim` is the older one); tgid, uid, comm, cgroup, start time
/// and RSS are zero or unknown in the record.
pub const OOM_PID_ONLY: u32 = 1;

/// A cgroup counts as at its limit when fewer pages than this are left:
/// a failed charge is at most a 2 MiB huge page plus a 64-page batch, and
/// the usage can shrink a little between the failure and the kill.
pub const MEMCG_LIMIT_SLACK_PAGES: u64 = 2048;

/// Memory cgroup nesting followed at most, from the victim up.
pub const MEMCG_MAX_DEPTH: usize = 16;

/// Bytes of the exec'd file name kept (as the kernel was asked to run it).
pub const FILENAME_MAX: usize = 256;
/// Bytes of the NUL-separated argument vector kept.
pub const ARGS_MAX: usize = 256;
pub const COMM_LEN: usize = 16;

/// `ExecEvent::flags`
pub const FILENAME_TRUNCATED: u32 = 1;
pub const ARGS_TRUNCATED: u32 = 2;
/// The argument vector could not be read (it is empty in the record).
pub const ARGS_UNREADABLE: u32 = 4;

/// A successful exec, from sched_process_exec.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    /// [`kind::EXEC`]; every record starts with its kind.
    pub kind: u32,
    pub pid: u32,
    pub tgid: u32,
    /// The real parent's tgid.
    pub ppid: u32,
    pub uid: u32,
    /// Bytes of `filename` in use.
    pub filename_len: u32,
    /// Bytes of `args` in use (NUL-separated, last NUL included).
    pub args_len: u32,
    /// [`FILENAME_TRUNCATED`], [`ARGS_TRUNCATED`], [`ARGS_UNREADABLE`].
    pub flags: u32,
    /// bpf_ktime_get_ns() at the event.
    pub ts_ns: u64,
    /// The process's start time (its leader's `start_time`): with `tgid`
    /// it names the process even across pid reuse.
    pub start_ns: u64,
    pub cgroup_id: u64,
    pub comm: [u8; COMM_LEN],
    /// The real parent's comm: who (re)starts this program.
    pub parent_comm: [u8; COMM_LEN],
    pub filename: [u8; FILENAME_MAX],
    pub args: [u8; ARGS_MAX],
}

/// A process exit (its last thread), from sched_process_exit.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExitEvent {
    /// [`kind::EXIT`]
    pub kind: u32,
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    /// The wait(2) status word: exit code << 8, or signal | 0x80 for a core.
    pub status: u32,
    pub ts_ns: u64,
    pub start_ns: u64,
    pub cgroup_id: u64,
    pub comm: [u8; COMM_LEN],
}

/// A new process (not thread), from sched_process_fork.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ForkEvent {
    /// [`kind::FORK`]
    pub kind: u32,
    pub parent_pid: u32,
    pub parent_tgid: u32,
    pub child_pid: u32,
    pub ts_ns: u64,
    pub child_start_ns: u64,
    /// The child's cgroup.
    pub cgroup_id: u64,
    pub comm: [u8; COMM_LEN],
}

/// The value of [`COUNTERS_MAP`]: one cgroup's counters and lifetime
/// histogram on one CPU, in one map entry so that a process exit, which
/// updates both, does one map lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupStats {
    pub counters: Counters,
    pub lifetimes: Lifetimes,
}

impl CgroupStats {
    pub const ZERO: Self = Self {
        counters: Counters::ZERO,
        lifetimes: Lifetimes::ZERO,
    };
}

/// Log2 buckets of process lifetimes in ns: bucket `i` counts lifetimes in
/// [2^i, 2^(i+1)) (bucket 0 also holds 0).
pub const LIFETIME_BUCKETS: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    pub buckets: [u64; LIFETIME_BUCKETS],
}

impl Lifetimes {
    pub const ZERO: Self = Self {
        buckets: [0; LIFETIME_BUCKETS],
    };

    /// Both histograms, bucket by bucket (per-CPU values, or cgroups
    /// folded into one unit).
    pub fn saturating_add(&self, o: &Self) -> Self {
        let mut out = *self;
        for (a, b) in out.buckets.iter_mut().zip(o.buckets.iter()) {
            *a = a.saturating_add(*b);
        }
        out
    }

    /// What was added since `before`, bucket by bucket; a bucket that
    /// shrank (a cgroup id reused) counts from zero rather than wrap.
    pub fn saturating_sub(&self, before: &Self) -> Self {
        let mut out = *self;
        for (a, b) in out.buckets.iter_mut().zip(before.buckets.iter()) {
            *a = a.saturating_sub(*b);
        }
        out
    }

    pub fn is_zero(&self) -> bool {
        self.buckets.iter().all(|&b| b == 0)
    }
}

/// The bucket of a lifetime: floor(log2(ns)), 0 for 0.
///
/// A binary search, not `leading_zeros`: on bpfel that lowers to a popcount
/// sequence whose result the verifier cannot bound, and the bucket indexes
/// a map value. Along each branch here the verifier knows it exactly.
#[inline(always)]
pub const fn lifetime_bucket(ns: u64) -> usize {
    let mut v = ns;
    let mut b = 0;
    if v >> 32 != 0 {
        v >>= 32;
        b += 32;
    }
    if v >> 16 != 0 {
        v >>= 16;
        b += 16;
    }
    if v >> 8 != 0 {
        v >>= 8;
        b += 8;
    }
    if v >> 4 != 0 {
        v >>= 4;
        b += 4;
    }
    if v >> 2 != 0 {
        v >>= 2;
        b += 2;
    }
    if v >> 1 != 0 {
        b += 1;
    }
    b
}

/// Slots of the per-CPU [`PROBE_STATS_MAP`] array.
pub mod stat {
    /// Events whose cgroup found no room in the counters map. They are still
    /// counted, by class, in the overflow map.
    pub const MAP_FULL: u32 = 0;
    /// Kernel reads that failed; the event was still counted, against the
    /// current task's cgroup.
    pub const READ_FAILED: u32 = 1;
    /// Events seen before userspace provided a kernel layout (cannot happen
    /// with the shipped loader, which refuses to attach without one).
    pub const NO_LAYOUT: u32 = 2;
    /// cgroup creations whose record found the ring buffer full (or whose
    /// path could not be read). Userspace falls back to walking the tree.
    pub const NAMES_LOST: u32 = 3;
    /// Process exits whose cgroup found no room in the counters map: their
    /// class is counted in the overflow map, their lifetime nowhere.
    pub const LIFETIMES_FULL: u32 = 4;
    pub const COUNT: u32 = 5;
}

/// Program names in the probe object.
pub mod prog {
    pub const FORK: &str = "sched_process_fork";
    pub const EXEC: &str = "sched_process_exec";
    /// For kernels whose `sched_process_exit` passes `group_dead`.
    pub const EXIT: &str = "sched_process_exit";
    /// For older kernels: `group_dead` is derived from `signal_struct.live`.
    pub const EXIT_LEGACY: &str = "sched_process_exit_legacy";
    pub const MKDIR: &str = "cgroup_mkdir";
    /// Attached only by modes that fold and forget removed cgroups.
    pub const RMDIR: &str = "cgroup_rmdir";
    pub const OOM: &str = "mark_victim";
    /// For kernels whose `mark_victim` passes only the victim's pid.
    pub const OOM_PID_ONLY: &str = "mark_victim_pid";
}

#[cfg(test)]
mod lifetime_tests {
    use super::lifetime_bucket;

    #[test]
    fn buckets_are_floor_log2() {
        assert_eq!(lifetime_bucket(0), 0);
        assert_eq!(lifetime_bucket(1), 0);
        assert_eq!(lifetime_bucket(2), 1);
        assert_eq!(lifetime_bucket(3), 1);
        assert_eq!(lifetime_bucket(1 << 20), 20);
        assert_eq!(lifetime_bucket((1 << 21) - 1), 20);
        assert_eq!(lifetime_bucket(u64::MAX), 63);
        for i in 0..64 {
            assert_eq!(lifetime_bucket(1 << i), i);
            let x = (1u64 << i) | ((1u64 << i) - 1);
            assert_eq!(lifetime_bucket(x), i, "{x:#x}");
        }
    }
}

/// Counters as every JSON output of `trace` writes them: flat, with the
/// process-exit total, and the core-dump class under its long name.
/// Outputs of another shape (the sentinel's state, the exported
/// histograms) serialize through views of their own.
#[cfg(feature = "user")]
impl serde::Serialize for Counters {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut o = s.serialize_struct("Counters", 9)?;
        o.serialize_field("forks", &self.forks)?;
        o.serialize_field("threads", &self.threads)?;
        o.serialize_field("execs", &self.execs)?;
        o.serialize_field("exits", &self.process_exits())?;
        o.serialize_field("exit_clean", &self.exit_clean)?;
        o.serialize_field("exit_failed", &self.exit_failed)?;
        o.serialize_field("exit_signaled", &self.exit_signaled)?;
        o.serialize_field("exit_core_dumped", &self.exit_core)?;
        o.serialize_field("thread_exits", &self.thread_exits)?;
        o.end()
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both are repr(C), made only of u64 (resp. u32) fields, so they
    // have no padding and every bit pattern is a valid value.
    unsafe impl aya::Pod for super::Counters {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::KernelLayout {}
    // SAFETY: repr(C), two u64 + two u32 + a byte array: no padding, and
    // any bit pattern is valid.
    unsafe impl aya::Pod for super::CgroupMkdir {}
    // SAFETY: repr(C), two u32 + a byte array of a multiple of 4: no padding.
    unsafe impl aya::Pod for super::DrillPath {}
    // SAFETY: repr(C), u32/u64 fields in an order without gaps and byte
    // arrays (sizes asserted below): no padding, any bit pattern is valid.
    unsafe impl aya::Pod for super::ExecEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ExitEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ForkEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::OomEvent {}

    // SAFETY: an array of u64.
    unsafe impl aya::Pod for super::Lifetimes {}
    // SAFETY: repr(C), the two above (u64 only): no padding.
    unsafe impl aya::Pod for super::CgroupStats {}
    // SAFETY: four u32.
    unsafe impl aya::Pod for super::EventConfig {}
}

const _: () = assert!(core::mem::size_of::<Counters>() == 8 * 8);
const _: () = assert!(core::mem::size_of::<CgroupStats>() == 8 * 8 + 8 * LIFETIME_BUCKETS);
const _: () = assert!(core::mem::size_of::<KernelLayout>() == 34 * 4);
const _: () = assert!(core::mem::size_of::<CgroupMkdir>() == 24 + CGROUP_PATH_MAX);
const _: () = assert!(core::mem::size_of::<DrillPath>() == 8 + DRILL_PATH_MAX);
const _: () = assert!(core::mem::size_of::<EventConfig>() == 20);
const _: () = assert!(
    core::mem::size_of::<ExecEvent>() == 8 * 4 + 3 * 8 + 2 * COMM_LEN + FILENAME_MAX + ARGS_MAX
);
const _: () = assert!(core::mem::size_of::<ExitEvent>() == 6 * 4 + 3 * 8 + COMM_LEN);
const _: () = assert!(core::mem::size_of::<ForkEvent>() == 4 * 4 + 3 * 8 + COMM_LEN);
const _: () = assert!(core::mem::size_of::<OomEvent>() == 10 * 4 + 6 * 8 + 2 * COMM_LEN);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_matches_wait_status_encoding() {
        assert_eq!(classify_exit(0), ExitClass::Clean);
        assert_eq!(classify_exit(1 << 8), ExitClass::Failed);
        assert_eq!(classify_exit(255 << 8), ExitClass::Failed);
        assert_eq!(classify_exit(9), ExitClass::Signaled);
        assert_eq!(classify_exit(15), ExitClass::Signaled);
        assert_eq!(classify_exit(6 | 0x80), ExitClass::CoreDumped);
        // A stray core flag without a signal is not a signal death.
        assert_eq!(classify_exit(0x80), ExitClass::Clean);
    }

    #[test]
    fn add_and_sub_are_inverse_and_saturate() {
        let a = Counters {
            forks: 3,
            execs: 2,
            exit_failed: 1,
            ..Counters::ZERO
        };
        let b = Counters {
            forks: 1,
            execs: 5,
            ..Counters::ZERO
        };
        let s = a.saturating_add(&b);
        assert_eq!(s.forks, 4);
        assert_eq!(s.execs, 7);
        assert_eq!(s.saturating_sub(&b), a);
        assert_eq!(b.saturating_sub(&a).execs, 3);
        assert_eq!(b.saturating_sub(&a).forks, 0);
        assert_eq!(a.process_exits(), 1);
        assert!(Counters::ZERO.is_zero());
        assert!(!a.is_zero());
    }
}
