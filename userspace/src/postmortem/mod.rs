//! `spawnscope postmortem`: an incident report written from a systemd
//! journal. The journal reader hands every entry, in realtime order, to an
//! [`Analyzer`]; [`Analyzer::finish`] turns what it gathered into a
//! [`Report`], which renders as text, JSON or an SVG timeline.
//!
//! Memory stays bounded whatever the journal's size: everything is
//! aggregated per unit while entries stream past (counters, a fixed number
//! of time buckets, a bounded table of error lines), work done on a stored
//! value (a unit name, a masked message) is cached by the value's id, and
//! every cache is emptied when it reaches its cap.
//!
//! What the analyses recognise is systemd's own wording (src/core/service.c,
//! src/core/unit.c, src/core/job.c) and message ids (src/systemd/sd-messages.h),
//! the same in systemd 252 and 257, plus the older text-only forms.

pub mod cmd;
mod render;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use serde::Serialize;

use crate::journal::Fields;

/// Restarts in range from which a unit counts as a respawn loop: one or two
/// restarts are what `Restart=` is for; three in a row is a pattern.
pub const LOOP_MIN_RESTARTS: u64 = 3;
/// Distinct masked error lines kept per unit. Past it, the table keeps the
/// most frequent ones by the Space-Saving rule (a new line takes the place
/// of the least counted, inheriting its count), so any line seen more often
/// than 1/64 of the time is kept, and counts become upper bounds
/// (`top_errors_exact: false`).
pub const ERROR_LINES_PER_UNIT: usize = 64;
/// Before a unit's first scheduled restart it is not known to loop: it
/// keeps only this many lines, and only this many such units keep any, so
/// that thousands of chatty units that never restart cost little. A loop's
/// first cycles are still counted: they are logged before its restarts.
pub const PRE_LOOP_LINES: usize = 8;
pub const PRE_LOOP_TABLES: usize = 2048;
/// Error lines shown per loop.
pub const TOP_ERRORS: usize = 5;
/// Units listed by journal volume.
pub const TOP_JOURNAL_UNITS: usize = 10;
/// Time buckets of each looping unit's restarts, kept while reading: the
/// bucket width doubles (neighbours merge) whenever a restart falls past
/// the last, so the buckets always cover the whole range.
pub const RESTART_BUCKETS: usize = 512;
/// Memory-pressure messages kept: the first ones (how it began) and the
/// last ones (what preceded the end); all are counted.
pub const PRESSURE_FIRST: usize = 20;
pub const PRESSURE_LAST: usize = 100;
/// Boots told apart; a journal with more (corrupt, or crafted) counts
/// the entries of further boots for the last boot kept.
pub const BOOTS_MAX: usize = 4096;
/// OOM kills listed: the last ones; all are counted.
pub const OOM_KILLS_MAX: usize = 1000;
/// Bytes of a SYSLOG_IDENTIFIER kept in an error line.
const IDENT_MAX: usize = 64;
/// Cap of each value-id cache; a full cache is emptied, not grown.
const CACHE_CAP: usize = 65_536;
/// The masked-line cache holds text, hence a smaller cap.
const NORM_CACHE_CAP: usize = 16_384;
/// Bytes of a message masked and counted: longer ones are cut.
const LINE_MAX: usize = 512;
/// Cap of the pid → unit map used to name an OOM victim whose cgroup path
/// is not known; emptied when full (recent pids refill it quickly).
const PID_MAP_CAP: usize = 65_536;
/// Bytes of a raw example kept per error line.
const EXAMPLE_MAX: usize = 256;
/// Bytes of a memory-pressure message kept.
const PRESSURE_TEXT_MAX: usize = 512;
/// How long after a kernel OOM kill systemd's "killed by the OOM killer"
/// message may come to name the victim's unit.
const OOM_UNIT_WINDOW_US: u64 = 10_000_000;

/// Lower-case message ids from systemd's sd-messages.h.
pub const ID_RESTART_SCHEDULED: &[u8] = b"5eb03494b6584870a536b337290809b3";
const ID_UNIT_STARTED: &[u8] = b"39f53479d3a045ac8e11786248231fbf";
const ID_UNIT_FAILURE_RESULT: &[u8] = b"d9b373ed55a64feb8242e02dbe79a49c";
const ID_UNIT_PROCESS_EXIT: &[u8] = b"98e322203f7a4ed290d09fe03c09fe15";
const ID_UNIT_OUT_OF_MEMORY: &[u8] = b"fe6faa94e7774663a0da52717891d8ef";
const ID_UNIT_OOMD_KILL: &[u8] = b"d989611b15e44c9dbf31e3c81256e4ed";
const ID_COREDUMP: &[u8] = b"fc2e22bc6ee647b6b90729ab34a250b1";

/// Phrases that make an application's message a memory-pressure message,
/// matched case-insensitively anywhere in MESSAGE (kernel messages are the
/// OOM kills' business, not this list's).
pub const PRESSURE_PHRASES: [&str; 3] =
    ["memory pressure", "out of memory", "cannot allocate memory"];

/// Where the journal came from, as the reader saw it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceInfo {
    pub files: usize,
    pub entries: u64,
    pub bytes: u64,
    /// Files or parts the reader could not use: (path, what went wrong).
    pub problems: Vec<(String, String)>,
}

/// What a systemd message id (or, without one, its text) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MsgKind {
    RestartScheduled,
    Started,
    FailureResult,
    ProcessExit,
    UnitOutOfMemory,
    OomdKill,
    Coredump,
    Other,
}

impl MsgKind {
    fn from_id(id: &[u8]) -> Self {
        let id = id.to_ascii_lowercase();
        match id.as_slice() {
            ID_RESTART_SCHEDULED => Self::RestartScheduled,
            ID_UNIT_STARTED => Self::Started,
            ID_UNIT_FAILURE_RESULT => Self::FailureResult,
            ID_UNIT_PROCESS_EXIT => Self::ProcessExit,
            ID_UNIT_OUT_OF_MEMORY => Self::UnitOutOfMemory,
            ID_UNIT_OOMD_KILL => Self::OomdKill,
            ID_COREDUMP => Self::Coredump,
            _ => Self::Other,
        }
    }

    /// The manager's message about a unit, told by its text alone: what
    /// systemd logs without MESSAGE_ID (older versions, or forwarded
    /// syslog copies). `msg` is MESSAGE after any "unit: " prefix.
    fn from_text(msg: &[u8]) -> Self {
        if find(msg, b"Scheduled restart job").is_some()
            || find(msg, b"holdoff time over, scheduling restart").is_some()
            || find(msg, b"hold-off time over, scheduling restart").is_some()
        {
            Self::RestartScheduled
        } else if msg.starts_with(b"Started ") {
            Self::Started
        } else if msg.starts_with(b"Failed with result '") {
            Self::FailureResult
        } else if msg.starts_with(b"Main process exited, ") {
            Self::ProcessExit
        } else if msg.starts_with(b"A process of this unit has been killed by the OOM killer") {
            Self::UnitOutOfMemory
        } else {
            Self::Other
        }
    }
}

