//! A candidate does not keep a loop unnamed. A unit whose commands fail
//! now and then, each a different command (no loop), is drilled into as a
//! candidate, which lasts up to two minutes when nothing loops. A real
//! agetty crash loop (a systemd unit restarted into a new cgroup) that
//! starts beside it gets a drill-down of its own: it is named
//! (`finding_identified`) as fast as the same loop is when it runs alone,
//! and the candidate's drill-down goes on meanwhile, neither paused nor
//! judged early.

use std::time::{Duration, Instant};

use spawnscope_tests::{
    TestCgroup, child_command, require_root,
    sentinel::{Sentinel, config, read_jsonl},
    systemd::SystemdContainer,
};

/// The incident's agetty, on a tty the container does not have.
fn getty_unit() -> &'static str {
    "[Unit]\nStartLimitIntervalSec=0\n\
     [Service]\nExecStart=-/sbin/agetty -o '-p -- \\\\u' --keep-baud 115200,57600,38400,9600 %I vt220\n\
     Restart=always\nRestartSec=1s\n"
}

/// Starts `unit` and waits for its `finding_identified`; returns how long
/// that took and the alert.
fn time_to_name(
    ct: &SystemdContainer,
    s: &Sentinel,
    alerts: &std::path::Path,
    unit: &str,
) -> (Duration, serde_json::Value) {
    let label = format!("{unit} @{}", ct.name);
    let t0 = Instant::now();
    ct.run(&["systemctl", "start", unit]);
    let deadline = t0 + Duration::from_secs(180);
    loop {
        let seen = read_jsonl(alerts);
        if let Some(a) = seen
            .iter()
            .find(|a| a["event"] == "finding_identified" && a["key"] == label.as_str())
        {
            ct.run(&["systemctl", "stop", unit]);
            return (t0.elapsed(), a.clone());
        }
        assert!(
            Instant::now() < deadline,
            "{label} not named within 180 s: {seen:?}\nstderr:\n{}",
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_loop_is_named_as_fast_beside_a_candidate_as_alone() {
    if !require_root("sentinel_drill_priority") {
        return;
    }
    let Some(ct) = SystemdContainer::boot("drill-prio") else {
        return;
    };
    ct.install_unit("serial-getty@.service", getty_unit());
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let slice = TestCgroup::named("drill-prio", ".slice");
    let mut s = Sentinel::start(
        dir.path(),
        &config(
            dir.path(),
            &format!("[alerts]\njsonl = \"{}\"\n", alerts.display()),
        ),
    );

    // Alone.
    let (alone, named) = time_to_name(&ct, &s, &alerts, "serial-getty@ttyS0.service");
    assert_eq!(
        named["detail"]["detail"]["executable"], "/sbin/agetty",
        "{named}"
    );

    // The candidate: failing commands in one long-lived cgroup, each with
    // its own argv, so no group of starts ever repeats.
    let (mut c, _) = child_command(&slice.path, "candidate.service", "/bin/sh");
    c.args([
        "-c",
        "i=0; while :; do i=$((i+1)); /bin/sh -c 'exit 2' c$i; sleep 0.3; done",
    ]);
    let mut candidate = c.spawn().unwrap();
    let drilled = s.wait_line(
        Duration::from_secs(60),
        "drilling into candidate.service (a candidate loop)",
    );
    // Beside it, the same loop on another tty.
    let (beside, named) = time_to_name(&ct, &s, &alerts, "serial-getty@ttyS1.service");
    eprintln!("named alone in {alone:?}, beside a candidate in {beside:?}");
    assert_eq!(
        named["detail"]["detail"]["executable"], "/sbin/agetty",
        "{named}"
    );
    assert!(
        beside <= alone * 3 / 2 + Duration::from_secs(15),
        "named in {beside:?} beside a candidate, {alone:?} alone"
    );
    assert!(
        candidate.try_wait().unwrap().is_none(),
        "the candidate exited early"
    );
    let log = s.stderr();
    let after = &log[log.find(&drilled).expect("seen above")..];
    assert!(
        !after.contains("drill-down into candidate.service paused")
            && !after.contains("drill-down into candidate.service ended"),
        "the candidate's drill-down did not go on beside the loop's:\n{log}"
    );
    let _ = candidate.kill();
    let _ = candidate.wait();
    s.signal(libc::SIGTERM);
    let (code, stderr) = s.wait();
    assert_eq!(code, Some(0), "{stderr}");
}
