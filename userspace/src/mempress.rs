//! Memory pressure: periodic cheap samples of the system's available
//! memory, of every memory cgroup's usage and limit, of the largest slab
//! caches, and of the usual hidden victims of a respawn loop (PID 1,
//! journald and the journal's storage); robust growth slopes, time to
//! exhaustion, attribution, and an early warning when that time falls below
//! a threshold or pressure stays high.

use std::{
    collections::{BTreeMap, HashSet, VecDeque},
    fs::File,
    os::unix::fs::{DirEntryExt, FileExt, MetadataExt},
    path::{Path, PathBuf},
    time::Instant,
};

use serde::Serialize;

use crate::{
    cgroupfs::CgroupMount,
    memory::{self, parse_limit, parse_u64, theil_sen, time_to_exhaustion},
    unit::{self, Owner},
};

/// Which hierarchy accounts memory, and where its tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemTree {
    pub root: PathBuf,
    pub v2: bool,
}

/// A cgroup hierarchy that accounts memory, as outputs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemHierarchy {
    /// The cgroup v1 memory hierarchy.
    V1,
    /// cgroup2.
    V2,
}

/// What a memory warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningTarget {
    /// A cgroup nears its limit.
    Cgroup,
    /// The system nears the end of MemAvailable.
    System,
    /// The system's memory pressure stayed high.
    Psi,
}

/// The memory-accounting tree: cgroup2 when it has the memory controller,
/// else the cgroup v1 memory hierarchy.
pub fn memory_tree(mounts: &[CgroupMount]) -> Option<MemTree> {
    if let Some(m) = mounts.iter().find(|m| m.fstype == "cgroup2") {
        let ctrl =
            std::fs::read_to_string(m.mount_point.join("cgroup.controllers")).unwrap_or_default();
        if ctrl.split_whitespace().any(|c| c == "memory") {
            return Some(MemTree {
                root: m.mount_point.clone(),
                v2: true,
            });
        }
    }
    mounts
        .iter()
        .find(|m| m.fstype == "cgroup" && m.super_options.iter().any(|o| o == "memory"))
        .map(|m| MemTree {
            root: m.mount_point.clone(),
            v2: false,
        })
}

/// A cgroup's usage: the one read every cgroup costs every pass (about
/// 20 µs of kernel time on the 2-core test VM, see `cargo xtask bench
/// memory`).
fn usage(dir: &Path, v2: bool) -> Option<u64> {
    let name = if v2 {
        "memory.current"
    } else {
        "memory.usage_in_bytes"
    };
    // One open and one read into a stack buffer: no stat for a size hint
    // as fs::read_to_string does, on the read every cgroup pays each pass.
    let mut f = File::open(dir.join(name)).ok()?;
    let mut buf = [0u8; 32];
    let n = std::io::Read::read(&mut f, &mut buf).ok()?;
    parse_u64(std::str::from_utf8(&buf[..n]).ok()?, name).ok()
}

/// Its hard limit; None when unlimited, Err when unreadable.
fn limit(dir: &Path, v2: bool) -> Result<Option<u64>, ()> {
    let name = if v2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    let l = std::fs::read_to_string(dir.join(name)).map_err(|_| ())?;
    parse_limit(&l, name).map_err(|_| ())
}

/// The cgroup's OOM-kill counter.
fn oom_kill_count(dir: &Path, v2: bool) -> Option<u64> {
    let name = if v2 {
        "memory.events"
    } else {
        "memory.oom_control"
    };
    let t = std::fs::read_to_string(dir.join(name)).ok()?;
    memory::parse_kv(&t, name).ok()?.get("oom_kill").copied()
}

/// Bytes in use in the journal files under `root` (volatile and
/// persistent storage), and bytes they take on disk. Journald grows its
/// files in 8 MiB steps, so use is read from each file's header: the end
/// of its last object. None when there is no journal directory.
pub fn journal_usage(root: &Path) -> Option<(u64, u64)> {
    let mut found = false;
    let (mut used, mut disk) = (0u64, 0u64);
    for base in ["run/log/journal", "var/log/journal"] {
        let Ok(rd) = std::fs::read_dir(root.join(base)) else {
            continue;
        };
        found = true;
        // <machine-id>/*.journal, and namespaced or flat layouts alike.
        let mut files = Vec::new();
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|f| f.is_dir()) {
                if let Ok(sub) = std::fs::read_dir(e.path()) {
                    files.extend(sub.flatten().map(|x| x.path()));
                }
            } else {
                files.push(e.path());
            }
        }
        for f in files {
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
            if !name.is_some_and(|n| n.ends_with(".journal") || n.ends_with(".journal~")) {
                continue;
            }
            let Ok(file) = File::open(&f) else { continue };
            let Ok(meta) = file.metadata() else { continue };
            disk += meta.blocks() * 512;
            let what = f.display().to_string();
            let mut h = [0u8; memory::JOURNAL_HEADER_READ];
            let Some(hdr) = file
                .read_exact_at(&mut h, 0)
                .ok()
                .and_then(|()| memory::parse_journal_header(&h, &what).ok())
            else {
                // Unreadable or damaged: count what it takes on disk.
                used += meta.len();
                continue;
            };
            if hdr.tail_object_offset == 0 {
                used += hdr.header_size;
                continue;
            }
            let mut o = [0u8; 16];
            let size = file
                .read_exact_at(&mut o, hdr.tail_object_offset)
                .ok()
                .and_then(|()| memory::parse_journal_object_size(&o, &what).ok())
                .unwrap_or(0);
            used += hdr.tail_object_offset + size;
        }
    }
    found.then_some((used, disk))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemWarning {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub target: WarningTarget,
    /// Path in the memory hierarchy; null for the system.
    pub cgroup: Option<String>,
    pub unit: Option<String>,
    pub time_unix: f64,
    /// Null for a pressure warning.
    pub seconds_to_exhaustion: Option<f64>,
    pub growth_bytes_per_s: f64,
    pub used_bytes: u64,
    pub limit_bytes: Option<u64>,
    /// Processes in the cgroup when the warning was raised, so a later OOM
    /// kill can be tied to it whichever hierarchy named the cgroup.
    pub pids: Vec<u32>,
    /// For a system or pressure warning: what grows most (cgroups and
    /// slab caches, largest first, with their share of the growth).
    pub culprits: Vec<String>,
    pub message: String,
}

/// A memory cgroup's OOM-kill counter rose between two passes (v2
/// memory.events `oom_kill`, v1 memory.oom_control `oom_kill`). The
/// kernel's own tally, next to the kills the probe streams.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemcgOomKill {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub time_unix: f64,
    /// Path in the memory hierarchy.
    pub cgroup: String,
    pub unit: Option<String>,
    /// Kills since the previous pass.
    pub kills: u64,
    /// The counter's value now.
    pub total: u64,
    pub message: String,
}

#[derive(Default)]
struct Series {
    points: VecDeque<(f64, f64)>,
    limit: Option<u64>,
    last: u64,
    warned: bool,
    /// Inode number of the cgroup directory: its id in that hierarchy.
    ino: u64,
    /// Its OOM-kill counter, for cgroups with a limit.
    oom_kills: Option<u64>,
}

impl Series {
    fn push(&mut self, t: f64, v: u64, window: f64) {
        self.points.push_back((t, v as f64));
        self.last = v;
        while self.points.front().is_some_and(|p| p.0 < t - window) {
            self.points.pop_front();
        }
    }
}

