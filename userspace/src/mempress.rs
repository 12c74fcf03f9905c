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
    output::schema::Schema,
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
    pub schema: Schema,
    pub target: WarningTarget,
    /// Path in the memory hierarchy; null for the system.
    pub cgroup: Option<String>,
    pub unit: Option<String>,
    pub time_unix: f64,
    /// Null for a pressure warning.
    pub seconds_to_exhaustion: Option<f64>,
    pub growth_bytes_per_s: f64,
    /// How long that growth had been observed without a break; null for a
    /// pressure warning.
    pub observed_s: Option<f64>,
    /// The trended quantity: for a cgroup its use (charge less reclaimable
    /// cache), for the system MemTotal − MemAvailable.
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
    pub schema: Schema,
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
    /// The trended quantity over the window. For a cgroup: its use (charge
    /// less reclaimable cache), sampled only while memory.stat is read
    /// (see [`wants_stat`]); for the system: MemTotal − MemAvailable.
    points: VecDeque<(f64, f64)>,
    limit: Option<u64>,
    /// The last reading: a cgroup's charge (memory.current /
    /// memory.usage_in_bytes), the system's use.
    last: u64,
    /// A cgroup's last use, when memory.stat was read.
    use_last: Option<u64>,
    /// The charge and time of the previous pass, to see it rise.
    charged_prev: Option<(f64, u64)>,
    /// Since when the trended quantity has grown without a break (see
    /// [`Series::update_trend`]).
    since: Option<f64>,
    warned: bool,
    /// Inode number of the cgroup directory: its id in that hierarchy.
    ino: u64,
    /// Its OOM-kill counter, for cgroups with a limit.
    oom_kills: Option<u64>,
}

/// What a series' trend says as of its last sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// Theil–Sen slope over the window, bytes per second.
    pub slope: f64,
    /// How long the growth has been seen without a break; 0 when it does
    /// not grow.
    pub observed_s: f64,
    /// Whether it still grows in the later half of that span (see
    /// [`sustained`]).
    pub sustained: bool,
}

impl Series {
    fn push(&mut self, t: f64, v: u64, window: f64) {
        self.points.push_back((t, v as f64));
        self.last = v;
        self.trim(t, window);
    }

    fn trim(&mut self, t: f64, window: f64) {
        while self.points.front().is_some_and(|p| p.0 < t - window) {
            self.points.pop_front();
        }
    }

    /// The trend of the window's points, and the growth run kept across
    /// passes: a run starts at the window's trough when the slope first
    /// reaches `min_growth`, and ends (re-arming the warning) at the first
    /// pass whose slope falls below it or that has too few samples.
    fn update_trend(&mut self, cfg: &MemConfig) -> Option<Trend> {
        let slope = (self.points.len() >= cfg.min_samples)
            .then(|| theil_sen(self.points.make_contiguous()))
            .flatten();
        let Some(slope) = slope.filter(|g| *g >= cfg.min_growth) else {
            self.since = None;
            self.warned = false;
            return slope.map(|slope| Trend {
                slope,
                observed_s: 0.0,
                sustained: false,
            });
        };
        let points = self.points.make_contiguous();
        let since = *self.since.get_or_insert_with(|| trough(points).0);
        let now = points.last().map_or(since, |p| p.0);
        let start = points.partition_point(|p| p.0 < since);
        Some(Trend {
            slope,
            observed_s: now - since,
            sustained: sustained(&points[start..], slope),
        })
    }

    /// The run's length as of the last sample, as the last pass left it.
    fn observed_s(&self) -> Option<f64> {
        Some(self.points.back()?.0 - self.since?)
    }
}

/// The last sample at the window's lowest value: where the growth seen in
/// the window started.
fn trough(points: &[(f64, f64)]) -> (f64, f64) {
    points
        .iter()
        .copied()
        .reduce(|lo, p| if p.1 <= lo.1 { p } else { lo })
        .unwrap_or((0.0, 0.0))
}

/// Growth is sustained when the later half (in time) of the run still
/// grows at half the trend's slope or more: a step, or a burst that has
/// ended, leaves that half flat even while the window's Theil–Sen slope
/// still shows it.
pub fn sustained(run: &[(f64, f64)], slope: f64) -> bool {
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return false;
    };
    let mid = (first.0 + last.0) / 2.0;
    let later = &run[run.partition_point(|p| p.0 < mid)..];
    theil_sen(later).is_some_and(|g| g >= slope / 2.0)
}

