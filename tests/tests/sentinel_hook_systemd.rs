//! The incident under the sentinel: a real systemd in a container restarts
//! a failing agetty (a new cgroup at each restart). The sentinel opens a
//! finding from its counts, and the hook (run directly, the alert as JSON
//! on stdin) receives it; the drill-down then follows the unit into its
//! next cgroup and names agetty and its exit status, never the
//! systemd-executor that systemd 257 starts it through. The finding
//! restarts at systemd's rate and was first seen by systemd's first
//! restart. On bookworm (systemd 252) and trixie (systemd 257).

use std::time::{Duration, Instant};

use spawnscope_tests::{
    sentinel::{Sentinel, config, read_jsonl},
    systemd::{Suite, SystemdContainer, assert_names_no_executor, restarts_per_min},
};

const UNIT: &str = "serial-getty@ttyS0.service";

#[test]
fn hook_receives_the_loop_of_a_real_systemd_unit_bookworm() {
    hook_receives_the_loop_of_a_real_systemd_unit(Suite::Bookworm);
}

#[test]
fn hook_receives_the_loop_of_a_real_systemd_unit_trixie() {
    hook_receives_the_loop_of_a_real_systemd_unit(Suite::Trixie);
}

fn hook_receives_the_loop_of_a_real_systemd_unit(suite: Suite) {
    let Some(ct) =
        SystemdContainer::boot_suite(&format!("sentinel-hook-{}", suite.name()), suite, &[])
    else {
        return;
    };
    ct.install_unit(
        UNIT,
        "[Unit]\nStartLimitIntervalSec=0\n\
         [Service]\nExecStart=-/sbin/agetty -o '-p -- \\\\u' --keep-baud 115200,57600,38400,9600 ttyS0 vt220\n\
         Restart=always\nRestartSec=1s\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let hooked = dir.path().join("hook.jsonl");
    let s = Sentinel::start(
        dir.path(),
        &config(
            dir.path(),
            &format!(
                "[alerts]\nhook = [\"/usr/bin/tee\", \"-a\", \"{}\"]\n",
                hooked.display()
            ),
        ),
    );
    ct.run(&["systemctl", "start", UNIT]);
    let label = format!("{UNIT} @{}", ct.name);
    // agetty fails every ~8-10 s, and the finding opens at its 3rd restart
    // and is named at a later one: about 40 s here, longer on a loaded host.
    let deadline = Instant::now() + Duration::from_secs(180);
    let t0 = Instant::now();
    let (opened, identified) = loop {
        let lines = read_jsonl(&hooked);
        let find = |event: &str| {
            lines
                .iter()
                .find(|a| a["event"] == event && a["key"] == label.as_str())
                .cloned()
        };
        if let (Some(o), Some(i)) = (find("finding_opened"), find("finding_identified")) {
            break (o, i);
        }
        assert!(
            Instant::now() < deadline,
            "hook got no opening and identification for {label} in 180 s: {lines:?}\nstderr:\n{}",
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let named_after = t0.elapsed();
    // systemd's record of the last run's end, read while the unit waits
    // out RestartSec (a running instance has no status yet).
    let deadline = Instant::now() + Duration::from_secs(20);
    let props = loop {
        let p = ct.show(UNIT, &["SubState", "NRestarts", "ExecMainStatus"]);
        if p["SubState"] == "auto-restart" {
            break p;
        }
        assert!(Instant::now() < deadline, "never in auto-restart: {p:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    ct.run(&["systemctl", "stop", UNIT]);
    let started = ct.start_times(UNIT);
    let real_rate = restarts_per_min(&started);
    eprintln!(
        "sentinel ({}): systemd started {UNIT} at {started:?} ({real_rate:.2}/min)\nopened: {opened}\nidentified: {identified}",
        suite.name()
    );

    // Seen for seconds: medium, sent at warning priority.
    assert_eq!(opened["priority"], "warning");
    assert_eq!(opened["detail"]["kind"], "respawn_loop");
    assert_eq!(opened["detail"]["unit"], label.as_str());
    let restarts = opened["detail"]["restarts"].as_u64().unwrap();
    assert!(
        (3..=5).contains(&restarts),
        "opened at the 3rd restart or soon after: {opened}"
    );
    let msg = opened["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "respawn loop in {label}: {restarts} restarts since "
        )),
        "{msg}"
    );

    assert_eq!(
        identified["detail"]["detail"]["executable"], "/sbin/agetty",
        "{identified}"
    );
    assert_eq!(
        identified["detail"]["detail"]["argv"][0], "/sbin/agetty",
        "{identified}"
    );
    assert_names_no_executor(&identified);
    let status: u64 = props["ExecMainStatus"].parse().unwrap();
    assert_ne!(status, 0);
    assert_eq!(
        identified["detail"]["detail"]["exit_code"], status,
        "{identified}"
    );
    assert!(
        identified["message"]
            .as_str()
            .unwrap()
            .ends_with(&format!("; runs /sbin/agetty, exits with status {status}")),
        "{identified}"
    );
    eprintln!(
        "sentinel: opened at restart {restarts} ({}), named {:.0} s after the start, systemd NRestarts now {}",
        msg,
        named_after.as_secs_f64(),
        props["NRestarts"]
    );
    // The container's journald and PID 1, which such a loop makes grow,
    // are watched.
    let text = s.scrape();
    for what in ["journald", "pid1", "journal"] {
        let key = format!(
            "spawnscope_hidden_bytes{{what=\"{what}\",container=\"{}\",pid=",
            ct.name
        );
        assert!(text.contains(&key), "no {key} in:\n{text}");
    }
    s.signal(libc::SIGTERM);
    let (code, stderr) = s.wait();
    assert_eq!(code, Some(0), "{stderr}");

    // The finding opened at systemd's pace, and as first seen by
    // systemd's first restart, not at the poll that opened it.
    let rate = opened["detail"]["rate_per_min"].as_f64().unwrap();
    assert!(
        (rate - real_rate).abs() <= 0.1 * real_rate,
        "opened at {rate}/min, systemd restarted it {real_rate:.2}/min: {opened}"
    );
    let first = opened["detail"]["first_seen_unix"].as_f64().unwrap();
    assert!(
        first >= started[0] - 0.5 && first <= started[1],
        "first seen {first}, systemd started it at {} and first restarted it at {}: {opened}",
        started[0],
        started[1]
    );
}
