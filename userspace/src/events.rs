//! Per-event records: decoding the probe's ring buffer, filtering, and
//! rendering them for people (escaped) and for programs (lossless JSON).

use std::{path::Path, time::Duration};

use serde::Serialize;
use spawnscope_common::{
    ARGS_TRUNCATED, ARGS_UNREADABLE, ExecEvent, ExitEvent, FILENAME_TRUNCATED, ForkEvent,
    OOM_PID_ONLY, OomEvent, kind, oom_scope,
};

use crate::{
    cgroupfs::Resolved,
    detect::{DetEvent, EventKind},
    output::schema::Schema,
    report::{Filter, glob_match},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub ts_ns: u64,
    pub start_ns: u64,
    pub cgroup_id: u64,
    pub comm: Vec<u8>,
    /// The real parent's comm at the exec.
    pub parent_comm: Vec<u8>,
    pub filename: Vec<u8>,
    pub filename_truncated: bool,
    pub argv: Vec<Vec<u8>>,
    pub argv_truncated: bool,
    pub argv_unreadable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub ts_ns: u64,
    pub start_ns: u64,
    pub cgroup_id: u64,
    pub comm: Vec<u8>,
    /// wait(2) status word.
    pub status: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fork {
    pub parent_pid: u32,
    pub parent_tgid: u32,
    pub child_pid: u32,
    pub ts_ns: u64,
    pub child_start_ns: u64,
    pub cgroup_id: u64,
    pub comm: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oom {
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub ts_ns: u64,
    pub start_ns: u64,
    pub cgroup_id: u64,
    pub comm: Vec<u8>,
    /// None when the kernel's layout gave no way to read it.
    pub rss_bytes: Option<u64>,
    pub killer_pid: u32,
    pub killer_tgid: u32,
    pub killer_cgroup_id: u64,
    pub killer_comm: Vec<u8>,
    /// None when the kernel could not say.
    pub scope: Option<OomScope>,
    /// For a memcg kill: the limiting cgroup's hierarchy (0 is cgroup2)
    /// and id there.
    pub memcg_hierarchy: u32,
    pub memcg_id: u64,
    /// Its path, filled in by the caller, which knows the trees.
    pub memcg_path: Option<String>,
    pub victim_from: VictimFrom,
}

/// What ran out of memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OomScope {
    /// The machine.
    Global,
    /// A cgroup hit its memory limit.
    Memcg,
}

impl OomScope {
    /// The scope as it is serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            OomScope::Global => "global",
            OomScope::Memcg => "memcg",
        }
    }
}

/// Where an OOM victim's details come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VictimFrom {
    /// The kernel's record.
    Kernel,
    /// The tracepoint gave only a pid, and /proc still had the victim.
    Proc,
    /// The tracepoint gave only a pid, and the victim was gone.
    Pid,
}

impl Oom {
    /// For a pid-only record: the victim's tgid, uid, comm and cgroup2
    /// path from `proc_root/PID`, while it is still there (an OOM victim
    /// takes a moment to die). Returns the cgroup path, relative to the
    /// cgroup2 root, for the caller to turn into an id.
    pub fn fill_from_proc(&mut self, proc_root: &Path) -> Option<String> {
        let dir = proc_root.join(self.pid.to_string());
        let status = std::fs::read_to_string(dir.join("status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u32>().ok())
        };
        let (Some(tgid), Some(uid)) = (field("Tgid:"), field("Uid:")) else {
            return None;
        };
        let comm = std::fs::read(dir.join("comm")).ok()?;
        let cgroup = std::fs::read_to_string(dir.join("cgroup")).ok()?;
        self.tgid = tgid;
        self.uid = uid;
        self.comm = comm.strip_suffix(b"\n").unwrap_or(&comm).to_vec();
        self.victim_from = VictimFrom::Proc;
        crate::cgroupfs::v2_membership(&cgroup).map(str::to_string)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Exec(Exec),
    Exit(Exit),
    Fork(Fork),
    Oom(Oom),
}

/// How a process ended, from its wait(2) status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    Exited { code: u8 },
    Signaled { signal: u8, core_dumped: bool },
}

impl Exit {
    pub fn outcome(&self) -> Outcome {
        let sig = (self.status & 0x7f) as u8;
        if sig != 0 {
            Outcome::Signaled {
                signal: sig,
                core_dumped: self.status & 0x80 != 0,
            }
        } else {
            Outcome::Exited {
                code: ((self.status >> 8) & 0xff) as u8,
            }
        }
    }

