//! Real systemd journals for `spawnscope postmortem` to read.
//!
//! [`incident_journal`]: the founding incident at full size (a 48.7-day
//! serial-getty crash loop, 421,491 restarts, an OOM kill, a 20-day gap
//! and a reboot), as a journal export stream that systemd's own
//! `systemd-journal-remote` turns into journal files. The entries carry
//! systemd 252's and the kernel's own message texts and fields; the ground
//! truth ([`IncidentTruth`]) is computed from the entries as they are
//! written, by the same code, never typed in.
//!
//! The incident's timeline (UTC): boot 1 on 2026-01-13 09:00:00 (the
//! kernel's "Linux version" line, mariadb, nginx and the getty started);
//! the getty's first restart at 2026-01-14 18:03:00.1237, then one every
//! 9.982870 s, the 421,491st at 2026-03-04 10:51:00, the journal's last
//! entry 20.6 ms later; MariaDB's "InnoDB: Memory pressure event" at
//! 10:45:12; the kernel's OOM kill of mariadbd (pid 812) at 10:50:00, with
//! systemd's "killed by the OOM killer", "Main process exited,
//! code=killed, status=9/KILL" and "Failed with result 'oom-kill'." for
//! mariadb.service; 20 days of nothing; boot 2 on 2026-03-24 12:56:00
//! (three entries, no loop).
//!
//! Per restart, three entries: agetty's error (syslog, PRIORITY=3, a new
//! _PID each time), systemd's "Scheduled restart job, restart counter is
//! at N." (N_RESTARTS=N) and its "Started serial-getty@ttyS0.service -
//! Serial Getty on ttyS0." (a new INVOCATION_ID). A real systemd 252 cycle
//! also logs "Deactivated successfully." and "Stopped …" (the container
//! journal has them): left out to keep the entries near the incident's
//! 1.26 M (1,264,487 in all). So are the fields that only make every entry
//! unique (_SOURCE_REALTIME_TIMESTAMP, SYSLOG_TIMESTAMP, JOB_ID): each
//! unique value is one more data object, and systemd-journal-remote
//! rotates a file when its data hash table fills (15 files of up to 59 MB
//! as it is, 755 MB in all).
//!
//! [`container_journal`]: a journal written by a real journald in a booted
//! container, while a real agetty crash-loops, a unit logs a known number
//! of lines and (where the host allows it) the kernel OOM-kills a unit's
//! process.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    fs,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{skip, systemd::have};

/// systemd-journal-remote, where Debian installs it (not on PATH).
pub const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// The unit of the incident's crash loop.
pub const INCIDENT_UNIT: &str = "serial-getty@ttyS0.service";

// systemd 252's catalogue message IDs (src/systemd/sd-messages.h).
/// SD_MESSAGE_UNIT_STARTED: "Started UNIT - DESCRIPTION." (job.c).
pub const MID_UNIT_STARTED: &str = "39f53479d3a045ac8e11786248231fbf";
/// SD_MESSAGE_UNIT_RESTART_SCHEDULED: "Scheduled restart job, restart
/// counter is at N." with N_RESTARTS= (service.c).
pub const MID_RESTART_SCHEDULED: &str = "5eb03494b6584870a536b337290809b3";
/// SD_MESSAGE_UNIT_PROCESS_EXIT: "Main process exited, code=…, status=…"
/// with EXIT_CODE= and EXIT_STATUS= (unit.c, unit_log_process_exit).
pub const MID_PROCESS_EXIT: &str = "98e322203f7a4ed290d09fe03c09fe15";
/// SD_MESSAGE_UNIT_FAILURE_RESULT: "Failed with result '…'." with
/// UNIT_RESULT= (unit.c, unit_log_failure).
pub const MID_FAILURE_RESULT: &str = "d9b373ed55a64feb8242e02dbe79a49c";
/// SD_MESSAGE_UNIT_OUT_OF_MEMORY: "A process of this unit has been killed
/// by the OOM killer." (unit.c, unit_check_oom).
pub const MID_OUT_OF_MEMORY: &str = "fe6faa94e7774663a0da52717891d8ef";

/// The incident's shape. Every number of [`IncidentTruth`] follows from
/// these (and is computed from the entries written, not from these).
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentParams {
    /// Realtime (µs since the epoch) of the first boot's first kernel line.
    pub boot1_us: u64,
    /// Restarts of the getty (systemd's counter at the last one).
    pub restarts: u64,
    /// Time between two restarts, µs.
    pub cycle_us: u64,
    /// Realtime of the last restart (the journal ends right after it).
    pub last_restart_us: u64,
    /// MariaDB's memory-pressure line.
    pub pressure_us: u64,
    /// The kernel's OOM kill (its first line).
    pub oom_us: u64,
    /// The second boot's first kernel line.
    pub boot2_us: u64,
}

/// 2026-01-13 09:00:00 UTC.
const JAN_13_0900: u64 = 1_768_294_800;
/// 2026-03-04 00:00:00 UTC.
const MAR_04: u64 = 1_772_582_400;
/// 2026-03-24 12:56:00 UTC.
const MAR_24_1256: u64 = 1_774_356_960;
const S: u64 = 1_000_000;

impl IncidentParams {
    /// The incident report's numbers: boot Jan 13 09:00 UTC; 421,491
    /// restarts spanning 48.7 days (first to last restart), the last at
    /// Mar 4 10:51:00, so the cycle is 48.7 d / 421,490 intervals =
    /// 9.982870 s (to the µs; the span is then 48.699998 d); MariaDB's
    /// memory pressure at 10:45:12, the OOM kill at 10:50:00, the second
    /// boot Mar 24 12:56:00.
    pub fn incident() -> Self {
        let restarts = 421_491;
        let span_us = 48.7 * 86_400.0 * 1e6;
        let cycle_us = (span_us / (restarts - 1) as f64).round() as u64;
        Self {
            boot1_us: JAN_13_0900 * S,
            restarts,
            cycle_us,
            last_restart_us: (MAR_04 + 10 * 3600 + 51 * 60) * S,
            pressure_us: (MAR_04 + 10 * 3600 + 45 * 60 + 12) * S,
            oom_us: (MAR_04 + 10 * 3600 + 50 * 60) * S,
            boot2_us: MAR_24_1256 * S,
        }
    }

    fn first_restart_us(&self) -> u64 {
        self.last_restart_us - (self.restarts - 1) * self.cycle_us
    }

    /// What the cache key covers: every parameter and the generator's
    /// version.
    fn key(&self) -> String {
        format!("v{GENERATOR_VERSION} {self:?}")
    }
}

/// Bump on any change to what [`write_incident`] emits: the cache is keyed
/// by it.
const GENERATOR_VERSION: u32 = 3;

