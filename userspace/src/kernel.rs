//! Loading, attaching and reading the probe.

use std::{
    io::Write,
    os::fd::{AsFd, BorrowedFd},
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{BtfTracePoint, ProgramError},
};
use aya_log::EbpfLogger;
use spawnscope_common::{
    CGROUP_PATH_MAX, COUNTERS_MAP, CgroupMkdir, CgroupStats, Counters, DRILL_ACTIVE_MAP,
    DRILL_IDS_MAP, DRILL_MAP, DRILL_PATH_MAX, DRILL_SLOTS, DrillPath, EVENT_CONFIG_SYMBOL,
    EVENT_DROPS_MAP, EVENTS_MAP, EventConfig, KERNEL_LAYOUT_SYMBOL, LOG_ENABLED_SYMBOL, LOG_MAP,
    Lifetimes, MKDIR_EVENTS_BYTES, MKDIR_EVENTS_MAP, OVERFLOW_MAP, PROBE_STATS_MAP, kind, prog,
    stat,
};
use thiserror::Error;

use crate::{
    btf::{self, Btf, BtfError},
    caps, features,
    layout::{self, ExitFlavour, LayoutError, OomFlavour},
    report::{EventCounts, ProbeStats, Snapshot},
};

/// The probe object, built by build.rs with aya-build.
static PROBE_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/spawnscope-probe"));

#[derive(Debug, Error)]
pub enum KernelError {
    #[error("{0}")]
    Privileges(String),
    #[error(
        "kernel BTF not found at {0}: spawnscope needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (or pass --btf FILE)"
    )]
    NoBtf(PathBuf),
    #[error(transparent)]
    Btf(#[from] BtfError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("kernel lacks {feature}: {detail}")]
    Unsupported { feature: Feature, detail: String },
    #[error("cannot load the probe: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("cannot load program {name} into the kernel: {detail}")]
    Program { name: &'static str, detail: String },
    #[error("probe object lacks {0} (build mismatch)")]
    Missing(&'static str),
    #[error("cannot read map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("drill-down slot {0} does not exist (there are {DRILL_SLOTS})")]
    DrillSlot(usize),
    #[error("cannot read the probe's log: {0}")]
    Log(#[from] aya_log::Error),
}

impl KernelError {
    /// Errors that mean "this host cannot run spawnscope" rather than "it
    /// went wrong", so the exit code can tell them apart.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            Self::NoBtf(_) | Self::Btf(_) | Self::Layout(_) | Self::Unsupported { .. }
        )
    }
}

/// A kernel facility the probe cannot do without, named when the kernel
/// refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    RingBuf,
    TpBtf,
}

impl std::fmt::Display for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::RingBuf => "the BPF ring buffer (BPF_MAP_TYPE_RINGBUF, Linux 5.8 or later)",
            Self::TpBtf => "tp_btf, BTF-typed tracepoint programs (Linux 5.5 or later)",
        })
    }
}

/// A map the kernel would not create: when it refuses ring buffers
/// altogether, that is the reason (old kernels answer EINVAL for an
/// unknown map type, which says nothing by itself).
fn load_error(e: aya::EbpfError) -> KernelError {
    if let aya::EbpfError::MapError(aya::maps::MapError::CreateError { name, io_error }) = &e
        && matches!(features::ringbuf_supported(), Ok(false))
    {
        return KernelError::Unsupported {
            feature: Feature::RingBuf,
            detail: format!("cannot create map {name}: {io_error}"),
        };
    }
    KernelError::Load(e)
}

/// A program the kernel would not load or attach: when it refuses `tp_btf`
/// programs altogether, that is the reason. Asked only after a failure
/// that the verifier did not explain, by loading an empty program for the
/// same tracepoint (`attach_btf_id`, from the BTF already parsed).
fn program_failure(name: &'static str, e: ProgramError, attach_btf_id: Option<u32>) -> KernelError {
    let unexplained = match &e {
        ProgramError::LoadError { verifier_log, .. } => verifier_log.to_string().trim().is_empty(),
        ProgramError::SyscallError(_) => true,
        _ => false,
    };
    if unexplained
        && let Some(id) = attach_btf_id
        && matches!(features::tp_btf_supported(id), Ok(false))
    {
        return KernelError::Unsupported {
            feature: Feature::TpBtf,
            detail: format!("cannot load program {name}: {e}"),
        };
    }
    program_error(name, e)
}