    pub fn failed(&self) -> bool {
        self.outcome() != Outcome::Exited { code: 0 }
    }

    pub fn lifetime_ns(&self) -> u64 {
        self.ts_ns.saturating_sub(self.start_ns)
    }
}

fn cstr(b: &[u8]) -> Vec<u8> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    b[..end].to_vec()
}

/// Reads a `T` from the front of a record; None when it is too short.
fn pod<T: aya::Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: T is Pod (any bit pattern valid) and `bytes` holds at least
    // one; ring buffer records are only 8-byte aligned, so read unaligned.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) })
}

/// Decodes one ring buffer record; None for an unknown kind or a short
/// record (the caller counts those).
pub fn decode(bytes: &[u8]) -> Option<Event> {
    let k: u32 = pod(bytes)?;
    match k {
        kind::EXEC => {
            let e: ExecEvent = pod(bytes)?;
            let flen = (e.filename_len as usize).min(e.filename.len());
            let alen = (e.args_len as usize).min(e.args.len());
            let args = &e.args[..alen];
            // NUL-separated; a cut-off last argument has no NUL.
            let mut argv: Vec<Vec<u8>> = args.split(|&c| c == 0).map(<[u8]>::to_vec).collect();
            if args.last() == Some(&0) || args.is_empty() {
                argv.pop();
            }
            Some(Event::Exec(Exec {
                pid: e.pid,
                tgid: e.tgid,
                ppid: e.ppid,
                uid: e.uid,
                ts_ns: e.ts_ns,
                start_ns: e.start_ns,
                cgroup_id: e.cgroup_id,
                comm: cstr(&e.comm),
                parent_comm: cstr(&e.parent_comm),
                filename: e.filename[..flen].to_vec(),
                filename_truncated: e.flags & FILENAME_TRUNCATED != 0,
                argv,
                argv_truncated: e.flags & ARGS_TRUNCATED != 0,
                argv_unreadable: e.flags & ARGS_UNREADABLE != 0,
            }))
        }
        kind::EXIT => {
            let e: ExitEvent = pod(bytes)?;
            Some(Event::Exit(Exit {
                pid: e.pid,
                tgid: e.tgid,
                ppid: e.ppid,
                uid: e.uid,
                ts_ns: e.ts_ns,
                start_ns: e.start_ns,
                cgroup_id: e.cgroup_id,
                comm: cstr(&e.comm),
                status: e.status,
            }))
        }
        kind::FORK => {
            let e: ForkEvent = pod(bytes)?;
            Some(Event::Fork(Fork {
                parent_pid: e.parent_pid,
                parent_tgid: e.parent_tgid,
                child_pid: e.child_pid,
                ts_ns: e.ts_ns,
                child_start_ns: e.child_start_ns,
                cgroup_id: e.cgroup_id,
                comm: cstr(&e.comm),
            }))
        }
        kind::OOM => {
            let e: OomEvent = pod(bytes)?;
            Some(Event::Oom(Oom {
                pid: e.pid,
                tgid: e.tgid,
                uid: e.uid,
                ts_ns: e.ts_ns,
                start_ns: e.start_ns,
                cgroup_id: e.cgroup_id,
                comm: cstr(&e.comm),
                // Pages of the kernel's base size: 4 KiB on every arch
                // spawnscope's BTF offsets are tested on; read it properly
                // when another appears.
                rss_bytes: (e.rss_pages != u64::MAX)
                    .then(|| e.rss_pages.saturating_mul(page_size())),
                killer_pid: e.killer_pid,
                killer_tgid: e.killer_tgid,
                killer_cgroup_id: e.killer_cgroup_id,
                killer_comm: cstr(&e.killer_comm),
                scope: match e.scope {
                    oom_scope::GLOBAL => Some(OomScope::Global),
                    oom_scope::MEMCG => Some(OomScope::Memcg),
                    _ => None,
                },
                memcg_hierarchy: e.memcg_hierarchy,
                memcg_id: e.memcg_id,
                memcg_path: None,
                victim_from: if e.flags & OOM_PID_ONLY != 0 {
                    VictimFrom::Pid
                } else {
                    VictimFrom::Kernel
                },
            }))
        }
        _ => None,
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as u64 } else { 4096 }
}

impl Event {
    pub fn cgroup_id(&self) -> u64 {
        match self {
            Event::Exec(e) => e.cgroup_id,
            Event::Exit(e) => e.cgroup_id,
            Event::Fork(e) => e.cgroup_id,
            Event::Oom(e) => e.cgroup_id,
        }
    }

