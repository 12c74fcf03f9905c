//! The kernel struct layout the probe needs, read from BTF at load time.

use spawnscope_common::{KernelLayout, LAYOUT_MAGIC};

use crate::btf::{Btf, BtfError, kind};

/// Which exit program fits the running kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitFlavour {
    /// `sched_process_exit(task, group_dead)`: exact process/thread split.
    GroupDeadArg,
    /// `sched_process_exit(task)`: derived from `signal_struct.live`.
    Legacy,
}

/// (struct, field, expected size in bytes). Sizes are checked because the
/// probe reads each field with a fixed width.
const FIELDS: [(&str, &str, u32); 21] = [
    ("task_struct", "pid", 4),
    ("task_struct", "tgid", 4),
    ("task_struct", "exit_code", 4),
    ("task_struct", "group_leader", 8),
    ("task_struct", "signal", 8),
    ("task_struct", "cgroups", 8),
    ("signal_struct", "live", 4),
    ("signal_struct", "flags", 4),
    ("signal_struct", "group_exit_code", 4),
    ("css_set", "dfl_cgrp", 8),
    ("cgroup", "kn", 8),
    ("kernfs_node", "id", 8),
    ("cgroup", "root", 8),
    ("cgroup_root", "hierarchy_id", 4),
    ("task_struct", "real_parent", 8),
    ("task_struct", "start_time", 8),
    ("task_struct", "mm", 8),
    ("mm_struct", "arg_start", 8),
    ("mm_struct", "arg_end", 8),
    ("linux_binprm", "filename", 8),
    ("task_struct", "comm", 16),
];

/// What `oom:mark_victim` passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomFlavour {
    /// `mark_victim(struct task_struct *task, uid_t uid)` (newer kernels,
    /// and stable series that took the change: Debian's 5.10 and 6.1 do):
    /// the victim's comm, cgroup, RSS and memory cgroups are read in the
    /// kernel.
    Task,
    /// `mark_victim(int pid)` (older kernels): only the victim's pid; the
    /// rest is looked up in /proc while the victim is still there.
    PidOnly,
}

pub fn oom_flavour(btf: &Btf) -> Result<OomFlavour, BtfError> {
    Ok(if btf.tracepoint_arg_is_pointer("mark_victim", 0)? {
        OomFlavour::Task
    } else {
        OomFlavour::PidOnly
    })
}

/// The tracepoints every mode attaches to; their `btf_trace_<name>` types
/// must be in the kernel's BTF.
pub const TRACEPOINTS: [&str; 5] = [
    "sched_process_fork",
    "sched_process_exec",
    "sched_process_exit",
    "cgroup_mkdir",
    "mark_victim",
];

/// Attached only by the sentinel, which forgets removed cgroups.
pub const RMDIR_TRACEPOINT: &str = "cgroup_rmdir";

/// Where mm->rss_stat's counters are: (offset of rss_stat, size of one
/// `struct percpu_counter`, offset of its `count`). Zeros for layouts
/// before Linux 6.2 (`struct mm_rss_stat`), where OOM kills are still
/// reported, without RSS.
fn rss_layout(btf: &Btf) -> (u32, u32, u32) {
    let (Ok(rss), Some(pc), Ok(count)) = (
        btf.field("mm_struct", "rss_stat"),
        btf.type_id(kind::STRUCT, "percpu_counter"),
        btf.field("percpu_counter", "count"),
    ) else {
        return (0, 0, 0);
    };
    match btf.size_of(pc) {
        // NR_MM_COUNTERS is 4: file, anon, swap entries, shmem.
        Some(size) if size > 0 && rss.size == 4 * size && count.size == 8 => {
            (rss.offset, size, count.offset)
        }
        _ => (0, 0, 0),
    }
}

