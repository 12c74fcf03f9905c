//! The incident, compressed: `serial-getty@ttyS0.service` runs the real
//! /sbin/agetty against a serial tty the container does not have, with
//! Restart=always, RestartSec=2s and no start limit. spawnscope reports it
//! as a respawn loop by its 3rd restart, with agetty's real exit status
//! (systemd's ExecMainStatus), and `analyze` on the recording of the same
//! run gives the same findings as the live summary. The finding names
//! agetty, never the systemd-executor that systemd 257 starts it through,
//! at the rate systemd restarts it and from the first start systemd
//! logged. On bookworm (systemd 252) and trixie (systemd 257).

use std::time::Duration;

use spawnscope_tests::{
    Tracer, analyze_json, spawnscope_bin, summary,
    systemd::{Suite, SystemdContainer, assert_names_no_executor, restarts_per_min},
};

const UNIT: &str = "serial-getty@ttyS0.service";

#[test]
fn agetty_crash_loop_is_named_by_its_third_restart_bookworm() {
    agetty_crash_loop_is_named_by_its_third_restart(Suite::Bookworm);
}

#[test]
fn agetty_crash_loop_is_named_by_its_third_restart_trixie() {
    agetty_crash_loop_is_named_by_its_third_restart(Suite::Trixie);
}

fn agetty_crash_loop_is_named_by_its_third_restart(suite: Suite) {
    let Some(ct) = SystemdContainer::boot_suite(&format!("incident-{}", suite.name()), suite, &[])
    else {
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
        v["type"] == "finding"
            && v["change"] == "detected"
            && v["unit"] == UNIT
            && v["container"] == ct.name.as_str()
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
        "incident loop ({}): detected at restart {} after {secs} s: {}",
        suite.name(),
        detected["restarts"],
        detected["message"]
    );

    // agetty, not the executor that systemd 257 starts it through.
    assert_eq!(detected["argv"][0], "/sbin/agetty", "{detected}");
    assert_names_no_executor(&detected);
    // At systemd's pace, from systemd's first start. The finding came
    // with the 3rd restart; the starts systemd logged since then do not
    // change the median much.
    let started = ct.start_times(UNIT);
    let real_rate = restarts_per_min(&started);
    let rate = detected["rate_per_min"].as_f64().unwrap();
    let first = detected["first_seen_unix"].as_f64().unwrap();
    eprintln!(
        "incident loop ({}): {rate:.2}/min, systemd's log {real_rate:.2}/min; first seen {first:.3}, systemd's starts {:?}",
        suite.name(),
        &started[..started.len().min(4)]
    );
    assert!(
        (rate - real_rate).abs() <= 0.1 * real_rate,
        "{rate}/min, systemd restarted it {real_rate:.2}/min ({started:?}): {detected}"
    );
    // agetty's first exec follows systemd's first "Started" by the
    // executor's set-up (milliseconds); the clocks are the same host's.
    assert!(
        first >= started[0] - 0.5 && first < started[1],
        "first seen {first}, systemd's starts {started:?}: {detected}"
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
    assert_eq!(mine[0]["executable"], "/sbin/agetty", "{live}");
    assert_names_no_executor(mine[0]);
    assert_eq!(
        mine[0]["first_seen_unix"], detected["first_seen_unix"],
        "the summary's finding is the one detected live: {live}"
    );
    let offline = analyze_json(&file);
    assert_eq!(offline["findings"], *live, "analyze == live summary");

    // Export's respawn interval is systemd's restart interval, as the
    // sentinel's is: one per start after the first, at systemd's pace.
    let out = dir.path().join("export");
    let st = std::process::Command::new(spawnscope_bin())
        .args(["export", "--format", "json", "--out"])
        .arg(&out)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("spawnscope-histograms.json")).unwrap())
            .unwrap();
    let label = format!("{UNIT} @{}", ct.name);
    let unit = v["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["unit"] == label.as_str())
        .unwrap_or_else(|| panic!("no {label} in the export"));
    let h = unit["histograms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["measure"] == "respawn_interval")
        .unwrap_or_else(|| panic!("no respawn interval: {unit}"));
    let mut gaps: Vec<f64> = started.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_by(f64::total_cmp);
    let median = gaps[gaps.len() / 2];
    let p50 = h["p50"].as_f64().unwrap() / 1e9;
    eprintln!(
        "incident loop ({}): export's respawn interval p50 {p50:.2} s over {}; systemd's median {median:.2} s over {}",
        suite.name(),
        h["count"],
        gaps.len()
    );
    assert_eq!(h["count"], gaps.len(), "one per restart: {h}");
    assert!(
        (p50 - median).abs() <= 0.1 * median,
        "p50 {p50} s, systemd's median {median} s: {gaps:?}"
    );
    ct.shutdown();
}