    pub fn comm(&self) -> &[u8] {
        match self {
            Event::Exec(e) => &e.comm,
            Event::Exit(e) => &e.comm,
            Event::Fork(e) => &e.comm,
            Event::Oom(e) => &e.comm,
        }
    }

    pub fn ts_ns(&self) -> u64 {
        match self {
            Event::Exec(e) => e.ts_ns,
            Event::Exit(e) => e.ts_ns,
            Event::Fork(e) => e.ts_ns,
            Event::Oom(e) => e.ts_ns,
        }
    }
}

/// What `trace --events` shows.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub cgroups: Filter,
    pub comms: Vec<String>,
    pub failed: bool,
    pub min_lifetime: Option<Duration>,
    pub max_lifetime: Option<Duration>,
}

impl EventFilter {
    /// Filters on how a process ended apply to exits only; with any of
    /// them, execs and forks are not shown.
    fn exit_only(&self) -> bool {
        self.failed || self.min_lifetime.is_some() || self.max_lifetime.is_some()
    }

    pub fn accepts(&self, e: &Event, r: &Resolved) -> bool {
        if !self.cgroups.accepts(r) {
            return false;
        }
        if !self.comms.is_empty() {
            let comm = String::from_utf8_lossy(e.comm());
            if !self.comms.iter().any(|g| glob_match(g, &comm)) {
                return false;
            }
        }
        match e {
            Event::Exit(x) => {
                let life = Duration::from_nanos(x.lifetime_ns());
                (!self.failed || x.failed())
                    && self.min_lifetime.is_none_or(|m| life >= m)
                    && self.max_lifetime.is_none_or(|m| life <= m)
            }
            _ => !self.exit_only(),
        }
    }
}

/// Makes attacker-controlled bytes safe for a terminal: control characters
/// (C0, DEL, C1), bidirectional overrides and bytes that are not UTF-8 are
/// shown as `\xNN` / `\u{NNNN}`, and a backslash as `\\`, so the rendering
/// is unambiguous and cannot move the cursor or change colours.
pub fn escape_human(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    s.push_str(&format!("\\x{:02x}", c as u32))
                }
                c if c.is_control() || is_bidi_control(c) => {
                    s.push_str(&format!("\\u{{{:04x}}}", c as u32))
                }
                c => s.push(c),
            }
        }
        for x in chunk.invalid() {
            s.push_str(&format!("\\x{x:02x}"));
        }
    }
    s
}

/// An argument as a shell would need it: escaped, and in single quotes
/// when empty or holding spaces or quotes, so `a "b c"` is not `a b c`.
fn quote_arg(a: &[u8]) -> String {
    let e = escape_human(a);
    if e.is_empty() || e.contains([' ', '\'', '"']) {
        format!("'{}'", e.replace('\'', "'\\''"))
    } else {
        e
    }
}

fn is_bidi_control(c: char) -> bool {
    matches!(c as u32, 0x200e | 0x200f | 0x202a..=0x202e | 0x2066..=0x2069)
}

/// A byte string in JSON: the text (invalid UTF-8 replaced), plus the exact
/// bytes in hex when the text is not exact.
fn lossless(b: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(b) {
        Ok(t) => (t.to_string(), None),
        Err(_) => (
            String::from_utf8_lossy(b).into_owned(),
            Some(b.iter().map(|x| format!("{x:02x}")).collect()),
        ),
    }
}

/// Where an event happened, for both renderings.
#[derive(Debug, Clone, Serialize)]
pub struct Place {
    pub cgroup_id: u64,
    pub cgroup: Option<String>,
    pub unit: Option<String>,
    pub container: Option<String>,
}

impl Place {
    pub fn of(cgroup_id: u64, r: &Resolved) -> Self {
        let o = r.owner.as_ref();
        Self {
            cgroup_id,
            cgroup: r.path.clone(),
            unit: o.and_then(|o| o.unit.clone()),
            container: o.and_then(|o| o.container.as_ref()).map(|c| c.label()),
        }
    }

    fn label(&self) -> String {
        let name = self
            .unit
            .clone()
            .or_else(|| self.cgroup.clone())
            .unwrap_or_else(|| format!("cgroup-id:{}", self.cgroup_id));
        match &self.container {
            Some(c) => format!("{name} @{c}"),
            None => name,
        }
    }
}