/// Whether a forecast of `tte` seconds may be made from growth observed
/// for `observed_s`: for at least `min_observed_s`, and for at least
/// 1/`max_extrapolation` of the time forecast.
pub fn observed_long_enough(tte: f64, observed_s: f64, cfg: &MemConfig) -> bool {
    observed_s >= cfg.min_observed_s && observed_s * cfg.max_extrapolation >= tte
}

/// The pressure a PSI warning is about: `full avg10` (the share of time
/// every non-idle task was stalled on memory at once, lost throughput, the
/// quantity systemd-oomd acts on), when above `percent`. `some` alone is
/// one task waiting, for a refault or a reclaim of its own, while others
/// run: it is reported beside, never enough.
pub fn real_pressure(p: &memory::Psi, percent: f64) -> Option<f64> {
    p.full.map(|f| f.avg10).filter(|f| *f > percent)
}

/// Whether a cgroup's memory.stat is read this pass, to sample its use:
/// only cgroups that can warn (a limit) or be named as a culprit (a leaf),
/// and of those only the ones whose charge rose since the last pass by
/// `min_growth` per second or more, that are within a quarter of their
/// limit (where reclaim may hold the charge flat while use grows), or
/// whose use was sampled within the window (so a series, once started,
/// stays dense). The charge, read for every cgroup, is the cheap filter.
fn wants_stat(s: &Series, t: f64, cur: u64, leaf: bool, cfg: &MemConfig) -> bool {
    let rose = s
        .charged_prev
        .is_some_and(|(pt, pv)| t > pt && cur as f64 - pv as f64 >= cfg.min_growth * (t - pt));
    let near_limit = s.limit.is_some_and(|l| cur >= l - l / 4);
    (leaf || s.limit.is_some()) && (rose || near_limit || !s.points.is_empty())
}

/// A cgroup's use: its charge less what the kernel can reclaim (see
/// [`memory::reclaimable_bytes`]); None when memory.stat is unreadable.
fn cgroup_use(dir: &Path, v2: bool, charged: u64) -> Option<u64> {
    let t = std::fs::read_to_string(dir.join("memory.stat")).ok()?;
    let stat = memory::parse_kv(&t, "memory.stat").ok()?;
    Some(charged.saturating_sub(memory::reclaimable_bytes(&stat, v2)))
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
    /// No exhaustion warning before the growth has been observed this
    /// long...
    pub min_observed_s: f64,
    /// ...nor for a time to exhaustion more than this many times what was
    /// observed.
    pub max_extrapolation: f64,
    /// Warn when /proc/pressure/memory "full avg10" stays above this
    /// percentage...
    pub psi_percent: f64,
    /// ...for this long.
    pub psi_for_s: f64,
}

