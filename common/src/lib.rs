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
    /// `kernfs_node.id`
    pub kernfs_node_id: u32,
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

/// A cgroup2 directory was created. Streamed so that a cgroup that lives
/// shorter than one poll interval can still be named after it is gone.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CgroupMkdir {
    /// The new cgroup's id, as the counters are keyed.
    pub id: u64,
    /// Bytes of `path` in use, without the terminating NUL.
    pub len: u32,
    /// Explicit so the record has no hidden padding.
    pub _pad: u32,
    /// Path from the cgroup2 root ("/system.slice/foo.service"), as the
    /// kernel's tracepoint formats it; possibly truncated when `len` is
    /// `CGROUP_PATH_MAX - 1`.
    pub path: [u8; CGROUP_PATH_MAX],
}

/// Default capacity of [`COUNTERS_MAP`], in cgroups.
pub const DEFAULT_MAX_CGROUPS: u32 = 10_240;

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
    pub const COUNT: u32 = 4;
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
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both are repr(C), made only of u64 (resp. u32) fields, so they
    // have no padding and every bit pattern is a valid value.
    unsafe impl aya::Pod for super::Counters {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::KernelLayout {}
    // SAFETY: repr(C), u64 + two u32 + a byte array: no padding, and any bit
    // pattern is valid.
    unsafe impl aya::Pod for super::CgroupMkdir {}
}

const _: () = assert!(core::mem::size_of::<Counters>() == 8 * 8);
const _: () = assert!(core::mem::size_of::<KernelLayout>() == 15 * 4);
const _: () = assert!(core::mem::size_of::<CgroupMkdir>() == 16 + CGROUP_PATH_MAX);

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