/// One boot of the generated journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootTruth {
    /// 32 hex digits, as `journalctl --list-boots` prints it.
    pub boot_id: String,
    /// Realtime µs of its first and last entry.
    pub first_us: u64,
    pub last_us: u64,
    pub entries: u64,
}

/// The kernel's OOM kill, as its lines state it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OomTruth {
    /// Realtime µs of the "Out of memory: Killed process" line.
    pub time_us: u64,
    pub pid: u32,
    /// The victim's comm.
    pub comm: String,
    /// The unit of the victim's cgroup (task_memcg=/system.slice/<unit>).
    pub unit: String,
    /// The comm that invoked the OOM killer.
    pub invoker: String,
}

/// Ground truth of [`incident_journal`], computed from the entries as they
/// were written.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentTruth {
    /// The journal files written (systemd-journal-remote may rotate).
    pub files: Vec<PathBuf>,
    pub unit: String,
    /// "Scheduled restart job" lines of the unit.
    pub restarts: u64,
    /// The highest N_RESTARTS= (the counter at the last restart).
    pub counter_max: u64,
    /// N_RESTARTS= of the last restart before the OOM kill.
    pub counter_at_oom: u64,
    /// Realtime µs of the first and last restart line.
    pub first_restart_us: u64,
    pub last_restart_us: u64,
    /// last - first restart, µs.
    pub span_us: u64,
    /// Restarts per minute: 60 s over the median interval between two
    /// restarts. The interval is constant, so this is also (restarts - 1)
    /// over the span in minutes.
    pub restarts_per_min: f64,
    /// Longest interval between two consecutive restart lines, µs.
    pub longest_restart_gap_us: u64,
    /// Longest interval between two consecutive entries of the whole
    /// journal (the 20 days of silence), with the realtime µs of the
    /// entries on either side.
    pub longest_journal_gap_us: u64,
    pub longest_journal_gap_from_us: u64,
    pub longest_journal_gap_to_us: u64,
    /// agetty's own lines (_SYSTEMD_UNIT=<unit>, _COMM=agetty).
    pub agetty_lines: u64,
    /// Every entry written.
    pub entries_total: u64,
    /// Entries `journalctl -u UNIT` shows, per unit, by journalctl's rules
    /// (_SYSTEMD_UNIT=UNIT, or _PID=1 and UNIT=UNIT; an entry of PID 1
    /// counts for init.scope and for the UNIT it is about).
    pub entries_per_unit: BTreeMap<String, u64>,
    pub oom: OomTruth,
    /// In order.
    pub boots: Vec<BootTruth>,
    /// How long this call took, and whether it copied a cached journal.
    pub took: Duration,
    pub from_cache: bool,
}

/// One journal entry: realtime and monotonic µs, and its fields (the
/// trusted `_` ones included, as journald would have stored them).
struct Entry<'a> {
    boot: usize,
    realtime: u64,
    monotonic: u64,
    fields: Vec<(&'static str, Cow<'a, str>)>,
}

impl Entry<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// A deterministic 128-bit id (boot, invocation) as 32 hex digits:
/// splitmix64 of a tag and a counter.
fn id128(tag: u64, n: u64) -> String {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let a = mix(tag.wrapping_mul(0x1000_0000_01b3) ^ n);
    let b = mix(a ^ 0x5eed);
    format!("{a:016x}{b:016x}")
}

const MACHINE_ID: &str = "5c2b4f7e9a1d4e6b8f0a3c5d7e9b1a2c";
const HOSTNAME: &str = "posterg";
const KERNEL: &str = "Linux version 6.1.0-31-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.128-1 (2025-02-07)";
const GETTY_DESC: &str = "Serial Getty on ttyS0";
const MARIADB_DESC: &str = "MariaDB 10.11.14 database server";
const NGINX_DESC: &str = "A high performance web server and a reverse proxy server";
/// agetty's message when the serial port is there but not connected
/// (util-linux term-utils/agetty.c: "%s: failed to get terminal
/// attributes: %m"), logged through syslog at LOG_ERR.
const AGETTY_ERROR: &str = "ttyS0: failed to get terminal attributes: Input/output error";
const MARIADB_PID: u32 = 812;
const MARIADB_UID: u32 = 106;

/// Fields every entry of PID 1 carries (journald's trusted fields for
/// systemd, and what log_struct adds).
fn pid1_fields(
    boot_id: &str,
    priority: u8,
    code_file: &'static str,
    code_line: u32,
    code_func: &'static str,
) -> Fields {
    vec![
        ("_BOOT_ID", boot_id.to_string().into()),
        ("_MACHINE_ID", MACHINE_ID.into()),
        ("_HOSTNAME", HOSTNAME.into()),
        ("_RUNTIME_SCOPE", "system".into()),
        ("_TRANSPORT", "journal".into()),
        ("PRIORITY", priority.to_string().into()),
        ("SYSLOG_FACILITY", "3".into()),
        ("SYSLOG_IDENTIFIER", "systemd".into()),
        ("TID", "1".into()),
        ("CODE_FILE", code_file.into()),
        ("CODE_LINE", code_line.to_string().into()),
        ("CODE_FUNC", code_func.into()),
        ("_PID", "1".into()),
        ("_UID", "0".into()),
        ("_GID", "0".into()),
        ("_COMM", "systemd".into()),
        ("_EXE", "/usr/lib/systemd/systemd".into()),
        ("_CMDLINE", "/sbin/init".into()),
        ("_CAP_EFFECTIVE", "1ffffffffff".into()),
        ("_SYSTEMD_CGROUP", "/init.scope".into()),
        ("_SYSTEMD_UNIT", "init.scope".into()),
        ("_SYSTEMD_SLICE", "-.slice".into()),
    ]
}

/// "Started UNIT - DESCRIPTION." (job.c, job_emit_done_message).
fn started(boot_id: &str, unit: &'static str, desc: &str, invocation: String) -> Fields {
    let mut f = pid1_fields(boot_id, 6, "src/core/job.c", 767, "job_emit_done_message");
    f.extend([
        ("MESSAGE_ID", MID_UNIT_STARTED.into()),
        ("UNIT", unit.into()),
        ("INVOCATION_ID", invocation.into()),
        ("JOB_TYPE", "start".into()),
        ("JOB_RESULT", "done".into()),
        ("MESSAGE", format!("Started {unit} - {desc}.").into()),
    ]);
    f
}

fn kernel_fields(boot_id: &str, priority: u8, message: String) -> Fields {
    vec![
        ("_BOOT_ID", boot_id.to_string().into()),
        ("_MACHINE_ID", MACHINE_ID.into()),
        ("_HOSTNAME", HOSTNAME.into()),
        ("_TRANSPORT", "kernel".into()),
        ("PRIORITY", priority.to_string().into()),
        ("SYSLOG_FACILITY", "0".into()),
        ("SYSLOG_IDENTIFIER", "kernel".into()),
        ("MESSAGE", message.into()),
    ]
}