impl Default for MemConfig {
    /// A forecast reaches at most twice as far as the growth was seen
    /// (`max_extrapolation` 2): a minute of growth never forecasts an
    /// hour, a burst that fills a few GiB of a big host in seconds is not
    /// taken for a trend, and a steady leak that would exhaust memory T
    /// after it began is still warned at T/3 (observed t with T − t ≤ 2t
    /// left), two thirds of its course ahead. The 3 s floor keeps two or
    /// three quick samples from making a forecast on their own; a 16 MiB/s
    /// leak into a 256 MiB limit sampled every 500 ms is still warned 10 s
    /// before its kill.
    fn default() -> Self {
        Self {
            window_s: 60.0,
            warn_before_s: 3600.0,
            min_samples: 3,
            min_growth: 16.0 * 1024.0,
            max_cgroups: 4096,
            min_observed_s: 3.0,
            max_extrapolation: 2.0,
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
    /// How long that growth has been observed without a break; null when
    /// it does not grow.
    pub observed_s: Option<f64>,
    /// The rest of the last /proc/meminfo reading; null before one.
    pub meminfo: Option<MemInfoOut>,
    /// Growing cgroups, largest growth first (at most 5).
    pub top_growth: Vec<CgroupTrend>,
    /// Growing slab caches (kernel memory no cgroup may own) that are not
    /// reclaimable, largest growth first (at most 3); empty when
    /// /proc/slabinfo is unreadable.
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
    /// Its charge (memory.current / memory.usage_in_bytes), cache included.
    pub used_bytes: u64,
    /// Its use: the charge less reclaimable cache; what is trended.
    pub use_bytes: u64,
    pub limit_bytes: Option<u64>,
    /// Growth of its use.
    pub growth_bytes_per_s: f64,
    /// How long that growth has been observed without a break.
    pub observed_s: Option<f64>,
    /// Time to its own limit, if it has one.
    pub seconds_to_limit: Option<f64>,
    /// Its growth as a share of the system's, both use over the same span:
    /// above 1 only when other memory was freed meanwhile (or by sampling
    /// noise); null when the system's use is not growing.
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
    /// Its charge, cache included.
    pub used_bytes: u64,
    /// Its use (charge less reclaimable cache); null when its memory.stat
    /// was not read in the last pass (its charge was not growing).
    pub use_bytes: Option<u64>,
    pub limit_bytes: Option<u64>,
    /// Growth of its use; null until enough samples.
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
    /// Whether each of those caches is reclaimable, as sysfs said.
    slab_reclaimable: BTreeMap<String, bool>,
    /// Where sysfs is (for /sys/kernel/slab).
    sys_root: PathBuf,
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
            slab_reclaimable: BTreeMap::new(),
            sys_root: PathBuf::from("/sys"),
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
                        use_bytes: s.use_last,
                        limit_bytes: s.limit,
                        growth_bytes_per_s: g,
                        seconds_to_limit: s
                            .limit
                            .zip(g)
                            .zip(s.use_last)
                            .and_then(|((l, g), u)| time_to_exhaustion(l as f64 - u as f64, g)),
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

    /// Where sysfs is; /sys unless a test says otherwise.
    pub fn with_sys_root(mut self, root: PathBuf) -> Self {
        self.sys_root = root;
        self
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
                let children: Vec<(PathBuf, u64)> = std::fs::read_dir(&dir)
                    .map(|rd| {
                        rd.flatten()
                            .filter(|e| e.file_type().is_ok_and(|f| f.is_dir()))
                            .map(|e| (e.path(), e.ino()))
                            .collect()
                    })
                    .unwrap_or_default();
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
                    s.limit = lim;
                    s.last = cur;
                    s.ino = ino;
                    s.trim(t, self.cfg.window_s);
                    if wants_stat(s, t, cur, children.is_empty(), &self.cfg) {
                        s.use_last = cgroup_use(&dir, tree.v2, cur);
                        if let Some(u) = s.use_last {
                            s.points.push_back((t, u as f64));
                        }
                    } else {
                        s.use_last = None;
                    }
                    s.charged_prev = Some((t, cur));
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
                stack.extend(children);
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
                schema: Schema,
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
            self.system.use_last = Some(used);
            self.meminfo = Some((&m).into());
        }
        let window = self.cfg.window_s;
        let mut out = Vec::new();
        let cfg = self.cfg;
        // Every series' growth run is kept up to date (culprits report how
        // long theirs was observed); those with a limit may warn.
        let check = |s: &mut Series| -> Option<(f64, f64, f64)> {
            s.trim(t, window);
            let trend = s.update_trend(&cfg)?;
            let limit = s.limit? as f64;
            if trend.slope < cfg.min_growth || s.warned {
                return None;
            }
            let used = s.use_last? as f64;
            let tte = time_to_exhaustion(limit - used, trend.slope)?;
            if tte < cfg.warn_before_s
                && trend.sustained
                && observed_long_enough(tte, trend.observed_s, &cfg)
            {
                s.warned = true;
                return Some((tte, trend.slope, trend.observed_s));
            }
            None
        };
        for (rel, s) in self.cgroups.iter_mut() {
            if let Some((tte, slope, observed)) = check(s) {
                let used = s.use_last.unwrap_or(s.last);
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
                    schema: Schema,
                    target: WarningTarget::Cgroup,
                    cgroup: Some(rel.clone()),
                    unit: owner.unit,
                    time_unix: now_unix,
                    seconds_to_exhaustion: Some(tte),
                    growth_bytes_per_s: slope,
                    observed_s: Some(observed),
                    used_bytes: used,
                    limit_bytes: s.limit,
                    pids,
                    culprits: Vec::new(),
                    message: format!(
                        "{name} will reach its memory limit in {tte:.0} s: use growing {}/s for {observed:.0} s, {} of {} (not counting reclaimable cache)",
                        human_bytes(slope),
                        human_bytes(used as f64),
                        human_bytes(s.limit.unwrap_or(0) as f64)
                    ),
                });
            }
        }
        if let Some((tte, slope, observed)) = check(&mut self.system) {
            out.push(MemWarning {
                kind: "memory_warning",
                schema: Schema,
                target: WarningTarget::System,
                cgroup: None,
                unit: None,
                time_unix: now_unix,
                seconds_to_exhaustion: Some(tte),
                growth_bytes_per_s: slope,
                observed_s: Some(observed),
                used_bytes: self.system.last,
                limit_bytes: self.system.limit,
                pids: Vec::new(),
                culprits: Vec::new(),
                message: format!(
                    "the system will run out of available memory in {tte:.0} s: use growing {}/s for {observed:.0} s",
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
            self.slab_reclaimable.retain(|k, _| names.contains(k));
            for c in &caches {
                // Read once per cache: the flag is fixed at its creation.
                // A name that is not a plain file name is not looked up.
                if !self.slab_reclaimable.contains_key(&c.name)
                    && !c.name.contains('/')
                    && !c.name.starts_with('.')
                {
                    let f = self
                        .sys_root
                        .join("kernel/slab")
                        .join(&c.name)
                        .join("reclaim_account");
                    if let Some(r) = std::fs::read_to_string(&f)
                        .ok()
                        .and_then(|t| memory::parse_reclaim_account(&t, "reclaim_account").ok())
                    {
                        self.slab_reclaimable.insert(c.name.clone(), r);
                    }
                }
            }
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
            Some(p) if let Some(full) = real_pressure(&p, self.cfg.psi_percent) => {
                let since = *self.psi_above_since.get_or_insert(t);
                if t - since >= self.cfg.psi_for_s && !self.psi_warned {
                    self.psi_warned = true;
                    out.push(MemWarning {
                        kind: "memory_warning",
                        schema: Schema,
                        target: WarningTarget::Psi,
                        cgroup: None,
                        unit: None,
                        time_unix: now_unix,
                        seconds_to_exhaustion: None,
                        growth_bytes_per_s: 0.0,
                        observed_s: None,
                        used_bytes: self.system.last,
                        limit_bytes: self.system.limit,
                        pids: Vec::new(),
                        culprits: Vec::new(),
                        message: format!(
                            "memory pressure: all running tasks stalled on memory at once {full:.1}% of the time (full avg10; some {:.1}%) for {:.0} s",
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
        let share = |s: Option<f64>, g: f64| match s {
            None => String::new(),
            Some(s) if s <= 1.0 => format!(" ({:.0}%)", s * 100.0),
            // Both are use over the same span: more than the system's
            // growth means other memory was freed meanwhile; a share above
            // 100% would say nothing more.
            Some(s) => format!(
                " (more than the system's +{}/s: other memory was freed)",
                human_bytes(g / s)
            ),
        };
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
                        share(c.share_of_system_growth, c.growth_bytes_per_s)
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
                    share(s.share_of_system_growth, s.growth_bytes_per_s)
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
                let used = s.use_last?;
                (g >= self.cfg.min_growth).then(|| CgroupTrend {
                    cgroup: k.clone(),
                    unit: unit::parse(k.as_bytes()).unit,
                    used_bytes: s.last,
                    use_bytes: used,
                    limit_bytes: s.limit,
                    growth_bytes_per_s: g,
                    observed_s: s.observed_s(),
                    seconds_to_limit: s
                        .limit
                        .and_then(|l| time_to_exhaustion(l as f64 - used as f64, g)),
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
            .filter(|(k, _)| self.slab_reclaimable.get(*k) != Some(&true))
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
            observed_s: self.system.observed_s(),
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

    /// A v1 memory.stat with this much page cache, `shmem` of it tmpfs.
    fn stat_v1(root: &Path, rel: &str, cache: u64, shmem: u64) {
        std::fs::write(
            root.join(rel).join("memory.stat"),
            format!(
                "cache 0\nrss 0\nshmem 0\ntotal_cache {cache}\ntotal_rss 0\ntotal_shmem {shmem}\n"
            ),
        )
        .unwrap();
    }

    /// A v2 cgroup: charge, limit and memory.stat.
    fn cg2(root: &Path, rel: &str, anon: u64, file: u64, shmem: u64, slab_rec: u64, max: &str) {
        let d = root.join(rel);
        std::fs::create_dir_all(&d).unwrap();
        let cur = anon + file + slab_rec;
        std::fs::write(d.join("memory.current"), format!("{cur}\n")).unwrap();
        std::fs::write(d.join("memory.max"), format!("{max}\n")).unwrap();
        std::fs::write(
            d.join("memory.stat"),
            format!(
                "anon {anon}\nfile {file}\nkernel {slab_rec}\nshmem {shmem}\n\
                 slab_reclaimable {slab_rec}\nslab_unreclaimable 0\n"
            ),
        )
        .unwrap();
    }

    /// A /proc/meminfo with this much of `total_mib` available.
    fn meminfo(procs: &Path, total_mib: u64, available_mib: f64) {
        std::fs::write(
            procs.join("meminfo"),
            format!(
                "MemTotal: {} kB\nMemAvailable: {} kB\nSlab: 0 kB\nSUnreclaim: 0 kB\n\
                 Committed_AS: 0 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
                total_mib * 1024,
                (available_mib * 1024.0) as u64
            ),
        )
        .unwrap();
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
        )
        // No sysfs slab flags: caches count as unreclaimable.
        .with_sys_root(d.path().join("sys"));
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
            stat_v1(&root, "system.slice/leak.service", 0, 0);
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
        // 32 MiB/s (16 MiB per 0.5 s), its use sampled from the first rise
        // (t = 0.5 s). Observed for 3 s (the minimum) at t = 3.5 s, when
        // 144 MiB are left: 4.5 s, within twice what was observed.
        assert_eq!(x.growth_bytes_per_s, 32.0 * mib as f64);
        assert_eq!(x.observed_s, Some(3.0));
        assert_eq!(x.used_bytes, 112 * mib);
        assert_eq!(x.seconds_to_exhaustion, Some(4.5));
        assert!(
            x.message.starts_with(
                "leak.service will reach its memory limit in 4 s: use growing 32.0 MiB/s for 3 s"
            ),
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
                c.use_bytes,
                c.limit_bytes,
                c.growth_bytes_per_s,
                c.seconds_to_limit
            ),
            (
                192 * mib,
                Some(192 * mib),
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
                format!("some avg10={avg10:.2} avg60=0.00 avg300=0.00 total=1\nfull avg10={avg10:.2} avg60=0.00 avg300=0.00 total=1\n"),
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
        assert!(
            x.message.contains("at once 25.0% of the time (full avg10"),
            "{}",
            x.message
        );
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
    /// its share of the system's growth, both use over the same span.
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
        for i in 0..20u64 {
            let t = 5 * i;
            // 1 GiB total; available drops 8 MiB/s, 6 of them the leak's.
            // The cache cgroup grows faster, in page cache only.
            meminfo(&procs, 1024, (1024 - 8 * t) as f64);
            cg(&root, "", 0, "9223372036854771712");
            cg(&root, "leak", 6 * mib * t, "9223372036854771712");
            stat_v1(&root, "leak", 0, 0);
            cg(&root, "cache", 20 * mib * t, "9223372036854771712");
            stat_v1(&root, "cache", 20 * mib * t, 0);
            warned.extend(w.sample(t as f64, 0.0));
        }
        assert_eq!(warned.len(), 1, "{warned:?}");
        let x = &warned[0];
        assert_eq!(x.target, WarningTarget::System);
        // At t = 45 s: 664 MiB left at 8 MiB/s is 83 s, no more than twice
        // the 45 s observed; at t = 40 s, 88 s was more than twice 40 s.
        assert_eq!(x.observed_s, Some(45.0));
        assert_eq!(x.seconds_to_exhaustion, Some(83.0));
        assert_eq!(x.culprits, ["/leak +6.0 MiB/s (75%)"]);
        assert!(
            x.message.ends_with(
                "in 83 s: use growing 8.0 MiB/s for 45 s; growing most: /leak +6.0 MiB/s (75%)"
            ),
            "{}",
            x.message
        );
    }

    fn v2_watch(d: &Path, cfg: MemConfig) -> MemWatch {
        std::fs::create_dir_all(d.join("proc")).unwrap();
        MemWatch::new(
            cfg,
            Some(MemTree {
                root: d.join("cg"),
                v2: true,
            }),
            d.join("proc"),
        )
        .with_sys_root(d.join("sys"))
    }

    /// The host: 24 GiB, 23 GiB free. For a minute a build's
    /// cgroup grows 39 MiB/s of page cache while the system's use grows
    /// 7.5 MiB/s (a forecast of ~3100 s); then 4 GiB land in tmpfs in one
    /// step. No warning: the cache is not use, the minute is not half of
    /// 3100 s, and the step is not sustained growth.
    #[test]
    fn a_page_cache_burst_and_a_tmpfs_step_on_a_big_host_raise_no_warning() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("cg");
        let procs = d.path().join("proc");
        let mut w = v2_watch(d.path(), MemConfig::default());
        let mib = 1u64 << 20;
        let mut warned = Vec::new();
        let mut forecasts = Vec::new();
        for i in 0..=40u64 {
            let t = 5 * i;
            let burst = t.min(60);
            let tmpfs = if t >= 100 { 4096 } else { 0 };
            meminfo(
                &procs,
                24 * 1024,
                23.0 * 1024.0 - 7.5 * burst as f64 - tmpfs as f64,
            );
            cg2(
                &root,
                "system.slice/build.service",
                100 * mib,
                (39 * burst + tmpfs) * mib,
                tmpfs * mib,
                0,
                "max",
            );
            warned.extend(w.sample(t as f64, 0.0));
            forecasts.push(w.forecast());
        }
        assert!(warned.is_empty(), "{warned:?}");
        // The forecast itself was made, and said ~3100 s after the minute.
        let at60 = &forecasts[12];
        assert_eq!(at60.growth_bytes_per_s, Some(7.5 * mib as f64));
        assert_eq!(at60.observed_s, Some(60.0));
        let tte = at60.seconds_to_exhaustion.unwrap();
        assert!((3000.0..3100.0).contains(&tte), "{tte}");
        assert!(
            at60.top_growth.is_empty(),
            "cache growth is not use: {:?}",
            at60.top_growth
        );
        // The tmpfs step is use: the cgroup is ranked while it shows.
        assert!(
            forecasts[26].top_growth[0].cgroup == "/system.slice/build.service",
            "{:?}",
            forecasts[26]
        );
    }

    /// A steady leak of the system's memory on the same host is warned
    /// once it has been observed for half its time to exhaustion.
    #[test]
    fn a_steady_system_leak_is_warned_once_observed_for_half_its_horizon() {
        let d = tempfile::tempdir().unwrap();
        let procs = d.path().join("proc");
        let mut w = v2_watch(d.path(), MemConfig::default());
        let mut warned = Vec::new();
        for i in 0..=300u64 {
            let t = 5.0 * i as f64;
            meminfo(&procs, 24 * 1024, 23.0 * 1024.0 - 7.5 * t);
            for x in w.sample(t, t) {
                warned.push(x);
            }
        }
        assert_eq!(warned.len(), 1, "{warned:?}");
        let x = &warned[0];
        // 23552 MiB at 7.5 MiB/s from t = 0: 3140.3 s to go; at t = 1050
        // s, 2090.3 s are left, and 1050 s is half of that or more (at
        // 1045 s, 2095.3 s was not).
        assert_eq!(x.time_unix, 1050.0);
        assert_eq!(x.observed_s, Some(1050.0));
        let tte = x.seconds_to_exhaustion.unwrap();
        assert!((tte - 2090.3).abs() < 0.1, "{tte}");
    }

    /// Page cache and reclaimable slab growing in a cgroup are not use;
    /// tmpfs (shmem, counted in `file`) is.
    #[test]
    fn file_cache_growth_in_a_cgroup_is_not_counted() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("cg");
        let procs = d.path().join("proc");
        let mut w = v2_watch(d.path(), MemConfig::default());
        let mib = 1u64 << 20;
        let gib = 1024 * mib;
        let mut warned = Vec::new();
        for i in 0..12u64 {
            let g = 20 * mib * i;
            meminfo(&procs, 24 * 1024, 20.0 * 1024.0);
            // A 1 GiB limit each: the cache would reach it in under 50 s.
            cg2(
                &root,
                "cache.service",
                50 * mib,
                g,
                0,
                g / 4,
                &gib.to_string(),
            );
            cg2(&root, "tmpfs.service", 50 * mib, g, g, 0, &gib.to_string());
            warned.extend(w.sample(i as f64, 0.0));
        }
        let f = w.forecast();
        let grown: Vec<(&str, f64, u64)> = f
            .top_growth
            .iter()
            .map(|c| (c.cgroup.as_str(), c.growth_bytes_per_s, c.use_bytes))
            .collect();
        assert_eq!(grown, [("/tmpfs.service", 20.0 * mib as f64, 270 * mib)]);
        assert_eq!(f.top_growth[0].used_bytes, 270 * mib);
        let cache = w
            .kill_forecast(Some("/cache.service"))
            .unwrap()
            .cgroup
            .unwrap();
        assert_eq!(cache.use_bytes, Some(50 * mib), "{cache:?}");
        assert_eq!(cache.growth_bytes_per_s, Some(0.0));
        assert_eq!(cache.seconds_to_limit, None);
        assert!(
            warned
                .iter()
                .all(|x| x.cgroup.as_deref() != Some("/cache.service")),
            "{warned:?}"
        );
    }

    /// Shares compare the same quantity over the same span: cgroups'
    /// growths add up to the system's, never beyond; when the system's
    /// use grows less than a cgroup's (other memory was freed), the text
    /// says so instead of a share above 100%.
    #[test]
    fn shares_of_the_same_quantity_stay_within_the_whole() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("cg");
        let procs = d.path().join("proc");
        let mut w = v2_watch(d.path(), MemConfig::default());
        let mib = 1u64 << 20;
        for i in 0..10u64 {
            // The system's use: 10 MiB/s, 6 of them a's and 4 b's; c
            // grows 30 MiB/s of page cache.
            meminfo(&procs, 4096, 4000.0 - 10.0 * i as f64);
            cg2(&root, "a.service", 6 * mib * i, 0, 0, 0, "max");
            cg2(&root, "b.service", 4 * mib * i, 0, 0, 0, "max");
            cg2(&root, "c.service", mib, 30 * mib * i, 0, 0, "max");
            w.sample(i as f64, 0.0);
        }
        let f = w.forecast();
        let shares: Vec<(&str, Option<f64>)> = f
            .top_growth
            .iter()
            .map(|c| (c.cgroup.as_str(), c.share_of_system_growth))
            .collect();
        assert_eq!(
            shares,
            [("/a.service", Some(0.6)), ("/b.service", Some(0.4))]
        );
        assert_eq!(
            w.culprits(),
            ["a.service +6.0 MiB/s (60%)", "b.service +4.0 MiB/s (40%)"]
        );
        // b now frees what a takes, and more: the system grows 2 MiB/s.
        for i in 10..30u64 {
            let j = i - 10;
            meminfo(&procs, 4096, 3910.0 - 2.0 * j as f64);
            cg2(&root, "a.service", 6 * mib * i, 0, 0, 0, "max");
            cg2(
                &root,
                "b.service",
                36 * mib - 4 * mib * j.min(9),
                0,
                0,
                0,
                "max",
            );
            w.sample(i as f64, 0.0);
        }
        let c = w.culprits();
        assert_eq!(
            c,
            ["a.service +6.0 MiB/s (more than the system's +2.0 MiB/s: other memory was freed)"]
        );
    }

    /// Reclaimable slab caches (sysfs reclaim_account 1) are not named as
    /// growing; others are.
    #[test]
    fn reclaimable_slab_caches_are_not_culprits() {
        let d = tempfile::tempdir().unwrap();
        let procs = d.path().join("proc");
        let mut w = v2_watch(d.path(), MemConfig::default());
        for (name, r) in [("dentry", "1"), ("kmalloc-64", "0")] {
            let dir = d.path().join("sys/kernel/slab").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("reclaim_account"), format!("{r}\n")).unwrap();
        }
        for i in 0..3 * SLAB_EVERY as u64 {
            // Both grow by 1,000 objects per pass.
            std::fs::write(
                procs.join("slabinfo"),
                format!(
                    "slabinfo - version: 2.1\n# name <active_objs> ...\n\
                     dentry {n} {n} 192 21 1 : tunables 0 0 0 : slabdata 1 1 0\n\
                     kmalloc-64 {n} {n} 64 64 1 : tunables 0 0 0 : slabdata 8 8 0\n",
                    n = 10_000 + 1_000 * i
                ),
            )
            .unwrap();
            w.sample(i as f64, 0.0);
        }
        let names: Vec<String> = w
            .forecast()
            .slab_growth
            .into_iter()
            .map(|s| s.cache)
            .collect();
        assert_eq!(names, ["kmalloc-64"]);
    }

    /// `some` pressure alone (one task waiting while others run) raises
    /// nothing however long it lasts; `full` pressure does.
    #[test]
    fn pressure_without_full_stalls_raises_no_warning() {
        let d = tempfile::tempdir().unwrap();
        let procs = d.path().to_path_buf();
        std::fs::create_dir_all(procs.join("pressure")).unwrap();
        let psi = |some: f64, full: f64| {
            std::fs::write(
                procs.join("pressure/memory"),
                format!(
                    "some avg10={some:.2} avg60=0.00 avg300=0.00 total=1\n\
                     full avg10={full:.2} avg60=0.00 avg300=0.00 total=1\n"
                ),
            )
            .unwrap();
        };
        let mut w = MemWatch::new(MemConfig::default(), None, procs.clone());
        for t in 0..120 {
            psi(60.0, 5.0);
            assert!(w.sample(f64::from(t), 0.0).is_empty(), "t = {t}");
        }
        let mut fired = Vec::new();
        for t in 120..160 {
            psi(60.0, 15.0);
            if !w.sample(f64::from(t), 0.0).is_empty() {
                fired.push(t);
            }
        }
        assert_eq!(fired, [150], "full above 10% from t = 120, for 30 s");
    }

    #[test]
    fn sustained_growth_and_the_observation_rule() {
        let steady: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 10.0 * i as f64)).collect();
        assert!(sustained(&steady, 10.0));
        // A step in the middle, which the Theil–Sen slope shows as growth:
        // the later half is flat.
        let step: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64, if i < 5 { 0.0 } else { 100.0 }))
            .collect();
        let g = theil_sen(&step).unwrap();
        assert!(g > 0.0, "{g}");
        assert!(!sustained(&step, g));
        // Slowing to a third of the trend in the later half.
        let slowing: Vec<(f64, f64)> = (0..10)
            .map(|i| {
                let i = i as f64;
                (
                    i,
                    if i < 5.0 {
                        30.0 * i
                    } else {
                        150.0 + 10.0 * (i - 5.0)
                    },
                )
            })
            .collect();
        assert!(!sustained(&slowing, 30.0));
        assert!(!sustained(&[], 1.0));
        assert!(!sustained(&[(0.0, 1.0)], 1.0));
        let cfg = MemConfig::default();
        assert!(observed_long_enough(10.0, 5.0, &cfg));
        assert!(!observed_long_enough(10.1, 5.0, &cfg), "more than 2x");
        assert!(!observed_long_enough(1.0, 2.9, &cfg), "under 3 s");
        assert!(observed_long_enough(0.0, 3.0, &cfg));
        assert_eq!(
            trough(&[(0.0, 5.0), (1.0, 2.0), (2.0, 2.0), (3.0, 9.0)]),
            (2.0, 2.0)
        );
    }

    /// systemd-oomd acts by default when memory pressure (`full avg10`)
    /// stays above 60% for 30 s. On any rising pressure, spawnscope's
    /// default (full avg10 above 10% for 30 s) fires well before: here on
    /// a ramp of 1 point per second, 50 s earlier.
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
        // Within a quarter of its limit: its use is sampled every pass.
        cg(&root, "a", 900, "1000");
        stat_v1(&root, "a", 0, 0);
        w.sample(0.0, 0.0);
        assert_eq!(w.cgroups["/a"].limit, Some(1000));
        cg(&root, "a", 900, "2000");
        for i in 1..SLAB_EVERY {
            w.sample(i as f64, 0.0);
            assert_eq!(w.cgroups["/a"].limit, Some(1000), "pass {i}");
        }
        w.sample(SLAB_EVERY as f64, 0.0);
        assert_eq!(w.cgroups["/a"].limit, Some(2000));
        assert_eq!(
            w.cgroups["/a"].points.len(),
            SLAB_EVERY + 1,
            "no longer near its limit, a sampled series stays dense"
        );
        let old = w.cgroups["/a"].ino;
        // Made again while the first is still open: another inode for sure.
        std::fs::rename(root.join("a"), root.join("gone")).unwrap();
        cg(&root, "a", 5, "3000");
        assert_ne!(std::fs::metadata(root.join("a")).unwrap().ino(), old);
        w.sample(20.0, 0.0);
        let a = &w.cgroups["/a"];
        assert_eq!(
            (a.limit, a.points.len(), a.last, a.use_last),
            (Some(3000), 0, 5, None)
        );
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