/// How a main process ended (systemd's EXIT_CODE=).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitCode {
    Exited,
    Killed,
    Dumped,
}

impl ExitCode {
    fn parse(b: &[u8]) -> Option<Self> {
        match b {
            b"exited" => Some(Self::Exited),
            b"killed" => Some(Self::Killed),
            b"dumped" => Some(Self::Dumped),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Exited => "exited",
            Self::Killed => "killed",
            Self::Dumped => "dumped",
        }
    }
}

/// The last "Main process exited" of a unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExitStatus {
    pub code: ExitCode,
    /// Exit status, or signal number when killed or dumped.
    pub status: i32,
    /// systemd's name for it ("1/FAILURE", "9/KILL") when the text gave one.
    pub text: Option<String>,
}

/// The kernel's reason for an OOM kill (oom_constraint_text in
/// mm/oom_kill.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OomConstraint {
    None,
    Cpuset,
    MemoryPolicy,
    Memcg,
}

impl OomConstraint {
    fn parse(b: &[u8]) -> Option<Self> {
        match b {
            b"CONSTRAINT_NONE" => Some(Self::None),
            b"CONSTRAINT_CPUSET" => Some(Self::Cpuset),
            b"CONSTRAINT_MEMORY_POLICY" => Some(Self::MemoryPolicy),
            b"CONSTRAINT_MEMCG" => Some(Self::Memcg),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Cpuset => "cpuset",
            Self::MemoryPolicy => "memory-policy",
            Self::Memcg => "memcg",
        }
    }
}

/// How an OOM victim's unit was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitSource {
    /// The last `.service`/`.scope` component of the kernel's task_memcg.
    TaskMemcg,
    /// `_SYSTEMD_UNIT` of earlier entries logged by the victim's pid.
    Pid,
    /// systemd's "A process of this unit has been killed by the OOM killer."
    Systemd,
}

/// One kernel OOM kill.
#[derive(Debug, Clone, Serialize)]
pub struct OomKill {
    pub time_unix: f64,
    pub pid: u32,
    pub comm: String,
    pub anon_rss_kb: Option<u64>,
    pub total_vm_kb: Option<u64>,
    /// The kernel's words before ": Killed process" ("Out of memory",
    /// "Memory cgroup out of memory"); empty from kernels that wrote none.
    pub reason: String,
    pub constraint: Option<OomConstraint>,
    pub oom_memcg: Option<String>,
    pub task_memcg: Option<String>,
    pub unit: Option<String>,
    pub unit_source: Option<UnitSource>,
}

/// Who said a memory-pressure message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PressureSource {
    /// systemd-oomd (its own messages, or PID 1's "systemd-oomd killed").
    Oomd,
    /// systemd's "A process of this unit has been killed by the OOM killer."
    Systemd,
    /// Any other message holding one of [`PRESSURE_PHRASES`].
    Application,
}

#[derive(Debug, Clone, Serialize)]
pub struct PressureMessage {
    pub time_unix: f64,
    pub source: PressureSource,
    pub unit: Option<String>,
    pub text: String,
}

/// One masked error line of a looping unit.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorLine {
    /// "IDENTIFIER: message" with numbers masked as `N`.
    pub text: String,
    pub count: u64,
    /// One raw message (with its identifier) that masks to `text`.
    pub example: String,
}

/// One respawning unit.
#[derive(Debug, Clone, Serialize)]
pub struct LoopReport {
    pub unit: String,
    /// The user manager's uid for a user unit; None for system units.
    pub user_uid: Option<u32>,
    /// "Scheduled restart job" messages in range.
    pub restarts: u64,
    pub counter_last: Option<u64>,
    pub counter_max: Option<u64>,
    /// Times the restart counter went down (reset by `systemctl
    /// reset-failed`, a daemon re-exec, a new boot).
    pub counter_resets: u64,
    pub starts: u64,
    pub failures: u64,
    pub first_unix: f64,
    pub last_unix: f64,
    pub span_s: f64,
    /// Restarts per minute between the first and the last: intervals
    /// (restarts − 1) over the span; None when the span is 0.
    pub rate_per_min: Option<f64>,
    pub longest_gap_s: f64,
    /// UNIT_RESULT of the last "Failed with result" ("exit-code").
    pub last_result: Option<String>,
    pub last_exit_status: Option<ExitStatus>,
    /// Whether the error lines came from warnings or worse (PRIORITY ≤ 4)
    /// rather than from all the unit's messages.
    pub errors_are_warnings: bool,
    /// False when the unit had more distinct lines than the table holds:
    /// the counts are then upper bounds.
    pub top_errors_exact: bool,
    pub top_errors: Vec<ErrorLine>,
}