/// What exec and exit lines share: the process and where it ran.
#[derive(Serialize)]
struct JsonProcess<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    schema: Schema,
    time_unix: f64,
    ts_ns: u64,
    pid: u32,
    tgid: u32,
    ppid: u32,
    uid: u32,
    start_ns: u64,
    #[serde(flatten)]
    place: &'a Place,
    comm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    comm_hex: Option<String>,
}

#[derive(Serialize)]
struct JsonExec<'a> {
    #[serde(flatten)]
    process: JsonProcess<'a>,
    parent_comm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_comm_hex: Option<String>,
    filename: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename_hex: Option<String>,
    filename_truncated: bool,
    argv: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    argv_hex: Option<Vec<String>>,
    argv_truncated: bool,
    argv_unreadable: bool,
}

#[derive(Serialize)]
struct JsonExit<'a> {
    #[serde(flatten)]
    process: JsonProcess<'a>,
    #[serde(flatten)]
    outcome: Outcome,
    lifetime_ns: u64,
}

#[derive(Serialize)]
struct JsonFork<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    schema: Schema,
    time_unix: f64,
    ts_ns: u64,
    parent_pid: u32,
    parent_tgid: u32,
    child_pid: u32,
    child_start_ns: u64,
    #[serde(flatten)]
    place: &'a Place,
    comm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    comm_hex: Option<String>,
}

/// What the loop detector needs of an event, exactly as `analyze` reads
/// it back from the JSON (so live and offline runs agree). Forks: none.
pub fn det_event(e: &Event, place: &Place) -> Option<DetEvent> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let base = |kind, ts_ns, tgid, ppid, start_ns, comm: &[u8]| DetEvent {
        kind,
        ts_ns,
        tgid,
        ppid,
        start_ns,
        cgroup: place.cgroup.clone(),
        unit: place.unit.clone(),
        container: place.container.clone(),
        comm: text(comm),
        parent_comm: String::new(),
        filename: String::new(),
        argv: Vec::new(),
        code: None,
        signal: None,
        core_dumped: None,
    };
    match e {
        Event::Exec(x) => {
            let mut d = base(
                EventKind::Exec,
                x.ts_ns,
                x.tgid,
                x.ppid,
                x.start_ns,
                &x.comm,
            );
            d.parent_comm = text(&x.parent_comm);
            d.filename = text(&x.filename);
            d.argv = x.argv.iter().map(|a| text(a)).collect();
            Some(d)
        }
        Event::Exit(x) => {
            let mut d = base(
                EventKind::Exit,
                x.ts_ns,
                x.tgid,
                x.ppid,
                x.start_ns,
                &x.comm,
            );
            match x.outcome() {
                Outcome::Exited { code } => d.code = Some(code),
                Outcome::Signaled {
                    signal,
                    core_dumped,
                } => {
                    d.signal = Some(signal);
                    d.core_dumped = Some(core_dumped);
                }
            }
            Some(d)
        }
        Event::Fork(_) | Event::Oom(_) => None,
    }
}

#[derive(Serialize)]
struct JsonOom<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    schema: Schema,
    time_unix: f64,
    ts_ns: u64,
    pid: u32,
    tgid: u32,
    uid: u32,
    start_ns: u64,
    #[serde(flatten)]
    place: &'a Place,
    comm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    comm_hex: Option<String>,
    rss_bytes: Option<u64>,
    victim_from: VictimFrom,
    /// Null when this kernel could not say.
    scope: Option<OomScope>,
    /// The cgroup whose limit was hit, for a memcg kill.
    limiting_cgroup: Option<JsonLimiting>,
    killer: JsonKiller,
}

#[derive(Serialize)]
struct JsonLimiting {
    /// "v2", or "v1" (the cgroup v1 memory hierarchy).
    hierarchy: &'static str,
    id: u64,
    /// Path in that hierarchy; null if it could not be found.
    path: Option<String>,
}

#[derive(Serialize)]
struct JsonKiller {
    pid: u32,
    tgid: u32,
    cgroup_id: u64,
    comm: String,
}