/// Per-event streaming, for the modes that show or record events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventOptions {
    /// Also stream forks.
    pub forks: bool,
    /// Ring buffer size: a power of two, at least one page.
    pub buffer_bytes: u32,
}

/// Where the probe's diagnostic log goes: lines from its rare paths (a
/// failed kernel read, a missing layout, drill-down bookkeeping).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProbeLog {
    /// No log: the verifier removes the logging code at load, so the
    /// programs cost what they would without it.
    #[default]
    Off,
    /// Each line on stderr, after "spawnscope: probe: ".
    Stderr,
    /// The same, each line led by its syslog priority ("<4>"), for a
    /// stderr that systemd hands to the journal.
    Journal,
}

pub struct LoadOptions {
    pub btf_path: PathBuf,
    pub max_cgroups: u32,
    /// None: counters only, and the event code is pruned by the verifier.
    pub events: Option<EventOptions>,
    /// None: whichever the kernel's tracepoint signature calls for.
    pub exit_flavour: Option<ExitFlavour>,
    /// Keep the drill-down code, with an event ring of this many bytes,
    /// when `events` is None (the sentinel).
    pub drill_buffer: Option<u32>,
    /// Also report cgroup removals, for a mode that forgets them.
    pub cgroup_removals: bool,
    /// Size of the cgroup creation ring, if not the default.
    pub cgroup_buffer: Option<u32>,
    /// Cgroup records wake a waiting reader only when the ring is half
    /// full (for a mode that reads on its own schedule), or, with
    /// `cgroup_removals`, sooner when the counter map is small: see
    /// [`cgroups_wake_bytes`].
    pub lazy_cgroups: bool,
    /// Exec, exit and fork records likewise.
    pub lazy_events: bool,
    /// The probe's diagnostic log; read it with [`Probe::flush_probe_log`]
    /// when [`Probe::probe_log_fd`] is readable.
    pub probe_log: ProbeLog,
}

/// Writes the probe's log records (through aya-log, which hands them to a
/// `log` logger) to stderr.
struct StderrLog {
    journal: bool,
}

impl log::Log for StderrLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let (priority, tag) = match record.level() {
            log::Level::Error => (3, "error: "),
            log::Level::Warn => (4, "warning: "),
            log::Level::Info => (6, ""),
            log::Level::Debug | log::Level::Trace => (7, ""),
        };
        let mut err = std::io::stderr().lock();
        // A closed stderr loses the line, as it does every other one.
        let _ = if self.journal {
            writeln!(err, "<{priority}>spawnscope: probe: {tag}{}", record.args())
        } else {
            writeln!(err, "spawnscope: probe: {tag}{}", record.args())
        };
    }

    fn flush(&self) {}
}

/// One program's cumulative run time, counted by the kernel while
/// `kernel.bpf_stats_enabled` is 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgStats {
    pub name: &'static str,
    pub run_time_ns: u64,
    pub run_count: u64,
}

pub struct Probe {
    ebpf: Ebpf,
    mkdirs: RingBuf<MapData>,
    events: RingBuf<MapData>,
    /// Attached programs, so that they can be detached before the last
    /// reading (see [`Probe::detach`]).
    links: Vec<(&'static str, aya::programs::tp_btf::BtfTracePointLinkId)>,
    /// Why OOM kills cannot be classified global / memcg here, if they
    /// cannot.
    pub oom_scope_warning: Option<String>,
    /// Ring buffer records too short to decode (a probe/loader mismatch);
    /// reported with the kernel's own count of lost names.
    undecodable: u64,
    pub exit_flavour: ExitFlavour,
    /// The reader of the probe's log ring, when the log is on.
    log: Option<EbpfLogger<StderrLog>>,
    /// What DRILL_ACTIVE holds: bit `i` while slot `i` drills. Only this
    /// process writes it.
    drill_active: u32,
}

/// A cgroup creation (or removal) reported by the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mkdir {
    pub id: u64,
    /// bpf_ktime_get_ns() when it happened.
    pub ts_ns: u64,
    /// A removal: `path` is empty.
    pub removed: bool,
    /// Path from the cgroup2 root, raw bytes.
    pub path: Vec<u8>,
    /// The kernel's buffer was filled: the path may be cut short.
    pub truncated: bool,
}

