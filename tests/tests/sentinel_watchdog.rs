//! The shipped unit knows whether the sentinel is alive: it is active only
//! once the sentinel says READY=1 (Type=notify), and a sentinel whose poll
//! loop stops (here: SIGSTOP) stops petting the watchdog, so systemd
//! aborts and restarts it. The watchdog period is shortened by a drop-in,
//! to keep the test short; everything else is the shipped unit.

use std::time::{Duration, Instant};

use spawnscope_tests::systemd::{Suite, SystemdContainer};

#[test]
fn a_stopped_poll_loop_is_restarted_by_the_watchdog_bookworm() {
    a_stopped_poll_loop_is_restarted_by_the_watchdog(Suite::Bookworm);
}

#[test]
fn a_stopped_poll_loop_is_restarted_by_the_watchdog_trixie() {
    a_stopped_poll_loop_is_restarted_by_the_watchdog(Suite::Trixie);
}

fn a_stopped_poll_loop_is_restarted_by_the_watchdog(suite: Suite) {
    let Some((ct, unit)) = SystemdContainer::boot_for_shipped_sentinel("sentinel-watchdog", suite)
    else {
        return;
    };
    assert!(unit.contains("\nType=notify\n") && unit.contains("\nWatchdogSec=30s\n"));
    let dropin = ct.guest_path("/etc/systemd/system/spawnscope-sentinel.service.d");
    std::fs::create_dir_all(&dropin).unwrap();
    std::fs::write(
        dropin.join("watchdog.conf"),
        "[Service]\nWatchdogSec=4s\nTimeoutAbortSec=2s\nRestartSec=1s\n",
    )
    .unwrap();
    std::fs::create_dir_all(ct.guest_path("/etc/spawnscope")).unwrap();
    std::fs::write(
        ct.guest_path("/etc/spawnscope/sentinel.toml"),
        "interval = \"1s\"\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    ct.run(&["systemctl", "daemon-reload"]);

    // `systemctl start` of a Type=notify unit returns once READY=1 came.
    let started = ct.run(&[
        "sh",
        "-c",
        "systemctl start spawnscope-sentinel.service; echo rc=$?",
    ]);
    assert!(started.trim_end().ends_with("rc=0"), "{started}");
    let p = ct.show(
        "spawnscope-sentinel.service",
        &["ActiveState", "SubState", "MainPID", "StatusText"],
    );
    assert_eq!(p["ActiveState"], "active", "{p:?}");
    assert!(
        p["StatusText"].starts_with("sentinel started: interval 1s"),
        "READY=1 came with its status: {p:?}"
    );
    let first = p["MainPID"].clone();
    // Alive and polling: the watchdog is petted for longer than its period.
    std::thread::sleep(Duration::from_secs(6));
    let p = ct.show("spawnscope-sentinel.service", &["MainPID", "NRestarts"]);
    assert_eq!(
        (p["MainPID"].as_str(), p["NRestarts"].as_str()),
        (first.as_str(), "0"),
        "a polling sentinel was restarted"
    );

    ct.run(&["sh", "-c", &format!("kill -STOP {first}")]);
    let stopped_at = Instant::now();
    let deadline = stopped_at + Duration::from_secs(60);
    let p = loop {
        let p = ct.show(
            "spawnscope-sentinel.service",
            &["MainPID", "NRestarts", "ActiveState"],
        );
        if p["NRestarts"] != "0" && p["ActiveState"] == "active" && p["MainPID"] != first {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "not restarted within 60 s of SIGSTOP: {p:?}\n{}",
            ct.run(&[
                "journalctl",
                "--no-pager",
                "-u",
                "spawnscope-sentinel.service"
            ])
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let took = stopped_at.elapsed();
    let journal = ct.run(&[
        "journalctl",
        "--no-pager",
        "-o",
        "cat",
        "-u",
        "spawnscope-sentinel.service",
    ]);
    assert!(
        journal.contains("Watchdog timeout"),
        "restarted by the watchdog: {journal}"
    );
    assert_eq!(p["NRestarts"], "1", "{p:?}");
    eprintln!("restarted {took:?} after SIGSTOP (watchdog 4 s, abort 2 s, restart 1 s)");
}
