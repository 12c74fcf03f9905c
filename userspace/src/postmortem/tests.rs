//! Fixtures: entries built field by field, with value ids handed out the
//! way journald stores values (one id per distinct FIELD=value).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

#[derive(Clone)]
struct Fx {
    t: u64,
    boot: [u8; 16],
    f: Vec<(&'static str, Arc<[u8]>, u64)>,
}

impl Fields for Fx {
    fn realtime_us(&self) -> u64 {
        self.t
    }
    fn monotonic_us(&self) -> u64 {
        0
    }
    fn boot_id(&self) -> [u8; 16] {
        self.boot
    }
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.f
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, _)| &v[..])
    }
    fn value_id(&self, name: &str) -> Option<u64> {
        self.f
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, id)| *id)
    }
}

/// 13 Jan 2026 09:00:00 UTC
const T0: f64 = 1_768_294_800.0;
const GETTY: &str = "serial-getty@ttyS0.service";

#[derive(Default)]
struct Gen {
    ids: HashMap<(&'static str, Vec<u8>), u64>,
}

impl Gen {
    fn e(&mut self, t: f64, boot: u8, fields: &[(&'static str, &str)]) -> Fx {
        let f = fields
            .iter()
            .map(|&(n, v)| {
                let next = self.ids.len() as u64 + 1;
                let id = *self.ids.entry((n, v.as_bytes().to_vec())).or_insert(next);
                (n, Arc::from(v.as_bytes()), id)
            })
            .collect();
        Fx {
            t: (t * 1e6) as u64,
            boot: [boot; 16],
            f,
        }
    }

    /// A message of PID 1 about `unit`.
    fn pid1(
        &mut self,
        t: f64,
        boot: u8,
        unit: &str,
        extra: &[(&'static str, &str)],
        msg: &str,
    ) -> Fx {
        let mut f = vec![
            ("_PID", "1"),
            ("_UID", "0"),
            ("_SYSTEMD_UNIT", "init.scope"),
            ("_SYSTEMD_SLICE", "-.slice"),
            ("_TRANSPORT", "journal"),
            ("SYSLOG_IDENTIFIER", "systemd"),
            ("PRIORITY", "6"),
            ("UNIT", unit),
        ];
        f.extend_from_slice(extra);
        let m = format!("{unit}: {msg}");
        f.push(("MESSAGE", &m));
        self.e(t, boot, &f)
    }

    fn restart(&mut self, t: f64, boot: u8, unit: &str, n: u64) -> Fx {
        let n = n.to_string();
        self.pid1(
            t,
            boot,
            unit,
            &[
                ("MESSAGE_ID", "5eb03494b6584870a536b337290809b3"),
                ("N_RESTARTS", &n),
            ],
            &format!("Scheduled restart job, restart counter is at {n}."),
        )
    }

    fn started(&mut self, t: f64, boot: u8, unit: &str) -> Fx {
        let mut f = vec![
            ("_PID", "1"),
            ("_UID", "0"),
            ("_SYSTEMD_UNIT", "init.scope"),
            ("SYSLOG_IDENTIFIER", "systemd"),
            ("PRIORITY", "6"),
            ("UNIT", unit),
            ("MESSAGE_ID", "39f53479d3a045ac8e11786248231fbf"),
            ("JOB_TYPE", "start"),
            ("JOB_RESULT", "done"),
        ];
        let m = format!("Started {unit} - Serial Getty on ttyS0.");
        f.push(("MESSAGE", &m));
        self.e(t, boot, &f)
    }

    fn exited(&mut self, t: f64, boot: u8, unit: &str) -> Fx {
        self.pid1(
            t,
            boot,
            unit,
            &[
                ("MESSAGE_ID", "98e322203f7a4ed290d09fe03c09fe15"),
                ("EXIT_CODE", "exited"),
                ("EXIT_STATUS", "1"),
            ],
            "Main process exited, code=exited, status=1/FAILURE",
        )
    }

    fn failed(&mut self, t: f64, boot: u8, unit: &str) -> Fx {
        self.pid1(
            t,
            boot,
            unit,
            &[
                ("MESSAGE_ID", "d9b373ed55a64feb8242e02dbe79a49c"),
                ("UNIT_RESULT", "exit-code"),
            ],
            "Failed with result 'exit-code'.",
        )
    }

    /// agetty's own line, as it logs through syslog.
    fn agetty(&mut self, t: f64, boot: u8, pid: u32, prio: &str, msg: &str) -> Fx {
        let pid = pid.to_string();
        self.e(
            t,
            boot,
            &[
                ("_PID", &pid),
                ("_UID", "0"),
                ("_SYSTEMD_UNIT", GETTY),
                ("_SYSTEMD_SLICE", "system-serial\\x2dgetty.slice"),
                ("_TRANSPORT", "syslog"),
                ("SYSLOG_IDENTIFIER", "agetty"),
                ("PRIORITY", prio),
                ("MESSAGE", msg),
            ],
        )
    }

    fn kernel(&mut self, t: f64, boot: u8, msg: &str) -> Fx {
        self.e(
            t,
            boot,
            &[
                ("_TRANSPORT", "kernel"),
                ("PRIORITY", "3"),
                ("SYSLOG_IDENTIFIER", "kernel"),
                ("MESSAGE", msg),
            ],
        )
    }

    // The fields of a service's own entry, in the order they read.
    #[allow(clippy::too_many_arguments)]
    fn app(
        &mut self,
        t: f64,
        boot: u8,
        unit: &str,
        pid: &str,
        ident: &str,
        prio: &str,
        msg: &str,
    ) -> Fx {
        self.e(
            t,
            boot,
            &[
                ("_PID", pid),
                ("_UID", "27"),
                ("_SYSTEMD_UNIT", unit),
                ("_TRANSPORT", "stdout"),
                ("SYSLOG_IDENTIFIER", ident),
                ("PRIORITY", prio),
                ("MESSAGE", msg),
            ],
        )
    }
}

/// One cycle of the founding incident's loop, as journald stored it:
/// agetty's two complaints, the exit, the failure, the scheduled restart
/// and the next start. Returns the entries.
fn getty_cycle(g: &mut Gen, t: f64, boot: u8, n: u64) -> Vec<Fx> {
    let pid = 1000 + (n % 30_000) as u32;
    vec![
        g.agetty(t, boot, pid, "4", "could not get terminal name: -22"),
        g.agetty(
            t + 0.001,
            boot,
            pid,
            "3",
            "failed to get terminal attributes: Input/output error",
        ),
        g.exited(t + 0.002, boot, GETTY),
        g.failed(t + 0.003, boot, GETTY),
        g.restart(t + 0.004, boot, GETTY, n),
        g.started(t + 0.005, boot, GETTY),
    ]
}

/// A 10 s loop over `hours`: 360 restarts an hour.
fn getty_loop(g: &mut Gen, hours: f64) -> Vec<Fx> {
    let cycles = (hours * 360.0) as u64;
    let mut v = Vec::new();
    for i in 0..cycles {
        v.extend(getty_cycle(g, T0 + i as f64 * 10.0, 1, i + 1));
    }
    v
}

fn run(entries: &[Fx]) -> Report {
    let mut a = Analyzer::new(None);
    for e in entries {
        a.push(e);
    }
    a.finish(SourceInfo {
        files: 1,
        entries: entries.len() as u64,
        bytes: 4096,
        problems: vec![],
    })
}

fn loop_of<'a>(r: &'a Report, unit: &str) -> &'a LoopReport {
    r.loops
        .iter()
        .find(|l| l.unit == unit)
        .expect("loop reported")
}

fn volume(r: &Report, unit: &str) -> u64 {
    r.journal_units
        .iter()
        .find(|u| u.unit == unit)
        .map_or(0, |u| u.entries)
}

#[test]
fn agetty_loop_counts_restarts_starts_and_failures() {
    let mut g = Gen::default();
    let r = run(&getty_loop(&mut g, 3.0));
    let l = loop_of(&r, GETTY);
    assert_eq!((l.restarts, l.starts, l.failures), (1080, 1080, 1080));
    assert_eq!(
        (l.counter_last, l.counter_max, l.counter_resets),
        (Some(1080), Some(1080), 0)
    );
}

#[test]
fn agetty_loop_rate_span_and_longest_gap() {
    let mut g = Gen::default();
    let r = run(&getty_loop(&mut g, 3.0));
    let l = loop_of(&r, GETTY);
    assert!((l.span_s - 1079.0 * 10.0).abs() < 1e-3, "{}", l.span_s);
    let rate = l.rate_per_min.unwrap_or(0.0);
    // Every 10 s exactly: 6 a minute, from the 1,079 intervals.
    assert!((rate - 6.0).abs() < 1e-9, "{rate}");
    assert!((l.longest_gap_s - 10.0).abs() < 1e-3);
}

#[test]
fn agetty_loop_last_exit_and_result() {
    let mut g = Gen::default();
    let r = run(&getty_loop(&mut g, 0.1));
    let l = loop_of(&r, GETTY);
    assert_eq!(
        l.last_exit_status,
        Some(ExitStatus {
            code: ExitCode::Exited,
            status: 1,
            text: Some("1/FAILURE".into())
        })
    );
    assert_eq!(l.last_result.as_deref(), Some("exit-code"));
}

#[test]
fn agetty_loop_dominant_errors_are_masked_and_counted() {
    let mut g = Gen::default();
    let r = run(&getty_loop(&mut g, 1.0));
    let l = loop_of(&r, GETTY);
    assert!(l.errors_are_warnings && l.top_errors_exact);
    let got: Vec<(&str, u64, &str)> = l
        .top_errors
        .iter()
        .map(|e| (e.text.as_str(), e.count, e.example.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "agetty: could not get terminal name: -N",
                360,
                "agetty: could not get terminal name: -22"
            ),
            (
                "agetty: failed to get terminal attributes: Input/output error",
                360,
                "agetty: failed to get terminal attributes: Input/output error"
            ),
        ]
    );
}

#[test]
fn error_lines_fall_back_to_all_messages_without_warnings() {
    let mut g = Gen::default();
    let mut v = Vec::new();
    for i in 0..5u64 {
        let t = T0 + i as f64 * 10.0;
        v.push(g.app(
            t,
            1,
            "x.service",
            &(100 + i).to_string(),
            "x",
            "6",
            &format!("starting worker {i}"),
        ));
        v.push(g.restart(t + 1.0, 1, "x.service", i + 1));
    }
    let l = loop_of(&run(&v), "x.service").clone();
    assert!(!l.errors_are_warnings);
    assert_eq!(l.top_errors.len(), 1);
    assert_eq!(
        (l.top_errors[0].text.as_str(), l.top_errors[0].count),
        ("x: starting worker N", 5)
    );
}

#[test]
fn error_table_overflow_keeps_the_frequent_line_and_says_counts_are_bounds() {
    let mut g = Gen::default();
    let mut v = Vec::new();
    for i in 0..200u64 {
        let t = T0 + i as f64;
        v.push(g.app(t, 1, "x.service", "5", "x", "3", "fatal: config missing"));
        // Distinct after masking: the word differs, not a number.
        let word: String = format!("{i:b}")
            .chars()
            .map(|c| if c == '1' { 'b' } else { 'a' })
            .collect();
        v.push(g.app(t, 1, "x.service", "5", "x", "3", &format!("odd {word}")));
        v.push(g.restart(t + 0.5, 1, "x.service", i + 1));
    }
    let l = loop_of(&run(&v), "x.service").clone();
    assert!(!l.top_errors_exact);
    assert_eq!(
        (l.top_errors[0].text.as_str(), l.top_errors[0].count),
        ("x: fatal: config missing", 200)
    );
}

#[test]
fn units_before_their_first_restart_keep_few_lines() {
    let mut g = Gen::default();
    let mut v = Vec::new();
    // 20 distinct lines before the first restart, then one after it.
    for i in 0..20u64 {
        let word: String = format!("{i:b}")
            .chars()
            .map(|c| if c == '1' { 'b' } else { 'a' })
            .collect();
        v.push(g.app(
            T0 + i as f64,
            1,
            "x.service",
            "5",
            "x",
            "3",
            &format!("early {word}"),
        ));
    }
    for n in 1..=3 {
        v.push(g.restart(T0 + 100.0 + n as f64, 1, "x.service", n));
    }
    // 20 lines fit the 64 a looping unit keeps, not the 8 kept before.
    let l = loop_of(&run(&v), "x.service").clone();
    assert!(!l.top_errors_exact);
}

#[test]
fn counter_reset_is_counted_and_restarts_are_messages() {
    let mut g = Gen::default();
    let mut v = Vec::new();
    for (i, n) in [1, 2, 3, 4, 5, 1, 2, 3].into_iter().enumerate() {
        v.push(g.restart(T0 + i as f64 * 10.0, 1, GETTY, n));
    }
    let l = loop_of(&run(&v), GETTY).clone();
    assert_eq!(
        (l.restarts, l.counter_resets, l.counter_max, l.counter_last),
        (8, 1, Some(5), Some(3))
    );
}

#[test]
fn two_restarts_are_not_a_loop() {
    let mut g = Gen::default();
    let v = vec![
        g.restart(T0, 1, "a.service", 1),
        g.restart(T0 + 5.0, 1, "a.service", 2),
    ];
    assert!(run(&v).loops.is_empty());
}

#[test]
fn text_only_restart_messages_count_with_their_counter() {
    let mut g = Gen::default();
    let v: Vec<Fx> = (1..=3)
        .map(|n| {
            g.pid1(
                T0 + n as f64,
                1,
                "old.service",
                &[],
                &format!("Scheduled restart job, restart counter is at {n}."),
            )
        })
        .collect();
    let l = loop_of(&run(&v), "old.service").clone();
    assert_eq!((l.restarts, l.counter_max), (3, Some(3)));
}

#[test]
fn holdoff_restart_messages_of_old_systemd_count_without_counter() {
    let mut g = Gen::default();
    let v: Vec<Fx> = (1..=3)
        .map(|n| {
            g.pid1(
                T0 + n as f64,
                1,
                "old.service",
                &[],
                "Service hold-off time over, scheduling restart.",
            )
        })
        .collect();
    let l = loop_of(&run(&v), "old.service").clone();
    assert_eq!((l.restarts, l.counter_max), (3, None));
}

#[test]
fn user_manager_restarts_are_user_units() {
    let mut g = Gen::default();
    let v: Vec<Fx> = (1..=3u64)
        .map(|n| {
            let ns = n.to_string();
            let m = format!("app.service: Scheduled restart job, restart counter is at {n}.");
            g.e(
                T0 + n as f64,
                1,
                &[
                    ("_PID", "1234"),
                    ("_UID", "1000"),
                    ("_SYSTEMD_UNIT", "user@1000.service"),
                    ("USER_UNIT", "app.service"),
                    ("MESSAGE_ID", "5eb03494b6584870a536b337290809b3"),
                    ("N_RESTARTS", &ns),
                    ("MESSAGE", &m),
                ],
            )
        })
        .collect();
    let l = loop_of(&run(&v), "app.service").clone();
    assert_eq!((l.user_uid, l.restarts), (Some(1000), 3));
}

#[test]
fn restart_message_not_from_pid1_is_not_a_system_restart() {
    let mut g = Gen::default();
    let v: Vec<Fx> = (1..=3)
        .map(|n| {
            let m = format!("fake.service: Scheduled restart job, restart counter is at {n}.");
            g.e(
                T0 + n as f64,
                1,
                &[
                    ("_PID", "4242"),
                    ("_UID", "1000"),
                    ("UNIT", "fake.service"),
                    ("MESSAGE_ID", "5eb03494b6584870a536b337290809b3"),
                    ("MESSAGE", &m),
                ],
            )
        })
        .collect();
    assert!(run(&v).loops.is_empty());
}

#[test]
fn journalctl_rule_own_systemd_unit() {
    let mut g = Gen::default();
    let v = vec![
        g.app(T0, 1, "a.service", "10", "a", "6", "hello"),
        g.app(T0 + 1.0, 1, "b.service", "11", "b", "6", "hello"),
    ];
    assert_eq!(volume(&run(&v), "a.service"), 1);
}

#[test]
fn journalctl_rule_unit_field_only_from_pid1() {
    let mut g = Gen::default();
    let v = vec![
        g.pid1(T0, 1, "a.service", &[], "Stopping a..."),
        g.e(
            T0 + 1.0,
            1,
            &[
                ("_PID", "77"),
                ("_UID", "0"),
                ("UNIT", "a.service"),
                ("MESSAGE", "not pid 1"),
            ],
        ),
    ];
    assert_eq!(volume(&run(&v), "a.service"), 1);
}

#[test]
fn journalctl_rule_object_unit_only_from_root() {
    let mut g = Gen::default();
    let v = vec![
        g.e(
            T0,
            1,
            &[
                ("_PID", "5"),
                ("_UID", "0"),
                ("OBJECT_SYSTEMD_UNIT", "a.service"),
                ("MESSAGE", "audit"),
            ],
        ),
        g.e(
            T0 + 1.0,
            1,
            &[
                ("_PID", "6"),
                ("_UID", "1000"),
                ("OBJECT_SYSTEMD_UNIT", "a.service"),
                ("MESSAGE", "user"),
            ],
        ),
    ];
    assert_eq!(volume(&run(&v), "a.service"), 1);
}

#[test]
fn journalctl_rule_coredump_unit_needs_coredump_id_and_root() {
    let mut g = Gen::default();
    let id = ("MESSAGE_ID", "fc2e22bc6ee647b6b90729ab34a250b1");
    let v = vec![
        g.e(
            T0,
            1,
            &[
                ("_PID", "9"),
                ("_UID", "0"),
                id,
                ("COREDUMP_UNIT", "a.service"),
                ("MESSAGE", "dumped"),
            ],
        ),
        g.e(
            T0 + 1.0,
            1,
            &[
                ("_PID", "9"),
                ("_UID", "0"),
                ("COREDUMP_UNIT", "a.service"),
                ("MESSAGE", "no id"),
            ],
        ),
        g.e(
            T0 + 2.0,
            1,
            &[
                ("_PID", "9"),
                ("_UID", "5"),
                id,
                ("COREDUMP_UNIT", "a.service"),
                ("MESSAGE", "uid 5"),
            ],
        ),
    ];
    assert_eq!(volume(&run(&v), "a.service"), 1);
}

fn run_with(m: UnitMatch, entries: &[Fx]) -> Report {
    let mut a = Analyzer::new(None).unit_match(m);
    for e in entries {
        a.push(e);
    }
    a.finish(SourceInfo::default())
}

#[test]
fn journalctl_257_rule_unit_field_from_init_scope_not_pid1() {
    let mut g = Gen::default();
    let v = vec![
        // A helper PID 1 forked, in init.scope: counted by 257.
        g.e(
            T0,
            1,
            &[
                ("_PID", "812"),
                ("_UID", "0"),
                ("_SYSTEMD_CGROUP", "/init.scope"),
                ("UNIT", "a.service"),
                ("MESSAGE", "helper"),
            ],
        ),
        // PID 1 of a container, whose cgroup is not init.scope: not.
        g.e(
            T0 + 1.0,
            1,
            &[
                ("_PID", "1"),
                ("_UID", "0"),
                ("_SYSTEMD_CGROUP", "/machine.slice/x.scope"),
                ("UNIT", "a.service"),
                ("MESSAGE", "c"),
            ],
        ),
    ];
    let r = run_with(UnitMatch::InitScope { coredump_uid: None }, &v);
    assert_eq!(volume(&r, "a.service"), 1);
}

#[test]
fn journalctl_257_rule_coredump_from_root_or_the_coredump_user() {
    let mut g = Gen::default();
    let id = ("MESSAGE_ID", "fc2e22bc6ee647b6b90729ab34a250b1");
    let v = vec![
        g.e(
            T0,
            1,
            &[
                ("_UID", "0"),
                id,
                ("COREDUMP_UNIT", "a.service"),
                ("MESSAGE", "root"),
            ],
        ),
        g.e(
            T0 + 1.0,
            1,
            &[
                ("_UID", "996"),
                id,
                ("COREDUMP_UNIT", "a.service"),
                ("MESSAGE", "dumper"),
            ],
        ),
        g.e(
            T0 + 2.0,
            1,
            &[
                ("_UID", "1000"),
                id,
                ("COREDUMP_UNIT", "a.service"),
                ("MESSAGE", "user"),
            ],
        ),
    ];
    let r = run_with(
        UnitMatch::InitScope {
            coredump_uid: Some(996),
        },
        &v,
    );
    assert_eq!(volume(&r, "a.service"), 2);
}

#[test]
fn journalctl_257_rule_coredump_without_coredump_user_takes_any_uid() {
    let mut g = Gen::default();
    let id = ("MESSAGE_ID", "fc2e22bc6ee647b6b90729ab34a250b1");
    let v = vec![g.e(
        T0,
        1,
        &[
            ("_UID", "1000"),
            id,
            ("COREDUMP_UNIT", "a.service"),
            ("MESSAGE", "user"),
        ],
    )];
    let r = run_with(UnitMatch::InitScope { coredump_uid: None }, &v);
    assert_eq!(volume(&r, "a.service"), 1);
}

#[test]
fn journalctl_rule_slice_matches_its_members_only_for_slice_units() {
    let mut g = Gen::default();
    let v = vec![
        g.e(
            T0,
            1,
            &[
                ("_PID", "9"),
                ("_SYSTEMD_UNIT", "a.service"),
                ("_SYSTEMD_SLICE", "system.slice"),
                ("MESSAGE", "m"),
            ],
        ),
        g.e(
            T0 + 1.0,
            1,
            &[
                ("_PID", "9"),
                ("_SYSTEMD_UNIT", "b.service"),
                ("_SYSTEMD_SLICE", "system.slice"),
                ("MESSAGE", "m"),
            ],
        ),
    ];
    let r = run(&v);
    assert_eq!(
        (volume(&r, "system.slice"), volume(&r, "a.service")),
        (2, 1)
    );
}

#[test]
fn journalctl_rule_an_entry_counts_once_per_unit() {
    let mut g = Gen::default();
    // PID 1's own unit is init.scope; it also names init.scope in UNIT=.
    let v = vec![g.pid1(T0, 1, "init.scope", &[], "Reexecuting.")];
    assert_eq!(volume(&run(&v), "init.scope"), 1);
}

#[test]
fn journal_units_share_and_bytes() {
    let mut g = Gen::default();
    let v = vec![
        g.app(T0, 1, "a.service", "10", "a", "6", "hello"),
        g.e(T0 + 1.0, 1, &[("MESSAGE", "no unit")]),
    ];
    let r = run(&v);
    let u = &r.journal_units[0];
    // MESSAGE=hello, _SYSTEMD_UNIT=a.service, _PID=10, _UID=27, _TRANSPORT=stdout
    let expect = [13, 23, 7, 7, 17].iter().sum::<u64>();
    assert_eq!(
        (u.unit.as_str(), u.share, u.bytes),
        ("a.service", 0.5, expect)
    );
}

const OOM_SUMMARY: &str = "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0-1,3,oom_memcg=/system.slice/mariadb.service,task_memcg=/system.slice/mariadb.service,task=mariadbd,pid=4321,uid=27";
const OOM_KILL: &str = "Memory cgroup out of memory: Killed process 4321 (mariadbd) total-vm:2345678kB, anon-rss:1048576kB, file-rss:0kB, shmem-rss:0kB, UID:27 pgtables:4096kB oom_score_adj:0";

#[test]
fn oom_kill_with_its_summary_line() {
    let mut g = Gen::default();
    let v = vec![
        g.kernel(T0, 1, OOM_SUMMARY),
        g.kernel(T0 + 0.001, 1, OOM_KILL),
    ];
    let r = run(&v);
    let k = &r.oom_kills[0];
    assert_eq!(
        (
            k.pid,
            k.comm.as_str(),
            k.anon_rss_kb,
            k.total_vm_kb,
            k.constraint,
            k.oom_memcg.as_deref(),
            k.task_memcg.as_deref(),
            k.unit.as_deref(),
            k.unit_source,
            k.reason.as_str()
        ),
        (
            4321,
            "mariadbd",
            Some(1_048_576),
            Some(2_345_678),
            Some(OomConstraint::Memcg),
            Some("/system.slice/mariadb.service"),
            Some("/system.slice/mariadb.service"),
            Some("mariadb.service"),
            Some(UnitSource::TaskMemcg),
            "Memory cgroup out of memory"
        )
    );
}

#[test]
fn oom_kill_line_of_old_kernels_without_reason() {
    let mut g = Gen::default();
    let v = vec![g.kernel(
        T0,
        1,
        "Killed process 812 (java) total-vm:4096kB, anon-rss:2048kB, file-rss:0kB",
    )];
    let k = run(&v).oom_kills[0].clone();
    assert_eq!(
        (k.pid, k.comm.as_str(), k.anon_rss_kb, k.reason.as_str()),
        (812, "java", Some(2048), "")
    );
}

#[test]
fn oom_constraints_parse_to_their_kinds() {
    let got: Vec<Option<OomConstraint>> = [
        "CONSTRAINT_NONE",
        "CONSTRAINT_CPUSET",
        "CONSTRAINT_MEMORY_POLICY",
        "CONSTRAINT_MEMCG",
        "OTHER",
    ]
    .iter()
    .map(|c| {
        parse_oom_summary(
            format!("oom-kill:constraint={c},nodemask=(null)").as_bytes(),
            0,
        )
        .constraint
    })
    .collect();
    use OomConstraint::*;
    assert_eq!(
        got,
        vec![
            Some(None),
            Some(Cpuset),
            Some(MemoryPolicy),
            Some(Memcg),
            Option::None
        ]
    );
}

#[test]
fn oom_victim_unit_from_earlier_entries_of_its_pid() {
    let mut g = Gen::default();
    let v = vec![
        g.app(T0, 1, "mariadb.service", "4321", "mariadbd", "6", "ready for connections"),
        g.kernel(T0 + 60.0, 1, "Out of memory: Killed process 4321 (mariadbd) total-vm:1kB, anon-rss:2kB, file-rss:0kB, shmem-rss:0kB, UID:27 pgtables:4kB oom_score_adj:0"),
    ];
    let k = run(&v).oom_kills[0].clone();
    assert_eq!(
        (k.unit.as_deref(), k.unit_source, k.constraint),
        (Some("mariadb.service"), Some(UnitSource::Pid), None)
    );
}

#[test]
fn oom_victim_unit_from_systemd_oom_message() {
    let mut g = Gen::default();
    let v = vec![
        g.kernel(T0, 1, "Out of memory: Killed process 99 (worker) total-vm:1kB, anon-rss:2kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0"),
        g.pid1(
            T0 + 0.5,
            1,
            "worker.service",
            &[("MESSAGE_ID", "fe6faa94e7774663a0da52717891d8ef")],
            "A process of this unit has been killed by the OOM killer.",
        ),
    ];
    let k = run(&v).oom_kills[0].clone();
    assert_eq!(
        (k.unit.as_deref(), k.unit_source),
        (Some("worker.service"), Some(UnitSource::Systemd))
    );
}

#[test]
fn application_memory_pressure_message_is_kept_with_its_unit() {
    let mut g = Gen::default();
    let v = vec![
        g.app(
            T0,
            1,
            "mariadb.service",
            "50",
            "mariadbd",
            "4",
            "InnoDB: Memory pressure event freed 1234 pages",
        ),
        g.app(
            T0 + 1.0,
            1,
            "mariadb.service",
            "50",
            "mariadbd",
            "6",
            "InnoDB: Buffer pool(s) load completed",
        ),
    ];
    let r = run(&v);
    let p = &r.memory_pressure;
    assert_eq!(r.memory_pressure_total, 1);
    assert_eq!(
        (p[0].source, p[0].unit.as_deref(), p[0].text.as_str()),
        (
            PressureSource::Application,
            Some("mariadb.service"),
            "InnoDB: Memory pressure event freed 1234 pages"
        )
    );
}

#[test]
fn oomd_messages_are_memory_pressure() {
    let mut g = Gen::default();
    let v = vec![g.app(
        T0,
        1,
        "systemd-oomd.service",
        "300",
        "systemd-oomd",
        "5",
        "Killed /user.slice/user-1000.slice/app.scope due to memory pressure for /user.slice being 81.20% > 50.00% for > 20s with reclaim activity",
    )];
    assert_eq!(run(&v).memory_pressure[0].source, PressureSource::Oomd);
}

#[test]
fn kernel_oom_lines_are_not_pressure_messages() {
    let mut g = Gen::default();
    let v = vec![g.kernel(T0, 1, OOM_KILL)];
    assert_eq!(run(&v).memory_pressure_total, 0);
}

fn gap_journal(g: &mut Gen) -> Vec<Fx> {
    let mut v = vec![g.kernel(
        T0,
        1,
        "Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc 12)",
    )];
    v.extend(getty_loop(g, 0.5));
    let end = T0 + 3600.0;
    v.push(g.app(
        end - 30.0,
        1,
        "mariadb.service",
        "50",
        "mariadbd",
        "4",
        "InnoDB: memory pressure event",
    ));
    v.push(g.kernel(end - 10.0, 1, OOM_SUMMARY));
    v.push(g.kernel(end - 10.0, 1, OOM_KILL));
    v.push(g.app(end, 1, "cron.service", "60", "CRON", "6", "last words"));
    // 20 days later, the next boot.
    v.push(g.kernel(
        end + 20.0 * 86_400.0,
        2,
        "Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)",
    ));
    v.push(g.app(
        end + 20.0 * 86_400.0 + 5.0,
        2,
        "cron.service",
        "61",
        "CRON",
        "6",
        "hello again",
    ));
    v
}

#[test]
fn timeline_orders_boot_loop_warning_kill_last_entry_gap_and_next_boot() {
    let mut g = Gen::default();
    let r = run(&gap_journal(&mut g));
    let kinds: Vec<TimelineKind> = r.timeline.iter().map(|e| e.kind).collect();
    use TimelineKind::*;
    assert_eq!(
        kinds,
        vec![
            Boot,
            LoopStart,
            FirstMemoryWarning,
            OomKill,
            LastEntry,
            Gap,
            Boot,
            LastEntry
        ]
    );
}

#[test]
fn gap_lasts_until_the_next_boot_first_entry() {
    let mut g = Gen::default();
    let r = run(&gap_journal(&mut g));
    let gap = r
        .timeline
        .iter()
        .find(|e| e.kind == TimelineKind::Gap)
        .expect("gap");
    assert!((gap.duration_s.unwrap_or(0.0) - 20.0 * 86_400.0).abs() < 1e-3);
    assert!((gap.time_unix - (T0 + 3600.0)).abs() < 1e-3);
}

#[test]
fn boots_carry_their_kernel_release() {
    let mut g = Gen::default();
    let r = run(&gap_journal(&mut g));
    let k: Vec<Option<&str>> = r.range.boots.iter().map(|b| b.kernel.as_deref()).collect();
    assert_eq!(k, vec![Some("6.1.0-18-amd64"), Some("6.1.0-18-amd64")]);
}

#[test]
fn masking_numbers() {
    let cases = [
        (
            "could not get terminal name: -22",
            "could not get terminal name: -N",
        ),
        ("pid 1234 exited after 12ms", "pid N exited after Nms"),
        ("/dev/ttyS0: no such device", "/dev/ttyS0: no such device"),
        (
            "addr 0x7ffdeadbeef at sha256 deadbeef01",
            "addr 0xN at sha256 N",
        ),
        ("agetty[817]: done", "agetty[N]: done"),
        ("tokens cafe abc12", "tokens cafe abc12"),
    ];
    for (i, o) in cases {
        assert_eq!(mask_numbers(i), o, "{i}");
    }
}

#[test]
fn restart_buckets_keep_every_restart_as_they_widen() {
    let mut g = Gen::default();
    // 1 hour at 10 s: far more than RESTART_BUCKETS seconds, so buckets merge.
    let r = run(&getty_loop(&mut g, 1.0));
    let s = &r.series[0];
    assert!(s.width_s > 1.0);
    assert_eq!(s.counts.iter().map(|&c| u64::from(c)).sum::<u64>(), 360);
}

fn agetty_text() -> String {
    let mut g = Gen::default();
    run(&getty_loop(&mut g, 3.0)).to_text()
}

#[test]
fn text_loop_line_has_thousands_span_rate_and_utc_dates() {
    let t = agetty_text();
    assert!(
        t.lines().any(|l| l
            == "  serial-getty@ttyS0.service: 1,080 restarts in 3.0 h, 6.0/min, 13 Jan 2026 09:00 UTC – 13 Jan 2026 11:59 UTC"),
        "{t}"
    );
}

#[test]
fn text_counter_and_last_exit_lines() {
    let t = agetty_text();
    assert!(
        t.lines()
            .any(|l| l == "    restart counter at 1,080 (highest 1,080, 0 resets)"),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l == "    last exit code=exited, status=1/FAILURE; last result exit-code"),
        "{t}"
    );
}

#[test]
fn text_dominant_error_with_example() {
    let t = agetty_text();
    assert!(
        t.lines()
            .any(|l| l == "      1,080  agetty: could not get terminal name: -N"),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l == "             e.g. agetty: could not get terminal name: -22"),
        "{t}"
    );
}