impl Mkdir {
    /// Decodes one ring buffer record; None for a record of the wrong size
    /// (a probe/loader mismatch, which the caller counts).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < std::mem::size_of::<CgroupMkdir>() {
            return None;
        }
        // SAFETY: CgroupMkdir is Pod and the slice holds at least one; the
        // ring buffer only guarantees 8-byte alignment, hence the unaligned read.
        let rec: CgroupMkdir = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        let len = (rec.len as usize).min(CGROUP_PATH_MAX);
        Some(Self {
            id: rec.id,
            ts_ns: rec.ts_ns,
            removed: rec.removed != 0,
            path: rec.path[..len].to_vec(),
            truncated: len >= CGROUP_PATH_MAX - 1,
        })
    }
}

/// Condenses aya's program error into one line: the verifier's last words
/// are the useful part of its log.
fn program_error(name: &'static str, e: ProgramError) -> KernelError {
    let detail = match &e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            // The whole log, for whoever debugs the probe.
            if std::env::var_os("SPAWNSCOPE_VERIFIER_LOG").is_some() {
                eprintln!("{log}");
            }
            // The verifier's complaint comes before its closing statistics.
            let last = log
                .lines()
                .rev()
                .filter(|l| !l.trim().is_empty())
                .find(|l| {
                    !l.starts_with("processed ")
                        && !l.starts_with("verification time")
                        && !l.starts_with("stack depth")
                })
                .unwrap_or("");
            format!("{io_error}; verifier: {last}")
        }
        other => other.to_string(),
    };
    KernelError::Program { name, detail }
}

/// Wraps a map error with the map's name.
fn map_error(map: &'static str) -> impl Fn(aya::maps::MapError) -> KernelError {
    move |source| KernelError::Map { map, source }
}

/// Bytes one cgroup record takes in its ring: the record and the ring's
/// 8-byte header, rounded up to 8.
const CGROUP_RECORD_RING_BYTES: u32 = (size_of::<CgroupMkdir>() as u32 + 8 + 7) & !7;

/// How many bytes of cgroup records wait before the reader is woken: half
/// the ring, so that nothing is lost; and, for a mode that frees removed
/// cgroups' counters as it reads their removal (`max_cgroups` given), no
/// more than a quarter of the counter map's cgroups' worth of creations and
/// removals, so that a burst of transient units is read, and its entries
/// freed, while three quarters of the map are still free.
fn cgroups_wake_bytes(ring_bytes: u32, max_cgroups: Option<u32>) -> u32 {
    let half = ring_bytes / 2;
    match max_cgroups {
        Some(n) => half.min((n / 4).max(1).saturating_mul(2 * CGROUP_RECORD_RING_BYTES)),
        None => half,
    }
}

/// The kernel's page size: a ring buffer's size is a multiple of it.
fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

fn raise_memlock() {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // Failure is expected without CAP_SYS_RESOURCE and harmless on Linux
    // >= 5.11, which charges BPF memory to the cgroup instead.
    // SAFETY: setrlimit reads a valid, initialised struct.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) };
}