type Fields = Vec<(&'static str, Cow<'static, str>)>;

/// Hands entries to `emit` in time order: entries of boot 1 that happen
/// at a set time (MariaDB's pressure, the OOM kill) wait in `pending` and
/// go out before the first loop entry after them.
struct Emitter<F: FnMut(&Entry)> {
    emit: F,
    boot_starts: [u64; 2],
    pending: Vec<Entry<'static>>,
}

impl<F: FnMut(&Entry)> Emitter<F> {
    fn entry(&self, boot: usize, realtime: u64, fields: Fields) -> Entry<'static> {
        Entry {
            boot,
            realtime,
            monotonic: realtime - self.boot_starts[boot],
            fields,
        }
    }

    fn put(&mut self, boot: usize, realtime: u64, fields: Fields) {
        while self.pending.first().is_some_and(|e| e.realtime <= realtime) {
            let e = self.pending.remove(0);
            (self.emit)(&e);
        }
        let e = self.entry(boot, realtime, fields);
        (self.emit)(&e);
    }

    fn later(&mut self, boot: usize, realtime: u64, fields: Fields) {
        let e = self.entry(boot, realtime, fields);
        let at = self.pending.partition_point(|p| p.realtime <= realtime);
        self.pending.insert(at, e);
    }

    fn flush(&mut self) {
        for e in std::mem::take(&mut self.pending) {
            (self.emit)(&e);
        }
    }
}

fn boot_ids() -> [String; 2] {
    [id128(1, 1), id128(1, 2)]
}

/// Calls `emit` with every entry of the incident, in time order.
fn incident_entries(p: &IncidentParams, emit: impl FnMut(&Entry)) {
    let [b1, b2] = boot_ids();
    let mut g = Emitter {
        emit,
        boot_starts: [p.boot1_us, p.boot2_us],
        pending: Vec::new(),
    };
    let mut invocation = 0u64;
    let mut next_invocation = || {
        invocation += 1;
        id128(2, invocation)
    };

    // Boot 1: the kernel's banner, then the services coming up. The getty
    // runs fine until its serial line goes away (its first failure comes
    // just before the first restart).
    let t = p.boot1_us;
    g.put(0, t, kernel_fields(&b1, 5, KERNEL.to_string()));
    let maria_inv = next_invocation();
    let t = p.boot1_us + 4_120_000;
    g.put(
        0,
        t,
        started(&b1, "mariadb.service", MARIADB_DESC, maria_inv.clone()),
    );
    let t = p.boot1_us + 4_530_000;
    g.put(
        0,
        t,
        started(&b1, "nginx.service", NGINX_DESC, next_invocation()),
    );
    let t = p.boot1_us + 4_610_000;
    let mut getty_inv = next_invocation();
    g.put(
        0,
        t,
        started(&b1, INCIDENT_UNIT, GETTY_DESC, getty_inv.clone()),
    );

    g.later(0, p.pressure_us, pressure_fields(&b1, &maria_inv));
    for (t, fields) in oom_entries(&b1, &maria_inv, p.oom_us) {
        g.later(0, t, fields);
    }

    // The loop: per cycle, agetty's error, systemd's restart line and its
    // "Started" (a real cycle also logs "Deactivated successfully." and
    // "Stopped …"; left out to keep the journal near the incident's 1.26 M
    // entries: 3 per cycle).
    let first = p.first_restart_us();
    for n in 1..=p.restarts {
        let r = first + (n - 1) * p.cycle_us;
        // agetty's pid: a fresh one each start, walking up to the pid_max
        // systemd 252 sets (4194304) and wrapping.
        let pid = (3_000 + n * 7) % 4_190_000 + 1_000;
        let fail = r - 48_211;
        g.put(0, fail, agetty_fields(&b1, pid, &getty_inv));
        let mut f = pid1_fields(&b1, 6, "src/core/service.c", 2373, "service_enter_restart");
        f.extend([
            ("MESSAGE_ID", MID_RESTART_SCHEDULED.into()),
            ("UNIT", INCIDENT_UNIT.into()),
            ("INVOCATION_ID", getty_inv.clone().into()),
            ("N_RESTARTS", n.to_string().into()),
            (
                "MESSAGE",
                format!("{INCIDENT_UNIT}: Scheduled restart job, restart counter is at {n}.")
                    .into(),
            ),
        ]);
        g.put(0, r, f);
        let s = r + 20_613;
        getty_inv = next_invocation();
        g.put(
            0,
            s,
            started(&b1, INCIDENT_UNIT, GETTY_DESC, getty_inv.clone()),
        );
    }
    g.flush();

    // Boot 2, twenty days later: the machine comes back without the loop.
    let t = p.boot2_us;
    g.put(1, t, kernel_fields(&b2, 5, KERNEL.to_string()));
    let t = p.boot2_us + 3_870_000;
    g.put(
        1,
        t,
        started(&b2, "mariadb.service", MARIADB_DESC, next_invocation()),
    );
    let t = p.boot2_us + 4_250_000;
    g.put(
        1,
        t,
        started(&b2, "nginx.service", NGINX_DESC, next_invocation()),
    );
}

/// MariaDB's memory-pressure line (10.11, buf_pool_t::garbage_collect), on
/// its stderr, which journald takes in as _TRANSPORT=stdout.
fn pressure_fields(boot_id: &str, invocation: &str) -> Fields {
    vec![
        ("_BOOT_ID", boot_id.to_string().into()),
        ("_MACHINE_ID", MACHINE_ID.into()),
        ("_HOSTNAME", HOSTNAME.into()),
        ("_RUNTIME_SCOPE", "system".into()),
        ("_TRANSPORT", "stdout".into()),
        ("PRIORITY", "6".into()),
        ("SYSLOG_FACILITY", "3".into()),
        ("SYSLOG_IDENTIFIER", "mariadbd".into()),
        ("_PID", MARIADB_PID.to_string().into()),
        ("_UID", MARIADB_UID.to_string().into()),
        ("_GID", "111".into()),
        ("_COMM", "mariadbd".into()),
        ("_EXE", "/usr/sbin/mariadbd".into()),
        ("_CMDLINE", "/usr/sbin/mariadbd".into()),
        ("_SYSTEMD_CGROUP", "/system.slice/mariadb.service".into()),
        ("_SYSTEMD_UNIT", "mariadb.service".into()),
        ("_SYSTEMD_SLICE", "system.slice".into()),
        ("_SYSTEMD_INVOCATION_ID", invocation.to_string().into()),
        ("_STREAM_ID", id128(3, 1).into()),
        (
            "MESSAGE",
            "2026-03-04 10:45:12 0 [Note] InnoDB: Memory pressure event freed 3072 pages".into(),
        ),
    ]
}