/// The hidden victims' trends are taken over a longer window: PID 1 and
/// journald grow slowly, by pages.
const HIDDEN_WINDOW_S: f64 = 600.0;

/// A process whose growth a respawn loop commonly causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenKind {
    /// A systemd manager's PID 1 (the host's, or a container's).
    Pid1,
    /// systemd-journald's resident memory.
    Journald,
    /// The journal files journald writes (bytes in use).
    Journal,
}

struct Watched {
    comm: String,
    cgroup: Option<String>,
    container: Option<String>,
    series: Series,
    /// Journal only: bytes allocated on disk (what fills a disk).
    disk_bytes: u64,
}

/// A respawn loop's rate, from the detector, so that the hidden victims'
/// growth can be given per restart.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopRate {
    pub unit: String,
    pub container: Option<String>,
    pub restarts_per_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HiddenTrend {
    pub what: HiddenKind,
    /// The process (for the journal: journald's).
    pub pid: u32,
    pub comm: String,
    pub cgroup: Option<String>,
    pub container: Option<String>,
    /// Resident bytes (for the journal: bytes in use in its files).
    pub bytes: u64,
    /// Journal only: bytes its files take on disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    /// Theil–Sen over the last 10 minutes; null until enough samples.
    pub growth_bytes_per_s: Option<f64>,
    /// While respawn loops run beside it (same host or container) and it
    /// grows: its growth divided by their restart rate.
    pub per_restart: Option<PerRestart>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerRestart {
    /// The loops whose restarts are counted (units).
    pub loops: Vec<String>,
    pub restarts_per_s: f64,
    pub bytes_per_restart: f64,
}

/// Slab caches are sampled every this many passes.
const SLAB_EVERY: usize = 6;

#[derive(Debug, Clone, Copy)]
pub struct MemConfig {
    /// Slopes are taken over this many seconds of samples.
    pub window_s: f64,
    /// Warn when the forecast time to exhaustion is below this.
    pub warn_before_s: f64,
    /// Samples needed before a slope is trusted.
    pub min_samples: usize,
    /// Growth below this (bytes/s) is noise, not a trend.
    pub min_growth: f64,
    /// Cgroups walked per pass at most.
    pub max_cgroups: usize,
    /// Warn when /proc/pressure/memory "some avg10" stays above this
    /// percentage...
    pub psi_percent: f64,
    /// ...for this long.
    pub psi_for_s: f64,
}

impl Default for MemConfig {
    fn default() -> Self {
        Self {
            window_s: 60.0,
            warn_before_s: 3600.0,
            min_samples: 3,
            min_growth: 16.0 * 1024.0,
            max_cgroups: 4096,
            psi_percent: 10.0,
            psi_for_s: 30.0,
        }
    }
}

/// The forecast as of the last sample: the system, and the cgroups whose
/// growth explains it, largest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemForecast {
    pub used_bytes: u64,
    pub total_bytes: u64,
    /// Theil–Sen growth of used memory (MemTotal − MemAvailable); null
    /// until enough samples.
    pub growth_bytes_per_s: Option<f64>,
    pub seconds_to_exhaustion: Option<f64>,
    /// The rest of the last /proc/meminfo reading; null before one.
    pub meminfo: Option<MemInfoOut>,
    /// Growing cgroups, largest growth first (at most 5).
    pub top_growth: Vec<CgroupTrend>,
    /// Growing slab caches (kernel memory no cgroup may own), largest
    /// growth first (at most 3); empty when /proc/slabinfo is unreadable.
    pub slab_growth: Vec<SlabTrend>,
    /// PID 1, journald and the journal, growing or not, with their growth
    /// per restart of the loops running beside them.
    pub hidden: Vec<HiddenTrend>,
}

/// /proc/meminfo fields beside MemAvailable, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemInfoOut {
    pub available_bytes: u64,
    pub slab_bytes: u64,
    /// Slab that cannot be reclaimed: kernel memory that only shrinks when
    /// its owners free it.
    pub sunreclaim_bytes: u64,
    pub committed_as_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
}