impl Probe {
    pub fn load(opts: &LoadOptions) -> Result<Self, KernelError> {
        caps::check_bpf_privileges().map_err(KernelError::Privileges)?;
        if !Path::new(&opts.btf_path).exists() {
            return Err(KernelError::NoBtf(opts.btf_path.clone()));
        }
        // aya's loader parses the whole of /sys/kernel/btf/vmlinux when it
        // is made (about 18 MiB at its peak for a 5.5 MB BTF), for CO-RE
        // relocations, which the probe has none of. Made first and told to
        // drop it at once, that peak is not stacked on ours.
        let mut loader = EbpfLoader::new();
        loader.btf(None);
        let what = opts.btf_path.display().to_string();
        let btf = Btf::from_file(&opts.btf_path)?;
        let (kl, exit_flavour) = layout::from_btf(&btf)?;
        let oom_flavour = layout::oom_flavour(&btf)?;
        if opts.cgroup_removals {
            btf.tracepoint_arg_count(layout::RMDIR_TRACEPOINT)?;
        }
        // What aya needs to attach the programs: the tracepoints' typedef
        // ids, in a small blob of its own format, not the kernel's BTF.
        let tracepoints: Vec<&str> = layout::TRACEPOINTS
            .iter()
            .copied()
            .chain(opts.cgroup_removals.then_some(layout::RMDIR_TRACEPOINT))
            .collect();
        let attach_ids = btf.attach_ids(&tracepoints)?;
        let stub = btf::attach_stub(&attach_ids);
        drop(btf);
        let aya_btf = aya::Btf::parse(&stub, aya::Endianness::default()).map_err(|e| {
            KernelError::Btf(BtfError::Malformed {
                what: format!("the attach stub built from {what} ({e})"),
            })
        })?;
        drop(stub);
        raise_memlock();

        let event_config = EventConfig {
            enabled: opts.events.is_some() as u32,
            forks: opts.events.is_some_and(|e| e.forks) as u32,
            drill: (opts.events.is_none() && opts.drill_buffer.is_some()) as u32,
            cgroups_wake_bytes: if opts.lazy_cgroups {
                cgroups_wake_bytes(
                    opts.cgroup_buffer.unwrap_or(MKDIR_EVENTS_BYTES),
                    opts.cgroup_removals.then_some(opts.max_cgroups),
                )
            } else {
                0
            },
            events_wake_bytes: match (
                opts.lazy_events,
                opts.events.map(|e| e.buffer_bytes).or(opts.drill_buffer),
            ) {
                (true, Some(bytes)) => bytes / 2,
                _ => 0,
            },
        };
        let log_enabled = u32::from(opts.probe_log != ProbeLog::Off);
        loader
            .override_global(KERNEL_LAYOUT_SYMBOL, &kl, true)
            .override_global(EVENT_CONFIG_SYMBOL, &event_config, true)
            .override_global(LOG_ENABLED_SYMBOL, &log_enabled, true)
            .map_max_entries(COUNTERS_MAP, opts.max_cgroups);
        if opts.probe_log == ProbeLog::Off {
            // Nothing writes to the log ring then: one page instead of
            // aya-log's 128 KiB of kernel memory.
            loader.map_max_entries(LOG_MAP, page_size());
        }
        if let Some(bytes) = opts.cgroup_buffer {
            loader.map_max_entries(MKDIR_EVENTS_MAP, bytes);
        }
        if let Some(bytes) = opts.events.map(|e| e.buffer_bytes).or(opts.drill_buffer) {
            loader.map_max_entries(EVENTS_MAP, bytes);
        }
        let mut ebpf = loader.load(PROBE_OBJ).map_err(load_error)?;
        // Taken from `ebpf` before the programs load: the logger keeps the
        // ring's descriptor open for as long as the probe lives.
        let log = match opts.probe_log {
            ProbeLog::Off => None,
            ProbeLog::Stderr | ProbeLog::Journal => Some(EbpfLogger::init_with_logger(
                &mut ebpf,
                StderrLog {
                    journal: opts.probe_log == ProbeLog::Journal,
                },
            )?),
        };

        let exit_flavour = opts.exit_flavour.unwrap_or(exit_flavour);
        let exit_prog = match exit_flavour {
            ExitFlavour::GroupDeadArg => prog::EXIT,
            ExitFlavour::Legacy => prog::EXIT_LEGACY,
        };
        // The mkdir program goes first, so that no cgroup created after the
        // counting starts can escape it.
        let mut links = Vec::new();
        let rmdir = opts
            .cgroup_removals
            .then_some((prog::RMDIR, layout::RMDIR_TRACEPOINT));
        for (name, tp) in [
            Some((prog::MKDIR, "cgroup_mkdir")),
            rmdir,
            Some((
                match oom_flavour {
                    OomFlavour::Task => prog::OOM,
                    OomFlavour::PidOnly => prog::OOM_PID_ONLY,
                },
                "mark_victim",
            )),
            Some((prog::FORK, "sched_process_fork")),
            Some((prog::EXEC, "sched_process_exec")),
            Some((exit_prog, "sched_process_exit")),
        ]
        .into_iter()
        .flatten()
        {
            let p: &mut BtfTracePoint = ebpf
                .program_mut(name)
                .ok_or(KernelError::Missing(name))?
                .try_into()
                .map_err(|e| program_error(name, e))?;
            let attach_id = attach_ids.iter().find(|(t, _)| *t == tp).map(|&(_, id)| id);
            p.load(tp, &aya_btf)
                .map_err(|e| program_failure(name, e, attach_id))?;
            let link = p
                .attach()
                .map_err(|e| program_failure(name, e, attach_id))?;
            links.push((name, link));
        }
        let oom_scope_warning = if oom_flavour == OomFlavour::PidOnly {
            Some(
                "this kernel's oom:mark_victim names the victim by pid only (an older kernel): its \
                 comm and cgroup are read from /proc while it is there; its RSS, and whether a \
                 kill was global or memcg-limited, are not known"
                    .to_string(),
            )
        } else {
            (kl.memcg_layout == 0).then(|| {
                "OOM kills will not say whether they were global or memcg-limited: this \
                 kernel's BTF does not describe memory cgroups as the probe reads them"
                    .to_string()
            })
        };
        let mkdirs = ebpf
            .take_map(MKDIR_EVENTS_MAP)
            .ok_or(KernelError::Missing(MKDIR_EVENTS_MAP))?;
        let mkdirs = RingBuf::try_from(mkdirs).map_err(|source| KernelError::Map {
            map: MKDIR_EVENTS_MAP,
            source,
        })?;
        let events = ebpf
            .take_map(EVENTS_MAP)
            .ok_or(KernelError::Missing(EVENTS_MAP))?;
        let events = RingBuf::try_from(events).map_err(|source| KernelError::Map {
            map: EVENTS_MAP,
            source,
        })?;
        Ok(Self {
            ebpf,
            mkdirs,
            events,
            links,
            oom_scope_warning,
            undecodable: 0,
            exit_flavour,
            log,
            drill_active: 0,
        })
    }