/// agetty's error, through syslog, from the getty's cgroup.
fn agetty_fields(boot_id: &str, pid: u64, invocation: &str) -> Fields {
    vec![
        ("_BOOT_ID", boot_id.to_string().into()),
        ("_MACHINE_ID", MACHINE_ID.into()),
        ("_HOSTNAME", HOSTNAME.into()),
        ("_RUNTIME_SCOPE", "system".into()),
        ("_TRANSPORT", "syslog".into()),
        ("PRIORITY", "3".into()),
        ("SYSLOG_FACILITY", "10".into()),
        ("SYSLOG_IDENTIFIER", "agetty".into()),
        ("SYSLOG_PID", pid.to_string().into()),
        ("_PID", pid.to_string().into()),
        ("_UID", "0".into()),
        ("_GID", "0".into()),
        ("_COMM", "agetty".into()),
        ("_EXE", "/usr/sbin/agetty".into()),
        (
            "_CMDLINE",
            "/sbin/agetty -o \"-p -- \\\\u\" --keep-baud 115200,57600,38400,9600 ttyS0 vt220"
                .into(),
        ),
        (
            "_SYSTEMD_CGROUP",
            "/system.slice/system-serial\\x2dgetty.slice/serial-getty@ttyS0.service".into(),
        ),
        ("_SYSTEMD_UNIT", INCIDENT_UNIT.into()),
        ("_SYSTEMD_SLICE", "system-serial\\x2dgetty.slice".into()),
        ("_SYSTEMD_INVOCATION_ID", invocation.to_string().into()),
        ("MESSAGE", AGETTY_ERROR.into()),
    ]
}

/// The kernel's OOM kill of mariadbd (the three lines that name it, as
/// mm/oom_kill.c prints them on 6.x: dump_header, dump_oom_summary,
/// __oom_kill_process), then systemd's account of it for the unit; with
/// their times, the first at `t0`.
fn oom_entries(b1: &str, maria_inv: &str, t0: u64) -> Vec<(u64, Fields)> {
    let mut v = vec![
        (
            t0,
            kernel_fields(
                b1,
                4,
                "systemd invoked oom-killer: gfp_mask=0x100cca(GFP_HIGHUSER_MOVABLE), order=0, oom_score_adj=0".to_string(),
            ),
        ),
        (
            t0 + 1_906,
            kernel_fields(
                b1,
                6,
                format!(
                    "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/system.slice/mariadb.service,task=mariadbd,pid={MARIADB_PID},uid={MARIADB_UID}"
                ),
            ),
        ),
        (
            t0 + 1_951,
            kernel_fields(
                b1,
                3,
                format!(
                    "Out of memory: Killed process {MARIADB_PID} (mariadbd) total-vm:2147484kB, anon-rss:1436752kB, file-rss:0kB, shmem-rss:0kB, UID:{MARIADB_UID} pgtables:3208kB oom_score_adj:0"
                ),
            ),
        ),
    ];
    let unit = |t: u64,
                prio: u8,
                line: u32,
                func: &'static str,
                mid: &'static str,
                extra: Fields,
                msg: &str| {
        let mut f = pid1_fields(b1, prio, "src/core/unit.c", line, func);
        f.extend([
            ("MESSAGE_ID", mid.into()),
            ("UNIT", "mariadb.service".into()),
            ("INVOCATION_ID", maria_inv.to_string().into()),
        ]);
        f.extend(extra);
        f.push(("MESSAGE", format!("mariadb.service: {msg}").into()));
        (t, f)
    };
    v.push(unit(
        t0 + 212_730,
        5,
        3937,
        "unit_check_oom",
        MID_OUT_OF_MEMORY,
        vec![],
        "A process of this unit has been killed by the OOM killer.",
    ));
    v.push(unit(
        t0 + 243_734,
        4,
        5671,
        "unit_log_process_exit",
        MID_PROCESS_EXIT,
        vec![
            ("COMMAND", "ExecStart".into()),
            ("EXIT_CODE", "killed".into()),
            ("EXIT_STATUS", "9".into()),
        ],
        "Main process exited, code=killed, status=9/KILL",
    ));
    v.push(unit(
        t0 + 244_136,
        4,
        5629,
        "unit_log_failure",
        MID_FAILURE_RESULT,
        vec![("UNIT_RESULT", "oom-kill".into())],
        "Failed with result 'oom-kill'.",
    ));
    v
}

/// Writes `e` in the journal export format (every value here is text
/// without a newline, so each field is one `NAME=value` line).
fn write_export(w: &mut impl Write, e: &Entry, boot_ids: &[String; 2]) -> std::io::Result<()> {
    writeln!(w, "__REALTIME_TIMESTAMP={}", e.realtime)?;
    writeln!(w, "__MONOTONIC_TIMESTAMP={}", e.monotonic)?;
    debug_assert_eq!(e.get("_BOOT_ID"), Some(boot_ids[e.boot].as_str()));
    for (name, value) in &e.fields {
        debug_assert!(!value.contains('\n'));
        writeln!(w, "{name}={value}")?;
    }
    writeln!(w)
}

/// Builds the truth from the entries, one at a time, in order.
struct TruthBuilder {
    restarts: u64,
    counter_max: u64,
    counter_at_oom: u64,
    first_restart: Option<u64>,
    last_restart: Option<u64>,
    restart_gaps: Vec<u64>,
    longest_gap: (u64, u64, u64),
    last_entry: Option<u64>,
    agetty_lines: u64,
    entries_total: u64,
    per_unit: BTreeMap<String, u64>,
    oom: Option<OomTruth>,
    oom_invoker: Option<String>,
    oom_unit: Option<String>,
    boots: Vec<BootTruth>,
}

impl TruthBuilder {
    fn new() -> Self {
        Self {
            restarts: 0,
            counter_max: 0,
            counter_at_oom: 0,
            first_restart: None,
            last_restart: None,
            restart_gaps: Vec::new(),
            longest_gap: (0, 0, 0),
            last_entry: None,
            agetty_lines: 0,
            entries_total: 0,
            per_unit: BTreeMap::new(),
            oom: None,
            oom_invoker: None,
            oom_unit: None,
            boots: Vec::new(),
        }
    }