/// Fills the memory cgroup fields the probe follows to classify an OOM
/// kill (see `oom_scope` in the common crate) and sets `memcg_layout`.
/// Without memory cgroups (CONFIG_MEMCG off) or with another layout they
/// stay zero: kills are then reported without saying whether they were
/// global or memcg-limited.
fn memcg_layout(btf: &Btf, kl: &mut KernelLayout) {
    let found = (|| {
        let subsys = btf.field("css_set", "subsys").ok()?;
        let id = btf.enum_value("memory_cgrp_id")?;
        // The slot must lie inside the array of pointers.
        let id = u32::try_from(id)
            .ok()
            .filter(|i| (i + 1) * 8 <= subsys.size)?;
        let css = btf.field("mem_cgroup", "css").ok()?;
        let memory = btf.field("mem_cgroup", "memory").ok()?;
        let usage = btf.field("page_counter", "usage").ok()?;
        let max = btf.field("page_counter", "max").ok()?;
        let parent = btf.field("page_counter", "parent").ok()?;
        let cgroup = btf.field("cgroup_subsys_state", "cgroup").ok()?;
        (usage.size == 8 && max.size == 8 && parent.size == 8 && cgroup.size == 8).then_some([
            subsys.offset,
            id,
            css.offset,
            memory.offset,
            usage.offset,
            max.offset,
            parent.offset,
            cgroup.offset,
        ])
    })();
    if let Some([subsys, id, css, memory, usage, max, parent, cgroup]) = found {
        kl.css_set_subsys = subsys;
        kl.memory_cgrp_id = id;
        kl.mem_cgroup_css = css;
        kl.mem_cgroup_memory = memory;
        kl.page_counter_usage = usage;
        kl.page_counter_max = max;
        kl.page_counter_parent = parent;
        kl.css_cgroup = cgroup;
        kl.memcg_layout = 1;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Btf(#[from] BtfError),
    #[error("unsupported kernel: {strukt}.{field} is {actual} bytes, the probe reads {expected}")]
    Size {
        strukt: &'static str,
        field: &'static str,
        actual: u32,
        expected: u32,
    },
}

pub fn from_btf(btf: &Btf) -> Result<(KernelLayout, ExitFlavour), LayoutError> {
    for tp in TRACEPOINTS {
        btf.tracepoint_arg_count(tp)?;
    }
    let mut off = [0u32; FIELDS.len()];
    for (slot, &(strukt, field, expected)) in off.iter_mut().zip(FIELDS.iter()) {
        let f = btf.field(strukt, field)?;
        if f.size != expected {
            return Err(LayoutError::Size {
                strukt,
                field,
                actual: f.size,
                expected,
            });
        }
        *slot = f.offset;
    }
    let (mm_rss_stat, percpu_counter_size, percpu_counter_count) = rss_layout(btf);
    let flavour = if btf.tracepoint_arg_count("sched_process_exit")? >= 2 {
        ExitFlavour::GroupDeadArg
    } else {
        ExitFlavour::Legacy
    };
    let [
        task_pid,
        task_tgid,
        task_exit_code,
        task_group_leader,
        task_signal,
        task_cgroups,
        signal_live,
        signal_flags,
        signal_group_exit_code,
        css_set_dfl_cgrp,
        cgroup_kn,
        kernfs_node_id,
        cgroup_root,
        cgroup_root_hierarchy_id,
        task_real_parent,
        task_start_time,
        task_mm,
        mm_arg_start,
        mm_arg_end,
        binprm_filename,
        task_comm,
    ] = off;
    let mut kl = KernelLayout {
        magic: LAYOUT_MAGIC,
        task_pid,
        task_tgid,
        task_exit_code,
        task_group_leader,
        task_signal,
        task_cgroups,
        signal_live,
        signal_flags,
        signal_group_exit_code,
        css_set_dfl_cgrp,
        cgroup_kn,
        kernfs_node_id,
        cgroup_root,
        cgroup_root_hierarchy_id,
        task_real_parent,
        task_start_time,
        task_mm,
        mm_arg_start,
        mm_arg_end,
        binprm_filename,
        task_comm,
        mm_rss_stat,
        percpu_counter_size,
        percpu_counter_count,
        // The memcg fields: filled in below when there are any.
        ..KernelLayout::default()
    };
    memcg_layout(btf, &mut kl);
    Ok((kl, flavour))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::btf::{build::BtfBuilder, kind};

    /// A miniature kernel: every struct the probe reads, at offsets chosen to
    /// differ from any real kernel so a hard-coded value would show.
    pub(crate) fn kernel(exit_args: &[u32], kn_id_size: u32) -> Vec<u8> {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4);
        let uint = b.int("unsigned int", 4);
        let u64t = b.int("u64", 8);
        let small = b.int("u32", 4);
        let atomic = b.composite(kind::STRUCT, "", 4, &[("counter", int, 0, 0)]);
        let atomic_t = b.typedef("atomic_t", atomic);
        let kn_id = if kn_id_size == 8 { u64t } else { small };
        let kn = b.composite(
            kind::STRUCT,
            "kernfs_node",
            200,
            &[("id", kn_id, 8 * 104, 0)],
        );
        let pkn = b.ptr(kn);
        let croot = b.composite(
            kind::STRUCT,
            "cgroup_root",
            100,
            &[("hierarchy_id", int, 8 * 12, 0)],
        );
        let pcroot = b.ptr(croot);
        let cg = b.composite(
            kind::STRUCT,
            "cgroup",
            400,
            &[("kn", pkn, 8 * 296, 0), ("root", pcroot, 8 * 312, 0)],
        );
        let pcg = b.ptr(cg);
        let css = b.composite(
            kind::STRUCT,
            "cgroup_subsys_state",
            200,
            &[("cgroup", pcg, 8 * 24, 0)],
        );
        let pcss = b.ptr(css);
        let subsys = b.array(pcss, 12);
        b.enumeration(
            "cgroup_subsys_id",
            &[("cpuset_cgrp_id", 0), ("memory_cgrp_id", 5)],
        );
        let ulong = b.int("long unsigned int", 8);
        b.fwd("page_counter");
        let ppc = b.ptr(0);
        let pc = b.composite(
            kind::STRUCT,
            "page_counter",
            300,
            &[
                ("usage", ulong, 8 * 8, 0),
                ("max", ulong, 8 * 120, 0),
                ("parent", ppc, 8 * 128, 0),
            ],
        );
        b.composite(
            kind::STRUCT,
            "mem_cgroup",
            2000,
            &[("css", css, 8 * 16, 0), ("memory", pc, 8 * 320, 0)],
        );
        let cset = b.composite(
            kind::STRUCT,
            "css_set",
            300,
            &[("subsys", subsys, 8 * 8, 0), ("dfl_cgrp", pcg, 8 * 136, 0)],
        );
        let pcset = b.ptr(cset);
        let sig = b.composite(
            kind::STRUCT,
            "signal_struct",
            300,
            &[
                ("live", atomic_t, 8 * 4, 0),
                ("group_exit_code", int, 8 * 60, 0),
                ("flags", uint, 8 * 76, 0),
            ],
        );
        let psig = b.ptr(sig);
        let pid_t = b.typedef("pid_t", int);
        b.fwd("task_struct");
        let task_fwd_ptr = b.ptr(0);
        let inner = b.composite(
            kind::STRUCT,
            "",
            64,
            &[
                ("pid", pid_t, 8 * 8, 0),
                ("tgid", pid_t, 8 * 12, 0),
                ("group_leader", task_fwd_ptr, 8 * 16, 0),
            ],
        );
        let mm_inner = b.composite(
            kind::STRUCT,
            "",
            16,
            &[("arg_start", u64t, 0, 0), ("arg_end", u64t, 8 * 8, 0)],
        );
        let pcpu = b.composite(
            kind::STRUCT,
            "percpu_counter",
            40,
            &[("count", u64t, 8 * 8, 0)],
        );
        let rss = b.array(pcpu, 4);
        let mm = b.composite(
            kind::STRUCT,
            "mm_struct",
            900,
            &[("", mm_inner, 8 * 640, 0), ("rss_stat", rss, 8 * 200, 0)],
        );
        let pmm = b.ptr(mm);
        let cchar = b.int("char", 1);
        let pchar = b.ptr(cchar);
        let comm_t = b.array(cchar, 16);
        b.composite(
            kind::STRUCT,
            "linux_binprm",
            300,
            &[("filename", pchar, 8 * 96, 0)],
        );
        let task = b.composite(
            kind::STRUCT,
            "task_struct",
            4000,
            &[
                ("exit_code", int, 8 * 1000, 0),
                ("", inner, 8 * 2000, 0),
                ("signal", psig, 8 * 3000, 0),
                ("cgroups", pcset, 8 * 3008, 0),
                ("real_parent", task_fwd_ptr, 8 * 3016, 0),
                ("start_time", u64t, 8 * 3024, 0),
                ("mm", pmm, 8 * 3032, 0),
                ("comm", comm_t, 8 * 3040, 0),
            ],
        );
        let ptask = b.ptr(task);
        let vp = b.ptr(0);
        for (name, args) in [
            ("sched_process_fork", &[vp, ptask, ptask][..]),
            ("sched_process_exec", &[vp, ptask, int, vp][..]),
            ("cgroup_mkdir", &[vp, pcg, vp][..]),
            ("cgroup_rmdir", &[vp, pcg, vp][..]),
            ("mark_victim", &[vp, ptask, int][..]),
        ] {
            let proto = b.func_proto(args);
            let pp = b.ptr(proto);
            b.typedef(&format!("btf_trace_{name}"), pp);
        }
        let mut exit = vec![vp];
        exit.extend(exit_args.iter().map(|_| ptask));
        let proto = b.func_proto(&exit);
        let pp = b.ptr(proto);
        b.typedef("btf_trace_sched_process_exit", pp);
        b.finish()
    }

    #[test]
    fn layout_comes_from_btf() {
        let btf = Btf::parse(&kernel(&[1, 2], 8), "k").unwrap();
        let (l, flavour) = from_btf(&btf).unwrap();
        assert_eq!(flavour, ExitFlavour::GroupDeadArg);
        assert_eq!(l.magic, LAYOUT_MAGIC);
        assert_eq!(l.task_exit_code, 1000);
        assert_eq!(l.task_pid, 2008);
        assert_eq!(l.task_tgid, 2012);
        assert_eq!(l.task_group_leader, 2016);
        assert_eq!(l.task_signal, 3000);
        assert_eq!(l.task_cgroups, 3008);
        assert_eq!(l.signal_live, 4);
        assert_eq!(l.signal_group_exit_code, 60);
        assert_eq!(l.signal_flags, 76);
        assert_eq!(l.css_set_dfl_cgrp, 136);
        assert_eq!(l.cgroup_kn, 296);
        assert_eq!(l.kernfs_node_id, 104);
        assert_eq!(l.cgroup_root, 312);
        assert_eq!(l.cgroup_root_hierarchy_id, 12);
        assert_eq!(l.task_real_parent, 3016);
        assert_eq!(l.task_start_time, 3024);
        assert_eq!(l.task_mm, 3032);
        assert_eq!(l.mm_arg_start, 640, "found in an anonymous member");
        assert_eq!(l.mm_arg_end, 648);
        assert_eq!(l.binprm_filename, 96);
        assert_eq!(l.task_comm, 3040);
        assert_eq!(
            (l.mm_rss_stat, l.percpu_counter_size, l.percpu_counter_count),
            (200, 40, 8)
        );
        assert_eq!(
            (
                l.css_set_subsys,
                l.memory_cgrp_id,
                l.mem_cgroup_css,
                l.mem_cgroup_memory,
                l.page_counter_usage,
                l.page_counter_max,
                l.page_counter_parent,
                l.css_cgroup,
                l.memcg_layout
            ),
            (8, 5, 16, 320, 8, 120, 128, 24, 1)
        );
    }

    #[test]
    fn mark_victim_flavour_follows_its_first_argument() {
        let btf = Btf::parse(&kernel(&[1, 2], 8), "k").unwrap();
        assert_eq!(oom_flavour(&btf).unwrap(), OomFlavour::Task);
        // Older kernels: mark_victim(int pid).
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4);
        let vp = b.ptr(0);
        let proto = b.func_proto(&[vp, int]);
        let pp = b.ptr(proto);
        b.typedef("btf_trace_mark_victim", pp);
        let btf = Btf::parse(&b.finish(), "old").unwrap();
        assert_eq!(oom_flavour(&btf).unwrap(), OomFlavour::PidOnly);
        let empty = Btf::parse(&BtfBuilder::new().finish(), "none").unwrap();
        assert!(oom_flavour(&empty).is_err());
    }

    #[test]
    fn older_exit_tracepoint_selects_legacy_program() {
        let btf = Btf::parse(&kernel(&[1], 8), "k").unwrap();
        let (l, flavour) = from_btf(&btf).unwrap();
        assert_eq!(flavour, ExitFlavour::Legacy);
        // The struct offsets do not depend on the exit flavour.
        assert_eq!(l.task_pid, 2008);
    }

    #[test]
    fn unexpected_field_width_is_refused() {
        let btf = Btf::parse(&kernel(&[1, 2], 4), "k").unwrap();
        let e = from_btf(&btf).unwrap_err().to_string();
        assert_eq!(
            e,
            "unsupported kernel: kernfs_node.id is 4 bytes, the probe reads 8"
        );
    }
}