    /// Becomes readable when the probe's diagnostic log has lines waiting;
    /// None when the log is off.
    pub fn probe_log_fd(&self) -> Option<BorrowedFd<'_>> {
        self.log.as_ref().map(AsFd::as_fd)
    }

    /// Writes every waiting line of the probe's diagnostic log to stderr;
    /// nothing to do when the log is off.
    pub fn flush_probe_log(&mut self) {
        if let Some(l) = self.log.as_mut() {
            l.flush();
        }
    }

    /// Becomes readable when cgroup creations are waiting in the ring buffer.
    pub fn mkdir_fd(&self) -> BorrowedFd<'_> {
        self.mkdirs.as_fd()
    }

    /// Becomes readable when event records are waiting.
    pub fn events_fd(&self) -> BorrowedFd<'_> {
        self.events.as_fd()
    }

    /// Hands every waiting event record to `f`, as raw bytes.
    pub fn drain_events(&mut self, mut f: impl FnMut(&[u8])) {
        while let Some(item) = self.events.next() {
            f(&item);
        }
    }

    /// Detaches every program, so that a reading taken afterwards is final:
    /// nothing is counted, streamed or dropped any more. The maps stay.
    pub fn detach(&mut self) {
        for (name, link) in self.links.drain(..) {
            if let Some(p) = self.ebpf.program_mut(name)
                && let Ok(p) = <&mut BtfTracePoint>::try_from(p)
            {
                let _ = p.detach(link);
            }
        }
    }

    /// Starts (or retargets) the drill-down in `slot` (`0..DRILL_SLOTS`):
    /// exec and exit records of the cgroups `ids`, and of any cgroup
    /// created at `path` from now on (a restarted unit), are streamed, and
    /// [`Probe::drill_slot_of`] names `slot` for each. The slot's earlier
    /// cgroups are dropped; other slots are left as they are, except that
    /// an id of `ids` another slot followed moves to this one. A path
    /// longer than a drill can match follows `ids` only.
    pub fn drill(&mut self, slot: usize, path: &[u8], ids: &[u64]) -> Result<(), KernelError> {
        self.drill_off(slot)?;
        let inserted = self.drill_ids_map().and_then(|mut set| {
            ids.iter().try_for_each(|id| {
                set.insert(id, slot as u32, 0)
                    .map_err(map_error(DRILL_IDS_MAP))
            })
        });
        if let Err(e) = inserted {
            // No half-made slot: the ids already in would be streamed
            // while any other slot drills.
            let _ = self.drill_off(slot);
            return Err(e);
        }
        let mut d = DrillPath::OFF;
        d.active = 1;
        if path.len() <= DRILL_PATH_MAX {
            d.len = path.len() as u32;
            d.path[..path.len()].copy_from_slice(path);
        }
        self.set_drill(slot, d)?;
        // Last: the probe matches against a slot only once it is complete.
        self.set_drill_active(self.drill_active | 1 << slot)
    }

    /// Ends the drill-down in `slot`: its cgroups are no longer streamed,
    /// and no new cgroup joins it. The other slots drill on. With every
    /// slot off, nothing but OOM kills is streamed.
    pub fn drill_off(&mut self, slot: usize) -> Result<(), KernelError> {
        if slot >= DRILL_SLOTS {
            return Err(KernelError::DrillSlot(slot));
        }
        // First, so that no cgroup created from now on joins the slot.
        self.set_drill_active(self.drill_active & !(1 << slot))?;
        self.set_drill(slot, DrillPath::OFF)?;
        let mut set = self.drill_ids_map()?;
        let ids: Vec<u64> = set
            .iter()
            .filter_map(Result::ok)
            .filter(|&(_, s)| s as usize == slot)
            .map(|(id, _)| id)
            .collect();
        for id in ids {
            // Gone already is as good as removed.
            let _ = set.remove(&id);
        }
        Ok(())
    }

    /// The slot whose drill-down streams `id`'s records: for an event
    /// whose cgroup was created after the drill-down started. None when
    /// no slot follows it (or the map cannot be read). A cgroup created at
    /// the very moment its slot was ended can keep that slot here until
    /// the slot is next used (the probe may have read the slot as active
    /// just before [`Probe::drill_off`] swept it), so a caller routes only
    /// to slots it still drills with.
    pub fn drill_slot_of(&self, id: u64) -> Option<usize> {
        let map = self.ebpf.map(DRILL_IDS_MAP)?;
        let set: BpfHashMap<_, u64, u32> = BpfHashMap::try_from(map).ok()?;
        set.get(&id, 0).ok().map(|s| s as usize)
    }

    /// The cgroups the drill-downs stream now, each with its slot.
    pub fn drill_ids(&self) -> Result<Vec<(u64, usize)>, KernelError> {
        let set: BpfHashMap<_, u64, u32> = BpfHashMap::try_from(
            self.ebpf
                .map(DRILL_IDS_MAP)
                .ok_or(KernelError::Missing(DRILL_IDS_MAP))?,
        )
        .map_err(map_error(DRILL_IDS_MAP))?;
        Ok(set
            .iter()
            .filter_map(Result::ok)
            .map(|(id, slot)| (id, slot as usize))
            .collect())
    }

    fn drill_ids_map(&mut self) -> Result<BpfHashMap<&mut MapData, u64, u32>, KernelError> {
        BpfHashMap::try_from(
            self.ebpf
                .map_mut(DRILL_IDS_MAP)
                .ok_or(KernelError::Missing(DRILL_IDS_MAP))?,
        )
        .map_err(map_error(DRILL_IDS_MAP))
    }

    fn set_drill(&mut self, slot: usize, d: DrillPath) -> Result<(), KernelError> {
        if slot >= DRILL_SLOTS {
            return Err(KernelError::DrillSlot(slot));
        }
        let mut slots: Array<_, DrillPath> = Array::try_from(
            self.ebpf
                .map_mut(DRILL_MAP)
                .ok_or(KernelError::Missing(DRILL_MAP))?,
        )
        .map_err(map_error(DRILL_MAP))?;
        slots.set(slot as u32, d, 0).map_err(map_error(DRILL_MAP))
    }

    fn set_drill_active(&mut self, mask: u32) -> Result<(), KernelError> {
        let mut active: Array<_, u32> = Array::try_from(
            self.ebpf
                .map_mut(DRILL_ACTIVE_MAP)
                .ok_or(KernelError::Missing(DRILL_ACTIVE_MAP))?,
        )
        .map_err(map_error(DRILL_ACTIVE_MAP))?;
        active
            .set(0, mask, 0)
            .map_err(map_error(DRILL_ACTIVE_MAP))?;
        self.drill_active = mask;
        Ok(())
    }

    /// Reads and frees the counters and lifetimes of a removed cgroup:
    /// its counts are final once its removal is reported (a cgroup is
    /// removed empty, after every exit in it was counted). None when the
    /// probe never counted anything there.
    pub fn take(&mut self, id: u64) -> Result<Option<(Counters, Option<Lifetimes>)>, KernelError> {
        let err = |map: &'static str| move |source| KernelError::Map { map, source };
        let mut counters: PerCpuHashMap<_, u64, CgroupStats> = PerCpuHashMap::try_from(
            self.ebpf
                .map_mut(COUNTERS_MAP)
                .ok_or(KernelError::Missing(COUNTERS_MAP))?,
        )
        .map_err(err(COUNTERS_MAP))?;
        let (c, l) = match counters.get(&id, 0) {
            Ok(per_cpu) => sum_cpus(per_cpu.iter()),
            Err(aya::maps::MapError::KeyNotFound) => return Ok(None),
            Err(e) => return Err(err(COUNTERS_MAP)(e)),
        };
        // Gone already is as good as removed.
        let _ = counters.remove(&id);
        Ok(Some((c, l)))
    }

    /// Run time and count per attached program.
    pub fn prog_stats(&self) -> Vec<ProgStats> {
        self.links
            .iter()
            .filter_map(|(name, _)| {
                let info = self.ebpf.program(name)?.info().ok()?;
                Some(ProgStats {
                    name,
                    run_time_ns: info.run_time().as_nanos() as u64,
                    run_count: info.run_count(),
                })
            })
            .collect()
    }

    /// Hands every waiting cgroup creation to `f`.
    pub fn drain_mkdirs(&mut self, mut f: impl FnMut(Mkdir)) {
        while let Some(item) = self.mkdirs.next() {
            match Mkdir::decode(&item) {
                Some(m) => f(m),
                None => self.undecodable += 1,
            }
        }
    }

    /// Reads every map once and sums the CPUs.
    pub fn snapshot(&self) -> Result<Snapshot, KernelError> {
        let map = |name: &'static str| self.ebpf.map(name).ok_or(KernelError::Missing(name));
        let err = |map: &'static str| move |source| KernelError::Map { map, source };

        let counters: PerCpuHashMap<_, u64, CgroupStats> =
            PerCpuHashMap::try_from(map(COUNTERS_MAP)?).map_err(err(COUNTERS_MAP))?;
        let mut snap = Snapshot::default();
        for entry in counters.iter() {
            // An entry deleted between key and value lookups (a removed
            // cgroup taken meanwhile) is not an error worth failing over.
            let Ok((id, per_cpu)) = entry else { continue };
            let (sum, lifetimes) = sum_cpus(per_cpu.iter());
            snap.per_cgroup.insert(id, sum);
            if let Some(l) = lifetimes {
                snap.lifetimes.insert(id, l);
            }
        }

        let overflow: PerCpuArray<_, Counters> =
            PerCpuArray::try_from(map(OVERFLOW_MAP)?).map_err(err(OVERFLOW_MAP))?;
        snap.overflow = overflow
            .get(&0, 0)
            .map_err(err(OVERFLOW_MAP))?
            .iter()
            .fold(Counters::ZERO, |a, c| a.saturating_add(c));

        let stats: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map(PROBE_STATS_MAP)?).map_err(err(PROBE_STATS_MAP))?;
        let slot = |i: u32| -> Result<u64, KernelError> {
            Ok(stats.get(&i, 0).map_err(err(PROBE_STATS_MAP))?.iter().sum())
        };
        snap.probe = ProbeStats {
            map_full: slot(stat::MAP_FULL)?,
            read_failed: slot(stat::READ_FAILED)?,
            no_layout: slot(stat::NO_LAYOUT)?,
            names_lost: slot(stat::NAMES_LOST)? + self.undecodable,
            lifetimes_full: slot(stat::LIFETIMES_FULL)?,
        };

        let drops: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map(EVENT_DROPS_MAP)?).map_err(err(EVENT_DROPS_MAP))?;
        let dropped = |k: u32| -> Result<u64, KernelError> {
            Ok(drops.get(&k, 0).map_err(err(EVENT_DROPS_MAP))?.iter().sum())
        };
        snap.dropped = EventCounts {
            exec: dropped(kind::EXEC)?,
            exit: dropped(kind::EXIT)?,
            fork: dropped(kind::FORK)?,
            oom: dropped(kind::OOM)?,
        };
        Ok(snap)
    }
}