#[test]
fn text_gap_line_gives_the_days() {
    let mut g = Gen::default();
    let t = run(&gap_journal(&mut g)).to_text();
    assert!(
        t.lines()
            .any(|l| l.trim() == "… 20.0 days without entries …"),
        "{t}"
    );
}

#[test]
fn text_oom_kill_line() {
    let mut g = Gen::default();
    let t = run(&gap_journal(&mut g)).to_text();
    assert!(
        t.lines().any(|l| l
            == "  OOM kill 13 Jan 2026 09:59 UTC: pid 4321 (mariadbd) of mariadb.service (by its cgroup), anon-rss 1.1 GB, Memory cgroup out of memory, constraint memcg, oom_memcg /system.slice/mariadb.service"),
        "{t}"
    );
}

#[test]
fn terminal_escapes_in_messages_are_inert_in_text() {
    let mut g = Gen::default();
    let mut v = Vec::new();
    for n in 1..=3 {
        v.push(g.app(
            T0 + n as f64,
            1,
            "evil.service",
            "7",
            "evil",
            "3",
            "\x1b]0;pwned\x07\x1b[2J boom",
        ));
        v.push(g.restart(T0 + n as f64 + 0.5, 1, "evil.service", n));
    }
    let t = run(&v).to_text();
    assert!(!t.contains('\x1b') && !t.contains('\x07'));
    assert!(t.contains("evil: \\x1b]0;pwned\\x07\\x1b[2J boom"), "{t}");
}