    fn add(&mut self, e: &Entry) {
        self.entries_total += 1;
        let t = e.realtime;
        if let Some(prev) = self.last_entry {
            assert!(t >= prev, "entries out of order");
            if t - prev > self.longest_gap.0 {
                self.longest_gap = (t - prev, prev, t);
            }
        }
        self.last_entry = Some(t);
        let boot_id = e.get("_BOOT_ID").expect("every entry has _BOOT_ID");
        match self.boots.last_mut() {
            Some(b) if b.boot_id == boot_id => {
                b.last_us = t;
                b.entries += 1;
            }
            _ => self.boots.push(BootTruth {
                boot_id: boot_id.to_string(),
                first_us: t,
                last_us: t,
                entries: 1,
            }),
        }
        // journalctl -u: _SYSTEMD_UNIT=U, or _PID=1 with UNIT=U.
        if let Some(u) = e.get("_SYSTEMD_UNIT") {
            *self.per_unit.entry(u.to_string()).or_default() += 1;
        }
        if e.get("_PID") == Some("1")
            && let Some(u) = e.get("UNIT")
            && e.get("_SYSTEMD_UNIT") != Some(u)
        {
            *self.per_unit.entry(u.to_string()).or_default() += 1;
        }
        if e.get("_SYSTEMD_UNIT") == Some(INCIDENT_UNIT) && e.get("_COMM") == Some("agetty") {
            self.agetty_lines += 1;
        }
        if e.get("MESSAGE_ID") == Some(MID_RESTART_SCHEDULED)
            && e.get("UNIT") == Some(INCIDENT_UNIT)
        {
            self.restarts += 1;
            let n: u64 = e.get("N_RESTARTS").unwrap().parse().unwrap();
            self.counter_max = self.counter_max.max(n);
            if self.oom.is_none() {
                self.counter_at_oom = n;
            }
            if let Some(prev) = self.last_restart {
                self.restart_gaps.push(t - prev);
            }
            self.first_restart.get_or_insert(t);
            self.last_restart = Some(t);
        }
        if e.get("_TRANSPORT") == Some("kernel") {
            let m = e.get("MESSAGE").unwrap();
            if let Some(inv) = m.split_once(" invoked oom-killer:") {
                self.oom_invoker = Some(inv.0.to_string());
            }
            if let Some(rest) = m.strip_prefix("oom-kill:") {
                self.oom_unit = rest
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("task_memcg="))
                    .and_then(|cg| cg.rsplit('/').next())
                    .map(str::to_string);
            }
            if let Some(rest) = m.strip_prefix("Out of memory: Killed process ") {
                let (pid, rest) = rest.split_once(" (").unwrap();
                let (comm, _) = rest.split_once(')').unwrap();
                self.oom = Some(OomTruth {
                    time_us: t,
                    pid: pid.parse().unwrap(),
                    comm: comm.to_string(),
                    unit: self.oom_unit.clone().expect("oom-kill: line first"),
                    invoker: self
                        .oom_invoker
                        .clone()
                        .expect("invoked oom-killer line first"),
                });
            }
        }
    }

    fn finish(mut self, files: Vec<PathBuf>, took: Duration, from_cache: bool) -> IncidentTruth {
        let first = self.first_restart.expect("restarts");
        let last = self.last_restart.unwrap();
        self.restart_gaps.sort_unstable();
        let n = self.restart_gaps.len();
        let median = if n % 2 == 1 {
            self.restart_gaps[n / 2] as f64
        } else {
            (self.restart_gaps[n / 2 - 1] + self.restart_gaps[n / 2]) as f64 / 2.0
        };
        IncidentTruth {
            files,
            unit: INCIDENT_UNIT.to_string(),
            restarts: self.restarts,
            counter_max: self.counter_max,
            counter_at_oom: self.counter_at_oom,
            first_restart_us: first,
            last_restart_us: last,
            span_us: last - first,
            restarts_per_min: 60e6 / median,
            longest_restart_gap_us: *self.restart_gaps.last().unwrap(),
            longest_journal_gap_us: self.longest_gap.0,
            longest_journal_gap_from_us: self.longest_gap.1,
            longest_journal_gap_to_us: self.longest_gap.2,
            agetty_lines: self.agetty_lines,
            entries_total: self.entries_total,
            entries_per_unit: self.per_unit,
            oom: self.oom.expect("an OOM kill"),
            boots: self.boots,
            took,
            from_cache,
        }
    }
}

/// Journal files in `dir`, sorted.
pub fn journal_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "journal"))
        .collect();
    v.sort();
    v
}

/// Streams the incident's export format into systemd-journal-remote,
/// writing `dir/incident.journal` (and, should it rotate by size,
/// `incident@….journal` beside it). Returns the truth of what was sent.
fn write_incident(p: &IncidentParams, dir: &Path) -> TruthBuilder {
    let out = dir.join("incident.journal");
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", out.display()))
        .args(["--split-mode=none", "--compress=yes", "--seal=no", "-"])
        .stdin(Stdio::piped())
        // Pipes, not /dev/null: some hosts make /dev/null root's only
        // (crw--w----), and this runs without root too.
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {JOURNAL_REMOTE}: {e}"));
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr), &mut s);
        s
    });
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(stdout), &mut s);
        s
    });
    let boot_ids = boot_ids();
    let mut w = BufWriter::with_capacity(1 << 20, child.stdin.take().unwrap());
    let mut truth = TruthBuilder::new();
    let mut failed = None;
    incident_entries(p, |e| {
        truth.add(e);
        if failed.is_none()
            && let Err(err) = write_export(&mut w, e, &boot_ids)
        {
            failed = Some(err);
        }
    });
    let flushed = w.flush();
    drop(w);
    let status = child.wait().expect("wait for systemd-journal-remote");
    let stderr = err.join().unwrap() + &out_thread.join().unwrap();
    let cpu = |who| {
        // SAFETY: getrusage fills the struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut u) };
        u.ru_utime.tv_sec as f64 + u.ru_stime.tv_sec as f64
    };
    eprintln!(
        "incident journal: systemd-journal-remote used {:.0}s of CPU, this process {:.0}s",
        cpu(libc::RUSAGE_CHILDREN),
        cpu(libc::RUSAGE_SELF)
    );
    assert!(
        failed.is_none() && flushed.is_ok() && status.success(),
        "{JOURNAL_REMOTE} failed ({status}; write: {failed:?} {flushed:?}):\n{stderr}"
    );
    truth
}

/// FNV-1a, 64 bits: a cache key stable across Rust releases (std's
/// hasher is not).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// True when `journalctl` and systemd-journal-remote are here; else a loud
/// skip naming what is missing.
fn have_journal_tools(what: &str) -> bool {
    if !Path::new(JOURNAL_REMOTE).exists() {
        skip(&format!(
            "{what}: {JOURNAL_REMOTE} not installed (Debian package systemd-journal-remote; cargo xtask test installs it)"
        ));
        return false;
    }
    if !have("journalctl") {
        skip(&format!(
            "{what}: journalctl not installed (package systemd)"
        ));
        return false;
    }
    true
}

const CACHE_ROOT: &str = "/var/cache/spawnscope-tests";