/// One JSON object (no newline).
pub fn to_json(e: &Event, place: &Place, time_unix: f64) -> String {
    let r = match e {
        Event::Exec(x) => {
            let (comm, comm_hex) = lossless(&x.comm);
            let (parent_comm, parent_comm_hex) = lossless(&x.parent_comm);
            let (filename, filename_hex) = lossless(&x.filename);
            let args: Vec<(String, Option<String>)> = x.argv.iter().map(|a| lossless(a)).collect();
            let any_hex = args.iter().any(|a| a.1.is_some());
            serde_json::to_string(&JsonExec {
                process: JsonProcess {
                    kind: "exec",
                    schema: Schema,
                    time_unix,
                    ts_ns: x.ts_ns,
                    pid: x.pid,
                    tgid: x.tgid,
                    ppid: x.ppid,
                    uid: x.uid,
                    start_ns: x.start_ns,
                    place,
                    comm,
                    comm_hex,
                },
                parent_comm,
                parent_comm_hex,
                filename,
                filename_hex,
                filename_truncated: x.filename_truncated,
                argv_hex: any_hex.then(|| {
                    x.argv
                        .iter()
                        .map(|a| a.iter().map(|b| format!("{b:02x}")).collect())
                        .collect()
                }),
                argv: args.into_iter().map(|a| a.0).collect(),
                argv_truncated: x.argv_truncated,
                argv_unreadable: x.argv_unreadable,
            })
        }
        Event::Exit(x) => {
            let (comm, comm_hex) = lossless(&x.comm);
            serde_json::to_string(&JsonExit {
                process: JsonProcess {
                    kind: "exit",
                    schema: Schema,
                    time_unix,
                    ts_ns: x.ts_ns,
                    pid: x.pid,
                    tgid: x.tgid,
                    ppid: x.ppid,
                    uid: x.uid,
                    start_ns: x.start_ns,
                    place,
                    comm,
                    comm_hex,
                },
                outcome: x.outcome(),
                lifetime_ns: x.lifetime_ns(),
            })
        }
        Event::Oom(x) => {
            let (comm, comm_hex) = lossless(&x.comm);
            serde_json::to_string(&JsonOom {
                kind: "oom_kill",
                schema: Schema,
                time_unix,
                ts_ns: x.ts_ns,
                pid: x.pid,
                tgid: x.tgid,
                uid: x.uid,
                start_ns: x.start_ns,
                place,
                comm,
                comm_hex,
                rss_bytes: x.rss_bytes,
                victim_from: x.victim_from,
                scope: x.scope,
                limiting_cgroup: (x.scope == Some(OomScope::Memcg)).then(|| JsonLimiting {
                    hierarchy: if x.memcg_hierarchy == 0 { "v2" } else { "v1" },
                    id: x.memcg_id,
                    path: x.memcg_path.clone(),
                }),
                killer: JsonKiller {
                    pid: x.killer_pid,
                    tgid: x.killer_tgid,
                    cgroup_id: x.killer_cgroup_id,
                    comm: String::from_utf8_lossy(&x.killer_comm).into_owned(),
                },
            })
        }
        Event::Fork(x) => {
            let (comm, comm_hex) = lossless(&x.comm);
            serde_json::to_string(&JsonFork {
                kind: "fork",
                schema: Schema,
                time_unix,
                ts_ns: x.ts_ns,
                parent_pid: x.parent_pid,
                parent_tgid: x.parent_tgid,
                child_pid: x.child_pid,
                child_start_ns: x.child_start_ns,
                place,
                comm,
                comm_hex,
            })
        }
    };
    r.expect("event JSON")
}

pub fn fmt_duration(ns: u64) -> String {
    match ns {
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => format!("{:.1}us", n as f64 / 1e3),
        n if n < 1_000_000_000 => format!("{:.1}ms", n as f64 / 1e6),
        n => format!("{:.2}s", n as f64 / 1e9),
    }
}

fn clock(time_unix: f64) -> String {
    let secs = time_unix.max(0.0) as i64;
    let ms = ((time_unix.fract()) * 1000.0) as u32;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02}.{ms:03}")
}

pub const HUMAN_HEAD: &str = "TIME(UTC)    EVENT  PID     PPID    UID    COMM             WHERE                           DETAIL";