#[test]
fn json_has_the_documented_fields() {
    let mut g = Gen::default();
    let r = run(&gap_journal(&mut g));
    let j: serde_json::Value = serde_json::from_str(&r.to_json()).expect("valid JSON");
    assert_eq!(j["schema"], crate::output::schema::SCHEMA);
    for k in [
        "source",
        "range",
        "loops",
        "journal_units",
        "oom_kills",
        "memory_pressure",
        "memory_pressure_total",
        "timeline",
    ] {
        assert!(j.get(k).is_some(), "{k}");
    }
    let l = &j["loops"][0];
    for k in [
        "unit",
        "restarts",
        "counter_last",
        "counter_max",
        "counter_resets",
        "starts",
        "failures",
        "first_unix",
        "last_unix",
        "span_s",
        "rate_per_min",
        "longest_gap_s",
        "last_result",
        "last_exit_status",
        "top_errors",
    ] {
        assert!(l.get(k).is_some(), "loops[].{k}");
    }
    for k in ["text", "count", "example"] {
        assert!(l["top_errors"][0].get(k).is_some(), "top_errors[].{k}");
    }
    for k in ["unit", "entries", "bytes", "share"] {
        assert!(
            j["journal_units"][0].get(k).is_some(),
            "journal_units[].{k}"
        );
    }
    for k in ["files", "entries", "bytes", "problems"] {
        assert!(j["source"].get(k).is_some(), "source.{k}");
    }
    for k in ["first_unix", "last_unix", "boots"] {
        assert!(j["range"].get(k).is_some(), "range.{k}");
    }
    assert_eq!(j["oom_kills"][0]["constraint"], "memcg");
    assert_eq!(j["timeline"][0]["kind"], "boot");
}

