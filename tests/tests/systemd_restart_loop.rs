//! Against a real systemd: the incident's shape. A unit with Restart=always
//! whose process fails ~50 ms after it starts, restarted every second with
//! no start limit, is named, and once systemd has restarted it 15 times its
//! exec count equals systemd's own NRestarts + 1 (the first start) within
//! ±1.

use std::time::{Duration, Instant};

use spawnscope_tests::{Tracer, summary, systemd::SystemdContainer, unit_rows, workload_bin};

const RESTARTS: u64 = 15;

#[test]
fn crash_loop_exec_count_matches_systemd_nrestarts() {
    let Some(ct) = SystemdContainer::boot("loop") else {
        return;
    };
    // One exec per start: the workload sleeps 50 ms and exits 1 without
    // spawning anything, so execs count starts exactly.
    ct.copy_in(&workload_bin(), "/usr/local/bin/spawn-workload");
    ct.install_unit(
        "crashy.service",
        "[Unit]\nStartLimitIntervalSec=0\n\
         [Service]\nExecStart=/usr/local/bin/spawn-workload --fail-after 50\n\
         Restart=always\nRestartSec=1s\n",
    );
    let tracer = Tracer::start(&["--interval", "1s"]);
    ct.run(&["systemctl", "start", "crashy.service"]);
    // As many restarts as systemd makes, not a wall-clock window: about
    // 20 s here, longer on a loaded host.
    let deadline = Instant::now() + Duration::from_secs(300);
    let props = loop {
        // Read before the stop: a stopped unit that nothing references is
        // unloaded, and systemctl show then reports a fresh NRestarts=0. A
        // restart between this and the stop is what the ±1 allows for.
        let props = ct.show("crashy.service", &["NRestarts", "ControlGroup"]);
        let restarts: u64 = props["NRestarts"].parse().unwrap();
        if restarts >= RESTARTS {
            break props;
        }
        assert!(
            Instant::now() < deadline,
            "systemd restarted crashy.service only {restarts} times in 300 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    ct.run(&["systemctl", "stop", "crashy.service"]);
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let s = summary(&lines);

    let restarts: i64 = props["NRestarts"].parse().unwrap();
    let rows = unit_rows(s, "crashy.service", Some(&ct.name));
    assert_eq!(rows.len(), 1, "all restarts add up in one row: {s}");
    let row = rows[0];
    let execs = row["total"]["execs"].as_i64().unwrap();
    assert!(
        (execs - (restarts + 1)).abs() <= 1,
        "spawnscope counted {execs} execs, systemd {restarts} restarts + 1 start"
    );
    // Every run failed by itself, but the one the stop caught (SIGTERM).
    let t = &row["total"];
    let signaled = t["exit_signaled"].as_i64().unwrap();
    assert!(signaled <= 1, "{row}");
    assert_eq!(
        t["exit_failed"].as_i64().unwrap() + signaled,
        execs,
        "{row}"
    );
    assert_eq!(t["exits"].as_i64().unwrap(), execs, "{row}");
    assert_eq!(t["forks"], 0, "systemd forks in init.scope: {row}");
    let want = ct.host_cgroup("/system.slice/crashy.service");
    for m in row["cgroups"].as_array().unwrap() {
        assert_eq!(m["path"], want.as_str(), "{row}");
    }
    eprintln!(
        "crashy.service: {execs} execs, NRestarts={restarts}, {} cgroup id(s)",
        row["cgroups"][0]["ids"].as_array().unwrap().len()
    );
    assert_eq!(s["probe"]["names_lost"], 0);
    ct.shutdown();
}