/// One cgroup's counters and lifetime histogram summed over the CPUs; the
/// histogram is None while no process exit was recorded there.
fn sum_cpus<'a>(per_cpu: impl Iterator<Item = &'a CgroupStats>) -> (Counters, Option<Lifetimes>) {
    let mut c = Counters::ZERO;
    let mut l = Lifetimes::ZERO;
    for s in per_cpu {
        c = c.saturating_add(&s.counters);
        l = l.saturating_add(&s.lifetimes);
    }
    (c, (!l.is_zero()).then_some(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default map (10,240 cgroups) keeps the half-ring wakeup; a map
    /// of 200 wakes after 50 units' creations and removals, while 150 of
    /// its entries are still free; a mode that frees nothing waits for
    /// half the ring whatever the map.
    #[test]
    fn cgroup_records_wake_before_the_counter_map_can_fill() {
        let ring = MKDIR_EVENTS_BYTES;
        assert_eq!(cgroups_wake_bytes(ring, Some(10_240)), ring / 2);
        assert_eq!(CGROUP_RECORD_RING_BYTES, 1056);
        assert_eq!(cgroups_wake_bytes(ring, Some(200)), 50 * 2 * 1056);
        assert_eq!(cgroups_wake_bytes(ring, Some(1)), 2 * 1056);
        assert_eq!(cgroups_wake_bytes(ring, None), ring / 2);
        assert_eq!(cgroups_wake_bytes(8192, Some(200)), 4096);
    }

    /// A refused kernel facility is "unsupported" (exit 4), in one line
    /// that names it.
    #[test]
    fn refused_features_are_unsupported_and_named() {
        for (feature, names) in [
            (Feature::RingBuf, "BPF_MAP_TYPE_RINGBUF"),
            (Feature::TpBtf, "tp_btf"),
        ] {
            let e = KernelError::Unsupported {
                feature,
                detail: "cannot create map EVENTS: Invalid argument (os error 22)".into(),
            };
            assert!(e.is_unsupported());
            let text = e.to_string();
            assert!(
                text.starts_with("kernel lacks ") && text.contains(names),
                "{text}"
            );
            assert_eq!(text.lines().count(), 1, "{text}");
        }
        assert!(
            !KernelError::Program {
                name: "x",
                detail: String::new()
            }
            .is_unsupported()
        );
    }

    #[test]
    fn mkdir_records_decode_and_flag_truncation() {
        let mut rec = CgroupMkdir {
            id: 77,
            ts_ns: 5,
            len: 9,
            removed: 0,
            path: [0xaa; CGROUP_PATH_MAX],
        };
        rec.path[..9].copy_from_slice(b"/a.scope\0");
        rec.len = 8;
        // SAFETY: CgroupMkdir is Pod; viewing it as bytes is sound.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&rec as *const CgroupMkdir).cast::<u8>(),
                std::mem::size_of::<CgroupMkdir>(),
            )
        };
        let m = Mkdir::decode(bytes).unwrap();
        assert_eq!(
            (m.id, m.ts_ns, m.removed, m.path.as_slice(), m.truncated),
            (77, 5, false, &b"/a.scope"[..], false)
        );
        rec.len = (CGROUP_PATH_MAX - 1) as u32;
        // SAFETY: as above.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&rec as *const CgroupMkdir).cast::<u8>(),
                std::mem::size_of::<CgroupMkdir>(),
            )
        };
        assert!(Mkdir::decode(bytes).unwrap().truncated);
        assert_eq!(Mkdir::decode(&bytes[..100]), None, "short record");
    }
}