/// Journal volume of one unit, by journalctl's `-u` matching.
#[derive(Debug, Clone, Serialize)]
pub struct UnitVolume {
    pub unit: String,
    pub entries: u64,
    /// Bytes of the fields postmortem reads, as `FIELD=value`: MESSAGE,
    /// MESSAGE_ID, _SYSTEMD_UNIT, _PID, _UID, _TRANSPORT. The trait cannot
    /// list an entry's fields, so this is a lower bound of the entries'
    /// size, comparable between units.
    pub bytes: u64,
    /// entries / all entries.
    pub share: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BootReport {
    /// `_BOOT_ID` in hex.
    pub boot_id: String,
    pub first_unix: f64,
    pub last_unix: f64,
    pub entries: u64,
    /// The release from the kernel's "Linux version" line.
    pub kernel: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RangeReport {
    pub first_unix: Option<f64>,
    pub last_unix: Option<f64>,
    pub entries: u64,
    pub boots: Vec<BootReport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    Boot,
    LoopStart,
    FirstMemoryWarning,
    OomKill,
    LastEntry,
    Gap,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineEvent {
    pub time_unix: f64,
    pub kind: TimelineKind,
    pub unit: Option<String>,
    /// For a gap: seconds until the next boot's first entry.
    pub duration_s: Option<f64>,
    pub detail: String,
}

/// A looping unit's restarts over time, for the SVG.
#[derive(Debug, Clone)]
pub struct RestartSeries {
    pub unit: String,
    pub origin_unix: f64,
    pub width_s: f64,
    pub counts: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: crate::output::schema::Schema,
    pub generated_unix: Option<f64>,
    pub source: SourceInfo,
    pub range: RangeReport,
    pub loops: Vec<LoopReport>,
    pub journal_units: Vec<UnitVolume>,
    /// The last [`OOM_KILLS_MAX`] kernel OOM kills.
    pub oom_kills: Vec<OomKill>,
    /// All of them, counted.
    pub oom_kills_total: u64,
    /// Memory-pressure messages in range, all counted.
    pub memory_pressure_total: u64,
    /// The first [`PRESSURE_FIRST`] and the last [`PRESSURE_LAST`] of them.
    pub memory_pressure: Vec<PressureMessage>,
    pub timeline: Vec<TimelineEvent>,
    #[serde(skip)]
    pub series: Vec<RestartSeries>,
}

/// A masked message, shared by the cache and the tables that count it.
#[derive(Debug)]
struct Norm {
    hash: u64,
    text: Box<str>,
}

#[derive(Debug)]
struct TopEntry {
    norm: Arc<Norm>,
    count: u64,
    example: Box<[u8]>,
}

/// Bounded table of masked lines (Space-Saving, see
/// [`ERROR_LINES_PER_UNIT`]).
#[derive(Debug, Default)]
struct TopTable {
    lines: Vec<TopEntry>,
    overflowed: bool,
}

impl TopTable {
    fn add(&mut self, norm: &Arc<Norm>, cap: usize, raw: impl FnOnce() -> Box<[u8]>) {
        if let Some(e) = self.lines.iter_mut().find(|e| {
            e.norm.hash == norm.hash && (Arc::ptr_eq(&e.norm, norm) || e.norm.text == norm.text)
        }) {
            e.count += 1;
            return;
        }
        if self.lines.len() < cap {
            self.lines.push(TopEntry {
                norm: norm.clone(),
                count: 1,
                example: raw(),
            });
            return;
        }
        self.overflowed = true;
        if let Some(min) = self.lines.iter_mut().min_by_key(|e| e.count) {
            min.count += 1;
            min.norm = norm.clone();
            min.example = raw();
        }
    }

    fn top(&self, n: usize) -> Vec<ErrorLine> {
        let mut v: Vec<&TopEntry> = self.lines.iter().collect();
        v.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.norm.text.cmp(&b.norm.text))
        });
        v.into_iter()
            .take(n)
            .map(|e| ErrorLine {
                text: e.norm.text.to_string(),
                count: e.count,
                example: String::from_utf8_lossy(&e.example).into_owned(),
            })
            .collect()
    }
}

/// Restart times in doubling buckets from a common origin.
#[derive(Debug)]
struct Buckets {
    width_us: u64,
    counts: Vec<u32>,
}

impl Buckets {
    fn new() -> Self {
        Buckets {
            width_us: 1_000_000,
            counts: vec![0; RESTART_BUCKETS],
        }
    }

    fn add(&mut self, offset_us: u64) {
        let mut i = offset_us / self.width_us;
        while i >= RESTART_BUCKETS as u64 {
            for k in 0..RESTART_BUCKETS / 2 {
                self.counts[k] = self.counts[2 * k].saturating_add(self.counts[2 * k + 1]);
            }
            self.counts[RESTART_BUCKETS / 2..].fill(0);
            self.width_us = self.width_us.saturating_mul(2);
            i = offset_us / self.width_us;
        }
        let c = &mut self.counts[i as usize];
        *c = c.saturating_add(1);
    }
}

#[derive(Debug, Default)]
struct UnitAgg {
    name: Box<str>,
    user_uid: Option<u32>,
    // journalctl -u volume
    entries: u64,
    bytes: u64,
    // manager messages
    restarts: u64,
    counter_last: Option<u64>,
    counter_max: Option<u64>,
    counter_resets: u64,
    starts: u64,
    failures: u64,
    first_restart_us: u64,
    last_restart_us: u64,
    longest_gap_us: u64,
    last_result: Option<Box<str>>,
    last_exit: Option<ExitStatus>,
    buckets: Option<Buckets>,
    // own messages
    warnings: Option<TopTable>,
    /// All own messages, until the first warning makes them moot.
    all: Option<TopTable>,
    seen_warning: bool,
    last_pid: u32,
}

#[derive(Debug)]
struct Boot {
    id: [u8; 16],
    first_us: u64,
    last_us: u64,
    entries: u64,
    kernel: Option<String>,
}

/// The kernel's oom-kill summary line, waiting for its "Killed process".
#[derive(Debug)]
struct OomSummary {
    boot: usize,
    pid: Option<u32>,
    constraint: Option<OomConstraint>,
    oom_memcg: Option<String>,
    task_memcg: Option<String>,
}

/// Which `journalctl -u` the per-unit volume counts like: the matches of
/// add_matches_for_unit changed between systemd versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitMatch {
    /// systemd 252 (and the releases up to at least 255): PID 1's
    /// messages are `_PID=1` with `UNIT=`; coredumps need `_UID=0`.
    Pid1,
    /// systemd 257: the manager's messages are `_SYSTEMD_CGROUP=/init.scope`
    /// with `UNIT=` (helpers PID 1 forks count too); coredumps are from
    /// `_UID=0` or the `systemd-coredump` user, given here as journalctl
    /// resolves it on the machine that reads (None: no such user, and
    /// then journalctl does not filter coredumps by uid at all).
    InitScope { coredump_uid: Option<u32> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum UnitField {
    Systemd,
    Unit,
    Object,
    Coredump,
    Slice,
}

impl UnitField {
    fn name(self) -> &'static str {
        match self {
            Self::Systemd => "_SYSTEMD_UNIT",
            Self::Unit => "UNIT",
            Self::Object => "OBJECT_SYSTEMD_UNIT",
            Self::Coredump => "COREDUMP_UNIT",
            Self::Slice => "_SYSTEMD_SLICE",
        }
    }
}

/// Hasher of the caches' integer keys (value ids, pids): SipHash's
/// resistance to chosen keys is worth little for tables capped at
/// [`CACHE_CAP`], and it would cost a good part of the per-entry budget.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        // FxHash's step: the multiply spreads the key into the high bits
        // the table's control bytes use.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as u64);
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Gathers what the report needs, one entry at a time.
pub struct Analyzer {
    now_unix: Option<f64>,
    unit_match: UnitMatch,
    entries: u64,
    first_us: Option<u64>,
    last_us: u64,
    boots: Vec<Boot>,
    boot_index: HashMap<[u8; 16], usize>,
    current_boot: usize,
    units: Vec<UnitAgg>,
    system_units: HashMap<Box<str>, u32>,
    user_units: HashMap<(Box<str>, u32), u32>,
    /// (field, value id) → unit index; None for a value that names no unit
    /// the field counts for (a `_SYSTEMD_SLICE` that is not a slice).
    unit_cache: IdMap<(UnitField, u64), Option<u32>>,
    msgid_cache: IdMap<u64, MsgKind>,
    /// (MESSAGE id, SYSLOG_IDENTIFIER id) → masked line.
    norm_cache: IdMap<(u64, u64), Arc<Norm>>,
    /// MESSAGE id → whether it holds a pressure phrase.
    pressure_cache: IdMap<u64, bool>,
    pid_units: IdMap<u32, u32>,
    /// Error tables made for units before their first restart.
    pre_loop_tables: usize,
    oom_summary: Option<OomSummary>,
    oom_kills: Vec<(OomKill, u64, usize)>,
    oom_kills_total: u64,
    pressure_total: u64,
    pressure_first: Vec<PressureMessage>,
    pressure_last: std::collections::VecDeque<PressureMessage>,
}

