//! `bpf-limits SET`: attaches one set of the limits probe's programs
//! (`empty`, `array`, `hash`, `cgrp` or `record`) to fork, exec and exit,
//! says "bpf-limits: attached SET" on stderr, and holds them until it is
//! signalled, draining the records of `record`. `cargo xtask bench overhead` measures them with the kernel's
//! BPF statistics, beside spawnscope's own programs.

use std::{
    fs::File,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{CgrpStorage, MapError, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf},
    programs::BtfTracePoint,
};
use spawnscope::{
    btf::{Btf, VMLINUX_BTF},
    cgroupfs::{SELF_CGROUP, find_cgroup2, own_cgroup_v2},
};

static OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/spawnscope-limits-probe"));

const SETS: [&str; 5] = ["empty", "array", "hash", "cgrp", "record"];
const TRACEPOINTS: [(&str, &str); 3] = [
    ("fork", "sched_process_fork"),
    ("exec", "sched_process_exec"),
    ("exit", "sched_process_exit"),
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bpf-limits: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let set = match args.as_slice() {
        [s] if SETS.contains(&s.as_str()) => s.as_str(),
        _ => return Err(format!("usage: bpf-limits {}", SETS.join("|"))),
    };
    let btf = Btf::from_file(VMLINUX_BTF.as_ref()).map_err(|e| e.to_string())?;
    let offset = |s: &str, f: &str| btf.field(s, f).map(|f| f.offset).map_err(|e| e.to_string());
    let cgroups = offset("task_struct", "cgroups")?;
    let dfl_cgrp = offset("css_set", "dfl_cgrp")?;
    drop(btf);
    let mut ebpf: Ebpf = EbpfLoader::new()
        .override_global("TASK_CGROUPS", &cgroups, true)
        .override_global("CSS_SET_DFL_CGRP", &dfl_cgrp, true)
        .load(OBJ)
        .map_err(|e| format!("loading the limits probe: {e}"))?;
    let kernel = aya::Btf::from_sys_fs().map_err(|e| format!("{VMLINUX_BTF}: {e}"))?;
    let mut links = Vec::new();
    for (what, tp) in TRACEPOINTS {
        let name = format!("{set}_{what}");
        let p: &mut BtfTracePoint = ebpf
            .program_mut(&name)
            .ok_or_else(|| format!("no program {name} in the limits probe"))?
            .try_into()
            .map_err(|e| format!("{name}: {e}"))?;
        p.load(tp, &kernel)
            .map_err(|e| format!("loading {name}: {e}"))?;
        links.push(p.attach().map_err(|e| format!("attaching {name}: {e}"))?);
    }
    self_check(&ebpf, set)?;
    let mut ring = RingBuf::try_from(
        ebpf.take_map("EVENTS")
            .ok_or("no map EVENTS in the limits probe")?,
    )
    .map_err(|e| format!("EVENTS: {e}"))?;
    eprintln!("bpf-limits: attached {set}");
    // The default action of SIGTERM and SIGINT ends the process; the
    // kernel then detaches the programs as it closes their links. The
    // records are read and dropped, so that a full ring never makes the
    // reservation fail (and cheaper) while it is measured.
    loop {
        while ring.next().is_some() {}
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Proves that the set counts what it is said to, before it is measured:
/// runs /bin/true (a fork, an exec and an exit in this process's cgroup)
/// and reads what the set counted. A set that counted nothing would give
/// a figure for a program that does less than its name says.
fn self_check(ebpf: &Ebpf, set: &str) -> Result<(), String> {
    if set == "empty" {
        return Ok(());
    }
    let cgroup = own_cgroup_dir()?;
    let before = counted(ebpf, set, &cgroup)?;
    let status = Command::new("/bin/true")
        .status()
        .map_err(|e| format!("/bin/true: {e}"))?;
    if !status.success() {
        return Err(format!("/bin/true: {status}"));
    }
    let after = counted(ebpf, set, &cgroup)?;
    // One record per exec; the other sets count fork, exec and exit.
    let expected = if set == "record" { 1 } else { 3 };
    if after < before + expected {
        return Err(format!(
            "the {set} programs counted {} of the {expected} expected for a fork, an exec and \
             an exit in {}",
            after - before,
            cgroup.display()
        ));
    }
    Ok(())
}

/// What the set has counted so far: everything, for `array` and `record`
/// (its records submitted); this cgroup's count, for `hash` and `cgrp`.
fn counted(ebpf: &Ebpf, set: &str, cgroup: &Path) -> Result<u64, String> {
    let map = |name: &str| {
        ebpf.map(name)
            .ok_or_else(|| format!("no map {name} in the limits probe"))
    };
    let sum = |v: Result<PerCpuValues<u64>, MapError>| match v {
        Ok(v) => Ok(v.iter().sum()),
        Err(MapError::KeyNotFound) => Ok(0),
        Err(e) => Err(e.to_string()),
    };
    match set {
        "array" | "record" => {
            let m: PerCpuArray<_, u64> = map("SLOT")?
                .try_into()
                .map_err(|e: MapError| e.to_string())?;
            sum(m.get(&0, 0))
        }
        "hash" => {
            // A cgroup2 directory's inode number is the cgroup's id.
            let id = std::fs::metadata(cgroup)
                .map_err(|e| format!("{}: {e}", cgroup.display()))?
                .ino();
            let m: PerCpuHashMap<_, u64, u64> = map("BY_ID")?
                .try_into()
                .map_err(|e: MapError| e.to_string())?;
            sum(m.get(&id, 0))
        }
        _ => {
            let m: CgrpStorage<_, u64> = map("STORE")?
                .try_into()
                .map_err(|e: MapError| e.to_string())?;
            let dir = File::open(cgroup).map_err(|e| format!("{}: {e}", cgroup.display()))?;
            match m.get(&dir, 0) {
                Ok(n) => Ok(n),
                Err(MapError::KeyNotFound) => Ok(0),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

/// This process's cgroup2 directory.
fn own_cgroup_dir() -> Result<PathBuf, String> {
    let mount = find_cgroup2("/proc/self/mountinfo".as_ref())
        .map_err(|e| e.to_string())?
        .ok_or("no cgroup2 mount in /proc/self/mountinfo")?;
    let path = own_cgroup_v2(SELF_CGROUP.as_ref()).map_err(|e| e.to_string())?;
    let rel = path
        .strip_prefix(mount.root.as_str())
        .unwrap_or(&path)
        .trim_start_matches('/');
    Ok(mount.mount_point.join(rel))
}