/// The incident's journal files in `dir` (an empty directory the caller
/// owns), with the ground truth. None after a loud skip when
/// systemd-journal-remote or journalctl is missing.
///
/// Generating takes long (see the truth's `took`), so as root the files
/// are built once under /var/cache/spawnscope-tests/journal-incident-<key>
/// (the key hashes [`IncidentParams`] and the generator's version) and
/// copied into `dir`; the truth is then recomputed by running the same
/// generator without writing. Without root (no cache) it is written to
/// `dir` directly.
pub fn incident_journal(dir: &Path) -> Option<IncidentTruth> {
    incident_journal_with(dir, &IncidentParams::incident())
}

/// [`incident_journal`] for other parameters.
pub fn incident_journal_with(dir: &Path, p: &IncidentParams) -> Option<IncidentTruth> {
    if !have_journal_tools("incident journal") {
        return None;
    }
    let t0 = Instant::now();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        let truth = write_incident(p, dir);
        return Some(truth.finish(journal_files(dir), t0.elapsed(), false));
    }
    let key = p.key();
    let cache = Path::new(CACHE_ROOT).join(format!("journal-incident-{:016x}", fnv1a(&key)));
    let stamp = cache.join("KEY");
    let mut from_cache = true;
    if fs::read_to_string(&stamp).ok().as_deref() != Some(key.as_str()) {
        fs::create_dir_all(CACHE_ROOT).unwrap_or_else(|e| panic!("mkdir {CACHE_ROOT}: {e}"));
        let _lock =
            crate::systemd::Lock::take(&Path::new(CACHE_ROOT).join(".journal-incident.lock"));
        if fs::read_to_string(&stamp).ok().as_deref() != Some(key.as_str()) {
            from_cache = false;
            let tmp = cache.with_extension("building");
            let _ = fs::remove_dir_all(&tmp);
            fs::create_dir_all(&tmp).unwrap();
            write_incident(p, &tmp);
            // Written last: a directory without it is a half-built one.
            fs::write(tmp.join("KEY"), &key).unwrap();
            let _ = fs::remove_dir_all(&cache);
            fs::rename(&tmp, &cache)
                .unwrap_or_else(|e| panic!("rename to {}: {e}", cache.display()));
        }
    }
    for f in journal_files(&cache) {
        let to = dir.join(f.file_name().unwrap());
        fs::copy(&f, &to)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", f.display(), to.display()));
    }
    let mut truth = TruthBuilder::new();
    incident_entries(p, |e| truth.add(e));
    Some(truth.finish(journal_files(dir), t0.elapsed(), from_cache))
}

/// `journalctl --directory DIR ARGS`' stdout; panics unless it succeeds.
pub fn journalctl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("journalctl")
        .arg("--directory")
        .arg(dir)
        .args(["--no-pager"])
        .args(args)
        // A pipe closed at once, not /dev/null (see write_incident).
        .stdin(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("cannot run journalctl: {e}"));
    assert!(
        out.status.success(),
        "journalctl --directory {} {args:?} failed ({}): {}",
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("journalctl output is UTF-8")
}

/// Entries `journalctl --directory DIR -u UNIT -o json` prints (its line
/// count), streamed rather than held.
pub fn journalctl_unit_count(dir: &Path, unit: &str) -> u64 {
    let mut child = Command::new("journalctl")
        .arg("--directory")
        .arg(dir)
        .args(["--no-pager", "-o", "json", "-u", unit])
        // A pipe closed at once, not /dev/null (see write_incident).
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run journalctl: {e}"));
    let mut r = std::io::BufReader::with_capacity(1 << 20, child.stdout.take().unwrap());
    let mut n = 0u64;
    let mut buf = [0u8; 1 << 16];
    loop {
        let k = std::io::Read::read(&mut r, &mut buf).expect("read journalctl");
        if k == 0 {
            break;
        }
        n += buf[..k].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "journalctl -u {unit}: {status}");
    n
}

/// A process the kernel OOM-killed in the container, as the kernel's own
/// line in the container's journal names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerOom {
    /// The unit whose main process it was.
    pub unit: String,
    /// Its pid as the kernel prints it (the host's pid namespace; the
    /// container's systemd knows it by `container_pid`).
    pub pid: u32,
    pub container_pid: u32,
    pub comm: String,
    /// Realtime µs of the kernel's "Killed process" entry.
    pub time_us: u64,
    /// The whole "…: Killed process …" line.
    pub message: String,
    /// How the limit was set: "cgroup v1 memory (host-made)" or "MemoryMax=".
    pub limit: String,
}

/// A journal written by a real journald in a booted container; the files
/// live in a temporary directory this struct owns (bound over the
/// container's /var/log/journal, so they outlive its power-off without a
/// copy). journald keeps everything (Storage=persistent, no rate limit, a
/// drop-in bound in before boot) and reads the host's /dev/kmsg: the
/// journal holds the host's whole kernel ring buffer too, other tests'
/// OOM kills included, so find this fixture's kill by its pid.
pub struct ContainerJournal {
    /// The journal directory (as /var/log/journal: one machine-id
    /// subdirectory), for `journalctl --directory`.
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
    pub suite: crate::systemd::Suite,
    pub machine_id: String,
    /// The container boot's _BOOT_ID (nspawn gives each boot its own).
    pub boot_id: String,
    /// The real agetty on a serial tty the container does not have:
    /// agetty sleeps 10 s before each error exit (util-linux's
    /// exit_slowly, "be kind to init"), so it restarts about every 10 s
    /// whatever RestartSec= says. Its restart count: the last "Scheduled
    /// restart job" line's N_RESTARTS=, and systemd's NRestarts read just
    /// before the stop (a manual stop resets it; one more restart can slip
    /// in between, so the logged count is that or one more).
    pub slow_getty_unit: String,
    pub slow_getty_restarts: u64,
    pub slow_getty_nrestarts: u64,
    /// agetty's error line (MESSAGE) from that unit, as journald stored it.
    pub slow_getty_error: String,
    /// The fast loop: the same agetty, given no tty, fails at argument
    /// parsing at once ("not enough arguments", no 10 s sleep); its
    /// restart counts as for the slow one (NRestarts >= [`FAST_RESTARTS`]).
    pub getty_unit: String,
    pub getty_restarts: u64,
    pub getty_nrestarts: u64,
    pub getty_error: String,
    /// The unit that printed `logger_lines` numbered lines to stdout.
    pub logger_unit: String,
    pub logger_lines: u64,
    /// The OOM kill, or why there is none here.
    pub oom: Result<ContainerOom, String>,
    /// `journalctl --directory DIR -u UNIT -o json | wc -l` per unit.
    pub unit_entries: BTreeMap<String, u64>,
    /// Entries in the whole journal, and how many are the kernel's (with
    /// /dev/kmsg bound in, journald imports the host's whole ring buffer).
    pub entries_total: u64,
    pub kernel_entries: u64,
    /// Boot to power-off, and the whole call.
    pub container_time: Duration,
    pub took: Duration,
}

