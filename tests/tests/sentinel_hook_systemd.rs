//! The incident under the sentinel: a real systemd in a container restarts
//! a failing agetty (a new cgroup at each restart). The sentinel opens a
//! finding from its counts, and the hook (run directly, the alert as JSON
//! on stdin) receives it; the drill-down then follows the unit into its
//! next cgroup and names agetty and its exit status.

use std::time::{Duration, Instant};

use spawnscope_tests::{
    sentinel::{Sentinel, config, read_jsonl},
    systemd::SystemdContainer,
};

const UNIT: &str = "serial-getty@ttyS0.service";

#[test]
fn hook_receives_the_loop_of_a_real_systemd_unit() {
    let Some(ct) = SystemdContainer::boot("sentinel-hook") else {
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

    assert_eq!(opened["priority"], "err");
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
}
