//! Against a real systemd: the incident's shape. A unit with Restart=always
//! whose process fails ~50 ms after it starts, restarted every second with
//! no start limit, is named, and once systemd has restarted it 15 times its
//! exec count equals systemd's own NRestarts + 1 (the first start) within
//! ±1. The loop found in the events names the workload, never the
//! systemd-executor that systemd 257 starts it through, at the restart
//! rate and from the first start that systemd logged, whether trace reads
//! the counters every second or once at the end. On bookworm (systemd 252)
//! and trixie (systemd 257).

use std::time::{Duration, Instant};

use serde_json::Value;
use spawnscope_tests::{
    Tracer, summary,
    systemd::{Suite, SystemdContainer, assert_names_no_executor, restarts_per_min},
    unit_rows, workload_bin,
};

const RESTARTS: u64 = 15;
const UNIT: &str = "crashy.service";

#[test]
fn crash_loop_exec_count_matches_systemd_nrestarts_bookworm() {
    crash_loop_exec_count_matches_systemd_nrestarts(Suite::Bookworm);
}

#[test]
fn crash_loop_exec_count_matches_systemd_nrestarts_trixie() {
    crash_loop_exec_count_matches_systemd_nrestarts(Suite::Trixie);
}

fn crash_loop_exec_count_matches_systemd_nrestarts(suite: Suite) {
    let Some(ct) = SystemdContainer::boot_suite(&format!("loop-{}", suite.name()), suite, &[])
    else {
        return;
    };
    // One exec per start: the workload sleeps 50 ms and exits 1 without
    // spawning anything, so execs count starts exactly (with, on systemd
    // 255 and later, one exec of systemd-executor before each).
    ct.copy_in(&workload_bin(), "/usr/local/bin/spawn-workload");
    ct.install_unit(
        UNIT,
        "[Unit]\nStartLimitIntervalSec=0\n\
         [Service]\nExecStart=/usr/local/bin/spawn-workload --fail-after 50\n\
         Restart=always\nRestartSec=1s\n",
    );
    let tracer = Tracer::start(&["--interval", "1s"]);
    // The same loop, its counters read only once, at the end: every
    // restart falls in one reading.
    let once = Tracer::start(&["--interval", "1h", "--unit", UNIT]);
    ct.run(&["systemctl", "start", UNIT]);
    // As many restarts as systemd makes, not a wall-clock window: about
    // 20 s here, longer on a loaded host.
    let deadline = Instant::now() + Duration::from_secs(300);
    let props = loop {
        // Read before the stop: a stopped unit that nothing references is
        // unloaded, and systemctl show then reports a fresh NRestarts=0. A
        // restart between this and the stop is what the ±1 allows for.
        let props = ct.show(UNIT, &["NRestarts", "ControlGroup"]);
        let restarts: u64 = props["NRestarts"].parse().unwrap();
        if restarts >= RESTARTS {
            break props;
        }
        assert!(
            Instant::now() < deadline,
            "systemd restarted {UNIT} only {restarts} times in 300 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    ct.run(&["systemctl", "stop", UNIT]);
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, once_lines, stderr) = once.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let started = ct.start_times(UNIT);
    let s = summary(&lines);

    let restarts: i64 = props["NRestarts"].parse().unwrap();
    let rows = unit_rows(s, UNIT, Some(&ct.name));
    assert_eq!(rows.len(), 1, "all restarts add up in one row: {s}");
    let row = rows[0];
    let execs = row["total"]["execs"].as_i64().unwrap();
    let per_start = suite.execs_per_start() as i64;
    assert!(
        (execs - per_start * (restarts + 1)).abs() <= per_start,
        "spawnscope counted {execs} execs ({per_start} per start), systemd {restarts} restarts + 1 start"
    );
    // A start the stop caught inside systemd-executor is a start all the
    // same.
    let starts = (execs + per_start - 1) / per_start;
    // Every run failed by itself, but the one the stop caught (SIGTERM).
    let t = &row["total"];
    let signaled = t["exit_signaled"].as_i64().unwrap();
    assert!(signaled <= 1, "{row}");
    assert_eq!(
        t["exit_failed"].as_i64().unwrap() + signaled,
        starts,
        "{row}"
    );
    assert_eq!(t["exits"].as_i64().unwrap(), starts, "{row}");
    if suite.forks_per_start() == 0 {
        assert_eq!(t["forks"], 0, "systemd forks in init.scope: {row}");
    } else {
        assert_eq!(
            t["forks"].as_i64().unwrap(),
            starts,
            "systemd spawns into the unit's cgroup: {row}"
        );
    }
    let want = ct.host_cgroup(&format!("/system.slice/{UNIT}"));
    for m in row["cgroups"].as_array().unwrap() {
        assert_eq!(m["path"], want.as_str(), "{row}");
    }
    // One respawn interval per restart of the workload: systemd-executor's
    // execs add none.
    let intervals: i64 = row["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_i64().unwrap())
        .sum();
    assert!(
        (0..=1).contains(&(starts - 1 - intervals)),
        "{intervals} intervals for {starts} starts: {row}"
    );
    eprintln!(
        "{UNIT} ({}): {execs} execs, NRestarts={restarts}, {} cgroup id(s), {} starts logged",
        suite.name(),
        row["cgroups"][0]["ids"].as_array().unwrap().len(),
        started.len()
    );
    assert_eq!(s["probe"]["names_lost"], 0);

    let real_rate = restarts_per_min(&started);
    for (how, lines) in [("every 1 s", &lines), ("once", &once_lines)] {
        let f = the_loop(summary(lines), &ct.name);
        check_loop(f, how, &started, real_rate);
    }
    ct.shutdown();
}

/// The summary's one finding about UNIT in `container`.
fn the_loop<'a>(s: &'a Value, container: &str) -> &'a Value {
    let mine: Vec<&Value> = s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["container"] == container && f["unit"] == UNIT)
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "one loop in {UNIT}, named by its program: {}",
        s["findings"]
    );
    mine[0]
}

/// The finding names the workload, restarting at systemd's rate, first
/// seen at systemd's first start of it.
fn check_loop(f: &Value, how: &str, started: &[f64], real_rate: f64) {
    eprintln!(
        "counters read {how}: {} (first seen {:.3}, systemd's starts {:.3}, {:.3}; {real_rate:.1}/min by systemd's log)",
        f["message"],
        f["first_seen_unix"].as_f64().unwrap(),
        started[0],
        started[1]
    );
    assert_eq!(f["kind"], "respawn_loop", "{f}");
    assert_eq!(f["executable"], "/usr/local/bin/spawn-workload", "{f}");
    assert_eq!(f["argv"][0], "/usr/local/bin/spawn-workload", "{f}");
    assert_eq!(f["comm"], "spawn-workload", "{f}");
    assert_eq!(f["parent"]["comm"], "systemd", "{f}");
    assert_names_no_executor(f);
    let rate = f["rate_per_min"].as_f64().unwrap();
    assert!(
        (rate - real_rate).abs() <= 0.1 * real_rate,
        "counters read {how}: {rate}/min, systemd restarted it {real_rate:.1}/min: {f}"
    );
    // The workload's first exec follows systemd's first "Started" by the
    // executor's set-up (milliseconds); the clocks are the same host's.
    let first = f["first_seen_unix"].as_f64().unwrap();
    assert!(
        first >= started[0] - 0.5 && first < started[1],
        "counters read {how}: first seen {first}, systemd started it at {} and first restarted it at {}: {f}",
        started[0],
        started[1]
    );
}
