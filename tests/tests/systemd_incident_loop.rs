//! The incident, compressed: `serial-getty@ttyS0.service` runs the real
//! /sbin/agetty against a serial tty the container does not have, with
//! Restart=always, RestartSec=2s and no start limit. spawnscope reports it
//! as a respawn loop by its 3rd restart, with agetty's real exit status
//! (systemd's ExecMainStatus), and `analyze` on the recording of the same
//! run gives the same findings as the live summary.

use std::time::Duration;

use spawnscope_tests::{Tracer, analyze_json, summary, systemd::SystemdContainer};

const UNIT: &str = "serial-getty@ttyS0.service";

#[test]
fn agetty_crash_loop_is_named_by_its_third_restart() {
    let Some(ct) = SystemdContainer::boot("incident") else {
        return;
    };
    // A concrete instance file overrides the packaged template: the same
    // command line, minus the device dependency that would keep it waiting.
    ct.install_unit(
        UNIT,
        "[Unit]\nDescription=Serial Getty on ttyS0 (incident replay)\nStartLimitIntervalSec=0\n\
         [Service]\nExecStart=-/sbin/agetty -o '-p -- \\\\u' --keep-baud 115200,57600,38400,9600 ttyS0 vt220\n\
         Type=idle\nRestart=always\nRestartSec=2s\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("incident.jsonl");
    let mut tracer = Tracer::start(&["--interval", "1s", "--record", file.to_str().unwrap()]);
    ct.run(&["systemctl", "start", UNIT]);
    // agetty fails every ~10 s; the finding comes at its 3rd restart, about
    // 30 s here, later on a loaded host.
    let (detected, _) = tracer.wait_for(Duration::from_secs(180), "loop finding", |v| {
        v["type"] == "finding" && v["change"] == "detected" && v["unit"] == UNIT
    });
    // systemd's own record of the last run's end, read while the unit
    // waits out RestartSec (a running instance has no status yet).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let props = loop {
        let p = ct.show(
            UNIT,
            &["SubState", "NRestarts", "ExecMainStatus", "ExecMainCode"],
        );
        if p["SubState"] == "auto-restart" {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never in auto-restart: {p:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    ct.run(&["systemctl", "stop", UNIT]);
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");

    assert_eq!(detected["kind"], "respawn_loop");
    assert!(
        detected["restarts"].as_u64().unwrap() <= 3,
        "reported by the 3rd restart: {detected}"
    );
    assert_eq!(detected["container"], ct.name.as_str());
    assert_eq!(detected["executable"], "/sbin/agetty");
    assert_eq!(detected["comm"], "agetty");
    assert_eq!(detected["parent"]["comm"], "systemd");
    // ExecMainCode=1 is CLD_EXITED: agetty exited by itself with a status.
    assert_eq!(props["ExecMainCode"], "1", "{props:?}");
    let status: u64 = props["ExecMainStatus"].parse().unwrap();
    assert_ne!(status, 0, "agetty cannot work here: {props:?}");
    assert_eq!(detected["dominant"]["code"], status, "{detected}");
    assert_eq!(detected["dominant"]["share"], 1.0);
    let secs = (detected["last_seen_unix"].as_f64().unwrap()
        - detected["first_seen_unix"].as_f64().unwrap()) as u64;
    eprintln!(
        "incident loop: detected at restart {} after {secs} s: {}",
        detected["restarts"], detected["message"]
    );

    // Live summary and offline analysis agree.
    let live = &summary(&lines)["findings"];
    let mine: Vec<_> = live
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["container"] == ct.name.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{live}");
    let offline = analyze_json(&file);
    assert_eq!(offline["findings"], *live, "analyze == live summary");
    ct.shutdown();
}