/// NRestarts the fast getty loop is run to.
pub const FAST_RESTARTS: u64 = 300;
/// Lines the logger unit prints.
pub const LOGGER_LINES: u64 = 20_000;

const OOM_LIMIT: u64 = 64 << 20;

const JOURNALD_DROPIN: &str = "\
# spawnscope tests: keep everything (no rate limit for the logger), on disk.
[Journal]
Storage=persistent
RateLimitIntervalSec=0
RateLimitBurst=0
ReadKMsg=yes
";

/// Debian's serial-getty@.service, its agetty command line and restart
/// policy, without the dependency on the tty's device unit (the container
/// has no dev-ttyS9.device: the start job would wait for it, never
/// running agetty), restarting quickly and forever (no start limit).
const SERIAL_GETTY: &str = "[Unit]\nDescription=Serial Getty on %I\nStartLimitIntervalSec=0\n\
[Service]\nExecStart=-/sbin/agetty -o '-p -- \\\\u' --keep-baud 115200,57600,38400,9600 %I vt220\n\
Type=simple\nRestart=always\nRestartSec=100ms\nUtmpIdentifier=%I\n";

/// The unit's agetty command line (Debian's serial-getty@.service), without
/// its tty: agetty stops at "not enough arguments".
pub const FAST_GETTY: &str = "[Unit]\nDescription=Serial Getty without a tty\nStartLimitIntervalSec=0\n\
[Service]\nExecStart=-/sbin/agetty -o '-p -- \\\\u' --keep-baud 115200,57600,38400,9600\n\
Type=simple\nRestart=always\nRestartSec=100ms\n";

fn logger_unit() -> String {
    format!(
        "[Unit]\nDescription=Logs {LOGGER_LINES} numbered lines\n[Service]\nType=oneshot\n\
         ExecStart=/bin/sh -c 'i=1; while [ $i -le {LOGGER_LINES} ]; do echo \"spawnscope fixture line $i\"; i=$((i+1)); done'\n"
    )
}

/// Waits for /run/oom-go, then grows without bound (tail buffers a line
/// that /dev/zero never ends).
const OOM_HOG_V1: &str = "[Unit]\nDescription=Memory hog\n[Service]\nType=simple\n\
ExecStart=/bin/sh -c 'while [ ! -e /run/oom-go ]; do sleep 0.05; done; exec tail /dev/zero'\n";