/// One line for people; every attacker-controlled byte is escaped.
pub fn to_human(e: &Event, place: &Place, time_unix: f64) -> String {
    let (ev, pid, ppid, uid, detail) = match e {
        Event::Exec(x) => {
            let mut d = escape_human(&x.filename);
            if x.filename_truncated {
                d.push('…');
            }
            d.push_str(" [");
            let args: Vec<String> = x.argv.iter().map(|a| quote_arg(a)).collect();
            d.push_str(&args.join(" "));
            if x.argv_truncated {
                d.push('…');
            }
            if x.argv_unreadable {
                d.push_str("<argv unreadable>");
            }
            d.push(']');
            ("exec", x.pid, x.ppid.to_string(), x.uid.to_string(), d)
        }
        Event::Exit(x) => {
            let how = match x.outcome() {
                Outcome::Exited { code } => format!("exit {code}"),
                Outcome::Signaled {
                    signal,
                    core_dumped,
                } => format!(
                    "signal {signal}{}",
                    if core_dumped { " (core dumped)" } else { "" }
                ),
            };
            (
                "exit",
                x.pid,
                x.ppid.to_string(),
                x.uid.to_string(),
                format!("{how} after {}", fmt_duration(x.lifetime_ns())),
            )
        }
        Event::Oom(x) => (
            "oomkill",
            x.pid,
            "-".to_string(),
            x.uid.to_string(),
            format!(
                "rss {}, {} (killed while {} [{}] allocated)",
                x.rss_bytes.map_or("unknown".to_string(), |b| format!(
                    "{:.1} MiB",
                    b as f64 / 1048576.0
                )),
                match (x.scope, &x.memcg_path) {
                    (Some(OomScope::Memcg), Some(p)) => format!("memory limit of {p}"),
                    (Some(OomScope::Memcg), None) => {
                        format!("memory limit of cgroup id {}", x.memcg_id)
                    }
                    (Some(s), _) => s.as_str().to_string(),
                    (None, _) => "scope unknown".to_string(),
                },
                escape_human(&x.killer_comm),
                x.killer_pid
            ),
        ),
        Event::Fork(x) => (
            "fork",
            x.child_pid,
            x.parent_tgid.to_string(),
            "-".to_string(),
            format!("child of {}", x.parent_pid),
        ),
    };
    format!(
        "{} {ev:<6} {pid:<7} {ppid:<7} {uid:<6} {:<16} {:<31} {detail}",
        clock(time_unix),
        escape_human(e.comm()),
        place.label(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec_record(filename: &[u8], args: &[u8], flags: u32) -> Vec<u8> {
        let mut e = ExecEvent {
            kind: kind::EXEC,
            pid: 10,
            tgid: 10,
            ppid: 1,
            uid: 0,
            filename_len: filename.len() as u32,
            args_len: args.len() as u32,
            flags,
            ts_ns: 5,
            start_ns: 4,
            cgroup_id: 7,
            comm: [0; 16],
            parent_comm: [0; 16],
            filename: [0; 256],
            args: [0; 256],
        };
        e.comm[..4].copy_from_slice(b"true");
        e.filename[..filename.len()].copy_from_slice(filename);
        e.args[..args.len()].copy_from_slice(args);
        // SAFETY: ExecEvent is Pod.
        unsafe {
            std::slice::from_raw_parts(
                (&e as *const ExecEvent).cast::<u8>(),
                size_of::<ExecEvent>(),
            )
        }
        .to_vec()
    }

    #[test]
    fn exec_records_decode_argv_and_flags() {
        let Some(Event::Exec(x)) = decode(&exec_record(b"/bin/true", b"/bin/true\0a\0\0b\0", 0))
        else {
            panic!()
        };
        assert_eq!(x.filename, b"/bin/true");
        assert_eq!(x.comm, b"true");
        assert_eq!(
            x.argv,
            vec![b"/bin/true".to_vec(), b"a".to_vec(), vec![], b"b".to_vec()]
        );
        assert!(!x.argv_truncated);
        let Some(Event::Exec(x)) = decode(&exec_record(b"/x", b"ab\0cd", ARGS_TRUNCATED)) else {
            panic!()
        };
        assert_eq!(
            x.argv,
            vec![b"ab".to_vec(), b"cd".to_vec()],
            "cut last arg kept"
        );
        assert!(x.argv_truncated);
        assert_eq!(decode(&exec_record(b"/x", b"", 0)[..40]), None, "short");
        let mut bogus = exec_record(b"/x", b"", 0);
        bogus[0] = 9;
        assert_eq!(decode(&bogus), None, "unknown kind");
    }

    fn oom_record(scope: u32, hierarchy: u32, memcg_id: u64) -> Vec<u8> {
        let mut e = OomEvent {
            kind: kind::OOM,
            pid: 42,
            tgid: 42,
            uid: 0,
            killer_pid: 42,
            killer_tgid: 42,
            scope,
            memcg_hierarchy: hierarchy,
            flags: 0,
            _pad: 0,
            memcg_id,
            ts_ns: 9,
            start_ns: 1,
            cgroup_id: 7,
            killer_cgroup_id: 7,
            rss_pages: 16,
            comm: [0; 16],
            killer_comm: [0; 16],
        };
        e.comm[..6].copy_from_slice(b"leaker");
        // SAFETY: OomEvent is Pod.
        unsafe {
            std::slice::from_raw_parts((&e as *const OomEvent).cast::<u8>(), size_of::<OomEvent>())
        }
        .to_vec()
    }

    /// The scope the kernel side records becomes "global", "memcg" with
    /// the limiting cgroup, or null.
    #[test]
    fn oom_kill_scope_in_json() {
        let place = Place {
            cgroup_id: 7,
            cgroup: Some("/leak".into()),
            unit: None,
            container: None,
        };
        let json = |rec: Vec<u8>, path: Option<&str>| {
            let Some(Event::Oom(mut o)) = decode(&rec) else {
                panic!()
            };
            o.memcg_path = path.map(String::from);
            let v: serde_json::Value =
                serde_json::from_str(&to_json(&Event::Oom(o), &place, 0.0)).unwrap();
            v
        };
        let g = json(oom_record(oom_scope::GLOBAL, 0, 0), None);
        assert_eq!(g["scope"], "global");
        assert!(g["limiting_cgroup"].is_null());
        assert_eq!(g["rss_bytes"], 16 * page_size());
        let m = json(oom_record(oom_scope::MEMCG, 3, 99), Some("/a/leak"));
        assert_eq!(m["scope"], "memcg");
        assert_eq!(
            m["limiting_cgroup"],
            serde_json::json!({"hierarchy": "v1", "id": 99, "path": "/a/leak"})
        );
        let m2 = json(oom_record(oom_scope::MEMCG, 0, 5), None);
        assert_eq!(
            m2["limiting_cgroup"],
            serde_json::json!({"hierarchy": "v2", "id": 5, "path": null})
        );
        let u = json(oom_record(oom_scope::UNKNOWN, 0, 0), None);
        assert!(
            u["scope"].is_null() && u["limiting_cgroup"].is_null(),
            "{u}"
        );
        let Some(Event::Oom(o)) = decode(&oom_record(oom_scope::GLOBAL, 0, 0)) else {
            panic!()
        };
        assert!(
            to_human(&Event::Oom(o), &place, 0.0).contains("rss 0.1 MiB, global (killed while"),
        );
        assert_eq!(g["victim_from"], "kernel");
    }

    #[test]
    fn oom_scope_and_victim_source_keep_their_names() {
        for (scope, name) in [(OomScope::Global, "global"), (OomScope::Memcg, "memcg")] {
            assert_eq!(serde_json::to_value(scope).unwrap(), name);
            assert_eq!(scope.as_str(), name);
        }
        for (from, name) in [
            (VictimFrom::Kernel, "kernel"),
            (VictimFrom::Proc, "proc"),
            (VictimFrom::Pid, "pid"),
        ] {
            assert_eq!(serde_json::to_value(from).unwrap(), name);
        }
    }

    /// Older kernels give only the victim's pid: the rest
    /// comes from /proc while the victim is there, else stays unknown.
    #[test]
    fn pid_only_kills_are_filled_from_proc() {
        let mut rec = oom_record(oom_scope::UNKNOWN, 0, 0);
        let flags = std::mem::offset_of!(OomEvent, flags);
        rec[flags..flags + 4].copy_from_slice(&OOM_PID_ONLY.to_le_bytes());
        let Some(Event::Oom(mut o)) = decode(&rec) else {
            panic!()
        };
        assert_eq!(o.victim_from, VictimFrom::Pid);
        let d = tempfile::tempdir().unwrap();
        assert_eq!(o.fill_from_proc(d.path()), None, "gone already");
        assert_eq!(o.victim_from, VictimFrom::Pid);
        let p = d.path().join("42");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(
            p.join("status"),
            "Name:\tleaker\nTgid:\t40\nPid:\t42\nUid:\t1000\t1000\t1000\t1000\n",
        )
        .unwrap();
        std::fs::write(p.join("comm"), "leak er\n").unwrap();
        std::fs::write(
            p.join("cgroup"),
            "12:memory:/x\n0::/system.slice/leak.service\n",
        )
        .unwrap();
        assert_eq!(
            o.fill_from_proc(d.path()).as_deref(),
            Some("/system.slice/leak.service")
        );
        assert_eq!((o.tgid, o.uid, o.victim_from), (40, 1000, VictimFrom::Proc));
        assert_eq!(o.comm, b"leak er");
        std::fs::write(p.join("status"), "Name:\tx\nUid:\t0\n").unwrap();
        let mut again = o.clone();
        again.victim_from = VictimFrom::Pid;
        assert_eq!(again.fill_from_proc(d.path()), None, "no Tgid line");
    }

    #[test]
    fn exit_outcomes_follow_wait_status() {
        let x = |status| Exit {
            pid: 1,
            tgid: 1,
            ppid: 0,
            uid: 0,
            ts_ns: 300,
            start_ns: 100,
            cgroup_id: 1,
            comm: vec![],
            status,
        };
        assert_eq!(x(0).outcome(), Outcome::Exited { code: 0 });
        assert!(!x(0).failed());
        assert_eq!(x(127 << 8).outcome(), Outcome::Exited { code: 127 });
        assert_eq!(
            x(11 | 0x80).outcome(),
            Outcome::Signaled {
                signal: 11,
                core_dumped: true
            }
        );
        assert!(x(9).failed());
        assert_eq!(x(0).lifetime_ns(), 200);
    }

    #[test]
    fn hostile_bytes_are_escaped_for_people_and_exact_in_json() {
        let evil = b"\x1b[31mred\x1b[0m\nnext\xff\\ \xe2\x80\xae".to_vec();
        let h = escape_human(&evil);
        assert_eq!(h, "\\x1b[31mred\\x1b[0m\\x0anext\\xff\\\\ \\u{202e}");
        assert!(!h.chars().any(|c| c.is_control()));
        let place = Place {
            cgroup_id: 1,
            cgroup: Some("/".into()),
            unit: None,
            container: None,
        };
        let e = Event::Exec(Exec {
            pid: 1,
            tgid: 1,
            ppid: 0,
            uid: 0,
            ts_ns: 0,
            start_ns: 0,
            cgroup_id: 1,
            comm: evil.clone(),
            parent_comm: b"bash".to_vec(),
            filename: b"/ok".to_vec(),
            filename_truncated: false,
            argv: vec![evil.clone(), b"plain".to_vec()],
            argv_truncated: false,
            argv_unreadable: false,
        });
        let line = to_human(&e, &place, 0.0);
        assert!(!line.contains('\x1b') && !line.contains('\n'), "{line:?}");
        assert_eq!(quote_arg(b"y z"), "'y z'");
        assert_eq!(quote_arg(b""), "''");
        assert_eq!(quote_arg(b"it's"), "'it'\\''s'");
        assert_eq!(quote_arg(b"plain"), "plain");
        let j: serde_json::Value = serde_json::from_str(&to_json(&e, &place, 0.0)).unwrap();
        let hex: String = evil.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(j["comm_hex"], hex.as_str());
        assert_eq!(j["argv_hex"][0], hex.as_str());
        assert_eq!(j["argv_hex"][1], "706c61696e");
        assert_eq!(j["argv"][1], "plain");
        assert!(j.get("filename_hex").is_none(), "valid UTF-8 needs no hex");
    }

    #[test]
    fn exit_filters_hide_execs() {
        let r = Resolved {
            path: None,
            owner: None,
        };
        let exit = |status, life| {
            Event::Exit(Exit {
                pid: 1,
                tgid: 1,
                ppid: 0,
                uid: 0,
                ts_ns: life,
                start_ns: 0,
                cgroup_id: 1,
                comm: b"sh".to_vec(),
                status,
            })
        };
        let f = EventFilter {
            failed: true,
            ..Default::default()
        };
        assert!(!f.accepts(&exit(0, 5), &r));
        assert!(f.accepts(&exit(1 << 8, 5), &r));
        assert!(f.accepts(&exit(9, 5), &r));
        let f = EventFilter {
            min_lifetime: Some(Duration::from_nanos(10)),
            max_lifetime: Some(Duration::from_nanos(20)),
            comms: vec!["s?".into()],
            ..Default::default()
        };
        assert!(!f.accepts(&exit(0, 5), &r));
        assert!(f.accepts(&exit(0, 15), &r));
        assert!(!f.accepts(&exit(0, 25), &r));
        let fork = Event::Fork(Fork {
            parent_pid: 1,
            parent_tgid: 1,
            child_pid: 2,
            ts_ns: 0,
            child_start_ns: 0,
            cgroup_id: 1,
            comm: b"sh".to_vec(),
        });
        assert!(!f.accepts(&fork, &r), "exit-only filters hide forks");
        assert!(EventFilter::default().accepts(&fork, &r));
    }
}