fn unix(us: u64) -> f64 {
    us as f64 / 1e6
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// The digits at the start of `b`, as a number.
fn leading_u64(b: &[u8]) -> Option<u64> {
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    parse_u64(&b[..n])
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn truncated(b: &[u8], max: usize) -> &[u8] {
    &b[..b.len().min(max)]
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// MESSAGE without systemd's "unit: " prefix (LOG_UNIT_MESSAGE writes
/// "%s: " with the unit's id before the text).
fn strip_unit_prefix<'a>(msg: &'a [u8], unit: &[u8]) -> &'a [u8] {
    msg.strip_prefix(unit)
        .and_then(|m| m.strip_prefix(b": "))
        .unwrap_or(msg)
}

/// The counter of "…restart counter is at N.".
fn restart_counter(msg: &[u8]) -> Option<u64> {
    let at = find(msg, b"restart counter is at ")?;
    leading_u64(&msg[at + b"restart counter is at ".len()..])
}

/// "Main process exited, code=exited, status=1/FAILURE" → exit status.
fn parse_exit_text(msg: &[u8]) -> Option<ExitStatus> {
    let c = find(msg, b"code=")? + 5;
    let code_end = msg[c..]
        .iter()
        .position(|&b| b == b',')
        .map_or(msg.len(), |p| c + p);
    let code = ExitCode::parse(&msg[c..code_end])?;
    let s = find(msg, b"status=")? + 7;
    let rest = &msg[s..];
    let end = rest
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let word = &rest[..end];
    let (num, text) = match word.iter().position(|&b| b == b'/') {
        Some(p) => (&word[..p], Some(lossy(word))),
        None => (word, None),
    };
    let status = std::str::from_utf8(num).ok()?.parse::<i32>().ok()?;
    Some(ExitStatus { code, status, text })
}

/// Masks a message for counting: a run of digits not glued to a letter
/// before it becomes `N` (pids, counts, errnos: "-22" → "-N", the sign
/// kept so negative errnos stay recognisable), `0x` + hex digits becomes
/// `0xN`, and a word of 8 or more hex digits holding a digit (ids,
/// addresses, hashes) becomes `N`. Digits inside names ("ttyS0",
/// "sha256") stay: they tell lines apart.
pub fn mask_numbers(msg: &str) -> String {
    let b = msg.as_bytes();
    let mut out = String::with_capacity(msg.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        let prev_alnum = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if !prev_alnum && b[i].is_ascii_hexdigit() {
            // A whole word starting here.
            let end = i + b[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            let word = &b[i..end];
            let hex_prefixed = word.len() > 2
                && word[0] == b'0'
                && (word[1] == b'x' || word[1] == b'X')
                && word[2..].iter().all(u8::is_ascii_hexdigit);
            let long_hex = word.len() >= 8
                && word.iter().all(u8::is_ascii_hexdigit)
                && word.iter().any(u8::is_ascii_digit);
            if hex_prefixed || long_hex {
                out.push_str(&msg[copied..i]);
                out.push_str(if hex_prefixed { "0xN" } else { "N" });
                i = end;
                copied = end;
                continue;
            }
        }
        if !prev_alnum && b[i].is_ascii_digit() {
            let end = i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            out.push_str(&msg[copied..i]);
            out.push('N');
            i = end;
            copied = end;
            continue;
        }
        i += 1;
    }
    out.push_str(&msg[copied..]);
    out
}

/// The victim's unit from a memcg path: its last `.service` or `.scope`
/// component.
fn unit_of_memcg(path: &str) -> Option<String> {
    path.rsplit('/')
        .find(|c| c.ends_with(".service") || c.ends_with(".scope"))
        .map(str::to_string)
}

/// Parses the kernel's dump_oom_summary line:
/// "oom-kill:constraint=C,nodemask=…,cpuset=…,mems_allowed=…[,oom_memcg=P],task_memcg=P,task=comm,pid=N,uid=N".
/// Keys are searched by name, not split on commas: mems_allowed lists can
/// hold commas.
fn parse_oom_summary(msg: &[u8], boot: usize) -> OomSummary {
    let value = |key: &[u8], until: &[&[u8]]| -> Option<String> {
        let at = find(msg, key)? + key.len();
        let rest = &msg[at..];
        let end = until
            .iter()
            .filter_map(|u| find(rest, u))
            .min()
            .unwrap_or(rest.len());
        Some(lossy(&rest[..end]))
    };
    let constraint =
        value(b"constraint=", &[b","]).and_then(|c| OomConstraint::parse(c.as_bytes()));
    let oom_memcg = value(b",oom_memcg=", &[b",task_memcg="]);
    let task_memcg = value(b",task_memcg=", &[b",task="]);
    let pid = msg
        .windows(5)
        .rposition(|w| w == b",pid=")
        .and_then(|p| leading_u64(&msg[p + 5..]))
        .and_then(|p| u32::try_from(p).ok());
    OomSummary {
        boot,
        pid,
        constraint,
        oom_memcg,
        task_memcg,
    }
}

/// "Out of memory: Killed process 1234 (agetty) total-vm:1kB, anon-rss:2kB, …"
struct KillLine {
    reason: String,
    pid: u32,
    comm: String,
    anon_rss_kb: Option<u64>,
    total_vm_kb: Option<u64>,
}

fn parse_oom_kill(msg: &[u8]) -> Option<KillLine> {
    // Kernels before 4.19 wrote the line without the reason before it.
    let (reason, rest) = match msg.strip_prefix(b"Killed process ") {
        Some(rest) => (String::new(), rest),
        None => {
            let at = find(msg, b": Killed process ")?;
            (lossy(&msg[..at]), &msg[at + b": Killed process ".len()..])
        }
    };
    let pid = u32::try_from(leading_u64(rest)?).ok()?;
    let open = rest.iter().position(|&b| b == b'(')?;
    // comm may hold ')' itself: take the last ") " before the sizes.
    let after = &rest[open + 1..];
    let close = find(after, b") total-vm:").or_else(|| after.iter().rposition(|&b| b == b')'))?;
    let comm = lossy(&after[..close]);
    let kb = |key: &[u8]| find(msg, key).and_then(|p| leading_u64(&msg[p + key.len()..]));
    Some(KillLine {
        reason,
        pid,
        comm,
        anon_rss_kb: kb(b"anon-rss:"),
        total_vm_kb: kb(b"total-vm:"),
    })
}

fn contains_pressure_phrase(msg: &[u8]) -> bool {
    let lower = msg.to_ascii_lowercase();
    PRESSURE_PHRASES
        .iter()
        .any(|p| find(&lower, p.as_bytes()).is_some())
}

impl Analyzer {
    /// `now_unix`: when the report is made, to say how long ago the
    /// journal ends; None leaves that out (and keeps output reproducible).
    /// Journal volume follows systemd 252's `journalctl -u`
    /// ([`UnitMatch::Pid1`]); see [`Analyzer::unit_match`].
    pub fn new(now_unix: Option<f64>) -> Self {
        Analyzer {
            now_unix,
            unit_match: UnitMatch::Pid1,
            entries: 0,
            first_us: None,
            last_us: 0,
            boots: Vec::new(),
            boot_index: HashMap::new(),
            current_boot: 0,
            units: Vec::new(),
            system_units: HashMap::new(),
            user_units: HashMap::new(),
            unit_cache: IdMap::default(),
            msgid_cache: IdMap::default(),
            norm_cache: IdMap::default(),
            pressure_cache: IdMap::default(),
            pid_units: IdMap::default(),
            pre_loop_tables: 0,
            oom_summary: None,
            oom_kills: Vec::new(),
            oom_kills_total: 0,
            pressure_total: 0,
            pressure_first: Vec::new(),
            pressure_last: std::collections::VecDeque::new(),
        }
    }

    /// Counts journal volume like the given systemd's `journalctl -u`.
    pub fn unit_match(mut self, m: UnitMatch) -> Self {
        self.unit_match = m;
        self
    }

    fn system_unit(&mut self, name: &[u8]) -> u32 {
        let name = String::from_utf8_lossy(name);
        if let Some(&i) = self.system_units.get(name.as_ref()) {
            return i;
        }
        let i = self.units.len() as u32;
        self.units.push(UnitAgg {
            name: name.as_ref().into(),
            ..Default::default()
        });
        self.system_units.insert(name.as_ref().into(), i);
        i
    }

    fn user_unit(&mut self, name: &[u8], uid: u32) -> u32 {
        let key: (Box<str>, u32) = (String::from_utf8_lossy(name).as_ref().into(), uid);
        if let Some(&i) = self.user_units.get(&key) {
            return i;
        }
        let i = self.units.len() as u32;
        self.units.push(UnitAgg {
            name: key.0.clone(),
            user_uid: Some(uid),
            ..Default::default()
        });
        self.user_units.insert(key, i);
        i
    }

    /// The unit named by `field`, through the value-id cache.
    /// A field without a value id is absent (the trait's contract): one
    /// lookup, not two, for the many entries that lack the field.
    fn unit_of(&mut self, e: &dyn Fields, field: UnitField) -> Option<u32> {
        let vid = e.value_id(field.name())?;
        if let Some(&hit) = self.unit_cache.get(&(field, vid)) {
            return hit;
        }
        let v = e.get(field.name())?;
        let unit = if v.is_empty() || (field == UnitField::Slice && !v.ends_with(b".slice")) {
            None
        } else {
            Some(self.system_unit(v))
        };
        if self.unit_cache.len() >= CACHE_CAP {
            self.unit_cache.clear();
        }
        self.unit_cache.insert((field, vid), unit);
        unit
    }

    fn msg_kind(&mut self, e: &dyn Fields) -> Option<MsgKind> {
        let vid = e.value_id("MESSAGE_ID")?;
        if let Some(&k) = self.msgid_cache.get(&vid) {
            return Some(k);
        }
        let k = MsgKind::from_id(e.get("MESSAGE_ID")?);
        if self.msgid_cache.len() >= CACHE_CAP {
            self.msgid_cache.clear();
        }
        self.msgid_cache.insert(vid, k);
        Some(k)
    }

    fn boot(&mut self, id: [u8; 16], t: u64) {
        if let Some(b) = self.boots.get_mut(self.current_boot)
            && b.id == id
        {
            b.last_us = b.last_us.max(t);
            b.entries += 1;
            return;
        }
        // Interleaved boots (files merged out of order) go back to theirs;
        // past the cap, a new boot's entries count for the last one kept.
        let known = self.boot_index.get(&id).copied();
        let full = self.boots.len() >= BOOTS_MAX;
        if let Some(i) = known.or_else(|| full.then(|| self.boots.len() - 1)) {
            self.current_boot = i;
            let b = &mut self.boots[i];
            b.last_us = b.last_us.max(t);
            b.entries += 1;
            return;
        }
        self.boots.push(Boot {
            id,
            first_us: t,
            last_us: t,
            entries: 1,
            kernel: None,
        });
        self.current_boot = self.boots.len() - 1;
        self.boot_index.insert(id, self.current_boot);
        self.pid_units.clear();
        self.oom_summary = None;
    }

    /// Feeds one entry; entries come in realtime order.
    pub fn push(&mut self, e: &dyn Fields) {
        let t = e.realtime_us();
        self.entries += 1;
        let origin = *self.first_us.get_or_insert(t);
        self.last_us = self.last_us.max(t);
        self.boot(e.boot_id(), t);

        let pid_raw = e.get("_PID");
        let pid1 = pid_raw == Some(b"1");
        let uid_raw = e.get("_UID");
        let uid0 = uid_raw == Some(b"0");
        let kind = self.msg_kind(e);
        let msg = e.get("MESSAGE");
        let transport = e.get("_TRANSPORT");

        // journalctl -u: add_matches_for_unit in src/shared/logs-show.c.
        let own = self.unit_of(e, UnitField::Systemd);
        let mut matched: [Option<u32>; 5] = [own, None, None, None, None];
        let unit_field = self.unit_of(e, UnitField::Unit);
        let from_manager = match self.unit_match {
            UnitMatch::Pid1 => pid1,
            UnitMatch::InitScope { .. } => {
                unit_field.is_some() && e.get("_SYSTEMD_CGROUP") == Some(b"/init.scope")
            }
        };
        if from_manager {
            matched[1] = unit_field;
        }
        if uid0 {
            matched[2] = self.unit_of(e, UnitField::Object);
        }
        if kind == Some(MsgKind::Coredump) {
            let by_dumper = match self.unit_match {
                UnitMatch::Pid1 => uid0,
                UnitMatch::InitScope { coredump_uid: None } => true,
                UnitMatch::InitScope {
                    coredump_uid: Some(c),
                } => uid0 || uid_raw.and_then(parse_u64) == Some(u64::from(c)),
            };
            if by_dumper {
                matched[3] = self.unit_of(e, UnitField::Coredump);
            }
        }
        matched[4] = self.unit_of(e, UnitField::Slice);
        if matched.iter().any(Option::is_some) {
            // The fields this entry was read for, as FIELD=value: no
            // lookups beyond those already made.
            let field = |name: &str, v: Option<&[u8]>| v.map_or(0, |v| name.len() + 1 + v.len());
            let bytes = (field("MESSAGE", msg)
                + field("_PID", pid_raw)
                + field("_UID", uid_raw)
                + field("_TRANSPORT", transport)
                + own.map_or(0, |u| {
                    "_SYSTEMD_UNIT=".len() + self.units[u as usize].name.len()
                })
                + kind.map_or(0, |_| "MESSAGE_ID=".len() + 32)) as u64;
            for k in 0..matched.len() {
                if let Some(u) = matched[k]
                    && !matched[..k].contains(&Some(u))
                {
                    let agg = &mut self.units[u as usize];
                    agg.entries += 1;
                    agg.bytes += bytes;
                }
            }
        }

        let Some(msg) = msg else { return };

        if transport == Some(b"kernel") {
            self.kernel(msg, t);
            return;
        }

        // The service manager about a unit: PID 1 with UNIT= for system
        // units, a user manager with USER_UNIT= for user units.
        let manager_kind = match kind {
            Some(MsgKind::Other) | Some(MsgKind::Coredump) => None,
            Some(k) => Some(k),
            None if pid1
                || own.is_some_and(|u| self.units[u as usize].name.starts_with("user@")) =>
            {
                Some(MsgKind::Other)
            }
            None => None,
        };
        if let Some(k) = manager_kind
            && self.manager(
                e,
                k,
                msg,
                pid1.then_some(unit_field).flatten(),
                uid_raw,
                t,
                origin,
            )
        {
            return;
        }

        // The unit's own messages. PID 1 logs as init.scope, which never
        // restarts: its messages are skipped here, which keeps the
        // per-restart "counter is at N" texts out of the masking cache.
        let ident = e.get("SYSLOG_IDENTIFIER");
        let prio = e
            .get("PRIORITY")
            .filter(|p| p.len() == 1)
            .map_or(u8::MAX, |p| p[0].wrapping_sub(b'0'));
        let msg_vid = e.value_id("MESSAGE");
        if let Some(u) = own
            && !pid1
        {
            self.own_message(e, u, msg, msg_vid, ident, prio, pid_raw);
        }
        self.pressure(own, msg, msg_vid, ident, prio, t);
    }

    /// Handles a manager message; true when it was one about a unit.
    /// `system_unit` is the unit of PID 1's `UNIT=`.
    #[allow(clippy::too_many_arguments)]
    fn manager(
        &mut self,
        e: &dyn Fields,
        kind: MsgKind,
        msg: &[u8],
        system_unit: Option<u32>,
        uid_raw: Option<&[u8]>,
        t: u64,
        origin: u64,
    ) -> bool {
        let u = if let Some(u) = system_unit {
            u
        } else if let Some(name) = e.get("USER_UNIT") {
            let uid = uid_raw
                .and_then(parse_u64)
                .and_then(|u| u32::try_from(u).ok())
                .unwrap_or(u32::MAX);
            self.user_unit(name, uid)
        } else {
            return false;
        };
        let text = strip_unit_prefix(msg, self.units[u as usize].name.as_bytes());
        let kind = if kind == MsgKind::Other {
            MsgKind::from_text(text)
        } else {
            kind
        };
        let agg = &mut self.units[u as usize];
        match kind {
            MsgKind::RestartScheduled => {
                if agg.restarts > 0 {
                    agg.longest_gap_us = agg
                        .longest_gap_us
                        .max(t.saturating_sub(agg.last_restart_us));
                } else {
                    agg.first_restart_us = t;
                }
                agg.restarts += 1;
                agg.last_restart_us = t;
                let counter = e
                    .get("N_RESTARTS")
                    .and_then(parse_u64)
                    .or_else(|| restart_counter(text));
                if let Some(n) = counter {
                    if agg.counter_last.is_some_and(|last| n < last) {
                        agg.counter_resets += 1;
                    }
                    agg.counter_last = Some(n);
                    agg.counter_max = Some(agg.counter_max.map_or(n, |m| m.max(n)));
                }
                agg.buckets
                    .get_or_insert_with(Buckets::new)
                    .add(t.saturating_sub(origin));
            }
            MsgKind::Started => {
                // Only a finished start job: the id is logged for JOB_START
                // done, and JOB_TYPE says so where present.
                if e.get("JOB_TYPE").is_none_or(|j| j == b"start") {
                    agg.starts += 1;
                }
            }
            MsgKind::FailureResult => {
                agg.failures += 1;
                let result = e.get("UNIT_RESULT").map(lossy).or_else(|| {
                    let r = text.strip_prefix(b"Failed with result '")?;
                    let end = r.iter().position(|&b| b == b'\'')?;
                    Some(lossy(&r[..end]))
                });
                if let Some(r) = result {
                    agg.last_result = Some(r.into());
                }
            }
            MsgKind::ProcessExit => {
                // Control processes (ExecStartPre=…) exit too; the loop is
                // about the main one.
                if text.starts_with(b"Main process exited") {
                    let fields = e.get("EXIT_CODE").and_then(ExitCode::parse).zip(
                        e.get("EXIT_STATUS")
                            .and_then(|s| std::str::from_utf8(s).ok()?.parse().ok()),
                    );
                    let parsed = parse_exit_text(text);
                    let st = match (fields, parsed) {
                        (Some((code, status)), p) => Some(ExitStatus {
                            code,
                            status,
                            text: p.filter(|p| p.status == status).and_then(|p| p.text),
                        }),
                        (None, p) => p,
                    };
                    if st.is_some() {
                        agg.last_exit = st;
                    }
                }
            }
            MsgKind::UnitOutOfMemory => {
                let unit = agg.name.to_string();
                let boot = self.current_boot;
                if let Some((k, _, _)) = self.oom_kills.iter_mut().rev().find(|(k, kt, b)| {
                    *b == boot && k.unit.is_none() && t.saturating_sub(*kt) <= OOM_UNIT_WINDOW_US
                }) {
                    k.unit = Some(unit.clone());
                    k.unit_source = Some(UnitSource::Systemd);
                }
                self.keep_pressure(PressureMessage {
                    time_unix: unix(t),
                    source: PressureSource::Systemd,
                    unit: Some(unit),
                    text: lossy(truncated(msg, PRESSURE_TEXT_MAX)),
                });
            }
            MsgKind::OomdKill => {
                let unit = agg.name.to_string();
                self.keep_pressure(PressureMessage {
                    time_unix: unix(t),
                    source: PressureSource::Oomd,
                    unit: Some(unit),
                    text: lossy(truncated(msg, PRESSURE_TEXT_MAX)),
                });
            }
            MsgKind::Coredump | MsgKind::Other => return false,
        }
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn own_message(
        &mut self,
        e: &dyn Fields,
        u: u32,
        msg: &[u8],
        msg_vid: Option<u64>,
        ident: Option<&[u8]>,
        prio: u8,
        pid_raw: Option<&[u8]>,
    ) {
        if let Some(pid) = pid_raw
            .and_then(parse_u64)
            .and_then(|p| u32::try_from(p).ok())
            && self.units[u as usize].last_pid != pid
        {
            self.units[u as usize].last_pid = pid;
            if self.pid_units.len() >= PID_MAP_CAP {
                self.pid_units.clear();
            }
            self.pid_units.insert(pid, u);
        }
        let warning = prio <= 4;
        let agg = &self.units[u as usize];
        if !warning && agg.seen_warning {
            return;
        }
        let (cap, table_exists) = (
            if agg.restarts > 0 {
                ERROR_LINES_PER_UNIT
            } else {
                PRE_LOOP_LINES
            },
            if warning {
                agg.warnings.is_some()
            } else {
                agg.all.is_some()
            },
        );
        if !table_exists && agg.restarts == 0 {
            if self.pre_loop_tables >= PRE_LOOP_TABLES {
                return;
            }
            self.pre_loop_tables += 1;
        }
        let key = msg_vid.map(|m| (m, e.value_id("SYSLOG_IDENTIFIER").unwrap_or(u64::MAX)));
        let norm = match key.and_then(|k| self.norm_cache.get(&k)) {
            Some(n) => n.clone(),
            None => {
                let text = match ident {
                    Some(i) => format!(
                        "{}: {}",
                        String::from_utf8_lossy(truncated(i, IDENT_MAX)),
                        mask_numbers(&String::from_utf8_lossy(truncated(msg, LINE_MAX)))
                    ),
                    None => mask_numbers(&String::from_utf8_lossy(truncated(msg, LINE_MAX))),
                };
                let n = Arc::new(Norm {
                    hash: fnv(text.as_bytes()),
                    text: text.into(),
                });
                if let Some(k) = key {
                    if self.norm_cache.len() >= NORM_CACHE_CAP {
                        self.norm_cache.clear();
                    }
                    self.norm_cache.insert(k, n.clone());
                }
                n
            }
        };
        let raw = || -> Box<[u8]> {
            let mut r = Vec::new();
            if let Some(i) = ident {
                r.extend_from_slice(truncated(i, IDENT_MAX));
                r.extend_from_slice(b": ");
            }
            r.extend_from_slice(truncated(msg, EXAMPLE_MAX));
            r.into()
        };
        let agg = &mut self.units[u as usize];
        if warning {
            if !agg.seen_warning {
                agg.seen_warning = true;
                agg.all = None;
            }
            agg.warnings
                .get_or_insert_with(TopTable::default)
                .add(&norm, cap, raw);
        } else {
            agg.all
                .get_or_insert_with(TopTable::default)
                .add(&norm, cap, raw);
        }
    }

    fn pressure(
        &mut self,
        own: Option<u32>,
        msg: &[u8],
        msg_vid: Option<u64>,
        ident: Option<&[u8]>,
        prio: u8,
        t: u64,
    ) {
        let oomd = ident == Some(b"systemd-oomd");
        let source = if oomd {
            // oomd's notices and worse: kills and pressure reports, not its
            // debug chatter.
            if prio > 5 {
                return;
            }
            PressureSource::Oomd
        } else {
            let vid = msg_vid;
            let hit = match vid.and_then(|v| self.pressure_cache.get(&v)) {
                Some(&h) => h,
                None => {
                    let h = contains_pressure_phrase(msg);
                    if let Some(v) = vid {
                        if self.pressure_cache.len() >= CACHE_CAP {
                            self.pressure_cache.clear();
                        }
                        self.pressure_cache.insert(v, h);
                    }
                    h
                }
            };
            if !hit {
                return;
            }
            PressureSource::Application
        };
        let unit = own.map(|u| self.units[u as usize].name.to_string());
        self.keep_pressure(PressureMessage {
            time_unix: unix(t),
            source,
            unit,
            text: lossy(truncated(msg, PRESSURE_TEXT_MAX)),
        });
    }

    fn keep_pressure(&mut self, m: PressureMessage) {
        self.pressure_total += 1;
        if self.pressure_first.len() < PRESSURE_FIRST {
            self.pressure_first.push(m);
            return;
        }
        if self.pressure_last.len() >= PRESSURE_LAST {
            self.pressure_last.pop_front();
        }
        self.pressure_last.push_back(m);
    }

    fn kernel(&mut self, msg: &[u8], t: u64) {
        let boot = self.current_boot;
        if let Some(rest) = msg.strip_prefix(b"Linux version ") {
            let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            if let Some(b) = self.boots.get_mut(boot)
                && b.kernel.is_none()
            {
                b.kernel = Some(lossy(&rest[..end]));
            }
        } else if msg.starts_with(b"oom-kill:") {
            self.oom_summary = Some(parse_oom_summary(msg, boot));
        } else if let Some(KillLine {
            reason,
            pid,
            comm,
            anon_rss_kb,
            total_vm_kb,
        }) = parse_oom_kill(msg)
        {
            let summary = self
                .oom_summary
                .take()
                .filter(|s| s.boot == boot && s.pid.is_none_or(|p| p == pid));
            let (constraint, oom_memcg, task_memcg) = summary.map_or((None, None, None), |s| {
                (s.constraint, s.oom_memcg, s.task_memcg)
            });
            let (unit, unit_source) = match task_memcg.as_deref().and_then(unit_of_memcg) {
                Some(u) => (Some(u), Some(UnitSource::TaskMemcg)),
                None => match self.pid_units.get(&pid) {
                    Some(&u) => (
                        Some(self.units[u as usize].name.to_string()),
                        Some(UnitSource::Pid),
                    ),
                    None => (None, None),
                },
            };
            self.oom_kills_total += 1;
            if self.oom_kills.len() >= OOM_KILLS_MAX {
                self.oom_kills.remove(0);
            }
            self.oom_kills.push((
                OomKill {
                    time_unix: unix(t),
                    pid,
                    comm,
                    anon_rss_kb,
                    total_vm_kb,
                    reason,
                    constraint,
                    oom_memcg,
                    task_memcg,
                    unit,
                    unit_source,
                },
                t,
                boot,
            ));
        }
    }

    /// The report; `source` is what the reader says about the files.
    pub fn finish(self, source: SourceInfo) -> Report {
        let total = self.entries;
        let mut loops = Vec::new();
        let mut series = Vec::new();
        let origin = self.first_us.unwrap_or(0);
        for u in &self.units {
            if u.restarts < LOOP_MIN_RESTARTS {
                continue;
            }
            let span_us = u.last_restart_us.saturating_sub(u.first_restart_us);
            let span_s = span_us as f64 / 1e6;
            let (table, errors_are_warnings) = if u.seen_warning {
                (u.warnings.as_ref(), true)
            } else {
                (u.all.as_ref(), false)
            };
            loops.push(LoopReport {
                unit: u.name.to_string(),
                user_uid: u.user_uid,
                restarts: u.restarts,
                counter_last: u.counter_last,
                counter_max: u.counter_max,
                counter_resets: u.counter_resets,
                starts: u.starts,
                failures: u.failures,
                first_unix: unix(u.first_restart_us),
                last_unix: unix(u.last_restart_us),
                span_s,
                // n restarts span n - 1 intervals.
                rate_per_min: (span_s > 0.0)
                    .then(|| u.restarts.saturating_sub(1) as f64 / (span_s / 60.0)),
                longest_gap_s: u.longest_gap_us as f64 / 1e6,
                last_result: u.last_result.as_deref().map(str::to_string),
                last_exit_status: u.last_exit.clone(),
                errors_are_warnings,
                top_errors_exact: !table.is_some_and(|t| t.overflowed),
                top_errors: table.map(|t| t.top(TOP_ERRORS)).unwrap_or_default(),
            });
            if let Some(b) = &u.buckets {
                series.push(RestartSeries {
                    unit: u.name.to_string(),
                    origin_unix: unix(origin),
                    width_s: b.width_us as f64 / 1e6,
                    counts: b.counts.clone(),
                });
            }
        }
        loops.sort_by(|a, b| {
            b.restarts
                .cmp(&a.restarts)
                .then_with(|| a.unit.cmp(&b.unit))
        });
        let order: HashMap<&str, usize> = loops
            .iter()
            .enumerate()
            .map(|(i, l)| (l.unit.as_str(), i))
            .collect();
        series.sort_by_key(|s| order.get(s.unit.as_str()).copied().unwrap_or(usize::MAX));

        let mut volume: Vec<&UnitAgg> = self
            .units
            .iter()
            .filter(|u| u.user_uid.is_none() && u.entries > 0)
            .collect();
        volume.sort_by(|a, b| b.entries.cmp(&a.entries).then_with(|| a.name.cmp(&b.name)));
        let journal_units = volume
            .into_iter()
            .map(|u| UnitVolume {
                unit: u.name.to_string(),
                entries: u.entries,
                bytes: u.bytes,
                share: if total > 0 {
                    u.entries as f64 / total as f64
                } else {
                    0.0
                },
            })
            .collect();

        let boots: Vec<BootReport> = self
            .boots
            .iter()
            .map(|b| BootReport {
                boot_id: b.id.iter().map(|x| format!("{x:02x}")).collect(),
                first_unix: unix(b.first_us),
                last_unix: unix(b.last_us),
                entries: b.entries,
                kernel: b.kernel.clone(),
            })
            .collect();

        let mut memory_pressure = self.pressure_first;
        memory_pressure.extend(self.pressure_last);
        let oom_kills: Vec<OomKill> = self.oom_kills.into_iter().map(|(k, _, _)| k).collect();

        let timeline = timeline(&boots, &loops, &memory_pressure, &oom_kills);
        Report {
            schema: crate::output::schema::Schema,
            generated_unix: self.now_unix,
            source,
            range: RangeReport {
                first_unix: self.first_us.map(unix),
                last_unix: self.first_us.map(|_| unix(self.last_us)),
                entries: total,
                boots,
            },
            loops,
            journal_units,
            oom_kills,
            oom_kills_total: self.oom_kills_total,
            memory_pressure_total: self.pressure_total,
            memory_pressure,
            timeline,
            series,
        }
    }
}

fn timeline(
    boots: &[BootReport],
    loops: &[LoopReport],
    pressure: &[PressureMessage],
    kills: &[OomKill],
) -> Vec<TimelineEvent> {
    let mut t = Vec::new();
    let mut by_start: Vec<&BootReport> = boots.iter().collect();
    by_start.sort_by(|a, b| a.first_unix.total_cmp(&b.first_unix));
    for (i, b) in by_start.iter().enumerate() {
        t.push(TimelineEvent {
            time_unix: b.first_unix,
            kind: TimelineKind::Boot,
            unit: None,
            duration_s: None,
            detail: match &b.kernel {
                Some(k) => format!("boot {} (Linux {k})", &b.boot_id[..b.boot_id.len().min(8)]),
                None => format!("boot {}", &b.boot_id[..b.boot_id.len().min(8)]),
            },
        });
        t.push(TimelineEvent {
            time_unix: b.last_unix,
            kind: TimelineKind::LastEntry,
            unit: None,
            duration_s: None,
            detail: format!(
                "last entry of boot {}",
                &b.boot_id[..b.boot_id.len().min(8)]
            ),
        });
        if let Some(next) = by_start.get(i + 1) {
            t.push(TimelineEvent {
                time_unix: b.last_unix,
                kind: TimelineKind::Gap,
                unit: None,
                duration_s: Some((next.first_unix - b.last_unix).max(0.0)),
                detail: "no entries until the next boot".to_string(),
            });
        }
    }
    for l in loops {
        t.push(TimelineEvent {
            time_unix: l.first_unix,
            kind: TimelineKind::LoopStart,
            unit: Some(l.unit.clone()),
            duration_s: None,
            detail: format!("first restart of {}", l.unit),
        });
    }
    if let Some(p) = pressure.first() {
        t.push(TimelineEvent {
            time_unix: p.time_unix,
            kind: TimelineKind::FirstMemoryWarning,
            unit: p.unit.clone(),
            duration_s: None,
            detail: p.text.clone(),
        });
    }
    for k in kills {
        t.push(TimelineEvent {
            time_unix: k.time_unix,
            kind: TimelineKind::OomKill,
            unit: k.unit.clone(),
            duration_s: None,
            detail: format!("{}: killed process {} ({})", k.reason, k.pid, k.comm),
        });
    }
    // Ties keep a reading order: a boot before what happens in it, the
    // last entry before the gap after it.
    t.sort_by(|a, b| {
        a.time_unix
            .total_cmp(&b.time_unix)
            .then(a.kind.cmp(&b.kind))
    });
    t
}