/// A minimal XML check: tags balance, attributes are quoted, `&` starts
/// an entity, and no raw control characters.
fn well_formed(s: &str) -> Result<(), String> {
    let mut stack: Vec<String> = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'<' => {
                let end = s[i..].find('>').ok_or("unclosed <")? + i;
                let tag = &s[i + 1..end];
                if tag.starts_with('?') {
                } else if let Some(name) = tag.strip_prefix('/') {
                    if stack.pop().as_deref() != Some(name.trim()) {
                        return Err(format!("mismatched </{name}>"));
                    }
                } else {
                    let name = tag
                        .split(|c: char| c.is_whitespace() || c == '/')
                        .next()
                        .unwrap_or("");
                    if name.is_empty()
                        || !tag.matches('"').count().is_multiple_of(2)
                        || tag.contains('<')
                    {
                        return Err(format!("bad tag <{tag}>"));
                    }
                    if !tag.ends_with('/') {
                        stack.push(name.to_string());
                    }
                }
                i = end + 1;
            }
            b'&' => {
                let semi = s[i..].find(';').ok_or("bare &")?;
                let ent = &s[i + 1..i + semi];
                if !["amp", "lt", "gt", "quot", "apos"].contains(&ent) {
                    return Err(format!("unknown entity &{ent};"));
                }
                i += semi + 1;
            }
            c if c < 0x20 && c != b'\n' && c != b'\t' => {
                return Err(format!("control byte {c:#x}"));
            }
            _ => i += 1,
        }
    }
    if stack.is_empty() {
        Ok(())
    } else {
        Err(format!("unclosed {stack:?}"))
    }
}