fn host_pids(ct: &crate::systemd::SystemdContainer, unit: &str) -> Vec<i32> {
    let dir = ct.cgroup.path.join("payload/system.slice").join(unit);
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the OOM hog and has the kernel kill it, if this host lets a
/// container's unit get a memory limit. Returns the unit's main pid (in
/// the container and on the host) and how the limit was set, or why not.
fn oom_kill(
    ct: &crate::systemd::SystemdContainer,
    unit: &str,
) -> Result<(u32, u32, String, Option<crate::MemCgroup>), String> {
    let payload_controllers =
        fs::read_to_string(ct.cgroup.path.join("payload/cgroup.controllers")).unwrap_or_default();
    let v2_memory = payload_controllers
        .split_whitespace()
        .any(|c| c == "memory");
    let v1_memory = spawnscope::cgroupfs::cgroup_mounts(Path::new(spawnscope::cgroupfs::MOUNTINFO))
        .map(|ms| {
            ms.iter()
                .any(|m| m.fstype == "cgroup" && m.super_options.iter().any(|o| o == "memory"))
        })
        .unwrap_or(false);
    let (memcg, how) = if v2_memory {
        ct.install_unit(
            unit,
            &format!(
                "[Unit]\nDescription=Memory hog\n[Service]\nType=simple\nMemoryMax={OOM_LIMIT}\nMemorySwapMax=0\n\
                 ExecStart=/bin/sh -c 'while [ ! -e /run/oom-go ]; do sleep 0.05; done; exec tail /dev/zero'\n"
            ),
        );
        (None, "MemoryMax=".to_string())
    } else if v1_memory {
        // The container's systemd has no memory controller (this host's is
        // on cgroup v1, nspawn gives the container cgroup v2 only): put the
        // unit's process in a v1 memory cgroup made here, from outside.
        let Some(m) = crate::MemCgroup::new("journal-oom", OOM_LIMIT) else {
            return Err("no memory controller".into());
        };
        if !m.is_v1() {
            return Err("the memory controller is on cgroup v2 on the host but not delegated to the container (payload/cgroup.controllers lacks memory)".into());
        }
        ct.install_unit(unit, OOM_HOG_V1);
        (Some(m), "cgroup v1 memory (host-made)".to_string())
    } else {
        return Err(format!(
            "no memory controller: none on cgroup v1, and the container's cgroup v2 offers only {payload_controllers:?}"
        ));
    };
    ct.run(&["systemctl", "start", unit]);
    let main: u32 = ct.show(unit, &["MainPID"])["MainPID"].parse().unwrap();
    // The shell, once it runs (systemd 257 first runs systemd-executor in
    // the unit's cgroup, which then execs it; its sleeps come and go).
    let is_sh =
        |p: &i32| fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sh");
    let mut host_main = 0;
    wait_until(
        Duration::from_secs(10),
        "the hog's shell on the host",
        || {
            host_main = host_pids(ct, unit).into_iter().find(is_sh).unwrap_or(0);
            host_main != 0
        },
    );
    if let Some(m) = &memcg {
        assert!(m.adopt_v1_as(host_main, unit));
    }
    fs::write(ct.guest_path("/run/oom-go"), b"").unwrap();
    wait_until(Duration::from_secs(30), "the hog's end", || {
        ct.show(unit, &["ActiveState"])["ActiveState"] != "active"
    });
    Ok((main, host_main as u32, how, memcg))
}

/// A real journal from a booted `suite` container (see [`ContainerJournal`]).
/// None after a loud skip when the container cannot boot here.
pub fn container_journal(suite: crate::systemd::Suite) -> Option<ContainerJournal> {
    if !crate::require_root("container journal") || !have_journal_tools("container journal") {
        return None;
    }
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let journal = tmp.path().join("journal");
    fs::create_dir(&journal).unwrap();
    let dropin = tmp.path().join("journald-fixture.conf");
    fs::write(&dropin, JOURNALD_DROPIN).unwrap();
    let bind_journal = format!("--bind={}:/var/log/journal", journal.display());
    let bind_dropin = format!(
        "--bind-ro={}:/etc/systemd/journald.conf.d/spawnscope-fixture.conf",
        dropin.display()
    );
    // The journal goes straight to the host (the container's /var is a
    // tmpfs overlay that its power-off discards). /dev/kmsg is the host's
    // (nspawn would give the container /dev/null), so journald records
    // the kernel's OOM lines; reading it needs CAP_SYSLOG
    // (kernel.dmesg_restrict).
    let args = [
        "--link-journal=no",
        bind_journal.as_str(),
        bind_dropin.as_str(),
        "--bind=/dev/kmsg",
        "--capability=CAP_SYSLOG",
    ];
    let tag = format!("journal-{}", suite.name());
    let ct = crate::systemd::SystemdContainer::boot_suite(&tag, suite, &args)?;
    let boot = Instant::now() - ct.boot_time;
    let machine_id = fs::read_to_string(ct.guest_path("/etc/machine-id"))
        .unwrap()
        .trim()
        .to_string();
    let boot_id = ct
        .run(&["cat", "/proc/sys/kernel/random/boot_id"])
        .trim()
        .replace('-', "");

    let slow = "serial-getty@ttyS9.service";
    let fast = "fast-getty.service";
    let logger = "journal-logger.service";
    let hog = "oom-hog.service";
    ct.install_unit("serial-getty@.service", SERIAL_GETTY);
    ct.install_unit(fast, FAST_GETTY);
    ct.install_unit(logger, &logger_unit());
    ct.run(&["systemctl", "start", "--no-block", slow, fast, logger]);

    let oom = oom_kill(&ct, hog);
    wait_until(
        Duration::from_secs(150),
        "the fast getty's restarts",
        || {
            ct.show(fast, &["NRestarts"])["NRestarts"]
                .parse::<u64>()
                .unwrap()
                >= FAST_RESTARTS
        },
    );
    wait_until(Duration::from_secs(60), "the logger's end", || {
        ct.show(logger, &["ActiveState"])["ActiveState"] != "activating"
    });
    // Read before the stop: a manual stop resets systemd's counter. The
    // fast loop may restart once more between the read and the stop, so
    // the journal's last restart line can be one past it.
    let n = |unit: &str| -> u64 { ct.show(unit, &["NRestarts"])["NRestarts"].parse().unwrap() };
    let (getty_restarts, slow_restarts) = (n(fast), n(slow));
    ct.run(&["systemctl", "stop", slow, fast]);
    let logger_state = ct.show(logger, &["Result", "ExecMainStatus"]);
    assert_eq!(
        logger_state["Result"], "success",
        "{logger}: {logger_state:?}"
    );
    ct.run(&["journalctl", "--sync"]);
    let container_time = ct.shutdown() + boot.elapsed();
    let (oom, _memcg) = match oom {
        Ok((cpid, hpid, how, memcg)) => (Ok((cpid, hpid, how)), memcg),
        Err(e) => (Err(e), None),
    };

    let dir = journal;
    let one = |args: &[&str]| -> Option<serde_json::Value> {
        let mut a = vec!["-o", "json", "-n", "1"];
        a.extend_from_slice(args);
        journalctl(&dir, &a)
            .lines()
            .next()
            .map(|l| serde_json::from_str(l).expect("journalctl -o json"))
    };
    let message = |v: &serde_json::Value| v["MESSAGE"].as_str().unwrap_or_default().to_string();
    // systemd's counter as its last restart line in the journal states it.
    let logged_restarts = |unit: &str| -> u64 {
        one(&[
            &format!("UNIT={unit}"),
            &format!("MESSAGE_ID={MID_RESTART_SCHEDULED}"),
        ])
        .map_or(0, |v| v["N_RESTARTS"].as_str().unwrap().parse().unwrap())
    };
    let (logged_fast, logged_slow) = (logged_restarts(fast), logged_restarts(slow));
    assert!(
        (getty_restarts..=getty_restarts + 1).contains(&logged_fast)
            && (slow_restarts..=slow_restarts + 1).contains(&logged_slow),
        "NRestarts {getty_restarts} and {slow_restarts} before the stop, \
         the journal's last restart lines say {logged_fast} and {logged_slow}"
    );
    // agetty's syslog line (it also prints the fast loop's to stderr).
    let slow_error = one(&[
        &format!("_SYSTEMD_UNIT={slow}"),
        "_COMM=agetty",
        "_TRANSPORT=syslog",
    ])
    .map(|v| message(&v))
    .unwrap_or_default();
    let fast_error = one(&[
        &format!("_SYSTEMD_UNIT={fast}"),
        "_COMM=agetty",
        "_TRANSPORT=syslog",
    ])
    .map(|v| message(&v))
    .unwrap_or_default();
    let oom = oom.and_then(|(cpid, hpid, how)| {
        let needle = format!("Killed process {hpid} (");
        let v = one(&[
            "_TRANSPORT=kernel",
            &format!("--grep=Killed process {hpid} \\("),
        ])
        .ok_or_else(|| {
            format!("the kernel killed {hog}'s process {hpid}, but journald did not store the line")
        })?;
        let m = message(&v);
        let comm = m
            .split_once(&needle)
            .and_then(|(_, r)| r.split_once(')'))
            .map(|(c, _)| c.to_string())
            .unwrap();
        Ok(ContainerOom {
            unit: hog.to_string(),
            pid: hpid,
            container_pid: cpid,
            comm,
            time_us: v["__REALTIME_TIMESTAMP"].as_str().unwrap().parse().unwrap(),
            message: m,
            limit: how,
        })
    });
    let count = |args: &[&str]| -> u64 {
        let mut a = vec!["-o", "json"];
        a.extend_from_slice(args);
        journalctl(&dir, &a).lines().count() as u64
    };
    let logger_lines = count(&[
        &format!("_SYSTEMD_UNIT={logger}"),
        "_TRANSPORT=stdout",
        "--grep=^spawnscope fixture line [0-9]+$",
    ]);
    let mut unit_entries = BTreeMap::new();
    for u in [slow, fast, logger, hog] {
        unit_entries.insert(u.to_string(), journalctl_unit_count(&dir, u));
    }
    let entries_total = count(&[]);
    let kernel_entries = count(&["_TRANSPORT=kernel"]);
    Some(ContainerJournal {
        dir,
        _tmp: tmp,
        suite,
        machine_id,
        boot_id,
        slow_getty_unit: slow.to_string(),
        slow_getty_restarts: logged_slow,
        slow_getty_nrestarts: slow_restarts,
        slow_getty_error: slow_error,
        getty_unit: fast.to_string(),
        getty_restarts: logged_fast,
        getty_nrestarts: getty_restarts,
        getty_error: fast_error,
        logger_unit: logger.to_string(),
        logger_lines,
        oom,
        unit_entries,
        entries_total,
        kernel_entries,
        container_time,
        took: t0.elapsed(),
    })
}
