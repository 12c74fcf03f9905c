//! Memory pressure (issue 6, in progress): periodic cheap samples of the
//! system's available memory and of every memory cgroup's usage and limit,
//! robust growth slopes, time to exhaustion, and an early warning when that
//! time falls below a threshold.

use std::{
    collections::{BTreeMap, HashSet, VecDeque},
    path::{Path, PathBuf},
    time::Instant,
};

use serde::Serialize;

use crate::{
    cgroupfs::{self, CgroupMount},
    memory::{self, parse_limit, parse_u64, theil_sen, time_to_exhaustion},
    unit,
};

/// Which hierarchy accounts memory, and where its tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemTree {
    pub root: PathBuf,
    pub v2: bool,
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

/// Usage and limit of one cgroup: two small reads per cgroup and pass.
fn usage_and_limit(dir: &Path, v2: bool) -> Option<(u64, Option<u64>)> {
    let (cur, lim) = if v2 {
        ("memory.current", "memory.max")
    } else {
        ("memory.usage_in_bytes", "memory.limit_in_bytes")
    };
    let c = std::fs::read_to_string(dir.join(cur)).ok()?;
    let l = std::fs::read_to_string(dir.join(lim)).ok()?;
    Some((parse_u64(&c, cur).ok()?, parse_limit(&l, lim).ok()?))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemWarning {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// "cgroup" (its limit), "system" (MemAvailable) or "psi" (the
    /// system's memory pressure stayed high).
    pub target: &'static str,
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
    pub message: String,
}

struct Series {
    points: VecDeque<(f64, f64)>,
    limit: Option<u64>,
    last: u64,
    warned: bool,
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
    /// Growing cgroups, largest growth first (at most 5).
    pub top_growth: Vec<CgroupTrend>,
    /// Growing slab caches (kernel memory no cgroup may own), largest
    /// growth first (at most 3); empty when /proc/slabinfo is unreadable.
    pub slab_growth: Vec<SlabTrend>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlabTrend {
    pub cache: String,
    pub bytes: u64,
    pub growth_bytes_per_s: f64,
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
    /// Microseconds per pass, for the summary.
    pub pass_us: Vec<u64>,
    pub warnings: Vec<MemWarning>,
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
            system: Series {
                points: VecDeque::new(),
                limit: None,
                last: 0,
                warned: false,
            },
            psi_above_since: None,
            psi_warned: false,
            pass_us: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// One sampling pass at `t` (seconds, any monotonic origin); returns
    /// the warnings it raised (each cgroup warns once while it grows).
    pub fn sample(&mut self, t: f64, now_unix: f64) -> Vec<MemWarning> {
        let t0 = Instant::now();
        let mut seen = HashSet::new();
        if let Some(tree) = self.tree.clone() {
            let mut stack = vec![tree.root.clone()];
            let mut n = 0;
            while let Some(dir) = stack.pop() {
                if n >= self.cfg.max_cgroups {
                    break;
                }
                n += 1;
                if let Some((cur, lim)) = usage_and_limit(&dir, tree.v2) {
                    let rel = dir
                        .strip_prefix(&tree.root)
                        .map(cgroupfs::display_rel)
                        .unwrap_or_default();
                    let s = self.cgroups.entry(rel.clone()).or_insert(Series {
                        points: VecDeque::new(),
                        limit: None,
                        last: 0,
                        warned: false,
                    });
                    s.points.push_back((t, cur as f64));
                    s.limit = lim;
                    s.last = cur;
                    seen.insert(rel);
                }
                if let Ok(rd) = std::fs::read_dir(&dir) {
                    for e in rd.flatten() {
                        if e.file_type().is_ok_and(|f| f.is_dir()) {
                            stack.push(e.path());
                        }
                    }
                }
            }
        }
        // Gone cgroups keep no history.
        self.cgroups.retain(|k, _| seen.contains(k));
        if let Ok(m) = memory::read_meminfo(&self.proc_root) {
            // Used = total - available: it grows as memory runs out.
            let used = m.total.saturating_sub(m.available);
            self.system.points.push_back((t, used as f64));
            self.system.limit = Some(m.total);
            self.system.last = used;
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
                    target: "cgroup",
                    cgroup: Some(rel.clone()),
                    unit: owner.unit,
                    time_unix: now_unix,
                    seconds_to_exhaustion: Some(tte),
                    growth_bytes_per_s: slope,
                    used_bytes: s.last,
                    limit_bytes: s.limit,
                    pids,
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
                target: "system",
                cgroup: None,
                unit: None,
                time_unix: now_unix,
                seconds_to_exhaustion: Some(tte),
                growth_bytes_per_s: slope,
                used_bytes: self.system.last,
                limit_bytes: self.system.limit,
                pids: Vec::new(),
                message: format!(
                    "the system will run out of available memory in {tte:.0} s: use growing {}/s",
                    human_bytes(slope)
                ),
            });
        }
        // Slab caches: keep the 32 largest (a cache that grows becomes one
        // of them). /proc/slabinfo costs ~2 ms to produce, 6× a whole pass
        // without it, so it is read every SLAB_EVERY passes only.
        let slab_due = self.pass_us.len().is_multiple_of(SLAB_EVERY);
        if let Some(mut caches) = slab_due
            .then(|| std::fs::read_to_string(self.proc_root.join("slabinfo")).ok())
            .flatten()
            .and_then(|t| memory::parse_slabinfo(&t, "/proc/slabinfo").ok())
        {
            caches.sort_by_key(|c| std::cmp::Reverse(c.bytes));
            caches.truncate(32);
            let names: HashSet<String> = caches.iter().map(|c| c.name.clone()).collect();
            self.slabs.retain(|k, _| names.contains(k));
            for c in caches {
                let s = self.slabs.entry(c.name).or_insert(Series {
                    points: VecDeque::new(),
                    limit: None,
                    last: 0,
                    warned: false,
                });
                s.points.push_back((t, c.bytes as f64));
                while s.points.front().is_some_and(|p| p.0 < t - window) {
                    s.points.pop_front();
                }
                s.last = c.bytes;
            }
        }
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
                        target: "psi",
                        cgroup: None,
                        unit: None,
                        time_unix: now_unix,
                        seconds_to_exhaustion: None,
                        growth_bytes_per_s: 0.0,
                        used_bytes: self.system.last,
                        limit_bytes: self.system.limit,
                        pids: Vec::new(),
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
        self.pass_us.push(t0.elapsed().as_micros() as u64);
        self.warnings.extend(out.iter().cloned());
        out
    }

    /// The system's and the top cgroups' trends as of the last sample.
    pub fn forecast(&self) -> MemForecast {
        let slope = |s: &Series| {
            let v: Vec<(f64, f64)> = s.points.iter().copied().collect();
            (v.len() >= self.cfg.min_samples)
                .then(|| theil_sen(&v))
                .flatten()
        };
        let sys = slope(&self.system);
        let total = self.system.limit.unwrap_or(0);
        let mut top: Vec<CgroupTrend> = self
            .cgroups
            .iter()
            // Parents include their children: attribute to leaves only.
            .filter(|(k, _)| {
                let prefix = format!("{}/", k.trim_end_matches('/'));
                !self.cgroups.keys().any(|o| o.starts_with(&prefix))
            })
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
                    share_of_system_growth: sys.filter(|x| *x > 0.0).map(|x| g / x),
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
            top_growth: top,
            slab_growth: slab,
        }
    }

    /// "v2" or "v1": the hierarchy whose memory cgroups are sampled.
    pub fn hierarchy(&self) -> Option<&'static str> {
        self.tree.as_ref().map(|t| if t.v2 { "v2" } else { "v1" })
    }

    /// Median microseconds of a sampling pass so far.
    pub fn median_pass_us(&self) -> Option<u64> {
        let mut v = self.pass_us.clone();
        v.sort_unstable();
        v.get(v.len() / 2).copied()
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
        let f = w.forecast();
        assert_eq!(f.top_growth.len(), 1, "only the leak grows: {f:?}");
        let t = &f.top_growth[0];
        assert_eq!(t.cgroup, "/system.slice/leak.service");
        assert_eq!(t.growth_bytes_per_s, 32.0 * mib as f64);
        assert_eq!(t.seconds_to_limit, Some(2.0), "64 MiB left at 32 MiB/s");
        assert_eq!(f.growth_bytes_per_s, Some(0.0), "meminfo did not move");
        assert_eq!(t.share_of_system_growth, None);
        assert_eq!(f.slab_growth.len(), 1, "{:?}", f.slab_growth);
        assert_eq!(f.slab_growth[0].cache, "dentry");
        assert_eq!(f.slab_growth[0].growth_bytes_per_s, 2.0 * 192_000.0);
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
        assert_eq!(x.target, "psi");
        assert_eq!(x.seconds_to_exhaustion, None);
        assert!(x.message.contains("25.0% of the time"), "{}", x.message);
        // Back above after dropping: a new 30 s is needed.
        psi(30.0);
        assert!(w.sample(100.0, 0.0).is_empty());
        assert_eq!(w.sample(130.0, 0.0).len(), 1);
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