#[test]
fn xml_checker_rejects_unbalanced_tags() {
    assert!(well_formed("<svg><g></svg>").is_err());
}

#[test]
fn svg_is_well_formed_with_lanes_markers_and_escaped_names() {
    let mut g = Gen::default();
    let mut v = gap_journal(&mut g);
    for n in 1..=3 {
        v.push(g.restart(T0 + 7200.0 + n as f64, 1, "a<b>&\x1b.service", n));
    }
    v.sort_by_key(|e| e.t);
    let s = run(&v).to_svg();
    well_formed(&s).unwrap_or_else(|e| panic!("{e}\n{s}"));
    assert!(s.contains(">serial-getty@ttyS0.service</text>"));
    assert!(s.contains(">a&lt;b&gt;&amp;\\x1b.service</text>"), "{s}");
    assert!(
        s.contains(">OOM kill</text>")
            && s.contains(">boot</text>")
            && s.contains("no entries for 20.0 days")
    );
}

#[test]
fn svg_rate_bars_are_drawn_for_a_loop() {
    let mut g = Gen::default();
    let s = run(&getty_loop(&mut g, 1.0)).to_svg();
    // The range is 3,590 s: 59 one-minute columns, each with restarts,
    // plus the legend's swatch.
    assert_eq!(s.matches(r##"fill="#3366aa"/>"##).count(), 59 + 1, "{s}");
    assert!(s.contains(">6.0/min on average</text>"), "{s}");
}

/// The founding incident's volume: 1.26 M entries, ~421 k restarts. The
/// time per entry is printed (see with --nocapture), not asserted: it
/// depends on the machine and the build profile.
#[test]
fn throughput_on_an_incident_sized_journal() {
    let mut g = Gen::default();
    let cycles = 210_000u64; // × 6 entries = 1.26 M
    let template = getty_cycle(&mut g, T0, 1, 1);
    let mut a = Analyzer::new(None);
    let mut spent = Duration::ZERO;
    let mut lookups = Duration::ZERO;
    let mut batch = Vec::with_capacity(6_000);
    let mut pushed = 0u64;
    for i in 0..cycles {
        let t = T0 + i as f64 * 10.0;
        for (k, e) in template.iter().enumerate() {
            let mut e = e.clone();
            e.t = ((t + k as f64 * 0.001) * 1e6) as u64;
            if k == 4 {
                e = g.restart(t + 0.004, 1, GETTY, i + 1);
            }
            batch.push(e);
        }
        if batch.len() >= 6_000 || i + 1 == cycles {
            let start = Instant::now();
            for e in &batch {
                a.push(e);
            }
            spent += start.elapsed();
            // What the fixture's own lookups cost: each field looked up
            // by name once, value and id, as the analyzer does about.
            let start = Instant::now();
            for e in &batch {
                for (name, _, _) in &e.f {
                    std::hint::black_box(e.get(name));
                    std::hint::black_box(e.value_id(name));
                }
            }
            lookups += start.elapsed();
            pushed += batch.len() as u64;
            batch.clear();
        }
    }
    let r = a.finish(SourceInfo::default());
    println!(
        "postmortem: {pushed} entries in {:.3} s, {:.3} µs/entry; the fixture's field lookups alone {:.3} µs/entry",
        spent.as_secs_f64(),
        spent.as_secs_f64() * 1e6 / pushed as f64,
        lookups.as_secs_f64() * 1e6 / pushed as f64
    );
    let l = loop_of(&r, GETTY);
    assert_eq!((l.restarts, l.top_errors[0].count), (cycles, cycles));
}

#[test]
fn exit_status_from_text_when_fields_are_missing() {
    let mut g = Gen::default();
    let mut v: Vec<Fx> = (1..=3)
        .map(|n| g.restart(T0 + n as f64 * 10.0, 1, "k.service", n))
        .collect();
    v.push(g.pid1(
        T0 + 40.0,
        1,
        "k.service",
        &[],
        "Main process exited, code=killed, status=9/KILL",
    ));
    let l = loop_of(&run(&v), "k.service").clone();
    assert_eq!(
        l.last_exit_status,
        Some(ExitStatus {
            code: ExitCode::Killed,
            status: 9,
            text: Some("9/KILL".into())
        })
    );
}

#[test]
fn caches_stay_within_their_caps() {
    let mut g = Gen::default();
    let mut a = Analyzer::new(None);
    // Distinct messages, each a new stored value: more than any cap.
    for i in 0..(CACHE_CAP as u64 + 1_000) {
        let e = g.app(
            T0 + i as f64,
            1,
            "chatty.service",
            "5",
            "chatty",
            "3",
            &format!("request id {i:x}z done"),
        );
        a.push(&e);
    }
    assert!(a.norm_cache.len() <= NORM_CACHE_CAP && a.pressure_cache.len() <= CACHE_CAP);
}

#[test]
fn text_says_how_long_before_now_the_journal_ends() {
    let mut g = Gen::default();
    let mut a = Analyzer::new(Some(T0 + 2.5 * 86_400.0));
    a.push(&g.app(T0, 1, "a.service", "5", "a", "6", "hi"));
    let t = a.finish(SourceInfo::default()).to_text();
    assert!(
        t.lines()
            .any(|l| l == "The journal ends 2.5 days before this report."),
        "{t}"
    );
}

#[test]
fn boots_past_the_cap_count_for_the_last_boot_kept() {
    let mut g = Gen::default();
    let mut a = Analyzer::new(None);
    let template = g.app(T0, 1, "a.service", "5", "a", "6", "hi");
    for i in 0..(BOOTS_MAX as u64 + 5) {
        let mut e = template.clone();
        e.t += i;
        e.boot[..8].copy_from_slice(&i.to_le_bytes());
        a.push(&e);
    }
    let r = a.finish(SourceInfo::default());
    let last = r.range.boots.last().map_or(0, |b| b.entries);
    assert_eq!((r.range.boots.len(), last), (BOOTS_MAX, 6));
}
