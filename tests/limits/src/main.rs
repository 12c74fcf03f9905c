//! `bpf-limits SET`: attaches one set of the limits probe's programs to
//! fork, exec and exit, checks that they count, says "bpf-limits: attached
//! SET" on stderr, and holds them until it is signalled (draining the
//! records of `record`). `bpf-limits --supported SET` only says, by its
//! exit status, whether this kernel can load the set. `cargo xtask bench
//! overhead` measures the sets with the kernel's BPF statistics, beside
//! spawnscope's own programs.

use std::{
    fs::File,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    str::FromStr,
    time::Duration,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{CgrpStorage, MapError, MapType, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf},
    programs::BtfTracePoint,
    sys::is_map_supported,
};
use spawnscope::{
    btf::{Btf, VMLINUX_BTF},
    cgroupfs::{SELF_CGROUP, find_cgroup2, own_cgroup_v2},
};

static OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/spawnscope-limits-probe"));
static OBJ_CGRP: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/spawnscope-limits-cgrp"));

/// The exit status of a set this kernel cannot load.
const UNSUPPORTED: u8 = 2;

/// SLOT's indices (see the probe).
const SLOT_ARRAY: u32 = 0;
const SLOT_RECORDS: u32 = 1;
const SLOT_RECORDS_LOST: u32 = 2;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Set {
    Empty,
    Array,
    Hash,
    Cgrp,
    Record,
}

impl Set {
    const ALL: [Set; 5] = [Set::Empty, Set::Array, Set::Hash, Set::Cgrp, Set::Record];

    fn name(self) -> &'static str {
        match self {
            Set::Empty => "empty",
            Set::Array => "array",
            Set::Hash => "hash",
            Set::Cgrp => "cgrp",
            Set::Record => "record",
        }
    }

    /// How much one fork, exec and exit add to what [`counted`] reads: a
    /// count each, or one record (exec only).
    fn per_spawn(self) -> u64 {
        match self {
            Set::Empty => 0,
            Set::Record => 1,
            Set::Array | Set::Hash | Set::Cgrp => 3,
        }
    }
}

impl FromStr for Set {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Set::ALL
            .into_iter()
            .find(|set| set.name() == s)
            .ok_or_else(|| format!("unknown set {s:?}; {}", usage()))
    }
}

fn usage() -> String {
    let names: Vec<&str> = Set::ALL.iter().map(|s| s.name()).collect();
    format!("usage: bpf-limits [--supported] {}", names.join("|"))
}

enum Failure {
    Unsupported(String),
    Error(String),
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Error(e)
    }
}