impl From<&memory::MemInfo> for MemInfoOut {
    fn from(m: &memory::MemInfo) -> Self {
        Self {
            available_bytes: m.available,
            slab_bytes: m.slab,
            sunreclaim_bytes: m.sunreclaim,
            committed_as_bytes: m.committed_as,
            swap_total_bytes: m.swap_total,
            swap_free_bytes: m.swap_free,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlabTrend {
    pub cache: String,
    pub bytes: u64,
    pub growth_bytes_per_s: f64,
    /// As for cgroups.
    pub share_of_system_growth: Option<f64>,
}

/// What a growing cgroup's memory is, read when it is ranked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdown {
    pub anon_bytes: u64,
    pub file_bytes: u64,
    /// Kernel memory charged to it (0 on v1, which does not say).
    pub kernel_bytes: u64,
    /// v2 memory.high; null if unset (v1 has none).
    pub high_bytes: Option<u64>,
    /// Times it hit its limit (v2 memory.events max, v1 memory.failcnt).
    pub limit_hits: u64,
    pub oom_kills: u64,
    /// v2 memory.pressure "some avg10"; null on v1.
    pub pressure_some_avg10: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CgroupTrend {
    pub cgroup: String,
    pub unit: Option<String>,
    pub used_bytes: u64,
    pub limit_bytes: Option<u64>,
    pub growth_bytes_per_s: f64,
    /// Time to its own limit, if it has one.
    pub seconds_to_limit: Option<f64>,
    /// Its growth as a share of the system's (may exceed 1 when others
    /// shrink); null when the system is not growing.
    pub share_of_system_growth: Option<f64>,
    /// Null when its files could not be read (it went away).
    pub breakdown: Option<Breakdown>,
}

/// The forecast as the last sampling pass before an OOM kill left it:
/// for the system, and for the cgroup whose limit was hit (or the victim's
/// memory cgroup).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KillForecast {
    /// When that pass ran.
    pub time_unix: f64,
    pub used_bytes: u64,
    pub total_bytes: u64,
    pub growth_bytes_per_s: Option<f64>,
    pub seconds_to_exhaustion: Option<f64>,
    /// Null when the cgroup was not sampled (or is not a memory cgroup).
    pub cgroup: Option<CgroupForecast>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CgroupForecast {
    pub cgroup: String,
    pub used_bytes: u64,
    pub limit_bytes: Option<u64>,
    /// Null until enough samples.
    pub growth_bytes_per_s: Option<f64>,
    pub seconds_to_limit: Option<f64>,
}

pub struct MemWatch {
    cfg: MemConfig,
    tree: Option<MemTree>,
    proc_root: PathBuf,
    cgroups: BTreeMap<String, Series>,
    /// The largest slab caches' sizes, by name.
    slabs: BTreeMap<String, Series>,
    system: Series,
    /// Since when PSI has been above the threshold, and whether that was
    /// reported.
    psi_above_since: Option<f64>,
    psi_warned: bool,
    /// The cgroup2 tree, where systemd managers and journalds are found.
    units_root: Option<PathBuf>,
    hidden: BTreeMap<(HiddenKind, u32, u64), Watched>,
    loops: Vec<LoopRate>,
    page: u64,
    /// Microseconds per pass, for the summary.
    pub pass_us: Vec<u64>,
    pub warnings: Vec<MemWarning>,
    pub memcg_oom_kills: Vec<MemcgOomKill>,
    /// How many of `memcg_oom_kills` were handed out already.
    oom_reported: usize,
    /// Wall-clock time of the last pass.
    last_unix: Option<f64>,
    meminfo: Option<MemInfoOut>,
}

fn human_bytes(b: f64) -> String {
    format!("{:.1} MiB", b / 1048576.0)
}

impl MemWatch {
    pub fn new(cfg: MemConfig, tree: Option<MemTree>, proc_root: PathBuf) -> Self {
        Self {
            cfg,
            tree,
            proc_root,
            cgroups: BTreeMap::new(),
            slabs: BTreeMap::new(),
            system: Series::default(),
            psi_above_since: None,
            psi_warned: false,
            units_root: None,
            hidden: BTreeMap::new(),
            loops: Vec::new(),
            // SAFETY: sysconf has no memory effects.
            page: match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
                n if n > 0 => n as u64,
                _ => 4096,
            },
            pass_us: Vec::new(),
            warnings: Vec::new(),
            memcg_oom_kills: Vec::new(),
            oom_reported: 0,
            last_unix: None,
            meminfo: None,
        }
    }

    /// What the last pass forecast, for a kill report; None before any
    /// pass. `cgroup`: a path in the memory hierarchy.
    pub fn kill_forecast(&self, cgroup: Option<&str>) -> Option<KillForecast> {
        let slope = |s: &Series| self.slope(s.points.iter().copied());
        let sys = slope(&self.system);
        let total = self.system.limit.unwrap_or(0);
        Some(KillForecast {
            time_unix: self.last_unix?,
            used_bytes: self.system.last,
            total_bytes: total,
            growth_bytes_per_s: sys,
            seconds_to_exhaustion: sys
                .and_then(|g| time_to_exhaustion(total as f64 - self.system.last as f64, g)),
            cgroup: cgroup
                .and_then(|c| self.cgroups.get_key_value(c))
                .map(|(k, s)| {
                    let g = slope(s);
                    CgroupForecast {
                        cgroup: k.clone(),
                        used_bytes: s.last,
                        limit_bytes: s.limit,
                        growth_bytes_per_s: g,
                        seconds_to_limit: s
                            .limit
                            .zip(g)
                            .and_then(|(l, g)| time_to_exhaustion(l as f64 - s.last as f64, g)),
                    }
                }),
        })
    }

    /// Where to look for systemd managers and journalds: the cgroup2
    /// mount. Without it only the host's PID 1 is watched.
    /// A reloaded configuration: thresholds change, history stays.
    pub fn set_config(&mut self, cfg: MemConfig) {
        self.cfg = cfg;
    }

    pub fn with_units_root(mut self, root: Option<PathBuf>) -> Self {
        self.units_root = root;
        self
    }

    /// The respawn loops running now, for the per-restart figures.
    pub fn set_loops(&mut self, loops: Vec<LoopRate>) {
        self.loops = loops;
    }

    /// Kill counter rises not handed out yet.
    pub fn new_memcg_oom_kills(&mut self) -> Vec<MemcgOomKill> {
        let new = self.memcg_oom_kills[self.oom_reported..].to_vec();
        self.oom_reported = self.memcg_oom_kills.len();
        new
    }

    /// The path of the memory cgroup whose directory has this inode
    /// number, as of the last pass; `v2` says which hierarchy the id is
    /// from, and only that one is searched.
    pub fn path_of_ino(&self, ino: u64, v2: bool) -> Option<String> {
        let tree = self.tree.as_ref()?;
        if tree.v2 != v2 {
            return None;
        }
        self.cgroups
            .iter()
            .find(|(_, s)| s.ino == ino)
            .map(|(k, _)| k.clone())
    }

    /// One sampling pass at `t` (seconds, any monotonic origin); returns
    /// the warnings it raised (each cgroup warns once while it grows).
    pub fn sample(&mut self, t: f64, now_unix: f64) -> Vec<MemWarning> {
        let t0 = Instant::now();
        let mut seen = HashSet::new();
        let mut rises = Vec::new();
        // Slab caches, the hidden victims' discovery and the cgroups'
        // limits (which seldom change) are read every SLAB_EVERY passes.
        let slow_due = self.pass_us.len().is_multiple_of(SLAB_EVERY);
        if let Some(tree) = self.tree.clone() {
            let root_ino = std::fs::metadata(&tree.root).map_or(0, |m| m.ino());
            let mut stack = vec![(tree.root.clone(), root_ino)];
            let mut n = 0;
            while let Some((dir, ino)) = stack.pop() {
                if n >= self.cfg.max_cgroups {
                    break;
                }
                n += 1;
                if let Some(cur) = usage(&dir, tree.v2) {
                    let rel = dir
                        .strip_prefix(&tree.root)
                        .map(crate::unit::display_rel)
                        .unwrap_or_default();
                    let s = self.cgroups.entry(rel.clone()).or_default();
                    if s.ino != ino {
                        // New, or removed and made again under the same
                        // name: nothing of the old one applies.
                        *s = Series::default();
                    }
                    let lim = if slow_due || s.points.is_empty() {
                        // Unreadable (going away): unlimited for now.
                        limit(&dir, tree.v2).unwrap_or(None)
                    } else {
                        s.limit
                    };
                    s.points.push_back((t, cur as f64));
                    s.limit = lim;
                    s.last = cur;
                    s.ino = ino;
                    // Only a limit makes a cgroup's own OOM kills: one more
                    // small read for those.
                    if lim.is_some()
                        && let Some(k) = oom_kill_count(&dir, tree.v2)
                    {
                        if let Some(prev) = s.oom_kills
                            && k > prev
                        {
                            rises.push((rel.clone(), k - prev, k));
                        }
                        s.oom_kills = Some(k);
                    }
                    seen.insert(rel);
                }
                if let Ok(rd) = std::fs::read_dir(&dir) {
                    for e in rd.flatten() {
                        if e.file_type().is_ok_and(|f| f.is_dir()) {
                            stack.push((e.path(), e.ino()));
                        }
                    }
                }
            }
        }
        // v2 counts a kill in every ancestor too: report the deepest.
        let deepest: Vec<_> = rises
            .iter()
            .filter(|(rel, ..)| {
                let prefix = format!("{}/", rel.trim_end_matches('/'));
                !rises.iter().any(|(o, ..)| o.starts_with(&prefix))
            })
            .collect();
        for (rel, kills, total) in deepest {
            let unit = unit::parse(rel.as_bytes()).unit;
            self.memcg_oom_kills.push(MemcgOomKill {
                kind: "memcg_oom_kill",
                time_unix: now_unix,
                cgroup: rel.clone(),
                message: format!(
                    "{} counted {kills} OOM kill(s) under its memory limit ({total} in all)",
                    unit.as_deref().unwrap_or(rel)
                ),
                unit,
                kills: *kills,
                total: *total,
            });
        }
        // Gone cgroups keep no history.
        self.cgroups.retain(|k, _| seen.contains(k));
        if let Ok(m) = memory::read_meminfo(&self.proc_root) {
            // Used = total - available: it grows as memory runs out.
            let used = m.total.saturating_sub(m.available);
            self.system.points.push_back((t, used as f64));
            self.system.limit = Some(m.total);
            self.system.last = used;
            self.meminfo = Some((&m).into());
        }
        let window = self.cfg.window_s;
        let mut out = Vec::new();
        let cfg = self.cfg;
        let check = |s: &mut Series| -> Option<(f64, f64)> {
            while s.points.front().is_some_and(|p| p.0 < t - window) {
                s.points.pop_front();
            }
            let limit = s.limit? as f64;
            if s.points.len() < cfg.min_samples {
                return None;
            }
            let slope = theil_sen(s.points.make_contiguous())?;
            if slope < cfg.min_growth {
                // Re-arm once the growth has stopped.
                s.warned = false;
                return None;
            }
            let tte = time_to_exhaustion(limit - s.last as f64, slope)?;
            if tte < cfg.warn_before_s && !s.warned {
                s.warned = true;
                return Some((tte, slope));
            }
            None
        };
        for (rel, s) in self.cgroups.iter_mut() {
            if let Some((tte, slope)) = check(s) {
                let owner = unit::parse(rel.as_bytes());
                let pids = self
                    .tree
                    .as_ref()
                    .and_then(|t| {
                        std::fs::read_to_string(
                            t.root
                                .join(rel.trim_start_matches('/'))
                                .join("cgroup.procs"),
                        )
                        .ok()
                    })
                    .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
                    .unwrap_or_default();
                let name = owner.unit.clone().unwrap_or_else(|| rel.clone());
                out.push(MemWarning {
                    kind: "memory_warning",
                    target: WarningTarget::Cgroup,
                    cgroup: Some(rel.clone()),
                    unit: owner.unit,
                    time_unix: now_unix,
                    seconds_to_exhaustion: Some(tte),
                    growth_bytes_per_s: slope,
                    used_bytes: s.last,
                    limit_bytes: s.limit,
                    pids,
                    culprits: Vec::new(),
                    message: format!(
                        "{name} will reach its memory limit in {tte:.0} s: growing {}/s, {} of {}",
                        human_bytes(slope),
                        human_bytes(s.last as f64),
                        human_bytes(s.limit.unwrap_or(0) as f64)
                    ),
                });
            }
        }
        if let Some((tte, slope)) = check(&mut self.system) {
            out.push(MemWarning {
                kind: "memory_warning",
                target: WarningTarget::System,
                cgroup: None,
                unit: None,
                time_unix: now_unix,
                seconds_to_exhaustion: Some(tte),
                growth_bytes_per_s: slope,
                used_bytes: self.system.last,
                limit_bytes: self.system.limit,
                pids: Vec::new(),
                culprits: Vec::new(),
                message: format!(
                    "the system will run out of available memory in {tte:.0} s: use growing {}/s",
                    human_bytes(slope)
                ),
            });
        }
        // Slab caches: keep the 32 largest (a cache that grows becomes one
        // of them). /proc/slabinfo costs ~2 ms to produce, 6× a whole pass
        // without it, so it is read every SLAB_EVERY passes only.
        if let Some(mut caches) = slow_due
            .then(|| std::fs::read_to_string(self.proc_root.join("slabinfo")).ok())
            .flatten()
            .and_then(|t| memory::parse_slabinfo(&t, "/proc/slabinfo").ok())
        {
            caches.sort_by_key(|c| std::cmp::Reverse(c.bytes));
            caches.truncate(32);
            let names: HashSet<String> = caches.iter().map(|c| c.name.clone()).collect();
            self.slabs.retain(|k, _| names.contains(k));
            for c in caches {
                self.slabs
                    .entry(c.name)
                    .or_default()
                    .push(t, c.bytes, window);
            }
        }
        if slow_due {
            self.discover_hidden();
        }
        self.sample_hidden(t);
        let psi = std::fs::read_to_string(self.proc_root.join("pressure/memory"))
            .ok()
            .and_then(|t| memory::parse_psi(&t, "/proc/pressure/memory").ok());
        match psi {
            Some(p) if p.some.avg10 > self.cfg.psi_percent => {
                let since = *self.psi_above_since.get_or_insert(t);
                if t - since >= self.cfg.psi_for_s && !self.psi_warned {
                    self.psi_warned = true;
                    out.push(MemWarning {
                        kind: "memory_warning",
                        target: WarningTarget::Psi,
                        cgroup: None,
                        unit: None,
                        time_unix: now_unix,
                        seconds_to_exhaustion: None,
                        growth_bytes_per_s: 0.0,
                        used_bytes: self.system.last,
                        limit_bytes: self.system.limit,
                        pids: Vec::new(),
                        culprits: Vec::new(),
                        message: format!(
                            "memory pressure: tasks stalled on memory {:.1}% of the time (some avg10) for {:.0} s",
                            p.some.avg10,
                            t - since
                        ),
                    });
                }
            }
            _ => {
                self.psi_above_since = None;
                self.psi_warned = false;
            }
        }
        // A system-wide warning names what explains it.
        if out.iter().any(|w| w.target != WarningTarget::Cgroup) {
            let culprits = self.culprits();
            for w in out.iter_mut().filter(|w| w.target != WarningTarget::Cgroup) {
                if !culprits.is_empty() {
                    w.message = format!("{}; growing most: {}", w.message, culprits.join(", "));
                }
                w.culprits = culprits.clone();
            }
        }
        self.pass_us.push(t0.elapsed().as_micros() as u64);
        self.last_unix = Some(now_unix);
        self.warnings.extend(out.iter().cloned());
        out
    }

    /// The top growing cgroups and slab caches, as "name +X MiB/s (P%)".
    fn culprits(&self) -> Vec<String> {
        let f = self.forecast_without_detail();
        let share = |s: Option<f64>| s.map_or(String::new(), |s| format!(" ({:.0}%)", s * 100.0));
        let mut v: Vec<(f64, String)> = f
            .top_growth
            .iter()
            .take(3)
            .map(|c| {
                (
                    c.growth_bytes_per_s,
                    format!(
                        "{} +{}/s{}",
                        c.unit.as_deref().unwrap_or(&c.cgroup),
                        human_bytes(c.growth_bytes_per_s),
                        share(c.share_of_system_growth)
                    ),
                )
            })
            .collect();
        v.extend(f.slab_growth.iter().take(1).map(|s| {
            (
                s.growth_bytes_per_s,
                format!(
                    "slab {} +{}/s{}",
                    s.cache,
                    human_bytes(s.growth_bytes_per_s),
                    share(s.share_of_system_growth)
                ),
            )
        }));
        v.sort_by(|a, b| b.0.total_cmp(&a.0));
        v.into_iter().map(|x| x.1).collect()
    }

    /// Finds systemd managers (`init.scope`, not a user manager's) and
    /// journalds in the cgroup2 tree, plus the host's PID 1; forgets the
    /// ones that exited.
    fn discover_hidden(&mut self) {
        let mut found: Vec<(HiddenKind, u32, Option<String>)> = vec![(HiddenKind::Pid1, 1, None)];
        if let Some(root) = &self.units_root {
            let mut stack = vec![root.clone()];
            let mut n = 0;
            while let Some(dir) = stack.pop() {
                if n >= self.cfg.max_cgroups {
                    break;
                }
                n += 1;
                let Ok(rd) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for e in rd.flatten() {
                    if !e.file_type().is_ok_and(|f| f.is_dir()) {
                        continue;
                    }
                    let name = e.file_name();
                    let what = match name.as_encoded_bytes() {
                        b"init.scope"
                            if !dir
                                .file_name()
                                .is_some_and(|p| p.as_encoded_bytes().starts_with(b"user@")) =>
                        {
                            Some(HiddenKind::Pid1)
                        }
                        b"systemd-journald.service" => Some(HiddenKind::Journald),
                        _ => None,
                    };
                    if let Some(what) = what {
                        let rel = e
                            .path()
                            .strip_prefix(root)
                            .map(crate::unit::display_rel)
                            .unwrap_or_default();
                        // The first process: the manager, or journald.
                        if let Some(pid) = std::fs::read_to_string(e.path().join("cgroup.procs"))
                            .ok()
                            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
                        {
                            found.push((what, pid, Some(rel)));
                        }
                    }
                    stack.push(e.path());
                }
            }
        }
        let mut keep = HashSet::new();
        for (what, pid, cgroup) in found {
            let Some((comm, start)) =
                std::fs::read_to_string(self.proc_root.join(format!("{pid}/stat")))
                    .ok()
                    .and_then(|t| memory::parse_stat_identity(&t, "stat").ok())
            else {
                continue;
            };
            let kinds: &[HiddenKind] = if what == HiddenKind::Journald {
                &[HiddenKind::Journald, HiddenKind::Journal]
            } else {
                &[what]
            };
            for &k in kinds {
                keep.insert((k, pid, start));
                let e = self
                    .hidden
                    .entry((k, pid, start))
                    .or_insert_with(|| Watched {
                        comm: comm.clone(),
                        cgroup: None,
                        container: None,
                        series: Series::default(),
                        disk_bytes: 0,
                    });
                // The host's PID 1 is found twice on a systemd host: keep
                // the cgroup the tree gave.
                if let Some(c) = &cgroup {
                    let owner: Owner = unit::parse(c.as_bytes());
                    e.container = owner.container.as_ref().map(|c| c.label());
                    e.cgroup = Some(c.clone());
                }
            }
        }
        self.hidden.retain(|k, _| keep.contains(k));
    }

    /// One reading of each hidden victim: statm, or the journal's files.
    fn sample_hidden(&mut self, t: f64) {
        let page = self.page;
        for (&(what, pid, _), w) in self.hidden.iter_mut() {
            let proc_dir = self.proc_root.join(pid.to_string());
            let v = match what {
                HiddenKind::Pid1 | HiddenKind::Journald => {
                    std::fs::read_to_string(proc_dir.join("statm"))
                        .ok()
                        .and_then(|t| memory::parse_statm(&t, "statm", page).ok())
                }
                HiddenKind::Journal => journal_usage(&proc_dir.join("root")).map(|(used, disk)| {
                    w.disk_bytes = disk;
                    used
                }),
            };
            if let Some(v) = v {
                w.series.push(t, v, HIDDEN_WINDOW_S);
            }
        }
    }

    /// The system's, the top cgroups' and slab caches', and the hidden
    /// victims' trends as of the last sample, with what the top cgroups'
    /// memory is (read now).
    pub fn forecast(&self) -> MemForecast {
        let mut f = self.forecast_without_detail();
        if let Some(tree) = &self.tree {
            for c in &mut f.top_growth {
                let dir = tree.root.join(c.cgroup.trim_start_matches('/'));
                let m = if tree.v2 {
                    memory::read_cgroup_v2(&dir)
                } else {
                    memory::read_cgroup_v1(&dir)
                };
                c.breakdown = m.ok().map(|m| Breakdown {
                    anon_bytes: m.anon,
                    file_bytes: m.file,
                    kernel_bytes: m.kernel,
                    high_bytes: m.high,
                    limit_hits: m.limit_hits,
                    oom_kills: m.oom_kills,
                    pressure_some_avg10: m.pressure.map(|p| p.some.avg10),
                });
            }
        }
        f.hidden = self
            .hidden
            .iter()
            .map(|(&(what, pid, _), w)| {
                let growth = self.slope(w.series.points.iter().copied());
                let beside: Vec<&LoopRate> = self
                    .loops
                    .iter()
                    .filter(|l| l.container == w.container && l.restarts_per_s > 0.0)
                    .collect();
                let rate: f64 = beside.iter().map(|l| l.restarts_per_s).sum();
                HiddenTrend {
                    what,
                    pid,
                    comm: w.comm.clone(),
                    cgroup: w.cgroup.clone(),
                    container: w.container.clone(),
                    bytes: w.series.last,
                    disk_bytes: (what == HiddenKind::Journal).then_some(w.disk_bytes),
                    growth_bytes_per_s: growth,
                    per_restart: growth
                        .filter(|g| *g > 0.0 && rate > 0.0)
                        .map(|g| PerRestart {
                            loops: beside.iter().map(|l| l.unit.clone()).collect(),
                            restarts_per_s: rate,
                            bytes_per_restart: g / rate,
                        }),
                }
            })
            .collect();
        f
    }

    fn forecast_without_detail(&self) -> MemForecast {
        let slope = |s: &Series| self.slope(s.points.iter().copied());
        let sys = slope(&self.system);
        // A share compares like with like: the system's growth over the
        // same span as the cgroup's (or cache's) own samples.
        let share = |s: &Series, g: f64| {
            let since = s.points.front()?.0;
            let sys = self.slope(self.system.points.iter().copied().filter(|p| p.0 >= since))?;
            (sys > 0.0).then(|| g / sys)
        };
        let total = self.system.limit.unwrap_or(0);
        // Parents include their children: attribute to leaves only.
        let parents: HashSet<&str> = self
            .cgroups
            .keys()
            .filter_map(|k| {
                k.rsplit_once('/')
                    .map(|(p, _)| if p.is_empty() { "/" } else { p })
            })
            .collect();
        let mut top: Vec<CgroupTrend> = self
            .cgroups
            .iter()
            .filter(|(k, _)| !parents.contains(k.as_str()))
            .filter_map(|(k, s)| {
                let g = slope(s)?;
                (g >= self.cfg.min_growth).then(|| CgroupTrend {
                    cgroup: k.clone(),
                    unit: unit::parse(k.as_bytes()).unit,
                    used_bytes: s.last,
                    limit_bytes: s.limit,
                    growth_bytes_per_s: g,
                    seconds_to_limit: s
                        .limit
                        .and_then(|l| time_to_exhaustion(l as f64 - s.last as f64, g)),
                    share_of_system_growth: share(s, g),
                    breakdown: None,
                })
            })
            .collect();
        top.sort_by(|a, b| b.growth_bytes_per_s.total_cmp(&a.growth_bytes_per_s));
        top.truncate(5);
        let mut slab: Vec<SlabTrend> = self
            .slabs
            .iter()
            .filter_map(|(k, s)| {
                let g = slope(s)?;
                (g >= self.cfg.min_growth).then(|| SlabTrend {
                    cache: k.clone(),
                    bytes: s.last,
                    growth_bytes_per_s: g,
                    share_of_system_growth: share(s, g),
                })
            })
            .collect();
        slab.sort_by(|a, b| b.growth_bytes_per_s.total_cmp(&a.growth_bytes_per_s));
        slab.truncate(3);
        MemForecast {
            used_bytes: self.system.last,
            total_bytes: total,
            growth_bytes_per_s: sys,
            seconds_to_exhaustion: sys
                .and_then(|g| time_to_exhaustion(total as f64 - self.system.last as f64, g)),
            meminfo: self.meminfo,
            top_growth: top,
            slab_growth: slab,
            hidden: Vec::new(),
        }
    }

    /// Theil–Sen slope of `points`; None with fewer than `min_samples`.
    fn slope(&self, points: impl Iterator<Item = (f64, f64)>) -> Option<f64> {
        let v: Vec<(f64, f64)> = points.collect();
        (v.len() >= self.cfg.min_samples)
            .then(|| theil_sen(&v))
            .flatten()
    }

    /// The hierarchy whose memory cgroups are sampled.
    pub fn hierarchy(&self) -> Option<MemHierarchy> {
        self.tree.as_ref().map(|t| {
            if t.v2 {
                MemHierarchy::V2
            } else {
                MemHierarchy::V1
            }
        })
    }

    /// Median microseconds of a sampling pass so far.
    pub fn median_pass_us(&self) -> Option<u64> {
        let mut v = self.pass_us.clone();
        v.sort_unstable();
        v.get(v.len() / 2).copied()
    }

    /// Median microseconds of the passes that also read /proc/slabinfo
    /// (every SLAB_EVERY-th, from the first).
    pub fn median_slab_pass_us(&self) -> Option<u64> {
        let mut v: Vec<u64> = self.pass_us.iter().copied().step_by(SLAB_EVERY).collect();
        v.sort_unstable();
        v.get(v.len() / 2).copied()
    }

    /// Memory cgroups sampled in the last pass.
    pub fn cgroups_sampled(&self) -> usize {
        self.cgroups.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cg(root: &Path, rel: &str, cur: u64, lim: &str) {
        let d = root.join(rel);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("memory.usage_in_bytes"), format!("{cur}\n")).unwrap();
        std::fs::write(d.join("memory.limit_in_bytes"), format!("{lim}\n")).unwrap();
    }

    #[test]
    fn targets_and_hierarchies_keep_their_names() {
        for (t, name) in [
            (WarningTarget::Cgroup, "cgroup"),
            (WarningTarget::System, "system"),
            (WarningTarget::Psi, "psi"),
        ] {
            assert_eq!(serde_json::to_value(t).unwrap(), name);
        }
        for (h, name) in [(MemHierarchy::V1, "v1"), (MemHierarchy::V2, "v2")] {
            assert_eq!(serde_json::to_value(h).unwrap(), name);
        }
    }

    #[test]
    fn a_leaking_cgroup_warns_once_a_steady_one_never() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("memory");
        let procs = d.path().join("proc");
        std::fs::create_dir_all(&procs).unwrap();
        std::fs::write(
            procs.join("meminfo"),
            "MemTotal: 1000000 kB\nMemAvailable: 900000 kB\nSlab: 0 kB\nSUnreclaim: 0 kB\n\
             Committed_AS: 0 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
        )
        .unwrap();
        let mut w = MemWatch::new(
            MemConfig::default(),
            Some(MemTree {
                root: root.clone(),
                v2: false,
            }),
            procs.clone(),
        );
        let mib = 1u64 << 20;
        let mut warned = Vec::new();
        for i in 0..13u64 {
            cg(&root, "", 0, "9223372036854771712");
            cg(
                &root,
                "system.slice/leak.service",
                16 * mib * i,
                &(256 * mib).to_string(),
            );
            cg(&root, "steady", 128 * mib, &(256 * mib).to_string());
            // dentry grows by 1,000 objects of 192 bytes per sample.
            std::fs::write(
                procs.join("slabinfo"),
                format!(
                    "slabinfo - version: 2.1\n# name <active_objs> ...\n\
                     dentry {n} {n} 192 21 1 : tunables 0 0 0 : slabdata 1 1 0\n\
                     kmalloc-64 500 512 64 64 1 : tunables 0 0 0 : slabdata 8 8 0\n",
                    n = 10_000 + 1_000 * i
                ),
            )
            .unwrap();
            warned.extend(w.sample(i as f64 * 0.5, 0.0));
        }
        assert_eq!(warned.len(), 1, "{warned:?}");
        let x = &warned[0];
        assert_eq!(x.unit.as_deref(), Some("leak.service"));
        assert_eq!(x.cgroup.as_deref(), Some("/system.slice/leak.service"));
        // 32 MiB/s (16 MiB per 0.5 s); at the 3rd sample 224 MiB are left.
        assert_eq!(x.growth_bytes_per_s, 32.0 * mib as f64);
        assert_eq!(x.seconds_to_exhaustion, Some(7.0));
        assert!(
            x.message
                .starts_with("leak.service will reach its memory limit in 7 s"),
            "{}",
            x.message
        );
        assert!(w.median_pass_us().is_some());
        assert!(w.median_slab_pass_us().is_some());
        assert_eq!(w.cgroups_sampled(), 3, "root, leak, steady");
        let f = w.forecast();
        assert_eq!(f.top_growth.len(), 1, "only the leak grows: {f:?}");
        let t = &f.top_growth[0];
        assert_eq!(t.cgroup, "/system.slice/leak.service");
        assert_eq!(t.growth_bytes_per_s, 32.0 * mib as f64);
        assert_eq!(t.seconds_to_limit, Some(2.0), "64 MiB left at 32 MiB/s");
        assert_eq!(f.growth_bytes_per_s, Some(0.0), "meminfo did not move");
        assert_eq!(
            f.meminfo,
            Some(MemInfoOut {
                available_bytes: 900000 * 1024,
                slab_bytes: 0,
                sunreclaim_bytes: 0,
                committed_as_bytes: 0,
                swap_total_bytes: 0,
                swap_free_bytes: 0
            })
        );
        assert_eq!(t.share_of_system_growth, None);
        assert_eq!(f.slab_growth.len(), 1, "{:?}", f.slab_growth);
        assert_eq!(f.slab_growth[0].cache, "dentry");
        assert_eq!(f.slab_growth[0].growth_bytes_per_s, 2.0 * 192_000.0);
        // What a kill report carries: the last pass's view of its cgroup.
        let k = w.kill_forecast(Some("/system.slice/leak.service")).unwrap();
        assert_eq!(k.time_unix, 0.0);
        assert_eq!(k.growth_bytes_per_s, Some(0.0));
        let c = k.cgroup.unwrap();
        assert_eq!(
            (
                c.used_bytes,
                c.limit_bytes,
                c.growth_bytes_per_s,
                c.seconds_to_limit
            ),
            (
                192 * mib,
                Some(256 * mib),
                Some(32.0 * mib as f64),
                Some(2.0)
            )
        );
        assert_eq!(w.kill_forecast(Some("/nope")).unwrap().cgroup, None);
        let fresh = MemWatch::new(MemConfig::default(), None, procs.clone());
        assert_eq!(fresh.kill_forecast(None), None, "no pass yet");
    }

    #[test]
    fn sustained_pressure_warns_once_and_rearms() {
        let d = tempfile::tempdir().unwrap();
        let procs = d.path().to_path_buf();
        std::fs::create_dir_all(procs.join("pressure")).unwrap();
        let psi = |avg10: f64| {
            std::fs::write(
                procs.join("pressure/memory"),
                format!("some avg10={avg10:.2} avg60=0.00 avg300=0.00 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"),
            )
            .unwrap();
        };
        let mut w = MemWatch::new(MemConfig::default(), None, procs.clone());
        let mut got = Vec::new();
        // 5 s samples: 25 % from t=0; 30 s later it has lasted long enough.
        for i in 0..10 {
            psi(if i < 8 { 25.0 } else { 2.0 });
            got.push((i, w.sample(i as f64 * 5.0, 0.0)));
        }
        let fired: Vec<_> = got.iter().filter(|(_, v)| !v.is_empty()).collect();
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].0, 6, "at t = 30 s");
        let x = &fired[0].1[0];
        assert_eq!(x.target, WarningTarget::Psi);
        assert_eq!(x.seconds_to_exhaustion, None);
        assert!(x.message.contains("25.0% of the time"), "{}", x.message);
        // Back above after dropping: a new 30 s is needed.
        psi(30.0);
        assert!(w.sample(100.0, 0.0).is_empty());
        assert_eq!(w.sample(130.0, 0.0).len(), 1);
    }

    fn proc_entry(procs: &Path, pid: u32, comm: &str, start: u64, resident_pages: u64) {
        let d = procs.join(pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("stat"),
            format!("{pid} ({comm}) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0\n"),
        )
        .unwrap();
        std::fs::write(
            d.join("statm"),
            format!("9000 {resident_pages} 100 10 0 500 0\n"),
        )
        .unwrap();
    }

    /// A journal file whose last object ends at `end`.
    fn journal_file(path: &Path, end: u64) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let f = File::create(path).unwrap();
        f.set_len(8 << 20).unwrap();
        let mut h = vec![0u8; 272];
        h[..8].copy_from_slice(b"LPKSHHRH");
        h[88..96].copy_from_slice(&272u64.to_le_bytes());
        h[96..104].copy_from_slice(&((8u64 << 20) - 272).to_le_bytes());
        let tail = end - 64;
        h[136..144].copy_from_slice(&tail.to_le_bytes());
        f.write_all_at(&h, 0).unwrap();
        let mut obj = vec![3u8, 0, 0, 0, 0, 0, 0, 0];
        obj.extend_from_slice(&64u64.to_le_bytes());
        f.write_all_at(&obj, tail).unwrap();
    }

    /// PID 1s and journalds are found in the cgroup2 tree (a user
    /// manager's init.scope is not a PID 1), the journal's use is read
    /// from its files' headers, and growth is given per restart of the
    /// loops in the same container.
    #[test]
    fn hidden_victims_and_bytes_per_restart() {
        let d = tempfile::tempdir().unwrap();
        let procs = d.path().join("proc");
        let units = d.path().join("unified");
        let scope = |rel: &str, pid: u32| {
            let dir = units.join(rel);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cgroup.procs"), format!("{pid}\n")).unwrap();
        };
        scope("web/payload/init.scope", 400);
        scope("web/payload/system.slice/systemd-journald.service", 500);
        scope(
            "web/payload/user.slice/user-0.slice/user@0.service/init.scope",
            600,
        );
        proc_entry(&procs, 1, "init", 10, 300);
        proc_entry(&procs, 400, "systemd", 20, 3000);
        proc_entry(&procs, 600, "systemd", 30, 2000);
        let journal = procs.join("500/root/run/log/journal/0123abcd/system.journal");
        let mut w = MemWatch::new(MemConfig::default(), None, procs.clone())
            .with_units_root(Some(units.clone()));
        w.set_loops(vec![
            LoopRate {
                unit: "crashy.service".into(),
                container: Some("web".into()),
                restarts_per_s: 0.5,
            },
            LoopRate {
                unit: "hostloop.service".into(),
                container: None,
                restarts_per_s: 2.0,
            },
        ]);
        let kib = 1024u64;
        for i in 0..7u64 {
            // journald: +64 KiB resident and +128 KiB of journal per second.
            proc_entry(&procs, 500, "systemd-journal", 40, 1000 + 16 * i);
            journal_file(&journal, 4096 + 128 * kib * i);
            w.sample(i as f64, 0.0);
        }
        let f = w.forecast();
        let got: Vec<(HiddenKind, u32, Option<&str>)> = f
            .hidden
            .iter()
            .map(|h| (h.what, h.pid, h.container.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (HiddenKind::Pid1, 1, None),
                (HiddenKind::Pid1, 400, Some("web")),
                (HiddenKind::Journald, 500, Some("web")),
                (HiddenKind::Journal, 500, Some("web")),
            ],
            "the user manager (pid 600) is no PID 1"
        );
        let h = |k: HiddenKind| f.hidden.iter().find(|h| h.what == k && h.pid != 1).unwrap();
        let journald = h(HiddenKind::Journald);
        assert_eq!(journald.comm, "systemd-journal");
        assert_eq!(journald.bytes, (1000 + 16 * 6) * w.page);
        assert_eq!(journald.growth_bytes_per_s, Some(16.0 * w.page as f64));
        let j = h(HiddenKind::Journal);
        assert_eq!(j.bytes, 4096 + 128 * kib * 6);
        assert_eq!(j.growth_bytes_per_s, Some(128.0 * kib as f64));
        let per = j.per_restart.as_ref().unwrap();
        assert_eq!(per.loops, ["crashy.service"], "only the loop beside it");
        assert_eq!(per.bytes_per_restart, 256.0 * kib as f64);
        let pid1 = h(HiddenKind::Pid1);
        assert_eq!(pid1.growth_bytes_per_s, Some(0.0));
        assert_eq!(
            pid1.per_restart, None,
            "a flat PID 1 is not charged to a loop"
        );
        assert_eq!(
            journal_usage(&procs.join("500/root")),
            Some((
                4096 + 128 * kib * 6,
                std::fs::metadata(&journal).unwrap().blocks() * 512
            ))
        );
        assert_eq!(journal_usage(&procs.join("1/root")), None);
        // journald exits: it is forgotten at the next discovery.
        std::fs::remove_dir_all(procs.join("500")).unwrap();
        for i in 7..13 {
            w.sample(i as f64, 0.0);
        }
        assert!(
            w.forecast().hidden.iter().all(|h| h.pid != 500),
            "{:?}",
            w.forecast().hidden
        );
    }

    /// A kill counted by a v2 cgroup shows in its ancestors too: only the
    /// deepest one is reported. A counter seen for the first time is a
    /// baseline, not a kill.
    #[test]
    fn memcg_oom_kill_counters_report_the_deepest_rise() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("cg");
        let set = |rel: &str, kills: u64| {
            let dir = root.join(rel);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("memory.current"), "1000\n").unwrap();
            std::fs::write(dir.join("memory.max"), "100000\n").unwrap();
            std::fs::write(
                dir.join("memory.events"),
                format!("low 0\nhigh 0\nmax 4\noom 1\noom_kill {kills}\n"),
            )
            .unwrap();
        };
        let mut w = MemWatch::new(
            MemConfig::default(),
            Some(MemTree {
                root: root.clone(),
                v2: true,
            }),
            d.path().join("proc"),
        );
        set("a.slice", 3);
        set("a.slice/leak.service", 3);
        w.sample(0.0, 0.0);
        assert!(w.new_memcg_oom_kills().is_empty(), "baseline");
        set("a.slice", 5);
        set("a.slice/leak.service", 5);
        w.sample(1.0, 100.0);
        let k = w.new_memcg_oom_kills();
        assert_eq!(k.len(), 1, "{k:?}");
        assert_eq!(k[0].cgroup, "/a.slice/leak.service");
        assert_eq!(k[0].unit.as_deref(), Some("leak.service"));
        assert_eq!((k[0].kills, k[0].total, k[0].time_unix), (2, 5, 100.0));
        assert!(w.new_memcg_oom_kills().is_empty(), "handed out once");
        assert_eq!(w.memcg_oom_kills.len(), 1);
        // Its inode names it for the probe's memcg id, in its own
        // hierarchy only.
        let ino = std::fs::metadata(root.join("a.slice/leak.service"))
            .unwrap()
            .ino();
        assert_eq!(
            w.path_of_ino(ino, true).as_deref(),
            Some("/a.slice/leak.service")
        );
        assert_eq!(w.path_of_ino(ino, false), None);
        // A growing cgroup is ranked with what its memory is.
        let leak = root.join("a.slice/leak.service");
        std::fs::write(leak.join("memory.high"), "max\n").unwrap();
        std::fs::write(
            leak.join("memory.stat"),
            "anon 3000000\nfile 1000000\nkernel 200000\nslab 150000\n",
        )
        .unwrap();
        std::fs::write(
            leak.join("memory.pressure"),
            "some avg10=4.50 avg60=1.00 avg300=0.20 total=99\n\
             full avg10=1.00 avg60=0.10 avg300=0.00 total=9\n",
        )
        .unwrap();
        for i in 2..6u64 {
            std::fs::write(leak.join("memory.current"), format!("{}\n", i << 20)).unwrap();
            w.sample(i as f64, 0.0);
        }
        let f = w.forecast();
        let top = &f.top_growth[0];
        assert_eq!(top.cgroup, "/a.slice/leak.service");
        assert_eq!(
            top.breakdown,
            Some(Breakdown {
                anon_bytes: 3_000_000,
                file_bytes: 1_000_000,
                kernel_bytes: 200_000,
                high_bytes: None,
                limit_hits: 4,
                oom_kills: 5,
                pressure_some_avg10: Some(4.5),
            })
        );
    }

    /// The system-wide warning names what grows: the leaking cgroup with
    /// its share of the system's growth.
    #[test]
    fn system_warning_names_the_culprits() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("memory");
        let procs = d.path().join("proc");
        std::fs::create_dir_all(&procs).unwrap();
        let mut w = MemWatch::new(
            MemConfig::default(),
            Some(MemTree {
                root: root.clone(),
                v2: false,
            }),
            procs.clone(),
        );
        let mib = 1u64 << 20;
        let mut warned = Vec::new();
        for i in 0..4u64 {
            // 1 GiB total; available drops 8 MiB/s, 6 of them the leak's.
            std::fs::write(
                procs.join("meminfo"),
                format!(
                    "MemTotal: 1048576 kB\nMemAvailable: {} kB\nSlab: 0 kB\nSUnreclaim: 0 kB\n\
                     Committed_AS: 0 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
                    (1024 - 8 * i) * 1024
                ),
            )
            .unwrap();
            cg(&root, "", 0, "9223372036854771712");
            cg(&root, "leak", 6 * mib * i, "9223372036854771712");
            warned.extend(w.sample(i as f64, 0.0));
        }
        assert_eq!(warned.len(), 1, "{warned:?}");
        let x = &warned[0];
        assert_eq!(x.target, WarningTarget::System);
        assert_eq!(x.culprits, ["/leak +6.0 MiB/s (75%)"]);
        assert!(
            x.message
                .ends_with("; growing most: /leak +6.0 MiB/s (75%)"),
            "{}",
            x.message
        );
    }

    /// systemd-oomd acts by default when memory pressure stays above 60%
    /// for 30 s. On any rising pressure, spawnscope's default (some avg10
    /// above 10% for 30 s) fires well before: here on a ramp of 1 point
    /// per second, 50 s earlier.
    #[test]
    fn pressure_warning_precedes_systemd_oomd_defaults() {
        let d = tempfile::tempdir().unwrap();
        let procs = d.path().to_path_buf();
        std::fs::create_dir_all(procs.join("pressure")).unwrap();
        let mut w = MemWatch::new(MemConfig::default(), None, procs.clone());
        let (mut ours, mut oomd, mut oomd_since) = (None, None, None);
        for t in 0..=120u32 {
            let p = f64::from(t).min(95.0);
            std::fs::write(
                procs.join("pressure/memory"),
                format!(
                    "some avg10={p:.2} avg60=0.00 avg300=0.00 total=1\n\
                     full avg10={p:.2} avg60=0.00 avg300=0.00 total=1\n"
                ),
            )
            .unwrap();
            if !w.sample(f64::from(t), 0.0).is_empty() && ours.is_none() {
                ours = Some(t);
            }
            // oomd: ManagedOOMMemoryPressureLimit=60% for
            // DefaultMemoryPressureDurationSec=30s.
            if p > 60.0 {
                let since = *oomd_since.get_or_insert(t);
                if t - since >= 30 && oomd.is_none() {
                    oomd = Some(t);
                }
            }
        }
        assert_eq!(ours, Some(41), "above 10% from t=11, for 30 s");
        assert_eq!(oomd, Some(91));
    }

    /// Limits are re-read every SLAB_EVERY passes (they seldom change), at
    /// once for a new cgroup, and a cgroup made again under the same name
    /// starts a new history.
    #[test]
    fn limits_are_reread_and_recreated_cgroups_start_afresh() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("memory");
        let mut w = MemWatch::new(
            MemConfig::default(),
            Some(MemTree {
                root: root.clone(),
                v2: false,
            }),
            d.path().join("proc"),
        );
        cg(&root, "", 0, "9223372036854771712");
        cg(&root, "a", 100, "1000");
        w.sample(0.0, 0.0);
        assert_eq!(w.cgroups["/a"].limit, Some(1000));
        cg(&root, "a", 100, "2000");
        for i in 1..SLAB_EVERY {
            w.sample(i as f64, 0.0);
            assert_eq!(w.cgroups["/a"].limit, Some(1000), "pass {i}");
        }
        w.sample(SLAB_EVERY as f64, 0.0);
        assert_eq!(w.cgroups["/a"].limit, Some(2000));
        assert_eq!(w.cgroups["/a"].points.len(), SLAB_EVERY + 1);
        let old = w.cgroups["/a"].ino;
        // Made again while the first is still open: another inode for sure.
        std::fs::rename(root.join("a"), root.join("gone")).unwrap();
        cg(&root, "a", 5, "3000");
        assert_ne!(std::fs::metadata(root.join("a")).unwrap().ino(), old);
        w.sample(20.0, 0.0);
        let a = &w.cgroups["/a"];
        assert_eq!((a.limit, a.points.len(), a.last), (Some(3000), 1, 5));
    }

    #[test]
    fn memory_tree_prefers_v2_with_the_controller() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("cgroup.controllers"), "cpu io memory pids\n").unwrap();
        let v2 = CgroupMount {
            mount_point: d.path().to_path_buf(),
            root: "/".into(),
            fstype: "cgroup2".into(),
            super_options: vec![],
        };
        let v1 = CgroupMount {
            mount_point: "/sys/fs/cgroup/memory".into(),
            root: "/".into(),
            fstype: "cgroup".into(),
            super_options: vec!["rw".into(), "memory".into()],
        };
        assert!(memory_tree(&[v2.clone(), v1.clone()]).unwrap().v2);
        std::fs::write(d.path().join("cgroup.controllers"), "cpu pids\n").unwrap();
        let t = memory_tree(&[v2, v1]).unwrap();
        assert!(!t.v2);
        assert_eq!(t.root, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(memory_tree(&[]), None);
    }
}