impl From<&str> for Failure {
    fn from(e: &str) -> Self {
        Failure::Error(e.to_string())
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Unsupported(e)) => {
            eprintln!("bpf-limits: {e}");
            ExitCode::from(UNSUPPORTED)
        }
        Err(Failure::Error(e)) => {
            eprintln!("bpf-limits: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (only_check, set) = match args.as_slice() {
        [flag, s] if flag == "--supported" => (true, s.parse::<Set>()?),
        [s] => (false, s.parse::<Set>()?),
        _ => return Err(usage().into()),
    };
    if set == Set::Cgrp
        && !is_map_supported(MapType::CgrpStorage)
            .map_err(|e| format!("probing for cgroup storage maps: {e}"))?
    {
        return Err(Failure::Unsupported(
            "cgrp: this kernel has no cgroup storage maps (Linux 6.2 and later have)".into(),
        ));
    }
    if only_check {
        return Ok(());
    }
    let mut ebpf = load(set)?;
    self_check(&ebpf, set)?;
    let (mut ring, slot) = match set {
        Set::Cgrp => (None, None),
        _ => (
            Some(
                RingBuf::try_from(
                    ebpf.take_map("EVENTS")
                        .ok_or("no map EVENTS in the limits probe")?,
                )
                .map_err(|e| format!("EVENTS: {e}"))?,
            ),
            Some(
                PerCpuArray::<_, u64>::try_from(
                    ebpf.take_map("SLOT")
                        .ok_or("no map SLOT in the limits probe")?,
                )
                .map_err(|e| format!("SLOT: {e}"))?,
            ),
        ),
    };
    eprintln!("bpf-limits: attached {}", set.name());
    // The default action of SIGTERM and SIGINT ends the process; the
    // kernel then detaches the programs as it closes their links. Records
    // are read and dropped, and a record that found the ring full ends
    // the run: the figure would then be of a cheaper failure.
    loop {
        if let Some(ring) = ring.as_mut() {
            while ring.next().is_some() {}
        }
        if let Some(slot) = slot.as_ref() {
            let lost: u64 = sum(slot.get(&SLOT_RECORDS_LOST, 0))?;
            if lost > 0 {
                return Err(format!("{lost} record(s) found the ring full").into());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Loads `set`'s object and attaches its three programs.
fn load(set: Set) -> Result<Ebpf, String> {
    // The offsets outlive the loader, which borrows them.
    let (cgroups, dfl_cgrp) = if set == Set::Cgrp {
        let btf = Btf::from_file(VMLINUX_BTF.as_ref()).map_err(|e| e.to_string())?;
        let offset =
            |s: &str, f: &str| btf.field(s, f).map(|f| f.offset).map_err(|e| e.to_string());
        (
            offset("task_struct", "cgroups")?,
            offset("css_set", "dfl_cgrp")?,
        )
    } else {
        (0, 0)
    };
    let mut loader = EbpfLoader::new();
    let obj = if set == Set::Cgrp {
        loader
            .override_global("TASK_CGROUPS", &cgroups, true)
            .override_global("CSS_SET_DFL_CGRP", &dfl_cgrp, true);
        OBJ_CGRP
    } else {
        OBJ
    };
    let mut ebpf = loader
        .load(obj)
        .map_err(|e| format!("loading the limits probe: {e}"))?;
    let kernel = aya::Btf::from_sys_fs().map_err(|e| format!("{VMLINUX_BTF}: {e}"))?;
    for (what, tp) in [
        ("fork", "sched_process_fork"),
        ("exec", "sched_process_exec"),
        ("exit", "sched_process_exit"),
    ] {
        let name = format!("{}_{what}", set.name());
        let p: &mut BtfTracePoint = ebpf
            .program_mut(&name)
            .ok_or_else(|| format!("no program {name} in the limits probe"))?
            .try_into()
            .map_err(|e| format!("{name}: {e}"))?;
        p.load(tp, &kernel)
            .map_err(|e| format!("loading {name}: {e}"))?;
        // The program keeps its link until `ebpf`, returned, is dropped.
        p.attach().map_err(|e| format!("attaching {name}: {e}"))?;
    }
    Ok(ebpf)
}

/// Proves that the set does what it is said to, before it is measured:
/// runs /bin/true (a fork, an exec and an exit in this process's cgroup)
/// and reads what the set counted. The array and the records are not per
/// cgroup, so other spawns may add to them, never take away; a set that
/// counted nothing would give a figure for a program that does less than
/// its name says.
fn self_check(ebpf: &Ebpf, set: Set) -> Result<(), String> {
    if set == Set::Empty {
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
    let seen = after.saturating_sub(before);
    if seen < set.per_spawn() {
        return Err(format!(
            "{}: counted {seen} of the {} expected for /bin/true in {}",
            set.name(),
            set.per_spawn(),
            cgroup.display()
        ));
    }
    Ok(())
}

fn sum(v: Result<PerCpuValues<u64>, MapError>) -> Result<u64, String> {
    match v {
        Ok(v) => Ok(v.iter().sum()),
        Err(MapError::KeyNotFound) => Ok(0),
        Err(e) => Err(e.to_string()),
    }
}

/// What the set has counted so far: the array's slot, or the records
/// submitted, in all; this cgroup's count, for `hash` and `cgrp`.
fn counted(ebpf: &Ebpf, set: Set, cgroup: &Path) -> Result<u64, String> {
    let map = |name: &str| {
        ebpf.map(name)
            .ok_or_else(|| format!("no map {name} in the limits probe"))
    };
    let slot = |i: u32| -> Result<u64, String> {
        let m: PerCpuArray<_, u64> = map("SLOT")?
            .try_into()
            .map_err(|e: MapError| e.to_string())?;
        sum(m.get(&i, 0))
    };
    match set {
        Set::Empty => Ok(0),
        Set::Array => slot(SLOT_ARRAY),
        Set::Record => slot(SLOT_RECORDS),
        Set::Hash => {
            // A cgroup2 directory's inode number is the cgroup's id.
            let id = std::fs::metadata(cgroup)
                .map_err(|e| format!("{}: {e}", cgroup.display()))?
                .ino();
            let m: PerCpuHashMap<_, u64, u64> = map("BY_ID")?
                .try_into()
                .map_err(|e: MapError| e.to_string())?;
            sum(m.get(&id, 0))
        }
        Set::Cgrp => {
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
